//! What a restore would need and do, known at every moment (SPEC R5, R6, R8–R10, D2).
//!
//! Three reconcilers keep the picture current:
//! - [`InventoryReconciler`] captures the primary estate each cycle and writes a new inventory
//!   document to the DR bucket only when its digest changed (R5), with the utilisation history
//!   plan B needs;
//! - [`S3WatchReconciler`] checks each configured bucket's replication and measures its lag (R6);
//! - [`ReadinessReconciler`] evaluates the readiness checks and the RTO estimate (R9, R10)
//!   from the DR side only: the store, the DR bucket, DR certificates and DR instances.
//!
//! [`Planner`] answers `GET /v1/plan`, dry runs and `pilotlight plan`. It reads only the
//! inventory document (from the DR bucket, through the store's pointer) and the store, so it
//! works with the primary region gone — which is the whole point.

mod inventory;
mod metrics;
mod readiness;
mod s3;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use pilotlight_aws::s3::DrS3;
use pilotlight_core::capacity::{CapacityPlan, capacity_plan};
use pilotlight_core::config::{Config, TenantConfig};
use pilotlight_core::inventory::Inventory;
use pilotlight_core::plan::{RestorePlan, restore_plan};
use pilotlight_core::readiness::ReadinessReport;
use pilotlight_core::scope::{DrCopy, DrState, Scope, ScopeError, select};
use pilotlight_store::{CopyKind, CopyState, InventoryVersion, Store, StoreError};
use serde::Serialize;

pub use inventory::InventoryReconciler;
pub use metrics::EstateMetrics;
pub use readiness::ReadinessReconciler;
pub use s3::{S3Board, S3WatchReconciler};

/// A document with its store pointer.
type Versioned = (InventoryVersion, Arc<Inventory>);

/// The newest inventory document this process knows, with its store pointer.
#[derive(Debug, Clone, Default)]
pub struct InventoryBoard {
    inner: Arc<RwLock<Option<Versioned>>>,
}

impl InventoryBoard {
    /// The cached document, if any.
    pub fn get(&self) -> Option<(InventoryVersion, Arc<Inventory>)> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, version: InventoryVersion, inventory: Arc<Inventory>) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Some((version, inventory));
    }
}

/// The latest readiness report and the DR certificate of each primary certificate.
#[derive(Debug, Clone, Default)]
pub struct ReadinessBoard {
    report: Arc<RwLock<Option<ReadinessReport>>>,
    certificates: Arc<RwLock<BTreeMap<String, String>>>,
}

impl ReadinessBoard {
    /// The latest report, if readiness ran.
    pub fn report(&self) -> Option<ReadinessReport> {
        self.report
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Primary certificate ARN → DR certificate ARN, as last resolved.
    pub fn certificates(&self) -> BTreeMap<String, String> {
        self.certificates
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_report(&self, report: ReadinessReport) {
        *self.report.write().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }

    fn set_certificates(&self, map: BTreeMap<String, String>) {
        *self
            .certificates
            .write()
            .unwrap_or_else(PoisonError::into_inner) = map;
    }
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No inventory document has been written yet.
    #[error(
        "no inventory has been captured yet: the inventory reconciler has not completed a cycle"
    )]
    NoInventory,
    /// The scope names unknown tenants or bad tiers.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The store failed.
    #[error("state store failed")]
    Store(#[from] StoreError),
    /// Reading the inventory document from the DR bucket failed.
    #[error("cannot read inventory document {key} from the DR bucket")]
    Read {
        key: String,
        #[source]
        source: Box<pilotlight_aws::s3::InventoryIoError>,
    },
}

/// A tenant with where it is defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantView {
    pub name: String,
    pub clusters: Vec<String>,
    /// `config` (the config file; read-only through the API) or `api`.
    pub source: &'static str,
}

/// What `GET /v1/plan` answers; a restore run keeps it as its plan.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PlanView {
    /// Store version of the inventory document the plan was built from.
    pub inventory_version: i64,
    /// The DR bucket holding that document.
    pub inventory_bucket: String,
    /// Its object key.
    pub inventory_key: String,
    /// When that inventory was captured (unix ms).
    pub captured_at_ms: i64,
    pub scope: Scope,
    pub capacity: CapacityPlan,
    pub restore: RestorePlan,
}

/// The mapping kind the DR certificate of each primary certificate is recorded under.
pub const CERTIFICATE_KIND: &str = "certificate";

/// Builds plans from the inventory document and the store only.
#[derive(Debug, Clone)]
pub struct Planner {
    store: Store,
    dr_s3: DrS3,
    board: InventoryBoard,
    readiness: ReadinessBoard,
    config: Arc<Config>,
}

impl Planner {
    /// A planner over `store` and the DR bucket `dr_s3`.
    pub fn new(
        store: Store,
        dr_s3: DrS3,
        board: InventoryBoard,
        readiness: ReadinessBoard,
        config: Arc<Config>,
    ) -> Planner {
        Planner {
            store,
            dr_s3,
            board,
            readiness,
            config,
        }
    }

    /// Records the DR certificate of each primary certificate (mapping kind
    /// [`CERTIFICATE_KIND`]), so every replica plans with the leader's last resolution: writes
    /// only what changed, deletes what no longer resolves.
    ///
    /// # Errors
    /// The store's error.
    pub async fn record_certificates(
        &self,
        map: &BTreeMap<String, String>,
    ) -> Result<(), pilotlight_store::StoreError> {
        let stored = self.stored_certificates().await?;
        let now = crate::now_ms();
        for (primary, dr) in map {
            if stored.get(primary) == Some(dr) {
                continue;
            }
            self.store
                .upsert_mapping(
                    &pilotlight_store::NewMapping {
                        kind: CERTIFICATE_KIND.to_owned(),
                        primary_id: primary.clone(),
                        dr_id: dr.clone(),
                        primary_region: self.config.regions.primary.clone(),
                        dr_region: self.config.regions.dr.clone(),
                        fingerprint: String::new(),
                        status: pilotlight_store::MappingStatus::Active,
                    },
                    now,
                )
                .await?;
        }
        for primary in stored.keys().filter(|p| !map.contains_key(*p)) {
            self.store.delete_mapping(CERTIFICATE_KIND, primary).await?;
        }
        Ok(())
    }

    /// The certificate mappings in the store: primary ARN → DR ARN.
    async fn stored_certificates(
        &self,
    ) -> Result<BTreeMap<String, String>, pilotlight_store::StoreError> {
        let mut out = BTreeMap::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_mappings(Some(CERTIFICATE_KIND), after.clone(), 1000)
                .await?;
            let full = page.len() == 1000;
            after = page.last().map(|m| (m.kind.clone(), m.primary_id.clone()));
            out.extend(page.into_iter().map(|m| (m.primary_id, m.dr_id)));
            if !full {
                return Ok(out);
            }
        }
    }

    /// The configuration plans are made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tenants from the config file and the store; a stored tenant never shadows a configured
    /// one (the API refuses to write those names).
    ///
    /// # Errors
    ///
    /// [`PlanError::Store`] when the store fails.
    pub async fn tenants(&self) -> Result<Vec<TenantView>, PlanError> {
        let mut out: Vec<TenantView> = self
            .config
            .tenants
            .iter()
            .map(|t| TenantView {
                name: t.name.clone(),
                clusters: t.clusters.clone(),
                source: "config",
            })
            .collect();
        for t in self.store.list_tenants().await? {
            if !out.iter().any(|c| c.name == t.name) {
                out.push(TenantView {
                    name: t.name,
                    clusters: t.clusters,
                    source: "api",
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether `name` is defined in the config file.
    pub fn is_config_tenant(&self, name: &str) -> bool {
        self.config.tenants.iter().any(|t| t.name == name)
    }

    /// The newest inventory: the cached one when it is the store's latest, else read from the
    /// DR bucket through the store's pointer.
    ///
    /// # Errors
    ///
    /// [`PlanError::NoInventory`] before the first capture; store and S3 failures.
    pub async fn inventory(&self) -> Result<(InventoryVersion, Arc<Inventory>), PlanError> {
        let Some(latest) = self.store.latest_inventory().await? else {
            return Err(PlanError::NoInventory);
        };
        if let Some((version, inventory)) = self.board.get()
            && version.version == latest.version
        {
            return Ok((version, inventory));
        }
        let inventory =
            pilotlight_aws::s3::read_inventory(&self.dr_s3, &latest.bucket, &latest.object_key)
                .await
                .map_err(|e| PlanError::Read {
                    key: latest.object_key.clone(),
                    source: Box::new(e),
                })?;
        let inventory = Arc::new(inventory);
        self.board.set(latest.clone(), inventory.clone());
        Ok((latest, inventory))
    }

    /// What the DR region holds, from the store (mappings, newest completed copies) and the
    /// last certificate resolution (plus `readiness.certificate_map`).
    ///
    /// # Errors
    ///
    /// [`PlanError::Store`] when the store fails.
    pub async fn dr_state(&self) -> Result<DrState, PlanError> {
        let dr_region = &self.config.regions.dr;
        let mut state = DrState::default();
        let mut after = None;
        loop {
            let page = self.store.list_mappings(None, after.clone(), 1000).await?;
            let full = page.len() == 1000;
            for m in &page {
                if m.status != pilotlight_store::MappingStatus::Active {
                    continue;
                }
                if m.kind == CERTIFICATE_KIND {
                    // The leader's last resolution (a follower has none of its own).
                    state
                        .certificates
                        .insert(m.primary_id.clone(), m.dr_id.clone());
                } else {
                    state.mappings.insert(m.primary_id.clone(), m.dr_id.clone());
                }
            }
            after = page.last().map(|m| (m.kind.clone(), m.primary_id.clone()));
            if !full {
                break;
            }
        }
        let newest =
            |kind| async move { self.store.newest_completed_copies(kind, dr_region).await };
        for c in newest(CopyKind::EbsSnapshot).await? {
            if let Some(dr_id) = c.dest_id {
                state.volume_snapshots.insert(
                    c.resource_id,
                    DrCopy {
                        dr_id,
                        source_created_at_ms: c.source_created_at_ms,
                    },
                );
            }
        }
        for c in newest(CopyKind::RdsSnapshot).await? {
            if let Some(dr_id) = c.dest_id {
                state.db_snapshots.insert(
                    c.resource_id,
                    DrCopy {
                        dr_id,
                        source_created_at_ms: c.source_created_at_ms,
                    },
                );
            }
        }
        for c in newest(CopyKind::RdsClusterSnapshot).await? {
            if let Some(dr_id) = c.dest_id {
                state.db_cluster_snapshots.insert(
                    c.resource_id,
                    DrCopy {
                        dr_id,
                        source_created_at_ms: c.source_created_at_ms,
                    },
                );
            }
        }
        // Every completed AMI copy (not only the newest per role: older instances of a role
        // may still run an older, already copied AMI).
        for c in self
            .store
            .list_copies(Some(CopyKind::Ami), &[CopyState::Completed], 100_000)
            .await?
        {
            if let Some(dr_id) = c.dest_id
                && c.dest_region == *dr_region
            {
                state.images.insert(
                    c.source_id,
                    DrCopy {
                        dr_id,
                        source_created_at_ms: c.source_created_at_ms,
                    },
                );
            }
        }
        state.certificates.extend(self.readiness.certificates());
        for (primary, dr) in &self.config.readiness.certificate_map {
            state.certificates.insert(primary.clone(), dr.clone());
        }
        Ok(state)
    }

    /// The inventory document at `bucket`/`object_key` recorded as `version`: the one a restore
    /// run was planned from, read again when the run resumes (the cached document when it is
    /// that version).
    ///
    /// # Errors
    ///
    /// [`PlanError::Read`] when the DR bucket cannot be read or the document is invalid.
    pub async fn inventory_document(
        &self,
        version: i64,
        bucket: &str,
        object_key: &str,
    ) -> Result<Arc<Inventory>, PlanError> {
        if let Some((cached, inventory)) = self.board.get()
            && cached.version == version
        {
            return Ok(inventory);
        }
        let inventory = pilotlight_aws::s3::read_inventory(&self.dr_s3, bucket, object_key)
            .await
            .map_err(|e| PlanError::Read {
                key: object_key.to_owned(),
                source: Box::new(e),
            })?;
        Ok(Arc::new(inventory))
    }

    /// The capacity and restore plans for `scope`.
    ///
    /// # Errors
    ///
    /// [`PlanError`]: no inventory yet, a bad scope, store or S3 failures.
    pub async fn plan(&self, scope: &Scope) -> Result<PlanView, PlanError> {
        let (version, inventory) = self.inventory().await?;
        let dr = self.dr_state().await?;
        let tenants: Vec<TenantConfig> = self
            .tenants()
            .await?
            .into_iter()
            .map(|t| TenantConfig {
                name: t.name,
                clusters: t.clusters,
            })
            .collect();
        let selection = select(&inventory, &tenants, scope)?;
        let capacity = capacity_plan(&inventory, &selection, &self.config.quotas);
        let restore = restore_plan(
            &inventory,
            &selection,
            &dr,
            &self.config.restore,
            &self.config.throttle,
        );
        Ok(PlanView {
            inventory_version: version.version,
            inventory_bucket: version.bucket.clone(),
            inventory_key: version.object_key.clone(),
            captured_at_ms: version.captured_at_ms,
            scope: scope.clone(),
            capacity,
            restore,
        })
    }
}
