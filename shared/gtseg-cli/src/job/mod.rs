//! `gtseg job`: whole labeling jobs, after they finish. `consolidate` runs consolidation
//! again over a job's saved worker responses, with the functions' own code, on this machine
//! or on the deployed function; `manifest` rebuilds a job's output manifest from the
//! function's saved responses. The layout they read is described in `docs/jobs.md`; its
//! formats are the library's (`gtseg::finished`).

mod consolidate;
mod lambda;
mod manifest;

use std::path::PathBuf;

use anyhow::Context as _;
use gtseg::finished::InputLine;
use gtseg::{AnyStore, Location, ObjectStore, PutOptions, S3Uri};

/// The largest input manifest read: far more lines than a labeling job may have.
const MAX_MANIFEST_BYTES: u64 = 1 << 30;

/// What `gtseg job` does.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Consolidate a finished job again from its workers' responses (another algorithm, a
    /// worker left out, a fixed bug): new masks, disagreement maps, a complete output
    /// manifest and a job report, under --output.
    Consolidate(Box<consolidate::Args>),
    /// Rebuild a job's output manifest from the input manifest and the function's saved
    /// consolidation responses, restoring the full metadata whatever Ground Truth wrote.
    Manifest(manifest::Args),
}

/// Where a finished job is: what both commands take.
#[derive(Debug, clap::Args)]
pub struct JobLocation {
    /// The job's output folder, `<S3OutputPath>/<job-name>/` (it holds `annotations/`): an
    /// s3:// URI, or with --store a path inside DIR.
    #[arg(long, value_name = "URI")]
    job_output: String,
    /// The job's input manifest (line i is datasetObjectId i): an s3:// URI or a local path.
    #[arg(long, value_name = "URI_OR_PATH")]
    manifest: String,
    /// A local directory standing in for S3 (`s3://bucket/key` is `DIR/bucket/key`).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

/// Runs a `gtseg job` command.
pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Consolidate(a) => consolidate::run(*a).await,
        Command::Manifest(a) => manifest::run(a).await,
    }
}

/// The store, the job's output folder and its input manifest's location.
async fn open(job: &JobLocation) -> anyhow::Result<(AnyStore, S3Uri, Location)> {
    let dir = job.store.as_deref();
    let store = crate::store::open(dir, "gtseg job reads and writes S3 without --store").await?;
    let output = crate::store::folder(&job.job_output, "--job-output", dir)?;
    let manifest = crate::store::file(&job.manifest, "--manifest", dir)?;
    Ok((store, output, manifest))
}

/// The input manifest's lines, each a JSON object or why it is not (line `i` is
/// `datasetObjectId` `i`).
async fn read_manifest(store: &AnyStore, at: &Location) -> anyhow::Result<Vec<InputLine>> {
    let bytes = at
        .read(store, MAX_MANIFEST_BYTES)
        .await
        .context("reading the input manifest")?;
    gtseg::finished::parse_manifest(&bytes).with_context(|| format!("the input manifest {at}"))
}

/// Writes a text object (a manifest, a report) in one piece: a reader never sees half of it.
async fn put_text(
    store: &AnyStore,
    uri: &S3Uri,
    text: impl Into<Vec<u8>>,
    content_type: &'static str,
) -> anyhow::Result<()> {
    let opts = PutOptions {
        content_type: Some(content_type),
        kms_key_id: None,
    };
    store
        .put(uri, text.into(), &opts)
        .await
        .with_context(|| format!("writing {uri}"))
}
