//! The run directory: where every stage writes, and what a rerun resumes from.
//!
//! ```text
//! config.toml           the configuration of the latest run (for people)
//! run.json              the data fingerprint and what each stage depends on (see crate::identity)
//! tokenizer.json        trained on public text (or the user's)
//! teacher/ student/ …   checkpoints, one directory per trained model
//! label-histogram.json  the DP release of the label counts (released once, then reused)
//! synthetic.jsonl       the synthetic corpus, streamed (or merged from its shards)
//! synthetic.shard-I-of-N.jsonl (+ .done)   shard I of a sharded generation, and its completion marker
//! metrics.shard-I-of-N.jsonl               that shard's events (one writer per file)
//! metrics.jsonl         one JSON line per logged event
//! report.json report.md the results table and the privacy ledger
//! ```
//!
//! Files are written atomically (a temporary sibling, then a rename) and durably (fsync of the
//! file and of the directory), so a kill leaves either the old or the new version. The
//! directory is created owner-only (0700 on Unix) and this crate's files 0600.

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

/// Writes `contents` to `path` atomically (temporary sibling, then rename) and durably (the
/// file and then its directory are synced, so a crash after this returns keeps the new
/// version). The file is created owner-only (0600 on Unix). The temporary name holds the
/// process id, so that processes sharing the run directory (the workers of a multi-process
/// teacher writing the same config) never rename each other's file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), DistilDpError> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".partial-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    file.write_all(contents).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_parent(path)
}

/// Syncs the directory holding `path` (Unix; elsewhere a no-op), making a rename durable.
fn sync_parent(path: &Path) -> Result<(), DistilDpError> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `dir` (and its parents) owner-only: 0700 on Unix, so nothing in a run directory
/// (checkpoints, corpus, metrics) is readable by other users whatever its own mode.
pub fn create_private_dir(dir: &Path) -> Result<(), DistilDpError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

impl RunDir {
    /// Opens (creating if needed, owner-only) the run directory of `config`. Nothing is
    /// written to it: what each stage depends on is checked and recorded by
    /// [`crate::identity`] once every check of a run has passed, and `config.toml` then
    /// records the configuration of the latest run.
    pub fn open(config: &PipelineConfig) -> Result<Self, DistilDpError> {
        let root = config.output_dir.clone();
        create_private_dir(&root)?;
        Ok(Self { root })
    }

    /// Writes `config.toml` (the configuration of the latest run, for people: what each
    /// stage depends on is in `run.json`).
    pub fn save_config(&self, config: &PipelineConfig) -> Result<(), DistilDpError> {
        write_atomic(&self.config_path(), config.to_toml().as_bytes())
    }

    /// `run.json`: the data fingerprint and what each stage and release depends on.
    pub fn identity_path(&self) -> PathBuf {
        self.root.join("run.json")
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
