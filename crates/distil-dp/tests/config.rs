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

#[test]
fn dp_lora_is_off_by_default_and_its_mistakes_are_named() {
    let default = PipelineConfig::default();
    let lora = &default.teacher.lora;
    assert_eq!(lora.rank, 0);
    assert!(!lora.enabled() && lora.adapters(0).is_none() && lora.describe().is_none());
    assert_eq!(lora.projections, causal_lm::LoraProjection::ALL);

    let text = "[teacher.lora]\nrank = 4\nprojections = [\"attn.c_attn\", \"mlp.c_proj\"]\n";
    let c = PipelineConfig::from_toml(text, &[]).unwrap();
    let adapters = c.teacher.lora.adapters(9).unwrap();
    assert_eq!((adapters.rank, adapters.alpha, adapters.seed), (4, 8.0, 9));
    assert_eq!(
        c.teacher.lora.describe().unwrap(),
        "rank 4, alpha 8, attn.c_attn mlp.c_proj"
    );
    assert_eq!(PipelineConfig::from_toml(&c.to_toml(), &[]).unwrap(), c);
    let c = PipelineConfig::from_toml(
        "",
        &["teacher.lora.rank=2".into(), "teacher.lora.alpha=16".into()],
    )
    .unwrap();
    assert_eq!(c.teacher.lora.alpha(), 16.0);

    for (overrides, want) in [
        (&["teacher.lora.rank=200"][..], "teacher.lora.rank"), // the teacher is 128 wide
        (&["teacher.lora.rank=100000"][..], "teacher.lora.rank"),
        (&["teacher.lora.rank=-1"][..], "teacher.lora.rank"),
        (
            &["teacher.lora.rank=2", "teacher.lora.alpha=0"][..],
            "teacher.lora.alpha",
        ),
        (&["teacher.lora.alpha=nan"][..], "teacher.lora.alpha"),
        (
            &["teacher.lora.projections=[]"][..],
            "teacher.lora.projections",
        ),
        (
            &["teacher.lora.projections=[\"mlp.c_fc\", \"mlp.c_fc\"]"][..],
            "teacher.lora.projections",
        ),
        (&["teacher.lora.projections=[\"attn.q\"]"][..], "attn.q"),
        (&["teacher.lora.ranks=2"][..], "ranks"),
        // the DP-SGD student is 64 wide (the default student)
        (&["teacher.lora.rank=100"][..], "student.model"),
    ] {
        let e = err("", overrides);
        assert!(e.contains(want), "{overrides:?}: {e}");
    }
    // without a DP-trained student, only the teacher's width bounds the rank
    PipelineConfig::from_toml(
        "",
        &[
            "teacher.lora.rank=100".into(),
            "baselines.dp_sgd_student=false".into(),
            "baselines.dpkd=false".into(),
        ],
    )
    .unwrap();
}
