//! Tokenised training data: texts as fixed-length rows of token ids with their masks, and
//! each row's next-token loss (the per-example loss DP-SGD clips).

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use train_kit::{ExampleLoss, LayerTap, Replicate};

use crate::error::CausalLmError;
use crate::lora::LoraGpt2;
use crate::loss::next_token_nll;
use crate::model::Gpt2;
use crate::tokenizer::{PaddingSide, Tokenizer};

/// Texts as `block`-token rows (right-padded, end-of-text appended, longer texts cut), kept
/// on the host; rows are made into tensors on the blocks' device when a batch asks for them
/// ([`TokenBlocks::rows`]).
///
/// As an [`ExampleLoss`] (for DP-SGD, e.g. `dp_optim::DpTrainer`), row `i` is example `i`
/// and its loss is the row's mean next-token NLL over its real tokens, which depends on that
/// row only.
///
/// ```
/// use burn::backend::NdArray;
/// use causal_lm::{TokenBlocks, TokenizerTrainer};
///
/// let texts = ["a cat sat", "a dog ran far away"];
/// let tokenizer = TokenizerTrainer::new(300).train(texts.iter()).unwrap();
/// let blocks = TokenBlocks::<NdArray>::new(&tokenizer, &texts, 8, &Default::default()).unwrap();
/// assert_eq!((blocks.len(), blocks.block()), (2, 8));
///
/// let (ids, mask) = blocks.rows(&[1, 0, 1]);
/// assert_eq!(ids.dims(), [3, 8]);
/// assert_eq!(mask.dims(), [3, 8]);
///
/// // A block of 0 tokens is an error naming the parameter, not a panic.
/// assert!(TokenBlocks::<NdArray>::new(&tokenizer, &texts, 0, &Default::default()).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct TokenBlocks<B: Backend> {
    ids: Vec<i64>,
    mask: Vec<i64>,
    block: usize,
    device: B::Device,
}

impl<B: Backend> TokenBlocks<B> {
    /// Encodes `texts` into rows of `block` tokens (>= 1), whose tensors will be made on
    /// `device`. Errors are the tokenizer's ([`Tokenizer::encode_batch_to_block`]).
    pub fn new<S: AsRef<str> + Send + Sync>(
        tokenizer: &Tokenizer,
        texts: &[S],
        block: usize,
        device: &B::Device,
    ) -> Result<Self, CausalLmError> {
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

    /// The same rows, with their tensors made on `device` from now on (the host data is
    /// copied): e.g. a data-parallel replica's copy.
    pub fn to_device(&self, device: &B::Device) -> Self {
        Self {
            device: device.clone(),
            ..self.clone()
        }
    }

    /// The ids and mask of `rows` (indices below [`TokenBlocks::len`]), `[rows, block]` each.
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

/// The same per-row loss through a LoRA-adapted model (only the adapters are trainable).
impl<B: AutodiffBackend> ExampleLoss<B, LoraGpt2<B>> for TokenBlocks<B> {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &LoraGpt2<B>,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let (ids, mask) = self.rows(examples);
        let logits = model.forward_tapped(ids.clone(), Some(mask.clone()), tap);
        next_token_nll(logits, ids, Some(mask))
    }
}

impl<B: AutodiffBackend> Replicate<B> for TokenBlocks<B> {
    /// The same rows on `device` ([`TokenBlocks::to_device`]), for another data-parallel
    /// worker.
    fn replicate(&self, device: &B::Device) -> Option<Self> {
        Some(self.to_device(device))
    }
}
