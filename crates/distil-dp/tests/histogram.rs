//! The label stage: codes from public domains (or, flagged, from the data), samples per code
//! released once through the DP histogram and reloaded on a rerun.

use distil_dp::allocation::{DEFAULT_HISTOGRAM_NOISE, HISTOGRAM_LABEL, SampleAllocation};
use distil_dp::config::PipelineConfig;
use distil_dp::histogram::{control_codes, release_or_load};
use distil_dp::prepare::load_splits;
use distil_dp::run_dir::RunDir;
use dp_accounting::{DpEvent, PrivacyLedger};
use dp_optim::DpRng;

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
    assert_eq!(
        first.ledger.entries()[0].event,
        DpEvent::DiscreteGaussian {
            sigma: DEFAULT_HISTOGRAM_NOISE
        },
        "the exact discrete Gaussian, accounted as such"
    );
    assert_eq!(
        first.ledger,
        config.generation.allocation.planned_ledger().unwrap(),
        "the ledger the teacher was calibrated after"
    );
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

#[test]
fn allocations_sum_to_the_total_and_only_the_histogram_is_recorded() {
    let counts = [300u64, 100, 0, 600];
    let mut rng = DpRng::secure().unwrap();
    let mut ledger = PrivacyLedger::new();
    let uniform = SampleAllocation::Uniform
        .allocate(1000, &counts, &mut rng, &mut ledger)
        .unwrap();
    assert_eq!(uniform, vec![250; 4]);
    let given = SampleAllocation::Given {
        weights: vec![1.0, 0.0, 0.0, 3.0],
    };
    assert_eq!(
        given
            .allocate(1000, &counts, &mut rng, &mut ledger)
            .unwrap(),
        vec![250, 0, 0, 750]
    );
    assert!(
        ledger.entries().is_empty(),
        "public allocations release nothing"
    );
    let wrong = SampleAllocation::Given { weights: vec![1.0] };
    let err = wrong
        .allocate(10, &counts, &mut rng, &mut ledger)
        .unwrap_err();
    assert!(err.to_string().contains("weights"), "{err}");

    assert_eq!(
        SampleAllocation::default(),
        SampleAllocation::DpHistogram {
            noise_multiplier: DEFAULT_HISTOGRAM_NOISE
        }
    );
    let dp = SampleAllocation::default()
        .allocate(1000, &counts, &mut rng, &mut ledger)
        .unwrap();
    assert_eq!(dp.iter().sum::<usize>(), 1000);
    // σ = 10 on counts of 100s: each share within 100 of the exact one (10σ)
    for (got, want) in dp.iter().zip([300, 100, 0, 600]) {
        assert!((*got as i64 - want).abs() <= 100, "{dp:?}");
    }
    assert_eq!(ledger.entries().len(), 1);
    assert_eq!(ledger.entries()[0].label, HISTOGRAM_LABEL);
    let bad = SampleAllocation::DpHistogram {
        noise_multiplier: 0.0,
    }
    .allocate(10, &counts, &mut rng, &mut ledger)
    .unwrap_err();
    assert!(bad.to_string().contains("sigma"), "{bad}");
    assert_eq!(
        ledger.entries().len(),
        1,
        "a refused release is not recorded"
    );
}
