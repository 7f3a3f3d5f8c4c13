//! The privacy engine: calibrates σ for a budget, samples, clips, noises, and keeps the ledger.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use dp_accounting::{DpEvent, PrivacyLedger, calibrate_noise, calibrate_noise_multiplier};

use crate::clip::{ClippedSum, Clipping, accumulate, check_norm, clip_and_sum, privatize};
use crate::error::DpOptimError;
use crate::ghost;
use crate::loss::ExampleLoss;
use crate::noise;
use crate::rng::DpRng;
use crate::sampler::PoissonSampler;
use crate::sampling_key::SamplingKey;
use train_kit::NoTap;

mod auto_path;
mod config;

pub use config::{ClippingPath, EngineConfig, EngineState, LEDGER_LABEL};

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
            &self.state.config.ledger_label,
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
