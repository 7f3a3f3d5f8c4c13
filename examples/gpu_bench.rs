//! GPT-2 (124 M parameters, random weights, blocks of 128 tokens) on the CUDA backend: one
//! non-private training step against one DP-SGD step on the same batch, at each batch size
//! asked for; writes one JSON object.
//!
//! * `nonprivate`: mean next-token cross-entropy over `[batch, 128]`, backward, SGD update.
//! * `fast`: the same batch through dp-optim's fast path (ghost norms and book-keeping clipped
//!   sum), Gaussian noise on every parameter, SGD update.
//! * `generic`: dp-optim's generic path (one backward per example) instead.
//!
//! The steps are those of `crates/dp-optim/benches/gpt2_step.rs` (the CPU benchmark), built
//! with the same public APIs. Each variant runs `--warmup` untimed steps (the first ones
//! compile the GPU kernels), then `--steps` timed ones; the device is synchronised
//! (`Backend::sync`) before the clock is read, so a step's time includes all of its GPU work.
//!
//! GPU memory: burn 0.21 has no peak-memory counter. What cubecl's compute client reports
//! (`ComputeClient::memory_usage`) is read after every step: `bytes_reserved` (the memory
//! pool's reservation: it only grows during a variant, so its largest value bounds the peak
//! from above) and `bytes_in_use` (live allocations between steps, the model and optimiser
//! state). The pool is cleaned (`Backend::memory_cleanup`) before each variant, which may
//! or may not give pages back to the driver; the reservations of successive variants are
//! therefore upper bounds, not exact peaks.
//!
//! Run (on a machine with an NVIDIA GPU and its driver):
//! `cargo run --release --features cuda --example gpu_bench -- --batch 8,32 --steps 5 --out
//! target/gpu-bench.json`

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Instant;

use burn::backend::cuda::CudaDevice;
use burn::backend::{Autodiff, Cuda};
use burn::cubecl::Runtime;
use burn::cubecl::cuda::CudaRuntime;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config, next_token_nll};
use clap::Parser;
use dp_optim::{
    ClippingPath, DpRng, EngineConfig, ExampleLoss, LayerTap, NoTap, PrivacyEngine, privatize,
};
use serde_json::{Value, json};

/// mimalloc keeps freed pages for reuse: glibc's malloc hands each training step's large
/// buffers back to the kernel and faults them in again (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type B = Autodiff<Cuda>;
const BLOCK: usize = 128;

/// GPT-2 training steps, non-private and DP-SGD, on the CUDA backend.
#[derive(Debug, Parser)]
#[command(name = "gpu_bench")]
struct Args {
    /// Batch sizes (sequences of 128 tokens each), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    batch: Vec<usize>,
    /// Timed steps per variant and batch size.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps before them (kernel compilation, memory pool growth).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// DP clipping paths to measure, comma-separated: fast, generic.
    #[arg(long, value_delimiter = ',', default_value = "fast,generic")]
    paths: Vec<String>,
    /// Write the JSON object here (it is printed on stdout in any case).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The batch: per-example next-token losses of rows of `tokens`.
struct Batch {
    tokens: Tensor<B, 2, Int>,
}

impl ExampleLoss<B, Gpt2<B>> for Batch {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &Gpt2<B>,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let rows: Vec<i64> = examples.iter().map(|&i| i as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(rows, [examples.len()]),
            &self.tokens.device(),
        );
        let tokens = self.tokens.clone().select(0, index);
        next_token_nll(
            model.forward_tapped(tokens.clone(), None, tap),
            tokens,
            None,
        )
    }
}

/// Initialises burn's lazily created parameters (so that clones share them) and counts them.
fn materialise(model: &Gpt2<B>) -> usize {
    struct Touch(usize);
    impl ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0 += param.val().shape().num_elements();
        }
    }
    let mut touch = Touch(0);
    model.visit(&mut touch);
    touch.0
}

/// `[batch, 128]` pseudo-random token ids below `vocab`.
fn tokens(batch: usize, vocab: usize, device: &CudaDevice) -> Tensor<B, 2, Int> {
    let mut s = 12345u64;
    let data: Vec<i64> = (0..batch * BLOCK)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [batch, BLOCK]), device)
}

/// One variant at one batch size: model, data, privacy engine (unused when non-private).
struct Setup {
    batch: Batch,
    size: usize,
    path: Option<ClippingPath>,
    engine: PrivacyEngine,
}

impl Setup {
    /// One step from `model`; returns the updated model.
    fn step<O: Optimizer<Gpt2<B>, B>>(&mut self, optim: &mut O, model: Gpt2<B>) -> Gpt2<B> {
        let examples: Vec<usize> = (0..self.size).collect();
        let update = match self.path {
            None => {
                let loss = self.batch.losses(&model, &examples, &mut NoTap).mean();
                GradientsParams::from_grads(loss.backward(), &model)
            }
            Some(_) => {
                let sum = self
                    .engine
                    .clipped_sum(&model, &examples, &mut self.batch)
                    .expect("clipped sum");
                let sigma = self.engine.noise_multiplier();
                let mut rng = DpRng::secure().expect("OS randomness");
                privatize(&model, sum, sigma, 1.0, self.size as f64, &mut rng).expect("noise")
            }
        };
        optim.step(1e-4, model, update)
    }
}

/// Memory pool usage of the device in MiB: `(reserved, in_use)`.
fn memory_mib(device: &CudaDevice) -> Option<(f64, f64)> {
    let usage = CudaRuntime::client(device).memory_usage().ok()?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    Some((mib(usage.bytes_reserved), mib(usage.bytes_in_use)))
}

/// Synchronises the device, turning a failure into a panic (caught per variant).
fn sync(device: &CudaDevice) {
    B::sync(device).expect("device sync");
}

/// Runs one variant: warm-up, timed steps; its JSON row (without the ratio).
fn measure(
    config: &Gpt2Config,
    size: usize,
    path: Option<ClippingPath>,
    args: &Args,
    device: &CudaDevice,
) -> Value {
    B::memory_cleanup(device);
    let model = config.init::<B>(device).expect("GPT-2 config");
    let parameters = materialise(&model);
    let mut engine = EngineConfig::new(2.0, 1e-5, 1.0, 100_000, size as f64, 1.0);
    if let Some(p) = path {
        engine.clipping_path = p;
    }
    let mut setup = Setup {
        batch: Batch {
            tokens: tokens(size, config.vocab_size, device),
        },
        size,
        path,
        engine: PrivacyEngine::new(engine, DpRng::secure().expect("OS randomness"))
            .expect("privacy engine"),
    };
    let mut optim = SgdConfig::new().init::<B, Gpt2<B>>();
    let mut model = model;
    sync(device);
    let started = Instant::now();
    for _ in 0..args.warmup {
        model = setup.step(&mut optim, model);
        sync(device);
    }
    let warmup_s = started.elapsed().as_secs_f64();
    let mut times_ms = Vec::with_capacity(args.steps);
    let (mut reserved, mut in_use) = (None::<f64>, None::<f64>);
    for _ in 0..args.steps {
        let t = Instant::now();
        model = setup.step(&mut optim, model);
        sync(device);
        times_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some((r, u)) = memory_mib(device) {
            reserved = Some(reserved.map_or(r, |m| m.max(r)));
            in_use = Some(in_use.map_or(u, |m| m.max(u)));
        }
    }
    drop(model);
    let mean = times_ms.iter().sum::<f64>() / times_ms.len().max(1) as f64;
    let min = times_ms.iter().copied().fold(f64::INFINITY, f64::min);
    json!({
        "parameters": parameters,
        "warmup_s": warmup_s,
        "ms_per_step": mean,
        "ms_per_step_min": min,
        "ms_per_step_all": times_ms,
        "tokens_per_s": (size * BLOCK) as f64 / (mean / 1e3),
        "sequences_per_s": size as f64 / (mean / 1e3),
        "memory_reserved_mib_max": reserved,
        "memory_in_use_mib_max": in_use,
    })
}

/// The message of a caught panic.
fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".to_string())
}

/// The JSON object: the settings, and the rows measured so far.
fn report(args: &Args, backend: &Result<String, String>, rows: &[Value], complete: bool) -> Value {
    json!({
        "model": "gpt2 (Gpt2Config::gpt2(), random weights)",
        "backend": backend.as_ref().ok(),
        "backend_error": backend.as_ref().err(),
        "block": BLOCK,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "optimizer": "SGD lr 1e-4",
        "dp": "clip C = 1, sigma for epsilon 2 (delta 1e-5, one epoch of 100000 records at the batch size), secure noise",
        "memory_note": "cubecl ComputeClient::memory_usage after each timed step: reserved = memory pool reservation (upper bound of the peak), in_use = live allocations between steps; burn 0.21 exposes no peak counter",
        "complete": complete,
        "results": rows,
    })
}

/// Writes `report` to `--out`, if given.
fn write(args: &Args, report: &Value) {
    let Some(out) = &args.out else { return };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    // through a temporary file, so that a run killed while writing leaves the previous
    // version, never a truncated one
    let text = serde_json::to_string_pretty(report).expect("JSON");
    let tmp = out.with_extension("json.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, out)) {
        eprintln!("cannot write {}: {e}", out.display());
    }
}

fn main() {
    let args = Args::parse();
    let config = Gpt2Config::gpt2();
    let device = CudaDevice::default();
    let mut variants: Vec<(&str, Option<ClippingPath>)> = vec![("nonprivate", None)];
    for p in &args.paths {
        match p.as_str() {
            "fast" => variants.push(("fast", Some(ClippingPath::Fast))),
            "generic" => variants.push(("generic", Some(ClippingPath::Generic))),
            other => {
                eprintln!("unknown clipping path `{other}` (choose fast or generic)");
                std::process::exit(2);
            }
        }
    }
    // no GPU or no driver: one clear error (the driver's message), not one per variant
    let backend = distil_dp::backend::check_device(distil_dp::backend::BackendKind::Cuda)
        .map_err(|e| e.to_string())
        .and_then(|()| std::panic::catch_unwind(|| B::name(&device)).map_err(panic_message));
    let mut rows = Vec::new();
    let sizes = if backend.is_ok() {
        &args.batch[..]
    } else {
        &[]
    };
    for &size in sizes {
        let mut nonprivate_ms = None;
        for &(name, path) in &variants {
            eprintln!("gpt2 batch {size} {name} ...");
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                measure(&config, size, path, &args, &device)
            }));
            let mut row = json!({"batch": size, "block": BLOCK, "variant": name});
            match outcome {
                Ok(Value::Object(fields)) => {
                    let ms = fields["ms_per_step"].as_f64();
                    if path.is_none() {
                        nonprivate_ms = ms;
                    }
                    let ratio = ms.zip(nonprivate_ms).map(|(dp, np)| dp / np);
                    row["ratio_to_nonprivate"] = json!(ratio);
                    row.as_object_mut().unwrap().extend(fields);
                    row["error"] = Value::Null;
                }
                Ok(other) => row["error"] = json!(format!("unexpected result {other}")),
                Err(e) => row["error"] = json!(panic_message(e)),
            }
            eprintln!("{row}");
            rows.push(row);
            // rewritten after every variant: a run cut short keeps what it measured
            write(&args, &report(&args, &backend, &rows, false));
        }
    }
    let summary = report(&args, &backend, &rows, true);
    write(&args, &summary);
    println!("{}", serde_json::to_string_pretty(&summary).expect("JSON"));
    let failed = rows.iter().any(|row| !row["error"].is_null());
    if failed || backend.is_err() {
        std::process::exit(1);
    }
}
