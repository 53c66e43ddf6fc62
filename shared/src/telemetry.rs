//! Logging set-up shared by every binary.

use tracing_subscriber::EnvFilter;

/// JSON lines on Lambda (CloudWatch parses them), compact text elsewhere; the level
/// comes from `RUST_LOG` (default `info`).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,dynoxide=error"));
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if on_lambda {
        builder.json().without_time().try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests, an embedding process) keeps the first subscriber.
    drop(result);
}
