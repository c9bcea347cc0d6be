//! What a plan covers, and what the DR region already holds for it.
//!
//! [`select`] narrows an [`Inventory`] to a [`Scope`]: the instances of a set of tenants'
//! clusters (each shared cluster once) and tiers, the load balancers serving them, the records
//! pointing at any of those, and the databases of those clusters. An Aurora cluster is selected
//! by its own tier and cluster tag and brings all its member DB instances along. The capacity plan (R8), the
//! restore plan (D2) and readiness (R10) all start from the same selection.
//!
//! [`DrState`] is what the store knows about the DR region: id mappings from the network
//! mirror, the newest completed copies of volumes, databases, Aurora clusters and AMIs, and the
//! DR certificate of
//! each primary certificate. The engine fills it from the store; everything here is pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::TenantConfig;
use crate::inventory::{
    ClassicLoadBalancer, DbCluster, DbInstance, HostedZone, Instance, Inventory, LoadBalancer,
    Record,
};

/// The part of the estate a plan is for. Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scope {
    /// Tenants whose clusters are included (their union; shared clusters once). Empty: the
    /// whole estate, clustered or not.
    pub tenants: Vec<String>,
    /// Tiers included. Empty: every tier.
    pub tiers: Vec<u8>,
}

/// A newest completed DR copy of a primary resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrCopy {
    /// The DR-region id (snapshot id, DB snapshot identifier, AMI id).
    pub dr_id: String,
    /// When the copied source was taken (unix ms): the RPO point.
    pub source_created_at_ms: i64,
}

/// What the DR region holds for a restore, from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrState {
    /// Primary id → DR id of mirrored network resources (VPCs, subnets, security groups).
    pub mappings: BTreeMap<String, String>,
    /// Primary volume id → newest completed DR snapshot copy.
    pub volume_snapshots: BTreeMap<String, DrCopy>,
    /// Primary AMI id → its DR copy.
    pub images: BTreeMap<String, DrCopy>,
    /// Primary DB instance identifier → newest completed DR DB snapshot copy.
    pub db_snapshots: BTreeMap<String, DrCopy>,
    /// Primary Aurora cluster identifier → newest completed DR cluster snapshot copy.
    #[serde(default)]
    pub db_cluster_snapshots: BTreeMap<String, DrCopy>,
    /// Primary certificate ARN → DR certificate ARN.
    pub certificates: BTreeMap<String, String>,
}

/// A plan's selection of the inventory.
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// Tenants in scope (all configured tenants' names when the scope named none).
    pub tenants: Vec<String>,
    /// Cluster → tenants needing it, for the clusters in scope.
    pub clusters: BTreeMap<String, Vec<String>>,
    /// Instances in scope, in inventory order.
    pub instances: Vec<&'a Instance>,
    /// Classic load balancers with at least one instance in scope (all when unscoped).
    pub classic_load_balancers: Vec<&'a ClassicLoadBalancer>,
    /// v2 load balancers with at least one target in scope (all when unscoped).
    pub load_balancers: Vec<&'a LoadBalancer>,
    /// Records pointing at something in scope (all when unscoped), with their zone.
    pub records: Vec<(&'a HostedZone, &'a Record)>,
    /// DB instances in scope: of a cluster in scope (all when unscoped); members of an Aurora
    /// cluster are in scope exactly when their cluster is.
    pub db_instances: Vec<&'a DbInstance>,
    /// Aurora clusters in scope: by their own tier and cluster tag (all when unscoped).
    pub db_clusters: Vec<&'a DbCluster>,
}

/// Why a scope cannot be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The scope names tenants that are not configured.
    #[error("unknown tenants: {}", .0.join(", "))]
    UnknownTenants(Vec<String>),
    /// A tier outside 1 to 9.
    #[error("tier {0} is not a tier: expected 1 to 9")]
    BadTier(u8),
}

/// Narrows `inventory` to `scope` (see the module doc).
///
/// # Errors
///
/// [`ScopeError`] when the scope names an unknown tenant or an impossible tier.
pub fn select<'a>(
    inventory: &'a Inventory,
    tenants: &[TenantConfig],
    scope: &Scope,
) -> Result<Selection<'a>, ScopeError> {
    if let Some(bad) = scope.tiers.iter().find(|t| !(1..=9).contains(*t)) {
        return Err(ScopeError::BadTier(*bad));
    }
    let unknown: Vec<String> = scope
        .tenants
        .iter()
        .filter(|name| !tenants.iter().any(|t| &t.name == *name))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(ScopeError::UnknownTenants(unknown));
    }
    let scoped = !scope.tenants.is_empty();
    let chosen: Vec<&TenantConfig> = tenants
        .iter()
        .filter(|t| !scoped || scope.tenants.contains(&t.name))
        .collect();
    let mut clusters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tenant in &chosen {
        for cluster in &tenant.clusters {
            let users = clusters.entry(cluster.clone()).or_default();
            if !users.contains(&tenant.name) {
                users.push(tenant.name.clone());
            }
        }
    }
    let tier_ok = |tier: u8| scope.tiers.is_empty() || scope.tiers.contains(&tier);
    let cluster_ok = |cluster: &Option<String>| {
        !scoped || cluster.as_ref().is_some_and(|c| clusters.contains_key(c))
    };

    let instances: Vec<&Instance> = inventory
        .instances
        .iter()
        .filter(|i| tier_ok(i.tier) && cluster_ok(&i.cluster))
        .collect();
    let db_clusters: Vec<&DbCluster> = inventory
        .db_clusters
        .iter()
        .filter(|c| tier_ok(c.tier) && cluster_ok(&c.cluster))
        .collect();
    let captured: BTreeSet<&str> = inventory
        .db_clusters
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    let chosen_clusters: BTreeSet<&str> = db_clusters.iter().map(|c| c.id.as_str()).collect();
    let db_instances: Vec<&DbInstance> = inventory
        .db_instances
        .iter()
        .filter(|d| match d.cluster_id.as_deref() {
            Some(c) if captured.contains(c) => chosen_clusters.contains(c),
            _ => tier_ok(d.tier) && cluster_ok(&d.cluster),
        })
        .collect();
    let narrowed = scoped || !scope.tiers.is_empty();
    let ids: BTreeSet<&str> = instances.iter().map(|i| i.id.as_str()).collect();

    let classic_load_balancers: Vec<&ClassicLoadBalancer> = inventory
        .classic_load_balancers
        .iter()
        .filter(|lb| !narrowed || lb.instance_ids.iter().any(|i| ids.contains(i.as_str())))
        .collect();
    let load_balancers: Vec<&LoadBalancer> = inventory
        .load_balancers
        .iter()
        .filter(|lb| {
            !narrowed
                || lb
                    .target_groups
                    .iter()
                    .flat_map(|tg| &tg.targets)
                    .any(|t| ids.contains(t.id.as_str()))
        })
        .collect();

    // What a record may point at: instance IPs and DNS names of what is in scope.
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for i in &instances {
        targets.extend(i.private_ip.iter().cloned());
        targets.extend(i.public_ip.iter().cloned());
    }
    for lb in &classic_load_balancers {
        targets.insert(normalize_dns(&lb.dns_name));
    }
    for lb in &load_balancers {
        targets.insert(normalize_dns(&lb.dns_name));
    }
    for db in &db_instances {
        targets.extend(db.endpoint_address.iter().map(|a| normalize_dns(a)));
    }
    for c in &db_clusters {
        targets.extend(
            c.endpoint
                .iter()
                .chain(&c.reader_endpoint)
                .map(|a| normalize_dns(a)),
        );
    }
    let records = inventory
        .hosted_zones
        .iter()
        .flat_map(|z| z.records.iter().map(move |r| (z, r)))
        .filter(|(_, r)| {
            !narrowed
                || r.values.iter().any(|v| targets.contains(&normalize_dns(v)))
                || r.alias
                    .as_ref()
                    .is_some_and(|a| targets.contains(&normalize_dns(&a.dns_name)))
        })
        .collect();

    Ok(Selection {
        tenants: chosen.iter().map(|t| t.name.clone()).collect(),
        clusters,
        instances,
        classic_load_balancers,
        load_balancers,
        records,
        db_instances,
        db_clusters,
    })
}

/// A DNS name compared without case, trailing dot or the `dualstack.` prefix AWS puts on
/// alias targets.
pub fn normalize_dns(name: &str) -> String {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    lower
        .strip_prefix("dualstack.")
        .map(str::to_owned)
        .unwrap_or(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{AliasTarget, DbClusterMember, Target, TargetGroup};

    fn instance(id: &str, tier: u8, cluster: Option<&str>, ip: &str) -> Instance {
        Instance {
            id: id.into(),
            instance_type: "m5.large".into(),
            tier,
            cluster: cluster.map(Into::into),
            private_ip: Some(ip.into()),
            ..Instance::default()
        }
    }

    fn estate() -> Inventory {
        Inventory {
            instances: vec![
                instance("i-1", 1, Some("web"), "10.0.0.1"),
                instance("i-2", 1, Some("shared"), "10.0.0.2"),
                instance("i-3", 2, Some("search"), "10.0.0.3"),
                instance("i-4", 3, None, "10.0.0.4"),
            ],
            load_balancers: vec![LoadBalancer {
                arn: "arn:lb/web".into(),
                dns_name: "web-1.elb.amazonaws.com".into(),
                target_groups: vec![TargetGroup {
                    targets: vec![Target {
                        id: "i-1".into(),
                        port: Some(80),
                    }],
                    ..TargetGroup::default()
                }],
                ..LoadBalancer::default()
            }],
            hosted_zones: vec![HostedZone {
                id: "Z1".into(),
                name: "example.com.".into(),
                records: vec![
                    Record {
                        name: "www.example.com.".into(),
                        record_type: "A".into(),
                        alias: Some(AliasTarget {
                            dns_name: "dualstack.WEB-1.elb.amazonaws.com.".into(),
                            ..AliasTarget::default()
                        }),
                        ..Record::default()
                    },
                    Record {
                        name: "search.example.com.".into(),
                        record_type: "A".into(),
                        values: vec!["10.0.0.3".into()],
                        ..Record::default()
                    },
                ],
                ..HostedZone::default()
            }],
            ..Inventory::default()
        }
    }

    fn tenants() -> Vec<TenantConfig> {
        vec![
            TenantConfig {
                name: "acme".into(),
                clusters: vec!["web".into(), "shared".into()],
            },
            TenantConfig {
                name: "globex".into(),
                clusters: vec!["search".into(), "shared".into()],
            },
        ]
    }

    #[test]
    fn unscoped_selects_everything() {
        let inv = estate();
        let sel = select(&inv, &tenants(), &Scope::default()).unwrap();
        assert_eq!(sel.instances.len(), 4);
        assert_eq!(sel.records.len(), 2);
        assert_eq!(sel.clusters["shared"], vec!["acme", "globex"]);
    }

    #[test]
    fn one_tenant_includes_its_shared_cluster_once_and_what_points_at_it() {
        let inv = estate();
        let scope = Scope {
            tenants: vec!["acme".into()],
            tiers: Vec::new(),
        };
        let sel = select(&inv, &tenants(), &scope).unwrap();
        let ids: Vec<&str> = sel.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-1", "i-2"]);
        assert_eq!(sel.load_balancers.len(), 1);
        let names: Vec<&str> = sel.records.iter().map(|(_, r)| r.name.as_str()).collect();
        assert_eq!(names, ["www.example.com."]);
        assert_eq!(sel.clusters.len(), 2);
    }

    /// The estate plus an Aurora cluster `ledger` (tier 1, cluster tag `web`, two members
    /// tagged otherwise), a standalone DB of tier 2, and a CNAME to the cluster's reader.
    fn estate_with_cluster() -> Inventory {
        let mut inv = estate();
        let db = |id: &str, tier: u8, cluster_id: Option<&str>, cluster: Option<&str>| DbInstance {
            id: id.into(),
            tier,
            cluster_id: cluster_id.map(Into::into),
            cluster: cluster.map(Into::into),
            endpoint_address: Some(format!("{id}.x.us-east-1.rds.amazonaws.com")),
            ..DbInstance::default()
        };
        inv.db_instances = vec![
            db("ledger-1", 3, Some("ledger"), None),
            db("ledger-2", 3, Some("ledger"), Some("search")),
            db("reports", 2, None, Some("search")),
            // A member of a cluster the inventory does not hold: judged on its own.
            db("orphan-1", 1, Some("gone"), Some("web")),
        ];
        inv.db_clusters = vec![DbCluster {
            id: "ledger".into(),
            tier: 1,
            cluster: Some("web".into()),
            endpoint: Some("ledger.cluster-x.us-east-1.rds.amazonaws.com".into()),
            reader_endpoint: Some("ledger.cluster-ro-x.us-east-1.rds.amazonaws.com".into()),
            members: vec![
                DbClusterMember {
                    db_instance_id: "ledger-1".into(),
                    writer: true,
                },
                DbClusterMember {
                    db_instance_id: "ledger-2".into(),
                    writer: false,
                },
            ],
            ..DbCluster::default()
        }];
        inv.hosted_zones[0].records.push(Record {
            name: "ledger-ro.example.com.".into(),
            record_type: "CNAME".into(),
            values: vec!["LEDGER.cluster-ro-x.us-east-1.rds.amazonaws.com.".into()],
            ..Record::default()
        });
        inv
    }

    #[test]
    fn clusters_bring_their_members_and_what_points_at_them() {
        let inv = estate_with_cluster();
        let acme = Scope {
            tenants: vec!["acme".into()],
            tiers: Vec::new(),
        };
        let sel = select(&inv, &tenants(), &acme).unwrap();
        let clusters: Vec<&str> = sel.db_clusters.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(clusters, ["ledger"]);
        let dbs: Vec<&str> = sel.db_instances.iter().map(|d| d.id.as_str()).collect();
        // Both members come with their cluster, whatever their own tags say.
        assert_eq!(dbs, ["ledger-1", "ledger-2", "orphan-1"]);
        let names: Vec<&str> = sel.records.iter().map(|(_, r)| r.name.as_str()).collect();
        assert!(names.contains(&"ledger-ro.example.com."), "{names:?}");

        // Tier 3 (the members' own tier) does not select them: the cluster is tier 1.
        let tier3 = Scope {
            tenants: Vec::new(),
            tiers: vec![3],
        };
        let sel = select(&inv, &tenants(), &tier3).unwrap();
        assert!(sel.db_clusters.is_empty());
        assert!(sel.db_instances.is_empty(), "{:?}", sel.db_instances);

        let globex = Scope {
            tenants: vec!["globex".into()],
            tiers: Vec::new(),
        };
        let sel = select(&inv, &tenants(), &globex).unwrap();
        assert!(sel.db_clusters.is_empty());
        let dbs: Vec<&str> = sel.db_instances.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(dbs, ["reports"]);
    }

    #[test]
    fn dr_state_without_cluster_snapshots_still_loads() {
        let value = serde_json::json!({
            "mappings": {}, "volume_snapshots": {}, "images": {}, "db_snapshots": {},
            "certificates": {}
        });
        let state: DrState = serde_json::from_value(value).unwrap();
        assert!(state.db_cluster_snapshots.is_empty());
    }

    #[test]
    fn tiers_narrow_and_bad_input_is_named() {
        let inv = estate();
        let scope = Scope {
            tenants: Vec::new(),
            tiers: vec![2],
        };
        let sel = select(&inv, &tenants(), &scope).unwrap();
        assert_eq!(sel.instances.len(), 1);
        assert!(sel.load_balancers.is_empty());
        let bad = Scope {
            tenants: vec!["nope".into(), "acme".into()],
            tiers: Vec::new(),
        };
        assert_eq!(
            select(&inv, &tenants(), &bad).unwrap_err(),
            ScopeError::UnknownTenants(vec!["nope".into()])
        );
        let bad_tier = Scope {
            tenants: Vec::new(),
            tiers: vec![0],
        };
        assert_eq!(
            select(&inv, &tenants(), &bad_tier).unwrap_err(),
            ScopeError::BadTier(0)
        );
    }
}
