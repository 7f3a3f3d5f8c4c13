//! The randomness behind every private release: ChaCha20, seeded from the operating system.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::DpOptimError;

/// A ChaCha20 stream for sampling and noise.
///
/// [`DpRng::secure`] seeds it from the operating system (the default everywhere in this
/// crate): its output is computationally indistinguishable from uniform, so neither the batch
/// membership nor the noise can be predicted or replayed. [`DpRng::insecure_seeded`] exists for
/// reproducible tests and debugging: anyone who knows the seed can recompute the noise and
/// subtract it, which voids the privacy guarantee. It is labelled as such in
/// [`DpRng::is_insecure`], in `Debug` output and in every report that records it.
///
/// The state serialises (seed, stream and position), so a checkpointed run resumes the exact
/// stream instead of reusing or skipping randomness. That serialisation is secret (it
/// regenerates every batch and every noise draw): [`crate::DpTrainer`] checkpoints keep it in
/// their owner-only [`crate::CHECKPOINT_SECRETS_FILE`] and drop it once the run is finished.
#[derive(Clone, Serialize, Deserialize)]
pub struct DpRng {
    rng: ChaCha20Rng,
    insecure: bool,
}

impl std::fmt::Debug for DpRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.insecure {
            write!(f, "DpRng(INSECURE seeded ChaCha20: no privacy)")
        } else {
            write!(f, "DpRng(ChaCha20 seeded from the OS)")
        }
    }
}

impl DpRng {
    /// ChaCha20 seeded from the operating system's randomness.
    pub fn secure() -> Result<Self, DpOptimError> {
        let rng = ChaCha20Rng::try_from_os_rng().map_err(|e| DpOptimError::OsRng(e.to_string()))?;
        Ok(Self {
            rng,
            insecure: false,
        })
    }

    /// **Insecure**: ChaCha20 from a fixed seed, for reproducible tests only. Releases made with
    /// it carry no differential-privacy guarantee.
    pub fn insecure_seeded(seed: u64) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            insecure: true,
        }
    }

    /// Whether this stream was seeded by the caller (no privacy guarantee).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// A uniform 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform double in the open interval (0, 1) (53 random bits, never 0 or 1).
    pub fn open01(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A fresh ChaCha20 key drawn from this stream (32 bytes): the root of the independent
    /// per-chunk streams one noise vector is drawn from.
    pub(crate) fn fork_key(&mut self) -> ChaCha20Rng {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        ChaCha20Rng::from_seed(seed)
    }
}
