//! Perplexity and per-text negative log-likelihood.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;

use crate::error::CausalLmError;
use crate::lm::CausalLm;
use crate::loss::shifted_nll;
use crate::tokenizer::{PaddingSide, Tokenizer};

/// The result of [`perplexity`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerplexityReport {
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    /// Mean negative log-likelihood (nats) per predicted token.
    pub mean_nll: f64,
    /// Sum of the negative log-likelihoods (nats).
    pub nll_sum: f64,
    /// Number of predicted tokens (each window's first token is context only).
    pub tokens: usize,
    /// Length of the tokenised evaluation stream.
    pub stream_tokens: usize,
    /// Number of windows.
    pub windows: usize,
    /// The window length used.
    pub block_size: usize,
}

fn check_sizes<B: Backend, M: CausalLm<B>>(
    model: &M,
    block_size: usize,
    batch_size: usize,
) -> Result<(), CausalLmError> {
    if block_size < 2 || block_size > model.max_positions() {
        return Err(CausalLmError::InvalidParameter {
            field: "block_size",
            value: block_size.to_string(),
            expected: "an integer in [2, the model's n_positions]",
        });
    }
    if batch_size == 0 {
        return Err(CausalLmError::InvalidParameter {
            field: "batch_size",
            value: "0".into(),
            expected: "an integer >= 1",
        });
    }
    Ok(())
}

fn check_vocab(ids: &[u32], vocab: usize) -> Result<(), CausalLmError> {
    match ids.iter().find(|&&t| t as usize >= vocab) {
        Some(t) => Err(CausalLmError::Mismatch(format!(
            "token id {t} is outside the model's vocabulary of {vocab}: use the tokenizer the \
             model was trained with"
        ))),
        None => Ok(()),
    }
}

/// Negative log-likelihood of every next token: `[batch, len - 1]` from ids `[batch, len]`.
fn token_nll<B: Backend, M: CausalLm<B>>(
    model: &M,
    ids: Tensor<B, 2, Int>,
    mask: Option<Tensor<B, 2, Int>>,
) -> Tensor<B, 2> {
    let logits = model.forward_lm(ids.clone(), mask, false).logits;
    shifted_nll(logits, ids)
}

fn to_f64<B: Backend>(t: Tensor<B, 2>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Perplexity as in the DistilDP paper: the texts joined with `"\n\n"` are tokenised as one
/// stream, cut into consecutive non-overlapping windows of `block_size` tokens (the last may be
/// shorter), each window scored without context from the previous one, and
/// `PPL = exp(Σ NLL / number of predicted tokens)`; each window's first token is context only.
///
/// Windows are scored `batch_size` at a time.
pub fn perplexity<B: Backend, M: CausalLm<B>, S: AsRef<str>>(
    model: &M,
    tokenizer: &Tokenizer,
    texts: &[S],
    block_size: usize,
    batch_size: usize,
    device: &B::Device,
) -> Result<PerplexityReport, CausalLmError> {
    check_sizes(model, block_size, batch_size)?;
    let joined = texts
        .iter()
        .map(|t| t.as_ref())
        .collect::<Vec<_>>()
        .join("\n\n");
    let stream = tokenizer.encode(&joined)?;
    if stream.len() < 2 {
        return Err(CausalLmError::Empty(format!(
            "the evaluation texts tokenise to {} token(s); at least 2 are needed",
            stream.len()
        )));
    }
    check_vocab(&stream, model.vocab_size())?;
    let windows: Vec<&[u32]> = stream.chunks(block_size).collect();
    let mut nll_sum = 0.0;
    let mut tokens = 0;
    let full: Vec<&[u32]> = windows
        .iter()
        .copied()
        .filter(|w| w.len() == block_size)
        .collect();
    let tail: Vec<&[u32]> = windows
        .iter()
        .copied()
        .filter(|w| w.len() < block_size && w.len() >= 2)
        .collect();
    for group in full.chunks(batch_size).chain(tail.chunks(1)) {
        let len = group[0].len();
        let data: Vec<i64> = group
            .iter()
            .flat_map(|w| w.iter().map(|&t| t as i64))
            .collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(data, [group.len(), len]), device);
        let nll = to_f64(token_nll(model, ids, None));
        tokens += nll.len();
        nll_sum += nll.iter().sum::<f64>();
    }
    let mean_nll = nll_sum / tokens as f64;
    Ok(PerplexityReport {
        perplexity: mean_nll.exp(),
        mean_nll,
        nll_sum,
        tokens,
        stream_tokens: stream.len(),
        windows: windows.len(),
        block_size,
    })
}

/// Mean next-token negative log-likelihood of each text on its own (tokenised alone, truncated
/// to `block_size` tokens, scored in right-padded batches of `batch_size`). `None` for texts
/// of fewer than 2 tokens.
pub fn text_nll<B: Backend, M: CausalLm<B>, S: AsRef<str> + Send + Sync>(
    model: &M,
    tokenizer: &Tokenizer,
    texts: &[S],
    block_size: usize,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<Option<f64>>, CausalLmError> {
    check_sizes(model, block_size, batch_size)?;
    let mut out = Vec::with_capacity(texts.len());
    for group in texts.chunks(batch_size) {
        let batch = tokenizer.encode_batch(group, block_size, PaddingSide::Right, false)?;
        check_vocab(&batch.ids, model.vocab_size())?;
        if batch.len < 2 {
            out.extend(std::iter::repeat_n(None, group.len()));
            continue;
        }
        let (ids, mask) = batch.to_tensors::<B>(device);
        let nll = to_f64(token_nll(model, ids, Some(mask)));
        let width = batch.len - 1;
        for (row, &n) in batch.lengths.iter().enumerate() {
            if n < 2 {
                out.push(None);
                continue;
            }
            let predicted = &nll[row * width..row * width + n - 1];
            out.push(Some(predicted.iter().sum::<f64>() / (n - 1) as f64));
        }
    }
    Ok(out)
}
