//! The privacy engine: calibrates σ for a budget, samples, clips, noises, and keeps the ledger.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use dp_accounting::{
    AccountantKind, DpEvent, PrivacyLedger, calibrate_noise, calibrate_noise_multiplier,
};
use serde::{Deserialize, Serialize};

use crate::clip::{ClippedSum, Clipping, accumulate, check_norm, clip_and_sum, privatize};
use crate::error::DpOptimError;
use crate::ghost;
use crate::loss::ExampleLoss;
use crate::noise;
use crate::rng::DpRng;
use crate::sampler::PoissonSampler;
use crate::sampling_key::SamplingKey;
use train_kit::NoTap;

/// Which per-example clipping implementation the engine runs. Both give the same clipped
/// sum (up to rounding); they differ in cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClippingPath {
    /// Whichever is faster here, decided once per run before its first sampled batch and
    /// kept in the (non-secret) engine state, so a resumed run continues on it: a loss that
    /// taps nothing runs the generic path; otherwise both paths are timed on the fixed
    /// records `0..k`, `k` = the physical batch size (or the expected batch size, rounded
    /// up), at least 2 and at most the dataset size, and their results are discarded. `k`
    /// and the records are functions of the public configuration only, never of a Poisson
    /// sample; the timings can still depend on the *content* of records `0..k` (see
    /// `docs/dp-optim.md`). On CPUs the generic path wins for small models (its per-example
    /// passes cost what the batched pass costs, in far less memory); the fast path wins
    /// when per-example gradients are large (gpt2) and on accelerators. See
    /// `docs/benchmarks.md`.
    #[default]
    Auto,
    /// One backward per example: any module, any loss; cost grows with the batch.
    Generic,
    /// Ghost norms and book-keeping: one forward and one backward per physical batch.
    Fast,
}

/// Label of DP-SGD steps in the ledger.
pub const LEDGER_LABEL: &str = "dp-sgd";

/// What a DP-SGD run is allowed to spend and how it samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Target ε of the whole run, > 0.
    pub target_epsilon: f64,
    /// δ, in (0, 1); commonly 1/N or smaller.
    pub delta: f64,
    /// Passes over the data (expected), > 0: steps = ⌈epochs / q⌉.
    pub epochs: f64,
    /// Number of private records N.
    pub dataset_size: usize,
    /// Expected batch size q·N.
    pub expected_batch_size: f64,
    /// Per-example clipping bound C.
    pub max_grad_norm: f64,
    /// Accountant for calibration and reports (PLD by default).
    #[serde(default)]
    pub accountant: AccountantKind,
    /// Flat (default) or per-parameter clipping; both have sensitivity `max_grad_norm`.
    #[serde(default)]
    pub clipping: Clipping,
    /// Generic or fast per-example clipping (default: fast when the loss supports it).
    #[serde(default)]
    pub clipping_path: ClippingPath,
    /// Examples per forward/backward pass: a logical (Poisson) batch larger than this is
    /// split into physical micro-batches whose clipped sums add up before the noise, which
    /// is drawn once per logical step (gradient accumulation without extra privacy cost).
    /// `None`: the whole logical batch at once.
    #[serde(default)]
    pub physical_batch_size: Option<usize>,
    /// An identifier of the private dataset (e.g. a SHA-256 fingerprint of the records),
    /// kept in every checkpoint, so that a caller resuming a run can refuse one whose data
    /// changed (see [`crate::DpTrainer::load_checkpoint`]'s callers). Not used by the engine.
    #[serde(default)]
    pub dataset_id: Option<String>,
}

impl EngineConfig {
    /// A configuration with the defaults: PLD accounting, flat clipping, automatic path,
    /// whole logical batches.
    pub fn new(
        target_epsilon: f64,
        delta: f64,
        epochs: f64,
        dataset_size: usize,
        expected_batch_size: f64,
        max_grad_norm: f64,
    ) -> Self {
        Self {
            target_epsilon,
            delta,
            epochs,
            dataset_size,
            expected_batch_size,
            max_grad_norm,
            accountant: AccountantKind::default(),
            clipping: Clipping::default(),
            clipping_path: ClippingPath::default(),
            physical_batch_size: None,
            dataset_id: None,
        }
    }
}

/// Calibrated parameters and everything a checkpoint needs to resume exactly: the step count,
/// the ledger and the position of the random stream.
///
/// Its serialisation holds the secret stream (`rng`) and sampling key: keep it as private
/// as the data. [`crate::DpTrainer::save_checkpoint`] writes these two to a separate
/// owner-only file and deletes them once the run is finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    /// The configuration.
    pub config: EngineConfig,
    /// Calibrated noise multiplier σ (noise std = σ·C).
    pub noise_multiplier: f64,
    /// Steps the budget allows.
    pub planned_steps: u64,
    /// Steps taken (each recorded in the ledger before its update is returned).
    pub steps_taken: u64,
    /// Every DP release so far.
    pub ledger: PrivacyLedger,
    /// The sampling and noise stream: secret (whoever knows it can regenerate every step's
    /// batch and noise). `None` only for a finished run whose stream was deleted (a
    /// [`crate::DpTrainer`] checkpoint written after the last step keeps no stream): such an
    /// engine cannot step.
    pub rng: Option<DpRng>,
    /// Whether the run's stream was seeded by the caller ([`DpRng::insecure_seeded`]: no
    /// privacy guarantee); kept when the stream itself is deleted.
    #[serde(default)]
    pub insecure: bool,
    /// The clipping path `Auto` settled on (kept so a resumed run continues on it).
    #[serde(default)]
    pub resolved_path: Option<ClippingPath>,
    /// The key every data-parallel step's Poisson sample is derived from (set when the
    /// run is trained by a [`crate::DataParallelTrainer`]; `None` for single-worker runs and
    /// once a finished run's secrets were deleted). Secret, like `rng`.
    #[serde(default)]
    pub sampling_key: Option<SamplingKey>,
}

/// DP-SGD's privacy side: Poisson sampling, per-example clipping, Gaussian noise once per
/// logical step, division by the expected batch size, and the accounting, for any burn
/// module with a per-example loss. It refuses to step past the budget.
///
/// Guarantee: with a secure [`DpRng`], the sequence of updates returned by [`Self::step`] is
/// (target ε, δ)-DP with respect to adding or removing one record of the dataset (the
/// accountant's upper bound, both directions), provided each per-example loss depends on its
/// own record only. An example whose gradient norm is not finite (NaN, ±∞) contributes
/// nothing to its step (see [`ClippedSum::nonfinite`]), so one bad record cannot turn the
/// released update into NaN.
#[derive(Debug)]
pub struct PrivacyEngine {
    state: EngineState,
    sampler: PoissonSampler,
    nonfinite: u64,
}

impl PrivacyEngine {
    /// Validates `config`, calibrates σ so that `⌈epochs / q⌉` steps spend at most the target
    /// ε, and starts an empty ledger.
    pub fn new(config: EngineConfig, rng: DpRng) -> Result<Self, DpOptimError> {
        Self::after(config, rng, PrivacyLedger::new())
    }

    /// Like [`Self::new`], after the releases `prior` already holds (e.g. a DP label
    /// histogram of the same data): σ is calibrated so that `prior` composed with all the
    /// planned steps spends at most the target ε, and the engine's ledger starts as `prior`,
    /// so [`Self::epsilon_spent`] and the budget cover both. One accountant, one ledger.
    pub fn after(
        config: EngineConfig,
        rng: DpRng,
        prior: PrivacyLedger,
    ) -> Result<Self, DpOptimError> {
        warn_if_insecure(rng.is_insecure());
        let sampler =
            PoissonSampler::with_expected_batch(config.dataset_size, config.expected_batch_size)?;
        if !(config.epochs > 0.0 && config.epochs.is_finite()) {
            return Err(DpOptimError::InvalidParameter {
                field: "epochs",
                value: config.epochs.to_string(),
                expected: "a finite number > 0",
            });
        }
        check_norm(config.max_grad_norm)?;
        check_physical(&config)?;
        let q = sampler.sample_rate();
        let planned_steps = (config.epochs / q).ceil().max(1.0) as u64;
        let accountant = config.accountant.build();
        let calibration = if prior.entries().is_empty() {
            calibrate_noise_multiplier(
                &accountant,
                config.target_epsilon,
                config.delta,
                q,
                planned_steps,
            )?
        } else {
            let before = prior.event();
            calibrate_noise(
                &accountant,
                |sigma| {
                    Ok(DpEvent::composed(vec![
                        before.clone(),
                        DpEvent::poisson_sampled_gaussian(q, sigma)?
                            .self_composed(planned_steps)?,
                    ]))
                },
                config.target_epsilon,
                config.delta,
                1e-5,
            )?
        };
        Ok(Self {
            state: EngineState {
                config,
                noise_multiplier: calibration.noise_multiplier,
                planned_steps,
                steps_taken: 0,
                ledger: prior,
                insecure: rng.is_insecure(),
                rng: Some(rng),
                resolved_path: None,
                sampling_key: None,
            },
            sampler,
            nonfinite: 0,
        })
    }

    /// Resumes from a saved [`EngineState`] (e.g. from a checkpoint). A state without its
    /// random stream (`rng: None`) is accepted only for a finished run (steps taken = planned
    /// steps): the engine then reports its ledger and ε but cannot step.
    pub fn from_state(mut state: EngineState) -> Result<Self, DpOptimError> {
        match &state.rng {
            Some(rng) => state.insecure |= rng.is_insecure(),
            None if state.steps_taken < state.planned_steps => {
                return Err(DpOptimError::InvalidParameter {
                    field: "rng",
                    value: "none".into(),
                    expected: "the random stream of an unfinished run (only a finished run may lack it)",
                });
            }
            None => {}
        }
        warn_if_insecure(state.insecure);
        let sampler = PoissonSampler::with_expected_batch(
            state.config.dataset_size,
            state.config.expected_batch_size,
        )?;
        check_physical(&state.config)?;
        Ok(Self {
            state,
            sampler,
            nonfinite: 0,
        })
    }

    /// The clipping path in use: the configured one, or what `Auto` settled on (`None`
    /// while undecided).
    pub fn clipping_path(&self) -> Option<ClippingPath> {
        match self.state.config.clipping_path {
            ClippingPath::Auto => self.state.resolved_path,
            path => Some(path),
        }
    }

    /// The state to checkpoint together with the model and optimiser.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Calibrated σ.
    pub fn noise_multiplier(&self) -> f64 {
        self.state.noise_multiplier
    }

    /// Sampling rate q.
    pub fn sample_rate(&self) -> f64 {
        self.sampler.sample_rate()
    }

    /// `(taken, planned)`: the steps taken so far, and the steps the budget was calibrated for
    /// (the most it allows).
    pub fn steps(&self) -> (u64, u64) {
        (self.state.steps_taken, self.state.planned_steps)
    }

    /// Whether the budget allows another step.
    pub fn can_step(&self) -> bool {
        self.state.steps_taken < self.state.planned_steps
    }

    /// How many sampled examples the steps of this engine (since it was created or loaded;
    /// not checkpointed) left out of their sums for a non-finite gradient norm (see
    /// [`ClippedSum::nonfinite`]). A count over private data: report it only through a DP
    /// mechanism or not at all.
    pub fn nonfinite_examples(&self) -> u64 {
        self.nonfinite
    }

    /// ε spent so far (accountant's upper bound) at the configured δ, prior releases
    /// included.
    pub fn epsilon_spent(&self) -> Result<f64, DpOptimError> {
        if self.state.ledger.entries().is_empty() {
            return Ok(0.0);
        }
        let accountant = self.state.config.accountant.build();
        Ok(self
            .state
            .ledger
            .epsilon(&accountant, self.state.config.delta)?
            .upper)
    }

    /// One logical DP-SGD step: samples a Poisson batch, clips each example's gradient to C
    /// (in physical micro-batches if configured), sums, adds `N(0, σ²C²)` once, divides by
    /// the expected batch size and records the step in the ledger; returns the update for a
    /// burn optimiser's `step`. Refused (an error) once the planned steps are spent.
    ///
    /// A step that fails (e.g. a loss of the wrong shape) releases nothing and is not
    /// recorded; the sampled batch is discarded.
    pub fn step<B, M, L>(
        &mut self,
        model: &M,
        loss: &mut L,
    ) -> Result<GradientsParams, DpOptimError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        L: ExampleLoss<B, M>,
    {
        if !self.can_step() {
            return Err(exhausted(&self.state));
        }
        self.resolve_auto(model, loss)?;
        let batch = self.sampler.sample(stream(&mut self.state)?);
        let c = self.state.config.max_grad_norm;
        let sum = self.clipped_sum(model, &batch, loss)?;
        let nonfinite = sum.nonfinite as u64;
        let (sigma, expected) = (
            self.state.noise_multiplier,
            self.sampler.expected_batch_size(),
        );
        let update = privatize(model, sum, sigma, c, expected, stream(&mut self.state)?)?;
        self.record_step()?;
        self.nonfinite += nonfinite;
        Ok(update)
    }

    /// The clipped sum of a logical batch, micro-batch by micro-batch, on the configured
    /// path (no noise, nothing recorded). With [`ClippingPath::Auto`] still undecided, the
    /// path is decided first, independently of `batch` (see [`Self::resolve_auto`]).
    pub fn clipped_sum<B, M, L>(
        &mut self,
        model: &M,
        batch: &[usize],
        loss: &mut L,
    ) -> Result<ClippedSum, DpOptimError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        L: ExampleLoss<B, M>,
    {
        self.resolve_auto(model, loss)?;
        let path = self.clipping_path().unwrap_or(ClippingPath::Generic);
        let config = &self.state.config;
        let c = config.max_grad_norm;
        let clipping = config.clipping;
        let chunk = config.physical_batch_size.unwrap_or(batch.len()).max(1);
        let mut total = ClippedSum {
            grads: GradientsParams::new(),
            examples: 0,
            clipped: 0,
            nonfinite: 0,
        };
        for part in batch.chunks(chunk) {
            let sum = match path {
                ClippingPath::Fast => ghost_sum(model, part, c, clipping, loss)?,
                _ => generic(model, part, c, clipping, loss)?,
            };
            accumulate(model, &mut total.grads, &sum.grads);
            total.examples += sum.examples;
            total.clipped += sum.clipped;
            total.nonfinite += sum.nonfinite;
        }
        Ok(total)
    }
}

/// The records `Auto` times both clipping paths on: `0..k`, `k` = the physical batch size
/// (or the expected batch size rounded up), at least 2, at most the dataset size. A function
/// of the public configuration only.
fn timing_examples(config: &EngineConfig) -> Vec<usize> {
    let per_pass = config
        .physical_batch_size
        .unwrap_or(config.expected_batch_size.ceil() as usize);
    (0..per_pass.max(2).min(config.dataset_size)).collect()
}

impl PrivacyEngine {
    /// Decides [`ClippingPath::Auto`] if it is configured and still undecided (nothing
    /// otherwise): a loss that taps nothing gets the generic path; otherwise, on the fixed
    /// records `0..k` (`k` = the physical batch size, or the expected batch size rounded up,
    /// at least 2, at most the dataset size), the fast path runs once untimed (warm-up and
    /// tap check), then the generic and the fast path once each, timed, and the faster is
    /// kept in the engine state. Their results are discarded: nothing is released, recorded
    /// or drawn from the random stream. Errors: those of the loss on either path (e.g.
    /// [`DpOptimError::LossShape`], [`DpOptimError::UntappedParameter`]).
    ///
    /// Why this depends on no private *quantity*: the number of records and which records
    /// are fixed by the public configuration (never by a Poisson sample, so neither a batch
    /// size nor a batch membership can influence the decision), and it happens before the
    /// first sample. What it may still depend on: the time the loss takes on records `0..k`,
    /// which for a loss whose cost depends on its record's content (e.g. unpadded
    /// variable-length sequences) is a function of those records' content; the choice only
    /// selects between two computations of the same clipped sum (equal up to rounding).
    pub fn resolve_auto<B, M, L>(&mut self, model: &M, loss: &mut L) -> Result<(), DpOptimError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        L: ExampleLoss<B, M>,
    {
        let config = &self.state.config;
        if config.clipping_path != ClippingPath::Auto || self.state.resolved_path.is_some() {
            return Ok(());
        }
        let (c, clipping) = (config.max_grad_norm, config.clipping);
        let examples = timing_examples(config);
        match ghost_sum(model, &examples, c, clipping, loss) {
            Err(DpOptimError::NothingTapped) => {
                self.state.resolved_path = Some(ClippingPath::Generic);
                return Ok(());
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let start = Instant::now();
        let _ = generic(model, &examples, c, clipping, loss)?;
        let generic_time = start.elapsed();
        let start = Instant::now();
        let _ = ghost_sum(model, &examples, c, clipping, loss)?;
        let fast_time = start.elapsed();
        self.state.resolved_path = Some(if generic_time < fast_time {
            ClippingPath::Generic
        } else {
            ClippingPath::Fast
        });
        Ok(())
    }
}

fn generic<B, M, L>(
    model: &M,
    examples: &[usize],
    c: f64,
    clipping: Clipping,
    loss: &mut L,
) -> Result<ClippedSum, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    L: ExampleLoss<B, M>,
{
    let one = |m: &M, i: usize| loss.losses(m, &[i], &mut NoTap).reshape([1]);
    clip_and_sum(model, examples, c, one, clipping)
}

fn ghost_sum<B, M, L>(
    model: &M,
    examples: &[usize],
    c: f64,
    clipping: Clipping,
    loss: &mut L,
) -> Result<ClippedSum, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    L: ExampleLoss<B, M>,
{
    ghost::clipped_sum(model, examples, c, clipping, |m, ex, tape| {
        loss.losses(m, ex, tape)
    })
}

/// The hooks [`crate::DataParallelTrainer`] drives a step through on its first worker.
impl PrivacyEngine {
    /// The run's data-parallel sampling key, drawn from the engine's stream the first time
    /// (`None` for a finished run whose secrets were deleted).
    pub(crate) fn sampling_key(&mut self) -> Option<SamplingKey> {
        let state = &mut self.state;
        if let Some(key) = &state.sampling_key {
            return Some(key.clone());
        }
        let key = SamplingKey::draw(state.rng.as_mut()?);
        Some(state.sampling_key.insert(key).clone())
    }

    /// The sampler (q, N, expected batch size).
    pub(crate) fn sampler(&self) -> &PoissonSampler {
        &self.sampler
    }

    /// `len` draws of `N(0, σ²C²)` from the engine's stream: the noise of one logical step.
    pub(crate) fn step_noise(&mut self, len: usize) -> Result<Vec<f32>, DpOptimError> {
        let std = self.state.noise_multiplier * self.state.config.max_grad_norm;
        noise::gaussian(stream(&mut self.state)?, len, std)
    }

    /// Records one logical step in the ledger (after its noise was drawn, before its update
    /// is used).
    pub(crate) fn record_step(&mut self) -> Result<(), DpOptimError> {
        self.state.ledger.record_steps(
            LEDGER_LABEL,
            self.sampler.sample_rate(),
            self.state.noise_multiplier,
            1,
        )?;
        self.state.steps_taken += 1;
        Ok(())
    }
}

/// The error of a step past the budget.
fn exhausted(state: &EngineState) -> DpOptimError {
    DpOptimError::BudgetExhausted {
        steps: state.planned_steps,
        epsilon: state.config.target_epsilon,
    }
}

/// The run's random stream; absent only for a finished run (whose budget is spent).
fn stream(state: &mut EngineState) -> Result<&mut DpRng, DpOptimError> {
    let error = exhausted(state);
    state.rng.as_mut().ok_or(error)
}

/// Logs (at `warn`, through the `log` facade) that a run's randomness is seeded by the caller.
fn warn_if_insecure(insecure: bool) {
    if insecure {
        log::warn!(
            "dp-optim: INSECURE seeded random stream: sampling and noise are reproducible by anyone who knows the seed; this run has NO differential-privacy guarantee"
        );
    }
}

impl PrivacyEngine {
    /// Whether this run uses [`DpRng::insecure_seeded`] (no privacy guarantee).
    pub fn is_insecure(&self) -> bool {
        self.state.insecure
    }
}

fn check_physical(config: &EngineConfig) -> Result<(), DpOptimError> {
    if config.physical_batch_size == Some(0) {
        return Err(DpOptimError::InvalidParameter {
            field: "physical_batch_size",
            value: "0".into(),
            expected: "an integer >= 1, or none for whole logical batches",
        });
    }
    Ok(())
}
