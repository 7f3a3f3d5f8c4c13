//! The sections of the configuration other than `[teacher]`, each with the ranges it checks.

use std::path::PathBuf;

use dp_accounting::AccountantKind;
use dp_optim::LrSchedule;
use kd_losses::DistillConfig;
use serde::{Deserialize, Serialize};
use synth_gen::GenerationConfig;

use super::{bad, nested};
use crate::allocation::SampleAllocation;
use crate::error::DistilDpError;
use crate::records::RecordFormat;
use crate::split::SplitConfig;

/// Largest `teacher.block_size` and `max_new_tokens` (GPT-2 has 1024 positions).
pub(super) const MAX_BLOCK: usize = 16_384;
/// Largest model width.
const MAX_WIDTH: usize = 16_384;
/// Largest layer and head counts.
const MAX_LAYERS: usize = 256;
/// Largest vocabulary.
const MAX_VOCAB: usize = 1 << 20;
/// Largest batch (generation prompts, student sequences).
const MAX_BATCH: usize = 65_536;
/// Largest epoch count.
pub(super) const MAX_EPOCHS: f64 = 1e6;
/// Largest step and sample counts.
const MAX_STEPS: usize = 1_000_000_000;
const MAX_SAMPLES: usize = 1_000_000_000;

/// Where the private records come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A JSONL, CSV, text or `fortunes` file or directory; unset (default): the embedded
    /// labelled corpus.
    pub path: Option<PathBuf>,
    /// Layout (default `auto`: by extension, a directory is `fortunes`).
    pub format: RecordFormat,
    /// Label columns making the control code, in order; empty (default): every column but
    /// `text`.
    pub label_columns: Vec<String>,
    /// Train / validation / test fractions and the shuffle's seed (default 0.8 / 0.1 / 0.1,
    /// seed 0).
    pub split: SplitConfig,
    /// Use at most this many records (each split shrunk in proportion after the seeded
    /// shuffle); unset: all.
    pub max_records: Option<usize>,
    /// The public domain of each label column (`{ "Review Stars" = ["1.0", "2.0"] }`): the
    /// control codes are every combination, in `label_columns` order. Empty (default): the
    /// combinations present in the private training split — a disclosure of which
    /// combinations occur, not covered by the DP guarantee (the report says so). The
    /// embedded corpus's domain is known and used automatically.
    pub label_values: std::collections::BTreeMap<String, Vec<String>>,
}

impl DataConfig {
    /// The split's fractions and a positive `max_records`.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        self.split.validate()?;
        if self.max_records == Some(0) {
            return Err(bad("data.max_records", 0, "at least 1 (or unset: all)"));
        }
        Ok(())
    }
}

/// The run's privacy budget: the teacher's DP-SGD and the label histogram together spend
/// at most (ε, δ) under add/remove-one-record adjacency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Total ε > 0 (default 2, the paper's headline).
    pub epsilon: f64,
    /// δ in (0, 1); unset (default): 1 / (training records).
    pub delta: Option<f64>,
    /// Accountant `pld` (default), `prv` or `rdp`.
    pub accountant: AccountantKind,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            epsilon: 2.0,
            delta: None,
            accountant: AccountantKind::Pld,
        }
    }
}

impl PrivacyConfig {
    /// A finite ε > 0 and, when given, δ in (0, 1).
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(bad("privacy.epsilon", self.epsilon, "a finite number > 0"));
        }
        if let Some(d) = self.delta
            && !(d > 0.0 && d < 1.0)
        {
            return Err(bad("privacy.delta", d, "a number in (0, 1)"));
        }
        Ok(())
    }
}

/// The byte-level BPE tokenizer, trained on public text only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerConfig {
    /// A Hugging Face `tokenizer.json` to use as is; unset (default): train one on the
    /// public corpus.
    pub path: Option<PathBuf>,
    /// Vocabulary size when training (default 2048).
    pub vocab_size: usize,
    /// Public text files to train it on; empty (default): the embedded public corpus.
    pub public_corpus: Vec<PathBuf>,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            path: None,
            vocab_size: 2048,
            public_corpus: Vec::new(),
        }
    }
}

impl TokenizerConfig {
    /// A vocabulary of 260 to 2^20 tokens.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if self.vocab_size < 260 {
            return Err(bad(
                "tokenizer.vocab_size",
                self.vocab_size,
                "at least 260 (256 bytes and the special tokens)",
            ));
        }
        if self.vocab_size > MAX_VOCAB {
            return Err(bad(
                "tokenizer.vocab_size",
                self.vocab_size,
                "at most 1048576",
            ));
        }
        Ok(())
    }
}

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

/// Stage 2: sampling the synthetic corpus from the DP teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationStageConfig {
    /// Synthetic samples in all (default: as many as private training records).
    pub samples: Option<usize>,
    /// Samples per control code (default: the DP histogram of the private label counts,
    /// σ = 10, charged to the budget).
    pub allocation: SampleAllocation,
    /// Prompts per batch (default 64).
    pub batch_size: usize,
    /// Drop exact duplicate texts (default false).
    pub dedup: bool,
    /// Sampling settings (default: the paper's — top-k 50, top-p 0.9, temperature 1, no
    /// repeated bigram — with at most 48 new tokens instead of 128, to fit the default
    /// teacher's 64 positions after the control code; checked when generating).
    pub sampling: GenerationConfig,
}

impl Default for GenerationStageConfig {
    fn default() -> Self {
        Self {
            samples: None,
            allocation: SampleAllocation::default(),
            batch_size: 64,
            dedup: false,
            sampling: GenerationConfig {
                max_new_tokens: 48,
                ..GenerationConfig::default()
            },
        }
    }
}

impl GenerationStageConfig {
    /// The allocation, the sample count, the batch and the sampling settings.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        validate_allocation(&self.allocation)?;
        if self.samples == Some(0) {
            return Err(bad("generation.samples", 0, "at least 1 (or unset)"));
        }
        if let Some(n) = self.samples.filter(|&n| n > MAX_SAMPLES) {
            return Err(bad("generation.samples", n, "at most 10^9 (or unset)"));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(bad(
                "generation.batch_size",
                self.batch_size,
                "an integer in [1, 65536]",
            ));
        }
        if self.sampling.max_new_tokens > MAX_BLOCK {
            return Err(bad(
                "generation.sampling.max_new_tokens",
                self.sampling.max_new_tokens,
                "at most 16384 (and room for it after the control code in teacher.block_size)",
            ));
        }
        self.sampling
            .validate()
            .map_err(|e| nested("generation.sampling", &e))
    }
}

/// Checks the allocation's σ or weights (finite, in range).
fn validate_allocation(a: &SampleAllocation) -> Result<(), DistilDpError> {
    match a {
        SampleAllocation::Uniform => Ok(()),
        SampleAllocation::Given { weights } => {
            if weights.is_empty() || weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
                return Err(bad(
                    "generation.allocation.weights",
                    format!("{weights:?}"),
                    "one finite weight >= 0 per control code",
                ));
            }
            Ok(())
        }
        SampleAllocation::DpHistogram { noise_multiplier } => {
            if !(noise_multiplier.is_finite() && *noise_multiplier > 0.0) {
                return Err(bad(
                    "generation.allocation.noise_multiplier",
                    noise_multiplier,
                    "a finite number > 0",
                ));
            }
            Ok(())
        }
    }
}

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
        if !(self.epochs > 0.0 && self.epochs.is_finite()) {
            return Err(bad("student.epochs", self.epochs, "a finite number > 0"));
        }
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
        if !(loss.temperature > 0.0 && loss.temperature.is_finite()) {
            return Err(bad(
                "student.loss.temperature",
                loss.temperature,
                "a finite number > 0",
            ));
        }
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
