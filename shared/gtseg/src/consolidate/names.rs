//! Names and dates as Ground Truth expects them: object file names from dataset object ids,
//! job names from ARNs, and `creation-date`.

use std::time::{SystemTime, UNIX_EPOCH};

/// A `datasetObjectId` that is empty or longer than 512 bytes: no key can be made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the datasetObjectId is empty or longer than 512 bytes")]
pub struct InvalidId;

/// The file name of an image's mask: the id itself when it is a plain token of
/// `[A-Za-z0-9._-]` (not starting with `.`), else its bytes percent-encoded so the name can
/// neither leave the output folder nor collide with a plain id.
pub fn object_file_name(id: &str) -> Result<String, InvalidId> {
    if id.is_empty() || id.len() > 512 {
        return Err(InvalidId);
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    if id.bytes().all(plain) && !id.starts_with('.') {
        return Ok(format!("{id}.png"));
    }
    let mut out = String::with_capacity(id.len() * 3 + 4);
    for (i, b) in id.bytes().enumerate() {
        if plain(b) && !(i == 0 && b == b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".png");
    Ok(out)
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
        assert!(object_file_name(&"x".repeat(513)).is_err());
        for id in ["../../x", "a/b", "..", "/", "é", "a\\b"] {
            let f = object_file_name(id).unwrap();
            assert!(
                !f.contains('/') && !f.contains('\\') && !f.starts_with('.'),
                "{id} → {f}"
            );
        }
    }
}
