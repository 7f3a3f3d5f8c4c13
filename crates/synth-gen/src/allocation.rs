//! How many synthetic samples each control code gets.

use dp_accounting::{DpEvent, PrivacyLedger};
use dp_optim::{DpRng, noise};
use serde::{Deserialize, Serialize};

use crate::error::{SynthGenError, invalid};

/// Ledger label of the label-count release.
pub const HISTOGRAM_LABEL: &str = "label-histogram";

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
    /// Proportional to the private label counts released through the Gaussian mechanism
    /// (the default in DistilDP pipelines: the reference code copies the exact counts).
    DpHistogram {
        /// σ: the noise standard deviation on each count (the L2 sensitivity is 1).
        noise_multiplier: f64,
    },
}

/// The default σ of [`SampleAllocation::DpHistogram`]: alone, the Gaussian mechanism with
/// σ = 10 is (0.48, 10⁻⁵)-DP by the classical bound; composed with a DP-SGD run it adds
/// far less (the ledger's accountant composes it exactly), while counts in the hundreds
/// keep their proportions to within a few percent.
pub const DEFAULT_HISTOGRAM_NOISE: f64 = 10.0;

impl Default for SampleAllocation {
    /// The DP histogram with σ = [`DEFAULT_HISTOGRAM_NOISE`].
    fn default() -> Self {
        Self::DpHistogram {
            noise_multiplier: DEFAULT_HISTOGRAM_NOISE,
        }
    }
}

impl SampleAllocation {
    /// Splits `total` samples over the control codes. `private_counts` (one per code, the
    /// private records' label counts) is read only by `DpHistogram`, which releases it
    /// through [`dp_histogram`] (recorded in `ledger`); the other kinds read no private data
    /// and record nothing.
    pub fn allocate(
        &self,
        total: usize,
        private_counts: &[u64],
        rng: &mut DpRng,
        ledger: &mut PrivacyLedger,
    ) -> Result<Vec<usize>, SynthGenError> {
        match self {
            Self::Uniform => proportional(total, &vec![1.0; private_counts.len()]),
            Self::Given { weights } => {
                if weights.len() != private_counts.len() {
                    return Err(invalid(
                        "weights",
                        format!("{} weights", weights.len()),
                        format!("one weight per control code ({})", private_counts.len()),
                    ));
                }
                proportional(total, weights)
            }
            Self::DpHistogram { noise_multiplier } => {
                let noisy = dp_histogram(private_counts, *noise_multiplier, rng, ledger)?;
                proportional(total, &noisy)
            }
        }
    }
}

/// The private label counts plus `N(0, σ²)` each, recorded in `ledger` as one Gaussian
/// mechanism with noise multiplier σ.
///
/// Guarantee: with a secure `rng`, the returned vector is the Gaussian mechanism's output
/// with L2 sensitivity 1 under adding or removing one record (one record changes one count
/// by one), and is accounted as such. The list of codes itself must be public (e.g. the known
/// categories), not read from the private data.
pub fn dp_histogram(
    counts: &[u64],
    noise_multiplier: f64,
    rng: &mut DpRng,
    ledger: &mut PrivacyLedger,
) -> Result<Vec<f64>, SynthGenError> {
    if !(noise_multiplier > 0.0 && noise_multiplier.is_finite()) {
        return Err(invalid(
            "noise_multiplier",
            noise_multiplier,
            "a finite number > 0",
        ));
    }
    if counts.is_empty() {
        return Err(invalid("counts", "[]", "one count per control code"));
    }
    let z = noise::gaussian(rng, counts.len(), noise_multiplier)
        .map_err(|e| invalid("noise", e, "a working random stream"))?;
    ledger
        .record(HISTOGRAM_LABEL, DpEvent::Gaussian { noise_multiplier })
        .map_err(|e| invalid("noise_multiplier", noise_multiplier, e))?;
    Ok(counts
        .iter()
        .zip(z)
        .map(|(&c, z)| c as f64 + z as f64)
        .collect())
}

/// `total` samples split in proportion to `weights` (negative weights count as 0; all zero:
/// uniform), by largest remainders, so the parts sum to `total` exactly.
pub fn proportional(total: usize, weights: &[f64]) -> Result<Vec<usize>, SynthGenError> {
    if weights.is_empty() {
        return Err(invalid("weights", "[]", "one weight per control code"));
    }
    if weights.iter().any(|w| w.is_nan()) {
        return Err(invalid("weights", "NaN", "numbers"));
    }
    let clipped: Vec<f64> = weights.iter().map(|w| w.max(0.0)).collect();
    let sum: f64 = clipped.iter().sum();
    let shares: Vec<f64> = if sum > 0.0 && sum.is_finite() {
        clipped.iter().map(|w| w / sum * total as f64).collect()
    } else {
        vec![total as f64 / weights.len() as f64; weights.len()]
    };
    let mut parts: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor()))
    });
    let mut missing = total - parts.iter().sum::<usize>();
    for &i in order.iter().cycle() {
        if missing == 0 {
            break;
        }
        parts[i] += 1;
        missing -= 1;
    }
    Ok(parts)
}
