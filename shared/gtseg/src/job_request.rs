//! A complete `CreateLabelingJob` request for a semantic-segmentation job wired to these
//! functions (`gtseg job-request`): labeling, adjustment or verification. Pure: inputs in,
//! request JSON and notices out.
//!
//! It checks what it can before anything reaches AWS: names and their patterns, `s3://` URIs,
//! the label attribute's naming rule for the task type, worker counts and time limits, the
//! price a public work team needs, regions, and whether the managed Ground Truth policy may
//! invoke the functions.

use serde_json::{Value, json};

use crate::uri::S3Uri;

/// The three semantic-segmentation task types. All three use the same two functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskType {
    /// Workers paint masks from scratch (`templates/labeling.liquid.html`).
    #[default]
    Labeling,
    /// Workers correct an earlier job's masks (`templates/adjustment.liquid.html`).
    Adjustment,
    /// Workers judge an earlier job's masks, picking a category
    /// (`templates/verification.liquid.html`).
    Verification,
}

impl TaskType {
    /// Every task type, the default first.
    pub const ALL: [Self; 3] = [Self::Labeling, Self::Adjustment, Self::Verification];

    /// The name on the command line and in the templates' file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Labeling => "labeling",
            Self::Adjustment => "adjustment",
            Self::Verification => "verification",
        }
    }

    /// The task title and description workers see, unless given.
    pub fn default_text(self) -> (&'static str, &'static str) {
        match self {
            Self::Labeling => (
                "Semantic segmentation: paint every pixel with its label",
                "Paint each object of the image with its label; leave the rest unpainted.",
            ),
            Self::Adjustment => (
                "Semantic segmentation: correct the painted mask",
                "Repaint wrong pixels, paint missed objects and erase stray paint.",
            ),
            Self::Verification => (
                "Semantic segmentation: is the painted mask right?",
                "Check the mask drawn over the image and pick the category that describes it.",
            ),
        }
    }
}

/// A name that is no task type's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a task type: use labeling, adjustment or verification")]
pub struct UnknownTaskType(pub String);

impl std::str::FromStr for TaskType {
    type Err = UnknownTaskType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownTaskType(text.to_owned()))
    }
}

/// Something the user should know about a request that can be sent: a note on what a choice
/// implies, or a warning that it works only if the user does something more (such as
/// granting `lambda:InvokeFunction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// What a choice implies.
    Note(String),
    /// What will not work unless the user acts.
    Warning(String),
}

impl std::fmt::Display for Notice {
    /// `note: …` or `warning: …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Note(t) => write!(f, "note: {t}"),
            Self::Warning(t) => write!(f, "warning: {t}"),
        }
    }
}

impl Notice {
    /// The text, without its kind.
    pub fn text(&self) -> &str {
        match self {
            Self::Note(t) | Self::Warning(t) => t,
        }
    }
}

/// The content classifiers `CreateLabelingJob` accepts: statements that the images are free
/// of personal data or adult content, which open the job to more of a public work force.
pub const CONTENT_CLASSIFIERS: [&str; 2] = [
    "FreeOfPersonallyIdentifiableInformation",
    "FreeOfAdultContent",
];

/// What the request is built from: `CreateLabelingJob`'s fields under their own names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequestInput {
    /// Labeling, adjustment or verification.
    pub task_type: TaskType,
    /// `LabelingJobName`.
    pub job_name: String,
    /// `LabelAttributeName`; defaults to `<job_name>-ref`, or `<job_name>` for verification.
    pub label_attribute_name: Option<String>,
    /// The input manifest, `s3://bucket/key`.
    pub manifest_uri: String,
    /// `S3OutputPath`, `s3://bucket/prefix`.
    pub output_path: String,
    /// `LabelCategoryConfigS3Uri`.
    pub label_config_uri: String,
    /// The worker task template's `s3://` URI.
    pub template_uri: String,
    /// `WorkteamArn`.
    pub workteam_arn: String,
    /// `RoleArn`: the job's execution role.
    pub role_arn: String,
    /// `PreHumanTaskLambdaArn`.
    pub pre_lambda_arn: String,
    /// `AnnotationConsolidationLambdaArn`.
    pub consolidation_lambda_arn: String,
    /// `NumberOfHumanWorkersPerDataObject`.
    pub workers_per_image: u32,
    /// `TaskTimeLimitInSeconds`.
    pub task_time_limit_s: u32,
    /// `TaskAvailabilityLifetimeInSeconds`.
    pub task_availability_s: u32,
    /// `MaxConcurrentTaskCount`.
    pub max_concurrent_tasks: Option<u32>,
    /// `TaskTitle`.
    pub title: String,
    /// `TaskDescription`.
    pub description: String,
    /// Of [`CONTENT_CLASSIFIERS`]; none unless the user says so.
    pub content_classifiers: Vec<String>,
    /// What a public (Mechanical Turk) worker earns per task, in US dollars (`0.036`).
    pub task_price: Option<String>,
}

/// A request that would be refused, or would not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobRequestError {
    /// A field's value is refused.
    #[error("{field} {value:?} is invalid: {expected}")]
    Invalid {
        /// The field, in words.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
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

/// An ARN of `service` in the form botocore's model accepts
/// (`arn:aws[a-z-]*:SERVICE:[a-z0-9-]*:ACCOUNT:RESOURCE`): the partition, the region in lower
/// case, and an account of twelve digits (`:` empty for IAM, which has no region). Returns
/// the resource, `None` for any other text, such as a placeholder (`REGION`, `ACCOUNT`).
fn arn_resource<'a>(arn: &'a str, service: &str) -> Option<&'a str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, svc) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = prefix == "arn"
        && partition
            .strip_prefix("aws")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        && svc == service
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(resource)
}

/// The function name of a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:qualifier]`).
fn lambda_function_name(arn: &str) -> Option<&str> {
    let name = arn_resource(arn, "lambda")?.strip_prefix("function:")?;
    let name = name.split(':').next()?;
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
    .then_some(name)
}

/// An S3 bucket name as S3 accepts it for a new bucket: 3 to 63 lower-case letters, digits,
/// dots and hyphens, starting and ending with a letter or digit (not a placeholder like `B`).
fn new_style_bucket(name: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(name.bytes().next())
        && edge(name.bytes().last())
        && !name.contains("..")
}

/// Builds the request, or says what is wrong, with the notices the user should read.
pub fn build_job_request(input: &JobRequestInput) -> Result<(Value, Vec<Notice>), JobRequestError> {
    let mut notices = Vec::new();
    let attr = label_attribute(input)?;
    notices.push(Notice::Note(attribute_note(input.task_type, &attr)));
    if input.task_type != TaskType::Labeling {
        notices.push(Notice::Note(earlier_job_note(input.task_type)));
    }
    check_locations(input, &mut notices)?;
    check_functions(input, &mut notices)?;
    check_limits(input)?;
    check_texts(input)?;
    let price = public_price(input, &mut notices)?;
    let mut input_config =
        json!({"DataSource": {"S3DataSource": {"ManifestS3Uri": input.manifest_uri}}});
    if !input.content_classifiers.is_empty() {
        input_config["DataAttributes"] = json!({"ContentClassifiers": input.content_classifiers});
    }
    let request = json!({
        "LabelingJobName": input.job_name,
        "LabelAttributeName": attr,
        "InputConfig": input_config,
        "OutputConfig": {"S3OutputPath": input.output_path},
        "RoleArn": input.role_arn,
        "LabelCategoryConfigS3Uri": input.label_config_uri,
        "HumanTaskConfig": human_task_config(input, price),
    });
    Ok((request, notices))
}

/// The job's name checked, and the label attribute's name (given, or the default for the
/// task type) checked.
fn label_attribute(input: &JobRequestInput) -> Result<String, JobRequestError> {
    if !aws_name(&input.job_name, 63) {
        return Err(invalid(
            "job name",
            &input.job_name,
            "1-63 letters, digits and inner hyphens",
        ));
    }
    let attr = input.label_attribute_name.clone().unwrap_or_else(|| {
        if input.task_type == TaskType::Verification {
            input.job_name.clone()
        } else {
            format!("{}-ref", input.job_name)
        }
    });
    if !aws_name(&attr, 127) {
        return Err(invalid(
            "label attribute name",
            attr,
            "1-127 letters, digits and inner hyphens",
        ));
    }
    if attr.ends_with("-metadata") {
        return Err(invalid(
            "label attribute name",
            attr,
            "a name that does not end in -metadata (Ground Truth writes <name>-metadata beside it)",
        ));
    }
    Ok(attr)
}

/// What an adjustment or verification job needs of its inputs.
fn earlier_job_note(task: TaskType) -> String {
    format!(
        "an {} job works on an earlier job's masks: its input manifest is that job's output manifest, and its label category configuration names the earlier label attribute in auditLabelAttributeName{}",
        task.name(),
        if task == TaskType::Verification {
            "; its labels are the categories workers choose from, such as \"Label(s) correct\""
        } else {
            ""
        }
    )
}

/// The `s3://` locations, and the template against the task type.
fn check_locations(
    input: &JobRequestInput,
    notices: &mut Vec<Notice>,
) -> Result<(), JobRequestError> {
    for (field, uri) in [
        ("input manifest", &input.manifest_uri),
        ("label category configuration", &input.label_config_uri),
        ("worker task template", &input.template_uri),
    ] {
        if !S3Uri::parse(uri).is_ok_and(|u| new_style_bucket(u.bucket())) {
            return Err(invalid(
                field,
                uri.as_str(),
                "an s3://bucket/key URI, with the bucket's real name",
            ));
        }
    }
    let file = input.template_uri.rsplit('/').next().unwrap_or_default();
    let expected = format!("{}.liquid.html", input.task_type.name());
    let ours = TaskType::ALL.map(|t| format!("{}.liquid.html", t.name()));
    if ours.contains(&file.to_owned()) && file != expected {
        notices.push(Notice::Warning(format!(
            "worker task template {file} is not the one for an {} job: upload templates/{expected} and give its URI",
            input.task_type.name()
        )));
    }
    let bucket = input
        .output_path
        .strip_prefix("s3://")
        .and_then(|rest| rest.split('/').next());
    if !bucket.is_some_and(new_style_bucket) {
        return Err(invalid(
            "output path",
            &input.output_path,
            "an s3://bucket/prefix URI, with the bucket's real name",
        ));
    }
    Ok(())
}

/// The work team, the role and both functions: their ARNs, their regions, and whether the
/// managed Ground Truth policy may invoke the functions.
fn check_functions(
    input: &JobRequestInput,
    notices: &mut Vec<Notice>,
) -> Result<(), JobRequestError> {
    if !arn_resource(&input.workteam_arn, "sagemaker").is_some_and(|r| r.starts_with("workteam/")) {
        return Err(invalid(
            "work team ARN",
            &input.workteam_arn,
            "arn:aws:sagemaker:REGION:ACCOUNT:workteam/..., with the real region and 12-digit account",
        ));
    }
    let role = arn_resource(&input.role_arn, "iam")
        .filter(|_| input.role_arn.split(':').nth(3) == Some(""))
        .and_then(|r| r.strip_prefix("role"))
        .map(|r| r.trim_start_matches('/'));
    let role_ok = role.is_some_and(|r| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b))
    });
    if !role_ok || !(20..=2048).contains(&input.role_arn.len()) {
        return Err(invalid(
            "role ARN",
            &input.role_arn,
            "arn:aws:iam::ACCOUNT:role/NAME, with the real 12-digit account",
        ));
    }
    let team_region = input.workteam_arn.split(':').nth(3).unwrap_or_default();
    for (field, arn) in [
        ("pre-annotation Lambda ARN", &input.pre_lambda_arn),
        ("consolidation Lambda ARN", &input.consolidation_lambda_arn),
    ] {
        let region = arn.split(':').nth(3).unwrap_or_default();
        if region != team_region {
            notices.push(Notice::Warning(format!(
                "{field} is in region {region}, the work team in {team_region}: the job runs in the work team's region, and Ground Truth invokes only functions in the job's region; deploy the stack in {team_region}"
            )));
        }
        let name = lambda_function_name(arn).ok_or_else(|| {
            invalid(
                field,
                arn.as_str(),
                "arn:aws:lambda:REGION:ACCOUNT:function:NAME, with the real region and 12-digit account",
            )
        })?;
        if !name.to_ascii_lowercase().contains("sagemaker") {
            notices.push(Notice::Warning(format!(
                "{field}: function {name} has no \"SageMaker\" in its name, so AmazonSageMakerGroundTruthExecution \
                 cannot invoke it; grant lambda:InvokeFunction on it to the job role {}",
                input.role_arn
            )));
        }
    }
    Ok(())
}

/// Worker counts, time limits and concurrency within what `CreateLabelingJob` accepts.
fn check_limits(input: &JobRequestInput) -> Result<(), JobRequestError> {
    let ranges: [(
        &'static str,
        u32,
        std::ops::RangeInclusive<u32>,
        &'static str,
    ); 3] = [
        (
            "workers per image",
            input.workers_per_image,
            1..=9,
            "1 to 9",
        ),
        (
            "task time limit",
            input.task_time_limit_s,
            30..=604_800,
            "30 to 604800 seconds",
        ),
        (
            "task availability",
            input.task_availability_s,
            60..=2_592_000,
            "60 to 2592000 seconds",
        ),
    ];
    for (field, value, range, expected) in ranges {
        if !range.contains(&value) {
            return Err(invalid(field, value.to_string(), expected));
        }
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
    Ok(())
}

/// The title, the description and the content classifiers.
fn check_texts(input: &JobRequestInput) -> Result<(), JobRequestError> {
    // botocore's pattern: tab, line breaks and printable characters only.
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || !(c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    };
    if input.title.is_empty()
        || input.title.chars().count() > 128
        || !input.title.chars().all(printable)
    {
        return Err(invalid(
            "task title",
            &input.title,
            "1 to 128 characters, no control characters",
        ));
    }
    if input.description.is_empty() || input.description.chars().count() > 255 {
        return Err(invalid(
            "task description",
            &input.description,
            "1 to 255 characters",
        ));
    }
    for c in &input.content_classifiers {
        if !CONTENT_CLASSIFIERS.contains(&c.as_str()) {
            return Err(invalid(
                "content classifier",
                c,
                "FreeOfPersonallyIdentifiableInformation or FreeOfAdultContent",
            ));
        }
    }
    Ok(())
}

/// A public work team's price per task; a price for a private one is left out, with a
/// warning.
fn public_price(
    input: &JobRequestInput,
    notices: &mut Vec<Notice>,
) -> Result<Option<(u32, u32, u32)>, JobRequestError> {
    let public = input.workteam_arn.contains(":workteam/public-crowd/");
    match (&input.task_price, public) {
        (Some(p), true) => Ok(Some(task_price(p)?)),
        (None, true) => Err(invalid(
            "task price",
            "(none)",
            "a public (Mechanical Turk) work team needs --task-price, in US dollars per task, e.g. 0.036",
        )),
        (Some(_), false) => {
            notices.push(Notice::Warning(
                "--task-price applies to public (Mechanical Turk) work teams only; this work team is private or a vendor's, so it is left out"
                    .to_owned(),
            ));
            Ok(None)
        }
        (None, false) => Ok(None),
    }
}

/// `HumanTaskConfig`.
fn human_task_config(input: &JobRequestInput, price: Option<(u32, u32, u32)>) -> Value {
    let mut keywords = vec!["Image", "Semantic Segmentation"];
    match input.task_type {
        TaskType::Labeling => {}
        TaskType::Adjustment => keywords.push("Adjustment"),
        TaskType::Verification => keywords.push("Verification"),
    }
    let mut human = json!({
        "WorkteamArn": input.workteam_arn,
        "UiConfig": {"UiTemplateS3Uri": input.template_uri},
        "PreHumanTaskLambdaArn": input.pre_lambda_arn,
        "TaskKeywords": keywords,
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
    if let Some((dollars, cents, tenths)) = price {
        human["PublicWorkforceTaskPrice"] = json!({"AmountInUsd": {
            "Dollars": dollars, "Cents": cents, "TenthFractionsOfACent": tenths}});
    }
    human
}

/// What the label attribute's name implies for the task type.
fn attribute_note(task: TaskType, attr: &str) -> String {
    let with_ref = attr.ends_with("-ref");
    match (task, with_ref) {
        (TaskType::Verification, false) => format!(
            "label attribute `{attr}` does not end in -ref, as the CreateLabelingJob reference requires for verification: its value in the output manifest is the chosen category's index"
        ),
        (TaskType::Verification, true) => format!(
            "label attribute `{attr}` ends in -ref: older verification examples do so and these functions accept it, but the CreateLabelingJob reference now says a verification attribute must not"
        ),
        (_, true) => format!(
            "label attribute `{attr}` ends in -ref, as Ground Truth's built-in semantic-segmentation jobs require: its value in the output manifest is the mask's S3 URI"
        ),
        (_, false) => format!(
            "label attribute `{attr}` does not end in -ref: accepted with these functions, and its value is still the mask's S3 URI, but tools that expect Ground Truth's built-in naming look for -ref"
        ),
    }
}

/// `0.036` (US dollars) as `(dollars, cents, tenths of a cent)`, within what
/// `PublicWorkforceTaskPrice` accepts (at most 2 dollars, and a positive amount).
fn task_price(text: &str) -> Result<(u32, u32, u32), JobRequestError> {
    let bad = || {
        invalid(
            "task price",
            text,
            "US dollars per task with at most 3 decimals, above 0 and at most 2, e.g. 0.036",
        )
    };
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let dollars: u32 = whole.parse().map_err(|_| bad())?;
    if dollars > 2 {
        return Err(bad());
    }
    let tenths: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let total = dollars * 1000 + tenths;
    if total == 0 || total > 2000 {
        return Err(bad());
    }
    Ok((total / 1000, total % 1000 / 10, total % 10))
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

    /// The request and its notices as text (`note: …`, `warning: …`).
    fn build(input: &JobRequestInput) -> Result<(Value, Vec<String>), JobRequestError> {
        build_job_request(input)
            .map(|(r, notices)| (r, notices.iter().map(ToString::to_string).collect()))
    }

    fn input() -> JobRequestInput {
        JobRequestInput {
            task_type: TaskType::Labeling,
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
            content_classifiers: Vec::new(),
            task_price: None,
        }
    }

    #[test]
    fn a_complete_request_with_our_arns() {
        let (r, warnings) = build(&input()).unwrap();
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
            let e = build(&i).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn functions_without_sagemaker_in_their_name_get_a_warning() {
        let mut i = input();
        i.consolidation_lambda_arn =
            "arn:aws:lambda:us-east-1:111122223333:function:my-consolidation".into();
        let (_, warnings) = build(&i).unwrap();
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
        let (r, warnings) = build(&i).unwrap();
        assert_eq!(r["LabelAttributeName"], "street");
        assert!(warnings[0].starts_with("note:") && warnings[0].contains("does not end in -ref"));
    }

    #[test]
    fn verification_defaults_to_an_attribute_without_ref_and_accepts_one_with_it() {
        let mut i = input();
        i.task_type = TaskType::Verification;
        i.template_uri = "s3://bkt/templates/verification.liquid.html".into();
        let (r, warnings) = build(&i).unwrap();
        assert_eq!(r["LabelAttributeName"], "street-scenes");
        assert!(warnings[0].contains("category's index"), "{warnings:?}");
        assert!(
            warnings[1].contains("auditLabelAttributeName"),
            "{warnings:?}"
        );
        assert_eq!(warnings.len(), 2);
        i.label_attribute_name = Some("verify-ref".into());
        let (r, warnings) = build(&i).unwrap();
        assert_eq!(r["LabelAttributeName"], "verify-ref");
        assert!(
            warnings[0].contains("older verification examples"),
            "{warnings:?}"
        );
        // The labeling template for a verification job is a mistake worth a warning.
        i.template_uri = "s3://bkt/templates/labeling.liquid.html".into();
        let (_, warnings) = build(&i).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("verification.liquid.html")),
            "{warnings:?}"
        );
    }

    #[test]
    fn content_classifiers_are_off_unless_asked_for() {
        let (r, _) = build(&input()).unwrap();
        assert!(r["InputConfig"].get("DataAttributes").is_none());
        let mut i = input();
        i.content_classifiers = vec!["FreeOfAdultContent".into()];
        let (r, _) = build(&i).unwrap();
        assert_eq!(
            r["InputConfig"]["DataAttributes"]["ContentClassifiers"],
            json!(["FreeOfAdultContent"])
        );
        i.content_classifiers = vec!["FreeOfCats".into()];
        assert!(build(&i).is_err());
    }

    #[test]
    fn public_work_teams_need_a_price_and_private_ones_ignore_it() {
        let mut i = input();
        i.workteam_arn =
            "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default".into();
        let e = build(&i).unwrap_err().to_string();
        assert!(e.contains("--task-price"), "{e}");
        i.task_price = Some("0.036".into());
        let (r, _) = build(&i).unwrap();
        assert_eq!(
            r["HumanTaskConfig"]["PublicWorkforceTaskPrice"]["AmountInUsd"],
            json!({"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6})
        );
        for bad in [
            "0",
            "2.001",
            "1.2345",
            "x",
            "-1",
            "0.0x",
            "4294968",
            "99999999999",
        ] {
            i.task_price = Some(bad.into());
            assert!(build(&i).is_err(), "{bad}");
        }
        assert_eq!(task_price("1.2").unwrap(), (1, 20, 0));
        assert_eq!(task_price("2").unwrap(), (2, 0, 0));
        let mut i = input();
        i.task_price = Some("0.036".into());
        let (r, warnings) = build(&i).unwrap();
        assert!(
            r["HumanTaskConfig"]
                .get("PublicWorkforceTaskPrice")
                .is_none()
        );
        assert!(warnings.iter().any(|w| w.contains("public")));
    }

    #[test]
    fn functions_in_another_region_than_the_work_team_get_a_warning() {
        let mut i = input();
        i.pre_lambda_arn = i.pre_lambda_arn.replace("us-east-1", "eu-west-1");
        let (_, warnings) = build(&i).unwrap();
        let w: Vec<_> = warnings.iter().filter(|w| w.contains("region")).collect();
        assert_eq!(w.len(), 1, "{warnings:?}");
        assert!(w[0].contains("eu-west-1") && w[0].contains("us-east-1"));
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

    #[test]
    fn what_botocore_refuses_is_refused_here_placeholders_included() {
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|i| i.role_arn = "arn::role/r".into()), "role ARN"),
            (
                Box::new(|i| i.role_arn = "arn:aws:iam::ACCOUNT:role/GroundTruthJobRole".into()),
                "role ARN",
            ),
            (
                Box::new(|i| i.workteam_arn = "arn::workteam".into()),
                "work team ARN",
            ),
            (
                Box::new(|i| {
                    i.workteam_arn =
                        "arn:aws:sagemaker:REGION:ACCOUNT:workteam/private-crowd/TEAM".into()
                }),
                "work team ARN",
            ),
            (
                Box::new(|i| {
                    i.pre_lambda_arn = "arn:aws:lambda:us-east-1:1:function:gt-SageMaker-Pre".into()
                }),
                "pre-annotation Lambda ARN",
            ),
            (
                Box::new(|i| i.title = "Paint\u{1b}[31m".into()),
                "task title",
            ),
            (Box::new(|i| i.title = "Paint\u{1}".into()), "task title"),
            (
                Box::new(|i| i.label_attribute_name = Some("street-metadata".into())),
                "-metadata",
            ),
            (
                Box::new(|i| i.manifest_uri = "s3://B/manifests/street.manifest".into()),
                "input manifest",
            ),
            (
                Box::new(|i| i.output_path = "s3://B/output/".into()),
                "output path",
            ),
        ];
        for (edit, needle) in cases {
            let mut i = input();
            edit(&mut i);
            let e = build(&i).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} lacks {needle}");
        }
        // Tabs and line breaks are allowed in a title, as botocore allows them.
        let mut i = input();
        i.title = "Paint\tthe street".into();
        assert!(build(&i).is_ok());
    }
}
