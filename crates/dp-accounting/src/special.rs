//! Special functions: log-sum-exp, the normal distribution's CDF and survival function
//! (from `libm`'s `erfc`, a port of musl's, accurate to about one ulp and keeping its
//! relative accuracy deep into the tails), and composite Gauss–Legendre quadrature.

use std::f64::consts::SQRT_2;

/// `ln(Σ e^{x_i})` of a slice; `-inf` for an empty slice or one of all `-inf`.
pub(crate) fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m.is_infinite() {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// `erfcx(x) = e^{x²} erfc(x)` for `x >= 6`, by the continued fraction
/// `erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`, evaluated with
/// the modified Lentz method to full double precision.
fn erfcx_large(x: f64) -> f64 {
    debug_assert!(x >= 6.0);
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..200 {
        let a = k as f64 * 0.5;
        d = x + a * d;
        if d == 0.0 {
            d = tiny;
        }
        c = x + a / c;
        if c == 0.0 {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    1.0 / (f * std::f64::consts::PI.sqrt())
}

/// `ln(erfc(x))`, accurate for every `x`, also where `erfc` underflows (x > 26.5).
pub(crate) fn log_erfc(x: f64) -> f64 {
    if x < 10.0 {
        libm::erfc(x).ln()
    } else if x == f64::INFINITY {
        f64::NEG_INFINITY
    } else {
        erfcx_large(x).ln() - x * x
    }
}

/// `ln Φ(x)`, accurate for every `x`.
#[inline]
pub(crate) fn log_norm_cdf(x: f64) -> f64 {
    log_erfc(-x / SQRT_2) - std::f64::consts::LN_2
}

/// `ln(1 − Φ(x))`, accurate for every `x`.
#[inline]
pub(crate) fn log_norm_sf(x: f64) -> f64 {
    log_erfc(x / SQRT_2) - std::f64::consts::LN_2
}

/// `a − b` for `a = e^{ln_a} ≥ b = e^{ln_b} ≥ 0` given as logarithms, without overflow or
/// underflow of the intermediate terms: `e^{ln_a}·(1 − e^{ln_b − ln_a})`, clamped at 0.
#[inline]
pub(crate) fn exp_diff(ln_a: f64, ln_b: f64) -> f64 {
    if ln_a == f64::NEG_INFINITY {
        return 0.0;
    }
    (ln_a.exp() * -(ln_b - ln_a).exp_m1()).max(0.0)
}

/// The standard normal CDF Φ(x), with full relative accuracy in the lower tail.
#[inline]
pub(crate) fn norm_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / SQRT_2)
}

/// The standard normal survival function 1 − Φ(x), with full relative accuracy in the
/// upper tail.
#[inline]
pub(crate) fn norm_sf(x: f64) -> f64 {
    0.5 * libm::erfc(x / SQRT_2)
}

/// (Φ(x), 1 − Φ(x)) from one `erfc` call: the smaller of the two is computed directly (full
/// relative accuracy in the tail), the larger as its complement.
#[inline]
pub(crate) fn norm_cdf_sf(x: f64) -> (f64, f64) {
    if x < 0.0 {
        let c = norm_cdf(x);
        (c, 1.0 - c)
    } else {
        let s = norm_sf(x);
        (1.0 - s, s)
    }
}

/// `ln(e^x − 1)` for `x > 0`, without overflow for large `x` or cancellation for small.
#[inline]
pub(crate) fn log_expm1(x: f64) -> f64 {
    if x > 30.0 {
        x + (-(-x).exp()).ln_1p()
    } else {
        x.exp_m1().ln()
    }
}

/// `ln(1 + e^x)` (softplus), stable for every `x`.
#[inline]
pub(crate) fn log1p_exp(x: f64) -> f64 {
    if x > 36.0 {
        x + (-x).exp()
    } else {
        x.exp().ln_1p()
    }
}

/// The smallest x in [lo, hi] where the monotone predicate `holds` (false below, true
/// above), by bisection to the last representable bit; returns a point where it holds
/// (`hi` if it holds nowhere else in the bracket).
pub(crate) fn bisect(holds: impl Fn(f64) -> bool, mut lo: f64, mut hi: f64) -> f64 {
    if holds(lo) {
        return lo;
    }
    for _ in 0..2100 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Positive nodes and weights of the 10-point Gauss–Legendre rule on [−1, 1].
const GAUSS_LEGENDRE_10: [(f64, f64); 5] = [
    (0.148_874_338_981_631_2, 0.295_524_224_714_752_9),
    (0.433_395_394_129_247_2, 0.269_266_719_309_996_4),
    (0.679_409_568_299_024_4, 0.219_086_362_515_982_04),
    (0.865_063_366_688_984_5, 0.149_451_349_150_580_6),
    (0.973_906_528_517_171_7, 0.066_671_344_308_688_14),
];

/// The nodes and weights of composite 10-point Gauss–Legendre quadrature on [lo, hi] with
/// panels no wider than `max_width`: ∫ f ≈ Σ wᵢ f(xᵢ). Exact for polynomials of degree 19
/// on each panel, so smooth integrands converge to machine precision.
pub(crate) fn gauss_legendre_nodes(
    lo: f64,
    hi: f64,
    max_width: f64,
) -> impl Iterator<Item = (f64, f64)> {
    let panels = ((hi - lo) / max_width).ceil().max(1.0) as usize;
    let w = (hi - lo) / panels as f64;
    (0..panels).flat_map(move |p| {
        let c = lo + (p as f64 + 0.5) * w;
        GAUSS_LEGENDRE_10
            .into_iter()
            .flat_map(move |(node, weight)| {
                [
                    (c - 0.5 * w * node, 0.5 * w * weight),
                    (c + 0.5 * w * node, 0.5 * w * weight),
                ]
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn log_erfc_is_accurate_on_both_sides_of_the_switch_and_past_underflow() {
        for x in [-3.0, 0.3, 4.0, 9.999, 10.0, 20.0] {
            let direct = libm::erfc(x).ln();
            assert!(
                (log_erfc(x) - direct).abs() <= 1e-14 * direct.abs(),
                "x = {x}"
            );
        }
        // Past underflow: the asymptotic series to six terms (error < 1e-16 at x = 40).
        let x: f64 = 40.0;
        let x2 = x * x;
        let series = 1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2) - 15.0 / (8.0 * x2.powi(3))
            + 105.0 / (16.0 * x2.powi(4))
            - 945.0 / (32.0 * x2.powi(5));
        let expected = -x2 - (x * std::f64::consts::PI.sqrt()).ln() + series.ln();
        assert!(rel(log_erfc(x), expected) < 1e-15);
        assert!(rel(log_norm_cdf(-40.0), log_norm_sf(40.0)) < 1e-15);
        assert!(rel(exp_diff(3f64.ln(), 2f64.ln()), 1.0) < 1e-15);
        assert_eq!(exp_diff(800.0, 801.0), 0.0);
    }

    #[test]
    fn quadrature_integrates_a_gaussian_to_machine_precision() {
        let total: f64 = gauss_legendre_nodes(-40.0, 40.0, 0.25)
            .map(|(x, w)| w * (-0.5 * x * x).exp())
            .sum();
        assert!(rel(total, (2.0 * std::f64::consts::PI).sqrt()) < 1e-14);
    }

    #[test]
    fn log_helpers() {
        assert!(
            rel(
                log_sum_exp(&[1.0, 2.0, 3.0]),
                (1f64.exp() + 2f64.exp() + 3f64.exp()).ln()
            ) < 1e-15
        );
        assert!(rel(log_expm1(1e-10), (1e-10f64).exp_m1().ln()) < 1e-15);
        assert!(rel(log_expm1(100.0), 100.0) < 1e-15);
        assert!(rel(log1p_exp(-50.0), (-50f64).exp()) < 1e-15);
        assert!(rel(norm_sf(-1.0), norm_cdf(1.0)) < 1e-15);
        for x in [-30.0, -3.0, 0.0, 0.5, 9.0] {
            let (c, s) = norm_cdf_sf(x);
            assert!(
                rel(c, norm_cdf(x)) < 1e-15 && rel(s, norm_sf(x)) < 1e-15,
                "{x}"
            );
        }
        assert!(rel(norm_cdf(-30.0), norm_sf(30.0)) < 1e-15);
    }
}
