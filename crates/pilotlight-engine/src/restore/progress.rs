//! Progress and the RTO report of a restore run (D11).
//!
//! Everything here is computed from the journal — the run row, its steps and its items — so
//! any replica answers `GET /v1/restores/{id}` the same, during the run and after it, and a
//! resumed run reports what every execution did:
//!
//! - [`report`] builds a [`RestoreReport`]: the run, a per-tier timeline with instance counts
//!   (planned from the stored plan; launched, running and failed from the EC2 executor's
//!   `instance_launch` items), every step with its timing, item counts by state and by kind,
//!   plan-B substitutions, the API calls and throttling answers of the run, the measured RTO
//!   next to the plan's estimate, and the failed items with their last error.
//! - [`publish`] runs beside an executing run and sets the [`RestoreMetrics`] gauges every
//!   [`PUBLISH_EVERY`] from the same computation plus the live call tally, and saves the tally
//!   every [`SAVE_TALLY_EVERY`] with [`save_tally`].
//! - [`save_tally`] writes the run's calls to the `stats` step (tier 0, kind `stats`, detail
//!   `{"calls": {"service:Operation": {"calls", "throttled", "errors", "attempts"}}}`): the tally of this
//!   execution added to what earlier executions of the run had saved. The first save of an
//!   execution reads the stored figures once as its base, so saving again (periodically, then at
//!   the end) never counts a call twice. A daemon killed between two saves loses at most the
//!   calls of the last [`SAVE_TALLY_EVERY`].
//!
//! Label values of the gauges are closed sets: tiers `1`–`9`, the four instance states, the
//! item kinds in [`ITEM_KINDS`] (others count as `other`), the item states, and the
//! `service:Operation` names of the SDK operations pilotlight calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use pilotlight_aws::{CallTally, OpTally};
use pilotlight_store::{
    ItemState, RestoreItem, RestoreRun, RestoreStep, RunMode, RunState, StepState, Store,
    StoreError,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::RunCtx;
use crate::now_ms;

/// How often [`publish`] sets the gauges.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// How often [`publish`] saves the call tally to the journal.
pub const SAVE_TALLY_EVERY: Duration = Duration::from_secs(5);

/// The step that holds the run's call tally.
pub const STATS_STEP: &str = "stats";

/// The item kinds the `pilotlight_restore_items` gauge names; any other kind counts as `other`.
pub const ITEM_KINDS: &[&str] = &[
    "instance_launch",
    "volume",
    "attachment",
    "load_balancer",
    "load_balancer_active",
    "health_check",
    "target_group",
    "listener",
    "registration",
    "db_instance",
    "db_cluster",
    "db_subnet_group",
    "dns_batch",
    "dns_vpc_association",
    "hook",
    "teardown",
];

/// The item kind the EC2 executor journals each `RunInstances` as.
const LAUNCH_KIND: &str = "instance_launch";

/// Instance states of `pilotlight_restore_tier_instances`.
const INSTANCE_STATES: [&str; 4] = ["planned", "launched", "running", "failed"];

/// Tier label values (tiers are 1–9).
const TIERS: std::ops::RangeInclusive<u8> = 1..=9;

/// `tier` and `state` of an instance count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierStateLabels {
    /// `1`–`9`.
    pub tier: String,
    /// `planned`, `launched`, `running` or `failed`.
    pub state: &'static str,
}

/// `kind` and `state` of an item count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemLabels {
    /// One of [`ITEM_KINDS`] or `other`.
    pub kind: &'static str,
    /// `pending`, `requested`, `done` or `failed`.
    pub state: &'static str,
}

/// An AWS operation, `service:Operation`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

/// The restore gauges (`pilotlight_restore_*`, see `docs/metrics.md`). `Default` gives
/// unregistered gauges (tests); [`RestoreMetrics::register`] the daemon's.
#[derive(Debug, Clone, Default)]
pub struct RestoreMetrics {
    /// `pilotlight_restore_mode`: 1 while a disaster run is active.
    pub mode: Gauge,
    /// `pilotlight_restore_tier_instances{tier,state}`.
    pub tier_instances: Family<TierStateLabels, Gauge>,
    /// `pilotlight_restore_items{kind,state}`.
    pub items: Family<ItemLabels, Gauge>,
    /// `pilotlight_restore_elapsed_seconds`.
    pub elapsed: Gauge<f64, AtomicU64>,
    /// `pilotlight_restore_substitutions`.
    pub substitutions: Gauge,
    /// `pilotlight_restore_calls{operation}`.
    pub calls: Family<OperationLabels, Gauge>,
    /// `pilotlight_restore_calls_throttled{operation}`.
    pub throttled: Family<OperationLabels, Gauge>,
    /// The operations currently exported, so a new run's gauges drop the old run's others.
    published_ops: Arc<Mutex<BTreeSet<String>>>,
}

impl RestoreMetrics {
    /// Creates the gauges and registers them under the given (`pilotlight`-prefixed) registry.
    pub fn register(registry: &mut Registry) -> RestoreMetrics {
        let m = RestoreMetrics::default();
        let r = registry.sub_registry_with_prefix("restore");
        r.register(
            "mode",
            "1 while a disaster run is active (restore mode: reconcilers reading the primary are paused)",
            m.mode.clone(),
        );
        r.register(
            "tier_instances",
            "Instances of the current or last restore run by tier and state (planned, launched, running, failed)",
            m.tier_instances.clone(),
        );
        r.register(
            "items",
            "Journalled AWS mutations of the current or last restore run by kind and state",
            m.items.clone(),
        );
        r.register_with_unit(
            "elapsed",
            "Time since the current or last restore run started (its measured RTO once finished)",
            Unit::Seconds,
            m.elapsed.clone(),
        );
        r.register(
            "substitutions",
            "Plan-B substitutions (other AZ, size or family) of the current or last restore run",
            m.substitutions.clone(),
        );
        r.register(
            "calls",
            "AWS calls of the current or last restore run by operation, every execution of the run",
            m.calls.clone(),
        );
        r.register(
            "calls_throttled",
            "AWS calls of the current or last restore run answered with throttling, by operation",
            m.throttled.clone(),
        );
        m
    }

    /// Sets `pilotlight_restore_mode`.
    pub fn set_mode(&self, active: bool) {
        self.mode.set(i64::from(active));
    }

    /// Sets every gauge of a run from its report and its calls.
    fn set_from(&self, report: &RestoreReport, calls: &BTreeMap<String, OpTally>) {
        for tier in TIERS {
            let progress = report.tiers.iter().find(|t| t.tier == tier);
            let values = progress.map_or([0; 4], |t| {
                [
                    t.instances_planned,
                    t.instances_launched,
                    t.instances_running,
                    t.instances_failed,
                ]
            });
            for (state, value) in INSTANCE_STATES.iter().zip(values) {
                self.tier_instances
                    .get_or_create(&TierStateLabels {
                        tier: tier.to_string(),
                        state,
                    })
                    .set(gauge_value(value));
            }
        }
        let mut items: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for (kind, states) in &report.counts.by_kind {
            let kind = closed_kind(kind);
            for (state, n) in states {
                if let Ok(state) = state.parse::<ItemState>() {
                    *items.entry((kind, state.as_str())).or_default() += n;
                }
            }
        }
        for kind in ITEM_KINDS.iter().copied().chain(["other"]) {
            for state in ItemState::ALL {
                let n = items.get(&(kind, state.as_str())).copied().unwrap_or(0);
                self.items
                    .get_or_create(&ItemLabels {
                        kind,
                        state: state.as_str(),
                    })
                    .set(gauge_value(n));
            }
        }
        self.elapsed.set(report.rto_secs.unwrap_or(0.0));
        self.substitutions
            .set(gauge_value(report.substitutions.len() as u64));
        let mut published = self
            .published_ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (op, tally) in calls {
            let labels = OperationLabels {
                operation: op.clone(),
            };
            self.calls
                .get_or_create(&labels)
                .set(gauge_value(tally.calls));
            self.throttled
                .get_or_create(&labels)
                .set(gauge_value(tally.throttled));
        }
        for gone in published.iter().filter(|op| !calls.contains_key(*op)) {
            let labels = OperationLabels {
                operation: gone.clone(),
            };
            self.calls.remove(&labels);
            self.throttled.remove(&labels);
        }
        *published = calls.keys().cloned().collect();
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn closed_kind(kind: &str) -> &'static str {
    ITEM_KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

/// Publishes the run's progress to the gauges every [`PUBLISH_EVERY`] and saves its call tally
/// every [`SAVE_TALLY_EVERY`], until the task is aborted.
pub async fn publish(ctx: RunCtx, metrics: RestoreMetrics) {
    let mut ticks = tokio::time::interval(PUBLISH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let save_every = (SAVE_TALLY_EVERY.as_millis() / PUBLISH_EVERY.as_millis()).max(1);
    let mut round: u128 = 0;
    loop {
        ticks.tick().await;
        publish_once(&ctx, &metrics).await;
        round += 1;
        if round.is_multiple_of(save_every) {
            save_tally(&ctx).await;
        }
    }
}

/// Sets the gauges once from the journal and the live call tally. Store failures are logged
/// and leave the gauges as they were.
pub async fn publish_once(ctx: &RunCtx, metrics: &RestoreMetrics) {
    if let Err(e) = try_publish(ctx, metrics).await {
        tracing::warn!(run = %ctx.run_id, error = %e, "cannot publish restore progress");
    }
}

async fn try_publish(ctx: &RunCtx, metrics: &RestoreMetrics) -> Result<(), StoreError> {
    let store = ctx.journal.store();
    let active = store.active_runs().await?;
    metrics.set_mode(
        active
            .iter()
            .any(|r| r.mode == RunMode::Disaster && !r.dry_run),
    );
    let Some(run) = store.get_run(&ctx.run_id).await? else {
        return Ok(());
    };
    let planned = PlannedRun::from_plan(&ctx.plan.restore);
    let steps = store.list_steps(&ctx.run_id).await?;
    let items = store.list_items(&ctx.run_id, None).await?;
    let report = build(&run, &planned, &steps, &items, now_ms());
    let calls = {
        let base = base_of(ctx).await?;
        let guard = base.lock().await;
        add(
            guard.calls.as_ref().unwrap_or(&BTreeMap::new()),
            &ctx.tally.snapshot(),
        )
    };
    metrics.set_from(&report, &calls);
    Ok(())
}

/// Saves the run's call tally — this execution's added to what earlier executions saved — to
/// the `stats` step. Store failures are logged (the next save writes the full figures again).
pub async fn save_tally(ctx: &RunCtx) {
    if let Err(e) = try_save_tally(ctx).await {
        tracing::warn!(run = %ctx.run_id, error = %e, "cannot save the restore's call tally");
    }
}

async fn try_save_tally(ctx: &RunCtx) -> Result<(), crate::ReconcileError> {
    let base = base_of(ctx).await?;
    // Held across the write: saves of one execution are ordered, a later one never writes an
    // older snapshot over a newer one.
    let guard = base.lock().await;
    let calls = add(
        guard.calls.as_ref().unwrap_or(&BTreeMap::new()),
        &ctx.tally.snapshot(),
    );
    ctx.journal
        .step(
            STATS_STEP,
            0,
            STATS_STEP,
            StepState::Done,
            &json!({ "calls": calls }),
        )
        .await?;
    drop(guard);
    Ok(())
}

/// The calls earlier executions of a run saved, read once per execution (per [`CallTally`]).
#[derive(Debug)]
struct TallyBase {
    /// The tally of the execution this base belongs to (a weak reference keeps its address
    /// from being reused while the entry exists).
    tally: Weak<CallTally>,
    /// Loaded from the `stats` step on first use.
    calls: Option<BTreeMap<String, OpTally>>,
}

type BaseSlot = Arc<tokio::sync::Mutex<TallyBase>>;

/// Run id → the base of its current execution in this process. Entries of executions that
/// ended (their tally dropped) are pruned when a new one is added.
static BASES: LazyLock<Mutex<HashMap<String, BaseSlot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The loaded base of `ctx`'s execution.
async fn base_of(ctx: &RunCtx) -> Result<BaseSlot, StoreError> {
    let slot = {
        let mut bases = BASES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !bases.contains_key(&ctx.run_id) {
            bases.retain(|_, slot| {
                slot.try_lock()
                    .map_or(true, |base| base.tally.strong_count() > 0)
            });
        }
        bases
            .entry(ctx.run_id.clone())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(TallyBase {
                    tally: Arc::downgrade(&ctx.tally),
                    calls: None,
                }))
            })
            .clone()
    };
    let mut base = slot.lock().await;
    if !std::ptr::eq(base.tally.as_ptr(), Arc::as_ptr(&ctx.tally)) {
        // A new execution of the run in this process: what the last one saved is its base.
        *base = TallyBase {
            tally: Arc::downgrade(&ctx.tally),
            calls: None,
        };
    }
    if base.calls.is_none() {
        let steps = ctx.journal.store().list_steps(&ctx.run_id).await?;
        base.calls = Some(stored_calls(&steps));
    }
    drop(base);
    Ok(slot)
}

/// The calls saved in a run's `stats` step (none when there is no such step).
fn stored_calls(steps: &[RestoreStep]) -> BTreeMap<String, OpTally> {
    let Some(step) = steps.iter().find(|s| s.step_id == STATS_STEP) else {
        return BTreeMap::new();
    };
    let detail: Value = serde_json::from_str(&step.detail_json).unwrap_or(Value::Null);
    let Some(calls) = detail.get("calls").and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    calls
        .iter()
        .map(|(op, t)| {
            let field = |name: &str| t.get(name).and_then(Value::as_u64).unwrap_or(0);
            (
                op.clone(),
                OpTally {
                    calls: field("calls"),
                    throttled: field("throttled"),
                    errors: field("errors"),
                    attempts: field("attempts"),
                },
            )
        })
        .collect()
}

fn add(a: &BTreeMap<String, OpTally>, b: &BTreeMap<String, OpTally>) -> BTreeMap<String, OpTally> {
    let mut out = a.clone();
    for (op, t) in b {
        let e = out.entry(op.clone()).or_default();
        e.calls += t.calls;
        e.throttled += t.throttled;
        e.errors += t.errors;
        e.attempts += t.attempts;
    }
    out
}

/// The progress and RTO report of a run (`GET /v1/restores/{id}`, `pilotlight restore
/// status|watch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub run: RunSummary,
    /// Every tier of the plan (and any tier the journal names), ascending.
    pub tiers: Vec<TierProgress>,
    /// Every step of the run by tier then id, with its timing (the `stats` step excluded).
    pub steps: Vec<StepProgress>,
    /// Items by state and by kind.
    pub counts: ItemCounts,
    /// Items whose detail records a plan-B substitution.
    pub substitutions: Vec<Substitution>,
    /// Calls and throttling answers per `service:Operation`, every execution of the run, as
    /// last saved (every few seconds while it runs).
    pub calls: BTreeMap<String, OpTally>,
    /// Calls answered with throttling (after the SDK's retries), every operation.
    pub throttled: u64,
    /// Attempts the SDK retried (throttled, transient or timed out) before a call succeeded
    /// or gave up, every operation: the pushback AWS gave that the retries absorbed.
    #[serde(default)]
    pub sdk_retries: u64,
    /// Calls, every operation.
    pub api_calls: u64,
    /// Measured RTO: finish minus start, or the time since the start while the run goes on.
    pub rto_secs: Option<f64>,
    /// Whether `rto_secs` is final (the run finished).
    pub rto_final: bool,
    /// The plan's estimate of the whole restore (`schedule.total_secs`).
    pub estimated_secs: Option<f64>,
    /// Items that failed for good, with their last error.
    pub failed_items: Vec<FailedItem>,
    /// For a drill: its RTO per tier, the teardown's time, what it deleted and left.
    #[serde(default)]
    pub drill: Option<crate::drill::DrillSummary>,
}

/// The run's own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub mode: RunMode,
    pub state: RunState,
    pub dry_run: bool,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub error: Option<String>,
}

/// One tier's EC2 progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierProgress {
    pub tier: u8,
    /// The state of the tier's `t<tier>/ec2` step; `running` when items exist without it,
    /// else `pending`.
    pub state: StepState,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Primary instances of the tier in the plan.
    pub instances_planned: u64,
    /// DR instances launched (plan B may launch more, smaller ones than planned).
    pub instances_launched: u64,
    /// DR instances seen running (or healthy).
    pub instances_running: u64,
    /// Instances of launches that failed for good.
    pub instances_failed: u64,
    /// The run's start to the tier's gate (its own RTO), once the tier is up.
    #[serde(default)]
    pub up_after_ms: Option<i64>,
}

/// A step with its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    pub step_id: String,
    pub tier: i32,
    pub kind: String,
    pub state: StepState,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Finish minus start, once finished.
    pub duration_ms: Option<i64>,
    /// The step's detail (JSON object; `null` when unreadable).
    pub detail: Value,
}

/// Item counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    /// Every item state (zeros included) → items.
    pub by_state: BTreeMap<String, u64>,
    /// Kind → state → items, for the kinds present.
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A plan-B substitution, as the executor recorded it in the item's detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Substitution {
    pub item_key: String,
    pub kind: String,
    pub primary_id: String,
    pub dr_id: Option<String>,
    /// The item detail's `substitution` object (e.g. from/to type, AZ, count).
    pub substitution: Value,
}

/// An item that failed for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedItem {
    pub item_key: String,
    pub kind: String,
    pub primary_id: String,
    pub last_error: Option<String>,
}

/// The report of `run` from the journal (`GET /v1/restores/{id}`).
///
/// # Errors
/// The store's error.
pub async fn report(store: &Store, run: &RestoreRun) -> Result<RestoreReport, StoreError> {
    let steps = store.list_steps(&run.id).await?;
    let items = store.list_items(&run.id, None).await?;
    let planned = PlannedRun::from_json(&run.plan_json);
    Ok(build(run, &planned, &steps, &items, now_ms()))
}

/// What the report needs of the plan: instances per tier and the estimate.
#[derive(Debug, Clone, Default, PartialEq)]
struct PlannedRun {
    tiers: BTreeMap<u8, u64>,
    estimated_secs: Option<f64>,
}

/// The parts of a stored `PlanView` the report reads; every field optional, the rest ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PlanJson {
    restore: RestoreJson,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RestoreJson {
    tiers: Vec<TierJson>,
    schedule: Option<ScheduleJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TierJson {
    tier: u8,
    instances: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScheduleJson {
    total_secs: Option<f64>,
}

impl PlannedRun {
    fn from_plan(plan: &pilotlight_core::plan::RestorePlan) -> PlannedRun {
        PlannedRun {
            tiers: plan.tiers.iter().map(|t| (t.tier, t.instances)).collect(),
            estimated_secs: Some(plan.schedule.total_secs),
        }
    }

    /// Reads a stored plan; an unreadable one gives an empty plan (the report then shows what
    /// the journal holds).
    fn from_json(plan_json: &str) -> PlannedRun {
        let plan: PlanJson = serde_json::from_str(plan_json).unwrap_or_default();
        let mut tiers = BTreeMap::new();
        for t in plan.restore.tiers {
            *tiers.entry(t.tier).or_default() += t.instances;
        }
        PlannedRun {
            tiers,
            estimated_secs: plan.restore.schedule.and_then(|s| s.total_secs),
        }
    }
}

/// The tier an item or step id belongs to: `t<tier>/…`.
fn tier_of_step_id(step_id: &str) -> Option<u8> {
    let rest = step_id.strip_prefix('t')?;
    let digits = rest.split('/').next()?;
    digits.parse().ok()
}

/// Instances an `instance_launch` item stands for: `(launched, running, failed)`.
fn launch_counts(item: &RestoreItem, detail: &Value) -> (u64, u64, u64) {
    let ids = detail
        .get("instance_ids")
        .and_then(Value::as_array)
        .map(|a| a.len() as u64);
    let count = detail.get("count").and_then(Value::as_u64);
    if item.state == ItemState::Failed {
        return (0, 0, count.or(ids).unwrap_or(1).max(1));
    }
    let launched = match (ids, item.state) {
        (Some(n), _) if n > 0 => n,
        (_, ItemState::Done) => count.unwrap_or(0),
        _ => 0,
    };
    let state = detail.get("state").and_then(Value::as_str);
    let running = match detail.get("running").and_then(Value::as_u64) {
        Some(n) => n.min(launched),
        None if matches!(state, Some("running" | "healthy")) => launched,
        None => 0,
    };
    (launched, running, 0)
}

fn summary(run: &RestoreRun) -> RunSummary {
    RunSummary {
        id: run.id.clone(),
        mode: run.mode,
        state: run.state,
        dry_run: run.dry_run,
        requested_by: run.requested_by.clone(),
        approved_by: run.approved_by.clone(),
        created_at_ms: run.created_at_ms,
        started_at_ms: run.started_at_ms,
        finished_at_ms: run.finished_at_ms,
        error: run.error.clone(),
    }
}

/// The report from the journal's rows, at `now_ms`.
fn build(
    run: &RestoreRun,
    planned: &PlannedRun,
    steps: &[RestoreStep],
    items: &[RestoreItem],
    now_ms: i64,
) -> RestoreReport {
    // Tiers: the plan's and any the EC2 steps or launch items name.
    let mut tiers: BTreeMap<u8, TierProgress> = BTreeMap::new();
    let blank = |tier: u8| TierProgress {
        tier,
        state: StepState::Pending,
        started_at_ms: None,
        finished_at_ms: None,
        instances_planned: 0,
        instances_launched: 0,
        instances_running: 0,
        instances_failed: 0,
        up_after_ms: None,
    };
    for (&tier, &n) in &planned.tiers {
        tiers
            .entry(tier)
            .or_insert_with(|| blank(tier))
            .instances_planned = n;
    }
    for step in steps.iter().filter(|s| s.kind == "ec2") {
        let Some(tier) = u8::try_from(step.tier)
            .ok()
            .filter(|t| *t > 0)
            .or_else(|| tier_of_step_id(&step.step_id))
        else {
            continue;
        };
        let t = tiers.entry(tier).or_insert_with(|| blank(tier));
        // The tier's own step (`t<tier>/ec2`) wins over finer ones.
        let own = step.step_id == format!("t{tier}/ec2");
        if own || t.started_at_ms.is_none() {
            t.state = step.state;
            t.started_at_ms = step.started_at_ms;
            t.finished_at_ms = step.finished_at_ms;
        }
    }

    let mut by_state: BTreeMap<String, u64> = ItemState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut substitutions = Vec::new();
    let mut failed_items = Vec::new();
    for item in items {
        *by_state.entry(item.state.as_str().to_owned()).or_default() += 1;
        *by_kind
            .entry(item.kind.clone())
            .or_default()
            .entry(item.state.as_str().to_owned())
            .or_default() += 1;
        let detail: Value = serde_json::from_str(&item.detail_json).unwrap_or(Value::Null);
        if let Some(sub) = detail.get("substitution").filter(|v| v.is_object()) {
            substitutions.push(Substitution {
                item_key: item.item_key.clone(),
                kind: item.kind.clone(),
                primary_id: item.primary_id.clone(),
                dr_id: item.dr_id.clone(),
                substitution: sub.clone(),
            });
        }
        if item.state == ItemState::Failed {
            failed_items.push(FailedItem {
                item_key: item.item_key.clone(),
                kind: item.kind.clone(),
                primary_id: item.primary_id.clone(),
                last_error: item.last_error.clone(),
            });
        }
        if item.kind == LAUNCH_KIND {
            let tier = tier_of_step_id(&item.step_id).or_else(|| {
                detail
                    .get("tier")
                    .and_then(Value::as_u64)
                    .and_then(|t| u8::try_from(t).ok())
            });
            if let Some(tier) = tier {
                let (launched, running, failed) = launch_counts(item, &detail);
                let t = tiers.entry(tier).or_insert_with(|| blank(tier));
                t.instances_launched += launched;
                t.instances_running += running;
                t.instances_failed += failed;
                if t.state == StepState::Pending {
                    t.state = StepState::Running;
                }
            }
        }
    }

    for t in tiers.values_mut() {
        if t.state == StepState::Done {
            t.up_after_ms = run
                .started_at_ms
                .zip(t.finished_at_ms)
                .map(|(s, f)| (f - s).max(0));
        }
    }
    let calls = stored_calls(steps);
    // A drill's RTO ends with its restore phase, not with its teardown.
    let restored_at = (run.mode == RunMode::Drill)
        .then(|| steps.iter().find(|s| s.step_id == super::RESTORED_STEP))
        .flatten()
        .and_then(|s| s.finished_at_ms);
    let (rto_secs, rto_final) = match (run.started_at_ms, restored_at.or(run.finished_at_ms)) {
        (Some(s), Some(f)) => (Some((f - s).max(0) as f64 / 1000.0), true),
        (Some(s), None) if run.state.is_active() => {
            (Some((now_ms - s).max(0) as f64 / 1000.0), false)
        }
        _ => (None, false),
    };
    RestoreReport {
        run: summary(run),
        tiers: tiers.into_values().collect(),
        steps: steps
            .iter()
            .filter(|s| s.step_id != STATS_STEP)
            .map(|s| StepProgress {
                step_id: s.step_id.clone(),
                tier: s.tier,
                kind: s.kind.clone(),
                state: s.state,
                started_at_ms: s.started_at_ms,
                finished_at_ms: s.finished_at_ms,
                duration_ms: s.started_at_ms.zip(s.finished_at_ms).map(|(a, b)| b - a),
                detail: serde_json::from_str(&s.detail_json).unwrap_or(Value::Null),
            })
            .collect(),
        counts: ItemCounts { by_state, by_kind },
        substitutions,
        throttled: calls.values().map(|t| t.throttled).sum(),
        sdk_retries: calls.values().map(OpTally::retries).sum(),
        api_calls: calls.values().map(|t| t.calls).sum(),
        calls,
        rto_secs,
        rto_final,
        estimated_secs: planned.estimated_secs,
        failed_items,
        drill: (run.mode == RunMode::Drill).then(|| crate::drill::summary(run, steps, items)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pilotlight_aws::AwsCtx;
    use pilotlight_aws::cache::{CacheMetrics, DescribeCache};
    use pilotlight_store::{NewRun, RunUpdate, StoreOptions};
    use tokio::sync::Semaphore;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::restore::{Journal, PlanView, RestoreHandles};

    async fn store() -> Store {
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    async fn run(store: &Store, id: &str, plan_json: &str) -> RestoreRun {
        let (run, created) = store
            .create_run(&NewRun {
                id: id.to_owned(),
                mode: RunMode::Disaster,
                state: RunState::Pending,
                dry_run: false,
                tiers_json: "[]".to_owned(),
                plan_json: plan_json.to_owned(),
                requested_by: "alice".to_owned(),
                idempotency_key: None,
                created_at_ms: 1_000,
            })
            .await
            .unwrap();
        assert!(created);
        run
    }

    async fn start(store: &Store, run: &RestoreRun, at: i64) -> RestoreRun {
        let mut update = RunUpdate::from(run);
        update.state = RunState::Running;
        update.approved_by = Some("bob".to_owned());
        update.started_at_ms = Some(at);
        store.update_run(&run.id, &update).await.unwrap()
    }

    fn step(run: &str, id: &str, tier: i32, kind: &str, state: StepState) -> RestoreStep {
        RestoreStep {
            run_id: run.to_owned(),
            step_id: id.to_owned(),
            tier,
            kind: kind.to_owned(),
            state,
            started_at_ms: Some(10_000),
            finished_at_ms: (state == StepState::Done).then_some(70_000),
            detail_json: "{}".to_owned(),
        }
    }

    fn item(
        run: &str,
        key: &str,
        step: &str,
        kind: &str,
        state: ItemState,
        detail: Value,
    ) -> RestoreItem {
        RestoreItem {
            run_id: run.to_owned(),
            item_key: key.to_owned(),
            step_id: step.to_owned(),
            kind: kind.to_owned(),
            primary_id: format!("p-{key}"),
            dr_id: (state == ItemState::Done).then(|| format!("dr-{key}")),
            state,
            client_token: None,
            attempts: 1,
            detail_json: detail.to_string(),
            last_error: (state == ItemState::Failed).then(|| "InvalidAMIID.NotFound".to_owned()),
            updated_at_ms: 20_000,
        }
    }

    const PLAN: &str = r#"{"inventory_version": 3, "restore": {
        "tiers": [{"tier": 1, "instances": 4, "groups": []}, {"tier": 2, "instances": 3}],
        "schedule": {"total_secs": 540.5, "tiers": []}}}"#;

    #[tokio::test]
    async fn report_from_hand_written_journal_rows() {
        let store = store().await;
        let r = run(&store, "run-1", PLAN).await;
        let r = start(&store, &r, 5_000).await;
        for s in [
            step("run-1", "t1/ec2", 1, "ec2", StepState::Done),
            step("run-1", "t2/ec2", 2, "ec2", StepState::Running),
            step("run-1", "lb", 0, "lb", StepState::Running),
        ] {
            store.upsert_step(&s).await.unwrap();
        }
        store
            .upsert_step(&RestoreStep {
                detail_json:
                    r#"{"calls": {"ec2:RunInstances": {"calls": 5, "throttled": 2, "errors": 3, "attempts": 9},
                                 "ec2:DescribeInstances": {"calls": 7}}}"#
                        .to_owned(),
                ..step("run-1", STATS_STEP, 0, "stats", StepState::Done)
            })
            .await
            .unwrap();
        let rows = [
            // Tier 1: one launch of 3 running, one plan-B launch of 2 smaller instances for 1.
            item(
                "run-1",
                "launch/t1-a/0",
                "t1/ec2",
                LAUNCH_KIND,
                ItemState::Done,
                json!({"count": 3, "instance_ids": ["i-1", "i-2", "i-3"], "state": "running"}),
            ),
            item(
                "run-1",
                "launch/t1-b/0",
                "t1/ec2",
                LAUNCH_KIND,
                ItemState::Done,
                json!({"count": 2, "instance_ids": ["i-4", "i-5"], "state": "running",
                       "substitution": {"from": "r5.2xlarge", "to": "r5.xlarge", "count": 2}}),
            ),
            // Tier 2: one launched, still pending; one requested with no ids; one failed.
            item(
                "run-1",
                "launch/t2-a/0",
                "t2/ec2",
                LAUNCH_KIND,
                ItemState::Done,
                json!({"count": 1, "instance_ids": ["i-6"], "state": "pending"}),
            ),
            item(
                "run-1",
                "launch/t2-b/0",
                "t2/ec2",
                LAUNCH_KIND,
                ItemState::Requested,
                json!({}),
            ),
            item(
                "run-1",
                "launch/t2-c/0",
                "t2/ec2",
                LAUNCH_KIND,
                ItemState::Failed,
                json!({"count": 1}),
            ),
            // Missing fields are tolerated: a done launch with only a count.
            item(
                "run-1",
                "launch/t3-a/0",
                "t3/ec2",
                LAUNCH_KIND,
                ItemState::Done,
                json!({"count": 2}),
            ),
            item(
                "run-1",
                "lb/web",
                "lb",
                "load_balancer",
                ItemState::Done,
                json!({}),
            ),
            item(
                "run-1",
                "db/orders",
                "rds",
                "db_instance",
                ItemState::Requested,
                json!("not an object"),
            ),
        ];
        for row in &rows {
            store.upsert_item(row).await.unwrap();
        }

        let now = now_ms();
        let rep = report(&store, &r).await.unwrap();
        assert_eq!(rep.run.id, "run-1");
        assert_eq!(rep.run.state, RunState::Running);
        assert_eq!(rep.run.approved_by.as_deref(), Some("bob"));
        assert_eq!(rep.estimated_secs, Some(540.5));
        let tiers: Vec<_> = rep
            .tiers
            .iter()
            .map(|t| {
                (
                    t.tier,
                    t.state,
                    t.instances_planned,
                    t.instances_launched,
                    t.instances_running,
                    t.instances_failed,
                )
            })
            .collect();
        assert_eq!(
            tiers,
            [
                (1, StepState::Done, 4, 5, 5, 0),
                (2, StepState::Running, 3, 1, 0, 1),
                (3, StepState::Running, 0, 2, 0, 0),
            ]
        );
        assert_eq!(rep.tiers[0].started_at_ms, Some(10_000));
        assert_eq!(rep.tiers[0].finished_at_ms, Some(70_000));
        assert_eq!(
            rep.steps.len(),
            3,
            "the stats step is not a step of the restore"
        );
        let t1 = rep.steps.iter().find(|s| s.step_id == "t1/ec2").unwrap();
        assert_eq!(t1.duration_ms, Some(60_000));
        assert_eq!(rep.counts.by_state["done"], 5);
        assert_eq!(rep.counts.by_state["requested"], 2);
        assert_eq!(rep.counts.by_state["failed"], 1);
        assert_eq!(rep.counts.by_state["pending"], 0);
        assert_eq!(rep.counts.by_kind[LAUNCH_KIND]["done"], 4);
        assert_eq!(rep.counts.by_kind["db_instance"]["requested"], 1);
        assert_eq!(rep.substitutions.len(), 1);
        assert_eq!(rep.substitutions[0].item_key, "launch/t1-b/0");
        assert_eq!(rep.substitutions[0].substitution["to"], "r5.xlarge");
        assert_eq!(rep.calls["ec2:RunInstances"].throttled, 2);
        assert_eq!(rep.calls["ec2:DescribeInstances"].errors, 0);
        assert_eq!(rep.api_calls, 12);
        assert_eq!(rep.throttled, 2);
        // 9 attempts of 5 calls: the SDK retried 4 (DescribeInstances saved no attempts).
        assert_eq!(rep.calls["ec2:RunInstances"].attempts, 9);
        assert_eq!(rep.sdk_retries, 4);
        assert_eq!(
            rep.failed_items,
            [FailedItem {
                item_key: "launch/t2-c/0".to_owned(),
                kind: LAUNCH_KIND.to_owned(),
                primary_id: "p-launch/t2-c/0".to_owned(),
                last_error: Some("InvalidAMIID.NotFound".to_owned()),
            }]
        );
        // Running: the RTO so far, not final.
        assert!(!rep.rto_final);
        let rto = rep.rto_secs.unwrap();
        assert!(rto >= (now - 5_000) as f64 / 1000.0 - 1.0, "{rto}");

        // Finished: the measured RTO is final.
        let mut update = RunUpdate::from(&store.get_run("run-1").await.unwrap().unwrap());
        update.state = RunState::Succeeded;
        update.finished_at_ms = Some(95_000);
        let done = store.update_run("run-1", &update).await.unwrap();
        let rep = report(&store, &done).await.unwrap();
        assert_eq!(rep.rto_secs, Some(90.0));
        assert!(rep.rto_final);

        // The report goes over the wire and back.
        let json = serde_json::to_string(&rep).unwrap();
        let back: RestoreReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rep);
    }

    #[tokio::test]
    async fn report_of_a_fresh_run_with_an_unreadable_plan() {
        let store = store().await;
        let r = run(&store, "run-2", "not json").await;
        let rep = report(&store, &r).await.unwrap();
        assert!(rep.tiers.is_empty());
        assert!(rep.steps.is_empty());
        assert_eq!(rep.estimated_secs, None);
        assert_eq!(rep.rto_secs, None, "not started");
        assert_eq!(rep.api_calls, 0);
        assert_eq!(rep.counts.by_state.len(), ItemState::ALL.len());
    }

    fn plan_view() -> PlanView {
        let inventory = pilotlight_core::inventory::Inventory::default();
        let restore = pilotlight_core::plan::restore_plan(
            &inventory,
            &pilotlight_core::scope::Selection::default(),
            &pilotlight_core::scope::DrState::default(),
            &pilotlight_core::config::RestoreConfig::default(),
            &pilotlight_core::config::ThrottleConfig::default(),
        );
        PlanView {
            inventory_version: 1,
            inventory_bucket: "b".to_owned(),
            inventory_key: "k".to_owned(),
            captured_at_ms: 0,
            scope: Default::default(),
            capacity: Default::default(),
            restore,
        }
    }

    fn ctx(store: &Store, run_id: &str, tally: Arc<CallTally>) -> RunCtx {
        let sdk = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new("us-west-2"))
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .build();
        let aws = AwsCtx::new(
            Arc::new(pilotlight_aws::throttle::Throttle::new(Default::default())),
            pilotlight_aws::metrics::AwsMetrics::unregistered(),
        );
        let cache = DescribeCache::disabled(CacheMetrics::default());
        RunCtx {
            run_id: run_id.to_owned(),
            mode: RunMode::Disaster,
            plan: Arc::new(plan_view()),
            inventory: Arc::new(Default::default()),
            aws: RestoreHandles::new(
                &sdk,
                &aws,
                tally.clone(),
                cache,
                Arc::new(Semaphore::new(1)),
            ),
            journal: Journal::new(store.clone(), run_id.to_owned()),
            settings: Arc::new(Default::default()),
            stop: CancellationToken::new(),
            tally,
            hooks: Arc::default(),
            drill_zone: None,
        }
    }

    /// One call through the DR handles: no credentials, so it fails at once, and counts.
    async fn call(ctx: &RunCtx) {
        assert!(ctx.aws.ec2.describe_vpcs(|b| b).await.is_err());
    }

    fn saved(steps: &[RestoreStep]) -> u64 {
        stored_calls(steps)
            .get("ec2:DescribeVpcs")
            .map_or(0, |t| t.calls)
    }

    #[tokio::test]
    async fn tally_is_saved_once_per_call_across_saves_and_executions() {
        let store = store().await;
        let r = run(&store, "run-3", PLAN).await;
        start(&store, &r, now_ms() - 2_000).await;

        // First execution: saving twice does not count its calls twice.
        let first = ctx(&store, "run-3", Arc::new(CallTally::default()));
        call(&first).await;
        call(&first).await;
        save_tally(&first).await;
        save_tally(&first).await;
        assert_eq!(saved(&store.list_steps("run-3").await.unwrap()), 2);
        call(&first).await;
        save_tally(&first).await;
        assert_eq!(saved(&store.list_steps("run-3").await.unwrap()), 3);
        drop(first);

        // The run resumed (new tally): the earlier execution's calls are its base.
        let second = ctx(&store, "run-3", Arc::new(CallTally::default()));
        call(&second).await;
        save_tally(&second).await;
        let steps = store.list_steps("run-3").await.unwrap();
        assert_eq!(saved(&steps), 4);
        let stats = steps.iter().find(|s| s.step_id == STATS_STEP).unwrap();
        assert_eq!((stats.tier, stats.kind.as_str()), (0, "stats"));

        // The gauges count every execution, live; the report what was saved.
        call(&second).await;
        let metrics = RestoreMetrics::default();
        publish_once(&second, &metrics).await;
        let op = OperationLabels {
            operation: "ec2:DescribeVpcs".to_owned(),
        };
        assert_eq!(metrics.calls.get_or_create(&op).get(), 5);
        assert_eq!(metrics.throttled.get_or_create(&op).get(), 0);
        assert_eq!(metrics.mode.get(), 1, "a disaster run is active");
        assert!(metrics.elapsed.get() >= 2.0);
        let planned = TierStateLabels {
            tier: "1".to_owned(),
            state: "planned",
        };
        assert_eq!(metrics.tier_instances.get_or_create(&planned).get(), 0);
        let rep = report(&store, &store.get_run("run-3").await.unwrap().unwrap())
            .await
            .unwrap();
        assert_eq!(rep.api_calls, 4);
    }

    #[tokio::test]
    async fn gauges_follow_the_journal() {
        let store = store().await;
        let r = run(&store, "run-4", PLAN).await;
        start(&store, &r, now_ms()).await;
        store
            .upsert_step(&step("run-4", "t1/ec2", 1, "ec2", StepState::Running))
            .await
            .unwrap();
        for row in [
            item(
                "run-4",
                "launch/a/0",
                "t1/ec2",
                LAUNCH_KIND,
                ItemState::Done,
                json!({"count": 2, "instance_ids": ["i-1", "i-2"], "state": "running",
                       "substitution": {"from": "m5.large", "to": "m5a.large"}}),
            ),
            item(
                "run-4",
                "launch/b/0",
                "t1/ec2",
                LAUNCH_KIND,
                ItemState::Requested,
                json!({"count": 1}),
            ),
            item(
                "run-4",
                "nat/x",
                "t1/ec2",
                "nat_gateway",
                ItemState::Failed,
                json!({}),
            ),
        ] {
            store.upsert_item(&row).await.unwrap();
        }
        let metrics = RestoreMetrics::default();
        // A previous run's operation is dropped from the gauges.
        metrics
            .published_ops
            .lock()
            .unwrap()
            .insert("elb:CreateLoadBalancer".to_owned());
        let c = ctx(&store, "run-4", Arc::new(CallTally::default()));
        publish_once(&c, &metrics).await;
        let tier = |tier: &str, state| {
            metrics
                .tier_instances
                .get_or_create(&TierStateLabels {
                    tier: tier.to_owned(),
                    state,
                })
                .get()
        };
        assert_eq!(tier("1", "launched"), 2);
        assert_eq!(tier("1", "running"), 2);
        assert_eq!(tier("1", "failed"), 0);
        assert_eq!(tier("9", "launched"), 0);
        let items = |kind, state| {
            metrics
                .items
                .get_or_create(&ItemLabels { kind, state })
                .get()
        };
        assert_eq!(items(LAUNCH_KIND, "done"), 1);
        assert_eq!(items(LAUNCH_KIND, "requested"), 1);
        assert_eq!(items("other", "failed"), 1);
        assert_eq!(metrics.substitutions.get(), 1);
        assert!(metrics.published_ops.lock().unwrap().is_empty());
    }

    #[test]
    fn registered_names() {
        let mut registry = Registry::with_prefix("pilotlight");
        let m = RestoreMetrics::register(&mut registry);
        m.set_mode(true);
        m.calls
            .get_or_create(&OperationLabels {
                operation: "ec2:RunInstances".to_owned(),
            })
            .set(3);
        m.throttled
            .get_or_create(&OperationLabels {
                operation: "ec2:RunInstances".to_owned(),
            })
            .set(1);
        m.elapsed.set(1.5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "pilotlight_restore_mode 1",
            "pilotlight_restore_calls{operation=\"ec2:RunInstances\"} 3",
            "pilotlight_restore_calls_throttled{operation=\"ec2:RunInstances\"} 1",
            "pilotlight_restore_elapsed_seconds 1.5",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn tier_of_step_ids() {
        assert_eq!(tier_of_step_id("t1/ec2"), Some(1));
        assert_eq!(tier_of_step_id("t12/ec2/x"), Some(12));
        assert_eq!(tier_of_step_id("tx/ec2"), None);
        assert_eq!(tier_of_step_id("lb"), None);
    }

    #[test]
    fn a_real_plan_view_parses() {
        let json = serde_json::to_string(&plan_view()).unwrap();
        let planned = PlannedRun::from_json(&json);
        assert!(planned.tiers.is_empty());
        assert!(planned.estimated_secs.is_some());
    }
}
