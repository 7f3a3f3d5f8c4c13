//! The `[teacher]` section: the teacher's architecture and block size, and the DP-SGD
//! settings ([`DpSgdConfig`]) that every DP training of a run uses (the teacher, the DP-SGD
//! student, DPKD's teacher and student).

use std::ops::{Deref, DerefMut};

use dp_optim::{Clipping, ClippingPath, LrSchedule, OptimizerConfig};
use serde::{Deserialize, Serialize};

use super::model::ModelSection;
use super::student::cosine_schedule;
use super::{MAX_BLOCK, MAX_EPOCHS, bad, finite_positive, nested};
use crate::config::ModelConfig;
use crate::error::DistilDpError;

/// Stage 1: DP fine-tuning of the teacher on `control code + text`. Its DP-SGD keys
/// (`epochs`, `expected_batch_size`, …) sit in the section itself (`teacher.epochs`), and
/// read as fields of it too (`config.teacher.epochs`, through [`Deref`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherConfig {
    /// The teacher (default: 4 layers × 128, the tiny preset).
    pub model: ModelConfig,
    /// Tokens per training block (default 64), of every training and of the evaluation.
    pub block_size: usize,
    /// Sampling, clipping, optimiser and schedule of every DP-SGD training of the run.
    #[serde(flatten)]
    pub dp_sgd: DpSgdConfig,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig::default(),
            block_size: 64,
            dp_sgd: DpSgdConfig::default(),
        }
    }
}

impl Deref for TeacherConfig {
    type Target = DpSgdConfig;

    fn deref(&self) -> &DpSgdConfig {
        &self.dp_sgd
    }
}

impl DerefMut for TeacherConfig {
    fn deref_mut(&mut self) -> &mut DpSgdConfig {
        &mut self.dp_sgd
    }
}

impl TeacherConfig {
    /// The model, the block size and the DP-SGD settings.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        self.model.validate(ModelSection::Teacher)?;
        if !(2..=MAX_BLOCK).contains(&self.block_size) {
            return Err(bad(
                "teacher.block_size",
                self.block_size,
                "an integer in [2, 16384]",
            ));
        }
        self.dp_sgd.validate()
    }
}

/// The DP-SGD settings of the `[teacher]` section, in dp-optim's own types: what
/// `dp_optim::EngineConfig` and `dp_optim::TrainerConfig` are made of, besides the budget and
/// the data (see `dp_train::DpTraining`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DpSgdConfig {
    /// Passes over the private training split (default 4).
    pub epochs: f64,
    /// Expected Poisson batch size (default 64).
    pub expected_batch_size: f64,
    /// Examples per forward pass (memory bound; default: the whole batch).
    pub physical_batch_size: Option<usize>,
    /// Per-example clipping norm C > 0 (default 1).
    pub max_grad_norm: f64,
    /// Flat (default) or per-parameter clipping.
    pub clipping: Clipping,
    /// Generic, fast (ghost) or auto (default) clipping path.
    pub clipping_path: ClippingPath,
    /// Optimiser (default AdamW, weight decay 0.01).
    pub optimizer: OptimizerConfig,
    /// Learning rate (default cosine 3e-3 → 3e-4 after 5 warm-up steps).
    pub schedule: LrSchedule,
}

impl Default for DpSgdConfig {
    fn default() -> Self {
        Self {
            epochs: 4.0,
            expected_batch_size: 64.0,
            physical_batch_size: None,
            max_grad_norm: 1.0,
            clipping: Clipping::default(),
            clipping_path: ClippingPath::default(),
            optimizer: OptimizerConfig::AdamW {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-8,
                weight_decay: 0.01,
            },
            schedule: cosine_schedule(),
        }
    }
}

impl DpSgdConfig {
    /// Every range of the DP-SGD settings, each named by its key (`teacher.epochs`, …): the
    /// configuration checks them when it is read, and `dp_train::plan` again before any DP
    /// training is calibrated. The optimiser and the schedule are checked by their own
    /// (dp-optim's) validation; what depends on the data (an expected batch larger than the
    /// training split) only dp-optim can check, when the training is planned.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        finite_positive("teacher.epochs", self.epochs)?;
        if self.epochs > MAX_EPOCHS {
            return Err(bad("teacher.epochs", self.epochs, "at most 10^6"));
        }
        if !(self.expected_batch_size >= 1.0 && self.expected_batch_size.is_finite()) {
            return Err(bad(
                "teacher.expected_batch_size",
                self.expected_batch_size,
                "a finite number >= 1",
            ));
        }
        if self.physical_batch_size == Some(0) {
            return Err(bad(
                "teacher.physical_batch_size",
                0,
                "at least 1 (or unset)",
            ));
        }
        finite_positive("teacher.max_grad_norm", self.max_grad_norm)?;
        self.optimizer
            .validate()
            .map_err(|e| nested("teacher.optimizer", &e))?;
        self.schedule
            .validate()
            .map_err(|e| nested("teacher.schedule", &e))
    }
}

/// The message of `error`, an error reading `doc` into the configuration, with its key when
/// it lies in the DP-SGD keys of `[teacher]`: serde's `flatten` reports those as `in
/// teacher`, so they are read again on their own, which names the key (`in
/// teacher.epochs`). `None`: the error lies elsewhere (its own message names the key).
pub(super) fn locate_error(doc: &toml::Table, error: &toml::de::Error) -> Option<String> {
    /// The `[teacher]` table read as DP-SGD settings only (its other keys are ignored here:
    /// the section's own parse refuses unknown ones).
    #[derive(Deserialize)]
    struct Probe {
        #[allow(dead_code)] // read for its errors only
        teacher: DpSgdConfig,
    }
    let mut probe = toml::Table::new();
    probe.insert("teacher".into(), doc.get("teacher")?.clone());
    match probe.try_into::<Probe>() {
        Err(e) if e.message() == error.message() => Some(e.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::PipelineConfig;

    fn error(overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        PipelineConfig::from_toml("", &o).unwrap_err().to_string()
    }

    #[test]
    fn the_dp_sgd_keys_stay_in_the_teacher_section_and_their_errors_name_them() {
        let config = PipelineConfig::default();
        let table = toml::Table::try_from(&config).unwrap();
        let teacher = table["teacher"].as_table().unwrap();
        for key in [
            "block_size",
            "epochs",
            "max_grad_norm",
            "clipping",
            "optimizer",
            "schedule",
        ] {
            assert!(teacher.contains_key(key), "{key}");
        }
        assert!(!teacher.contains_key("dp_sgd"));
        let e = error(&["teacher.epochs=\"x\""]);
        assert!(e.contains("teacher.epochs") && e.contains("f64"), "{e}");
        let e = error(&["teacher.clipping=\"diagonal\""]);
        assert!(
            e.contains("teacher.clipping") && e.contains("diagonal"),
            "{e}"
        );
        let e = error(&["teacher.epoch=3"]);
        assert!(
            e.contains("unknown field `epoch`") && e.contains("teacher"),
            "{e}"
        );
        let e = error(&["teacher.model.n_embd=\"x\""]);
        assert!(e.contains("teacher.model.n_embd"), "{e}");
        let e = error(&["privacy.epsilon=\"x\""]);
        assert!(e.contains("privacy.epsilon"), "{e}");
    }
}
