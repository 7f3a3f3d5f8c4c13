//! The TOML configuration: defaults, round trip, overrides, and errors that name the field.

use distil_dp::allocation::SampleAllocation;
use distil_dp::config::PipelineConfig;

fn err(text: &str, overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    PipelineConfig::from_toml(text, &o).unwrap_err().to_string()
}

#[test]
fn an_empty_file_is_the_default_and_the_default_round_trips() {
    let empty = PipelineConfig::from_toml("", &[]).unwrap();
    assert_eq!(empty, PipelineConfig::default());
    assert_eq!(empty.privacy.epsilon, 2.0);
    assert_eq!(empty.student.loss.lambda, 0.4);
    let text = empty.to_toml();
    assert_eq!(PipelineConfig::from_toml(&text, &[]).unwrap(), empty);
}

#[test]
fn fields_and_overrides_apply() {
    let text = r#"
        output_dir = "runs/mine"
        [privacy]
        epsilon = 8.0
        delta = 1e-6
        [teacher]
        epochs = 3
        [generation.allocation]
        kind = "uniform"
    "#;
    let c = PipelineConfig::from_toml(
        text,
        &[
            "teacher.epochs=2".into(),
            "student.loss.lambda = 0.7".into(),
            "data.path=reviews.csv".into(),
            "data.label_columns=[\"stars\", \"category\"]".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.output_dir, std::path::PathBuf::from("runs/mine"));
    assert_eq!((c.privacy.epsilon, c.privacy.delta), (8.0, Some(1e-6)));
    assert_eq!(c.teacher.epochs, 2.0, "the override wins over the file");
    assert_eq!(c.student.loss.lambda, 0.7);
    assert_eq!(c.generation.allocation, SampleAllocation::Uniform);
    assert_eq!(
        c.data.path.as_deref(),
        Some(std::path::Path::new("reviews.csv")),
        "a bare word is a string"
    );
    assert_eq!(c.data.label_columns, vec!["stars", "category"]);
}

#[test]
fn mistakes_are_named() {
    // equal widths make the hidden-state MSE valid
    PipelineConfig::from_toml(
        "",
        &[
            "student.loss.alpha=0.5".into(),
            "student.model.n_embd=128".into(),
        ],
    )
    .unwrap();
    let unknown = err("[teacher]\nepoch = 3\n", &[]);
    assert!(unknown.contains("epoch"), "{unknown}");
    let wrong_type = err("[privacy]\nepsilon = \"two\"\n", &[]);
    assert!(wrong_type.contains("epsilon"), "{wrong_type}");
    for (text, overrides, want) in [
        ("[privacy]\nepsilon = 0.0\n", &[][..], "privacy.epsilon"),
        ("[privacy]\ndelta = 1.5\n", &[][..], "privacy.delta"),
        ("", &["data.split.test=0.0"][..], "split.test"),
        (
            "",
            &["data.split.validation=0.6", "data.split.test=0.5"][..],
            "less than 1",
        ),
        ("", &["backend=tpu"][..], "backend"),
        (
            "",
            &["teacher.max_grad_norm=-1"][..],
            "teacher.max_grad_norm",
        ),
        ("", &["student.loss.lambda=1.5"][..], "student.loss.lambda"),
        ("", &["student.model.n_head=3"][..], "student.model"),
        ("", &["generation.sampling.top_p=0"][..], "top_p"),
        ("", &["teacher.epochs"][..], "KEY=VALUE"),
        ("", &["teacher..epochs=1"][..], "empty parts"),
        ("", &["seed=1", "seed.x=1"][..], "parents are tables"),
        ("", &["seed.x=1"][..], "seed"),
        ("", &["checkpoint_every=0"][..], "checkpoint_every"),
        ("", &["workers=0"][..], "workers"),
        ("", &["student.loss.alpha=0.5"][..], "student.loss.alpha"),
        (
            "",
            &["teacher.model.pretrain_batch_size=0"][..],
            "teacher.model.pretrain_batch_size",
        ),
        (
            "",
            &["student.model.pretrain_schedule.lr=-1"][..],
            "student.model.pretrain_schedule",
        ),
    ] {
        let e = err(text, overrides);
        assert!(e.contains(want), "{overrides:?}: {e}");
    }
}

#[test]
fn loading_a_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(&path, "[student]\nbatch = 3\n").unwrap();
    let e = PipelineConfig::load(&path, &[]).unwrap_err().to_string();
    assert!(e.contains("run.toml") && e.contains("batch"), "{e}");
    let missing = PipelineConfig::load(&dir.path().join("none.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(missing.contains("none.toml"), "{missing}");
}
