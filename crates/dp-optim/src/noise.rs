//! Gaussian noise for the clipped gradient sum.

use crate::error::DpOptimError;
use crate::rng::DpRng;

/// Below this many draws, one thread.
const PARALLEL_MIN: usize = 1 << 16;

/// `len` independent draws of `N(0, std²)`, as `f32`, from the [`DpRng`].
///
/// Box–Muller in `f64` from 53-bit uniforms in (0, 1), then rounded to `f32`. Floating-point
/// samplers are not exactly Gaussian (Mironov 2012 showed how a textbook Laplace sampler's
/// low-order bits leak); the deviation here is at the 2⁻⁵³ level of the uniforms, far below the
/// `f32` rounding of the gradients the noise is added to, and is not accounted for.
///
/// Pair `p` of draws always comes from words `4p..4p+4` after the stream's current position,
/// so long vectors are generated on all cores (each thread seeks to its own range of the
/// same ChaCha20 stream) with exactly the values one thread would produce; the stream then
/// continues after the last word used.
pub fn gaussian(rng: &mut DpRng, len: usize, std: f64) -> Result<Vec<f32>, DpOptimError> {
    let threads = if len >= PARALLEL_MIN {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    };
    gaussian_on(rng, len, std, threads)
}

fn gaussian_on(
    rng: &mut DpRng,
    len: usize,
    std: f64,
    threads: usize,
) -> Result<Vec<f32>, DpOptimError> {
    if !(std >= 0.0 && std.is_finite()) {
        return Err(DpOptimError::InvalidParameter {
            field: "noise_std",
            value: std.to_string(),
            expected: "a finite number >= 0",
        });
    }
    let pairs = len.div_ceil(2);
    let mut out = vec![0f32; pairs * 2];
    let base = rng.word_pos();
    let chunk_pairs = pairs.div_ceil(threads.max(1)).max(1);
    let fill = |mut r: DpRng, chunk: &mut [f32]| {
        for pair in chunk.chunks_exact_mut(2) {
            let radius = (-2.0 * r.open01().ln()).sqrt() * std;
            let (sin, cos) = (std::f64::consts::TAU * r.open01()).sin_cos();
            pair[0] = (radius * cos) as f32;
            pair[1] = (radius * sin) as f32;
        }
    };
    std::thread::scope(|scope| {
        for (j, chunk) in out.chunks_mut(chunk_pairs * 2).enumerate() {
            let mut r = rng.clone();
            r.set_word_pos(base + (j * chunk_pairs * 4) as u128);
            if threads > 1 {
                scope.spawn(move || fill(r, chunk));
            } else {
                fill(r, chunk);
            }
        }
    });
    rng.set_word_pos(base + (pairs * 4) as u128);
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_draw_exactly_what_one_thread_draws_and_the_stream_continues() {
        for len in [1, 2, 7, 1000, 100_001] {
            let mut one = DpRng::insecure_seeded(3);
            let mut many = DpRng::insecure_seeded(3);
            let a = gaussian_on(&mut one, len, 2.0, 1).unwrap();
            let b = gaussian_on(&mut many, len, 2.0, 5).unwrap();
            assert_eq!(a, b, "len {len}");
            assert_eq!(a.len(), len);
            assert_eq!(one.next_u64(), many.next_u64(), "len {len}");
        }
    }

    #[test]
    fn consecutive_calls_do_not_reuse_randomness() {
        let mut rng = DpRng::insecure_seeded(4);
        let a = gaussian_on(&mut rng, 64, 1.0, 3).unwrap();
        let b = gaussian_on(&mut rng, 64, 1.0, 3).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
        // and a two-call sequence equals one long call (no words skipped)
        let mut whole = DpRng::insecure_seeded(4);
        let c = gaussian_on(&mut whole, 128, 1.0, 2).unwrap();
        assert_eq!([a, b].concat(), c);
    }
}
