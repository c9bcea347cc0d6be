//! The inventory document (SPEC R5): everything a restore needs to know about the primary
//! estate, captured each cycle from the primary region and written, gzip JSON, to the DR
//! region's S3 bucket. At disaster time the primary is gone and the restore reads only this
//! document and the store.
//!
//! The document is schema-versioned ([`SCHEMA_VERSION`]; `docs/inventory.md` is its reference).
//! Every collection is kept sorted by its id so the same estate always serialises to the same
//! bytes: [`Inventory::digest`] hashes the document *without* its capture time, and the
//! inventory reconciler writes a new version only when the digest changes.
//!
//! Field names follow AWS's where AWS has one. Values pilotlight derives (an instance's tier
//! and cluster, the instance family) are computed at capture time from the configured tags, so
//! a restore never has to re-read the primary's tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;

/// Version of the document's JSON schema. Bump it on any change a reader of an older version
/// would misread; readers refuse documents with a higher version than they know.
pub const SCHEMA_VERSION: u32 = 1;

/// The captured primary estate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// When the capture finished (unix ms). Not part of [`Inventory::digest`].
    pub captured_at_ms: i64,
    /// The region captured.
    pub primary_region: String,
    /// The DR region the document was written to.
    pub dr_region: String,
    /// EC2 instances that are not terminated, sorted by id.
    pub instances: Vec<Instance>,
    /// vCPU and memory of every instance type in use (and every instance class of RDS, as
    /// `db.*` keys are not EC2 types and are not listed here).
    pub instance_types: BTreeMap<String, InstanceTypeInfo>,
    /// Classic load balancers, sorted by name.
    pub classic_load_balancers: Vec<ClassicLoadBalancer>,
    /// Application and network load balancers with their listeners and target groups, sorted
    /// by ARN.
    pub load_balancers: Vec<LoadBalancer>,
    /// ACM certificates referenced by listeners, sorted by ARN.
    pub certificates: Vec<Certificate>,
    /// Route 53 hosted zones with their records, sorted by id.
    pub hosted_zones: Vec<HostedZone>,
    /// RDS DB instances, sorted by identifier. Aurora cluster members are listed here too
    /// (with their `cluster_id`).
    pub db_instances: Vec<DbInstance>,
    /// Aurora DB clusters, sorted by identifier. Absent from documents written before clusters
    /// were captured (read as none).
    #[serde(default)]
    pub db_clusters: Vec<DbCluster>,
    /// CPU and memory utilisation per instance id over the configured window (for plan B).
    pub utilisation: BTreeMap<String, Utilisation>,
}

impl Inventory {
    /// Hex SHA-256 of the document with `captured_at_ms` zeroed: equal for equal estates.
    pub fn digest(&self) -> String {
        let mut canonical = self.clone();
        canonical.captured_at_ms = 0;
        // Serialising plain data with string map keys cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        sha256_hex(&bytes)
    }

    /// Sorts every collection by its id, the canonical order [`Inventory::digest`] relies on.
    pub fn normalize(&mut self) {
        self.instances.sort_by(|a, b| a.id.cmp(&b.id));
        for i in &mut self.instances {
            i.security_group_ids.sort();
            i.block_devices
                .sort_by(|a, b| a.device_name.cmp(&b.device_name));
        }
        self.classic_load_balancers
            .sort_by(|a, b| a.name.cmp(&b.name));
        for lb in &mut self.classic_load_balancers {
            lb.instance_ids.sort();
            lb.subnet_ids.sort();
            lb.security_group_ids.sort();
            lb.listeners.sort_by_key(|l| l.port);
        }
        self.load_balancers.sort_by(|a, b| a.arn.cmp(&b.arn));
        for lb in &mut self.load_balancers {
            lb.subnet_ids.sort();
            lb.security_group_ids.sort();
            lb.listeners.sort_by_key(|l| l.port);
            lb.target_groups.sort_by(|a, b| a.arn.cmp(&b.arn));
            for tg in &mut lb.target_groups {
                tg.targets
                    .sort_by(|a, b| (&a.id, a.port).cmp(&(&b.id, b.port)));
            }
        }
        self.certificates.sort_by(|a, b| a.arn.cmp(&b.arn));
        self.hosted_zones.sort_by(|a, b| a.id.cmp(&b.id));
        for z in &mut self.hosted_zones {
            z.records.sort_by(|a, b| {
                (&a.name, &a.record_type, &a.set_identifier).cmp(&(
                    &b.name,
                    &b.record_type,
                    &b.set_identifier,
                ))
            });
            z.vpcs.sort();
        }
        self.db_instances.sort_by(|a, b| a.id.cmp(&b.id));
        self.db_clusters.sort_by(|a, b| a.id.cmp(&b.id));
        for c in &mut self.db_clusters {
            c.subnet_ids.sort();
            c.vpc_security_group_ids.sort();
            c.members
                .sort_by(|a, b| a.db_instance_id.cmp(&b.db_instance_id));
        }
    }

    /// Resource counts by class, as stored next to the version pointer.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("instances", self.instances.len()),
            ("classic_load_balancers", self.classic_load_balancers.len()),
            ("load_balancers", self.load_balancers.len()),
            ("certificates", self.certificates.len()),
            ("hosted_zones", self.hosted_zones.len()),
            (
                "records",
                self.hosted_zones.iter().map(|z| z.records.len()).sum(),
            ),
            ("db_instances", self.db_instances.len()),
            ("db_clusters", self.db_clusters.len()),
            ("utilisation", self.utilisation.len()),
        ])
    }

    /// Every certificate ARN a listener refers to, classic and v2, sorted and de-duplicated.
    pub fn listener_certificate_arns(&self) -> Vec<String> {
        let mut arns: Vec<String> = self
            .classic_load_balancers
            .iter()
            .flat_map(|lb| {
                lb.listeners
                    .iter()
                    .filter_map(|l| l.certificate_arn.clone())
            })
            .chain(self.load_balancers.iter().flat_map(|lb| {
                lb.listeners
                    .iter()
                    .flat_map(|l| l.certificate_arns.iter().cloned())
            }))
            .collect();
        arns.sort();
        arns.dedup();
        arns
    }
}

/// An EC2 instance as a restore needs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub id: String,
    pub instance_type: String,
    /// Recovery tier from the `tiers.tag_key` tag (the configured default when absent).
    pub tier: u8,
    /// Value of the cluster tag (`inventory.cluster_tag`, default `dr:cluster`), if any.
    pub cluster: Option<String>,
    /// Launch role (the `pilotlight:role` tag, else `Name` without a trailing `-<digits>`).
    pub role: String,
    pub availability_zone: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub image_id: String,
    pub key_name: Option<String>,
    /// ARN of the instance profile, if any.
    pub iam_instance_profile_arn: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub root_device_name: Option<String>,
    pub block_devices: Vec<BlockDevice>,
    /// `running`, `stopped`, …
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

/// An EBS volume attached to an instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockDevice {
    pub device_name: String,
    pub volume_id: String,
    pub size_gib: u32,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub encrypted: bool,
    pub delete_on_termination: bool,
    /// Whether this is the root device (restored from the AMI, not from a volume snapshot).
    pub root: bool,
}

/// vCPU and memory of an instance type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceTypeInfo {
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// `internal` or `internet-facing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    #[default]
    InternetFacing,
    Internal,
}

/// A classic load balancer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassicLoadBalancer {
    pub name: String,
    pub dns_name: String,
    pub scheme: Scheme,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub listeners: Vec<ClassicListener>,
    pub health_check: Option<ClassicHealthCheck>,
    pub instance_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// A classic listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassicListener {
    pub protocol: String,
    pub port: i32,
    pub instance_protocol: Option<String>,
    pub instance_port: i32,
    pub certificate_arn: Option<String>,
}

/// A classic health check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassicHealthCheck {
    pub target: String,
    pub interval_secs: i32,
    pub timeout_secs: i32,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
}

/// `application`, `network` or `gateway`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadBalancerKind {
    #[default]
    Application,
    Network,
    Gateway,
}

/// An application or network load balancer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub kind: LoadBalancerKind,
    pub dns_name: String,
    pub canonical_hosted_zone_id: Option<String>,
    pub scheme: Scheme,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub listeners: Vec<Listener>,
    pub target_groups: Vec<TargetGroup>,
    pub tags: BTreeMap<String, String>,
}

/// A v2 listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub arn: String,
    pub port: i32,
    pub protocol: String,
    pub ssl_policy: Option<String>,
    pub certificate_arns: Vec<String>,
    /// Target groups of the default `forward` action.
    pub default_target_group_arns: Vec<String>,
    /// Other default action types (`redirect`, `fixed-response`), kept by name.
    pub default_action_types: Vec<String>,
}

/// A target group with its registered targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub protocol: Option<String>,
    pub port: Option<i32>,
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: String,
    pub health_check_protocol: Option<String>,
    pub health_check_path: Option<String>,
    pub health_check_port: Option<String>,
    pub targets: Vec<Target>,
}

/// A registered target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub id: String,
    pub port: Option<i32>,
}

/// An ACM certificate of the primary region (its DR counterpart is found by domain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub arn: String,
    pub domain_name: String,
    pub subject_alternative_names: Vec<String>,
}

/// A Route 53 hosted zone and its records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostedZone {
    /// `/hostedzone/…` stripped to the bare id.
    pub id: String,
    /// The zone name with its trailing dot.
    pub name: String,
    pub private: bool,
    /// `(region, vpc id)` of a private zone's associated VPCs.
    pub vpcs: Vec<(String, String)>,
    /// Every record but the zone's own SOA and apex NS.
    pub records: Vec<Record>,
}

/// A record set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT`, …
    pub record_type: String,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    pub alias: Option<AliasTarget>,
    pub set_identifier: Option<String>,
    pub weight: Option<i64>,
    pub failover: Option<String>,
    pub health_check_id: Option<String>,
}

/// An alias record's target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasTarget {
    pub dns_name: String,
    pub hosted_zone_id: String,
    pub evaluate_target_health: bool,
}

/// An RDS DB instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbInstance {
    pub id: String,
    pub arn: String,
    pub class: String,
    pub engine: String,
    pub engine_version: Option<String>,
    pub tier: u8,
    pub availability_zone: Option<String>,
    pub multi_az: bool,
    pub storage_gib: u32,
    pub storage_type: Option<String>,
    pub subnet_group: Option<String>,
    pub subnet_ids: Vec<String>,
    pub vpc_security_group_ids: Vec<String>,
    pub parameter_groups: Vec<String>,
    /// `host` of the endpoint (what DNS records point at).
    pub endpoint_address: Option<String>,
    pub endpoint_port: Option<i32>,
    /// Aurora cluster the instance belongs to, if any.
    pub cluster_id: Option<String>,
    /// Value of the cluster tag (`inventory.cluster_tag`), if any.
    pub cluster: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// An Aurora DB cluster. Its members are DB instances of [`Inventory::db_instances`] (with
/// `cluster_id` naming the cluster), listed here with their role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbCluster {
    pub id: String,
    pub arn: String,
    /// `aurora-mysql`, `aurora-postgresql`, …
    pub engine: String,
    pub engine_version: Option<String>,
    /// Recovery tier from the cluster's tier tag (the configured default when absent).
    pub tier: u8,
    pub port: Option<i32>,
    pub subnet_group: Option<String>,
    /// The subnets of its subnet group, sorted.
    pub subnet_ids: Vec<String>,
    pub vpc_security_group_ids: Vec<String>,
    /// The writer endpoint (what DNS records point at).
    pub endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    /// Member DB instances, sorted by identifier.
    pub members: Vec<DbClusterMember>,
    /// Value of the cluster tag (`inventory.cluster_tag`), if any.
    pub cluster: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A member DB instance of an Aurora cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbClusterMember {
    pub db_instance_id: String,
    /// Whether it is the cluster's writer.
    pub writer: bool,
}

impl DbCluster {
    /// The writer member's identifier, if the cluster has one.
    pub fn writer(&self) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.writer)
            .map(|m| m.db_instance_id.as_str())
    }
}

/// Utilisation of one instance over the collection window, in percent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utilisation {
    pub cpu_peak_pct: f64,
    pub cpu_p95_pct: f64,
    /// Only where the CloudWatch agent publishes memory.
    pub mem_peak_pct: Option<f64>,
    pub mem_p95_pct: Option<f64>,
    /// Data points the figures come from.
    pub samples: u32,
    /// The window the figures cover, in days.
    pub window_days: u32,
}

/// The instance family of a type (`r5` of `r5.2xlarge`, `m7i-flex` of `m7i-flex.large`).
pub fn family(instance_type: &str) -> &str {
    instance_type.split('.').next().unwrap_or(instance_type)
}

/// AWS's On-Demand vCPU quota group of a type: `standard` (A, C, D, H, I, M, R, T, Z), `g`
/// (G and VT), `p`, `x`, `f`, `inf`, `dl`, `trn`, or `high-memory` (u-*).
pub fn vcpu_quota_group(instance_type: &str) -> &'static str {
    let fam = family(instance_type);
    if fam.starts_with("u-") || fam.starts_with("u7") {
        return "high-memory";
    }
    if fam.starts_with("inf") {
        return "inf";
    }
    if fam.starts_with("dl") {
        return "dl";
    }
    if fam.starts_with("trn") {
        return "trn";
    }
    if fam.starts_with("vt") {
        return "g";
    }
    match fam.chars().next() {
        Some('g') => "g",
        Some('p') => "p",
        Some('x') => "x",
        Some('f') => "f",
        _ => "standard",
    }
}

/// A gzip-free reader check: whether a document of `schema_version` can be read by this build.
pub fn readable(schema_version: u32) -> bool {
    schema_version >= 1 && schema_version <= SCHEMA_VERSION
}

/// Percentile (nearest-rank, `p` in 0–100) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inventory {
        Inventory {
            schema_version: SCHEMA_VERSION,
            captured_at_ms: 1,
            primary_region: "us-east-1".into(),
            dr_region: "us-west-2".into(),
            instances: vec![
                Instance {
                    id: "i-2".into(),
                    instance_type: "r5.2xlarge".into(),
                    tier: 1,
                    ..Instance::default()
                },
                Instance {
                    id: "i-1".into(),
                    instance_type: "m5.large".into(),
                    tier: 2,
                    security_group_ids: vec!["sg-b".into(), "sg-a".into()],
                    ..Instance::default()
                },
            ],
            ..Inventory::default()
        }
    }

    #[test]
    fn digest_ignores_capture_time_and_order_after_normalize() {
        let mut a = sample();
        let mut b = sample();
        b.captured_at_ms = 99;
        b.instances.reverse();
        a.normalize();
        b.normalize();
        assert_eq!(a.digest(), b.digest());
        b.instances[0].instance_type = "m5.xlarge".into();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn json_round_trip_is_identical() {
        let mut a = sample();
        a.normalize();
        let text = serde_json::to_string(&a).unwrap();
        let back: Inventory = serde_json::from_str(&text).unwrap();
        assert_eq!(a, back);
    }

    #[test]
    fn documents_without_clusters_still_load() {
        let mut a = sample();
        a.normalize();
        let mut value = serde_json::to_value(&a).unwrap();
        value.as_object_mut().unwrap().remove("db_clusters");
        let back: Inventory = serde_json::from_value(value).unwrap();
        assert_eq!(back, a);
        assert!(back.db_clusters.is_empty());
    }

    #[test]
    fn clusters_normalize_and_name_their_writer() {
        let mut a = sample();
        a.db_clusters = vec![
            DbCluster {
                id: "ledger".into(),
                members: vec![
                    DbClusterMember {
                        db_instance_id: "ledger-2".into(),
                        writer: false,
                    },
                    DbClusterMember {
                        db_instance_id: "ledger-1".into(),
                        writer: true,
                    },
                ],
                subnet_ids: vec!["subnet-b".into(), "subnet-a".into()],
                ..DbCluster::default()
            },
            DbCluster {
                id: "audit".into(),
                ..DbCluster::default()
            },
        ];
        a.normalize();
        let ids: Vec<&str> = a.db_clusters.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["audit", "ledger"]);
        let ledger = &a.db_clusters[1];
        assert_eq!(ledger.subnet_ids, ["subnet-a", "subnet-b"]);
        assert_eq!(ledger.members[0].db_instance_id, "ledger-1");
        assert_eq!(ledger.writer(), Some("ledger-1"));
        assert_eq!(a.db_clusters[0].writer(), None);
        assert_eq!(a.counts()["db_clusters"], 2);
    }

    #[test]
    fn families_and_quota_groups() {
        assert_eq!(family("r5.2xlarge"), "r5");
        assert_eq!(vcpu_quota_group("r5.2xlarge"), "standard");
        assert_eq!(vcpu_quota_group("g5.xlarge"), "g");
        assert_eq!(vcpu_quota_group("p4d.24xlarge"), "p");
        assert_eq!(vcpu_quota_group("x2iedn.xlarge"), "x");
        assert_eq!(vcpu_quota_group("inf2.xlarge"), "inf");
        assert_eq!(vcpu_quota_group("u-6tb1.metal"), "high-memory");
        assert_eq!(vcpu_quota_group("t3.micro"), "standard");
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[], 95.0), None);
        assert_eq!(percentile(&[3.0], 50.0), Some(3.0));
    }
}
