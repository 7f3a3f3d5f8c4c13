//! The discrete Gaussian mechanism's exact privacy curve (Canonne, Kamath & Steinke 2020,
//! "The Discrete Gaussian for Differential Privacy").
//!
//! N_Z(0, σ²) puts mass ∝ exp(−x²/(2σ²)) on every integer x. Added to an integer query whose
//! value moves by at most 1 (in one coordinate) between add/remove-one neighbours, the pair
//! to bound is P = N_Z(0, σ²), Q = N_Z(1, σ²) (remove) and (Q, P) (add). The reflection
//! x ↦ 1 − x maps one pair onto the other, so **both directions have the same curve**. The
//! privacy loss at an integer x drawn from P is `L(x) = (1 − 2x)/(2σ²)`, so
//! `δ(ε) = P(X ≤ x*) − e^ε P(X ≤ x* − 1)` with x* the largest integer of loss > ε.

use crate::curve::{Direction, PrivacyCurve};
use crate::error::{AccountingError, Result};
use crate::validate;

/// Largest σ the PLD and PRV accountants tabulate (≈ 3.9 million tail sums); the RDP
/// accountant has no limit.
pub(crate) const MAX_TABULATED_SIGMA: f64 = 1e5;

/// The discrete Gaussian mechanism N_Z(0, σ²) with L1 sensitivity 1 on an integer-valued
/// query (a histogram of counts under add/remove-one neighbours).
///
/// ```
/// use dp_accounting::DiscreteGaussian;
/// let dg = DiscreteGaussian::new(2.0)?;
/// // δ(ε) is the hockey-stick divergence; both directions are equal.
/// assert!(dg.delta_for_epsilon(1.0)? < 0.05);
/// # Ok::<(), dp_accounting::AccountingError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiscreteGaussian {
    sigma: f64,
}

impl DiscreteGaussian {
    /// Validates σ: a finite number > 0.
    pub fn new(sigma: f64) -> Result<Self> {
        Ok(Self {
            sigma: validate::sigma(sigma)?,
        })
    }

    /// σ.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The exact (ε, δ) curve of one run: δ(ε) = sup_S P(S) − e^ε Q(S), the same in both
    /// directions. Errors (`CannotBound`) for σ above 10⁵, whose tail sums are not tabulated.
    pub fn delta_for_epsilon(&self, eps: f64) -> Result<f64> {
        Ok(self.table()?.delta(eps))
    }

    /// The tail table of this σ.
    pub(crate) fn table(&self) -> Result<DiscreteGaussianTable> {
        DiscreteGaussianTable::new(self.sigma)
    }
}

/// ln P(X ≤ −j) for j = 0..=K, X ~ N_Z(0, σ²), summed from the far tail inwards (full
/// relative accuracy); beyond K every term underflows (mass below 1e-320).
#[derive(Clone, Debug)]
pub(crate) struct DiscreteGaussianTable {
    sigma: f64,
    /// `ln_tail[j]` = ln P(X ≤ −j) = ln P(X ≥ j).
    ln_tail: Vec<f64>,
    /// P(X = x) for x = 0..=K (symmetric).
    pmf: Vec<f64>,
}

impl DiscreteGaussianTable {
    pub(crate) fn new(sigma: f64) -> Result<Self> {
        validate::sigma(sigma)?;
        if sigma > MAX_TABULATED_SIGMA {
            return Err(AccountingError::CannotBound {
                accountant: "pld/prv",
                reason: format!(
                    "discrete Gaussian sigma = {sigma} is above {MAX_TABULATED_SIGMA:e}, whose \
                     exact tails are not tabulated; use the rdp accountant"
                ),
            });
        }
        // exp(−x²/(2σ²)) < e^{−745} underflows to 0 past x = σ·√1490.
        let k = (sigma * 1490f64.sqrt()).ceil() as usize + 1;
        let two_s2 = 2.0 * sigma * sigma;
        let w: Vec<f64> = (0..=k)
            .map(|x| (-((x * x) as f64) / two_s2).exp())
            .collect();
        // Σ_{x ≥ j} w_x from the far end; Z = 2·S(0) − w_0.
        let mut tail = vec![0.0; k + 2];
        for j in (0..=k).rev() {
            tail[j] = tail[j + 1] + w[j];
        }
        let z = 2.0 * tail[0] - w[0];
        let ln_z = z.ln();
        let ln_tail = tail[..=k].iter().map(|t| t.ln() - ln_z).collect();
        let pmf = w.iter().map(|v| v / z).collect();
        Ok(Self {
            sigma,
            ln_tail,
            pmf,
        })
    }

    /// Half-width K of the tabulated support [−K, K].
    pub(crate) fn half_width(&self) -> i64 {
        self.pmf.len() as i64 - 1
    }

    /// P(X = x).
    pub(crate) fn prob(&self, x: i64) -> f64 {
        self.pmf
            .get(x.unsigned_abs() as usize)
            .copied()
            .unwrap_or(0.0)
    }

    /// The privacy loss at x: (1 − 2x)/(2σ²).
    pub(crate) fn loss(&self, x: i64) -> f64 {
        (1.0 - 2.0 * x as f64) / (2.0 * self.sigma * self.sigma)
    }

    /// ln P(X ≥ j) for j ≥ 0.
    fn ln_upper(&self, j: i64) -> f64 {
        self.ln_tail
            .get(j as usize)
            .copied()
            .unwrap_or(f64::NEG_INFINITY)
    }

    /// ln P(X ≤ k), accurate in relative terms in the lower tail.
    fn ln_cdf(&self, k: i64) -> f64 {
        if k < 0 {
            self.ln_upper(-k)
        } else {
            (-self.ln_upper(k + 1).exp()).ln_1p()
        }
    }

    /// The exact δ(ε) (both directions).
    pub(crate) fn delta(&self, eps: f64) -> f64 {
        // Largest integer x with L(x) > ε ⇔ x < 1/2 − σ²ε. At a boundary the term with
        // L(x) = ε contributes 0, so rounding of x* does not change the value.
        let bound = 0.5 - self.sigma * self.sigma * eps;
        let k = self.half_width();
        if bound <= -(k as f64) {
            return 0.0; // every integer of loss > ε is beyond the table: mass < 1e-320
        }
        if bound > (k + 2) as f64 {
            // Every tabulated output has loss > ε: δ = 1 − e^ε (P(X ≤ ∞) − e^ε·1).
            return (-eps.exp_m1()).clamp(0.0, 1.0);
        }
        let x_star = bound.ceil() as i64 - 1;
        crate::special::exp_diff(self.ln_cdf(x_star), eps + self.ln_cdf(x_star - 1)).clamp(0.0, 1.0)
    }

    /// A loss range [t_lo, t_hi] with P(Y < t_lo) ≤ η and P(Y > t_hi) ≤ η.
    pub(crate) fn loss_range(&self, eta: f64) -> (f64, f64) {
        let ln_eta = eta.ln();
        // Smallest j ≥ 1 with P(X ≥ j) ≤ η (the table ends where the tail underflows).
        let j = (1..self.ln_tail.len())
            .find(|&j| self.ln_tail[j] <= ln_eta)
            .unwrap_or(self.ln_tail.len()) as i64;
        // P(X ≤ −j) ≤ η and Y > L(1 − j) ⇔ X ≤ −j; likewise Y < L(j − 1) ⇔ X ≥ j.
        (self.loss(j - 1), self.loss(1 - j))
    }
}

impl PrivacyCurve for DiscreteGaussianTable {
    fn delta_for_epsilon(&self, _dir: Direction, eps: f64) -> f64 {
        self.delta(eps)
    }

    fn loss_range(&self, _dir: Direction, eta: f64) -> (f64, f64) {
        DiscreteGaussianTable::loss_range(self, eta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// δ(ε) by direct summation over the support, for comparison.
    fn direct(sigma: f64, eps: f64) -> f64 {
        let w = |x: i64| (-((x * x) as f64) / (2.0 * sigma * sigma)).exp();
        let z: f64 = (-2000..=2000).map(w).sum();
        (-2000..=2000)
            .map(|x| (w(x) - eps.exp() * w(x - 1)).max(0.0) / z)
            .sum()
    }

    #[test]
    fn curve_matches_direct_summation() {
        for &s in &[0.5, 1.0, 3.7, 10.0] {
            let t = DiscreteGaussianTable::new(s).unwrap();
            for &eps in &[-1.0, 0.0, 0.1, 0.5, 1.0, 2.0, 4.0] {
                let (a, b) = (t.delta(eps), direct(s, eps));
                assert!(
                    (a - b).abs() <= 1e-13 + 1e-9 * b,
                    "σ={s} ε={eps}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn loss_range_leaves_at_most_eta_outside() {
        let t = DiscreteGaussianTable::new(2.0).unwrap();
        let (lo, hi) = t.loss_range(1e-20);
        assert!(lo < hi);
        // Mass of losses above hi and below lo, summed directly.
        let half = t.half_width();
        let above: f64 = (-half..=half)
            .filter(|&x| t.loss(x) > hi)
            .map(|x| t.prob(x))
            .sum();
        let below: f64 = (-half..=half)
            .filter(|&x| t.loss(x) < lo)
            .map(|x| t.prob(x))
            .sum();
        assert!(above <= 1e-20 && below <= 1e-20, "{above} {below}");
        let total: f64 = (-half..=half).map(|x| t.prob(x)).sum();
        assert!((total - 1.0).abs() < 1e-14);
    }

    #[test]
    fn tiny_sigma_is_answered_by_every_accountant() {
        use crate::{Accountant, DpEvent, PldAccountant, PrvAccountant, RdpAccountant};
        // σ = 0.01: the loss at 0 is 1/(2σ²) = 5000 and every other output underflows.
        let e = DpEvent::discrete_gaussian(0.01).unwrap();
        let pld = PldAccountant::default().epsilon(&e, 1e-5).unwrap().upper;
        assert!((pld - 5000.0).abs() < 1.0, "{pld}");
        let rdp = RdpAccountant::default().epsilon(&e, 1e-5).unwrap().upper;
        assert!(rdp >= pld - 1e-9);
        let prv = PrvAccountant::default().epsilon(&e, 1e-5);
        assert!(prv.map(|b| b.upper >= pld - 1.0).unwrap_or(true));
    }

    #[test]
    fn huge_sigma_is_refused_not_approximated() {
        assert!(
            DiscreteGaussian::new(1e6)
                .unwrap()
                .delta_for_epsilon(0.1)
                .is_err()
        );
        assert!(DiscreteGaussian::new(0.0).is_err());
        assert!(DiscreteGaussian::new(f64::NAN).is_err());
    }
}
