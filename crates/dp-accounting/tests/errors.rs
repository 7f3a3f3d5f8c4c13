//! Bad input is a typed error naming the field, from every entry point and accountant,
//! never a panic or a number.

use dp_accounting::{
    Accountant, AccountantKind, AccountingError, DpEvent, PldAccountant, PrvAccountant,
    RdpAccountant, calibrate_noise_multiplier, max_steps,
};

fn field_of(e: AccountingError) -> &'static str {
    match e {
        AccountingError::InvalidParameter { field, .. } => field,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

const BAD_SIGMAS: [f64; 5] = [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
const BAD_RATES: [f64; 5] = [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY];
const BAD_DELTAS: [f64; 6] = [0.0, 1.0, -1e-5, 2.0, f64::NAN, f64::INFINITY];

#[test]
fn events_reject_bad_sigma_rate_and_steps() {
    for s in BAD_SIGMAS {
        assert_eq!(
            field_of(DpEvent::gaussian(s).unwrap_err()),
            "noise_multiplier"
        );
        assert_eq!(
            field_of(DpEvent::poisson_sampled_gaussian(0.1, s).unwrap_err()),
            "noise_multiplier"
        );
    }
    for q in BAD_RATES {
        assert_eq!(
            field_of(DpEvent::poisson_sampled_gaussian(q, 1.0).unwrap_err()),
            "sample_rate"
        );
    }
    let e = DpEvent::gaussian(1.0).unwrap();
    assert_eq!(field_of(e.self_composed(0).unwrap_err()), "steps");
}

#[test]
fn every_accountant_rejects_bad_delta_and_epsilon() {
    let e = DpEvent::poisson_sampled_gaussian(0.01, 1.0)
        .unwrap()
        .self_composed(10)
        .unwrap();
    for kind in [
        AccountantKind::Rdp,
        AccountantKind::Prv,
        AccountantKind::Pld,
    ] {
        let acc = kind.build();
        for d in BAD_DELTAS {
            assert_eq!(
                field_of(acc.epsilon(&e, d).unwrap_err()),
                "delta",
                "{kind} {d}"
            );
        }
        for eps in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                field_of(acc.delta(&e, eps).unwrap_err()),
                "epsilon",
                "{kind} {eps}"
            );
        }
    }
}

#[test]
fn invalid_deserialised_events_are_rejected_by_every_accountant() {
    let bad: DpEvent = serde_json::from_str(
        r#"{"type":"self_composed","count":0,"event":{"type":"gaussian","noise_multiplier":1.0}}"#,
    )
    .unwrap();
    for kind in [
        AccountantKind::Rdp,
        AccountantKind::Prv,
        AccountantKind::Pld,
    ] {
        assert_eq!(
            field_of(kind.build().epsilon(&bad, 1e-5).unwrap_err()),
            "steps"
        );
    }
}

#[test]
fn accountant_settings_are_validated() {
    let e = DpEvent::poisson_sampled_gaussian(0.01, 1.0).unwrap();
    for bad in [0.0, -1.0, f64::NAN] {
        let prv = PrvAccountant {
            eps_error: bad,
            ..PrvAccountant::default()
        };
        assert_eq!(field_of(prv.epsilon(&e, 1e-5).unwrap_err()), "eps_error");
        let pld = PldAccountant {
            value_discretization_interval: bad,
            ..PldAccountant::default()
        };
        assert_eq!(
            field_of(pld.epsilon(&e, 1e-5).unwrap_err()),
            "value_discretization_interval"
        );
    }
    let prv = PrvAccountant {
        delta_error: Some(1e-4),
        ..PrvAccountant::default()
    };
    assert_eq!(field_of(prv.epsilon(&e, 1e-5).unwrap_err()), "delta_error");
    let pld = PldAccountant {
        tail_mass_truncation: 0.5,
        ..PldAccountant::default()
    };
    assert_eq!(
        field_of(pld.epsilon(&e, 1e-5).unwrap_err()),
        "tail_mass_truncation"
    );
    assert_eq!(
        field_of(RdpAccountant::with_orders(vec![0.5]).unwrap_err()),
        "order"
    );
    assert_eq!(
        field_of("foo".parse::<AccountantKind>().unwrap_err()),
        "accountant"
    );
}

#[test]
fn calibration_rejects_bad_targets_and_reports_unreachable_ones() {
    let acc = RdpAccountant::default();
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(
            field_of(calibrate_noise_multiplier(&acc, t, 1e-5, 0.01, 100).unwrap_err()),
            "target_epsilon"
        );
    }
    assert_eq!(
        field_of(calibrate_noise_multiplier(&acc, 1.0, 1e-5, 0.0, 100).unwrap_err()),
        "sample_rate"
    );
    assert_eq!(
        field_of(calibrate_noise_multiplier(&acc, 1.0, 1e-5, 0.01, 0).unwrap_err()),
        "steps"
    );
    assert_eq!(
        field_of(calibrate_noise_multiplier(&acc, 1.0, 0.0, 0.01, 10).unwrap_err()),
        "delta"
    );
    // A target that no σ ≤ 10⁴ reaches, and one every σ ≥ 0.01 meets.
    assert!(matches!(
        calibrate_noise_multiplier(&acc, 1e-9, 1e-5, 1.0, 1_000_000),
        Err(AccountingError::Calibration(_))
    ));
    assert!(matches!(
        calibrate_noise_multiplier(&acc, 1e6, 1e-5, 0.001, 1),
        Err(AccountingError::Calibration(_))
    ));
    assert!(matches!(
        max_steps(&acc, 0.3, 1.0, 0.1, 1e-5),
        Err(AccountingError::Calibration(_))
    ));
    assert_eq!(
        field_of(max_steps(&acc, -1.0, 0.1, 1.0, 1e-5).unwrap_err()),
        "noise_multiplier"
    );
}

#[test]
fn requests_beyond_what_an_accountant_can_bound_are_refused_not_answered() {
    let e = DpEvent::poisson_sampled_gaussian(0.01, 1.0)
        .unwrap()
        .self_composed(1000)
        .unwrap();
    // PRV: δ below the transform's floating-point resolution.
    assert!(matches!(
        PrvAccountant::default().epsilon(&e, 1e-13),
        Err(AccountingError::CannotBound {
            accountant: "prv",
            ..
        })
    ));
    // PLD: δ below the tail mass it moved to +∞.
    assert!(matches!(
        PldAccountant::default().epsilon(&e, 1e-16),
        Err(AccountingError::CannotBound {
            accountant: "pld",
            ..
        })
    ));
    // Both still answer at ordinary δ.
    assert!(PrvAccountant::default().epsilon(&e, 1e-8).is_ok());
    assert!(PldAccountant::default().epsilon(&e, 1e-12).is_ok());
}
