//! Golden tests of δ(ε) against dp_accounting (RDP, PLD), prv_accountant and Opacus's PRV
//! (fixture `delta_grid.json`, made by `scripts/peers/accounting_fixtures.py`).

mod common;

use common::{fixture, num, rel};
use dp_accounting::{Accountant, DpEvent, PldAccountant, PrvAccountant, RdpAccountant};

/// Absolute slack for comparing δ values between FFT-based accountants: each side's
/// transform of ~10⁷ points carries ~n·2⁻⁵² ≈ 2e-9 of rounding (the peers' own bounds do
/// not include theirs), and their estimates can fall a hair outside [0, 1].
const FFT_ROUNDING: f64 = 1e-8;

#[test]
fn delta_for_epsilon_matches_the_peers() {
    let f = fixture("delta_grid.json");
    let rows = f["rows"].as_array().unwrap();
    assert!(rows.len() >= 30);
    let prv = PrvAccountant {
        delta_error: Some(1e-12),
        ..PrvAccountant::default()
    };
    let (mut checked_pld, mut checked_prv) = (0, 0);
    for row in rows {
        let (s, q, t, eps) = (
            num(row, "sigma").unwrap(),
            num(row, "q").unwrap(),
            num(row, "steps").unwrap() as u64,
            num(row, "epsilon").unwrap(),
        );
        let event = DpEvent::poisson_sampled_gaussian(q, s)
            .unwrap()
            .self_composed(t)
            .unwrap();
        let ctx = format!("σ={s} q={q} T={t} ε={eps}");

        // RDP: the same conversion as dp_accounting; our orders include theirs, so never looser.
        if let Some(theirs) = num(&row["dp_accounting_rdp"], "delta") {
            let ours = RdpAccountant::default().delta(&event, eps).unwrap().upper;
            assert!(
                ours <= theirs * (1.0 + 1e-9),
                "{ctx}: rdp {ours} > dp_accounting {theirs}"
            );
        }
        // PLD at the same discretisation: within 1e-3 relative (or 1e-12 absolute).
        if let Some(theirs) = num(&row["dp_accounting_pld"], "delta") {
            let ours = PldAccountant::default().delta(&event, eps).unwrap().upper;
            assert!(
                (ours - theirs).abs() <= 1e-3 * theirs + 1e-12,
                "{ctx}: pld {ours} vs dp_accounting {theirs} (rel {:e})",
                rel(ours, theirs)
            );
            checked_pld += 1;
        }
        // PRV: each estimate lies within the other's guaranteed interval.
        if let (Some(lo), Some(est), Some(up)) = (
            num(&row["prv_accountant"], "lower"),
            num(&row["prv_accountant"], "estimate"),
            num(&row["prv_accountant"], "upper"),
        ) {
            let ours = prv.delta(&event, eps).unwrap();
            let (olo, oest) = (ours.lower.unwrap(), ours.estimate.unwrap());
            let slack = FFT_ROUNDING;
            assert!(
                lo - slack <= oest && oest <= up + slack,
                "{ctx}: our estimate {oest} outside [{lo}, {up}]"
            );
            assert!(
                olo - slack <= est && est <= ours.upper + slack,
                "{ctx}: their estimate {est} outside ours"
            );
            checked_prv += 1;
        }
        // δ is a probability; the peers' FFT rounding can put it a hair outside [0, 1].
        if let Some(op) = num(&row["opacus_prv"], "estimate").map(|v| v.clamp(0.0, 1.0)) {
            let ours = prv.delta(&event, eps).unwrap();
            let slack = FFT_ROUNDING;
            assert!(
                ours.lower.unwrap() - slack <= op && op <= ours.upper + slack,
                "{ctx}: opacus prv estimate {op} outside ours {ours:?}"
            );
        }
    }
    assert!(
        checked_pld >= 30 && checked_prv >= 30,
        "{checked_pld} {checked_prv}"
    );
}
