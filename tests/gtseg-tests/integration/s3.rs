//! `gtseg replay` without `--store`, against moto's S3 server on loopback: the real S3
//! protocol, SSE-KMS, assumed job roles, and every S3 failure named by its URI.

use std::path::Path;
use std::process::{Command, Output};

use gtseg_tests::events::{LABEL_CONFIG_URI, OUTPUT};
use gtseg_tests::fixtures::decode_indexed;
use gtseg_tests::harness::{Moto, aws_env, free_port};
use gtseg_tests::{ScratchFile, built_binary, copy_tree, temp_dir, workspace_root};
use serde_json::Value;

const EVENT: &str = "events/consolidation/street-scenes.json";

fn gtseg(args: &[&str], event: &Path, env: &[(&'static str, String)]) -> Output {
    Command::new(built_binary("gtseg"))
        .arg("replay")
        .arg(event)
        .args(args)
        .env_remove("LABEL_CATEGORY_CONFIG")
        .env_remove("ASSUME_JOB_ROLE")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run gtseg")
}

fn sample_event() -> Value {
    serde_json::from_slice(&std::fs::read(workspace_root().join(EVENT)).unwrap()).unwrap()
}

/// Writes an edited copy of the sample consolidation event.
fn event_with(tag: &str, edit: impl FnOnce(&mut Value)) -> ScratchFile {
    let mut ev = sample_event();
    edit(&mut ev);
    ScratchFile::new(tag, "event.json", ev.to_string())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn replay_against_a_real_s3_server_matches_the_local_store_byte_for_byte() {
    let Some(moto) = Moto::start("replay_against_a_real_s3_server", &[]) else {
        return;
    };
    moto.upload_store(&workspace_root().join("events/store"))
        .await;
    let env = aws_env(&moto.endpoint);

    let out = gtseg(&[], &workspace_root().join(EVENT), &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let items: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The same event over a local store gives the same masks, byte for byte.
    let local = temp_dir("s3-vs-local");
    copy_tree(&workspace_root().join("events/store"), &local).unwrap();
    let local_out = gtseg(
        &["--store", local.to_str().unwrap()],
        &workspace_root().join(EVENT),
        &[],
    );
    assert!(local_out.status.success(), "{}", stderr(&local_out));

    for (i, item) in items.as_array().unwrap().iter().enumerate() {
        let uri = item["consolidatedAnnotation"]["content"]["street-scenes-ref"]
            .as_str()
            .unwrap();
        assert_eq!(
            uri,
            format!("{OUTPUT}/consolidated-annotation/output/{i}.png")
        );
        let from_s3 = moto.get(uri).await.expect("the mask was written to S3");
        let (w, h, _, _, trns) = decode_indexed(&from_s3);
        assert_eq!((w, h, trns), (192, 128, false));
        let from_local = std::fs::read(local.join(uri.strip_prefix("s3://").unwrap())).unwrap();
        assert_eq!(from_s3, from_local, "image {i}");
    }

    // Pre-annotation reads its label config from S3.
    let mut pre_env = env.clone();
    pre_env.push(("LABEL_CATEGORY_CONFIG", LABEL_CONFIG_URI.to_owned()));
    let out = gtseg(
        &[],
        &workspace_root().join("events/pre-annotation/image-line.json"),
        &pre_env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["taskInput"]["labels"],
        serde_json::json!(["car", "road", "person", "building"])
    );
}

#[tokio::test]
async fn kms_key_id_writes_masks_with_sse_kms_and_that_key() {
    let Some(moto) = Moto::start("kms_key_id_writes_masks_with_sse_kms", &[]) else {
        return;
    };
    moto.upload_store(&workspace_root().join("events/store"))
        .await;
    let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let ev = event_with("kms", |e| e["kmsKeyId"] = key.into());
    let out = gtseg(&[], &ev, &aws_env(&moto.endpoint));
    assert!(out.status.success(), "{}", stderr(&out));
    let head = moto
        .client()
        .head_object()
        .bucket("gt-example-bucket")
        .key("output/street-scenes/annotations/consolidated-annotation/output/0.png")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    assert_eq!(head.ssekms_key_id(), Some(key));
    assert_eq!(head.content_type(), Some("image/png"));
}

#[tokio::test]
async fn assume_job_role_reads_and_writes_as_the_events_role() {
    // moto enforcing IAM: the function's own user may only assume roles; the job role may use
    // S3. So the batch succeeds only if the role is really assumed.
    let Some(moto) = Moto::start("assume_job_role", &[("INITIAL_NO_AUTH_ACTION_COUNT", "5")])
    else {
        return;
    };
    let setup = Command::new("python3")
        .arg(workspace_root().join("tests/moto_iam_setup.py"))
        .arg(&moto.endpoint)
        .arg(workspace_root().join("events/store"))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "IAM setup failed: {}",
        stderr(&setup)
    );
    let key: Value = serde_json::from_slice(&setup.stdout).unwrap();
    let mut env = aws_env(&moto.endpoint);
    env.retain(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"));
    env.push((
        "AWS_ACCESS_KEY_ID",
        key["AccessKeyId"].as_str().unwrap().to_owned(),
    ));
    env.push((
        "AWS_SECRET_ACCESS_KEY",
        key["SecretAccessKey"].as_str().unwrap().to_owned(),
    ));
    let ev = event_with("assume", |e| {
        e["roleArn"] = "arn:aws:iam::123456789012:role/GroundTruthJobRole".into();
        // The setup script stored keys with ':' as '-' (see there).
        let uri = e["payload"]["s3Uri"].as_str().unwrap();
        let (scheme, rest) = uri.split_at("s3://".len());
        e["payload"]["s3Uri"] = format!("{scheme}{}", rest.replace(':', "-")).into();
    });

    // Without ASSUME_JOB_ROLE the function's own identity is denied, and the error says so.
    let out = gtseg(&[], &ev, &env);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("denied") && err.contains("consolidation-request/iteration-1"),
        "{err}"
    );

    // With it, the payload is read and the masks written as the job role.
    env.push(("ASSUME_JOB_ROLE", "true".to_owned()));
    let out = gtseg(&[], &ev, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let items: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2);
    let meta = &items[0]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"];
    assert_eq!(
        meta["worker-count"], 3,
        "the answer stored by s3Uri was read as the role too"
    );

    // An event without roleArn cannot be served in that mode.
    let ev = event_with("assume-none", |e| {
        e.as_object_mut().unwrap().remove("roleArn");
    });
    let out = gtseg(&[], &ev, &env);
    assert!(
        !out.status.success() && stderr(&out).contains("roleArn"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn s3_failures_fail_the_invocation_naming_the_uri() {
    let Some(moto) = Moto::start("s3_failures_fail_the_invocation", &[]) else {
        return;
    };
    moto.upload_store(&workspace_root().join("events/store"))
        .await;
    let env = aws_env(&moto.endpoint);

    // A missing payload object.
    let ev = event_with("missing-object", |e| {
        e["payload"]["s3Uri"] = format!("{OUTPUT}/consolidated-annotation/nope.json").into()
    });
    let out = gtseg(&[], &ev, &env);
    let err = stderr(&out);
    assert!(!out.status.success() && out.stdout.is_empty());
    assert!(
        err.contains(&format!("{OUTPUT}/consolidated-annotation/nope.json"))
            && err.contains("does not exist"),
        "{err}"
    );

    // A missing bucket.
    let ev = event_with("missing-bucket", |e| {
        e["payload"]["s3Uri"] = "s3://no-such-bucket-here/a/consolidated-annotation/p.json".into()
    });
    let err = stderr(&gtseg(&[], &ev, &env));
    assert!(
        err.contains("s3://no-such-bucket-here/a/consolidated-annotation/p.json")
            && err.contains("bucket"),
        "{err}"
    );

    // A mask that cannot be written fails the batch: no response claims it.
    let ev = event_with("unwritable", |e| {
        e["outputConfig"] = "s3://no-such-output-bucket/out".into()
    });
    let out = gtseg(&[], &ev, &env);
    let err = stderr(&out);
    assert!(!out.status.success() && out.stdout.is_empty(), "{err}");
    assert!(
        err.contains("s3://no-such-output-bucket/out/consolidated-annotation/"),
        "{err}"
    );

    // An unreachable server.
    let mut dead = env.clone();
    dead.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    dead.push((
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", free_port()),
    ));
    let out = gtseg(&[], &workspace_root().join(EVENT), &dead);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("consolidation-request/iteration-1/2026-11-26_10:00:00.json")
            && err.contains("onnect"),
        "{err}"
    );
}
