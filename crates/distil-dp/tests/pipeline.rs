//! The whole pipeline on a very small configuration: every stage, the report and its ledger,
//! a run killed twice and resumed, and stage commands refusing to run out of order.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{CausalLm, Gpt2, LoraGpt2};
use distil_dp::config::{DpLoraConfig, PipelineConfig};
use distil_dp::dp_train::{DpTraining, fresh_model, plan};
use distil_dp::pipeline::trainings::Architecture;
use distil_dp::pipeline::{Stage, run};
use distil_dp::progress::{OutputMode, Reporter};
use distil_dp::report::{Report, TrainingKind};
use dp_accounting::{PrivacyLedger, PrivacyLedger as Ledger};

/// Tiny models, 300 records, reproducible (insecure noise seed, fixed clipping path).
const TINY: &str = r#"
insecure_noise_seed = 7
checkpoint_every = 2
[data]
max_records = 300
[tokenizer]
vocab_size = 400
[teacher]
block_size = 64
epochs = 1.5
expected_batch_size = 24
clipping_path = "fast"
[teacher.model]
n_embd = 32
n_layer = 1
n_head = 2
[generation]
samples = 120
[generation.sampling]
max_new_tokens = 24
[student]
epochs = 1.0
batch_size = 16
[student.model]
n_embd = 16
n_layer = 1
n_head = 2
"#;

fn tiny(dir: &Path) -> PipelineConfig {
    PipelineConfig::from_toml(
        TINY,
        &[format!("output_dir={:?}", dir.display().to_string())],
    )
    .unwrap()
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.with_extension("toml");
    std::fs::write(
        &path,
        format!("output_dir = {:?}\n{TINY}", dir.display().to_string()),
    )
    .unwrap();
    path
}

fn read_report(dir: &Path) -> Report {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn the_whole_pipeline_runs_and_its_report_accounts_for_every_release() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = tiny(&tmp.path().join("run"));
    config.teacher.model.pretrain_steps = 3; // stage 0 on the public corpus
    let metrics = distil_dp::run_dir::RunDir::open(&config)
        .unwrap()
        .metrics_path();
    let mut reporter = Reporter::new(OutputMode::Quiet, &metrics).unwrap();
    let report = run(&config, &Stage::ALL, &mut reporter)
        .unwrap()
        .expect("evaluation ran");
    let root = &config.output_dir;
    for file in [
        "config.toml",
        "tokenizer.json",
        "label-histogram.json",
        "synthetic.jsonl",
        "report.json",
        "report.md",
        "loss-curves.svg",
        "models/student/model.json",
        "models/student/tokenizer.json",
        "models/teacher/model.bpk",
        "pretrain-teacher/distill.json",
    ] {
        assert!(
            root.join(file).is_file(),
            "{file} missing: {:?}",
            std::fs::read_dir(root.join(file).parent().unwrap())
                .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
        );
    }
    assert_eq!(
        std::fs::read_to_string(root.join("report.json")).unwrap(),
        serde_json::to_string_pretty(&report).unwrap(),
        "report.json is the returned report"
    );

    // every model, a perplexity better than uniform over the vocabulary
    let kinds: Vec<TrainingKind> = report.results.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            TrainingKind::DpTeacher,
            TrainingKind::DistilDp,
            TrainingKind::DpSgdStudent,
            TrainingKind::Dpkd,
            TrainingKind::SyntheticHardLabels
        ]
    );
    for r in &report.results {
        assert!(
            r.perplexity.is_finite() && r.perplexity > 1.0 && r.perplexity < 400.0,
            "{}: {}",
            r.name,
            r.perplexity
        );
    }
    // the teacher check: the held-out public perplexity of every model and the prompt budget
    // (no private split is read for either)
    assert!(
        report.results.iter().all(|r| r
            .public_perplexity
            .is_some_and(|p| p.is_finite() && p > 1.0)),
        "{:?}",
        report.results
    );
    assert_eq!(report.pretraining.len(), 1, "{:?}", report.pretraining);
    assert_eq!(
        (
            report.pretraining[0].name.as_str(),
            report.pretraining[0].steps
        ),
        ("pretrain-teacher", 3)
    );
    assert!(report.pretraining[0].public_perplexity.is_finite());
    let budget = report.prompt_budget.expect("a prompt budget");
    assert!(budget.longest_code_tokens > 0 && budget.codes > 0);
    assert_eq!(
        budget.text_tokens_left,
        budget.block_size - budget.longest_code_tokens
    );

    // the ledger: DistilDP = the histogram release + the teacher's checkpointed steps
    let p = &report.privacy;
    let histogram: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("label-histogram.json")).unwrap())
            .unwrap();
    let histogram: Ledger = serde_json::from_value(histogram["ledger"].clone()).unwrap();
    let trainer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("teacher/trainer.json")).unwrap())
            .unwrap();
    let engine: PrivacyLedger =
        serde_json::from_value(trainer["engine"]["ledger"].clone()).unwrap();
    let distil = &p.releases[0];
    assert_eq!(distil.name, "DistilDP");
    let events = |l: &Ledger| {
        l.entries()
            .iter()
            .map(|e| e.event.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        events(&engine),
        events(&distil.ledger),
        "what the stages spent"
    );
    assert_eq!(
        events(&histogram),
        events(&distil.ledger)[..1].to_vec(),
        "the histogram is the first release"
    );
    let labels: Vec<&str> = distil
        .ledger
        .entries()
        .iter()
        .map(|e| e.label.as_str())
        .collect();
    assert_eq!(labels, ["label-histogram", "teacher"]);
    let accountant = config.privacy.accountant.build();
    let eps = distil.ledger.epsilon(&accountant, p.delta).unwrap().upper;
    assert_eq!(eps, distil.epsilon);
    assert!(eps <= 2.0 && eps > 1.9, "{eps}");
    assert_eq!(
        p.delta,
        distil_dp::pipeline::default_delta(report.records.train)
    );
    assert!(p.delta < 1.0 / report.records.train as f64);
    let teacher_dp = report.results[0].dp.as_ref().unwrap();
    assert_eq!(teacher_dp.steps, teacher_dp.planned_steps);
    // without [teacher.lora], every DP training trains every parameter, and the report says so
    assert_every_dp_training_reported(&report);
    assert!(
        report
            .dp_trainings
            .iter()
            .all(|t| t.lora.is_none() && t.trainable_parameters == t.parameters)
    );
    // the baselines: each its own release at ε; all together cost more
    assert_eq!(p.releases.len(), 3);
    for r in &p.releases {
        assert!(r.epsilon <= 2.0 + 1e-9, "{}: {}", r.name, r.epsilon);
    }
    assert!(p.all_releases_epsilon > 2.0);
    assert!(p.insecure_noise);
    let md = std::fs::read_to_string(root.join("report.md")).unwrap();
    assert!(
        md.contains("INSECURE") && md.contains("| DistilDP student |"),
        "{md}"
    );
    assert!(
        md.contains("## Is the teacher worth distilling?")
            && md.contains("public perplexity")
            && md.contains("Prompt budget:"),
        "{md}"
    );

    // the synthetic corpus: its statistics recomputed from synthetic.jsonl, every sample
    // generated either written or dropped for a reason, and the section in report.md
    let corpus = report.synthetic_corpus.as_ref().expect("corpus statistics");
    let lines: Vec<serde_json::Map<String, serde_json::Value>> =
        std::fs::read_to_string(root.join("synthetic.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(corpus.generated, 120);
    assert_eq!(corpus.written, lines.len() as u64);
    assert_eq!(corpus.stats.overall.samples, lines.len() as u64);
    assert_eq!(corpus.written + corpus.dropped.total(), corpus.generated);
    let drop_log = std::fs::read_to_string(root.join("synthetic.jsonl.dropped")).unwrap();
    assert_eq!(drop_log.lines().count() as u64, corpus.dropped.total());
    assert_eq!(corpus.stats.budget, 24);
    let chars: usize = lines
        .iter()
        .map(|l| l["text"].as_str().unwrap().chars().count())
        .sum();
    let mean_chars = chars as f64 / lines.len() as f64;
    assert!((corpus.stats.overall.mean_chars - mean_chars).abs() < 1e-9);
    assert!(corpus.stats.overall.mean_tokens > 0.0);
    // per code: as many samples as the file has lines with the code's labels, and the
    // first ones by index shown
    let labels = |l: &serde_json::Map<String, serde_json::Value>| {
        let mut v: Vec<(String, String)> = l
            .iter()
            .filter(|(k, _)| *k != "index" && *k != "text")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    };
    assert!(
        corpus.stats.per_code.len() > 1,
        "{:?}",
        corpus.stats.per_code
    );
    for (code, shown) in corpus.stats.per_code.iter().zip(&corpus.examples) {
        let of_code: Vec<u64> = lines
            .iter()
            .filter(|l| labels(l) == code.labels)
            .map(|l| l["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            code.stats.samples,
            of_code.len() as u64,
            "{:?}",
            code.labels
        );
        assert_eq!(shown.labels, code.labels);
        let first: Vec<u64> = shown.samples.iter().map(|e| e.index).collect();
        assert_eq!(first, of_code[..of_code.len().min(2)]);
    }
    let per_code: u64 = corpus.stats.per_code.iter().map(|c| c.stats.samples).sum();
    assert_eq!(per_code, corpus.written);
    let section = md
        .split("## Synthetic corpus")
        .nth(1)
        .expect("a corpus section");
    assert!(section.contains(&corpus.budget_line()), "{section}");
    assert!(
        section.contains(&corpus.drops_line()) && section.contains("| **all** | "),
        "{section}"
    );
    assert!(
        section.contains(&format!(
            " {} samples written of 120 generated",
            corpus.written
        )),
        "{section}"
    );

    // the report says what the guarantee is about and what was actually used
    for said in [
        "Privacy unit",
        "Treated as public",
        "Safe to publish",
        "embedded public corpus",
    ] {
        assert!(
            p.notes.iter().any(|n| n.contains(said)),
            "{said}: {:?}",
            p.notes
        );
    }
    // no DP training keeps its noise stream or sampling key once finished
    for d in [
        "teacher",
        "baseline-dp-sgd-student",
        "baseline-dpkd-teacher",
        "baseline-dpkd-student",
    ] {
        assert!(root.join(d).join("trainer.json").exists(), "{d}");
        assert!(
            !root.join(d).join("secrets.json").exists(),
            "{d} kept its secrets"
        );
    }

    let svg = std::fs::read_to_string(root.join("loss-curves.svg")).unwrap();
    assert!(svg.contains(">pretrain-teacher<") && svg.contains(">student<"));

    // a checkpoint as the starting teacher (with its tokenizer); a larger tokenizer is refused
    let models = root.join("models");
    let mut from_checkpoint = tiny(&tmp.path().join("from-checkpoint"));
    from_checkpoint.teacher.model.checkpoint = Some(models.join("student"));
    from_checkpoint.tokenizer.path = Some(models.join("student/tokenizer.json"));
    let mut quiet = Reporter::detached(OutputMode::Quiet);
    assert!(
        run(&from_checkpoint, &[Stage::Teacher], &mut quiet)
            .unwrap()
            .is_none()
    );
    let mut too_big = tiny(&tmp.path().join("too-big"));
    too_big.teacher.model.checkpoint = Some(models.join("student"));
    too_big.tokenizer.vocab_size = 600;
    let err = run(&too_big, &[Stage::Teacher], &mut quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer has") && err.contains("tokenizer.path"),
        "{err}"
    );

    // no private text in what the run logs
    let splits = distil_dp::prepare::load_splits(&config).unwrap();
    let metrics = std::fs::read_to_string(metrics).unwrap();
    let report_text = std::fs::read_to_string(root.join("report.json")).unwrap();
    for r in splits.train.iter().chain(&splits.test).take(100) {
        assert!(!metrics.contains(&r.text) && !report_text.contains(&r.text));
    }
}

/// The report lists every DP training of the run, DPKD's teacher included, in the run's order.
fn assert_every_dp_training_reported(report: &Report) {
    let trainings: Vec<&str> = report
        .dp_trainings
        .iter()
        .map(|t| t.training.as_str())
        .collect();
    assert_eq!(
        trainings,
        ["teacher", "dp-sgd-student", "dpkd-teacher", "dpkd-student"]
    );
}

/// Starts the CLI on `config` and kills it once `marker` exists under `dir` (or lets it end).
fn run_and_kill_at(config: &Path, dir: &Path, marker: &str) -> bool {
    command_killed_at(&["run"], config, dir, marker)
}

/// Starts `distil-dp ARGS` on `config` and kills it once `marker` exists under `dir` (or lets
/// it end).
fn command_killed_at(args: &[&str], config: &Path, dir: &Path, marker: &str) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_distil-dp"))
        .args(args)
        .args(["--output", "quiet", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the run failed");
            return false;
        }
        if dir.join(marker).exists() {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "run hangs");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_run_killed_twice_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let cut = tmp.path().join("cut");
    let (whole_config, cut_config) = (write_config(&whole), write_config(&cut));
    assert!(!run_and_kill_at(&whole_config, &whole, "no-such-file"));
    // killed after the teacher's first checkpoint (step 2 of 15), then during the student
    let killed_teacher = run_and_kill_at(&cut_config, &cut, "teacher/trainer.json");
    let killed_student = run_and_kill_at(&cut_config, &cut, "student/distill.json");
    assert!(!run_and_kill_at(&cut_config, &cut, "no-such-file"));
    assert!(
        killed_teacher && killed_student,
        "both kills happened mid-run"
    );

    let (a, b) = (read_report(&whole), read_report(&cut));
    for (x, y) in a.results.iter().zip(&b.results) {
        assert_eq!(x.perplexity, y.perplexity, "{}", x.name);
    }
    assert_eq!(
        a.privacy.releases, b.privacy.releases,
        "no step lost or repeated"
    );
    assert!(a.synthetic_corpus.is_some());
    assert_eq!(
        a.synthetic_corpus, b.synthetic_corpus,
        "the resumed run recomputes the same corpus statistics"
    );
    let teacher = b.results[0].dp.as_ref().unwrap();
    assert_eq!(teacher.steps, teacher.planned_steps);
}

#[test]
fn a_stage_refuses_to_run_before_the_stage_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny(&tmp.path().join("run"));
    let mut reporter = Reporter::detached(OutputMode::Quiet);
    for stage in [Stage::Generate, Stage::Student, Stage::Evaluate] {
        let err = run(&config, &[stage], &mut reporter)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("run `distil-dp teacher`"),
            "{}: {err}",
            stage.name()
        );
    }
    let err = run(&config, &[Stage::Baselines], &mut reporter)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`generate`"), "{err}");
    // nothing private was released by the refused stages
    assert!(!config.output_dir.join("label-histogram.json").exists());

    // an empty data file: a clear error naming it, before anything is trained
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let mut on_empty = tiny(&tmp.path().join("empty-run"));
    on_empty.data.path = Some(empty.clone());
    let err = run(&on_empty, &Stage::ALL, &mut reporter)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty.jsonl"), "{err}");
}

type B = Autodiff<Flex>;

/// The starting teacher of `config`'s run (fresh from the public seed, no pre-training) and
/// its DP-LoRA teacher as checkpointed (base and adapters).
fn lora_teacher(config: &PipelineConfig) -> (Gpt2<B>, LoraGpt2<B>) {
    let dir = distil_dp::run_dir::RunDir::open(config).unwrap();
    let tok = distil_dp::prepare::load_tokenizer(config, &dir).unwrap();
    let device = Default::default();
    let start = fresh_model::<B>(
        &config.teacher.model,
        tok.vocab_size(),
        tok.eos_id(),
        config.teacher.block_size,
        config.seed + Architecture::Teacher.seed_offset(),
        &device,
    )
    .unwrap();
    // the template's values do not matter: the checkpoint replaces them
    let template = config.teacher.lora.adapters(0).unwrap();
    let template = template.init(start.clone(), &device).unwrap();
    let (_, teacher) = dp_optim::DpTrainer::<B, LoraGpt2<B>>::load_checkpoint(
        &dir.model_dir("teacher"),
        template,
        &device,
    )
    .unwrap();
    (start, teacher)
}

/// `model`'s logits on a fixed row of tokens.
fn logits_of(model: &Gpt2<B>) -> Vec<f32> {
    let ids: Vec<i64> = (0..24).map(|i| (i * 37 % 300) as i64).collect();
    let ids = Tensor::<Flex, 2, Int>::from_data(TensorData::new(ids, [1, 24]), &Default::default());
    model
        .valid()
        .forward_lm(ids, None, false)
        .logits
        .into_data()
        .to_vec()
        .unwrap()
}

#[test]
fn a_dp_lora_run_trains_adapters_only_at_the_budget_of_full_fine_tuning() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = tiny(&tmp.path().join("run"));
    config.teacher.lora.rank = 2;
    config.baselines.synthetic_hard_labels = false;
    let mut reporter = Reporter::detached(OutputMode::Quiet);
    let report = run(&config, &Stage::ALL, &mut reporter)
        .unwrap()
        .expect("evaluation ran");
    let root = &config.output_dir;

    // every DP training trained rank-2 adapters (α = 2·rank) on all four projections
    // the report says so, with the trained share of the parameters
    assert_every_dp_training_reported(&report);
    for t in &report.dp_trainings {
        let lora = t.lora.as_ref().expect("LoRA");
        assert_eq!((lora.rank, lora.alpha, lora.projections.len()), (2, 4.0, 4));
        assert!(t.trainable_parameters < t.parameters / 10, "{t:?}");
    }
    // the teacher (1 block, 32 wide, MLP 128): r·Σ(d_in + d_out) over its projections
    assert_eq!(
        report.dp_trainings[0].trainable_parameters,
        2 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32))
    );
    let md = std::fs::read_to_string(root.join("report.md")).unwrap();
    assert!(
        md.contains(
            "| teacher | DP-LoRA, rank 2, α = 4 (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj)"
        ) && md.contains("post-processing: the same (ε, δ)"),
        "{md}"
    );

    // the ledgers are those planned for full fine-tuning: LoRA changes what is trained, not
    // q, σ or the steps
    let mut full = config.clone();
    full.teacher.lora = DpLoraConfig::default();
    let p = &report.privacy;
    let planned = |label: &str, prior: dp_accounting::PrivacyLedger| {
        let training = DpTraining {
            label,
            settings: &full.teacher,
            epsilon: full.privacy.epsilon,
            delta: p.delta,
            accountant: full.privacy.accountant,
            insecure_noise_seed: None,
            checkpoint_every: 1,
            workers: 1,
            processes: None,
            dataset: None,
        };
        plan(&training, report.records.train, prior).unwrap()
    };
    let histogram = p.label_release.ledger.clone();
    assert_eq!(p.releases[0].ledger, planned("teacher", histogram).ledger);
    let student = planned("dp-sgd-student", PrivacyLedger::new());
    assert_eq!(p.releases[1].ledger, student.ledger);
    assert_eq!(
        report.results[2].dp.as_ref().unwrap().noise_multiplier,
        student.noise_multiplier
    );
    assert!(p.releases.iter().all(|r| r.epsilon <= 2.0 + 1e-9));

    // the checkpoint holds the frozen base untouched and the trained adapters; the exported
    // teacher is a plain GPT-2: their merge, unlike the starting model
    let (start, teacher) = lora_teacher(&config);
    assert_eq!(logits_of(&teacher.base), logits_of(&start), "base frozen");
    let merged = logits_of(&teacher.merge());
    assert_ne!(merged, logits_of(&start), "the adapters trained");
    let exported =
        causal_lm::checkpoint::load_any::<B>(&root.join("models/teacher"), &Default::default())
            .unwrap();
    let worst = logits_of(&exported)
        .iter()
        .zip(&merged)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "{worst}");

    // a starting checkpoint narrower than the rank is refused before any release
    let mut narrow = tiny(&tmp.path().join("narrow"));
    narrow.teacher.model.checkpoint = Some(root.join("models/student"));
    narrow.tokenizer.path = Some(root.join("models/student/tokenizer.json"));
    narrow.teacher.lora.rank = 32;
    narrow.baselines.dp_sgd_student = false;
    narrow.baselines.dpkd = false;
    let err = run(&narrow, &[Stage::Teacher], &mut reporter)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("teacher.lora.rank") && err.contains("teacher.model.checkpoint"),
        "{err}"
    );
    assert!(!narrow.output_dir.join("label-histogram.json").exists());
}

#[test]
fn a_dp_lora_teacher_killed_mid_training_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let cut = tmp.path().join("cut");
    let cut_config = write_config(&cut);
    let lora = ["teacher", "--set", "teacher.lora.rank=2"];
    let killed = command_killed_at(&lora, &cut_config, &cut, "teacher/trainer.json");
    assert!(!command_killed_at(&lora, &cut_config, &cut, "no-such-file"));
    assert!(killed, "killed mid-teacher");
    let mut config = tiny(&whole);
    config.teacher.lora.rank = 2;
    let mut reporter = Reporter::detached(OutputMode::Quiet);
    assert!(
        run(&config, &[Stage::Teacher], &mut reporter)
            .unwrap()
            .is_none()
    );

    let (_, a) = lora_teacher(&config);
    let (_, b) = lora_teacher(&PipelineConfig {
        output_dir: cut,
        ..config.clone()
    });
    let forward = |m: &LoraGpt2<B>| {
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new((0..24).map(|i| i * 11 % 300).collect::<Vec<i64>>(), [1, 24]),
            &Default::default(),
        );
        m.forward(ids).into_data().to_vec::<f32>().unwrap()
    };
    assert_eq!(forward(&a), forward(&b), "bit-identical adapted teachers");
    assert_eq!(logits_of(&a.merge()), logits_of(&b.merge()));

    // LoRA is part of the release's identity: turning it off or changing it is refused
    for change in [
        DpLoraConfig::default(),
        DpLoraConfig {
            rank: 2,
            alpha: Some(8.0),
            ..DpLoraConfig::default()
        },
    ] {
        let mut other = config.clone();
        other.teacher.lora = change;
        let err = run(&other, &[Stage::Teacher], &mut reporter)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`teacher.lora`") && err.contains("rank 2, alpha 4"),
            "{err}"
        );
    }
}
