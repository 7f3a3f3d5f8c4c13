//! `distil-dp eval`: perplexity of a checkpoint on a data file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::Backend;
use causal_lm::checkpoint::{self, CheckpointFormat};
use causal_lm::{CausalLmError, Tokenizer, perplexity};
use serde::Serialize;

use crate::backend::{BackendKind, BackendTask, check_device, dispatch};
use crate::data::read_texts;
use crate::error::DistilDpError;

/// What to evaluate: the arguments of `distil-dp eval` (the command line's help describes
/// each).
#[derive(Debug, Clone)]
pub struct EvalArgs {
    /// The checkpoint directory (Hugging Face or native).
    pub model: PathBuf,
    /// The texts to score.
    pub data: PathBuf,
    /// `tokenizer.json`; `None`: the model directory's.
    pub tokenizer: Option<PathBuf>,
    /// Window length in tokens; `None`: the model's `n_positions`.
    pub block_size: Option<usize>,
    /// Windows per forward pass (at least 1).
    pub batch_size: usize,
    /// The backend to compute on.
    pub backend: BackendKind,
}

/// The result, printed as one JSON line by the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    /// Mean NLL per predicted token (nats).
    pub mean_nll: f64,
    /// Predicted tokens.
    pub tokens: usize,
    /// Tokens in the evaluation stream.
    pub stream_tokens: usize,
    /// Windows scored.
    pub windows: usize,
    /// Window length.
    pub block_size: usize,
    /// Texts read from the data file.
    pub texts: usize,
    /// `huggingface` or `native`.
    pub format: &'static str,
    /// Backend used.
    pub backend: &'static str,
    /// Wall-clock seconds (loading included).
    pub seconds: f64,
}

/// The tokenizer file to use: the explicit one, else `tokenizer.json` in the model directory.
pub fn tokenizer_path(model: &Path, explicit: Option<&Path>) -> Result<PathBuf, DistilDpError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let candidate = model.join("tokenizer.json");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(DistilDpError::InvalidArgument {
            field: "tokenizer",
            value: "(none)".into(),
            expected: "--tokenizer FILE, or a tokenizer.json in the model directory",
        })
    }
}

struct EvalTask<'a> {
    args: &'a EvalArgs,
    format: CheckpointFormat,
    texts: Vec<String>,
    tokenizer: Tokenizer,
    started: Instant,
}

impl BackendTask for EvalTask<'_> {
    type Output = Result<EvalReport, DistilDpError>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let (format, model) = match self.format {
            CheckpointFormat::Native => {
                ("native", checkpoint::load::<B>(&self.args.model, &device)?)
            }
            CheckpointFormat::HuggingFace => (
                "huggingface",
                causal_lm::hf::load::<B>(&self.args.model, &device)?,
            ),
        };
        if self.tokenizer.vocab_size() > model.config.vocab_size {
            return Err(CausalLmError::Mismatch(format!(
                "the tokenizer has {} tokens, the model's vocabulary only {}",
                self.tokenizer.vocab_size(),
                model.config.vocab_size
            ))
            .into());
        }
        let block = self.args.block_size.unwrap_or(model.config.n_positions);
        let r = perplexity(
            &model,
            &self.tokenizer,
            &self.texts,
            block,
            self.args.batch_size,
            &device,
        )?;
        Ok(EvalReport {
            perplexity: r.perplexity,
            mean_nll: r.mean_nll,
            tokens: r.tokens,
            stream_tokens: r.stream_tokens,
            windows: r.windows,
            block_size: r.block_size,
            texts: self.texts.len(),
            format,
            backend: self.args.backend.name(),
            seconds: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// Scores `args.model` on `args.data` with the paper's perplexity protocol
/// ([`causal_lm::perplexity`]).
pub fn evaluate(args: &EvalArgs) -> Result<EvalReport, DistilDpError> {
    let started = Instant::now();
    if args.batch_size == 0 {
        return Err(DistilDpError::InvalidArgument {
            field: "batch-size",
            value: "0".into(),
            expected: "an integer >= 1",
        });
    }
    let format = checkpoint::format(&args.model)?;
    let tokenizer = Tokenizer::from_file(tokenizer_path(&args.model, args.tokenizer.as_deref())?)?;
    let texts = read_texts(&args.data)?;
    check_device(args.backend)?;
    dispatch(
        args.backend,
        EvalTask {
            args,
            format,
            texts,
            tokenizer,
            started,
        },
    )
}
