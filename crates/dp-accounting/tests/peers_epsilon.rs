//! Golden tests of ε(δ) against Opacus (RDP, PRV), dp_accounting (RDP, PLD) and
//! prv_accountant on the grid σ ∈ {0.5, 0.8, 1, 2, 5} × q ∈ {0.001, 0.01, 0.1, 1} ×
//! T ∈ {1, 100, 10⁴, 10⁵} × δ ∈ {1e-5, 1e-8} (fixture `epsilon_grid.json`, made by
//! `scripts/peers/accounting_fixtures.py`). Where a peer failed (timeout, memory, an
//! exception) the fixture records the error and our accountants must still answer.

mod common;

use common::{fixture, num, rel};
use dp_accounting::{Accountant, DpEvent, PldAccountant, PrvAccountant, RdpAccountant};

#[test]
fn epsilon_for_delta_matches_the_peers() {
    let f = fixture("epsilon_grid.json");
    let rows = f["rows"].as_array().unwrap();
    assert!(rows.len() >= 150);
    let (rdp, prv, pld) = (
        RdpAccountant::default(),
        PrvAccountant::default(),
        PldAccountant::default(),
    );
    let orders = fixture("rdp_orders.json")["opacus_default_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_f64().unwrap())
        .collect();
    let opacus_orders = RdpAccountant::with_orders(orders).unwrap();
    let mut worst = [0.0f64; 3]; // rdp vs opacus, pld vs dp_accounting, prv estimate gaps
    let mut counts = [0usize; 4]; // opacus rdp, dp_accounting pld, prv peers, peer failures
    let mut exact_rows = 0; // q = 1 rows checked against the analytic μ-GDP value
    let mut looser_peer = 0; // rows where dp_accounting's PLD is > 1e-3 above ours
    let mut inconsistent_peer = Vec::new(); // PRV peer intervals that contradict a PLD bound
    for row in rows {
        let (s, q, t, d) = (
            num(row, "sigma").unwrap(),
            num(row, "q").unwrap(),
            num(row, "steps").unwrap() as u64,
            num(row, "delta").unwrap(),
        );
        let event = DpEvent::poisson_sampled_gaussian(q, s)
            .unwrap()
            .self_composed(t)
            .unwrap();
        let ctx = format!("σ={s} q={q} T={t} δ={d}");
        let ours_rdp = rdp.epsilon(&event, d).unwrap().upper;
        let ours_prv = prv
            .epsilon(&event, d)
            .unwrap_or_else(|e| panic!("{ctx}: prv {e}"));
        let ours_pld = pld
            .epsilon(&event, d)
            .unwrap_or_else(|e| panic!("{ctx}: pld {e}"))
            .upper;

        // RDP: never looser than either peer with our default orders (a superset of both
        // peers' defaults).
        if let Some(op) = num(&row["opacus_rdp"], "epsilon") {
            assert!(
                ours_rdp <= op * (1.0 + 1e-9) + 1e-12,
                "{ctx}: rdp {ours_rdp} > opacus {op}"
            );
            // With Opacus's own orders, the same number to 1e-9.
            let same_orders = opacus_orders.epsilon(&event, d).unwrap().upper;
            assert!(
                rel(same_orders, op) <= 1e-9,
                "{ctx}: rdp at Opacus's orders {same_orders} vs {op}"
            );
            worst[0] = worst[0].max(rel(same_orders, op));
            counts[0] += 1;
        } else {
            counts[3] += 1;
        }
        if let Some(dpa) = num(&row["dp_accounting_rdp"], "epsilon") {
            assert!(
                ours_rdp <= dpa * (1.0 + 1e-9) + 1e-12,
                "{ctx}: rdp {ours_rdp} > dp_accounting {dpa}"
            );
        }

        // PLD at the same discretisation (1e-4): within 1e-3 relative of dp_accounting.
        match num(&row["dp_accounting_pld"], "epsilon") {
            Some(dpa) if dpa.is_finite() => {
                let r = (ours_pld - dpa).abs() / dpa.max(1e-3);
                if r > 1e-3 {
                    // Only allowed where dp_accounting is the looser one, and ours is
                    // confirmed by our PRV's guaranteed interval (seen at ε ≈ 800, σ = 0.5,
                    // q = 0.1, T = 10⁴, where both of the peers' PRVs run out of memory).
                    let (lo, up) = (ours_prv.lower.unwrap(), ours_prv.upper);
                    assert!(
                        ours_pld < dpa && lo <= ours_pld && ours_pld <= up,
                        "{ctx}: pld {ours_pld} vs dp_accounting {dpa} (rel {r:e}), prv [{lo}, {up}]"
                    );
                    looser_peer += 1;
                } else {
                    worst[1] = worst[1].max(r);
                }
                counts[1] += 1;
            }
            _ => counts[3] += 1,
        }

        // PRV: each estimate inside the other's guaranteed interval, for Opacus's PRV and
        // for prv_accountant. Where ours is exact (q = 1: closed form, a zero-width
        // interval), the peer's estimate must be within its εₑ = 0.01 of it instead.
        let (lo, est, up) = (
            ours_prv.lower.unwrap(),
            ours_prv.estimate.unwrap(),
            ours_prv.upper,
        );
        let slack = if up - lo < 1e-9 { 0.01 } else { 1e-9 };
        let dpa_pld = num(&row["dp_accounting_pld"], "epsilon").filter(|v| v.is_finite());
        // ε is reported clamped at 0 (as dp_accounting does); Opacus does not clamp.
        let interval = |peer: &str| -> Option<(f64, f64, f64)> {
            let p = &row[peer];
            Some((
                num(p, "lower")?.max(0.0),
                num(p, "estimate")?.max(0.0),
                num(p, "upper")?.max(0.0),
            ))
            .filter(|(_, e, _)| e.is_finite())
        };
        let agrees = |(plo, pest, pup): (f64, f64, f64)| {
            plo - 1e-9 <= est && est <= pup + 1e-9 && lo - slack <= pest && pest <= up + slack
        };
        match (interval("opacus_prv"), interval("prv_accountant")) {
            (Some(a), Some(b)) if a.2 < b.0 - 1e-9 || b.2 < a.0 - 1e-9 => {
                // The two peers contradict each other (disjoint guaranteed intervals): ours
                // must agree with one of them, and that one with dp_accounting's PLD.
                let (good, bad) = if agrees(a) {
                    (a, ("prv_accountant", b))
                } else {
                    (b, ("opacus_prv", a))
                };
                assert!(
                    agrees(good),
                    "{ctx}: ours [{lo}, {up}] agrees with neither PRV peer: {a:?} {b:?}"
                );
                if let Some(d) = dpa_pld {
                    assert!(
                        good.0 <= d * (1.0 + 1e-9),
                        "{ctx}: PRV lower {} > dp_accounting pld {d}",
                        good.0
                    );
                }
                inconsistent_peer.push(format!(
                    "{} at {ctx}: {:?}, ours [{lo}, {up}], dp_accounting pld {dpa_pld:?}",
                    bad.0, bad.1
                ));
                counts[2] += 1;
            }
            (a, b) => {
                for (peer, p) in [("opacus_prv", a), ("prv_accountant", b)] {
                    let Some(p) = p else {
                        counts[3] += 1;
                        continue;
                    };
                    assert!(agrees(p), "{ctx}: ours [{lo}, {est}, {up}] vs {peer} {p:?}");
                    worst[2] = worst[2].max((est - p.1).abs());
                    counts[2] += 1;
                }
            }
        }

        // q = 1: the composition is exactly μ-GDP; the fixture's value was computed
        // analytically (scipy), ours in closed form by PLD and PRV alike.
        if let Some(exact) = num(&row["exact_gaussian"], "epsilon") {
            assert!(
                rel(ours_pld, exact) <= 1e-9,
                "{ctx}: pld {ours_pld} vs exact {exact}"
            );
            assert!(rel(est, exact) <= 1e-9, "{ctx}: prv {est} vs exact {exact}");
            exact_rows += 1;
        }

        // Our own consistency: PLD ≤ RDP, PRV's interval contains PLD (up to εₑ slack).
        assert!(
            ours_pld <= ours_rdp * (1.0 + 1e-9),
            "{ctx}: pld {ours_pld} > rdp {ours_rdp}"
        );
        assert!(
            lo <= ours_pld * (1.0 + 1e-9) + 1e-9,
            "{ctx}: prv lower {lo} > pld {ours_pld}"
        );
    }
    eprintln!(
        "compared: {} opacus-rdp, {} dp_accounting-pld ({} where it is looser than ours), \
         {} PRV-peer comparisons ({} peer failures); worst: rdp at Opacus's orders vs opacus {:e} rel, \
         pld vs dp_accounting elsewhere {:e} rel, prv estimates {:e} abs",
        counts[0], counts[1], looser_peer, counts[2], counts[3], worst[0], worst[1], worst[2]
    );
    assert!(
        looser_peer <= 4,
        "dp_accounting looser on {looser_peer} rows"
    );
    assert_eq!(exact_rows, 40, "every q = 1 row has an analytic value");
    for line in &inconsistent_peer {
        eprintln!("peer inconsistent: {line}");
    }
    assert!(inconsistent_peer.len() <= 8, "{inconsistent_peer:#?}");
    assert!(
        counts[0] >= 150 && counts[2] >= 100 && counts[1] >= 60,
        "{counts:?}"
    );
}
