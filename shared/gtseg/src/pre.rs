//! Pre-annotation: one input-manifest line in, the worker UI's task input out (see
//! `docs/contract.md`, "Pre-annotation"). Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::event::{
    ColorMapEntry, InitialValue, LabelColor, Overlay, PreAnnotationEvent, PreAnnotationResponse,
    SEGMENTATION_TYPE, SegmentationOverlay, TaskInput,
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
    /// The job names an earlier label (`auditLabelAttributeName`) that the line lacks.
    #[error(
        "the job's auditLabelAttributeName is `{0}`, but the manifest line has no semantic-segmentation label `{0}` (with `{0}-metadata`): nothing to adjust or verify"
    )]
    NoAuditLabel(String),
}

/// The pre-annotation response for one manifest line, and the reason when it is skipped.
///
/// `audit` is the job's `auditLabelAttributeName`: when set, the earlier label that
/// adjustment and verification work on is that attribute, and a line without it is skipped.
/// Otherwise the newest earlier semantic-segmentation label on the line is used, if any.
pub fn build_task(
    event: &PreAnnotationEvent,
    classes: &ClassList,
    audit: Option<&str>,
) -> (PreAnnotationResponse, Option<SkipReason>) {
    let line = &event.data_object;
    let source = match line.get("source-ref") {
        None | Some(Value::Null) => Err(SkipReason::NoSourceRef),
        Some(Value::String(s)) => S3Uri::parse(s)
            .map(|_| s.clone())
            .map_err(|_| SkipReason::SourceRefNotS3(s.clone())),
        Some(_) => Err(SkipReason::SourceRefNotString),
    };
    let earlier = source
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|_| earlier_label(line, audit));
    let (task_object, earlier, skip) = match (source, earlier) {
        (Ok(s), Ok(e)) => (Some(s), e, None),
        (Ok(_), Err(r)) | (Err(r), _) => (None, None, Some(r)),
    };
    let task_input = TaskInput {
        initial_value: earlier.as_ref().map(EarlierLabel::initial_value),
        overlay: earlier.as_ref().map(EarlierLabel::overlay),
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

/// An earlier semantic-segmentation label on a manifest line: its mask and its classes.
#[derive(Debug, Clone, PartialEq)]
struct EarlierLabel {
    src: String,
    /// Its classes without BACKGROUND, in class order: name and colour.
    classes: Vec<(String, String)>,
}

impl EarlierLabel {
    /// The attribute `attr` of the line, when it is a semantic-segmentation label: an `s3://`
    /// mask whose `attr-metadata` has the segmentation type and a colour map. Also returns its
    /// `creation-date`.
    fn of(line: &Map<String, Value>, attr: &str) -> Option<(Self, String)> {
        let src = line.get(attr)?.as_str()?;
        S3Uri::parse(src).ok()?;
        let meta = line.get(&format!("{attr}-metadata"))?.as_object()?;
        if meta.get("type")?.as_str()? != SEGMENTATION_TYPE {
            return None;
        }
        let map = meta.get("internal-color-map")?.as_object()?;
        let mut classes: Vec<(u64, String, String)> = map
            .iter()
            .filter_map(|(k, v)| {
                let entry = serde_json::from_value::<ColorMapEntry>(v.clone()).ok()?;
                (entry.class_name != BACKGROUND).then_some((
                    k.parse().unwrap_or(u64::MAX),
                    entry.class_name,
                    entry.hex_color,
                ))
            })
            .collect();
        classes.sort();
        let created = meta
            .get("creation-date")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let label = Self {
            src: src.to_owned(),
            classes: classes.into_iter().map(|(_, n, c)| (n, c)).collect(),
        };
        Some((label, created))
    }

    fn label_mappings(&self) -> BTreeMap<String, LabelColor> {
        self.classes
            .iter()
            .map(|(n, c)| (n.clone(), LabelColor { color: c.clone() }))
            .collect()
    }

    /// What `crowd-semantic-segmentation`'s `initial-value` takes.
    fn initial_value(&self) -> InitialValue {
        InitialValue {
            src: self.src.clone(),
            label_mappings: self.label_mappings(),
        }
    }

    /// What `crowd-image-classifier`'s `overlay` takes.
    fn overlay(&self) -> Overlay {
        Overlay {
            semantic_segmentation: SegmentationOverlay {
                labels: self.classes.iter().map(|(n, _)| n.clone()).collect(),
                label_mappings: self.label_mappings(),
                src: self.src.clone(),
            },
        }
    }
}

/// The earlier label adjustment and verification work on: the `audit` attribute when the job
/// names one (a line without it is skipped), else the newest on the line, if any.
fn earlier_label(
    line: &Map<String, Value>,
    audit: Option<&str>,
) -> Result<Option<EarlierLabel>, SkipReason> {
    if let Some(attr) = audit {
        return EarlierLabel::of(line, attr)
            .map(|(label, _)| Some(label))
            .ok_or_else(|| SkipReason::NoAuditLabel(attr.to_owned()));
    }
    Ok(line
        .keys()
        .filter_map(|attr| EarlierLabel::of(line, attr))
        // Chained jobs may carry several; the newest creation-date (then the last) wins.
        .max_by(|a, b| a.1.cmp(&b.1))
        .map(|(label, _)| label))
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
            None,
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
            let (r, skip) = build_task(&event(line), &classes(), None);
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
        let (r, _) = build_task(&event(line), &classes(), None);
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
        assert_eq!(earlier_label(&event(line).data_object, None), Ok(None));
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
            earlier_label(&event(line.clone()).data_object, None)
                .unwrap()
                .unwrap()
                .src,
            "s3://bkt/new.png"
        );
        // The job's auditLabelAttributeName picks the older one instead.
        let (r, skip) = build_task(&event(line.clone()), &classes(), Some("old-ref"));
        assert_eq!(skip, None);
        assert_eq!(r.task_input.initial_value.unwrap().src, "s3://bkt/old.png");
        // A line without the named label is skipped, with the attribute in the reason.
        let (r, skip) = build_task(&event(line), &classes(), Some("verify-ref"));
        assert_eq!(skip, Some(SkipReason::NoAuditLabel("verify-ref".into())));
        assert!(!r.is_human_annotation_required);
        assert!(skip.unwrap().to_string().contains("verify-ref"));
    }

    #[test]
    fn the_overlay_lists_the_earlier_classes_in_numeric_order() {
        let entry = |n: &str, c: &str| json!({"class-name": n, "hex-color": c});
        let line = json!({"source-ref": "s3://bkt/i.jpg", "street-ref": "s3://bkt/0.png",
            "street-ref-metadata": {"type": "groundtruth/semantic-segmentation",
                "internal-color-map": {"10": entry("sign", "#00000a"), "2": entry("road", "#000002"),
                                       "0": entry("BACKGROUND", "#ffffff"), "1": entry("car", "#000001")}}});
        let (r, _) = build_task(&event(line), &classes(), None);
        let v = serde_json::to_value(&r.task_input.overlay).unwrap();
        assert_eq!(
            v["semanticSegmentation"]["labels"],
            json!(["car", "road", "sign"])
        );
        assert_eq!(v["semanticSegmentation"]["src"], "s3://bkt/0.png");
        assert_eq!(
            v["semanticSegmentation"]["labelMappings"]["sign"]["color"],
            "#00000a"
        );
        assert!(
            v["semanticSegmentation"]["labelMappings"]
                .get("BACKGROUND")
                .is_none()
        );
    }
}
