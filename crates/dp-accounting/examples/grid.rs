//! Sweeps every accountant over the parameter grid σ ∈ {0.5, 0.8, 1, 2, 5},
//! q ∈ {0.001, 0.004, 0.01, 0.1, 0.5, 1}, T ∈ {1, 10, 100, 1000, 10⁴, 10⁵},
//! δ ∈ {1e-5, 1e-8}, printing one JSON line per query (ε bounds or the error, and the
//! time taken), then a summary line. Shows that no accountant runs out of memory or
//! fails anywhere on the grid.
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
    let mut slowest = (0.0f64, String::new());
    for kind in kinds {
        let acc = kind.build();
        for &sigma in &sigmas {
            for &q in &rates {
                for &t in &steps {
                    for &delta in &deltas {
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
    println!(
        "{}",
        json!({"summary": {"ok": ok, "failed": failed, "slowest_seconds": slowest.0, "slowest": slowest.1}})
    );
}
