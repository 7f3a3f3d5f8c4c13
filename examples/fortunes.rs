//! The DistilDP pipeline on Debian's `fortunes` (install with `apt-get install fortunes`):
//! each fortune is a record, its file's name (`computers`, `science`, …) the label of the
//! control code `Category: computers`. Tiny models, ε = 2, like the quickstart.
//!
//! ```sh
//! cargo run --release --example fortunes                    # /usr/share/games/fortunes
//! cargo run --release --example fortunes -- DIR [KEY=VALUE ...]
//! ```
//!
//! The fortunes stand in for private data here; the category names are public (they are the
//! file names of a public package), so they are given as the label domain and the control
//! codes disclose nothing. With Debian's `wordnet-base` installed (`apt-get install -y
//! wordnet-base`), WordNet's glosses are the public corpus: the tokenizer is trained on them
//! and teacher and student are pre-trained on them for 1500 steps (stage 0) before any
//! private data; without it the tokenizer is trained on the embedded public corpus
//! (reviews) and nothing is pre-trained (the report then warns that the teacher starts from
//! nothing). Never on the fortunes. Without the fortunes directory the example says how to
//! get it and exits.
//!
//! The best settings measured so far (`docs/results.md`: the DistilDP student 15.7 % below the
//! DP-SGD student at the same settings, mean of two runs; about half an hour on 2 cores):
//!
//! ```sh
//! cargo run --release --example fortunes -- data.max_records=3000 \
//!   teacher.model.pretrain_steps=6000 teacher.expected_batch_size=256 teacher.epochs=8 \
//!   student.prompt=context student.on_policy.steps=200 student.on_policy.max_new_tokens=48
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use distil_dp::config::PipelineConfig;
use distil_dp::pipeline::{Stage, run};
use distil_dp::progress::{OutputMode, Reporter};
use distil_dp::records::{LabelColumns, RecordFormat, read_records};
use distil_dp::run_dir::RunDir;

/// mimalloc keeps freed pages for reuse: glibc's malloc hands each training step's large
/// buffers back to the kernel and faults them in again (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_DIR: &str = "/usr/share/games/fortunes";
/// Debian's `wordnet-base`: the public corpus when installed.
const WORDNET: &str = "/usr/share/wordnet";
/// Stage 0's steps for teacher and student on WordNet.
const PRETRAIN_STEPS: usize = 1500;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let dir = if args.first().is_some_and(|a| !a.contains('=')) {
        PathBuf::from(args.remove(0))
    } else {
        PathBuf::from(DEFAULT_DIR)
    };
    if !dir.is_dir() {
        eprintln!(
            "{} not found: install Debian's fortunes (`apt-get install fortunes`) or pass a directory of fortune files",
            dir.display()
        );
        return ExitCode::SUCCESS;
    }
    match fortunes(&dir, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn fortunes(dir: &std::path::Path, extra: &[String]) -> Result<(), distil_dp::DistilDpError> {
    // the public label domain: the category (file) names
    let mut categories: Vec<String> =
        read_records(dir, RecordFormat::Fortunes, &LabelColumns::All)?
            .into_iter()
            .map(|r| r.labels[0].1.clone())
            .collect();
    categories.dedup();
    let domain = toml::Value::Array(categories.into_iter().map(toml::Value::String).collect());
    let mut overrides = vec![
        "output_dir=runs/fortunes".to_string(),
        format!("data.path={:?}", dir.display().to_string()),
        "data.format=fortunes".to_string(),
        format!("data.label_values.Category={domain}"),
    ];
    let wordnet = std::path::Path::new(WORDNET);
    if distil_dp::public_corpus::is_wordnet(wordnet) {
        overrides.extend([
            format!("tokenizer.public_corpus=[{WORDNET:?}]"),
            format!("teacher.model.pretrain_steps={PRETRAIN_STEPS}"),
            format!("student.model.pretrain_steps={PRETRAIN_STEPS}"),
        ]);
    } else {
        eprintln!(
            "{WORDNET} not found (apt-get install -y wordnet-base): the tokenizer is trained on the embedded public corpus and nothing is pre-trained"
        );
    }
    overrides.extend(extra.iter().cloned());
    let config = PipelineConfig::from_toml("", &overrides)?;
    let run_dir = RunDir::open(&config)?;
    let mut reporter = Reporter::new(OutputMode::Bars, &run_dir.metrics_path())?;
    let report = run(&config, &Stage::ALL, &mut reporter)?.expect("every stage ran");
    println!(
        "\n## Results ({} fortunes for training, ε = {})\n\n{}\n## Privacy report\n\n{}\nRun directory: {}",
        report.records.train,
        config.privacy.epsilon,
        report.results_table(),
        report.privacy_markdown(),
        run_dir.root().display()
    );
    Ok(())
}
