//! Special functions in log space: log-sum-exp, signed log sums, and the normal
//! distribution's CDF and survival function accurate far into the tails.
//!
//! `libm` (a port of musl) supplies `erf`/`erfc`, which are accurate to about one ulp and keep
//! their *relative* accuracy in the tail down to the smallest normal double (x ≈ 26.5). Past
//! that [`log_erfc`] switches to the continued fraction of the scaled complementary error
//! function, so logarithms of tail probabilities stay exact to a few ulps for any argument.

use std::f64::consts::{PI, SQRT_2};

/// `ln(e^a + e^b)` without overflow; `-inf` is the log of zero.
#[inline]
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// `ln(Σ e^{x_i})` of a slice; `-inf` for an empty slice or one of all `-inf`.
pub(crate) fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m == f64::INFINITY {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// A real number kept as a sign and the logarithm of its magnitude, so that sums of terms
/// of very different sizes and of both signs (the fractional-order RDP series) neither
/// overflow nor lose their sign.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignedLog {
    positive: bool,
    log_abs: f64,
}

impl SignedLog {
    /// Zero.
    pub(crate) const ZERO: Self = Self {
        positive: true,
        log_abs: f64::NEG_INFINITY,
    };

    /// Adds `sign · e^{log_abs}`.
    pub(crate) fn add(self, positive: bool, log_abs: f64) -> Self {
        if log_abs == f64::NEG_INFINITY {
            return self;
        }
        if self.log_abs == f64::NEG_INFINITY {
            return Self { positive, log_abs };
        }
        if self.positive == positive {
            return Self {
                positive,
                log_abs: log_add(self.log_abs, log_abs),
            };
        }
        // Opposite signs: the larger magnitude keeps its sign.
        let (big, small, sign) = if self.log_abs >= log_abs {
            (self.log_abs, log_abs, self.positive)
        } else {
            (log_abs, self.log_abs, positive)
        };
        let diff = small - big; // <= 0
        if diff == 0.0 {
            return Self::ZERO;
        }
        Self {
            positive: sign,
            log_abs: big + (-diff.exp()).ln_1p(),
        }
    }

    /// The sum of two signed values.
    pub(crate) fn plus(self, other: SignedLog) -> Self {
        self.add(other.positive, other.log_abs)
    }

    /// `ln` of the value, or `None` if the value is not positive.
    pub(crate) fn ln(self) -> Option<f64> {
        (self.positive && self.log_abs > f64::NEG_INFINITY).then_some(self.log_abs)
    }
}

/// `erfcx(x) = e^{x²} erfc(x)` for `x >= 6`, by the continued fraction
/// `erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`, evaluated with
/// the modified Lentz method to full double precision.
fn erfcx_large(x: f64) -> f64 {
    debug_assert!(x >= 6.0);
    // f = b0 + a1/(b1 + a2/(b2 + ...)) with b_k = x and a_k = k/2.
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
        if (delta - 1.0).abs() < 1e-17 {
            break;
        }
    }
    1.0 / (f * PI.sqrt())
}

/// `ln(erfc(x))`, accurate for every finite `x` (also where `erfc` underflows).
pub(crate) fn log_erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 10.0 {
        libm::erfc(x).ln()
    } else if x == f64::INFINITY {
        f64::NEG_INFINITY
    } else {
        erfcx_large(x).ln() - x * x
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn log_erfc_matches_erfc_where_representable_and_is_continuous_at_the_switch() {
        for &x in &[-3.0, -0.5, 0.0, 0.3, 1.0, 4.0, 9.0, 9.999, 20.0] {
            let direct = libm::erfc(x).ln();
            assert!(
                (log_erfc(x) - direct).abs() <= 1e-14 * direct.abs().max(1e-300),
                "x = {x}"
            );
        }
        // Past underflow, compare with the asymptotic series to 6 terms (error < 1e-15 at x=40).
        let x: f64 = 40.0;
        let x2 = x * x;
        let series = 1.0 - 1.0 / (2.0 * x2) + 3.0 / (4.0 * x2 * x2) - 15.0 / (8.0 * x2.powi(3))
            + 105.0 / (16.0 * x2.powi(4))
            - 945.0 / (32.0 * x2.powi(5));
        let expected = -x2 - (x * PI.sqrt()).ln() + series.ln();
        assert!(rel(log_erfc(x), expected) < 1e-15);
    }

    #[test]
    fn signed_log_sums_keep_their_sign() {
        // 3 - 2 = 1
        let s = SignedLog::ZERO.add(true, 3f64.ln()).add(false, 2f64.ln());
        assert!(s.ln().unwrap().abs() < 1e-15);
        // 2 - 3 = -1: not positive
        let s = SignedLog::ZERO.add(true, 2f64.ln()).add(false, 3f64.ln());
        assert!(s.ln().is_none());
        // -1 + 2.5 = 1.5
        let s = s.add(true, 2.5f64.ln());
        assert!(rel(s.ln().unwrap(), 1.5f64.ln()) < 1e-14);
    }

    #[test]
    fn log_helpers() {
        assert!(rel(log_add(1.0, 2.0), (1f64.exp() + 2f64.exp()).ln()) < 1e-15);
        assert_eq!(log_add(f64::NEG_INFINITY, 1.5), 1.5);
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
        assert!(rel(norm_cdf(-30.0), norm_sf(30.0)) < 1e-15);
    }
}
