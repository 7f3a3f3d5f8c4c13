//! Fused tensor operations for training GPT-2-family models on [burn](https://burn.dev), each
//! with a backward of its own.
//!
//! burn's autodiff records every elementary operation, and its CPU backends run element-wise
//! operations on one thread with a libm `exp` per element. For a language model's training
//! step that means the `[rows, vocab]` log-softmax, GELU and attention softmax dominate what is
//! not matrix product. The operations here replace each with one node:
//!
//! * [`token_nll`]: `−log softmax(logits)[target]` per row (the language-modelling loss);
//! * [`gelu_tanh`]: GPT-2's tanh-approximated GELU;
//! * [`layer_norm`]: LayerNorm over the last axis (input, gains and biases in one node);
//! * [`forward_kl`]: `KL(softmax(teacher/τ) ‖ softmax(student/τ))` per row (distillation);
//! * [`self_attention`]: multi-head (causal or masked) self-attention from a fused QKV
//!   projection;
//! * [`capture_grad`]: the identity, keeping the gradient that flows back through it (a
//!   layer's output gradient for ghost clipping, without a zero probe leaf);
//! * [`row_sum_squares`]: squared norms of rows in one pass (per-example gradient norms);
//! * [`scatter_add_rows`]: rows added into a table at given indices, in place (an
//!   embedding's gradient).
//!
//! On burn-flex with `f32` (the default CPU backend) they run multi-threaded, vectorised
//! kernels on the tensors' storage. On any other backend they run as compositions of the
//! backend's own operations, with the same values; under `Autodiff<Flex>`,
//! `Autodiff<NdArray>` and (with the `cuda` feature) `Autodiff<Cuda>` they register their own
//! backward node, and under any other autodiff backend burn derives the gradient of that
//! composition. Values agree with the unfused formulas to float rounding (the vectorised
//! `exp` has a relative error below 2.5·10⁻⁷); the tests check values and gradients against
//! burn's own operations on both CPU backends.
//!
//! ```
//! use burn::backend::{Autodiff, Flex};
//! use burn::tensor::activation::log_softmax;
//! use burn::tensor::{Int, Tensor};
//!
//! type B = Autodiff<Flex>;
//! let device = Default::default();
//! let logits = Tensor::<B, 2>::from_floats([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], &device)
//!     .require_grad();
//! let targets = Tensor::<B, 1, Int>::from_ints([1, 2], &device);
//!
//! let nll = fused_ops::token_nll(logits.clone(), targets.clone());
//! let reference = log_softmax(logits.clone(), 1)
//!     .gather(1, targets.reshape([2, 1]))
//!     .reshape([2])
//!     .neg();
//! let diff = (nll.clone() - reference).abs().max().into_scalar();
//! assert!(diff < 1e-6);
//!
//! let grads = nll.sum().backward();
//! let d = logits.grad(&grads).unwrap(); // softmax − onehot, row by row
//! assert_eq!(d.dims(), [2, 3]);
//! ```

mod attention;
mod capture;
mod copy;
mod cpu;
mod cross_entropy;
mod dispatch;
mod divergence;
mod gelu;
mod host;
mod layer_norm;
mod norms;
mod scatter;

pub use attention::self_attention;
pub use capture::{OutputGrad, capture_grad};
pub use cross_entropy::token_nll;
pub use divergence::forward_kl;
pub use gelu::gelu_tanh;
pub use layer_norm::layer_norm;
pub use norms::row_sum_squares;
pub use scatter::scatter_add_rows;
