//! On-policy distillation: it resumes exactly from its checkpoint, it pulls the student
//! towards the teacher on the student's own samples, its settings are checked, and in the
//! pipeline it is a result row of its own that reruns and changes of its settings respect.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use causal_lm::{CausalLm, Gpt2, Tokenizer};
use distil_dp::blocks::TokenBlocks;
use distil_dp::config::{ModelConfig, OnPolicyConfig, PipelineConfig};
use distil_dp::distill::{Distillation, distill};
use distil_dp::dp_train::{Progress, fresh_model};
use distil_dp::on_policy::{OnPolicy, on_policy};
use distil_dp::pipeline::{Stage, run};
use distil_dp::prepare::tokenizer;
use distil_dp::progress::{OutputMode, Reporter, StepLine};
use distil_dp::report::TrainingKind;
use distil_dp::run_dir::RunDir;
use synth_gen::{ControlCodeFormat, GenerationConfig, SpecialTokens};
use train_kit::Cadence;

type B = Autodiff<Flex>;

fn small(n_embd: usize) -> ModelConfig {
    ModelConfig {
        n_embd,
        n_layer: 1,
        n_head: 2,
        ..ModelConfig::default()
    }
}

/// A tokenizer, two control-code prompts, and a teacher trained for a few steps on the
/// embedded texts (so that its distributions are far from a fresh student's).
fn setup(dir: &RunDir, config: &PipelineConfig) -> (Tokenizer, Vec<Vec<u32>>, Gpt2<Flex>) {
    let tok = tokenizer(config, dir).unwrap();
    let format = ControlCodeFormat::default();
    let prompts = ["Food", "Shopping"]
        .iter()
        .map(|v| {
            tok.encode(&format.prompt(&[("Business Category", *v)]))
                .unwrap()
        })
        .collect();
    let texts: Vec<String> = distil_dp::embedded::private_records(96)
        .into_iter()
        .map(|r| r.text)
        .collect();
    let device = Default::default();
    let data = TokenBlocks::<B>::new(&tok, &texts, 48, &device).unwrap();
    let teacher =
        fresh_model::<B>(&small(32), tok.vocab_size(), tok.eos_id(), 48, 1, &device).unwrap();
    let mut settings = config.student.clone();
    settings.batch_size = 16;
    let Progress::Done(teacher) = distill(
        &Distillation {
            settings: &settings,
            teacher: None,
            steps: Some(24),
            seed: 1,
        },
        teacher,
        &data,
        &dir.model_dir("teacher"),
        Cadence {
            checkpoint_every: 100,
            limit: None,
        },
        &mut |_| {},
    )
    .unwrap() else {
        panic!("no step limit");
    };
    (tok, prompts, teacher.valid())
}

#[test]
fn on_policy_resumes_exactly_and_pulls_the_student_towards_the_teacher_on_its_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("run"),
        ..PipelineConfig::default()
    };
    config.tokenizer.vocab_size = 300;
    let dir = RunDir::open(&config).unwrap();
    let (tok, prompts, teacher) = setup(&dir, &config);
    let device = Default::default();
    let student =
        fresh_model::<B>(&small(16), tok.vocab_size(), tok.eos_id(), 48, 2, &device).unwrap();
    let sampling = GenerationConfig::default();
    let special = SpecialTokens {
        eos: tok.eos_id(),
        pad: tok.pad_id(),
    };
    let settings = |steps| OnPolicyConfig {
        steps,
        samples_per_step: 8,
        max_new_tokens: 12,
        schedule: dp_optim::LrSchedule::Constant { lr: 3e-3 },
        ..OnPolicyConfig::default()
    };
    let short = settings(5);
    let train = |settings: &OnPolicyConfig,
                 student: Gpt2<B>,
                 name: &str,
                 limit,
                 log: &mut dyn FnMut(&StepLine)| {
        on_policy(
            &OnPolicy {
                settings,
                temperature: 1.0,
                sampling: &sampling,
                teacher: &teacher,
                prompts: &prompts,
                counts: &[3, 1],
                special,
                seed: 9,
            },
            student,
            &dir.model_dir(name),
            Cadence {
                checkpoint_every: 2,
                limit,
            },
            log,
        )
        .unwrap()
    };

    // (a) interrupted after 3 steps (a checkpoint at 2, then the pause's own), resumed from
    // another starting model: the same weights as the uninterrupted run, bit for bit
    let Progress::Done(whole) = train(&short, student.clone(), "whole", None, &mut |_| {}) else {
        panic!("done");
    };
    let Progress::Paused {
        taken: 3,
        planned: 5,
    } = train(&short, student.clone(), "parts", Some(3), &mut |_| {})
    else {
        panic!("paused after 3 of 5");
    };
    let other =
        fresh_model::<B>(&small(16), tok.vocab_size(), tok.eos_id(), 48, 3, &device).unwrap();
    let mut resumed_steps = Vec::new();
    let Progress::Done(parts) = train(&short, other, "parts", None, &mut |l| {
        resumed_steps.push(l.steps)
    }) else {
        panic!("resumed");
    };
    assert_eq!(resumed_steps, [4, 5]);
    let ids = burn::tensor::Tensor::<Flex, 2, burn::tensor::Int>::from_data(
        [[1i64, 5, 9, 40, 2, 7]],
        &device,
    );
    let la = whole.valid().forward_lm(ids.clone(), None, false).logits;
    let lb = parts.valid().forward_lm(ids.clone(), None, false).logits;
    assert_eq!((la.clone() - lb).abs().max().into_scalar(), 0.0);
    let l0 = student.valid().forward_lm(ids, None, false).logits;
    assert!((la - l0).abs().max().into_scalar() > 0.0, "it trained");
    // another plan in the same directory is refused, naming both
    let err = on_policy(
        &OnPolicy {
            settings: &settings(6),
            temperature: 1.0,
            sampling: &sampling,
            teacher: &teacher,
            prompts: &prompts,
            counts: &[3, 1],
            special,
            seed: 9,
        },
        student.clone(),
        &dir.model_dir("whole"),
        Cadence {
            checkpoint_every: 2,
            limit: None,
        },
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("5 steps") && err.contains("6"), "{err}");

    // (d) the loss of each step is the divergence on the student's fresh samples before its
    // update: it falls well below where it started
    let mut losses = Vec::new();
    let Progress::Done(_) = train(&settings(40), student, "learn", None, &mut |l| {
        losses.push(l.loss.unwrap())
    }) else {
        panic!("done");
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (first, last) = (mean(&losses[..5]), mean(&losses[35..]));
    assert!(
        first > 0.2,
        "a fresh student is far from the teacher: {losses:?}"
    );
    assert!(last < 0.25 * first, "{first} -> {last}: {losses:?}");
}

#[test]
fn bad_on_policy_settings_are_refused_naming_the_field_and_the_range() {
    for (set, field, range) in [
        (
            "student.on_policy.samples_per_step=0",
            "student.on_policy.samples_per_step",
            "[1, 65536]",
        ),
        (
            "student.on_policy.max_new_tokens=0",
            "student.on_policy.max_new_tokens",
            "[1, 16384]",
        ),
        (
            "student.on_policy.steps=2000000000",
            "student.on_policy.steps",
            "[0, 10^9]",
        ),
    ] {
        let e = PipelineConfig::from_toml("", &[set.to_string()])
            .unwrap_err()
            .to_string();
        assert!(e.contains(field) && e.contains(range), "{set}: {e}");
    }
    // no room after the control code: only checked when it is on
    let long = "[teacher]\nblock_size = 64\n[student.on_policy]\nmax_new_tokens = 64\n";
    assert!(PipelineConfig::from_toml(long, &[]).is_ok());
    let e = PipelineConfig::from_toml(long, &["student.on_policy.steps=3".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("student.on_policy.max_new_tokens") && e.contains("teacher.block_size"),
        "{e}"
    );
    let e = PipelineConfig::from_toml(
        "[student.on_policy.divergence]\nkind = \"jsd\"\nbeta = 1.5\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("student.on_policy.divergence.beta"), "{e}");
    let e = PipelineConfig::from_toml("[student.on_policy]\nstep = 3\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("step"), "unknown fields are refused: {e}");
    assert_eq!(PipelineConfig::default().student.on_policy.steps, 0, "off");
}

const TINY: &str = r#"
insecure_noise_seed = 7
checkpoint_every = 2
[data]
max_records = 160
[tokenizer]
vocab_size = 400
[teacher]
block_size = 64
epochs = 1.0
expected_batch_size = 24
clipping_path = "fast"
[teacher.model]
n_embd = 32
n_layer = 1
n_head = 2
[generation]
samples = 48
[generation.sampling]
max_new_tokens = 16
[student]
epochs = 1.0
batch_size = 16
[student.model]
n_embd = 16
n_layer = 1
n_head = 2
[student.on_policy]
steps = 4
samples_per_step = 4
max_new_tokens = 12
[baselines]
dp_sgd_student = false
dpkd = false
synthetic_hard_labels = false
"#;

#[test]
fn the_pipeline_reports_the_on_policy_student_next_to_the_one_it_starts_from() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let config = |sets: &[&str]| {
        let mut all = vec![format!("output_dir={:?}", out.display().to_string())];
        all.extend(sets.iter().map(|s| s.to_string()));
        PipelineConfig::from_toml(TINY, &all).unwrap()
    };
    let mut quiet = Reporter::detached(OutputMode::Quiet);
    let first = run(&config(&[]), &Stage::ALL, &mut quiet).unwrap().unwrap();
    let kinds: Vec<TrainingKind> = first.results.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            TrainingKind::DpTeacher,
            TrainingKind::DistilDp,
            TrainingKind::OnPolicy
        ]
    );
    let row = &first.results[2];
    assert_eq!(row.name, "DistilDP student + on-policy");
    assert!(row.perplexity.is_finite() && row.perplexity > 1.0);
    assert_ne!(row.perplexity, first.results[1].perplexity, "it trained");
    assert!(
        first
            .results_table()
            .contains("| DistilDP student + on-policy |")
    );
    assert!(out.join("on-policy/on-policy.json").is_file());
    assert!(out.join("models/on-policy/model.json").is_file());
    let run_json = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(run_json.contains("on-policy student"), "{run_json}");

    // rerun, same settings: the identity check passes and nothing is trained again
    let student_state = std::fs::read(out.join("student/distill.json")).unwrap();
    let again = run(&config(&[]), &Stage::ALL, &mut quiet).unwrap().unwrap();
    let perplexities =
        |r: &distil_dp::report::Report| r.results.iter().map(|m| m.perplexity).collect::<Vec<_>>();
    // (perplexities only: the teacher's DP summary may differ in σ's last bit between the
    // run that trained it and one that loads it, which is not this test's concern)
    assert_eq!(perplexities(&again), perplexities(&first));

    // other on-policy settings: the on-policy student is made again, the distilled student
    // is kept (its identity does not include `[student.on_policy]`)
    let more = run(
        &config(&["student.on_policy.steps=6"]),
        &Stage::ALL,
        &mut quiet,
    )
    .unwrap()
    .unwrap();
    assert_eq!(more.results[1].perplexity, first.results[1].perplexity);
    assert_ne!(more.results[2].perplexity, first.results[2].perplexity);
    assert_eq!(
        std::fs::read(out.join("student/distill.json")).unwrap(),
        student_state
    );
    // only evaluating with other on-policy settings is refused, naming the part
    let err = run(
        &config(&["student.on_policy.steps=7"]),
        &[Stage::Evaluate],
        &mut quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("on-policy student"), "{err}");
    // off again: the report has no on-policy row, and nothing else changed
    let off = run(
        &config(&["student.on_policy.steps=0"]),
        &Stage::ALL,
        &mut quiet,
    )
    .unwrap()
    .unwrap();
    assert_eq!(perplexities(&off), perplexities(&first)[..2]);
}
