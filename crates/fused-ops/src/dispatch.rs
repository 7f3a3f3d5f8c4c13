//! Which autodiff backend a generic `B` is, so that a fused operation can register its own
//! backward node.

use std::any::TypeId;

use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::Backend;

use crate::host::cast;

/// The autodiff backends whose fused operations register one backward node of their own.
/// Any other backend runs the operation's generic form, whose gradient burn derives from its
/// parts (same values, more nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AutodiffOf {
    /// `Autodiff<Flex>`.
    Flex,
    /// `Autodiff<NdArray>`.
    NdArray,
    /// `Autodiff<Cuda>`.
    #[cfg(feature = "cuda")]
    Cuda,
}

/// The autodiff backend `B` is, if it is one of [`AutodiffOf`]'s.
pub(crate) fn autodiff_of<B: Backend>() -> Option<AutodiffOf> {
    let id = TypeId::of::<B>();
    if id == TypeId::of::<Autodiff<Flex>>() {
        Some(AutodiffOf::Flex)
    } else if id == TypeId::of::<Autodiff<NdArray>>() {
        Some(AutodiffOf::NdArray)
    } else {
        #[cfg(feature = "cuda")]
        if id == TypeId::of::<Autodiff<burn::backend::Cuda>>() {
            return Some(AutodiffOf::Cuda);
        }
        None
    }
}

/// `value` as `T`, which the caller has checked is its type.
pub(crate) fn same<A: 'static, T: 'static>(value: A) -> T {
    match cast::<A, T>(value) {
        Ok(t) => t,
        Err(_) => unreachable!("the caller checked that the types are equal"),
    }
}

/// Runs `$ad::<Inner>($args)` with each argument cast to `Autodiff<Inner>`'s tensors when `$B` is
/// one of [`AutodiffOf`]'s backends, and `$plain` otherwise.
macro_rules! autodiff_dispatch {
    ($B:ty, $ad:ident, ($($arg:expr),* $(,)?), $plain:expr) => {
        match $crate::dispatch::autodiff_of::<$B>() {
            Some($crate::dispatch::AutodiffOf::Flex) => $crate::dispatch::same(
                $ad::<burn::backend::Flex>($($crate::dispatch::same($arg)),*),
            ),
            Some($crate::dispatch::AutodiffOf::NdArray) => $crate::dispatch::same(
                $ad::<burn::backend::NdArray>($($crate::dispatch::same($arg)),*),
            ),
            #[cfg(feature = "cuda")]
            Some($crate::dispatch::AutodiffOf::Cuda) => $crate::dispatch::same(
                $ad::<burn::backend::Cuda>($($crate::dispatch::same($arg)),*),
            ),
            None => $plain,
        }
    };
}
pub(crate) use autodiff_dispatch;
