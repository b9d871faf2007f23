//! A local directory as the object store: `s3://bucket/key` is the file `ROOT/bucket/key`.
//! Used by `gtseg replay --store DIR` and by the tests.

use std::path::{Path, PathBuf};

use super::{ObjectStore, PutOptions, StoreError};
use crate::uri::S3Uri;

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
                cause: source,
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
        let io = |cause| StoreError::Io {
            uri: uri.clone(),
            op: "write",
            cause,
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
