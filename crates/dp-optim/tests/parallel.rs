//! Data-parallel DP-SGD: 1 worker vs 4 thread workers vs 2 processes on loopback, noise
//! once, one ledger, a dead worker and the resumed job.
//!
//! Longer than ~450 lines on purpose: the thread and process scenarios share this file's
//! worker, outcome and loopback helpers (the process test re-runs this binary as a worker).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::NdArray;
use burn::module::{Module, ModuleMapper, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, TensorData};
use common::{B, Data, Net, TappedLoss, data, net, weights};
use dp_optim::parallel::{BurnCollective, Collective, DataParallelTrainer, Solo, TcpCollective};
use dp_optim::{
    DpOptimError, DpRng, DpTrainer, EngineConfig, ExampleLoss, LayerTap, LrSchedule,
    OptimizerConfig, TrainerConfig,
};

type Inner = NdArray;

const N: usize = 120;

/// A [`Net`] with the same values in every process and thread (burn's initialisers draw
/// from one process-wide generator that concurrent workers would share).
fn fixed_net() -> Net<B> {
    struct Fill(u64);
    impl ModuleMapper<B> for Fill {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let state = &mut self.0;
            param.map(|t| {
                let shape = t.shape();
                let values: Vec<f32> = (0..shape.num_elements())
                    .map(|_| {
                        *state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
                    })
                    .collect();
                Tensor::from_data(TensorData::new(values, shape), &t.device()).require_grad()
            })
        }
    }
    net(&Default::default()).map(&mut Fill(17))
}

fn config() -> TrainerConfig {
    let mut engine = EngineConfig::new(4.0, 1e-5, 1.0, N, 24.0, 1.0);
    engine.physical_batch_size = Some(8);
    // a fixed path: `Auto` picks by timing, and the two paths round differently
    engine.clipping_path = dp_optim::ClippingPath::Fast;
    TrainerConfig {
        engine,
        optimizer: OptimizerConfig::Adam {
            beta_1: 0.9,
            beta_2: 0.99,
            epsilon: 1e-8,
            weight_decay: 0.0,
        },
        schedule: LrSchedule::Constant { lr: 0.02 },
    }
}

/// What one worker ends with.
struct Outcome {
    weights: Vec<f32>,
    /// Batch size of every step (all workers together).
    examples: Vec<u64>,
    /// Worker 0's ledger as JSON, and ε spent.
    ledger: Option<(String, f64)>,
}

/// How a worker's run ends early.
#[derive(Clone, Copy)]
enum Stop {
    Never,
    /// Return (die) just before step `k`, without telling anyone.
    DieAt(u64),
}

/// Worker `rank`'s whole job: start (worker 0 from `checkpoint` when it exists), step until
/// the budget is spent or `stop`, checkpoint every 2 steps.
fn worker<C: Collective<Inner>>(
    group: C,
    d: &Data,
    checkpoint: Option<&Path>,
    stop: Stop,
) -> Result<(Outcome, C), DpOptimError> {
    let rank = group.rank();
    let device = Default::default();
    let rng = DpRng::insecure_seeded(if rank == 0 { 11 } else { 1000 + rank as u64 });
    let (trainer, model) = match checkpoint {
        Some(dir) if rank == 0 && dp_optim::checkpoint_exists(dir) => {
            DpTrainer::<B, Net<B>>::load_checkpoint(dir, net(&device), &device)?
        }
        _ => (DpTrainer::new(config(), rng)?, fixed_net()),
    };
    let (mut job, mut model) = DataParallelTrainer::start(trainer, model, group)?;
    let mut loss = TappedLoss { data: d };
    let mut examples = Vec::new();
    while job.can_step() {
        if let Stop::DieAt(k) = stop
            && job.steps().0 == k
        {
            let (_, group) = job.into_parts();
            // a dead worker never answers: keep its registration, stop calling
            std::mem::forget(group);
            return Err(DpOptimError::Collective {
                operation: "test",
                message: "died".into(),
            });
        }
        model = job.step(model, &mut loss).map_err(|f| f.error)?;
        examples.push(job.last_step().examples);
        if let Some(dir) = checkpoint
            && job.steps().0 % 2 == 0
        {
            job.save_checkpoint(&model, dir)?;
        }
    }
    let ledger = (rank == 0).then(|| {
        let engine = job.trainer().engine();
        (
            serde_json::to_string(&engine.state().ledger).unwrap(),
            engine.epsilon_spent().unwrap(),
        )
    });
    let (_, group) = job.into_parts();
    Ok((
        Outcome {
            weights: weights(&model),
            examples,
            ledger,
        },
        group,
    ))
}

/// `workers` threads of this process, each a [`BurnCollective`] worker.
fn threads(
    workers: usize,
    d: &Data,
    checkpoint: Option<&Path>,
    stops: &[Stop],
    timeout: Duration,
) -> Vec<Result<Outcome, DpOptimError>> {
    on_threads(workers, timeout, |rank, group| {
        let stop = stops.get(rank).copied().unwrap_or(Stop::Never);
        let (outcome, group) = worker(group, d, checkpoint, stop)?;
        group.finish()?;
        Ok(outcome)
    })
}

/// Runs `work(rank, group)` on `workers` threads of this process (dp-optim's launcher, on
/// the CPU device); a registration failure panics.
fn on_threads<T: Send>(
    workers: usize,
    timeout: Duration,
    work: impl Fn(usize, BurnCollective<Inner>) -> T + Sync,
) -> Vec<T> {
    let devices = vec![Default::default(); workers];
    dp_optim::parallel::on_threads::<Inner, T, DpOptimError>(&devices, timeout, |rank, group| {
        Ok(work(rank, group))
    })
    .into_iter()
    .map(|r| r.expect("registered"))
    .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + x.abs()),
            "{what}: weight {i}: {x} vs {y}"
        );
    }
}

#[test]
fn four_thread_workers_train_what_one_worker_trains_with_the_same_ledger() {
    let d = data(N, 5, 2.0);
    let (solo, _) = worker(Solo, &d, None, Stop::Never).unwrap();
    let four = threads(4, &d, None, &[], Duration::from_secs(60));
    let four: Vec<Outcome> = four.into_iter().map(Result::unwrap).collect();
    // the same Poisson samples at every step (the key decides, not the sharding) ...
    assert_eq!(four[0].examples, solo.examples);
    assert!(solo.examples.iter().any(|&n| n > 0));
    // ... the same clipped sums and the same single noise draw: the same model, up to
    // the order of the floating-point sums
    assert_close(&four[0].weights, &solo.weights, 1e-4, "4 workers vs 1");
    for w in &four[1..] {
        assert_eq!(
            w.weights, four[0].weights,
            "every worker holds worker 0's model"
        );
        assert_eq!(w.examples, four[0].examples);
        assert!(w.ledger.is_none());
    }
    // one ledger, equal to a single-device DpTrainer's with the same q, sigma and steps
    let (ledger, eps) = four[0].ledger.clone().unwrap();
    assert_eq!(Some((ledger.clone(), eps)), solo.ledger);
    let mut single = DpTrainer::<B, Net<B>>::new(config(), DpRng::insecure_seeded(3)).unwrap();
    let mut model = fixed_net();
    let mut loss = TappedLoss { data: &d };
    while single.can_step() {
        model = single.step(model, &mut loss).unwrap();
    }
    let engine = single.engine();
    assert_eq!(
        serde_json::to_string(&engine.state().ledger).unwrap(),
        ledger
    );
    assert_eq!(engine.epsilon_spent().unwrap(), eps);
    assert!(eps <= 4.0);
    assert_eq!(solo.examples.len() as u64, engine.steps().1);
}

/// A loss whose every gradient is zero: the update is the noise alone.
struct Zero;

impl ExampleLoss<B, Linear<B>> for Zero {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &Linear<B>,
        ex: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(vec![1.0f32; ex.len() * 64], [ex.len(), 64]),
            &Default::default(),
        );
        (tap.linear(model, x) * 0.0).sum_dim(1).reshape([ex.len()])
    }
}

#[test]
fn the_noise_is_added_once_whatever_the_number_of_workers() {
    let mut engine = EngineConfig::new(2.0, 1e-5, 1.0, 100, 10.0, 1.0);
    engine.clipping_path = dp_optim::ClippingPath::Generic;
    let cfg = TrainerConfig {
        engine,
        optimizer: OptimizerConfig::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        },
        schedule: LrSchedule::Constant { lr: 1.0 },
    };
    let workers = 4;
    let results: Vec<(Vec<f32>, Vec<f32>, f64)> =
        on_threads(workers, Duration::from_secs(60), |rank, group| {
            let device = Default::default();
            let rng = DpRng::insecure_seeded(rank as u64 + 40);
            let trainer = DpTrainer::<B, Linear<B>>::new(cfg.clone(), rng).unwrap();
            let model = LinearConfig::new(64, 64).init::<B>(&device);
            let (mut job, model) = DataParallelTrainer::start(trainer, model, group).unwrap();
            let before = weights(&model);
            let model = job.step(model, &mut Zero).unwrap();
            let sigma = job.trainer().engine().noise_multiplier();
            let (_, group) = job.into_parts();
            group.finish().unwrap();
            (before, weights(&model), sigma)
        });
    let (before, after, sigma) = &results[0];
    // update = -lr * noise / (q N): each coordinate N(0, (sigma C / (q N))^2) if the noise
    // is drawn once, 4 times that variance if each worker drew its own
    let deltas: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| (*a - *b) as f64)
        .collect();
    let n = deltas.len() as f64;
    let mean = deltas.iter().sum::<f64>() / n;
    let var = deltas.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let expected = (sigma * 1.0 / 10.0).powi(2);
    let ratio = var / expected;
    // 4160 coordinates: the variance estimate's relative sd is ~2.2%; 0.9..1.1 is > 4 sd
    assert!((0.9..1.1).contains(&ratio), "variance ratio {ratio}");
    assert!(mean.abs() < 4.0 * (expected / n).sqrt(), "mean {mean}");
    for (_, a, _) in &results[1..] {
        assert_eq!(a, after);
    }
}

#[test]
fn workers_with_different_configurations_are_refused_on_every_worker() {
    let errors: Vec<String> = on_threads(2, Duration::from_secs(60), |rank, group| {
        let mut cfg = config();
        if rank == 1 {
            cfg.engine.max_grad_norm = 2.0;
        }
        let trainer = DpTrainer::<B, Net<B>>::new(cfg, DpRng::insecure_seeded(1)).unwrap();
        let err = DataParallelTrainer::start(trainer, net(&Default::default()), group).unwrap_err();
        err.to_string()
    });
    assert!(errors[1].contains("max_grad_norm"), "{}", errors[1]);
    assert!(errors[0].contains("1 of 2 workers"), "{}", errors[0]);
}

#[test]
fn a_dead_worker_fails_the_step_and_the_job_resumes_from_its_checkpoint() {
    let d = data(N, 5, 2.0);
    let uninterrupted = threads(4, &d, None, &[], Duration::from_secs(60));
    let uninterrupted: Vec<Outcome> = uninterrupted.into_iter().map(Result::unwrap).collect();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("job");
    // worker 3 dies before step 3: the others' step 3 fails within the timeout
    let killed = threads(
        4,
        &d,
        Some(&ckpt),
        &[Stop::Never, Stop::Never, Stop::Never, Stop::DieAt(3)],
        Duration::from_secs(3),
    );
    for (rank, r) in killed.iter().enumerate() {
        let e = r.as_ref().err().expect("the job failed");
        if rank < 3 {
            assert!(
                matches!(
                    e,
                    DpOptimError::Collective {
                        operation: "all-reduce",
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("resume the job"), "{e}");
        }
    }
    // the checkpoint holds step 2 (written after step 2; step 3 was never recorded)
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join("trainer.json")).unwrap()).unwrap();
    assert_eq!(saved["engine"]["steps_taken"], 2);
    // restart the whole job (here with 2 workers: the key decides the samples, not the
    // sharding): the same model and ledger as the uninterrupted run
    let resumed = threads(2, &d, Some(&ckpt), &[], Duration::from_secs(60));
    let resumed: Vec<Outcome> = resumed.into_iter().map(Result::unwrap).collect();
    assert_close(
        &resumed[0].weights,
        &uninterrupted[0].weights,
        1e-4,
        "resumed vs uninterrupted",
    );
    assert_eq!(resumed[0].ledger, uninterrupted[0].ledger, "counted once");
    assert_eq!(
        resumed[0].examples[..],
        uninterrupted[0].examples[2..],
        "the same samples after the checkpoint"
    );
}

/// [`TappedLoss`], except that its first non-empty call returns one value too many.
struct FailsOnce<'a> {
    inner: TappedLoss<'a>,
    fail: bool,
}

impl ExampleLoss<B, Net<B>> for FailsOnce<'_> {
    fn losses<T: LayerTap<B>>(&mut self, m: &Net<B>, ex: &[usize], tap: &mut T) -> Tensor<B, 1> {
        let losses = self.inner.losses(m, ex, tap);
        if !ex.is_empty() && std::mem::take(&mut self.fail) {
            return Tensor::cat(vec![losses.clone(), losses.slice(0..1)], 0);
        }
        losses
    }
}

#[test]
fn a_worker_whose_loss_fails_makes_every_worker_abandon_the_step_which_can_be_retried() {
    let d = data(N, 5, 2.0);
    let outcomes: Vec<(String, u64, usize, u64)> =
        on_threads(2, Duration::from_secs(60), |rank, group| {
            let trainer = DpTrainer::<B, Net<B>>::new(config(), DpRng::insecure_seeded(1)).unwrap();
            let (mut job, model) = DataParallelTrainer::start(trainer, fixed_net(), group).unwrap();
            let mut loss = FailsOnce {
                inner: TappedLoss { data: &d },
                fail: rank == 1,
            };
            // worker 1's part of the first step with records fails
            let mut model = model;
            let error = loop {
                match job.step(model, &mut loss) {
                    Ok(m) => model = m,
                    Err(failed) => break failed,
                }
            };
            let failed_at = job.steps().0;
            let mut model = error.model;
            // the same step again, and the rest: every step recorded once
            while job.can_step() {
                model = job.step(model, &mut loss).map_err(|f| f.error).unwrap();
            }
            let entries = job.trainer().engine().state().ledger.entries().len();
            let recorded = job.trainer().engine().steps().0;
            let (_, group) = job.into_parts();
            group.finish().unwrap();
            (error.error.to_string(), failed_at, entries, recorded)
        });
    let (e0, at0, entries, recorded) = &outcomes[0];
    let (e1, at1, _, _) = &outcomes[1];
    assert!(e1.contains("the loss returned shape"), "{e1}");
    assert!(e0.contains("1 worker(s) could not compute"), "{e0}");
    assert_eq!(at0, at1, "both abandoned the same step");
    // steps are merged into one ledger entry; all planned steps recorded, none twice
    assert_eq!(*entries, 1);
    let planned = DpTrainer::<B, Net<B>>::new(config(), DpRng::insecure_seeded(1))
        .unwrap()
        .engine()
        .steps()
        .1;
    assert_eq!(*recorded, planned);
}

// ---- two processes on loopback ----

const ROLE: &str = "DP_OPTIM_TEST_WORKER";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Entry point of a worker process (this test binary re-run with [`ROLE`] set); does
/// nothing in a normal test run.
#[test]
#[ignore = "the entry point of worker processes started by the loopback test"]
fn process_worker() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    // rank,port,checkpoint,out,die_at
    let parts: Vec<&str> = role.split(',').collect();
    let rank: usize = parts[0].parse().unwrap();
    let d = data(N, 5, 2.0);
    let stop = match parts[4].parse::<u64>() {
        Ok(k) => Stop::DieAt(k),
        Err(_) => Stop::Never,
    };
    let timeout = Duration::from_secs(20);
    let address = format!("127.0.0.1:{}", parts[1]);
    let result = TcpCollective::connect(rank, 2, &address, timeout)
        .and_then(|g| g.with_timeout(timeout))
        .and_then(|g| worker(g, &d, Some(Path::new(parts[2])), stop));
    match result {
        Ok((outcome, _)) => {
            let json = serde_json::json!({
                "weights": outcome.weights,
                "examples": outcome.examples,
                "ledger": outcome.ledger,
            });
            std::fs::write(parts[3], json.to_string()).unwrap();
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("worker {rank} failed: {e}");
            std::process::exit(if matches!(stop, Stop::DieAt(_)) { 9 } else { 3 });
        }
    }
}

/// Starts two worker processes meeting at a free loopback port.
fn two_processes(ckpt: &Path, out: &Path, die_at: [Option<u64>; 2]) -> Vec<(i32, String)> {
    let port = free_port();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let role = format!(
                "{rank},{port},{},{},{}",
                ckpt.display(),
                out.join(format!("worker-{rank}.json")).display(),
                die_at[rank].map_or("-".to_string(), |k| k.to_string())
            );
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "process_worker", "--ignored", "--nocapture"])
                .env(ROLE, role)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .collect()
}

fn read(out: &Path, rank: usize) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join(format!("worker-{rank}.json"))).unwrap())
        .unwrap()
}

#[test]
fn two_processes_on_loopback_train_what_one_worker_trains_and_survive_a_killed_worker() {
    let d = data(N, 5, 2.0);
    let (solo, _) = worker(Solo, &d, None, Stop::Never).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    // an uninterrupted job of two processes
    let status = two_processes(&dir.path().join("a"), &out, [None, None]);
    for (code, _) in &status {
        assert_eq!(*code, 0, "{status:?}");
    }
    let (w0, w1) = (read(&out, 0), read(&out, 1));
    let weights: Vec<f32> = serde_json::from_value(w0["weights"].clone()).unwrap();
    assert_close(&weights, &solo.weights, 1e-4, "2 processes vs 1 worker");
    assert_eq!(w0["weights"], w1["weights"]);
    let examples: Vec<u64> = serde_json::from_value(w0["examples"].clone()).unwrap();
    assert_eq!(examples, solo.examples);
    let (ledger, eps) = solo.ledger.clone().unwrap();
    assert_eq!(w0["ledger"][0], serde_json::Value::String(ledger));
    assert_eq!(w0["ledger"][1], serde_json::json!(eps));

    // worker 1 dies before step 3: worker 0 fails cleanly (nothing hangs) ...
    let ckpt = dir.path().join("b");
    let status = two_processes(&ckpt, &out, [None, Some(3)]);
    assert_eq!(status[1].0, 9, "{}", status[1].1);
    assert_eq!(status[0].0, 3, "{}", status[0].1);
    assert!(
        status[0].1.contains("collective all-reduce failed"),
        "{}",
        status[0].1
    );
    assert!(status[0].1.contains("worker died"), "{}", status[0].1);
    // ... and the restarted job ends where the uninterrupted one did
    let status = two_processes(&ckpt, &out, [None, None]);
    for (code, err) in &status {
        assert_eq!(*code, 0, "{err}");
    }
    let resumed = read(&out, 0);
    let resumed_weights: Vec<f32> = serde_json::from_value(resumed["weights"].clone()).unwrap();
    assert_close(&resumed_weights, &weights, 1e-5, "resumed vs uninterrupted");
    assert_eq!(resumed["ledger"], w0["ledger"], "each step counted once");
}
