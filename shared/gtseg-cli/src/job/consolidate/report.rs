//! The end of a run: the output manifest and the job report, from the saved responses.

use std::collections::HashMap;

use anyhow::Context as _;
use gtseg::event::ConsolidationResponseItem;
use gtseg::finished::{
    JobReport, ReportHeader, job_report_uri, output_line, output_manifest_uri,
    parse_consolidation_response,
};
use gtseg::{ObjectStore, format_creation_date, with_extras};
use serde_json::{Map, Value};

use super::plan::Run;

/// The largest saved response read back.
const MAX_RESPONSE_OBJECT_BYTES: u64 = 1 << 30;

/// Writes `manifests/output/output.manifest` (every input line, in order, with the new label
/// or a failure) and `manifests/output/job-report.json` from the saved responses.
pub(super) async fn write_manifest_and_report(run: &Run) -> anyhow::Result<()> {
    let mut text = String::new();
    let mut report = JobReport::default();
    for (k, range) in run.batches.iter().enumerate() {
        let mut by_id = saved_response(run, k).await?;
        for i in range.clone() {
            let content = by_id.remove(&i.to_string());
            match &content {
                Some(c) => report.add_labelled(&metadata(run, c).await),
                None => report.add_failed(),
            }
            let reason = if run.responses[i].is_empty() {
                "no worker response for this image"
            } else {
                "no usable worker answer: every answer was excluded (the consolidation log gives each reason)"
            };
            let line = match &run.lines[i] {
                Ok(input) => output_line(input, &run.attr, content.as_ref(), reason),
                Err(why) => output_line(
                    &Map::new(),
                    &run.attr,
                    None,
                    &format!("input line {i} is unusable: {why}"),
                ),
            };
            text.push_str(&line);
            text.push('\n');
        }
    }
    for w in &run.exclude {
        report.excluded_by_user(w);
    }
    let output = &run.layout.output;
    let manifest = output_manifest_uri(output);
    crate::job::put_text(&run.store, &manifest, text, "application/jsonlines").await?;
    let header = ReportHeader {
        output: &output.to_string(),
        label_attribute_name: &run.attr,
        algorithm: run.algorithm.name(),
        creation_date: &format_creation_date(run.now),
        images: run.lines.len(),
    };
    let report_uri = job_report_uri(output);
    let body = serde_json::to_string_pretty(&report.to_json(&header))?;
    crate::job::put_text(&run.store, &report_uri, body, "application/json").await?;
    eprintln!(
        "gtseg: {} images: {} consolidated, {} failed; manifest {manifest}, report {report_uri}",
        run.lines.len(),
        report.consolidated(),
        report.failed(),
    );
    Ok(())
}

/// Batch `k`'s saved response, each image's content by id.
async fn saved_response(
    run: &Run,
    k: usize,
) -> anyhow::Result<HashMap<String, Map<String, Value>>> {
    let uri = run.layout.response_uri(k);
    let bytes = run
        .store
        .get(&uri, MAX_RESPONSE_OBJECT_BYTES)
        .await
        .context("reading a batch's saved response")?;
    let items: Vec<ConsolidationResponseItem> =
        parse_consolidation_response(&bytes).with_context(|| format!("{uri}"))?;
    Ok(items
        .into_iter()
        .map(|i| (i.dataset_object_id, i.consolidated_annotation.content))
        .collect())
}

/// An image's metadata with its extras read back; when its report object cannot be read,
/// the metadata as it is, with a warning (the manifest line keeps the reference).
async fn metadata(run: &Run, content: &Map<String, Value>) -> Value {
    let meta = content
        .get(&format!("{}-metadata", run.attr))
        .unwrap_or(&Value::Null);
    with_extras(&run.store, meta).await.unwrap_or_else(|e| {
        tracing::warn!("an image's report is left out of the job report: {e}");
        meta.clone()
    })
}
