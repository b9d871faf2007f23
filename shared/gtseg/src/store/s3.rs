//! Amazon S3, or any S3-compatible server, as an [`ObjectStore`] (feature `s3`, on by default).
//!
//! Built from the standard AWS environment; path-style addressing whenever an endpoint override
//! is set. Every call is bounded: a connect timeout, a timeout until the answer's headers, per
//! attempt and per operation, and a body that stops arriving fails after a grace period; all of
//! these, throttling and server errors are retried (the SDK's standard mode for the call, and
//! here for a body read). Errors are classified by S3 error code and status so that users see
//! "does not exist", "access denied" or "failed after retries" with the URI, not an SDK dump,
//! and the caller can tell the object's fault from the store's.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::{ObjectReader, ObjectStore, PutOptions, StoreError, StoreErrorKind, limited};

/// Attempts per call, the first included.
const ATTEMPTS: u32 = 4;
/// A body that delivers nothing for this long fails (and is read again).
const STALL_GRACE: Duration = Duration::from_secs(5);

/// The time every S3 call waits for an answer's headers when not told otherwise: an attempt
/// gets three times as long (for a PutObject, its whole upload), and a call with its retries
/// eight times (see `docs/reliability.md`).
pub const DEFAULT_S3_TIMEOUT: Duration = Duration::from_secs(20);

/// The S3 configuration with this project's bounds and retries on top of `conf`.
fn s3_config(
    conf: &aws_types::SdkConfig,
    path_style: bool,
    timeout: Duration,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(conf)
        .force_path_style(path_style)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout.min(Duration::from_secs(3)))
                .read_timeout(timeout)
                .operation_attempt_timeout(timeout * 3)
                .operation_timeout(timeout * 8)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(STALL_GRACE)
                .build(),
        )
}
use crate::uri::S3Uri;

/// Amazon S3 or any S3-compatible server, through aws-sdk-s3 (its standard retries included).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    conf: Arc<aws_types::SdkConfig>,
    path_style: bool,
    timeout: Duration,
    /// Clients acting as assumed roles, one per role ARN, kept for the life of the process so
    /// that a warm container reuses (and the SDK refreshes) each role's credentials.
    roles: Arc<Mutex<HashMap<String, aws_sdk_s3::Client>>>,
}

impl S3Store {
    /// Builds a client from an already-loaded AWS configuration. `path_style` should be true
    /// whenever an endpoint override (`AWS_ENDPOINT_URL[_S3]`) is set; `timeout` bounds the
    /// wait for an answer's headers (see [`DEFAULT_S3_TIMEOUT`]).
    pub fn from_sdk_config(
        conf: &aws_types::SdkConfig,
        path_style: bool,
        timeout: Duration,
    ) -> Self {
        let s3 = s3_config(conf, path_style, timeout).build();
        Self {
            client: aws_sdk_s3::Client::from_conf(s3),
            conf: Arc::new(conf.clone()),
            path_style,
            timeout,
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
                let conf = crate::aws::sdk_config(Some((&self.conf, role_arn))).await;
                let s3 = s3_config(&conf, self.path_style, self.timeout).build();
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
}

/// Classifies an SDK error by its S3 error code and HTTP status.
fn s3_error<E>(uri: &S3Uri, op: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let said = || DisplayErrorContext(&err).to_string();
    // No answer at all (a timeout, a refused or reset connection) or an unreadable one is a
    // fault on the way, as are throttling and server errors the SDK gave up retrying.
    let no_answer = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    let kind = match (code.as_deref(), status) {
        _ if lacks_credentials(&err) => StoreErrorKind::NoCredentials,
        _ if no_answer => StoreErrorKind::Unavailable(said()),
        (
            Some(
                "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestTimeout"
                | "InternalError",
            ),
            _,
        ) => StoreErrorKind::Unavailable(said()),
        (_, Some(status)) if status == 429 || status >= 500 => StoreErrorKind::Unavailable(said()),
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
        _ => StoreErrorKind::Other(said()),
    };
    StoreError::new(uri, op, kind)
}

/// Whether the request failed because the credentials chain found no credentials: the SDK
/// reports that as a failure to dispatch, which would otherwise read as a fault on the way.
fn lacks_credentials(err: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        cause = e.source();
    }
    false
}

impl S3Store {
    /// A GetObject up to its headers, refused when it announces more than `max_bytes`.
    async fn open(&self, uri: &S3Uri, max_bytes: u64) -> Result<ByteStream, StoreError> {
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
        Ok(resp.body)
    }
}

impl ObjectStore for S3Store {
    async fn assuming_role(&self, role_arn: &str) -> Self {
        self.assuming(role_arn).await
    }

    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        // The SDK retries the call, but not a body that fails once the headers arrived (a
        // stall, a reset): the whole GET is repeated for that.
        let mut attempt = 1;
        loop {
            let body = self.open(uri, max_bytes).await?.collect().await;
            match body {
                Ok(body) => return Ok(body.into_bytes().to_vec()),
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(uri = %uri, attempt, error = %DisplayErrorContext(&e), "reading an object's body failed; reading it again");
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                    attempt += 1;
                }
                Err(e) => {
                    let message =
                        format!("the body could not be read: {}", DisplayErrorContext(&e));
                    return Err(StoreError::new(
                        uri,
                        "GetObject",
                        StoreErrorKind::Unavailable(message),
                    ));
                }
            }
        }
    }

    async fn get_stream(&self, uri: &S3Uri, max_bytes: u64) -> Result<ObjectReader, StoreError> {
        let body = self.open(uri, max_bytes).await?;
        Ok(limited(body.into_async_read(), max_bytes))
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

    async fn create(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        opts: &PutOptions,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .if_none_match("*")
            .body(ByteStream::from(body));
        if let Some(ct) = opts.content_type {
            req = req.content_type(ct);
        }
        match req.send().await {
            Ok(_) => Ok(true),
            // The object exists (412), or another conditional write of it is under way (409).
            Err(e)
                if matches!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(409 | 412)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(s3_error(uri, "PutObject", e)),
        }
    }

    async fn delete(&self, uri: &S3Uri) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await
            .map_err(|e| s3_error(uri, "DeleteObject", e))?;
        Ok(())
    }

    async fn list(&self, prefix: &S3Uri) -> Result<Vec<S3Uri>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(prefix.bucket())
            .prefix(prefix.key())
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(prefix, "ListObjectsV2", e))?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    let uri =
                        S3Uri::parse(&format!("s3://{}/{key}", prefix.bucket())).map_err(|e| {
                            StoreError::new(
                                prefix,
                                "ListObjectsV2",
                                StoreErrorKind::Other(e.to_string()),
                            )
                        })?;
                    out.push(uri);
                }
            }
        }
        // Directory buckets do not list in key order; the trait promises it.
        out.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(out)
    }
}
