//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `train-kit`; each variant names the field or file at
/// fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainKitError {
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
    /// A file or directory could not be written, read, renamed or flushed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A shard count of 0.
    #[error("a shard count of 0: expected an integer >= 1")]
    NoShards,
    /// A shard index not below the count.
    #[error("shard index {index} of {count}: expected an index below the count")]
    ShardIndex {
        /// The index given.
        index: u64,
        /// The count given.
        count: u64,
    },
    /// Text that is not `I/N` with two integers.
    #[error("shard {0:?}: expected I/N, shard I (zero-based) of N shards, e.g. 0/4")]
    ShardSyntax(String),
    /// A burn record (optimiser state) could not be written or read.
    #[error("{path}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// burn's recorder error.
        #[source]
        source: burn::record::RecorderError,
    },
}

impl TrainKitError {
    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The file or directory at fault, where there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Io { path, .. } | Self::Record { path, .. } => Some(path),
            _ => None,
        }
    }
}
