//! SDK configuration shared by every function: explicit retries and timeouts that
//! end well inside the Lambda timeout (60 s in template.yaml), so a slow AWS call
//! surfaces as a retryable error instead of a killed invocation.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecs::config::SharedHttpClient;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Attempts per call, including the first; throttling backs off exponentially.
pub const MAX_ATTEMPTS: u32 = 4;
/// One attempt may take this long…
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// …and one call, with its retries, this long.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// Loads region, credentials and `AWS_ENDPOINT_URL` from the environment, as
/// the Lambda runtime and the local emulator both provide them.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(timeouts())
        .load()
        .await
}

pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// HTTPS with rustls on ring, shared by every client of a function.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
