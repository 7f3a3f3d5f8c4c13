//! A merged LoRA model loads in Hugging Face `transformers` and computes the adapted
//! function there: `tests/fixtures/lora_merged.json` holds the logits `transformers` gets
//! from `GPT2LMHeadModel.from_pretrained` on the checkpoint that [`write_merged_checkpoint`]
//! writes (`scripts/peers/lora_merge_fixture.py`; no weight missing or unexpected), and the
//! tests here rebuild the same adapted model ([`adapted`]) and compare.
//!
//! Regenerate (from the repository root; see `scripts/peers/README.md`):
//!
//! ```text
//! LORA_MERGED_DIR=/tmp/lora-merged cargo test --release -p causal-lm \
//!     --test lora_transformers -- --ignored write_merged_checkpoint
//! /path/to/venv/bin/python scripts/peers/lora_merge_fixture.py /tmp/lora-merged
//! ```

mod common;

use burn::backend::NdArray;
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use causal_lm::{LoraConfig, LoraGpt2, LoraProjection, hf};
use common::{fixture, ids, max_abs_diff, values};
use serde_json::Value;

/// Largest absolute logit difference accepted between our f32 forward pass and
/// `transformers`' float64 one.
const TOL: f32 = 1e-4;

/// The adapters' settings (all four projections of both blocks).
fn lora_config() -> LoraConfig {
    LoraConfig::new(4, 8.0).with_seed(3)
}

/// Entry `k` (row-major) of `B` of projection `p` in block `layer`: uniform in [-0.1, 0.1]
/// from an integer hash (SplitMix64's finaliser), the same on every backend and platform.
fn b_value(layer: usize, p: usize, k: usize) -> f32 {
    let mut z =
        ((layer as u64) << 40 | (p as u64) << 32 | k as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
}

/// The model the fixture is made from: the tiny GPT-2 fixture (`tests/fixtures/tiny-gpt2`)
/// adapted with [`lora_config`] (`A` from its seed) and every `B` set to [`b_value`]'s
/// non-zero values (a fresh `B` is zero and would make the merge trivial).
fn adapted<B: Backend>(device: &B::Device) -> LoraGpt2<B> {
    let base = hf::load::<B>(fixture("tiny-gpt2"), device).unwrap();
    let mut model = lora_config().init(base, device).unwrap();
    for (layer, block) in model.adapters.iter_mut().enumerate() {
        for (p, projection) in LoraProjection::ALL.into_iter().enumerate() {
            let adapter = match projection {
                LoraProjection::AttnQkv => &mut block.c_attn,
                LoraProjection::AttnOut => &mut block.attn_c_proj,
                LoraProjection::MlpIn => &mut block.c_fc,
                LoraProjection::MlpOut => &mut block.mlp_c_proj,
            };
            let adapter = adapter.as_mut().expect("every projection is adapted");
            let [rows, cols] = adapter.b.weight.dims();
            let data: Vec<f32> = (0..rows * cols).map(|k| b_value(layer, p, k)).collect();
            let b = Tensor::from_data(TensorData::new(data, [rows, cols]), device);
            adapter.b.weight = Param::initialized(adapter.b.weight.id, b);
        }
    }
    model
}

/// Writes the merged model with `hf::save` to `$LORA_MERGED_DIR` (the input of
/// `scripts/peers/lora_merge_fixture.py`); does nothing without that variable.
#[test]
#[ignore = "writes the checkpoint the transformers fixture is made from"]
fn write_merged_checkpoint() {
    let Ok(dir) = std::env::var("LORA_MERGED_DIR") else {
        eprintln!("set LORA_MERGED_DIR to the directory to write");
        return;
    };
    let device = Default::default();
    hf::save(&adapted::<NdArray>(&device).merge(), &dir).unwrap();
    println!("wrote {dir}");
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("lora_merged.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn merged_checkpoint_matches_transformers<B: Backend>() {
    let device = Default::default();
    let r = reference();
    let config = lora_config();
    assert_eq!(r["lora"]["rank"].as_u64(), Some(config.rank as u64));
    assert_eq!(r["lora"]["alpha"].as_f64(), Some(config.alpha));
    assert_eq!(r["lora"]["seed"].as_u64(), Some(config.seed));
    let rows: Vec<Vec<u32>> = serde_json::from_value(r["input_ids"].clone()).unwrap();
    let expected: Vec<f32> = serde_json::from_value(r["logits"].clone()).unwrap();
    let tokens = || ids::<B>(&rows, &device);

    let adapted = adapted::<B>(&device);
    // the checkpoint itself, as transformers read it: merged, saved, loaded back
    let dir = tempfile::tempdir().unwrap();
    hf::save(&adapted.merge(), dir.path()).unwrap();
    let loaded = hf::load::<B>(dir.path(), &device).unwrap();
    let d_merged = max_abs_diff(&values(loaded.forward(tokens())), &expected);
    // the adapted model before merging: transformers computes the adapters' function
    let d_adapted = max_abs_diff(&values(adapted.forward(tokens())), &expected);
    // the base alone is far off, so the adapters (and the merge) are what is checked
    let d_base = max_abs_diff(&values(adapted.base.forward(tokens())), &expected);
    eprintln!(
        "max |logit diff| vs transformers: merged {d_merged:e}, adapted {d_adapted:e}, base {d_base:e}"
    );
    assert!(d_merged <= TOL, "merged checkpoint differs by {d_merged}");
    assert!(d_adapted <= TOL, "adapted model differs by {d_adapted}");
    assert!(
        d_base > 1000.0 * TOL,
        "the adapters barely change the logits ({d_base})"
    );
}

backend_tests!(merged_checkpoint_matches_transformers);
