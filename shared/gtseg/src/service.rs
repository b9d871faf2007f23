//! The two functions as plain async methods on JSON events: what each Lambda handler calls,
//! and what `gtseg replay` calls. No Lambda runtime types appear here.
//!
//! A [`Service`] lives as long as the process (a warm Lambda container), so the label
//! category configuration is read at most once and then cached.

use std::time::SystemTime;

use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::config::Config;
use crate::consolidate::{BatchContext, BatchError, consolidate_batch, format_creation_date};
use crate::event::{
    ConsolidationEvent, ConsolidationResponseItem, PreAnnotationEvent, PreAnnotationResponse,
    ShapeError, from_value,
};
use crate::labels::{ClassList, LabelConfigError, parse_label_config};
use crate::pre::build_task;
use crate::store::{Guarded, ObjectStore, StoreError};
use crate::uri::S3Uri;

/// Why an invocation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No label list is configured.
    #[error(
        "LABEL_CATEGORY_CONFIG is not set; set it to the s3:// URI or local path of the label category configuration file"
    )]
    NoLabelConfig,
    /// `LABEL_CATEGORY_CONFIG` is neither a path nor an `s3://` URI.
    #[error("LABEL_CATEGORY_CONFIG={location}: {cause}")]
    LabelConfigUri {
        /// `LABEL_CATEGORY_CONFIG`.
        location: String,
        /// Why it is not a URI.
        cause: crate::uri::UriError,
    },
    /// The label configuration could not be read from the store.
    #[error("LABEL_CATEGORY_CONFIG={location}: cannot read it: {cause}")]
    LabelConfigRead {
        /// `LABEL_CATEGORY_CONFIG`.
        location: String,
        /// What the store said.
        cause: StoreError,
    },
    /// The label configuration file could not be read.
    #[error("LABEL_CATEGORY_CONFIG={location}: cannot read the file: {cause}")]
    LabelConfigFile {
        /// `LABEL_CATEGORY_CONFIG`.
        location: String,
        /// What the file system said.
        cause: std::io::Error,
    },
    /// The label configuration is not usable.
    #[error("LABEL_CATEGORY_CONFIG={location}: {cause}")]
    LabelConfigParse {
        /// `LABEL_CATEGORY_CONFIG`.
        location: String,
        /// What is wrong with it.
        cause: LabelConfigError,
    },
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
    /// Consolidation could do nothing, or could not write.
    #[error("{0}")]
    Batch(BatchError),
}

impl ServiceError {
    /// A short, stable error type for the Lambda error response.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NoLabelConfig
            | Self::LabelConfigUri { .. }
            | Self::LabelConfigRead { .. }
            | Self::LabelConfigFile { .. }
            | Self::LabelConfigParse { .. } => "LabelConfigError",
            Self::Event(_) | Self::UnknownEvent | Self::NoRoleArn => "InvalidEvent",
            Self::Batch(BatchError::PayloadRead(_) | BatchError::Write { .. }) => "StorageError",
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

/// Both functions over one store and one configuration.
#[derive(Debug)]
pub struct Service<S> {
    store: Guarded<S>,
    config: Config,
    labels: OnceCell<ClassList>,
}

#[cfg(feature = "s3")]
impl Service<crate::store::AnyStore> {
    /// The service as deployed: settings from the environment, objects in S3 (through the
    /// standard AWS environment, path-style when an endpoint override is set).
    pub async fn from_env() -> Result<Self, crate::config::ConfigError> {
        let config = Config::from_env()?;
        let store = crate::store::S3Store::from_env(config.endpoint_override).await;
        Ok(Self::new(crate::store::AnyStore::S3(store), config))
    }
}

impl ServiceError {
    /// Logs the error (one line) and returns it for the Lambda error response as
    /// `(errorType, errorMessage)`.
    pub fn log_for_lambda(&self, function: &str) -> (String, String) {
        let message = self.to_string();
        tracing::error!(error = %message, "{function} failed");
        (self.error_type().to_owned(), message)
    }
}

impl<S: ObjectStore> Service<S> {
    /// A service over `store`, configured by `config`.
    pub fn new(store: S, config: Config) -> Self {
        Self {
            store: Guarded::new(store, config.allowed_buckets.clone()),
            config,
            labels: OnceCell::new(),
        }
    }

    /// The label list from `LABEL_CATEGORY_CONFIG`, read once and cached (a failed read is not
    /// cached, so a fixed file is picked up by the next invocation).
    pub async fn configured_labels(&self) -> Result<&ClassList, ServiceError> {
        let location = self
            .config
            .label_category_config
            .as_deref()
            .ok_or(ServiceError::NoLabelConfig)?;
        self.labels
            .get_or_try_init(|| async {
                let bytes = if location.starts_with("s3://") {
                    let uri =
                        S3Uri::parse(location).map_err(|cause| ServiceError::LabelConfigUri {
                            location: location.to_owned(),
                            cause,
                        })?;
                    self.store
                        .get(&uri, self.config.limits.max_payload_bytes)
                        .await
                        .map_err(|cause| ServiceError::LabelConfigRead {
                            location: location.to_owned(),
                            cause,
                        })?
                } else {
                    tokio::fs::read(location).await.map_err(|cause| {
                        ServiceError::LabelConfigFile {
                            location: location.to_owned(),
                            cause,
                        }
                    })?
                };
                let classes =
                    parse_label_config(&bytes).map_err(|cause| ServiceError::LabelConfigParse {
                        location: location.to_owned(),
                        cause,
                    })?;
                info!(
                    location,
                    labels = classes.labels().len(),
                    "label category configuration loaded"
                );
                Ok(classes)
            })
            .await
    }

    /// The pre-annotation function: one manifest line in, the worker UI's task input out.
    pub async fn pre_annotation(
        &self,
        event: &Value,
    ) -> Result<PreAnnotationResponse, ServiceError> {
        let event: PreAnnotationEvent =
            from_value("the pre-annotation event", event).map_err(ServiceError::Event)?;
        let classes = self.configured_labels().await?;
        let (response, skip) = build_task(&event, classes);
        match skip {
            Some(reason) => {
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
    /// `creation-date` from `now`.
    pub async fn consolidation(
        &self,
        event: &Value,
        now: SystemTime,
    ) -> Result<Vec<ConsolidationResponseItem>, ServiceError> {
        let event: ConsolidationEvent =
            from_value("the consolidation event", event).map_err(ServiceError::Event)?;
        // The configured labels are only needed when the event has none; a broken config then
        // is an error, while an unset one falls through to the workers' labels.
        let configured = if event
            .label_categories
            .as_ref()
            .is_some_and(|c| !c.is_empty())
            || self.config.label_category_config.is_none()
        {
            None
        } else {
            Some(self.configured_labels().await?)
        };
        let ctx = BatchContext {
            limits: self.config.limits,
            algorithm: self.config.algorithm,
            configured_labels: configured.cloned(),
            creation_date: format_creation_date(now),
            parallelism: self.config.threads,
            low_agreement_threshold: self.config.low_agreement_threshold,
        };
        let store = match (self.config.assume_job_role, event.role_arn.as_deref()) {
            (false, _) => self.store.clone(),
            (true, Some(role)) => self.store.assuming_role(role).await,
            (true, None) => return Err(ServiceError::NoRoleArn),
        };
        let items = consolidate_batch(&store, &ctx, &event)
            .await
            .map_err(ServiceError::Batch)?;
        info!(images = items.len(), "batch consolidated");
        Ok(items)
    }

    /// Runs whichever function the event's shape calls for, returning its response JSON.
    pub async fn replay(&self, event: &Value, now: SystemTime) -> Result<Value, ServiceError> {
        // Serialising our own response types cannot fail.
        match EventKind::of(event).ok_or(ServiceError::UnknownEvent)? {
            EventKind::PreAnnotation => {
                Ok(serde_json::to_value(self.pre_annotation(event).await?).unwrap_or(Value::Null))
            }
            EventKind::Consolidation => {
                Ok(serde_json::to_value(self.consolidation(event, now).await?)
                    .unwrap_or(Value::Null))
            }
        }
    }
}
