//! Per-token values with a mask, and their per-example and per-token means.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// A loss value at every position `[batch, seq]` and which positions count (1.0) or not (0.0).
///
/// Values at masked positions are stored as 0 and never affect a mean or a gradient.
#[derive(Debug, Clone)]
pub struct TokenLoss<B: Backend> {
    /// Per-position values, 0 where masked, `[batch, seq]`.
    pub values: Tensor<B, 2>,
    /// 1.0 for positions that count, 0.0 otherwise, `[batch, seq]`.
    pub weight: Tensor<B, 2>,
}

impl<B: Backend> TokenLoss<B> {
    /// Wraps per-position values; `mask` (1 = counts) defaults to all positions.
    pub fn new(values: Tensor<B, 2>, mask: Option<Tensor<B, 2, Int>>) -> Self {
        let weight = match mask {
            Some(m) => m.float(),
            None => values.ones_like(),
        };
        let values = values.mask_fill(weight.clone().equal_elem(0.0), 0.0);
        Self { values, weight }
    }

    /// Each example's mean over its counted positions `[batch]` (0 for an example with none).
    pub fn per_example(&self) -> Tensor<B, 1> {
        let batch = self.values.dims()[0];
        let count = self.weight.clone().sum_dim(1).clamp_min(1.0);
        (self.values.clone().sum_dim(1) / count).reshape([batch])
    }

    /// The mean over every counted position of the batch `[1]` (a per-token mean: long
    /// examples weigh more than short ones, as in a language model's loss).
    pub fn mean(&self) -> Tensor<B, 1> {
        let count = self.weight.clone().sum().clamp_min(1.0);
        self.values.clone().sum() / count
    }

    /// Number of counted positions `[1]`.
    pub fn count(&self) -> Tensor<B, 1> {
        self.weight.clone().sum()
    }
}
