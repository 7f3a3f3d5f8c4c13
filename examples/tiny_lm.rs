//! Train a small GPT-2 from scratch on public text, measure its held-out perplexity, save it
//! as a Hugging Face checkpoint and score it again from disk.
//!
//! This is the non-private "stage 0" of DistilDP for users without pretrained checkpoints, in
//! miniature: a byte-level BPE tokenizer and a tiny model trained on *public* text (here the
//! Apache-2.0 license shipped with this repository, or any text file you pass).
//!
//! Run: `cargo run --release --example tiny_lm [-- TEXT_FILE [STEPS]]`
//! Output: `runs/tiny_lm/` holds `config.json`, `model.safetensors` and `tokenizer.json`
//! (opens in `transformers`, and in `distil-dp eval --model runs/tiny_lm --data FILE`).

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2Config, TokenizerTrainer, hf, perplexity};

/// mimalloc keeps freed pages for reuse: glibc's malloc hands each training step's large
/// buffers back to the kernel and faults them in again (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type B = Autodiff<Flex>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().map(String::as_str).unwrap_or("LICENSE-APACHE");
    let steps: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(300);
    let text = std::fs::read_to_string(path)?;
    let paragraphs: Vec<&str> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .collect();
    if paragraphs.len() < 5 {
        return Err(format!("{path}: need at least 5 paragraphs (blank-line separated)").into());
    }
    let cut = paragraphs.len() * 4 / 5;
    let (train, held_out) = paragraphs.split_at(cut);
    println!(
        "public text {path}: {} paragraphs for training, {} held out",
        train.len(),
        held_out.len()
    );

    // 1. A byte-level BPE tokenizer trained on the public training paragraphs.
    let tokenizer = TokenizerTrainer::new(512).train(train.iter())?;
    let stream = tokenizer.encode(&train.join("\n\n"))?;
    println!(
        "tokenizer: {} tokens; training stream: {} tokens",
        tokenizer.vocab_size(),
        stream.len()
    );

    // 2. A small GPT-2 (dropout 0.1: the text is small).
    let block = 64;
    let mut config = Gpt2Config::new(tokenizer.vocab_size(), block, 64, 2, 4).with_dropout(0.1);
    config.eos_token_id = Some(tokenizer.eos_id());
    let device = Default::default();
    let mut model = config.init::<B>(&device)?;
    let before = perplexity(&model.valid(), &tokenizer, held_out, block, 8, &device)?;
    println!(
        "held-out perplexity before training: {:.1}",
        before.perplexity
    );

    // 3. Train: random windows, next-token cross-entropy, Adam.
    let mut optim = AdamConfig::new().init();
    let batch = 8;
    let mut seed = 1u64;
    let started = Instant::now();
    for step in 1..=steps {
        let mut data = Vec::with_capacity(batch * block);
        for _ in 0..batch {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let start = (seed >> 33) as usize % (stream.len() - block);
            data.extend(stream[start..start + block].iter().map(|&t| t as i64));
        }
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(data, [batch, block]), &device);
        let logits = model.forward(ids.clone().narrow(1, 0, block - 1));
        let targets = ids.narrow(1, 1, block - 1).reshape([batch, block - 1, 1]);
        let loss = log_softmax(logits, 2).gather(2, targets).neg().mean();
        if step % 50 == 0 || step == 1 {
            let l: f32 = loss.clone().into_data().convert::<f32>().to_vec::<f32>()?[0];
            println!("step {step:4}: train loss {l:.3}");
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    let secs = started.elapsed().as_secs_f64();
    let model = model.valid();
    let after = perplexity(&model, &tokenizer, held_out, block, 8, &device)?;
    println!(
        "held-out perplexity after {steps} steps ({:.0} tokens/s): {:.1}",
        (steps * batch * block) as f64 / secs,
        after.perplexity
    );

    // 4. Save as a Hugging Face checkpoint and score it again from disk.
    let out = std::path::Path::new("runs/tiny_lm");
    hf::save(&model, out)?;
    tokenizer.save(out.join("tokenizer.json"))?;
    let reloaded = hf::load::<Flex>(out, &device)?;
    let again = perplexity(&reloaded, &tokenizer, held_out, block, 8, &device)?;
    println!(
        "saved to {}; reloaded perplexity {:.1} (same model)",
        out.display(),
        again.perplexity
    );
    println!(
        "score it on any text: cargo run --release -p distil-dp -- eval --model {} --data {path}",
        out.display()
    );
    Ok(())
}
