//! Object storage behind one narrow trait, with two real implementations: a local directory
//! (`s3://bucket/key` is the file `DIR/bucket/key`, here) and Amazon S3 or any S3-compatible
//! server (`crate::s3`, behind the default `s3` feature).
//!
//! Stores only move bytes; they never interpret them. Every address is an already-validated
//! [`S3Uri`], so nothing here can be pointed at `file://` or `https://`.

use std::future::Future;

use crate::uri::S3Uri;

mod any;
mod guarded;
mod local;
#[cfg(feature = "s3")]
mod s3;

pub use any::AnyStore;
pub use guarded::Guarded;
pub use local::LocalStore;
#[cfg(feature = "s3")]
pub use s3::S3Store;

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
    #[error(
        "{uri} is in a bucket that ALLOWED_BUCKETS does not list; add the bucket or fix the event"
    )]
    NotAllowed { uri: S3Uri },
    #[error("{uri} cannot live in a local store: its key has an empty, `.` or `..` segment")]
    UnsafeKey { uri: S3Uri },
    #[error("{op} of {uri} in the local store failed: {cause}")]
    Io {
        uri: S3Uri,
        op: &'static str,
        cause: std::io::Error,
    },
    #[error("S3 {op} of {uri} failed: {message}")]
    S3 {
        uri: S3Uri,
        op: &'static str,
        /// The SDK's error with all its causes, on one line.
        message: String,
    },
}

/// Where objects live. Implementations must be safe to share across tasks.
pub trait ObjectStore: Clone + Send + Sync + 'static {
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
