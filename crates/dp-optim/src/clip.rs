//! Per-example clipping (the generic exact path) and the noisy, normalised update.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Tensor, TensorData};

use crate::error::DpOptimError;
use crate::noise;
use crate::rng::DpRng;

/// The sum over a batch of per-example gradients, each first scaled to L2 norm at most
/// `max_grad_norm` over **all** parameters together (flat clipping).
///
/// Adding or removing one example changes this sum by a vector of norm at most
/// `max_grad_norm`: the sensitivity the Gaussian mechanism's noise is calibrated to.
#[derive(Debug)]
pub struct ClippedSum {
    /// The clipped sum, keyed by parameter id (parameters without a gradient are absent).
    pub grads: GradientsParams,
    /// Number of examples in the batch (those excluded for a non-finite norm included).
    pub examples: usize,
    /// How many examples were actually scaled down (their norm exceeded the bound). A count
    /// over private data: report it only through a DP mechanism or not at all.
    pub clipped: usize,
    /// How many examples were left out of the sum because their gradient's squared L2 norm
    /// was not finite (NaN or infinite, e.g. a NaN or infinite loss, or an overflow): such an
    /// example contributes nothing (clipping factor 0; its gradient is excluded, not
    /// multiplied, so its NaN or infinite entries never reach the sum). A count over private
    /// data, like `clipped`.
    pub nonfinite: usize,
}

pub(crate) fn check_norm(max_grad_norm: f64) -> Result<(), DpOptimError> {
    if !(max_grad_norm > 0.0 && max_grad_norm.is_finite()) {
        return Err(DpOptimError::InvalidParameter {
            field: "max_grad_norm",
            value: max_grad_norm.to_string(),
            expected: "a finite number > 0",
        });
    }
    Ok(())
}

/// `sum += factor · grads`, parameter by parameter (one factor for all, or one per parameter
/// in visiting order).
struct Accumulate<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: &'a mut GradientsParams,
    factors: Factors,
    index: usize,
    _b: std::marker::PhantomData<B>,
}

enum Factors {
    All(f64),
    Each(Vec<f64>),
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Accumulate<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.is_require_grad() {
            return; // frozen: never clipped, summed or updated
        }
        let factor = match &self.factors {
            Factors::All(f) => *f,
            Factors::Each(f) => f[self.index],
        };
        self.index += 1;
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let g = if factor == 1.0 { g } else { g * factor };
            let total = match self.sum.remove::<B::InnerBackend, D>(param.id) {
                Some(s) => s + g,
                None => g,
            };
            self.sum.register::<B::InnerBackend, D>(param.id, total);
        }
    }
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("f64 data")[0]
}

/// The clipped per-example gradient sum by the generic exact path: one backward pass per
/// example, for any module and any per-example loss.
///
/// `loss(model, i)` must return example `i`'s loss as a one-element tensor and must depend on
/// example `i` only (no batch statistics), or the sensitivity bound does not hold.
pub fn clipped_sum<B, M, F>(
    model: &M,
    examples: &[usize],
    max_grad_norm: f64,
    loss: F,
) -> Result<ClippedSum, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M, usize) -> Tensor<B, 1>,
{
    clip_and_sum(model, examples, max_grad_norm, loss, Clipping::Flat)
}

/// `sum += part`, parameter by parameter (merging the clipped sums of micro-batches).
pub(crate) fn accumulate<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    sum: &mut GradientsParams,
    part: &GradientsParams,
) {
    model.visit(&mut Accumulate::<B> {
        grads: part,
        sum,
        factors: Factors::All(1.0),
        index: 0,
        _b: std::marker::PhantomData,
    });
}

/// Squared L2 norm of each trainable float parameter's gradient, in visiting order (0 when
/// absent); frozen parameters (`require_grad = false`) are skipped.
struct SquaredNorms<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    norms: Vec<Option<Tensor<B::InnerBackend, 1>>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorms<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.is_require_grad() {
            return; // frozen: not part of the clipped vector
        }
        self.norms.push(
            self.grads
                .get::<B::InnerBackend, D>(param.id)
                .map(|g| g.powi_scalar(2).sum()),
        );
    }
}

/// As [`clipped_sum`], but each of the model's `L` trainable float parameter tensors is clipped
/// on its own, to `max_grad_norm / √L`: the per-example vector then still has norm at most
/// `max_grad_norm` (`√(L · C²/L)`), so the sensitivity, and the noise it needs, are those of
/// flat clipping. Per-parameter bounds waste less signal on layers with small gradients and
/// more on those with large ones; flat clipping is the usual default.
pub fn clipped_sum_per_parameter<B, M, F>(
    model: &M,
    examples: &[usize],
    max_grad_norm: f64,
    loss: F,
) -> Result<ClippedSum, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M, usize) -> Tensor<B, 1>,
{
    clip_and_sum(model, examples, max_grad_norm, loss, Clipping::PerParameter)
}

/// Both clipping modes: per example, the squared norm of each parameter's gradient, then one
/// factor for all of them (flat) or one per parameter, then `sum += factor · grad`.
pub(crate) fn clip_and_sum<B, M, F>(
    model: &M,
    examples: &[usize],
    max_grad_norm: f64,
    mut loss: F,
    clipping: Clipping,
) -> Result<ClippedSum, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M, usize) -> Tensor<B, 1>,
{
    check_norm(max_grad_norm)?;
    let _serial = crate::autodiff_guard();
    let mut sum = GradientsParams::new();
    let (mut clipped, mut nonfinite) = (0, 0);
    for &i in examples {
        let grads = GradientsParams::from_grads(loss(model, i).backward(), model);
        let mut norms = SquaredNorms::<B> {
            grads: &grads,
            norms: Vec::new(),
        };
        model.visit(&mut norms);
        let (factors, any) = if clipping == Clipping::PerParameter {
            let bound = max_grad_norm / (norms.norms.len().max(1) as f64).sqrt();
            let squared: Vec<f64> = norms
                .norms
                .into_iter()
                .map(|n| n.map(scalar).unwrap_or(0.0))
                .collect();
            if !squared.iter().sum::<f64>().is_finite() {
                nonfinite += 1;
                continue;
            }
            let factors: Vec<f64> = squared
                .into_iter()
                .map(|sq| clip_factor(sq.sqrt(), bound))
                .collect();
            let any = factors.iter().any(|&f| f < 1.0);
            (Factors::Each(factors), any)
        } else {
            // One host read per example: the squared norms are summed on the device.
            let total = norms.norms.into_iter().flatten().reduce(|a, b| a + b);
            let squared = total.map(scalar).unwrap_or(0.0);
            if !squared.is_finite() {
                nonfinite += 1;
                continue;
            }
            let f = clip_factor(squared.sqrt(), max_grad_norm);
            (Factors::All(f), f < 1.0)
        };
        clipped += usize::from(any);
        model.visit(&mut Accumulate::<B> {
            grads: &grads,
            sum: &mut sum,
            factors,
            index: 0,
            _b: std::marker::PhantomData,
        });
    }
    Ok(ClippedSum {
        grads: sum,
        examples: examples.len(),
        clipped,
        nonfinite,
    })
}

/// How per-example gradients are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clipping {
    /// One bound `C` on the norm over all parameters together (the usual DP-SGD).
    #[default]
    Flat,
    /// Each of the `L` parameter tensors bounded by `C/√L` on its own (same sensitivity `C`).
    PerParameter,
}

/// Per-example clipping factors of the fast path, on the device.
pub(crate) struct FastClip<B: Backend> {
    /// One factor `[batch]` per parameter group (0 for an excluded example).
    pub(crate) factors: Vec<Tensor<B, 1>>,
    /// How many examples were scaled down.
    pub(crate) clipped: usize,
    /// How many examples have a non-finite squared norm (excluded).
    pub(crate) nonfinite: usize,
    /// Which examples are excluded (`true`), when any is.
    pub(crate) excluded: Option<Tensor<B, 1, Bool>>,
}

/// Clipping factors `min(1, bound/‖g‖)` on the device from per-parameter squared norms
/// `[batch]` (one per parameter group), and how many examples were scaled down. Flat: one
/// factor for all groups; per parameter: bound `C/√num_params` per group. An example whose
/// total squared norm (over all groups) is not finite gets factor 0 everywhere, is counted
/// in `nonfinite` (not in `clipped`) and marked in `excluded`.
pub(crate) fn clip_factors<B: Backend>(
    squared_norms: Vec<Tensor<B, 1>>,
    max_grad_norm: f64,
    clipping: Clipping,
    num_params: usize,
) -> FastClip<B> {
    let groups = squared_norms.len();
    let total = squared_norms
        .iter()
        .cloned()
        .reduce(|a, b| a + b)
        .expect("at least one parameter");
    let finite = total.clone().is_finite();
    let excluded = finite.clone().bool_not();
    let factor = |sq: Tensor<B, 1>, bound: f64| {
        let norm = sq.sqrt();
        let over = norm.clone().greater_elem(bound).float();
        let f = (norm.clamp_min(1e-30).recip() * bound)
            .clamp_max(1.0)
            .mask_fill(excluded.clone(), 0.0);
        (f, over)
    };
    let (factors, over) = match clipping {
        Clipping::Flat => {
            let (f, over) = factor(total, max_grad_norm);
            (vec![f; groups], over)
        }
        Clipping::PerParameter => {
            let bound = max_grad_norm / (num_params.max(1) as f64).sqrt();
            let (factors, overs): (Vec<_>, Vec<_>) =
                squared_norms.into_iter().map(|s| factor(s, bound)).unzip();
            let any = overs
                .into_iter()
                .reduce(|a, b| a + b)
                .expect("at least one parameter")
                .greater_elem(0.0)
                .float();
            (factors, any)
        }
    };
    let over = over * finite.float();
    let clipped = scalar(over.sum()).round() as usize;
    let nonfinite = scalar(excluded.clone().float().sum()).round() as usize;
    FastClip {
        factors,
        clipped,
        nonfinite,
        excluded: (nonfinite > 0).then_some(excluded),
    }
}

/// `min(1, bound / norm)`.
fn clip_factor(norm: f64, bound: f64) -> f64 {
    if norm > bound { bound / norm } else { 1.0 }
}

/// Adds noise and normalises: `(clipped sum + N(0, noise_std²·I)) / expected_batch_size`, for
/// every float parameter of `model` (parameters absent from the sum get pure noise), ready for
/// a burn optimiser's `step`.
struct Privatize<'a, B: AutodiffBackend> {
    sum: &'a mut GradientsParams,
    out: GradientsParams,
    rng: &'a mut DpRng,
    noise_std: f64,
    divisor: f64,
    error: Option<DpOptimError>,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Privatize<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() || !param.is_require_grad() {
            return; // a frozen parameter gets no update (and needs no noise)
        }
        let value = param.val().inner();
        let shape = value.shape();
        let device = value.device();
        let g = self
            .sum
            .remove::<B::InnerBackend, D>(param.id)
            .unwrap_or_else(|| Tensor::zeros(shape.clone(), &device));
        let g = if self.noise_std > 0.0 {
            match noise::gaussian(self.rng, shape.num_elements(), self.noise_std) {
                Ok(z) => g + Tensor::from_data(TensorData::new(z, shape), &device),
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        } else {
            g
        };
        self.out
            .register::<B::InnerBackend, D>(param.id, g / self.divisor);
    }
}

/// The private update of one logical step: the clipped sum plus Gaussian noise of standard
/// deviation `noise_multiplier · max_grad_norm` on every coordinate of every trainable float
/// parameter (frozen ones, `require_grad = false`, get no update at all), divided by the
/// *expected* batch size (never the realised one). Noise comes from `rng` (see
/// [`DpRng`]; an insecure seeded stream voids the guarantee).
pub fn privatize<B, M>(
    model: &M,
    mut sum: ClippedSum,
    noise_multiplier: f64,
    max_grad_norm: f64,
    expected_batch_size: f64,
    rng: &mut DpRng,
) -> Result<GradientsParams, DpOptimError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    check_norm(max_grad_norm)?;
    if !(noise_multiplier >= 0.0 && noise_multiplier.is_finite()) {
        return Err(DpOptimError::InvalidParameter {
            field: "noise_multiplier",
            value: noise_multiplier.to_string(),
            expected: "a finite number >= 0",
        });
    }
    if !(expected_batch_size > 0.0 && expected_batch_size.is_finite()) {
        return Err(DpOptimError::InvalidParameter {
            field: "expected_batch_size",
            value: expected_batch_size.to_string(),
            expected: "a finite number > 0",
        });
    }
    let mut visitor = Privatize::<B> {
        sum: &mut sum.grads,
        out: GradientsParams::new(),
        rng,
        noise_std: noise_multiplier * max_grad_norm,
        divisor: expected_batch_size,
        error: None,
        _b: std::marker::PhantomData,
    };
    model.visit(&mut visitor);
    match visitor.error {
        Some(e) => Err(e),
        None => Ok(visitor.out),
    }
}
