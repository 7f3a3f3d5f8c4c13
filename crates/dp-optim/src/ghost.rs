//! The fast clipping path: per-example gradient norms without per-example gradients
//! (ghost clipping, Li et al. 2022) and the clipped sum from the same backward pass
//! (book-keeping, Bu et al. 2023).
//!
//! # How
//! The model runs its layers through a [`GhostTape`] (a [`LayerTap`]). With the parameters
//! frozen (no weight gradient is computed), each tapped layer's output passes through an
//! identity node that keeps the gradient flowing back through it
//! ([`fused_ops::capture_grad`]; a zero "probe" leaf added to the output where the output is
//! not tracked, e.g. a frozen embedding's); one backward of the summed per-example losses
//! yields every layer's output gradient `g`. Every per-example parameter gradient of the tapped layers is an outer
//! product sum `Σ_t a_tᵀ b_t` (a Linear: input `x` and `g`; an embedding: one-hot ids and
//! `g`; a tied head `x·Wᵀ`: `g` and `x`) or a small direct sum (biases `Σ_t g_t`, LayerNorm
//! gains `Σ_t g_t ⊙ x̂_t`), so per example
//!
//! `‖Σ_r Σ_t a_rtᵀ b_rt‖² = Σ_{r,r'} ⟨A_r A_r'ᵀ, B_r B_r'ᵀ⟩`
//!
//! over the records `r` that use the same parameter (the cross terms make a tied embedding
//! exact). The clipped sum is then `Σ_b c_b·A_bᵀB_b` = one matmul per layer with `B` scaled
//! by the clipping factors `c_b = min(1, C/‖∇_b‖)`: the work of one non-private backward.
//!
//! Where a parameter's per-example gradients `[batch, rows·cols]` take no more memory than
//! the factors they are formed from (`T·(d_in + d_out) ≥ d_in·d_out` for a Linear: sequences
//! long for the layer's width; a head tied to an embedding over a small vocabulary), they are
//! formed instead, once (one batched product per record: what the book-keeping sum would
//! cost), and both the norms and the clipped sum become reductions over the batch.
//!
//! # Guarantee
//! The result equals the generic path's ([`crate::clipped_sum`]) up to floating-point
//! rounding, for any model whose every trainable parameter is used only through the tap.
//! A parameter never seen by the tape is an error ([`DpOptimError::UntappedParameter`]); a
//! parameter used both through the tap and directly cannot be detected and would lose the
//! direct use's gradient: models must route every use through the tap.

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor};

use crate::clip::{ClippedSum, Clipping, check_norm, clip_factors};
use crate::error::DpOptimError;
use train_kit::initialise_params;
use train_kit::tap::{LayerTap, flat_linear, fused_layer_norm, matmul_transposed};

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// A tapped layer output's gradient, `[batch, t, d]`, after the backward pass.
type Probe<B> = fused_ops::OutputGrad<B, 3>;

/// One side of an outer-product record, before the backward pass.
enum Side<B: AutodiffBackend> {
    /// A recorded activation.
    Act(Tensor<Inner<B>, 3>),
    /// The layer's output gradient.
    Probe(Probe<B>),
    /// Token ids: a one-hot activation.
    Ids(Tensor<Inner<B>, 2, Int>),
}

enum Pending<B: AutodiffBackend> {
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
    records: Vec<Pending<B>>,
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
fn dims3<const D: usize>(dims: [usize; D]) -> [usize; 3] {
    let middle = dims[1..D - 1].iter().product::<usize>();
    [dims[0], middle, dims[D - 1]]
}

/// `y` unchanged, and a handle to its gradient seen as `[batch, t, d]` after the backward
/// pass ([`fused_ops::capture_grad`]: an identity node that keeps the gradient, or a zero
/// leaf added to `y` where `y` is untracked).
fn probe<B: AutodiffBackend, const D: usize>(y: Tensor<B, D>) -> (Tensor<B, D>, Probe<B>) {
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
fn layer_dims<const D: usize>(out: [usize; D], d_in: usize) -> [usize; 3] {
    let [b, t, _] = dims3(out);
    [b, t, d_in]
}

/// A resolved outer-product factor.
enum Factor<IB: Backend> {
    Dense(Tensor<IB, 3>),
    Ids(Tensor<IB, 2, Int>),
}

enum Resolved<IB: Backend> {
    Outer {
        rows: usize,
        cols: usize,
        a: Factor<IB>,
        b: Tensor<IB, 3>,
    },
    /// Per-example gradients `[batch, n]`.
    Direct(Tensor<IB, 2>),
}

fn resolve_side<B: AutodiffBackend>(side: Side<B>, grads: &B::Gradients) -> Factor<Inner<B>> {
    match side {
        Side::Act(x) => Factor::Dense(x),
        Side::Ids(ids) => Factor::Ids(ids),
        Side::Probe(p) => Factor::Dense(probe_grad(&p, grads)),
    }
}

fn probe_grad<B: AutodiffBackend>(p: &Probe<B>, grads: &B::Gradients) -> Tensor<Inner<B>, 3> {
    p.grad_or_zeros(grads)
}

fn dense<IB: Backend>(f: Factor<IB>) -> Tensor<IB, 3> {
    match f {
        Factor::Dense(t) => t,
        Factor::Ids(_) => unreachable!("the b side of a record is always dense"),
    }
}

/// `G[b, t, s] = a1_t · a2_s` for each example `b`.
fn gram<IB: Backend>(a1: &Factor<IB>, a2: &Factor<IB>) -> Tensor<IB, 3> {
    match (a1, a2) {
        (Factor::Dense(x), Factor::Dense(y)) => x.clone().matmul(y.clone().swap_dims(1, 2)),
        (Factor::Ids(i), Factor::Ids(j)) => {
            let [b, t1] = i.dims();
            let t2 = j.dims()[1];
            let i = i.clone().reshape([b, t1, 1]).expand([b, t1, t2]);
            let j = j.clone().reshape([b, 1, t2]).expand([b, t1, t2]);
            i.equal(j).float()
        }
        (Factor::Ids(i), Factor::Dense(y)) => {
            // one-hot(i_t) · y_s = y[s, i_t]
            let [b, t1] = i.dims();
            let t2 = y.dims()[1];
            let index = i.clone().reshape([b, 1, t1]).expand([b, t2, t1]);
            y.clone().gather(2, index).swap_dims(1, 2)
        }
        (Factor::Dense(_), Factor::Ids(_)) => gram(a2, a1).swap_dims(1, 2),
    }
}

/// `Σ_{t,s} x[b,t,s]·y[b,t,s]` → `[batch]`.
fn frobenius<IB: Backend>(x: Tensor<IB, 3>, y: Tensor<IB, 3>) -> Tensor<IB, 1> {
    let b = x.dims()[0];
    (x * y).sum_dims(&[1, 2]).reshape([b])
}

/// Most elements a parameter's materialised per-example gradients may have (256 MiB of f32).
const MAX_PER_EXAMPLE_ELEMENTS: usize = 1 << 26;

/// The per-example gradients `[batch, rows·cols]` of a parameter whose records are all outer
/// products, when holding them takes no more memory than the records' dense factors (which
/// they replace) and at most [`MAX_PER_EXAMPLE_ELEMENTS`]; `None` otherwise (Gram matrices).
///
/// Forming them costs one `T·rows·cols` product per record and example, which the
/// book-keeping sum would spend anyway; the clipped sum then reuses them (a weighted sum over
/// the batch) instead of multiplying the factors again.
fn per_example<IB: Backend>(records: &[Resolved<IB>]) -> Option<Tensor<IB, 2>> {
    let mut shape = None;
    let mut factors = 0usize;
    for r in records {
        let Resolved::Outer { rows, cols, a, b } = r else {
            return None;
        };
        if shape.is_some_and(|s| s != (*rows, *cols)) {
            return None;
        }
        shape = Some((*rows, *cols));
        factors += b.shape().num_elements();
        if let Factor::Dense(a) = a {
            factors += a.shape().num_elements();
        }
    }
    let (rows, cols) = shape?;
    let Resolved::Outer { b, .. } = &records[0] else {
        return None;
    };
    let batch = b.dims()[0];
    let elements = batch * rows * cols;
    if elements > factors || elements > MAX_PER_EXAMPLE_ELEMENTS {
        return None;
    }
    // Dense records first (one batched product each), then the embedding records
    // scatter-added into their sum: no zero table unless every record is an embedding.
    let device = b.device();
    let mut total: Option<Tensor<IB, 3>> = None;
    for r in records {
        if let Resolved::Outer {
            a: Factor::Dense(a),
            b,
            ..
        } = r
        {
            let per = a.clone().swap_dims(1, 2).matmul(b.clone());
            total = Some(match total.take() {
                Some(t) => t + per,
                None => per,
            });
        }
    }
    let mut stacked = total
        .unwrap_or_else(|| Tensor::zeros([batch, rows, cols], &device))
        .reshape([batch * rows, cols]);
    for r in records {
        if let Resolved::Outer {
            a: Factor::Ids(ids),
            b,
            ..
        } = r
        {
            // Row `ids[e, t]` of example `e`'s table gets `b[e, t]`; the examples' tables are
            // stacked as `[batch·rows, cols]`.
            let t = ids.dims()[1];
            let offsets = Tensor::<IB, 1, Int>::arange(0..batch as i64, &device)
                .mul_scalar(rows as i64)
                .reshape([batch, 1]);
            let index = (ids.clone() + offsets).reshape([batch * t]);
            stacked =
                fused_ops::scatter_add_rows(stacked, index, b.clone().reshape([batch * t, cols]));
        }
    }
    Some(stacked.reshape([batch, rows * cols]))
}

/// Squared per-example gradient norm `[batch]` of one parameter from its records.
fn squared_norm<IB: Backend>(records: &[Resolved<IB>]) -> Tensor<IB, 1> {
    let mut total: Option<Tensor<IB, 1>> = None;
    let mut add = |t: Tensor<IB, 1>| {
        total = Some(match total.take() {
            Some(s) => s + t,
            None => t,
        })
    };
    let mut direct: Option<Tensor<IB, 2>> = None;
    for (k, r) in records.iter().enumerate() {
        match r {
            Resolved::Direct(g) => {
                direct = Some(match direct.take() {
                    Some(s) => s + g.clone(),
                    None => g.clone(),
                })
            }
            Resolved::Outer { a, b, .. } => {
                for r2 in &records[k..] {
                    if let Resolved::Outer { a: a2, b: b2, .. } = r2 {
                        let same = std::ptr::eq(r, r2);
                        let term =
                            frobenius(gram(a, a2), b.clone().matmul(b2.clone().swap_dims(1, 2)));
                        add(if same { term } else { term * 2.0 });
                    }
                }
            }
        }
    }
    if let Some(g) = direct {
        let batch = g.dims()[0];
        add(fused_ops::row_sum_squares(g).reshape([batch]));
    }
    total.expect("a parameter group has at least one record")
}

/// Zeroes the rows (examples) of `x` that `excluded` marks: an excluded example's factors
/// may hold NaN or ±∞, and `0 · NaN` would poison the sum, so they are replaced, not scaled.
fn drop_rows<IB: Backend, const D: usize>(
    x: Tensor<IB, D>,
    excluded: Option<&Tensor<IB, 1, Bool>>,
) -> Tensor<IB, D> {
    match excluded {
        None => x,
        Some(mask) => {
            let dims = x.dims();
            let mut shape = [1; D];
            shape[0] = dims[0];
            let mask = mask.clone().reshape(shape).expand(dims);
            x.mask_fill(mask, 0.0)
        }
    }
}

/// `Σ_b c_b · grad_b` of one record, as a flat `[rows·cols]` or `[n]` tensor; the examples
/// marked in `excluded` (factor 0) are left out.
fn weighted<IB: Backend>(
    record: Resolved<IB>,
    c: &Tensor<IB, 1>,
    excluded: Option<&Tensor<IB, 1, Bool>>,
) -> Tensor<IB, 1> {
    let batch = c.dims()[0];
    match record {
        Resolved::Direct(g) => c
            .clone()
            .reshape([1, batch])
            .matmul(drop_rows(g, excluded))
            .flatten(0, 1),
        Resolved::Outer { rows, cols, a, b } => {
            let b = drop_rows(b, excluded);
            let a = match a {
                Factor::Dense(a) => Factor::Dense(drop_rows(a, excluded)),
                ids => ids,
            };
            let [_, t, _] = b.dims();
            let scaled = (b * c.clone().reshape([batch, 1, 1])).reshape([batch * t, cols]);
            match a {
                Factor::Dense(a) => a
                    .reshape([batch * t, rows])
                    .transpose()
                    .matmul(scaled)
                    .flatten(0, 1),
                Factor::Ids(ids) => fused_ops::scatter_add_rows(
                    Tensor::<IB, 2>::zeros([rows, cols], &scaled.device()),
                    ids.reshape([batch * t]),
                    scaled,
                )
                .flatten(0, 1),
            }
        }
    }
}

/// Float parameters of a module in visiting order: id, dotted path, shape, whether trainable.
pub(crate) struct ParamList {
    pub(crate) params: Vec<(ParamId, String, Vec<usize>, bool)>,
    path: Vec<String>,
}

impl ParamList {
    pub(crate) fn of<B: Backend, M: burn::module::Module<B>>(model: &M) -> Self {
        let mut list = Self {
            params: Vec::new(),
            path: Vec::new(),
        };
        model.visit(&mut list);
        list
    }
}

impl<B: Backend> ModuleVisitor<B> for ParamList {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.params.push((
            param.id,
            self.path.join("."),
            param.dims().to_vec(),
            param.is_require_grad(),
        ));
    }
}

/// The clipped per-example gradient sum by the fast path (ghost norms, book-keeping sum):
/// one forward and one backward for the whole batch.
///
/// `loss(model, examples, tape)` must run `model` (a frozen copy: its parameters need no
/// gradient) through `tape` on the given examples, one row per example, and return their
/// per-example losses `[examples.len()]`; each must depend on its own example only.
///
/// Errors: [`DpOptimError::UntappedParameter`] when a trainable parameter of `model` never
/// went through the tape ([`DpOptimError::NothingTapped`] when nothing did: the loss does
/// not use the tape), [`DpOptimError::LossShape`] for a loss of the wrong shape, and an
/// invalid `max_grad_norm`.
pub fn clipped_sum<B, M, F>(
    model: &M,
    examples: &[usize],
    max_grad_norm: f64,
    clipping: Clipping,
    mut loss: F,
) -> Result<ClippedSum, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M, &[usize], &mut GhostTape<B>) -> Tensor<B, 1>,
{
    check_norm(max_grad_norm)?;
    if examples.is_empty() {
        return Ok(ClippedSum {
            grads: GradientsParams::new(),
            examples: 0,
            clipped: 0,
            nonfinite: 0,
        });
    }
    let _serial = crate::autodiff_guard();
    initialise_params(model);
    let frozen = model.clone().no_grad();
    let mut tape = GhostTape::<B>::new();
    let losses = loss(&frozen, examples, &mut tape);
    if losses.dims() != [examples.len()] {
        return Err(DpOptimError::LossShape {
            expected: examples.len(),
            got: losses.dims().to_vec(),
        });
    }
    if tape.is_empty() {
        return Err(DpOptimError::NothingTapped);
    }
    let params = ParamList::of(model).params;
    let mut groups: Vec<(ParamId, Vec<Resolved<Inner<B>>>)> = Vec::new();
    let mut index: HashMap<ParamId, usize> = HashMap::new();
    let grads = losses.sum().backward();
    for record in tape.records {
        let (param, resolved) = match record {
            Pending::Outer {
                param,
                rows,
                cols,
                a,
                b,
            } => (
                param,
                Resolved::Outer {
                    rows,
                    cols,
                    a: resolve_side(a, &grads),
                    b: dense(resolve_side(b, &grads)),
                },
            ),
            Pending::Bias { param, probe } => {
                let g = probe_grad(&probe, &grads);
                (param, Resolved::Direct(g.sum_dim(1).squeeze_dim(1)))
            }
            Pending::Gain { param, probe, xhat } => {
                let g = probe_grad(&probe, &grads) * xhat;
                (param, Resolved::Direct(g.sum_dim(1).squeeze_dim(1)))
            }
        };
        let slot = *index.entry(param).or_insert_with(|| {
            groups.push((param, Vec::new()));
            groups.len() - 1
        });
        let group = &mut groups[slot].1;
        let outer = |r: &Resolved<Inner<B>>| matches!(r, Resolved::Outer { .. });
        if group
            .first()
            .is_some_and(|first| outer(first) != outer(&resolved))
        {
            let path = params
                .iter()
                .find(|p| p.0 == param)
                .map_or_else(|| param.to_string(), |p| p.1.clone());
            return Err(DpOptimError::MixedTapUse { path });
        }
        group.push(resolved);
    }
    for (id, path, _, trainable) in &params {
        if *trainable && !index.contains_key(id) {
            return Err(DpOptimError::UntappedParameter { path: path.clone() });
        }
    }
    // Per-example gradients where they cost no extra memory: their squared norms and the
    // clipped sum are then cheap reductions over the batch.
    for (_, records) in groups.iter_mut() {
        if let Some(per) = per_example(records) {
            *records = vec![Resolved::Direct(per)];
        }
    }
    let norms: Vec<Tensor<Inner<B>, 1>> = groups.iter().map(|(_, r)| squared_norm(r)).collect();
    let clip = clip_factors(norms, max_grad_norm, clipping, params.len());
    let mut out = GradientsParams::new();
    let shapes: HashMap<ParamId, &Vec<usize>> = params.iter().map(|p| (p.0, &p.2)).collect();
    for ((param, records), c) in groups.into_iter().zip(clip.factors) {
        let total = records
            .into_iter()
            .map(|r| weighted(r, &c, clip.excluded.as_ref()))
            .reduce(|a, b| a + b)
            .expect("non-empty group");
        match shapes.get(&param).map(|s| s.as_slice()) {
            Some(&[rows, cols]) => out.register::<Inner<B>, 2>(param, total.reshape([rows, cols])),
            Some(&[_]) => out.register::<Inner<B>, 1>(param, total),
            _ => {} // not a parameter of `model` (e.g. a tensor of another module): ignored
        }
    }
    Ok(ClippedSum {
        grads: out,
        examples: examples.len(),
        clipped: clip.clipped,
        nonfinite: clip.nonfinite,
    })
}
