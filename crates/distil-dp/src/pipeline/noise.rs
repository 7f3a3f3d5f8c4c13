//! The noise streams of a run's DP releases ([`NoiseStream`]).

use dp_optim::DpRng;

use crate::config::PipelineConfig;
use crate::error::DistilDpError;

/// The stream the DP noise of a release comes from when `insecure_noise_seed` is set
/// (ChaCha20 seeded with `insecure_noise_seed + stream · 0x9E37`); from the OS otherwise.
/// The numbers are fixed: seeded runs and their checkpoints depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseStream(u64);

impl NoiseStream {
    /// The label histogram (the first release of the DistilDP ledger).
    pub const LABEL_HISTOGRAM: Self = Self(1);
    /// The teacher's DP-SGD.
    pub const TEACHER: Self = Self(2);
    /// The DP-SGD student's.
    pub const DP_SGD_STUDENT: Self = Self(3);
    /// DPKD's teacher's.
    pub const DPKD_TEACHER: Self = Self(4);
    /// DPKD's student's.
    pub const DPKD_STUDENT: Self = Self(5);

    /// The spacing of the streams' seeds.
    const SPACING: u64 = 0x9E37;

    /// The seed of this stream under `insecure_noise_seed`.
    pub fn insecure_seed(self, insecure_noise_seed: u64) -> u64 {
        insecure_noise_seed.wrapping_add(self.0.wrapping_mul(Self::SPACING))
    }

    /// This stream's seed under `config`, `None` (the OS) unless `insecure_noise_seed` is set.
    pub fn seed(self, config: &PipelineConfig) -> Option<u64> {
        config.insecure_noise_seed.map(|s| self.insecure_seed(s))
    }

    /// The stream itself: the OS CSPRNG, or the configured insecure seed.
    pub fn rng(self, config: &PipelineConfig) -> Result<DpRng, DistilDpError> {
        Ok(match self.seed(config) {
            Some(seed) => DpRng::insecure_seeded(seed),
            None => DpRng::secure()?,
        })
    }
}
