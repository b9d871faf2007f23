//! Ground Truth's response items: the mask's URI and its `-metadata`; and the metadata's
//! optional extras, moved to a report object when the response would be too large for
//! Lambda (`take_extras`) and read back into the metadata by the tools ([`with_extras`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::image::ImageOutcome;
use crate::event::{
    AnswersReport, ColorMapEntry, ConsolidatedAnnotation, ConsolidationResponseItem,
    SEGMENTATION_TYPE, SegmentationMetadata,
};
use crate::labels::ClassList;
use crate::store::{ObjectStore, StoreError};
use crate::uri::S3Uri;

/// The metadata keys that move to a report object when a response would be too large, in
/// tiers: first our extras; then, when those are not enough (long verification comments),
/// the per-category votes and the workers' comments too. The required fields always stay.
pub(crate) const EXTRAS: [&[&str]; 2] = [
    &["excluded-workers", "warnings", "consolidation"],
    &[
        "excluded-workers",
        "warnings",
        "consolidation",
        "votes",
        "worker-feedback",
    ],
];

/// The largest report object read back.
const MAX_REPORT_BYTES: u64 = 64 << 20;

/// What every image of a batch shares in its response item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchFacts<'a> {
    /// The job's label attribute name (the response's key).
    pub(crate) label_attribute_name: &'a str,
    pub(crate) classes: &'a ClassList,
    /// Warnings about the whole batch (such as a class list guessed from the answers).
    pub(crate) warnings: &'a [String],
    /// `labeling-job/<name>`.
    pub(crate) job_name: &'a str,
    pub(crate) creation_date: &'a str,
}

/// One written image: its id, where its mask is, and what deciding it gave.
#[derive(Debug)]
pub(crate) struct WrittenImage {
    pub(crate) id: String,
    pub(crate) mask_uri: S3Uri,
    pub(crate) outcome: Box<ImageOutcome>,
}

/// The response item of one written image.
pub(crate) fn response_item(
    batch: BatchFacts<'_>,
    image: &WrittenImage,
) -> ConsolidationResponseItem {
    let outcome = &image.outcome;
    let internal_color_map: BTreeMap<u32, ColorMapEntry> = (0..batch.classes.num_classes())
        .map(|k| {
            let entry = ColorMapEntry {
                class_name: batch.classes.name(k).to_owned(),
                hex_color: outcome.palette[k].to_string(),
                confidence: Some(outcome.confidence),
            };
            (k as u32, entry)
        })
        .collect();
    let meta = SegmentationMetadata {
        internal_color_map,
        kind: SEGMENTATION_TYPE.to_owned(),
        human_annotated: "yes".to_owned(),
        creation_date: batch.creation_date.to_owned(),
        job_name: batch.job_name.to_owned(),
        adjustment_status: outcome.adjustment_status.map(str::to_owned),
        answers: AnswersReport {
            worker_count: Some(outcome.included.len() as u32),
            excluded_workers: outcome.excluded.clone(),
            warnings: batch.warnings.to_vec(),
        },
        consolidation: Some(outcome.report.clone()),
    };
    labelled_item(
        &image.id,
        batch.label_attribute_name,
        Value::String(image.mask_uri.to_string()),
        &meta,
    )
}

/// A response item: the image's `value` under `attr`, and `meta` under `attr-metadata`.
pub(crate) fn labelled_item(
    id: &str,
    attr: &str,
    value: Value,
    meta: &impl serde::Serialize,
) -> ConsolidationResponseItem {
    let mut content = Map::new();
    content.insert(attr.to_owned(), value);
    // Serialising a struct of strings, numbers and maps with string keys cannot fail.
    content.insert(
        format!("{attr}-metadata"),
        serde_json::to_value(meta).unwrap_or(Value::Null),
    );
    ConsolidationResponseItem {
        dataset_object_id: id.to_owned(),
        consolidated_annotation: ConsolidatedAnnotation { content },
    }
}

/// Moves an item's metadata keys `keys` (one of the tiers of [`EXTRAS`]) out of its metadata,
/// names `report` there as `report-ref`, and returns what moved as JSON (`None` when it has
/// none of them).
pub(crate) fn take_extras(
    item: &mut ConsolidationResponseItem,
    attr: &str,
    report: &S3Uri,
    keys: &[&str],
) -> Option<Vec<u8>> {
    let meta = item
        .consolidated_annotation
        .content
        .get_mut(&format!("{attr}-metadata"))?
        .as_object_mut()?;
    let mut extras = Map::new();
    for &key in keys {
        if let Some(v) = meta.remove(key) {
            extras.insert(key.to_owned(), v);
        }
    }
    if extras.is_empty() {
        return None;
    }
    meta.insert("report-ref".to_owned(), Value::String(report.to_string()));
    serde_json::to_vec(&extras).ok()
}

/// An image's report object could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ExtrasError {
    /// `report-ref` is not an `s3://` URI.
    #[error("report-ref {0:?} is not an s3:// URI")]
    BadRef(String),
    /// The report object could not be read.
    #[error("the image's report object could not be read: {0}")]
    Read(StoreError),
    /// The report object is not a JSON object.
    #[error("{uri} is not an image's report object: {error}")]
    NotJson {
        /// The report object.
        uri: S3Uri,
        /// What the parser said.
        error: serde_json::Error,
    },
}

/// An image's metadata with its extras in place: when a response too large for Lambda moved
/// them to a report object (`report-ref`), they are read back from it. Lists kept in both
/// places (exclusions added after the move) are joined, the moved ones first. Metadata
/// without `report-ref` comes back as it is.
pub async fn with_extras<S: ObjectStore>(store: &S, meta: &Value) -> Result<Value, ExtrasError> {
    let Some(reference) = meta.get("report-ref").and_then(Value::as_str) else {
        return Ok(meta.clone());
    };
    let uri = S3Uri::parse(reference).map_err(|_| ExtrasError::BadRef(reference.to_owned()))?;
    let bytes = store
        .get(&uri, MAX_REPORT_BYTES)
        .await
        .map_err(ExtrasError::Read)?;
    let extras: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|error| ExtrasError::NotJson { uri, error })?;
    let mut merged = meta.clone();
    if let Value::Object(m) = &mut merged {
        for (key, value) in extras {
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
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LocalStore, PutOptions};
    use serde_json::json;

    #[tokio::test]
    async fn extras_taken_out_are_read_back_into_the_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let report = S3Uri::parse("s3://b/out/consolidated-annotation/report/0.json").unwrap();
        let meta =
            json!({"type": "t", "warnings": ["w"], "consolidation": {"algorithm": "weighted"}});
        let mut item = ConsolidationResponseItem {
            dataset_object_id: "0".into(),
            consolidated_annotation: ConsolidatedAnnotation {
                content: Map::from_iter([("a-metadata".to_owned(), meta.clone())]),
            },
        };
        let extras = take_extras(&mut item, "a", &report, EXTRAS[0]).unwrap();
        store
            .put(&report, extras, &PutOptions::default())
            .await
            .unwrap();
        let mut slim = item.consolidated_annotation.content["a-metadata"].clone();
        assert!(slim.get("consolidation").is_none());
        // An exclusion noted after the move joins the moved list.
        slim["warnings"] = json!(["added"]);
        let full = with_extras(&store, &slim).await.unwrap();
        assert_eq!(full["consolidation"]["algorithm"], "weighted");
        assert_eq!(full["type"], "t");
        assert_eq!(full["warnings"], json!(["w", "added"]));
        // No report-ref: the metadata as it is; one that cannot be read: an error.
        assert_eq!(with_extras(&store, &meta).await.unwrap(), meta);
        let missing = json!({"report-ref": "s3://b/none.json"});
        assert!(matches!(
            with_extras(&store, &missing).await,
            Err(ExtrasError::Read(_))
        ));
    }
}
