//! Native checkpoints: exact round trip, format detection, clear errors.

mod common;

use burn::tensor::backend::Backend;
use causal_lm::checkpoint::{self, CheckpointFormat};
use causal_lm::{CausalLmError, Gpt2Config, hf};
use common::{fixture, ids, values};

fn native_round_trip_is_exact<B: Backend>() {
    let device = Default::default();
    let mut config = Gpt2Config::new(60, 16, 8, 2, 2);
    config.eos_token_id = Some(3);
    let model = config.init::<B>(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(&model, dir.path()).unwrap();
    assert_eq!(
        checkpoint::detect(dir.path()),
        Some(CheckpointFormat::Native)
    );
    let loaded = checkpoint::load_any::<B>(dir.path(), &device).unwrap();
    assert_eq!(loaded.config, config);
    let x = ids::<B>(&[vec![1, 5, 7, 59]], &device);
    assert_eq!(values(model.forward(x.clone())), values(loaded.forward(x)));
    // Saving again over an existing checkpoint replaces it.
    checkpoint::save(&loaded, dir.path()).unwrap();
    assert!(!dir.path().join("model.bpk.partial").exists());
}

fn huggingface_directories_are_detected<B: Backend>() {
    let device = Default::default();
    assert_eq!(
        checkpoint::detect(fixture("tiny-gpt2")),
        Some(CheckpointFormat::HuggingFace)
    );
    let a = checkpoint::load_any::<B>(fixture("tiny-gpt2"), &device).unwrap();
    let b = hf::load::<B>(fixture("tiny-gpt2"), &device).unwrap();
    let x = ids::<B>(&[vec![1, 2, 3]], &device);
    assert_eq!(values(a.forward(x.clone())), values(b.forward(x)));
}

backend_tests!(
    native_round_trip_is_exact,
    huggingface_directories_are_detected
);

#[test]
fn non_checkpoints_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let e = checkpoint::load_any::<burn::backend::NdArray>(dir.path(), &Default::default())
        .unwrap_err();
    assert!(matches!(e, CausalLmError::Checkpoint { .. }));
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    std::fs::write(dir.path().join("model.json"), "{\"vocab_size\": 3}").unwrap();
    std::fs::write(dir.path().join("model.bpk"), "x").unwrap();
    let e = checkpoint::load_any::<burn::backend::NdArray>(dir.path(), &Default::default())
        .unwrap_err();
    assert!(matches!(e, CausalLmError::Json { .. }), "{e}");
}
