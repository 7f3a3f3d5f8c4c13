//! Generation on the tiny GPT-2 fixture: batched + cached + left-padded greedy decoding equals
//! a naive one-prompt, uncached loop; sampling is seeded, reproducible and independent of the
//! batch; the processors hold over whole generations.

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, hf};
use synth_gen::{GenerationConfig, SpecialTokens, SynthGenError, generate};

type B = Flex;

fn model() -> Gpt2<B> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../causal-lm/tests/fixtures/tiny-gpt2");
    hf::load::<B>(dir, &Default::default()).unwrap()
}

const SPECIAL: SpecialTokens = SpecialTokens { eos: 0, pad: 0 };

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![17, 5],
        vec![101, 33, 7, 250, 9],
        vec![3, 3, 90, 12, 45, 300, 8, 61, 2],
    ]
}

/// Greedy decoding of one prompt, recomputing the whole sequence at every step.
fn naive_greedy(model: &Gpt2<B>, prompt: &[u32], max_new: usize) -> Vec<u32> {
    let mut tokens: Vec<u32> = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..max_new {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let len = ids.len();
        let x = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, len]), &Default::default());
        let logits = model
            .forward(x)
            .narrow(1, len - 1, 1)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let next = synth_gen::processors::argmax(&logits);
        if next == SPECIAL.eos {
            break;
        }
        out.push(next);
        tokens.push(next);
    }
    out
}

#[test]
fn batched_cached_greedy_equals_the_naive_loop() {
    let model = model();
    let got = generate(
        &model,
        &prompts(),
        SPECIAL,
        &GenerationConfig::greedy(20),
        0,
        0,
        &Default::default(),
    )
    .unwrap();
    for (p, g) in prompts().iter().zip(&got) {
        assert_eq!(g, &naive_greedy(&model, p, 20), "prompt {p:?}");
    }
}

#[test]
fn uncached_decoding_gives_the_same_tokens() {
    let model = model();
    let device = Default::default();
    let uncached = GenerationConfig {
        use_cache: false,
        ..GenerationConfig::greedy(20)
    };
    let got = generate(&model, &prompts(), SPECIAL, &uncached, 0, 0, &device).unwrap();
    for (p, g) in prompts().iter().zip(&got) {
        assert_eq!(g, &naive_greedy(&model, p, 20), "prompt {p:?}");
    }
    // sampling, rows finishing at different steps (end-of-text allowed after 2 tokens)
    let sampled = GenerationConfig {
        max_new_tokens: 24,
        min_new_tokens: 2,
        top_k: 0,
        top_p: 1.0,
        temperature: 1.5,
        ..Default::default()
    };
    let many: Vec<Vec<u32>> = (0..10).map(|i| vec![1 + i as u32; 1 + i % 4]).collect();
    let cached = generate(&model, &many, SPECIAL, &sampled, 5, 0, &device).unwrap();
    let plain = GenerationConfig {
        use_cache: false,
        ..sampled
    };
    let recomputed = generate(&model, &many, SPECIAL, &plain, 5, 0, &device).unwrap();
    assert_eq!(cached, recomputed);
    let lengths: std::collections::HashSet<usize> = cached.iter().map(Vec::len).collect();
    assert!(
        lengths.len() > 1,
        "rows should finish at different steps: {lengths:?}"
    );
}

#[test]
fn sampling_is_seeded_and_independent_of_the_batch() {
    let model = model();
    let config = GenerationConfig {
        max_new_tokens: 24,
        ..Default::default()
    };
    let device = Default::default();
    let all = generate(&model, &prompts(), SPECIAL, &config, 7, 0, &device).unwrap();
    let again = generate(&model, &prompts(), SPECIAL, &config, 7, 0, &device).unwrap();
    assert_eq!(all, again, "same seed, same samples");
    // sample 1 alone, at its index: the same tokens
    let alone = generate(&model, &prompts()[1..2], SPECIAL, &config, 7, 1, &device).unwrap();
    assert_eq!(alone[0], all[1]);
    let other = generate(&model, &prompts(), SPECIAL, &config, 8, 0, &device).unwrap();
    assert_ne!(all, other, "another seed, other samples");
}

#[test]
fn generations_respect_lengths_and_n_grams() {
    let model = model();
    let config = GenerationConfig {
        max_new_tokens: 30,
        min_new_tokens: 5,
        no_repeat_ngram_size: 2,
        top_k: 0,
        top_p: 1.0,
        ..Default::default()
    };
    let many: Vec<Vec<u32>> = (0..12)
        .map(|i| vec![(i * 31 % 384) as u32, 1 + i as u32])
        .collect();
    let out = generate(&model, &many, SPECIAL, &config, 3, 0, &Default::default()).unwrap();
    for (p, o) in many.iter().zip(&out) {
        assert!(o.len() >= 5 && o.len() <= 30, "{} tokens", o.len());
        assert!(!o.contains(&SPECIAL.eos));
        let all: Vec<u32> = p.iter().chain(o).copied().collect();
        let mut seen = std::collections::HashSet::new();
        for w in all.windows(2) {
            assert!(
                seen.insert((w[0], w[1])),
                "bigram {w:?} repeated in {all:?}"
            );
        }
    }
}

#[test]
fn bad_requests_name_the_field() {
    let model = model();
    let device = Default::default();
    let too_long = GenerationConfig::greedy(60);
    let e = generate(&model, &prompts(), SPECIAL, &too_long, 0, 0, &device).unwrap_err();
    assert!(
        matches!(
            &e,
            SynthGenError::InvalidParameter {
                field: "max_new_tokens",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("64 positions"), "{e}");
    let e = generate(
        &model,
        &[vec![]],
        SPECIAL,
        &GenerationConfig::greedy(4),
        0,
        0,
        &device,
    )
    .unwrap_err();
    assert!(e.to_string().contains("prompt"), "{e}");
    let bad = GenerationConfig {
        top_p: 0.0,
        ..Default::default()
    };
    let e = generate(&model, &prompts(), SPECIAL, &bad, 0, 0, &device).unwrap_err();
    assert!(e.to_string().contains("top_p"), "{e}");
    assert!(
        generate(
            &model,
            &[],
            SPECIAL,
            &GenerationConfig::default(),
            0,
            0,
            &device
        )
        .unwrap()
        .is_empty()
    );
}
