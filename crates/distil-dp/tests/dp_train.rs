//! DP-SGD training in the pipeline: a run interrupted and resumed from its checkpoint ends
//! exactly where an uninterrupted run ends, with every step accounted once, prior releases
//! included.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use causal_lm::{CausalLm, Gpt2};
use distil_dp::blocks::TokenBlocks;
use distil_dp::config::{ModelConfig, PipelineConfig};
use distil_dp::dp_train::{DpTraining, Progress, fresh_model, train};
use distil_dp::prepare::tokenizer;
use distil_dp::progress::StepLine;
use distil_dp::run_dir::RunDir;
use dp_accounting::{DpEvent, PrivacyLedger};
use dp_optim::ClippingPath;

type B = Autodiff<Flex>;

/// The tiny teacher, its data, a prior release and a run directory.
struct Setup {
    _tmp: tempfile::TempDir,
    config: PipelineConfig,
    dir: RunDir,
    tok: causal_lm::Tokenizer,
    data: TokenBlocks<B>,
    initial: Gpt2<B>,
    prior: PrivacyLedger,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = PipelineConfig {
        output_dir: tmp.path().join("run"),
        ..PipelineConfig::default()
    };
    config.tokenizer.vocab_size = 300;
    config.teacher.model = ModelConfig {
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        ..ModelConfig::default()
    };
    config.teacher.epochs = 0.3;
    config.teacher.expected_batch_size = 16.0;
    config.teacher.clipping_path = ClippingPath::Generic; // Auto's timing-based choice is not reproducible
    let dir = RunDir::open(&config).unwrap();
    let tok = tokenizer(&config, &dir).unwrap();
    let texts: Vec<String> = distil_dp::embedded::private_records(200)
        .into_iter()
        .map(|r| r.text)
        .collect();
    let device = Default::default();
    let data = TokenBlocks::<B>::new(&tok, &texts, 32, &device).unwrap();
    let initial: Gpt2<B> = fresh_model(
        &config.teacher.model,
        tok.vocab_size(),
        tok.eos_id(),
        32,
        1,
        &device,
    )
    .unwrap();
    let mut prior = PrivacyLedger::new();
    prior
        .record(
            "label-histogram",
            DpEvent::Gaussian {
                noise_multiplier: 10.0,
            },
        )
        .unwrap();
    Setup {
        _tmp: tmp,
        config,
        dir,
        tok,
        data,
        initial,
        prior,
    }
}

fn training(config: &PipelineConfig, workers: usize) -> DpTraining<'_> {
    DpTraining {
        label: "teacher",
        settings: &config.teacher,
        epsilon: 2.0,
        delta: 1e-3,
        accountant: config.privacy.accountant,
        insecure_noise_seed: Some(5),
        checkpoint_every: 2,
        workers,
        processes: None,
        dataset: Some("tiny-data"),
    }
}

/// Another starting teacher (seed 2): what a resumed training is given, which its
/// checkpoint replaces.
fn other_model(s: &Setup) -> Gpt2<B> {
    fresh_model(
        &s.config.teacher.model,
        s.tok.vocab_size(),
        s.tok.eos_id(),
        32,
        2,
        &Default::default(),
    )
    .unwrap()
}

fn logits(model: &Gpt2<B>, data: &TokenBlocks<B>) -> Vec<f32> {
    let (ids, _) = data.rows(&[0, 1]);
    model
        .valid()
        .forward_lm(ids.inner(), None, false)
        .logits
        .into_data()
        .to_vec::<f32>()
        .unwrap()
}

#[test]
fn an_interrupted_run_resumes_exactly_and_accounts_every_step_once() {
    let Setup {
        config,
        dir,
        tok,
        mut data,
        initial,
        prior,
        ..
    } = setup();
    let device = Default::default();
    let (ids, _) = data.rows(&[0]);
    let training = training(&config, 1);
    let mut lines = Vec::new();
    let mut log = |v: &StepLine| lines.push(v.to_json());

    let whole = dir.model_dir("whole");
    let (Progress::Done(a), _) = train(
        &training,
        initial.clone(),
        &mut data,
        prior.clone(),
        &whole,
        None,
        &mut log,
    )
    .unwrap() else {
        panic!("no limit: done");
    };
    let parts = dir.model_dir("parts");
    let paused = train(
        &training,
        initial.clone(),
        &mut data,
        prior.clone(),
        &parts,
        Some(3),
        &mut log,
    )
    .unwrap();
    let (Progress::Paused { taken: 3, planned }, _) = paused else {
        panic!("paused after 3 steps: {paused:?}");
    };
    assert!(planned > 3, "{planned}");
    // resumed with a different starting model: the checkpoint decides
    let other = fresh_model(
        &config.teacher.model,
        tok.vocab_size(),
        tok.eos_id(),
        32,
        2,
        &device,
    )
    .unwrap();
    // a checkpoint made on other data is refused, whatever the settings
    let elsewhere = DpTraining {
        dataset: Some("other-data"),
        ..training.clone()
    };
    let e = train(
        &elsewhere,
        other.clone(),
        &mut data,
        prior.clone(),
        &parts,
        None,
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("data") && e.contains("tiny-data"), "{e}");
    let (Progress::Done(b), summary) = train(
        &training,
        other,
        &mut data,
        prior.clone(),
        &parts,
        None,
        &mut log,
    )
    .unwrap() else {
        panic!("resumed to the end");
    };
    let la = a
        .valid()
        .forward_lm(ids.clone().inner(), None, false)
        .logits;
    let lb = b.valid().forward_lm(ids.inner(), None, false).logits;
    assert_eq!(
        (la - lb).abs().max().into_scalar(),
        0.0,
        "bit-identical models"
    );

    // the ledger: the histogram once, then every planned step once, within the budget
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parts.join("trainer.json")).unwrap())
            .unwrap();
    let text = state.to_string();
    assert_eq!(text.matches("label-histogram").count(), 1, "{text}");
    let last = lines.last().unwrap();
    assert_eq!(last["steps"], planned);
    let eps = last["epsilon"].as_f64().unwrap();
    assert!(eps <= 2.0 && eps > 1.9, "{eps}");
    assert_eq!((summary.steps, summary.planned_steps), (planned, planned));
    assert_eq!(summary.epsilon, eps);
    assert_eq!(
        summary.ledger.entries().len(),
        2,
        "histogram + the merged steps"
    );
    assert!(summary.insecure);
    assert!(
        lines.iter().all(|l| !l.to_string().contains("Business")),
        "no data in logs"
    );
    assert!(
        lines.iter().all(|l| l.get("seconds").is_none()),
        "no step times (they reveal the private batch sizes)"
    );
}

#[test]
fn several_workers_train_one_model_with_one_ledger_and_resume_with_another_count() {
    let Setup {
        config,
        dir,
        tok,
        mut data,
        initial,
        prior,
        ..
    } = setup();
    let mut workers = Vec::new();
    let mut log = |v: &StepLine| workers.push(v.to_json()["workers"].as_u64().unwrap());
    let two = training(&config, 2);
    let (Progress::Done(a), whole) = train(
        &two,
        initial.clone(),
        &mut data,
        prior.clone(),
        &dir.model_dir("two"),
        None,
        &mut log,
    )
    .unwrap() else {
        panic!("done");
    };
    // the same budget, sigma, q and steps as one worker: the same ledger and epsilon
    let (Progress::Done(_), single) = train(
        &training(&config, 1),
        initial.clone(),
        &mut data,
        prior.clone(),
        &dir.model_dir("one"),
        None,
        &mut log,
    )
    .unwrap() else {
        panic!("done");
    };
    assert_eq!(whole.ledger, single.ledger);
    assert_eq!(whole.epsilon, single.epsilon);
    assert!(whole.epsilon <= 2.0);
    // paused after 3 steps with 2 workers, resumed with 3: the model of the uninterrupted
    // 2-worker run (the key decides the samples, worker 0's stream the noise)
    let parts = dir.model_dir("parts");
    let paused = train(
        &two,
        initial.clone(),
        &mut data,
        prior.clone(),
        &parts,
        Some(3),
        &mut log,
    )
    .unwrap();
    assert!(matches!(paused.0, Progress::Paused { taken: 3, .. }));
    let other = fresh_model(
        &config.teacher.model,
        tok.vocab_size(),
        tok.eos_id(),
        32,
        2,
        &Default::default(),
    )
    .unwrap();
    let (Progress::Done(b), resumed) = train(
        &training(&config, 3),
        other,
        &mut data,
        prior.clone(),
        &parts,
        None,
        &mut log,
    )
    .unwrap() else {
        panic!("resumed to the end");
    };
    assert_eq!(resumed.ledger, whole.ledger, "every step counted once");
    let steps = whole.planned_steps as usize;
    let expected: Vec<u64> = [
        vec![2; steps],
        vec![1; steps],
        vec![2; 3],
        vec![3; steps - 3],
    ]
    .concat();
    assert_eq!(workers, expected, "the workers each step ran on");
    let (la, lb) = (logits(&a, &data), logits(&b, &data));
    let worst = la
        .iter()
        .zip(&lb)
        .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "2 workers vs 2 then 3: {worst}");
    let lone = logits(&initial, &data);
    assert!(la.iter().zip(&lone).any(|(x, y)| x != y), "it trained");
}

#[test]
fn the_dpkd_loss_is_replicated_to_every_worker() {
    let Setup {
        config,
        dir,
        data,
        initial,
        prior,
        ..
    } = setup();
    let teacher = initial.valid();
    let mut kd = distil_dp::blocks::KdBlocks {
        blocks: data,
        teacher: std::borrow::Cow::Borrowed(&teacher),
        loss: kd_losses::DistillConfig {
            alpha: 0.0,
            ..config.student.loss.clone()
        },
    };
    let mut workers = Vec::new();
    let mut log = |v: &StepLine| workers.push(v.to_json()["workers"].as_u64().unwrap());
    let run = |n: usize,
               name: &str,
               kd: &mut distil_dp::blocks::KdBlocks<'_, B>,
               log: &mut dyn FnMut(&StepLine)| {
        let (Progress::Done(_), summary) = train(
            &training(&config, n),
            initial.clone(),
            kd,
            prior.clone(),
            &dir.model_dir(name),
            None,
            log,
        )
        .unwrap() else {
            panic!("done");
        };
        summary
    };
    let two = run(2, "kd-two", &mut kd, &mut log);
    let one = run(1, "kd-one", &mut kd, &mut log);
    assert_eq!(two.ledger, one.ledger);
    let steps = two.planned_steps as usize;
    assert_eq!(workers, [vec![2; steps], vec![1; steps]].concat());
}

#[test]
fn dp_lora_trains_the_adapters_alone_resumes_exactly_and_spends_the_planned_budget() {
    let mut s = setup();
    let other = other_model(&s);
    let (data, initial, prior) = (&mut s.data, &s.initial, &s.prior);
    let device = Default::default();
    let adapters = causal_lm::LoraConfig::new(2, 4.0).with_seed(9);
    let lora = adapters.init(initial.clone(), &device).unwrap();
    let training = training(&s.config, 1);
    let (Progress::Done(a), whole) = train(
        &training,
        lora.clone(),
        data,
        prior.clone(),
        &s.dir.model_dir("lora-whole"),
        None,
        &mut |_| {},
    )
    .unwrap() else {
        panic!("done");
    };
    // LoRA changes what is trained, not the mechanism: the ledger of the plan, which does not
    // depend on the model
    let planned = distil_dp::dp_train::plan(&training, data.len(), prior.clone()).unwrap();
    assert_eq!(whole.ledger, planned.ledger);
    assert_eq!(whole.noise_multiplier, planned.noise_multiplier);
    // the base is frozen, the adapters moved
    assert_eq!(
        logits(&a.base, data),
        logits(initial, data),
        "base untouched"
    );
    let merged = a.merge();
    assert_ne!(logits(&merged, data), logits(initial, data), "it trained");

    // paused after 3 steps, resumed from another base and other adapters: the checkpoint
    // (which holds the LoRA model) decides, and the result is the uninterrupted one's
    let parts = s.dir.model_dir("lora-parts");
    let paused = train(
        &training,
        lora,
        data,
        prior.clone(),
        &parts,
        Some(3),
        &mut |_| {},
    )
    .unwrap();
    assert!(matches!(paused.0, Progress::Paused { taken: 3, .. }));
    let other = adapters.with_seed(10).init(other, &device).unwrap();
    let (Progress::Done(b), resumed) = train(
        &training,
        other,
        data,
        prior.clone(),
        &parts,
        None,
        &mut |_| {},
    )
    .unwrap() else {
        panic!("resumed to the end");
    };
    assert_eq!(resumed.ledger, whole.ledger, "every step counted once");
    assert_eq!(
        logits(&b.merge(), data),
        logits(&merged, data),
        "bit-identical"
    );
}
