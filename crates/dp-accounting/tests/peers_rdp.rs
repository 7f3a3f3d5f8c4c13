//! Golden tests of the RDP accountant against Opacus, dp_accounting and a 60-digit
//! mpmath evaluation (fixture made by `scripts/peers/accounting_fixtures.py`).

mod common;

use common::{fixture, num, rel};
use dp_accounting::{DpEvent, RdpAccountant};

fn ours(q: f64, sigma: f64, order: f64) -> f64 {
    let acc = RdpAccountant::with_orders(vec![order]).unwrap();
    let step = DpEvent::poisson_sampled_gaussian(q, sigma).unwrap();
    acc.rdp(&step).unwrap()[0]
        .unwrap_or_else(|| panic!("q={q} σ={sigma} α={order} did not converge"))
}

#[test]
fn per_step_rdp_matches_exact_values_and_opacus() {
    let f = fixture("rdp_orders.json");
    let rows = f["rows"].as_array().unwrap();
    assert!(rows.len() >= 300);
    let (mut worst_exact_int, mut worst_exact_frac, mut worst_opacus) = (0.0f64, 0.0f64, 0.0f64);
    for row in rows {
        let q = num(row, "q").unwrap();
        let s = num(row, "sigma").unwrap();
        let a = num(row, "order").unwrap();
        let exact = num(row, "mpmath").unwrap();
        let got = ours(q, s, a);
        let integer = a.fract() == 0.0;
        let e = rel(got, exact);
        if integer {
            worst_exact_int = worst_exact_int.max(e);
            // Exact to a few ulps at integer orders, including where A_α − 1 is ~1e-12.
            assert!(
                e < 1e-12,
                "q={q} σ={s} α={a}: ours {got} exact {exact} (rel {e:e})"
            );
            // Opacus sums A_α itself, which loses digits when ln A_α is tiny: allow its own
            // rounding (1e-15 absolute on ln A_α, divided by α − 1).
            if let Some(op) = num(row, "opacus") {
                let d = (got - op).abs();
                worst_opacus = worst_opacus.max(d / op.abs());
                assert!(
                    d <= 1e-9 * op.abs() + 2e-16 / (a - 1.0),
                    "q={q} σ={s} α={a}: ours {got} opacus {op}"
                );
            }
        } else {
            worst_exact_frac = worst_exact_frac.max(e);
            assert!(
                e < 1e-10,
                "q={q} σ={s} α={a}: ours {got} exact {exact} (rel {e:e})"
            );
            // dp_accounting adds |C(α, i)| at fractional orders: an upper bound.
            if let Some(dpa) = num(row, "dp_accounting") {
                assert!(
                    got <= dpa * (1.0 + 1e-9),
                    "q={q} σ={s} α={a}: ours {got} > dp_accounting {dpa}"
                );
            }
        }
    }
    eprintln!(
        "worst relative error vs mpmath: integer {worst_exact_int:e}, fractional {worst_exact_frac:e}; \
         worst relative difference to Opacus at integer orders {worst_opacus:e}"
    );
}

#[test]
fn default_orders_contain_both_peers_defaults() {
    let f = fixture("rdp_orders.json");
    let ours = dp_accounting::default_orders();
    for key in ["opacus_default_orders", "dp_accounting_default_orders"] {
        for o in f[key].as_array().unwrap() {
            let o = o.as_f64().unwrap();
            assert!(
                ours.iter().any(|&a| (a - o).abs() < 1e-12),
                "{key}: {o} missing"
            );
        }
    }
}
