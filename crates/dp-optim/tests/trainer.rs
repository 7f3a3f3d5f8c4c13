//! DP optimisers, schedules and the joint checkpoint (model + optimiser + engine).

mod common;

use common::{B, Net, TappedLoss, data, net, weights};
use dp_optim::{
    DpOptimError, DpRng, DpTrainer, EngineConfig, LrSchedule, OptimizerConfig, TrainerConfig,
};

fn config(optimizer: OptimizerConfig) -> TrainerConfig {
    let mut engine = EngineConfig::new(3.0, 1e-5, 2.0, 100, 10.0, 1.0);
    engine.physical_batch_size = Some(4);
    // a fixed path: `Auto` picks by timing, and the two paths round differently
    engine.clipping_path = dp_optim::ClippingPath::Fast;
    TrainerConfig {
        engine,
        optimizer,
        schedule: LrSchedule::Cosine {
            lr: 0.05,
            min_lr: 0.005,
            warmup_steps: 2,
        },
    }
}

#[test]
fn a_checkpointed_run_resumes_bit_exactly() {
    let d = data(100, 8, 2.0);
    let initial = net(&Default::default());
    let optimizers = [
        OptimizerConfig::Sgd {
            momentum: 0.9,
            weight_decay: 1e-3,
        },
        OptimizerConfig::Adam {
            beta_1: 0.9,
            beta_2: 0.99,
            epsilon: 1e-8,
            weight_decay: 0.0,
        },
        OptimizerConfig::AdamW {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.05,
        },
    ];
    for optimizer in optimizers {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ckpt");
        let run = |interrupt: Option<usize>| {
            let mut trainer =
                DpTrainer::<B, Net<B>>::new(config(optimizer.clone()), DpRng::insecure_seeded(5))
                    .unwrap();
            let mut model = initial.clone();
            let mut loss = TappedLoss { data: &d };
            for step in 0..8 {
                if Some(step) == interrupt {
                    trainer.save_checkpoint(&model, &dir).unwrap();
                    drop(trainer);
                    // a fresh process: a newly initialised model of the same architecture
                    let (t, m) = DpTrainer::load_checkpoint(
                        &dir,
                        net(&Default::default()),
                        &Default::default(),
                    )
                    .unwrap();
                    (trainer, model) = (t, m);
                }
                model = trainer.step(model, &mut loss).unwrap();
            }
            (
                weights(&model),
                trainer.engine().state().ledger.clone(),
                trainer.engine().steps(),
            )
        };
        let (a, ledger_a, steps_a) = run(None);
        let (b, ledger_b, steps_b) = run(Some(5));
        assert_ne!(
            a,
            weights(&initial),
            "{optimizer:?}: training changed the model"
        );
        assert_eq!(a, b, "{optimizer:?}: bit-exact after resuming");
        assert_eq!(ledger_a, ledger_b);
        assert_eq!(steps_a, steps_b);
        assert_eq!(steps_a.0, 8);
    }
}

#[test]
fn a_checkpoint_interrupted_while_replacing_the_previous_one_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let model = net(&Default::default());
    let trainer = DpTrainer::<B, Net<B>>::new(
        config(OptimizerConfig::default()),
        DpRng::insecure_seeded(1),
    )
    .unwrap();
    trainer.save_checkpoint(&model, &dir).unwrap();
    trainer.save_checkpoint(&model, &dir).unwrap(); // replaces the first
    assert!(!tmp.path().join("ckpt.previous").exists());
    assert!(!tmp.path().join("ckpt.partial").exists());
    // a crash between the two renames leaves only `ckpt.previous`
    std::fs::rename(&dir, tmp.path().join("ckpt.previous")).unwrap();
    let (t, m) = DpTrainer::<B, Net<B>>::load_checkpoint(
        &dir,
        net(&Default::default()),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(weights(&m), weights(&model));
    assert_eq!(t.engine().steps(), (0, trainer.engine().steps().1));
    let err = DpTrainer::<B, Net<B>>::load_checkpoint(
        &tmp.path().join("none"),
        net(&Default::default()),
        &Default::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DpOptimError::Checkpoint { .. }), "{err}");
}

#[test]
fn a_failed_step_gives_the_model_back() {
    let d = data(100, 9, 2.0);
    let mut engine = EngineConfig::new(3.0, 1e-5, 0.05, 100, 10.0, 1.0); // one step
    engine.physical_batch_size = None;
    let mut trainer = DpTrainer::<B, Net<B>>::new(
        TrainerConfig {
            engine,
            optimizer: OptimizerConfig::default(),
            schedule: LrSchedule::Constant { lr: 0.1 },
        },
        DpRng::secure().unwrap(),
    )
    .unwrap();
    let mut loss = TappedLoss { data: &d };
    let model = trainer.step(net(&Default::default()), &mut loss).unwrap();
    assert!(!trainer.can_step());
    let before = weights(&model);
    let failed = trainer.step(model, &mut loss).unwrap_err();
    assert!(matches!(
        failed.error,
        DpOptimError::BudgetExhausted { steps: 1, .. }
    ));
    assert_eq!(weights(&failed.model), before);
}

#[test]
fn schedules() {
    let constant = LrSchedule::Constant { lr: 0.1 };
    assert_eq!(constant.lr(0, 10), 0.1);
    assert_eq!(constant.lr(9, 10), 0.1);
    let linear = LrSchedule::Linear {
        lr: 1.0,
        final_lr: 0.0,
        warmup_steps: 2,
    };
    let lrs: Vec<f64> = (0..7).map(|s| linear.lr(s, 7)).collect();
    assert_eq!(lrs, vec![0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]);
    let cosine = LrSchedule::Cosine {
        lr: 1.0,
        min_lr: 0.1,
        warmup_steps: 0,
    };
    assert!((cosine.lr(0, 11) - 1.0).abs() < 1e-12);
    assert!((cosine.lr(5, 11) - 0.55).abs() < 1e-12);
    assert!((cosine.lr(10, 11) - 0.1).abs() < 1e-12);
    assert!(LrSchedule::Constant { lr: 0.0 }.validate().is_err());
    let e = LrSchedule::Cosine {
        lr: 0.1,
        min_lr: 0.2,
        warmup_steps: 0,
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("min_lr"), "{e}");
}

#[test]
fn configs_read_from_text_with_defaults_and_errors_name_the_field() {
    let text = r#"{
        "engine": {"target_epsilon": 2.0, "delta": 1e-5, "epochs": 3, "dataset_size": 1000,
                   "expected_batch_size": 50, "max_grad_norm": 1.0, "physical_batch_size": 16},
        "optimizer": {"kind": "adam-w"},
        "schedule": {"kind": "linear", "lr": 0.001, "warmup_steps": 10}
    }"#;
    let config: TrainerConfig = serde_json::from_str(text).unwrap();
    assert_eq!(
        config.optimizer,
        OptimizerConfig::AdamW {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.01
        }
    );
    assert_eq!(config.engine.physical_batch_size, Some(16));
    let unknown = text.replace("\"lr\": 0.001", "\"learning_rate\": 0.001");
    assert!(serde_json::from_str::<TrainerConfig>(&unknown).is_err());
    let bad = TrainerConfig {
        optimizer: OptimizerConfig::Sgd {
            momentum: 1.5,
            weight_decay: 0.0,
        },
        ..config
    };
    let e = DpTrainer::<B, Net<B>>::new(bad, DpRng::secure().unwrap()).unwrap_err();
    assert!(e.to_string().contains("momentum"), "{e}");
}
