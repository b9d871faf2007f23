//! `gtseg job`: whole labeling jobs, after they finish. `consolidate` runs consolidation
//! again over a job's saved worker responses, with the functions' own code, on this machine
//! or on the deployed function; `manifest` rebuilds a job's output manifest from the
//! function's saved responses. The layout they read is described in `docs/jobs.md`.

mod consolidate;
mod lambda;
mod manifest;

use std::path::{Path, PathBuf};

use gtseg::finished::manifest_line;
use gtseg::{AnyStore, LocalStore, ObjectStore, PutOptions, S3Store, S3Uri};
use serde_json::{Map, Value};

pub use consolidate::ConsolidateArgs;
pub use manifest::ManifestArgs;

/// The largest input manifest read: far more lines than a labeling job may have.
const MAX_MANIFEST_BYTES: u64 = 1 << 30;

/// What `gtseg job` does.
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Consolidate a finished job again from its workers' responses (another algorithm, a
    /// worker left out, a fixed bug): new masks, disagreement maps, a complete output
    /// manifest and a job report, under --output.
    Consolidate(Box<ConsolidateArgs>),
    /// Rebuild a job's output manifest from the input manifest and the function's saved
    /// consolidation responses, restoring the full metadata whatever Ground Truth wrote.
    Manifest(ManifestArgs),
}

/// Where a finished job is, and the label attribute to work on: what both commands take.
#[derive(Debug, clap::Args)]
pub struct JobLocation {
    /// The job's output folder, `<S3OutputPath>/<job-name>/` (it holds `annotations/`).
    #[arg(long, value_name = "URI")]
    job_output: String,
    /// The job's input manifest (line i is datasetObjectId i).
    #[arg(long, value_name = "URI")]
    manifest: String,
    /// The label attribute: the one to write (`consolidate`; a new name keeps the job's own
    /// label beside it), or the job's own (`manifest`).
    #[arg(long, value_name = "NAME")]
    label_attribute_name: String,
    /// A local directory standing in for S3 (`s3://bucket/key` is `DIR/bucket/key`).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

/// Runs a `gtseg job` command.
pub async fn run(cmd: JobCommand) -> Result<(), String> {
    match cmd {
        JobCommand::Consolidate(a) => consolidate::run(*a).await,
        JobCommand::Manifest(a) => manifest::run(a).await,
    }
}

/// The store: a local directory with `--store`, else S3 (which needs a region).
pub(crate) async fn open_store(dir: Option<&Path>) -> Result<AnyStore, String> {
    if let Some(dir) = dir {
        return Ok(AnyStore::Local(LocalStore::new(dir)));
    }
    let config = gtseg::Config::from_env().map_err(|e| e.to_string())?;
    let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    if conf.region().is_none() {
        return Err("without --store, gtseg job reads and writes S3, so it needs a region and credentials (AWS_REGION, AWS_PROFILE, ...); or give --store DIR".into());
    }
    Ok(AnyStore::S3(S3Store::from_sdk_config(
        &conf,
        config.endpoint_override,
        config.s3_timeout,
    )))
}

/// An `s3://bucket/prefix` folder given as `flag`, without its trailing slash.
fn folder(text: &str, flag: &str) -> Result<S3Uri, String> {
    S3Uri::parse(text.trim_end_matches('/')).map_err(|e| format!("{flag} {text}: {e}"))
}

/// An `s3://bucket/key` object given as `flag`.
fn object(text: &str, flag: &str) -> Result<S3Uri, String> {
    S3Uri::parse(text).map_err(|e| format!("{flag} {text}: {e}"))
}

/// The input manifest's lines, each a JSON object or why it is not; blank lines are skipped,
/// so line `i` is `datasetObjectId` `i`.
async fn read_manifest<S: ObjectStore>(
    store: &S,
    uri: &S3Uri,
) -> Result<Vec<Result<Map<String, Value>, String>>, String> {
    let bytes = store
        .get(uri, MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| format!("cannot read the input manifest: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("the input manifest {uri} is not UTF-8 text"))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(manifest_line)
        .collect())
}

/// Where a job's output manifest goes under `output`.
fn manifest_uri(output: &S3Uri) -> S3Uri {
    output.join("manifests/output/output.manifest")
}

/// Writes a JSON Lines manifest in one piece (a reader never sees half of it).
async fn put_text<S: ObjectStore>(
    store: &S,
    uri: &S3Uri,
    text: String,
    content_type: &'static str,
) -> Result<(), String> {
    let opts = PutOptions {
        content_type: Some(content_type),
        kms_key_id: None,
    };
    store
        .put(uri, text.into_bytes(), &opts)
        .await
        .map_err(|e| format!("cannot write {uri}: {e}"))
}

/// An image's metadata with its extras in place: when a response too large for Lambda moved
/// them to a report object (`report-ref`), they are read back from it. When that object
/// cannot be read, the metadata is returned as it is, and a warning says why.
pub(crate) async fn with_extras<S: ObjectStore>(store: &S, meta: &Value) -> Value {
    let Some(uri) = meta
        .get("report-ref")
        .and_then(Value::as_str)
        .and_then(|u| S3Uri::parse(u).ok())
    else {
        return meta.clone();
    };
    let extras = match store.get(&uri, 64 << 20).await {
        Ok(bytes) => serde_json::from_slice::<Map<String, Value>>(&bytes)
            .map_err(|e| format!("{uri} is not a report object: {e}")),
        Err(e) => Err(e.to_string()),
    };
    match (extras, meta.clone()) {
        (Ok(extras), Value::Object(mut m)) => {
            for (key, value) in extras {
                // Lists kept in both places (exclusions added after the move) are joined.
                match (m.get_mut(&key), value) {
                    (Some(Value::Array(here)), Value::Array(moved)) => {
                        let added = std::mem::take(here);
                        *here = moved;
                        here.extend(added);
                    }
                    (_, value) => {
                        m.insert(key, value);
                    }
                }
            }
            Value::Object(m)
        }
        (Err(why), m) => {
            tracing::warn!("an image's report is left out: {why}");
            m
        }
        (_, m) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn extras_moved_to_a_report_object_are_read_back() {
        let dir = std::env::temp_dir().join(format!("gtseg-extras-{}", std::process::id()));
        let store = LocalStore::new(&dir);
        let report = "s3://b/out/consolidated-annotation/report/0.json";
        let extras = json!({"consolidation": {"algorithm": "weighted"}, "warnings": ["w"]});
        store
            .put(
                &S3Uri::parse(report).unwrap(),
                extras.to_string().into_bytes(),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        let meta = json!({"type": "t", "report-ref": report, "warnings": ["added"]});
        let full = with_extras(&store, &meta).await;
        assert_eq!(full["consolidation"]["algorithm"], "weighted");
        assert_eq!(full["type"], "t");
        assert_eq!(full["warnings"], json!(["w", "added"]));
        // No report-ref, or one that cannot be read: the metadata as it is.
        assert_eq!(
            with_extras(&store, &json!({"type": "t"})).await,
            json!({"type": "t"})
        );
        let missing = json!({"report-ref": "s3://b/none.json"});
        assert_eq!(with_extras(&store, &missing).await, missing);
        let _ = std::fs::remove_dir_all(dir);
    }
}
