//! The `distil-dp` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use distil_dp::DistilDpError;
use distil_dp::backend::BackendKind;
use distil_dp::config::PipelineConfig;
use distil_dp::dp_train::Processes;
use distil_dp::eval::{EvalArgs, evaluate};
use distil_dp::pipeline::{Stage, generate_shard, merge, run, run_with, teacher_worker};
use distil_dp::progress::{OutputMode, Reporter};
use distil_dp::run_dir::RunDir;
use synth_gen::Shard;

/// mimalloc keeps freed pages for reuse: glibc's malloc hands each training step's large
/// buffers back to the kernel and faults them in again (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Differentially private knowledge distillation via synthetic text (DistilDP).
#[derive(Debug, Parser)]
#[command(name = "distil-dp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every stage: teacher, generate, student, baselines, evaluate. Rerunning the same
    /// command resumes a killed run.
    Run(RunArgs),
    /// Stage 1: the DP label histogram and the DP-SGD teacher (with `--world N`, its DP-SGD
    /// spread over N processes).
    Teacher(TeacherArgs),
    /// Stage 2: the synthetic corpus from the DP teacher (with `--shard I/N`, one shard of
    /// it; `merge` joins the shards).
    Generate(GenerateArgs),
    /// Joins the shards of `generate --shard I/N` into synthetic.jsonl, after checking that
    /// every shard finished and holds exactly its samples.
    Merge(MergeArgs),
    /// Stage 3: the student distilled on the synthetic corpus.
    Student(RunArgs),
    /// The baselines: DP-SGD student, DPKD, hard-label student (as configured).
    Baselines(RunArgs),
    /// Stage 4: test perplexities, report.json, report.md, loss curves.
    Evaluate(RunArgs),
    /// Perplexity of a checkpoint on a text file; prints one line of JSON.
    Eval(EvalCli),
}

/// `distil-dp eval`'s arguments (the library's `EvalArgs`).
#[derive(Debug, Clone, Args)]
struct EvalCli {
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
    #[arg(long, default_value = "flex", value_parser = backend)]
    backend: BackendKind,
}

impl From<&EvalCli> for EvalArgs {
    fn from(cli: &EvalCli) -> Self {
        Self {
            model: cli.model.clone(),
            data: cli.data.clone(),
            tokenizer: cli.tokenizer.clone(),
            block_size: cli.block_size,
            batch_size: cli.batch_size,
            backend: cli.backend,
        }
    }
}

/// `--backend NAME` of `eval`: the library's parser, whose error names the choices.
fn backend(name: &str) -> Result<BackendKind, DistilDpError> {
    name.parse()
}

/// `--shard I/N` of `generate`: an error names `shard.index`, `shard.count` or the syntax.
fn shard_arg(text: &str) -> Result<Shard, DistilDpError> {
    Ok(text.parse::<Shard>()?)
}

/// `--output`: the library's [`OutputMode`], as the command line offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Progress bars with rates and ETA on stderr, the results on stdout.
    Bars,
    /// Errors and the final results only.
    Quiet,
    /// One JSON object per event on stdout (the same lines as `metrics.jsonl`).
    Json,
}

impl From<Output> for OutputMode {
    fn from(output: Output) -> Self {
        match output {
            Output::Bars => Self::Bars,
            Output::Quiet => Self::Quiet,
            Output::Json => Self::Json,
        }
    }
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// The run's TOML configuration [default: the built-in quickstart configuration].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one field, `dotted.key=value` (repeatable), e.g. `--set privacy.epsilon=4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Shorthand for `--set backend=NAME` (flex, ndarray; cuda with the `cuda` feature).
    #[arg(long)]
    backend: Option<String>,
    /// Shorthand for `--set workers=N`: data-parallel DP-SGD on N threads, one per device
    /// (with `--backend cuda`: GPUs 0..N-1); a run may resume with another N.
    #[arg(long)]
    workers: Option<usize>,
    /// Progress display: bars (stderr), quiet, or json (one event per line on stdout).
    #[arg(long, value_enum, default_value_t = Output::Bars)]
    output: Output,
}

impl RunArgs {
    /// The progress display chosen.
    fn mode(&self) -> OutputMode {
        self.output.into()
    }
}

#[derive(Debug, Clone, Args)]
struct GenerateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Generate only shard I (zero-based) of N: sample indices [T*I/N, T*(I+1)/N) of the
    /// run's T synthetic samples, into synthetic.shard-I-of-N.jsonl in the run directory
    /// (events in metrics.shard-I-of-N.jsonl); synthetic.jsonl is not touched. Needs the
    /// teacher stage; join the shards with `distil-dp merge --shards N`.
    #[arg(long, value_name = "I/N", value_parser = shard_arg)]
    shard: Option<Shard>,
}

#[derive(Debug, Clone, Args)]
struct MergeArgs {
    #[command(flatten)]
    run: RunArgs,
    /// How many shards the corpus was generated in (the N of `generate --shard I/N`).
    #[arg(long, value_name = "N")]
    shards: u64,
}

#[derive(Debug, Clone, Args)]
struct TeacherArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Spread the teacher's DP-SGD over N processes (possibly on N machines), started with the
    /// same command and configuration, each with its own --rank; the run directory must be
    /// shared (worker 0 writes it; the others read its tokenizer).
    #[arg(long, value_name = "N", requires_all = ["rank", "address"])]
    world: Option<usize>,
    /// This process's rank in 0..N; 0 runs the stage (label histogram, ledger, checkpoint),
    /// the others only take part in the DP-SGD steps.
    #[arg(long, requires = "world")]
    rank: Option<usize>,
    /// Worker 0's host:port (worker 0 listens on it; the others connect to it).
    #[arg(long, value_name = "HOST:PORT", requires = "world")]
    address: Option<String>,
    /// Seconds to wait for the other processes (to connect, and in each step).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    timeout: u64,
}

fn teacher(args: &TeacherArgs) -> Result<(), DistilDpError> {
    let (Some(world), Some(rank), Some(address)) = (args.world, args.rank, &args.address) else {
        return pipeline(&args.run, &[Stage::Teacher]);
    };
    let processes = Processes {
        rank,
        world,
        address: address.clone(),
        timeout: std::time::Duration::from_secs(args.timeout),
    };
    processes.validate()?;
    let (config, dir) = open_run(&args.run)?;
    if rank == 0 {
        let mut reporter = Reporter::new(args.run.mode(), &dir.metrics_path())?;
        run_with(&config, &[Stage::Teacher], &mut reporter, Some(&processes))?;
        if args.run.mode() != OutputMode::Quiet && args.run.mode() != OutputMode::Json {
            eprintln!(
                "done: teacher on {world} processes (run directory {})",
                dir.root().display()
            );
        }
    } else {
        let mut reporter = Reporter::new(args.run.mode(), &dir.worker_metrics_path(rank))?;
        teacher_worker(&config, &processes, &mut reporter)?;
        if args.run.mode() != OutputMode::Quiet && args.run.mode() != OutputMode::Json {
            eprintln!("done: teacher worker {rank} of {world}");
        }
    }
    Ok(())
}

/// The run's configuration (file or defaults, then the overrides) and its directory.
fn open_run(args: &RunArgs) -> Result<(PipelineConfig, RunDir), DistilDpError> {
    let mut overrides = args.overrides.clone();
    if let Some(n) = args.workers {
        overrides.push(format!("workers={n}"));
    }
    if let Some(b) = &args.backend {
        overrides.push(format!("backend={b}"));
    }
    let config = match &args.config {
        Some(path) => PipelineConfig::load(path, &overrides)?,
        None => PipelineConfig::from_toml("", &overrides)?,
    };
    let dir = RunDir::open(&config)?;
    Ok((config, dir))
}

fn pipeline(args: &RunArgs, stages: &[Stage]) -> Result<(), DistilDpError> {
    let (config, dir) = open_run(args)?;
    let mut reporter = Reporter::new(args.mode(), &dir.metrics_path())?;
    let report = run(&config, stages, &mut reporter)?;
    match (report, args.mode()) {
        (Some(r), OutputMode::Json) => {
            println!("{}", serde_json::json!({ "stage": "report", "report": r }))
        }
        (Some(r), _) => println!(
            "## Results\n\n{}{}\n## Privacy\n\n{}\nRun directory: {}",
            r.results_table(),
            r.codes_note(),
            r.privacy_markdown(),
            dir.root().display()
        ),
        (None, OutputMode::Quiet) => {}
        (None, _) => eprintln!(
            "done: {} (run directory {})",
            stages
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
            dir.root().display()
        ),
    }
    Ok(())
}

fn shard(args: &RunArgs, shard: Shard) -> Result<(), DistilDpError> {
    let (config, dir) = open_run(args)?;
    let mut reporter = Reporter::new(args.mode(), &dir.shard_metrics_path(shard))?;
    let report = generate_shard(&config, shard, &mut reporter)?;
    if args.mode() == OutputMode::Bars {
        eprintln!(
            "done: generate shard {shard}: {} samples generated, {} in {}",
            report.generated,
            report.written,
            dir.synthetic_shard_path(shard).display()
        );
    }
    Ok(())
}

fn merge_shards(args: &MergeArgs) -> Result<(), DistilDpError> {
    let (config, dir) = open_run(&args.run)?;
    let mut reporter = Reporter::new(args.run.mode(), &dir.metrics_path())?;
    let report = merge(&config, args.shards, &mut reporter)?;
    if args.run.mode() == OutputMode::Bars {
        eprintln!(
            "done: merged {} shards: {} samples in {} ({} repeats across shards dropped)",
            report.shards,
            report.written,
            dir.synthetic_path().display(),
            report.duplicates
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(a) => pipeline(a, &Stage::ALL),
        Command::Teacher(a) => teacher(a),
        Command::Generate(GenerateArgs { run, shard: None }) => pipeline(run, &[Stage::Generate]),
        Command::Generate(GenerateArgs {
            run,
            shard: Some(s),
        }) => shard(run, *s),
        Command::Merge(a) => merge_shards(a),
        Command::Student(a) => pipeline(a, &[Stage::Student]),
        Command::Baselines(a) => pipeline(a, &[Stage::Baselines]),
        Command::Evaluate(a) => pipeline(a, &[Stage::Evaluate]),
        Command::Eval(args) => evaluate(&args.into()).map(|report| {
            println!(
                "{}",
                serde_json::to_string(&report).expect("report serialises")
            );
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
