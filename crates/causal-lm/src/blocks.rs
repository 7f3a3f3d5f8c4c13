//! Tokenised training data: texts as fixed-length rows of token ids with their masks, and
//! each row's next-token loss (the per-example loss DP-SGD clips).

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use train_kit::{ExampleLoss, LayerTap, Replicate};

use crate::error::CausalLmError;
use crate::loss::next_token_nll;
use crate::tapped::TappedLm;
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
    /// The positions whose next-token prediction is trained on: the mask, less the prompts'.
    loss_mask: Vec<i64>,
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
        let mask: Vec<i64> = e.mask.iter().map(|&v| v as i64).collect();
        Ok(Self {
            ids: e.ids.iter().map(|&v| v as i64).collect(),
            loss_mask: mask.clone(),
            mask,
            block,
            device: device.clone(),
        })
    }

    /// Rows of `prompts[i]` then `texts[i]` (each encoded on its own, as at generation,
    /// end-of-text appended, cut to `block`), whose [`loss mask`](Self::loss_mask) leaves the
    /// prompt out: the model attends to the prompt, but only the predictions of the text's
    /// tokens are trained on (the first from the prompt's last position). As an
    /// [`ExampleLoss`] the rows keep their whole mask.
    ///
    /// ```
    /// use burn::backend::NdArray;
    /// use causal_lm::{TokenBlocks, TokenizerTrainer};
    ///
    /// let tokenizer = TokenizerTrainer::new(300).train(["a cat sat"].iter()).unwrap();
    /// let b = TokenBlocks::<NdArray>::with_prompts(&tokenizer, &["a "], &["cat"], 8, &Default::default()).unwrap();
    /// let (_, mask) = b.rows(&[0]);
    /// let loss = b.loss_mask(&[0]);
    /// assert!(loss.sum().into_scalar() < mask.sum().into_scalar());
    /// ```
    pub fn with_prompts<S: AsRef<str>>(
        tokenizer: &Tokenizer,
        prompts: &[S],
        texts: &[S],
        block: usize,
        device: &B::Device,
    ) -> Result<Self, CausalLmError> {
        if prompts.len() != texts.len() {
            return Err(CausalLmError::InvalidParameter {
                field: "prompts",
                value: format!("{} prompts for {} texts", prompts.len(), texts.len()),
                expected: "one prompt per text",
            });
        }
        if block == 0 {
            return Err(CausalLmError::InvalidParameter {
                field: "block",
                value: "0".into(),
                expected: "an integer >= 1",
            });
        }
        let mut rows = Vec::with_capacity(texts.len());
        let mut prompt_lens = Vec::with_capacity(texts.len());
        for (p, t) in prompts.iter().zip(texts) {
            let mut row = tokenizer.encode(p.as_ref())?;
            prompt_lens.push(row.len().min(block));
            row.extend(tokenizer.encode(t.as_ref())?);
            row.push(tokenizer.eos_id());
            row.truncate(block);
            rows.push(row);
        }
        let e = tokenizer.pad_to(rows, PaddingSide::Right, block);
        let mask: Vec<i64> = e.mask.iter().map(|&v| v as i64).collect();
        let mut loss_mask = mask.clone();
        for (row, &len) in loss_mask.chunks_mut(block).zip(&prompt_lens) {
            // position `len - 1` (the prompt's last token) predicts the text's first token
            row[..len.saturating_sub(1)].fill(0);
        }
        Ok(Self {
            ids: e.ids.iter().map(|&v| v as i64).collect(),
            mask,
            loss_mask,
            block,
            device: device.clone(),
        })
    }

    /// The loss mask of `rows`, `[rows, block]`: 1 where a position is a real token and not
    /// a prompt's (but its last); the attention mask of [`Self::rows`] when no prompt was
    /// given. A prediction from position `t` of token `t + 1` is trained on when both are 1.
    pub fn loss_mask(&self, rows: &[usize]) -> Tensor<B, 2, Int> {
        self.pick(&self.loss_mask, rows)
    }

    /// `rows` of the host array `v` (ids or a mask) as a `[rows, block]` tensor.
    fn pick(&self, v: &[i64], rows: &[usize]) -> Tensor<B, 2, Int> {
        let picked: Vec<i64> = rows
            .iter()
            .flat_map(|&i| v[i * self.block..(i + 1) * self.block].iter().copied())
            .collect();
        Tensor::from_data(
            TensorData::new(picked, [rows.len(), self.block]),
            &self.device,
        )
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
        (self.pick(&self.ids, rows), self.pick(&self.mask, rows))
    }
}

/// Each row's mean next-token NLL over its real tokens: depends on that row only, as DP-SGD
/// requires.
impl<B: AutodiffBackend, M: TappedLm<B>> ExampleLoss<B, M> for TokenBlocks<B> {
    fn losses<T: LayerTap<B>>(
        &mut self,
        model: &M,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let (ids, mask) = self.rows(examples);
        let logits = model.tapped_logits(ids.clone(), mask.clone(), tap);
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

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;

    use super::*;
    use crate::TokenizerTrainer;

    #[test]
    fn prompted_rows_are_prompt_then_text_and_only_the_text_is_trained_on() {
        let texts = [
            "Category: art\n\n",
            "a cat sat on the mat",
            "Category: food\n\n",
        ];
        let tok = TokenizerTrainer::new(300).train(texts.iter()).unwrap();
        let prompts = ["Category: art\n\n", "Category: food\n\n"];
        let bodies = ["a cat sat", "on the mat and more and more text"];
        let block = 12;
        let b = TokenBlocks::<NdArray>::with_prompts(
            &tok,
            &prompts,
            &bodies,
            block,
            &Default::default(),
        )
        .unwrap();
        let (ids, mask) = b.rows(&[0, 1]);
        let ids: Vec<i64> = ids.into_data().to_vec().unwrap();
        let mask: Vec<i64> = mask.into_data().to_vec().unwrap();
        let loss: Vec<i64> = b.loss_mask(&[0, 1]).into_data().to_vec().unwrap();
        for (i, (p, t)) in prompts.iter().zip(bodies).enumerate() {
            let mut want: Vec<i64> = tok.encode(p).unwrap().iter().map(|&v| v as i64).collect();
            let plen = want.len();
            want.extend(tok.encode(t).unwrap().iter().map(|&v| v as i64));
            want.push(tok.eos_id() as i64);
            want.truncate(block);
            let real = want.len();
            let row = &ids[i * block..(i + 1) * block];
            assert_eq!(&row[..real], &want[..]);
            let m = &mask[i * block..(i + 1) * block];
            let l = &loss[i * block..(i + 1) * block];
            for pos in 0..block {
                assert_eq!(m[pos], i64::from(pos < real), "row {i} pos {pos}");
                assert_eq!(
                    l[pos],
                    i64::from(pos + 1 >= plen && pos < real),
                    "row {i} pos {pos}"
                );
            }
        }
        // one prompt per text
        assert!(
            TokenBlocks::<NdArray>::with_prompts(
                &tok,
                &prompts[..1],
                &bodies,
                8,
                &Default::default()
            )
            .is_err()
        );
    }
}
