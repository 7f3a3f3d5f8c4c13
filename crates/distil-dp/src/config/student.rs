//! Stage 3's section, `[student]`: the student and its distillation; and `[baselines]`.

use dp_optim::LrSchedule;
use kd_losses::DistillConfig;
use serde::{Deserialize, Serialize};

use super::model::{ModelConfig, ModelSection};
use super::{MAX_BATCH, MAX_EPOCHS, bad, finite_positive, nested};
use crate::error::DistilDpError;

/// Cosine from 3e-3 to 3e-4 after 5 warm-up steps (the default of both trainings).
pub(super) fn cosine_schedule() -> LrSchedule {
    LrSchedule::Cosine {
        lr: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 5,
    }
}

/// Stage 3: the student, trained on the synthetic corpus only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudentConfig {
    /// The student (default 2 layers × 64).
    pub model: ModelConfig,
    /// The loss: λ·KL + (1−λ)·CE + α·MSE (default λ = 0.4, τ = 1, α = 0). The MSE pulls the
    /// student's last hidden state towards the teacher's and needs equal widths (`n_embd`).
    pub loss: DistillConfig,
    /// Passes over the synthetic corpus (default 4).
    pub epochs: f64,
    /// Sequences per step (default 32).
    pub batch_size: usize,
    /// Learning rate (default cosine 3e-3 → 3e-4 after 5 warm-up steps; optimiser AdamW).
    pub schedule: LrSchedule,
    /// Whether the synthetic samples' control codes are in the student's and teacher's
    /// context (default `text-only`: the texts alone; `context`: the paper's choice).
    pub prompt: PromptPositions,
}

/// What the student and the teacher see of a synthetic sample in stage 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptPositions {
    /// The generated text alone, every position in the loss: the student learns the texts
    /// as it is evaluated (without codes), and the teacher's soft labels are its
    /// distributions without the code.
    #[default]
    TextOnly,
    /// `control code + text`, the code's positions left out of the loss (CE, KL and MSE):
    /// the teacher's soft labels are conditioned on the code it generated from, as in the
    /// paper; the student is still evaluated on texts without codes.
    Context,
}

impl Default for StudentConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig {
                n_embd: 64,
                n_layer: 2,
                n_head: 4,
                ..ModelConfig::default()
            },
            loss: DistillConfig::default(),
            epochs: 4.0,
            batch_size: 32,
            schedule: cosine_schedule(),
            prompt: PromptPositions::TextOnly,
        }
    }
}

impl StudentConfig {
    /// The model, the schedule, the loss's weights, the epochs and the batch. (Whether the
    /// hidden-state MSE may be used depends on the teacher too: [`super::PipelineConfig`]
    /// checks it.)
    pub fn validate(&self) -> Result<(), DistilDpError> {
        self.model.validate(ModelSection::Student)?;
        self.schedule
            .validate()
            .map_err(|e| nested("student.schedule", &e))?;
        let loss = &self.loss;
        if !(0.0..1.0).contains(&loss.label_smoothing) {
            return Err(bad(
                "student.loss.label_smoothing",
                loss.label_smoothing,
                "a number in [0, 1)",
            ));
        }
        if let kd_losses::Divergence::Jsd { beta } = loss.divergence
            && !(beta > 0.0 && beta < 1.0)
        {
            return Err(bad(
                "student.loss.divergence.beta",
                beta,
                "a number in (0, 1)",
            ));
        }
        finite_positive("student.epochs", self.epochs)?;
        if self.epochs > MAX_EPOCHS {
            return Err(bad("student.epochs", self.epochs, "at most 10^6"));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(bad(
                "student.batch_size",
                self.batch_size,
                "an integer in [1, 65536]",
            ));
        }
        if !(0.0..=1.0).contains(&loss.lambda) {
            return Err(bad(
                "student.loss.lambda",
                loss.lambda,
                "a number in [0, 1]",
            ));
        }
        finite_positive("student.loss.temperature", loss.temperature)?;
        if !(loss.alpha >= 0.0 && loss.alpha.is_finite()) {
            return Err(bad(
                "student.loss.alpha",
                loss.alpha,
                "a finite number >= 0",
            ));
        }
        Ok(())
    }
}

/// The baselines evaluated next to the DistilDP student, each at the run's total ε.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselinesConfig {
    /// The student trained directly with DP-SGD on the private data (default true).
    pub dp_sgd_student: bool,
    /// The student trained on the synthetic corpus with hard labels only, λ = 0 (default
    /// true; no extra privacy cost).
    pub synthetic_hard_labels: bool,
    /// DPKD: teacher and student each DP-trained at ε/2 with the KD loss on the private data
    /// (default true).
    pub dpkd: bool,
}

impl Default for BaselinesConfig {
    fn default() -> Self {
        Self {
            dp_sgd_student: true,
            synthetic_hard_labels: true,
            dpkd: true,
        }
    }
}
