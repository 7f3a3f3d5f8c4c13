//! One ε query per accountant, and one noise calibration per accountant, at the two
//! reference points of `docs/benchmarks.md`:
//! A = (σ=1.0, q=0.01, T=10 000, δ=1e-5) and B = (σ=0.8, q=0.004, T=100 000, δ=1e-5).
//! Peers are timed by `scripts/peers/bench_accounting_peers.py` with the same settings
//! (PRV εₑ = 0.01, δₑ = δ/1000; PLD interval 1e-4; default RDP orders).
//!
//! `cargo bench -p dp-accounting --bench accountants`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dp_accounting::{Accountant, AccountantKind, DpEvent, calibrate_noise_multiplier};

/// (name, σ, q, T, δ, target ε for calibration: what σ reaches there, to 2 decimals, as
/// the peer script uses).
const POINTS: [(&str, f64, f64, u64, f64, f64); 2] = [
    ("A", 1.0, 0.01, 10_000, 1e-5, 6.19),
    ("B", 0.8, 0.004, 100_000, 1e-5, 13.07),
];

const KINDS: [AccountantKind; 3] = [
    AccountantKind::Rdp,
    AccountantKind::Prv,
    AccountantKind::Pld,
];

fn epsilon(c: &mut Criterion) {
    let mut group = c.benchmark_group("epsilon");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (name, sigma, q, steps, delta, _) in POINTS {
        let event = DpEvent::poisson_sampled_gaussian(q, sigma)
            .unwrap()
            .self_composed(steps)
            .unwrap();
        for kind in KINDS {
            let acc = kind.build();
            group.bench_function(format!("{kind}/{name}"), |b| {
                b.iter(|| acc.epsilon(black_box(&event), black_box(delta)).unwrap())
            });
        }
    }
    group.finish();
}

fn calibration(c: &mut Criterion) {
    let mut group = c.benchmark_group("calibrate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, _, q, steps, delta, target) in POINTS {
        for kind in KINDS {
            let acc = kind.build();
            group.bench_function(format!("{kind}/{name}"), |b| {
                b.iter(|| {
                    calibrate_noise_multiplier(&acc, black_box(target), delta, q, steps).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, epsilon, calibration);
criterion_main!(benches);
