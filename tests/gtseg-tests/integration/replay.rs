//! `gtseg replay` on every sample event, with a local store: the README's main command.

use std::path::Path;
use std::process::{Command, Output};

use gtseg_tests::events::{LABEL_CONFIG_URI, OUTPUT, SIZE};
use gtseg_tests::fixtures::{LABELS, Scene, TAB10, decode_indexed};
use gtseg_tests::{assert_succeeded, built_binary, copy_tree, temp_dir, workspace_root};
use serde_json::Value;

fn replay(event: &str, store: &Path, label_config: Option<&str>) -> Output {
    replay_with_env(event, store, label_config, &[])
}

fn replay_with_env(
    event: &str,
    store: &Path,
    label_config: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(built_binary("gtseg"));
    cmd.arg("replay")
        .arg(workspace_root().join("events").join(event))
        .arg("--store")
        .arg(store);
    cmd.env_remove("LABEL_CATEGORY_CONFIG")
        .env("RUST_LOG", "warn");
    if let Some(l) = label_config {
        cmd.env("LABEL_CATEGORY_CONFIG", l);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run gtseg")
}

fn ok_json(out: &Output) -> Value {
    assert_succeeded(out);
    serde_json::from_slice(&out.stdout).expect("stdout is the response JSON")
}

fn store_copy(tag: &str) -> gtseg_tests::Scratch {
    let dir = temp_dir(tag);
    copy_tree(&workspace_root().join("events/store"), &dir).unwrap();
    dir
}

#[test]
fn pre_annotation_image_line() {
    let store = store_copy("pre-image");
    let v = ok_json(&replay(
        "pre-annotation/image-line.json",
        &store,
        Some(LABEL_CONFIG_URI),
    ));
    assert_eq!(v["isHumanAnnotationRequired"], Value::Bool(true));
    assert_eq!(
        v["taskInput"]["taskObject"],
        "s3://gt-example-bucket/images/street-0001.png"
    );
    assert_eq!(v["taskInput"]["labels"], serde_json::json!(LABELS));
    assert_eq!(v["taskInput"]["manifestLine"]["camera"], "front-left");
    assert!(v["taskInput"].get("initialValue").is_none());
}

#[test]
fn pre_annotation_label_config_may_be_a_local_path() {
    let store = store_copy("pre-path");
    let path = workspace_root().join("events/store/gt-example-bucket/config/labels.json");
    let v = ok_json(&replay(
        "pre-annotation/image-line.json",
        &store,
        Some(path.to_str().unwrap()),
    ));
    assert_eq!(v["taskInput"]["labels"], serde_json::json!(LABELS));
}

#[test]
fn label_configs_over_4_mib_are_refused_from_s3_and_from_a_path() {
    let store = store_copy("pre-bigcfg");
    // The sample's labels, with long worker instructions as padding.
    let with_padding = |bytes: usize| {
        let mut config: Value = serde_json::from_slice(
            &std::fs::read(store.join("gt-example-bucket/config/labels.json")).unwrap(),
        )
        .unwrap();
        config["instructions"] = serde_json::json!({"fullInstruction": "p".repeat(bytes)});
        serde_json::to_vec(&config).unwrap()
    };
    let limit = gtseg::MAX_LABEL_CONFIG_BYTES as usize;
    std::fs::write(
        store.join("gt-example-bucket/config/big.json"),
        with_padding(limit),
    )
    .unwrap();
    std::fs::write(
        store.join("gt-example-bucket/config/fits.json"),
        with_padding(limit - 1000),
    )
    .unwrap();
    let path = store.join("gt-example-bucket/config/big.json");
    for config in [
        "s3://gt-example-bucket/config/big.json",
        path.to_str().unwrap(),
    ] {
        let out = replay("pre-annotation/image-line.json", &store, Some(config));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config} is refused");
        assert!(
            stderr.contains(config) && stderr.contains(&format!("over the limit of {limit}")),
            "{stderr}"
        );
    }
    let v = ok_json(&replay(
        "pre-annotation/image-line.json",
        &store,
        Some("s3://gt-example-bucket/config/fits.json"),
    ));
    assert_eq!(v["taskInput"]["labels"], serde_json::json!(LABELS));
}

#[test]
fn pre_annotation_adjustment_line_gets_initial_value() {
    let store = store_copy("pre-adjust");
    let v = ok_json(&replay(
        "pre-annotation/adjustment-line.json",
        &store,
        Some(LABEL_CONFIG_URI),
    ));
    let iv = &v["taskInput"]["initialValue"];
    assert_eq!(
        iv["src"],
        "s3://gt-example-bucket/output/street-scenes-v1/annotations/consolidated-annotation/output/0.png"
    );
    assert_eq!(iv["labelMappings"]["car"]["color"], "#2ca02c");
    assert!(iv["labelMappings"].get("BACKGROUND").is_none());
    assert_eq!(iv["labelMappings"].as_object().unwrap().len(), LABELS.len());
}

#[test]
fn pre_annotation_text_line_is_skipped_with_a_reason() {
    let store = store_copy("pre-text");
    let out = replay(
        "pre-annotation/text-line.json",
        &store,
        Some(LABEL_CONFIG_URI),
    );
    let v = ok_json(&out);
    assert_eq!(v["isHumanAnnotationRequired"], Value::Bool(false));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no `source-ref`"),
        "the reason is logged"
    );
}

#[test]
fn pre_annotation_without_label_config_fails_naming_the_variable() {
    let store = store_copy("pre-nocfg");
    let out = replay("pre-annotation/image-line.json", &store, None);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("LABEL_CATEGORY_CONFIG"));
    let out = replay(
        "pre-annotation/image-line.json",
        &store,
        Some("s3://gt-example-bucket/config/missing.json"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("s3://gt-example-bucket/config/missing.json"),
        "{err}"
    );
}

#[test]
fn consolidation_writes_ground_truth_masks_and_response() {
    let store = store_copy("acs");
    let v = ok_json(&replay("consolidation/street-scenes.json", &store, None));
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 2);
    let (w, h) = SIZE;

    // Image 0: three workers; the majority restores the person one worker skipped and the car
    // outline another shifted. The one worker's anti-aliased pixels abstain.
    let content = &items[0]["consolidatedAnnotation"]["content"];
    let uri = content["street-scenes-ref"].as_str().unwrap();
    assert_eq!(
        uri,
        format!("{OUTPUT}/consolidated-annotation/output/0.png")
    );
    let meta = &content["street-scenes-ref-metadata"];
    assert_eq!(meta["type"], "groundtruth/semantic-segmentation");
    assert_eq!(meta["human-annotated"], "yes");
    assert_eq!(meta["job-name"], "labeling-job/street-scenes");
    assert_eq!(meta["worker-count"], 3);
    let date = meta["creation-date"].as_str().unwrap();
    assert_eq!(
        (date.len(), &date[10..11], &date[19..20]),
        (26, "T", "."),
        "{date}"
    );

    let file = store.join(uri.strip_prefix("s3://").unwrap());
    let (mw, mh, idx, pal, trns) = decode_indexed(&std::fs::read(file).unwrap());
    assert_eq!((mw, mh), (w, h));
    assert!(!trns, "no transparency chunk");
    let truth = Scene::street(w, h, 0);
    let differing = idx
        .iter()
        .zip(&truth.classes)
        .filter(|(a, b)| a != b)
        .count();
    assert!(differing <= 6, "{differing} pixels differ from the truth");
    let person = idx.iter().filter(|&&c| c == 3).count();
    assert_eq!(
        person,
        truth.classes.iter().filter(|&&c| c == 3).count(),
        "the 2-of-3 person survives"
    );

    // Palette index = internal-color-map key, for every class.
    let map = meta["internal-color-map"].as_object().unwrap();
    assert_eq!(map.len(), LABELS.len() + 1);
    assert_eq!(&pal[..3], &[255, 255, 255]);
    for (k, e) in map {
        let k: usize = k.parse().unwrap();
        let hex = e["hex-color"].as_str().unwrap();
        assert_eq!(
            hex,
            format!(
                "#{:02x}{:02x}{:02x}",
                pal[3 * k],
                pal[3 * k + 1],
                pal[3 * k + 2]
            )
        );
        let name = e["class-name"].as_str().unwrap();
        assert_eq!(name, if k == 0 { "BACKGROUND" } else { LABELS[k - 1] });
        if k > 0 {
            assert_eq!(
                hex,
                gtseg_tests::fixtures::hex(TAB10[k - 1]),
                "the first worker's colours"
            );
        }
        assert_eq!(
            e["confidence"], map["0"]["confidence"],
            "one confidence for all classes"
        );
    }
    let conf = map["0"]["confidence"].as_f64().unwrap();
    assert!(conf > 0.95 && conf < 1.0, "{conf}");

    // Image 1: one answer had the wrong size, so one worker decides and confidence is 0.
    let meta1 = &items[1]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"];
    assert_eq!(meta1["worker-count"], 1);
    assert_eq!(meta1["internal-color-map"]["2"]["confidence"], 0.0);
    let reason = meta1["excluded-workers"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("96×64") && reason.contains("192×128"),
        "{reason}"
    );
}

#[test]
fn replaying_twice_gives_byte_identical_masks() {
    let store = store_copy("acs-twice");
    let first = ok_json(&replay("consolidation/street-scenes.json", &store, None));
    let mask = store.join(
        "gt-example-bucket/output/street-scenes/annotations/consolidated-annotation/output/0.png",
    );
    let a = std::fs::read(&mask).unwrap();
    let second = ok_json(&replay("consolidation/street-scenes.json", &store, None));
    assert_eq!(a, std::fs::read(&mask).unwrap());
    let strip = |mut v: Value| {
        for it in v.as_array_mut().unwrap() {
            it["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"]["creation-date"] =
                Value::Null;
        }
        v
    };
    assert_eq!(strip(first), strip(second));
}

#[test]
fn unknown_event_shape_and_missing_file_fail_on_stderr() {
    let store = temp_dir("bad-event");
    let ev = store.join("ev.json");
    std::fs::write(&ev, r#"{"hello": 1}"#).unwrap();
    let out = Command::new(built_binary("gtseg"))
        .arg("replay")
        .arg(&ev)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a pre-annotation event"));
    let out = Command::new(built_binary("gtseg"))
        .args(["replay", "/nonexistent/ev.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ev.json"));
}

#[test]
fn help_documents_flags_and_environment() {
    let out = Command::new(built_binary("gtseg"))
        .args(["replay", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--store",
        "LABEL_CATEGORY_CONFIG",
        "MAX_PIXELS",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(text.contains(needle), "help lacks {needle}:\n{text}");
    }
}

/// The masks' classes and palettes and the response are pinned (apart from `creation-date`).
/// The masks were produced before the streaming decoder, the parallel batch and png's own
/// streaming encoder were used, and optimisations must not change what they hold; the
/// response gained only the `consolidation` agreement report since. Regenerate only for a
/// deliberate format change.
#[test]
fn consolidation_output_is_the_golden_one() {
    let store = store_copy("golden");
    let golden = workspace_root().join("tests/golden/street-scenes");
    let v = ok_json(&replay("consolidation/street-scenes.json", &store, None));
    let strip = |mut v: Value| {
        for it in v.as_array_mut().unwrap() {
            it["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"]["creation-date"] =
                Value::Null;
        }
        v
    };
    let want: Value =
        serde_json::from_slice(&std::fs::read(golden.join("response.json")).unwrap()).unwrap();
    assert_eq!(strip(v), strip(want));
    for i in 0..2 {
        let got = std::fs::read(store.join(format!(
            "gt-example-bucket/output/street-scenes/annotations/consolidated-annotation/output/{i}.png"
        )))
        .unwrap();
        let want = std::fs::read(golden.join(format!("{i}.png"))).unwrap();
        assert_eq!(
            decode_palette_png(&got),
            decode_palette_png(&want),
            "mask {i} differs from the golden one"
        );
    }
}

/// An 8-bit palette PNG's palette and pixels.
fn decode_palette_png(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    assert_eq!(r.info().color_type, png::ColorType::Indexed);
    assert!(r.info().trns.is_none());
    let palette = r.info().palette.as_deref().unwrap().to_vec();
    let mut px = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut px).unwrap();
    (palette, px)
}

#[test]
fn consolidation_reports_agreement_and_writes_a_disagreement_map() {
    let store = store_copy("agreement");
    let v = ok_json(&replay("consolidation/street-scenes.json", &store, None));
    let report =
        &v[0]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"]["consolidation"];
    assert_eq!(report["algorithm"], "majority");
    let workers = report["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    assert_eq!(workers[0]["unmapped-pixels"], 6, "the anti-aliased pixels");
    for w in workers {
        let a = w["agreement"].as_f64().unwrap();
        assert!(w["included"] == true && a > 0.98 && a <= 1.0, "{w}");
    }
    let mean = report["mean-pairwise-agreement"].as_f64().unwrap();
    assert!(
        mean > 0.98 && mean < 1.0 && report["low-agreement"] == false,
        "{report}"
    );
    // The map: 0 where all three agree, 85 where one of three lost, at the image's size.
    let map_uri = report["disagreement-ref"].as_str().unwrap();
    assert_eq!(
        map_uri,
        format!("{OUTPUT}/consolidated-annotation/disagreement/0.png")
    );
    let bytes = std::fs::read(store.join(map_uri.strip_prefix("s3://").unwrap())).unwrap();
    let mut r = png::Decoder::new(std::io::Cursor::new(&bytes))
        .read_info()
        .unwrap();
    assert_eq!(
        (r.info().width, r.info().height, r.info().color_type),
        (192, 128, png::ColorType::Grayscale)
    );
    let mut grey = vec![0; r.output_buffer_size().unwrap()];
    r.next_frame(&mut grey).unwrap();
    let (w, h) = SIZE;
    let truth = Scene::street(w, h, 0);
    let person = (0..grey.len()).find(|&i| truth.classes[i] == 3).unwrap();
    assert_eq!(grey[person], 85, "one of three workers skipped the person");
    assert_eq!(grey[0], 0, "everybody agrees on the sky");
    // Image 1: the excluded worker is reported with its reason.
    let report1 =
        &v[1]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"]["consolidation"];
    assert_eq!(report1["workers"][1]["included"], false);
    assert!(
        report1["workers"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("inputImageProperties")
    );
    assert!(
        report1.get("mean-pairwise-agreement").is_none(),
        "one worker has no pairs"
    );
}

#[test]
fn consolidation_algorithm_selects_the_weighted_fusion() {
    let store = store_copy("weighted");
    let event = "consolidation/street-scenes.json";
    let weighted = [("CONSOLIDATION_ALGORITHM", "weighted")];
    let v = ok_json(&replay_with_env(event, &store, None, &weighted));
    let meta = |i: usize| &v[i]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"];
    let report = &meta(0)["consolidation"];
    assert_eq!(report["algorithm"], "weighted");
    for w in report["workers"].as_array().unwrap() {
        assert!(w["weight"].as_f64().unwrap().is_finite(), "{w}");
    }
    // Image 1's excluded worker has a reason and no weight.
    let excluded = &meta(1)["consolidation"]["workers"][1];
    assert!(excluded["included"] == false && excluded.get("weight").is_none());
    // The person that two of three workers painted survives here too.
    let uri = v[0]["consolidatedAnnotation"]["content"]["street-scenes-ref"]
        .as_str()
        .unwrap();
    let (_, _, idx, _, _) =
        decode_indexed(&std::fs::read(store.join(uri.strip_prefix("s3://").unwrap())).unwrap());
    let (w, h) = SIZE;
    let truth = Scene::street(w, h, 0);
    assert!(
        (0..idx.len()).any(|i| truth.classes[i] == 3 && idx[i] == 3),
        "the person"
    );

    let out = replay_with_env(event, &store, None, &[("CONSOLIDATION_ALGORITHM", "bayes")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONSOLIDATION_ALGORITHM"));
}

/// An id or a worker id cannot forge a log line or carry terminal escapes: their control
/// characters are escaped in the logs.
#[test]
fn logged_ids_cannot_forge_log_lines() {
    let store = store_copy("log-injection");
    let payload_uri = format!(
        "{OUTPUT}/consolidated-annotation/consolidation-request/iteration-1/2026-11-26_10:00:00.json"
    );
    let path = store.join(payload_uri.strip_prefix("s3://").unwrap());
    let mut payload: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let evil = "0\nERROR forged line \u{1b}[31m";
    payload[0]["datasetObjectId"] = evil.into();
    payload[1]["annotations"][1]["workerId"] = "w\r\nWARN forged worker".into();
    std::fs::write(&path, payload.to_string()).unwrap();
    let out = replay_with_env(
        "consolidation/street-scenes.json",
        &store,
        None,
        &[("RUST_LOG", "info")],
    );
    ok_json(&out);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        !logs.contains('\u{1b}'),
        "no terminal escape reaches the log"
    );
    for line in logs.lines() {
        assert!(
            !line.starts_with("ERROR forged") && !line.starts_with("WARN forged"),
            "a forged line: {line}"
        );
    }
    assert!(logs.contains("0\\nERROR forged line \\u{1b}[31m"), "{logs}");
    assert!(logs.contains("w\\r\\nWARN forged worker"), "{logs}");
}
