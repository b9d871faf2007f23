//! Object storage behind one narrow trait, with two real implementations: a local directory
//! (`s3://bucket/key` is the file `DIR/bucket/key`, here) and Amazon S3 or any S3-compatible
//! server (`crate::s3`, behind the default `s3` feature).
//!
//! Stores only move bytes; they never interpret them. Every address is an already-validated
//! [`S3Uri`], so nothing here can be pointed at `file://` or `https://`.

use std::error::Error as StdError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    #[error(
        "{uri} is in a bucket that ALLOWED_BUCKETS does not list; add the bucket or fix the event"
    )]
    NotAllowed { uri: S3Uri },
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
// Either, chosen at run time
// ---------------------------------------------------------------------------------------------

/// The store chosen at start-up: `gtseg replay --store DIR` or real S3.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Local(LocalStore),
    #[cfg(feature = "s3")]
    S3(crate::s3::S3Store),
}

impl ObjectStore for AnyStore {
    async fn assuming_role(&self, role_arn: &str) -> Self {
        match self {
            Self::Local(s) => Self::Local(s.assuming_role(role_arn).await),
            #[cfg(feature = "s3")]
            Self::S3(s) => Self::S3(s.assuming(role_arn).await),
        }
    }

    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        match self {
            Self::Local(s) => s.get(uri, max_bytes).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.get(uri, max_bytes).await,
        }
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, opts: &PutOptions) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.put(uri, body, opts).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.put(uri, body, opts).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Allow-list
// ---------------------------------------------------------------------------------------------

/// Any store, restricted to the buckets of `ALLOWED_BUCKETS` (all buckets when `None`).
/// Every read and write of the functions goes through it.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    allowed: Option<Arc<[String]>>,
}

impl<S> Guarded<S> {
    /// Wraps `inner`; `allowed` is the list of bucket names, or `None` for no restriction.
    pub fn new(inner: S, allowed: Option<Vec<String>>) -> Self {
        Self {
            inner,
            allowed: allowed.map(Into::into),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self, uri: &S3Uri) -> Result<(), StoreError> {
        match &self.allowed {
            Some(list) if !list.iter().any(|b| b == uri.bucket()) => {
                Err(StoreError::NotAllowed { uri: uri.clone() })
            }
            _ => Ok(()),
        }
    }
}

impl<S: ObjectStore> ObjectStore for Guarded<S> {
    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        self.check(uri)?;
        self.inner.get(uri, max_bytes).await
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, opts: &PutOptions) -> Result<(), StoreError> {
        self.check(uri)?;
        self.inner.put(uri, body, opts).await
    }

    async fn assuming_role(&self, role_arn: &str) -> Self {
        Self {
            inner: self.inner.assuming_role(role_arn).await,
            allowed: self.allowed.clone(),
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

    #[tokio::test]
    async fn allow_list_refuses_other_buckets_for_reads_and_writes() {
        let dir = std::env::temp_dir().join(format!("gtseg-guard-{}", std::process::id()));
        let store = Guarded::new(LocalStore::new(&dir), Some(vec!["good".into()]));
        let ok = uri("s3://good/k");
        store
            .put(&ok, b"x".to_vec(), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(store.get(&ok, 10).await.unwrap(), b"x");
        let bad = uri("s3://evil/k");
        let e = store
            .put(&bad, b"x".to_vec(), &PutOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::NotAllowed { .. }) && e.to_string().contains("ALLOWED_BUCKETS")
        );
        assert!(matches!(
            store.get(&bad, 10).await,
            Err(StoreError::NotAllowed { .. })
        ));
        assert!(!dir.join("evil").exists());
        let open = Guarded::new(LocalStore::new(&dir), None);
        assert!(matches!(
            open.get(&bad, 10).await,
            Err(StoreError::NotFound { .. })
        ));
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
