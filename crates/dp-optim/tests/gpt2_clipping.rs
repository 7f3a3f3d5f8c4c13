//! GPT-2's fast DP-SGD clipping path (`forward_tapped` + `dp_optim::ghost`) against the
//! generic path (one backward per example): the same clipped sum, tied embedding included.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config, next_token_nll};
use dp_optim::{Clipping, NoTap, clipped_sum, clipped_sum_per_parameter, ghost};

/// Every gradient entry of the model, in visiting order (a missing gradient is an error).
fn flat<B: AutodiffBackend>(model: &Gpt2<B>, grads: &GradientsParams) -> Vec<f64> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<f64>,
        missing: usize,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            match self.grads.get::<B::InnerBackend, D>(param.id) {
                Some(g) => self
                    .out
                    .extend(g.into_data().convert::<f64>().to_vec::<f64>().unwrap()),
                None => self.missing += 1,
            }
        }
    }
    let mut c = Collect {
        grads,
        out: Vec::new(),
        missing: 0,
    };
    model.visit(&mut c);
    assert_eq!(c.missing, 0, "a parameter has no clipped gradient");
    c.out
}

fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm).sqrt()
}

/// A small GPT-2 (2 blocks, width 16, 2 heads, vocab 40) with large weights, so gradient norms
/// spread over orders of magnitude.
fn model<B: AutodiffBackend>() -> Gpt2<B> {
    let mut config = Gpt2Config::new(40, 24, 16, 2, 2);
    config.initializer_range = 0.3;
    let device = Default::default();
    B::seed(&device, 42);
    config.init(&device).unwrap()
}

struct Batch {
    rows: Vec<Vec<i64>>,
    masks: Option<Vec<Vec<i64>>>,
}

fn batch(padded: bool) -> Batch {
    let mut s = 11u64;
    let mut rows: Vec<Vec<i64>> = (0..5)
        .map(|_| {
            (0..10)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % 12) as i64 // repeats within and across rows
                })
                .collect()
        })
        .collect();
    if !padded {
        return Batch { rows, masks: None };
    }
    // left-pad rows 1 and 3 by 3 and 6 tokens (pad id 0), as synthetic-data batches are
    let mut masks = vec![vec![1i64; 10]; 5];
    for (r, pad) in [(1, 3), (3, 6)] {
        for t in 0..pad {
            rows[r][t] = 0;
            masks[r][t] = 0;
        }
    }
    Batch {
        rows,
        masks: Some(masks),
    }
}

fn tensor<B: AutodiffBackend>(rows: &[&Vec<i64>]) -> Tensor<B, 2, Int> {
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(
        TensorData::new(flat, [rows.len(), rows[0].len()]),
        &Default::default(),
    )
}

fn losses<B: AutodiffBackend, T: dp_optim::LayerTap<B>>(
    m: &Gpt2<B>,
    b: &Batch,
    ex: &[usize],
    tap: &mut T,
) -> Tensor<B, 1> {
    let ids = tensor::<B>(&ex.iter().map(|&i| &b.rows[i]).collect::<Vec<_>>());
    let mask = b
        .masks
        .as_ref()
        .map(|m| tensor::<B>(&ex.iter().map(|&i| &m[i]).collect::<Vec<_>>()));
    let logits = m.forward_tapped(ids.clone(), mask.clone(), tap);
    next_token_nll(logits, ids, mask)
}

fn compare<B: AutodiffBackend>(padded: bool, clipping: Clipping, tolerance: f64) {
    let model = model::<B>();
    let data = batch(padded);
    let examples: Vec<usize> = (0..5).collect();
    let generic_sum = |c: f64| {
        let per_example = |m: &Gpt2<B>, i: usize| losses(m, &data, &[i], &mut NoTap);
        match clipping {
            Clipping::Flat => clipped_sum(&model, &examples, c, per_example),
            Clipping::PerParameter => clipped_sum_per_parameter(&model, &examples, c, per_example),
        }
        .unwrap()
    };
    // A bound that clips some but not all examples, whatever the random initialisation: the
    // clipped count falls from 5 to 0 as C grows, so bisect on log C until it is in between.
    let (mut lo, mut hi) = (1e-3f64, 1e6f64);
    let mixed = loop {
        let mid = (lo * hi).sqrt();
        match generic_sum(mid).clipped {
            5 => lo = mid,
            0 => hi = mid,
            _ => break mid,
        }
        assert!(
            hi / lo > 1.0 + 1e-9,
            "no bound between {lo} and {hi} is mixed"
        );
    };
    let mut saw_mixed = false;
    for c in [0.5, 4.0, 7.0, 10.0, 14.0, 20.0, 30.0, 1e6, mixed] {
        let generic = generic_sum(c);
        let fast = ghost::clipped_sum(&model, &examples, c, clipping, |m, ex, tape| {
            losses(m, &data, ex, tape)
        })
        .unwrap();
        let err = relative_error(&flat(&model, &fast.grads), &flat(&model, &generic.grads));
        assert!(
            err < tolerance,
            "padded {padded}, {clipping:?}, C = {c}: relative error {err:e}"
        );
        assert_eq!(fast.clipped, generic.clipped);
        saw_mixed |= (1..5).contains(&generic.clipped);
    }
    assert!(saw_mixed, "no bound clipped some but not all examples");
}

type F64 = Autodiff<NdArray<f64>>;
type F32 = Autodiff<Flex>;

#[test]
fn fast_equals_generic_on_gpt2() {
    compare::<F64>(false, Clipping::Flat, 1e-10);
    compare::<F32>(false, Clipping::Flat, 1e-5);
}

#[test]
fn fast_equals_generic_on_padded_gpt2_batches() {
    compare::<F64>(true, Clipping::Flat, 1e-10);
    compare::<F32>(true, Clipping::Flat, 1e-5);
}

/// The single-precision comparisons on the GPU (builds with the `cuda` feature; `-- cuda::`
/// selects them).
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    type G = Autodiff<burn::backend::Cuda>;

    #[test]
    fn fast_equals_generic_on_gpt2() {
        compare::<G>(false, Clipping::Flat, 1e-5);
    }

    #[test]
    fn fast_equals_generic_on_padded_gpt2_batches() {
        compare::<G>(true, Clipping::Flat, 1e-5);
    }
}

#[test]
fn fast_equals_generic_per_parameter_on_gpt2() {
    compare::<F64>(true, Clipping::PerParameter, 1e-10);
}

#[test]
fn tapped_forward_equals_the_plain_forward() {
    let model = model::<F64>();
    let data = batch(true);
    let ids = tensor::<F64>(&data.rows.iter().collect::<Vec<_>>());
    let mask = tensor::<F64>(&data.masks.as_ref().unwrap().iter().collect::<Vec<_>>());
    let plain = model
        .forward_full(ids.clone(), Some(mask.clone()), false)
        .logits;
    let tapped = model.forward_tapped(ids, Some(mask), &mut NoTap);
    let diff = (plain - tapped).abs().max().into_scalar();
    assert_eq!(diff, 0.0);
}
