//! `gtseg job manifest`: a job's output manifest rebuilt from its input manifest and the
//! consolidation function's saved responses, without consolidating anything again.
//!
//! Ground Truth keeps every response of the function verbatim under
//! `annotations/consolidated-annotation/consolidation-response/`; when it replaces a custom
//! function's `-metadata` with its own in `output.manifest`, this restores the full
//! metadata (the colour map above all).

use std::collections::HashMap;

use anyhow::Context as _;
use gtseg::ObjectStore;
use gtseg::finished::{
    CONSOLIDATION_RESPONSES, consolidation_response_key, output_line, output_manifest_uri,
    parse_consolidation_response,
};
use serde_json::{Map, Value};
use tracing::{info, warn};

/// Options of `gtseg job manifest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobLocation,
    /// The job's own label attribute (its `LabelAttributeName`): the one its saved responses
    /// carry.
    #[arg(long, value_name = "NAME")]
    label_attribute_name: String,
    /// Where `manifests/output/output.manifest` goes: an s3:// URI, or with --store a path
    /// inside DIR.
    #[arg(long, value_name = "URI")]
    output: String,
}

/// The largest saved response read (Lambda's responses are at most 6 MB).
const MAX_RESPONSE_OBJECT_BYTES: u64 = 1 << 30;

/// Runs `gtseg job manifest`.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let (store, job, manifest) = super::open(&a.job).await?;
    let output = crate::store::folder(&a.output, "--output", a.job.store.as_deref())?;
    let lines = super::read_manifest(&store, &manifest).await?;
    let (labels, responses) = saved_labels(&store, &job).await?;
    let attr = &a.label_attribute_name;
    let (mut restored, mut missing) = (0usize, 0usize);
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        let content = labels
            .get(&i.to_string())
            .filter(|c| c.contains_key(&format!("{attr}-metadata")));
        match content {
            Some(_) => restored += 1,
            None => missing += 1,
        }
        let reason = "no saved consolidation response for this image (Ground Truth marked it failed, or it was never consolidated)";
        let out = match line {
            Ok(input) => output_line(input, attr, content, reason),
            Err(why) => output_line(
                &Map::new(),
                attr,
                None,
                &format!("input line {i} is unusable: {why}"),
            ),
        };
        text.push_str(&out);
        text.push('\n');
    }
    let uri = output_manifest_uri(&output);
    super::put_text(&store, &uri, text, "application/jsonlines").await?;
    info!(responses, restored, missing, manifest = %uri, "output manifest rebuilt");
    eprintln!(
        "gtseg: {} lines: {restored} with their label from {responses} saved responses, {missing} failed; wrote {uri}",
        lines.len(),
    );
    Ok(())
}

/// Each image's content in the function's saved responses (the newest response for an image
/// wins), and how many responses were read.
async fn saved_labels(
    store: &gtseg::AnyStore,
    job: &gtseg::S3Uri,
) -> anyhow::Result<(HashMap<String, Map<String, Value>>, usize)> {
    let folder = job.join(CONSOLIDATION_RESPONSES);
    let mut saved: Vec<_> = store
        .list(&folder)
        .await
        .context("listing the saved consolidation responses")?
        .into_iter()
        .filter_map(|u| {
            Some((
                consolidation_response_key(&u.key()[folder.key().len()..])?,
                u,
            ))
        })
        .collect();
    // Oldest first, so that the newest response for an image is the one kept.
    saved.sort();
    let mut labels: HashMap<String, Map<String, Value>> = HashMap::new();
    for (_, uri) in &saved {
        let bytes = store
            .get(uri, MAX_RESPONSE_OBJECT_BYTES)
            .await
            .context("reading a saved response")?;
        match parse_consolidation_response(&bytes) {
            Ok(items) => {
                for item in items {
                    labels.insert(item.dataset_object_id, item.consolidated_annotation.content);
                }
            }
            Err(e) => warn!(object = %uri, "saved response left out: {e}"),
        }
    }
    Ok((labels, saved.len()))
}
