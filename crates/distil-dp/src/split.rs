//! Train / validation / test splits with a fixed seed.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

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
    /// Seed of the shuffle (default 0). The split is a public choice, not a secret.
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

    /// Shuffles `records` with the seed (ChaCha20, Fisher–Yates) and cuts them: test first,
    /// then validation, the rest training. Sizes are rounded to the nearest record; the test
    /// and training parts must each hold at least one record.
    pub fn split<T>(&self, records: Vec<T>) -> Result<Splits<T>, DistilDpError> {
        self.validate()?;
        let n = records.len();
        let n_test = (self.test * n as f64).round() as usize;
        let n_val = (self.validation * n as f64).round() as usize;
        if n_test == 0 || n_test + n_val >= n {
            return Err(DistilDpError::InvalidArgument {
                field: "split",
                value: format!(
                    "{n} records with test {} and validation {}",
                    self.test, self.validation
                ),
                expected: "enough records for a non-empty test and training split",
            });
        }
        let order = permutation(n, &mut ChaCha20Rng::seed_from_u64(self.seed));
        let mut slots: Vec<Option<T>> = records.into_iter().map(Some).collect();
        let mut take = |range: std::ops::Range<usize>| -> Vec<T> {
            order[range]
                .iter()
                .map(|&i| slots[i].take().expect("each index once"))
                .collect()
        };
        let test = take(0..n_test);
        let validation = take(n_test..n_test + n_val);
        let train = take(n_test + n_val..n);
        Ok(Splits {
            train,
            validation,
            test,
        })
    }
}

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
