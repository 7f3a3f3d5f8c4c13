//! The crate's error type.

/// Everything that can go wrong in `dp-optim`; each variant names the field at fault and the
/// allowed range.
#[derive(Debug, thiserror::Error)]
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
    /// A privacy-accounting error.
    #[error(transparent)]
    Accounting(#[from] dp_accounting::AccountingError),
}
