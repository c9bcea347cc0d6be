//! RDS restores (SPEC D5): every DB instance of the plan restored in the DR region from its
//! newest DR snapshot copy, then waited for until it is `available`.
//!
//! # What one execution does
//!
//! 1. **Subnet groups.** The plan's DBs are grouped by their set of DR subnets; each set gets
//!    one DB subnet group, made by `CreateDBSubnetGroup` under a deterministic name
//!    ([`subnet_group_name`]: `pilotlight-<primary subnet group or DB id>-<hash of the run and
//!    the subnets>`) and journalled as item `subnet-group/<name>`. An answer of
//!    `DBSubnetGroupAlreadyExists` (a lost answer, a resumed run) adopts the group once
//!    `DescribeDBSubnetGroups` shows it holds exactly those subnets.
//! 2. **Restores.** One `RestoreDBInstanceFromDBSnapshot` per DB (item `db/<primary id>`, kind
//!    `db_instance`): from the plan's DR snapshot, into its subnet group, with its DR security
//!    groups, class, multi-AZ setting, the primary's port, and the run's tags
//!    ([`RunCtx::tags`]) followed by the primary's own tags. The DB instance identifier is
//!    deterministic ([`dr_identifier`]: the primary identifier for a disaster, which the DR
//!    region's own namespace allows; with a run suffix for a drill), so a repeated request
//!    answers `DBInstanceAlreadyExists` and the DB is adopted — when its `pilotlight:run` and
//!    `pilotlight:source` tags say it is this run's; a DB of that name belonging to anything
//!    else fails the item instead of being taken over. Subnet groups and DBs go out
//!    concurrently, each mutation under a [`RunCtx::limiter`] permit and the throttle.
//! 3. **Wait.** One `DescribeDBInstances` per poll, filtered by `db-instance-id` on every DB
//!    still outstanding (in chunks of 100 identifiers, so one call up to 100 DBs), until each is
//!    `available` with an endpoint. A DB whose status turns terminal (`failed`,
//!    `incompatible-*`, `restore-error`, …) or which stays absent from the answers for a minute
//!    fails its item. A restore whose own answer already says `available` needs no poll.
//!
//! The `db/<id>` item is `done` as soon as RDS accepted the restore; its detail holds the
//! [`DrDatabase`] and whether it is available, and is rewritten with the endpoint once it is.
//! The step row `rds` (tier 0) is `running` meanwhile and `done` at the end with the counts;
//! a run executed again after the step is done rebuilds the [`RdsOutcome`] from the items with
//! no AWS call.
//!
//! # Class fallback (plan B for RDS)
//!
//! On `InsufficientDBInstanceCapacity` the DB is restored with the neighbouring size of the
//! same class family: the next smaller size first, then the next larger one
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
//! An item found `requested` is resolved first: `DescribeDBInstances` of its identifier adopts
//! the DB if the first attempt made it, and only otherwise is the restore sent again. A subnet
//! group `requested` is simply created again: its deterministic name makes that idempotent.
//!
//! # Aurora
//!
//! Members of an Aurora cluster (inventory `cluster_id`) are in the plan like other DBs, but
//! without a snapshot: Aurora keeps cluster snapshots, and the plan's DR state
//! ([`pilotlight_core::scope::DrState`]) holds DB instance snapshots only. A cluster could only
//! come back through `RestoreDBClusterFromSnapshot` from a DR cluster snapshot, which the plan
//! does not carry, so each member fails its item saying so.
//!
//! # Failures
//!
//! A DB that cannot be restored (no DR snapshot, an unmirrored subnet or security group, its
//! subnet group refused, every class without capacity, an answer AWS will not change its mind
//! about) fails its item with the reason and the rest go on. Only cancellation, store failures
//! and AWS pushing back beyond [`retrying`]'s patience end the step with an error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_rds::operation::create_db_subnet_group::CreateDbSubnetGroupOutput;
use aws_sdk_rds::operation::restore_db_instance_from_db_snapshot::RestoreDbInstanceFromDbSnapshotOutput;
use aws_sdk_rds::types::{DbInstance as RdsInstance, DbSubnetGroup, Filter, Tag};
use futures::future::join_all;
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::fallback::{SubstitutionReason, UnavailableCache, neighbours};
use pilotlight_core::inventory::{DbInstance, InstanceTypeInfo, family};
use pilotlight_core::plan::{DbRestore, DrRef};
use pilotlight_store::{ItemState, RestoreItem, RunMode, StepState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::journal::{ItemRef, detail};
use super::run::retrying;
use super::{DrDatabase, RdsOutcome, RunCtx};
use crate::{ReconcileError, now_ms};

/// The step's id and kind.
const STEP: &str = "rds";
/// Item kind of a DB restore.
const DB_KIND: &str = "db_instance";
/// Item kind of a DB subnet group.
const GROUP_KIND: &str = "db_subnet_group";
/// Longest DB instance identifier RDS accepts.
const MAX_DB_ID: usize = 63;
/// Longest part of a subnet group name taken from the primary (AWS allows 255 in all).
const MAX_GROUP_BASE: usize = 200;
/// AWS's limit of tags on one RDS resource.
const MAX_TAGS: usize = 50;
/// Identifiers per `db-instance-id` filter, and records per page.
const DESCRIBE_CHUNK: usize = 100;
/// How long a restored DB may be missing from `DescribeDBInstances` before its item fails.
const MISSING_GRACE: Duration = Duration::from_secs(60);
/// RDS chooses the AZ within the subnet group: capacity is remembered per class, region-wide.
const ANY_AZ: &str = "";
/// Sizes RDS sells in burstable (`db.t*`) families.
const BURSTABLE_SIZES: [&str; 6] = ["micro", "small", "medium", "large", "xlarge", "2xlarge"];
/// Sizes RDS sells in the other families.
const STANDARD_SIZES: [&str; 10] = [
    "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
    "32xlarge", "48xlarge",
];

/// Restores every DB instance of the plan and waits until each is available (see the module
/// doc). Databases that cannot be restored fail their items; the outcome holds the others.
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
    if ctx.journal.step_done(STEP).await?.is_some() {
        return rebuild(ctx, &dbs).await;
    }
    ctx.journal
        .step(
            STEP,
            0,
            STEP,
            StepState::Running,
            &json!({"databases": dbs.len()}),
        )
        .await?;

    let inventory: HashMap<&str, &DbInstance> = ctx
        .inventory
        .db_instances
        .iter()
        .map(|d| (d.id.as_str(), d))
        .collect();
    let (groups, loose) = plan_subnet_groups(&ctx.run_id, &dbs, |id| {
        inventory.get(id).and_then(|d| d.subnet_group.as_deref())
    });
    let shared = Shared {
        inventory,
        unavailable: Mutex::new(UnavailableCache::from_policy(&ctx.settings.fallback)),
    };

    let grouped = join_all(groups.iter().map(|g| {
        let (dbs, shared) = (&dbs, &shared);
        async move {
            let made = subnet_group(ctx, g).await?;
            let group = made.as_ref().map_err(String::as_str);
            let started = join_all(
                g.dbs
                    .iter()
                    .map(|&i| restore_db(ctx, dbs[i], group, shared)),
            );
            started.await.into_iter().collect::<Result<Vec<_>, _>>()
        }
    }));
    let ungrouped = join_all(loose.iter().map(|&i| {
        restore_db(
            ctx,
            dbs[i],
            Err("the DB has no complete set of DR subnets"),
            &shared,
        )
    }));
    let (grouped, ungrouped) = tokio::join!(grouped, ungrouped);

    let mut ready: Vec<(String, DbDone)> = Vec::new();
    let mut waiting: Vec<Waiter> = Vec::new();
    let mut failed = 0usize;
    let mut started = Vec::new();
    for g in grouped {
        started.extend(g?);
    }
    for s in ungrouped {
        started.push(s?);
    }
    for s in started {
        match s {
            Started::Restored(w) if w.done.available => ready.push((w.primary, w.done)),
            Started::Restored(w) => waiting.push(*w),
            Started::Failed => failed += 1,
        }
    }
    let (available, lost) = wait_available(ctx, waiting).await?;
    ready.extend(available);
    failed += lost;

    let substitutions = ready
        .iter()
        .filter(|(_, d)| d.substitution.is_some())
        .count();
    let mut outcome = RdsOutcome::default();
    for (primary, done) in ready {
        outcome.databases.insert(primary, done.database);
    }
    ctx.journal
        .step(
            STEP,
            0,
            STEP,
            StepState::Done,
            &json!({
                "databases": dbs.len(),
                "available": outcome.databases.len(),
                "failed": failed,
                "substitutions": substitutions,
                "subnet_groups": groups.len(),
            }),
        )
        .await?;
    Ok(outcome)
}

/// What the DB restores of one step share.
#[derive(Debug)]
struct Shared<'a> {
    /// The inventory's DB instances by identifier.
    inventory: HashMap<&'a str, &'a DbInstance>,
    /// Classes that answered `InsufficientDBInstanceCapacity` lately.
    unavailable: Mutex<UnavailableCache>,
}

/// A DB subnet group to make: one per distinct set of DR subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupPlan {
    name: String,
    /// The primary subnet group name (or DB identifier) it stands for: its source tag.
    source: String,
    /// DR subnet ids, sorted.
    subnets: Vec<String>,
    /// Indexes of its DBs in the plan's order.
    dbs: Vec<usize>,
}

/// Groups the DBs by their set of DR subnets, in plan order. DBs whose subnets are empty or not
/// all mirrored get no group: their indexes are returned apart.
fn plan_subnet_groups<'a>(
    run_id: &str,
    dbs: &[&DbRestore],
    primary_group: impl Fn(&str) -> Option<&'a str>,
) -> (Vec<GroupPlan>, Vec<usize>) {
    let mut groups: Vec<GroupPlan> = Vec::new();
    let mut loose = Vec::new();
    for (i, db) in dbs.iter().enumerate() {
        let subnets: Option<BTreeSet<&str>> = db.subnets.iter().map(DrRef::dr_id).collect();
        let Some(subnets) = subnets.filter(|s| !s.is_empty()) else {
            loose.push(i);
            continue;
        };
        let subnets: Vec<String> = subnets.into_iter().map(str::to_owned).collect();
        match groups.iter_mut().find(|g| g.subnets == subnets) {
            Some(g) => g.dbs.push(i),
            None => {
                let source = primary_group(&db.db_instance_id)
                    .filter(|g| !g.is_empty())
                    .unwrap_or(&db.db_instance_id)
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

async fn permit(ctx: &RunCtx) -> Result<tokio::sync::SemaphorePermit<'_>, ReconcileError> {
    ctx.limiter
        .acquire()
        .await
        .map_err(|_| ReconcileError::Cancelled)
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
    let held = permit(ctx).await?;
    let created = retrying(ctx, || create_group(ctx, &request)).await;
    drop(held);
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

/// A class substitution: what the plan asked for, what was restored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ClassSubstitution {
    from_class: String,
    to_class: String,
    /// `neighbour_size`, as plan B names it for instances.
    reason: String,
    /// What pushed the restore off the plan's class.
    cause: String,
}

/// The done detail of a `db/<id>` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DbDone {
    database: DrDatabase,
    /// The last status seen.
    status: String,
    /// Available, with an endpoint.
    available: bool,
    /// The DR snapshot restored from.
    snapshot: String,
    subnet_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    substitution: Option<ClassSubstitution>,
}

impl DbDone {
    fn new(
        answer: &RdsInstance,
        identifier: &str,
        class: &str,
        snapshot: &str,
        subnet_group: &str,
        substitution: Option<ClassSubstitution>,
    ) -> DbDone {
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

/// A `RestoreDBInstanceFromDBSnapshot` as sent (the same on every retry of one class).
#[derive(Debug)]
struct RestoreRequest<'a> {
    identifier: &'a str,
    snapshot: &'a str,
    class: &'a str,
    subnet_group: &'a str,
    security_groups: Vec<String>,
    multi_az: bool,
    port: Option<i32>,
    tags: Vec<Tag>,
}

async fn send_restore(
    ctx: &RunCtx,
    r: &RestoreRequest<'_>,
) -> Result<RestoreDbInstanceFromDbSnapshotOutput, AwsError> {
    ctx.aws
        .rds
        .restore_db_instance_from_db_snapshot(|b| {
            b.db_instance_identifier(r.identifier)
                .db_snapshot_identifier(r.snapshot)
                .db_instance_class(r.class)
                .db_subnet_group_name(r.subnet_group)
                .set_vpc_security_group_ids(
                    (!r.security_groups.is_empty()).then(|| r.security_groups.clone()),
                )
                .multi_az(r.multi_az)
                .set_port(r.port)
                .set_tags(Some(r.tags.clone()))
        })
        .await
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

/// What one DB's restore needs besides the context.
#[derive(Debug, Clone, Copy)]
struct DbJob<'a> {
    db: &'a DbRestore,
    item_ref: ItemRef<'a>,
    identifier: &'a str,
}

async fn fail_db(ctx: &RunCtx, job: DbJob<'_>, reason: &str) -> Result<Started, ReconcileError> {
    tracing::warn!(run = %ctx.run_id, db = %job.db.db_instance_id, error = %reason,
        "DB instance not restored");
    let failed = json!({"identifier": job.identifier, "class": job.db.class});
    ctx.journal.fail(job.item_ref, reason, &failed).await?;
    Ok(Started::Failed)
}

/// Adopts `found`, the DB instance under the job's identifier, if it is this run's restore of
/// the job's DB; fails the item otherwise.
async fn adopt(
    ctx: &RunCtx,
    job: DbJob<'_>,
    item: &RestoreItem,
    found: &RdsInstance,
    snapshot: &str,
    subnet_group: &str,
) -> Result<Started, ReconcileError> {
    let primary = job.db.db_instance_id.as_str();
    if !is_ours(found.tag_list(), &ctx.run_id, primary) {
        let owner = found
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(pilotlight_aws::tags::RUN))
            .and_then(Tag::value)
            .map_or_else(|| "not pilotlight's".to_owned(), |r| format!("run {r}'s"));
        let reason = format!(
            "a DB instance named {} already exists in the DR region and is {owner}, not this \
             run's restore of {primary}: it is left alone",
            job.identifier
        );
        return fail_db(ctx, job, &reason).await;
    }
    let class = found.db_instance_class().unwrap_or(&job.db.class);
    let substitution = (class != job.db.class).then(|| ClassSubstitution {
        from_class: job.db.class.clone(),
        to_class: class.to_owned(),
        reason: SubstitutionReason::NeighbourSize.as_str().to_owned(),
        cause: "found restored with this class by an earlier execution of the run".to_owned(),
    });
    let done = DbDone::new(
        found,
        job.identifier,
        class,
        snapshot,
        subnet_group,
        substitution,
    );
    tracing::info!(run = %ctx.run_id, db = %primary, identifier = %job.identifier,
        "DB instance already restored; adopted");
    let item = ctx.journal.done(item, job.identifier, &json!(done)).await?;
    Ok(started(primary, item, done, false))
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
    let job = DbJob {
        db,
        item_ref: ItemRef {
            key: &key,
            step_id: STEP,
            kind: DB_KIND,
            primary_id: primary,
        },
        identifier: &identifier,
    };
    let existing = ctx.journal.item(&key).await?;
    if let Some(item) = &existing {
        match item.state {
            ItemState::Done => {
                if let Ok(done) = serde_json::from_value::<DbDone>(detail(item)) {
                    return Ok(started(primary, item.clone(), done, false));
                }
            }
            ItemState::Failed => return Ok(Started::Failed),
            ItemState::Pending | ItemState::Requested => {}
        }
    }

    let inventory = shared.inventory.get(primary).copied();
    if let Some(cluster) = inventory.and_then(|d| d.cluster_id.as_deref()) {
        let reason = format!(
            "{primary} is a member of Aurora cluster {cluster}: it comes back only with its \
             cluster (RestoreDBClusterFromSnapshot), and the plan's DR state holds no cluster \
             snapshot for {cluster} (DB instance snapshots only), so it is not restored"
        );
        return fail_db(ctx, job, &reason).await;
    }
    let Some(snapshot) = db.snapshot.dr_id() else {
        let reason =
            format!("{primary} has no snapshot copy in the DR region: nothing to restore it from");
        return fail_db(ctx, job, &reason).await;
    };
    if db.subnets.is_empty() {
        let reason =
            format!("the inventory lists no subnets for {primary}: no DR subnet group can be made");
        return fail_db(ctx, job, &reason).await;
    }
    if let Some(missing) = db.subnets.iter().find(|s| s.is_missing()) {
        let reason = format!(
            "subnet {} of {primary}'s subnet group is not mirrored in the DR region",
            primary_of(missing)
        );
        return fail_db(ctx, job, &reason).await;
    }
    if let Some(missing) = db.security_groups.iter().find(|s| s.is_missing()) {
        let reason = format!(
            "security group {} of {primary} is not mirrored in the DR region",
            primary_of(missing)
        );
        return fail_db(ctx, job, &reason).await;
    }
    let group = match group {
        Ok(g) => g,
        Err(why) => {
            let reason = format!("its DR subnet group could not be made: {why}");
            return fail_db(ctx, job, &reason).await;
        }
    };

    // A restore journalled as requested may have been made: look before sending again.
    if let Some(item) = existing.filter(|i| i.state == ItemState::Requested)
        && let Some(found) = lookup(ctx, &identifier).await?
    {
        return adopt(ctx, job, &item, &found, snapshot, &group.name).await;
    }

    let candidates = class_candidates(&db.class);
    let security_groups: Vec<String> = db
        .security_groups
        .iter()
        .filter_map(|s| s.dr_id().map(str::to_owned))
        .collect();
    let tags = rds_tags(ctx.tags(primary), inventory.map(|d| &d.tags));
    let port = inventory.and_then(|d| d.endpoint_port);
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
        let substitution = (class != db.class).then(|| ClassSubstitution {
            from_class: db.class.clone(),
            to_class: class.clone(),
            reason: SubstitutionReason::NeighbourSize.as_str().to_owned(),
            cause: cause
                .clone()
                .unwrap_or_else(|| format!("{} lacked capacity moments ago", db.class)),
        });
        // The attempt's substitution is nested: only a done item reports one (D11).
        let requested: Value = json!({
            "identifier": identifier,
            "snapshot": snapshot,
            "subnet_group": group.name,
            "attempt": {"class": class, "substitution": substitution},
        });
        let item = ctx.journal.request(job.item_ref, None, &requested).await?;
        let request = RestoreRequest {
            identifier: &identifier,
            snapshot,
            class: &class,
            subnet_group: &group.name,
            security_groups: security_groups.clone(),
            multi_az: db.multi_az,
            port,
            tags: tags.clone(),
        };
        let held = permit(ctx).await?;
        let result = retrying(ctx, || send_restore(ctx, &request)).await;
        drop(held);
        match result {
            Ok(out) => {
                let Some(answer) = out.db_instance() else {
                    return Err(ReconcileError::Unexpected {
                        operation: "RestoreDBInstanceFromDBSnapshot",
                        detail: format!("no DBInstance in the answer for {identifier}"),
                    });
                };
                let done = DbDone::new(
                    answer,
                    &identifier,
                    &class,
                    snapshot,
                    &group.name,
                    substitution,
                );
                if let Some(s) = &done.substitution {
                    tracing::info!(run = %ctx.run_id, db = %primary, from = %s.from_class,
                        to = %s.to_class, cause = %s.cause, "RDS class substitution");
                }
                let item = ctx.journal.done(&item, &identifier, &json!(done)).await?;
                return Ok(started(primary, item, done, true));
            }
            // The identifier is taken: by this restore's earlier attempt whose answer was lost,
            // or by something else (which `adopt` refuses).
            Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::AlreadyExists => {
                let Some(found) = lookup(ctx, &identifier).await? else {
                    return Err(ReconcileError::Unexpected {
                        operation: "RestoreDBInstanceFromDBSnapshot",
                        detail: format!(
                            "{} for {identifier}, which DescribeDBInstances does not list",
                            e.code
                        ),
                    });
                };
                return adopt(ctx, job, &item, &found, snapshot, &group.name).await;
            }
            Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::Capacity => {
                tracing::info!(run = %ctx.run_id, db = %primary, class = %class, code = %e.code,
                    "no RDS capacity; trying a neighbouring class");
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
            Err(ReconcileError::Aws(e)) if class != db.class && e.kind == ErrorKind::Fatal => {
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

/// The outcome of a step already done, from its items: no AWS call.
async fn rebuild(ctx: &RunCtx, dbs: &[&DbRestore]) -> Result<RdsOutcome, ReconcileError> {
    let mut outcome = RdsOutcome::default();
    for db in dbs {
        let Some(item) = ctx
            .journal
            .item(&format!("db/{}", db.db_instance_id))
            .await?
        else {
            continue;
        };
        if item.state != ItemState::Done {
            continue;
        }
        if let Ok(done) = serde_json::from_value::<DbDone>(detail(&item))
            && done.available
        {
            outcome
                .databases
                .insert(db.db_instance_id.clone(), done.database);
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
        let refs: Vec<&DbRestore> = dbs.iter().collect();
        let primary_groups: HashMap<&str, &str> = [("a", "app-subnets"), ("b", "")].into();
        let (groups, loose) = plan_subnet_groups("r1", &refs, |id| primary_groups.get(id).copied());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].dbs, [0, 2]);
        assert_eq!(groups[0].subnets, ["subnet-1", "subnet-2"]);
        assert_eq!(groups[0].source, "app-subnets");
        assert!(groups[0].name.starts_with("pilotlight-app-subnets-"));
        // An empty primary group name falls back to the DB identifier.
        assert_eq!(groups[1].source, "b");
        assert_eq!(groups[1].dbs, [1]);
        assert_eq!(loose, [3, 4]);
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
        let mut done = DbDone::new(
            &creating,
            "orders-db",
            "db.r5.xlarge",
            "pl-snap",
            "pilotlight-g",
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
}
