//! A model's shape or starting checkpoint (`[teacher.model]`, `[student.model]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{MAX_LAYERS, MAX_STEPS, MAX_WIDTH, bad};
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            checkpoint: None,
            n_embd: 128,
            n_layer: 4,
            n_head: 4,
            pretrain_steps: 0,
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
        if self.pretrain_steps > MAX_STEPS {
            return Err(bad(
                section.pretrain_steps(),
                self.pretrain_steps,
                "at most 10^9",
            ));
        }
        Ok(())
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

    /// Its `pretrain_steps` field's dotted name.
    fn pretrain_steps(self) -> &'static str {
        match self {
            Self::Teacher => "teacher.model.pretrain_steps",
            Self::Student => "student.model.pretrain_steps",
        }
    }
}
