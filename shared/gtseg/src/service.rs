//! The two functions as plain async methods on JSON events: what each Lambda handler calls,
//! and what `gtseg replay` calls. No Lambda runtime types appear here.
//!
//! A [`Service`] lives as long as the process (a warm Lambda container), so the pinned label
//! configuration, and each job's, is read at most once and then cached.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tracing::{info, warn};

use crate::catalog::AnyCatalog;
use crate::config::Config;
use crate::consolidate::{
    BatchContext, BatchError, ImageCensus, census_batch, consolidate_batch, format_creation_date,
};
use crate::event::{
    ConsolidationEvent, ConsolidationResponseItem, PreAnnotationEvent, PreAnnotationResponse,
    ShapeError, from_value,
};
use crate::fusion::CrowdModel;
use crate::pre::build_task;
use crate::resolve::{Configured, LabelResolver, LabelsError, LabelsErrorKind};
use crate::store::{Guarded, ObjectStore};

/// The time kept back before an invocation's deadline, to fail with a message rather than be
/// stopped by Lambda without one.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Why an invocation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The job's label list could not be had.
    #[error("{0}")]
    Labels(LabelsError),
    /// The event has a wrong-typed or missing field.
    #[error("{0}")]
    Event(ShapeError),
    /// The event is of neither kind.
    #[error(
        "the event is neither a pre-annotation event (it has no `dataObject`) nor a consolidation event (it has no `payload`)"
    )]
    UnknownEvent,
    /// `ASSUME_JOB_ROLE` is on, but the event names no role.
    #[error("ASSUME_JOB_ROLE is true but the event has no roleArn to assume")]
    NoRoleArn,
    /// The batch could not be finished within the invocation's time.
    #[error(
        "the batch could not be finished within the invocation's {seconds} s, so it fails now, before Lambda stops it, and Ground Truth retries it; raise the function's timeout or make the job's batches smaller"
    )]
    OutOfTime {
        /// The time the invocation had, in seconds.
        seconds: u64,
    },
    /// Consolidation could do nothing, or could not write.
    #[error("{0}")]
    Batch(BatchError),
}

impl ServiceError {
    /// A short, stable error type for the Lambda error response.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Labels(_) | Self::Batch(BatchError::JobLabels(_)) => "LabelConfigError",
            Self::Event(_) | Self::UnknownEvent | Self::NoRoleArn => "InvalidEvent",
            Self::OutOfTime { .. } => "OutOfTime",
            Self::Batch(
                BatchError::PayloadRead(_)
                | BatchError::Write { .. }
                | BatchError::AnswerRead { .. },
            ) => "StorageError",
            Self::Batch(_) => "InvalidBatch",
        }
    }
}

/// The kind of a Ground Truth event, recognised by its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An input-manifest line for the pre-annotation function.
    PreAnnotation,
    /// A batch for the consolidation function.
    Consolidation,
}

impl EventKind {
    /// `dataObject` means pre-annotation; `payload` means consolidation.
    pub fn of(event: &Value) -> Option<Self> {
        let obj = event.as_object()?;
        if obj.contains_key("payload") {
            Some(Self::Consolidation)
        } else if obj.contains_key("dataObject") {
            Some(Self::PreAnnotation)
        } else {
            None
        }
    }
}

/// Both functions over one store, one job catalog and one configuration.
#[derive(Debug)]
pub struct Service<S> {
    store: Guarded<S>,
    config: Config,
    labels: LabelResolver,
}

#[cfg(feature = "s3")]
impl Service<crate::store::AnyStore> {
    /// The service as deployed: settings from the environment, objects in S3 (through the
    /// standard AWS environment, path-style when an endpoint override is set).
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::from_env()?;
        let aws = crate::aws::Aws::load(&config).await;
        Ok(Self::with_catalog(
            crate::store::AnyStore::S3(aws.s3()),
            config,
            AnyCatalog::SageMaker(aws.catalog()),
        ))
    }
}

impl ServiceError {
    /// Logs the error (one line) and returns it for the Lambda error response as
    /// `(errorType, errorMessage)`.
    pub fn log_for_lambda(&self, function: &str) -> (String, String) {
        let message = self.to_string();
        tracing::error!(error = %crate::logs::Escaped(&message), "{function} failed");
        (self.error_type().to_owned(), message)
    }
}

impl<S: ObjectStore> Service<S> {
    /// A service over `store`, configured by `config`, with no job catalog: a job's labels
    /// come from the event or `LABEL_CATEGORY_CONFIG` only.
    pub fn new(store: S, config: Config) -> Self {
        Self::with_catalog(store, config, AnyCatalog::None)
    }

    /// A service over `store` that looks jobs up in `catalog`.
    pub fn with_catalog(store: S, config: Config, catalog: AnyCatalog) -> Self {
        Self {
            store: Guarded::new(store, config.allowed_buckets.clone()),
            labels: LabelResolver::new(config.label_category_config.clone(), catalog),
            config,
        }
    }

    /// The pre-annotation function: one manifest line in, the worker UI's task input out.
    pub async fn pre_annotation(
        &self,
        event: &Value,
    ) -> Result<PreAnnotationResponse, ServiceError> {
        let event: PreAnnotationEvent =
            from_value("the pre-annotation event", event).map_err(ServiceError::Event)?;
        let job = event.labeling_job_arn.as_deref();
        let labels = match self
            .labels
            .configured(&self.store, job, None, self.config.assume_job_role)
            .await
            .map_err(ServiceError::Labels)?
        {
            Configured::Labels(l) => l,
            Configured::Unknown(why) => {
                let origin = job.map_or("the manifest line".into(), |j| format!("job {j}"));
                return Err(ServiceError::Labels(LabelsError {
                    origin,
                    kind: LabelsErrorKind::NotConfigured(why),
                }));
            }
        };
        let (response, skip) =
            build_task(&event, &labels.classes, labels.audit_attribute.as_deref());
        match skip {
            Some(reason) => {
                let reason = reason.to_string();
                let reason = crate::logs::Escaped(&reason);
                warn!(%reason, "manifest line skipped: isHumanAnnotationRequired=false")
            }
            None => info!(
                task_object = response.task_input.task_object.as_deref().unwrap_or(""),
                initial_value = response.task_input.initial_value.is_some(),
                "task input built"
            ),
        }
        Ok(response)
    }

    /// The consolidation function: one batch in, its response items out, stamping
    /// `creation-date` from `now`. With a `deadline` (the Lambda invocation's), a batch that
    /// cannot finish by then fails a little before it, with a message that says so, rather
    /// than being stopped by Lambda without one.
    pub async fn consolidation(
        &self,
        event: &Value,
        now: SystemTime,
        deadline: Option<SystemTime>,
    ) -> Result<Vec<ConsolidationResponseItem>, ServiceError> {
        let run = self.consolidate(event, now, None);
        let Some(deadline) = deadline else {
            return run.await;
        };
        let left = deadline.duration_since(now).unwrap_or_default();
        let time = left.saturating_sub(DEADLINE_MARGIN);
        tokio::time::timeout(time, run)
            .await
            .unwrap_or(Err(ServiceError::OutOfTime {
                seconds: left.as_secs(),
            }))
    }

    /// [`Service::consolidation`] on an event built in code (the consolidation event of one
    /// of a whole job's batches), with the weighted fusion's crowd model fitted beyond this
    /// batch (over the whole job, from [`Service::census`]), and no deadline: what `gtseg
    /// job consolidate` runs for each batch of a job.
    pub async fn consolidation_with_model(
        &self,
        event: &ConsolidationEvent,
        now: SystemTime,
        model: Option<Arc<CrowdModel>>,
    ) -> Result<Vec<ConsolidationResponseItem>, ServiceError> {
        let (store, ctx) = self.batch(event, now, model).await?;
        // The pinned or the job's labels, asked for only when the event has none. The store
        // already acts as the job's role when it should.
        let job_labels = self
            .labels
            .configured(&store, Some(&event.labeling_job_arn), None, false);
        let items = consolidate_batch(&store, &ctx, event, job_labels)
            .await
            .map_err(ServiceError::Batch)?;
        info!(images = items.len(), "batch consolidated");
        Ok(items)
    }

    /// The weighted fusion's first pass alone over one batch: the number of classes and each
    /// mask image's census, to fit one crowd model over several batches
    /// ([`CrowdModel::fit`]). Each census keeps at most `per_image` votes (a whole job's
    /// bound divided among its images), whatever the order in which images finish.
    pub async fn census(
        &self,
        event: &ConsolidationEvent,
        per_image: usize,
    ) -> Result<(usize, Vec<ImageCensus>), ServiceError> {
        let (store, ctx) = self.batch(event, SystemTime::now(), None).await?;
        let job_labels = self
            .labels
            .configured(&store, Some(&event.labeling_job_arn), None, false);
        census_batch(&store, &ctx, event, job_labels, per_image)
            .await
            .map_err(ServiceError::Batch)
    }

    async fn consolidate(
        &self,
        event: &Value,
        now: SystemTime,
        model: Option<Arc<CrowdModel>>,
    ) -> Result<Vec<ConsolidationResponseItem>, ServiceError> {
        let event: ConsolidationEvent =
            from_value("the consolidation event", event).map_err(ServiceError::Event)?;
        self.consolidation_with_model(&event, now, model).await
    }

    /// The store to use for a consolidation event, and the batch's settings.
    async fn batch(
        &self,
        event: &ConsolidationEvent,
        now: SystemTime,
        model: Option<Arc<CrowdModel>>,
    ) -> Result<(Guarded<S>, BatchContext), ServiceError> {
        let store = match (self.config.assume_job_role, event.role_arn.as_deref()) {
            (false, _) => self.store.clone(),
            (true, Some(role)) => self.store.assuming_role(role).await,
            (true, None) => return Err(ServiceError::NoRoleArn),
        };
        let ctx = BatchContext {
            limits: self.config.limits,
            algorithm: self.config.algorithm,
            creation_date: format_creation_date(now),
            parallelism: self.config.threads,
            memory_bytes: self.config.memory_mb << 20,
            low_agreement_threshold: self.config.low_agreement_threshold,
            model,
        };
        Ok((store, ctx))
    }

    /// Runs whichever function the event's shape calls for, returning its response JSON.
    pub async fn replay(&self, event: &Value, now: SystemTime) -> Result<Value, ServiceError> {
        // Serialising our own response types cannot fail.
        match EventKind::of(event).ok_or(ServiceError::UnknownEvent)? {
            EventKind::PreAnnotation => {
                Ok(serde_json::to_value(self.pre_annotation(event).await?).unwrap_or(Value::Null))
            }
            EventKind::Consolidation => Ok(serde_json::to_value(
                self.consolidation(event, now, None).await?,
            )
            .unwrap_or(Value::Null)),
        }
    }
}
