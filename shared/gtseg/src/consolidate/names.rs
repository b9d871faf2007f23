//! Names and dates as Ground Truth expects them: object file names from dataset object ids,
//! job names from ARNs, and `creation-date`.

use std::time::{SystemTime, UNIX_EPOCH};

/// An empty `datasetObjectId`: no name can be made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the datasetObjectId is empty")]
pub struct InvalidId;

/// The longest file name made from an id, its `.png` included: within the 255 bytes of
/// common file systems, and leaving room for the output prefix within S3's 1024-byte keys.
pub const MAX_FILE_NAME: usize = 204;

/// The file name of an image's mask: the id itself when it is a plain token of
/// `[A-Za-z0-9._-]` (not starting with `.`), else its bytes percent-encoded so the name can
/// neither leave the output folder nor collide with a plain id. A name that would be longer
/// than [`MAX_FILE_NAME`] keeps its readable start and ends with `~` and a hash of the whole id
/// (`~` is never in a plain or encoded name otherwise), so it is deterministic and distinct.
pub fn object_file_name(id: &str) -> Result<String, InvalidId> {
    if id.is_empty() {
        return Err(InvalidId);
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    let mut stem = String::with_capacity(id.len().min(MAX_FILE_NAME));
    for (i, b) in id.bytes().enumerate() {
        if plain(b) && !(i == 0 && b == b'.') {
            stem.push(char::from(b));
        } else {
            stem.push_str(&format!("%{b:02X}"));
        }
    }
    const EXT: &str = ".png";
    if stem.len() + EXT.len() > MAX_FILE_NAME {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(id.as_bytes());
        let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        // The readable start, not cut inside a %XX escape.
        let mut keep = MAX_FILE_NAME - EXT.len() - 1 - hex.len();
        while stem.as_bytes()[..keep].ends_with(b"%")
            || stem.as_bytes()[..keep].get(keep.wrapping_sub(2)) == Some(&b'%')
        {
            keep -= 1;
        }
        stem.truncate(keep);
        stem.push('~');
        stem.push_str(&hex);
    }
    stem.push_str(EXT);
    Ok(stem)
}

/// `labeling-job/<name>` from a labeling-job ARN.
pub fn job_name(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    if resource.starts_with("labeling-job/") {
        resource.to_owned()
    } else {
        format!(
            "labeling-job/{}",
            resource.rsplit('/').next().unwrap_or(resource)
        )
    }
}

/// UTC as naive ISO 8601 with microseconds, as Ground Truth writes `creation-date`.
pub fn format_creation_date(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (H. Hinnant), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn creation_date_is_naive_utc_with_microseconds() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_687_200_123_456);
        assert_eq!(format_creation_date(t), "2026-11-26T10:00:00.123456");
        assert_eq!(
            format_creation_date(UNIX_EPOCH),
            "1970-01-01T00:00:00.000000"
        );
        assert_eq!(
            format_creation_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000"
        );
    }

    #[test]
    fn job_name_comes_from_the_arn() {
        assert_eq!(
            job_name("arn:aws:sagemaker:us-east-1:111122223333:labeling-job/street-scenes"),
            "labeling-job/street-scenes"
        );
        assert_eq!(job_name("street-scenes"), "labeling-job/street-scenes");
    }

    #[test]
    fn plain_ids_are_kept_and_others_cannot_escape() {
        assert_eq!(object_file_name("0").unwrap(), "0.png");
        assert_eq!(object_file_name("img_01.a-b").unwrap(), "img_01.a-b.png");
        assert_eq!(object_file_name("../../x").unwrap(), "%2E.%2F..%2Fx.png");
        assert_eq!(object_file_name("a/b").unwrap(), "a%2Fb.png");
        assert_eq!(object_file_name(".hidden").unwrap(), "%2Ehidden.png");
        assert_eq!(
            object_file_name("a%2Fb").unwrap(),
            "a%252Fb.png",
            "no collision with a/b"
        );
        assert!(object_file_name("").is_err());
        for id in ["../../x", "a/b", "..", "/", "é", "a\\b"] {
            let f = object_file_name(id).unwrap();
            assert!(
                !f.contains('/') && !f.contains('\\') && !f.starts_with('.'),
                "{id} → {f}"
            );
        }
    }

    #[test]
    fn long_ids_get_short_distinct_deterministic_names() {
        let ids = [
            "x".repeat(600),
            format!("{}y", "x".repeat(599)),
            "é".repeat(400),
            format!("{}/{}", "a".repeat(300), "b".repeat(300)),
        ];
        let names: Vec<String> = ids.iter().map(|i| object_file_name(i).unwrap()).collect();
        for (id, name) in ids.iter().zip(&names) {
            assert!(name.len() <= MAX_FILE_NAME, "{} bytes", name.len());
            assert!(name.ends_with(".png") && name.contains('~'), "{name}");
            assert!(!name.contains('/') && !name.starts_with('.'));
            assert_eq!(object_file_name(id).unwrap(), *name, "deterministic");
            // The readable start is whole escapes only.
            let stem = name.split('~').next().unwrap();
            assert!(stem.bytes().rev().take(2).all(|b| b != b'%'), "{stem}");
        }
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        // Short ids keep their plain or encoded names.
        let short = "x".repeat(200);
        assert_eq!(object_file_name(&short).unwrap(), format!("{short}.png"));
    }
}
