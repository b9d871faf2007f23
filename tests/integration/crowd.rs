//! Weighted fusion against the majority vote on synthetic crowds with a known truth, through
//! the service over a local store. The accuracies are printed (run with `--nocapture`) and are
//! the figures of the README.

use std::path::Path;
use std::time::SystemTime;

use gtseg::Algorithm;
use gtseg::{Config, LocalStore, Service};
use gtseg_tests::crowd::{Behaviour, Crowd, Labelled, pixel_accuracy};
use gtseg_tests::fixtures::{
    Background, LABELS, TAB10, answer_json, decode_indexed, mappings_for, worker_png,
};
use gtseg_tests::temp_dir;
use serde_json::{Value, json};

const OUT: &str = "s3://crowd/out";
const PAYLOAD: &str =
    "s3://crowd/out/consolidated-annotation/consolidation-request/iteration-1/p.json";
const SIZE: (u32, u32) = (192, 128);

/// Writes the batch's payload under `dir`.
fn write_payload(dir: &Path, batch: &[Labelled]) {
    let items: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let annotations: Vec<Value> = img
                .answers
                .iter()
                .map(|(id, scene)| {
                    let png = worker_png(scene, &TAB10, Background::Transparent, &[]);
                    let answer = answer_json(
                        "crowd-semantic-segmentation",
                        &png,
                        scene.width,
                        scene.height,
                        &mappings_for(scene, &TAB10),
                    );
                    json!({"workerId": id, "annotationData": {"content": answer.to_string()}})
                })
                .collect();
            json!({"datasetObjectId": i.to_string(), "dataObject": {"s3Uri": format!("s3://crowd/in/{i}.png")},
                   "annotations": annotations})
        })
        .collect();
    let path = dir.join(PAYLOAD.strip_prefix("s3://").unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, Value::Array(items).to_string()).unwrap();
}

/// Consolidates the batch with `algorithm`: the masks' class indices and the response items.
async fn consolidate(dir: &Path, algorithm: Algorithm) -> (Vec<Vec<u8>>, Vec<Value>) {
    let config = Config {
        algorithm,
        ..Config::default()
    };
    let event = json!({
        "version": "2018-10-06",
        "labelingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/crowd",
        "labelCategories": LABELS,
        "labelAttributeName": "crowd-ref",
        "outputConfig": OUT,
        "payload": {"s3Uri": PAYLOAD}});
    let items = Service::new(LocalStore::new(dir), config)
        .consolidation(&event, SystemTime::now(), None)
        .await
        .unwrap();
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect();
    let masks = items
        .iter()
        .map(|item| {
            let uri = item["consolidatedAnnotation"]["content"]["crowd-ref"]
                .as_str()
                .unwrap();
            let bytes = std::fs::read(dir.join(uri.strip_prefix("s3://").unwrap())).unwrap();
            decode_indexed(&bytes).2
        })
        .collect();
    (masks, items)
}

/// Majority's and weighted's pixel accuracy on `crowd`, and weighted's response items.
async fn compare(name: &str, crowd: &Crowd, images: usize, seed: u64) -> (f64, f64, Vec<Value>) {
    let batch = crowd.label(images, SIZE, seed);
    let dir = temp_dir(&format!("crowd-{name}"));
    write_payload(&dir, &batch);
    let accuracy = |masks: &[Vec<u8>]| {
        assert_eq!(masks.len(), batch.len(), "every image is answered");
        pixel_accuracy(
            batch
                .iter()
                .zip(masks)
                .map(|(b, m)| (b.truth.classes.as_slice(), m.as_slice())),
        )
    };
    let (majority, _) = consolidate(&dir, Algorithm::Majority).await;
    let (weighted, items) = consolidate(&dir, Algorithm::Weighted).await;
    let (m, w) = (accuracy(&majority), accuracy(&weighted));
    println!(
        "crowd `{name}` ({images} images of {}×{}, {} of {} workers each): majority {:.2} %, weighted {:.2} %",
        SIZE.0,
        SIZE.1,
        crowd.per_image,
        crowd.workers.len(),
        m * 100.0,
        w * 100.0
    );
    (m, w, items)
}

fn pool(workers: &[(&str, Behaviour)], per_image: usize) -> Crowd {
    Crowd {
        workers: workers
            .iter()
            .map(|(id, b)| ((*id).to_owned(), *b))
            .collect(),
        per_image,
    }
}

/// Each worker's reported weight in the first image it labelled.
fn weight(items: &[Value], worker: &str) -> f64 {
    items
        .iter()
        .flat_map(|i| {
            i["consolidatedAnnotation"]["content"]["crowd-ref-metadata"]["consolidation"]["workers"]
                .as_array()
                .unwrap()
        })
        .find(|w| w["worker-id"] == worker)
        .and_then(|w| w["weight"].as_f64())
        .unwrap_or_else(|| panic!("{worker} has a weight"))
}

const HONEST: Behaviour = Behaviour::Honest { omit: 0.3 };
const CAREFUL: Behaviour = Behaviour::Honest { omit: 0.1 };

#[tokio::test]
async fn weighted_beats_majority_when_two_of_five_skip_small_objects() {
    let crowd = pool(
        &[
            ("honest-1", HONEST),
            ("honest-2", HONEST),
            ("honest-3", HONEST),
            ("skips-1", Behaviour::SkipsSmall),
            ("skips-2", Behaviour::SkipsSmall),
        ],
        5,
    );
    let (majority, weighted, items) = compare("two-skip-small", &crowd, 24, 7).await;
    assert!(
        weighted >= majority + 0.02,
        "weighted {weighted} must beat majority {majority} by 2 points"
    );
    // The skippers are trusted less than every honest worker, and the report says why.
    for s in ["skips-1", "skips-2"] {
        for h in ["honest-1", "honest-2", "honest-3"] {
            assert!(weight(&items, s) < weight(&items, h), "{s} vs {h}");
        }
    }
    let report =
        &items[0]["consolidatedAnnotation"]["content"]["crowd-ref-metadata"]["consolidation"];
    assert_eq!(report["algorithm"], "weighted");
}

#[tokio::test]
async fn weighted_is_no_worse_than_majority_with_honest_workers_only() {
    let crowd = pool(
        &[
            ("a", CAREFUL),
            ("b", CAREFUL),
            ("c", CAREFUL),
            ("d", CAREFUL),
            ("e", CAREFUL),
        ],
        3,
    );
    let (majority, weighted, _) = compare("honest-only", &crowd, 24, 11).await;
    assert!(
        weighted >= majority - 0.001,
        "weighted {weighted} vs majority {majority}"
    );
}

#[tokio::test]
async fn weighted_is_no_worse_than_majority_with_a_spammer_in_the_pool() {
    let crowd = pool(
        &[
            ("a", CAREFUL),
            ("b", CAREFUL),
            ("c", CAREFUL),
            ("d", CAREFUL),
            ("spammer", Behaviour::Spammer),
        ],
        3,
    );
    let (majority, weighted, items) = compare("one-spammer", &crowd, 30, 13).await;
    assert!(
        weighted >= majority - 0.001,
        "weighted {weighted} vs majority {majority}"
    );
    for h in ["a", "b", "c", "d"] {
        assert!(
            weight(&items, "spammer") < weight(&items, h),
            "spammer vs {h}"
        );
    }
}
