//! Drills (SPEC D12) beyond the run itself: what `GET /v1/drills` answers, the drill gauges,
//! and the schedule that declares drills by itself.
//!
//! A drill is a restore run in mode `drill` (see [`crate::restore`]): restored with drill tags,
//! production DNS never touched, its restore phase ending with the step
//! [`RESTORED_STEP`](crate::restore::RESTORED_STEP) (the drill's RTO), then torn down
//! ([`crate::restore::teardown`]). Here each finished or running drill is summarised from its
//! journal: RTO overall and per tier, teardown time, what was deleted and what was left.
//!
//! The schedule (`drill.schedule`, a cron expression in UTC) runs on the leader. Each fire
//! time declares at most one drill: the declaration carries the idempotency key
//! `drill-schedule-<fire time>`, so a restarted daemon or a new leader firing the same time
//! gets the same run back. A fire time finding another run active is skipped and logged.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use pilotlight_core::cron::Cron;
use pilotlight_store::{
    ItemState, RestoreItem, RestoreRun, RestoreStep, RunMode, RunState, Store, StoreError,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::now_ms;
use crate::restore::teardown::{self, Leftover};
use crate::restore::{DeclareRequest, Declared, RESTORED_STEP, RestoreService};

/// The principal scheduled drills are declared by.
pub const SCHEDULER_PRINCIPAL: &str = "scheduler:drill";
/// Runs read to find the drills (newest first).
const RUNS_SCANNED: u32 = 1_000;

/// One drill, from its journal (`GET /v1/drills`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillSummary {
    pub id: String,
    pub state: RunState,
    pub requested_by: String,
    /// Declared by the schedule.
    pub scheduled: bool,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Start to the end of the restore phase (everything up, before the teardown).
    pub rto_secs: Option<f64>,
    /// Per tier: start to the tier's instances at their gate.
    pub tiers: Vec<TierRto>,
    /// The teardown's duration, once it has finished.
    pub teardown_secs: Option<f64>,
    /// Resources the teardown deleted.
    pub deleted: u64,
    /// What the teardown's check found still tagged for the run (empty when it passed).
    pub left_behind: Vec<Leftover>,
    /// Items of the restore phase that failed.
    pub failed_items: u64,
    pub error: Option<String>,
}

/// A tier's time to come up in a drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierRto {
    pub tier: u8,
    /// Start of the run to the tier's gate; `None` while it is not up.
    pub up_after_secs: Option<f64>,
}

/// The summary of one drill run from its steps and items.
pub fn summary(run: &RestoreRun, steps: &[RestoreStep], items: &[RestoreItem]) -> DrillSummary {
    let secs = |from: Option<i64>, to: Option<i64>| {
        from.zip(to).map(|(a, b)| (b - a).max(0) as f64 / 1000.0)
    };
    let restored = steps.iter().find(|s| s.step_id == RESTORED_STEP);
    let mut tiers: BTreeMap<u8, Option<f64>> = BTreeMap::new();
    for step in steps.iter().filter(|s| s.kind == "ec2") {
        let Some(tier) = step
            .step_id
            .strip_prefix('t')
            .and_then(|r| r.strip_suffix("/ec2"))
            .and_then(|t| t.parse::<u8>().ok())
        else {
            continue;
        };
        let up = (step.state == pilotlight_store::StepState::Done)
            .then(|| secs(run.started_at_ms, step.finished_at_ms))
            .flatten();
        tiers.insert(tier, up);
    }
    let teardown_steps: Vec<&RestoreStep> =
        steps.iter().filter(|s| s.kind == teardown::KIND).collect();
    let verify = teardown_steps
        .iter()
        .find(|s| s.step_id == teardown::VERIFY_STEP);
    let teardown_started = teardown_steps.iter().filter_map(|s| s.started_at_ms).min();
    let teardown_secs = verify
        .filter(|v| v.state == pilotlight_store::StepState::Done)
        .and_then(|v| secs(teardown_started, v.finished_at_ms));
    let left_behind = verify
        .and_then(|v| serde_json::from_str::<Value>(&v.detail_json).ok())
        .and_then(|d| d.get("left").cloned())
        .and_then(|l| serde_json::from_value::<Vec<Leftover>>(l).ok())
        .unwrap_or_default();
    let deleted = items
        .iter()
        .filter(|i| i.kind == teardown::KIND && i.state == ItemState::Done)
        .count() as u64;
    let failed_items = items
        .iter()
        .filter(|i| i.kind != teardown::KIND && i.state == ItemState::Failed)
        .count() as u64;
    DrillSummary {
        id: run.id.clone(),
        state: run.state,
        requested_by: run.requested_by.clone(),
        scheduled: run.requested_by == SCHEDULER_PRINCIPAL,
        created_at_ms: run.created_at_ms,
        started_at_ms: run.started_at_ms,
        finished_at_ms: run.finished_at_ms,
        rto_secs: restored.and_then(|r| secs(run.started_at_ms, r.finished_at_ms)),
        tiers: tiers
            .into_iter()
            .map(|(tier, up_after_secs)| TierRto {
                tier,
                up_after_secs,
            })
            .collect(),
        teardown_secs,
        deleted,
        left_behind,
        failed_items,
        error: run.error.clone(),
    }
}

/// The `limit` most recent drills, newest first.
///
/// # Errors
/// The store's error.
pub async fn summaries(store: &Store, limit: usize) -> Result<Vec<DrillSummary>, StoreError> {
    let mut out = Vec::new();
    for run in drill_runs(store).await?.iter().take(limit) {
        out.push(summarise(store, run).await?);
    }
    Ok(out)
}

/// The drill runs among the newest [`RUNS_SCANNED`] runs, newest first.
async fn drill_runs(store: &Store) -> Result<Vec<RestoreRun>, StoreError> {
    Ok(store
        .list_runs(RUNS_SCANNED)
        .await?
        .into_iter()
        .filter(|r| r.mode == RunMode::Drill && !r.dry_run)
        .collect())
}

/// One drill's summary, from its journal.
async fn summarise(store: &Store, run: &RestoreRun) -> Result<DrillSummary, StoreError> {
    let steps = store.list_steps(&run.id).await?;
    let items = store.list_items(&run.id, None).await?;
    Ok(summary(run, &steps, &items))
}

/// `tier` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    pub tier: String,
}

/// The drill gauges (`pilotlight_drill_*`, see `docs/metrics.md`). Every replica exports them
/// from the store, so an alert on a stale drill does not depend on which replica leads.
#[derive(Debug, Clone, Default)]
pub struct DrillMetrics {
    pub last_success: Gauge<f64, AtomicU64>,
    pub last_finished: Gauge<f64, AtomicU64>,
    pub last_succeeded: Gauge,
    pub last_rto: Gauge<f64, AtomicU64>,
    pub last_tier_rto: Family<TierLabel, Gauge<f64, AtomicU64>>,
    pub last_teardown: Gauge<f64, AtomicU64>,
    pub last_left_behind: Gauge,
    pub next_scheduled: Gauge<f64, AtomicU64>,
}

impl DrillMetrics {
    /// Creates the gauges under the (`pilotlight`-prefixed) registry.
    pub fn register(registry: &mut Registry) -> DrillMetrics {
        let m = DrillMetrics::default();
        let r = registry.sub_registry_with_prefix("drill");
        r.register_with_unit(
            "last_success_timestamp",
            "When the last successful drill finished (Unix time; 0: none yet)",
            Unit::Seconds,
            m.last_success.clone(),
        );
        r.register_with_unit(
            "last_finished_timestamp",
            "When the last drill finished, successful or not (Unix time; 0: none yet)",
            Unit::Seconds,
            m.last_finished.clone(),
        );
        r.register(
            "last_succeeded",
            "1 when the last finished drill succeeded (restored and torn down with nothing left), else 0",
            m.last_succeeded.clone(),
        );
        r.register_with_unit(
            "last_rto",
            "Measured RTO of the last finished drill: its start to the end of its restore phase",
            Unit::Seconds,
            m.last_rto.clone(),
        );
        r.register_with_unit(
            "last_tier_rto",
            "Per tier, the last finished drill's start to the tier's instances at their gate",
            Unit::Seconds,
            m.last_tier_rto.clone(),
        );
        r.register_with_unit(
            "last_teardown",
            "How long the last finished drill's teardown took",
            Unit::Seconds,
            m.last_teardown.clone(),
        );
        r.register(
            "last_left_behind",
            "Resources the last finished drill's teardown found still tagged for it (0 when clean)",
            m.last_left_behind.clone(),
        );
        r.register_with_unit(
            "next_scheduled_timestamp",
            "When the schedule declares the next drill (Unix time; 0: no schedule)",
            Unit::Seconds,
            m.next_scheduled.clone(),
        );
        m
    }

    /// Sets the gauges from the store's drills: the run rows, and the journal of the last
    /// finished drill only (a drill's journal can hold thousands of items, and every replica
    /// refreshes). Store failures are logged and leave the gauges.
    pub async fn refresh(&self, store: &Store) {
        let read = async {
            let runs = drill_runs(store).await?;
            let mut finished = runs
                .iter()
                .filter(|r| !r.state.is_active() && r.finished_at_ms.is_some());
            let success = finished
                .clone()
                .find(|r| r.state == RunState::Succeeded)
                .and_then(|r| r.finished_at_ms);
            let last = match finished.next() {
                Some(run) => Some(summarise(store, run).await?),
                None => None,
            };
            Ok::<_, StoreError>((success, last))
        };
        match read.await {
            Ok((success, last)) => self.set_from(success, last.as_ref()),
            Err(e) => tracing::warn!(error = %e, "cannot read the drills for their gauges"),
        }
    }

    /// `last_success_ms`: when the last successful drill finished; `last`: the last finished
    /// drill.
    fn set_from(&self, last_success_ms: Option<i64>, last: Option<&DrillSummary>) {
        let ms_to_secs = |ms: Option<i64>| ms.map_or(0.0, |t| t as f64 / 1000.0);
        if last_success_ms.is_some() {
            self.last_success.set(ms_to_secs(last_success_ms));
        }
        let Some(last) = last else {
            return;
        };
        self.last_finished.set(ms_to_secs(last.finished_at_ms));
        self.last_succeeded
            .set(i64::from(last.state == RunState::Succeeded));
        self.last_rto.set(last.rto_secs.unwrap_or(0.0));
        self.last_tier_rto.clear();
        for tier in &last.tiers {
            self.last_tier_rto
                .get_or_create(&TierLabel {
                    tier: tier.tier.to_string(),
                })
                .set(tier.up_after_secs.unwrap_or(0.0));
        }
        self.last_teardown.set(last.teardown_secs.unwrap_or(0.0));
        self.last_left_behind
            .set(i64::try_from(last.left_behind.len()).unwrap_or(i64::MAX));
    }
}

/// Declares drills on a cron schedule (on the leader).
#[derive(Debug, Clone)]
pub struct DrillSchedule {
    pub cron: Cron,
    pub tiers: Vec<u8>,
    pub tenants: Vec<String>,
    pub service: RestoreService,
    pub metrics: DrillMetrics,
}

/// What one fire time did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// A drill was declared now.
    Declared(String),
    /// This fire time had declared its drill already (an earlier leader, a restart).
    AlreadyDeclared(String),
    /// Another run was active: no drill this time.
    Skipped { active_run: String },
}

impl DrillSchedule {
    /// Fires at each time the cron expression names until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!(schedule = %self.cron, "drill schedule on");
        loop {
            let Some(next) = self.cron.next_after(now_ms()) else {
                tracing::warn!(schedule = %self.cron, "the drill schedule never fires again");
                return;
            };
            self.metrics.next_scheduled.set(next as f64 / 1000.0);
            let wait = std::time::Duration::from_millis((next - now_ms()).max(0) as u64);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.fire(next).await {
                Ok(Fired::Declared(run)) => {
                    tracing::info!(run = %run, fire_at_ms = next, "scheduled drill declared");
                }
                Ok(Fired::AlreadyDeclared(run)) => {
                    tracing::info!(run = %run, fire_at_ms = next, "scheduled drill was already declared");
                }
                Ok(Fired::Skipped { active_run }) => tracing::warn!(
                    active_run = %active_run,
                    fire_at_ms = next,
                    "scheduled drill skipped: another run is active"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, fire_at_ms = next, "cannot declare the scheduled drill");
                }
            }
        }
    }

    /// Declares the drill of fire time `at_ms` (idempotent per fire time).
    ///
    /// # Errors
    /// The declaration's error (no inventory yet, store failures, …).
    pub async fn fire(&self, at_ms: i64) -> Result<Fired, crate::restore::RestoreServiceError> {
        let key = format!("drill-schedule-{at_ms}");
        let active = self.service.store().active_runs().await?;
        if let Some(run) = active
            .iter()
            .find(|r| r.idempotency_key.as_deref() == Some(key.as_str()))
        {
            return Ok(Fired::AlreadyDeclared(run.id.clone()));
        }
        if let Some(run) = active.iter().find(|r| !r.dry_run) {
            return Ok(Fired::Skipped {
                active_run: run.id.clone(),
            });
        }
        let request = DeclareRequest {
            mode: RunMode::Drill,
            tiers: self.tiers.clone(),
            tenants: self.tenants.clone(),
            dry_run: false,
        };
        match self
            .service
            .declare(SCHEDULER_PRINCIPAL, request, Some(&key))
            .await?
        {
            Declared::Run {
                run, created: true, ..
            } => Ok(Fired::Declared(run.id)),
            Declared::Run { run, .. } => Ok(Fired::AlreadyDeclared(run.id)),
            Declared::DryRun(_) => unreachable!("not a dry run"),
        }
    }
}

/// Keeps the drill gauges fresh on every replica.
pub async fn refresh_metrics(store: Store, metrics: DrillMetrics, cancel: CancellationToken) {
    loop {
        metrics.refresh(&store).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pilotlight_core::config::RestoreConfig;
    use pilotlight_store::{StepState, StoreOptions};
    use tokio::sync::Notify;

    use super::*;
    use crate::restore::RestoreMode;
    use crate::restore::service::tests::EmptyEstate;

    async fn schedule() -> DrillSchedule {
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let service = RestoreService::new(
            store,
            EmptyEstate,
            Arc::new(RestoreConfig::default()),
            RestoreMode::default(),
            Arc::new(Notify::new()),
        );
        DrillSchedule {
            cron: Cron::parse("0 3 * * 1").unwrap(),
            tiers: vec![],
            tenants: vec![],
            service,
            metrics: DrillMetrics::default(),
        }
    }

    #[tokio::test]
    async fn each_fire_time_declares_one_drill_and_an_active_run_skips_it() {
        let s = schedule().await;
        let Fired::Declared(first) = s.fire(1_000).await.unwrap() else {
            panic!("expected a declared drill");
        };
        let run = s.service.get(&first).await.unwrap();
        assert_eq!(run.mode, RunMode::Drill);
        assert_eq!(run.requested_by, SCHEDULER_PRINCIPAL);
        // The same fire time again (a restart, another leader): the same run.
        assert_eq!(
            s.fire(1_000).await.unwrap(),
            Fired::AlreadyDeclared(first.clone())
        );
        // The next fire time while the first drill is active: skipped.
        assert_eq!(
            s.fire(2_000).await.unwrap(),
            Fired::Skipped {
                active_run: first.clone()
            }
        );
        assert_eq!(s.service.list(10).await.unwrap().len(), 1);
    }

    fn step(
        id: &str,
        kind: &str,
        state: StepState,
        start: i64,
        end: i64,
        detail: &str,
    ) -> RestoreStep {
        RestoreStep {
            run_id: "r".into(),
            step_id: id.into(),
            tier: 0,
            kind: kind.into(),
            state,
            started_at_ms: Some(start),
            finished_at_ms: Some(end),
            detail_json: detail.into(),
        }
    }

    #[test]
    fn a_summary_measures_rto_per_tier_and_the_teardown() {
        let run = RestoreRun {
            id: "r".into(),
            mode: RunMode::Drill,
            state: RunState::Succeeded,
            dry_run: false,
            tiers_json: "[]".into(),
            plan_json: "{}".into(),
            requested_by: SCHEDULER_PRINCIPAL.into(),
            approved_by: None,
            idempotency_key: None,
            created_at_ms: 0,
            started_at_ms: Some(10_000),
            finished_at_ms: Some(200_000),
            error: None,
        };
        let steps = vec![
            step("t1/ec2", "ec2", StepState::Done, 10_000, 40_000, "{}"),
            step("t2/ec2", "ec2", StepState::Done, 40_000, 70_000, "{}"),
            step(
                RESTORED_STEP,
                "drill",
                StepState::Done,
                10_000,
                100_000,
                "{}",
            ),
            step(
                "teardown/lb",
                "teardown",
                StepState::Done,
                101_000,
                120_000,
                "{}",
            ),
            step(
                teardown::VERIFY_STEP,
                "teardown",
                StepState::Done,
                190_000,
                199_000,
                r#"{"left":[]}"#,
            ),
        ];
        let s = summary(&run, &steps, &[]);
        assert!(s.scheduled);
        assert_eq!(s.rto_secs, Some(90.0));
        assert_eq!(
            s.tiers,
            vec![
                TierRto {
                    tier: 1,
                    up_after_secs: Some(30.0)
                },
                TierRto {
                    tier: 2,
                    up_after_secs: Some(60.0)
                },
            ]
        );
        assert_eq!(s.teardown_secs, Some(98.0));
        assert!(s.left_behind.is_empty());

        let metrics = DrillMetrics::default();
        metrics.set_from(s.finished_at_ms, Some(&s));
        assert_eq!(metrics.last_rto.get(), 90.0);
        assert_eq!(metrics.last_success.get(), 200.0);
        assert_eq!(metrics.last_succeeded.get(), 1);
        assert_eq!(
            metrics
                .last_tier_rto
                .get_or_create(&TierLabel { tier: "2".into() })
                .get(),
            60.0
        );
    }
}
