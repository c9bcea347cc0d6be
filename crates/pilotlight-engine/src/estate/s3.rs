//! The S3 replication watch (SPEC R6): one key per configured bucket.
//!
//! Each cycle checks that the bucket's replication is configured and enabled with an existing
//! destination, and measures the lag by sampling the newest source objects at the destination
//! (`pilotlight_aws::s3::replication_status`) and, where S3 publishes it (replication metrics
//! are opt-in per rule), from S3's own `ReplicationLatency` metric in the primary's CloudWatch;
//! the bucket's lag is the larger of the two. A CloudWatch failure only loses the metric
//! figure for that cycle (logged). The result per bucket is on the [`S3Board`]
//! (`GET /v1/s3`); the metrics aggregate over buckets, so bucket names never become labels.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use pilotlight_aws::cloudwatch::{PrimaryCloudWatch, replication_latency};
use pilotlight_aws::s3::{DrS3, PrimaryS3, ReplicationStatus, replication_status};
use pilotlight_core::config::S3WatchConfig;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::EstateMetrics;
use super::metrics::StateLabels;
use crate::error::ReconcileError;
use crate::scheduler::{Action, Reconciled, Reconciler, backoff};

/// One bucket's latest check.
#[derive(Debug, Clone, Serialize)]
pub struct BucketWatch {
    pub bucket: String,
    /// `ok`, `behind` (lag over `s3.lag_target_secs`) or `misconfigured`.
    pub state: &'static str,
    /// Why the bucket is not `ok`, in words.
    pub reasons: Vec<String>,
    /// The bucket's replication lag in seconds: the larger of the sampled lag and S3's
    /// `ReplicationLatency` metric.
    pub lag_secs: f64,
    pub checked_at_ms: i64,
    pub status: ReplicationStatus,
}

/// The latest check of every watched bucket.
#[derive(Debug, Clone, Default)]
pub struct S3Board {
    inner: Arc<RwLock<BTreeMap<String, BucketWatch>>>,
}

impl S3Board {
    /// Every checked bucket, by name.
    pub fn snapshot(&self) -> Vec<BucketWatch> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn set(&self, watch: BucketWatch) -> Vec<BucketWatch> {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(watch.bucket.clone(), watch);
        map.values().cloned().collect()
    }
}

/// Watches the replication of the configured buckets.
#[derive(Debug)]
pub struct S3WatchReconciler {
    primary: PrimaryS3,
    cloudwatch: PrimaryCloudWatch,
    dr: DrS3,
    settings: S3WatchConfig,
    max_backoff: Duration,
    board: S3Board,
    metrics: EstateMetrics,
}

impl S3WatchReconciler {
    /// A watch over `settings.buckets`.
    pub fn new(
        primary: PrimaryS3,
        cloudwatch: PrimaryCloudWatch,
        dr: DrS3,
        settings: S3WatchConfig,
        max_backoff: Duration,
        board: S3Board,
        metrics: EstateMetrics,
    ) -> S3WatchReconciler {
        S3WatchReconciler {
            primary,
            cloudwatch,
            dr,
            settings,
            max_backoff,
            board,
            metrics,
        }
    }

    /// S3's `ReplicationLatency` for the bucket's first enabled rule, if published.
    async fn metric_latency(&self, status: &ReplicationStatus) -> Option<f64> {
        let (Some(destination), Some(rule)) = (&status.destination_bucket, &status.rule_id) else {
            return None;
        };
        if !status.enabled {
            return None;
        }
        match replication_latency(
            &self.cloudwatch,
            &status.bucket,
            destination,
            rule,
            std::time::SystemTime::now(),
        )
        .await
        {
            Ok(latency) => latency,
            Err(e) => {
                tracing::warn!(
                    bucket = %status.bucket,
                    error = %crate::scheduler::error_chain(&e),
                    "reading S3's ReplicationLatency metric failed; using the sampled lag only"
                );
                None
            }
        }
    }

    fn classify(&self, status: &ReplicationStatus, lag_secs: f64) -> (&'static str, Vec<String>) {
        let mut reasons = Vec::new();
        if !status.configured {
            reasons.push("no replication configuration".to_owned());
        } else if !status.enabled {
            reasons.push("replication rules are disabled".to_owned());
        }
        if status.configured && !status.destination_exists {
            reasons.push(format!(
                "destination bucket {} does not exist",
                status.destination_bucket.as_deref().unwrap_or("(none)")
            ));
        }
        if !reasons.is_empty() {
            return ("misconfigured", reasons);
        }
        let target = self.settings.lag_target_secs as f64;
        if lag_secs > target {
            reasons.push(format!(
                "replication lag {:.0} s is over the {:.0} s target ({} of {} sampled objects missing{})",
                lag_secs,
                target,
                status.missing,
                status.sampled,
                status
                    .metric_latency_secs
                    .map(|m| format!("; S3 reports a replication latency of {m:.0} s"))
                    .unwrap_or_default()
            ));
            return ("behind", reasons);
        }
        ("ok", reasons)
    }
}

#[async_trait]
impl Reconciler for S3WatchReconciler {
    fn name(&self) -> &'static str {
        "s3_replication"
    }

    fn reads_primary(&self) -> bool {
        // The replication configuration is read from the primary bucket.
        true
    }

    fn keys(&self) -> Vec<String> {
        self.settings.buckets.clone()
    }

    async fn reconcile(
        &self,
        key: &str,
        _cancel: &CancellationToken,
    ) -> Result<Reconciled, ReconcileError> {
        let mut status =
            replication_status(&self.primary, &self.dr, key, self.settings.sample_objects).await?;
        status.metric_latency_secs = self.metric_latency(&status).await;
        let lag_secs = status
            .lag_secs
            .max(status.metric_latency_secs.unwrap_or(0.0));
        let (state, reasons) = self.classify(&status, lag_secs);
        let watch = BucketWatch {
            bucket: key.to_owned(),
            state,
            reasons,
            lag_secs,
            checked_at_ms: crate::now_ms(),
            status,
        };
        let report =
            json!({"state": state, "lag_secs": watch.lag_secs, "missing": watch.status.missing});
        let all = self.board.set(watch);
        let mut by_state: BTreeMap<&'static str, i64> =
            BTreeMap::from([("ok", 0), ("behind", 0), ("misconfigured", 0)]);
        let mut worst = 0.0_f64;
        let mut missing = 0_i64;
        for w in &all {
            *by_state.entry(w.state).or_default() += 1;
            worst = worst.max(w.lag_secs);
            missing += i64::from(w.status.missing);
        }
        for (state, n) in by_state {
            self.metrics
                .s3_buckets
                .get_or_create(&StateLabels { state })
                .set(n);
        }
        self.metrics.s3_lag_max.set(worst);
        self.metrics.s3_missing_objects.set(missing);
        Ok(Reconciled {
            action: Action::requeue(Duration::from_secs(self.settings.cycle_secs)),
            report,
        })
    }

    fn error_policy(&self, _key: &str, error: &ReconcileError, failures: u32) -> Action {
        backoff(
            error,
            failures,
            Duration::from_secs(self.settings.cycle_secs.clamp(1, 30)),
            self.max_backoff,
        )
    }
}
