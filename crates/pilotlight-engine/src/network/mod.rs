//! R1, the network mirror: keeps the DR region's VPCs, subnets, security groups, internet
//! gateways and route tables matching the primary's.
//!
//! One cycle: read the primary network and the DR network pilotlight manages (paginated lists
//! only), [`plan`](pilotlight_core::network::plan) the difference, apply it, and bring the store's
//! mapping table in line. A cycle with nothing to change makes no mutating call. A DR resource
//! whose primary source has gone is reported (status, metric, mapping marked `orphaned`); it is
//! deleted only when `network.prune = true`, and then only if it carries the managed tag.
//! The primary is read through [`PrimaryEc2`], which cannot mutate.

mod apply;
mod discover;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use pilotlight_aws::ec2::{DrEc2, Owned, PrimaryEc2};
use pilotlight_core::network::{self, AzMap, IdMap, MirrorScope, NetworkKind, NetworkSnapshot};
use pilotlight_store::{MappingStatus, NewMapping, Store};
use serde_json::json;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::ReconcileError;
use crate::metrics::{ChangeLabels, EngineMetrics, KindLabels};
use crate::scheduler::{Action, Reconciled, Reconciler, backoff};

/// Page size when reading the store's mappings.
const MAPPING_PAGE: u32 = 1000;

/// How many applied actions a cycle report lists.
const REPORT_CHANGES: usize = 50;

/// The network mirror's settings (from the config's `regions`, `network` and `reconcile`).
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Explicit primary AZ → DR AZ entries; other AZs map by letter order.
    pub az_map: BTreeMap<String, String>,
    pub scope: MirrorScope,
    pub prune: bool,
    pub cycle: Duration,
    pub max_backoff: Duration,
}

/// The R1 reconciler. Its one key, `network`, covers the whole region pair: the plan needs the
/// whole picture to remap security-group references across VPCs.
pub struct NetworkReconciler {
    primary: PrimaryEc2,
    dr: DrEc2,
    store: Store,
    settings: NetworkSettings,
    metrics: EngineMetrics,
    azs: OnceCell<AzMap>,
}

impl std::fmt::Debug for NetworkReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkReconciler")
            .field("primary", &self.primary.region())
            .field("dr", &self.dr.region())
            .field("settings", &self.settings)
            .finish()
    }
}

impl NetworkReconciler {
    pub fn new(
        primary: PrimaryEc2,
        dr: DrEc2,
        store: Store,
        settings: NetworkSettings,
        metrics: EngineMetrics,
    ) -> NetworkReconciler {
        NetworkReconciler {
            primary,
            dr,
            store,
            settings,
            metrics,
            azs: OnceCell::new(),
        }
    }

    async fn az_map(&self) -> Result<&AzMap, ReconcileError> {
        self.azs
            .get_or_try_init(|| async {
                use discover::Ec2Reader;
                let primary = self.primary.availability_zones().await?;
                let dr = self.dr.availability_zones().await?;
                Ok::<_, ReconcileError>(AzMap::new(&self.settings.az_map, &primary, &dr))
            })
            .await
    }

    /// One full cycle.
    ///
    /// # Errors
    /// The first failed AWS or store call, or [`ReconcileError::Cancelled`].
    pub async fn cycle(
        &self,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, ReconcileError> {
        let azs = self.az_map().await?.clone();
        let primary = discover::primary(&self.primary).await?;
        let dr = discover::dr(&self.dr).await?;
        let plan = network::plan(&primary, &dr, &azs, &self.settings.scope);

        let mut applier = apply::Applier {
            dr: &self.dr,
            store: &self.store,
            primary_region: self.primary.region(),
            ids: IdMap::from_dr(&dr),
            mutations: 0,
        };
        let mut applied = Vec::new();
        let outcome = applier.apply(&plan.actions, cancel, &mut applied).await;
        for a in &applied {
            self.metrics
                .network_changes
                .get_or_create(&ChangeLabels {
                    kind: a.kind().as_str(),
                    action: a.verb(),
                })
                .inc();
        }
        outcome?;

        let mut pruned = Vec::new();
        if self.settings.prune {
            for orphan in plan
                .orphans
                .iter()
                .filter(|o| o.kind == NetworkKind::Subnet)
            {
                if cancel.is_cancelled() {
                    return Err(ReconcileError::Cancelled);
                }
                let owned = dr
                    .subnets
                    .iter()
                    .find(|s| s.id == orphan.dr_id)
                    .and_then(|s| {
                        Owned::from_pairs(
                            &s.id,
                            s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                        )
                    });
                if let Some(owned) = owned {
                    self.dr.delete_subnet(&owned).await?;
                    applier.mutations += 1;
                    self.store
                        .delete_mapping(NetworkKind::Subnet.as_str(), &orphan.source)
                        .await?;
                    applier.ids.remove(NetworkKind::Subnet, &orphan.source);
                    self.metrics
                        .network_changes
                        .get_or_create(&ChangeLabels {
                            kind: NetworkKind::Subnet.as_str(),
                            action: "delete",
                        })
                        .inc();
                    pruned.push(orphan.clone());
                }
            }
        }
        let orphans: Vec<_> = plan
            .orphans
            .iter()
            .filter(|o| !pruned.contains(o))
            .cloned()
            .collect();

        self.sync_store(&applier.ids, &primary, &orphans).await?;
        self.export(&applier.ids, &orphans, plan.unmirrored.len());

        Ok(json!({
            "mutating_calls": applier.mutations,
            "applied": applied.len(),
            // The first changes, for operators reading `/v1/status` (bounded).
            "changes": applied.iter().take(REPORT_CHANGES).collect::<Vec<_>>(),
            "planned": plan.actions.len(),
            "primary": {
                "vpcs": primary.vpcs.len(),
                "subnets": primary.subnets.len(),
                "security_groups": primary.security_groups.len(),
                "route_tables": primary.route_tables.len(),
                "internet_gateways": primary.internet_gateways.len(),
            },
            "orphans": orphans,
            "pruned": pruned,
            "unmirrored": plan.unmirrored,
        }))
    }

    /// Makes the store's mappings equal to the live mapping: writes only rows that differ.
    async fn sync_store(
        &self,
        ids: &IdMap,
        primary: &NetworkSnapshot,
        orphans: &[network::Orphan],
    ) -> Result<(), ReconcileError> {
        let mut stored = BTreeMap::new();
        for kind in NetworkKind::ALL {
            let mut after = None;
            loop {
                let page = self
                    .store
                    .list_mappings(Some(kind.as_str()), after.clone(), MAPPING_PAGE)
                    .await?;
                let full = page.len() == MAPPING_PAGE as usize;
                let last = page.last().map(|m| (m.kind.clone(), m.primary_id.clone()));
                for m in page {
                    stored.insert((m.kind.clone(), m.primary_id.clone()), m);
                }
                match last {
                    Some(l) if full => after = Some(l),
                    _ => break,
                }
            }
        }
        let orphaned: BTreeSet<(&str, &str)> = orphans
            .iter()
            .map(|o| (o.kind.as_str(), o.source.as_str()))
            .collect();
        let now = crate::now_ms();
        for (kind, source, dr_id) in ids.pairs() {
            let status = if orphaned.contains(&(kind.as_str(), source)) {
                MappingStatus::Orphaned
            } else {
                MappingStatus::Active
            };
            let existing = stored.get(&(kind.as_str().to_owned(), source.to_owned()));
            let up_to_date = existing.is_some_and(|m| m.dr_id == dr_id && m.status == status);
            if !up_to_date {
                let fingerprint = existing
                    .map(|m| m.fingerprint.clone())
                    .unwrap_or_else(|| fingerprint(kind, source, primary));
                let row = Regions {
                    primary: self.primary.region(),
                    dr: self.dr.region(),
                }
                .mapping(kind, source, dr_id, fingerprint, status);
                self.store.upsert_mapping(&row, now).await?;
            }
        }
        Ok(())
    }

    fn export(&self, ids: &IdMap, orphans: &[network::Orphan], unmirrored: usize) {
        for kind in NetworkKind::ALL {
            let total = ids.by_kind.get(&kind).map_or(0, BTreeMap::len);
            let orphaned = orphans.iter().filter(|o| o.kind == kind).count();
            let labels = KindLabels {
                kind: kind.as_str(),
            };
            self.metrics
                .network_mirrored
                .get_or_create(&labels)
                .set((total - orphaned.min(total)) as i64);
            self.metrics
                .network_orphaned
                .get_or_create(&labels)
                .set(orphaned as i64);
        }
        self.metrics
            .network_unmirrored_routes
            .set(unmirrored as i64);
    }
}

/// The region pair a mapping row records.
pub(crate) struct Regions<'a> {
    pub primary: &'a str,
    pub dr: &'a str,
}

impl Regions<'_> {
    /// The store row for one primary → DR pair.
    pub(crate) fn mapping(
        &self,
        kind: NetworkKind,
        source: &str,
        dr_id: &str,
        fingerprint: String,
        status: MappingStatus,
    ) -> NewMapping {
        NewMapping {
            kind: kind.as_str().to_owned(),
            primary_id: source.to_owned(),
            dr_id: dr_id.to_owned(),
            primary_region: self.primary.to_owned(),
            dr_region: self.dr.to_owned(),
            fingerprint,
            status,
        }
    }
}

fn fingerprint(kind: NetworkKind, source: &str, primary: &NetworkSnapshot) -> String {
    match kind {
        NetworkKind::Vpc => primary
            .vpcs
            .iter()
            .find(|v| v.id == source)
            .map(|v| v.cidr.clone()),
        NetworkKind::Subnet => primary
            .subnets
            .iter()
            .find(|s| s.id == source)
            .map(|s| format!("{}@{}", s.cidr, s.az)),
        NetworkKind::SecurityGroup => primary
            .security_groups
            .iter()
            .find(|g| g.id == source)
            .map(|g| g.name.clone()),
        NetworkKind::RouteTable | NetworkKind::InternetGateway => None,
    }
    .unwrap_or_default()
}

#[async_trait]
impl Reconciler for NetworkReconciler {
    fn name(&self) -> &'static str {
        "network"
    }

    fn reads_primary(&self) -> bool {
        // The primary VPCs, subnets and security groups are mirrored.
        true
    }

    fn keys(&self) -> Vec<String> {
        vec!["network".into()]
    }

    async fn reconcile(
        &self,
        _key: &str,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, ReconcileError> {
        let report = self.cycle(cancel).await?;
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
