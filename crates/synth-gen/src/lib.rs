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
//! * [`Synthesis`]: a run's settings (control codes and their sample counts, prompt format,
//!   sampling, seed, batch size, progress line) built once; [`Synthesis::run`] turns them into
//!   a resumable JSONL corpus, with a progress line (samples/s, ETA).
//! * [`Synthesis::run_shard`], [`Shard`], [`merge_shards`]: shard `I` of `N` generates only the
//!   sample indices `[T·I/N, T·(I+1)/N)` (resumable, with a completion marker at its end);
//!   the merge checks every shard and joins them, re-applying de-duplication across shards,
//!   into the file one unsharded run writes, byte for byte.
//! * [`JsonlSink`]: streamed JSONL (text plus label columns) flushed per sample; reopening
//!   resumes after the last complete line; empty generations dropped, exact repeats
//!   optionally, each drop logged with its [`DropReason`] ([`drop_log`], counted by
//!   [`Drops`]).
//! * [`CorpusStats`]: lengths (characters, tokens, share at the budget), distinct-1/2,
//!   repeated 4-grams and empty share of a corpus, overall and per control code;
//!   [`read_samples`] reads a corpus file back.
//! * [`proportional`]: samples per control code from weights, summing exactly to the total.
//!
//! Generation is post-processing of the DP teacher: it spends no privacy budget, and this
//! crate depends on no DP crate. The prompts' label *counts*, when taken from the private
//! data, are a release of their own, made outside it (the pipeline uses the exact discrete
//! Gaussian of `dp_optim::mechanisms`) and passed here as weights.
//!
//! ```
//! use synth_gen::ControlCodeFormat;
//!
//! let prompt = ControlCodeFormat::default().prompt(&[("Business Category", "Food"), ("Review Stars", "5.0")]);
//! assert_eq!(prompt, "Business Category: Food\tReview Stars: 5.0\n\n");
//! ```

mod allocation;
mod config;
mod control;
mod drops;
mod error;
mod generate;
mod lines;
mod output;
pub mod processors;
mod shard;
mod stats;
mod synthesize;

pub use allocation::proportional;
pub use config::GenerationConfig;
pub use control::{ControlCodeFormat, LabelNames};
pub use drops::{DropReason, Drops, drop_log};
pub use error::SynthGenError;
pub use generate::{SpecialTokens, generate};
pub use output::{JsonlSink, Resume, Sample};
pub use shard::{MergeReport, Shard, completion_marker, merge_shards};
pub use stats::{CodeStats, CorpusStats, TextStats, read_samples};
pub use synthesize::{CodeJob, Synthesis, SynthesisReport};
