//! Stages 2 and 3 of DistilDP on a toy corpus: a DP teacher writes a synthetic corpus from
//! control codes, and a smaller student learns from it with the distillation loss
//! (λ·KL + (1−λ)·CE), next to the same student trained on the synthetic text's hard labels
//! only (λ = 0).
//!
//! 1. The "private" records: 2 000 short labelled reviews (product, stars) generated here
//!    from templates with a fixed seed; the tokenizer is trained on the public word lists and
//!    label names only.
//! 2. How many samples per control code: the private label counts released through the
//!    exact discrete Gaussian mechanism (σ = 20), recorded in a privacy ledger.
//! 3. Teacher (2 layers × 64) fine-tuned with DP-AdamW on `control code + review`, its σ
//!    calibrated so that the histogram and all its steps together spend ε = 3 (one ledger).
//! 4. 2 000 synthetic reviews sampled from the DP teacher with the paper's settings (top-k 50,
//!    top-p 0.9, no repeated bigram), streamed to `runs/synthesize_distill/synthetic.jsonl`.
//! 5. Two students (1 layer × 32) trained on the synthetic corpus only (post-processing: no
//!    further privacy cost), evaluated by perplexity on held-out private records.
//!
//! Run: `cargo run --release --example synthesize_distill` (under a minute on 2 cores).

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use causal_lm::{Gpt2, Gpt2Config, TokenBlocks, TokenizerTrainer, perplexity};
use dp_accounting::{PldAccountant, PrivacyLedger};
use dp_optim::{DpRng, DpTrainer, EngineConfig, LrSchedule, OptimizerConfig, TrainerConfig};
use kd_losses::{DistillConfig, distillation_loss};
use synth_gen::{CodeJob, ControlCodeFormat, GenerationConfig, JsonlSink, Synthesis, proportional};

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
const BLOCK: usize = 40;

/// A labelled review: `(product, stars, text)`; positive adjectives for 4–5 stars.
type Record = (usize, usize, String);

fn records(n: usize, seed: u64) -> Vec<Record> {
    let mut s = seed;
    let mut next = |m: usize| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) % m as u64) as usize
    };
    (0..n)
        .map(|_| {
            let product = next(8);
            // skewed label distribution: more 5-star than 1-star reviews
            let stars = [1, 2, 3, 4, 4, 5, 5, 5][next(8)];
            let words = if stars >= 4 { &GOOD } else { &BAD };
            let text = format!(
                "The {} is {} and {}. {}",
                PRODUCTS[product],
                words[next(6)],
                words[next(6)],
                ENDINGS[next(4)]
            );
            (product, stars, text)
        })
        .collect()
}

fn labels(product: usize, stars: usize) -> Vec<(String, String)> {
    vec![
        ("Product".to_string(), PRODUCTS[product].to_string()),
        ("Stars".to_string(), stars.to_string()),
    ]
}

/// A student trained on the synthetic blocks with `config` against the teacher's logits.
fn distil(
    config: &DistillConfig,
    student: Gpt2<B>,
    teacher: &Gpt2<B>,
    data: &TokenBlocks<B>,
    steps: usize,
) -> Result<Gpt2<B>, Box<dyn std::error::Error>> {
    let mut optim = AdamConfig::new().init();
    let mut student = student;
    let teacher = teacher.valid();
    let batch = 32;
    for step in 0..steps {
        let rows: Vec<usize> = (0..batch)
            .map(|i| (step * batch + i) % data.len())
            .collect();
        let (ids, mask) = data.rows(&rows);
        // The teacher is fixed: its logits come from the inner (non-autodiff) model.
        let teacher_logits = Tensor::from_inner(
            teacher
                .forward_full(ids.clone().inner(), Some(mask.clone().inner()), false)
                .logits,
        );
        let student_logits = student.forward_full(ids.clone(), Some(mask.clone()), false);
        let terms = distillation_loss(
            config,
            student_logits.logits,
            teacher_logits,
            ids,
            Some(mask),
            None,
        )?;
        let grads = GradientsParams::from_grads(terms.loss().backward(), &student);
        student = optim.step(3e-3, student, grads);
    }
    Ok(student)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let format = ControlCodeFormat::default();
    let all = records(2500, 11);
    let (train, test) = all.split_at(2000);
    let with_code = |r: &[Record]| -> Vec<String> {
        r.iter()
            .map(|(p, s, t)| format!("{}{t}", format.prompt(&labels(*p, *s))))
            .collect()
    };
    let train_texts = with_code(train);
    let test_texts = with_code(test);

    // Public: word lists and label names (no record).
    let mut public: Vec<String> = [&PRODUCTS[..], &GOOD, &BAD, &ENDINGS]
        .concat()
        .into_iter()
        .map(|w| format!("The {w} is and. {w}"))
        .collect();
    for p in 0..PRODUCTS.len() {
        for s in 1..=5 {
            public.push(format.prompt(&labels(p, s)));
        }
    }
    let tokenizer = TokenizerTrainer::new(320).train(public.iter())?;
    let device = Default::default();
    let mut private = TokenBlocks::<B>::new(&tokenizer, &train_texts, BLOCK, &device)?;

    // Samples per control code: the DP histogram of the private label counts, released
    // first and recorded in the ledger the teacher's DP-SGD then continues.
    let n = train.len();
    let delta = distil_dp::pipeline::default_delta(n);
    let codes: Vec<(usize, usize)> = (0..PRODUCTS.len())
        .flat_map(|p| (1..=5).map(move |s| (p, s)))
        .collect();
    let counts: Vec<u64> = codes
        .iter()
        .map(|c| train.iter().filter(|r| (r.0, r.1) == *c).count() as u64)
        .collect();
    let mut ledger = PrivacyLedger::new();
    let noisy: Vec<f64> = dp_optim::mechanisms::discrete_gaussian_histogram(
        &counts,
        20.0,
        &mut DpRng::secure()?,
        &mut ledger,
        "label-histogram",
    )?
    .into_iter()
    .map(|c| c as f64)
    .collect();
    let histogram_eps = ledger.epsilon(&PldAccountant::default(), delta)?.upper;
    println!("label histogram released with sigma 20 (alone: epsilon {histogram_eps:.3})");

    // Stage 1: the DP teacher; σ is calibrated so that the histogram and every DP-SGD step
    // together spend at most ε = 3.
    let mut teacher_config = Gpt2Config::new(tokenizer.vocab_size(), BLOCK, 64, 2, 4);
    teacher_config.eos_token_id = Some(tokenizer.eos_id());
    let mut engine = EngineConfig::new(3.0, delta, 4.0, n, 64.0, 1.0);
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
    let mut trainer = DpTrainer::<B, Gpt2<B>>::after(trainer_config, DpRng::secure()?, ledger)?;
    let mut teacher = teacher_config.init::<B>(&device)?;
    while trainer.can_step() {
        teacher = trainer.step(teacher, &mut private).map_err(|f| f.error)?;
    }
    let ppl = |m: &Gpt2<B>| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(perplexity(&m.valid(), &tokenizer, &test_texts, BLOCK, 32, &device)?.perplexity)
    };
    let ledger = &trainer.engine().state().ledger;
    println!(
        "DP teacher: {} DP-AdamW steps (sigma {:.3}), test perplexity {:.2}  [{:.0} s]",
        trainer.engine().steps().0,
        trainer.engine().noise_multiplier(),
        ppl(&teacher)?,
        start.elapsed().as_secs_f64()
    );
    println!(
        "privacy ledger ({} entries: {}): epsilon {:.3} at delta {delta:.1e}",
        ledger.entries().len(),
        ledger
            .entries()
            .iter()
            .map(|e| e.label.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        trainer.engine().epsilon_spent()?
    );

    let total = 2000;
    let jobs: Vec<CodeJob> = codes
        .iter()
        .zip(proportional(total, &noisy)?)
        .map(|(&(p, s), samples)| CodeJob {
            labels: labels(p, s),
            samples,
        })
        .collect();

    // Stage 2: the synthetic corpus (a fresh file: a new teacher is trained on every run).
    let dir = std::path::Path::new("runs/synthesize_distill");
    std::fs::create_dir_all(dir)?;
    let path = dir.join("synthetic.jsonl");
    let _ = std::fs::remove_file(&path);
    let (mut sink, _) = JsonlSink::open(&path, false)?;
    let generation = GenerationConfig {
        max_new_tokens: BLOCK / 2,
        ..GenerationConfig::default()
    };
    // Sampling is post-processing of the DP teacher: a fixed seed costs no privacy.
    let seed = 2024;
    let report = Synthesis::new(&tokenizer, &jobs, seed)
        .with_format(format.clone())
        .with_config(generation)
        .with_batch_size(64)
        .with_progress(true)
        .run(&teacher.valid(), &mut sink, 0, &device)?;
    println!(
        "synthetic corpus: {} samples kept of {} in {}  [{:.0} s]",
        report.written,
        report.total,
        path.display(),
        start.elapsed().as_secs_f64()
    );
    let synthetic: Vec<String> = std::fs::read_to_string(&path)?
        .lines()
        .map(|line| -> Result<String, Box<dyn std::error::Error>> {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let code = format.prompt(&[
                ("Product", v["Product"].as_str().unwrap_or_default()),
                ("Stars", v["Stars"].as_str().unwrap_or_default()),
            ]);
            Ok(format!("{code}{}", v["text"].as_str().unwrap_or_default()))
        })
        .collect::<Result<_, _>>()?;
    let data = TokenBlocks::<B>::new(&tokenizer, &synthetic, BLOCK, &device)?;

    // Stage 3: two students on the synthetic corpus only.
    let mut student_config = Gpt2Config::new(tokenizer.vocab_size(), BLOCK, 32, 1, 2);
    student_config.eos_token_id = Some(tokenizer.eos_id());
    let fresh = student_config.init::<B>(&device)?;
    let steps = 300;
    let distilled = distil(
        &DistillConfig::default(),
        fresh.clone(),
        &teacher,
        &data,
        steps,
    )?;
    let hard = DistillConfig {
        lambda: 0.0,
        ..DistillConfig::default()
    };
    let hard_only = distil(&hard, fresh, &teacher, &data, steps)?;
    println!("test perplexity on the private held-out records:");
    println!(
        "  DP teacher (2x64)                          {:.2}",
        ppl(&teacher)?
    );
    println!(
        "  student (1x32), KL + CE, lambda 0.4        {:.2}",
        ppl(&distilled)?
    );
    println!(
        "  student (1x32), hard labels only           {:.2}",
        ppl(&hard_only)?
    );
    println!("done in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
