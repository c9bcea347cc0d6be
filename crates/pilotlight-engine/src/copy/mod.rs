//! R2–R4 and R7: keep a recent copy of every protected snapshot (or AMI) in the DR region,
//! within AWS's copy limits, and measure how far behind the DR region is.
//!
//! One reconciler key per kind (`ebs_snapshot`, …). A cycle:
//!
//! 1. **Discover** the primary's completed sources (paginated lists only) and the DR copies
//!    pilotlight owns (one paginated list, by the `pilotlight:managed` tag).
//! 2. **Track** every copy the store has in flight: progress, completion, disappearance. A row
//!    journalled as requested but without a DR id (a crash between the request and its
//!    journal entry) is resolved by looking the copy up by its `pilotlight:source` tag; only
//!    if none exists after [`RESOLVE_GRACE_MS`] is it requested again — so a crash never makes a
//!    second copy.
//! 3. **Schedule** with [`pilotlight_core::copy::pick`]: per resource only the newest completed
//!    source is a candidate (older queued ones become `superseded`); free in-flight slots go to
//!    the resources closest to, or furthest past, their tier's RPO.
//! 4. **Start** each pick: journal `in_flight` (no DR id yet), call AWS, journal the DR id.
//!    Limit errors put the copy back in the queue without counting as a failure; throttling
//!    stops starting more this cycle.
//! 5. **Retain** the newest `keep` completed copies per resource; delete older ones — only
//!    copies carrying `pilotlight:managed=true` (the delete takes an [`Owned`] id).
//! 6. **Measure** RPO lag per resource and export it per kind and tier.

mod ami;
mod ebs;
mod rds;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use pilotlight_aws::tags::Owned;
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::copy::{self as plan, CopyKind, Limits, Protected};
use pilotlight_store::{CopyRecord, CopyState, CopyUpdate, NewCopy, Store};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::ReconcileError;
use crate::metrics::{CopyLabels, EngineMetrics, KindLabels, RpoLabels};
use crate::scheduler::{Action, Reconciled, Reconciler, backoff};

pub use ami::{AmiCopies, AmiSelection};
pub use ebs::{EbsCopies, EbsSelection};
pub use rds::{RdsClusterCopies, RdsCopies, RdsSelection, target_id as rds_target_id};

/// How long a copy journalled as requested may stay without a visible DR copy before it is
/// requested again (AWS's describe calls are eventually consistent).
pub const RESOLVE_GRACE_MS: i64 = 60_000;

/// Tag carrying the protected resource (volume, DB, cluster, launch role) of a DR copy.
pub const RESOURCE_TAG: &str = "pilotlight:resource";
/// Tag carrying the source's creation time (unix ms) on a DR copy.
pub const SOURCE_TIME_TAG: &str = "pilotlight:source-created-ms";
/// Tag carrying the tier on a DR copy.
pub const TIER_TAG: &str = "pilotlight:tier";

/// Which DR KMS key re-encrypts a copy of an encrypted source (`copy.kms_key_map`,
/// `copy.dr_default_kms_key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KmsKeys {
    /// Primary KMS key ARN → DR KMS key ARN.
    pub map: BTreeMap<String, String>,
    /// DR key for encrypted sources without a map entry.
    pub default: Option<String>,
}

impl KmsKeys {
    /// The DR key for a source encrypted with `source_key`: its map entry, else the default.
    pub fn dr_key_for(&self, source_key: Option<&str>) -> Option<String> {
        source_key
            .and_then(|k| self.map.get(k).cloned())
            .or_else(|| self.default.clone())
    }
}

/// A completed source in the primary region that may be copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: String,
    /// Volume, DB instance, cluster or launch role it protects.
    pub resource_id: String,
    pub created_ms: i64,
    pub size_gib: u64,
    pub tier: u8,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// The source's own tags, carried onto the copy.
    pub tags: Vec<(String, String)>,
}

/// The state AWS reports for a DR copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrState {
    Pending { progress_pct: i32 },
    Completed,
    Failed,
}

/// A DR copy pilotlight owns (found by the managed tag).
#[derive(Debug, Clone)]
pub struct DrCopy {
    pub id: String,
    pub source_id: Option<String>,
    pub resource_id: Option<String>,
    pub source_created_ms: Option<i64>,
    pub state: DrState,
    pub owned: Option<Owned>,
}

/// What one kind of copy needs from AWS.
#[async_trait]
pub trait CopyOps: Send + Sync + 'static {
    fn kind(&self) -> CopyKind;
    /// Completed, protected sources in the primary (list calls only).
    async fn sources(&self) -> Result<Vec<Source>, ReconcileError>;
    /// Owned copies in the DR region (list calls only).
    async fn dr_copies(&self) -> Result<Vec<DrCopy>, ReconcileError>;
    /// Requests the copy; returns the DR id.
    async fn start(&self, source: &Source) -> Result<String, AwsError>;
    /// Deletes an owned DR copy.
    async fn delete(&self, copy: &Owned) -> Result<(), AwsError>;
    /// How many more copies may be started now under a quota other than the in-flight limit
    /// (RDS's manual snapshot quota); picks beyond it stay queued. Asked once per cycle, only
    /// when there is something to start. Default: no such quota.
    ///
    /// # Errors
    /// The list call's failure.
    async fn free_slots(&self) -> Result<u32, ReconcileError> {
        Ok(u32::MAX)
    }
}

/// Settings of the copy reconciler.
#[derive(Debug, Clone)]
pub struct CopySettings {
    pub primary_region: String,
    pub dr_region: String,
    pub limits: Limits,
    pub keep: BTreeMap<CopyKind, u32>,
    /// RPO target per tier, seconds.
    pub rpo_secs: BTreeMap<u8, u64>,
    pub default_tier: u8,
    pub cycle: Duration,
    pub max_backoff: Duration,
    pub copy_timeout: Duration,
}

impl CopySettings {
    fn rpo_of(&self, tier: u8) -> u64 {
        self.rpo_secs
            .get(&tier)
            .or_else(|| self.rpo_secs.get(&self.default_tier))
            .copied()
            .unwrap_or(86_400)
    }
}

/// Per-resource RPO detail, for `GET /v1/rpo`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceRpo {
    pub kind: &'static str,
    pub resource_id: String,
    pub tier: u8,
    pub rpo_secs: u64,
    /// None when never copied.
    pub lag_secs: Option<u64>,
    pub past_target: bool,
    pub newest_source_id: Option<String>,
    pub newest_source_ms: Option<i64>,
    pub copied_source_ms: Option<i64>,
    pub in_flight: bool,
}

/// The latest RPO picture of every kind, shared with the API.
#[derive(Debug, Clone, Default)]
pub struct RpoBoard {
    inner: Arc<RwLock<BTreeMap<&'static str, Vec<ResourceRpo>>>>,
}

impl RpoBoard {
    pub fn set(&self, kind: &'static str, rows: Vec<ResourceRpo>) {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(kind, rows);
    }

    pub fn snapshot(&self) -> Vec<ResourceRpo> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .flatten()
            .cloned()
            .collect()
    }
}

/// The copy reconciler of one kind (its name is the kind: `ebs_snapshot`, `ami`, …).
pub struct CopyReconciler {
    ops: Arc<dyn CopyOps>,
    store: Store,
    settings: CopySettings,
    metrics: EngineMetrics,
    board: RpoBoard,
    /// Tiers exported last cycle, so a tier that empties is reset to zero, not left stale.
    exported_tiers: std::sync::Mutex<std::collections::BTreeSet<u8>>,
}

impl std::fmt::Debug for CopyReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyReconciler")
            .field("kind", &self.ops.kind())
            .field("settings", &self.settings)
            .finish()
    }
}

fn store_kind(kind: CopyKind) -> pilotlight_store::CopyKind {
    match kind {
        CopyKind::EbsSnapshot => pilotlight_store::CopyKind::EbsSnapshot,
        CopyKind::RdsSnapshot => pilotlight_store::CopyKind::RdsSnapshot,
        CopyKind::RdsClusterSnapshot => pilotlight_store::CopyKind::RdsClusterSnapshot,
        CopyKind::Ami => pilotlight_store::CopyKind::Ami,
    }
}

impl CopyReconciler {
    pub fn new(
        ops: Arc<dyn CopyOps>,
        store: Store,
        settings: CopySettings,
        metrics: EngineMetrics,
        board: RpoBoard,
    ) -> CopyReconciler {
        CopyReconciler {
            ops,
            store,
            settings,
            metrics,
            board,
            exported_tiers: std::sync::Mutex::default(),
        }
    }

    async fn update(
        &self,
        row: &CopyRecord,
        f: impl FnOnce(&mut CopyUpdate),
    ) -> Result<CopyRecord, ReconcileError> {
        let mut u = CopyUpdate::from(row);
        f(&mut u);
        Ok(self.store.update_copy(row.id, &u).await?)
    }

    fn count(&self, kind: CopyKind, event: &'static str, n: u64) {
        self.metrics
            .copy_events
            .get_or_create(&CopyLabels {
                kind: kind.as_str(),
                event,
            })
            .inc_by(n);
    }

    /// One cycle for one kind.
    ///
    /// # Errors
    /// AWS or store failures; [`ReconcileError::Cancelled`] on shutdown.
    pub async fn cycle(
        &self,
        ops: &dyn CopyOps,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, ReconcileError> {
        let kind = ops.kind();
        let now = crate::now_ms();
        let sources = ops.sources().await?;
        let dr = ops.dr_copies().await?;
        let dr_by_id: HashMap<&str, &DrCopy> = dr.iter().map(|c| (c.id.as_str(), c)).collect();
        let dr_by_source: HashMap<&str, &DrCopy> = dr
            .iter()
            .filter_map(|c| Some((c.source_id.as_deref()?, c)))
            .collect();
        let rows = self
            .store
            .active_copies(store_kind(kind), &self.settings.dr_region)
            .await?;

        // 2. Track copies in flight.
        let mut tracked = Vec::with_capacity(rows.len());
        let (mut completed, mut failed) = (0u64, 0u64);
        for row in rows {
            if row.state != CopyState::InFlight {
                tracked.push(row);
                continue;
            }
            let seen = match &row.dest_id {
                Some(id) => dr_by_id.get(id.as_str()).copied(),
                None => dr_by_source.get(row.source_id.as_str()).copied(),
            };
            let row = match seen {
                Some(c) => match c.state {
                    DrState::Completed => {
                        completed += 1;
                        self.metrics
                            .copy_bytes
                            .get_or_create(&KindLabels {
                                kind: kind.as_str(),
                            })
                            .inc_by(u64::try_from(row.size_gib).unwrap_or(0) << 30);
                        self.update(&row, |u| {
                            u.state = CopyState::Completed;
                            u.progress_pct = 100;
                            u.dest_id = Some(c.id.clone());
                            u.completed_at_ms = Some(now);
                            u.last_error = None;
                        })
                        .await?
                    }
                    DrState::Pending { progress_pct } => {
                        let timed_out = row.requested_at_ms.is_some_and(|t| {
                            now - t > self.settings.copy_timeout.as_millis() as i64
                        });
                        if timed_out {
                            failed += 1;
                            self.update(&row, |u| {
                                u.state = CopyState::Queued;
                                u.dest_id = None;
                                u.last_error =
                                    Some("copy did not complete within copy_timeout_secs".into());
                            })
                            .await?
                        } else if row.dest_id.as_deref() != Some(&c.id)
                            || row.progress_pct != progress_pct
                        {
                            self.update(&row, |u| {
                                u.dest_id = Some(c.id.clone());
                                u.progress_pct = progress_pct;
                            })
                            .await?
                        } else {
                            row
                        }
                    }
                    DrState::Failed => {
                        failed += 1;
                        self.update(&row, |u| {
                            u.state = CopyState::Queued;
                            u.dest_id = None;
                            u.last_error = Some(format!("DR copy {} failed in AWS", c.id));
                        })
                        .await?
                    }
                },
                None => {
                    let settled = row
                        .requested_at_ms
                        .is_none_or(|t| now - t > RESOLVE_GRACE_MS);
                    if row.dest_id.is_some() || settled {
                        // The copy vanished, or the request never reached AWS: ask again.
                        self.update(&row, |u| {
                            u.state = CopyState::Queued;
                            u.dest_id = None;
                            u.progress_pct = 0;
                        })
                        .await?
                    } else {
                        row
                    }
                }
            };
            tracked.push(row);
        }
        self.count(kind, "completed", completed);
        self.count(kind, "failed", failed);

        // 3. Candidates: the newest source per resource.
        let mut newest: BTreeMap<&str, &Source> = BTreeMap::new();
        for s in &sources {
            let e = newest.entry(s.resource_id.as_str()).or_insert(s);
            if (s.created_ms, &s.id) > (e.created_ms, &e.id) {
                *e = s;
            }
        }
        let active: Vec<&CopyRecord> = tracked
            .iter()
            .filter(|r| matches!(r.state, CopyState::Queued | CopyState::InFlight))
            .collect();
        let mut superseded = Vec::new();
        for r in &active {
            let newest_ms = newest.get(r.resource_id.as_str()).map(|s| s.created_ms);
            if r.state == CopyState::Queued && newest_ms.is_some_and(|n| r.source_created_at_ms < n)
            {
                superseded.push((*r).clone());
            }
        }
        for r in &superseded {
            self.update(r, |u| u.state = CopyState::Superseded).await?;
        }
        let mut watermarks: BTreeMap<String, (u8, i64)> = self
            .store
            .copy_watermarks(store_kind(kind), &self.settings.dr_region)
            .await?
            .into_iter()
            .map(|w| {
                let tier = u8::try_from(w.tier).unwrap_or(self.settings.default_tier);
                (w.resource_id, (tier, w.source_created_at_ms))
            })
            .collect();

        // Adopt DR copies of current sources that the ledger does not know (a lost or rebuilt
        // store): CopySnapshot has no idempotency token, the source tag stands in for one.
        let known_active: std::collections::HashSet<&str> =
            active.iter().map(|r| r.source_id.as_str()).collect();
        let mut adopted = 0u64;
        let mut adopted_in_flight: Vec<String> = Vec::new();
        for s in newest.values() {
            let covered = watermarks
                .get(&s.resource_id)
                .is_some_and(|(_, ms)| *ms >= s.created_ms);
            if covered || known_active.contains(s.id.as_str()) {
                continue;
            }
            let Some(existing) = dr_by_source.get(s.id.as_str()) else {
                continue;
            };
            let (state, progress) = match existing.state {
                DrState::Completed => (CopyState::Completed, 100),
                DrState::Pending { progress_pct } => (CopyState::InFlight, progress_pct),
                DrState::Failed => continue,
            };
            let id = self
                .store
                .insert_copy(&NewCopy {
                    kind: store_kind(kind),
                    source_id: s.id.clone(),
                    source_region: self.settings.primary_region.clone(),
                    resource_id: s.resource_id.clone(),
                    tier: i32::from(s.tier),
                    dest_region: self.settings.dr_region.clone(),
                    size_gib: i64::try_from(s.size_gib).unwrap_or(i64::MAX),
                    source_created_at_ms: s.created_ms,
                })
                .await?;
            let Some(row) = self.store.get_copy(id).await? else {
                continue;
            };
            self.update(&row, |u| {
                u.state = state;
                u.progress_pct = progress;
                u.dest_id = Some(existing.id.clone());
                u.requested_at_ms = Some(now);
                u.completed_at_ms = (state == CopyState::Completed).then_some(now);
            })
            .await?;
            adopted += 1;
            if state == CopyState::Completed {
                watermarks.insert(s.resource_id.clone(), (s.tier, s.created_ms));
            } else {
                adopted_in_flight.push(s.resource_id.clone());
            }
        }

        // Every resource with a source now or a copy in the past.
        let mut resources: BTreeMap<&str, (u8, Option<&Source>)> = BTreeMap::new();
        for (id, s) in &newest {
            resources.insert(id, (s.tier, Some(*s)));
        }
        for (id, (tier, _)) in &watermarks {
            resources.entry(id.as_str()).or_insert((*tier, None));
        }
        let mut protected = Vec::new();
        let mut resource_ids = Vec::new();
        for (id, (tier, src)) in &resources {
            protected.push(Protected {
                kind,
                resource_id: (*id).to_owned(),
                tier: *tier,
                rpo_secs: self.settings.rpo_of(*tier),
                newest_source_ms: src.map(|s| s.created_ms),
                copied_source_ms: watermarks.get(*id).map(|(_, ms)| *ms),
                in_flight: adopted_in_flight.iter().any(|r| r == id)
                    || active
                        .iter()
                        .any(|r| r.resource_id == *id && r.state == CopyState::InFlight),
                size_gib: src.map_or(0, |s| s.size_gib),
            });
            resource_ids.push((*id, *src));
        }

        // 4. Start the picks.
        let picks = plan::pick(&protected, &self.settings.limits, now);
        let mut started = 0u64;
        let mut deferred = 0u64;
        let mut deferred_by_quota = 0u64;
        let mut free_slots = if picks.is_empty() {
            u32::MAX
        } else {
            ops.free_slots().await?
        };
        for i in picks {
            if cancel.is_cancelled() {
                return Err(ReconcileError::Cancelled);
            }
            let Some(source) = resource_ids[i].1 else {
                continue;
            };
            let id = self
                .store
                .insert_copy(&NewCopy {
                    kind: store_kind(kind),
                    source_id: source.id.clone(),
                    source_region: self.settings.primary_region.clone(),
                    resource_id: source.resource_id.clone(),
                    tier: i32::from(source.tier),
                    dest_region: self.settings.dr_region.clone(),
                    size_gib: i64::try_from(source.size_gib).unwrap_or(i64::MAX),
                    source_created_at_ms: source.created_ms,
                })
                .await?;
            let Some(row) = self.store.get_copy(id).await? else {
                continue;
            };
            if row.state != CopyState::Queued {
                continue;
            }
            if free_slots == 0 {
                // A quota (RDS manual snapshots) is full: stays queued for a later cycle.
                deferred_by_quota += 1;
                continue;
            }
            // Journal before the call: in flight, no DR id yet.
            let row = self
                .update(&row, |u| {
                    u.state = CopyState::InFlight;
                    u.requested_at_ms = Some(crate::now_ms());
                    u.attempts += 1;
                    u.dest_id = None;
                })
                .await?;
            let outcome = ops.start(source).await;
            // A copy made (or maybe made) takes a slot of the quota.
            if outcome
                .as_ref()
                .err()
                .is_none_or(|e| e.kind == ErrorKind::Transient)
            {
                free_slots = free_slots.saturating_sub(1);
            }
            match outcome {
                Ok(dest) => {
                    started += 1;
                    self.update(&row, |u| {
                        u.dest_id = Some(dest);
                        u.last_error = None;
                    })
                    .await?;
                }
                Err(e) if matches!(e.kind, ErrorKind::LimitExceeded | ErrorKind::Throttled) => {
                    // Not a failure: the slot is AWS's, not ours. Back in the queue.
                    deferred += 1;
                    let text = e.to_string();
                    self.update(&row, |u| {
                        u.state = CopyState::Queued;
                        u.attempts -= 1;
                        u.last_error = Some(text);
                    })
                    .await?;
                    break;
                }
                Err(e) if e.kind == ErrorKind::Transient => {
                    // The request may have reached AWS (a lost response, a timeout): leave it
                    // journalled as requested without a DR id. Tracking resolves it by the
                    // source tag, and only re-requests after RESOLVE_GRACE_MS with no copy seen.
                    let text = crate::scheduler::error_chain(&e);
                    tracing::info!(kind = kind.as_str(), source = %source.id, error = %text,
                        "copy request outcome unknown; resolving by tag next cycle");
                    self.update(&row, |u| u.last_error = Some(text)).await?;
                }
                Err(e) if e.kind.is_retryable() => {
                    let text = crate::scheduler::error_chain(&e);
                    self.update(&row, |u| {
                        u.state = CopyState::Queued;
                        u.last_error = Some(text);
                    })
                    .await?;
                }
                Err(e) => {
                    let text = crate::scheduler::error_chain(&e);
                    tracing::warn!(kind = kind.as_str(), source = %source.id, error = %text, "copy request failed");
                    self.count(kind, "failed", 1);
                    self.update(&row, |u| {
                        u.state = CopyState::Failed;
                        u.last_error = Some(text);
                    })
                    .await?;
                }
            }
        }
        self.count(kind, "started", started);

        // 5. Retention of completed owned copies.
        let keep = self.settings.keep.get(&kind).copied().unwrap_or(2) as usize;
        let current: std::collections::HashSet<&str> =
            newest.values().map(|s| s.id.as_str()).collect();
        let deleted = self.retain(ops, &dr, &current, keep, cancel).await?;

        // 6. RPO.
        let after: Vec<CopyRecord> = self
            .store
            .active_copies(store_kind(kind), &self.settings.dr_region)
            .await?
            .into_iter()
            .filter(|r| r.state == CopyState::InFlight)
            .collect();
        for p in &mut protected {
            p.in_flight = after.iter().any(|r| r.resource_id == p.resource_id);
        }
        self.export(kind, &protected, &resource_ids, now);
        Ok(json!({
            "kind": kind.as_str(),
            "sources": sources.len(),
            "resources": protected.len(),
            "started": started,
            "deferred_by_limits": deferred,
            "deferred_by_quota": deferred_by_quota,
            "adopted_existing": adopted,
            "completed": completed,
            "failed": failed,
            "superseded": superseded.len(),
            "deleted_by_retention": deleted,
            "in_flight": after.len(),
        }))
    }

    /// Deletes owned completed DR copies beyond the newest `keep` per resource, never the copy
    /// of a source that is currently a candidate.
    async fn retain(
        &self,
        ops: &dyn CopyOps,
        dr: &[DrCopy],
        current: &std::collections::HashSet<&str>,
        keep: usize,
        cancel: &CancellationToken,
    ) -> Result<u64, ReconcileError> {
        let mut per_resource: BTreeMap<&str, Vec<&DrCopy>> = BTreeMap::new();
        for c in dr.iter().filter(|c| c.state == DrState::Completed) {
            if let Some(r) = c.resource_id.as_deref() {
                per_resource.entry(r).or_default().push(c);
            }
        }
        let mut deleted = 0;
        for copies in per_resource.values_mut() {
            copies.sort_by_key(|c| {
                std::cmp::Reverse((c.source_created_ms.unwrap_or(0), c.id.clone()))
            });
            for c in copies.iter().skip(keep.max(1)) {
                // Never the copy of a source that is some resource's newest now (an AMI shared
                // by several launch roles is one source under one of them).
                if c.source_id.as_deref().is_some_and(|s| current.contains(s)) {
                    continue;
                }
                let Some(owned) = &c.owned else { continue };
                if cancel.is_cancelled() {
                    return Err(ReconcileError::Cancelled);
                }
                match ops.delete(owned).await {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                deleted += 1;
                if let Some(src) = &c.source_id {
                    self.mark_deleted(ops.kind(), src).await?;
                }
            }
        }
        self.count(ops.kind(), "deleted", deleted);
        Ok(deleted)
    }

    async fn mark_deleted(&self, kind: CopyKind, source_id: &str) -> Result<(), ReconcileError> {
        let row = self
            .store
            .copy_by_source(store_kind(kind), source_id, &self.settings.dr_region)
            .await?;
        if let Some(row) = row {
            self.update(&row, |u| u.state = CopyState::Deleted).await?;
        }
        Ok(())
    }

    fn export(
        &self,
        kind: CopyKind,
        protected: &[Protected],
        sources: &[(&str, Option<&Source>)],
        now: i64,
    ) {
        let summary = plan::rpo_summary(protected, now);
        let mut exported = self
            .exported_tiers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now_tiers: std::collections::BTreeSet<u8> = summary.keys().map(|(_, t)| *t).collect();
        for gone in exported.difference(&now_tiers) {
            let labels = RpoLabels {
                kind: kind.as_str(),
                tier: gone.to_string(),
            };
            for g in [
                &self.metrics.rpo_worst,
                &self.metrics.rpo_median,
                &self.metrics.rpo_past_target,
                &self.metrics.rpo_never_copied,
                &self.metrics.copy_queue,
                &self.metrics.copy_in_flight,
            ] {
                g.get_or_create(&labels).set(0);
            }
        }
        *exported = now_tiers;
        drop(exported);
        for ((k, tier), st) in summary {
            let labels = RpoLabels {
                kind: k.as_str(),
                tier: tier.to_string(),
            };
            self.metrics
                .rpo_worst
                .get_or_create(&labels)
                .set(st.worst_lag_secs as i64);
            self.metrics
                .rpo_median
                .get_or_create(&labels)
                .set(st.median_lag_secs as i64);
            self.metrics
                .rpo_past_target
                .get_or_create(&labels)
                .set(st.past_target as i64);
            self.metrics
                .rpo_never_copied
                .get_or_create(&labels)
                .set(st.never_copied as i64);
            self.metrics
                .copy_queue
                .get_or_create(&labels)
                .set(st.queue_depth as i64);
            self.metrics
                .copy_in_flight
                .get_or_create(&labels)
                .set(st.in_flight as i64);
        }
        let rows = protected
            .iter()
            .zip(sources)
            .map(|(p, (_, src))| {
                let lag = p.lag_secs(now);
                ResourceRpo {
                    kind: kind.as_str(),
                    resource_id: p.resource_id.clone(),
                    tier: p.tier,
                    rpo_secs: p.rpo_secs,
                    lag_secs: lag,
                    past_target: lag.is_none_or(|l| l > p.rpo_secs),
                    newest_source_id: src.map(|s| s.id.clone()),
                    newest_source_ms: p.newest_source_ms,
                    copied_source_ms: p.copied_source_ms,
                    in_flight: p.in_flight,
                }
            })
            .collect();
        self.board.set(kind.as_str(), rows);
    }
}

#[async_trait]
impl Reconciler for CopyReconciler {
    fn name(&self) -> &'static str {
        self.ops.kind().as_str()
    }

    fn reads_primary(&self) -> bool {
        // Every kind lists its sources (snapshots, AMIs) in the primary region.
        true
    }

    fn keys(&self) -> Vec<String> {
        vec![self.ops.kind().as_str().to_owned()]
    }

    async fn reconcile(
        &self,
        _key: &str,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, ReconcileError> {
        let report = self.cycle(self.ops.as_ref(), cancel).await?;
        Ok(Reconciled {
            action: Action::requeue(self.settings.cycle),
            report,
        })
    }

    fn error_policy(&self, _key: &str, error: &ReconcileError, failures: u32) -> Action {
        backoff(
            error,
            failures,
            Duration::from_secs(5),
            self.settings.max_backoff,
        )
    }
}
