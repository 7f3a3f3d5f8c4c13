//! The pipeline's configuration: one TOML file, every field optional with a documented
//! default, unknown fields refused, any field overridable from the command line
//! (`--set teacher.epochs=2`).

use std::path::{Path, PathBuf};

use dp_accounting::AccountantKind;
use dp_optim::{Clipping, ClippingPath, LrSchedule, OptimizerConfig};
use kd_losses::DistillConfig;
use serde::{Deserialize, Serialize};
use synth_gen::GenerationConfig;

use crate::allocation::SampleAllocation;

use crate::error::DistilDpError;
use crate::records::RecordFormat;
use crate::split::SplitConfig;

/// Everything a run needs. `PipelineConfig::default()` is the quickstart: the embedded
/// corpus, tiny models, ε = 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Run directory: config copy, checkpoints, corpus, metrics, report
    /// (default `runs/distil-dp`).
    pub output_dir: PathBuf,
    /// CPU backend `flex` (default) or `ndarray`; `cuda` in builds with the `cuda` feature.
    pub backend: String,
    /// Seed of the public randomness: model initialisation, synthetic sampling (default 0).
    /// DP noise never comes from it (see `insecure_noise_seed`).
    pub seed: u64,
    /// Draw DP noise from ChaCha20 seeded with this value instead of the OS: reproducible and
    /// **not private** (for tests and debugging only; the report flags it). Default: unset.
    pub insecure_noise_seed: Option<u64>,
    /// Checkpoint every trained model every this many steps, and at its end (default 20): a
    /// killed run loses at most this many steps of work, never an accounted step.
    pub checkpoint_every: u64,
    /// Data-parallel DP-SGD (the teacher and the DP-SGD baselines): this many worker
    /// threads, one per device of the backend (`cuda`: GPUs 0..workers-1; CPU backends: all
    /// on the CPU, where they take turns and gain nothing). Default 1. Not part of the run's
    /// identity: a run may resume with another number of workers (the samples and the noise
    /// do not depend on it). See `docs/scaling.md`.
    pub workers: usize,
    /// The private data.
    pub data: DataConfig,
    /// The budget of the whole run.
    pub privacy: PrivacyConfig,
    /// The tokenizer (trained on public text only).
    pub tokenizer: TokenizerConfig,
    /// Stage 1: the teacher and its DP fine-tuning.
    pub teacher: TeacherConfig,
    /// Stage 2: the synthetic corpus.
    pub generation: GenerationStageConfig,
    /// Stage 3: the student and its distillation.
    pub student: StudentConfig,
    /// Which baselines stage 4 trains and evaluates.
    pub baselines: BaselinesConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("runs/distil-dp"),
            backend: "flex".into(),
            seed: 0,
            insecure_noise_seed: None,
            checkpoint_every: 20,
            workers: 1,
            data: DataConfig::default(),
            privacy: PrivacyConfig::default(),
            tokenizer: TokenizerConfig::default(),
            teacher: TeacherConfig::default(),
            generation: GenerationStageConfig::default(),
            student: StudentConfig::default(),
            baselines: BaselinesConfig::default(),
        }
    }
}

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

/// Stage 1: DP fine-tuning of the teacher on `control code + text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherConfig {
    /// The teacher (default: 4 layers × 128, the tiny preset).
    pub model: ModelConfig,
    /// Tokens per training block (default 64).
    pub block_size: usize,
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

/// Cosine from 3e-3 to 3e-4 after 5 warm-up steps (the default of both trainings).
fn cosine_schedule() -> LrSchedule {
    LrSchedule::Cosine {
        lr: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 5,
    }
}

impl Default for TeacherConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig::default(),
            block_size: 64,
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

/// Largest `teacher.block_size` and `max_new_tokens` (GPT-2 has 1024 positions).
const MAX_BLOCK: usize = 16_384;
/// Largest model width.
const MAX_WIDTH: usize = 16_384;
/// Largest layer and head counts.
const MAX_LAYERS: usize = 256;
/// Largest vocabulary.
const MAX_VOCAB: usize = 1 << 20;
/// Largest batch (generation prompts, student sequences).
const MAX_BATCH: usize = 65_536;
/// Largest epoch count.
const MAX_EPOCHS: f64 = 1e6;
/// Largest step and sample counts.
const MAX_STEPS: usize = 1_000_000_000;
const MAX_SAMPLES: usize = 1_000_000_000;

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

fn bad(field: &'static str, value: impl ToString, expected: &'static str) -> DistilDpError {
    DistilDpError::InvalidArgument {
        field,
        value: value.to_string(),
        expected,
    }
}

impl PipelineConfig {
    /// Parses a TOML document, applies `overrides` (`dotted.key=value`, the value a TOML
    /// literal or else a string), merges the result over the defaults (a partly given table
    /// keeps the defaults of its other fields; a table of another `kind`, e.g. a constant
    /// schedule instead of the default cosine one, replaces the default whole), and
    /// validates it.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self, DistilDpError> {
        let mut doc: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| DistilDpError::Config {
                    message: e.to_string(),
                })?;
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        // the user's tables over the defaults: a partly given table keeps its role's
        // defaults (`[student.model]` with only `pretrain_steps` stays the 2x64 student)
        let mut merged =
            toml::Table::try_from(Self::default()).expect("the default config serialises");
        merge_over(&mut merged, doc);
        let config: Self =
            merged
                .try_into()
                .map_err(|e: toml::de::Error| DistilDpError::Config {
                    message: e.to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file (see [`Self::from_toml`]).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, DistilDpError> {
        let text = std::fs::read_to_string(path).map_err(|source| DistilDpError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, overrides).map_err(|e| match e {
            DistilDpError::Config { message } => DistilDpError::Config {
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// The TOML text of this config (what the run directory keeps).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Checks every range this crate owns (the others are checked by the crates that use
    /// them, with the same kind of message).
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if self.output_dir.as_os_str().is_empty() {
            return Err(bad(
                "output_dir",
                "\"\"",
                "a directory path (not empty: an empty path would write into the current directory)",
            ));
        }
        let p = &self.privacy;
        if !(p.epsilon > 0.0 && p.epsilon.is_finite()) {
            return Err(bad("privacy.epsilon", p.epsilon, "a finite number > 0"));
        }
        if let Some(d) = p.delta
            && !(d > 0.0 && d < 1.0)
        {
            return Err(bad("privacy.delta", d, "a number in (0, 1)"));
        }
        self.data.split.validate()?;
        if self.workers == 0 || self.workers > u16::MAX as usize {
            return Err(bad("workers", self.workers, "an integer in [1, 65535]"));
        }
        if self.checkpoint_every == 0 {
            return Err(bad("checkpoint_every", 0, "at least 1"));
        }
        if self.data.max_records == Some(0) {
            return Err(bad("data.max_records", 0, "at least 1 (or unset: all)"));
        }
        if self.tokenizer.vocab_size < 260 {
            return Err(bad(
                "tokenizer.vocab_size",
                self.tokenizer.vocab_size,
                "at least 260 (256 bytes and the special tokens)",
            ));
        }
        for (field, m) in [
            ("teacher.model", &self.teacher.model),
            ("student.model", &self.student.model),
        ] {
            if m.checkpoint.is_none()
                && (m.n_embd == 0 || m.n_layer == 0 || m.n_head == 0 || m.n_embd % m.n_head != 0)
            {
                return Err(bad(
                    field,
                    format!(
                        "n_embd {} n_layer {} n_head {}",
                        m.n_embd, m.n_layer, m.n_head
                    ),
                    "positive sizes with n_head dividing n_embd",
                ));
            }
        }
        for (field, m) in [
            ("teacher.model", &self.teacher.model),
            ("student.model", &self.student.model),
        ] {
            if m.n_embd > MAX_WIDTH || m.n_layer > MAX_LAYERS || m.n_head > MAX_LAYERS {
                return Err(bad(
                    field,
                    format!(
                        "n_embd {} n_layer {} n_head {}",
                        m.n_embd, m.n_layer, m.n_head
                    ),
                    "n_embd at most 16384, n_layer and n_head at most 256",
                ));
            }
            if m.pretrain_steps > MAX_STEPS {
                return Err(bad(
                    if field == "teacher.model" {
                        "teacher.model.pretrain_steps"
                    } else {
                        "student.model.pretrain_steps"
                    },
                    m.pretrain_steps,
                    "at most 10^9",
                ));
            }
        }
        if self.tokenizer.vocab_size > MAX_VOCAB {
            return Err(bad(
                "tokenizer.vocab_size",
                self.tokenizer.vocab_size,
                "at most 1048576",
            ));
        }
        let t = &self.teacher;
        if !(2..=MAX_BLOCK).contains(&t.block_size) {
            return Err(bad(
                "teacher.block_size",
                t.block_size,
                "an integer in [2, 16384]",
            ));
        }
        let nested = |section: &str, e: &dyn std::fmt::Display| DistilDpError::Config {
            message: format!("{section}: {e}"),
        };
        t.schedule
            .validate()
            .map_err(|e| nested("teacher.schedule", &e))?;
        t.optimizer
            .validate()
            .map_err(|e| nested("teacher.optimizer", &e))?;
        self.student
            .schedule
            .validate()
            .map_err(|e| nested("student.schedule", &e))?;
        validate_allocation(&self.generation.allocation)?;
        let loss = &self.student.loss;
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
        if !(t.epochs > 0.0 && t.epochs.is_finite()) {
            return Err(bad("teacher.epochs", t.epochs, "a finite number > 0"));
        }
        if !(t.expected_batch_size >= 1.0 && t.expected_batch_size.is_finite()) {
            return Err(bad(
                "teacher.expected_batch_size",
                t.expected_batch_size,
                "a finite number >= 1",
            ));
        }
        if !(t.max_grad_norm > 0.0 && t.max_grad_norm.is_finite()) {
            return Err(bad(
                "teacher.max_grad_norm",
                t.max_grad_norm,
                "a finite number > 0",
            ));
        }
        if t.epochs > MAX_EPOCHS {
            return Err(bad("teacher.epochs", t.epochs, "at most 10^6"));
        }
        if t.physical_batch_size == Some(0) {
            return Err(bad(
                "teacher.physical_batch_size",
                0,
                "at least 1 (or unset)",
            ));
        }
        let g = &self.generation;
        if g.samples == Some(0) {
            return Err(bad("generation.samples", 0, "at least 1 (or unset)"));
        }
        if g.samples.is_some_and(|n| n > MAX_SAMPLES) {
            return Err(bad(
                "generation.samples",
                g.samples.unwrap_or_default(),
                "at most 10^9 (or unset)",
            ));
        }
        if !(1..=MAX_BATCH).contains(&g.batch_size) {
            return Err(bad(
                "generation.batch_size",
                g.batch_size,
                "an integer in [1, 65536]",
            ));
        }
        if g.sampling.max_new_tokens > MAX_BLOCK {
            return Err(bad(
                "generation.sampling.max_new_tokens",
                g.sampling.max_new_tokens,
                "at most 16384 (and room for it after the control code in teacher.block_size)",
            ));
        }
        g.sampling.validate().map_err(|e| DistilDpError::Config {
            message: format!("generation.sampling: {e}"),
        })?;
        let s = &self.student;
        if !(s.epochs > 0.0 && s.epochs.is_finite()) {
            return Err(bad("student.epochs", s.epochs, "a finite number > 0"));
        }
        if s.epochs > MAX_EPOCHS {
            return Err(bad("student.epochs", s.epochs, "at most 10^6"));
        }
        if !(1..=MAX_BATCH).contains(&s.batch_size) {
            return Err(bad(
                "student.batch_size",
                s.batch_size,
                "an integer in [1, 65536]",
            ));
        }
        if !(0.0..=1.0).contains(&s.loss.lambda) {
            return Err(bad(
                "student.loss.lambda",
                s.loss.lambda,
                "a number in [0, 1]",
            ));
        }
        if !(s.loss.temperature > 0.0 && s.loss.temperature.is_finite()) {
            return Err(bad(
                "student.loss.temperature",
                s.loss.temperature,
                "a finite number > 0",
            ));
        }
        if !(s.loss.alpha >= 0.0 && s.loss.alpha.is_finite()) {
            return Err(bad(
                "student.loss.alpha",
                s.loss.alpha,
                "a finite number >= 0",
            ));
        }
        if s.loss.alpha > 0.0
            && self.teacher.model.checkpoint.is_none()
            && self.student.model.checkpoint.is_none()
            && self.teacher.model.n_embd != self.student.model.n_embd
        {
            return Err(bad(
                "student.loss.alpha",
                s.loss.alpha,
                "0 unless student.model.n_embd equals teacher.model.n_embd (the hidden-state MSE compares the last hidden states directly)",
            ));
        }
        if crate::backend::BackendKind::parse(&self.backend).is_none() {
            return Err(bad(
                "backend",
                &self.backend,
                "flex or ndarray (cuda with the `cuda` feature)",
            ));
        }
        Ok(())
    }
}

/// Merges `user` into `base`: tables key by key, recursively; any other value replaces the
/// base's. A table whose `kind` (the tag of an enum: schedule, optimiser, allocation, …)
/// differs from the base's replaces it whole, since its variant has other fields.
fn merge_over(base: &mut toml::Table, user: toml::Table) {
    for (key, value) in user {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u))
                if u.get("kind").is_none_or(|k| b.get("kind") == Some(k)) =>
            {
                merge_over(b, u)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `a.b.c = value` in `doc`, creating tables on the way.
fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<(), DistilDpError> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(bad(
            "--set",
            assignment,
            "KEY=VALUE with a dotted key, e.g. teacher.epochs=2",
        ));
    };
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(bad("--set", assignment, "a dotted key without empty parts"));
    }
    let raw = raw.trim();
    // a TOML literal (number, boolean, array, quoted string), else the raw text as a string
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let (last, parents) = path.split_last().expect("non-empty");
    let mut table = doc;
    for p in parents {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| bad("--set", assignment, "a key whose parents are tables"))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}
