//! The restore plan and its RTO estimate (SPEC D2, R9).
//!
//! [`restore_plan`] turns a [`Selection`] of the inventory and what the DR region holds for it
//! ([`DrState`]) into everything a restore will do, how many calls of each AWS operation that
//! takes, and how long AWS's API limits let it take. It reads no clock and touches no AWS: it is
//! the dry run of D2 and the source of the R9 estimate.
//!
//! # What the plan holds
//!
//! - **Tiers**, ascending ([`TierPlan`]). Each holds its **launch groups**: instances with an
//!   identical launch spec ([`LaunchSpec`]: DR AMI, instance type, DR subnet, sorted DR security
//!   groups, key name, instance profile), launched together by one `RunInstances`
//!   (MinCount = MaxCount) per [`RestoreConfig::max_instances_per_call`] instances. Under the
//!   block-device-mapping volume method the spec also carries the DR snapshots of the data
//!   volumes, so an instance with its own volumes is its own group. With
//!   [`RestoreConfig::preserve_private_ips`] every instance is its own group (a fixed IP launches
//!   one instance). [`LaunchGroup::group_id`] is a digest of the tier and the spec (and the
//!   instance id when IPs are preserved): the same estate always gives the same ids, from which
//!   the executor derives `RunInstances` client tokens. A tier also lists its data volumes
//!   (non-root block devices), its RDS DB instances, restored with one
//!   `RestoreDBInstanceFromDBSnapshot` each from their newest DR snapshot, and its Aurora
//!   clusters ([`ClusterRestore`]), each restored with one `RestoreDBClusterFromSnapshot` from
//!   its newest DR cluster snapshot and one `CreateDBInstance` per member (writer first). The
//!   members of a cluster of the inventory are planned with their cluster, in its tier, and not
//!   as DB instances of their own.
//! - **The volume method** ([`VolumePlan`]). Data volumes come back either in the launch's
//!   block-device mappings (one launch per distinct spec) or through `CreateVolume` +
//!   `AttachVolume` after batched launches. Both are simulated; `auto` picks the one whose EC2
//!   work finishes first (ties go to block-device mappings, which make fewer calls), and both
//!   estimates are kept.
//! - **Load balancers** ([`LoadBalancerRestore`]): classic ones with `CreateLoadBalancer`
//!   (listeners included), `ConfigureHealthCheck` when they have a health check and one
//!   `RegisterInstancesWithLoadBalancer` for their restored instances; v2 ones with
//!   `CreateLoadBalancer`, one `CreateTargetGroup` per target group, one `CreateListener` per
//!   listener and one `RegisterTargets` per target group with restored targets. Only targets
//!   that are instances of the selection (by id, or by private IP for `ip` target groups) are
//!   registered.
//! - **DNS** ([`DnsPlan`]): every selected record whose values or alias point at an instance IP,
//!   a load balancer, a DB endpoint or an Aurora cluster's writer or reader endpoint of the
//!   selection is UPSERTed, in batches per zone (see
//!   [`DnsBatch`] for the limits); one `ChangeResourceRecordSets` and one `GetChange` per batch;
//!   a private zone also needs one `AssociateVPCWithHostedZone` for its DR VPC.
//! - **Calls per operation** (`service:Operation`, e.g. `ec2:RunInstances`) over the plan and per
//!   tier: the mutating calls above, one `ec2:CreateTags` per instance of every launch of more
//!   than one instance, and one filtered `ec2:DescribeInstances` per launch. Every DR instance
//!   carries `pilotlight:source=<its primary instance id>`: a launch of one instance sets it in
//!   its `TagSpecifications`, but a launch of k > 1 can only give its instances shared tags, so
//!   the executor tags each of them afterwards (k calls: the values differ). The polling
//!   assumption: the executor waits for a launch with one describe of the launch's instance
//!   ids, issued when they are expected to be running (or an EventBridge state change replaces
//!   it); retries and further polls are not planned.
//! - **Problems** ([`Problem`]): an AMI without DR copy, a data volume, DB or Aurora cluster
//!   without DR snapshot,
//!   an unmapped subnet, security group or VPC, a listener certificate without DR counterpart.
//!   The affected items stay in the plan, are counted and scheduled like the rest and carry a
//!   [`DrRef::Missing`] where the DR id would be: the plan shows the whole restore and says what
//!   stops it.
//!
//! # The schedule (R9)
//!
//! [`Schedule`] replays the plan's calls through token buckets. Every call pays the charges
//! [`aws_limits::charges`](crate::aws_limits::charges) lists (a `RunInstances` pays its request
//! bucket once and its resource bucket once per instance; every ELB call also pays the
//! account-wide ELB bucket; a `ChangeResourceRecordSets` pays one Route 53 change token per
//! CREATE and two per UPSERT). A bucket is the configured override for its charge key
//! (`[throttle.overrides]`, e.g. `ec2:RunInstances` or `ec2:RunInstances#resource`) or AWS's
//! documented size, with its refill multiplied by `throttle.time_scale` — exactly how the
//! daemon's throttle sizes its buckets. Buckets start full and keep their state for the whole
//! restore: while a tier waits for its gate they refill, up to their capacity. A call larger
//! than its bucket is paid in instalments, as the throttle does.
//!
//! The calls form chains, each in the order the executor issues them, and a call waits for its
//! predecessors, its dependencies and its tokens:
//!
//! - **EC2**, tier by tier: tier N+1 starts when tier N passes its gate — its last launch
//!   plus [`RestoreConfig::instance_boot_secs`] and its last `CreateTags`. Within a tier the
//!   launches go out from its start; the `CreateTags` of a batched launch go out one after
//!   another (in launch order, through the `ec2:CreateTags` bucket) from the moment it returns,
//!   in parallel with the boot wait. Under `CreateVolume` + `AttachVolume` each volume is
//!   created once its instance's launch has returned and attached once its instance runs
//!   (launch plus boot); the attachments of all tiers form one stream in tier order, so tier
//!   N's go on while tier N+1 launches, and a tier is up when its last volume is attached.
//!   The same boot time stands for both gates (`running` and `healthy`).
//! - **Load balancers** from t = 0 (they need only the DR subnets), each active
//!   [`RestoreConfig::load_balancer_provision_secs`] after its creation; target groups from
//!   t = 0, listeners after their load balancer and target groups, each registration after its
//!   target group (or load balancer) and once every instance it registers runs.
//! - **DNS** after both: once every tier is up (every volume attached) and the load balancers are active and
//!   registered. Zones run in parallel; within a zone one batch at a time, the next after the
//!   previous one's `GetChange` saw it in sync, [`RestoreConfig::dns_sync_secs`] later.
//! - **RDS** from t = 0, one call after another; a DB is available
//!   [`RestoreConfig::db_restore_secs`] after its call, an Aurora cluster that long after the
//!   `CreateDBInstance` of its last member (which follows its `RestoreDBClusterFromSnapshot`).
//!
//! Whenever several calls could go, the one that can go earliest goes first. The estimate is
//! the time the last chain ends ([`Schedule::total_secs`]). The waits (boot, provisioning,
//! DNS sync, DB restore) are the configured estimates, not scaled by `time_scale`; AWS
//! publishes none of them.
//!
//! **The lower bound** ([`LowerBound`]) is what the API limits alone impose, as in
//! `shared/AWS-LIMITS.md`: pushing N tokens through a bucket of capacity B refilled at r takes
//! `max(0, (N − B) / r)`. EC2 buckets are per action (`RunInstances` request and resource,
//! `CreateTags`, `CreateVolume`, `AttachVolume`, `DescribeInstances`) and drain in parallel; ELB
//! buckets likewise, with the account bucket shared; DNS needs the load balancers created
//! first, so the ELB creation drain and the Route 53 drain add up; RDS stands alone. The
//! bound is the largest of these chains, and its binding bucket is named. It leaves out every
//! wait the schedule models (boot, provisioning, DNS sync, DB restore) and the tier gates, so
//! the schedule is never shorter; the gap between the two is what the waits and the tiering
//! cost.

mod dns;
mod groups;
mod lb;
mod schedule;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{RestoreConfig, ThrottleConfig, VolumeStrategy};
use crate::inventory::{DbCluster, DbInstance, Instance, Inventory, Scheme};
use crate::scope::{DrState, Selection};

/// Calls per operation, keyed `service:Operation` (`ec2:RunInstances`, `elbv2:CreateListener`,
/// `route53:ChangeResourceRecordSets`, `rds:RestoreDBInstanceFromDBSnapshot`, …).
pub type CallCounts = BTreeMap<String, u64>;

/// Everything a restore of a selection does, and how long AWS's limits let it take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// Tiers in ascending order, with their launch groups, data volumes and databases.
    pub tiers: Vec<TierPlan>,
    /// How data volumes come back, and what each method would take.
    pub volumes: VolumePlan,
    /// Load balancers to recreate: classic ones by name, then v2 ones by ARN.
    pub load_balancers: Vec<LoadBalancerRestore>,
    /// Record changes, batched per zone.
    pub dns: DnsPlan,
    /// Calls per operation over the whole plan.
    pub calls: CallCounts,
    /// The simulated timeline and the API-imposed lower bound.
    pub schedule: Schedule,
    /// What has no DR counterpart, sorted by kind, resource and missing id.
    pub problems: Vec<Problem>,
}

impl RestorePlan {
    /// Instances in the plan, every tier.
    pub fn instance_count(&self) -> u64 {
        self.tiers.iter().map(|t| t.instances).sum()
    }

    /// Total calls over every operation.
    pub fn call_count(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// One tier's part of the restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierPlan {
    pub tier: u8,
    /// Instances of the tier.
    pub instances: u64,
    /// Instances per instance type.
    pub instance_types: BTreeMap<String, u64>,
    /// Launch groups, in the order of their first instance in the inventory.
    pub groups: Vec<LaunchGroup>,
    /// Data volumes (non-root block devices) of the tier's instances, in launch order.
    pub data_volumes: Vec<DataVolume>,
    /// RDS DB instances of the tier (Aurora cluster members are in [`TierPlan::clusters`]).
    pub databases: Vec<DbRestore>,
    /// Aurora clusters of the tier. Absent from plans made before clusters were restored.
    #[serde(default)]
    pub clusters: Vec<ClusterRestore>,
    /// Calls per operation of the tier: its EC2 calls and its RDS restores.
    pub calls: CallCounts,
}

/// Instances launched with one spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    /// `t<tier>-<16 hex digits>`: a digest of the tier and the spec (and the instance id when
    /// private IPs are preserved). Equal estates give equal ids.
    pub group_id: String,
    pub spec: LaunchSpec,
    /// Primary instance ids, in inventory order.
    pub instance_ids: Vec<String>,
    /// `instance_ids.len()`.
    pub count: u32,
    /// Instances per `RunInstances`, each at most `max_instances_per_call`: launch k takes the
    /// next `launches[k]` ids of `instance_ids`.
    pub launches: Vec<u32>,
}

/// What a `RunInstances` is asked for, in DR terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// The DR copy of the instance's AMI.
    pub image: DrRef,
    pub instance_type: String,
    /// The DR subnet; `None` when the inventory has no subnet for the instance.
    pub subnet: Option<DrRef>,
    /// DR security groups, sorted.
    pub security_groups: Vec<DrRef>,
    pub key_name: Option<String>,
    /// ARN of the instance profile.
    pub iam_instance_profile_arn: Option<String>,
    /// The primary private IP, asked for only with `preserve_private_ips`.
    pub private_ip: Option<String>,
    /// Data volumes restored through the launch's block-device mappings (block-device-mapping
    /// method only; empty otherwise).
    pub block_devices: Vec<VolumeSpec>,
}

/// A primary resource's counterpart in the DR region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrRef {
    /// The DR id.
    Dr(String),
    /// No DR counterpart yet: the primary id (also listed in [`RestorePlan::problems`]).
    Missing(String),
}

impl DrRef {
    /// The DR id, if there is one.
    pub fn dr_id(&self) -> Option<&str> {
        match self {
            DrRef::Dr(id) => Some(id),
            DrRef::Missing(_) => None,
        }
    }

    /// Whether the DR counterpart is missing.
    pub fn is_missing(&self) -> bool {
        matches!(self, DrRef::Missing(_))
    }
}

/// A data volume as it comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub device_name: String,
    /// The newest DR snapshot of the primary volume.
    pub snapshot: DrRef,
    pub size_gib: u32,
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub encrypted: bool,
    pub delete_on_termination: bool,
}

/// A data volume of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataVolume {
    /// The primary instance it belongs to.
    pub instance_id: String,
    /// The primary volume.
    pub volume_id: String,
    pub volume: VolumeSpec,
}

/// An RDS DB instance restored from its DR snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbRestore {
    /// The primary DB instance identifier.
    pub db_instance_id: String,
    pub tier: u8,
    pub class: String,
    pub engine: String,
    /// The newest DR DB snapshot.
    pub snapshot: DrRef,
    pub multi_az: bool,
    /// DR subnets of its subnet group.
    pub subnets: Vec<DrRef>,
    /// DR VPC security groups, sorted.
    pub security_groups: Vec<DrRef>,
}

/// An Aurora cluster restored from its DR cluster snapshot, then its member instances created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRestore {
    /// The primary DB cluster identifier.
    pub db_cluster_id: String,
    pub tier: u8,
    pub engine: String,
    pub engine_version: Option<String>,
    pub port: Option<i32>,
    /// The newest DR cluster snapshot.
    pub snapshot: DrRef,
    /// DR subnets of its subnet group.
    pub subnets: Vec<DrRef>,
    /// DR VPC security groups, sorted.
    pub security_groups: Vec<DrRef>,
    /// Member instances, the writer first, then by identifier.
    pub members: Vec<ClusterMemberRestore>,
}

/// A member instance of an Aurora cluster, created with `CreateDBInstance` into the restored
/// cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMemberRestore {
    /// The primary DB instance identifier.
    pub db_instance_id: String,
    pub class: String,
    pub writer: bool,
}

/// How data volumes come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeMethod {
    /// In the launch's block-device mappings.
    BlockDeviceMapping,
    /// `CreateVolume` + `AttachVolume` after batched launches.
    CreateAttach,
}

/// The volume method chosen and what each would take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumePlan {
    /// `restore.data_volumes` as configured.
    pub configured: VolumeStrategy,
    /// The method the plan uses.
    pub chosen: VolumeMethod,
    /// Data volumes of the plan.
    pub data_volumes: u64,
    /// When the last tier would be up with block-device mappings (seconds from the start).
    pub block_device_mapping_ec2_secs: f64,
    /// When the last tier would be up with `CreateVolume` + `AttachVolume`.
    pub create_attach_ec2_secs: f64,
}

/// Kind of a load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbKind {
    Classic,
    Application,
    Network,
    Gateway,
}

/// A load balancer to recreate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerRestore {
    pub kind: LbKind,
    pub name: String,
    /// The primary load balancer: its name (classic) or ARN (v2).
    pub source: String,
    pub scheme: Scheme,
    pub subnets: Vec<DrRef>,
    /// DR security groups, sorted.
    pub security_groups: Vec<DrRef>,
    pub listeners: Vec<ListenerRestore>,
    /// Classic: whether a health check is configured.
    pub health_check: bool,
    /// Classic: restored instances to register.
    pub instance_ids: Vec<String>,
    /// v2: target groups.
    pub target_groups: Vec<TargetGroupRestore>,
}

/// A listener and its DR certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerRestore {
    pub port: i32,
    pub protocol: String,
    pub certificates: Vec<DrRef>,
}

/// A v2 target group and the restored instances it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroupRestore {
    /// The primary target group ARN.
    pub arn: String,
    pub name: String,
    /// Primary ids of the selected instances among its targets, sorted.
    pub instance_ids: Vec<String>,
}

/// Record changes, zone by zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsPlan {
    /// Records to change.
    pub records: u64,
    /// Zones with changes, by zone id.
    pub zones: Vec<ZoneChanges>,
}

/// One zone's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneChanges {
    pub zone_id: String,
    pub zone_name: String,
    pub private: bool,
    /// The DR VPC a private zone is associated with (its first VPC in the primary region,
    /// mapped); one `AssociateVPCWithHostedZone`.
    pub associate_vpc: Option<DrRef>,
    /// Batches, applied one after another.
    pub batches: Vec<DnsBatch>,
}

/// One `ChangeResourceRecordSets` of UPSERTs.
///
/// Limits: `resource_record_units` ≤ `restore.route53_max_changes_per_batch` (AWS allows 1,000
/// and counts each resource record of an UPSERT twice, so 600 single-value UPSERTs do not fit
/// one batch) and `value_chars` ≤ 32,000 (each character of an UPSERT counted twice). A record
/// exceeding a limit on its own gets a batch of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsBatch {
    pub records: Vec<RecordChange>,
    /// Route 53 change tokens: 2 per UPSERT (what the change bucket is charged).
    pub change_tokens: u32,
    /// Resource records counted as AWS's batch limit does: 2 × values (1 for an alias) per
    /// UPSERT.
    pub resource_record_units: u32,
    /// Estimated characters of the DR values, counted twice: IPv4 values as 15 characters at
    /// least, DNS names as long as the primary's plus the difference in region name lengths.
    pub value_chars: u32,
}

/// A record to UPSERT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
    pub name: String,
    pub record_type: String,
    pub set_identifier: Option<String>,
    /// What it points at: instance ids, load balancers (classic name, v2 ARN), DB and DB cluster
    /// identifiers.
    pub points_at: Vec<String>,
}

/// The simulated timeline of a restore (seconds from its start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub tiers: Vec<TierSchedule>,
    /// Load balancer creation to the last one active and registered.
    pub load_balancers: Option<Span>,
    /// The first record batch to the last one in sync.
    pub dns: Option<Span>,
    /// The first DB restore call to the last DB available.
    pub databases: Option<Span>,
    /// When the last chain ends: the RTO estimate.
    pub total_secs: f64,
    pub lower_bound: LowerBound,
}

/// One tier's EC2 timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierSchedule {
    pub tier: u8,
    /// When its EC2 work may start (the previous tier's end).
    pub start_secs: f64,
    /// When its last `RunInstances` goes out.
    pub launches_done_secs: f64,
    /// From its start to its last mutating EC2 call: a launch, a `CreateTags` of a batched
    /// launch, or under `CreateVolume` + `AttachVolume` an attachment (which waits for its
    /// instance to run).
    pub api_secs: f64,
    /// When it is up: last launch plus boot, every instance tagged and every volume attached.
    pub end_secs: f64,
    /// The bucket that delayed the throttled call whose part of the tier was done last (a
    /// launch's once its instances run, boot time after it went out), if any call was
    /// throttled.
    pub binding: Option<String>,
}

/// A stretch of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub start_secs: f64,
    pub end_secs: f64,
}

/// The API-imposed floor of the restore time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LowerBound {
    /// The largest chain.
    pub secs: f64,
    /// The binding bucket (two joined by ` + ` for the ELB-then-DNS chain); `None` when every
    /// bucket's burst covers the plan.
    pub binding: Option<String>,
    /// Per chain: `ec2`, `elb`, `elb+dns` (creation then records), `rds`.
    pub chains: BTreeMap<String, f64>,
    /// Per charge key: the effective bucket, the plan's tokens and their drain time.
    pub buckets: BTreeMap<String, BucketLoad>,
}

/// A bucket's load over the whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketLoad {
    pub capacity: f64,
    /// Refill per second after `time_scale`.
    pub refill_per_sec: f64,
    pub tokens: f64,
    /// `max(0, (tokens − capacity) / refill)`.
    pub drain_secs: f64,
}

/// Why an item cannot be restored as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An instance's AMI has no DR copy.
    ImageNotCopied,
    /// A data volume has no DR snapshot.
    VolumeSnapshotMissing,
    /// The inventory has no subnet for an instance.
    NoSubnet,
    /// A subnet has no DR counterpart.
    SubnetNotMapped,
    /// A security group has no DR counterpart.
    SecurityGroupNotMapped,
    /// A private zone's VPC has no DR counterpart.
    VpcNotMapped,
    /// A DB instance has no DR snapshot.
    DbSnapshotMissing,
    /// An Aurora cluster has no DR cluster snapshot.
    DbClusterSnapshotMissing,
    /// A listener certificate has no DR counterpart.
    CertificateNotMapped,
}

/// An item flagged by the plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What is restored: an instance id, a load balancer (classic name, v2 ARN), a DB or DB
    /// cluster identifier or a zone id.
    pub resource_id: String,
    /// The primary id lacking a DR counterpart (AMI, volume, subnet, group, VPC, certificate,
    /// DB, DB cluster), or empty for [`ProblemKind::NoSubnet`].
    pub missing_id: String,
    pub reason: String,
}

/// Problems collected while planning, de-duplicated and sorted.
#[derive(Debug, Default)]
struct Problems(BTreeSet<Problem>);

impl Problems {
    fn add(&mut self, kind: ProblemKind, resource_id: &str, missing_id: &str, reason: String) {
        self.0.insert(Problem {
            kind,
            resource_id: resource_id.to_owned(),
            missing_id: missing_id.to_owned(),
            reason,
        });
    }

    /// `dr.mappings[primary]`, or a [`DrRef::Missing`] and a problem of `kind`.
    fn mapped(
        &mut self,
        dr: &DrState,
        kind: ProblemKind,
        resource_id: &str,
        primary: &str,
        what: &str,
    ) -> DrRef {
        match dr.mappings.get(primary) {
            Some(id) => DrRef::Dr(id.clone()),
            None => {
                self.add(
                    kind,
                    resource_id,
                    primary,
                    format!("{what} {primary} is not mirrored in the DR region"),
                );
                DrRef::Missing(primary.to_owned())
            }
        }
    }

    /// Sorted security groups mapped to the DR region.
    fn security_groups(&mut self, dr: &DrState, resource_id: &str, ids: &[String]) -> Vec<DrRef> {
        let mut out: Vec<DrRef> = ids
            .iter()
            .map(|sg| {
                self.mapped(
                    dr,
                    ProblemKind::SecurityGroupNotMapped,
                    resource_id,
                    sg,
                    "security group",
                )
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// What one tier restores, from the selection: its instances, its DB instances (Aurora members
/// aside) and its Aurora clusters with their members.
#[derive(Debug, Default)]
struct TierInput<'a> {
    instances: Vec<&'a Instance>,
    dbs: Vec<&'a DbInstance>,
    clusters: Vec<(&'a DbCluster, Vec<&'a DbInstance>)>,
}

/// Plans the restore of `selection` (see the module doc).
pub fn restore_plan(
    inventory: &Inventory,
    selection: &Selection<'_>,
    dr: &DrState,
    restore: &RestoreConfig,
    throttle: &ThrottleConfig,
) -> RestorePlan {
    let mut problems = Problems::default();
    let mut by_tier: BTreeMap<u8, TierInput<'_>> = BTreeMap::new();
    for instance in &selection.instances {
        by_tier
            .entry(instance.tier)
            .or_default()
            .instances
            .push(instance);
    }
    // Members of a cluster of the inventory come back with their cluster.
    let clustered: BTreeSet<&str> = inventory
        .db_clusters
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    for db in &selection.db_instances {
        if db
            .cluster_id
            .as_deref()
            .is_some_and(|c| clustered.contains(c))
        {
            continue;
        }
        by_tier.entry(db.tier).or_default().dbs.push(db);
    }
    for cluster in &selection.db_clusters {
        let members: Vec<&DbInstance> = selection
            .db_instances
            .iter()
            .copied()
            .filter(|d| d.cluster_id.as_deref() == Some(cluster.id.as_str()))
            .collect();
        by_tier
            .entry(cluster.tier)
            .or_default()
            .clusters
            .push((cluster, members));
    }
    let build = |method: VolumeMethod, problems: &mut Problems| -> Vec<TierPlan> {
        by_tier
            .iter()
            .map(|(&tier, input)| groups::tier_plan(tier, input, method, restore, dr, problems))
            .collect()
    };
    let bdm = build(VolumeMethod::BlockDeviceMapping, &mut problems);
    let create_attach = build(VolumeMethod::CreateAttach, &mut problems);
    let bdm_secs =
        schedule::ec2_makespan(&bdm, VolumeMethod::BlockDeviceMapping, restore, throttle);
    let create_attach_secs = schedule::ec2_makespan(
        &create_attach,
        VolumeMethod::CreateAttach,
        restore,
        throttle,
    );
    let chosen = match restore.data_volumes {
        VolumeStrategy::BlockDeviceMapping => VolumeMethod::BlockDeviceMapping,
        VolumeStrategy::CreateAttach => VolumeMethod::CreateAttach,
        VolumeStrategy::Auto if create_attach_secs < bdm_secs => VolumeMethod::CreateAttach,
        VolumeStrategy::Auto => VolumeMethod::BlockDeviceMapping,
    };
    let mut tiers = match chosen {
        VolumeMethod::BlockDeviceMapping => bdm,
        VolumeMethod::CreateAttach => create_attach,
    };

    let load_balancers = lb::plan(selection, dr, &mut problems);
    let dns = dns::plan(inventory, selection, dr, restore, &mut problems);
    let outcome = schedule::simulate(&tiers, chosen, &load_balancers, &dns, restore, throttle);
    for tier in &mut tiers {
        tier.calls = outcome
            .tier_calls
            .get(&tier.tier)
            .cloned()
            .unwrap_or_default();
    }
    let data_volumes = tiers.iter().map(|t| t.data_volumes.len() as u64).sum();

    RestorePlan {
        tiers,
        volumes: VolumePlan {
            configured: restore.data_volumes,
            chosen,
            data_volumes,
            block_device_mapping_ec2_secs: bdm_secs,
            create_attach_ec2_secs: create_attach_secs,
        },
        load_balancers,
        dns,
        calls: outcome.calls,
        schedule: outcome.schedule,
        problems: problems.0.into_iter().collect(),
    }
}
