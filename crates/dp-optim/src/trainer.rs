//! The DP training loop's state in one place: privacy engine, optimiser, learning-rate
//! schedule, and their joint checkpoint.

use std::fs;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use dp_accounting::PrivacyLedger;
use serde::{Deserialize, Serialize};

use crate::atomic_dir::{readable_dir, replace_dir};
use crate::engine::{EngineConfig, EngineState, PrivacyEngine};
use crate::error::DpOptimError;
use crate::loss::ExampleLoss;
use crate::optimizer::{DpOptimizer, OptimizerConfig, recorder};
use crate::rng::DpRng;
use crate::schedule::LrSchedule;

/// Format tag of [`DpTrainer`] checkpoints.
pub const CHECKPOINT_FORMAT: &str = "dp-optim-checkpoint-1";
const MODEL_FILE: &str = "model"; // + ".bin"
const OPTIMIZER_FILE: &str = "optimizer"; // + ".bin"
const STATE_FILE: &str = "trainer.json";

/// Whether `dir` holds a [`DpTrainer`] checkpoint (or a crash between the final renames left
/// the previous one beside it, which [`DpTrainer::load_checkpoint`] then uses).
pub fn checkpoint_exists(dir: &Path) -> bool {
    readable_dir(dir, STATE_FILE).is_some()
}

/// Everything a DP training run is configured by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// Budget, sampling, clipping.
    pub engine: EngineConfig,
    /// The optimiser (default: plain SGD).
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Learning rate per step (default: constant 1e-3).
    #[serde(default)]
    pub schedule: LrSchedule,
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    format: String,
    optimizer: OptimizerConfig,
    schedule: LrSchedule,
    engine: EngineState,
}

/// A step that failed: the error, and the model, unchanged (nothing is lost).
#[derive(Debug)]
pub struct Failed<M> {
    /// The model as it was before the step.
    pub model: M,
    /// Why the step failed.
    pub error: DpOptimError,
}

impl<M: std::fmt::Debug> std::fmt::Display for Failed<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<M: std::fmt::Debug> std::error::Error for Failed<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// DP-SGD / DP-Adam / DP-AdamW training: each [`DpTrainer::step`] is one privacy-engine step
/// (Poisson batch, clipping, noise once, ledger) followed by the optimiser's update at the
/// schedule's learning rate. Its checkpoint holds model, optimiser state, sampler/noise
/// stream position and ledger together, so a resumed run continues exactly where it
/// stopped: no accounted step is lost or repeated.
///
/// Guarantee: that of [`PrivacyEngine`] (the optimiser and schedule only post-process the
/// private updates).
pub struct DpTrainer<B: AutodiffBackend, M: AutodiffModule<B>> {
    engine: PrivacyEngine,
    optimizer: DpOptimizer<M, B>,
    optimizer_config: OptimizerConfig,
    schedule: LrSchedule,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> std::fmt::Debug for DpTrainer<B, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpTrainer")
            .field("engine", &self.engine)
            .field("optimizer", &self.optimizer_config)
            .field("schedule", &self.schedule)
            .finish()
    }
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> DpTrainer<B, M> {
    /// Validates `config`, calibrates σ and starts fresh optimiser state.
    pub fn new(config: TrainerConfig, rng: DpRng) -> Result<Self, DpOptimError> {
        Self::after(config, rng, PrivacyLedger::new())
    }

    /// Like [`Self::new`], after the releases in `prior` (see [`PrivacyEngine::after`]): the
    /// budget covers them and the planned steps together.
    pub fn after(
        config: TrainerConfig,
        rng: DpRng,
        prior: PrivacyLedger,
    ) -> Result<Self, DpOptimError> {
        config.optimizer.validate()?;
        config.schedule.validate()?;
        Ok(Self {
            engine: PrivacyEngine::after(config.engine, rng, prior)?,
            optimizer: config.optimizer.init(),
            optimizer_config: config.optimizer,
            schedule: config.schedule,
        })
    }

    /// The configuration this trainer runs (as given, or as saved in its checkpoint).
    pub fn config(&self) -> TrainerConfig {
        TrainerConfig {
            engine: self.engine.state().config.clone(),
            optimizer: self.optimizer_config.clone(),
            schedule: self.schedule.clone(),
        }
    }

    /// The privacy engine (σ, q, steps, ledger, ε spent).
    pub fn engine(&self) -> &PrivacyEngine {
        &self.engine
    }

    /// Whether the budget allows another step.
    pub fn can_step(&self) -> bool {
        self.engine.can_step()
    }

    /// The learning rate the next step will use.
    pub fn next_lr(&self) -> f64 {
        let (taken, planned) = self.engine.steps();
        self.schedule.lr(taken, planned)
    }

    /// One DP step: the engine's private update, then the optimiser's. On failure (budget
    /// spent, a bad loss), the model comes back unchanged inside the error and nothing is
    /// recorded.
    pub fn step<L: ExampleLoss<B, M>>(&mut self, model: M, loss: &mut L) -> Result<M, Failed<M>> {
        let lr = self.next_lr();
        match self.engine.step(&model, loss) {
            Ok(update) => Ok(self.optimizer.step(lr, model, update)),
            Err(error) => Err(Failed { model, error }),
        }
    }

    /// The engine, mutably (for [`crate::DataParallelTrainer`]).
    pub(crate) fn engine_mut(&mut self) -> &mut PrivacyEngine {
        &mut self.engine
    }

    /// Applies an already private update with the optimiser at the schedule's learning rate
    /// (the caller has recorded the step).
    pub(crate) fn apply(&mut self, lr: f64, model: M, update: burn::optim::GradientsParams) -> M {
        self.optimizer.step(lr, model, update)
    }

    /// Writes `model`, the optimiser state and the engine state (ledger, step count, random
    /// stream position) to the directory `dir`, atomically: the new checkpoint replaces the
    /// old one only once complete (a crash leaves the previous one readable).
    ///
    /// Privacy: the checkpoint holds the noise stream's state, from which the noise of every
    /// step can be regenerated. Anyone holding it and the intermediate models could remove
    /// the noise: keep checkpoints as private as the data, and release only the final model.
    pub fn save_checkpoint(&self, model: &M, dir: &Path) -> Result<(), DpOptimError> {
        replace_dir(dir, |partial| {
            let model_path = partial.join(MODEL_FILE);
            crate::ghost::initialise_params(model);
            model
                .clone()
                .save_file(&model_path, &recorder())
                .map_err(|e| DpOptimError::Checkpoint {
                    path: model_path.clone(),
                    message: e.to_string(),
                })?;
            self.optimizer.save(&partial.join(OPTIMIZER_FILE))?;
            let state = SavedState {
                format: CHECKPOINT_FORMAT.to_string(),
                optimizer: self.optimizer_config.clone(),
                schedule: self.schedule.clone(),
                engine: self.engine.state().clone(),
            };
            let json = serde_json::to_vec_pretty(&state).expect("engine state serialises");
            let state_path = partial.join(STATE_FILE);
            fs::write(&state_path, json).map_err(|e| DpOptimError::Checkpoint {
                path: state_path.clone(),
                message: e.to_string(),
            })
        })
    }

    /// Reads a checkpoint written by [`Self::save_checkpoint`]: the weights are loaded into
    /// `model` (a model of the same architecture, e.g. freshly initialised) and the
    /// optimiser, schedule and engine continue where they stopped. A checkpoint interrupted
    /// while replacing the previous one is recovered from that previous one.
    pub fn load_checkpoint(
        dir: &Path,
        model: M,
        device: &B::Device,
    ) -> Result<(Self, M), DpOptimError> {
        let found = readable_dir(dir, STATE_FILE);
        let dir = found.as_deref().unwrap_or(dir);
        let state_path = dir.join(STATE_FILE);
        let text = fs::read_to_string(&state_path).map_err(|e| DpOptimError::Checkpoint {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
        let state: SavedState =
            serde_json::from_str(&text).map_err(|e| DpOptimError::Checkpoint {
                path: state_path.clone(),
                message: e.to_string(),
            })?;
        if state.format != CHECKPOINT_FORMAT {
            return Err(DpOptimError::Checkpoint {
                path: state_path,
                message: format!("format {:?}, expected {CHECKPOINT_FORMAT:?}", state.format),
            });
        }
        let model_path = dir.join(MODEL_FILE);
        let model = model
            .load_file(&model_path, &recorder(), device)
            .map_err(|e| DpOptimError::Checkpoint {
                path: model_path,
                message: e.to_string(),
            })?;
        let optimizer = state
            .optimizer
            .init::<B, M>()
            .load(&dir.join(OPTIMIZER_FILE), device)?;
        Ok((
            Self {
                engine: PrivacyEngine::from_state(state.engine)?,
                optimizer,
                optimizer_config: state.optimizer,
                schedule: state.schedule,
            },
            model,
        ))
    }
}
