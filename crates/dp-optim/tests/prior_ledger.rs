//! An engine started after earlier releases of the same data (e.g. a DP label histogram):
//! σ covers the whole ledger, which the engine keeps.

use dp_accounting::{Accountant, DpEvent, PldAccountant, PrivacyLedger};
use dp_optim::{DpRng, EngineConfig, PrivacyEngine};

#[test]
fn the_budget_covers_prior_releases_and_the_planned_steps() {
    let config = EngineConfig::new(2.0, 1e-5, 3.0, 10_000, 100.0, 1.0);
    let alone = PrivacyEngine::new(config.clone(), DpRng::secure().unwrap()).unwrap();
    let mut prior = PrivacyLedger::new();
    prior
        .record(
            "label-histogram",
            DpEvent::Gaussian {
                noise_multiplier: 5.0,
            },
        )
        .unwrap();
    let after =
        PrivacyEngine::after(config.clone(), DpRng::secure().unwrap(), prior.clone()).unwrap();
    assert!(
        after.noise_multiplier() > alone.noise_multiplier(),
        "the histogram leaves less for the steps: {} vs {}",
        after.noise_multiplier(),
        alone.noise_multiplier()
    );
    let accountant = PldAccountant::default();
    // before any step, the engine already reports the histogram's ε
    let prior_eps = prior.epsilon(&accountant, 1e-5).unwrap().upper;
    assert!(prior_eps > 0.0);
    assert_eq!(after.epsilon_spent().unwrap(), prior_eps);
    assert_eq!(after.state().ledger.entries().len(), 1);
    // the whole run: histogram + every planned step at the calibrated σ, within the target
    // and tight (calibration stops at a relative width of 1e-5 in σ)
    let (_, steps) = after.steps();
    let run = DpEvent::composed(vec![
        prior.event(),
        DpEvent::poisson_sampled_gaussian(after.sample_rate(), after.noise_multiplier())
            .unwrap()
            .self_composed(steps)
            .unwrap(),
    ]);
    let total = accountant.epsilon(&run, 1e-5).unwrap().upper;
    assert!(total <= 2.0 && total > 1.99, "{total}");
    // an empty prior is the plain engine
    let empty =
        PrivacyEngine::after(config, DpRng::secure().unwrap(), PrivacyLedger::new()).unwrap();
    assert_eq!(empty.noise_multiplier(), alone.noise_multiplier());
    assert_eq!(empty.epsilon_spent().unwrap(), 0.0);
}
