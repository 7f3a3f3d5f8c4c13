//! The private training data of DP-SGD: causal-lm's [`TokenBlocks`] (fixed-length token rows
//! with masks, each row's next-token NLL its per-example loss) as [`PrivateExamples`], and
//! the DPKD baseline's per-example distillation loss, [`KdBlocks`]; both for a plain
//! [`Gpt2`] and for a LoRA-adapted [`LoraGpt2`] (DP-LoRA).
//!
//! [`PrivateExamples`]: crate::dp_train::PrivateExamples

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::{Gpt2, TappedLm};
use dp_optim::{ExampleLoss, LayerTap};

/// The private rows of the teacher and the student baselines: causal-lm's (re-exported here
/// so that `distil_dp::blocks::TokenBlocks` keeps naming it).
pub use causal_lm::TokenBlocks;

impl<B: AutodiffBackend, M> crate::dp_train::PrivateExamples<B, M> for TokenBlocks<B>
where
    Self: ExampleLoss<B, M>,
{
    fn records(&self) -> usize {
        self.len()
    }
}

/// The DPKD baseline's per-example loss: the distillation loss of each private row against
/// a (DP-trained) teacher's logits, `λ·KL + (1−λ)·CE`, a mean over the row's real tokens.
#[derive(Debug)]
pub struct KdBlocks<'a, B: AutodiffBackend> {
    /// The private rows.
    pub blocks: TokenBlocks<B>,
    /// The teacher (its logits are constants of the student's loss): borrowed, or a copy
    /// on a replica's device.
    pub teacher: std::borrow::Cow<'a, Gpt2<B::InnerBackend>>,
    /// λ and τ (α must be 0: no hidden states here).
    pub loss: kd_losses::DistillConfig,
}

/// The student is any [`TappedLm`]: a GPT-2, or (DP-LoRA) its adapters alone trained.
impl<B: AutodiffBackend, M: TappedLm<B>> ExampleLoss<B, M> for KdBlocks<'_, B> {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &M,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let (ids, mask) = self.blocks.rows(examples);
        let teacher = Tensor::from_inner(
            self.teacher
                .forward_full(ids.clone().inner(), Some(mask.clone().inner()), false)
                .logits,
        );
        let logits = model.tapped_logits(ids.clone(), mask.clone(), tap);
        kd_losses::distillation_loss(&self.loss, logits, teacher, ids, Some(mask), None)
            .expect("validated distillation settings")
            .per_example()
    }
}

impl<B: AutodiffBackend, M> crate::dp_train::PrivateExamples<B, M> for KdBlocks<'_, B>
where
    Self: ExampleLoss<B, M>,
{
    fn records(&self) -> usize {
        self.blocks.len()
    }
}

impl<B: AutodiffBackend> train_kit::Replicate<B> for KdBlocks<'_, B> {
    fn replicate(&self, device: &B::Device) -> Option<Self> {
        let inner = crate::backend::inner_device::<B>(device);
        let teacher = if self.teacher.devices().contains(&inner) {
            self.teacher.clone() // the same device: the same teacher (a borrow stays one)
        } else {
            std::borrow::Cow::Owned(self.teacher.as_ref().clone().fork(&inner))
        };
        Some(Self {
            blocks: train_kit::Replicate::replicate(&self.blocks, device)?,
            teacher,
            loss: self.loss.clone(),
        })
    }
}
