//! Host kernels on `f32` slices: a vectorisable `exp`, lane-wise row reductions, and a
//! row-parallel driver.
//!
//! Every kernel is plain safe Rust written so that LLVM vectorises it: no libm call in a hot
//! loop, reductions kept in [`LANES`] independent accumulators, no early exit. [`par_rows`] and
//! [`par_chunks`] split the work over rayon's pool and run each task under
//! [`pulp::Arch::dispatch`], which compiles the (always-inlined) body once per instruction set
//! (AVX2 + FMA, or the baseline) and picks the best one the CPU has at run time.

use rayon::prelude::*;

/// Independent accumulators per reduction: wide enough for one AVX-512 register of `f32`.
pub(crate) const LANES: usize = 16;

/// Elements per rayon task: small enough to use both cores on a `[1024, 128]` activation,
/// large enough that scheduling costs nothing next to the arithmetic.
pub(crate) const TASK_ELEMENTS: usize = 16 * 1024;

/// Below this many elements the work runs on the calling thread.
const PARALLEL_MIN: usize = 32 * 1024;

/// `eˣ` in `f32` without a libm call (Cephes' `expf`: range reduction by `ln 2` split in two
/// constants, a degree-6 polynomial, then `2ⁿ` built from its bits), so loops over it
/// vectorise. Relative error below 2·10⁻⁷ on `[-87, 88]`. Outside it the result saturates:
/// `e⁻⁸⁷ ≈ 1.6·10⁻³⁸` for anything smaller (callers that need an exact 0, such as masked
/// attention scores, write it themselves) and `e⁸⁸ ≈ 1.65·10³⁸` for anything larger. NaN in,
/// NaN out.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Round x·log2(e) to the nearest integer by adding and removing 1.5·2²³ (exact for
    // |t| < 2²²; no `floor`, which the baseline x86-64 target makes a libm call).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n ∈ [-126, 127] after the clamp, and the low bits of `shifted` hold it: 2ⁿ is a normal
    // float built from its exponent bits. (A NaN input gives a NaN `y`, whatever the scale.)
    let biased = (shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32 + 127).clamp(1, 254);
    let scale = f32::from_bits((biased as u32) << 23);
    y * scale
}

/// `1 / (1 + e⁻ˣ)` with [`exp`].
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Largest element of `row` (`-∞` when empty). NaNs are skipped here; callers that feed the
/// maximum back into `exp(x - max)` still propagate them.
#[inline(always)]
pub(crate) fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(tail) {
        m = if v > m { v } else { m };
    }
    m
}

/// `Σ exp(row[i]·scale − shift)`, accumulated in [`LANES`] partial sums (a constant `scale` of
/// 1 folds away when inlined).
#[inline(always)]
pub(crate) fn exp_sum(row: &[f32], scale: f32, shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += exp(c[i] * scale - shift);
        }
    }
    let mut s: f32 = acc.iter().sum();
    for &v in tail {
        s += exp(v * scale - shift);
    }
    s
}

/// `Σ a[i]·b[i]`, accumulated in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

/// A per-row computation: fills `out` (row `r` of the output) from the kernel's inputs.
///
/// Implementations mark `row` `#[inline(always)]`: [`par_rows`] calls it from inside pulp's
/// SIMD dispatch, so it is compiled once per instruction set only if it is inlined there.
pub(crate) trait RowKernel: Sync {
    /// Fills output row `r`.
    fn row(&self, r: usize, out: &mut [f32]);
}

/// An element-wise computation: fills `out`, the output's elements from index `offset` on.
/// `chunk` must be `#[inline(always)]`, as [`RowKernel::row`].
pub(crate) trait ChunkKernel: Sync {
    /// Fills `out`, which starts at element `offset` of the output.
    fn chunk(&self, offset: usize, out: &mut [f32]);
}

struct Rows<'a, K> {
    kernel: &'a K,
    first: usize,
    width: usize,
    out: &'a mut [f32],
}

impl<K: RowKernel> pulp::WithSimd for Rows<'_, K> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for (i, row) in self.out.chunks_mut(self.width).enumerate() {
            self.kernel.row(self.first + i, row);
        }
    }
}

struct Chunk<'a, K> {
    kernel: &'a K,
    offset: usize,
    out: &'a mut [f32],
}

impl<K: ChunkKernel> pulp::WithSimd for Chunk<'_, K> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.kernel.chunk(self.offset, self.out);
    }
}

/// Runs `kernel` on every `width`-long row of `out`, rows spread over rayon's pool; `work` is
/// the number of elements one row reads (at least `width`), which sizes the tasks.
pub(crate) fn par_rows<K: RowKernel>(out: &mut [f32], width: usize, work: usize, kernel: &K) {
    if width == 0 || out.is_empty() {
        return;
    }
    let work = work.max(width);
    let rows_per_task = (TASK_ELEMENTS / work).max(1);
    let run = |first: usize, out: &mut [f32]| {
        pulp::Arch::new().dispatch(Rows {
            kernel,
            first,
            width,
            out,
        })
    };
    if out.len() / width * work < PARALLEL_MIN {
        run(0, out);
    } else {
        out.par_chunks_mut(rows_per_task * width)
            .enumerate()
            .for_each(|(t, chunk)| run(t * rows_per_task, chunk));
    }
}

/// Runs `kernel` over consecutive chunks of `out` (element-wise work), spread over rayon's pool.
pub(crate) fn par_chunks<K: ChunkKernel>(out: &mut [f32], kernel: &K) {
    let run = |offset: usize, out: &mut [f32]| {
        pulp::Arch::new().dispatch(Chunk {
            kernel,
            offset,
            out,
        })
    };
    if out.len() < PARALLEL_MIN {
        run(0, out);
    } else {
        out.par_chunks_mut(TASK_ELEMENTS)
            .enumerate()
            .for_each(|(t, chunk)| run(t * TASK_ELEMENTS, chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_two_ulps_relative() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 2e-38 && exp(-1000.0) >= 0.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn reductions_match_sequential_sums() {
        let row: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 101) as f32 / 7.0 - 5.0)
            .collect();
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(row_max(&row), m);
        let s: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
        assert!(((exp_sum(&row, 1.0, m) as f64 - s) / s).abs() < 1e-6);
        let d: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        assert!(((dot(&row, &row) as f64 - d) / d).abs() < 1e-6);
        assert_eq!(row_max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn drivers_visit_every_row_and_chunk_once() {
        struct AddRow;
        impl RowKernel for AddRow {
            #[inline(always)]
            fn row(&self, r: usize, out: &mut [f32]) {
                out.iter_mut().for_each(|v| *v += r as f32);
            }
        }
        struct AddIndex;
        impl ChunkKernel for AddIndex {
            #[inline(always)]
            fn chunk(&self, o: usize, out: &mut [f32]) {
                out.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v += (o + i) as f32);
            }
        }
        for n in [0usize, 7, 1000, 100_000] {
            let mut out = vec![0.0f32; n * 3];
            par_rows(&mut out, 3, 3, &AddRow);
            assert!(
                out.chunks(3)
                    .enumerate()
                    .all(|(r, row)| row.iter().all(|&v| v == r as f32))
            );
            let mut out = vec![0.0f32; n * 3];
            par_chunks(&mut out, &AddIndex);
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32));
        }
    }
}
