//! `gtseg`: run either Ground Truth function on a saved event, locally.
//!
//! The same code as the Lambda handlers runs here ([`gtseg::Service`]); only the store and
//! the clock are chosen differently.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

mod bench;
mod job;
mod job_request;
mod progress;
mod review;

use clap::{Parser, Subcommand};
use gtseg::{
    AnyCatalog, AnyStore, Config, LocalStore, S3Store, SageMakerCatalog, SavedJobs, Service,
};

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
    Replay {
        /// The saved event (JSON file), as Ground Truth sends it to the Lambda.
        event: PathBuf,
        /// Use DIR as the object store: s3://bucket/key is the file DIR/bucket/key. Without it,
        /// real S3 and SageMaker are used through the standard AWS environment (a region and
        /// credentials are needed).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// The job's saved `aws sagemaker describe-labeling-job` output: its label list is the
        /// job's LabelCategoryConfigS3Uri, read from the store. Without it (and without
        /// LABEL_CATEGORY_CONFIG), replay asks SageMaker when no --store is given, and otherwise
        /// uses the event's labelCategories or, for consolidation, the labels the workers used.
        #[arg(long, value_name = "FILE")]
        labeling_job: Option<PathBuf>,
        /// Print the response on one line instead of indented.
        #[arg(long)]
        compact: bool,
    },
    /// Benchmark consolidation on generated masks: end to end, against the decode-only
    /// floor, with peak memory; prints a Markdown table.
    Bench(bench::BenchArgs),
    /// Print a complete CreateLabelingJob request (JSON) wired to these functions, for
    /// `aws sagemaker create-labeling-job --cli-input-json file://request.json`.
    JobRequest(Box<JobRequestArgs>),
    /// Whole labeling jobs after they finish: consolidate one again, or rebuild its output
    /// manifest from the function's saved responses.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Write a static report (index.html and pictures) of where the workers of each image
    /// disagreed, worst first, from an output manifest.
    Review(review::ReviewArgs),
}

/// Options of `gtseg job-request`.
#[derive(Debug, clap::Args)]
struct JobRequestArgs {
    /// The task type: labeling paints masks, adjustment corrects an earlier job's masks,
    /// verification judges them (pick the matching template).
    #[arg(long, value_enum, default_value_t)]
    task_type: job_request::TaskType,
    /// The labeling job name (letters, digits, hyphens).
    #[arg(long)]
    job_name: String,
    /// The label attribute name (default: <job-name>-ref; for verification, <job-name>).
    #[arg(long)]
    label_attribute_name: Option<String>,
    /// The input manifest, s3://bucket/key.
    #[arg(long)]
    manifest: String,
    /// The job's S3 output path, s3://bucket/prefix.
    #[arg(long)]
    output: String,
    /// The label category configuration file, s3://bucket/key.
    #[arg(long)]
    label_config: String,
    /// The worker task template (templates/*.liquid.html uploaded to S3), s3://bucket/key.
    #[arg(long)]
    template: String,
    /// The work team ARN.
    #[arg(long)]
    workteam: String,
    /// The job's execution role ARN.
    #[arg(long)]
    role_arn: String,
    /// PreHumanTaskLambdaArn (or give --stack-outputs).
    #[arg(long, required_unless_present = "stack_outputs")]
    pre_lambda_arn: Option<String>,
    /// AnnotationConsolidationLambdaArn (or give --stack-outputs).
    #[arg(long, required_unless_present = "stack_outputs")]
    consolidation_lambda_arn: Option<String>,
    /// `aws cloudformation describe-stacks` output of the SAM stack, as a JSON file: both ARNs
    /// are taken from its Outputs.
    #[arg(long, value_name = "FILE")]
    stack_outputs: Option<PathBuf>,
    /// Workers per image (1-9).
    #[arg(long, default_value_t = 3)]
    workers: u32,
    /// Seconds a worker has for one image.
    #[arg(long, default_value_t = 3600)]
    task_time_limit: u32,
    /// Seconds an image stays available to workers.
    #[arg(long, default_value_t = 864_000)]
    task_availability: u32,
    /// Tasks offered to workers at once (1-5000).
    #[arg(long)]
    max_concurrent_tasks: Option<u32>,
    /// The task title workers see (default: one for the task type).
    #[arg(long)]
    title: Option<String>,
    /// The task description workers see (default: one for the task type).
    #[arg(long)]
    description: Option<String>,
    /// Declare the images free of personal data or adult content
    /// (FreeOfPersonallyIdentifiableInformation, FreeOfAdultContent; repeat for both). Off by
    /// default: street scenes show people.
    #[arg(long, value_name = "CLASSIFIER")]
    content_classifier: Vec<String>,
    /// What a public (Mechanical Turk) worker earns per task, in US dollars, e.g. 0.036;
    /// required with the public work team.
    #[arg(long, value_name = "USD")]
    task_price: Option<String>,
}

fn job_request(a: JobRequestArgs) -> Result<(), String> {
    let from_stack = match &a.stack_outputs {
        Some(f) => {
            let text = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let doc: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| format!("{} is not JSON: {e}", f.display()))?;
            Some(job_request::arns_from_stack_outputs(&doc).ok_or_else(|| {
                format!(
                    "{} has no PreHumanTaskLambdaArn and AnnotationConsolidationLambdaArn outputs",
                    f.display()
                )
            })?)
        }
        None => None,
    };
    let (pre, acs) = match (a.pre_lambda_arn, a.consolidation_lambda_arn, from_stack) {
        (Some(p), Some(c), _) => (p, c),
        (p, c, Some((sp, sc))) => (p.unwrap_or(sp), c.unwrap_or(sc)),
        _ => {
            return Err(
                "give --pre-lambda-arn and --consolidation-lambda-arn, or --stack-outputs".into(),
            );
        }
    };
    let (title, description) = a.task_type.default_text();
    let input = job_request::JobRequestInput {
        task_type: a.task_type,
        job_name: a.job_name,
        label_attribute_name: a.label_attribute_name,
        manifest_uri: a.manifest,
        output_path: a.output,
        label_config_uri: a.label_config,
        template_uri: a.template,
        workteam_arn: a.workteam,
        role_arn: a.role_arn,
        pre_lambda_arn: pre,
        consolidation_lambda_arn: acs,
        workers_per_image: a.workers,
        task_time_limit_s: a.task_time_limit,
        task_availability_s: a.task_availability,
        max_concurrent_tasks: a.max_concurrent_tasks,
        title: a.title.unwrap_or_else(|| title.to_owned()),
        description: a.description.unwrap_or_else(|| description.to_owned()),
        content_classifiers: a.content_classifier,
        task_price: a.task_price,
    };
    let (request, warnings) = job_request::build_job_request(&input).map_err(|e| e.to_string())?;
    for w in warnings {
        match w.strip_prefix("note: ") {
            Some(note) => eprintln!("gtseg: note: {note}"),
            None => eprintln!("gtseg: warning: {w}"),
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&request).map_err(|e| e.to_string())?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Without a region, the SDK's look-up on EC2's metadata service fails with
                // long warnings before our one-line error; they say nothing more.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,aws_config::imds=error")
                }),
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
    let (event, store, labeling_job, compact) = match cli.command {
        Command::Replay {
            event,
            store,
            labeling_job,
            compact,
        } => (event, store, labeling_job, compact),
        Command::Bench(args) => return bench::bench(args).await,
        Command::JobRequest(args) => return job_request(*args),
        Command::Job(cmd) => return job::run(cmd).await,
        Command::Review(args) => return review::run(args).await,
    };
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let text = std::fs::read(&event)
        .map_err(|e| format!("cannot read event file {}: {e}", event.display()))?;
    let event_json: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("event file {} is not JSON: {e}", event.display()))?;
    let saved = match &labeling_job {
        Some(f) => {
            let text = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let jobs = SavedJobs::parse(&[&text]).map_err(|e| format!("{}: {e}", f.display()))?;
            Some(AnyCatalog::Saved(jobs))
        }
        None => None,
    };
    let service = match store {
        Some(dir) => Service::with_catalog(
            AnyStore::Local(LocalStore::new(dir)),
            config,
            saved.unwrap_or_default(),
        ),
        None => {
            let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            if conf.region().is_none() {
                return Err("replay without --store reads S3 and asks SageMaker, so it needs a region and credentials (AWS_REGION, AWS_PROFILE, ...); or give --store DIR".into());
            }
            let store =
                S3Store::from_sdk_config(&conf, config.endpoint_override, config.s3_timeout);
            let jobs = saved.unwrap_or_else(|| {
                AnyCatalog::SageMaker(SageMakerCatalog::new(
                    &conf,
                    config.sagemaker_endpoint.clone(),
                ))
            });
            Service::with_catalog(AnyStore::S3(store), config, jobs)
        }
    };
    let response = service
        .replay(&event_json, SystemTime::now())
        .await
        .map_err(|e| e.to_string())?;
    let out = if compact {
        serde_json::to_string(&response)
    } else {
        serde_json::to_string_pretty(&response)
    };
    println!("{}", out.map_err(|e| e.to_string())?);
    Ok(())
}
