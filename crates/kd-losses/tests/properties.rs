//! Properties of the losses, gradients against finite differences, and the combined loss's
//! per-token semantics.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use kd_losses::{
    DistillConfig, Divergence, HiddenProjection, HiddenStates, KdLossError, LayerMap,
    cross_entropy, distillation_loss, divergence,
};
use proptest::prelude::*;

type B = NdArray<f64>;
type AB = Autodiff<NdArray<f64>>;

fn logits(values: &[f64], shape: [usize; 3]) -> Tensor<B, 3> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
}

const KINDS: [Divergence; 4] = [
    Divergence::ForwardKl,
    Divergence::ReverseKl,
    Divergence::Jsd { beta: 0.5 },
    Divergence::Jsd { beta: 0.9 },
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// D ≥ 0, and D = 0 when the distributions match (logits equal up to a constant).
    #[test]
    fn divergences_are_nonnegative_and_zero_iff_equal(
        s in prop::collection::vec(-30.0f64..30.0, 2 * 3 * 5),
        t in prop::collection::vec(-30.0f64..30.0, 2 * 3 * 5),
        shift in -50.0f64..50.0, tau in 0.5f64..4.0,
    ) {
        for kind in KINDS {
            let d = divergence(logits(&s, [2, 3, 5]), logits(&t, [2, 3, 5]), tau, kind, None).unwrap();
            for v in d.values.into_data().to_vec::<f64>().unwrap() {
                prop_assert!(v >= -1e-12, "{kind:?}: {v}");
            }
            let shifted: Vec<f64> = s.iter().map(|x| x + shift).collect();
            let same = divergence(logits(&s, [2, 3, 5]), logits(&shifted, [2, 3, 5]), tau, kind, None).unwrap();
            for v in same.values.into_data().to_vec::<f64>().unwrap() {
                prop_assert!(v.abs() < 1e-9, "{kind:?}: {v}");
            }
        }
    }

    /// Changing the logits, targets or hidden states at masked positions changes nothing.
    #[test]
    fn masked_positions_change_nothing(
        s in prop::collection::vec(-10.0f64..10.0, 2 * 4 * 6),
        noise in prop::collection::vec(-1e3f64..1e3, 2 * 4 * 6),
    ) {
        let t: Vec<f64> = s.iter().map(|x| x.sin() * 4.0).collect();
        let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 2, 3, 4, 5, 0, 1, 2], [2, 4]), &Default::default());
        let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 0, 0], [2, 4]), &Default::default());
        // positions (1, 2) and (1, 3) are padding: predictions from them and to them are masked
        let mut s2 = s.clone();
        for (k, n) in noise.iter().enumerate() {
            let (b, pos) = (k / 24, (k / 6) % 4);
            if b == 1 && pos >= 2 { s2[k] += n; }
        }
        let config = DistillConfig { lambda: 0.3, temperature: 2.0, ..Default::default() };
        let a = distillation_loss(&config, logits(&s, [2, 4, 6]), logits(&t, [2, 4, 6]), tokens.clone(), Some(mask.clone()), None).unwrap();
        let b = distillation_loss(&config, logits(&s2, [2, 4, 6]), logits(&t, [2, 4, 6]), tokens, Some(mask), None).unwrap();
        prop_assert!((a.loss().into_scalar() - b.loss().into_scalar()).abs() < 1e-12);
        let (pa, pb) = (a.per_example().into_data().to_vec::<f64>().unwrap(), b.per_example().into_data().to_vec::<f64>().unwrap());
        prop_assert!((pa[1] - pb[1]).abs() < 1e-12);
    }
}

#[test]
fn stable_for_large_logits_and_a_large_vocabulary() {
    let device = Default::default();
    let v = 50_257;
    let s = Tensor::<NdArray, 3>::random([1, 2, v], Distribution::Normal(0.0, 1.0), &device) * 1e4;
    let t = Tensor::<NdArray, 3>::random([1, 2, v], Distribution::Normal(0.0, 1.0), &device) * 1e4;
    for kind in KINDS {
        let d = divergence(s.clone(), t.clone(), 1.0, kind, None).unwrap();
        let values = d
            .values
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap();
        assert!(
            values.iter().all(|x| x.is_finite() && *x >= -1e-3),
            "{kind:?}: {values:?}"
        );
    }
    let targets =
        Tensor::<NdArray, 2, Int>::from_data(TensorData::new(vec![7i64, 50_000], [1, 2]), &device);
    let ce = cross_entropy(s, targets, None, 0.1).unwrap();
    assert!(
        ce.values
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .all(|x| x.is_finite())
    );
}

#[test]
fn gradients_match_finite_differences() {
    let shape = [2, 3, 4];
    let s: Vec<f64> = (0..24).map(|k| ((k * 7 % 11) as f64 - 5.0) * 0.7).collect();
    let t: Vec<f64> = (0..24).map(|k| ((k * 5 % 13) as f64 - 6.0) * 0.5).collect();
    let tokens: Vec<i64> = vec![0, 1, 3, 2, 2, 1];
    let mask: Vec<i64> = vec![1, 1, 1, 1, 1, 0];
    let config = DistillConfig {
        lambda: 0.6,
        temperature: 1.7,
        divergence: Divergence::Jsd { beta: 0.3 },
        label_smoothing: 0.05,
        ..Default::default()
    };
    let loss = |values: &[f64]| -> (f64, Option<Vec<f64>>) {
        let device = Default::default();
        let s = Tensor::<AB, 3>::from_data(TensorData::new(values.to_vec(), shape), &device)
            .require_grad();
        let t = Tensor::<AB, 3>::from_data(TensorData::new(t.clone(), shape), &device);
        let tk = Tensor::<AB, 2, Int>::from_data(TensorData::new(tokens.clone(), [2, 3]), &device);
        let m = Tensor::<AB, 2, Int>::from_data(TensorData::new(mask.clone(), [2, 3]), &device);
        let l = distillation_loss(&config, s.clone(), t, tk, Some(m), None)
            .unwrap()
            .loss();
        let value = l.clone().into_scalar();
        let grads = l.backward();
        (
            value,
            s.grad(&grads)
                .map(|g| g.into_data().to_vec::<f64>().unwrap()),
        )
    };
    let (_, grad) = loss(&s);
    let grad = grad.unwrap();
    let h = 1e-6;
    for k in 0..24 {
        let (mut up, mut down) = (s.clone(), s.clone());
        up[k] += h;
        down[k] -= h;
        let numeric = (loss(&up).0 - loss(&down).0) / (2.0 * h);
        assert!(
            (numeric - grad[k]).abs() < 1e-7,
            "d/ds[{k}]: autodiff {} vs numeric {numeric}",
            grad[k]
        );
    }
}

#[test]
fn the_combined_loss_is_a_per_token_mean() {
    // one example of 4 predictions and one of 1: the batch value weighs tokens, not examples
    let device = Default::default();
    let s = Tensor::<B, 3>::random([2, 5, 6], Distribution::Normal(0.0, 2.0), &device);
    let t = Tensor::<B, 3>::random([2, 5, 6], Distribution::Normal(0.0, 2.0), &device);
    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![1i64, 2, 3, 4, 5, 1, 2, 0, 0, 0], [2, 5]),
        &device,
    );
    let mask = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 0, 0, 0], [2, 5]),
        &device,
    );
    let config = DistillConfig::default();
    let terms = distillation_loss(&config, s, t, tokens, Some(mask), None).unwrap();
    let per_example = terms.per_example().into_data().to_vec::<f64>().unwrap();
    let want = (per_example[0] * 4.0 + per_example[1]) / 5.0;
    assert!((terms.loss().into_scalar() - want).abs() < 1e-12);
    assert_eq!(terms.cross_entropy.count().into_scalar(), 5.0);
    // λ = 0 is the cross-entropy alone, λ = 1 the divergence alone
    let ce = terms.cross_entropy.mean().into_scalar();
    let kl = terms.divergence.mean().into_scalar();
    assert!((terms.loss().into_scalar() - (0.4 * kl + 0.6 * ce)).abs() < 1e-12);
}

#[test]
fn hidden_states_with_projections_and_layer_maps() {
    let device = Default::default();
    let map = LayerMap::evenly_spaced(2, 6).unwrap();
    assert_eq!(map.pairs, vec![(1, 3), (2, 6)]);
    assert_eq!(LayerMap::last_only(6, 36).pairs, vec![(6, 36)]);
    assert!(LayerMap::evenly_spaced(4, 2).is_err());
    let student: Vec<Tensor<B, 3>> = (0..3)
        .map(|_| Tensor::random([2, 4, 8], Distribution::Normal(0.0, 1.0), &device))
        .collect();
    let teacher: Vec<Tensor<B, 3>> = (0..7)
        .map(|_| Tensor::random([2, 4, 12], Distribution::Normal(0.0, 1.0), &device))
        .collect();
    let projection = HiddenProjection::<B>::new(2, 8, 12, &device);
    let s = Tensor::<B, 3>::random([2, 4, 9], Distribution::Normal(0.0, 1.0), &device);
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64; 8], [2, 4]), &device);
    let config = DistillConfig {
        alpha: 0.5,
        ..Default::default()
    };
    let terms = distillation_loss(
        &config,
        s.clone(),
        s.clone(),
        tokens.clone(),
        None,
        Some(HiddenStates {
            student: &student,
            teacher: &teacher,
            map: &map,
            projection: Some(&projection),
        }),
    )
    .unwrap();
    let hidden = terms
        .hidden
        .as_ref()
        .expect("alpha > 0 adds the MSE")
        .mean()
        .into_scalar();
    assert!(hidden > 0.0);
    // student == teacher logits: the divergence is 0 and the loss is 0.6·CE + 0.5·MSE
    let want = 0.6 * terms.cross_entropy.mean().into_scalar() + 0.5 * hidden;
    assert!((terms.loss().into_scalar() - want).abs() < 1e-9);
    // widths differ and no projection: a shape error naming the tensors
    let err = distillation_loss(
        &config,
        s.clone(),
        s,
        tokens,
        None,
        Some(HiddenStates {
            student: &student,
            teacher: &teacher,
            map: &map,
            projection: None,
        }),
    )
    .unwrap_err();
    assert!(matches!(err, KdLossError::Shape { .. }), "{err}");
}

#[test]
fn bad_parameters_name_the_field() {
    let device = Default::default();
    let s = Tensor::<B, 3>::zeros([1, 3, 4], &device);
    let tokens = Tensor::<B, 2, Int>::zeros([1, 3], &device);
    let bad = |config: DistillConfig| {
        distillation_loss(&config, s.clone(), s.clone(), tokens.clone(), None, None)
            .unwrap_err()
            .to_string()
    };
    assert!(
        bad(DistillConfig {
            lambda: 1.5,
            ..Default::default()
        })
        .contains("lambda")
    );
    assert!(
        bad(DistillConfig {
            temperature: 0.0,
            ..Default::default()
        })
        .contains("temperature")
    );
    assert!(
        bad(DistillConfig {
            label_smoothing: 1.0,
            ..Default::default()
        })
        .contains("label_smoothing")
    );
    assert!(
        bad(DistillConfig {
            divergence: Divergence::Jsd { beta: 1.0 },
            ..Default::default()
        })
        .contains("beta")
    );
    let wrong = Tensor::<B, 3>::zeros([1, 3, 5], &device);
    let e = distillation_loss(
        &DistillConfig::default(),
        s.clone(),
        wrong,
        tokens,
        None,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("teacher"), "{e}");
}
