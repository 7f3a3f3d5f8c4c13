//! The run directory (config recorded, another config refused) and the preparation stage
//! (splits of the embedded corpus or a file, the public tokenizer made once and reused).

use distil_dp::config::PipelineConfig;
use distil_dp::prepare::{load_splits, tokenizer};
use distil_dp::run_dir::RunDir;

fn config(dir: &std::path::Path) -> PipelineConfig {
    PipelineConfig {
        output_dir: dir.join("run"),
        ..PipelineConfig::default()
    }
}

#[test]
fn a_run_directory_keeps_its_config_and_refuses_another() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path());
    let dir = RunDir::open(&c).unwrap();
    let saved = std::fs::read_to_string(dir.config_path()).unwrap();
    assert_eq!(PipelineConfig::from_toml(&saved, &[]).unwrap(), c);
    RunDir::open(&c).expect("the same config resumes");
    let mut more_workers = c.clone();
    more_workers.workers = 4;
    RunDir::open(&more_workers).expect("the number of workers is not the run's identity");
    let mut other = c.clone();
    other.privacy.epsilon = 8.0;
    let e = RunDir::open(&other).unwrap_err().to_string();
    assert!(
        e.contains("another configuration") && e.contains("epsilon = 8"),
        "{e}"
    );
}

#[test]
fn splits_and_the_tokenizer_are_prepared_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    let s = load_splits(&c).unwrap();
    assert_eq!(
        (s.train.len(), s.validation.len(), s.test.len()),
        (2000, 250, 250)
    );
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
