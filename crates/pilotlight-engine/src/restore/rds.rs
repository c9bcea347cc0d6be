//! RDS restores (SPEC D5): every DB instance of the plan restored in the DR region from its
//! newest DR snapshot copy, every Aurora cluster from its newest DR cluster snapshot copy with
//! its member instances created again, then each waited for until it is `available`.
//!
//! # What one execution does
//!
//! 1. **Subnet groups.** The plan's DBs and Aurora clusters are grouped by their set of DR
//!    subnets; each set gets one DB subnet group, made by `CreateDBSubnetGroup` under a
//!    deterministic name ([`subnet_group_name`]: `pilotlight-<primary subnet group or DB
//!    identifier>-<hash of the run and the subnets>`) and journalled as item
//!    `subnet-group/<name>`. An answer of `DBSubnetGroupAlreadyExists` (a lost answer, a resumed
//!    run) adopts the group once `DescribeDBSubnetGroups` shows it holds exactly those subnets.
//! 2. **Restores.** One `RestoreDBInstanceFromDBSnapshot` per DB (item `db/<primary id>`, kind
//!    `db_instance`): from the plan's DR snapshot, into its subnet group, with its DR security
//!    groups, class, multi-AZ setting, the primary's port, and the run's tags
//!    ([`RunCtx::tags`]) followed by the primary's own tags. The DB instance identifier is
//!    deterministic ([`dr_identifier`]: the primary identifier for a disaster, which the DR
//!    region's own namespace allows; with a run suffix for a drill), so a repeated request
//!    answers `DBInstanceAlreadyExists` and the DB is adopted — when its `pilotlight:run` and
//!    `pilotlight:source` tags say it is this run's; a DB of that name belonging to anything
//!    else fails the item instead of being taken over. Subnet groups, DBs and clusters go out
//!    concurrently, each mutation under the throttle and the run's in-flight bound.
//! 3. **Aurora clusters.** One `RestoreDBClusterFromSnapshot` per cluster (item
//!    `cluster/<primary id>`, kind `db_cluster`): from the plan's DR cluster snapshot, with the
//!    cluster's engine and engine version, port, its DR subnet group (made as in 1) and DR
//!    security groups, and the run's tags then the primary's; the cluster identifier is
//!    [`dr_identifier`] of the primary cluster's. As soon as RDS accepted it, each member comes
//!    back with one `CreateDBInstance` naming the restored cluster (item `db/<primary member>`,
//!    kind `db_instance`, the engine and the member's class, with the class fallback below):
//!    the writer first — the first instance of a cluster becomes its writer — then the readers
//!    together. Members are adopted like restored DBs (`DBInstanceAlreadyExists`, tags).
//! 4. **Wait.** One `DescribeDBInstances` per poll, filtered by `db-instance-id` on every DB
//!    and member still outstanding (in chunks of 100 identifiers, so one call up to 100 DBs),
//!    and likewise one `DescribeDBClusters` filtered by `db-cluster-id` for the clusters, until
//!    each is `available` with an endpoint. A DB or cluster whose status turns terminal
//!    (`failed`, `incompatible-*`, `restore-error`, …) or which stays absent from the answers
//!    for a minute fails its item. A restore whose own answer already says `available` needs
//!    no poll.
//!
//! The `db/<id>` and `cluster/<id>` items are `done` as soon as RDS accepted the request; their
//! detail holds the [`DrDatabase`] (the [`DrCluster`]) and whether it is available, and is
//! rewritten with the endpoints once it is. The step row `rds` (tier 0) is `running`
//! meanwhile and `done` at the end with the counts; a run executed again after the step is done
//! rebuilds the [`RdsOutcome`] from the items with no AWS call. The outcome lists a cluster
//! (writer and reader endpoints, for the DNS cutover) once it is available and, if it has
//! members, one of them is; members are listed among the DB instances (their own endpoints).
//!
//! # Class fallback (plan B for RDS)
//!
//! On `InsufficientDBInstanceCapacity` the DB (or cluster member) is made with the neighbouring
//! size of the same class family: the next smaller size first, then the next larger one
//! (`db.r5.2xlarge` → `db.r5.xlarge`, then `db.r5.4xlarge`), found with
//! [`pilotlight_core::fallback::neighbours`] over the sizes RDS sells ([`class_candidates`]:
//! `micro` to `2xlarge` for burstable `db.t*` classes, `large` to `48xlarge` otherwise). RDS
//! picks the AZ within the subnet group, so a class without capacity is remembered for the
//! step (for `restore.fallback.unavailable_ttl_secs`) and other DBs skip it. A substitute RDS
//! refuses as invalid (the size does not exist for that engine) is passed over like one without
//! capacity. The class that succeeded is recorded in the item detail as
//! `{"substitution": {"from_class", "to_class", "reason": "neighbour_size", "cause"}}`.
//!
//! # Crash safety (D10)
//!
//! An item found `requested` is resolved first: `DescribeDBInstances` (`DescribeDBClusters`)
//! of its identifier adopts the DB (cluster) if the first attempt made it, and only otherwise
//! is the request sent again. `RestoreDBClusterFromSnapshot` goes out without SDK retries, and
//! before any retry of it the identifier is looked up the same way: a lost answer never becomes
//! a second request. A subnet group `requested` is simply created again: its deterministic name
//! makes that idempotent.
//!
//! # Aurora
//!
//! Members of a cluster the inventory describes come back only with their cluster (the plan
//! lists them under it). A member whose cluster the inventory does not describe (a document
//! captured before clusters were) is planned like a DB instance but has no snapshot of its own:
//! it fails its item saying so. A cluster that cannot be restored (no DR cluster snapshot, an
//! unmirrored subnet or security group, a refusal) fails its item and each member's.
//!
//! # Failures
//!
//! A DB or cluster that cannot be restored (no DR snapshot, an unmirrored subnet or security
//! group, its subnet group refused, every class without capacity, an answer AWS will not change
//! its mind about) fails its item with the reason and the rest go on. Only cancellation, store
//! failures and AWS pushing back beyond [`retrying`]'s patience end the step with an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_rds::operation::create_db_subnet_group::CreateDbSubnetGroupOutput;
use aws_sdk_rds::types::{
    DbCluster as RdsCluster, DbInstance as RdsInstance, DbSubnetGroup, Filter, Tag,
};
use futures::future::join_all;
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::fallback::{SubstitutionReason, UnavailableCache, neighbours};
use pilotlight_core::inventory::{DbCluster, DbInstance, InstanceTypeInfo, family};
use pilotlight_core::plan::{ClusterMemberRestore, ClusterRestore, DbRestore, DrRef};
use pilotlight_store::{ItemState, RestoreItem, RunMode, StepState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::journal::{ItemRef, detail};
use super::run::retrying;
use super::{DrCluster, DrDatabase, RdsOutcome, RunCtx};
use crate::{ReconcileError, now_ms};

/// The step's id and kind.
const STEP: &str = "rds";
/// Item kind of a DB restore (and of an Aurora member's creation).
const DB_KIND: &str = "db_instance";
/// Item kind of an Aurora cluster restore.
const CLUSTER_KIND: &str = "db_cluster";
/// Item kind of a DB subnet group.
const GROUP_KIND: &str = "db_subnet_group";
/// Longest DB instance identifier RDS accepts.
const MAX_DB_ID: usize = 63;
/// Longest part of a subnet group name taken from the primary (AWS allows 255 in all).
const MAX_GROUP_BASE: usize = 200;
/// AWS's limit of tags on one RDS resource.
const MAX_TAGS: usize = 50;
/// Identifiers per `db-instance-id` (`db-cluster-id`) filter, and records per page.
const DESCRIBE_CHUNK: usize = 100;
/// How long a restored DB may be missing from `DescribeDBInstances` before its item fails.
const MISSING_GRACE: Duration = Duration::from_secs(60);
/// RDS chooses the AZ within the subnet group: capacity is remembered per class, region-wide.
const ANY_AZ: &str = "";
/// Promotion tier of a restored cluster's writer (failover prefers it), and of its readers.
const WRITER_PROMOTION_TIER: i32 = 0;
const READER_PROMOTION_TIER: i32 = 1;
/// Sizes RDS sells in burstable (`db.t*`) families.
const BURSTABLE_SIZES: [&str; 6] = ["micro", "small", "medium", "large", "xlarge", "2xlarge"];
/// Sizes RDS sells in the other families.
const STANDARD_SIZES: [&str; 10] = [
    "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
    "32xlarge", "48xlarge",
];

/// Restores every DB instance and Aurora cluster of the plan and waits until each is available
/// (see the module doc). Those that cannot be restored fail their items; the outcome holds the
/// others.
///
/// # Errors
/// [`ReconcileError::Cancelled`] when the run stops, store failures, and AWS errors that
/// outlast [`retrying`] (throttling, transient faults) or answers that make no sense.
pub async fn restore(ctx: &RunCtx) -> Result<RdsOutcome, ReconcileError> {
    let dbs: Vec<&DbRestore> = ctx
        .plan
        .restore
        .tiers
        .iter()
        .flat_map(|t| t.databases.iter())
        .collect();
    let clusters: Vec<&ClusterRestore> = ctx
        .plan
        .restore
        .tiers
        .iter()
        .flat_map(|t| t.clusters.iter())
        .collect();
    if ctx.journal.step_done(STEP).await?.is_some() {
        return rebuild(ctx, &dbs, &clusters).await;
    }
    ctx.journal
        .step(
            STEP,
            0,
            STEP,
            StepState::Running,
            &json!({"databases": dbs.len(), "clusters": clusters.len()}),
        )
        .await?;

    let inventory: HashMap<&str, &DbInstance> = ctx
        .inventory
        .db_instances
        .iter()
        .map(|d| (d.id.as_str(), d))
        .collect();
    let cluster_inventory: HashMap<&str, &DbCluster> = ctx
        .inventory
        .db_clusters
        .iter()
        .map(|c| (c.id.as_str(), c))
        .collect();
    let placements: Vec<Placement<'_>> = dbs
        .iter()
        .map(|d| Placement {
            id: &d.db_instance_id,
            subnets: &d.subnets,
            primary_group: inventory
                .get(d.db_instance_id.as_str())
                .and_then(|i| i.subnet_group.as_deref()),
        })
        .chain(clusters.iter().map(|c| {
            Placement {
                id: &c.db_cluster_id,
                subnets: &c.subnets,
                primary_group: cluster_inventory
                    .get(c.db_cluster_id.as_str())
                    .and_then(|i| i.subnet_group.as_deref()),
            }
        }))
        .collect();
    let (groups, loose) = plan_subnet_groups(&ctx.run_id, &placements);
    let shared = Shared {
        inventory,
        clusters: cluster_inventory,
        unavailable: Mutex::new(UnavailableCache::from_policy(&ctx.settings.fallback)),
    };
    let jobs = Jobs {
        dbs: &dbs,
        clusters: &clusters,
        shared: &shared,
    };

    let grouped = join_all(groups.iter().map(|g| async move {
        let made = subnet_group(ctx, g).await?;
        let group = made.as_ref().map_err(String::as_str);
        let begun = join_all(g.dbs.iter().map(|&i| begin(ctx, jobs, i, group)));
        begun.await.into_iter().collect::<Result<Vec<_>, _>>()
    }));
    let ungrouped = join_all(loose.iter().map(|&i| {
        begin(
            ctx,
            jobs,
            i,
            Err("the DB has no complete set of DR subnets"),
        )
    }));
    let (grouped, ungrouped) = tokio::join!(grouped, ungrouped);

    let mut ready: Vec<(String, DbDone)> = Vec::new();
    let mut waiting: Vec<Waiter> = Vec::new();
    let mut clusters_ready: Vec<(String, ClusterDone)> = Vec::new();
    let mut clusters_waiting: Vec<ClusterWaiter> = Vec::new();
    let mut failed = 0usize;
    let mut begun = Vec::new();
    for g in grouped {
        begun.extend(g?.into_iter().flatten());
    }
    for b in ungrouped {
        begun.extend(b?);
    }
    for b in begun {
        match b {
            Begun::Db(Started::Restored(w)) if w.done.available => {
                ready.push((w.primary, w.done));
            }
            Begun::Db(Started::Restored(w)) => waiting.push(*w),
            Begun::Cluster(Some(w)) if w.done.available => {
                clusters_ready.push((w.primary, w.done));
            }
            Begun::Cluster(Some(w)) => clusters_waiting.push(*w),
            Begun::Db(Started::Failed) | Begun::Cluster(None) => failed += 1,
        }
    }
    let (dbs_waited, clusters_waited) = tokio::join!(
        wait_available(ctx, waiting),
        wait_clusters(ctx, clusters_waiting)
    );
    let ((available, lost), (clusters_available, clusters_lost)) = (dbs_waited?, clusters_waited?);
    ready.extend(available);
    clusters_ready.extend(clusters_available);
    failed += lost + clusters_lost;

    let substitutions = ready
        .iter()
        .filter(|(_, d)| d.substitution.is_some())
        .count();
    let mut outcome = RdsOutcome::default();
    for (primary, done) in ready {
        outcome.databases.insert(primary, done.database);
    }
    for (primary, done) in clusters_ready {
        add_cluster(&mut outcome, &clusters, primary, done.cluster);
    }
    ctx.journal
        .step(
            STEP,
            0,
            STEP,
            StepState::Done,
            &json!({
                "databases": dbs.len(),
                "clusters": clusters.len(),
                "available": outcome.databases.len(),
                "clusters_available": outcome.clusters.len(),
                "failed": failed,
                "substitutions": substitutions,
                "subnet_groups": groups.len(),
            }),
        )
        .await?;
    Ok(outcome)
}

/// Lists a restored, available cluster in the outcome if it is usable: it has no planned
/// member, or one of them is available.
fn add_cluster(
    outcome: &mut RdsOutcome,
    clusters: &[&ClusterRestore],
    primary: String,
    cluster: DrCluster,
) {
    let members = clusters
        .iter()
        .find(|c| c.db_cluster_id == primary)
        .map_or(&[][..], |c| c.members.as_slice());
    let usable = members.is_empty()
        || members
            .iter()
            .any(|m| outcome.databases.contains_key(&m.db_instance_id));
    if usable {
        outcome.clusters.insert(primary, cluster);
    } else {
        tracing::warn!(cluster = %primary, identifier = %cluster.identifier,
            "Aurora cluster restored but none of its instances is available: its endpoints \
             are not used");
    }
}

/// What the restores of one step share.
#[derive(Debug)]
struct Shared<'a> {
    /// The inventory's DB instances by identifier.
    inventory: HashMap<&'a str, &'a DbInstance>,
    /// The inventory's Aurora clusters by identifier.
    clusters: HashMap<&'a str, &'a DbCluster>,
    /// Classes that answered `InsufficientDBInstanceCapacity` lately.
    unavailable: Mutex<UnavailableCache>,
}

/// The plan's DBs and clusters, indexed together as [`plan_subnet_groups`] numbers them: DBs
/// first, then clusters.
#[derive(Debug, Clone, Copy)]
struct Jobs<'a> {
    dbs: &'a [&'a DbRestore],
    clusters: &'a [&'a ClusterRestore],
    shared: &'a Shared<'a>,
}

/// Where one DB or cluster stands once its request went out (or was found done).
#[derive(Debug)]
enum Begun {
    /// A DB instance: restored, or a member of a cluster.
    Db(Started),
    /// A cluster: restored (or found restored), or `None` when its item failed.
    Cluster(Option<Box<ClusterWaiter>>),
}

/// Restores the DB or cluster at index `i` of [`Jobs`] (a cluster with its members).
async fn begin(
    ctx: &RunCtx,
    jobs: Jobs<'_>,
    i: usize,
    group: Result<&GroupDone, &str>,
) -> Result<Vec<Begun>, ReconcileError> {
    match jobs.dbs.get(i) {
        Some(db) => Ok(vec![Begun::Db(
            restore_db(ctx, db, group, jobs.shared).await?,
        )]),
        None => match jobs.clusters.get(i - jobs.dbs.len()) {
            Some(c) => restore_cluster(ctx, c, group, jobs.shared).await,
            None => Ok(Vec::new()),
        },
    }
}

/// Where a DB or cluster goes: what [`plan_subnet_groups`] groups.
#[derive(Debug, Clone, Copy)]
struct Placement<'a> {
    /// The primary DB instance or cluster identifier.
    id: &'a str,
    /// Its DR subnets.
    subnets: &'a [DrRef],
    /// Its primary subnet group, if the inventory names one.
    primary_group: Option<&'a str>,
}

/// A DB subnet group to make: one per distinct set of DR subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupPlan {
    name: String,
    /// The primary subnet group name (or DB identifier) it stands for: its source tag.
    source: String,
    /// DR subnet ids, sorted.
    subnets: Vec<String>,
    /// Indexes of its DBs and clusters among the placements.
    dbs: Vec<usize>,
}

/// Groups the placements (DBs and clusters) by their set of DR subnets, in order. Those whose
/// subnets are empty or not all mirrored get no group: their indexes are returned apart.
fn plan_subnet_groups(run_id: &str, places: &[Placement<'_>]) -> (Vec<GroupPlan>, Vec<usize>) {
    let mut groups: Vec<GroupPlan> = Vec::new();
    let mut loose = Vec::new();
    for (i, place) in places.iter().enumerate() {
        let subnets: Option<BTreeSet<&str>> = place.subnets.iter().map(DrRef::dr_id).collect();
        let Some(subnets) = subnets.filter(|s| !s.is_empty()) else {
            loose.push(i);
            continue;
        };
        let subnets: Vec<String> = subnets.into_iter().map(str::to_owned).collect();
        match groups.iter_mut().find(|g| g.subnets == subnets) {
            Some(g) => g.dbs.push(i),
            None => {
                let source = place
                    .primary_group
                    .filter(|g| !g.is_empty())
                    .unwrap_or(place.id)
                    .to_owned();
                groups.push(GroupPlan {
                    name: subnet_group_name(run_id, &source, &subnets),
                    source,
                    subnets,
                    dbs: vec![i],
                });
            }
        }
    }
    (groups, loose)
}

/// The DR subnet group for `subnets` in run `run_id`: `pilotlight-<base>-<8 hex digits>`, the
/// base being the primary subnet group name (or DB identifier) lower-cased with every run of
/// characters other than letters, digits, `.` and `_` turned into one `-`, the digits a hash
/// of the run and the sorted subnets. Each run has its own groups (a drill's teardown never
/// pulls one from under another run), and two subnet sets never share a name.
pub fn subnet_group_name(run_id: &str, base: &str, subnets: &[String]) -> String {
    let mut sorted: Vec<&str> = subnets.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let hash = fnv1a(&format!("{run_id}\n{}", sorted.join(",")));
    let mut clean = String::with_capacity(base.len().min(MAX_GROUP_BASE));
    for c in base.chars() {
        if clean.len() >= MAX_GROUP_BASE {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            clean.push(c.to_ascii_lowercase());
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        format!("pilotlight-{:08x}", hash & 0xffff_ffff)
    } else {
        format!("pilotlight-{clean}-{:08x}", hash & 0xffff_ffff)
    }
}

/// The DR DB instance identifier of primary DB `primary`: the primary identifier itself for a
/// disaster (lower-cased as RDS keeps it, made a valid identifier, at most 63 characters); for
/// a drill the same with `-drill-` and 6 hex digits of the run id, so a drill never takes the
/// name a disaster run needs.
pub fn dr_identifier(run_id: &str, mode: RunMode, primary: &str) -> String {
    let mut clean = String::with_capacity(primary.len());
    for c in primary.chars() {
        if c.is_ascii_alphanumeric() {
            clean.push(c.to_ascii_lowercase());
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    if !clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean.insert_str(0, "db-");
    }
    let suffix = match mode {
        RunMode::Disaster => String::new(),
        RunMode::Drill => format!("-drill-{:06x}", fnv1a(run_id) & 0xff_ffff),
    };
    clean.truncate(MAX_DB_ID - suffix.len());
    let clean = clean.trim_end_matches('-');
    format!("{clean}{suffix}")
}

/// FNV-1a, 64 bits: stable across Rust versions and processes, so names never change.
fn fnv1a(data: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The classes to try for `class`, in order: itself, then its neighbouring sizes in the same
/// family (the next smaller, then the next larger) among the sizes RDS sells. A class that does
/// not parse (`db.serverless`) has no neighbours.
pub fn class_candidates(class: &str) -> Vec<String> {
    let mut out = vec![class.to_owned()];
    let Some(inner) = class.strip_prefix("db.") else {
        return out;
    };
    let fam = family(inner);
    if fam == inner {
        return out;
    }
    let sizes: &[&str] = if fam.starts_with('t') {
        &BURSTABLE_SIZES
    } else {
        &STANDARD_SIZES
    };
    let catalog: BTreeMap<String, InstanceTypeInfo> = sizes
        .iter()
        .map(|s| {
            let info = InstanceTypeInfo {
                vcpus: 0,
                memory_mib: 0,
            };
            (format!("{fam}.{s}"), info)
        })
        .collect();
    out.extend(
        neighbours(inner, &catalog)
            .into_iter()
            .map(|n| format!("db.{n}")),
    );
    out
}

/// The first candidate neither tried yet nor known to lack capacity at `now_ms`.
fn next_class(
    candidates: &[String],
    tried: &[String],
    unavailable: &UnavailableCache,
    now_ms: i64,
) -> Option<String> {
    candidates
        .iter()
        .find(|c| !tried.contains(c) && !unavailable.is_unavailable(c, ANY_AZ, now_ms))
        .cloned()
}

/// What a DB's status means for the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbStatus {
    Available,
    /// On its way (`creating`, `backing-up`, `modifying`, …).
    Pending,
    /// It will not become available by itself.
    Failed,
}

fn db_status(status: &str) -> DbStatus {
    match status {
        "available" => DbStatus::Available,
        "failed" | "restore-error" | "deleting" | "deleted" => DbStatus::Failed,
        s if s.starts_with("incompatible-") || s.starts_with("inaccessible-encryption") => {
            DbStatus::Failed
        }
        _ => DbStatus::Pending,
    }
}

/// The tags of a restored resource: the run's, then the primary's own (minus `aws:` and
/// `pilotlight:` ones), up to AWS's 50.
fn rds_tags(run_tags: Vec<(String, String)>, own: Option<&BTreeMap<String, String>>) -> Vec<Tag> {
    let reserved = |k: &str| k.starts_with("aws:") || k.starts_with("pilotlight:");
    let own = own
        .into_iter()
        .flatten()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()));
    run_tags
        .into_iter()
        .chain(own)
        .take(MAX_TAGS)
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Whether `tags` say the resource is this run's restore of `primary`.
fn is_ours(tags: &[Tag], run_id: &str, primary: &str) -> bool {
    let get = |key: &str| {
        tags.iter()
            .find(|t| t.key() == Some(key))
            .and_then(Tag::value)
    };
    get(pilotlight_aws::tags::RUN) == Some(run_id)
        && get(pilotlight_aws::tags::SOURCE) == Some(primary)
}

/// The primary id of a DR reference (the DR id when there is one).
fn primary_of(r: &DrRef) -> &str {
    match r {
        DrRef::Dr(id) | DrRef::Missing(id) => id,
    }
}

/// An AWS refusal as an item's failure reason.
fn refused(e: &AwsError) -> String {
    format!(
        "{} refused: {} {}",
        e.operation,
        e.code,
        e.message.as_deref().unwrap_or_default()
    )
    .trim_end()
    .to_owned()
}

/// Whether an error that outlasted [`retrying`] should stop the step (and the run be executed
/// again later) rather than fail one item.
fn is_pushback(e: &AwsError) -> bool {
    matches!(e.kind, ErrorKind::Throttled | ErrorKind::Transient)
}

/// A made (or adopted) subnet group: the done detail of its item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GroupDone {
    name: String,
    subnets: Vec<String>,
    availability_zones: Vec<String>,
    adopted: bool,
}

fn group_azs(group: Option<&DbSubnetGroup>) -> Vec<String> {
    let azs: BTreeSet<String> = group
        .map(DbSubnetGroup::subnets)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.subnet_availability_zone()?.name().map(str::to_owned))
        .collect();
    azs.into_iter().collect()
}

/// Makes (or adopts, or finds in the journal) the subnet group `g`. `Ok(Err(reason))` when it
/// cannot be had: its item is failed with that reason.
async fn subnet_group(
    ctx: &RunCtx,
    g: &GroupPlan,
) -> Result<Result<GroupDone, String>, ReconcileError> {
    let key = format!("subnet-group/{}", g.name);
    let item_ref = ItemRef {
        key: &key,
        step_id: STEP,
        kind: GROUP_KIND,
        primary_id: &g.source,
    };
    if let Some(existing) = ctx.journal.item(&key).await? {
        match existing.state {
            ItemState::Done => {
                if let Ok(done) = serde_json::from_value::<GroupDone>(detail(&existing)) {
                    return Ok(Ok(done));
                }
            }
            ItemState::Failed => return Ok(Err(existing.last_error.unwrap_or_default())),
            ItemState::Pending | ItemState::Requested => {}
        }
    }
    ctx.check_stop()?;
    let requested = json!({"name": g.name, "subnets": g.subnets, "source": g.source});
    let item = ctx.journal.request(item_ref, None, &requested).await?;
    let request = GroupRequest {
        name: &g.name,
        description: format!(
            "pilotlight restore {}: DR subnets of {}",
            ctx.run_id, g.source
        ),
        subnets: &g.subnets,
        tags: rds_tags(ctx.tags(&g.source), None),
    };
    let created = retrying(ctx, || create_group(ctx, &request)).await;
    let (availability_zones, adopted) = match created {
        Ok(out) => (group_azs(out.db_subnet_group()), false),
        Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::AlreadyExists => {
            let out = retrying(ctx, || {
                ctx.aws
                    .rds
                    .describe_db_subnet_groups(|b| b.db_subnet_group_name(&g.name))
            })
            .await?;
            let found = out.db_subnet_groups().first();
            let subnets: BTreeSet<&str> = found
                .map(DbSubnetGroup::subnets)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.subnet_identifier())
                .collect();
            let wanted: BTreeSet<&str> = g.subnets.iter().map(String::as_str).collect();
            if subnets != wanted {
                let reason = format!(
                    "a DB subnet group named {} already exists in the DR region with other \
                     subnets ({}); it is not adopted",
                    g.name,
                    subnets.into_iter().collect::<Vec<_>>().join(", ")
                );
                ctx.journal.fail(item_ref, &reason, &requested).await?;
                return Ok(Err(reason));
            }
            (group_azs(found), true)
        }
        Err(ReconcileError::Aws(e)) if !is_pushback(&e) => {
            let reason = refused(&e);
            tracing::warn!(run = %ctx.run_id, subnet_group = %g.name, error = %reason,
                "DB subnet group refused");
            ctx.journal.fail(item_ref, &reason, &requested).await?;
            return Ok(Err(reason));
        }
        Err(other) => return Err(other),
    };
    let done = GroupDone {
        name: g.name.clone(),
        subnets: g.subnets.clone(),
        availability_zones,
        adopted,
    };
    ctx.journal.done(&item, &g.name, &json!(done)).await?;
    Ok(Ok(done))
}

/// A `CreateDBSubnetGroup` as sent (the same on every retry).
#[derive(Debug)]
struct GroupRequest<'a> {
    name: &'a str,
    description: String,
    subnets: &'a [String],
    tags: Vec<Tag>,
}

async fn create_group(
    ctx: &RunCtx,
    r: &GroupRequest<'_>,
) -> Result<CreateDbSubnetGroupOutput, AwsError> {
    ctx.aws
        .rds
        .create_db_subnet_group(|b| {
            b.db_subnet_group_name(r.name)
                .db_subnet_group_description(&r.description)
                .set_subnet_ids(Some(r.subnets.to_vec()))
                .set_tags(Some(r.tags.clone()))
        })
        .await
}

/// A class substitution: what the plan asked for, what was made, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ClassSubstitution {
    from_class: String,
    to_class: String,
    /// `neighbour_size`, as plan B names it for instances.
    reason: String,
    /// What pushed the restore off the plan's class.
    cause: String,
}

/// How one DB instance is made: restored from its snapshot, or created into a restored Aurora
/// cluster. The same on every retry of one class.
#[derive(Debug)]
enum Make<'a> {
    /// `RestoreDBInstanceFromDBSnapshot`.
    Restore {
        snapshot: &'a str,
        subnet_group: &'a str,
        security_groups: Vec<String>,
        multi_az: bool,
        port: Option<i32>,
    },
    /// `CreateDBInstance` with `DBClusterIdentifier`.
    Member {
        /// The DR cluster identifier.
        cluster: &'a str,
        engine: &'a str,
        /// The cluster's DR subnet group (the member inherits it).
        subnet_group: &'a str,
        promotion_tier: i32,
    },
}

impl Make<'_> {
    fn operation(&self) -> &'static str {
        match self {
            Make::Restore { .. } => "RestoreDBInstanceFromDBSnapshot",
            Make::Member { .. } => "CreateDBInstance",
        }
    }

    /// The `requested` detail of an attempt with `class`.
    fn requested(
        &self,
        identifier: &str,
        class: &str,
        substitution: Option<&ClassSubstitution>,
    ) -> Value {
        // The attempt's substitution is nested: only a done item reports one (D11).
        let attempt = json!({"class": class, "substitution": substitution});
        match self {
            Make::Restore {
                snapshot,
                subnet_group,
                ..
            } => json!({
                "identifier": identifier,
                "snapshot": snapshot,
                "subnet_group": subnet_group,
                "attempt": attempt,
            }),
            Make::Member { cluster, .. } => json!({
                "identifier": identifier,
                "cluster": cluster,
                "attempt": attempt,
            }),
        }
    }
}

/// The done detail of a `db/<id>` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DbDone {
    database: DrDatabase,
    /// The last status seen.
    status: String,
    /// Available, with an endpoint.
    available: bool,
    /// The DR snapshot restored from (empty for an Aurora member).
    #[serde(default)]
    snapshot: String,
    #[serde(default)]
    subnet_group: String,
    /// The DR cluster of an Aurora member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    substitution: Option<ClassSubstitution>,
}

impl DbDone {
    fn new(
        answer: &RdsInstance,
        identifier: &str,
        class: &str,
        make: &Make<'_>,
        substitution: Option<ClassSubstitution>,
    ) -> DbDone {
        let (snapshot, subnet_group, cluster) = match make {
            Make::Restore {
                snapshot,
                subnet_group,
                ..
            } => (*snapshot, *subnet_group, None),
            Make::Member {
                cluster,
                subnet_group,
                ..
            } => ("", *subnet_group, Some((*cluster).to_owned())),
        };
        let mut done = DbDone {
            database: DrDatabase {
                identifier: answer
                    .db_instance_identifier()
                    .unwrap_or(identifier)
                    .to_owned(),
                class: answer.db_instance_class().unwrap_or(class).to_owned(),
                endpoint_address: None,
                endpoint_port: None,
            },
            status: String::new(),
            available: false,
            snapshot: snapshot.to_owned(),
            subnet_group: subnet_group.to_owned(),
            cluster,
            substitution,
        };
        done.observe(answer);
        done
    }

    /// Takes the status and endpoint of a describe (or restore) answer.
    fn observe(&mut self, answer: &RdsInstance) {
        self.status = answer.db_instance_status().unwrap_or_default().to_owned();
        if let Some(class) = answer.db_instance_class() {
            class.clone_into(&mut self.database.class);
        }
        let endpoint = answer.endpoint();
        self.database.endpoint_address = endpoint.and_then(|e| e.address()).map(str::to_owned);
        self.database.endpoint_port = endpoint.and_then(|e| e.port());
        self.available = db_status(&self.status) == DbStatus::Available
            && self.database.endpoint_address.is_some();
    }
}

/// Where one DB stands after its restore was sent (or found).
#[derive(Debug)]
enum Started {
    /// Restored (or found restored): available already, or to wait for.
    Restored(Box<Waiter>),
    /// Its item is failed.
    Failed,
}

/// A restored DB, available (`done.available`) or being waited for.
#[derive(Debug)]
struct Waiter {
    primary: String,
    /// Its `done` item, rewritten once it is available.
    item: RestoreItem,
    done: DbDone,
    /// Restored by this execution (a first poll right away would only see `creating`).
    fresh: bool,
    /// When describes stopped listing it.
    missing_since: Option<Instant>,
}

fn started(primary: &str, item: RestoreItem, done: DbDone, fresh: bool) -> Started {
    Started::Restored(Box::new(Waiter {
        primary: primary.to_owned(),
        item,
        done,
        fresh,
        missing_since: None,
    }))
}

/// Sends one attempt of `make` with `class`; the answer's DB instance.
async fn send_make(
    ctx: &RunCtx,
    identifier: &str,
    class: &str,
    make: &Make<'_>,
    tags: &[Tag],
) -> Result<Option<RdsInstance>, AwsError> {
    match make {
        Make::Restore {
            snapshot,
            subnet_group,
            security_groups,
            multi_az,
            port,
        } => ctx
            .aws
            .rds
            .restore_db_instance_from_db_snapshot(|b| {
                b.db_instance_identifier(identifier)
                    .db_snapshot_identifier(*snapshot)
                    .db_instance_class(class)
                    .db_subnet_group_name(*subnet_group)
                    .set_vpc_security_group_ids(
                        (!security_groups.is_empty()).then(|| security_groups.clone()),
                    )
                    .multi_az(*multi_az)
                    .set_port(*port)
                    .set_tags(Some(tags.to_vec()))
            })
            .await
            .map(|out| out.db_instance().cloned()),
        Make::Member {
            cluster,
            engine,
            promotion_tier,
            ..
        } => ctx
            .aws
            .rds
            .create_db_instance(|b| {
                b.db_instance_identifier(identifier)
                    .db_cluster_identifier(*cluster)
                    .engine(*engine)
                    .db_instance_class(class)
                    .promotion_tier(*promotion_tier)
                    .set_tags(Some(tags.to_vec()))
            })
            .await
            .map(|out| out.db_instance().cloned()),
    }
}

/// The DB instance named `identifier` in the DR region, if there is one.
async fn lookup(ctx: &RunCtx, identifier: &str) -> Result<Option<RdsInstance>, ReconcileError> {
    let found = retrying(ctx, || {
        ctx.aws
            .rds
            .describe_db_instances(|b| b.db_instance_identifier(identifier))
    })
    .await;
    match found {
        Ok(out) => Ok(out
            .db_instances()
            .iter()
            .find(|d| {
                d.db_instance_identifier()
                    .is_some_and(|id| id.eq_ignore_ascii_case(identifier))
            })
            .cloned()),
        Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What one DB's restore (or member's creation) needs besides the context.
#[derive(Debug, Clone, Copy)]
struct DbJob<'a> {
    /// The primary DB instance identifier.
    primary: &'a str,
    /// The planned class.
    class: &'a str,
    item_ref: ItemRef<'a>,
    identifier: &'a str,
}

impl<'a> DbJob<'a> {
    fn new(primary: &'a str, class: &'a str, key: &'a str, identifier: &'a str) -> DbJob<'a> {
        DbJob {
            primary,
            class,
            item_ref: ItemRef {
                key,
                step_id: STEP,
                kind: DB_KIND,
                primary_id: primary,
            },
            identifier,
        }
    }
}

async fn fail_db(ctx: &RunCtx, job: DbJob<'_>, reason: &str) -> Result<Started, ReconcileError> {
    tracing::warn!(run = %ctx.run_id, db = %job.primary, error = %reason,
        "DB instance not restored");
    let failed = json!({"identifier": job.identifier, "class": job.class});
    ctx.journal.fail(job.item_ref, reason, &failed).await?;
    Ok(Started::Failed)
}

/// What a journalled item already says: `Some` for a done (or failed) item, `None` when the
/// work is still to do.
fn settled(primary: &str, existing: Option<&RestoreItem>) -> Option<Started> {
    let item = existing?;
    match item.state {
        ItemState::Done => serde_json::from_value::<DbDone>(detail(item))
            .ok()
            .map(|done| started(primary, item.clone(), done, false)),
        ItemState::Failed => Some(Started::Failed),
        ItemState::Pending | ItemState::Requested => None,
    }
}

/// Adopts `found`, the DB instance under the job's identifier, if it is this run's restore of
/// the job's DB; fails the item otherwise.
async fn adopt(
    ctx: &RunCtx,
    job: DbJob<'_>,
    item: &RestoreItem,
    found: &RdsInstance,
    make: &Make<'_>,
) -> Result<Started, ReconcileError> {
    let primary = job.primary;
    if !is_ours(found.tag_list(), &ctx.run_id, primary) {
        let reason = format!(
            "a DB instance named {} already exists in the DR region and is {}, not this \
             run's restore of {primary}: it is left alone",
            job.identifier,
            owner_of(found.tag_list())
        );
        return fail_db(ctx, job, &reason).await;
    }
    let class = found.db_instance_class().unwrap_or(job.class);
    let substitution = (class != job.class).then(|| ClassSubstitution {
        from_class: job.class.to_owned(),
        to_class: class.to_owned(),
        reason: SubstitutionReason::NeighbourSize.as_str().to_owned(),
        cause: "found restored with this class by an earlier execution of the run".to_owned(),
    });
    let done = DbDone::new(found, job.identifier, class, make, substitution);
    tracing::info!(run = %ctx.run_id, db = %primary, identifier = %job.identifier,
        "DB instance already restored; adopted");
    let item = ctx.journal.done(item, job.identifier, &json!(done)).await?;
    Ok(started(primary, item, done, false))
}

/// Whose a resource with these tags is, for a refusal to adopt it.
fn owner_of(tags: &[Tag]) -> String {
    tags.iter()
        .find(|t| t.key() == Some(pilotlight_aws::tags::RUN))
        .and_then(Tag::value)
        .map_or_else(|| "not pilotlight's".to_owned(), |r| format!("run {r}'s"))
}

/// Restores one DB (or finds it restored): see the module doc.
async fn restore_db(
    ctx: &RunCtx,
    db: &DbRestore,
    group: Result<&GroupDone, &str>,
    shared: &Shared<'_>,
) -> Result<Started, ReconcileError> {
    let primary = db.db_instance_id.as_str();
    let key = format!("db/{primary}");
    let identifier = dr_identifier(&ctx.run_id, ctx.mode, primary);
    let job = DbJob::new(primary, &db.class, &key, &identifier);
    let existing = ctx.journal.item(&key).await?;
    if let Some(settled) = settled(primary, existing.as_ref()) {
        return Ok(settled);
    }

    let inventory = shared.inventory.get(primary).copied();
    if let Some(cluster) = inventory.and_then(|d| d.cluster_id.as_deref()) {
        let reason = format!(
            "{primary} is a member of Aurora cluster {cluster}, which the inventory the plan \
             was made from does not describe (captured before clusters were): a member comes \
             back only with its cluster (RestoreDBClusterFromSnapshot), so it is not restored"
        );
        return fail_db(ctx, job, &reason).await;
    }
    let Some(snapshot) = db.snapshot.dr_id() else {
        let reason =
            format!("{primary} has no snapshot copy in the DR region: nothing to restore it from");
        return fail_db(ctx, job, &reason).await;
    };
    if let Some(reason) = placement_problem(primary, &db.subnets, &db.security_groups) {
        return fail_db(ctx, job, &reason).await;
    }
    let group = match group {
        Ok(g) => g,
        Err(why) => {
            let reason = format!("its DR subnet group could not be made: {why}");
            return fail_db(ctx, job, &reason).await;
        }
    };
    let make = Make::Restore {
        snapshot,
        subnet_group: &group.name,
        security_groups: db
            .security_groups
            .iter()
            .filter_map(|s| s.dr_id().map(str::to_owned))
            .collect(),
        multi_az: db.multi_az,
        port: inventory.and_then(|d| d.endpoint_port),
    };
    let tags = rds_tags(ctx.tags(primary), inventory.map(|d| &d.tags));
    make_db(ctx, job, existing, &make, tags, shared).await
}

/// Why a DB or cluster cannot be placed in the DR region (no subnets, an unmirrored subnet or
/// security group), if it cannot.
fn placement_problem(primary: &str, subnets: &[DrRef], groups: &[DrRef]) -> Option<String> {
    if subnets.is_empty() {
        return Some(format!(
            "the inventory lists no subnets for {primary}: no DR subnet group can be made"
        ));
    }
    if let Some(missing) = subnets.iter().find(|s| s.is_missing()) {
        return Some(format!(
            "subnet {} of {primary}'s subnet group is not mirrored in the DR region",
            primary_of(missing)
        ));
    }
    if let Some(missing) = groups.iter().find(|s| s.is_missing()) {
        return Some(format!(
            "security group {} of {primary} is not mirrored in the DR region",
            primary_of(missing)
        ));
    }
    None
}

/// Makes one DB instance as `make` says, with the class fallback (or finds it made): see the
/// module doc. `existing` is its item as the journal holds it (`requested` or none).
async fn make_db(
    ctx: &RunCtx,
    job: DbJob<'_>,
    existing: Option<RestoreItem>,
    make: &Make<'_>,
    tags: Vec<Tag>,
    shared: &Shared<'_>,
) -> Result<Started, ReconcileError> {
    // A request journalled as requested may have been carried out: look before sending again.
    if let Some(item) = existing.filter(|i| i.state == ItemState::Requested)
        && let Some(found) = lookup(ctx, job.identifier).await?
    {
        return adopt(ctx, job, &item, &found, make).await;
    }

    let candidates = class_candidates(job.class);
    let mut tried: Vec<String> = Vec::new();
    let mut answers: Vec<String> = Vec::new();
    let mut cause: Option<String> = None;
    loop {
        ctx.check_stop()?;
        let next = {
            let unavailable = shared
                .unavailable
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            next_class(&candidates, &tried, &unavailable, now_ms())
        };
        let Some(class) = next else {
            let reason = if answers.is_empty() {
                format!(
                    "no capacity: every class to try ({}) lacked capacity moments ago",
                    candidates.join(", ")
                )
            } else {
                format!("no class could be restored: {}", answers.join("; "))
            };
            return fail_db(ctx, job, &reason).await;
        };
        let substitution = (class != job.class).then(|| ClassSubstitution {
            from_class: job.class.to_owned(),
            to_class: class.clone(),
            reason: SubstitutionReason::NeighbourSize.as_str().to_owned(),
            cause: cause
                .clone()
                .unwrap_or_else(|| format!("{} lacked capacity moments ago", job.class)),
        });
        let requested = make.requested(job.identifier, &class, substitution.as_ref());
        let item = ctx.journal.request(job.item_ref, None, &requested).await?;
        let result = retrying(ctx, || send_make(ctx, job.identifier, &class, make, &tags)).await;
        match result {
            Ok(out) => {
                let Some(answer) = out else {
                    return Err(ReconcileError::Unexpected {
                        operation: make.operation(),
                        detail: format!("no DBInstance in the answer for {}", job.identifier),
                    });
                };
                let done = DbDone::new(&answer, job.identifier, &class, make, substitution);
                if let Some(s) = &done.substitution {
                    tracing::info!(run = %ctx.run_id, db = %job.primary, from = %s.from_class,
                        to = %s.to_class, cause = %s.cause, "RDS class substitution");
                }
                let item = ctx
                    .journal
                    .done(&item, job.identifier, &json!(done))
                    .await?;
                return Ok(started(job.primary, item, done, true));
            }
            // The identifier is taken: by this request's earlier attempt whose answer was lost,
            // or by something else (which `adopt` refuses).
            Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::AlreadyExists => {
                let Some(found) = lookup(ctx, job.identifier).await? else {
                    return Err(ReconcileError::Unexpected {
                        operation: make.operation(),
                        detail: format!(
                            "{} for {}, which DescribeDBInstances does not list",
                            e.code, job.identifier
                        ),
                    });
                };
                return adopt(ctx, job, &item, &found, make).await;
            }
            Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::Capacity => {
                tracing::info!(run = %ctx.run_id, db = %job.primary, class = %class,
                    code = %e.code, "no RDS capacity; trying a neighbouring class");
                shared
                    .unavailable
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .mark(&class, ANY_AZ, now_ms());
                ctx.journal.note_error(&item, &refused(&e)).await?;
                cause.get_or_insert_with(|| format!("{} for {class}", e.code));
                answers.push(format!("{class}: {}", e.code));
                tried.push(class);
            }
            // A substitute RDS does not offer (the size does not exist for the engine).
            Err(ReconcileError::Aws(e)) if class != job.class && e.kind == ErrorKind::Fatal => {
                ctx.journal.note_error(&item, &refused(&e)).await?;
                answers.push(format!("{class}: {}", e.code));
                tried.push(class);
            }
            Err(ReconcileError::Aws(e)) if !is_pushback(&e) => {
                return fail_db(ctx, job, &refused(&e)).await;
            }
            Err(other) => return Err(other),
        }
    }
}

/// The done detail of a `cluster/<id>` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ClusterDone {
    cluster: DrCluster,
    /// The last status seen.
    status: String,
    /// Available, with a writer endpoint.
    available: bool,
    /// The DR cluster snapshot restored from.
    snapshot: String,
    subnet_group: String,
}

impl ClusterDone {
    fn new(
        answer: &RdsCluster,
        identifier: &str,
        snapshot: &str,
        subnet_group: &str,
    ) -> ClusterDone {
        let mut done = ClusterDone {
            cluster: DrCluster {
                identifier: answer
                    .db_cluster_identifier()
                    .unwrap_or(identifier)
                    .to_owned(),
                endpoint: None,
                reader_endpoint: None,
                port: None,
            },
            status: String::new(),
            available: false,
            snapshot: snapshot.to_owned(),
            subnet_group: subnet_group.to_owned(),
        };
        done.observe(answer);
        done
    }

    /// Takes the status and endpoints of a describe (or restore) answer.
    fn observe(&mut self, answer: &RdsCluster) {
        self.status = answer.status().unwrap_or_default().to_owned();
        let endpoint = answer.endpoint().filter(|e| !e.is_empty());
        self.cluster.endpoint = endpoint.map(str::to_owned);
        self.cluster.reader_endpoint = answer
            .reader_endpoint()
            .filter(|e| !e.is_empty())
            .map(str::to_owned);
        self.cluster.port = answer.port().or(self.cluster.port);
        self.available = db_status(&self.status) == DbStatus::Available && endpoint.is_some();
    }
}

/// A restored cluster, available (`done.available`) or being waited for.
#[derive(Debug)]
struct ClusterWaiter {
    primary: String,
    /// Its `done` item, rewritten once it is available.
    item: RestoreItem,
    done: ClusterDone,
    /// Restored by this execution.
    fresh: bool,
    /// When describes stopped listing it.
    missing_since: Option<Instant>,
}

fn cluster_waiter(
    primary: &str,
    item: RestoreItem,
    done: ClusterDone,
    fresh: bool,
) -> ClusterWaiter {
    ClusterWaiter {
        primary: primary.to_owned(),
        item,
        done,
        fresh,
        missing_since: None,
    }
}

/// A `RestoreDBClusterFromSnapshot` as sent (the same on every retry).
#[derive(Debug)]
struct ClusterRequest<'a> {
    identifier: &'a str,
    snapshot: &'a str,
    engine: &'a str,
    engine_version: Option<&'a str>,
    port: Option<i32>,
    subnet_group: &'a str,
    security_groups: Vec<String>,
    tags: Vec<Tag>,
}

/// What one attempt at a cluster restore came to.
#[derive(Debug)]
enum ClusterAnswer {
    /// RDS accepted the restore (its answer's cluster).
    Restored(Option<RdsCluster>),
    /// An earlier attempt had made it: the cluster as described.
    Found(RdsCluster),
}

/// Sends the restore; on every attempt after the first, looks the identifier up first, so an
/// attempt whose answer was lost is found instead of sent again.
async fn send_cluster(
    ctx: &RunCtx,
    r: &ClusterRequest<'_>,
    sent: &AtomicBool,
) -> Result<ClusterAnswer, AwsError> {
    if sent.swap(true, Ordering::SeqCst) {
        match describe_cluster(ctx, r.identifier).await {
            Ok(Some(found)) => return Ok(ClusterAnswer::Found(found)),
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
    ctx.aws
        .rds
        .restore_db_cluster_from_snapshot(|b| {
            b.db_cluster_identifier(r.identifier)
                .snapshot_identifier(r.snapshot)
                .engine(r.engine)
                .set_engine_version(r.engine_version.map(str::to_owned))
                .set_port(r.port)
                .db_subnet_group_name(r.subnet_group)
                .set_vpc_security_group_ids(
                    (!r.security_groups.is_empty()).then(|| r.security_groups.clone()),
                )
                .set_tags(Some(r.tags.clone()))
        })
        .await
        .map(|out| ClusterAnswer::Restored(out.db_cluster().cloned()))
}

/// The DB cluster named `identifier` in the DR region, if there is one (one describe).
async fn describe_cluster(ctx: &RunCtx, identifier: &str) -> Result<Option<RdsCluster>, AwsError> {
    match ctx
        .aws
        .rds
        .describe_db_clusters(|b| b.db_cluster_identifier(identifier))
        .await
    {
        Ok(out) => Ok(out
            .db_clusters()
            .iter()
            .find(|c| {
                c.db_cluster_identifier()
                    .is_some_and(|id| id.eq_ignore_ascii_case(identifier))
            })
            .cloned()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`describe_cluster`] under [`retrying`].
async fn lookup_cluster(
    ctx: &RunCtx,
    identifier: &str,
) -> Result<Option<RdsCluster>, ReconcileError> {
    retrying(ctx, || describe_cluster(ctx, identifier)).await
}

/// What one cluster's restore needs besides the context.
#[derive(Debug, Clone, Copy)]
struct ClusterJob<'a> {
    cluster: &'a ClusterRestore,
    item_ref: ItemRef<'a>,
    identifier: &'a str,
}

/// Fails the cluster's item; `Ok(Err(reason))` for [`restore_cluster`].
async fn fail_cluster(
    ctx: &RunCtx,
    job: ClusterJob<'_>,
    reason: &str,
) -> Result<Result<ClusterWaiter, String>, ReconcileError> {
    tracing::warn!(run = %ctx.run_id, cluster = %job.cluster.db_cluster_id, error = %reason,
        "Aurora cluster not restored");
    let failed = json!({"identifier": job.identifier});
    ctx.journal.fail(job.item_ref, reason, &failed).await?;
    Ok(Err(reason.to_owned()))
}

/// Adopts `found`, the cluster under the job's identifier, if it is this run's restore of the
/// job's cluster; fails the item otherwise.
async fn adopt_cluster(
    ctx: &RunCtx,
    job: ClusterJob<'_>,
    item: &RestoreItem,
    found: &RdsCluster,
    snapshot: &str,
    subnet_group: &str,
) -> Result<Result<ClusterWaiter, String>, ReconcileError> {
    let primary = job.cluster.db_cluster_id.as_str();
    if !is_ours(found.tag_list(), &ctx.run_id, primary) {
        let reason = format!(
            "a DB cluster named {} already exists in the DR region and is {}, not this run's \
             restore of {primary}: it is left alone",
            job.identifier,
            owner_of(found.tag_list())
        );
        return fail_cluster(ctx, job, &reason).await;
    }
    let done = ClusterDone::new(found, job.identifier, snapshot, subnet_group);
    tracing::info!(run = %ctx.run_id, cluster = %primary, identifier = %job.identifier,
        "Aurora cluster already restored; adopted");
    let item = ctx.journal.done(item, job.identifier, &json!(done)).await?;
    Ok(Ok(cluster_waiter(primary, item, done, false)))
}

/// Restores one Aurora cluster (or finds it restored), then its members: see the module doc.
/// A cluster that cannot be restored fails its item and each member's.
async fn restore_cluster(
    ctx: &RunCtx,
    c: &ClusterRestore,
    group: Result<&GroupDone, &str>,
    shared: &Shared<'_>,
) -> Result<Vec<Begun>, ReconcileError> {
    let primary = c.db_cluster_id.as_str();
    let key = format!("cluster/{primary}");
    let identifier = dr_identifier(&ctx.run_id, ctx.mode, primary);
    let job = ClusterJob {
        cluster: c,
        item_ref: ItemRef {
            key: &key,
            step_id: STEP,
            kind: CLUSTER_KIND,
            primary_id: primary,
        },
        identifier: &identifier,
    };
    let existing = ctx.journal.item(&key).await?;
    let journalled = existing.as_ref().and_then(|item| match item.state {
        ItemState::Done => serde_json::from_value::<ClusterDone>(detail(item))
            .ok()
            .map(|done| Ok(cluster_waiter(primary, item.clone(), done, false))),
        ItemState::Failed => Some(Err(item
            .last_error
            .clone()
            .unwrap_or_else(|| format!("Aurora cluster {primary} was not restored")))),
        ItemState::Pending | ItemState::Requested => None,
    });
    let made = match journalled {
        Some(made) => made,
        None => make_cluster(ctx, job, existing, group, shared).await?,
    };
    let mut out = Vec::with_capacity(c.members.len() + 1);
    match made {
        Err(reason) => {
            let reason = format!("its Aurora cluster {primary} was not restored: {reason}");
            for m in &c.members {
                out.push(Begun::Db(fail_member(ctx, m, &reason).await?));
            }
            out.push(Begun::Cluster(None));
        }
        Ok(w) => {
            let cluster = w.done.cluster.identifier.clone();
            let subnet_group = w.done.subnet_group.clone();
            let (writers, readers): (Vec<&ClusterMemberRestore>, Vec<&ClusterMemberRestore>) =
                c.members.iter().partition(|m| m.writer);
            // The writer first: the first instance of a cluster becomes its writer.
            for m in writers {
                out.push(Begun::Db(
                    restore_member(ctx, c, m, &cluster, &subnet_group, shared).await?,
                ));
            }
            let readers = join_all(
                readers
                    .into_iter()
                    .map(|m| restore_member(ctx, c, m, &cluster, &subnet_group, shared)),
            )
            .await;
            for r in readers {
                out.push(Begun::Db(r?));
            }
            out.push(Begun::Cluster(Some(Box::new(w))));
        }
    }
    Ok(out)
}

/// Sends (or resolves) the cluster's restore. `Ok(Err(reason))` when its item failed.
async fn make_cluster(
    ctx: &RunCtx,
    job: ClusterJob<'_>,
    existing: Option<RestoreItem>,
    group: Result<&GroupDone, &str>,
    shared: &Shared<'_>,
) -> Result<Result<ClusterWaiter, String>, ReconcileError> {
    let c = job.cluster;
    let primary = c.db_cluster_id.as_str();
    let Some(snapshot) = c.snapshot.dr_id() else {
        let reason = format!(
            "Aurora cluster {primary} has no cluster snapshot copy in the DR region: nothing to \
             restore it from"
        );
        return fail_cluster(ctx, job, &reason).await;
    };
    if let Some(reason) = placement_problem(primary, &c.subnets, &c.security_groups) {
        return fail_cluster(ctx, job, &reason).await;
    }
    let group = match group {
        Ok(g) => g,
        Err(why) => {
            let reason = format!("its DR subnet group could not be made: {why}");
            return fail_cluster(ctx, job, &reason).await;
        }
    };
    if let Some(item) = existing.filter(|i| i.state == ItemState::Requested)
        && let Some(found) = lookup_cluster(ctx, job.identifier).await?
    {
        return adopt_cluster(ctx, job, &item, &found, snapshot, &group.name).await;
    }

    let request = ClusterRequest {
        identifier: job.identifier,
        snapshot,
        engine: &c.engine,
        engine_version: c.engine_version.as_deref(),
        port: c.port,
        subnet_group: &group.name,
        security_groups: c
            .security_groups
            .iter()
            .filter_map(|s| s.dr_id().map(str::to_owned))
            .collect(),
        tags: rds_tags(
            ctx.tags(primary),
            shared.clusters.get(primary).map(|i| &i.tags),
        ),
    };
    ctx.check_stop()?;
    let requested = json!({
        "identifier": job.identifier,
        "snapshot": snapshot,
        "subnet_group": group.name,
    });
    let item = ctx.journal.request(job.item_ref, None, &requested).await?;
    let sent = AtomicBool::new(false);
    let result = retrying(ctx, || send_cluster(ctx, &request, &sent)).await;
    match result {
        Ok(ClusterAnswer::Restored(Some(answer))) => {
            let done = ClusterDone::new(&answer, job.identifier, snapshot, &group.name);
            let item = ctx
                .journal
                .done(&item, job.identifier, &json!(done))
                .await?;
            Ok(Ok(cluster_waiter(primary, item, done, true)))
        }
        Ok(ClusterAnswer::Restored(None)) => Err(ReconcileError::Unexpected {
            operation: "RestoreDBClusterFromSnapshot",
            detail: format!("no DBCluster in the answer for {}", job.identifier),
        }),
        Ok(ClusterAnswer::Found(found)) => {
            adopt_cluster(ctx, job, &item, &found, snapshot, &group.name).await
        }
        // Taken: by this restore's earlier attempt, or by something else (refused).
        Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::AlreadyExists => {
            let Some(found) = lookup_cluster(ctx, job.identifier).await? else {
                return Err(ReconcileError::Unexpected {
                    operation: "RestoreDBClusterFromSnapshot",
                    detail: format!(
                        "{} for {}, which DescribeDBClusters does not list",
                        e.code, job.identifier
                    ),
                });
            };
            adopt_cluster(ctx, job, &item, &found, snapshot, &group.name).await
        }
        Err(ReconcileError::Aws(e)) if !is_pushback(&e) => {
            fail_cluster(ctx, job, &refused(&e)).await
        }
        Err(other) => Err(other),
    }
}

/// Creates one member of a restored cluster (or finds it made).
async fn restore_member(
    ctx: &RunCtx,
    c: &ClusterRestore,
    m: &ClusterMemberRestore,
    cluster: &str,
    subnet_group: &str,
    shared: &Shared<'_>,
) -> Result<Started, ReconcileError> {
    let primary = m.db_instance_id.as_str();
    let key = format!("db/{primary}");
    let identifier = dr_identifier(&ctx.run_id, ctx.mode, primary);
    let job = DbJob::new(primary, &m.class, &key, &identifier);
    let existing = ctx.journal.item(&key).await?;
    if let Some(settled) = settled(primary, existing.as_ref()) {
        return Ok(settled);
    }
    let make = Make::Member {
        cluster,
        engine: &c.engine,
        subnet_group,
        promotion_tier: if m.writer {
            WRITER_PROMOTION_TIER
        } else {
            READER_PROMOTION_TIER
        },
    };
    let tags = rds_tags(
        ctx.tags(primary),
        shared.inventory.get(primary).map(|d| &d.tags),
    );
    make_db(ctx, job, existing, &make, tags, shared).await
}

/// Fails a member whose cluster was not restored (unless the journal settled it already).
async fn fail_member(
    ctx: &RunCtx,
    m: &ClusterMemberRestore,
    reason: &str,
) -> Result<Started, ReconcileError> {
    let primary = m.db_instance_id.as_str();
    let key = format!("db/{primary}");
    let identifier = dr_identifier(&ctx.run_id, ctx.mode, primary);
    let existing = ctx.journal.item(&key).await?;
    if let Some(settled) = settled(primary, existing.as_ref()) {
        return Ok(settled);
    }
    fail_db(
        ctx,
        DbJob::new(primary, &m.class, &key, &identifier),
        reason,
    )
    .await
}

/// Every DB instance named in `ids` that the DR region lists: one `DescribeDBInstances` per
/// 100 identifiers (and page), keyed by lower-cased identifier.
async fn describe_many(
    ctx: &RunCtx,
    ids: &[String],
) -> Result<HashMap<String, RdsInstance>, ReconcileError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(DESCRIBE_CHUNK) {
        let filter = Filter::builder()
            .name("db-instance-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        let mut marker: Option<String> = None;
        loop {
            let page = retrying(ctx, || {
                ctx.aws.rds.describe_db_instances(|b| {
                    b.filters(filter.clone())
                        .max_records(DESCRIBE_CHUNK as i32)
                        .set_marker(marker.clone())
                })
            })
            .await?;
            for db in page.db_instances() {
                if let Some(id) = db.db_instance_identifier() {
                    out.insert(id.to_ascii_lowercase(), db.clone());
                }
            }
            match page.marker().filter(|m| !m.is_empty()) {
                Some(m) if marker.as_deref() != Some(m) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
    }
    Ok(out)
}

/// Polls until every waiter is available or failed: one describe per poll for all of them.
/// Returns the available ones and how many failed.
async fn wait_available(
    ctx: &RunCtx,
    mut waiting: Vec<Waiter>,
) -> Result<(Vec<(String, DbDone)>, usize), ReconcileError> {
    let mut ready = Vec::new();
    let mut failed = 0;
    // Right after a restore the DB is `creating`: a first poll at once would be wasted. DBs
    // all found in the journal (a resumed run) are looked at at once.
    let mut pause = waiting.iter().any(|w| w.fresh);
    while !waiting.is_empty() {
        if pause {
            ctx.pause().await?;
        }
        pause = true;
        let ids: Vec<String> = waiting
            .iter()
            .map(|w| w.done.database.identifier.to_ascii_lowercase())
            .collect();
        let found = describe_many(ctx, &ids).await?;
        let now = Instant::now();
        let mut still = Vec::with_capacity(waiting.len());
        for (mut w, id) in waiting.into_iter().zip(ids) {
            let item_ref = ItemRef {
                key: &w.item.item_key,
                step_id: STEP,
                kind: DB_KIND,
                primary_id: &w.primary,
            };
            let Some(db) = found.get(&id) else {
                let since = *w.missing_since.get_or_insert(now);
                if now.duration_since(since) >= MISSING_GRACE {
                    let reason = format!(
                        "DB instance {id} was restored but the DR region no longer lists it"
                    );
                    ctx.journal.fail(item_ref, &reason, &json!(w.done)).await?;
                    failed += 1;
                } else {
                    still.push(w);
                }
                continue;
            };
            w.missing_since = None;
            w.done.observe(db);
            match db_status(&w.done.status) {
                DbStatus::Available if w.done.available => {
                    ctx.journal.done(&w.item, &id, &json!(w.done)).await?;
                    ready.push((w.primary, w.done));
                }
                DbStatus::Failed => {
                    let reason = format!(
                        "DB instance {id} went {} instead of available",
                        w.done.status
                    );
                    tracing::warn!(run = %ctx.run_id, db = %w.primary, error = %reason,
                        "DB restore failed");
                    ctx.journal.fail(item_ref, &reason, &json!(w.done)).await?;
                    failed += 1;
                }
                DbStatus::Available | DbStatus::Pending => still.push(w),
            }
        }
        waiting = still;
    }
    Ok((ready, failed))
}

/// Every DB cluster named in `ids` that the DR region lists: one `DescribeDBClusters` per 100
/// identifiers (and page), keyed by lower-cased identifier.
async fn describe_clusters(
    ctx: &RunCtx,
    ids: &[String],
) -> Result<HashMap<String, RdsCluster>, ReconcileError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(DESCRIBE_CHUNK) {
        let filter = Filter::builder()
            .name("db-cluster-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        let mut marker: Option<String> = None;
        loop {
            let page = retrying(ctx, || {
                ctx.aws.rds.describe_db_clusters(|b| {
                    b.filters(filter.clone())
                        .max_records(DESCRIBE_CHUNK as i32)
                        .set_marker(marker.clone())
                })
            })
            .await?;
            for c in page.db_clusters() {
                if let Some(id) = c.db_cluster_identifier() {
                    out.insert(id.to_ascii_lowercase(), c.clone());
                }
            }
            match page.marker().filter(|m| !m.is_empty()) {
                Some(m) if marker.as_deref() != Some(m) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
    }
    Ok(out)
}

/// Polls until every cluster is available or failed: one describe per poll for all of them.
/// Returns the available ones and how many failed.
async fn wait_clusters(
    ctx: &RunCtx,
    mut waiting: Vec<ClusterWaiter>,
) -> Result<(Vec<(String, ClusterDone)>, usize), ReconcileError> {
    let mut ready = Vec::new();
    let mut failed = 0;
    let mut pause = waiting.iter().any(|w| w.fresh);
    while !waiting.is_empty() {
        if pause {
            ctx.pause().await?;
        }
        pause = true;
        let ids: Vec<String> = waiting
            .iter()
            .map(|w| w.done.cluster.identifier.to_ascii_lowercase())
            .collect();
        let found = describe_clusters(ctx, &ids).await?;
        let now = Instant::now();
        let mut still = Vec::with_capacity(waiting.len());
        for (mut w, id) in waiting.into_iter().zip(ids) {
            let item_ref = ItemRef {
                key: &w.item.item_key,
                step_id: STEP,
                kind: CLUSTER_KIND,
                primary_id: &w.primary,
            };
            let Some(cluster) = found.get(&id) else {
                let since = *w.missing_since.get_or_insert(now);
                if now.duration_since(since) >= MISSING_GRACE {
                    let reason = format!(
                        "DB cluster {id} was restored but the DR region no longer lists it"
                    );
                    ctx.journal.fail(item_ref, &reason, &json!(w.done)).await?;
                    failed += 1;
                } else {
                    still.push(w);
                }
                continue;
            };
            w.missing_since = None;
            w.done.observe(cluster);
            match db_status(&w.done.status) {
                DbStatus::Available if w.done.available => {
                    ctx.journal.done(&w.item, &id, &json!(w.done)).await?;
                    ready.push((w.primary, w.done));
                }
                DbStatus::Failed => {
                    let reason = format!(
                        "DB cluster {id} went {} instead of available",
                        w.done.status
                    );
                    tracing::warn!(run = %ctx.run_id, cluster = %w.primary, error = %reason,
                        "Aurora cluster restore failed");
                    ctx.journal.fail(item_ref, &reason, &json!(w.done)).await?;
                    failed += 1;
                }
                DbStatus::Available | DbStatus::Pending => still.push(w),
            }
        }
        waiting = still;
    }
    Ok((ready, failed))
}

/// The outcome of a step already done, from its items: no AWS call.
async fn rebuild(
    ctx: &RunCtx,
    dbs: &[&DbRestore],
    clusters: &[&ClusterRestore],
) -> Result<RdsOutcome, ReconcileError> {
    let mut outcome = RdsOutcome::default();
    // Collected first: an iterator of closures held across the awaits below would make the
    // future's `Send` depend on higher-ranked lifetimes the compiler cannot prove.
    let mut ids: Vec<&str> = dbs.iter().map(|d| d.db_instance_id.as_str()).collect();
    for c in clusters {
        ids.extend(c.members.iter().map(|m| m.db_instance_id.as_str()));
    }
    for id in ids {
        let Some(item) = ctx.journal.item(&format!("db/{id}")).await? else {
            continue;
        };
        if item.state != ItemState::Done {
            continue;
        }
        if let Ok(done) = serde_json::from_value::<DbDone>(detail(&item))
            && done.available
        {
            outcome.databases.insert(id.to_owned(), done.database);
        }
    }
    for c in clusters {
        let Some(item) = ctx
            .journal
            .item(&format!("cluster/{}", c.db_cluster_id))
            .await?
        else {
            continue;
        };
        if item.state != ItemState::Done {
            continue;
        }
        if let Ok(done) = serde_json::from_value::<ClusterDone>(detail(&item))
            && done.available
        {
            add_cluster(
                &mut outcome,
                clusters,
                c.db_cluster_id.clone(),
                done.cluster,
            );
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(id: &str, subnets: &[DrRef]) -> DbRestore {
        DbRestore {
            db_instance_id: id.into(),
            tier: 1,
            class: "db.r5.2xlarge".into(),
            engine: "postgres".into(),
            snapshot: DrRef::Dr(format!("pl-{id}")),
            multi_az: false,
            subnets: subnets.to_vec(),
            security_groups: vec![DrRef::Dr("sg-1".into())],
        }
    }

    fn dr(id: &str) -> DrRef {
        DrRef::Dr(id.into())
    }

    /// The executor runs the step inside a spawned task: its future must be `Send`.
    #[test]
    fn restore_can_run_in_a_spawned_task() {
        fn spawn(ctx: RunCtx) -> tokio::task::JoinHandle<()> {
            tokio::spawn(async move {
                let _ = restore(&ctx).await;
            })
        }
        let _ = spawn;
    }

    #[test]
    fn neighbouring_classes_smaller_first_then_larger() {
        assert_eq!(
            class_candidates("db.r5.2xlarge"),
            ["db.r5.2xlarge", "db.r5.xlarge", "db.r5.4xlarge"]
        );
        // Gaps in what RDS sells are skipped: no db.m5.6xlarge or db.m5.10xlarge.
        assert_eq!(
            class_candidates("db.m5.8xlarge"),
            ["db.m5.8xlarge", "db.m5.4xlarge", "db.m5.12xlarge"]
        );
        // Non-burstable families start at large; burstable ones end at 2xlarge.
        assert_eq!(
            class_candidates("db.r6g.large"),
            ["db.r6g.large", "db.r6g.xlarge"]
        );
        assert_eq!(
            class_candidates("db.t3.micro"),
            ["db.t3.micro", "db.t3.small"]
        );
        assert_eq!(
            class_candidates("db.t4g.2xlarge"),
            ["db.t4g.2xlarge", "db.t4g.xlarge"]
        );
        assert_eq!(
            class_candidates("db.x2iedn.32xlarge"),
            [
                "db.x2iedn.32xlarge",
                "db.x2iedn.24xlarge",
                "db.x2iedn.48xlarge"
            ]
        );
        // Nothing to fall back to.
        assert_eq!(class_candidates("db.serverless"), ["db.serverless"]);
        assert_eq!(class_candidates("r5.large"), ["r5.large"]);
        assert_eq!(class_candidates("db.r5.metal"), ["db.r5.metal"]);
    }

    #[test]
    fn next_class_skips_tried_and_unavailable_classes() {
        let candidates = class_candidates("db.r5.2xlarge");
        let mut cache = UnavailableCache::new(600);
        let now = 1_000_000;
        assert_eq!(
            next_class(&candidates, &[], &cache, now).as_deref(),
            Some("db.r5.2xlarge")
        );
        // Another DB found the planned class without capacity: this one starts one smaller.
        cache.mark("db.r5.2xlarge", ANY_AZ, now);
        assert_eq!(
            next_class(&candidates, &[], &cache, now + 1).as_deref(),
            Some("db.r5.xlarge")
        );
        let tried = vec!["db.r5.xlarge".to_owned()];
        assert_eq!(
            next_class(&candidates, &tried, &cache, now + 1).as_deref(),
            Some("db.r5.4xlarge")
        );
        let tried = vec!["db.r5.xlarge".to_owned(), "db.r5.4xlarge".to_owned()];
        assert_eq!(next_class(&candidates, &tried, &cache, now + 1), None);
        // The mark expires with the policy's TTL.
        assert_eq!(
            next_class(&candidates, &tried, &cache, now + 600_000).as_deref(),
            Some("db.r5.2xlarge")
        );
    }

    #[test]
    fn identifiers_are_deterministic_valid_and_drills_have_their_own() {
        let run = "r-20261124T235959-abcdef";
        assert_eq!(
            dr_identifier(run, RunMode::Disaster, "orders-db"),
            "orders-db"
        );
        assert_eq!(
            dr_identifier(run, RunMode::Disaster, "Orders_DB"),
            "orders-db"
        );
        assert_eq!(dr_identifier(run, RunMode::Disaster, "1st"), "db-1st");
        let drill = dr_identifier(run, RunMode::Drill, "orders-db");
        assert!(drill.starts_with("orders-db-drill-"), "{drill}");
        assert_eq!(drill.len(), "orders-db-drill-".len() + 6);
        assert_eq!(drill, dr_identifier(run, RunMode::Drill, "orders-db"));
        assert_ne!(drill, dr_identifier("r-other", RunMode::Drill, "orders-db"));
        let long = "a".repeat(63);
        assert_eq!(dr_identifier(run, RunMode::Disaster, &long), long);
        let long_drill = dr_identifier(run, RunMode::Drill, &long);
        assert_eq!(long_drill.len(), 63);
        // Truncation never leaves a trailing or doubled hyphen.
        let hyphen = format!("{}-b", "a".repeat(62));
        let id = dr_identifier(run, RunMode::Disaster, &hyphen);
        assert_eq!(id, "a".repeat(62));
        for id in [drill, long_drill, id] {
            assert!(
                id.len() <= 63 && !id.ends_with('-') && !id.contains("--"),
                "{id}"
            );
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{id}");
        }
    }

    #[test]
    fn subnet_group_names_are_per_run_and_subnet_set() {
        let subnets = vec!["subnet-b".to_owned(), "subnet-a".to_owned()];
        let a = subnet_group_name("r1", "Prod DB Subnets", &subnets);
        assert!(a.starts_with("pilotlight-prod-db-subnets-"), "{a}");
        assert_eq!(a.len(), "pilotlight-prod-db-subnets-".len() + 8);
        // Order of the subnets does not matter; the run and the set do.
        let reordered = vec!["subnet-a".to_owned(), "subnet-b".to_owned()];
        assert_eq!(a, subnet_group_name("r1", "Prod DB Subnets", &reordered));
        assert_ne!(a, subnet_group_name("r2", "Prod DB Subnets", &subnets));
        assert_ne!(
            a,
            subnet_group_name("r1", "Prod DB Subnets", &["subnet-a".to_owned()])
        );
        let long = subnet_group_name("r1", &"x".repeat(400), &subnets);
        assert!(long.len() <= 255);
        assert!(subnet_group_name("r1", "!!!", &subnets).starts_with("pilotlight-"));
        assert_ne!(subnet_group_name("r1", "default", &subnets), "default");
    }

    #[test]
    fn dbs_share_a_group_per_subnet_set_and_incomplete_sets_get_none() {
        let dbs = [
            db("a", &[dr("subnet-2"), dr("subnet-1")]),
            db("b", &[dr("subnet-3")]),
            db("c", &[dr("subnet-1"), dr("subnet-2")]),
            db("d", &[dr("subnet-1"), DrRef::Missing("subnet-p9".into())]),
            db("e", &[]),
        ];
        let primary_groups: HashMap<&str, &str> = [("a", "app-subnets"), ("b", "")].into();
        // An Aurora cluster on the same subnets as a and c shares their group.
        let cluster_subnets = [dr("subnet-1"), dr("subnet-2")];
        let places: Vec<Placement<'_>> = dbs
            .iter()
            .map(|d| Placement {
                id: &d.db_instance_id,
                subnets: &d.subnets,
                primary_group: primary_groups.get(d.db_instance_id.as_str()).copied(),
            })
            .chain([Placement {
                id: "ledger",
                subnets: &cluster_subnets,
                primary_group: Some("ledger-subnets"),
            }])
            .collect();
        let (groups, loose) = plan_subnet_groups("r1", &places);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].dbs, [0, 2, 5]);
        assert_eq!(groups[0].subnets, ["subnet-1", "subnet-2"]);
        assert_eq!(groups[0].source, "app-subnets");
        assert!(groups[0].name.starts_with("pilotlight-app-subnets-"));
        // An empty primary group name falls back to the DB identifier.
        assert_eq!(groups[1].source, "b");
        assert_eq!(groups[1].dbs, [1]);
        assert_eq!(loose, [3, 4]);
        // A cluster alone names its group after its own primary group.
        let (groups, _) = plan_subnet_groups("r1", &places[5..]);
        assert!(groups[0].name.starts_with("pilotlight-ledger-subnets-"));
    }

    #[test]
    fn statuses() {
        assert_eq!(db_status("available"), DbStatus::Available);
        for s in [
            "creating",
            "backing-up",
            "modifying",
            "configuring-enhanced-monitoring",
        ] {
            assert_eq!(db_status(s), DbStatus::Pending, "{s}");
        }
        for s in [
            "failed",
            "restore-error",
            "incompatible-restore",
            "incompatible-network",
            "inaccessible-encryption-credentials",
            "deleting",
        ] {
            assert_eq!(db_status(s), DbStatus::Failed, "{s}");
        }
    }

    #[test]
    fn tags_put_the_run_first_and_drop_reserved_ones() {
        let own: BTreeMap<String, String> = [
            ("team".to_owned(), "orders".to_owned()),
            ("aws:cloudformation:stack-name".to_owned(), "x".to_owned()),
            ("pilotlight:source".to_owned(), "spoof".to_owned()),
        ]
        .into();
        let run = vec![
            ("pilotlight:managed".to_owned(), "true".to_owned()),
            ("pilotlight:run".to_owned(), "r1".to_owned()),
            ("pilotlight:source".to_owned(), "orders-db".to_owned()),
        ];
        let tags = rds_tags(run, Some(&own));
        let keys: Vec<&str> = tags.iter().filter_map(Tag::key).collect();
        assert_eq!(
            keys,
            [
                "pilotlight:managed",
                "pilotlight:run",
                "pilotlight:source",
                "team"
            ]
        );
        assert!(is_ours(&tags, "r1", "orders-db"));
        assert!(!is_ours(&tags, "r2", "orders-db"));
        assert!(!is_ours(&tags, "r1", "other-db"));
        let many: BTreeMap<String, String> = (0..80)
            .map(|i| (format!("k{i:02}"), "v".to_owned()))
            .collect();
        assert_eq!(rds_tags(Vec::new(), Some(&many)).len(), MAX_TAGS);
    }

    #[test]
    fn done_detail_takes_status_and_endpoint_and_round_trips() {
        let creating = RdsInstance::builder()
            .db_instance_identifier("orders-db")
            .db_instance_class("db.r5.xlarge")
            .db_instance_status("creating")
            .build();
        let substitution = ClassSubstitution {
            from_class: "db.r5.2xlarge".into(),
            to_class: "db.r5.xlarge".into(),
            reason: "neighbour_size".into(),
            cause: "InsufficientDBInstanceCapacity for db.r5.2xlarge".into(),
        };
        let make = Make::Restore {
            snapshot: "pl-snap",
            subnet_group: "pilotlight-g",
            security_groups: Vec::new(),
            multi_az: false,
            port: None,
        };
        let mut done = DbDone::new(
            &creating,
            "orders-db",
            "db.r5.xlarge",
            &make,
            Some(substitution),
        );
        assert!(!done.available);
        assert_eq!(done.status, "creating");
        // Available without an endpoint is not ready yet.
        done.observe(
            &RdsInstance::builder()
                .db_instance_status("available")
                .build(),
        );
        assert!(!done.available);
        let available = RdsInstance::builder()
            .db_instance_identifier("orders-db")
            .db_instance_status("available")
            .endpoint(
                aws_sdk_rds::types::Endpoint::builder()
                    .address("orders-db.x.us-west-2.rds.amazonaws.com")
                    .port(5432)
                    .build(),
            )
            .build();
        done.observe(&available);
        assert!(done.available);
        assert_eq!(done.database.class, "db.r5.xlarge");
        assert_eq!(done.database.endpoint_port, Some(5432));
        let value = json!(done);
        assert_eq!(value["substitution"]["from_class"], "db.r5.2xlarge");
        assert_eq!(value["substitution"]["to_class"], "db.r5.xlarge");
        assert_eq!(value["substitution"]["reason"], "neighbour_size");
        let back: DbDone = serde_json::from_value(value).expect("round trip");
        assert_eq!(back, done);
    }

    #[test]
    fn member_detail_names_its_cluster_and_older_details_still_load() {
        let answer = RdsInstance::builder()
            .db_instance_identifier("ledger-1")
            .db_instance_class("db.r6g.large")
            .db_instance_status("creating")
            .build();
        let make = Make::Member {
            cluster: "ledger",
            engine: "aurora-postgresql",
            subnet_group: "pilotlight-ledger-g",
            promotion_tier: WRITER_PROMOTION_TIER,
        };
        let done = DbDone::new(&answer, "ledger-1", "db.r6g.large", &make, None);
        let value = json!(done);
        assert_eq!(value["cluster"], "ledger");
        assert_eq!(value["subnet_group"], "pilotlight-ledger-g");
        assert_eq!(value["snapshot"], "");
        assert!(value.get("substitution").is_none());
        let requested = make.requested("ledger-1", "db.r6g.large", None);
        assert_eq!(requested["cluster"], "ledger");
        assert_eq!(requested["attempt"]["class"], "db.r6g.large");
        assert_eq!(make.operation(), "CreateDBInstance");
        // A detail written before members existed (no cluster field) still reads.
        let old = json!({
            "database": {"identifier": "orders-db", "class": "db.t3.micro",
                         "endpoint_address": null, "endpoint_port": null},
            "status": "creating", "available": false,
            "snapshot": "pl-snap", "subnet_group": "g",
        });
        let old: DbDone = serde_json::from_value(old).expect("old detail");
        assert_eq!(old.cluster, None);
    }

    #[test]
    fn cluster_detail_takes_status_and_endpoints() {
        let creating = RdsCluster::builder()
            .db_cluster_identifier("ledger")
            .status("creating")
            .port(5432)
            .build();
        let mut done = ClusterDone::new(&creating, "ledger", "pl-ledger-1", "pilotlight-g");
        assert!(!done.available);
        assert_eq!(done.cluster.port, Some(5432));
        let available = RdsCluster::builder()
            .db_cluster_identifier("ledger")
            .status("available")
            .endpoint("ledger.cluster-x.us-west-2.rds.amazonaws.com")
            .reader_endpoint("ledger.cluster-ro-x.us-west-2.rds.amazonaws.com")
            .build();
        done.observe(&available);
        assert!(done.available);
        assert_eq!(
            done.cluster.endpoint.as_deref(),
            Some("ledger.cluster-x.us-west-2.rds.amazonaws.com")
        );
        assert_eq!(
            done.cluster.reader_endpoint.as_deref(),
            Some("ledger.cluster-ro-x.us-west-2.rds.amazonaws.com")
        );
        // The port of the first answer is kept when a later one omits it.
        assert_eq!(done.cluster.port, Some(5432));
        let back: ClusterDone = serde_json::from_value(json!(done)).expect("round trip");
        assert_eq!(back, done);
        // Available without an endpoint is not ready; a failed status is terminal.
        done.observe(&RdsCluster::builder().status("available").build());
        assert!(!done.available);
        assert_eq!(db_status("failed"), DbStatus::Failed);
    }

    #[test]
    fn a_cluster_is_usable_once_one_member_is_available() {
        let cluster = ClusterRestore {
            db_cluster_id: "ledger".into(),
            tier: 1,
            engine: "aurora-postgresql".into(),
            engine_version: None,
            port: None,
            snapshot: dr("pl-ledger"),
            subnets: vec![dr("subnet-1")],
            security_groups: Vec::new(),
            members: vec![ClusterMemberRestore {
                db_instance_id: "ledger-1".into(),
                class: "db.r6g.large".into(),
                writer: true,
            }],
        };
        let empty = ClusterRestore {
            db_cluster_id: "empty".into(),
            members: Vec::new(),
            ..cluster.clone()
        };
        let dr_cluster = |id: &str| DrCluster {
            identifier: id.into(),
            endpoint: Some(format!("{id}.cluster-x")),
            reader_endpoint: None,
            port: None,
        };
        let clusters = [&cluster, &empty];
        let mut outcome = RdsOutcome::default();
        add_cluster(
            &mut outcome,
            &clusters,
            "ledger".into(),
            dr_cluster("ledger"),
        );
        add_cluster(&mut outcome, &clusters, "empty".into(), dr_cluster("empty"));
        // No member of ledger is available: only the memberless cluster is listed.
        assert_eq!(outcome.clusters.keys().collect::<Vec<_>>(), ["empty"]);
        outcome.databases.insert(
            "ledger-1".into(),
            DrDatabase {
                identifier: "ledger-1".into(),
                class: "db.r6g.large".into(),
                endpoint_address: Some("ledger-1.x".into()),
                endpoint_port: None,
            },
        );
        add_cluster(
            &mut outcome,
            &clusters,
            "ledger".into(),
            dr_cluster("ledger"),
        );
        assert_eq!(
            outcome.clusters.keys().collect::<Vec<_>>(),
            ["empty", "ledger"]
        );
    }
}
