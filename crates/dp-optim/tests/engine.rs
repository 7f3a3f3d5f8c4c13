//! The privacy engine: calibration, budget refusal, ledger, exact resume.

mod common;

use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use common::{B, Net, data, loss, net};
use dp_optim::{DpOptimError, DpRng, EngineConfig, PerExample, PrivacyEngine};

fn config() -> EngineConfig {
    EngineConfig::new(2.0, 1e-5, 2.0, 200, 20.0, 1.0)
}

#[test]
fn spends_the_budget_and_refuses_to_step_past_it() {
    let device = Default::default();
    let mut model = net(&device);
    let d = data(200, 5, 2.0);
    let mut engine = PrivacyEngine::new(config(), DpRng::secure().unwrap()).unwrap();
    let (taken, planned) = engine.steps();
    assert_eq!((taken, planned), (0, 20)); // ⌈2 epochs / q = 0.1⌉
    assert!(engine.noise_multiplier() > 0.5);
    let mut optim = SgdConfig::new().init();
    let before = model.a.weight.val().into_data();
    while engine.can_step() {
        let update: GradientsParams = engine
            .step(&model, &mut PerExample(|m: &Net<B>, i| loss(m, &d, i)))
            .unwrap();
        model = optim.step(0.1, model, update);
    }
    let spent = engine.epsilon_spent().unwrap();
    assert!(
        spent <= 2.0 && spent > 1.99,
        "calibrated to the budget: spent {spent}"
    );
    let e = engine
        .step(&model, &mut PerExample(|m: &Net<B>, i| loss(m, &d, i)))
        .unwrap_err();
    assert!(
        matches!(e, DpOptimError::BudgetExhausted { steps: 20, .. }),
        "{e}"
    );
    // The model was trained (the updates were applied).
    assert_ne!(before, model.a.weight.val().into_data());
}

#[test]
fn an_interrupted_run_resumes_exactly() {
    let device = Default::default();
    let d = data(200, 6, 2.0);
    let model = net(&device);
    let run = |interrupt_at: Option<u64>| {
        let mut engine = PrivacyEngine::new(config(), DpRng::insecure_seeded(9)).unwrap();
        let mut updates = Vec::new();
        for step in 0..6u64 {
            if Some(step) == interrupt_at {
                let saved = serde_json::to_string(engine.state()).unwrap();
                engine = PrivacyEngine::from_state(serde_json::from_str(&saved).unwrap()).unwrap();
            }
            let g = engine
                .step(&model, &mut PerExample(|m: &Net<B>, i| loss(m, &d, i)))
                .unwrap();
            let w = g
                .get::<burn::backend::NdArray, 2>(model.a.weight.id)
                .unwrap()
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            updates.push(w);
        }
        (updates, engine.state().ledger.clone(), engine.steps())
    };
    let (a, ledger_a, steps_a) = run(None);
    let (b, ledger_b, steps_b) = run(Some(3));
    assert_eq!(a, b, "same samples and noise after the restart");
    assert_eq!(ledger_a, ledger_b);
    assert_eq!(steps_a, (6, 20));
    assert_eq!(steps_b, (6, 20));
}

#[test]
fn bad_configurations_are_named() {
    let cases: Vec<(EngineConfig, &str)> = vec![
        (
            EngineConfig {
                target_epsilon: 0.0,
                ..config()
            },
            "epsilon",
        ),
        (
            EngineConfig {
                delta: 1.0,
                ..config()
            },
            "delta",
        ),
        (
            EngineConfig {
                dataset_size: 0,
                ..config()
            },
            "dataset_size",
        ),
        (
            EngineConfig {
                expected_batch_size: 500.0,
                ..config()
            },
            "expected_batch_size",
        ),
        (
            EngineConfig {
                epochs: 0.0,
                ..config()
            },
            "epochs",
        ),
        (
            EngineConfig {
                max_grad_norm: -1.0,
                ..config()
            },
            "max_grad_norm",
        ),
    ];
    for (c, field) in cases {
        let e = PrivacyEngine::new(c, DpRng::insecure_seeded(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn an_insecure_stream_is_flagged_in_the_api_and_the_saved_state() {
    let seeded = PrivacyEngine::new(config(), DpRng::insecure_seeded(1)).unwrap();
    assert!(seeded.is_insecure());
    let json = serde_json::to_string(seeded.state()).unwrap();
    assert!(json.contains("\"insecure\":true"), "{json}");
    assert!(
        !PrivacyEngine::new(config(), DpRng::secure().unwrap())
            .unwrap()
            .is_insecure()
    );
}
