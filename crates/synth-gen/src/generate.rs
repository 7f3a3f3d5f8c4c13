//! Batched, KV-cached autoregressive generation with left padding.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{CausalLm, LmCache};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::config::GenerationConfig;
use crate::error::{SynthGenError, invalid};
use crate::processors::next_token;

/// Token ids the generator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// End of text: generation of a row stops there (the token is not returned).
    pub eos: u32,
    /// Left padding of shorter prompts (masked out, never attended to).
    pub pad: u32,
}

/// The last position's logits of every row, `[rows, vocab]` on the host.
fn last_logits<B: Backend>(logits: Tensor<B, 3>) -> Vec<Vec<f32>> {
    let [rows, seq, vocab] = logits.dims();
    let data = logits
        .narrow(1, seq - 1, 1)
        .reshape([rows, vocab])
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 logits");
    data.chunks(vocab).map(<[f32]>::to_vec).collect()
}

/// Generates a continuation of every prompt (new tokens only, end-of-text excluded).
///
/// Prompts of different lengths share one batch: they are left-padded with a mask, so every
/// row's logits are those it would get alone. Each step feeds one token per unfinished row
/// through the model's KV cache; finished rows leave the batch (their cache rows are
/// dropped). Row `i` samples from its own ChaCha20 stream `first_index + i` of `seed`, so a
/// sample does not depend on which other prompts share its batch, and a run restarted at
/// sample `first_index` reproduces it.
///
/// Errors: an invalid config, an empty prompt, or a prompt whose length plus
/// `max_new_tokens` exceeds the model's positions.
pub fn generate<B: Backend, M: CausalLm<B>>(
    model: &M,
    prompts: &[Vec<u32>],
    special: SpecialTokens,
    config: &GenerationConfig,
    seed: u64,
    first_index: u64,
    device: &B::Device,
) -> Result<Vec<Vec<u32>>, SynthGenError> {
    config.validate()?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if prompts.iter().any(Vec::is_empty) {
        return Err(invalid(
            "prompt",
            "an empty prompt",
            "at least one token (e.g. a control code or end-of-text)",
        ));
    }
    if longest + config.max_new_tokens > model.max_positions() {
        return Err(invalid(
            "max_new_tokens",
            config.max_new_tokens,
            format!(
                "at most {} for prompts of {longest} tokens (the model has {} positions)",
                model.max_positions().saturating_sub(longest),
                model.max_positions()
            ),
        ));
    }
    let n = prompts.len();
    let mut ids = Vec::with_capacity(n * longest);
    let mut mask = Vec::with_capacity(n * longest);
    for p in prompts {
        let pad = longest - p.len();
        ids.extend(std::iter::repeat_n(special.pad as i64, pad));
        ids.extend(p.iter().map(|&t| t as i64));
        mask.extend(std::iter::repeat_n(0i64, pad));
        mask.extend(std::iter::repeat_n(1i64, p.len()));
    }
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, longest]), device);
    let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, [n, longest]), device);
    let mut cache = model.new_cache();
    let mut logits = last_logits(model.forward_cached_lm(ids, Some(mask), &mut cache));
    let mut rngs: Vec<ChaCha20Rng> = (0..n)
        .map(|i| {
            let mut r = ChaCha20Rng::seed_from_u64(seed);
            r.set_stream(first_index + i as u64);
            r
        })
        .collect();
    let mut contexts: Vec<Vec<u32>> = prompts.to_vec();
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut active: Vec<usize> = (0..n).collect(); // prompt index of each cache row
    for step in 0..config.max_new_tokens {
        let mut keep = Vec::with_capacity(active.len());
        let mut next = Vec::with_capacity(active.len());
        for (row, &i) in active.iter().enumerate() {
            let token = next_token(
                &mut logits[row],
                &contexts[i],
                step,
                special.eos,
                config,
                &mut rngs[i],
            );
            if token == special.eos {
                continue;
            }
            outputs[i].push(token);
            contexts[i].push(token);
            keep.push(row);
            next.push(token as i64);
        }
        if keep.is_empty() || step + 1 == config.max_new_tokens {
            break;
        }
        if keep.len() < active.len() {
            let rows: Vec<i64> = keep.iter().map(|&r| r as i64).collect();
            cache.select_rows(Tensor::from_data(
                TensorData::new(rows, [keep.len()]),
                device,
            ));
            active = keep.iter().map(|&r| active[r]).collect();
        }
        let tokens =
            Tensor::<B, 2, Int>::from_data(TensorData::new(next, [active.len(), 1]), device);
        logits = last_logits(model.forward_cached_lm(tokens, None, &mut cache));
    }
    Ok(outputs)
}
