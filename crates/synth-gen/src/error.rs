//! The crate's error type.

/// Everything that can go wrong in `synth-gen`; each variant names the field at fault and the
/// allowed range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong: the I/O error, kept as the source, or a message.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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

impl From<train_kit::TrainKitError> for SynthGenError {
    /// A shard names the field of a sharded run (`shard.count`, `shard.index` or `shard`); a
    /// file written through `train_kit::files` names its path, the cause kept.
    fn from(e: train_kit::TrainKitError) -> Self {
        use train_kit::TrainKitError as E;
        match e {
            E::NoShards => invalid("shard.count", 0, "an integer >= 1"),
            E::ShardIndex { index, count } => invalid(
                "shard.index",
                index,
                format!(
                    "an integer in 0..={} (zero-based, below shard.count = {count})",
                    count - 1
                ),
            ),
            E::ShardSyntax(text) => invalid(
                "shard",
                text,
                "I/N: shard I (zero-based) of N shards, e.g. 0/4",
            ),
            other => Self::Io {
                path: other.path().map(|p| p.to_path_buf()).unwrap_or_default(),
                source: Box::new(other),
            },
        }
    }
}
