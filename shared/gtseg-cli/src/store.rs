//! The store a command works on: a local folder with `--store DIR`, else S3 through the
//! standard AWS environment (set up by the library, checked here once so that a user without
//! a region or credentials gets one line that says what to set).

use std::path::Path;

use anyhow::Context as _;
use gtseg::{AnyStore, Aws, Config, LocalStore, Location, S3Uri};

/// The AWS set-up, or why it cannot serve `needs` (what the command does with AWS, in words:
/// "gtseg review reads S3 without --store").
pub async fn aws(needs: &str) -> anyhow::Result<Aws> {
    let config = Config::from_env()?;
    let aws = Aws::load(&config).await.require_region(needs)?;
    Ok(aws.require_credentials(needs).await?)
}

/// The local store with `--store DIR`, else S3 (`needs` says why S3 is needed, for the
/// error when it cannot be used).
pub async fn open(dir: Option<&Path>, needs: &str) -> anyhow::Result<AnyStore> {
    match dir {
        Some(dir) => {
            anyhow::ensure!(
                dir.is_dir(),
                "--store {}: no such folder (it holds the buckets, as DIR/bucket/key)",
                dir.display()
            );
            Ok(AnyStore::Local(LocalStore::new(dir)))
        }
        None => {
            let aws = aws(needs).await.map_err(|e| {
                anyhow::anyhow!("{e:#}; or give --store DIR to work on a local folder")
            })?;
            Ok(AnyStore::S3(aws.s3()))
        }
    }
}

/// A file argument (`flag`): an `s3://` URI, a path inside `--store`, or a local path.
pub fn file(text: &str, flag: &str, store: Option<&Path>) -> anyhow::Result<Location> {
    Location::parse(text, store).with_context(|| format!("{flag} {text}"))
}

/// A folder argument (`flag`) of the store: an `s3://` prefix, or a path inside `--store`.
pub fn folder(text: &str, flag: &str, store: Option<&Path>) -> anyhow::Result<S3Uri> {
    Location::parse_folder(text, store).with_context(|| format!("{flag} {text}"))
}
