//! The privacy-random-variable accountant.

mod discretize;

use serde::{Deserialize, Serialize};

use crate::accountant::{Accountant, Bound};
use crate::compose::{GridPmf, compose, fast_len};
use crate::curve::Direction;
use crate::discrete::DiscreteLoss;
use crate::error::{AccountingError, Result};
use crate::event::DpEvent;
use crate::mechanism::Mechanism;
use crate::pld::PldAccountant;
use crate::rdp::{RdpAccountant, mechanism_rdp};
use crate::{gaussian, validate};

/// Privacy-random-variable accountant (Gopi, Lee & Wutschitz 2021, "Numerical Composition
/// of Differential Privacy"), as in Microsoft's `prv_accountant` and Opacus's PRV.
///
/// Each mechanism's privacy random variable is discretised on a mesh chosen from
/// `eps_error` and `delta_error`, truncated to a domain sized by RDP tail bounds, shifted
/// to keep its mean, and composed by FFT. The answer comes with Gopi et al.'s guarantee:
/// `lower ≤ exact ≤ upper`, where for ε(δ) `upper = ε̃(δ − δₑ) + εₑ` and
/// `lower = ε̃(δ + δₑ) − εₑ`, and `estimate = ε̃(δ)`. Both directions of the add/remove-one
/// relation are bounded and the larger answer is returned (the add direction's PRV is
/// skipped when a coarse PLD bound shows it cannot be the larger). Compositions of plain Gaussian
/// mechanisms (q = 1) are answered exactly in closed form.
///
/// If the requested precision would need more than `max_grid_points` mesh points, the mesh
/// is widened and the bounds widen with it (the returned `lower`/`upper` always hold).
///
/// ```
/// use dp_accounting::{Accountant, DpEvent, PrvAccountant};
/// let event = DpEvent::poisson_sampled_gaussian(0.01, 1.0)?.self_composed(1_000)?;
/// let b = PrvAccountant::default().epsilon(&event, 1e-5)?;
/// let (lo, est) = (b.lower.unwrap(), b.estimate.unwrap());
/// assert!(lo <= est && est <= b.upper && b.upper - lo <= 0.05);
/// # Ok::<(), dp_accounting::AccountingError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrvAccountant {
    /// Additive error εₑ allowed on ε (default 0.01, as Opacus and prv_accountant).
    pub eps_error: f64,
    /// Additive error δₑ allowed on δ. `None` (the default) means δ/1000 for ε(δ) queries
    /// (as Opacus) and 1e-12 for δ(ε) queries.
    pub delta_error: Option<f64>,
    /// Largest FFT length before the mesh is widened (default 2²³).
    pub max_grid_points: usize,
}

impl Default for PrvAccountant {
    fn default() -> Self {
        Self {
            eps_error: 0.01,
            delta_error: None,
            max_grid_points: 1 << 23,
        }
    }
}

/// The composed discrete PRV of one direction, the εₑ it achieves, and the extra δ error
/// `slack` added to δₑ: the mass that conditioning each run on its significant loss range
/// and truncating the FFT window may have moved (total variation distances), plus the
/// floating-point error of the transform, estimated as n·2⁻⁵² as Opacus does.
struct Composed {
    loss: DiscreteLoss,
    eps_error: f64,
    slack: f64,
}

/// The mesh and window of one query, shared by both directions.
struct Plan {
    h: f64,
    k: i64,
    eta: f64,
    lower: f64,
    n: usize,
    eps_error: f64,
    slack: f64,
}

impl Plan {
    /// The composed discrete PRV of one direction.
    fn compose(&self, mechanisms: &[(Mechanism, u64)], dir: Direction) -> Result<Composed> {
        let parts: Vec<(discretize::DiscretePrv, u64)> = mechanisms
            .iter()
            .map(|(m, c)| {
                let d = match m {
                    Mechanism::SubsampledGaussian(g) => {
                        discretize::discretize(g, dir, self.h, self.k, self.eta)
                    }
                    Mechanism::DiscreteGaussian(g) => discretize::discretize_discrete_gaussian(
                        &g.table()?,
                        self.h,
                        self.k,
                        self.eta,
                    ),
                };
                Ok((d, *c))
            })
            .collect::<Result<_>>()?;
        let shift: f64 = parts.iter().map(|(d, c)| d.shift * *c as f64).sum();
        let refs: Vec<(&GridPmf, u64)> = parts.iter().map(|(d, c)| (&d.pmf, *c)).collect();
        let lo = ((-self.lower - shift) / self.h).floor() as i64;
        Ok(Composed {
            loss: DiscreteLoss {
                lo_value: lo as f64 * self.h + shift,
                h: self.h,
                probs: compose(&refs, lo, self.n),
                inf_mass: 0.0,
            },
            eps_error: self.eps_error,
            slack: self.slack,
        })
    }
}

impl PrvAccountant {
    fn validated(&self, delta_error: f64) -> Result<()> {
        validate::positive("eps_error", self.eps_error)?;
        validate::open_interval("delta_error", delta_error, 0.0, 1.0, "a number in (0, 1)")?;
        validate::max_grid_points(self.max_grid_points)?;
        Ok(())
    }

    /// Gopi et al.'s domain half-width L (their Remark 5.6, as prv_accountant): beyond ±L
    /// the composed PRV has mass at most δₑ/8, and each single run's at most δₑ/(8T), by
    /// Chernoff bounds from the RDP of the remove direction (which bounds the add
    /// direction's, Mironov et al. 2019; for the discrete Gaussian both directions share the
    /// zCDP bound α/(2σ²)), plus 3. Also returns the composed RDP curve as
    /// (order, RDP) pairs, reused for the composition window.
    fn domain(
        &self,
        mechanisms: &[(Mechanism, u64)],
        delta_error: f64,
    ) -> Result<(f64, Vec<(f64, f64)>)> {
        let rdp = RdpAccountant::default();
        let orders = rdp.orders();
        let tail = |values: &[Option<f64>], mass: f64| -> f64 {
            orders
                .iter()
                .zip(values)
                .filter_map(|(a, r)| r.map(|r| r + (1.0 / mass).ln() / (a - 1.0)))
                .fold(f64::INFINITY, f64::min)
        };
        let total_steps: f64 = mechanisms.iter().map(|(_, c)| *c as f64).sum();
        let mut composed: Vec<Option<f64>> = vec![Some(0.0); orders.len()];
        let mut l = f64::NEG_INFINITY;
        for (m, count) in mechanisms {
            let single = mechanism_rdp(m, orders);
            l = l.max(tail(&single, delta_error / (8.0 * total_steps)));
            for (c, r) in composed.iter_mut().zip(&single) {
                *c = c.zip(*r).map(|(c, r)| c + r * *count as f64);
            }
        }
        l = l.max(tail(&composed, delta_error / 8.0));
        if !l.is_finite() {
            return Err(AccountingError::CannotBound {
                accountant: "prv",
                reason: "no RDP order bounds the privacy loss's tails".into(),
            });
        }
        let rdp_curve = orders
            .iter()
            .zip(&composed)
            .filter_map(|(&a, r)| r.map(|r| (a, r)))
            .collect();
        Ok((l.max(self.eps_error) + 3.0, rdp_curve))
    }

    /// The mesh, domain and FFT window shared by both directions.
    fn plan(&self, mechanisms: &[(Mechanism, u64)], delta_error: f64) -> Result<Plan> {
        let total_steps: f64 = mechanisms.iter().map(|(_, c)| *c as f64).sum();
        let (l, rdp_curve) = self.domain(mechanisms, delta_error)?;
        // Gopi et al., Theorem 5.5: mesh h = εₑ / √(T/2 · ln(12/δₑ)).
        let spread = (total_steps / 2.0 * (12.0 / delta_error).ln()).sqrt();
        let mut h = self.eps_error / spread;
        // Each run is also conditioned on the loss range outside which each tail holds at
        // most η, so that no time is spent on masses far below δₑ: this moves δ by at most
        // 2ηT = δₑ/10⁴ in total variation.
        let eta = 1e-4 * delta_error / (2.0 * total_steps);
        // The FFT window [−v, u] ⊂ [−L, L] holds all but τ = δₑ/100 of the composed mass
        // (Chernoff bounds below); the mass outside aliases into the window, moving δ by at
        // most τ. Both slacks are added to δₑ in the bounds.
        let tau = delta_error / 100.0;
        let (lower, upper) = loop {
            // Each run keeps at least 1 − 2η − δₑ/(4T) of its mass: the η trim, and the
            // domain [−L, L] (whose tails hold at most δₑ/(8T) each).
            let kept = 1.0 - 2.0 * eta - delta_error / (4.0 * total_steps);
            let (v, u) = window(&rdp_curve, total_steps, h, kept, tau);
            let (v, u) = (v.min(l), u.min(l));
            if ((u + v) / h) + 4.0 <= self.max_grid_points as f64 {
                break (v, u);
            }
            h = (u + v) / (self.max_grid_points as f64 - 8.0);
        };
        // One transform length for both directions (one cached plan).
        let n = fast_len(((upper + lower) / h).ceil() as usize + 4);
        Ok(Plan {
            h,
            k: (l / h).ceil() as i64,
            eta,
            lower,
            n,
            eps_error: h * spread,
            slack: 2.0 * eta * total_steps + tau + n as f64 * f64::EPSILON,
        })
    }

    /// The bound of the worse direction. The remove direction is composed in parallel with
    /// a cheap pessimistic bound for the add direction (a PLD on a coarse grid, via
    /// `add_bound`); when that bound is already no larger than the remove direction's
    /// *lower* bound, the add direction cannot raise the maximum and its PRV is skipped.
    /// (The remove direction dominated on every point of our test grid; this halves the
    /// work without assuming it.)
    fn worst(
        &self,
        mechanisms: &[(Mechanism, u64)],
        delta_error: f64,
        answer: impl Fn(&Composed) -> Result<Bound> + Sync,
        add_bound: impl Fn(&DiscreteLoss) -> Option<f64> + Send + Sync,
    ) -> Result<Bound> {
        let plan = self.plan(mechanisms, delta_error)?;
        let probe = PldAccountant {
            value_discretization_interval: 1e-3,
            ..PldAccountant::default()
        };
        let (remove, bound) = std::thread::scope(|s| {
            let bound = s.spawn(|| {
                probe
                    .composed(mechanisms, Direction::Add)
                    .ok()
                    .and_then(|d| add_bound(&d))
            });
            let remove = plan
                .compose(mechanisms, Direction::Remove)
                .and_then(|c| answer(&c));
            (remove, bound.join().expect("PRV worker thread panicked"))
        });
        let remove = remove?;
        if bound.is_some_and(|b| b <= remove.lower.unwrap_or(remove.upper)) {
            return Ok(remove);
        }
        let add = answer(&plan.compose(mechanisms, Direction::Add)?)?;
        Ok(worse(remove, add))
    }

    fn check_rounding(&self, composed: &Composed, delta: f64, delta_error: f64) -> Result<()> {
        if composed.slack >= delta - delta_error {
            return Err(AccountingError::CannotBound {
                accountant: "prv",
                reason: format!(
                    "the {}-point transform's floating-point and truncation error (~{:e}) is not \
                     below delta - delta_error = {:e}; raise delta or eps_error",
                    composed.loss.probs.len(),
                    composed.slack,
                    delta - delta_error
                ),
            });
        }
        Ok(())
    }
}

/// The window (v, u) such that the composed discretised PRV of either direction lies below
/// −v or above u with probability at most τ/2 each.
///
/// Each discretised run Ỹ is within h of the continuous Y conditioned on the range it keeps
/// (bucket half-width plus the mean shift), a range of mass at least `kept`, so
/// E[e^{±λỸ}] ≤ e^{λh} E[e^{±λY}]/kept.
/// With R the composed remove-direction RDP (which bounds the add direction's): upper
/// tails E[e^{λY}] ≤ e^{λ R(λ+1)} in both directions, lower tails
/// E[e^{−λY}] ≤ e^{(λ−1) R(λ)} (λ > 1), then Chernoff.
fn window(rdp_curve: &[(f64, f64)], steps: f64, h: f64, kept: f64, tau: f64) -> (f64, f64) {
    let c = -steps * kept.ln() + (2.0 / tau).ln();
    let mut u = f64::INFINITY;
    let mut v = f64::INFINITY;
    for &(a, r) in rdp_curve {
        u = u.min(steps * h + r + c / (a - 1.0));
        v = v.min(steps * h + (a - 1.0) / a * r + c / a);
    }
    (v, u)
}

fn epsilon_of(c: &Composed, delta: f64, delta_error: f64) -> Bound {
    let delta_error = delta_error + c.slack;
    let solve = |d: f64| c.loss.epsilon(d).unwrap_or(f64::INFINITY);
    Bound {
        upper: (solve(delta - delta_error) + c.eps_error).max(0.0),
        estimate: Some(solve(delta).max(0.0)),
        lower: Some((solve(delta + delta_error) - c.eps_error).max(0.0)),
    }
}

fn delta_of(c: &Composed, eps: f64, delta_error: f64) -> Bound {
    let delta_error = delta_error + c.slack;
    Bound {
        upper: (c.loss.delta(eps - c.eps_error) + delta_error).min(1.0),
        estimate: Some(c.loss.delta(eps).clamp(0.0, 1.0)),
        lower: Some((c.loss.delta(eps + c.eps_error) - delta_error).clamp(0.0, 1.0)),
    }
}

/// The worse (larger) of two directions' bounds, component by component.
fn worse(a: Bound, b: Bound) -> Bound {
    let max = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => x.or(y),
    };
    Bound {
        upper: a.upper.max(b.upper),
        estimate: max(a.estimate, b.estimate),
        lower: max(a.lower, b.lower),
    }
}

fn exact(v: f64) -> Bound {
    Bound {
        upper: v,
        estimate: Some(v),
        lower: Some(v),
    }
}

impl Accountant for PrvAccountant {
    fn name(&self) -> &'static str {
        "prv"
    }

    fn epsilon(&self, event: &DpEvent, delta: f64) -> Result<Bound> {
        validate::delta(delta)?;
        let delta_error = self.delta_error.unwrap_or(delta / 1000.0);
        self.validated(delta_error)?;
        if delta_error >= delta {
            return Err(AccountingError::InvalidParameter {
                field: "delta_error",
                value: delta_error.to_string(),
                expected: "a number smaller than delta",
            });
        }
        let mechanisms = event.mechanisms()?;
        if let Some(mu) = gaussian::composed_mu(&mechanisms) {
            return Ok(exact(gaussian::epsilon(mu, delta)));
        }
        self.worst(
            &mechanisms,
            delta_error,
            |c| {
                self.check_rounding(c, delta, delta_error)?;
                Ok(epsilon_of(c, delta, delta_error))
            },
            |d| d.epsilon(delta).map(|e| e.max(0.0)),
        )
    }

    fn delta(&self, event: &DpEvent, epsilon: f64) -> Result<Bound> {
        validate::epsilon(epsilon)?;
        let delta_error = self.delta_error.unwrap_or(1e-12);
        self.validated(delta_error)?;
        let mechanisms = event.mechanisms()?;
        if let Some(mu) = gaussian::composed_mu(&mechanisms) {
            return Ok(exact(gaussian::delta(mu, epsilon)));
        }
        self.worst(
            &mechanisms,
            delta_error,
            |c| Ok(delta_of(c, epsilon, delta_error)),
            |d| Some(d.delta(epsilon)),
        )
    }
}
