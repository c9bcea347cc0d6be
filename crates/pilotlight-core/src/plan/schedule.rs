//! The RTO schedule (SPEC R9): the plan's calls replayed through token buckets, and the lower
//! bound the API limits alone impose.
//!
//! The simulation is a list scheduler over *jobs*. A job is one AWS call (paying the charges
//! [`aws_limits::charges`] lists) or a milestone (no charges: a tier start, a tier gate, the DNS
//! gate). Each job belongs to one *stream*, a FIFO of calls the executor issues one after
//! another, and may depend on other jobs with a delay (an attachment waits for its instance's
//! launch plus the boot time). At each step the head of every stream whose dependencies are
//! done is asked when it could go — after its dependencies, its stream predecessor and once
//! every bucket it pays holds the tokens — and the earliest one goes (ties: the stream created
//! first). Issue times never decrease, so every bucket is only ever advanced forward in time.
//!
//! Jobs are created in an order where dependencies and stream predecessors always come first;
//! the unissued job created first is therefore always a ready stream head, and the loop always
//! progresses.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    BucketLoad, CallCounts, DnsPlan, LbKind, LoadBalancerRestore, LowerBound, Schedule, Span,
    TierPlan, TierSchedule, VolumeMethod,
};
use crate::aws_limits::{self, Bucket, CallShape, Service};
use crate::config::{RestoreConfig, ThrottleConfig};

/// Refill floor, so a zero refill cannot make a time infinite (as in the daemon's throttle).
const MIN_REFILL_PER_SEC: f64 = 1e-6;

/// The bucket a charge key is simulated with: the configured override for the key, else AWS's
/// documented bucket; its refill multiplied by `time_scale`.
fn effective_bucket(key: &str, documented: Bucket, throttle: &ThrottleConfig) -> Bucket {
    let base = throttle.overrides.get(key).map_or(documented, |o| Bucket {
        capacity: f64::from(o.burst),
        refill_per_sec: o.refill_per_sec,
    });
    Bucket {
        capacity: base.capacity.max(0.0),
        refill_per_sec: (base.refill_per_sec * throttle.time_scale).max(MIN_REFILL_PER_SEC),
    }
}

/// What the simulation of a whole plan yields.
#[derive(Debug)]
pub(super) struct Outcome {
    pub schedule: Schedule,
    pub calls: CallCounts,
    pub tier_calls: BTreeMap<u8, CallCounts>,
}

/// When the last tier is up, simulating the EC2 chain alone (EC2 shares no bucket with the
/// other chains and waits for none of them, so this is its time in the full simulation too).
pub(super) fn ec2_makespan(
    tiers: &[TierPlan],
    method: VolumeMethod,
    restore: &RestoreConfig,
    throttle: &ThrottleConfig,
) -> f64 {
    let mut sim = Sim::new(throttle);
    let ec2 = add_ec2(&mut sim, tiers, method, secs(restore.instance_boot_secs));
    sim.run();
    ec2.done.map_or(0.0, |g| sim.time(g))
}

/// Simulates the whole plan (see the module doc of [`super`]).
pub(super) fn simulate(
    tiers: &[TierPlan],
    method: VolumeMethod,
    lbs: &[LoadBalancerRestore],
    dns: &DnsPlan,
    restore: &RestoreConfig,
    throttle: &ThrottleConfig,
) -> Outcome {
    let boot = secs(restore.instance_boot_secs);
    let mut sim = Sim::new(throttle);
    let ec2 = add_ec2(&mut sim, tiers, method, boot);

    let rds = sim.stream();
    // Each job after which something becomes available `db_restore_secs` later: a DB restore,
    // or the last call of a cluster (its restore, then its members' creations).
    let mut db_jobs = Vec::new();
    let mut db_starts = Vec::new();
    for tier in tiers {
        for _ in &tier.databases {
            let job = sim.call(
                rds,
                Some(tier.tier),
                Service::Rds,
                "RestoreDBInstanceFromDBSnapshot",
                1,
                Vec::new(),
            );
            db_jobs.push(job);
            db_starts.push(job);
        }
        for cluster in &tier.clusters {
            let mut last = sim.call(
                rds,
                Some(tier.tier),
                Service::Rds,
                "RestoreDBClusterFromSnapshot",
                1,
                Vec::new(),
            );
            db_starts.push(last);
            for _ in &cluster.members {
                last = sim.call(
                    rds,
                    Some(tier.tier),
                    Service::Rds,
                    "CreateDBInstance",
                    1,
                    Vec::new(),
                );
            }
            db_jobs.push(last);
        }
    }

    let lb = add_load_balancers(
        &mut sim,
        lbs,
        &ec2.launch_of,
        boot,
        secs(restore.load_balancer_provision_secs),
    );

    let mut dns_gate: Vec<(JobId, f64)> = lb.ends.clone();
    dns_gate.extend(ec2.done.map(|g| (g, 0.0)));
    let dns_jobs = add_dns(&mut sim, dns, dns_gate, secs(restore.dns_sync_secs));

    sim.run();

    let tier_schedules: Vec<TierSchedule> =
        ec2.tiers.iter().map(|t| tier_schedule(&sim, t)).collect();
    let load_balancers = span(
        lb.ends.iter().map(|&(j, _)| sim.time(j)),
        lb.ends.iter().map(|&(j, delay)| sim.time(j) + delay),
    );
    let dns_span = span(
        dns_jobs.batches.iter().map(|&j| sim.time(j)),
        dns_jobs.syncs.iter().map(|&j| sim.time(j)),
    );
    let db_restore = secs(restore.db_restore_secs);
    let databases = span(
        db_starts.iter().map(|&j| sim.time(j)),
        db_jobs.iter().map(|&j| sim.time(j) + db_restore),
    );
    let total_secs = [
        ec2.done.map(|g| sim.time(g)),
        load_balancers.map(|s| s.end_secs),
        dns_span.map(|s| s.end_secs),
        databases.map(|s| s.end_secs),
    ]
    .into_iter()
    .flatten()
    .fold(0.0, f64::max);

    let mut calls = CallCounts::new();
    let mut tier_calls: BTreeMap<u8, CallCounts> = BTreeMap::new();
    for job in &sim.jobs {
        let Some(op) = &job.op else { continue };
        *calls.entry(op.clone()).or_insert(0) += 1;
        if let Some(tier) = job.tier {
            *tier_calls
                .entry(tier)
                .or_default()
                .entry(op.clone())
                .or_insert(0) += 1;
        }
    }

    Outcome {
        schedule: Schedule {
            tiers: tier_schedules,
            load_balancers,
            dns: dns_span,
            databases,
            total_secs,
            lower_bound: lower_bound(&sim),
        },
        calls,
        tier_calls,
    }
}

fn secs(value: u64) -> f64 {
    value as f64
}

/// From the earliest start to the latest end, if there is anything.
fn span(starts: impl Iterator<Item = f64>, ends: impl Iterator<Item = f64>) -> Option<Span> {
    let start = starts.reduce(f64::min)?;
    let end = ends.fold(start, f64::max);
    Some(Span {
        start_secs: start,
        end_secs: end,
    })
}

type JobId = usize;
type StreamId = usize;

/// One bucket's state: `level` tokens at time `at`.
#[derive(Debug)]
struct BucketState {
    key: String,
    bucket: Bucket,
    level: f64,
    at: f64,
}

impl BucketState {
    fn level_at(&self, t: f64) -> f64 {
        (self.level + self.bucket.refill_per_sec * (t - self.at).max(0.0)).min(self.bucket.capacity)
    }

    /// Earliest time from `from` at which `tokens` can be paid. A payment larger than the
    /// bucket goes in instalments, which comes to the same formula.
    fn ready(&self, from: f64, tokens: f64) -> f64 {
        let from = from.max(self.at);
        let level = self.level_at(from);
        if level >= tokens {
            from
        } else {
            from + (tokens - level) / self.bucket.refill_per_sec
        }
    }

    /// Pays `tokens` at `t` (≥ `ready(from, tokens)`).
    fn take(&mut self, from: f64, t: f64, tokens: f64) {
        let from = from.max(self.at);
        let accrued = self.level_at(from) + self.bucket.refill_per_sec * (t - from).max(0.0);
        let cap = self.bucket.capacity;
        let after = if tokens <= cap {
            accrued.min(cap) - tokens
        } else {
            // Instalments: what refilled after the last one stays, up to the capacity.
            (accrued - tokens).min(cap)
        };
        self.level = after.max(0.0);
        self.at = t;
    }
}

#[derive(Debug)]
struct Job {
    /// `service:Operation`; `None` for a milestone.
    op: Option<String>,
    tier: Option<u8>,
    /// (bucket, tokens).
    charges: Vec<(usize, f64)>,
    /// (job, delay): this job goes no earlier than `time(job) + delay`.
    deps: Vec<(JobId, f64)>,
    /// Dependencies `deps[..dep_cursor]` are done, the latest at `dep_ready`.
    dep_cursor: usize,
    dep_ready: f64,
    time: Option<f64>,
    /// The bucket that made it wait, if one did.
    waited_on: Option<usize>,
}

#[derive(Debug)]
struct Sim<'a> {
    throttle: &'a ThrottleConfig,
    keys: BTreeMap<String, usize>,
    buckets: Vec<BucketState>,
    jobs: Vec<Job>,
    streams: Vec<Vec<JobId>>,
}

impl<'a> Sim<'a> {
    fn new(throttle: &'a ThrottleConfig) -> Self {
        Sim {
            throttle,
            keys: BTreeMap::new(),
            buckets: Vec::new(),
            jobs: Vec::new(),
            streams: Vec::new(),
        }
    }

    fn stream(&mut self) -> StreamId {
        self.streams.push(Vec::new());
        self.streams.len() - 1
    }

    fn bucket(&mut self, key: &str, documented: Bucket) -> usize {
        if let Some(&b) = self.keys.get(key) {
            return b;
        }
        let bucket = effective_bucket(key, documented, self.throttle);
        self.buckets.push(BucketState {
            key: key.to_owned(),
            bucket,
            level: bucket.capacity,
            at: 0.0,
        });
        self.keys.insert(key.to_owned(), self.buckets.len() - 1);
        self.buckets.len() - 1
    }

    fn push(&mut self, stream: StreamId, job: Job) -> JobId {
        self.jobs.push(job);
        let id = self.jobs.len() - 1;
        self.streams[stream].push(id);
        id
    }

    /// A call of `service:op` charging `units` (instances, change tokens) where that applies.
    fn call(
        &mut self,
        stream: StreamId,
        tier: Option<u8>,
        service: Service,
        op: &str,
        units: u32,
        deps: Vec<(JobId, f64)>,
    ) -> JobId {
        let shape = CallShape {
            units,
            ..CallShape::default()
        };
        let charges = aws_limits::charges(service, op, &shape)
            .into_iter()
            .map(|c| (self.bucket(&c.key, c.bucket), c.tokens))
            .collect();
        self.push(
            stream,
            Job {
                op: Some(format!("{service}:{op}")),
                tier,
                charges,
                deps,
                dep_cursor: 0,
                dep_ready: 0.0,
                time: None,
                waited_on: None,
            },
        )
    }

    fn milestone(&mut self, stream: StreamId, deps: Vec<(JobId, f64)>) -> JobId {
        self.push(
            stream,
            Job {
                op: None,
                tier: None,
                charges: Vec::new(),
                deps,
                dep_cursor: 0,
                dep_ready: 0.0,
                time: None,
                waited_on: None,
            },
        )
    }

    /// The issue time of a job after [`Sim::run`] (every job is issued; see the module doc).
    fn time(&self, job: JobId) -> f64 {
        self.jobs[job].time.unwrap_or(0.0)
    }

    /// When the job's dependencies allow it to go, once they are all done.
    fn deps_ready(&mut self, job: JobId) -> Option<f64> {
        loop {
            let j = &self.jobs[job];
            let Some(&(dep, delay)) = j.deps.get(j.dep_cursor) else {
                return Some(j.dep_ready);
            };
            let done = self.jobs[dep].time?;
            let j = &mut self.jobs[job];
            j.dep_ready = j.dep_ready.max(done + delay);
            j.dep_cursor += 1;
        }
    }

    /// Earliest time from `from` at which every bucket the job pays can pay, and the bucket
    /// that pushed it latest (if any pushed it past `from`).
    fn feasible(&self, job: JobId, from: f64) -> (f64, Option<usize>) {
        let mut at = from;
        let mut by = None;
        for &(b, tokens) in &self.jobs[job].charges {
            let ready = self.buckets[b].ready(from, tokens);
            if ready > at {
                at = ready;
                by = Some(b);
            }
        }
        (at, by)
    }

    fn run(&mut self) {
        let mut heads = vec![0usize; self.streams.len()];
        let mut last = vec![0.0f64; self.streams.len()];
        let mut live: Vec<StreamId> = (0..self.streams.len())
            .filter(|&s| !self.streams[s].is_empty())
            .collect();
        while !live.is_empty() {
            let mut best: Option<(f64, StreamId, f64, Option<usize>)> = None;
            for &s in &live {
                let job = self.streams[s][heads[s]];
                let Some(deps_at) = self.deps_ready(job) else {
                    continue;
                };
                let from = deps_at.max(last[s]);
                let (at, waited_on) = self.feasible(job, from);
                if best.is_none_or(|(t, ..)| at < t) {
                    best = Some((at, s, from, waited_on));
                }
            }
            // Unreachable by construction (module doc); stop rather than spin.
            let Some((at, s, from, waited_on)) = best else {
                break;
            };
            let job = self.streams[s][heads[s]];
            for i in 0..self.jobs[job].charges.len() {
                let (b, tokens) = self.jobs[job].charges[i];
                self.buckets[b].take(from, at, tokens);
            }
            self.jobs[job].time = Some(at);
            self.jobs[job].waited_on = waited_on;
            last[s] = at;
            heads[s] += 1;
            if heads[s] == self.streams[s].len() {
                live.retain(|&x| x != s);
            }
        }
    }
}

/// One tier's jobs.
#[derive(Debug)]
struct TierJobs {
    tier: u8,
    start: JobId,
    gate: JobId,
    launches: Vec<JobId>,
    /// `RunInstances`, `CreateTags`, `CreateVolume`, `AttachVolume`.
    mutating: Vec<JobId>,
    /// Every EC2 call of the tier (the mutating ones and the describes), each with the delay
    /// after which its part of the tier is done: the boot time after a launch, nothing after
    /// the other calls.
    calls: Vec<(JobId, f64)>,
}

#[derive(Debug, Default)]
struct Ec2Jobs {
    tiers: Vec<TierJobs>,
    /// Primary instance id → its launch.
    launch_of: BTreeMap<String, JobId>,
    last_gate: Option<JobId>,
    /// The last `AttachVolume` (under create + attach).
    last_attach: Option<JobId>,
    /// When every tier is up: the last gate passed and every volume attached.
    done: Option<JobId>,
}

/// The EC2 chain, tier after tier (see the module doc of [`super`]).
fn add_ec2(sim: &mut Sim<'_>, tiers: &[TierPlan], method: VolumeMethod, boot: f64) -> Ec2Jobs {
    let run = sim.stream();
    let tag = sim.stream();
    let describe = sim.stream();
    let create = sim.stream();
    let attach = sim.stream();
    let gates = sim.stream();
    let mut out = Ec2Jobs::default();
    for tier in tiers {
        let t = Some(tier.tier);
        let start = sim.milestone(gates, out.last_gate.map(|g| (g, 0.0)).into_iter().collect());
        let mut launches = Vec::new();
        let mut mutating = Vec::new();
        let mut calls = Vec::new();
        let mut gate_deps = Vec::new();
        for group in &tier.groups {
            let mut ids = group.instance_ids.iter();
            for &n in &group.launches {
                let launch = sim.call(run, t, Service::Ec2, "RunInstances", n, vec![(start, 0.0)]);
                for id in ids.by_ref().take(n as usize) {
                    out.launch_of.insert(id.clone(), launch);
                }
                // A launch of several instances can only share tags: each instance then gets
                // its own `pilotlight:source` by one `CreateTags`, from the moment the launch
                // returns (in parallel with the boot wait). One instance carries it at launch.
                if n > 1 {
                    for _ in 0..n {
                        let tagged =
                            sim.call(tag, t, Service::Ec2, "CreateTags", 1, vec![(launch, 0.0)]);
                        mutating.push(tagged);
                        calls.push((tagged, 0.0));
                        gate_deps.push((tagged, 0.0));
                    }
                }
                // The describe that sees the launch running: filtered by its instance ids.
                let seen = sim.call(
                    describe,
                    t,
                    Service::Ec2,
                    "DescribeInstances",
                    1,
                    vec![(launch, boot)],
                );
                launches.push(launch);
                mutating.push(launch);
                calls.extend([(launch, boot), (seen, 0.0)]);
                gate_deps.push((seen, 0.0));
            }
        }
        if method == VolumeMethod::CreateAttach {
            // A volume is created once its instance's launch has answered (its AZ is known)
            // and attached once the instance runs. Attachments are not part of the gate: the
            // next tier launches while this one's volumes are attached (tiers in order, one
            // `AttachVolume` stream), so the tier is up when its last volume is attached.
            for volume in &tier.data_volumes {
                let launch = out.launch_of.get(&volume.instance_id).copied();
                let created = sim.call(
                    create,
                    t,
                    Service::Ec2,
                    "CreateVolume",
                    1,
                    vec![(launch.unwrap_or(start), 0.0)],
                );
                let mut deps = vec![(created, 0.0)];
                deps.extend(launch.map(|launch| (launch, boot)));
                let attached = sim.call(attach, t, Service::Ec2, "AttachVolume", 1, deps);
                // The attachment stream is FIFO: its last call is its last to finish.
                out.last_attach = Some(attached);
                mutating.extend([created, attached]);
                calls.extend([(created, 0.0), (attached, 0.0)]);
            }
        }
        if gate_deps.is_empty() {
            gate_deps.push((start, 0.0));
        }
        let gate = sim.milestone(gates, gate_deps);
        out.last_gate = Some(gate);
        out.tiers.push(TierJobs {
            tier: tier.tier,
            start,
            gate,
            launches,
            mutating,
            calls,
        });
    }
    if let Some(gate) = out.last_gate {
        let mut deps = vec![(gate, 0.0)];
        deps.extend(out.last_attach.map(|a| (a, 0.0)));
        out.done = Some(sim.milestone(gates, deps));
    }
    out
}

fn tier_schedule(sim: &Sim<'_>, t: &TierJobs) -> TierSchedule {
    let start = sim.time(t.start);
    let latest = |jobs: &[JobId]| jobs.iter().map(|&j| sim.time(j)).fold(start, f64::max);
    // The throttled call whose part was done last: a launch once its instances run, so tags
    // that finish during the boot wait do not hide the launch that set the tier's end.
    let binding = t
        .calls
        .iter()
        .filter_map(|&(j, done)| sim.jobs[j].waited_on.map(|b| (sim.time(j) + done, j, b)))
        .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, _, b)| sim.buckets[b].key.clone());
    TierSchedule {
        tier: t.tier,
        start_secs: start,
        launches_done_secs: latest(&t.launches),
        api_secs: latest(&t.mutating) - start,
        end_secs: t
            .calls
            .iter()
            .map(|&(j, done)| sim.time(j) + done)
            .fold(sim.time(t.gate), f64::max),
        binding,
    }
}

#[derive(Debug, Default)]
struct LbJobs {
    /// Every load-balancer job with the delay after which its part is done (provisioning
    /// after a creation, nothing after the other calls).
    ends: Vec<(JobId, f64)>,
}

/// The load-balancer chains (see the module doc of [`super`]).
fn add_load_balancers(
    sim: &mut Sim<'_>,
    lbs: &[LoadBalancerRestore],
    launch_of: &BTreeMap<String, JobId>,
    boot: f64,
    provision: f64,
) -> LbJobs {
    let classic_create = sim.stream();
    let v2_create = sim.stream();
    let health_checks = sim.stream();
    let target_groups = sim.stream();
    let listeners = sim.stream();
    let mut out = LbJobs::default();
    for lb in lbs {
        if lb.kind == LbKind::Classic {
            let created = sim.call(
                classic_create,
                None,
                Service::Elb,
                "CreateLoadBalancer",
                1,
                Vec::new(),
            );
            out.ends.push((created, provision));
            if lb.health_check {
                let hc = sim.call(
                    health_checks,
                    None,
                    Service::Elb,
                    "ConfigureHealthCheck",
                    1,
                    vec![(created, 0.0)],
                );
                out.ends.push((hc, 0.0));
            }
            if !lb.instance_ids.is_empty() {
                let mut deps = vec![(created, 0.0)];
                deps.extend(instances_up(&lb.instance_ids, launch_of, boot));
                let own = sim.stream();
                let registered = sim.call(
                    own,
                    None,
                    Service::Elb,
                    "RegisterInstancesWithLoadBalancer",
                    1,
                    deps,
                );
                out.ends.push((registered, 0.0));
            }
            continue;
        }
        let created = sim.call(
            v2_create,
            None,
            Service::Elbv2,
            "CreateLoadBalancer",
            1,
            Vec::new(),
        );
        out.ends.push((created, provision));
        let mut groups = Vec::new();
        for _ in &lb.target_groups {
            let tg = sim.call(
                target_groups,
                None,
                Service::Elbv2,
                "CreateTargetGroup",
                1,
                Vec::new(),
            );
            out.ends.push((tg, 0.0));
            groups.push(tg);
        }
        for _ in &lb.listeners {
            let mut deps = vec![(created, 0.0)];
            deps.extend(groups.iter().map(|&g| (g, 0.0)));
            let listener = sim.call(listeners, None, Service::Elbv2, "CreateListener", 1, deps);
            out.ends.push((listener, 0.0));
        }
        for (tg, &job) in lb.target_groups.iter().zip(&groups) {
            if tg.instance_ids.is_empty() {
                continue;
            }
            let mut deps = vec![(job, 0.0)];
            deps.extend(instances_up(&tg.instance_ids, launch_of, boot));
            let own = sim.stream();
            let registered = sim.call(own, None, Service::Elbv2, "RegisterTargets", 1, deps);
            out.ends.push((registered, 0.0));
        }
    }
    out
}

/// The launches of `ids`, each done `boot` after it went out.
fn instances_up(
    ids: &[String],
    launch_of: &BTreeMap<String, JobId>,
    boot: f64,
) -> Vec<(JobId, f64)> {
    let launches: BTreeSet<JobId> = ids
        .iter()
        .filter_map(|id| launch_of.get(id).copied())
        .collect();
    launches.into_iter().map(|l| (l, boot)).collect()
}

#[derive(Debug, Default)]
struct DnsJobs {
    batches: Vec<JobId>,
    syncs: Vec<JobId>,
}

/// The DNS chains: one stream per zone, after the DNS gate.
fn add_dns(sim: &mut Sim<'_>, dns: &DnsPlan, gate_deps: Vec<(JobId, f64)>, sync: f64) -> DnsJobs {
    let mut out = DnsJobs::default();
    if dns.zones.is_empty() {
        return out;
    }
    let gates = sim.stream();
    let gate = sim.milestone(gates, gate_deps);
    for zone in &dns.zones {
        let own = sim.stream();
        if zone.associate_vpc.is_some() {
            sim.call(
                own,
                None,
                Service::Route53,
                "AssociateVPCWithHostedZone",
                1,
                Vec::new(),
            );
        }
        for batch in &zone.batches {
            let changed = sim.call(
                own,
                None,
                Service::Route53,
                "ChangeResourceRecordSets",
                batch.change_tokens,
                vec![(gate, 0.0)],
            );
            let in_sync = sim.call(
                own,
                None,
                Service::Route53,
                "GetChange",
                1,
                vec![(changed, sync)],
            );
            out.batches.push(changed);
            out.syncs.push(in_sync);
        }
    }
    out
}

/// The API-imposed floor (see the module doc of [`super`]).
fn lower_bound(sim: &Sim<'_>) -> LowerBound {
    let n = sim.buckets.len();
    let mut tokens = vec![0.0f64; n];
    // What must wait for the load balancers: their creation, then the record changes (a private
    // zone's association goes from t = 0 and is left out).
    let mut creation = vec![0.0f64; n];
    let mut records = vec![0.0f64; n];
    for job in &sim.jobs {
        let Some(op) = &job.op else { continue };
        let creates = op == "elb:CreateLoadBalancer" || op == "elbv2:CreateLoadBalancer";
        let changes = op == "route53:ChangeResourceRecordSets" || op == "route53:GetChange";
        for &(b, t) in &job.charges {
            tokens[b] += t;
            if creates {
                creation[b] += t;
            }
            if changes {
                records[b] += t;
            }
        }
    }
    let drain = |b: usize, t: f64| sim.buckets[b].bucket.drain_secs(t);
    // The slowest bucket among those whose key starts with one of `prefixes`.
    let worst = |prefixes: &[&str], load: &[f64]| -> (f64, Option<usize>) {
        let mut best = (0.0, None);
        for (b, state) in sim.buckets.iter().enumerate() {
            if !prefixes.iter().any(|p| state.key.starts_with(p)) {
                continue;
            }
            let secs = drain(b, load[b]);
            if secs > best.0 {
                best = (secs, Some(b));
            }
        }
        best
    };
    const ELB: [&str; 2] = ["elb:", "elbv2:"];
    let ec2 = worst(&["ec2:"], &tokens);
    let elb = worst(&ELB, &tokens);
    let elb_creation = worst(&ELB, &creation);
    let route53 = worst(&["route53:"], &records);
    let rds = worst(&["rds:"], &tokens);
    let key = |b: Option<usize>| b.map(|b| sim.buckets[b].key.clone());
    let chains: [(&str, f64, Option<String>); 4] = [
        ("ec2", ec2.0, key(ec2.1)),
        ("elb", elb.0, key(elb.1)),
        (
            "elb+dns",
            elb_creation.0 + route53.0,
            match (key(elb_creation.1), key(route53.1)) {
                (Some(a), Some(b)) => Some(format!("{a} + {b}")),
                (a, b) => a.or(b),
            },
        ),
        ("rds", rds.0, key(rds.1)),
    ];
    let mut secs = 0.0;
    let mut binding = None;
    for (_, chain_secs, chain_binding) in &chains {
        if *chain_secs > secs {
            secs = *chain_secs;
            binding.clone_from(chain_binding);
        }
    }
    let buckets = sim
        .buckets
        .iter()
        .enumerate()
        .filter(|(b, _)| tokens[*b] > 0.0)
        .map(|(b, state)| {
            (
                state.key.clone(),
                BucketLoad {
                    capacity: state.bucket.capacity,
                    refill_per_sec: state.bucket.refill_per_sec,
                    tokens: tokens[b],
                    drain_secs: drain(b, tokens[b]),
                },
            )
        })
        .collect();
    LowerBound {
        secs,
        binding,
        chains: chains
            .into_iter()
            .map(|(name, chain_secs, _)| (name.to_owned(), chain_secs))
            .collect(),
        buckets,
    }
}
