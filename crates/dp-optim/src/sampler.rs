//! Poisson sampling: every record joins a step's batch independently with probability q.

use serde::{Deserialize, Serialize};

use crate::error::DpOptimError;
use crate::rng::DpRng;

/// Poisson sampling of a dataset of `n` records at rate `q`, the sampling the accountants in
/// `dp-accounting` assume (`DpEvent::PoissonSampledGaussian`). Batches vary in size and may be
/// empty; divide their clipped sums by [`PoissonSampler::expected_batch_size`], never by the
/// realised size (which depends on the presence of a record and would leak it).
///
/// Each record is kept when a fresh 64-bit word from the [`DpRng`] is below `⌊q·2⁶⁴⌋`: the
/// realised rate is `⌊q·2⁶⁴⌋/2⁶⁴ ≤ q` (exactly `q` for `q = 1`), so accounting at `q` is
/// conservative. One word per record per step: 50 000 records cost ~0.1 ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoissonSampler {
    n: usize,
    q: f64,
    threshold: Option<u64>,
}

impl PoissonSampler {
    /// A sampler over `n ≥ 1` records with rate `q ∈ (0, 1]`.
    pub fn new(n: usize, q: f64) -> Result<Self, DpOptimError> {
        if n == 0 {
            return Err(DpOptimError::InvalidParameter {
                field: "dataset_size",
                value: "0".into(),
                expected: "an integer >= 1 (the dataset is empty)",
            });
        }
        if !(q > 0.0 && q <= 1.0) {
            return Err(DpOptimError::InvalidParameter {
                field: "sample_rate",
                value: q.to_string(),
                expected: "a number in (0, 1]",
            });
        }
        let threshold = if q == 1.0 {
            None
        } else {
            // q · 2^64 rounded down (q < 1, so this is < 2^64).
            Some((q * 18_446_744_073_709_551_616.0).floor() as u64)
        };
        Ok(Self { n, q, threshold })
    }

    /// A sampler whose expected batch size is `expected_batch` (`q = expected_batch / n`).
    pub fn with_expected_batch(n: usize, expected_batch: f64) -> Result<Self, DpOptimError> {
        if n == 0 {
            return Self::new(n, 1.0);
        }
        if !(expected_batch > 0.0 && expected_batch <= n as f64) {
            return Err(DpOptimError::InvalidParameter {
                field: "expected_batch_size",
                value: expected_batch.to_string(),
                expected: "a number in (0, dataset size]",
            });
        }
        Self::new(n, expected_batch / n as f64)
    }

    /// Number of records.
    pub fn dataset_size(&self) -> usize {
        self.n
    }

    /// The nominal sampling rate `q` (what the accountant is given).
    pub fn sample_rate(&self) -> f64 {
        self.q
    }

    /// `q · n`: the divisor of every clipped sum.
    pub fn expected_batch_size(&self) -> f64 {
        self.q * self.n as f64
    }

    /// Whether a record whose uniform 64-bit word is `word` joins the batch (`word < ⌊q·2⁶⁴⌋`,
    /// always for `q = 1`).
    pub(crate) fn keeps(&self, word: u64) -> bool {
        self.threshold.is_none_or(|t| word < t)
    }

    /// The indices (ascending) of one step's batch.
    pub fn sample(&self, rng: &mut DpRng) -> Vec<usize> {
        match self.threshold {
            None => (0..self.n).collect(),
            Some(t) => (0..self.n).filter(|_| rng.next_u64() < t).collect(),
        }
    }
}
