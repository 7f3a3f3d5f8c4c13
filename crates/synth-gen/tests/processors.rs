//! Each logit processor on its own.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use synth_gen::processors::{argmax, no_repeat_ngram, repetition_penalty, sample, top_k, top_p};

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
