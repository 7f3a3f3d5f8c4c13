//! The pipeline's two non-private training steps, in the quickstart's shapes, against
//! `scripts/peers/bench_train_step_torch.py` (the same steps in PyTorch) for
//! `docs/benchmarks.md`:
//!
//! * `train_step/pretrain/{teacher,student}`: one language-modelling step (mean next-token
//!   cross-entropy of the block, backward, AdamW update) of the default teacher (4 layers × 128,
//!   batch 64) or student (2 layers × 64, batch 32): vocabulary 2048, blocks of 64 tokens with
//!   an attention mask, as in stage 0 and the hard-label baseline.
//! * `train_step/distill`: one distillation step of stage 3 as `distil_dp::distill` runs it:
//!   the student's forward, the teacher's forward without autodiff, the default loss
//!   (λ = 0.4: forward KL at τ = 1 and cross-entropy), backward, AdamW update.
//!
//! Backend: burn-flex (the default CPU backend), release build. `cargo bench -p distil-dp
//! --bench train_step` (a filter such as `distill` runs a subset).

#[path = "../../../benches/support/alloc.rs"]
mod alloc;

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config, next_token_nll};
use criterion::{Criterion, Throughput};
use kd_losses::{DistillConfig, distillation_loss};
use train_kit::{DynOptimizer, OptimizerConfig};

// the command line's bench filter, shared by the workspace's benches
#[path = "../../../benches/support/filter.rs"]
mod filter;
use filter::{bench_filter, selected};

type B = Autodiff<Flex>;
const VOCAB: usize = 2048;
const BLOCK: usize = 64;

/// `(name, layers, width, heads, batch)` of the quickstart's two models.
const TEACHER: (&str, usize, usize, usize, usize) = ("teacher", 4, 128, 4, 64);
const STUDENT: (&str, usize, usize, usize, usize) = ("student", 2, 64, 4, 32);

fn model(layers: usize, width: usize, heads: usize) -> Gpt2<B> {
    Gpt2Config::new(VOCAB, BLOCK, width, layers, heads)
        .init::<B>(&Default::default())
        .expect("a valid configuration")
}

/// The pipeline's optimiser for both steps (AdamW, weight decay 0.01).
fn adamw() -> DynOptimizer<Gpt2<B>, B> {
    OptimizerConfig::AdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.01,
    }
    .init::<B, Gpt2<B>>()
}

/// Token ids (a fixed LCG) and an all-ones attention mask, `[batch, BLOCK]`.
fn batch(size: usize) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let mut s = 12345u64;
    let ids: Vec<i64> = (0..size * BLOCK)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % VOCAB as u64) as i64
        })
        .collect();
    let device = Default::default();
    (
        Tensor::from_data(TensorData::new(ids, [size, BLOCK]), &device),
        Tensor::ones([size, BLOCK], &device),
    )
}

fn pretrain_step(
    model: Gpt2<B>,
    optim: &mut DynOptimizer<Gpt2<B>, B>,
    ids: &Tensor<B, 2, Int>,
    mask: &Tensor<B, 2, Int>,
) -> Gpt2<B> {
    let logits = model
        .forward_full(ids.clone(), Some(mask.clone()), false)
        .logits;
    let loss = next_token_nll(logits, ids.clone(), Some(mask.clone())).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    optim.step(1e-3, model, grads)
}

fn distill_step(
    student: Gpt2<B>,
    teacher: &Gpt2<Flex>,
    optim: &mut DynOptimizer<Gpt2<B>, B>,
    ids: &Tensor<B, 2, Int>,
    mask: &Tensor<B, 2, Int>,
) -> Gpt2<B> {
    let output = student.forward_full(ids.clone(), Some(mask.clone()), false);
    let teacher_logits = teacher
        .forward_full(ids.clone().inner(), Some(mask.clone().inner()), false)
        .logits;
    let terms = distillation_loss(
        &DistillConfig::default(),
        output.logits,
        Tensor::from_inner(teacher_logits),
        ids.clone(),
        Some(mask.clone()),
        None,
    )
    .expect("valid loss settings");
    let grads = GradientsParams::from_grads(terms.loss().backward(), &student);
    optim.step(1e-3, student, grads)
}

fn benches(c: &mut Criterion, filter: &Option<String>) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));
    for (name, layers, width, heads, size) in [TEACHER, STUDENT] {
        if !selected(filter, &format!("train_step/pretrain/{name}")) {
            continue;
        }
        let (ids, mask) = batch(size);
        let mut optim = adamw();
        let mut m = Some(model(layers, width, heads));
        group.throughput(Throughput::Elements((size * BLOCK) as u64));
        group.bench_function(format!("pretrain/{name}"), |b| {
            b.iter(|| m = Some(pretrain_step(m.take().unwrap(), &mut optim, &ids, &mask)))
        });
    }
    if selected(filter, "train_step/distill") {
        let (_, t_layers, t_width, t_heads, _) = TEACHER;
        let (_, layers, width, heads, size) = STUDENT;
        let teacher = model(t_layers, t_width, t_heads).valid();
        let (ids, mask) = batch(size);
        let mut optim = adamw();
        let mut m = Some(model(layers, width, heads));
        group.throughput(Throughput::Elements((size * BLOCK) as u64));
        group.bench_function("distill", |b| {
            b.iter(|| {
                m = Some(distill_step(
                    m.take().unwrap(),
                    &teacher,
                    &mut optim,
                    &ids,
                    &mask,
                ))
            })
        });
    }
    group.finish();
}

fn main() {
    let filter = bench_filter();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &filter);
    c.final_summary();
}
