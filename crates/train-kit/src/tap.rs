//! Layer taps: the hooks through which a model runs its parameterised layers, so the
//! fast clipping path can see each layer's input and output gradient.
//!
//! A model written against [`LayerTap`] runs unchanged with [`NoTap`] (each method is the
//! layer's plain forward) and records what ghost clipping needs with `dp_optim`'s
//! `GhostTape`. Only the four operations below are tapped; a parameter the model uses any
//! other way is invisible to the fast path, which then refuses to run (`dp_optim`'s
//! `DpOptimError::UntappedParameter`) instead of returning a wrong clipped sum. The trait
//! lives here, below both the models and the DP crates, so a model crate needs no DP crate;
//! so does [`ExampleLoss`], the per-example loss DP-SGD clips, so that a model crate can
//! implement it for its own data.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};

/// The parameterised operations a tapped model routes through its tap.
///
/// Shapes: the first axis of every input is the **example** axis (one row per record, never
/// mixing records), the last axis the features; axes in between (e.g. sequence positions)
/// are summed over within each example.
pub trait LayerTap<B: Backend> {
    /// `x·W + b` of a burn [`Linear`] (`W`: `[d_in, d_out]`), `x`: `[batch, ..., d_in]`.
    fn linear<const D: usize>(&mut self, layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D>;

    /// `x·Wᵀ` with `W`: `[d_out, d_in]`, `x`: `[batch, ..., d_in]`: a head tied to an
    /// embedding table (`W` = the table, `[vocab, d_model]`).
    fn linear_transposed<const D: usize>(
        &mut self,
        weight: &Param<Tensor<B, 2>>,
        x: Tensor<B, D>,
    ) -> Tensor<B, D>;

    /// Rows of `layer`'s table for `ids`: `[batch, seq]` → `[batch, seq, d_model]`.
    fn embedding(&mut self, layer: &Embedding<B>, ids: Tensor<B, 2, Int>) -> Tensor<B, 3>;

    /// A burn [`LayerNorm`] over the last axis. `epsilon` must be the one the layer was
    /// configured with (burn keeps it private); a tap that recomputes the normalised input
    /// uses it.
    fn layer_norm<const D: usize>(
        &mut self,
        layer: &LayerNorm<B>,
        epsilon: f64,
        x: Tensor<B, D>,
    ) -> Tensor<B, D>;
}

/// A loss that can be evaluated per example, through a [`LayerTap`] (moved here from
/// `dp_optim`, which re-exports it, so that a model crate can give its own data a
/// per-example loss without depending on a DP crate).
///
/// `dp_optim`'s engine calls it with one example at a time and [`NoTap`] on the generic
/// path, and with a whole (physical) batch and its `GhostTape` on the fast path.
///
/// Contract (what the sensitivity bound, hence the privacy guarantee, rests on): value `k` of
/// the result depends on record `examples[k]` only: no batch statistics, no mixing of rows.
pub trait ExampleLoss<B: AutodiffBackend, M> {
    /// Per-example losses `[examples.len()]` of the records `examples` (indices into the
    /// private dataset), with every parameterised layer of `model` run through `tap`.
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &M,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1>;
}

/// A per-example loss that can be copied onto another device, for another data-parallel
/// worker of the same process (`dp_optim::drive`'s threads). Here, beside [`ExampleLoss`],
/// so that a model crate can implement it for its data without a DP crate.
pub trait Replicate<B: AutodiffBackend>: Sized {
    /// The same records and loss on `device`; `None` when this loss cannot be replicated
    /// (the training then runs on one worker). The default: `None`.
    fn replicate(&self, device: &B::Device) -> Option<Self> {
        let _ = device;
        None
    }
}

/// The identity tap: every method is the layer's plain forward pass (zero overhead).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTap;

/// `layer.forward(x)` as one fused node ([`fused_ops::layer_norm`]): the same values, one
/// multi-threaded pass each way on burn-flex where burn composes nine operations forward.
/// `epsilon` must be the layer's own (burn keeps it private; the model's config holds it).
pub fn fused_layer_norm<B: Backend, const D: usize>(
    layer: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    fused_ops::layer_norm(
        x,
        layer.gamma.val(),
        layer.beta.as_ref().map(|b| b.val()),
        epsilon,
    )
}

/// `x·Wᵀ` for `x` of any rank ≥ 2 and `W`: `[d_out, d_in]`.
pub fn matmul_transposed<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
) -> Tensor<B, D> {
    let dims = x.dims();
    let d_in = dims[D - 1];
    let d_out = weight.dims()[0];
    let rows = dims[..D - 1].iter().product::<usize>();
    let mut out = dims;
    out[D - 1] = d_out;
    x.reshape([rows, d_in])
        .matmul(weight.transpose())
        .reshape(out)
}

/// `layer.forward(x)` with `x`'s leading axes flattened into one: the same values, but burn
/// 0.21's backward of a Linear on a `[batch, seq, d_in]` input forms the weight gradient as
/// `batch` separate `[d_in, d_out]` products and then sums them (a transposed copy of `x`
/// and `batch` times the gradient's memory); on `[batch·seq, d_in]` it is one product.
pub fn flat_linear<B: Backend, const D: usize>(layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    if D <= 2 {
        return layer.forward(x);
    }
    let dims = x.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = layer.forward(x.reshape([rows, dims[D - 1]]));
    let mut out = dims;
    out[D - 1] = y.dims()[1];
    y.reshape(out)
}

impl<B: Backend> LayerTap<B> for NoTap {
    #[inline]
    fn linear<const D: usize>(&mut self, layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
        flat_linear(layer, x)
    }

    #[inline]
    fn linear_transposed<const D: usize>(
        &mut self,
        weight: &Param<Tensor<B, 2>>,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        matmul_transposed(x, weight.val())
    }

    #[inline]
    fn embedding(&mut self, layer: &Embedding<B>, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        layer.forward(ids)
    }

    #[inline]
    fn layer_norm<const D: usize>(
        &mut self,
        layer: &LayerNorm<B>,
        epsilon: f64,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        fused_layer_norm(layer, epsilon, x)
    }
}
