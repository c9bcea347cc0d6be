//! R1, the network mirror, end to end: real SDK → realism proxy (AWS's rate limits enforced)
//! → moto, with the daemon running in-process on SQLite.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow, ensure};
use aws_sdk_ec2::types::Filter;
use pilotlight_lab::seed::EstateSpec;
use pilotlight_lab::{FaultAction, FaultRule, SeededEstate};
use serde_json::Value;

use crate::support::{DR, PRIMARY, VIEWER_TOKEN, World, assert_primary_untouched};

fn managed() -> Filter {
    Filter::builder()
        .name("tag:pilotlight:managed")
        .values("true")
        .build()
}

fn source_tag(tags: &[aws_sdk_ec2::types::Tag]) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some("pilotlight:source"))
        .and_then(|t| t.value().map(str::to_owned))
}

async fn seed(world: &World) -> Result<SeededEstate> {
    let ec2 = world.ec2(PRIMARY).await;
    Ok(pilotlight_lab::seed(&ec2, PRIMARY, &EstateSpec::sample()).await?)
}

/// DR subnets in managed VPCs: primary id (source tag) → (DR id, CIDR, AZ).
async fn dr_subnets(world: &World) -> Result<BTreeMap<String, (String, String, String)>> {
    let ec2 = world.ec2(DR).await;
    let vpcs = ec2.describe_vpcs().filters(managed()).send().await?;
    let ids: Vec<String> = vpcs
        .vpcs()
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let subnets = ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .set_values(Some(ids))
                .build(),
        )
        .send()
        .await?;
    Ok(subnets
        .subnets()
        .iter()
        .filter_map(|s| {
            Some((
                source_tag(s.tags())?,
                (
                    s.subnet_id()?.to_owned(),
                    s.cidr_block()?.to_owned(),
                    s.availability_zone()?.to_owned(),
                ),
            ))
        })
        .collect())
}

#[tokio::test]
async fn network_mirror_converges_and_second_cycle_is_quiet() -> Result<()> {
    let world = World::new(1.0).await?;
    let estate = seed(&world).await?;
    let daemon = world.start_daemon("").await?;
    let status = daemon.wait_network_runs(1).await?;
    ensure!(status["last_outcome"] == "success", "first cycle: {status}");

    // VPCs with the same CIDRs, secondary CIDR included.
    let dr = world.ec2(DR).await;
    let vpcs = dr.describe_vpcs().filters(managed()).send().await?;
    let mut by_source = BTreeMap::new();
    for v in vpcs.vpcs() {
        let cidrs: BTreeSet<String> = v
            .cidr_block_association_set()
            .iter()
            .filter_map(|a| a.cidr_block().map(str::to_owned))
            .collect();
        by_source.insert(
            source_tag(v.tags()).unwrap_or_default(),
            (v.vpc_id().unwrap_or_default().to_owned(), cidrs),
        );
    }
    let prod = &estate.vpcs["prod"];
    let mgmt = &estate.vpcs["mgmt"];
    ensure!(
        by_source.len() == 2,
        "expected 2 DR VPCs, got {by_source:?}"
    );
    let (dr_prod, prod_cidrs) = &by_source[&prod.id];
    ensure!(
        prod_cidrs == &BTreeSet::from(["10.20.0.0/16".to_owned(), "10.21.0.0/16".to_owned()]),
        "prod CIDRs: {prod_cidrs:?}"
    );
    ensure!(by_source[&mgmt.id].1.contains("10.30.0.0/16"));

    // Subnets: same CIDRs, AZs mapped by letter.
    let subnets = dr_subnets(&world).await?;
    ensure!(subnets.len() == 6, "expected 6 DR subnets, got {subnets:?}");
    let (dr_web_a, cidr, az) = &subnets[&prod.subnets["web-a"]];
    ensure!(
        cidr == "10.20.1.0/24" && az == "us-west-2a",
        "web-a: {cidr} {az}"
    );
    let (_, cidr, az) = &subnets[&prod.subnets["data-c"]];
    ensure!(
        cidr == "10.21.1.0/24" && az == "us-west-2c",
        "data-c: {cidr} {az}"
    );

    // Security groups: references remapped to DR group ids.
    let groups = dr
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(dr_prod).build())
        .send()
        .await?;
    let by_name: BTreeMap<&str, &aws_sdk_ec2::types::SecurityGroup> = groups
        .security_groups()
        .iter()
        .filter_map(|g| Some((g.group_name()?, g)))
        .collect();
    let dr_web = by_name["web"].group_id().unwrap_or_default();
    let app_refs: Vec<&str> = by_name["app"]
        .ip_permissions()
        .iter()
        .filter(|p| p.from_port() == Some(8080))
        .flat_map(|p| p.user_id_group_pairs())
        .filter_map(|g| g.group_id())
        .collect();
    ensure!(
        app_refs == [dr_web],
        "app:8080 should reference DR web {dr_web}, got {app_refs:?}"
    );
    ensure!(
        source_tag(by_name["web"].tags()).as_deref() == Some(prod.security_groups["web"].as_str())
    );

    // Internet gateway attached, public route table routed to it and associated.
    let igws = dr
        .describe_internet_gateways()
        .filters(managed())
        .send()
        .await?;
    let igw = igws
        .internet_gateways()
        .first()
        .ok_or_else(|| anyhow!("no DR internet gateway"))?;
    ensure!(
        igw.attachments()
            .iter()
            .any(|a| a.vpc_id() == Some(dr_prod.as_str()))
    );
    let tables = dr
        .describe_route_tables()
        .filters(managed())
        .filters(Filter::builder().name("vpc-id").values(dr_prod).build())
        .send()
        .await?;
    let public = tables
        .route_tables()
        .iter()
        .find(|t| source_tag(t.tags()).as_deref() == Some(prod.route_tables["public"].as_str()))
        .ok_or_else(|| anyhow!("public route table not mirrored"))?;
    ensure!(
        public
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
                && r.gateway_id() == igw.internet_gateway_id())
    );
    ensure!(
        public
            .associations()
            .iter()
            .any(|a| a.subnet_id() == Some(dr_web_a.as_str()))
    );

    // The store has every mapping, visible through the API.
    let (code, mappings) = daemon
        .get("/v1/mappings?kind=subnet&limit=100", Some(VIEWER_TOKEN))
        .await?;
    ensure!(code == 200, "mappings: {mappings}");
    let items = mappings["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == 6, "6 subnet mappings expected: {mappings}");
    ensure!(items.iter().any(
        |m| m["primary_id"] == Value::String(prod.subnets["web-a"].clone())
            && m["dr_id"] == Value::String(dr_web_a.clone())
            && m["status"] == "active"
    ));

    // AWS's limits were respected: the proxy never had to throttle the daemon.
    let counts = world.proxy().counters();
    ensure!(
        counts.throttled_total() == 0,
        "the proxy throttled the daemon: {counts:?}"
    );
    assert_primary_untouched(&world).await?;
    ensure!(
        daemon
            .metric("pilotlight_network_mirrored_resources{kind=\"subnet\"}")
            .await?
            == 6.0
    );

    // A second cycle with nothing new: zero mutating calls, list calls only.
    world.proxy().reset_counters();
    let status = daemon.cycle().await?;
    ensure!(
        status["last_outcome"] == "success",
        "second cycle: {status}"
    );
    ensure!(status["last_report"]["mutating_calls"] == 0, "{status}");
    let counts = world.proxy().counters();
    ensure!(
        counts.mutating_calls_in(DR) == 0,
        "second cycle mutated DR: {counts:?}"
    );
    ensure!(counts.mutating_calls_in(PRIMARY) == 0);
    ensure!(
        counts.total() <= 10,
        "a quiet cycle should cost only the paginated list calls, got {} calls: {counts:?}",
        counts.total()
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn new_primary_subnet_mirrors_within_one_cycle() -> Result<()> {
    let world = World::new(1.0).await?;
    let estate = seed(&world).await?;
    let daemon = world.start_daemon("").await?;
    daemon.wait_network_runs(1).await?;
    let primary = world.ec2(PRIMARY).await;
    let new = pilotlight_lab::add_subnet(
        &primary,
        &estate.vpcs["mgmt"].id,
        "10.30.9.0/24",
        "us-east-1b",
    )
    .await?;

    let status = daemon.cycle().await?;
    ensure!(status["last_outcome"] == "success", "{status}");
    let subnets = dr_subnets(&world).await?;
    let (_, cidr, az) = subnets
        .get(&new)
        .ok_or_else(|| anyhow!("new subnet {new} not mirrored after one cycle: {subnets:?}"))?;
    ensure!(cidr == "10.30.9.0/24" && az == "us-west-2b");
    ensure!(
        status["last_report"]["applied"] == 1,
        "only the new subnet should change: {status}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn deleted_primary_subnet_is_reported_then_pruned_only_when_asked() -> Result<()> {
    let world = World::new(1.0).await?;
    let estate = seed(&world).await?;
    let daemon = world.start_daemon("").await?;
    daemon.wait_network_runs(1).await?;
    let gone = estate.vpcs["prod"].subnets["app-b"].clone();
    let dr_id = dr_subnets(&world).await?[&gone].0.clone();
    world
        .ec2(PRIMARY)
        .await
        .delete_subnet()
        .subnet_id(&gone)
        .send()
        .await?;

    // prune = false (default): reported, kept, mapping marked orphaned.
    let status = daemon.cycle().await?;
    let orphans = status["last_report"]["orphans"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        orphans
            .iter()
            .any(|o| o["source"] == Value::String(gone.clone()) && o["kind"] == "subnet"),
        "orphan not reported: {status}"
    );
    ensure!(
        dr_subnets(&world).await?.contains_key(&gone),
        "subnet deleted without prune"
    );
    let (_, m) = daemon
        .get("/v1/mappings?kind=subnet&limit=100", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        m["items"].as_array().is_some_and(|items| items
            .iter()
            .any(|i| i["primary_id"] == Value::String(gone.clone()) && i["status"] == "orphaned")),
        "mapping of {gone} not marked orphaned: {m}\ncycle: {status}"
    );
    ensure!(
        daemon
            .metric("pilotlight_network_orphaned_resources{kind=\"subnet\"}")
            .await?
            == 1.0
    );
    daemon.stop().await?;

    // prune = true: the owned DR subnet is deleted and its mapping removed.
    let daemon = world.start_daemon("[network]\nprune = true\n").await?;
    let status = daemon.wait_network_runs(1).await?;
    ensure!(status["last_outcome"] == "success", "{status}");
    ensure!(
        !dr_subnets(&world).await?.contains_key(&gone),
        "orphan not pruned: {status}"
    );
    let described = world
        .ec2(DR)
        .await
        .describe_subnets()
        .subnet_ids(&dr_id)
        .send()
        .await;
    ensure!(described.is_err(), "DR subnet {dr_id} still exists");
    let (_, m) = daemon
        .get("/v1/mappings?kind=subnet&limit=100", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        m["items"].as_array().is_some_and(|items| items.len() == 5),
        "{m}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn dr_throttling_still_converges_and_is_measured() -> Result<()> {
    let world = World::new(1.0).await?;
    seed(&world).await?;
    // Every SDK attempt of the first CreateSubnet call is throttled (3 attempts), so the
    // daemon itself sees RequestLimitExceeded and must back off and retry.
    let fault = world.proxy().add_fault(
        FaultRule::new(FaultAction::Throttle)
            .service("ec2")
            .operation("CreateSubnet")
            .region(DR)
            .times(3),
    );
    let daemon = world
        .start_daemon("[reconcile]\nmax_backoff_secs = 1\n")
        .await?;
    let status = crate::support::poll(
        "convergence after throttling",
        std::time::Duration::from_secs(120),
        || async {
            let st = daemon.network_status().await?;
            Ok((st["last_outcome"] == "success").then_some(st))
        },
    )
    .await?;
    ensure!(
        status["runs"].as_u64().unwrap_or(0) >= 2,
        "the throttled cycle should have failed first: {status}"
    );
    ensure!(world.proxy().fault_hits(fault) == 3);
    ensure!(dr_subnets(&world).await?.len() == 6);
    let throttled = daemon
        .metric(
            "pilotlight_aws_throttled_responses_total{service=\"ec2\",operation=\"CreateSubnet\"",
        )
        .await?;
    ensure!(
        throttled >= 1.0,
        "throttle metric did not move:\n{}",
        daemon.metrics().await?
    );
    let failed_runs = daemon
        .metric("pilotlight_reconcile_runs_total{reconciler=\"network\",outcome=\"throttled\"}")
        .await?;
    ensure!(failed_runs >= 1.0);
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}
