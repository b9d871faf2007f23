//! Ground Truth's response items: the mask's URI and its `-metadata`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::image::ImageOutcome;
use crate::event::{
    AnswersReport, ColorMapEntry, ConsolidatedAnnotation, ConsolidationResponseItem,
    SEGMENTATION_TYPE, SegmentationMetadata,
};
use crate::labels::ClassList;
use crate::uri::S3Uri;

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

/// Moves an item's optional extras (`excluded-workers`, `warnings`, `consolidation`) out of
/// its metadata, names `report` there as `report-ref`, and returns the extras as JSON (`None`
/// when it has none).
pub(crate) fn take_extras(
    item: &mut ConsolidationResponseItem,
    attr: &str,
    report: &S3Uri,
) -> Option<Vec<u8>> {
    let meta = item
        .consolidated_annotation
        .content
        .get_mut(&format!("{attr}-metadata"))?
        .as_object_mut()?;
    let mut extras = Map::new();
    for key in ["excluded-workers", "warnings", "consolidation"] {
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
