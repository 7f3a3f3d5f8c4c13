//! Sampling settings.

use serde::{Deserialize, Serialize};

use crate::error::{SynthGenError, invalid};

fn d_max_new() -> usize {
    128
}
fn d_temperature() -> f64 {
    1.0
}
fn d_top_k() -> usize {
    50
}
fn d_top_p() -> f64 {
    0.9
}
fn d_penalty() -> f64 {
    1.0
}
fn d_ngram() -> usize {
    2
}
fn d_true() -> bool {
    true
}

/// How tokens are chosen. Defaults are the DistilDP paper's: sampling with top-k 50, top-p
/// 0.9, temperature 1, no repeated bigram, up to 128 new tokens. Processing order (as in
/// Hugging Face's `generate`): repetition penalty, no-repeat n-gram, minimum length,
/// temperature, top-k, top-p, then sampling (or argmax when `do_sample` is false).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Most new tokens per sample (>= 1).
    #[serde(default = "d_max_new")]
    pub max_new_tokens: usize,
    /// End-of-text is forbidden before this many new tokens.
    #[serde(default)]
    pub min_new_tokens: usize,
    /// Sample (true) or take the most likely token (false: greedy).
    #[serde(default = "d_true")]
    pub do_sample: bool,
    /// Logits are divided by this (> 0).
    #[serde(default = "d_temperature")]
    pub temperature: f64,
    /// Keep only the k most likely tokens (0 = off).
    #[serde(default = "d_top_k")]
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p, in (0, 1]
    /// (1 = off).
    #[serde(default = "d_top_p")]
    pub top_p: f64,
    /// Hugging Face's repetition penalty (>= 1 discourages tokens already present; 1 = off).
    #[serde(default = "d_penalty")]
    pub repetition_penalty: f64,
    /// Forbid any n-gram of this size from appearing twice (0 = off).
    #[serde(default = "d_ngram")]
    pub no_repeat_ngram_size: usize,
    /// Decode through the model's KV cache (true), or recompute the whole sequence at every
    /// step (false: the same tokens, much slower; kept for checks and benchmarks).
    #[serde(default = "d_true")]
    pub use_cache: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: d_max_new(),
            min_new_tokens: 0,
            do_sample: true,
            temperature: d_temperature(),
            top_k: d_top_k(),
            top_p: d_top_p(),
            repetition_penalty: d_penalty(),
            no_repeat_ngram_size: d_ngram(),
            use_cache: true,
        }
    }
}

impl GenerationConfig {
    /// Greedy decoding with no other processing (the reference for tests).
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            do_sample: false,
            top_k: 0,
            top_p: 1.0,
            no_repeat_ngram_size: 0,
            ..Self::default()
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), SynthGenError> {
        if self.max_new_tokens == 0 {
            return Err(invalid("max_new_tokens", 0, "an integer >= 1"));
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(invalid(
                "min_new_tokens",
                self.min_new_tokens,
                "at most max_new_tokens",
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(invalid(
                "temperature",
                self.temperature,
                "a finite number > 0",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid("top_p", self.top_p, "a number in (0, 1]"));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(invalid(
                "repetition_penalty",
                self.repetition_penalty,
                "a finite number > 0",
            ));
        }
        Ok(())
    }
}
