//! Noise calibration: the σ that reaches a target ε, and the most steps a budget allows.

use serde::{Deserialize, Serialize};

use crate::RdpAccountant;
use crate::accountant::Accountant;
use crate::error::{AccountingError, Result};
use crate::event::DpEvent;
use crate::validate;

/// Smallest and largest noise multipliers calibration searches.
const SIGMA_RANGE: (f64, f64) = (1e-2, 1e4);

/// The outcome of a noise calibration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseCalibration {
    /// The calibrated noise multiplier σ: its ε (upper bound) never exceeds the target.
    pub noise_multiplier: f64,
    /// The ε (accountant's upper bound) that σ reaches at the requested δ.
    pub epsilon: f64,
    /// A σ below which the target is exceeded: the true optimum lies in
    /// (`noise_multiplier_below`, `noise_multiplier`].
    pub noise_multiplier_below: f64,
    /// How many queries the search made to the given accountant (the cheap RDP queries
    /// that choose its starting point are not counted).
    pub evaluations: usize,
}

/// The outcome of a step-count calibration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepsCalibration {
    /// The largest number of steps whose ε stays within the target.
    pub steps: u64,
    /// The ε (upper bound) after that many steps.
    pub epsilon: f64,
    /// How many accountant queries the search made.
    pub evaluations: usize,
}

/// The σ for `steps` DP-SGD steps at sampling rate q that reaches `target_epsilon` at δ,
/// to a relative tolerance of 1e-5 (see [`calibrate_noise`]).
///
/// ```
/// use dp_accounting::{Accountant, DpEvent, RdpAccountant, calibrate_noise_multiplier};
/// let acc = RdpAccountant::default();
/// let c = calibrate_noise_multiplier(&acc, 2.0, 1e-5, 0.01, 10_000)?;
/// let spent = acc
///     .epsilon(&DpEvent::poisson_sampled_gaussian(0.01, c.noise_multiplier)?.self_composed(10_000)?, 1e-5)?
///     .upper;
/// assert!(spent <= 2.0 && spent > 1.99);
/// # Ok::<(), dp_accounting::AccountingError>(())
/// ```
pub fn calibrate_noise_multiplier<A: Accountant + ?Sized>(
    accountant: &A,
    target_epsilon: f64,
    delta: f64,
    sample_rate: f64,
    steps: u64,
) -> Result<NoiseCalibration> {
    validate::sample_rate(sample_rate)?;
    validate::steps(steps)?;
    calibrate_noise(
        accountant,
        |sigma| DpEvent::poisson_sampled_gaussian(sample_rate, sigma)?.self_composed(steps),
        target_epsilon,
        delta,
        1e-5,
    )
}

/// The smallest σ (up to `relative_tolerance`) whose event `event_for(σ)` is
/// (`target_epsilon`, δ)-DP according to `accountant`'s upper bound.
///
/// ε is assumed non-increasing in σ. The search brackets σ in [0.01, 10⁴], then narrows
/// the bracket by regula falsi on ln ε versus ln σ (Illinois variant) until its ends are
/// within `relative_tolerance`; the answer is the bracket's upper end, whose ε has been
/// computed and is ≤ the target. It never returns a σ that exceeds the target.
pub fn calibrate_noise<A, F>(
    accountant: &A,
    event_for: F,
    target_epsilon: f64,
    delta: f64,
    relative_tolerance: f64,
) -> Result<NoiseCalibration>
where
    A: Accountant + ?Sized,
    F: Fn(f64) -> Result<DpEvent>,
{
    validate::target_epsilon(target_epsilon)?;
    validate::delta(delta)?;
    validate::positive("relative_tolerance", relative_tolerance)?;
    // Start from the cheap RDP answer (PRV and PLD are tighter, so their σ is a little
    // smaller); the bracket search verifies both ends whatever the start.
    let rdp = RdpAccountant::default();
    let start = if accountant.name() == "rdp" {
        1.0
    } else {
        search(&rdp, &event_for, target_epsilon, delta, 1e-3, 1.0)
            .map(|c| c.noise_multiplier)
            .unwrap_or(1.0)
    };
    search(
        accountant,
        &event_for,
        target_epsilon,
        delta,
        relative_tolerance,
        start,
    )
}

/// Brackets the target from `start` with geometrically growing steps, then refines.
fn search<A: Accountant + ?Sized>(
    accountant: &A,
    event_for: &dyn Fn(f64) -> Result<DpEvent>,
    target_epsilon: f64,
    delta: f64,
    relative_tolerance: f64,
    start: f64,
) -> Result<NoiseCalibration> {
    let mut evaluations = 0;
    let mut eps_at = |sigma: f64| -> Result<f64> {
        evaluations += 1;
        Ok(accountant.epsilon(&event_for(sigma)?, delta)?.upper)
    };
    // Bracket: lo exceeds the target, hi meets it. Steps grow geometrically from 5%.
    let f0 = eps_at(start)?;
    let (mut lo, mut hi, mut f_lo, mut f_hi) = (start, start, f0, f0);
    let mut factor: f64 = 1.05;
    if f0 <= target_epsilon {
        loop {
            lo = (hi / factor).max(SIGMA_RANGE.0);
            if lo >= hi {
                return Err(AccountingError::Calibration(format!(
                    "target_epsilon = {target_epsilon} is met by every noise_multiplier >= {}; \
                     no smaller one was searched",
                    SIGMA_RANGE.0
                )));
            }
            f_lo = eps_at(lo)?;
            if f_lo > target_epsilon {
                break;
            }
            hi = lo;
            f_hi = f_lo;
            factor = factor * factor;
        }
    } else {
        loop {
            hi = (lo * factor).min(SIGMA_RANGE.1);
            if hi <= lo {
                return Err(AccountingError::Calibration(format!(
                    "target_epsilon = {target_epsilon} is not reached by any noise_multiplier <= {}",
                    SIGMA_RANGE.1
                )));
            }
            f_hi = eps_at(hi)?;
            if f_hi <= target_epsilon {
                break;
            }
            lo = hi;
            f_lo = f_hi;
            factor = factor * factor;
        }
    }
    let (s, f) = refine(
        (lo.ln(), f_lo),
        (hi.ln(), f_hi),
        target_epsilon,
        0.45 * relative_tolerance.ln_1p(),
        |x_lo, x_hi| x_hi - x_lo <= relative_tolerance.ln_1p(),
        Some,
        |x| eps_at(x.exp()),
    )?;
    Ok(NoiseCalibration {
        noise_multiplier: s.1.exp(),
        epsilon: f.1,
        noise_multiplier_below: s.0.exp(),
        evaluations,
    })
}

/// The largest number of steps at sampling rate q and noise multiplier σ whose ε stays
/// within `target_epsilon` at δ.
///
/// ```
/// use dp_accounting::{RdpAccountant, max_steps};
/// let s = max_steps(&RdpAccountant::default(), 1.0, 0.01, 2.0, 1e-5)?;
/// assert!(s.epsilon <= 2.0 && s.steps > 100);
/// # Ok::<(), dp_accounting::AccountingError>(())
/// ```
pub fn max_steps<A: Accountant + ?Sized>(
    accountant: &A,
    noise_multiplier: f64,
    sample_rate: f64,
    target_epsilon: f64,
    delta: f64,
) -> Result<StepsCalibration> {
    validate::target_epsilon(target_epsilon)?;
    validate::delta(delta)?;
    let step = DpEvent::poisson_sampled_gaussian(sample_rate, noise_multiplier)?;
    let mut evaluations = 0;
    let mut eps_at = |t: u64| -> Result<f64> {
        evaluations += 1;
        Ok(accountant
            .epsilon(&step.clone().self_composed(t)?, delta)?
            .upper)
    };
    let f1 = eps_at(1)?;
    if f1 > target_epsilon {
        return Err(AccountingError::Calibration(format!(
            "a single step already spends epsilon = {f1} > target_epsilon = {target_epsilon}"
        )));
    }
    // Exponential search for a step count that exceeds the target.
    let (mut lo, mut f_lo) = (1u64, f1);
    let mut hi = 2u64;
    let f_hi = loop {
        let f = eps_at(hi)?;
        if f > target_epsilon {
            break f;
        }
        lo = hi;
        f_lo = f;
        if hi >= 1 << 40 {
            return Err(AccountingError::Calibration(format!(
                "more than 2^40 steps fit in target_epsilon = {target_epsilon}"
            )));
        }
        hi *= 2;
    };
    // Here ε is increasing in x = ln T: lo meets the target, hi exceeds it. Reuse the
    // root finder on the mirrored problem (it expects the exceeding end first).
    let (x, f) = refine(
        ((hi as f64).ln(), f_hi),
        ((lo as f64).ln(), f_lo),
        target_epsilon,
        0.0,
        |a, b| (a.exp().round() - b.exp().round()).abs() <= 1.0,
        |x: f64| {
            let t = x.exp().round();
            Some(t.ln())
        },
        |x| eps_at(x.exp().round() as u64),
    )?;
    Ok(StepsCalibration {
        steps: x.1.exp().round() as u64,
        epsilon: f.1,
        evaluations,
    })
}

/// Narrows a bracket `(x_exceeds, f) , (x_meets, f)` of the target by regula falsi on
/// `ln f` (Illinois variant, with bisection when interpolation stalls, and probes kept
/// `min_step` inside the bracket) until `done`.
/// `snap` maps a candidate onto the search lattice (identity for reals, integer steps for
/// step counts); candidates that snap onto an end are replaced by the (snapped) midpoint.
/// Returns the final ends as ((x_exceeds, x_meets), (f_exceeds, f_meets)).
fn refine(
    exceeds: (f64, f64),
    meets: (f64, f64),
    target: f64,
    min_step: f64,
    done: impl Fn(f64, f64) -> bool,
    snap: impl Fn(f64) -> Option<f64>,
    mut eval: impl FnMut(f64) -> Result<f64>,
) -> Result<((f64, f64), (f64, f64))> {
    let g = |f: f64| f.max(1e-300).ln() - target.ln();
    let (mut xa, mut fa) = exceeds;
    let (mut xb, mut fb) = meets;
    let (mut ga, mut gb) = (g(fa), g(fb));
    let mut last_side = 0i8;
    let mut stalls = 0;
    for _ in 0..200 {
        let (lo, hi) = if xa < xb { (xa, xb) } else { (xb, xa) };
        if done(lo, hi) {
            break;
        }
        let mid = snap(0.5 * (xa + xb)).unwrap_or(0.5 * (xa + xb));
        let mut x = if stalls >= 2 || !(ga.is_finite() && gb.is_finite()) || ga == gb {
            mid
        } else {
            snap(xb - gb * (xb - xa) / (gb - ga)).unwrap_or(mid)
        };
        if !(x > lo && x < hi) {
            x = mid;
        }
        // Keep at least `min_step` from both ends: once the root is within the tolerance of
        // one end, a probe just inside it closes the bracket in one step.
        if hi - lo > 2.0 * min_step {
            x = x.clamp(lo + min_step, hi - min_step);
        }
        if !(x > lo && x < hi) {
            break; // the lattice has no point strictly inside
        }
        let width = hi - lo;
        let f = eval(x)?;
        let gx = g(f);
        if f > target {
            xa = x;
            fa = f;
            ga = gx;
            if last_side == -1 {
                gb *= 0.5;
            }
            last_side = -1;
        } else {
            xb = x;
            fb = f;
            gb = gx;
            if last_side == 1 {
                ga *= 0.5;
            }
            last_side = 1;
        }
        let (nlo, nhi) = if xa < xb { (xa, xb) } else { (xb, xa) };
        stalls = if nhi - nlo > 0.5 * width {
            stalls + 1
        } else {
            0
        };
    }
    Ok(((xa, xb), (fa, fb)))
}
