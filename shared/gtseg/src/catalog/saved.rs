//! Saved job descriptions: the output of `aws sagemaker describe-labeling-job`, for replaying
//! events offline (`gtseg replay --labeling-job FILE`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{JobCatalog, JobDescription, JobError, JobErrorKind};
use crate::event::{ShapeError, from_slice};
use crate::location::{ReadError, read_file};

/// Job descriptions kept in memory, found by ARN. A job that is not among them is an error:
/// another job's description is never used instead.
#[derive(Debug, Clone, Default)]
pub struct SavedJobs {
    jobs: Arc<[JobDescription]>,
}

impl SavedJobs {
    /// The saved descriptions in `outputs`, each the JSON that `aws sagemaker
    /// describe-labeling-job` prints (members other than those the functions use are
    /// ignored).
    pub fn parse(outputs: &[&[u8]]) -> Result<Self, ShapeError> {
        let jobs = outputs
            .iter()
            .map(|o| from_slice("the saved describe-labeling-job output", o))
            .collect::<Result<Vec<JobDescription>, _>>()?;
        Ok(Self { jobs: jobs.into() })
    }

    /// The saved description in the file `path` (the JSON that `aws sagemaker
    /// describe-labeling-job` prints), read up to [`MAX_SAVED_JOB_BYTES`].
    pub async fn read_file(path: &Path) -> Result<Self, SavedJobError> {
        let bytes = read_file(path, MAX_SAVED_JOB_BYTES)
            .await
            .map_err(SavedJobError::Read)?;
        Self::parse(&[&bytes]).map_err(|error| SavedJobError::Shape {
            path: path.to_path_buf(),
            error,
        })
    }

    /// The saved descriptions, in the order given.
    pub fn jobs(&self) -> &[JobDescription] {
        &self.jobs
    }
}

/// The largest saved job description read: real ones are a few kilobytes.
pub const MAX_SAVED_JOB_BYTES: u64 = 4 << 20;

/// A saved job description that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SavedJobError {
    /// The file could not be read.
    #[error("{0}")]
    Read(ReadError),
    /// The file is not a `describe-labeling-job` output.
    #[error("{}: {error}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: ShapeError,
    },
}

impl JobCatalog for SavedJobs {
    async fn describe(&self, job_arn: &str) -> Result<JobDescription, JobError> {
        // ARNs carry the job name in lower case; the saved output may keep its original case.
        let found = self
            .jobs
            .iter()
            .find(|j| j.arn.eq_ignore_ascii_case(job_arn));
        found.cloned().ok_or_else(|| {
            let known = self
                .jobs
                .iter()
                .map(|j| j.arn.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            JobError::new(job_arn, JobErrorKind::OtherJob(known))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREET: &[u8] = br#"{"LabelingJobName": "street-scenes",
        "LabelingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:labeling-job/street-scenes",
        "LabelCategoryConfigS3Uri": "s3://b/config/labels.json", "LabelAttributeName": "street-scenes-ref",
        "RoleArn": "arn:aws:iam::111122223333:role/GT", "LabelingJobStatus": "Completed",
        "LabelCounters": {"TotalLabeled": 2}, "HumanTaskConfig": {"NumberOfHumanWorkersPerDataObject": 3}}"#;

    #[tokio::test]
    async fn a_saved_job_is_found_by_its_arn_and_no_other_is_used() {
        let saved = SavedJobs::parse(&[STREET]).unwrap();
        let job = saved
            .describe("arn:aws:sagemaker:us-east-1:111122223333:labeling-job/street-scenes")
            .await
            .unwrap();
        assert_eq!(
            job.label_category_config.as_deref(),
            Some("s3://b/config/labels.json")
        );
        let e = saved
            .describe("arn:aws:sagemaker:us-east-1:111122223333:labeling-job/other")
            .await
            .unwrap_err();
        assert!(matches!(e.kind, JobErrorKind::OtherJob(_)));
        assert!(e.to_string().contains("never used"), "{e}");
    }

    #[test]
    fn a_saved_output_without_the_job_s_name_is_refused() {
        let e = SavedJobs::parse(&[br#"{"LabelingJobArn": "x"}"#]).unwrap_err();
        assert!(e.to_string().contains("LabelingJobName"), "{e}");
    }
}
