//! Privacy soundness around the releases: every check passes before the first private
//! release (a refused run leaves nothing released and a corrected rerun succeeds in the same
//! directory), stages are bound to their settings and data, the default δ is below 1/N, and
//! warnings reach the user.

use std::path::{Path, PathBuf};

use distil_dp::config::PipelineConfig;
use distil_dp::pipeline::{Stage, default_delta, run};
use distil_dp::progress::{OutputMode, Reporter};

/// Tiny teacher stage on a labelled CSV (about a second).
const TINY: &str = r#"
insecure_noise_seed = 3
checkpoint_every = 2
[tokenizer]
vocab_size = 300
[teacher]
block_size = 48
epochs = 0.3
expected_batch_size = 16
clipping_path = "generic"
[teacher.model]
n_embd = 16
n_layer = 1
n_head = 2
[generation]
samples = 8
batch_size = 8
[generation.sampling]
max_new_tokens = 8
[student]
epochs = 0.2
batch_size = 8
[student.model]
n_embd = 16
n_layer = 1
n_head = 2
"#;

fn csv(path: &Path, records: usize, header: &str) {
    let mut s = format!("{header}\n");
    for i in 0..records {
        let stars = 1 + i % 3;
        s.push_str(&format!(
            "\"a review of place {i}, rated {stars} of five\",{stars}\n"
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn config(dir: &Path, data: &Path, overrides: &[&str]) -> Result<PipelineConfig, String> {
    let mut o = vec![
        format!("output_dir={:?}", dir.display().to_string()),
        format!("data.path={:?}", data.display().to_string()),
    ];
    o.extend(overrides.iter().map(|s| s.to_string()));
    PipelineConfig::from_toml(TINY, &o).map_err(|e| e.to_string())
}

fn stage(config: &PipelineConfig, stages: &[Stage]) -> Result<(), String> {
    let mut rep = Reporter::detached(OutputMode::Quiet);
    run(config, stages, &mut rep)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Nothing private (nor any record of the run) is on disk.
fn nothing_released(dir: &Path) -> Result<(), String> {
    for name in ["label-histogram.json", "teacher", "run.json", "config.toml"] {
        if dir.join(name).exists() {
            return Err(format!("{name} was written"));
        }
    }
    Ok(())
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("reviews.csv");
    csv(&data, 120, "text,stars");
    let dir = tmp.path().join("run");
    (tmp, data, dir)
}

#[test]
fn a_refused_run_releases_nothing_and_the_corrected_rerun_succeeds_in_the_same_directory() {
    let (_tmp, data, dir) = setup();
    for (bad, want) in [
        // the code does not leave room for 44 new tokens in 48 positions
        ("generation.sampling.max_new_tokens=44", "max_new_tokens"),
        (
            "teacher.model.checkpoint=\"/no/such/checkpoint\"",
            "teacher.model.checkpoint",
        ),
        ("privacy.epsilon=1e9", "epsilon"),
        ("privacy.epsilon=1e-9", "epsilon"),
        ("privacy.delta=1e-300", "delta"),
        ("teacher.expected_batch_size=1000", "expected"),
    ] {
        let c = config(&dir, &data, &[bad]).unwrap();
        let e = stage(&c, &[Stage::Teacher]).expect_err(bad);
        assert!(e.contains(want), "{bad}: {e}");
        nothing_released(&dir).unwrap_or_else(|m| panic!("{bad}: {m}"));
    }
    // refused by the configuration itself, before the run directory is touched
    for (bad, want) in [
        ("teacher.block_size=100000000", "teacher.block_size"),
        ("teacher.schedule.lr=nan", "teacher.schedule"),
        (
            "generation.allocation.noise_multiplier=nan",
            "noise_multiplier",
        ),
        ("output_dir=\"\"", "output_dir"),
    ] {
        let e = config(&dir, &data, &[bad]).expect_err(bad);
        assert!(e.contains(want), "{bad}: {e}");
    }
    let good = config(&dir, &data, &[]).unwrap();
    stage(&good, &[Stage::Teacher]).unwrap();
    assert!(dir.join("label-histogram.json").exists() && dir.join("run.json").exists());
}

#[test]
fn a_first_run_on_a_malformed_file_does_not_lock_its_directory() {
    let (_tmp, data, dir) = setup();
    csv(&data, 120, "body,stars");
    let c = config(&dir, &data, &[]).unwrap();
    let e = stage(&c, &[Stage::Teacher]).unwrap_err();
    assert!(e.contains("text"), "{e}");
    nothing_released(&dir).unwrap();
    csv(&data, 120, "text,stars");
    stage(&c, &[Stage::Teacher]).expect("the fixed file runs in the same directory");
}

#[test]
fn a_resume_on_changed_data_is_refused_and_later_stages_may_change() {
    let (_tmp, data, dir) = setup();
    let c = config(&dir, &data, &[]).unwrap();
    stage(&c, &[Stage::Teacher]).unwrap();
    let histogram = std::fs::read(dir.join("label-histogram.json")).unwrap();
    let run_json = std::fs::read(dir.join("run.json")).unwrap();
    for records in [100, 140] {
        csv(&data, records, "text,stars");
        let e = stage(&c, &[Stage::Teacher]).unwrap_err();
        assert!(
            e.contains("data") && e.contains("never made twice"),
            "{records}: {e}"
        );
        let e = stage(&c, &[Stage::Generate]).unwrap_err();
        assert!(e.contains("data"), "{records}: {e}");
        assert_eq!(std::fs::read(dir.join("run.json")).unwrap(), run_json);
    }
    csv(&data, 120, "text,stars");
    // settings no finished release depends on may change: generation, student, workers
    let other = config(
        &dir,
        &data,
        &[
            "generation.sampling.max_new_tokens=6",
            "workers=2",
            "student.epochs=0.3",
        ],
    )
    .unwrap();
    stage(&other, &[Stage::Generate]).unwrap();
    let corpus = std::fs::read(dir.join("synthetic.jsonl")).unwrap();
    // ... and a stale corpus is made again by the stage that makes it
    let again = config(&dir, &data, &["generation.sampling.max_new_tokens=7"]).unwrap();
    stage(&again, &[Stage::Generate]).unwrap();
    assert_ne!(std::fs::read(dir.join("synthetic.jsonl")).unwrap(), corpus);
    // ... while a stage that only reads it refuses it
    let e = stage(&other, &[Stage::Student]).unwrap_err();
    assert!(e.contains("generation.sampling.max_new_tokens"), "{e}");
    // the private release was never made again
    assert_eq!(
        std::fs::read(dir.join("label-histogram.json")).unwrap(),
        histogram
    );
    // a setting the teacher release depends on is refused, naming the field and the release
    let teacher = config(&dir, &data, &["teacher.epochs=0.4"]).unwrap();
    let e = stage(&teacher, &[Stage::Generate]).unwrap_err();
    assert!(
        e.contains("teacher.epochs") && e.contains("DistilDP release"),
        "{e}"
    );
}

#[test]
fn the_default_delta_is_below_one_over_n_and_a_larger_one_is_warned_of() {
    for n in [2usize, 80, 2000, 1_000_000] {
        let d = default_delta(n);
        assert!(d > 0.0 && d < 1.0 / n as f64, "{n}: {d}");
    }
    let (tmp, data, dir) = setup();
    let c = config(&dir, &data, &["privacy.delta=0.05"]).unwrap();
    let metrics = tmp.path().join("metrics.jsonl");
    let mut rep = Reporter::new(OutputMode::Quiet, &metrics).unwrap();
    run(&c, &[Stage::Teacher], &mut rep).unwrap();
    let events = std::fs::read_to_string(&metrics).unwrap();
    let warnings: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("\"warning\""))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("privacy.delta") && w.contains("1/N")),
        "{events}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("INSECURE")),
        "the insecure noise seed is announced: {events}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("DISCLOSURE")),
        "codes read from the private data are disclosed at the start: {events}"
    );
}

#[test]
fn a_partly_given_table_keeps_its_roles_defaults() {
    let c = PipelineConfig::from_toml("[student.model]\npretrain_steps = 3\n", &[]).unwrap();
    let d = PipelineConfig::default();
    assert_eq!(
        (c.student.model.n_embd, c.student.model.n_layer),
        (d.student.model.n_embd, d.student.model.n_layer)
    );
    assert_eq!(c.student.model.pretrain_steps, 3);
    // and the student's own stage-0 schedule, not the (lower-lr) teacher's
    assert_eq!(
        c.student.model.pretrain_schedule,
        d.student.model.pretrain_schedule
    );
    assert_ne!(
        d.student.model.pretrain_schedule,
        d.teacher.model.pretrain_schedule
    );
    let c = PipelineConfig::from_toml("", &["generation.sampling.top_k=40".into()]).unwrap();
    assert_eq!(
        c.generation.sampling.max_new_tokens,
        d.generation.sampling.max_new_tokens
    );
    let c = PipelineConfig::from_toml("", &["student.schedule.lr=0.01".into()]).unwrap();
    assert_eq!(
        c.student.schedule,
        dp_optim::LrSchedule::Cosine {
            lr: 0.01,
            min_lr: 3e-4,
            warmup_steps: 5
        }
    );
    // a table of another kind replaces the default whole
    let c = PipelineConfig::from_toml("[student.schedule]\nkind = \"constant\"\nlr = 0.02\n", &[])
        .unwrap();
    assert_eq!(
        c.student.schedule,
        dp_optim::LrSchedule::Constant { lr: 0.02 }
    );
}

#[test]
fn a_public_corpus_that_is_the_private_data_is_refused() {
    let (_tmp, data, dir) = setup();
    let c = config(
        &dir,
        &data,
        &[&format!(
            "tokenizer.public_corpus=[{:?}]",
            data.display().to_string()
        )],
    )
    .unwrap();
    let e = stage(&c, &[Stage::Teacher]).unwrap_err();
    assert!(e.contains("tokenizer.public_corpus"), "{e}");
    nothing_released(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn the_run_directory_and_its_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, data, dir) = setup();
    stage(&config(&dir, &data, &[]).unwrap(), &[Stage::Teacher]).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for f in [
        "label-histogram.json",
        "run.json",
        "config.toml",
        "tokenizer.json",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
}
