//! `gtseg job-request` against AWS's own service model for `CreateLabelingJob` (botocore
//! validates parameters offline), and its checks.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use gtseg_tests::harness::require;
use gtseg_tests::{ScratchFile, assert_succeeded, built_binary, workspace_root};
use serde_json::{Value, json};

const PRE: &str =
    "arn:aws:lambda:us-east-1:111122223333:function:gt-SageMaker-PreSemanticSegmentation";
const ACS: &str =
    "arn:aws:lambda:us-east-1:111122223333:function:gt-SageMaker-ConsolidateSemanticSegmentation";

fn job_request(extra: &[&str]) -> Output {
    job_request_with("labeling.liquid.html", extra)
}

fn job_request_with(template: &str, extra: &[&str]) -> Output {
    let template = format!("s3://gt-example-bucket/templates/{template}");
    let mut args = vec![
        "job-request",
        "--job-name",
        "street-scenes",
        "--manifest",
        "s3://gt-example-bucket/manifests/street.manifest",
        "--output",
        "s3://gt-example-bucket/output/",
        "--label-config",
        "s3://gt-example-bucket/config/labels.json",
        "--template",
        &template,
        "--workteam",
        "arn:aws:sagemaker:us-east-1:111122223333:workteam/private-crowd/street-team",
        "--role-arn",
        "arn:aws:iam::111122223333:role/GroundTruthJobRole",
    ];
    args.extend_from_slice(extra);
    Command::new(built_binary("gtseg"))
        .args(&args)
        .output()
        .unwrap()
}

fn botocore_validates(request: &[u8]) -> Output {
    let mut child = Command::new("python3")
        .arg(workspace_root().join("tests/validate_job_request.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn job_request_is_valid_for_the_sagemaker_service_model() {
    if !require(
        "python3",
        &["-c", "import botocore"],
        "job_request_is_valid_for_the_sagemaker_service_model",
    ) {
        return;
    }
    // With the ARNs given directly, and taken from the SAM stack's outputs.
    let outputs = ScratchFile::new(
        "stack",
        "stack.json",
        json!({"Stacks": [{"StackName": "gt", "Outputs": [
            {"OutputKey": "PreHumanTaskLambdaArn", "OutputValue": PRE},
            {"OutputKey": "AnnotationConsolidationLambdaArn", "OutputValue": ACS}]}]})
        .to_string(),
    );
    let direct = job_request(&[
        "--pre-lambda-arn",
        PRE,
        "--consolidation-lambda-arn",
        ACS,
        "--workers",
        "5",
    ]);
    let stacked = job_request(&[
        "--stack-outputs",
        outputs.to_str().unwrap(),
        "--workers",
        "5",
    ]);
    for out in [&direct, &stacked] {
        assert_succeeded(out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("warning")
                && err.contains("note: label attribute `street-scenes-ref` ends in -ref"),
            "no warning for SageMaker-named functions, and a note on the attribute name: {err}"
        );
        let v = botocore_validates(&out.stdout);
        assert!(
            v.status.success(),
            "botocore rejects it: {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
    assert_eq!(direct.stdout, stacked.stdout);
    let r: Value = serde_json::from_slice(&direct.stdout).unwrap();
    assert_eq!(r["LabelAttributeName"], "street-scenes-ref");
    assert_eq!(r["HumanTaskConfig"]["PreHumanTaskLambdaArn"], PRE);
    assert_eq!(
        r["HumanTaskConfig"]["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"],
        ACS
    );
    assert_eq!(r["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"], 5);

    // The validator is real: it refuses what botocore's model forbids (it checks required
    // members, types and minimums; maximums are left to the service).
    let mut bad = r.clone();
    bad["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] = 0.into();
    assert!(
        !botocore_validates(bad.to_string().as_bytes())
            .status
            .success()
    );
    let mut bad = r.clone();
    bad.as_object_mut().unwrap().remove("RoleArn");
    assert!(
        !botocore_validates(bad.to_string().as_bytes())
            .status
            .success()
    );
}

#[test]
fn job_request_refuses_what_would_fail_and_warns_about_invoke_permissions() {
    // A label attribute name without -ref is accepted, with a note on what it implies.
    let out = job_request(&[
        "--pre-lambda-arn",
        PRE,
        "--consolidation-lambda-arn",
        ACS,
        "--label-attribute-name",
        "street",
    ]);
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["LabelAttributeName"], "street");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("note: label attribute `street` does not end in -ref")
    );
    let out = job_request(&[
        "--pre-lambda-arn",
        PRE,
        "--consolidation-lambda-arn",
        ACS,
        "--workers",
        "10",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 to 9"));
    let plain = "arn:aws:lambda:us-east-1:111122223333:function:my-consolidation";
    let out = job_request(&["--pre-lambda-arn", PRE, "--consolidation-lambda-arn", plain]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("lambda:InvokeFunction"),
        "{err}"
    );
    let out = job_request(&[]);
    assert!(!out.status.success(), "the ARNs are required");
}

#[test]
fn every_task_type_and_a_public_work_team_give_requests_botocore_accepts() {
    if !require(
        "python3",
        &["-c", "import botocore"],
        "every_task_type_and_a_public_work_team_give_requests_botocore_accepts",
    ) {
        return;
    }
    let arns = ["--pre-lambda-arn", PRE, "--consolidation-lambda-arn", ACS];
    for (task, attr) in [
        ("labeling", "street-scenes-ref"),
        ("adjustment", "street-scenes-ref"),
        ("verification", "street-scenes"),
    ] {
        let mut extra = vec!["--task-type", task];
        extra.extend(arns);
        let out = job_request_with(&format!("{task}.liquid.html"), &extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("warning"), "{task}: {err}");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["LabelAttributeName"], attr, "{task}");
        assert!(
            r["InputConfig"].get("DataAttributes").is_none(),
            "no classifier unless asked"
        );
        let v = botocore_validates(&out.stdout);
        assert!(
            v.status.success(),
            "{task}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
    // The public work force: a price, and the content classifiers it usually needs.
    let mut extra = vec![
        "--task-type",
        "verification",
        "--task-price",
        "0.036",
        "--content-classifier",
        "FreeOfPersonallyIdentifiableInformation",
        "--content-classifier",
        "FreeOfAdultContent",
    ];
    extra.extend(arns);
    let public = "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default";
    let out = job_request_with("verification.liquid.html", &extra);
    assert!(out.status.success());
    let mut r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["HumanTaskConfig"]
            .get("PublicWorkforceTaskPrice")
            .is_none(),
        "private team"
    );
    let mut cmd_args: Vec<&str> = extra.clone();
    cmd_args.extend(["--workteam", public]);
    let out = Command::new(built_binary("gtseg"))
        .args([
            "job-request",
            "--job-name",
            "verify-street",
            "--manifest",
            "s3://gt-example-bucket/output/street-scenes/manifests/output/output.manifest",
            "--output",
            "s3://gt-example-bucket/output/",
            "--label-config",
            "s3://gt-example-bucket/config/verification-labels.json",
            "--template",
            "s3://gt-example-bucket/templates/verification.liquid.html",
            "--role-arn",
            "arn:aws:iam::111122223333:role/GroundTruthJobRole",
        ])
        .args(&cmd_args)
        .output()
        .unwrap();
    assert_succeeded(&out);
    r = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["HumanTaskConfig"]["PublicWorkforceTaskPrice"]["AmountInUsd"]["TenthFractionsOfACent"],
        6
    );
    assert_eq!(
        r["InputConfig"]["DataAttributes"]["ContentClassifiers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let v = botocore_validates(&out.stdout);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}
