//! Metrics of the inventory, the S3 replication watch, readiness and the RTO estimate
//! (`pilotlight_inventory_*`, `pilotlight_s3_*`, `pilotlight_readiness_*`, `pilotlight_plan_*`).
//! Label values are closed sets (check names, tiers, outcomes); buckets, resources and items
//! are in the admin API, never in labels. See `docs/metrics.md`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `outcome` of an inventory capture: `written` or `unchanged`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// A resource class of the inventory (`instances`, `load_balancers`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: &'static str,
}

/// A readiness check's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub check: &'static str,
}

/// A bucket state of the S3 watch: `ok`, `behind`, `misconfigured`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

/// A restore tier.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    pub tier: String,
}

/// The estate metrics.
#[derive(Debug, Clone)]
pub struct EstateMetrics {
    pub inventory_captures: Family<OutcomeLabels, Counter>,
    pub inventory_resources: Family<ClassLabels, Gauge>,
    pub inventory_version: Gauge,
    pub inventory_captured: Gauge<f64, AtomicU64>,
    pub inventory_bytes: Gauge,
    pub s3_lag_max: Gauge<f64, AtomicU64>,
    pub s3_buckets: Family<StateLabels, Gauge>,
    pub s3_missing_objects: Gauge,
    pub readiness_ready: Gauge,
    pub readiness_check_ok: Family<CheckLabels, Gauge>,
    pub readiness_failing: Family<CheckLabels, Gauge>,
    pub plan_rto_estimate: Gauge<f64, AtomicU64>,
    pub plan_lower_bound: Gauge<f64, AtomicU64>,
    pub plan_tier_end: Family<TierLabels, Gauge<f64, AtomicU64>>,
    pub plan_problems: Gauge,
    pub capacity_shortfalls: Gauge,
}

impl EstateMetrics {
    /// Registers every metric under `registry` (prefixed `pilotlight` by the caller).
    pub fn register(registry: &mut Registry) -> EstateMetrics {
        let m = EstateMetrics {
            inventory_captures: Family::default(),
            inventory_resources: Family::default(),
            inventory_version: Gauge::default(),
            inventory_captured: Gauge::default(),
            inventory_bytes: Gauge::default(),
            s3_lag_max: Gauge::default(),
            s3_buckets: Family::default(),
            s3_missing_objects: Gauge::default(),
            readiness_ready: Gauge::default(),
            readiness_check_ok: Family::default(),
            readiness_failing: Family::default(),
            plan_rto_estimate: Gauge::default(),
            plan_lower_bound: Gauge::default(),
            plan_tier_end: Family::default(),
            plan_problems: Gauge::default(),
            capacity_shortfalls: Gauge::default(),
        };
        let i = registry.sub_registry_with_prefix("inventory");
        i.register(
            "captures",
            "Inventory captures by outcome: a new document written, or unchanged",
            m.inventory_captures.clone(),
        );
        i.register(
            "resources",
            "Resources in the latest inventory document, by class",
            m.inventory_resources.clone(),
        );
        i.register(
            "version",
            "Store version of the latest inventory document",
            m.inventory_version.clone(),
        );
        i.register(
            "captured_timestamp_seconds",
            "Unix time the latest successful capture finished (written or unchanged)",
            m.inventory_captured.clone(),
        );
        i.register_with_unit(
            "document",
            "Size of the latest inventory document (gzip)",
            prometheus_client::registry::Unit::Bytes,
            m.inventory_bytes.clone(),
        );
        let s = registry.sub_registry_with_prefix("s3");
        s.register(
            "replication_lag_max_seconds",
            "Worst replication lag over the watched buckets",
            m.s3_lag_max.clone(),
        );
        s.register(
            "replication_buckets",
            "Watched buckets by state: ok, behind (lag over target), misconfigured",
            m.s3_buckets.clone(),
        );
        s.register(
            "replication_missing_objects",
            "Sampled source objects missing at their destination, over all watched buckets",
            m.s3_missing_objects.clone(),
        );
        let r = registry.sub_registry_with_prefix("readiness");
        r.register(
            "ready",
            "1 when every readiness check passes: a restore could start now",
            m.readiness_ready.clone(),
        );
        r.register(
            "check_ok",
            "1 when the readiness check passes, by check",
            m.readiness_check_ok.clone(),
        );
        r.register(
            "failing_items",
            "Items failing each readiness check",
            m.readiness_failing.clone(),
        );
        let p = registry.sub_registry_with_prefix("plan");
        p.register(
            "rto_estimate_seconds",
            "Estimated restore time of the whole estate under the configured API limits",
            m.plan_rto_estimate.clone(),
        );
        p.register(
            "lower_bound_seconds",
            "Restore time the API limits alone impose on the whole estate",
            m.plan_lower_bound.clone(),
        );
        p.register(
            "tier_end_seconds",
            "Estimated time from the start of a restore until the tier is up",
            m.plan_tier_end.clone(),
        );
        p.register(
            "problems",
            "Plan items that cannot be restored as things stand (missing copies, mappings)",
            m.plan_problems.clone(),
        );
        p.register(
            "capacity_shortfalls",
            "DR quotas the whole-estate capacity plan exceeds",
            m.capacity_shortfalls.clone(),
        );
        m
    }
}
