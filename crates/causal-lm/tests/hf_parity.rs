//! Parity with Hugging Face `transformers` on a small random GPT-2 made by
//! `scripts/peers/causal_lm_fixtures.py` (logits, hidden states, perplexity), the round trip
//! save -> load, and the errors a bad checkpoint gets.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorData};
use causal_lm::{CausalLmError, Tokenizer, hf, perplexity, text_nll};
use common::{fixture, ids, max_abs_diff, values};
use serde_json::Value;

fn parity() -> Value {
    let text = fs::read_to_string(fixture("tiny-gpt2/parity.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn id_rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn logits_and_hidden_states_match_transformers<B: Backend>() {
    let device = Default::default();
    let model = hf::load::<B>(fixture("tiny-gpt2"), &device).unwrap();
    let p = parity();
    let rows = id_rows(&p["forward"]["input_ids"]);
    let out = model.forward_full(ids::<B>(&rows, &device), None, true);
    let d = max_abs_diff(&values(out.logits), &floats(&p["forward"]["logits"]));
    assert!(d < 1e-4, "logits differ from transformers by {d}");
    let hidden = p["forward"]["hidden_states"].as_array().unwrap();
    assert_eq!(out.hidden_states.len(), hidden.len());
    for (i, (ours, theirs)) in out.hidden_states.into_iter().zip(hidden).enumerate() {
        let d = max_abs_diff(&values(ours), &floats(theirs));
        assert!(d < 1e-4, "hidden state {i} differs by {d}");
    }
}

fn perplexity_matches_transformers<B: Backend>() {
    let device = Default::default();
    let model = hf::load::<B>(fixture("tiny-gpt2"), &device).unwrap();
    let tok = Tokenizer::from_file(fixture("tiny-gpt2/tokenizer.json")).unwrap();
    let p = &parity()["perplexity"];
    let texts: Vec<String> = p["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let block = p["block_size"].as_u64().unwrap() as usize;
    for batch_size in [1, 4, 64] {
        let r = perplexity(&model, &tok, &texts, block, batch_size, &device).unwrap();
        assert_eq!(r.stream_tokens as u64, p["stream_tokens"].as_u64().unwrap());
        assert_eq!(r.tokens as u64, p["predicted_tokens"].as_u64().unwrap());
        let want = p["perplexity"].as_f64().unwrap();
        assert!(
            (r.perplexity - want).abs() / want < 1e-5,
            "perplexity {} vs transformers {want}",
            r.perplexity
        );
    }
    let max_tokens = p["per_text_max_tokens"].as_u64().unwrap() as usize;
    let ours = text_nll(&model, &tok, &texts, max_tokens, 5, &device).unwrap();
    for (i, (o, t)) in ours
        .iter()
        .zip(p["per_text"].as_array().unwrap())
        .enumerate()
    {
        match (o, t.as_f64()) {
            (Some(o), Some(t)) => assert!((o - t).abs() < 1e-4, "text {i}: {o} vs {t}"),
            (None, None) => {}
            other => panic!("text {i}: {other:?}"),
        }
    }
}

/// Tensor names and dtypes in a safetensors header.
fn header(path: &Path) -> BTreeMap<String, Value> {
    let bytes = fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

fn save_then_load_is_exact_and_keeps_the_huggingface_layout<B: Backend>() {
    let device = Default::default();
    let model = hf::load::<B>(fixture("tiny-gpt2"), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    hf::save(&model, dir.path()).unwrap();
    let original = header(&fixture("tiny-gpt2/model.safetensors"));
    let saved = header(&dir.path().join("model.safetensors"));
    let names = |h: &BTreeMap<String, Value>| -> Vec<(String, Value)> {
        h.iter()
            .filter(|(k, _)| *k != "__metadata__")
            .map(|(k, v)| (k.clone(), v["shape"].clone()))
            .collect()
    };
    assert_eq!(
        names(&saved),
        names(&original),
        "same tensor names and shapes as transformers"
    );
    assert_eq!(
        saved["__metadata__"]["format"], "pt",
        "transformers checks this"
    );
    let reloaded = hf::load::<B>(dir.path(), &device).unwrap();
    let x = ids::<B>(&id_rows(&parity()["forward"]["input_ids"]), &device);
    assert_eq!(
        values(model.forward(x.clone())),
        values(reloaded.forward(x))
    );
    let config: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "gpt2");
    assert_eq!(config["eos_token_id"], 0);
}

backend_tests!(
    logits_and_hidden_states_match_transformers,
    perplexity_matches_transformers,
    save_then_load_is_exact_and_keeps_the_huggingface_layout,
);

/// Copies the fixture into a temporary directory, rewriting the safetensors file through `edit`
/// (name -> Some((dtype, shape, f32 values)) to keep, None to drop).
fn edited_fixture(
    edit: impl Fn(&str, Vec<usize>, Vec<f32>) -> Option<(DType, Vec<usize>, Vec<f32>)>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        fs::copy(fixture(&format!("tiny-gpt2/{f}")), dir.path().join(f)).unwrap();
    }
    let bytes = fs::read(fixture("tiny-gpt2/model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let head: BTreeMap<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out_head = serde_json::Map::new();
    let mut out_data = Vec::new();
    for (name, entry) in &head {
        if name == "__metadata__" {
            out_head.insert(name.clone(), entry.clone());
            continue;
        }
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let off = entry["data_offsets"].as_array().unwrap();
        let (a, b) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        let vals: Vec<f32> = data[a..b]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let Some((dtype, shape, vals)) = edit(name, shape, vals) else {
            continue;
        };
        let td = TensorData::new(vals, shape.clone()).convert_dtype(dtype);
        let raw = td.as_bytes();
        let start = out_data.len();
        out_data.extend_from_slice(raw);
        let tag = match dtype {
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            _ => "F32",
        };
        out_head.insert(
            name.clone(),
            serde_json::json!({"dtype": tag, "shape": shape, "data_offsets": [start, out_data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&Value::Object(out_head)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend(h);
    file.extend(out_data);
    fs::write(dir.path().join("model.safetensors"), file).unwrap();
    dir
}

type Nd = burn::backend::NdArray;

#[test]
fn a_missing_tensor_is_named() {
    let dir = edited_fixture(|name, s, v| {
        (name != "transformer.h.1.mlp.c_fc.weight").then_some((DType::F32, s, v))
    });
    let e = hf::load::<Nd>(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(e, CausalLmError::MissingTensor { .. }), "{e}");
    assert!(
        e.to_string().contains("transformer.h.1.mlp.c_fc.weight"),
        "{e}"
    );
}

#[test]
fn a_wrong_shape_is_named() {
    let dir = edited_fixture(|name, s, v| {
        if name == "transformer.h.0.attn.c_proj.bias" {
            Some((DType::F32, vec![16], v[..16].to_vec()))
        } else {
            Some((DType::F32, s, v))
        }
    });
    let e = hf::load::<Nd>(dir.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("transformer.h.0.attn.c_proj.bias") && e.contains("[16]"),
        "{e}"
    );
}

#[test]
fn a_config_that_disagrees_with_the_weights_is_named() {
    let dir = edited_fixture(|_, s, v| Some((DType::F32, s, v)));
    let path = dir.path().join("config.json");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("\"n_positions\": 64", "\"n_positions\": 32");
    fs::write(&path, text).unwrap();
    let e = hf::load::<Nd>(dir.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("transformer.wpe.weight"), "{e}");
}

#[test]
fn unsupported_architectures_and_files_are_refused() {
    let dir = edited_fixture(|_, s, v| Some((DType::F32, s, v)));
    let path = dir.path().join("config.json");
    let original = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        original.replace("\"model_type\": \"gpt2\"", "\"model_type\": \"llama\""),
    )
    .unwrap();
    let e = hf::load::<Nd>(dir.path(), &Default::default()).unwrap_err();
    assert!(
        matches!(e, CausalLmError::UnsupportedArchitecture { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("llama"));
    fs::write(&path, original.replace("\"gelu_new\"", "\"relu\"")).unwrap();
    let e = hf::load::<Nd>(dir.path(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("activation_function") && e.contains("relu"),
        "{e}"
    );
    fs::write(&path, "{ not json").unwrap();
    let e = hf::load::<Nd>(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(e, CausalLmError::Json { .. }), "{e}");
    fs::write(&path, original).unwrap();
    fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let e = hf::load::<Nd>(dir.path(), &Default::default()).unwrap_err();
    assert!(matches!(e, CausalLmError::Checkpoint { .. }), "{e}");
    let e = hf::load::<Nd>(dir.path().join("nowhere"), &Default::default()).unwrap_err();
    assert!(matches!(e, CausalLmError::Io { .. }), "{e}");
}

#[test]
fn half_precision_checkpoints_load_as_f32_and_bf16_is_named() {
    let device = Default::default();
    let dir = edited_fixture(|_, s, v| Some((DType::F16, s, v)));
    let model = hf::load::<Nd>(dir.path(), &device).unwrap();
    let reference = hf::load::<Nd>(fixture("tiny-gpt2"), &device).unwrap();
    let x = ids::<Nd>(&id_rows(&parity()["forward"]["input_ids"]), &device);
    let (a, b) = (
        values(model.forward(x.clone())),
        values(reference.forward(x)),
    );
    let d = max_abs_diff(&a, &b);
    assert!(
        d > 0.0 && d < 0.05,
        "f16 weights give nearly the same logits: {d}"
    );
    let dir = edited_fixture(|name, s, v| {
        Some((
            if name.ends_with("wte.weight") {
                DType::BF16
            } else {
                DType::F32
            },
            s,
            v,
        ))
    });
    let e = hf::load::<Nd>(dir.path(), &device).unwrap_err().to_string();
    assert!(
        e.contains("transformer.wte.weight") && e.contains("BF16"),
        "{e}"
    );
}
