//! The `distil-dp` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use distil_dp::backend::BackendKind;
use distil_dp::eval::{EvalArgs, evaluate};

/// Differentially private knowledge distillation via synthetic text (DistilDP).
#[derive(Debug, Parser)]
#[command(name = "distil-dp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Perplexity of a checkpoint on a text file; prints one line of JSON.
    Eval {
        /// Hugging Face (config.json + model.safetensors) or native (model.json + model.bpk)
        /// checkpoint directory.
        #[arg(long)]
        model: PathBuf,
        /// Texts: one per line, or JSONL / CSV with a `text` column (by extension).
        #[arg(long)]
        data: PathBuf,
        /// tokenizer.json [default: the one in the model directory].
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Window length in tokens [default: the model's n_positions].
        #[arg(long)]
        block_size: Option<usize>,
        /// Windows per forward pass.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        /// Compute backend: flex, ndarray, or cuda (in builds with the `cuda` feature).
        #[arg(long, default_value = "flex", value_parser = parse_backend)]
        backend: BackendKind,
    },
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    BackendKind::parse(s).ok_or_else(|| {
        if cfg!(feature = "cuda") {
            format!("unknown backend `{s}` (choose flex, ndarray or cuda)")
        } else {
            format!("unknown backend `{s}` (choose flex or ndarray; cuda needs a build with the `cuda` feature)")
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval {
            model,
            data,
            tokenizer,
            block_size,
            batch_size,
            backend,
        } => {
            let args = EvalArgs {
                model,
                data,
                tokenizer,
                block_size,
                batch_size,
                backend,
            };
            match evaluate(&args) {
                Ok(report) => {
                    println!(
                        "{}",
                        serde_json::to_string(&report).expect("report serialises")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
