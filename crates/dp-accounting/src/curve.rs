//! What the accountants read of a mechanism: its privacy curve in each direction of the
//! add/remove-one neighbouring relation. Both mechanisms (`mechanism.rs`,
//! `discrete_gaussian.rs`) implement [`PrivacyCurve`]; neither imports the other for it.

use serde::{Deserialize, Serialize};

/// One of the two directions of the add/remove-one neighbouring relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The record is removed: the pair (P, μ₀), P the subsampled mixture.
    Remove,
    /// The record is added: the pair (μ₀, P).
    Add,
}

impl Direction {
    /// Both directions, remove first.
    pub const BOTH: [Direction; 2] = [Direction::Remove, Direction::Add];
}

/// A privacy curve the connect-the-dots and PRV discretisations can read.
pub(crate) trait PrivacyCurve: Sync {
    /// δ(ε) of `dir`.
    fn delta_for_epsilon(&self, dir: Direction, eps: f64) -> f64;
    /// A loss range outside which each tail of `dir`'s privacy random variable holds ≤ η.
    fn loss_range(&self, dir: Direction, eta: f64) -> (f64, f64);
}
