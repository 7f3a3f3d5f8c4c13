//! The DP training loop's state in one place: privacy engine, optimiser, learning-rate
//! schedule, and their joint checkpoint.

use std::fs;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use dp_accounting::PrivacyLedger;
use serde::{Deserialize, Serialize};
use train_kit::files::{readable_dir, replace_dir, write_private};
use train_kit::{DynOptimizer, LrSchedule, OptimizerConfig, recorder};

use crate::engine::{ClippingPath, EngineConfig, EngineState, PrivacyEngine};
use crate::error::DpOptimError;
use crate::loss::ExampleLoss;
use crate::rng::DpRng;
use crate::sampling_key::SamplingKey;

/// Format tag of [`DpTrainer`] checkpoints. Version 2 keeps the random stream and the
/// sampling key out of `trainer.json`, in [`CHECKPOINT_SECRETS_FILE`]; checkpoints of
/// version 1 (which kept them in `trainer.json`) are refused.
pub const CHECKPOINT_FORMAT: &str = "dp-optim-checkpoint-2";
/// The one secret file of an unfinished run's checkpoint: the noise and sampling stream
/// ([`DpRng`]) and the data-parallel sampling key. Owner-only (mode `0600` on unix); absent
/// from a checkpoint written after the run's last step.
pub const CHECKPOINT_SECRETS_FILE: &str = "secrets.json";
const MODEL_FILE: &str = "model"; // + ".bin"
const OPTIMIZER_FILE: &str = "optimizer"; // + ".bin"
const STATE_FILE: &str = "trainer.json";
const OLD_FORMAT: &str = "dp-optim-checkpoint-1";

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

/// `trainer.json`: everything but the secrets.
#[derive(Serialize, Deserialize)]
struct SavedState {
    format: String,
    optimizer: OptimizerConfig,
    schedule: LrSchedule,
    engine: PublicEngineState,
}

/// The non-secret part of [`EngineState`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicEngineState {
    config: EngineConfig,
    noise_multiplier: f64,
    planned_steps: u64,
    steps_taken: u64,
    ledger: PrivacyLedger,
    resolved_path: Option<ClippingPath>,
    insecure: bool,
}

/// [`CHECKPOINT_SECRETS_FILE`]: the secret part of [`EngineState`], tagged with the step
/// count of the `trainer.json` it belongs to.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    format: String,
    steps_taken: u64,
    rng: DpRng,
    sampling_key: Option<SamplingKey>,
}

/// Only the format tag of `trainer.json` (read first, so an old format gets a clear error).
#[derive(Deserialize)]
struct Format {
    format: String,
}

/// A checkpoint error at `path` whose cause is `source` (an error, kept as the source, or a
/// message).
fn checkpoint_error(
    path: &Path,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> DpOptimError {
    DpOptimError::Checkpoint {
        path: path.to_path_buf(),
        source: source.into(),
    }
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
/// stopped: no accounted step is lost or repeated. The stream (secret) lives in its own
/// owner-only file, deleted once the run is finished (see [`Self::save_checkpoint`]).
///
/// Guarantee: that of [`PrivacyEngine`] (the optimiser and schedule only post-process the
/// private updates).
pub struct DpTrainer<B: AutodiffBackend, M: AutodiffModule<B>> {
    engine: PrivacyEngine,
    optimizer: DynOptimizer<M, B>,
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
    /// old one only once complete (a crash leaves the previous one readable); every file is
    /// flushed to disk, then the directory (see [`train_kit::files::replace_dir`]).
    ///
    /// Layout: `model.bin`, `optimizer.bin`, `trainer.json` (configuration, σ, step counts,
    /// ledger, resolved clipping path: nothing secret) and, while the run is unfinished,
    /// [`CHECKPOINT_SECRETS_FILE`] with the random stream and the sampling key. The directory
    /// is owner-only (mode `0700` on unix) and so is every file (`0600`); the secrets file is
    /// created with mode `0600`.
    ///
    /// Privacy: whoever can read the secrets file of an unfinished run can regenerate every
    /// step's batch and noise and, with the intermediate models, remove the noise: keep it as
    /// private as the data. A checkpoint written once the run is finished (steps taken =
    /// planned steps) has no secrets file, and nothing of the previous version of `dir`
    /// (which had one) is kept; loading it gives a trainer that reports its ledger but
    /// cannot step.
    pub fn save_checkpoint(&self, model: &M, dir: &Path) -> Result<(), DpOptimError> {
        let engine = self.engine.state();
        let finished = engine.steps_taken >= engine.planned_steps;
        replace_dir(dir, |partial| -> Result<(), DpOptimError> {
            let model_path = partial.join(MODEL_FILE);
            crate::initialise_params(model);
            model
                .clone()
                .save_file(&model_path, &recorder())
                .map_err(|e| checkpoint_error(&model_path, e))?;
            self.optimizer.save(&partial.join(OPTIMIZER_FILE))?;
            if let (false, Some(rng)) = (finished, &engine.rng) {
                let secrets = Secrets {
                    format: CHECKPOINT_FORMAT.to_string(),
                    steps_taken: engine.steps_taken,
                    rng: rng.clone(),
                    sampling_key: engine.sampling_key.clone(),
                };
                let path = partial.join(CHECKPOINT_SECRETS_FILE);
                let json = serde_json::to_vec(&secrets).map_err(|e| checkpoint_error(&path, e))?;
                write_private(&path, &json)?;
            }
            let state = SavedState {
                format: CHECKPOINT_FORMAT.to_string(),
                optimizer: self.optimizer_config.clone(),
                schedule: self.schedule.clone(),
                engine: PublicEngineState {
                    config: engine.config.clone(),
                    noise_multiplier: engine.noise_multiplier,
                    planned_steps: engine.planned_steps,
                    steps_taken: engine.steps_taken,
                    ledger: engine.ledger.clone(),
                    resolved_path: engine.resolved_path,
                    insecure: engine.insecure,
                },
            };
            let state_path = partial.join(STATE_FILE);
            let json =
                serde_json::to_vec_pretty(&state).map_err(|e| checkpoint_error(&state_path, e))?;
            // written last: its presence marks a complete checkpoint
            Ok(write_private(&state_path, &json)?)
        })
    }

    /// Reads a checkpoint written by [`Self::save_checkpoint`]: the weights are loaded into
    /// `model` (a model of the same architecture, e.g. freshly initialised) and the
    /// optimiser, schedule and engine continue where they stopped. A checkpoint interrupted
    /// while replacing the previous one is recovered from that previous one.
    ///
    /// An unfinished run needs its [`CHECKPOINT_SECRETS_FILE`] (an error naming it when it
    /// is missing, unreadable or belongs to another step). A finished run's checkpoint loads
    /// without it: model, ledger and ε are there, [`Self::can_step`] is false and
    /// [`Self::step`] fails with [`DpOptimError::BudgetExhausted`]. A checkpoint of another
    /// format (e.g. `dp-optim-checkpoint-1`) is refused.
    pub fn load_checkpoint(
        dir: &Path,
        model: M,
        device: &B::Device,
    ) -> Result<(Self, M), DpOptimError> {
        let found = readable_dir(dir, STATE_FILE);
        let dir = found.as_deref().unwrap_or(dir);
        let state_path = dir.join(STATE_FILE);
        let text = fs::read_to_string(&state_path).map_err(|e| checkpoint_error(&state_path, e))?;
        let format: Format =
            serde_json::from_str(&text).map_err(|e| checkpoint_error(&state_path, e))?;
        if format.format != CHECKPOINT_FORMAT {
            let why = if format.format == OLD_FORMAT {
                " (written by an older dp-optim that kept the random stream in trainer.json: resume it with that version, or start the run again)"
            } else {
                ""
            };
            return Err(checkpoint_error(
                &state_path,
                format!(
                    "format {:?}, expected {CHECKPOINT_FORMAT:?}{why}",
                    format.format
                ),
            ));
        }
        let state: SavedState =
            serde_json::from_str(&text).map_err(|e| checkpoint_error(&state_path, e))?;
        let public = state.engine;
        let (rng, sampling_key) = if public.steps_taken < public.planned_steps {
            let secrets = read_secrets(&dir.join(CHECKPOINT_SECRETS_FILE), public.steps_taken)?;
            (Some(secrets.rng), secrets.sampling_key)
        } else {
            (None, None)
        };
        let engine = EngineState {
            config: public.config,
            noise_multiplier: public.noise_multiplier,
            planned_steps: public.planned_steps,
            steps_taken: public.steps_taken,
            ledger: public.ledger,
            rng,
            insecure: public.insecure,
            resolved_path: public.resolved_path,
            sampling_key,
        };
        let model_path = dir.join(MODEL_FILE);
        let model = model
            .load_file(&model_path, &recorder(), device)
            .map_err(|e| DpOptimError::Checkpoint {
                path: model_path,
                source: Box::new(e),
            })?;
        let optimizer = state
            .optimizer
            .init::<B, M>()
            .load(&dir.join(OPTIMIZER_FILE), device)?;
        Ok((
            Self {
                engine: PrivacyEngine::from_state(engine)?,
                optimizer,
                optimizer_config: state.optimizer,
                schedule: state.schedule,
            },
            model,
        ))
    }
}

/// The secrets file of an unfinished run whose `trainer.json` is at step `steps_taken`.
fn read_secrets(path: &Path, steps_taken: u64) -> Result<Secrets, DpOptimError> {
    let text = fs::read_to_string(path).map_err(|e| {
        checkpoint_error(
            path,
            format!("the secrets file of an unfinished run (random stream and sampling key), needed to resume it: {e}"),
        )
    })?;
    let secrets: Secrets = serde_json::from_str(&text).map_err(|e| checkpoint_error(path, e))?;
    if secrets.format != CHECKPOINT_FORMAT {
        return Err(checkpoint_error(
            path,
            format!(
                "format {:?}, expected {CHECKPOINT_FORMAT:?}",
                secrets.format
            ),
        ));
    }
    if secrets.steps_taken != steps_taken {
        return Err(checkpoint_error(
            path,
            format!(
                "belongs to step {} but trainer.json is at step {steps_taken}: not this checkpoint's secrets",
                secrets.steps_taken
            ),
        ));
    }
    Ok(secrets)
}
