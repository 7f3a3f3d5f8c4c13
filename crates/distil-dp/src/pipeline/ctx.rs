//! What the stages of one run share ([`Ctx`]): the configuration, the run directory, the data,
//! the tokenizer, δ, the label release once made or loaded; and what a training of the table
//! may do in this run ([`Mode`]).

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use causal_lm::{Gpt2, Tokenizer};
use synth_gen::ControlCodeFormat;

use super::Stage;
use super::preflight::default_delta;
use super::trainings::{NoiseStream, Training};
use crate::blocks::TokenBlocks;
use crate::config::PipelineConfig;
use crate::dp_train::{DpSummary, Processes};
use crate::error::DistilDpError;
use crate::fingerprint::DataFingerprint;
use crate::histogram::{ControlCodes, LabelRelease, release_or_load};
use crate::prepare::{load_data, load_tokenizer};
use crate::progress::Reporter;
use crate::records::Record;
use crate::run_dir::RunDir;
use crate::split::Splits;

/// Everything the stages share.
pub(super) struct Ctx<'a, B: AutodiffBackend> {
    pub(super) config: &'a PipelineConfig,
    pub(super) stages: &'a [Stage],
    pub(super) rep: &'a mut Reporter,
    pub(super) dir: RunDir,
    pub(super) splits: Splits<Record>,
    pub(super) tok: Tokenizer,
    pub(super) delta: f64,
    pub(super) device: B::Device,
    /// The label release once made or loaded.
    release: Option<LabelRelease>,
    /// The teacher's DP-SGD is spread over these processes.
    pub(super) processes: Option<&'a Processes>,
    /// The private data's fingerprints.
    pub(super) fingerprint: DataFingerprint,
    /// Their short form, kept in every DP checkpoint.
    pub(super) dataset_id: String,
    /// The control codes, once checked (by the preflight of a run that makes the release).
    pub(super) codes: Option<ControlCodes>,
    /// Warnings and disclosures shown at the start (the report repeats them).
    pub(super) warnings: Vec<String>,
    /// The public perplexity of each model pre-trained (stage 0) in this invocation.
    pub(super) pretrained: Vec<crate::teacher_check::Pretrained>,
    /// What each DP training trained or loaded in this invocation trained (LoRA or not).
    pub(super) dp_trainings: Vec<crate::dp_train::DpFineTuning>,
}

/// A finished model of the run and how it was made.
pub(super) struct Trained<B: AutodiffBackend> {
    pub(super) model: Gpt2<B>,
    pub(super) dp: Option<DpSummary>,
}

/// What a training may do in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Its stage runs: it is trained (or resumed) to its end.
    Train,
    /// Only loaded from its finished checkpoint (refused when that is missing or incomplete).
    Load,
}

impl Mode {
    /// The most steps a training may take in this run.
    pub(super) fn step_limit(self) -> Option<u64> {
        match self {
            Self::Train => None,
            Self::Load => Some(0),
        }
    }
}

impl<'a, B: AutodiffBackend> Ctx<'a, B> {
    /// Reads the data and the tokenizer, and settles δ.
    pub(super) fn new(
        config: &'a PipelineConfig,
        stages: &'a [Stage],
        rep: &'a mut Reporter,
        device: B::Device,
    ) -> Result<Self, DistilDpError> {
        let dir = RunDir::open(config)?;
        let (splits, fingerprint) = load_data(config)?;
        if splits.train.is_empty() || splits.test.is_empty() {
            return Err(DistilDpError::InvalidArgument {
                field: "data",
                value: format!(
                    "{} training and {} test records",
                    splits.train.len(),
                    splits.test.len()
                ),
                expected: "at least one record in the training and in the test split",
            });
        }
        let tok = load_tokenizer(config, &dir)?;
        let delta = config
            .privacy
            .delta
            .unwrap_or_else(|| default_delta(splits.train.len()));
        if !(delta > 0.0 && delta < 1.0) {
            return Err(DistilDpError::InvalidArgument {
                field: "privacy.delta",
                value: delta.to_string(),
                expected: "a number in (0, 1) (the default N^-1.1 needs at least 2 training records)",
            });
        }
        let dataset_id = fingerprint.short();
        Ok(Self {
            config,
            stages,
            rep,
            dir,
            splits,
            tok,
            delta,
            device,
            release: None,
            processes: None,
            fingerprint,
            dataset_id,
            codes: None,
            warnings: Vec::new(),
            pretrained: Vec::new(),
            dp_trainings: Vec::new(),
        })
    }

    /// Whether this run runs `stage`.
    pub(super) fn runs(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }

    /// Whether `training` is trained in this run or only loaded.
    pub(super) fn mode(&self, training: &Training) -> Mode {
        if self.runs(training.stage) {
            Mode::Train
        } else {
            Mode::Load
        }
    }

    /// The refusal of a stage that needs `stage`'s output at `path`, missing or incomplete.
    pub(super) fn missing(&self, stage: Stage, path: PathBuf) -> DistilDpError {
        DistilDpError::StageMissing {
            stage: stage.name(),
            // the stage being run that needs it
            needed_by: self.stages.first().map_or("run", |s| s.name()),
            path,
        }
    }

    /// The checkpoint directory of `training`.
    pub(super) fn model_dir(&self, training: &Training) -> PathBuf {
        self.dir.model_dir(training.dir)
    }

    /// The label histogram release: made by the teacher stage, loaded by the others (read
    /// from the run directory once per run).
    pub(super) fn label_release(
        &mut self,
        may_release: bool,
    ) -> Result<LabelRelease, DistilDpError> {
        if let Some(release) = &self.release {
            return Ok(release.clone());
        }
        let path = self.dir.histogram_path();
        if !may_release && !path.exists() {
            return Err(self.missing(Stage::Teacher, path));
        }
        let total = self
            .config
            .generation
            .samples
            .unwrap_or(self.splits.train.len());
        let codes = match &self.codes {
            Some(c) => c.clone(),
            // only a run whose preflight checked the codes may release
            None if !path.exists() => return Err(self.missing(Stage::Teacher, path)),
            None => ControlCodes {
                codes: Vec::new(),
                from_private_data: false,
                warning: None,
            },
        };
        let mut rng = NoiseStream::LABEL_HISTOGRAM.rng(self.config)?;
        let release = release_or_load(
            self.config,
            &self.dir,
            &self.splits.train,
            &codes,
            total,
            &mut rng,
        )?;
        self.release = Some(release.clone());
        Ok(release)
    }

    /// The public corpus as (pre-training, held-out) texts, packed into paragraphs of about
    /// a block (3 characters a token) so short texts fill the block instead of padding it.
    pub(super) fn public_split(&self) -> Result<(Vec<String>, Vec<String>), DistilDpError> {
        use crate::public_corpus::{held_out_split, pack};
        let (train, held_out) = held_out_split(crate::prepare::public_texts(self.config)?);
        let chars = 3 * self.config.teacher.block_size;
        Ok((pack(&train, chars), pack(&held_out, chars)))
    }

    /// `texts` as training blocks of `teacher.block_size` tokens.
    pub(super) fn blocks<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
    ) -> Result<TokenBlocks<B>, DistilDpError> {
        Ok(TokenBlocks::new(
            &self.tok,
            texts,
            self.config.teacher.block_size,
            &self.device,
        )?)
    }

    /// The private training split as blocks: `control code + text` when a format is given
    /// (the teacher), the texts alone otherwise (the baselines, like the evaluation).
    pub(super) fn private_blocks(
        &self,
        codes: Option<&ControlCodeFormat>,
    ) -> Result<TokenBlocks<B>, DistilDpError> {
        let texts: Vec<String> = self
            .splits
            .train
            .iter()
            .map(|r| match codes {
                Some(f) => format!("{}{}", f.prompt(&r.labels), r.text),
                None => r.text.clone(),
            })
            .collect();
        self.blocks(&texts)
    }
}
