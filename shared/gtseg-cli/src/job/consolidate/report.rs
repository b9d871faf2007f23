//! The end of a run: the output manifest and the job report, from the saved responses.

use std::collections::{BTreeMap, HashMap};

use gtseg::event::ConsolidationResponseItem;
use gtseg::finished::{output_line, parse_consolidation_response};
use gtseg::{Algorithm, ObjectStore, format_creation_date};
use serde_json::{Map, Value, json};

use super::Run;

/// Per worker over the job: images answered, included, the sum of agreements, reliability.
#[derive(Default)]
struct WorkerTally {
    images: u64,
    included: u64,
    agreement: f64,
    agreed_images: u64,
    /// The weighted fusion's weight (the same in every image with one model for the job).
    weight: Option<f64>,
    /// Verification: the estimated chance of picking the right category.
    reliability: Option<f64>,
    excluded_by_user: bool,
}

/// Writes `manifests/output/output.manifest` (every input line, in order, with the new label
/// or a failure) and `manifests/output/job-report.json` from the saved responses.
pub(super) async fn write_manifest_and_report(
    run: &Run,
    lines: &[Result<Map<String, Value>, String>],
    algorithm: Algorithm,
) -> Result<(), String> {
    let mut text = String::new();
    let mut workers: BTreeMap<String, WorkerTally> = BTreeMap::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    // The algorithm the function reports (with --via-lambda, its own setting).
    let mut used: Option<String> = None;
    for (k, range) in run.batches.iter().enumerate() {
        let uri = run.response_uri(k);
        let bytes = run
            .store
            .get(&uri, 1 << 30)
            .await
            .map_err(|e| format!("cannot read a batch's saved response: {e}"))?;
        let items: Vec<ConsolidationResponseItem> =
            parse_consolidation_response(&bytes).map_err(|e| format!("{uri}: {e}"))?;
        let mut by_id: HashMap<String, Map<String, Value>> = items
            .into_iter()
            .map(|i| (i.dataset_object_id, i.consolidated_annotation.content))
            .collect();
        for i in range.clone() {
            let content = by_id.remove(&i.to_string());
            if let Some(c) = &content {
                let meta = c
                    .get(&format!("{}-metadata", run.attr))
                    .unwrap_or(&Value::Null);
                let meta = super::super::with_extras(&run.store, meta).await;
                used.get_or_insert_with(|| {
                    meta["consolidation"]["algorithm"]
                        .as_str()
                        .unwrap_or(algorithm.name())
                        .to_owned()
                });
                tally(&mut workers, &meta);
                ok += 1;
            } else {
                failed += 1;
            }
            let reason = if run.responses[i].is_empty() {
                "no worker response for this image".to_owned()
            } else {
                "no usable worker answer: every answer was excluded (the consolidation log gives each reason)".to_owned()
            };
            let line = match &lines[i] {
                Ok(input) => output_line(input, &run.attr, content.as_ref(), &reason),
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
        workers.entry(w.clone()).or_default().excluded_by_user = true;
    }
    let manifest = super::super::manifest_uri(&run.output);
    super::super::put_text(&run.store, &manifest, text, "application/jsonlines").await?;
    let mut ranked: Vec<(&String, &WorkerTally)> = workers.iter().collect();
    let mean =
        |t: &WorkerTally| (t.agreed_images > 0).then(|| t.agreement / t.agreed_images as f64);
    ranked.sort_by(|a, b| {
        mean(b.1)
            .unwrap_or(-1.0)
            .total_cmp(&mean(a.1).unwrap_or(-1.0))
            .then(a.0.cmp(b.0))
    });
    let report = json!({
        "job-output": run.output.to_string(),
        "label-attribute-name": run.attr,
        "algorithm": used.as_deref().unwrap_or(algorithm.name()),
        "creation-date": format_creation_date(run.now),
        "images": lines.len(),
        "consolidated": ok,
        "failed": failed,
        "workers": ranked.iter().map(|(id, t)| {
            let mut w = json!({"worker-id": id, "images": t.images, "included": t.included});
            if let Some(m) = mean(t) { w["mean-agreement"] = json!((m * 10_000.0).round() / 10_000.0); }
            if let Some(r) = t.weight { w["weight"] = json!(r); }
            if let Some(r) = t.reliability { w["reliability"] = json!(r); }
            if t.excluded_by_user { w["excluded-by-user"] = json!(true); }
            w
        }).collect::<Vec<_>>(),
    });
    let report_uri = run.output.join("manifests/output/job-report.json");
    let body = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    super::super::put_text(&run.store, &report_uri, body, "application/json").await?;
    eprintln!(
        "gtseg: {} images: {ok} consolidated, {failed} failed; manifest {manifest}, report {report_uri}",
        lines.len()
    );
    Ok(())
}

/// Adds one image's workers (from its metadata, extras included) to the job's tallies.
fn tally(workers: &mut BTreeMap<String, WorkerTally>, meta: &Value) {
    let report = &meta["consolidation"]["workers"];
    for w in report.as_array().into_iter().flatten() {
        let Some(id) = w["worker-id"].as_str() else {
            continue;
        };
        let t = workers.entry(id.to_owned()).or_default();
        t.images += 1;
        // Mask reports say `included`; verification reports list included workers only.
        if w["included"].as_bool().unwrap_or(true) {
            t.included += 1;
        }
        if let Some(a) = w["agreement"].as_f64() {
            t.agreement += a;
            t.agreed_images += 1;
        }
        if let Some(r) = w["weight"].as_f64() {
            t.weight = Some(r);
        }
        if let Some(r) = w["reliability"].as_f64() {
            t.reliability = Some(r);
        }
    }
    for e in meta["excluded-workers"].as_array().into_iter().flatten() {
        if let Some(id) = e["worker-id"].as_str()
            && !report
                .as_array()
                .is_some_and(|r| r.iter().any(|w| w["worker-id"] == id))
        {
            workers.entry(id.to_owned()).or_default().images += 1;
        }
    }
}
