//! What was spent: DP events, composable and JSON-round-trippable.
//!
//! # Guarantee and neighbouring relation
//! Every event except [`DpEvent::DiscreteGaussian`] describes a Gaussian mechanism applied to a sum of per-record contributions
//! each clipped to L2 norm C, with noise N(0, σ²C²) per coordinate (σ is the *noise
//! multiplier*). Datasets are neighbours when one is the other with **one record added or
//! removed** (add/remove-one relation). [`DpEvent::PoissonSampledGaussian`] is that mechanism
//! run on a **Poisson** sample: every record is included independently with probability q
//! (the batch size is random, as DP-SGD's analysis requires; fixed-size shuffled batches are
//! *not* covered). All accountants bound the maximum over both directions (add and remove)
//! of the privacy loss.
//!
//! [`DpEvent::DiscreteGaussian`] is the one non-DP-SGD event: the exact discrete Gaussian
//! N_Z(0, σ²) added to each coordinate of an **integer-valued** query whose value changes by
//! at most 1, in at most one coordinate, between add/remove-one neighbours (a histogram of
//! counts, one record per count). Its privacy loss is then exactly that of the
//! one-dimensional discrete Gaussian with sensitivity 1 (Canonne, Kamath & Steinke 2020).

use serde::{Deserialize, Serialize};

use crate::discrete_gaussian::DiscreteGaussian;
use crate::error::{AccountingError, Result};
use crate::mechanism::{Mechanism, SubsampledGaussian};
use crate::validate;

/// A differentially private event: one mechanism, or a composition of events.
///
/// ```
/// use dp_accounting::DpEvent;
/// let step = DpEvent::poisson_sampled_gaussian(0.01, 1.1)?;
/// let training = step.self_composed(10_000)?;
/// let json = serde_json::to_string(&training)?;
/// assert_eq!(serde_json::from_str::<DpEvent>(&json)?, training);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DpEvent {
    /// The Gaussian mechanism on the whole dataset (sensitivity 1, noise multiplier σ).
    Gaussian {
        /// σ: noise standard deviation divided by the L2 sensitivity.
        noise_multiplier: f64,
    },
    /// The Gaussian mechanism on a Poisson sample of rate q (one DP-SGD step).
    PoissonSampledGaussian {
        /// q ∈ (0, 1]: the probability that each record joins the sample.
        sample_rate: f64,
        /// σ: noise standard deviation divided by the L2 sensitivity.
        noise_multiplier: f64,
    },
    /// The exact discrete Gaussian N_Z(0, σ²) added to each coordinate of an integer-valued
    /// query whose value changes by at most 1 in at most one coordinate between add/remove-one
    /// neighbours (a histogram of counts). The privacy loss is then exactly that of the
    /// one-dimensional discrete Gaussian with sensitivity 1: at an output x of N_Z(0, σ²)
    /// against N_Z(1, σ²) it is (1 − 2x)/(2σ²), and the pair is symmetric (add = remove).
    DiscreteGaussian {
        /// σ > 0: the scale of the noise, in units of the query's sensitivity (1).
        sigma: f64,
    },
    /// `count` independent runs of the same event (e.g. the steps of one training phase).
    SelfComposed {
        /// The repeated event.
        event: Box<DpEvent>,
        /// How many times it ran (≥ 1).
        count: u64,
    },
    /// A sequence of possibly different events (e.g. phases with different σ or q).
    Composed {
        /// The events, in any order (composition is commutative).
        events: Vec<DpEvent>,
    },
}

impl DpEvent {
    /// The Gaussian mechanism with noise multiplier σ > 0.
    pub fn gaussian(noise_multiplier: f64) -> Result<Self> {
        validate::noise_multiplier(noise_multiplier)?;
        Ok(Self::Gaussian { noise_multiplier })
    }

    /// One Poisson-subsampled Gaussian step: q ∈ (0, 1], σ > 0.
    pub fn poisson_sampled_gaussian(sample_rate: f64, noise_multiplier: f64) -> Result<Self> {
        validate::sample_rate(sample_rate)?;
        validate::noise_multiplier(noise_multiplier)?;
        Ok(Self::PoissonSampledGaussian {
            sample_rate,
            noise_multiplier,
        })
    }

    /// The discrete Gaussian mechanism N_Z(0, σ²) on a sensitivity-1 integer query (e.g. a
    /// histogram of counts); σ finite and > 0. See [`DpEvent::DiscreteGaussian`].
    pub fn discrete_gaussian(sigma: f64) -> Result<Self> {
        validate::sigma(sigma)?;
        Ok(Self::DiscreteGaussian { sigma })
    }

    /// This event repeated `count ≥ 1` times.
    pub fn self_composed(self, count: u64) -> Result<Self> {
        validate::steps(count)?;
        Ok(Self::SelfComposed {
            event: Box::new(self),
            count,
        })
    }

    /// The composition of several events (an empty list spends nothing).
    pub fn composed(events: Vec<DpEvent>) -> Self {
        Self::Composed { events }
    }

    /// The event as a validated list of distinct mechanisms with their repetition counts
    /// (identical mechanisms are merged). Empty when the event spends nothing.
    pub fn mechanisms(&self) -> Result<Vec<(Mechanism, u64)>> {
        let mut out: Vec<(Mechanism, u64)> = Vec::new();
        self.collect(1, &mut out)?;
        Ok(out)
    }

    fn collect(&self, times: u64, out: &mut Vec<(Mechanism, u64)>) -> Result<()> {
        let push = |m: Mechanism, out: &mut Vec<(Mechanism, u64)>| {
            if let Some(slot) = out.iter_mut().find(|(n, _)| *n == m) {
                slot.1 = slot.1.checked_add(times).ok_or_else(too_many)?;
            } else {
                out.push((m, times));
            }
            Ok(())
        };
        match self {
            Self::Gaussian { noise_multiplier } => push(
                Mechanism::SubsampledGaussian(SubsampledGaussian::new(1.0, *noise_multiplier)?),
                out,
            ),
            Self::PoissonSampledGaussian {
                sample_rate,
                noise_multiplier,
            } => push(
                Mechanism::SubsampledGaussian(SubsampledGaussian::new(
                    *sample_rate,
                    *noise_multiplier,
                )?),
                out,
            ),
            Self::DiscreteGaussian { sigma } => push(
                Mechanism::DiscreteGaussian(DiscreteGaussian::new(*sigma)?),
                out,
            ),
            Self::SelfComposed { event, count } => {
                validate::steps(*count)?;
                let t = times.checked_mul(*count).ok_or_else(too_many)?;
                event.collect(t, out)
            }
            Self::Composed { events } => events.iter().try_for_each(|e| e.collect(times, out)),
        }
    }
}

fn too_many() -> AccountingError {
    AccountingError::InvalidParameter {
        field: "steps",
        value: "a total above 2^64".into(),
        expected: "a total number of compositions that fits in u64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_events_flatten_and_merge() {
        let a = DpEvent::poisson_sampled_gaussian(0.01, 1.0).unwrap();
        let b = DpEvent::gaussian(2.0).unwrap();
        let e = DpEvent::composed(vec![
            a.clone().self_composed(10).unwrap(),
            b.self_composed(3).unwrap(),
            DpEvent::composed(vec![a]).self_composed(5).unwrap(),
        ])
        .self_composed(2)
        .unwrap();
        let m = e.mechanisms().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].1, 30);
        assert_eq!(
            m[1],
            (
                Mechanism::SubsampledGaussian(SubsampledGaussian::new(1.0, 2.0).unwrap()),
                6
            )
        );
    }

    #[test]
    fn invalid_events_are_rejected_even_when_deserialised() {
        let e: DpEvent = serde_json::from_str(
            r#"{"type":"poisson_sampled_gaussian","sample_rate":1.5,"noise_multiplier":1.0}"#,
        )
        .unwrap();
        assert!(matches!(
            e.mechanisms(),
            Err(AccountingError::InvalidParameter {
                field: "sample_rate",
                ..
            })
        ));
        assert!(DpEvent::gaussian(0.0).is_err());
        assert!(DpEvent::gaussian(f64::NAN).is_err());
        assert!(DpEvent::gaussian(1.0).unwrap().self_composed(0).is_err());
        let huge = DpEvent::gaussian(1.0)
            .unwrap()
            .self_composed(u64::MAX)
            .unwrap()
            .self_composed(2)
            .unwrap();
        assert!(huge.mechanisms().is_err());
    }

    #[test]
    fn discrete_gaussian_round_trips_and_validates() {
        let e = DpEvent::discrete_gaussian(3.5).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"type":"discrete_gaussian","sigma":3.5}"#);
        assert_eq!(serde_json::from_str::<DpEvent>(&json).unwrap(), e);
        let m = DpEvent::composed(vec![e.clone(), e]).mechanisms().unwrap();
        assert_eq!(
            m,
            vec![(
                Mechanism::DiscreteGaussian(DiscreteGaussian::new(3.5).unwrap()),
                2
            )]
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                DpEvent::discrete_gaussian(bad),
                Err(AccountingError::InvalidParameter { field: "sigma", .. })
            ));
        }
        let de: DpEvent =
            serde_json::from_str(r#"{"type":"discrete_gaussian","sigma":-2}"#).unwrap();
        assert!(de.mechanisms().is_err());
    }

    #[test]
    fn unknown_fields_are_an_error() {
        let r: std::result::Result<DpEvent, _> =
            serde_json::from_str(r#"{"type":"gaussian","noise_multiplier":1.0,"sigma":2}"#);
        assert!(r.is_err());
    }
}
