//! The Rust vote against an independent implementation: `tests/bench/numpy_pillow.py`
//! (numpy + Pillow, written from the contract's rules alone). Noisy synthetic crowds with many ties,
//! abstentions and several colour schemes must give the same class at every pixel and the
//! same confidence.

use std::process::Command;
use std::time::SystemTime;

use gtseg::{Config, LocalStore, Service};
use gtseg_tests::events::OTHER_COLORS;
use gtseg_tests::fixtures::{
    Background, LABELS, Scene, TAB10, answer_json, decode_indexed, mappings_for, worker_png,
};
use gtseg_tests::harness::require;
use gtseg_tests::{assert_succeeded, temp_dir, workspace_root};
use serde_json::{Value, json};

/// A deterministic scrambler: worker `k`'s view of `scene`, with `rate`% of pixels replaced
/// by another class (or an unknown colour, which abstains).
fn noisy(scene: &Scene, k: u64, rate: u64) -> (Scene, Vec<usize>) {
    let mut s = scene.clone();
    let mut unknown = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(k + 1);
    for (i, c) in s.classes.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 100 < rate {
            match (x >> 8) % 6 {
                5 => unknown.push(i),
                v => *c = v as u8 % 5,
            }
        }
    }
    (s, unknown)
}

#[tokio::test]
async fn majority_vote_matches_the_numpy_pillow_oracle() {
    if !require(
        "python3",
        &["-c", "import numpy, PIL"],
        "majority_vote_matches_the_numpy_pillow_oracle",
    ) {
        return;
    }
    let dir = temp_dir("oracle");
    let (w, h) = (48, 36);
    let mut payload = Vec::new();
    for (img, workers) in [(0u64, 2usize), (1, 3), (2, 4), (3, 5), (4, 6), (5, 1)] {
        let truth = Scene::street(w, h, img as i64 - 2);
        let annotations: Vec<Value> = (0..workers)
            .map(|k| {
                let (view, unknown) = noisy(&truth, img * 10 + k as u64, 30);
                let colors = if k % 2 == 1 { &OTHER_COLORS } else { &TAB10 };
                let bg = if k % 3 == 2 { Background::White } else { Background::Transparent };
                let answer = answer_json("seg", &worker_png(&view, colors, bg, &unknown), w, h, &mappings_for(&view, colors));
                json!({"workerId": format!("w{k}"), "annotationData": {"content": answer.to_string()}})
            })
            .collect();
        payload.push(json!({"datasetObjectId": img.to_string(), "annotations": annotations}));
    }
    let payload_key =
        "out/job/annotations/consolidated-annotation/consolidation-request/iteration-1/p.json";
    let path = dir.join("oracle-bucket").join(payload_key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, Value::Array(payload).to_string()).unwrap();
    let event = json!({"labelingJobArn": "arn:aws:sagemaker:us-east-1:1:labeling-job/oracle",
        "labelCategories": LABELS, "labelAttributeName": "o-ref",
        "outputConfig": "s3://oracle-bucket/out/job/annotations",
        "payload": {"s3Uri": format!("s3://oracle-bucket/{payload_key}")}});
    std::fs::write(dir.join("event.json"), event.to_string()).unwrap();

    let items = Service::new(LocalStore::new(&dir), Config::default())
        .consolidation(&event, SystemTime::now(), None)
        .await
        .unwrap();
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/bench/numpy_pillow.py"))
        .arg(&dir)
        .args(["--repeat", "1"])
        .output()
        .unwrap();
    assert_succeeded(&out);

    let oracle_dir =
        dir.join("oracle-bucket/out/job/annotations/consolidated-annotation/numpy-output");
    let confidences: Value =
        serde_json::from_slice(&std::fs::read(oracle_dir.join("confidence.json")).unwrap())
            .unwrap();
    assert_eq!(items.len(), 6);
    let mut ties_seen = 0;
    for item in &items {
        let id = &item.dataset_object_id;
        let ours = decode_indexed(
            &std::fs::read(dir.join(format!(
                "oracle-bucket/out/job/annotations/consolidated-annotation/output/{id}.png"
            )))
            .unwrap(),
        );
        let theirs = image_indices(&std::fs::read(oracle_dir.join(format!("{id}.png"))).unwrap());
        assert_eq!(
            ours.2, theirs,
            "image {id}: the vote differs from the oracle"
        );
        let meta = &item.consolidated_annotation.content["o-ref-metadata"];
        assert_eq!(
            meta["internal-color-map"]["0"]["confidence"], confidences[id],
            "image {id}"
        );
        ties_seen += usize::from(
            meta["internal-color-map"]["0"]["confidence"]
                .as_f64()
                .unwrap()
                < 0.9,
        );
    }
    assert!(ties_seen >= 4, "the crowds are noisy enough to disagree");
}

/// Palette indices of an 8-bit palette PNG, whatever its palette.
fn image_indices(bytes: &[u8]) -> Vec<u8> {
    let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
    d.set_transformations(png::Transformations::IDENTITY);
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut buf).unwrap();
    buf
}
