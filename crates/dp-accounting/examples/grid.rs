//! Sweeps every accountant over the parameter grid σ ∈ {0.5, 0.8, 1, 2, 5},
//! q ∈ {0.001, 0.004, 0.01, 0.1, 0.5, 1}, T ∈ {1, 10, 100, 1000, 10⁴, 10⁵},
//! δ ∈ {1e-5, 1e-8}, printing one JSON line per query (ε bounds or the error, and the
//! time taken), then a summary line that also counts the points where the answers are
//! inconsistent (PLD above RDP, or PLD outside PRV's interval by more than 1e-3). Shows
//! that no accountant runs out of memory or fails anywhere on the grid.
//!
//! `cargo run --release -p dp-accounting --example grid > grid.jsonl`

use dp_accounting::{Accountant, AccountantKind, DpEvent};
use serde_json::json;

fn main() {
    let sigmas = [0.5, 0.8, 1.0, 2.0, 5.0];
    let rates = [0.001, 0.004, 0.01, 0.1, 0.5, 1.0];
    let steps = [1u64, 10, 100, 1_000, 10_000, 100_000];
    let deltas = [1e-5, 1e-8];
    let kinds = [
        AccountantKind::Rdp,
        AccountantKind::Prv,
        AccountantKind::Pld,
    ];
    let (mut ok, mut failed) = (0, 0);
    // (σ, q, T, δ) index -> [rdp upper, prv lower, prv upper, pld upper]
    let mut answers = std::collections::HashMap::<(usize, usize, usize, usize), [f64; 4]>::new();
    let mut slowest = (0.0f64, String::new());
    for kind in kinds {
        let acc = kind.build();
        for (si, &sigma) in sigmas.iter().enumerate() {
            for (qi, &q) in rates.iter().enumerate() {
                for (ti, &t) in steps.iter().enumerate() {
                    for (di, &delta) in deltas.iter().enumerate() {
                        let event = DpEvent::poisson_sampled_gaussian(q, sigma)
                            .and_then(|e| e.self_composed(t))
                            .expect("grid parameters are valid");
                        let started = std::time::Instant::now();
                        let result = acc.epsilon(&event, delta);
                        let secs = started.elapsed().as_secs_f64();
                        let mut line = json!({"accountant": kind.to_string(), "sigma": sigma,
                            "q": q, "steps": t, "delta": delta, "seconds": secs});
                        match result {
                            Ok(b) => {
                                ok += 1;
                                let slot = answers.entry((si, qi, ti, di)).or_insert([f64::NAN; 4]);
                                match kind {
                                    AccountantKind::Rdp => slot[0] = b.upper,
                                    AccountantKind::Prv => {
                                        slot[1] = b.lower.unwrap_or(f64::NAN);
                                        slot[2] = b.upper;
                                    }
                                    AccountantKind::Pld => slot[3] = b.upper,
                                }
                                line["epsilon"] = json!(b.upper);
                                line["epsilon_estimate"] = json!(b.estimate);
                                line["epsilon_lower"] = json!(b.lower);
                            }
                            Err(e) => {
                                failed += 1;
                                line["error"] = json!(e.to_string());
                            }
                        }
                        if secs > slowest.0 {
                            slowest = (secs, line.to_string());
                        }
                        println!("{line}");
                    }
                }
            }
        }
    }
    let inconsistent = answers
        .values()
        .filter(|[rdp, prv_lo, prv_up, pld]| {
            !(*pld <= rdp * (1.0 + 1e-9)
                && *prv_lo <= pld * (1.0 + 1e-9) + 1e-9
                && *pld <= prv_up * (1.0 + 1e-3) + 1e-3)
        })
        .count();
    println!(
        "{}",
        json!({"summary": {"ok": ok, "failed": failed, "inconsistent": inconsistent,
            "slowest_seconds": slowest.0, "slowest": slowest.1}})
    );
}
