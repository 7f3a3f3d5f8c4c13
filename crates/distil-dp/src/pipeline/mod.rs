//! The whole DistilDP run: label histogram → DP teacher → synthetic corpus → distilled
//! student → baselines → evaluation and report, each stage resumable from the run directory.
//!
//! | stage | reads private data | privacy cost |
//! |---|---|---|
//! | `teacher`: label histogram + DP-SGD teacher (+ optional public pre-training) | yes | the run's ε, both together |
//! | `generate`: synthetic corpus from the teacher (or shard `I` of `N`: [`generate_shard`], then [`merge`]) | no | none (post-processing) |
//! | `student`: distillation on the synthetic corpus | no | none (post-processing) |
//! | `baselines`: DP-SGD student; DPKD (ε/2 teacher, student in the rest); hard-label student | the first two | each its own release at the run's ε |
//! | `evaluate`: perplexities on the test split, report | the test split | not accounted: evaluation (see the report) |
//!
//! Every stage resumes from its checkpoint, and a finished stage is loaded, not rerun, so
//! rerunning the same command after a kill continues where it stopped, with no DP step or
//! release repeated or lost.

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use causal_lm::{Gpt2, Tokenizer};
use dp_accounting::PrivacyLedger;
use dp_optim::DpRng;
use synth_gen::ControlCodeFormat;

use crate::backend::{BackendTask, check_device, dispatch};
use crate::blocks::TokenBlocks;
use crate::config::{ModelConfig, PipelineConfig, StudentConfig};
use crate::distill::distill;
use crate::dp_train::{DpSummary, DpTraining, Processes, Progress, fresh_model, train};
use crate::error::DistilDpError;
use crate::fingerprint::DataFingerprint;
use crate::histogram::{ControlCodes, LabelRelease, release_or_load};
use crate::prepare::{load_data, load_tokenizer};
use crate::progress::Reporter;
use crate::records::Record;
use crate::report::{Report, TrainingKind};
use crate::run_dir::RunDir;
use crate::split::Splits;

mod baselines;
mod evaluation;
mod preflight;
mod shards;

pub use preflight::default_delta;

pub use shards::{generate_shard, merge};

/// The stages, in the order `run` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Label histogram and DP fine-tuning of the teacher (and its public pre-training).
    Teacher,
    /// The synthetic corpus.
    Generate,
    /// The student distilled on the synthetic corpus.
    Student,
    /// The baselines (DP-SGD student, DPKD, hard-label student), as configured.
    Baselines,
    /// Perplexities on the test split, `report.json`, `report.md`, loss curves.
    Evaluate,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 5] = [
        Stage::Teacher,
        Stage::Generate,
        Stage::Student,
        Stage::Baselines,
        Stage::Evaluate,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Teacher => "teacher",
            Stage::Generate => "generate",
            Stage::Student => "student",
            Stage::Baselines => "baselines",
            Stage::Evaluate => "evaluate",
        }
    }
}

/// Checkpoint directories in the run directory.
pub mod dirs {
    /// The DP teacher.
    pub const TEACHER: &str = "teacher";
    /// The DistilDP student.
    pub const STUDENT: &str = "student";
    /// The student trained directly with DP-SGD.
    pub const DP_SGD_STUDENT: &str = "baseline-dp-sgd-student";
    /// The student trained on the synthetic corpus with hard labels only.
    pub const HARD_LABELS: &str = "baseline-hard-labels";
    /// DPKD's teacher (ε/2).
    pub const DPKD_TEACHER: &str = "baseline-dpkd-teacher";
    /// DPKD's student (DP-SGD with the KD loss, the rest of ε).
    pub const DPKD_STUDENT: &str = "baseline-dpkd-student";
    /// Public pre-training (stage 0) of the teacher architecture.
    pub const PRETRAIN_TEACHER: &str = "pretrain-teacher";
    /// Public pre-training (stage 0) of the student architecture.
    pub const PRETRAIN_STUDENT: &str = "pretrain-student";
    /// Exported final models (native checkpoints with their tokenizer).
    pub const MODELS: &str = "models";
}

/// Pre-training batch size (stage 0).
const PRETRAIN_BATCH: usize = 32;

/// Runs `stages` of `config`'s pipeline (all of them for `distil-dp run`), in order, on the
/// configured backend, reporting through `reporter`. A stage whose inputs another stage makes
/// refuses to start when that output is missing or incomplete. Returns the report when the
/// evaluation stage ran.
pub fn run(
    config: &PipelineConfig,
    stages: &[Stage],
    reporter: &mut Reporter,
) -> Result<Option<Report>, DistilDpError> {
    run_with(config, stages, reporter, None)
}

/// [`run`], this process being worker 0 of a teacher trained on several processes
/// (`processes`; the others run [`teacher_worker`]): the teacher stage's DP-SGD steps are
/// spread over them, everything else runs here.
pub fn run_with(
    config: &PipelineConfig,
    stages: &[Stage],
    reporter: &mut Reporter,
    processes: Option<&Processes>,
) -> Result<Option<Report>, DistilDpError> {
    config.validate()?;
    if let Some(p) = processes {
        p.validate()?;
    }
    let kind = config.backend;
    check_device(kind)?;
    dispatch(
        kind,
        Task {
            config,
            stages,
            reporter,
            processes,
            follow: false,
        },
    )
    .map(|done| done.flatten())
}

/// Worker `processes.rank` (≥ 1) of a teacher trained on several processes: waits for worker
/// 0 to prepare the run directory (its `tokenizer.json`; the run directory must be shared,
/// e.g. a network volume), builds the same training data and architecture, and takes part in
/// every remaining DP-SGD step of the teacher. It writes nothing but its events (to
/// `reporter`) and releases nothing: worker 0 holds the ledger and the checkpoint.
pub fn teacher_worker(
    config: &PipelineConfig,
    processes: &Processes,
    reporter: &mut Reporter,
) -> Result<(), DistilDpError> {
    config.validate()?;
    processes.validate()?;
    let dir = RunDir::open(config)?;
    let tokenizer = dir.tokenizer_path();
    let waited = std::time::Instant::now();
    while !tokenizer.exists() {
        if waited.elapsed() > processes.timeout {
            return Err(DistilDpError::Worker(format!(
                "{} did not appear within {:.0} s: worker 0 creates it when it starts; the run directory must be the one worker 0 uses (a shared volume)",
                tokenizer.display(),
                processes.timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let kind = config.backend;
    check_device(kind)?;
    dispatch(
        kind,
        Task {
            config,
            stages: &[Stage::Teacher],
            reporter,
            processes: Some(processes),
            follow: true,
        },
    )
    .map(|_| ())
}

struct Task<'a> {
    config: &'a PipelineConfig,
    stages: &'a [Stage],
    reporter: &'a mut Reporter,
    processes: Option<&'a Processes>,
    /// Only follow the teacher's training as worker `processes.rank`.
    follow: bool,
}

impl BackendTask for Task<'_> {
    type Output = Result<Option<Option<Report>>, DistilDpError>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let mut ctx = Ctx::<Autodiff<B>>::new(self.config, self.stages, self.reporter, device)?;
        ctx.processes = self.processes;
        if self.follow {
            ctx.follow_teacher()?;
            return Ok(None);
        }
        ctx.run().map(Some)
    }
}

/// Everything the stages share.
struct Ctx<'a, B: AutodiffBackend> {
    config: &'a PipelineConfig,
    stages: &'a [Stage],
    rep: &'a mut Reporter,
    dir: RunDir,
    splits: Splits<Record>,
    tok: Tokenizer,
    delta: f64,
    device: B::Device,
    /// The label release once made or loaded.
    release: Option<LabelRelease>,
    /// The teacher's DP-SGD is spread over these processes.
    processes: Option<&'a Processes>,
    /// The private data's fingerprints.
    fingerprint: DataFingerprint,
    /// Their short form, kept in every DP checkpoint.
    dataset_id: String,
    /// The control codes, once checked (by the preflight of a run that makes the release).
    codes: Option<ControlCodes>,
    /// Warnings and disclosures shown at the start (the report repeats them).
    warnings: Vec<String>,
}

/// Which architecture.
#[derive(Debug, Clone, Copy)]
enum Role {
    Teacher,
    Student,
}

/// A finished model of the run and how it was made.
struct Trained<B: AutodiffBackend> {
    model: Gpt2<B>,
    dp: Option<DpSummary>,
}

impl<'a, B: AutodiffBackend> Ctx<'a, B> {
    fn new(
        config: &'a PipelineConfig,
        stages: &'a [Stage],
        rep: &'a mut Reporter,
        device: B::Device,
    ) -> Result<Self, DistilDpError> {
        let dir = RunDir::open(config)?;
        let (splits, fingerprint) = load_data(config)?;
        if splits.train.is_empty() || splits.test.is_empty() {
            return Err(DistilDpError::InvalidArgument {
                field: "data",
                value: format!(
                    "{} training and {} test records",
                    splits.train.len(),
                    splits.test.len()
                ),
                expected: "at least one record in the training and in the test split",
            });
        }
        let tok = load_tokenizer(config, &dir)?;
        let delta = config
            .privacy
            .delta
            .unwrap_or_else(|| default_delta(splits.train.len()));
        if !(delta > 0.0 && delta < 1.0) {
            return Err(DistilDpError::InvalidArgument {
                field: "privacy.delta",
                value: delta.to_string(),
                expected: "a number in (0, 1) (the default N^-1.1 needs at least 2 training records)",
            });
        }
        let dataset_id = fingerprint.short();
        Ok(Self {
            config,
            stages,
            rep,
            dir,
            splits,
            tok,
            delta,
            device,
            release: None,
            processes: None,
            fingerprint,
            dataset_id,
            codes: None,
            warnings: Vec::new(),
        })
    }

    fn runs(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }

    /// The stage being run that needs `stage`'s output (for the error message).
    fn requester(&self) -> &'static str {
        self.stages.first().map_or("run", |s| s.name())
    }

    fn run(&mut self) -> Result<Option<Report>, DistilDpError> {
        self.preflight(true)?;
        self.rep.event(
            "run",
            serde_json::json!({
                "event": "start",
                "stages": self.stages.iter().map(|s| s.name()).collect::<Vec<_>>(),
                "train_records": self.splits.train.len(),
                "test_records": self.splits.test.len(),
                "backend": self.config.backend,
            }),
        );
        let needs_teacher = self.runs(Stage::Teacher)
            || self.runs(Stage::Generate)
            || self.runs(Stage::Student)
            || self.runs(Stage::Evaluate);
        let teacher = if needs_teacher {
            Some(self.teacher()?)
        } else {
            None
        };
        // the student (trained, or loaded for evaluation) and the hard-label baseline read it
        let needs_corpus = self.runs(Stage::Generate)
            || self.runs(Stage::Student)
            || self.runs(Stage::Evaluate)
            || self.baseline_on_corpus();
        let corpus = match (&teacher, needs_corpus) {
            (Some(t), true) => Some(self.corpus(&t.model)?),
            (None, true) => Some(self.corpus_from_disk()?),
            _ => None,
        };
        let student = if self.runs(Stage::Student) || self.runs(Stage::Evaluate) {
            let t = teacher.as_ref().expect("loaded above");
            let corpus = corpus.as_deref().expect("loaded above");
            Some(self.student(&t.model, corpus, Stage::Student)?)
        } else {
            None
        };
        let mut baselines = Vec::new();
        if self.runs(Stage::Baselines) || self.runs(Stage::Evaluate) {
            let b = &self.config.baselines;
            if b.dp_sgd_student {
                baselines.push(("DP-SGD student", self.dp_sgd_student()?));
            }
            if b.dpkd {
                baselines.push(("DPKD student", self.dpkd()?));
            }
            if b.synthetic_hard_labels {
                let corpus = corpus.as_deref().expect("loaded above");
                baselines.push(("Synthetic, hard labels only", self.hard_labels(corpus)?));
            }
        }
        if !self.runs(Stage::Evaluate) {
            self.rep.finish();
            return Ok(None);
        }
        let teacher = teacher.expect("loaded for evaluation");
        let student = student.expect("loaded for evaluation");
        let release = self.label_release(false)?;
        let mut teacher_result = self.evaluate("DP teacher", TrainingKind::DpTeacher, &teacher)?;
        teacher_result.perplexity_with_codes = Some(self.perplexity_with_codes(&teacher.model)?);
        let mut results = vec![
            teacher_result,
            self.evaluate("DistilDP student", TrainingKind::DistilDp, &student)?,
        ];
        for (name, (kind, trained)) in baselines {
            results.push(self.evaluate(name, kind, &trained)?);
        }
        self.export("teacher", &teacher.model)?;
        self.export("student", &student.model)?;
        let report = Report::new(
            self.config,
            &self.splits,
            self.delta,
            &release,
            results,
            &self.warnings,
        )?;
        report.write(&self.dir)?;
        self.rep.event(
            "evaluate",
            serde_json::json!({ "event": "report", "path": self.dir.root().join("report.md") }),
        );
        self.rep.finish();
        Ok(Some(report))
    }

    fn baseline_on_corpus(&self) -> bool {
        self.config.baselines.synthetic_hard_labels && self.runs(Stage::Baselines)
    }

    /// The label histogram release: made by the teacher stage, loaded by the others (read
    /// from the run directory once per run).
    fn label_release(&mut self, may_release: bool) -> Result<LabelRelease, DistilDpError> {
        if let Some(release) = &self.release {
            return Ok(release.clone());
        }
        let path = self.dir.histogram_path();
        if !may_release && !path.exists() {
            return Err(self.missing(Stage::Teacher, path));
        }
        let total = self
            .config
            .generation
            .samples
            .unwrap_or(self.splits.train.len());
        let codes = match &self.codes {
            Some(c) => c.clone(),
            // only a run whose preflight checked the codes may release
            None if !path.exists() => return Err(self.missing(Stage::Teacher, path)),
            None => ControlCodes {
                codes: Vec::new(),
                from_private_data: false,
                warning: None,
            },
        };
        let mut rng = self.noise_rng(1)?;
        let release = release_or_load(
            self.config,
            &self.dir,
            &self.splits.train,
            &codes,
            total,
            &mut rng,
        )?;
        self.release = Some(release.clone());
        Ok(release)
    }

    /// The DP noise stream of release `tag`: the OS CSPRNG, or the configured insecure seed.
    fn noise_rng(&self, tag: u64) -> Result<DpRng, DistilDpError> {
        Ok(match self.config.insecure_noise_seed {
            Some(seed) => DpRng::insecure_seeded(seed.wrapping_add(tag.wrapping_mul(0x9E37))),
            None => DpRng::secure()?,
        })
    }

    fn missing(&self, stage: Stage, path: PathBuf) -> DistilDpError {
        DistilDpError::StageMissing {
            stage: stage.name(),
            needed_by: self.requester(),
            path,
        }
    }

    /// `texts` as training blocks of `teacher.block_size` tokens.
    fn blocks<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
    ) -> Result<TokenBlocks<B>, DistilDpError> {
        TokenBlocks::new(
            &self.tok,
            texts,
            self.config.teacher.block_size,
            &self.device,
        )
    }

    /// The private training split as blocks: `control code + text` when a format is given
    /// (the teacher), the texts alone otherwise (the baselines, like the evaluation).
    fn private_blocks(
        &self,
        codes: Option<&ControlCodeFormat>,
    ) -> Result<TokenBlocks<B>, DistilDpError> {
        let texts: Vec<String> = self
            .splits
            .train
            .iter()
            .map(|r| match codes {
                Some(f) => format!("{}{}", f.prompt(&r.labels), r.text),
                None => r.text.clone(),
            })
            .collect();
        self.blocks(&texts)
    }

    /// The starting point of the teacher or the student architecture (see
    /// [`Self::initial_model`]); the public seed differs per role.
    fn start(&mut self, role: Role, may_train: bool) -> Result<Gpt2<B>, DistilDpError> {
        match role {
            Role::Teacher => self.initial_model(
                &self.config.teacher.model,
                1,
                dirs::PRETRAIN_TEACHER,
                may_train,
            ),
            Role::Student => self.initial_model(
                &self.config.student.model,
                3,
                dirs::PRETRAIN_STUDENT,
                may_train,
            ),
        }
    }

    /// The starting point of a model: its checkpoint, or a fresh one from the public seed,
    /// pre-trained on the public corpus when asked (stage 0, non-private).
    fn initial_model(
        &mut self,
        model: &ModelConfig,
        seed_tag: u64,
        pretrain_dir: &str,
        may_train: bool,
    ) -> Result<Gpt2<B>, DistilDpError> {
        if let Some(path) = &model.checkpoint {
            let gpt = causal_lm::checkpoint::load_any::<B>(path, &self.device)?;
            self.check_vocabulary(path, gpt.config.vocab_size)?;
            return Ok(gpt);
        }
        let block = self.config.teacher.block_size;
        let gpt = fresh_model::<B>(
            model,
            self.tok.vocab_size(),
            self.tok.eos_id(),
            block,
            self.config.seed.wrapping_add(seed_tag),
            &self.device,
        )?;
        if model.pretrain_steps == 0 || !may_train {
            // (a model only loaded from its checkpoint needs no starting point)
            return Ok(gpt);
        }
        let public = crate::prepare::public_texts(self.config)?;
        let data = self.blocks(&public)?;
        // fixed settings: stage 0 depends on the architecture, the tokenizer and the seed
        // only (not on `[student]`), so changing the student never invalidates the teacher
        let settings = StudentConfig {
            batch_size: PRETRAIN_BATCH,
            ..StudentConfig::default()
        };
        let dir = self.dir.model_dir(pretrain_dir);
        let steps = model.pretrain_steps as u64;
        let rep = &mut *self.rep;
        let progress = distill(
            &settings,
            gpt,
            None,
            &data,
            Some(steps),
            self.config.seed,
            &dir,
            None,
            self.config.checkpoint_every,
            &mut |line| log_step(rep, pretrain_dir, &line),
        )?;
        match progress {
            Progress::Done(m) => Ok(m),
            Progress::Paused { .. } => unreachable!("no step limit"),
        }
    }

    /// Refuses a starting checkpoint whose vocabulary is smaller than the tokenizer's.
    fn check_vocabulary(
        &self,
        path: &std::path::Path,
        vocab_size: usize,
    ) -> Result<(), DistilDpError> {
        if self.tok.vocab_size() > vocab_size {
            return Err(causal_lm::CausalLmError::Mismatch(format!(
                "{}: the tokenizer has {} tokens, the model's vocabulary only {vocab_size} (give the checkpoint's own tokenizer as tokenizer.path)",
                path.display(),
                self.tok.vocab_size(),
            ))
            .into());
        }
        Ok(())
    }

    /// Stage 1: the DP teacher on `control code + text` of the training split, after the
    /// label histogram, both in one ledger at the run's ε.
    fn teacher(&mut self) -> Result<Trained<B>, DistilDpError> {
        let may_train = self.runs(Stage::Teacher);
        let dir = self.dir.model_dir(dirs::TEACHER);
        if !may_train && !dp_optim::checkpoint_exists(&dir) {
            return Err(self.missing(Stage::Teacher, dir));
        }
        // the starting point (and its public pre-training) before the first release
        let initial = self.start(Role::Teacher, may_train)?;
        let format = ControlCodeFormat::default();
        let mut data = self.private_blocks(Some(&format))?;
        let release = self.label_release(may_train)?;
        if may_train {
            self.rep.event(
                "teacher",
                serde_json::json!({
                    "event": "label-histogram",
                    "codes": release.codes.len(),
                    "codes_from_private_data": release.codes_from_private_data,
                }),
            );
        }
        let epsilon = self.config.privacy.epsilon;
        self.dp_train(
            "teacher",
            dirs::TEACHER,
            initial,
            &mut data,
            epsilon,
            release.ledger.clone(),
            may_train,
            Stage::Teacher,
            2,
        )
    }

    /// Worker `rank ≥ 1` of the teacher's DP-SGD on several processes: the same records
    /// (`control code + text`) and architecture as worker 0, whose parameters replace these.
    fn follow_teacher(&mut self) -> Result<(), DistilDpError> {
        let processes = self.processes.expect("a worker process");
        let mut data = self.private_blocks(Some(&ControlCodeFormat::default()))?;
        let initial = self.start(Role::Teacher, false)?;
        let training = DpTraining {
            insecure_noise_seed: None,
            workers: 1,
            ..preflight::dp_training(
                self.config,
                self.delta,
                None,
                &self.dataset_id,
                "teacher",
                self.config.privacy.epsilon,
                2,
            )
        };
        self.rep.event(
            "teacher",
            serde_json::json!({"event": "worker-start", "rank": processes.rank, "world": processes.world}),
        );
        let steps = crate::dp_train::follow(&training, processes, initial, &mut data)?;
        self.rep.event(
            "teacher",
            serde_json::json!({"event": "worker-done", "rank": processes.rank, "steps": steps}),
        );
        Ok(())
    }

    /// One DP-SGD training (the teacher or a baseline): trained when its stage runs, else
    /// loaded (and refused when incomplete).
    #[allow(clippy::too_many_arguments)]
    fn dp_train<L: crate::dp_train::PrivateExamples<B> + Send>(
        &mut self,
        name: &str,
        dir_name: &str,
        initial: Gpt2<B>,
        data: &mut L,
        epsilon: f64,
        prior: PrivacyLedger,
        may_train: bool,
        stage: Stage,
        noise_tag: u64,
    ) -> Result<Trained<B>, DistilDpError> {
        let dir = self.dir.model_dir(dir_name);
        let training = preflight::dp_training(
            self.config,
            self.delta,
            self.processes.filter(|_| stage == Stage::Teacher),
            &self.dataset_id,
            name,
            epsilon,
            noise_tag,
        );
        let limit = if may_train { None } else { Some(0) };
        let rep = &mut *self.rep;
        let (progress, summary) =
            train(&training, initial, data, prior, &dir, limit, &mut |line| {
                log_step(rep, name, &line)
            })?;
        match progress {
            Progress::Done(model) => {
                self.rep.event(
                    name,
                    serde_json::json!({
                        "event": "done",
                        "epsilon": summary.epsilon,
                        "noise_multiplier": summary.noise_multiplier,
                        "steps": summary.steps,
                    }),
                );
                Ok(Trained {
                    model,
                    dp: Some(summary),
                })
            }
            Progress::Paused { .. } => Err(self.missing(stage, dir)),
        }
    }

    /// Stage 2: the synthetic corpus (generated when the stage runs, else read back).
    fn corpus(&mut self, teacher: &Gpt2<B>) -> Result<Vec<String>, DistilDpError> {
        if !self.runs(Stage::Generate) {
            return self.corpus_from_disk();
        }
        let release = self.label_release(false)?;
        let bars = self.rep.mode() == crate::progress::OutputMode::Bars;
        self.rep.finish();
        let inner = teacher.valid();
        let report = crate::generation::generate_corpus(
            self.config,
            &self.dir,
            &inner,
            &self.tok,
            &release,
            bars,
            &self.device,
        )?;
        self.rep.event(
            "generate",
            serde_json::json!({
                "event": "done",
                "total": report.total,
                "generated": report.generated,
                "written": report.written,
            }),
        );
        self.corpus_from_disk()
    }

    /// The complete synthetic corpus from the run directory.
    fn corpus_from_disk(&mut self) -> Result<Vec<String>, DistilDpError> {
        let path = self.dir.synthetic_path();
        let release = match self.label_release(false) {
            Ok(r) => r,
            Err(_) => return Err(self.missing(Stage::Generate, path)),
        };
        if !crate::generation::corpus_complete(self.config, &self.dir, &release)? {
            return Err(self.missing(Stage::Generate, path));
        }
        crate::data::read_texts(&path)
    }

    /// Stage 3: the student on the synthetic corpus, distilled from the teacher.
    fn student(
        &mut self,
        teacher: &Gpt2<B>,
        corpus: &[String],
        stage: Stage,
    ) -> Result<Trained<B>, DistilDpError> {
        let inner = teacher.valid();
        self.distilled(dirs::STUDENT, "student", Some(&inner), corpus, stage)
    }

    /// A student trained on the synthetic corpus: with the teacher's soft labels, or with
    /// hard labels only.
    fn distilled(
        &mut self,
        dir_name: &str,
        name: &str,
        teacher: Option<&Gpt2<B::InnerBackend>>,
        corpus: &[String],
        stage: Stage,
    ) -> Result<Trained<B>, DistilDpError> {
        let dir = self.dir.model_dir(dir_name);
        let data = self.blocks(corpus)?;
        let may_train = self.runs(stage);
        let initial = if may_train || crate::distill::checkpoint_exists(&dir) {
            self.start(Role::Student, may_train)?
        } else {
            return Err(self.missing(stage, dir));
        };
        if let Some(t) = teacher
            && t.config.vocab_size != initial.config.vocab_size
        {
            return Err(causal_lm::CausalLmError::Mismatch(format!(
                "the teacher's vocabulary has {} tokens, the student's {}: distillation compares their distributions token by token, so both must use the same tokenizer",
                t.config.vocab_size, initial.config.vocab_size
            ))
            .into());
        }
        let rep = &mut *self.rep;
        let progress = distill(
            &self.config.student,
            initial,
            teacher,
            &data,
            None,
            self.config.seed,
            &dir,
            if may_train { None } else { Some(0) },
            self.config.checkpoint_every,
            &mut |line| log_step(rep, name, &line),
        )?;
        match progress {
            Progress::Done(model) => Ok(Trained { model, dp: None }),
            Progress::Paused { .. } => Err(self.missing(stage, dir)),
        }
    }
}

/// One training step's log line: the progress bar, and the metrics file on checkpoints (and
/// every step of the non-private trainings, whose losses make the loss curves).
fn log_step(rep: &mut Reporter, name: &str, line: &serde_json::Value) {
    let steps = line["steps"].as_u64().unwrap_or(0);
    let planned = line["planned_steps"].as_u64().unwrap_or(0);
    let extra = match (line["loss"].as_f64(), line["epsilon"].as_f64()) {
        (Some(l), _) => format!("loss {l:.3}"),
        (None, Some(e)) => format!("eps {e:.3}"),
        _ => String::new(),
    };
    rep.progress(name, steps, planned, &extra);
    if line.get("loss").is_some() || line["checkpoint"] == true {
        rep.event(name, line.clone());
    }
}
