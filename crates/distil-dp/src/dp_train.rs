//! DP-SGD training of a GPT-2 on private token blocks, checkpointed and resumable: stage 1
//! (the teacher) and the DP-SGD baselines. [`train`] and [`follow`] take any model DP-SGD
//! can train ([`DpModel`]): a plain [`Gpt2`], or a [`LoraGpt2`] whose adapters alone are
//! trained (DP-LoRA, `[teacher.lora]`), released as a plain GPT-2 either way.

use std::path::Path;
use std::time::Duration;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use causal_lm::{Gpt2, Gpt2Config, LoraConfig, LoraGpt2};
use dp_accounting::PrivacyLedger;
use dp_optim::parallel::{DEFAULT_TIMEOUT, Solo, TcpCollective};
use dp_optim::{
    DpRng, DpTrainer, DriveConfig, EngineConfig, ExampleLoss, PrivacyEngine, Replicate, StepEvent,
    TrainerConfig, Workers, drive,
};
use serde::{Deserialize, Serialize};
use train_kit::Cadence;

use crate::config::{DpSgdConfig, ModelConfig};
use crate::error::{DistilDpError, Mismatch};
use crate::progress::StepLine;

/// What one call achieved.
#[derive(Debug)]
pub enum Progress<M> {
    /// Every planned step is taken; the final model.
    Done(M),
    /// The call's step limit was reached; the checkpoint holds the state to resume from.
    Paused {
        /// Steps taken so far (all calls).
        taken: u64,
        /// Steps planned.
        planned: u64,
    },
}

/// A fresh GPT-2 of `model`'s shape for `tokenizer`'s vocabulary and `positions` positions,
/// initialised from the public `seed` (burn's device RNG is seeded first) and materialised:
/// burn creates parameters lazily, and a clone of a still-lazy parameter would draw its own
/// values.
pub fn fresh_model<B: Backend>(
    model: &ModelConfig,
    vocab_size: usize,
    eos: u32,
    positions: usize,
    seed: u64,
    device: &B::Device,
) -> Result<Gpt2<B>, DistilDpError> {
    let mut config = Gpt2Config::new(
        vocab_size,
        positions,
        model.n_embd,
        model.n_layer,
        model.n_head,
    );
    config.eos_token_id = Some(eos);
    B::seed(device, seed);
    let gpt = config.init::<B>(device)?;
    dp_optim::initialise_params(&gpt);
    Ok(gpt)
}

/// What a DP-SGD training spent and how: the numbers the report's ledger shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpSummary {
    /// Noise multiplier σ (noise std / clipping norm).
    pub noise_multiplier: f64,
    /// Poisson sampling rate q.
    pub sample_rate: f64,
    /// Steps taken.
    pub steps: u64,
    /// Steps planned.
    pub planned_steps: u64,
    /// Clipping norm C.
    pub max_grad_norm: f64,
    /// Expected batch size.
    pub expected_batch_size: f64,
    /// Records the sampling rate refers to.
    pub records: usize,
    /// ε of the whole ledger (prior releases included) at `delta`.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// The accountant.
    pub accountant: dp_accounting::AccountantKind,
    /// Every release, prior ones included.
    pub ledger: PrivacyLedger,
    /// Whether the noise came from a caller-seeded stream (no privacy guarantee).
    pub insecure: bool,
}

/// The summary of `trainer`'s run (its ledger as the engine recorded it: prior releases,
/// then this training's steps under its label, [`EngineConfig::ledger_label`]).
fn summary(trainer: &PrivacyEngine, delta: f64) -> Result<DpSummary, DistilDpError> {
    let state = trainer.state();
    Ok(DpSummary {
        noise_multiplier: state.noise_multiplier,
        sample_rate: trainer.sample_rate(),
        steps: state.steps_taken,
        planned_steps: state.planned_steps,
        max_grad_norm: state.config.max_grad_norm,
        expected_batch_size: state.config.expected_batch_size,
        records: state.config.dataset_size,
        epsilon: trainer.epsilon_spent()?,
        delta,
        accountant: state.config.accountant,
        ledger: state.ledger.clone(),
        insecure: trainer.is_insecure(),
    })
}

/// A per-example loss of model `M` over a known number of records (what DP-SGD samples
/// from), which the driver can replicate onto another device for a data-parallel worker
/// thread ([`Replicate`]; `None` there: the training runs on one worker).
pub trait PrivateExamples<B: AutodiffBackend, M>: ExampleLoss<B, M> + Replicate<B> {
    /// Number of records.
    fn records(&self) -> usize;
}

/// A model DP-SGD trains in the pipeline: a [`Gpt2`] (every parameter trained) or a
/// [`LoraGpt2`] (the adapters only: its base is frozen), released as a plain [`Gpt2`]
/// either way, so that generation, distillation, evaluation and exported checkpoints see
/// one kind of model.
pub trait DpModel<B: AutodiffBackend>: AutodiffModule<B> {
    /// The released model: the model itself, or the adapters merged into the base.
    fn released(self) -> Gpt2<B>;

    /// How DP-SGD trained it, for the report; `training`: the training's name.
    fn fine_tuning(&self, training: &str) -> DpFineTuning;
}

impl<B: AutodiffBackend> DpModel<B> for Gpt2<B> {
    fn released(self) -> Gpt2<B> {
        self
    }

    fn fine_tuning(&self, training: &str) -> DpFineTuning {
        DpFineTuning {
            training: training.to_string(),
            lora: None,
            trainable_parameters: self.num_params(),
            parameters: self.num_params(),
        }
    }
}

impl<B: AutodiffBackend> DpModel<B> for LoraGpt2<B> {
    fn released(self) -> Gpt2<B> {
        self.merge()
    }

    fn fine_tuning(&self, training: &str) -> DpFineTuning {
        DpFineTuning {
            training: training.to_string(),
            lora: Some(self.lora.clone()),
            trainable_parameters: self.adapter_parameters(),
            parameters: self.base.num_params(),
        }
    }
}

/// How one DP training of a run trained its model (the report's `dp_trainings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpFineTuning {
    /// The training (`teacher`, `dp-sgd-student`, `dpkd-teacher`, `dpkd-student`).
    pub training: String,
    /// The adapters DP-SGD trained (rank, α, projections and the public seed of `A`);
    /// `None`: every parameter (full fine-tuning).
    pub lora: Option<LoraConfig>,
    /// Parameters DP-SGD trained: clipped, noised and updated.
    pub trainable_parameters: usize,
    /// Parameters of the released model (with LoRA: the merged model, the size of its base).
    pub parameters: usize,
}

/// Settings of one DP-SGD training.
#[derive(Debug, Clone)]
pub struct DpTraining<'a> {
    /// The ledger label of this training's steps in [`DpSummary::ledger`] (`teacher`, …).
    pub label: &'a str,
    /// Sampling, clipping, optimiser and schedule (the `[teacher]` section's DP-SGD keys).
    pub settings: &'a DpSgdConfig,
    /// Total ε of this training, prior releases included.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// The accountant.
    pub accountant: dp_accounting::AccountantKind,
    /// Noise stream seed for an explicitly insecure reproducible run; `None`: from the OS.
    pub insecure_noise_seed: Option<u64>,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Data-parallel workers: threads of this process, one per device of the backend
    /// (device `k` for worker `k`; the CPU for every worker of a CPU backend). 1: no
    /// collective at all. See `docs/scaling.md`.
    pub workers: usize,
    /// Worker 0 of a training spread over processes (the others run [`follow`]); exclusive
    /// with `workers > 1`.
    pub processes: Option<&'a Processes>,
    /// The private data's fingerprint, kept in every checkpoint: resuming a checkpoint made
    /// on other data is refused.
    pub dataset: Option<&'a str>,
}

/// This process's place in a DP-SGD training spread over several processes (possibly on
/// several machines): worker `rank` of `world`, meeting at worker 0's `address`
/// (`host:port`, which worker 0 listens on) through `dp_optim::parallel::TcpCollective`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processes {
    /// This process's rank, `< world`; 0 keeps the ledger and the checkpoint.
    pub rank: usize,
    /// Number of processes, `>= 2`.
    pub world: usize,
    /// Worker 0's `host:port`.
    pub address: String,
    /// How long to wait for the other processes: to connect, and in every step.
    pub timeout: Duration,
}

impl Processes {
    /// Refuses `world < 2`, `rank >= world` and an empty address, naming the argument.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if self.world < 2 {
            return Err(DistilDpError::InvalidArgument {
                field: "world",
                value: self.world.to_string(),
                expected: "an integer >= 2 (the number of processes)",
            });
        }
        if self.rank >= self.world {
            return Err(DistilDpError::InvalidArgument {
                field: "rank",
                value: self.rank.to_string(),
                expected: "an integer in [0, world)",
            });
        }
        if self.address.is_empty() {
            return Err(DistilDpError::InvalidArgument {
                field: "address",
                value: String::new(),
                expected: "worker 0's host:port",
            });
        }
        Ok(())
    }
}

/// The DP-SGD configuration of `training` over `records` records.
fn trainer_config(training: &DpTraining<'_>, records: usize) -> TrainerConfig {
    let s = training.settings;
    let mut engine = EngineConfig::new(
        training.epsilon,
        training.delta,
        s.epochs,
        records,
        s.expected_batch_size,
        s.max_grad_norm,
    );
    engine.accountant = training.accountant;
    engine.clipping = s.clipping;
    engine.clipping_path = s.clipping_path;
    engine.physical_batch_size = s.physical_batch_size;
    engine.dataset_id = training.dataset.map(str::to_string);
    engine.ledger_label = training.label.to_string();
    TrainerConfig {
        engine,
        optimizer: s.optimizer.clone(),
        schedule: s.schedule.clone(),
    }
}

/// What `training` would spend, checked before anything is released: the engine is
/// validated and σ calibrated for every planned step after `prior` (as [`train`] will do), and
/// the ledger the finished training will hold is returned (`prior` and the planned steps).
/// Fails, releasing nothing, when the plan cannot meet the budget or its settings are out of
/// range (an expected batch larger than the data, an ε or δ no σ can reach, …).
pub fn plan(
    training: &DpTraining<'_>,
    records: usize,
    prior: PrivacyLedger,
) -> Result<PlannedTraining, DistilDpError> {
    training.settings.validate()?;
    let config = trainer_config(training, records);
    // a throwaway stream: nothing is sampled or drawn
    let label = config.engine.ledger_label.clone();
    let engine = PrivacyEngine::after(config.engine, DpRng::secure()?, prior.clone())?;
    let (_, planned) = engine.steps();
    let mut ledger = prior;
    if planned > 0 {
        ledger
            .record(
                &label,
                dp_accounting::DpEvent::poisson_sampled_gaussian(
                    engine.sample_rate(),
                    engine.noise_multiplier(),
                )
                .and_then(|e| e.self_composed(planned))
                .map_err(dp_optim::DpOptimError::from)?,
            )
            .map_err(dp_optim::DpOptimError::from)?;
    }
    Ok(PlannedTraining {
        noise_multiplier: engine.noise_multiplier(),
        steps: planned,
        ledger,
    })
}

/// A DP-SGD training as [`plan`] calibrated it, before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTraining {
    /// The calibrated σ.
    pub noise_multiplier: f64,
    /// The planned steps.
    pub steps: u64,
    /// The ledger once every planned step is taken (the prior releases included).
    pub ledger: PrivacyLedger,
}

/// Worker `processes.rank` (not 0) of a training that worker 0 runs with [`train`]: joins
/// it, takes part in every remaining step on its shard of `data`, and returns the steps it
/// took part in. It keeps nothing: worker 0 holds the ledger and writes the checkpoint, and
/// sends this worker its parameters, step count and sampling key at the start.
///
/// `model` must be of the kind and shape worker 0 trains (with LoRA: adapted with the same
/// settings): its values are replaced by worker 0's, and the workers check that their
/// parameter counts agree.
pub fn follow<B: AutodiffBackend, M: AutodiffModule<B>, L: PrivateExamples<B, M> + Send>(
    training: &DpTraining<'_>,
    processes: &Processes,
    model: M,
    data: &mut L,
) -> Result<u64, DistilDpError> {
    processes.validate()?;
    if processes.rank == 0 {
        return Err(DistilDpError::InvalidArgument {
            field: "rank",
            value: "0".into(),
            expected: "a rank >= 1 (worker 0 runs the training itself)",
        });
    }
    let group = TcpCollective::connect(
        processes.rank,
        processes.world,
        &processes.address,
        processes.timeout,
    )?
    .with_timeout(processes.timeout)?;
    let trainer = DpTrainer::new(trainer_config(training, data.records()), DpRng::secure()?)?;
    let driven = drive(
        trainer,
        model,
        data,
        Workers::Processes(group),
        &DriveConfig::default(),
        &mut |_| {},
    )?;
    Ok(driven.taken)
}

/// Trains `model` with DP-SGD on `data` until the planned steps are taken, resuming from the
/// checkpoint in `dir` when there is one (the ledger then continues, nothing is repeated or
/// lost: the model, optimiser, engine and noise stream come back exactly). `prior` holds the
/// releases made before (e.g. the label histogram); σ is calibrated so that they and every
/// planned step spend at most `epsilon`. At most `limit` steps are taken in this call
/// (`Some(0)`: only load, e.g. to ask whether a training is complete).
///
/// With `training.workers > 1` and a loss that can be replicated
/// ([`Replicate::replicate`]), the steps run data-parallel on that many threads, one per
/// device (`dp_optim::drive` with `DataParallelTrainer`: the same ε and the same kind of update, one
/// ledger and checkpoint); otherwise on this thread.
///
/// `model` is any model DP-SGD trains ([`DpModel`]: a [`Gpt2`], or a [`LoraGpt2`] whose
/// adapters alone are trained); the checkpoint holds that model, and a resumed training must
/// be given one of the same kind and shape (its values are replaced by the checkpoint's).
///
/// `log` receives one [`StepLine`] per step (`steps`, `planned_steps`, `workers`; no time,
/// which would reveal the private batch sizes), with
/// `checkpoint: true` and the ε spent so far on checkpoint steps. Training losses are not
/// logged: they are computed on private records, outside the DP guarantee.
pub fn train<B: AutodiffBackend, M: AutodiffModule<B>, L: PrivateExamples<B, M> + Send>(
    training: &DpTraining<'_>,
    model: M,
    data: &mut L,
    prior: PrivacyLedger,
    dir: &Path,
    limit: Option<u64>,
    log: &mut dyn FnMut(&StepLine),
) -> Result<(Progress<M>, DpSummary), DistilDpError> {
    let device = model.devices().into_iter().next().unwrap_or_default();
    let (trainer, model) = if dp_optim::checkpoint_exists(dir) {
        let (trainer, model) = DpTrainer::<B, M>::load_checkpoint(dir, model, &device)?;
        let saved = trainer.config().engine.dataset_id;
        if training.dataset.is_some() && saved.as_deref() != training.dataset {
            return Err(DistilDpError::ReleaseMismatch(Box::new(Mismatch {
                part: "DP-SGD checkpoint",
                private: true,
                stage: "teacher",
                dir: dir.to_path_buf(),
                field: "data (fingerprint of the input file and of the training split)".into(),
                recorded: saved.unwrap_or_else(|| "(none)".into()),
                now: training.dataset.unwrap_or_default().to_string(),
            })));
        }
        (trainer, model)
    } else {
        let rng = match training.insecure_noise_seed {
            Some(seed) => DpRng::insecure_seeded(seed),
            None => DpRng::secure()?,
        };
        let config = trainer_config(training, data.records());
        (DpTrainer::after(config, rng, prior)?, model)
    };
    let processes = match training.processes {
        Some(p) if limit != Some(0) => {
            p.validate()?;
            if p.rank != 0 || training.workers > 1 {
                return Err(DistilDpError::InvalidArgument {
                    field: "rank",
                    value: format!("{} (with workers = {})", p.rank, training.workers),
                    expected: "rank 0 and workers = 1 for the process that trains (the others follow)",
                });
            }
            Some(p)
        }
        _ => None,
    };
    let drive_config = DriveConfig {
        checkpoint_dir: Some(dir.to_path_buf()),
        cadence: Cadence {
            checkpoint_every: training.checkpoint_every,
            limit,
        },
        timeout: DEFAULT_TIMEOUT,
    };
    let mut report = |event: &StepEvent| {
        // no time or realised batch size: both depend on the private Poisson samples
        log(&StepLine {
            steps: event.taken,
            planned_steps: event.planned,
            workers: Some(event.workers),
            checkpoint: event.checkpoint.map(|_| true),
            epsilon: event.checkpoint.map(|at| at.epsilon),
            noise_multiplier: event.checkpoint.map(|at| at.noise_multiplier),
            ..StepLine::default()
        });
    };
    let driven = if let Some(p) = processes {
        // connect even when nothing is left to train: the others then learn it and stop
        let group =
            TcpCollective::connect(0, p.world, &p.address, p.timeout)?.with_timeout(p.timeout)?;
        drive(
            trainer,
            model,
            data,
            Workers::Processes(group),
            &drive_config,
            &mut report,
        )?
    } else {
        let workers = if training.workers > 1 && trainer.can_step() && limit != Some(0) {
            Workers::Threads(
                (0..training.workers)
                    .map(crate::backend::nth_device::<B>)
                    .collect(),
            )
        } else {
            Workers::One
        };
        drive::<B, _, _, Solo>(trainer, model, data, workers, &drive_config, &mut report)?
    };
    let (trainer, model) = (driven.trainer, driven.model);
    let done = summary(trainer.engine(), training.delta)?;
    let (taken, planned) = trainer.engine().steps();
    if taken < planned {
        trainer.save_checkpoint(&model, dir)?;
        return Ok((Progress::Paused { taken, planned }, done));
    }
    Ok((Progress::Done(model), done))
}
