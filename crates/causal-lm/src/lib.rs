//! GPT-2-family causal language models on [burn](https://burn.dev), generic over the backend.
//!
//! * [`Gpt2`] / [`Gpt2Config`]: the model, with named presets ([`Gpt2Config::preset`]),
//!   padding masks, hidden states and a [`KvCache`] for incremental decoding.
//! * [`hf`]: load and save Hugging Face checkpoints (`config.json` + `model.safetensors`).
//! * [`checkpoint`]: native checkpoints (burnpack) for resumable training.
//! * [`Tokenizer`]: byte-level BPE (load a `tokenizer.json`, or train one with
//!   [`TokenizerTrainer`] on **public** text only: a vocabulary trained on private records
//!   publishes their rare strings without noise).
//! * [`TokenBlocks`]: texts as fixed-length rows of token ids with masks, for training (a
//!   per-example loss for DP-SGD: each row's mean next-token NLL).
//! * [`perplexity()`]: the paper's perplexity protocol.
//! * [`LoraConfig`] / [`LoraGpt2`]: low-rank adapters on a frozen GPT-2 (trained alone, e.g.
//!   by DP-SGD), merged back into a plain [`Gpt2`] for generation and export.
//! * [`CausalLm`]: the trait generation and distillation code is written against.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::{Int, Tensor};
//! use causal_lm::{Gpt2Config, KvCache};
//!
//! let device = Default::default();
//! let config = Gpt2Config::new(64, 32, 16, 2, 2); // vocab, positions, width, layers, heads
//! let model = config.init::<NdArray>(&device).unwrap();
//! let tokens = Tensor::<NdArray, 2, Int>::from_ints([[1, 2, 3, 4]], &device);
//!
//! // Full forward: logits [batch, seq, vocab].
//! let logits = model.forward(tokens.clone());
//! assert_eq!(logits.dims(), [1, 4, 64]);
//!
//! // Incremental decoding with the KV cache gives the same last-token logits.
//! let mut cache = model.new_cache();
//! model.forward_cached(tokens.clone().narrow(1, 0, 3), None, &mut cache);
//! let last = model.forward_cached(tokens.narrow(1, 3, 1), None, &mut cache).logits;
//! let full_last = logits.narrow(1, 3, 1);
//! let diff = (last - full_last).abs().max().into_scalar();
//! assert!(diff < 1e-5);
//! ```

mod attention;
mod blocks;
mod cache;
pub mod checkpoint;
mod config;
mod dtype;
mod error;
pub mod hf;
mod lm;
mod lora;
mod loss;
mod model;
mod perplexity;
mod tapped;
mod tokenizer;

pub use attention::Attention;
pub use blocks::TokenBlocks;
pub use cache::{KvCache, LayerCache};
pub use config::Gpt2Config;
pub use error::CausalLmError;
pub use fused_ops::gelu_tanh;
pub use lm::{CausalLm, LmCache, LmOutput};
pub use lora::{BlockAdapters, LoraAdapter, LoraConfig, LoraGpt2, LoraProjection};
pub use loss::next_token_nll;
pub use model::{Block, Gpt2, Mlp};
pub use perplexity::{PerplexityReport, perplexity, text_nll};
pub use tapped::TappedLm;
pub use tokenizer::{END_OF_TEXT, EncodedBatch, PADDING, PaddingSide, Tokenizer, TokenizerTrainer};
