//! Prints, as one line of JSON, the ε that a DP-SGD run spends, or the noise multiplier
//! that reaches a target ε.
//!
//! ```text
//! cargo run --release -p dp-accounting --example epsilon -- --accountant prv \
//!     --noise-multiplier 1.0 --sample-rate 0.01 --steps 10000 --delta 1e-5
//! cargo run --release -p dp-accounting --example epsilon -- --accountant pld \
//!     --target-epsilon 2 --sample-rate 0.01 --steps 10000 --delta 1e-5
//! ```
//! Options: `--accountant rdp|prv|pld` (default pld), `--noise-multiplier S` or
//! `--target-epsilon E`, `--sample-rate Q` (default 1), `--steps T` (default 1),
//! `--delta D` (required), `--eps-error X` and `--delta-error X` (PRV),
//! `--discretization X` (PLD). Bad arguments print one line on stderr and exit with 2.

use std::collections::HashMap;
use std::process::ExitCode;

use dp_accounting::{
    Accountant, AccountantKind, AnyAccountant, DpEvent, calibrate_noise_multiplier,
};
use serde_json::json;

const FLAGS: [&str; 9] = [
    "accountant",
    "noise-multiplier",
    "target-epsilon",
    "sample-rate",
    "steps",
    "delta",
    "eps-error",
    "delta-error",
    "discretization",
];

fn parse(args: &[String]) -> Result<HashMap<&'static str, String>, String> {
    let mut out = HashMap::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let name = arg
            .strip_prefix("--")
            .and_then(|n| FLAGS.iter().find(|f| **f == n))
            .ok_or_else(|| {
                format!(
                    "unknown argument '{arg}' (expected one of --{})",
                    FLAGS.join(", --")
                )
            })?;
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        out.insert(*name, value.clone());
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(
    args: &HashMap<&str, String>,
    name: &str,
) -> Result<Option<T>, String> {
    args.get(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("--{name}: '{v}' is not a valid number"))
        })
        .transpose()
}

fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let args = parse(args)?;
    let kind: AccountantKind = args
        .get("accountant")
        .map(|s| s.parse::<AccountantKind>())
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let delta: f64 = number(&args, "delta")?.ok_or("--delta is required")?;
    let q: f64 = number(&args, "sample-rate")?.unwrap_or(1.0);
    let steps: u64 = number(&args, "steps")?.unwrap_or(1);
    let mut accountant = kind.build();
    match &mut accountant {
        AnyAccountant::Prv(p) => {
            if let Some(e) = number(&args, "eps-error")? {
                p.eps_error = e;
            }
            p.delta_error = number(&args, "delta-error")?;
        }
        AnyAccountant::Pld(p) => {
            if let Some(d) = number(&args, "discretization")? {
                p.value_discretization_interval = d;
            }
        }
        AnyAccountant::Rdp(_) => {}
    }
    let sigma: Option<f64> = number(&args, "noise-multiplier")?;
    let target: Option<f64> = number(&args, "target-epsilon")?;
    let mut calibration = None;
    let sigma = match (sigma, target) {
        (Some(s), None) => s,
        (None, Some(t)) => {
            let started = std::time::Instant::now();
            let c = calibrate_noise_multiplier(&accountant, t, delta, q, steps)
                .map_err(|e| e.to_string())?;
            calibration = Some(json!({
                "target_epsilon": t,
                "noise_multiplier_below": c.noise_multiplier_below,
                "evaluations": c.evaluations,
                "seconds": started.elapsed().as_secs_f64(),
            }));
            c.noise_multiplier
        }
        _ => return Err("give exactly one of --noise-multiplier and --target-epsilon".into()),
    };
    let event = DpEvent::poisson_sampled_gaussian(q, sigma)
        .and_then(|e| e.self_composed(steps))
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let b = accountant
        .epsilon(&event, delta)
        .map_err(|e| e.to_string())?;
    let mut out = json!({
        "accountant": kind.to_string(),
        "noise_multiplier": sigma,
        "sample_rate": q,
        "steps": steps,
        "delta": delta,
        "epsilon": b.upper,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if let Some(c) = calibration {
        out["calibration"] = c;
    }
    if let Some(e) = b.estimate {
        out["epsilon_estimate"] = json!(e);
    }
    if let Some(l) = b.lower {
        out["epsilon_lower"] = json!(l);
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
