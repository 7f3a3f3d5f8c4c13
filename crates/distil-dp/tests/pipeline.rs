//! The whole pipeline on a very small configuration: every stage, the report and its ledger,
//! a run killed twice and resumed, and stage commands refusing to run out of order.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use distil_dp::config::PipelineConfig;
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

/// Starts the CLI on `config` and kills it once `marker` exists under `dir` (or lets it end).
fn run_and_kill_at(config: &Path, dir: &Path, marker: &str) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_distil-dp"))
        .args(["run", "--output", "quiet", "--config"])
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
