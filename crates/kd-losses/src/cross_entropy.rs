//! Cross-entropy against hard labels, with a mask and label smoothing.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::error::{KdLossError, check_range, check_shape};
use crate::token_loss::TokenLoss;

/// Per-position cross-entropy of `logits` `[batch, seq, vocab]` against `targets`
/// `[batch, seq]`, as PyTorch's `cross_entropy(reduction="none", label_smoothing=ε)`:
/// `(1−ε)·(−log p[y]) + ε·mean_v(−log p[v])`. Positions with `mask` 0 (PyTorch's
/// `ignore_index`) are excluded; their targets may be any value (they are not read).
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    mask: Option<Tensor<B, 2, Int>>,
    label_smoothing: f64,
) -> Result<TokenLoss<B>, KdLossError> {
    check_range(
        "label_smoothing",
        label_smoothing,
        (0.0..1.0).contains(&label_smoothing),
        "a number in [0, 1)",
    )?;
    let [batch, seq, vocab] = logits.dims();
    check_shape("logits and targets", &[batch, seq], &targets.dims())?;
    let targets = match &mask {
        Some(m) => {
            check_shape("targets and mask", &targets.dims(), &m.dims())?;
            // masked targets may be out of range (e.g. -100): read index 0 instead
            targets.mask_fill(m.clone().equal_elem(0), 0)
        }
        None => targets,
    };
    let rows = batch * seq;
    let logits = logits.reshape([rows, vocab]);
    let targets = targets.reshape([rows]);
    let nll = fused_ops::token_nll(logits.clone(), targets.clone());
    let values = if label_smoothing > 0.0 {
        // mean_v(−log p[v]) = lse − mean_v(logit v), and lse = nll + logit[target].
        let picked = logits
            .clone()
            .gather(1, targets.reshape([rows, 1]))
            .reshape([rows]);
        let uniform = nll.clone() + picked - logits.mean_dim(1).reshape([rows]);
        (nll * (1.0 - label_smoothing) + uniform * label_smoothing).reshape([batch, seq])
    } else {
        nll.reshape([batch, seq])
    };
    Ok(TokenLoss::new(values, mask))
}
