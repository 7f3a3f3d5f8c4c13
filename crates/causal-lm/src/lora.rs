//! Low-rank adapters (LoRA, Hu et al. 2022) on a frozen GPT-2: `W x + (α/r)·B(A x)` on the
//! chosen projections of every block, and their merge back into a plain [`Gpt2`].
//!
//! [`LoraGpt2`] holds the base model with every parameter frozen (`require_grad = false`)
//! and one [`LoraAdapter`] per adapted projection: `A` (`[d_in, r]`, Gaussian, seeded) and
//! `B` (`[r, d_out]`, zero), two burn [`Linear`]s without bias. Optimisers and per-example
//! clipping then see only the adapters: burn computes no gradient for a frozen parameter,
//! and `dp_optim`'s clipping paths and noise skip parameters that are not trainable.
//!
//! The adapters run through the model's [`LayerTap`]: the base forward pass is
//! [`Gpt2`]'s own (nothing is duplicated), with a tap that adds `scale · B(A x)` to the
//! output of every adapted projection, `A` and `B` each going through the caller's tap as a
//! linear layer without bias. Under `dp_optim::GhostTape` this is the fast (ghost) clipping
//! path of the adapters: `A`'s per-example gradient is built from its input `x` and the
//! gradient of `A x`, `B`'s from `A x` and the gradient of `B(A x)`.
//!
//! Because `B` starts at zero, a freshly adapted model computes exactly the base model's
//! logits. [`LoraGpt2::merge`] folds the adapters into the base weights
//! (`W ← W + scale · A·B`), giving a plain [`Gpt2`] for generation and for checkpoints
//! ([`crate::hf`], [`crate::checkpoint`]) that any GPT-2 loader reads.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use train_kit::{LayerTap, NoTap};

use crate::cache::KvCache;
use crate::error::CausalLmError;
use crate::lm::{CausalLm, LmOutput};
use crate::model::Gpt2;

/// A projection of a GPT-2 block that can carry an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoraProjection {
    /// The fused query/key/value projection `attn.c_attn`, `[n_embd, 3·n_embd]`.
    #[serde(rename = "attn.c_attn")]
    AttnQkv,
    /// The attention output projection `attn.c_proj`, `[n_embd, n_embd]`.
    #[serde(rename = "attn.c_proj")]
    AttnOut,
    /// The MLP expansion `mlp.c_fc`, `[n_embd, n_inner]`.
    #[serde(rename = "mlp.c_fc")]
    MlpIn,
    /// The MLP projection back `mlp.c_proj`, `[n_inner, n_embd]`.
    #[serde(rename = "mlp.c_proj")]
    MlpOut,
}

impl LoraProjection {
    /// All four projections, in block order.
    pub const ALL: [LoraProjection; 4] = [
        LoraProjection::AttnQkv,
        LoraProjection::AttnOut,
        LoraProjection::MlpIn,
        LoraProjection::MlpOut,
    ];

    /// The projection's path inside a block (`attn.c_attn`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::AttnQkv => "attn.c_attn",
            Self::AttnOut => "attn.c_proj",
            Self::MlpIn => "mlp.c_fc",
            Self::MlpOut => "mlp.c_proj",
        }
    }

    fn index(self) -> u64 {
        match self {
            Self::AttnQkv => 0,
            Self::AttnOut => 1,
            Self::MlpIn => 2,
            Self::MlpOut => 3,
        }
    }
}

fn default_projections() -> Vec<LoraProjection> {
    LoraProjection::ALL.to_vec()
}

/// Hyper-parameters of the adapters: rank `r`, scale `α` (the update is `(α/r)·B A`), which
/// projections of every block carry one, and the seed of `A`'s initialisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of every adapter, `1 ≤ r ≤ n_embd`.
    pub rank: usize,
    /// Scale numerator `α > 0` (finite): the adapter's output is multiplied by `α / r`.
    pub alpha: f64,
    /// The adapted projections (default: all four); not empty, no repeats.
    #[serde(default = "default_projections")]
    pub projections: Vec<LoraProjection>,
    /// Seed of `A`'s Gaussian initialisation (public randomness; default 0).
    #[serde(default)]
    pub seed: u64,
}

impl LoraConfig {
    /// Rank `rank` and scale `alpha` on all four projections, seed 0.
    pub fn new(rank: usize, alpha: f64) -> Self {
        Self {
            rank,
            alpha,
            projections: default_projections(),
            seed: 0,
        }
    }

    /// The same configuration with `seed` for `A`'s initialisation.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same configuration on `projections` only.
    pub fn with_projections(mut self, projections: &[LoraProjection]) -> Self {
        self.projections = projections.to_vec();
        self
    }

    /// The factor `α / r` the adapters' output is scaled by.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Refuses a rank of 0, a non-finite or non-positive `alpha`, and an empty or repeating
    /// projection list, naming the field (`lora.rank`, `lora.alpha`, `lora.projections`).
    pub fn validate(&self) -> Result<(), CausalLmError> {
        if self.rank == 0 {
            return Err(CausalLmError::InvalidParameter {
                field: "lora.rank",
                value: self.rank.to_string(),
                expected: "an integer >= 1 (and <= n_embd)",
            });
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(CausalLmError::InvalidParameter {
                field: "lora.alpha",
                value: self.alpha.to_string(),
                expected: "a finite number > 0",
            });
        }
        let unique: std::collections::HashSet<_> = self.projections.iter().collect();
        if self.projections.is_empty() || unique.len() != self.projections.len() {
            return Err(CausalLmError::InvalidParameter {
                field: "lora.projections",
                value: format!("{:?}", self.projections),
                expected: "a non-empty list without repeats of attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj",
            });
        }
        Ok(())
    }

    /// Adapts `base`: freezes all its parameters and adds, to every block, an adapter on each
    /// configured projection with `A ~ N(0, 1/d_in)` (drawn from `seed`, the same values on
    /// every backend) and `B = 0`, so the result computes exactly `base`'s logits.
    ///
    /// Errors: [`Self::validate`]'s, and a rank above the model's width (`lora.rank`).
    pub fn init<B: Backend>(
        &self,
        base: Gpt2<B>,
        device: &B::Device,
    ) -> Result<LoraGpt2<B>, CausalLmError> {
        self.validate()?;
        if self.rank > base.config.n_embd {
            return Err(CausalLmError::InvalidParameter {
                field: "lora.rank",
                value: self.rank.to_string(),
                expected: "an integer in [1, n_embd] of the adapted model",
            });
        }
        let adapters = base
            .h
            .iter()
            .enumerate()
            .map(|(layer, block)| {
                let mut adapters = BlockAdapters::default();
                for &p in &self.projections {
                    let target = match p {
                        LoraProjection::AttnQkv => &block.attn.c_attn,
                        LoraProjection::AttnOut => &block.attn.c_proj,
                        LoraProjection::MlpIn => &block.mlp.c_fc,
                        LoraProjection::MlpOut => &block.mlp.c_proj,
                    };
                    let [d_in, d_out] = target.weight.dims();
                    let seed = mix(mix(self.seed, layer as u64), p.index());
                    *adapters.slot_mut(p) =
                        Some(LoraAdapter::new(d_in, d_out, self.rank, seed, device));
                }
                adapters
            })
            .collect();
        Ok(LoraGpt2 {
            base: base.no_grad(),
            adapters,
            lora: self.clone(),
        })
    }
}

/// One adapter: `scale · B(A x)` with `A`: `[d_in, r]` and `B`: `[r, d_out]` (burn's
/// `[d_input, d_output]` layout), both [`Linear`]s without bias.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// Down-projection `A`, `[d_in, r]`, Gaussian-initialised.
    pub a: Linear<B>,
    /// Up-projection `B`, `[r, d_out]`, zero-initialised.
    pub b: Linear<B>,
}

impl<B: Backend> LoraAdapter<B> {
    /// A fresh adapter: `A ~ N(0, 1/d_in)` from `seed`, `B = 0`.
    fn new(d_in: usize, d_out: usize, rank: usize, seed: u64, device: &B::Device) -> Self {
        let std = 1.0 / (d_in as f64).sqrt();
        let mut rng = SplitMix(seed);
        let a: Vec<f32> = (0..d_in * rank)
            .map(|_| (rng.normal() * std) as f32)
            .collect();
        let weight = |values: Vec<f32>, rows: usize, cols: usize| Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [rows, cols]),
                device,
            )),
            bias: None,
        };
        Self {
            a: weight(a, d_in, rank),
            b: weight(vec![0.0; rank * d_out], rank, d_out),
        }
    }

    /// `scale · A·B`, `[d_in, d_out]`: what the adapter adds to its projection's weight.
    pub fn delta(&self, scale: f64) -> Tensor<B, 2> {
        self.a.weight.val().matmul(self.b.weight.val()) * scale
    }
}

/// The adapters of one block (`None`: that projection is not adapted).
#[derive(Module, Debug)]
pub struct BlockAdapters<B: Backend> {
    /// Adapter of `attn.c_attn`.
    pub c_attn: Option<LoraAdapter<B>>,
    /// Adapter of `attn.c_proj`.
    pub attn_c_proj: Option<LoraAdapter<B>>,
    /// Adapter of `mlp.c_fc`.
    pub c_fc: Option<LoraAdapter<B>>,
    /// Adapter of `mlp.c_proj`.
    pub mlp_c_proj: Option<LoraAdapter<B>>,
}

impl<B: Backend> Default for BlockAdapters<B> {
    fn default() -> Self {
        Self {
            c_attn: None,
            attn_c_proj: None,
            c_fc: None,
            mlp_c_proj: None,
        }
    }
}

impl<B: Backend> BlockAdapters<B> {
    /// The adapter of projection `p`, if any.
    pub fn get(&self, p: LoraProjection) -> Option<&LoraAdapter<B>> {
        match p {
            LoraProjection::AttnQkv => self.c_attn.as_ref(),
            LoraProjection::AttnOut => self.attn_c_proj.as_ref(),
            LoraProjection::MlpIn => self.c_fc.as_ref(),
            LoraProjection::MlpOut => self.mlp_c_proj.as_ref(),
        }
    }

    fn slot_mut(&mut self, p: LoraProjection) -> &mut Option<LoraAdapter<B>> {
        match p {
            LoraProjection::AttnQkv => &mut self.c_attn,
            LoraProjection::AttnOut => &mut self.attn_c_proj,
            LoraProjection::MlpIn => &mut self.c_fc,
            LoraProjection::MlpOut => &mut self.mlp_c_proj,
        }
    }
}

/// A GPT-2 with low-rank adapters: the frozen base model and one [`BlockAdapters`] per block.
/// Built by [`LoraConfig::init`]; [`LoraGpt2::merge`] gives back a plain [`Gpt2`].
///
/// The trainable parameters are the adapters' only (the base is frozen by `init`; after
/// loading a record into the model, call [`LoraGpt2::freeze_base`] again if the loader may
/// have reset trainability).
#[derive(Module, Debug)]
pub struct LoraGpt2<B: Backend> {
    /// The base model, every parameter frozen.
    pub base: Gpt2<B>,
    /// The adapters, one entry per block of `base`.
    pub adapters: Vec<BlockAdapters<B>>,
    /// The adapters' configuration.
    #[module(skip)]
    pub lora: LoraConfig,
}

impl<B: Backend> LoraGpt2<B> {
    /// The same model with every base parameter frozen (`require_grad = false`) and every
    /// adapter parameter trainable.
    pub fn freeze_base(self) -> Self {
        Self {
            base: self.base.no_grad(),
            adapters: self
                .adapters
                .into_iter()
                .map(|a| a.map(&mut Trainability(true)))
                .collect(),
            lora: self.lora,
        }
    }

    /// The factor `α / r` the adapters' output is scaled by.
    pub fn scale(&self) -> f64 {
        self.lora.scale()
    }

    /// Number of adapter (trainable) parameters.
    pub fn adapter_parameters(&self) -> usize {
        self.adapters.iter().map(|a| a.num_params()).sum()
    }

    /// Logits `[batch, seq, vocab]` of an unpadded batch `[batch, seq]`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.forward_full(tokens, None, false).logits
    }

    /// [`Gpt2::forward_full`] with the adapters.
    pub fn forward_full(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> LmOutput<B> {
        let mut plain = NoTap;
        let mut tap = self.tap(&mut plain);
        self.base
            .full(tokens, attention_mask, output_hidden_states, &mut tap)
    }

    /// [`Gpt2::forward_tapped`] with the adapters: every base layer and both linears of every
    /// adapter go through `tap` (with `dp_optim::GhostTape`: the adapters' fast per-example
    /// clipping path; the frozen base layers' records are ignored there).
    pub fn forward_tapped<T: LayerTap<B>>(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        tap: &mut T,
    ) -> Tensor<B, 3> {
        let mut tap = self.tap(tap);
        self.base
            .full(tokens, attention_mask, false, &mut tap)
            .logits
    }

    /// [`Gpt2::forward_cached`] with the adapters (for generation prefer [`Self::merge`]:
    /// the merged model does the same work as the base model).
    pub fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        cache: &mut KvCache<B>,
    ) -> LmOutput<B> {
        let mut plain = NoTap;
        let mut tap = self.tap(&mut plain);
        self.base.cached(tokens, attention_mask, cache, &mut tap)
    }

    /// The adapters folded into the base weights, `W ← W + (α/r)·A·B` on every adapted
    /// projection: a plain [`Gpt2`] computing the same function (up to rounding), every
    /// parameter trainable again, parameter ids kept. Save it with [`crate::hf`] or
    /// [`crate::checkpoint`] like any GPT-2.
    pub fn merge(&self) -> Gpt2<B> {
        let scale = self.scale();
        let mut model = self.base.clone();
        for (block, adapters) in model.h.iter_mut().zip(&self.adapters) {
            for p in LoraProjection::ALL {
                let Some(adapter) = adapters.get(p) else {
                    continue;
                };
                let layer = match p {
                    LoraProjection::AttnQkv => &mut block.attn.c_attn,
                    LoraProjection::AttnOut => &mut block.attn.c_proj,
                    LoraProjection::MlpIn => &mut block.mlp.c_fc,
                    LoraProjection::MlpOut => &mut block.mlp.c_proj,
                };
                let id = layer.weight.id;
                let merged = (layer.weight.val() + adapter.delta(scale)).detach();
                layer.weight = Param::initialized(id, merged);
            }
        }
        model.map(&mut Trainability(true))
    }

    /// The tap that adds the adapters to `inner`'s projections.
    fn tap<'a, T: LayerTap<B>>(&'a self, inner: &'a mut T) -> LoraTap<'a, B, T> {
        let mut adapters = HashMap::new();
        for (block, a) in self.base.h.iter().zip(&self.adapters) {
            for p in LoraProjection::ALL {
                if let Some(adapter) = a.get(p) {
                    let layer = match p {
                        LoraProjection::AttnQkv => &block.attn.c_attn,
                        LoraProjection::AttnOut => &block.attn.c_proj,
                        LoraProjection::MlpIn => &block.mlp.c_fc,
                        LoraProjection::MlpOut => &block.mlp.c_proj,
                    };
                    adapters.insert(layer.weight.id, adapter);
                }
            }
        }
        LoraTap {
            adapters,
            scale: self.scale(),
            inner,
        }
    }
}

/// Sets every float parameter's trainability.
struct Trainability(bool);

impl<B: Backend> ModuleMapper<B> for Trainability {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.set_require_grad(self.0)
    }
}

/// A tap that runs every layer through `inner` and adds `scale · B(A x)` to the output of
/// each projection that has an adapter (found by the base weight's parameter id).
struct LoraTap<'a, B: Backend, T: LayerTap<B>> {
    adapters: HashMap<ParamId, &'a LoraAdapter<B>>,
    scale: f64,
    inner: &'a mut T,
}

impl<B: Backend, T: LayerTap<B>> LayerTap<B> for LoraTap<'_, B, T> {
    fn linear<const D: usize>(&mut self, layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
        match self.adapters.get(&layer.weight.id) {
            None => self.inner.linear(layer, x),
            Some(adapter) => {
                let y = self.inner.linear(layer, x.clone());
                let down = self.inner.linear(&adapter.a, x);
                y + self.inner.linear(&adapter.b, down) * self.scale
            }
        }
    }

    fn linear_transposed<const D: usize>(
        &mut self,
        weight: &Param<Tensor<B, 2>>,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        self.inner.linear_transposed(weight, x)
    }

    fn embedding(&mut self, layer: &Embedding<B>, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.inner.embedding(layer, ids)
    }

    fn layer_norm<const D: usize>(
        &mut self,
        layer: &LayerNorm<B>,
        epsilon: f64,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        self.inner.layer_norm(layer, epsilon, x)
    }
}

impl<B: Backend> CausalLm<B> for LoraGpt2<B> {
    type Cache = KvCache<B>;

    fn vocab_size(&self) -> usize {
        self.base.config.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.base.config.n_positions
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
        self.base.new_cache()
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

/// SplitMix64 (Steele et al. 2014): a small, portable, seeded generator for the adapters'
/// public initialisation (no cryptographic use).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0, 0)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// SplitMix64's finaliser of `a` combined with `b`.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
