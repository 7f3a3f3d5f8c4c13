//! Logit processing and token choice for one row (on the host).

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use crate::config::GenerationConfig;

/// Hugging Face's repetition penalty: for every token already in `context`, a positive logit
/// is divided by `penalty` and a negative one multiplied by it.
pub fn repetition_penalty(logits: &mut [f32], context: &[u32], penalty: f64) {
    if penalty == 1.0 {
        return;
    }
    let p = penalty as f32;
    let mut seen = vec![false; logits.len()];
    for &t in context {
        let t = t as usize;
        if t < logits.len() && !seen[t] {
            seen[t] = true;
            logits[t] = if logits[t] > 0.0 {
                logits[t] / p
            } else {
                logits[t] * p
            };
        }
    }
}

/// Forbids every token that would complete an `n`-gram already present in `context`.
pub fn no_repeat_ngram(logits: &mut [f32], context: &[u32], n: usize) {
    if n == 0 || context.len() + 1 < n {
        return;
    }
    let prefix = &context[context.len() + 1 - n..];
    for window in context.windows(n) {
        if &window[..n - 1] == prefix {
            let t = window[n - 1] as usize;
            if t < logits.len() {
                logits[t] = f32::NEG_INFINITY;
            }
        }
    }
}

/// The `k`-th largest logit (`−∞` when `k` is 0 or at least the vocabulary: keep all).
fn top_k_threshold(logits: &[f32], k: usize) -> f32 {
    if k == 0 || k >= logits.len() {
        return f32::NEG_INFINITY;
    }
    let mut sorted: Vec<f32> = logits.to_vec();
    *sorted
        .select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a))
        .1
}

/// Keeps the `k` largest logits (ties at the threshold kept), the rest `−∞`.
pub fn top_k(logits: &mut [f32], k: usize) {
    if k == 0 || k >= logits.len() {
        return;
    }
    let threshold = top_k_threshold(logits, k);
    for x in logits.iter_mut() {
        if *x < threshold {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// Softmax in `f64` of finite-or-`−∞` logits.
fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut p: Vec<f64> = logits.iter().map(|&x| ((x as f64) - max).exp()).collect();
    let sum: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= sum);
    p
}

/// Keeps the smallest set of most likely tokens whose probability reaches `p` (at least one),
/// the rest `−∞`.
pub fn top_p(logits: &mut [f32], p: f64) {
    if p >= 1.0 {
        return;
    }
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).filter(|&i| probs[i] > 0.0).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut cumulative = 0.0;
    let mut keep = vec![false; logits.len()];
    for &i in &order {
        keep[i] = true;
        cumulative += probs[i];
        if cumulative >= p {
            break;
        }
    }
    for (x, k) in logits.iter_mut().zip(keep) {
        if !k {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// The index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// A draw from `softmax(logits)` with a 53-bit uniform.
pub fn sample(logits: &[f32], rng: &mut ChaCha20Rng) -> u32 {
    let probs = softmax(logits);
    let u = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let mut cumulative = 0.0;
    let mut last = 0;
    for (i, &q) in probs.iter().enumerate() {
        if q > 0.0 {
            last = i;
            cumulative += q;
            if u < cumulative {
                return i as u32;
            }
        }
    }
    last as u32
}

/// The tokens top-k would keep (ties at the threshold kept; every finite one when `k` is 0 or
/// at least their number), as `(id, logit)` in increasing id order.
fn top_k_candidates(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let finite = |x: f32| x > f32::NEG_INFINITY;
    let threshold = top_k_threshold(logits, k);
    logits
        .iter()
        .enumerate()
        .filter(|&(_, &x)| finite(x) && x >= threshold)
        .map(|(i, &x)| (i as u32, x))
        .collect()
}

/// Top-k, top-p and a draw, on the candidates only: the same token as the dense chain
/// [`top_k`], [`top_p`], [`sample`] (a draw over the kept tokens in id order), without passes
/// over the whole vocabulary after the top-k.
fn sample_sparse(logits: &[f32], config: &GenerationConfig, rng: &mut ChaCha20Rng) -> u32 {
    let mut cand = top_k_candidates(logits, config.top_k);
    if cand.is_empty() {
        // Every token forbidden (no built-in processor can do this): token 0, as the dense
        // chain.
        return 0;
    }
    if config.top_p < 1.0 {
        let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max) as f64;
        let weights: Vec<f64> = cand.iter().map(|c| ((c.1 as f64) - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut order: Vec<usize> = (0..cand.len()).filter(|&j| weights[j] > 0.0).collect();
        order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
        let mut keep = vec![false; cand.len()];
        let mut cumulative = 0.0;
        for &j in &order {
            keep[j] = true;
            cumulative += weights[j] / total;
            if cumulative >= config.top_p {
                break;
            }
        }
        let mut j = 0;
        cand.retain(|_| {
            j += 1;
            keep[j - 1]
        });
    }
    let kept: Vec<f32> = cand.iter().map(|c| c.1).collect();
    cand[sample(&kept, rng) as usize].0
}

/// The next token of one row: every processor of `config` in Hugging Face's order, then a
/// draw (or argmax). `context` is the prompt and the tokens generated so far; `generated`
/// their number; `eos` the end-of-text id.
///
/// After the top-k, the remaining steps run on the few kept candidates only; the token is
/// the one the dense chain of [`top_k`], [`top_p`] and [`sample`] would draw from the same
/// stream (the `processors` tests check this).
pub fn next_token(
    logits: &mut [f32],
    context: &[u32],
    generated: usize,
    eos: u32,
    config: &GenerationConfig,
    rng: &mut ChaCha20Rng,
) -> u32 {
    repetition_penalty(logits, context, config.repetition_penalty);
    no_repeat_ngram(logits, context, config.no_repeat_ngram_size);
    if generated < config.min_new_tokens && (eos as usize) < logits.len() {
        logits[eos as usize] = f32::NEG_INFINITY;
    }
    if !config.do_sample {
        return argmax(logits);
    }
    if config.temperature != 1.0 {
        let t = config.temperature as f32;
        logits.iter_mut().for_each(|x| *x /= t);
    }
    sample_sparse(logits, config, rng)
}
