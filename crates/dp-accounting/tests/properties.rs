//! Property tests: the invariants every sound accountant must satisfy, on random
//! parameters. PRV answers carry Gopi et al.'s interval, so monotonicity is asserted in the
//! form that interval guarantees (the upper bound of the larger spend is at least the lower
//! bound of the smaller one).

use dp_accounting::{
    Accountant, DpEvent, PldAccountant, PrvAccountant, RdpAccountant, calibrate_noise_multiplier,
    max_steps,
};
use proptest::prelude::*;

fn event(q: f64, sigma: f64, steps: u64) -> DpEvent {
    DpEvent::poisson_sampled_gaussian(q, sigma)
        .unwrap()
        .self_composed(steps)
        .unwrap()
}

fn pld() -> PldAccountant {
    // A coarser grid keeps the property tests quick; every property holds at any grid.
    PldAccountant {
        value_discretization_interval: 1e-3,
        ..PldAccountant::default()
    }
}

fn prv() -> PrvAccountant {
    PrvAccountant {
        eps_error: 0.05,
        ..PrvAccountant::default()
    }
}

/// Parameters: σ ∈ [0.6, 4], q ∈ [0.002, 0.5], T ∈ [1, 400], δ ∈ [1e-8, 1e-4].
fn params() -> impl Strategy<Value = (f64, f64, u64, f64)> {
    (0.6f64..4.0, 0.002f64..0.5, 1u64..400, -8.0f64..-4.0)
        .prop_map(|(s, q, t, ld)| (s, q, t, 10f64.powf(ld)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn tighter_accountants_never_exceed_rdp((s, q, t, d) in params()) {
        let e = event(q, s, t);
        let rdp = RdpAccountant::default().epsilon(&e, d).unwrap().upper;
        let pld = PldAccountant::default().epsilon(&e, d).unwrap().upper;
        let prv = PrvAccountant::default().epsilon(&e, d).unwrap();
        // Both are (near-)exact; RDP is a looser bound on the same quantity.
        prop_assert!(pld <= rdp * (1.0 + 1e-9), "pld {pld} > rdp {rdp}");
        prop_assert!(prv.lower.unwrap() <= rdp, "prv lower {:?} > rdp {rdp}", prv.lower);
        prop_assert!(prv.estimate.unwrap() <= rdp * (1.0 + 1e-9));
    }

    #[test]
    fn prv_interval_is_ordered_and_contains_pld((s, q, t, d) in params()) {
        let e = event(q, s, t);
        let b = PrvAccountant::default().epsilon(&e, d).unwrap();
        let (lo, est, up) = (b.lower.unwrap(), b.estimate.unwrap(), b.upper);
        prop_assert!(lo <= est && est <= up, "{lo} {est} {up}");
        prop_assert!(up - lo <= 2.0 * 0.01 + 1e-9 + 0.05 * est, "interval too wide: {lo} {up}");
        // The PLD bound is an upper bound on the exact ε, which is ≥ PRV's lower bound.
        let pld = PldAccountant::default().epsilon(&e, d).unwrap().upper;
        prop_assert!(pld >= lo, "pld {pld} < prv lower {lo}");
    }

    #[test]
    fn epsilon_grows_with_steps_and_sample_rate((s, q, t, d) in params()) {
        let rdp = RdpAccountant::default();
        let (pld, prv) = (pld(), prv());
        for (small, large) in [(event(q, s, t), event(q, s, 2 * t)), (event(q, s, t), event((2.0 * q).min(1.0), s, t))] {
            prop_assert!(rdp.epsilon(&small, d).unwrap().upper <= rdp.epsilon(&large, d).unwrap().upper);
            prop_assert!(pld.epsilon(&small, d).unwrap().upper <= pld.epsilon(&large, d).unwrap().upper * (1.0 + 1e-9) + 1e-9);
            prop_assert!(prv.epsilon(&small, d).unwrap().lower.unwrap() <= prv.epsilon(&large, d).unwrap().upper);
        }
    }

    #[test]
    fn epsilon_shrinks_with_sigma_and_delta((s, q, t, d) in params()) {
        let rdp = RdpAccountant::default();
        let (pld, prv) = (pld(), prv());
        let base = event(q, s, t);
        let noisier = event(q, 1.5 * s, t);
        prop_assert!(rdp.epsilon(&noisier, d).unwrap().upper <= rdp.epsilon(&base, d).unwrap().upper);
        prop_assert!(pld.epsilon(&noisier, d).unwrap().upper <= pld.epsilon(&base, d).unwrap().upper * (1.0 + 1e-9) + 1e-9);
        prop_assert!(prv.epsilon(&noisier, d).unwrap().lower.unwrap() <= prv.epsilon(&base, d).unwrap().upper);
        // Larger δ, same event: the answers are exactly monotone.
        prop_assert!(rdp.epsilon(&base, 10.0 * d).unwrap().upper <= rdp.epsilon(&base, d).unwrap().upper);
        prop_assert!(pld.epsilon(&base, 10.0 * d).unwrap().upper <= pld.epsilon(&base, d).unwrap().upper);
        prop_assert!(prv.epsilon(&base, 10.0 * d).unwrap().estimate <= prv.epsilon(&base, d).unwrap().estimate);
    }

    #[test]
    fn delta_and_epsilon_queries_agree((s, q, t, d) in params()) {
        let e = event(q, s, t);
        for acc in [&RdpAccountant::default() as &dyn Accountant, &pld()] {
            let eps = acc.epsilon(&e, d).unwrap().upper;
            let back = acc.delta(&e, eps).unwrap().upper;
            prop_assert!(back <= d * (1.0 + 1e-6), "{}: delta({eps}) = {back} > {d}", acc.name());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn calibration_round_trips(target in 0.5f64..8.0, q in 0.001f64..0.2, t in 10u64..5000) {
        for acc in [&RdpAccountant::default() as &dyn Accountant, &pld()] {
            let c = calibrate_noise_multiplier(acc, target, 1e-5, q, t).unwrap();
            let spent = acc.epsilon(&event(q, c.noise_multiplier, t), 1e-5).unwrap().upper;
            prop_assert!(spent <= target, "{}: sigma {} spends {spent} > {target}", acc.name(), c.noise_multiplier);
            prop_assert_eq!(spent, c.epsilon);
            prop_assert!(c.noise_multiplier / c.noise_multiplier_below - 1.0 <= 1e-5);
            let over = acc.epsilon(&event(q, c.noise_multiplier_below, t), 1e-5).unwrap().upper;
            prop_assert!(over > target);
        }
    }

    #[test]
    fn max_steps_is_the_last_step_within_budget(sigma in 0.7f64..3.0, q in 0.001f64..0.1, target in 0.5f64..6.0) {
        let acc = RdpAccountant::default();
        match max_steps(&acc, sigma, q, target, 1e-5) {
            Ok(s) => {
                prop_assert!(s.epsilon <= target);
                let next = acc.epsilon(&event(q, sigma, s.steps + 1), 1e-5).unwrap().upper;
                prop_assert!(next > target, "{} steps fit but {} also do", s.steps, s.steps + 1);
            }
            Err(e) => {
                // Only when even one step exceeds the target.
                let one = acc.epsilon(&event(q, sigma, 1), 1e-5).unwrap().upper;
                prop_assert!(one > target, "unexpected error {e}");
            }
        }
    }
}
