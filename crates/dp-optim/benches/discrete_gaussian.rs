//! Exact discrete Gaussian samples per second at σ = 1, 10, 1000 (1000 draws per
//! iteration, one thread). The peer is CKS's reference algorithm in Python
//! (`scripts/peers/bench_discrete_gaussian_peer.py`), timed in the same sitting.
//!
//! `cargo bench -p dp-optim --bench discrete_gaussian`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dp_optim::DpRng;
use dp_optim::mechanisms::DiscreteGaussianSampler;

fn samples(c: &mut Criterion) {
    let mut group = c.benchmark_group("discrete_gaussian");
    group
        .throughput(Throughput::Elements(1000))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);
    for sigma in [1.0, 10.0, 1000.0] {
        let sampler = DiscreteGaussianSampler::new(sigma).expect("valid sigma");
        let mut rng = DpRng::insecure_seeded(1);
        group.bench_function(format!("sigma={sigma}"), |b| {
            b.iter(|| {
                for _ in 0..1000 {
                    black_box(sampler.sample(&mut rng).expect("fits in i64"));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, samples);
criterion_main!(benches);
