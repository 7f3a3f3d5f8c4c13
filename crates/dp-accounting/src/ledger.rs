//! The privacy ledger: every DP release a run made, serialisable for checkpoints and
//! reports, and resumable.

use serde::{Deserialize, Serialize};

use crate::accountant::{Accountant, Bound};
use crate::error::{AccountingError, Result};
use crate::event::DpEvent;
use crate::validate;

/// The current ledger JSON format version.
pub const LEDGER_VERSION: u32 = 1;

/// One line of the ledger: what was released, under a label saying what it was for
/// (e.g. `teacher-dp-sgd`, `label-histogram`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// What the release was for.
    pub label: String,
    /// The DP event it spent.
    pub event: DpEvent,
}

/// Every DP event a run spent, in order.
///
/// Consecutive DP-SGD steps with the same label, σ and q are kept as one
/// [`DpEvent::SelfComposed`] entry, so a ledger stays small after millions of steps. The
/// total spent is the composition of all entries; ask any [`Accountant`] for its ε.
/// A ledger saved with [`PrivacyLedger::to_json`] and reloaded with
/// [`PrivacyLedger::from_json`] continues exactly where it stopped.
///
/// ```
/// use dp_accounting::{Accountant, PrivacyLedger, PrvAccountant};
/// let mut ledger = PrivacyLedger::new();
/// ledger.record_steps("teacher", 0.01, 1.0, 500)?;
/// ledger.record_steps("teacher", 0.01, 1.0, 500)?; // merged: 1000 steps
/// let saved = ledger.to_json()?;
/// let mut resumed = PrivacyLedger::from_json(&saved)?;
/// resumed.record_steps("teacher", 0.01, 1.0, 1)?;
/// assert_eq!(resumed.entries().len(), 1);
/// let eps = resumed.epsilon(&PrvAccountant::default(), 1e-5)?.upper;
/// assert!(eps > 0.0);
/// # Ok::<(), dp_accounting::AccountingError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyLedger {
    version: u32,
    entries: Vec<LedgerEntry>,
}

impl PrivacyLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self {
            version: LEDGER_VERSION,
            entries: Vec::new(),
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// Records any event (validated first; an invalid event leaves the ledger unchanged).
    pub fn record(&mut self, label: &str, event: DpEvent) -> Result<()> {
        event.mechanisms()?;
        self.entries.push(LedgerEntry {
            label: label.to_string(),
            event,
        });
        Ok(())
    }

    /// Records `steps` Poisson-subsampled Gaussian steps, merged into the last entry when it
    /// has the same label, q and σ.
    pub fn record_steps(
        &mut self,
        label: &str,
        sample_rate: f64,
        noise_multiplier: f64,
        steps: u64,
    ) -> Result<()> {
        validate::steps(steps)?;
        let step = DpEvent::poisson_sampled_gaussian(sample_rate, noise_multiplier)?;
        if let Some(last) = self.entries.last_mut()
            && last.label == label
        {
            let merged = match &last.event {
                DpEvent::SelfComposed { event, count } if **event == step => {
                    Some(count.checked_add(steps))
                }
                e if *e == step => Some(1u64.checked_add(steps)),
                _ => None,
            };
            if let Some(total) = merged {
                let count = total.ok_or(AccountingError::InvalidParameter {
                    field: "steps",
                    value: "a total above 2^64".into(),
                    expected: "a total number of steps that fits in u64",
                })?;
                last.event = step.self_composed(count)?;
                return Ok(());
            }
        }
        let event = if steps == 1 {
            step
        } else {
            step.self_composed(steps)?
        };
        self.record(label, event)
    }

    /// The composition of everything recorded.
    pub fn event(&self) -> DpEvent {
        DpEvent::composed(self.entries.iter().map(|e| e.event.clone()).collect())
    }

    /// The ε spent so far at δ, according to `accountant`.
    pub fn epsilon<A: Accountant + ?Sized>(&self, accountant: &A, delta: f64) -> Result<Bound> {
        accountant.epsilon(&self.event(), delta)
    }

    /// Whether spending `next` as well would keep the upper bound on ε within `budget` at δ:
    /// ask before releasing, so a run never steps past its budget.
    pub fn fits_budget<A: Accountant + ?Sized>(
        &self,
        accountant: &A,
        next: &DpEvent,
        budget: f64,
        delta: f64,
    ) -> Result<bool> {
        validate::target_epsilon(budget)?;
        let mut all = self
            .entries
            .iter()
            .map(|e| e.event.clone())
            .collect::<Vec<_>>();
        all.push(next.clone());
        Ok(accountant.epsilon(&DpEvent::composed(all), delta)?.upper <= budget)
    }

    /// The ledger as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Reads a ledger written by [`PrivacyLedger::to_json`], validating every event.
    pub fn from_json(json: &str) -> Result<Self> {
        let ledger: Self = serde_json::from_str(json)?;
        if ledger.version != LEDGER_VERSION {
            return Err(AccountingError::Json(format!(
                "unsupported ledger version {} (this build reads version {LEDGER_VERSION})",
                ledger.version
            )));
        }
        for e in &ledger.entries {
            e.event.mechanisms()?;
        }
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RdpAccountant;

    #[test]
    fn steps_merge_only_with_identical_parameters_and_label() {
        let mut l = PrivacyLedger::new();
        l.record_steps("a", 0.01, 1.0, 1).unwrap();
        l.record_steps("a", 0.01, 1.0, 9).unwrap();
        l.record_steps("a", 0.02, 1.0, 5).unwrap();
        l.record_steps("b", 0.02, 1.0, 5).unwrap();
        assert_eq!(l.entries().len(), 3);
        let m = l.entries()[0].event.mechanisms().unwrap();
        assert_eq!(m[0].1, 10);
    }

    #[test]
    fn json_round_trip_preserves_the_spend() {
        let mut l = PrivacyLedger::new();
        l.record_steps("teacher", 0.01, 1.1, 1234).unwrap();
        l.record("histogram", DpEvent::gaussian(10.0).unwrap())
            .unwrap();
        let back = PrivacyLedger::from_json(&l.to_json().unwrap()).unwrap();
        assert_eq!(back, l);
        let acc = RdpAccountant::default();
        assert_eq!(
            back.epsilon(&acc, 1e-5).unwrap(),
            l.epsilon(&acc, 1e-5).unwrap()
        );
    }

    #[test]
    fn invalid_ledgers_are_rejected() {
        assert!(PrivacyLedger::from_json("{").is_err());
        assert!(PrivacyLedger::from_json(r#"{"version":99,"entries":[]}"#).is_err());
        let bad = r#"{"version":1,"entries":[{"label":"x","event":{"type":"gaussian","noise_multiplier":-1}}]}"#;
        assert!(matches!(
            PrivacyLedger::from_json(bad),
            Err(AccountingError::InvalidParameter {
                field: "noise_multiplier",
                ..
            })
        ));
        let mut l = PrivacyLedger::new();
        assert!(l.record_steps("x", 0.0, 1.0, 1).is_err());
        assert!(l.entries().is_empty());
    }

    #[test]
    fn budget_check() {
        let mut l = PrivacyLedger::new();
        l.record_steps("t", 0.01, 1.0, 1000).unwrap();
        let acc = RdpAccountant::default();
        let step = DpEvent::poisson_sampled_gaussian(0.01, 1.0).unwrap();
        let spent = l.epsilon(&acc, 1e-5).unwrap().upper;
        assert!(l.fits_budget(&acc, &step, spent * 1.5, 1e-5).unwrap());
        assert!(!l.fits_budget(&acc, &step, spent, 1e-5).unwrap());
    }
}
