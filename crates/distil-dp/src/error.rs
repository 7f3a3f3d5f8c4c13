//! The crate's error type.

use std::path::PathBuf;

use causal_lm::CausalLmError;

/// Everything that can go wrong in the orchestration layer; each variant names the file,
/// line or argument at fault.
#[derive(Debug, thiserror::Error)]
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
}

/// Maps an I/O error on `path` to [`DistilDpError::Io`].
pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> DistilDpError + '_ {
    move |source| DistilDpError::Io {
        path: path.to_path_buf(),
        source,
    }
}
