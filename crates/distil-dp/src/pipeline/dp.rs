//! The DP-SGD trainings of the table: the teacher (stage 1, after the label histogram in one
//! ledger), the DP-SGD student and DPKD (the baselines), each trained when its stage runs and
//! loaded otherwise; and a teacher worker of a training spread over processes.

use std::borrow::Cow;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::Gpt2;
use dp_accounting::PrivacyLedger;

use super::Stage;
use super::ctx::{Ctx, Mode, Trained};
use super::log_step;
use super::trainings::{DpSgd, PrivateData, Training, TrainingId};
use crate::blocks::KdBlocks;
use crate::config::PipelineConfig;
use crate::dp_train::{DpTraining, PrivateExamples, Processes, Progress, train};
use crate::error::DistilDpError;

/// The trainings a run has finished (or loaded) so far, in the table's order.
pub(super) type Done<B> = Vec<(TrainingId, Trained<B>)>;

/// The model of `id` among `done`.
pub(super) fn find<B: AutodiffBackend>(done: &Done<B>, id: TrainingId) -> Option<&Trained<B>> {
    done.iter().find(|(d, _)| *d == id).map(|(_, t)| t)
}

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// Stage 1: the DP teacher on `control code + text` of the training split, after the
    /// label histogram, both in one ledger at the run's ε.
    pub(super) fn teacher(&mut self) -> Result<Trained<B>, DistilDpError> {
        self.dp_release(TrainingId::Teacher.training(), &Vec::new())
    }

    /// A DP-SGD training of the table, trained when its stage runs, else loaded (and refused
    /// when missing or incomplete); `done`: the trainings before it, one of which it may learn
    /// from (DPKD's student from DPKD's teacher).
    pub(super) fn dp_release(
        &mut self,
        training: &'static Training,
        done: &Done<B>,
    ) -> Result<Trained<B>, DistilDpError> {
        let dp = training.release()?;
        let mode = self.mode(training);
        let dir = self.model_dir(training);
        if mode == Mode::Load && !dp_optim::checkpoint_exists(&dir) {
            return Err(self.missing(training.stage, dir));
        }
        match dp.data {
            PrivateData::CodedTexts => {
                // the starting point (and its public pre-training) before the first release
                let initial = self.start(training.architecture, mode)?;
                let mut data = self.private_blocks(Some(&self.config.data.control_code))?;
                let release = self.label_release(mode == Mode::Train)?;
                if mode == Mode::Train {
                    self.rep.event(
                        training.name,
                        serde_json::json!({
                            "event": "label-histogram",
                            "codes": release.codes.len(),
                            "codes_from_private_data": release.codes_from_private_data,
                        }),
                    );
                }
                self.dp_train(training, initial, &mut data, release.ledger)
            }
            PrivateData::Texts => {
                let mut data = self.private_blocks(None)?;
                let initial = self.start(training.architecture, mode)?;
                self.dp_train(training, initial, &mut data, PrivacyLedger::new())
            }
            PrivateData::DistilledFrom(id) => {
                let teacher = id.training();
                let Some(Trained {
                    model,
                    dp: Some(summary),
                }) = find(done, id)
                else {
                    return Err(self.missing(teacher.stage, self.model_dir(teacher)));
                };
                let inner = model.valid();
                let mut kd = KdBlocks {
                    blocks: self.private_blocks(None)?,
                    teacher: Cow::Borrowed(&inner),
                    loss: kd_losses::DistillConfig {
                        alpha: 0.0,
                        ..self.config.student.loss.clone()
                    },
                };
                let initial = self.start(training.architecture, mode)?;
                self.dp_train(training, initial, &mut kd, summary.ledger.clone())
            }
        }
    }

    /// Worker `rank ≥ 1` of the teacher's DP-SGD on several processes: the same records
    /// (`control code + text`) and architecture as worker 0, whose parameters replace these.
    pub(super) fn follow_teacher(&mut self, processes: &Processes) -> Result<(), DistilDpError> {
        let teacher = TrainingId::Teacher.training();
        let mut data = self.private_blocks(Some(&self.config.data.control_code))?;
        let initial = self.start(teacher.architecture, Mode::Load)?;
        let training = DpTraining {
            insecure_noise_seed: None,
            workers: 1,
            ..dp_training(self.config, self.delta, &self.dataset_id, teacher, None)?
        };
        self.rep.event(
            teacher.name,
            serde_json::json!({"event": "worker-start", "rank": processes.rank, "world": processes.world}),
        );
        let steps = crate::dp_train::follow(&training, processes, initial, &mut data)?;
        self.rep.event(
            teacher.name,
            serde_json::json!({"event": "worker-done", "rank": processes.rank, "steps": steps}),
        );
        Ok(())
    }

    /// Runs (or loads) one DP-SGD training from `initial` on `data` after the releases in
    /// `prior`.
    fn dp_train<L: PrivateExamples<B> + Send>(
        &mut self,
        training: &'static Training,
        initial: Gpt2<B>,
        data: &mut L,
        prior: PrivacyLedger,
    ) -> Result<Trained<B>, DistilDpError> {
        let dir = self.model_dir(training);
        // only the teacher stage's training is spread over processes
        let processes = self.processes.filter(|_| training.stage == Stage::Teacher);
        let settings = dp_training(
            self.config,
            self.delta,
            &self.dataset_id,
            training,
            processes,
        )?;
        let limit = self.mode(training).step_limit();
        let rep = &mut *self.rep;
        let (progress, summary) =
            train(&settings, initial, data, prior, &dir, limit, &mut |line| {
                log_step(rep, training.name, line)
            })?;
        match progress {
            Progress::Done(model) => {
                self.rep.event(
                    training.name,
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
            Progress::Paused { .. } => Err(self.missing(training.stage, dir)),
        }
    }
}

/// The settings of DP training `training` of a run of `config` at `delta` on the data whose
/// fingerprint is `dataset` (`processes`: spread over them).
pub(super) fn dp_training<'s>(
    config: &'s PipelineConfig,
    delta: f64,
    dataset: &'s str,
    training: &'static Training,
    processes: Option<&'s Processes>,
) -> Result<DpTraining<'s>, DistilDpError> {
    let &DpSgd { noise, epsilon, .. } = training.release()?;
    Ok(DpTraining {
        label: training.name,
        settings: &config.teacher,
        epsilon: epsilon.of(config.privacy.epsilon),
        delta,
        accountant: config.privacy.accountant,
        insecure_noise_seed: noise.seed(config),
        checkpoint_every: config.checkpoint_every,
        workers: config.workers,
        processes,
        dataset: Some(dataset),
    })
}
