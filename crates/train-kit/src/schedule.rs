//! Learning-rate schedules: functions of the step number only, so a resumed run needs no
//! scheduler state.

use serde::{Deserialize, Serialize};

use crate::error::TrainKitError;

/// The learning rate at each step of a run of `total` steps (the engine's planned steps).
/// Warm-up, where present, rises linearly from `lr / warmup_steps` to `lr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrSchedule {
    /// `lr` at every step.
    Constant {
        /// The learning rate, > 0.
        lr: f64,
    },
    /// Linear warm-up, then linear decay from `lr` to `final_lr` at the last step.
    Linear {
        /// Peak learning rate, > 0.
        lr: f64,
        /// Learning rate at the last step, >= 0 (default 0).
        #[serde(default)]
        final_lr: f64,
        /// Warm-up steps (default 0).
        #[serde(default)]
        warmup_steps: u64,
    },
    /// Linear warm-up, then cosine decay from `lr` to `min_lr` at the last step.
    Cosine {
        /// Peak learning rate, > 0.
        lr: f64,
        /// Learning rate at the last step, >= 0 (default 0).
        #[serde(default)]
        min_lr: f64,
        /// Warm-up steps (default 0).
        #[serde(default)]
        warmup_steps: u64,
    },
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self::Constant { lr: 1e-3 }
    }
}

impl LrSchedule {
    /// Checks the rates (peak > 0, final in [0, peak]).
    pub fn validate(&self) -> Result<(), TrainKitError> {
        let (lr, low) = match *self {
            Self::Constant { lr } => (lr, 0.0),
            Self::Linear { lr, final_lr, .. } => (lr, final_lr),
            Self::Cosine { lr, min_lr, .. } => (lr, min_lr),
        };
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(TrainKitError::InvalidParameter {
                field: "lr",
                value: lr.to_string(),
                expected: "a finite number > 0",
            });
        }
        if !(0.0..=lr).contains(&low) {
            return Err(TrainKitError::InvalidParameter {
                field: "final_lr / min_lr",
                value: low.to_string(),
                expected: "a number in [0, lr]",
            });
        }
        Ok(())
    }

    /// The learning rate of step `step` (0-based) out of `total`.
    pub fn lr(&self, step: u64, total: u64) -> f64 {
        let (lr, low, warmup) = match *self {
            Self::Constant { lr } => return lr,
            Self::Linear {
                lr,
                final_lr,
                warmup_steps,
            } => (lr, final_lr, warmup_steps),
            Self::Cosine {
                lr,
                min_lr,
                warmup_steps,
            } => (lr, min_lr, warmup_steps),
        };
        if step < warmup {
            return lr * (step + 1) as f64 / warmup as f64;
        }
        let span = total.saturating_sub(warmup).saturating_sub(1).max(1) as f64;
        let progress = ((step - warmup) as f64 / span).min(1.0);
        match self {
            Self::Linear { .. } => lr + (low - lr) * progress,
            _ => low + 0.5 * (lr - low) * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}
