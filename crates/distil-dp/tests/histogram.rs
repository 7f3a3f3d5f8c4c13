//! The label stage: codes from public domains (or, flagged, from the data), samples per code
//! released once through the DP histogram and reloaded on a rerun.

use distil_dp::config::PipelineConfig;
use distil_dp::histogram::{control_codes, release_or_load};
use distil_dp::prepare::load_splits;
use distil_dp::run_dir::RunDir;
use dp_optim::DpRng;
use synth_gen::{HISTOGRAM_LABEL, SampleAllocation};

#[test]
fn the_histogram_is_released_once_over_the_public_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = PipelineConfig {
        output_dir: tmp.path().join("run"),
        ..PipelineConfig::default()
    };
    let dir = RunDir::open(&config).unwrap();
    let splits = load_splits(&config).unwrap();
    let mut rng = DpRng::secure().unwrap();
    let codes = control_codes(&config, &splits.train).unwrap();
    let first = release_or_load(&config, &dir, &splits.train, &codes, 1000, &mut rng).unwrap();
    assert_eq!(first.codes.len(), 25, "5 categories x 5 ratings");
    assert!(!first.codes_from_private_data);
    assert_eq!(first.samples.iter().sum::<usize>(), 1000);
    let labels: Vec<&str> = first
        .ledger
        .entries()
        .iter()
        .map(|e| e.label.as_str())
        .collect();
    assert_eq!(labels, [HISTOGRAM_LABEL]);
    // 5-star codes get more samples than 1-star ones, as in the (skewed) data
    let stars = |s: &str| -> usize {
        first
            .codes
            .iter()
            .zip(&first.samples)
            .filter(|(c, _)| c[1].1 == s)
            .map(|(_, n)| n)
            .sum()
    };
    assert!(
        stars("5.0") > stars("1.0"),
        "{} vs {}",
        stars("5.0"),
        stars("1.0")
    );
    // a rerun reloads the release: no second draw, no second ledger entry
    let again = release_or_load(&config, &dir, &splits.train, &codes, 1000, &mut rng).unwrap();
    assert_eq!(again, first);
}

#[test]
fn codes_of_a_data_file_come_from_its_domain_or_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("r.csv");
    let mut csv = String::from("text,stars\n");
    for i in 0..60 {
        csv.push_str(&format!("review {i},{}\n", 1 + i % 2));
    }
    std::fs::write(&file, csv).unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("a"),
        ..PipelineConfig::default()
    };
    config.data.path = Some(file);
    config.generation.allocation = SampleAllocation::Uniform;
    let train = load_splits(&config).unwrap().train;
    let mut rng = DpRng::secure().unwrap();
    let dir = RunDir::open(&config).unwrap();
    let codes = control_codes(&config, &train).unwrap();
    let seen = release_or_load(&config, &dir, &train, &codes, 10, &mut rng).unwrap();
    assert!(seen.codes_from_private_data);
    assert_eq!(seen.codes.len(), 2);
    assert!(seen.ledger.entries().is_empty(), "uniform reads no counts");
    assert_eq!(seen.samples, vec![5, 5]);

    config.output_dir = tmp.path().join("b");
    config
        .data
        .label_values
        .insert("stars".into(), vec!["1".into(), "2".into(), "3".into()]);
    let dir = RunDir::open(&config).unwrap();
    let codes = control_codes(&config, &train).unwrap();
    let public = release_or_load(&config, &dir, &train, &codes, 9, &mut rng).unwrap();
    assert!(!public.codes_from_private_data);
    assert_eq!(public.codes.len(), 3);
    assert_eq!(public.samples, vec![3, 3, 3]);
}

/// A column of near-unique values (an id) taken as a label because `data.label_columns` was
/// left empty makes codes that identify records: refused, naming the column; accepted with a
/// warning when the user names the label columns.
#[test]
fn identifying_control_codes_are_refused_unless_the_columns_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("r.csv");
    let mut csv = String::from("id,text,stars\n");
    for i in 0..200 {
        csv.push_str(&format!("user{i},review {i},{}\n", 1 + i % 2));
    }
    std::fs::write(&file, csv).unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("a"),
        ..PipelineConfig::default()
    };
    config.data.path = Some(file);
    let train = load_splits(&config).unwrap().train;
    let e = control_codes(&config, &train).unwrap_err().to_string();
    assert!(
        e.contains("data.label_columns") && e.contains("`id`") && e.contains("distinct"),
        "{e}"
    );
    config.data.label_columns = vec!["stars".into()];
    let train = load_splits(&config).unwrap().train;
    let fine = control_codes(&config, &train).unwrap();
    assert_eq!(fine.codes.len(), 2);
    assert!(fine.warning.is_none());
    config.data.label_columns = vec!["id".into(), "stars".into()];
    let train = load_splits(&config).unwrap().train;
    let named = control_codes(&config, &train).unwrap();
    assert!(
        named
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("distinct"))
    );
}
