//! The one error type of this crate.

use thiserror::Error;

/// Everything that can go wrong in `dp-accounting`.
///
/// Bad input is always reported as [`AccountingError::InvalidParameter`], naming the
/// field, the value received and the allowed range; a request that is valid but that an
/// accountant cannot bound soundly is [`AccountingError::CannotBound`]: the crate never
/// answers with a number it cannot stand behind.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum AccountingError {
    /// A parameter is outside its allowed range (or is NaN or infinite).
    #[error("invalid {field}: got {value}, expected {expected}")]
    InvalidParameter {
        /// The parameter's name, e.g. `noise_multiplier`.
        field: &'static str,
        /// The value received, formatted.
        value: String,
        /// The allowed range, in words, e.g. `a finite number > 0`.
        expected: &'static str,
    },
    /// The accountant cannot give a sound bound for this request (for example a δ smaller
    /// than the mass its discretisation had to set aside). The message says why and what to
    /// change.
    #[error("{accountant} accountant cannot bound this request: {reason}")]
    CannotBound {
        /// Which accountant refused.
        accountant: &'static str,
        /// Why, and what to change.
        reason: String,
    },
    /// Noise calibration found no parameter that meets the target.
    #[error("calibration failed: {0}")]
    Calibration(String),
    /// A ledger or event could not be read from or written to JSON.
    #[error("invalid privacy ledger JSON: {0}")]
    Json(String),
}

/// Shorthand for `Result<T, AccountingError>`.
pub type Result<T> = std::result::Result<T, AccountingError>;

impl From<serde_json::Error> for AccountingError {
    fn from(e: serde_json::Error) -> Self {
        AccountingError::Json(e.to_string())
    }
}
