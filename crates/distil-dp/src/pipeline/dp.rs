//! The DP-SGD trainings of the table: the teacher (stage 1, after the label histogram in one
//! ledger), the DP-SGD student and DPKD (the baselines), each trained when its stage runs and
//! loaded otherwise; and a teacher worker of a training spread over processes. With
//! `[teacher.lora]` each of them trains LoRA adapters on its frozen starting model and
//! releases the merged model.

use std::borrow::Cow;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::{Gpt2, LoraGpt2};
use dp_accounting::PrivacyLedger;

use super::Stage;
use super::ctx::{Ctx, Mode, Trained};
use super::log_step;
use super::trainings::{DpSgd, PrivateData, Training, TrainingId};
use crate::blocks::KdBlocks;
use crate::config::PipelineConfig;
use crate::dp_train::{DpModel, DpTraining, PrivateExamples, Processes, Progress, train};
use crate::error::DistilDpError;

/// The trainings a run has finished (or loaded) so far, in the table's order.
pub(super) type Done<B> = Vec<(TrainingId, Trained<B>)>;

/// What a DP training's DP-SGD trains: its starting model, or (`[teacher.lora]`) that model
/// frozen with LoRA adapters.
enum DpStart<B: AutodiffBackend> {
    /// Every parameter.
    Full(Gpt2<B>),
    /// The adapters only.
    Lora(LoraGpt2<B>),
}

/// A per-example loss of both kinds of model DP-SGD trains.
trait DpData<B: AutodiffBackend>:
    PrivateExamples<B, Gpt2<B>> + PrivateExamples<B, LoraGpt2<B>> + Send
{
}

impl<B: AutodiffBackend, L> DpData<B> for L where
    L: PrivateExamples<B, Gpt2<B>> + PrivateExamples<B, LoraGpt2<B>> + Send
{
}

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
        let steps = match self.dp_start(teacher, initial)? {
            DpStart::Full(model) => crate::dp_train::follow(&training, processes, model, &mut data),
            DpStart::Lora(model) => crate::dp_train::follow(&training, processes, model, &mut data),
        }?;
        self.rep.event(
            teacher.name,
            serde_json::json!({"event": "worker-done", "rank": processes.rank, "steps": steps}),
        );
        Ok(())
    }

    /// `initial` as `training`'s DP-SGD trains it: itself, or with `[teacher.lora]` frozen
    /// under adapters whose `A` is drawn from the public seed of the architecture (the run's
    /// `seed` plus its offset), the same on every worker and every resume.
    fn dp_start(&self, training: &Training, initial: Gpt2<B>) -> Result<DpStart<B>, DistilDpError> {
        let lora = &self.config.teacher.lora;
        let seed = self
            .config
            .seed
            .wrapping_add(training.architecture.seed_offset());
        let Some(adapters) = lora.adapters(seed) else {
            return Ok(DpStart::Full(initial));
        };
        let model = training.architecture.model(self.config);
        let name = model.checkpoint.as_ref().map_or_else(
            || format!("{} model", training.name),
            |p| p.display().to_string(),
        );
        lora.check_width(initial.config.n_embd, &name)?;
        Ok(DpStart::Lora(adapters.init(initial, &self.device)?))
    }

    /// Runs (or loads) one DP-SGD training from `initial` on `data` after the releases in
    /// `prior`, with LoRA when `[teacher.lora]` asks (the released model is then merged).
    fn dp_train<L: DpData<B>>(
        &mut self,
        training: &'static Training,
        initial: Gpt2<B>,
        data: &mut L,
        prior: PrivacyLedger,
    ) -> Result<Trained<B>, DistilDpError> {
        match self.dp_start(training, initial)? {
            DpStart::Full(model) => self.dp_train_model(training, model, data, prior),
            DpStart::Lora(model) => self.dp_train_model(training, model, data, prior),
        }
    }

    /// Runs (or loads) one DP-SGD training of `model` (a GPT-2 or its adapters).
    fn dp_train_model<M: DpModel<B>, L: PrivateExamples<B, M> + Send>(
        &mut self,
        training: &'static Training,
        model: M,
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
        let (progress, summary) = train(&settings, model, data, prior, &dir, limit, &mut |line| {
            log_step(rep, training.name, line)
        })?;
        match progress {
            Progress::Done(model) => {
                let fine_tuning = model.fine_tuning(training.name);
                self.rep.event(
                    training.name,
                    serde_json::json!({
                        "event": "done",
                        "epsilon": summary.epsilon,
                        "noise_multiplier": summary.noise_multiplier,
                        "steps": summary.steps,
                        "trainable_parameters": fine_tuning.trainable_parameters,
                    }),
                );
                self.dp_trainings.push(fine_tuning);
                Ok(Trained {
                    model: model.released(),
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
