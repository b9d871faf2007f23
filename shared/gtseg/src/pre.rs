//! Pre-annotation: one input-manifest line in, the worker UI's task input out (see
//! `docs/contract.md`, "Pre-annotation"). Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::event::{
    ColorMapEntry, InitialValue, LabelColor, PreAnnotationEvent, PreAnnotationResponse,
    SEGMENTATION_TYPE, TaskInput,
};
use crate::labels::{BACKGROUND, ClassList};
use crate::uri::S3Uri;

/// Why a manifest line is not shown to workers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// No `source-ref`: a text line, or an empty one.
    #[error(
        "the manifest line has no `source-ref` (a `source` text line or an empty line): nothing to label"
    )]
    NoSourceRef,
    /// `source-ref` is not a string.
    #[error("`source-ref` is not a string: nothing to label")]
    SourceRefNotString,
    /// `source-ref` is not an `s3://` URI.
    #[error("`source-ref` {0:?} is not an s3:// URI: nothing to label")]
    SourceRefNotS3(String),
}

/// The pre-annotation response for one manifest line, and the reason when it is skipped.
pub fn build_task(
    event: &PreAnnotationEvent,
    classes: &ClassList,
) -> (PreAnnotationResponse, Option<SkipReason>) {
    let line = &event.data_object;
    let source = match line.get("source-ref") {
        None | Some(Value::Null) => Err(SkipReason::NoSourceRef),
        Some(Value::String(s)) => S3Uri::parse(s)
            .map(|_| s.clone())
            .map_err(|_| SkipReason::SourceRefNotS3(s.clone())),
        Some(_) => Err(SkipReason::SourceRefNotString),
    };
    let (task_object, skip) = match source {
        Ok(s) => (Some(s), None),
        Err(r) => (None, Some(r)),
    };
    let task_input = TaskInput {
        initial_value: task_object.as_ref().and_then(|_| initial_value(line)),
        task_object,
        labels: classes.labels().to_vec(),
        manifest_line: line.clone(),
    };
    let response = PreAnnotationResponse {
        task_input,
        is_human_annotation_required: skip.is_none(),
    };
    (response, skip)
}

/// The `initial-value` for an adjustment job: the most recent previous semantic-segmentation
/// label on the line (an `X` whose `X-metadata` has the segmentation type and a colour map).
pub(crate) fn initial_value(line: &Map<String, Value>) -> Option<InitialValue> {
    line.iter()
        .filter_map(|(attr, value)| {
            let src = value.as_str()?;
            S3Uri::parse(src).ok()?;
            let meta = line.get(&format!("{attr}-metadata"))?.as_object()?;
            if meta.get("type")?.as_str()? != SEGMENTATION_TYPE {
                return None;
            }
            let map = meta.get("internal-color-map")?.as_object()?;
            let created = meta
                .get("creation-date")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Some((created, src.to_owned(), map))
        })
        // Chained jobs may carry several; the newest creation-date (then the last) wins.
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, src, map)| InitialValue {
            src,
            label_mappings: label_mappings(map),
        })
}

/// `class-name → {color}` from an `internal-color-map`, BACKGROUND left out.
fn label_mappings(map: &Map<String, Value>) -> BTreeMap<String, LabelColor> {
    map.values()
        .filter_map(|v| serde_json::from_value::<ColorMapEntry>(v.clone()).ok())
        .filter(|e| e.class_name != BACKGROUND)
        .map(|e| (e.class_name, LabelColor { color: e.hex_color }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(line: Value) -> PreAnnotationEvent {
        serde_json::from_value(
            json!({"version": "2018-10-16", "labelingJobArn": "arn", "dataObject": line}),
        )
        .unwrap()
    }

    fn classes() -> ClassList {
        ClassList::new(["car", "road"]).unwrap()
    }

    #[test]
    fn image_line_becomes_a_task() {
        let (r, skip) = build_task(
            &event(json!({"source-ref": "s3://bkt/i/1.jpg", "k": 1})),
            &classes(),
        );
        assert_eq!(skip, None);
        assert!(r.is_human_annotation_required);
        assert_eq!(
            r.task_input.task_object.as_deref(),
            Some("s3://bkt/i/1.jpg")
        );
        assert_eq!(r.task_input.labels, ["car", "road"]);
        assert_eq!(r.task_input.manifest_line["k"], 1);
        assert_eq!(r.task_input.initial_value, None);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["isHumanAnnotationRequired"], json!(true));
        assert!(v["taskInput"].get("initialValue").is_none());
    }

    #[test]
    fn lines_with_nothing_to_label_are_skipped() {
        let cases = [
            (json!({"source": "some text"}), SkipReason::NoSourceRef),
            (json!({"source-ref": 5}), SkipReason::SourceRefNotString),
            (
                json!({"source-ref": "https://x/y.jpg"}),
                SkipReason::SourceRefNotS3("https://x/y.jpg".into()),
            ),
        ];
        for (line, want) in cases {
            let (r, skip) = build_task(&event(line), &classes());
            assert_eq!(skip, Some(want));
            assert!(!r.is_human_annotation_required);
            assert_eq!(r.task_input.task_object, None);
        }
    }

    #[test]
    fn initial_value_comes_from_the_colour_map_without_background() {
        let line = json!({
            "source-ref": "s3://bkt/i/1.jpg",
            "street-ref": "s3://bkt/out/0.png",
            "street-ref-metadata": {
                "type": "groundtruth/semantic-segmentation",
                "creation-date": "2026-01-01T00:00:00.000000",
                "internal-color-map": {
                    "0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.9},
                    "1": {"class-name": "car", "hex-color": "#2ca02c", "confidence": 0.9},
                    "2": {"class-name": "road", "hex-color": "#1f77b4"}}}});
        let (r, _) = build_task(&event(line), &classes());
        let iv = r.task_input.initial_value.unwrap();
        assert_eq!(iv.src, "s3://bkt/out/0.png");
        assert_eq!(iv.label_mappings.len(), 2);
        assert_eq!(iv.label_mappings["car"].color, "#2ca02c");
        assert!(!iv.label_mappings.contains_key(BACKGROUND));
    }

    #[test]
    fn other_label_types_give_no_initial_value() {
        let line = json!({
            "source-ref": "s3://bkt/i/1.jpg",
            "boxes": "s3://bkt/out/0.json",
            "boxes-metadata": {"type": "groundtruth/object-detection", "internal-color-map": {}}});
        assert_eq!(initial_value(&event(line).data_object), None);
    }

    #[test]
    fn newest_previous_label_wins() {
        let meta = |d: &str| {
            json!({"type": "groundtruth/semantic-segmentation", "creation-date": d,
                                    "internal-color-map": {"1": {"class-name": "car", "hex-color": "#000001"}}})
        };
        let line = json!({"source-ref": "s3://bkt/i.jpg",
                          "new-ref": "s3://bkt/new.png", "new-ref-metadata": meta("2026-02-01T00:00:00.000000"),
                          "old-ref": "s3://bkt/old.png", "old-ref-metadata": meta("2026-01-01T00:00:00.000000")});
        assert_eq!(
            initial_value(&event(line).data_object).unwrap().src,
            "s3://bkt/new.png"
        );
    }
}
