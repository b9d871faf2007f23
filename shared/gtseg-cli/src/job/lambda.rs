//! The deployed consolidation function, invoked with the AWS SDK (`--via-lambda`): the
//! standard AWS environment, `AWS_ENDPOINT_URL_LAMBDA` honoured, throttling and transient
//! faults retried by the SDK.

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use gtseg::event::ConsolidationResponseItem;

/// Attempts per invocation, the first included.
const ATTEMPTS: u32 = 5;

/// A consolidation function to invoke.
#[derive(Debug, Clone)]
pub struct Function {
    client: aws_sdk_lambda::Client,
    name: String,
}

impl Function {
    /// The function `name` (a name or an ARN), through the standard AWS environment.
    pub async fn new(name: &str) -> Result<Self, String> {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        if conf.region().is_none() {
            return Err("--via-lambda invokes the function in a region: set AWS_REGION (or a profile's region)".into());
        }
        let lambda = aws_sdk_lambda::config::Builder::from(&conf)
            .retry_config(RetryConfig::standard().with_max_attempts(ATTEMPTS))
            .build();
        Ok(Self {
            client: aws_sdk_lambda::Client::from_conf(lambda),
            name: name.to_owned(),
        })
    }

    /// Invokes the function on one consolidation event and returns its response items, or
    /// why the batch failed (the function's error, or the invocation's).
    pub async fn consolidate(
        &self,
        event: &serde_json::Value,
    ) -> Result<Vec<ConsolidationResponseItem>, String> {
        let resp = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .map_err(|e| format!("invoking {} failed: {}", self.name, DisplayErrorContext(&e)))?;
        let body = resp.payload().map(Blob::as_ref).unwrap_or_default();
        if let Some(kind) = resp.function_error() {
            return Err(format!(
                "the function {} failed ({kind}): {}",
                self.name,
                String::from_utf8_lossy(body)
            ));
        }
        serde_json::from_slice(body).map_err(|e| {
            format!(
                "the function {} answered something that is not a consolidation response: {e}",
                self.name
            )
        })
    }
}
