//! When a request needs more grid points than `max_grid_points`, PRV and PLD widen their
//! mesh instead of running out of memory: the answer stays a valid bound, only looser.

use dp_accounting::{Accountant, DpEvent, PldAccountant, PrvAccountant};

#[test]
fn a_small_grid_budget_loosens_but_never_breaks_the_bounds() {
    let e = DpEvent::poisson_sampled_gaussian(0.02, 0.9)
        .unwrap()
        .self_composed(3000)
        .unwrap();
    let delta = 1e-6;
    let fine_pld = PldAccountant::default().epsilon(&e, delta).unwrap().upper;
    let fine_prv = PrvAccountant::default().epsilon(&e, delta).unwrap();
    let small = 4096;
    let coarse_pld = PldAccountant {
        max_grid_points: small,
        ..PldAccountant::default()
    }
    .epsilon(&e, delta)
    .unwrap()
    .upper;
    let coarse_prv = PrvAccountant {
        max_grid_points: small,
        ..PrvAccountant::default()
    }
    .epsilon(&e, delta)
    .unwrap();
    // PLD stays pessimistic: never below the fine answer (up to rounding).
    assert!(
        coarse_pld >= fine_pld * (1.0 - 1e-9),
        "{coarse_pld} < {fine_pld}"
    );
    // PRV's wider interval still contains the fine estimate, and is wider.
    let (lo, up) = (coarse_prv.lower.unwrap(), coarse_prv.upper);
    let est = fine_prv.estimate.unwrap();
    assert!(lo <= est && est <= up, "[{lo}, {up}] misses {est}");
    assert!(up - lo > fine_prv.upper - fine_prv.lower.unwrap());
}
