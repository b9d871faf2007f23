//! What the two Lambda binaries share, and nothing else: the log set-up and the translation
//! of a failed invocation into Lambda's error response.

use gtseg::ServiceError;
use lambda_runtime::Diagnostic;
use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};

/// Sets up logging as Lambda expects: `AWS_LAMBDA_LOG_FORMAT=JSON` gives one JSON object a
/// line, anything else plain text; `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, else INFO) sets
/// the level. Unlike lambda_runtime's own set-up, text carries no terminal colour codes,
/// which CloudWatch would show as garbage.
pub fn init_tracing() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|s| s.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        );
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The Lambda error response of a failed invocation (logged once, on one line): a short,
/// stable `errorType` and the whole message.
pub fn diagnostic(e: &ServiceError, function: &str) -> Diagnostic {
    let (error_type, error_message) = e.log_for_lambda(function);
    Diagnostic {
        error_type,
        error_message,
    }
}
