//! SDK configuration per region.
//!
//! One [`aws_types::SdkConfig`] per region, built from [`AwsSettings`]. The HTTP client is given
//! explicitly (hyper 1 + rustls with ring) because the SDK crates are built without their
//! default features.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials as SdkCredentials;
use aws_smithy_http_client::tls;
use aws_types::SdkConfig;
use aws_types::region::Region;

/// The SDK's retry strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Exponential backoff with jitter and a retry quota.
    Standard,
    /// Standard plus client-side rate limiting.
    Adaptive,
}

/// Where credentials come from.
#[derive(Clone)]
pub enum Credentials {
    /// Static keys (read from files by the caller).
    Static {
        access_key_id: String,
        secret_access_key: String,
    },
    /// The SDK's default chain (environment, profile, web identity, ECS, IMDS).
    DefaultChain,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Static { .. } => f.write_str("Static([redacted])"),
            Credentials::DefaultChain => f.write_str("DefaultChain"),
        }
    }
}

/// How to reach AWS; the daemon builds it from its config.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Send every call here instead of AWS's endpoints (the lab, or a VPC endpoint).
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (needed for an IP endpoint).
    pub s3_force_path_style: bool,
    pub credentials: Credentials,
    pub retry_mode: RetryMode,
    /// Total attempts per call, including the first.
    pub max_attempts: u32,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
}

impl AwsSettings {
    /// Settings for the lab: static test credentials and the given endpoint.
    pub fn lab(endpoint_url: &str) -> AwsSettings {
        AwsSettings {
            endpoint_url: Some(endpoint_url.to_owned()),
            s3_force_path_style: true,
            credentials: Credentials::Static {
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
            },
            retry_mode: RetryMode::Standard,
            max_attempts: 3,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(60),
        }
    }
}

/// Builds the SDK configuration for one region.
pub async fn sdk_config(settings: &AwsSettings, region: &str) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let retry = match settings.retry_mode {
        RetryMode::Standard => RetryConfig::standard(),
        RetryMode::Adaptive => RetryConfig::adaptive(),
    }
    .with_max_attempts(settings.max_attempts.max(1));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .operation_timeout(settings.operation_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .http_client(http_client)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Credentials::Static {
        access_key_id,
        secret_access_key,
    } = &settings.credentials
    {
        loader = loader.credentials_provider(SdkCredentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "pilotlight-static",
        ));
    }
    loader.load().await
}

/// The lab's SDK configuration for tools and tests that seed or inspect the lab directly:
/// static test credentials, the given endpoint, and no retries (so injected faults surface).
pub async fn static_sdk_config(endpoint_url: &str, region: &str) -> SdkConfig {
    let mut settings = AwsSettings::lab(endpoint_url);
    settings.max_attempts = 1;
    sdk_config(&settings, region).await
}
