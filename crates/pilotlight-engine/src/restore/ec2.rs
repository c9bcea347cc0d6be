//! EC2 tiers (D3) with plan B (D4).
//!
//! Tiers come up one after another. Within a tier every launch of every launch group goes out
//! at once (under the throttle and `restore.concurrency`): one `RunInstances` with
//! `MinCount = MaxCount` per launch, the AMI, subnet and security groups the plan mapped, tags at
//! launch and a `ClientToken` derived from the run, the launch and the attempt. Data volumes come
//! back in the launch's block-device mappings, or — under `create_attach` — as `CreateVolume`
//! from the DR snapshot in the instance's AZ as soon as its launch returns. The tier is up
//! when every instance runs (gate `running`) or passes its status checks (gate `healthy`); one
//! `DescribeInstances` per poll covers every instance still pending. At the gate the tier's
//! restore hooks are called (D13, [`super::hooks`]; a waited-for one holds what follows). The
//! next tier starts then,
//! while the tier's volumes are attached beside it (step `t<tier>/volumes`, tiers in order):
//! `AttachVolume`'s bucket is the scarcest of a restore with data volumes and must not idle
//! while the next tier boots.
//!
//! # Plan B
//!
//! A launch answered with `InsufficientInstanceCapacity` marks (type, AZ) unavailable for every
//! launch of the run ([`UnavailableCache`]) and asks [`next_attempt`] for the next option: the
//! other AZs the DR VPC has subnets in, then the neighbouring sizes of the family with the count
//! scaled, then the configured alternative families. The instance type catalog comes from
//! `DescribeInstanceTypes` in the DR region, fetched on the first capacity error and cached.
//! Groups whose instances have their own data volumes or fixed IPs keep their count, so each
//! primary gets exactly one DR instance with its volumes. The substitution that succeeded is
//! recorded in the launch's journal item and reported.
//!
//! # Journal
//!
//! Item `launch/<group>/<k>` per launch: `requested` with the attempt (type, AZ, subnet, count,
//! token) before `RunInstances`, `done` with the instances after. On resume a `requested` launch
//! is sent again exactly as journalled with the same token, which answers the instances of the
//! first call. Volumes are `volume/<primary volume>` (resolved by the `pilotlight:run` and
//! `pilotlight:source` tags) and `attach/<primary volume>` (in step `t<tier>/volumes`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, IamInstanceProfileSpecification, InstanceStateName,
    InstanceType, ResourceType, SummaryStatus, Tag, TagSpecification, VolumeState, VolumeType,
};
use futures::{FutureExt, StreamExt};
use pilotlight_aws::ErrorKind;
use pilotlight_core::config::{HookStage, TierGate, VolumeStrategy};
use pilotlight_core::fallback::{Attempt, LaunchRequest, UnavailableCache, next_attempt};
use pilotlight_core::inventory::InstanceTypeInfo;
use pilotlight_core::plan::{DataVolume, LaunchGroup, TierPlan, VolumeMethod};
use pilotlight_store::{ItemState, RestoreItem, StepState};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::journal::{ItemRef, detail};
use super::run::retrying;
use super::{Ec2Outcome, RestoredInstance, RunCtx, assign};
use crate::{ReconcileError, now_ms};

/// Most instance ids per `DescribeInstances`/`DescribeInstanceStatus` poll.
const IDS_PER_DESCRIBE: usize = 500;
/// Most volume ids per `DescribeVolumes` poll.
const VOLUMES_PER_DESCRIBE: usize = 500;

/// A DR subnet: where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubnetInfo {
    vpc_id: String,
    availability_zone: String,
}

/// What a launch tries: journalled before `RunInstances`, sent again as is on resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LaunchAttempt {
    instance_type: String,
    availability_zone: String,
    subnet_id: Option<String>,
    count: u32,
    token: String,
    number: u32,
    substitution: Option<pilotlight_core::fallback::Substitution>,
}

/// What a finished launch holds in its item.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LaunchDone {
    /// The launch's journal key.
    #[serde(default)]
    key: String,
    primaries: Vec<String>,
    instances: Vec<RestoredInstance>,
    count: usize,
    instance_ids: Vec<String>,
    state: String,
    attempt: LaunchAttempt,
    substitution: Option<pilotlight_core::fallback::Substitution>,
}

/// Shared by every launch of the run.
struct Shared {
    unavailable: Mutex<UnavailableCache>,
    /// `restore.concurrency` permits for `CreateVolume` and for `AttachVolume` each: those
    /// calls have their own buckets, and must not queue behind launches that hold the run's
    /// permits while they wait for `RunInstances` tokens.
    volumes: Semaphore,
    attachments: Semaphore,
    /// The index of the last tier whose volume creations have all finished. A tier's
    /// creations wait for the previous tier's, so `CreateVolume` serves the tiers in order
    /// (as the plan schedules it) and the attachments of the tier being attached are never
    /// starved by the next tier's creations.
    created_through: tokio::sync::watch::Sender<Option<usize>>,
}

impl Shared {
    fn tier_created(&self, index: usize) {
        self.created_through
            .send_modify(|t| *t = Some(t.map_or(index, |x| x.max(index))));
    }
}

/// Brings the tiers up one after another; under create + attach, each tier's volumes are
/// attached while the next tiers launch.
///
/// Two loops run side by side. The launch loop brings tier after tier to its gate (instances
/// launched, every instance running or healthy), starting the creation of each launch's
/// volumes in a task of its own as the launch returns (the gate does not wait for them), and
/// hands the tier to the volume loop, which waits for the tier's creations and attaches its
/// volumes (step `t<tier>/volumes`), tier after tier. `CreateVolume` and `AttachVolume` are
/// the scarcest EC2 buckets of a restore with data volumes (5 per second each, against
/// `RunInstances`' 2 instances per second), so neither may idle while a tier boots. The run's
/// EC2 part ends when both loops have.
///
/// # Errors
/// Cancelled, store failures, a DR subnet list that cannot be read.
pub async fn restore_tiers(ctx: &RunCtx) -> Result<Ec2Outcome, ReconcileError> {
    let permits = ctx.settings.concurrency.max(1) as usize;
    let shared = Arc::new(Shared {
        unavailable: Mutex::new(UnavailableCache::from_policy(&ctx.settings.fallback)),
        volumes: Semaphore::new(permits),
        attachments: Semaphore::new(permits),
        created_through: tokio::sync::watch::Sender::new(None),
    });
    let attach_permits = shared.clone();
    // Tiers are handed over by index: owned messages keep the futures provably `Send`.
    let (to_attach, mut tiers_up) = futures::channel::mpsc::unbounded::<(usize, TierUp)>();
    let tiers = &ctx.plan.restore.tiers;
    let launches = async move {
        let mut outcome = Ec2Outcome::default();
        for (index, tier) in tiers.iter().enumerate() {
            if tier.groups.is_empty() {
                continue;
            }
            let up = bring_up_tier(ctx, index, tier, &shared).await?;
            outcome.instances.extend(
                up.outcome
                    .instances
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            let resources = super::hooks::tier_resources(&up.outcome);
            // The volume loop only ends early on an error, which the join reports.
            let _ = to_attach.unbounded_send((index, up));
            // The tier's hooks (D13): a waited-for one holds the next tier's launches.
            super::hooks::after(ctx, HookStage::Tier(tier.tier), resources).await?;
        }
        Ok::<_, ReconcileError>(outcome)
    };
    let attaches = async move {
        while let Some((index, up)) = tiers_up.next().await {
            attach_tier(ctx, index, &tiers[index], up, &attach_permits).await?;
        }
        Ok::<_, ReconcileError>(())
    };
    let (outcome, attached) = tokio::join!(launches, attaches);
    let outcome = outcome?;
    attached?;
    Ok(outcome)
}

/// What a volume-creation task answers: primary volume → DR volume.
type VolumesCreated = Result<BTreeMap<String, String>, ReconcileError>;

/// A tier at its gate: its instances, and the tasks creating its volumes (create + attach
/// only; dropping it aborts them).
struct TierUp {
    outcome: Ec2Outcome,
    creations: JoinSet<VolumesCreated>,
}

/// Starts creating `which` volumes of tier `index` for the instances of `outcome`, in a task
/// of its own (owned handles: the run's context is cheap to clone).
fn spawn_creation(
    creations: &mut JoinSet<VolumesCreated>,
    ctx: &RunCtx,
    index: usize,
    outcome: Ec2Outcome,
    which: Volumes,
    shared: &Arc<Shared>,
) {
    let ctx = ctx.clone();
    let shared = shared.clone();
    // The tier before this one that launches anything (its creations come first).
    let previous = ctx.plan.restore.tiers[..index]
        .iter()
        .rposition(|t| !t.groups.is_empty());
    creations.spawn(async move {
        if let Some(previous) = previous {
            let mut turn = shared.created_through.subscribe();
            turn.wait_for(|t| t.is_some_and(|t| t >= previous))
                .await
                .map_err(|_| ReconcileError::Cancelled)?;
        }
        let tier = &ctx.plan.restore.tiers[index];
        create_volumes(&ctx, tier, &outcome, &which, &shared.volumes).await
    });
}

/// Whether this run brings data volumes back by `CreateVolume` + `AttachVolume`.
fn creates_and_attaches(ctx: &RunCtx) -> bool {
    ctx.plan.restore.volumes.chosen == VolumeMethod::CreateAttach
        && !matches!(
            ctx.settings.data_volumes,
            VolumeStrategy::BlockDeviceMapping
        )
}

/// Brings one tier to its gate (step `t<tier>/ec2`), or rebuilds it from the journal when the
/// step is done.
async fn bring_up_tier(
    ctx: &RunCtx,
    index: usize,
    tier: &TierPlan,
    shared: &Arc<Shared>,
) -> Result<TierUp, ReconcileError> {
    let step_id = format!("t{}/ec2", tier.tier);
    if ctx.journal.step_done(&step_id).await?.is_some() {
        let outcome = rebuild_tier(ctx, tier).await?;
        // Volumes created before a crash come back from the journal (or by their tags); the
        // rest are created now.
        let mut creations = JoinSet::new();
        if creates_and_attaches(ctx) {
            let every = Volumes::NotOf(BTreeSet::new());
            spawn_creation(&mut creations, ctx, index, outcome.clone(), every, shared);
        }
        return Ok(TierUp { outcome, creations });
    }
    ctx.journal
        .step(
            &step_id,
            tier.tier,
            "ec2",
            StepState::Running,
            &json!({"instances_planned": tier.instances, "groups": tier.groups.len()}),
        )
        .await?;
    let up = restore_tier(ctx, index, tier, shared).await?;
    let restored: usize = up
        .outcome
        .instances
        .values()
        .flatten()
        .map(|i| &i.instance_id)
        .collect::<BTreeSet<_>>()
        .len();
    let failed = tier
        .groups
        .iter()
        .flat_map(|g| &g.instance_ids)
        .filter(|id| !up.outcome.instances.contains_key(*id))
        .count();
    ctx.journal
        .step(
            &step_id,
            tier.tier,
            "ec2",
            StepState::Done,
            &json!({
                "instances_planned": tier.instances,
                "instances_running": restored,
                "primaries_failed": failed,
                "groups": tier.groups.len(),
            }),
        )
        .await?;
    Ok(up)
}

/// Attaches a tier's volumes as their creations finish, launch by launch (step
/// `t<tier>/volumes`), and lets the next tier's creations go once this tier's are all done.
async fn attach_tier(
    ctx: &RunCtx,
    index: usize,
    tier: &TierPlan,
    up: TierUp,
    shared: &Shared,
) -> Result<(), ReconcileError> {
    let TierUp {
        outcome,
        mut creations,
    } = up;
    let step_id = volumes_step(tier);
    let attach = creates_and_attaches(ctx)
        && !tier.data_volumes.is_empty()
        && ctx.journal.step_done(&step_id).await?.is_none();
    if attach {
        let planned = json!({"volumes_planned": tier.data_volumes.len()});
        ctx.journal
            .step(&step_id, tier.tier, "volumes", StepState::Running, &planned)
            .await?;
    }
    let outcome = &outcome;
    let mut attaching = futures::stream::FuturesUnordered::new();
    let (mut created, mut attached) = (0usize, 0usize);
    loop {
        tokio::select! {
            Some(done) = attaching.next(), if !attaching.is_empty() => attached += done?,
            Some(finished) = creations.join_next(), if !creations.is_empty() => {
                let volumes = finished.map_err(|e| ReconcileError::Unexpected {
                    operation: "CreateVolume",
                    detail: format!("a volume-creation task of tier {} ended: {e}", tier.tier),
                })??;
                created += volumes.len();
                if creations.is_empty() {
                    shared.tier_created(index);
                }
                if attach {
                    let permits = &shared.attachments;
                    attaching.push(
                        async move { attach_volumes(ctx, tier, outcome, &volumes, permits).await }
                            .boxed(),
                    );
                }
            }
            else => break,
        }
    }
    shared.tier_created(index);
    if attach {
        ctx.journal
            .step(
                &step_id,
                tier.tier,
                "volumes",
                StepState::Done,
                &json!({
                    "volumes_planned": tier.data_volumes.len(),
                    "volumes_created": created,
                    "volumes_attached": attached,
                }),
            )
            .await?;
    }
    Ok(())
}

/// The step of a tier's attachments.
fn volumes_step(tier: &TierPlan) -> String {
    format!("t{}/volumes", tier.tier)
}

/// A finished tier's outcome, from its journal items (a resumed run makes no call for it).
async fn rebuild_tier(ctx: &RunCtx, tier: &TierPlan) -> Result<Ec2Outcome, ReconcileError> {
    let mut outcome = Ec2Outcome::default();
    for group in &tier.groups {
        for (k, _) in group.launches.iter().enumerate() {
            if let Some(item) = ctx.journal.item(&launch_key(group, k)).await?
                && item.state == ItemState::Done
                && let Ok(done) = serde_json::from_value::<LaunchDone>(detail(&item))
            {
                outcome
                    .instances
                    .extend(assign(&done.primaries, &done.instances));
            }
        }
    }
    Ok(outcome)
}

/// Launches a tier (creating each launch's volumes as soon as it returns, under create +
/// attach) and waits for its gate.
async fn restore_tier(
    ctx: &RunCtx,
    index: usize,
    tier: &TierPlan,
    shared: &Arc<Shared>,
) -> Result<TierUp, ReconcileError> {
    let subnets = dr_subnets(ctx).await?;
    let mut launches = Vec::new();
    for group in &tier.groups {
        let mut offset = 0usize;
        for (k, &n) in group.launches.iter().enumerate() {
            let primaries: Vec<String> = group.instance_ids[offset..offset + n as usize].to_vec();
            offset += n as usize;
            launches.push((group, k, primaries));
        }
    }
    let create_attach = creates_and_attaches(ctx);
    let concurrency = ctx.settings.concurrency.max(1) as usize;
    // The futures are made first and then streamed: a stream over a closure that returns
    // borrowing futures is not provably `Send` (rust-lang/rust#102211).
    let mut futures = Vec::with_capacity(launches.len());
    for (group, k, primaries) in launches {
        let subnets = &subnets;
        let shared = shared.clone();
        futures.push(
            async move { launch(ctx, tier, group, k, primaries, subnets, &shared).await }.boxed(),
        );
    }
    let mut finished = futures::stream::iter(futures).buffer_unordered(concurrency);
    let mut done = Vec::new();
    let mut creations = JoinSet::new();
    while let Some(result) = finished.next().await {
        let Some(d) = result? else { continue };
        if create_attach {
            let launched = Ec2Outcome {
                instances: assign(&d.primaries, &d.instances),
            };
            let primaries: BTreeSet<String> = d.primaries.iter().cloned().collect();
            let which = Volumes::Of(primaries);
            spawn_creation(&mut creations, ctx, index, launched, which, shared);
        }
        done.push(d);
    }
    drop(finished);
    // Volumes of primaries whose launch failed are failed items too.
    if create_attach {
        let launched: BTreeSet<String> = done
            .iter()
            .flat_map(|d| d.primaries.iter().cloned())
            .collect();
        let none = Ec2Outcome::default();
        create_volumes(ctx, tier, &none, &Volumes::NotOf(launched), &shared.volumes).await?;
    }

    let ids: Vec<String> = done
        .iter()
        .flat_map(|d| d.instances.iter().map(|i| i.instance_id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let running = wait_running(ctx, &ids).await?;
    if ctx.settings.gate == TierGate::Healthy {
        wait_healthy(ctx, &ids).await?;
    }
    // Refresh the launch items with what the instances look like running (public IPs appear
    // then), so a resumed run's outcome is complete without a describe.
    for d in &mut done {
        for i in &mut d.instances {
            if let Some(r) = running.get(&i.instance_id) {
                // The launch's answer knows the type and AZ; the describe adds the public IP.
                i.private_ip = r.private_ip.clone().or(i.private_ip.take());
                i.public_ip = r.public_ip.clone().or(i.public_ip.take());
            }
        }
        if d.state != "running" {
            d.state = "running".to_owned();
            if let Some(item) = ctx.journal.item(&d.key).await? {
                ctx.journal
                    .done(&item, &item.dr_id.clone().unwrap_or_default(), &json!(d))
                    .await?;
            }
        }
    }
    let mut outcome = Ec2Outcome::default();
    for d in &done {
        outcome.instances.extend(assign(&d.primaries, &d.instances));
    }
    Ok(TierUp { outcome, creations })
}

/// The journal key of a launch.
fn launch_key(group: &LaunchGroup, k: usize) -> String {
    format!("launch/{}/{k}", group.group_id)
}

/// `ClientToken` of an attempt: at most 64 ASCII characters, the same for the same run, launch
/// and attempt number.
fn client_token(run_id: &str, key: &str, number: u32) -> String {
    let digest = pilotlight_core::digest::sha256_hex(format!("{run_id}|{key}|{number}").as_bytes());
    format!("pl-{}", &digest[..40])
}

/// One launch: from the journal if it is done, else sent (again) until it succeeds, plan B
/// runs out, or AWS refuses it for good. `None` when it failed (recorded in the journal).
async fn launch(
    ctx: &RunCtx,
    tier: &TierPlan,
    group: &LaunchGroup,
    k: usize,
    primaries: Vec<String>,
    subnets: &BTreeMap<String, SubnetInfo>,
    shared: &Shared,
) -> Result<Option<LaunchDone>, ReconcileError> {
    let key = launch_key(group, k);
    let step_id = format!("t{}/ec2", tier.tier);
    let item_ref = ItemRef {
        key: &key,
        step_id: &step_id,
        kind: "instance_launch",
        primary_id: primaries.first().map_or("", String::as_str),
    };
    let existing = ctx.journal.item(&key).await?;
    match existing.as_ref().map(|i| i.state) {
        Some(ItemState::Done) => {
            let item = existing.as_ref().expect("matched Some");
            if let Ok(done) = serde_json::from_value::<LaunchDone>(detail(item)) {
                return Ok(Some(done));
            }
        }
        Some(ItemState::Failed) => return Ok(None),
        _ => {}
    }

    let spec = &group.spec;
    let failed_detail = json!({"primaries": primaries, "count": primaries.len()});
    let fail = |reason: String| {
        let failed_detail = &failed_detail;
        async move { ctx.journal.fail(item_ref, &reason, failed_detail).await }
    };
    let Some(image) = spec.image.dr_id() else {
        fail(format!("the AMI {:?} has no DR copy", spec.image)).await?;
        return Ok(None);
    };
    let Some(subnet) = spec.subnet.as_ref().and_then(|s| s.dr_id()) else {
        fail("the instance's subnet has no DR counterpart".to_owned()).await?;
        return Ok(None);
    };
    if let Some(sg) = spec.security_groups.iter().find(|sg| sg.is_missing()) {
        fail(format!("security group {sg:?} has no DR counterpart")).await?;
        return Ok(None);
    }
    if let Some(v) = spec.block_devices.iter().find(|v| v.snapshot.is_missing()) {
        fail(format!("volume {} has no DR snapshot", v.device_name)).await?;
        return Ok(None);
    }
    let Some(home) = subnets.get(subnet) else {
        fail(format!(
            "DR subnet {subnet} does not exist in the DR region"
        ))
        .await?;
        return Ok(None);
    };
    // One subnet per other AZ of the same VPC, for plan B.
    let mut subnet_in_az: BTreeMap<String, String> = BTreeMap::new();
    subnet_in_az.insert(home.availability_zone.clone(), subnet.to_owned());
    for (id, info) in subnets {
        if info.vpc_id == home.vpc_id {
            subnet_in_az
                .entry(info.availability_zone.clone())
                .or_insert_with(|| id.clone());
        }
    }
    let has_volumes = !spec.block_devices.is_empty()
        || tier
            .data_volumes
            .iter()
            .any(|v| primaries.contains(&v.instance_id));
    let request = LaunchRequest {
        instance_type: spec.instance_type.clone(),
        availability_zone: home.availability_zone.clone(),
        count: primaries.len() as u32,
        // A fixed IP belongs to its subnet's AZ.
        allowed_azs: if spec.private_ip.is_some() {
            Vec::new()
        } else {
            subnet_in_az.keys().cloned().collect()
        },
        instance_ids: primaries.clone(),
        keep_count: has_volumes || spec.private_ip.is_some(),
    };

    let mut tried: Vec<Attempt> = Vec::new();
    let mut catalog: Option<BTreeMap<String, InstanceTypeInfo>> = None;
    // A launch journalled as requested is sent again exactly as it was.
    let mut pending: Option<LaunchAttempt> = existing
        .as_ref()
        .filter(|i| i.state == ItemState::Requested)
        .and_then(|i| detail(i).get("attempt").cloned())
        .and_then(|a| serde_json::from_value(a).ok());
    let mut number = existing.as_ref().map_or(0, |i| i.attempts as u32);
    loop {
        ctx.check_stop()?;
        let attempt = match pending.take() {
            Some(a) => a,
            None => {
                let choose = |catalog: &BTreeMap<String, InstanceTypeInfo>| {
                    let unavailable = shared
                        .unavailable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let empty = BTreeMap::new();
                    next_attempt(
                        &request,
                        &tried,
                        &unavailable,
                        catalog,
                        if ctx.settings.fallback.smaller_footprint {
                            &ctx.inventory.utilisation
                        } else {
                            &empty
                        },
                        &ctx.settings.fallback,
                        now_ms(),
                    )
                };
                let mut next = choose(catalog.as_ref().unwrap_or(&ctx.inventory.instance_types));
                // Other launches may have found every option the inventory's types allow
                // unavailable already: the DR catalog (other sizes and families) decides.
                if next.is_none() && catalog.is_none() {
                    let fetched = instance_catalog(ctx).await?;
                    next = choose(&fetched);
                    catalog = Some(fetched);
                }
                let Some(next) = next else {
                    let options: Vec<String> = tried
                        .iter()
                        .map(|a| {
                            format!("{}×{} in {}", a.instance_type, a.count, a.availability_zone)
                        })
                        .collect();
                    fail(format!(
                        "no capacity: every plan-B option is exhausted (tried {})",
                        options.join(", ")
                    ))
                    .await?;
                    return Ok(None);
                };
                number += 1;
                LaunchAttempt {
                    subnet_id: subnet_in_az.get(&next.availability_zone).cloned(),
                    token: client_token(&ctx.run_id, &key, number),
                    instance_type: next.instance_type,
                    availability_zone: next.availability_zone,
                    count: next.count,
                    number,
                    substitution: next.substitution,
                }
            }
        };
        let item = ctx
            .journal
            .request(
                item_ref,
                Some(&attempt.token),
                &json!({
                    "primaries": primaries,
                    "count": attempt.count,
                    "attempt": attempt,
                    "substitution": attempt.substitution,
                }),
            )
            .await?;
        // A single instance carries its primary id from launch; a batch shares the launch key
        // until each instance is tagged with its own primary below.
        let launch_source = match primaries.as_slice() {
            [only] => only.clone(),
            _ => key.clone(),
        };
        let result = retrying(ctx, || {
            run_instances(ctx, tier, group, &launch_source, image, &attempt)
        })
        .await;
        let result = match result {
            Ok(mut instances) if primaries.len() > 1 => {
                instances.sort_by_key(|(index, _)| *index);
                let launched: Vec<RestoredInstance> =
                    instances.iter().map(|(_, i)| i.clone()).collect();
                tag_sources(ctx, &primaries, &launched)
                    .await
                    .map(|()| instances)
            }
            other => other,
        };
        match result {
            Ok(instances) => {
                let mut instances = instances;
                instances.sort_by_key(|(index, _)| *index);
                let instances: Vec<RestoredInstance> =
                    instances.into_iter().map(|(_, i)| i).collect();
                let done = LaunchDone {
                    key: key.clone(),
                    primaries: primaries.clone(),
                    count: instances.len(),
                    instance_ids: instances.iter().map(|i| i.instance_id.clone()).collect(),
                    instances,
                    state: "launched".to_owned(),
                    substitution: attempt.substitution.clone(),
                    attempt,
                };
                let dr_id = done.instance_ids.join(",");
                ctx.journal.done(&item, &dr_id, &json!(done)).await?;
                if let Some(s) = &done.substitution {
                    tracing::info!(
                        run = %ctx.run_id, launch = %key,
                        from = %format!("{}×{} in {}", s.from_type, s.from_count, s.from_az),
                        to = %format!("{}×{} in {}", s.to_type, s.to_count, s.to_az),
                        reason = s.reason.as_str(),
                        "plan B substitution"
                    );
                }
                return Ok(Some(done));
            }
            Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::Capacity => {
                tracing::info!(
                    run = %ctx.run_id, launch = %key,
                    instance_type = %attempt.instance_type, az = %attempt.availability_zone,
                    code = %e.code, "no capacity; trying plan B"
                );
                shared
                    .unavailable
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .mark(&attempt.instance_type, &attempt.availability_zone, now_ms());
                ctx.journal
                    .note_error(
                        &item,
                        &format!("{}: {}", e.code, e.message.clone().unwrap_or_default()),
                    )
                    .await?;
                tried.push(Attempt {
                    instance_type: attempt.instance_type.clone(),
                    availability_zone: attempt.availability_zone.clone(),
                    count: attempt.count,
                    substitution: attempt.substitution.clone(),
                });
                if catalog.is_none() {
                    catalog = Some(instance_catalog(ctx).await?);
                }
            }
            Err(ReconcileError::Aws(e)) => {
                let reason = format!(
                    "{} refused: {} {}",
                    e.operation,
                    e.code,
                    e.message.clone().unwrap_or_default()
                );
                tracing::warn!(run = %ctx.run_id, launch = %key, error = %reason, "launch failed");
                fail(reason).await?;
                return Ok(None);
            }
            Err(other) => return Err(other),
        }
    }
}

/// Sends one `RunInstances` for `attempt`; answers (launch index, instance) pairs.
async fn run_instances(
    ctx: &RunCtx,
    tier: &TierPlan,
    group: &LaunchGroup,
    source: &str,
    image: &str,
    attempt: &LaunchAttempt,
) -> Result<Vec<(i32, RestoredInstance)>, pilotlight_aws::AwsError> {
    let spec = &group.spec;
    let mut tags: Vec<Tag> = ctx
        .tags(source)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    tags.push(
        Tag::builder()
            .key("pilotlight:tier")
            .value(tier.tier.to_string())
            .build(),
    );
    tags.push(
        Tag::builder()
            .key("pilotlight:group")
            .value(&group.group_id)
            .build(),
    );
    let security_groups: Vec<String> = spec
        .security_groups
        .iter()
        .filter_map(|g| g.dr_id().map(str::to_owned))
        .collect();
    let mappings: Vec<BlockDeviceMapping> = spec
        .block_devices
        .iter()
        .map(|v| {
            BlockDeviceMapping::builder()
                .device_name(&v.device_name)
                .ebs(
                    EbsBlockDevice::builder()
                        .set_snapshot_id(v.snapshot.dr_id().map(str::to_owned))
                        .volume_size(v.size_gib as i32)
                        .set_volume_type(v.volume_type.as_deref().map(VolumeType::from))
                        .set_iops(v.iops.map(|i| i as i32))
                        .delete_on_termination(v.delete_on_termination)
                        .build(),
                )
                .build()
        })
        .collect();
    let count = attempt.count as i32;
    let out = ctx
        .aws
        .ec2
        .run_instances(attempt.count, |b| {
            b.image_id(image)
                .instance_type(InstanceType::from(attempt.instance_type.as_str()))
                .min_count(count)
                .max_count(count)
                .set_subnet_id(attempt.subnet_id.clone())
                .set_security_group_ids(Some(security_groups))
                .set_key_name(spec.key_name.clone())
                .set_iam_instance_profile(
                    spec.iam_instance_profile_arn
                        .as_ref()
                        .map(|arn| IamInstanceProfileSpecification::builder().arn(arn).build()),
                )
                .set_private_ip_address(spec.private_ip.clone())
                .set_block_device_mappings((!mappings.is_empty()).then_some(mappings))
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Instance)
                        .set_tags(Some(tags.clone()))
                        .build(),
                )
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Volume)
                        .set_tags(Some(tags))
                        .build(),
                )
                .client_token(&attempt.token)
        })
        .await?;
    Ok(out
        .instances()
        .iter()
        .filter_map(|i| {
            Some((
                i.ami_launch_index().unwrap_or_default(),
                restored(i, attempt)?,
            ))
        })
        .collect())
}

/// The primary each launched instance stands for, in launch order: with at least as many
/// instances as primaries instance `j` stands for primary `j mod n` (plan-B fan-out); with fewer
/// (fan-in) for primary `j`, the first of those sharing it (the journal has them all).
fn sources_of<'a>(
    primaries: &'a [String],
    launched: &[RestoredInstance],
) -> Vec<(String, &'a str)> {
    let n = primaries.len();
    if n == 0 {
        return Vec::new();
    }
    launched
        .iter()
        .enumerate()
        .map(|(j, i)| (i.instance_id.clone(), primaries[j % n].as_str()))
        .collect()
}

/// `CreateTags` per instance of a batched launch: `pilotlight:source` = its own primary id (the
/// launch could only give them a shared value). Idempotent, so a resumed launch tags again.
async fn tag_sources(
    ctx: &RunCtx,
    primaries: &[String],
    launched: &[RestoredInstance],
) -> Result<(), ReconcileError> {
    for (instance, primary) in sources_of(primaries, launched) {
        ctx.check_stop()?;
        retrying(ctx, || {
            ctx.aws.ec2.create_tags(|b| {
                b.resources(&instance).tags(
                    Tag::builder()
                        .key(pilotlight_aws::tags::SOURCE)
                        .value(primary)
                        .build(),
                )
            })
        })
        .await?;
    }
    Ok(())
}

fn restored(i: &aws_sdk_ec2::types::Instance, attempt: &LaunchAttempt) -> Option<RestoredInstance> {
    Some(RestoredInstance {
        instance_id: i.instance_id()?.to_owned(),
        instance_type: i
            .instance_type()
            .map_or_else(|| attempt.instance_type.clone(), |t| t.as_str().to_owned()),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map_or_else(|| attempt.availability_zone.clone(), str::to_owned),
        private_ip: i.private_ip_address().map(str::to_owned),
        public_ip: i.public_ip_address().map(str::to_owned),
    })
}

/// Every DR subnet with its VPC and AZ (cached: the restore creates no subnet).
async fn dr_subnets(ctx: &RunCtx) -> Result<BTreeMap<String, SubnetInfo>, ReconcileError> {
    let cache = ctx.aws.cache.clone();
    cache
        .get_or_fetch("subnets", "all", || async {
            let mut out = BTreeMap::new();
            let mut token: Option<String> = None;
            loop {
                let page = retrying(ctx, || {
                    ctx.aws
                        .ec2
                        .describe_subnets(|b| b.max_results(1000).set_next_token(token.clone()))
                })
                .await?;
                for s in page.subnets() {
                    if let (Some(id), Some(vpc), Some(az)) =
                        (s.subnet_id(), s.vpc_id(), s.availability_zone())
                    {
                        out.insert(
                            id.to_owned(),
                            SubnetInfo {
                                vpc_id: vpc.to_owned(),
                                availability_zone: az.to_owned(),
                            },
                        );
                    }
                }
                token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            Ok::<_, ReconcileError>(out)
        })
        .await
}

/// The DR region's instance types with their vCPUs and memory (cached), merged over the
/// inventory's.
async fn instance_catalog(
    ctx: &RunCtx,
) -> Result<BTreeMap<String, InstanceTypeInfo>, ReconcileError> {
    let cache = ctx.aws.cache.clone();
    let fetched: BTreeMap<String, InstanceTypeInfo> = cache
        .get_or_fetch("instance_types", "all", || async {
            let mut out = BTreeMap::new();
            let mut token: Option<String> = None;
            loop {
                let page = retrying(ctx, || {
                    ctx.aws.ec2.describe_instance_types(|b| {
                        b.max_results(100).set_next_token(token.clone())
                    })
                })
                .await?;
                for t in page.instance_types() {
                    let (Some(name), Some(vcpus), Some(mib)) = (
                        t.instance_type(),
                        t.v_cpu_info().and_then(|v| v.default_v_cpus()),
                        t.memory_info().and_then(|m| m.size_in_mib()),
                    ) else {
                        continue;
                    };
                    out.insert(
                        name.as_str().to_owned(),
                        InstanceTypeInfo {
                            vcpus: vcpus.max(0) as u32,
                            memory_mib: mib.max(0) as u64,
                        },
                    );
                }
                token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            Ok::<_, ReconcileError>(out)
        })
        .await?;
    let mut catalog = fetched;
    for (name, info) in &ctx.inventory.instance_types {
        catalog.entry(name.clone()).or_insert(*info);
    }
    Ok(catalog)
}

/// Polls until every instance runs; answers them as described running.
async fn wait_running(
    ctx: &RunCtx,
    ids: &[String],
) -> Result<BTreeMap<String, RestoredInstance>, ReconcileError> {
    let mut outstanding: BTreeSet<String> = ids.iter().cloned().collect();
    let mut seen: BTreeMap<String, RestoredInstance> = BTreeMap::new();
    while !outstanding.is_empty() {
        let batch: Vec<String> = outstanding.iter().cloned().collect();
        for chunk in batch.chunks(IDS_PER_DESCRIBE) {
            let out = retrying(ctx, || {
                ctx.aws
                    .ec2
                    .describe_instances(|b| b.set_instance_ids(Some(chunk.to_vec())))
            })
            .await?;
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                let state = i.state().and_then(|s| s.name());
                if state == Some(&InstanceStateName::Running) {
                    let fallback = LaunchAttempt {
                        instance_type: String::new(),
                        availability_zone: String::new(),
                        subnet_id: None,
                        count: 0,
                        token: String::new(),
                        number: 0,
                        substitution: None,
                    };
                    if let Some(r) = restored(i, &fallback) {
                        seen.insert(id.to_owned(), r);
                    }
                    outstanding.remove(id);
                } else if matches!(
                    state,
                    Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
                ) {
                    tracing::warn!(run = %ctx.run_id, instance = id, "restored instance terminated");
                    outstanding.remove(id);
                }
            }
        }
        if !outstanding.is_empty() {
            ctx.pause().await?;
        }
    }
    Ok(seen)
}

/// Polls until every instance passes its status checks (gate `healthy`).
async fn wait_healthy(ctx: &RunCtx, ids: &[String]) -> Result<(), ReconcileError> {
    let mut outstanding: BTreeSet<String> = ids.iter().cloned().collect();
    while !outstanding.is_empty() {
        let batch: Vec<String> = outstanding.iter().cloned().collect();
        for chunk in batch.chunks(IDS_PER_DESCRIBE) {
            let out = retrying(ctx, || {
                ctx.aws.ec2.describe_instance_status(|b| {
                    b.set_instance_ids(Some(chunk.to_vec()))
                        .include_all_instances(true)
                })
            })
            .await?;
            for s in out.instance_statuses() {
                let ok = |st: Option<&SummaryStatus>| st == Some(&SummaryStatus::Ok);
                if let Some(id) = s.instance_id()
                    && ok(s.instance_status().and_then(|x| x.status()))
                    && ok(s.system_status().and_then(|x| x.status()))
                {
                    outstanding.remove(id);
                }
            }
        }
        if !outstanding.is_empty() {
            ctx.pause().await?;
        }
    }
    Ok(())
}

/// Which of a tier's data volumes: those of these primary instances, or of all others.
enum Volumes {
    Of(BTreeSet<String>),
    NotOf(BTreeSet<String>),
}

impl Volumes {
    fn contains(&self, v: &DataVolume) -> bool {
        match self {
            Volumes::Of(ids) => ids.contains(&v.instance_id),
            Volumes::NotOf(ids) => !ids.contains(&v.instance_id),
        }
    }
}

/// `CreateVolume` for each data volume of the tier that `which` picks (create + attach
/// method), in the AZ of the DR instance it belongs to; answers primary volume → DR volume. A
/// volume whose instance is not in `outcome` is failed.
async fn create_volumes(
    ctx: &RunCtx,
    tier: &TierPlan,
    outcome: &Ec2Outcome,
    which: &Volumes,
    permits: &Semaphore,
) -> Result<BTreeMap<String, String>, ReconcileError> {
    let step_id = format!("t{}/ec2", tier.tier);
    let mut out = BTreeMap::new();
    let concurrency = ctx.settings.concurrency.max(1) as usize;
    let mut futures = Vec::new();
    for v in tier.data_volumes.iter().filter(|v| which.contains(v)) {
        let step_id = &step_id;
        futures.push(async move { create_volume(ctx, step_id, v, outcome, permits).await }.boxed());
    }
    let results: Vec<Result<Option<(String, String)>, ReconcileError>> =
        futures::stream::iter(futures)
            .buffer_unordered(concurrency)
            .collect()
            .await;
    for r in results {
        if let Some((primary, dr)) = r? {
            out.insert(primary, dr);
        }
    }
    Ok(out)
}

async fn create_volume(
    ctx: &RunCtx,
    step_id: &str,
    v: &DataVolume,
    outcome: &Ec2Outcome,
    permits: &Semaphore,
) -> Result<Option<(String, String)>, ReconcileError> {
    let key = format!("volume/{}", v.volume_id);
    let item_ref = ItemRef {
        key: &key,
        step_id,
        kind: "volume",
        primary_id: &v.volume_id,
    };
    let existing = ctx.journal.item(&key).await?;
    match existing.as_ref().map(|i| (i.state, i.dr_id.clone())) {
        Some((ItemState::Done, Some(dr))) => return Ok(Some((v.volume_id.clone(), dr))),
        Some((ItemState::Failed, _)) => return Ok(None),
        _ => {}
    }
    let Some(instance) = outcome.of(&v.instance_id).first() else {
        ctx.journal
            .fail(item_ref, "its instance was not restored", &json!({}))
            .await?;
        return Ok(None);
    };
    let Some(snapshot) = v.volume.snapshot.dr_id() else {
        ctx.journal
            .fail(item_ref, "the volume has no DR snapshot", &json!({}))
            .await?;
        return Ok(None);
    };
    // A volume possibly created before a crash is found by its tags.
    if existing.as_ref().map(|i| i.state) == Some(ItemState::Requested)
        && let Some(found) = volume_by_tags(ctx, &v.volume_id).await?
    {
        let item = existing.expect("checked");
        ctx.journal
            .done(&item, &found, &json!({"volume_id": found, "adopted": true}))
            .await?;
        return Ok(Some((v.volume_id.clone(), found)));
    }
    ctx.check_stop()?;
    let item = ctx
        .journal
        .request(
            item_ref,
            None,
            &json!({"instance": instance.instance_id, "az": instance.availability_zone}),
        )
        .await?;
    let tags: Vec<Tag> = ctx
        .tags(&v.volume_id)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let permit = permits
        .acquire()
        .await
        .map_err(|_| ReconcileError::Cancelled)?;
    let created = retrying(ctx, || {
        ctx.aws.ec2.create_volume(|b| {
            b.availability_zone(&instance.availability_zone)
                .snapshot_id(snapshot)
                .size(v.volume.size_gib as i32)
                .set_volume_type(v.volume.volume_type.as_deref().map(VolumeType::from))
                .set_iops(v.volume.iops.map(|i| i as i32))
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Volume)
                        .set_tags(Some(tags.clone()))
                        .build(),
                )
        })
    })
    .await;
    drop(permit);
    match created {
        Ok(out) => {
            let Some(id) = out.volume_id() else {
                return Err(ReconcileError::Unexpected {
                    operation: "CreateVolume",
                    detail: "answer without a volume id".to_owned(),
                });
            };
            ctx.journal
                .done(&item, id, &json!({"volume_id": id}))
                .await?;
            Ok(Some((v.volume_id.clone(), id.to_owned())))
        }
        Err(ReconcileError::Aws(e)) => {
            ctx.journal
                .fail(
                    item_ref,
                    &format!("{}: {}", e.code, e.message.clone().unwrap_or_default()),
                    &json!({}),
                )
                .await?;
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// The volume of this run restored from `primary_volume`, by its tags.
async fn volume_by_tags(
    ctx: &RunCtx,
    primary_volume: &str,
) -> Result<Option<String>, ReconcileError> {
    let out = retrying(ctx, || {
        ctx.aws.ec2.describe_volumes(|b| {
            b.filters(
                Filter::builder()
                    .name(format!("tag:{}", pilotlight_aws::tags::RUN))
                    .values(&ctx.run_id)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name(format!("tag:{}", pilotlight_aws::tags::SOURCE))
                    .values(primary_volume)
                    .build(),
            )
        })
    })
    .await?;
    let mut ids: Vec<String> = out
        .volumes()
        .iter()
        .filter_map(|v| v.volume_id().map(str::to_owned))
        .collect();
    ids.sort();
    Ok(ids.into_iter().next())
}

/// Attaches each created volume to its instance once both are ready (`restore.concurrency`
/// at a time, under the throttle); answers how many volumes are attached.
async fn attach_volumes(
    ctx: &RunCtx,
    tier: &TierPlan,
    outcome: &Ec2Outcome,
    volumes: &BTreeMap<String, String>,
    permits: &Semaphore,
) -> Result<usize, ReconcileError> {
    let step_id = volumes_step(tier);
    // Wait until every created volume is available or already in use.
    let mut waiting: BTreeSet<String> = volumes.values().cloned().collect();
    let mut attached_to: BTreeMap<String, String> = BTreeMap::new();
    while !waiting.is_empty() {
        let batch: Vec<String> = waiting.iter().cloned().collect();
        for chunk in batch.chunks(VOLUMES_PER_DESCRIBE) {
            let out = retrying(ctx, || {
                ctx.aws
                    .ec2
                    .describe_volumes(|b| b.set_volume_ids(Some(chunk.to_vec())))
            })
            .await?;
            for vol in out.volumes() {
                let Some(id) = vol.volume_id() else { continue };
                match vol.state() {
                    Some(VolumeState::Available) => {
                        waiting.remove(id);
                    }
                    Some(VolumeState::InUse) => {
                        if let Some(i) = vol.attachments().first().and_then(|a| a.instance_id()) {
                            attached_to.insert(id.to_owned(), i.to_owned());
                        }
                        waiting.remove(id);
                    }
                    _ => {}
                }
            }
        }
        if !waiting.is_empty() {
            ctx.pause().await?;
        }
    }
    let concurrency = ctx.settings.concurrency.max(1) as usize;
    let mut futures = Vec::new();
    for v in &tier.data_volumes {
        let Some(dr_volume) = volumes.get(&v.volume_id) else {
            continue;
        };
        let Some(instance) = outcome.of(&v.instance_id).first() else {
            continue;
        };
        let on = attached_to.get(dr_volume).map(String::as_str);
        let step_id = step_id.as_str();
        futures.push(
            async move { attach_volume(ctx, step_id, v, dr_volume, instance, on, permits).await }
                .boxed(),
        );
    }
    let results: Vec<Result<bool, ReconcileError>> = futures::stream::iter(futures)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut attached = 0;
    for r in results {
        if r? {
            attached += 1;
        }
    }
    Ok(attached)
}

/// Attaches one DR volume (`attach/<primary volume>`), or records the attachment AWS already
/// shows (`on`: the instance the volume is in use by). Answers whether it is attached.
async fn attach_volume(
    ctx: &RunCtx,
    step_id: &str,
    v: &DataVolume,
    dr_volume: &str,
    instance: &RestoredInstance,
    on: Option<&str>,
    permits: &Semaphore,
) -> Result<bool, ReconcileError> {
    let key = format!("attach/{}", v.volume_id);
    let item_ref = ItemRef {
        key: &key,
        step_id,
        kind: "attachment",
        primary_id: &v.volume_id,
    };
    let existing = ctx.journal.item(&key).await?;
    match existing.as_ref().map(|i| i.state) {
        Some(ItemState::Done) => return Ok(true),
        Some(ItemState::Failed) => return Ok(false),
        _ => {}
    }
    let detail = json!({"volume": dr_volume, "instance": instance.instance_id, "device": v.volume.device_name});
    if let Some(on) = on {
        let item = match existing {
            Some(i) => i,
            None => ctx.journal.request(item_ref, None, &detail).await?,
        };
        ctx.journal.done(&item, on, &detail).await?;
        return Ok(true);
    }
    ctx.check_stop()?;
    let item = ctx.journal.request(item_ref, None, &detail).await?;
    let permit = permits
        .acquire()
        .await
        .map_err(|_| ReconcileError::Cancelled)?;
    let result = retrying(ctx, || {
        ctx.aws.ec2.attach_volume(|b| {
            b.volume_id(dr_volume)
                .instance_id(&instance.instance_id)
                .device(&v.volume.device_name)
        })
    })
    .await;
    drop(permit);
    match result {
        Ok(_) => {
            ctx.journal
                .done(&item, &instance.instance_id, &detail)
                .await?;
            Ok(true)
        }
        Err(ReconcileError::Aws(e)) => {
            record_attach_failure(ctx, item_ref, &item, &e).await?;
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

async fn record_attach_failure(
    ctx: &RunCtx,
    item_ref: ItemRef<'_>,
    _item: &RestoreItem,
    e: &pilotlight_aws::AwsError,
) -> Result<(), ReconcileError> {
    ctx.journal
        .fail(
            item_ref,
            &format!("{}: {}", e.code, e.message.clone().unwrap_or_default()),
            &json!({}),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> RestoredInstance {
        RestoredInstance {
            instance_id: id.to_owned(),
            instance_type: "r5.xlarge".to_owned(),
            availability_zone: "us-west-2a".to_owned(),
            private_ip: None,
            public_ip: None,
        }
    }

    #[test]
    fn each_instance_of_a_batch_is_tagged_with_its_own_primary() {
        let primaries = vec!["i-p0".to_owned(), "i-p1".to_owned()];
        let same: Vec<_> = ["i-a", "i-b"].map(instance).to_vec();
        assert_eq!(
            sources_of(&primaries, &same),
            [("i-a".to_owned(), "i-p0"), ("i-b".to_owned(), "i-p1")]
        );
        // r5.2xlarge × 2 → r5.xlarge × 4: instances alternate, like `assign`.
        let fan_out: Vec<_> = ["i-a", "i-b", "i-c", "i-d"].map(instance).to_vec();
        let tagged = sources_of(&primaries, &fan_out);
        assert_eq!(tagged[2], ("i-c".to_owned(), "i-p0"));
        assert_eq!(tagged[3], ("i-d".to_owned(), "i-p1"));
        let by_assign = assign(&primaries, &fan_out);
        for (instance, primary) in &tagged {
            assert!(
                by_assign[*primary]
                    .iter()
                    .any(|i| &i.instance_id == instance)
            );
        }
        // r5.xlarge × 2 → r5.2xlarge × 1: the shared instance names the first primary.
        assert_eq!(
            sources_of(&primaries, &[instance("i-a")]),
            [("i-a".to_owned(), "i-p0")]
        );
    }

    #[test]
    fn client_tokens_are_short_ascii_and_deterministic() {
        let a = client_token(
            "r-20261124T235959-abcdef",
            "launch/t1-0123456789abcdef/12",
            3,
        );
        assert_eq!(a.len(), 43);
        assert!(a.is_ascii());
        assert_eq!(
            a,
            client_token(
                "r-20261124T235959-abcdef",
                "launch/t1-0123456789abcdef/12",
                3
            )
        );
        assert_ne!(
            a,
            client_token(
                "r-20261124T235959-abcdef",
                "launch/t1-0123456789abcdef/12",
                4
            )
        );
        assert_ne!(
            a,
            client_token("r-other", "launch/t1-0123456789abcdef/12", 3)
        );
    }
}
