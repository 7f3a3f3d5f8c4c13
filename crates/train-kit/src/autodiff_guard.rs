//! A process-wide lock for autodiff work, working around a race in burn 0.21's autodiff.
//!
//! burn 0.21 keeps every autodiff graph of the process in one global registry, and each
//! `backward()` ends by sweeping *all* graphs for unused nodes, including graphs another thread
//! is still building. A node that is live but momentarily unreferenced (`Tensor::cat` is a
//! confirmed trigger) is then freed, and the other thread's backward silently misses or
//! corrupts a gradient: no panic, just a wrong number ([tracel-ai/burn#5573]). Clipped
//! gradients stay clipped, so the privacy guarantee is not at stake, but the training is.
//!
//! Every forward-and-backward this workspace runs (both clipping paths of this crate, the
//! distillation step of `distil-dp`) holds [`autodiff_guard`] for its whole duration, so
//! those never race with each other. A process that runs *other* autodiff work on another
//! thread at the same time should hold the guard around it too (the test suite runs each test
//! binary's tests one at a time instead, through `RUST_TEST_THREADS=1` in
//! `.cargo/config.toml`). Single-threaded training needs nothing.
//!
//! [tracel-ai/burn#5573]: https://github.com/tracel-ai/burn/issues/5573

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};

static AUTODIFF: Mutex<()> = Mutex::new(());

thread_local! {
    /// How many guards this thread holds (the lock is taken by the first only).
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// Holds the process-wide autodiff lock until dropped. Reentrant: a thread that already
/// holds one gets a nested guard at once (a loss closure run by this crate's clipping
/// functions, which take the guard themselves, may take it again).
#[must_use = "the lock is released when the guard is dropped"]
pub struct AutodiffGuard {
    _guard: Option<MutexGuard<'static, ()>>,
}

impl std::fmt::Debug for AutodiffGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AutodiffGuard")
    }
}

impl Drop for AutodiffGuard {
    fn drop(&mut self) {
        HELD.with(|held| held.set(held.get() - 1));
    }
}

/// Takes the process-wide autodiff lock, blocking until no other thread holds it. A panic of
/// another holder does not poison it: the lock guards no data, only the order of graph work.
pub fn autodiff_guard() -> AutodiffGuard {
    let nested = HELD.with(|held| held.get() > 0);
    let guard = (!nested).then(|| {
        AUTODIFF
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    });
    HELD.with(|held| held.set(held.get() + 1));
    AutodiffGuard { _guard: guard }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_holder_does_not_block_later_ones() {
        let _ = std::thread::spawn(|| {
            let _guard = autodiff_guard();
            panic!("holder panics");
        })
        .join();
        drop(autodiff_guard());
    }

    #[test]
    fn nested_guards_on_one_thread_do_not_deadlock_and_exclude_others() {
        let outer = autodiff_guard();
        let inner = autodiff_guard();
        drop(inner);
        let other = std::thread::spawn(|| {
            let _guard = autodiff_guard();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !other.is_finished(),
            "another thread got the lock while it was held"
        );
        drop(outer);
        other.join().unwrap();
    }
}
