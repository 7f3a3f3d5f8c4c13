//! The run directory: where every stage writes, and what a rerun resumes from.
//!
//! ```text
//! config.toml           the configuration of the run (a rerun must match it)
//! tokenizer.json        trained on public text
//! teacher/ student/ …   checkpoints, one directory per trained model
//! label-histogram.json  the DP release of the label counts (released once, then reused)
//! synthetic.jsonl       the synthetic corpus, streamed (or merged from its shards)
//! synthetic.shard-I-of-N.jsonl (+ .done)   shard I of a sharded generation, and its completion marker
//! metrics.shard-I-of-N.jsonl               that shard's events (one writer per file)
//! metrics.jsonl         one JSON line per logged event
//! report.json report.md the results table and the privacy ledger
//! ```
//!
//! Files are written atomically (a temporary sibling, then a rename), so a kill leaves either
//! the old or the new version.

use std::fs;
use std::path::{Path, PathBuf};

use synth_gen::Shard;

use crate::config::PipelineConfig;
use crate::error::{DistilDpError, io};

/// A run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

/// Writes `contents` to `path` atomically (temporary sibling, then rename). The temporary
/// name holds the process id, so that processes sharing the run directory (the workers of a
/// multi-process teacher writing the same config) never rename each other's file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), DistilDpError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".partial-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, contents).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

impl RunDir {
    /// Opens (creating if needed) the run directory of `config` and records the config in
    /// it. A directory that already holds a *different* config is refused: its checkpoints,
    /// corpus and ledger belong to that run (choose another `output_dir`, or delete it).
    pub fn open(config: &PipelineConfig) -> Result<Self, DistilDpError> {
        let root = config.output_dir.clone();
        fs::create_dir_all(&root).map_err(io(&root))?;
        let dir = Self { root };
        let path = dir.config_path();
        let text = config.to_toml();
        if path.exists() {
            let old = fs::read_to_string(&path).map_err(io(&path))?;
            let old = PipelineConfig::from_toml(&old, &[]).map_err(|e| DistilDpError::Config {
                message: format!("{}: {e}", path.display()),
            })?;
            // the number of workers may change between resumptions (not the run's identity)
            let mut same = old.clone();
            same.workers = config.workers;
            if &same != config {
                return Err(DistilDpError::RunMismatch {
                    path,
                    detail: first_difference(&old.to_toml(), &text),
                });
            }
        } else {
            write_atomic(&path, text.as_bytes())?;
        }
        Ok(dir)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `tokenizer.json`.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.root.join("tokenizer.json")
    }

    /// The checkpoint directory of a trained model (`teacher`, `student`, …).
    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `label-histogram.json`.
    pub fn histogram_path(&self) -> PathBuf {
        self.root.join("label-histogram.json")
    }

    /// `synthetic.jsonl`.
    pub fn synthetic_path(&self) -> PathBuf {
        self.root.join("synthetic.jsonl")
    }

    /// `synthetic.shard-I-of-N.jsonl`: shard `I` (zero-based) of a corpus generated in `N`
    /// shards, which `distil-dp merge` joins into [`Self::synthetic_path`].
    pub fn synthetic_shard_path(&self, shard: Shard) -> PathBuf {
        self.root.join(format!(
            "synthetic.shard-{}-of-{}.jsonl",
            shard.index(),
            shard.count()
        ))
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `metrics.worker-R.jsonl`: the events of worker `R ≥ 1` of a teacher trained on
    /// several processes.
    pub fn worker_metrics_path(&self, rank: usize) -> PathBuf {
        self.root.join(format!("metrics.worker-{rank}.jsonl"))
    }

    /// `metrics.shard-I-of-N.jsonl`: the events of shard `I`'s generation. Shards running at
    /// the same time on a shared volume each append to their own file (appends of several
    /// writers to one file can interleave, on network file systems in particular).
    pub fn shard_metrics_path(&self, shard: Shard) -> PathBuf {
        self.root.join(format!(
            "metrics.shard-{}-of-{}.jsonl",
            shard.index(),
            shard.count()
        ))
    }
}

/// The first line where two config texts differ, for the error message.
fn first_difference(old: &str, new: &str) -> String {
    let mut a = old.lines();
    let mut b = new.lines();
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => {
                return format!(
                    "it holds `{}`, this run has `{}`",
                    x.unwrap_or("(nothing)"),
                    y.unwrap_or("(nothing)")
                );
            }
        }
    }
}
