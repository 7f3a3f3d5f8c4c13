//! The privacy-loss-distribution accountant.

mod connect_dots;

use serde::{Deserialize, Serialize};

use crate::accountant::{Accountant, Bound};
use crate::compose::{GridPmf, compose, fast_len};
use crate::curve::Direction;
use crate::curve::PrivacyCurve;
use crate::discrete::DiscreteLoss;
use crate::error::{AccountingError, Result};
use crate::event::DpEvent;
use crate::mechanism::Mechanism;
use crate::{gaussian, validate};

/// Privacy-loss-distribution accountant (Koskela et al. 2020; Doroshenko et al. 2022), as in
/// Google's `dp_accounting` with `pessimistic_estimate=True` and `use_connect_dots=True`.
///
/// Each mechanism's privacy loss is discretised on the grid `value_discretization_interval
/// · ℤ` with the pessimistic connect-the-dots construction, the distributions are composed
/// by FFT, and tails the transform cannot hold (at most `tail_mass_truncation` in all) are
/// moved to +∞ or up to the window, never dropped: the returned ε and δ are upper bounds on
/// the exact ones, for both directions of the add/remove-one relation (their maximum).
/// Compositions of plain Gaussian mechanisms (q = 1) are answered exactly in closed form.
///
/// When a composition would need more than `max_grid_points` grid points, the interval is
/// widened (by the smallest factor that fits) rather than running out of memory; the bound
/// stays valid and only loosens.
///
/// ```
/// use dp_accounting::{Accountant, DpEvent, PldAccountant, RdpAccountant};
/// let event = DpEvent::poisson_sampled_gaussian(0.01, 1.0)?.self_composed(1_000)?;
/// let pld = PldAccountant::default().epsilon(&event, 1e-5)?.upper;
/// let rdp = RdpAccountant::default().epsilon(&event, 1e-5)?.upper;
/// assert!(pld < rdp);
/// # Ok::<(), dp_accounting::AccountingError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PldAccountant {
    /// Grid spacing of privacy-loss values (default 1e-4, as dp_accounting).
    pub value_discretization_interval: f64,
    /// Total tail mass the composition may move to +∞ (default 1e-15, as dp_accounting).
    pub tail_mass_truncation: f64,
    /// Largest FFT length before the interval is widened (default 2²³).
    pub max_grid_points: usize,
}

impl Default for PldAccountant {
    fn default() -> Self {
        Self {
            value_discretization_interval: 1e-4,
            tail_mass_truncation: 1e-15,
            max_grid_points: 1 << 23,
        }
    }
}

/// Each mechanism's exact privacy curve: the subsampled Gaussian's closed form, the
/// discrete Gaussian's tail table (its exact PMF, both directions equal).
pub(crate) fn curves(mechanisms: &[(Mechanism, u64)]) -> Result<Vec<(Box<dyn PrivacyCurve>, u64)>> {
    mechanisms
        .iter()
        .map(|(m, c)| {
            let curve: Box<dyn PrivacyCurve> = match m {
                Mechanism::SubsampledGaussian(g) => Box::new(*g),
                Mechanism::DiscreteGaussian(d) => Box::new(d.table()?),
            };
            Ok((curve, *c))
        })
        .collect()
}

/// Candidate Chernoff orders λ (in units of 1/loss) for the composition window.
fn chernoff_orders() -> impl Iterator<Item = f64> {
    (0..=32).map(|i| 10f64.powf(-4.0 + i as f64 / 4.0))
}

/// ln Σᵢ pᵢ e^{s·i} over a grid distribution, exactly, by running products from the end
/// where the exponential is largest (so underflow only ever hits negligible terms).
fn log_mgf(pmf: &GridPmf, s: f64) -> f64 {
    let len = pmf.probs.len();
    if len == 0 {
        return f64::NEG_INFINITY;
    }
    let top = pmf.offset + len as i64 - 1;
    let ratio = (-s.abs()).exp();
    let mut factor = 1.0;
    let mut sum = 0.0;
    if s >= 0.0 {
        for &p in pmf.probs.iter().rev() {
            sum += p * factor;
            factor *= ratio;
        }
        sum.ln() + s * top as f64
    } else {
        for &p in &pmf.probs {
            sum += p * factor;
            factor *= ratio;
        }
        sum.ln() + s * pmf.offset as f64
    }
}

impl PldAccountant {
    fn validated(&self) -> Result<()> {
        validate::positive(
            "value_discretization_interval",
            self.value_discretization_interval,
        )?;
        validate::open_interval(
            "tail_mass_truncation",
            self.tail_mass_truncation,
            0.0,
            1e-3,
            "a number in (0, 1e-3)",
        )?;
        validate::max_grid_points(self.max_grid_points)?;
        Ok(())
    }

    /// The composed privacy loss distribution of one direction, with the interval widened
    /// as needed to fit `max_grid_points`.
    pub(crate) fn composed(
        &self,
        mechanisms: &[(Mechanism, u64)],
        dir: Direction,
    ) -> Result<DiscreteLoss> {
        let curves = curves(mechanisms)?;
        let mechanisms: Vec<(&dyn PrivacyCurve, u64)> =
            curves.iter().map(|(c, n)| (c.as_ref(), *n)).collect();
        let mut h = self.value_discretization_interval;
        let total_runs: f64 = mechanisms.iter().map(|(_, c)| *c as f64).sum();
        // Mass per run beyond each end of the single-run grid; it is moved to +∞ or folded
        // into the lowest point (both pessimistic), so it only costs ≤ 1e-3 of the tail budget.
        let eta = 1e-3 * self.tail_mass_truncation / total_runs;
        loop {
            // A single run's grid wider than the limit is coarsened before it is built.
            let widest = mechanisms
                .iter()
                .map(|(m, _)| {
                    let (lo, hi) = connect_dots::grid_range(*m, dir, h, eta);
                    (hi - lo + 1) as f64
                })
                .fold(0.0, f64::max);
            if widest > self.max_grid_points as f64 {
                h *= (widest / self.max_grid_points as f64).ceil();
                continue;
            }
            let parts: Vec<(GridPmf, f64, u64)> = mechanisms
                .iter()
                .map(|(m, c)| {
                    let (pmf, inf) = connect_dots::connect_dots(*m, dir, h, eta);
                    (pmf, inf, *c)
                })
                .collect();
            let (lb, ub) = self.window(&parts, h);
            let needed = (ub - lb + 1) as usize;
            if needed > self.max_grid_points {
                h *= (needed as f64 / self.max_grid_points as f64).ceil();
                continue;
            }
            let n = fast_len(needed);
            let refs: Vec<(&GridPmf, u64)> = parts.iter().map(|(p, _, c)| (p, *c)).collect();
            let mut probs = compose(&refs, lb, n);
            probs.iter_mut().for_each(|p| *p = p.max(0.0));
            // P(no +∞ in any run) = Π (1 − inf_j)^{count_j}.
            let log_finite: f64 = parts
                .iter()
                .map(|(_, inf, c)| *c as f64 * (-inf).ln_1p())
                .sum();
            let inf_mass = -log_finite.exp_m1() + 0.5 * self.tail_mass_truncation;
            return Ok(DiscreteLoss {
                lo_value: lb as f64 * h,
                h,
                probs,
                inf_mass,
            });
        }
    }

    /// The index window [lb, ub] of the composition outside which the finite mass is at most
    /// `tail_mass_truncation / 2` on each side (Chernoff bounds over a grid of orders).
    fn window(&self, parts: &[(GridPmf, f64, u64)], h: f64) -> (i64, i64) {
        let trivial_lo: i64 = parts.iter().map(|(p, _, c)| p.offset * *c as i64).sum();
        let trivial_hi: i64 = parts
            .iter()
            .map(|(p, _, c)| (p.offset + p.probs.len() as i64 - 1) * *c as i64)
            .sum();
        let log_2_over_tail = (2.0 / self.tail_mass_truncation).ln();
        let mut upper = f64::INFINITY;
        let mut lower = f64::NEG_INFINITY;
        for lambda in chernoff_orders() {
            let log_mgf_total = |sign: f64| -> f64 {
                parts
                    .iter()
                    .map(|(p, _, c)| *c as f64 * log_mgf(p, sign * lambda * h))
                    .sum()
            };
            upper = upper.min((log_mgf_total(1.0) + log_2_over_tail) / lambda);
            lower = lower.max(-(log_mgf_total(-1.0) + log_2_over_tail) / lambda);
        }
        let ub = ((upper / h).ceil() as i64).clamp(trivial_lo, trivial_hi);
        let lb = ((lower / h).floor() as i64).clamp(trivial_lo, ub);
        (lb, ub)
    }

    /// The larger of `f` over the two directions' composed distributions (the event must
    /// spend something; empty events are answered earlier).
    ///
    /// The add direction is first composed on a grid 10× coarser, in parallel with the
    /// remove direction: that is a valid (pessimistic) bound for the add direction, so when
    /// it is already no larger than the remove answer, the maximum is the remove answer and
    /// the fine add composition is skipped. (On every point of our test grid the remove
    /// direction dominates; this halves the work without assuming it.)
    fn worst_direction(
        &self,
        mechanisms: &[(Mechanism, u64)],
        f: impl Fn(&DiscreteLoss) -> Result<f64> + Sync,
    ) -> Result<f64> {
        let coarse = Self {
            value_discretization_interval: 10.0 * self.value_discretization_interval,
            ..self.clone()
        };
        let (remove, add_bound) = std::thread::scope(|s| {
            let add = s.spawn(|| {
                coarse
                    .composed(mechanisms, Direction::Add)
                    .and_then(|d| f(&d))
            });
            let remove = self
                .composed(mechanisms, Direction::Remove)
                .and_then(|d| f(&d));
            (remove, add.join().expect("PLD worker thread panicked"))
        });
        let remove = remove?;
        match add_bound {
            Ok(bound) if bound <= remove => Ok(remove),
            _ => {
                let add = self
                    .composed(mechanisms, Direction::Add)
                    .and_then(|d| f(&d))?;
                Ok(remove.max(add))
            }
        }
    }
}

impl Accountant for PldAccountant {
    fn name(&self) -> &'static str {
        "pld"
    }

    fn epsilon(&self, event: &DpEvent, delta: f64) -> Result<Bound> {
        validate::delta(delta)?;
        self.validated()?;
        let mechanisms = event.mechanisms()?;
        if let Some(mu) = gaussian::composed_mu(&mechanisms) {
            return Ok(Bound::upper_only(gaussian::epsilon(mu, delta)));
        }
        let eps = self.worst_direction(&mechanisms, |d| {
            d.epsilon(delta)
                .map(|e| e.max(0.0))
                .ok_or_else(|| AccountingError::CannotBound {
                    accountant: "pld",
                    reason: format!(
                        "delta = {delta:e} is below the mass set aside at infinity ({:e}); \
                         lower tail_mass_truncation",
                        d.inf_mass
                    ),
                })
        })?;
        Ok(Bound::upper_only(eps))
    }

    fn delta(&self, event: &DpEvent, epsilon: f64) -> Result<Bound> {
        validate::epsilon(epsilon)?;
        self.validated()?;
        let mechanisms = event.mechanisms()?;
        if let Some(mu) = gaussian::composed_mu(&mechanisms) {
            return Ok(Bound::upper_only(gaussian::delta(mu, epsilon)));
        }
        let d = self.worst_direction(&mechanisms, |d| Ok(d.delta(epsilon).min(1.0)))?;
        Ok(Bound::upper_only(d))
    }
}
