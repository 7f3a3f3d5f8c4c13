//! The tokenizer against Hugging Face `tokenizers` (Python), and batch encoding.

mod common;

use causal_lm::{CausalLmError, PaddingSide, Tokenizer, TokenizerTrainer};
use common::{fixture, repo_file};
use serde_json::Value;

fn parity() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny-gpt2/parity.json")).unwrap())
        .unwrap()
}

#[test]
fn encodes_and_decodes_like_huggingface() {
    let tok = Tokenizer::from_file(fixture("tiny-gpt2/tokenizer.json")).unwrap();
    let p = parity();
    assert_eq!(tok.vocab_size() as u64, p["vocab_size"].as_u64().unwrap());
    assert_eq!(tok.eos_id() as u64, p["eos_id"].as_u64().unwrap());
    let cases = p["tokenizer"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tok.encode(text).unwrap();
        assert_eq!(ids, want, "{text:?}");
        assert_eq!(
            tok.decode(&ids).unwrap(),
            case["decoded"].as_str().unwrap(),
            "{text:?}"
        );
    }
}

#[test]
fn training_reproduces_the_huggingface_trained_vocabulary() {
    // Same corpus and settings as scripts/peers/causal_lm_fixtures.py.
    let text = std::fs::read_to_string(repo_file("LICENSE-APACHE")).unwrap();
    let lines = text.split('\n').filter(|l| !l.trim().is_empty());
    let ours = TokenizerTrainer::new(384).train(lines).unwrap();
    let ours: Value = serde_json::from_str(&ours.to_json().unwrap()).unwrap();
    let theirs: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-gpt2/tokenizer.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ours["model"]["vocab"], theirs["model"]["vocab"]);
    assert_eq!(ours["model"]["merges"], theirs["model"]["merges"]);
    assert_eq!(ours["added_tokens"], theirs["added_tokens"]);
    assert_eq!(ours["pre_tokenizer"], theirs["pre_tokenizer"]);
}

#[test]
fn batch_encoding_truncates_pads_and_masks() {
    let tok = Tokenizer::from_file(fixture("tiny-gpt2/tokenizer.json")).unwrap();
    let texts = ["Apache License, Version 2.0", "the", ""];
    let singles: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    for side in [PaddingSide::Right, PaddingSide::Left] {
        let b = tok.encode_batch(&texts, 4, side, false).unwrap();
        assert_eq!(b.batch, 3);
        assert_eq!(b.len, 4);
        for (i, s) in singles.iter().enumerate() {
            let want: Vec<u32> = s.iter().copied().take(4).collect();
            assert_eq!(b.row(i), want);
            assert_eq!(b.lengths[i], want.len());
        }
        let first_row_mask = &b.mask[4..8];
        let n = singles[1].len().min(4);
        let expected: Vec<u32> = match side {
            PaddingSide::Right => (0..4).map(|j| u32::from(j < n)).collect(),
            PaddingSide::Left => (0..4).map(|j| u32::from(j >= 4 - n)).collect(),
        };
        assert_eq!(first_row_mask, expected.as_slice());
    }
    let b = tok
        .encode_batch(&texts, 4, PaddingSide::Right, true)
        .unwrap();
    assert_eq!(*b.row(0).last().unwrap(), tok.eos_id());
    assert_eq!(b.row(2), vec![tok.eos_id()]);
    assert!(matches!(
        tok.encode_batch(&texts, 0, PaddingSide::Right, false),
        Err(CausalLmError::InvalidParameter {
            field: "max_len",
            ..
        })
    ));
}

#[test]
fn bad_inputs_get_clear_errors() {
    let e = Tokenizer::from_file("/nonexistent/tokenizer.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/tokenizer.json"), "{e}");
    let e = TokenizerTrainer::new(100)
        .train(["x"].iter())
        .unwrap_err()
        .to_string();
    assert!(e.contains("vocab_size"), "{e}");
    let trainer = TokenizerTrainer {
        special_tokens: vec![],
        ..TokenizerTrainer::new(300)
    };
    assert!(trainer.train(["x"].iter()).is_err());
    assert!(Tokenizer::from_json("{}").is_err());
}

#[test]
fn a_padding_token_is_used_when_the_vocabulary_has_one() {
    let text = std::fs::read_to_string(repo_file("LICENSE-MIT")).unwrap();
    let trainer = TokenizerTrainer {
        special_tokens: vec!["<|endoftext|>".into(), causal_lm::PADDING.into()],
        ..TokenizerTrainer::new(300)
    };
    let tok = trainer.train(text.lines()).unwrap();
    assert_ne!(tok.pad_id(), tok.eos_id());
    let b = tok
        .encode_batch_to_block(
            &["Permission is hereby granted", "x"],
            8,
            PaddingSide::Right,
            false,
        )
        .unwrap();
    assert_eq!(b.len, 8, "padded to the block size, not the longest row");
    assert_eq!(b.ids[15], tok.pad_id());
    assert_eq!(b.mask[15], 0);
    // A GPT-2-style vocabulary without a padding token pads with end-of-text.
    let gpt2_like = Tokenizer::from_file(fixture("tiny-gpt2/tokenizer.json")).unwrap();
    assert_eq!(gpt2_like.pad_id(), gpt2_like.eos_id());
}
