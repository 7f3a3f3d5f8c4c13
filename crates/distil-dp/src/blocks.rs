//! Tokenised training data: fixed-length blocks with masks, and the per-example loss DP-SGD
//! clips.

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::{Gpt2, PaddingSide, Tokenizer, next_token_nll};
use dp_optim::{ExampleLoss, LayerTap};

use crate::error::DistilDpError;

/// Texts as `block`-token rows (right-padded, end-of-text appended, longer texts cut), kept
/// on the host; rows are made into tensors on `device` when a batch asks for them.
#[derive(Debug, Clone)]
pub struct TokenBlocks<B: Backend> {
    ids: Vec<i64>,
    mask: Vec<i64>,
    block: usize,
    device: B::Device,
}

impl<B: Backend> TokenBlocks<B> {
    /// Encodes `texts`.
    pub fn new<S: AsRef<str> + Send + Sync>(
        tokenizer: &Tokenizer,
        texts: &[S],
        block: usize,
        device: &B::Device,
    ) -> Result<Self, DistilDpError> {
        let e = tokenizer.encode_batch_to_block(texts, block, PaddingSide::Right, true)?;
        Ok(Self {
            ids: e.ids.iter().map(|&v| v as i64).collect(),
            mask: e.mask.iter().map(|&v| v as i64).collect(),
            block,
            device: device.clone(),
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.len() / self.block
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Tokens per row.
    pub fn block(&self) -> usize {
        self.block
    }

    /// The ids and mask of `rows`, `[rows, block]` each.
    pub fn rows(&self, rows: &[usize]) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
        let pick = |v: &[i64]| -> Vec<i64> {
            rows.iter()
                .flat_map(|&i| v[i * self.block..(i + 1) * self.block].iter().copied())
                .collect()
        };
        let shape = [rows.len(), self.block];
        (
            Tensor::from_data(TensorData::new(pick(&self.ids), shape), &self.device),
            Tensor::from_data(TensorData::new(pick(&self.mask), shape), &self.device),
        )
    }
}

/// Each row's mean next-token NLL over its real tokens: depends on that row only, as DP-SGD
/// requires.
impl<B: AutodiffBackend> ExampleLoss<B, Gpt2<B>> for TokenBlocks<B> {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &Gpt2<B>,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let (ids, mask) = self.rows(examples);
        let logits = model.forward_tapped(ids.clone(), Some(mask.clone()), tap);
        next_token_nll(logits, ids, Some(mask))
    }
}

impl<B: AutodiffBackend> crate::dp_train::PrivateExamples<B> for TokenBlocks<B> {
    fn records(&self) -> usize {
        self.len()
    }
}

impl<B: AutodiffBackend> dp_optim::Replicate<B> for TokenBlocks<B> {
    fn replicate(&self, device: &B::Device) -> Option<Self> {
        Some(Self {
            device: device.clone(),
            ..self.clone()
        })
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

impl<B: AutodiffBackend> ExampleLoss<B, Gpt2<B>> for KdBlocks<'_, B> {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &Gpt2<B>,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let (ids, mask) = self.blocks.rows(examples);
        let teacher = Tensor::from_inner(
            self.teacher
                .forward_full(ids.clone().inner(), Some(mask.clone().inner()), false)
                .logits,
        );
        let logits = model.forward_tapped(ids.clone(), Some(mask.clone()), tap);
        kd_losses::distillation_loss(&self.loss, logits, teacher, ids, Some(mask), None)
            .expect("validated distillation settings")
            .per_example()
    }
}

impl<B: AutodiffBackend> crate::dp_train::PrivateExamples<B> for KdBlocks<'_, B> {
    fn records(&self) -> usize {
        self.blocks.len()
    }
}

impl<B: AutodiffBackend> dp_optim::Replicate<B> for KdBlocks<'_, B> {
    fn replicate(&self, device: &B::Device) -> Option<Self> {
        let inner = crate::backend::inner_device::<B>(device);
        let teacher = if self.teacher.devices().contains(&inner) {
            self.teacher.clone() // the same device: the same teacher (a borrow stays one)
        } else {
            std::borrow::Cow::Owned(self.teacher.as_ref().clone().fork(&inner))
        };
        Some(Self {
            blocks: dp_optim::Replicate::replicate(&self.blocks, device)?,
            teacher,
            loss: self.loss.clone(),
        })
    }
}
