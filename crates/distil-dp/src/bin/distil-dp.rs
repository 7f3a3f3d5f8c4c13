//! The `distil-dp` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    Eval(EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval(args) => match evaluate(&args) {
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
        },
    }
}
