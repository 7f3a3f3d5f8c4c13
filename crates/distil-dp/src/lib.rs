//! The DistilDP pipeline (Flemings & Annavaram 2024): from private labelled text and a
//! privacy budget to a small student model, its test perplexity next to the baselines', and
//! a privacy report. Each stage calls the crate that owns the work; this crate wires them:
//!
//! 1. [`histogram`] + [`dp_train`]: a DP histogram of the private label counts (how many
//!    synthetic samples each control code gets) and the teacher's DP-SGD on
//!    `control code + text`, in one ledger at the run's (ε, δ);
//! 2. [`generation`]: the synthetic corpus sampled from the DP teacher (post-processing),
//!    in one process or in shards ([`pipeline::generate_shard`], [`pipeline::merge`]);
//! 3. [`distill`]: the student trained on the synthetic corpus with the teacher's soft labels
//!    (post-processing);
//!    and, when `[student.on_policy]` asks, [`on_policy`]: the student trained further on
//!    its own samples against the teacher (post-processing);
//! 4. [`pipeline`]: the baselines (DP-SGD student, DPKD, hard-label student), the test
//!    perplexities, and [`report`] (`report.json`, `report.md`, [`curves`]).
//!
//! [`pipeline::run`] runs any of the stages on the configured backend; every stage resumes
//! from its checkpoints in the run directory ([`run_dir`]), so a killed run continues with no
//! DP step repeated or lost. [`config::PipelineConfig`] is the run's TOML file (its default
//! is the quickstart: the [`embedded`] corpus, tiny models, ε = 2).
//!
//! ```no_run
//! use distil_dp::config::PipelineConfig;
//! use distil_dp::pipeline::{Stage, run};
//! use distil_dp::progress::{OutputMode, Reporter};
//!
//! let config = PipelineConfig::from_toml(
//!     "output_dir = \"runs/example\"\n[privacy]\nepsilon = 4.0\n",
//!     &["student.epochs=2".to_string()],
//! )?;
//! let mut reporter = Reporter::detached(OutputMode::Quiet);
//! let report = run(&config, &Stage::ALL, &mut reporter)?.expect("evaluation ran");
//! println!("{}", report.results_table());
//! assert!(report.privacy.releases.iter().all(|r| r.epsilon <= 4.0));
//! # Ok::<(), distil_dp::DistilDpError>(())
//! ```
//!
//! Reading data files does not need the pipeline:
//!
//! ```
//! use distil_dp::data::{DataFormat, read_texts};
//!
//! let dir = std::env::temp_dir().join("distil-dp-doctest");
//! std::fs::create_dir_all(&dir).unwrap();
//! let file = dir.join("texts.jsonl");
//! std::fs::write(&file, "{\"text\": \"a review\", \"stars\": 5}\n").unwrap();
//! assert_eq!(DataFormat::of(&file), DataFormat::JsonLines);
//! assert_eq!(read_texts(&file).unwrap(), vec!["a review".to_string()]);
//! ```

pub mod allocation;
pub mod backend;
pub mod blocks;
pub mod config;
pub mod corpus_stats;
pub mod curves;
pub mod data;
pub mod distill;
pub mod dp_train;
pub mod embedded;
mod error;
pub mod eval;
pub mod fingerprint;
pub mod generation;
pub mod histogram;
pub mod on_policy;
pub mod pipeline;
/// What each stage of a run depends on (`run.json`), checked before a rerun reuses an output:
/// part of the pipeline, re-exported at the crate root where it always was.
pub use pipeline::identity;
pub mod prepare;
pub mod progress;
pub mod public_corpus;
pub mod records;
pub mod report;
pub mod run_dir;
pub mod split;
pub mod teacher_check;

pub use error::{DistilDpError, Mismatch};
