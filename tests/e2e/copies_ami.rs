//! R4 end to end: AMI copies into the DR region (newest AMI per launch role, retention of owned
//! copies only, a lost `CopyImage` answer) through the real SDK, the lab's proxy and moto, with
//! the daemon in-process on SQLite.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, Image, InstanceType, ResourceType, Tag,
    TagSpecification,
};
use pilotlight_lab::{FaultAction, FaultRule};
use serde_json::Value;

use crate::support::{DR, PRIMARY, VIEWER_TOKEN, World, assert_primary_untouched, poll};

/// AMI copies only, on a fast cycle.
const AMI_ONLY: &str = "[reconcile]\nmax_backoff_secs = 1\n\n[copy]\ncycle_secs = 1\nebs = false\nrds = false\nrds_clusters = false\n";

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn tag_of<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Registers an AMI in the primary (moto backs it with one snapshot of its own).
async fn register(ec2: &aws_sdk_ec2::Client, name: &str) -> Result<String> {
    let out = ec2
        .register_image()
        .name(name)
        .root_device_name("/dev/xvda")
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(EbsBlockDevice::builder().volume_size(8).build())
                .build(),
        )
        .send()
        .await?;
    let id = out
        .image_id()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no image id"))?;
    // moto's RegisterImage ignores TagSpecifications.
    ec2.create_tags()
        .resources(&id)
        .tags(tag("team", "payments"))
        .send()
        .await?;
    Ok(id)
}

/// Launches one instance of `image` with `tags`.
async fn launch(ec2: &aws_sdk_ec2::Client, image: &str, tags: &[(&str, &str)]) -> Result<()> {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in tags {
        spec = spec.tags(tag(k, v));
    }
    ec2.run_instances()
        .image_id(image)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await?;
    Ok(())
}

/// Waits until an AMI registered now would have a later creation time than `image` (moto
/// records creation times to the second; the newest AMI of a role must be unambiguous).
async fn after_creation_of(ec2: &aws_sdk_ec2::Client, image: &str) -> Result<()> {
    let out = ec2.describe_images().image_ids(image).send().await?;
    let created = out
        .images()
        .first()
        .and_then(|i| i.creation_date())
        .ok_or_else(|| anyhow!("{image} has no creation date"))?;
    let created = aws_sdk_ec2::primitives::DateTime::from_str(
        created,
        aws_sdk_ec2::primitives::DateTimeFormat::DateTime,
    )?
    .secs();
    poll(
        "the clock to pass the image's creation second",
        Duration::from_secs(5),
        || async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            Ok((now > created).then_some(()))
        },
    )
    .await
}

/// Every image of the test's account in the DR region (each test has its own account).
async fn dr_images(world: &World) -> Result<Vec<Image>> {
    let out = world
        .ec2(DR)
        .await
        .describe_images()
        .owners("self")
        .send()
        .await?;
    Ok(out.images().to_vec())
}

/// Owned DR copies: source AMI id → [(DR id, state)].
async fn owned_copies(world: &World) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let mut map: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for i in dr_images(world).await? {
        if tag_of(i.tags(), "pilotlight:managed") != Some("true") {
            continue;
        }
        let source = tag_of(i.tags(), "pilotlight:source")
            .unwrap_or_default()
            .to_owned();
        map.entry(source).or_default().push((
            i.image_id().unwrap_or_default().to_owned(),
            i.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        ));
    }
    Ok(map)
}

#[tokio::test]
async fn newest_ami_per_role_is_copied_tagged_and_tiered() -> Result<()> {
    let world = World::new(5.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    // Role "web" (from Name web-NN): an old and a new AMI in use.
    let old = register(&ec2, "web 2026/11 (old)").await?;
    launch(&ec2, &old, &[("Name", "web-01"), ("dr:tier", "3")]).await?;
    after_creation_of(&ec2, &old).await?;
    let new = register(&ec2, "web 2026/11 {new}").await?;
    launch(&ec2, &new, &[("Name", "web-02"), ("dr:tier", "2")]).await?;
    // Role "ledger" (from the role tag, not the Name), tier 1.
    let db = register(&ec2, "ledger").await?;
    launch(
        &ec2,
        &db,
        &[
            ("pilotlight:role", "ledger"),
            ("Name", "db-7"),
            ("dr:tier", "1"),
        ],
    )
    .await?;

    let daemon = world.start_daemon(AMI_ONLY).await?;
    let rpo = daemon.wait_all_copied("ami", 2).await?;
    let by_role: BTreeMap<&str, &Value> = rpo
        .iter()
        .filter_map(|r| Some((r["resource_id"].as_str()?, r)))
        .collect();
    ensure!(
        by_role.keys().copied().collect::<Vec<_>>() == ["ledger", "web"],
        "{rpo:?}"
    );
    ensure!(
        by_role["web"]["tier"] == 2 && by_role["ledger"]["tier"] == 1,
        "{rpo:?}"
    );
    ensure!(
        by_role["web"]["newest_source_id"] == Value::String(new.clone()),
        "{rpo:?}"
    );

    let copies = owned_copies(&world).await?;
    ensure!(
        !copies.contains_key(&old),
        "superseded {old} was copied: {copies:?}"
    );
    for src in [&new, &db] {
        let c = copies
            .get(src)
            .ok_or_else(|| anyhow!("{src} not copied: {copies:?}"))?;
        ensure!(c.len() == 1 && c[0].1 == "available", "{src}: {c:?}");
    }
    // The copy's name, tags and backing snapshots.
    let images = dr_images(&world).await?;
    ensure!(
        images.len() == 2,
        "exactly two DR images expected: {images:?}"
    );
    let web = images
        .iter()
        .find(|i| tag_of(i.tags(), "pilotlight:source") == Some(new.as_str()))
        .ok_or_else(|| anyhow!("no copy of {new}"))?;
    ensure!(
        web.name() == Some(format!("pl-{new}-web 2026/11 -new-").as_str()),
        "{:?}",
        web.name()
    );
    ensure!(tag_of(web.tags(), "pilotlight:resource") == Some("web"));
    ensure!(tag_of(web.tags(), "pilotlight:tier") == Some("2"));
    ensure!(tag_of(web.tags(), "team") == Some("payments"));
    let snaps: Vec<String> = web
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_owned))
        .collect();
    ensure!(!snaps.is_empty(), "copy without backing snapshots");
    let snap = world
        .ec2(DR)
        .await
        .describe_snapshots()
        .snapshot_ids(&snaps[0])
        .send()
        .await?;
    ensure!(
        snap.snapshots()
            .first()
            .is_some_and(|s| tag_of(s.tags(), "pilotlight:managed") == Some("true")),
        "backing snapshot not tagged: {snap:?}"
    );
    let (_, done) = daemon
        .get("/v1/copies?kind=ami&state=completed", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        done["items"].as_array().is_some_and(|a| a.len() == 2),
        "{done}"
    );
    ensure!(
        world.proxy().counters().count("ec2", "CopyImage", DR) == 2,
        "one CopyImage per role"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn retention_deregisters_only_owned_copies() -> Result<()> {
    let world = World::new(5.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    let first = register(&ec2, "app v1").await?;
    launch(&ec2, &first, &[("Name", "app-1")]).await?;
    // An unowned DR image that claims to be a copy of `first` (every tag but the managed one).
    let dr = world.ec2(DR).await;
    let stranger = dr
        .register_image()
        .name("hand-made copy of app v1")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Image)
                .tags(tag("pilotlight:source", &first))
                .tags(tag("pilotlight:resource", "app"))
                .tags(tag("pilotlight:source-created-ms", "1"))
                .build(),
        )
        .send()
        .await?
        .image_id()
        .unwrap_or_default()
        .to_owned();

    let daemon = world
        .start_daemon(&format!("{AMI_ONLY}keep_per_image = 1\n"))
        .await?;
    daemon.wait_all_copied("ami", 1).await?;
    let first_copy = owned_copies(&world)
        .await?
        .get(&first)
        .and_then(|c| c.first().map(|(id, _)| id.clone()))
        .ok_or_else(|| anyhow!("no copy of {first}"))?;
    let first_snaps: Vec<String> = dr
        .describe_images()
        .image_ids(&first_copy)
        .send()
        .await?
        .images()
        .iter()
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_owned))
        .collect();
    ensure!(!first_snaps.is_empty());

    // A newer AMI for the same role.
    after_creation_of(&ec2, &first).await?;
    let second = register(&ec2, "app v2").await?;
    launch(&ec2, &second, &[("Name", "app-2")]).await?;
    poll(
        "the first copy to be retired",
        Duration::from_secs(60),
        || async {
            let c = owned_copies(&world).await?;
            let done = c
                .get(&second)
                .is_some_and(|x| x.iter().any(|(_, s)| s == "available"))
                && !c.contains_key(&first);
            Ok(done.then_some(()))
        },
    )
    .await?;
    let ids: Vec<String> = dr_images(&world)
        .await?
        .iter()
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect();
    ensure!(
        ids.contains(&stranger),
        "the unowned image {stranger} was deregistered"
    );
    ensure!(!ids.contains(&first_copy), "{first_copy} still registered");
    // The retired copy's backing snapshots were pilotlight's (tagged managed): deleted too.
    let left = dr
        .describe_snapshots()
        .filters(
            Filter::builder()
                .name("snapshot-id")
                .set_values(Some(first_snaps.clone()))
                .build(),
        )
        .send()
        .await?;
    ensure!(
        left.snapshots().is_empty(),
        "backing snapshots left: {:?}",
        left.snapshots()
    );
    let (_, deleted) = daemon
        .get("/v1/copies?kind=ami&state=deleted", Some(VIEWER_TOKEN))
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
async fn a_lost_copy_image_answer_leaves_exactly_one_dr_image() -> Result<()> {
    let world = World::new(5.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    let ami = register(&ec2, "batch").await?;
    launch(&ec2, &ami, &[("Name", "batch-12")]).await?;
    // AWS makes the copy, the answer never arrives (so moto's copy is never tagged either).
    let drop = world.proxy().add_fault(
        FaultRule::new(FaultAction::DropResponse)
            .service("ec2")
            .operation("CopyImage")
            .region(DR)
            .times(1),
    );
    let daemon = world.start_daemon(AMI_ONLY).await?;
    daemon.wait_all_copied("ami", 1).await?;
    ensure!(world.proxy().fault_hits(drop) == 1);
    let images = dr_images(&world).await?;
    ensure!(
        images.len() == 1,
        "exactly one DR image expected: {images:?}"
    );
    ensure!(
        images[0]
            .name()
            .is_some_and(|n| n.starts_with(&format!("pl-{ami}"))),
        "{images:?}"
    );
    ensure!(
        world.proxy().counters().count("ec2", "CopyImage", DR) == 1,
        "CopyImage must not be sent again"
    );
    let (_, done) = daemon
        .get("/v1/copies?kind=ami&state=completed", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        done["items"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["dest_id"].as_str() == images[0].image_id()),
        "{done}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}

#[tokio::test]
async fn limit_errors_and_a_configured_limit_converge_without_failures() -> Result<()> {
    let world = World::new(5.0).await?;
    let ec2 = world.ec2(PRIMARY).await;
    let mut amis = Vec::new();
    for role in ["api", "worker", "cron"] {
        let ami = register(&ec2, role).await?;
        launch(&ec2, &ami, &[("pilotlight:role", role)]).await?;
        amis.push(ami);
    }
    let limit = world.proxy().add_fault(
        FaultRule::new(FaultAction::Error {
            status: 400,
            code: "ResourceLimitExceeded".into(),
            message: "Too many image copies in progress.".into(),
        })
        .service("ec2")
        .operation("CopyImage")
        .region(DR)
        .times(2),
    );
    let daemon = world
        .start_daemon(&format!("{AMI_ONLY}ami_max_in_flight = 1\n"))
        .await?;
    daemon.wait_all_copied("ami", 3).await?;
    ensure!(world.proxy().fault_hits(limit) == 2);
    let max = world.proxy().max_copies_in_flight("ami", DR);
    ensure!(max == 1, "configured limit 1, saw {max} in flight");
    let (_, failed) = daemon
        .get("/v1/copies?kind=ami&state=failed", Some(VIEWER_TOKEN))
        .await?;
    ensure!(
        failed["items"].as_array().is_some_and(Vec::is_empty),
        "failed copies: {failed}"
    );
    let copies = owned_copies(&world).await?;
    ensure!(
        amis.iter()
            .all(|a| copies.get(a).is_some_and(|c| c.len() == 1)),
        "{copies:?}"
    );
    daemon.stop().await?;
    assert_primary_untouched(&world).await
}
