//! Stage 2, the synthetic corpus from the DP teacher, and the trainings on it (post-processing
//! of the DistilDP release): the distilled student (stage 3), the hard-label baseline, and
//! the distilled student's on-policy continuation on its own samples.

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::Gpt2;

use super::Stage;
use super::ctx::{Ctx, Mode, Trained};
use super::log_step;
use super::trainings::Training;
use crate::config::PromptPositions;
use crate::corpus_stats::SyntheticCorpus;
use crate::distill::{Distillation, distill};
use crate::dp_train::Progress;
use crate::error::DistilDpError;
use crate::on_policy::{OnPolicy, on_policy};
use crate::records::{LabelColumns, RecordFormat, read_records};
use causal_lm::TokenBlocks;
use train_kit::Cadence;

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// Stage 2: the synthetic corpus (generated from `teacher` when the stage runs, else read
    /// back).
    pub(super) fn corpus(&mut self, teacher: &Gpt2<B>) -> Result<Vec<String>, DistilDpError> {
        if !self.runs(Stage::Generate) {
            return self.corpus_from_disk();
        }
        let release = self.label_release(false)?;
        let bars = self.rep.mode() == crate::progress::OutputMode::Bars;
        self.rep.finish();
        let inner = teacher.valid();
        let report = crate::generation::Generation {
            config: self.config,
            dir: &self.dir,
            teacher: &inner,
            tokenizer: &self.tok,
            release: &release,
            progress: bars,
            device: &self.device,
        }
        .corpus()?;
        self.rep.event(
            Stage::Generate.name(),
            serde_json::json!({
                "event": "done",
                "total": report.total,
                "generated": report.generated,
                "written": report.written,
                "dropped": report.dropped,
            }),
        );
        self.corpus_from_disk()
    }

    /// The complete synthetic corpus from the run directory.
    pub(super) fn corpus_from_disk(&mut self) -> Result<Vec<String>, DistilDpError> {
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

    /// The complete synthetic corpus as (control code, text) pairs, in file order (for
    /// `student.prompt = "context"`).
    fn coded_corpus(&mut self) -> Result<(Vec<String>, Vec<String>), DistilDpError> {
        let path = self.dir.synthetic_path();
        let release = self.label_release(false)?;
        // the codes' columns, in order (none for unlabelled data: `index` is no label)
        let columns: Vec<String> = release
            .codes
            .first()
            .map(|c| c.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        let columns = LabelColumns::Named(columns);
        let format = &self.config.data.control_code;
        let samples = read_records(&path, RecordFormat::Jsonl, &columns)?;
        Ok(samples
            .into_iter()
            .map(|s| (format.prompt(&s.labels), s.text))
            .unzip())
    }

    /// The report's description of the synthetic corpus, recomputed from `synthetic.jsonl`
    /// and its drop log (None when the corpus is missing or incomplete).
    pub(super) fn synthetic_corpus(
        &self,
        release: &crate::histogram::LabelRelease,
    ) -> Result<Option<SyntheticCorpus>, DistilDpError> {
        let path = self.dir.synthetic_path();
        if !crate::generation::corpus_complete(self.config, &self.dir, release)? {
            return Ok(None);
        }
        Ok(Some(SyntheticCorpus::read(
            &path,
            crate::generation::total_samples(release),
            self.config.generation.sampling.max_new_tokens,
            &self.tok,
        )?))
    }

    /// A training on the synthetic corpus: with `teacher`'s soft labels, or with hard labels
    /// only; trained when its stage runs, else loaded (and refused when missing or
    /// incomplete).
    pub(super) fn distilled(
        &mut self,
        training: &'static Training,
        teacher: Option<&Gpt2<B::InnerBackend>>,
        corpus: &[String],
    ) -> Result<Trained<B>, DistilDpError> {
        let dir = self.model_dir(training);
        let data = match self.config.student.prompt {
            PromptPositions::TextOnly => self.blocks(corpus)?,
            PromptPositions::Context => {
                let (prompts, texts) = self.coded_corpus()?;
                TokenBlocks::with_prompts(
                    &self.tok,
                    &prompts,
                    &texts,
                    self.config.teacher.block_size,
                    &self.device,
                )?
            }
        };
        let mode = self.mode(training);
        if mode == Mode::Load && !crate::distill::checkpoint_exists(&dir) {
            return Err(self.missing(training.stage, dir));
        }
        let initial = self.start(training.architecture, mode)?;
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
        let run = Distillation {
            settings: &self.config.student,
            teacher,
            steps: None,
            seed: self.config.seed,
        };
        let cadence = Cadence {
            checkpoint_every: self.config.checkpoint_every,
            limit: mode.step_limit(),
        };
        let progress = distill(&run, initial, &data, &dir, cadence, &mut |line| {
            log_step(rep, training.name, line)
        })?;
        match progress {
            Progress::Done(model) => Ok(Trained { model, dp: None }),
            Progress::Paused { .. } => Err(self.missing(training.stage, dir)),
        }
    }

    /// The on-policy student: `start` (the finished DistilDP student) trained on its own
    /// samples of the released control codes against `teacher` (`[student.on_policy]`);
    /// trained when its stage runs, else loaded (and refused when missing or incomplete).
    pub(super) fn on_policy(
        &mut self,
        training: &'static Training,
        teacher: &Gpt2<B::InnerBackend>,
        start: Gpt2<B>,
    ) -> Result<Trained<B>, DistilDpError> {
        let dir = self.model_dir(training);
        let mode = self.mode(training);
        if mode == Mode::Load && !crate::on_policy::checkpoint_exists(&dir) {
            return Err(self.missing(training.stage, dir));
        }
        let release = self.label_release(false)?;
        let format = synth_gen::ControlCodeFormat::default();
        let prompts = release
            .codes
            .iter()
            .map(|c| self.tok.encode(&format.prompt(c)))
            .collect::<Result<Vec<_>, _>>()?;
        let settings = &self.config.student.on_policy;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let positions = start.config.n_positions;
        if longest + settings.max_new_tokens > positions {
            return Err(DistilDpError::InvalidArgument {
                field: "student.on_policy.max_new_tokens",
                value: format!(
                    "{} after a control code of {longest} tokens, for a student of {positions} positions",
                    settings.max_new_tokens
                ),
                expected: "at most the student's positions minus the longest control code",
            });
        }
        let rep = &mut *self.rep;
        let run = OnPolicy {
            settings,
            temperature: self.config.student.loss.temperature,
            sampling: &self.config.generation.sampling,
            teacher,
            prompts: &prompts,
            counts: &release.samples,
            special: synth_gen::SpecialTokens {
                eos: self.tok.eos_id(),
                pad: self.tok.pad_id(),
            },
            seed: self.config.seed,
        };
        let cadence = Cadence {
            checkpoint_every: self.config.checkpoint_every,
            limit: mode.step_limit(),
        };
        let progress = on_policy(&run, start, &dir, cadence, &mut |line| {
            log_step(rep, training.name, line)
        })?;
        match progress {
            Progress::Done(model) => Ok(Trained { model, dp: None }),
            Progress::Paused { .. } => Err(self.missing(training.stage, dir)),
        }
    }
}
