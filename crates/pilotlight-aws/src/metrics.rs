//! Metrics of AWS calls (`pilotlight_aws_*`). Label values come from closed sets: the service
//! and operation names pilotlight's own code uses, the two configured regions, and
//! [`crate::ErrorKind`] outcomes. See `docs/metrics.md`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one AWS call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: &'static str,
    pub operation: &'static str,
    pub region: String,
    /// `ok` or an [`crate::ErrorKind`] name.
    pub outcome: &'static str,
}

/// Labels of an operation, without outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub service: &'static str,
    pub operation: &'static str,
    pub region: String,
}

type HistogramFamily = Family<OpLabels, Histogram, fn() -> Histogram>;

/// The AWS call metrics.
#[derive(Debug, Clone)]
pub struct AwsMetrics {
    pub calls: Family<CallLabels, Counter>,
    pub duration: HistogramFamily,
    pub throttle_wait: Family<OpLabels, Counter<f64, AtomicU64>>,
    pub throttled: Family<OpLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl AwsMetrics {
    /// Creates the metrics and registers them (prefix `pilotlight_aws_` is added by the caller's
    /// sub-registry: pass the registry prefixed with `pilotlight`).
    pub fn register(registry: &mut Registry) -> AwsMetrics {
        let m = AwsMetrics {
            calls: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            throttle_wait: Family::default(),
            throttled: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("aws");
        r.register(
            "calls",
            "AWS API calls by service, operation, region and outcome",
            m.calls.clone(),
        );
        r.register(
            "call_duration_seconds",
            "Latency of AWS API calls, including SDK retries",
            m.duration.clone(),
        );
        r.register(
            "throttle_wait_seconds",
            "Time spent waiting on pilotlight's own token buckets before AWS calls",
            m.throttle_wait.clone(),
        );
        r.register(
            "throttled_responses",
            "Calls that AWS answered with a throttling error after the SDK's retries",
            m.throttled.clone(),
        );
        m
    }

    /// Metrics registered nowhere (for tools and tests that do not export them).
    pub fn unregistered() -> AwsMetrics {
        AwsMetrics::register(&mut Registry::default())
    }
}
