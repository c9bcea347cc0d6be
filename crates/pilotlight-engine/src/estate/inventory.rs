//! The inventory reconciler (SPEC R5): one key, `estate`.
//!
//! Each cycle: capture the primary estate (describe and list calls only), attach the
//! utilisation figures (collected from the primary's CloudWatch at most every
//! `inventory.utilisation_refresh_secs`, carried over in between), normalise, and compare the
//! document's digest with the store's latest. Equal: nothing is written. Different: the gzip
//! JSON document goes to `s3://<bucket>/<prefix><captured_at_ms>-<digest12>.json.gz` in the DR
//! region and then its pointer (key, SHA-256 of the bytes, size, digest, counts) to the store —
//! in that order, so the store never points at an object that does not exist. A crash between
//! the two leaves an unreferenced object that the next cycle's write supersedes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use pilotlight_aws::capture::{CaptureOptions, PrimaryHandles, capture_inventory};
use pilotlight_aws::cloudwatch::{PrimaryCloudWatch, collect_utilisation};
use pilotlight_aws::s3::{DrS3, write_inventory};
use pilotlight_core::config::Config;
use pilotlight_core::inventory::{Inventory, SCHEMA_VERSION, Utilisation};
use pilotlight_store::{NewInventoryVersion, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::metrics::{ClassLabels, OutcomeLabels};
use super::{EstateMetrics, InventoryBoard};
use crate::error::ReconcileError;
use crate::scheduler::{Action, Reconciled, Reconciler, backoff};

/// The reconciler's only key.
pub const KEY: &str = "estate";

/// Captures the primary estate into versioned inventory documents.
#[derive(Debug)]
pub struct InventoryReconciler {
    primary: PrimaryHandles,
    cloudwatch: PrimaryCloudWatch,
    dr_s3: DrS3,
    store: Store,
    board: InventoryBoard,
    config: Arc<Config>,
    metrics: EstateMetrics,
    bucket_ready: AtomicBool,
    /// Utilisation by instance id and when it was collected.
    utilisation: Mutex<Option<(Instant, BTreeMap<String, Utilisation>)>>,
}

impl InventoryReconciler {
    /// A reconciler writing to `config.inventory.bucket` in the DR region.
    pub fn new(
        primary: PrimaryHandles,
        cloudwatch: PrimaryCloudWatch,
        dr_s3: DrS3,
        store: Store,
        board: InventoryBoard,
        config: Arc<Config>,
        metrics: EstateMetrics,
    ) -> InventoryReconciler {
        InventoryReconciler {
            primary,
            cloudwatch,
            dr_s3,
            store,
            board,
            config,
            metrics,
            bucket_ready: AtomicBool::new(false),
            utilisation: Mutex::new(None),
        }
    }

    /// The utilisation to attach: the carried-over figures unless a refresh is due; on a
    /// CloudWatch failure, the previous figures (logged, retried next cycle).
    async fn utilisation(&self, inventory: &Inventory) -> BTreeMap<String, Utilisation> {
        let c = &self.config.inventory;
        if !c.utilisation {
            return BTreeMap::new();
        }
        let refresh = Duration::from_secs(c.utilisation_refresh_secs);
        let cached = self
            .utilisation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let ids: Vec<String> = inventory.instances.iter().map(|i| i.id.clone()).collect();
        let figures = match cached {
            // Carried over until the refresh, even when a new instance lacks figures: a new
            // instance has no history worth a burst of calls.
            Some((at, figures)) if at.elapsed() < refresh => figures,
            stale => {
                match collect_utilisation(
                    &self.cloudwatch,
                    &ids,
                    c.utilisation_window_days,
                    c.utilisation_period_secs,
                    &c.memory_namespace,
                    &c.memory_metric,
                    SystemTime::now(),
                )
                .await
                {
                    Ok(figures) => {
                        *self
                            .utilisation
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) =
                            Some((Instant::now(), figures.clone()));
                        figures
                    }
                    // The inventory matters more than fresh utilisation: keep the figures we
                    // have (none on a first failure) and try again next cycle.
                    Err(e) => {
                        tracing::warn!(
                            error = %crate::scheduler::error_chain(&e),
                            instances = ids.len(),
                            "collecting utilisation from CloudWatch failed; keeping the previous figures"
                        );
                        stale.map(|(_, figures)| figures).unwrap_or_default()
                    }
                }
            }
        };
        // Only instances still in the estate.
        let current: std::collections::BTreeSet<&String> = ids.iter().collect();
        figures
            .into_iter()
            .filter(|(id, _)| current.contains(id))
            .collect()
    }

    fn set_gauges(&self, inventory: &Inventory, version: i64, size_bytes: i64) {
        for (class, count) in inventory.counts() {
            self.metrics
                .inventory_resources
                .get_or_create(&ClassLabels { class })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.metrics.inventory_version.set(version);
        self.metrics.inventory_bytes.set(size_bytes);
        self.metrics
            .inventory_captured
            .set(crate::now_ms() as f64 / 1000.0);
    }
}

#[async_trait]
impl Reconciler for InventoryReconciler {
    fn name(&self) -> &'static str {
        "inventory"
    }

    fn reads_primary(&self) -> bool {
        // The inventory is captured from the primary region.
        true
    }

    fn keys(&self) -> Vec<String> {
        vec![KEY.to_owned()]
    }

    async fn reconcile(
        &self,
        _key: &str,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, ReconcileError> {
        let c = &self.config.inventory;
        let cycle = Action::requeue(Duration::from_secs(c.cycle_secs));
        if !self.bucket_ready.load(Ordering::Relaxed) {
            self.dr_s3.ensure_bucket(&c.bucket).await?;
            self.bucket_ready.store(true, Ordering::Relaxed);
        }
        let options = CaptureOptions::from_config(&self.config);
        let mut inventory = capture_inventory(&self.primary, &options).await?;
        if cancel.is_cancelled() {
            return Err(ReconcileError::Cancelled);
        }
        inventory.utilisation = self.utilisation(&inventory).await;
        inventory.schema_version = SCHEMA_VERSION;
        inventory.captured_at_ms = crate::now_ms();
        inventory.normalize();
        let digest = inventory.digest();

        let latest = self.store.latest_inventory().await?;
        if let Some(latest) = latest.filter(|l| l.digest == digest) {
            self.metrics
                .inventory_captures
                .get_or_create(&OutcomeLabels {
                    outcome: "unchanged",
                })
                .inc();
            self.set_gauges(&inventory, latest.version, latest.size_bytes);
            if self
                .board
                .get()
                .is_none_or(|(v, _)| v.version != latest.version)
            {
                // Same content as stored; keep the in-memory copy with the stored pointer.
                self.board.set(latest.clone(), Arc::new(inventory));
            }
            return Ok(Reconciled {
                action: cycle,
                report: json!({"changed": false, "version": latest.version, "digest": digest}),
            });
        }

        let key = format!(
            "{}{}-{}.json.gz",
            c.prefix,
            inventory.captured_at_ms,
            &digest[..12]
        );
        let written = write_inventory(&self.dr_s3, &c.bucket, &key, &inventory).await?;
        let counts: BTreeMap<&str, usize> = inventory.counts();
        let new = NewInventoryVersion {
            schema_version: i32::try_from(SCHEMA_VERSION).unwrap_or(i32::MAX),
            bucket: c.bucket.clone(),
            object_key: key.clone(),
            sha256: written.sha256.clone(),
            size_bytes: i64::try_from(written.size_bytes).unwrap_or(i64::MAX),
            captured_at_ms: inventory.captured_at_ms,
            counts_json: serde_json::to_string(&counts).unwrap_or_else(|_| "{}".to_owned()),
            digest: digest.clone(),
        };
        let version = self.store.record_inventory_version(&new).await?;
        self.metrics
            .inventory_captures
            .get_or_create(&OutcomeLabels { outcome: "written" })
            .inc();
        self.set_gauges(&inventory, version, new.size_bytes);
        tracing::info!(version, key = %key, bytes = new.size_bytes, "inventory document written");
        let stored = pilotlight_store::InventoryVersion {
            version,
            schema_version: new.schema_version,
            bucket: new.bucket,
            object_key: new.object_key,
            sha256: new.sha256,
            size_bytes: new.size_bytes,
            captured_at_ms: new.captured_at_ms,
            counts_json: new.counts_json,
            digest: new.digest,
        };
        self.board.set(stored, Arc::new(inventory));
        Ok(Reconciled {
            action: cycle,
            report: json!({"changed": true, "version": version, "key": key, "counts": counts}),
        })
    }

    fn error_policy(&self, _key: &str, error: &ReconcileError, failures: u32) -> Action {
        backoff(
            error,
            failures,
            Duration::from_secs(5),
            Duration::from_secs(self.config.reconcile.max_backoff_secs),
        )
    }
}
