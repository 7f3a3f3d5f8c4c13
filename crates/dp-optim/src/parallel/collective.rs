//! The one collective operation data-parallel DP-SGD needs: an element-wise sum over every
//! worker, with a deadline so that a dead worker fails the step instead of hanging the job.

use std::marker::PhantomData;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_collective::{
    AllReduceStrategy, CollectiveConfig, CollectiveError, PeerId, ReduceOperation,
};

use crate::error::DpOptimError;

/// A group of `world` workers, this one being `rank`, that can sum a vector over all of them.
///
/// Every worker of a job must call [`Collective::all_reduce_sum`] the same number of times
/// with vectors of the same length. Errors (a dead peer, a timeout) come back as
/// [`DpOptimError::Collective`].
pub trait Collective<B: Backend> {
    /// This worker's rank in `0..world`.
    fn rank(&self) -> usize;
    /// Number of workers.
    fn world(&self) -> usize;
    /// The element-wise sum of every worker's `tensor`, returned to every worker.
    fn all_reduce_sum(&mut self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, DpOptimError>;
    /// Worker 0's `bytes`, returned to every worker exactly (the other workers' `bytes` are
    /// ignored): how headers and keys travel, never inside a float sum.
    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, DpOptimError>;
}

/// The group of one: the sum is the tensor itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl<B: Backend> Collective<B> for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn all_reduce_sum(&mut self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, DpOptimError> {
        Ok(tensor)
    }
    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, DpOptimError> {
        Ok(bytes)
    }
}

/// Default deadline of a collective operation (a step waits this long for its slowest
/// worker before failing).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A worker of a `burn-collective` 0.21 group: the threads of one process, one per device,
/// on any backend (use the *inner* backend of an autodiff backend); the all-reduce runs as
/// a binary tree between the devices.
///
/// Processes and machines use [`super::TcpCollective`] instead: `burn-collective` 0.21's
/// multi-node mode (its global orchestrator) hangs or mixes up tensors on the second
/// consecutive all-reduce (transfer ids reused between calls, tracel-ai/burn#4549, and a
/// lost wake-up in its tensor data service); reproduced here with two processes on
/// loopback, see `docs/scaling.md`.
///
/// Every operation has a deadline ([`DEFAULT_TIMEOUT`] unless set with
/// [`Self::with_timeout`]): a peer that died or hangs makes the operation fail with
/// [`DpOptimError::Collective`] on the others instead of blocking forever. After a failure
/// the group cannot be used again: restart the job (in one process, call [`Self::reset`]
/// before registering a new group).
#[derive(Debug)]
pub struct BurnCollective<B: Backend> {
    peer: PeerId,
    device: B::Device,
    rank: usize,
    world: usize,
    timeout: Duration,
    finished: bool,
    _b: PhantomData<B>,
}

impl<B: Backend> BurnCollective<B> {
    /// Registers this thread as worker `rank` of `workers` threads of this process (one
    /// per device; `device` is this worker's). Blocks until every worker has registered,
    /// or `register_timeout` passes.
    pub fn register(
        rank: usize,
        workers: usize,
        device: B::Device,
        register_timeout: Duration,
    ) -> Result<Self, DpOptimError> {
        crate::parallel::worker_shard(rank, workers)?;
        let config = CollectiveConfig::default()
            .with_num_devices(workers)
            .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
        let peer = PeerId(rank as u32);
        let registered = device.clone();
        deadline("register", register_timeout, move || {
            burn_collective::register::<B>(peer, registered, config)
        })?;
        Ok(Self {
            peer,
            device,
            rank,
            world: workers,
            timeout: DEFAULT_TIMEOUT,
            finished: false,
            _b: PhantomData,
        })
    }

    /// Sets the deadline of every later operation.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Unregisters this worker (each worker once, at the end of the job).
    pub fn finish(mut self) -> Result<(), DpOptimError> {
        self.finished = true;
        let peer = self.peer;
        deadline("finish", self.timeout, move || {
            burn_collective::finish_collective::<B>(peer)
        })
    }

    /// Forgets every registration and pending operation of this process's collective
    /// server for backend `B` (after a failed group, before registering a new one).
    /// Workers of a failed group still blocked in a call see it fail.
    pub fn reset() {
        burn_collective::reset_collective::<B>();
    }
}

impl<B: Backend> Collective<B> for BurnCollective<B> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, DpOptimError> {
        if self.finished {
            return Err(DpOptimError::Collective {
                operation: "all-reduce",
                message: "the worker has finished".into(),
            });
        }
        let peer = self.peer;
        let primitive = tensor.into_primitive().tensor();
        let sum = deadline("all-reduce", self.timeout, move || {
            burn_collective::all_reduce::<B>(peer, primitive, ReduceOperation::Sum)
        })?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(sum)))
    }

    /// `burn-collective` broadcasts float tensors: each byte travels as one `f32` holding
    /// its value (exact), copied, not summed.
    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, DpOptimError> {
        if self.finished {
            return Err(DpOptimError::Collective {
                operation: "broadcast",
                message: "the worker has finished".into(),
            });
        }
        let peer = self.peer;
        let sent = (self.rank == 0).then(|| {
            let values: Vec<f32> = bytes.iter().map(|&b| f32::from(b)).collect();
            let len = values.len();
            Tensor::<B, 1>::from_data(TensorData::new(values, [len]), &self.device)
                .into_primitive()
                .tensor()
        });
        let got = deadline("broadcast", self.timeout, move || {
            burn_collective::broadcast::<B>(peer, sent)
        })?;
        let values = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(got))
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| DpOptimError::Collective {
                operation: "broadcast",
                message: format!("{e:?}"),
            })?;
        Ok(values.into_iter().map(|v| v as u8).collect())
    }
}

/// Runs a blocking collective call on a helper thread and waits at most `timeout` for it.
/// On timeout the helper thread is abandoned (it stays blocked until the process exits).
fn deadline<T: Send + 'static>(
    operation: &'static str,
    timeout: Duration,
    call: impl FnOnce() -> Result<T, CollectiveError> + Send + 'static,
) -> Result<T, DpOptimError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("dp-optim {operation}"))
        .spawn(move || {
            let _ = tx.send(call());
        })
        .map_err(|e| DpOptimError::Collective {
            operation,
            message: format!("could not start a thread: {e}"),
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(DpOptimError::Collective {
            operation,
            message: format!("{e:?}"),
        }),
        Err(RecvTimeoutError::Timeout) => Err(DpOptimError::Collective {
            operation,
            message: format!(
                "no answer within {:.0} s: a worker died or is stuck; resume the job from its last checkpoint (the steps after it are redone with the same randomness and counted once)",
                timeout.as_secs_f64()
            ),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(DpOptimError::Collective {
            operation,
            message: "the collective call panicked (see the log above)".into(),
        }),
    }
}
