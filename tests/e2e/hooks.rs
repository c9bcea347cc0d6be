//! D13 end to end: restore hooks. A small HTTP receiver on loopback takes the daemon's
//! deliveries, counts them by `X-Pilotlight-Delivery`, checks nothing itself (the tests check
//! what it recorded) and can hold a delivery's answer or answer it with an error:
//!
//! - signed deliveries arrive for each tier in order with the tier's instances, and for the
//!   load balancers, the databases and the DNS cutover; a waited-for hook holds the next tier
//!   (no tier-2 instance exists while tier 1's answer is held);
//! - a waited-for hook answering 500 fails the run with the hook's reason, starts no later
//!   tier and is never delivered twice;
//! - `kill -9` while a delivery is held (and while others are in flight) delivers no
//!   (run, hook, stage) twice: the restarted daemon records the cut delivery failed and goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use pilotlight_core::digest::hmac_sha256_hex;
use pilotlight_core::plan::RestorePlan;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::restore_support::{
    ChildDaemon, declare, dr_instances, lab_options, report_of, restore_config, restore_plan,
    run_id, run_of, run_status, seed, small_estate, state_of, wait_plan_ready, wait_run_final,
    write_config,
};
use crate::support::{OPERATOR_TOKEN, PRIMARY, World, assert_primary_untouched, poll};

const DISASTER: &str = r#"{"mode": "disaster", "dry_run": false}"#;
/// How long a delivery may take to show up.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The receiver

/// One delivery as received.
#[derive(Debug, Clone)]
struct Delivery {
    /// `X-Pilotlight-Delivery`.
    id: String,
    path: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Delivery {
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("body of {}", self.id))
    }

    /// Whether the signature is `sha256=` HMAC-SHA256(secret, timestamp + "." + body).
    fn verifies(&self, secret: &str) -> bool {
        let signed = format!("{}.{}", self.timestamp, self.body);
        self.signature
            == format!(
                "sha256={}",
                hmac_sha256_hex(secret.as_bytes(), signed.as_bytes())
            )
    }
}

#[derive(Default)]
struct ReceiverState {
    deliveries: Vec<Delivery>,
    /// Delivery ids whose answer is held until released.
    hold: BTreeSet<String>,
    /// Hook paths (`/smoke`) answered 500.
    fail: BTreeSet<String>,
}

/// The hook receiver on 127.0.0.1.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
    released: tokio::sync::watch::Sender<u64>,
}

impl Receiver {
    async fn start() -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Receiver {
            addr: listener.local_addr()?,
            state: Arc::default(),
            released: tokio::sync::watch::Sender::new(0),
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let r = serving.clone();
                tokio::spawn(async move {
                    let _ = r.serve(stream).await;
                });
            }
        });
        Ok(receiver)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ReceiverState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hold(&self, id: &str) {
        self.state().hold.insert(id.to_owned());
    }

    fn release(&self, id: &str) {
        self.state().hold.remove(id);
        self.released.send_modify(|n| *n += 1);
    }

    fn fail(&self, path: &str) {
        self.state().fail.insert(path.to_owned());
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.state().deliveries.clone()
    }

    /// Deliveries by id → how many times each arrived.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for d in self.deliveries() {
            *out.entry(d.id).or_default() += 1;
        }
        out
    }

    /// Waits until the delivery `id` arrived; returns it.
    async fn wait_for(&self, id: &str) -> Result<Delivery> {
        poll(&format!("delivery {id}"), DELIVERY_DEADLINE, || async {
            Ok(self.deliveries().into_iter().find(|d| d.id == id))
        })
        .await
    }

    /// Serves HTTP/1.1 requests on one connection until it closes.
    async fn serve(&self, mut stream: TcpStream) -> Result<()> {
        let mut buf = Vec::new();
        loop {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let path = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("")
                .to_owned();
            let headers: BTreeMap<String, String> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
            buf.drain(..head_end + length);
            let header = |k: &str| headers.get(k).cloned().unwrap_or_default();
            let delivery = Delivery {
                id: header("x-pilotlight-delivery"),
                path: path.clone(),
                timestamp: header("x-pilotlight-timestamp"),
                signature: header("x-pilotlight-signature"),
                body,
            };
            let id = delivery.id.clone();
            let failing = {
                let mut state = self.state();
                state.deliveries.push(delivery);
                state.fail.contains(&path)
            };
            let mut released = self.released.subscribe();
            released
                .wait_for(|_| !self.state().hold.contains(&id))
                .await?;
            let answer: &[u8] = if failing {
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 12\r\n\r\nsmoke failed"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            };
            stream.write_all(answer).await?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A `[[restore.hooks]]` block with its secret written to the world's directory.
fn hook_block(world: &World, name: &str, url: &str, secret: &str, keys: &str) -> Result<String> {
    let path = world.dir.path().join(format!("{name}.hook-secret"));
    std::fs::write(&path, format!("{secret}\n"))?;
    Ok(format!(
        "[[restore.hooks]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n{keys}\n\n",
        path.display()
    ))
}

/// The primary instance ids of each tier of the plan.
fn tier_primaries(plan: &RestorePlan) -> BTreeMap<u8, BTreeSet<String>> {
    plan.tiers
        .iter()
        .map(|t| {
            let ids = t
                .groups
                .iter()
                .flat_map(|g| g.instance_ids.iter().cloned())
                .collect();
            (t.tier, ids)
        })
        .collect()
}

/// DR instances of run `id` standing in for any of `primaries`.
async fn restored_of(world: &World, id: &str, primaries: &BTreeSet<String>) -> Result<usize> {
    Ok(dr_instances(world)
        .await?
        .iter()
        .filter(|i| i.tags.get("pilotlight:run").map(String::as_str) == Some(id))
        .filter(|i| {
            i.tags
                .get("pilotlight:source")
                .is_some_and(|s| primaries.contains(s))
        })
        .count())
}

/// The report's step `step_id`.
fn step<'a>(body: &'a Value, step_id: &str) -> Option<&'a Value> {
    report_of(body)["steps"]
        .as_array()?
        .iter()
        .find(|s| s["step_id"] == step_id)
}

/// Seeds the small estate, starts the daemon with `tail` (hook blocks), waits for a plan
/// without problems and takes the primary down.
async fn ready(world: &World, tail: &str) -> Result<(crate::support::RunningDaemon, RestorePlan)> {
    seed(world, &small_estate()).await?;
    let daemon = world.start_daemon(&restore_config(world, "", tail)).await?;
    let plan = restore_plan(&wait_plan_ready(daemon.api).await?)?;
    world.proxy().region_down(PRIMARY)?;
    Ok((daemon, plan))
}

async fn declare_disaster(api: SocketAddr) -> Result<String> {
    let (code, body) = declare(api, Some(OPERATOR_TOKEN), DISASTER, None).await?;
    ensure!(code == 201, "declare: {code} {body}");
    run_id(&body)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_hooks_follow_each_stage_and_a_waited_hook_holds_the_next_tier() -> Result<()> {
    let world = World::with_options(lab_options(1.0)).await?;
    let receiver = Receiver::start().await?;
    let tail = format!(
        "{}{}",
        hook_block(
            &world,
            "deploy",
            &receiver.url("/deploy"),
            "deploy-secret-0123",
            "after = [\"tier:*\"]\nwait = true\ntimeout_secs = 300",
        )?,
        hook_block(
            &world,
            "notify",
            &receiver.url("/notify"),
            "notify-secret-4567",
            "",
        )?,
    );
    let (daemon, plan) = ready(&world, &tail).await?;
    let primaries = tier_primaries(&plan);
    ensure!(primaries.len() == 3, "{primaries:?}");

    let id = declare_disaster(daemon.api).await?;
    let first = format!("{id}/deploy/tier:1");
    receiver.hold(&first);
    receiver.wait_for(&first).await?;
    // Tier 1's answer is held: its step is running and no tier-2 instance exists. Checked
    // twice, the second time once the not-waited hook's tier-1 delivery has arrived too.
    for _ in 0..2 {
        let body = run_status(daemon.api, &id).await?;
        let hook = step(&body, "hook/deploy/tier:1")
            .ok_or_else(|| anyhow!("no step for the held hook: {body}"))?;
        ensure!(hook["state"] == "running", "{hook}");
        ensure!(hook["kind"] == "hook", "{hook}");
        ensure!(
            restored_of(&world, &id, &primaries[&2]).await? == 0,
            "a tier-2 instance was launched while tier 1's waited-for hook was unanswered"
        );
        poll("the tier-1 notify delivery", DELIVERY_DEADLINE, || async {
            Ok(receiver
                .counts()
                .contains_key(&format!("{id}/notify/tier:1"))
                .then_some(()))
        })
        .await?;
    }
    receiver.release(&first);
    let (done, _) = wait_run_final(daemon.api, &id).await?;
    ensure!(state_of(&done) == "succeeded", "{done}");

    // Every delivery of the not-waited hook arrives, run over or not.
    let stages = [
        "tier:1",
        "tier:2",
        "tier:3",
        "load_balancers",
        "databases",
        "dns",
    ];
    for stage in stages {
        receiver.wait_for(&format!("{id}/notify/{stage}")).await?;
    }
    let deliveries = receiver.deliveries();
    // Each (run, hook, stage) exactly once; deploy only after tiers.
    let counts = receiver.counts();
    let mut want: BTreeMap<String, usize> = stages
        .iter()
        .map(|s| (format!("{id}/notify/{s}"), 1))
        .collect();
    for t in 1..=3 {
        want.insert(format!("{id}/deploy/tier:{t}"), 1);
    }
    ensure!(counts == want, "deliveries {counts:?}, want {want:?}");
    // deploy's tiers in order.
    let deploy: Vec<&str> = deliveries
        .iter()
        .filter(|d| d.path == "/deploy")
        .map(|d| d.id.rsplit('/').next().unwrap_or(""))
        .collect();
    ensure!(deploy == ["tier:1", "tier:2", "tier:3"], "{deploy:?}");

    let view = dr_instances(&world).await?;
    for d in &deliveries {
        let secret = if d.path == "/deploy" {
            "deploy-secret-0123"
        } else {
            "notify-secret-4567"
        };
        ensure!(d.verifies(secret), "{} does not verify", d.id);
        ensure!(!d.verifies("another-secret"), "{} verifies anything", d.id);
        let json = d.json()?;
        let stage = d.id.rsplit('/').next().unwrap_or("");
        ensure!(json["run_id"] == id.as_str(), "{json}");
        ensure!(json["mode"] == "disaster", "{json}");
        ensure!(json["stage"] == stage, "{json}");
        ensure!(
            json["attempt_at"]
                .as_str()
                .is_some_and(|a| a.ends_with('Z')),
            "{json}"
        );
        let resources = json["resources"]
            .as_array()
            .ok_or_else(|| anyhow!("no resources: {json}"))?;
        ensure!(!resources.is_empty(), "{json}");
        if let Some(tier) = stage.strip_prefix("tier:") {
            let tier: u8 = tier.parse()?;
            ensure!(json["tier"] == tier, "{json}");
            // The tier's instances: every primary of the tier, each with its DR instance of
            // this run (tagged with the primary), and its private IP.
            let got: BTreeSet<String> = resources
                .iter()
                .filter_map(|r| r["primary_id"].as_str().map(str::to_owned))
                .collect();
            ensure!(
                got == primaries[&tier],
                "tier {tier}: {got:?} vs {:?}",
                primaries[&tier]
            );
            for r in resources {
                ensure!(r["kind"] == "instance", "{r}");
                let dr = view
                    .iter()
                    .find(|i| r["dr_id"] == i.id.as_str())
                    .ok_or_else(|| anyhow!("{r} names no DR instance"))?;
                ensure!(
                    dr.tags.get("pilotlight:source").map(String::as_str)
                        == r["primary_id"].as_str()
                        && dr.tags.get("pilotlight:run") == Some(&id),
                    "{r} vs {dr:?}"
                );
                ensure!(
                    r["private_ip"] == dr.private_ip.as_deref().unwrap_or(""),
                    "{r}"
                );
            }
        } else {
            ensure!(json["tier"].is_null(), "{json}");
            let kinds: BTreeSet<&str> = resources
                .iter()
                .filter_map(|r| r["kind"].as_str())
                .collect();
            let want: &[&str] = match stage {
                "load_balancers" => &["load_balancer", "target_group"],
                "databases" => &["db_instance"],
                _ => &["dns_change"],
            };
            ensure!(
                kinds == want.iter().copied().collect(),
                "{stage}: {kinds:?}"
            );
            ensure!(
                resources
                    .iter()
                    .all(|r| r["dr_id"].as_str().is_some_and(|s| !s.is_empty())),
                "{json}"
            );
        }
    }

    // Tier 2 launched only after tier 1's hook answered; the hooks' time is in the report.
    let done = run_status(daemon.api, &id).await?;
    let hook1 = step(&done, "hook/deploy/tier:1").ok_or_else(|| anyhow!("{done}"))?;
    ensure!(hook1["state"] == "done", "{hook1}");
    let answered = hook1["finished_at_ms"]
        .as_i64()
        .ok_or_else(|| anyhow!("{hook1}"))?;
    let tier2 = report_of(&done)["tiers"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tier"] == 2))
        .ok_or_else(|| anyhow!("{done}"))?;
    ensure!(
        tier2["started_at_ms"].as_i64() >= Some(answered),
        "tier 2 started before tier 1's hook answered: {tier2} vs {hook1}"
    );
    ensure!(hook1["duration_ms"].as_i64() > Some(0), "{hook1}");
    // Every delivery is a journal item of kind hook, done once answered (the last ones of
    // the not-waited hook may be recorded after the run's end).
    poll("nine hook items done", DELIVERY_DEADLINE, || async {
        let body = run_status(daemon.api, &id).await?;
        Ok((report_of(&body)["counts"]["by_kind"]["hook"]["done"] == 9).then_some(()))
    })
    .await?;
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_waited_hook_fails_the_run_with_its_reason() -> Result<()> {
    let world = World::with_options(lab_options(1.0)).await?;
    let receiver = Receiver::start().await?;
    receiver.fail("/smoke");
    let tail = hook_block(
        &world,
        "smoke",
        &receiver.url("/smoke"),
        "smoke-secret",
        "after = [\"tier:1\"]\nwait = true",
    )?;
    let (daemon, plan) = ready(&world, &tail).await?;
    let primaries = tier_primaries(&plan);
    let id = declare_disaster(daemon.api).await?;
    let (done, _) = wait_run_final(daemon.api, &id).await?;
    ensure!(state_of(&done) == "failed", "{done}");
    let error = run_of(&done)["error"].as_str().unwrap_or("");
    ensure!(
        error.contains("smoke") && error.contains("tier:1") && error.contains("HTTP 500"),
        "the run's error names the hook, the stage and the answer: {error:?}"
    );
    let failed = report_of(&done)["failed_items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let item = failed
        .iter()
        .find(|i| i["item_key"] == "hook/smoke/tier:1")
        .ok_or_else(|| anyhow!("the hook is not among the failed items: {failed:?}"))?;
    ensure!(item["last_error"] == "answered HTTP 500", "{item}");
    // No later tier started, and the failed delivery was never sent again (the run was
    // executed more than once).
    for tier in [2, 3] {
        ensure!(
            restored_of(&world, &id, &primaries[&tier]).await? == 0,
            "tier {tier} was launched after its predecessor's hook failed"
        );
    }
    let counts = receiver.counts();
    ensure!(
        counts == BTreeMap::from([(format!("{id}/smoke/tier:1"), 1)]),
        "{counts:?}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_deliveries_never_delivers_twice() -> Result<()> {
    let world = World::with_options(lab_options(2.0)).await?;
    let receiver = Receiver::start().await?;
    seed(&world, &small_estate()).await?;
    let tail = format!(
        "{}{}",
        hook_block(
            &world,
            "deploy",
            &receiver.url("/deploy"),
            "deploy-secret",
            "after = [\"tier:*\"]\nwait = true\non_failure = \"continue\"\ntimeout_secs = 300",
        )?,
        hook_block(
            &world,
            "notify",
            &receiver.url("/notify"),
            "notify-secret",
            ""
        )?,
    );
    let config = write_config(&world, &restore_config(&world, "", &tail))?;
    let log = world.dir.path().join("daemon.log");
    let mut daemon = ChildDaemon::start(&config, &log).await?;
    daemon.wait_leading().await?;
    wait_plan_ready(daemon.api).await?;
    world.proxy().region_down(PRIMARY)?;
    let id = declare_disaster(daemon.api).await?;

    // Killed while tier 1's waited-for delivery is unanswered: its outcome is unknown.
    let first = format!("{id}/deploy/tier:1");
    receiver.hold(&first);
    receiver.wait_for(&first).await?;
    daemon.kill9().await?;
    receiver.release(&first);
    daemon = ChildDaemon::start(&config, &log).await?;
    daemon.wait_leading().await?;
    // Killed again as soon as tier 2's notify delivery arrives (its answer may or may not
    // have been recorded).
    receiver.wait_for(&format!("{id}/notify/tier:2")).await?;
    daemon.kill9().await?;
    daemon = ChildDaemon::start(&config, &log).await?;
    daemon.wait_leading().await?;
    let (done, _) = wait_run_final(daemon.api, &id).await?;
    ensure!(state_of(&done) == "succeeded", "{done}");
    // The later deliveries of the waited-for hook all arrive.
    for t in [2, 3] {
        receiver.wait_for(&format!("{id}/deploy/tier:{t}")).await?;
    }
    let counts = receiver.counts();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(twice.is_empty(), "delivered more than once: {twice:?}");
    // The cut delivery is recorded failed, not sent again; the run went on (continue).
    let report = report_of(&done);
    let failed: Vec<&Value> = report["failed_items"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let cut = failed
        .iter()
        .find(|i| i["item_key"] == "hook/deploy/tier:1")
        .ok_or_else(|| anyhow!("the cut delivery is not failed: {failed:?}"))?;
    ensure!(
        cut["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not re-sent")),
        "{cut}"
    );
    if let Some(other) = failed.iter().find(|i| i["kind"] != "hook") {
        bail!("a restore item failed: {other}");
    }
    daemon.kill9().await?;
    assert_primary_untouched(&world).await
}
