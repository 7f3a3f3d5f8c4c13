//! The run's inputs: the private data (`[data]`), the budget (`[privacy]`) and the tokenizer
//! (`[tokenizer]`).

use std::path::PathBuf;

use dp_accounting::AccountantKind;
use serde::{Deserialize, Serialize};
use synth_gen::ControlCodeFormat;

use super::{MAX_VOCAB, bad, finite_positive};
use crate::error::DistilDpError;
use crate::records::RecordFormat;
use crate::split::SplitConfig;

/// Where the private records come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A JSONL, CSV, text or `fortunes` file or directory; unset (default): the embedded
    /// labelled corpus.
    pub path: Option<PathBuf>,
    /// Layout (default `auto`: by extension, a directory is `fortunes`).
    pub format: RecordFormat,
    /// Label columns making the control code, in order; empty (default): every column but
    /// `text`.
    pub label_columns: Vec<String>,
    /// Train / validation / test fractions and the shuffle's seed (default 0.8 / 0.1 / 0.1,
    /// seed 0).
    pub split: SplitConfig,
    /// Use at most this many records (each split shrunk in proportion after the seeded
    /// shuffle); unset: all.
    pub max_records: Option<usize>,
    /// The public domain of each label column (`{ "Review Stars" = ["1.0", "2.0"] }`): the
    /// control codes are every combination, in `label_columns` order. Empty (default): the
    /// combinations present in the private training split — a disclosure of which
    /// combinations occur, not covered by the DP guarantee (the report says so). The
    /// embedded corpus's domain is known and used automatically.
    pub label_values: std::collections::BTreeMap<String, Vec<String>>,
    /// How labels become the control code (`[data.control_code]`: `separator`, `terminator`,
    /// `name_separator`, `names`). Default: the paper's `Name: value\tName: value\n\n`, a
    /// value that already carries its name (Yue et al.'s `label1` = `Review Stars: 5.0`)
    /// written as it is (`names = "auto"`; `"always"` or `"never"` to force).
    pub control_code: ControlCodeFormat,
}

impl DataConfig {
    /// The split's fractions and a positive `max_records`.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        self.split.validate()?;
        if self.max_records == Some(0) {
            return Err(bad("data.max_records", 0, "at least 1 (or unset: all)"));
        }
        if self.control_code.terminator.is_empty() {
            return Err(bad(
                "data.control_code.terminator",
                "\"\"",
                "a non-empty string that ends the code before the text (default \"\\n\\n\")",
            ));
        }
        Ok(())
    }
}

/// The run's privacy budget: the teacher's DP-SGD and the label histogram together spend
/// at most (ε, δ) under add/remove-one-record adjacency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Total ε > 0 (default 2, the paper's headline).
    pub epsilon: f64,
    /// δ in (0, 1); unset (default): 1 / (training records).
    pub delta: Option<f64>,
    /// Accountant `pld` (default), `prv` or `rdp`.
    pub accountant: AccountantKind,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            epsilon: 2.0,
            delta: None,
            accountant: AccountantKind::Pld,
        }
    }
}

impl PrivacyConfig {
    /// A finite ε > 0 and, when given, δ in (0, 1).
    pub fn validate(&self) -> Result<(), DistilDpError> {
        finite_positive("privacy.epsilon", self.epsilon)?;
        if let Some(d) = self.delta
            && !(d > 0.0 && d < 1.0)
        {
            return Err(bad("privacy.delta", d, "a number in (0, 1)"));
        }
        Ok(())
    }
}

/// The byte-level BPE tokenizer, trained on public text only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerConfig {
    /// A Hugging Face `tokenizer.json` to use as is; unset (default): train one on the
    /// public corpus.
    pub path: Option<PathBuf>,
    /// Vocabulary size when training (default 2048).
    pub vocab_size: usize,
    /// Public text files to train it on; empty (default): the embedded public corpus.
    pub public_corpus: Vec<PathBuf>,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            path: None,
            vocab_size: 2048,
            public_corpus: Vec::new(),
        }
    }
}

impl TokenizerConfig {
    /// A vocabulary of 260 to 2^20 tokens.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        if self.vocab_size < 260 {
            return Err(bad(
                "tokenizer.vocab_size",
                self.vocab_size,
                "at least 260 (256 bytes and the special tokens)",
            ));
        }
        if self.vocab_size > MAX_VOCAB {
            return Err(bad(
                "tokenizer.vocab_size",
                self.vocab_size,
                "at most 1048576",
            ));
        }
        Ok(())
    }
}
