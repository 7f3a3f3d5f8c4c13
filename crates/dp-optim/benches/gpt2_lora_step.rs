//! One DP-SGD step of the tiny GPT-2 preset, full fine-tuning against LoRA adapters
//! (`causal_lm::LoraGpt2`, rank 8 on every projection, base frozen), on the same batch
//! (16 rows of 128 tokens) and backend (burn-flex), on both clipping paths:
//! `dp_step_lora/{full,lora}/{fast,generic}`. A step is: clipped sum, Gaussian noise on the
//! trainable parameters, SGD update.
//!
//! `cargo bench -p dp-optim --bench gpt2_lora_step` (a filter such as `fast` runs a subset).

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{Optimizer, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config, LoraConfig, LoraGpt2, next_token_nll};
use criterion::{Criterion, Throughput};
use dp_optim::{
    ClippingPath, DpRng, EngineConfig, ExampleLoss, LayerTap, PrivacyEngine, privatize,
};

type B = Autodiff<Flex>;
const BLOCK: usize = 128;
const ROWS: usize = 16;

struct Batch(Tensor<B, 2, Int>);

impl Batch {
    fn rows(&self, examples: &[usize]) -> Tensor<B, 2, Int> {
        let rows: Vec<i64> = examples.iter().map(|&i| i as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(rows, [examples.len()]),
            &Default::default(),
        );
        self.0.clone().select(0, index)
    }
}

impl ExampleLoss<B, Gpt2<B>> for Batch {
    fn losses<T: LayerTap<B>>(&mut self, m: &Gpt2<B>, ex: &[usize], tap: &mut T) -> Tensor<B, 1> {
        let t = self.rows(ex);
        next_token_nll(m.forward_tapped(t.clone(), None, tap), t, None)
    }
}

impl ExampleLoss<B, LoraGpt2<B>> for Batch {
    fn losses<T: LayerTap<B>>(
        &mut self,
        m: &LoraGpt2<B>,
        ex: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let t = self.rows(ex);
        next_token_nll(m.forward_tapped(t.clone(), None, tap), t, None)
    }
}

fn tokens(vocab: usize) -> Tensor<B, 2, Int> {
    let mut s = 12345u64;
    let data: Vec<i64> = (0..ROWS * BLOCK)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [ROWS, BLOCK]), &Default::default())
}

/// Times one DP step of `model` on `path`.
fn bench_model<M>(c: &mut Criterion, name: &str, model: M, batch: &mut Batch)
where
    M: AutodiffModule<B> + Clone,
    Batch: ExampleLoss<B, M>,
{
    for (label, path) in [
        ("fast", ClippingPath::Fast),
        ("generic", ClippingPath::Generic),
    ] {
        let mut config = EngineConfig::new(2.0, 1e-5, 1.0, 100_000, ROWS as f64, 1.0);
        config.clipping_path = path;
        let mut engine = PrivacyEngine::new(config, DpRng::secure().unwrap()).unwrap();
        let mut optim = SgdConfig::new().init::<B, M>();
        let mut rng = DpRng::secure().unwrap();
        let examples: Vec<usize> = (0..ROWS).collect();
        let mut group = c.benchmark_group("dp_step_lora");
        group.throughput(Throughput::Elements(ROWS as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(20));
        group.bench_function(format!("{name}/{label}"), |b| {
            b.iter(|| {
                let sum = engine.clipped_sum(&model, &examples, batch).unwrap();
                let sigma = engine.noise_multiplier();
                let update = privatize(&model, sum, sigma, 1.0, ROWS as f64, &mut rng).unwrap();
                optim.step(1e-4, model.clone(), update)
            })
        });
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let config = Gpt2Config::tiny();
    let device = Default::default();
    let full = config.init::<B>(&device).unwrap();
    dp_optim::initialise_params(&full);
    let lora = LoraConfig::new(8, 16.0)
        .init(full.clone(), &device)
        .unwrap();
    let mut batch = Batch(tokens(config.vocab_size));
    bench_model(&mut c, "full", full, &mut batch);
    bench_model(&mut c, "lora", lora, &mut batch);
    c.final_summary();
}
