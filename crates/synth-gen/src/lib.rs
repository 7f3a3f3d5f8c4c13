//! Synthetic text from a causal language model, prompted by control codes (stage 2 of
//! DistilDP), for any model implementing [`causal_lm::CausalLm`].
//!
//! * [`generate`]: batched autoregressive sampling through the KV cache; prompts of
//!   different lengths share a batch (left padding with a mask); finished rows leave the
//!   batch; each sample draws from its own seeded ChaCha20 stream (reproducible, independent
//!   of batch composition).
//! * [`GenerationConfig`]: greedy or sampling with temperature, top-k, top-p, repetition
//!   penalty, no-repeat n-grams, minimum and maximum new tokens (the paper's defaults: top-k
//!   50, top-p 0.9, temperature 1, no repeated bigram, 128 tokens); [`processors`] holds each
//!   step on its own.
//! * [`ControlCodeFormat`]: `Business Category: Food\tReview Stars: 5.0\n\n` prompts.
//!
//! Generation is post-processing of the DP teacher: it spends no privacy budget. The prompts'
//! label *counts*, when taken from the private data, are a release of their own (to be
//! accounted: see the crate README).
//!
//! ```
//! use synth_gen::ControlCodeFormat;
//!
//! let prompt = ControlCodeFormat::default().prompt(&[("Business Category", "Food"), ("Review Stars", "5.0")]);
//! assert_eq!(prompt, "Business Category: Food\tReview Stars: 5.0\n\n");
//! ```

mod config;
mod control;
mod error;
mod generate;
pub mod processors;

pub use config::GenerationConfig;
pub use control::ControlCodeFormat;
pub use error::SynthGenError;
pub use generate::{SpecialTokens, generate};
