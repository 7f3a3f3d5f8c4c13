//! DP-SGD building blocks for burn models (in progress: this release holds the sampler, the
//! secure random stream and the Gaussian noise; clipping, optimisers and the privacy engine
//! follow).
//!
//! * [`DpRng`]: ChaCha20 seeded from the OS (an explicitly insecure seeded mode for tests).
//! * [`PoissonSampler`]: each record joins a batch independently with probability `q`.
//! * [`noise::gaussian`]: `N(0, σ²C²)` draws for the clipped sum.
//! * [`clipped_sum`] (per-example clipping, generic exact path: one backward per example) and
//!   [`privatize`] (noise once per logical step, division by the expected batch size).
//! * [`PrivacyEngine`]: calibrates σ for (ε, δ, epochs), runs the steps, keeps the ledger and
//!   refuses to step past the budget; its [`EngineState`] serialises for checkpoints.
//!
//! ```
//! use dp_optim::{DpRng, PoissonSampler, noise};
//!
//! let mut rng = DpRng::secure().unwrap();
//! let sampler = PoissonSampler::with_expected_batch(50_000, 512.0).unwrap();
//! let batch = sampler.sample(&mut rng); // about 512 indices, possibly none
//! assert!(batch.windows(2).all(|w| w[0] < w[1]));
//! let sigma = 1.0;
//! let clip = 1.0;
//! let z = noise::gaussian(&mut rng, 10, sigma * clip).unwrap();
//! assert_eq!(z.len(), 10);
//! ```

pub mod clip;
pub mod engine;
mod error;
pub mod ghost;
mod loss;
pub mod noise;
mod optimizer;
mod rng;
mod sampler;
mod schedule;
pub mod tap;
mod trainer;

pub use clip::{ClippedSum, Clipping, clipped_sum, clipped_sum_per_parameter, privatize};
pub use engine::{ClippingPath, EngineConfig, EngineState, PrivacyEngine};
pub use error::DpOptimError;
pub use ghost::GhostTape;
pub use loss::{ExampleLoss, PerExample};
pub use optimizer::{DpOptimizer, OptimizerConfig};
pub use rng::DpRng;
pub use sampler::PoissonSampler;
pub use schedule::LrSchedule;
pub use tap::{LayerTap, NoTap};
pub use trainer::{CHECKPOINT_FORMAT, DpTrainer, Failed, TrainerConfig};
