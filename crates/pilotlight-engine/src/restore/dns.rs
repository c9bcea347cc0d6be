//! DNS cutover (SPEC D7): every planned record is pointed at the DR resources, zone by zone.
//!
//! # What a record becomes
//!
//! The plan ([`DnsPlan`]) lists per zone the records to UPSERT, in batches. Each record is taken
//! whole from the inventory (matched by name, type and set identifier) and its DR values are
//! computed by [`dr_values`]:
//!
//! - a value that is a primary instance's private (public) IP becomes the private (public) IPs
//!   of the DR instances standing in for it — all of them when plan B fanned one primary out;
//! - a value or alias target that is a primary load balancer's DNS name (case, trailing dot and
//!   `dualstack.` prefix aside) becomes the DR load balancer's DNS name, and an alias's hosted
//!   zone id becomes the DR load balancer's canonical hosted zone id (see [`elb_zone_id`] when
//!   it has none);
//! - a value that is a primary DB endpoint becomes the restored DB's endpoint (an Aurora
//!   member's endpoint the restored member's), and a value that is a primary Aurora cluster's
//!   writer (reader) endpoint becomes the restored cluster's writer (reader) endpoint;
//! - anything else (an outside address, a resource outside the restore) is kept, and so are the
//!   TTL, weight, set identifier, failover role and health check.
//!
//! A record one of whose targets was not restored (instance, load balancer, DB or cluster
//! missing from the outcomes, or a DR instance without the kind of IP the record needs) is left unchanged
//! and listed in the step's detail (`unchanged`), as is a record with a routing policy the
//! inventory does not keep (latency, geolocation, multivalue: a set identifier without weight or
//! failover), which could not be written back faithfully.
//!
//! # How it is applied
//!
//! Zones run side by side; within a zone a private zone is first associated with its DR VPC
//! (`AssociateVPCWithHostedZone`), then the batches go one at a time: one
//! `ChangeResourceRecordSets` of UPSERTs (2 Route 53 change tokens each), then `GetChange`
//! every poll interval until `INSYNC`, then the next batch. The plan's batch boundaries are
//! kept; a batch whose computed values exceed AWS's limits (1,000 resource-record units, an
//! UPSERT's records counted twice, or 32,000 value characters, counted twice) is split further.
//!
//! # Crash safety
//!
//! Items: `dns-assoc/<zone>` and `dns/<zone>/<batch>` (`dns/<zone>/<batch>.<part>` for the parts
//! of a split batch). UPSERTs are idempotent, so a `requested` batch is simply sent again; a
//! `done` batch holds its change id and is only polled until `INSYNC` when it was not seen in
//! sync before. A `requested` association is looked up first (`GetHostedZone` lists the zone's
//! VPCs). A batch or association AWS refuses for good is failed and the rest goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetFailover, RrType, Vpc, VpcRegion,
};
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::inventory::{self, Inventory, LoadBalancerKind, Record};
use pilotlight_core::plan::{DnsPlan, DrRef};
use pilotlight_core::scope::normalize_dns;
use pilotlight_store::{ItemState, StepState};
use serde::Serialize;
use serde_json::{Value, json};

use super::journal::{ItemRef, detail};
use super::{Ec2Outcome, LbOutcome, RdsOutcome, RunCtx, retrying};
use crate::ReconcileError;

/// The step (and journal step id) of the cutover.
const STEP: &str = "dns";
/// Resource-record units AWS accepts in one `ChangeResourceRecordSets`.
const MAX_BATCH_UNITS: u32 = 1_000;
/// Characters of `Value` elements AWS accepts in one `ChangeResourceRecordSets`.
const MAX_VALUE_CHARS: u32 = 32_000;
/// Route 53 change tokens (and resource-record multiplier) of one UPSERT.
const UPSERT_TOKENS: u32 = 2;
/// Unchanged records listed by name in the step detail (the count is always complete).
const UNCHANGED_LISTED: usize = 500;

/// Points every planned record at the DR resources, zone by zone (zones in parallel, one batch
/// in flight per zone, each waited for until `INSYNC`).
///
/// # Errors
/// [`ReconcileError::Cancelled`] when the run stops; store failures; AWS errors that outlast
/// [`retrying`]; a change that stays `PENDING` far beyond `restore.dns_sync_secs`. A batch or
/// association AWS refuses for good is failed in the journal instead.
///
/// # Cancellation
/// No new mutation starts once [`RunCtx::stop`] fires; what was sent is journalled and a later
/// execution resumes it.
pub async fn cutover(
    ctx: &RunCtx,
    ec2: &Ec2Outcome,
    lbs: &LbOutcome,
    dbs: &RdsOutcome,
) -> Result<(), ReconcileError> {
    apply(ctx, ec2, lbs, dbs, None).await
}

/// A drill's DNS (D12, `drill.dns_zone`): a private hosted zone of that domain, created for the
/// run in the DR VPCs of its instances and tagged for it, receives every record the cutover
/// would write, as `<record name>.<domain>` with the same DR values. Production zones are not
/// touched. The teardown deletes the records and the zone.
///
/// # Errors
/// As [`cutover`]; `Unexpected` when the drill launched no instance in a known DR VPC.
pub async fn drill_zone(
    ctx: &RunCtx,
    ec2: &Ec2Outcome,
    lbs: &LbOutcome,
    dbs: &RdsOutcome,
    domain: &str,
) -> Result<(), ReconcileError> {
    if ctx.journal.step_done(STEP).await?.is_some() {
        return Ok(());
    }
    let zone = ensure_drill_zone(ctx, domain).await?;
    apply(ctx, ec2, lbs, dbs, Some(&zone)).await
}

async fn apply(
    ctx: &RunCtx,
    ec2: &Ec2Outcome,
    lbs: &LbOutcome,
    dbs: &RdsOutcome,
    drill: Option<&DrillZone>,
) -> Result<(), ReconcileError> {
    if ctx.journal.step_done(STEP).await?.is_some() {
        return Ok(());
    }
    let region = dr_region(ctx);
    let restored = Restored {
        ec2,
        lbs,
        dbs,
        dr_region: &region,
    };
    let max_units = ctx
        .settings
        .route53_max_changes_per_batch
        .clamp(1, MAX_BATCH_UNITS);
    let prepared = prepare(
        &ctx.inventory,
        &ctx.plan.restore.dns,
        &restored,
        max_units,
        drill,
    );
    let parts: usize = prepared.zones.iter().map(|z| z.parts.len()).sum();
    ctx.journal
        .step(
            STEP,
            0,
            STEP,
            StepState::Running,
            &json!({
                "zones": prepared.zones.len(),
                "batches": parts,
                "records": prepared.records,
                "unchanged_count": prepared.unchanged.len(),
                "drill_zone": drill.map(|d| &d.zone_id),
            }),
        )
        .await?;
    if !prepared.unchanged.is_empty() {
        tracing::warn!(
            run = %ctx.run_id,
            unchanged = prepared.unchanged.len(),
            "DNS records left unchanged: their targets were not restored"
        );
    }

    let reports =
        futures::future::join_all(prepared.zones.iter().map(|zone| apply_zone(ctx, zone))).await;
    let mut total = ZoneReport::default();
    let mut first_error = None;
    for report in reports {
        match report {
            Ok(r) => total.add(&r),
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let state = if total.failed_batches + total.failed_associations > 0 {
        StepState::Failed
    } else {
        StepState::Done
    };
    let listed: Vec<&Unchanged> = prepared.unchanged.iter().take(UNCHANGED_LISTED).collect();
    ctx.journal
        .step(
            STEP,
            0,
            STEP,
            state,
            &json!({
                "zones": prepared.zones.len(),
                "batches": parts,
                "batches_sent": total.sent,
                "batches_reused": total.reused,
                "failed_batches": total.failed_batches,
                "records": prepared.records,
                "records_upserted": total.records,
                "associations": total.associations,
                "failed_associations": total.failed_associations,
                "private_zones_without_vpc": total.no_vpc,
                "unchanged_count": prepared.unchanged.len(),
                "unchanged": listed,
                "drill_zone": drill.map(|d| &d.zone_id),
            }),
        )
        .await?;
    Ok(())
}

/// The DR region (the handles' region, else the inventory's).
fn dr_region(ctx: &RunCtx) -> String {
    let region = ctx.aws.elb.region();
    if region.is_empty() {
        ctx.inventory.dr_region.clone()
    } else {
        region.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Pure part: DR values and batches.
// ---------------------------------------------------------------------------------------------

/// The hosted zone of the DR region's load balancers (`network` for NLBs), from AWS's table
/// ([`pilotlight_core::elb_zones`]); used when the DR load balancer does not report its own.
pub(crate) fn elb_zone_id(region: &str, network: bool) -> Option<&'static str> {
    use pilotlight_core::elb_zones::{ElbFlavour, elb_hosted_zone};
    elb_hosted_zone(
        region,
        if network {
            ElbFlavour::Network
        } else {
            ElbFlavour::ClassicOrApplication
        },
    )
}

/// What the restore brought up, and where.
#[derive(Debug, Clone, Copy)]
struct Restored<'a> {
    ec2: &'a Ec2Outcome,
    lbs: &'a LbOutcome,
    dbs: &'a RdsOutcome,
    dr_region: &'a str,
}

/// Which endpoint of an Aurora cluster a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClusterEndpoint {
    Writer,
    Reader,
}

/// Which address of an instance a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpKind {
    Private,
    Public,
}

/// The kind of a primary load balancer, for the alias hosted zone id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LbFlavor {
    Classic,
    V2(LoadBalancerKind),
}

/// The primary estate's addresses and names (normalised with [`normalize_dns`]) → what they
/// belong to.
#[derive(Debug, Default)]
struct Targets {
    /// IP → (instance id, which address).
    ips: BTreeMap<String, (String, IpKind)>,
    /// DNS name → (classic name or v2 ARN, kind).
    lbs: BTreeMap<String, (String, LbFlavor)>,
    /// Endpoint address → DB instance identifier.
    dbs: BTreeMap<String, String>,
    /// Aurora cluster endpoint → (cluster identifier, which endpoint).
    clusters: BTreeMap<String, (String, ClusterEndpoint)>,
}

impl Targets {
    fn from_inventory(inventory: &Inventory) -> Targets {
        let mut t = Targets::default();
        for i in &inventory.instances {
            if let Some(ip) = &i.private_ip {
                t.ips
                    .insert(normalize_dns(ip), (i.id.clone(), IpKind::Private));
            }
            if let Some(ip) = &i.public_ip {
                t.ips
                    .entry(normalize_dns(ip))
                    .or_insert_with(|| (i.id.clone(), IpKind::Public));
            }
        }
        for lb in &inventory.classic_load_balancers {
            t.lbs.insert(
                normalize_dns(&lb.dns_name),
                (lb.name.clone(), LbFlavor::Classic),
            );
        }
        for lb in &inventory.load_balancers {
            t.lbs.insert(
                normalize_dns(&lb.dns_name),
                (lb.arn.clone(), LbFlavor::V2(lb.kind)),
            );
        }
        for db in &inventory.db_instances {
            if let Some(endpoint) = &db.endpoint_address {
                t.dbs.insert(normalize_dns(endpoint), db.id.clone());
            }
        }
        for c in &inventory.db_clusters {
            if let Some(endpoint) = &c.endpoint {
                t.clusters.insert(
                    normalize_dns(endpoint),
                    (c.id.clone(), ClusterEndpoint::Writer),
                );
            }
            if let Some(endpoint) = &c.reader_endpoint {
                t.clusters.insert(
                    normalize_dns(endpoint),
                    (c.id.clone(), ClusterEndpoint::Reader),
                );
            }
        }
        t
    }
}

/// A record's alias target in DR terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DrAlias {
    dns_name: String,
    hosted_zone_id: String,
    evaluate_target_health: bool,
}

/// A record's DR values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DrValues {
    values: Vec<String>,
    alias: Option<DrAlias>,
}

/// What becomes of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Computed {
    /// UPSERT it with these values.
    Upsert(DrValues),
    /// Leave it as it is, for these reasons.
    Unchanged(Vec<String>),
}

/// What becomes of one value.
enum Mapped {
    /// Not a restored resource's address: kept.
    Kept,
    /// Replaced by these.
    To(Vec<String>),
    /// Points at something of the restore that was not restored.
    Missing(String),
}

/// `dr` written in the style of `original`: the `dualstack.` prefix and the trailing dot kept.
fn styled(original: &str, dr: &str) -> String {
    let dualstack = original
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .starts_with("dualstack.");
    let bare = dr.trim_end_matches('.');
    let bare = bare
        .strip_prefix("dualstack.")
        .or_else(|| bare.strip_prefix("DUALSTACK."))
        .unwrap_or(bare);
    let mut out = if dualstack {
        format!("dualstack.{bare}")
    } else {
        bare.to_owned()
    };
    if original.ends_with('.') {
        out.push('.');
    }
    out
}

/// One value of a record in DR terms. Only resources the plan says the record points at
/// (`points_at`) are mapped; other values are kept.
fn map_value(
    value: &str,
    points_at: &BTreeSet<&str>,
    targets: &Targets,
    restored: &Restored<'_>,
) -> Mapped {
    let key = normalize_dns(value);
    if let Some((id, kind)) = targets.ips.get(&key) {
        if !points_at.contains(id.as_str()) {
            return Mapped::Kept;
        }
        let instances = restored.ec2.of(id);
        if instances.is_empty() {
            return Mapped::Missing(format!("instance {id} was not restored"));
        }
        let ips: Vec<String> = instances
            .iter()
            .filter_map(|i| match kind {
                IpKind::Private => i.private_ip.clone(),
                IpKind::Public => i.public_ip.clone(),
            })
            .collect();
        if ips.is_empty() {
            let which = match kind {
                IpKind::Private => "private",
                IpKind::Public => "public",
            };
            return Mapped::Missing(format!("instance {id} was restored without a {which} IP"));
        }
        return Mapped::To(ips);
    }
    if let Some((key, _)) = targets.lbs.get(&key) {
        if !points_at.contains(key.as_str()) {
            return Mapped::Kept;
        }
        return match restored.lbs.load_balancers.get(key) {
            Some(dr) if !dr.dns_name.is_empty() => Mapped::To(vec![styled(value, &dr.dns_name)]),
            _ => Mapped::Missing(format!("load balancer {key} was not recreated")),
        };
    }
    if let Some(id) = targets.dbs.get(&key) {
        if !points_at.contains(id.as_str()) {
            return Mapped::Kept;
        }
        return match restored
            .dbs
            .databases
            .get(id)
            .and_then(|d| d.endpoint_address.as_deref())
        {
            Some(endpoint) => Mapped::To(vec![styled(value, endpoint)]),
            None => Mapped::Missing(format!("database {id} was not restored")),
        };
    }
    if let Some((id, which)) = targets.clusters.get(&key) {
        if !points_at.contains(id.as_str()) {
            return Mapped::Kept;
        }
        let restored = restored.dbs.clusters.get(id);
        let endpoint = restored.and_then(|c| match which {
            ClusterEndpoint::Writer => c.endpoint.as_deref(),
            ClusterEndpoint::Reader => c.reader_endpoint.as_deref(),
        });
        return match (restored, endpoint) {
            (Some(_), Some(endpoint)) => Mapped::To(vec![styled(value, endpoint)]),
            (Some(_), None) => Mapped::Missing(format!(
                "Aurora cluster {id} was restored without a {} endpoint",
                match which {
                    ClusterEndpoint::Writer => "writer",
                    ClusterEndpoint::Reader => "reader",
                }
            )),
            (None, _) => Mapped::Missing(format!("Aurora cluster {id} was not restored")),
        };
    }
    Mapped::Kept
}

/// An alias target in DR terms: `Ok(None)` when it is not a restored load balancer (kept),
/// `Err` when it is one of the restore's load balancers that was not recreated.
fn map_alias(
    alias: &inventory::AliasTarget,
    points_at: &BTreeSet<&str>,
    targets: &Targets,
    restored: &Restored<'_>,
) -> Result<Option<DrAlias>, String> {
    let Some((key, flavor)) = targets.lbs.get(&normalize_dns(&alias.dns_name)) else {
        return Ok(None);
    };
    if !points_at.contains(key.as_str()) {
        return Ok(None);
    }
    let Some(dr) = restored
        .lbs
        .load_balancers
        .get(key)
        .filter(|d| !d.dns_name.is_empty())
    else {
        return Err(format!("load balancer {key} was not recreated"));
    };
    let zone = dr
        .canonical_hosted_zone_id
        .clone()
        .filter(|z| !z.is_empty())
        .or_else(|| {
            let network = match flavor {
                LbFlavor::Classic | LbFlavor::V2(LoadBalancerKind::Application) => false,
                LbFlavor::V2(LoadBalancerKind::Network) => true,
                LbFlavor::V2(LoadBalancerKind::Gateway) => return None,
            };
            elb_zone_id(restored.dr_region, network).map(str::to_owned)
        });
    let Some(hosted_zone_id) = zone else {
        return Err(format!(
            "load balancer {key}: no canonical hosted zone id known in {}",
            restored.dr_region
        ));
    };
    Ok(Some(DrAlias {
        dns_name: styled(&alias.dns_name, &dr.dns_name),
        hosted_zone_id,
        evaluate_target_health: alias.evaluate_target_health,
    }))
}

/// The DR values of `record`, which the plan says points at `points_at` (instance ids, load
/// balancers by classic name or v2 ARN, DB identifiers). See the module doc for the rules.
fn dr_values(
    record: &Record,
    points_at: &BTreeSet<&str>,
    targets: &Targets,
    restored: &Restored<'_>,
) -> Computed {
    if record.set_identifier.is_some() && record.weight.is_none() && record.failover.is_none() {
        return Computed::Unchanged(vec![
            "routing policy other than weighted or failover (not kept by the inventory)".into(),
        ]);
    }
    let mut missing = Vec::new();
    let mut mapped = false;
    let mut values: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |v: String, values: &mut Vec<String>| {
        if seen.insert(normalize_dns(&v)) {
            values.push(v);
        }
    };
    for value in &record.values {
        match map_value(value, points_at, targets, restored) {
            Mapped::Kept => push(value.clone(), &mut values),
            Mapped::To(list) => {
                mapped = true;
                for v in list {
                    push(v, &mut values);
                }
            }
            Mapped::Missing(why) => missing.push(why),
        }
    }
    let alias = match &record.alias {
        None => None,
        Some(a) => match map_alias(a, points_at, targets, restored) {
            Ok(Some(dr)) => {
                mapped = true;
                Some(dr)
            }
            Ok(None) => Some(DrAlias {
                dns_name: a.dns_name.clone(),
                hosted_zone_id: a.hosted_zone_id.clone(),
                evaluate_target_health: a.evaluate_target_health,
            }),
            Err(why) => {
                missing.push(why);
                None
            }
        },
    };
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        Computed::Unchanged(missing)
    } else if !mapped {
        Computed::Unchanged(vec!["no value points at a resource of the restore".into()])
    } else {
        Computed::Upsert(DrValues { values, alias })
    }
}

/// `ResourceRecord` units AWS counts for the UPSERT of `dr` (2 per record, 2 for an alias).
fn units(dr: &DrValues) -> u32 {
    let records = if dr.alias.is_some() {
        1
    } else {
        u32::try_from(dr.values.len().max(1)).unwrap_or(u32::MAX)
    };
    UPSERT_TOKENS.saturating_mul(records)
}

/// `Value` characters AWS counts for the UPSERT of `dr` (each counted twice).
fn value_chars(dr: &DrValues) -> u32 {
    if dr.alias.is_some() {
        return 0;
    }
    let total: usize = dr.values.iter().map(String::len).sum();
    UPSERT_TOKENS.saturating_mul(u32::try_from(total).unwrap_or(u32::MAX))
}

/// The UPSERT of `record` with its DR values.
fn upsert(
    record: &Record,
    name: &str,
    dr: &DrValues,
) -> Result<Change, aws_smithy_types::error::operation::BuildError> {
    let mut set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::from(record.record_type.as_str()))
        .set_set_identifier(record.set_identifier.clone())
        .set_weight(record.weight)
        .set_failover(
            record
                .failover
                .as_deref()
                .map(ResourceRecordSetFailover::from),
        )
        .set_health_check_id(record.health_check_id.clone());
    match &dr.alias {
        Some(a) => {
            set = set.alias_target(
                AliasTarget::builder()
                    .hosted_zone_id(&a.hosted_zone_id)
                    .dns_name(&a.dns_name)
                    .evaluate_target_health(a.evaluate_target_health)
                    .build()?,
            );
        }
        None => {
            set = set.set_ttl(record.ttl);
            for v in &dr.values {
                set = set.resource_records(ResourceRecord::builder().value(v).build()?);
            }
        }
    }
    Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(set.build()?)
        .build()
}

/// A record left as it is, as the step detail lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Unchanged {
    zone: String,
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    set_identifier: Option<String>,
    why: Vec<String>,
}

/// One `ChangeResourceRecordSets` to send.
#[derive(Debug, Clone)]
struct Part {
    /// The journal item key.
    key: String,
    /// The plan's batch index, and the part of it (0 unless the batch had to be split).
    batch: usize,
    part: usize,
    changes: Vec<Change>,
    units: u32,
    chars: u32,
}

impl Part {
    fn tokens(&self) -> u32 {
        UPSERT_TOKENS.saturating_mul(u32::try_from(self.changes.len()).unwrap_or(u32::MAX))
    }
}

/// One zone's work.
#[derive(Debug, Clone)]
struct ZoneWork {
    zone_id: String,
    private: bool,
    associate_vpc: Option<DrRef>,
    parts: Vec<Part>,
}

/// Everything the cutover will send, and what it leaves alone.
#[derive(Debug, Clone, Default)]
struct Prepared {
    zones: Vec<ZoneWork>,
    /// Records to UPSERT.
    records: usize,
    unchanged: Vec<Unchanged>,
}

/// Same record name: no case, no trailing dot.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Computes every planned record's UPSERT and cuts the plan's batches into parts within
/// `max_units` resource-record units and [`MAX_VALUE_CHARS`] characters.
fn prepare(
    inventory: &Inventory,
    plan: &DnsPlan,
    restored: &Restored<'_>,
    max_units: u32,
    drill: Option<&DrillZone>,
) -> Prepared {
    let targets = Targets::from_inventory(inventory);
    let mut out = Prepared::default();
    for zone in &plan.zones {
        let inv_zone = inventory.hosted_zones.iter().find(|z| z.id == zone.zone_id);
        let mut work = ZoneWork {
            zone_id: zone.zone_id.clone(),
            private: zone.private,
            associate_vpc: zone.associate_vpc.clone(),
            parts: Vec::new(),
        };
        for (batch_index, batch) in zone.batches.iter().enumerate() {
            let mut parts: Vec<Part> = Vec::new();
            for change in &batch.records {
                let unchanged = |why: Vec<String>| Unchanged {
                    zone: zone.zone_id.clone(),
                    name: change.name.clone(),
                    record_type: change.record_type.clone(),
                    set_identifier: change.set_identifier.clone(),
                    why,
                };
                let record = inv_zone.and_then(|z| {
                    z.records.iter().find(|r| {
                        same_name(&r.name, &change.name)
                            && r.record_type.eq_ignore_ascii_case(&change.record_type)
                            && r.set_identifier == change.set_identifier
                    })
                });
                let Some(record) = record else {
                    out.unchanged
                        .push(unchanged(vec!["not in the inventory".into()]));
                    continue;
                };
                let points_at: BTreeSet<&str> =
                    change.points_at.iter().map(String::as_str).collect();
                let mut dr = match dr_values(record, &points_at, &targets, restored) {
                    Computed::Upsert(dr) => dr,
                    Computed::Unchanged(why) => {
                        out.unchanged.push(unchanged(why));
                        continue;
                    }
                };
                let name = match drill {
                    Some(d) => {
                        // A record aliasing another record of its zone aliases the drill copy.
                        if let Some(a) = dr.alias.as_mut()
                            && bare_zone_id(&a.hosted_zone_id) == bare_zone_id(&zone.zone_id)
                        {
                            a.hosted_zone_id.clone_from(&d.zone_id);
                            a.dns_name = d.name_of(&a.dns_name);
                        }
                        d.name_of(&record.name)
                    }
                    None => record.name.clone(),
                };
                let upsert = match upsert(record, &name, &dr) {
                    Ok(c) => c,
                    Err(e) => {
                        out.unchanged
                            .push(unchanged(vec![format!("cannot be written: {e}")]));
                        continue;
                    }
                };
                let (u, c) = (units(&dr), value_chars(&dr));
                let fits = parts.last().is_some_and(|p| {
                    p.units.saturating_add(u) <= max_units
                        && p.chars.saturating_add(c) <= MAX_VALUE_CHARS
                });
                if !fits {
                    let part = parts.len();
                    let key = if part == 0 {
                        format!("dns/{}/{batch_index}", zone.zone_id)
                    } else {
                        format!("dns/{}/{batch_index}.{part}", zone.zone_id)
                    };
                    parts.push(Part {
                        key,
                        batch: batch_index,
                        part,
                        changes: Vec::new(),
                        units: 0,
                        chars: 0,
                    });
                }
                if let Some(p) = parts.last_mut() {
                    p.changes.push(upsert);
                    p.units = p.units.saturating_add(u);
                    p.chars = p.chars.saturating_add(c);
                    out.records += 1;
                }
            }
            work.parts.extend(parts);
        }
        out.zones.push(work);
    }
    if let Some(d) = drill {
        // Every zone's records go to the one drill zone, one batch at a time (its parts keep
        // their keys, which name the production zone they come from).
        let parts = out.zones.drain(..).flat_map(|z| z.parts).collect();
        out.zones.push(ZoneWork {
            zone_id: d.zone_id.clone(),
            private: false,
            associate_vpc: None,
            parts,
        });
    }
    out
}

/// A zone id without the `/hostedzone/` prefix.
fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// A drill's private hosted zone (D12): where a drill writes its records, as
/// `<record name>.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillZone {
    pub zone_id: String,
    /// The domain, with its trailing dot.
    pub domain: String,
}

impl DrillZone {
    /// `www.example.com.` → `www.example.com.drill.example.internal.`
    pub fn name_of(&self, name: &str) -> String {
        format!("{}.{}", name.trim_end_matches('.'), self.domain)
    }
}

/// The drill's hosted zone: found (by the run's caller reference) or created private in the DR
/// VPCs of the drill's launches, and tagged for the run. Journalled as `dns-drill-zone`.
async fn ensure_drill_zone(ctx: &RunCtx, domain: &str) -> Result<DrillZone, ReconcileError> {
    const KEY: &str = "dns-drill-zone";
    let domain = format!("{}.", domain.trim_end_matches('.'));
    let caller_reference = format!("pilotlight-drill-{}", ctx.run_id);
    if let Some(item) = ctx.journal.item(KEY).await?
        && item.state == ItemState::Done
        && let Some(id) = item.dr_id
    {
        return Ok(DrillZone {
            zone_id: id,
            domain,
        });
    }
    let vpcs = drill_vpcs(ctx).await?;
    let Some((first, others)) = vpcs.split_first() else {
        return Err(ReconcileError::Unexpected {
            operation: "CreateHostedZone",
            detail: "the drill launched no instance in a known DR subnet: no VPC for its DNS zone"
                .into(),
        });
    };
    let item = ctx
        .journal
        .request(
            ItemRef {
                key: KEY,
                step_id: STEP,
                kind: "dns_drill_zone",
                primary_id: &domain,
            },
            Some(&caller_reference),
            &json!({"domain": domain, "vpcs": vpcs}),
        )
        .await?;
    let zone_id = match find_zone(ctx, &caller_reference).await? {
        Some(id) => id,
        None => {
            let region = dr_region(ctx);
            let out = retrying(ctx, || {
                ctx.aws.route53.create_hosted_zone(|b| {
                    b.name(&domain)
                        .caller_reference(&caller_reference)
                        .vpc(
                            Vpc::builder()
                                .vpc_id(first)
                                .vpc_region(VpcRegion::from(region.as_str()))
                                .build(),
                        )
                        .hosted_zone_config(
                            aws_sdk_route53::types::HostedZoneConfig::builder()
                                .private_zone(true)
                                .comment(format!("pilotlight drill {}", ctx.run_id))
                                .build(),
                        )
                })
            })
            .await?;
            out.hosted_zone()
                .map(|z| bare_zone_id(z.id()).to_owned())
                .ok_or(ReconcileError::Unexpected {
                    operation: "CreateHostedZone",
                    detail: "no hosted zone in the answer".into(),
                })?
        }
    };
    let tags: Vec<aws_sdk_route53::types::Tag> = ctx
        .tags("drill-zone")
        .into_iter()
        .map(|(k, v)| {
            aws_sdk_route53::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect();
    retrying(ctx, || {
        ctx.aws.route53.change_tags_for_resource(|b| {
            b.resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
                .resource_id(&zone_id)
                .set_add_tags(Some(tags.clone()))
        })
    })
    .await?;
    let region = dr_region(ctx);
    for vpc in others {
        let associated = retrying(ctx, || {
            ctx.aws.route53.associate_vpc_with_hosted_zone(|b| {
                b.hosted_zone_id(&zone_id).vpc(
                    Vpc::builder()
                        .vpc_id(vpc)
                        .vpc_region(VpcRegion::from(region.as_str()))
                        .build(),
                )
            })
        })
        .await;
        match associated {
            Ok(_) => {}
            // Associated by an earlier execution.
            Err(ReconcileError::Aws(e))
                if e.kind == ErrorKind::AlreadyExists || e.code == "ConflictingDomainExists" => {}
            Err(e) => return Err(e),
        }
    }
    ctx.journal
        .done(&item, &zone_id, &json!({"domain": domain, "vpcs": vpcs}))
        .await?;
    Ok(DrillZone { zone_id, domain })
}

/// The hosted zone created with `caller_reference`, if any.
async fn find_zone(ctx: &RunCtx, caller_reference: &str) -> Result<Option<String>, ReconcileError> {
    let mut marker: Option<String> = None;
    loop {
        let page = retrying(ctx, || {
            let marker = marker.clone();
            ctx.aws.route53.list_hosted_zones(|b| {
                b.set_marker(marker)
                    .max_items(pilotlight_aws::route53::ZONES_PAGE)
            })
        })
        .await?;
        if let Some(z) = page
            .hosted_zones()
            .iter()
            .find(|z| z.caller_reference() == caller_reference)
        {
            return Ok(Some(bare_zone_id(z.id()).to_owned()));
        }
        marker = page
            .next_marker()
            .filter(|m| !m.is_empty() && page.is_truncated())
            .map(str::to_owned);
        if marker.is_none() {
            return Ok(None);
        }
    }
}

/// The DR VPCs of the drill's launches (their subnets', by `DescribeSubnets`), sorted.
async fn drill_vpcs(ctx: &RunCtx) -> Result<Vec<String>, ReconcileError> {
    let subnets: BTreeSet<String> = ctx
        .plan
        .restore
        .tiers
        .iter()
        .flat_map(|t| t.groups.iter())
        .filter_map(|g| {
            g.spec
                .subnet
                .as_ref()
                .and_then(|s| s.dr_id())
                .map(str::to_owned)
        })
        .collect();
    if subnets.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = subnets.into_iter().collect();
    let mut vpcs = BTreeSet::new();
    for chunk in ids.chunks(200) {
        let out = retrying(ctx, || {
            ctx.aws
                .ec2
                .describe_subnets(|b| b.set_subnet_ids(Some(chunk.to_vec())))
        })
        .await?;
        vpcs.extend(
            out.subnets()
                .iter()
                .filter_map(|s| s.vpc_id().map(str::to_owned)),
        );
    }
    Ok(vpcs.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Applying it.
// ---------------------------------------------------------------------------------------------

/// What one zone did.
#[derive(Debug, Clone, Copy, Default)]
struct ZoneReport {
    sent: u64,
    reused: u64,
    failed_batches: u64,
    records: u64,
    associations: u64,
    failed_associations: u64,
    no_vpc: u64,
}

impl ZoneReport {
    fn add(&mut self, o: &ZoneReport) {
        self.sent += o.sent;
        self.reused += o.reused;
        self.failed_batches += o.failed_batches;
        self.records += o.records;
        self.associations += o.associations;
        self.failed_associations += o.failed_associations;
        self.no_vpc += o.no_vpc;
    }
}

/// The change id without the `/change/` prefix AWS writes.
fn bare_change_id(id: &str) -> &str {
    id.trim_start_matches("/change/")
        .trim_start_matches("change/")
}

/// An AWS refusal that will not change on retry: the item fails, the rest goes on.
fn permanent(e: &ReconcileError) -> Option<&AwsError> {
    match e {
        ReconcileError::Aws(a) if !a.kind.is_retryable() => Some(a),
        _ => None,
    }
}

fn describe(e: &AwsError) -> String {
    match &e.message {
        Some(m) => format!("{} {}: {m}", e.operation, e.code),
        None => format!("{} {}", e.operation, e.code),
    }
}

/// Associates the zone (if private), then applies its parts one after another.
async fn apply_zone(ctx: &RunCtx, zone: &ZoneWork) -> Result<ZoneReport, ReconcileError> {
    let mut report = ZoneReport::default();
    if zone.private {
        match &zone.associate_vpc {
            Some(vpc) => {
                if associate(ctx, &zone.zone_id, vpc).await? {
                    report.associations += 1;
                } else {
                    report.failed_associations += 1;
                }
            }
            None => report.no_vpc += 1,
        }
    }
    for part in &zone.parts {
        let records = part.changes.len() as u64;
        match apply_part(ctx, &zone.zone_id, part).await? {
            PartOutcome::Sent => {
                report.sent += 1;
                report.records += records;
            }
            PartOutcome::Reused => {
                report.reused += 1;
                report.records += records;
            }
            PartOutcome::Failed => report.failed_batches += 1,
        }
    }
    Ok(report)
}

/// Makes the private zone answer in its DR VPC. `Ok(false)` when it cannot be (failed item).
async fn associate(ctx: &RunCtx, zone_id: &str, vpc: &DrRef) -> Result<bool, ReconcileError> {
    let key = format!("dns-assoc/{zone_id}");
    let item_ref = ItemRef {
        key: &key,
        step_id: STEP,
        kind: "dns_vpc_association",
        primary_id: zone_id,
    };
    let existing = ctx.journal.item(&key).await?;
    match existing.as_ref().map(|i| i.state) {
        Some(ItemState::Done) => return Ok(true),
        Some(ItemState::Failed) => return Ok(false),
        _ => {}
    }
    let vpc_id = match vpc {
        DrRef::Dr(id) => id.clone(),
        DrRef::Missing(primary) => {
            ctx.journal
                .fail(
                    item_ref,
                    &format!("the zone's VPC {primary} has no DR counterpart"),
                    &json!({"zone": zone_id, "primary_vpc": primary}),
                )
                .await?;
            return Ok(false);
        }
    };
    let region = dr_region(ctx);
    let done_detail =
        |how: &str| json!({"zone": zone_id, "vpc": vpc_id, "region": region, "how": how});

    // A requested association may have gone through before a crash: look first.
    if let Some(item) = existing
        .as_ref()
        .filter(|i| i.state == ItemState::Requested)
    {
        let zone = retrying(ctx, || async {
            ctx.aws.route53.get_hosted_zone(|b| b.id(zone_id)).await
        })
        .await?;
        if zone
            .vpcs()
            .iter()
            .any(|v| v.vpc_id() == Some(vpc_id.as_str()))
        {
            ctx.journal
                .done(item, &vpc_id, &done_detail("found associated"))
                .await?;
            return Ok(true);
        }
    }

    ctx.check_stop()?;
    let item = ctx
        .journal
        .request(item_ref, None, &json!({"zone": zone_id, "vpc": vpc_id}))
        .await?;
    let target = Vpc::builder()
        .vpc_id(&vpc_id)
        .vpc_region(VpcRegion::from(region.as_str()))
        .build();
    let result = retrying(ctx, || async {
        ctx.aws
            .route53
            .associate_vpc_with_hosted_zone(|b| {
                b.hosted_zone_id(zone_id)
                    .vpc(target.clone())
                    .comment(format!("pilotlight restore {}", ctx.run_id))
            })
            .await
    })
    .await;
    match result {
        Ok(_) => {
            ctx.journal
                .done(&item, &vpc_id, &done_detail("associated"))
                .await?;
            Ok(true)
        }
        Err(ReconcileError::Aws(e))
            if e.code == "ConflictingDomainExists" || e.kind == ErrorKind::AlreadyExists =>
        {
            ctx.journal
                .done(&item, &vpc_id, &done_detail("already associated"))
                .await?;
            Ok(true)
        }
        Err(e) => match permanent(&e) {
            Some(aws) => {
                tracing::warn!(run = %ctx.run_id, zone = zone_id, vpc = %vpc_id, error.code = %aws.code, "cannot associate the DR VPC with the private zone");
                ctx.journal
                    .fail(
                        item_ref,
                        &describe(aws),
                        &json!({"zone": zone_id, "vpc": vpc_id}),
                    )
                    .await?;
                Ok(false)
            }
            None => Err(e),
        },
    }
}

/// How one part ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartOutcome {
    Sent,
    /// Done by an earlier execution (waited for `INSYNC` if it had not been seen in sync).
    Reused,
    Failed,
}

/// Sends one part (unless an earlier execution did) and waits until it is `INSYNC`.
async fn apply_part(
    ctx: &RunCtx,
    zone_id: &str,
    part: &Part,
) -> Result<PartOutcome, ReconcileError> {
    let base = json!({
        "zone": zone_id,
        "batch": part.batch,
        "part": part.part,
        "records": part.changes.len(),
    });
    let with = |change_id: &str, insync: bool| {
        let mut d = base.clone();
        if let Value::Object(m) = &mut d {
            m.insert("change_id".into(), json!(change_id));
            m.insert("insync".into(), json!(insync));
        }
        d
    };

    if let Some(item) = ctx.journal.item(&part.key).await? {
        match item.state {
            ItemState::Failed => return Ok(PartOutcome::Failed),
            ItemState::Done => {
                let d = detail(&item);
                if d.get("insync").and_then(Value::as_bool) == Some(true) {
                    return Ok(PartOutcome::Reused);
                }
                let change_id = item.dr_id.clone().or_else(|| {
                    d.get("change_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                if let Some(change_id) = change_id {
                    wait_insync(ctx, &change_id).await?;
                    ctx.journal
                        .done(&item, &change_id, &with(&change_id, true))
                        .await?;
                    return Ok(PartOutcome::Reused);
                }
                // Done without a change id: send again (UPSERTs are idempotent).
            }
            // Requested (the outcome is unknown) or pending: UPSERTs are idempotent, send again.
            _ => {}
        }
    }

    ctx.check_stop()?;
    let item_ref = ItemRef {
        key: &part.key,
        step_id: STEP,
        kind: "dns_batch",
        primary_id: zone_id,
    };
    let batch = ChangeBatch::builder()
        .set_changes(Some(part.changes.clone()))
        .comment(format!(
            "pilotlight restore {} batch {}.{}",
            ctx.run_id, part.batch, part.part
        ))
        .build()
        .map_err(|e| ReconcileError::Unexpected {
            operation: "ChangeResourceRecordSets",
            detail: format!("change batch cannot be built: {e}"),
        })?;
    let tokens = part.tokens();
    let item = ctx.journal.request(item_ref, None, &base).await?;
    let result = retrying(ctx, || async {
        ctx.aws
            .route53
            .change_resource_record_sets(tokens, |b| {
                b.hosted_zone_id(zone_id).change_batch(batch.clone())
            })
            .await
    })
    .await;
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            return match permanent(&e) {
                Some(aws) => {
                    tracing::warn!(run = %ctx.run_id, zone = zone_id, item = %part.key, error.code = %aws.code, "Route 53 refused a record batch");
                    ctx.journal.fail(item_ref, &describe(aws), &base).await?;
                    Ok(PartOutcome::Failed)
                }
                None => Err(e),
            };
        }
    };
    let Some(info) = out.change_info() else {
        return Err(ReconcileError::Unexpected {
            operation: "ChangeResourceRecordSets",
            detail: "no ChangeInfo in the answer".into(),
        });
    };
    let change_id = bare_change_id(info.id()).to_owned();
    let insync = *info.status() == ChangeStatus::Insync;
    let item = ctx
        .journal
        .done(&item, &change_id, &with(&change_id, insync))
        .await?;
    if !insync {
        wait_insync(ctx, &change_id).await?;
        ctx.journal
            .done(&item, &change_id, &with(&change_id, true))
            .await?;
    }
    Ok(PartOutcome::Sent)
}

/// Polls `GetChange` every poll interval until the change is `INSYNC`.
///
/// # Errors
/// Cancelled; AWS errors; [`ReconcileError::Unexpected`] when the change is still pending ten
/// times `restore.dns_sync_secs` (at least ten minutes) later — a later execution polls again.
async fn wait_insync(ctx: &RunCtx, change_id: &str) -> Result<(), ReconcileError> {
    let limit = Duration::from_secs(ctx.settings.dns_sync_secs.max(60).saturating_mul(10));
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        ctx.pause().await?;
        let answer = retrying(ctx, || async {
            ctx.aws.route53.get_change(|b| b.id(change_id)).await
        })
        .await;
        match answer {
            Ok(out) => {
                if out
                    .change_info()
                    .is_some_and(|i| *i.status() == ChangeStatus::Insync)
                {
                    return Ok(());
                }
            }
            // Route 53 forgets changes long in sync.
            Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ReconcileError::Unexpected {
                operation: "GetChange",
                detail: format!("change {change_id} not INSYNC after {} s", limit.as_secs()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::{DrCluster, DrDatabase, DrLoadBalancer, RestoredInstance};
    use pilotlight_core::inventory::{
        AliasTarget as InvAlias, ClassicLoadBalancer, DbCluster, DbInstance, HostedZone, Instance,
        LoadBalancer,
    };
    use pilotlight_core::plan::{DnsBatch, RecordChange, ZoneChanges};

    fn instance(id: &str, private: &str, public: Option<&str>) -> Instance {
        Instance {
            id: id.into(),
            private_ip: Some(private.into()),
            public_ip: public.map(Into::into),
            ..Instance::default()
        }
    }

    fn restored(id: &str, private: &str, public: Option<&str>) -> RestoredInstance {
        RestoredInstance {
            instance_id: id.into(),
            instance_type: "m5.large".into(),
            availability_zone: "us-west-2a".into(),
            private_ip: Some(private.into()),
            public_ip: public.map(Into::into),
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            primary_region: "us-east-1".into(),
            dr_region: "us-west-2".into(),
            instances: vec![
                instance("i-web1", "10.0.1.10", Some("54.0.0.10")),
                instance("i-web2", "10.0.1.11", None),
                instance("i-big", "10.0.1.20", None),
            ],
            classic_load_balancers: vec![ClassicLoadBalancer {
                name: "legacy".into(),
                dns_name: "legacy-123.us-east-1.elb.amazonaws.com".into(),
                ..ClassicLoadBalancer::default()
            }],
            load_balancers: vec![
                LoadBalancer {
                    arn: "arn:alb/web".into(),
                    name: "web".into(),
                    kind: LoadBalancerKind::Application,
                    dns_name: "web-1.us-east-1.elb.amazonaws.com".into(),
                    canonical_hosted_zone_id: Some("Z35SXDOTRQ7X7K".into()),
                    ..LoadBalancer::default()
                },
                LoadBalancer {
                    arn: "arn:nlb/tcp".into(),
                    name: "tcp".into(),
                    kind: LoadBalancerKind::Network,
                    dns_name: "tcp-1.elb.us-east-1.amazonaws.com".into(),
                    ..LoadBalancer::default()
                },
            ],
            db_instances: vec![
                DbInstance {
                    id: "app-db".into(),
                    endpoint_address: Some("app-db.aaaa.us-east-1.rds.amazonaws.com".into()),
                    ..DbInstance::default()
                },
                DbInstance {
                    id: "ledger-1".into(),
                    endpoint_address: Some("ledger-1.aaaa.us-east-1.rds.amazonaws.com".into()),
                    cluster_id: Some("ledger".into()),
                    ..DbInstance::default()
                },
            ],
            db_clusters: vec![DbCluster {
                id: "ledger".into(),
                endpoint: Some("ledger.cluster-aaaa.us-east-1.rds.amazonaws.com".into()),
                reader_endpoint: Some("ledger.cluster-ro-aaaa.us-east-1.rds.amazonaws.com".into()),
                ..DbCluster::default()
            }],
            ..Inventory::default()
        }
    }

    struct Outcomes {
        ec2: Ec2Outcome,
        lbs: LbOutcome,
        dbs: RdsOutcome,
    }

    fn outcomes() -> Outcomes {
        let mut ec2 = Ec2Outcome::default();
        ec2.instances.insert(
            "i-web1".into(),
            vec![restored("i-dr1", "10.1.1.10", Some("35.0.0.10"))],
        );
        ec2.instances
            .insert("i-web2".into(), vec![restored("i-dr2", "10.1.1.11", None)]);
        // Plan B: r5.2xlarge × 1 → r5.xlarge × 2.
        ec2.instances.insert(
            "i-big".into(),
            vec![
                restored("i-dr3", "10.1.1.20", None),
                restored("i-dr4", "10.1.1.21", None),
            ],
        );
        let mut lbs = LbOutcome::default();
        lbs.load_balancers.insert(
            "legacy".into(),
            DrLoadBalancer {
                id: "legacy".into(),
                name: "legacy".into(),
                dns_name: "legacy.us-west-2.elb.amazonaws.com".into(),
                canonical_hosted_zone_id: None,
            },
        );
        lbs.load_balancers.insert(
            "arn:alb/web".into(),
            DrLoadBalancer {
                id: "arn:dr-alb/web".into(),
                name: "web".into(),
                dns_name: "web-1.us-west-2.elb.amazonaws.com".into(),
                canonical_hosted_zone_id: Some("Z1H1FL5HABSF5".into()),
            },
        );
        lbs.load_balancers.insert(
            "arn:nlb/tcp".into(),
            DrLoadBalancer {
                id: "arn:dr-nlb/tcp".into(),
                name: "tcp".into(),
                dns_name: "tcp-1.elb.us-west-2.amazonaws.com".into(),
                canonical_hosted_zone_id: None,
            },
        );
        let mut dbs = RdsOutcome::default();
        dbs.databases.insert(
            "app-db".into(),
            DrDatabase {
                identifier: "app-db".into(),
                class: "db.r5.large".into(),
                endpoint_address: Some("app-db.bbbb.us-west-2.rds.amazonaws.com".into()),
                endpoint_port: Some(5432),
            },
        );
        dbs.databases.insert(
            "ledger-1".into(),
            DrDatabase {
                identifier: "ledger-1".into(),
                class: "db.r6g.large".into(),
                endpoint_address: Some("ledger-1.bbbb.us-west-2.rds.amazonaws.com".into()),
                endpoint_port: Some(5432),
            },
        );
        dbs.clusters.insert(
            "ledger".into(),
            DrCluster {
                identifier: "ledger".into(),
                endpoint: Some("ledger.cluster-bbbb.us-west-2.rds.amazonaws.com".into()),
                reader_endpoint: Some("ledger.cluster-ro-bbbb.us-west-2.rds.amazonaws.com".into()),
                port: Some(5432),
            },
        );
        Outcomes { ec2, lbs, dbs }
    }

    fn view(o: &Outcomes) -> Restored<'_> {
        Restored {
            ec2: &o.ec2,
            lbs: &o.lbs,
            dbs: &o.dbs,
            dr_region: "us-west-2",
        }
    }

    fn record(name: &str, ty: &str, values: &[&str]) -> Record {
        Record {
            name: name.into(),
            record_type: ty.into(),
            ttl: Some(60),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            ..Record::default()
        }
    }

    fn alias(name: &str, target: &str, zone: &str) -> Record {
        Record {
            name: name.into(),
            record_type: "A".into(),
            alias: Some(InvAlias {
                dns_name: target.into(),
                hosted_zone_id: zone.into(),
                evaluate_target_health: true,
            }),
            ..Record::default()
        }
    }

    fn compute(r: &Record, points_at: &[&str], o: &Outcomes) -> Computed {
        let targets = Targets::from_inventory(&inventory());
        let points: BTreeSet<&str> = points_at.iter().copied().collect();
        dr_values(r, &points, &targets, &view(o))
    }

    fn upsert_values(c: Computed) -> DrValues {
        match c {
            Computed::Upsert(v) => v,
            Computed::Unchanged(why) => panic!("left unchanged: {why:?}"),
        }
    }

    #[test]
    fn private_and_public_ips_map_to_the_same_kind() {
        let o = outcomes();
        let v = upsert_values(compute(
            &record("web.example.com.", "A", &["10.0.1.10", "10.0.1.11"]),
            &["i-web1", "i-web2"],
            &o,
        ));
        assert_eq!(v.values, ["10.1.1.10", "10.1.1.11"]);
        assert!(v.alias.is_none());

        let v = upsert_values(compute(
            &record("pub.example.com.", "A", &["54.0.0.10"]),
            &["i-web1"],
            &o,
        ));
        assert_eq!(v.values, ["35.0.0.10"]);
    }

    #[test]
    fn fan_out_gives_every_dr_instance_and_fan_in_is_deduplicated() {
        let mut o = outcomes();
        let v = upsert_values(compute(
            &record("big.example.com.", "A", &["10.0.1.20"]),
            &["i-big"],
            &o,
        ));
        assert_eq!(v.values, ["10.1.1.20", "10.1.1.21"]);

        // Fan-in: two primaries share one DR instance → one value, not two.
        let shared = vec![restored("i-dr9", "10.1.1.99", None)];
        o.ec2.instances.insert("i-web1".into(), shared.clone());
        o.ec2.instances.insert("i-web2".into(), shared);
        let v = upsert_values(compute(
            &record("web.example.com.", "A", &["10.0.1.10", "10.0.1.11"]),
            &["i-web1", "i-web2"],
            &o,
        ));
        assert_eq!(v.values, ["10.1.1.99"]);
    }

    #[test]
    fn outside_values_are_kept_and_records_of_unrestored_targets_left_unchanged() {
        let mut o = outcomes();
        let v = upsert_values(compute(
            &record("mixed.example.com.", "A", &["10.0.1.10", "203.0.113.7"]),
            &["i-web1"],
            &o,
        ));
        assert_eq!(v.values, ["10.1.1.10", "203.0.113.7"]);

        // A primary of the estate outside the plan's targets for this record is kept as well.
        let v = upsert_values(compute(
            &record("mixed.example.com.", "A", &["10.0.1.10", "10.0.1.11"]),
            &["i-web1"],
            &o,
        ));
        assert_eq!(v.values, ["10.1.1.10", "10.0.1.11"]);

        o.ec2.instances.remove("i-web2");
        let c = compute(
            &record("web.example.com.", "A", &["10.0.1.10", "10.0.1.11"]),
            &["i-web1", "i-web2"],
            &o,
        );
        assert_eq!(
            c,
            Computed::Unchanged(vec!["instance i-web2 was not restored".into()])
        );

        // A public record whose DR instance got no public IP.
        let c = compute(
            &record("pub.example.com.", "A", &["54.0.0.10"]),
            &["i-web1"],
            &{
                let mut o = outcomes();
                o.ec2
                    .instances
                    .insert("i-web1".into(), vec![restored("i-dr1", "10.1.1.10", None)]);
                o
            },
        );
        assert!(matches!(c, Computed::Unchanged(why) if why[0].contains("public IP")));

        let c = compute(&record("txt.example.com.", "TXT", &["\"hello\""]), &[], &o);
        assert!(matches!(c, Computed::Unchanged(_)));
    }

    #[test]
    fn load_balancer_cnames_follow_case_dot_and_dualstack() {
        let o = outcomes();
        let v = upsert_values(compute(
            &record(
                "legacy.example.com.",
                "CNAME",
                &["Legacy-123.US-East-1.elb.amazonaws.com."],
            ),
            &["legacy"],
            &o,
        ));
        assert_eq!(v.values, ["legacy.us-west-2.elb.amazonaws.com."]);

        let v = upsert_values(compute(
            &record(
                "www.example.com.",
                "CNAME",
                &["dualstack.web-1.us-east-1.elb.amazonaws.com"],
            ),
            &["arn:alb/web"],
            &o,
        ));
        assert_eq!(v.values, ["dualstack.web-1.us-west-2.elb.amazonaws.com"]);
    }

    #[test]
    fn aliases_take_the_dr_load_balancer_and_its_zone() {
        let o = outcomes();
        // v2 with a canonical zone id.
        let v = upsert_values(compute(
            &alias(
                "www.example.com.",
                "dualstack.web-1.us-east-1.elb.amazonaws.com.",
                "Z35SXDOTRQ7X7K",
            ),
            &["arn:alb/web"],
            &o,
        ));
        let a = v.alias.expect("alias");
        assert_eq!(a.dns_name, "dualstack.web-1.us-west-2.elb.amazonaws.com.");
        assert_eq!(a.hosted_zone_id, "Z1H1FL5HABSF5");
        assert!(a.evaluate_target_health);
        assert!(v.values.is_empty());

        // Classic without one: the documented ELB zone of the DR region.
        let v = upsert_values(compute(
            &alias(
                "legacy.example.com.",
                "legacy-123.us-east-1.elb.amazonaws.com",
                "Z35SXDOTRQ7X7K",
            ),
            &["legacy"],
            &o,
        ));
        assert_eq!(v.alias.expect("alias").hosted_zone_id, "Z1H1FL5HABSF5");

        // Network without one: the NLB column.
        let v = upsert_values(compute(
            &alias(
                "tcp.example.com.",
                "tcp-1.elb.us-east-1.amazonaws.com",
                "Z26RNL4JYFTOTI",
            ),
            &["arn:nlb/tcp"],
            &o,
        ));
        assert_eq!(v.alias.expect("alias").hosted_zone_id, "Z18D5FSROUN65G");

        // Unknown DR region and no canonical id: unchanged, with the reason.
        let mut view = view(&o);
        view.dr_region = "xx-nowhere-1";
        let targets = Targets::from_inventory(&inventory());
        let c = dr_values(
            &alias(
                "legacy.example.com.",
                "legacy-123.us-east-1.elb.amazonaws.com",
                "Z35SXDOTRQ7X7K",
            ),
            &BTreeSet::from(["legacy"]),
            &targets,
            &view,
        );
        assert!(matches!(c, Computed::Unchanged(why) if why[0].contains("hosted zone id")));

        // Not recreated.
        let mut o = outcomes();
        o.lbs.load_balancers.remove("arn:alb/web");
        let c = compute(
            &alias(
                "www.example.com.",
                "web-1.us-east-1.elb.amazonaws.com",
                "Z35SXDOTRQ7X7K",
            ),
            &["arn:alb/web"],
            &o,
        );
        assert_eq!(
            c,
            Computed::Unchanged(vec!["load balancer arn:alb/web was not recreated".into()])
        );
    }

    #[test]
    fn rds_cnames_take_the_restored_endpoint() {
        let mut o = outcomes();
        let v = upsert_values(compute(
            &record(
                "db.example.com.",
                "CNAME",
                &["app-db.aaaa.us-east-1.rds.amazonaws.com"],
            ),
            &["app-db"],
            &o,
        ));
        assert_eq!(v.values, ["app-db.bbbb.us-west-2.rds.amazonaws.com"]);

        o.dbs.databases.clear();
        let c = compute(
            &record(
                "db.example.com.",
                "CNAME",
                &["app-db.aaaa.us-east-1.rds.amazonaws.com"],
            ),
            &["app-db"],
            &o,
        );
        assert_eq!(
            c,
            Computed::Unchanged(vec!["database app-db was not restored".into()])
        );
    }

    #[test]
    fn aurora_cnames_take_the_restored_cluster_and_member_endpoints() {
        let mut o = outcomes();
        let cname = |name: &str, target: &str| record(name, "CNAME", &[target]);
        let writer = cname(
            "ledger.example.com.",
            "LEDGER.cluster-aaaa.us-east-1.rds.amazonaws.com.",
        );
        let v = upsert_values(compute(&writer, &["ledger"], &o));
        // The primary's style (trailing dot) is kept; case follows the DR answer.
        assert_eq!(
            v.values,
            ["ledger.cluster-bbbb.us-west-2.rds.amazonaws.com."]
        );
        let reader = cname(
            "ledger-ro.example.com.",
            "ledger.cluster-ro-aaaa.us-east-1.rds.amazonaws.com",
        );
        let v = upsert_values(compute(&reader, &["ledger"], &o));
        assert_eq!(
            v.values,
            ["ledger.cluster-ro-bbbb.us-west-2.rds.amazonaws.com"]
        );
        let member = cname(
            "ledger-1.example.com.",
            "ledger-1.aaaa.us-east-1.rds.amazonaws.com",
        );
        let v = upsert_values(compute(&member, &["ledger-1"], &o));
        assert_eq!(v.values, ["ledger-1.bbbb.us-west-2.rds.amazonaws.com"]);
        // Not in the plan's points_at: nothing to change.
        assert_eq!(
            compute(&writer, &[], &o),
            Computed::Unchanged(vec!["no value points at a resource of the restore".into()])
        );

        // A cluster restored without a reader endpoint, then not restored at all.
        if let Some(c) = o.dbs.clusters.get_mut("ledger") {
            c.reader_endpoint = None;
        }
        assert_eq!(
            compute(&reader, &["ledger"], &o),
            Computed::Unchanged(vec![
                "Aurora cluster ledger was restored without a reader endpoint".into()
            ])
        );
        o.dbs.clusters.clear();
        assert_eq!(
            compute(&writer, &["ledger"], &o),
            Computed::Unchanged(vec!["Aurora cluster ledger was not restored".into()])
        );
    }

    #[test]
    fn routing_fields_are_kept_and_unkept_policies_refused() {
        let o = outcomes();
        let mut r = record("w.example.com.", "A", &["10.0.1.10"]);
        r.set_identifier = Some("east".into());
        r.weight = Some(70);
        r.health_check_id = Some("hc-1".into());
        let dr = upsert_values(compute(&r, &["i-web1"], &o));
        let change = upsert(&r, &r.name, &dr).expect("builds");
        assert_eq!(*change.action(), ChangeAction::Upsert);
        let set = change.resource_record_set().expect("set");
        assert_eq!(set.name(), "w.example.com.");
        assert_eq!(*set.r#type(), RrType::A);
        assert_eq!(set.set_identifier(), Some("east"));
        assert_eq!(set.weight(), Some(70));
        assert_eq!(set.health_check_id(), Some("hc-1"));
        assert_eq!(set.ttl(), Some(60));
        let values: Vec<&str> = set.resource_records().iter().map(|v| v.value()).collect();
        assert_eq!(values, ["10.1.1.10"]);

        let mut f = alias(
            "f.example.com.",
            "web-1.us-east-1.elb.amazonaws.com",
            "Z35SXDOTRQ7X7K",
        );
        f.set_identifier = Some("primary".into());
        f.failover = Some("PRIMARY".into());
        let dr = upsert_values(compute(&f, &["arn:alb/web"], &o));
        let change = upsert(&f, &f.name, &dr).expect("builds");
        let set = change.resource_record_set().expect("set");
        assert_eq!(set.failover(), Some(&ResourceRecordSetFailover::Primary));
        assert_eq!(set.ttl(), None, "alias records carry no TTL");
        assert_eq!(
            set.alias_target().map(|a| a.hosted_zone_id()),
            Some("Z1H1FL5HABSF5")
        );

        let mut latency = record("l.example.com.", "A", &["10.0.1.10"]);
        latency.set_identifier = Some("us-east-1".into());
        assert!(matches!(
            compute(&latency, &["i-web1"], &o),
            Computed::Unchanged(_)
        ));
    }

    fn plan_with(records: Vec<(Record, Vec<&str>)>, batches: usize) -> (Inventory, DnsPlan) {
        let mut inv = inventory();
        let changes: Vec<RecordChange> = records
            .iter()
            .map(|(r, p)| RecordChange {
                name: r.name.clone(),
                record_type: r.record_type.clone(),
                set_identifier: r.set_identifier.clone(),
                points_at: p.iter().map(|s| (*s).to_owned()).collect(),
            })
            .collect();
        inv.hosted_zones = vec![HostedZone {
            id: "Z1".into(),
            name: "example.com.".into(),
            private: false,
            vpcs: Vec::new(),
            records: records.into_iter().map(|(r, _)| r).collect(),
        }];
        let per = changes.len().div_ceil(batches.max(1)).max(1);
        let batches = changes
            .chunks(per)
            .map(|c| DnsBatch {
                records: c.to_vec(),
                change_tokens: 2 * c.len() as u32,
                resource_record_units: 2 * c.len() as u32,
                value_chars: 0,
            })
            .collect();
        let plan = DnsPlan {
            records: inv.hosted_zones[0].records.len() as u64,
            zones: vec![ZoneChanges {
                zone_id: "Z1".into(),
                zone_name: "example.com.".into(),
                private: false,
                associate_vpc: None,
                batches,
            }],
        };
        (inv, plan)
    }

    #[test]
    fn batches_keep_plan_boundaries_and_report_unchanged_records() {
        let mut o = outcomes();
        o.ec2.instances.remove("i-web2");
        let (inv, plan) = plan_with(
            vec![
                (
                    record("a.example.com.", "A", &["10.0.1.10"]),
                    vec!["i-web1"],
                ),
                (
                    record("b.example.com.", "A", &["10.0.1.11"]),
                    vec!["i-web2"],
                ),
                (
                    record(
                        "c.example.com.",
                        "CNAME",
                        &["app-db.aaaa.us-east-1.rds.amazonaws.com"],
                    ),
                    vec!["app-db"],
                ),
                (record("d.example.com.", "A", &["10.0.1.20"]), vec!["i-big"]),
            ],
            2,
        );
        let p = prepare(&inv, &plan, &view(&o), 1_000, None);
        assert_eq!(p.zones.len(), 1);
        let parts = &p.zones[0].parts;
        let keys: Vec<&str> = parts.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["dns/Z1/0", "dns/Z1/1"]);
        assert_eq!(parts[0].changes.len(), 1);
        assert_eq!(parts[1].changes.len(), 2);
        assert_eq!(parts[1].tokens(), 4);
        // d: fan-out to two values → 4 units; c: 2 units.
        assert_eq!(parts[1].units, 6);
        assert_eq!(p.records, 3);
        assert_eq!(p.unchanged.len(), 1);
        assert_eq!(p.unchanged[0].name, "b.example.com.");
        assert_eq!(p.unchanged[0].why, ["instance i-web2 was not restored"]);
        let listed = serde_json::to_value(&p.unchanged[0]).expect("json");
        assert_eq!(listed["type"], "A");
    }

    #[test]
    fn a_batch_grown_beyond_the_limits_is_split() {
        let o = outcomes();
        let (inv, plan) = plan_with(
            (0..5)
                .map(|i| {
                    (
                        record(&format!("h{i}.example.com."), "A", &["10.0.1.20"]),
                        vec!["i-big"],
                    )
                })
                .collect(),
            1,
        );
        // Each UPSERT carries two values after the fan-out: 4 units; 10 units per part.
        let p = prepare(&inv, &plan, &view(&o), 10, None);
        let parts = &p.zones[0].parts;
        let keys: Vec<&str> = parts.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["dns/Z1/0", "dns/Z1/0.1", "dns/Z1/0.2"]);
        let sizes: Vec<usize> = parts.iter().map(|p| p.changes.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(parts.iter().all(|p| p.units <= 10));
        assert_eq!(p.records, 5);
    }

    #[test]
    fn records_missing_from_the_inventory_are_reported() {
        let o = outcomes();
        let (inv, mut plan) = plan_with(
            vec![(
                record("a.example.com.", "A", &["10.0.1.10"]),
                vec!["i-web1"],
            )],
            1,
        );
        plan.zones[0].batches[0].records.push(RecordChange {
            name: "gone.example.com.".into(),
            record_type: "A".into(),
            set_identifier: None,
            points_at: vec!["i-web1".into()],
        });
        let p = prepare(&inv, &plan, &view(&o), 1_000, None);
        assert_eq!(p.records, 1);
        assert_eq!(p.unchanged[0].why, ["not in the inventory"]);
    }

    #[test]
    fn value_characters_count_twice() {
        let dr = DrValues {
            values: vec!["10.1.1.10".into(), "10.1.1.11".into()],
            alias: None,
        };
        assert_eq!(value_chars(&dr), 36);
        assert_eq!(units(&dr), 4);
        let a = DrValues {
            values: Vec::new(),
            alias: Some(DrAlias {
                dns_name: "x".into(),
                hosted_zone_id: "Z".into(),
                evaluate_target_health: false,
            }),
        };
        assert_eq!((units(&a), value_chars(&a)), (2, 0));
    }

    #[test]
    fn elb_zone_ids_and_change_ids() {
        assert_eq!(elb_zone_id("us-west-2", false), Some("Z1H1FL5HABSF5"));
        assert_eq!(elb_zone_id("us-east-1", true), Some("Z26RNL4JYFTOTI"));
        assert_eq!(elb_zone_id("mars-1", false), None);
        assert_eq!(bare_change_id("/change/C123"), "C123");
        assert_eq!(bare_change_id("C123"), "C123");
        assert_eq!(styled("x.example.com.", "y.example.com"), "y.example.com.");
        assert_eq!(styled("x.example.com", "y.example.com."), "y.example.com");
    }
    #[test]
    fn drill_zone_names_are_under_the_drill_domain() {
        let zone = DrillZone {
            zone_id: "Z9".into(),
            domain: "drill.example.internal.".into(),
        };
        assert_eq!(
            zone.name_of("www.example.com."),
            "www.example.com.drill.example.internal."
        );
        assert_eq!(
            zone.name_of("www.example.com"),
            "www.example.com.drill.example.internal."
        );
        assert_eq!(bare_zone_id("/hostedzone/Z1"), "Z1");
    }
}
