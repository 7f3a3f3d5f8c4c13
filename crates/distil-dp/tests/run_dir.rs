//! The run directory (each part judged by what it depends on) and the preparation stage
//! (splits of the embedded corpus or a file, the public tokenizer made once and reused).

use distil_dp::config::PipelineConfig;
use distil_dp::identity::{self, Part};
use distil_dp::prepare::{load_data, load_splits, tokenizer};
use distil_dp::run_dir::RunDir;

fn config(dir: &std::path::Path) -> PipelineConfig {
    PipelineConfig {
        output_dir: dir.join("run"),
        ..PipelineConfig::default()
    }
}

#[test]
fn opening_writes_nothing_and_each_part_is_judged_by_what_it_depends_on() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path());
    let dir = RunDir::open(&c).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.root()).unwrap().count(),
        0,
        "nothing written"
    );
    let (_, data) = load_data(&c).unwrap();
    let plan = identity::check(&dir, &c, &data, &[Part::DistilDp], &[], true).unwrap();
    plan.commit(&dir).unwrap();
    assert!(dir.identity_path().exists());
    std::fs::write(dir.histogram_path(), "{}").unwrap(); // the release has started
    identity::check(&dir, &c, &data, &[Part::DistilDp], &[], true).expect("the same run");
    let mut more_workers = c.clone();
    more_workers.workers = 4;
    more_workers.checkpoint_every = 7;
    identity::check(&dir, &more_workers, &data, &[Part::DistilDp], &[], true)
        .expect("workers and the checkpoint cadence are no part's identity");
    let mut stage0 = c.clone();
    stage0.teacher.model.pretrain_schedule = stage0.student.model.pretrain_schedule.clone();
    stage0.teacher.model.pretrain_batch_size = 8;
    identity::check(&dir, &stage0, &data, &[Part::DistilDp], &[], true)
        .expect("stage-0 settings of a model that is not pre-trained are no part's identity");
    stage0.teacher.model.pretrain_steps = 10;
    let e = identity::check(&dir, &stage0, &data, &[Part::DistilDp], &[], true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("teacher.model.pretrain_"), "{e}");
    let mut other = c.clone();
    other.privacy.epsilon = 8.0;
    let e = identity::check(&dir, &other, &data, &[Part::DistilDp], &[], true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("privacy.epsilon") && e.contains("8.0") && e.contains("never made twice"),
        "{e}"
    );

    // a post-processing output made with other settings is stale for the stage that makes it
    let plan = identity::check(
        &dir,
        &c,
        &data,
        &[Part::Generation],
        &[Part::DistilDp],
        true,
    )
    .unwrap();
    plan.commit(&dir).unwrap();
    std::fs::write(dir.synthetic_path(), "").unwrap();
    let mut sampling = c.clone();
    sampling.generation.sampling.top_k = 7;
    let stale = identity::check(&dir, &sampling, &data, &[Part::Generation], &[], true).unwrap();
    assert_eq!(stale.stale(), [Part::Generation]);
    // refused for a shard (its siblings run beside it) and for a stage that only reads it
    for (makes, remake) in [(&[Part::Generation][..], false), (&[][..], true)] {
        let e = identity::check(&dir, &sampling, &data, makes, &[Part::Generation], remake)
            .unwrap_err()
            .to_string();
        assert!(e.contains("generation.sampling.top_k"), "{e}");
    }
    stale.commit(&dir).unwrap();
    assert!(
        !dir.synthetic_path().exists(),
        "the stale corpus is removed"
    );
    assert!(dir.histogram_path().exists(), "the release is kept");
}

#[test]
fn splits_and_the_tokenizer_are_prepared_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    let s = load_splits(&c).unwrap();
    // binomial sizes around 80 / 10 / 10 % of 2500 (sd 20 and 15)
    assert_eq!(s.train.len() + s.validation.len() + s.test.len(), 2500);
    assert!((1920..=2080).contains(&s.train.len()), "{}", s.train.len());
    assert!((190..=310).contains(&s.test.len()), "{}", s.test.len());
    c.data.max_records = Some(100);
    let small = load_splits(&c).unwrap();
    let total = small.train.len() + small.validation.len() + small.test.len();
    assert!((100..=103).contains(&total), "{total}");
    assert_eq!(
        small.train[..],
        s.train[..small.train.len()],
        "a prefix of each split"
    );

    c.tokenizer.vocab_size = 300;
    let dir = RunDir::open(&c).unwrap();
    let t = tokenizer(&c, &dir).unwrap();
    assert!(dir.tokenizer_path().exists());
    let again = tokenizer(&c, &dir).unwrap();
    let code = "Business Category: Bars\tReview Stars: 5.0\n\n";
    assert_eq!(t.encode(code).unwrap(), again.encode(code).unwrap());
    assert_eq!(t.vocab_size(), again.vocab_size());
}

#[test]
fn a_data_file_with_named_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("reviews.csv");
    let mut csv = String::from("text,stars,category\n");
    for i in 0..40 {
        csv.push_str(&format!("review number {i},{},Food\n", 1 + i % 5));
    }
    std::fs::write(&file, csv).unwrap();
    let mut c = config(tmp.path());
    c.data.path = Some(file);
    c.data.label_columns = vec!["category".into(), "stars".into()];
    let s = load_splits(&c).unwrap();
    assert_eq!(s.train.len() + s.validation.len() + s.test.len(), 40);
    assert_eq!(s.test[0].labels[0].0, "category");
}
