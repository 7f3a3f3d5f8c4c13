//! Hugging Face checkpoints of the GPT-2 family: `config.json` + `model.safetensors`.
//!
//! Loading accepts both key conventions found in the wild (`transformer.h.0...` as written by
//! `GPT2LMHeadModel.save_pretrained`, and the bare `h.0...` of the original `gpt2` upload),
//! F32 or F16 tensors (F16 is widened to F32), and ignores the buffers and duplicates that carry
//! no parameters (`attn.bias`, `attn.masked_bias`, the tied `lm_head.weight`). GPT-2's `Conv1D`
//! stores weights as `[in, out]`, which is exactly burn's `Linear` layout, so no tensor is
//! transposed. Saving writes what `GPT2LMHeadModel.from_pretrained` reads.
//!
//! Dropout probabilities in a `config.json` are *not* imported: models load with dropout off
//! (this crate's default); set it with [`Gpt2Config::with_dropout`] if wanted.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_store::{ApplyError, HalfPrecisionAdapter, KeyRemapper, ModuleSnapshot, SafetensorsStore};
use serde::Deserialize;
use serde_json::json;
use train_kit::files::{write_atomic, write_atomic_with};

use crate::config::Gpt2Config;
use crate::error::CausalLmError;
use crate::model::Gpt2;

/// File name of the configuration inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the weights inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The subset of Hugging Face's `GPT2Config` this crate reads (unknown fields are ignored:
/// real `config.json` files carry many unrelated ones).
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    n_positions: usize,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f64,
    activation_function: Option<String>,
    #[serde(default = "default_init")]
    initializer_range: f64,
    eos_token_id: Option<serde_json::Value>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    add_cross_attention: Option<bool>,
    tie_word_embeddings: Option<bool>,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_init() -> f64 {
    0.02
}

fn unsupported(path: &Path, found: String) -> CausalLmError {
    CausalLmError::UnsupportedArchitecture {
        path: path.to_path_buf(),
        found,
    }
}

/// Reads a Hugging Face `config.json` of the GPT-2 family (a file, or a directory holding one).
pub fn load_config(path: impl AsRef<Path>) -> Result<Gpt2Config, CausalLmError> {
    let path = config_path(path.as_ref());
    let text = fs::read_to_string(&path).map_err(|e| CausalLmError::io(&path, e))?;
    let hf: HfConfig = serde_json::from_str(&text).map_err(|e| CausalLmError::Json {
        path: path.clone(),
        source: e,
    })?;
    match hf.model_type.as_deref() {
        Some("gpt2") | None => {}
        Some(other) => return Err(unsupported(&path, format!("model_type \"{other}\""))),
    }
    match hf.activation_function.as_deref() {
        None | Some("gelu_new") | Some("gelu_pytorch_tanh") => {}
        Some(other) => {
            return Err(unsupported(
                &path,
                format!("activation_function \"{other}\" (supported: gelu_new)"),
            ));
        }
    }
    let flags = [
        ("scale_attn_weights", hf.scale_attn_weights, true),
        (
            "scale_attn_by_inverse_layer_idx",
            hf.scale_attn_by_inverse_layer_idx,
            false,
        ),
        ("add_cross_attention", hf.add_cross_attention, false),
        ("tie_word_embeddings", hf.tie_word_embeddings, true),
    ];
    for (name, value, supported) in flags {
        if let Some(v) = value
            && v != supported
        {
            return Err(unsupported(&path, format!("{name} = {v}")));
        }
    }
    let eos_token_id = match hf.eos_token_id {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| v as u32),
        _ => None,
    };
    let config = Gpt2Config {
        n_inner: hf.n_inner,
        layer_norm_epsilon: hf.layer_norm_epsilon,
        initializer_range: hf.initializer_range,
        eos_token_id,
        ..Gpt2Config::new(
            hf.vocab_size,
            hf.n_positions,
            hf.n_embd,
            hf.n_layer,
            hf.n_head,
        )
    };
    config.validate()?;
    Ok(config)
}

fn config_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(CONFIG_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Loads a Hugging Face GPT-2 directory (`config.json` + `model.safetensors`) onto `device`.
pub fn load<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<Gpt2<B>, CausalLmError> {
    let dir = dir.as_ref();
    let config = load_config(dir)?;
    let mut model = config.init::<B>(device)?;
    load_weights(&mut model, dir.join(WEIGHTS_FILE))?;
    Ok(model)
}

/// One entry of a safetensors header.
#[derive(Debug, Deserialize)]
struct HeaderEntry {
    dtype: String,
}

/// Reads only the JSON header of a safetensors file: tensor names and dtypes.
fn read_header(path: &Path) -> Result<BTreeMap<String, HeaderEntry>, CausalLmError> {
    let bad = |message: String| CausalLmError::Checkpoint {
        path: path.to_path_buf(),
        source: message.into(),
    };
    let mut file = fs::File::open(path).map_err(|e| CausalLmError::io(path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let len = u64::from_le_bytes(len);
    let file_len = file
        .metadata()
        .map_err(|e| CausalLmError::io(path, e))?
        .len();
    if len > file_len.saturating_sub(8) || len > 100_000_000 {
        return Err(bad(format!(
            "not a safetensors file (header length {len} for a {file_len}-byte file)"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("truncated header ({e})")))?;
    let mut raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("malformed header: {e}")))?;
    raw.remove("__metadata__");
    raw.into_iter()
        .map(|(name, v)| {
            let entry: HeaderEntry = serde_json::from_value(v)
                .map_err(|e| bad(format!("malformed header entry `{name}`: {e}")))?;
            Ok((name, entry))
        })
        .collect()
}

/// Checkpoint names that carry no parameter of ours.
fn is_ignored(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
}

/// Hugging Face name → this crate's module path.
fn load_remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![
        (r"^transformer\.", ""),
        (r"^(.*ln_(?:1|2|f))\.weight$", "$1.gamma"),
        (r"^(.*ln_(?:1|2|f))\.bias$", "$1.beta"),
    ])
    .expect("static patterns compile")
}

/// This crate's module path → Hugging Face name (with `prefix`, `"transformer."` or `""`).
fn hf_name(path: &str, prefix: &str) -> String {
    let name = if let Some(stem) = path.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = path.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        path.to_string()
    };
    format!("{prefix}{name}")
}

/// Loads `model.safetensors` weights into an existing model of the matching configuration.
///
/// Errors name the first missing tensor, the first shape mismatch, or an unsupported dtype, in
/// the checkpoint's own naming.
pub fn load_weights<B: Backend>(
    model: &mut Gpt2<B>,
    path: impl AsRef<Path>,
) -> Result<(), CausalLmError> {
    let path = path.as_ref();
    let header = read_header(path)?;
    let prefix = if header.keys().any(|k| k.starts_with("transformer.")) {
        "transformer."
    } else {
        ""
    };
    let mut half = false;
    for (name, entry) in header.iter().filter(|(n, _)| !is_ignored(n)) {
        match entry.dtype.as_str() {
            "F32" => {}
            "F16" => half = true,
            other => {
                return Err(CausalLmError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    dtype: other.to_string(),
                });
            }
        }
    }
    let mut store = SafetensorsStore::from_file(path)
        .remap(load_remapper())
        .validate(false)
        .allow_partial(true);
    if half {
        store = store.with_from_adapter(HalfPrecisionAdapter::new());
    }
    let dtype = model.wte.weight.val().dtype();
    let result = model
        .load_from(&mut store)
        .map_err(|e| CausalLmError::Checkpoint {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
    if let Some(error) = result.errors.first() {
        return Err(match error {
            ApplyError::ShapeMismatch {
                path: p,
                expected,
                found,
            } => CausalLmError::TensorShape {
                path: path.to_path_buf(),
                name: hf_name(p, prefix),
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            other => CausalLmError::Checkpoint {
                path: path.to_path_buf(),
                source: other.to_string().into(),
            },
        });
    }
    if let Some((missing, _)) = result.missing.first() {
        return Err(CausalLmError::MissingTensor {
            path: path.to_path_buf(),
            name: hf_name(missing, prefix),
        });
    }
    *model = crate::dtype::cast_params(model.clone(), dtype);
    Ok(())
}

/// The `config.json` written next to saved weights: what `transformers` needs to rebuild the
/// model (`GPT2LMHeadModel`, tanh GELU, tied head).
pub fn config_json(config: &Gpt2Config) -> serde_json::Value {
    let eos = config.eos_token_id;
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "vocab_size": config.vocab_size,
        "n_positions": config.n_positions,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": config.n_inner,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "embd_pdrop": config.embd_pdrop,
        "attn_pdrop": config.attn_pdrop,
        "resid_pdrop": config.resid_pdrop,
        "initializer_range": config.initializer_range,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "tie_word_embeddings": true,
        "use_cache": true,
        "dtype": "float32",
    })
}

/// Saves `model` as a Hugging Face directory (`config.json` + `model.safetensors`, F32, keys
/// `transformer.*`), loadable by `GPT2LMHeadModel.from_pretrained(dir)`.
pub fn save<B: Backend>(model: &Gpt2<B>, dir: impl AsRef<Path>) -> Result<(), CausalLmError> {
    let dir = dir.as_ref();
    fs::create_dir_all(dir).map_err(|e| CausalLmError::io(dir, e))?;
    let config_path = dir.join(CONFIG_FILE);
    let text =
        serde_json::to_string_pretty(&config_json(&model.config)).expect("a JSON value serialises");
    write_atomic(&config_path, (text + "\n").as_bytes())?;
    save_weights(model, dir.join(WEIGHTS_FILE))
}

/// Writes the weights alone, in Hugging Face's naming, with the `format: pt` metadata
/// `transformers` checks.
pub fn save_weights<B: Backend>(
    model: &Gpt2<B>,
    path: impl AsRef<Path>,
) -> Result<(), CausalLmError> {
    let path = path.as_ref();
    let remapper = KeyRemapper::from_patterns(vec![
        (r"^(.*ln_(?:1|2|f))\.gamma$", "$1.weight"),
        (r"^(.*ln_(?:1|2|f))\.beta$", "$1.bias"),
        (r"^(.*)$", "transformer.$1"),
    ])
    .expect("static patterns compile");
    // A temporary sibling persisted over the file: an interrupted save never truncates a
    // good file.
    write_atomic_with(path, |tmp| {
        let mut store = SafetensorsStore::from_file(tmp)
            .remap(remapper)
            .metadata("format", "pt")
            .overwrite(true);
        model
            .save_into(&mut store)
            .map_err(|e| CausalLmError::Checkpoint {
                path: path.to_path_buf(),
                source: Box::new(e),
            })
    })
}
