//! S3 URIs: the one place where `s3://bucket/key` strings are parsed and validated.
//!
//! Everything that reaches a store goes through [`S3Uri::parse`], so a `file://`,
//! `https://` or malformed URI can never be read or written. This module does no I/O.

use std::fmt;

/// Why a string is not a usable `s3://bucket/key` URI.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    /// The string does not start with `s3://` (for example `https://`, `file://` or a path).
    #[error("`{uri}` is not an s3:// URI; only s3://bucket/key is accepted")]
    NotS3 {
        /// The string.
        uri: String,
    },
    /// The bucket part is empty or not a valid S3 bucket name.
    #[error("`{uri}` has an invalid bucket name `{bucket}` (letters, digits, '.', '_', '-')")]
    BadBucket {
        /// The string.
        uri: String,
        /// Its bucket part.
        bucket: String,
    },
    /// There is no key after the bucket.
    #[error("`{uri}` names a bucket but no object key")]
    NoKey {
        /// The string.
        uri: String,
    },
    /// The key is longer than S3 allows.
    #[error("`{uri}` has a key longer than 1024 bytes")]
    KeyTooLong {
        /// The string.
        uri: String,
    },
}

/// A validated `s3://bucket/key` (or `s3://bucket/prefix` when used as a prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Uri {
    bucket: String,
    key: String,
}

impl S3Uri {
    /// Parses `s3://bucket/key`. The key must be non-empty.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| UriError::NotS3 {
            uri: uri.to_owned(),
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(UriError::BadBucket {
                uri: uri.to_owned(),
                bucket: bucket.to_owned(),
            });
        }
        if key.is_empty() {
            return Err(UriError::NoKey {
                uri: uri.to_owned(),
            });
        }
        if key.len() > 1024 {
            return Err(UriError::KeyTooLong {
                uri: uri.to_owned(),
            });
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key (no leading slash).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// `self` treated as a prefix, joined with a relative `path` by exactly one `/`.
    pub fn join(&self, path: &str) -> Self {
        let base = self.key.trim_end_matches('/');
        let key = format!("{base}/{}", path.trim_start_matches('/'));
        Self {
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// True when `self` lies strictly under the prefix `prefix/` (same bucket).
    pub fn is_under(&self, prefix: &S3Uri) -> bool {
        let p = prefix.key.trim_end_matches('/');
        self.bucket == prefix.bucket
            && self.key.len() > p.len() + 1
            && self.key.starts_with(p)
            && self.key.as_bytes()[p.len()] == b'/'
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Bucket names as S3 has ever allowed them (legacy us-east-1 names may hold upper case and
/// `_`), restricted to what can never act as a path: no `/`, and not `.` or `..`.
pub(crate) fn valid_bucket(b: &str) -> bool {
    (1..=255).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        && !b.bytes().all(|c| c == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        let u = S3Uri::parse("s3://my-bucket/images/0001.jpg").unwrap();
        assert_eq!(u.bucket(), "my-bucket");
        assert_eq!(u.key(), "images/0001.jpg");
        assert_eq!(u.to_string(), "s3://my-bucket/images/0001.jpg");
    }

    #[test]
    fn other_schemes_are_rejected() {
        for bad in [
            "https://b/k",
            "file:///etc/passwd",
            "/tmp/x",
            "S3://bkt/k",
            "",
        ] {
            assert!(
                matches!(S3Uri::parse(bad), Err(UriError::NotS3 { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_buckets_and_missing_keys_are_rejected() {
        assert!(matches!(
            S3Uri::parse("s3://../x"),
            Err(UriError::BadBucket { .. })
        ));
        assert!(matches!(
            S3Uri::parse("s3://./x"),
            Err(UriError::BadBucket { .. })
        ));
        assert!(matches!(
            S3Uri::parse("s3://a%2f/x"),
            Err(UriError::BadBucket { .. })
        ));
        assert!(matches!(
            S3Uri::parse("s3:///x"),
            Err(UriError::BadBucket { .. })
        ));
        assert!(
            S3Uri::parse("s3://Legacy_Bucket/x").is_ok(),
            "pre-2018 us-east-1 names are valid"
        );
        assert!(matches!(
            S3Uri::parse("s3://bucket"),
            Err(UriError::NoKey { .. })
        ));
        assert!(matches!(
            S3Uri::parse("s3://bucket/"),
            Err(UriError::NoKey { .. })
        ));
    }

    #[test]
    fn join_and_is_under() {
        let out = S3Uri::parse("s3://bkt/out/job/annotations/").unwrap();
        let k = out.join("consolidated-annotation/output/0.png");
        assert_eq!(
            k.key(),
            "out/job/annotations/consolidated-annotation/output/0.png"
        );
        assert!(k.is_under(&out));
        assert!(
            !S3Uri::parse("s3://bkt/out/jobX/a")
                .unwrap()
                .is_under(&S3Uri::parse("s3://bkt/out/job").unwrap())
        );
        assert!(!S3Uri::parse("s3://other/out/job/a").unwrap().is_under(&out));
    }
}
