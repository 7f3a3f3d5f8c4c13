//! Binding a run to its data: SHA-256 fingerprints of the private input file(s) and of the
//! training split, recorded in the run directory (`run.json`) and in every DP checkpoint, so
//! that a resumed run whose data changed is refused instead of continuing with another N, an
//! old label histogram or a δ computed from other data.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DistilDpError, io};
use crate::records::Record;
use crate::split::{SplitKey, push_prefixed};

/// The fingerprints of a run's private data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFingerprint {
    /// SHA-256 (hex) of the input: the file's bytes, or every file of a directory (sorted by
    /// name, each name and content length-prefixed), or the embedded corpus's records.
    pub input: String,
    /// SHA-256 (hex) of the training split: its records in order, each length-prefixed.
    pub train: String,
    /// Records in the training split (N, treated as public).
    pub train_records: usize,
}

impl DataFingerprint {
    /// The fingerprints of `input` (a data file or directory; `None`: the embedded corpus,
    /// whose records are `all`) and of the training split `train`.
    pub fn new(
        input: Option<&Path>,
        all: &[Record],
        train: &[Record],
    ) -> Result<Self, DistilDpError> {
        let input = match input {
            Some(path) => hash_path(path)?,
            None => hash_records(all),
        };
        Ok(Self {
            input,
            train: hash_records(train),
            train_records: train.len(),
        })
    }

    /// A short form for messages and checkpoints: `input:train` (16 hex digits each).
    pub fn short(&self) -> String {
        format!("{}:{}", &self.input[..16], &self.train[..16])
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_records(records: &[Record]) -> String {
    let mut hash = Sha256::new();
    hash.update((records.len() as u64).to_le_bytes());
    let mut buf = Vec::new();
    for r in records {
        buf.clear();
        r.split_bytes(&mut buf);
        hash.update(&buf);
    }
    hex(&hash.finalize())
}

fn hash_path(path: &Path) -> Result<String, DistilDpError> {
    let mut hash = Sha256::new();
    if path.is_dir() {
        let mut files: Vec<_> = fs::read_dir(path)
            .map_err(io(path))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let mut buf = Vec::new();
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            push_prefixed(&mut buf, name.as_bytes());
            push_prefixed(&mut buf, &fs::read(&file).map_err(io(&file))?);
            hash.update(&buf);
        }
    } else {
        hash.update(fs::read(path).map_err(io(path))?);
    }
    Ok(hex(&hash.finalize()))
}
