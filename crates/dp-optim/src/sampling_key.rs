//! Poisson sampling that any number of workers can split: each record's membership at a step
//! is a function of a secret key, the step and the record's index only. The engine draws
//! the key; data-parallel workers each sample their shard with it.

use std::ops::Range;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::rng::DpRng;
use crate::sampler::PoissonSampler;

/// The secret 256-bit ChaCha20 key behind a data-parallel run's Poisson samples.
///
/// Record `i` joins step `t`'s batch when the 64-bit word at position `i` of ChaCha20 stream
/// `t` under this key is below `⌊q·2⁶⁴⌋` (the rule of [`PoissonSampler`]). The decisions are
/// independent across records and steps and each has probability `≤ q`, so the batch is an
/// exact Poisson sample whichever worker computes which records: a shard of workers samples
/// exactly the records one worker would sample with the same key.
///
/// The key is as secret as the noise stream (knowing it reveals which records each step
/// used): it is drawn from the run's [`DpRng`], kept in the checkpoint's owner-only
/// [`crate::CHECKPOINT_SECRETS_FILE`] until the run is finished, and sent to the other
/// workers over the collective's connections at the start of an unfinished run (see
/// `docs/scaling.md`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplingKey([u8; 32]);

impl std::fmt::Debug for SamplingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SamplingKey(<secret>)")
    }
}

impl SamplingKey {
    /// A fresh key from `rng` (32 bytes of its stream).
    pub fn draw(rng: &mut DpRng) -> Self {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Self(key)
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The records of `range` that join step `step`'s batch under `sampler`'s rate, ascending.
    /// Splitting `0..N` into ranges and concatenating their samples gives the sample of
    /// `0..N`.
    pub fn sample(&self, sampler: &PoissonSampler, step: u64, range: Range<usize>) -> Vec<usize> {
        let mut rng = ChaCha20Rng::from_seed(self.0);
        rng.set_stream(step);
        // One 64-bit word (two 32-bit ChaCha words) per record.
        rng.set_word_pos(2 * range.start as u128);
        range.filter(|_| sampler.keeps(rng.next_u64())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use train_kit::Shard;

    #[test]
    fn shards_partition_the_records_and_their_samples() {
        let sampler = PoissonSampler::new(1003, 0.1).unwrap();
        let key = SamplingKey::draw(&mut DpRng::insecure_seeded(1));
        for step in [0, 1, 77] {
            let whole = key.sample(&sampler, step, 0..1003);
            assert!(!whole.is_empty());
            for count in [1, 2, 3, 4, 7] {
                let mut union = Vec::new();
                let mut records = 0;
                for index in 0..count {
                    let range = Shard::new(index, count).unwrap().indices(1003);
                    records += range.len();
                    union.extend(key.sample(&sampler, step, range));
                }
                assert_eq!(records, 1003);
                assert_eq!(union, whole, "step {step}, {count} shards");
            }
        }
        // steps differ; keys differ
        assert_ne!(
            key.sample(&sampler, 0, 0..1003),
            key.sample(&sampler, 1, 0..1003)
        );
        let other = SamplingKey::draw(&mut DpRng::insecure_seeded(2));
        assert_ne!(
            key.sample(&sampler, 0, 0..1003),
            other.sample(&sampler, 0, 0..1003)
        );
    }

    #[test]
    fn the_realised_rate_is_q() {
        let sampler = PoissonSampler::new(200_000, 0.05).unwrap();
        let key = SamplingKey::draw(&mut DpRng::insecure_seeded(3));
        let n = key.sample(&sampler, 5, 0..200_000).len() as f64;
        // mean 10 000, sd ≈ 97: 5 sd
        assert!((n - 10_000.0).abs() < 500.0, "{n}");
    }
}
