//! The AWS set-up, in one place (feature `s3`): the standard environment read once (the
//! credentials chain, the region, `AWS_ENDPOINT_URL` and its per-service forms), and the
//! clients built from it: S3 with this project's bounds and retries, SageMaker's
//! `DescribeLabelingJob`, and any other SDK client a caller builds from
//! [`Aws::sdk_config`] (the tool's Lambda client). Every binary and every command goes
//! through [`Aws::load`]; no other code loads the AWS configuration.

use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials as _;

use crate::catalog::SageMakerCatalog;
use crate::config::Config;
use crate::store::S3Store;

/// Log directives that quiet the SDK's look-up of a region on EC2's metadata service, which
/// fails with long warnings wherever there is no such service (a laptop without
/// `AWS_REGION`); the one-line error that follows says all that matters.
pub const QUIET_AWS_LOGS: &str = "aws_config::imds=error";

/// The standard AWS environment, loaded once, with the settings that shape its clients.
#[derive(Debug, Clone)]
pub struct Aws {
    conf: aws_types::SdkConfig,
    /// `AWS_ENDPOINT_URL[_S3]` is set: S3 requests use path-style addressing.
    path_style: bool,
    /// `S3_TIMEOUT_SECONDS`.
    s3_timeout: Duration,
    /// `AWS_ENDPOINT_URL_SAGEMAKER`.
    sagemaker_endpoint: Option<String>,
}

/// The AWS environment lacks something a command needs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AwsError {
    /// No region is set.
    #[error(
        "{needs}, so it needs an AWS region: set AWS_REGION (or AWS_PROFILE, for a profile with a region)"
    )]
    NoRegion {
        /// What needs it, in a few words ("reading S3").
        needs: String,
    },
    /// No credentials were found.
    #[error(
        "{needs}, so it needs AWS credentials, and none were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (`aws configure` writes a profile)"
    )]
    NoCredentials {
        /// What needs them.
        needs: String,
    },
}

impl Aws {
    /// Loads the standard AWS environment; `config` gives the settings read from the rest of
    /// the environment (endpoint overrides, timeouts).
    pub async fn load(config: &Config) -> Self {
        Self::from_sdk_config(sdk_config(None).await, config)
    }

    /// An AWS set-up from an already-built SDK configuration (a test's, say).
    pub fn from_sdk_config(conf: aws_types::SdkConfig, config: &Config) -> Self {
        Self {
            conf,
            path_style: config.endpoint_override,
            s3_timeout: config.s3_timeout,
            sagemaker_endpoint: config.sagemaker_endpoint.clone(),
        }
    }

    /// The SDK configuration, for clients of other services.
    pub fn sdk_config(&self) -> &aws_types::SdkConfig {
        &self.conf
    }

    /// This set-up when a region is set; else an error that says what `needs` it.
    pub fn require_region(self, needs: &str) -> Result<Self, AwsError> {
        match self.conf.region() {
            Some(_) => Ok(self),
            None => Err(AwsError::NoRegion {
                needs: needs.to_owned(),
            }),
        }
    }

    /// Checks, by asking the credentials chain once, that credentials exist, so that a user
    /// without any gets one line that says what to set rather than a failure per request.
    pub async fn require_credentials(self, needs: &str) -> Result<Self, AwsError> {
        let found = match self.conf.credentials_provider() {
            Some(provider) => provider.provide_credentials().await.is_ok(),
            None => false,
        };
        if found {
            Ok(self)
        } else {
            Err(AwsError::NoCredentials {
                needs: needs.to_owned(),
            })
        }
    }

    /// The S3 store, with this project's timeouts and retries.
    pub fn s3(&self) -> S3Store {
        S3Store::from_sdk_config(&self.conf, self.path_style, self.s3_timeout)
    }

    /// SageMaker's `DescribeLabelingJob`, at `AWS_ENDPOINT_URL_SAGEMAKER` when it is set.
    pub fn catalog(&self) -> SageMakerCatalog {
        SageMakerCatalog::new(&self.conf, self.sagemaker_endpoint.clone())
    }
}

/// The standard AWS configuration, or, with `assume`, that configuration acting as an IAM
/// role: credentials from assuming `role_arn` through STS, signed with the base's own (cached
/// and refreshed by the SDK). The one place that calls into `aws_config`.
pub(crate) async fn sdk_config(
    assume: Option<(&aws_types::SdkConfig, &str)>,
) -> aws_types::SdkConfig {
    match assume {
        None => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        Some((base, role_arn)) => {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name("gtseg-consolidation")
                .configure(base)
                .build()
                .await;
            base.to_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build()
        }
    }
}
