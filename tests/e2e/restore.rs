//! D1, D3–D11 end to end: a declared disaster restores a small estate in the DR region with
//! the primary region down — tier by tier, plan B when a type runs out, under a throttling
//! storm, after `kill -9` at twenty points, with an Aurora cluster and the record pointing at
//! it — through the real SDK, the lab's proxy and moto.
//!
//! Every test seeds the estate in the primary region, lets the daemon mirror the network, copy
//! the snapshots, AMIs and DB snapshots and write the inventory until the plan has no problems,
//! then takes the primary region down before declaring, and finally checks the DR region
//! against the plan ([`check_restore`]) and that the primary saw no mutating call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use pilotlight_core::plan::RestorePlan;
use pilotlight_lab::proxy::CapacityRule;
use pilotlight_lab::seed::{DbClusterSpec, DbNetworkSpec, RecordSpec, SeededEstate};
use pilotlight_lab::{EstateSpec, FaultAction, FaultRule};
use serde_json::Value;

use crate::restore_support::{
    APPROVER_TOKEN, ChildDaemon, SECOND_APPROVER_TOKEN, SplitMix, Substituted, approver_tokens,
    check_restore, declare, dns_name, done_items, dr_instances, ensure_succeeded,
    ensure_tiers_in_order, get, is_final, lab_options, post, report_of, restore_config,
    restore_plan, run_id, run_of, run_status, seed, seeded_record, small_estate, state_of,
    substitution, under_throttling_storm, wait_plan_ready, wait_run_final, write_config,
    zone_records,
};
use crate::support::{
    DR, OPERATOR_TOKEN, PRIMARY, RunningDaemon, VIEWER_TOKEN, World, assert_primary_untouched,
};

const DISASTER: &str = r#"{"mode": "disaster", "dry_run": false}"#;

/// The DR mutations a restore of the small estate makes (as the lab counts them).
pub(crate) const MUTATIONS: [&str; 13] = [
    "RunInstances",
    "CreateVolume",
    "AttachVolume",
    "CreateLoadBalancer",
    "ConfigureHealthCheck",
    "CreateTargetGroup",
    "CreateListener",
    "RegisterTargets",
    "RegisterInstancesWithLoadBalancer",
    "CreateDBSubnetGroup",
    "RestoreDBInstanceFromDBSnapshot",
    "ChangeResourceRecordSets",
    "AssociateVPCWithHostedZone",
];

/// A world whose estate is ready to restore, with the primary region down.
struct Ready {
    world: World,
    estate: SeededEstate,
    daemon: RunningDaemon,
    plan: RestorePlan,
    /// DR instances before the restore (the always-on services).
    instances_before: usize,
}

impl Ready {
    fn api(&self) -> SocketAddr {
        self.daemon.api
    }
}

/// Seeds `spec`, starts the daemon with `restore_keys` under `[restore]` and `tail`, waits for
/// a plan without problems, then takes the primary region down.
async fn ready(
    pending: f64,
    spec: &EstateSpec,
    restore_keys: &str,
    tail: impl FnOnce(&World) -> Result<String>,
) -> Result<Ready> {
    let world = World::with_options(lab_options(pending)).await?;
    let estate = seed(&world, spec).await?;
    let tail = tail(&world)?;
    let daemon = world
        .start_daemon(&restore_config(&world, restore_keys, &tail))
        .await?;
    let plan = restore_plan(&wait_plan_ready(daemon.api).await?)?;
    world.proxy().region_down(PRIMARY)?;
    let instances_before = dr_instances(&world).await?.len();
    Ok(Ready {
        world,
        estate,
        daemon,
        plan,
        instances_before,
    })
}

/// The plan covers all of the small estate: three tiers, both load balancers, both DBs, DNS.
fn ensure_whole_estate(plan: &RestorePlan) -> Result<()> {
    let tiers: Vec<u8> = plan.tiers.iter().map(|t| t.tier).collect();
    ensure!(tiers == [1, 2, 3], "tiers {tiers:?}");
    ensure!(
        plan.instance_count() == 15,
        "{} instances",
        plan.instance_count()
    );
    ensure!(plan.load_balancers.len() == 2);
    ensure!(plan.tiers.iter().map(|t| t.databases.len()).sum::<usize>() == 2);
    ensure!(
        plan.dns.records > 0 && plan.dns.zones.len() == 2,
        "{:?}",
        plan.dns
    );
    Ok(())
}

/// Declares a disaster as the operator; returns the run id.
async fn declare_disaster(api: SocketAddr) -> Result<String> {
    let (code, body) = declare(api, Some(OPERATOR_TOKEN), DISASTER, None).await?;
    ensure!(code == 201, "declare: {code} {body}");
    run_id(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_estate_restores_completely() -> Result<()> {
    let r = ready(1.0, &small_estate(), "", |_| Ok(String::new())).await?;
    ensure_whole_estate(&r.plan)?;
    let id = declare_disaster(r.api()).await?;
    let (done, saw_restore_mode) = wait_run_final(r.api(), &id).await?;
    ensure_succeeded(&done)?;
    ensure_tiers_in_order(&done)?;
    ensure!(saw_restore_mode, "/v1/status never showed restore mode");
    let report = report_of(&done);
    ensure!(report["rto_secs"].as_f64() > Some(0.0), "{report}");
    ensure!(report["api_calls"].as_u64() > Some(0), "{report}");
    ensure!(
        report["substitutions"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "no capacity shortage, no substitution: {report}"
    );

    // The run is over: restore mode is off again.
    let (_, st) = get(r.api(), "/v1/status", Some(VIEWER_TOKEN)).await?;
    ensure!(st["restore_mode"] == Value::Bool(false), "{st}");
    r.daemon.stop().await?;

    check_restore(&r.world, &r.plan, &id, r.instances_before, &[]).await?;
    // Records the plan leaves alone keep their values.
    let status = seeded_record(&r.estate, "example.com", "status")?;
    let zone = &r.estate.zones["example.com"];
    let listed = zone_records(&r.world, &zone.id).await?;
    let now = listed
        .iter()
        .find(|l| l.name == dns_name(&status.name) && l.record_type == "A")
        .ok_or_else(|| anyhow!("status record gone"))?;
    ensure!(
        now.values.iter().cloned().collect::<Vec<_>>() == status.values,
        "{now:?} vs {status:?}"
    );
    assert_primary_untouched(&r.world).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthy_gate_waits_for_status_checks_and_still_restores_in_tier_order() -> Result<()> {
    let r = ready(1.0, &small_estate(), "gate = \"healthy\"", |_| {
        Ok(String::new())
    })
    .await?;
    let id = declare_disaster(r.api()).await?;
    let (done, _) = wait_run_final(r.api(), &id).await?;
    ensure_succeeded(&done)?;
    ensure_tiers_in_order(&done)?;
    // Each tier waited for its instances' status checks: at least one DescribeInstanceStatus
    // per tier.
    let report = report_of(&done);
    let checks = report["calls"]["ec2:DescribeInstanceStatus"]["calls"]
        .as_u64()
        .unwrap_or(0);
    ensure!(
        checks >= 3,
        "{checks} status checks for three tiers: {report}"
    );
    r.daemon.stop().await?;
    check_restore(&r.world, &r.plan, &id, r.instances_before, &[]).await?;
    assert_primary_untouched(&r.world).await
}

/// The small estate plus Aurora cluster `ledger` (tier 1, in `prod`'s app subnets, one writer,
/// one cluster snapshot) and the private record `ledger.corp.example.com` → its writer
/// endpoint.
fn aurora_estate() -> Result<EstateSpec> {
    let mut spec = small_estate();
    spec.db_clusters = vec![DbClusterSpec {
        name: "ledger".into(),
        engine: "aurora-postgresql".into(),
        tier: 1,
        snapshots: 1,
        instances: 1,
        class: "db.r6g.large".into(),
        network: Some(DbNetworkSpec::new("prod", &["app-a", "app-b"], &["db"])),
    }];
    spec.zones
        .iter_mut()
        .find(|z| z.name == "corp.example.com")
        .ok_or_else(|| anyhow!("the sample has the corp.example.com zone"))?
        .records
        .push(RecordSpec::DbCname {
            name: "ledger".into(),
            db: "ledger".into(),
            ttl: 300,
        });
    Ok(spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aurora_cluster_restores_with_its_writer_and_the_cname_follows() -> Result<()> {
    let spec = aurora_estate()?;
    let r = ready(1.0, &spec, "", |_| Ok(String::new())).await?;
    // The plan: the cluster in tier 1 with its writer, from its DR cluster snapshot copy.
    let clusters: Vec<_> = r.plan.tiers.iter().flat_map(|t| &t.clusters).collect();
    ensure!(clusters.len() == 1, "{clusters:?}");
    let planned = clusters[0];
    ensure!(
        planned.db_cluster_id == "ledger" && planned.tier == 1,
        "{planned:?}"
    );
    ensure!(planned.snapshot.dr_id().is_some(), "{planned:?}");
    let writer = &r.estate.db_clusters["ledger"].members[0];
    ensure!(
        planned.members.len() == 1
            && planned.members[0].db_instance_id == *writer
            && planned.members[0].writer,
        "{planned:?}"
    );
    ensure!(r.plan.calls.get("rds:RestoreDBClusterFromSnapshot") == Some(&1));
    ensure!(r.plan.calls.get("rds:CreateDBInstance") == Some(&1));
    // The member is no DB restore of its own.
    ensure!(
        r.plan
            .tiers
            .iter()
            .flat_map(|t| &t.databases)
            .all(|d| d.db_instance_id != *writer)
    );

    let id = declare_disaster(r.api()).await?;
    let (done, _) = wait_run_final(r.api(), &id).await?;
    ensure_succeeded(&done)?;
    r.daemon.stop().await?;

    // Everything planned is there, the cluster and its member included, once each.
    let checked = check_restore(&r.world, &r.plan, &id, r.instances_before, &[]).await?;
    let cluster = checked
        .view
        .clusters
        .iter()
        .find(|c| c.tags.get("pilotlight:source").map(String::as_str) == Some("ledger"))
        .ok_or_else(|| anyhow!("no restored cluster: {:?}", checked.view.clusters))?;
    ensure!(
        cluster.tags.get("pilotlight:managed").map(String::as_str) == Some("true"),
        "{cluster:?}"
    );
    ensure!(cluster.status == "available", "{cluster:?}");
    let member = checked
        .view
        .dbs
        .iter()
        .find(|d| d.tags.get("pilotlight:source") == Some(writer))
        .ok_or_else(|| anyhow!("no restored member: {:?}", checked.view.dbs))?;
    ensure!(
        member.status == "available" && member.cluster.as_deref() == Some(cluster.id.as_str()),
        "{member:?}"
    );
    ensure!(
        cluster.members == [(member.id.clone(), true)],
        "{:?}",
        cluster.members
    );

    // The CNAME now names the restored cluster's writer endpoint, in the DR region.
    let endpoint = cluster
        .endpoint
        .clone()
        .ok_or_else(|| anyhow!("the restored cluster has no endpoint"))?;
    ensure!(endpoint.contains(DR), "{endpoint}");
    let zone = &r.estate.zones["corp.example.com"];
    let record = seeded_record(&r.estate, "corp.example.com", "ledger")?;
    ensure!(
        record
            .values
            .iter()
            .all(|v| dns_name(v) != dns_name(&endpoint)),
        "the seeded record already named the DR endpoint: {record:?}"
    );
    let listed = zone_records(&r.world, &zone.id).await?;
    let now = listed
        .iter()
        .find(|l| l.name == dns_name(&record.name) && l.record_type == "CNAME")
        .ok_or_else(|| anyhow!("ledger record gone"))?;
    let values: Vec<String> = now.values.iter().map(|v| dns_name(v)).collect();
    ensure!(values == [dns_name(&endpoint)], "{values:?} vs {endpoint}");
    assert_primary_untouched(&r.world).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_b_doubles_the_count_and_lb_and_dns_follow() -> Result<()> {
    // The web fleet (behind shop-alb, records web-01/web-02) on c5.xlarge, no data volumes.
    let mut spec = small_estate();
    let web = spec
        .fleets
        .iter_mut()
        .find(|f| f.name == "web")
        .ok_or_else(|| anyhow!("the sample has a web fleet"))?;
    web.instance_type = "c5.xlarge".to_owned();
    web.data_volumes.clear();
    let r = ready(1.0, &spec, "", |_| Ok(String::new())).await?;
    // No c5.xlarge anywhere in the DR region.
    r.world
        .proxy()
        .add_capacity_rule(CapacityRule::in_region("c5.xlarge", "us-west-2", 0))?;

    let id = declare_disaster(r.api()).await?;
    let (done, _) = wait_run_final(r.api(), &id).await?;
    ensure_succeeded(&done)?;
    let sub = substitution(&done, "c5.xlarge", "c5.large")
        .ok_or_else(|| anyhow!("no c5.xlarge → c5.large substitution: {done}"))?;
    ensure!(
        sub["to_count"].as_u64() == sub["from_count"].as_u64().map(|n| 2 * n),
        "the count doubles: {sub}"
    );
    let refused: u64 = r
        .world
        .proxy()
        .capacity_rules()
        .iter()
        .map(|c| c.refused)
        .sum();
    ensure!(refused > 0, "the capacity rule never refused a launch");
    r.daemon.stop().await?;

    let checked = check_restore(
        &r.world,
        &r.plan,
        &id,
        r.instances_before,
        &[Substituted {
            from: "c5.xlarge".into(),
            to: "c5.large".into(),
            factor: 2,
        }],
    )
    .await?;
    // shop-alb's target group holds the eight substituted instances.
    let web_primaries = &r.estate.fleets["web"];
    let web_dr: std::collections::BTreeSet<String> = web_primaries
        .iter()
        .flat_map(|p| checked.of(&p.id).iter().map(|i| i.id.clone()))
        .collect();
    ensure!(web_dr.len() == 8, "{web_dr:?}");
    ensure!(
        checked
            .view
            .target_groups
            .iter()
            .any(|tg| tg.targets == web_dr),
        "no target group holds the substituted instances: {:?}",
        checked.view.target_groups
    );
    // web-01 resolves to both of its stand-ins.
    let zone = &r.estate.zones["corp.example.com"];
    let record = seeded_record(&r.estate, "corp.example.com", "web-01")?;
    let listed = zone_records(&r.world, &zone.id).await?;
    let now = listed
        .iter()
        .find(|l| l.name == dns_name(&record.name) && l.record_type == "A")
        .ok_or_else(|| anyhow!("web-01 gone"))?;
    let want: std::collections::BTreeSet<String> = checked
        .of(&web_primaries[0].id)
        .iter()
        .filter_map(|i| i.private_ip.clone())
        .collect();
    ensure!(want.len() == 2 && now.values == want, "{now:?} vs {want:?}");
    assert_primary_untouched(&r.world).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_storm_still_completes() -> Result<()> {
    let r = ready(1.0, &small_estate(), "", |_| Ok(String::new())).await?;
    let id = declare_disaster(r.api()).await?;
    let (done, storm) =
        under_throttling_storm(r.world.proxy(), 30, wait_run_final(r.api(), &id)).await;
    let (done, _) = done?;
    ensure!(
        storm.throttled * 100 >= storm.calls * 20 && storm.throttled > 0,
        "the storm throttled {} of {} calls",
        storm.throttled,
        storm.calls
    );
    ensure_succeeded(&done)?;
    // The report counts the calls that still failed with throttling after the SDK's own
    // retries (most throttled attempts succeed on retry), each retried by the executor.
    let report = report_of(&done);
    ensure!(
        report["throttled"].as_u64() <= Some(storm.throttled),
        "the report claims more throttling than the lab sent: {report}"
    );
    // It also counts the attempts the SDK retried: at 30 % some are certain, and each one
    // (like each call that stayed throttled) is a throttled answer of the lab's.
    let retries = report["sdk_retries"].as_u64().unwrap_or(0);
    let throttled = report["throttled"].as_u64().unwrap_or(0);
    ensure!(
        retries > 0 && retries + throttled <= storm.throttled,
        "SDK retries {retries} + throttled {throttled} against the lab's {} throttled answers: {report}",
        storm.throttled
    );
    ensure!(
        report["failed_items"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );
    r.daemon.stop().await?;
    check_restore(&r.world, &r.plan, &id, r.instances_before, &[]).await?;
    assert_primary_untouched(&r.world).await
}

/// The runs `GET /v1/restores` lists.
async fn listed_runs(api: SocketAddr) -> Result<Vec<Value>> {
    let (code, body) = get(api, "/v1/restores", Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "GET /v1/restores: {code} {body}");
    Ok(body
        .as_array()
        .or_else(|| body["runs"].as_array())
        .cloned()
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declare_needs_operator_and_approval_needs_a_second_approver() -> Result<()> {
    let r = ready(
        1.0,
        &small_estate(),
        "require_approval = true",
        approver_tokens,
    )
    .await?;
    let api = r.api();
    // Only tier 3: the approved run proceeds quickly.
    let body = r#"{"mode": "disaster", "tiers": [3]}"#;

    let (code, answer) = declare(api, None, body, None).await?;
    ensure!(code == 401, "no token: {code} {answer}");
    let (code, answer) = declare(api, Some("not-a-token-0123456789"), body, None).await?;
    ensure!(code == 401, "unknown token: {code} {answer}");
    let (code, answer) = declare(api, Some(VIEWER_TOKEN), body, None).await?;
    ensure!(code == 403, "a viewer cannot declare: {code} {answer}");
    ensure!(
        listed_runs(api).await?.is_empty(),
        "a refused declare made a run"
    );

    // An approver declares (approvers may do what operators do).
    let (code, first) = declare(api, Some(APPROVER_TOKEN), body, Some("dr-2026-01")).await?;
    ensure!(code == 201, "declare: {code} {first}");
    let id = run_id(&first)?;
    ensure!(first["run"]["state"] == "awaiting_approval", "{first}");
    let (code, again) = declare(api, Some(APPROVER_TOKEN), body, Some("dr-2026-01")).await?;
    ensure!(
        code == 200 && run_id(&again)? == id,
        "the same key gives the same run: {code} {again}"
    );
    let (code, answer) = declare(api, Some(OPERATOR_TOKEN), DISASTER, None).await?;
    ensure!(
        code == 409,
        "a second disaster while one is active: {code} {answer}"
    );
    ensure!(listed_runs(api).await?.len() == 1);

    let approve = format!("/v1/restores/{id}/approve");
    let (code, answer) = post(api, &approve, Some(OPERATOR_TOKEN), &[], "{}").await?;
    ensure!(code == 403, "an operator cannot approve: {code} {answer}");
    let (code, answer) = post(api, &approve, Some(APPROVER_TOKEN), &[], "{}").await?;
    ensure!(
        code == 403,
        "the declaring principal cannot approve: {code} {answer}"
    );
    let (code, answer) = post(api, &approve, None, &[], "{}").await?;
    ensure!(code == 401, "{code} {answer}");
    // Nothing happens while the run waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = run_status(api, &id).await?;
    ensure!(state_of(&waiting) == "awaiting_approval", "{waiting}");
    ensure!(
        dr_instances(&r.world).await?.len() == r.instances_before,
        "nothing launched before approval"
    );

    let (code, answer) = post(api, &approve, Some(SECOND_APPROVER_TOKEN), &[], "{}").await?;
    ensure!(code == 200, "a second approver approves: {code} {answer}");
    let (code, answer) = post(api, &approve, Some(SECOND_APPROVER_TOKEN), &[], "{}").await?;
    ensure!(code == 409, "approved already: {code} {answer}");
    let (done, _) = wait_run_final(api, &id).await?;
    ensure_succeeded(&done)?;
    ensure!(run_of(&done)["approved_by"] == "abe", "{done}");

    let (_, audit) = get(api, "/v1/audit", Some(VIEWER_TOKEN)).await?;
    let audit = audit.to_string();
    for action in ["restore.declare", "restore.approve"] {
        ensure!(audit.contains(action), "{action} not audited: {audit}");
    }
    assert_primary_untouched(&r.world).await?;
    r.daemon.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_twenty_points_finishes_without_duplicates() -> Result<()> {
    const KILLS: usize = 20;
    // Longer pending times: the run spans many incarnations of the daemon.
    let world = World::with_options(lab_options(12.0)).await?;
    seed(&world, &small_estate()).await?;
    let config = write_config(&world, &restore_config(&world, "", ""))?;
    let log = world.dir.path().join("daemon.log");
    let mut daemon = ChildDaemon::start(&config, &log).await?;
    daemon.wait_leading().await?;
    let plan = restore_plan(&wait_plan_ready(daemon.api).await?)?;
    ensure_whole_estate(&plan)?;
    world.proxy().region_down(PRIMARY)?;
    // Every mutation takes effect at once but is answered 400 ms later: a kill in that window
    // leaves "requested, AWS acted, nobody heard", the case the journal exists for.
    for op in MUTATIONS {
        world.proxy().add_fault(
            FaultRule::new(FaultAction::HoldResponse { ms: 400 })
                .region(DR)
                .operation(op),
        );
    }
    let instances_before = dr_instances(&world).await?.len();
    let (code, declared) = declare(
        daemon.api,
        Some(OPERATOR_TOKEN),
        DISASTER,
        Some("kill-9-test"),
    )
    .await?;
    ensure!(code == 201, "declare: {code} {declared}");
    let id = run_id(&declared)?;

    let mut rng = SplitMix::new(0x5EED_D10A);
    let mut kills_mid_run = 0;
    let mut last_done = 0;
    let mut points = Vec::new();
    for _ in 0..KILLS {
        let started = Instant::now();
        let point = match rng.below(10) {
            // Some time after the daemon started, leading or not yet.
            0..2 => {
                let ms = 100 + rng.below(2400);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("{ms} ms after start")
            }
            // Some time after it took the lease (its executor resumed the run).
            2..7 => {
                daemon.wait_leading().await?;
                let ms = 20 + rng.below(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("{ms} ms after leading")
            }
            // Once the journal moved on by k items (or 3 s passed), plus a little.
            _ => {
                daemon.wait_leading().await?;
                let k = 1 + rng.below(2);
                let deadline = Instant::now() + Duration::from_secs(3);
                while Instant::now() < deadline {
                    let body = run_status(daemon.api, &id).await?;
                    if is_final(state_of(&body)) || done_items(&body) >= last_done + k {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let ms = rng.below(150);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("{k} items + {ms} ms")
            }
        };
        let body = run_status(daemon.api, &id).await.unwrap_or(Value::Null);
        let state = state_of(&body).to_owned();
        if is_final(&state) {
            break;
        }
        last_done = last_done.max(done_items(&body));
        daemon.kill9().await?;
        kills_mid_run += 1;
        points.push(format!(
            "{point} ({} ms, {state}, {last_done} done)",
            started.elapsed().as_millis()
        ));
        daemon = ChildDaemon::start(&config, &log).await?;
    }
    eprintln!("kill points: {points:#?}");
    daemon.wait_leading().await?;
    let (done, _) = wait_run_final(daemon.api, &id).await?;
    ensure_succeeded(&done)?;
    ensure!(
        kills_mid_run == KILLS,
        "only {kills_mid_run} kills landed before the run finished: {points:?}"
    );
    daemon.kill9().await?;
    check_restore(&world, &plan, &id, instances_before, &[]).await?;
    assert_primary_untouched(&world).await
}

/// Whether the DR region holds the DB cluster (`cluster = true`) or DB instance `id`, asked
/// through the world's uncounted door.
async fn dr_rds_has(world: &World, cluster: bool, id: &str) -> bool {
    let rds = world.clients(DR).await.rds;
    // Not found is an error answer: absent.
    if cluster {
        rds.describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
            .is_ok_and(|o| !o.db_clusters().is_empty())
    } else {
        rds.describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .is_ok_and(|o| !o.db_instances().is_empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aurora_restore_killed_after_aws_acted_adopts_instead_of_sending_again() -> Result<()> {
    let world = World::with_options(lab_options(1.0)).await?;
    let estate = seed(&world, &aurora_estate()?).await?;
    let config = write_config(&world, &restore_config(&world, "", ""))?;
    let log = world.dir.path().join("daemon.log");
    let mut daemon = ChildDaemon::start(&config, &log).await?;
    daemon.wait_leading().await?;
    let plan = restore_plan(&wait_plan_ready(daemon.api).await?)?;
    world.proxy().region_down(PRIMARY)?;
    // Both Aurora mutations take effect at once and are answered only 5 s later: the daemon is
    // killed in between, once the DR region shows what the call made.
    let held: Vec<(&str, bool, String, pilotlight_lab::FaultId)> = [
        ("RestoreDBClusterFromSnapshot", true, "ledger".to_owned()),
        (
            "CreateDBInstance",
            false,
            estate.db_clusters["ledger"].members[0].clone(),
        ),
    ]
    .into_iter()
    .map(|(op, cluster, id)| {
        let rule = FaultRule::new(FaultAction::HoldResponse { ms: 5000 })
            .region(DR)
            .operation(op);
        (op, cluster, id, world.proxy().add_fault(rule))
    })
    .collect();
    let instances_before = dr_instances(&world).await?.len();
    let (code, declared) = declare(daemon.api, Some(OPERATOR_TOKEN), DISASTER, None).await?;
    ensure!(code == 201, "declare: {code} {declared}");
    let id = run_id(&declared)?;

    for (op, cluster, made, _) in &held {
        let start = Instant::now();
        while !dr_rds_has(&world, *cluster, made).await {
            ensure!(
                start.elapsed() < Duration::from_secs(120),
                "{op} never made {made}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // AWS acted; its answer is still held: nobody heard.
        daemon.kill9().await?;
        daemon = ChildDaemon::start(&config, &log).await?;
        daemon.wait_leading().await?;
    }
    let (done, _) = wait_run_final(daemon.api, &id).await?;
    ensure_succeeded(&done)?;
    daemon.kill9().await?;

    // Each mutation went out once: the restarted daemon found what the first call made.
    for (op, _, made, rule) in &held {
        let sent = world.proxy().fault_hits(*rule);
        ensure!(sent == 1, "{op} for {made} was sent {sent} times");
    }
    let text = std::fs::read_to_string(&log)?;
    for adopted in [
        "Aurora cluster already restored; adopted",
        "DB instance already restored; adopted",
    ] {
        ensure!(text.contains(adopted), "the log never says {adopted:?}");
    }
    check_restore(&world, &plan, &id, instances_before, &[]).await?;
    assert_primary_untouched(&world).await
}
