//! Building the SDK client: the default chain for production, static credentials and an
//! explicit endpoint for tests and emulators. SDK retries are off: `deliver` retries itself,
//! forever, with its own backoff and metrics.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs::config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::config::{Credentials, Region};

/// Connect timeout: never longer than the whole call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn timeouts(request_timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(request_timeout)
        .operation_attempt_timeout(request_timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
        .build()
}

/// A client from the SDK's default chains: region, credentials (env, web identity/IRSA,
/// profile, IMDS) and endpoint (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`).
/// Each call times out after `request_timeout`. `region` (from the config file) is used when
/// the environment names none.
pub async fn client_from_env(request_timeout: Duration, region: Option<String>) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(request_timeout));
    if let Some(region) = region {
        let chain =
            aws_config::meta::region::RegionProviderChain::default_provider().or_else(Region::new(region));
        loader = loader.region(chain);
    }
    let shared = loader.load().await;
    Client::new(&shared)
}

/// A client for `endpoint` (an emulator, a gateway, a test server) in `region` with fixed
/// dummy credentials. Each call times out after `request_timeout`.
pub fn client_for_endpoint(endpoint: &str, region: &str, request_timeout: Duration) -> Client {
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(request_timeout))
        .build();
    Client::from_conf(config)
}
