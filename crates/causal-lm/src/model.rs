//! The GPT-2 model: embeddings, pre-LayerNorm transformer blocks, tied LM head.

use burn::module::{Initializer, Module};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use train_kit::{LayerTap, NoTap};

use crate::attention::{Attention, AttentionMask};
use crate::cache::{KvCache, LayerCache};
use crate::config::Gpt2Config;
use crate::error::CausalLmError;
use crate::lm::{CausalLm, LmOutput};
use fused_ops::gelu_tanh;

/// The two-layer MLP of a block: `c_proj(gelu_tanh(c_fc(x)))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Expansion, `[n_embd, n_inner]` (Hugging Face's Conv1D layout, which is burn's).
    pub c_fc: Linear<B>,
    /// Projection back, `[n_inner, n_embd]`.
    pub c_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn forward<T: LayerTap<B>>(&self, x: Tensor<B, 3>, tap: &mut T) -> Tensor<B, 3> {
        let h = gelu_tanh(tap.linear(&self.c_fc, x));
        tap.linear(&self.c_proj, h)
    }
}

/// One pre-LayerNorm transformer block:
/// `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// LayerNorm before attention.
    pub ln_1: LayerNorm<B>,
    /// Causal multi-head self-attention.
    pub attn: Attention<B>,
    /// LayerNorm before the MLP.
    pub ln_2: LayerNorm<B>,
    /// The MLP.
    pub mlp: Mlp<B>,
    /// Dropout on each residual branch.
    pub resid_drop: Dropout,
}

impl<B: Backend> Block<B> {
    fn forward<T: LayerTap<B>>(
        &self,
        x: Tensor<B, 3>,
        mask: &AttentionMask<B>,
        cache: Option<&mut LayerCache<B>>,
        epsilon: f64,
        tap: &mut T,
    ) -> Tensor<B, 3> {
        let h = tap.layer_norm(&self.ln_1, epsilon, x.clone());
        let a = self.attn.forward(h, mask, cache, tap);
        let x = x + self.resid_drop.forward(a);
        let h = tap.layer_norm(&self.ln_2, epsilon, x.clone());
        let m = self.mlp.forward(h, tap);
        x + self.resid_drop.forward(m)
    }
}

/// A GPT-2 causal language model.
///
/// The parameters are plain burn modules ([`Embedding`], [`Linear`], [`LayerNorm`]) whose paths
/// mirror Hugging Face's names (`wte`, `wpe`, `h.{i}.attn.c_attn`, ...), so optimisers, per-example
/// gradient code and checkpoint mappers see the model as it is. The LM head is the token
/// embedding itself (`logits = ln_f(h) · wteᵀ`): one parameter, whose gradient collects both uses.
#[derive(Module, Debug)]
pub struct Gpt2<B: Backend> {
    /// Token embedding `[vocab_size, n_embd]`, tied to the LM head.
    pub wte: Embedding<B>,
    /// Learned position embedding `[n_positions, n_embd]`.
    pub wpe: Embedding<B>,
    /// The transformer blocks.
    pub h: Vec<Block<B>>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm<B>,
    /// Dropout on the embeddings.
    pub embd_drop: Dropout,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: Gpt2Config,
}

impl Gpt2Config {
    /// Builds a randomly initialised model as GPT-2 does: weights `N(0, initializer_range²)`,
    /// residual projections scaled by `1/√(2·n_layer)`, biases 0, LayerNorms 1 and 0.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Gpt2<B>, CausalLmError> {
        self.validate()?;
        let std = self.initializer_range;
        let normal = Initializer::Normal { mean: 0.0, std };
        let proj = Initializer::Normal {
            mean: 0.0,
            std: std / (2.0 * self.n_layer as f64).sqrt(),
        };
        let linear = |d_in: usize, d_out: usize, init: &Initializer| {
            let mut l = LinearConfig::new(d_in, d_out)
                .with_initializer(init.clone())
                .init(device);
            l.bias = Some(Initializer::Zeros.init([d_out], device));
            l
        };
        let ln = || {
            LayerNormConfig::new(self.n_embd)
                .with_epsilon(self.layer_norm_epsilon)
                .init(device)
        };
        let d = self.n_embd;
        let blocks = (0..self.n_layer)
            .map(|_| Block {
                ln_1: ln(),
                attn: Attention {
                    c_attn: linear(d, 3 * d, &normal),
                    c_proj: linear(d, d, &proj),
                    attn_drop: DropoutConfig::new(self.attn_pdrop).init(),
                    n_head: self.n_head,
                },
                ln_2: ln(),
                mlp: Mlp {
                    c_fc: linear(d, self.inner_dim(), &normal),
                    c_proj: linear(self.inner_dim(), d, &proj),
                },
                resid_drop: DropoutConfig::new(self.resid_pdrop).init(),
            })
            .collect();
        Ok(Gpt2 {
            wte: EmbeddingConfig::new(self.vocab_size, d)
                .with_initializer(normal.clone())
                .init(device),
            wpe: EmbeddingConfig::new(self.n_positions, d)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.01,
                })
                .init(device),
            h: blocks,
            ln_f: ln(),
            embd_drop: DropoutConfig::new(self.embd_pdrop).init(),
            config: self.clone(),
        })
    }
}

impl<B: Backend> Gpt2<B> {
    /// Logits `[batch, seq, vocab]` of an unpadded batch `[batch, seq]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.forward_full(tokens, None, false).logits
    }

    /// The full forward pass.
    ///
    /// * `attention_mask`: `[batch, seq]`, 1 for a real token and 0 for padding (Hugging Face's
    ///   convention). Padding may be on either side: positions count real tokens only
    ///   (`cumsum(mask) - 1`), and no query attends to a padded key, so every real token gets
    ///   the logits it would get in an unpadded single sequence. Logits at padded positions are
    ///   finite but meaningless; mask them out of any loss.
    /// * `output_hidden_states`: also return the `n_layer + 1` hidden states, as Hugging Face
    ///   does: the embeddings, the output of each block, the last one after `ln_f`.
    ///
    /// # Panics
    /// Like every burn tensor operation given out-of-range input: token ids must be below
    /// `config.vocab_size` and sequences no longer than `config.n_positions`. The checked entry
    /// points ([`crate::perplexity`], [`crate::text_nll`]) validate both and return errors.
    pub fn forward_full(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> LmOutput<B> {
        self.full(tokens, attention_mask, output_hidden_states, &mut NoTap)
    }

    /// Logits `[batch, seq, vocab]` as [`Gpt2::forward_full`] computes them, with every
    /// parameterised layer (embeddings, LayerNorms, Linears, the tied head) run through
    /// `tap`: with `dp_optim::GhostTape` this is the model's fast per-example clipping path
    /// for DP-SGD (each row of `tokens` is one example; rows never mix).
    pub fn forward_tapped<T: LayerTap<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        tap: &mut T,
    ) -> Tensor<B, 3> {
        self.full(tokens, attention_mask, false, tap).logits
    }

    /// A whole-sequence forward pass (no cache) through `tap`.
    pub(crate) fn full<T: LayerTap<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
        tap: &mut T,
    ) -> LmOutput<B> {
        let [batch, seq] = tokens.dims();
        let device = tokens.device();
        let positions = match &attention_mask {
            Some(mask) => (mask.clone().cumsum(1) - 1).clamp_min(0),
            None => Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
                .reshape([1, seq])
                .expand([batch, seq]),
        };
        let mask = AttentionMask::new(attention_mask, 0, seq, self.config.n_head);
        self.run(tokens, positions, &mask, None, output_hidden_states, tap)
    }

    /// Runs `tokens` after what `cache` already holds and appends their keys and values.
    ///
    /// `attention_mask` covers the new tokens only (1 real, 0 padding; `None` = all real); the
    /// cache remembers the masks of earlier calls. A call with one new token per row costs one
    /// token's work per layer plus attention over the cached keys. Logits equal those of
    /// [`Gpt2::forward_full`] over the whole sequence.
    ///
    /// # Panics
    /// As [`Gpt2::forward_full`]: the cached plus new length must not exceed `n_positions`.
    pub fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        cache: &mut KvCache<B>,
    ) -> LmOutput<B> {
        self.cached(tokens, attention_mask, cache, &mut NoTap)
    }

    /// [`Gpt2::forward_cached`] with every parameterised layer run through `tap` (e.g. the
    /// LoRA adapters' tap, [`crate::LoraGpt2`]).
    pub(crate) fn cached<T: LayerTap<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        cache: &mut KvCache<B>,
        tap: &mut T,
    ) -> LmOutput<B> {
        let [batch, seq] = tokens.dims();
        let device = tokens.device();
        let new_mask =
            attention_mask.unwrap_or_else(|| Tensor::<B, 2, Int>::ones([batch, seq], &device));
        let positions =
            (new_mask.clone().cumsum(1) - 1 + cache.real_tokens(batch, &device)).clamp_min(0);
        let past = cache.len();
        let full_mask = cache.push_mask(new_mask);
        let mask = AttentionMask::new(Some(full_mask), past, seq, self.config.n_head);
        cache.ensure_layers(self.h.len());
        self.run(tokens, positions, &mask, Some(cache), false, tap)
    }

    fn run<T: LayerTap<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &AttentionMask<B>,
        mut cache: Option<&mut KvCache<B>>,
        output_hidden_states: bool,
        tap: &mut T,
    ) -> LmOutput<B> {
        let eps = self.config.layer_norm_epsilon;
        let tokens = tap.embedding(&self.wte, tokens);
        let positions = tap.embedding(&self.wpe, positions);
        let mut x = self.embd_drop.forward(tokens + positions);
        let mut hidden = Vec::new();
        for (i, block) in self.h.iter().enumerate() {
            if output_hidden_states {
                hidden.push(x.clone());
            }
            let layer = cache.as_deref_mut().map(|c| c.layer_mut(i));
            x = block.forward(x, mask, layer, eps, tap);
        }
        let x = tap.layer_norm(&self.ln_f, eps, x);
        if output_hidden_states {
            hidden.push(x.clone());
        }
        let logits = tap.linear_transposed(&self.wte.weight, x);
        LmOutput {
            logits,
            hidden_states: hidden,
        }
    }

    /// The tied LM head: `x · wteᵀ`, `[batch, seq, n_embd] → [batch, seq, vocab]`.
    pub fn lm_head(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        NoTap.linear_transposed(&self.wte.weight, x)
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.h.len())
    }
}

impl<B: Backend> CausalLm<B> for Gpt2<B> {
    type Cache = KvCache<B>;

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.config.n_positions
    }

    fn forward_lm(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> LmOutput<B> {
        self.forward_full(tokens, attention_mask, output_hidden_states)
    }

    fn new_cache(&self) -> Self::Cache {
        Gpt2::new_cache(self)
    }

    fn forward_cached_lm(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        cache: &mut Self::Cache,
    ) -> Tensor<B, 3> {
        self.forward_cached(tokens, attention_mask, cache).logits
    }
}
