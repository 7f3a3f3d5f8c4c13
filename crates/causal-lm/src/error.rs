//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `causal-lm`. Every variant names what was wrong (the field,
/// the file or the tensor) and, for bad values, the allowed range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CausalLmError {
    /// A parameter is outside its allowed range.
    #[error("invalid {field} = {value}: expected {expected}")]
    InvalidParameter {
        /// The parameter's name.
        field: &'static str,
        /// The rejected value, as text.
        value: String,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed or has the wrong shape.
    #[error("{path}: malformed JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint describes a model this crate does not implement.
    #[error(
        "unsupported architecture in {path}: {found} (supported: GPT-2 family, model_type \"gpt2\")"
    )]
    UnsupportedArchitecture {
        /// The `config.json`.
        path: PathBuf,
        /// What it declared.
        found: String,
    },
    /// A tensor the model needs is absent from the checkpoint.
    #[error("checkpoint {path} lacks tensor `{name}`")]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's name in the checkpoint's convention.
        name: String,
    },
    /// A tensor in the checkpoint has the wrong shape for the configuration.
    #[error(
        "checkpoint {path}: tensor `{name}` has shape {found:?}, the configuration needs {expected:?}"
    )]
    TensorShape {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's name in the checkpoint's convention.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype this crate does not load.
    #[error("checkpoint {path}: tensor `{name}` has dtype {dtype}; supported: F32, F16")]
    UnsupportedDtype {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// The checkpoint reader or writer failed.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong: the reader's or writer's error, kept as the source, or a message.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The tokenizer failed to load, train, encode or save.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Tokenizer and model disagree (e.g. token ids beyond the model's vocabulary).
    #[error("tokenizer and model mismatch: {0}")]
    Mismatch(String),
    /// A data file could not be parsed.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line (or record) number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Writing a file atomically failed (see `train_kit::files`).
    #[error(transparent)]
    Files(#[from] train_kit::TrainKitError),
    /// There is nothing to work on.
    #[error("empty input: {0}")]
    Empty(String),
}

impl CausalLmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
