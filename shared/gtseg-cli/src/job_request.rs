//! `gtseg job-request`: a complete `CreateLabelingJob` request wired to these functions,
//! built and checked by the library ([`gtseg::build_job_request`]); this prints it and its
//! notes and warnings.

use std::path::PathBuf;

use anyhow::Context as _;
use gtseg::{JobRequestInput, arns_from_stack_outputs, build_job_request};

use crate::choices::TaskTypeArg;

/// Options of `gtseg job-request`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task type: labeling paints masks, adjustment corrects an earlier job's masks,
    /// verification judges them (pick the matching template).
    #[arg(long, value_enum, default_value = "labeling")]
    task_type: TaskTypeArg,
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

/// The largest stack-outputs file read.
const MAX_STACK_OUTPUTS_BYTES: u64 = 16 << 20;

/// Runs `gtseg job-request`: the request on stdout, its notices on stderr.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let (pre, acs) = function_arns(&a).await?;
    let task_type = a.task_type.0;
    let (title, description) = task_type.default_text();
    let input = JobRequestInput {
        task_type,
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
    let (request, notices) = build_job_request(&input)?;
    // `note: …` or `warning: …`, by the notice's kind.
    for n in &notices {
        eprintln!("gtseg: {n}");
    }
    println!("{}", serde_json::to_string_pretty(&request)?);
    Ok(())
}

/// Both functions' ARNs: given, else from the stack's outputs.
async fn function_arns(a: &Args) -> anyhow::Result<(String, String)> {
    let from_stack = match &a.stack_outputs {
        Some(f) => {
            let text = gtseg::read_file(f, MAX_STACK_OUTPUTS_BYTES).await?;
            let doc: serde_json::Value = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not JSON", f.display()))?;
            let arns = arns_from_stack_outputs(&doc).with_context(|| {
                format!(
                    "{} has no PreHumanTaskLambdaArn and AnnotationConsolidationLambdaArn outputs",
                    f.display()
                )
            })?;
            Some(arns)
        }
        None => None,
    };
    match (
        a.pre_lambda_arn.clone(),
        a.consolidation_lambda_arn.clone(),
        from_stack,
    ) {
        (Some(p), Some(c), _) => Ok((p, c)),
        (p, c, Some((sp, sc))) => Ok((p.unwrap_or(sp), c.unwrap_or(sc))),
        _ => anyhow::bail!(
            "give --pre-lambda-arn and --consolidation-lambda-arn, or --stack-outputs"
        ),
    }
}
