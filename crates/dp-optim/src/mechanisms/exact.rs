//! Exact samplers on integers and rationals (Canonne, Kamath & Steinke 2020, Algorithms 1
//! and 2): uniform integers by rejection, Bernoulli(n/d), Bernoulli(exp(−n/d)) and the
//! discrete Laplace. No floating point: every probability is an exact rational.

use num_bigint::BigUint;
use num_traits::{One, Zero};

use crate::error::DpOptimError;
use crate::rng::DpRng;

/// A uniform integer in [0, n), `n ≥ 1`, by rejection on the smallest number of random bits
/// that can hold n − 1 (each try succeeds with probability > 1/2; no modulo bias).
pub(crate) fn uniform_below(n: &BigUint, rng: &mut DpRng) -> BigUint {
    debug_assert!(!n.is_zero());
    let bits = (n - 1u32).bits();
    if bits == 0 {
        return BigUint::zero();
    }
    if bits <= 64 {
        let n64 = u64::try_from(n).ok();
        let mask = u64::MAX >> (64 - bits);
        loop {
            let x = rng.next_u64() & mask;
            // n fits in u64 unless n = 2^64 exactly, where every masked x is below it.
            if n64.is_none_or(|n64| x < n64) {
                return BigUint::from(x);
            }
        }
    }
    let words = bits.div_ceil(64) as usize;
    let top_bits = bits - 64 * (words as u64 - 1);
    loop {
        let mut digits: Vec<u64> = (0..words).map(|_| rng.next_u64()).collect();
        if let Some(top) = digits.last_mut() {
            *top &= u64::MAX >> (64 - top_bits);
        }
        let x = from_u64_digits(&digits);
        if &x < n {
            return x;
        }
    }
}

fn from_u64_digits(digits: &[u64]) -> BigUint {
    BigUint::new(
        digits
            .iter()
            .flat_map(|d| [*d as u32, (*d >> 32) as u32])
            .collect(),
    )
}

/// Bernoulli(n/d) for 0 ≤ n ≤ d, d ≥ 1.
pub(crate) fn bernoulli(n: &BigUint, d: &BigUint, rng: &mut DpRng) -> bool {
    &uniform_below(d, rng) < n
}

/// Bernoulli(exp(−n/d)) for n ≥ 0, d ≥ 1 (CKS 2020, Algorithm 1).
pub(crate) fn bernoulli_exp_neg(n: &BigUint, d: &BigUint, rng: &mut DpRng) -> bool {
    if n <= d {
        // γ = n/d ∈ [0, 1]: K = the first k with Bernoulli(γ/k) = 0; return K odd.
        let mut k: u64 = 1;
        loop {
            let dk = d * k;
            if !bernoulli(n, &dk, rng) {
                return k % 2 == 1;
            }
            k += 1;
        }
    }
    // γ > 1: exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)). Each factor fails with probability
    // 1 − 1/e, so the loop ends after about 1.6 iterations whatever ⌊γ⌋.
    let whole = n / d;
    let one = BigUint::one();
    let mut i = BigUint::zero();
    while i < whole {
        if !bernoulli_exp_neg(&one, &one, rng) {
            return false;
        }
        i += 1u32;
    }
    bernoulli_exp_neg(&(n % d), d, rng)
}

/// The discrete Laplace distribution with scale t ≥ 1: P(Y = y) ∝ exp(−|y|/t) on ℤ
/// (CKS 2020, Algorithm 2 with s = 1). Returns (sign, |Y|), sign true for negative.
pub(crate) fn discrete_laplace(t: &BigUint, rng: &mut DpRng) -> (bool, BigUint) {
    let one = BigUint::one();
    loop {
        let u = uniform_below(t, rng);
        if !bernoulli_exp_neg(&u, t, rng) {
            continue;
        }
        let mut v = BigUint::zero();
        while bernoulli_exp_neg(&one, &one, rng) {
            v += 1u32;
        }
        let magnitude = u + t * v;
        let negative = rng.next_u64() & 1 == 1;
        if negative && magnitude.is_zero() {
            continue;
        }
        return (negative, magnitude);
    }
}

/// A signed magnitude as i64, or an error naming the sampler when it does not fit.
pub(crate) fn to_i64(negative: bool, magnitude: &BigUint) -> Result<i64, DpOptimError> {
    let m = u64::try_from(magnitude)
        .ok()
        .filter(|m| *m <= i64::MAX as u64);
    match m {
        Some(m) if negative => Ok(-(m as i64)),
        Some(m) => Ok(m as i64),
        None => Err(DpOptimError::InvalidParameter {
            field: "sigma",
            value: format!("a scale whose sample {magnitude} overflowed i64"),
            expected: "a sigma small enough that the noise fits in i64 (sigma << 9.2e18)",
        }),
    }
}

/// Checked conversion of u64 parameters.
pub(crate) fn big(x: u64) -> BigUint {
    BigUint::from(x)
}
