//! A complete `CreateLabelingJob` request for a semantic-segmentation job wired to these
//! functions (`gtseg job-request`). Pure: inputs in, request JSON and warnings out.
//!
//! It checks what it can before anything reaches AWS: names and their patterns, `s3://` URIs,
//! the `-ref` label attribute Ground Truth requires for masks, worker counts and time limits,
//! and whether the managed Ground Truth policy may invoke the functions.

use serde_json::{Value, json};

use gtseg::S3Uri;

/// What the request is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequestInput {
    pub job_name: String,
    /// Defaults to `<job_name>-ref`.
    pub label_attribute_name: Option<String>,
    pub manifest_uri: String,
    pub output_path: String,
    pub label_config_uri: String,
    pub template_uri: String,
    pub workteam_arn: String,
    pub role_arn: String,
    pub pre_lambda_arn: String,
    pub consolidation_lambda_arn: String,
    pub workers_per_image: u32,
    pub task_time_limit_s: u32,
    pub task_availability_s: u32,
    pub max_concurrent_tasks: Option<u32>,
    pub title: String,
    pub description: String,
}

/// A request that would be refused, or would not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobRequestError {
    #[error("{field} {value:?} is invalid: {expected}")]
    Invalid {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

fn invalid(
    field: &'static str,
    value: impl Into<String>,
    expected: &'static str,
) -> JobRequestError {
    JobRequestError::Invalid {
        field,
        value: value.into(),
        expected,
    }
}

/// `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,max-1}`: letters and digits, hyphens inside only.
fn aws_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The function name of a Lambda ARN (`arn:aws:lambda:region:account:function:NAME[:qualifier]`).
fn lambda_function_name(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    let (arn_, _, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (_, _, kind, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (arn_ == "arn" && service == "lambda" && kind == "function" && !name.is_empty()).then_some(name)
}

/// Builds the request, or says what is wrong. Warnings are things that work only if the user
/// does something more (such as granting `lambda:InvokeFunction`).
pub fn build_job_request(input: &JobRequestInput) -> Result<(Value, Vec<String>), JobRequestError> {
    let mut warnings = Vec::new();
    if !aws_name(&input.job_name, 63) {
        return Err(invalid(
            "job name",
            &input.job_name,
            "1-63 letters, digits and inner hyphens",
        ));
    }
    let attr = input
        .label_attribute_name
        .clone()
        .unwrap_or_else(|| format!("{}-ref", input.job_name));
    if !aws_name(&attr, 127) {
        return Err(invalid(
            "label attribute name",
            attr,
            "1-127 letters, digits and inner hyphens",
        ));
    }
    // Ground Truth requires `-ref` for its built-in semantic-segmentation task types; with
    // custom Lambda ARNs both forms have been seen to work. Say what each implies.
    warnings.push(if attr.ends_with("-ref") {
        format!(
            "note: label attribute `{attr}` ends in -ref, as Ground Truth's built-in semantic-segmentation jobs require: its value in the output manifest is the mask's S3 URI"
        )
    } else {
        format!(
            "note: label attribute `{attr}` does not end in -ref: accepted with these functions, and its value is still the mask's S3 URI, but tools that expect Ground Truth's built-in naming look for -ref"
        )
    });
    for (field, uri) in [
        ("input manifest", &input.manifest_uri),
        ("label category configuration", &input.label_config_uri),
        ("worker task template", &input.template_uri),
    ] {
        if S3Uri::parse(uri).is_err() {
            return Err(invalid(field, uri.as_str(), "an s3://bucket/key URI"));
        }
    }
    if !input.output_path.starts_with("s3://") || input.output_path.len() <= "s3://".len() {
        return Err(invalid(
            "output path",
            &input.output_path,
            "an s3://bucket/prefix URI",
        ));
    }
    if !input.workteam_arn.starts_with("arn:") || !input.workteam_arn.contains(":workteam") {
        return Err(invalid(
            "work team ARN",
            &input.workteam_arn,
            "arn:aws:sagemaker:REGION:ACCOUNT:workteam/...",
        ));
    }
    if !input.role_arn.starts_with("arn:") || !input.role_arn.contains(":role/") {
        return Err(invalid(
            "role ARN",
            &input.role_arn,
            "arn:aws:iam::ACCOUNT:role/NAME",
        ));
    }
    for (field, arn) in [
        ("pre-annotation Lambda ARN", &input.pre_lambda_arn),
        ("consolidation Lambda ARN", &input.consolidation_lambda_arn),
    ] {
        let name = lambda_function_name(arn).ok_or_else(|| {
            invalid(
                field,
                arn.as_str(),
                "arn:aws:lambda:REGION:ACCOUNT:function:NAME",
            )
        })?;
        if !name.to_ascii_lowercase().contains("sagemaker") {
            warnings.push(format!(
                "{field}: function {name} has no \"SageMaker\" in its name, so AmazonSageMakerGroundTruthExecution \
                 cannot invoke it; grant lambda:InvokeFunction on it to the job role {}",
                input.role_arn
            ));
        }
    }
    if !(1..=9).contains(&input.workers_per_image) {
        return Err(invalid(
            "workers per image",
            input.workers_per_image.to_string(),
            "1 to 9",
        ));
    }
    if !(30..=604_800).contains(&input.task_time_limit_s) {
        return Err(invalid(
            "task time limit",
            input.task_time_limit_s.to_string(),
            "30 to 604800 seconds",
        ));
    }
    if !(60..=2_592_000).contains(&input.task_availability_s) {
        return Err(invalid(
            "task availability",
            input.task_availability_s.to_string(),
            "60 to 2592000 seconds",
        ));
    }
    if input
        .max_concurrent_tasks
        .is_some_and(|n| !(1..=5000).contains(&n))
    {
        return Err(invalid(
            "max concurrent tasks",
            format!("{:?}", input.max_concurrent_tasks),
            "1 to 5000",
        ));
    }
    if input.title.is_empty() || input.title.chars().count() > 128 {
        return Err(invalid("task title", &input.title, "1 to 128 characters"));
    }
    if input.description.is_empty() || input.description.chars().count() > 255 {
        return Err(invalid(
            "task description",
            &input.description,
            "1 to 255 characters",
        ));
    }
    let mut human = json!({
        "WorkteamArn": input.workteam_arn,
        "UiConfig": {"UiTemplateS3Uri": input.template_uri},
        "PreHumanTaskLambdaArn": input.pre_lambda_arn,
        "TaskKeywords": ["Image", "Semantic Segmentation"],
        "TaskTitle": input.title,
        "TaskDescription": input.description,
        "NumberOfHumanWorkersPerDataObject": input.workers_per_image,
        "TaskTimeLimitInSeconds": input.task_time_limit_s,
        "TaskAvailabilityLifetimeInSeconds": input.task_availability_s,
        "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": input.consolidation_lambda_arn},
    });
    if let Some(n) = input.max_concurrent_tasks {
        human["MaxConcurrentTaskCount"] = n.into();
    }
    let request = json!({
        "LabelingJobName": input.job_name,
        "LabelAttributeName": attr,
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": input.manifest_uri}},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"]}
        },
        "OutputConfig": {"S3OutputPath": input.output_path},
        "RoleArn": input.role_arn,
        "LabelCategoryConfigS3Uri": input.label_config_uri,
        "HumanTaskConfig": human,
    });
    Ok((request, warnings))
}

/// The two function ARNs from `aws cloudformation describe-stacks` output (the whole
/// document, or its `Stacks[0].Outputs` array): `(PreHumanTaskLambdaArn,
/// AnnotationConsolidationLambdaArn)`.
pub fn arns_from_stack_outputs(doc: &Value) -> Option<(String, String)> {
    let outputs = doc
        .get("Stacks")
        .and_then(|s| s.get(0))
        .and_then(|s| s.get("Outputs"))
        .unwrap_or(doc);
    let find = |key: &str| {
        outputs
            .as_array()?
            .iter()
            .find(|o| o["OutputKey"] == key)
            .and_then(|o| o["OutputValue"].as_str())
            .map(str::to_owned)
    };
    Some((
        find("PreHumanTaskLambdaArn")?,
        find("AnnotationConsolidationLambdaArn")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> JobRequestInput {
        JobRequestInput {
            job_name: "street-scenes".into(),
            label_attribute_name: None,
            manifest_uri: "s3://bkt/manifests/in.manifest".into(),
            output_path: "s3://bkt/output/".into(),
            label_config_uri: "s3://bkt/config/labels.json".into(),
            template_uri: "s3://bkt/templates/labeling.liquid.html".into(),
            workteam_arn: "arn:aws:sagemaker:us-east-1:111122223333:workteam/private-crowd/team".into(),
            role_arn: "arn:aws:iam::111122223333:role/GroundTruthJobRole".into(),
            pre_lambda_arn: "arn:aws:lambda:us-east-1:111122223333:function:gt-SageMaker-PreSemanticSegmentation".into(),
            consolidation_lambda_arn: "arn:aws:lambda:us-east-1:111122223333:function:gt-SageMaker-Consolidate".into(),
            workers_per_image: 3,
            task_time_limit_s: 3600,
            task_availability_s: 864_000,
            max_concurrent_tasks: None,
            title: "Paint the street".into(),
            description: "Label every pixel".into(),
        }
    }

    #[test]
    fn a_complete_request_with_our_arns() {
        let (r, warnings) = build_job_request(&input()).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("note:") && warnings[0].contains("ends in -ref"));
        assert_eq!(r["LabelAttributeName"], "street-scenes-ref");
        assert_eq!(
            r["HumanTaskConfig"]["PreHumanTaskLambdaArn"],
            input().pre_lambda_arn
        );
        assert_eq!(
            r["HumanTaskConfig"]["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"],
            input().consolidation_lambda_arn
        );
        assert_eq!(r["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"], 3);
    }

    type Edit = Box<dyn Fn(&mut JobRequestInput)>;

    #[test]
    fn checks_refuse_what_ground_truth_would() {
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|i| i.workers_per_image = 10), "1 to 9"),
            (Box::new(|i| i.workers_per_image = 0), "1 to 9"),
            (Box::new(|i| i.job_name = "bad_name".into()), "job name"),
            (Box::new(|i| i.manifest_uri = "https://x/y".into()), "s3://"),
            (Box::new(|i| i.task_time_limit_s = 10), "task time limit"),
            (
                Box::new(|i| i.pre_lambda_arn = "not-an-arn".into()),
                "pre-annotation Lambda ARN",
            ),
        ];
        for (edit, needle) in cases {
            let mut i = input();
            edit(&mut i);
            let e = build_job_request(&i).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn functions_without_sagemaker_in_their_name_get_a_warning() {
        let mut i = input();
        i.consolidation_lambda_arn =
            "arn:aws:lambda:us-east-1:111122223333:function:my-consolidation".into();
        let (_, warnings) = build_job_request(&i).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[1].contains("lambda:InvokeFunction")
                && warnings[1].contains("my-consolidation")
        );
    }

    #[test]
    fn a_label_attribute_without_ref_is_accepted_with_a_note() {
        let mut i = input();
        i.label_attribute_name = Some("street".into());
        let (r, warnings) = build_job_request(&i).unwrap();
        assert_eq!(r["LabelAttributeName"], "street");
        assert!(warnings[0].starts_with("note:") && warnings[0].contains("does not end in -ref"));
    }

    #[test]
    fn arns_come_from_stack_outputs() {
        let doc = json!({"Stacks": [{"Outputs": [
            {"OutputKey": "AnnotationConsolidationLambdaArn", "OutputValue": "arn:acs"},
            {"OutputKey": "PreHumanTaskLambdaArn", "OutputValue": "arn:pre"}]}]});
        assert_eq!(
            arns_from_stack_outputs(&doc),
            Some(("arn:pre".into(), "arn:acs".into()))
        );
        assert_eq!(
            arns_from_stack_outputs(&doc["Stacks"][0]["Outputs"]),
            Some(("arn:pre".into(), "arn:acs".into()))
        );
        assert_eq!(arns_from_stack_outputs(&json!({})), None);
    }
}
