//! R2 and R7 end to end: EBS snapshot copies into the DR region through the real SDK, the lab's
//! proxy and moto, with the daemon in-process on SQLite.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use pilotlight_lab::{FaultAction, FaultRule};
use serde_json::Value;

use crate::support::{DR, PRIMARY, VIEWER_TOKEN, World, assert_primary_untouched, poll};

/// Config for copy tests: a fast copy cycle, a long network cycle.
const FAST: &str = "[reconcile]\nmax_backoff_secs = 1\n\n[copy]\ncycle_secs = 1\n";

async fn volume(ec2: &aws_sdk_ec2::Client, tier: u8, size: i32) -> Result<String> {
    let out = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(size)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .tags(
                    Tag::builder()
                        .key("dr:tier")
                        .value(tier.to_string())
                        .build(),
                )
                .build(),
        )
        .send()
        .await?;
    out.volume_id()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no volume id"))
}

async fn snapshot(ec2: &aws_sdk_ec2::Client, volume: &str) -> Result<String> {
    let out = ec2
        .create_snapshot()
        .volume_id(volume)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(Tag::builder().key("team").value("payments").build())
                .build(),
        )
        .send()
        .await?;
    out.snapshot_id()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no snapshot id"))
}

/// Waits until a snapshot taken now would have a later start time than `snapshot` (moto
/// records start times to the second, and the newest snapshot must be unambiguous).
async fn after_start_of(ec2: &aws_sdk_ec2::Client, snapshot: &str) -> Result<()> {
    let out = ec2
        .describe_snapshots()
        .snapshot_ids(snapshot)
        .send()
        .await?;
    let started = out
        .snapshots()
        .first()
        .and_then(|s| s.start_time())
        .map(|t| t.secs())
        .ok_or_else(|| anyhow!("{snapshot} has no start time"))?;
    poll(
        "the clock to pass the snapshot's start second",
        Duration::from_secs(5),
        || async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            Ok((now > started).then_some(()))
        },
    )
    .await
}

/// Owned DR snapshots: source snapshot id → (DR id, status).
async fn dr_copies(world: &World) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let out = world
        .ec2(DR)
        .await
        .describe_snapshots()
        .filters(
            Filter::builder()
                .name("tag:pilotlight:managed")
                .values("true")
                .build(),
        )
        .send()
        .await?;
    let mut map: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for s in out.snapshots() {
        let source = s
            .tags()
            .iter()
            .find(|t| t.key() == Some("pilotlight:source"))
            .and_then(|t| t.value())
            .unwrap_or_default()
            .to_owned();
        map.entry(source).or_default().push((
            s.snapshot_id().unwrap_or_default().to_owned(),
            s.state().map(|x| x.as_str().to_owned()).unwrap_or_default(),
        ));
    }
    Ok(map)
}

#[tokio::test]
async fn newest_snapshot_per_volume_is_copied_and_rpo_is_measured() -> Result<()> {
    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    let mut newest = BTreeMap::new();
    let mut older = Vec::new();
    for tier in 1..=3u8 {
        let v = volume(&ec2, tier, 8).await?;
        let first = snapshot(&ec2, &v).await?;
        after_start_of(&ec2, &first).await?;
        older.push(first);
        newest.insert(v.clone(), snapshot(&ec2, &v).await?);
    }
    let daemon = world.start_daemon(FAST).await?;
    let rpo = daemon.wait_all_copied("ebs_snapshot", 3).await?;

    // Only the newest snapshot of each volume was copied; superseded ones never.
    let copies = dr_copies(&world).await?;
    for (vol, snap) in &newest {
        let c = copies
            .get(snap)
            .ok_or_else(|| anyhow!("{snap} of {vol} not copied: {copies:?}"))?;
        ensure!(c.len() == 1 && c[0].1 == "completed", "{snap}: {c:?}");
    }
    for snap in &older {
        ensure!(!copies.contains_key(snap), "superseded {snap} was copied");
    }
    // Tiers came from the volumes' tags; lags are measured from the source's creation.
    let tiers: Vec<u64> = rpo.iter().filter_map(|r| r["tier"].as_u64()).collect();
    ensure!(tiers.iter().filter(|t| **t == 1).count() == 1, "{rpo:?}");
    ensure!(rpo.iter().all(|r| r["past_target"] == false), "{rpo:?}");

    let metrics = daemon.metrics().await?;
    let completed = crate::support::sum_metric(
        &metrics,
        "pilotlight_copy_events_total{kind=\"ebs_snapshot\",event=\"completed\"}",
    );
    ensure!(
        completed == 3.0,
        "completed copies metric {completed}\n{metrics}"
    );
    ensure!(crate::support::sum_metric(&metrics, "pilotlight_rpo_never_copied_resources") == 0.0);
    let (code, body) = daemon
        .get(
            "/v1/copies?kind=ebs_snapshot&state=completed",
            Some(VIEWER_TOKEN),
        )
        .await?;
    ensure!(
        code == 200 && body["items"].as_array().is_some_and(|a| a.len() == 3),
        "{body}"
    );

    // A new primary snapshot supersedes the copied one and is copied in turn.
    let (vol, last) = newest.iter().next().ok_or_else(|| anyhow!("no volume"))?;
    after_start_of(&ec2, last).await?;
    let fresh = snapshot(&ec2, vol).await?;
    poll(
        "the new snapshot's copy",
        Duration::from_secs(60),
        || async {
            Ok(dr_copies(&world)
                .await?
                .get(&fresh)
                .is_some_and(|c| c.iter().any(|(_, s)| s == "completed"))
                .then_some(()))
        },
    )
    .await?;
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn limit_errors_and_throttling_converge_without_failures() -> Result<()> {
    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    for tier in [1u8, 2, 2, 3] {
        let v = volume(&ec2, tier, 8).await?;
        snapshot(&ec2, &v).await?;
    }
    let limit = world.proxy().add_fault(
        FaultRule::new(FaultAction::Error {
            status: 400,
            code: "ResourceLimitExceeded".into(),
            message: "Too many snapshot copies in progress.".into(),
        })
        .service("ec2")
        .operation("CopySnapshot")
        .region(DR)
        .times(2),
    );
    let throttle = world.proxy().add_fault(
        FaultRule::new(FaultAction::Throttle)
            .service("ec2")
            .operation("CopySnapshot")
            .region(DR)
            .times(1),
    );
    let daemon = world.start_daemon(FAST).await?;
    daemon.wait_all_copied("ebs_snapshot", 4).await?;
    ensure!(world.proxy().fault_hits(limit) == 2 && world.proxy().fault_hits(throttle) == 1);
    let (_, failed) = daemon
        .get("/v1/copies?state=failed", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        failed["items"].as_array().is_some_and(Vec::is_empty),
        "failed copies: {failed}"
    );
    let copies = dr_copies(&world).await?;
    ensure!(
        copies.len() == 4 && copies.values().all(|c| c.len() == 1),
        "{copies:?}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn a_lost_response_is_resolved_by_tag_without_a_second_copy() -> Result<()> {
    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    let v = volume(&ec2, 1, 8).await?;
    let snap = snapshot(&ec2, &v).await?;
    // AWS makes the copy, the response never arrives.
    let drop = world.proxy().add_fault(
        FaultRule::new(FaultAction::DropResponse)
            .service("ec2")
            .operation("CopySnapshot")
            .region(DR)
            .times(1),
    );
    let daemon = world.start_daemon(FAST).await?;
    daemon.wait_all_copied("ebs_snapshot", 1).await?;
    ensure!(world.proxy().fault_hits(drop) == 1);
    let copies = dr_copies(&world).await?;
    ensure!(
        copies.get(&snap).is_some_and(|c| c.len() == 1),
        "exactly one copy of {snap} expected: {copies:?}"
    );
    ensure!(
        world.proxy().counters().count("ec2", "CopySnapshot", DR) == 1,
        "CopySnapshot must not be sent again"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn retention_deletes_only_owned_copies() -> Result<()> {
    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    let v = volume(&ec2, 2, 8).await?;
    let first = snapshot(&ec2, &v).await?;
    // An unowned DR snapshot that looks like one of ours (same description style and tags
    // except the managed tag).
    let dr = world.ec2(DR).await;
    let dr_vol = dr
        .create_volume()
        .availability_zone("us-west-2a")
        .size(8)
        .send()
        .await?
        .volume_id()
        .unwrap_or_default()
        .to_owned();
    let stranger = dr
        .create_snapshot()
        .volume_id(&dr_vol)
        .description(format!("pilotlight copy of {first} ({v}) from us-east-1"))
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .tags(
                    Tag::builder()
                        .key("pilotlight:source")
                        .value(&first)
                        .build(),
                )
                .tags(Tag::builder().key("pilotlight:resource").value(&v).build())
                .build(),
        )
        .send()
        .await?
        .snapshot_id()
        .unwrap_or_default()
        .to_owned();

    let daemon = world
        .start_daemon(&format!("{FAST}keep_per_volume = 1\n"))
        .await?;
    daemon.wait_all_copied("ebs_snapshot", 1).await?;
    after_start_of(&ec2, &first).await?;
    let second = snapshot(&ec2, &v).await?;
    poll(
        "the first copy to be retired",
        Duration::from_secs(60),
        || async {
            let c = dr_copies(&world).await?;
            let done = c
                .get(&second)
                .is_some_and(|x| x.iter().any(|(_, s)| s == "completed"))
                && !c.contains_key(&first);
            Ok(done.then_some(()))
        },
    )
    .await?;
    let still = dr
        .describe_snapshots()
        .snapshot_ids(&stranger)
        .send()
        .await?;
    ensure!(
        still.snapshots().len() == 1,
        "the unowned snapshot {stranger} was deleted"
    );
    let (_, deleted) = daemon
        .get("/v1/copies?state=deleted", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        deleted["items"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["source_id"] == Value::String(first.clone())),
        "{deleted}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn the_in_flight_limit_is_saturated_but_never_exceeded() -> Result<()> {
    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    for i in 0..25u8 {
        let v = volume(&ec2, 1 + i % 3, 8).await?;
        snapshot(&ec2, &v).await?;
    }
    let daemon = world.start_daemon(FAST).await?;
    daemon.wait_all_copied("ebs_snapshot", 25).await?;
    // The proxy's own count of copies in flight to the DR region (AWS's limit: 20).
    let max = world.proxy().max_copies_in_flight("ebs", DR);
    ensure!(
        max == 20,
        "the scheduler should fill all 20 slots and never more, saw {max}"
    );
    let copies = dr_copies(&world).await?;
    ensure!(
        copies.len() == 25 && copies.values().all(|c| c.len() == 1),
        "{copies:?}"
    );
    let refused = world
        .proxy()
        .counters()
        .row("ec2", "CopySnapshot", DR)
        .map_or(0, |r| r.calls);
    ensure!(
        refused == 25,
        "every CopySnapshot should have been accepted once: {refused}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn a_configured_lower_limit_is_respected() -> Result<()> {
    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    for i in 0..6u8 {
        let v = volume(&ec2, 1 + i % 3, 8).await?;
        snapshot(&ec2, &v).await?;
    }
    let daemon = world
        .start_daemon(&format!("{FAST}ebs_max_in_flight = 2\n"))
        .await?;
    daemon.wait_all_copied("ebs_snapshot", 6).await?;
    let max = world.proxy().max_copies_in_flight("ebs", DR);
    ensure!(max == 2, "configured limit 2, saw {max} in flight");
    daemon.stop().await
}

#[tokio::test]
async fn kill_9_between_request_and_journal_leaves_exactly_one_copy() -> Result<()> {
    use std::process::Stdio;

    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    let v = volume(&ec2, 1, 8).await?;
    let snap = snapshot(&ec2, &v).await?;
    // AWS accepts the copy; its answer is held long enough to kill the daemon before it hears.
    let hold = world.proxy().add_fault(
        FaultRule::new(FaultAction::HoldResponse { ms: 30_000 })
            .service("ec2")
            .operation("CopySnapshot")
            .region(DR)
            .times(1),
    );
    let config = world.dir.path().join("pilotlight.toml");
    std::fs::write(&config, world.config_toml(FAST)?)?;
    let mut child = tokio::process::Command::new(crate::support::pilotlight_bin()?)
        .args(["--config", config.to_str().unwrap_or_default(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    poll(
        "the copy to exist in the DR region",
        Duration::from_secs(60),
        || async { Ok(dr_copies(&world).await?.contains_key(&snap).then_some(())) },
    )
    .await?;
    ensure!(world.proxy().fault_hits(hold) == 1);
    child.start_kill()?; // SIGKILL
    child.wait().await?;

    // The journal says "requested, DR id unknown": the crash landed in the window.
    let db = world.dir.path().join("data").join("pilotlight.db");
    let store = pilotlight_store::Store::connect(
        &format!("sqlite://{}", db.display()),
        &pilotlight_store::StoreOptions::default(),
    )
    .await?;
    let row = store
        .copy_by_source(pilotlight_store::CopyKind::EbsSnapshot, &snap, DR)
        .await?
        .ok_or_else(|| anyhow!("no journal row for {snap}"))?;
    store.close().await;
    ensure!(
        row.state == pilotlight_store::CopyState::InFlight && row.dest_id.is_none(),
        "expected an in-flight row without a DR id, got {row:?}"
    );

    // Restart: the copy is found by its source tag, never requested again.
    let daemon = world.start_daemon(FAST).await?;
    daemon.wait_all_copied("ebs_snapshot", 1).await?;
    let copies = dr_copies(&world).await?;
    ensure!(
        copies.get(&snap).is_some_and(|c| c.len() == 1),
        "{copies:?}"
    );
    ensure!(
        world.proxy().counters().count("ec2", "CopySnapshot", DR) == 1,
        "CopySnapshot was sent again after the restart"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn a_lost_store_adopts_existing_copies_instead_of_copying_again() -> Result<()> {
    let world = World::new(1.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    for tier in 1..=3u8 {
        let v = volume(&ec2, tier, 8).await?;
        snapshot(&ec2, &v).await?;
    }
    let daemon = world.start_daemon(FAST).await?;
    daemon.wait_all_copied("ebs_snapshot", 3).await?;
    daemon.stop().await?;
    ensure!(world.proxy().counters().count("ec2", "CopySnapshot", DR) == 3);

    // The store is lost; the DR copies and their tags remain.
    let data = world.dir.path().join("data");
    for entry in std::fs::read_dir(&data)? {
        std::fs::remove_file(entry?.path())?;
    }
    let daemon = world.start_daemon(FAST).await?;
    daemon.wait_all_copied("ebs_snapshot", 3).await?;
    ensure!(
        world.proxy().counters().count("ec2", "CopySnapshot", DR) == 3,
        "copies were requested again instead of adopted"
    );
    let copies = dr_copies(&world).await?;
    ensure!(
        copies.len() == 3 && copies.values().all(|c| c.len() == 1),
        "{copies:?}"
    );
    let (_, rows) = daemon
        .get(
            "/v1/copies?kind=ebs_snapshot&state=completed",
            Some(VIEWER_TOKEN),
        )
        .await?;
    ensure!(
        rows["items"].as_array().is_some_and(|a| a.len() == 3),
        "{rows}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}
