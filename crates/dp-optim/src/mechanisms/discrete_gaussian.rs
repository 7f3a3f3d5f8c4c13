//! The exact discrete Gaussian sampler (Canonne, Kamath & Steinke 2020, Algorithm 3).

use num_bigint::BigUint;
use num_traits::Zero;

use super::exact;
use crate::error::DpOptimError;
use crate::rng::DpRng;

/// An exact sampler of the discrete Gaussian N_Z(0, σ²): P(X = x) ∝ exp(−x²/(2σ²)) on ℤ.
///
/// σ is an `f64`, hence an exact dyadic rational m·2^e, so σ² = m²·2^{2e} is an exact
/// rational and every probability the algorithm uses is an exact rational: discrete Laplace
/// proposals of scale t = ⌊σ⌋ + 1, accepted with probability exp(−(|Y| − σ²/t)²/(2σ²)) by
/// CKS's Bernoulli(exp(−γ)) algorithm, with uniform integers drawn from the [`DpRng`] by
/// rejection. No floating point is used on the sampling path, so the output is exactly
/// N_Z(0, σ²) given uniform random bits (the expected number of proposals is below 2.5).
///
/// ```
/// use dp_optim::DpRng;
/// use dp_optim::mechanisms::DiscreteGaussianSampler;
/// let sampler = DiscreteGaussianSampler::new(3.0)?;
/// let mut rng = DpRng::insecure_seeded(7);
/// let x: i64 = sampler.sample(&mut rng)?;
/// assert!(x.abs() < 100);
/// # Ok::<(), dp_optim::DpOptimError>(())
/// ```
#[derive(Clone, Debug)]
pub struct DiscreteGaussianSampler {
    sigma: f64,
    /// σ² = `s2_num / s2_den`.
    s2_num: BigUint,
    s2_den: BigUint,
    /// t = ⌊σ⌋ + 1, the proposal's scale.
    t: BigUint,
}

impl DiscreteGaussianSampler {
    /// A sampler for N_Z(0, σ²); σ must be finite and > 0.
    pub fn new(sigma: f64) -> Result<Self, DpOptimError> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(DpOptimError::InvalidParameter {
                field: "sigma",
                value: sigma.to_string(),
                expected: "a finite number > 0",
            });
        }
        // σ = m·2^e exactly (m odd or the full mantissa, e possibly negative).
        let bits = sigma.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1u64 << 52) - 1);
        let (m, e) = if exponent == 0 {
            (fraction, -1074) // subnormal
        } else {
            (fraction | (1u64 << 52), exponent - 1075)
        };
        let m = BigUint::from(m);
        let (s2_num, s2_den, floor) = if e >= 0 {
            let sigma_int = &m << (e as u64);
            (&sigma_int * &sigma_int, BigUint::from(1u32), sigma_int)
        } else {
            let shift = (-e) as u64;
            (&m * &m, BigUint::from(1u32) << (2 * shift), &m >> shift)
        };
        Ok(Self {
            sigma,
            s2_num,
            s2_den,
            t: floor + 1u32,
        })
    }

    /// σ.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// One draw of N_Z(0, σ²). Errors only if the draw does not fit in an `i64` (possible
    /// only for σ near 10¹⁸ or above).
    pub fn sample(&self, rng: &mut DpRng) -> Result<i64, DpOptimError> {
        // γ = (|Y| − σ²/t)² / (2σ²) = (|Y|·D·t − N)² / (2·N·D·t²) with σ² = N/D.
        let (n, d, t) = (&self.s2_num, &self.s2_den, &self.t);
        let dt = d * t;
        let den = (n * d * t * t) << 1u32;
        loop {
            let (negative, y) = exact::discrete_laplace(t, rng);
            let a = &y * &dt;
            let diff = if a >= *n { a - n } else { n - a };
            let num = &diff * &diff;
            if exact::bernoulli_exp_neg(&num, &den, rng) {
                return exact::to_i64(negative && !y.is_zero(), &y);
            }
        }
    }
}
