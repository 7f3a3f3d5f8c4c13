//! How many synthetic samples each control code gets, from public (or already private)
//! weights: the arithmetic only. Weights read from private counts are a release of their own,
//! made by a DP mechanism outside this crate (`dp_optim::mechanisms`); this crate depends on
//! no DP crate.

use crate::error::{SynthGenError, invalid};

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
