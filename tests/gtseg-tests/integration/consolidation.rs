//! Consolidation through the service over a local store, as `docs/contract.md` describes it:
//! exclusions, failures, keys, labels.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use gtseg::{Config, LocalStore, Service, ServiceError};
use gtseg_tests::events::OTHER_COLORS;
use gtseg_tests::fixtures::{
    Background, LABELS, Scene, TAB10, answer_json, decode_indexed, hex, mappings_for, worker_png,
};
use gtseg_tests::{files_under, temp_dir};
use serde_json::{Value, json};

pub(crate) const OUT: &str = "s3://test-bucket/out/job/annotations";
const PAYLOAD: &str = "s3://test-bucket/out/job/annotations/consolidated-annotation/consolidation-request/iteration-1/p.json";

pub(crate) fn event(extra: Value) -> Value {
    let mut e = json!({
        "version": "2018-10-06",
        "labelingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/job",
        "labelCategories": LABELS,
        "labelAttributeName": "Job-ref",
        "outputConfig": OUT,
        "payload": {"s3Uri": PAYLOAD}});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            e.as_object_mut().unwrap().remove(k);
        } else {
            e[k] = v.clone();
        }
    }
    e
}

fn put(dir: &Path, uri: &str, bytes: &[u8]) {
    let p = dir.join(uri.strip_prefix("s3://").unwrap());
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

pub(crate) async fn run_with(
    dir: &Path,
    config: Config,
    payload: &Value,
    ev: Value,
) -> Result<Vec<Value>, ServiceError> {
    put(dir, PAYLOAD, payload.to_string().as_bytes());
    let s = Service::new(LocalStore::new(dir), config);
    let items = s.consolidation(&ev, SystemTime::now(), None).await?;
    Ok(items
        .into_iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect())
}

async fn run(dir: &Path, payload: &Value) -> Vec<Value> {
    run_with(dir, Config::default(), payload, event(json!({})))
        .await
        .unwrap()
}

pub(crate) fn inline(worker: &str, answer: &Value) -> Value {
    json!({"workerId": worker, "annotationData": {"content": answer.to_string()}})
}

pub(crate) fn good(scene: &Scene, colors: &[[u8; 3]]) -> Value {
    answer_json(
        "crowd-semantic-segmentation",
        &worker_png(scene, colors, Background::Transparent, &[]),
        scene.width,
        scene.height,
        &mappings_for(scene, colors),
    )
}

fn meta(item: &Value) -> &Value {
    &item["consolidatedAnnotation"]["content"]["Job-ref-metadata"]
}

fn mask_of(dir: &Path, item: &Value) -> (u32, u32, Vec<u8>, Vec<u8>, bool) {
    let uri = item["consolidatedAnnotation"]["content"]["Job-ref"]
        .as_str()
        .unwrap();
    decode_indexed(&std::fs::read(dir.join(uri.strip_prefix("s3://").unwrap())).unwrap())
}

#[tokio::test]
async fn palette_index_equals_map_key_whatever_colours_workers_used() {
    // Regression guard for Ground Truth's 2020 bug: palette order must follow the class keys,
    // not the order or colours in which workers happened to paint.
    let dir = temp_dir("palette");
    let scene = Scene::street(24, 16, 0).without(4, 0); // nobody paints "building"
    let payload = json!([{"datasetObjectId": "0", "annotations": [
        inline("w1", &good(&scene, &OTHER_COLORS)), inline("w2", &good(&scene, &OTHER_COLORS))]}]);
    let items = run(&dir, &payload).await;
    let (_, _, idx, pal, trns) = mask_of(&dir, &items[0]);
    assert!(!trns);
    assert_eq!(idx, scene.classes, "pixel value = class index");
    let map = meta(&items[0])["internal-color-map"].as_object().unwrap();
    for (k, e) in map {
        let k: usize = k.parse().unwrap();
        let rgb = [pal[3 * k], pal[3 * k + 1], pal[3 * k + 2]];
        assert_eq!(e["hex-color"], hex(rgb), "palette[{k}] = map[{k}]");
    }
    assert_eq!(
        map["1"]["hex-color"],
        hex(OTHER_COLORS[0]),
        "the workers' own colour for car"
    );
    assert_eq!(
        map["4"]["hex-color"],
        hex(TAB10[0]),
        "unused label: first unused tab10 colour"
    );
    assert_eq!(map["0"]["hex-color"], "#ffffff");
}

#[tokio::test]
async fn broken_answers_are_excluded_with_reasons_and_the_rest_decide() {
    let dir = temp_dir("exclusions");
    let scene = Scene::street(24, 16, 0);
    let ok = good(&scene, &TAB10);
    let png = worker_png(&scene, &TAB10, Background::Transparent, &[]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut a = ok.clone();
        f(&mut a["crowd-semantic-segmentation"]);
        a
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut bad_crc = png.clone();
    bad_crc[30] ^= 0xff; // inside IHDR's data: the CRC no longer matches
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "not-json",
            json!({"workerId": "not-json", "annotationData": {"content": "{nope"}}),
            "not JSON",
        ),
        (
            "wrong-shape",
            inline(
                "wrong-shape",
                &json!({"crowd-semantic-segmentation": {"boundingBoxes": []}}),
            ),
            "labeledImage",
        ),
        (
            "bad-b64",
            inline(
                "bad-b64",
                &with(&|a| a["labeledImage"]["pngImageData"] = json!("@@not base64@@")),
            ),
            "base64",
        ),
        (
            "truncated",
            inline(
                "truncated",
                &with(&|a| a["labeledImage"]["pngImageData"] = json!(b64(&png[..png.len() / 2]))),
            ),
            "corrupt",
        ),
        (
            "bad-crc",
            inline(
                "bad-crc",
                &with(&|a| a["labeledImage"]["pngImageData"] = json!(b64(&bad_crc))),
            ),
            "corrupt",
        ),
        (
            "unknown-label",
            inline(
                "unknown-label",
                &with(&|a| a["labelMappings"]["tree"] = json!({"color": "#010203"})),
            ),
            "`tree`",
        ),
        (
            "bad-colour",
            inline(
                "bad-colour",
                &with(&|a| a["labelMappings"]["car"] = json!({"color": "green"})),
            ),
            "\"green\"",
        ),
        (
            "shared-colour",
            inline(
                "shared-colour",
                &with(&|a| a["labelMappings"]["road"] = json!({"color": hex(TAB10[0])})),
            ),
            "same colour",
        ),
        (
            "props",
            inline(
                "props",
                &with(&|a| a["inputImageProperties"] = json!({"width": 25, "height": 16})),
            ),
            "inputImageProperties",
        ),
        (
            "no-data",
            json!({"workerId": "no-data", "annotationData": {}}),
            "neither",
        ),
        (
            "missing-s3",
            json!({"workerId": "missing-s3", "annotationData": {"s3Uri": "s3://test-bucket/nope.json"}}),
            "s3://test-bucket/nope.json",
        ),
        (
            "https",
            json!({"workerId": "https", "annotationData": {"s3uri": "https://example.com/a.json"}}),
            "not an s3:// URI",
        ),
        (
            "file",
            json!({"workerId": "file", "annotationData": {"s3Uri": "file:///etc/passwd"}}),
            "not an s3:// URI",
        ),
        (
            "wrong-type",
            json!({"workerId": "wrong-type", "annotationData": {"content": json!({"x": {"labeledImage": {"pngImageData": 5}}}).to_string()}}),
            "labeledImage.pngImageData",
        ),
    ];
    let mut anns = vec![inline("good-1", &ok), inline("good-2", &ok)];
    anns.extend(cases.iter().map(|c| c.1.clone()));
    let items = run_with(
        &dir,
        Config {
            limits: gtseg::Limits {
                max_answers_per_image: 254,
                ..Default::default()
            },
            ..Config::default()
        },
        &json!([{"datasetObjectId": "img", "annotations": anns}]),
        event(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(items.len(), 1);
    let m = meta(&items[0]);
    assert_eq!(m["worker-count"], 2);
    let excluded = m["excluded-workers"].as_array().unwrap();
    assert_eq!(excluded.len(), cases.len());
    for ((worker, _, needle), e) in cases.iter().zip(excluded) {
        assert_eq!(e["worker-id"], *worker, "exclusions keep payload order");
        let reason = e["reason"].as_str().unwrap();
        assert!(
            reason.contains(needle),
            "{worker}: {reason:?} lacks {needle:?}"
        );
    }
    assert_eq!(mask_of(&dir, &items[0]).2, scene.classes);
}

#[tokio::test]
async fn unknown_colours_abstain_and_are_counted_out_of_the_vote() {
    let dir = temp_dir("abstain");
    let scene = Scene::street(24, 16, 0);
    // Worker 2 paints every car pixel in an unknown colour: those pixels abstain, so worker 1
    // alone decides them, and the result is still the truth.
    let noise: Vec<usize> = (0..scene.classes.len())
        .filter(|&i| scene.classes[i] == 1)
        .collect();
    let w2 = answer_json(
        "seg",
        &worker_png(&scene, &TAB10, Background::Transparent, &noise),
        24,
        16,
        &mappings_for(&scene, &TAB10),
    );
    let items = run(&dir, &json!([{"datasetObjectId": "0", "annotations": [inline("w1", &good(&scene, &TAB10)), inline("w2", &w2)]}])).await;
    assert_eq!(mask_of(&dir, &items[0]).2, scene.classes);
    let conf = meta(&items[0])["internal-color-map"]["0"]["confidence"]
        .as_f64()
        .unwrap();
    let expected = 1.0 - 0.5 * noise.len() as f64 / scene.classes.len() as f64;
    assert_eq!(conf, (expected * 1e5).round() / 1e5);
}

#[tokio::test]
async fn images_without_usable_answers_are_left_out_and_the_batch_succeeds() {
    let dir = temp_dir("leftout");
    let scene = Scene::street(24, 16, 0);
    let payload = json!([
        {"datasetObjectId": "all-bad", "annotations": [{"workerId": "x", "annotationData": {"content": "garbage"}}]},
        {"datasetObjectId": "fine", "annotations": [inline("w", &good(&scene, &TAB10))]},
        {"datasetObjectId": "no-answers", "annotations": []},
        {"datasetObjectId": "no-annotations-key"},
        {"annotations": "item without an id"},
        "not even an object",
    ]);
    let items = run(&dir, &payload).await;
    let ids: Vec<_> = items
        .iter()
        .map(|i| i["datasetObjectId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fine"]);
    let written =
        files_under(&dir.join("test-bucket/out/job/annotations/consolidated-annotation/output"));
    assert_eq!(written.len(), 1, "no mask for images left out: {written:?}");
}

#[tokio::test]
async fn duplicated_ids_keep_the_first_occurrence() {
    let dir = temp_dir("dup");
    let a = Scene::street(24, 16, 0);
    let b = Scene::street(24, 16, 0).without(1, 2);
    let payload = json!([
        {"datasetObjectId": "7", "annotations": [inline("w", &good(&a, &TAB10))]},
        {"datasetObjectId": "7", "annotations": [inline("w", &good(&b, &TAB10))]}]);
    let items = run(&dir, &payload).await;
    assert_eq!(items.len(), 1);
    assert_eq!(mask_of(&dir, &items[0]).2, a.classes);
}

#[tokio::test]
async fn hostile_ids_cannot_leave_the_output_folder() {
    let dir = temp_dir("ids");
    let scene = Scene::street(8, 8, 0);
    let ids = [
        "../../x",
        "/abs",
        "a/../../b",
        "..",
        ".",
        "ok-id_1.x",
        "é ü",
        "a\\..\\b",
    ];
    let payload: Vec<Value> =
        ids.iter().map(|id| json!({"datasetObjectId": id, "annotations": [inline("w", &good(&scene, &TAB10))]})).collect();
    let items = run(&dir, &Value::Array(payload)).await;
    assert_eq!(items.len(), ids.len());
    let folder = dir.join("test-bucket/out/job/annotations/consolidated-annotation");
    let mut uris = std::collections::HashSet::new();
    for it in &items {
        let uri = it["consolidatedAnnotation"]["content"]["Job-ref"]
            .as_str()
            .unwrap();
        assert!(
            uri.starts_with(&format!("{OUT}/consolidated-annotation/output/")),
            "{uri}"
        );
        let name = &uri[OUT.len() + "/consolidated-annotation/output/".len()..];
        assert!(!name.contains('/') && !name.starts_with('.'), "{uri}");
        assert!(
            uris.insert(uri.to_owned()),
            "distinct ids get distinct keys"
        );
    }
    assert!(uris.contains(&format!(
        "{OUT}/consolidated-annotation/output/ok-id_1.x.png"
    )));
    // Everything written is inside the folder (besides the payload we put there ourselves).
    for f in files_under(&dir) {
        assert!(
            f.starts_with(&folder) || f.ends_with("p.json"),
            "{} escaped",
            f.display()
        );
    }
}

#[tokio::test]
async fn output_config_is_derived_from_the_payload_uri_when_missing() {
    let dir = temp_dir("derive");
    let scene = Scene::street(8, 8, 0);
    let payload =
        json!([{"datasetObjectId": "0", "annotations": [inline("w", &good(&scene, &TAB10))]}]);
    let items = run_with(
        &dir,
        Config::default(),
        &payload,
        event(json!({"outputConfig": null})),
    )
    .await
    .unwrap();
    assert_eq!(
        items[0]["consolidatedAnnotation"]["content"]["Job-ref"],
        format!("{OUT}/consolidated-annotation/output/0.png")
    );
}

#[tokio::test]
async fn class_list_comes_from_event_then_config_then_workers_with_a_warning() {
    let scene = Scene::street(8, 8, 0).without(4, 0);
    let payload =
        json!([{"datasetObjectId": "0", "annotations": [inline("w", &good(&scene, &TAB10))]}]);
    let names = |item: &Value| -> Vec<String> {
        let m = meta(item)["internal-color-map"].as_object().unwrap();
        (0..m.len())
            .map(|k| m[&k.to_string()]["class-name"].as_str().unwrap().to_owned())
            .collect()
    };

    // Objects form of labelCategories.
    let dir = temp_dir("labels-objects");
    let cats: Vec<Value> = LABELS.iter().map(|l| json!({"label": l})).collect();
    let items = run_with(
        &dir,
        Config::default(),
        &payload,
        event(json!({"labelCategories": cats})),
    )
    .await
    .unwrap();
    assert_eq!(
        names(&items[0]),
        ["BACKGROUND", "car", "road", "person", "building"]
    );

    // No labelCategories: the configured file.
    let dir = temp_dir("labels-config");
    put(
        &dir,
        "s3://test-bucket/labels.json",
        br#"{"labels":[{"label":"building"},{"label":"person"},{"label":"road"},{"label":"car"}]}"#,
    );
    let cfg = Config {
        label_category_config: Some("s3://test-bucket/labels.json".into()),
        ..Config::default()
    };
    let items = run_with(&dir, cfg, &payload, event(json!({"labelCategories": null})))
        .await
        .unwrap();
    assert_eq!(
        names(&items[0]),
        ["BACKGROUND", "building", "person", "road", "car"]
    );
    let (_, _, idx, _, _) = mask_of(&dir, &items[0]);
    assert_eq!(
        idx.iter().copied().max(),
        Some(4),
        "car is class 4 under this config"
    );
    assert!(meta(&items[0]).get("warnings").is_none());

    // Neither: the sorted union of the workers' labels, with a warning in the output.
    let dir = temp_dir("labels-union");
    let items = run_with(
        &dir,
        Config::default(),
        &payload,
        event(json!({"labelCategories": null})),
    )
    .await
    .unwrap();
    assert_eq!(names(&items[0]), ["BACKGROUND", "car", "person", "road"]);
    assert!(
        meta(&items[0])["warnings"][0]
            .as_str()
            .unwrap()
            .contains("sorted union")
    );
}

#[tokio::test]
async fn internal_color_map_keys_come_in_numeric_order() {
    let dir = temp_dir("twelve");
    let scene = Scene::street(8, 8, 0);
    let payload =
        json!([{"datasetObjectId": "0", "annotations": [inline("w", &good(&scene, &TAB10))]}]);
    let twelve: Vec<String> = LABELS
        .iter()
        .map(|l| (*l).to_owned())
        .chain((5..=12).map(|i| format!("extra-{i}")))
        .collect();
    let items = run_with(
        &dir,
        Config::default(),
        &payload,
        event(json!({"labelCategories": twelve})),
    )
    .await
    .unwrap();
    // The raw JSON text, as the Lambda returns it: consumers walk the map in this order.
    let text = serde_json::to_string(&meta(&items[0])["internal-color-map"]).unwrap();
    let keys: Vec<usize> = (0..=12)
        .map(|k| text.find(&format!("\"{k}\":")).expect("every class"))
        .collect();
    assert!(keys.windows(2).all(|p| p[0] < p[1]), "{text}");
    assert!(text.contains(r#""12":{"class-name":"extra-12""#), "{text}");
}

#[tokio::test]
async fn adjustment_status_says_whether_a_worker_changed_the_earlier_mask() {
    let scene = Scene::street(16, 12, 0);
    let answer = |modified: Option<bool>| {
        let mut a = good(&scene, &TAB10);
        if let Some(m) = modified {
            a["crowd-semantic-segmentation"]["initialValueModified"] = m.into();
        }
        a
    };
    for (flags, want) in [
        (vec![Some(true), Some(false)], Some("adjusted")),
        (vec![Some(false), Some(false)], Some("unadjusted")),
        (vec![None, None], None),
    ] {
        let dir = temp_dir("adjust");
        let answers: Vec<Value> = flags
            .iter()
            .enumerate()
            .map(|(i, f)| inline(&format!("w{i}"), &answer(*f)))
            .collect();
        let items = run(
            &dir,
            &json!([{"datasetObjectId": "0", "annotations": answers}]),
        )
        .await;
        assert_eq!(
            meta(&items[0])
                .get("adjustment-status")
                .and_then(Value::as_str),
            want,
            "{flags:?}"
        );
    }
}

#[tokio::test]
async fn workers_of_another_size_than_the_majority_are_excluded() {
    let dir = temp_dir("sizes");
    let big = Scene::street(24, 16, 0);
    let small = Scene::street(12, 8, 0);
    let payload = json!([{"datasetObjectId": "0", "annotations": [
        inline("small", &good(&small, &TAB10)), inline("big-1", &good(&big, &TAB10)), inline("big-2", &good(&big, &TAB10))]}]);
    let items = run(&dir, &payload).await;
    let m = meta(&items[0]);
    assert_eq!(m["worker-count"], 2);
    assert_eq!(m["excluded-workers"][0]["worker-id"], "small");
    assert!(
        m["excluded-workers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("12×8")
    );
    assert_eq!(mask_of(&dir, &items[0]).0, 24);
}

#[tokio::test]
async fn answers_beyond_the_limit_are_excluded() {
    let dir = temp_dir("too-many");
    let scene = Scene::street(8, 8, 0);
    let anns: Vec<Value> = (0..4)
        .map(|i| inline(&format!("w{i}"), &good(&scene, &TAB10)))
        .collect();
    let cfg = Config {
        limits: gtseg::Limits {
            max_answers_per_image: 3,
            ..Default::default()
        },
        ..Config::default()
    };
    let items = run_with(
        &dir,
        cfg,
        &json!([{"datasetObjectId": "0", "annotations": anns}]),
        event(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(meta(&items[0])["worker-count"], 3);
    assert!(
        meta(&items[0])["excluded-workers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("MAX_ANSWERS_PER_IMAGE")
    );
}

#[tokio::test]
async fn unusable_events_and_payloads_fail_the_invocation_with_a_clear_error() {
    let dir = temp_dir("batch-errors");
    let s = Service::new(LocalStore::new(&dir), Config::default());
    let now = SystemTime::now();
    // The message tells the whole story, each cause once, and no cause is repeated through
    // `source()` (so a reporter that walks the chain prints each fact once).
    let err = |e: ServiceError| {
        assert!(std::error::Error::source(&e).is_none(), "{e:?}");
        e.to_string()
    };

    // A payload on another scheme is never read.
    let e = err(s
        .consolidation(
            &event(json!({"payload": {"s3Uri": "https://x/p.json"}})),
            now,
            None,
        )
        .await
        .unwrap_err());
    assert!(
        e.contains("payload.s3Uri") && e.contains("not an s3:// URI"),
        "{e}"
    );
    // A missing payload names its URI.
    let e = err(s
        .consolidation(&event(json!({})), now, None)
        .await
        .unwrap_err());
    assert!(e.contains(PAYLOAD) && e.contains("does not exist"), "{e}");
    assert_eq!(e.matches(PAYLOAD).count(), 1, "{e}");
    // A payload that is not an array.
    put(&dir, PAYLOAD, br#"{"not": "an array"}"#);
    let e = err(s
        .consolidation(&event(json!({})), now, None)
        .await
        .unwrap_err());
    assert!(e.contains("payload"), "{e}");
    // Missing and wrong-typed event fields name the field.
    let e = err(s
        .consolidation(&event(json!({"labelAttributeName": null})), now, None)
        .await
        .unwrap_err());
    assert!(e.contains("labelAttributeName"), "{e}");
    let e = err(s
        .consolidation(
            &event(json!({"maxHumanWorkersPerDataObject": "three"})),
            now,
            None,
        )
        .await
        .unwrap_err());
    assert!(e.contains("maxHumanWorkersPerDataObject"), "{e}");
    // Duplicate labels in the event.
    put(&dir, PAYLOAD, b"[]");
    let e = err(s
        .consolidation(
            &event(json!({"labelCategories": ["car", "car"]})),
            now,
            None,
        )
        .await
        .unwrap_err());
    assert!(e.contains("`car`"), "{e}");
    // No outputConfig and a payload URI it cannot be derived from.
    put(&dir, "s3://test-bucket/elsewhere/p.json", b"[]");
    let e = err(s.consolidation(&event(json!({"outputConfig": null, "payload": {"s3Uri": "s3://test-bucket/elsewhere/p.json"}})), now, None).await.unwrap_err());
    assert!(e.contains("outputConfig"), "{e}");
    // An empty batch is fine.
    assert!(
        s.consolidation(&event(json!({})), now, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_batch_that_cannot_finish_in_time_fails_before_its_deadline_and_says_so() {
    let dir = temp_dir("deadline");
    let scene = Scene::street(64, 48, 0);
    put(
        &dir,
        PAYLOAD,
        json!([{"datasetObjectId": "0", "annotations": [inline("w", &good(&scene, &TAB10))]}])
            .to_string()
            .as_bytes(),
    );
    let s = Service::new(LocalStore::new(&dir), Config::default());
    let now = SystemTime::now();
    // Less time left than the margin kept before the deadline.
    let e = s
        .consolidation(&event(json!({})), now, Some(now + Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "OutOfTime");
    assert!(e.to_string().contains("timeout"), "{e}");
    let items = s
        .consolidation(&event(json!({})), now, Some(now + Duration::from_secs(300)))
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn a_decompression_bomb_costs_nothing() {
    let dir = temp_dir("bomb");
    let scene = Scene::street(8, 8, 0);
    // A valid 1×1 PNG whose IHDR claims 200000×200000 (CRC fixed up).
    let mut bomb = gtseg_tests::fixtures::encode(1, 1, png::ColorType::Rgb, &[0, 0, 0]);
    bomb[16..20].copy_from_slice(&200_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&200_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let mut a = good(&scene, &TAB10);
    a["crowd-semantic-segmentation"]["labeledImage"]["pngImageData"] =
        json!(base64::engine::general_purpose::STANDARD.encode(&bomb));
    a["crowd-semantic-segmentation"]["inputImageProperties"] =
        json!({"width": 200_000, "height": 200_000});
    let items = run(&dir, &json!([{"datasetObjectId": "0", "annotations": [inline("bomb", &a), inline("w", &good(&scene, &TAB10))]}])).await;
    let reason = meta(&items[0])["excluded-workers"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("200000×200000") && reason.contains("MAX_PIXELS"),
        "{reason}"
    );
}

#[tokio::test]
async fn without_input_image_properties_the_png_size_rules() {
    let dir = temp_dir("no-props");
    let scene = Scene::street(24, 16, 0);
    let mut a = good(&scene, &TAB10);
    a["crowd-semantic-segmentation"]
        .as_object_mut()
        .unwrap()
        .remove("inputImageProperties");
    let items = run(
        &dir,
        &json!([{"datasetObjectId": "0", "annotations": [inline("w1", &a), inline("w2", &a)]}]),
    )
    .await;
    assert_eq!(meta(&items[0])["worker-count"], 2);
    let (w, h, idx, _, _) = mask_of(&dir, &items[0]);
    assert_eq!((w, h), (24, 16));
    assert_eq!(idx, scene.classes);
}

#[tokio::test]
async fn sixteen_bit_interlaced_and_palette_answers_vote_like_any_other() {
    let dir = temp_dir("png-kinds");
    let scene = Scene::street(24, 16, 0);
    let (w, h) = (scene.width, scene.height);
    // 16-bit RGBA: every 8-bit value v becomes v * 257.
    let mut px16 = Vec::new();
    for &c in &scene.classes {
        let (rgb, a) = if c == 0 {
            ([0u8, 0, 0], 0u8)
        } else {
            (TAB10[usize::from(c) - 1], 255)
        };
        for v in [rgb[0], rgb[1], rgb[2], a] {
            px16.extend([v, v]);
        }
    }
    let mut png16 = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png16, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Sixteen);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(&px16).unwrap();
        wr.finish().unwrap();
    }
    // Palette PNG whose palette order differs from the class order.
    let mut plte = vec![0x1f, 0x77, 0xb4, 255, 255, 255];
    plte.extend(TAB10[0]);
    plte.extend(TAB10[2]);
    plte.extend(TAB10[3]);
    let remap = [1u8, 2, 0, 3, 4]; // class → palette index
    let idx: Vec<u8> = scene
        .classes
        .iter()
        .map(|&c| remap[usize::from(c)])
        .collect();
    let mut pal_png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut pal_png, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(plte);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(&idx).unwrap();
        wr.finish().unwrap();
    }
    let mappings = mappings_for(&scene, &TAB10);
    let a16 = answer_json("s", &png16, w, h, &mappings);
    let apal = answer_json("s", &pal_png, w, h, &mappings);
    let items = run(&dir, &json!([{"datasetObjectId": "0", "annotations": [inline("w16", &a16), inline("wpal", &apal)]}])).await;
    assert_eq!(meta(&items[0])["worker-count"], 2, "{}", meta(&items[0]));
    assert_eq!(mask_of(&dir, &items[0]).2, scene.classes);
    assert_eq!(
        meta(&items[0])["internal-color-map"]["0"]["confidence"],
        1.0
    );
}

#[tokio::test]
async fn a_300_image_batch_with_every_tenth_image_broken_returns_all_the_others_right() {
    let dir = temp_dir("batch300");
    let scenes: Vec<Scene> = (0..300)
        .map(|i| Scene::street(16, 12, (i % 5) as i64 - 2))
        .collect();
    let payload: Vec<Value> = scenes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let anns = if i % 10 == 0 {
                // Broken in a different way each time: bad base64, bad JSON, no answers, wrong shape.
                match (i / 10) % 4 {
                    0 => json!([inline(
                        "w",
                        &json!({"x": {"labeledImage": {"pngImageData": "!!"}}})
                    )]),
                    1 => json!([{"workerId": "w", "annotationData": {"content": "{"}}]),
                    2 => json!([]),
                    _ => json!([inline("w", &json!({"x": {"y": 1}}))]),
                }
            } else {
                json!([
                    inline("a", &good(s, &TAB10)),
                    inline("b", &good(s, &OTHER_COLORS)),
                    inline("c", &good(s, &TAB10))
                ])
            };
            json!({"datasetObjectId": format!("img-{i:03}"), "annotations": anns})
        })
        .collect();
    let items = run(&dir, &Value::Array(payload)).await;
    assert_eq!(items.len(), 270);
    for item in &items {
        let id = item["datasetObjectId"].as_str().unwrap();
        let i: usize = id[4..].parse().unwrap();
        assert_ne!(i % 10, 0, "{id} is broken and must be left out");
        assert_eq!(mask_of(&dir, item).2, scenes[i].classes, "{id}");
        assert_eq!(meta(item)["worker-count"], 3);
    }
}

#[tokio::test]
async fn payload_and_answer_sizes_are_bounded_by_max_payload_bytes() {
    let dir = temp_dir("payload-limit");
    let scene = Scene::street(8, 8, 0);
    let mut big = good(&scene, &TAB10);
    big["padding"] = json!("x".repeat(20_000)); // an unknown field: ignored, but it weighs
    let answer_uri = "s3://test-bucket/answers/big.json";
    put(&dir, answer_uri, big.to_string().as_bytes());
    let payload = json!([{"datasetObjectId": "0", "annotations": [
        {"workerId": "by-uri", "annotationData": {"s3Uri": answer_uri}}, inline("inline", &good(&scene, &TAB10))]}]);
    let payload_len = payload.to_string().len() as u64;
    assert!(payload_len < 20_000);
    let cfg = |max| Config {
        limits: gtseg::Limits {
            max_payload_bytes: max,
            ..Default::default()
        },
        ..Config::default()
    };

    // The payload fits, the answer object does not: that worker is excluded, naming the limit.
    let items = run_with(&dir, cfg(payload_len), &payload, event(json!({})))
        .await
        .unwrap();
    let m = meta(&items[0]);
    assert_eq!(m["worker-count"], 1);
    let reason = m["excluded-workers"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(answer_uri) && reason.contains("over the limit"),
        "{reason}"
    );

    // The payload itself does not fit: the invocation fails, naming the payload.
    let e = run_with(&dir, cfg(payload_len - 1), &payload, event(json!({})))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("over the limit") && msg.contains(PAYLOAD),
        "{msg}"
    );
}

#[tokio::test]
async fn allowed_buckets_applies_to_every_read_and_write() {
    let scene = Scene::street(8, 8, 0);
    let cfg = || Config {
        allowed_buckets: Some(vec!["test-bucket".into()]),
        ..Config::default()
    };
    // An answer in another bucket is excluded.
    let dir = temp_dir("allow-answer");
    put(
        &dir,
        "s3://other-bucket/a.json",
        good(&scene, &TAB10).to_string().as_bytes(),
    );
    let payload = json!([{"datasetObjectId": "0", "annotations": [
        {"workerId": "elsewhere", "annotationData": {"s3Uri": "s3://other-bucket/a.json"}}, inline("w", &good(&scene, &TAB10))]}]);
    let items = run_with(&dir, cfg(), &payload, event(json!({})))
        .await
        .unwrap();
    assert!(
        meta(&items[0])["excluded-workers"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("ALLOWED_BUCKETS")
    );
    // An output in another bucket is never written, and the batch fails.
    let dir = temp_dir("allow-output");
    let e = run_with(
        &dir,
        cfg(),
        &payload,
        event(json!({"outputConfig": "s3://other-bucket/out"})),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("ALLOWED_BUCKETS"));
    assert!(!dir.join("other-bucket/out").exists());
    // A payload in another bucket is never read.
    let cfg2 = Config {
        allowed_buckets: Some(vec!["only-this".into()]),
        ..Config::default()
    };
    let e = run_with(&dir, cfg2, &payload, event(json!({})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ALLOWED_BUCKETS"));
}

#[tokio::test]
async fn parallel_and_sequential_decoding_agree_even_when_a_png_breaks_mid_stream() {
    let scene = Scene::street(64, 48, 0);
    let good_png = worker_png(&scene, &TAB10, Background::Transparent, &[]);
    // A PNG whose header is fine but whose image data stops half way.
    let mut broken = good(&Scene::street(64, 48, 2), &TAB10);
    let cut = good_png.len() * 2 / 3;
    broken["crowd-semantic-segmentation"]["labeledImage"]["pngImageData"] =
        json!(base64::engine::general_purpose::STANDARD.encode(&good_png[..cut]));
    let payload = json!([{"datasetObjectId": "0", "annotations": [
        inline("a", &good(&scene, &TAB10)), inline("broken", &broken),
        inline("b", &good(&Scene::street(64, 48, 1), &OTHER_COLORS)), inline("c", &good(&scene.clone().without(3, 2), &TAB10))]}]);
    let mut outputs = Vec::new();
    for threads in [1, 4] {
        let dir = temp_dir(&format!("par-{threads}"));
        let items = run_with(
            &dir,
            Config {
                threads,
                ..Config::default()
            },
            &payload,
            event(json!({})),
        )
        .await
        .unwrap();
        let m = meta(&items[0]).clone();
        assert_eq!(m["worker-count"], 3, "{m}");
        assert_eq!(m["excluded-workers"][0]["worker-id"], "broken");
        assert!(
            m["excluded-workers"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("corrupt"),
            "{m}"
        );
        let mask = std::fs::read(
            dir.join("test-bucket/out/job/annotations/consolidated-annotation/output/0.png"),
        )
        .unwrap();
        outputs.push((mask, m["internal-color-map"]["0"]["confidence"].clone()));
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[tokio::test]
async fn one_unreadable_item_costs_only_itself_even_nested_past_serde_s_limit() {
    let dir = temp_dir("nested");
    let scene = Scene::street(16, 12, 0);
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let payload = format!(
        r#"[{{"datasetObjectId": "0", "annotations": [{}]}},
            {{"datasetObjectId": "1", "ignored": {deep}, "annotations": []}},
            "not an item",
            {{"datasetObjectId": "2", "annotations": [{}]}}]"#,
        inline("w", &good(&scene, &TAB10)),
        inline("w", &good(&scene, &TAB10))
    );
    put(&dir, PAYLOAD, payload.as_bytes());
    let s = Service::new(LocalStore::new(&dir), Config::default());
    let items = s
        .consolidation(&event(json!({})), SystemTime::now(), None)
        .await
        .unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.dataset_object_id.as_str()).collect();
    assert_eq!(ids, ["0", "2"]);
}

#[tokio::test]
async fn without_a_label_list_a_worker_with_too_many_labels_is_excluded_alone() {
    let dir = temp_dir("many-labels");
    let scene = Scene::street(16, 12, 0);
    let mut greedy = good(&scene, &TAB10);
    let mappings = greedy["crowd-semantic-segmentation"]["labelMappings"]
        .as_object_mut()
        .unwrap();
    for i in 0..300 {
        mappings.insert(
            format!("extra-{i}"),
            json!({"color": format!("#{:06x}", 0x10_0000 + i)}),
        );
    }
    let payload = json!([{"datasetObjectId": "0", "annotations": [
        inline("honest", &good(&scene, &TAB10)), inline("greedy", &greedy)]}]);
    let items = run_with(
        &dir,
        Config::default(),
        &payload,
        event(json!({"labelCategories": null})),
    )
    .await
    .unwrap();
    let m = meta(&items[0]);
    assert_eq!(m["worker-count"], 1);
    assert_eq!(m["excluded-workers"][0]["worker-id"], "greedy");
    let reason = m["excluded-workers"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("labels, more than the 254"), "{reason}");
}

#[tokio::test]
async fn long_ids_get_keys_within_s3_s_limits_and_stay_apart() {
    let dir = temp_dir("long-ids");
    let scene = Scene::street(16, 12, 0);
    let ids = ["é".repeat(400), format!("{}x", "é".repeat(400))];
    let payload = json!(
        ids.iter()
            .map(|id| json!({"datasetObjectId": id,
        "annotations": [inline("w", &good(&scene, &TAB10))]}))
            .collect::<Vec<_>>()
    );
    let items = run(&dir, &payload).await;
    let uris: Vec<&str> = items
        .iter()
        .map(|i| {
            i["consolidatedAnnotation"]["content"]["Job-ref"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(uris.len(), 2);
    assert_ne!(uris[0], uris[1]);
    for uri in uris {
        let key = uri.split_once("test-bucket/").unwrap().1;
        assert!(key.len() <= 1024, "{} bytes", key.len());
        assert!(key.rsplit('/').next().unwrap().len() <= gtseg::MAX_FILE_NAME);
        assert!(dir.join(uri.strip_prefix("s3://").unwrap()).is_file());
    }
    // An output prefix so long that a key could pass 1024 bytes is refused up front.
    let long = format!("{OUT}/{}", "p".repeat(900));
    let e = run_with(
        &dir,
        Config::default(),
        &payload,
        event(json!({"outputConfig": long})),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("1024"), "{e}");
}

#[tokio::test]
async fn a_response_too_large_for_lambda_moves_its_extras_beside_the_masks() {
    let dir = temp_dir("big-response");
    let scene = Scene::street(4, 3, 0);
    // Many images, each with long worker ids and excluded answers: the extras are large.
    let n = 2500;
    let payload = json!((0..n).map(|i| json!({"datasetObjectId": i.to_string(), "annotations": [
        inline(&format!("{}-{i}", "w".repeat(900)), &good(&scene, &TAB10)),
        json!({"workerId": format!("{}-{i}", "x".repeat(900)), "annotationData": {"content": "not json"}}),
    ]})).collect::<Vec<_>>());
    let items = run(&dir, &payload).await;
    assert_eq!(items.len(), n);
    let size = serde_json::to_vec(&items).unwrap().len();
    assert!(size <= gtseg::MAX_RESPONSE_BYTES, "{size} bytes");
    let m = meta(&items[7]);
    assert!(m.get("consolidation").is_none() && m.get("excluded-workers").is_none());
    let report = m["report-ref"].as_str().unwrap();
    assert!(
        report.ends_with("/consolidated-annotation/report/7.json"),
        "{report}"
    );
    let extras: Value = serde_json::from_slice(
        &std::fs::read(dir.join(report.strip_prefix("s3://").unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        extras["excluded-workers"][0]["worker-id"],
        format!("{}-7", "x".repeat(900))
    );
    assert_eq!(
        extras["consolidation"]["workers"].as_array().unwrap().len(),
        2
    );
    // The required fields are all still there.
    assert_eq!(m["internal-color-map"].as_object().unwrap().len(), 5);
}

#[tokio::test]
async fn a_response_that_cannot_fit_fails_naming_the_batch_size_and_the_limit() {
    let dir = temp_dir("too-large-response");
    let scene = Scene::street(4, 3, 0);
    // Ids are required in the response: 1,800 ids of 3,500 bytes cannot fit in 6 MB.
    let n = 1800;
    let payload = json!(
        (0..n)
            .map(
                |i| json!({"datasetObjectId": format!("{i}-{}", "a".repeat(3500)),
        "annotations": [inline("w", &good(&scene, &TAB10))]})
            )
            .collect::<Vec<_>>()
    );
    let err = run_with(&dir, Config::default(), &payload, event(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidBatch");
    let msg = err.to_string();
    assert!(
        msg.contains("1800 images") && msg.contains(&gtseg::MAX_RESPONSE_BYTES.to_string()),
        "{msg}"
    );
}
