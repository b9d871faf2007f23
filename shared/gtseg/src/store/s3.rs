//! Amazon S3, or any S3-compatible server, as an [`ObjectStore`] (feature `s3`, on by default).
//!
//! Built from the standard AWS environment; path-style addressing whenever an endpoint override
//! is set. Errors are classified by S3 error code so that users see "does not exist" or "access
//! denied" with the URI, not an SDK dump.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::{ObjectStore, PutOptions, StoreError, StoreErrorKind};
use crate::uri::S3Uri;

/// Amazon S3 or any S3-compatible server, through aws-sdk-s3 (its standard retries included).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    conf: Arc<aws_config::SdkConfig>,
    path_style: bool,
    /// Clients acting as assumed roles, one per role ARN, kept for the life of the process so
    /// that a warm container reuses (and the SDK refreshes) each role's credentials.
    roles: Arc<Mutex<HashMap<String, aws_sdk_s3::Client>>>,
}

impl S3Store {
    /// Builds a client from an already-loaded AWS configuration. `path_style` should be true
    /// whenever an endpoint override (`AWS_ENDPOINT_URL[_S3]`) is set.
    pub fn from_sdk_config(conf: &aws_config::SdkConfig, path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3),
            conf: Arc::new(conf.clone()),
            path_style,
            roles: Arc::default(),
        }
    }

    /// A store whose requests use credentials from assuming `role_arn` through STS (signed
    /// with the process's own credentials). Cached per role.
    pub async fn assuming(&self, role_arn: &str) -> Self {
        let cached = self
            .roles
            .lock()
            .ok()
            .and_then(|m| m.get(role_arn).cloned());
        let client = match cached {
            Some(c) => c,
            None => {
                let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                    .session_name("gtseg-consolidation")
                    .configure(&self.conf)
                    .build()
                    .await;
                let s3 = aws_sdk_s3::config::Builder::from(self.conf.as_ref())
                    .credentials_provider(provider)
                    .force_path_style(self.path_style)
                    .build();
                let c = aws_sdk_s3::Client::from_conf(s3);
                if let Ok(mut m) = self.roles.lock() {
                    m.insert(role_arn.to_owned(), c.clone());
                }
                c
            }
        };
        Self {
            client,
            ..self.clone()
        }
    }

    /// Loads the standard AWS environment (credentials chain, region, `AWS_ENDPOINT_URL`,
    /// `AWS_ENDPOINT_URL_S3`) and builds a client.
    pub async fn from_env(path_style: bool) -> Self {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_sdk_config(&conf, path_style)
    }
}

/// Classifies an SDK error by its S3 error code and HTTP status.
fn s3_error<E>(uri: &S3Uri, op: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let kind = match (code.as_deref(), status) {
        (Some("NoSuchKey"), _) => StoreErrorKind::NotFound,
        (Some("NoSuchBucket"), _) => StoreErrorKind::NoSuchBucket,
        (
            Some(
                "AccessDenied"
                | "AllAccessDisabled"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch",
            ),
            _,
        )
        | (_, Some(403)) => StoreErrorKind::AccessDenied,
        (_, Some(404)) => StoreErrorKind::NotFound,
        _ => StoreErrorKind::Other(DisplayErrorContext(&err).to_string()),
    };
    StoreError::new(uri, op, kind)
}

impl ObjectStore for S3Store {
    async fn assuming_role(&self, role_arn: &str) -> Self {
        self.assuming(role_arn).await
    }

    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let resp = self
            .client
            .get_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await
            .map_err(|e| s3_error(uri, "GetObject", e))?;
        let size = resp.content_length().unwrap_or(0).max(0) as u64;
        if size > max_bytes {
            return Err(StoreError::new(
                uri,
                "GetObject",
                StoreErrorKind::TooLarge {
                    size,
                    max: max_bytes,
                },
            ));
        }
        let body = resp.body.collect().await.map_err(|e| {
            let message = format!("the body could not be read: {}", DisplayErrorContext(&e));
            StoreError::new(uri, "GetObject", StoreErrorKind::Other(message))
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, opts: &PutOptions) -> Result<(), StoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .body(ByteStream::from(body));
        if let Some(ct) = opts.content_type {
            req = req.content_type(ct);
        }
        if let Some(k) = &opts.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        req.send()
            .await
            .map_err(|e| s3_error(uri, "PutObject", e))?;
        Ok(())
    }
}
