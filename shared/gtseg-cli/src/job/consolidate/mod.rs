//! `gtseg job consolidate`: a finished job's worker responses consolidated again, in batches,
//! with the consolidation function's own code (in this process, or the deployed function with
//! `--via-lambda`), then a complete output manifest and a job report.
//!
//! Each batch is a payload object under `--output` (what Ground Truth would have sent), and its
//! response is saved beside it once its masks are written: a saved response is the mark of a
//! finished batch, so `--resume` redoes only the batches without one, and an interrupted run
//! leaves only whole objects behind. The manifest and the report are written last, and only
//! when every batch succeeded.
//!
//! `plan` gathers the run's inputs (labels, manifest, responses, state), `batches` runs them,
//! `report` writes the manifest and the report.

mod batches;
mod plan;
mod report;

use std::path::PathBuf;
use std::sync::Arc;

use gtseg::Algorithm;
use tracing::warn;

use crate::choices::AlgorithmArg;

/// Options of `gtseg job consolidate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobLocation,
    /// The label attribute to write: a new name keeps the job's own label beside it in the
    /// output manifest.
    #[arg(long, value_name = "NAME")]
    label_attribute_name: String,
    /// Where the masks, the disagreement maps, `manifests/output/output.manifest` and
    /// `manifests/output/job-report.json` go: an s3:// URI, or with --store a path inside DIR.
    #[arg(long, value_name = "URI")]
    output: String,
    /// The label category configuration (an s3:// URI or a local path), as
    /// LABEL_CATEGORY_CONFIG.
    #[arg(long, value_name = "URI_OR_PATH", conflicts_with = "labeling_job")]
    label_config: Option<String>,
    /// The job's saved `aws sagemaker describe-labeling-job` output: its label
    /// configuration and name are used.
    #[arg(long, value_name = "FILE")]
    labeling_job: Option<PathBuf>,
    /// The fusion (default: CONSOLIDATION_ALGORITHM, else majority). Locally, `weighted`
    /// estimates every worker's reliability from the whole job.
    #[arg(long, value_enum, value_name = "NAME")]
    algorithm: Option<AlgorithmArg>,
    /// Leave this worker's answers out everywhere (repeat for more); the metadata says so.
    #[arg(long, value_name = "ID")]
    exclude_worker: Vec<String>,
    /// Redo only the batches an earlier run with the same options did not finish.
    #[arg(long)]
    resume: bool,
    /// Images per batch (per invocation with --via-lambda).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Invoke this deployed consolidation function (name or ARN) for each batch instead of
    /// consolidating here; `AWS_ENDPOINT_URL_LAMBDA` is honoured.
    #[arg(long, value_name = "FUNCTION")]
    via_lambda: Option<String>,
    /// Batches in flight at once with --via-lambda.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Stamp this creation-date (RFC 3339, UTC) instead of the time of the first run, for
    /// reproducible reruns.
    #[arg(long, value_name = "TIME")]
    creation_date: Option<String>,
    /// Start a new run into an --output that holds an earlier run's objects (they are
    /// replaced); without it such an output is refused.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Take the output's lock even though another run holds it: only when that run is known
    /// to be gone (killed on another machine). See docs/jobs.md, "Safety".
    #[arg(long)]
    break_lock: bool,
}

/// Runs `gtseg job consolidate`.
pub async fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.batch_size > 0 && (1..=1000).contains(&a.concurrency),
        "--batch-size must be at least 1, and --concurrency from 1 to 1000"
    );
    let (run, lock) = plan::Run::open(&a).await?;
    let run = Arc::new(run);
    let result = consolidate(&a, &run).await;
    // The lock goes whatever happened; a run killed before this leaves it for the next run
    // to find stale.
    if let Err(e) = lock.release(&run.store).await {
        warn!("the output's lock could not be removed: {e}");
    }
    result
}

/// Every batch not yet done, then the manifest and the report.
async fn consolidate(a: &Args, run: &Arc<plan::Run>) -> anyhow::Result<()> {
    let finished = if a.resume {
        batches::finished(run).await?
    } else {
        Vec::new()
    };
    let (model, prepared) = if run.algorithm == Algorithm::Weighted && run.lambda.is_none() {
        let (model, prepared) = batches::fit_job_model(run).await?;
        (Some(Arc::new(model)), prepared)
    } else {
        (None, Default::default())
    };
    // Here, one batch decides on every core while the next is read; a deployed function
    // takes --concurrency batches at once.
    let concurrency = if run.lambda.is_some() {
        a.concurrency
    } else {
        2
    };
    let work = batches::consolidate_all(Arc::clone(run), model, prepared, finished, concurrency);
    let failed = tokio::select! {
        r = work => r?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!(
            "interrupted: the batches finished so far are saved; rerun with --resume to do the rest"
        ),
    };
    if !failed.is_empty() {
        for (k, why) in &failed {
            warn!(batch = k, "{why:#}");
        }
        anyhow::bail!(
            "{} of {} batches failed (see the log); nothing else is lost: rerun with --resume to redo only those",
            failed.len(),
            run.batches.len()
        );
    }
    report::write_manifest_and_report(run).await
}
