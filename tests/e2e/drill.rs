//! D12 end to end: a drill restores the small estate into the DR region with drill tags, never
//! touches production DNS, measures its RTO per tier, then tears down everything it created —
//! checked by listing the DR region and by the lab proxy's call counts — and a drill killed
//! mid-teardown finishes its cleanup after a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use pilotlight_lab::seed::SeededEstate;
use pilotlight_lab::{FaultAction, FaultRule};
use serde_json::Value;

use crate::restore_support::{
    ChildDaemon, ListedRecord, declare, dr_view, get, lab_options, post, report_of, restore_config,
    run_id, run_status, seed, small_estate, state_of, wait_plan_ready, wait_run_final,
    write_config, zone_records,
};
use crate::support::{
    DR, OPERATOR_TOKEN, PRIMARY, VIEWER_TOKEN, World, assert_primary_untouched, poll,
};

const DRILL: &str = r#"{"mode": "drill"}"#;
/// The drill zone of the first test.
const DRILL_DOMAIN: &str = "drill.example.internal.";

/// Hosted zones in the lab's account tagged for `run`, with their names.
async fn run_zones(world: &World, run: &str) -> Result<Vec<(String, String)>> {
    let r53 = world.clients(DR).await.route53;
    let zones = r53.list_hosted_zones().send().await?;
    let mut out = Vec::new();
    for z in zones.hosted_zones() {
        let id = z.id().trim_start_matches("/hostedzone/").to_owned();
        let tags = r53
            .list_tags_for_resource()
            .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
            .resource_id(&id)
            .send()
            .await?;
        let ours = tags.resource_tag_set().is_some_and(|set| {
            set.tags()
                .iter()
                .any(|t| t.key() == Some("pilotlight:run") && t.value() == Some(run))
        });
        if ours {
            out.push((id, z.name().to_owned()));
        }
    }
    Ok(out)
}

/// Every record of every seeded zone, by zone.
async fn all_records(
    world: &World,
    estate: &SeededEstate,
) -> Result<BTreeMap<String, Vec<ListedRecord>>> {
    let mut out = BTreeMap::new();
    for (name, zone) in &estate.zones {
        let mut records = zone_records(world, &zone.id).await?;
        records.sort_by(|a, b| {
            (a.name.as_str(), a.record_type.as_str())
                .cmp(&(b.name.as_str(), b.record_type.as_str()))
        });
        out.insert(name.clone(), records);
    }
    Ok(out)
}

/// What the DR region still holds tagged for `run`, listed through the lab's uncounted door.
async fn tagged_for(world: &World, run: &str) -> Result<Vec<String>> {
    let tagged = |tags: &BTreeMap<String, String>| {
        tags.get("pilotlight:run").map(String::as_str) == Some(run)
    };
    let view = dr_view(world).await?;
    let mut left = Vec::new();
    left.extend(
        view.instances
            .iter()
            .filter(|i| tagged(&i.tags) && i.state != "terminated")
            .map(|i| format!("instance {} ({})", i.id, i.state)),
    );
    left.extend(
        view.volumes
            .iter()
            .filter(|v| tagged(&v.tags))
            .map(|v| format!("volume {}", v.id)),
    );
    left.extend(
        view.lbs
            .iter()
            .filter(|l| tagged(&l.tags))
            .map(|l| format!("lb {}", l.name)),
    );
    left.extend(
        view.target_groups
            .iter()
            .filter(|t| tagged(&t.tags))
            .map(|t| format!("target group {}", t.name)),
    );
    left.extend(
        view.dbs
            .iter()
            .filter(|d| tagged(&d.tags))
            .map(|d| format!("db {}", d.id)),
    );
    left.extend(
        view.clusters
            .iter()
            .filter(|c| tagged(&c.tags))
            .map(|c| format!("cluster {}", c.id)),
    );
    left.extend(
        run_zones(world, run)
            .await?
            .into_iter()
            .map(|(id, name)| format!("hosted zone {id} {name}")),
    );
    let rds = world.clients(DR).await.rds;
    let groups = rds.describe_db_subnet_groups().send().await?;
    for g in groups.db_subnet_groups() {
        let Some(arn) = g.db_subnet_group_arn() else {
            continue;
        };
        let tags = rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await?;
        if tags
            .tag_list()
            .iter()
            .any(|t| t.key() == Some("pilotlight:run") && t.value() == Some(run))
        {
            left.push(format!(
                "db subnet group {}",
                g.db_subnet_group_name().unwrap_or_default()
            ));
        }
    }
    Ok(left)
}

/// Creations and deletions the proxy counted in the DR region pair up; production DNS is only
/// changed when `dns_zone` (a drill zone's records) is set.
fn ensure_deletes_match_creates(world: &World, dns_zone: bool) -> Result<()> {
    let c = world.proxy().counters();
    for (service, create, delete) in [
        ("elb", "CreateLoadBalancer", "DeleteLoadBalancer"),
        ("elbv2", "CreateLoadBalancer", "DeleteLoadBalancer"),
        ("elbv2", "CreateTargetGroup", "DeleteTargetGroup"),
        ("rds", "CreateDBSubnetGroup", "DeleteDBSubnetGroup"),
        ("rds", "RestoreDBInstanceFromDBSnapshot", "DeleteDBInstance"),
    ] {
        let (made, deleted) = (c.count(service, create, DR), c.count(service, delete, DR));
        ensure!(
            made > 0 && deleted >= made,
            "{service}: {made} {create} but {deleted} {delete}"
        );
    }
    ensure!(c.count("ec2", "RunInstances", DR) > 0 && c.count("ec2", "TerminateInstances", DR) > 0);
    let changes = c.count("route53", "ChangeResourceRecordSets", "global");
    if dns_zone {
        let (made, deleted) = (
            c.count("route53", "CreateHostedZone", "global"),
            c.count("route53", "DeleteHostedZone", "global"),
        );
        ensure!(
            made == 1 && deleted == 1,
            "{made} zones created, {deleted} deleted"
        );
        // The drill zone's records written, then deleted: nothing else.
        ensure!(changes >= 2, "{changes} record changes");
    } else {
        ensure!(changes == 0, "a drill without a zone changed DNS records");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_restores_measures_rto_and_leaves_nothing_behind() -> Result<()> {
    let world = World::with_options(lab_options(1.0)).await?;
    let estate = seed(&world, &small_estate()).await?;
    let daemon = world
        .start_daemon(&restore_config(
            &world,
            "",
            &format!("[drill]\nhold_secs = 4\ndns_zone = \"{DRILL_DOMAIN}\"\n"),
        ))
        .await?;
    wait_plan_ready(daemon.api).await?;
    world.proxy().region_down(PRIMARY)?;
    let records_before = all_records(&world, &estate).await?;
    let dr_before = dr_view(&world).await?;

    let (code, body) = declare(daemon.api, Some(OPERATOR_TOKEN), DRILL, None).await?;
    ensure!(code == 201, "declare: {code} {body}");
    let id = run_id(&body)?;
    // It restores (tagged for the drill) before it tears down.
    poll(
        "the drill's estate up",
        Duration::from_secs(300),
        || async {
            let view = dr_view(&world).await?;
            let up = view
                .instances
                .iter()
                .filter(|i| {
                    i.tags.get("pilotlight:run") == Some(&id)
                        && i.tags.get("pilotlight:drill").map(String::as_str) == Some("true")
                        && i.state == "running"
                })
                .count();
            Ok((up == 15).then_some(()))
        },
    )
    .await?;
    // While the drill holds its estate, the drill zone answers every restored record under
    // the drill domain, with DR values.
    let body = poll("the drill restored", Duration::from_secs(300), || async {
        let body = run_status(daemon.api, &id).await?;
        let restored = report_of(&body)["steps"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["step_id"] == "drill/restored"));
        Ok(restored.then_some(body))
    })
    .await?;
    ensure!(
        state_of(&body) == "running",
        "the drill holds its estate: {body}"
    );
    let zones = run_zones(&world, &id).await?;
    ensure!(zones.len() == 1 && zones[0].1 == DRILL_DOMAIN, "{zones:?}");
    let dns_step = report_of(&body)["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step_id"] == "dns").cloned())
        .unwrap_or_default();
    let upserted = dns_step["detail"]["records_upserted"].as_u64().unwrap_or(0);
    let in_zone: Vec<ListedRecord> = zone_records(&world, &zones[0].0)
        .await?
        .into_iter()
        .filter(|r| r.record_type != "SOA" && r.record_type != "NS")
        .collect();
    ensure!(
        upserted > 0 && in_zone.len() as u64 == upserted,
        "{} records in the drill zone, {upserted} upserted: {dns_step}",
        in_zone.len()
    );
    let prod: Vec<&ListedRecord> = records_before.values().flatten().collect();
    let mut repointed = 0;
    for r in &in_zone {
        // Route 53 (the lab) lists names with or without the trailing dot.
        let original = r
            .name
            .trim_end_matches('.')
            .strip_suffix(DRILL_DOMAIN.trim_end_matches('.'))
            .unwrap_or_default()
            .trim_end_matches('.');
        ensure!(!original.is_empty(), "{r:?} is not under the drill domain");
        let prod_record = prod
            .iter()
            .find(|p| p.name.trim_end_matches('.') == original && p.record_type == r.record_type);
        ensure!(prod_record.is_some(), "{r:?} has no production original");
        // Values pointing at restored resources are the DR ones (others, e.g. an outside
        // name, are kept as the cutover keeps them).
        if prod_record.is_some_and(|p| p.values != r.values || p.alias != r.alias) {
            repointed += 1;
        }
    }
    ensure!(
        repointed * 2 > in_zone.len(),
        "only {repointed} of {} drill records point at DR resources",
        in_zone.len()
    );
    let (done, saw_restore_mode) = wait_run_final(daemon.api, &id).await?;
    ensure!(state_of(&done) == "succeeded", "{done}");
    ensure!(!saw_restore_mode, "a drill is not restore mode");

    let report = report_of(&done);
    let drill = &report["drill"];
    let rto = drill["rto_secs"].as_f64().unwrap_or_default();
    ensure!(
        rto > 0.0 && report["rto_secs"].as_f64() == Some(rto),
        "{report}"
    );
    let tiers = drill["tiers"].as_array().cloned().unwrap_or_default();
    ensure!(tiers.len() == 3, "{drill}");
    let ups: Vec<f64> = tiers
        .iter()
        .map(|t| t["up_after_secs"].as_f64().unwrap_or(-1.0))
        .collect();
    ensure!(
        ups.windows(2).all(|w| 0.0 < w[0] && w[0] <= w[1]) && ups[2] <= rto,
        "tiers come up in order within the RTO: {ups:?}, rto {rto}"
    );
    ensure!(drill["teardown_secs"].as_f64() > Some(0.0), "{drill}");
    ensure!(drill["deleted"].as_u64() > Some(0), "{drill}");
    ensure!(drill["left_behind"] == Value::Array(vec![]), "{drill}");
    ensure!(report["failed_items"] == Value::Array(vec![]), "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["step_id"].as_str()).collect())
        .unwrap_or_default();
    for step in [
        "dns",
        "drill/restored",
        "teardown/dns",
        "teardown/ec2",
        "teardown/verify",
    ] {
        ensure!(steps.contains(&step), "no step {step}: {steps:?}");
    }

    // Nothing tagged for the drill is left, and nothing else was removed.
    let left = tagged_for(&world, &id).await?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    let dr_after = dr_view(&world).await?;
    let live = |v: &crate::restore_support::DrView| {
        v.instances
            .iter()
            .filter(|i| i.state != "terminated")
            .count()
    };
    ensure!(
        live(&dr_after) == live(&dr_before),
        "the always-on instances are untouched"
    );
    ensure!(dr_after.volumes.len() == dr_before.volumes.len());
    ensure!(dr_after.lbs.len() == dr_before.lbs.len() && dr_after.dbs.len() == dr_before.dbs.len());
    ensure_deletes_match_creates(&world, true)?;
    // Production DNS is untouched.
    ensure!(
        all_records(&world, &estate).await? == records_before,
        "records changed"
    );

    // GET /v1/drills and the drill gauges.
    let (code, drills) = get(daemon.api, "/v1/drills", Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "{code} {drills}");
    let listed = &drills["drills"][0];
    ensure!(
        listed["id"] == id.as_str() && listed["rto_secs"].as_f64() == Some(rto),
        "{drills}"
    );
    ensure!(
        listed["state"] == "succeeded" && listed["scheduled"] == false,
        "{drills}"
    );
    poll("the drill gauges", Duration::from_secs(60), || async {
        let success = daemon
            .metric("pilotlight_drill_last_success_timestamp_seconds")
            .await?;
        let last = daemon.metric("pilotlight_drill_last_rto_seconds").await?;
        Ok((success > 0.0 && (last - rto).abs() < 0.01).then_some(()))
    })
    .await?;
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_killed_mid_teardown_finishes_cleanup_after_restart() -> Result<()> {
    let world = World::with_options(lab_options(1.0)).await?;
    seed(&world, &small_estate()).await?;
    let config = write_config(&world, &restore_config(&world, "", ""))?;
    let log = world.dir.path().join("daemon.log");
    let mut daemon = ChildDaemon::start(&config, &log).await?;
    daemon.wait_leading().await?;
    wait_plan_ready(daemon.api).await?;
    world.proxy().region_down(PRIMARY)?;
    // Deletions take effect at once but are answered late: a kill lands while the teardown is
    // under way, some deletions done, some sent and unanswered.
    for op in [
        "TerminateInstances",
        "DeleteLoadBalancer",
        "DeleteTargetGroup",
        "DeleteDBInstance",
    ] {
        world.proxy().add_fault(
            FaultRule::new(FaultAction::HoldResponse { ms: 700 })
                .region(DR)
                .operation(op),
        );
    }
    let (code, body) = declare(daemon.api, Some(OPERATOR_TOKEN), DRILL, Some("drill-kill")).await?;
    ensure!(code == 201, "declare: {code} {body}");
    let id = run_id(&body)?;

    // Twice: once the teardown started, and once it has deleted something.
    for done_at_least in [0, 2] {
        poll(
            "the teardown under way",
            Duration::from_secs(300),
            || async {
                let body = run_status(daemon.api, &id).await?;
                let done = report_of(&body)["counts"]["by_kind"]["teardown"]["done"]
                    .as_u64()
                    .unwrap_or(0);
                Ok((state_of(&body) == "tearing_down" && done >= done_at_least).then_some(()))
            },
        )
        .await?;
        daemon.kill9().await?;
        daemon = ChildDaemon::start(&config, &log).await?;
    }
    daemon.wait_leading().await?;
    let (done, _) = wait_run_final(daemon.api, &id).await?;
    ensure!(state_of(&done) == "succeeded", "{done}");
    let left = tagged_for(&world, &id).await?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    ensure_deletes_match_creates(&world, false)?;

    // A second drill, cancelled while it restores: it is torn down all the same and ends
    // `cancelled`.
    world.proxy().clear_faults();
    let (code, body) = declare(daemon.api, Some(OPERATOR_TOKEN), DRILL, None).await?;
    ensure!(code == 201, "declare: {code} {body}");
    let second = run_id(&body)?;
    poll(
        "the second drill running",
        Duration::from_secs(120),
        || async {
            let body = run_status(daemon.api, &second).await?;
            Ok((state_of(&body) == "running").then_some(()))
        },
    )
    .await?;
    let (code, cancelled) = post(
        daemon.api,
        &format!("/v1/restores/{second}/cancel"),
        Some(OPERATOR_TOKEN),
        &[],
        "{}",
    )
    .await?;
    ensure!(code == 200, "cancel: {code} {cancelled}");
    let (done, _) = wait_run_final(daemon.api, &second).await?;
    ensure!(state_of(&done) == "cancelled", "{done}");
    let left = tagged_for(&world, &second).await?;
    ensure!(
        left.is_empty(),
        "left behind by the cancelled drill: {left:?}"
    );
    daemon.kill9().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schedule_declares_a_drill_that_runs_and_cleans_up() -> Result<()> {
    let world = World::with_options(lab_options(1.0)).await?;
    seed(&world, &small_estate()).await?;
    // Every minute, tier 1 only: the first fire time comes within a minute.
    let daemon = world
        .start_daemon(&restore_config(
            &world,
            "",
            "[drill]\nschedule = \"* * * * *\"\ntiers = [1]\n",
        ))
        .await?;
    wait_plan_ready(daemon.api).await?;
    let (code, listed) = get(daemon.api, "/v1/drills", Some(VIEWER_TOKEN)).await?;
    ensure!(
        code == 200 && listed["schedule"]["cron"] == "* * * * *",
        "{listed}"
    );
    ensure!(
        listed["schedule"]["next_at_ms"].as_i64() > Some(0),
        "{listed}"
    );
    let next = daemon
        .metric("pilotlight_drill_next_scheduled_timestamp_seconds")
        .await?;
    ensure!(next > 0.0, "next scheduled drill gauge {next}");

    let drill = poll("a scheduled drill", Duration::from_secs(150), || async {
        let (_, listed) = get(daemon.api, "/v1/drills", Some(VIEWER_TOKEN)).await?;
        Ok(listed["drills"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["scheduled"] == true).cloned()))
    })
    .await?;
    let id = drill["id"].as_str().unwrap_or_default().to_owned();
    ensure!(drill["requested_by"] == "scheduler:drill", "{drill}");
    let (done, _) = wait_run_final(daemon.api, &id).await?;
    ensure!(state_of(&done) == "succeeded", "{done}");
    let tiers = report_of(&done)["drill"]["tiers"].clone();
    ensure!(
        tiers
            .as_array()
            .is_some_and(|t| t.len() == 1 && t[0]["tier"] == 1),
        "tier 1 only: {tiers}"
    );
    let left = tagged_for(&world, &id).await?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    daemon.stop().await?;
    Ok(())
}
