//! # dp-accounting
//!
//! Privacy accountants for differentially private training: given what a run released
//! (Gaussian mechanisms on Poisson samples, composed over many steps and phases), they
//! answer "what (ε, δ) did I spend?", and calibrate "which noise multiplier reaches ε?".
//! No ML dependency: embed it in any DP project. The exact discrete Gaussian of a DP
//! histogram ([`DpEvent::discrete_gaussian`]) composes with the DP-SGD steps in every
//! accountant.
//!
//! ## What is guaranteed, and for which relation
//! Datasets are neighbours when one is the other with **one record added or removed**.
//! Each step applies the Gaussian mechanism with L2 sensitivity 1 (clipping norm C, noise
//! N(0, σ²C²)) to a **Poisson** sample, each record included independently with
//! probability q. Every accountant bounds the larger of the two directions (add, remove)
//! and returns an **upper bound** on ε (or δ) as [`Bound::upper`]; none returns a number
//! it cannot stand behind: a request outside what it can bound is an
//! [`AccountingError::CannotBound`], bad input an [`AccountingError::InvalidParameter`].
//!
//! | accountant | method | answer |
//! |---|---|---|
//! | [`RdpAccountant`] | Rényi DP (Mironov et al. 2019) + Balle et al. 2020 conversion | upper bound |
//! | [`PrvAccountant`] | privacy random variables, FFT (Gopi et al. 2021) | lower ≤ estimate ≤ upper |
//! | [`PldAccountant`] | connect-the-dots PLD, FFT (Doroshenko et al. 2022) | upper bound |
//!
//! ## Example
//! ```
//! use dp_accounting::{
//!     Accountant, DpEvent, PrivacyLedger, PrvAccountant, RdpAccountant,
//!     calibrate_noise_multiplier,
//! };
//!
//! // 10 000 DP-SGD steps at sampling rate 1% and noise multiplier 1.0.
//! let training = DpEvent::poisson_sampled_gaussian(0.01, 1.0)?.self_composed(10_000)?;
//! let rdp = RdpAccountant::default().epsilon(&training, 1e-5)?;
//! let prv = PrvAccountant::default().epsilon(&training, 1e-5)?;
//! assert!(prv.upper < rdp.upper); // PRV is tighter
//!
//! // Which σ gives ε = 2 at δ = 1e-5?
//! let sigma = calibrate_noise_multiplier(&PrvAccountant::default(), 2.0, 1e-5, 0.01, 10_000)?;
//! assert!(sigma.epsilon <= 2.0);
//!
//! // A ledger records what a run spent and survives checkpoints.
//! let mut ledger = PrivacyLedger::new();
//! ledger.record_steps("teacher", 0.01, sigma.noise_multiplier, 10_000)?;
//! let resumed = PrivacyLedger::from_json(&ledger.to_json()?)?;
//! assert!(resumed.epsilon(&PrvAccountant::default(), 1e-5)?.upper <= 2.0);
//! # Ok::<(), dp_accounting::AccountingError>(())
//! ```

mod accountant;
mod buffers;
mod calibrate;
mod compose;
mod curve;
mod discrete;
mod discrete_gaussian;
mod error;
mod event;
mod gaussian;
mod ledger;
mod mechanism;
mod pld;
mod prv;
mod rdp;
mod special;
mod validate;

pub use accountant::{Accountant, AccountantKind, AnyAccountant, Bound};
pub use calibrate::{
    NoiseCalibration, StepsCalibration, calibrate_noise, calibrate_noise_multiplier, max_steps,
};
pub use curve::Direction;
pub use discrete_gaussian::DiscreteGaussian;
pub use error::{AccountingError, Result};
pub use event::DpEvent;
pub use ledger::{LEDGER_VERSION, LedgerEntry, PrivacyLedger};
pub use mechanism::{Mechanism, SubsampledGaussian};
pub use pld::PldAccountant;
pub use prv::PrvAccountant;
pub use rdp::{RdpAccountant, default_orders};
