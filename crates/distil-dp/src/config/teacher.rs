//! The `[teacher]` section: the teacher's architecture and block size, and the DP-SGD
//! settings ([`DpSgdConfig`], with DP-LoRA's [`DpLoraConfig`]) that every DP training of a
//! run uses (the teacher, the DP-SGD student, DPKD's teacher and student).

use std::ops::{Deref, DerefMut};

use causal_lm::{LoraConfig, LoraProjection};
use dp_optim::{Clipping, ClippingPath, LrSchedule, OptimizerConfig};
use serde::{Deserialize, Serialize};

use super::model::ModelSection;
use super::student::cosine_schedule;
use super::{MAX_BLOCK, MAX_EPOCHS, MAX_WIDTH, bad, finite_positive, nested};
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
    /// DP-LoRA (`[teacher.lora]`): DP-SGD on low-rank adapters only (default off).
    pub lora: DpLoraConfig,
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
            lora: DpLoraConfig::default(),
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
            .map_err(|e| nested("teacher.schedule", &e))?;
        self.lora.validate()
    }
}

/// `[teacher.lora]`: DP-LoRA (Yu et al., ICLR 2022, "Differentially Private Fine-tuning of
/// Language Models"; Kurakin et al. 2023). With `rank > 0` every DP training of the run
/// (the teacher, the DP-SGD student, DPKD's teacher and student) adapts its starting model
/// with `causal_lm::LoraGpt2` (base frozen, adapters `A` seeded from the run's public seed,
/// `B = 0`), DP-SGD trains the adapters only, and the finished model is merged back into a
/// plain GPT-2 (`W ← W + (α/r)·A·B`) for every later use. The guarantee is the same (ε, δ):
/// the adapters are the output of the same DP-SGD mechanism (same q, σ, steps, clipping
/// norm), and the merged model is post-processing of them and of the public starting model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpLoraConfig {
    /// Rank `r` of every adapter; 0 (the default): no LoRA, DP-SGD trains every parameter.
    /// At most the width (`n_embd`) of every model a DP training adapts.
    pub rank: usize,
    /// Scale numerator `α` (the adapters add `(α/r)·B(A x)`); unset (the default): `2·rank`,
    /// a scale of 2 whatever the rank, so changing the rank keeps the step size of the
    /// update. Finite and > 0 when set.
    pub alpha: Option<f64>,
    /// The adapted projections of every block (default all four: `attn.c_attn`,
    /// `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`); not empty, no repeats.
    pub projections: Vec<LoraProjection>,
}

impl Default for DpLoraConfig {
    fn default() -> Self {
        Self {
            rank: 0,
            alpha: None,
            projections: LoraProjection::ALL.to_vec(),
        }
    }
}

impl DpLoraConfig {
    /// Whether DP-SGD trains adapters (`rank > 0`).
    pub fn enabled(&self) -> bool {
        self.rank > 0
    }

    /// `α`: the configured one, else `2·rank`.
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(2.0 * self.rank as f64)
    }

    /// The adapters' configuration with `A` drawn from the public `seed`; `None` when off.
    pub fn adapters(&self, seed: u64) -> Option<LoraConfig> {
        self.enabled().then(|| {
            LoraConfig::new(self.rank, self.alpha())
                .with_projections(&self.projections)
                .with_seed(seed)
        })
    }

    /// What a run depends on, as one line (`None` when off): the rank, the resolved `α` and
    /// the projections, e.g. `rank 2, alpha 4, attn.c_attn mlp.c_fc`.
    pub fn describe(&self) -> Option<String> {
        self.enabled().then(|| {
            let projections: Vec<&str> = self.projections.iter().map(|p| p.name()).collect();
            format!(
                "rank {}, alpha {}, {}",
                self.rank,
                self.alpha(),
                projections.join(" ")
            )
        })
    }

    /// Refuses a rank above 16384, an `alpha` that is not finite and > 0, and an empty or
    /// repeating projection list, naming the field (`teacher.lora.rank`, …). The rank is
    /// checked against each adapted model's width by `PipelineConfig::validate` (fresh
    /// models) and before the first release (starting checkpoints).
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if self.rank > MAX_WIDTH {
            return Err(bad(
                "teacher.lora.rank",
                self.rank,
                "an integer in [0, n_embd] (0: no LoRA)",
            ));
        }
        if let Some(alpha) = self.alpha {
            finite_positive("teacher.lora.alpha", alpha)?;
        }
        let unique: std::collections::HashSet<_> = self.projections.iter().collect();
        if self.projections.is_empty() || unique.len() != self.projections.len() {
            return Err(bad(
                "teacher.lora.projections",
                format!("{:?}", self.projections),
                "a non-empty list without repeats of \"attn.c_attn\", \"attn.c_proj\", \"mlp.c_fc\", \"mlp.c_proj\"",
            ));
        }
        Ok(())
    }

    /// Refuses a rank above the width `n_embd` of a model a DP training adapts (`model`:
    /// `teacher.model`, …, or a checkpoint's path, for the message).
    pub fn check_width(&self, n_embd: usize, model: &str) -> Result<(), DistilDpError> {
        if self.rank > n_embd {
            return Err(DistilDpError::InvalidArgument {
                field: "teacher.lora.rank",
                value: format!("{} (the width n_embd of {model} is {n_embd})", self.rank),
                expected: "an integer in [0, n_embd] for every model a DP training adapts (0: no LoRA)",
            });
        }
        Ok(())
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
