//! Metrics of the reconcilers (`pilotlight_reconcile_*`, `pilotlight_network_*`). See
//! `docs/metrics.md`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcilerLabels {
    pub reconciler: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub reconciler: &'static str,
    /// `success`, `cancelled`, `paused` (restore mode stopped a primary reader) or an error
    /// kind.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    pub kind: &'static str,
    /// `create`, `update`, `adopt`, `delete`.
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CopyLabels {
    pub kind: &'static str,
    /// `started`, `completed`, `failed`, `deleted`.
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpoLabels {
    pub kind: &'static str,
    /// The tier number (1–9).
    pub tier: String,
}

type HistogramFamily = Family<ReconcilerLabels, Histogram, fn() -> Histogram>;

/// Reconciler metrics.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    pub runs: Family<RunLabels, Counter>,
    pub duration: HistogramFamily,
    pub last_success: Family<ReconcilerLabels, Gauge<f64, AtomicU64>>,
    pub network_mirrored: Family<KindLabels, Gauge>,
    pub network_orphaned: Family<KindLabels, Gauge>,
    pub network_unmirrored_routes: Gauge,
    pub network_changes: Family<ChangeLabels, Counter>,
    pub copy_events: Family<CopyLabels, Counter>,
    pub copy_bytes: Family<KindLabels, Counter>,
    pub copy_queue: Family<RpoLabels, Gauge>,
    pub copy_in_flight: Family<RpoLabels, Gauge>,
    pub rpo_worst: Family<RpoLabels, Gauge>,
    pub rpo_median: Family<RpoLabels, Gauge>,
    pub rpo_past_target: Family<RpoLabels, Gauge>,
    pub rpo_never_copied: Family<RpoLabels, Gauge>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl EngineMetrics {
    /// Creates and registers the metrics under the given (`pilotlight`-prefixed) registry.
    pub fn register(registry: &mut Registry) -> EngineMetrics {
        let m = EngineMetrics {
            runs: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            last_success: Family::default(),
            network_mirrored: Family::default(),
            network_orphaned: Family::default(),
            network_unmirrored_routes: Gauge::default(),
            network_changes: Family::default(),
            copy_events: Family::default(),
            copy_bytes: Family::default(),
            copy_queue: Family::default(),
            copy_in_flight: Family::default(),
            rpo_worst: Family::default(),
            rpo_median: Family::default(),
            rpo_past_target: Family::default(),
            rpo_never_copied: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("reconcile");
        r.register(
            "runs",
            "Reconcile runs by reconciler and outcome",
            m.runs.clone(),
        );
        r.register(
            "duration_seconds",
            "Duration of reconcile runs",
            m.duration.clone(),
        );
        r.register(
            "last_success_timestamp_seconds",
            "Unix time of each reconciler's last successful run",
            m.last_success.clone(),
        );
        let n = registry.sub_registry_with_prefix("network");
        n.register(
            "mirrored_resources",
            "Primary network resources with a DR counterpart, by kind",
            m.network_mirrored.clone(),
        );
        n.register(
            "orphaned_resources",
            "DR network resources whose primary source is gone, by kind",
            m.network_orphaned.clone(),
        );
        n.register(
            "unmirrored_routes",
            "Primary routes recorded but not mirrored (NAT, peering, transit)",
            m.network_unmirrored_routes.clone(),
        );
        n.register(
            "changes",
            "Changes the network mirror made in the DR region, by kind and action",
            m.network_changes.clone(),
        );
        let c = registry.sub_registry_with_prefix("copy");
        c.register(
            "events",
            "Copies started, completed, failed and deleted by retention, by kind",
            m.copy_events.clone(),
        );
        c.register_with_unit(
            "copied",
            "Bytes of sources whose DR copy completed, by kind",
            prometheus_client::registry::Unit::Bytes,
            m.copy_bytes.clone(),
        );
        c.register(
            "queue_depth",
            "Protected resources with a newer source waiting for a copy slot, by kind and tier",
            m.copy_queue.clone(),
        );
        c.register(
            "in_flight",
            "Copies in flight to the DR region, by kind and tier",
            m.copy_in_flight.clone(),
        );
        let r = registry.sub_registry_with_prefix("rpo");
        r.register_with_unit(
            "worst_lag",
            "Worst RPO lag (now minus the creation time of the source behind the newest DR copy) of copied resources, by kind and tier",
            prometheus_client::registry::Unit::Seconds,
            m.rpo_worst.clone(),
        );
        r.register_with_unit(
            "median_lag",
            "Median (lower) RPO lag of copied resources, by kind and tier",
            prometheus_client::registry::Unit::Seconds,
            m.rpo_median.clone(),
        );
        r.register(
            "past_target_resources",
            "Resources whose RPO lag exceeds their tier's target (never-copied included), by kind and tier",
            m.rpo_past_target.clone(),
        );
        r.register(
            "never_copied_resources",
            "Protected resources with no completed DR copy yet, by kind and tier",
            m.rpo_never_copied.clone(),
        );
        m
    }

    pub fn unregistered() -> EngineMetrics {
        EngineMetrics::register(&mut Registry::default())
    }
}
