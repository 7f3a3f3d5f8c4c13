//! RDP of the Poisson-subsampled Gaussian mechanism at one order (Mironov, Talwar & Zhang
//! 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism").
//!
//! RDP(α) = ln(A_α)/(α − 1) with A_α = E_{z∼μ₀}[((1−q) + q·μ₁(z)/μ₀(z))^α], the remove
//! direction, which upper-bounds the add direction at every order (ibid., Theorem 5).

use std::f64::consts::SQRT_2;

use crate::special::{SignedLog, log_erfc, log_expm1, log_sum_exp, log1p_exp};

/// ln A_α for an integer order α ≥ 2 and 0 < q < 1, from the binomial expansion
/// A_α = Σᵢ C(α,i) (1−q)^{α−i} qⁱ e^{(i²−i)/(2σ²)}.
///
/// The i = 0 and i = 1 terms of (A_α − 1) vanish, so this sums
/// A_α − 1 = Σ_{i≥2} C(α,i)(1−q)^{α−i} qⁱ (e^{(i²−i)/(2σ²)} − 1) in log space (all terms
/// positive) and returns ln(1 + (A_α − 1)): exact to a few ulps even when A_α − 1 is 1e-12,
/// where summing A_α itself would leave only four correct digits of ln A_α.
pub(crate) fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let a = alpha as f64;
    let two_s2 = 2.0 * sigma * sigma;
    let mut log_binom = a.ln(); // ln C(α, 1)
    let mut terms = Vec::with_capacity(alpha as usize);
    for i in 2..=alpha {
        let fi = i as f64;
        log_binom += ((a - fi + 1.0) / fi).ln();
        let c = (fi * fi - fi) / two_s2;
        terms.push(log_binom + fi * ln_q + (a - fi) * ln_1mq + log_expm1(c));
    }
    log1p_exp(log_sum_exp(&terms))
}

/// Most series terms before giving up on a fractional order (never reached on the grid
/// σ ≥ 0.1, α ≤ 10⁴; an order that does not converge is skipped, never guessed).
const MAX_TERMS: usize = 100_000;

/// ln A_α for a fractional order α > 1 and 0 < q < 1 (Mironov et al., Section 3.3).
///
/// Splits the integral at z₀ = σ² ln(1/q − 1) + 1/2 and expands each half in a binomial
/// series whose coefficients C(α, i) change sign for i > α. Unlike peers that add |C(α,i)|
/// (an upper bound that can be 25% loose), the sum keeps every term's sign. Returns `None`
/// if the series does not converge within `MAX_TERMS` terms.
pub(crate) fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> Option<f64> {
    let ln_q = q.ln();
    let ln_1mq = (-q).ln_1p();
    let s2 = sigma * sigma;
    let z0 = s2 * (1.0 / q - 1.0).ln() + 0.5;
    let ln_half = -std::f64::consts::LN_2;
    let mut a0 = SignedLog::ZERO;
    let mut a1 = SignedLog::ZERO;
    let mut log_binom = 0.0; // ln |C(α, 0)|
    let mut positive = true; // sign of C(α, i)
    let (mut last0, mut last1) = (f64::INFINITY, f64::INFINITY);
    for i in 0..MAX_TERMS {
        let fi = i as f64;
        if i > 0 {
            let factor = (alpha - fi + 1.0) / fi;
            if factor == 0.0 {
                break;
            }
            if factor < 0.0 {
                positive = !positive;
            }
            log_binom += factor.abs().ln();
        }
        let j = alpha - fi;
        let log_t0 = log_binom + fi * ln_q + j * ln_1mq;
        let log_t1 = log_binom + j * ln_q + fi * ln_1mq;
        let log_e0 = ln_half + log_erfc((fi - z0) / (SQRT_2 * sigma));
        let log_e1 = ln_half + log_erfc((z0 - j) / (SQRT_2 * sigma));
        let s0 = log_t0 + (fi * fi - fi) / (2.0 * s2) + log_e0;
        let s1 = log_t1 + (j * j - j) / (2.0 * s2) + log_e1;
        a0 = a0.add(positive, s0);
        a1 = a1.add(positive, s1);
        // Stop once both terms shrink and are below 2^-60 of the current total.
        if i as f64 > alpha && s0 < last0 && s1 < last1 {
            let total = a0.plus(a1);
            if let Some(t) = total.ln()
                && s0.max(s1) < t - 42.0
            {
                return Some(t);
            }
        }
        last0 = s0;
        last1 = s1;
    }
    None
}

/// The RDP ε at order α of one run of the Poisson-subsampled Gaussian, or `None` if it
/// cannot be computed soundly (the order is then left out, never guessed).
pub(crate) fn rdp(q: f64, sigma: f64, alpha: f64) -> Option<f64> {
    if q == 1.0 {
        return Some(alpha / (2.0 * sigma * sigma));
    }
    let log_a = if alpha.fract() == 0.0 && alpha <= 1e6 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)?
    };
    let r = log_a / (alpha - 1.0);
    (r.is_finite() && r >= 0.0).then_some(r).or_else(|| {
        // ln A_α ≥ 0 always (Jensen); a rounding-level negative value means A_α = 1.
        (r.is_finite() && r > -1e-300).then_some(0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_series_agrees_with_integer_sum_at_integer_orders() {
        for &(q, s) in &[(0.01, 1.0), (0.1, 0.7), (0.5, 2.0), (0.001, 5.0)] {
            for alpha in [2u64, 3, 7, 20] {
                let int = log_a_int(q, s, alpha);
                let frac = log_a_frac(q, s, alpha as f64 + 1e-12).unwrap();
                assert!(
                    ((int - frac) / int).abs() < 1e-6,
                    "q={q} s={s} a={alpha}: {int} {frac}"
                );
            }
        }
    }

    #[test]
    fn rdp_is_continuous_in_the_order() {
        let (q, s) = (0.02, 0.9);
        let below = rdp(q, s, 3.999_999).unwrap();
        let at = rdp(q, s, 4.0).unwrap();
        let above = rdp(q, s, 4.000_001).unwrap();
        assert!(below <= at * (1.0 + 1e-9) && at <= above * (1.0 + 1e-9));
        assert!((above - below) / at < 1e-4);
    }
}
