//! Exact mechanisms on integer data: the discrete Gaussian and a DP histogram built on it.
//!
//! * [`DiscreteGaussianSampler`]: exact N_Z(0, σ²) (Canonne, Kamath & Steinke 2020,
//!   "The Discrete Gaussian for Differential Privacy"), from the [`DpRng`] with rational
//!   arithmetic only.
//! * [`discrete_gaussian_histogram`]: private counts, recorded in a [`PrivacyLedger`] as one
//!   [`DpEvent::DiscreteGaussian`] before they are returned.
//! * [`bernoulli_exp_minus`] and [`discrete_laplace`]: the exact building blocks, public so
//!   they can be tested and reused.

mod discrete_gaussian;
mod exact;

pub use discrete_gaussian::DiscreteGaussianSampler;

use dp_accounting::{DpEvent, PrivacyLedger};

use crate::error::DpOptimError;
use crate::rng::DpRng;

/// One draw of Bernoulli(exp(−n/d)), exactly (CKS 2020, Algorithm 1); `d ≥ 1`.
pub fn bernoulli_exp_minus(n: u64, d: u64, rng: &mut DpRng) -> Result<bool, DpOptimError> {
    if d == 0 {
        return Err(DpOptimError::InvalidParameter {
            field: "denominator",
            value: "0".into(),
            expected: "an integer >= 1",
        });
    }
    Ok(exact::bernoulli_exp_neg(
        &exact::big(n),
        &exact::big(d),
        rng,
    ))
}

/// One draw of the discrete Laplace distribution of scale t ≥ 1, P(Y = y) ∝ exp(−|y|/t) on
/// ℤ, exactly (CKS 2020, Algorithm 2).
pub fn discrete_laplace(t: u64, rng: &mut DpRng) -> Result<i64, DpOptimError> {
    if t == 0 {
        return Err(DpOptimError::InvalidParameter {
            field: "scale",
            value: "0".into(),
            expected: "an integer >= 1",
        });
    }
    let (negative, y) = exact::discrete_laplace(&exact::big(t), rng);
    exact::to_i64(negative, &y)
}

/// A differentially private histogram: `counts[i] + Xᵢ` with Xᵢ independent exact discrete
/// Gaussians N_Z(0, σ²), recorded in `ledger` under `label` as one
/// [`DpEvent::DiscreteGaussian`] `{ sigma }`.
///
/// The event is recorded **before** any noise is drawn; if recording fails the error is
/// returned and nothing is released. If a noisy count overflows `i64` after recording, an
/// error is returned and nothing is released (the ledger entry stays: conservative).
///
/// Errors ([`DpOptimError::InvalidParameter`]): `sigma` not finite and > 0; `counts` empty
/// or holding a count above `i64::MAX`; a noisy count outside `i64`.
///
/// Guarantee: with a secure [`DpRng`] and a list of codes (the histogram's bins) that is
/// public, i.e. fixed independently of the data, the returned vector is exactly as private
/// as the discrete Gaussian mechanism with sensitivity 1, for the individuals behind the
/// counts, under the add/remove-one neighbouring relation in which one record changes one
/// count by exactly 1 (both directions). Its (ε, δ) is what any accountant of
/// `dp-accounting` reports for the recorded event (PLD: the exact curve, discretised
/// pessimistically). With an insecure (seeded) [`DpRng`] there is no guarantee.
///
/// ```
/// use dp_accounting::{Accountant, PldAccountant, PrivacyLedger};
/// use dp_optim::DpRng;
/// use dp_optim::mechanisms::discrete_gaussian_histogram;
/// let mut ledger = PrivacyLedger::new();
/// let mut rng = DpRng::insecure_seeded(1);
/// let noisy = discrete_gaussian_histogram(&[120, 7, 0], 5.0, &mut rng, &mut ledger, "labels")?;
/// assert_eq!(noisy.len(), 3);
/// let eps = ledger.epsilon(&PldAccountant::default(), 1e-5)?.upper;
/// assert!(eps > 0.72 && eps < 0.73);
/// # Ok::<(), dp_optim::DpOptimError>(())
/// ```
pub fn discrete_gaussian_histogram(
    counts: &[u64],
    sigma: f64,
    rng: &mut DpRng,
    ledger: &mut PrivacyLedger,
    label: &str,
) -> Result<Vec<i64>, DpOptimError> {
    let sampler = DiscreteGaussianSampler::new(sigma)?;
    if counts.is_empty() {
        return Err(DpOptimError::InvalidParameter {
            field: "counts",
            value: "[]".into(),
            expected: "at least one count",
        });
    }
    if let Some((i, c)) = counts
        .iter()
        .enumerate()
        .find(|(_, c)| **c > i64::MAX as u64)
    {
        return Err(DpOptimError::InvalidParameter {
            field: "counts",
            value: format!("{c} at index {i}"),
            expected: "counts <= i64::MAX",
        });
    }
    ledger.record(label, DpEvent::discrete_gaussian(sigma)?)?;
    counts
        .iter()
        .map(|&c| {
            let noise = sampler.sample(rng)?;
            (c as i64)
                .checked_add(noise)
                .ok_or_else(|| DpOptimError::InvalidParameter {
                    field: "counts",
                    value: format!("{c} + noise {noise}"),
                    expected: "noisy counts that fit in i64",
                })
        })
        .collect()
}
