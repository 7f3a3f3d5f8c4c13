//! Model invariants: KV-cached decoding equals the full forward, padded equals unpadded,
//! hidden states are Hugging Face's, dropout is off by default.

mod common;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use causal_lm::{Gpt2, Gpt2Config, PaddingSide};
use common::{ids, max_abs_diff, values};

const TOL: f32 = 1e-4;

/// A small model with large weights, so that any indexing or masking mistake shows.
fn model<B: Backend>(device: &B::Device) -> Gpt2<B> {
    let mut config = Gpt2Config::new(50, 32, 16, 2, 4);
    config.initializer_range = 0.5;
    config.init::<B>(device).unwrap()
}

/// Deterministic pseudo-random token rows.
fn rows(lengths: &[usize], seed: u64) -> Vec<Vec<u32>> {
    let mut s = seed;
    lengths
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % 50) as u32
                })
                .collect()
        })
        .collect()
}

/// Logits of one unpadded sequence, `[len, vocab]` flattened.
fn single<B: Backend>(m: &Gpt2<B>, row: &[u32], device: &B::Device) -> Vec<f32> {
    values(m.forward(ids::<B>(&[row.to_vec()], device)))
}

fn kv_cache_matches_full_forward<B: Backend>() {
    let device = Default::default();
    let m = model::<B>(&device);
    let r = rows(&[12, 12], 1);
    let tokens = ids::<B>(&r, &device);
    let full = m.forward(tokens.clone());
    let mut cache = m.new_cache();
    // Prefill 5 tokens, then a chunk of 3, then one token at a time.
    let mut parts = vec![
        m.forward_cached(tokens.clone().narrow(1, 0, 5), None, &mut cache)
            .logits,
    ];
    parts.push(
        m.forward_cached(tokens.clone().narrow(1, 5, 3), None, &mut cache)
            .logits,
    );
    for t in 8..12 {
        parts.push(
            m.forward_cached(tokens.clone().narrow(1, t, 1), None, &mut cache)
                .logits,
        );
    }
    assert_eq!(cache.len(), 12);
    let cached = Tensor::cat(parts, 1);
    let d = max_abs_diff(&values(full), &values(cached));
    assert!(d < TOL, "cached vs full: {d}");
}

fn padded_batch_matches_unpadded<B: Backend>() {
    let device = Default::default();
    let m = model::<B>(&device);
    let r = rows(&[9, 4, 6], 2);
    let tok = causal_lm::Tokenizer::from_json(&minimal_tokenizer_json()).unwrap();
    for side in [PaddingSide::Right, PaddingSide::Left] {
        let batch = tok.pad(r.clone(), side);
        let (t, mask) = batch.to_tensors::<B>(&device);
        let logits = values(m.forward_full(t, Some(mask), false).logits);
        let vocab = 50;
        for (i, row) in r.iter().enumerate() {
            let want = single(&m, row, &device);
            let offset = if side == PaddingSide::Left {
                batch.len - row.len()
            } else {
                0
            };
            let start = (i * batch.len + offset) * vocab;
            let got = &logits[start..start + row.len() * vocab];
            let d = max_abs_diff(got, &want);
            assert!(d < TOL, "{side:?} row {i}: {d}");
            assert!(
                logits.iter().all(|v| v.is_finite()),
                "padded positions must stay finite"
            );
        }
    }
}

fn left_padded_cached_decoding_matches_unpadded<B: Backend>() {
    let device = Default::default();
    let m = model::<B>(&device);
    let prompts = rows(&[7, 3], 3);
    let continuation = rows(&[4, 4], 4);
    let tok = causal_lm::Tokenizer::from_json(&minimal_tokenizer_json()).unwrap();
    let batch = tok.pad(prompts.clone(), PaddingSide::Left);
    let (t, mask) = batch.to_tensors::<B>(&device);
    let mut cache = m.new_cache();
    m.forward_cached(t, Some(mask), &mut cache);
    let mut steps = Vec::new();
    for s in 0..4 {
        let col: Vec<Vec<u32>> = continuation.iter().map(|c| vec![c[s]]).collect();
        steps.push(values(
            m.forward_cached(ids::<B>(&col, &device), None, &mut cache)
                .logits,
        ));
    }
    for (i, prompt) in prompts.iter().enumerate() {
        let mut full_row = prompt.clone();
        full_row.extend(&continuation[i]);
        let want = single(&m, &full_row, &device);
        for (s, step) in steps.iter().enumerate() {
            let pos = prompt.len() + s;
            let d = max_abs_diff(&step[i * 50..(i + 1) * 50], &want[pos * 50..(pos + 1) * 50]);
            assert!(d < TOL, "row {i} step {s}: {d}");
        }
    }
}

fn hidden_states_are_huggingface_shaped<B: Backend>() {
    let device = Default::default();
    let m = model::<B>(&device);
    let t = ids::<B>(&rows(&[6], 5), &device);
    let out = m.forward_full(t.clone(), None, true);
    assert_eq!(out.hidden_states.len(), m.config.n_layer + 1);
    for h in &out.hidden_states {
        assert_eq!(h.dims(), [1, 6, 16]);
    }
    // The first is the embedding sum; the last is after ln_f and feeds the tied head.
    let positions = Tensor::<B, 1, Int>::arange(0..6, &device).reshape([1, 6]);
    let emb = m.wte.forward(t.clone()) + m.wpe.forward(positions);
    assert!(max_abs_diff(&values(emb), &values(out.hidden_states[0].clone())) < 1e-6);
    let head = m.lm_head(out.hidden_states.last().unwrap().clone());
    assert!(max_abs_diff(&values(head), &values(out.logits.clone())) < 1e-5);
    assert!(m.forward_full(t, None, false).hidden_states.is_empty());
}

fn dropout_is_off_by_default<B: Backend>() {
    let device = Default::default();
    let m = model::<Autodiff<B>>(&device);
    let t = ids::<Autodiff<B>>(&rows(&[8], 6), &device);
    let a = values(m.forward(t.clone()));
    let b = values(m.forward(t));
    assert_eq!(a, b);
}

fn dropout_when_configured_is_active_in_training<B: Backend>() {
    let device = Default::default();
    let mut config = Gpt2Config::new(50, 32, 16, 2, 4).with_dropout(0.5);
    config.initializer_range = 0.5;
    let m = config.init::<Autodiff<B>>(&device).unwrap();
    let t = ids::<Autodiff<B>>(&rows(&[8], 7), &device);
    let a = values(m.forward(t.clone()));
    let b = values(m.forward(t));
    assert!(
        max_abs_diff(&a, &b) > 1e-3,
        "dropout must perturb training forwards"
    );
}

fn every_parameter_gets_a_gradient<B: Backend>() {
    use burn::module::{Module, ModuleVisitor, Param};
    let device = Default::default();
    let m = model::<Autodiff<B>>(&device);
    let t = ids::<Autodiff<B>>(&rows(&[8], 8), &device);
    let loss = m.forward(t).powf_scalar(2.0).mean();
    let grads = loss.backward();
    struct Check<'a, B: burn::tensor::backend::AutodiffBackend> {
        grads: &'a B::Gradients,
        seen: usize,
    }
    impl<B: burn::tensor::backend::AutodiffBackend> ModuleVisitor<B> for Check<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let g = param
                .val()
                .grad(self.grads)
                .expect("every parameter has a gradient");
            let norm = common::values(g.abs().sum())[0];
            assert!(norm > 0.0, "zero gradient");
            self.seen += 1;
        }
    }
    let mut check = Check::<Autodiff<B>> {
        grads: &grads,
        seen: 0,
    };
    m.visit(&mut check);
    // wte, wpe, ln_f (2) and 12 tensors per block.
    assert_eq!(check.seen, 4 + 12 * 2);
}

/// A valid `tokenizer.json` (only its padding id matters here).
fn minimal_tokenizer_json() -> String {
    let trainer = causal_lm::TokenizerTrainer::new(300);
    trainer
        .train(["a small public text"].iter())
        .unwrap()
        .to_json()
        .unwrap()
}

/// Long sequences take the backends' tiled (flash) attention path: it must agree with the
/// short-sequence path, with and without a padding mask.
fn long_sequences_agree_across_attention_paths<B: Backend>() {
    let device = Default::default();
    let mut config = Gpt2Config::new(50, 640, 16, 1, 2);
    config.initializer_range = 0.5;
    let m = config.init::<B>(&device).unwrap();
    let r = rows(&[600], 9);
    let full = values(m.forward(ids::<B>(&r, &device)));
    // The same logits from a cached prefix of 300 and three 100-token chunks (each attention
    // call small enough for the direct path).
    let tokens = ids::<B>(&r, &device);
    let mut cache = m.new_cache();
    let mut parts = vec![
        m.forward_cached(tokens.clone().narrow(1, 0, 300), None, &mut cache)
            .logits,
    ];
    for start in [300, 400, 500] {
        parts.push(
            m.forward_cached(tokens.clone().narrow(1, start, 100), None, &mut cache)
                .logits,
        );
    }
    let chunked = values(Tensor::cat(parts, 1));
    let d = max_abs_diff(&full, &chunked);
    assert!(d < 1e-4, "flash vs direct attention: {d}");
    // A right-padded long batch (explicit mask, tiled path) equals the unpadded rows.
    let short = rows(&[560], 10);
    let tok = causal_lm::Tokenizer::from_json(&minimal_tokenizer_json()).unwrap();
    let batch = tok.pad(vec![r[0].clone(), short[0].clone()], PaddingSide::Left);
    let (t, mask) = batch.to_tensors::<B>(&device);
    let padded = values(m.forward_full(t, Some(mask), false).logits);
    let want = single(&m, &short[0], &device);
    let start = (600 + 40) * 50;
    let d = max_abs_diff(&padded[start..start + 560 * 50], &want);
    assert!(d < 1e-4, "padded long row: {d}");
}

backend_tests!(
    long_sequences_agree_across_attention_paths,
    kv_cache_matches_full_forward,
    padded_batch_matches_unpadded,
    left_padded_cached_decoding_matches_unpadded,
    hidden_states_are_huggingface_shaped,
    dropout_is_off_by_default,
    dropout_when_configured_is_active_in_training,
    every_parameter_gets_a_gradient,
);

#[test]
fn invalid_configs_are_rejected_with_the_field_named() {
    let device = Default::default();
    let mut c = Gpt2Config::new(50, 32, 16, 2, 3);
    let e = c
        .init::<burn::backend::NdArray>(&device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("n_head"), "{e}");
    c.n_head = 4;
    c.attn_pdrop = 1.0;
    let e = c
        .init::<burn::backend::NdArray>(&device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("attn_pdrop"), "{e}");
}
