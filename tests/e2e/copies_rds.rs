//! R3 end to end: RDS DB snapshot and Aurora DB cluster snapshot copies into the DR region
//! through the real SDK, the lab's proxy (which keeps copies `pending`/`copying` for a while and
//! enforces AWS's in-flight limits) and moto, with the daemon in-process on SQLite: newest
//! snapshot per database, the Aurora in-flight limit of 5, retention of owned copies only, and
//! the manual snapshot quota.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use aws_sdk_rds::types::Tag;
use serde_json::Value;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    DR, PRIMARY, RunningDaemon, VIEWER_TOKEN, World, assert_primary_untouched, poll,
};

/// Copies of DB instance snapshots only.
const DB_ONLY: &str = "[reconcile]\nmax_backoff_secs = 1\n\n[copy]\ncycle_secs = 1\nebs = false\namis = false\nrds_clusters = false\n";
/// Copies of Aurora cluster snapshots only.
const CLUSTER_ONLY: &str = "[reconcile]\nmax_backoff_secs = 1\n\n[copy]\ncycle_secs = 1\nebs = false\namis = false\nrds = false\n";

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

async fn db_instance(rds: &aws_sdk_rds::Client, name: &str, tier: u8) -> Result<()> {
    rds.create_db_instance()
        .db_instance_identifier(name)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(5)
        .master_username("pilot")
        .master_user_password("pilotlight-test-1")
        .backup_retention_period(0)
        .tags(tag("dr:tier", &tier.to_string()))
        .send()
        .await?;
    Ok(())
}

/// A manual snapshot; returns its ARN.
async fn db_snapshot(rds: &aws_sdk_rds::Client, db: &str, id: &str) -> Result<String> {
    let out = rds
        .create_db_snapshot()
        .db_instance_identifier(db)
        .db_snapshot_identifier(id)
        .tags(tag("team", "payments"))
        .send()
        .await?;
    out.db_snapshot()
        .and_then(|s| s.db_snapshot_arn())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no snapshot ARN for {id}"))
}

async fn cluster_with_snapshot(rds: &aws_sdk_rds::Client, name: &str) -> Result<String> {
    rds.create_db_cluster()
        .db_cluster_identifier(name)
        .engine("aurora-postgresql")
        .master_username("pilot")
        .master_user_password("pilotlight-test-1")
        .tags(tag("dr:tier", "1"))
        .send()
        .await?;
    let out = rds
        .create_db_cluster_snapshot()
        .db_cluster_identifier(name)
        .db_cluster_snapshot_identifier(format!("{name}-1"))
        .send()
        .await?;
    out.db_cluster_snapshot()
        .and_then(|s| s.db_cluster_snapshot_arn())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no cluster snapshot ARN for {name}"))
}

/// Waits until the wall clock is in a later second than now (moto's snapshot times have
/// whole-second precision, and the newest snapshot must be unambiguous).
async fn next_second() -> Result<()> {
    let secs = || -> Result<u64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs())
    };
    let start = secs()?;
    poll("the next second", Duration::from_secs(5), || async {
        Ok((secs()? > start).then_some(()))
    })
    .await
}

/// Manual DB snapshots in the DR region: identifier → tags.
async fn dr_manual(world: &World) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let out = world
        .rds(DR)
        .await
        .describe_db_snapshots()
        .snapshot_type("manual")
        .send()
        .await?;
    Ok(out
        .db_snapshots()
        .iter()
        .map(|s| {
            (
                s.db_snapshot_identifier().unwrap_or_default().to_owned(),
                s.tag_list()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
            )
        })
        .collect())
}

/// Owned DR copies: source ARN → DR identifiers.
async fn owned_copies(world: &World) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, tags) in dr_manual(world).await? {
        if tags.get("pilotlight:managed").map(String::as_str) == Some("true") {
            let source = tags.get("pilotlight:source").cloned().unwrap_or_default();
            out.entry(source).or_default().push(id);
        }
    }
    Ok(out)
}

async fn copies_in_state(daemon: &RunningDaemon, kind: &str, state: &str) -> Result<Vec<Value>> {
    let (code, body) = daemon
        .get(
            &format!("/v1/copies?kind={kind}&state={state}"),
            Some(VIEWER_TOKEN),
        )
        .await?;
    ensure!(code == 200, "{body}");
    Ok(body["items"].as_array().cloned().unwrap_or_default())
}

async fn reconciler_status(daemon: &RunningDaemon, name: &str) -> Result<Value> {
    let (code, body) = daemon.get("/v1/status", Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "{body}");
    body["reconcilers"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name).cloned())
        .ok_or_else(|| anyhow!("no {name} reconciler in {body}"))
}

#[tokio::test]
async fn newest_db_snapshot_is_copied_and_rpo_is_measured() -> Result<()> {
    let world = World::new(1.0).await?;
    let rds = world.rds(PRIMARY).await;
    db_instance(&rds, "app-db", 1).await?;
    let older = db_snapshot(&rds, "app-db", "app-db-1").await?;
    next_second().await?;
    let newest = db_snapshot(&rds, "app-db", "app-db-2").await?;

    let daemon = world.start_daemon(DB_ONLY).await?;
    let rpo = daemon.wait_all_copied("rds_snapshot", 1).await?;
    ensure!(
        rpo[0]["resource_id"] == "app-db"
            && rpo[0]["tier"] == 1
            && rpo[0]["past_target"] == false
            && rpo[0]["newest_source_id"] == Value::String(newest.clone()),
        "{rpo:?}"
    );

    // Only the newest snapshot was copied, once, under its deterministic identifier.
    let copies = owned_copies(&world).await?;
    ensure!(
        !copies.contains_key(&older),
        "superseded {older} was copied"
    );
    let ids = copies
        .get(&newest)
        .ok_or_else(|| anyhow!("{newest} not copied: {copies:?}"))?;
    let expected = pilotlight_engine::copy::rds_target_id(&newest);
    ensure!(ids == &vec![expected.clone()], "{ids:?} != {expected}");
    let tags = &dr_manual(&world).await?[&expected];
    for (k, v) in [
        ("pilotlight:resource", "app-db"),
        ("pilotlight:tier", "1"),
        ("team", "payments"),
    ] {
        ensure!(tags.get(k).map(String::as_str) == Some(v), "{k}: {tags:?}");
    }
    let completed = copies_in_state(&daemon, "rds_snapshot", "completed").await?;
    ensure!(
        completed.len() == 1 && completed[0]["dest_id"] == Value::String(expected.clone()),
        "{completed:?}"
    );
    // The proxy saw the copy in flight (pending/copying) before it became available.
    ensure!(world.proxy().max_copies_in_flight("rds", DR) == 1);
    ensure!(world.proxy().counters().count("rds", "CopyDBSnapshot", DR) == 1);

    // A newer snapshot supersedes the copied one and is copied in turn.
    next_second().await?;
    let fresh = db_snapshot(&rds, "app-db", "app-db-3").await?;
    poll(
        "the new snapshot's copy",
        Duration::from_secs(60),
        || async {
            let done = copies_in_state(&daemon, "rds_snapshot", "completed")
                .await?
                .iter()
                .any(|c| c["source_id"] == Value::String(fresh.clone()));
            Ok(done.then_some(()))
        },
    )
    .await?;
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn aurora_copies_never_exceed_five_in_flight() -> Result<()> {
    let world = World::new(1.0).await?;
    let rds = world.rds(PRIMARY).await;
    let mut arns = Vec::new();
    for i in 0..7 {
        arns.push(cluster_with_snapshot(&rds, &format!("ledger-{i}")).await?);
    }
    let daemon = world.start_daemon(CLUSTER_ONLY).await?;
    daemon.wait_all_copied("rds_cluster_snapshot", 7).await?;
    let max = world.proxy().max_copies_in_flight("aurora", DR);
    ensure!(
        max == 5,
        "the scheduler should fill AWS's 5 Aurora slots and never more, saw {max}"
    );
    let sent = world
        .proxy()
        .counters()
        .count("rds", "CopyDBClusterSnapshot", DR);
    ensure!(
        sent == 7,
        "the 6th concurrent copy must never be requested: {sent} requests for 7 copies"
    );
    let out = world
        .rds(DR)
        .await
        .describe_db_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await?;
    let mut sources: Vec<String> = out
        .db_cluster_snapshots()
        .iter()
        .filter_map(|s| {
            s.tag_list()
                .iter()
                .find(|t| t.key() == Some("pilotlight:source"))
                .and_then(|t| t.value())
                .map(str::to_owned)
        })
        .collect();
    sources.sort();
    arns.sort();
    ensure!(sources == arns, "DR cluster copies {sources:?} != {arns:?}");
    let failed = copies_in_state(&daemon, "rds_cluster_snapshot", "failed").await?;
    ensure!(failed.is_empty(), "{failed:?}");
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn retention_keeps_keep_per_db_and_never_deletes_unowned_snapshots() -> Result<()> {
    let world = World::new(1.0).await?;
    let rds = world.rds(PRIMARY).await;
    db_instance(&rds, "orders", 2).await?;
    let first = db_snapshot(&rds, "orders", "orders-1").await?;
    // An unowned DR manual snapshot that looks like one of ours, except the managed tag.
    let dr = world.rds(DR).await;
    db_instance(&dr, "local-db", 2).await?;
    dr.create_db_snapshot()
        .db_instance_identifier("local-db")
        .db_snapshot_identifier("stranger")
        .tags(tag("pilotlight:source", &first))
        .tags(tag("pilotlight:resource", "orders"))
        .tags(tag("pilotlight:source-created-ms", "0"))
        .send()
        .await?;

    let daemon = world
        .start_daemon(&format!("{DB_ONLY}keep_per_db = 1\n"))
        .await?;
    daemon.wait_all_copied("rds_snapshot", 1).await?;
    next_second().await?;
    let second = db_snapshot(&rds, "orders", "orders-2").await?;
    poll(
        "the first copy to be retired",
        Duration::from_secs(60),
        || async {
            let c = owned_copies(&world).await?;
            let second_done = copies_in_state(&daemon, "rds_snapshot", "completed")
                .await?
                .iter()
                .any(|r| r["source_id"] == Value::String(second.clone()));
            Ok((second_done && c.contains_key(&second) && !c.contains_key(&first)).then_some(()))
        },
    )
    .await?;
    let all = dr_manual(&world).await?;
    ensure!(
        all.contains_key("stranger"),
        "the unowned snapshot was deleted: {all:?}"
    );
    ensure!(
        all.len() == 2,
        "expected the stranger and one copy: {all:?}"
    );
    let deleted = copies_in_state(&daemon, "rds_snapshot", "deleted").await?;
    ensure!(
        deleted.len() == 1 && deleted[0]["source_id"] == Value::String(first.clone()),
        "{deleted:?}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn the_manual_snapshot_quota_defers_copies() -> Result<()> {
    let world = World::new(1.0).await?;
    let rds = world.rds(PRIMARY).await;
    let mut arns = Vec::new();
    for name in ["db-a", "db-b", "db-c"] {
        db_instance(&rds, name, 1).await?;
        arns.push(db_snapshot(&rds, name, &format!("{name}-1")).await?);
    }
    // One unowned manual snapshot already in the DR region: with a quota of 2, one copy fits.
    let dr = world.rds(DR).await;
    db_instance(&dr, "local-db", 2).await?;
    dr.create_db_snapshot()
        .db_instance_identifier("local-db")
        .db_snapshot_identifier("stranger")
        .send()
        .await?;

    let daemon = world
        .start_daemon(&format!("{DB_ONLY}rds_manual_snapshot_quota = 2\n"))
        .await?;
    let status = poll(
        "one copy done and two deferred by the quota",
        Duration::from_secs(60),
        || async {
            let st = reconciler_status(&daemon, "rds_snapshot").await?;
            let done = copies_in_state(&daemon, "rds_snapshot", "completed")
                .await?
                .len()
                == 1
                && st["last_report"]["deferred_by_quota"] == 2;
            Ok(done.then_some(st))
        },
    )
    .await?;
    // A few more cycles change nothing: the quota holds, the other two stay queued.
    let runs = status["runs"].as_u64().unwrap_or(0);
    poll("three more cycles", Duration::from_secs(30), || async {
        let st = reconciler_status(&daemon, "rds_snapshot").await?;
        Ok((st["runs"].as_u64().unwrap_or(0) >= runs + 3).then_some(()))
    })
    .await?;
    let all = dr_manual(&world).await?;
    ensure!(all.len() == 2, "quota 2 exceeded: {all:?}");
    ensure!(
        world.proxy().counters().count("rds", "CopyDBSnapshot", DR) == 1,
        "a copy beyond the quota was requested"
    );
    let queued = copies_in_state(&daemon, "rds_snapshot", "queued").await?;
    ensure!(queued.len() == 2, "{queued:?}");
    ensure!(
        copies_in_state(&daemon, "rds_snapshot", "failed")
            .await?
            .is_empty()
    );

    // Freeing a slot lets the next one through, still within the quota.
    dr.delete_db_snapshot()
        .db_snapshot_identifier("stranger")
        .send()
        .await?;
    poll("a second copy", Duration::from_secs(60), || async {
        let n = copies_in_state(&daemon, "rds_snapshot", "completed")
            .await?
            .len();
        Ok((n == 2).then_some(()))
    })
    .await?;
    let all = dr_manual(&world).await?;
    ensure!(all.len() == 2, "quota 2 exceeded: {all:?}");
    ensure!(
        owned_copies(&world)
            .await?
            .keys()
            .all(|source| arns.contains(source)),
        "copies of unknown sources"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

/// Creates a KMS key in `region` through the uncounted door with a raw JSON request (the tests
/// have no KMS SDK; moto reads the region from the credential scope and checks no signature).
/// Returns the key's ARN.
async fn kms_key(world: &World, region: &str) -> Result<String> {
    let endpoint = world.door_endpoint();
    let addr = endpoint.trim_start_matches("http://");
    let body = r#"{"Description":"pilotlight DR test key"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: TrentService.CreateKey\r\n\
         X-Amz-Date: 20261124T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20261124/{region}/kms/aws4_request, \
         SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow!("malformed KMS answer: {text}"))?;
    let start = json.find('{').ok_or_else(|| anyhow!("no JSON in {text}"))?;
    let end = json
        .rfind('}')
        .ok_or_else(|| anyhow!("no JSON in {text}"))?;
    let value: Value = serde_json::from_str(&json[start..=end])?;
    value["KeyMetadata"]["Arn"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no key ARN in {text}"))
}

#[tokio::test]
async fn encrypted_snapshots_are_copied_with_the_dr_key_and_a_presigned_url() -> Result<()> {
    let world = World::new(1.0).await?;
    let rds = world.rds(PRIMARY).await;
    rds.create_db_instance()
        .db_instance_identifier("vault")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(5)
        .master_username("pilot")
        .master_user_password("pilotlight-test-1")
        .backup_retention_period(0)
        .storage_encrypted(true)
        .send()
        .await?;
    let arn = db_snapshot(&rds, "vault", "vault-1").await?;
    let source = rds
        .describe_db_snapshots()
        .db_snapshot_identifier("vault-1")
        .send()
        .await?;
    ensure!(
        source.db_snapshots().first().and_then(|s| s.encrypted()) == Some(true),
        "the source should be encrypted: {source:?}"
    );
    let dr_key = kms_key(&world, DR).await?;
    ensure!(dr_key.contains(":us-west-2:"), "{dr_key}");

    let daemon = world
        .start_daemon(&format!("{DB_ONLY}dr_default_kms_key = \"{dr_key}\"\n"))
        .await?;
    daemon.wait_all_copied("rds_snapshot", 1).await?;
    let target = pilotlight_engine::copy::rds_target_id(&arn);
    let copy = world
        .rds(DR)
        .await
        .describe_db_snapshots()
        .db_snapshot_identifier(&target)
        .send()
        .await?;
    let copy = copy
        .db_snapshots()
        .first()
        .ok_or_else(|| anyhow!("no DR copy {target}"))?;
    ensure!(
        copy.encrypted() == Some(true) && copy.kms_key_id() == Some(dr_key.as_str()),
        "the copy must be encrypted with the DR key: {copy:?}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn a_lost_copy_response_is_resolved_without_a_second_copy() -> Result<()> {
    use pilotlight_lab::{FaultAction, FaultRule};

    let world = World::new(1.0).await?;
    let rds = world.rds(PRIMARY).await;
    db_instance(&rds, "billing", 1).await?;
    let arn = db_snapshot(&rds, "billing", "billing-1").await?;
    // RDS makes the copy; its answer never arrives.
    let drop = world.proxy().add_fault(
        FaultRule::new(FaultAction::DropResponse)
            .service("rds")
            .operation("CopyDBSnapshot")
            .region(DR)
            .times(1),
    );
    let daemon = world.start_daemon(DB_ONLY).await?;
    daemon.wait_all_copied("rds_snapshot", 1).await?;
    ensure!(world.proxy().fault_hits(drop) == 1);
    let copies = owned_copies(&world).await?;
    ensure!(
        copies.get(&arn).is_some_and(|c| c.len() == 1),
        "exactly one copy of {arn} expected: {copies:?}"
    );
    ensure!(
        world.proxy().counters().count("rds", "CopyDBSnapshot", DR) == 1,
        "CopyDBSnapshot must not be sent again"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}
