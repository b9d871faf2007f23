//! The end of a run: the output manifest and the job report, from the saved responses and
//! the batches' notes. Every input line comes out: with its new label, kept as the job's
//! machine label, or as a failure line with its reason.

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
use crate::outcome::Incomplete;

/// The largest saved response read back.
const MAX_RESPONSE_OBJECT_BYTES: u64 = 1 << 30;

/// Writes `manifests/output/output.manifest` (every input line, in order) and
/// `manifests/output/job-report.json`. Ends [`Incomplete`] when a line failed for a reason
/// outside the workers' data.
pub(super) async fn write_manifest_and_report(run: &Run) -> anyhow::Result<()> {
    let notes = run.batch_notes().await?;
    let (mut text, mut report) = (String::new(), JobReport::default());
    let mut retry = Vec::new();
    for (k, range) in run.batches.iter().enumerate() {
        let mut by_id = saved_response(run, k).await?;
        let batch_notes = notes.get(&k);
        for i in range.clone() {
            let id = i.to_string();
            let content = match by_id.remove(&id) {
                Some(c) => {
                    report.add_labelled(&metadata(run, &c).await);
                    Some(c)
                }
                None => run.machine.get(&i).map(|(value, meta)| {
                    report.add_machine_labelled();
                    Map::from_iter([
                        (run.attr.clone(), value.clone()),
                        (format!("{}-metadata", run.attr), meta.clone()),
                    ])
                }),
            };
            let failed = batch_notes.and_then(|n| n.failed.get(&id));
            if content.is_none() {
                report.add_failed();
                if failed.is_some_and(|f| f.retry) {
                    retry.push(i);
                }
            }
            let reason = failure_reason(run, i, failed.map(|f| f.reason.as_str()));
            text.push_str(&line(run, i, content.as_ref(), &reason));
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
        "gtseg: {} images: {} consolidated, {} kept as labelled by machine, {} failed; manifest {manifest}, report {report_uri}",
        run.lines.len(),
        report.consolidated(),
        report.machine_labelled(),
        report.failed(),
    );
    if !retry.is_empty() {
        let shown: Vec<String> = retry.iter().take(10).map(ToString::to_string).collect();
        return Err(Incomplete(format!(
            "{} images failed for a reason outside the workers' data (lines {}{}; each line names its object): rerun with --resume to try them again",
            retry.len(),
            shown.join(", "),
            if retry.len() > 10 { ", …" } else { "" }
        ))
        .into());
    }
    Ok(())
}

/// Why line `i` has no label: what its batch noted, else what its responses show.
fn failure_reason(run: &Run, i: usize, noted: Option<&str>) -> String {
    match noted {
        Some(reason) => reason.to_owned(),
        None if run.responses[i].is_empty() => "no worker response for this image".to_owned(),
        None => "no usable worker answer: every answer was excluded (the consolidation log gives each reason)".to_owned(),
    }
}

/// Output line `i`: the input line with `content`, or a failure line.
fn line(run: &Run, i: usize, content: Option<&Map<String, Value>>, reason: &str) -> String {
    match &run.lines[i] {
        Ok(input) => output_line(input, &run.attr, content, reason),
        Err(why) => output_line(
            &Map::new(),
            &run.attr,
            None,
            &format!("input line {i} is unusable: {why}"),
        ),
    }
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
    let items: Vec<ConsolidationResponseItem> = parse_consolidation_response(&bytes)
        .and_then(|items| items.into_iter().collect())
        .with_context(|| format!("{uri}"))?;
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
