//! `events/` is the contract: every JSON file parses into our wire types, serialises, and
//! parses back to the same value; and the files are exactly what the fixture code builds.

use std::path::{Path, PathBuf};

use gtseg::event::{
    ConsolidationEvent, LabelCategoryConfig, PayloadItem, PreAnnotationEvent, WorkerAnswer,
    find_answer_object,
};
use gtseg_tests::{events, files_under, workspace_root};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parse → serialise → parse gives the same typed value, and the serialised JSON keeps every
/// field the original had (nothing we own is dropped).
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    v: &Value,
    what: &Path,
) -> T {
    let a: T =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}", what.display()));
    let text = serde_json::to_string(&a).unwrap();
    let b: T = serde_json::from_str(&text).unwrap();
    assert_eq!(a, b, "{} does not round-trip", what.display());
    a
}

#[test]
fn every_event_file_round_trips_through_the_wire_types() {
    let files: Vec<PathBuf> = files_under(&workspace_root().join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert!(
        files.len() >= 7,
        "expected the sample events, found {files:?}"
    );
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
        } else if v.is_array() {
            for item in v.as_array().unwrap() {
                let it: PayloadItem = round_trip(item, f);
                for a in it.annotations {
                    if let Some(c) = a.annotation_data.content {
                        let inner: Value = serde_json::from_str(&c).unwrap();
                        round_trip::<WorkerAnswer>(find_answer_object(&inner).unwrap(), f);
                    }
                }
            }
            "payload"
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
    ] {
        assert!(kinds.contains_key(k), "no {k} among {files:?}");
    }
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
