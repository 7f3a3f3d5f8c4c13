//! The pessimistic connect-the-dots discretisation of one mechanism's privacy loss
//! (Doroshenko, Ghazi, Kamath, Kumar & Manurangsi 2022, "Connect the Dots: Tighter
//! Discrete Approximations of Privacy Loss Distributions").
//!
//! Given the exact curve δ(ε) at the grid points εᵢ = i·h, it builds the distribution on
//! {εᵢ} ∪ {+∞} whose curve equals δ at every grid point and interpolates linearly in e^ε
//! between them. δ is convex in e^ε, so the interpolation lies above it everywhere: the
//! discrete distribution dominates the mechanism, and so does any composition of such
//! distributions (dominating pairs compose).

use crate::compose::GridPmf;
use crate::curve::{Direction, PrivacyCurve};

/// The grid range [i_lo, i_hi] (in units of h) that the connect-the-dots distribution of
/// one direction spans: the loss range outside which each tail holds at most `eta`. Any
/// range is sound (mass above goes to +∞, mass below is folded into the lowest point by the
/// exact chord); `eta` only trades grid size for tightness.
pub(crate) fn grid_range(m: &dyn PrivacyCurve, dir: Direction, h: f64, eta: f64) -> (i64, i64) {
    let (eps_lo, eps_hi) = m.loss_range(dir, eta);
    let lo = (eps_lo / h).floor() as i64;
    let hi = ((eps_hi / h).ceil() as i64).max(lo + 1);
    (lo, hi)
}

/// The connect-the-dots distribution of one direction on the grid of mesh `h`, and its
/// mass at +∞.
pub(crate) fn connect_dots(
    m: &dyn PrivacyCurve,
    dir: Direction,
    h: f64,
    eta: f64,
) -> (GridPmf, f64) {
    let (lo, hi) = grid_range(m, dir, h, eta);
    let deltas: Vec<f64> = (lo..=hi)
        .map(|i| m.delta_for_epsilon(dir, i as f64 * h))
        .collect();
    let len = deltas.len();
    let e_h = h.exp();
    let em1 = h.exp_m1();
    // Δ_k = δ_k − δ_{k+1} ≥ 0; interior masses p_k = (e^h Δ_{k−1} − Δ_k)/(e^h − 1); the top
    // point has Δ_top = 0 (the curve is flat at the mass at infinity above it).
    let diff = |k: usize| -> f64 {
        if k + 1 < len {
            (deltas[k] - deltas[k + 1]).max(0.0)
        } else {
            0.0
        }
    };
    let mut probs = vec![0.0; len];
    for (k, p) in probs.iter_mut().enumerate().skip(1) {
        *p = ((e_h * diff(k - 1) - diff(k)) / em1).max(0.0);
    }
    let inf_mass = deltas[len - 1];
    let rest: f64 = probs[1..].iter().sum();
    // Convexity makes this non-negative; rounding of nearly equal slopes can push it a few
    // ulps below zero, and the excess mass is kept rather than removed (it only adds loss).
    probs[0] = (1.0 - inf_mass - rest).max(0.0);
    (GridPmf { offset: lo, probs }, inf_mass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discrete::DiscreteLoss;
    use crate::mechanism::SubsampledGaussian;

    #[test]
    fn reproduces_the_curve_at_grid_points_and_dominates_between() {
        let m = SubsampledGaussian::new(0.05, 0.9).unwrap();
        let h = 1e-2;
        for dir in Direction::BOTH {
            let (pmf, inf_mass) = connect_dots(&m, dir, h, 1e-30);
            let d = DiscreteLoss {
                lo_value: pmf.offset as f64 * h,
                h,
                probs: pmf.probs.clone(),
                inf_mass,
            };
            let total: f64 = pmf.probs.iter().sum::<f64>() + inf_mass;
            // Where the curve is within rounding of 1 − e^ε, the interior masses can exceed
            // 1 − P(∞) by a few ulps of the slopes; that excess is kept (it only adds loss).
            assert!((total - 1.0).abs() < 1e-9, "{dir:?} total {total}");
            for i in [0i64, 3, 10, 50, 150] {
                let eps = i as f64 * h;
                let exact = m.delta_for_epsilon(dir, eps);
                let got = d.delta(eps);
                assert!(
                    (got - exact).abs() <= 1e-12 + 1e-9 * exact,
                    "{dir:?} {eps}: {got} {exact}"
                );
                let mid = eps + 0.5 * h;
                assert!(d.delta(mid) >= m.delta_for_epsilon(dir, mid) - 1e-15);
            }
        }
    }
}
