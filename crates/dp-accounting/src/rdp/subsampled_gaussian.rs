//! RDP of the Poisson-subsampled Gaussian mechanism at one order (Mironov, Talwar & Zhang
//! 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism").
//!
//! RDP(α) = ln(A_α)/(α − 1) with A_α = E_{z∼μ₀}[((1−q) + q·μ₁(z)/μ₀(z))^α], the remove
//! direction, which upper-bounds the add direction at every order (ibid., Theorem 5).

use crate::special::{log_expm1, log_sum_exp, log1p_exp};

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

/// ln A_α for a fractional order α > 1 and 0 < q < 1, by quadrature of
/// A_α = ∫ μ₀(z) (1 − q + q e^{u(z)})^α dz, u(z) = (2z − 1)/(2σ²).
///
/// Mironov et al.'s series for fractional orders alternates in sign past i > α and, where
/// q e^{u} and 1 − q balance, its terms decay only polynomially (like i^{−α−1}), so
/// truncating it is either slow or inexact; peers that add |C(α, i)| instead were up to 3×
/// loose on our fixture grid. The integrand is smooth, and its mode lies in [0, α] (the exponent's derivative
/// is −z/σ² + α·(something in [0, 1/σ²])), and the exponent falls at least like
/// (z − mode)²/(2σ²) outside [0, α], so composite Gauss–Legendre over [−14σ, α + 14σ]
/// (neglecting < e^{−98} of the mass) converges to machine precision. When A_α is close to
/// 1, A_α − 1 = ∫ μ₀(z) expm1(α ln1p(q expm1(u))) dz is what is integrated, so that ln A_α
/// keeps its relative precision however small it is; only when that overflows is A_α summed
/// in log space.
pub(crate) fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> Option<f64> {
    let s2 = sigma * sigma;
    let lo = -14.0 * sigma;
    let hi = alpha + 14.0 * sigma;
    let width = sigma.min(2.0 * s2);
    let ln_norm = -(sigma * (2.0 * std::f64::consts::PI).sqrt()).ln();
    let ln_1mq = (-q).ln_1p();
    let ln_q_ratio = q.ln() - ln_1mq;
    let exponent = |z: f64| {
        let u = (2.0 * z - 1.0) / (2.0 * s2);
        // ln(1 − q + q e^u) = ln(1 − q) + softplus(u + ln(q/(1−q)))
        ln_norm - z * z / (2.0 * s2) + alpha * (ln_1mq + log1p_exp(u + ln_q_ratio))
    };
    // A_α − 1 first: exact for small values; if A_α is too large for it, sum in log space.
    let a_minus_1: f64 = crate::special::gauss_legendre_nodes(lo, hi, width)
        .map(|(z, w)| {
            let u = (2.0 * z - 1.0) / (2.0 * s2);
            let density = (ln_norm - z * z / (2.0 * s2)).exp();
            w * density * (alpha * (q * u.exp_m1()).ln_1p()).exp_m1()
        })
        .sum();
    if a_minus_1.is_finite() && a_minus_1 < 1e100 {
        return (a_minus_1 > -1.0).then(|| a_minus_1.ln_1p());
    }
    let terms: Vec<f64> = crate::special::gauss_legendre_nodes(lo, hi, width)
        .map(|(z, w)| w.ln() + exponent(z))
        .collect();
    let log_a = log_sum_exp(&terms);
    log_a.is_finite().then_some(log_a)
}

/// Order-independent quadrature data for the fractional orders of one mechanism: on the
/// nodes zₖ over [−14σ, α_max + 14σ], the weighted densities wₖ·N(zₖ; 0, σ²) and
/// ℓₖ = ln1p(q·expm1(u(zₖ))), so that A_α − 1 = Σₖ wₖ N(zₖ) expm1(α ℓₖ) costs one `expm1`
/// per node and order.
struct FractionalTable {
    weighted_density: Vec<f64>,
    log_ratio: Vec<f64>,
}

impl FractionalTable {
    fn new(q: f64, sigma: f64, alpha_max: f64) -> Self {
        let s2 = sigma * sigma;
        let ln_norm = -(sigma * (2.0 * std::f64::consts::PI).sqrt()).ln();
        let (weighted_density, log_ratio) = crate::special::gauss_legendre_nodes(
            -14.0 * sigma,
            alpha_max + 14.0 * sigma,
            sigma.min(2.0 * s2),
        )
        .map(|(z, w)| {
            let u = (2.0 * z - 1.0) / (2.0 * s2);
            (
                w * (ln_norm - z * z / (2.0 * s2)).exp(),
                (q * u.exp_m1()).ln_1p(),
            )
        })
        .unzip();
        Self {
            weighted_density,
            log_ratio,
        }
    }

    /// ln A_α, or `None` when A_α − 1 is too large for this linear-scale sum.
    fn log_a(&self, alpha: f64) -> Option<f64> {
        let a_minus_1: f64 = self
            .weighted_density
            .iter()
            .zip(&self.log_ratio)
            .map(|(wd, l)| wd * (alpha * l).exp_m1())
            .sum();
        (a_minus_1.is_finite() && a_minus_1 > -1.0 && a_minus_1 < 1e100).then(|| a_minus_1.ln_1p())
    }
}

fn is_integer_order(alpha: f64) -> bool {
    alpha.fract() == 0.0 && alpha <= 1e6
}

/// The RDP of one run of the Poisson-subsampled Gaussian at every order (`None` where an
/// order cannot be computed soundly; it is then left out, never guessed). Integer orders
/// use the exact sum, fractional ones share one quadrature table.
pub(crate) fn rdp_curve(q: f64, sigma: f64, orders: &[f64]) -> Vec<Option<f64>> {
    if q == 1.0 {
        return orders
            .iter()
            .map(|&a| Some(a / (2.0 * sigma * sigma)))
            .collect();
    }
    let alpha_max = orders
        .iter()
        .copied()
        .filter(|&a| !is_integer_order(a))
        .fold(f64::NEG_INFINITY, f64::max);
    let table = (alpha_max > 1.0).then(|| FractionalTable::new(q, sigma, alpha_max));
    orders
        .iter()
        .map(|&alpha| {
            let log_a = if is_integer_order(alpha) {
                log_a_int(q, sigma, alpha as u64)
            } else {
                table
                    .as_ref()
                    .and_then(|t| t.log_a(alpha))
                    .or_else(|| log_a_frac(q, sigma, alpha))?
            };
            finish(log_a, alpha)
        })
        .collect()
}

/// RDP = ln A_α / (α − 1), checked.
fn finish(log_a: f64, alpha: f64) -> Option<f64> {
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
    fn shared_table_agrees_with_the_per_order_quadrature() {
        for &(q, s) in &[(0.01, 1.0), (0.1, 0.5), (0.5, 2.0), (0.001, 5.0)] {
            let orders = [1.1, 1.5, 2.5, 4.7, 7.3, 10.9];
            for (a, r) in orders.iter().zip(rdp_curve(q, s, &orders)) {
                let single = finish(log_a_frac(q, s, *a).unwrap(), *a).unwrap();
                assert!(
                    (r.unwrap() - single).abs() <= 1e-9 * single + 1e-16,
                    "q={q} s={s} a={a}"
                );
            }
        }
    }

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
        let r = rdp_curve(q, s, &[3.999_999, 4.0, 4.000_001]);
        let (below, at, above) = (r[0].unwrap(), r[1].unwrap(), r[2].unwrap());
        assert!(below <= at * (1.0 + 1e-9) && at <= above * (1.0 + 1e-9));
        assert!((above - below) / at < 1e-4);
    }
}
