//! `pre-semantic-segmentation`: the PreHumanTaskLambdaArn function.
//!
//! Thin: set up logging, read the configuration once, build the S3 client, and translate
//! between the Lambda event and [`gtseg::Service::pre_annotation`].

// The runtime, the SDK and the handler nest deeply in one future type.
#![recursion_limit = "256"]

use gtseg::event::PreAnnotationResponse;
use gtseg::{ObjectStore, Service};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

/// Translates one invocation; errors become a Lambda error with a stable `errorType`.
async fn handler<S: ObjectStore>(
    service: &Service<S>,
    event: LambdaEvent<Value>,
) -> Result<PreAnnotationResponse, Diagnostic> {
    service
        .pre_annotation(&event.payload)
        .await
        .map_err(|e| gtseg_lambda::diagnostic(&e, "pre-annotation"))
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
    use lambda_runtime::Context;
    use serde_json::json;

    fn service(labels: &str) -> Service<LocalStore> {
        let dir = std::env::temp_dir().join(format!(
            "pre-handler-{}-{}",
            std::process::id(),
            labels.len()
        ));
        std::fs::create_dir_all(dir.join("cfg-bucket")).unwrap();
        std::fs::write(dir.join("cfg-bucket/labels.json"), labels).unwrap();
        let config = Config {
            label_category_config: Some("s3://cfg-bucket/labels.json".into()),
            ..Config::default()
        };
        Service::new(LocalStore::new(dir), config)
    }

    #[tokio::test]
    async fn handler_builds_the_task_input() {
        let s = service(
            r#"{"document-version":"2018-11-28","labels":[{"label":"car"},{"label":"road"}]}"#,
        );
        let ev = json!({"version": "2018-10-16", "labelingJobArn": "arn:aws:sagemaker:us-east-1:1:labeling-job/j",
                        "dataObject": {"source-ref": "s3://b/i.jpg"}});
        let r = handler(&s, LambdaEvent::new(ev, Context::default()))
            .await
            .unwrap();
        assert!(r.is_human_annotation_required);
        assert_eq!(r.task_input.labels, ["car", "road"]);
        assert_eq!(r.task_input.task_object.as_deref(), Some("s3://b/i.jpg"));
    }

    #[tokio::test]
    async fn handler_errors_name_the_field_or_the_variable() {
        let s = service(r#"{"labels":[{"label":"car"}]}"#);
        let e = handler(
            &s,
            LambdaEvent::new(json!({"version": "x"}), Context::default()),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type, "InvalidEvent");
        assert!(
            e.error_message.contains("dataObject"),
            "{}",
            e.error_message
        );
        let e = handler(
            &s,
            LambdaEvent::new(json!({"dataObject": "text"}), Context::default()),
        )
        .await
        .unwrap_err();
        assert!(
            e.error_message.contains("dataObject"),
            "{}",
            e.error_message
        );

        let broken = service(r#"{"labels": "car"}"#);
        let e = handler(
            &broken,
            LambdaEvent::new(
                json!({"dataObject": {"source-ref": "s3://b/i.jpg"}}),
                Context::default(),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type, "LabelConfigError");
        assert!(
            e.error_message
                .contains("LABEL_CATEGORY_CONFIG=s3://cfg-bucket/labels.json"),
            "{}",
            e.error_message
        );
    }
}
