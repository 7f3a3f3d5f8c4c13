//! GPT-2's GELU ("gelu_new"), fused: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
//!
//! Computed as `x·σ(2·√(2/π)·(x + 0.044715·x³))` (the same function: `(1 + tanh z)/2 = σ(2z)`),
//! one pass forward and one backward, where the composed form writes five tensors forward and
//! about ten backward.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::cpu::{ChunkKernel, par_chunks, sigmoid as sigmoid_f32};
use crate::dispatch::autodiff_dispatch;
use crate::host::{HostF32, flex_f32};

/// `2·√(2/π)`.
const K: f32 = 1.595_769;
/// The cubic coefficient.
const C: f32 = 0.044_715;

/// GPT-2's tanh-approximated GELU, element-wise, with one fused backward node.
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let shape = x.shape();
    let flat = x.reshape([shape.num_elements()]);
    let y: Tensor<B, 1> = autodiff_dispatch!(B, gelu_autodiff, (flat), {
        Tensor::from_primitive(TensorPrimitive::Float(forward::<B>(
            flat.into_primitive().tensor(),
        )))
    });
    y.reshape(shape)
}

#[derive(Debug)]
struct Gelu;

impl<B: Backend> Backward<B, 1> for Gelu {
    /// The input.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| backward::<B>(x, grad));
    }
}

fn gelu_autodiff<B: Backend>(x: Tensor<Autodiff<B>, 1>) -> Tensor<Autodiff<B>, 1> {
    let x = x.into_primitive().tensor();
    let y = forward::<B>(x.primitive.clone());
    let out = match Gelu
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(x.primitive, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

struct Forward<'a> {
    x: &'a [f32],
}

impl ChunkKernel for Forward<'_> {
    #[inline(always)]
    fn chunk(&self, offset: usize, out: &mut [f32]) {
        for (y, &v) in out.iter_mut().zip(&self.x[offset..]) {
            *y = v * sigmoid_f32(K * (v + C * v * v * v));
        }
    }
}

struct GradKernel<'a> {
    x: &'a [f32],
    grad: &'a [f32],
}

impl ChunkKernel for GradKernel<'_> {
    #[inline(always)]
    fn chunk(&self, offset: usize, out: &mut [f32]) {
        let (x, grad) = (&self.x[offset..], &self.grad[offset..]);
        for ((d, &v), &g) in out.iter_mut().zip(x).zip(grad) {
            let s = sigmoid_f32(K * (v + C * v * v * v));
            *d = g * (s + v * s * (1.0 - s) * K * (1.0 + 3.0 * C * v * v));
        }
    }
}

fn forward<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    if let Some(h) = HostF32::of(&x) {
        let mut out = vec![0.0f32; h.values().len()];
        par_chunks(&mut out, &Forward { x: h.values() });
        return flex_f32(out, &h.shape());
    }
    let x = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(x));
    let inner = (x.clone() + x.clone() * x.clone() * x.clone() * C as f64) * K as f64;
    (x * sigmoid(inner)).into_primitive().tensor()
}

/// `grad · (s + x·s·(1−s)·K·(1 + 3C·x²))` with `s = σ(K·(x + C·x³))`.
fn backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    if let (Some(h), Some(g)) = (HostF32::of(&x), HostF32::of(&grad)) {
        let mut out = vec![0.0f32; h.values().len()];
        par_chunks(
            &mut out,
            &GradKernel {
                x: h.values(),
                grad: g.values(),
            },
        );
        return flex_f32(out, &h.shape());
    }
    let x = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(x));
    let g = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(grad));
    let x2 = x.clone() * x.clone();
    let s = sigmoid((x.clone() + x2.clone() * x.clone() * C as f64) * K as f64);
    let ds = s.clone() * (s.clone().neg() + 1.0) * (x2 * (3.0 * C as f64) + 1.0) * K as f64;
    (g * (s + x * ds)).into_primitive().tensor()
}
