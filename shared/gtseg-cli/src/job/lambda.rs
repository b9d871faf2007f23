//! The deployed consolidation function, invoked with the AWS SDK (`--via-lambda`): the
//! library's AWS set-up (so `AWS_ENDPOINT_URL_LAMBDA` is honoured), throttling and transient
//! faults retried by the SDK.

use anyhow::Context as _;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use gtseg::event::{ConsolidationEvent, ConsolidationResponseItem};

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
    pub async fn new(name: &str) -> anyhow::Result<Self> {
        let aws = crate::store::aws("--via-lambda invokes the function").await?;
        let lambda = aws_sdk_lambda::config::Builder::from(aws.sdk_config())
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
        event: &ConsolidationEvent,
    ) -> anyhow::Result<Vec<ConsolidationResponseItem>> {
        let resp = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(serde_json::to_vec(event)?))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("invoking {} failed: {}", self.name, DisplayErrorContext(&e))
            })?;
        let body = resp.payload().map(Blob::as_ref).unwrap_or_default();
        if let Some(kind) = resp.function_error() {
            anyhow::bail!(
                "the function {} failed ({kind}): {}",
                self.name,
                String::from_utf8_lossy(body)
            );
        }
        serde_json::from_slice(body).with_context(|| {
            format!(
                "the function {} answered something that is not a consolidation response",
                self.name
            )
        })
    }
}
