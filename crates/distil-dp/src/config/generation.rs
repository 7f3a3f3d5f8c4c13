//! Stage 2's section, `[generation]`: the synthetic corpus.

use serde::{Deserialize, Serialize};
use synth_gen::GenerationConfig;

use super::{MAX_BATCH, MAX_BLOCK, MAX_SAMPLES, bad, nested};
use crate::allocation::SampleAllocation;
use crate::error::DistilDpError;

/// Stage 2: sampling the synthetic corpus from the DP teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationStageConfig {
    /// Synthetic samples in all (default: as many as private training records).
    pub samples: Option<usize>,
    /// Samples per control code (default: the DP histogram of the private label counts,
    /// σ = 10, charged to the budget).
    pub allocation: SampleAllocation,
    /// Prompts per batch (default 64).
    pub batch_size: usize,
    /// Drop exact duplicate texts (default false).
    pub dedup: bool,
    /// Sampling settings (default: the paper's — top-k 50, top-p 0.9, temperature 1, no
    /// repeated bigram — with at most 48 new tokens instead of 128, to fit the default
    /// teacher's 64 positions after the control code; checked when generating).
    pub sampling: GenerationConfig,
}

impl Default for GenerationStageConfig {
    fn default() -> Self {
        Self {
            samples: None,
            allocation: SampleAllocation::default(),
            batch_size: 64,
            dedup: false,
            sampling: GenerationConfig {
                max_new_tokens: 48,
                ..GenerationConfig::default()
            },
        }
    }
}

impl GenerationStageConfig {
    /// The allocation, the sample count, the batch and the sampling settings.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        validate_allocation(&self.allocation)?;
        if self.samples == Some(0) {
            return Err(bad("generation.samples", 0, "at least 1 (or unset)"));
        }
        if let Some(n) = self.samples.filter(|&n| n > MAX_SAMPLES) {
            return Err(bad("generation.samples", n, "at most 10^9 (or unset)"));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(bad(
                "generation.batch_size",
                self.batch_size,
                "an integer in [1, 65536]",
            ));
        }
        if self.sampling.max_new_tokens > MAX_BLOCK {
            return Err(bad(
                "generation.sampling.max_new_tokens",
                self.sampling.max_new_tokens,
                "at most 16384 (and room for it after the control code in teacher.block_size)",
            ));
        }
        self.sampling
            .validate()
            .map_err(|e| nested("generation.sampling", &e))
    }
}

/// Checks the allocation's σ or weights (finite, in range).
fn validate_allocation(a: &SampleAllocation) -> Result<(), DistilDpError> {
    match a {
        SampleAllocation::Uniform => Ok(()),
        SampleAllocation::Given { weights } => {
            if weights.is_empty() || weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
                return Err(bad(
                    "generation.allocation.weights",
                    format!("{weights:?}"),
                    "one finite weight >= 0 per control code",
                ));
            }
            Ok(())
        }
        SampleAllocation::DpHistogram { noise_multiplier } => {
            if !(noise_multiplier.is_finite() && *noise_multiplier > 0.0) {
                return Err(bad(
                    "generation.allocation.noise_multiplier",
                    noise_multiplier,
                    "a finite number > 0",
                ));
            }
            Ok(())
        }
    }
}
