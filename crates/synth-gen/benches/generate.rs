//! Sampling throughput (new tokens per second) of [`synth_gen::generate`] with the paper's
//! settings (top-k 50, top-p 0.9, temperature 1, no repeated bigram), exactly 128 new tokens
//! after 8-token prompts (end-of-text forbidden until then, so every run does the same work),
//! for the tiny preset and gpt2 (124M), batch 1, 8 and 64, with and without the KV cache, on
//! burn-flex. The same cases as `scripts/peers/bench_generate_hf.py` (transformers'
//! `generate`), to be run in one sitting (`docs/benchmarks.md`).
//!
//! `cargo bench -p synth-gen --bench generate` runs every case that takes under a minute per
//! run on 2 cores; `SYNTH_GEN_BENCH_LARGE=1` adds the rest (gpt2 uncached at batch 8 and 64,
//! gpt2 cached at batch 64, tiny uncached at batch 64: tens of minutes).

use std::time::{Duration, Instant};

use burn::backend::Flex;
use causal_lm::Gpt2Config;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use synth_gen::{GenerationConfig, SpecialTokens, generate};

type B = Flex;

const NEW_TOKENS: usize = 128;
const PROMPT: usize = 8;

/// The cases that only run with `SYNTH_GEN_BENCH_LARGE=1`.
fn large(model: &str, batch: usize, cached: bool) -> bool {
    match (model, cached) {
        ("gpt2", false) => batch > 1,
        ("gpt2", true) => batch > 8,
        (_, false) => batch > 8,
        _ => false,
    }
}

fn prompts(batch: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut s = 12345u64;
    (0..batch)
        .map(|_| {
            (0..PROMPT)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    1 + ((s >> 33) % (vocab as u64 - 1)) as u32
                })
                .collect()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let all = std::env::var("SYNTH_GEN_BENCH_LARGE").is_ok_and(|v| v == "1");
    let device = Default::default();
    let special = SpecialTokens { eos: 0, pad: 0 };
    for (name, config) in [("tiny", Gpt2Config::tiny()), ("gpt2", Gpt2Config::gpt2())] {
        let model = config.init::<B>(&device).expect("model");
        for cached in [true, false] {
            let mode = if cached { "cached" } else { "uncached" };
            let settings = GenerationConfig {
                max_new_tokens: NEW_TOKENS,
                min_new_tokens: NEW_TOKENS,
                use_cache: cached,
                ..GenerationConfig::default()
            };
            let mut g = c.benchmark_group(format!("generate/{name}/{mode}"));
            g.sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_millis(1))
                .measurement_time(Duration::from_secs(5));
            for batch in [1usize, 8, 64] {
                if large(name, batch, cached) && !all {
                    continue;
                }
                let prompts = prompts(batch, config.vocab_size);
                g.throughput(Throughput::Elements((batch * NEW_TOKENS) as u64));
                let mut seed = 0u64;
                g.bench_function(BenchmarkId::from_parameter(batch), |b| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            seed += 1;
                            let out =
                                generate(&model, &prompts, special, &settings, seed, 0, &device)
                                    .expect("generate");
                            assert!(out.iter().all(|o| o.len() == NEW_TOKENS));
                        }
                        start.elapsed()
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(generation, benches);
criterion_main!(generation);
