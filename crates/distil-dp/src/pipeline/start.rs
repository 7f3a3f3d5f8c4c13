//! The starting point of every training: the configured checkpoint, or a fresh model from
//! the public seed, pre-trained on the public corpus when asked (stage 0, non-private).

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::Gpt2;

use super::ctx::{Ctx, Mode};
use super::log_step;
use super::trainings::Architecture;
use crate::config::StudentConfig;
use crate::distill::{Distillation, distill};
use crate::dp_train::{Progress, fresh_model};
use crate::error::DistilDpError;
use train_kit::Cadence;

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// The starting point of `architecture`: its checkpoint, or a fresh model from the public
    /// seed (pre-trained first when its stage runs and `pretrain_steps` > 0; a model only
    /// loaded from its own checkpoint needs no pre-training).
    pub(super) fn start(
        &mut self,
        architecture: Architecture,
        mode: Mode,
    ) -> Result<Gpt2<B>, DistilDpError> {
        let model = architecture.model(self.config);
        if let Some(path) = &model.checkpoint {
            let gpt = causal_lm::checkpoint::load_any::<B>(path, &self.device)?;
            self.check_vocabulary(path, gpt.config.vocab_size)?;
            return Ok(gpt);
        }
        let gpt = fresh_model::<B>(
            model,
            self.tok.vocab_size(),
            self.tok.eos_id(),
            self.config.teacher.block_size,
            self.config.seed.wrapping_add(architecture.seed_offset()),
            &self.device,
        )?;
        if model.pretrain_steps == 0 || mode == Mode::Load {
            return Ok(gpt);
        }
        let steps = model.pretrain_steps as u64;
        let (public, _) = self.public_split()?;
        let data = self.blocks(&public)?;
        // stage 0 depends on the model's section, the tokenizer and the seed only (not on
        // `[student]`'s distillation), so changing the student never invalidates the teacher
        let settings = StudentConfig {
            batch_size: model.pretrain_batch_size,
            schedule: model.pretrain_schedule.clone(),
            ..StudentConfig::default()
        };
        let pretraining = architecture.pretraining();
        let dir = self.model_dir(pretraining);
        let rep = &mut *self.rep;
        let run = Distillation {
            settings: &settings,
            teacher: None,
            steps: Some(steps),
            seed: self.config.seed,
        };
        let cadence = Cadence {
            checkpoint_every: self.config.checkpoint_every,
            limit: None,
        };
        let progress = distill(&run, gpt, &data, &dir, cadence, &mut |line| {
            log_step(rep, pretraining.name, line)
        })?;
        match progress {
            Progress::Done(m) => {
                // once per architecture, though several trainings start from it
                if !self.pretrained.iter().any(|p| p.name == pretraining.name) {
                    let public_perplexity = self.public_perplexity(&m.valid())?;
                    self.pretrained.push(crate::teacher_check::Pretrained {
                        name: pretraining.name.to_string(),
                        steps,
                        public_perplexity,
                    });
                }
                Ok(m)
            }
            // no step limit was given, so distill runs every step
            Progress::Paused { .. } => Err(self.missing(pretraining.stage, dir)),
        }
    }

    /// Refuses a starting checkpoint whose vocabulary is smaller than the tokenizer's.
    pub(super) fn check_vocabulary(
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
}
