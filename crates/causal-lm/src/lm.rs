//! The causal-LM interface other crates program against (implemented by `Gpt2` in
//! `model.rs` and its cache in `cache.rs`: this file imports neither).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct LmOutput<B: Backend> {
    /// Next-token logits, `[batch, seq, vocab]`: position `t` predicts token `t + 1`.
    pub logits: Tensor<B, 3>,
    /// When requested: `n_layer + 1` tensors `[batch, seq, n_embd]`, Hugging Face's
    /// `hidden_states` (embeddings, then each block's output, the last after the final
    /// LayerNorm). Empty otherwise.
    pub hidden_states: Vec<Tensor<B, 3>>,
}

/// A decoding cache: what a [`CausalLm`] keeps between incremental calls.
pub trait LmCache<B: Backend> {
    /// Cached positions, padding included.
    fn len(&self) -> usize;
    /// Whether nothing is cached.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keeps only the given batch rows, in that order.
    fn select_rows(&mut self, rows: Tensor<B, 1, Int>);
}

/// A causal language model: full and incremental forward passes over token ids.
///
/// Masks follow Hugging Face: `[batch, seq]`, 1 for a real token, 0 for padding.
pub trait CausalLm<B: Backend> {
    /// The incremental-decoding state.
    type Cache: LmCache<B>;

    /// Size of the output distribution.
    fn vocab_size(&self) -> usize;

    /// Longest sequence (prompt + generation) the model accepts.
    fn max_positions(&self) -> usize;

    /// Logits (and optionally hidden states) of a whole, possibly padded, batch.
    fn forward_lm(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> LmOutput<B>;

    /// An empty cache.
    fn new_cache(&self) -> Self::Cache;

    /// Logits of `tokens` continuing what `cache` holds; appends them to the cache.
    fn forward_cached_lm(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        cache: &mut Self::Cache,
    ) -> Tensor<B, 3>;
}
