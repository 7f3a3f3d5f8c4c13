//! The whole DistilDP pipeline on the embedded default corpus with tiny models, at ε = 2:
//! a DP label histogram and a DP-SGD teacher, a synthetic corpus, a distilled student, the
//! three baselines (DP-SGD student, DPKD, hard-label student), test perplexities and the
//! privacy report. 3–7 minutes on 2 CPU cores (`docs/benchmarks.md`).
//!
//! ```sh
//! cargo run --release --example quickstart                          # runs/quickstart
//! cargo run --release --example quickstart -- privacy.epsilon=8     # any config override
//! ```
//!
//! Rerunning the same command resumes a killed run (or, when it finished, re-evaluates the
//! saved models). The run directory holds `report.md`, `report.json`, `loss-curves.svg`,
//! `metrics.jsonl`, the synthetic corpus and every checkpoint; `models/student` loads with
//! `distil-dp eval` or `causal_lm::checkpoint::load`. The equivalent command line is
//! `cargo run --release -p distil-dp -- run --set output_dir=runs/quickstart`.
//!
//! The embedded corpus is generated (templated reviews with business-category and star
//! labels standing in for private data; see `distil_dp::embedded`), so the numbers say how
//! the pipeline behaves, not how DistilDP does on real text (`docs/results.md`).

use std::process::ExitCode;

use distil_dp::config::PipelineConfig;
use distil_dp::pipeline::{Stage, run};
use distil_dp::progress::{OutputMode, Reporter};
use distil_dp::run_dir::RunDir;

/// mimalloc keeps freed pages for reuse: glibc's malloc hands each training step's large
/// buffers back to the kernel and faults them in again (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut overrides = vec!["output_dir=runs/quickstart".to_string()];
    overrides.extend(std::env::args().skip(1));
    match quickstart(&overrides) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn quickstart(overrides: &[String]) -> Result<(), distil_dp::DistilDpError> {
    let config = PipelineConfig::from_toml("", overrides)?;
    let dir = RunDir::open(&config)?;
    let mut reporter = Reporter::new(OutputMode::Bars, &dir.metrics_path())?;
    let started = std::time::Instant::now();
    let report = run(&config, &Stage::ALL, &mut reporter)?.expect("every stage ran");
    println!(
        "\n## Results ({} training records, ε = {}, δ = {:.2e})\n\n{}{}\n## Privacy report\n\n{}",
        report.records.train,
        config.privacy.epsilon,
        report.privacy.delta,
        report.results_table(),
        report.codes_note(),
        report.privacy_markdown()
    );
    println!(
        "{:.0} s. Run directory: {} (report.md, loss-curves.svg, models/)",
        started.elapsed().as_secs_f64(),
        dir.root().display()
    );
    Ok(())
}
