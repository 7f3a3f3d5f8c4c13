//! The fast path (ghost norms + book-keeping sum) against the generic path (one backward per
//! example) on a small language model with every tapped layer kind: token and position
//! embeddings, a head tied to the token embedding, LayerNorms, and Linears in both the
//! Gram (long rows) and the materialised (short rows) regime.

use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::{gelu, log_softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use dp_optim::{
    Clipping, DpOptimError, GhostTape, LayerTap, NoTap, clipped_sum, clipped_sum_per_parameter,
    ghost,
};

/// Exactness in double precision; single precision only adds rounding.
type B = burn::backend::Autodiff<burn::backend::NdArray<f64>>;
type B32 = burn::backend::Autodiff<burn::backend::Flex>;

const VOCAB: usize = 13;
const WIDTH: usize = 6;
const INNER: usize = 16;
const POSITIONS: usize = 16;

#[derive(Module, Debug)]
struct MiniLm<B: Backend> {
    wte: Embedding<B>,
    wpe: Embedding<B>,
    ln: LayerNorm<B>,
    fc: Linear<B>,
    proj: Linear<B>,
    ln_f: LayerNorm<B>,
}

/// Redraws every parameter (LayerNorm gains included) so no gradient is trivially 0 or 1.
struct Redraw(u64);

impl<B: Backend> ModuleMapper<B> for Redraw {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let values: Vec<f32> = (0..shape.num_elements())
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1.6
            })
            .collect();
        let t = Tensor::from_data(TensorData::new(values, shape), &tensor.device());
        let t = if tensor.is_require_grad() {
            t.require_grad()
        } else {
            t
        };
        Param::from_mapped_value(id, t, mapper)
    }
}

fn mini_lm<B: AutodiffBackend>(seed: u64) -> MiniLm<B> {
    let device = Default::default();
    MiniLm {
        wte: EmbeddingConfig::new(VOCAB, WIDTH).init(&device),
        wpe: EmbeddingConfig::new(POSITIONS, WIDTH).init(&device),
        ln: LayerNormConfig::new(WIDTH).init(&device),
        fc: LinearConfig::new(WIDTH, INNER).init(&device),
        proj: LinearConfig::new(INNER, WIDTH).init(&device),
        ln_f: LayerNormConfig::new(WIDTH).init(&device),
    }
    .map(&mut Redraw(seed))
}

impl<B: AutodiffBackend> MiniLm<B> {
    /// Per-example mean next-token cross-entropy `[rows]`, every parameter used through `tap`
    /// (the head is tied to `wte`).
    fn losses<T: LayerTap<B>>(&self, rows: &[Vec<i64>], tap: &mut T) -> Tensor<B, 1> {
        let device = Default::default();
        let (n, t) = (rows.len(), rows[0].len());
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [n, t]), &device);
        let pos = Tensor::<B, 1, Int>::arange(0..t as i64, &device)
            .reshape([1, t])
            .expand([n, t]);
        let x = tap.embedding(&self.wte, ids.clone()) + tap.embedding(&self.wpe, pos);
        let h = tap.layer_norm(&self.ln, 1e-5, x.clone());
        let h = gelu(tap.linear(&self.fc, h));
        let h = x + tap.linear(&self.proj, h);
        let h = tap.layer_norm(&self.ln_f, 1e-5, h);
        let logits = tap.linear_transposed(&self.wte.weight, h);
        let logp = log_softmax(logits.narrow(1, 0, t - 1), 2);
        let targets = ids.narrow(1, 1, t - 1).reshape([n, t - 1, 1]);
        logp.gather(2, targets)
            .reshape([n, t - 1])
            .mean_dim(1)
            .neg()
            .reshape([n])
    }
}

fn rows(n: usize, t: usize, seed: u64) -> Vec<Vec<i64>> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            (0..t)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // a small range so tokens repeat within and across rows
                    ((s >> 33) % 7) as i64
                })
                .collect()
        })
        .collect()
}

fn flat<B: AutodiffBackend>(model: &MiniLm<B>, grads: &GradientsParams) -> Vec<f64> {
    let mut out = Vec::new();
    let params = [
        (model.wte.weight.id, 2),
        (model.wpe.weight.id, 2),
        (model.ln.gamma.id, 1),
        (model.ln.beta.as_ref().unwrap().id, 1),
        (model.fc.weight.id, 2),
        (model.fc.bias.as_ref().unwrap().id, 1),
        (model.proj.weight.id, 2),
        (model.proj.bias.as_ref().unwrap().id, 1),
        (model.ln_f.gamma.id, 1),
        (model.ln_f.beta.as_ref().unwrap().id, 1),
    ];
    for (id, d) in params {
        let data = if d == 2 {
            grads.get::<B::InnerBackend, 2>(id).map(|g| g.into_data())
        } else {
            grads.get::<B::InnerBackend, 1>(id).map(|g| g.into_data())
        };
        let data = data.expect("every parameter has a clipped gradient");
        out.extend(data.convert::<f64>().to_vec::<f64>().unwrap());
    }
    out
}

fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm).sqrt()
}

fn compare<B: AutodiffBackend>(t: usize, clipping: Clipping, tolerance: f64) {
    let model = mini_lm::<B>(7 + t as u64);
    let data = rows(6, t, 99 + t as u64);
    let examples: Vec<usize> = (0..data.len()).collect();
    for c in [0.05, 0.6, 1e6] {
        let generic_loss = |m: &MiniLm<B>, i: usize| m.losses(&data[i..=i], &mut NoTap);
        let generic = match clipping {
            Clipping::Flat => clipped_sum(&model, &examples, c, generic_loss),
            Clipping::PerParameter => clipped_sum_per_parameter(&model, &examples, c, generic_loss),
        }
        .unwrap();
        let fast = ghost::clipped_sum(&model, &examples, c, clipping, |m, ex, tape| {
            let batch: Vec<Vec<i64>> = ex.iter().map(|&i| data[i].clone()).collect();
            m.losses(&batch, tape)
        })
        .unwrap();
        let (g, f) = (flat(&model, &generic.grads), flat(&model, &fast.grads));
        let err = relative_error(&f, &g);
        assert!(
            err < tolerance,
            "t = {t}, {clipping:?}, C = {c}: relative error {err:e}"
        );
        assert_eq!(fast.clipped, generic.clipped, "t = {t}, C = {c}");
        assert_eq!(fast.examples, examples.len());
    }
}

#[test]
fn fast_equals_generic_with_gram_matrices() {
    // t·(d_in + d_out) < d_in·d_out for the Linears, and the embedding tables' per-example
    // gradients are larger than their factors: every norm by Gram matrices
    compare::<B>(3, Clipping::Flat, 1e-11);
    compare::<B32>(3, Clipping::Flat, 1e-4);
}

#[test]
fn fast_equals_generic_with_materialised_linears() {
    // long rows: the Linears and the tied table (embedding + head) form their per-example
    // gradients, the position table keeps its Gram matrices
    compare::<B>(12, Clipping::Flat, 1e-11);
    compare::<B32>(12, Clipping::Flat, 1e-4);
}

#[test]
fn fast_equals_generic_per_parameter() {
    compare::<B>(3, Clipping::PerParameter, 1e-11);
    compare::<B>(12, Clipping::PerParameter, 1e-11);
    compare::<B32>(12, Clipping::PerParameter, 1e-4);
}

#[test]
fn the_clipped_sum_is_bounded_per_example() {
    // with a tiny C every example is clipped: the sum's norm is at most n·C
    let model = mini_lm::<B>(3);
    let data = rows(5, 8, 4);
    let examples: Vec<usize> = (0..data.len()).collect();
    let c = 1e-3;
    let fast = ghost::clipped_sum(&model, &examples, c, Clipping::Flat, |m, ex, tape| {
        let batch: Vec<Vec<i64>> = ex.iter().map(|&i| data[i].clone()).collect();
        m.losses(&batch, tape)
    })
    .unwrap();
    let norm = flat(&model, &fast.grads)
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt();
    assert_eq!(fast.clipped, 5);
    assert!(norm <= 5.0 * c * (1.0 + 1e-5), "norm {norm}");
}

#[test]
fn a_parameter_outside_the_tap_is_refused() {
    let model = mini_lm::<B>(1);
    let data = rows(2, 4, 1);
    let err = ghost::clipped_sum(&model, &[0, 1], 1.0, Clipping::Flat, |m, ex, tape| {
        // the same loss, but the position table is used directly
        let device = Default::default();
        let batch: Vec<Vec<i64>> = ex.iter().map(|&i| data[i].clone()).collect();
        let flat: Vec<i64> = batch.iter().flatten().copied().collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [2, 4]), &device);
        let x = tape.embedding(&m.wte, ids) + m.wpe.forward(Tensor::zeros([2, 4], &device));
        let h = tape.layer_norm(&m.ln, 1e-5, x);
        let h = tape.linear(&m.fc, h);
        let h = tape.linear(&m.proj, h);
        let h = tape.layer_norm(&m.ln_f, 1e-5, h);
        tape.linear_transposed(&m.wte.weight, h)
            .sum_dims(&[1, 2])
            .reshape([2])
    })
    .unwrap_err();
    assert!(
        matches!(&err, DpOptimError::UntappedParameter { path } if path == "wpe.weight"),
        "{err}"
    );
}

#[test]
fn a_loss_without_taps_or_of_the_wrong_shape_is_refused() {
    let model = mini_lm::<B>(1);
    let data = rows(2, 4, 1);
    let err = ghost::clipped_sum(&model, &[0, 1], 1.0, Clipping::Flat, |m, ex, _tape| {
        let batch: Vec<Vec<i64>> = ex.iter().map(|&i| data[i].clone()).collect();
        m.losses(&batch, &mut NoTap)
    })
    .unwrap_err();
    assert!(matches!(err, DpOptimError::NothingTapped), "{err}");
    let err = ghost::clipped_sum(&model, &[0, 1], 1.0, Clipping::Flat, |m, ex, tape| {
        let batch: Vec<Vec<i64>> = ex.iter().map(|&i| data[i].clone()).collect();
        m.losses(&batch, tape).sum()
    })
    .unwrap_err();
    assert!(
        matches!(&err, DpOptimError::LossShape { expected: 2, got } if got == &vec![1]),
        "{err}"
    );
}

#[test]
fn the_tape_leaves_the_model_untouched() {
    // the fast path runs a frozen copy: the caller's parameters still require gradients
    let model = mini_lm::<B>(5);
    let data = rows(3, 5, 2);
    let _ = ghost::clipped_sum(
        &model,
        &[0, 1, 2],
        1.0,
        Clipping::Flat,
        |m, ex, tape: &mut GhostTape<B>| {
            let batch: Vec<Vec<i64>> = ex.iter().map(|&i| data[i].clone()).collect();
            m.losses(&batch, tape)
        },
    )
    .unwrap();
    assert!(model.fc.weight.is_require_grad());
    let _ = model.valid();
}
