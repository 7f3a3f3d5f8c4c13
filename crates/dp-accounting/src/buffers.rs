//! A small process-wide pool of the large buffers the FFT composition needs, so that
//! repeated queries (a calibration, a training loop asking for ε every epoch, a benchmark)
//! reuse memory instead of having the kernel fault in and zero fresh pages every time.
//! At most [`POOL_BYTES`] are kept between queries; anything beyond is freed.

use std::sync::Mutex;

use realfft::num_complex::Complex;

/// The most memory the pool keeps between queries.
pub(crate) const POOL_BYTES: usize = 96 << 20;

#[derive(Default)]
struct Pool {
    reals: Vec<Vec<f64>>,
    complexes: Vec<Vec<Complex<f64>>>,
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    reals: Vec::new(),
    complexes: Vec::new(),
    bytes: 0,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the smallest pooled vector with capacity ≥ `n`, if any.
fn take_fitting<T>(list: &mut Vec<Vec<T>>, bytes: &mut usize, n: usize) -> Option<Vec<T>> {
    let pos = list
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= n)
        .min_by_key(|(_, v)| v.capacity())?
        .0;
    let v = list.swap_remove(pos);
    *bytes -= v.capacity() * size_of::<T>();
    Some(v)
}

/// A vector of `n` zeros.
pub(crate) fn zeroed_reals(n: usize) -> Vec<f64> {
    let mut p = pool();
    let Pool { reals, bytes, .. } = &mut *p;
    match take_fitting(reals, bytes, n) {
        Some(mut v) => {
            v.clear();
            v.resize(n, 0.0);
            v
        }
        None => vec![0.0; n],
    }
}

/// A vector of `n` complex zeros.
pub(crate) fn zeroed_complexes(n: usize) -> Vec<Complex<f64>> {
    let mut p = pool();
    let Pool {
        complexes, bytes, ..
    } = &mut *p;
    match take_fitting(complexes, bytes, n) {
        Some(mut v) => {
            v.clear();
            v.resize(n, Complex::new(0.0, 0.0));
            v
        }
        None => vec![Complex::new(0.0, 0.0); n],
    }
}

/// Returns a vector to the pool (or frees it if the pool is full).
pub(crate) fn recycle_reals(v: Vec<f64>) {
    let size = v.capacity() * size_of::<f64>();
    let mut p = pool();
    if size > 0 && p.bytes + size <= POOL_BYTES {
        p.bytes += size;
        p.reals.push(v);
    }
}

/// Returns a complex vector to the pool (or frees it if the pool is full).
pub(crate) fn recycle_complexes(v: Vec<Complex<f64>>) {
    let size = v.capacity() * size_of::<Complex<f64>>();
    let mut p = pool();
    if size > 0 && p.bytes + size <= POOL_BYTES {
        p.bytes += size;
        p.complexes.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_zeroed_and_the_pool_stays_bounded() {
        let mut v = zeroed_reals(1000);
        v.iter_mut().for_each(|x| *x = 1.0);
        recycle_reals(v);
        let w = zeroed_reals(900);
        assert_eq!(w.len(), 900);
        assert!(w.iter().all(|&x| x == 0.0));
        recycle_reals(w);
        // Far more than the pool keeps: freed, not kept.
        recycle_complexes(Vec::with_capacity(POOL_BYTES));
        assert!(pool().bytes <= POOL_BYTES);
    }
}
