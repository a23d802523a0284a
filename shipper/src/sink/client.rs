//! Building the SDK client: the default chain for production (optionally assuming a role on
//! top of it), static credentials and an explicit endpoint for tests and emulators. SDK
//! retries are off: `deliver` retries itself, forever, with its own backoff and metrics.
//!
//! The SDK's HTTP client honours `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` on its own (behavior
//! version 2025-08-07 and later), for CloudWatch Logs and STS alike.

use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::IdentityCache;
use aws_sdk_cloudwatchlogs::config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs::config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::config::{Credentials, Region};

use crate::config::AssumeRole;

/// Connect timeout: never longer than the whole call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn timeouts(request_timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(request_timeout)
        .operation_attempt_timeout(request_timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
        .build()
}

/// Assumed-role credentials are renewed this long (less up to half of it, the SDK's jitter)
/// before they expire: a node whose clock is a little off, or an STS that is slow for a
/// while, never sends with expired credentials.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// A client from the SDK's default chains: region, credentials (env, web identity/IRSA, EKS
/// Pod Identity, profile, IMDS) and endpoint (`AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`, `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`).
/// With `assume_role`, those credentials only call STS `AssumeRole` and the role's
/// credentials sign every CloudWatch Logs call. Each call times out after
/// `request_timeout`. `region` (from the config file) is used when the environment names
/// none.
pub async fn client_from_env(
    request_timeout: Duration,
    region: Option<String>,
    assume_role: Option<&AssumeRole>,
) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(request_timeout));
    if let Some(region) = region {
        let chain =
            aws_config::meta::region::RegionProviderChain::default_provider().or_else(Region::new(region));
        loader = loader.region(chain);
    }
    let shared = loader.load().await;
    client_from_config(&shared, assume_role).await
}

/// The client for `shared`, signing with `assume_role`'s credentials when set. The role's
/// STS client shares `shared`'s endpoint resolution (`AWS_ENDPOINT_URL_STS`, regional STS),
/// timeouts and proxy; its failures surface as credential errors on the CloudWatch call,
/// which `deliver` retries like any other (the data waits in the spool).
pub(crate) async fn client_from_config(shared: &SdkConfig, assume_role: Option<&AssumeRole>) -> Client {
    let Some(role) = assume_role else {
        return Client::new(shared);
    };
    let mut provider = AssumeRoleProvider::builder(role.role_arn.clone())
        .session_name(role.session_name.clone())
        .configure(shared);
    if let Some(id) = &role.external_id {
        provider = provider.external_id(id.clone());
    }
    let provider = provider.build().await;
    let config = aws_sdk_cloudwatchlogs::config::Builder::from(shared)
        .credentials_provider(provider)
        .identity_cache(IdentityCache::lazy().buffer_time(REFRESH_BEFORE_EXPIRY).build())
        .build();
    Client::from_conf(config)
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
