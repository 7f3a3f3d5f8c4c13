//! The exact privacy curve of composed (non-subsampled) Gaussian mechanisms.
//!
//! Composing Gaussian mechanisms with noise multipliers σ₁, …, σₖ is exactly μ-GDP with
//! μ = √(Σ 1/σᵢ²) (Dong, Roth & Su 2019), whose curve is
//! δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2), the same in both directions. The PRV and PLD
//! accountants answer such events with this closed form instead of a discretisation.

use crate::special::{exp_diff, log_norm_cdf};

/// μ of the composition, or `None` if some mechanism is subsampled (q < 1) or is not a
/// Gaussian mechanism.
pub(crate) fn composed_mu(mechanisms: &[(crate::Mechanism, u64)]) -> Option<f64> {
    let mut mu2 = 0.0;
    for (m, count) in mechanisms {
        let m = m.as_subsampled_gaussian()?;
        if m.sample_rate() < 1.0 {
            return None;
        }
        mu2 += *count as f64 / (m.noise_multiplier() * m.noise_multiplier());
    }
    Some(mu2.sqrt())
}

/// δ(ε) of μ-GDP.
pub(crate) fn delta(mu: f64, eps: f64) -> f64 {
    if mu == 0.0 {
        return 0.0;
    }
    let a = -eps / mu + mu / 2.0;
    // Φ(a) − e^ε Φ(a − μ), in log space so that e^ε never overflows.
    exp_diff(log_norm_cdf(a), eps + log_norm_cdf(a - mu)).min(1.0)
}

/// The ε ≥ 0 at which μ-GDP reaches `target` δ, bracketed and bisected to the last bit; the
/// returned value is the bracket's upper end, so δ(returned) ≤ target.
pub(crate) fn epsilon(mu: f64, target: f64) -> f64 {
    if delta(mu, 0.0) <= target {
        return 0.0;
    }
    let mut lo = 0.0;
    let mut hi = 1.0f64.max(mu * mu);
    while delta(mu, hi) > target {
        lo = hi;
        hi *= 2.0;
    }
    crate::special::bisect(|e| delta(mu, e) <= target, lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_value() {
        // μ = 1 GDP at δ = 1e-5: ε ≈ 4.4 (Dong, Roth & Su 2019, Figure 1 regime).
        let eps = epsilon(1.0, 1e-5);
        assert!(delta(1.0, eps) <= 1e-5);
        assert!(delta(1.0, eps * (1.0 - 1e-12)) > 1e-5);
        assert!(eps > 4.0 && eps < 4.6, "{eps}");
    }
}
