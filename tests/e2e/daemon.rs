//! The daemon's lifecycle: restart on the same store, SIGTERM in the middle of a cycle.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use aws_sdk_ec2::types::Filter;
use pilotlight_lab::seed::EstateSpec;
use pilotlight_lab::{FaultAction, FaultRule};
use pilotlight_store::{Store, StoreOptions};

use crate::support::{DR, PRIMARY, VIEWER_TOKEN, World, pilotlight_bin, poll};

/// Every managed DR resource id (VPCs, subnets, groups, gateways, tables) with its source.
pub(crate) async fn managed_dr(world: &World) -> Result<BTreeSet<(String, String)>> {
    let ec2 = world.ec2(DR).await;
    let managed = || {
        Filter::builder()
            .name("tag:pilotlight:managed")
            .values("true")
            .build()
    };
    let src = |tags: &[aws_sdk_ec2::types::Tag]| {
        tags.iter()
            .find(|t| t.key() == Some("pilotlight:source"))
            .and_then(|t| t.value().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for v in ec2.describe_vpcs().filters(managed()).send().await?.vpcs() {
        out.insert((src(v.tags()), v.vpc_id().unwrap_or_default().to_owned()));
    }
    for s in ec2
        .describe_subnets()
        .filters(managed())
        .send()
        .await?
        .subnets()
    {
        out.insert((src(s.tags()), s.subnet_id().unwrap_or_default().to_owned()));
    }
    for g in ec2
        .describe_security_groups()
        .filters(managed())
        .send()
        .await?
        .security_groups()
    {
        out.insert((src(g.tags()), g.group_id().unwrap_or_default().to_owned()));
    }
    for r in ec2
        .describe_route_tables()
        .filters(managed())
        .send()
        .await?
        .route_tables()
    {
        out.insert((
            src(r.tags()),
            r.route_table_id().unwrap_or_default().to_owned(),
        ));
    }
    for i in ec2
        .describe_internet_gateways()
        .filters(managed())
        .send()
        .await?
        .internet_gateways()
    {
        out.insert((
            src(i.tags()),
            i.internet_gateway_id().unwrap_or_default().to_owned(),
        ));
    }
    Ok(out)
}

/// The store's mappings as (primary, dr) pairs.
async fn stored(world: &World) -> Result<BTreeSet<(String, String)>> {
    let db = world.dir.path().join("data").join("pilotlight.db");
    let store = Store::connect(
        &format!("sqlite://{}", db.display()),
        &StoreOptions::default(),
    )
    .await?;
    let rows = store.list_mappings(None, None, 1000).await?;
    store.close().await;
    Ok(rows.into_iter().map(|m| (m.primary_id, m.dr_id)).collect())
}

#[tokio::test]
async fn restart_keeps_mappings_and_changes_nothing() -> Result<()> {
    let world = World::new(1.0).await?;
    pilotlight_lab::seed(&world.ec2(PRIMARY).await, PRIMARY, &EstateSpec::sample()).await?;
    let daemon = world.start_daemon("").await?;
    daemon.wait_network_runs(1).await?;
    let (_, before) = daemon
        .get("/v1/mappings?limit=1000", Some(VIEWER_TOKEN))
        .await?;
    daemon.stop().await?;

    world.proxy().reset_counters();
    let daemon = world.start_daemon("").await?;
    let status = daemon.wait_network_runs(1).await?;
    ensure!(status["last_outcome"] == "success", "{status}");
    let (_, after) = daemon
        .get("/v1/mappings?limit=1000", Some(VIEWER_TOKEN))
        .await?;
    let pairs = |v: &serde_json::Value| -> BTreeSet<(String, String)> {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["primary_id"].as_str().unwrap_or_default().to_owned(),
                    m["dr_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    ensure!(
        !pairs(&before).is_empty() && pairs(&before) == pairs(&after),
        "mappings changed across restart"
    );
    let counts = world.proxy().counters();
    ensure!(
        counts.mutating_calls_in(DR) == 0 && counts.mutating_calls_in(PRIMARY) == 0,
        "{counts:?}"
    );
    daemon.stop().await
}

#[tokio::test]
async fn sigterm_during_a_cycle_stops_within_the_deadline_and_loses_nothing() -> Result<()> {
    let world = World::new(1.0).await?;
    pilotlight_lab::seed(&world.ec2(PRIMARY).await, PRIMARY, &EstateSpec::sample()).await?;
    // Slow every DR security-group create down so SIGTERM lands mid-cycle.
    world.proxy().add_fault(
        FaultRule::new(FaultAction::Latency { ms: 1500 })
            .service("ec2")
            .operation("CreateSecurityGroup")
            .region(DR),
    );
    let config = world.dir.path().join("pilotlight.toml");
    std::fs::write(&config, world.config_toml("")?)?;
    let mut child = tokio::process::Command::new(pilotlight_bin()?)
        .args(["--config", config.to_str().unwrap_or_default(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the pilotlight binary")?;
    let pid = child.id().ok_or_else(|| anyhow!("no pid"))?;

    // Wait until the cycle is inside the slow creates.
    poll(
        "the cycle to reach CreateSecurityGroup",
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
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    ensure!(status.success());

    // shutdown_grace_secs = 20 in the test config: it must be gone well within that.
    let exit = tokio::time::timeout(Duration::from_secs(25), child.wait())
        .await
        .map_err(|_| anyhow!("pilotlight did not exit within the shutdown deadline"))??;
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        e.read_to_string(&mut stderr).await?;
    }
    ensure!(exit.success(), "exit status {exit:?}; stderr:\n{stderr}");
    ensure!(
        stderr.contains("stopped by shutdown") || stderr.contains("shutting down"),
        "no shutdown in the log:\n{stderr}"
    );

    // Nothing lost: every resource created before the stop has its mapping.
    let created = managed_dr(&world).await?;
    let mapped = stored(&world).await?;
    ensure!(!created.is_empty(), "nothing was created before SIGTERM");
    let missing: Vec<_> = created.difference(&mapped).collect();
    ensure!(missing.is_empty(), "created but not recorded: {missing:?}");
    ensure!(
        world.proxy().counters().count("ec2", "CreateSubnet", DR) <= 6,
        "subnets created twice"
    );

    // A restarted daemon finishes the job without duplicates.
    world.proxy().clear_faults();
    let daemon = world.start_daemon("").await?;
    let st = daemon.wait_network_runs(1).await?;
    ensure!(st["last_outcome"] == "success", "{st}");
    let after = managed_dr(&world).await?;
    let sources: Vec<&String> = after.iter().map(|(s, _)| s).collect();
    let unique: BTreeSet<&String> = sources.iter().copied().collect();
    ensure!(
        sources.len() == unique.len(),
        "a source mirrored twice: {after:?}"
    );
    ensure!(world.proxy().counters().mutating_calls_in(PRIMARY) == 0);
    daemon.stop().await
}

#[tokio::test]
async fn second_replica_follows_then_takes_over() -> Result<()> {
    let world = World::new(1.0).await?;
    pilotlight_lab::seed(&world.ec2(PRIMARY).await, PRIMARY, &EstateSpec::sample()).await?;
    let leader = world.start_daemon("").await?;
    leader.wait_network_runs(1).await?;
    let (code, ready) = leader.get("/readyz", None).await?;
    ensure!(code == 200 && ready["role"] == "leader", "{code} {ready}");

    // Same store: the second replica checks the lease, follows, and serves reads.
    let follower = world.start_follower("").await?;
    let status = poll(
        "the follower's first lease check",
        Duration::from_secs(30),
        || async {
            let (code, ready) = follower.get("/readyz", None).await?;
            Ok((code == 200).then_some(ready))
        },
    )
    .await?;
    ensure!(status["role"] == "follower", "{status}");
    let (code, st) = follower.get("/v1/status", Some(VIEWER_TOKEN)).await?;
    ensure!(
        code == 200 && st["leader"]["is_leader"] == false && st["leader"]["leader"].is_string(),
        "{st}"
    );
    let (code, mappings) = follower
        .get("/v1/mappings?limit=1000", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        code == 200 && mappings["items"].as_array().is_some_and(|a| !a.is_empty()),
        "{mappings}"
    );
    let (code, body) = follower
        .post(
            "/v1/reconcilers/network/run",
            Some(crate::support::OPERATOR_TOKEN),
            r#"{"reason":"x"}"#,
        )
        .await?;
    ensure!(
        code == 409 && body["error"]["code"] == "not_leader",
        "{code} {body}"
    );

    // The leader stops and releases the lease: the follower takes over and reconciles.
    leader.stop().await?;
    follower.wait_leading().await?;
    let st = follower.wait_network_runs(1).await?;
    ensure!(
        st["last_outcome"] == "success" && st["last_report"]["mutating_calls"] == 0,
        "{st}"
    );
    follower.stop().await
}
