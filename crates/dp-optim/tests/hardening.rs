//! Privacy hardening: no secret left in a finished checkpoint (and an owner-only one while
//! the run is unfinished), non-finite per-example norms excluded on every clipping path,
//! and `Auto` decided without private data.
//!
//! Longer than ~450 lines on purpose: each scenario builds on the same trainer, loss and
//! checkpoint helpers of this file, and the three concerns are read together in review.

mod common;

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use common::{B, Data, Net, TappedLoss, data, flat, net, weights};
use dp_optim::parallel::{DataParallelTrainer, Solo};
use dp_optim::{
    CHECKPOINT_SECRETS_FILE, Clipping, ClippingPath, DpOptimError, DpRng, DpTrainer, EngineConfig,
    ExampleLoss, LayerTap, LrSchedule, OptimizerConfig, PrivacyEngine, TrainerConfig,
};

fn config(n: usize, batch: f64, epochs: f64, path: ClippingPath) -> TrainerConfig {
    let mut engine = EngineConfig::new(3.0, 1e-5, epochs, n, batch, 1.0);
    engine.clipping_path = path;
    TrainerConfig {
        engine,
        optimizer: OptimizerConfig::Adam {
            beta_1: 0.9,
            beta_2: 0.99,
            epsilon: 1e-8,
            weight_decay: 0.0,
        },
        schedule: LrSchedule::Constant { lr: 0.05 },
    }
}

/// Every file under `dir` and its `.previous` / `.partial` siblings: (path, bytes).
fn files_around(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    fn walk(p: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        } else if p.is_file() {
            out.push((p.to_path_buf(), std::fs::read(p).unwrap()));
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.parent().unwrap()).unwrap() {
        walk(&entry.unwrap().path(), &mut out);
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The secret byte strings of a live engine: the ChaCha20 seed of its stream (raw and as
/// JSON text) and its sampling key (raw and as JSON text), when it has one.
fn secrets_of(engine: &PrivacyEngine) -> Vec<Vec<u8>> {
    let rng = serde_json::to_value(engine.state().rng.as_ref().unwrap()).unwrap();
    let seed: Vec<u8> = serde_json::from_value(rng["rng"]["seed"].clone()).unwrap();
    assert_eq!(seed.len(), 32, "{rng}");
    let mut out = vec![seed.clone(), serde_json::to_vec(&seed).unwrap()];
    if let Some(key) = &engine.state().sampling_key {
        out.push(key.bytes().to_vec());
        out.push(serde_json::to_vec(&key).unwrap());
    }
    out
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_unfinished_checkpoint_keeps_its_secrets_owner_only_and_a_finished_one_keeps_none() {
    let d = data(40, 3, 2.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    // q = 1/4, 2 epochs: 8 steps
    let mut trainer = DpTrainer::<B, Net<B>>::new(
        config(40, 10.0, 2.0, ClippingPath::Fast),
        DpRng::insecure_seeded(11),
    )
    .unwrap();
    let mut model = net(&Default::default());
    let mut loss = TappedLoss { data: &d };
    model = trainer.step(model, &mut loss).unwrap();
    let secrets = secrets_of(trainer.engine());
    trainer.save_checkpoint(&model, &dir).unwrap();

    // unfinished: the secrets file exists, owner-only, and is the only file holding them
    let secrets_path = dir.join(CHECKPOINT_SECRETS_FILE);
    assert!(secrets_path.is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700, "checkpoint directory");
        for (path, _) in files_around(&dir) {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    for (path, bytes) in files_around(&dir) {
        let holds = secrets.iter().any(|s| contains(&bytes, s));
        assert_eq!(holds, path == secrets_path, "{}", path.display());
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("trainer.json")).unwrap()).unwrap();
    assert!(state["engine"].get("rng").is_none(), "{state}");
    assert!(state["engine"].get("sampling_key").is_none(), "{state}");
    assert_eq!(state["engine"]["steps_taken"], 1);

    // to the end, checkpointing after every step
    let mut all_secrets = secrets;
    while trainer.can_step() {
        all_secrets.extend(secrets_of(trainer.engine()));
        model = trainer.step(model, &mut loss).unwrap();
        trainer.save_checkpoint(&model, &dir).unwrap();
    }
    all_secrets.extend(secrets_of(trainer.engine()));
    assert!(
        !secrets_path.exists(),
        "a finished checkpoint has no secrets file"
    );
    let files = files_around(&dir);
    assert!(
        files.iter().all(|(p, _)| p.starts_with(&dir)),
        "no sibling left"
    );
    for (path, bytes) in &files {
        for s in &all_secrets {
            assert!(!contains(bytes, s), "{} holds a secret", path.display());
        }
    }

    // the finished checkpoint loads: model, ledger, ε; it cannot step (an error, no panic)
    let (mut loaded, loaded_model) = DpTrainer::<B, Net<B>>::load_checkpoint(
        &dir,
        net(&Default::default()),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(weights(&loaded_model), weights(&model));
    assert_eq!(
        loaded.engine().state().ledger,
        trainer.engine().state().ledger
    );
    assert_eq!(
        loaded.engine().epsilon_spent().unwrap(),
        trainer.engine().epsilon_spent().unwrap()
    );
    assert!(loaded.engine().is_insecure(), "the insecure label is kept");
    assert!(loaded.engine().state().rng.is_none());
    assert!(!loaded.can_step());
    let failed = loaded.step(loaded_model, &mut loss).unwrap_err();
    assert!(
        matches!(failed.error, DpOptimError::BudgetExhausted { .. }),
        "{}",
        failed.error
    );
    // ... and neither can a data-parallel job started from it
    let (job, _) = DataParallelTrainer::start(loaded, failed.model, Solo).unwrap();
    assert!(!job.can_step());
}

#[test]
fn a_data_parallel_finished_checkpoint_keeps_no_sampling_key() {
    let d = data(30, 4, 2.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("job");
    let trainer = DpTrainer::<B, Net<B>>::new(
        config(30, 10.0, 1.0, ClippingPath::Generic),
        DpRng::insecure_seeded(3),
    )
    .unwrap();
    let (mut job, mut model) =
        DataParallelTrainer::start(trainer, net(&Default::default()), Solo).unwrap();
    let mut loss = TappedLoss { data: &d };
    model = job.step(model, &mut loss).unwrap();
    job.save_checkpoint(&model, &dir).unwrap();
    let secrets = secrets_of(job.trainer().engine());
    assert!(job.trainer().engine().state().sampling_key.is_some());
    assert_eq!(secrets.len(), 4, "seed and key, raw and as JSON");
    let held: Vec<_> = files_around(&dir)
        .into_iter()
        .filter(|(_, b)| secrets.iter().any(|s| contains(b, s)))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(held, vec![dir.join(CHECKPOINT_SECRETS_FILE)]);
    let text = std::fs::read(dir.join(CHECKPOINT_SECRETS_FILE)).unwrap();
    assert!(contains(&text, &secrets[1]), "the seed");
    assert!(contains(&text, &secrets[3]), "the sampling key");

    // resumed from the unfinished checkpoint: the key reaches the job again
    let (trainer, m) = DpTrainer::<B, Net<B>>::load_checkpoint(
        &dir,
        net(&Default::default()),
        &Default::default(),
    )
    .unwrap();
    let (mut job2, mut model2) = DataParallelTrainer::start(trainer, m, Solo).unwrap();
    assert_eq!(job2.local_batch(1), job.local_batch(1), "same key");
    while job.can_step() {
        model = job.step(model, &mut loss).unwrap();
        model2 = job2.step(model2, &mut loss).unwrap();
    }
    assert_eq!(weights(&model), weights(&model2), "resumed = uninterrupted");
    job2.save_checkpoint(&model2, &dir).unwrap();
    assert!(!dir.join(CHECKPOINT_SECRETS_FILE).exists());
    for (path, bytes) in files_around(&dir) {
        for s in &secrets {
            assert!(!contains(&bytes, s), "{} holds a secret", path.display());
        }
    }
}

#[test]
fn an_unfinished_checkpoint_without_its_secrets_file_is_refused_naming_it() {
    let d = data(40, 5, 2.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let mut trainer = DpTrainer::<B, Net<B>>::new(
        config(40, 10.0, 2.0, ClippingPath::Fast),
        DpRng::insecure_seeded(2),
    )
    .unwrap();
    let model = trainer
        .step(net(&Default::default()), &mut TappedLoss { data: &d })
        .unwrap();
    trainer.save_checkpoint(&model, &dir).unwrap();
    std::fs::remove_file(dir.join(CHECKPOINT_SECRETS_FILE)).unwrap();
    let error = DpTrainer::<B, Net<B>>::load_checkpoint(
        &dir,
        net(&Default::default()),
        &Default::default(),
    )
    .unwrap_err();
    match &error {
        DpOptimError::Checkpoint { path, .. } => {
            assert_eq!(path, &dir.join(CHECKPOINT_SECRETS_FILE))
        }
        other => panic!("{other}"),
    }
    assert!(
        error.to_string().contains(CHECKPOINT_SECRETS_FILE),
        "{error}"
    );
}

#[test]
fn a_checkpoint_of_the_old_format_is_refused_with_its_format() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("old");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("trainer.json"),
        r#"{"format": "dp-optim-checkpoint-1", "engine": {}}"#,
    )
    .unwrap();
    let error = DpTrainer::<B, Net<B>>::load_checkpoint(
        &dir,
        net(&Default::default()),
        &Default::default(),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("dp-optim-checkpoint-1"), "{text}");
    assert!(text.contains(dp_optim::CHECKPOINT_FORMAT), "{text}");
}

/// [`TappedLoss`] with a weight per record (0 removes a record's gradient).
struct Weighted<'a> {
    data: &'a Data,
    weight: Vec<f32>,
}

impl ExampleLoss<B, Net<B>> for Weighted<'_> {
    fn losses<T: LayerTap<B>>(&mut self, m: &Net<B>, ex: &[usize], tap: &mut T) -> Tensor<B, 1> {
        let w: Vec<f32> = ex.iter().map(|&i| self.weight[i]).collect();
        let w = Tensor::<B, 1>::from_data(TensorData::new(w, [ex.len()]), &Default::default());
        TappedLoss { data: self.data }.losses(m, ex, tap) * w
    }
}

/// `data(n)` with record 2's input NaN and record 5's target infinite.
fn poisoned(n: usize) -> (Data, Data) {
    let clean = data(n, 9, 2.0);
    let mut bad = data(n, 9, 2.0);
    bad.x[2][1] = f32::NAN;
    bad.y[5][0] = f32::INFINITY;
    (clean, bad)
}

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(x.is_finite(), "{what}: {x}");
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
            "{what}: {x} vs {y}"
        );
    }
}

#[test]
fn a_nan_or_infinite_example_adds_nothing_on_every_clipping_path() {
    let (_, bad) = poisoned(8);
    let model = net(&Default::default());
    let all: Vec<usize> = (0..8).collect();
    let kept: Vec<usize> = vec![0, 1, 3, 4, 6, 7];
    for clipping in [Clipping::Flat, Clipping::PerParameter] {
        // generic path
        let generic = |ex: &[usize]| {
            let one = |m: &Net<B>, i: usize| common::loss(m, &bad, i).reshape([1]);
            match clipping {
                Clipping::Flat => dp_optim::clipped_sum(&model, ex, 0.5, one).unwrap(),
                Clipping::PerParameter => {
                    dp_optim::clipped_sum_per_parameter(&model, ex, 0.5, one).unwrap()
                }
            }
        };
        let (with, without) = (generic(&all), generic(&kept));
        assert_eq!((with.nonfinite, without.nonfinite), (2, 0));
        assert_eq!(with.examples, 8);
        assert_eq!(with.clipped, without.clipped);
        assert_close(
            &flat(&model, &with.grads),
            &flat(&model, &without.grads),
            "generic",
        );
        // fast path
        let fast = |ex: &[usize]| {
            dp_optim::ghost::clipped_sum(&model, ex, 0.5, clipping, |m, ex, tape| {
                TappedLoss { data: &bad }.losses(m, ex, tape)
            })
            .unwrap()
        };
        let (with, without) = (fast(&all), fast(&kept));
        assert_eq!((with.nonfinite, without.nonfinite), (2, 0));
        assert_eq!(with.clipped, without.clipped);
        assert_close(
            &flat(&model, &with.grads),
            &flat(&model, &without.grads),
            "fast",
        );
    }
}

#[test]
fn a_nan_or_infinite_example_leaves_the_released_update_finite_and_unchanged_in_training() {
    // q = 1: every record in every batch; the poisoned records (2, 5) against the clean
    // data with those records' losses weighted by 0 (a gradient of 0 adds nothing either)
    let (clean, bad) = poisoned(10);
    let mut zeroed = vec![1.0; 10];
    zeroed[2] = 0.0;
    zeroed[5] = 0.0;
    for path in [ClippingPath::Generic, ClippingPath::Fast] {
        for clipping in [Clipping::Flat, Clipping::PerParameter] {
            let mut cfg = config(10, 10.0, 2.0, path);
            cfg.engine.clipping = clipping;
            cfg.engine.physical_batch_size = Some(4);
            let single = |d: &Data, weight: Vec<f32>| {
                let mut t =
                    DpTrainer::<B, Net<B>>::new(cfg.clone(), DpRng::insecure_seeded(8)).unwrap();
                let mut loss = Weighted { data: d, weight };
                let mut m = net_fixed();
                while t.can_step() {
                    m = t.step(m, &mut loss).unwrap();
                }
                (weights(&m), t.engine().nonfinite_examples())
            };
            let (a, count_a) = single(&bad, vec![1.0; 10]);
            let (b, count_b) = single(&clean, zeroed.clone());
            assert_eq!((count_a, count_b), (4, 0), "{path:?} {clipping:?}");
            assert!(a.iter().all(|v| v.is_finite()), "{path:?} {clipping:?}");
            let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            assert_close(&a64, &b64, "single worker");

            let parallel = |d: &Data, weight: Vec<f32>| {
                let t =
                    DpTrainer::<B, Net<B>>::new(cfg.clone(), DpRng::insecure_seeded(8)).unwrap();
                let (mut job, mut m) = DataParallelTrainer::start(t, net_fixed(), Solo).unwrap();
                let mut loss = Weighted { data: d, weight };
                let mut nonfinite = 0;
                while job.can_step() {
                    m = job.step(m, &mut loss).unwrap();
                    nonfinite += job.last_step().nonfinite;
                }
                (weights(&m), nonfinite)
            };
            let (a, count_a) = parallel(&bad, vec![1.0; 10]);
            let (b, count_b) = parallel(&clean, zeroed.clone());
            assert_eq!((count_a, count_b), (4, 0), "{path:?} {clipping:?}");
            let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            assert_close(&a64, &b64, "data parallel");
        }
    }
}

/// One fixed initial model (the same values in every call).
fn net_fixed() -> Net<B> {
    use std::sync::OnceLock;
    static INIT: OnceLock<Vec<f32>> = OnceLock::new();
    let m = net(&Default::default());
    let values = INIT.get_or_init(|| weights(&m)).clone();
    load(m, values)
}

fn load(model: Net<B>, values: Vec<f32>) -> Net<B> {
    use burn::module::{Module, ModuleMapper, Param};
    struct Fill(Vec<f32>, usize);
    impl ModuleMapper<B> for Fill {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (values, at) = (&self.0, &mut self.1);
            param.map(|t| {
                let shape = t.shape();
                let n = shape.num_elements();
                let v = values[*at..*at + n].to_vec();
                *at += n;
                Tensor::from_data(TensorData::new(v, shape), &t.device()).require_grad()
            })
        }
    }
    model.map(&mut Fill(values, 0))
}

/// [`TappedLoss`] that records the records of every call.
struct Recording<'a> {
    data: &'a Data,
    calls: Vec<Vec<usize>>,
}

impl ExampleLoss<B, Net<B>> for Recording<'_> {
    fn losses<T: LayerTap<B>>(&mut self, m: &Net<B>, ex: &[usize], tap: &mut T) -> Tensor<B, 1> {
        self.calls.push(ex.to_vec());
        TappedLoss { data: self.data }.losses(m, ex, tap)
    }
}

/// The calls `Auto` makes to decide on records `0..k`: fast (warm-up), generic, fast.
fn timing_calls(k: usize) -> Vec<Vec<usize>> {
    let all: Vec<usize> = (0..k).collect();
    let mut calls = vec![all.clone()];
    calls.extend((0..k).map(|i| vec![i]));
    calls.push(all);
    calls
}

#[test]
fn auto_decides_on_fixed_public_records_before_any_sample() {
    let d = data(1000, 6, 2.0);
    let model = net(&Default::default());
    // an empty batch: the decision is still made, on records 0..5
    let mut engine = PrivacyEngine::new(
        config(50, 5.0, 1.0, ClippingPath::Auto).engine,
        DpRng::insecure_seeded(1),
    )
    .unwrap();
    let mut loss = Recording {
        data: &d,
        calls: Vec::new(),
    };
    assert_eq!(engine.clipping_path(), None);
    let sum = engine.clipped_sum(&model, &[], &mut loss).unwrap();
    assert_eq!(sum.examples, 0);
    assert!(engine.clipping_path().is_some());
    assert_eq!(loss.calls, timing_calls(5));

    // a training step: the same calls come first whatever the seed (hence the batch size),
    // even when the first Poisson batch is empty (q = 1/5000: k = 2, the minimum)
    let mut empty_first = false;
    for seed in 0..12 {
        let mut trainer = DpTrainer::<B, Net<B>>::new(
            config(1000, 0.2, 0.0004, ClippingPath::Auto),
            DpRng::insecure_seeded(seed),
        )
        .unwrap();
        let mut loss = Recording {
            data: &d,
            calls: Vec::new(),
        };
        let _ = trainer.step(net(&Default::default()), &mut loss).unwrap();
        assert!(trainer.engine().clipping_path().is_some());
        assert_eq!(loss.calls[..4], timing_calls(2)[..], "seed {seed}");
        empty_first |= loss.calls.len() == 4;
    }
    assert!(empty_first, "some seed samples an empty first batch");
}

#[test]
fn a_resumed_run_keeps_the_path_auto_chose() {
    let d = data(50, 7, 2.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    let mut trainer = DpTrainer::<B, Net<B>>::new(
        config(50, 5.0, 1.0, ClippingPath::Auto),
        DpRng::insecure_seeded(4),
    )
    .unwrap();
    let mut loss = Recording {
        data: &d,
        calls: Vec::new(),
    };
    let model = trainer.step(net(&Default::default()), &mut loss).unwrap();
    let chosen = trainer.engine().clipping_path();
    assert!(chosen.is_some());
    trainer.save_checkpoint(&model, &dir).unwrap();
    let (mut resumed, model) = DpTrainer::<B, Net<B>>::load_checkpoint(
        &dir,
        net(&Default::default()),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(resumed.engine().clipping_path(), chosen);
    let mut loss = Recording {
        data: &d,
        calls: Vec::new(),
    };
    let _ = resumed.step(model, &mut loss).unwrap();
    assert_eq!(resumed.engine().clipping_path(), chosen);
    assert!(
        !loss.calls.starts_with(&timing_calls(5)),
        "not re-timed after the resume: {:?}",
        loss.calls
    );
}
