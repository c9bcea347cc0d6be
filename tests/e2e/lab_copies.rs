//! Copy realism and the extended seeder, through the real SDK: snapshot and image copies stay
//! pending with rising progress for a size-based time, AWS's in-flight copy limits refuse the
//! copy too many with the error the SDK parses, the in-flight counters follow, and the seeder
//! builds volumes with snapshots, databases with manual snapshots, and AMIs with instances.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, Tag};
use pilotlight_lab::seed::{EstateSpec, TIER_TAG};
use pilotlight_lab::{Lab, LabSession, ProxyClient, ProxyOptions};

use crate::support::poll;

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

async fn session(opts: ProxyOptions) -> Result<LabSession> {
    Ok(Lab::session_with(opts).await?)
}

/// Copies take `size_gib / gib_per_sec` seconds (no minimum).
fn copies_at(gib_per_sec: f64) -> ProxyOptions {
    ProxyOptions {
        copy_gib_per_sec: gib_per_sec,
        copy_min_secs: 0.0,
        ..ProxyOptions::default()
    }
}

/// A primary volume of `size_gib` with one snapshot; returns the snapshot id.
async fn primary_snapshot(ec2: &aws_sdk_ec2::Client, size_gib: i32) -> Result<String> {
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{PRIMARY}a"))
        .size(size_gib)
        .send()
        .await?;
    let snapshot = ec2
        .create_snapshot()
        .volume_id(volume.volume_id().context("volume id")?)
        .send()
        .await?;
    Ok(snapshot.snapshot_id().context("snapshot id")?.to_owned())
}

async fn copy_snapshot(
    dr: &aws_sdk_ec2::Client,
    source: &str,
) -> Result<String, SdkError<aws_sdk_ec2::operation::copy_snapshot::CopySnapshotError>> {
    let out = dr
        .copy_snapshot()
        .source_region(PRIMARY)
        .source_snapshot_id(source)
        .description(format!("copy of {source}"))
        .send()
        .await?;
    Ok(out.snapshot_id().unwrap_or_default().to_owned())
}

/// `(state, progress)` of one snapshot.
async fn snapshot_state(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(String, String)> {
    let out = ec2.describe_snapshots().snapshot_ids(id).send().await?;
    let s = out.snapshots().first().context("snapshot described")?;
    Ok((
        s.state()
            .map(|st| st.as_str().to_owned())
            .unwrap_or_default(),
        s.progress().unwrap_or_default().to_owned(),
    ))
}

fn percent(progress: &str) -> Result<u32> {
    progress
        .trim_end_matches('%')
        .parse()
        .with_context(|| format!("progress {progress:?}"))
}

/// The code of an SDK error, or an error saying the call succeeded.
fn code_of<T: std::fmt::Debug, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
) -> Result<(String, String)> {
    match result {
        Ok(out) => Err(anyhow!("expected an error, got {out:?}")),
        Err(e) => Ok((
            e.code().context("error without a code")?.to_owned(),
            e.message().unwrap_or_default().to_owned(),
        )),
    }
}

#[tokio::test]
async fn ebs_copy_is_pending_with_rising_progress_then_completed() -> Result<()> {
    // 2 GiB at 1 GiB/s: 2 s.
    let lab = session(copies_at(1.0)).await?;
    let primary = lab.ec2(PRIMARY).await;
    let dr = lab.ec2(DR).await;
    let source = primary_snapshot(&primary, 2).await?;

    let sent = Instant::now();
    let copy = copy_snapshot(&dr, &source).await?;
    let (state, progress) = snapshot_state(&dr, &copy).await?;
    ensure!(state == "pending", "{state} {progress}");
    let first = percent(&progress)?;
    ensure!(first < 100, "{progress}");
    ensure!(lab.proxy().copies_in_flight("ebs", DR) == 1);
    // The source and the primary region are untouched by the rewriting.
    ensure!(snapshot_state(&primary, &source).await?.0 == "completed");

    let mut seen = vec![first];
    let deadline = Instant::now() + DEADLINE;
    let done = loop {
        let (state, progress) = snapshot_state(&dr, &copy).await?;
        match state.as_str() {
            "completed" => break progress,
            "pending" => {
                let pct = percent(&progress)?;
                ensure!(pct < 100, "pending at {progress}");
                seen.push(pct);
            }
            other => bail!("unexpected state {other}"),
        }
        ensure!(
            Instant::now() < deadline,
            "the copy did not complete within {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    };
    ensure!(done == "100%", "{done}");
    ensure!(
        sent.elapsed() >= Duration::from_secs(2),
        "completed after {:?}, before the 2 s a 2 GiB copy takes",
        sent.elapsed()
    );
    ensure!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    ensure!(seen.last() > seen.first(), "progress never rose: {seen:?}");
    ensure!(lab.proxy().copies_in_flight("ebs", DR) == 0);
    ensure!(lab.proxy().max_copies_in_flight("ebs", DR) == 1);
    Ok(())
}

#[tokio::test]
async fn rds_aurora_and_ami_copies_show_their_states_until_done() -> Result<()> {
    // 5 GiB/s: the 20 GiB DB snapshot 4 s, the Aurora snapshot (10 GiB) 2 s, the AMI
    // (moto's 15 GiB root device) 3 s.
    let lab = session(copies_at(5.0)).await?;
    let spec = EstateSpec::from_toml_str(
        r#"
        [[db_instances]]
        name = "app-db"
        tier = 1
        snapshots = 1

        [[db_clusters]]
        name = "ledger"
        tier = 1
        snapshots = 1

        [[images]]
        name = "web-ami"
        tier = 1
        "#,
    )?;
    let estate = pilotlight_lab::seed_with_rds(
        &lab.ec2(PRIMARY).await,
        &lab.rds(PRIMARY).await,
        PRIMARY,
        &spec,
    )
    .await?;
    let db_snapshot = &estate.db_instances["app-db"].snapshots[0];
    let cluster_snapshot = &estate.db_clusters["ledger"].snapshots[0];
    let image = estate.image_id("web-ami").context("image")?;
    let rds = lab.rds(DR).await;
    let ec2 = lab.ec2(DR).await;

    let sent = Instant::now();
    let copied = rds
        .copy_db_snapshot()
        .source_db_snapshot_identifier(&db_snapshot.arn)
        .target_db_snapshot_identifier("app-db-1-dr")
        .send()
        .await?;
    let answer = copied.db_snapshot().context("copy answer")?;
    ensure!(answer.status() == Some("pending"), "{answer:?}");
    ensure!(answer.percent_progress() == Some(0), "{answer:?}");
    let cluster = rds
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier(&cluster_snapshot.arn)
        .target_db_cluster_snapshot_identifier("ledger-1-dr")
        .send()
        .await?;
    let answer = cluster.db_cluster_snapshot().context("copy answer")?;
    ensure!(answer.status() == Some("copying"), "{answer:?}");
    let ami = ec2
        .copy_image()
        .source_region(PRIMARY)
        .source_image_id(image)
        .name("web-ami-dr")
        .send()
        .await?
        .image_id()
        .context("copied image id")?
        .to_owned();
    for kind in ["rds", "aurora", "ami"] {
        ensure!(lab.proxy().copies_in_flight(kind, DR) == 1, "{kind}");
    }

    // Each describe shows the copy in progress, then moto's finished answer.
    let mut db_states = BTreeSet::new();
    let mut cluster_states = BTreeSet::new();
    let mut image_states = BTreeSet::new();
    let mut finished: BTreeMap<&str, Duration> = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while finished.len() < 3 {
        ensure!(
            Instant::now() < deadline,
            "copies not finished within {DEADLINE:?}: {finished:?}"
        );
        let out = rds
            .describe_db_snapshots()
            .db_snapshot_identifier("app-db-1-dr")
            .send()
            .await?;
        let s = out.db_snapshots().first().context("db snapshot")?;
        let status = s.status().unwrap_or_default().to_owned();
        if status == "available" {
            finished.entry("rds").or_insert(sent.elapsed());
        } else {
            ensure!(s.percent_progress().is_some_and(|p| p < 100), "{s:?}");
        }
        db_states.insert(status);

        let out = rds
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier("ledger-1-dr")
            .send()
            .await?;
        let s = out
            .db_cluster_snapshots()
            .first()
            .context("cluster snapshot")?;
        let status = s.status().unwrap_or_default().to_owned();
        if status == "available" {
            finished.entry("aurora").or_insert(sent.elapsed());
        } else {
            ensure!(s.percent_progress().is_some_and(|p| p < 100), "{s:?}");
        }
        cluster_states.insert(status);

        let out = ec2.describe_images().image_ids(&ami).send().await?;
        let i = out.images().first().context("image")?;
        let state = i.state().map(|s| s.as_str().to_owned()).unwrap_or_default();
        if state == "available" {
            finished.entry("ami").or_insert(sent.elapsed());
        }
        image_states.insert(state);
        tokio::time::sleep(POLL).await;
    }
    ensure!(
        db_states.contains("copying") && db_states.contains("available"),
        "{db_states:?}"
    );
    ensure!(
        db_states
            .iter()
            .all(|s| ["pending", "copying", "available"].contains(&s.as_str())),
        "{db_states:?}"
    );
    ensure!(
        cluster_states == BTreeSet::from(["available".to_owned(), "copying".to_owned()]),
        "{cluster_states:?}"
    );
    ensure!(
        image_states == BTreeSet::from(["available".to_owned(), "pending".to_owned()]),
        "{image_states:?}"
    );
    for (kind, secs) in [("rds", 4), ("aurora", 2), ("ami", 3)] {
        ensure!(
            finished[kind] >= Duration::from_secs(secs),
            "{kind} finished after {:?}",
            finished[kind]
        );
        ensure!(lab.proxy().copies_in_flight(kind, DR) == 0, "{kind}");
        ensure!(lab.proxy().max_copies_in_flight(kind, DR) == 1, "{kind}");
    }
    Ok(())
}

#[tokio::test]
async fn the_21st_ebs_copy_is_refused_until_one_completes_or_is_deleted() -> Result<()> {
    // 1 GiB/s: a 6 GiB copy takes 6 s, a 1,000 GiB one outlives the test. Rate limits off:
    // only the copy limit is under test.
    let lab = session(ProxyOptions {
        enforce_limits: false,
        ..copies_at(1.0)
    })
    .await?;
    let primary = lab.ec2(PRIMARY).await;
    let dr = lab.ec2(DR).await;
    let short = primary_snapshot(&primary, 6).await?;
    let long = primary_snapshot(&primary, 1000).await?;

    let short_sent = Instant::now();
    copy_snapshot(&dr, &short).await?;
    let mut long_copies = Vec::new();
    for _ in 0..19 {
        long_copies.push(copy_snapshot(&dr, &long).await?);
    }
    ensure!(lab.proxy().copies_in_flight("ebs", DR) == 20);
    ensure!(
        short_sent.elapsed() < Duration::from_secs(5),
        "20 copies took {:?}: too slow to see the limit before the first completes",
        short_sent.elapsed()
    );
    let (code, message) = code_of(
        dr.copy_snapshot()
            .source_region(PRIMARY)
            .source_snapshot_id(&long)
            .send()
            .await,
    )?;
    ensure!(code == "ResourceLimitExceeded", "{code}: {message}");
    ensure!(message.contains("The limit is 20"), "{message}");
    // Refused before moto: the DR region holds exactly the 20 copies.
    let listed = dr.describe_snapshots().send().await?;
    ensure!(
        listed.snapshots().len() == 20,
        "{}",
        listed.snapshots().len()
    );

    // Once the 6 s copy completes, the next one is accepted.
    let accepted = poll("a place under the limit", DEADLINE, || async {
        match copy_snapshot(&dr, &long).await {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == Some("ResourceLimitExceeded") => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    ensure!(
        short_sent.elapsed() >= Duration::from_secs(6),
        "accepted after {:?}, before the first copy could complete",
        short_sent.elapsed()
    );
    ensure!(snapshot_state(&dr, &accepted).await?.0 == "pending");
    ensure!(lab.proxy().copies_in_flight("ebs", DR) == 20);

    // Deleting an in-flight copy frees its place at once.
    let (code, _) = code_of(
        dr.copy_snapshot()
            .source_region(PRIMARY)
            .source_snapshot_id(&long)
            .send()
            .await,
    )?;
    ensure!(code == "ResourceLimitExceeded", "{code}");
    dr.delete_snapshot()
        .snapshot_id(long_copies.first().context("a long copy")?)
        .send()
        .await?;
    ensure!(lab.proxy().copies_in_flight("ebs", DR) == 19);
    copy_snapshot(&dr, &long).await?;

    ensure!(lab.proxy().copies_in_flight("ebs", DR) == 20);
    ensure!(lab.proxy().max_copies_in_flight("ebs", DR) == 20);
    // The same figures over HTTP, as the CLI and the demo read them.
    let counts = ProxyClient::new(&lab.endpoint())?.counters().await?;
    let row = counts.copy_row("ebs", DR).context("ebs copy row")?;
    ensure!(
        (row.in_flight, row.max_in_flight, row.limit, row.started) == (20, 20, 20, 22),
        "{row:?}"
    );
    ensure!(row.refused >= 2, "{row:?}");
    ensure!(counts.copies_in_flight("ebs", PRIMARY) == 0);
    Ok(())
}

#[tokio::test]
async fn the_6th_aurora_copy_is_refused_until_one_completes() -> Result<()> {
    // Aurora snapshots count as 10 GiB: 2 GiB/s makes each copy 5 s.
    let lab = session(copies_at(2.0)).await?;
    let spec =
        EstateSpec::from_toml_str("[[db_clusters]]\nname = \"ledger\"\ntier = 1\nsnapshots = 1\n")?;
    let estate = pilotlight_lab::seed_with_rds(
        &lab.ec2(PRIMARY).await,
        &lab.rds(PRIMARY).await,
        PRIMARY,
        &spec,
    )
    .await?;
    let source = estate.db_clusters["ledger"].snapshots[0].arn.clone();
    let rds = lab.rds(DR).await;
    let copy = |n: u32| {
        rds.copy_db_cluster_snapshot()
            .source_db_cluster_snapshot_identifier(&source)
            .target_db_cluster_snapshot_identifier(format!("ledger-dr-{n}"))
            .send()
    };
    let first_sent = Instant::now();
    for n in 1..=5 {
        copy(n).await?;
    }
    ensure!(lab.proxy().copies_in_flight("aurora", DR) == 5);
    let (code, message) = code_of(copy(6).await)?;
    ensure!(code == "SnapshotQuotaExceeded", "{code}: {message}");
    ensure!(message.contains("more than 5"), "{message}");
    let listed = rds.describe_db_cluster_snapshots().send().await?;
    ensure!(
        listed.db_cluster_snapshots().len() == 5,
        "refused copies never reach moto"
    );

    poll("a place for the 6th cluster copy", DEADLINE, || async {
        match copy(6).await {
            Ok(_) => Ok(Some(())),
            Err(e) if e.code() == Some("SnapshotQuotaExceeded") => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    ensure!(
        first_sent.elapsed() >= Duration::from_secs(5),
        "accepted after {:?}",
        first_sent.elapsed()
    );
    ensure!(lab.proxy().max_copies_in_flight("aurora", DR) == 5);
    ensure!(lab.proxy().copies_in_flight("aurora", DR) >= 1);
    Ok(())
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[tokio::test]
async fn seeder_builds_volumes_snapshots_databases_amis_and_instances() -> Result<()> {
    let lab = session(ProxyOptions::default()).await?;
    let ec2 = lab.ec2(PRIMARY).await;
    let rds = lab.rds(PRIMARY).await;
    let spec = EstateSpec::sample();
    let estate = pilotlight_lab::seed_with_rds(&ec2, &rds, PRIMARY, &spec).await?;

    // Volumes: size, AZ, tier tag; snapshots oldest first, the newest with the latest time.
    for v in &spec.volumes {
        let id = estate.volume_id(&v.name).context("volume")?;
        let described = ec2.describe_volumes().volume_ids(id).send().await?;
        let volume = described.volumes().first().context("described")?;
        ensure!(volume.size() == Some(i32::try_from(v.size_gib)?));
        ensure!(volume.availability_zone() == Some(format!("{PRIMARY}{}", v.az).as_str()));
        ensure!(tag(volume.tags(), TIER_TAG) == Some(v.tier.to_string().as_str()));
        ensure!(tag(volume.tags(), "Name") == Some(v.name.as_str()));

        let seeded = estate.snapshot_ids(&v.name);
        ensure!(seeded.len() == usize::try_from(v.snapshots)?, "{}", v.name);
        let out = ec2
            .describe_snapshots()
            .filters(Filter::builder().name("volume-id").values(id).build())
            .send()
            .await?;
        let mut snaps: Vec<_> = out.snapshots().to_vec();
        ensure!(snaps.len() == seeded.len());
        snaps.sort_by_key(|s| s.start_time().map(|t| t.secs()));
        let newest = snaps.last().context("newest")?;
        ensure!(
            newest.snapshot_id() == seeded.last().map(String::as_str),
            "{}",
            v.name
        );
        let newest_time = newest.start_time().map(|t| t.secs());
        ensure!(
            snaps[..snaps.len() - 1]
                .iter()
                .all(|s| s.start_time().map(|t| t.secs()) < newest_time),
            "{}: the newest snapshot does not have the latest StartTime",
            v.name
        );
        for (n, s) in snaps.iter().enumerate() {
            ensure!(s.state().map(|st| st.as_str()) == Some("completed"));
            ensure!(tag(s.tags(), TIER_TAG) == Some(v.tier.to_string().as_str()));
            ensure!(tag(s.tags(), "Name") == Some(format!("{}-{}", v.name, n + 1).as_str()));
        }
    }

    // DB instances with their manual snapshots, the Aurora cluster with its snapshot.
    for db in &spec.db_instances {
        let out = rds
            .describe_db_snapshots()
            .db_instance_identifier(&db.name)
            .snapshot_type("manual")
            .send()
            .await?;
        let ids: BTreeSet<&str> = out
            .db_snapshots()
            .iter()
            .filter_map(|s| s.db_snapshot_identifier())
            .collect();
        let expected: BTreeSet<String> = (1..=db.snapshots)
            .map(|n| format!("{}-{n}", db.name))
            .collect();
        ensure!(
            ids == expected.iter().map(String::as_str).collect(),
            "{ids:?}"
        );
        let seeded = &estate.db_instances[&db.name];
        ensure!(seeded.snapshots.len() == expected.len());
        ensure!(
            seeded
                .snapshots
                .iter()
                .all(|s| s.arn.starts_with("arn:aws:rds:us-east-1:")
                    && s.arn.ends_with(&format!(":snapshot:{}", s.id)))
        );
        let instance = rds
            .describe_db_instances()
            .db_instance_identifier(&db.name)
            .send()
            .await?;
        let instance = instance.db_instances().first().context("db instance")?;
        ensure!(instance.engine() == Some(db.engine.as_str()));
        ensure!(instance.allocated_storage() == Some(i32::try_from(db.size_gib)?));
    }
    let clusters = rds
        .describe_db_cluster_snapshots()
        .db_cluster_identifier("ledger")
        .snapshot_type("manual")
        .send()
        .await?;
    ensure!(clusters.db_cluster_snapshots().len() == 1);
    ensure!(
        clusters.db_cluster_snapshots()[0].db_cluster_snapshot_identifier() == Some("ledger-1")
    );

    // AMIs, tagged, with the instances launched from them in the named subnets.
    for image in &spec.images {
        let id = estate.image_id(&image.name).context("image")?;
        let described = ec2.describe_images().image_ids(id).send().await?;
        let ami = described.images().first().context("image described")?;
        ensure!(tag(ami.tags(), TIER_TAG) == Some(image.tier.to_string().as_str()));
        let running = ec2
            .describe_instances()
            .filters(Filter::builder().name("image-id").values(id).build())
            .send()
            .await?;
        let instances: Vec<_> = running
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .collect();
        ensure!(
            instances.len() == usize::try_from(image.instances)?,
            "{}",
            image.name
        );
        let subnet = estate.subnet_id(
            image.vpc.as_deref().context("vpc")?,
            image.subnet.as_deref().context("subnet")?,
        );
        for i in &instances {
            ensure!(i.subnet_id() == subnet);
            ensure!(tag(i.tags(), TIER_TAG) == Some(image.tier.to_string().as_str()));
        }
        let mut seeded = estate.images[&image.name].instances.clone();
        let mut found: Vec<String> = instances
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        seeded.sort();
        found.sort();
        ensure!(seeded == found);
    }

    // A new primary snapshot appears: it is the newest of its volume.
    let volume = estate.volume_id("web-root").context("web-root")?;
    let tags = BTreeMap::from([
        ("Name".to_owned(), "web-root-extra".to_owned()),
        (TIER_TAG.to_owned(), "1".to_owned()),
    ]);
    let added = pilotlight_lab::add_snapshot(&ec2, volume, &tags).await?;
    let out = ec2
        .describe_snapshots()
        .filters(Filter::builder().name("volume-id").values(volume).build())
        .send()
        .await?;
    let mut snaps: Vec<_> = out.snapshots().to_vec();
    ensure!(snaps.len() == 4);
    snaps.sort_by_key(|s| s.start_time().map(|t| t.secs()));
    ensure!(snaps[3].snapshot_id() == Some(added.as_str()));
    ensure!(snaps[2].start_time().map(|t| t.secs()) < snaps[3].start_time().map(|t| t.secs()));
    ensure!(tag(snaps[3].tags(), "Name") == Some("web-root-extra"));

    let c = lab.proxy().counters();
    ensure!(c.mutating_calls_in(DR) == 0);
    ensure!(c.count("rds", "CreateDBSnapshot", PRIMARY) == 4);
    Ok(())
}

#[tokio::test]
async fn scaled_estate_seeds_one_snapshot_per_volume() -> Result<()> {
    // Seeding is the lab's own work: no rate limits, as a benchmark's seeding door would be.
    let lab = session(ProxyOptions {
        enforce_limits: false,
        ..ProxyOptions::default()
    })
    .await?;
    let ec2 = lab.ec2(PRIMARY).await;
    let spec = EstateSpec::scaled(60, 42);
    let estate = pilotlight_lab::seed(&ec2, PRIMARY, &spec).await?;
    ensure!(estate.volumes.len() == 60);
    ensure!(estate.volumes.values().all(|v| v.snapshots.len() == 1));
    let snapshots = ec2.describe_snapshots().send().await?;
    ensure!(snapshots.snapshots().len() == 60);
    let tiers: BTreeSet<&str> = snapshots
        .snapshots()
        .iter()
        .filter_map(|s| tag(s.tags(), TIER_TAG))
        .collect();
    ensure!(tiers == BTreeSet::from(["1", "2", "3"]), "{tiers:?}");
    let c = lab.proxy().counters();
    ensure!(c.count("ec2", "CreateVolume", PRIMARY) == 60);
    ensure!(c.count("ec2", "CreateSnapshot", PRIMARY) == 60);
    Ok(())
}
