//! One training driver for one worker, the threads of one process, or several processes:
//! the step loop, the checkpoint cadence, the step limit and the progress events, written
//! once for every DP-SGD training of the workspace.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use crate::error::DpOptimError;
use crate::loss::ExampleLoss;
use crate::parallel::{BurnCollective, Collective, DEFAULT_TIMEOUT, DataParallelTrainer};
use crate::rng::DpRng;
use crate::trainer::DpTrainer;
use train_kit::{Cadence, Replicate};

/// Where the steps of a training run.
#[derive(Debug)]
pub enum Workers<B: AutodiffBackend, C> {
    /// This thread alone: no collective at all.
    One,
    /// One worker per device, each a thread of this process (`burn-collective`'s local
    /// mode): worker 0 is this thread with the model where it is (`devices[0]` should be its
    /// device); worker `k` runs on `devices[k]` with a replica of the loss
    /// ([`Replicate`]). With fewer than two devices, or a loss that cannot be replicated,
    /// the training runs as [`Workers::One`].
    Threads(Vec<B::Device>),
    /// This process is one worker of several (processes or machines): its rank and the
    /// world come from the collective. Worker 0 keeps the ledger, writes the checkpoint and
    /// reports the steps; the others only compute (their trainer is built from the job's
    /// configuration, their model has the job's architecture: worker 0 sends its
    /// parameters, step count and sampling key at the start).
    Processes(C),
}

/// How the driver runs a training.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveConfig {
    /// Worker 0 checkpoints here ([`DpTrainer::save_checkpoint`]) on the cadence's steps;
    /// `None`: never.
    pub checkpoint_dir: Option<PathBuf>,
    /// The checkpoint cadence and the step limit of this call (`train_kit`'s, shared with
    /// the non-private trainings).
    pub cadence: Cadence,
    /// The deadline of every collective operation of [`Workers::Threads`] (processes bring
    /// their own collective, with its own deadline).
    pub timeout: Duration,
}

impl Default for DriveConfig {
    fn default() -> Self {
        Self {
            checkpoint_dir: None,
            cadence: Cadence::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What worker 0 reports after each step. It carries no time, batch size or loss: those
/// depend on the private Poisson sample and are outside the DP guarantee.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct StepEvent {
    /// Steps taken so far (all calls).
    pub taken: u64,
    /// Steps planned.
    pub planned: u64,
    /// Workers taking part.
    pub workers: usize,
    /// Set on the steps after which a checkpoint was written.
    pub checkpoint: Option<Checkpointed>,
}

/// The privacy state at a checkpoint (public: ε spent so far and σ).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Checkpointed {
    /// ε spent so far (the whole ledger, prior releases included).
    pub epsilon: f64,
    /// The noise multiplier σ.
    pub noise_multiplier: f64,
}

/// What a call of [`drive`] ends with.
#[derive(Debug)]
pub struct Driven<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// This worker's trainer (worker 0's holds the job's ledger).
    pub trainer: DpTrainer<B, M>,
    /// This worker's model (every worker's is the same after each step).
    pub model: M,
    /// Steps taken in this call.
    pub taken: u64,
}

/// Runs `trainer`'s remaining steps (at most `config.cadence.limit`) of `model` on `loss` where
/// `workers` says, checkpointing on the cadence and calling `on_step` after each step (on
/// worker 0 only). The ε, the ledger and the kind of update are those of one worker:
/// [`DataParallelTrainer`] samples one Poisson batch across the workers and adds the
/// noise once. A failed step leaves the last checkpoint as the state to resume from.
pub fn drive<B, M, L, C>(
    trainer: DpTrainer<B, M>,
    model: M,
    loss: &mut L,
    workers: Workers<B, C>,
    config: &DriveConfig,
    on_step: &mut dyn FnMut(&StepEvent),
) -> Result<Driven<B, M>, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    L: ExampleLoss<B, M> + Replicate<B> + Send,
    C: Collective<B::InnerBackend>,
{
    match workers {
        Workers::One => one(trainer, model, loss, config, on_step),
        Workers::Processes(group) => {
            let (driven, _group) = joined(trainer, model, loss, group, config, on_step)?;
            Ok(driven)
        }
        Workers::Threads(devices) => {
            let replicas: Option<Vec<L>> = devices
                .iter()
                .skip(1)
                .map(|device| loss.replicate(device))
                .collect();
            match replicas {
                Some(replicas) if !replicas.is_empty() && trainer.can_step() => {
                    threads(trainer, model, loss, replicas, &devices, config, on_step)
                }
                _ => one(trainer, model, loss, config, on_step),
            }
        }
    }
}

/// Whether step `taken` of `planned` is a checkpoint step.
fn is_checkpoint(config: &DriveConfig, taken: u64, planned: u64) -> bool {
    config.checkpoint_dir.is_some() && config.cadence.is_checkpoint(taken, planned)
}

/// The event of the step that brought `trainer` to its current count.
fn event<B: AutodiffBackend, M: AutodiffModule<B>>(
    trainer: &DpTrainer<B, M>,
    workers: usize,
    checkpointed: bool,
) -> Result<StepEvent, DpOptimError> {
    let engine = trainer.engine();
    let (taken, planned) = engine.steps();
    let checkpoint = if checkpointed {
        Some(Checkpointed {
            epsilon: engine.epsilon_spent()?,
            noise_multiplier: engine.noise_multiplier(),
        })
    } else {
        None
    };
    Ok(StepEvent {
        taken,
        planned,
        workers,
        checkpoint,
    })
}

fn one<B, M, L>(
    mut trainer: DpTrainer<B, M>,
    mut model: M,
    loss: &mut L,
    config: &DriveConfig,
    on_step: &mut dyn FnMut(&StepEvent),
) -> Result<Driven<B, M>, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    L: ExampleLoss<B, M>,
{
    let mut taken_now = 0u64;
    while trainer.can_step() && config.cadence.may_step(taken_now) {
        model = trainer.step(model, loss).map_err(|f| f.error)?;
        taken_now += 1;
        let (taken, planned) = trainer.engine().steps();
        let checkpointed = is_checkpoint(config, taken, planned);
        if let (true, Some(dir)) = (checkpointed, &config.checkpoint_dir) {
            trainer.save_checkpoint(&model, dir)?;
        }
        on_step(&event(&trainer, 1, checkpointed)?);
    }
    Ok(Driven {
        trainer,
        model,
        taken: taken_now,
    })
}

/// This worker's part of a job on `group`: worker 0 checkpoints and reports, the others
/// compute.
fn joined<B, M, L, C>(
    trainer: DpTrainer<B, M>,
    model: M,
    loss: &mut L,
    group: C,
    config: &DriveConfig,
    on_step: &mut dyn FnMut(&StepEvent),
) -> Result<(Driven<B, M>, C), DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    L: ExampleLoss<B, M>,
    C: Collective<B::InnerBackend>,
{
    let lead = group.rank() == 0;
    let workers = group.world();
    let (mut job, mut model) = DataParallelTrainer::start(trainer, model, group)?;
    let mut taken_now = 0u64;
    while job.can_step() && config.cadence.may_step(taken_now) {
        model = job.step(model, loss).map_err(|f| f.error)?;
        taken_now += 1;
        if lead {
            let (taken, planned) = job.steps();
            let checkpointed = is_checkpoint(config, taken, planned);
            if let (true, Some(dir)) = (checkpointed, &config.checkpoint_dir) {
                job.save_checkpoint(&model, dir)?;
            }
            on_step(&event(job.trainer(), workers, checkpointed)?);
        }
    }
    let (trainer, group) = job.into_parts();
    Ok((
        Driven {
            trainer,
            model,
            taken: taken_now,
        },
        group,
    ))
}

/// Worker 0 on this thread, one thread per replica on `devices[1..]`.
fn threads<B, M, L>(
    trainer: DpTrainer<B, M>,
    model: M,
    loss: &mut L,
    replicas: Vec<L>,
    devices: &[B::Device],
    config: &DriveConfig,
    on_step: &mut dyn FnMut(&StepEvent),
) -> Result<Driven<B, M>, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    L: ExampleLoss<B, M> + Send,
{
    type Group<B> = BurnCollective<<B as AutodiffBackend>::InnerBackend>;
    let job_config = trainer.config();
    // each follower's loss and model, taken once by its thread
    let parts: Vec<Mutex<Option<(L, M)>>> = replicas
        .into_iter()
        .zip(&devices[1..])
        .map(|(replica, device)| Mutex::new(Some((replica, model.clone().fork(device)))))
        .collect();
    let inner: Vec<_> = devices.to_vec();
    let (lead, rest) = crate::parallel::lead_and_follow::<B::InnerBackend, _, _, DpOptimError>(
        &inner,
        config.timeout,
        |group| {
            let result = joined(trainer, model, loss, group, config, on_step);
            match result {
                Ok((driven, group)) => {
                    group.finish()?;
                    Ok(driven)
                }
                Err(e) => {
                    Group::<B>::reset(); // release the followers blocked in a collective call
                    Err(e)
                }
            }
        },
        |rank, group| {
            let (mut replica, model) = parts[rank - 1]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .expect("each follower runs once");
            // this worker's stream is never used for a release: worker 0's is
            let trainer = DpTrainer::<B, M>::new(job_config.clone(), DpRng::secure()?)?;
            let result = joined(trainer, model, &mut replica, group, config, &mut |_| {});
            match result {
                Ok((_, group)) => group.finish(),
                Err(e) => {
                    Group::<B>::reset(); // release worker 0 and the other followers
                    Err(e)
                }
            }
        },
    );
    let driven = lead?;
    rest.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(driven)
}
