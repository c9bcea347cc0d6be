//! The lab as tests use it: one moto per process, one proxy (and AWS account) per test.
//!
//! [`Lab::shared`] starts moto once per process (a process-wide `OnceCell`; moto dies with the
//! process). [`Lab::session`] starts a fresh, in-process [`RealismProxy`] in front of it that
//! makes every call as a new 12-digit account (`x-moto-account-id`), so tests running in
//! parallel on one moto never see each other's resources, counters or rate-limit buckets.
//! S3 bucket names are global across accounts, as on AWS: tests must pick unique ones.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_types::SdkConfig;
use tokio::sync::OnceCell;

use crate::error::LabError;
use crate::moto::MotoServer;
use crate::proxy::{ProxyHandle, ProxyOptions, RealismProxy};

static SHARED: OnceCell<Lab> = OnceCell::const_new();
static NEXT_ACCOUNT: AtomicU64 = AtomicU64::new(1);
/// Session accounts are `BASE + n`: 12 digits, never moto's default `123456789012`.
const ACCOUNT_BASE: u64 = 200_000_000_000;

/// A running moto shared by the sessions of this process.
#[derive(Debug)]
pub struct Lab {
    moto: MotoServer,
}

impl Lab {
    /// The process's lab, starting moto (and installing it, the first time on a machine) on
    /// first use.
    ///
    /// # Errors
    ///
    /// As [`MotoServer::start`]; a failed start is retried by the next caller.
    pub async fn shared() -> Result<&'static Lab, LabError> {
        SHARED
            .get_or_try_init(|| async {
                let moto = tokio::task::spawn_blocking(MotoServer::start)
                    .await
                    .map_err(|e| {
                        LabError::io(
                            "starting moto on a blocking thread",
                            std::io::Error::other(e),
                        )
                    })??;
                Ok(Lab { moto })
            })
            .await
    }

    /// A session on the shared lab with default proxy options (AWS's real limits).
    ///
    /// # Errors
    ///
    /// As [`Lab::shared`] and [`RealismProxy::start`].
    pub async fn session() -> Result<LabSession, LabError> {
        Self::session_with(ProxyOptions::default()).await
    }

    /// A session on the shared lab with the given options; its account is always a fresh one.
    ///
    /// # Errors
    ///
    /// As [`Lab::shared`] and [`RealismProxy::start`].
    pub async fn session_with(opts: ProxyOptions) -> Result<LabSession, LabError> {
        Lab::shared().await?.new_session(opts).await
    }

    /// A new proxy in front of this lab's moto, as a new account.
    ///
    /// # Errors
    ///
    /// As [`RealismProxy::start`].
    pub async fn new_session(&self, opts: ProxyOptions) -> Result<LabSession, LabError> {
        let n = NEXT_ACCOUNT.fetch_add(1, Ordering::Relaxed);
        let account_id = format!("{:012}", ACCOUNT_BASE + n);
        let proxy = RealismProxy::start(
            self.moto.addr(),
            ProxyOptions {
                account_id: Some(account_id.clone()),
                ..opts
            },
        )
        .await?;
        Ok(LabSession { proxy, account_id })
    }

    /// The moto server.
    pub fn moto(&self) -> &MotoServer {
        &self.moto
    }
}

/// One test's view of the lab: its own proxy and account.
#[derive(Debug)]
pub struct LabSession {
    proxy: ProxyHandle,
    account_id: String,
}

impl LabSession {
    /// The proxy's endpoint, for the SDK's endpoint override.
    pub fn endpoint(&self) -> String {
        self.proxy.endpoint()
    }

    /// The account this session's calls are made as.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The session's proxy: counters and fault rules.
    pub fn proxy(&self) -> &ProxyHandle {
        &self.proxy
    }

    /// SDK configuration for `region` through this session's proxy: static test credentials,
    /// no retries (`pilotlight_aws::sdk::static_sdk_config`). S3 clients built from it need
    /// `force_path_style(true)`.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        pilotlight_aws::sdk::static_sdk_config(&self.endpoint(), region).await
    }

    /// An EC2 client for `region` through this session's proxy.
    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config(region).await)
    }

    /// An RDS client for `region` through this session's proxy.
    pub async fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&self.sdk_config(region).await)
    }

    /// Every service's client for `region` through this session's proxy.
    pub async fn clients(&self, region: &str) -> crate::clients::AwsClients {
        crate::clients::AwsClients::new(&self.sdk_config(region).await)
    }
}
