//! The crate's error type.

use std::path::PathBuf;

use causal_lm::CausalLmError;

/// Everything that can go wrong in the orchestration layer; each variant names the file,
/// line or argument at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistilDpError {
    /// A model, tokenizer or checkpoint error.
    #[error(transparent)]
    Model(#[from] CausalLmError),
    /// Synthetic-data generation failed (settings out of range, output file).
    #[error(transparent)]
    Generation(#[from] synth_gen::SynthGenError),
    /// A distillation loss error (shapes, ranges).
    #[error(transparent)]
    Loss(#[from] kd_losses::KdLossError),
    /// A DP training error (budget, sampling, clipping, checkpoint).
    #[error(transparent)]
    Dp(#[from] dp_optim::DpOptimError),
    /// A file written through `train_kit::files` (atomic files and directories) failed.
    #[error(transparent)]
    Files(train_kit::TrainKitError),
    /// A model or optimiser checkpoint could not be written or read.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// burn's recorder error (or another cause), kept as the source.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A data file is malformed.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line (JSONL, text) or record (CSV) number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A data file holds no text.
    #[error("{path}: no text found ({detail})")]
    EmptyData {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        detail: String,
    },
    /// A command-line or configuration value is out of range.
    #[error("invalid {field} = {value}: expected {expected}")]
    InvalidArgument {
        /// The argument or field.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
    /// A configuration file or override is malformed (unknown field, wrong type, bad TOML).
    #[error("config: {message}")]
    Config {
        /// The parser's message (it names the field and, for files, the line).
        message: String,
    },
    /// The run directory belongs to another configuration.
    #[error(
        "{path}: the run directory holds another configuration ({detail}); choose another output_dir or remove it"
    )]
    RunMismatch {
        /// Its `config.toml`.
        path: PathBuf,
        /// The first difference.
        detail: String,
    },
    /// The run directory holds an output made with other settings or other data, which this
    /// run cannot remake: a private release (remaking it would release the private data
    /// again), or a post-processing output that this run only reads.
    #[error("{0}")]
    ReleaseMismatch(Box<Mismatch>),
    /// A stage was asked to run before the stage whose output it needs.
    #[error(
        "`distil-dp {needed_by}` needs the output of the `{stage}` stage ({path} is missing or incomplete): run `distil-dp {stage}` or `distil-dp run` first"
    )]
    StageMissing {
        /// The stage to run first.
        stage: &'static str,
        /// The stage that was asked for.
        needed_by: &'static str,
        /// Where its output should be.
        path: PathBuf,
    },
    /// A data-parallel worker thread failed outside a collective call.
    #[error("data-parallel worker: {0}")]
    Worker(String),
    /// The chosen backend cannot run here (no GPU, no driver); checked before any work.
    #[error("backend `{backend}` is not usable on this machine: {reason}")]
    DeviceUnavailable {
        /// The backend's command-line name.
        backend: &'static str,
        /// What failed when a one-element tensor was computed on it.
        reason: String,
    },
}

impl From<train_kit::TrainKitError> for DistilDpError {
    /// A shard of a sharded generation names `shard.count` / `shard.index` (as synth-gen's
    /// errors do); any other kit error is a file error ([`DistilDpError::Files`]).
    fn from(e: train_kit::TrainKitError) -> Self {
        use train_kit::TrainKitError as E;
        match e {
            E::NoShards | E::ShardIndex { .. } | E::ShardSyntax(_) => Self::Generation(e.into()),
            other => Self::Files(other),
        }
    }
}

/// What [`DistilDpError::ReleaseMismatch`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What was made (`DistilDP release (label histogram + teacher)`, ...).
    pub part: &'static str,
    /// Whether it is a release of the private data.
    pub private: bool,
    /// The stage that makes it.
    pub stage: &'static str,
    /// The run directory (or checkpoint).
    pub dir: PathBuf,
    /// The first field that differs (or `data`).
    pub field: String,
    /// Its value when the output was made.
    pub recorded: String,
    /// Its value in this run.
    pub now: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: `{}` is {} in this run, but the {} in this run directory was made with {}; ",
            self.dir.display(),
            self.field,
            self.now,
            self.part,
            self.recorded
        )?;
        if self.private {
            write!(
                f,
                "a private release is never made twice (that would release the private data again): restore the setting, or give another output_dir for a new, separately accounted run"
            )
        } else {
            write!(
                f,
                "run `distil-dp {}` (or `run`) to make it again with these settings",
                self.stage
            )
        }
    }
}

/// Maps an I/O error on `path` to [`DistilDpError::Io`].
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> DistilDpError + '_ {
    move |source| DistilDpError::Io {
        path: path.to_path_buf(),
        source,
    }
}
