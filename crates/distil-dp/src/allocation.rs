//! How many synthetic samples each control code gets: uniformly, from given weights, or in
//! proportion to the private label counts released through the exact discrete Gaussian
//! mechanism (`dp_optim::mechanisms`), recorded in the privacy ledger.

use dp_accounting::{DpEvent, PrivacyLedger};
use dp_optim::DpRng;
use dp_optim::mechanisms::discrete_gaussian_histogram;
use serde::{Deserialize, Serialize};
use synth_gen::proportional;

use crate::error::DistilDpError;

/// Ledger label of the label-count release.
pub const HISTOGRAM_LABEL: &str = "label-histogram";

/// The default σ of [`SampleAllocation::DpHistogram`]: alone, the discrete Gaussian with
/// σ = 10 on sensitivity-1 counts costs about what the continuous one does (ε ≈ 0.48 at
/// δ = 10⁻⁵); composed with a DP-SGD run it adds far less (the accountant composes it
/// exactly), while counts in the hundreds keep their proportions to within a few percent.
pub const DEFAULT_HISTOGRAM_NOISE: f64 = 10.0;

/// Where the per-code sample counts come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SampleAllocation {
    /// The same number for every code (no use of private data).
    Uniform,
    /// Caller-given weights, one per code (public knowledge, or already private).
    Given {
        /// Non-negative weights.
        weights: Vec<f64>,
    },
    /// Proportional to the private label counts released through the exact discrete
    /// Gaussian mechanism (the default; DistilDP's reference code copies the exact counts).
    DpHistogram {
        /// σ: the discrete Gaussian's scale on each integer count (the sensitivity is 1).
        noise_multiplier: f64,
    },
}

impl Default for SampleAllocation {
    /// The DP histogram with σ = [`DEFAULT_HISTOGRAM_NOISE`].
    fn default() -> Self {
        Self::DpHistogram {
            noise_multiplier: DEFAULT_HISTOGRAM_NOISE,
        }
    }
}

impl SampleAllocation {
    /// The ledger this allocation will record, known before it is made (σ is public): what
    /// the teacher's σ is calibrated after, before anything is released.
    pub fn planned_ledger(&self) -> Result<PrivacyLedger, DistilDpError> {
        let mut ledger = PrivacyLedger::new();
        if let Self::DpHistogram { noise_multiplier } = self {
            let event = DpEvent::discrete_gaussian(*noise_multiplier)
                .map_err(dp_optim::DpOptimError::from)?;
            ledger
                .record(HISTOGRAM_LABEL, event)
                .map_err(dp_optim::DpOptimError::from)?;
        }
        Ok(ledger)
    }

    /// Splits `total` samples over the control codes. `private_counts` (one per code, the
    /// private records' label counts) is read only by `DpHistogram`, which releases it
    /// through the exact discrete Gaussian (one entry in `ledger`, recorded before the noisy
    /// counts exist); the other kinds read no private data and record nothing.
    ///
    /// Guarantee (`DpHistogram`, secure `rng`): the samples per code are post-processing of
    /// the discrete Gaussian mechanism on the counts, (ε, δ)-DP under adding or removing one
    /// record (one record changes one count by one) as the ledger's accountant computes. The
    /// list of codes must be public, or its disclosure stated (the pipeline does).
    pub fn allocate(
        &self,
        total: usize,
        private_counts: &[u64],
        rng: &mut DpRng,
        ledger: &mut PrivacyLedger,
    ) -> Result<Vec<usize>, DistilDpError> {
        let weights = match self {
            Self::Uniform => vec![1.0; private_counts.len()],
            Self::Given { weights } => {
                if weights.len() != private_counts.len() {
                    return Err(DistilDpError::InvalidArgument {
                        field: "generation.allocation.weights",
                        value: format!("{} weights", weights.len()),
                        expected: "one weight per control code",
                    });
                }
                weights.clone()
            }
            Self::DpHistogram { noise_multiplier } => discrete_gaussian_histogram(
                private_counts,
                *noise_multiplier,
                rng,
                ledger,
                HISTOGRAM_LABEL,
            )?
            .into_iter()
            .map(|c| c as f64)
            .collect(),
        };
        Ok(proportional(total, &weights)?)
    }
}
