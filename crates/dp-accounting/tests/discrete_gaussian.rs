//! The discrete Gaussian (a DP label histogram) against its peers: the exact curve summed
//! with mpmath and Google's dp_accounting PLD, alone and composed with 100 DP-SGD steps
//! (fixture `discrete_gaussian.json`, made by `scripts/peers/discrete_gaussian_fixture.py`).
//! Every accountant must be an upper bound (never below the exact value or the peer's
//! pessimistic PLD beyond a small tolerance); the PLD must also be tight.

mod common;

use common::{fixture, num};
use dp_accounting::{
    Accountant, DpEvent, PldAccountant, PrivacyLedger, PrvAccountant, RdpAccountant,
    calibrate_noise,
};

fn composed(sigma: f64, f: &serde_json::Value) -> DpEvent {
    let c = &f["composed_with"];
    DpEvent::composed(vec![
        DpEvent::discrete_gaussian(sigma).unwrap(),
        DpEvent::poisson_sampled_gaussian(
            num(c, "sample_rate").unwrap(),
            num(c, "noise_multiplier").unwrap(),
        )
        .unwrap()
        .self_composed(num(c, "steps").unwrap() as u64)
        .unwrap(),
    ])
}

#[test]
fn alone_every_accountant_bounds_the_exact_curve_and_pld_is_tight() {
    let f = fixture("discrete_gaussian.json");
    let rows = f["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 15);
    let (rdp, prv, pld) = (
        RdpAccountant::default(),
        PrvAccountant::default(),
        PldAccountant::default(),
    );
    for row in rows {
        let (s, d) = (num(row, "sigma").unwrap(), num(row, "delta").unwrap());
        let exact = num(row, "exact").unwrap();
        let peer = num(row, "dp_accounting_pld").unwrap();
        assert!((exact - peer).abs() < 1e-9, "σ={s} δ={d}: peers disagree");
        let event = DpEvent::discrete_gaussian(s).unwrap();
        let ours = pld.epsilon(&event, d).unwrap().upper;
        // Connect-the-dots reproduces the exact curve at the grid points (mesh 1e-4).
        assert!(
            ours >= exact - 1e-9 && ours <= exact + 1.5e-4,
            "σ={s} δ={d}: pld {ours} vs exact {exact}"
        );
        let r = rdp.epsilon(&event, d).unwrap().upper;
        assert!(r >= exact - 1e-9, "σ={s} δ={d}: rdp {r} < exact {exact}");
        let p = prv.epsilon(&event, d).unwrap();
        assert!(p.upper >= exact - 1e-9, "σ={s} δ={d}: prv {p:?} vs {exact}");
        assert!(p.lower.unwrap() <= exact + 1e-9, "σ={s} δ={d}: prv {p:?}");
        assert!(p.upper <= exact + 0.05, "σ={s} δ={d}: prv {p:?} vs {exact}");
    }
}

#[test]
fn composed_with_dp_sgd_steps_matches_dp_accounting() {
    let f = fixture("discrete_gaussian.json");
    let (rdp, prv, pld) = (
        RdpAccountant::default(),
        PrvAccountant::default(),
        PldAccountant::default(),
    );
    for row in f["rows"].as_array().unwrap() {
        let (s, d) = (num(row, "sigma").unwrap(), num(row, "delta").unwrap());
        let peer = num(row, "composed_dp_accounting_pld").unwrap();
        let event = composed(s, &f);
        let ctx = format!("σ={s} δ={d}");
        let ours = pld.epsilon(&event, d).unwrap().upper;
        assert!(
            (ours - peer).abs() <= 2e-3 * (1.0 + peer),
            "{ctx}: pld {ours} vs dp_accounting {peer}"
        );
        let r = rdp.epsilon(&event, d).unwrap().upper;
        assert!(r >= peer - 2e-3, "{ctx}: rdp {r} < peer {peer}");
        let p = prv.epsilon(&event, d).unwrap();
        assert!(p.upper >= peer - 2e-3, "{ctx}: prv {p:?} < peer {peer}");
        assert!(p.upper <= peer + 0.05, "{ctx}: prv {p:?} vs peer {peer}");
    }
}

#[test]
fn ledger_round_trips_and_calibration_accounts_a_prior_histogram() {
    let mut ledger = PrivacyLedger::new();
    ledger
        .record("label-histogram", DpEvent::discrete_gaussian(5.0).unwrap())
        .unwrap();
    let json = ledger.to_json().unwrap();
    assert!(json.contains(r#""type": "discrete_gaussian""#), "{json}");
    let back = PrivacyLedger::from_json(&json).unwrap();
    assert_eq!(back, ledger);
    let pld = PldAccountant::default();
    let prior = back.epsilon(&pld, 1e-5).unwrap().upper;
    assert!(prior > 0.7 && prior < 0.73, "{prior}");
    // σ of 1000 DP-SGD steps at q = 0.01 such that histogram + steps ≤ ε = 3.
    let accountants: [&dyn Accountant; 3] =
        [&pld, &PrvAccountant::default(), &RdpAccountant::default()];
    for acc in accountants {
        let c = calibrate_noise(
            acc,
            |sigma| {
                Ok(DpEvent::composed(vec![
                    back.event(),
                    DpEvent::poisson_sampled_gaussian(0.01, sigma)?.self_composed(1000)?,
                ]))
            },
            3.0,
            1e-5,
            1e-4,
        )
        .unwrap();
        assert!(c.epsilon <= 3.0, "{}: {c:?}", acc.name());
        // Without the histogram the same σ spends strictly less.
        let steps_only = DpEvent::poisson_sampled_gaussian(0.01, c.noise_multiplier)
            .unwrap()
            .self_composed(1000)
            .unwrap();
        assert!(acc.epsilon(&steps_only, 1e-5).unwrap().upper < c.epsilon - 0.05);
    }
}

/// The discrete Gaussian is ρ-zCDP with ρ = 1/(2σ²), like the continuous Gaussian (CKS
/// 2020), so its exact ε(δ) never exceeds what that zCDP bound gives (our RDP accountant).
/// It is *not* always below the continuous Gaussian's exact ε(δ) at the same σ: the loss
/// lives on the lattice (1 − 2x)/(2σ²), which at σ = 1, δ = 1e-3 costs 3.27 against 3.14
/// (pinned below); the two curves meet as σ grows.
#[test]
fn discrete_is_not_pointwise_below_the_continuous_gaussian_but_converges_to_it() {
    let pld = PldAccountant::default();
    let eps = |e: DpEvent, d: f64| pld.epsilon(&e, d).unwrap().upper;
    let dg = eps(DpEvent::discrete_gaussian(1.0).unwrap(), 1e-3);
    let g = eps(DpEvent::gaussian(1.0).unwrap(), 1e-3);
    assert!(dg > g + 0.1, "{dg} {g}");
    for (s, tol) in [(5.0, 3e-3), (10.0, 3e-4)] {
        for d in [1e-3, 1e-5, 1e-8] {
            let dg = eps(DpEvent::discrete_gaussian(s).unwrap(), d);
            let g = eps(DpEvent::gaussian(s).unwrap(), d);
            assert!((dg - g).abs() <= tol, "σ={s} δ={d}: {dg} vs {g}");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    #[test]
    fn discrete_gaussian_is_within_its_zcdp_bound_and_monotone_in_sigma(
        s in 0.4f64..40.0,
        ratio in 1.05f64..2.0,
        log_delta in -10.0f64..-3.0,
    ) {
        let d = 10f64.powf(log_delta);
        let pld = PldAccountant::default();
        let rdp = RdpAccountant::default();
        let at = |sigma: f64| DpEvent::discrete_gaussian(sigma).unwrap();
        let e1 = pld.epsilon(&at(s), d).unwrap().upper;
        let e2 = pld.epsilon(&at(s * ratio), d).unwrap().upper;
        let z = rdp.epsilon(&at(s), d).unwrap().upper;
        proptest::prop_assert!(e1 <= z + 1e-9, "σ={} δ={}: pld {} > zCDP {}", s, d, e1, z);
        proptest::prop_assert!(e2 <= e1 + 2e-4, "σ={}→{} δ={}: {} → {}", s, s * ratio, d, e1, e2);
    }
}
