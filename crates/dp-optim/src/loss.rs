//! The per-example loss both clipping paths run: [`ExampleLoss`] (`train_kit`'s, so that a
//! model crate can implement it without depending on this crate), and [`PerExample`], a
//! closure adapted to it.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

pub use train_kit::ExampleLoss;
use train_kit::LayerTap;

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
