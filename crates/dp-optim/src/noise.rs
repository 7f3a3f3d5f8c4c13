//! Gaussian noise for the clipped gradient sum.

use crate::error::DpOptimError;
use crate::rng::DpRng;

/// `len` independent draws of `N(0, std²)`, as `f32`, from the [`DpRng`].
///
/// Box–Muller in `f64` from 53-bit uniforms in (0, 1), then rounded to `f32`. Floating-point
/// samplers are not exactly Gaussian (Mironov 2012 showed how a textbook Laplace sampler's
/// low-order bits leak); the deviation here is at the 2⁻⁵³ level of the uniforms, far below the
/// `f32` rounding of the gradients the noise is added to, and is not accounted for.
pub fn gaussian(rng: &mut DpRng, len: usize, std: f64) -> Result<Vec<f32>, DpOptimError> {
    if !(std >= 0.0 && std.is_finite()) {
        return Err(DpOptimError::InvalidParameter {
            field: "noise_std",
            value: std.to_string(),
            expected: "a finite number >= 0",
        });
    }
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        let r = (-2.0 * rng.open01().ln()).sqrt() * std;
        let theta = std::f64::consts::TAU * rng.open01();
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(len);
    Ok(out)
}
