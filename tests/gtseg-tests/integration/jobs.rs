//! One deployment serves every job: a job's label list comes from the event, the pinned
//! configuration, the job's own configuration (DescribeLabelingJob), or the workers' labels,
//! in that order, and never from another job. SageMaker is the loopback stub of
//! `tests/sagemaker_stub.py`, which checks signatures and answers against botocore's model.

use std::path::Path;
use std::time::SystemTime;

use gtseg::event::PreAnnotationEvent;
use gtseg::{AnyCatalog, Config, LocalStore, SageMakerCatalog, SavedJobs, Service};
use gtseg_tests::events::{JOB_ARN, LABEL_CONFIG_URI, describe_output};
use gtseg_tests::fixtures::LABELS;
use gtseg_tests::harness::SageMakerStub;
use gtseg_tests::{Scratch, assert_succeeded, copy_tree, temp_dir, workspace_root};
use serde_json::{Value, json};

/// A second label configuration in the sample store: other labels, another order.
const OTHER_CONFIG: &str = "s3://gt-example-bucket/config/labels-other.json";
const OTHER_LABELS: [&str; 5] = ["road", "car", "building", "person", "tree"];

fn store() -> Scratch {
    let dir = temp_dir("jobs");
    copy_tree(&workspace_root().join("events/store"), &dir).unwrap();
    let config = json!({"document-version": "2018-11-28",
        "labels": OTHER_LABELS.iter().map(|l| json!({"label": l})).collect::<Vec<_>>()});
    let p = dir.join(OTHER_CONFIG.strip_prefix("s3://").unwrap());
    std::fs::write(p, config.to_string()).unwrap();
    dir
}

fn sample(file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(workspace_root().join("events").join(file)).unwrap())
        .unwrap()
}

fn saved(jobs: &[Value]) -> AnyCatalog {
    let texts: Vec<String> = jobs.iter().map(Value::to_string).collect();
    let bytes: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    AnyCatalog::Saved(SavedJobs::parse(&bytes).unwrap())
}

/// The class names of a consolidation response's first image, in key order.
fn classes(items: &[Value], attr: &str) -> Vec<String> {
    let map = &items[0]["consolidatedAnnotation"]["content"][format!("{attr}-metadata")]["internal-color-map"];
    map.as_object()
        .unwrap()
        .values()
        .map(|e| e["class-name"].as_str().unwrap().to_owned())
        .collect()
}

async fn consolidate(dir: &Path, config: Config, jobs: AnyCatalog, event: &Value) -> Vec<Value> {
    let s = Service::with_catalog(LocalStore::new(dir), config, jobs);
    let items = s
        .consolidation(event, SystemTime::now(), None)
        .await
        .unwrap();
    items
        .into_iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect()
}

fn with_background(labels: &[&str]) -> Vec<String> {
    std::iter::once("BACKGROUND")
        .chain(labels.iter().copied())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn labels_come_from_the_event_then_the_pin_then_the_job_then_the_workers() {
    let dir = store();
    let attr = "street-scenes-ref";
    let job = describe_output("street-scenes", OTHER_CONFIG);
    let pinned = Config {
        label_category_config: Some(LABEL_CONFIG_URI.into()),
        ..Config::default()
    };
    let with_categories = sample("consolidation/street-scenes.json");
    let from_job = sample("consolidation/street-scenes-from-job.json");

    // 1. The event's labelCategories win over everything.
    let items = consolidate(
        &dir,
        pinned.clone(),
        saved(std::slice::from_ref(&job)),
        &with_categories,
    )
    .await;
    assert_eq!(classes(&items, attr), with_background(&LABELS));
    // 2. Then the pin, over the job's own configuration.
    let items = consolidate(&dir, pinned, saved(std::slice::from_ref(&job)), &from_job).await;
    assert_eq!(classes(&items, attr), with_background(&LABELS));
    // 3. Then the job's LabelCategoryConfigS3Uri.
    let items = consolidate(&dir, Config::default(), saved(&[job]), &from_job).await;
    assert_eq!(classes(&items, attr), with_background(&OTHER_LABELS));
    let meta = &items[0]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"];
    assert!(meta.get("warnings").is_none(), "{meta}");
    // 4. Then, with no way to look the job up, the labels the workers used, with a warning
    //    that says why.
    let items = consolidate(&dir, Config::default(), AnyCatalog::None, &from_job).await;
    let mut union = LABELS.to_vec();
    union.sort_unstable();
    assert_eq!(classes(&items, attr), with_background(&union));
    let warning =
        items[0]["consolidatedAnnotation"]["content"]["street-scenes-ref-metadata"]["warnings"][0]
            .as_str()
            .unwrap();
    assert!(
        warning.contains("LABEL_CATEGORY_CONFIG is not set") && warning.contains("sorted union"),
        "{warning}"
    );
}

#[tokio::test]
async fn another_job_s_labels_are_never_used() {
    let dir = store();
    let other = describe_output("street-scenes-b", OTHER_CONFIG);
    let s = Service::with_catalog(LocalStore::new(&dir), Config::default(), saved(&[other]));
    let e = s
        .pre_annotation(&sample("pre-annotation/image-line.json"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.error_type(), "LabelConfigError");
    assert!(
        msg.contains(JOB_ARN) && msg.contains("street-scenes-b") && msg.contains("never used"),
        "{msg}"
    );
    let e = s
        .consolidation(
            &sample("consolidation/street-scenes-from-job.json"),
            SystemTime::now(),
            None,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("never used"), "{e}");
}

#[tokio::test]
async fn pre_annotation_needs_a_label_list_and_names_the_job_without_one() {
    let dir = store();
    let s = Service::new(LocalStore::new(&dir), Config::default());
    let e = s
        .pre_annotation(&sample("pre-annotation/image-line.json"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(JOB_ARN) && msg.contains("LABEL_CATEGORY_CONFIG"),
        "{msg}"
    );
    // A job whose description names no configuration: pre-annotation cannot go on, while
    // consolidation falls back to the workers' labels.
    let mut bare = describe_output("street-scenes", LABEL_CONFIG_URI);
    bare.as_object_mut()
        .unwrap()
        .remove("LabelCategoryConfigS3Uri");
    let s = Service::with_catalog(LocalStore::new(&dir), Config::default(), saved(&[bare]));
    let e = s
        .pre_annotation(&sample("pre-annotation/image-line.json"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no LabelCategoryConfigS3Uri"), "{e}");
    let items = s
        .consolidation(
            &sample("consolidation/street-scenes-from-job.json"),
            SystemTime::now(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(items.len(), 2);
}

#[tokio::test]
async fn the_job_s_audit_attribute_picks_the_earlier_label_or_skips_the_line() {
    let dir = store();
    let config = |audit: &str| {
        let c = json!({"document-version": "2018-11-28", "labels": LABELS.iter().map(|l| json!({"label": l})).collect::<Vec<_>>(),
                       "auditLabelAttributeName": audit});
        let p = dir.join("gt-example-bucket/config/audit.json");
        std::fs::write(p, c.to_string()).unwrap();
    };
    let job = describe_output("street-scenes", "s3://gt-example-bucket/config/audit.json");
    let line = sample("pre-annotation/adjustment-line.json");

    config("street-scenes-v1-ref");
    let s = Service::with_catalog(
        LocalStore::new(&dir),
        Config::default(),
        saved(std::slice::from_ref(&job)),
    );
    let r = s.pre_annotation(&line).await.unwrap();
    assert!(r.is_human_annotation_required);
    assert!(
        r.task_input
            .initial_value
            .unwrap()
            .src
            .contains("street-scenes-v1"),
        "the named label"
    );

    config("street-scenes-v0-ref");
    let s = Service::with_catalog(LocalStore::new(&dir), Config::default(), saved(&[job]));
    let r = s.pre_annotation(&line).await.unwrap();
    assert!(
        !r.is_human_annotation_required,
        "a line without the label is skipped"
    );
    assert!(r.task_input.initial_value.is_none() && r.task_input.overlay.is_none());
    let parsed: PreAnnotationEvent = serde_json::from_value(line).unwrap();
    assert!(parsed.data_object.contains_key("street-scenes-v1-ref"));
}

/// An SDK configuration that signs with the test credentials.
fn sdk_config() -> aws_config::SdkConfig {
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
        .build()
}

fn sagemaker(stub: &SageMakerStub) -> AnyCatalog {
    AnyCatalog::SageMaker(SageMakerCatalog::new(
        &sdk_config(),
        Some(stub.endpoint.clone()),
    ))
}

#[tokio::test]
async fn describe_labeling_job_is_signed_retried_cached_and_its_failures_name_the_job() {
    let test = "describe_labeling_job_is_signed_retried_cached_and_its_failures_name_the_job";
    let jobs = json!({
        "street-scenes": {"describe": describe_output("street-scenes", OTHER_CONFIG), "throttle": 1},
        "denied": {"error": {"status": 400, "type": "AccessDeniedException",
                             "message": "User is not authorized to perform: sagemaker:DescribeLabelingJob"}},
        "busy": {"describe": describe_output("busy", OTHER_CONFIG), "throttle": 99},
    });
    let Some(stub) = SageMakerStub::start(test, &jobs) else {
        return;
    };
    let dir = store();
    let s = Service::with_catalog(LocalStore::new(&dir), Config::default(), sagemaker(&stub));
    let event = sample("consolidation/street-scenes-from-job.json");

    // Throttled once, then answered: the labels are the job's, and a second batch of the
    // same job asks SageMaker no more.
    for _ in 0..2 {
        let items: Vec<Value> = s
            .consolidation(&event, SystemTime::now(), None)
            .await
            .unwrap()
            .into_iter()
            .map(|i| serde_json::to_value(i).unwrap())
            .collect();
        assert_eq!(
            classes(&items, "street-scenes-ref"),
            with_background(&OTHER_LABELS)
        );
    }
    let pre = s
        .pre_annotation(&sample("pre-annotation/image-line.json"))
        .await
        .unwrap();
    assert_eq!(pre.task_input.labels, OTHER_LABELS);
    assert_eq!(
        stub.calls(),
        [("street-scenes".into(), 400), ("street-scenes".into(), 200)],
        "one retry, then the cache"
    );

    // Failures fail the invocation (so it is retried), naming the job and what to grant.
    let job = |name: &str| {
        let mut e = event.clone();
        e["labelingJobArn"] =
            format!("arn:aws:sagemaker:us-east-1:111122223333:labeling-job/{name}").into();
        e
    };
    // A batch that cannot be read fails before the job is described at all.
    let mut unreadable = job("denied");
    unreadable["payload"]["s3Uri"] = "https://example.com/p.json".into();
    let e = s
        .consolidation(&unreadable, SystemTime::now(), None)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "InvalidBatch", "{e}");
    assert!(
        stub.calls().iter().all(|c| c.0 != "denied"),
        "no call for it"
    );
    for (name, needles) in [
        (
            "denied",
            vec![
                "labeling-job/denied",
                "sagemaker:DescribeLabelingJob",
                "LABEL_CATEGORY_CONFIG",
            ],
        ),
        (
            "busy",
            vec!["labeling-job/busy", "throttled on every attempt"],
        ),
        (
            "missing",
            vec!["labeling-job/missing", "knows no labeling job"],
        ),
    ] {
        let e = s
            .consolidation(&job(name), SystemTime::now(), None)
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.error_type(), "LabelConfigError", "{msg}");
        for n in needles {
            assert!(msg.contains(n), "{name}: {msg} lacks {n}");
        }
    }
    let busy = stub.calls().iter().filter(|c| c.0 == "busy").count();
    assert_eq!(busy, 3, "throttling is retried, three attempts in all");
}

/// `gtseg replay` offline: the saved describe-labeling-job output gives the job's labels.
#[test]
fn replay_takes_the_job_s_saved_description() {
    let dir = store();
    let out = std::process::Command::new(gtseg_tests::built_binary("gtseg"))
        .args(["replay", "--compact", "--store"])
        .arg(&*dir)
        .arg("--labeling-job")
        .arg(workspace_root().join("events/labeling-job/street-scenes.json"))
        .arg(workspace_root().join("events/consolidation/street-scenes-from-job.json"))
        .env_remove("LABEL_CATEGORY_CONFIG")
        .output()
        .unwrap();
    assert_succeeded(&out);
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        classes(&items, "street-scenes-ref"),
        with_background(&LABELS)
    );
    let out = std::process::Command::new(gtseg_tests::built_binary("gtseg"))
        .args(["replay", "--store"])
        .arg(&*dir)
        .arg(workspace_root().join("events/pre-annotation/image-line.json"))
        .env_remove("LABEL_CATEGORY_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--labeling-job") || err.contains("saved describe-labeling-job"),
        "{err}"
    );
}
