//! The AWS SDK configuration every client of a function shares: loaded once per
//! process (region, credentials, the HTTP client and its TLS roots), however many
//! clients a function builds.

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();

/// From the environment (on Lambda: `AWS_REGION` and the function role's credentials).
pub async fn sdk_config() -> &'static SdkConfig {
    CONFIG.get_or_init(aws_config::load_from_env).await
}
