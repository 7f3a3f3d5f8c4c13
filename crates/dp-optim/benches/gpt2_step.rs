//! One DP-SGD step against one non-private step of GPT-2 on the same batch, model and
//! backend (burn-flex), in the shapes of `scripts/peers/bench_dp_step_opacus.py` (Opacus on
//! PyTorch), for `docs/benchmarks.md`.
//!
//! * `dp_step/{tiny,gpt2}/nonprivate`: mean next-token cross-entropy over `[batch, 128]`,
//!   backward, SGD update.
//! * `dp_step/{tiny,gpt2}/fast`: the same batch through dp-optim's fast path (ghost norms and
//!   book-keeping clipped sum), Gaussian noise on every parameter, SGD update.
//! * `dp_step/{tiny,gpt2}/generic`: the generic path (one backward per example) instead.
//!
//! Batch: tiny 16, gpt2 4. Before the timings, each variant's memory is measured in a fresh
//! process (this binary re-run with `DP_STEP_MEMORY=ID`): resident memory after building model
//! and batch, then the peak resident memory (Linux `VmHWM`, reset through
//! `/proc/self/clear_refs`) during one step; written to `target/dp-step-memory.json`.
//!
//! `cargo bench -p dp-optim --bench gpt2_step` (a filter such as `tiny` runs a subset; set
//! `DP_STEP_GENERIC_GPT2=1` to include the slow generic path on gpt2).
//!
//! `DP_STEP_PAIRED=N` replaces criterion by a paired design for the ratios: N rounds, each
//! one step of every selected variant of a model back to back (order rotating), then the
//! median time of each variant and the median over rounds of each variant's time divided by
//! the non-private step's of the same round (this VM's speed drifts by tens of percent over
//! minutes; a ratio of neighbouring steps does not). Written to `target/dp-step-paired.json`.

#[path = "../../../benches/support/alloc.rs"]
mod alloc;

use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config, next_token_nll};
use criterion::{Criterion, Throughput};
use dp_optim::{
    ClippingPath, DpRng, EngineConfig, ExampleLoss, LayerTap, PrivacyEngine, privatize,
};

// the command line's bench filter, shared by the workspace's benches
#[path = "../../../benches/support/filter.rs"]
mod filter;
use filter::{bench_filter, selected};

type B = Autodiff<Flex>;
const BLOCK: usize = 128;

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
            &Default::default(),
        );
        let tokens = self.tokens.clone().select(0, index);
        next_token_nll(
            model.forward_tapped(tokens.clone(), None, tap),
            tokens,
            None,
        )
    }
}

/// Initialises burn's lazily created parameters (so that the memory before a step holds them
/// all, and clones share them).
fn materialise(model: &Gpt2<B>) {
    struct Touch;
    impl ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}

fn tokens(batch: usize, vocab: usize) -> Tensor<B, 2, Int> {
    let mut s = 12345u64;
    let data: Vec<i64> = (0..batch * BLOCK)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as i64
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [batch, BLOCK]), &Default::default())
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    NonPrivate,
    Fast,
    Generic,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::NonPrivate => "nonprivate",
            Self::Fast => "fast",
            Self::Generic => "generic",
        }
    }
}

struct Setup {
    model: Gpt2<B>,
    batch: Batch,
    size: usize,
    engine: PrivacyEngine,
    optim: burn::optim::adaptor::OptimizerAdaptor<burn::optim::Sgd<Flex>, Gpt2<B>, B>,
}

fn setup(config: &Gpt2Config, size: usize, path: ClippingPath) -> Setup {
    let model = config.init::<B>(&Default::default()).unwrap();
    materialise(&model);
    let mut engine = EngineConfig::new(2.0, 1e-5, 1.0, 100_000, size as f64, 1.0);
    engine.clipping_path = path;
    Setup {
        model,
        batch: Batch {
            tokens: tokens(size, config.vocab_size),
        },
        size,
        engine: PrivacyEngine::new(engine, DpRng::secure().unwrap()).unwrap(),
        optim: SgdConfig::new().init(),
    }
}

/// One step; returns the updated model.
fn step(s: &mut Setup, variant: Variant, model: Gpt2<B>) -> Gpt2<B> {
    let update = match variant {
        Variant::NonPrivate => {
            let examples: Vec<usize> = (0..s.size).collect();
            let loss = s
                .batch
                .losses(&model, &examples, &mut dp_optim::NoTap)
                .mean();
            GradientsParams::from_grads(loss.backward(), &model)
        }
        Variant::Fast | Variant::Generic => {
            let examples: Vec<usize> = (0..s.size).collect();
            let sum = s
                .engine
                .clipped_sum(&model, &examples, &mut s.batch)
                .unwrap();
            let sigma = s.engine.noise_multiplier();
            let mut rng = DpRng::secure().unwrap();
            privatize(&model, sum, sigma, 1.0, s.size as f64, &mut rng).unwrap()
        }
    };
    s.optim.step(1e-4, model, update)
}

fn path(variant: Variant) -> ClippingPath {
    if variant == Variant::Generic {
        ClippingPath::Generic
    } else {
        ClippingPath::Fast
    }
}

fn cases() -> Vec<(&'static str, Gpt2Config, usize, Vec<Variant>)> {
    let mut gpt2 = vec![Variant::NonPrivate, Variant::Fast];
    if std::env::var_os("DP_STEP_GENERIC_GPT2").is_some() {
        gpt2.push(Variant::Generic);
    }
    vec![
        (
            "tiny",
            Gpt2Config::tiny(),
            16,
            vec![Variant::NonPrivate, Variant::Fast, Variant::Generic],
        ),
        ("gpt2", Gpt2Config::gpt2(), 4, gpt2),
    ]
}

/// A field of `/proc/self/status` in MiB (`VmRSS`, `VmHWM`).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .trim()
                .strip_suffix("kB")
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// In a child process: resident memory before one step and its peak during it.
fn measure_one(id: &str) {
    for (name, config, size, variants) in cases() {
        for variant in variants {
            if format!("dp_step/{name}/{}", variant.name()) != id {
                continue;
            }
            let mut s = setup(&config, size, path(variant));
            let model = s.model.clone();
            let before = status_mib("VmRSS");
            // "5" resets the peak resident set size (VmHWM) to the current one
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let model = step(&mut s, variant, model);
            let peak = status_mib("VmHWM");
            drop(model);
            println!(
                "{}",
                serde_json::json!({"id": id, "resident_mib": before, "peak_mib": peak,
                    "step_extra_mib": peak - before})
            );
        }
    }
}

/// Runs [`measure_one`] for every selected variant, each in a fresh process.
fn memory(filter: &Option<String>) {
    let mut rows = Vec::new();
    for (name, _, _, variants) in cases() {
        for variant in variants {
            let id = format!("dp_step/{name}/{}", variant.name());
            if !selected(filter, &id) {
                continue;
            }
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .env("DP_STEP_MEMORY", &id)
                .output()
                .expect("re-run the bench binary");
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(line) = text.lines().find(|l| l.starts_with('{')) {
                eprintln!("memory {line}");
                rows.push(serde_json::from_str::<serde_json::Value>(line).unwrap());
            }
        }
    }
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dp-step-memory.json");
    let _ = std::fs::write(&out, serde_json::to_string_pretty(&rows).unwrap());
}

fn timings(c: &mut Criterion, filter: &Option<String>) {
    let mut group = c.benchmark_group("dp_step");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(20));
    for (name, config, size, variants) in cases() {
        for variant in variants {
            // building gpt2 and calibrating σ takes seconds: only for the benches that run
            if !selected(filter, &format!("dp_step/{name}/{}", variant.name())) {
                continue;
            }
            let mut s = setup(&config, size, path(variant));
            let mut model = Some(s.model.clone());
            group.throughput(Throughput::Elements(size as u64));
            group.bench_function(format!("{name}/{}", variant.name()), |b| {
                b.iter(|| {
                    let m = model.take().unwrap();
                    model = Some(step(&mut s, variant, m));
                })
            });
        }
    }
    group.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `DP_STEP_PAIRED=rounds`: see the crate doc.
fn paired(rounds: usize, filter: &Option<String>) {
    let mut rows = Vec::new();
    for (name, config, size, variants) in cases() {
        let variants: Vec<Variant> = variants
            .into_iter()
            .filter(|v| {
                *v == Variant::NonPrivate
                    || selected(filter, &format!("dp_step/{name}/{}", v.name()))
            })
            .collect();
        if variants.len() < 2 {
            continue;
        }
        let mut setups: Vec<(Variant, Setup, Option<Gpt2<B>>)> = variants
            .iter()
            .map(|&v| {
                let s = setup(&config, size, path(v));
                let m = Some(s.model.clone());
                (v, s, m)
            })
            .collect();
        let mut run = |k: usize| {
            let (variant, s, model) = &mut setups[k];
            let t = std::time::Instant::now();
            let m = model.take().unwrap();
            *model = Some(step(s, *variant, m));
            t.elapsed().as_secs_f64()
        };
        for k in 0..variants.len() {
            run(k); // warm-up
        }
        let mut times = vec![Vec::new(); variants.len()];
        for round in 0..rounds {
            for j in 0..variants.len() {
                let k = (round + j) % variants.len();
                times[k].push(run(k));
            }
        }
        let base = &times[0];
        for (k, v) in variants.iter().enumerate() {
            let ratios: Vec<f64> = times[k].iter().zip(base).map(|(t, b)| t / b).collect();
            let row = serde_json::json!({
                "id": format!("dp_step/{name}/{}", v.name()),
                "rounds": rounds,
                "median_s": median(times[k].clone()),
                "median_ratio_to_nonprivate": median(ratios),
            });
            eprintln!("paired {row}");
            rows.push(row);
        }
    }
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dp-step-paired.json");
    let _ = std::fs::write(&out, serde_json::to_string_pretty(&rows).unwrap());
}

fn main() {
    if let Ok(id) = std::env::var("DP_STEP_MEMORY") {
        measure_one(&id);
        return;
    }
    if let Some(rounds) = std::env::var("DP_STEP_PAIRED")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        paired(rounds.max(1), &bench_filter());
        return;
    }
    let filter = bench_filter();
    memory(&filter);
    let mut c = Criterion::default().configure_from_args();
    timings(&mut c, &filter);
    c.final_summary();
}
