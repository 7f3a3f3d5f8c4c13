//! Byte-level BPE tokenization: load a Hugging Face `tokenizer.json`, or train one on public text.
//!
//! # Train tokenizers on public text only
//! A BPE vocabulary is a deterministic function of its training corpus: every merge records a
//! character sequence frequent in that corpus. Trained on private records, the vocabulary itself
//! releases their rare strings (a name, an address, a patent claim's coined term shows up as a
//! token) without any noise, and it ships with every model and synthetic corpus made from it,
//! outside the DP guarantee. Train on public text (or reuse a published tokenizer such as
//! GPT-2's); nothing in this crate accounts for a tokenizer trained on private data.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use tokenizers::AddedToken;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::ModelWrapper;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;

use crate::error::CausalLmError;

/// GPT-2's end-of-text token: separates documents and ends generations.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The padding token used when a vocabulary has one (GPT-2's has not).
pub const PADDING: &str = "<|pad|>";

fn tok_err(e: impl std::fmt::Display) -> CausalLmError {
    CausalLmError::Tokenizer(e.to_string())
}

/// A byte-level BPE tokenizer with an end-of-text token and a padding token: `<|pad|>` when
/// the vocabulary has one, else the end-of-text token (GPT-2 has no padding token; padded
/// positions are masked, so their id never matters).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    eos_id: u32,
    pad_id: u32,
}

/// Which side padding goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingSide {
    /// Pad after the text (training, scoring).
    Right,
    /// Pad before the text, so every row's last real token is aligned (batched generation).
    Left,
}

/// A batch of token ids padded to a common length, with its attention mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Row-major `[batch, len]` token ids (padded with [`Tokenizer::pad_id`]).
    pub ids: Vec<u32>,
    /// Row-major `[batch, len]`, 1 for a real token and 0 for padding.
    pub mask: Vec<u32>,
    /// Number of real tokens per row.
    pub lengths: Vec<usize>,
    /// Number of rows.
    pub batch: usize,
    /// Padded length.
    pub len: usize,
}

impl EncodedBatch {
    /// The ids and mask as `[batch, len]` integer tensors.
    pub fn to_tensors<B: Backend>(
        &self,
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
        let shape = [self.batch, self.len];
        let ids: Vec<i64> = self.ids.iter().map(|&v| v as i64).collect();
        let mask: Vec<i64> = self.mask.iter().map(|&v| v as i64).collect();
        (
            Tensor::from_data(TensorData::new(ids, shape), device),
            Tensor::from_data(TensorData::new(mask, shape), device),
        )
    }

    /// Row `i`'s real token ids.
    pub fn row(&self, i: usize) -> Vec<u32> {
        let row = &self.ids[i * self.len..(i + 1) * self.len];
        let mask = &self.mask[i * self.len..(i + 1) * self.len];
        row.iter()
            .zip(mask)
            .filter(|(_, m)| **m == 1)
            .map(|(t, _)| *t)
            .collect()
    }
}

impl Tokenizer {
    /// Wraps a Hugging Face tokenizer whose end-of-text token is `eos`.
    pub fn from_hf(inner: tokenizers::Tokenizer, eos: &str) -> Result<Self, CausalLmError> {
        let eos_id = inner.token_to_id(eos).ok_or_else(|| {
            CausalLmError::Tokenizer(format!("the vocabulary has no end-of-text token `{eos}`"))
        })?;
        let pad_id = inner.token_to_id(PADDING).unwrap_or(eos_id);
        Ok(Self {
            inner,
            eos_id,
            pad_id,
        })
    }

    /// Loads a `tokenizer.json` whose end-of-text token is `<|endoftext|>`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CausalLmError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(CausalLmError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such tokenizer file"),
            ));
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| CausalLmError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::from_hf(inner, END_OF_TEXT)
    }

    /// Parses a `tokenizer.json` held in memory.
    pub fn from_json(json: &str) -> Result<Self, CausalLmError> {
        let inner = json.parse::<tokenizers::Tokenizer>().map_err(tok_err)?;
        Self::from_hf(inner, END_OF_TEXT)
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CausalLmError> {
        self.inner.save(path, false).map_err(tok_err)
    }

    /// The `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String, CausalLmError> {
        self.inner.to_string(false).map_err(tok_err)
    }

    /// Vocabulary size, special tokens included: the model's `vocab_size` must be at least this.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of the end-of-text token.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Id written at padded positions.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text` (no special token added; a literal `<|endoftext|>` in the text is
    /// recognised as the special token, as Hugging Face does).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, CausalLmError> {
        Ok(self
            .inner
            .encode_fast(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String, CausalLmError> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    /// Encodes `texts` (in parallel), truncates each to `max_len` tokens (keeping the start;
    /// `append_eos` adds the end-of-text token within that length) and pads to the longest row.
    pub fn encode_batch<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
        max_len: usize,
        side: PaddingSide,
        append_eos: bool,
    ) -> Result<EncodedBatch, CausalLmError> {
        let rows = self.encode_rows(texts, max_len, append_eos)?;
        Ok(self.pad(rows, side))
    }

    /// As [`Tokenizer::encode_batch`], but every row is padded to exactly `block_size` tokens
    /// (fixed-shape batches for training).
    pub fn encode_batch_to_block<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
        block_size: usize,
        side: PaddingSide,
        append_eos: bool,
    ) -> Result<EncodedBatch, CausalLmError> {
        let rows = self.encode_rows(texts, block_size, append_eos)?;
        Ok(self.pad_to(rows, side, block_size))
    }

    fn encode_rows<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
        max_len: usize,
        append_eos: bool,
    ) -> Result<Vec<Vec<u32>>, CausalLmError> {
        if max_len == 0 {
            return Err(CausalLmError::InvalidParameter {
                field: "max_len",
                value: "0".into(),
                expected: "an integer >= 1",
            });
        }
        let inputs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
        let encodings = self
            .inner
            .encode_batch_fast(inputs, false)
            .map_err(tok_err)?;
        let rows: Vec<Vec<u32>> = encodings
            .iter()
            .map(|e| {
                let mut ids = e.get_ids().to_vec();
                if append_eos {
                    ids.truncate(max_len - 1);
                    ids.push(self.eos_id);
                } else {
                    ids.truncate(max_len);
                }
                ids
            })
            .collect();
        Ok(rows)
    }

    /// Pads already-tokenised rows to their longest length.
    pub fn pad(&self, rows: Vec<Vec<u32>>, side: PaddingSide) -> EncodedBatch {
        self.pad_to(rows, side, 0)
    }

    /// Pads already-tokenised rows to `max(min_len, longest row)`.
    pub fn pad_to(&self, rows: Vec<Vec<u32>>, side: PaddingSide, min_len: usize) -> EncodedBatch {
        let len = rows.iter().map(Vec::len).max().unwrap_or(0).max(min_len);
        let batch = rows.len();
        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        let mut lengths = Vec::with_capacity(batch);
        for row in rows {
            let pad = len - row.len();
            lengths.push(row.len());
            if side == PaddingSide::Left {
                ids.extend(std::iter::repeat_n(self.pad_id, pad));
                mask.extend(std::iter::repeat_n(0, pad));
            }
            mask.extend(std::iter::repeat_n(1, row.len()));
            ids.extend(row);
            if side == PaddingSide::Right {
                ids.extend(std::iter::repeat_n(self.pad_id, pad));
                mask.extend(std::iter::repeat_n(0, pad));
            }
        }
        EncodedBatch {
            ids,
            mask,
            lengths,
            batch,
            len,
        }
    }
}

/// Trains a GPT-2-style byte-level BPE (`tokenizer.json` compatible with Hugging Face's
/// `ByteLevelBPETokenizer`).
///
/// # Train on public text only
/// BPE training is deterministic and noiseless: every merge records a string frequent in the
/// corpus. Trained on private records, the vocabulary itself releases their rare strings (a
/// name, an address, a coined term becomes a token) and ships with every model and synthetic
/// corpus made with it, outside the DP guarantee. Nothing in this workspace accounts for a
/// tokenizer trained on private data: train on public text, or use a published tokenizer.
#[derive(Debug, Clone)]
pub struct TokenizerTrainer {
    /// Target vocabulary size, the 256 byte symbols and special tokens included.
    pub vocab_size: usize,
    /// A pair must occur at least this often to be merged.
    pub min_frequency: u64,
    /// Special tokens, added first; the first one is the end-of-text token.
    pub special_tokens: Vec<String>,
}

impl Default for TokenizerTrainer {
    fn default() -> Self {
        Self {
            vocab_size: 4096,
            min_frequency: 2,
            special_tokens: vec![END_OF_TEXT.to_string()],
        }
    }
}

impl TokenizerTrainer {
    /// A trainer for a vocabulary of `vocab_size` tokens.
    pub fn new(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            ..Self::default()
        }
    }

    /// Trains on `texts` (public text: see the module docs).
    pub fn train<S: AsRef<str> + Send>(
        &self,
        texts: impl Iterator<Item = S> + Send,
    ) -> Result<Tokenizer, CausalLmError> {
        let min_vocab = 256 + self.special_tokens.len();
        if self.vocab_size < min_vocab {
            return Err(CausalLmError::InvalidParameter {
                field: "vocab_size",
                value: self.vocab_size.to_string(),
                expected: "at least 256 + the number of special tokens",
            });
        }
        let Some(eos) = self.special_tokens.first().cloned() else {
            return Err(CausalLmError::InvalidParameter {
                field: "special_tokens",
                value: "[]".into(),
                expected: "at least the end-of-text token",
            });
        };
        let mut inner = tokenizers::Tokenizer::new(ModelWrapper::BPE(BPE::default()));
        inner.with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
            false, true, true,
        ))));
        inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
        inner.with_post_processor(Some(PostProcessorWrapper::ByteLevel(ByteLevel::new(
            true, false, true,
        ))));
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainer::builder()
                .vocab_size(self.vocab_size)
                .min_frequency(self.min_frequency)
                .show_progress(false)
                .special_tokens(
                    self.special_tokens
                        .iter()
                        .map(|t| AddedToken::from(t.clone(), true))
                        .collect(),
                )
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        inner.train(&mut trainer, texts).map_err(tok_err)?;
        Tokenizer::from_hf(inner, &eos)
    }
}
