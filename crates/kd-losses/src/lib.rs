//! Knowledge-distillation losses for causal language models on burn, generic over the backend
//! and independent of any model:
//!
//! * [`divergence`]: `τ²·D(p_T, p_S)` per token for [`Divergence::ForwardKl`] (default),
//!   [`Divergence::ReverseKl`] or the generalised Jensen–Shannon [`Divergence::Jsd`], from
//!   log-softmax values (stable for large logits and 50k vocabularies); the teacher is
//!   detached.
//! * [`cross_entropy`]: hard-label cross-entropy with a mask (PyTorch's `ignore_index`) and
//!   label smoothing.
//! * [`hidden_mse`]: hidden-state MSE over a [`LayerMap`] (last only, evenly spaced, or any
//!   pairs) with learned [`HiddenProjection`]s when widths differ.
//! * [`distillation_loss`]: `λ·KL + (1−λ)·CE + α·MSE` ([`DistillConfig`], the paper's
//!   λ = 0.4, τ = 1), every term a per-token mean over real tokens, with per-example values
//!   ([`DistillTerms::per_example`]).
//!
//! Every term is a [`TokenLoss`]: values per position and a mask, so the batch loss is a mean
//! over real tokens (not a per-sequence sum, and padding never counts).
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Int, Tensor, TensorData};
//! use kd_losses::{DistillConfig, distillation_loss};
//!
//! type B = NdArray;
//! let device = Default::default();
//! let student = Tensor::<B, 3>::random([2, 5, 11], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
//! let teacher = Tensor::<B, 3>::random([2, 5, 11], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
//! let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new((0..10i64).collect::<Vec<_>>(), [2, 5]), &device);
//! let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 5]), &device);
//! let terms = distillation_loss(&DistillConfig::default(), student, teacher, tokens, Some(mask), None).unwrap();
//! let loss = terms.loss().into_scalar();        // λ·KL + (1−λ)·CE over the 6 real predictions
//! assert!(loss.is_finite() && loss > 0.0);
//! assert_eq!(terms.per_example().dims(), [2]);
//! ```

mod cross_entropy;
mod distill;
mod divergence;
mod error;
mod hidden;
mod token_loss;

pub use cross_entropy::cross_entropy;
pub use distill::{DistillConfig, DistillTerms, HiddenStates, distillation_loss};
pub use divergence::{Divergence, divergence};
pub use error::KdLossError;
pub use hidden::{HiddenProjection, LayerMap, hidden_mse};
pub use token_loss::TokenLoss;
