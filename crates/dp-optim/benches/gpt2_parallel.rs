//! Data-parallel DP-SGD steps/s of the tiny GPT-2 preset with 1, 2 and 4 workers, for
//! `docs/benchmarks.md` (scaling is reported against the 1-worker run of the same sitting).
//!
//! * `dp_parallel/threads/W`: W threads of this process (`BurnCollective`, burn-flex);
//!   their forward/backward passes take turns (dp-optim's autodiff guard, burn#5573); each
//!   sample joins the job anew and times its steps after one warm-up step.
//! * `dp_parallel/processes/W`: W processes on loopback ([`TcpCollective`]), this binary
//!   re-run with `DP_PARALLEL_WORKER=rank,world,port,steps`; worker 0 times its steps after
//!   one warm-up step, so process start-up is not counted.
//!
//! One logical step: an expected batch of 32 of 512 records of 64 tokens, fast clipping path,
//! noise once, SGD. `cargo bench -p dp-optim --bench gpt2_parallel`.

#[path = "../../../benches/support/alloc.rs"]
mod alloc;

use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, Gpt2Config, next_token_nll};
use criterion::{Criterion, Throughput};
use dp_optim::parallel::{Collective, DataParallelTrainer, TcpCollective};
use dp_optim::{
    ClippingPath, DpRng, DpTrainer, EngineConfig, ExampleLoss, LayerTap, LrSchedule,
    OptimizerConfig, TrainerConfig,
};

type B = Autodiff<Flex>;
const BLOCK: usize = 64;
const RECORDS: usize = 512;
const BATCH: f64 = 32.0;

struct Records {
    tokens: Tensor<B, 2, Int>,
}

impl ExampleLoss<B, Gpt2<B>> for Records {
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

fn records(vocab: usize) -> Records {
    let mut s = 12345u64;
    let data: Vec<i64> = (0..RECORDS * BLOCK)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as i64
        })
        .collect();
    Records {
        tokens: Tensor::from_data(TensorData::new(data, [RECORDS, BLOCK]), &Default::default()),
    }
}

/// Joins the job and returns a closure running `n` steps (the time of those steps).
fn join<C: Collective<Flex>>(group: C) -> impl FnMut(u64) -> Duration {
    let config = Gpt2Config::tiny();
    let mut engine = EngineConfig::new(2.0, 1e-5, 10_000.0, RECORDS, BATCH, 1.0);
    engine.clipping_path = ClippingPath::Fast;
    let trainer = DpTrainer::<B, Gpt2<B>>::new(
        TrainerConfig {
            engine,
            optimizer: OptimizerConfig::default(),
            schedule: LrSchedule::Constant { lr: 1e-4 },
        },
        DpRng::secure().unwrap(),
    )
    .unwrap();
    let model = config.init::<B>(&Default::default()).unwrap();
    let (mut job, model) = DataParallelTrainer::start(trainer, model, group).unwrap();
    let mut data = records(config.vocab_size);
    let mut model = Some(model);
    move |n| {
        let start = Instant::now();
        for _ in 0..n {
            model = Some(job.step(model.take().unwrap(), &mut data).unwrap());
        }
        start.elapsed()
    }
}

/// `n` steps on `workers` threads of this process (dp-optim's launcher): each joins the job
/// and takes one warm-up step; worker 0 returns the time of the `n` steps after it, so
/// joining is not counted (as with processes).
fn threads(workers: usize, n: u64) -> Duration {
    let devices = vec![Default::default(); workers];
    let times = dp_optim::parallel::on_threads::<Flex, _, dp_optim::DpOptimError>(
        &devices,
        Duration::from_secs(60),
        |_, group| {
            let mut run = join(group);
            run(1);
            Ok(run(n))
        },
    );
    times.into_iter().next().expect("worker 0").unwrap()
}

/// In a child process: one worker of a loopback job; worker 0 prints the time of the steps.
fn process_worker(spec: &str) {
    let p: Vec<u64> = spec.split(',').map(|x| x.parse().unwrap()).collect();
    let (rank, world, port, steps) = (p[0] as usize, p[1] as usize, p[2], p[3]);
    let group = TcpCollective::connect(
        rank,
        world,
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(60),
    )
    .unwrap();
    let mut run = join(group);
    run(1);
    let took = run(steps);
    if rank == 0 {
        println!("{}", took.as_nanos());
    }
}

fn processes(workers: usize, steps: u64) -> Duration {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let children: Vec<_> = (0..workers)
        .map(|rank| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .env(
                    "DP_PARALLEL_WORKER",
                    format!("{rank},{workers},{port},{steps}"),
                )
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut took = Duration::ZERO;
    for (rank, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "worker {rank} failed");
        if rank == 0 {
            let text = String::from_utf8_lossy(&out.stdout);
            let nanos: u64 = text
                .lines()
                .rev()
                .find_map(|l| l.trim().parse().ok())
                .expect("worker 0's time");
            took = Duration::from_nanos(nanos);
        }
    }
    took
}

fn timings(c: &mut Criterion) {
    let mut group = c.benchmark_group("dp_parallel");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(BATCH as u64));
    for workers in [1, 2, 4] {
        group.bench_function(format!("threads/{workers}"), |b| {
            b.iter_custom(|n| threads(workers, n))
        });
    }
    for workers in [1, 2, 4] {
        group.bench_function(format!("processes/{workers}"), |b| {
            b.iter_custom(|n| processes(workers, n))
        });
    }
    group.finish();
}

fn main() {
    if let Ok(spec) = std::env::var("DP_PARALLEL_WORKER") {
        process_worker(&spec);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    timings(&mut c);
    c.final_summary();
}
