//! Label verification through the service over a local store, and the sample verification
//! event through `gtseg replay`: Ground Truth's output line, the category rule, exclusions,
//! and batches that mix masks with categories.

use std::process::Command;
use std::time::SystemTime;

use gtseg::{Config, LocalStore, Service};
use gtseg_tests::events::VERIFY_CATEGORIES;
use gtseg_tests::fixtures::{Scene, TAB10};
use gtseg_tests::{assert_succeeded, built_binary, copy_tree, temp_dir, workspace_root};
use serde_json::{Value, json};

use super::consolidation::{event, good, inline, run_with};

const CORRECT: &str = VERIFY_CATEGORIES[0];
const MISSED: &str = VERIFY_CATEGORIES[1];
const LOOSE: &str = VERIFY_CATEGORIES[2];

fn verify_event(attr: &str) -> Value {
    event(json!({"labelCategories": VERIFY_CATEGORIES, "labelAttributeName": attr}))
}

fn category(label: &str, comment: Option<&str>) -> Value {
    let mut a = json!({"label": label});
    if let Some(c) = comment {
        a["workerComment"] = json!(c);
    }
    json!({"crowd-image-classifier": a})
}

fn image(id: &str, answers: Vec<Value>) -> Value {
    json!({"datasetObjectId": id, "dataObject": {"s3Uri": "s3://b/i.jpg"}, "annotations": answers})
}

async fn verify(payload: Value, attr: &str) -> Vec<Value> {
    let dir = temp_dir("verify");
    run_with(&dir, Config::default(), &payload, verify_event(attr))
        .await
        .unwrap()
}

fn content<'a>(item: &'a Value, attr: &str) -> (&'a Value, &'a Value) {
    let c = &item["consolidatedAnnotation"]["content"];
    (&c[attr], &c[format!("{attr}-metadata")])
}

#[tokio::test]
async fn the_output_line_is_ground_truths_with_our_extras_beside_it() {
    let payload = json!([image(
        "0",
        vec![
            inline(
                "w1",
                &category(MISSED, Some("the car on the left is missing"))
            ),
            inline("w2", &category(MISSED, Some("  "))),
            inline("w3", &category(CORRECT, None)),
        ]
    )]);
    // Both attribute-name styles: the newest API text forbids `-ref`, older examples use it.
    for attr in ["verify-street", "verify-street-ref"] {
        let items = verify(payload.clone(), attr).await;
        assert_eq!(items.len(), 1);
        let (value, meta) = content(&items[0], attr);
        assert_eq!(
            value,
            &json!(1),
            "the index in the job's label list, a JSON integer"
        );
        assert!(value.is_u64());
        assert_eq!(meta["class-name"], MISSED);
        assert_eq!(meta["type"], "groundtruth/label-verification");
        assert_eq!(meta["job-name"], "labeling-job/job");
        assert_eq!(meta["human-annotated"], "yes");
        let date = meta["creation-date"].as_str().unwrap();
        assert_eq!(date.len(), "2026-11-30T10:00:00.123456".len(), "{date}");
        let confidence = meta["confidence"].as_f64().unwrap();
        assert_eq!(
            confidence,
            (confidence * 100.0).round() / 100.0,
            "2 decimals"
        );
        assert!(confidence > 0.5 && confidence <= 1.0);
        // Only non-empty comments, as written.
        assert_eq!(
            meta["worker-feedback"],
            json!([{"comment": "the car on the left is missing"}])
        );
        // Our extras, under keys Ground Truth does not use.
        assert_eq!(
            meta["votes"],
            json!({"Incorrect label - missed object": 2, "Label(s) correct": 1})
        );
        assert_eq!(meta["worker-count"], 3);
        assert_eq!(meta["consolidation"]["algorithm"], "dawid-skene");
        assert_eq!(meta["consolidation"]["rule"], "clear-majority");
        assert_eq!(
            meta["consolidation"]["workers"].as_array().unwrap().len(),
            3
        );
        assert!(meta.get("internal-color-map").is_none());
    }
}

#[tokio::test]
async fn one_worker_wins_with_confidence_zero_and_no_comment_means_no_feedback() {
    let items = verify(
        json!([image("0", vec![inline("w", &category(LOOSE, None))])]),
        "v",
    )
    .await;
    let (value, meta) = content(&items[0], "v");
    assert_eq!(value, &json!(2));
    assert_eq!(meta["confidence"], json!(0.0));
    assert_eq!(meta["consolidation"]["rule"], "single-worker");
    assert!(meta.get("worker-feedback").is_none());
}

#[tokio::test]
async fn unknown_categories_and_malformed_answers_are_excluded_with_reasons() {
    let payload = json!([
        image(
            "0",
            vec![
                inline("ok", &category(CORRECT, None)),
                inline("unknown", &category("Looks fine", None)),
                inline("number", &json!({"crowd-image-classifier": {"label": 3}})),
                inline(
                    "comment",
                    &json!({"crowd-image-classifier": {"label": CORRECT, "workerComment": {"x": 1}}})
                ),
                json!({"workerId": "text", "annotationData": {"content": "not json"}}),
            ]
        ),
        // Nothing usable: left out, so that Ground Truth marks it failed.
        image("1", vec![inline("unknown", &category("Looks fine", None))]),
    ]);
    let items = verify(payload, "v").await;
    assert_eq!(items.len(), 1, "{items:#?}");
    let (value, meta) = content(&items[0], "v");
    assert_eq!(value, &json!(0));
    assert_eq!(meta["worker-count"], 1);
    let reasons: Vec<(String, String)> = meta["excluded-workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["worker-id"].as_str().unwrap().into(),
                e["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    let ids: Vec<&str> = reasons.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(ids, ["unknown", "number", "comment", "text"]);
    assert!(
        reasons[0]
            .1
            .contains("`Looks fine` is not in the job's label list"),
        "{reasons:?}"
    );
    assert!(reasons[1].1.contains("label"), "{reasons:?}");
    assert!(reasons[2].1.contains("workerComment"), "{reasons:?}");
    assert!(reasons[3].1.contains("not JSON"), "{reasons:?}");
}

#[tokio::test]
async fn a_batch_mixing_masks_and_categories_decides_what_it_can() {
    let scene = Scene::street(24, 16, 0);
    let mask = good(&scene, &TAB10);
    let payload = json!([
        // Two categories and a mask: the categories decide, the mask is excluded.
        image(
            "0",
            vec![
                inline("a", &category(CORRECT, None)),
                inline("b", &mask),
                inline("c", &category(CORRECT, None)),
            ]
        ),
        // One of each: neither rule can decide, so the image is left out.
        image(
            "1",
            vec![inline("a", &category(CORRECT, None)), inline("b", &mask)]
        ),
        // Masks only, but the job's labels are categories: no mask label is known.
        image("2", vec![inline("a", &mask), inline("b", &mask)]),
    ]);
    let items = verify(payload, "v").await;
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["datasetObjectId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0"], "{items:#?}");
    let (value, meta) = content(&items[0], "v");
    assert_eq!(value, &json!(0));
    assert_eq!(meta["excluded-workers"][0]["worker-id"], "b");
    assert!(
        meta["excluded-workers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("is a mask"),
        "{meta}"
    );
    // And a mask job whose batch holds a stray category: the category is excluded.
    let dir = temp_dir("verify-mixed-mask");
    let payload = json!([image(
        "0",
        vec![
            inline("a", &mask),
            inline("b", &category(CORRECT, None)),
            inline("c", &mask),
        ]
    )]);
    let items = run_with(&dir, Config::default(), &payload, event(json!({})))
        .await
        .unwrap();
    let meta = &items[0]["consolidatedAnnotation"]["content"]["Job-ref-metadata"];
    assert_eq!(meta["type"], "groundtruth/semantic-segmentation");
    assert_eq!(meta["worker-count"], 2);
    assert!(
        meta["excluded-workers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("verification category")
    );
}

/// The batch where the category rule and a plain majority disagree. Workers `good1`–`good3`
/// always pick the right category and `bad1`–`bad3` never do; 24 images show it, each
/// decided by a clear majority of the good ones. On the last image, three bad workers pick
/// `MISSED` and two good ones `CORRECT` (a third good one `LOOSE`): a plain majority says
/// `MISSED` (3 of 6), but those three were right on none of the 24 images and the two on all
/// of them, so `CORRECT` is by far the likelier truth, and it is what EM answers.
#[tokio::test]
async fn em_beats_a_plurality_of_workers_the_batch_shows_to_be_wrong() {
    let cats = VERIFY_CATEGORIES;
    let bad = ["bad1", "bad2", "bad3"];
    let mut images: Vec<Value> = (0..24)
        .map(|i| {
            let (truth, wrong) = (cats[i % 3], cats[(i + 1) % 3]);
            image(
                &i.to_string(),
                vec![
                    inline("good1", &category(truth, None)),
                    inline("good2", &category(truth, None)),
                    inline("good3", &category(truth, None)),
                    inline(bad[i % 3], &category(wrong, None)),
                    inline(bad[(i + 1) % 3], &category(wrong, None)),
                ],
            )
        })
        .collect();
    images.push(image(
        "contested",
        vec![
            inline("bad1", &category(MISSED, None)),
            inline("bad2", &category(MISSED, None)),
            inline("bad3", &category(MISSED, None)),
            inline("good1", &category(CORRECT, None)),
            inline("good2", &category(CORRECT, None)),
            inline("good3", &category(LOOSE, None)),
        ],
    ));
    let items = verify(Value::Array(images), "v").await;
    assert_eq!(items.len(), 25);
    for (i, item) in items[..24].iter().enumerate() {
        assert_eq!(content(item, "v").0, &json!(i % 3));
    }
    let (value, meta) = content(&items[24], "v");
    assert_eq!(
        meta["votes"],
        json!({"Incorrect label - missed object": 3, "Label(s) correct": 2,
                               "Incorrect label - segmentation not accurate enough": 1})
    );
    assert_eq!(value, &json!(0), "{meta:#}");
    assert_eq!(meta["consolidation"]["rule"], "posterior");
    assert!(meta["confidence"].as_f64().unwrap() >= 0.9, "{meta:#}");
    let reliability = |w: &str| {
        meta["consolidation"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["worker-id"] == w)
            .unwrap()["reliability"]
            .as_f64()
            .unwrap()
    };
    assert!(reliability("good1") > 0.9 && reliability("bad1") < 0.2);
}

/// The verification walkthrough of `docs/verification.md`: the sample events replay from a fresh clone.
#[test]
fn the_sample_verification_events_replay() {
    let store = temp_dir("verify-replay");
    copy_tree(&workspace_root().join("events/store"), &store).unwrap();
    let run = |event: &str| {
        let out = Command::new(built_binary("gtseg"))
            .arg("replay")
            .arg(workspace_root().join("events").join(event))
            .arg("--store")
            .arg(&store)
            .arg("--labeling-job")
            .arg(workspace_root().join("events/labeling-job/verify-street.json"))
            .env_remove("LABEL_CATEGORY_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert_succeeded(&out);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let pre = run("pre-annotation/verification-line.json");
    assert_eq!(pre["taskInput"]["labels"], json!(VERIFY_CATEGORIES));
    assert_eq!(
        pre["taskInput"]["overlay"]["semanticSegmentation"]["labels"],
        json!(gtseg_tests::fixtures::LABELS)
    );
    let items = run("consolidation/verify-street.json");
    let values: Vec<&Value> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| content(i, "verify-street").0)
        .collect();
    assert_eq!(values, [&json!(0), &json!(2)]);
    let (_, meta) = content(&items[1], "verify-street");
    assert_eq!(
        meta["excluded-workers"][0]["worker-id"],
        "private.us-east-1.V2W3X4Y5Z6A7B8"
    );
    // Nothing was written: verification has no masks.
    let out = store
        .join("gt-example-bucket/output/verify-street/annotations/consolidated-annotation/output");
    assert!(!out.exists());
}

#[tokio::test]
async fn the_sample_verification_batch_gives_the_documented_line() {
    // The same batch through the service: the first image's line, as `docs/contract.md` shows it.
    let store = temp_dir("verify-doc");
    copy_tree(&workspace_root().join("events/store"), &store).unwrap();
    let ev: Value = serde_json::from_slice(
        &std::fs::read(workspace_root().join("events/consolidation/verify-street.json")).unwrap(),
    )
    .unwrap();
    let config = Config {
        label_category_config: Some(gtseg_tests::events::VERIFY_CONFIG_URI.into()),
        ..Config::default()
    };
    let s = Service::new(LocalStore::new(&store), config);
    let items = s.consolidation(&ev, SystemTime::now(), None).await.unwrap();
    let item = serde_json::to_value(&items[0]).unwrap();
    let (value, meta) = content(&item, "verify-street");
    assert_eq!(value, &json!(0));
    assert_eq!(meta["class-name"], CORRECT);
    assert_eq!(
        meta["worker-feedback"],
        json!([{"comment": "the car on the left is missing"}])
    );
}
