//! The ghost tape: what each tapped layer leaves for the norms and the clipped sum.

use burn::module::{Param, ParamId};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor};
use train_kit::tap::{LayerTap, flat_linear, fused_layer_norm, matmul_transposed};

use super::{Inner, Probe};

/// One side of an outer-product record, before the backward pass.
pub(crate) enum Side<B: AutodiffBackend> {
    /// A recorded activation.
    Act(Tensor<Inner<B>, 3>),
    /// The layer's output gradient.
    Probe(Probe<B>),
    /// Token ids: a one-hot activation.
    Ids(Tensor<Inner<B>, 2, Int>),
}

pub(crate) enum Pending<B: AutodiffBackend> {
    /// Parameter `[rows, cols]` with per-example gradient `Σ_t a_tᵀ b_t`.
    Outer {
        param: ParamId,
        rows: usize,
        cols: usize,
        a: Side<B>,
        b: Side<B>,
    },
    /// A bias: per-example gradient `Σ_t g_t`.
    Bias { param: ParamId, probe: Probe<B> },
    /// A LayerNorm gain: per-example gradient `Σ_t g_t ⊙ x̂_t`.
    Gain {
        param: ParamId,
        probe: Probe<B>,
        xhat: Tensor<Inner<B>, 3>,
    },
}

/// Records the tapped layers of one forward pass for ghost clipping. Pass it to the model's
/// tapped forward, then to [`clipped_sum`] via the loss closure.
pub struct GhostTape<B: AutodiffBackend> {
    pub(crate) records: Vec<Pending<B>>,
}

impl<B: AutodiffBackend> std::fmt::Debug for GhostTape<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhostTape")
            .field("records", &self.records.len())
            .finish()
    }
}

impl<B: AutodiffBackend> Default for GhostTape<B> {
    fn default() -> Self {
        Self::new()
    }
}

/// `[batch, ..., d]` → `[batch, prod(...), d]`.
pub(crate) fn dims3<const D: usize>(dims: [usize; D]) -> [usize; 3] {
    let middle = dims[1..D - 1].iter().product::<usize>();
    [dims[0], middle, dims[D - 1]]
}

/// `y` unchanged, and a handle to its gradient seen as `[batch, t, d]` after the backward
/// pass ([`fused_ops::capture_grad`]: an identity node that keeps the gradient, or a zero
/// leaf added to `y` where `y` is untracked).
pub(crate) fn probe<B: AutodiffBackend, const D: usize>(
    y: Tensor<B, D>,
) -> (Tensor<B, D>, Probe<B>) {
    let dims = y.dims();
    let (out, grad) = fused_ops::capture_grad(y.reshape(dims3(dims)));
    (out.reshape(dims), grad)
}

impl<B: AutodiffBackend> GhostTape<B> {
    /// An empty tape.
    pub fn new() -> Self {
        Self {
            records: Vec::new(),
        }
    }

    /// Number of recorded parameter uses.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl<B: AutodiffBackend> LayerTap<B> for GhostTape<B> {
    fn linear<const D: usize>(&mut self, layer: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
        let [d_in, d_out] = layer.weight.dims();
        let (y, grad) = probe(flat_linear(layer, x.clone()));
        let x3 = x.inner().reshape(layer_dims(y.dims(), d_in));
        self.records.push(Pending::Outer {
            param: layer.weight.id,
            rows: d_in,
            cols: d_out,
            a: Side::Act(x3),
            b: Side::Probe(grad.clone()),
        });
        if let Some(bias) = &layer.bias {
            self.records.push(Pending::Bias {
                param: bias.id,
                probe: grad,
            });
        }
        y
    }

    fn linear_transposed<const D: usize>(
        &mut self,
        weight: &Param<Tensor<B, 2>>,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let [d_out, d_in] = weight.dims();
        let (y, grad) = probe(matmul_transposed(x.clone(), weight.val()));
        let x3 = x.inner().reshape(layer_dims(y.dims(), d_in));
        self.records.push(Pending::Outer {
            param: weight.id,
            rows: d_out,
            cols: d_in,
            a: Side::Probe(grad),
            b: Side::Act(x3),
        });
        y
    }

    fn embedding(&mut self, layer: &Embedding<B>, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [rows, cols] = layer.weight.dims();
        let (y, grad) = probe(layer.forward(ids.clone()));
        self.records.push(Pending::Outer {
            param: layer.weight.id,
            rows,
            cols,
            a: Side::Ids(ids.inner()),
            b: Side::Probe(grad),
        });
        y
    }

    fn layer_norm<const D: usize>(
        &mut self,
        layer: &LayerNorm<B>,
        epsilon: f64,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let (y, grad) = probe(fused_layer_norm(layer, epsilon, x.clone()));
        // x̂ = (x − mean) / √(var + ε): the LayerNorm without gains and biases, one pass.
        let x3 = x.inner().reshape(dims3(y.dims()));
        let width = x3.dims()[2];
        let xhat = fused_ops::layer_norm(x3, Tensor::ones([width], &y.device()), None, epsilon);
        self.records.push(Pending::Gain {
            param: layer.gamma.id,
            probe: grad.clone(),
            xhat,
        });
        if let Some(beta) = &layer.beta {
            self.records.push(Pending::Bias {
                param: beta.id,
                probe: grad,
            });
        }
        y
    }
}

/// The 3-d shape of a layer input whose output has dims `out` (same rows, `d_in` features).
pub(crate) fn layer_dims<const D: usize>(out: [usize; D], d_in: usize) -> [usize; 3] {
    let [b, t, _] = dims3(out);
    [b, t, d_in]
}
