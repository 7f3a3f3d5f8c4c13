//! The pipeline's configuration: one TOML file, every field optional with a documented
//! default, unknown fields refused, any field overridable from the command line
//! (`--set teacher.epochs=2`).
//!
//! - this module: [`PipelineConfig`] (the file's top level), parsing and validation;
//! - [`data`]: the run's inputs, `[data]`, `[privacy]` and `[tokenizer]`;
//! - [`model`]: a model's shape or starting checkpoint ([`ModelConfig`]);
//! - [`generation`]: `[generation]`, the synthetic corpus;
//! - [`student`]: `[student]` and `[baselines]`;
//! - [`teacher`]: the `[teacher]` section, whose DP-SGD settings ([`DpSgdConfig`], dp-optim's
//!   own types) every DP training of a run uses;
//! - `overrides`: `--set` and the merge over the defaults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::error::DistilDpError;

pub mod data;
pub mod generation;
pub mod model;
mod overrides;
pub mod student;
pub mod teacher;

pub use data::{DataConfig, PrivacyConfig, TokenizerConfig};
pub use generation::GenerationStageConfig;
pub use model::{ModelConfig, ModelSection};
pub use student::{BaselinesConfig, OnPolicyConfig, PromptPositions, StudentConfig};
pub use teacher::{DpLoraConfig, DpSgdConfig, TeacherConfig};

/// Everything a run needs. `PipelineConfig::default()` is the quickstart: the embedded
/// corpus, tiny models, ε = 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Run directory: config copy, checkpoints, corpus, metrics, report
    /// (default `runs/distil-dp`).
    pub output_dir: PathBuf,
    /// CPU backend `flex` (default) or `ndarray`; `cuda` in builds with the `cuda` feature.
    pub backend: BackendKind,
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
            backend: BackendKind::Flex,
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
/// Largest step count.
const MAX_STEPS: usize = 1_000_000_000;
/// Largest sample count.
const MAX_SAMPLES: usize = 1_000_000_000;

/// An out-of-range field: its dotted name, the value, the allowed range.
fn bad(field: &'static str, value: impl ToString, expected: &'static str) -> DistilDpError {
    DistilDpError::InvalidArgument {
        field,
        value: value.to_string(),
        expected,
    }
}

/// Refuses a `value` of `field` that is not a finite number > 0.
fn finite_positive(field: &'static str, value: f64) -> Result<(), DistilDpError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(bad(field, value, "a finite number > 0"))
    }
}

/// An error of a nested type's own validation (a schedule, an optimiser, sampling settings),
/// under the dotted name of its section.
fn nested(section: &str, error: &dyn std::fmt::Display) -> DistilDpError {
    DistilDpError::Config {
        message: format!("{section}: {error}"),
    }
}

/// The error of `doc`, the merged document, when it does not read as a configuration: the
/// backend's own error when its name is unknown (naming the field and the choices), the DP-SGD
/// key of `[teacher]` at fault (see [`teacher::locate_error`]), or else `error` as it is.
fn parse_error(doc: &toml::Table, error: &toml::de::Error) -> DistilDpError {
    if let Some(Err(e)) = doc
        .get("backend")
        .and_then(toml::Value::as_str)
        .map(str::parse::<BackendKind>)
        && e.to_string() == error.message()
    {
        return e;
    }
    DistilDpError::Config {
        message: teacher::locate_error(doc, error).unwrap_or_else(|| error.to_string()),
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
            overrides::apply_override(&mut doc, o)?;
        }
        // the user's tables over the defaults: a partly given table keeps its role's
        // defaults (`[student.model]` with only `pretrain_steps` stays the 2x64 student)
        let mut merged =
            toml::Table::try_from(Self::default()).map_err(|e| DistilDpError::Config {
                message: format!("the default configuration: {e}"),
            })?;
        overrides::merge_over(&mut merged, doc);
        let config: Self = match merged.clone().try_into() {
            Ok(config) => config,
            Err(e) => return Err(parse_error(&merged, &e)),
        };
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

    /// Checks every range this crate owns, section by section (the others are checked by the
    /// crates that use them, with the same kind of message); the `backend` is checked when
    /// it is parsed.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if self.output_dir.as_os_str().is_empty() {
            return Err(bad(
                "output_dir",
                "\"\"",
                "a directory path (not empty: an empty path would write into the current directory)",
            ));
        }
        self.privacy.validate()?;
        self.data.validate()?;
        if self.workers == 0 || self.workers > u16::MAX as usize {
            return Err(bad("workers", self.workers, "an integer in [1, 65535]"));
        }
        if self.checkpoint_every == 0 {
            return Err(bad("checkpoint_every", 0, "at least 1"));
        }
        self.tokenizer.validate()?;
        self.teacher.validate()?;
        self.generation.validate()?;
        self.student.validate()?;
        if self.student.loss.alpha > 0.0
            && self.teacher.model.checkpoint.is_none()
            && self.student.model.checkpoint.is_none()
            && self.teacher.model.n_embd != self.student.model.n_embd
        {
            return Err(bad(
                "student.loss.alpha",
                self.student.loss.alpha,
                "0 unless student.model.n_embd equals teacher.model.n_embd (the hidden-state MSE compares the last hidden states directly)",
            ));
        }
        self.check_lora_widths()?;
        let on_policy = &self.student.on_policy;
        if on_policy.enabled() && on_policy.max_new_tokens >= self.teacher.block_size {
            return Err(bad(
                "student.on_policy.max_new_tokens",
                on_policy.max_new_tokens,
                "below teacher.block_size (the control code and the sample share its positions)",
            ));
        }
        Ok(())
    }

    /// Refuses a `teacher.lora.rank` above the width of a fresh model a DP training adapts:
    /// the teacher's (the DP teacher, DPKD's teacher), and the student's when a DP-SGD
    /// baseline trains it (a starting checkpoint's width is checked before the first release).
    fn check_lora_widths(&self) -> Result<(), DistilDpError> {
        let student_dp = self.baselines.dp_sgd_student || self.baselines.dpkd;
        for (model, section, adapted) in [
            (&self.teacher.model, ModelSection::Teacher, true),
            (&self.student.model, ModelSection::Student, student_dp),
        ] {
            if adapted && model.checkpoint.is_none() {
                self.teacher
                    .lora
                    .check_width(model.n_embd, section.name())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_is_read_by_name_and_an_unknown_one_names_the_field_and_the_choices() {
        let ndarray = PipelineConfig::from_toml("backend = \"ndarray\"", &[]).unwrap();
        assert_eq!(ndarray.backend, BackendKind::Ndarray);
        assert!(ndarray.to_toml().contains("backend = \"ndarray\""));
        let e = PipelineConfig::from_toml("", &["backend=tpu".into()]).unwrap_err();
        assert!(
            matches!(&e, DistilDpError::InvalidArgument { field: "backend", value, .. } if value == "tpu"),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "tpu".parse::<BackendKind>().unwrap_err().to_string()
        );
        // not a string: the parser's own message, naming the key
        let e = PipelineConfig::from_toml("backend = 3", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("backend"), "{e}");
    }
}
