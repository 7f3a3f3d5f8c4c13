//! The per-example language-modelling loss (what DP-SGD clips).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// Per-row mean next-token negative log-likelihood `[batch]`: row `b` averages
/// `-log p(tokens[b, t+1] | tokens[b, ..=t])` over the positions where both `t` and `t + 1`
/// are real tokens (`attention_mask` 1; `None`: all real), so padding on either side changes
/// nothing. A row with no predicted token (length < 2, or < 2 real tokens) has loss 0.
///
/// Each value depends on its own row only: this is the per-example loss DP-SGD clips.
/// `logits`: `[batch, seq, vocab]`, `tokens`: `[batch, seq]`.
pub fn next_token_nll<B: Backend>(
    logits: Tensor<B, 3>,
    tokens: Tensor<B, 2, Int>,
    attention_mask: Option<Tensor<B, 2, Int>>,
) -> Tensor<B, 1> {
    let [batch, seq, _] = logits.dims();
    if seq < 2 {
        return Tensor::zeros([batch], &logits.device());
    }
    let n = seq - 1;
    let nll = shifted_nll(logits, tokens);
    match attention_mask {
        None => nll.mean_dim(1).reshape([batch]),
        Some(mask) => {
            let real = mask.clone().narrow(1, 0, n) * mask.narrow(1, 1, n);
            let weight = real.float();
            let count = weight.clone().sum_dim(1).clamp_min(1.0);
            ((nll * weight).sum_dim(1) / count).reshape([batch])
        }
    }
}

/// `-log p(tokens[b, t+1] | tokens[b, ..=t])` for every `t < seq - 1`: `[batch, seq - 1]`
/// from `logits` `[batch, seq, vocab]` (`seq ≥ 2`) and `tokens` `[batch, seq]`.
///
/// One fused cross-entropy ([`fused_ops::token_nll`]) over all `batch·seq` positions, the last
/// one of each row given target 0 and dropped afterwards: cheaper than copying the
/// `[batch, seq - 1, vocab]` slice of the logits that excluding it first would take.
pub(crate) fn shifted_nll<B: Backend>(
    logits: Tensor<B, 3>,
    tokens: Tensor<B, 2, Int>,
) -> Tensor<B, 2> {
    let [batch, seq, vocab] = logits.dims();
    let n = seq - 1;
    let device = tokens.device();
    let targets = Tensor::cat(
        vec![tokens.narrow(1, 1, n), Tensor::zeros([batch, 1], &device)],
        1,
    );
    fused_ops::token_nll(
        logits.reshape([batch * seq, vocab]),
        targets.reshape([batch * seq]),
    )
    .reshape([batch, seq])
    .narrow(1, 0, n)
}
