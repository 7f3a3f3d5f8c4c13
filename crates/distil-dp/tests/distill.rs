//! Stage 3: distillation on the synthetic corpus resumes exactly from its checkpoint.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use causal_lm::CausalLm;
use distil_dp::blocks::TokenBlocks;
use distil_dp::config::{ModelConfig, PipelineConfig};
use distil_dp::distill::{Distillation, distill};
use distil_dp::dp_train::{Progress, fresh_model};
use distil_dp::prepare::tokenizer;
use distil_dp::progress::StepLine;
use distil_dp::run_dir::RunDir;
use train_kit::Cadence;

type B = Autodiff<Flex>;

#[test]
fn an_interrupted_distillation_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("run"),
        ..PipelineConfig::default()
    };
    config.tokenizer.vocab_size = 300;
    config.student.epochs = 1.0;
    config.student.batch_size = 16;
    let dir = RunDir::open(&config).unwrap();
    let tok = tokenizer(&config, &dir).unwrap();
    let texts: Vec<String> = distil_dp::embedded::private_records(80)
        .into_iter()
        .map(|r| r.text)
        .collect();
    let device = Default::default();
    let data = TokenBlocks::<B>::new(&tok, &texts, 32, &device).unwrap();
    let small = |n_embd| ModelConfig {
        n_embd,
        n_layer: 1,
        n_head: 2,
        ..ModelConfig::default()
    };
    let teacher = fresh_model::<B>(&small(32), tok.vocab_size(), tok.eos_id(), 32, 1, &device)
        .unwrap()
        .valid();
    let student =
        fresh_model::<B>(&small(16), tok.vocab_size(), tok.eos_id(), 32, 2, &device).unwrap();
    let (ids, _) = data.rows(&[0, 1]);
    let mut lines = Vec::new();
    let mut log = |v: &StepLine| lines.push(v.to_json());

    let run = |student, name: &str, limit, log: &mut dyn FnMut(&StepLine)| {
        distill(
            &Distillation {
                settings: &config.student,
                teacher: Some(&teacher),
                steps: None,
                seed: 9,
            },
            student,
            &data,
            &dir.model_dir(name),
            Cadence {
                checkpoint_every: 2,
                limit,
            },
            log,
        )
        .unwrap()
    };
    let Progress::Done(a) = run(student.clone(), "whole", None, &mut log) else {
        panic!("done");
    };
    let Progress::Paused {
        taken: 2,
        planned: 5,
    } = run(student.clone(), "parts", Some(2), &mut log)
    else {
        panic!("80 rows / 16 per step = 5 steps, paused after 2");
    };
    let other =
        fresh_model::<B>(&small(16), tok.vocab_size(), tok.eos_id(), 32, 3, &device).unwrap();
    let Progress::Done(b) = run(other, "parts", None, &mut log) else {
        panic!("resumed");
    };
    let la = a
        .valid()
        .forward_lm(ids.clone().inner(), None, false)
        .logits;
    let lb = b.valid().forward_lm(ids.inner(), None, false).logits;
    assert_eq!((la - lb).abs().max().into_scalar(), 0.0);
    assert!(
        lines
            .iter()
            .all(|l| l["loss"].as_f64().unwrap().is_finite())
    );

    // α > 0: the last hidden states are pulled together (equal widths), else refused
    let mut with_mse = config.student.clone();
    with_mse.loss.alpha = 1.0;
    with_mse.epochs = 0.2;
    let mut mse_lines = Vec::new();
    let same_width =
        fresh_model::<B>(&small(32), tok.vocab_size(), tok.eos_id(), 32, 4, &device).unwrap();
    let mut plain = with_mse.clone();
    plain.loss.alpha = 0.0;
    for (settings, name) in [(&with_mse, "mse"), (&plain, "plain")] {
        distill(
            &Distillation {
                settings,
                teacher: Some(&teacher),
                steps: None,
                seed: 9,
            },
            same_width.clone(),
            &data,
            &dir.model_dir(name),
            Cadence {
                checkpoint_every: 2,
                limit: None,
            },
            &mut |l: &StepLine| mse_lines.push(l.loss.unwrap()),
        )
        .unwrap();
    }
    // same start, same batch: the first step's loss differs by the (positive) MSE term
    let n = mse_lines.len() / 2;
    assert!(mse_lines[0] > mse_lines[n] + 1e-6, "{mse_lines:?}");
    let narrow =
        fresh_model::<B>(&small(16), tok.vocab_size(), tok.eos_id(), 32, 5, &device).unwrap();
    let err = distill(
        &Distillation {
            settings: &with_mse,
            teacher: Some(&teacher),
            steps: None,
            seed: 9,
        },
        narrow,
        &data,
        &dir.model_dir("narrow"),
        Cadence {
            checkpoint_every: 2,
            limit: None,
        },
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("student.loss.alpha"), "{err}");

    let empty = TokenBlocks::<B>::new(&tok, &Vec::<String>::new(), 32, &device);
    if let Ok(empty) = empty {
        let e = distill(
            &Distillation {
                settings: &config.student,
                teacher: Some(&teacher),
                steps: None,
                seed: 9,
            },
            a,
            &empty,
            &dir.model_dir("e"),
            Cadence {
                checkpoint_every: 2,
                limit: None,
            },
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("synthetic corpus"), "{e}");
    }
}

/// `student.prompt = "context"`: the rows are `control code + text` and the loss leaves the
/// code's positions out (the first logged loss is the cross-entropy over the text's
/// predictions only, not over every real token).
#[test]
fn with_codes_in_context_the_loss_leaves_the_codes_out() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("run"),
        ..PipelineConfig::default()
    };
    config.tokenizer.vocab_size = 300;
    config.student.batch_size = 16;
    let dir = RunDir::open(&config).unwrap();
    let tok = tokenizer(&config, &dir).unwrap();
    let records = distil_dp::embedded::private_records(16);
    let format = &config.data.control_code;
    let prompts: Vec<String> = records.iter().map(|r| format.prompt(&r.labels)).collect();
    let texts: Vec<String> = records.iter().map(|r| r.text.clone()).collect();
    let device = Default::default();
    let data = TokenBlocks::<B>::with_prompts(&tok, &prompts, &texts, 48, &device).unwrap();
    let model = ModelConfig {
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        ..ModelConfig::default()
    };
    let student = fresh_model::<B>(&model, tok.vocab_size(), tok.eos_id(), 48, 2, &device).unwrap();
    let all: Vec<usize> = (0..16).collect();
    let (ids, mask) = data.rows(&all);
    let loss_mask = data.loss_mask(&all);
    let logits = student
        .valid()
        .forward_lm(ids.clone().inner(), Some(mask.clone().inner()), false)
        .logits;
    let ce = |m: burn::tensor::Tensor<_, 2, burn::tensor::Int>| {
        let n = 47;
        let predicted = m.clone().narrow(1, 0, n) * m.narrow(1, 1, n);
        kd_losses::cross_entropy(
            logits.clone().narrow(1, 0, n),
            ids.clone().inner().narrow(1, 1, n),
            Some(predicted),
            0.0,
        )
        .unwrap()
        .mean()
        .into_scalar()
    };
    let text_only = ce(loss_mask.inner());
    let every_token = ce(mask.inner());
    assert!((text_only - every_token).abs() > 1e-4);
    let mut first = None;
    distill(
        &Distillation {
            settings: &config.student,
            teacher: None,
            steps: Some(1),
            seed: 9,
        },
        student,
        &data,
        &dir.model_dir("context"),
        Cadence {
            checkpoint_every: 1,
            limit: None,
        },
        &mut |l: &StepLine| first = first.or(l.loss),
    )
    .unwrap();
    let first = first.unwrap();
    assert!(
        (first - text_only as f64).abs() < 1e-4,
        "logged {first}, text-only {text_only}, every token {every_token}"
    );
}
