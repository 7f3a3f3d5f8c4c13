//! Models whose every parameterised layer runs through a [`LayerTap`]: what per-example
//! losses need for DP-SGD's clipping paths (the generic and the fast one).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use train_kit::LayerTap;

use crate::lora::LoraGpt2;
use crate::model::Gpt2;

/// A GPT-2 whose every parameterised layer runs through a [`LayerTap`]: a plain [`Gpt2`],
/// or a [`LoraGpt2`] (DP-LoRA: the adapters run through the tap too, the frozen base's
/// records are ignored).
pub trait TappedLm<B: Backend> {
    /// Logits `[batch, seq, vocab]` of `ids` under `mask`, every layer through `tap`.
    fn tapped_logits<T: LayerTap<B>>(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2, Int>,
        tap: &mut T,
    ) -> Tensor<B, 3>;
}

/// [`TappedLm`] of models with their own `forward_tapped(ids, mask, tap)`.
macro_rules! tapped_lm {
    ($($model:ident),*) => {$(
        impl<B: Backend> TappedLm<B> for $model<B> {
            fn tapped_logits<T: LayerTap<B>>(
                &self,
                ids: Tensor<B, 2, Int>,
                mask: Tensor<B, 2, Int>,
                tap: &mut T,
            ) -> Tensor<B, 3> {
                self.forward_tapped(ids, Some(mask), tap)
            }
        }
    )*};
}

tapped_lm!(Gpt2, LoraGpt2);
