//! The corners of the parameter grid the accountants must cover (σ ∈ [0.5, 5],
//! q ∈ [0.001, 1], T ∈ [1, 10⁵], δ ∈ {1e-5, 1e-8}): every accountant answers, without
//! error or running out of memory, and the answers are consistent with each other.
//! (`cargo run --release -p dp-accounting --example grid` sweeps the whole grid.)

use dp_accounting::{Accountant, DpEvent, PldAccountant, PrvAccountant, RdpAccountant};

#[test]
fn every_accountant_answers_consistently_at_the_grid_corners() {
    let (rdp, prv, pld) = (
        RdpAccountant::default(),
        PrvAccountant::default(),
        PldAccountant::default(),
    );
    for sigma in [0.5, 5.0] {
        for q in [0.001, 0.5, 1.0] {
            for steps in [1u64, 100_000] {
                let event = DpEvent::poisson_sampled_gaussian(q, sigma)
                    .unwrap()
                    .self_composed(steps)
                    .unwrap();
                for delta in [1e-5, 1e-8] {
                    let ctx = format!("σ={sigma} q={q} T={steps} δ={delta}");
                    let r = rdp
                        .epsilon(&event, delta)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let p = prv
                        .epsilon(&event, delta)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let l = pld
                        .epsilon(&event, delta)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    for v in [r.upper, p.upper, l.upper] {
                        assert!(v.is_finite() && v >= 0.0, "{ctx}: {v}");
                    }
                    let lower = p.lower.unwrap();
                    assert!(
                        l.upper <= r.upper * (1.0 + 1e-9),
                        "{ctx}: pld {} > rdp {}",
                        l.upper,
                        r.upper
                    );
                    assert!(
                        lower <= l.upper * (1.0 + 1e-9) + 1e-9,
                        "{ctx}: prv lower {lower} > pld {}",
                        l.upper
                    );
                    assert!(
                        l.upper <= p.upper * (1.0 + 1e-3) + 1e-3,
                        "{ctx}: pld {} far above prv upper {}",
                        l.upper,
                        p.upper
                    );
                }
            }
        }
    }
}
