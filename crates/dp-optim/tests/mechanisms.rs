//! The exact discrete Gaussian and the DP histogram (`dp_optim::mechanisms`): sampler
//! frequencies against the exact probabilities, with a statistic shown to reject plausible
//! wrong samplers; the histogram's ledger entry and its ε against the dp-accounting
//! fixture (`crates/dp-accounting/tests/fixtures/discrete_gaussian.json`, made by
//! `scripts/peers/discrete_gaussian_fixture.py` with mpmath and Google's dp_accounting).

use dp_accounting::{DpEvent, PldAccountant, PrivacyLedger};
use dp_optim::mechanisms::{
    DiscreteGaussianSampler, bernoulli_exp_minus, discrete_gaussian_histogram, discrete_laplace,
};
use dp_optim::{DpOptimError, DpRng};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The exact N_Z(0, σ²) probabilities on [−K, K] (mass beyond is below 1e-300).
fn exact_pmf(sigma: f64) -> (i64, Vec<f64>) {
    let k = (sigma * 40.0).ceil() as i64 + 2;
    let w: Vec<f64> = (-k..=k)
        .map(|x| (-((x * x) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let z: f64 = w.iter().sum();
    (k, w.into_iter().map(|v| v / z).collect())
}

/// Pearson's χ² of `samples` against the exact discrete Gaussian, on bins of expected count
/// ≥ 20 (the tails pooled into the outermost bins), and its degrees of freedom.
fn chi_square(samples: &[i64], sigma: f64) -> (f64, usize) {
    let (k, pmf) = exact_pmf(sigma);
    let n = samples.len() as f64;
    let mut observed = vec![0.0; pmf.len()];
    for &s in samples {
        let i = (s.clamp(-k, k) + k) as usize;
        observed[i] += 1.0;
    }
    // Pool from each end towards the centre until the pooled expectation reaches 20.
    let mut bins: Vec<(f64, f64)> = Vec::new();
    let (mut e, mut o) = (0.0, 0.0);
    let centre = k as usize;
    for i in 0..centre {
        e += pmf[i] * n;
        o += observed[i];
        if e >= 20.0 {
            bins.push((o, e));
            (e, o) = (0.0, 0.0);
        }
    }
    let (mut e2, mut o2) = (0.0, 0.0);
    let mut right: Vec<(f64, f64)> = Vec::new();
    for i in (centre + 1..pmf.len()).rev() {
        e2 += pmf[i] * n;
        o2 += observed[i];
        if e2 >= 20.0 {
            right.push((o2, e2));
            (e2, o2) = (0.0, 0.0);
        }
    }
    bins.push((o + observed[centre] + o2, e + pmf[centre] * n + e2));
    bins.extend(right);
    let stat = bins.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    (stat, bins.len() - 1)
}

/// A χ² acceptance threshold: df + 6·√(2·df) (beyond 6 standard deviations of the
/// statistic under the null; the seed is fixed, so the test is deterministic).
fn threshold(df: usize) -> f64 {
    df as f64 + 6.0 * (2.0 * df as f64).sqrt()
}

#[test]
fn bernoulli_exp_minus_frequencies() {
    let mut rng = DpRng::insecure_seeded(11);
    let n = 40_000;
    for (num, den) in [
        (0u64, 1u64),
        (1, 3),
        (1, 1),
        (5, 2),
        (7, 1),
        (123_456_789, 100_000_000),
    ] {
        let p = (-(num as f64) / den as f64).exp();
        let hits = (0..n)
            .filter(|_| bernoulli_exp_minus(num, den, &mut rng).unwrap())
            .count() as f64;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (hits / n as f64 - p).abs() <= 5.0 * sd + 1e-12,
            "γ = {num}/{den}: {} vs {p}",
            hits / n as f64
        );
    }
    assert!(bernoulli_exp_minus(1, 0, &mut rng).is_err());
}

#[test]
fn sampler_matches_the_exact_pmf_and_rejects_wrong_samplers() {
    let mut rng = DpRng::insecure_seeded(2024);
    let n = 200_000;
    for sigma in [0.5, 1.0, 3.7, 10.0] {
        let sampler = DiscreteGaussianSampler::new(sigma).unwrap();
        let samples: Vec<i64> = (0..n).map(|_| sampler.sample(&mut rng).unwrap()).collect();
        let (stat, df) = chi_square(&samples, sigma);
        assert!(stat <= threshold(df), "σ={sigma}: χ² = {stat} on {df} df");

        // Mean 0 and the exact discrete variance, within 5 standard errors.
        let (k, pmf) = exact_pmf(sigma);
        let moment = |p: i32| -> f64 {
            pmf.iter()
                .enumerate()
                .map(|(i, q)| q * ((i as i64 - k) as f64).powi(p))
                .sum()
        };
        let (var, m4) = (moment(2), moment(4));
        let mean = samples.iter().sum::<i64>() as f64 / n as f64;
        let emp_var = samples.iter().map(|&s| (s * s) as f64).sum::<f64>() / n as f64;
        assert!(
            mean.abs() <= 5.0 * (var / n as f64).sqrt(),
            "σ={sigma}: mean {mean}"
        );
        assert!(
            (emp_var - var).abs() <= 5.0 * ((m4 - var * var) / n as f64).sqrt(),
            "σ={sigma}: variance {emp_var} vs {var}"
        );
    }

    // The same statistic rejects the plausible wrong samplers, at the same sample size.
    // 1. A rounded continuous Gaussian at σ = 0.5 (P(0) = 0.683 instead of 0.787).
    let mut chacha = ChaCha20Rng::seed_from_u64(5);
    let rounded: Vec<i64> = (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut chacha);
            (0.5 * z).round() as i64
        })
        .collect();
    let (stat, df) = chi_square(&rounded, 0.5);
    assert!(
        stat > 10.0 * threshold(df),
        "rounded Gaussian not rejected: {stat}"
    );
    // 2. A discrete Laplace of scale 1 (variance 1.84) taken for N_Z(0, 1.84).
    let laplace: Vec<i64> = (0..n)
        .map(|_| discrete_laplace(1, &mut rng).unwrap())
        .collect();
    let (stat, df) = chi_square(&laplace, 1.84f64.sqrt());
    assert!(
        stat > 10.0 * threshold(df),
        "discrete Laplace not rejected: {stat}"
    );
    // 3. A rounded continuous Gaussian at σ = 1 (closer, still rejected).
    let rounded: Vec<i64> = (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut chacha);
            z.round() as i64
        })
        .collect();
    let (stat, df) = chi_square(&rounded, 1.0);
    assert!(
        stat > threshold(df),
        "rounded Gaussian σ=1 not rejected: {stat}"
    );
}

#[test]
fn sampler_handles_tiny_and_huge_sigma() {
    let mut rng = DpRng::insecure_seeded(3);
    // σ = 0.01: P(X ≠ 0) = 2e^{−5000}: always 0.
    let tiny = DiscreteGaussianSampler::new(0.01).unwrap();
    assert!((0..1000).all(|_| tiny.sample(&mut rng).unwrap() == 0));
    // σ = 1e9: samples of the right order, through multi-word rationals.
    let huge = DiscreteGaussianSampler::new(1e9).unwrap();
    let xs: Vec<i64> = (0..200).map(|_| huge.sample(&mut rng).unwrap()).collect();
    let rms = (xs.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / 200.0).sqrt();
    assert!(rms > 0.7e9 && rms < 1.3e9, "{rms}");
    assert_eq!(huge.sigma(), 1e9);
}

#[test]
fn histogram_records_one_event_and_matches_the_fixture() {
    let mut ledger = PrivacyLedger::new();
    let mut rng = DpRng::insecure_seeded(9);
    let counts = [1000u64, 5, 0, 42, 7];
    let noisy = discrete_gaussian_histogram(&counts, 2.0, &mut rng, &mut ledger, "labels").unwrap();
    assert_eq!(noisy.len(), counts.len());
    assert!(
        noisy
            .iter()
            .zip(&counts)
            .all(|(n, c)| (n - *c as i64).abs() < 40)
    );
    assert_eq!(ledger.entries().len(), 1);
    assert_eq!(ledger.entries()[0].label, "labels");
    assert_eq!(
        ledger.entries()[0].event,
        DpEvent::DiscreteGaussian { sigma: 2.0 }
    );
    // ε of the histogram alone against the exact curve (mpmath) and dp_accounting's PLD.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dp-accounting/tests/fixtures/discrete_gaussian.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for row in fixture["rows"].as_array().unwrap() {
        if row["sigma"].as_f64() != Some(2.0) {
            continue;
        }
        let delta = row["delta"].as_f64().unwrap();
        let exact = row["exact"].as_f64().unwrap();
        let peer = row["dp_accounting_pld"].as_f64().unwrap();
        let ours = ledger
            .epsilon(&PldAccountant::default(), delta)
            .unwrap()
            .upper;
        assert!(
            ours >= exact - 1e-9 && ours <= exact + 1.5e-4,
            "δ={delta}: {ours} vs {exact}"
        );
        assert!((ours - peer).abs() <= 1.5e-4, "δ={delta}: {ours} vs {peer}");
        checked += 1;
    }
    assert_eq!(checked, 3);
    // A second histogram is a second entry.
    discrete_gaussian_histogram(&[1], 2.0, &mut rng, &mut ledger, "labels").unwrap();
    assert_eq!(ledger.entries().len(), 2);
}

#[test]
fn histogram_errors_name_the_field_and_record_nothing() {
    let mut ledger = PrivacyLedger::new();
    let mut rng = DpRng::insecure_seeded(1);
    let field = |r: Result<Vec<i64>, DpOptimError>| match r {
        Err(DpOptimError::InvalidParameter { field, .. }) => field,
        other => panic!("expected an invalid parameter, got {other:?}"),
    };
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let r = discrete_gaussian_histogram(&[1, 2], bad, &mut rng, &mut ledger, "h");
        assert_eq!(field(r), "sigma");
    }
    let r = discrete_gaussian_histogram(&[], 1.0, &mut rng, &mut ledger, "h");
    assert_eq!(field(r), "counts");
    let r = discrete_gaussian_histogram(&[1, u64::MAX], 1.0, &mut rng, &mut ledger, "h");
    assert_eq!(field(r), "counts");
    assert!(ledger.entries().is_empty());
    // A noisy count past i64::MAX is an error, not a saturated value.
    let top = [i64::MAX as u64; 16];
    let r = discrete_gaussian_histogram(&top, 10.0, &mut rng, &mut ledger, "h");
    assert_eq!(field(r), "counts");
    assert!(DiscreteGaussianSampler::new(0.0).is_err());
    assert!(discrete_laplace(0, &mut rng).is_err());
}
