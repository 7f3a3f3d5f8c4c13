//! The crate's error type.

/// Everything that can go wrong in `dp-optim`; each variant names the field at fault and the
/// allowed range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpOptimError {
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
    /// The operating system's randomness source failed.
    #[error("the OS random number generator failed: {0}")]
    OsRng(String),
    /// The run has spent its budget: no further step is allowed.
    #[error("privacy budget exhausted: the {steps} steps that fit epsilon = {epsilon} are spent")]
    BudgetExhausted {
        /// Steps the budget allowed.
        steps: u64,
        /// The target ε.
        epsilon: f64,
    },
    /// The fast clipping path met a trainable parameter the model never ran through the tap.
    #[error(
        "parameter `{path}` was not used through the layer tap: the fast clipping path cannot see its gradient (route it through the tap or use the generic path)"
    )]
    UntappedParameter {
        /// The parameter's module path.
        path: String,
    },
    /// The loss did not use the layer tap at all: only the generic path can clip it.
    #[error("the loss ran no layer through the tap: use the generic clipping path")]
    NothingTapped,
    /// A parameter was tapped both as a dense/embedding weight and as a bias or gain.
    #[error("parameter `{path}` was tapped in two incompatible roles")]
    MixedTapUse {
        /// The parameter's module path.
        path: String,
    },
    /// The per-example loss has the wrong shape.
    #[error("the loss returned shape {got:?}: expected one value per example, [{expected}]")]
    LossShape {
        /// Number of examples.
        expected: usize,
        /// The shape returned.
        got: Vec<usize>,
    },
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What went wrong (the I/O, record or format error).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A collective operation between data-parallel workers failed or timed out: the step
    /// it belonged to was not applied and not recorded; resume the job from its last
    /// checkpoint.
    #[error("collective {operation} failed: {message}")]
    Collective {
        /// The operation (register, all-reduce, finish).
        operation: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Another data-parallel worker could not compute its part of a step (its own error
    /// says why): every worker abandoned the step, nothing was applied or recorded, and the
    /// step may be retried.
    #[error(
        "{workers} worker(s) could not compute their part of step {step} (see their errors); nothing was applied or recorded"
    )]
    WorkerFailed {
        /// How many workers failed.
        workers: usize,
        /// The step (0-based) that was abandoned.
        step: u64,
    },
    /// The data-parallel workers of one job disagree (configuration, model size, world).
    #[error("data-parallel workers disagree: {0}")]
    WorkerMismatch(String),
    /// A privacy-accounting error.
    #[error(transparent)]
    Accounting(#[from] dp_accounting::AccountingError),
}

impl From<train_kit::TrainKitError> for DpOptimError {
    /// Invalid parameters keep their field and range; file and record errors become
    /// [`DpOptimError::Checkpoint`] errors at their path, with the cause kept.
    fn from(e: train_kit::TrainKitError) -> Self {
        match e {
            train_kit::TrainKitError::InvalidParameter {
                field,
                value,
                expected,
            } => Self::InvalidParameter {
                field,
                value,
                expected,
            },
            other => Self::Checkpoint {
                path: other.path().map(|p| p.to_path_buf()).unwrap_or_default(),
                source: Box::new(other),
            },
        }
    }
}
