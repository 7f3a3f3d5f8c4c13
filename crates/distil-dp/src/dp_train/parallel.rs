//! Data-parallel DP-SGD through [`DataParallelTrainer`]: worker 0 ([`lead`]) keeps the
//! ledger and checkpoints; the other workers ([`follow`]) only compute. Workers are threads
//! of this process, one per device ([`train_threads`]), or processes ([`super::Processes`]).

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::Gpt2;
use dp_optim::parallel::{BurnCollective, Collective, DEFAULT_TIMEOUT, DataParallelTrainer};
use dp_optim::{DpRng, DpTrainer, PrivacyEngine};

use super::PrivateExamples;
use crate::backend::nth_device;
use crate::error::DistilDpError;

/// Worker 0's trainer (the job's ledger) and model.
type Trained<B> = (DpTrainer<B, Gpt2<B>>, Gpt2<B>);

/// What a worker does after each step (worker 0: checkpoint and report).
type AfterStep<'a, B, C> =
    dyn FnMut(&DataParallelTrainer<B, Gpt2<B>, C>, &Gpt2<B>) -> Result<(), DistilDpError> + 'a;

/// Joins `group` and takes the job's remaining steps (at most `limit`), calling
/// `after_step` after each; returns this worker's trainer, model and group, and the number
/// of steps taken.
fn steps<B, L, C>(
    trainer: DpTrainer<B, Gpt2<B>>,
    model: Gpt2<B>,
    data: &mut L,
    group: C,
    limit: Option<u64>,
    after_step: &mut AfterStep<'_, B, C>,
) -> Result<(Trained<B>, C, u64), DistilDpError>
where
    B: AutodiffBackend,
    L: PrivateExamples<B>,
    C: Collective<B::InnerBackend>,
{
    let (mut job, mut model) = DataParallelTrainer::start(trainer, model, group)?;
    let mut taken_now = 0u64;
    while job.can_step() && limit.is_none_or(|l| taken_now < l) {
        model = job.step(model, data).map_err(|f| f.error)?;
        taken_now += 1;
        after_step(&job, &model)?;
    }
    let (trainer, group) = job.into_parts();
    Ok(((trainer, model), group, taken_now))
}

/// Worker 0: joins `group` with the job's `trainer` and `model`, takes the remaining steps
/// (at most `limit`), checkpoints to `dir` after the steps `is_checkpoint(taken, planned)`
/// names, and calls `report` after every step.
#[allow(clippy::too_many_arguments)]
pub(super) fn lead<B, L, C>(
    trainer: DpTrainer<B, Gpt2<B>>,
    model: Gpt2<B>,
    data: &mut L,
    group: C,
    dir: &Path,
    limit: Option<u64>,
    is_checkpoint: &dyn Fn(u64, u64) -> bool,
    report: &mut dyn FnMut(&PrivacyEngine, bool) -> Result<(), DistilDpError>,
) -> Result<(Trained<B>, C), DistilDpError>
where
    B: AutodiffBackend,
    L: PrivateExamples<B>,
    C: Collective<B::InnerBackend>,
{
    let mut after_step = |job: &DataParallelTrainer<B, Gpt2<B>, C>, model: &Gpt2<B>| {
        let (taken, planned) = job.steps();
        let checkpointed = is_checkpoint(taken, planned);
        if checkpointed {
            job.save_checkpoint(model, dir)?;
        }
        report(job.trainer().engine(), checkpointed)
    };
    let (done, group, _) = steps(trainer, model, data, group, limit, &mut after_step)?;
    Ok((done, group))
}

/// Any other worker: joins `group` (its `trainer` built from the job's configuration, its
/// `model` of the job's architecture) and takes part in the remaining steps (at most
/// `limit`); returns how many.
pub(super) fn follow<B, L, C>(
    trainer: DpTrainer<B, Gpt2<B>>,
    model: Gpt2<B>,
    data: &mut L,
    group: C,
    limit: Option<u64>,
) -> Result<(u64, C), DistilDpError>
where
    B: AutodiffBackend,
    L: PrivateExamples<B>,
    C: Collective<B::InnerBackend>,
{
    let (_, group, taken) = steps(trainer, model, data, group, limit, &mut |_, _| Ok(()))?;
    Ok((taken, group))
}

/// Runs the training's remaining steps (at most `limit`) on `replicas.len() + 1` workers:
/// this thread with `data` on the model's device ([`lead`]), and one thread per replica on
/// devices `1..` ([`follow`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn train_threads<B, L>(
    trainer: DpTrainer<B, Gpt2<B>>,
    model: Gpt2<B>,
    data: &mut L,
    replicas: Vec<L>,
    dir: &Path,
    limit: Option<u64>,
    is_checkpoint: &dyn Fn(u64, u64) -> bool,
    report: &mut dyn FnMut(&PrivacyEngine, bool) -> Result<(), DistilDpError>,
) -> Result<Trained<B>, DistilDpError>
where
    B: AutodiffBackend,
    L: PrivateExamples<B> + Send,
{
    type Group<B> = BurnCollective<<B as AutodiffBackend>::InnerBackend>;
    let workers = replicas.len() + 1;
    let config = trainer.config();
    Group::<B>::reset();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = replicas
            .into_iter()
            .enumerate()
            .map(|(i, mut replica)| {
                let rank = i + 1;
                let device = nth_device::<B>(rank);
                let replica_model = model.clone().fork(&device);
                let config = config.clone();
                scope.spawn(move || {
                    let result = (|| -> Result<(), DistilDpError> {
                        let group = Group::<B>::register(
                            rank,
                            workers,
                            nth_device::<B::InnerBackend>(rank),
                            DEFAULT_TIMEOUT,
                        )?;
                        // this worker's stream is never used for a release: worker 0's is
                        let trainer = DpTrainer::<B, Gpt2<B>>::new(config, DpRng::secure()?)?;
                        let (_, group) =
                            follow(trainer, replica_model, &mut replica, group, limit)?;
                        group.finish()?;
                        Ok(())
                    })();
                    if result.is_err() {
                        // release the workers blocked in a collective call
                        Group::<B>::reset();
                    }
                    result
                })
            })
            .collect();
        let result = (|| -> Result<_, DistilDpError> {
            let group = Group::<B>::register(
                0,
                workers,
                nth_device::<B::InnerBackend>(0),
                DEFAULT_TIMEOUT,
            )?;
            let (done, group) = lead(
                trainer,
                model,
                data,
                group,
                dir,
                limit,
                is_checkpoint,
                report,
            )?;
            group.finish()?;
            Ok(done)
        })();
        if result.is_err() {
            Group::<B>::reset();
        }
        let mut failure = None;
        for helper in helpers {
            match helper.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => {
                    failure = failure.or(Some(DistilDpError::Worker(
                        "a worker thread panicked (see the message above)".into(),
                    )))
                }
            }
        }
        let done = result?;
        match failure {
            Some(e) => Err(e),
            None => Ok(done),
        }
    })
}
