//! `gtseg`: the tools around the Ground Truth functions. Each command is a module with its
//! `Args` and its `run`; this file sets up logging, parses the command line and reports how
//! the command ended. The library (`gtseg`) owns every format and the AWS set-up.

use std::io::IsTerminal;
use std::process::ExitCode;

mod bench;
mod choices;
mod export;
mod job;
mod job_request;
mod outcome;
mod progress;
mod replay;
mod review;
mod store;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "gtseg", version, about = "Ground Truth semantic-segmentation Lambdas, run locally", after_help = gtseg::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the function an event is meant for (pre-annotation or consolidation, recognised by
    /// its shape) and print the exact response JSON on stdout.
    #[command(after_help = gtseg::ENV_HELP)]
    Replay(replay::Args),
    /// Benchmark consolidation on generated masks: end to end, against the decode-only
    /// floor, with peak memory; prints a Markdown table.
    Bench(bench::Args),
    /// Print a complete CreateLabelingJob request (JSON) wired to these functions, for
    /// `aws sagemaker create-labeling-job --cli-input-json file://request.json`.
    JobRequest(Box<job_request::Args>),
    /// Whole labeling jobs after they finish: consolidate one again, or rebuild its output
    /// manifest from the function's saved responses.
    #[command(subcommand)]
    Job(job::Command),
    /// Write a static report (index.html and pictures) of where the workers of each image
    /// disagreed, worst first, from an output manifest.
    Review(review::Args),
    /// Turn finished jobs (a chain: labeling, then adjustment, …) into a training set that
    /// an ecosystem's own reader takes: voc, coco or hf; with the class balance, and every
    /// image left out counted in export-report.json.
    Export(Box<export::Args>),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("info,{}", gtseg::QUIET_AWS_LOGS))
            }),
        )
        .init();
    let ended = match Cli::parse().command {
        Command::Replay(a) => replay::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::JobRequest(a) => job_request::run(*a).await,
        Command::Job(c) => job::run(c).await,
        Command::Review(a) => review::run(a).await,
        Command::Export(a) => export::run(*a).await,
    };
    match ended {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<outcome::Incomplete>() => {
            eprintln!("gtseg: incomplete: {e:#}");
            ExitCode::from(outcome::INCOMPLETE)
        }
        Err(e) => {
            // Each layer of context, then the library's message (which holds its cause).
            eprintln!("gtseg: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
