//! Causal multi-head self-attention and its mask (causal, padding, cached prefix).

use burn::module::Module;
use burn::nn::{Dropout, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor};

use train_kit::LayerTap;

use crate::cache::LayerCache;

/// Causal multi-head self-attention with GPT-2's fused QKV projection.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Fused query/key/value projection `[n_embd, 3·n_embd]` (q, k, v concatenated on the
    /// output axis, as in Hugging Face's `c_attn`).
    pub c_attn: Linear<B>,
    /// Output projection `[n_embd, n_embd]`.
    pub c_proj: Linear<B>,
    /// Dropout on the attention probabilities (only active when training with autodiff).
    pub attn_drop: Dropout,
    /// Number of heads.
    pub n_head: usize,
}

/// Which keys each query may see: causal order, padding, and a cached prefix.
#[derive(Debug, Clone)]
pub(crate) struct AttentionMask<B: Backend> {
    /// `true` = masked, `[batch, heads, q, k]`; `None` = plain causal over one segment.
    masked: Option<Tensor<B, 4, Bool>>,
}

impl<B: Backend> AttentionMask<B> {
    /// `keys_mask`: `[batch, past + seq]`, 1 for real keys (`None`: all real). Query `i` (at
    /// absolute position `past + i`) sees key `j` iff `j <= past + i` and key `j` is real.
    pub(crate) fn new(
        keys_mask: Option<Tensor<B, 2, Int>>,
        past: usize,
        seq: usize,
        n_head: usize,
    ) -> Self {
        let Some(keys) = keys_mask else {
            assert_eq!(past, 0, "a cached prefix always carries its key mask");
            return Self { masked: None };
        };
        let [batch, total] = keys.dims();
        let device = keys.device();
        let padded = keys.equal_elem(0).reshape([batch, 1, 1, total]);
        let future = Tensor::<B, 2, Bool>::tril_mask([seq, total], past as i64, &device)
            .reshape([1, 1, seq, total]);
        let masked = padded
            .expand([batch, 1, seq, total])
            .bool_or(future.expand([batch, 1, seq, total]))
            .expand([batch, n_head, seq, total]);
        Self {
            masked: Some(masked),
        }
    }
}

impl<B: Backend> Attention<B> {
    /// `x`: `[batch, seq, n_embd]` → `[batch, seq, n_embd]`. With a cache, the new keys and
    /// values are appended to it and the queries attend over the whole cached sequence.
    pub(crate) fn forward<T: LayerTap<B>>(
        &self,
        x: Tensor<B, 3>,
        mask: &AttentionMask<B>,
        cache: Option<&mut LayerCache<B>>,
        tap: &mut T,
    ) -> Tensor<B, 3> {
        let [batch, seq, d] = x.dims();
        let heads = self.n_head;
        let head_dim = d / heads;
        let qkv = tap.linear(&self.c_attn, x);
        let dropout = B::ad_enabled(&qkv.device()) && self.attn_drop.prob > 0.0;
        if cache.is_none() && !dropout {
            // The whole sequence at once: one fused node (split, masked softmax, merge).
            let context = fused_ops::self_attention(qkv, heads, mask.masked.clone());
            return tap.linear(&self.c_proj, context);
        }
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i * d, d)
                .reshape([batch, seq, heads, head_dim])
                .swap_dims(1, 2)
        };
        let (q, mut k, mut v) = (split(0), split(1), split(2));
        if let Some(cache) = cache {
            (k, v) = cache.append(k, v);
        }
        let context = if dropout {
            self.attend_with_dropout(q, k, v, mask)
        } else {
            let options = AttentionModuleOptions {
                is_causal: mask.masked.is_none(),
                ..Default::default()
            };
            attention(q, k, v, mask.masked.clone(), None, options)
        };
        let context = context.swap_dims(1, 2).reshape([batch, seq, d]);
        tap.linear(&self.c_proj, context)
    }

    /// The explicit path, used only when attention dropout is active (the fused kernel has no
    /// dropout).
    fn attend_with_dropout(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: &AttentionMask<B>,
    ) -> Tensor<B, 4> {
        let [batch, heads, seq, head_dim] = q.dims();
        let total = k.dims()[2];
        let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
        let masked = match &mask.masked {
            Some(m) => m.clone(),
            None => Tensor::<B, 2, Bool>::tril_mask([seq, total], 0, &scores.device())
                .reshape([1, 1, seq, total])
                .expand([batch, heads, seq, total]),
        };
        let probs = softmax(scores.mask_fill(masked, -1.0e30), 3);
        self.attn_drop.forward(probs).matmul(v)
    }
}
