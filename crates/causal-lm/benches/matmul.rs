//! burn's matrix product on burn-flex in the shapes of the tiny model's training step (8 × 128
//! tokens, `n_embd` 128, vocabulary 4096) and a few of gpt2's, the backward's transposed
//! operands included, as strided views (burn-flex hands the strides to gemm; nothing is
//! copied). Throughput is in FLOP (`2·m·n·k` per product), so criterion's `elem/s` reads as
//! FLOP/s.
//!
//! Peer: `scripts/peers/bench_matmul_torch.py` (`torch.mm`, same shapes and layouts, 2
//! threads). `RAYON_NUM_THREADS=1` gives burn-flex's one-thread figures.
//!
//! `cargo bench -p causal-lm --bench matmul`

#[path = "../../../benches/support/alloc.rs"]
mod alloc;

use std::time::Duration;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// `(name, m, n, k, lhs stored transposed, rhs stored transposed)`: `[m, k] × [k, n]`; a
/// transposed operand is stored as `[k, m]` (or `[n, k]`) and used through `transpose()`.
/// The same list is in `scripts/peers/bench_matmul_torch.py`.
const CASES: [(&str, usize, usize, usize, bool, bool); 15] = [
    ("qkv_fwd", 1024, 384, 128, false, false),
    ("mlp_up_fwd", 1024, 512, 128, false, false),
    ("mlp_down_fwd", 1024, 128, 512, false, false),
    ("head_fwd", 1024, 4096, 128, false, true),
    ("qkv_dx", 1024, 128, 384, false, true),
    ("qkv_dw", 128, 384, 1024, true, false),
    ("mlp_down_dw", 512, 128, 1024, true, false),
    ("head_dx", 1024, 128, 4096, false, false),
    ("head_dw", 4096, 128, 1024, true, false),
    ("teacher_qkv_fwd", 4096, 384, 128, false, false),
    ("teacher_head_fwd", 4096, 2048, 128, false, true),
    ("gpt2_qkv_fwd", 128, 2304, 768, false, false),
    ("gpt2_mlp_dw", 768, 3072, 128, true, false),
    ("gpt2_head_fwd", 128, 50257, 768, false, true),
    ("square_512", 512, 512, 512, false, false),
];

fn operand(rows: usize, cols: usize, transposed: bool) -> Tensor<Flex, 2> {
    let device = Default::default();
    let dist = Distribution::Uniform(-1.0, 1.0);
    if transposed {
        Tensor::random([cols, rows], dist, &device).transpose()
    } else {
        Tensor::random([rows, cols], dist, &device)
    }
}

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    for (name, m, n, k, ta, tb) in CASES {
        let a = operand(m, k, ta);
        let b = operand(k, n, tb);
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| a.clone().matmul(b.clone()).into_primitive())
        });
    }
    group.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
