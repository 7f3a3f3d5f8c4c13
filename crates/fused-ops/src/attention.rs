//! Multi-head self-attention from a fused QKV projection, with one backward node.
//!
//! burn's autodiff runs attention as its parts: the q/k/v split (each gradient a zero tensor of
//! the whole projection with a slice written into it, then summed), `QKᵀ`, scale, mask, a
//! softmax decomposed into max, subtract, exp, sum and divide (each a single-threaded pass with
//! its own node), and `PV`. Here the forward is two batched matrix products around one
//! row-parallel masked softmax, and the backward is four matrix products around one fused
//! softmax backward, writing the projection's gradient once.

use std::any::TypeId;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorPrimitive};

use crate::cpu::{RowKernel, dot, exp, par_rows};
use crate::dispatch::autodiff_dispatch;
use crate::host::{HostF32, flex_f32, host_mask, reshape};

/// Self-attention of `qkv` `[batch, seq, 3·d]` (queries, keys and values concatenated on the
/// last axis, as GPT-2's `c_attn` produces them) with `n_head` heads of `d / n_head`, scores
/// scaled by `1/√(d / n_head)`: returns the heads' outputs merged back, `[batch, seq, d]`.
///
/// `mask` is `[batch, n_head, seq, seq]`, `true` where query `i` must not see key `j`; `None`
/// means causal (`j ≤ i`). A query that may see no key (a padding position) gets a finite
/// output of no meaning: zeros under burn-flex and the autodiff backends listed in the crate
/// docs, whatever burn's attention gives otherwise. Exclude such positions from every loss.
///
/// # Panics
/// If the last axis of `qkv` is not a multiple of `3·n_head`, or `mask` has another shape.
pub fn self_attention<B: Backend>(
    qkv: Tensor<B, 3>,
    n_head: usize,
    mask: Option<Tensor<B, 4, Bool>>,
) -> Tensor<B, 3> {
    let [batch, seq, three_d] = qkv.dims();
    assert!(
        n_head > 0 && three_d % (3 * n_head) == 0,
        "self_attention: last axis {three_d} is not 3 × {n_head} heads × head size"
    );
    if let Some(m) = &mask {
        assert_eq!(
            m.dims(),
            [batch, n_head, seq, seq],
            "self_attention: mask shape"
        );
    }
    autodiff_dispatch!(B, attention_autodiff, (qkv, n_head, mask), {
        let dims = Dims::of(&qkv, n_head);
        if TypeId::of::<B>() == TypeId::of::<Flex>() {
            // burn-flex's attention copies the strided q/k/v views element by element
            // (`attention_naive`); the forward of the autodiff node is ~2× faster here
            return forward(dims, qkv, mask).out;
        }
        // Elsewhere burn's attention (a fused kernel on the GPU backends).
        let (q, k, v) = dims.split(qkv);
        let options = AttentionModuleOptions {
            is_causal: mask.is_none(),
            ..Default::default()
        };
        dims.merge(attention(q, k, v, mask, None, options))
    })
}

/// Shapes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    d: usize,
}

impl Dims {
    fn of<B: Backend>(qkv: &Tensor<B, 3>, heads: usize) -> Self {
        let [batch, seq, three_d] = qkv.dims();
        let d = three_d / 3;
        Self {
            batch,
            seq,
            heads,
            head_dim: d / heads,
            d,
        }
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// `[b, s, 3d]` → q, k, v `[b, h, s, hd]`.
    fn split<B: Backend>(&self, qkv: Tensor<B, 3>) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i * self.d, self.d)
                .reshape([self.batch, self.seq, self.heads, self.head_dim])
                .swap_dims(1, 2)
        };
        (part(0), part(1), part(2))
    }

    /// `[b, h, s, hd]` → `[b, s, d]`.
    fn merge<B: Backend>(&self, t: Tensor<B, 4>) -> Tensor<B, 3> {
        t.swap_dims(1, 2).reshape([self.batch, self.seq, self.d])
    }

    /// `[b, s, 3d]` → q, k, v `[1, b, h, s, hd]`: strided views of `qkv` (the contiguous
    /// reshape comes before the slicing, so burn-flex copies nothing; its matrix products read
    /// the strides as they are).
    fn split_views<B: Backend>(
        &self,
        qkv: Tensor<B, 3>,
    ) -> (Tensor<B, 5>, Tensor<B, 5>, Tensor<B, 5>) {
        let heads = qkv
            .reshape([self.batch, self.seq, 3, self.heads, self.head_dim])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| heads.clone().narrow(0, i, 1);
        (part(0), part(1), part(2))
    }

    /// `[1, b, h, s, hd]` → `[b, s, d]`.
    fn merge_views<B: Backend>(&self, t: Tensor<B, 5>) -> Tensor<B, 3> {
        reshape(t.swap_dims(2, 3), [self.batch, self.seq, self.d])
    }

    /// `[1, b, h, s, s]` ↔ `[b, h, s, s]` (contiguous either way: free).
    fn scores4<B: Backend>(&self, t: Tensor<B, 5>) -> Tensor<B, 4> {
        t.reshape([self.batch, self.heads, self.seq, self.seq])
    }

    fn scores5<B: Backend>(&self, t: Tensor<B, 4>) -> Tensor<B, 5> {
        t.reshape([1, self.batch, self.heads, self.seq, self.seq])
    }
}

/// What the backward needs: the heads (views of the projection) and the attention
/// probabilities, `[1, b, h, s, ·]`.
#[derive(Debug, Clone)]
struct State<B: Backend> {
    q: Tensor<B, 5>,
    k: Tensor<B, 5>,
    v: Tensor<B, 5>,
    p: Tensor<B, 5>,
    dims: Dims,
}

#[derive(Debug)]
struct SelfAttention;

impl<B: Backend> Backward<B, 1> for SelfAttention {
    type State = State<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let State { q, k, v, p, dims } = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            let d_ctx = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(grad))
                .reshape([1, dims.batch, dims.seq, dims.heads, dims.head_dim])
                .swap_dims(2, 3);
            let dv = p.clone().swap_dims(3, 4).matmul(d_ctx.clone());
            let dp = d_ctx.matmul(v.swap_dims(3, 4));
            let ds = dims.scores5(softmax_backward(
                dims.scores4(p),
                dims.scores4(dp),
                dims.scale(),
            ));
            let dq = ds.clone().matmul(k);
            let dk = ds.swap_dims(3, 4).matmul(q);
            // [3, b, h, s, hd] → [b, s, 3, h, hd] → [b, s, 3d]: the layout of `qkv`.
            reshape(
                Tensor::cat(vec![dq, dk, dv], 0).permute([1, 3, 0, 2, 4]),
                [dims.batch, dims.seq, 3 * dims.d],
            )
            .into_primitive()
            .tensor()
        });
    }
}

fn attention_autodiff<B: Backend>(
    qkv: Tensor<Autodiff<B>, 3>,
    n_head: usize,
    mask: Option<Tensor<Autodiff<B>, 4, Bool>>,
) -> Tensor<Autodiff<B>, 3> {
    let dims = Dims::of(&qkv, n_head);
    let qkv = qkv.into_primitive().tensor();
    let inner = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(qkv.primitive.clone()));
    let mask = mask.map(|m| Tensor::<B, 4, Bool>::from_primitive(m.into_primitive()));
    let Forward { state, out } = forward(dims, inner, mask);
    let out = out.into_primitive().tensor();
    let node = match SelfAttention
        .prepare::<NoCheckpointing>([qkv.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(node))
}

/// The forward's output and what its backward needs.
struct Forward<B: Backend> {
    state: State<B>,
    out: Tensor<B, 3>,
}

/// `merge(softmax_masked(scale · q kᵀ) v)`: two batched matrix products around one
/// row-parallel masked softmax.
fn forward<B: Backend>(
    dims: Dims,
    qkv: Tensor<B, 3>,
    mask: Option<Tensor<B, 4, Bool>>,
) -> Forward<B> {
    let (q, k, v) = dims.split_views(qkv);
    let scores = dims.scores4(q.clone().matmul(k.clone().swap_dims(3, 4)));
    let p = dims.scores5(masked_softmax(scores, mask, dims.scale()));
    let out = dims.merge_views(p.clone().matmul(v.clone()));
    Forward {
        state: State { q, k, v, p, dims },
        out,
    }
}

/// Row `r` of `softmax(scale · scores)` over the keys row `r`'s query may see.
struct SoftmaxRows<'a> {
    scores: &'a [f32],
    /// `true` = masked, one per score; `None`: causal.
    mask: Option<&'a [bool]>,
    seq: usize,
    scale: f32,
}

impl RowKernel for SoftmaxRows<'_> {
    #[inline(always)]
    fn row(&self, r: usize, out: &mut [f32]) {
        let t = out.len();
        let row = &self.scores[r * t..(r + 1) * t];
        let scale = self.scale;
        match self.mask {
            None => {
                // Query i (of seq) sees keys 0..=i.
                let seen = (r % self.seq) + 1;
                let (live, dead) = out.split_at_mut(seen);
                let row = &row[..seen];
                let mut m = f32::NEG_INFINITY;
                for &x in row {
                    m = if x > m { x } else { m };
                }
                let shift = m * scale;
                let mut sum = 0.0f32;
                for (o, &x) in live.iter_mut().zip(row) {
                    *o = exp(x * scale - shift);
                    sum += *o;
                }
                let inv = 1.0 / sum;
                live.iter_mut().for_each(|o| *o *= inv);
                dead.iter_mut().for_each(|o| *o = 0.0);
            }
            Some(mask) => {
                let mask = &mask[r * t..(r + 1) * t];
                let mut m = f32::NEG_INFINITY;
                for (&x, &masked) in row.iter().zip(mask) {
                    let x = if masked { f32::NEG_INFINITY } else { x };
                    m = if x > m { x } else { m };
                }
                if m == f32::NEG_INFINITY {
                    out.iter_mut().for_each(|o| *o = 0.0);
                    return;
                }
                let shift = m * scale;
                let mut sum = 0.0f32;
                for ((o, &x), &masked) in out.iter_mut().zip(row).zip(mask) {
                    let e = exp(x * scale - shift);
                    *o = if masked { 0.0 } else { e };
                    sum += *o;
                }
                let inv = 1.0 / sum;
                out.iter_mut().for_each(|o| *o *= inv);
            }
        }
    }
}

/// `softmax(scale · scores)` over the keys each query may see, 0 elsewhere; `[b, h, s, s]`.
fn masked_softmax<B: Backend>(
    scores: Tensor<B, 4>,
    mask: Option<Tensor<B, 4, Bool>>,
    scale: f32,
) -> Tensor<B, 4> {
    let [b, h, s, t] = scores.dims();
    let prim = scores.into_primitive().tensor();
    let host_mask = match &mask {
        Some(m) => host_mask(&m.clone().into_primitive()).map(Some),
        None => Some(None),
    };
    if let (Some(x), Some(mask_values)) = (HostF32::of(&prim), host_mask) {
        let mut out = vec![0.0f32; x.values().len()];
        let kernel = SoftmaxRows {
            scores: x.values(),
            mask: mask_values.as_deref(),
            seq: s,
            scale,
        };
        par_rows(&mut out, t, 2 * t, &kernel);
        return Tensor::from_primitive(TensorPrimitive::Float(flex_f32(out, &[b, h, s, t])));
    }
    let scores = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(prim));
    let device = scores.device();
    let mask = mask.unwrap_or_else(|| {
        Tensor::<B, 2, Bool>::tril_mask([s, t], 0, &device)
            .reshape([1, 1, s, t])
            .expand([b, h, s, t])
    });
    softmax((scores * scale as f64).mask_fill(mask.clone(), -1.0e30), 3).mask_fill(mask, 0.0)
}

/// Row `r` of `scale · p ⊙ (dp − Σ p·dp)`.
struct SoftmaxGradRows<'a> {
    p: &'a [f32],
    dp: &'a [f32],
    scale: f32,
}

impl RowKernel for SoftmaxGradRows<'_> {
    #[inline(always)]
    fn row(&self, r: usize, out: &mut [f32]) {
        let t = out.len();
        let (p, dp) = (&self.p[r * t..(r + 1) * t], &self.dp[r * t..(r + 1) * t]);
        let inner = dot(p, dp);
        for ((o, &pv), &dv) in out.iter_mut().zip(p).zip(dp) {
            *o = self.scale * pv * (dv - inner);
        }
    }
}

/// Gradient of the scores from that of the probabilities: `scale · p ⊙ (dp − rowsum(p ⊙ dp))`.
fn softmax_backward<B: Backend>(p: Tensor<B, 4>, dp: Tensor<B, 4>, scale: f32) -> Tensor<B, 4> {
    let shape = p.dims();
    let (pp, dpp) = (p.into_primitive().tensor(), dp.into_primitive().tensor());
    if let (Some(ph), Some(dh)) = (HostF32::of(&pp), HostF32::of(&dpp)) {
        let t = shape[3];
        let mut out = vec![0.0f32; ph.values().len()];
        let kernel = SoftmaxGradRows {
            p: ph.values(),
            dp: dh.values(),
            scale,
        };
        par_rows(&mut out, t, 2 * t, &kernel);
        return Tensor::from_primitive(TensorPrimitive::Float(flex_f32(out, &shape)));
    }
    let p = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(pp));
    let dp = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(dpp));
    let inner = (p.clone() * dp.clone()).sum_dim(3);
    p * (dp - inner) * scale as f64
}
