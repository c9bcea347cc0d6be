//! High availability (P2) with real replicas: two `pilotlight` processes sharing one PostgreSQL
//! database (the test server of the store's suite, `pg_server`), the leader killed with
//! `kill -9` or paused with `SIGSTOP`.
//!
//! - A leader killed mid-reconcile: the follower takes over within the lease's bound (TTL, plus
//!   the follower's check period of TTL/3, plus a margin) and reconciles, mirroring nothing
//!   twice.
//! - A leader killed mid-restore: the follower resumes the run from the journal and finishes
//!   it, and the DR region holds every planned resource once ([`check_restore`]).
//! - A leader paused past its lease while the follower takes over: once resumed it writes
//!   nothing (its fenced writes are refused — the journal is unchanged while the new leader is
//!   itself held still) and it steps down.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use pilotlight::app::LEASE_NAME;
use pilotlight_lab::seed::EstateSpec;
use pilotlight_lab::{FaultAction, FaultRule};
use pilotlight_store::{Store, StoreOptions};
use serde_json::Value;
use sqlx::Connection as _;

use crate::restore::MUTATIONS;
use crate::restore_support::{
    ChildDaemon, check_restore, declare, done_items, dr_instances, ensure_succeeded, get, is_final,
    lab_options, restore_config, restore_plan, run_id, run_status, seed, small_estate, state_of,
    wait_plan_ready, wait_run_final, write_config,
};
use crate::support::{
    DR, OPERATOR_TOKEN, PRIMARY, VIEWER_TOKEN, World, assert_primary_untouched, poll,
};

#[path = "../../crates/pilotlight-store/tests/pg_server/mod.rs"]
mod pg_server;

const DISASTER: &str = r#"{"mode": "disaster", "dry_run": false}"#;

/// Scheduling slack on top of the lease's own bound: process wake-ups and HTTP polls on a
/// loaded test machine.
const MARGIN: Duration = Duration::from_secs(2);

/// How long after the leader stops answering a follower may take to lead: the dead leader's
/// lease lasts at most `ttl` past its last renewal (which came before the kill), and the
/// follower checks the lease every `ttl / 3`.
fn takeover_bound(lease_ttl_secs: u64) -> Duration {
    let ttl = Duration::from_secs(lease_ttl_secs);
    ttl + ttl / 3 + MARGIN
}

/// A world whose daemons share a fresh PostgreSQL database.
async fn pg_world(world: World) -> (World, pg_server::TestDatabase) {
    let mut world = world;
    let database = pg_server::fresh_database().await;
    world.use_store(database.url.clone());
    (world, database)
}

/// Whether the daemon at `api` says it leads (`None`: no answer).
async fn leads(daemon: &ChildDaemon) -> Option<bool> {
    let (code, body) = get(daemon.api, "/v1/status", Some(VIEWER_TOKEN))
        .await
        .ok()?;
    (code == 200 && body["leader"]["checked"] == Value::Bool(true))
        .then(|| body["leader"]["is_leader"] == Value::Bool(true))
}

/// Waits until `daemon` has checked the lease and follows.
async fn wait_following(daemon: &ChildDaemon) -> Result<()> {
    poll("the replica to follow", Duration::from_secs(60), || async {
        let (code, ready) = get(daemon.api, "/readyz", None)
            .await
            .unwrap_or((0, Value::Null));
        Ok((code == 200 && ready["role"] == "follower").then_some(()))
    })
    .await
}

/// Waits until `daemon` leads, at most `bound` after `since`; answers how long it took.
async fn wait_takeover(daemon: &ChildDaemon, since: Instant, bound: Duration) -> Result<Duration> {
    loop {
        if leads(daemon).await == Some(true) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > bound {
            bail!("the follower did not lead within {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `signal` (`STOP`, `CONT`) to the process `pid`.
async fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = tokio::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .await?;
    ensure!(status.success(), "kill -{signal} {pid}: {status}");
    Ok(())
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The `pilotlight:source` of every managed DR VPC, subnet, security group, route table and
/// internet gateway (one entry per resource).
async fn managed_sources(world: &World) -> Result<Vec<String>> {
    let mut out: Vec<String> = crate::daemon::managed_dr(world)
        .await?
        .into_iter()
        .map(|(source, _)| source)
        .collect();
    out.sort();
    Ok(out)
}

/// Waits until the network reconciler of `daemon` has finished a successful run.
async fn wait_network_success(daemon: &ChildDaemon) -> Result<Value> {
    poll(
        "a successful network run",
        Duration::from_secs(120),
        || async {
            let (code, body) = get(daemon.api, "/v1/status", Some(VIEWER_TOKEN)).await?;
            ensure!(code == 200, "status {code}: {body}");
            let network = body["reconcilers"]
                .as_array()
                .and_then(|a| a.iter().find(|r| r["name"] == "network").cloned())
                .ok_or_else(|| anyhow!("no network reconciler in {body}"))?;
            let done = network["runs"].as_u64().unwrap_or(0) >= 1
                && network["state"] == "idle"
                && network["last_outcome"] == "success";
            Ok(done.then_some(network))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_mid_reconcile_follower_takes_over_within_the_lease() -> Result<()> {
    const TTL: u64 = 2;
    let (world, database) = pg_world(World::new(1.0).await?).await;
    pilotlight_lab::seed(&world.ec2(PRIMARY).await, PRIMARY, &EstateSpec::sample()).await?;
    // Slow every DR security-group create down so the kill lands mid-cycle.
    world.proxy().add_fault(
        FaultRule::new(FaultAction::Latency { ms: 1500 })
            .service("ec2")
            .operation("CreateSecurityGroup")
            .region(DR),
    );
    let config = write_config(&world, "")?;
    let dir = world.dir.path();
    let leader = ChildDaemon::start_with_lease(&config, &dir.join("a.log"), TTL).await?;
    leader.wait_leading().await?;
    let follower = ChildDaemon::start_with_lease(&config, &dir.join("b.log"), TTL).await?;
    wait_following(&follower).await?;

    poll(
        "the leader's cycle to reach CreateSecurityGroup",
        Duration::from_secs(60),
        || async {
            Ok((world
                .proxy()
                .counters()
                .count("ec2", "CreateSecurityGroup", DR)
                >= 1)
                .then_some(()))
        },
    )
    .await?;
    let killed = Instant::now();
    leader.kill9().await?;
    let took = wait_takeover(&follower, killed, takeover_bound(TTL)).await?;
    eprintln!(
        "take-over {took:?} after kill -9 (bound {:?})",
        takeover_bound(TTL)
    );

    world.proxy().clear_faults();
    let network = wait_network_success(&follower).await?;
    ensure!(
        network["last_outcome"] == "success",
        "the new leader's network run: {network}"
    );
    // The new leader adopted what the dead one created: nothing is mirrored twice.
    let sources = managed_sources(&world).await?;
    ensure!(!sources.is_empty(), "nothing mirrored");
    let mut unique = sources.clone();
    unique.dedup();
    ensure!(sources == unique, "a source mirrored twice: {sources:?}");
    assert_primary_untouched(&world).await?;
    follower.kill9().await?;
    database.drop_now().await;
    Ok(())
}

/// Two replicas on one store with a restorable small estate and the primary region down;
/// every DR mutation answers 400 ms late (a kill in that window leaves "AWS acted, nobody
/// heard", the case the journal exists for).
struct Pair {
    world: World,
    database: pg_server::TestDatabase,
    leader: ChildDaemon,
    follower: ChildDaemon,
    plan: pilotlight_core::plan::RestorePlan,
    instances_before: usize,
}

async fn restorable_pair(lease_ttl_secs: u64) -> Result<Pair> {
    let (world, database) = pg_world(World::with_options(lab_options(6.0)).await?).await;
    seed(&world, &small_estate()).await?;
    let config = write_config(&world, &restore_config(&world, "", ""))?;
    let dir = world.dir.path();
    let leader = ChildDaemon::start_with_lease(&config, &dir.join("a.log"), lease_ttl_secs).await?;
    leader.wait_leading().await?;
    let plan = restore_plan(&wait_plan_ready(leader.api).await?)?;
    let follower =
        ChildDaemon::start_with_lease(&config, &dir.join("b.log"), lease_ttl_secs).await?;
    wait_following(&follower).await?;
    world.proxy().region_down(PRIMARY)?;
    for op in MUTATIONS {
        world.proxy().add_fault(
            FaultRule::new(FaultAction::HoldResponse { ms: 400 })
                .region(DR)
                .operation(op),
        );
    }
    let instances_before = dr_instances(&world).await?.len();
    Ok(Pair {
        world,
        database,
        leader,
        follower,
        plan,
        instances_before,
    })
}

/// Declares a disaster on the *follower* (any replica declares; its plan has the certificate
/// counterparts the leader's readiness reconciler recorded in the store) and waits until the
/// leader has journalled `items` done items; answers the run id.
async fn declare_and_progress(pair: &Pair, items: u64) -> Result<String> {
    let (code, declared) = declare(
        pair.follower.api,
        Some(OPERATOR_TOKEN),
        DISASTER,
        Some("ha-test"),
    )
    .await?;
    ensure!(code == 201, "declare: {code} {declared}");
    ensure!(
        declared["problems"] == 0,
        "the declared plan has problems: {declared}"
    );
    let id = run_id(&declared)?;
    let body = poll(
        "the leader's restore to make progress",
        Duration::from_secs(120),
        || async {
            let body = run_status(pair.leader.api, &id).await?;
            Ok((done_items(&body) >= items || is_final(state_of(&body))).then_some(body))
        },
    )
    .await?;
    ensure!(
        !is_final(state_of(&body)),
        "the run ended before the leader was stopped: {body}"
    );
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_mid_restore_follower_resumes_the_run_without_duplicates() -> Result<()> {
    const TTL: u64 = 2;
    let pair = restorable_pair(TTL).await?;
    let id = declare_and_progress(&pair, 3).await?;

    let Pair {
        world,
        database,
        leader,
        follower,
        plan,
        instances_before,
    } = pair;
    let killed = Instant::now();
    leader.kill9().await?;
    let took = wait_takeover(&follower, killed, takeover_bound(TTL)).await?;
    eprintln!(
        "take-over {took:?} after kill -9 (bound {:?})",
        takeover_bound(TTL)
    );
    let (done, _) = wait_run_final(follower.api, &id).await?;
    ensure_succeeded(&done)?;
    follower.kill9().await?;
    // Every planned resource once: no instance, volume, load balancer, target group, DB or
    // record was created twice across the two leaders.
    check_restore(&world, &plan, &id, instances_before, &[]).await?;
    assert_primary_untouched(&world).await?;
    database.drop_now().await;
    Ok(())
}

/// What the journal of run `id` holds (run row, steps, items), to compare over time.
async fn journal_snapshot(store: &Store, id: &str) -> Result<String> {
    Ok(format!(
        "{:?}\n{:?}\n{:?}",
        store.get_run(id).await?,
        store.list_steps(id).await?,
        store.list_items(id, None).await?
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_leader_cannot_write_after_the_take_over_and_steps_down() -> Result<()> {
    // Long enough that the new leader, held still below, keeps its lease (renewed every 3 s,
    // so at least 6 s left) while the old one resumes, is refused and steps down.
    const TTL: u64 = 9;
    let pair = restorable_pair(TTL).await?;
    let id = declare_and_progress(&pair, 3).await?;
    let store = Store::connect(&pair.database.url, &StoreOptions::default()).await?;
    let deposed = store.current_lease(LEASE_NAME).await?.context("no lease")?;

    // Pause the leader mid-restore; its lease lapses and the follower takes over.
    let leader_pid = pair.leader.pid()?;
    let follower_pid = pair.follower.pid()?;
    signal(leader_pid, "STOP").await?;
    let paused = Instant::now();
    let took = wait_takeover(&pair.follower, paused, takeover_bound(TTL)).await?;
    // Hold the new leader still too: from here on nobody may write the journal.
    signal(follower_pid, "STOP").await?;
    let held = Instant::now();
    let lease = store.current_lease(LEASE_NAME).await?.context("no lease")?;
    ensure!(
        lease.holder != deposed.holder && lease.fencing_token > deposed.fencing_token,
        "the follower leads without a new tenure: {deposed:?} then {lease:?}"
    );
    let before = journal_snapshot(&store, &id).await?;

    // Hold a share lock on the lease row: the resumed leader's own lease check (an UPDATE of
    // that row) waits behind it, so its restore carries on believing it leads, and only the
    // fence inside each of its writes (a share lock, which does not wait) keeps it out of the
    // journal.
    let mut lock = sqlx::PgConnection::connect(&pair.database.url).await?;
    let mut lock_tx = lock.begin().await?;
    sqlx::query("SELECT holder FROM leader_lease WHERE name = $1 FOR SHARE")
        .bind(LEASE_NAME)
        .fetch_one(&mut *lock_tx)
        .await?;

    signal(leader_pid, "CONT").await?;
    let log_a = pair.world.dir.path().join("a.log");
    let refused = poll(
        "the resumed leader's write to be refused",
        Duration::from_secs(3),
        || async {
            Ok(log_text(&log_a)
                .contains("fenced write refused")
                .then_some(()))
        },
    )
    .await;
    let while_locked = journal_snapshot(&store, &id).await?;
    lock_tx.rollback().await?;
    // Its lease check goes through now: it learns it follows.
    let stepped_down = match refused {
        Ok(()) => {
            poll(
                "the resumed leader to step down",
                Duration::from_secs(2),
                || async {
                    let stopped = log_text(&log_a).contains("lost the leader lease");
                    Ok((stopped && leads(&pair.leader).await == Some(false)).then_some(()))
                },
            )
            .await
        }
        Err(e) => Err(e),
    };
    let after = journal_snapshot(&store, &id).await?;
    let lease_after = store.current_lease(LEASE_NAME).await?.context("no lease")?;
    let held_for = held.elapsed();
    signal(follower_pid, "CONT").await?;
    stepped_down.with_context(|| log_text(&log_a))?;
    ensure!(
        lease_after == lease,
        "the lease changed while the new leader was held ({held_for:?}): {lease:?} then \
         {lease_after:?}"
    );
    ensure!(
        while_locked == before && after == before,
        "the journal changed after the take-over while only the deposed leader ran:\n\
         before: {before}\nwhile it believed it led: {while_locked}\nafter: {after}"
    );
    let (code, ready) = get(pair.leader.api, "/readyz", None).await?;
    ensure!(code == 200 && ready["role"] == "follower", "{code} {ready}");
    eprintln!(
        "take-over {took:?} after SIGSTOP (bound {:?}); new leader held {held_for:?}; the \
         resumed leader logged {} refused fenced write(s)",
        takeover_bound(TTL),
        log_text(&log_a).matches("fenced write refused").count()
    );

    // The new leader finishes the run; the old one stays a follower.
    let (done, _) = wait_run_final(pair.follower.api, &id).await?;
    ensure_succeeded(&done)?;
    ensure!(leads(&pair.leader).await == Some(false));
    let Pair {
        world,
        database,
        leader,
        follower,
        plan,
        instances_before,
    } = pair;
    leader.kill9().await?;
    follower.kill9().await?;
    check_restore(&world, &plan, &id, instances_before, &[]).await?;
    assert_primary_untouched(&world).await?;
    store.close().await;
    database.drop_now().await;
    Ok(())
}
