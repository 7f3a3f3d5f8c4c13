//! One run of the chosen stages over the table of trainings: which trainings it needs, in
//! which order, and the evaluation and report at the end.

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use super::Stage;
use super::ctx::Ctx;
use super::dp::{Done, find};
use super::trainings::{Method, PrivateData, TRAININGS, Training, TrainingId};
use crate::error::DistilDpError;
use crate::report::Report;

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// Whether this run needs `training`: its stage runs, or the evaluation reads it (its
    /// result row, or the model a row's training learns from). Pre-training is part of the
    /// training it starts.
    fn needed(&self, training: &Training) -> bool {
        if training.method == Method::Pretraining || !training.enabled(self.config) {
            return false;
        }
        let evaluated = |t: &Training| t.result.is_some() && t.enabled(self.config);
        self.runs(training.stage)
            || (self.runs(Stage::Evaluate)
                && (evaluated(training)
                    || TRAININGS
                        .iter()
                        .any(|t| evaluated(t) && t.learns_from() == Some(training.id))))
    }

    /// Runs the stages (see the module docs of `pipeline`); the report when the evaluation
    /// ran.
    pub(super) fn run(&mut self) -> Result<Option<Report>, DistilDpError> {
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
        let needed: Vec<&'static Training> = TRAININGS.iter().filter(|t| self.needed(t)).collect();
        // the teacher first: the corpus is generated from it
        let teacher = TrainingId::Teacher;
        let mut done: Done<B> = Vec::new();
        if self.runs(Stage::Generate)
            || needed
                .iter()
                .any(|t| t.id == teacher || t.learns_from() == Some(teacher))
        {
            done.push((teacher, self.teacher()?));
        }
        let corpus = if self.runs(Stage::Generate) || needed.iter().any(|t| !t.reads().is_empty()) {
            Some(match find(&done, teacher) {
                Some(t) => self.corpus(&t.model)?,
                None => self.corpus_from_disk()?,
            })
        } else {
            None
        };
        for &training in needed.iter().filter(|t| t.id != teacher) {
            let trained = match training.method {
                Method::DpSgd(_) => self.dp_release(training, &done)?,
                Method::Synthetic { .. } => {
                    let teacher = training
                        .learns_from()
                        .and_then(|id| find(&done, id))
                        .map(|t| t.model.valid());
                    let corpus = corpus.as_deref().unwrap_or_default();
                    self.distilled(training, teacher.as_ref(), corpus)?
                }
                Method::OnPolicy => {
                    let teacher = find(&done, teacher).map(|t| t.model.valid());
                    let start = training.starts_from().and_then(|id| find(&done, id));
                    let (Some(teacher), Some(start)) = (teacher, start) else {
                        let dir = self.model_dir(TrainingId::Student.training());
                        return Err(self.missing(Stage::Student, dir));
                    };
                    let start = start.model.clone();
                    self.on_policy(training, &teacher, start)?
                }
                Method::Pretraining => continue,
            };
            // a model only another training learns from is let go once that one is done
            if let Some(id) = training.learns_from()
                && id.training().result.is_none()
            {
                done.retain(|(d, _)| *d != id);
            }
            done.push((training.id, trained));
        }
        if !self.runs(Stage::Evaluate) {
            self.rep.finish();
            return Ok(None);
        }
        let release = self.label_release(false)?;
        let mut results = Vec::new();
        for (id, trained) in &done {
            let training = id.training();
            let Some(row) = training.result else { continue };
            let mut result = self.evaluate(row.name, row.kind, trained)?;
            if let Some(dp) = training.dp_sgd()
                && dp.data == PrivateData::CodedTexts
            {
                result.perplexity_with_codes = Some(self.perplexity_with_codes(&trained.model)?);
            }
            results.push(result);
        }
        for (id, trained) in &done {
            if id.training().exported {
                self.export(id.training().name, &trained.model)?;
            }
        }
        let mut report = Report::new(
            self.config,
            &self.splits,
            self.delta,
            &release,
            results,
            &self.warnings,
            Some(self.prompt_budget(&release.codes)?),
        )?;
        report.synthetic_corpus = self.synthetic_corpus(&release)?;
        if let Some(corpus) = &report.synthetic_corpus {
            let warnings = crate::teacher_check::corpus_warnings(corpus);
            report.privacy.notes.extend(warnings);
        }
        report.pretraining = std::mem::take(&mut self.pretrained);
        let warnings = crate::teacher_check::pretraining_warnings(&report.pretraining);
        report.privacy.notes.extend(warnings);
        report.dp_trainings = std::mem::take(&mut self.dp_trainings);
        report.write(&self.dir)?;
        self.rep.event(
            Stage::Evaluate.name(),
            serde_json::json!({ "event": "report", "path": self.dir.root().join("report.md") }),
        );
        self.rep.finish();
        Ok(Some(report))
    }
}
