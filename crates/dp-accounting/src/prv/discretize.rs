//! Gopi et al.'s discretisation of one privacy random variable: bucket masses on the mesh,
//! conditioned on the domain, and the shift that gives the discrete variable the same mean
//! as the continuous one.

use crate::compose::GridPmf;
use crate::curve::Direction;
use crate::discrete_gaussian::DiscreteGaussianTable;
use crate::mechanism::SubsampledGaussian;

/// Noise standard deviations past which the Gaussian mass (< 1e-300) is ignored when
/// integrating moments.
const SUPPORT_SIGMAS: f64 = 38.0;

/// A discretised PRV: masses at `(offset + k)·h + shift`.
pub(crate) struct DiscretePrv {
    pub pmf: GridPmf,
    pub shift: f64,
}

/// The range of outputs x (under the direction's first distribution) that carry mass.
fn output_support(m: &SubsampledGaussian, dir: Direction) -> (f64, f64) {
    let s = m.noise_multiplier();
    match dir {
        Direction::Remove => (-SUPPORT_SIGMAS * s, 1.0 + SUPPORT_SIGMAS * s),
        Direction::Add => (-SUPPORT_SIGMAS * s, SUPPORT_SIGMAS * s),
    }
}

/// Discretises the PRV of `m` in direction `dir` on the mesh `h` over the index domain
/// `[-k, k]` (values `i·h`), bucket `i` holding the mass of `(i·h − h/2, i·h + h/2]`,
/// conditioned on the loss range outside which each tail holds at most `eta`.
pub(crate) fn discretize(
    m: &SubsampledGaussian,
    dir: Direction,
    h: f64,
    k: i64,
    eta: f64,
) -> DiscretePrv {
    let (t_lo, t_hi) = m.loss_range(dir, eta);
    let i_min = ((t_lo / h - 0.5).floor() as i64).clamp(-k, k);
    let i_max = ((t_hi / h + 0.5).ceil() as i64).clamp(i_min, k);
    // Edges (i − 1/2)·h for i in i_min..=i_max+1.
    let edges: Vec<(f64, f64)> = (i_min..=i_max + 1)
        .map(|i| m.loss_cdf_sf(dir, (i as f64 - 0.5) * h))
        .collect();
    let mut probs: Vec<f64> = edges
        .windows(2)
        .map(|w| {
            let ((cl, sl), (cr, sr)) = (w[0], w[1]);
            // Difference whichever tail keeps relative accuracy.
            if cr < 0.5 { cr - cl } else { sl - sr }.max(0.0)
        })
        .collect();
    let mass: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= mass);
    let mean_discrete: f64 = probs
        .iter()
        .enumerate()
        .map(|(j, p)| (i_min + j as i64) as f64 * h * p)
        .sum();
    let a = (i_min as f64 - 0.5) * h;
    let b = (i_max as f64 + 0.5) * h;
    let mean_continuous = truncated_moment(m, dir, a, b) / mass;
    DiscretePrv {
        pmf: GridPmf {
            offset: i_min,
            probs,
        },
        shift: mean_continuous - mean_discrete,
    }
}

/// The same discretisation for the discrete Gaussian, whose PRV is itself discrete (mass
/// P(X = x) at the loss (1 − 2x)/(2σ²), both directions equal): each support point's mass
/// goes to the bucket holding its loss, conditioned on the same range, and the shift makes
/// the mean equal to the conditioned exact mean Σ P(x)·L(x)/mass. Gopi et al.'s error
/// analysis (mean-preserving rounding to within h/2, then concentration) does not assume a
/// continuous PRV, so their bounds hold unchanged.
pub(crate) fn discretize_discrete_gaussian(
    t: &DiscreteGaussianTable,
    h: f64,
    k: i64,
    eta: f64,
) -> DiscretePrv {
    let (t_lo, t_hi) = t.loss_range(eta);
    let i_min = ((t_lo / h - 0.5).floor() as i64).clamp(-k, k);
    let i_max = ((t_hi / h + 0.5).ceil() as i64).clamp(i_min, k);
    let a = (i_min as f64 - 0.5) * h;
    let b = (i_max as f64 + 0.5) * h;
    let mut probs = vec![0.0; (i_max - i_min + 1) as usize];
    let (mut mass, mut moment) = (0.0, 0.0);
    let half = t.half_width();
    for x in -half..=half {
        let loss = t.loss(x);
        if loss <= a || loss > b {
            continue;
        }
        let p = t.prob(x);
        let i = ((loss / h - 0.5).ceil() as i64).clamp(i_min, i_max);
        probs[(i - i_min) as usize] += p;
        mass += p;
        moment += p * loss;
    }
    probs.iter_mut().for_each(|p| *p /= mass);
    let mean_discrete: f64 = probs
        .iter()
        .enumerate()
        .map(|(j, p)| (i_min + j as i64) as f64 * h * p)
        .sum();
    DiscretePrv {
        pmf: GridPmf {
            offset: i_min,
            probs,
        },
        shift: moment / mass - mean_discrete,
    }
}

/// E[Y · 1{a < Y ≤ b}] for the PRV Y of `m` in direction `dir`, by composite
/// Gauss–Legendre quadrature over the output x (where the integrand is smooth).
pub(crate) fn truncated_moment(m: &SubsampledGaussian, dir: Direction, a: f64, b: f64) -> f64 {
    let (x_lo, x_hi) = output_support(m, dir);
    let ln_1mq = m.ln_one_minus_q();
    let x_at = |t: f64| {
        if t <= ln_1mq {
            f64::NEG_INFINITY
        } else {
            m.output_at_loss(t)
        }
    };
    let (lo, hi, sign) = match dir {
        Direction::Remove => (x_at(a), x_at(b), 1.0),
        Direction::Add => (x_at(-b), x_at(-a), -1.0),
    };
    let lo = lo.max(x_lo);
    let hi = hi.min(x_hi);
    if hi <= lo {
        return 0.0;
    }
    let s = m.noise_multiplier();
    let width = (s / 8.0).min(s * s / 4.0).max(1e-6);
    let total: f64 = crate::special::gauss_legendre_nodes(lo, hi, width)
        .map(|(x, w)| w * m.loss_at_output(x) * m.output_density(dir, x))
        .sum();
    sign * total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_range_moment_is_the_kl_divergence() {
        // E_P[L] = KL(P‖Q) ≥ 0 for remove; E_Q[−L] = KL(Q‖P) ≥ 0 for add. For q = 1 both
        // equal 1/(2σ²).
        let g = SubsampledGaussian::new(1.0, 0.7).unwrap();
        for dir in Direction::BOTH {
            let kl = truncated_moment(&g, dir, -1e9, 1e9);
            assert!((kl - 1.0 / (2.0 * 0.49)).abs() < 1e-12, "{dir:?}: {kl}");
        }
        let m = SubsampledGaussian::new(0.1, 1.0).unwrap();
        for dir in Direction::BOTH {
            assert!(truncated_moment(&m, dir, -1e9, 1e9) > 0.0);
        }
    }

    #[test]
    fn discrete_mean_is_shifted_onto_the_continuous_mean_within_half_a_bucket() {
        let m = SubsampledGaussian::new(0.05, 0.8).unwrap();
        let h = 1e-3;
        for dir in Direction::BOTH {
            let d = discretize(&m, dir, h, 20_000, 1e-30);
            let total: f64 = d.pmf.probs.iter().sum();
            assert!((total - 1.0).abs() < 1e-12);
            assert!(d.shift.abs() < h / 2.0, "{dir:?} {}", d.shift);
        }
    }
}
