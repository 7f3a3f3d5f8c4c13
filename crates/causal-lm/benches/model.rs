//! Forward, forward+backward and decoding throughput of GPT-2 on the CPU backends, in the same
//! shapes as `scripts/peers/bench_causal_lm_torch.py` (PyTorch + transformers), so the two can
//! be compared in one sitting (`docs/benchmarks.md`).
//!
//! * `forward/{tiny,gpt2}/{flex,ndarray}`: logits of `[batch, 128]` (tiny: batch 8, gpt2: 1).
//! * `forward_backward/...`: mean next-token cross-entropy, then the backward pass.
//! * `decode/{tiny,gpt2}/{cached,uncached}/{flex,ndarray}`: greedy decoding of 64 (tiny) or 32
//!   (gpt2) new tokens after an 8-token prompt, with the KV cache or recomputing the whole
//!   sequence at every step.
//!
//! `cargo bench -p causal-lm --bench model` (add a filter such as `tiny` to run a subset).

#[path = "../../../benches/support/alloc.rs"]
mod alloc;

use std::time::Duration;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config, next_token_nll};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BLOCK: usize = 128;

struct Case {
    name: &'static str,
    config: Gpt2Config,
    batch: usize,
    new_tokens: usize,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "tiny",
            config: Gpt2Config::tiny(),
            batch: 8,
            new_tokens: 64,
        },
        Case {
            name: "gpt2",
            config: Gpt2Config::gpt2(),
            batch: 1,
            new_tokens: 32,
        },
    ]
}

fn tokens<B: Backend>(
    batch: usize,
    len: usize,
    vocab: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let mut s = 12345u64;
    let data: Vec<i64> = (0..batch * len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [batch, len]), device)
}

/// What PyTorch's side computes (`model(x, labels=x).loss`): the whole block forward, the mean
/// next-token cross-entropy over its `len - 1` predicted positions.
fn loss<B: Backend>(model: &Gpt2<B>, ids: Tensor<B, 2, Int>) -> Tensor<B, 1> {
    next_token_nll(model.forward(ids.clone()), ids, None).mean()
}

fn argmax_last<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2, Int> {
    let [batch, len, vocab] = logits.dims();
    logits
        .narrow(1, len - 1, 1)
        .reshape([batch, vocab])
        .argmax(1)
}

fn decode<B: Backend>(
    model: &Gpt2<B>,
    prompt: Tensor<B, 2, Int>,
    new: usize,
    cached: bool,
) -> Tensor<B, 2, Int> {
    let mut seq = prompt.clone();
    if cached {
        let mut cache = model.new_cache();
        let mut next = argmax_last(model.forward_cached(prompt, None, &mut cache).logits);
        for _ in 1..new {
            seq = Tensor::cat(vec![seq, next.clone()], 1);
            next = argmax_last(model.forward_cached(next, None, &mut cache).logits);
        }
        Tensor::cat(vec![seq, next], 1)
    } else {
        for _ in 0..new {
            let next = argmax_last(model.forward(seq.clone()));
            seq = Tensor::cat(vec![seq, next], 1);
        }
        seq
    }
}

fn bench_backend<B: Backend>(c: &mut Criterion, backend: &str) {
    let device = B::Device::default();
    for case in cases() {
        let model = case.config.init::<B>(&device).unwrap();
        let ids = tokens::<B>(case.batch, BLOCK, case.config.vocab_size, &device);
        let mut g = c.benchmark_group(format!("forward/{}", case.name));
        g.sample_size(10).measurement_time(Duration::from_secs(8));
        g.throughput(Throughput::Elements((case.batch * BLOCK) as u64));
        g.bench_function(BenchmarkId::from_parameter(backend), |b| {
            b.iter(|| model.forward(ids.clone()).into_data())
        });
        g.finish();

        let model_ad = case.config.init::<Autodiff<B>>(&device).unwrap();
        let ids_ad = tokens::<Autodiff<B>>(case.batch, BLOCK, case.config.vocab_size, &device);
        let mut g = c.benchmark_group(format!("forward_backward/{}", case.name));
        g.sample_size(10).measurement_time(Duration::from_secs(10));
        g.throughput(Throughput::Elements((case.batch * BLOCK) as u64));
        g.bench_function(BenchmarkId::from_parameter(backend), |b| {
            b.iter(|| loss(&model_ad, ids_ad.clone()).backward())
        });
        g.finish();

        let prompt = tokens::<B>(1, 8, case.config.vocab_size, &device);
        for cached in [true, false] {
            let mode = if cached { "cached" } else { "uncached" };
            let mut g = c.benchmark_group(format!("decode/{}/{mode}", case.name));
            g.sample_size(10).measurement_time(Duration::from_secs(8));
            g.throughput(Throughput::Elements(case.new_tokens as u64));
            g.bench_function(BenchmarkId::from_parameter(backend), |b| {
                b.iter(|| decode(&model, prompt.clone(), case.new_tokens, cached).into_data())
            });
            g.finish();
        }
    }
}

fn benches(c: &mut Criterion) {
    bench_backend::<Flex>(c, "flex");
    bench_backend::<NdArray>(c, "ndarray");
}

criterion_group!(model, benches);
criterion_main!(model);
