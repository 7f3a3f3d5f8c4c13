//! Train a small GPT-2 on private records with DP-SGD (DP-AdamW) at ε = 4, and compare it
//! with the same training without privacy.
//!
//! The "private" records are 2 000 short product reviews generated here from templates with a
//! fixed seed (so the example needs no download); the tokenizer is trained on the templates'
//! word lists only, which are public, so it learns nothing about any record. The privacy
//! engine calibrates σ for (ε = 4, δ = 1/N) over 4 epochs of Poisson batches (expected 64),
//! clips every example's gradient to norm 1 (on the fast ghost-clipping path or the generic
//! one, whichever it measures faster here), adds the noise once per step, keeps the ledger,
//! and checkpoints model + optimiser + engine to `runs/dp_finetune/`.
//!
//! Run: `cargo run --release --example dp_finetune`

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use causal_lm::{Gpt2, Gpt2Config, TokenBlocks, TokenizerTrainer, perplexity};
use dp_optim::{
    DpRng, DpTrainer, EngineConfig, ExampleLoss, LrSchedule, NoTap, OptimizerConfig,
    PoissonSampler, TrainerConfig,
};

/// mimalloc keeps freed pages for reuse: glibc's malloc hands each training step's large
/// buffers back to the kernel and faults them in again (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type B = Autodiff<Flex>;

const PRODUCTS: [&str; 8] = [
    "coffee", "toaster", "kettle", "blender", "lamp", "chair", "backpack", "umbrella",
];
const GOOD: [&str; 6] = [
    "great",
    "excellent",
    "sturdy",
    "lovely",
    "reliable",
    "quiet",
];
const BAD: [&str; 6] = ["flimsy", "noisy", "broken", "awful", "fragile", "useless"];
const ENDINGS: [&str; 4] = [
    "Would buy again.",
    "Arrived on time.",
    "Not worth the price.",
    "My family likes it.",
];

/// `n` reviews `"Stars: k\nThe P is A and A. E"`, positive adjectives for 4–5 stars.
fn reviews(n: usize, seed: u64) -> Vec<String> {
    let mut s = seed;
    let mut next = |m: usize| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) % m as u64) as usize
    };
    (0..n)
        .map(|_| {
            let stars = 1 + next(5);
            let words = if stars >= 4 { &GOOD } else { &BAD };
            format!(
                "Stars: {stars}\nThe {} is {} and {}. {}",
                PRODUCTS[next(8)],
                words[next(6)],
                words[next(6)],
                ENDINGS[next(4)]
            )
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = 2000;
    let all = reviews(n, 7);
    let (train, test) = all.split_at(n * 4 / 5);

    // Public: the word lists (no record). Private: the records.
    let public: Vec<String> = [&PRODUCTS[..], &GOOD, &BAD, &ENDINGS]
        .concat()
        .into_iter()
        .map(|w| format!("Stars: 1 2 3 4 5\nThe {w} is and. {w}"))
        .collect();
    let tokenizer = TokenizerTrainer::new(320).train(public.iter())?;
    let block = 32;
    // The private training set as fixed blocks; its per-example loss is each record's mean
    // next-token NLL (what DP-SGD clips).
    let mut records = TokenBlocks::<B>::new(&tokenizer, train, block, &Default::default())?;

    let mut config = Gpt2Config::new(tokenizer.vocab_size(), block, 64, 2, 4);
    config.eos_token_id = Some(tokenizer.eos_id());
    let device = Default::default();
    let initial = config.init::<B>(&device)?;
    let ppl = |m: &Gpt2<B>| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(perplexity(&m.valid(), &tokenizer, test, block, 16, &device)?.perplexity)
    };
    println!(
        "{} private training records, {} test records; vocabulary {}",
        train.len(),
        test.len(),
        tokenizer.vocab_size()
    );
    println!("test perplexity before training: {:.2}", ppl(&initial)?);

    // DP-AdamW at ε = 4, δ = N^-1.1 (below 1/N).
    let delta = distil_dp::pipeline::default_delta(train.len());
    let mut engine = EngineConfig::new(4.0, delta, 4.0, train.len(), 64.0, 1.0);
    engine.physical_batch_size = Some(64);
    let trainer_config = TrainerConfig {
        engine,
        optimizer: OptimizerConfig::AdamW {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.01,
        },
        schedule: LrSchedule::Cosine {
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 5,
        },
    };
    let mut trainer = DpTrainer::<B, Gpt2<B>>::new(trainer_config, DpRng::secure()?)?;
    let (_, planned) = trainer.engine().steps();
    println!(
        "DP-AdamW: sigma = {:.3}, q = {:.4}, {planned} steps, C = 1",
        trainer.engine().noise_multiplier(),
        trainer.engine().sample_rate()
    );
    let mut model = initial.clone();
    while trainer.can_step() {
        model = trainer.step(model, &mut records).map_err(|f| f.error)?;
    }
    // no training time: it depends on the private Poisson batch sizes
    let spent = trainer.engine().epsilon_spent()?;
    println!(
        "DP training: {planned} steps (clipping path: {:?}), epsilon spent {spent:.3} at delta {delta:.1e}",
        trainer
            .engine()
            .clipping_path()
            .expect("decided after a step"),
    );
    println!("test perplexity after DP training:  {:.2}", ppl(&model)?);
    let dir = std::path::Path::new("runs/dp_finetune");
    std::fs::create_dir_all("runs")?;
    trainer.save_checkpoint(&model, dir)?;
    println!(
        "checkpoint (keep it private: it holds the noise stream): {}",
        dir.display()
    );

    // The same number of steps without privacy (Poisson batches, no clipping, no noise).
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    let sampler = PoissonSampler::with_expected_batch(train.len(), 64.0)?;
    let mut rng = DpRng::secure()?;
    let schedule = LrSchedule::Cosine {
        lr: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 5,
    };
    let mut plain = initial;
    for step in 0..planned {
        let batch = sampler.sample(&mut rng);
        if batch.is_empty() {
            continue;
        }
        let loss = records.losses(&plain, &batch, &mut NoTap).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &plain);
        plain = optim.step(schedule.lr(step, planned), plain, grads);
    }
    println!("test perplexity without privacy:    {:.2}", ppl(&plain)?);
    Ok(())
}
