//! `acs-semantic-segmentation`: the AnnotationConsolidationLambdaArn function.
//!
//! Thin: set up logging, read the configuration once, build the S3 client, and translate
//! between the Lambda event and [`gtseg::Service::consolidation`]. The clock and the
//! invocation's deadline are read here.

// The runtime, the SDK and the handler nest deeply in one future type.
#![recursion_limit = "256"]

use std::time::{Duration, SystemTime};

use gtseg::event::ConsolidationResponseItem;
use gtseg::{ObjectStore, Service};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

/// Translates one invocation; errors become a Lambda error with a stable `errorType`.
async fn handler<S: ObjectStore>(
    service: &Service<S>,
    event: LambdaEvent<Value>,
) -> Result<Vec<ConsolidationResponseItem>, Diagnostic> {
    let deadline = deadline(event.context.deadline);
    service
        .consolidation(&event.payload, SystemTime::now(), deadline)
        .await
        .map_err(|e| gtseg_lambda::diagnostic(&e, "consolidation"))
}

/// The invocation's deadline from Lambda's `deadline` (milliseconds since the epoch); `None`
/// for a context without one (0). cargo-lambda's emulator sends the time left instead (a
/// number of milliseconds far below any real date), which counts from now.
fn deadline(ms: u64) -> Option<SystemTime> {
    const YEAR_2000_MS: u64 = 946_684_800_000;
    match ms {
        0 => None,
        left if left < YEAR_2000_MS => Some(SystemTime::now() + Duration::from_millis(left)),
        at => Some(SystemTime::UNIX_EPOCH + Duration::from_millis(at)),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gtseg_lambda::init_tracing();
    let service = Service::from_env().await?;
    lambda_runtime::run(service_fn(|event| handler(&service, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use gtseg::{Config, LocalStore};
    use gtseg_tests::{copy_tree, temp_dir, workspace_root};
    use lambda_runtime::Context;

    fn sample_event() -> Value {
        let text = std::fs::read(workspace_root().join("events/consolidation/street-scenes.json"))
            .unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    #[tokio::test]
    async fn handler_consolidates_the_sample_batch() {
        let dir = temp_dir("acs-handler");
        copy_tree(&workspace_root().join("events/store"), &dir).unwrap();
        let service = Service::new(LocalStore::new(&dir), Config::default());
        let items = handler(
            &service,
            LambdaEvent::new(sample_event(), Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(
            items
                .iter()
                .map(|i| i.dataset_object_id.as_str())
                .collect::<Vec<_>>(),
            ["0", "1"]
        );
        let uri = items[0].consolidated_annotation.content["street-scenes-ref"]
            .as_str()
            .unwrap();
        assert!(
            dir.join(uri.strip_prefix("s3://").unwrap()).is_file(),
            "the mask is written before it is claimed"
        );
    }

    #[tokio::test]
    async fn handler_reports_an_unreadable_payload_as_a_storage_error() {
        let empty = temp_dir("acs-handler-empty");
        let service = Service::new(LocalStore::new(&empty), Config::default());
        let e = handler(
            &service,
            LambdaEvent::new(sample_event(), Context::default()),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type, "StorageError");
        assert!(
            e.error_message
                .contains("consolidation-request/iteration-1/2026-11-26_10:00:00.json"),
            "{}",
            e.error_message
        );
        assert!(
            e.error_message.contains("does not exist"),
            "{}",
            e.error_message
        );
    }
}
