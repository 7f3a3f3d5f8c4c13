//! The sampler and the noise against their distributions. Statistical tests use the secure
//! (OS-seeded) stream, so each run is a fresh experiment; every bound is set for a false-failure
//! probability of about 1e-6 (|z| ≤ 4.89), not tuned to a seed.

use dp_optim::{DpOptimError, DpRng, PoissonSampler, noise};
use proptest::prelude::*;

const Z: f64 = 4.89; // two-sided normal quantile for 1e-6

#[test]
fn batch_sizes_are_binomial_with_the_nominal_rate() {
    let mut rng = DpRng::secure().unwrap();
    let (n, q, steps) = (10_000usize, 0.01, 200usize);
    let s = PoissonSampler::new(n, q).unwrap();
    let total: usize = (0..steps).map(|_| s.sample(&mut rng).len()).sum();
    let trials = (n * steps) as f64;
    let mean = trials * q;
    let sd = (trials * q * (1.0 - q)).sqrt();
    assert!(
        (total as f64 - mean).abs() <= Z * sd,
        "total {total} vs expected {mean} ± {:.0}",
        Z * sd
    );
    assert_eq!(s.expected_batch_size(), 100.0);
}

#[test]
fn every_record_is_sampled_at_the_same_rate() {
    // Record 0 and record n-1 (first and last word of each step) are each kept at rate q.
    let mut rng = DpRng::secure().unwrap();
    let (n, q, steps) = (50usize, 0.3, 20_000usize);
    let s = PoissonSampler::new(n, q).unwrap();
    let mut first = 0usize;
    let mut last = 0usize;
    for _ in 0..steps {
        let b = s.sample(&mut rng);
        first += usize::from(b.first() == Some(&0));
        last += usize::from(b.last() == Some(&(n - 1)));
    }
    let sd = (steps as f64 * q * (1.0 - q)).sqrt();
    for count in [first, last] {
        assert!((count as f64 - steps as f64 * q).abs() <= Z * sd, "{count}");
    }
}

#[test]
fn batches_can_be_empty_and_q_one_takes_everything() {
    let mut rng = DpRng::secure().unwrap();
    let tiny = PoissonSampler::new(10, 1e-12).unwrap();
    assert!(tiny.sample(&mut rng).is_empty());
    let all = PoissonSampler::new(7, 1.0).unwrap();
    assert_eq!(all.sample(&mut rng), (0..7).collect::<Vec<_>>());
}

#[test]
fn bad_sampler_parameters_are_named() {
    for q in [0.0, -0.1, 1.5, f64::NAN] {
        assert!(matches!(
            PoissonSampler::new(10, q),
            Err(DpOptimError::InvalidParameter {
                field: "sample_rate",
                ..
            })
        ));
    }
    let e = PoissonSampler::new(0, 0.5).unwrap_err().to_string();
    assert!(e.contains("dataset_size") && e.contains("empty"), "{e}");
    assert!(matches!(
        PoissonSampler::with_expected_batch(10, 11.0),
        Err(DpOptimError::InvalidParameter {
            field: "expected_batch_size",
            ..
        })
    ));
}

#[test]
fn noise_has_the_configured_mean_and_standard_deviation() {
    let mut rng = DpRng::secure().unwrap();
    let (m, std) = (200_000usize, 2.5f64);
    let z = noise::gaussian(&mut rng, m, std).unwrap();
    assert_eq!(z.len(), m);
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / m as f64;
    assert!(mean.abs() <= Z * std / (m as f64).sqrt(), "mean {mean}");
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
    let rel = Z * (2.0 / (m - 1) as f64).sqrt();
    assert!(
        (var / (std * std) - 1.0).abs() <= rel,
        "variance {var} vs {} (±{rel:.4} relative)",
        std * std
    );
    // The shape, not only two moments: P(|Z| <= std) = 0.682689...
    let p = 0.682_689_492_137_085_9;
    let inside = z.iter().filter(|&&v| (v as f64).abs() <= std).count() as f64;
    let sd = (m as f64 * p * (1.0 - p)).sqrt();
    assert!((inside - m as f64 * p).abs() <= Z * sd, "{inside}");
}

#[test]
fn bad_noise_parameters_are_named() {
    let mut rng = DpRng::insecure_seeded(1);
    for std in [-1.0, f64::NAN, f64::INFINITY] {
        let e = noise::gaussian(&mut rng, 3, std).unwrap_err().to_string();
        assert!(e.contains("noise_std"), "{e}");
    }
    assert!(noise::gaussian(&mut rng, 0, 1.0).unwrap().is_empty());
    assert_eq!(noise::gaussian(&mut rng, 5, 0.0).unwrap(), vec![0.0; 5]);
}

#[test]
fn the_stream_resumes_exactly_from_its_serialised_state() {
    for mut rng in [DpRng::secure().unwrap(), DpRng::insecure_seeded(42)] {
        rng.next_u64();
        let saved = serde_json::to_string(&rng).unwrap();
        let a: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        let mut restored: DpRng = serde_json::from_str(&saved).unwrap();
        let b: Vec<u64> = (0..5).map(|_| restored.next_u64()).collect();
        assert_eq!(a, b);
        assert_eq!(restored.is_insecure(), rng.is_insecure());
    }
}

#[test]
fn the_insecure_mode_says_so() {
    let rng = DpRng::insecure_seeded(7);
    assert!(rng.is_insecure());
    assert!(format!("{rng:?}").contains("INSECURE"));
    let secure = DpRng::secure().unwrap();
    assert!(!secure.is_insecure());
    // Two OS-seeded streams differ.
    let (mut a, mut b) = (DpRng::secure().unwrap(), DpRng::secure().unwrap());
    assert_ne!(a.next_u64(), b.next_u64());
}

proptest! {
    #[test]
    fn batches_are_sorted_unique_and_in_range(n in 1usize..500, q in 0.001f64..=1.0, seed: u64) {
        let mut rng = DpRng::insecure_seeded(seed);
        let b = PoissonSampler::new(n, q).unwrap().sample(&mut rng);
        prop_assert!(b.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(b.iter().all(|&i| i < n));
    }

    #[test]
    fn uniforms_are_strictly_inside_the_unit_interval(seed: u64) {
        let mut rng = DpRng::insecure_seeded(seed);
        for _ in 0..1000 {
            let u = rng.open01();
            prop_assert!(u > 0.0 && u < 1.0);
        }
    }
}
