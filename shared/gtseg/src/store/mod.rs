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
pub use s3::{DEFAULT_S3_TIMEOUT, S3Store};

/// Options for writing an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// MIME type, e.g. `image/png`.
    pub content_type: Option<&'static str>,
    /// Write with SSE-KMS under this key (the event's `kmsKeyId`).
    pub kms_key_id: Option<String>,
}

/// A read or write that failed: which object, which operation, and what went wrong. The
/// message names the URI and what to check.
#[derive(Debug)]
pub struct StoreError {
    /// The object.
    pub uri: S3Uri,
    /// The operation, by S3's name (`GetObject`, `PutObject`), for the local store too.
    pub op: &'static str,
    /// What went wrong.
    pub kind: StoreErrorKind,
    /// For a local store, the file behind the URI: a mistyped `--store` shows in the message.
    pub file: Option<std::path::PathBuf>,
}

/// What went wrong with a read or write, and so what the caller should do about it.
#[derive(Debug)]
pub enum StoreErrorKind {
    /// The object does not exist.
    NotFound,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The credentials may not do this.
    AccessDenied,
    /// There are no credentials to sign the request with.
    NoCredentials,
    /// A fault on the way, after the store's own retries: a timeout, throttling, a reset
    /// connection, a stalled body, a server error. Retrying the whole call may succeed.
    Unavailable(String),
    /// The object is larger than the caller's limit.
    TooLarge {
        /// The object's size in bytes.
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// The bucket is not in `ALLOWED_BUCKETS`.
    NotAllowed,
    /// The key cannot be a file under a local store's root (an empty, `.` or `..` segment).
    UnsafeKey,
    /// Anything else the store said, in one line.
    Other(String),
}

impl StoreError {
    /// A failed `op` on `uri`.
    pub fn new(uri: &S3Uri, op: &'static str, kind: StoreErrorKind) -> Self {
        Self {
            uri: uri.clone(),
            op,
            kind,
            file: None,
        }
    }

    /// The same error, naming the local file behind the URI.
    pub fn in_file(mut self, file: &std::path::Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }

    /// Whether the object does not exist (rather than could not be read).
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, StoreErrorKind::NotFound)
    }

    /// Whether the failure lies with the object or its address (it does not exist, is too
    /// large, or may not be read here), rather than with the store or the credentials. For
    /// a worker's answer, only such a failure excludes the answer; any other fails the batch,
    /// so that Ground Truth retries it.
    pub fn is_the_object_s_fault(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::NotFound
                | StoreErrorKind::TooLarge { .. }
                | StoreErrorKind::NotAllowed
                | StoreErrorKind::UnsafeKey
        )
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (uri, op) = (&self.uri, self.op);
        match &self.kind {
            StoreErrorKind::NotFound => match &self.file {
                None => write!(f, "{uri} does not exist (no such key)"),
                Some(file) => write!(
                    f,
                    "{uri} does not exist: the local store has no file {}",
                    file.display()
                ),
            },
            StoreErrorKind::NoSuchBucket => write!(f, "the bucket of {uri} does not exist"),
            StoreErrorKind::AccessDenied => write!(
                f,
                "access to {uri} was denied ({op}); check the function role's S3 permissions"
            ),
            StoreErrorKind::NoCredentials => write!(
                f,
                "{op} of {uri} needs AWS credentials, and none were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ),
            StoreErrorKind::TooLarge { size, max } => {
                write!(f, "{uri} is {size} bytes, over the limit of {max} bytes")
            }
            StoreErrorKind::NotAllowed => write!(
                f,
                "{uri} is in a bucket that ALLOWED_BUCKETS does not list; add the bucket or fix the event"
            ),
            StoreErrorKind::UnsafeKey => write!(
                f,
                "{uri} cannot live in a local store: its key has an empty, `.` or `..` segment"
            ),
            StoreErrorKind::Unavailable(message) => write!(
                f,
                "{op} of {uri} failed after retries, and may succeed later: {message}"
            ),
            StoreErrorKind::Other(message) => write!(f, "{op} of {uri} failed: {message}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// An object being read: its bytes as they arrive, at most the limit it was opened with.
pub type ObjectReader = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// Reads from `reader` at most `max` bytes, failing past them, so that a body longer than it
/// claimed cannot run the reader past the limit.
pub(crate) fn limited(
    reader: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    max: u64,
) -> ObjectReader {
    use tokio::io::AsyncReadExt as _;
    // One byte more than allowed, to tell "exactly the limit" from "over it".
    let capped = reader.take(max.saturating_add(1));
    Box::pin(OverLimit {
        inner: capped,
        max,
        read: 0,
    })
}

/// See [`limited`].
struct OverLimit<R> {
    inner: R,
    max: u64,
    read: u64,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for OverLimit<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &poll {
            self.read += (buf.filled().len() - before) as u64;
            if self.read > self.max {
                let max = self.max;
                return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                    "the object is longer than the limit of {max} bytes"
                ))));
            }
        }
        poll
    }
}

/// Where objects live. Implementations must be safe to share across tasks.
pub trait ObjectStore: Clone + Send + Sync + 'static {
    /// Reads a whole object, refusing objects larger than `max_bytes`.
    fn get(
        &self,
        uri: &S3Uri,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
    /// Opens an object for reading as it arrives, refusing objects larger than `max_bytes`
    /// (a body that turns out longer fails the read). A fault while reading fails it too.
    fn get_stream(
        &self,
        uri: &S3Uri,
        max_bytes: u64,
    ) -> impl Future<Output = Result<ObjectReader, StoreError>> + Send;
    /// Writes a whole object, replacing any previous one.
    fn put(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        opts: &PutOptions,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Writes a whole object only if none exists at `uri` (S3's conditional write,
    /// `If-None-Match: *`; a local store's no-clobber rename): `Ok(false)` when one does. Two
    /// writers racing for one key: exactly one gets `true`. What a lock is made of.
    fn create(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        opts: &PutOptions,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Removes an object; an object that does not exist is not an error.
    fn delete(&self, uri: &S3Uri) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every object whose key starts with `prefix`'s key, in key order (a whole finished
    /// job's worker responses, say).
    fn list(&self, prefix: &S3Uri) -> impl Future<Output = Result<Vec<S3Uri>, StoreError>> + Send;
    /// The same store acting as the IAM role `role_arn` (`ASSUME_JOB_ROLE`). Stores without
    /// credentials (a local directory) are unchanged.
    fn assuming_role(&self, role_arn: &str) -> impl Future<Output = Self> + Send {
        let _ = role_arn;
        std::future::ready(self.clone())
    }
}
