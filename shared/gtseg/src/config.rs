//! Settings from the environment, read once at the edge (Lambda `main` or `gtseg`) and passed
//! in. Every variable the product reads is listed in [`ENV_HELP`] and in the README.

/// The help text for every environment variable (shown by `gtseg --help`).
pub const ENV_HELP: &str = "\
ENVIRONMENT:
  LABEL_CATEGORY_CONFIG   s3:// URI or local path of a label category configuration file: pins
                          the label list for every job (default: each job's own
                          LabelCategoryConfigS3Uri, from DescribeLabelingJob). Read once.
                          A consolidation event's labelCategories still come first.
  MAX_PIXELS              Largest worker mask accepted, in pixels (default 100000000).
  MAX_PAYLOAD_BYTES       Largest payload or annotation object read, in bytes (default 268435456).
  MAX_ANSWERS_PER_IMAGE   Worker answers used per image; extras are excluded (default 16, max 254).
  MAX_THREADS             CPU threads for decoding a batch (default: every available core).
  MAX_MEMORY_MB           The memory a batch may use, in MB (default: the Lambda function's
                          memory, AWS_LAMBDA_FUNCTION_MEMORY_SIZE, else 2048).
  LOW_AGREEMENT_THRESHOLD Mean pairwise agreement below which an image's report says
                          low-agreement (default 0.8).
  CONSOLIDATION_ALGORITHM majority (default): per-pixel plurality, as Ground Truth does.
                          weighted: the majority, overturned where the votes of reliable
                          workers rule its class out; reliability is estimated over the
                          whole batch (Dawid-Skene EM).
  ASSUME_JOB_ROLE         true: read the payload, the answers and the job's label configuration,
                          and write the masks, as the job's role (default false).
  ALLOWED_BUCKETS         Comma-separated buckets; when set, every S3 read and write outside them
                          is refused (default: no restriction).
  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3
                          S3-compatible endpoint; path-style addressing is used when set.
  S3_TIMEOUT_SECONDS      How long an S3 call waits for an answer's headers (default 20); an
                          attempt gets 3 times as long, a call with its retries 8 times.
  AWS_ENDPOINT_URL_SAGEMAKER
                          SageMaker endpoint for DescribeLabelingJob (else AWS_ENDPOINT_URL).
  AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...
                          The standard AWS environment, used when no --store is given.
  AWS_LAMBDA_LOG_LEVEL, AWS_LAMBDA_LOG_FORMAT, RUST_LOG
                          Log level and format (JSON or text); logs go to stderr.";

/// A variable is set to something that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {name}={value:?} is invalid: {expected}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What it should be.
    pub expected: &'static str,
}

/// Bounds that keep hostile or broken input cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_PIXELS`: the largest worker mask accepted, in pixels.
    pub max_pixels: u64,
    /// `MAX_PAYLOAD_BYTES`: the largest payload or answer object read, in bytes.
    pub max_payload_bytes: u64,
    /// `MAX_ANSWERS_PER_IMAGE`: answers used per image; further ones are excluded.
    pub max_answers_per_image: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_payload_bytes: 256 << 20,
            max_answers_per_image: 16,
        }
    }
}

/// Everything the functions read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `LABEL_CATEGORY_CONFIG`: an `s3://` URI or a local path.
    pub label_category_config: Option<String>,
    /// `MAX_PIXELS`, `MAX_PAYLOAD_BYTES` and `MAX_ANSWERS_PER_IMAGE`.
    pub limits: Limits,
    /// True when `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3` is set: use path-style requests.
    pub endpoint_override: bool,
    /// `S3_TIMEOUT_SECONDS`: how long an S3 call waits for an answer's headers.
    pub s3_timeout: std::time::Duration,
    /// `AWS_ENDPOINT_URL_SAGEMAKER`: where `DescribeLabelingJob` goes instead of SageMaker.
    pub sagemaker_endpoint: Option<String>,
    /// `ASSUME_JOB_ROLE`: read the payload and answers, and write the masks, as the event's
    /// `roleArn` instead of the function's own role.
    pub assume_job_role: bool,
    /// `ALLOWED_BUCKETS`: when set, every read and write must be in one of these buckets.
    pub allowed_buckets: Option<Vec<String>>,
    /// `MAX_THREADS`: CPU threads for decoding a batch (default: every available core).
    pub threads: usize,
    /// `MAX_MEMORY_MB`, else `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`: the memory a batch may use,
    /// in MiB; its concurrency and buffers are sized to fit.
    pub memory_mb: u64,
    /// `LOW_AGREEMENT_THRESHOLD`: mean pairwise agreement below which an image is flagged.
    pub low_agreement_threshold: f64,
    /// `CONSOLIDATION_ALGORITHM`: how the workers' masks are fused.
    pub algorithm: Algorithm,
}

/// How the workers' masks of an image are fused (`CONSOLIDATION_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Per-pixel plurality with a neighbourhood tie-break ([`crate::fuzzing::Majority`]).
    #[default]
    Majority,
    /// Votes weighed by each worker's reliability, estimated over the batch
    /// ([`crate::CrowdModel`]).
    Weighted,
}

impl Algorithm {
    /// Every algorithm, the default first.
    pub const ALL: [Self; 2] = [Self::Majority, Self::Weighted];

    /// The name in the environment, on the command line and in the metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Majority => "majority",
            Self::Weighted => "weighted",
        }
    }
}

/// A name that is no algorithm's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a consolidation algorithm: use majority or weighted")]
pub struct UnknownAlgorithm(pub String);

impl std::str::FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// An algorithm by its [`Algorithm::name`], in any case, spaces around ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownAlgorithm(text.to_owned()))
    }
}

impl Default for Config {
    /// What an empty environment gives.
    fn default() -> Self {
        Self {
            label_category_config: None,
            limits: Limits::default(),
            endpoint_override: false,
            sagemaker_endpoint: None,
            s3_timeout: std::time::Duration::from_secs(DEFAULT_S3_TIMEOUT_SECS),
            assume_job_role: false,
            allowed_buckets: None,
            threads: cores(),
            memory_mb: DEFAULT_MEMORY_MB,
            low_agreement_threshold: 0.8,
            algorithm: Algorithm::Majority,
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (so tests need not touch the process environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Limits::default();
        let num = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError {
                        name,
                        value: v,
                        expected: "a whole number within range",
                    }),
                },
            }
        };
        Ok(Self {
            label_category_config: get("LABEL_CATEGORY_CONFIG").filter(|v| !v.trim().is_empty()),
            limits: Limits {
                max_pixels: num("MAX_PIXELS", d.max_pixels, 1 << 40)?,
                max_payload_bytes: num("MAX_PAYLOAD_BYTES", d.max_payload_bytes, 1 << 40)?,
                max_answers_per_image: num(
                    "MAX_ANSWERS_PER_IMAGE",
                    d.max_answers_per_image as u64,
                    254,
                )? as usize,
            },
            sagemaker_endpoint: get("AWS_ENDPOINT_URL_SAGEMAKER").filter(|v| !v.trim().is_empty()),
            s3_timeout: std::time::Duration::from_secs(num(
                "S3_TIMEOUT_SECONDS",
                DEFAULT_S3_TIMEOUT_SECS,
                3600,
            )?),
            endpoint_override: get("AWS_ENDPOINT_URL").is_some()
                || get("AWS_ENDPOINT_URL_S3").is_some(),
            allowed_buckets: allowed_buckets(get("ALLOWED_BUCKETS"))?,
            threads: num("MAX_THREADS", cores() as u64, 1024)? as usize,
            memory_mb: match get("MAX_MEMORY_MB").filter(|v| !v.trim().is_empty()) {
                Some(_) => num("MAX_MEMORY_MB", DEFAULT_MEMORY_MB, 1 << 20)?,
                None => num(
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                    DEFAULT_MEMORY_MB,
                    1 << 20,
                )?,
            },
            low_agreement_threshold: match get("LOW_AGREEMENT_THRESHOLD")
                .filter(|v| !v.trim().is_empty())
            {
                None => 0.8,
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(t) if (0.0..=1.0).contains(&t) => t,
                    _ => {
                        return Err(ConfigError {
                            name: "LOW_AGREEMENT_THRESHOLD",
                            value: v,
                            expected: "a number from 0 to 1",
                        });
                    }
                },
            },
            algorithm: match get("CONSOLIDATION_ALGORITHM").filter(|v| !v.trim().is_empty()) {
                None => Algorithm::default(),
                Some(v) => v.parse().map_err(|_| ConfigError {
                    name: "CONSOLIDATION_ALGORITHM",
                    value: v.clone(),
                    expected: "majority or weighted",
                })?,
            },
            assume_job_role: match get("ASSUME_JOB_ROLE")
                .map(|v| v.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("" | "false" | "0" | "no") => false,
                Some("true" | "1" | "yes") => true,
                Some(_) => {
                    return Err(ConfigError {
                        name: "ASSUME_JOB_ROLE",
                        value: get("ASSUME_JOB_ROLE").unwrap_or_default(),
                        expected: "true or false",
                    });
                }
            },
        })
    }
}

/// `S3_TIMEOUT_SECONDS` when not set.
const DEFAULT_S3_TIMEOUT_SECS: u64 = 20;

/// The memory assumed outside Lambda when `MAX_MEMORY_MB` is not set, in MiB.
const DEFAULT_MEMORY_MB: u64 = 2048;

/// The cores this process may use (Lambda: about one vCPU per 1769 MB of memory).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `a,b, c` → `["a", "b", "c"]`; unset or blank → no restriction. An empty entry (`,`,
/// `a,,b`) or one that is not a bucket name (`b/`) is refused rather than read as "no
/// restriction" or as a name that matches nothing.
fn allowed_buckets(value: Option<String>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(v) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let list: Vec<String> = v.split(',').map(|b| b.trim().to_owned()).collect();
    if list.iter().any(|b| !crate::uri::valid_bucket(b)) {
        return Err(ConfigError {
            name: "ALLOWED_BUCKETS",
            value: v,
            expected: "comma-separated bucket names, none empty",
        });
    }
    Ok(Some(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.limits, Limits::default());
        assert!(!c.endpoint_override);
        assert_eq!(c.allowed_buckets, None);
        let c = Config::from_lookup(|k| match k {
            "MAX_PIXELS" => Some("1000".into()),
            "AWS_ENDPOINT_URL_S3" => Some("http://127.0.0.1:1".into()),
            "LABEL_CATEGORY_CONFIG" => Some("s3://b/l.json".into()),
            "ALLOWED_BUCKETS" => Some(" in-bucket, out-bucket ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.limits.max_pixels, 1000);
        assert!(!c.assume_job_role);
        assert_eq!(
            c.allowed_buckets,
            Some(vec!["in-bucket".to_owned(), "out-bucket".to_owned()])
        );
        assert!(
            Config::from_lookup(|k| (k == "ASSUME_JOB_ROLE").then(|| "TRUE".into()))
                .unwrap()
                .assume_job_role
        );
        assert!(c.endpoint_override);
        assert_eq!(c.algorithm, Algorithm::Majority);
        let weighted = |k: &str| (k == "CONSOLIDATION_ALGORITHM").then(|| " Weighted".into());
        assert_eq!(
            Config::from_lookup(weighted).unwrap().algorithm,
            Algorithm::Weighted
        );
        assert_eq!(c.label_category_config.as_deref(), Some("s3://b/l.json"));
    }

    #[test]
    fn algorithms_are_found_by_their_names_and_only_by_them() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            assert_eq!(a.name().to_uppercase().parse::<Algorithm>(), Ok(a));
        }
        let e = "best".parse::<Algorithm>().unwrap_err();
        assert!(e.to_string().contains("majority or weighted"), "{e}");
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        for (k, v) in [
            ("ASSUME_JOB_ROLE", "maybe"),
            ("ALLOWED_BUCKETS", "ok,../etc"),
            ("ALLOWED_BUCKETS", ","),
            ("ALLOWED_BUCKETS", "b/"),
            ("ALLOWED_BUCKETS", "a,,b"),
            ("MAX_MEMORY_MB", "0"),
            ("LOW_AGREEMENT_THRESHOLD", "1.5"),
            ("CONSOLIDATION_ALGORITHM", "best"),
            ("MAX_PIXELS", "lots"),
            ("MAX_ANSWERS_PER_IMAGE", "255"),
            ("MAX_PAYLOAD_BYTES", "0"),
        ] {
            let e = Config::from_lookup(|q| (q == k).then(|| v.to_owned())).unwrap_err();
            assert_eq!(e.name, k);
            assert!(e.to_string().contains(k));
        }
    }
}
