//! R5, R8–R10, D2 end to end: the inventory document in the DR bucket, readiness naming what a
//! restore would lack, tenants, and plans and dry runs made with the primary region
//! unreachable — through the real SDK, the lab's proxy and moto, with the daemon in-process.

use std::time::{Duration, SystemTime};

use anyhow::{Result, ensure};
use pilotlight_aws::capture::{CaptureOptions, PrimaryHandles, capture_inventory};
use pilotlight_core::inventory::Inventory;
use pilotlight_lab::seed::metrics::{Profile, UtilisationSeries, put_utilisation};
use pilotlight_lab::seed::{EstateSpec, SeededEstate, seed_estate};
use pilotlight_lab::{FaultAction, FaultRule};
use serde_json::Value;

use crate::support::{
    DR, OPERATOR_TOKEN, PRIMARY, RunningDaemon, VIEWER_TOKEN, World, assert_primary_untouched, poll,
};

/// Seeds the sample estate through the uncounted door.
async fn seed(world: &World, spec: &EstateSpec) -> Result<SeededEstate> {
    let primary = world.clients(PRIMARY).await;
    let dr = world.clients(DR).await;
    Ok(seed_estate(&primary, &dr, spec).await?)
}

/// An inventory bucket name unique to this world's account (S3 names are global).
fn bucket(world: &World) -> String {
    format!("pl-inv-{}", world.session.account_id())
}

fn inventory_config(world: &World, utilisation: bool) -> String {
    format!(
        "[inventory]\nbucket = \"{}\"\nutilisation = {utilisation}\nutilisation_window_days = 2\nutilisation_period_secs = 3600\n",
        bucket(world)
    )
}

/// The latest document, read from the DR bucket through the door and decoded.
async fn read_document(world: &World, key: &str) -> Result<Inventory> {
    let s3 = world.clients(DR).await.s3;
    let object = s3
        .get_object()
        .bucket(bucket(world))
        .key(key)
        .send()
        .await?;
    let bytes = object.body.collect().await?.into_bytes();
    Ok(pilotlight_aws::s3::decode_inventory(key, &bytes)?)
}

async fn objects_in_bucket(world: &World) -> Result<usize> {
    let s3 = world.clients(DR).await.s3;
    let out = s3.list_objects_v2().bucket(bucket(world)).send().await?;
    Ok(out.contents().len())
}

/// Waits for the first inventory document (the capture runs when the daemon starts leading).
async fn wait_inventory(daemon: &RunningDaemon) -> Result<Value> {
    poll(
        "the first inventory document",
        Duration::from_secs(120),
        || async {
            let (code, body) = daemon.get("/v1/inventory", Some(VIEWER_TOKEN)).await?;
            Ok((code == 200).then_some(body))
        },
    )
    .await
}

fn failing_ids(report: &Value, check: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == check))
        .and_then(|c| c["failing"].as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn check_ok(report: &Value, check: &str) -> Option<bool> {
    report["checks"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == check)?["ok"]
        .as_bool()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inventory_round_trips_and_an_unchanged_estate_writes_nothing() -> Result<()> {
    let world = World::new(50.0).await?;
    let estate = seed(&world, &EstateSpec::sample()).await?;
    // Two days of hourly CPU (and, for one, memory) history for two instances.
    let mut fleets = estate.fleets.values().flatten();
    let (a, b) = (
        fleets.next().expect("a fleet instance").id.clone(),
        fleets.next().expect("a second fleet instance").id.clone(),
    );
    let series = [
        UtilisationSeries {
            instance_id: a.clone(),
            days: 2,
            period_secs: 3600,
            cpu: Profile {
                base_pct: 5.0,
                peak_pct: 72.5,
                seed: 1,
            },
            memory: Some(Profile {
                base_pct: 30.0,
                peak_pct: 61.0,
                seed: 2,
            }),
        },
        UtilisationSeries {
            instance_id: b.clone(),
            days: 2,
            period_secs: 3600,
            cpu: Profile {
                base_pct: 2.0,
                peak_pct: 18.0,
                seed: 3,
            },
            memory: None,
        },
    ];
    put_utilisation(
        &world.clients(PRIMARY).await.cloudwatch,
        &series,
        SystemTime::now(),
    )
    .await?;

    let daemon = world.start_daemon(&inventory_config(&world, true)).await?;
    // The first capture runs at start.
    let pointer = wait_inventory(&daemon).await?;
    let key = pointer["key"].as_str().unwrap_or_default().to_owned();
    let doc = read_document(&world, &key).await?;
    ensure!(
        doc.digest() == pointer["digest"].as_str().unwrap_or_default(),
        "the stored digest is the document's"
    );
    // What the seeder made is in the document.
    let fleet_instances: usize = estate.fleets.values().map(Vec::len).sum();
    let image_instances: usize = estate.images.values().map(|i| i.instances.len()).sum();
    ensure!(
        doc.instances.len() == fleet_instances + image_instances,
        "instances: {} captured, {fleet_instances} fleet + {image_instances} image instances seeded",
        doc.instances.len()
    );
    ensure!(
        doc.classic_load_balancers.len() + doc.load_balancers.len() == estate.load_balancers.len()
    );
    ensure!(doc.hosted_zones.len() == estate.zones.len());
    for zone in estate.zones.values() {
        let captured = doc
            .hosted_zones
            .iter()
            .find(|z| z.id == zone.id)
            .expect("every seeded zone is captured");
        for record in &zone.records {
            ensure!(
                captured
                    .records
                    .iter()
                    .any(|r| r.name == record.name && r.record_type == record.record_type),
                "record {} {} is captured",
                record.name,
                record.record_type
            );
        }
    }
    ensure!(doc.db_instances.len() == estate.db_instances.len());
    ensure!(
        doc.listener_certificate_arns().len() == doc.certificates.len()
            && !doc.certificates.is_empty()
    );
    let util_a = doc.utilisation.get(&a).expect("utilisation of a");
    ensure!(
        (util_a.cpu_peak_pct - 72.5).abs() < 1e-6,
        "CPU peak of a: {util_a:?}"
    );
    ensure!(util_a.mem_peak_pct.is_some_and(|m| (m - 61.0).abs() < 1e-6));
    let util_b = doc.utilisation.get(&b).expect("utilisation of b");
    ensure!((util_b.cpu_peak_pct - 18.0).abs() < 1e-6 && util_b.mem_peak_pct.is_none());

    // Read back identical: an independent capture of the same estate has the same digest.
    let config = world.config(&inventory_config(&world, true))?;
    let sdk = pilotlight_aws::sdk::static_sdk_config(&world.door_endpoint(), PRIMARY).await;
    let handles = PrimaryHandles::new(&sdk, crate::support::aws_ctx());
    let mut fresh = capture_inventory(&handles, &CaptureOptions::from_config(&config)).await?;
    fresh.schema_version = doc.schema_version;
    fresh.utilisation = doc.utilisation.clone();
    fresh.normalize();
    ensure!(
        fresh.digest() == doc.digest(),
        "a fresh capture of the unchanged estate equals the stored document"
    );

    // Unchanged estate: another cycle writes nothing.
    let puts_before = world.proxy().counters().count("s3", "PutObject", DR);
    let status = daemon.run("inventory").await?;
    ensure!(status["last_report"]["changed"] == false, "{status}");
    let (_, again) = daemon.get("/v1/inventory", Some(VIEWER_TOKEN)).await?;
    ensure!(again["version"] == pointer["version"], "{again}");
    ensure!(world.proxy().counters().count("s3", "PutObject", DR) == puts_before);
    ensure!(objects_in_bucket(&world).await? == 1);
    ensure!(
        daemon
            .metric("pilotlight_inventory_captures_total{outcome=\"unchanged\"}")
            .await?
            == 1.0
    );

    // A change in the estate writes a new version.
    let ec2 = world.ec2(PRIMARY).await;
    ec2.create_tags()
        .resources(&a)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("dr:cluster")
                .value("moved")
                .build(),
        )
        .send()
        .await?;
    let status = daemon.run("inventory").await?;
    ensure!(status["last_report"]["changed"] == true, "{status}");
    let (_, newer) = daemon.get("/v1/inventory", Some(VIEWER_TOKEN)).await?;
    ensure!(newer["version"].as_i64() > pointer["version"].as_i64());
    let doc2 = read_document(&world, newer["key"].as_str().unwrap_or_default()).await?;
    ensure!(
        doc2.instances
            .iter()
            .any(|i| i.id == a && i.cluster.as_deref() == Some("moved"))
    );
    assert_primary_untouched(&world).await?;
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_names_a_missing_ami_copy_and_a_missing_certificate() -> Result<()> {
    let world = World::new(50.0).await?;
    let mut spec = EstateSpec::sample();
    let lonely = spec
        .certificates
        .last_mut()
        .expect("the sample has certificates");
    lonely.dr_counterpart = false;
    let lonely_name = lonely.name.clone();
    let estate = seed(&world, &spec).await?;
    let missing_cert = estate.certificates[&lonely_name].primary_arn.clone();

    let extra = format!(
        "{}\n[readiness]\nalways_on = [\"directory\", \"build\", \"monitoring\"]\n",
        inventory_config(&world, false)
    );
    let daemon = world.start_daemon(&extra).await?;
    let (code, body) = daemon.get("/v1/readiness", Some(VIEWER_TOKEN)).await?;
    // Readiness runs at start; until its first evaluation the API says so.
    ensure!(
        (code == 503 && body["error"]["code"] == "not_evaluated")
            || (code == 200 && body["evaluated_at_ms"].as_i64() > Some(0)),
        "before or after the first run: {code} {body}"
    );
    wait_inventory(&daemon).await?;
    let status = daemon.run("readiness").await?;
    ensure!(status["last_outcome"] == "success", "{status}");
    let (code, report) = daemon.get("/v1/readiness", Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "{report}");
    ensure!(report["ready"] == false, "{report}");

    // Copies are off: every AMI in use is named as lacking its DR copy.
    let amis = failing_ids(&report, "ami_copies");
    for image in estate.images.values().filter(|i| !i.instances.is_empty()) {
        ensure!(
            amis.contains(&image.id),
            "AMI {} named in {amis:?}",
            image.id
        );
    }
    // The one certificate without a DR counterpart is named, and only it.
    ensure!(
        failing_ids(&report, "certificates") == vec![missing_cert.clone()],
        "{report}"
    );
    // The always-on services run in the DR region.
    ensure!(check_ok(&report, "always_on") == Some(true), "{report}");
    ensure!(check_ok(&report, "inventory") == Some(true), "{report}");
    ensure!(daemon.metric("pilotlight_readiness_ready").await? == 0.0);
    ensure!(
        daemon
            .metric("pilotlight_readiness_check_ok{check=\"certificates\"}")
            .await?
            == 0.0
    );
    ensure!(
        daemon
            .metric("pilotlight_readiness_failing_items{check=\"certificates\"}")
            .await?
            == 1.0
    );
    ensure!(
        daemon
            .metric("pilotlight_plan_rto_estimate_seconds")
            .await?
            > 0.0
    );
    assert_primary_untouched(&world).await?;
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_and_dry_run_work_with_the_primary_unreachable() -> Result<()> {
    let world = World::new(50.0).await?;
    let estate = seed(&world, &EstateSpec::sample()).await?;
    let tenants = "[[tenants]]\nname = \"acme\"\nclusters = [\"web\", \"shared\"]\n";
    let extra = format!("{}\n{tenants}", inventory_config(&world, false));
    let daemon = world.start_daemon(&extra).await?;
    wait_inventory(&daemon).await?;
    let (_, whole_before) = daemon.get("/v1/plan", Some(VIEWER_TOKEN)).await?;
    daemon.stop().await?;

    // The primary region goes dark: every call to it fails.
    world.proxy().add_fault(FaultRule {
        region: Some(PRIMARY.to_owned()),
        ..FaultRule::new(FaultAction::ServerError { status: 503 })
    });
    // A fresh process: nothing cached in memory, the plan must come from the DR bucket.
    let daemon = world.start_daemon(&extra).await?;
    let (code, plan) = daemon.get("/v1/plan", Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "plan with the primary gone: {code} {plan}");
    ensure!(
        plan["restore"]["calls"] == whole_before["restore"]["calls"]
            && plan["inventory_version"] == whole_before["inventory_version"],
        "the same plan from the DR bucket: {plan}"
    );
    let instances: u64 = plan["restore"]["tiers"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["instances"].as_u64()).sum())
        .unwrap_or(0);
    let fleet_instances: usize = estate.fleets.values().map(Vec::len).sum();
    let image_instances: usize = estate.images.values().map(|i| i.instances.len()).sum();
    ensure!(
        instances as usize == fleet_instances + image_instances,
        "{plan}"
    );
    ensure!(plan["restore"]["schedule"]["total_secs"].as_f64() > Some(0.0));
    ensure!(
        plan["restore"]["schedule"]["lower_bound"]["secs"].as_f64()
            <= plan["restore"]["schedule"]["total_secs"].as_f64()
    );

    // Scoped to a tenant: fewer instances, the tenant's clusters only.
    let (code, scoped) = daemon
        .get("/v1/plan?tenants=acme", Some(VIEWER_TOKEN))
        .await?;
    ensure!(code == 200, "{scoped}");
    ensure!(
        scoped["capacity"]["total"]["count"].as_u64() < plan["capacity"]["total"]["count"].as_u64()
    );
    let (code, body) = daemon
        .get("/v1/plan?tenants=nobody", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        code == 400
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nobody")),
        "{body}"
    );

    // The dry run answers the same plan and is audited.
    let (code, dry) = daemon
        .post(
            "/v1/restores",
            Some(OPERATOR_TOKEN),
            r#"{"mode": "disaster", "dry_run": true, "tiers": [1]}"#,
        )
        .await?;
    ensure!(code == 200, "{dry}");
    ensure!(
        dry["plan"]["restore"]["tiers"].as_array().map(Vec::len) == Some(1),
        "{dry}"
    );
    let (code, body) = daemon
        .post(
            "/v1/restores",
            Some(VIEWER_TOKEN),
            r#"{"mode": "disaster", "dry_run": true}"#,
        )
        .await?;
    ensure!(code == 403, "a viewer cannot declare: {body}");
    let (code, body) = daemon
        .post(
            "/v1/restores",
            Some(OPERATOR_TOKEN),
            r#"{"mode": "sideways", "dry_run": true}"#,
        )
        .await?;
    ensure!(code == 400, "{body}");
    let (_, audit) = daemon.get("/v1/audit", Some(VIEWER_TOKEN)).await?;
    ensure!(audit.to_string().contains("restore.dry_run"), "{audit}");

    // The CLI shows the same plan as a table and as JSON.
    let token = world.dir.path().join("cli.token");
    std::fs::write(&token, VIEWER_TOKEN)?;
    let run_cli = |json: bool| {
        let mut cmd = std::process::Command::new(crate::support::pilotlight_bin()?);
        cmd.args([
            "plan",
            "--api",
            &format!("http://{}", daemon.api),
            "--token-file",
        ])
        .arg(&token);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output()?;
        ensure!(
            out.status.success(),
            "pilotlight plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let table = run_cli(false)?;
    ensure!(table.contains("Estimated restore time"), "{table}");
    ensure!(table.contains("ec2:RunInstances"), "{table}");
    let json: Value = serde_json::from_str(&run_cli(true)?)?;
    ensure!(json["restore"]["calls"] == plan["restore"]["calls"]);

    // The daemon still cannot capture (the primary is gone), and says so.
    let status = daemon.run("inventory").await.ok();
    ensure!(
        status.is_none_or(|s| s["last_outcome"] != "success"),
        "a capture cannot succeed with the primary unreachable"
    );
    world.proxy().clear_faults();
    assert_primary_untouched(&world).await?;
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_are_managed_through_the_api_and_config_tenants_are_read_only() -> Result<()> {
    let world = World::new(50.0).await?;
    let extra = "[[tenants]]\nname = \"acme\"\nclusters = [\"web\"]\n";
    let daemon = world.start_daemon(extra).await?;
    let (code, body) = daemon
        .http_put(
            "/v1/tenants/globex",
            Some(OPERATOR_TOKEN),
            r#"{"clusters": ["search", "shared"]}"#,
        )
        .await?;
    ensure!(code == 201, "{body}");
    let (code, body) = daemon
        .http_put(
            "/v1/tenants/globex",
            Some(OPERATOR_TOKEN),
            r#"{"clusters": ["search"]}"#,
        )
        .await?;
    ensure!(code == 200, "{body}");
    let (code, body) = daemon
        .http_put(
            "/v1/tenants/acme",
            Some(OPERATOR_TOKEN),
            r#"{"clusters": ["x"]}"#,
        )
        .await?;
    ensure!(code == 409, "config tenants are read-only: {body}");
    let (code, body) = daemon
        .http_put(
            "/v1/tenants/initech",
            Some(VIEWER_TOKEN),
            r#"{"clusters": ["x"]}"#,
        )
        .await?;
    ensure!(code == 403, "{body}");
    let (code, body) = daemon
        .http_put(
            "/v1/tenants/bad%20name",
            Some(OPERATOR_TOKEN),
            r#"{"clusters": ["x"]}"#,
        )
        .await?;
    ensure!(code == 400, "{body}");
    let (code, body) = daemon
        .http_put(
            "/v1/tenants/empty",
            Some(OPERATOR_TOKEN),
            r#"{"clusters": []}"#,
        )
        .await?;
    ensure!(code == 400, "{body}");
    let (code, list) = daemon.get("/v1/tenants", Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "{list}");
    let names: Vec<(String, String)> = list["tenants"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        t["source"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        names
            == vec![
                ("acme".to_owned(), "config".to_owned()),
                ("globex".to_owned(), "api".to_owned())
            ],
        "{list}"
    );
    let (code, _) = daemon
        .http_delete("/v1/tenants/globex", Some(OPERATOR_TOKEN))
        .await?;
    ensure!(code == 204);
    let (code, _) = daemon
        .http_delete("/v1/tenants/globex", Some(OPERATOR_TOKEN))
        .await?;
    ensure!(code == 404);
    let (code, _) = daemon
        .http_delete("/v1/tenants/acme", Some(OPERATOR_TOKEN))
        .await?;
    ensure!(code == 409);
    let (code, body) = daemon.get("/v1/plan", Some(VIEWER_TOKEN)).await?;
    ensure!(
        code == 503 && body["error"]["code"] == "no_inventory",
        "no plan before an inventory: {code} {body}"
    );
    daemon.stop().await
}

/// The `/v1/s3` entry of `bucket`.
async fn bucket_watch(daemon: &RunningDaemon, bucket: &str) -> Result<Value> {
    let (code, body) = daemon.get("/v1/s3", Some(VIEWER_TOKEN)).await?;
    ensure!(code == 200, "{body}");
    Ok(body["buckets"]
        .as_array()
        .and_then(|b| b.iter().find(|w| w["bucket"] == bucket).cloned())
        .unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_lag_rises_while_replication_is_paused_and_falls_when_it_resumes() -> Result<()> {
    use pilotlight_lab::replicator::{Replicator, ReplicatorOptions};
    use pilotlight_lab::seed::s3::{BucketSpec, seed_buckets};

    let world = World::new(50.0).await?;
    let account = world.session.account_id().to_owned();
    let watched = format!("pl-s3w-{account}");
    let unreplicated = format!("pl-s3n-{account}");
    let primary = world.clients(PRIMARY).await;
    let dr = world.clients(DR).await;
    seed_buckets(
        &primary,
        &dr,
        &[
            BucketSpec {
                objects: 3,
                ..BucketSpec::new(&watched)
            },
            BucketSpec {
                objects: 1,
                replicate: false,
                ..BucketSpec::new(&unreplicated)
            },
        ],
    )
    .await?;
    let replicator = Replicator::for_session(
        &world.session,
        PRIMARY,
        DR,
        ReplicatorOptions {
            delay: Duration::from_secs(1),
            interval: Duration::from_millis(200),
            buckets: Some(vec![watched.clone(), unreplicated.clone()]),
        },
    )
    .await?;
    let control = replicator.control();

    let extra = format!(
        "[s3]\nbuckets = [\"{watched}\", \"{unreplicated}\"]\ncycle_secs = 1\nlag_target_secs = 2\n\n[reconcile]\nmax_backoff_secs = 1\n"
    );
    let daemon = world.start_daemon(&extra).await?;
    let ok = poll(
        "the watched bucket caught up",
        Duration::from_secs(60),
        || async {
            let w = bucket_watch(&daemon, &watched).await?;
            Ok((w["state"] == "ok" && w["status"]["missing"] == 0).then_some(w))
        },
    )
    .await?;
    ensure!(ok["status"]["sampled"].as_u64() >= Some(3), "{ok}");
    let none = bucket_watch(&daemon, &unreplicated).await?;
    ensure!(none["state"] == "misconfigured", "{none}");

    // Replication stops; a new object waits at the source and the lag grows past the target.
    control.pause();
    primary
        .s3
        .put_object()
        .bucket(&watched)
        .key("late/object-1")
        .body(b"written while replication is paused".to_vec().into())
        .send()
        .await?;
    let behind = poll(
        "the lag to pass its target",
        Duration::from_secs(60),
        || async {
            let w = bucket_watch(&daemon, &watched).await?;
            Ok(
                (w["state"] == "behind" && w["status"]["lag_secs"].as_f64() > Some(2.0))
                    .then_some(w),
            )
        },
    )
    .await?;
    ensure!(behind["status"]["missing"] == 1, "{behind}");
    ensure!(
        behind["status"]["oldest_missing_key"] == "late/object-1",
        "{behind}"
    );
    ensure!(
        daemon
            .metric("pilotlight_s3_replication_lag_max_seconds")
            .await?
            > 2.0
    );
    ensure!(
        daemon
            .metric("pilotlight_s3_replication_buckets{state=\"behind\"}")
            .await?
            == 1.0
    );

    // Replication resumes: the object arrives and the lag falls back to zero.
    control.resume();
    let caught_up = poll("the lag to fall", Duration::from_secs(60), || async {
        let w = bucket_watch(&daemon, &watched).await?;
        Ok((w["state"] == "ok" && w["status"]["lag_secs"].as_f64() == Some(0.0)).then_some(w))
    })
    .await?;
    ensure!(caught_up["status"]["missing"] == 0, "{caught_up}");
    ensure!(
        caught_up["status"]["metric_latency_secs"].is_null(),
        "{caught_up}"
    );
    ensure!(
        daemon
            .metric("pilotlight_s3_replication_lag_max_seconds")
            .await?
            == 0.0
    );

    // Where S3 publishes its own ReplicationLatency metric for the rule, it counts too.
    let rule_id = primary
        .s3
        .get_bucket_replication()
        .bucket(&watched)
        .send()
        .await?
        .replication_configuration
        .and_then(|c| c.rules().first().and_then(|r| r.id().map(str::to_owned)))
        .expect("the seeded rule has an id");
    let dimension = |name: &str, value: &str| {
        aws_sdk_cloudwatch::types::Dimension::builder()
            .name(name)
            .value(value)
            .build()
    };
    primary
        .cloudwatch
        .put_metric_data()
        .namespace("AWS/S3")
        .metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name("ReplicationLatency")
                .dimensions(dimension("SourceBucket", &watched))
                .dimensions(dimension("DestinationBucket", &format!("{watched}-dr")))
                .dimensions(dimension("RuleId", &rule_id))
                .timestamp(aws_smithy_types::DateTime::from(SystemTime::now()))
                .value(1234.0)
                .build(),
        )
        .send()
        .await?;
    let reported = poll(
        "S3's latency metric to count",
        Duration::from_secs(60),
        || async {
            let w = bucket_watch(&daemon, &watched).await?;
            Ok((w["status"]["metric_latency_secs"].as_f64() == Some(1234.0)).then_some(w))
        },
    )
    .await?;
    ensure!(
        reported["state"] == "behind" && reported["lag_secs"].as_f64() == Some(1234.0),
        "{reported}"
    );
    ensure!(reported["status"]["missing"] == 0, "{reported}");
    assert_primary_untouched(&world).await?;
    replicator.shutdown().await;
    daemon.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cloudwatch_outage_does_not_stop_the_inventory() -> Result<()> {
    let world = World::new(50.0).await?;
    let estate = seed(&world, &EstateSpec::sample()).await?;
    let instance = estate
        .fleets
        .values()
        .flatten()
        .next()
        .expect("a fleet instance")
        .id
        .clone();
    put_utilisation(
        &world.clients(PRIMARY).await.cloudwatch,
        &[UtilisationSeries {
            instance_id: instance.clone(),
            days: 2,
            period_secs: 3600,
            cpu: Profile {
                base_pct: 3.0,
                peak_pct: 44.0,
                seed: 9,
            },
            memory: None,
        }],
        SystemTime::now(),
    )
    .await?;
    // CloudWatch throttles every call the daemon makes.
    world.proxy().add_fault(FaultRule {
        service: Some("cloudwatch".to_owned()),
        ..FaultRule::new(FaultAction::Throttle)
    });
    let daemon = world.start_daemon(&inventory_config(&world, true)).await?;
    let pointer = wait_inventory(&daemon).await?;
    let doc = read_document(&world, pointer["key"].as_str().unwrap_or_default()).await?;
    ensure!(
        doc.utilisation.is_empty() && !doc.instances.is_empty(),
        "the estate is captured without utilisation"
    );
    // CloudWatch is back: the next cycle collects (no refresh wait after a failure).
    world.proxy().clear_faults();
    let status = daemon.run("inventory").await?;
    ensure!(status["last_report"]["changed"] == true, "{status}");
    let (_, newer) = daemon.get("/v1/inventory", Some(VIEWER_TOKEN)).await?;
    let doc = read_document(&world, newer["key"].as_str().unwrap_or_default()).await?;
    ensure!(
        doc.utilisation
            .get(&instance)
            .is_some_and(|u| (u.cpu_peak_pct - 44.0).abs() < 1e-6),
        "{:?}",
        doc.utilisation
    );
    assert_primary_untouched(&world).await?;
    daemon.stop().await
}
