//! A local directory as the object store: `s3://bucket/key` is the file `ROOT/bucket/key`.
//! Used by `gtseg replay --store DIR` and by the tests.

use std::path::{Path, PathBuf};

use super::{ObjectReader, ObjectStore, PutOptions, StoreError, StoreErrorKind, limited};
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
    pub fn path_of(&self, uri: &S3Uri) -> Result<PathBuf, StoreErrorKind> {
        let mut p = self.root.join(uri.bucket());
        for seg in uri.key().split('/') {
            if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\') {
                return Err(StoreErrorKind::UnsafeKey);
            }
            p.push(seg);
        }
        Ok(p)
    }
}

/// An I/O error on `path` as a store error's kind: a missing file is a missing object.
fn io_kind(e: &std::io::Error, path: &Path) -> StoreErrorKind {
    match e.kind() {
        std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
        _ => StoreErrorKind::Other(format!("{}: {e}", path.display())),
    }
}

impl LocalStore {
    /// Writes `uri` whole: a uniquely named temporary file in the same folder, then a rename,
    /// so that a reader never sees half an object and concurrent writers of one key never
    /// share a temporary file. Without `clobber`, the rename refuses an existing object
    /// (`Ok(false)`). Files get the usual mode (0666 less the umask), not a temporary file's
    /// 0600.
    async fn write(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        op: &'static str,
        clobber: bool,
    ) -> Result<bool, StoreError> {
        let fail = |kind| StoreError::new(uri, op, kind);
        let path = self.path_of(uri).map_err(fail)?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
            std::fs::create_dir_all(&dir)?;
            let mut builder = tempfile::Builder::new();
            builder.prefix(if clobber { TEMPORARY } else { CREATING });
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let mut tmp = builder.tempfile_in(&dir)?;
            std::io::Write::write_all(&mut tmp, &body)?;
            if clobber {
                tmp.persist(&target).map_err(|e| e.error)?;
                return Ok(true);
            }
            match tmp.persist_noclobber(&target) {
                Ok(_) => Ok(true),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e.error),
            }
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(|e| fail(io_kind(&e, &path)))
    }

    /// Removes the temporary files that writers killed mid-write left under `prefix`'s
    /// folder (see `write`); returns how many. Only for a writer that holds the folder's lock.
    pub async fn remove_stale_temporaries(&self, prefix: &S3Uri) -> Result<usize, StoreError> {
        let fail = |kind| StoreError::new(prefix, "DeleteObject", kind);
        let start = self.path_of(prefix).map_err(fail)?;
        let listed = start.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
            let mut removed = 0;
            for entry in walk_files(&start) {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(TEMPORARY) {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(|e| fail(io_kind(&e, &listed)))
    }
}

/// Every file under `start`, links followed as reads follow them (a linked response or
/// folder counts); a `start` that does not exist holds none.
fn walk_files(start: &Path) -> impl Iterator<Item = std::io::Result<walkdir::DirEntry>> {
    walkdir::WalkDir::new(start)
        .follow_links(true)
        .into_iter()
        .filter_map(|entry| match entry {
            Ok(e) if e.file_type().is_file() => Some(Ok(e)),
            Ok(_) => None,
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                None
            }
            Err(e) => Some(Err(e.into())),
        })
}

/// How a write's temporary file is named (`tempfile`'s prefix): never an object.
const TEMPORARY: &str = ".tmp";
/// How a create-if-absent's temporary file is named: another prefix, which
/// `remove_stale_temporaries` leaves alone, since a contender for a lock may be writing it
/// while the lock's holder cleans up (a few bytes, if a kill leaves one).
const CREATING: &str = ".new";

impl ObjectStore for LocalStore {
    async fn get(&self, uri: &S3Uri, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let fail = |kind| StoreError::new(uri, "GetObject", kind);
        let path = self.path_of(uri).map_err(fail)?;
        let io = |e: std::io::Error| fail(io_kind(&e, &path)).in_file(&path);
        let size = tokio::fs::metadata(&path).await.map_err(io)?.len();
        let too_large = |size: u64| {
            fail(StoreErrorKind::TooLarge {
                size,
                max: max_bytes,
            })
        };
        if size > max_bytes {
            return Err(too_large(size));
        }
        // Bounded by the bytes read, not the size reported (a device, a growing file).
        let file = path.clone();
        tokio::task::spawn_blocking(move || crate::location::read_bounded(&file, max_bytes))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .map_err(io)?
            .ok_or_else(|| too_large(max_bytes.saturating_add(1)))
    }

    async fn get_stream(&self, uri: &S3Uri, max_bytes: u64) -> Result<ObjectReader, StoreError> {
        let fail = |kind| StoreError::new(uri, "GetObject", kind);
        let path = self.path_of(uri).map_err(fail)?;
        let io = |e: std::io::Error| fail(io_kind(&e, &path)).in_file(&path);
        let file = tokio::fs::File::open(&path).await.map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        if size > max_bytes {
            return Err(fail(StoreErrorKind::TooLarge {
                size,
                max: max_bytes,
            }));
        }
        Ok(limited(tokio::io::BufReader::new(file), max_bytes))
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, _opts: &PutOptions) -> Result<(), StoreError> {
        self.write(uri, body, "PutObject", true).await.map(|_| ())
    }

    async fn create(
        &self,
        uri: &S3Uri,
        body: Vec<u8>,
        _opts: &PutOptions,
    ) -> Result<bool, StoreError> {
        self.write(uri, body, "PutObject", false).await
    }

    async fn delete(&self, uri: &S3Uri) -> Result<(), StoreError> {
        let fail = |kind| StoreError::new(uri, "DeleteObject", kind);
        let path = self.path_of(uri).map_err(fail)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fail(io_kind(&e, &path))),
        }
    }

    async fn list(&self, prefix: &S3Uri) -> Result<Vec<S3Uri>, StoreError> {
        let fail = |kind| StoreError::new(prefix, "ListObjectsV2", kind);
        let bucket_dir = self.root.join(prefix.bucket());
        // The deepest folder the prefix names whole; names below it are filtered on the rest.
        let folder = prefix.key().rsplit_once('/').map_or("", |(dir, _)| dir);
        let start = if folder.is_empty() {
            bucket_dir.clone()
        } else {
            let whole = S3Uri::parse(&format!("s3://{}/{folder}", prefix.bucket()))
                .map_err(|e| fail(StoreErrorKind::Other(e.to_string())))?;
            self.path_of(&whole).map_err(fail)?
        };
        let (bucket, want) = (prefix.bucket().to_owned(), prefix.key().to_owned());
        let listed = start.clone();
        let keys = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let mut keys = Vec::new();
            for entry in walk_files(&start) {
                let entry = entry?;
                // A write in progress (see `write`) is not an object yet.
                let name = entry.file_name().to_string_lossy();
                if name.starts_with(TEMPORARY) || name.starts_with(CREATING) {
                    continue;
                }
                let Ok(rel) = entry.path().strip_prefix(&bucket_dir) else {
                    continue;
                };
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                if key.starts_with(&want) {
                    keys.push(key);
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(|e| fail(io_kind(&e, &listed)))?;
        keys.into_iter()
            .map(|k| {
                S3Uri::parse(&format!("s3://{bucket}/{k}"))
                    .map_err(|e| fail(StoreErrorKind::Other(e.to_string())))
            })
            .collect()
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
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let store = LocalStore::new(dir);
        let u = uri("s3://bucket/a/b/c.png");
        store
            .put(&u, b"hello".to_vec(), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(store.get(&u, 100).await.unwrap(), b"hello");
        assert!(dir.join("bucket/a/b/c.png").is_file());
        assert!(matches!(
            store.get(&u, 2).await.map_err(|e| e.kind),
            Err(StoreErrorKind::TooLarge { size: 5, .. })
        ));
        let missing = store.get(&uri("s3://bucket/nope"), 100).await.unwrap_err();
        assert!(missing.is_not_found());
        assert!(
            missing.to_string().contains("s3://bucket/nope"),
            "{missing}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_of_one_key_never_fail_and_leave_one_whole_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let u = uri("s3://bucket/out/0.png");
        let mut writers = tokio::task::JoinSet::new();
        for i in 0..32u8 {
            let (store, u) = (store.clone(), u.clone());
            writers.spawn(async move {
                store
                    .put(&u, vec![i; 64 << 10], &PutOptions::default())
                    .await
            });
        }
        while let Some(r) = writers.join_next().await {
            r.unwrap().unwrap();
        }
        let body = store.get(&u, u64::MAX).await.unwrap();
        assert_eq!(body.len(), 64 << 10);
        assert!(
            body.iter().all(|&b| b == body[0]),
            "one writer's bytes, whole"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path().join("bucket/out"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
    }

    #[tokio::test]
    async fn a_lock_contender_s_temporary_outlives_the_holder_s_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let out = dir.path().join("bucket/out");
        std::fs::create_dir_all(&out).unwrap();
        // A put killed mid-write, and a contender for the lock still writing its own.
        std::fs::write(out.join(format!("{TEMPORARY}abc")), b"half").unwrap();
        std::fs::write(out.join(format!("{CREATING}def")), b"{}").unwrap();
        let removed = store
            .remove_stale_temporaries(&uri("s3://bucket/out"))
            .await
            .unwrap();
        assert_eq!(removed, 1);
        assert!(out.join(format!("{CREATING}def")).exists());
        // A create's own temporary is named so.
        let lock = uri("s3://bucket/out/gtseg.lock");
        assert!(
            store
                .create(&lock, b"{}".to_vec(), &PutOptions::default())
                .await
                .unwrap()
        );
        assert!(
            !store
                .create(&lock, b"{}".to_vec(), &PutOptions::default())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn listing_finds_every_object_under_a_prefix_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::new(dir.path());
        for k in [
            "job/a/2.json",
            "job/a/1.json",
            "job/b/x/3.json",
            "jobs/4.json",
            "other/5",
        ] {
            s.put(
                &uri(&format!("s3://bkt/{k}")),
                b"x".to_vec(),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        }
        let keys = |p: &str| {
            let s = s.clone();
            let p = uri(p);
            async move {
                s.list(&p)
                    .await
                    .unwrap()
                    .iter()
                    .map(|u| u.key().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            keys("s3://bkt/job/").await,
            ["job/a/1.json", "job/a/2.json", "job/b/x/3.json"]
        );
        assert_eq!(
            keys("s3://bkt/job").await.len(),
            4,
            "a prefix, not a folder"
        );
        assert!(keys("s3://bkt/nothing/").await.is_empty());
        assert_eq!(
            keys("s3://bkt/job/a/1").await,
            ["job/a/1.json"],
            "a name's start"
        );
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
                matches!(store.path_of(&uri(bad)), Err(StoreErrorKind::UnsafeKey)),
                "{bad}"
            );
        }
        assert_eq!(
            store.path_of(&uri("s3://bucket/a/b")).unwrap(),
            Path::new("/tmp/root/bucket/a/b")
        );
    }
}
