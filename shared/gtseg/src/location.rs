//! Where a file that the tools read or write lives: an object in the store (`s3://bucket/key`)
//! or a local path. With a local store (`--store DIR`), a path inside `DIR` is that store's
//! object, so a user may name an object either way.
//!
//! Every read here is bounded by the bytes actually read, not by the size a file reports:
//! `/dev/zero` or a file that grows while it is read fails at the limit.

use std::path::{Component, Path, PathBuf};

use crate::store::{ObjectReader, ObjectStore, StoreError, limited};
use crate::uri::{S3Uri, UriError};

/// A file the tools read or write: an object in the store, or a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An object: `s3://bucket/key`, or a path inside the local store's folder.
    Object(S3Uri),
    /// A local file outside any store.
    File(PathBuf),
}

/// A location that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// The text starts with `s3://` but is not a usable URI.
    #[error("{text}: {error}")]
    BadUri {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        error: UriError,
    },
    /// A local path where only an object of the store can be used (a folder written to, or
    /// read object by object).
    #[error(
        "{} is a local path, but this must be in the store: give an s3:// URI, or, with --store DIR, a path inside DIR",
        .0.display()
    )]
    NotInStore(PathBuf),
}

/// A read that failed: which file, and why.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The object could not be read from the store.
    #[error("{0}")]
    Store(Box<StoreError>),
    /// The local file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The local file holds more than the limit.
    #[error("{} is over the limit of {max} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        max: u64,
    },
}

impl ReadError {
    /// Whether the file or object does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Store(e) => e.is_not_found(),
            Self::File { error, .. } => error.kind() == std::io::ErrorKind::NotFound,
            Self::TooLarge { .. } => false,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Object(uri) => write!(f, "{uri}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Location {
    /// `text` as a location: an `s3://` URI, else a local path, which is the store's object
    /// when it names one inside `store_root` (the local store's folder, if there is one): a
    /// file under one of its buckets. Any other path is a plain file.
    pub fn parse(text: &str, store_root: Option<&Path>) -> Result<Self, LocationError> {
        if text.starts_with("s3://") {
            return S3Uri::parse(text)
                .map(Self::Object)
                .map_err(|error| LocationError::BadUri {
                    text: text.to_owned(),
                    error,
                });
        }
        let path = PathBuf::from(text);
        let object = store_root
            .and_then(|root| relative_to(&path, root))
            .and_then(|rel| object_of(&rel));
        Ok(object.map_or(Self::File(path), Self::Object))
    }

    /// `text` as a folder of the store (`s3://bucket/prefix`, its trailing slashes dropped, or
    /// a path inside `store_root`).
    pub fn parse_folder(text: &str, store_root: Option<&Path>) -> Result<S3Uri, LocationError> {
        let trimmed = text.trim_end_matches('/');
        Self::parse(if trimmed.is_empty() { text } else { trimmed }, store_root)?.into_object()
    }

    /// The object, or an error saying that a local path cannot be used here.
    pub fn into_object(self) -> Result<S3Uri, LocationError> {
        match self {
            Self::Object(uri) => Ok(uri),
            Self::File(path) => Err(LocationError::NotInStore(path)),
        }
    }

    /// Opens the file or object for reading as it arrives, failing past `max_bytes` read:
    /// what a reader of a large manifest streams.
    pub async fn open<S: ObjectStore>(
        &self,
        store: &S,
        max_bytes: u64,
    ) -> Result<ObjectReader, ReadError> {
        match self {
            Self::Object(uri) => store
                .get_stream(uri, max_bytes)
                .await
                .map_err(|e| ReadError::Store(Box::new(e))),
            Self::File(path) => match tokio::fs::File::open(path).await {
                Ok(file) => Ok(limited(tokio::io::BufReader::new(file), max_bytes)),
                Err(error) => Err(ReadError::File {
                    path: path.clone(),
                    error,
                }),
            },
        }
    }

    /// Reads the whole file or object, failing past `max_bytes` read.
    pub async fn read<S: ObjectStore>(
        &self,
        store: &S,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ReadError> {
        match self {
            Self::Object(uri) => store
                .get(uri, max_bytes)
                .await
                .map_err(|e| ReadError::Store(Box::new(e))),
            Self::File(path) => read_file(path, max_bytes).await,
        }
    }
}

/// Reads a local file whole, failing past `max_bytes` actually read (a file's reported size
/// is not trusted: `/dev/zero` reports 0).
pub async fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let owned = path.to_path_buf();
    let read = tokio::task::spawn_blocking(move || read_bounded(&owned, max_bytes))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    match read {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            max: max_bytes,
        }),
        Err(error) => Err(ReadError::File {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// A file's bytes, or `None` when it holds more than `max_bytes`.
pub(crate) fn read_bounded(path: &Path, max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let hint = file.metadata().map_or(0, |m| m.len()).min(max_bytes);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    // One byte more than allowed, to tell "exactly the limit" from "over it".
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max_bytes).then_some(bytes))
}

/// `path` relative to `root`, when it lies inside it, compared as absolute paths with `.` and
/// `..` resolved by their text (neither needs to exist).
fn relative_to(path: &Path, root: &Path) -> Option<PathBuf> {
    let (path, root) = (absolute(path)?, absolute(root)?);
    path.strip_prefix(&root).ok().map(Path::to_path_buf)
}

/// An absolute path with `.` and `..` resolved lexically.
fn absolute(path: &Path) -> Option<PathBuf> {
    let mut out = std::path::absolute(path).ok()?;
    let mut clean = PathBuf::new();
    for c in out.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    std::mem::swap(&mut out, &mut clean);
    Some(out)
}

/// `bucket/key…` (a path relative to a store's folder) as `s3://bucket/key…`.
fn object_of(rel: &Path) -> Option<S3Uri> {
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (bucket, key) = parts.split_first()?;
    if key.is_empty() {
        return None;
    }
    S3Uri::parse(&format!("s3://{bucket}/{}", key.join("/"))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_paths_and_paths_inside_the_store() {
        let root = Path::new("/data/store");
        assert_eq!(
            Location::parse("s3://b/k.json", Some(root)).unwrap(),
            Location::Object(S3Uri::parse("s3://b/k.json").unwrap())
        );
        assert_eq!(
            Location::parse("/data/store/b/dir/../k.json", Some(root)).unwrap(),
            Location::Object(S3Uri::parse("s3://b/k.json").unwrap())
        );
        assert_eq!(
            Location::parse("/elsewhere/k.json", Some(root)).unwrap(),
            Location::File("/elsewhere/k.json".into())
        );
        assert_eq!(
            Location::parse("/data/store/b/x", None).unwrap(),
            Location::File("/data/store/b/x".into())
        );
        assert_eq!(
            Location::parse("/data/store/notes.txt", Some(root)).unwrap(),
            Location::File("/data/store/notes.txt".into()),
            "a file beside the buckets is a plain file"
        );
        assert!(matches!(
            Location::parse("s3://", None),
            Err(LocationError::BadUri { .. })
        ));
        assert_eq!(
            Location::parse_folder("s3://b/out/", None)
                .unwrap()
                .to_string(),
            "s3://b/out"
        );
        let e = Location::parse_folder("/elsewhere/out/", Some(root)).unwrap_err();
        assert!(e.to_string().contains("--store DIR"), "{e}");
    }

    #[tokio::test]
    async fn local_reads_stop_at_the_limit_whatever_the_file_claims() {
        let e = read_file(Path::new("/dev/zero"), 1000).await.unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { max: 1000, .. }), "{e}");
        let missing = read_file(Path::new("/no/such/file"), 10).await.unwrap_err();
        assert!(missing.is_not_found() && missing.to_string().contains("/no/such/file"));
    }
}
