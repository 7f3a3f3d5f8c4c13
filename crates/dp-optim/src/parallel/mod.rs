//! Data-parallel DP-SGD: one logical step spread over several devices, processes and
//! machines, with the privacy of a single-device run.
//!
//! * [`Collective`]: the sum over workers a step needs. [`BurnCollective`]: the threads of
//!   one process, one per device (`burn-collective` 0.21); [`TcpCollective`]: processes
//!   on one or several machines, meeting at worker 0's address; [`Solo`]: the group of one.
//! * [`crate::SamplingKey`] and [`Shard`] ([`worker_shard`]): every worker Poisson-samples its own contiguous shard;
//!   a record's membership depends only on the key, the step and its index, so the union
//!   is exactly one Poisson sample, whatever the number of workers.
//! * [`DataParallelTrainer`]: clipped sums on every worker, noise once (worker 0), one
//!   all-reduce, division by the expected global batch, one ledger, one checkpoint.
//!
//! The traps of distributed DP-SGD and how this module avoids them: noise is drawn on
//! worker 0 only, never per worker; the divisor is `q·N`, never a realised batch size;
//! clipping happens per example before any sum crosses a worker; each worker samples its
//! shard by Poisson sampling, never a fixed-size batch. `docs/scaling.md` has the launch
//! commands.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::{Tensor, TensorData};
//! use dp_optim::parallel::{DataParallelTrainer, Solo};
//! use dp_optim::{DpRng, DpTrainer, EngineConfig, ExampleLoss, LayerTap, TrainerConfig};
//!
//! type B = Autodiff<NdArray>;
//!
//! struct Records(Vec<(f32, f32)>);
//!
//! impl ExampleLoss<B, Linear<B>> for Records {
//!     fn losses<T: LayerTap<B>>(&mut self, m: &Linear<B>, ex: &[usize], tap: &mut T) -> Tensor<B, 1> {
//!         let device = Default::default();
//!         let (x, y): (Vec<f32>, Vec<f32>) = ex.iter().map(|&i| self.0[i]).unzip();
//!         let x = Tensor::<B, 2>::from_data(TensorData::new(x, [ex.len(), 1]), &device);
//!         let y = Tensor::<B, 2>::from_data(TensorData::new(y, [ex.len(), 1]), &device);
//!         (tap.linear(m, x) - y).powi_scalar(2).reshape([ex.len()])
//!     }
//! }
//!
//! fn main() -> Result<(), dp_optim::DpOptimError> {
//!     let mut data = Records((0..100).map(|i| (i as f32 / 100.0, 1.0)).collect());
//!     let config = TrainerConfig {
//!         engine: EngineConfig::new(2.0, 1e-5, 1.0, 100, 10.0, 1.0), // ε, δ, epochs, N, batch, C
//!         optimizer: Default::default(),
//!         schedule: dp_optim::LrSchedule::Constant { lr: 0.1 },
//!     };
//!     // every worker: the same configuration; `Solo` here, a `TcpCollective` or
//!     // `BurnCollective` per worker in a real job (worker 0 may load its checkpoint instead)
//!     let trainer = DpTrainer::new(config, DpRng::secure()?)?;
//!     let model = LinearConfig::new(1, 1).init::<B>(&Default::default());
//!     let (mut job, mut model) = DataParallelTrainer::start(trainer, model, Solo)?;
//!     while job.can_step() {
//!         model = job.step(model, &mut data).map_err(|f| f.error)?;
//!     }
//!     assert!(job.trainer().engine().epsilon_spent()? <= 2.0);
//!     Ok(())
//! }
//! ```
//!
//! Threads: burn 0.21's autodiff may lose gradients when two threads run backward at once
//! (tracel-ai/burn#5573); the clipping passes hold [`crate::autodiff_guard`], so the
//! workers of one process take turns for their forward and backward passes (correct, but
//! not faster on CPU). Use one process per device ([`TcpCollective`]) for parallel speed.

mod collective;
mod flat;
mod header;
mod tcp;
mod threads;
mod trainer;

pub use collective::{BurnCollective, Collective, DEFAULT_TIMEOUT, Solo};
pub use tcp::TcpCollective;
pub use threads::{lead_and_follow, on_threads};
pub use train_kit::Shard;
pub use trainer::{DataParallelTrainer, StepStats};

use burn::module::{AutodiffModule, ModuleVisitor, Param};

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::error::DpOptimError;

/// Worker `rank`'s shard of a job of `world` workers: it owns records
/// `[N·rank/world, N·(rank+1)/world)` ([`Shard::indices`]). Refuses `world = 0` and
/// `rank >= world`, naming the field.
pub fn worker_shard(rank: usize, world: usize) -> Result<Shard, DpOptimError> {
    Shard::new(rank as u64, world as u64).map_err(|e| match e {
        train_kit::TrainKitError::NoShards => DpOptimError::InvalidParameter {
            field: "world",
            value: "0".into(),
            expected: "an integer >= 1 (the number of workers)",
        },
        _ => DpOptimError::InvalidParameter {
            field: "rank",
            value: rank.to_string(),
            expected: "an integer in [0, world)",
        },
    })
}

/// The inner-backend device of `model`'s first float parameter (the default device for a
/// model without one).
pub(crate) fn device_of<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
) -> burn::tensor::Device<B::InnerBackend> {
    struct First<B: AutodiffBackend>(Option<burn::tensor::Device<B::InnerBackend>>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for First<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.0.is_none() {
                self.0 = Some(param.val().inner().device());
            }
        }
    }
    let mut first = First::<B>(None);
    model.visit(&mut first);
    first.0.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_shards_are_refused_by_name() {
        assert!(
            worker_shard(0, 0)
                .unwrap_err()
                .to_string()
                .contains("world")
        );
        assert!(worker_shard(2, 2).unwrap_err().to_string().contains("rank"));
        assert_eq!(worker_shard(1, 3).unwrap().indices(2), 0..1);
        assert_eq!(worker_shard(0, 3).unwrap().indices(2), 0..0);
    }
}
