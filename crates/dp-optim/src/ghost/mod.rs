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
//! Frozen parameters (`require_grad = false`, e.g. the base of a `causal_lm::LoraGpt2`) may
//! go through the tap too: their records are dropped, so the norms and the sum cover the
//! trainable parameters only (for LoRA: `A` from its input `x` and the gradient of `A x`,
//! `B` from `A x` and the gradient of `B(A x)`, each an ordinary linear without bias).
//! A parameter never seen by the tape is an error ([`DpOptimError::UntappedParameter`]); a
//! parameter used both through the tap and directly cannot be detected and would lose the
//! direct use's gradient: models must route every use through the tap.

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::clip::{ClippedSum, Clipping, check_norm, clip_factors};
use crate::error::DpOptimError;
use train_kit::initialise_params;

mod factors;
mod tape;

use factors::*;
pub use tape::GhostTape;
use tape::*;

pub(crate) type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// A tapped layer output's gradient, `[batch, t, d]`, after the backward pass.
pub(crate) type Probe<B> = fused_ops::OutputGrad<B, 3>;

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
    // Frozen parameters (`require_grad = false`, e.g. a LoRA model's base) are not trained:
    // their uses through the tape are dropped, so the norms and the sum cover the trainable
    // parameters only, as on the generic path.
    let frozen: std::collections::HashSet<ParamId> =
        params.iter().filter(|p| !p.3).map(|p| p.0).collect();
    let trainable = params.len() - frozen.len();
    let mut groups: Vec<(ParamId, Vec<Resolved<Inner<B>>>)> = Vec::new();
    let mut index: HashMap<ParamId, usize> = HashMap::new();
    let grads = losses.sum().backward();
    for record in tape.records {
        let used = match &record {
            Pending::Outer { param, .. }
            | Pending::Bias { param, .. }
            | Pending::Gain { param, .. } => *param,
        };
        if frozen.contains(&used) {
            continue;
        }
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
    if norms.is_empty() {
        // every tapped parameter is frozen: nothing to train, nothing to clip
        return Ok(ClippedSum {
            grads: GradientsParams::new(),
            examples: examples.len(),
            clipped: 0,
            nonfinite: 0,
        });
    }
    let clip = clip_factors(norms, max_grad_norm, clipping, trainable);
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
