//! DP-SGD on LoRA adapters only (`causal_lm::LoraGpt2`): the fast (ghost) path's per-example
//! adapter gradient norms and clipped sums equal per-example backward passes, only adapter
//! parameters get a gradient, and a DP step leaves the frozen base weights untouched.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use causal_lm::{Gpt2Config, LoraConfig, LoraGpt2, next_token_nll};
use dp_optim::{
    Clipping, ClippingPath, DpRng, DpTrainer, EngineConfig, ExampleLoss, LayerTap, LrSchedule,
    NoTap, OptimizerConfig, TrainerConfig, clipped_sum, ghost,
};

/// A small GPT-2 (2 blocks, width 16, vocab 40) with rank-2 adapters on every projection,
/// `B` made non-zero (a trained adapter: with `B = 0`, `A`'s gradient vanishes).
fn model<B: AutodiffBackend>() -> LoraGpt2<B> {
    let device = Default::default();
    let mut config = Gpt2Config::new(40, 24, 16, 2, 2);
    config.initializer_range = 0.3;
    B::seed(&device, 42);
    let base = config.init::<B>(&device).unwrap();
    let mut model = LoraConfig::new(2, 4.0)
        .with_seed(3)
        .init(base, &device)
        .unwrap();
    for block in &mut model.adapters {
        for a in [
            &mut block.c_attn,
            &mut block.attn_c_proj,
            &mut block.c_fc,
            &mut block.mlp_c_proj,
        ]
        .into_iter()
        .flatten()
        {
            let (id, shape) = (a.b.weight.id, a.b.weight.dims());
            a.b.weight = Param::initialized(
                id,
                Tensor::random(shape, Distribution::Normal(0.0, 0.5), &device).require_grad(),
            );
        }
    }
    model
}

/// Five rows of ten tokens, rows 1 and 3 left-padded.
struct Rows {
    ids: Vec<Vec<i64>>,
    masks: Vec<Vec<i64>>,
}

fn rows() -> Rows {
    let mut s = 11u64;
    let mut ids: Vec<Vec<i64>> = (0..5)
        .map(|_| {
            (0..10)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % 12) as i64
                })
                .collect()
        })
        .collect();
    let mut masks = vec![vec![1i64; 10]; 5];
    for (r, pad) in [(1, 3), (3, 6)] {
        for t in 0..pad {
            ids[r][t] = 0;
            masks[r][t] = 0;
        }
    }
    Rows { ids, masks }
}

fn tensor<B: AutodiffBackend>(rows: &[&Vec<i64>]) -> Tensor<B, 2, Int> {
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(
        TensorData::new(flat, [rows.len(), rows[0].len()]),
        &Default::default(),
    )
}

impl<B: AutodiffBackend> ExampleLoss<B, LoraGpt2<B>> for Rows {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &LoraGpt2<B>,
        ex: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let ids = tensor::<B>(&ex.iter().map(|&i| &self.ids[i]).collect::<Vec<_>>());
        let mask = tensor::<B>(&ex.iter().map(|&i| &self.masks[i]).collect::<Vec<_>>());
        let logits = model.forward_tapped(ids.clone(), Some(mask.clone()), tap);
        next_token_nll(logits, ids, Some(mask))
    }
}

/// Gradient entries of the trainable parameters, in visiting order, and the paths of the
/// parameters that have a gradient.
fn flat<B: AutodiffBackend>(
    model: &LoraGpt2<B>,
    grads: &GradientsParams,
) -> (Vec<f64>, Vec<String>) {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<f64>,
        with: Vec<String>,
        path: Vec<String>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                self.out
                    .extend(g.into_data().convert::<f64>().to_vec::<f64>().unwrap());
                self.with.push(self.path.join("."));
            }
        }
    }
    let mut c = Collect {
        grads,
        out: Vec::new(),
        with: Vec::new(),
        path: Vec::new(),
    };
    model.visit(&mut c);
    (c.out, c.with)
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    (diff.sqrt()) / norm(b)
}

fn fast_equals_per_example<B: AutodiffBackend>(tolerance: f64) {
    let model = model::<B>();
    let mut data = rows();
    let adapters = 2 * 4 * 2; // blocks × projections × (A, B)
    // per-example norms: one backward pass per example vs the fast path on that example
    let mut norms = Vec::new();
    for i in 0..5 {
        let loss = data.losses(&model, &[i], &mut NoTap).sum();
        let (reference, with) = flat(
            &model,
            &GradientsParams::from_grads(loss.backward(), &model),
        );
        assert_eq!(with.len(), adapters, "{with:?}");
        assert!(with.iter().all(|p| p.starts_with("adapters.")), "{with:?}");
        let fast = ghost::clipped_sum(&model, &[i], 1e9, Clipping::Flat, |m, ex, tape| {
            data.losses(m, ex, tape)
        })
        .unwrap();
        let (got, with) = flat(&model, &fast.grads);
        assert!(with.iter().all(|p| p.starts_with("adapters.")), "{with:?}");
        let (n_ref, n_fast) = (norm(&reference), norm(&got));
        assert!(
            (n_ref - n_fast).abs() <= tolerance * n_ref.max(1.0),
            "example {i}: norm {n_fast} (fast) vs {n_ref} (backward)"
        );
        assert!(relative_error(&got, &reference) < tolerance);
        norms.push(n_ref);
    }
    // the batched clipped sum (cross terms, clipping factors from the batch's norms) at bounds
    // below, between and above the per-example norms
    norms.sort_by(f64::total_cmp);
    let examples: Vec<usize> = (0..5).collect();
    for c in [norms[0] / 2.0, (norms[1] + norms[2]) / 2.0, norms[4] * 2.0] {
        let generic = clipped_sum(&model, &examples, c, |m, i| {
            data.losses(m, &[i], &mut NoTap).reshape([1])
        })
        .unwrap();
        let fast = ghost::clipped_sum(&model, &examples, c, Clipping::Flat, |m, ex, tape| {
            data.losses(m, ex, tape)
        })
        .unwrap();
        let (g, _) = flat(&model, &generic.grads);
        let (f, with) = flat(&model, &fast.grads);
        assert_eq!(with.len(), adapters);
        assert!(relative_error(&f, &g) < tolerance, "C = {c}");
        assert_eq!(fast.clipped, generic.clipped, "C = {c}");
    }
}

#[test]
fn fast_adapter_norms_equal_per_example_backward() {
    fast_equals_per_example::<Autodiff<NdArray<f64>>>(1e-10);
    fast_equals_per_example::<Autodiff<Flex>>(1e-4);
}

/// Every float value of the base model.
fn base_values<B: AutodiffBackend>(model: &LoraGpt2<B>) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.extend(
                param
                    .val()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .unwrap(),
            );
        }
    }
    let mut c = Collect(Vec::new());
    model.base.visit(&mut c);
    c.0
}

fn adapter_values<B: AutodiffBackend>(model: &LoraGpt2<B>) -> Vec<f32> {
    model
        .adapters
        .iter()
        .flat_map(|a| {
            let b = a.c_fc.as_ref().unwrap().b.weight.val();
            b.into_data().convert::<f32>().to_vec::<f32>().unwrap()
        })
        .collect()
}

#[test]
fn a_dp_step_moves_only_the_adapters() {
    type B = Autodiff<Flex>;
    for path in [ClippingPath::Fast, ClippingPath::Generic] {
        let mut engine = EngineConfig::new(4.0, 1e-5, 2.0, 5, 3.0, 1.0);
        engine.clipping_path = path;
        let config = TrainerConfig {
            engine,
            optimizer: OptimizerConfig::AdamW {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-8,
                weight_decay: 0.1,
            },
            schedule: LrSchedule::Constant { lr: 0.01 },
        };
        let mut trainer = DpTrainer::new(config, DpRng::insecure_seeded(9)).unwrap();
        let mut model = model::<B>();
        let (base, adapters) = (base_values(&model), adapter_values(&model));
        let mut data = rows();
        for _ in 0..2 {
            model = trainer.step(model, &mut data).map_err(|f| f.error).unwrap();
        }
        assert_eq!(base_values(&model), base, "{path:?}: the base moved");
        assert_ne!(
            adapter_values(&model),
            adapters,
            "{path:?}: the adapters did not move"
        );
        // the merged model carries the update
        let merged = model.merge();
        let ids = tensor::<B>(&[&data.ids[0]]);
        let diff = (merged.forward(ids.clone()) - model.forward(ids))
            .abs()
            .max()
            .into_scalar();
        assert!(diff <= 1e-5, "{path:?}: merged differs by {diff}");
    }
}
