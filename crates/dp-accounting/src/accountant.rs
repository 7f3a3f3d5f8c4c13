//! The interface every accountant implements, and a serialisable choice among them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{AccountingError, Result};
use crate::event::DpEvent;
use crate::{PldAccountant, PrvAccountant, RdpAccountant};

/// An accountant's answer: a guaranteed upper bound and, for accountants that have them, an
/// estimate and a lower bound of the exact value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// The value the accountant guarantees: the true ε (or δ) is at most this.
    pub upper: f64,
    /// The accountant's best estimate of the exact value, where it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub estimate: Option<f64>,
    /// A lower bound on the exact value, where the accountant has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lower: Option<f64>,
}

impl Bound {
    /// A bound with only the guaranteed upper value.
    pub fn upper_only(upper: f64) -> Self {
        Self {
            upper,
            estimate: None,
            lower: None,
        }
    }
}

/// A privacy accountant: answers ε(δ) and δ(ε) for a [`DpEvent`] under the add/remove-one
/// neighbouring relation with Poisson sampling.
pub trait Accountant {
    /// A short name: `rdp`, `prv` or `pld`.
    fn name(&self) -> &'static str;

    /// The ε at which `event` is (ε, δ)-DP. `delta` ∈ (0, 1).
    fn epsilon(&self, event: &DpEvent, delta: f64) -> Result<Bound>;

    /// The δ at which `event` is (ε, δ)-DP. `epsilon` ≥ 0.
    fn delta(&self, event: &DpEvent, epsilon: f64) -> Result<Bound>;
}

/// Which accountant, by name (`rdp`, `prv`, `pld`), for configs and command lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccountantKind {
    /// Rényi DP ([`RdpAccountant`]).
    Rdp,
    /// Privacy random variables ([`PrvAccountant`]): tight, with lower and upper bounds.
    Prv,
    /// Privacy loss distributions ([`PldAccountant`]), the default: as tight as PRV at its
    /// default settings and the fastest for long runs.
    #[default]
    Pld,
}

impl AccountantKind {
    /// The accountant of this kind with its default settings.
    pub fn build(self) -> AnyAccountant {
        match self {
            Self::Rdp => AnyAccountant::Rdp(RdpAccountant::default()),
            Self::Prv => AnyAccountant::Prv(PrvAccountant::default()),
            Self::Pld => AnyAccountant::Pld(PldAccountant::default()),
        }
    }
}

impl fmt::Display for AccountantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rdp => "rdp",
            Self::Prv => "prv",
            Self::Pld => "pld",
        })
    }
}

impl FromStr for AccountantKind {
    type Err = AccountingError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "rdp" => Ok(Self::Rdp),
            "prv" => Ok(Self::Prv),
            "pld" => Ok(Self::Pld),
            _ => Err(AccountingError::InvalidParameter {
                field: "accountant",
                value: s.to_string(),
                expected: "one of rdp, prv, pld",
            }),
        }
    }
}

/// Any of the accountants, with its settings: serialisable, so a config file or a
/// checkpoint can say exactly which accountant (and which precision) a run used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnyAccountant {
    /// Rényi DP.
    Rdp(RdpAccountant),
    /// Privacy random variables.
    Prv(PrvAccountant),
    /// Privacy loss distributions.
    Pld(PldAccountant),
}

impl AnyAccountant {
    /// Which kind this is.
    pub fn kind(&self) -> AccountantKind {
        match self {
            Self::Rdp(_) => AccountantKind::Rdp,
            Self::Prv(_) => AccountantKind::Prv,
            Self::Pld(_) => AccountantKind::Pld,
        }
    }

    fn inner(&self) -> &dyn Accountant {
        match self {
            Self::Rdp(a) => a,
            Self::Prv(a) => a,
            Self::Pld(a) => a,
        }
    }
}

impl Accountant for AnyAccountant {
    fn name(&self) -> &'static str {
        self.inner().name()
    }

    fn epsilon(&self, event: &DpEvent, delta: f64) -> Result<Bound> {
        self.inner().epsilon(event, delta)
    }

    fn delta(&self, event: &DpEvent, epsilon: f64) -> Result<Bound> {
        self.inner().delta(event, epsilon)
    }
}
