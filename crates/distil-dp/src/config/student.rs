//! Stage 3's section, `[student]`: the student and its distillation, its optional on-policy
//! continuation (`[student.on_policy]`); and `[baselines]`.

use dp_optim::LrSchedule;
use kd_losses::{DistillConfig, Divergence};
use serde::{Deserialize, Serialize};

use super::model::{ModelConfig, ModelSection};
use super::{MAX_BATCH, MAX_BLOCK, MAX_EPOCHS, MAX_STEPS, bad, finite_positive, nested};
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
    /// On-policy distillation after stage 3 (default off: `steps = 0`). Not part of the
    /// distilled student's identity: changing it never retrains that student.
    pub on_policy: OnPolicyConfig,
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
                pretrain_schedule: cosine_schedule(),
                ..ModelConfig::default()
            },
            loss: DistillConfig::default(),
            epochs: 4.0,
            batch_size: 32,
            schedule: cosine_schedule(),
            prompt: PromptPositions::TextOnly,
            on_policy: OnPolicyConfig::default(),
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
        self.on_policy.validate()
    }
}

/// `[student.on_policy]`: on-policy distillation (Agarwal et al. 2024, GKD; cf. DP-OPD)
/// after stage 3. The finished DistilDP student samples continuations of the stage-2 control
/// codes (drawn as the label release allocates the corpus), the DP teacher scores them, and
/// the student is trained to match the teacher's next-token distributions on its own
/// samples: `τ²·D(p_T, p_S)` per generated token (τ is `student.loss.temperature`), no
/// cross-entropy. Post-processing of the DP teacher: no privacy cost. Its model is a row of
/// its own in the results table ("DistilDP student + on-policy"), next to the student it
/// starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnPolicyConfig {
    /// Training steps (default 0: off). Each step samples `samples_per_step` sequences.
    pub steps: u64,
    /// Student samples per step, the batch of the step (default 16).
    pub samples_per_step: usize,
    /// New tokens sampled per prompt, at most (default 32; the longest control code plus
    /// this must fit `teacher.block_size`). The other sampling settings are
    /// `generation.sampling`'s.
    pub max_new_tokens: usize,
    /// The divergence (default forward KL, `KL(p_T ‖ p_S)`, as stage 3, so the only change
    /// from the DistilDP student's training is whose samples it learns on; `reverse-kl` and
    /// `jsd` are the mode-seeking choices of GKD).
    pub divergence: Divergence,
    /// Learning rate (default cosine 1e-3 → 1e-4, no warm-up; a fresh AdamW).
    pub schedule: LrSchedule,
}

impl Default for OnPolicyConfig {
    fn default() -> Self {
        Self {
            steps: 0,
            samples_per_step: 16,
            max_new_tokens: 32,
            divergence: Divergence::ForwardKl,
            schedule: LrSchedule::Cosine {
                lr: 1e-3,
                min_lr: 1e-4,
                warmup_steps: 0,
            },
        }
    }
}

impl OnPolicyConfig {
    /// Whether the run trains the on-policy student (`steps > 0`).
    pub fn enabled(&self) -> bool {
        self.steps > 0
    }

    /// Checks the ranges (the room for `max_new_tokens` after the prompts is checked against
    /// `teacher.block_size` by [`super::PipelineConfig::validate`] and, for the actual codes,
    /// when the training starts).
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if self.steps > MAX_STEPS as u64 {
            return Err(bad(
                "student.on_policy.steps",
                self.steps,
                "an integer in [0, 10^9] (0: off)",
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.samples_per_step) {
            return Err(bad(
                "student.on_policy.samples_per_step",
                self.samples_per_step,
                "an integer in [1, 65536]",
            ));
        }
        if !(1..=MAX_BLOCK).contains(&self.max_new_tokens) {
            return Err(bad(
                "student.on_policy.max_new_tokens",
                self.max_new_tokens,
                "an integer in [1, 16384], below teacher.block_size",
            ));
        }
        if let Divergence::Jsd { beta } = self.divergence
            && !(beta > 0.0 && beta < 1.0)
        {
            return Err(bad(
                "student.on_policy.divergence.beta",
                beta,
                "a number in (0, 1)",
            ));
        }
        self.schedule
            .validate()
            .map_err(|e| nested("student.on_policy.schedule", &e))
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
