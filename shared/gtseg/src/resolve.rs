//! A job's label list, found in this order:
//! 1. the consolidation event's `labelCategories` (the batch decides this one itself);
//! 2. `LABEL_CATEGORY_CONFIG`, when set: a pin, for a deployment that serves one job or a role
//!    that may not describe jobs;
//! 3. the job's own `LabelCategoryConfigS3Uri`, from `DescribeLabelingJob` on the event's
//!    `labelingJobArn`, cached per job for the life of the process;
//! 4. consolidation only: the labels the workers used (the batch again).
//!
//! This module does 2 and 3; it never falls back from one job to another job's labels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tracing::info;

use crate::catalog::{AnyCatalog, JobError, JobErrorKind, same_job};
use crate::event::{LabelCategoryConfig, ShapeError, from_slice};
use crate::labels::{ClassList, LabelError};
use crate::location::{Location, LocationError, ReadError};
use crate::store::ObjectStore;
use crate::uri::S3Uri;

/// The largest label category configuration read. Real ones are a few kilobytes (254 labels
/// at most, and instructions); the bound keeps a hostile one from exhausting a small function.
pub const MAX_LABEL_CONFIG_BYTES: u64 = 4 << 20;

/// A job's label list and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLabels {
    /// The classes: BACKGROUND, then the labels in configuration order.
    pub classes: ClassList,
    /// `auditLabelAttributeName`: the earlier label that adjustment and verification jobs
    /// work on.
    pub audit_attribute: Option<String>,
    /// Where the list came from, for logs and errors.
    pub origin: String,
}

/// What [`LabelResolver::configured`] found.
#[derive(Debug, Clone)]
pub(crate) enum Configured {
    /// The pinned or the job's list.
    Labels(Arc<JobLabels>),
    /// Neither exists; why, in a sentence.
    Unknown(String),
}

/// Why a job's label list could not be had.
#[derive(Debug)]
pub struct LabelsError {
    /// Where the list was looked for: `LABEL_CATEGORY_CONFIG=…`, or the job's ARN and its
    /// configuration's URI.
    pub origin: String,
    /// What went wrong.
    pub kind: LabelsErrorKind,
}

/// What went wrong finding a job's label list.
#[derive(Debug)]
pub enum LabelsErrorKind {
    /// No list: the event carries none, `LABEL_CATEGORY_CONFIG` is not set, and the job cannot
    /// be described. The text says why.
    NotConfigured(String),
    /// The job could not be described.
    Describe(JobError),
    /// The configuration's location is not an `s3://` URI (or, for the pin, a path).
    Location(LocationError),
    /// The configuration could not be read (from the store, or a local file), or is larger
    /// than [`MAX_LABEL_CONFIG_BYTES`].
    Read(ReadError),
    /// The configuration is not a label category configuration.
    Shape(ShapeError),
    /// Its labels cannot be a class list.
    Labels(LabelError),
}

impl std::fmt::Display for LabelsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.origin;
        match &self.kind {
            LabelsErrorKind::NotConfigured(why) => write!(f, "no label list for {o}: {why}"),
            LabelsErrorKind::Describe(e) => write!(f, "no label list for {o}: {e}"),
            LabelsErrorKind::Location(e) => write!(f, "{o}: {e}"),
            LabelsErrorKind::Read(e) => {
                write!(f, "{o}: cannot read the label category configuration: {e}")
            }
            LabelsErrorKind::Shape(e) => write!(f, "{o}: {e}"),
            LabelsErrorKind::Labels(e) => write!(
                f,
                "{o}: the label category configuration is not usable: {e}"
            ),
        }
    }
}

impl std::error::Error for LabelsError {}

impl LabelsError {
    fn new(origin: impl Into<String>, kind: LabelsErrorKind) -> Self {
        Self {
            origin: origin.into(),
            kind,
        }
    }
}

/// Finds and caches label lists: the pinned one once, each job's once.
#[derive(Debug)]
pub(crate) struct LabelResolver {
    /// `LABEL_CATEGORY_CONFIG`: an `s3://` URI or a local path.
    pin: Option<String>,
    pinned: OnceCell<Arc<JobLabels>>,
    catalog: AnyCatalog,
    by_job: Mutex<HashMap<String, Arc<JobLabels>>>,
}

impl LabelResolver {
    pub(crate) fn new(pin: Option<String>, catalog: AnyCatalog) -> Self {
        Self {
            pin,
            pinned: OnceCell::new(),
            catalog,
            by_job: Mutex::default(),
        }
    }

    /// The pinned list, else the job's own; [`Configured::Unknown`] when there is no pin and
    /// the job cannot be looked up (no catalog, no ARN) or names no configuration. The job's
    /// configuration is read through `store`, acting as the job's role when `assume_role` is
    /// set (the event's role first, else the one the job's description names). A failure is
    /// not cached, so a fixed configuration is picked up by the next invocation.
    pub(crate) async fn configured<S: ObjectStore>(
        &self,
        store: &S,
        job_arn: Option<&str>,
        event_role: Option<&str>,
        assume_role: bool,
    ) -> Result<Configured, LabelsError> {
        if let Some(pin) = &self.pin {
            let labels = self
                .pinned
                .get_or_try_init(|| async {
                    let origin = format!("LABEL_CATEGORY_CONFIG={pin}");
                    // The operator's pin may be a local path; a job's never is.
                    let location = Location::parse(pin, None).map_err(|e| {
                        LabelsError::new(origin.clone(), LabelsErrorKind::Location(e))
                    })?;
                    read_config(store, &location, origin).await.map(Arc::new)
                })
                .await?;
            return Ok(Configured::Labels(labels.clone()));
        }
        let Some(arn) = job_arn.filter(|a| !a.is_empty()) else {
            return Ok(Configured::Unknown(
                "the event names no labelingJobArn and LABEL_CATEGORY_CONFIG is not set".into(),
            ));
        };
        if let Some(hit) = self.by_job.lock().ok().and_then(|m| m.get(arn).cloned()) {
            return Ok(Configured::Labels(hit));
        }
        let job = match self.catalog.describe(arn).await {
            None => {
                return Ok(Configured::Unknown(
                    "LABEL_CATEGORY_CONFIG is not set and the job cannot be looked up here (give its saved describe-labeling-job output)".into(),
                ));
            }
            Some(Err(e)) => return Err(LabelsError::new(arn, LabelsErrorKind::Describe(e))),
            Some(Ok(job)) if !same_job(arn, &job.arn) => {
                let e = JobError::new(arn, JobErrorKind::WrongJob(job.arn));
                return Err(LabelsError::new(arn, LabelsErrorKind::Describe(e)));
            }
            Some(Ok(job)) => job,
        };
        let Some(location) = job.label_category_config.as_deref() else {
            return Ok(Configured::Unknown(
                "LABEL_CATEGORY_CONFIG is not set and the job has no LabelCategoryConfigS3Uri"
                    .into(),
            ));
        };
        let origin = format!("job {arn} (LabelCategoryConfigS3Uri {location})");
        let role = event_role
            .or(job.role_arn.as_deref())
            .filter(|_| assume_role);
        let location = S3Uri::parse(location)
            .map(Location::Object)
            .map_err(|error| {
                let text = location.to_owned();
                LabelsError::new(
                    origin.clone(),
                    LabelsErrorKind::Location(LocationError::BadUri { text, error }),
                )
            })?;
        let labels = match role {
            Some(role) => read_config(&store.assuming_role(role).await, &location, origin).await,
            None => read_config(store, &location, origin).await,
        }?;
        info!(job = arn, labels = labels.classes.labels().len(), origin = %labels.origin, "the job's label list is read and cached");
        let labels = Arc::new(labels);
        if let Ok(mut m) = self.by_job.lock() {
            m.insert(arn.to_owned(), labels.clone());
        }
        Ok(Configured::Labels(labels))
    }
}

/// Reads and checks the label category configuration at `location` (an object of `store`,
/// or a local file): the job's classes and its `auditLabelAttributeName`. What `gtseg job
/// consolidate --label-config` and `LABEL_CATEGORY_CONFIG` read.
pub async fn read_label_config<S: ObjectStore>(
    store: &S,
    location: &Location,
) -> Result<JobLabels, LabelsError> {
    read_config(store, location, location.to_string()).await
}

/// [`read_label_config`], with `origin` naming where the location came from in errors.
async fn read_config<S: ObjectStore>(
    store: &S,
    location: &Location,
    origin: String,
) -> Result<JobLabels, LabelsError> {
    let fail = |kind| LabelsError::new(origin.clone(), kind);
    let bytes = location
        .read(store, MAX_LABEL_CONFIG_BYTES)
        .await
        .map_err(|e| fail(LabelsErrorKind::Read(e)))?;
    let config: LabelCategoryConfig = from_slice("the label category configuration", &bytes)
        .map_err(|e| fail(LabelsErrorKind::Shape(e)))?;
    let classes =
        ClassList::from_categories(&config.labels).map_err(|e| fail(LabelsErrorKind::Labels(e)))?;
    Ok(JobLabels {
        classes,
        audit_attribute: config.audit_label_attribute_name,
        origin,
    })
}
