//! The store chosen at start-up: a local directory or S3.

use super::{LocalStore, ObjectReader, ObjectStore, PutOptions, StoreError};
use crate::uri::S3Uri;

/// The store chosen at start-up: `gtseg replay --store DIR` or real S3.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// A local directory (`gtseg replay --store DIR`).
    Local(LocalStore),
    /// S3 or an S3-compatible server.
    #[cfg(feature = "s3")]
    S3(super::S3Store),
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

    async fn get_stream(&self, uri: &S3Uri, max_bytes: u64) -> Result<ObjectReader, StoreError> {
        match self {
            Self::Local(s) => s.get_stream(uri, max_bytes).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.get_stream(uri, max_bytes).await,
        }
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, opts: &PutOptions) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.put(uri, body, opts).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.put(uri, body, opts).await,
        }
    }

    async fn create(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        opts: &PutOptions,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Local(s) => s.create(uri, body, opts).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.create(uri, body, opts).await,
        }
    }

    async fn delete(&self, uri: &S3Uri) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.delete(uri).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.delete(uri).await,
        }
    }

    async fn list(&self, prefix: &S3Uri) -> Result<Vec<S3Uri>, StoreError> {
        match self {
            Self::Local(s) => s.list(prefix).await,
            #[cfg(feature = "s3")]
            Self::S3(s) => s.list(prefix).await,
        }
    }
}
