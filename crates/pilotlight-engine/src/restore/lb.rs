//! Load balancers (D6): the plan's classic and v2 load balancers recreated in the DR region from
//! the inventory, then the restored instances registered.
//!
//! # What is created
//!
//! [`create`] runs from the start of the restore, beside the EC2 tiers, in two phases:
//!
//! 1. every load balancer and every target group (each target group once, however many load
//!    balancers share it), all at once under `restore.concurrency`:
//!    - classic: `CreateLoadBalancer` with the primary's name, scheme, listeners (instance
//!      protocol and port kept, the DR certificate the plan mapped), DR subnets and security
//!      groups and the run's tags; then `ConfigureHealthCheck` when the inventory has one;
//!    - v2 (application, network): `CreateLoadBalancer` with name, type, scheme, DR subnets and
//!      security groups and tags; `CreateTargetGroup` with name, protocol, port, target type and
//!      health check in the DR VPC — the store's mapping of the primary VPC, else the VPC of the
//!      load balancer's first DR subnet (`DescribeSubnets`, cached);
//! 2. once a v2 load balancer and its target groups exist, `CreateListener` per listener: port,
//!    protocol, SSL policy, the first DR certificate as default (the others through
//!    `AddListenerCertificates`) and a default `forward` to the DR target group(s).
//!
//! [`register`] runs once the EC2 tiers are up: one `RegisterInstancesWithLoadBalancer` per
//! classic load balancer and one `RegisterTargets` per target group, with every DR instance that
//! stands in for a primary member (plan B's fan-out registers all of them; `ip` target groups
//! get their private IPs), then waits until every v2 load balancer is `active`: one
//! `DescribeLoadBalancers` per poll for at most [`ARNS_PER_DESCRIBE`] outstanding ARNs.
//!
//! An item that cannot be done — a subnet, security group or certificate without DR
//! counterpart, a gateway load balancer, a default action the inventory cannot rebuild, AWS
//! refusing the request — is journalled `failed` with its reason and the rest goes on. Only
//! cancellation, store failures and AWS pushing back beyond `retrying`'s patience end the step
//! with an error (the executor then executes the run again).
//!
//! # Journal (D10)
//!
//! | item | kind | `dr_id` | detail |
//! |---|---|---|---|
//! | `lb/<source>` | `load_balancer` | name (classic) or ARN | [`DrLoadBalancer`] and kind |
//! | `health/<source>` | `health_check` | name | the health check target |
//! | `tg/<primary target group ARN>` | `target_group` | DR ARN | name |
//! | `listener/<source>/<port>` | `listener` | DR ARN | certificates |
//! | `register/<source or target group ARN>` | `registration` | name or DR ARN | members |
//! | `active/<source>` | `load_balancer_active` | — | written only when the wait fails |
//!
//! A `done` item is reused as it is: a resumed run rebuilds the [`LbOutcome`] from the items and
//! creates nothing. A `requested` (or `failed`) item is resolved first by describing the
//! resource by its deterministic name (the primary's); one found is adopted only when its tags
//! say this run created it from this source, else the item fails and the resource is left
//! alone. The same lookup runs when AWS answers a create with `DuplicateLoadBalancerName`,
//! `DuplicateTargetGroupName` or `DuplicateListener`, and before a create is sent again after a
//! transient error (the first may have landed: AWS answers a repeated create of the same
//! configuration with the existing resource, moto makes a second one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_elasticloadbalancing::types::{
    HealthCheck, Instance as ElbInstance, Listener as ElbListener, Tag as ElbTag,
};
use aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, ForwardActionConfig, LoadBalancerSchemeEnum,
    LoadBalancerStateEnum, LoadBalancerTypeEnum, ProtocolEnum, Tag as V2Tag, TargetDescription,
    TargetGroupTuple, TargetTypeEnum,
};
use futures::future::join_all;
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::config::RestoreConfig;
use pilotlight_core::inventory::{
    ClassicLoadBalancer, Inventory, Listener as InventoryListener, LoadBalancer, Scheme,
    TargetGroup,
};
use pilotlight_core::plan::{
    DrRef, LbKind, ListenerRestore, LoadBalancerRestore, TargetGroupRestore,
};
use pilotlight_store::{ItemState, RestoreItem, StepState};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::journal::{ItemRef, detail};
use super::run::retrying;
use super::{DrLoadBalancer, Ec2Outcome, LbOutcome, RunCtx};
use crate::ReconcileError;

/// Step of the creations.
const STEP_CREATE: &str = "lb/create";
/// Step of the registrations and the wait for `active`.
const STEP_REGISTER: &str = "lb/register";
/// Kind of both step rows.
const STEP_KIND: &str = "lb";
/// Most load balancer ARNs per v2 `DescribeLoadBalancers` (AWS's limit).
pub const ARNS_PER_DESCRIBE: usize = 20;
/// Most members per registration call. AWS documents no per-call limit; 1,000 is the default
/// quota of targets per load balancer, so a larger call could not succeed anyway.
const MEMBERS_PER_CALL: usize = 1_000;
/// Most tags on a classic load balancer (AWS's limit).
const CLASSIC_MAX_TAGS: usize = 10;
/// Most tags on a v2 resource (AWS's limit).
const V2_MAX_TAGS: usize = 50;
/// The wait for `active` gives up after this many times `restore.load_balancer_provision_secs`…
const ACTIVE_WAIT_FACTOR: u64 = 10;
/// …but never before this.
const ACTIVE_WAIT_MIN: Duration = Duration::from_secs(600);

/// What a done `lb/<source>` item holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LbDone {
    kind: LbKind,
    load_balancer: DrLoadBalancer,
    /// Found already existing (after a crash or a lost answer) rather than created by the call.
    adopted: bool,
}

/// The run's load-balancer items by key, read once per step.
type Items = HashMap<String, RestoreItem>;

/// A resource a create answered, or a lookup found with its tags (`None`: created just now).
#[derive(Debug, Clone)]
struct Found<T> {
    value: T,
    tags: Option<BTreeMap<String, String>>,
}

impl<T> Found<T> {
    fn created(value: T) -> Found<T> {
        Found { value, tags: None }
    }
}

/// One registration call (or a few, chunked): every DR member of a classic load balancer or a
/// target group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Registration {
    /// `register/<source or primary target group ARN>`.
    key: String,
    /// The primary load balancer name or target group ARN.
    primary: String,
    /// The DR load balancer name or target group ARN.
    dr_id: String,
    members: Members,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Members {
    /// Classic: DR instance ids.
    Instances(Vec<String>),
    /// v2: DR instance ids or private IPs, with the port of the primary target.
    Targets(Vec<(String, Option<i32>)>),
}

impl Members {
    fn len(&self) -> usize {
        match self {
            Members::Instances(v) => v.len(),
            Members::Targets(v) => v.len(),
        }
    }
}

fn lb_key(source: &str) -> String {
    format!("lb/{source}")
}

fn health_key(source: &str) -> String {
    format!("health/{source}")
}

fn tg_key(primary_arn: &str) -> String {
    format!("tg/{primary_arn}")
}

fn listener_key(source: &str, port: i32) -> String {
    format!("listener/{source}/{port}")
}

fn register_key(primary: &str) -> String {
    format!("register/{primary}")
}

fn active_key(source: &str) -> String {
    format!("active/{source}")
}

/// Recreates every load balancer of the plan with its target groups and listeners, and
/// answers the DR load balancers by primary key and the DR target group of each primary target
/// group. A resumed run rebuilds the answer from the journal.
///
/// # Errors
/// [`ReconcileError::Cancelled`] when the run stops; store failures; AWS throttling or
/// transient errors that outlast [`retrying`]; an AWS answer without the id it must carry.
pub async fn create(ctx: &RunCtx) -> Result<LbOutcome, ReconcileError> {
    let plan = &ctx.plan.restore.load_balancers;
    if plan.is_empty() {
        return Ok(LbOutcome::default());
    }
    let items = load_items(ctx).await?;
    if ctx.journal.step_done(STEP_CREATE).await?.is_some() {
        return Ok(outcome_from_items(plan, &items));
    }
    let target_groups = unique_target_groups(plan);
    let listeners_planned: usize = plan
        .iter()
        .filter(|lb| is_v2(lb.kind))
        .map(|lb| lb.listeners.len())
        .sum();
    let planned = json!({
        "load_balancers": plan.len(),
        "target_groups": target_groups.len(),
        "listeners": listeners_planned,
    });
    ctx.journal
        .step(STEP_CREATE, 0, STEP_KIND, StepState::Running, &planned)
        .await?;

    let (lb_results, tg_results) = tokio::join!(
        join_all(plan.iter().map(|lb| ensure_lb(ctx, &items, lb))),
        join_all(
            target_groups
                .iter()
                .map(|(lb, tg)| ensure_target_group(ctx, &items, lb, tg))
        ),
    );
    let mut outcome = LbOutcome::default();
    let mut first_error: Option<ReconcileError> = None;
    for (lb, result) in plan.iter().zip(lb_results) {
        match result {
            Ok(Some(dr)) => {
                outcome.load_balancers.insert(lb.source.clone(), dr);
            }
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for ((_, tg), result) in target_groups.iter().zip(tg_results) {
        match result {
            Ok(Some(dr)) => {
                outcome.target_groups.insert(tg.arn.clone(), dr);
            }
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let listener_jobs: Vec<(&LoadBalancerRestore, &ListenerRestore, &DrLoadBalancer)> = plan
        .iter()
        .filter(|lb| is_v2(lb.kind))
        .filter_map(|lb| outcome.load_balancers.get(&lb.source).map(|dr| (lb, dr)))
        .flat_map(|(lb, dr)| lb.listeners.iter().map(move |l| (lb, l, dr)))
        .collect();
    let listener_results = join_all(
        listener_jobs
            .iter()
            .map(|(lb, l, dr)| ensure_listener(ctx, &items, lb, l, dr, &outcome.target_groups)),
    )
    .await;
    let mut listeners_created = 0usize;
    for result in listener_results {
        match result {
            Ok(true) => listeners_created += 1,
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    ctx.journal
        .step(
            STEP_CREATE,
            0,
            STEP_KIND,
            StepState::Done,
            &json!({
                "load_balancers": plan.len(),
                "load_balancers_created": outcome.load_balancers.len(),
                "target_groups": target_groups.len(),
                "target_groups_created": outcome.target_groups.len(),
                "listeners": listeners_planned,
                "listeners_created": listeners_created,
            }),
        )
        .await?;
    Ok(outcome)
}

/// Registers the restored instances with the recreated load balancers and target groups, then
/// waits until every v2 load balancer is active.
///
/// # Errors
/// [`ReconcileError::Cancelled`] when the run stops; store failures; AWS throttling or
/// transient errors that outlast [`retrying`].
pub async fn register(
    ctx: &RunCtx,
    lbs: &LbOutcome,
    ec2: &Ec2Outcome,
) -> Result<(), ReconcileError> {
    let plan = &ctx.plan.restore.load_balancers;
    if plan.is_empty() || ctx.journal.step_done(STEP_REGISTER).await?.is_some() {
        return Ok(());
    }
    let items = load_items(ctx).await?;
    let jobs = registrations(plan, &ctx.inventory, lbs, ec2);
    ctx.journal
        .step(
            STEP_REGISTER,
            0,
            STEP_KIND,
            StepState::Running,
            &json!({"registrations": jobs.len()}),
        )
        .await?;
    let results = join_all(jobs.iter().map(|job| register_one(ctx, &items, job))).await;
    let mut registered = 0usize;
    let mut members = 0usize;
    for (job, result) in jobs.iter().zip(results) {
        if result? {
            registered += 1;
            members += job.members.len();
        }
    }
    let (active, not_active) = wait_active(ctx, lbs).await?;
    ctx.journal
        .step(
            STEP_REGISTER,
            0,
            STEP_KIND,
            StepState::Done,
            &json!({
                "registrations": jobs.len(),
                "registrations_done": registered,
                "members": members,
                "load_balancers_active": active,
                "load_balancers_not_active": not_active,
            }),
        )
        .await?;
    Ok(())
}

/// The run's items of this module, by key.
async fn load_items(ctx: &RunCtx) -> Result<Items, ReconcileError> {
    const PREFIXES: [&str; 6] = ["lb/", "health/", "tg/", "listener/", "register/", "active/"];
    Ok(ctx
        .journal
        .items()
        .await?
        .into_iter()
        .filter(|i| PREFIXES.iter().any(|p| i.item_key.starts_with(p)))
        .map(|i| (i.item_key.clone(), i))
        .collect())
}

fn is_v2(kind: LbKind) -> bool {
    kind != LbKind::Classic
}

/// The done detail of a load balancer item.
fn done_lb(item: &RestoreItem) -> Option<LbDone> {
    (item.state == ItemState::Done)
        .then(|| serde_json::from_value::<LbDone>(detail(item)).ok())
        .flatten()
}

/// The outcome of a finished step, from its items.
fn outcome_from_items(plan: &[LoadBalancerRestore], items: &Items) -> LbOutcome {
    let mut outcome = LbOutcome::default();
    for lb in plan {
        if let Some(done) = items.get(&lb_key(&lb.source)).and_then(done_lb) {
            outcome
                .load_balancers
                .insert(lb.source.clone(), done.load_balancer);
        }
        for tg in &lb.target_groups {
            if let Some(item) = items.get(&tg_key(&tg.arn))
                && item.state == ItemState::Done
                && let Some(dr) = &item.dr_id
            {
                outcome.target_groups.insert(tg.arn.clone(), dr.clone());
            }
        }
    }
    outcome
}

/// Each target group of the v2 load balancers once, with the first load balancer serving it.
fn unique_target_groups(
    plan: &[LoadBalancerRestore],
) -> Vec<(&LoadBalancerRestore, &TargetGroupRestore)> {
    let mut seen = BTreeSet::new();
    plan.iter()
        .filter(|lb| is_v2(lb.kind))
        .flat_map(|lb| lb.target_groups.iter().map(move |tg| (lb, tg)))
        .filter(|(_, tg)| seen.insert(tg.arn.as_str()))
        .collect()
}

/// Why the load balancer cannot be created in the DR network, if it cannot.
fn missing_network(lb: &LoadBalancerRestore) -> Option<String> {
    if lb.subnets.is_empty() {
        return Some("the load balancer has no subnet to recreate it in".to_owned());
    }
    if let Some(DrRef::Missing(s)) = lb.subnets.iter().find(|s| s.is_missing()) {
        return Some(format!("subnet {s} has no DR counterpart"));
    }
    if let Some(DrRef::Missing(g)) = lb.security_groups.iter().find(|g| g.is_missing()) {
        return Some(format!("security group {g} has no DR counterpart"));
    }
    None
}

/// The DR ids of mapped references (callers check [`missing_network`] first).
fn dr_ids(refs: &[DrRef]) -> Vec<String> {
    refs.iter()
        .filter_map(|r| r.dr_id().map(str::to_owned))
        .collect()
}

/// The DR certificates of a listener, deduplicated in plan order, or why there are none.
fn dr_certificates(port: i32, certificates: &[DrRef]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for c in certificates {
        match c {
            DrRef::Dr(arn) => {
                if !out.contains(arn) {
                    out.push(arn.clone());
                }
            }
            DrRef::Missing(primary) => {
                return Err(format!(
                    "certificate {primary} of listener {port} has no DR counterpart"
                ));
            }
        }
    }
    Ok(out)
}

/// The run's tags first, then the primary's own tags (not AWS's or pilotlight's) up to `limit`.
fn merged_tags(
    ours: Vec<(String, String)>,
    primary: &BTreeMap<String, String>,
    limit: usize,
) -> Vec<(String, String)> {
    let mut out = ours;
    for (k, v) in primary {
        if out.len() >= limit {
            break;
        }
        if k.starts_with("aws:") || k.starts_with("pilotlight:") {
            continue;
        }
        out.push((k.clone(), v.clone()));
    }
    out
}

/// Whether tags say this run created the resource from `source`; else why not.
fn owned_by(tags: &BTreeMap<String, String>, run_id: &str, source: &str) -> Result<(), String> {
    let get = |k: &str| tags.get(k).map(String::as_str);
    let managed = get(pilotlight_aws::tags::MANAGED) == Some("true");
    match (
        managed,
        get(pilotlight_aws::tags::RUN),
        get(pilotlight_aws::tags::SOURCE),
    ) {
        (true, Some(run), Some(src)) if run == run_id && src == source => Ok(()),
        (true, Some(run), _) if run != run_id => Err(format!("it belongs to pilotlight run {run}")),
        (true, _, Some(src)) if src != source => Err(format!("it mirrors {src}")),
        (true, _, _) => Err("its pilotlight tags are incomplete".to_owned()),
        (false, _, _) => Err("pilotlight did not create it".to_owned()),
    }
}

/// The reason journalled for an AWS refusal.
fn aws_reason(e: &AwsError) -> String {
    format!(
        "{} refused ({}): {}",
        e.operation,
        e.code,
        e.message.as_deref().unwrap_or("no message")
    )
}

/// Whether an AWS error ends the item (recorded failed) rather than the step: everything but
/// throttling and transient faults, which `retrying` already waited out.
fn gives_up(e: &AwsError) -> bool {
    !matches!(e.kind, ErrorKind::Throttled | ErrorKind::Transient)
}

/// AWS's answer to a create of something that exists by that name or port.
fn is_duplicate(e: &AwsError) -> bool {
    matches!(
        e.code.as_str(),
        "DuplicateLoadBalancerName" | "DuplicateTargetGroupName" | "DuplicateListener"
    )
}

/// The hosted zone of classic load balancers in `region`, which alias records need
/// ([`pilotlight_core::elb_zones`]): `CreateLoadBalancer` does not answer it.
fn classic_hosted_zone(region: &str) -> Option<&'static str> {
    pilotlight_core::elb_zones::elb_hosted_zone(
        region,
        pilotlight_core::elb_zones::ElbFlavour::ClassicOrApplication,
    )
}

/// The classic listeners to create: the primary's, with the plan's DR certificate.
fn classic_listeners(
    inventory: &ClassicLoadBalancer,
    lb: &LoadBalancerRestore,
) -> Result<Vec<ElbListener>, String> {
    inventory
        .listeners
        .iter()
        .map(|l| {
            let certificate = match &l.certificate_arn {
                None => None,
                Some(primary) => {
                    let planned = lb.listeners.iter().find(|p| p.port == l.port);
                    match planned.and_then(|p| p.certificates.first()) {
                        Some(DrRef::Dr(arn)) => Some(arn.clone()),
                        Some(DrRef::Missing(_)) | None => {
                            return Err(format!(
                                "certificate {primary} of listener {} has no DR counterpart",
                                l.port
                            ));
                        }
                    }
                }
            };
            ElbListener::builder()
                .protocol(&l.protocol)
                .load_balancer_port(l.port)
                .set_instance_protocol(l.instance_protocol.clone())
                .instance_port(l.instance_port)
                .set_ssl_certificate_id(certificate)
                .build()
                .map_err(|e| format!("listener {} cannot be built: {e}", l.port))
        })
        .collect()
}

/// The default action of a v2 listener: forward to the DR target group(s), or why the
/// inventory cannot rebuild it.
fn default_action(
    listener: &InventoryListener,
    target_groups: &BTreeMap<String, String>,
) -> Result<Action, String> {
    if !listener.default_action_types.is_empty() {
        return Err(format!(
            "default action {} cannot be rebuilt: the inventory keeps only its type",
            listener.default_action_types.join(", ")
        ));
    }
    if listener.default_target_group_arns.is_empty() {
        return Err("the listener has no default action".to_owned());
    }
    let mut dr = Vec::with_capacity(listener.default_target_group_arns.len());
    for arn in &listener.default_target_group_arns {
        match target_groups.get(arn) {
            Some(d) => dr.push(d.clone()),
            None => return Err(format!("target group {arn} was not recreated")),
        }
    }
    let action = Action::builder().r#type(ActionTypeEnum::Forward);
    Ok(match dr.as_slice() {
        [one] => action.target_group_arn(one).build(),
        many => action
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(
                        many.iter()
                            .map(|a| {
                                TargetGroupTuple::builder()
                                    .target_group_arn(a)
                                    .weight(1)
                                    .build()
                            })
                            .collect(),
                    ))
                    .build(),
            )
            .build(),
    })
}

/// The DR instances standing in for the primary members, each once, sorted.
fn classic_members(instance_ids: &[String], ec2: &Ec2Outcome) -> Vec<String> {
    instance_ids
        .iter()
        .flat_map(|p| ec2.of(p).iter().map(|i| i.instance_id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The DR targets of a target group: for each primary target among the selected instances,
/// every DR instance standing in for it (its private IP for `ip` target groups), with the
/// primary target's port; each once, sorted.
fn targets_for(
    group: &TargetGroup,
    selected: &[String],
    inventory: &Inventory,
    ec2: &Ec2Outcome,
) -> Vec<(String, Option<i32>)> {
    let selected: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
    let by_ip: BTreeMap<&str, &str> = inventory
        .instances
        .iter()
        .filter_map(|i| i.private_ip.as_deref().map(|ip| (ip, i.id.as_str())))
        .collect();
    let ip = group.target_type == "ip";
    let mut out = BTreeSet::new();
    for t in &group.targets {
        let primary = match group.target_type.as_str() {
            "instance" => Some(t.id.as_str()),
            "ip" => by_ip.get(t.id.as_str()).copied(),
            _ => None,
        };
        let Some(primary) = primary.filter(|p| selected.contains(p)) else {
            continue;
        };
        for dr in ec2.of(primary) {
            let id = if ip {
                dr.private_ip.clone()
            } else {
                Some(dr.instance_id.clone())
            };
            if let Some(id) = id {
                out.insert((id, t.port));
            }
        }
    }
    out.into_iter().collect()
}

/// Every registration the restore makes: classic load balancers, then target groups (each
/// once), leaving out those with nothing recreated or nothing to register.
fn registrations(
    plan: &[LoadBalancerRestore],
    inventory: &Inventory,
    lbs: &LbOutcome,
    ec2: &Ec2Outcome,
) -> Vec<Registration> {
    let mut out = Vec::new();
    for lb in plan.iter().filter(|lb| lb.kind == LbKind::Classic) {
        let Some(dr) = lbs.load_balancers.get(&lb.source) else {
            continue;
        };
        let members = classic_members(&lb.instance_ids, ec2);
        if !members.is_empty() {
            out.push(Registration {
                key: register_key(&lb.source),
                primary: lb.source.clone(),
                dr_id: dr.id.clone(),
                members: Members::Instances(members),
            });
        }
    }
    for (lb, tg) in unique_target_groups(plan) {
        let Some(dr) = lbs.target_groups.get(&tg.arn) else {
            continue;
        };
        let Some(group) = inventory
            .load_balancers
            .iter()
            .find(|l| l.arn == lb.source)
            .and_then(|l| l.target_groups.iter().find(|g| g.arn == tg.arn))
        else {
            continue;
        };
        let targets = targets_for(group, &tg.instance_ids, inventory, ec2);
        if !targets.is_empty() {
            out.push(Registration {
                key: register_key(&tg.arn),
                primary: tg.arn.clone(),
                dr_id: dr.clone(),
                members: Members::Targets(targets),
            });
        }
    }
    out
}

/// How long the wait for `active` lasts at most.
fn active_wait_limit(settings: &RestoreConfig) -> Duration {
    Duration::from_secs(
        settings
            .load_balancer_provision_secs
            .saturating_mul(ACTIVE_WAIT_FACTOR),
    )
    .max(ACTIVE_WAIT_MIN)
}

/// Sends a create under a `restore.concurrency` permit, through [`retrying`]; with
/// `look_first`, or after a transient error (the create may have landed), or when AWS says the
/// name is taken, `lookup` runs first and what it finds is answered instead.
async fn create_or_find<T, C, CF, L, LF>(
    ctx: &RunCtx,
    look_first: bool,
    create: C,
    lookup: L,
) -> Result<Found<T>, ReconcileError>
where
    C: Fn() -> CF,
    CF: Future<Output = Result<Found<T>, AwsError>>,
    L: Fn() -> LF,
    LF: Future<Output = Result<Option<Found<T>>, AwsError>>,
{
    let unsure = AtomicBool::new(look_first);
    let (unsure, create, lookup) = (&unsure, &create, &lookup);
    ctx.check_stop()?;
    retrying(ctx, move || async move {
        if unsure.load(Ordering::SeqCst) {
            if let Some(found) = lookup().await? {
                return Ok(found);
            }
            unsure.store(false, Ordering::SeqCst);
        }
        match create().await {
            Ok(found) => Ok(found),
            Err(e) if is_duplicate(&e) => lookup().await?.ok_or(e),
            Err(e) => {
                if e.kind == ErrorKind::Transient {
                    unsure.store(true, Ordering::SeqCst);
                }
                Err(e)
            }
        }
    })
    .await
}

/// Runs one mutation that needs no lookup (idempotent calls) under a permit.
async fn mutate<T, F, Fut>(ctx: &RunCtx, call: F) -> Result<T, ReconcileError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    ctx.check_stop()?;
    retrying(ctx, call).await
}

/// A classic load balancer by name, with its tags.
async fn find_classic(ctx: &RunCtx, name: &str) -> Result<Option<Found<DrLoadBalancer>>, AwsError> {
    let out = match ctx
        .aws
        .elb
        .describe_load_balancers(|b| b.load_balancer_names(name))
        .await
    {
        Ok(out) => out,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(d) = out
        .load_balancer_descriptions()
        .iter()
        .find(|d| d.load_balancer_name() == Some(name))
    else {
        return Ok(None);
    };
    let tagged = ctx
        .aws
        .elb
        .describe_tags(|b| b.load_balancer_names(name))
        .await?;
    let tags = tagged
        .tag_descriptions()
        .iter()
        .filter(|t| t.load_balancer_name() == Some(name))
        .flat_map(|t| t.tags())
        .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
        .collect();
    Ok(Some(Found {
        value: DrLoadBalancer {
            id: name.to_owned(),
            name: name.to_owned(),
            dns_name: d.dns_name().unwrap_or_default().to_owned(),
            canonical_hosted_zone_id: d
                .canonical_hosted_zone_name_id()
                .map(str::to_owned)
                .or_else(|| classic_hosted_zone(ctx.aws.elb.region()).map(str::to_owned)),
        },
        tags: Some(tags),
    }))
}

/// The tags of one v2 resource.
async fn v2_tags(ctx: &RunCtx, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = ctx
        .aws
        .elbv2
        .describe_tags(|b| b.resource_arns(arn))
        .await?;
    Ok(out
        .tag_descriptions()
        .iter()
        .filter(|d| d.resource_arn() == Some(arn))
        .flat_map(|d| d.tags())
        .filter_map(|t| {
            t.key()
                .map(|k| (k.to_owned(), t.value().unwrap_or_default().to_owned()))
        })
        .collect())
}

/// A DR load balancer as a v2 answer describes it (empty fields where it says nothing).
fn dr_from_v2(
    lb: Option<&aws_sdk_elasticloadbalancingv2::types::LoadBalancer>,
    name: &str,
) -> DrLoadBalancer {
    DrLoadBalancer {
        id: lb
            .and_then(|l| l.load_balancer_arn())
            .unwrap_or_default()
            .to_owned(),
        name: lb
            .and_then(|l| l.load_balancer_name())
            .unwrap_or(name)
            .to_owned(),
        dns_name: lb.and_then(|l| l.dns_name()).unwrap_or_default().to_owned(),
        canonical_hosted_zone_id: lb
            .and_then(|l| l.canonical_hosted_zone_id())
            .map(str::to_owned),
    }
}

/// A v2 load balancer by name, with its tags.
async fn find_v2(ctx: &RunCtx, name: &str) -> Result<Option<Found<DrLoadBalancer>>, AwsError> {
    let out = match ctx
        .aws
        .elbv2
        .describe_load_balancers(|b| b.names(name))
        .await
    {
        Ok(out) => out,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(lb) = out
        .load_balancers()
        .iter()
        .find(|l| l.load_balancer_name() == Some(name))
    else {
        return Ok(None);
    };
    let value = dr_from_v2(Some(lb), name);
    if value.id.is_empty() {
        return Ok(None);
    }
    let tags = v2_tags(ctx, &value.id).await?;
    Ok(Some(Found {
        value,
        tags: Some(tags),
    }))
}

/// A target group by name (its ARN), with its tags.
async fn find_target_group(ctx: &RunCtx, name: &str) -> Result<Option<Found<String>>, AwsError> {
    let out = match ctx
        .aws
        .elbv2
        .describe_target_groups(|b| b.names(name))
        .await
    {
        Ok(out) => out,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(arn) = out
        .target_groups()
        .iter()
        .find(|g| g.target_group_name() == Some(name))
        .and_then(|g| g.target_group_arn())
    else {
        return Ok(None);
    };
    let tags = v2_tags(ctx, arn).await?;
    Ok(Some(Found {
        value: arn.to_owned(),
        tags: Some(tags),
    }))
}

/// The listener on `port` of a DR load balancer (its ARN). It is on a load balancer of this
/// run, so it is this run's.
async fn find_listener(
    ctx: &RunCtx,
    lb_arn: &str,
    port: i32,
) -> Result<Option<Found<String>>, AwsError> {
    let out = ctx
        .aws
        .elbv2
        .describe_listeners(|b| b.load_balancer_arn(lb_arn).page_size(400))
        .await?;
    Ok(out
        .listeners()
        .iter()
        .find(|l| l.port() == Some(port))
        .and_then(|l| l.listener_arn())
        .map(|arn| Found::created(arn.to_owned())))
}

/// Records a created or adopted load balancer, or fails the item; answers it when done.
async fn finish_lb(
    ctx: &RunCtx,
    item_ref: ItemRef<'_>,
    item: &RestoreItem,
    lb: &LoadBalancerRestore,
    result: Result<Found<DrLoadBalancer>, ReconcileError>,
) -> Result<Option<DrLoadBalancer>, ReconcileError> {
    let failed = json!({"name": lb.name});
    let found = match result {
        Ok(found) => found,
        Err(ReconcileError::Aws(e)) if gives_up(&e) => {
            ctx.journal.fail(item_ref, &aws_reason(&e), &failed).await?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if let Some(tags) = &found.tags
        && let Err(why) = owned_by(tags, &ctx.run_id, &lb.source)
    {
        let reason = format!(
            "a load balancer named {} already exists in the DR region and {why}; it is left alone",
            lb.name
        );
        ctx.journal.fail(item_ref, &reason, &failed).await?;
        return Ok(None);
    }
    if found.value.id.is_empty() || found.value.dns_name.is_empty() {
        return Err(ReconcileError::Unexpected {
            operation: "CreateLoadBalancer",
            detail: format!("no id or DNS name for load balancer {}", lb.name),
        });
    }
    let done = LbDone {
        kind: lb.kind,
        load_balancer: found.value.clone(),
        adopted: found.tags.is_some(),
    };
    ctx.journal
        .done(item, &found.value.id, &json!(done))
        .await?;
    Ok(Some(found.value))
}

/// One load balancer: from the journal when done, else created (or found); a classic one also
/// gets its health check.
async fn ensure_lb(
    ctx: &RunCtx,
    items: &Items,
    lb: &LoadBalancerRestore,
) -> Result<Option<DrLoadBalancer>, ReconcileError> {
    let key = lb_key(&lb.source);
    let item_ref = ItemRef {
        key: &key,
        step_id: STEP_CREATE,
        kind: "load_balancer",
        primary_id: &lb.source,
    };
    let prior = items.get(&key);
    let dr = match prior.and_then(done_lb) {
        Some(done) => Some(done.load_balancer),
        None => match lb.kind {
            LbKind::Classic => create_classic(ctx, item_ref, prior.is_some(), lb).await?,
            LbKind::Application | LbKind::Network => {
                create_v2(ctx, item_ref, prior.is_some(), lb).await?
            }
            LbKind::Gateway => {
                let reason = "gateway load balancers are not recreated: their appliances are \
                              not part of the restore";
                ctx.journal
                    .fail(item_ref, reason, &json!({"name": lb.name}))
                    .await?;
                None
            }
        },
    };
    if dr.is_some() && lb.kind == LbKind::Classic && lb.health_check {
        ensure_health_check(ctx, items, lb).await?;
    }
    Ok(dr)
}

async fn create_classic(
    ctx: &RunCtx,
    item_ref: ItemRef<'_>,
    look_first: bool,
    lb: &LoadBalancerRestore,
) -> Result<Option<DrLoadBalancer>, ReconcileError> {
    let failed = json!({"name": lb.name});
    let Some(inventory) = ctx
        .inventory
        .classic_load_balancers
        .iter()
        .find(|c| c.name == lb.source)
    else {
        let reason = "the load balancer is not in the run's inventory";
        ctx.journal.fail(item_ref, reason, &failed).await?;
        return Ok(None);
    };
    if let Some(reason) = missing_network(lb) {
        ctx.journal.fail(item_ref, &reason, &failed).await?;
        return Ok(None);
    }
    let listeners = match classic_listeners(inventory, lb) {
        Ok(l) => l,
        Err(reason) => {
            ctx.journal.fail(item_ref, &reason, &failed).await?;
            return Ok(None);
        }
    };
    let subnets = dr_ids(&lb.subnets);
    let groups = dr_ids(&lb.security_groups);
    let tags: Vec<ElbTag> = merged_tags(ctx.tags(&lb.source), &inventory.tags, CLASSIC_MAX_TAGS)
        .into_iter()
        .filter_map(|(k, v)| ElbTag::builder().key(k).value(v).build().ok())
        .collect();
    let zone = classic_hosted_zone(ctx.aws.elb.region()).map(str::to_owned);
    ctx.check_stop()?;
    let item = ctx
        .journal
        .request(item_ref, None, &json!({"name": lb.name, "kind": lb.kind}))
        .await?;
    let name = lb.name.as_str();
    let internal = (lb.scheme == Scheme::Internal).then(|| "internal".to_owned());
    let (listeners, subnets, groups, tags, zone, internal) =
        (&listeners, &subnets, &groups, &tags, &zone, &internal);
    let result = create_or_find(
        ctx,
        look_first,
        move || async move {
            let out = ctx
                .aws
                .elb
                .create_load_balancer(|b| {
                    b.load_balancer_name(name)
                        .set_listeners(Some(listeners.clone()))
                        .set_subnets(Some(subnets.clone()))
                        .set_security_groups((!groups.is_empty()).then(|| groups.clone()))
                        .set_scheme(internal.clone())
                        .set_tags(Some(tags.clone()))
                })
                .await?;
            Ok(Found::created(DrLoadBalancer {
                id: name.to_owned(),
                name: name.to_owned(),
                dns_name: out.dns_name().unwrap_or_default().to_owned(),
                canonical_hosted_zone_id: zone.clone(),
            }))
        },
        move || find_classic(ctx, name),
    )
    .await;
    finish_lb(ctx, item_ref, &item, lb, result).await
}

async fn create_v2(
    ctx: &RunCtx,
    item_ref: ItemRef<'_>,
    look_first: bool,
    lb: &LoadBalancerRestore,
) -> Result<Option<DrLoadBalancer>, ReconcileError> {
    let failed = json!({"name": lb.name});
    let Some(inventory) = ctx
        .inventory
        .load_balancers
        .iter()
        .find(|l| l.arn == lb.source)
    else {
        let reason = "the load balancer is not in the run's inventory";
        ctx.journal.fail(item_ref, reason, &failed).await?;
        return Ok(None);
    };
    if let Some(reason) = missing_network(lb) {
        ctx.journal.fail(item_ref, &reason, &failed).await?;
        return Ok(None);
    }
    let lb_type = if lb.kind == LbKind::Network {
        LoadBalancerTypeEnum::Network
    } else {
        LoadBalancerTypeEnum::Application
    };
    let scheme = match lb.scheme {
        Scheme::Internal => LoadBalancerSchemeEnum::Internal,
        Scheme::InternetFacing => LoadBalancerSchemeEnum::InternetFacing,
    };
    let subnets = dr_ids(&lb.subnets);
    let groups = dr_ids(&lb.security_groups);
    let tags: Vec<V2Tag> = merged_tags(ctx.tags(&lb.source), &inventory.tags, V2_MAX_TAGS)
        .into_iter()
        .map(|(k, v)| V2Tag::builder().key(k).value(v).build())
        .collect();
    ctx.check_stop()?;
    let item = ctx
        .journal
        .request(item_ref, None, &json!({"name": lb.name, "kind": lb.kind}))
        .await?;
    let name = lb.name.as_str();
    let (lb_type, scheme, subnets, groups, tags) = (&lb_type, &scheme, &subnets, &groups, &tags);
    let result = create_or_find(
        ctx,
        look_first,
        move || async move {
            let out = ctx
                .aws
                .elbv2
                .create_load_balancer(|b| {
                    b.name(name)
                        .r#type(lb_type.clone())
                        .scheme(scheme.clone())
                        .set_subnets(Some(subnets.clone()))
                        .set_security_groups((!groups.is_empty()).then(|| groups.clone()))
                        .set_tags(Some(tags.clone()))
                })
                .await?;
            Ok(Found::created(dr_from_v2(
                out.load_balancers().first(),
                name,
            )))
        },
        move || find_v2(ctx, name),
    )
    .await;
    finish_lb(ctx, item_ref, &item, lb, result).await
}

/// `ConfigureHealthCheck` of a classic load balancer, once.
async fn ensure_health_check(
    ctx: &RunCtx,
    items: &Items,
    lb: &LoadBalancerRestore,
) -> Result<(), ReconcileError> {
    let key = health_key(&lb.source);
    if items.get(&key).map(|i| i.state) == Some(ItemState::Done) {
        return Ok(());
    }
    let Some(check) = ctx
        .inventory
        .classic_load_balancers
        .iter()
        .find(|c| c.name == lb.source)
        .and_then(|c| c.health_check.as_ref())
    else {
        return Ok(());
    };
    let item_ref = ItemRef {
        key: &key,
        step_id: STEP_CREATE,
        kind: "health_check",
        primary_id: &lb.source,
    };
    let detail = json!({"target": check.target});
    let built = HealthCheck::builder()
        .target(&check.target)
        .interval(check.interval_secs)
        .timeout(check.timeout_secs)
        .healthy_threshold(check.healthy_threshold)
        .unhealthy_threshold(check.unhealthy_threshold)
        .build();
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            let reason = format!("the health check cannot be built: {e}");
            ctx.journal.fail(item_ref, &reason, &detail).await?;
            return Ok(());
        }
    };
    ctx.check_stop()?;
    let item = ctx.journal.request(item_ref, None, &detail).await?;
    let name = lb.name.as_str();
    let built = &built;
    let result = mutate(ctx, move || {
        ctx.aws
            .elb
            .configure_health_check(move |b| b.load_balancer_name(name).health_check(built.clone()))
    })
    .await;
    match result {
        Ok(_) => {
            ctx.journal.done(&item, name, &detail).await?;
        }
        Err(ReconcileError::Aws(e)) if gives_up(&e) => {
            ctx.journal.fail(item_ref, &aws_reason(&e), &detail).await?;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The DR VPC of a v2 load balancer: the store's mapping of its primary VPC, else the VPC of
/// its first DR subnet (described once and cached). `None` when neither is known.
async fn dr_vpc(
    ctx: &RunCtx,
    lb: &LoadBalancerRestore,
    inventory: &LoadBalancer,
) -> Result<Option<String>, ReconcileError> {
    if let Some(vpc) = &inventory.vpc_id
        && let Some(mapping) = ctx.journal.store().get_mapping("vpc", vpc).await?
    {
        return Ok(Some(mapping.dr_id));
    }
    let Some(subnet) = lb.subnets.iter().find_map(DrRef::dr_id) else {
        return Ok(None);
    };
    let cache = ctx.aws.cache.clone();
    cache
        .get_or_fetch("subnets", &format!("vpc-of/{subnet}"), || async {
            match retrying(ctx, || {
                ctx.aws.ec2.describe_subnets(|b| b.subnet_ids(subnet))
            })
            .await
            {
                Ok(out) => Ok(out
                    .subnets()
                    .iter()
                    .find(|s| s.subnet_id() == Some(subnet))
                    .and_then(|s| s.vpc_id())
                    .map(str::to_owned)),
                Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
}

/// One target group: from the journal when done, else created (or found) in the DR VPC.
async fn ensure_target_group(
    ctx: &RunCtx,
    items: &Items,
    lb: &LoadBalancerRestore,
    tg: &TargetGroupRestore,
) -> Result<Option<String>, ReconcileError> {
    let key = tg_key(&tg.arn);
    let prior = items.get(&key);
    if let Some(item) = prior
        && item.state == ItemState::Done
        && let Some(dr) = &item.dr_id
    {
        return Ok(Some(dr.clone()));
    }
    let item_ref = ItemRef {
        key: &key,
        step_id: STEP_CREATE,
        kind: "target_group",
        primary_id: &tg.arn,
    };
    let failed = json!({"name": tg.name});
    let found = ctx
        .inventory
        .load_balancers
        .iter()
        .find(|l| l.arn == lb.source)
        .and_then(|l| {
            l.target_groups
                .iter()
                .find(|g| g.arn == tg.arn)
                .map(|g| (l, g))
        });
    let Some((inventory_lb, group)) = found else {
        let reason = "the target group is not in the run's inventory";
        ctx.journal.fail(item_ref, reason, &failed).await?;
        return Ok(None);
    };
    let vpc = if group.target_type == "lambda" {
        None
    } else {
        match dr_vpc(ctx, lb, inventory_lb).await? {
            Some(v) => Some(v),
            None => {
                let reason = format!(
                    "no DR VPC for the target group: VPC {} is not mapped and no DR subnet of \
                     its load balancer is known",
                    inventory_lb.vpc_id.as_deref().unwrap_or("(unknown)")
                );
                ctx.journal.fail(item_ref, &reason, &failed).await?;
                return Ok(None);
            }
        }
    };
    let tags: Vec<V2Tag> = ctx
        .tags(&tg.arn)
        .into_iter()
        .map(|(k, v)| V2Tag::builder().key(k).value(v).build())
        .collect();
    ctx.check_stop()?;
    let item = ctx
        .journal
        .request(item_ref, None, &json!({"name": tg.name, "vpc": vpc}))
        .await?;
    let name = group.name.as_str();
    let (group, vpc, tags) = (group, &vpc, &tags);
    let result = create_or_find(
        ctx,
        prior.is_some(),
        move || async move {
            let out = ctx
                .aws
                .elbv2
                .create_target_group(|b| {
                    b.name(name)
                        .set_protocol(group.protocol.as_deref().map(ProtocolEnum::from))
                        .set_port(group.port)
                        .set_vpc_id(vpc.clone())
                        .target_type(TargetTypeEnum::from(group.target_type.as_str()))
                        .set_health_check_protocol(
                            group
                                .health_check_protocol
                                .as_deref()
                                .map(ProtocolEnum::from),
                        )
                        .set_health_check_path(group.health_check_path.clone())
                        .set_health_check_port(group.health_check_port.clone())
                        .set_tags(Some(tags.clone()))
                })
                .await?;
            Ok(Found::created(
                out.target_groups()
                    .first()
                    .and_then(|g| g.target_group_arn())
                    .unwrap_or_default()
                    .to_owned(),
            ))
        },
        move || find_target_group(ctx, name),
    )
    .await;
    let found = match result {
        Ok(found) => found,
        Err(ReconcileError::Aws(e)) if gives_up(&e) => {
            ctx.journal.fail(item_ref, &aws_reason(&e), &failed).await?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if let Some(tags) = &found.tags
        && let Err(why) = owned_by(tags, &ctx.run_id, &tg.arn)
    {
        let reason = format!(
            "a target group named {name} already exists in the DR region and {why}; it is left \
             alone"
        );
        ctx.journal.fail(item_ref, &reason, &failed).await?;
        return Ok(None);
    }
    if found.value.is_empty() {
        return Err(ReconcileError::Unexpected {
            operation: "CreateTargetGroup",
            detail: format!("no ARN for target group {name}"),
        });
    }
    ctx.journal
        .done(
            &item,
            &found.value,
            &json!({"name": name, "arn": found.value, "adopted": found.tags.is_some()}),
        )
        .await?;
    Ok(Some(found.value))
}

/// One v2 listener: from the journal when done, else created (or found) with its default
/// certificate, then its other certificates added. Answers whether it is done.
async fn ensure_listener(
    ctx: &RunCtx,
    items: &Items,
    lb: &LoadBalancerRestore,
    listener: &ListenerRestore,
    dr_lb: &DrLoadBalancer,
    target_groups: &BTreeMap<String, String>,
) -> Result<bool, ReconcileError> {
    let key = listener_key(&lb.source, listener.port);
    let prior = items.get(&key);
    if prior.map(|i| i.state) == Some(ItemState::Done) {
        return Ok(true);
    }
    let inventory = ctx
        .inventory
        .load_balancers
        .iter()
        .find(|l| l.arn == lb.source)
        .and_then(|l| l.listeners.iter().find(|x| x.port == listener.port));
    let item_ref = ItemRef {
        key: &key,
        step_id: STEP_CREATE,
        kind: "listener",
        primary_id: inventory.map_or(lb.source.as_str(), |l| l.arn.as_str()),
    };
    let failed = json!({"port": listener.port, "protocol": listener.protocol});
    let Some(inventory) = inventory else {
        let reason = "the listener is not in the run's inventory";
        ctx.journal.fail(item_ref, reason, &failed).await?;
        return Ok(false);
    };
    let certificates = match dr_certificates(listener.port, &listener.certificates) {
        Ok(c) => c,
        Err(reason) => {
            ctx.journal.fail(item_ref, &reason, &failed).await?;
            return Ok(false);
        }
    };
    let action = match default_action(inventory, target_groups) {
        Ok(a) => a,
        Err(reason) => {
            ctx.journal.fail(item_ref, &reason, &failed).await?;
            return Ok(false);
        }
    };
    let protocol = ProtocolEnum::from(listener.protocol.as_str());
    let secure = matches!(protocol, ProtocolEnum::Https | ProtocolEnum::Tls);
    let ssl_policy = inventory.ssl_policy.clone().filter(|_| secure);
    let default_certificate: Option<Vec<Certificate>> = certificates
        .first()
        .map(|c| vec![Certificate::builder().certificate_arn(c).build()]);
    let tags: Vec<V2Tag> = ctx
        .tags(&inventory.arn)
        .into_iter()
        .map(|(k, v)| V2Tag::builder().key(k).value(v).build())
        .collect();
    let detail = json!({
        "port": listener.port,
        "protocol": listener.protocol,
        "load_balancer": dr_lb.id,
        "certificates": certificates,
    });
    ctx.check_stop()?;
    let item = ctx.journal.request(item_ref, None, &detail).await?;
    let port = listener.port;
    let lb_arn = dr_lb.id.as_str();
    let (protocol, ssl_policy, default_certificate, action, tags) =
        (&protocol, &ssl_policy, &default_certificate, &action, &tags);
    let result = create_or_find(
        ctx,
        prior.is_some(),
        move || async move {
            let out = ctx
                .aws
                .elbv2
                .create_listener(|b| {
                    b.load_balancer_arn(lb_arn)
                        .protocol(protocol.clone())
                        .port(port)
                        .set_ssl_policy(ssl_policy.clone())
                        .set_certificates(default_certificate.clone())
                        .default_actions(action.clone())
                        .set_tags(Some(tags.clone()))
                })
                .await?;
            Ok(Found::created(
                out.listeners()
                    .first()
                    .and_then(|l| l.listener_arn())
                    .unwrap_or_default()
                    .to_owned(),
            ))
        },
        move || find_listener(ctx, lb_arn, port),
    )
    .await;
    let arn = match result {
        Ok(found) if found.value.is_empty() => {
            return Err(ReconcileError::Unexpected {
                operation: "CreateListener",
                detail: format!("no ARN for listener {port} of {}", dr_lb.name),
            });
        }
        Ok(found) => found.value,
        Err(ReconcileError::Aws(e)) if gives_up(&e) => {
            ctx.journal.fail(item_ref, &aws_reason(&e), &detail).await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if certificates.len() > 1 {
        let more: Vec<Certificate> = certificates[1..]
            .iter()
            .map(|c| Certificate::builder().certificate_arn(c).build())
            .collect();
        let (arn_ref, more) = (&arn, &more);
        let added = mutate(ctx, move || {
            ctx.aws.elbv2.add_listener_certificates(move |b| {
                b.listener_arn(arn_ref).set_certificates(Some(more.clone()))
            })
        })
        .await;
        match added {
            Ok(_) => {}
            Err(ReconcileError::Aws(e)) if gives_up(&e) => {
                ctx.journal.fail(item_ref, &aws_reason(&e), &detail).await?;
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    ctx.journal.done(&item, &arn, &detail).await?;
    Ok(true)
}

/// One registration: skipped when done, else sent (in chunks at [`MEMBERS_PER_CALL`]).
/// Registering a member again changes nothing, so a resumed run simply sends it again.
/// Answers whether it is done.
async fn register_one(
    ctx: &RunCtx,
    items: &Items,
    job: &Registration,
) -> Result<bool, ReconcileError> {
    if items.get(&job.key).map(|i| i.state) == Some(ItemState::Done) {
        return Ok(true);
    }
    let item_ref = ItemRef {
        key: &job.key,
        step_id: STEP_REGISTER,
        kind: "registration",
        primary_id: &job.primary,
    };
    let detail = match &job.members {
        Members::Instances(ids) => json!({"load_balancer": job.dr_id, "instances": ids}),
        Members::Targets(targets) => json!({
            "target_group": job.dr_id,
            "targets": targets
                .iter()
                .map(|(id, port)| json!({"id": id, "port": port}))
                .collect::<Vec<_>>(),
        }),
    };
    ctx.check_stop()?;
    let item = ctx.journal.request(item_ref, None, &detail).await?;
    let target = job.dr_id.as_str();
    let result = match &job.members {
        Members::Instances(ids) => {
            let mut result = Ok(());
            for chunk in ids.chunks(MEMBERS_PER_CALL) {
                let members: Vec<ElbInstance> = chunk
                    .iter()
                    .map(|id| ElbInstance::builder().instance_id(id).build())
                    .collect();
                let members = &members;
                result = mutate(ctx, move || {
                    ctx.aws.elb.register_instances_with_load_balancer(move |b| {
                        b.load_balancer_name(target)
                            .set_instances(Some(members.clone()))
                    })
                })
                .await
                .map(|_| ());
                if result.is_err() {
                    break;
                }
            }
            result
        }
        Members::Targets(targets) => {
            let mut result = Ok(());
            for chunk in targets.chunks(MEMBERS_PER_CALL) {
                let members: Vec<TargetDescription> = chunk
                    .iter()
                    .map(|(id, port)| TargetDescription::builder().id(id).set_port(*port).build())
                    .collect();
                let members = &members;
                result = mutate(ctx, move || {
                    ctx.aws.elbv2.register_targets(move |b| {
                        b.target_group_arn(target)
                            .set_targets(Some(members.clone()))
                    })
                })
                .await
                .map(|_| ());
                if result.is_err() {
                    break;
                }
            }
            result
        }
    };
    match result {
        Ok(()) => {
            ctx.journal.done(&item, target, &detail).await?;
            Ok(true)
        }
        Err(ReconcileError::Aws(e)) if gives_up(&e) => {
            ctx.journal.fail(item_ref, &aws_reason(&e), &detail).await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The state of each load balancer AWS describes (absent when it does not know it), with the
/// reason it gives.
type States = BTreeMap<String, (Option<LoadBalancerStateEnum>, Option<String>)>;

/// One `DescribeLoadBalancers` for `arns` (≤ [`ARNS_PER_DESCRIBE`]). When AWS does not know one
/// of them the whole call fails, so each is then described alone to tell which.
async fn describe_states(ctx: &RunCtx, arns: &[String]) -> Result<States, ReconcileError> {
    let collect = |out: &DescribeLoadBalancersOutput, states: &mut States| {
        for lb in out.load_balancers() {
            if let Some(arn) = lb.load_balancer_arn() {
                let state = lb.state();
                states.insert(
                    arn.to_owned(),
                    (
                        state.and_then(|s| s.code()).cloned(),
                        state.and_then(|s| s.reason()).map(str::to_owned),
                    ),
                );
            }
        }
    };
    let mut states = States::new();
    let all = retrying(ctx, || {
        ctx.aws
            .elbv2
            .describe_load_balancers(|b| b.set_load_balancer_arns(Some(arns.to_vec())))
    })
    .await;
    match all {
        Ok(out) => collect(&out, &mut states),
        Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::NotFound => {
            for arn in arns {
                match retrying(ctx, || {
                    ctx.aws
                        .elbv2
                        .describe_load_balancers(|b| b.load_balancer_arns(arn))
                })
                .await
                {
                    Ok(out) => collect(&out, &mut states),
                    Err(ReconcileError::Aws(e)) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(states)
}

/// Polls until every recreated v2 load balancer is active (or failed, gone, or past the wait's
/// limit, each journalled as a failed `active/<source>` item). Answers (active, not active).
async fn wait_active(ctx: &RunCtx, lbs: &LbOutcome) -> Result<(usize, usize), ReconcileError> {
    let mut outstanding: BTreeMap<String, String> = ctx
        .plan
        .restore
        .load_balancers
        .iter()
        .filter(|lb| is_v2(lb.kind))
        .filter_map(|lb| {
            lbs.load_balancers
                .get(&lb.source)
                .map(|dr| (dr.id.clone(), lb.source.clone()))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + active_wait_limit(&ctx.settings);
    let (mut active, mut not_active) = (0usize, 0usize);
    while !outstanding.is_empty() {
        let arns: Vec<String> = outstanding.keys().cloned().collect();
        for chunk in arns.chunks(ARNS_PER_DESCRIBE) {
            let states = describe_states(ctx, chunk).await?;
            for arn in chunk {
                let failure = match states.get(arn) {
                    Some((
                        Some(LoadBalancerStateEnum::Active | LoadBalancerStateEnum::ActiveImpaired),
                        _,
                    )) => None,
                    Some((Some(LoadBalancerStateEnum::Failed), reason)) => Some(format!(
                        "AWS reports the load balancer failed: {}",
                        reason.as_deref().unwrap_or("no reason given")
                    )),
                    None => Some("the load balancer no longer exists in the DR region".to_owned()),
                    Some(_) => continue,
                };
                let Some(source) = outstanding.remove(arn) else {
                    continue;
                };
                match failure {
                    None => active += 1,
                    Some(reason) => {
                        not_active += 1;
                        fail_active(ctx, &source, arn, &reason).await?;
                    }
                }
            }
        }
        if outstanding.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let limit = active_wait_limit(&ctx.settings).as_secs();
            for (arn, source) in std::mem::take(&mut outstanding) {
                not_active += 1;
                let reason = format!("the load balancer was still provisioning after {limit} s");
                fail_active(ctx, &source, &arn, &reason).await?;
            }
            break;
        }
        ctx.pause().await?;
    }
    Ok((active, not_active))
}

async fn fail_active(
    ctx: &RunCtx,
    source: &str,
    arn: &str,
    reason: &str,
) -> Result<(), ReconcileError> {
    let key = active_key(source);
    ctx.journal
        .fail(
            ItemRef {
                key: &key,
                step_id: STEP_REGISTER,
                kind: "load_balancer_active",
                primary_id: source,
            },
            reason,
            &json!({"load_balancer": arn}),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use pilotlight_core::inventory::{ClassicListener, Instance, Target};

    use crate::restore::RestoredInstance;

    fn dr(id: &str) -> DrRef {
        DrRef::Dr(id.to_owned())
    }

    fn restored(id: &str, ip: &str) -> RestoredInstance {
        RestoredInstance {
            instance_id: id.to_owned(),
            instance_type: "m5.large".to_owned(),
            availability_zone: "us-west-2a".to_owned(),
            private_ip: Some(ip.to_owned()),
            public_ip: None,
        }
    }

    fn classic_plan() -> LoadBalancerRestore {
        LoadBalancerRestore {
            kind: LbKind::Classic,
            name: "web".to_owned(),
            source: "web".to_owned(),
            scheme: Scheme::Internal,
            subnets: vec![dr("subnet-dr1")],
            security_groups: vec![dr("sg-dr1")],
            listeners: vec![
                ListenerRestore {
                    port: 80,
                    protocol: "HTTP".to_owned(),
                    certificates: Vec::new(),
                },
                ListenerRestore {
                    port: 443,
                    protocol: "HTTPS".to_owned(),
                    certificates: vec![dr("arn:aws:acm:us-west-2:1:certificate/dr")],
                },
            ],
            health_check: true,
            instance_ids: vec!["i-a".to_owned(), "i-b".to_owned()],
            target_groups: Vec::new(),
        }
    }

    fn classic_inventory() -> ClassicLoadBalancer {
        ClassicLoadBalancer {
            name: "web".to_owned(),
            listeners: vec![
                ClassicListener {
                    protocol: "HTTP".to_owned(),
                    port: 80,
                    instance_protocol: Some("HTTP".to_owned()),
                    instance_port: 8080,
                    certificate_arn: None,
                },
                ClassicListener {
                    protocol: "HTTPS".to_owned(),
                    port: 443,
                    instance_protocol: Some("HTTP".to_owned()),
                    instance_port: 8080,
                    certificate_arn: Some("arn:aws:acm:us-east-1:1:certificate/p".to_owned()),
                },
            ],
            ..ClassicLoadBalancer::default()
        }
    }

    #[test]
    fn classic_listeners_keep_instance_ports_and_take_the_dr_certificate() {
        let listeners = classic_listeners(&classic_inventory(), &classic_plan()).unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(listeners[0].load_balancer_port(), 80);
        assert_eq!(listeners[0].instance_port(), 8080);
        assert_eq!(listeners[0].instance_protocol(), Some("HTTP"));
        assert_eq!(listeners[0].ssl_certificate_id(), None);
        assert_eq!(listeners[1].protocol(), "HTTPS");
        assert_eq!(
            listeners[1].ssl_certificate_id(),
            Some("arn:aws:acm:us-west-2:1:certificate/dr")
        );
    }

    #[test]
    fn a_classic_listener_without_dr_certificate_fails_the_load_balancer() {
        let mut plan = classic_plan();
        plan.listeners[1].certificates = vec![DrRef::Missing("arn:p".to_owned())];
        let err = classic_listeners(&classic_inventory(), &plan).unwrap_err();
        assert!(err.contains("listener 443"), "{err}");
        assert!(err.contains("no DR counterpart"), "{err}");
    }

    #[test]
    fn missing_subnets_and_groups_are_named() {
        let mut plan = classic_plan();
        assert_eq!(missing_network(&plan), None);
        plan.security_groups = vec![dr("sg-1"), DrRef::Missing("sg-primary".to_owned())];
        assert_eq!(
            missing_network(&plan).as_deref(),
            Some("security group sg-primary has no DR counterpart")
        );
        plan.subnets = vec![DrRef::Missing("subnet-p".to_owned())];
        assert_eq!(
            missing_network(&plan).as_deref(),
            Some("subnet subnet-p has no DR counterpart")
        );
        plan.subnets.clear();
        assert!(missing_network(&plan).unwrap().contains("no subnet"));
    }

    #[test]
    fn certificates_are_deduplicated_in_order_and_missing_ones_refused() {
        assert_eq!(
            dr_certificates(443, &[dr("b"), dr("a"), dr("b")]).unwrap(),
            vec!["b".to_owned(), "a".to_owned()]
        );
        assert!(dr_certificates(443, &[dr("a"), DrRef::Missing("p".to_owned())]).is_err());
        assert!(dr_certificates(80, &[]).unwrap().is_empty());
    }

    #[test]
    fn tags_put_ours_first_and_respect_the_limit() {
        let ours = vec![
            ("pilotlight:managed".to_owned(), "true".to_owned()),
            ("pilotlight:run".to_owned(), "r1".to_owned()),
            ("pilotlight:source".to_owned(), "web".to_owned()),
        ];
        let primary: BTreeMap<String, String> = [
            ("Name", "web"),
            ("aws:cloudformation:stack-name", "s"),
            ("pilotlight:run", "old"),
            ("team", "a"),
            ("zone", "z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let all = merged_tags(ours.clone(), &primary, 50);
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pilotlight:managed",
                "pilotlight:run",
                "pilotlight:source",
                "Name",
                "team",
                "zone"
            ]
        );
        assert_eq!(all[1].1, "r1");
        assert_eq!(merged_tags(ours, &primary, 4).len(), 4);
    }

    #[test]
    fn only_this_runs_resources_from_this_source_are_adopted() {
        let tags = |run: &str, src: &str, managed: &str| -> BTreeMap<String, String> {
            [
                (pilotlight_aws::tags::MANAGED, managed),
                (pilotlight_aws::tags::RUN, run),
                (pilotlight_aws::tags::SOURCE, src),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        };
        assert!(owned_by(&tags("r1", "web", "true"), "r1", "web").is_ok());
        assert!(
            owned_by(&tags("r0", "web", "true"), "r1", "web")
                .unwrap_err()
                .contains("run r0")
        );
        assert!(
            owned_by(&tags("r1", "api", "true"), "r1", "web")
                .unwrap_err()
                .contains("mirrors api")
        );
        assert!(owned_by(&tags("r1", "web", "false"), "r1", "web").is_err());
        assert!(owned_by(&BTreeMap::new(), "r1", "web").is_err());
    }

    #[test]
    fn default_actions_forward_to_the_dr_target_groups() {
        let groups: BTreeMap<String, String> = [("tg-p1", "tg-d1"), ("tg-p2", "tg-d2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let one = InventoryListener {
            port: 443,
            default_target_group_arns: vec!["tg-p1".to_owned()],
            ..InventoryListener::default()
        };
        let action = default_action(&one, &groups).unwrap();
        assert_eq!(action.r#type(), Some(&ActionTypeEnum::Forward));
        assert_eq!(action.target_group_arn(), Some("tg-d1"));

        let two = InventoryListener {
            default_target_group_arns: vec!["tg-p1".to_owned(), "tg-p2".to_owned()],
            ..InventoryListener::default()
        };
        let action = default_action(&two, &groups).unwrap();
        let tuples = action.forward_config().unwrap().target_groups();
        let arns: Vec<_> = tuples.iter().filter_map(|t| t.target_group_arn()).collect();
        assert_eq!(arns, ["tg-d1", "tg-d2"]);

        let missing = InventoryListener {
            default_target_group_arns: vec!["tg-p3".to_owned()],
            ..InventoryListener::default()
        };
        assert!(
            default_action(&missing, &groups)
                .unwrap_err()
                .contains("tg-p3")
        );
        let redirect = InventoryListener {
            default_action_types: vec!["redirect".to_owned()],
            ..InventoryListener::default()
        };
        assert!(
            default_action(&redirect, &groups)
                .unwrap_err()
                .contains("redirect")
        );
        assert!(default_action(&InventoryListener::default(), &groups).is_err());
    }

    fn fan_out() -> Ec2Outcome {
        let mut ec2 = Ec2Outcome::default();
        ec2.instances.insert(
            "i-a".to_owned(),
            vec![restored("i-dr1", "10.1.0.1"), restored("i-dr2", "10.1.0.2")],
        );
        ec2.instances
            .insert("i-b".to_owned(), vec![restored("i-dr1", "10.1.0.1")]);
        ec2
    }

    #[test]
    fn classic_members_follow_plan_b_and_are_each_registered_once() {
        let members = classic_members(
            &["i-a".to_owned(), "i-b".to_owned(), "i-gone".to_owned()],
            &fan_out(),
        );
        assert_eq!(members, ["i-dr1", "i-dr2"]);
    }

    fn inventory_with_ips() -> Inventory {
        Inventory {
            instances: vec![
                Instance {
                    id: "i-a".to_owned(),
                    private_ip: Some("10.0.0.1".to_owned()),
                    ..Instance::default()
                },
                Instance {
                    id: "i-b".to_owned(),
                    private_ip: Some("10.0.0.2".to_owned()),
                    ..Instance::default()
                },
            ],
            ..Inventory::default()
        }
    }

    #[test]
    fn instance_targets_keep_ports_and_fan_out() {
        let group = TargetGroup {
            target_type: "instance".to_owned(),
            targets: vec![
                Target {
                    id: "i-a".to_owned(),
                    port: Some(8080),
                },
                Target {
                    id: "i-b".to_owned(),
                    port: Some(8080),
                },
                Target {
                    id: "i-unselected".to_owned(),
                    port: Some(8080),
                },
            ],
            ..TargetGroup::default()
        };
        let selected = ["i-a".to_owned(), "i-b".to_owned()];
        let targets = targets_for(&group, &selected, &inventory_with_ips(), &fan_out());
        assert_eq!(
            targets,
            [
                ("i-dr1".to_owned(), Some(8080)),
                ("i-dr2".to_owned(), Some(8080))
            ]
        );
        let only_a = targets_for(&group, &selected[..1], &inventory_with_ips(), &fan_out());
        assert_eq!(only_a.len(), 2);
    }

    #[test]
    fn ip_targets_become_the_dr_private_ips() {
        let group = TargetGroup {
            target_type: "ip".to_owned(),
            targets: vec![Target {
                id: "10.0.0.1".to_owned(),
                port: Some(80),
            }],
            ..TargetGroup::default()
        };
        let targets = targets_for(
            &group,
            &["i-a".to_owned()],
            &inventory_with_ips(),
            &fan_out(),
        );
        assert_eq!(
            targets,
            [
                ("10.1.0.1".to_owned(), Some(80)),
                ("10.1.0.2".to_owned(), Some(80))
            ]
        );
    }

    fn v2_plan(source: &str, tgs: &[(&str, &[&str])]) -> LoadBalancerRestore {
        LoadBalancerRestore {
            kind: LbKind::Application,
            name: source.to_owned(),
            source: source.to_owned(),
            scheme: Scheme::InternetFacing,
            subnets: vec![dr("subnet-dr1")],
            security_groups: Vec::new(),
            listeners: Vec::new(),
            health_check: false,
            instance_ids: Vec::new(),
            target_groups: tgs
                .iter()
                .map(|(arn, ids)| TargetGroupRestore {
                    arn: (*arn).to_owned(),
                    name: (*arn).to_owned(),
                    instance_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn shared_target_groups_are_created_and_registered_once() {
        let plan = vec![
            classic_plan(),
            v2_plan("arn:lb1", &[("arn:tg1", &["i-a"]), ("arn:tg2", &["i-b"])]),
            v2_plan("arn:lb2", &[("arn:tg1", &["i-a"])]),
        ];
        let unique: Vec<&str> = unique_target_groups(&plan)
            .iter()
            .map(|(lb, tg)| {
                assert_eq!(lb.source, "arn:lb1");
                tg.arn.as_str()
            })
            .collect();
        assert_eq!(unique, ["arn:tg1", "arn:tg2"]);

        let group = |arn: &str, id: &str| TargetGroup {
            arn: arn.to_owned(),
            target_type: "instance".to_owned(),
            targets: vec![Target {
                id: id.to_owned(),
                port: Some(80),
            }],
            ..TargetGroup::default()
        };
        let mut inventory = inventory_with_ips();
        inventory.load_balancers = vec![LoadBalancer {
            arn: "arn:lb1".to_owned(),
            target_groups: vec![group("arn:tg1", "i-a"), group("arn:tg2", "i-b")],
            ..LoadBalancer::default()
        }];
        let mut lbs = LbOutcome::default();
        lbs.load_balancers.insert(
            "web".to_owned(),
            DrLoadBalancer {
                id: "web".to_owned(),
                name: "web".to_owned(),
                dns_name: "web.elb".to_owned(),
                canonical_hosted_zone_id: None,
            },
        );
        // tg2 failed to be recreated: nothing to register for it.
        lbs.target_groups
            .insert("arn:tg1".to_owned(), "arn:dr-tg1".to_owned());
        let jobs = registrations(&plan, &inventory, &lbs, &fan_out());
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].key, "register/web");
        assert_eq!(jobs[0].dr_id, "web");
        assert_eq!(
            jobs[0].members,
            Members::Instances(vec!["i-dr1".to_owned(), "i-dr2".to_owned()])
        );
        assert_eq!(jobs[1].key, "register/arn:tg1");
        assert_eq!(jobs[1].dr_id, "arn:dr-tg1");
        assert_eq!(jobs[1].members.len(), 2);
    }

    fn item(
        key: &str,
        state: ItemState,
        dr_id: Option<&str>,
        detail: serde_json::Value,
    ) -> RestoreItem {
        RestoreItem {
            run_id: "r1".to_owned(),
            item_key: key.to_owned(),
            step_id: STEP_CREATE.to_owned(),
            kind: "load_balancer".to_owned(),
            primary_id: String::new(),
            dr_id: dr_id.map(str::to_owned),
            state,
            client_token: None,
            attempts: 1,
            detail_json: detail.to_string(),
            last_error: None,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_finished_step_is_rebuilt_from_its_done_items_only() {
        let plan = vec![
            classic_plan(),
            v2_plan("arn:lb1", &[("arn:tg1", &[]), ("arn:tg2", &[])]),
        ];
        let web = DrLoadBalancer {
            id: "web".to_owned(),
            name: "web".to_owned(),
            dns_name: "web.us-west-2.elb.amazonaws.com".to_owned(),
            canonical_hosted_zone_id: Some("Z1H1FL5HABSF5".to_owned()),
        };
        let done = LbDone {
            kind: LbKind::Classic,
            load_balancer: web.clone(),
            adopted: false,
        };
        let items: Items = [
            item("lb/web", ItemState::Done, Some("web"), json!(done)),
            item("lb/arn:lb1", ItemState::Failed, None, json!({})),
            item("tg/arn:tg1", ItemState::Done, Some("arn:dr-tg1"), json!({})),
            item("tg/arn:tg2", ItemState::Requested, None, json!({})),
        ]
        .into_iter()
        .map(|i| (i.item_key.clone(), i))
        .collect();
        let outcome = outcome_from_items(&plan, &items);
        assert_eq!(outcome.load_balancers.len(), 1);
        assert_eq!(outcome.load_balancers["web"], web);
        assert_eq!(outcome.target_groups.len(), 1);
        assert_eq!(outcome.target_groups["arn:tg1"], "arn:dr-tg1");
    }

    #[test]
    fn classic_zones_come_from_aws_table() {
        assert_eq!(classic_hosted_zone("us-west-2"), Some("Z1H1FL5HABSF5"));
        assert_eq!(classic_hosted_zone("us-east-1"), Some("Z35SXDOTRQ7X7K"));
        assert_eq!(classic_hosted_zone("mars-north-1"), None);
    }

    #[test]
    fn the_active_wait_is_bounded_but_generous() {
        let settings = |secs| RestoreConfig {
            load_balancer_provision_secs: secs,
            ..RestoreConfig::default()
        };
        assert_eq!(active_wait_limit(&settings(180)), Duration::from_secs(1800));
        assert_eq!(active_wait_limit(&settings(1)), ACTIVE_WAIT_MIN);
    }

    #[test]
    fn keys_are_deterministic() {
        assert_eq!(lb_key("web"), "lb/web");
        assert_eq!(tg_key("arn:tg"), "tg/arn:tg");
        assert_eq!(listener_key("arn:lb", 443), "listener/arn:lb/443");
        assert_eq!(register_key("arn:tg"), "register/arn:tg");
        assert_eq!(health_key("web"), "health/web");
        assert_eq!(active_key("arn:lb"), "active/arn:lb");
    }
}
