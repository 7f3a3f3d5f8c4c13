//! Per-example clipping and the private update, on a small two-layer model (any burn module
//! works: the generic path needs only a per-example loss).

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use dp_optim::{DpRng, clipped_sum, clipped_sum_per_parameter, privatize};
use proptest::prelude::*;

mod common;

use common::{data, flat, loss, net};

fn l2(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Adding one example moves the clipped sum by at most C, whatever the data and model.
    #[test]
    fn one_record_moves_the_clipped_sum_by_at_most_c(
        seed: u64, n in 1usize..6, scale in 0.1f32..50.0, c in 0.01f64..5.0,
    ) {
        let device = Default::default();
        let model = net(&device);
        let d = data(n + 1, seed, scale);
        let batch: Vec<usize> = (0..n).collect();
        let with: Vec<usize> = (0..=n).collect();
        let s1 = clipped_sum(&model, &batch, c, |m, i| loss(m, &d, i)).unwrap();
        let s2 = clipped_sum(&model, &with, c, |m, i| loss(m, &d, i)).unwrap();
        let dist = l2(&flat(&model, &s1.grads), &flat(&model, &s2.grads));
        prop_assert!(dist <= c * (1.0 + 1e-5) + 1e-6, "moved by {dist} > C = {c}");
        // Per-parameter clipping has the same sensitivity.
        let p1 = clipped_sum_per_parameter(&model, &batch, c, |m, i| loss(m, &d, i)).unwrap();
        let p2 = clipped_sum_per_parameter(&model, &with, c, |m, i| loss(m, &d, i)).unwrap();
        let dist = l2(&flat(&model, &p1.grads), &flat(&model, &p2.grads));
        prop_assert!(dist <= c * (1.0 + 1e-5) + 1e-6, "per-parameter: moved by {dist} > C = {c}");
    }
}

#[test]
fn a_large_gradient_is_scaled_to_exactly_c() {
    let device = Default::default();
    let model = net(&device);
    let d = data(1, 3, 100.0);
    let s = clipped_sum(&model, &[0], 0.5, |m, i| loss(m, &d, i)).unwrap();
    let norm = l2(&flat(&model, &s.grads), &vec![0.0; 100]);
    assert!((norm - 0.5).abs() < 1e-5, "{norm}");
    assert_eq!((s.examples, s.clipped), (1, 1));
}

#[test]
fn per_parameter_clipping_bounds_each_tensor() {
    let device = Default::default();
    let model = net(&device);
    let d = data(1, 3, 100.0);
    let c = 0.6;
    let s = clipped_sum_per_parameter(&model, &[0], c, |m, i| loss(m, &d, i)).unwrap();
    let g = flat(&model, &s.grads);
    // Parameters in visiting order: a.weight (24), a.bias (6), norm gamma (6), beta (6),
    // b.weight (12), b.bias (2).
    let bound = c / 6f64.sqrt();
    let mut start = 0;
    for len in [24, 6, 6, 6, 12, 2] {
        let part = &g[start..start + len];
        let norm = part.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm <= bound * (1.0 + 1e-5), "{norm} > {bound}");
        start += len;
    }
    // With a bound no gradient reaches, both modes agree with the plain sum.
    let a = clipped_sum_per_parameter(&model, &[0], 1e9, |m, i| loss(m, &d, i)).unwrap();
    let b = clipped_sum(&model, &[0], 1e9, |m, i| loss(m, &d, i)).unwrap();
    assert!(l2(&flat(&model, &a.grads), &flat(&model, &b.grads)) < 1e-9);
}

#[test]
fn without_noise_and_clipping_a_dp_step_is_a_plain_sgd_step() {
    let device = Default::default();
    let model = net(&device);
    let d = data(5, 11, 2.0);
    let batch = [0usize, 2, 3, 4];
    let expected_batch = 3.7;
    let sum = clipped_sum(&model, &batch, 1e9, |m, i| loss(m, &d, i)).unwrap();
    assert_eq!(sum.clipped, 0);
    let mut rng = DpRng::insecure_seeded(0);
    let dp = privatize(&model, sum, 0.0, 1e9, expected_batch, &mut rng).unwrap();
    // Plain: the gradient of (sum of the batch's losses) / expected batch size.
    let total = batch
        .iter()
        .map(|&i| loss(&model, &d, i))
        .reduce(|a, b| a + b)
        .unwrap()
        / expected_batch;
    let plain = GradientsParams::from_grads(total.backward(), &model);
    let (a, b) = (flat(&model, &dp), flat(&model, &plain));
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(l2(&a, &b) <= 1e-5 * scale.max(1.0), "{a:?} vs {b:?}");
}

#[test]
fn the_noise_has_the_configured_standard_deviation_on_every_coordinate() {
    // Zero gradients (empty batch): the update is pure noise / expected batch size.
    let device = Default::default();
    let model = net(&device);
    let (sigma, c, e) = (1.3, 0.7, 4.0);
    let mut rng = DpRng::secure().unwrap();
    let mut values = Vec::new();
    for _ in 0..400 {
        let sum = clipped_sum(&model, &[], c, |m, i| loss(m, &data(1, 0, 1.0), i)).unwrap();
        let g = privatize(&model, sum, sigma, c, e, &mut rng).unwrap();
        values.extend(flat(&model, &g));
    }
    let m = values.len() as f64; // 400 steps x 56 coordinates, every parameter covered
    assert_eq!(values.len(), 400 * (4 * 6 + 6 + 6 + 6 + 6 * 2 + 2));
    let std = sigma * c / e;
    let var = values.iter().map(|v| v * v).sum::<f64>() / m; // known mean 0
    let rel = 4.89 * (2.0 / m).sqrt(); // 1e-6 false-failure bound
    assert!(
        (var / (std * std) - 1.0).abs() <= rel,
        "{var} vs {}",
        std * std
    );
}

#[test]
fn bad_parameters_are_named() {
    let device = Default::default();
    let model = net(&device);
    let d = data(1, 1, 1.0);
    let e = clipped_sum(&model, &[0], 0.0, |m, i| loss(m, &d, i))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_grad_norm"), "{e}");
    let mut rng = DpRng::insecure_seeded(1);
    for (sigma, batch, field) in [
        (-1.0, 1.0, "noise_multiplier"),
        (1.0, 0.0, "expected_batch_size"),
    ] {
        let sum = clipped_sum(&model, &[0], 1.0, |m, i| loss(m, &d, i)).unwrap();
        let e = privatize(&model, sum, sigma, 1.0, batch, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
    }
    let _ = model.valid();
}
