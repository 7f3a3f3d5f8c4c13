//! The crate's error type.

/// Everything that can go wrong in `synth-gen`; each variant names the field at fault and the
/// allowed range.
#[derive(Debug, thiserror::Error)]
pub enum SynthGenError {
    /// A parameter is outside its allowed range.
    #[error("invalid {field} = {value}: expected {expected}")]
    InvalidParameter {
        /// The parameter's name.
        field: &'static str,
        /// The rejected value, as text.
        value: String,
        /// The allowed range, in words.
        expected: String,
    },
    /// The output file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A shard file cannot be merged: missing, unfinished, or not what its shard should
    /// hold.
    #[error("{path}: shard {shard} is incomplete: {detail}")]
    IncompleteShard {
        /// The shard's file.
        path: std::path::PathBuf,
        /// The shard, `I/N`.
        shard: String,
        /// What is missing or wrong.
        detail: String,
    },
}

pub(crate) fn invalid(
    field: &'static str,
    value: impl ToString,
    expected: impl ToString,
) -> SynthGenError {
    SynthGenError::InvalidParameter {
        field,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}
