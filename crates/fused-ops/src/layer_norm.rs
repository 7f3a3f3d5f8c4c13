//! LayerNorm over the last axis, fused: `y = γ·(x − μ)/√(σ² + ε) + β` per row.
//!
//! Forward: one pass per row (mean and variance in lane-wise partial sums, then the output),
//! saving each row's mean and `1/√(σ² + ε)`. Backward: one pass per row for the input's
//! gradient, `r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))` with `ĝ = γ·dy`, accumulating `Σ dy·x̂` and `Σ dy`
//! (the gains' and biases' gradients) per block of rows. Under autodiff burn composes
//! LayerNorm from nine element-wise and reduction operations forward (each a single-threaded
//! pass that writes a tensor) and about twice as many backward.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use rayon::prelude::*;

use crate::cpu::{LANES, TASK_ELEMENTS, dot};
use crate::dispatch::autodiff_dispatch;
use crate::host::{HostF32, flex_f32};

/// LayerNorm of `x` over its last axis with gains `gamma` and optional biases `beta` (both
/// `[width]`): the values of burn's `LayerNorm::forward` (to float rounding), with one
/// backward node for the input, the gains and the biases.
///
/// # Panics
/// If `gamma` or `beta` does not have the width of `x`'s last axis.
pub fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    epsilon: f64,
) -> Tensor<B, D> {
    let shape = x.shape();
    let width = shape[D - 1];
    assert_eq!(gamma.dims(), [width], "layer_norm: one gain per feature");
    let rows = shape.num_elements().checked_div(width).unwrap_or(0);
    let beta = match beta {
        Some(b) => {
            assert_eq!(b.dims(), [width], "layer_norm: one bias per feature");
            b
        }
        None => Tensor::zeros([width], &x.device()),
    };
    let x2: Tensor<B, 2> = x.reshape([rows, width]);
    let y: Tensor<B, 2> = autodiff_dispatch!(B, layer_norm_autodiff, (x2, gamma, beta, epsilon), {
        // Without autodiff (or under an autodiff backend without a fused backward here), the
        // backend's own LayerNorm: burn-flex's is already one pass per row.
        Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
            x2.into_primitive().tensor(),
            gamma.into_primitive().tensor(),
            Some(beta.into_primitive().tensor()),
            epsilon,
        )))
    });
    y.reshape(shape)
}

#[derive(Debug)]
struct LayerNorm;

/// What the backward needs: the input, the gains, and per row the mean and `1/√(σ² + ε)`.
#[derive(Debug, Clone)]
struct Saved<B: Backend> {
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    stats: Stats<B>,
}

/// Per-row mean and reciprocal standard deviation, `[rows]` each.
#[derive(Debug, Clone)]
struct Stats<B: Backend> {
    mean: FloatTensor<B>,
    rstd: FloatTensor<B>,
}

impl<B: Backend> Backward<B, 3> for LayerNorm {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let [px, pg, pb] = ops.parents;
        let Saved { x, gamma, stats } = ops.state;
        let (dx, dgamma, dbeta) = backward::<B>(x, gamma, stats, grad);
        if let Some(node) = px {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = pg {
            grads.register::<B>(node.id, dgamma);
        }
        if let Some(node) = pb {
            grads.register::<B>(node.id, dbeta);
        }
    }
}

fn layer_norm_autodiff<B: Backend>(
    x: Tensor<Autodiff<B>, 2>,
    gamma: Tensor<Autodiff<B>, 1>,
    beta: Tensor<Autodiff<B>, 1>,
    epsilon: f64,
) -> Tensor<Autodiff<B>, 2> {
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    let (y, stats) = forward::<B>(
        x.primitive.clone(),
        gamma.primitive.clone(),
        beta.primitive,
        epsilon,
    );
    let out = match LayerNorm
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                x: x.primitive,
                gamma: gamma.primitive,
                stats,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `(mean, 1/√(var + ε))` of `row`, the variance about the mean (two passes, as burn's).
#[inline(always)]
fn row_stats(row: &[f32], epsilon: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let mean = (acc.iter().sum::<f32>() + tail.iter().sum::<f32>()) / n;
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let var =
        (acc.iter().sum::<f32>() + tail.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>()) / n;
    (mean, 1.0 / (var + epsilon).sqrt())
}

/// LayerNorm of a block of rows from `first` on: writes their outputs and statistics.
struct ForwardBlock<'a> {
    x: &'a [f32],
    gamma: &'a [f32],
    beta: &'a [f32],
    width: usize,
    epsilon: f32,
    first: usize,
    y: &'a mut [f32],
    mean: &'a mut [f32],
    rstd: &'a mut [f32],
}

impl pulp::WithSimd for ForwardBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let w = self.width;
        let rows = self.y.chunks_exact_mut(w).zip(self.mean).zip(self.rstd);
        for (i, ((y, m), s)) in rows.enumerate() {
            let r = self.first + i;
            let row = &self.x[r * w..(r + 1) * w];
            let (mean, rstd) = row_stats(row, self.epsilon);
            for (((o, &v), &g), &b) in y.iter_mut().zip(row).zip(self.gamma).zip(self.beta) {
                *o = (v - mean) * rstd * g + b;
            }
            *m = mean;
            *s = rstd;
        }
    }
}

/// Rows per task: [`TASK_ELEMENTS`] elements' worth, at least one row.
fn rows_per_task(width: usize) -> usize {
    (TASK_ELEMENTS / width.max(1)).clamp(1, 1024)
}

/// `(y, stats)`: `y` `[rows, width]`.
fn forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, Stats<B>) {
    if let (Some(hx), Some(hg), Some(hb)) =
        (HostF32::of(&x), HostF32::of(&gamma), HostF32::of(&beta))
    {
        let [rows, width] = hx.shape()[..] else {
            unreachable!("two dimensions")
        };
        let (mut y, mut mean, mut rstd) = (
            vec![0.0f32; rows * width],
            vec![0.0f32; rows],
            vec![0.0f32; rows],
        );
        let per_task = rows_per_task(width);
        let block = |t: usize, ((y, mean), rstd): ((&mut [f32], &mut [f32]), &mut [f32])| {
            pulp::Arch::new().dispatch(ForwardBlock {
                x: hx.values(),
                gamma: hg.values(),
                beta: hb.values(),
                width,
                epsilon: epsilon as f32,
                first: t * per_task,
                y,
                mean,
                rstd,
            })
        };
        if width > 0 {
            y.par_chunks_mut(per_task * width)
                .zip(mean.par_chunks_mut(per_task))
                .zip(rstd.par_chunks_mut(per_task))
                .enumerate()
                .for_each(|(t, chunks)| block(t, chunks));
        }
        return (
            flex_f32(y, &[rows, width]),
            Stats {
                mean: flex_f32(mean, &[rows]),
                rstd: flex_f32(rstd, &[rows]),
            },
        );
    }
    // Generic form on the backend's own operations.
    let x = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(x));
    let [rows, width] = x.dims();
    let gamma = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(gamma)).reshape([1, width]);
    let beta = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(beta)).reshape([1, width]);
    let mean = x.clone().mean_dim(1);
    let centred = x - mean.clone();
    let var = (centred.clone() * centred.clone()).mean_dim(1);
    // A true division: burn-ndarray's `recip` is an approximate reciprocal (errors ~1e-5).
    let std = (var + epsilon).sqrt();
    let rstd = std.ones_like() / std;
    let y = centred * rstd.clone() * gamma + beta;
    (
        y.into_primitive().tensor(),
        Stats {
            mean: mean.reshape([rows]).into_primitive().tensor(),
            rstd: rstd.reshape([rows]).into_primitive().tensor(),
        },
    )
}

/// The input's gradient for a block of rows, with the block's `Σ dy·x̂` and `Σ dy`.
struct BackwardBlock<'a> {
    x: &'a [f32],
    gamma: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
    grad: &'a [f32],
    width: usize,
    first: usize,
    dx: &'a mut [f32],
}

impl pulp::WithSimd for BackwardBlock<'_> {
    /// The block's `(Σ dy·x̂, Σ dy)`, `[width]` each.
    type Output = (Vec<f32>, Vec<f32>);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let w = self.width;
        let mut dgamma = vec![0.0f32; w];
        let mut dbeta = vec![0.0f32; w];
        let mut xhat = vec![0.0f32; w];
        let mut ghat = vec![0.0f32; w];
        for (i, dx) in self.dx.chunks_exact_mut(w).enumerate() {
            let r = self.first + i;
            let x = &self.x[r * w..(r + 1) * w];
            let dy = &self.grad[r * w..(r + 1) * w];
            let (mean, rstd) = (self.mean[r], self.rstd[r]);
            for ((((xh, gh), &v), &g), &d) in xhat
                .iter_mut()
                .zip(ghat.iter_mut())
                .zip(x)
                .zip(self.gamma)
                .zip(dy)
            {
                *xh = (v - mean) * rstd;
                *gh = g * d;
            }
            let n = w as f32;
            let mean_g = ghat.iter().sum::<f32>() / n;
            let mean_gx = dot(&ghat, &xhat) / n;
            for ((o, &gh), &xh) in dx.iter_mut().zip(&ghat).zip(&xhat) {
                *o = rstd * (gh - mean_g - xh * mean_gx);
            }
            for (((dg, db), &xh), &d) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(&xhat).zip(dy)
            {
                *dg += d * xh;
                *db += d;
            }
        }
        (dgamma, dbeta)
    }
}

/// `(dx, dgamma, dbeta)`.
fn backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    stats: Stats<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    if let (Some(hx), Some(hg), Some(hm), Some(hr), Some(hd)) = (
        HostF32::of(&x),
        HostF32::of(&gamma),
        HostF32::of(&stats.mean),
        HostF32::of(&stats.rstd),
        HostF32::of(&grad),
    ) {
        let [rows, width] = hx.shape()[..] else {
            unreachable!("two dimensions")
        };
        let mut dx = vec![0.0f32; rows * width];
        let block = |first: usize, dx: &mut [f32]| {
            pulp::Arch::new().dispatch(BackwardBlock {
                x: hx.values(),
                gamma: hg.values(),
                mean: hm.values(),
                rstd: hr.values(),
                grad: hd.values(),
                width,
                first,
                dx,
            })
        };
        let add = |(mut g, mut b): (Vec<f32>, Vec<f32>), (g2, b2): (Vec<f32>, Vec<f32>)| {
            g.iter_mut().zip(g2).for_each(|(a, v)| *a += v);
            b.iter_mut().zip(b2).for_each(|(a, v)| *a += v);
            (g, b)
        };
        let per_task = rows_per_task(width);
        let (dgamma, dbeta) = if width == 0 || rows <= per_task {
            block(0, &mut dx)
        } else {
            dx.par_chunks_mut(per_task * width)
                .enumerate()
                .map(|(t, chunk)| block(t * per_task, chunk))
                .reduce(|| (vec![0.0; width], vec![0.0; width]), add)
        };
        return (
            flex_f32(dx, &[rows, width]),
            flex_f32(dgamma, &[width]),
            flex_f32(dbeta, &[width]),
        );
    }
    let x = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(x));
    let [rows, width] = x.dims();
    let gamma = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(gamma)).reshape([1, width]);
    let mean =
        Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(stats.mean)).reshape([rows, 1]);
    let rstd =
        Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(stats.rstd)).reshape([rows, 1]);
    let dy = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(grad));
    let xhat = (x - mean) * rstd.clone();
    let ghat = dy.clone() * gamma;
    let mean_g = ghat.clone().mean_dim(1);
    let mean_gx = (ghat.clone() * xhat.clone()).mean_dim(1);
    let dx = (ghat - mean_g - xhat.clone() * mean_gx) * rstd;
    let dgamma = (dy.clone() * xhat).sum_dim(0).reshape([width]);
    let dbeta = dy.sum_dim(0).reshape([width]);
    (
        dx.into_primitive().tensor(),
        dgamma.into_primitive().tensor(),
        dbeta.into_primitive().tensor(),
    )
}
