//! Ground Truth wire types (serde), as `docs/contract.md` describes them.
//!
//! These types are lenient where Ground Truth and its samples are lenient, and every such
//! leniency is commented with the quirk it absorbs. Unknown fields are ignored everywhere
//! (serde's default). No logic lives here beyond parsing: see `pre` and `consolidate`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A JSON document did not have the shape Ground Truth sends.
#[derive(Debug, thiserror::Error)]
#[error("{what} is malformed at `{path}`: {cause}")]
pub struct ShapeError {
    /// What was being parsed, e.g. "the consolidation event".
    pub what: &'static str,
    /// The JSON path of the offending field (`.` for the root).
    pub path: String,
    /// What the JSON parser said.
    pub cause: serde_json::Error,
}

/// Parses `value` as `T`, naming the JSON path of the first bad field in the error.
pub fn from_value<T: DeserializeOwned>(what: &'static str, value: &Value) -> Result<T, ShapeError> {
    serde_path_to_error::deserialize(value).map_err(|e| ShapeError::at(what, e))
}

/// [`from_value`] for a value that is no longer needed: its strings move instead of being
/// copied (a worker's PNG is one).
pub fn from_owned_value<T: DeserializeOwned>(
    what: &'static str,
    value: Value,
) -> Result<T, ShapeError> {
    serde_path_to_error::deserialize(value).map_err(|e| ShapeError::at(what, e))
}

/// Parses JSON text as `T`, naming the JSON path of the first bad field in the error.
pub fn from_slice<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ShapeError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| ShapeError::at(what, e))
}

impl ShapeError {
    fn at(what: &'static str, e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        Self {
            what,
            path: e.path().to_string(),
            cause: e.into_inner(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pre-annotation
// ---------------------------------------------------------------------------------------------

/// The event Ground Truth sends to the pre-annotation Lambda, once per manifest line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreAnnotationEvent {
    /// `2018-10-06` or `2018-10-16` in the wild: any value is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The job, `arn:aws:sagemaker:REGION:ACCOUNT:labeling-job/NAME`.
    #[serde(
        rename = "labelingJobArn",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub labeling_job_arn: Option<String>,
    /// The whole input-manifest line, kept verbatim (key order included).
    #[serde(rename = "dataObject")]
    pub data_object: Map<String, Value>,
}

/// The pre-annotation response: the worker UI's `task.input`, and whether to ask humans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreAnnotationResponse {
    /// What the worker template gets as `task.input`.
    #[serde(rename = "taskInput")]
    pub task_input: TaskInput,
    /// Exactly this key, as a JSON boolean (some AWS samples misspell it or send a string).
    #[serde(rename = "isHumanAnnotationRequired")]
    pub is_human_annotation_required: bool,
}

/// `task.input` as the worker template sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInput {
    /// The `source-ref` S3 URI, unchanged; the template signs it with `grant_read_access`.
    /// Absent for lines with nothing to label.
    #[serde(
        rename = "taskObject",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub task_object: Option<String>,
    /// The job's labels in label-category-config order.
    pub labels: Vec<String>,
    /// The manifest line, verbatim.
    #[serde(rename = "manifestLine")]
    pub manifest_line: Map<String, Value>,
    /// The `initial-value` of `crowd-semantic-segmentation`, for adjustment jobs.
    #[serde(
        rename = "initialValue",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_value: Option<InitialValue>,
    /// The `overlay` of `crowd-image-classifier`, for verification jobs: the same earlier
    /// label as `initialValue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<Overlay>,
}

/// The object that `crowd-image-classifier`'s `overlay` attribute takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overlay {
    /// The earlier mask to draw over the image.
    #[serde(rename = "semanticSegmentation")]
    pub semantic_segmentation: SegmentationOverlay,
}

/// An earlier semantic-segmentation label, as an overlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationOverlay {
    /// The earlier label's classes in class order, BACKGROUND left out.
    pub labels: Vec<String>,
    /// Class name to colour, BACKGROUND left out.
    #[serde(rename = "labelMappings")]
    pub label_mappings: BTreeMap<String, LabelColor>,
    /// The earlier mask's S3 URI (the worker template signs it).
    pub src: String,
}

/// The object that `crowd-semantic-segmentation`'s `initial-value` attribute takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitialValue {
    /// The previous mask's S3 URI.
    pub src: String,
    /// Class name to colour, BACKGROUND left out.
    #[serde(rename = "labelMappings")]
    pub label_mappings: BTreeMap<String, LabelColor>,
}

/// `{"color": "#rrggbb"}`, as in worker answers and `initial-value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelColor {
    /// `#rrggbb`.
    pub color: String,
}

/// The label category configuration file (`LABEL_CATEGORY_CONFIG`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCategoryConfig {
    /// `2018-11-28` in every known file.
    #[serde(
        rename = "document-version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub document_version: Option<String>,
    /// The labels, in class order.
    pub labels: Vec<LabelCategory>,
    /// Worker instructions; not used here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Value>,
    /// The earlier label that an adjustment or verification job works on.
    #[serde(
        rename = "auditLabelAttributeName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub audit_label_attribute_name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Consolidation
// ---------------------------------------------------------------------------------------------

/// The event Ground Truth sends to the consolidation Lambda, once per batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsolidationEvent {
    /// `2018-10-06` or `2018-10-16` in the wild: any value is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The job, `arn:aws:sagemaker:REGION:ACCOUNT:labeling-job/NAME` (the name in lower case).
    #[serde(rename = "labelingJobArn")]
    pub labeling_job_arn: String,
    /// Missing or null in some jobs; strings or `{"label": ...}` objects in others.
    #[serde(
        rename = "labelCategories",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub label_categories: Option<Vec<LabelCategory>>,
    /// Original case of the job name (the ARN is lower case).
    #[serde(rename = "labelAttributeName")]
    pub label_attribute_name: String,
    /// The job's execution role (assumed when `ASSUME_JOB_ROLE` is on).
    #[serde(rename = "roleArn", default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Optional: derived from the payload URI when missing.
    #[serde(
        rename = "outputConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub output_config: Option<String>,
    /// Workers asked per image; fewer may answer.
    #[serde(
        rename = "maxHumanWorkersPerDataObject",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_human_workers_per_data_object: Option<u32>,
    /// The job's output KMS key: masks are written with SSE-KMS under it.
    #[serde(rename = "kmsKeyId", default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Seen both as a boolean and as the string "true"/"false".
    #[serde(
        rename = "vpcEnabled",
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub vpc_enabled: Option<bool>,
    /// Where the batch is.
    pub payload: PayloadRef,
}

/// A label category: a bare string or `{"label": "..."}` (both occur in the wild).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelCategory {
    /// `"car"`.
    Name(String),
    /// `{"label": "car"}`.
    Object {
        /// The label's name.
        label: String,
    },
}

impl LabelCategory {
    /// The label's name, whichever form it came in.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(n) | Self::Object { label: n } => n,
        }
    }
}

/// Where the batch's payload file is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadRef {
    /// `s3://` URI of the payload file.
    #[serde(rename = "s3Uri", alias = "s3uri")]
    pub s3_uri: String,
}

/// One element of the payload array: one image and all its worker answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadItem {
    /// A string in Ground Truth's payloads; numbers are accepted and turned into strings.
    #[serde(rename = "datasetObjectId", deserialize_with = "string_or_number")]
    pub dataset_object_id: String,
    /// The image, as Ground Truth names it (`s3Uri`, or `content` for text).
    #[serde(
        rename = "dataObject",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_object: Option<Value>,
    /// May be empty: every worker timed out.
    #[serde(default)]
    pub annotations: Vec<Annotation>,
}

/// One worker's answer envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// The worker (`private.us-east-1.…` or a public workforce id).
    #[serde(rename = "workerId", default, deserialize_with = "string_or_number")]
    pub worker_id: String,
    /// The answer, or where it is.
    #[serde(rename = "annotationData")]
    pub annotation_data: AnnotationData,
}

/// Either inline `content` (a JSON object serialised into a string) or a pointer to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotationData {
    /// The answer: a JSON object serialised into a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Spelled `s3Uri` in the docs and `s3uri` in the wild.
    #[serde(
        rename = "s3Uri",
        alias = "s3uri",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_uri: Option<String>,
}

/// The `crowd-semantic-segmentation` answer object (the one that holds `labeledImage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerAnswer {
    /// The painted mask.
    #[serde(rename = "labeledImage")]
    pub labeled_image: LabeledImage,
    /// May list only the labels this worker used.
    #[serde(rename = "labelMappings", default)]
    pub label_mappings: BTreeMap<String, LabelColor>,
    /// The source image's size.
    #[serde(
        rename = "inputImageProperties",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub input_image_properties: Option<ImageProperties>,
    /// Adjustment jobs only.
    #[serde(
        rename = "initialValueModified",
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub initial_value_modified: Option<bool>,
}

/// The worker's painted mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabeledImage {
    /// Base64 PNG, the size of the image.
    #[serde(rename = "pngImageData")]
    pub png_image_data: String,
}

/// `{height, width}` of the source image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageProperties {
    /// Rows.
    pub height: u32,
    /// Pixels per row.
    pub width: u32,
}

/// The `crowd-image-classifier` answer of a verification job: the category the worker chose
/// (one of the job's labels) and, when the worker wrote one, a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationAnswer {
    /// The chosen category, e.g. `Label(s) correct`.
    pub label: String,
    /// Present only when the worker wrote a comment.
    #[serde(
        rename = "workerComment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub worker_comment: Option<String>,
}

/// A worker's answer object, found by its shape, with what kind of answer it is.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerObject {
    /// The object that holds `labeledImage`: a mask ([`WorkerAnswer`]).
    Mask(Value),
    /// The object that holds `label` (and no mask anywhere): a category
    /// ([`VerificationAnswer`]).
    Verification(Value),
}

/// Finds the mask answer object by its shape: the object that holds `labeledImage`.
///
/// The top-level key is the element's `name` attribute, which users may change, so the
/// key is never trusted. The root itself and nested objects (a few levels deep) are searched.
pub fn find_answer_object(root: &Value) -> Option<&Value> {
    root.pointer(&answer_pointer(root, "labeledImage")?)
}

/// [`find_answer_object`], taking the object out of `root` (nothing is copied).
pub fn take_answer_object(mut root: Value) -> Option<Value> {
    let at = answer_pointer(&root, "labeledImage")?;
    root.pointer_mut(&at).map(Value::take)
}

/// The answer object of either kind, taken out of `root`: a mask when some object holds
/// `labeledImage`, else a category when some object holds `label`.
pub fn take_any_answer_object(mut root: Value) -> Option<AnswerObject> {
    if let Some(at) = answer_pointer(&root, "labeledImage") {
        return root
            .pointer_mut(&at)
            .map(Value::take)
            .map(AnswerObject::Mask);
    }
    let at = answer_pointer(&root, "label")?;
    root.pointer_mut(&at)
        .map(Value::take)
        .map(AnswerObject::Verification)
}

/// The JSON pointer of the first object that holds `key`, the root and three levels below it
/// searched (see [`find_answer_object`]).
fn answer_pointer(root: &Value, key: &str) -> Option<String> {
    fn walk(v: &Value, key: &str, depth: u8, at: &mut String) -> bool {
        let Some(obj) = v.as_object() else {
            return false;
        };
        if obj.contains_key(key) {
            return true;
        }
        depth > 0
            && obj.iter().any(|(name, child)| {
                let len = at.len();
                at.push('/');
                at.push_str(&name.replace('~', "~0").replace('/', "~1"));
                walk(child, key, depth - 1, at) || {
                    at.truncate(len);
                    false
                }
            })
    }
    let mut at = String::new();
    walk(root, key, 3, &mut at).then_some(at)
}

// ---------------------------------------------------------------------------------------------
// Consolidation response
// ---------------------------------------------------------------------------------------------

/// One consolidated image, as returned to Ground Truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsolidationResponseItem {
    /// The image's id in the batch (the input manifest's line number); a number is read as
    /// its text.
    #[serde(rename = "datasetObjectId", deserialize_with = "string_or_number")]
    pub dataset_object_id: String,
    /// The new label attribute and its metadata.
    #[serde(rename = "consolidatedAnnotation")]
    pub consolidated_annotation: ConsolidatedAnnotation,
}

/// `{"content": {"<attr>": uri, "<attr>-metadata": {...}}}`; keys depend on the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsolidatedAnnotation {
    /// `<labelAttributeName>` and `<labelAttributeName>-metadata`.
    pub content: Map<String, Value>,
}

/// `<labelAttributeName>-metadata` of a semantic-segmentation label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationMetadata {
    /// Every class of the job, keyed `"0"`, `"1"`, … in numeric class order (`"2"` before
    /// `"10"`): consumers walk the map in order to build a palette.
    #[serde(rename = "internal-color-map")]
    pub internal_color_map: BTreeMap<u32, ColorMapEntry>,
    /// `groundtruth/semantic-segmentation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `yes`.
    #[serde(rename = "human-annotated")]
    pub human_annotated: String,
    /// UTC, naive ISO 8601 with microseconds.
    #[serde(rename = "creation-date")]
    pub creation_date: String,
    /// `labeling-job/<name>`.
    #[serde(rename = "job-name")]
    pub job_name: String,
    /// Adjustment jobs: `adjusted` when a worker changed the earlier mask, `unadjusted` when
    /// none did; absent when no answer says (an ordinary labeling job).
    #[serde(
        rename = "adjustment-status",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub adjustment_status: Option<String>,
    /// Our extras on the answers: how many were included, which were left out and why, and
    /// warnings.
    #[serde(flatten)]
    pub answers: AnswersReport,
    /// Our extras: the agreement report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consolidation: Option<ConsolidationReport>,
}

/// Our extras on an image's answers, in both kinds of metadata: `worker-count`,
/// `excluded-workers` and `warnings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswersReport {
    /// Our extras: how many worker answers were included in the vote.
    #[serde(
        rename = "worker-count",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub worker_count: Option<u32>,
    /// Our extras: answers left out of the vote, and why.
    #[serde(
        rename = "excluded-workers",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excluded_workers: Vec<ExcludedWorker>,
    /// Our extras: anything the user should know (e.g. a class list guessed from answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How the workers of one image agreed (`<labelAttributeName>-metadata.consolidation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsolidationReport {
    /// `majority` or `weighted`.
    pub algorithm: String,
    /// Every answer, in payload order.
    pub workers: Vec<WorkerReport>,
    /// Mean over pairs of included workers of their agreement; absent with one worker.
    #[serde(
        rename = "mean-pairwise-agreement",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mean_pairwise_agreement: Option<f64>,
    /// True when the mean pairwise agreement is below `LOW_AGREEMENT_THRESHOLD`.
    #[serde(rename = "low-agreement")]
    pub low_agreement: bool,
    /// The disagreement map: 8-bit grey, 255 × the share of workers who lost each pixel.
    #[serde(rename = "disagreement-ref")]
    pub disagreement_ref: String,
}

/// One worker answer in the agreement report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// The worker.
    #[serde(rename = "worker-id")]
    pub worker_id: String,
    /// Whether the answer took part in the vote.
    pub included: bool,
    /// Share of the worker's voting pixels equal to the consolidated class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Pixels whose colour matched none of the worker's labels (they cast no vote).
    #[serde(
        rename = "unmapped-pixels",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unmapped_pixels: Option<u64>,
    /// The worker's weight (weighted algorithm only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Why the answer was excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The metadata `type` of a semantic-segmentation label.
pub const SEGMENTATION_TYPE: &str = "groundtruth/semantic-segmentation";

/// The metadata `type` of a label-verification result.
pub const VERIFICATION_TYPE: &str = "groundtruth/label-verification";

/// `<labelAttributeName>-metadata` of a verification result: Ground Truth's keys, then ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationMetadata {
    /// The chosen category's name.
    #[serde(rename = "class-name")]
    pub class_name: String,
    /// The chosen category's posterior, 2 decimals; 0.00 with one worker.
    pub confidence: f64,
    /// `groundtruth/label-verification`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `labeling-job/<name>`.
    #[serde(rename = "job-name")]
    pub job_name: String,
    /// `yes`.
    #[serde(rename = "human-annotated")]
    pub human_annotated: String,
    /// UTC, naive ISO 8601 with microseconds.
    #[serde(rename = "creation-date")]
    pub creation_date: String,
    /// The workers' non-empty comments; absent when nobody wrote one.
    #[serde(
        rename = "worker-feedback",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub worker_feedback: Vec<WorkerFeedback>,
    /// Our extras: the included answers per category, by category name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub votes: BTreeMap<String, u32>,
    /// Our extras on the answers, as for masks.
    #[serde(flatten)]
    pub answers: AnswersReport,
    /// Our extras: how the answers were weighed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consolidation: Option<VerificationReport>,
}

/// One worker comment of a verification result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerFeedback {
    /// The comment, as written.
    pub comment: String,
}

/// How a verification result was reached (`<labelAttributeName>-metadata.consolidation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// `dawid-skene`.
    pub algorithm: String,
    /// How the result was chosen: `single-worker`, `clear-majority` or `posterior`.
    pub rule: String,
    /// The included answers, in payload order, with each worker's estimated reliability.
    pub workers: Vec<VerifierReport>,
}

/// One included answer of a verification result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifierReport {
    /// The worker.
    #[serde(rename = "worker-id")]
    pub worker_id: String,
    /// The category the worker chose.
    pub label: String,
    /// The probability, estimated over the batch, that this worker picks the right category.
    pub reliability: f64,
}

/// One class of `internal-color-map`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorMapEntry {
    /// The label, or `BACKGROUND` for class 0.
    #[serde(rename = "class-name")]
    pub class_name: String,
    /// `#rrggbb`: the class's palette entry in the mask.
    #[serde(rename = "hex-color")]
    pub hex_color: String,
    /// Present in consolidation output; absent in some hand-made manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// A worker answer that did not take part in the vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludedWorker {
    /// The worker.
    #[serde(rename = "worker-id")]
    pub worker_id: String,
    /// Why its answer was left out.
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------
// Lenient scalar helpers
// ---------------------------------------------------------------------------------------------

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a boolean, found {other}"
        ))),
    }
}

/// A string, or a number turned into one: ids that Ground Truth writes as strings and some
/// tools as numbers.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, found {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_categories_accept_both_forms() {
        let ev: ConsolidationEvent = from_value(
            "event",
            &json!({"labelingJobArn": "arn:aws:sagemaker:us-east-1:1:labeling-job/x",
                    "labelAttributeName": "x-ref", "payload": {"s3uri": "s3://b/p.json"},
                    "labelCategories": ["car", {"label": "road"}], "vpcEnabled": "true",
                    "somethingNew": 1}),
        )
        .unwrap();
        let names: Vec<_> = ev
            .label_categories
            .unwrap()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(names, ["car", "road"]);
        assert_eq!(ev.payload.s3_uri, "s3://b/p.json");
        assert_eq!(ev.vpc_enabled, Some(true));
    }

    #[test]
    fn missing_field_error_names_the_path() {
        let err = from_value::<ConsolidationEvent>(
            "the consolidation event",
            &json!({"labelingJobArn": "a", "labelAttributeName": "x-ref", "payload": {"s3Uri": 3}}),
        )
        .unwrap_err();
        assert_eq!(err.path, "payload.s3Uri");
        assert!(err.to_string().contains("payload.s3Uri"), "{err}");
    }

    #[test]
    fn answer_is_found_by_shape_not_name() {
        let v = json!({"my-custom-name": {"labeledImage": {"pngImageData": "x"}}});
        assert!(
            find_answer_object(&v)
                .unwrap()
                .get("labeledImage")
                .is_some()
        );
        assert!(find_answer_object(&json!({"labeledImage": {}})).is_some());
        assert!(find_answer_object(&json!({"a": {"b": 1}})).is_none());
        assert!(find_answer_object(&json!("text")).is_none());
        // Keys that JSON pointers escape, three levels down.
        let deep = json!({"a/b": {"c~d": {"x": 1, "e": {"labeledImage": 7}}}});
        assert_eq!(
            take_answer_object(deep),
            Some(json!({"labeledImage": 7})),
            "the object is taken whole"
        );
        assert_eq!(
            take_answer_object(json!({"a": {"b": {"c": {"d": {"labeledImage": 1}}}}})),
            None
        );
    }

    #[test]
    fn numeric_dataset_object_id_becomes_a_string() {
        let item: PayloadItem =
            from_value("item", &json!({"datasetObjectId": 7, "annotations": []})).unwrap();
        assert_eq!(item.dataset_object_id, "7");
    }
}
