//! A drill's teardown (D12): everything the run created in the DR region, found by its
//! `pilotlight:run` tag, deleted in dependency order, then checked gone.
//!
//! ```text
//! teardown/dns      the drill's private hosted zone (`drill.dns_zone`): its records, then it
//! teardown/lb       classic and v2 load balancers (listeners go with them), then target groups
//! teardown/ec2      instances terminated in batches, waited for until terminated
//! teardown/volumes  volumes left over (create + attach ones; detached by the termination)
//! teardown/rds      DB instances (Aurora members first), then clusters, then subnet groups
//! teardown/verify   every kind listed again: nothing tagged for the run may be left
//! ```
//!
//! **Found by tags, not by the journal.** Each phase lists what carries `pilotlight:run=<run>`
//! *and* `pilotlight:managed=true` (only such resources are ever deleted: the delete methods take
//! an [`Owned`](pilotlight_aws::tags::Owned) id). The listing also finds what a crashed restore
//! created without recording it, so nothing escapes the teardown.
//!
//! **Journalled and resumable.** Every deletion is an item (kind `teardown`, key
//! `td/<kind>/<id>`) written `requested` before the call and `done` after; each phase is a step.
//! A daemon killed mid-teardown resumes the run in `tearing_down`: the phases list again, a
//! resource already gone no longer shows, one whose deletion is under way is waited for, and a
//! delete answered "not found" counts as done. The verify step fails the execution when
//! something is left, so the executor tries again (and finally records the leftovers).

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use pilotlight_aws::tags::{self, Owned};
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_store::StepState;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::RunCtx;
use super::journal::ItemRef;
use super::run::retrying;
use crate::ReconcileError;

/// The item kind of every deletion.
pub const KIND: &str = "teardown";
/// The step whose `done` state means the teardown finished and found nothing left.
pub const VERIFY_STEP: &str = "teardown/verify";
/// Most instance ids per `TerminateInstances` and per filtered describe.
const IDS_PER_CALL: usize = 1_000;
/// How long a phase waits for its deletions to show before the execution fails (and is tried
/// again by the executor).
const MAX_WAIT: Duration = Duration::from_secs(3_600);

/// What a teardown found still standing, by kind (`instance`, `volume`, `load_balancer`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftovers {
    pub resources: Vec<Leftover>,
}

/// One resource tagged for the run that still exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftover {
    pub kind: String,
    pub id: String,
}

/// Tears the run's resources down and verifies nothing is left.
///
/// # Errors
/// [`ReconcileError::Cancelled`] on shutdown; AWS and store failures; `Unexpected` when the
/// verification finds resources still tagged for the run.
pub async fn teardown(ctx: &RunCtx) -> Result<(), ReconcileError> {
    if ctx.journal.step_done(VERIFY_STEP).await?.is_some() {
        return Ok(());
    }
    let phases: [(&str, Phase); 5] = [
        ("teardown/dns", Phase::Dns),
        ("teardown/lb", Phase::LoadBalancers),
        ("teardown/ec2", Phase::Instances),
        ("teardown/volumes", Phase::Volumes),
        ("teardown/rds", Phase::Databases),
    ];
    for (step, phase) in phases {
        if ctx.journal.step_done(step).await?.is_some() {
            continue;
        }
        ctx.journal
            .step(step, 0, KIND, StepState::Running, &json!({}))
            .await?;
        let deleted = match phase {
            Phase::Dns => hosted_zones(ctx, step).await?,
            Phase::LoadBalancers => load_balancers(ctx, step).await?,
            Phase::Instances => instances(ctx, step).await?,
            Phase::Volumes => volumes(ctx, step).await?,
            Phase::Databases => databases(ctx, step).await?,
        };
        ctx.journal
            .step(step, 0, KIND, StepState::Done, &json!({"deleted": deleted}))
            .await?;
    }
    ctx.journal
        .step(VERIFY_STEP, 0, KIND, StepState::Running, &json!({}))
        .await?;
    let left = leftovers(ctx).await?;
    if left.resources.is_empty() {
        ctx.journal
            .step(VERIFY_STEP, 0, KIND, StepState::Done, &json!({"left": []}))
            .await?;
        return Ok(());
    }
    let listed: Vec<String> = left
        .resources
        .iter()
        .map(|r| format!("{} {}", r.kind, r.id))
        .collect();
    ctx.journal
        .step(
            VERIFY_STEP,
            0,
            KIND,
            StepState::Failed,
            &json!({"left": left.resources}),
        )
        .await?;
    Err(ReconcileError::Unexpected {
        operation: "teardown",
        detail: format!(
            "{} resources tagged for the drill are still there: {}",
            listed.len(),
            listed.join(", ")
        ),
    })
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Dns,
    LoadBalancers,
    Instances,
    Volumes,
    Databases,
}

/// Everything still tagged for the run, every kind the teardown deletes.
///
/// # Errors
/// AWS failures (after retries), [`ReconcileError::Cancelled`].
pub async fn leftovers(ctx: &RunCtx) -> Result<Leftovers, ReconcileError> {
    let mut resources = Vec::new();
    let mut add = |kind: &str, ids: Vec<Owned>| {
        resources.extend(ids.into_iter().map(|id| Leftover {
            kind: kind.to_owned(),
            id: id.id().to_owned(),
        }));
    };
    add("hosted_zone", run_zones(ctx).await?);
    add("load_balancer", classic_lbs(ctx).await?);
    add("load_balancer_v2", v2_lbs(ctx).await?);
    add("target_group", target_groups(ctx).await?);
    add(
        "instance",
        live_instances(ctx)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    );
    add(
        "volume",
        run_volumes(ctx)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    );
    let rds = rds_resources(ctx).await?;
    add("db_instance", rds.instances);
    add("db_cluster", rds.clusters);
    add("db_subnet_group", rds.subnet_groups);
    Ok(Leftovers { resources })
}

/// The resource as [`Owned`] when its tags mark it as pilotlight's *and* this run's.
fn of_run<'a>(
    ctx: &RunCtx,
    id: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<Owned> {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    let this_run = pairs
        .iter()
        .any(|(k, v)| *k == tags::RUN && *v == ctx.run_id);
    if this_run {
        Owned::from_pairs(id, pairs)
    } else {
        None
    }
}

/// Deletions of one item refused (other than "not found") before the teardown gives up on it.
const MAX_REFUSALS: i32 = 20;

/// Deletes one resource as a journalled item; "not found" counts as deleted. Returns whether
/// it is deleted (false: a refusal, e.g. a dependency still settling, noted on the item for
/// the next round).
async fn delete_item<F, Fut>(
    ctx: &RunCtx,
    step: &str,
    kind: &str,
    id: &str,
    delete: F,
) -> Result<bool, ReconcileError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), AwsError>>,
{
    let key = format!("td/{kind}/{id}");
    if let Some(item) = ctx.journal.item(&key).await?
        && item.state == pilotlight_store::ItemState::Done
    {
        return Ok(true);
    }
    ctx.check_stop()?;
    let item = ctx
        .journal
        .request(
            ItemRef {
                key: &key,
                step_id: step,
                kind: KIND,
                primary_id: id,
            },
            None,
            &json!({"resource": kind}),
        )
        .await?;
    match retrying(ctx, delete).await {
        Ok(()) => {}
        Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::NotFound => {}
        Err(ReconcileError::Aws(e))
            if e.kind == ErrorKind::Fatal && item.attempts < MAX_REFUSALS =>
        {
            // Usually a dependency still settling (a target group its deleted load balancer
            // still holds, a volume not detached yet, a cluster whose members are going).
            tracing::info!(run = %ctx.run_id, kind, id, code = %e.code, attempt = item.attempts, "teardown deletion refused for now; trying again");
            let reason = format!("{}: {}", e.code, e.message.unwrap_or_default());
            ctx.journal.note_error(&item, &reason).await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    ctx.journal
        .done(&item, id, &json!({"resource": kind, "deleted": true}))
        .await?;
    Ok(true)
}

/// The rounds of one phase: list what is left, delete it, wait, again — for at most
/// [`MAX_WAIT`].
struct Rounds {
    what: &'static str,
    deadline: tokio::time::Instant,
}

impl Rounds {
    fn new(what: &'static str) -> Rounds {
        Rounds {
            what,
            deadline: tokio::time::Instant::now() + MAX_WAIT,
        }
    }

    /// `Ok(true)` when nothing is left; else waits one poll interval and answers `Ok(false)`.
    async fn settled(&self, ctx: &RunCtx, left: usize) -> Result<bool, ReconcileError> {
        if left == 0 {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= self.deadline {
            return Err(ReconcileError::Unexpected {
                operation: "teardown",
                detail: format!("{left} {} still there after {MAX_WAIT:?}", self.what),
            });
        }
        ctx.pause().await?;
        Ok(false)
    }
}

/// Every item of a paginated listing: `page(marker)` asks for one page (retried), `read`
/// answers its items and the next marker (none or empty: the last page).
async fn paged<P, T, F, Fut, R>(
    ctx: &RunCtx,
    mut page: F,
    mut read: R,
) -> Result<Vec<T>, ReconcileError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<P, AwsError>>,
    R: FnMut(&P) -> (Vec<T>, Option<String>),
{
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let p = retrying(ctx, || page(marker.clone())).await?;
        let (items, next) = read(&p);
        out.extend(items);
        marker = next.filter(|m| !m.is_empty());
        if marker.is_none() {
            return Ok(out);
        }
    }
}

/// `(key, value)` pairs of tags with optional keys and values.
fn pairs<'a>(
    tags: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Vec<(&'a str, &'a str)> {
    tags.into_iter()
        .map(|(k, v)| (k.unwrap_or_default(), v.unwrap_or_default()))
        .collect()
}

// ---- DNS ------------------------------------------------------------------------------------

async fn hosted_zones(ctx: &RunCtx, step: &str) -> Result<usize, ReconcileError> {
    let mut deleted = BTreeSet::new();
    let rounds = Rounds::new("hosted zones");
    loop {
        let zones = run_zones(ctx).await?;
        for zone in &zones {
            if !deleted.contains(zone.id())
                && delete_item(ctx, step, "hosted_zone", zone.id(), || {
                    empty_and_delete_zone(ctx, zone)
                })
                .await?
            {
                deleted.insert(zone.id().to_owned());
            }
        }
        if rounds.settled(ctx, zones.len()).await? {
            return Ok(deleted.len());
        }
    }
}

/// Hosted zones tagged for the run (a drill's zone).
async fn run_zones(ctx: &RunCtx) -> Result<Vec<Owned>, ReconcileError> {
    let ids = paged(
        ctx,
        |marker| {
            ctx.aws.route53.list_hosted_zones(|b| {
                b.set_marker(marker)
                    .max_items(pilotlight_aws::route53::ZONES_PAGE)
            })
        },
        |p| {
            let ids = p
                .hosted_zones()
                .iter()
                .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
                .collect();
            let next = p.next_marker().filter(|_| p.is_truncated());
            (ids, next.map(str::to_owned))
        },
    )
    .await?;
    let mut ours = Vec::new();
    for chunk in ids.chunks(10) {
        let out = retrying(ctx, || {
            ctx.aws.route53.list_tags_for_resources(|b| {
                b.resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
                    .set_resource_ids(Some(chunk.to_vec()))
            })
        })
        .await?;
        for set in out.resource_tag_sets() {
            let Some(id) = set.resource_id() else {
                continue;
            };
            let pairs = set
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
            ours.extend(of_run(ctx, id, pairs));
        }
    }
    ours.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(ours)
}

/// Deletes every record of a drill's zone but its SOA and apex NS, then the zone.
async fn empty_and_delete_zone(ctx: &RunCtx, zone: &Owned) -> Result<(), AwsError> {
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, RrType};
    let mut sets = Vec::new();
    let mut next: Option<(String, RrType, Option<String>)> = None;
    loop {
        let (name, kind, ident) = next
            .take()
            .map_or((None, None, None), |(n, t, i)| (Some(n), Some(t), i));
        let page = ctx
            .aws
            .route53
            .list_resource_record_sets(|b| {
                b.hosted_zone_id(zone.id())
                    .set_start_record_name(name)
                    .set_start_record_type(kind)
                    .set_start_record_identifier(ident)
                    .max_items(pilotlight_aws::route53::RECORDS_PAGE)
            })
            .await?;
        let apex = page
            .resource_record_sets()
            .iter()
            .find(|r| r.r#type() == &RrType::Soa)
            .map(|r| r.name().to_owned());
        sets.extend(
            page.resource_record_sets()
                .iter()
                .filter(|r| {
                    r.r#type() != &RrType::Soa
                        && !(r.r#type() == &RrType::Ns && Some(r.name()) == apex.as_deref())
                })
                .cloned(),
        );
        if !page.is_truncated() {
            break;
        }
        next = page
            .next_record_name()
            .zip(page.next_record_type().cloned())
            .map(|(n, t)| {
                (
                    n.to_owned(),
                    t,
                    page.next_record_identifier().map(str::to_owned),
                )
            });
        if next.is_none() {
            break;
        }
    }
    for chunk in sets.chunks(100) {
        let changes: Vec<Change> = chunk
            .iter()
            .filter_map(|set| {
                Change::builder()
                    .action(ChangeAction::Delete)
                    .resource_record_set(set.clone())
                    .build()
                    .ok()
            })
            .collect();
        let Ok(batch) = ChangeBatch::builder().set_changes(Some(changes)).build() else {
            continue;
        };
        ctx.aws
            .route53
            .change_resource_record_sets(chunk.len() as u32, |b| {
                b.hosted_zone_id(zone.id()).change_batch(batch)
            })
            .await?;
    }
    ctx.aws.route53.delete_hosted_zone(zone).await
}

// ---- load balancers -------------------------------------------------------------------------

async fn load_balancers(ctx: &RunCtx, step: &str) -> Result<usize, ReconcileError> {
    let mut deleted = BTreeSet::new();
    let rounds = Rounds::new("load balancers or target groups");
    loop {
        let classic = classic_lbs(ctx).await?;
        for lb in &classic {
            let name = lb.id();
            if delete_item(ctx, step, "elb", name, || {
                ctx.aws.elb.delete_load_balancer(lb)
            })
            .await?
            {
                deleted.insert(format!("elb {name}"));
            }
        }
        let v2 = v2_lbs(ctx).await?;
        for lb in &v2 {
            let arn = lb.id();
            if delete_item(ctx, step, "elbv2", arn, || {
                ctx.aws.elbv2.delete_load_balancer(lb)
            })
            .await?
            {
                deleted.insert(format!("elbv2 {arn}"));
            }
        }
        // Target groups once no load balancer of the run holds them.
        let groups = if classic.is_empty() && v2.is_empty() {
            target_groups(ctx).await?
        } else {
            Vec::new()
        };
        for tg in &groups {
            let arn = tg.id();
            if delete_item(ctx, step, "target_group", arn, || {
                ctx.aws.elbv2.delete_target_group(tg)
            })
            .await?
            {
                deleted.insert(format!("tg {arn}"));
            }
        }
        // Deleted ones show gone on the next listing, which must come back empty.
        if rounds
            .settled(ctx, classic.len() + v2.len() + groups.len())
            .await?
        {
            return Ok(deleted.len());
        }
    }
}

/// Classic load balancers tagged for the run.
async fn classic_lbs(ctx: &RunCtx) -> Result<Vec<Owned>, ReconcileError> {
    let names = paged(
        ctx,
        |marker| {
            ctx.aws
                .elb
                .describe_load_balancers(|b| b.set_marker(marker).page_size(400))
        },
        |p| {
            let names = p
                .load_balancer_descriptions()
                .iter()
                .filter_map(|d| d.load_balancer_name().map(str::to_owned))
                .collect();
            (names, p.next_marker().map(str::to_owned))
        },
    )
    .await?;
    let mut ours = Vec::new();
    for chunk in names.chunks(pilotlight_aws::elb::CLASSIC_TAGS_BATCH) {
        let out = retrying(ctx, || {
            ctx.aws
                .elb
                .describe_tags(|b| b.set_load_balancer_names(Some(chunk.to_vec())))
        })
        .await?;
        for d in out.tag_descriptions() {
            let Some(name) = d.load_balancer_name() else {
                continue;
            };
            let tags = pairs(d.tags().iter().map(|t| (Some(t.key()), t.value())));
            ours.extend(of_run(ctx, name, tags));
        }
    }
    ours.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(ours)
}

/// v2 load balancers tagged for the run.
async fn v2_lbs(ctx: &RunCtx) -> Result<Vec<Owned>, ReconcileError> {
    let arns = paged(
        ctx,
        |marker| {
            ctx.aws
                .elbv2
                .describe_load_balancers(|b| b.set_marker(marker).page_size(400))
        },
        |p| {
            let arns = p
                .load_balancers()
                .iter()
                .filter_map(|l| l.load_balancer_arn().map(str::to_owned))
                .collect();
            (arns, p.next_marker().map(str::to_owned))
        },
    )
    .await?;
    v2_of_run(ctx, arns).await
}

/// Target groups tagged for the run.
async fn target_groups(ctx: &RunCtx) -> Result<Vec<Owned>, ReconcileError> {
    let arns = paged(
        ctx,
        |marker| {
            ctx.aws
                .elbv2
                .describe_target_groups(|b| b.set_marker(marker).page_size(400))
        },
        |p| {
            let arns = p
                .target_groups()
                .iter()
                .filter_map(|g| g.target_group_arn().map(str::to_owned))
                .collect();
            (arns, p.next_marker().map(str::to_owned))
        },
    )
    .await?;
    v2_of_run(ctx, arns).await
}

/// Those of `arns` whose v2 tags mark them as the run's (`DescribeTags`, 20 per call).
async fn v2_of_run(ctx: &RunCtx, arns: Vec<String>) -> Result<Vec<Owned>, ReconcileError> {
    let mut ours = Vec::new();
    for chunk in arns.chunks(pilotlight_aws::elb::V2_TAGS_BATCH) {
        let out = retrying(ctx, || {
            ctx.aws
                .elbv2
                .describe_tags(|b| b.set_resource_arns(Some(chunk.to_vec())))
        })
        .await?;
        for d in out.tag_descriptions() {
            let Some(arn) = d.resource_arn() else {
                continue;
            };
            let tags = pairs(d.tags().iter().map(|t| (t.key(), t.value())));
            ours.extend(of_run(ctx, arn, tags));
        }
    }
    ours.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(ours)
}

// ---- EC2 ------------------------------------------------------------------------------------

fn run_filter(ctx: &RunCtx) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", tags::RUN))
        .values(ctx.run_id.clone())
        .build()
}

/// Instances tagged for the run that are not terminated, with whether they are already
/// shutting down.
async fn live_instances(ctx: &RunCtx) -> Result<Vec<(Owned, bool)>, ReconcileError> {
    let states = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            ["pending", "running", "stopping", "stopped", "shutting-down"]
                .map(str::to_owned)
                .to_vec(),
        ))
        .build();
    let mut out = paged(
        ctx,
        |token| {
            ctx.aws.ec2.describe_instances(|b| {
                b.filters(run_filter(ctx))
                    .filters(states.clone())
                    .max_results(1000)
                    .set_next_token(token)
            })
        },
        |p| {
            let mine = p
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| {
                    let tags = pairs(i.tags().iter().map(|t| (t.key(), t.value())));
                    let owned = of_run(ctx, i.instance_id()?, tags)?;
                    let stopping = matches!(
                        i.state().and_then(|s| s.name()),
                        Some(aws_sdk_ec2::types::InstanceStateName::ShuttingDown)
                    );
                    Some((owned, stopping))
                })
                .collect();
            (mine, p.next_token().map(str::to_owned))
        },
    )
    .await?;
    out.sort_by(|a, b| a.0.id().cmp(b.0.id()));
    Ok(out)
}

async fn instances(ctx: &RunCtx, step: &str) -> Result<usize, ReconcileError> {
    let mut terminated: BTreeSet<String> = BTreeSet::new();
    let rounds = Rounds::new("instances");
    loop {
        let live = live_instances(ctx).await?;
        let to_terminate: Vec<Owned> = live
            .iter()
            .filter(|(id, stopping)| !stopping && !terminated.contains(id.id()))
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in to_terminate.chunks(IDS_PER_CALL) {
            // One item per batch, keyed by its first instance and size.
            let key_id = format!("{}+{}", chunk[0].id(), chunk.len());
            if delete_item(ctx, step, "instances", &key_id, || {
                ctx.aws.ec2.terminate_instances(chunk)
            })
            .await?
            {
                terminated.extend(chunk.iter().map(|i| i.id().to_owned()));
            }
        }
        if rounds.settled(ctx, live.len()).await? {
            return Ok(terminated.len());
        }
    }
}

/// Volumes tagged for the run, with their state.
async fn run_volumes(ctx: &RunCtx) -> Result<Vec<(Owned, String)>, ReconcileError> {
    let mut out = paged(
        ctx,
        |token| {
            ctx.aws.ec2.describe_volumes(|b| {
                b.filters(run_filter(ctx))
                    .max_results(500)
                    .set_next_token(token)
            })
        },
        |p| {
            let mine = p
                .volumes()
                .iter()
                .filter_map(|v| {
                    let state = v.state().map(|s| s.as_str().to_owned()).unwrap_or_default();
                    if state == "deleted" {
                        return None;
                    }
                    let tags = pairs(v.tags().iter().map(|t| (t.key(), t.value())));
                    Some((of_run(ctx, v.volume_id()?, tags)?, state))
                })
                .collect();
            (mine, p.next_token().map(str::to_owned))
        },
    )
    .await?;
    out.sort_by(|a, b| a.0.id().cmp(b.0.id()));
    Ok(out)
}

async fn volumes(ctx: &RunCtx, step: &str) -> Result<usize, ReconcileError> {
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let rounds = Rounds::new("volumes");
    loop {
        let left = run_volumes(ctx).await?;
        for (volume, state) in &left {
            // An attached volume detaches as its instance terminates; `deleting` is under way.
            if state != "available" || deleted.contains(volume.id()) {
                continue;
            }
            if delete_item(ctx, step, "volume", volume.id(), || {
                ctx.aws.ec2.delete_volume(volume)
            })
            .await?
            {
                deleted.insert(volume.id().to_owned());
            }
        }
        if rounds.settled(ctx, left.len()).await? {
            return Ok(deleted.len());
        }
    }
}

// ---- RDS ------------------------------------------------------------------------------------

/// The run's RDS resources.
struct RdsResources {
    instances: Vec<Owned>,
    clusters: Vec<Owned>,
    subnet_groups: Vec<Owned>,
    /// Instances and clusters whose deletion is under way (status `deleting`).
    deleting: BTreeSet<String>,
}

async fn rds_resources(ctx: &RunCtx) -> Result<RdsResources, ReconcileError> {
    // (resource, deleting)
    let dbs = paged(
        ctx,
        |marker| {
            ctx.aws
                .rds
                .describe_db_instances(|b| b.set_marker(marker).max_records(100))
        },
        |p| {
            let mine = p
                .db_instances()
                .iter()
                .filter_map(|d| {
                    let tags = pairs(d.tag_list().iter().map(|t| (t.key(), t.value())));
                    let owned = of_run(ctx, d.db_instance_identifier()?, tags)?;
                    Some((owned, d.db_instance_status() == Some("deleting")))
                })
                .collect();
            (mine, p.marker().map(str::to_owned))
        },
    )
    .await?;
    let clusters = paged(
        ctx,
        |marker| {
            ctx.aws
                .rds
                .describe_db_clusters(|b| b.set_marker(marker).max_records(100))
        },
        |p| {
            let mine = p
                .db_clusters()
                .iter()
                .filter_map(|c| {
                    let tags = pairs(c.tag_list().iter().map(|t| (t.key(), t.value())));
                    let owned = of_run(ctx, c.db_cluster_identifier()?, tags)?;
                    Some((owned, c.status() == Some("deleting")))
                })
                .collect();
            (mine, p.marker().map(str::to_owned))
        },
    )
    .await?;
    // Subnet groups carry no tags in their describe answer: pilotlight's are named
    // `pilotlight-…`; their tags are read one by one.
    let candidates = paged(
        ctx,
        |marker| {
            ctx.aws
                .rds
                .describe_db_subnet_groups(|b| b.set_marker(marker).max_records(100))
        },
        |p| {
            let ours = p
                .db_subnet_groups()
                .iter()
                .filter_map(|g| Some((g.db_subnet_group_name()?, g.db_subnet_group_arn()?)))
                .filter(|(name, _)| name.starts_with("pilotlight-"))
                .map(|(name, arn)| (name.to_owned(), arn.to_owned()))
                .collect();
            (ours, p.marker().map(str::to_owned))
        },
    )
    .await?;
    let mut subnet_groups = Vec::new();
    for (name, arn) in &candidates {
        let tags = retrying(ctx, || ctx.aws.rds.list_tags_for_resource(arn)).await?;
        let tags = pairs(tags.iter().map(|t| (t.key(), t.value())));
        subnet_groups.extend(of_run(ctx, name, tags));
    }
    let deleting = dbs
        .iter()
        .chain(&clusters)
        .filter(|(_, deleting)| *deleting)
        .map(|(o, _)| o.id().to_owned())
        .collect();
    let sorted = |mut v: Vec<Owned>| {
        v.sort_by(|a, b| a.id().cmp(b.id()));
        v
    };
    Ok(RdsResources {
        instances: sorted(dbs.into_iter().map(|(o, _)| o).collect()),
        clusters: sorted(clusters.into_iter().map(|(o, _)| o).collect()),
        subnet_groups: sorted(subnet_groups),
        deleting,
    })
}

async fn databases(ctx: &RunCtx, step: &str) -> Result<usize, ReconcileError> {
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let rounds = Rounds::new("RDS instances, clusters or subnet groups");
    loop {
        let rds = rds_resources(ctx).await?;
        for db in &rds.instances {
            let key = format!("db {}", db.id());
            if !deleted.contains(&key)
                && !rds.deleting.contains(db.id())
                && delete_item(ctx, step, "db", db.id(), || {
                    ctx.aws.rds.delete_db_instance(db)
                })
                .await?
            {
                deleted.insert(key);
            }
        }
        // Clusters once their members are gone; subnet groups once nothing uses them.
        if rds.instances.is_empty() {
            for cluster in &rds.clusters {
                let key = format!("cluster {}", cluster.id());
                if !deleted.contains(&key)
                    && !rds.deleting.contains(cluster.id())
                    && delete_item(ctx, step, "cluster", cluster.id(), || {
                        ctx.aws.rds.delete_db_cluster(cluster)
                    })
                    .await?
                {
                    deleted.insert(key);
                }
            }
        }
        if rds.instances.is_empty() && rds.clusters.is_empty() {
            for group in &rds.subnet_groups {
                if delete_item(ctx, step, "subnet_group", group.id(), || {
                    ctx.aws.rds.delete_db_subnet_group(group)
                })
                .await?
                {
                    deleted.insert(format!("subnet_group {}", group.id()));
                }
            }
        }
        let left = rds.instances.len() + rds.clusters.len() + rds.subnet_groups.len();
        if rounds.settled(ctx, left).await? {
            return Ok(deleted.len());
        }
    }
}
