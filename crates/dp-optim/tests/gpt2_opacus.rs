//! DP-SGD clipping of the tiny GPT-2 fixture against Opacus: the fast path's clipped sum
//! equals Opacus's (GradSampleModule, float64, tied embedding) at three bounds. Fixture:
//! `scripts/peers/dp_optim_gpt2_fixture.py` → `tests/fixtures/opacus_gpt2.json` (the model: causal-lm's
//! `tests/fixtures/tiny-gpt2`).

use std::collections::HashMap;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, hf, next_token_nll};
use dp_optim::{Clipping, ghost};
use serde_json::Value;

/// Path of a file under this crate's `tests/fixtures`.
fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The tiny GPT-2 checkpoint of causal-lm's fixtures (one copy in the workspace).
fn tiny_gpt2() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../causal-lm/tests/fixtures/tiny-gpt2")
}

/// Dotted parameter paths (Hugging Face's names) by id.
#[derive(Default)]
struct Names {
    path: Vec<String>,
    names: HashMap<ParamId, String>,
}

impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Names {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        // burn's LayerNorm calls its parameters gamma/beta; Hugging Face weight/bias
        let name = self.path.join(".");
        let name = match name.rsplit_once('.') {
            Some((module, "gamma")) => format!("{module}.weight"),
            Some((module, "beta")) => format!("{module}.bias"),
            _ => name,
        };
        self.names.insert(param.id, name);
    }
}

/// The clipped sum of every parameter, by name, flattened row-major.
fn clipped<B: AutodiffBackend>(
    model: &Gpt2<B>,
    ids: &[Vec<i64>],
    c: f64,
) -> HashMap<String, Vec<f64>> {
    let (n, t) = (ids.len(), ids[0].len());
    let flat: Vec<i64> = ids.iter().flatten().copied().collect();
    let sum = ghost::clipped_sum(
        model,
        &(0..n).collect::<Vec<_>>(),
        c,
        Clipping::Flat,
        |m, ex, tape| {
            assert_eq!(ex.len(), n);
            let tokens = Tensor::<B, 2, Int>::from_data(
                TensorData::new(flat.clone(), [n, t]),
                &Default::default(),
            );
            next_token_nll(m.forward_tapped(tokens.clone(), None, tape), tokens, None)
        },
    )
    .unwrap();
    let mut names = Names::default();
    model.visit(&mut names);
    struct Collect<'a> {
        grads: &'a burn::optim::GradientsParams,
        names: &'a HashMap<ParamId, String>,
        out: HashMap<String, Vec<f64>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let g = self
                .grads
                .get::<B::InnerBackend, D>(param.id)
                .expect("a clipped gradient");
            let values = g.into_data().convert::<f64>().to_vec::<f64>().unwrap();
            self.out.insert(self.names[&param.id].clone(), values);
        }
    }
    let mut collect = Collect {
        grads: &sum.grads,
        names: &names.names,
        out: HashMap::new(),
    };
    model.visit(&mut collect);
    collect.out
}

fn check<B: AutodiffBackend>(tolerance: f64) {
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("opacus_gpt2.json")).unwrap())
            .unwrap();
    let ids: Vec<Vec<i64>> = reference["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect()
        })
        .collect();
    let model = hf::load::<B>(tiny_gpt2(), &Default::default()).unwrap();
    for case in reference["cases"].as_array().unwrap() {
        let c = case["max_grad_norm"].as_f64().unwrap();
        let ours = clipped(&model, &ids, c);
        let params = case["params"].as_object().unwrap();
        assert_eq!(params.len(), ours.len(), "one entry per unique parameter");
        for (name, want) in params {
            let got = ours
                .get(name)
                .unwrap_or_else(|| panic!("{name} not among {:?}", ours.keys()));
            let l2 = got.iter().map(|x| x * x).sum::<f64>().sqrt();
            let probe: f64 = got
                .iter()
                .enumerate()
                .map(|(k, g)| g * (0.37 * k as f64 + 1.0).sin())
                .sum();
            let want_l2 = want["l2"].as_f64().unwrap();
            let want_probe = want["probe"].as_f64().unwrap();
            let scale = want_l2.max(1e-12);
            assert!(
                (l2 - want_l2).abs() <= tolerance * scale,
                "C = {c}, {name}: l2 {l2} vs Opacus {want_l2}"
            );
            assert!(
                (probe - want_probe).abs() <= tolerance * scale * (got.len() as f64).sqrt(),
                "C = {c}, {name}: probe {probe} vs Opacus {want_probe}"
            );
            for (k, w) in want["head"].as_array().unwrap().iter().enumerate() {
                let w = w.as_f64().unwrap();
                assert!(
                    (got[k] - w).abs() <= tolerance * scale,
                    "C = {c}, {name}[{k}]: {} vs Opacus {w}",
                    got[k]
                );
            }
        }
    }
}

#[test]
fn clipped_sum_matches_opacus_in_double_precision() {
    // Opacus divides by norm + 1e-6, we by the norm: a relative difference below 1e-6
    check::<Autodiff<NdArray<f64>>>(1e-6);
}

#[test]
fn clipped_sum_matches_opacus_in_single_precision() {
    check::<Autodiff<Flex>>(1e-4);
}

/// The single-precision comparison on the GPU (builds with the `cuda` feature; `-- cuda::`
/// selects it).
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    #[test]
    fn clipped_sum_matches_opacus_in_single_precision() {
        check::<Autodiff<burn::backend::Cuda>>(1e-4);
    }
}
