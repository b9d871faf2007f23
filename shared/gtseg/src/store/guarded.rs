//! Any store, restricted to an allow-list of buckets (`ALLOWED_BUCKETS`).

use std::sync::Arc;

use super::{ObjectReader, ObjectStore, PutOptions, StoreError, StoreErrorKind};
use crate::uri::S3Uri;

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

    fn check(&self, uri: &S3Uri, op: &'static str) -> Result<(), StoreError> {
        match &self.allowed {
            Some(list) if !list.iter().any(|b| b == uri.bucket()) => {
                Err(StoreError::new(uri, op, StoreErrorKind::NotAllowed))
            }
            _ => Ok(()),
        }
    }
}

impl<S: ObjectStore> ObjectStore for Guarded<S> {
    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        self.check(uri, "GetObject")?;
        self.inner.get(uri, max_bytes).await
    }

    async fn get_stream(&self, uri: &S3Uri, max_bytes: u64) -> Result<ObjectReader, StoreError> {
        self.check(uri, "GetObject")?;
        self.inner.get_stream(uri, max_bytes).await
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, opts: &PutOptions) -> Result<(), StoreError> {
        self.check(uri, "PutObject")?;
        self.inner.put(uri, body, opts).await
    }

    async fn create(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        opts: &PutOptions,
    ) -> Result<bool, StoreError> {
        self.check(uri, "PutObject")?;
        self.inner.create(uri, body, opts).await
    }

    async fn delete(&self, uri: &S3Uri) -> Result<(), StoreError> {
        self.check(uri, "DeleteObject")?;
        self.inner.delete(uri).await
    }

    async fn list(&self, prefix: &S3Uri) -> Result<Vec<S3Uri>, StoreError> {
        self.check(prefix, "ListObjectsV2")?;
        self.inner.list(prefix).await
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
    use crate::store::LocalStore;

    fn uri(s: &str) -> S3Uri {
        S3Uri::parse(s).unwrap()
    }

    #[tokio::test]
    async fn allow_list_refuses_other_buckets_for_reads_and_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let store = Guarded::new(LocalStore::new(dir), Some(vec!["good".into()]));
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
            matches!(e.kind, StoreErrorKind::NotAllowed)
                && e.to_string().contains("ALLOWED_BUCKETS")
        );
        assert!(matches!(
            store.get(&bad, 10).await,
            Err(StoreError {
                kind: StoreErrorKind::NotAllowed,
                ..
            })
        ));
        assert!(!dir.join("evil").exists());
        let open = Guarded::new(LocalStore::new(dir), None);
        assert!(matches!(
            open.get(&bad, 10).await,
            Err(StoreError {
                kind: StoreErrorKind::NotFound,
                ..
            })
        ));
    }
}
