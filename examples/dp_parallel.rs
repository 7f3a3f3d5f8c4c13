//! Data-parallel DP-SGD of a small GPT-2 on the embedded private records, on several worker
//! processes (one machine or several) or several threads of one process, with one ledger
//! and one checkpoint.
//!
//! The tokenizer is trained on the embedded corpus's public texts only. Every worker reads
//! the same records (it computes on its own shard of them); worker 0 holds the privacy
//! engine, draws the noise once per step, writes `runs/dp_parallel/checkpoint` every 5 steps
//! and prints ε at the end. Kill any worker and start the same commands again: the job
//! resumes from the checkpoint (worker 0 must see the same `runs/dp_parallel` directory).
//!
//! ```sh
//! # one process, 2 worker threads (with the `cuda` build of a program: one GPU each)
//! cargo run --release --example dp_parallel -- --threads 2
//! # 2 processes on this machine (or on two machines: use worker 0's address)
//! cargo run --release --example dp_parallel -- --rank 0 --world 2 --address 127.0.0.1:29500 &
//! cargo run --release --example dp_parallel -- --rank 1 --world 2 --address 127.0.0.1:29500
//! ```

use std::path::Path;
use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use causal_lm::{Gpt2, Gpt2Config, TokenBlocks, Tokenizer, TokenizerTrainer};
use dp_optim::parallel::TcpCollective;
use dp_optim::train_kit::Cadence;
use dp_optim::{
    DpRng, DpTrainer, DriveConfig, EngineConfig, LrSchedule, OptimizerConfig, TrainerConfig,
    Workers, drive,
};

/// mimalloc keeps freed pages for reuse: glibc's malloc hands each training step's large
/// buffers back to the kernel and faults them in again (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type B = Autodiff<Flex>;
const BLOCK: usize = 48;
const RECORDS: usize = 1200;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn config(records: usize) -> TrainerConfig {
    // ε = 3, δ = N^-1.1 (below 1/N), 2 epochs of Poisson batches of 48 expected records, C = 1
    let engine = EngineConfig::new(
        3.0,
        distil_dp::pipeline::default_delta(records),
        2.0,
        records,
        48.0,
        1.0,
    );
    TrainerConfig {
        engine,
        optimizer: OptimizerConfig::AdamW {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.01,
        },
        schedule: LrSchedule::Constant { lr: 2e-3 },
    }
}

/// This process's part of the job (`workers`: its threads, or its place among processes),
/// run by dp-optim's driver; worker 0 resumes from and writes the checkpoint.
fn run(
    workers: Workers<B, TcpCollective>,
    rank: usize,
    world: usize,
    tokenizer: &Tokenizer,
    texts: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let device = Default::default();
    let mut model_config = Gpt2Config::new(tokenizer.vocab_size(), BLOCK, 64, 2, 4);
    model_config.eos_token_id = Some(tokenizer.eos_id());
    let fresh: Gpt2<B> = model_config.init(&device)?;
    let checkpoint = Path::new("runs/dp_parallel/checkpoint");
    let (trainer, model) = if rank == 0 && dp_optim::checkpoint_exists(checkpoint) {
        DpTrainer::load_checkpoint(checkpoint, fresh, &device)?
    } else {
        (
            DpTrainer::new(config(texts.len()), DpRng::secure()?)?,
            fresh,
        )
    };
    let mut records = TokenBlocks::<B>::new(tokenizer, texts, BLOCK, &device)?;
    let (taken, planned) = trainer.engine().steps();
    println!("worker {rank}/{world}: step {taken} of {planned}");
    let config = DriveConfig {
        checkpoint_dir: (rank == 0).then(|| checkpoint.to_path_buf()),
        cadence: Cadence {
            checkpoint_every: 5,
            limit: None,
        },
        timeout: Duration::from_secs(120),
    };
    // the realised batch size, the clipped count and the step's time are not printed: they
    // come from the private Poisson sample, without noise
    let driven = drive(
        trainer,
        model,
        &mut records,
        workers,
        &config,
        &mut |e| match e.checkpoint {
            Some(at) => println!(
                "step {}/{} (checkpoint): ε spent {:.3}",
                e.taken, e.planned, at.epsilon
            ),
            None => println!("step {}/{}", e.taken, e.planned),
        },
    )?;
    if rank == 0 {
        let engine = driven.trainer.engine();
        println!(
            "done: σ = {:.3}, q = {:.4}, ε = {:.3} at δ = {:.1e} (one ledger for all {world} workers)",
            engine.noise_multiplier(),
            engine.sample_rate(),
            engine.epsilon_spent()?,
            engine.state().config.delta
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let public = distil_dp::embedded::public_texts(400);
    let tokenizer = TokenizerTrainer::new(512).train(public.iter())?;
    let texts: Vec<String> = distil_dp::embedded::private_records(RECORDS)
        .into_iter()
        .map(|r| r.text)
        .collect();
    if let Some(n) = arg("--threads") {
        let workers: usize = n.parse()?;
        // one thread per device (the CPU for each on a CPU backend)
        let devices = vec![Default::default(); workers];
        return run(Workers::Threads(devices), 0, workers, &tokenizer, &texts);
    }
    let rank: usize = arg("--rank").unwrap_or_else(|| "0".into()).parse()?;
    let world: usize = arg("--world").unwrap_or_else(|| "1".into()).parse()?;
    let address = arg("--address").unwrap_or_else(|| "127.0.0.1:29500".into());
    let group = TcpCollective::connect(rank, world, &address, Duration::from_secs(120))?;
    run(Workers::Processes(group), rank, world, &tokenizer, &texts)
}
