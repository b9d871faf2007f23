//! `gtseg`: run either Ground Truth function on a saved event, locally.
//!
//! The same code as the Lambda handlers runs here ([`gtseg::Service`]); only the store and
//! the clock are chosen differently.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

mod bench;

use clap::{Parser, Subcommand};
use gtseg::{AnyStore, Config, LocalStore, S3Store, Service, report};

#[derive(Debug, Parser)]
#[command(name = "gtseg", version, about = "Ground Truth semantic-segmentation Lambdas, run locally", after_help = gtseg::config::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the function an event is meant for (pre-annotation or consolidation, recognised by
    /// its shape) and print the exact response JSON on stdout.
    #[command(after_help = gtseg::config::ENV_HELP)]
    Replay {
        /// The saved event (JSON file), as Ground Truth sends it to the Lambda.
        event: PathBuf,
        /// Use DIR as the object store: s3://bucket/key is the file DIR/bucket/key. Without it,
        /// real S3 is used through the standard AWS environment.
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print the response on one line instead of indented.
        #[arg(long)]
        compact: bool,
    },
    /// Benchmark consolidation on generated masks: end to end, against the decode-only
    /// floor, with peak memory; prints a Markdown table.
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("gtseg: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (event, store, compact) = match cli.command {
        Command::Replay {
            event,
            store,
            compact,
        } => (event, store, compact),
        Command::Bench(args) => return bench::bench(args).await,
    };
    let config = Config::from_env().map_err(|e| report(&e))?;
    let text = std::fs::read(&event)
        .map_err(|e| format!("cannot read event file {}: {e}", event.display()))?;
    let event_json: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("event file {} is not JSON: {e}", event.display()))?;
    let store = match store {
        Some(dir) => AnyStore::Local(LocalStore::new(dir)),
        None => AnyStore::S3(S3Store::from_env(config.endpoint_override).await),
    };
    let service = Service::new(store, config);
    let response = service
        .replay(&event_json, SystemTime::now())
        .await
        .map_err(|e| report(&e))?;
    let out = if compact {
        serde_json::to_string(&response)
    } else {
        serde_json::to_string_pretty(&response)
    };
    println!("{}", out.map_err(|e| e.to_string())?);
    Ok(())
}
