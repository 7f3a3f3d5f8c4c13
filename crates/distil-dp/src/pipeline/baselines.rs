//! The baselines, each trained at the run's ε: the student with DP-SGD on the private data,
//! DPKD, and the student on the synthetic corpus with hard labels only.

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use dp_accounting::PrivacyLedger;

use super::{Ctx, Role, Stage, Trained, dirs};
use crate::blocks::KdBlocks;
use crate::error::DistilDpError;
use crate::report::TrainingKind;

impl<B: AutodiffBackend> Ctx<'_, B> {
    /// Baseline: the student architecture trained directly with DP-SGD on the private
    /// training texts at the run's ε.
    pub(super) fn dp_sgd_student(&mut self) -> Result<(TrainingKind, Trained<B>), DistilDpError> {
        let may_train = self.runs(Stage::Baselines);
        let dir = self.dir.model_dir(dirs::DP_SGD_STUDENT);
        if !may_train && !dp_optim::checkpoint_exists(&dir) {
            return Err(self.missing(Stage::Baselines, dir));
        }
        let mut data = self.private_blocks(None)?;
        let initial = self.start(Role::Student, may_train)?;
        let epsilon = self.config.privacy.epsilon;
        let trained = self.dp_train(
            "dp-sgd-student",
            dirs::DP_SGD_STUDENT,
            initial,
            &mut data,
            epsilon,
            PrivacyLedger::new(),
            may_train,
            Stage::Baselines,
            3,
        )?;
        Ok((TrainingKind::DpSgdStudent, trained))
    }

    /// Baseline DPKD: a teacher DP-trained at ε/2 on the private texts, then the student
    /// DP-trained with the KD loss against it; σ of the student is calibrated so that both
    /// together spend the run's ε (composed by the accountant: tighter than ε/2 + ε/2).
    pub(super) fn dpkd(&mut self) -> Result<(TrainingKind, Trained<B>), DistilDpError> {
        let may_train = self.runs(Stage::Baselines);
        for d in [dirs::DPKD_TEACHER, dirs::DPKD_STUDENT] {
            let dir = self.dir.model_dir(d);
            if !may_train && !dp_optim::checkpoint_exists(&dir) {
                return Err(self.missing(Stage::Baselines, dir));
            }
        }
        let mut data = self.private_blocks(None)?;
        let initial = self.start(Role::Teacher, may_train)?;
        let half = self.config.privacy.epsilon / 2.0;
        let teacher = self.dp_train(
            "dpkd-teacher",
            dirs::DPKD_TEACHER,
            initial,
            &mut data,
            half,
            PrivacyLedger::new(),
            may_train,
            Stage::Baselines,
            4,
        )?;
        let prior = teacher.dp.as_ref().expect("DP-trained").ledger.clone();
        let inner = teacher.model.valid();
        let mut kd = KdBlocks {
            blocks: data,
            teacher: std::borrow::Cow::Borrowed(&inner),
            loss: kd_losses::DistillConfig {
                alpha: 0.0,
                ..self.config.student.loss.clone()
            },
        };
        let initial = self.start(Role::Student, may_train)?;
        let epsilon = self.config.privacy.epsilon;
        let student = self.dp_train(
            "dpkd-student",
            dirs::DPKD_STUDENT,
            initial,
            &mut kd,
            epsilon,
            prior,
            may_train,
            Stage::Baselines,
            5,
        )?;
        Ok((TrainingKind::Dpkd, student))
    }

    /// Baseline: the student on the synthetic corpus with hard labels only (λ = 0).
    pub(super) fn hard_labels(
        &mut self,
        corpus: &[String],
    ) -> Result<(TrainingKind, Trained<B>), DistilDpError> {
        let may = self.runs(Stage::Baselines);
        let dir = self.dir.model_dir(dirs::HARD_LABELS);
        if !may && !crate::distill::checkpoint_exists(&dir) {
            return Err(self.missing(Stage::Baselines, dir));
        }
        let trained = self.distilled(
            dirs::HARD_LABELS,
            "hard-labels",
            None,
            corpus,
            Stage::Baselines,
        )?;
        Ok((TrainingKind::SyntheticHardLabels, trained))
    }
}
