//! The training driver (`dp_optim::drive`): the same training on one worker as the trainer's
//! own loop, the checkpoint cadence and the step limit, threads equal to a one-worker
//! data-parallel job, the one-worker fallback of a loss that cannot be replicated, and the
//! collective's byte broadcast.

mod common;

use std::time::Duration;

use burn::backend::NdArray;
use burn::tensor::Tensor;
use common::{B, Data, Net, TappedLoss, data, net, weights};
use dp_optim::parallel::{Collective, Solo, on_threads};
use dp_optim::train_kit::Cadence;
use dp_optim::{
    DpOptimError, DpRng, DpTrainer, DriveConfig, EngineConfig, ExampleLoss, LayerTap, LrSchedule,
    OptimizerConfig, Replicate, StepEvent, TrainerConfig, Workers, drive,
};

const N: usize = 96;

fn config() -> TrainerConfig {
    let mut engine = EngineConfig::new(4.0, 1e-5, 1.0, N, 16.0, 1.0);
    // a fixed path: `Auto` picks by timing, and the two paths round differently
    engine.clipping_path = dp_optim::ClippingPath::Fast;
    TrainerConfig {
        engine,
        optimizer: OptimizerConfig::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        },
        schedule: LrSchedule::Constant { lr: 0.05 },
    }
}

/// [`TappedLoss`] that can be copied for another worker (the records are shared).
struct Shared<'a>(TappedLoss<'a>);

impl ExampleLoss<B, Net<B>> for Shared<'_> {
    fn losses<T: LayerTap<B>>(&mut self, m: &Net<B>, ex: &[usize], tap: &mut T) -> Tensor<B, 1> {
        self.0.losses(m, ex, tap)
    }
}

impl Replicate<B> for Shared<'_> {
    fn replicate(&self, _device: &burn::backend::ndarray::NdArrayDevice) -> Option<Self> {
        Some(Shared(TappedLoss { data: self.0.data }))
    }
}

/// Not replicable: the default `None`.
impl Replicate<B> for TappedLoss<'_> {}

fn trainer(seed: u64) -> DpTrainer<B, Net<B>> {
    DpTrainer::new(config(), DpRng::insecure_seeded(seed)).unwrap()
}

#[test]
fn one_worker_trains_as_the_trainer_loop_with_its_cadence_and_limit() {
    let d: Data = data(N, 3, 2.0);
    let model = net(&Default::default());
    // the trainer's own loop
    let mut by_hand = trainer(7);
    let mut hand_model = model.clone();
    while by_hand.can_step() {
        hand_model = by_hand
            .step(hand_model, &mut TappedLoss { data: &d })
            .unwrap();
    }
    // the driver, in two calls: at most 4 steps, then the rest
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("job");
    let mut events: Vec<StepEvent> = Vec::new();
    let mut cfg = DriveConfig {
        checkpoint_dir: Some(ckpt.clone()),
        cadence: Cadence {
            checkpoint_every: 3,
            limit: Some(4),
        },
        ..DriveConfig::default()
    };
    let first = drive::<B, _, _, Solo>(
        trainer(7),
        model,
        &mut TappedLoss { data: &d },
        Workers::One,
        &cfg,
        &mut |e| events.push(*e),
    )
    .unwrap();
    assert_eq!(first.taken, 4);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join("trainer.json")).unwrap()).unwrap();
    assert_eq!(
        saved["engine"]["steps_taken"], 3,
        "checkpointed after step 3 only"
    );
    cfg.cadence.limit = None;
    let rest = drive::<B, _, _, Solo>(
        first.trainer,
        first.model,
        &mut TappedLoss { data: &d },
        Workers::One,
        &cfg,
        &mut |e| events.push(*e),
    )
    .unwrap();
    let planned = by_hand.engine().steps().1;
    assert_eq!(rest.taken + 4, planned);
    assert_eq!(weights(&rest.model), weights(&hand_model));
    assert_eq!(
        rest.trainer.engine().state().ledger,
        by_hand.engine().state().ledger
    );
    // one event per step, in order, one worker; ε and σ on checkpoint steps only
    assert_eq!(events.len() as u64, planned);
    for (i, e) in events.iter().enumerate() {
        let taken = i as u64 + 1;
        assert_eq!((e.taken, e.planned, e.workers), (taken, planned, 1));
        assert_eq!(
            e.checkpoint.is_some(),
            taken.is_multiple_of(3) || taken == planned,
            "step {taken}"
        );
    }
    let last = events.last().unwrap().checkpoint.unwrap();
    assert!(
        last.epsilon > 0.0 && last.epsilon <= 4.0,
        "{}",
        last.epsilon
    );
}

#[test]
fn threads_train_what_a_one_worker_job_trains() {
    let d = data(N, 5, 2.0);
    let model = net(&Default::default());
    let cfg = DriveConfig {
        timeout: Duration::from_secs(60),
        ..DriveConfig::default()
    };
    // one worker of a data-parallel job (the same key-based sampler as threads)
    let solo = drive(
        trainer(11),
        model.clone(),
        &mut Shared(TappedLoss { data: &d }),
        Workers::Processes(Solo),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let mut workers = Vec::new();
    let three = drive::<B, _, _, Solo>(
        trainer(11),
        model,
        &mut Shared(TappedLoss { data: &d }),
        Workers::Threads(vec![Default::default(); 3]),
        &cfg,
        &mut |e| workers.push(e.workers),
    )
    .unwrap();
    assert!(workers.iter().all(|&w| w == 3), "{workers:?}");
    for (a, b) in weights(&three.model).iter().zip(weights(&solo.model)) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
    }
    assert_eq!(
        three.trainer.engine().state().ledger,
        solo.trainer.engine().state().ledger
    );
}

#[test]
fn a_loss_that_cannot_be_replicated_runs_on_one_worker() {
    let d = data(N, 5, 2.0);
    let mut workers = Vec::new();
    let cfg = DriveConfig {
        cadence: Cadence {
            limit: Some(2),
            ..Cadence::default()
        },
        ..DriveConfig::default()
    };
    let done = drive::<B, _, _, Solo>(
        trainer(1),
        net(&Default::default()),
        &mut TappedLoss { data: &d },
        Workers::Threads(vec![Default::default(); 2]),
        &cfg,
        &mut |e| workers.push(e.workers),
    )
    .unwrap();
    assert_eq!(done.taken, 2);
    assert_eq!(workers, [1, 1]);
}

#[test]
fn broadcast_gives_every_worker_worker_0s_bytes_exactly() {
    let devices = vec![Default::default(); 3];
    let got = on_threads::<NdArray, _, DpOptimError>(
        &devices,
        Duration::from_secs(60),
        |rank, mut group| {
            let mine: Vec<u8> = if rank == 0 {
                (0..=255).collect()
            } else {
                vec![rank as u8; 7]
            };
            let got = Collective::<NdArray>::broadcast(&mut group, mine)?;
            group.finish()?;
            Ok(got)
        },
    );
    let expected: Vec<u8> = (0..=255).collect();
    for (rank, g) in got.into_iter().enumerate() {
        assert_eq!(g.unwrap(), expected, "worker {rank}");
    }
    assert_eq!(
        Collective::<NdArray>::broadcast(&mut Solo, vec![1, 2, 3]).unwrap(),
        [1, 2, 3]
    );
}
