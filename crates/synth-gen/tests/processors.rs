//! Each logit processor on its own.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use synth_gen::GenerationConfig;
use synth_gen::processors::{
    argmax, next_token, no_repeat_ngram, repetition_penalty, sample, top_k, top_p,
};

#[test]
fn top_k_keeps_the_k_largest() {
    let mut l = vec![0.1, 3.0, -1.0, 2.0, 2.5];
    top_k(&mut l, 2);
    assert_eq!(l.iter().filter(|x| x.is_finite()).count(), 2);
    assert!(l[1].is_finite() && l[4].is_finite());
}

#[test]
fn top_p_keeps_the_smallest_set_reaching_p() {
    // probabilities ∝ e^x: 0.6, 0.3, 0.1 (approximately)
    let base = [0.6f64.ln() as f32, 0.3f64.ln() as f32, 0.1f64.ln() as f32];
    let mut l = base.to_vec();
    top_p(&mut l, 0.5);
    assert_eq!(l.iter().filter(|x| x.is_finite()).count(), 1);
    let mut l = base.to_vec();
    top_p(&mut l, 0.85);
    assert_eq!(l.iter().filter(|x| x.is_finite()).count(), 2);
    let mut l = base.to_vec();
    top_p(&mut l, 1.0);
    assert_eq!(l.iter().filter(|x| x.is_finite()).count(), 3);
}

#[test]
fn repetition_penalty_follows_hugging_face() {
    let mut l = vec![2.0, -2.0, 1.0];
    repetition_penalty(&mut l, &[0, 1, 1], 2.0);
    assert_eq!(l, vec![1.0, -4.0, 1.0]);
}

#[test]
fn no_repeat_ngram_bans_completions_of_seen_ngrams() {
    let mut l = vec![0.0; 6];
    // context ... 3 4 ... 3 : the bigram (3, 4) exists, so 4 is banned after 3
    no_repeat_ngram(&mut l, &[3, 4, 5, 3], 2);
    assert_eq!(l[4], f32::NEG_INFINITY);
    assert_eq!(l.iter().filter(|x| x.is_finite()).count(), 5);
    let mut l = vec![0.0; 6];
    no_repeat_ngram(&mut l, &[1, 2, 3, 1, 2], 3);
    assert_eq!(l[3], f32::NEG_INFINITY);
}

#[test]
fn sampling_follows_the_distribution() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let l = [0.0f32, (3.0f64).ln() as f32, f32::NEG_INFINITY];
    let n = 40_000;
    let ones = (0..n).filter(|_| sample(&l, &mut rng) == 1).count() as f64 / n as f64;
    // p = 0.75, sd = sqrt(0.75·0.25/n) ≈ 0.0022: 6 sd
    assert!((ones - 0.75).abs() < 0.013, "{ones}");
    assert_eq!(argmax(&[1.0, 5.0, 5.0, -2.0]), 1);
}

/// The dense chain `next_token` must agree with: every processor on the whole vocabulary.
fn dense_next_token(
    logits: &mut [f32],
    context: &[u32],
    generated: usize,
    eos: u32,
    config: &GenerationConfig,
    rng: &mut ChaCha20Rng,
) -> u32 {
    repetition_penalty(logits, context, config.repetition_penalty);
    no_repeat_ngram(logits, context, config.no_repeat_ngram_size);
    if generated < config.min_new_tokens {
        logits[eos as usize] = f32::NEG_INFINITY;
    }
    logits
        .iter_mut()
        .for_each(|x| *x /= config.temperature as f32);
    top_k(logits, config.top_k);
    top_p(logits, config.top_p);
    sample(logits, rng)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The sparse path (work on the top-k candidates only) draws exactly the token of the
    /// dense chain from the same stream: coarse logits make ties, some tokens are banned.
    #[test]
    fn next_token_equals_the_dense_chain(
        raw in prop::collection::vec(-8i32..8, 2..200),
        banned in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        context in prop::collection::vec(0u32..200, 1..30),
        top_k in 0usize..60,
        top_p in prop_oneof![Just(1.0f64), 0.05f64..1.0],
        temperature in prop_oneof![Just(1.0f64), 0.3f64..3.0],
        penalty in prop_oneof![Just(1.0f64), 1.0f64..2.0],
        ngram in 0usize..3,
        seed in any::<u64>(),
    ) {
        let mut logits: Vec<f32> = raw.iter().map(|&r| r as f32 * 0.75).collect();
        for b in &banned {
            let i = b.index(logits.len());
            logits[i] = f32::NEG_INFINITY;
        }
        let context: Vec<u32> = context.iter().map(|&t| t % logits.len() as u32).collect();
        let config = GenerationConfig {
            top_k,
            top_p,
            temperature,
            repetition_penalty: penalty,
            no_repeat_ngram_size: ngram,
            min_new_tokens: 3,
            ..GenerationConfig::default()
        };
        for generated in [0, 5] {
            let mut a = logits.clone();
            let mut b = logits.clone();
            let mut ra = ChaCha20Rng::seed_from_u64(seed);
            let mut rb = ra.clone();
            let got = next_token(&mut a, &context, generated, 0, &config, &mut ra);
            let want = dense_next_token(&mut b, &context, generated, 0, &config, &mut rb);
            prop_assert_eq!(got, want);
        }
    }
}
