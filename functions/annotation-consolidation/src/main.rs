//! `acs-semantic-segmentation`: the AnnotationConsolidationLambdaArn function (SPEC §3).
//!
//! Thin: set up logging, read the configuration once, build the S3 client, and translate
//! between the Lambda event and [`gtseg::Service::consolidation`]. The clock is read here.

// The runtime, the SDK and the handler nest deeply in one future type.
#![recursion_limit = "256"]

use std::time::SystemTime;

use gtseg::event::ConsolidationResponseItem;
use gtseg::{AnyStore, Config, ObjectStore, S3Store, Service};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

/// Translates one invocation; errors become a Lambda error with a stable `errorType`.
async fn handler<S: ObjectStore>(
    service: &Service<S>,
    event: LambdaEvent<Value>,
) -> Result<Vec<ConsolidationResponseItem>, Diagnostic> {
    service
        .consolidation(&event.payload, SystemTime::now())
        .await
        .map_err(|e| {
            tracing::error!(error = %gtseg::report(&e), "consolidation failed");
            Diagnostic {
                error_type: e.error_type().to_owned(),
                error_message: gtseg::report(&e),
            }
        })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let store = AnyStore::S3(S3Store::from_env(config.endpoint_override).await);
    let service = Service::new(store, config);
    lambda_runtime::run(service_fn(|event| handler(&service, event))).await
}
