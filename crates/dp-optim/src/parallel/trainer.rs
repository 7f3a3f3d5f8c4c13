//! Data-parallel DP-SGD: one logical step spread over the workers of a [`Collective`].

use std::path::Path;
use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use super::collective::Collective;
use super::flat::{flatten_grads, flatten_params, load_params, parameter_count, unflatten_grads};
use super::header::Header;
use super::{Shard, worker_shard};
use crate::error::DpOptimError;
use crate::loss::ExampleLoss;
use crate::sampler::PoissonSampler;
use crate::sampling_key::SamplingKey;
use crate::trainer::{DpTrainer, Failed};

/// What the last step did, the same on every worker.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepStats {
    /// Records in the logical batch (all workers).
    pub examples: u64,
    /// Of those, records whose gradient was clipped.
    pub clipped: u64,
    /// Of those, records left out of the sum for a non-finite gradient norm (see
    /// [`crate::ClippedSum::nonfinite`]). Like `clipped`, a count over private data: report
    /// it only through a DP mechanism or not at all.
    pub nonfinite: u64,
    /// This worker's sampling, forward and backward time.
    pub compute: Duration,
    /// This worker's time in the collective calls (including waiting for slower workers).
    pub communicate: Duration,
}

/// DP-SGD on several workers (threads, processes, machines) that behaves like one worker.
///
/// Each logical step:
/// 1. every worker Poisson-samples its own contiguous shard of the records
///    ([`Shard::range`]) with the run's [`SamplingKey`]: record `i`'s membership depends on
///    the key, the step and `i` only, so the union is exactly the Poisson sample a single
///    worker draws with that key;
/// 2. every worker computes the clipped per-example gradient sum of its records (the
///    engine's configured path and micro-batches);
/// 3. worker 0 adds the Gaussian noise `N(0, σ²C²)` to its partial sum, **once**; the sums
///    are all-reduced (only partial sums of clipped gradients and the noised total travel);
/// 4. worker 0 divides by the expected global batch `q·N` (never the realised size),
///    records the step in its ledger and applies the optimiser; its new parameters are
///    then sent to every worker (an all-reduce to which the others add zeros).
///
/// Worker 0 holds the only privacy state: the engine (σ, ledger, noise stream, sampling
/// key), the optimiser and the schedule, and writes the job's one checkpoint. The other
/// workers hold nothing that a restart needs: [`Self::start`] sends them worker 0's key,
/// step count and parameters, and checks that every worker has the same configuration.
///
/// Guarantee: with a secure [`crate::DpRng`] on worker 0, the updates are (target ε,
/// δ)-DP under add/remove of one record, exactly as [`DpTrainer`]'s: each step is one
/// Poisson-sampled Gaussian mechanism with the same q, σ and C, whatever the number of
/// workers, and the ledger records exactly those steps. It assumes every worker runs this
/// code unmodified on the same data (workers see raw records and exchange un-noised partial
/// sums: they and the network between them are trusted; see `docs/scaling.md`).
///
/// Failures: a worker that dies or hangs makes the next collective call fail on the others
/// ([`DpOptimError::Collective`]: at once when its connection closes, else after the
/// group's timeout); the trainer then refuses to
/// continue, and the job restarts from worker 0's last checkpoint. The steps after it are
/// recomputed with the same samples and the same noise (both are functions of the saved
/// key and stream), and the ledger counts each step once.
pub struct DataParallelTrainer<B: AutodiffBackend, M: AutodiffModule<B>, C> {
    trainer: DpTrainer<B, M>,
    group: C,
    key: SamplingKey,
    sampler: PoissonSampler,
    shard: Shard,
    steps_taken: u64,
    planned_steps: u64,
    parameters: usize,
    last: StepStats,
    broken: bool,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>, C> std::fmt::Debug for DataParallelTrainer<B, M, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallelTrainer")
            .field("shard", &self.shard)
            .field("steps_taken", &self.steps_taken)
            .field("planned_steps", &self.planned_steps)
            .field("trainer", &self.trainer)
            .finish()
    }
}

/// Counts appended to each worker's flat clipped sum: examples, clipped, non-finite, failed.
const COUNTS: usize = 4;
/// Index of the failure flag among the counts.
const FAILED: usize = 3;

fn to_vec<Bk: burn::tensor::backend::Backend>(t: Tensor<Bk, 1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
}

impl<B, M, C> DataParallelTrainer<B, M, C>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    C: Collective<B::InnerBackend>,
{
    /// Joins the job as worker `group.rank()`: worker 0 passes the job's trainer (new, or
    /// loaded from the job's checkpoint with [`DpTrainer::load_checkpoint`]) and its model;
    /// every other worker passes a trainer built from the same [`crate::TrainerConfig`] and a
    /// model of the same architecture (its values are replaced by worker 0's). Fails with
    /// [`DpOptimError::WorkerMismatch`] on every worker when any worker's dataset size,
    /// rate, clipping bound, planned steps, parameter count or world size differs from
    /// worker 0's.
    pub fn start(
        mut trainer: DpTrainer<B, M>,
        model: M,
        mut group: C,
    ) -> Result<(Self, M), DpOptimError> {
        let shard = worker_shard(group.rank(), group.world())?;
        crate::initialise_params(&model);
        let sampler = *trainer.engine().sampler();
        let (steps_taken, planned_steps) = trainer.engine().steps();
        let parameters = parameter_count::<B, M>(&model);
        let device = crate::parallel::device_of::<B, M>(&model);
        let ours = Header {
            world: shard.count(),
            dataset_size: sampler.dataset_size() as u64,
            sample_rate_bits: sampler.sample_rate().to_bits(),
            max_grad_norm_bits: trainer.engine().state().config.max_grad_norm.to_bits(),
            parameters: parameters as u64,
            planned_steps,
            steps_taken,
            // (a finished run loaded from its checkpoint has no key any more, and no step
            // left to sample: the workers get zeros)
            key: match shard.index() {
                0 => trainer
                    .engine_mut()
                    .sampling_key()
                    .map_or([0; 32], |key| *key.bytes()),
                _ => [0; 32],
            },
        };
        // worker 0's header reaches every worker by broadcast (exact bytes; the others'
        // are ignored)
        let first = Header::decode(&group.broadcast(ours.encode())?)?;
        let mut differ = Vec::new();
        for (name, a, b) in [
            ("world", ours.world, first.world),
            ("dataset_size", ours.dataset_size, first.dataset_size),
            ("sample_rate", ours.sample_rate_bits, first.sample_rate_bits),
            (
                "max_grad_norm",
                ours.max_grad_norm_bits,
                first.max_grad_norm_bits,
            ),
            ("parameter count", ours.parameters, first.parameters),
            ("planned_steps", ours.planned_steps, first.planned_steps),
        ] {
            if a != b {
                differ.push(format!(
                    "{name}: worker 0 has {b}, worker {} has {a}",
                    shard.index()
                ));
            }
        }
        let vote = if differ.is_empty() { 1.0f32 } else { 0.0 };
        let votes =
            group.all_reduce_sum(Tensor::from_data(TensorData::new(vec![vote], [1]), &device))?;
        let votes = to_vec(votes)[0] as u64;
        if !differ.is_empty() {
            return Err(DpOptimError::WorkerMismatch(differ.join("; ")));
        }
        if votes != shard.count() {
            return Err(DpOptimError::WorkerMismatch(format!(
                "{} of {} workers have a configuration different from worker 0's (see their errors)",
                shard.count() - votes,
                shard.count()
            )));
        }
        let params = if shard.index() == 0 {
            flatten_params::<B, M>(&model)
        } else {
            Tensor::zeros([parameters], &device)
        };
        let params = group.all_reduce_sum(params)?;
        let model = if shard.index() == 0 {
            model
        } else {
            load_params::<B, M>(model, params)
        };
        Ok((
            Self {
                trainer,
                group,
                key: SamplingKey::from_bytes(first.key),
                sampler,
                shard,
                steps_taken: first.steps_taken,
                planned_steps,
                parameters,
                last: StepStats::default(),
                broken: false,
            },
            model,
        ))
    }

    /// This worker's rank and the number of workers.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The records this worker reads (its per-example loss is only called with these
    /// indices, which are indices into the whole dataset).
    pub fn records(&self) -> std::ops::Range<usize> {
        self.shard.indices(self.sampler.dataset_size())
    }

    /// Worker 0's trainer holds the job's engine (σ, q, ledger, ε spent); on other workers
    /// it holds only the configuration.
    pub fn trainer(&self) -> &DpTrainer<B, M> {
        &self.trainer
    }

    /// Steps taken and steps the budget allows (the same on every worker).
    pub fn steps(&self) -> (u64, u64) {
        (self.steps_taken, self.planned_steps)
    }

    /// Whether the budget allows another step (the same answer on every worker).
    pub fn can_step(&self) -> bool {
        !self.broken && self.steps_taken < self.planned_steps
    }

    /// What the last step did.
    pub fn last_step(&self) -> StepStats {
        self.last
    }

    /// The batch of `step` within this worker's records, ascending (what [`Self::step`]
    /// computes on).
    pub fn local_batch(&self, step: u64) -> Vec<usize> {
        self.key.sample(&self.sampler, step, self.records())
    }

    /// One logical DP-SGD step, called by every worker with its model and loss; returns
    /// the new model (the same parameters on every worker). See the type's documentation.
    /// On an error the model comes back inside [`Failed`] as the failure left it. When a
    /// worker's own part fails (e.g. a loss of the wrong shape), every worker abandons the
    /// step together (nothing applied or recorded) and may retry it. After a collective
    /// error (a dead or stuck worker) the trainer refuses further steps: restart the job
    /// from its last checkpoint.
    pub fn step<L: ExampleLoss<B, M>>(&mut self, model: M, loss: &mut L) -> Result<M, Failed<M>> {
        if self.broken {
            return Err(Failed {
                model,
                error: DpOptimError::Collective {
                    operation: "step",
                    message: "an earlier collective call failed: restart the job from its last checkpoint".into(),
                },
            });
        }
        if self.steps_taken >= self.planned_steps {
            let engine = self.trainer.engine();
            return Err(Failed {
                model,
                error: DpOptimError::BudgetExhausted {
                    steps: self.planned_steps,
                    epsilon: engine.state().config.target_epsilon,
                },
            });
        }
        match self.try_step(model, loss) {
            Ok(model) => Ok(model),
            Err(failed) => {
                // (a failure after the step's all-reduce has set `broken` already)
                if matches!(failed.error, DpOptimError::Collective { .. }) {
                    self.broken = true;
                }
                Err(failed)
            }
        }
    }

    fn try_step<L: ExampleLoss<B, M>>(&mut self, model: M, loss: &mut L) -> Result<M, Failed<M>> {
        let started = Instant::now();
        let device = crate::parallel::device_of::<B, M>(&model);
        let lead = self.shard.index() == 0;
        let batch = self.local_batch(self.steps_taken);
        // A worker whose part fails still takes part in the all-reduce, with a failure
        // flag, so that every worker abandons the step together instead of waiting.
        let (mut flat, local_error) =
            match self.trainer.engine_mut().clipped_sum(&model, &batch, loss) {
                Ok(sum) => {
                    let counts = Tensor::from_data(
                        TensorData::new(
                            vec![
                                sum.examples as f32,
                                sum.clipped as f32,
                                sum.nonfinite as f32,
                                0.0,
                            ],
                            [COUNTS],
                        ),
                        &device,
                    );
                    (flatten_grads::<B, M>(&model, &sum.grads, counts), None)
                }
                Err(error) => {
                    let mut flag = vec![0f32; self.parameters + COUNTS];
                    flag[self.parameters + FAILED] = 1.0;
                    let flat = Tensor::from_data(
                        TensorData::new(flag, [self.parameters + COUNTS]),
                        &device,
                    );
                    (flat, Some(error))
                }
            };
        if lead && local_error.is_none() {
            let noise = match self.trainer.engine_mut().step_noise(self.parameters) {
                Ok(z) => z,
                Err(error) => return Err(Failed { model, error }),
            };
            let noise = Tensor::cat(
                vec![
                    Tensor::from_data(TensorData::new(noise, [self.parameters]), &device),
                    Tensor::zeros([COUNTS], &device),
                ],
                0,
            );
            flat = flat + noise;
        }
        let compute = started.elapsed();
        let started = Instant::now();
        let total = match self.group.all_reduce_sum(flat) {
            Ok(t) => t,
            Err(error) => return Err(Failed { model, error }),
        };
        let mut communicate = started.elapsed();
        let counts = to_vec(
            total
                .clone()
                .slice(self.parameters..self.parameters + COUNTS),
        );
        if counts[FAILED] > 0.0 {
            let error = local_error.unwrap_or(DpOptimError::WorkerFailed {
                workers: counts[FAILED] as usize,
                step: self.steps_taken,
            });
            return Err(Failed { model, error });
        }
        // From here on the workers are in lockstep on a step that every worker will apply:
        // any failure leaves them out of step, and the job must restart.
        self.broken = true;
        let model = if lead {
            let divisor = self.sampler.expected_batch_size();
            let update = unflatten_grads::<B, M>(&model, total.slice(0..self.parameters) / divisor);
            let lr = self.trainer.next_lr();
            if let Err(error) = self.trainer.engine_mut().record_step() {
                return Err(Failed { model, error });
            }
            let _guard = crate::autodiff_guard();
            self.trainer.apply(lr, model, update)
        } else {
            model
        };
        let started = Instant::now();
        let params = if lead {
            flatten_params::<B, M>(&model)
        } else {
            Tensor::zeros([self.parameters], &device)
        };
        let params = match self.group.all_reduce_sum(params) {
            Ok(p) => p,
            Err(error) => return Err(Failed { model, error }),
        };
        communicate += started.elapsed();
        let model = if lead {
            model
        } else {
            load_params::<B, M>(model, params)
        };
        self.broken = false;
        self.steps_taken += 1;
        self.last = StepStats {
            examples: counts[0] as u64,
            clipped: counts[1] as u64,
            nonfinite: counts[2] as u64,
            compute,
            communicate,
        };
        Ok(model)
    }

    /// Writes the job's checkpoint (model, optimiser, engine state with the ledger; the noise
    /// stream and sampling key in its owner-only secrets file until the run is finished: see
    /// [`DpTrainer::save_checkpoint`]) to `dir` on worker 0, atomically; other workers write
    /// nothing. Returns whether this worker wrote. Refused after a collective failure.
    pub fn save_checkpoint(&self, model: &M, dir: &Path) -> Result<bool, DpOptimError> {
        if self.broken {
            return Err(DpOptimError::Collective {
                operation: "checkpoint",
                message: "an earlier collective call failed: the last good checkpoint is kept"
                    .into(),
            });
        }
        if self.shard.index() != 0 {
            return Ok(false);
        }
        self.trainer.save_checkpoint(model, dir)?;
        Ok(true)
    }

    /// Ends the job on this worker, returning the trainer (on worker 0: with the ledger)
    /// and the collective (to [`super::BurnCollective::finish`] it).
    pub fn into_parts(self) -> (DpTrainer<B, M>, C) {
        (self.trainer, self.group)
    }
}
