//! Every loss against PyTorch (float64): `kl_div`, `cross_entropy` (label smoothing,
//! ignore_index), `mse_loss`, and the generalised JSD written with torch ops. Fixture:
//! `scripts/peers/kd_losses_fixtures.py`.

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use kd_losses::{Divergence, LayerMap, cross_entropy, divergence, hidden_mse};
use serde_json::Value;

type B = NdArray<f64>;

fn fixture() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_losses.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        _ => panic!("not a number"),
    }
}

fn float3(v: &Value) -> Tensor<B, 3> {
    let a = v.as_array().unwrap();
    let (b, t, d) = (
        a.len(),
        a[0].as_array().unwrap().len(),
        a[0][0].as_array().unwrap().len(),
    );
    Tensor::from_data(TensorData::new(flat(v), [b, t, d]), &Default::default())
}

fn int2(v: &Value) -> Tensor<B, 2, Int> {
    let a = v.as_array().unwrap();
    let (b, t) = (a.len(), a[0].as_array().unwrap().len());
    let data: Vec<i64> = flat(v).into_iter().map(|x| x as i64).collect();
    Tensor::from_data(TensorData::new(data, [b, t]), &Default::default())
}

/// Compares the counted positions (mask 1) of `got` with the reference.
fn check(name: &str, got: Tensor<B, 2>, want: &Value, mask: &[f64], tol: f64) {
    let got = got.into_data().to_vec::<f64>().unwrap();
    let want = flat(want);
    for (k, ((g, w), m)) in got.iter().zip(&want).zip(mask).enumerate() {
        if *m == 1.0 {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{name}[{k}]: {g} vs torch {w}"
            );
        } else {
            assert_eq!(*g, 0.0, "{name}[{k}]: a masked position must be 0");
        }
    }
}

#[test]
fn divergences_match_torch() {
    for case in fixture()["cases"].as_array().unwrap() {
        let mask = int2(&case["mask"]);
        let mask_flat = flat(&case["mask"]);
        let ones = vec![1.0; mask_flat.len()];
        for tau in [1.0, 2.0] {
            let kinds = [
                (format!("forward_kl_tau{tau:.1}"), Divergence::ForwardKl),
                (format!("reverse_kl_tau{tau:.1}"), Divergence::ReverseKl),
                (format!("jsd0.1_tau{tau:.1}"), Divergence::Jsd { beta: 0.1 }),
                (format!("jsd0.5_tau{tau:.1}"), Divergence::Jsd { beta: 0.5 }),
            ];
            for (name, kind) in kinds {
                let want = &case["values"][&name];
                assert!(!want.is_null(), "{name} in fixture");
                let s = float3(&case["student"]);
                let t = float3(&case["teacher"]);
                let all = divergence(s.clone(), t.clone(), tau, kind, None).unwrap();
                check(&name, all.values, want, &ones, 1e-9);
                let masked = divergence(s, t, tau, kind, Some(mask.clone())).unwrap();
                check(&name, masked.values, want, &mask_flat, 1e-9);
            }
        }
    }
}

#[test]
fn cross_entropy_matches_torch() {
    for case in fixture()["cases"].as_array().unwrap() {
        let mask_flat = flat(&case["mask"]);
        for eps in [0.0, 0.1] {
            let name = format!("ce_eps{eps:.1}");
            let got = cross_entropy(
                float3(&case["student"]),
                int2(&case["targets"]),
                Some(int2(&case["mask"])),
                eps,
            )
            .unwrap();
            check(&name, got.values, &case["values"][&name], &mask_flat, 1e-10);
        }
    }
}

#[test]
fn hidden_mse_matches_torch() {
    for case in fixture()["cases"].as_array().unwrap() {
        let hs = [float3(&case["hidden_student"])];
        let ht = [float3(&case["hidden_teacher"])];
        let got = hidden_mse(
            &hs,
            &ht,
            &LayerMap {
                pairs: vec![(0, 0)],
            },
            None,
            None,
        )
        .unwrap();
        let ones = vec![1.0; flat(&case["mask"]).len()];
        check("mse", got.values, &case["values"]["mse"], &ones, 1e-12);
    }
}
