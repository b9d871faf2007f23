//! What an exported image is called and where it goes: its id, from its `source-ref`'s file
//! name, made safe for any file system and unique in the export; its file extension; and its
//! split, a stable hash of its `source-ref` against the split's shares, so that adding images
//! to a job never moves one already exported.

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};

/// The longest id, in bytes (an id becomes a file name with an extension).
const MAX_ID: usize = 100;

/// A split and its share of the images.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Its name (`train`, `val`, …): letters, digits, `_` and `-`.
    pub name: String,
    /// Its share, from 0 to 1.
    pub share: f64,
}

/// A `--split` that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--split {0:?}: expected NAME=SHARE pairs such as train=0.8,val=0.2, with shares that sum to 1 and names of letters, digits, _ and -"
)]
pub struct BadSplit(pub String);

/// `train=0.8,val=0.2` as splits; an empty text is every image in `train`.
pub fn parse_splits(text: &str) -> Result<Vec<Split>, BadSplit> {
    if text.trim().is_empty() {
        return Ok(vec![Split {
            name: "train".into(),
            share: 1.0,
        }]);
    }
    let bad = || BadSplit(text.to_owned());
    let mut splits = Vec::new();
    for part in text.split(',') {
        let (name, share) = part.split_once('=').ok_or_else(bad)?;
        let (name, share) = (name.trim(), share.trim().parse::<f64>().map_err(|_| bad())?);
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok
            || !(0.0..=1.0).contains(&share)
            || splits.iter().any(|s: &Split| s.name == name)
        {
            return Err(bad());
        }
        splits.push(Split {
            name: name.to_owned(),
            share,
        });
    }
    let total: f64 = splits.iter().map(|s| s.share).sum();
    if (total - 1.0).abs() > 1e-6 {
        return Err(bad());
    }
    Ok(splits)
}

/// The split of the image `source_ref`: where its hash falls among the cumulative shares.
pub fn split_of<'a>(source_ref: &str, splits: &'a [Split]) -> &'a str {
    let digest = Sha256::digest(source_ref.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // A number in [0, 1) from the hash's first 53 bits.
    let x = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    let mut edge = 0.0;
    for s in splits {
        edge += s.share;
        if x < edge {
            return &s.name;
        }
    }
    splits.last().map_or("train", |s| &s.name)
}

/// The stem of `source_ref`'s file name, made safe: letters, digits, `.`, `_` and `-` kept,
/// anything else `_`, no leading dot, at most [`MAX_ID`] bytes; `image` when nothing is left.
fn stem_of(source_ref: &str) -> String {
    let file = source_ref.rsplit('/').next().unwrap_or("");
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    let safe: String = safe.chars().take(MAX_ID).collect();
    if safe.is_empty() {
        "image".to_owned()
    } else {
        safe
    }
}

/// The file extension of `source_ref` (lower case, letters and digits only), if it has one.
pub(super) fn extension_of(source_ref: &str) -> Option<String> {
    let file = source_ref.rsplit('/').next()?;
    let (_, ext) = file.rsplit_once('.')?;
    let ok = !ext.is_empty() && ext.len() <= 8 && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| ext.to_ascii_lowercase())
}

/// Every image's id: the safe stem of its file name, and, for stems that two different
/// images share, the stem and the first 8 hex digits of its `source-ref`'s hash. The same
/// images always get the same ids.
pub(super) fn ids(source_refs: &[&str]) -> Vec<String> {
    let stems: Vec<String> = source_refs.iter().map(|s| stem_of(s)).collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in &stems {
        *count.entry(s.as_str()).or_default() += 1;
    }
    stems
        .iter()
        .zip(source_refs)
        .map(|(stem, source)| {
            if count[stem.as_str()] == 1 {
                stem.clone()
            } else {
                let hash = Sha256::digest(source.as_bytes());
                format!(
                    "{stem}-{:02x}{:02x}{:02x}{:02x}",
                    hash[0], hash[1], hash[2], hash[3]
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_unique_and_stable() {
        let refs = [
            "s3://b/a/street-0001.jpg",
            "s3://b/other/street-0001.jpg",
            "s3://b/../../etc/passwd",
            "s3://b/x/\u{1b}[31m bad name.png",
            "s3://b/x/",
            "s3://b/x/.hidden.png",
        ];
        let ids = ids(&refs);
        assert!(ids[0].starts_with("street-0001-") && ids[1].starts_with("street-0001-"));
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[2], "passwd");
        assert_eq!(ids[3], "__31m_bad_name");
        assert_eq!(ids[4], "image");
        assert_eq!(ids[5], "hidden");
        assert!(ids.iter().all(|i| !i.contains('/') && !i.starts_with('.')));
        assert_eq!(super::ids(&refs), ids, "the same ids every time");
        assert_eq!(extension_of("s3://b/a.JPG").as_deref(), Some("jpg"));
        assert_eq!(extension_of("s3://b/a"), None);
    }

    #[test]
    fn splits_depend_on_the_source_alone() {
        let splits = parse_splits("train=0.8,val=0.2").unwrap();
        let refs: Vec<String> = (0..2000).map(|i| format!("s3://b/{i}.png")).collect();
        let first: Vec<&str> = refs.iter().map(|r| split_of(r, &splits)).collect();
        let val = first.iter().filter(|s| **s == "val").count();
        assert!((300..500).contains(&val), "{val} of 2000 in val");
        // Another job of these images and more: the same split for each.
        assert!(
            refs.iter()
                .zip(&first)
                .all(|(r, s)| split_of(r, &splits) == *s)
        );
        assert_eq!(parse_splits("").unwrap()[0].name, "train");
        for bad in [
            "train=0.8",
            "train=0.5,train=0.5",
            "a/b=1",
            "train=x",
            "train=1.5,val=-0.5",
        ] {
            assert!(parse_splits(bad).is_err(), "{bad}");
        }
    }
}
