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
/// through the model's KV cache (or, with `use_cache: false`, the whole sequence again);
/// finished rows leave the batch (their cache rows are dropped). Row `i` samples from its own ChaCha20 stream `first_index + i` of `seed`, so a
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
    let mut decoder = Decoder::new(model, config.use_cache, ids, mask, [n, longest], device);
    let mut logits = decoder.first();
    let mut rngs: Vec<ChaCha20Rng> = (0..n)
        .map(|i| {
            let mut r = ChaCha20Rng::seed_from_u64(seed);
            r.set_stream(first_index + i as u64);
            r
        })
        .collect();
    let mut contexts: Vec<Vec<u32>> = prompts.to_vec();
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut active: Vec<usize> = (0..n).collect(); // prompt index of each batch row
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
            decoder.keep_rows(&keep);
            active = keep.iter().map(|&r| active[r]).collect();
        }
        logits = decoder.step(next);
    }
    Ok(outputs)
}

/// One batch's decoding state: the KV cache, or (uncached) the whole padded batch on the
/// host, fed again at every step.
struct Decoder<'a, B: Backend, M: CausalLm<B>> {
    model: &'a M,
    device: &'a B::Device,
    cache: Option<M::Cache>,
    /// Uncached only: every row's ids and mask so far, `rows × len` row-major.
    ids: Vec<i64>,
    mask: Vec<i64>,
    rows: usize,
    len: usize,
}

impl<'a, B: Backend, M: CausalLm<B>> Decoder<'a, B, M> {
    fn new(
        model: &'a M,
        cached: bool,
        ids: Vec<i64>,
        mask: Vec<i64>,
        [rows, len]: [usize; 2],
        device: &'a B::Device,
    ) -> Self {
        Self {
            model,
            device,
            cache: cached.then(|| model.new_cache()),
            ids,
            mask,
            rows,
            len,
        }
    }

    fn tensor(&self, data: &[i64], dims: [usize; 2]) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(data.to_vec(), dims), self.device)
    }

    /// Logits after the prompts.
    fn first(&mut self) -> Vec<Vec<f32>> {
        let dims = [self.rows, self.len];
        let ids = self.tensor(&self.ids, dims);
        let mask = self.tensor(&self.mask, dims);
        match &mut self.cache {
            Some(cache) => last_logits(self.model.forward_cached_lm(ids, Some(mask), cache)),
            None => last_logits(self.model.forward_lm(ids, Some(mask), false).logits),
        }
    }

    /// Keeps only these rows (indices into the current batch, increasing).
    fn keep_rows(&mut self, keep: &[usize]) {
        match &mut self.cache {
            Some(cache) => {
                let rows: Vec<i64> = keep.iter().map(|&r| r as i64).collect();
                cache.select_rows(Tensor::from_data(
                    TensorData::new(rows, [keep.len()]),
                    self.device,
                ));
                self.ids.clear();
                self.mask.clear();
            }
            None => {
                let len = self.len;
                let pick = |v: &[i64]| -> Vec<i64> {
                    keep.iter()
                        .flat_map(|&r| v[r * len..(r + 1) * len].iter().copied())
                        .collect()
                };
                self.ids = pick(&self.ids);
                self.mask = pick(&self.mask);
            }
        }
        self.rows = keep.len();
    }

    /// Logits after appending one token to every row.
    fn step(&mut self, next: Vec<i64>) -> Vec<Vec<f32>> {
        debug_assert_eq!(next.len(), self.rows);
        match &mut self.cache {
            Some(cache) => {
                let tokens = Tensor::from_data(TensorData::new(next, [self.rows, 1]), self.device);
                last_logits(self.model.forward_cached_lm(tokens, None, cache))
            }
            None => {
                let (len, rows) = (self.len, self.rows);
                let mut ids = Vec::with_capacity(rows * (len + 1));
                let mut mask = Vec::with_capacity(rows * (len + 1));
                for (r, &t) in next.iter().enumerate() {
                    ids.extend_from_slice(&self.ids[r * len..(r + 1) * len]);
                    ids.push(t);
                    mask.extend_from_slice(&self.mask[r * len..(r + 1) * len]);
                    mask.push(1);
                }
                self.ids = ids;
                self.mask = mask;
                self.len += 1;
                self.first()
            }
        }
    }
}
