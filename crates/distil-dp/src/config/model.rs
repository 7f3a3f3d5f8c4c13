//! A model's shape or starting checkpoint (`[teacher.model]`, `[student.model]`).

use std::path::PathBuf;

use dp_optim::LrSchedule;
use serde::{Deserialize, Serialize};

use super::{MAX_BATCH, MAX_LAYERS, MAX_STEPS, MAX_WIDTH, bad, nested};
use crate::error::DistilDpError;

/// A GPT-2 architecture, or a checkpoint to start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A Hugging Face or native checkpoint directory; unset: a fresh model of the shape
    /// below (pre-trained non-privately on the public corpus when `pretrain_steps` > 0).
    pub checkpoint: Option<PathBuf>,
    /// Width.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Attention heads (dividing `n_embd`).
    pub n_head: usize,
    /// Non-private steps on the public corpus before the private stages (stage 0).
    pub pretrain_steps: usize,
    /// Sequences per stage-0 step (default 32).
    pub pretrain_batch_size: usize,
    /// Stage 0's learning rate (AdamW; default for the 4 × 128 teacher: cosine 1e-3 → 1e-4
    /// after 5 warm-up steps; for the 2 × 64 student: cosine 3e-3 → 3e-4 after 5 warm-up steps).
    /// A wider or deeper model usually wants a lower peak: at 3e-3 the 4 × 128 teacher
    /// learned the public corpus *worse* than the 2 × 64 student (`docs/results.md`).
    pub pretrain_schedule: LrSchedule,
}

/// The default stage-0 schedule of a model of the teacher's default shape (4 × 128).
pub(super) fn teacher_pretrain_schedule() -> LrSchedule {
    LrSchedule::Cosine {
        lr: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 5,
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            checkpoint: None,
            n_embd: 128,
            n_layer: 4,
            n_head: 4,
            pretrain_steps: 0,
            pretrain_batch_size: 32,
            pretrain_schedule: teacher_pretrain_schedule(),
        }
    }
}

impl ModelConfig {
    /// Positive sizes with `n_head` dividing `n_embd` (for a fresh model), each bounded, and
    /// a bounded pre-training; `section` is `teacher.model` or `student.model`.
    pub fn validate(&self, section: ModelSection) -> Result<(), DistilDpError> {
        let shape = || {
            format!(
                "n_embd {} n_layer {} n_head {}",
                self.n_embd, self.n_layer, self.n_head
            )
        };
        if self.checkpoint.is_none()
            && (self.n_embd == 0
                || self.n_layer == 0
                || self.n_head == 0
                || !self.n_embd.is_multiple_of(self.n_head))
        {
            return Err(bad(
                section.name(),
                shape(),
                "positive sizes with n_head dividing n_embd",
            ));
        }
        if self.n_embd > MAX_WIDTH || self.n_layer > MAX_LAYERS || self.n_head > MAX_LAYERS {
            return Err(bad(
                section.name(),
                shape(),
                "n_embd at most 16384, n_layer and n_head at most 256",
            ));
        }
        let [steps, batch, schedule] = section.pretrain_fields();
        if self.pretrain_steps > MAX_STEPS {
            return Err(bad(steps, self.pretrain_steps, "at most 10^9"));
        }
        if !(1..=MAX_BATCH).contains(&self.pretrain_batch_size) {
            return Err(bad(
                batch,
                self.pretrain_batch_size,
                "an integer in [1, 65536]",
            ));
        }
        self.pretrain_schedule
            .validate()
            .map_err(|e| nested(schedule, &e))
    }
}

/// Which `model` section a [`ModelConfig`] is (for the names in its errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSection {
    /// `teacher.model`.
    Teacher,
    /// `student.model`.
    Student,
}

impl ModelSection {
    /// The section's dotted name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Teacher => "teacher.model",
            Self::Student => "student.model",
        }
    }

    /// The dotted names of its stage-0 fields: `pretrain_steps`, `pretrain_batch_size` and
    /// `pretrain_schedule`.
    fn pretrain_fields(self) -> [&'static str; 3] {
        match self {
            Self::Teacher => [
                "teacher.model.pretrain_steps",
                "teacher.model.pretrain_batch_size",
                "teacher.model.pretrain_schedule",
            ],
            Self::Student => [
                "student.model.pretrain_steps",
                "student.model.pretrain_batch_size",
                "student.model.pretrain_schedule",
            ],
        }
    }
}
