//! Fixtures of the restore tests (D1, D3–D11): a lab that behaves like AWS during a restore
//! (pending states, `MaxCount`, everything time-scaled), a small estate brought to a plan with
//! no problems, the daemon as a process that can be killed with `kill -9`, a throttling storm,
//! and a view of what the DR region holds checked against the plan.
//!
//! Everything here inspects AWS through the world's uncounted door, so the daemon's proxy
//! counts only the daemon's calls.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use pilotlight_core::plan::{DrRef, LbKind, RestorePlan};
use pilotlight_lab::seed::{EstateSpec, SeededEstate, seed_estate};
use pilotlight_lab::{FaultAction, FaultRule, ProxyHandle, ProxyOptions};
use serde_json::Value;

use crate::support::{DR, PRIMARY, VIEWER_TOKEN, World, http, http_with_headers, poll};

/// AWS time runs this many times faster in the lab and in the daemon's throttle.
pub const TIME_SCALE: f64 = 100.0;
/// An approver (declares and approves under the two-person rule).
pub const APPROVER_TOKEN: &str = "approver-token-0123456789";
/// A second approver.
pub const SECOND_APPROVER_TOKEN: &str = "approver-two-token-0123456789";
/// How long a plan may take to lose its problems (network mirror, copies, inventory).
const READY_DEADLINE: Duration = Duration::from_secs(240);
/// How long a restore of the small estate may take.
pub const RUN_DEADLINE: Duration = Duration::from_secs(300);
/// The tags every restored resource carries.
const MANAGED: &str = "pilotlight:managed";
const RUN: &str = "pilotlight:run";
const SOURCE: &str = "pilotlight:source";

/// The lab's realism for restores: launches up to `MaxCount`, instances `pending`, DBs
/// `creating`, ALBs `provisioning` and Route 53 changes `PENDING` for `pending` times their
/// base (AWS) seconds, all divided by [`TIME_SCALE`].
pub fn lab_options(pending: f64) -> ProxyOptions {
    ProxyOptions {
        time_scale: TIME_SCALE,
        launch_max_count: true,
        instance_pending_secs: 100.0 * pending,
        db_creating_secs: 200.0 * pending,
        lb_provisioning_secs: 150.0 * pending,
        dns_pending_secs: 100.0 * pending,
        ..ProxyOptions::default()
    }
}

/// The sample estate without what a restore does not use (standalone volumes, the Aurora
/// cluster without members): 15 instances in 3 tiers (10 data volumes), 2 load balancers,
/// 2 zones, 2 DB instances, the always-on DR services.
pub fn small_estate() -> EstateSpec {
    let mut spec = EstateSpec::sample();
    spec.volumes.clear();
    spec.db_clusters.clear();
    spec
}

/// Seeds `spec` through the uncounted door.
pub async fn seed(world: &World, spec: &EstateSpec) -> Result<SeededEstate> {
    let primary = world.clients(PRIMARY).await;
    let dr = world.clients(DR).await;
    Ok(seed_estate(&primary, &dr, spec).await?)
}

/// The daemon's config extras for a restore test: fast copies and readiness, the inventory in
/// a bucket of this account, the lab's time scale, 100 ms restore polls. `restore_keys` are
/// more `[restore]` keys; `tail` is appended (more tokens, `[restore.fallback]`, …).
pub fn restore_config(world: &World, restore_keys: &str, tail: &str) -> String {
    format!(
        "[reconcile]\nmax_backoff_secs = 1\n\n\
         [copy]\ncycle_secs = 1\n\n\
         [inventory]\nbucket = \"pl-rst-{account}\"\nutilisation = false\n\n\
         [readiness]\ncycle_secs = 1\n\n\
         [throttle]\ntime_scale = {TIME_SCALE:.1}\n\n\
         [restore]\npoll_interval_ms = 100\n{restore_keys}\n\n{tail}\n",
        account = world.session.account_id()
    )
}

/// `[[api.tokens]]` blocks for two approvers, `ada` and `abe` (token files in the world's
/// directory).
pub fn approver_tokens(world: &World) -> Result<String> {
    let mut out = String::new();
    for (name, token) in [("ada", APPROVER_TOKEN), ("abe", SECOND_APPROVER_TOKEN)] {
        let path = world.dir.path().join(format!("{name}.token"));
        std::fs::write(&path, format!("{token}\n"))?;
        out.push_str(&format!(
            "[[api.tokens]]\nname = \"{name}\"\nrole = \"approver\"\ntoken_file = \"{}\"\n\n",
            path.display()
        ));
    }
    Ok(out)
}

/// `GET` on the admin API at `api`.
pub async fn get(api: SocketAddr, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
    let (status, body) = http(api, "GET", path, token, None).await?;
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

/// `POST` on the admin API at `api`, with extra headers.
pub async fn post(
    api: SocketAddr,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Value)> {
    http_with_headers(api, "POST", path, token, headers, body).await
}

/// Waits until `GET /v1/plan` answers a plan with no problems (network mirrored, every AMI,
/// snapshot and DB snapshot copied, certificates resolved); returns it.
pub async fn wait_plan_ready(api: SocketAddr) -> Result<Value> {
    let start = Instant::now();
    loop {
        let (code, plan) = get(api, "/v1/plan", Some(VIEWER_TOKEN)).await?;
        if code == 200
            && plan["restore"]["problems"]
                .as_array()
                .is_some_and(Vec::is_empty)
        {
            return Ok(plan);
        }
        if start.elapsed() > READY_DEADLINE {
            let last = if code == 200 {
                plan["restore"]["problems"].clone()
            } else {
                plan
            };
            bail!("the plan still has problems after {READY_DEADLINE:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The restore part of a `GET /v1/plan` answer, typed.
pub fn restore_plan(plan: &Value) -> Result<RestorePlan> {
    serde_json::from_value(plan["restore"].clone()).context("the plan's restore part")
}

/// `POST /v1/restores` with `body` as `token`, with an `Idempotency-Key` when given.
pub async fn declare(
    api: SocketAddr,
    token: Option<&str>,
    body: &str,
    idempotency_key: Option<&str>,
) -> Result<(u16, Value)> {
    let headers: Vec<(&str, &str)> = idempotency_key
        .map(|k| vec![("Idempotency-Key", k)])
        .unwrap_or_default();
    post(api, "/v1/restores", token, &headers, body).await
}

/// The run id of a declaration's answer.
pub fn run_id(declared: &Value) -> Result<String> {
    declared["run"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no run id in {declared}"))
}

/// The run of a `GET /v1/restores/{id}` answer (`run` at the top or inside the report).
pub fn run_of(body: &Value) -> &Value {
    if body["run"].is_object() {
        &body["run"]
    } else {
        &body["report"]["run"]
    }
}

/// The progress report of a `GET /v1/restores/{id}` answer (`report`, or the answer itself).
pub fn report_of(body: &Value) -> &Value {
    if body["report"].is_object() {
        &body["report"]
    } else {
        body
    }
}

/// The run's state in a `GET /v1/restores/{id}` answer.
pub fn state_of(body: &Value) -> &str {
    run_of(body)["state"]
        .as_str()
        .or_else(|| report_of(body)["state"].as_str())
        .unwrap_or("")
}

/// Whether a run state is final.
pub fn is_final(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

/// Journal items in state `done`, from the report's counts (tolerant of their shape:
/// `{"by_state": {"done": n}}`, `{"done": n}` or a list of `{state, count}`).
pub fn done_items(body: &Value) -> u64 {
    let counts = &report_of(body)["counts"];
    let from_list = |v: &Value| {
        v.as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["state"] == "done")
                .and_then(|r| r["count"].as_u64())
        })
    };
    counts["by_state"]["done"]
        .as_u64()
        .or_else(|| counts["done"].as_u64())
        .or_else(|| from_list(&counts["by_state"]))
        .or_else(|| from_list(counts))
        .unwrap_or(0)
}

/// `GET /v1/restores/{id}`.
pub async fn run_status(api: SocketAddr, id: &str) -> Result<Value> {
    let (code, body) = get(api, &format!("/v1/restores/{id}"), Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "GET /v1/restores/{id}: {code} {body}");
    Ok(body)
}

/// Polls the run until it ends; returns the last answer. While it runs, checks that
/// `/v1/status` shows restore mode (`saw_restore_mode` tells whether it was ever seen on).
pub async fn wait_run_final(api: SocketAddr, id: &str) -> Result<(Value, bool)> {
    let start = Instant::now();
    let mut saw_mode = false;
    loop {
        let body = run_status(api, id).await?;
        let state = state_of(&body).to_owned();
        if is_final(&state) {
            return Ok((body, saw_mode));
        }
        if state == "running" {
            let (_, status) = get(api, "/v1/status", Some(VIEWER_TOKEN)).await?;
            saw_mode |= status["restore_mode"] == Value::Bool(true);
        }
        if start.elapsed() > RUN_DEADLINE {
            bail!("run {id} still {state} after {RUN_DEADLINE:?}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails unless the run succeeded with no failed item.
pub fn ensure_succeeded(body: &Value) -> Result<()> {
    ensure!(
        state_of(body) == "succeeded",
        "the run did not succeed: {body}"
    );
    let failed = &report_of(body)["failed_items"];
    ensure!(
        failed.as_array().is_some_and(Vec::is_empty),
        "failed items: {failed}"
    );
    Ok(())
}

/// Tier N+1's EC2 work started only after tier N was up (the report's per-tier timeline).
pub fn ensure_tiers_in_order(body: &Value) -> Result<()> {
    let mut tiers: Vec<&Value> = report_of(body)["tiers"]
        .as_array()
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    tiers.sort_by_key(|t| t["tier"].as_u64());
    ensure!(tiers.len() >= 2, "per-tier timeline: {body}");
    for pair in tiers.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let done = prev["finished_at_ms"]
            .as_i64()
            .ok_or_else(|| anyhow!("tier {} has no end: {prev}", prev["tier"]))?;
        let started = next["started_at_ms"]
            .as_i64()
            .ok_or_else(|| anyhow!("tier {} has no start: {next}", next["tier"]))?;
        ensure!(
            started >= done,
            "tier {} started at {started}, before tier {} was up at {done}",
            next["tier"],
            prev["tier"]
        );
    }
    Ok(())
}

/// A substitution in the report from `from` to `to` instances.
pub fn substitution<'a>(body: &'a Value, from: &str, to: &str) -> Option<&'a Value> {
    fn find<'a>(v: &'a Value, from: &str, to: &str) -> Option<&'a Value> {
        match v {
            Value::Object(map) => {
                if map.get("from_type").and_then(Value::as_str) == Some(from)
                    && map.get("to_type").and_then(Value::as_str) == Some(to)
                {
                    return Some(v);
                }
                map.values().find_map(|x| find(x, from, to))
            }
            Value::Array(items) => items.iter().find_map(|x| find(x, from, to)),
            _ => None,
        }
    }
    find(&report_of(body)["substitutions"], from, to)
}

// ---------------------------------------------------------------------------------------------
// The daemon as a process

/// The lease TTL of a [`ChildDaemon`] unless started with another.
pub const LEASE_TTL_SECS: u64 = 2;

/// The `pilotlight` binary running as a child process, so it can be killed with `kill -9`.
/// Its log (JSON lines, every incarnation appended) is `log`; the lease lasts 2 s so a
/// restarted daemon leads soon after its predecessor was killed.
pub struct ChildDaemon {
    child: tokio::process::Child,
    pub api: SocketAddr,
}

impl ChildDaemon {
    /// Starts the daemon with the config file `config`; waits for its API address.
    pub async fn start(config: &Path, log: &Path) -> Result<ChildDaemon> {
        ChildDaemon::start_with_lease(config, log, LEASE_TTL_SECS).await
    }

    /// [`ChildDaemon::start`] with a lease of `lease_ttl_secs`.
    pub async fn start_with_lease(
        config: &Path,
        log: &Path,
        lease_ttl_secs: u64,
    ) -> Result<ChildDaemon> {
        let offset = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child = tokio::process::Command::new(crate::support::pilotlight_bin()?)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("RUST_LOG")
            .env("PILOTLIGHT_LOG__FORMAT", "json")
            .env(
                "PILOTLIGHT_DAEMON__LEASE_TTL_SECS",
                lease_ttl_secs.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()?;
        let start = Instant::now();
        loop {
            if let Some(api) = api_addr_in(log, offset)? {
                return Ok(ChildDaemon { child, api });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the daemon exited with {status} before serving; see {}",
                    log.display()
                );
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the daemon did not log its API address; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until this daemon leads (after a `kill -9`, once the dead holder's lease ran out).
    pub async fn wait_leading(&self) -> Result<()> {
        poll("the daemon to lead", Duration::from_secs(60), || async {
            let (status, body) = get(self.api, "/v1/status", Some(VIEWER_TOKEN))
                .await
                .unwrap_or((0, Value::Null));
            Ok((status == 200 && body["leader"]["is_leader"] == Value::Bool(true)).then_some(()))
        })
        .await
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .ok_or_else(|| anyhow!("the daemon has already exited"))
    }

    /// `kill -9`, and waits for the process to be gone.
    pub async fn kill9(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

/// The `api_addr` of the daemon's "pilotlight starting" log line written after `offset`.
fn api_addr_in(log: &Path, offset: u64) -> Result<Option<SocketAddr>> {
    let text = std::fs::read(log)?;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    Ok(String::from_utf8_lossy(&text[start..])
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|v| v["api_addr"].as_str()?.parse().ok()))
}

/// The daemon's config file for a [`ChildDaemon`] of `world` (written into its directory).
pub fn write_config(world: &World, extra: &str) -> Result<PathBuf> {
    let path = world.dir.path().join("pilotlight.toml");
    std::fs::write(&path, world.config_toml(extra)?)?;
    Ok(path)
}

/// A small deterministic generator for kill points (splitmix64).
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// A throttling storm

/// What a storm did.
#[derive(Debug, Clone, Copy, Default)]
pub struct StormStats {
    /// Calls the daemon made outside the primary region while the storm blew.
    pub calls: u64,
    /// Of those, throttled by the storm's rules.
    pub throttled: u64,
}

/// Runs `work` while `percent` % of the daemon's calls (outside the primary region) are
/// throttled with each service's real throttling error. The proxy's fault rules fire on the
/// next calls in order, so the storm keeps one rule of three throttles armed whenever fewer
/// than `percent` % of the calls so far were throttled: bursts long enough that some calls
/// exhaust the SDK's own retries and reach pilotlight's.
pub async fn under_throttling_storm<F: Future>(
    proxy: &ProxyHandle,
    percent: u64,
    work: F,
) -> (F::Output, StormStats) {
    let calls_now = |proxy: &ProxyHandle| -> u64 {
        proxy
            .counters()
            .rows
            .iter()
            .filter(|r| r.region != PRIMARY)
            .map(|r| r.calls)
            .sum()
    };
    let base = calls_now(proxy);
    let mut rules = Vec::new();
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let output = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tick.tick() => {
                let calls = calls_now(proxy) - base;
                let status = proxy.faults();
                let armed = status
                    .iter()
                    .any(|f| rules.contains(&f.id) && f.remaining != Some(0));
                let hits: u64 = rules.iter().map(|id| proxy.fault_hits(*id)).sum();
                if !armed && hits * 100 < calls * percent {
                    rules.push(proxy.add_fault(FaultRule::new(FaultAction::Throttle).times(3)));
                }
            }
        }
    };
    let throttled = rules.iter().map(|id| proxy.fault_hits(*id)).sum();
    proxy.clear_faults();
    (
        output,
        StormStats {
            calls: calls_now(proxy) - base,
            throttled,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// What the DR region holds

/// An EC2 instance in the DR region.
#[derive(Debug, Clone)]
pub struct DrInstance {
    pub id: String,
    pub instance_type: String,
    pub state: String,
    pub subnet: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Non-root block devices: device → volume id.
    pub data_devices: BTreeMap<String, String>,
}

/// An EBS volume in the DR region.
#[derive(Debug, Clone)]
pub struct DrVolume {
    pub id: String,
    pub snapshot: Option<String>,
    pub size_gib: i32,
    /// `(instance, device)` it is attached to.
    pub attached: Option<(String, String)>,
    pub tags: BTreeMap<String, String>,
}

/// A load balancer in the DR region, classic or v2.
#[derive(Debug, Clone)]
pub struct DrLb {
    pub name: String,
    pub classic: bool,
    pub dns_name: String,
    pub zone_id: Option<String>,
    pub scheme: String,
    /// `(port, protocol, certificates)`, sorted.
    pub listeners: Vec<(i32, String, Vec<String>)>,
    /// Classic: registered instances.
    pub instances: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
}

/// A v2 target group in the DR region.
#[derive(Debug, Clone)]
pub struct DrTargetGroup {
    pub name: String,
    pub targets: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
}

/// A DB instance in the DR region.
#[derive(Debug, Clone)]
pub struct DrDb {
    pub id: String,
    pub status: String,
    pub endpoint: Option<String>,
    /// The Aurora cluster of a member.
    pub cluster: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// An Aurora DB cluster in the DR region.
#[derive(Debug, Clone)]
pub struct DrDbCluster {
    pub id: String,
    pub status: String,
    pub endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    /// `(member DB instance, writer)`.
    pub members: Vec<(String, bool)>,
    pub tags: BTreeMap<String, String>,
}

/// Everything in the DR region a restore creates.
#[derive(Debug, Clone, Default)]
pub struct DrView {
    pub instances: Vec<DrInstance>,
    pub volumes: Vec<DrVolume>,
    pub lbs: Vec<DrLb>,
    pub target_groups: Vec<DrTargetGroup>,
    pub dbs: Vec<DrDb>,
    pub clusters: Vec<DrDbCluster>,
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect()
}

/// Every instance of the account in the DR region.
pub async fn dr_instances(world: &World) -> Result<Vec<DrInstance>> {
    let ec2 = world.ec2(DR).await;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ec2
            .describe_instances()
            .set_next_token(token.take())
            .send()
            .await?;
        for i in page.reservations().iter().flat_map(|r| r.instances()) {
            let root = i.root_device_name().unwrap_or_default();
            out.push(DrInstance {
                id: i.instance_id().unwrap_or_default().to_owned(),
                instance_type: i
                    .instance_type()
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or_default(),
                subnet: i.subnet_id().map(str::to_owned),
                private_ip: i.private_ip_address().map(str::to_owned),
                public_ip: i.public_ip_address().map(str::to_owned),
                tags: ec2_tags(i.tags()),
                data_devices: i
                    .block_device_mappings()
                    .iter()
                    .filter(|b| b.device_name() != Some(root))
                    .filter_map(|b| {
                        Some((
                            b.device_name()?.to_owned(),
                            b.ebs()?.volume_id()?.to_owned(),
                        ))
                    })
                    .collect(),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Reads every resource a restore creates in the DR region.
pub async fn dr_view(world: &World) -> Result<DrView> {
    let clients = world.clients(DR).await;
    let instances = dr_instances(world).await?;

    let mut volumes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .ec2
            .describe_volumes()
            .set_next_token(token.take())
            .send()
            .await?;
        for v in page.volumes() {
            volumes.push(DrVolume {
                id: v.volume_id().unwrap_or_default().to_owned(),
                snapshot: v.snapshot_id().filter(|s| !s.is_empty()).map(str::to_owned),
                size_gib: v.size().unwrap_or_default(),
                attached: v
                    .attachments()
                    .first()
                    .and_then(|a| Some((a.instance_id()?.to_owned(), a.device()?.to_owned()))),
                tags: ec2_tags(v.tags()),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }

    let mut lbs = Vec::new();
    let classic = clients.elb.describe_load_balancers().send().await?;
    for d in classic.load_balancer_descriptions() {
        let name = d.load_balancer_name().unwrap_or_default().to_owned();
        let tags = clients
            .elb
            .describe_tags()
            .load_balancer_names(&name)
            .send()
            .await?
            .tag_descriptions()
            .iter()
            .flat_map(|t| t.tags())
            .map(|t| (t.key().to_owned(), t.value().unwrap_or("").to_owned()))
            .collect();
        let mut listeners: Vec<(i32, String, Vec<String>)> = d
            .listener_descriptions()
            .iter()
            .filter_map(|l| l.listener())
            .map(|l| {
                (
                    l.load_balancer_port(),
                    l.protocol().to_ascii_uppercase(),
                    l.ssl_certificate_id()
                        .map(str::to_owned)
                        .into_iter()
                        .collect(),
                )
            })
            .collect();
        listeners.sort();
        lbs.push(DrLb {
            name,
            classic: true,
            dns_name: d.dns_name().unwrap_or_default().to_owned(),
            zone_id: d.canonical_hosted_zone_name_id().map(str::to_owned),
            scheme: d.scheme().unwrap_or_default().to_owned(),
            listeners,
            instances: d
                .instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_owned))
                .collect(),
            tags,
        });
    }
    let v2 = clients.elbv2.describe_load_balancers().send().await?;
    for lb in v2.load_balancers() {
        let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
        let tags = v2_tags(&clients.elbv2, &arn).await?;
        let mut listeners: Vec<(i32, String, Vec<String>)> = clients
            .elbv2
            .describe_listeners()
            .load_balancer_arn(&arn)
            .send()
            .await?
            .listeners()
            .iter()
            .map(|l| {
                (
                    l.port().unwrap_or_default(),
                    l.protocol()
                        .map(|p| p.as_str().to_ascii_uppercase())
                        .unwrap_or_default(),
                    l.certificates()
                        .iter()
                        .filter_map(|c| c.certificate_arn().map(str::to_owned))
                        .collect(),
                )
            })
            .collect();
        listeners.sort();
        lbs.push(DrLb {
            name: lb.load_balancer_name().unwrap_or_default().to_owned(),
            classic: false,
            dns_name: lb.dns_name().unwrap_or_default().to_owned(),
            zone_id: lb.canonical_hosted_zone_id().map(str::to_owned),
            scheme: lb
                .scheme()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            listeners,
            instances: BTreeSet::new(),
            tags,
        });
    }
    let mut target_groups = Vec::new();
    let groups = clients.elbv2.describe_target_groups().send().await?;
    for tg in groups.target_groups() {
        let arn = tg.target_group_arn().unwrap_or_default().to_owned();
        let targets = clients
            .elbv2
            .describe_target_health()
            .target_group_arn(&arn)
            .send()
            .await?
            .target_health_descriptions()
            .iter()
            .filter_map(|t| t.target()?.id().map(str::to_owned))
            .collect();
        target_groups.push(DrTargetGroup {
            name: tg.target_group_name().unwrap_or_default().to_owned(),
            tags: v2_tags(&clients.elbv2, &arn).await?,
            targets,
        });
    }

    let mut dbs = Vec::new();
    let described = clients.rds.describe_db_instances().send().await?;
    for db in described.db_instances() {
        let arn = db.db_instance_arn().unwrap_or_default();
        let tags = clients
            .rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await?
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
            .collect();
        dbs.push(DrDb {
            id: db.db_instance_identifier().unwrap_or_default().to_owned(),
            status: db.db_instance_status().unwrap_or_default().to_owned(),
            endpoint: db.endpoint().and_then(|e| e.address()).map(str::to_owned),
            cluster: db.db_cluster_identifier().map(str::to_owned),
            tags,
        });
    }
    let mut clusters = Vec::new();
    let described = clients.rds.describe_db_clusters().send().await?;
    for c in described.db_clusters() {
        clusters.push(DrDbCluster {
            id: c.db_cluster_identifier().unwrap_or_default().to_owned(),
            status: c.status().unwrap_or_default().to_owned(),
            endpoint: c.endpoint().map(str::to_owned),
            reader_endpoint: c.reader_endpoint().map(str::to_owned),
            members: c
                .db_cluster_members()
                .iter()
                .filter_map(|m| {
                    Some((
                        m.db_instance_identifier()?.to_owned(),
                        m.is_cluster_writer().unwrap_or(false),
                    ))
                })
                .collect(),
            tags: c
                .tag_list()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                .collect(),
        });
    }
    Ok(DrView {
        instances,
        volumes,
        lbs,
        target_groups,
        dbs,
        clusters,
    })
}

async fn v2_tags(
    elbv2: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
) -> Result<BTreeMap<String, String>> {
    Ok(elbv2
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await?
        .tag_descriptions()
        .iter()
        .flat_map(|t| t.tags())
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect())
}

/// A record set as Route 53 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    pub name: String,
    pub record_type: String,
    pub values: BTreeSet<String>,
    /// `(hosted zone id, dns name)` of an alias.
    pub alias: Option<(String, String)>,
}

/// Every record set of a hosted zone.
pub async fn zone_records(world: &World, zone_id: &str) -> Result<Vec<ListedRecord>> {
    let r53 = world.clients(DR).await.route53;
    let mut out = Vec::new();
    let mut next: Option<(String, aws_sdk_route53::types::RrType)> = None;
    loop {
        let mut req = r53.list_resource_record_sets().hosted_zone_id(zone_id);
        if let Some((name, ty)) = next.take() {
            req = req.start_record_name(name).start_record_type(ty);
        }
        let page = req.send().await?;
        for r in page.resource_record_sets() {
            out.push(ListedRecord {
                name: dns_name(r.name()),
                record_type: r.r#type().as_str().to_owned(),
                values: r
                    .resource_records()
                    .iter()
                    .map(|v| v.value().to_owned())
                    .collect(),
                alias: r
                    .alias_target()
                    .map(|a| (bare_zone(a.hosted_zone_id()), dns_name(a.dns_name()))),
            });
        }
        if !page.is_truncated() {
            return Ok(out);
        }
        match (page.next_record_name(), page.next_record_type()) {
            (Some(name), Some(ty)) => next = Some((name.to_owned(), ty.clone())),
            _ => return Ok(out),
        }
    }
}

/// A DNS name compared as Route 53 means it: lowercase, no trailing dot, no `dualstack.`.
pub fn dns_name(name: &str) -> String {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    lower
        .strip_prefix("dualstack.")
        .map(str::to_owned)
        .unwrap_or(lower)
}

fn bare_zone(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_owned()
}

fn tagged<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    tags.get(key).map(String::as_str)
}

/// Fails unless `tags` are a restored resource's tags for `run` (and `source`, when given).
fn ensure_run_tags(
    what: &str,
    tags: &BTreeMap<String, String>,
    run: &str,
    source: Option<&str>,
) -> Result<()> {
    ensure!(
        tagged(tags, MANAGED) == Some("true") && tagged(tags, RUN) == Some(run),
        "{what} lacks the run's tags: {tags:?}"
    );
    if let Some(source) = source {
        ensure!(
            tagged(tags, SOURCE) == Some(source),
            "{what} has source {:?}, expected {source}",
            tagged(tags, SOURCE)
        );
    }
    Ok(())
}

/// What the run's journal says each primary instance became: the `instance_launch` items'
/// primaries and launched instances, assigned as the executor assigns them
/// ([`pilotlight_engine::restore::assign`], plan-B fan-out aware). Read from the daemon's
/// store ([`World::store_url`]; stop or kill the daemon first).
pub async fn journal_instances(world: &World, run: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let store = pilotlight_store::Store::connect(
        &world.store_url(),
        &pilotlight_store::StoreOptions::default(),
    )
    .await?;
    let items = store
        .list_items(run, Some(pilotlight_store::ItemState::Done))
        .await;
    store.close().await;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in items?.iter().filter(|i| i.kind == "instance_launch") {
        let detail: Value = serde_json::from_str(&item.detail_json)?;
        let list = |key: &str| -> Vec<String> {
            detail[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (primaries, launched) = (list("primaries"), list("instance_ids"));
        ensure!(
            !primaries.is_empty() && !launched.is_empty(),
            "launch item {} lacks primaries or instances: {detail}",
            item.item_key
        );
        for (primary, ids) in pilotlight_engine::restore::assign(&primaries, &launched) {
            out.entry(primary).or_default().extend(ids);
        }
    }
    Ok(out)
}

/// A plan-B substitution the test forced: every primary instance of type `from` comes back
/// as `factor` instances of type `to`.
#[derive(Debug, Clone)]
pub struct Substituted {
    pub from: String,
    pub to: String,
    pub factor: usize,
}

/// What a checked restore looked like, for further assertions.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// Primary instance id → its DR instances.
    pub instances: BTreeMap<String, Vec<DrInstance>>,
    pub view: DrView,
}

impl Checked {
    /// The DR instances of primary instance `id`.
    pub fn of(&self, id: &str) -> &[DrInstance] {
        self.instances.get(id).map_or(&[], Vec::as_slice)
    }
}

/// Checks the DR region against the plan after run `run` succeeded: every planned instance
/// running (once, or `factor` times for a substituted type) in its mapped subnet with the
/// run's tags, as the journal records it ([`journal_instances`]: launches are batched, so an
/// instance's `pilotlight:source` names its launch), data volumes attached from the planned DR snapshots, no other instance or
/// volume created (`instances_before` DR instances existed before the run), one load balancer
/// per planned one with its listeners and certificates, one target group per planned one,
/// members = the DR instances of the planned members, every DB available, every Aurora cluster
/// once and available with its planned members (and no other DB or cluster), every planned
/// record once in its zone pointing at DR resources, private zones associated with their DR VPC.
pub async fn check_restore(
    world: &World,
    plan: &RestorePlan,
    run: &str,
    instances_before: usize,
    substituted: &[Substituted],
) -> Result<Checked> {
    let view = dr_view(world).await?;
    let journal = journal_instances(world, run).await?;
    let mut checked = Checked::default();

    // Instances.
    let restored: Vec<&DrInstance> = view
        .instances
        .iter()
        .filter(|i| tagged(&i.tags, RUN) == Some(run))
        .collect();
    let mut expected_total = 0;
    for tier in &plan.tiers {
        for group in &tier.groups {
            let sub = substituted
                .iter()
                .find(|s| s.from == group.spec.instance_type);
            let (ty, factor) = sub.map_or((group.spec.instance_type.as_str(), 1), |s| {
                (s.to.as_str(), s.factor)
            });
            for primary in &group.instance_ids {
                let ids = journal.get(primary).map_or(&[][..], Vec::as_slice);
                ensure!(
                    ids.len() == factor,
                    "primary {primary} (tier {}) has {} DR instances in the journal, expected \
                     {factor}: {ids:?}",
                    tier.tier,
                    ids.len()
                );
                let mine: Vec<DrInstance> = ids
                    .iter()
                    .map(|id| {
                        restored
                            .iter()
                            .find(|i| &i.id == id)
                            .map(|i| (*i).clone())
                            .ok_or_else(|| {
                                anyhow!("{id} (for {primary}) is not a tagged DR instance")
                            })
                    })
                    .collect::<Result<_>>()?;
                for i in &mine {
                    ensure_run_tags(&format!("instance {}", i.id), &i.tags, run, None)?;
                    ensure!(
                        tagged(&i.tags, SOURCE).is_some_and(|s| !s.is_empty()),
                        "{} has no source tag",
                        i.id
                    );
                    ensure!(i.state == "running", "{} is {}", i.id, i.state);
                    ensure!(
                        i.instance_type == ty,
                        "{} is a {}, expected {ty}",
                        i.id,
                        i.instance_type
                    );
                    if sub.is_none()
                        && let Some(subnet) = group.spec.subnet.as_ref().and_then(DrRef::dr_id)
                    {
                        ensure!(
                            i.subnet.as_deref() == Some(subnet),
                            "{} in subnet {:?}, planned {subnet}",
                            i.id,
                            i.subnet
                        );
                    }
                }
                expected_total += factor;
                checked.instances.insert(primary.clone(), mine);
            }
        }
    }
    let journalled: BTreeSet<&str> = journal.values().flatten().map(String::as_str).collect();
    let strays: Vec<(&str, Option<&str>)> = restored
        .iter()
        .filter(|i| !journalled.contains(i.id.as_str()))
        .map(|i| (i.id.as_str(), tagged(&i.tags, SOURCE)))
        .collect();
    ensure!(
        restored.len() == expected_total && strays.is_empty(),
        "{} DR instances carry the run's tag, {expected_total} expected; not in the journal \
         (id, source): {strays:?}",
        restored.len()
    );
    ensure!(
        view.instances.len() == instances_before + expected_total,
        "the DR region went from {instances_before} to {} instances; the restore launched \
         {expected_total}: a duplicate or an untagged instance",
        view.instances.len()
    );

    // Data volumes: attached where planned, from the planned snapshot; no orphan.
    let mut planned_volumes = 0;
    for tier in &plan.tiers {
        for dv in &tier.data_volumes {
            planned_volumes += 1;
            let dev = &dv.volume.device_name;
            for i in checked.of(&dv.instance_id) {
                let vol_id = i.data_devices.get(dev).ok_or_else(|| {
                    anyhow!(
                        "{} (for {}) has no {dev}: {:?}",
                        i.id,
                        dv.instance_id,
                        i.data_devices
                    )
                })?;
                let vol = view
                    .volumes
                    .iter()
                    .find(|v| &v.id == vol_id)
                    .ok_or_else(|| anyhow!("volume {vol_id} of {} not listed", i.id))?;
                ensure!(
                    vol.attached.as_ref().map(|(inst, _)| inst.as_str()) == Some(i.id.as_str()),
                    "volume {vol_id} is attached to {:?}, not {}",
                    vol.attached,
                    i.id
                );
                if let Some(snap) = dv.volume.snapshot.dr_id() {
                    ensure!(
                        vol.snapshot.as_deref() == Some(snap),
                        "volume {vol_id} from {:?}, planned {snap}",
                        vol.snapshot
                    );
                }
                ensure!(
                    i64::from(vol.size_gib) >= i64::from(dv.volume.size_gib),
                    "volume {vol_id}: {} GiB, planned {}",
                    vol.size_gib,
                    dv.volume.size_gib
                );
            }
        }
    }
    let attached: usize = restored.iter().map(|i| i.data_devices.len()).sum();
    // Instances with their own data volumes keep their count under plan B: one DR volume each.
    ensure!(
        attached == planned_volumes,
        "{attached} data volumes on the run's instances, {planned_volumes} planned"
    );
    let restored_ids: BTreeSet<&str> = restored.iter().map(|i| i.id.as_str()).collect();
    for v in view
        .volumes
        .iter()
        .filter(|v| tagged(&v.tags, RUN) == Some(run))
    {
        ensure!(
            v.attached
                .as_ref()
                .is_some_and(|(inst, _)| restored_ids.contains(inst.as_str())),
            "volume {} of the run is an orphan (attached to {:?})",
            v.id,
            v.attached
        );
    }

    // Load balancers and target groups.
    let dr_of = |ids: &[String]| -> BTreeSet<String> {
        ids.iter()
            .flat_map(|p| checked.of(p).iter().map(|i| i.id.clone()))
            .collect()
    };
    let mut planned_tgs = 0;
    for planned in &plan.load_balancers {
        let classic = planned.kind == LbKind::Classic;
        let matching: Vec<&DrLb> = view
            .lbs
            .iter()
            .filter(|lb| lb.classic == classic && tagged(&lb.tags, SOURCE) == Some(&planned.source))
            .collect();
        ensure!(
            matching.len() == 1,
            "{} DR load balancers for {}: {matching:?}",
            matching.len(),
            planned.source
        );
        let lb = matching[0];
        ensure_run_tags(
            &format!("load balancer {}", lb.name),
            &lb.tags,
            run,
            Some(&planned.source),
        )?;
        let scheme = serde_json::to_value(planned.scheme)?;
        ensure!(
            scheme.as_str() == Some(lb.scheme.as_str()),
            "{} scheme {}, planned {scheme}",
            lb.name,
            lb.scheme
        );
        let mut listeners: Vec<(i32, String, Vec<String>)> = planned
            .listeners
            .iter()
            .map(|l| {
                (
                    l.port,
                    l.protocol.to_ascii_uppercase(),
                    l.certificates
                        .iter()
                        .filter_map(|c| c.dr_id().map(str::to_owned))
                        .collect(),
                )
            })
            .collect();
        listeners.sort();
        ensure!(
            lb.listeners == listeners,
            "{} listeners {:?}, planned {listeners:?}",
            lb.name,
            lb.listeners
        );
        if classic {
            let want = dr_of(&planned.instance_ids);
            ensure!(
                lb.instances == want,
                "{} members {:?}, expected {want:?}",
                lb.name,
                lb.instances
            );
        }
        for tg in &planned.target_groups {
            planned_tgs += 1;
            let matching: Vec<&DrTargetGroup> = view
                .target_groups
                .iter()
                .filter(|g| tagged(&g.tags, SOURCE) == Some(&tg.arn))
                .collect();
            ensure!(
                matching.len() == 1,
                "{} DR target groups for {}: {matching:?}",
                matching.len(),
                tg.arn
            );
            let want = dr_of(&tg.instance_ids);
            ensure!(
                matching[0].targets == want,
                "target group {} targets {:?}, expected {want:?}",
                matching[0].name,
                matching[0].targets
            );
        }
    }
    ensure!(
        view.lbs.len() == plan.load_balancers.len(),
        "{} load balancers in the DR region, {} planned",
        view.lbs.len(),
        plan.load_balancers.len()
    );
    ensure!(
        view.target_groups.len() == planned_tgs,
        "{} target groups in the DR region, {planned_tgs} planned: {:?}",
        view.target_groups.len(),
        plan.load_balancers
    );

    // Databases.
    let mut planned_dbs = 0;
    for db in plan.tiers.iter().flat_map(|t| &t.databases) {
        planned_dbs += 1;
        let matching: Vec<&DrDb> = view
            .dbs
            .iter()
            .filter(|d| tagged(&d.tags, SOURCE) == Some(&db.db_instance_id))
            .collect();
        ensure!(
            matching.len() == 1,
            "{} DR DB instances for {}: {:?}",
            matching.len(),
            db.db_instance_id,
            view.dbs
        );
        ensure_run_tags(
            &format!("DB {}", matching[0].id),
            &matching[0].tags,
            run,
            Some(&db.db_instance_id),
        )?;
        ensure!(
            matching[0].status == "available",
            "DB {} is {}",
            matching[0].id,
            matching[0].status
        );
    }
    // Aurora clusters: each restored once, available, with its members in it (the writer
    // the planned one).
    for cluster in plan.tiers.iter().flat_map(|t| &t.clusters) {
        let source = &cluster.db_cluster_id;
        let matching: Vec<&DrDbCluster> = view
            .clusters
            .iter()
            .filter(|c| tagged(&c.tags, SOURCE) == Some(source))
            .collect();
        ensure!(
            matching.len() == 1,
            "{} DR clusters for {source}: {:?}",
            matching.len(),
            view.clusters
        );
        let dr = matching[0];
        ensure_run_tags(
            &format!("DB cluster {}", dr.id),
            &dr.tags,
            run,
            Some(source),
        )?;
        ensure!(
            dr.status == "available",
            "DB cluster {} is {}",
            dr.id,
            dr.status
        );
        ensure!(
            dr.endpoint.is_some(),
            "DB cluster {} has no endpoint",
            dr.id
        );
        for member in &cluster.members {
            planned_dbs += 1;
            let matching: Vec<&DrDb> = view
                .dbs
                .iter()
                .filter(|d| tagged(&d.tags, SOURCE) == Some(&member.db_instance_id))
                .collect();
            ensure!(
                matching.len() == 1,
                "{} DR DB instances for member {}: {:?}",
                matching.len(),
                member.db_instance_id,
                view.dbs
            );
            let db = matching[0];
            ensure_run_tags(
                &format!("DB {}", db.id),
                &db.tags,
                run,
                Some(&member.db_instance_id),
            )?;
            ensure!(db.status == "available", "DB {} is {}", db.id, db.status);
            ensure!(
                db.cluster.as_deref() == Some(dr.id.as_str()),
                "member {} is in cluster {:?}, not {}",
                db.id,
                db.cluster,
                dr.id
            );
            ensure!(
                dr.members.contains(&(db.id.clone(), member.writer)),
                "cluster {} lists {:?}, expected {} (writer: {})",
                dr.id,
                dr.members,
                db.id,
                member.writer
            );
        }
    }
    let planned_clusters = plan.tiers.iter().map(|t| t.clusters.len()).sum::<usize>();
    ensure!(
        view.clusters.len() == planned_clusters,
        "{} DB clusters in the DR region, {planned_clusters} planned",
        view.clusters.len()
    );
    ensure!(
        view.dbs.len() == planned_dbs,
        "{} DB instances in the DR region, {planned_dbs} planned",
        view.dbs.len()
    );

    // DNS.
    let lb_of = |source: &str| {
        view.lbs
            .iter()
            .find(|lb| tagged(&lb.tags, SOURCE) == Some(source))
    };
    let db_of = |source: &str| {
        view.dbs
            .iter()
            .find(|d| tagged(&d.tags, SOURCE) == Some(source))
    };
    let cluster_of = |source: &str| {
        view.clusters
            .iter()
            .find(|c| tagged(&c.tags, SOURCE) == Some(source))
    };
    let r53 = world.clients(DR).await.route53;
    for zone in &plan.dns.zones {
        let listed = zone_records(world, &zone.zone_id).await?;
        for record in zone.batches.iter().flat_map(|b| &b.records) {
            let name = dns_name(&record.name);
            let sets: Vec<&ListedRecord> = listed
                .iter()
                .filter(|r| r.name == name && r.record_type == record.record_type)
                .collect();
            ensure!(
                sets.len() == 1,
                "{} record sets {name} {} in {}",
                sets.len(),
                record.record_type,
                zone.zone_name
            );
            let set = sets[0];
            let instances: Vec<&DrInstance> = record
                .points_at
                .iter()
                .flat_map(|p| checked.of(p).iter())
                .collect();
            if !instances.is_empty() {
                let private: BTreeSet<String> = instances
                    .iter()
                    .filter_map(|i| i.private_ip.clone())
                    .collect();
                let public: BTreeSet<String> = instances
                    .iter()
                    .filter_map(|i| i.public_ip.clone())
                    .collect();
                ensure!(
                    set.values == private || (!public.is_empty() && set.values == public),
                    "{name} holds {:?}, the DR instances have {private:?} / {public:?}",
                    set.values
                );
            } else if let Some(lb) = record.points_at.iter().find_map(|p| lb_of(p)) {
                let want = dns_name(&lb.dns_name);
                match &set.alias {
                    Some((zone_id, target)) => {
                        ensure!(
                            *target == want,
                            "alias {name} → {target}, DR load balancer {want}"
                        );
                        let want_zone = lb.zone_id.clone().or_else(|| {
                            pilotlight_lab::seed::estate::classic_elb_hosted_zone(DR)
                                .map(str::to_owned)
                        });
                        ensure!(
                            Some(zone_id) == want_zone.as_ref(),
                            "alias {name} in zone {zone_id}, DR load balancer's {want_zone:?}"
                        );
                    }
                    None => {
                        let values: BTreeSet<String> =
                            set.values.iter().map(|v| dns_name(v)).collect();
                        ensure!(
                            values == BTreeSet::from([want.clone()]),
                            "{name} holds {values:?}, DR load balancer {want}"
                        );
                    }
                }
            } else if let Some(db) = record.points_at.iter().find_map(|p| db_of(p)) {
                let want = dns_name(db.endpoint.as_deref().unwrap_or_default());
                let values: BTreeSet<String> = set.values.iter().map(|v| dns_name(v)).collect();
                ensure!(
                    values == BTreeSet::from([want.clone()]),
                    "{name} holds {values:?}, DR DB endpoint {want}"
                );
            } else if let Some(c) = record.points_at.iter().find_map(|p| cluster_of(p)) {
                let endpoints: BTreeSet<String> = c
                    .endpoint
                    .iter()
                    .chain(&c.reader_endpoint)
                    .map(|e| dns_name(e))
                    .collect();
                let values: BTreeSet<String> = set.values.iter().map(|v| dns_name(v)).collect();
                ensure!(
                    values.len() == 1 && values.is_subset(&endpoints),
                    "{name} holds {values:?}, DR cluster endpoints {endpoints:?}"
                );
            } else {
                bail!("{name} points at {:?}: nothing restored", record.points_at);
            }
        }
        if let Some(vpc) = zone.associate_vpc.as_ref().and_then(DrRef::dr_id) {
            let got = r53.get_hosted_zone().id(&zone.zone_id).send().await?;
            ensure!(
                got.vpcs().iter().any(|v| v.vpc_id() == Some(vpc)),
                "private zone {} is not associated with DR VPC {vpc}: {:?}",
                zone.zone_name,
                got.vpcs()
            );
        }
    }
    checked.view = view;
    Ok(checked)
}

/// The seeded record `name` (relative, as in the spec) of zone `zone` (as in the spec).
pub fn seeded_record<'a>(
    estate: &'a SeededEstate,
    zone: &str,
    name: &str,
) -> Result<&'a pilotlight_lab::seed::estate::SeededRecord> {
    let z = estate
        .zones
        .get(zone)
        .ok_or_else(|| anyhow!("no zone {zone}"))?;
    let full = dns_name(&format!("{name}.{}", z.name));
    z.records
        .iter()
        .find(|r| dns_name(&r.name) == full)
        .ok_or_else(|| anyhow!("no record {full} in {zone}"))
}
