//! The Rényi-DP accountant.

mod conversion;
mod subsampled_gaussian;

use serde::{Deserialize, Serialize};

use crate::accountant::{Accountant, Bound};
use crate::error::{AccountingError, Result};
use crate::event::DpEvent;
use crate::mechanism::Mechanism;
use crate::validate;

/// The default RDP orders: the union of Opacus's and dp_accounting's defaults (so this
/// accountant is never looser than either) plus a few more large orders, which only
/// tighten small-ε answers.
pub fn default_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + x as f64 / 10.0).collect();
    orders.extend((11..=63).map(f64::from));
    orders.extend([
        72.0, 80.0, 96.0, 112.0, 128.0, 160.0, 192.0, 256.0, 384.0, 512.0, 768.0, 1024.0, 2048.0,
        4096.0,
    ]);
    orders
}

/// The RDP of one run of `m` at each order (`None` where a series did not converge).
///
/// The discrete Gaussian N_Z(0, σ²) with sensitivity 1 is ρ-zCDP with ρ = 1/(2σ²)
/// (Canonne, Kamath & Steinke 2020, their concentrated-DP theorem for the discrete
/// Gaussian), i.e. its RDP of order α is
/// at most α/(2σ²) in both directions, the continuous Gaussian's value: that bound is used
/// (conservative; the exact discrete RDP is slightly smaller).
pub(crate) fn mechanism_rdp(m: &Mechanism, orders: &[f64]) -> Vec<Option<f64>> {
    match m {
        Mechanism::SubsampledGaussian(m) => {
            subsampled_gaussian::rdp_curve(m.sample_rate(), m.noise_multiplier(), orders)
        }
        Mechanism::DiscreteGaussian(d) => {
            let rho = 1.0 / (2.0 * d.sigma() * d.sigma());
            orders.iter().map(|a| Some(a * rho)).collect()
        }
    }
}

/// Rényi-DP accountant for compositions of Poisson-subsampled Gaussian mechanisms
/// (add/remove-one neighbours, Poisson sampling) and discrete Gaussian mechanisms.
///
/// RDP at integer orders is exact (a binomial sum evaluated as `ln(1 + Σ…)` so that tiny
/// values keep full relative precision); at fractional orders it uses Mironov et al.'s
/// series with the signs of the binomial coefficients kept. RDP composes additively and is
/// converted to (ε, δ) with the improved conversion of Balle et al. 2020. RDP bounds are
/// valid but looser than [`crate::PrvAccountant`] and [`crate::PldAccountant`].
///
/// ```
/// use dp_accounting::{Accountant, DpEvent, RdpAccountant};
/// let event = DpEvent::poisson_sampled_gaussian(0.01, 1.0)?.self_composed(10_000)?;
/// let eps = RdpAccountant::default().epsilon(&event, 1e-5)?.upper;
/// assert!(eps > 6.0 && eps < 7.0); // Opacus: 6.7127…
/// # Ok::<(), dp_accounting::AccountingError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdpAccountant {
    orders: Vec<f64>,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self {
            orders: default_orders(),
        }
    }
}

impl RdpAccountant {
    /// An accountant with the [`default_orders`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An accountant with your own orders (each finite and > 1; at least one).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self> {
        if orders.is_empty() {
            return Err(AccountingError::InvalidParameter {
                field: "orders",
                value: "[]".into(),
                expected: "at least one order > 1",
            });
        }
        for &a in &orders {
            validate::order(a)?;
        }
        Ok(Self { orders })
    }

    /// The orders this accountant optimises over.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The RDP of `event` at each order (`None` where an order's series did not converge;
    /// such an order is never used).
    pub fn rdp(&self, event: &DpEvent) -> Result<Vec<Option<f64>>> {
        for &a in &self.orders {
            validate::order(a)?;
        }
        let mut total: Vec<Option<f64>> = vec![Some(0.0); self.orders.len()];
        for (m, count) in event.mechanisms()? {
            let curve = mechanism_rdp(&m, &self.orders);
            for (t, r) in total.iter_mut().zip(curve) {
                *t = t.zip(r).map(|(t, r)| t + r * count as f64);
            }
        }
        Ok(total)
    }

    /// The smallest ε at δ and the order that achieves it.
    pub fn epsilon_and_order(&self, event: &DpEvent, delta: f64) -> Result<(f64, f64)> {
        validate::delta(delta)?;
        let rdp = self.rdp(event)?;
        conversion::epsilon(&self.orders, &rdp, delta).ok_or_else(|| self.no_order())
    }

    /// The smallest δ at ε and the order that achieves it.
    pub fn delta_and_order(&self, event: &DpEvent, epsilon: f64) -> Result<(f64, f64)> {
        validate::epsilon(epsilon)?;
        let rdp = self.rdp(event)?;
        conversion::delta(&self.orders, &rdp, epsilon).ok_or_else(|| self.no_order())
    }

    fn no_order(&self) -> AccountingError {
        AccountingError::CannotBound {
            accountant: "rdp",
            reason: "no order gave a finite RDP value; add smaller orders".into(),
        }
    }
}

impl Accountant for RdpAccountant {
    fn name(&self) -> &'static str {
        "rdp"
    }

    fn epsilon(&self, event: &DpEvent, delta: f64) -> Result<Bound> {
        self.epsilon_and_order(event, delta)
            .map(|(eps, _)| Bound::upper_only(eps))
    }

    fn delta(&self, event: &DpEvent, epsilon: f64) -> Result<Bound> {
        self.delta_and_order(event, epsilon)
            .map(|(d, _)| Bound::upper_only(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_orders_contain_both_peers_defaults() {
        let ours = default_orders();
        let has = |a: f64| ours.iter().any(|&o| (o - a).abs() < 1e-12);
        for x in 1..100 {
            assert!(has(1.0 + x as f64 / 10.0));
        }
        for a in 11..=63 {
            assert!(has(a as f64));
        }
        for a in [128.0, 256.0, 512.0, 1024.0] {
            assert!(has(a));
        }
    }

    #[test]
    fn gaussian_mechanism_rdp_is_alpha_over_two_sigma_squared() {
        let acc = RdpAccountant::with_orders(vec![2.0, 3.5]).unwrap();
        let r = acc.rdp(&DpEvent::gaussian(2.0).unwrap()).unwrap();
        assert_eq!(r, vec![Some(2.0 / 8.0), Some(3.5 / 8.0)]);
    }

    #[test]
    fn discrete_gaussian_rdp_is_its_zcdp_bound() {
        let acc = RdpAccountant::with_orders(vec![2.0, 3.5]).unwrap();
        let r = acc.rdp(&DpEvent::discrete_gaussian(2.0).unwrap()).unwrap();
        assert_eq!(r, vec![Some(2.0 / 8.0), Some(3.5 / 8.0)]);
    }

    #[test]
    fn empty_composition_spends_nothing() {
        let acc = RdpAccountant::default();
        let (eps, _) = acc
            .epsilon_and_order(&DpEvent::composed(vec![]), 1e-5)
            .unwrap();
        assert_eq!(eps, 0.0);
    }

    #[test]
    fn bad_orders_are_rejected() {
        assert!(RdpAccountant::with_orders(vec![]).is_err());
        assert!(RdpAccountant::with_orders(vec![1.0]).is_err());
        assert!(RdpAccountant::with_orders(vec![f64::INFINITY]).is_err());
    }
}
