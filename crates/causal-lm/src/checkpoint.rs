//! Native checkpoints (burnpack) for resumable training, and loading either kind of directory.
//!
//! A native checkpoint directory holds `model.json` (the [`Gpt2Config`]) and `model.bpk`
//! (burn-store's burnpack: every parameter with its id, so optimiser state keyed by parameter id
//! stays attached across a save and a load). The two files are replaced together
//! (`train_kit::files::replace_files`): an interrupted save leaves the previous pair or the
//! new one, never a configuration beside another model's weights.

use std::fs;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{BurnpackStore, ModuleSnapshot};
use train_kit::files::{recover_files, replace_files};

use crate::config::Gpt2Config;
use crate::error::CausalLmError;
use crate::hf;
use crate::model::Gpt2;

/// Configuration file of a native checkpoint.
pub const NATIVE_CONFIG_FILE: &str = "model.json";
/// Weights file of a native checkpoint.
pub const NATIVE_WEIGHTS_FILE: &str = "model.bpk";

/// The two checkpoint layouts this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `config.json` + `model.safetensors` (see [`crate::hf`]).
    HuggingFace,
    /// `model.json` + `model.bpk` (this module).
    Native,
}

/// Which layout `dir` holds, if any (native wins when both are present).
pub fn detect(dir: impl AsRef<Path>) -> Option<CheckpointFormat> {
    let dir = dir.as_ref();
    if dir.join(NATIVE_CONFIG_FILE).is_file() && dir.join(NATIVE_WEIGHTS_FILE).is_file() {
        Some(CheckpointFormat::Native)
    } else if dir.join(hf::CONFIG_FILE).is_file() && dir.join(hf::WEIGHTS_FILE).is_file() {
        Some(CheckpointFormat::HuggingFace)
    } else {
        None
    }
}

/// Saves `model` as a native checkpoint in `dir` (created if needed): both files replaced
/// together (see the module docs).
pub fn save<B: Backend>(model: &Gpt2<B>, dir: impl AsRef<Path>) -> Result<(), CausalLmError> {
    let dir = dir.as_ref();
    let weights = dir.join(NATIVE_WEIGHTS_FILE);
    let text = serde_json::to_string_pretty(&model.config).expect("config serialises") + "\n";
    replace_files(
        dir,
        &[NATIVE_CONFIG_FILE, NATIVE_WEIGHTS_FILE],
        |staged| -> Result<(), CausalLmError> {
            fs::write(&staged[0], &text).map_err(|e| CausalLmError::io(&staged[0], e))?;
            let mut store = BurnpackStore::from_file(&staged[1])
                .auto_extension(false)
                .overwrite(true);
            model
                .save_into(&mut store)
                .map_err(|e| CausalLmError::Checkpoint {
                    path: weights.clone(),
                    source: Box::new(e),
                })
        },
    )
}

/// Loads a native checkpoint from `dir`.
pub fn load<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<Gpt2<B>, CausalLmError> {
    let dir = dir.as_ref();
    recover_files(dir)?;
    let config_path = dir.join(NATIVE_CONFIG_FILE);
    let text = fs::read_to_string(&config_path).map_err(|e| CausalLmError::io(&config_path, e))?;
    let config: Gpt2Config = serde_json::from_str(&text).map_err(|e| CausalLmError::Json {
        path: config_path.clone(),
        source: e,
    })?;
    let mut model = config.init::<B>(device)?;
    let weights = dir.join(NATIVE_WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(CausalLmError::io(
            &weights,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such weights file"),
        ));
    }
    let mut store = BurnpackStore::from_file(&weights).auto_extension(false);
    let dtype = model.wte.weight.val().dtype();
    model
        .load_from(&mut store)
        .map_err(|e| CausalLmError::Checkpoint {
            path: weights.clone(),
            source: Box::new(e),
        })?;
    Ok(crate::dtype::cast_params(model, dtype))
}

/// Which layout `dir` holds, or an error naming the files a checkpoint directory needs.
pub fn format(dir: impl AsRef<Path>) -> Result<CheckpointFormat, CausalLmError> {
    let dir = dir.as_ref();
    detect(dir).ok_or_else(|| CausalLmError::Checkpoint {
        path: dir.to_path_buf(),
        source: format!(
            "not a checkpoint directory: expected {} + {} (Hugging Face) or {} + {} (native)",
            hf::CONFIG_FILE,
            hf::WEIGHTS_FILE,
            NATIVE_CONFIG_FILE,
            NATIVE_WEIGHTS_FILE
        )
        .into(),
    })
}

/// Loads a Hugging Face or native checkpoint directory, whichever `dir` holds.
pub fn load_any<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<Gpt2<B>, CausalLmError> {
    let dir = dir.as_ref();
    match format(dir)? {
        CheckpointFormat::Native => load(dir, device),
        CheckpointFormat::HuggingFace => hf::load(dir, device),
    }
}
