//! Heterogeneous compositions (phases with different σ and q, plus a plain Gaussian
//! release): all accountants agree where they should, and composing never spends less
//! than any part.

use dp_accounting::{Accountant, AccountantKind, DpEvent, PrvAccountant, RdpAccountant};

fn phases() -> (DpEvent, DpEvent, DpEvent) {
    let warmup = DpEvent::poisson_sampled_gaussian(0.02, 1.5)
        .unwrap()
        .self_composed(500)
        .unwrap();
    let main = DpEvent::poisson_sampled_gaussian(0.01, 1.0)
        .unwrap()
        .self_composed(2000)
        .unwrap();
    let histogram = DpEvent::gaussian(20.0).unwrap();
    (warmup, main, histogram)
}

#[test]
fn phases_compose_consistently_across_accountants() {
    let (warmup, main, histogram) = phases();
    let all = DpEvent::composed(vec![warmup.clone(), main.clone(), histogram.clone()]);
    let delta = 1e-6;
    let prv = PrvAccountant::default().epsilon(&all, delta).unwrap();
    let (lo, up) = (prv.lower.unwrap(), prv.upper);
    let rdp = RdpAccountant::default().epsilon(&all, delta).unwrap().upper;
    let pld = AccountantKind::Pld
        .build()
        .epsilon(&all, delta)
        .unwrap()
        .upper;
    assert!(
        lo <= pld && pld <= up + 1e-3,
        "pld {pld} outside prv [{lo}, {up}]"
    );
    assert!(pld < rdp && up < rdp, "rdp {rdp} should be the loosest");
    for kind in [
        AccountantKind::Rdp,
        AccountantKind::Prv,
        AccountantKind::Pld,
    ] {
        let acc = kind.build();
        let total = acc.epsilon(&all, delta).unwrap().upper;
        for part in [&warmup, &main, &histogram] {
            let alone = acc.epsilon(part, delta).unwrap().upper;
            assert!(
                alone <= total,
                "{kind}: a part spends {alone} > the whole {total}"
            );
        }
    }
}

#[test]
fn order_of_phases_does_not_matter() {
    let (warmup, main, histogram) = phases();
    let a = DpEvent::composed(vec![warmup.clone(), main.clone(), histogram.clone()]);
    let b = DpEvent::composed(vec![histogram, main, warmup]);
    for kind in [
        AccountantKind::Rdp,
        AccountantKind::Prv,
        AccountantKind::Pld,
    ] {
        let acc = kind.build();
        let (x, y) = (
            acc.epsilon(&a, 1e-6).unwrap(),
            acc.epsilon(&b, 1e-6).unwrap(),
        );
        assert!(
            (x.upper - y.upper).abs() <= 1e-9 * x.upper,
            "{kind}: {x:?} vs {y:?}"
        );
    }
}
