//! The per-example loss both clipping paths run.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use train_kit::LayerTap;

/// A loss that can be evaluated per example, through a [`LayerTap`].
///
/// The engine calls it with one example at a time and [`crate::NoTap`] on the generic path,
/// and with a whole (physical) batch and a [`crate::GhostTape`] on the fast path.
///
/// Contract (what the sensitivity bound, hence the privacy guarantee, rests on): value `k` of
/// the result depends on record `examples[k]` only: no batch statistics, no mixing of rows.
pub trait ExampleLoss<B: AutodiffBackend, M> {
    /// Per-example losses `[examples.len()]` of the records `examples` (indices into the
    /// private dataset), with every parameterised layer of `model` run through `tap`.
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &M,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1>;
}

/// Adapts a closure `loss(model, i)` (one example's loss, a one-element tensor) to
/// [`ExampleLoss`]. It does not use the tap, so the engine runs it on the generic path.
#[derive(Debug, Clone)]
pub struct PerExample<F>(pub F);

impl<B, M, F> ExampleLoss<B, M> for PerExample<F>
where
    B: AutodiffBackend,
    F: FnMut(&M, usize) -> Tensor<B, 1>,
{
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &M,
        examples: &[usize],
        _tap: &mut T,
    ) -> Tensor<B, 1> {
        let values: Vec<Tensor<B, 1>> = examples
            .iter()
            .map(|&i| (self.0)(model, i).reshape([1]))
            .collect();
        Tensor::cat(values, 0)
    }
}
