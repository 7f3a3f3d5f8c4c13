//! Distillation learns: a small GPT-2 student trained on a larger teacher's soft labels only
//! (λ = 1, no hard label) takes on the teacher's knowledge of a toy language, and the hidden
//! MSE through a learned projection aligns a narrower student's states with the teacher's.
//! Held-out batches, fixed seeds, a few seconds in release.

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config};
use kd_losses::{
    DistillConfig, HiddenProjection, HiddenStates, LayerMap, cross_entropy, distillation_loss,
};

type Ad = Autodiff<Flex>;
type Inner = Flex;

const VOCAB: usize = 32;
const SEQ: usize = 16;
const BATCH: usize = 16;

/// A toy language: each token is `(5·prev + 3) mod 32` with probability 0.8, else uniform.
/// The best possible next-token NLL (its entropy rate) is
/// −0.80625·ln 0.80625 − 31·0.00625·ln 0.00625 ≈ 1.16 nats; uniform guessing costs ln 32 ≈ 3.47.
fn batch<B: Backend>(seed: u64) -> Tensor<B, 2, Int> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut ids = Vec::with_capacity(BATCH * SEQ);
    for _ in 0..BATCH {
        let mut t = next() % VOCAB as u64;
        for _ in 0..SEQ {
            ids.push(t as i64);
            t = if next() % 10 < 8 {
                (5 * t + 3) % VOCAB as u64
            } else {
                next() % VOCAB as u64
            };
        }
    }
    Tensor::from_data(TensorData::new(ids, [BATCH, SEQ]), &Default::default())
}

fn model(width: usize, layers: usize) -> Gpt2<Ad> {
    Gpt2Config::new(VOCAB, SEQ, width, layers, 2)
        .init::<Ad>(&Default::default())
        .unwrap()
}

/// Mean next-token NLL of the true tokens.
fn nll(model: &Gpt2<Inner>, tokens: Tensor<Inner, 2, Int>) -> f64 {
    let logits = model.forward(tokens.clone()).narrow(1, 0, SEQ - 1);
    cross_entropy(logits, tokens.narrow(1, 1, SEQ - 1), None, 0.0)
        .unwrap()
        .mean()
        .into_scalar() as f64
}

/// The teacher: 2 layers × 32, trained on the true tokens.
fn teacher() -> Gpt2<Ad> {
    let mut t = model(32, 2);
    let mut optim = AdamConfig::new().init();
    for step in 0..150 {
        let x = batch::<Ad>(step);
        let logits = t.forward(x.clone()).narrow(1, 0, SEQ - 1);
        let loss = cross_entropy(logits, x.narrow(1, 1, SEQ - 1), None, 0.0)
            .unwrap()
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &t);
        t = optim.step(1e-2, t, grads);
    }
    t
}

/// Forward KL(teacher ‖ student) per token on a held-out batch.
fn held_out_kl(student: &Gpt2<Inner>, teacher: &Gpt2<Inner>) -> f64 {
    let x = batch::<Inner>(10_000);
    let config = DistillConfig {
        lambda: 1.0,
        ..DistillConfig::default()
    };
    distillation_loss(
        &config,
        student.forward(x.clone()),
        teacher.forward(x.clone()),
        x,
        None,
        None,
    )
    .unwrap()
    .divergence
    .mean()
    .into_scalar() as f64
}

#[test]
fn a_student_learns_the_language_from_soft_labels_alone() {
    let teacher = teacher();
    let teacher_nll = nll(&teacher.valid(), batch(10_000));
    assert!(
        teacher_nll < 1.4,
        "teacher should learn the toy language: {teacher_nll}"
    );
    let mut student = model(16, 1);
    let before = held_out_kl(&student.valid(), &teacher.valid());
    let config = DistillConfig {
        lambda: 1.0,
        ..DistillConfig::default()
    };
    let mut optim = AdamConfig::new().init();
    for step in 0..150 {
        let x = batch::<Ad>(1_000 + step);
        let t_logits = teacher.forward(x.clone());
        let s_logits = student.forward(x.clone());
        let loss = distillation_loss(&config, s_logits, t_logits, x, None, None)
            .unwrap()
            .loss();
        let grads = GradientsParams::from_grads(loss.backward(), &student);
        student = optim.step(1e-2, student, grads);
    }
    let after = held_out_kl(&student.valid(), &teacher.valid());
    let student_nll = nll(&student.valid(), batch(10_000));
    let uniform = (VOCAB as f64).ln();
    eprintln!(
        "KL {before:.4} -> {after:.4}; NLL student {student_nll:.3}, teacher {teacher_nll:.3}"
    );
    assert!(
        after < before / 5.0,
        "KL to the teacher: {before} -> {after}"
    );
    // Never shown a hard label, the student predicts the true tokens nearly as well.
    assert!(
        student_nll < teacher_nll + 0.25 && student_nll < uniform / 2.0,
        "student NLL {student_nll}, teacher {teacher_nll}, uniform {uniform}"
    );
}

#[derive(Module, Debug)]
struct Student<B: Backend> {
    lm: Gpt2<B>,
    projection: HiddenProjection<B>,
}

/// Hidden MSE (through the projection) between the student's last layer and the teacher's.
fn hidden_terms<B: Backend>(
    student: &Student<B>,
    teacher: &Gpt2<B>,
    x: Tensor<B, 2, Int>,
    config: &DistillConfig,
) -> kd_losses::DistillTerms<B> {
    let s = student.lm.forward_full(x.clone(), None, true);
    let t = teacher.forward_full(x.clone(), None, true);
    let map = LayerMap::last_only(1, 2);
    let hidden = HiddenStates {
        student: &s.hidden_states,
        teacher: &t.hidden_states,
        map: &map,
        projection: Some(&student.projection),
    };
    distillation_loss(config, s.logits, t.logits, x, None, Some(hidden)).unwrap()
}

#[test]
fn the_hidden_term_aligns_a_narrower_student_through_its_projection() {
    let teacher = teacher();
    let device = Default::default();
    let mut student = Student {
        lm: model(16, 1),
        projection: HiddenProjection::new(1, 16, 32, &device),
    };
    let config = DistillConfig {
        lambda: 1.0,
        alpha: 1.0,
        ..DistillConfig::default()
    };
    let mse = |s: &Student<Ad>| {
        hidden_terms(&s.valid(), &teacher.valid(), batch(10_000), &config)
            .hidden
            .expect("alpha > 0")
            .mean()
            .into_scalar() as f64
    };
    let before = mse(&student);
    let mut optim = AdamConfig::new().init();
    for step in 0..150 {
        let loss = hidden_terms(&student, &teacher, batch(1_000 + step), &config).loss();
        let grads = GradientsParams::from_grads(loss.backward(), &student);
        student = optim.step(1e-2, student, grads);
    }
    let after = mse(&student);
    eprintln!("hidden MSE {before:.4} -> {after:.4}");
    assert!(after < before / 4.0, "hidden MSE: {before} -> {after}");
}
