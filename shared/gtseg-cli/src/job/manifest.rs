//! `gtseg job manifest`: a job's output manifest rebuilt from its input manifest and the
//! consolidation function's saved responses, without consolidating anything again.
//!
//! Ground Truth keeps every response of the function verbatim under
//! `annotations/consolidated-annotation/consolidation-response/`; when it replaces a custom
//! function's `-metadata` with its own in `output.manifest`, this restores the full
//! metadata (the colour map above all).

use std::collections::HashMap;

use gtseg::ObjectStore;
use gtseg::finished::{
    CONSOLIDATION_RESPONSES, consolidation_response_key, output_line, parse_consolidation_response,
};
use serde_json::{Map, Value};
use tracing::{info, warn};

/// Options of `gtseg job manifest`.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    #[command(flatten)]
    job: super::JobLocation,
    /// Where `manifests/output/output.manifest` goes (may be the job's own folder).
    #[arg(long, value_name = "URI")]
    output: String,
}

/// Runs `gtseg job manifest`.
pub async fn run(a: ManifestArgs) -> Result<(), String> {
    let store = super::open_store(a.job.store.as_deref()).await?;
    let job = super::folder(&a.job.job_output, "--job-output")?;
    let output = super::folder(&a.output, "--output")?;
    let manifest = super::object(&a.job.manifest, "--manifest")?;
    let lines = super::read_manifest(&store, &manifest).await?;

    let folder = job.join(CONSOLIDATION_RESPONSES);
    let mut saved: Vec<_> = store
        .list(&folder)
        .await
        .map_err(|e| format!("cannot list the saved consolidation responses: {e}"))?
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
            .get(uri, 1 << 30)
            .await
            .map_err(|e| format!("cannot read a saved response: {e}"))?;
        match parse_consolidation_response(&bytes) {
            Ok(items) => {
                for item in items {
                    labels.insert(item.dataset_object_id, item.consolidated_annotation.content);
                }
            }
            Err(e) => warn!(object = %uri, "saved response left out: {e}"),
        }
    }
    let attr = &a.job.label_attribute_name;
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
    let uri = super::manifest_uri(&output);
    super::put_text(&store, &uri, text, "application/jsonlines").await?;
    info!(
        responses = saved.len(),
        restored, missing, manifest = %uri, "output manifest rebuilt"
    );
    eprintln!(
        "gtseg: {} lines: {restored} with their label from {} saved responses, {missing} failed; wrote {uri}",
        lines.len(),
        saved.len()
    );
    Ok(())
}
