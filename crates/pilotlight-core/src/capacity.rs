//! The capacity plan (SPEC R8): what restoring a [`Selection`] needs of the DR region, against
//! the DR region's quotas.
//!
//! [`capacity_plan`] counts what the selection holds, once each: the selection already lists
//! every instance once, so a cluster shared by several tenants is counted once however many of
//! them are in scope. It sums instances by type, family, tier and On-Demand vCPU quota group
//! (AWS's quota is per group, not per family), counts the load balancers by kind, the Route 53
//! records per hosted zone and the DB instances, and compares each with [`QuotasConfig`].
//!
//! Every exceeded quota is a [`Shortfall`] named stably (`vcpus:<group>`,
//! `classic_load_balancers`, `application_load_balancers`, `network_load_balancers`,
//! `db_instances`, `records_per_zone:<zone name>`). An instance type missing from the
//! inventory's type table has unknown vCPUs, so its group's requirement is understated: it is
//! listed in [`CapacityPlan::unknown_types`] and the plan does not [`fit`](CapacityPlan::fits).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{QuotasConfig, VCPU_QUOTA_GROUPS};
use crate::inventory::{Inventory, LoadBalancerKind, family, vcpu_quota_group};
use crate::scope::Selection;

/// What a selection needs of the DR region, and whether the quotas cover it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityPlan {
    /// Tenants in scope.
    pub tenants: Vec<String>,
    /// Clusters in scope, by name; each counted once however many tenants share it.
    pub clusters: Vec<ClusterUse>,
    /// All instances in scope.
    pub total: Totals,
    /// Instances in scope by instance type.
    pub instance_types: BTreeMap<String, TypeTotals>,
    /// Instances in scope by instance family (`r5`, `m7i-flex`).
    pub families: BTreeMap<String, Totals>,
    /// Instances in scope by tier.
    pub tiers: BTreeMap<u8, Totals>,
    /// vCPUs required per On-Demand quota group, for every group AWS has, against the quota (0
    /// for a group `quotas.vcpus` does not name).
    pub vcpu_groups: BTreeMap<String, QuotaUse>,
    /// Classic load balancers in scope against their quota.
    pub classic_load_balancers: QuotaUse,
    /// Application load balancers in scope against their quota.
    pub application_load_balancers: QuotaUse,
    /// Network load balancers in scope against their quota.
    pub network_load_balancers: QuotaUse,
    /// Gateway load balancers in scope (no quota is configured for them).
    pub gateway_load_balancers: u64,
    /// Records in scope per hosted zone (zones with at least one), by zone id, against
    /// `records_per_zone`.
    pub records: Vec<ZoneRecords>,
    /// DB instances in scope against their quota.
    pub db_instances: QuotaUse,
    /// Instance types in scope missing from the inventory's type table, sorted: their vCPUs
    /// and memory are not counted.
    pub unknown_types: Vec<String>,
    /// Every exceeded quota: vCPU groups (in group-name order), then classic, application and
    /// network load balancers, DB instances, and records per zone (in zone-id order).
    pub shortfalls: Vec<Shortfall>,
}

impl CapacityPlan {
    /// Whether the DR quotas cover the plan: no shortfall and no instance type of unknown size.
    pub fn fits(&self) -> bool {
        self.shortfalls.is_empty() && self.unknown_types.is_empty()
    }
}

/// A cluster in scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterUse {
    /// The cluster tag's value.
    pub name: String,
    /// Tenants in scope needing the cluster (empty for a cluster no configured tenant names,
    /// selected because the scope is the whole estate).
    pub tenants: Vec<String>,
    /// Instances of the cluster in scope.
    pub instances: u64,
    /// Their vCPUs (instances of unknown types count 0).
    pub vcpus: u64,
}

/// Counted instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Instances.
    pub count: u64,
    /// Their vCPUs (instances of unknown types count 0).
    pub vcpus: u64,
    /// Their memory in MiB (instances of unknown types count 0).
    pub memory_mib: u64,
}

impl Totals {
    fn add(&mut self, vcpus: u64, memory_mib: u64) {
        self.count += 1;
        self.vcpus += vcpus;
        self.memory_mib += memory_mib;
    }
}

/// Instances of one instance type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeTotals {
    /// The type's family.
    pub family: String,
    /// The type's On-Demand vCPU quota group.
    pub vcpu_quota_group: String,
    /// Instances.
    pub count: u64,
    /// Their vCPUs (0 for a type of unknown size).
    pub vcpus: u64,
    /// Their memory in MiB (0 for a type of unknown size).
    pub memory_mib: u64,
    /// Instances per tier.
    pub by_tier: BTreeMap<u8, u64>,
}

/// A requirement against its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaUse {
    /// What the plan needs.
    pub required: u64,
    /// What the DR region allows.
    pub quota: u64,
}

impl QuotaUse {
    fn new(required: u64, quota: u32) -> QuotaUse {
        QuotaUse {
            required,
            quota: u64::from(quota),
        }
    }

    /// Whether the requirement exceeds the quota.
    pub fn exceeded(&self) -> bool {
        self.required > self.quota
    }
}

/// Records in scope of one hosted zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRecords {
    /// The zone's id.
    pub zone_id: String,
    /// The zone's name, with its trailing dot.
    pub zone_name: String,
    /// Records of the zone in scope.
    pub required: u64,
    /// `quotas.records_per_zone`.
    pub quota: u64,
}

/// An exceeded quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shortfall {
    /// Stable name of the quota (see the module doc).
    pub quota: String,
    /// What the plan needs.
    pub required: u64,
    /// What the quota allows.
    pub available: u64,
}

/// The capacity plan of `selection` (taken from `inventory`) against `quotas`.
pub fn capacity_plan(
    inventory: &Inventory,
    selection: &Selection<'_>,
    quotas: &QuotasConfig,
) -> CapacityPlan {
    let mut total = Totals::default();
    let mut instance_types: BTreeMap<String, TypeTotals> = BTreeMap::new();
    let mut families: BTreeMap<String, Totals> = BTreeMap::new();
    let mut tiers: BTreeMap<u8, Totals> = BTreeMap::new();
    let mut group_vcpus: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    let mut clusters: BTreeMap<String, ClusterUse> = selection
        .clusters
        .iter()
        .map(|(name, tenants)| {
            let cluster = ClusterUse {
                name: name.clone(),
                tenants: tenants.clone(),
                ..ClusterUse::default()
            };
            (name.clone(), cluster)
        })
        .collect();

    for instance in &selection.instances {
        let ty = instance.instance_type.as_str();
        let (vcpus, memory_mib) = match inventory.instance_types.get(ty) {
            Some(info) => (u64::from(info.vcpus), info.memory_mib),
            None => {
                unknown.insert(ty.to_owned());
                (0, 0)
            }
        };
        total.add(vcpus, memory_mib);
        let by_type = instance_types
            .entry(ty.to_owned())
            .or_insert_with(|| TypeTotals {
                family: family(ty).to_owned(),
                vcpu_quota_group: vcpu_quota_group(ty).to_owned(),
                ..TypeTotals::default()
            });
        by_type.count += 1;
        by_type.vcpus += vcpus;
        by_type.memory_mib += memory_mib;
        *by_type.by_tier.entry(instance.tier).or_default() += 1;
        families
            .entry(family(ty).to_owned())
            .or_default()
            .add(vcpus, memory_mib);
        tiers
            .entry(instance.tier)
            .or_default()
            .add(vcpus, memory_mib);
        *group_vcpus.entry(vcpu_quota_group(ty)).or_default() += vcpus;
        if let Some(name) = &instance.cluster {
            let cluster = clusters.entry(name.clone()).or_insert_with(|| ClusterUse {
                name: name.clone(),
                ..ClusterUse::default()
            });
            cluster.instances += 1;
            cluster.vcpus += vcpus;
        }
    }

    let vcpu_groups: BTreeMap<String, QuotaUse> = VCPU_QUOTA_GROUPS
        .iter()
        .map(|group| {
            let required = group_vcpus.get(group).copied().unwrap_or(0);
            let quota = quotas.vcpus.get(*group).copied().unwrap_or(0);
            ((*group).to_owned(), QuotaUse::new(required, quota))
        })
        .collect();

    let count_kind = |kind: LoadBalancerKind| {
        count(
            selection
                .load_balancers
                .iter()
                .filter(|lb| lb.kind == kind)
                .count(),
        )
    };
    let classic_load_balancers = QuotaUse::new(
        count(selection.classic_load_balancers.len()),
        quotas.classic_load_balancers,
    );
    let application_load_balancers = QuotaUse::new(
        count_kind(LoadBalancerKind::Application),
        quotas.application_load_balancers,
    );
    let network_load_balancers = QuotaUse::new(
        count_kind(LoadBalancerKind::Network),
        quotas.network_load_balancers,
    );
    let db_instances = QuotaUse::new(count(selection.db_instances.len()), quotas.db_instances);

    let mut zones: BTreeMap<&str, ZoneRecords> = BTreeMap::new();
    for (zone, _) in &selection.records {
        zones
            .entry(zone.id.as_str())
            .or_insert_with(|| ZoneRecords {
                zone_id: zone.id.clone(),
                zone_name: zone.name.clone(),
                required: 0,
                quota: u64::from(quotas.records_per_zone),
            })
            .required += 1;
    }
    let records: Vec<ZoneRecords> = zones.into_values().collect();

    let mut shortfalls: Vec<Shortfall> = Vec::new();
    let mut check = |quota: String, used: &QuotaUse| {
        if used.exceeded() {
            shortfalls.push(Shortfall {
                quota,
                required: used.required,
                available: used.quota,
            });
        }
    };
    for (group, used) in &vcpu_groups {
        check(format!("vcpus:{group}"), used);
    }
    check("classic_load_balancers".to_owned(), &classic_load_balancers);
    check(
        "application_load_balancers".to_owned(),
        &application_load_balancers,
    );
    check("network_load_balancers".to_owned(), &network_load_balancers);
    check("db_instances".to_owned(), &db_instances);
    for zone in &records {
        let used = QuotaUse {
            required: zone.required,
            quota: zone.quota,
        };
        check(format!("records_per_zone:{}", zone.zone_name), &used);
    }

    CapacityPlan {
        tenants: selection.tenants.clone(),
        clusters: clusters.into_values().collect(),
        total,
        instance_types,
        families,
        tiers,
        vcpu_groups,
        classic_load_balancers,
        application_load_balancers,
        network_load_balancers,
        gateway_load_balancers: count_kind(LoadBalancerKind::Gateway),
        records,
        db_instances,
        unknown_types: unknown.into_iter().collect(),
        shortfalls,
    }
}

/// A collection's length as a count (lossless: `usize` is at most 64 bits on every target).
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TenantConfig;
    use crate::inventory::{
        ClassicLoadBalancer, DbInstance, HostedZone, Instance, InstanceTypeInfo, LoadBalancer,
        Record, Target, TargetGroup,
    };
    use crate::scope::{Scope, select};

    fn instance(id: &str, ty: &str, tier: u8, cluster: Option<&str>) -> Instance {
        Instance {
            id: id.into(),
            instance_type: ty.into(),
            tier,
            cluster: cluster.map(Into::into),
            ..Instance::default()
        }
    }

    fn types() -> BTreeMap<String, InstanceTypeInfo> {
        BTreeMap::from([
            (
                "m5.large".to_owned(),
                InstanceTypeInfo {
                    vcpus: 2,
                    memory_mib: 8_192,
                },
            ),
            (
                "r5.2xlarge".to_owned(),
                InstanceTypeInfo {
                    vcpus: 8,
                    memory_mib: 65_536,
                },
            ),
            (
                "g5.xlarge".to_owned(),
                InstanceTypeInfo {
                    vcpus: 4,
                    memory_mib: 16_384,
                },
            ),
        ])
    }

    /// acme needs `web` and `shared`, globex `search` and `shared`.
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

    /// web: 2 × m5.large (tier 1); shared: 2 × r5.2xlarge (tier 1); search: 1 × g5.xlarge
    /// (tier 2); unclustered: 1 × m5.large (tier 3).
    fn estate() -> Inventory {
        Inventory {
            instances: vec![
                instance("i-1", "m5.large", 1, Some("web")),
                instance("i-2", "m5.large", 1, Some("web")),
                instance("i-3", "r5.2xlarge", 1, Some("shared")),
                instance("i-4", "r5.2xlarge", 1, Some("shared")),
                instance("i-5", "g5.xlarge", 2, Some("search")),
                instance("i-6", "m5.large", 3, None),
            ],
            instance_types: types(),
            ..Inventory::default()
        }
    }

    fn scoped(tenants_in_scope: &[&str]) -> Scope {
        Scope {
            tenants: tenants_in_scope.iter().map(|t| (*t).to_owned()).collect(),
            tiers: Vec::new(),
        }
    }

    fn plan_of(inv: &Inventory, scope: &Scope, quotas: &QuotasConfig) -> CapacityPlan {
        let selection = select(inv, &tenants(), scope).unwrap();
        capacity_plan(inv, &selection, quotas)
    }

    #[test]
    fn one_tenant_counts_its_shared_cluster_once() {
        let inv = estate();
        let plan = plan_of(&inv, &scoped(&["acme"]), &QuotasConfig::default());
        assert_eq!(plan.tenants, ["acme"]);
        assert_eq!(
            plan.clusters,
            vec![
                ClusterUse {
                    name: "shared".into(),
                    tenants: vec!["acme".into()],
                    instances: 2,
                    vcpus: 16,
                },
                ClusterUse {
                    name: "web".into(),
                    tenants: vec!["acme".into()],
                    instances: 2,
                    vcpus: 4,
                },
            ]
        );
        assert_eq!(
            plan.total,
            Totals {
                count: 4,
                vcpus: 20,
                memory_mib: 2 * 8_192 + 2 * 65_536,
            }
        );
        assert_eq!(plan.vcpu_groups["standard"].required, 20);
        assert_eq!(plan.vcpu_groups["g"].required, 0);
        assert!(plan.fits());
    }

    #[test]
    fn both_tenants_share_the_cluster_once_and_totals_are_exact() {
        let inv = estate();
        let plan = plan_of(&inv, &scoped(&["acme", "globex"]), &QuotasConfig::default());
        assert_eq!(plan.tenants, ["acme", "globex"]);
        let shared = plan.clusters.iter().find(|c| c.name == "shared").unwrap();
        assert_eq!(shared.tenants, ["acme", "globex"]);
        assert_eq!((shared.instances, shared.vcpus), (2, 16));
        assert_eq!(plan.clusters.len(), 3);
        // 2 + 2 + 1 clustered instances, the unclustered one is out of scope.
        assert_eq!(plan.total.count, 5);
        assert_eq!(plan.total.vcpus, 2 * 2 + 2 * 8 + 4);
        assert_eq!(
            plan.instance_types["r5.2xlarge"],
            TypeTotals {
                family: "r5".into(),
                vcpu_quota_group: "standard".into(),
                count: 2,
                vcpus: 16,
                memory_mib: 131_072,
                by_tier: BTreeMap::from([(1, 2)]),
            }
        );
        assert_eq!(
            plan.tiers,
            BTreeMap::from([
                (
                    1,
                    Totals {
                        count: 4,
                        vcpus: 20,
                        memory_mib: 147_456,
                    }
                ),
                (
                    2,
                    Totals {
                        count: 1,
                        vcpus: 4,
                        memory_mib: 16_384,
                    }
                ),
            ])
        );
        assert_eq!(plan.families.keys().collect::<Vec<_>>(), ["g5", "m5", "r5"]);
        assert_eq!(plan.families["m5"].count, 2);
    }

    #[test]
    fn whole_estate_counts_the_shared_cluster_once() {
        let inv = estate();
        let plan = plan_of(&inv, &Scope::default(), &QuotasConfig::default());
        assert_eq!(plan.tenants, ["acme", "globex"]);
        assert_eq!(plan.total.count, 6);
        assert_eq!(plan.total.vcpus, 3 * 2 + 2 * 8 + 4);
        let shared = plan.clusters.iter().find(|c| c.name == "shared").unwrap();
        assert_eq!((shared.instances, shared.vcpus), (2, 16));
        assert_eq!(
            plan.instance_types["m5.large"].by_tier,
            BTreeMap::from([(1, 2), (3, 1)])
        );
        // Without configured tenants the clusters still appear, from the instances' tags.
        let empty = select(&inv, &[], &Scope::default()).unwrap();
        let plan = capacity_plan(&inv, &empty, &QuotasConfig::default());
        let names: Vec<&str> = plan.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["search", "shared", "web"]);
        assert!(plan.clusters.iter().all(|c| c.tenants.is_empty()));
        assert_eq!(plan.total.count, 6);
    }

    #[test]
    fn vcpu_groups_against_quotas_name_every_shortfall() {
        let inv = estate();
        let quotas = QuotasConfig {
            // standard needs 22 (3 m5.large: 6, 2 r5.2xlarge: 16), g needs 4; p unused.
            vcpus: BTreeMap::from([("standard".to_owned(), 20), ("p".to_owned(), 64)]),
            ..QuotasConfig::default()
        };
        let plan = plan_of(&inv, &Scope::default(), &quotas);
        assert_eq!(
            plan.vcpu_groups["standard"],
            QuotaUse {
                required: 22,
                quota: 20,
            }
        );
        // A group missing from quotas.vcpus has quota 0.
        assert_eq!(
            plan.vcpu_groups["g"],
            QuotaUse {
                required: 4,
                quota: 0,
            }
        );
        assert_eq!(
            plan.vcpu_groups["p"],
            QuotaUse {
                required: 0,
                quota: 64,
            }
        );
        assert_eq!(plan.vcpu_groups.len(), VCPU_QUOTA_GROUPS.len());
        assert_eq!(
            plan.shortfalls,
            vec![
                Shortfall {
                    quota: "vcpus:g".into(),
                    required: 4,
                    available: 0,
                },
                Shortfall {
                    quota: "vcpus:standard".into(),
                    required: 22,
                    available: 20,
                },
            ]
        );
        assert!(!plan.fits());

        // Exactly at the quota fits.
        let quotas = QuotasConfig {
            vcpus: BTreeMap::from([("standard".to_owned(), 22), ("g".to_owned(), 4)]),
            ..QuotasConfig::default()
        };
        let plan = plan_of(&inv, &Scope::default(), &quotas);
        assert!(plan.shortfalls.is_empty());
        assert!(plan.fits());
    }

    fn lb_estate() -> Inventory {
        let mut inv = estate();
        inv.classic_load_balancers = (1..=3)
            .map(|n| ClassicLoadBalancer {
                name: format!("clb-{n}"),
                instance_ids: vec!["i-1".into()],
                ..ClassicLoadBalancer::default()
            })
            .collect();
        let v2 = |name: &str, kind: LoadBalancerKind, target: &str| LoadBalancer {
            arn: format!("arn:lb/{name}"),
            name: name.into(),
            kind,
            dns_name: format!("{name}.elb.amazonaws.com"),
            target_groups: vec![TargetGroup {
                targets: vec![Target {
                    id: target.into(),
                    port: Some(80),
                }],
                ..TargetGroup::default()
            }],
            ..LoadBalancer::default()
        };
        inv.load_balancers = vec![
            v2("alb-1", LoadBalancerKind::Application, "i-1"),
            v2("alb-2", LoadBalancerKind::Application, "i-3"),
            v2("nlb-1", LoadBalancerKind::Network, "i-5"),
            v2("gwlb-1", LoadBalancerKind::Gateway, "i-6"),
        ];
        inv.db_instances = vec![
            DbInstance {
                id: "db-shared".into(),
                cluster: Some("shared".into()),
                tier: 1,
                ..DbInstance::default()
            },
            DbInstance {
                id: "db-search".into(),
                cluster: Some("search".into()),
                tier: 2,
                ..DbInstance::default()
            },
        ];
        let record = |name: &str| Record {
            name: name.into(),
            record_type: "A".into(),
            values: vec!["192.0.2.1".into()],
            ..Record::default()
        };
        inv.hosted_zones = vec![
            HostedZone {
                id: "Z1".into(),
                name: "example.com.".into(),
                records: vec![
                    record("a.example.com."),
                    record("b.example.com."),
                    record("c.example.com."),
                ],
                ..HostedZone::default()
            },
            HostedZone {
                id: "Z2".into(),
                name: "example.org.".into(),
                records: vec![record("a.example.org.")],
                ..HostedZone::default()
            },
        ];
        inv
    }

    #[test]
    fn load_balancer_record_and_db_shortfalls_are_exact() {
        let inv = lb_estate();
        let quotas = QuotasConfig {
            classic_load_balancers: 2,
            application_load_balancers: 2,
            network_load_balancers: 0,
            db_instances: 1,
            records_per_zone: 2,
            ..QuotasConfig::default()
        };
        let plan = plan_of(&inv, &Scope::default(), &quotas);
        assert_eq!(
            plan.classic_load_balancers,
            QuotaUse {
                required: 3,
                quota: 2,
            }
        );
        assert_eq!(
            plan.application_load_balancers,
            QuotaUse {
                required: 2,
                quota: 2,
            }
        );
        assert_eq!(plan.network_load_balancers.required, 1);
        assert_eq!(plan.gateway_load_balancers, 1);
        assert_eq!(
            plan.records,
            vec![
                ZoneRecords {
                    zone_id: "Z1".into(),
                    zone_name: "example.com.".into(),
                    required: 3,
                    quota: 2,
                },
                ZoneRecords {
                    zone_id: "Z2".into(),
                    zone_name: "example.org.".into(),
                    required: 1,
                    quota: 2,
                },
            ]
        );
        let short = |quota: &str, required: u64, available: u64| Shortfall {
            quota: quota.into(),
            required,
            available,
        };
        assert_eq!(
            plan.shortfalls,
            vec![
                short("classic_load_balancers", 3, 2),
                short("network_load_balancers", 1, 0),
                short("db_instances", 2, 1),
                short("records_per_zone:example.com.", 3, 2),
            ]
        );
        assert!(!plan.fits());

        // Scoped to acme: clb-1..3 and alb-1 (i-1), alb-2 (i-3), db-shared; no NLB, no records.
        let plan = plan_of(&inv, &scoped(&["acme"]), &quotas);
        assert_eq!(plan.classic_load_balancers.required, 3);
        assert_eq!(plan.application_load_balancers.required, 2);
        assert_eq!(plan.network_load_balancers.required, 0);
        assert_eq!(plan.db_instances.required, 1);
        assert!(plan.records.is_empty());
        assert_eq!(plan.shortfalls, vec![short("classic_load_balancers", 3, 2)]);
    }

    #[test]
    fn unknown_types_are_listed_and_do_not_fit() {
        let mut inv = estate();
        inv.instances
            .push(instance("i-7", "zz9.huge", 1, Some("web")));
        inv.instances
            .push(instance("i-8", "zz9.huge", 2, Some("web")));
        inv.instances
            .push(instance("i-9", "c9.large", 1, Some("web")));
        let plan = plan_of(&inv, &scoped(&["acme"]), &QuotasConfig::default());
        assert_eq!(plan.unknown_types, ["c9.large", "zz9.huge"]);
        assert!(plan.shortfalls.is_empty());
        assert!(!plan.fits());
        let zz = &plan.instance_types["zz9.huge"];
        assert_eq!((zz.count, zz.vcpus, zz.memory_mib), (2, 0, 0));
        let web = plan.clusters.iter().find(|c| c.name == "web").unwrap();
        assert_eq!((web.instances, web.vcpus), (5, 4));
    }

    #[test]
    fn plan_round_trips_through_json() {
        let inv = lb_estate();
        let plan = plan_of(&inv, &Scope::default(), &QuotasConfig::default());
        let text = serde_json::to_string(&plan).unwrap();
        let back: CapacityPlan = serde_json::from_str(&text).unwrap();
        assert_eq!(plan, back);
    }
}
