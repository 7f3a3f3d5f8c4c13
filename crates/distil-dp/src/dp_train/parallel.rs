//! DP-SGD on several devices of one process: one thread per device, each a worker of a
//! [`DataParallelTrainer`]; worker 0 (the calling thread) keeps the ledger and checkpoints.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::Gpt2;
use dp_optim::parallel::{BurnCollective, DEFAULT_TIMEOUT, DataParallelTrainer};
use dp_optim::{DpRng, DpTrainer, PrivacyEngine};

use super::PrivateExamples;
use crate::backend::nth_device;
use crate::error::DistilDpError;

/// Worker 0's trainer (the job's ledger) and model.
type Trained<B> = (DpTrainer<B, Gpt2<B>>, Gpt2<B>);

/// Runs the training's remaining steps (at most `limit`) on `replicas.len() + 1` workers:
/// this thread with `data` on the model's device, and one thread per replica on devices
/// `1..`. `is_checkpoint(taken, planned)` says after which steps worker 0 checkpoints to
/// `dir`; `report` is called after every step on worker 0. Returns worker 0's trainer (the
/// job's ledger) and model.
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
                        let (mut job, mut model) =
                            DataParallelTrainer::start(trainer, replica_model, group)?;
                        let mut taken_now = 0u64;
                        while job.can_step() && limit.is_none_or(|l| taken_now < l) {
                            model = job.step(model, &mut replica).map_err(|f| f.error)?;
                            taken_now += 1;
                        }
                        let (_, group) = job.into_parts();
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
        let lead = (|| -> Result<_, DistilDpError> {
            let group = Group::<B>::register(
                0,
                workers,
                nth_device::<B::InnerBackend>(0),
                DEFAULT_TIMEOUT,
            )?;
            let (mut job, mut model) = DataParallelTrainer::start(trainer, model, group)?;
            let mut taken_now = 0u64;
            while job.can_step() && limit.is_none_or(|l| taken_now < l) {
                model = job.step(model, data).map_err(|f| f.error)?;
                taken_now += 1;
                let (taken, planned) = job.steps();
                let checkpointed = is_checkpoint(taken, planned);
                if checkpointed {
                    job.save_checkpoint(&model, dir)?;
                }
                report(job.trainer().engine(), checkpointed)?;
            }
            let (trainer, group) = job.into_parts();
            group.finish()?;
            Ok((trainer, model))
        })();
        if lead.is_err() {
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
        let done = lead?;
        match failure {
            Some(e) => Err(e),
            None => Ok(done),
        }
    })
}
