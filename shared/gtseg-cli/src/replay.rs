//! `gtseg replay`: either function on a saved event, with the Lambda handlers' own code
//! ([`gtseg::Service`]); only the store, the job catalog and the clock are chosen here.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use gtseg::{AnyCatalog, AnyStore, Config, SavedJobs, Service};

/// Options of `gtseg replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
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
}

/// The largest event read: Ground Truth's events are a few kilobytes (a manifest line is at
/// most 100 KB).
const MAX_EVENT_BYTES: u64 = 16 << 20;

/// Runs `gtseg replay`: prints the function's response on stdout.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let text = gtseg::read_file(&a.event, MAX_EVENT_BYTES)
        .await
        .context("reading the event")?;
    let event: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("the event file {} is not JSON", a.event.display()))?;
    let saved = match &a.labeling_job {
        Some(f) => Some(AnyCatalog::Saved(SavedJobs::read_file(f).await?)),
        None => None,
    };
    let service = match &a.store {
        Some(dir) => {
            let store = crate::store::open(Some(dir), "gtseg replay").await?;
            Service::with_catalog(store, config, saved.unwrap_or_default())
        }
        None => {
            let aws = crate::store::aws("gtseg replay reads S3 and asks SageMaker without --store")
                .await
                .map_err(|e| anyhow::anyhow!("{e:#}; or give --store DIR"))?;
            let jobs = saved.unwrap_or_else(|| AnyCatalog::SageMaker(aws.catalog()));
            Service::with_catalog(AnyStore::S3(aws.s3()), config, jobs)
        }
    };
    let response = service
        .replay(&event, SystemTime::now())
        .await
        .with_context(|| format!("replaying {}", a.event.display()))?;
    let out = if a.compact {
        serde_json::to_string(&response)
    } else {
        serde_json::to_string_pretty(&response)
    };
    println!("{}", out?);
    Ok(())
}
