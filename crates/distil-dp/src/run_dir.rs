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
//! file and of the directory), so a kill leaves either the old or the new version, through
//! `train_kit::files` (the workspace's one implementation). The directory is created
//! owner-only (0700 on Unix) and this crate's files 0600.

use std::path::{Path, PathBuf};

use synth_gen::Shard;

use crate::config::PipelineConfig;
use crate::error::DistilDpError;
use train_kit::files::create_private_dir;
pub use train_kit::files::write_atomic;

/// A run's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
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
        Ok(write_atomic(
            &self.config_path(),
            config.to_toml().as_bytes(),
        )?)
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
