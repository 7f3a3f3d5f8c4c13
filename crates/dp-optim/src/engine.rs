//! The privacy engine: calibrates σ for a budget, samples, clips, noises, and keeps the ledger.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use dp_accounting::{AccountantKind, PrivacyLedger, calibrate_noise_multiplier};
use serde::{Deserialize, Serialize};

use crate::clip::{clipped_sum, privatize};
use crate::error::DpOptimError;
use crate::rng::DpRng;
use crate::sampler::PoissonSampler;

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
}

/// Calibrated parameters and everything a checkpoint needs to resume exactly: the step count,
/// the ledger and the position of the random stream.
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
    /// The sampling and noise stream.
    pub rng: DpRng,
}

/// DP-SGD's privacy side: Poisson sampling, per-example clipping, Gaussian noise once per
/// logical step, division by the expected batch size, and the accounting, for any burn
/// module with a per-example loss. It refuses to step past the budget.
///
/// Guarantee: with a secure [`DpRng`], the sequence of updates returned by [`Self::step`] is
/// (target ε, δ)-DP with respect to adding or removing one record of the dataset (the
/// accountant's upper bound, both directions), provided each per-example loss depends on its
/// own record only.
#[derive(Debug)]
pub struct PrivacyEngine {
    state: EngineState,
    sampler: PoissonSampler,
}

impl PrivacyEngine {
    /// Validates `config`, calibrates σ so that `⌈epochs / q⌉` steps spend at most the target
    /// ε, and starts an empty ledger.
    pub fn new(config: EngineConfig, rng: DpRng) -> Result<Self, DpOptimError> {
        let sampler =
            PoissonSampler::with_expected_batch(config.dataset_size, config.expected_batch_size)?;
        if !(config.epochs > 0.0 && config.epochs.is_finite()) {
            return Err(DpOptimError::InvalidParameter {
                field: "epochs",
                value: config.epochs.to_string(),
                expected: "a finite number > 0",
            });
        }
        if !(config.max_grad_norm > 0.0 && config.max_grad_norm.is_finite()) {
            return Err(DpOptimError::InvalidParameter {
                field: "max_grad_norm",
                value: config.max_grad_norm.to_string(),
                expected: "a finite number > 0",
            });
        }
        let q = sampler.sample_rate();
        let planned_steps = (config.epochs / q).ceil().max(1.0) as u64;
        let accountant = config.accountant.build();
        let calibration = calibrate_noise_multiplier(
            &accountant,
            config.target_epsilon,
            config.delta,
            q,
            planned_steps,
        )?;
        Ok(Self {
            state: EngineState {
                config,
                noise_multiplier: calibration.noise_multiplier,
                planned_steps,
                steps_taken: 0,
                ledger: PrivacyLedger::new(),
                rng,
            },
            sampler,
        })
    }

    /// Resumes from a saved [`EngineState`] (e.g. from a checkpoint).
    pub fn from_state(state: EngineState) -> Result<Self, DpOptimError> {
        let sampler = PoissonSampler::with_expected_batch(
            state.config.dataset_size,
            state.config.expected_batch_size,
        )?;
        Ok(Self { state, sampler })
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

    /// Steps the budget allows, and steps taken.
    pub fn steps(&self) -> (u64, u64) {
        (self.state.steps_taken, self.state.planned_steps)
    }

    /// Whether the budget allows another step.
    pub fn can_step(&self) -> bool {
        self.state.steps_taken < self.state.planned_steps
    }

    /// ε spent so far (accountant's upper bound) at the configured δ.
    pub fn epsilon_spent(&self) -> Result<f64, DpOptimError> {
        if self.state.steps_taken == 0 {
            return Ok(0.0);
        }
        let accountant = self.state.config.accountant.build();
        Ok(self
            .state
            .ledger
            .epsilon(&accountant, self.state.config.delta)?
            .upper)
    }

    /// One logical DP-SGD step: samples a Poisson batch, clips each example's gradient to C,
    /// sums, adds `N(0, σ²C²)` once, divides by the expected batch size and records the step
    /// in the ledger; returns the update for a burn optimiser's `step`. Refused (an error)
    /// once the planned steps are spent.
    pub fn step<B, M, F>(&mut self, model: &M, loss: F) -> Result<GradientsParams, DpOptimError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        F: FnMut(&M, usize) -> Tensor<B, 1>,
    {
        if !self.can_step() {
            return Err(DpOptimError::BudgetExhausted {
                steps: self.state.planned_steps,
                epsilon: self.state.config.target_epsilon,
            });
        }
        let batch = self.sampler.sample(&mut self.state.rng);
        let c = self.state.config.max_grad_norm;
        let sum = clipped_sum(model, &batch, c, loss)?;
        let update = privatize(
            model,
            sum,
            self.state.noise_multiplier,
            c,
            self.sampler.expected_batch_size(),
            &mut self.state.rng,
        )?;
        self.state.ledger.record_steps(
            LEDGER_LABEL,
            self.sampler.sample_rate(),
            self.state.noise_multiplier,
            1,
        )?;
        self.state.steps_taken += 1;
        Ok(update)
    }
}
