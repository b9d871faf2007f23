//! Both Lambda binaries under cargo-lambda's runtime emulator, over moto's S3 server: the
//! Lambda Runtime API for real, invoked with `cargo lambda invoke --data-file`.

use gtseg_tests::events::{LABEL_CONFIG_URI, OUTPUT, describe_output};
use gtseg_tests::fixtures::decode_indexed;
use gtseg_tests::harness::{Emulator, Moto, SageMakerStub, aws_env};
use gtseg_tests::{ScratchFile, copy_tree, temp_dir, workspace_root};
use serde_json::Value;

const PRE: &str = "pre-semantic-segmentation";
const ACS: &str = "acs-semantic-segmentation";

#[tokio::test]
async fn both_functions_run_under_the_lambda_emulator() {
    let Some(moto) = Moto::start("both_functions_run_under_the_lambda_emulator", &[]) else {
        return;
    };
    let Some(mut emu) = Emulator::start("both_functions_run_under_the_lambda_emulator") else {
        return;
    };
    moto.upload_store(&workspace_root().join("events/store"))
        .await;
    let logs = temp_dir("lambda-logs");
    let mut env = aws_env(&moto.endpoint);
    env.push(("LABEL_CATEGORY_CONFIG", LABEL_CONFIG_URI.to_owned()));
    env.push(("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()));
    emu.serve(PRE, &env, &logs.join(format!("{PRE}.log")));
    emu.serve(ACS, &env, &logs.join(format!("{ACS}.log")));
    let events = workspace_root().join("events");
    let invoke = |name: &str, file: &str| -> Value {
        let out = emu.invoke(name, &events.join(file));
        assert!(
            out.status.success(),
            "{name} {file}: {}{}\nlogs: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default()
        );
        serde_json::from_slice(&out.stdout).expect("the handler's JSON")
    };

    let v = invoke(PRE, "pre-annotation/image-line.json");
    assert_eq!(v["isHumanAnnotationRequired"], Value::Bool(true));
    assert_eq!(v["taskInput"]["labels"][3], "building");
    let v = invoke(PRE, "pre-annotation/adjustment-line.json");
    assert_eq!(
        v["taskInput"]["initialValue"]["labelMappings"]["road"]["color"],
        "#1f77b4"
    );
    let v = invoke(PRE, "pre-annotation/text-line.json");
    assert_eq!(v["isHumanAnnotationRequired"], Value::Bool(false));

    let v = invoke(ACS, "consolidation/street-scenes.json");
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        let uri = item["consolidatedAnnotation"]["content"]["street-scenes-ref"]
            .as_str()
            .unwrap();
        assert!(uri.starts_with(&format!("{OUTPUT}/consolidated-annotation/output/")));
        let (w, h, idx, _, _) = decode_indexed(&moto.get(uri).await.expect("mask in S3"));
        assert_eq!((w, h), (192, 128));
        assert!(idx.iter().all(|&c| c <= 4));
    }

    // The same function with CONSOLIDATION_ALGORITHM=weighted (a second emulator, since a
    // function's name must be one of the workspace's binaries) reports the weighted fusion.
    let Some(mut weighted_emu) = Emulator::start("both_functions_run_under_the_lambda_emulator")
    else {
        return;
    };
    let mut weighted_env = env.clone();
    weighted_env.push(("CONSOLIDATION_ALGORITHM", "weighted".to_owned()));
    weighted_emu.serve(ACS, &weighted_env, &logs.join("weighted.log"));
    let out = weighted_emu.invoke(ACS, &events.join("consolidation/street-scenes.json"));
    assert!(
        out.status.success(),
        "{}",
        std::fs::read_to_string(logs.join("weighted.log")).unwrap_or_default()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report =
        &v[0]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"]["consolidation"];
    assert_eq!(report["algorithm"], "weighted");
    assert!(
        report["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["weight"].is_f64()),
        "{report}"
    );

    // Structured logs: one JSON line per image with the fields an operator filters on.
    let acs_log = std::fs::read_to_string(logs.join(format!("{ACS}.log"))).unwrap();
    let line = acs_log
        .lines()
        .find(|l| l.contains("image consolidated"))
        .expect("a per-image log line");
    let rec: Value =
        serde_json::from_str(line).expect("AWS_LAMBDA_LOG_FORMAT=JSON gives JSON lines");
    let fields = if rec.get("fields").is_some() {
        &rec["fields"]
    } else {
        &rec
    };
    for f in [
        "dataset_object_id",
        "workers",
        "excluded",
        "confidence",
        "pixels",
    ] {
        assert!(fields.get(f).is_some(), "log line lacks {f}: {line}");
    }
    assert!(!acs_log.contains("iVBORw0KGgo"), "no image data in logs");

    // A failing invocation is a Lambda error that names the missing object.
    let mut ev: Value = serde_json::from_slice(
        &std::fs::read(events.join("consolidation/street-scenes.json")).unwrap(),
    )
    .unwrap();
    ev["payload"]["s3Uri"] = format!("{OUTPUT}/consolidated-annotation/missing.json").into();
    let bad = ScratchFile::new("lambda-bad", "event.json", ev.to_string());
    let out = emu.invoke(ACS, &bad);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("StorageError") && text.contains("consolidated-annotation/missing.json"),
        "{text}"
    );
}

/// One running consolidation function and one pre-annotation function serve two labeling
/// jobs with different label lists and a verification job: each job's labels come from its
/// own configuration, through DescribeLabelingJob (the SageMaker stub), and each job is
/// described once.
#[tokio::test]
async fn one_deployment_serves_two_jobs_with_their_own_labels() {
    let test = "one_deployment_serves_two_jobs_with_their_own_labels";
    let other_config = "s3://gt-example-bucket/config/labels-other.json";
    let other_labels = ["road", "car", "building", "person", "tree"];
    let jobs = serde_json::json!({
        "street-scenes": {"describe": describe_output("street-scenes", LABEL_CONFIG_URI)},
        "street-scenes-b": {"describe": describe_output("street-scenes-b", other_config)},
        "verify-street": {"describe": serde_json::from_slice::<Value>(
            &std::fs::read(workspace_root().join("events/labeling-job/verify-street.json")).unwrap()
        ).unwrap()},
    });
    let Some(stub) = SageMakerStub::start(test, &jobs) else {
        return;
    };
    let Some(moto) = Moto::start(test, &[]) else {
        return;
    };
    let Some(mut emu) = Emulator::start(test) else {
        return;
    };
    let store = temp_dir("two-jobs-store");
    copy_tree(&workspace_root().join("events/store"), &store).unwrap();
    let config = serde_json::json!({"document-version": "2018-11-28",
        "labels": other_labels.iter().map(|l| serde_json::json!({"label": l})).collect::<Vec<_>>()});
    std::fs::write(
        store.join(other_config.strip_prefix("s3://").unwrap()),
        config.to_string(),
    )
    .unwrap();
    moto.upload_store(&store).await;
    let logs = temp_dir("two-jobs-logs");
    let mut env = aws_env(&moto.endpoint);
    env.push(("AWS_ENDPOINT_URL_SAGEMAKER", stub.endpoint.clone()));
    emu.serve(PRE, &env, &logs.join(format!("{PRE}.log")));
    emu.serve(ACS, &env, &logs.join(format!("{ACS}.log")));

    let events = workspace_root().join("events");
    let read = |file: &str| -> Value {
        serde_json::from_slice(&std::fs::read(events.join(file)).unwrap()).unwrap()
    };
    let job_b = |mut ev: Value, attr: Option<&str>| {
        ev["labelingJobArn"] =
            "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/street-scenes-b".into();
        if let Some(a) = attr {
            ev["labelAttributeName"] = a.into();
            // Its own output folder, so the two jobs' masks sit side by side.
            ev["outputConfig"] = OUTPUT
                .replace("/street-scenes/", "/street-scenes-b/")
                .into();
        }
        ScratchFile::new("two-jobs-event", "event.json", ev.to_string())
    };
    let invoke = |name: &str, file: &std::path::Path| -> Value {
        let out = emu.invoke(name, file);
        assert!(
            out.status.success(),
            "{name}: {}{}\nlogs: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default()
        );
        serde_json::from_slice(&out.stdout).expect("the handler's JSON")
    };
    let class_names = |v: &Value, attr: &str| -> Vec<String> {
        v[0]["consolidatedAnnotation"]["content"][format!("{attr}-metadata")]["internal-color-map"]
            .as_object()
            .unwrap()
            .values()
            .map(|e| e["class-name"].as_str().unwrap().to_owned())
            .collect()
    };

    let a = events.join("consolidation/street-scenes-from-job.json");
    let b = job_b(
        read("consolidation/street-scenes-from-job.json"),
        Some("street-scenes-b-ref"),
    );
    let va = invoke(ACS, &a);
    let vb = invoke(ACS, &b);
    invoke(ACS, &a);
    assert_eq!(
        class_names(&va, "street-scenes-ref"),
        ["BACKGROUND", "car", "road", "person", "building"]
    );
    assert_eq!(
        class_names(&vb, "street-scenes-b-ref"),
        ["BACKGROUND", "road", "car", "building", "person", "tree"]
    );
    // The same painted pixels carry each job's own class index.
    let uri = |v: &Value, attr: &str| {
        v[0]["consolidatedAnnotation"]["content"][attr]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let ma = decode_indexed(
        &moto
            .get(&uri(&va, "street-scenes-ref"))
            .await
            .expect("mask"),
    )
    .2;
    let mb = decode_indexed(
        &moto
            .get(&uri(&vb, "street-scenes-b-ref"))
            .await
            .expect("mask"),
    )
    .2;
    // (Only a tie that even the neighbourhood cannot break may differ: it goes to the lowest
    // index, which is another class in each job.)
    let remap = [0u8, 2, 1, 4, 3];
    let differ = ma
        .iter()
        .zip(&mb)
        .filter(|&(&x, &y)| remap[usize::from(x)] != y)
        .count();
    assert!(differ * 1000 <= ma.len(), "{differ} of {} pixels", ma.len());

    let pa = invoke(PRE, &events.join("pre-annotation/image-line.json"));
    let pb = invoke(PRE, &job_b(read("pre-annotation/image-line.json"), None));
    assert_eq!(
        pa["taskInput"]["labels"],
        serde_json::json!(["car", "road", "person", "building"])
    );
    assert_eq!(pb["taskInput"]["labels"], serde_json::json!(other_labels));

    // The verification job, on the same two functions: the earlier mask as the overlay, and
    // the workers' categories merged into Ground Truth's verification label.
    let pv = invoke(PRE, &events.join("pre-annotation/verification-line.json"));
    assert_eq!(pv["taskInput"]["labels"][0], "Label(s) correct");
    assert_eq!(
        pv["taskInput"]["overlay"]["semanticSegmentation"]["labels"],
        serde_json::json!(["car", "road", "person", "building"])
    );
    let vv = invoke(ACS, &events.join("consolidation/verify-street.json"));
    let verdicts: Vec<&Value> = vv
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["consolidatedAnnotation"]["content"]["verify-street"])
        .collect();
    assert_eq!(verdicts, [&serde_json::json!(0), &serde_json::json!(2)]);
    assert_eq!(
        vv[0]["consolidatedAnnotation"]["content"]["verify-street-metadata"]["type"],
        "groundtruth/label-verification"
    );
    // Text logs (the format is not set here) carry no terminal colour codes.
    for name in [PRE, ACS] {
        let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap();
        assert!(
            log.contains("INFO") && !log.contains('\u{1b}'),
            "{name}: {log}"
        );
    }
    let mut calls = stub.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("street-scenes".to_owned(), 200),
            ("street-scenes".to_owned(), 200),
            ("street-scenes-b".to_owned(), 200),
            ("street-scenes-b".to_owned(), 200),
            ("verify-street".to_owned(), 200),
            ("verify-street".to_owned(), 200),
        ],
        "each function describes each job once"
    );
}
