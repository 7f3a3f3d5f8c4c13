//! Data-parallel DP-SGD: one logical step spread over several devices, processes and
//! machines, with the privacy of a single-device run.
//!
//! * [`Collective`]: the sum over workers a step needs. [`BurnCollective`]: the threads of
//!   one process, one per device (`burn-collective` 0.21); [`TcpCollective`]: processes
//!   on one or several machines, meeting at worker 0's address; [`Solo`]: the group of one.
//! * [`SamplingKey`] and [`Shard`]: every worker Poisson-samples its own contiguous shard;
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
//! Threads: burn 0.21's autodiff may lose gradients when two threads run backward at once
//! (tracel-ai/burn#5573); the clipping passes hold [`crate::autodiff_guard`], so the
//! workers of one process take turns for their forward and backward passes (correct, but
//! not faster on CPU). Use one process per device ([`TcpCollective`]) for parallel speed.

mod collective;
mod flat;
mod sampling;
mod tcp;
mod trainer;

pub use collective::{BurnCollective, Collective, DEFAULT_TIMEOUT, Solo};
pub use sampling::{SamplingKey, Shard};
pub use tcp::TcpCollective;
pub use trainer::{DataParallelTrainer, StepStats};

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

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
