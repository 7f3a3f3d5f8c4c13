//! Samples per control code: exact totals, and the DP label histogram's noise and ledger entry.

use dp_accounting::{DpEvent, PrivacyLedger};
use dp_optim::DpRng;
use synth_gen::{HISTOGRAM_LABEL, dp_histogram, proportional};

#[test]
fn proportional_parts_sum_to_the_total() {
    assert_eq!(proportional(10, &[1.0, 1.0, 2.0]).unwrap(), vec![3, 2, 5]);
    assert_eq!(
        proportional(7, &[0.0, 0.0]).unwrap(),
        vec![4, 3],
        "all zero: uniform"
    );
    assert_eq!(
        proportional(5, &[-3.0, 2.0]).unwrap(),
        vec![0, 5],
        "negative counts as 0"
    );
    for total in [0, 1, 99, 1000] {
        let parts = proportional(total, &[0.3, 7.1, 2.2, 0.0, 1e-9]).unwrap();
        assert_eq!(parts.iter().sum::<usize>(), total);
    }
    assert!(proportional(3, &[]).is_err());
    assert!(proportional(3, &[f64::NAN]).is_err());
}

#[test]
fn the_dp_histogram_is_noisy_and_accounted() {
    let mut rng = DpRng::secure().unwrap();
    let mut ledger = PrivacyLedger::new();
    let counts = vec![500u64; 4000];
    let sigma = 3.0;
    let noisy = dp_histogram(&counts, sigma, &mut rng, &mut ledger).unwrap();
    assert_eq!(ledger.entries().len(), 1);
    assert_eq!(ledger.entries()[0].label, HISTOGRAM_LABEL);
    assert_eq!(
        ledger.entries()[0].event,
        DpEvent::Gaussian {
            noise_multiplier: sigma
        }
    );
    // the noise has standard deviation σ: n·s²/σ² ~ χ²_n, 5.3 sd ≈ 1e-7 false-failure rate
    let n = noisy.len() as f64;
    let ratio = noisy.iter().map(|x| (x - 500.0).powi(2)).sum::<f64>() / n / (sigma * sigma);
    assert!(
        (ratio - 1.0).abs() < 5.3 * (2.0 / n).sqrt(),
        "variance ratio {ratio}"
    );
    let e = dp_histogram(&counts, 0.0, &mut rng, &mut ledger).unwrap_err();
    assert!(e.to_string().contains("noise_multiplier"), "{e}");
    assert_eq!(
        ledger.entries().len(),
        1,
        "a refused release is not recorded"
    );
}

#[test]
fn allocations_sum_to_the_total_and_only_the_histogram_is_recorded() {
    use synth_gen::{DEFAULT_HISTOGRAM_NOISE, SampleAllocation};
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
    // σ = 10 on counts of 100s: each share within 10σ/1000·1000 of the exact one
    for (got, want) in dp.iter().zip([300, 100, 0, 600]) {
        assert!((*got as i64 - want).abs() <= 100, "{dp:?}");
    }
    assert_eq!(ledger.entries().len(), 1);
    assert_eq!(ledger.entries()[0].label, HISTOGRAM_LABEL);
}
