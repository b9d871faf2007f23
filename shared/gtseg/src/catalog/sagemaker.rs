//! SageMaker's `DescribeLabelingJob`, called as its JSON API: one POST signed with SigV4
//! (`aws-sigv4`), sent through the AWS SDK's own HTTP connector.
//!
//! The whole of `aws-sdk-sagemaker` would do the same for one operation at the cost of a much
//! larger build and binary (see `docs/performance.md` for the measurement). Throttling,
//! timeouts, network failures and 5xx answers are retried here, as the SDK would.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::{JobCatalog, JobDescription, JobError, JobErrorKind, parse_job_arn};

/// Attempts per call (the first and two retries), as the SDK's standard retry mode.
const ATTEMPTS: u32 = 3;
/// The first retry's delay; each further one doubles it.
const BACKOFF: Duration = Duration::from_millis(200);
/// Bounds on one attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// `DescribeLabelingJob` against SageMaker (or any endpoint that speaks its JSON API).
#[derive(Clone)]
pub struct SageMakerCatalog {
    conf: Arc<aws_types::SdkConfig>,
    /// `AWS_ENDPOINT_URL_SAGEMAKER` (else `AWS_ENDPOINT_URL`, else SageMaker's own endpoint
    /// in the job's region).
    endpoint: Option<String>,
    /// Built on first use, inside the runtime that uses it (its connections belong to it).
    connector: Arc<OnceLock<SharedHttpConnector>>,
}

impl std::fmt::Debug for SageMakerCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SageMakerCatalog")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SageMakerCatalog {
    /// A catalog signing with `conf`'s credentials. `endpoint` overrides SageMaker's own
    /// endpoint (`AWS_ENDPOINT_URL_SAGEMAKER`); `conf`'s endpoint (`AWS_ENDPOINT_URL`) comes
    /// next.
    pub fn new(conf: &aws_types::SdkConfig, endpoint: Option<String>) -> Self {
        let endpoint = endpoint.or_else(|| conf.endpoint_url().map(str::to_owned));
        Self {
            conf: Arc::new(conf.clone()),
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            connector: Arc::default(),
        }
    }

    fn connector(&self) -> Result<&SharedHttpConnector, JobErrorKind> {
        if let Some(c) = self.connector.get() {
            return Ok(c);
        }
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build();
        let built = aws_smithy_http_client::default_connector(&settings, None)
            .ok_or_else(|| JobErrorKind::NoCredentials("no HTTPS connector is built in".into()))?;
        Ok(self.connector.get_or_init(|| built))
    }

    /// One signed attempt.
    async fn attempt(&self, region: &str, name: &str) -> Result<JobDescription, JobErrorKind> {
        let provider = self
            .conf
            .credentials_provider()
            .ok_or_else(|| JobErrorKind::NoCredentials("no credentials provider".into()))?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| JobErrorKind::NoCredentials(DisplayErrorContext(&e).to_string()))?;
        let identity: Identity = creds.into();
        let url = match &self.endpoint {
            Some(e) => format!("{e}/"),
            None if region.starts_with("cn-") => {
                format!("https://api.sagemaker.{region}.amazonaws.com.cn/")
            }
            None => format!("https://api.sagemaker.{region}.amazonaws.com/"),
        };
        let body = serde_json::json!({ "LabelingJobName": name }).to_string();
        let malformed = |e: String| JobErrorKind::Malformed(e);
        let mut req = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "SageMaker.DescribeLabelingJob")
            .body(body.into_bytes())
            .map_err(|e| JobErrorKind::NoCredentials(format!("bad endpoint {url}: {e}")))?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("sagemaker")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| JobErrorKind::NoCredentials(e.to_string()))?
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(req.body()),
        )
        .map_err(|e| JobErrorKind::NoCredentials(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| JobErrorKind::NoCredentials(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);
        let req = HttpRequest::try_from(req.map(SdkBody::from))
            .map_err(|e| JobErrorKind::NoCredentials(e.to_string()))?;

        let call = self.connector()?.call(req);
        let resp = tokio::time::timeout(ATTEMPT_TIMEOUT, call)
            .await
            .map_err(|_| {
                JobErrorKind::Unavailable(format!("no answer within {ATTEMPT_TIMEOUT:?}"))
            })?
            .map_err(|e| JobErrorKind::Unavailable(DisplayErrorContext(&e).to_string()))?;
        let status = resp.status().as_u16();
        let error_type = resp.headers().get("x-amzn-errortype").map(str::to_owned);
        let bytes =
            tokio::time::timeout(ATTEMPT_TIMEOUT, ByteStream::new(resp.into_body()).collect())
                .await
                .map_err(|_| JobErrorKind::Unavailable("the answer's body stalled".into()))?
                .map_err(|e| JobErrorKind::Unavailable(DisplayErrorContext(&e).to_string()))?
                .to_vec();
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()));
        }
        Err(error_kind(status, error_type.as_deref(), &bytes))
    }
}

/// An error answer of SageMaker's JSON protocol as what to do about it. The code comes from
/// the `x-amzn-ErrorType` header, else the body's `code` or `__type`, without a namespace
/// (`…#`) or a suffix (`:…`).
fn error_kind(status: u16, header: Option<&str>, body: &[u8]) -> JobErrorKind {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let raw = header
        .or_else(|| json.get("code").and_then(|v| v.as_str()))
        .or_else(|| json.get("__type").and_then(|v| v.as_str()))
        .unwrap_or("");
    let code = raw.split(':').next().unwrap_or(raw);
    let code = code.rsplit('#').next().unwrap_or(code);
    let message = ["message", "Message", "errorMessage"]
        .iter()
        .find_map(|k| json.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("");
    let said = format!("HTTP {status} {code}: {message}");
    let lower = message.to_ascii_lowercase();
    match code {
        "ResourceNotFound" | "ResourceNotFoundException" => JobErrorKind::NotFound,
        // SageMaker also answers a missing job this way.
        "ValidationException"
            if lower.contains("could not find") || lower.contains("does not exist") =>
        {
            JobErrorKind::NotFound
        }
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => JobErrorKind::Throttled(said),
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "MissingAuthenticationTokenException" => JobErrorKind::AccessDenied(said),
        _ if status == 429 => JobErrorKind::Throttled(said),
        _ if status == 403 => JobErrorKind::AccessDenied(said),
        _ if status >= 500 => JobErrorKind::Unavailable(said),
        _ => JobErrorKind::Rejected(said),
    }
}

impl JobCatalog for SageMakerCatalog {
    async fn describe(&self, job_arn: &str) -> Result<JobDescription, JobError> {
        let (region, name) =
            parse_job_arn(job_arn).ok_or_else(|| JobError::new(job_arn, JobErrorKind::BadArn))?;
        let mut delay = BACKOFF;
        let mut attempt = 1;
        loop {
            match self.attempt(region, name).await {
                Ok(job) => return Ok(job),
                Err(kind @ (JobErrorKind::Throttled(_) | JobErrorKind::Unavailable(_)))
                    if attempt < ATTEMPTS =>
                {
                    tracing::warn!(job = job_arn, attempt, error = %JobError::new(job_arn, kind), "DescribeLabelingJob failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(kind) => return Err(JobError::new(job_arn, kind)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_classified_by_their_code() {
        let k = |status, header, body: &str| error_kind(status, header, body.as_bytes());
        assert!(matches!(
            k(400, Some("ResourceNotFound:http://internal"), "{}"),
            JobErrorKind::NotFound
        ));
        assert!(matches!(
            k(400, None, r#"{"__type": "com.amazonaws.sagemaker#AccessDeniedException", "Message": "no"}"#),
            JobErrorKind::AccessDenied(m) if m.contains("AccessDeniedException") && m.contains("no")
        ));
        assert!(matches!(
            k(400, None, r#"{"__type": "ThrottlingException"}"#),
            JobErrorKind::Throttled(_)
        ));
        assert!(matches!(k(503, None, ""), JobErrorKind::Unavailable(_)));
        assert!(matches!(
            k(
                400,
                None,
                r#"{"__type": "ValidationException", "message": "Could not find labeling job"}"#
            ),
            JobErrorKind::NotFound
        ));
        assert!(matches!(
            k(
                400,
                None,
                r#"{"__type": "ValidationException", "message": "1 validation error"}"#
            ),
            JobErrorKind::Rejected(_)
        ));
    }
}
