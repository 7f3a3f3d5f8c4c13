//! Composition of distributions on a uniform grid by FFT, shared by the PRV and PLD
//! accountants.
//!
//! A distribution is a mass function on the integer indices `offset..offset + len` (the
//! values are `index · h` for the caller's mesh `h`). Composing independent copies adds
//! their indices; the FFT computes the sum's mass function modulo the transform length
//! `n`, so the caller chooses a window `[lo, lo + n)` that holds all but a bounded tail mass
//! of the sum, and each index of the window receives the mass of every index congruent to
//! it. Mass truly below the window thus lands *higher* (a pessimistic move for privacy
//! loss), and mass above it lands lower, which callers cover with an explicit tail bound.

use std::sync::{Arc, Mutex};

use realfft::num_complex::Complex;

use crate::buffers;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// A mass function on consecutive integer indices starting at `offset`.
#[derive(Clone, Debug)]
pub(crate) struct GridPmf {
    /// Index of `probs[0]`.
    pub offset: i64,
    /// Masses (non-negative).
    pub probs: Vec<f64>,
}

/// The smallest even number ≥ `n` of the form 2^a·3^b·5^c (fast for the FFT).
pub(crate) fn fast_len(n: usize) -> usize {
    let n = n.max(2);
    let mut best = usize::MAX;
    let mut p5 = 1usize;
    while p5 < 2 * n {
        let mut p35 = p5;
        while p35 < 2 * n {
            let mut v = p35;
            while v < n || v % 2 == 1 {
                v *= 2;
            }
            best = best.min(v);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
}

/// The mass function of the sum of `count` independent copies of each part, folded onto
/// the window `[lo, lo + n)`: element `r` of the result is the mass at index `lo + r`
/// (plus, by aliasing, at every index congruent to it modulo `n`). `n` must be even. The
/// result comes from [`buffers`]; give it back with `buffers::recycle_reals` when done.
pub(crate) fn compose(parts: &[(&GridPmf, u64)], lo: i64, n: usize) -> Vec<f64> {
    assert!(
        n >= 2 && n.is_multiple_of(2),
        "transform length must be even"
    );
    let (forward, inverse) = plans(n);
    let modulus = n as i64;
    let mut buf = buffers::zeroed_reals(n);
    let mut spec = buffers::zeroed_complexes(n / 2 + 1);
    let mut scratch =
        buffers::zeroed_complexes(forward.get_scratch_len().max(inverse.get_scratch_len()));
    let mut total: Option<Vec<Complex<f64>>> = None;
    for (pmf, count) in parts {
        buf.iter_mut().for_each(|v| *v = 0.0);
        let start = pmf.offset.rem_euclid(modulus) as usize;
        for (k, &p) in pmf.probs.iter().enumerate() {
            let mut i = start + k;
            if i >= n {
                i %= n;
            }
            buf[i] += p;
        }
        forward
            .process_with_scratch(
                &mut buf,
                &mut spec,
                &mut scratch[..forward.get_scratch_len()],
            )
            .expect("buffer sizes match the plan");
        power_in_place(&mut spec, *count);
        match &mut total {
            None => total = Some(std::mem::take(&mut spec)),
            Some(t) => t.iter_mut().zip(&spec).for_each(|(t, s)| *t *= s),
        }
        if spec.is_empty() {
            spec = buffers::zeroed_complexes(n / 2 + 1);
        }
    }
    let mut total = total.unwrap_or_else(|| {
        // The empty composition: all mass at index 0.
        let mut t = buffers::zeroed_complexes(n / 2 + 1);
        t.iter_mut().for_each(|c| *c = Complex::new(1.0, 0.0));
        t
    });
    // A real signal's spectrum has real DC and Nyquist terms; keep them exactly real.
    if let Some(first) = total.first_mut() {
        first.im = 0.0;
    }
    if let Some(last) = total.last_mut() {
        last.im = 0.0;
    }
    inverse
        .process_with_scratch(
            &mut total,
            &mut buf,
            &mut scratch[..inverse.get_scratch_len()],
        )
        .expect("buffer sizes match the plan");
    buffers::recycle_complexes(total);
    buffers::recycle_complexes(scratch);
    buffers::recycle_complexes(spec);
    // Element r of the window is index lo + r.
    buf.rotate_left(lo.rem_euclid(modulus) as usize);
    let scale = 1.0 / n as f64;
    buf.iter_mut().for_each(|v| *v *= scale);
    buf
}

type Plans = (Arc<dyn RealToComplex<f64>>, Arc<dyn ComplexToReal<f64>>);

/// Forward and inverse plans of length `n`, from a small cache of recent lengths (a
/// calibration queries the same lengths repeatedly; twiddle factors are costly to build).
fn plans(n: usize) -> Plans {
    static CACHE: Mutex<Vec<(usize, Plans)>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pos) = cache.iter().position(|(len, _)| *len == n) {
        let entry = cache.remove(pos);
        let plans = entry.1.clone();
        cache.push(entry);
        return plans;
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let plans: Plans = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    if cache.len() >= 4 {
        cache.remove(0);
    }
    cache.push((n, plans.clone()));
    plans
}

/// Raises every element to the power `e` by binary exponentiation, one cache-sized chunk at
/// a time and bit by bit within the chunk, so the work stays in cache and vectorises.
///
/// A chunk whose elements all have |z|^e < e^{−800} (below the smallest subnormal double,
/// so the product would underflow to exactly 0 anyway) is zeroed without multiplying: for
/// the long compositions of DP training almost every frequency of the spectrum is such.
fn power_in_place(z: &mut [Complex<f64>], e: u64) {
    if e == 1 {
        return;
    }
    const CHUNK: usize = 2048;
    // |z|^e < e^{-800}  ⇔  |z|² < e^{-1600/e}
    let negligible = (-1600.0 / e as f64).exp();
    let mut base = [Complex::new(0.0, 0.0); CHUNK];
    for chunk in z.chunks_mut(CHUNK) {
        let largest = chunk.iter().map(|v| v.norm_sqr()).fold(0.0, f64::max);
        if largest < negligible {
            chunk.iter_mut().for_each(|v| *v = Complex::new(0.0, 0.0));
            continue;
        }
        let base = &mut base[..chunk.len()];
        base.copy_from_slice(chunk);
        chunk.iter_mut().for_each(|v| *v = Complex::new(1.0, 0.0));
        let mut e = e;
        while e > 0 {
            if e & 1 == 1 {
                chunk.iter_mut().zip(base.iter()).for_each(|(r, b)| *r *= b);
            }
            e >>= 1;
            if e > 0 {
                base.iter_mut().for_each(|b| *b = *b * *b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_lengths_are_even_smooth_and_minimal() {
        assert_eq!(fast_len(1), 2);
        assert_eq!(fast_len(7), 8);
        assert_eq!(fast_len(11), 12);
        assert_eq!(fast_len(1000), 1000);
        assert_eq!(fast_len(1001), 1024);
    }

    #[test]
    fn composition_matches_direct_convolution() {
        let a = GridPmf {
            offset: -2,
            probs: vec![0.1, 0.2, 0.3, 0.4],
        };
        let b = GridPmf {
            offset: 5,
            probs: vec![0.5, 0.5],
        };
        // a three times, b twice: direct convolution.
        let mut direct = vec![1.0f64];
        let mut off = 0i64;
        for (p, c) in [(&a, 3), (&b, 2)] {
            for _ in 0..c {
                let mut next = vec![0.0; direct.len() + p.probs.len() - 1];
                for (i, x) in direct.iter().enumerate() {
                    for (j, y) in p.probs.iter().enumerate() {
                        next[i + j] += x * y;
                    }
                }
                direct = next;
                off += p.offset;
            }
        }
        let n = fast_len(direct.len());
        let got = compose(&[(&a, 3), (&b, 2)], off, n);
        for (i, d) in direct.iter().enumerate() {
            assert!((got[i] - d).abs() < 1e-15, "{i}");
        }
        for g in &got[direct.len()..] {
            assert!(g.abs() < 1e-15);
        }
    }

    #[test]
    fn powers_match_repeated_multiplication_and_negligible_chunks_vanish() {
        let mut z: Vec<Complex<f64>> = (0..5000)
            .map(|k| Complex::from_polar(1.0 - k as f64 * 1e-4, k as f64 * 0.37))
            .collect();
        let original = z.clone();
        power_in_place(&mut z, 1000);
        for (p, o) in z.iter().zip(&original) {
            let mut direct = Complex::new(1.0, 0.0);
            for _ in 0..1000 {
                direct *= o;
            }
            assert!((p - direct).norm() <= 1e-12 * (1.0 + direct.norm()));
        }
        // |z| = 0.5: 0.5^100000 underflows; the whole chunk is exactly zero.
        let mut tiny = vec![Complex::from_polar(0.5, 1.0); 4096];
        power_in_place(&mut tiny, 100_000);
        assert!(tiny.iter().all(|v| v.re == 0.0 && v.im == 0.0));
    }

    #[test]
    fn window_wraps_mass_modulo_its_length() {
        let a = GridPmf {
            offset: 0,
            probs: vec![0.5, 0.0, 0.0, 0.0, 0.0, 0.5],
        };
        // window [0, 4): index 5 lands on index 1.
        let got = compose(&[(&a, 1)], 0, 4);
        assert!((got[0] - 0.5).abs() < 1e-15 && (got[1] - 0.5).abs() < 1e-15);
    }
}
