//! Plan the privacy budget of a DP-SGD run: how much ε each accountant says a training
//! configuration spends, and which noise multiplier reaches a target ε.
//!
//! Run: `cargo run --release --example privacy_budget`

use dp_accounting::{
    Accountant, AccountantKind, DpEvent, PrivacyLedger, calibrate_noise_multiplier,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A typical DistilDP teacher run: 50 000 private records, expected batch 512, 10 epochs.
    let records = 50_000u64;
    let batch = 512u64;
    let epochs = 10u64;
    let q = batch as f64 / records as f64;
    let steps = epochs * records / batch;
    let delta = 1.0 / records as f64;
    let target = 2.0;
    println!(
        "DP-SGD plan: N = {records}, expected batch = {batch}, q = {q:.5}, steps = {steps}, delta = {delta:e}"
    );
    println!();
    println!(
        "{:<6} {:>10} {:>14} {:>12}",
        "acct", "sigma", "epsilon", "time (ms)"
    );
    for kind in [
        AccountantKind::Rdp,
        AccountantKind::Prv,
        AccountantKind::Pld,
    ] {
        let accountant = kind.build();
        let started = std::time::Instant::now();
        let c = calibrate_noise_multiplier(&accountant, target, delta, q, steps)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        println!(
            "{:<6} {:>10.5} {:>14.6} {:>12.1}",
            kind.to_string(),
            c.noise_multiplier,
            c.epsilon,
            ms
        );
    }
    println!();
    // The σ PRV calibrated, re-checked by every accountant, and written to a ledger.
    let prv = AccountantKind::Prv.build();
    let sigma = calibrate_noise_multiplier(&prv, target, delta, q, steps)?.noise_multiplier;
    let mut ledger = PrivacyLedger::new();
    ledger.record_steps("teacher-dp-sgd", q, sigma, steps)?;
    let event: DpEvent = ledger.event();
    for kind in [
        AccountantKind::Rdp,
        AccountantKind::Prv,
        AccountantKind::Pld,
    ] {
        let b = kind.build().epsilon(&event, delta)?;
        println!(
            "at sigma = {sigma:.5}: {kind} says epsilon <= {:.4}",
            b.upper
        );
    }
    println!();
    println!("ledger:\n{}", ledger.to_json()?);
    Ok(())
}
