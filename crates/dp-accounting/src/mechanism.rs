//! The Poisson-subsampled Gaussian mechanism's exact privacy curves.
//!
//! With μ₀ = N(0, σ²), μ₁ = N(1, σ²) and the mixture P = (1−q)μ₀ + qμ₁, the two dominating
//! pairs of the add/remove relation are **remove** = (P, μ₀) and **add** = (μ₀, P). The
//! privacy loss of the remove pair at an output x is
//! `L(x) = ln(1 − q + q·exp((2x − 1)/(2σ²)))`; the add pair's loss is −L(x) with x ~ μ₀.
//! Everything here is closed form in the normal CDF, evaluated in a way that keeps relative
//! accuracy in the tails.

use serde::{Deserialize, Serialize};

use crate::curve::{Direction, PrivacyCurve};
use crate::error::Result;
use crate::special::{bisect, exp_diff, log_norm_cdf, log_norm_sf, norm_cdf, norm_cdf_sf, norm_sf};
use crate::validate;

/// The Gaussian mechanism with noise multiplier σ on a Poisson sample of rate q
/// (q = 1 is the plain Gaussian mechanism).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubsampledGaussian {
    sample_rate: f64,
    noise_multiplier: f64,
}

impl SubsampledGaussian {
    /// Validates q ∈ (0, 1] and σ > 0.
    pub fn new(sample_rate: f64, noise_multiplier: f64) -> Result<Self> {
        Ok(Self {
            sample_rate: validate::sample_rate(sample_rate)?,
            noise_multiplier: validate::noise_multiplier(noise_multiplier)?,
        })
    }

    /// q.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// σ.
    pub fn noise_multiplier(&self) -> f64 {
        self.noise_multiplier
    }

    /// ln(1 − q): the smallest privacy loss of the remove pair (−∞ when q = 1).
    pub(crate) fn ln_one_minus_q(&self) -> f64 {
        (-self.sample_rate).ln_1p()
    }

    /// The output x at which the remove pair's privacy loss equals `t`
    /// (`t > ln(1 − q)`): x = σ²·ln((e^t − 1 + q)/q) + 1/2.
    pub(crate) fn output_at_loss(&self, t: f64) -> f64 {
        let q = self.sample_rate;
        let s2 = self.noise_multiplier * self.noise_multiplier;
        let z = if t > 1.0 {
            // ln(e^t − (1 − q)) − ln q, with e^t factored out to avoid overflow.
            t + (-(1.0 - q) * (-t).exp()).ln_1p() - q.ln()
        } else {
            (t.exp_m1() / q).ln_1p()
        };
        s2 * z + 0.5
    }

    /// The remove pair's privacy loss at output x: ln(1 − q + q·e^{(2x−1)/(2σ²)}).
    pub(crate) fn loss_at_output(&self, x: f64) -> f64 {
        let q = self.sample_rate;
        let s2 = self.noise_multiplier * self.noise_multiplier;
        let u = (2.0 * x - 1.0) / (2.0 * s2);
        if q == 1.0 {
            return u;
        }
        // ln((1−q) + q e^u) = ln(1−q) + ln(1 + e^{u + ln q − ln(1−q)})
        self.ln_one_minus_q() + crate::special::log1p_exp(u + q.ln() - self.ln_one_minus_q())
    }

    /// The hockey-stick divergence δ(ε) = sup_S P(S) − e^ε Q(S) of one direction's pair:
    /// the exact (ε, δ) curve of one run of the mechanism. Valid for every real ε.
    pub fn delta_for_epsilon(&self, direction: Direction, eps: f64) -> f64 {
        let q = self.sample_rate;
        let sigma = self.noise_multiplier;
        let d = match direction {
            Direction::Remove => {
                if eps <= self.ln_one_minus_q() {
                    return -eps.exp_m1();
                }
                let x = self.output_at_loss(eps);
                // P(L > ε) − e^ε μ₀(L > ε) = q Φ̄((x−1)/σ) − (e^ε − 1 + q) Φ̄(x/σ), in log
                // space so that e^ε never overflows.
                let ln_coef = if eps > 1.0 {
                    eps + (-(1.0 - q) * (-eps).exp()).ln_1p()
                } else {
                    (eps.exp_m1() + q).ln()
                };
                exp_diff(
                    q.ln() + log_norm_sf((x - 1.0) / sigma),
                    ln_coef + log_norm_sf(x / sigma),
                )
            }
            Direction::Add => {
                if q < 1.0 && eps >= -self.ln_one_minus_q() {
                    return 0.0;
                }
                let x = self.output_at_loss(-eps);
                // μ₀(L < −ε) − e^ε P(L < −ε)
                //   = (1 − e^ε(1−q)) Φ(x/σ) − e^ε q Φ((x−1)/σ)
                exp_diff(
                    (-eps.exp() * (1.0 - q)).ln_1p() + log_norm_cdf(x / sigma),
                    eps + q.ln() + log_norm_cdf((x - 1.0) / sigma),
                )
            }
        };
        d.clamp(0.0, 1.0)
    }

    /// P(Y ≤ t) and P(Y > t) for the privacy random variable Y of one direction
    /// (the privacy loss at an output drawn from the pair's first distribution). Both are
    /// returned so the caller can difference whichever keeps relative accuracy.
    pub(crate) fn loss_cdf_sf(&self, direction: Direction, t: f64) -> (f64, f64) {
        let q = self.sample_rate;
        let sigma = self.noise_multiplier;
        match direction {
            Direction::Remove => {
                if t <= self.ln_one_minus_q() {
                    return (0.0, 1.0);
                }
                let x = self.output_at_loss(t);
                let (c0, s0) = norm_cdf_sf(x / sigma);
                let (c1, s1) = norm_cdf_sf((x - 1.0) / sigma);
                ((1.0 - q) * c0 + q * c1, (1.0 - q) * s0 + q * s1)
            }
            Direction::Add => {
                // Y = −L(X), X ~ μ₀: Y ≤ t ⇔ L(X) ≥ −t ⇔ X ≥ x(−t).
                if q < 1.0 && t >= -self.ln_one_minus_q() {
                    return (1.0, 0.0);
                }
                let x = self.output_at_loss(-t);
                let (c, s) = norm_cdf_sf(x / sigma);
                (s, c)
            }
        }
    }

    /// A loss range [t_lo, t_hi] outside which the privacy random variable of `direction`
    /// has at most `eta` mass on each side: P(Y < t_lo) ≤ η and P(Y > t_hi) ≤ η.
    pub(crate) fn loss_range(&self, direction: Direction, eta: f64) -> (f64, f64) {
        let q = self.sample_rate;
        let sigma = self.noise_multiplier;
        let span = 40.0 * sigma + 1.0;
        match direction {
            Direction::Remove => {
                let upper =
                    |x: f64| (1.0 - q) * norm_sf(x / sigma) + q * norm_sf((x - 1.0) / sigma);
                let lower =
                    |x: f64| (1.0 - q) * norm_cdf(x / sigma) + q * norm_cdf((x - 1.0) / sigma);
                let x_hi = bisect(|x| upper(x) <= eta, -span, span);
                let x_lo = -bisect(|x| lower(-x) <= eta, -span, span);
                (self.loss_at_output(x_lo), self.loss_at_output(x_hi))
            }
            Direction::Add => {
                let x_hi = bisect(|x| norm_sf(x / sigma) <= eta, -span, span);
                (-self.loss_at_output(x_hi), -self.loss_at_output(-x_hi))
            }
        }
    }

    /// The density of the output X under the pair's first distribution (P for remove,
    /// μ₀ for add), used to integrate moments of the privacy loss.
    pub(crate) fn output_density(&self, direction: Direction, x: f64) -> f64 {
        let sigma = self.noise_multiplier;
        let phi = |u: f64| (-0.5 * u * u).exp() / (sigma * (2.0 * std::f64::consts::PI).sqrt());
        match direction {
            Direction::Remove => {
                let q = self.sample_rate;
                (1.0 - q) * phi(x / sigma) + q * phi((x - 1.0) / sigma)
            }
            Direction::Add => phi(x / sigma),
        }
    }
}

impl PrivacyCurve for SubsampledGaussian {
    fn delta_for_epsilon(&self, dir: Direction, eps: f64) -> f64 {
        SubsampledGaussian::delta_for_epsilon(self, dir, eps)
    }

    fn loss_range(&self, dir: Direction, eta: f64) -> (f64, f64) {
        SubsampledGaussian::loss_range(self, dir, eta)
    }
}

/// One mechanism of a [`crate::DpEvent`], as the accountants see it (see
/// [`crate::DpEvent::mechanisms`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// The (possibly Poisson-subsampled) Gaussian mechanism of a DP-SGD step.
    SubsampledGaussian(SubsampledGaussian),
    /// The discrete Gaussian mechanism on an integer query of sensitivity 1.
    DiscreteGaussian(crate::DiscreteGaussian),
}

impl Mechanism {
    /// The subsampled Gaussian, if this is one.
    pub fn as_subsampled_gaussian(&self) -> Option<&SubsampledGaussian> {
        match self {
            Self::SubsampledGaussian(m) => Some(m),
            Self::DiscreteGaussian(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_curve_is_the_analytic_one() {
        // q = 1: δ(ε) = Φ(−εσ + 1/(2σ)) − e^ε Φ(−εσ − 1/(2σ)), both directions.
        let m = SubsampledGaussian::new(1.0, 0.8).unwrap();
        for &eps in &[0.0, 0.5, 2.0, 6.0] {
            let s: f64 = 0.8;
            let exact = norm_cdf(-eps * s + 0.5 / s) - eps.exp() * norm_cdf(-eps * s - 0.5 / s);
            for d in Direction::BOTH {
                let got = m.delta_for_epsilon(d, eps);
                assert!(
                    ((got - exact) / exact).abs() < 1e-12,
                    "{d:?} {eps}: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn loss_inverse_round_trips() {
        let m = SubsampledGaussian::new(0.01, 1.3).unwrap();
        for &x in &[-3.0, 0.0, 0.5, 2.0, 10.0] {
            let t = m.loss_at_output(x);
            assert!(
                (m.output_at_loss(t) - x).abs() < 1e-9 * (1.0 + x.abs()),
                "{x}"
            );
        }
    }

    #[test]
    fn delta_at_eps_zero_is_total_variation_and_curves_are_monotone() {
        let m = SubsampledGaussian::new(0.1, 1.0).unwrap();
        for d in Direction::BOTH {
            let mut prev = 1.0;
            for i in -20..60 {
                let eps = i as f64 * 0.05;
                let v = m.delta_for_epsilon(d, eps);
                assert!(v <= prev + 1e-15 && v >= 0.0, "{d:?} at {eps}");
                prev = v;
            }
        }
        // Total variation is symmetric.
        let r = m.delta_for_epsilon(Direction::Remove, 0.0);
        let a = m.delta_for_epsilon(Direction::Add, 0.0);
        assert!((r - a).abs() < 1e-15);
    }

    #[test]
    fn loss_range_leaves_at_most_eta_outside() {
        let m = SubsampledGaussian::new(0.01, 0.9).unwrap();
        for d in Direction::BOTH {
            let (lo, hi) = m.loss_range(d, 1e-20);
            assert!(lo < hi);
            assert!(m.loss_cdf_sf(d, lo).0 <= 1e-20 * (1.0 + 1e-9), "{d:?}");
            assert!(m.loss_cdf_sf(d, hi).1 <= 1e-20 * (1.0 + 1e-9), "{d:?}");
        }
    }

    #[test]
    fn cdf_and_sf_are_complementary() {
        let m = SubsampledGaussian::new(0.2, 0.9).unwrap();
        for d in Direction::BOTH {
            for &t in &[-2.0, -0.1, 0.0, 0.05, 0.5, 3.0] {
                let (c, s) = m.loss_cdf_sf(d, t);
                assert!((c + s - 1.0).abs() < 1e-15, "{d:?} {t}");
            }
        }
    }
}
