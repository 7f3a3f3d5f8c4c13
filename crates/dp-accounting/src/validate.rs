//! Parameter checks shared by every accountant: one place that decides what a valid σ, q,
//! δ, ε and step count are, so that every entry point rejects the same inputs the same way.

use crate::error::{AccountingError, Result};

fn invalid(field: &'static str, value: impl ToString, expected: &'static str) -> AccountingError {
    AccountingError::InvalidParameter {
        field,
        value: value.to_string(),
        expected,
    }
}

/// σ: a finite number > 0.
pub(crate) fn noise_multiplier(sigma: f64) -> Result<f64> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(sigma)
    } else {
        Err(invalid("noise_multiplier", sigma, "a finite number > 0"))
    }
}

/// The discrete Gaussian's σ: a finite number > 0.
pub(crate) fn sigma(sigma: f64) -> Result<f64> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(sigma)
    } else {
        Err(invalid("sigma", sigma, "a finite number > 0"))
    }
}

/// q ∈ (0, 1].
pub(crate) fn sample_rate(q: f64) -> Result<f64> {
    if q > 0.0 && q <= 1.0 {
        Ok(q)
    } else {
        Err(invalid("sample_rate", q, "a number in (0, 1]"))
    }
}

/// x ∈ (lo, hi) (NaN is outside every interval).
pub(crate) fn open_interval(
    field: &'static str,
    x: f64,
    lo: f64,
    hi: f64,
    expected: &'static str,
) -> Result<f64> {
    if x > lo && x < hi {
        Ok(x)
    } else {
        Err(invalid(field, x, expected))
    }
}

/// δ ∈ (0, 1).
pub(crate) fn delta(delta: f64) -> Result<f64> {
    open_interval("delta", delta, 0.0, 1.0, "a number in (0, 1)")
}

/// The largest FFT length an accountant may use: at least 1024.
pub(crate) fn max_grid_points(n: usize) -> Result<usize> {
    if n >= 1024 {
        Ok(n)
    } else {
        Err(invalid("max_grid_points", n, "an integer >= 1024"))
    }
}

/// ε ≥ 0 and finite (the argument of δ(ε)).
pub(crate) fn epsilon(eps: f64) -> Result<f64> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(eps)
    } else {
        Err(invalid("epsilon", eps, "a finite number >= 0"))
    }
}

/// A target ε for calibration: finite and > 0.
pub(crate) fn target_epsilon(eps: f64) -> Result<f64> {
    if eps.is_finite() && eps > 0.0 {
        Ok(eps)
    } else {
        Err(invalid("target_epsilon", eps, "a finite number > 0"))
    }
}

/// A number of steps or compositions: ≥ 1.
pub(crate) fn steps(count: u64) -> Result<u64> {
    if count >= 1 {
        Ok(count)
    } else {
        Err(invalid("steps", count, "an integer >= 1"))
    }
}

/// A strictly positive, finite tuning parameter (error budgets, discretisation intervals).
pub(crate) fn positive(field: &'static str, x: f64) -> Result<f64> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(invalid(field, x, "a finite number > 0"))
    }
}

/// An RDP order: finite and > 1.
pub(crate) fn order(alpha: f64) -> Result<f64> {
    if alpha.is_finite() && alpha > 1.0 {
        Ok(alpha)
    } else {
        Err(invalid("order", alpha, "a finite number > 1"))
    }
}
