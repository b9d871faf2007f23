//! `events/` is the contract: every JSON file parses into our wire types, and serialising
//! what was parsed gives back the file's JSON, member for member, so no field that a wire
//! type drops goes unnoticed. `events/aws/` holds samples AWS published, verbatim; the rest
//! is exactly what the fixture code builds.

use std::path::{Path, PathBuf};

use gtseg::JobDescription;
use gtseg::event::{
    AnswerObject, ConsolidationEvent, ConsolidationResponseItem, LabelCategoryConfig, PayloadItem,
    PreAnnotationEvent, SEGMENTATION_TYPE, SegmentationMetadata, VerificationAnswer, WorkerAnswer,
    find_answer_object, take_any_answer_object,
};
use gtseg::finished::parse_worker_response;
use gtseg_tests::{events, files_under, is_example_output, workspace_root};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses `v` as `T`, serialises it, and checks that the JSON is `v` again: every member
/// kept, none added, every value the same (member order aside, which JSON does not define).
fn round_trip<T: DeserializeOwned + Serialize>(v: &Value, what: &Path) -> T {
    let typed: T =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}", what.display()));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &again,
        v,
        "{}: serialising the wire type does not give the file's JSON back",
        what.display()
    );
    typed
}

fn json_files() -> Vec<PathBuf> {
    files_under(&workspace_root().join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !is_example_output(p))
        .collect()
}

#[test]
fn every_event_file_round_trips_through_the_wire_types() {
    let files = json_files();
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for f in &files {
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let kind = if v.get("dataObject").is_some() && v.get("payload").is_none() {
            let e: PreAnnotationEvent = round_trip(&v, f);
            assert_eq!(
                Value::Object(e.data_object.clone()),
                v["dataObject"],
                "dataObject is kept verbatim"
            );
            "pre-annotation event"
        } else if v.get("payload").is_some() {
            round_trip::<ConsolidationEvent>(&v, f);
            "consolidation event"
        } else if v
            .get(0)
            .is_some_and(|i| i.get("consolidatedAnnotation").is_some())
        {
            // A saved consolidation response (the sample finished job's): the function's
            // response items, each label's metadata Ground Truth's type.
            for item in v.as_array().unwrap() {
                let it: ConsolidationResponseItem = round_trip(item, f);
                let meta = it
                    .consolidated_annotation
                    .content
                    .iter()
                    .find(|(k, _)| k.ends_with("-metadata"))
                    .expect("a label's metadata");
                round_trip::<SegmentationMetadata>(meta.1, f);
            }
            "saved consolidation response"
        } else if v.get("answers").is_some() {
            // A worker-response object: each answer's content is an answer of a mask's shape.
            let answers = parse_worker_response(&std::fs::read(f).unwrap()).unwrap();
            for a in answers {
                let a = a.expect("every sample answer is well formed");
                round_trip::<WorkerAnswer>(find_answer_object(&a.answer_content).unwrap(), f);
            }
            "worker-response object"
        } else if v.is_array() {
            for item in v.as_array().unwrap() {
                let it: PayloadItem = round_trip(item, f);
                for a in it.annotations {
                    if let Some(c) = a.annotation_data.content {
                        let inner: Value = serde_json::from_str(&c).unwrap();
                        match take_any_answer_object(inner).expect("an answer") {
                            AnswerObject::Mask(m) => {
                                round_trip::<WorkerAnswer>(&m, f);
                            }
                            AnswerObject::Verification(a) => {
                                round_trip::<VerificationAnswer>(&a, f);
                                *kinds.entry("verification answer").or_default() += 1;
                            }
                        }
                    }
                }
            }
            "payload"
        } else if v.get("LabelingJobArn").is_some() {
            // A saved describe-labeling-job output: the functions read only a few of its
            // members (jobs.rs checks it against botocore's model through the stub).
            let job: JobDescription = serde_json::from_value(v.clone()).unwrap();
            assert!(job.label_category_config.is_some(), "{}", f.display());
            "saved job description"
        } else if v.get("labels").is_some() {
            round_trip::<LabelCategoryConfig>(&v, f);
            "label config"
        } else {
            round_trip::<WorkerAnswer>(find_answer_object(&v).expect("a worker answer"), f);
            "worker answer"
        };
        *kinds.entry(kind).or_default() += 1;
    }
    for k in [
        "pre-annotation event",
        "consolidation event",
        "payload",
        "label config",
        "worker answer",
        "saved job description",
        "verification answer",
        "saved consolidation response",
        "worker-response object",
    ] {
        assert!(kinds.contains_key(k), "no {k} among {files:?}");
    }
}

#[test]
fn aws_published_samples_are_among_the_events() {
    let aws = workspace_root().join("events/aws");
    for (file, what) in [
        ("post-annotation-request.json", "labelCategories"),
        ("test-page-consolidation-event.json", "labelAttributeName"),
        ("recipe-consolidation-event.json", "outputConfig"),
        ("consolidation-request.json", "annotationData"),
        ("recipe-pre-annotation-event.json", "dataObject"),
    ] {
        let text = std::fs::read_to_string(aws.join(file)).unwrap();
        assert!(text.contains(what), "{file} lacks {what}");
        assert!(
            json_files().contains(&aws.join(file)),
            "{file} is checked by the round trip"
        );
    }
    // The AWS-documented event carries labelCategories as plain strings; they are read in
    // order.
    let v: Value =
        serde_json::from_slice(&std::fs::read(aws.join("post-annotation-request.json")).unwrap())
            .unwrap();
    let ev: ConsolidationEvent = serde_json::from_value(v).unwrap();
    let names: Vec<&str> = ev
        .label_categories
        .iter()
        .flatten()
        .map(|c| c.name())
        .collect();
    assert_eq!(names, ["Ex Category1", "Ex Category2", "Ex Category3"]);
}

/// AWS's published output-manifest line of a semantic-segmentation job parses, and its
/// semantic-segmentation metadata round-trips through ours.
#[test]
fn aws_output_manifest_line_parses_into_our_metadata() {
    let text =
        std::fs::read_to_string(workspace_root().join("events/aws/output-manifest-line.txt"))
            .unwrap();
    // As published it has one comma too many, after the last member of an object; that
    // comma, and nothing else, is removed.
    let repaired = text.replacen(
        "\"job-name\": \"label-city-streets\",\n     }",
        "\"job-name\": \"label-city-streets\"\n     }",
        1,
    );
    assert_ne!(repaired, text, "the published typo is still where it was");
    let line: Value = serde_json::from_str(&repaired).unwrap();
    let what = Path::new("events/aws/output-manifest-line.txt");
    let meta: SegmentationMetadata = round_trip(&line["city-streets-ref-metadata"], what);
    assert_eq!(meta.kind, SEGMENTATION_TYPE);
    let keys: Vec<u32> = meta.internal_color_map.keys().copied().collect();
    assert_eq!(keys, [0, 1, 2]);
    assert_eq!(meta.internal_color_map[&0].class_name, "BACKGROUND");
    assert_eq!(meta.internal_color_map[&2].hex_color, "#f28333");
}

#[test]
fn events_folder_is_exactly_what_the_fixture_code_builds() {
    let root = workspace_root().join("events");
    for (rel, bytes) in events::sample_files() {
        let on_disk = std::fs::read(root.join(&rel)).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "events/{rel} differs from the fixture code: run `cargo run -p gtseg-tests --bin make-events`"
        );
    }
}
