//! The non-private training kit under the distil-dp models: what a model crate, a
//! non-private trainer and the DP optimiser all need, so that none of them depends on the
//! other for it.
//!
//! * [`LayerTap`] / [`NoTap`]: the hooks through which a model runs its parameterised
//!   layers (`dp_optim`'s ghost clipping taps them; [`NoTap`] is the plain forward);
//!   [`ExampleLoss`]: a loss per example, run through a tap (what DP-SGD clips).
//! * [`autodiff_guard`]: the process-wide lock around autodiff work (burn 0.21's race).
//! * [`OptimizerConfig`] / [`DynOptimizer`]: SGD, Adam or AdamW chosen at run time, with
//!   state saved and restored; [`LrSchedule`]: learning rate as a function of the step.
//! * [`initialise_params`]: materialise lazy parameters before cloning a model.
//! * [`Cadence`]: when a training loop checkpoints and stops.
//! * [`Shard`]: the contiguous part of `n` items a worker owns.
//! * [`files`]: atomic, durable, owner-only files, groups of files and directories.
//!
//! Nothing here is private or accounted: `dp_optim` builds DP-SGD on top.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::module::AutodiffModule;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::GradientsParams;
//! use burn::tensor::{Tensor, TensorData};
//! use train_kit::{LayerTap, LrSchedule, NoTap, OptimizerConfig, autodiff_guard};
//!
//! type B = Autodiff<NdArray>;
//!
//! let device = Default::default();
//! let mut model: Linear<B> = LinearConfig::new(1, 1).init(&device);
//! let mut optimizer = OptimizerConfig::default().init::<B, Linear<B>>();
//! let schedule = LrSchedule::Linear { lr: 0.5, final_lr: 0.0, warmup_steps: 0 };
//! schedule.validate()?;
//! let x = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 2.0], [2, 1]), &device);
//! for step in 0..20 {
//!     let _guard = autodiff_guard();
//!     let loss = (NoTap.linear(&model, x.clone()) - x.clone()).powi_scalar(2).mean();
//!     let grads = GradientsParams::from_grads(loss.backward(), &model);
//!     model = optimizer.step(schedule.lr(step, 20), model, grads);
//! }
//! let fitted = NoTap.linear(&model.valid(), x.inner()).into_data().to_vec::<f32>().unwrap();
//! assert!((fitted[1] - 2.0).abs() < 0.5);
//! # Ok::<(), train_kit::TrainKitError>(())
//! ```

mod autodiff_guard;
mod cadence;
mod error;
pub mod files;
mod init;
mod optimizer;
mod schedule;
mod shard;
pub mod tap;

pub use autodiff_guard::{AutodiffGuard, autodiff_guard};
pub use cadence::Cadence;
pub use error::TrainKitError;
pub use init::initialise_params;
pub use optimizer::{DynOptimizer, OptimizerConfig, recorder};
pub use schedule::LrSchedule;
pub use shard::Shard;
pub use tap::{ExampleLoss, LayerTap, NoTap, Replicate};
