//! Gaussian noise for the clipped gradient sum.

use rand_distr::{Distribution, StandardNormal};

use crate::error::DpOptimError;
use crate::rng::DpRng;

/// Draws per chunk: chunk `k` of a noise vector comes from stream `k` of the call's key.
const CHUNK: usize = 1 << 16;

/// `len` independent draws of `N(0, std²)`, as `f32`, from the [`DpRng`].
///
/// Each call takes a fresh 256-bit ChaCha20 key from the stream; chunk `k` (`2¹⁶` draws) of the
/// vector comes from ChaCha20 stream `k` under that key, through the ziggurat sampler of
/// `rand_distr` in `f64` (exact tails by Marsaglia's method), then rounded to `f32`. Chunks are
/// drawn on all cores, and the values do not depend on the number of threads; the parent
/// stream advances by exactly one key per call, whatever `len`, so a resumed run draws what
/// the uninterrupted one would.
///
/// Floating-point samplers are not exactly Gaussian (Mironov 2012 showed how a textbook
/// Laplace sampler's low-order bits leak); the deviation here comes from 52/53-bit uniforms,
/// far below the `f32` rounding of the gradients the noise is added to, and is not accounted
/// for.
pub fn gaussian(rng: &mut DpRng, len: usize, std: f64) -> Result<Vec<f32>, DpOptimError> {
    let threads = if len > CHUNK {
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
    let key = rng.fork_key();
    let mut out = vec![0f32; len];
    let fill = |k: usize, chunk: &mut [f32]| {
        let mut r = key.clone();
        r.set_stream(k as u64);
        for x in chunk {
            let z: f64 = StandardNormal.sample(&mut r);
            *x = (z * std) as f32;
        }
    };
    // Thread j fills consecutive chunks j·per_thread.. of the vector.
    let chunks = len.div_ceil(CHUNK).max(1);
    let threads = threads.clamp(1, chunks);
    let per_thread = chunks.div_ceil(threads);
    let fill_block = |j: usize, block: &mut [f32]| {
        for (i, chunk) in block.chunks_mut(CHUNK).enumerate() {
            fill(j * per_thread + i, chunk);
        }
    };
    std::thread::scope(|scope| {
        for (j, block) in out.chunks_mut(per_thread * CHUNK).enumerate() {
            if threads > 1 {
                scope.spawn(move || fill_block(j, block));
            } else {
                fill_block(j, block);
            }
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_draw_exactly_what_one_thread_draws() {
        for len in [1, 2, 7, 1000, CHUNK, 3 * CHUNK + 5] {
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
    fn each_call_takes_one_key_whatever_its_length() {
        let mut short = DpRng::insecure_seeded(4);
        let mut long = DpRng::insecure_seeded(4);
        let a = gaussian_on(&mut short, 3, 1.0, 1).unwrap();
        let b = gaussian_on(&mut long, 2 * CHUNK + 1, 1.0, 2).unwrap();
        assert_eq!(a[..], b[..3], "the same key and stream start");
        assert_eq!(short.next_u64(), long.next_u64());
        // consecutive calls use different keys
        let c = gaussian_on(&mut short, 3, 1.0, 1).unwrap();
        assert!(a.iter().zip(&c).all(|(x, y)| x != y));
        // chunks are different streams
        assert!(
            b[..64]
                .iter()
                .zip(&b[CHUNK..CHUNK + 64])
                .all(|(x, y)| x != y)
        );
    }
}
