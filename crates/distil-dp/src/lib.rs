//! The DistilDP pipeline's orchestration layer: data files, backends and the `distil-dp`
//! command line. Each stage calls the crate that owns the work; this crate only wires them.
//!
//! Today it evaluates checkpoints ([`eval::evaluate`], `distil-dp eval`), reads labelled
//! private records ([`records`]: JSONL, CSV, text, Debian `fortunes`), splits them with a
//! fixed seed ([`split`]) and parses the pipeline's TOML configuration ([`config`]); the
//! pipeline's stages (issue 6) are being wired on these.
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

pub mod backend;
pub mod blocks;
pub mod config;
pub mod curves;
pub mod data;
pub mod distill;
pub mod dp_train;
pub mod embedded;
mod error;
pub mod eval;
pub mod generation;
pub mod histogram;
pub mod pipeline;
pub mod prepare;
pub mod progress;
pub mod records;
pub mod report;
pub mod run_dir;
pub mod split;

pub use error::DistilDpError;
