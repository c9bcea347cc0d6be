//! Readiness (SPEC R10): whether a restore could start now.
//!
//! [`evaluate`] runs every [`CheckName`] against the inventory (or a [`Selection`] of it),
//! what the DR region holds ([`DrState`]), the capacity plan and the running always-on
//! services, and names every failing item with the reason it fails. The readiness reconciler
//! publishes the [`ReadinessReport`] on `GET /v1/readiness` and each check as metrics labelled
//! with [`CheckName::as_str`].
//!
//! Checks that need the inventory fail with the single item `inventory` when there is none:
//! an estate nobody has captured is not ready, however empty it looks. Items are named in a
//! stable order (sorted by id) so two evaluations of the same state compare equal apart from
//! their time.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::capacity::CapacityPlan;
use crate::config::TiersConfig;
use crate::inventory::{
    ClassicLoadBalancer, DbCluster, DbInstance, Instance, Inventory, LoadBalancer,
};
use crate::scope::{DrState, Selection};

/// The tier whose data volumes must have DR copies within its RPO.
const TIER_ONE: u8 = 1;

/// Tier 1's RPO when `tiers.rpo_secs` has no entry for it. Configuration merges the defaults
/// in, so this only applies to a hand-built [`TiersConfig`]; it is the default of tier 1.
const DEFAULT_TIER_ONE_RPO_SECS: u64 = 3_600;

/// The failing item of a check that needs the inventory when there is none.
pub const NO_INVENTORY_ITEM: &str = "inventory";

/// A readiness check. Serialised (and labelled in metrics) in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// An inventory document exists.
    Inventory,
    /// Every data volume of every tier-1 instance has a DR snapshot within tier 1's RPO.
    VolumeCopies,
    /// Every AMI used by an instance has a DR copy.
    AmiCopies,
    /// Every subnet and security group used by instances, load balancers, DB instances and
    /// Aurora clusters is mirrored in the DR region.
    NetworkMappings,
    /// Every listener certificate has a DR counterpart.
    Certificates,
    /// The DR quotas cover the capacity plan.
    Quotas,
    /// Every always-on service of the pilot light is running in the DR region.
    AlwaysOn,
}

impl CheckName {
    /// Every check, in the order a report lists them.
    pub const ALL: [CheckName; 7] = [
        CheckName::Inventory,
        CheckName::VolumeCopies,
        CheckName::AmiCopies,
        CheckName::NetworkMappings,
        CheckName::Certificates,
        CheckName::Quotas,
        CheckName::AlwaysOn,
    ];

    /// The snake_case name, as serialised and as the `check` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Inventory => "inventory",
            CheckName::VolumeCopies => "volume_copies",
            CheckName::AmiCopies => "ami_copies",
            CheckName::NetworkMappings => "network_mappings",
            CheckName::Certificates => "certificates",
            CheckName::Quotas => "quotas",
            CheckName::AlwaysOn => "always_on",
        }
    }
}

/// An item a check found wanting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailingItem {
    /// The item: a volume, AMI, subnet or security group id, a certificate ARN, a quota name,
    /// an instance type, a service name, or `inventory`.
    pub id: String,
    /// Why it fails.
    pub reason: String,
}

impl FailingItem {
    fn new(id: impl Into<String>, reason: impl Into<String>) -> FailingItem {
        FailingItem {
            id: id.into(),
            reason: reason.into(),
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: CheckName,
    /// No item fails.
    pub ok: bool,
    /// Items examined.
    pub total: u64,
    /// Every failing item, sorted by id.
    pub failing: Vec<FailingItem>,
}

impl Check {
    fn new(name: CheckName, total: usize, failing: Vec<FailingItem>) -> Check {
        Check {
            name,
            ok: failing.is_empty(),
            total: u64::try_from(total).unwrap_or(u64::MAX),
            failing,
        }
    }

    /// The result of a check that needs the inventory when there is none.
    fn no_inventory(name: CheckName) -> Check {
        Check::new(
            name,
            1,
            vec![FailingItem::new(
                NO_INVENTORY_ITEM,
                "no inventory has been captured",
            )],
        )
    }
}

/// Whether a restore could start now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessReport {
    /// Every check passes.
    pub ready: bool,
    /// When the evaluation ran (unix ms).
    pub evaluated_at_ms: i64,
    /// Every check, in [`CheckName::ALL`] order.
    pub checks: Vec<Check>,
}

impl ReadinessReport {
    /// The result of check `name`.
    pub fn check(&self, name: CheckName) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// What readiness is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct ReadinessInput<'a> {
    /// The latest inventory document, if one was captured.
    pub inventory: Option<&'a Inventory>,
    /// The part of the inventory to check; the whole inventory when `None`.
    pub selection: Option<&'a Selection<'a>>,
    /// What the DR region holds.
    pub dr: &'a DrState,
    /// The capacity plan of the same selection, when there is an inventory.
    pub capacity: Option<&'a CapacityPlan>,
    /// Tier RPOs (tier 1's is the bound on data volume copies).
    pub tiers: &'a TiersConfig,
    /// Configured always-on services (`readiness.always_on`).
    pub always_on: &'a [String],
    /// Always-on services with a running DR instance.
    pub running_always_on: &'a BTreeSet<String>,
    /// Now (unix ms).
    pub now_ms: i64,
}

/// What the checks look at: the selection, or the whole inventory.
struct Estate<'a> {
    instances: Vec<&'a Instance>,
    classic_load_balancers: Vec<&'a ClassicLoadBalancer>,
    load_balancers: Vec<&'a LoadBalancer>,
    db_instances: Vec<&'a DbInstance>,
    db_clusters: Vec<&'a DbCluster>,
}

impl<'a> Estate<'a> {
    fn of(inventory: &'a Inventory, selection: Option<&'a Selection<'a>>) -> Estate<'a> {
        match selection {
            Some(sel) => Estate {
                instances: sel.instances.clone(),
                classic_load_balancers: sel.classic_load_balancers.clone(),
                load_balancers: sel.load_balancers.clone(),
                db_instances: sel.db_instances.clone(),
                db_clusters: sel.db_clusters.clone(),
            },
            None => Estate {
                instances: inventory.instances.iter().collect(),
                classic_load_balancers: inventory.classic_load_balancers.iter().collect(),
                load_balancers: inventory.load_balancers.iter().collect(),
                db_instances: inventory.db_instances.iter().collect(),
                db_clusters: inventory.db_clusters.iter().collect(),
            },
        }
    }
}

/// Evaluates every readiness check (see the module doc).
pub fn evaluate(input: &ReadinessInput<'_>) -> ReadinessReport {
    let estate = input.inventory.map(|inv| Estate::of(inv, input.selection));
    let needs_inventory = |name: CheckName, run: &dyn Fn(&Estate<'_>) -> Check| match &estate {
        Some(estate) => run(estate),
        None => Check::no_inventory(name),
    };

    let checks = vec![
        inventory_check(input.inventory),
        needs_inventory(CheckName::VolumeCopies, &|e| {
            volume_copies(e, input.dr, input.tiers, input.now_ms)
        }),
        needs_inventory(CheckName::AmiCopies, &|e| ami_copies(e, input.dr)),
        needs_inventory(CheckName::NetworkMappings, &|e| {
            network_mappings(e, input.dr)
        }),
        needs_inventory(CheckName::Certificates, &|e| certificates(e, input.dr)),
        needs_inventory(CheckName::Quotas, &|_| quotas(input.capacity)),
        always_on(input.always_on, input.running_always_on),
    ];
    ReadinessReport {
        ready: checks.iter().all(|c| c.ok),
        evaluated_at_ms: input.now_ms,
        checks,
    }
}

fn inventory_check(inventory: Option<&Inventory>) -> Check {
    match inventory {
        Some(_) => Check::new(CheckName::Inventory, 1, Vec::new()),
        None => Check::no_inventory(CheckName::Inventory),
    }
}

fn volume_copies(estate: &Estate<'_>, dr: &DrState, tiers: &TiersConfig, now_ms: i64) -> Check {
    let rpo_secs = tiers
        .rpo_secs
        .get(&TIER_ONE)
        .copied()
        .unwrap_or(DEFAULT_TIER_ONE_RPO_SECS);
    let rpo_ms = i64::try_from(rpo_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
    let volumes: BTreeSet<&str> = estate
        .instances
        .iter()
        .filter(|i| i.tier == TIER_ONE)
        .flat_map(|i| &i.block_devices)
        .filter(|d| !d.root)
        .map(|d| d.volume_id.as_str())
        .collect();
    let failing = volumes
        .iter()
        .filter_map(|volume| match dr.volume_snapshots.get(*volume) {
            None => Some(FailingItem::new(*volume, "no DR copy")),
            Some(copy) => {
                let age_ms = now_ms.saturating_sub(copy.source_created_at_ms);
                (age_ms > rpo_ms).then(|| {
                    FailingItem::new(
                        *volume,
                        format!("DR copy is {} s old, RPO {rpo_secs} s", age_ms / 1_000),
                    )
                })
            }
        })
        .collect();
    Check::new(CheckName::VolumeCopies, volumes.len(), failing)
}

fn ami_copies(estate: &Estate<'_>, dr: &DrState) -> Check {
    let images: BTreeSet<&str> = estate
        .instances
        .iter()
        .map(|i| i.image_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    let failing = images
        .iter()
        .filter(|image| !dr.images.contains_key(**image))
        .map(|image| FailingItem::new(*image, "no DR copy"))
        .collect();
    Check::new(CheckName::AmiCopies, images.len(), failing)
}

fn network_mappings(estate: &Estate<'_>, dr: &DrState) -> Check {
    // Id → what it is, for the reason.
    let mut used: BTreeMap<&str, &'static str> = BTreeMap::new();
    for i in &estate.instances {
        note(&mut used, &i.subnet_id, SUBNET);
        note(&mut used, &i.security_group_ids, SECURITY_GROUP);
    }
    for lb in &estate.classic_load_balancers {
        note(&mut used, &lb.subnet_ids, SUBNET);
        note(&mut used, &lb.security_group_ids, SECURITY_GROUP);
    }
    for lb in &estate.load_balancers {
        note(&mut used, &lb.subnet_ids, SUBNET);
        note(&mut used, &lb.security_group_ids, SECURITY_GROUP);
    }
    for db in &estate.db_instances {
        note(&mut used, &db.subnet_ids, SUBNET);
        note(&mut used, &db.vpc_security_group_ids, SECURITY_GROUP);
    }
    for cluster in &estate.db_clusters {
        note(&mut used, &cluster.subnet_ids, SUBNET);
        note(&mut used, &cluster.vpc_security_group_ids, SECURITY_GROUP);
    }
    let failing = used
        .iter()
        .filter(|(id, _)| !dr.mappings.contains_key(**id))
        .map(|(id, kind)| FailingItem::new(*id, format!("{kind} is not mapped to the DR region")))
        .collect();
    Check::new(CheckName::NetworkMappings, used.len(), failing)
}

/// Records each of `ids` as a network resource of `kind`.
fn note<'a>(
    used: &mut BTreeMap<&'a str, &'static str>,
    ids: impl IntoIterator<Item = &'a String>,
    kind: &'static str,
) {
    used.extend(ids.into_iter().map(|id| (id.as_str(), kind)));
}

const SUBNET: &str = "subnet";
const SECURITY_GROUP: &str = "security group";

fn certificates(estate: &Estate<'_>, dr: &DrState) -> Check {
    let arns: BTreeSet<&str> = estate
        .classic_load_balancers
        .iter()
        .flat_map(|lb| {
            lb.listeners
                .iter()
                .filter_map(|l| l.certificate_arn.as_deref())
        })
        .chain(estate.load_balancers.iter().flat_map(|lb| {
            lb.listeners
                .iter()
                .flat_map(|l| l.certificate_arns.iter().map(String::as_str))
        }))
        .collect();
    let failing = arns
        .iter()
        .filter(|arn| !dr.certificates.contains_key(**arn))
        .map(|arn| FailingItem::new(*arn, "no DR certificate"))
        .collect();
    Check::new(CheckName::Certificates, arns.len(), failing)
}

fn quotas(capacity: Option<&CapacityPlan>) -> Check {
    let Some(plan) = capacity else {
        return Check::new(
            CheckName::Quotas,
            1,
            vec![FailingItem::new(
                "capacity_plan",
                "no capacity plan was computed",
            )],
        );
    };
    let failing = plan
        .shortfalls
        .iter()
        .map(|s| {
            FailingItem::new(
                &s.quota,
                format!("requires {}, quota {}", s.required, s.available),
            )
        })
        .chain(plan.unknown_types.iter().map(|ty| {
            FailingItem::new(
                ty,
                "instance type missing from the inventory's type table: its vCPUs are not counted",
            )
        }))
        .collect();
    // Quotas compared (vCPU groups, three load balancer kinds, DB instances, one per zone) and
    // instance types sized.
    let total = plan.vcpu_groups.len() + 4 + plan.records.len() + plan.instance_types.len();
    Check::new(CheckName::Quotas, total, failing)
}

fn always_on(services: &[String], running: &BTreeSet<String>) -> Check {
    let wanted: BTreeSet<&str> = services.iter().map(String::as_str).collect();
    let failing = wanted
        .iter()
        .filter(|s| !running.contains(**s))
        .map(|s| FailingItem::new(*s, "no running DR instance"))
        .collect();
    Check::new(CheckName::AlwaysOn, wanted.len(), failing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{Shortfall, capacity_plan};
    use crate::config::{QuotasConfig, TenantConfig};
    use crate::inventory::{
        BlockDevice, ClassicListener, DbInstance, InstanceTypeInfo, Listener, Target, TargetGroup,
    };
    use crate::scope::{DrCopy, Scope, select};

    const NOW_MS: i64 = 1_700_000_000_000;

    fn volume(id: &str, root: bool) -> BlockDevice {
        BlockDevice {
            device_name: format!("/dev/{id}"),
            volume_id: id.into(),
            root,
            ..BlockDevice::default()
        }
    }

    /// i-1: tier 1, cluster web, ami-1, subnet-1/sg-1, root vol-r1 and data vol-d1, vol-d2.
    /// i-2: tier 2, cluster batch, ami-2, subnet-2/sg-2, data vol-t2.
    /// A classic LB (subnet-1, sg-lb, cert/a) in front of i-1, an ALB (cert/b) in front of
    /// i-1, and a database of cluster web (subnet-db, sg-db).
    fn estate() -> Inventory {
        Inventory {
            instances: vec![
                Instance {
                    id: "i-1".into(),
                    instance_type: "m5.large".into(),
                    tier: 1,
                    cluster: Some("web".into()),
                    image_id: "ami-1".into(),
                    subnet_id: Some("subnet-1".into()),
                    security_group_ids: vec!["sg-1".into()],
                    block_devices: vec![
                        volume("vol-d1", false),
                        volume("vol-d2", false),
                        volume("vol-r1", true),
                    ],
                    ..Instance::default()
                },
                Instance {
                    id: "i-2".into(),
                    instance_type: "m5.large".into(),
                    tier: 2,
                    cluster: Some("batch".into()),
                    image_id: "ami-2".into(),
                    subnet_id: Some("subnet-2".into()),
                    security_group_ids: vec!["sg-2".into()],
                    block_devices: vec![volume("vol-t2", false)],
                    ..Instance::default()
                },
            ],
            instance_types: BTreeMap::from([(
                "m5.large".to_owned(),
                InstanceTypeInfo {
                    vcpus: 2,
                    memory_mib: 8_192,
                },
            )]),
            classic_load_balancers: vec![ClassicLoadBalancer {
                name: "clb".into(),
                subnet_ids: vec!["subnet-1".into()],
                security_group_ids: vec!["sg-lb".into()],
                listeners: vec![ClassicListener {
                    protocol: "HTTPS".into(),
                    port: 443,
                    certificate_arn: Some("arn:cert/a".into()),
                    ..ClassicListener::default()
                }],
                instance_ids: vec!["i-1".into()],
                ..ClassicLoadBalancer::default()
            }],
            load_balancers: vec![LoadBalancer {
                arn: "arn:lb/alb".into(),
                name: "alb".into(),
                dns_name: "alb.elb.amazonaws.com".into(),
                listeners: vec![Listener {
                    arn: "arn:listener/1".into(),
                    port: 443,
                    protocol: "HTTPS".into(),
                    certificate_arns: vec!["arn:cert/b".into()],
                    ..Listener::default()
                }],
                target_groups: vec![TargetGroup {
                    targets: vec![Target {
                        id: "i-1".into(),
                        port: Some(443),
                    }],
                    ..TargetGroup::default()
                }],
                ..LoadBalancer::default()
            }],
            db_instances: vec![DbInstance {
                id: "db-1".into(),
                tier: 1,
                cluster: Some("web".into()),
                subnet_ids: vec!["subnet-db".into()],
                vpc_security_group_ids: vec!["sg-db".into()],
                ..DbInstance::default()
            }],
            ..Inventory::default()
        }
    }

    fn copy(dr_id: &str, age_secs: i64) -> DrCopy {
        DrCopy {
            dr_id: dr_id.into(),
            source_created_at_ms: NOW_MS - age_secs * 1_000,
        }
    }

    /// Everything the estate needs, tier-1 copies ten minutes old.
    fn complete_dr() -> DrState {
        DrState {
            mappings: [
                "subnet-1",
                "subnet-2",
                "subnet-db",
                "sg-1",
                "sg-2",
                "sg-lb",
                "sg-db",
            ]
            .iter()
            .map(|id| ((*id).to_owned(), format!("dr-{id}")))
            .collect(),
            volume_snapshots: BTreeMap::from([
                ("vol-d1".to_owned(), copy("snap-d1", 600)),
                ("vol-d2".to_owned(), copy("snap-d2", 600)),
            ]),
            images: BTreeMap::from([
                ("ami-1".to_owned(), copy("ami-dr1", 600)),
                ("ami-2".to_owned(), copy("ami-dr2", 600)),
            ]),
            db_snapshots: BTreeMap::new(),
            db_cluster_snapshots: BTreeMap::new(),
            certificates: BTreeMap::from([
                ("arn:cert/a".to_owned(), "arn:dr-cert/a".to_owned()),
                ("arn:cert/b".to_owned(), "arn:dr-cert/b".to_owned()),
            ]),
        }
    }

    fn services() -> Vec<String> {
        vec!["directory".into(), "monitoring".into()]
    }

    fn running(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn evaluate_whole(inv: &Inventory, dr: &DrState, up: &BTreeSet<String>) -> ReadinessReport {
        let selection = select(inv, &[], &Scope::default()).unwrap();
        let plan = capacity_plan(inv, &selection, &QuotasConfig::default());
        let tiers = TiersConfig::default();
        let always_on = services();
        evaluate(&ReadinessInput {
            inventory: Some(inv),
            selection: Some(&selection),
            dr,
            capacity: Some(&plan),
            tiers: &tiers,
            always_on: &always_on,
            running_always_on: up,
            now_ms: NOW_MS,
        })
    }

    fn failing(report: &ReadinessReport, name: CheckName) -> Vec<(String, String)> {
        report
            .check(name)
            .unwrap()
            .failing
            .iter()
            .map(|f| (f.id.clone(), f.reason.clone()))
            .collect()
    }

    fn item(id: &str, reason: &str) -> (String, String) {
        (id.to_owned(), reason.to_owned())
    }

    #[test]
    fn all_ok_when_everything_is_present() {
        let inv = estate();
        let report = evaluate_whole(&inv, &complete_dr(), &running(&["directory", "monitoring"]));
        assert!(report.ready, "{report:#?}");
        assert_eq!(report.evaluated_at_ms, NOW_MS);
        let names: Vec<CheckName> = report.checks.iter().map(|c| c.name).collect();
        assert_eq!(names, CheckName::ALL);
        let totals: Vec<(CheckName, u64)> =
            report.checks.iter().map(|c| (c.name, c.total)).collect();
        assert_eq!(
            totals,
            [
                (CheckName::Inventory, 1),
                // vol-d1 and vol-d2: the root volume and tier 2's volume are not examined.
                (CheckName::VolumeCopies, 2),
                (CheckName::AmiCopies, 2),
                // subnet-1 (instance and classic LB), subnet-2, subnet-db, sg-1, sg-2, sg-lb,
                // sg-db.
                (CheckName::NetworkMappings, 7),
                (CheckName::Certificates, 2),
                // 9 vCPU groups, 3 LB kinds, DB instances, no zones, 1 instance type.
                (CheckName::Quotas, 14),
                (CheckName::AlwaysOn, 2),
            ]
        );
        assert!(report.checks.iter().all(|c| c.ok && c.failing.is_empty()));
    }

    #[test]
    fn missing_ami_copy_and_certificate_are_named() {
        let inv = estate();
        let mut dr = complete_dr();
        dr.images.remove("ami-2");
        dr.certificates.remove("arn:cert/b");
        let report = evaluate_whole(&inv, &dr, &running(&["directory", "monitoring"]));
        assert!(!report.ready);
        assert_eq!(
            failing(&report, CheckName::AmiCopies),
            [item("ami-2", "no DR copy")]
        );
        assert_eq!(
            failing(&report, CheckName::Certificates),
            [item("arn:cert/b", "no DR certificate")]
        );
        let bad: Vec<CheckName> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        assert_eq!(bad, [CheckName::AmiCopies, CheckName::Certificates]);
    }

    #[test]
    fn stale_and_missing_tier_one_copies_are_named_with_their_age() {
        let inv = estate();
        let mut dr = complete_dr();
        // Two hours old against tier 1's one-hour RPO.
        dr.volume_snapshots
            .insert("vol-d1".into(), copy("snap-old", 7_200));
        dr.volume_snapshots.remove("vol-d2");
        let report = evaluate_whole(&inv, &dr, &running(&["directory", "monitoring"]));
        assert_eq!(
            failing(&report, CheckName::VolumeCopies),
            [
                item("vol-d1", "DR copy is 7200 s old, RPO 3600 s"),
                item("vol-d2", "no DR copy"),
            ]
        );
        assert!(!report.ready);

        // Exactly at the RPO still counts as fresh; the tier-2 volume is never examined.
        dr.volume_snapshots
            .insert("vol-d1".into(), copy("snap-edge", 3_600));
        dr.volume_snapshots
            .insert("vol-d2".into(), copy("snap-d2", 0));
        let report = evaluate_whole(&inv, &dr, &running(&["directory", "monitoring"]));
        assert!(report.check(CheckName::VolumeCopies).unwrap().ok);
        assert!(report.ready);
    }

    #[test]
    fn the_configured_tier_one_rpo_is_the_bound() {
        let inv = estate();
        let selection = select(&inv, &[], &Scope::default()).unwrap();
        let plan = capacity_plan(&inv, &selection, &QuotasConfig::default());
        let tiers = TiersConfig {
            rpo_secs: BTreeMap::from([(1, 300), (2, 14_400), (3, 86_400)]),
            ..TiersConfig::default()
        };
        let dr = complete_dr();
        let up = running(&["directory", "monitoring"]);
        let always_on = services();
        let report = evaluate(&ReadinessInput {
            inventory: Some(&inv),
            selection: Some(&selection),
            dr: &dr,
            capacity: Some(&plan),
            tiers: &tiers,
            always_on: &always_on,
            running_always_on: &up,
            now_ms: NOW_MS,
        });
        assert_eq!(
            failing(&report, CheckName::VolumeCopies),
            [
                item("vol-d1", "DR copy is 600 s old, RPO 300 s"),
                item("vol-d2", "DR copy is 600 s old, RPO 300 s"),
            ]
        );
    }

    #[test]
    fn unmapped_subnet_and_security_group_are_named() {
        let inv = estate();
        let mut dr = complete_dr();
        dr.mappings.remove("subnet-db");
        dr.mappings.remove("sg-lb");
        let report = evaluate_whole(&inv, &dr, &running(&["directory", "monitoring"]));
        assert_eq!(
            failing(&report, CheckName::NetworkMappings),
            [
                item("sg-lb", "security group is not mapped to the DR region"),
                item("subnet-db", "subnet is not mapped to the DR region"),
            ]
        );
        assert!(!report.ready);
    }

    #[test]
    fn aurora_cluster_subnets_and_groups_are_checked() {
        let mut inv = estate();
        inv.db_clusters.push(crate::inventory::DbCluster {
            id: "ledger".into(),
            tier: 1,
            subnet_ids: vec!["subnet-db".into(), "subnet-aurora".into()],
            vpc_security_group_ids: vec!["sg-aurora".into()],
            ..Default::default()
        });
        let report = evaluate_whole(&inv, &complete_dr(), &running(&["directory", "monitoring"]));
        assert_eq!(
            failing(&report, CheckName::NetworkMappings),
            [
                item("sg-aurora", "security group is not mapped to the DR region"),
                item("subnet-aurora", "subnet is not mapped to the DR region"),
            ]
        );
        assert_eq!(report.check(CheckName::NetworkMappings).unwrap().total, 9);
    }

    #[test]
    fn missing_always_on_service_is_named() {
        let inv = estate();
        let report = evaluate_whole(&inv, &complete_dr(), &running(&["directory", "build"]));
        assert_eq!(
            failing(&report, CheckName::AlwaysOn),
            [item("monitoring", "no running DR instance")]
        );
        assert_eq!(report.check(CheckName::AlwaysOn).unwrap().total, 2);
        assert!(!report.ready);
    }

    #[test]
    fn quota_shortfalls_and_unknown_types_fail_the_quotas_check() {
        let mut inv = estate();
        inv.instances[1].instance_type = "zz9.huge".into();
        let selection = select(&inv, &[], &Scope::default()).unwrap();
        let quotas = QuotasConfig {
            db_instances: 0,
            ..QuotasConfig::default()
        };
        let plan = capacity_plan(&inv, &selection, &quotas);
        assert_eq!(
            plan.shortfalls,
            [Shortfall {
                quota: "db_instances".into(),
                required: 1,
                available: 0,
            }]
        );
        let tiers = TiersConfig::default();
        let dr = complete_dr();
        let up = running(&["directory", "monitoring"]);
        let always_on = services();
        let report = evaluate(&ReadinessInput {
            inventory: Some(&inv),
            selection: Some(&selection),
            dr: &dr,
            capacity: Some(&plan),
            tiers: &tiers,
            always_on: &always_on,
            running_always_on: &up,
            now_ms: NOW_MS,
        });
        assert_eq!(
            failing(&report, CheckName::Quotas),
            [
                item("db_instances", "requires 1, quota 0"),
                item(
                    "zz9.huge",
                    "instance type missing from the inventory's type table: its vCPUs are not counted"
                ),
            ]
        );
        assert!(!report.ready);
    }

    #[test]
    fn without_inventory_the_checks_that_need_it_fail() {
        let dr = DrState::default();
        let tiers = TiersConfig::default();
        let up = running(&["directory", "monitoring"]);
        let always_on = services();
        let report = evaluate(&ReadinessInput {
            inventory: None,
            selection: None,
            dr: &dr,
            capacity: None,
            tiers: &tiers,
            always_on: &always_on,
            running_always_on: &up,
            now_ms: NOW_MS,
        });
        assert!(!report.ready);
        for check in &report.checks {
            if check.name == CheckName::AlwaysOn {
                assert!(check.ok);
                assert_eq!(check.total, 2);
            } else {
                assert!(!check.ok, "{:?} passed without an inventory", check.name);
                let ids: Vec<&str> = check.failing.iter().map(|f| f.id.as_str()).collect();
                assert_eq!(ids, [NO_INVENTORY_ITEM], "{:?}", check.name);
            }
        }
    }

    #[test]
    fn without_a_selection_the_whole_inventory_is_checked() {
        let inv = estate();
        let mut dr = complete_dr();
        dr.images.remove("ami-2");
        let tiers = TiersConfig::default();
        let up = running(&["directory", "monitoring"]);
        let always_on = services();
        let report = evaluate(&ReadinessInput {
            inventory: Some(&inv),
            selection: None,
            dr: &dr,
            capacity: None,
            tiers: &tiers,
            always_on: &always_on,
            running_always_on: &up,
            now_ms: NOW_MS,
        });
        assert_eq!(
            failing(&report, CheckName::AmiCopies),
            [item("ami-2", "no DR copy")]
        );
        assert_eq!(report.check(CheckName::NetworkMappings).unwrap().total, 7);
        // An inventory without a capacity plan is not vacuously within quotas.
        assert_eq!(
            failing(&report, CheckName::Quotas),
            [item("capacity_plan", "no capacity plan was computed")]
        );
    }

    #[test]
    fn a_tenant_selection_checks_only_what_it_covers() {
        let inv = estate();
        let mut dr = complete_dr();
        // Only i-2 (cluster batch) uses these.
        dr.images.remove("ami-2");
        dr.mappings.remove("subnet-2");
        let tenants = vec![TenantConfig {
            name: "acme".into(),
            clusters: vec!["web".into()],
        }];
        let scope = Scope {
            tenants: vec!["acme".into()],
            tiers: Vec::new(),
        };
        let selection = select(&inv, &tenants, &scope).unwrap();
        let plan = capacity_plan(&inv, &selection, &QuotasConfig::default());
        let tiers = TiersConfig::default();
        let up = running(&["directory", "monitoring"]);
        let always_on = services();
        let report = evaluate(&ReadinessInput {
            inventory: Some(&inv),
            selection: Some(&selection),
            dr: &dr,
            capacity: Some(&plan),
            tiers: &tiers,
            always_on: &always_on,
            running_always_on: &up,
            now_ms: NOW_MS,
        });
        assert!(report.ready, "{report:#?}");
        assert_eq!(report.check(CheckName::AmiCopies).unwrap().total, 1);
        // subnet-1, subnet-db, sg-1, sg-lb, sg-db.
        assert_eq!(report.check(CheckName::NetworkMappings).unwrap().total, 5);
    }

    #[test]
    fn check_names_serialise_as_their_metric_labels() {
        for name in CheckName::ALL {
            let json = serde_json::to_value(name).unwrap();
            assert_eq!(json, serde_json::Value::from(name.as_str()));
            let back: CheckName = serde_json::from_value(json).unwrap();
            assert_eq!(back, name);
        }
        let inv = estate();
        let report = evaluate_whole(&inv, &DrState::default(), &running(&[]));
        let text = serde_json::to_string(&report).unwrap();
        let back: ReadinessReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        assert!(text.contains("\"name\":\"network_mappings\""));
    }
}
