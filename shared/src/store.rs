//! Object storage behind one narrow trait, with two real implementations: a local directory
//! (`s3://bucket/key` is the file `DIR/bucket/key`) and Amazon S3 (or any S3-compatible server).
//!
//! Stores only move bytes; they never interpret them. Every address is an already-validated
//! [`S3Uri`], so nothing here can be pointed at `file://` or `https://`.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use crate::uri::S3Uri;

/// Options for writing an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// MIME type, e.g. `image/png`.
    pub content_type: Option<&'static str>,
    /// Write with SSE-KMS under this key (the event's `kmsKeyId`).
    pub kms_key_id: Option<String>,
}

/// A read or write that failed. Each message names the URI and what to check.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{uri} does not exist (no such key)")]
    NotFound { uri: S3Uri },
    #[error("the bucket of {uri} does not exist")]
    NoSuchBucket { uri: S3Uri },
    #[error("access to {uri} was denied ({op}); check the function role's S3 permissions")]
    AccessDenied { uri: S3Uri, op: &'static str },
    #[error("{uri} is {size} bytes, over the limit of {max} bytes")]
    TooLarge { uri: S3Uri, size: u64, max: u64 },
    #[error("{uri} cannot live in a local store: its key has an empty, `.` or `..` segment")]
    UnsafeKey { uri: S3Uri },
    #[error("{op} of {uri} in the local store failed: {source}")]
    Io {
        uri: S3Uri,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("S3 {op} of {uri} failed: {message}")]
    S3 {
        uri: S3Uri,
        op: &'static str,
        message: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// Where objects live. Implementations must be safe to share across tasks.
pub trait ObjectStore: Clone + Send + Sync {
    /// Reads a whole object, refusing objects larger than `max_bytes`.
    fn get(
        &self,
        uri: &S3Uri,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
    /// Writes a whole object, replacing any previous one.
    fn put(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        opts: &PutOptions,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The same store acting as the IAM role `role_arn` (`ASSUME_JOB_ROLE`). Stores without
    /// credentials (a local directory) are unchanged.
    fn assuming_role(&self, role_arn: &str) -> impl Future<Output = Self> + Send {
        let _ = role_arn;
        std::future::ready(self.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Local directory
// ---------------------------------------------------------------------------------------------

/// `s3://bucket/key` ⇄ `ROOT/bucket/key`. Keys that could leave the root are refused.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind `uri`. Bucket names are already validated by [`S3Uri`]; key segments
    /// that are empty, `.` or `..` are refused so the path stays under the root.
    pub fn path_of(&self, uri: &S3Uri) -> Result<PathBuf, StoreError> {
        let mut p = self.root.join(uri.bucket());
        for seg in uri.key().split('/') {
            if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\') {
                return Err(StoreError::UnsafeKey { uri: uri.clone() });
            }
            p.push(seg);
        }
        Ok(p)
    }
}

impl ObjectStore for LocalStore {
    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(uri)?;
        let io = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound { uri: uri.clone() },
            _ => StoreError::Io {
                uri: uri.clone(),
                op: "read",
                source,
            },
        };
        let size = tokio::fs::metadata(&path).await.map_err(io)?.len();
        if size > max_bytes {
            return Err(StoreError::TooLarge {
                uri: uri.clone(),
                size,
                max: max_bytes,
            });
        }
        tokio::fs::read(&path).await.map_err(io)
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, _opts: &PutOptions) -> Result<(), StoreError> {
        let path = self.path_of(uri)?;
        let io = |source| StoreError::Io {
            uri: uri.clone(),
            op: "write",
            source,
        };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        // Write then rename, so a reader never sees half a mask.
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, body).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }
}

// ---------------------------------------------------------------------------------------------
// Amazon S3
// ---------------------------------------------------------------------------------------------

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
    let uri = uri.clone();
    match (code.as_deref(), status) {
        (Some("NoSuchKey"), _) => StoreError::NotFound { uri },
        (Some("NoSuchBucket"), _) => StoreError::NoSuchBucket { uri },
        (
            Some(
                "AccessDenied"
                | "AllAccessDisabled"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch",
            ),
            _,
        )
        | (_, Some(403)) => StoreError::AccessDenied { uri, op },
        (_, Some(404)) => StoreError::NotFound { uri },
        _ => {
            let message = crate::report(&err);
            StoreError::S3 {
                uri,
                op,
                message,
                source: Box::new(err),
            }
        }
    }
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
            return Err(StoreError::TooLarge {
                uri: uri.clone(),
                size,
                max: max_bytes,
            });
        }
        let body = resp.body.collect().await.map_err(|e| StoreError::S3 {
            uri: uri.clone(),
            op: "GetObject",
            message: format!("the body could not be read: {e}"),
            source: Box::new(e),
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

// ---------------------------------------------------------------------------------------------
// Either, chosen at run time
// ---------------------------------------------------------------------------------------------

/// The store chosen at start-up: `gtseg replay --store DIR` or real S3.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Local(LocalStore),
    S3(S3Store),
}

impl ObjectStore for AnyStore {
    async fn assuming_role(&self, role_arn: &str) -> Self {
        match self {
            Self::Local(s) => Self::Local(s.clone()),
            Self::S3(s) => Self::S3(s.assuming(role_arn).await),
        }
    }

    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        match self {
            Self::Local(s) => s.get(uri, max_bytes).await,
            Self::S3(s) => s.get(uri, max_bytes).await,
        }
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, opts: &PutOptions) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.put(uri, body, opts).await,
            Self::S3(s) => s.put(uri, body, opts).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> S3Uri {
        S3Uri::parse(s).unwrap()
    }

    #[tokio::test]
    async fn local_store_round_trips_and_reports_missing_objects() {
        let dir = std::env::temp_dir().join(format!("gtseg-store-{}", std::process::id()));
        let store = LocalStore::new(&dir);
        let u = uri("s3://bucket/a/b/c.png");
        store
            .put(&u, b"hello".to_vec(), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(store.get(&u, 100).await.unwrap(), b"hello");
        assert!(dir.join("bucket/a/b/c.png").is_file());
        assert!(matches!(
            store.get(&u, 2).await,
            Err(StoreError::TooLarge { size: 5, .. })
        ));
        let missing = store.get(&uri("s3://bucket/nope"), 100).await.unwrap_err();
        assert!(matches!(missing, StoreError::NotFound { .. }));
        assert!(
            missing.to_string().contains("s3://bucket/nope"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn local_store_refuses_keys_that_leave_the_root() {
        let store = LocalStore::new("/tmp/root");
        for bad in [
            "s3://bucket/../x",
            "s3://bucket/a/./b",
            "s3://bucket/a//b",
            "s3://bucket/a/..",
            "s3://bucket/a\\..\\b",
        ] {
            assert!(
                matches!(store.path_of(&uri(bad)), Err(StoreError::UnsafeKey { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            store.path_of(&uri("s3://bucket/a/b")).unwrap(),
            Path::new("/tmp/root/bucket/a/b")
        );
    }
}
