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
//!
//! The models a run trains — name, checkpoint directory, architecture, stage, noise stream,
//! share of ε, result row — are one table, [`trainings::TRAININGS`], which the stages, the
//! preflight, the evaluation and the run's identity read.
//!
//! The code: [`trainings`] (the table), `noise` (the releases' noise streams), `ctx` (what the stages share), `preflight` (every check
//! before the first release), `start` (starting points and public pre-training), `dp` (the
//! DP-SGD trainings), `synthetic` (the corpus and the trainings on it), `flow` (a run over the
//! table), `evaluation` (perplexities and exported models), `shards` (sharded generation).

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;

use crate::backend::{BackendTask, check_device, dispatch};
use crate::config::PipelineConfig;
use crate::dp_train::Processes;
use crate::error::DistilDpError;
use crate::progress::{Reporter, StepLine};
use crate::report::Report;
use crate::run_dir::RunDir;

mod ctx;
mod dp;
mod evaluation;
mod flow;
pub mod identity;
mod noise;
mod preflight;
mod shards;
mod start;
mod synthetic;
pub mod trainings;

use ctx::Ctx;
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
    check_device(config.backend)?;
    dispatch(
        config.backend,
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
    check_device(config.backend)?;
    dispatch(
        config.backend,
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
        match self.processes.filter(|_| self.follow) {
            Some(worker) => {
                ctx.follow_teacher(worker)?;
                Ok(None)
            }
            None => ctx.run().map(Some),
        }
    }
}

/// One training step's log line: the progress bar, and the metrics file on checkpoints (and
/// every step of the non-private trainings, whose losses make the loss curves).
fn log_step(rep: &mut Reporter, name: &str, line: &StepLine) {
    let extra = match (line.loss, line.epsilon) {
        (Some(l), _) if l.is_finite() => format!("loss {l:.3}"),
        (Some(_), _) => String::new(),
        (None, Some(e)) => format!("eps {e:.3}"),
        _ => String::new(),
    };
    rep.progress(name, line.steps, line.planned_steps, &extra);
    if line.loss.is_some() || line.checkpoint == Some(true) {
        rep.event(name, line.to_json());
    }
}
