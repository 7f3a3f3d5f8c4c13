//! Train / validation / test splits, decided per record by a keyed hash of its content: a
//! record's part depends on that record (and the public seed) only, so adding or removing
//! one record moves no other record between the parts.

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::DistilDpError;

/// The fractions of the records held out for validation and test (the rest trains).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Fraction for validation, in [0, 1) (default 0.1).
    #[serde(default = "d_tenth")]
    pub validation: f64,
    /// Fraction for test, in (0, 1) (default 0.1).
    #[serde(default = "d_tenth")]
    pub test: f64,
    /// Key of the split's hash (default 0). The split is a public choice, not a secret.
    #[serde(default)]
    pub seed: u64,
}

fn d_tenth() -> f64 {
    0.1
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            validation: d_tenth(),
            test: d_tenth(),
            seed: 0,
        }
    }
}

/// The three parts of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits<T> {
    /// Training records (the private data DP-SGD sees).
    pub train: Vec<T>,
    /// Validation records.
    pub validation: Vec<T>,
    /// Test records.
    pub test: Vec<T>,
}

impl SplitConfig {
    /// Checks the fractions.
    pub fn validate(&self) -> Result<(), DistilDpError> {
        let bad = |field, value: f64, expected| DistilDpError::InvalidArgument {
            field,
            value: value.to_string(),
            expected,
        };
        if !(0.0..1.0).contains(&self.validation) {
            return Err(bad(
                "split.validation",
                self.validation,
                "a number in [0, 1)",
            ));
        }
        if !(self.test > 0.0 && self.test < 1.0) {
            return Err(bad("split.test", self.test, "a number in (0, 1)"));
        }
        if self.validation + self.test >= 1.0 {
            return Err(bad(
                "split.validation + split.test",
                self.validation + self.test,
                "less than 1 (records must remain for training)",
            ));
        }
        Ok(())
    }

    /// Splits `records` by a keyed hash of each one's content ([`SplitKey`]): `h =
    /// SHA-256("distil-dp split v1" ‖ seed ‖ content)` read as a number `u` in [0, 1) goes to
    /// test when `u < test`, to validation when `u < test + validation`, else to training.
    /// Each part is ordered by `h` (a seeded pseudo-random order; equal records keep their
    /// file order), so taking a prefix of each part keeps a hash-chosen subset. The parts'
    /// sizes are therefore binomial around the fractions, not rounded to them; the test and
    /// training parts must each hold at least one record.
    pub fn split<T: SplitKey>(&self, records: Vec<T>) -> Result<Splits<T>, DistilDpError> {
        self.validate()?;
        let n = records.len();
        let test_bound = self.test;
        let validation_bound = self.test + self.validation;
        let mut keyed: Vec<(u64, usize, T)> = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| (self.key(&r), i, r))
            .collect();
        keyed.sort_by_key(|&(h, i, _)| (h, i));
        let mut splits = Splits {
            train: Vec::new(),
            validation: Vec::new(),
            test: Vec::new(),
        };
        for (h, _, r) in keyed {
            let u = h as f64 / 2f64.powi(64);
            if u < test_bound {
                splits.test.push(r);
            } else if u < validation_bound {
                splits.validation.push(r);
            } else {
                splits.train.push(r);
            }
        }
        if splits.test.is_empty() || splits.train.is_empty() {
            return Err(DistilDpError::InvalidArgument {
                field: "split",
                value: format!(
                    "{n} records with test {} and validation {} ({} fell in test, {} in training)",
                    self.test,
                    self.validation,
                    splits.test.len(),
                    splits.train.len()
                ),
                expected: "enough records for a non-empty test and training split",
            });
        }
        Ok(splits)
    }

    /// The record's 64-bit split hash under this config's seed.
    fn key<T: SplitKey>(&self, record: &T) -> u64 {
        let mut content = Vec::new();
        record.split_bytes(&mut content);
        let mut hash = Sha256::new();
        hash.update(b"distil-dp split v1");
        hash.update(self.seed.to_le_bytes());
        hash.update(&content);
        let digest = hash.finalize();
        u64::from_be_bytes(digest[..8].try_into().expect("32-byte digest"))
    }
}

/// The content a record is split (and fingerprinted) by: an unambiguous byte encoding (every
/// variable-length piece prefixed by its length).
pub trait SplitKey {
    /// Appends this record's encoding to `out`.
    fn split_bytes(&self, out: &mut Vec<u8>);
}

/// Appends `bytes` prefixed by its length (8 bytes, little-endian).
pub(crate) fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl SplitKey for crate::records::Record {
    fn split_bytes(&self, out: &mut Vec<u8>) {
        push_prefixed(out, self.text.as_bytes());
        out.extend_from_slice(&(self.labels.len() as u64).to_le_bytes());
        for (column, value) in &self.labels {
            push_prefixed(out, column.as_bytes());
            push_prefixed(out, value.as_bytes());
        }
    }
}

impl SplitKey for String {
    fn split_bytes(&self, out: &mut Vec<u8>) {
        push_prefixed(out, self.as_bytes());
    }
}

macro_rules! int_split_key {
    ($($t:ty),*) => {$(
        impl SplitKey for $t {
            fn split_bytes(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
int_split_key!(u32, u64, usize, i64);

/// `0..n` shuffled by Fisher–Yates with unbiased indices (rejection sampling) from `rng`.
pub(crate) fn permutation(n: usize, rng: &mut ChaCha20Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let bound = (i + 1) as u64;
        let zone = u64::MAX - u64::MAX % bound;
        let j = loop {
            let x = rng.next_u64();
            if x < zone {
                break (x % bound) as usize;
            }
        };
        order.swap(i, j);
    }
    order
}
