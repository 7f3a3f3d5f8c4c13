//! The generic clipping path against Opacus (CPU torch, float64) on the same weights and
//! batch: `scripts/peers/dp_optim_fixtures.py` wrote the fixture.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::LayerNormConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use common::{B, Data, Net, loss};
use dp_optim::clipped_sum;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/opacus_clipping.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tensor<const D: usize>(v: &Value) -> Tensor<B, D> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap() as usize)
        .collect();
    let values: Vec<f32> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn model(f: &Value) -> Net<B> {
    let w = &f["weights"];
    let linear = |p: &str| burn::nn::Linear {
        weight: Param::from_tensor(tensor::<2>(&w[format!("{p}.weight")])),
        bias: Some(Param::from_tensor(tensor::<1>(&w[format!("{p}.bias")]))),
    };
    let mut norm = LayerNormConfig::new(6).init(&Default::default());
    norm.gamma = Param::from_tensor(tensor::<1>(&w["1.weight"]));
    norm.beta = Some(Param::from_tensor(tensor::<1>(&w["1.bias"])));
    Net {
        a: linear("0"),
        norm,
        b: linear("2"),
    }
}

fn rows<const N: usize>(v: &Value) -> Vec<[f32; N]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r: Vec<f32> = r
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            r.try_into().unwrap()
        })
        .collect()
}

#[test]
fn clipped_sums_match_opacus() {
    let f = fixture();
    let net = model(&f);
    let d = Data {
        x: rows::<4>(&f["x"]),
        y: rows::<2>(&f["y"]),
    };
    let batch: Vec<usize> = (0..d.x.len()).collect();
    // Parameter order of our Net = torch's: 0.weight, 0.bias, 1.weight, 1.bias, 2.weight, 2.bias.
    let names = [
        "0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias",
    ];
    for case in f["cases"].as_array().unwrap() {
        let c = case["max_grad_norm"].as_f64().unwrap();
        let sum = clipped_sum(&net, &batch, c, |m, i| loss(m, &d, i)).unwrap();
        struct Collect<'a>(&'a burn::optim::GradientsParams, Vec<Vec<f64>>);
        impl ModuleVisitor<B> for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                let g = self
                    .0
                    .get::<<B as AutodiffBackend>::InnerBackend, D>(p.id)
                    .unwrap();
                self.1
                    .push(g.into_data().convert::<f64>().to_vec::<f64>().unwrap());
            }
        }
        let mut ours = Collect(&sum.grads, Vec::new());
        net.visit(&mut ours);
        let theirs: Vec<Vec<f64>> = names
            .iter()
            .map(|n| {
                case["clipped_sum"][*n]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        let scale = theirs.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        for (name, (o, t)) in names.iter().zip(ours.1.iter().zip(&theirs)) {
            assert_eq!(o.len(), t.len(), "{name}");
            for (a, b) in o.iter().zip(t) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "C = {c}, {name}: {a} vs Opacus {b} (scale {scale})"
                );
            }
        }
    }
}
