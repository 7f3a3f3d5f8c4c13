//! DP-SGD for burn models: Poisson sampling, per-example clipping (a generic exact path and
//! a fast ghost-clipping path), Gaussian noise from a CSPRNG, DP optimisers with schedules, and
//! a privacy engine that calibrates σ, keeps the ledger, refuses to step past the budget and
//! checkpoints a run so that it resumes exactly.
//!
//! * [`DpRng`]: ChaCha20 seeded from the OS (an explicitly insecure seeded mode for tests).
//! * [`PoissonSampler`]: each record joins a batch independently with probability `q`.
//! * [`noise::gaussian`]: `N(0, σ²C²)` draws for the clipped sum.
//! * Clipping ([`Clipping`]: flat or per parameter): the generic path [`clipped_sum`] (one
//!   backward per example, any module) and the fast path [`ghost::clipped_sum`] (models that
//!   run their layers through a [`LayerTap`]); [`privatize`] adds the noise once and divides
//!   by the expected batch size.
//! * [`ExampleLoss`]: the per-example loss both paths run.
//! * [`PrivacyEngine`]: calibration, sampling, clipping in physical micro-batches, noise,
//!   ledger, budget; its [`EngineState`] serialises.
//! * [`DpTrainer`]: engine + [`DynOptimizer`] (SGD, Adam, AdamW, from `train-kit`) +
//!   [`LrSchedule`], with joint checkpoints.
//! * [`parallel`]: data-parallel DP-SGD over devices, processes and machines
//!   ([`DataParallelTrainer`] on `burn-collective`), with one ledger and one checkpoint.
//!
//! Guarantee (of [`PrivacyEngine`] and [`DpTrainer`]): with a secure [`DpRng`], the sequence of
//! updates is (ε, δ)-DP for the configured target, with respect to adding or removing one
//! record (both directions of the accountant's bound), provided each per-example loss depends
//! on its own record only. The guide is `docs/dp-optim.md` in the repository.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::{Tensor, TensorData};
//! use dp_optim::{DpRng, DpTrainer, EngineConfig, ExampleLoss, LayerTap, TrainerConfig};
//!
//! type B = Autodiff<NdArray>;
//!
//! /// 200 private records (x, y); each example's loss depends on its own record only.
//! struct Records(Vec<(f32, f32)>);
//!
//! impl ExampleLoss<B, Linear<B>> for Records {
//!     fn losses<T: LayerTap<B>>(&mut self, model: &Linear<B>, ex: &[usize], tap: &mut T) -> Tensor<B, 1> {
//!         let device = Default::default();
//!         let (x, y): (Vec<f32>, Vec<f32>) = ex.iter().map(|&i| self.0[i]).unzip();
//!         let x = Tensor::<B, 2>::from_data(TensorData::new(x, [ex.len(), 1]), &device);
//!         let y = Tensor::<B, 2>::from_data(TensorData::new(y, [ex.len(), 1]), &device);
//!         (tap.linear(model, x) - y).powi_scalar(2).reshape([ex.len()])
//!     }
//! }
//!
//! fn main() -> Result<(), dp_optim::DpOptimError> {
//!     let mut data = Records((0..200).map(|i| (i as f32 / 200.0, 2.0 * i as f32 / 200.0)).collect());
//!     let config = TrainerConfig {
//!         engine: EngineConfig::new(1.0, 1e-5, 2.0, 200, 20.0, 1.0), // ε, δ, epochs, N, batch, C
//!         optimizer: Default::default(),
//!         schedule: dp_optim::LrSchedule::Constant { lr: 0.5 },
//!     };
//!     let mut trainer = DpTrainer::new(config, DpRng::secure()?)?;
//!     let mut model = LinearConfig::new(1, 1).init::<B>(&Default::default());
//!     while trainer.can_step() {
//!         model = trainer.step(model, &mut data).map_err(|failed| failed.error)?;
//!     }
//!     assert!(trainer.engine().epsilon_spent()? <= 1.0);
//!     Ok(())
//! }
//! ```

pub mod clip;
mod driver;
pub mod engine;
mod error;
pub mod ghost;
mod loss;
pub mod mechanisms;
pub mod noise;
pub mod parallel;
mod rng;
mod sampler;
mod sampling_key;
mod trainer;

pub use clip::{ClippedSum, Clipping, clipped_sum, clipped_sum_per_parameter, privatize};
pub use driver::{Checkpointed, DriveConfig, Driven, StepEvent, Workers, drive};
pub use engine::{ClippingPath, EngineConfig, EngineState, PrivacyEngine};
pub use error::DpOptimError;
pub use ghost::GhostTape;
pub use loss::{ExampleLoss, PerExample};
pub use parallel::{BurnCollective, Collective, DataParallelTrainer, Solo, TcpCollective};
pub use rng::DpRng;
pub use sampler::PoissonSampler;
pub use sampling_key::SamplingKey;
/// The non-private training kit this crate builds on (layer tap, autodiff guard, optimisers,
/// schedules, shards, atomic files), re-exported so a DP user needs one dependency.
pub use train_kit::{
    self, AutodiffGuard, DynOptimizer, LayerTap, LrSchedule, NoTap, OptimizerConfig, Replicate,
    Shard, autodiff_guard, files, initialise_params, tap,
};
pub use trainer::{
    CHECKPOINT_FORMAT, CHECKPOINT_SECRETS_FILE, DpTrainer, Failed, TrainerConfig, checkpoint_exists,
};
