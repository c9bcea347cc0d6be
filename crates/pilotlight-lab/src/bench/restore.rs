//! `bench restore`: a declared disaster of the case-study estate (or a scaled one) restored by
//! the real `pilotlight` daemon against the lab, measured against the plan's own figures.
//!
//! # The run
//!
//! 1. A lab session whose proxy enforces AWS's documented limits at `time_scale`, keeps
//!    instances `pending`, DB instances `creating`, load balancers `provisioning` and Route 53
//!    changes `PENDING` for [`PendingTimes`] (AWS seconds, divided by `time_scale` like the
//!    limits), and launches `MaxCount`. A second, uncounted proxy into the same account seeds.
//! 2. The estate ([`EstateShape::spec`], the case study's shape) is seeded in the primary, and
//!    every data-volume snapshot gets a DR copy made the cheap way (a tagged snapshot of one
//!    small DR volume), which the daemon's EBS copy reconciler adopts instead of copying. The
//!    three AMIs and the DB snapshots are copied by the daemon itself (the proxy's copies are
//!    made fast).
//! 3. The daemon runs as a subprocess on a fresh SQLite store with the inventory on, the
//!    throttle at the lab's `time_scale`, and `[restore]` estimates equal to the lab's pending
//!    times in wall seconds, so the plan's schedule describes this lab. The bench polls
//!    `GET /v1/plan` until it covers every seeded instance with no problem (triggering the
//!    readiness reconciler, which resolves DR certificates, while certificates are missing).
//! 4. The plan of a dry run gives the lower bound, the estimate and the minimum calls. The
//!    naive figure ([`naive_calls`]) is computed here from the same inventory document.
//! 5. Capacity rules make two instance types short in the whole DR region after half of their
//!    planned launches; the primary region is taken down; the proxy's counters are reset; a
//!    disaster is declared and its report polled until the run ends.
//!
//! # What is reported
//!
//! The makespan (the run's `started_at_ms` → `finished_at_ms`), the plan's lower bound and
//! estimate and their ratios; calls per operation from the run report (each SDK call once) and
//! from the proxy (each HTTP attempt, DR region and Route 53, every DR-side call of the daemon
//! in the run's window) against the plan's minimum and the naive count; throttling answers;
//! plan-B substitutions; failed items; and whether each SPEC target is met.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pilotlight_core::config::{Config, RestoreConfig, VolumeStrategy};
use pilotlight_core::inventory::Inventory;
use pilotlight_core::plan::{LbKind, RestorePlan, VolumeMethod, restore_plan};
use pilotlight_core::scope::{DrState, Scope, select};
use serde_json::{Value, json};

use crate::clients::AwsClients;
use crate::proxy::CapacityRule;
use crate::seed::{
    CertificateSpec, DataVolumeSpec, LoadBalancerSpec, RecordSpec, SeededEstate, ZoneSpec,
    seed_estate,
};
use crate::{EstateSpec, Lab, ProxyClient, ProxyOptions, RealismProxy};

/// SPEC: the makespan within 1.25× the lower bound the API limits impose.
pub const MAKESPAN_TARGET: f64 = 1.25;
/// SPEC: API calls within 1.1× the plan's minimum.
pub const CALLS_TARGET: f64 = 1.1;
/// SPEC: API calls at most 1/10 of a one-call-per-resource, no-cache restore.
pub const NAIVE_TARGET: f64 = 0.1;

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";
/// The proxy's region for Route 53 (a global service).
const GLOBAL: &str = crate::proxy::GLOBAL_REGION;
/// The bearer token the bench's daemon accepts (operator role).
const TOKEN: &str = "bench-token";
/// Sizes of the data volumes, alternating (the case study's 100 and 250 GiB).
const VOLUME_SIZES: [u32; 2] = [100, 250];
/// Every `PRIVATE_EVERY`-th zone is private, as in the case study.
const PRIVATE_EVERY: usize = 4;

/// The estate's counts. Tiers are always three (20/30/50 % of the instances), in fleets of at
/// most 50 over the families m5, r5 and c5, as in [`EstateSpec::case_study`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstateShape {
    pub instances: usize,
    /// Data volumes per instance (0 to 10), each snapshotted.
    pub volumes_per_instance: usize,
    /// Load balancers: half internet-facing ALBs, a quarter internal NLBs, a quarter classic.
    pub load_balancers: usize,
    /// Records over the zones: 70 % instance `A`, 10 % `CNAME` to load balancers, 5 % each
    /// alias to a load balancer, `CNAME` to a database, literal `A` and `TXT`.
    pub records: usize,
    /// Hosted zones (every fourth private), one wildcard certificate each.
    pub zones: usize,
    /// RDS DB instances with one snapshot each.
    pub databases: usize,
}

impl EstateShape {
    /// The case study (SPEC "Numbers"): 3,000 instances with 2 volumes each, 100 load
    /// balancers, 4,000 records in 4 zones, 50 RDS instances.
    pub const CASE_STUDY: EstateShape = EstateShape {
        instances: 3000,
        volumes_per_instance: 2,
        load_balancers: 100,
        records: 4000,
        zones: 4,
        databases: 50,
    };

    /// The estate spec: the case study's fleets at this instance count with
    /// `volumes_per_instance` data volumes, and its load balancers, databases, zones and
    /// records at these counts (each at least 1).
    pub fn spec(&self) -> EstateSpec {
        let mut spec = EstateSpec::case_study(self.instances as f64 / 3000.0);
        for fleet in &mut spec.fleets {
            fleet.data_volumes = (0..self.volumes_per_instance.min(10))
                .map(|k| DataVolumeSpec {
                    size_gib: VOLUME_SIZES[k % VOLUME_SIZES.len()],
                    device: format!("/dev/sd{}", char::from(b'f' + k as u8)),
                    volume_type: "gp3".to_owned(),
                })
                .collect();
        }
        let zones = self.zones.max(1);
        spec.certificates = (0..zones)
            .map(|z| CertificateSpec {
                name: format!("zone-{z}"),
                domain: format!("*.z{z}.example.com"),
                subject_alternative_names: Vec::new(),
                dr_counterpart: true,
            })
            .collect();

        let fleets: Vec<String> = spec.fleets.iter().map(|f| f.name.clone()).collect();
        let lbs_n = self.load_balancers.max(1);
        let mut lbs = EstateSpec::case_study(lbs_n as f64 / 100.0).load_balancers;
        lbs.truncate(lbs_n);
        for (i, lb) in lbs.iter_mut().enumerate() {
            let fleet = vec![fleets[i % fleets.len()].clone()];
            let certificate = format!("zone-{}", i % zones);
            match lb {
                LoadBalancerSpec::Classic(c) => {
                    c.fleets = fleet;
                    for l in c.listeners.iter_mut().filter(|l| l.certificate.is_some()) {
                        l.certificate = Some(certificate.clone());
                    }
                }
                LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => {
                    v.fleets = fleet;
                    for l in v.listeners.iter_mut().filter(|l| l.certificate.is_some()) {
                        l.certificate = Some(certificate.clone());
                    }
                }
            }
        }
        let dbs_n = self.databases.max(1);
        let mut dbs = EstateSpec::case_study(dbs_n as f64 / 50.0).db_instances;
        dbs.truncate(dbs_n);

        let instances: Vec<(&str, u32)> = spec
            .fleets
            .iter()
            .flat_map(|f| (1..=f.count).map(move |i| (f.name.as_str(), i)))
            .collect();
        let mut zone_specs: Vec<ZoneSpec> = (0..zones)
            .map(|z| {
                let private = zones > 1 && z % PRIVATE_EVERY == PRIVATE_EVERY - 1;
                ZoneSpec {
                    name: format!("z{z}.example.com"),
                    private,
                    vpc: private.then(|| "prod".to_owned()),
                    records: Vec::new(),
                }
            })
            .collect();
        let mut next_instance = 0;
        for i in 0..self.records.max(1) {
            let name = format!("h{i:05}");
            let record = match i % 20 {
                0 => RecordSpec::LbAlias {
                    name,
                    load_balancer: lbs[i % lbs.len()].name().to_owned(),
                    evaluate_target_health: false,
                },
                1 | 2 => RecordSpec::LbCname {
                    name,
                    load_balancer: lbs[i % lbs.len()].name().to_owned(),
                    ttl: 300,
                },
                3 => RecordSpec::DbCname {
                    name,
                    db: dbs[i % dbs.len()].name.clone(),
                    ttl: 300,
                },
                4 => RecordSpec::Txt {
                    name,
                    values: vec![format!("record {i}")],
                    ttl: 300,
                },
                5 => RecordSpec::A {
                    name,
                    values: vec![format!("198.51.100.{}", i % 250 + 1)],
                    ttl: 300,
                },
                _ => {
                    let (fleet, index) = instances[next_instance % instances.len()];
                    next_instance += 1;
                    RecordSpec::Instance {
                        name,
                        fleet: fleet.to_owned(),
                        index,
                        ttl: 60,
                    }
                }
            };
            zone_specs[i % zones].records.push(record);
        }
        spec.load_balancers = lbs;
        spec.db_instances = dbs;
        spec.zones = zone_specs;
        spec
    }
}

/// How long the lab keeps new resources in their intermediate state, in seconds of AWS time
/// (the proxy divides them by `time_scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingTimes {
    pub instance_secs: f64,
    pub db_secs: f64,
    pub load_balancer_secs: f64,
    pub dns_secs: f64,
}

impl Default for PendingTimes {
    /// The `[restore]` defaults of the plan's estimates: boot 90 s, DB restore 900 s, load
    /// balancer 120 s, DNS 60 s.
    fn default() -> Self {
        PendingTimes {
            instance_secs: 90.0,
            db_secs: 900.0,
            load_balancer_secs: 120.0,
            dns_secs: 60.0,
        }
    }
}

/// The daemon's default `restore.poll_interval_ms` (5 s) at `time_scale`: the same number of
/// polls per wait as in production (at least 10 ms, the config's minimum).
pub fn scaled_poll_interval_ms(time_scale: f64) -> u64 {
    let default = RestoreConfig::default().poll_interval_ms as f64;
    if time_scale.is_finite() && time_scale > 0.0 {
        ((default / time_scale).round() as u64).max(10)
    } else {
        default as u64
    }
}

/// Parameters of one restore benchmark.
#[derive(Debug, Clone)]
pub struct RestoreBench {
    pub estate: EstateShape,
    /// The lab's and the daemon's time scale (AWS's refill rates and pending times × this).
    pub time_scale: f64,
    /// Instance types made short in the DR region; empty: the two with the most planned
    /// instances.
    pub shortage: Vec<String>,
    pub pending: PendingTimes,
    /// `restore.poll_interval_ms` of the daemon.
    pub poll_interval_ms: u64,
    /// The `pilotlight` binary.
    pub daemon: PathBuf,
    /// How long the daemon may take to have a plan without problems.
    pub ready_timeout: Duration,
    /// How long the restore may take.
    pub restore_timeout: Duration,
}

/// The restore settings of the naive run: one instance per `RunInstances`, one record per
/// `ChangeResourceRecordSets`, data volumes by `method` (the method of the restore it is
/// compared with: the same restore, one call per resource), everything else as configured.
pub fn naive_settings(restore: &RestoreConfig, method: VolumeMethod) -> RestoreConfig {
    RestoreConfig {
        max_instances_per_call: 1,
        route53_max_changes_per_batch: 1,
        data_volumes: match method {
            VolumeMethod::BlockDeviceMapping => VolumeStrategy::BlockDeviceMapping,
            VolumeMethod::CreateAttach => VolumeStrategy::CreateAttach,
        },
        ..restore.clone()
    }
}

/// The calls of a one-call-per-resource, no-cache restore, from the plan of the same restore
/// made with [`naive_settings`]. That plan already calls once per resource (`RunInstances`
/// per instance, `CreateVolume` and `AttachVolume` per volume under create + attach, one
/// `ChangeResourceRecordSets` per record, every load-balancer call per load balancer, target
/// group, listener and registration) and waits with one describe per launch
/// (`DescribeInstances` per instance) and one `GetChange` per batch (per record). Added: one
/// describe per resource for each wait the plan does not count — `rds:DescribeDBInstances`
/// per DB instance, `elbv2:DescribeLoadBalancers` per v2 load balancer, and under create +
/// attach `ec2:DescribeVolumes` per data volume. Nothing is cached, so no describe is shared.
pub fn naive_calls(naive_plan: &RestorePlan) -> BTreeMap<String, u64> {
    let mut calls = naive_plan.calls.clone();
    let mut add = |op: &str, n: u64| {
        if n > 0 {
            *calls.entry(op.to_owned()).or_insert(0) += n;
        }
    };
    let dbs = naive_plan
        .tiers
        .iter()
        .map(|t| t.databases.len() as u64)
        .sum();
    add("rds:DescribeDBInstances", dbs);
    let v2 = naive_plan
        .load_balancers
        .iter()
        .filter(|lb| lb.kind != LbKind::Classic)
        .count() as u64;
    add("elbv2:DescribeLoadBalancers", v2);
    if naive_plan.volumes.chosen == VolumeMethod::CreateAttach {
        add("ec2:DescribeVolumes", naive_plan.volumes.data_volumes);
    }
    calls
}

/// How often a restore polls what it waits for, in AWS seconds (the daemon's default
/// `restore.poll_interval_ms`, 5,000, in AWS time).
pub const POLL_AWS_SECS: f64 = 5.0;

/// The calls of the same one-call-per-resource restore when, like the case study's first
/// scripts, it also caches nothing and polls each resource on its own: [`naive_calls`] with
/// every single describe of a wait replaced by one describe per resource per poll for the
/// time the lab keeps it pending (`ceil(pending / POLL_AWS_SECS)`, at least 1) —
/// `ec2:DescribeInstances` per instance over the boot, `route53:GetChange` per record (one
/// change each) over the sync, `rds:DescribeDBInstances` per DB over its restore,
/// `elbv2:DescribeLoadBalancers` per v2 load balancer over its provisioning — and one
/// `ec2:DescribeSubnets` per launch and per v2 load balancer for the subnet lookups the
/// daemon answers from its cache. Volumes keep one describe each (the lab makes them
/// available at once).
pub fn naive_polling_calls(
    naive_plan: &RestorePlan,
    pending: &PendingTimes,
) -> BTreeMap<String, u64> {
    let polls = |wait: f64| ((wait / POLL_AWS_SECS).ceil() as u64).max(1);
    let mut calls = naive_calls(naive_plan);
    let mut scale = |op: &str, n: u64| {
        if let Some(c) = calls.get_mut(op) {
            *c *= n;
        }
    };
    scale("ec2:DescribeInstances", polls(pending.instance_secs));
    scale("route53:GetChange", polls(pending.dns_secs));
    scale("rds:DescribeDBInstances", polls(pending.db_secs));
    scale(
        "elbv2:DescribeLoadBalancers",
        polls(pending.load_balancer_secs),
    );
    let lookups = naive_plan
        .calls
        .get("ec2:RunInstances")
        .copied()
        .unwrap_or(0)
        + naive_plan
            .load_balancers
            .iter()
            .filter(|lb| lb.kind != LbKind::Classic)
            .count() as u64;
    if lookups > 0 {
        *calls.entry("ec2:DescribeSubnets".to_owned()).or_insert(0) += lookups;
    }
    calls
}

/// Plans the whole estate of `inventory` under `config` twice: as configured (to check the
/// daemon's plan is reproduced) and with [`naive_settings`] for the configured plan's volume
/// method. The DR state is left empty: call
/// counts depend on the estate's shape only (a missing DR id stands for the present one, one
/// for one).
///
/// # Errors
/// A scope error (a tenant of the config unknown to the inventory cannot happen: the scope is
/// the whole estate).
pub fn plans(inventory: &Inventory, config: &Config) -> anyhow::Result<(RestorePlan, RestorePlan)> {
    let selection = select(inventory, &config.tenants, &Scope::default())?;
    let dr = DrState::default();
    let configured = restore_plan(
        inventory,
        &selection,
        &dr,
        &config.restore,
        &config.throttle,
    );
    let naive = restore_plan(
        inventory,
        &selection,
        &dr,
        &naive_settings(&config.restore, configured.volumes.chosen),
        &config.throttle,
    );
    Ok((configured, naive))
}

/// `bench restore` (see the module doc).
///
/// # Errors
/// Lab, seeding or daemon failures, a plan that never loses its problems, a restore that does
/// not end in time; each with context. A restore that ends `failed` is reported, not an error.
pub async fn restore(b: &RestoreBench) -> anyhow::Result<Value> {
    anyhow::ensure!(
        b.time_scale.is_finite() && b.time_scale > 0.0,
        "time scale must be positive"
    );
    let spec = b.estate.spec();
    spec.validate().context("the estate spec")?;
    let lab = Lab::shared().await?;
    let session = lab
        .new_session(ProxyOptions {
            time_scale: b.time_scale,
            enforce_limits: true,
            copy_gib_per_sec: 1000.0,
            copy_min_secs: 1.0,
            launch_max_count: true,
            instance_pending_secs: b.pending.instance_secs,
            db_creating_secs: b.pending.db_secs,
            lb_provisioning_secs: b.pending.load_balancer_secs,
            dns_pending_secs: b.pending.dns_secs,
            ..ProxyOptions::default()
        })
        .await?;
    let door = RealismProxy::start(
        lab.moto().addr(),
        ProxyOptions {
            enforce_limits: false,
            account_id: Some(session.account_id().to_owned()),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let mut settings = pilotlight_aws::AwsSettings::lab(&door.endpoint());
    settings.max_attempts = 1;
    settings.operation_timeout = Duration::from_secs(600);
    let primary = AwsClients::new(&pilotlight_aws::sdk::sdk_config(&settings, PRIMARY).await);
    let dr = AwsClients::new(&pilotlight_aws::sdk::sdk_config(&settings, DR).await);

    // 1. The estate and its EBS copies.
    let t = Instant::now();
    tracing::info!(instances = b.estate.instances, "seeding the primary");
    let estate = seed_estate(&primary, &dr, &spec)
        .await
        .context("seeding the estate")?;
    let seed_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ebs_copies = precreate_ebs_copies(&primary.ec2, &dr.ec2, &estate)
        .await
        .context("pre-creating the DR snapshot copies")?;
    let copies_secs = t.elapsed().as_secs_f64();
    let seeded_instances: usize = estate.fleets.values().map(Vec::len).sum();

    // 2. The daemon, until its plan has no problem.
    let dir = super::tempfile_dir()?.join(format!("restore-{}", session.account_id()));
    std::fs::create_dir_all(&dir)?;
    let config_text = daemon_config(b, &session.endpoint(), &dir, session.account_id())?;
    let config = Config::from_sources(Some(&config_text), &BTreeMap::new(), &[])
        .map_err(|e| anyhow::anyhow!("the bench's daemon config is invalid:\n{e}"))?;
    std::fs::write(dir.join("pilotlight.toml"), &config_text)?;
    let mut daemon = DaemonProcess::start(&b.daemon, &dir, config.api.listen)?;
    let t = Instant::now();
    let plan_view = daemon
        .wait_ready(seeded_instances, b.ready_timeout)
        .await
        .with_context(|| {
            format!(
                "waiting for a plan without problems (logs in {})",
                dir.display()
            )
        })?;
    let ready_secs = t.elapsed().as_secs_f64();

    // 3. The minimum (a dry run's plan) and the naive count (the same inventory re-planned).
    let (code, dry) = daemon
        .post("/v1/restores", r#"{"mode": "disaster", "dry_run": true}"#)
        .await?;
    anyhow::ensure!(code == 200, "dry run answered {code}: {dry}");
    let plan: RestorePlan = serde_json::from_value(dry["plan"]["restore"].clone())
        .context("reading the dry run's restore plan")?;
    let inventory = read_inventory(&dr.s3, &plan_view).await?;
    let (reproduced, naive_plan) = plans(&inventory, &config)?;
    let naive = naive_calls(&naive_plan);
    let polling = naive_polling_calls(&naive_plan, &b.pending);

    // 4. The shortage, the primary gone, the disaster.
    let client = ProxyClient::new(&session.endpoint())?;
    let shortage = shortage_rules(&plan, &b.shortage);
    for (instance_type, _, after) in &shortage {
        client
            .add_capacity_rule(&CapacityRule::in_region(instance_type, DR, *after))
            .await?;
    }
    client.region_down(PRIMARY).await?;
    session.proxy().reset_counters();
    let declared = Instant::now();
    let (code, body) = daemon
        .post("/v1/restores", r#"{"mode": "disaster"}"#)
        .await?;
    anyhow::ensure!(
        code == 201,
        "declaring the disaster answered {code}: {body}"
    );
    let run_id = body["run"]["id"]
        .as_str()
        .or_else(|| body["id"].as_str())
        .with_context(|| format!("no run id in {body}"))?
        .to_owned();
    tracing::info!(run = %run_id, "disaster declared");
    let report = daemon
        .wait_run(&run_id, b.restore_timeout)
        .await
        .with_context(|| format!("waiting for run {run_id} (logs in {})", dir.display()))?;
    let observed_secs = declared.elapsed().as_secs_f64();
    let counts = session.proxy().counters();
    let rules = client.capacity_rules().await.unwrap_or_default();
    client.region_up(PRIMARY).await?;
    daemon.stop().await;

    let measured = Measured {
        report,
        counts,
        observed_secs,
    };
    let naive = Naive {
        strict: &naive,
        polling: &polling,
    };
    let out = summarise(b, &plan, &reproduced, &naive, &measured, &shortage, &rules);
    let out = json!({
        "bench": "restore",
        "estate": {
            "shape": {
                "instances": b.estate.instances,
                "tiers": 3,
                "volumes_per_instance": b.estate.volumes_per_instance,
                "load_balancers": b.estate.load_balancers,
                "records": b.estate.records,
                "zones": b.estate.zones,
                "databases": b.estate.databases,
            },
            "seeded_instances": seeded_instances,
            "seeded_load_balancers": estate.load_balancers.len(),
            "seeded_records": estate.zones.values().map(|z| z.records.len()).sum::<usize>(),
            "seeded_databases": estate.db_instances.len(),
            "ebs_copies_precreated": ebs_copies,
        },
        "time_scale": b.time_scale,
        "pending_aws_secs": {
            "instance": b.pending.instance_secs,
            "db": b.pending.db_secs,
            "load_balancer": b.pending.load_balancer_secs,
            "dns": b.pending.dns_secs,
        },
        "setup_secs": {"seed": seed_secs, "ebs_copies": copies_secs, "daemon_ready": ready_secs},
        "result": out,
    });
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// What the run produced: its report, the proxy's counters over its window, and the time from
/// the declaration to the bench seeing it end.
struct Measured {
    report: Value,
    counts: crate::CallCounts,
    observed_secs: f64,
}

/// The two naive counts: [`naive_calls`] and [`naive_polling_calls`].
struct Naive<'a> {
    strict: &'a BTreeMap<String, u64>,
    polling: &'a BTreeMap<String, u64>,
}

/// The figures and targets from the plan, the naive counts and the measured run.
fn summarise(
    b: &RestoreBench,
    plan: &RestorePlan,
    reproduced: &RestorePlan,
    naive: &Naive<'_>,
    m: &Measured,
    shortage: &[(String, u64, u32)],
    rules: &[crate::proxy::CapacityStatus],
) -> Value {
    // `GET /v1/restores/{id}`: the run's fields with its `report`; the report repeats the run.
    let answer = &m.report;
    let report = if answer["report"].is_object() {
        &answer["report"]
    } else {
        answer
    };
    let run = if report["run"].is_object() {
        &report["run"]
    } else {
        answer
    };
    let ms = |k: &str| run[k].as_i64();
    let makespan = match (ms("started_at_ms"), ms("finished_at_ms")) {
        (Some(s), Some(f)) => Some((f - s) as f64 / 1000.0),
        _ => report["rto_secs"].as_f64(),
    };
    let start_ms = ms("started_at_ms").unwrap_or(0);
    let offset = |v: &Value| v.as_i64().map(|t| (t - start_ms) as f64 / 1000.0);
    let steps: Vec<Value> = report["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|st| {
                    json!({
                        "step": st["step_id"],
                        "state": st["state"],
                        "start_secs": offset(&st["started_at_ms"]),
                        "end_secs": offset(&st["finished_at_ms"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let bound = plan.schedule.lower_bound.secs;
    let estimate = plan.schedule.total_secs;

    let mut by_report: BTreeMap<String, u64> = BTreeMap::new();
    let mut throttled_report = 0u64;
    if let Some(calls) = report["calls"].as_object() {
        for (op, tally) in calls {
            by_report.insert(op.clone(), tally["calls"].as_u64().unwrap_or(0));
            throttled_report += tally["throttled"].as_u64().unwrap_or(0);
        }
    }
    let dr_rows: Vec<&crate::CallCount> = m
        .counts
        .rows
        .iter()
        .filter(|r| r.region == DR || r.region == GLOBAL)
        .collect();
    let mut by_proxy: BTreeMap<String, u64> = BTreeMap::new();
    let mut throttled_proxy: BTreeMap<String, u64> = BTreeMap::new();
    for r in &dr_rows {
        let op = format!("{}:{}", r.service, r.operation);
        *by_proxy.entry(op.clone()).or_insert(0) += r.calls;
        if r.throttled > 0 {
            *throttled_proxy.entry(op).or_insert(0) += r.throttled;
        }
    }
    let primary_calls: u64 = m
        .counts
        .rows
        .iter()
        .filter(|r| r.region == PRIMARY)
        .map(|r| r.calls)
        .sum();

    let min_total = plan.call_count();
    let report_total: u64 = by_report.values().sum();
    let proxy_total: u64 = by_proxy.values().sum();
    let naive_total: u64 = naive.strict.values().sum();
    let polling_total: u64 = naive.polling.values().sum();
    let mut ops: Vec<&String> = plan
        .calls
        .keys()
        .chain(by_report.keys())
        .chain(by_proxy.keys())
        .chain(naive.polling.keys())
        .collect();
    ops.sort();
    ops.dedup();
    let by_operation: Vec<Value> = ops
        .iter()
        .map(|op| {
            json!({
                "operation": op,
                "plan_min": plan.calls.get(*op).copied().unwrap_or(0),
                "report": by_report.get(*op).copied().unwrap_or(0),
                "proxy": by_proxy.get(*op).copied().unwrap_or(0),
                "naive": naive.strict.get(*op).copied().unwrap_or(0),
                "naive_polling": naive.polling.get(*op).copied().unwrap_or(0),
            })
        })
        .collect();

    let substitutions = report["substitutions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failed = report["failed_items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ratio = |a: f64, b: f64| if b > 0.0 { Some(a / b) } else { None };
    let makespan_vs_bound = makespan.and_then(|m| ratio(m, bound));
    let calls_vs_min = ratio(report_total as f64, min_total as f64);
    let calls_vs_naive = ratio(report_total as f64, naive_total as f64);
    let calls_vs_polling = ratio(report_total as f64, polling_total as f64);
    let state = run["state"].as_str().unwrap_or("unknown").to_owned();
    let targets = json!({
        "makespan_le_1_25_bound": makespan_vs_bound.map(|r| r <= MAKESPAN_TARGET),
        "calls_le_1_1_min": calls_vs_min.map(|r| r <= CALLS_TARGET),
        "calls_le_tenth_of_naive": calls_vs_polling.map(|r| r <= NAIVE_TARGET),
        "calls_le_tenth_of_naive_strict": calls_vs_naive.map(|r| r <= NAIVE_TARGET),
        "no_failed_item": failed.is_empty() && state == "succeeded",
        "plan_b_exercised": !substitutions.is_empty(),
        "primary_untouched": m.counts.mutating_calls_in(PRIMARY) == 0,
    });
    json!({
        "run": {"id": run["id"], "state": state, "error": run["error"]},
        "makespan_secs": makespan,
        "declared_to_seen_finished_secs": m.observed_secs,
        "rto_secs": report["rto_secs"],
        "plan": {
            "lower_bound_secs": bound,
            "lower_bound_binding": plan.schedule.lower_bound.binding,
            "lower_bound_chains": plan.schedule.lower_bound.chains,
            "estimate_secs": estimate,
            "volume_method": plan.volumes.chosen,
            "instances": plan.instance_count(),
            "records": plan.dns.records,
            "load_balancers": plan.load_balancers.len(),
            "calls_min_total": min_total,
            "reproduced_by_bench": reproduced.calls == plan.calls,
        },
        "steps": steps,
        "plan_tiers": plan.schedule.tiers.iter().map(|t| json!({
            "tier": t.tier,
            "start_secs": t.start_secs,
            "end_secs": t.end_secs,
            "binding": t.binding,
        })).collect::<Vec<_>>(),
        "makespan_vs_bound": makespan_vs_bound,
        "makespan_vs_estimate": makespan.and_then(|m| ratio(m, estimate)),
        "calls": {
            "report_total": report_total,
            "proxy_dr_total": proxy_total,
            "plan_min_total": min_total,
            "naive_total": naive_total,
            "naive_polling_total": polling_total,
            "report_vs_min": calls_vs_min,
            "proxy_vs_min": ratio(proxy_total as f64, min_total as f64),
            "report_vs_naive": calls_vs_naive,
            "report_vs_naive_polling": calls_vs_polling,
            "by_operation": by_operation,
        },
        "naive": {
            "formula": "calls of restore_plan(same inventory, max_instances_per_call = 1, \
                        route53_max_changes_per_batch = 1) + one rds:DescribeDBInstances per DB \
                        + one elbv2:DescribeLoadBalancers per v2 load balancer + one \
                        ec2:DescribeVolumes per data volume under create + attach",
            "polling_formula": "naive, with each wait's describe repeated every 5 AWS seconds \
                                per resource for the lab's pending time (instances, records, \
                                DBs, v2 load balancers) + one ec2:DescribeSubnets per launch and \
                                per v2 load balancer (no cache)",
            "poll_aws_secs": POLL_AWS_SECS,
            "volume_method": plan.volumes.chosen,
        },
        "throttled": {
            "proxy_total": throttled_proxy.values().sum::<u64>(),
            "proxy_by_operation": throttled_proxy,
            "report_total": throttled_report,
        },
        "primary": {
            "calls_refused_while_down": primary_calls,
            "mutating_calls": m.counts.mutating_calls_in(PRIMARY),
        },
        "shortage": shortage.iter().map(|(t, planned, after)| {
            let status = rules.iter().find(|r| &r.rule.instance_type == t);
            json!({
                "instance_type": t,
                "planned_instances": planned,
                "after_launches": after,
                "launched": status.map(|s| s.launched),
                "refused_calls": status.map(|s| s.refused),
            })
        }).collect::<Vec<_>>(),
        "substitutions": substitutions.len(),
        "substitution_examples": substitutions.iter().take(10).cloned().collect::<Vec<_>>(),
        "failed_items": failed.len(),
        "failed_examples": failed.iter().take(10).cloned().collect::<Vec<_>>(),
        "targets": targets,
        "poll_interval_ms": b.poll_interval_ms,
    })
}

/// The shortage rules: each type with its planned instances and the launches it still allows
/// (half). `chosen` empty: the two types with the most planned instances (ties by name).
fn shortage_rules(plan: &RestorePlan, chosen: &[String]) -> Vec<(String, u64, u32)> {
    let mut planned: BTreeMap<String, u64> = BTreeMap::new();
    for tier in &plan.tiers {
        for (t, n) in &tier.instance_types {
            *planned.entry(t.clone()).or_insert(0) += n;
        }
    }
    let types: Vec<String> = if chosen.is_empty() {
        let mut by_count: Vec<(&String, &u64)> = planned.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        by_count
            .into_iter()
            .take(2)
            .map(|(t, _)| t.clone())
            .collect()
    } else {
        chosen.to_vec()
    };
    types
        .into_iter()
        .map(|t| {
            let n = planned.get(&t).copied().unwrap_or(0);
            let after = u32::try_from(n / 2).unwrap_or(u32::MAX);
            (t, n, after)
        })
        .collect()
}

/// One tagged DR snapshot per primary data-volume snapshot, of one small DR volume: the DR
/// copies a daemon that had copied everything would own, made without `CopySnapshot`.
/// Returns how many were made.
async fn precreate_ebs_copies(
    primary: &aws_sdk_ec2::Client,
    dr: &aws_sdk_ec2::Client,
    estate: &SeededEstate,
) -> anyhow::Result<usize> {
    use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
    use futures::stream::{self, TryStreamExt};

    let wanted: Vec<String> = estate
        .fleets
        .values()
        .flatten()
        .flat_map(|i| i.data_volumes.iter().filter_map(|v| v.snapshot.clone()))
        .chain(
            estate
                .volumes
                .values()
                .flat_map(|v| v.snapshots.iter().cloned()),
        )
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let mut sources: Vec<(String, String, i64)> = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(200) {
        let out = primary
            .describe_snapshots()
            .filters(
                Filter::builder()
                    .name("snapshot-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .send()
            .await?;
        for s in out.snapshots() {
            if let (Some(id), Some(volume), Some(start)) =
                (s.snapshot_id(), s.volume_id(), s.start_time())
            {
                sources.push((id.to_owned(), volume.to_owned(), start.to_millis()?));
            }
        }
    }
    anyhow::ensure!(
        sources.len() == wanted.len(),
        "found {} of {} primary snapshots",
        sources.len(),
        wanted.len()
    );
    let volume = dr
        .create_volume()
        .availability_zone(format!("{DR}a"))
        .size(8)
        .send()
        .await?
        .volume_id()
        .context("CreateVolume answered no id")?
        .to_owned();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    stream::iter(sources.iter().map(Ok::<_, anyhow::Error>))
        .try_for_each_concurrent(
            crate::seed::SEED_CONCURRENCY,
            |(snap, source_volume, ms)| {
                let spec = TagSpecification::builder()
                    .resource_type(ResourceType::Snapshot)
                    .tags(tag(pilotlight_aws::tags::MANAGED, "true"))
                    .tags(tag(pilotlight_aws::tags::SOURCE, snap))
                    .tags(tag("pilotlight:resource", source_volume))
                    .tags(tag("pilotlight:source-created-ms", &ms.to_string()))
                    .build();
                let dr = dr.clone();
                let volume = volume.clone();
                async move {
                    dr.create_snapshot()
                        .volume_id(volume)
                        .tag_specifications(spec)
                        .send()
                        .await?;
                    Ok(())
                }
            },
        )
        .await?;
    Ok(sources.len())
}

/// The inventory document the plan was built from, read from the DR bucket.
async fn read_inventory(s3: &aws_sdk_s3::Client, view: &Value) -> anyhow::Result<Inventory> {
    let bucket = view["inventory_bucket"]
        .as_str()
        .context("the plan names no inventory bucket")?;
    let key = view["inventory_key"]
        .as_str()
        .context("the plan names no inventory key")?;
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .with_context(|| format!("reading s3://{bucket}/{key}"))?;
    let bytes = object.body.collect().await?.into_bytes();
    Ok(pilotlight_aws::s3::decode_inventory(key, &bytes)?)
}

/// The daemon's configuration: the session's endpoint, SQLite in `dir`, the inventory on,
/// copies fast, readiness on demand, quotas out of the way, the throttle at the lab's time
/// scale, the `[restore]` estimates equal to the lab's pending times in wall seconds, and
/// alternative families for plan B (the two short types may be neighbours of one family, as
/// `c5.large` and `c5.xlarge` are, which leaves no neighbouring size).
fn daemon_config(
    b: &RestoreBench,
    endpoint: &str,
    dir: &Path,
    account: &str,
) -> anyhow::Result<String> {
    let port = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (api_port, metrics_port) = (port()?, port()?);
    std::fs::write(dir.join("key"), "testing\n")?;
    std::fs::write(dir.join("token"), format!("{TOKEN}\n"))?;
    let wall = |aws_secs: f64| (aws_secs / b.time_scale).round() as u64;
    Ok(format!(
        r#"[aws]
endpoint_url = "{endpoint}"
s3_force_path_style = true
access_key_id_file = "{dir}/key"
secret_access_key_file = "{dir}/key"
# moto filters tagged resources in time quadratic in their number: at the case study's
# scale one page of DescribeVolumes can take more than ten minutes.
operation_timeout_secs = 3600
[store]
url = "sqlite://{dir}/pilotlight.db"
[daemon]
data_dir = "{dir}"
[api]
listen = "127.0.0.1:{api_port}"
metrics_listen = "127.0.0.1:{metrics_port}"
request_timeout_secs = 600
[[api.tokens]]
name = "bench"
role = "operator"
token_file = "{dir}/token"
[reconcile]
cycle_secs = 3600
max_backoff_secs = 30
[copy]
# Every cycle lists the whole estate (the AMI reconciler every instance): at thousands of
# instances moto needs tens of seconds for that, so the cycle grows with the estate.
cycle_secs = {copy_cycle}
rds_clusters = false
[inventory]
bucket = "pl-bench-{account}"
cycle_secs = 3600
utilisation = false
[readiness]
# Run on demand by the bench (it resolves the DR certificates the plan needs).
cycle_secs = 3600
[quotas]
vcpus = {{ standard = 1000000 }}
classic_load_balancers = 100000
application_load_balancers = 100000
network_load_balancers = 100000
db_instances = 100000
[restore]
poll_interval_ms = {poll}
instance_boot_secs = {boot}
db_restore_secs = {db}
load_balancer_provision_secs = {lb}
dns_sync_secs = {dns}
[restore.fallback.alternative_families]
m5 = ["m5a", "m6i"]
c5 = ["c5a", "c6i"]
r5 = ["r5a", "r6i"]
[throttle]
time_scale = {scale}
[log]
level = "warn"
"#,
        dir = dir.display(),
        poll = b.poll_interval_ms,
        copy_cycle = (b.estate.instances / 50).clamp(10, 120),
        boot = wall(b.pending.instance_secs),
        db = wall(b.pending.db_secs),
        lb = wall(b.pending.load_balancer_secs),
        dns = wall(b.pending.dns_secs),
        scale = b.time_scale,
    ))
}

/// The `pilotlight` daemon as a child process (killed when dropped).
struct DaemonProcess {
    child: tokio::process::Child,
    api: SocketAddr,
    log: PathBuf,
}

impl DaemonProcess {
    fn start(bin: &Path, dir: &Path, api: SocketAddr) -> anyhow::Result<DaemonProcess> {
        let log = dir.join("daemon.log");
        let child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(dir.join("pilotlight.toml"))
            .arg("run")
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(DaemonProcess { child, api, log })
    }

    /// Fails (with the end of its log) if the daemon has exited.
    fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("the daemon exited ({status}):\n{}", tail.join("\n"));
        }
        Ok(())
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let (code, body) = super::http(self.api, "GET", path, None).await?;
        Ok((
            code,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }

    async fn post(&self, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
        let (code, body) = super::http(self.api, "POST", path, Some(body)).await?;
        Ok((
            code,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }

    /// Polls `GET /v1/plan` until it plans `instances` instances with no problem; returns the
    /// plan view. While certificates are missing the readiness reconciler (which resolves them)
    /// is run, at most every 10 s.
    async fn wait_ready(&mut self, instances: usize, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut last_trigger: Option<Instant> = None;
        let mut last_seen = String::from("no answer yet");
        loop {
            self.alive()?;
            if let Ok((200, view)) = self.get("/v1/plan").await {
                let problems = view["restore"]["problems"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let planned: u64 = view["restore"]["tiers"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|t| t["instances"].as_u64()).sum())
                    .unwrap_or(0);
                if problems.is_empty() && planned as usize == instances {
                    return Ok(view);
                }
                let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
                for p in &problems {
                    *kinds
                        .entry(p["kind"].as_str().unwrap_or("?").to_owned())
                        .or_insert(0) += 1;
                }
                let examples: Vec<String> = problems
                    .iter()
                    .take(3)
                    .map(|p| format!("{} ({})", p["reason"], p["resource_id"]))
                    .collect();
                let seen = format!(
                    "{planned} of {instances} instances planned, problems {kinds:?} e.g. {}",
                    examples.join("; ")
                );
                if seen != last_seen {
                    tracing::info!("plan: {seen}");
                    last_seen = seen;
                }
                if kinds.contains_key("certificate_not_mapped")
                    && last_trigger.is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                {
                    let _ = self
                        .post("/v1/reconcilers/readiness/run", r#"{"reason":"bench"}"#)
                        .await;
                    last_trigger = Some(Instant::now());
                }
            }
            if Instant::now() > deadline {
                bail!("no plan without problems after {timeout:?}: {last_seen}");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Polls `GET /v1/restores/{id}` until the run has ended; returns the answer (the run's
    /// fields and its `report`).
    async fn wait_run(&mut self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut last_state = String::new();
        loop {
            self.alive()?;
            let (code, report) = self.get(&format!("/v1/restores/{id}")).await?;
            if code == 200 {
                let state = report["state"]
                    .as_str()
                    .or_else(|| report["report"]["run"]["state"].as_str())
                    .unwrap_or("unknown")
                    .to_owned();
                if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
                    return Ok(report);
                }
                let progress: Vec<String> = report["report"]["tiers"]
                    .as_array()
                    .map(|tiers| {
                        tiers
                            .iter()
                            .map(|t| {
                                format!(
                                    "t{} {}/{}",
                                    t["tier"], t["instances_running"], t["instances_planned"]
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let line = format!("{state} {}", progress.join(" "));
                if line != last_state {
                    tracing::info!(run = id, "{line}");
                    last_state = line;
                }
            }
            if Instant::now() > deadline {
                bail!("run {id} still {last_state} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// SIGTERM, then waits for the exit (dropping kills it if that fails).
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::LoadBalancerKind;
    use pilotlight_core::config::ThrottleConfig;
    use pilotlight_core::inventory::{
        ClassicHealthCheck, ClassicListener, ClassicLoadBalancer, DbInstance, HostedZone, Instance,
        Listener, LoadBalancer, Record, Target, TargetGroup,
    };

    fn instance(n: u8, tier: u8) -> Instance {
        Instance {
            id: format!("i-{n}"),
            instance_type: "m5.large".to_owned(),
            tier,
            role: "app".to_owned(),
            availability_zone: "us-east-1a".to_owned(),
            vpc_id: Some("vpc-1".to_owned()),
            subnet_id: Some("subnet-1".to_owned()),
            security_group_ids: vec!["sg-1".to_owned()],
            image_id: "ami-1".to_owned(),
            private_ip: Some(format!("10.0.0.{n}")),
            state: "running".to_owned(),
            ..Instance::default()
        }
    }

    fn a_record(name: &str, value: &str) -> Record {
        Record {
            name: name.to_owned(),
            record_type: "A".to_owned(),
            ttl: Some(60),
            values: vec![value.to_owned()],
            ..Record::default()
        }
    }

    /// Four tier-1 instances of one spec, one tier-2 instance, a DB, an ALB with one target
    /// group (two targets), a classic ELB with a health check, and a zone with four instance
    /// records, one CNAME to the DB and one TXT record that points at nothing.
    fn inventory() -> Inventory {
        let mut instances: Vec<Instance> = (1..=4).map(|n| instance(n, 1)).collect();
        instances.push(instance(5, 2));
        let db_endpoint = "orders.abc.us-east-1.rds.amazonaws.com";
        Inventory {
            schema_version: 1,
            primary_region: "us-east-1".to_owned(),
            dr_region: "us-west-2".to_owned(),
            instances,
            load_balancers: vec![LoadBalancer {
                arn: "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/web/1".to_owned(),
                name: "web".to_owned(),
                dns_name: "web-1.us-east-1.elb.amazonaws.com".to_owned(),
                subnet_ids: vec!["subnet-1".to_owned()],
                listeners: vec![Listener {
                    arn: "arn:listener/1".to_owned(),
                    port: 80,
                    protocol: "HTTP".to_owned(),
                    ..Listener::default()
                }],
                target_groups: vec![TargetGroup {
                    arn: "arn:targetgroup/web/1".to_owned(),
                    name: "web".to_owned(),
                    target_type: "instance".to_owned(),
                    targets: ["i-1", "i-2"]
                        .iter()
                        .map(|id| Target {
                            id: (*id).to_owned(),
                            port: Some(8080),
                        })
                        .collect(),
                    ..TargetGroup::default()
                }],
                ..LoadBalancer::default()
            }],
            classic_load_balancers: vec![ClassicLoadBalancer {
                name: "legacy".to_owned(),
                dns_name: "legacy.us-east-1.elb.amazonaws.com".to_owned(),
                subnet_ids: vec!["subnet-1".to_owned()],
                listeners: vec![ClassicListener {
                    protocol: "HTTP".to_owned(),
                    port: 80,
                    instance_port: 8080,
                    ..ClassicListener::default()
                }],
                health_check: Some(ClassicHealthCheck {
                    target: "HTTP:8080/health".to_owned(),
                    interval_secs: 30,
                    timeout_secs: 5,
                    healthy_threshold: 3,
                    unhealthy_threshold: 2,
                }),
                instance_ids: vec!["i-3".to_owned()],
                ..ClassicLoadBalancer::default()
            }],
            db_instances: vec![DbInstance {
                id: "orders".to_owned(),
                arn: "arn:aws:rds:us-east-1:1:db:orders".to_owned(),
                class: "db.r5.large".to_owned(),
                engine: "postgres".to_owned(),
                tier: 1,
                endpoint_address: Some(db_endpoint.to_owned()),
                endpoint_port: Some(5432),
                ..DbInstance::default()
            }],
            hosted_zones: vec![HostedZone {
                id: "Z1".to_owned(),
                name: "example.com.".to_owned(),
                records: vec![
                    a_record("a.example.com.", "10.0.0.1"),
                    a_record("b.example.com.", "10.0.0.2"),
                    a_record("c.example.com.", "10.0.0.3"),
                    a_record("d.example.com.", "10.0.0.5"),
                    Record {
                        name: "db.example.com.".to_owned(),
                        record_type: "CNAME".to_owned(),
                        ttl: Some(300),
                        values: vec![db_endpoint.to_owned()],
                        ..Record::default()
                    },
                    Record {
                        name: "txt.example.com.".to_owned(),
                        record_type: "TXT".to_owned(),
                        ttl: Some(300),
                        values: vec!["\"hello\"".to_owned()],
                        ..Record::default()
                    },
                ],
                ..HostedZone::default()
            }],
            ..Inventory::default()
        }
    }

    fn config(volumes: VolumeStrategy) -> Config {
        Config {
            restore: RestoreConfig {
                data_volumes: volumes,
                ..RestoreConfig::default()
            },
            throttle: ThrottleConfig::default(),
            ..Config::default()
        }
    }

    #[test]
    fn naive_count_is_one_call_per_resource_plus_one_describe_per_wait() {
        let (plan, naive_plan) =
            plans(&inventory(), &config(VolumeStrategy::BlockDeviceMapping)).expect("plans");
        // The batched plan: one launch per tier (4 + 1), one describe each; one DNS batch.
        let get = |calls: &BTreeMap<String, u64>, op: &str| calls.get(op).copied().unwrap_or(0);
        assert_eq!(get(&plan.calls, "ec2:RunInstances"), 2, "{:?}", plan.calls);
        assert_eq!(get(&plan.calls, "ec2:DescribeInstances"), 2);
        assert_eq!(get(&plan.calls, "route53:ChangeResourceRecordSets"), 1);
        assert_eq!(get(&plan.calls, "route53:GetChange"), 1);

        let naive = naive_calls(&naive_plan);
        // Five instances: a launch and a describe each.
        assert_eq!(get(&naive, "ec2:RunInstances"), 5, "{naive:?}");
        assert_eq!(get(&naive, "ec2:DescribeInstances"), 5);
        // Five records pointing at restored resources (the TXT one points at nothing).
        assert_eq!(get(&naive, "route53:ChangeResourceRecordSets"), 5);
        assert_eq!(get(&naive, "route53:GetChange"), 5);
        // One DB: its restore and one describe.
        assert_eq!(get(&naive, "rds:RestoreDBInstanceFromDBSnapshot"), 1);
        assert_eq!(get(&naive, "rds:DescribeDBInstances"), 1);
        // The ALB: load balancer, target group, listener, registration, one describe.
        for op in [
            "elbv2:CreateLoadBalancer",
            "elbv2:CreateTargetGroup",
            "elbv2:CreateListener",
            "elbv2:RegisterTargets",
            "elbv2:DescribeLoadBalancers",
        ] {
            assert_eq!(get(&naive, op), 1, "{op}");
        }
        // The classic ELB: created with its listeners, health check, registration; no wait.
        for op in [
            "elb:CreateLoadBalancer",
            "elb:ConfigureHealthCheck",
            "elb:RegisterInstancesWithLoadBalancer",
        ] {
            assert_eq!(get(&naive, op), 1, "{op}");
        }
        assert_eq!(get(&naive, "ec2:DescribeVolumes"), 0);
        assert_eq!(naive.values().sum::<u64>(), 30, "{naive:?}");
        // The plan's launch of 4 tags each instance with its own source (4 × CreateTags).
        assert_eq!(get(&plan.calls, "ec2:CreateTags"), 4);
        assert_eq!(plan.call_count(), 18, "{:?}", plan.calls);
    }

    #[test]
    fn the_polling_count_polls_each_resource_for_its_pending_time() {
        let (_, naive_plan) =
            plans(&inventory(), &config(VolumeStrategy::BlockDeviceMapping)).expect("plans");
        let strict = naive_calls(&naive_plan);
        let pending = PendingTimes {
            instance_secs: 90.0,
            db_secs: 900.0,
            load_balancer_secs: 121.0,
            dns_secs: 1.0,
        };
        let polling = naive_polling_calls(&naive_plan, &pending);
        let get = |calls: &BTreeMap<String, u64>, op: &str| calls.get(op).copied().unwrap_or(0);
        // Five instances polled 90 / 5 = 18 times each; five records, each its own change,
        // polled once (a second of sync rounds up to one poll); one DB polled 900 / 5 = 180
        // times; the ALB ceil(121 / 5) = 25 times.
        assert_eq!(get(&polling, "ec2:DescribeInstances"), 5 * 18);
        assert_eq!(get(&polling, "route53:GetChange"), 5);
        assert_eq!(get(&polling, "rds:DescribeDBInstances"), 180);
        assert_eq!(get(&polling, "elbv2:DescribeLoadBalancers"), 25);
        // A subnet lookup per launch (five) and per v2 load balancer (one).
        assert_eq!(get(&polling, "ec2:DescribeSubnets"), 6);
        // Everything else as in the strict count.
        for (op, n) in &strict {
            if ![
                "ec2:DescribeInstances",
                "route53:GetChange",
                "rds:DescribeDBInstances",
                "elbv2:DescribeLoadBalancers",
            ]
            .contains(&op.as_str())
            {
                assert_eq!(get(&polling, op), *n, "{op}");
            }
        }
        assert_eq!(
            polling.values().sum::<u64>(),
            30 - 5 - 5 - 1 - 1 + 90 + 5 + 180 + 25 + 6
        );
    }

    #[test]
    fn naive_count_describes_each_created_volume() {
        let mut inv = inventory();
        for (n, i) in inv.instances.iter_mut().enumerate() {
            i.block_devices = (0..2)
                .map(|k| pilotlight_core::inventory::BlockDevice {
                    device_name: format!("/dev/sd{}", char::from(b'f' + k)),
                    volume_id: format!("vol-{n}-{k}"),
                    size_gib: 100,
                    ..Default::default()
                })
                .collect();
        }
        let (_, naive_plan) = plans(&inv, &config(VolumeStrategy::CreateAttach)).expect("plans");
        let naive = naive_calls(&naive_plan);
        assert_eq!(naive.get("ec2:CreateVolume"), Some(&10), "{naive:?}");
        assert_eq!(naive.get("ec2:AttachVolume"), Some(&10));
        assert_eq!(naive.get("ec2:DescribeVolumes"), Some(&10));
    }

    #[test]
    fn naive_settings_change_only_the_batch_sizes_and_fix_the_volume_method() {
        let base = RestoreConfig::default();
        let naive = naive_settings(&base, VolumeMethod::CreateAttach);
        assert_eq!(
            (
                naive.max_instances_per_call,
                naive.route53_max_changes_per_batch,
                naive.data_volumes
            ),
            (1, 1, VolumeStrategy::CreateAttach)
        );
        assert_eq!(
            RestoreConfig {
                max_instances_per_call: base.max_instances_per_call,
                route53_max_changes_per_batch: base.route53_max_changes_per_batch,
                data_volumes: base.data_volumes,
                ..naive
            },
            base
        );
    }

    #[test]
    fn naive_plan_keeps_the_volume_method_auto_chose() {
        // Under `auto` a one-instance-per-call plan may switch methods; the naive restore is
        // the same restore, so it keeps the method the configured plan chose.
        let mut inv = inventory();
        for (n, i) in inv.instances.iter_mut().enumerate() {
            i.block_devices = vec![pilotlight_core::inventory::BlockDevice {
                device_name: "/dev/sdf".to_owned(),
                volume_id: format!("vol-{n}"),
                size_gib: 100,
                ..Default::default()
            }];
        }
        let (plan, naive_plan) = plans(&inv, &config(VolumeStrategy::Auto)).expect("plans");
        assert_eq!(naive_plan.volumes.chosen, plan.volumes.chosen);
    }

    #[test]
    fn poll_interval_scales_with_time() {
        assert_eq!(scaled_poll_interval_ms(1.0), 5000);
        assert_eq!(scaled_poll_interval_ms(20.0), 250);
        assert_eq!(scaled_poll_interval_ms(1000.0), 10);
        assert_eq!(scaled_poll_interval_ms(0.0), 5000);
    }

    #[test]
    fn estate_shape_gives_the_asked_counts() {
        let shape = EstateShape {
            instances: 60,
            volumes_per_instance: 3,
            load_balancers: 4,
            records: 100,
            zones: 4,
            databases: 3,
        };
        let spec = shape.spec();
        spec.validate().expect("valid");
        assert_eq!(spec.fleets.iter().map(|f| f.count).sum::<u32>(), 60);
        assert!(spec.fleets.iter().all(|f| f.data_volumes.len() == 3));
        assert_eq!(spec.load_balancers.len(), 4);
        assert_eq!(
            spec.load_balancers
                .iter()
                .filter(|lb| lb.kind() == LoadBalancerKind::Classic)
                .count(),
            1
        );
        assert_eq!(spec.db_instances.len(), 3);
        assert_eq!(spec.zones.len(), 4);
        assert_eq!(spec.certificates.len(), 4);
        assert_eq!(spec.zones.iter().filter(|z| z.private).count(), 1);
        assert_eq!(
            spec.zones.iter().map(|z| z.records.len()).sum::<usize>(),
            100
        );

        let case = EstateShape::CASE_STUDY.spec();
        case.validate().expect("valid");
        assert_eq!(case.fleets.iter().map(|f| f.count).sum::<u32>(), 3000);
        assert_eq!(case.load_balancers.len(), 100);
        assert_eq!(case.db_instances.len(), 50);
        assert_eq!(
            case.zones.iter().map(|z| z.records.len()).sum::<usize>(),
            4000
        );
    }

    #[test]
    fn shortage_defaults_to_the_two_most_planned_types() {
        let (plan, _) =
            plans(&inventory(), &config(VolumeStrategy::BlockDeviceMapping)).expect("plans");
        assert_eq!(
            shortage_rules(&plan, &[]),
            vec![("m5.large".to_owned(), 5, 2)]
        );
        assert_eq!(
            shortage_rules(&plan, &["r5.2xlarge".to_owned()]),
            vec![("r5.2xlarge".to_owned(), 0, 0)]
        );
    }
}
