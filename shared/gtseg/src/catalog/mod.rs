//! The catalog of labeling jobs: what SageMaker's `DescribeLabelingJob` says of the job an
//! event comes from. A job's label list is read from its `LabelCategoryConfigS3Uri`, so one
//! deployment serves every job, as Ground Truth's built-in functions do.
//!
//! [`JobCatalog`] is the port, with two real implementations: SageMaker itself (`sagemaker`,
//! a signed call of its JSON API) and saved `aws sagemaker describe-labeling-job` outputs
//! (`saved`, for offline replay). This module only reads job descriptions; what is done with
//! them is the label resolver's business (`resolve`).

use std::future::Future;

use serde::Deserialize;

#[cfg(feature = "s3")]
mod sagemaker;
mod saved;

#[cfg(feature = "s3")]
pub use sagemaker::SageMakerCatalog;
pub use saved::{MAX_SAVED_JOB_BYTES, SavedJobError, SavedJobs};

/// What the functions need of a labeling job's description.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobDescription {
    /// `LabelingJobName`.
    #[serde(rename = "LabelingJobName")]
    pub name: String,
    /// `LabelingJobArn`.
    #[serde(rename = "LabelingJobArn")]
    pub arn: String,
    /// `LabelCategoryConfigS3Uri`: the job's label category configuration file.
    #[serde(rename = "LabelCategoryConfigS3Uri", default)]
    pub label_category_config: Option<String>,
    /// `LabelAttributeName`.
    #[serde(rename = "LabelAttributeName", default)]
    pub label_attribute_name: Option<String>,
    /// `RoleArn`: the job's execution role.
    #[serde(rename = "RoleArn", default)]
    pub role_arn: Option<String>,
}

/// A job that could not be described: which job, and what went wrong.
#[derive(Debug)]
pub struct JobError {
    /// The job's ARN, as the event gives it.
    pub job: String,
    /// What went wrong.
    pub kind: JobErrorKind,
}

/// What went wrong describing a job, and so what to do about it.
#[derive(Debug)]
pub enum JobErrorKind {
    /// The ARN is not a labeling job's ARN.
    BadArn,
    /// SageMaker knows no such job (in this account and region).
    NotFound,
    /// The credentials may not call `sagemaker:DescribeLabelingJob` on the job.
    AccessDenied(String),
    /// SageMaker throttled every attempt.
    Throttled(String),
    /// SageMaker could not be reached, or failed, on every attempt (a timeout, a reset
    /// connection, a 5xx).
    Unavailable(String),
    /// The answer is not a job description.
    Malformed(String),
    /// SageMaker refused the request for another reason.
    Rejected(String),
    /// No credentials or region to sign the call with.
    NoCredentials(String),
    /// The catalog knows only other jobs (a saved description of another job).
    OtherJob(String),
    /// The description names another job (another account, region or name) than the one
    /// asked for.
    WrongJob(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let job = &self.job;
        match &self.kind {
            JobErrorKind::BadArn => write!(
                f,
                "`{job}` is not a labeling job's ARN (arn:aws:sagemaker:REGION:ACCOUNT:labeling-job/NAME)"
            ),
            JobErrorKind::NotFound => write!(
                f,
                "DescribeLabelingJob: SageMaker knows no labeling job {job} (check the account and region)"
            ),
            JobErrorKind::AccessDenied(m) => write!(
                f,
                "DescribeLabelingJob on {job} was denied: the function's role needs sagemaker:DescribeLabelingJob on it, or set LABEL_CATEGORY_CONFIG ({m})"
            ),
            JobErrorKind::Throttled(m) => write!(
                f,
                "DescribeLabelingJob on {job} was throttled on every attempt; the invocation may be retried ({m})"
            ),
            JobErrorKind::Unavailable(m) => write!(
                f,
                "DescribeLabelingJob on {job} failed on every attempt; the invocation may be retried: {m}"
            ),
            JobErrorKind::Malformed(m) => write!(
                f,
                "DescribeLabelingJob on {job} answered something that is not a job description: {m}"
            ),
            JobErrorKind::Rejected(m) => {
                write!(f, "SageMaker rejected DescribeLabelingJob on {job}: {m}")
            }
            JobErrorKind::NoCredentials(m) => write!(
                f,
                "cannot call DescribeLabelingJob on {job}: {m}; set a region and credentials (AWS_REGION, AWS_PROFILE, ...) or give the job's saved description"
            ),
            JobErrorKind::OtherJob(known) => write!(
                f,
                "the saved job descriptions are of {known}, not of {job}: another job's labels are never used"
            ),
            JobErrorKind::WrongJob(described) => write!(
                f,
                "DescribeLabelingJob on {job} described another job, {described}: another job's labels are never used"
            ),
        }
    }
}

impl std::error::Error for JobError {}

impl JobError {
    pub(crate) fn new(job: &str, kind: JobErrorKind) -> Self {
        Self {
            job: job.to_owned(),
            kind,
        }
    }
}

/// Where job descriptions come from. Implementations must be safe to share across tasks.
pub trait JobCatalog: Send + Sync + 'static {
    /// The description of the job with this ARN.
    fn describe(
        &self,
        job_arn: &str,
    ) -> impl Future<Output = Result<JobDescription, JobError>> + Send;
}

/// The catalog chosen at start-up.
#[derive(Debug, Clone, Default)]
pub enum AnyCatalog {
    /// None: a job's labels come only from the event or `LABEL_CATEGORY_CONFIG`.
    #[default]
    None,
    /// Saved `describe-labeling-job` outputs (`gtseg replay --labeling-job FILE`).
    Saved(SavedJobs),
    /// SageMaker's `DescribeLabelingJob`.
    #[cfg(feature = "s3")]
    SageMaker(SageMakerCatalog),
}

impl AnyCatalog {
    /// The description of the job with this ARN; `None` when there is no catalog.
    pub async fn describe(&self, job_arn: &str) -> Option<Result<JobDescription, JobError>> {
        match self {
            Self::None => None,
            Self::Saved(s) => Some(s.describe(job_arn).await),
            #[cfg(feature = "s3")]
            Self::SageMaker(s) => Some(s.describe(job_arn).await),
        }
    }
}

/// Whether a description's ARN names the job asked for: the same partition, region and
/// account, and the same name but for case (ARNs carry the name in lower case, a description
/// may keep its original case).
pub fn same_job(asked: &str, described: &str) -> bool {
    let (a, d): (Vec<&str>, Vec<&str>) = (
        asked.splitn(6, ':').collect(),
        described.splitn(6, ':').collect(),
    );
    a.len() == 6 && d.len() == 6 && a[..5] == d[..5] && a[5].eq_ignore_ascii_case(d[5])
}

/// The job's region and name from a labeling job's ARN
/// (`arn:PARTITION:sagemaker:REGION:ACCOUNT:labeling-job/NAME`).
pub fn parse_job_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, _account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let name = resource.strip_prefix("labeling-job/")?;
    let ok = prefix == "arn"
        && service == "sagemaker"
        && !region.is_empty()
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some((region, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_is_of_the_job_asked_for_only_in_the_same_account_and_region() {
        let asked = "arn:aws:sagemaker:us-east-1:222222222222:labeling-job/street";
        assert!(same_job(
            asked,
            "arn:aws:sagemaker:us-east-1:222222222222:labeling-job/Street"
        ));
        for other in [
            "arn:aws:sagemaker:us-east-1:111111111111:labeling-job/street",
            "arn:aws:sagemaker:eu-west-1:222222222222:labeling-job/street",
            "arn:aws-cn:sagemaker:us-east-1:222222222222:labeling-job/street",
            "arn:aws:sagemaker:us-east-1:222222222222:labeling-job/street2",
            "street",
        ] {
            assert!(!same_job(asked, other), "{other}");
        }
    }

    #[test]
    fn job_arns_give_region_and_name() {
        assert_eq!(
            parse_job_arn("arn:aws:sagemaker:us-east-1:111122223333:labeling-job/street-scenes"),
            Some(("us-east-1", "street-scenes"))
        );
        assert_eq!(
            parse_job_arn("arn:aws-cn:sagemaker:cn-north-1:1:labeling-job/j1"),
            Some(("cn-north-1", "j1"))
        );
        for bad in [
            "street-scenes",
            "arn:aws:sagemaker:us-east-1:1:training-job/x",
            "arn:aws:s3:us-east-1:1:labeling-job/x",
            "arn:aws:sagemaker::1:labeling-job/x",
            "arn:aws:sagemaker:us-east-1:1:labeling-job/",
            "arn:aws:sagemaker:us-east-1:1:labeling-job/a/../b",
        ] {
            assert_eq!(parse_job_arn(bad), None, "{bad}");
        }
    }
}
