//! Faults between the function and S3, injected by `tests/fault_proxy.py` in front of moto:
//! only a problem with an answer itself excludes it; throttling, server errors, resets, hung
//! connections and access denied fail the batch, naming the object, so that Ground Truth
//! retries it; what the SDK or the store can retry succeeds.

use std::process::{Command, Output};

use gtseg_tests::harness::{FaultProxy, Moto, aws_env};
use gtseg_tests::{assert_succeeded, built_binary, workspace_root};
use serde_json::{Value, json};

/// The one answer of the sample batch that is read from S3 (`annotationData.s3Uri`).
const ANSWER: &str = "worker-answers/0/O5P6Q7R8S9T0U1.json";
/// What the proxy sees of its path.
const ANSWER_PATH: &str = "worker-answers/0/O5P6Q7R8S9T0U1";

fn replay(proxy: &FaultProxy) -> Output {
    Command::new(built_binary("gtseg"))
        .arg("replay")
        .arg(workspace_root().join("events/consolidation/street-scenes.json"))
        .env_remove("LABEL_CATEGORY_CONFIG")
        .env("RUST_LOG", "warn")
        // Short waits for headers, so that a hung connection fails within seconds.
        .env("S3_TIMEOUT_SECONDS", "2")
        .envs(aws_env(&proxy.endpoint))
        .output()
        .expect("run gtseg")
}

/// The first image's worker count, and whether the answer read from S3 was included.
fn first_image(out: &Output) -> (u64, bool) {
    assert_succeeded(out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let meta = &v[0]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"];
    let workers = meta["consolidation"]["workers"].as_array().unwrap();
    (
        meta["worker-count"].as_u64().unwrap(),
        workers[2]["included"] == true,
    )
}

#[tokio::test]
async fn a_fault_reading_an_answer_fails_the_batch_and_a_retry_that_works_includes_it() {
    let test = "a_fault_reading_an_answer_fails_the_batch";
    let Some(moto) = Moto::start(test, &[]) else {
        return;
    };
    moto.upload_store(&workspace_root().join("events/store"))
        .await;

    // Faults that persist: the batch fails, naming the answer and its worker, rather than
    // excluding the answer (which Ground Truth would never ask for again).
    for (fault, says) in [
        ("503", "may succeed later"),
        ("500", "may succeed later"),
        ("reset", "may succeed later"),
        ("hang", "may succeed later"),
        ("403", "was denied"),
    ] {
        let rules = json!([{"path": ANSWER_PATH, "method": "GET", "fault": fault}]);
        let Some(proxy) = FaultProxy::start(test, &moto.endpoint, &rules) else {
            return;
        };
        let out = replay(&proxy);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "{fault}: {err}"
        );
        assert!(
            err.contains(ANSWER)
                && err.contains("private.us-east-1.O5P6Q7R8S9T0U1")
                && err.contains("rather than lose it")
                && err.contains(says),
            "{fault}: {err}"
        );
        let tries = proxy
            .calls()
            .iter()
            .filter(|c| c.1.contains(ANSWER_PATH))
            .count();
        let want = if fault == "403" { 1 } else { 4 };
        assert_eq!(tries, want, "{fault}: retried where it may help");
    }

    // Faults that pass: throttled once (the SDK retries the call), a body that stalls once
    // (the store reads it again), a reset once: the answer is read and takes part.
    for fault in ["503", "stall", "reset"] {
        let rules = json!([{"path": ANSWER_PATH, "method": "GET", "fault": fault, "times": 1}]);
        let Some(proxy) = FaultProxy::start(test, &moto.endpoint, &rules) else {
            return;
        };
        assert_eq!(first_image(&replay(&proxy)), (3, true), "{fault} once");
    }

    // The answer's own fault excludes it alone: the object is gone.
    moto.client()
        .delete_object()
        .bucket("gt-example-bucket")
        .key(format!("output/street-scenes/annotations/{ANSWER}"))
        .send()
        .await
        .unwrap();
    let Some(proxy) = FaultProxy::start(test, &moto.endpoint, &json!([])) else {
        return;
    };
    let out = replay(&proxy);
    assert_eq!(first_image(&out), (2, false));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason =
        v[0]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"]["excluded-workers"]
            [0]["reason"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(reason.contains("does not exist"), "{reason}");
}

#[tokio::test]
async fn a_mask_write_that_keeps_failing_fails_the_batch() {
    let test = "a_mask_write_that_keeps_failing_fails_the_batch";
    let Some(moto) = Moto::start(test, &[]) else {
        return;
    };
    moto.upload_store(&workspace_root().join("events/store"))
        .await;
    let rules =
        json!([{"path": "consolidated-annotation/output/0.png", "method": "PUT", "fault": "503"}]);
    let Some(proxy) = FaultProxy::start(test, &moto.endpoint, &rules) else {
        return;
    };
    let out = replay(&proxy);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{err}");
    assert!(
        err.contains("consolidated-annotation/output/0.png") && err.contains("writing its mask"),
        "{err}"
    );
}
