//! S3 replication in the lab, through the real SDK: the seeder creates versioned primary and DR
//! buckets with a replication configuration; the lab's replicator (moto never replicates)
//! copies objects once they are older than its delay, leaves them pending while paused, catches
//! up when resumed, follows a delay changed at run time, re-copies an overwritten object, never
//! copies a bucket without replication, and is driven over the proxy's `/__lab/replicator`
//! routes without adding to the proxy's counters.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::ReplicationRuleStatus;
use pilotlight_lab::clients::AwsClients;
use pilotlight_lab::replicator::{
    Replicator, ReplicatorOptions, ReplicatorStatus, SOURCE_LAST_MODIFIED_META,
};
use pilotlight_lab::seed::s3::{BucketSpec, REPLICATION_ROLE, object_body, seed_buckets};
use pilotlight_lab::{Lab, LabError, LabSession, ProxyClient};

use crate::support::poll;

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";
const DEADLINE: Duration = Duration::from_secs(30);
const DELAY: Duration = Duration::from_secs(2);

/// A bucket name unique to this session (S3 names are global across moto's accounts).
fn unique(session: &LabSession, name: &str) -> String {
    format!("{name}-{}", session.account_id())
}

/// The object's `LastModified`, or `None` when it does not exist.
async fn modified(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<DateTime>> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(Some(head.last_modified().copied().context("LastModified")?)),
        Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<String>> {
    let out = s3.list_objects_v2().bucket(bucket).send().await?;
    Ok(out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect())
}

/// Whether `bucket` keeps versions: two puts of a probe key leave two distinct version ids.
/// (moto 5.2.1 answers `GetBucketVersioning` with the root element
/// `GetBucketVersioningResponse`, which the Rust SDK refuses to parse.)
async fn versioned(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool> {
    let probe = "versioning-probe";
    put(s3, bucket, probe, b"1").await?;
    put(s3, bucket, probe, b"2").await?;
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(probe)
        .send()
        .await?;
    let ids: std::collections::BTreeSet<&str> = out
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .filter(|id| *id != "null")
        .collect();
    s3.delete_object().bucket(bucket).key(probe).send().await?;
    Ok(ids.len() == 2)
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> Result<()> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/plain")
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await?;
    Ok(())
}

/// Waits until `key` is in `bucket` with `body`; returns its head.
async fn replica(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
    let what = format!("{key} replicated into {bucket}");
    poll(&what, DEADLINE, || async {
        let Ok(got) = s3.get_object().bucket(bucket).key(key).send().await else {
            return Ok(None);
        };
        let bytes = got.body.collect().await?.into_bytes();
        Ok((bytes.as_ref() == body).then_some(()))
    })
    .await?;
    Ok(s3.head_object().bucket(bucket).key(key).send().await?)
}

/// The replica carries the source's `LastModified` and was made no sooner than the delay after
/// it (both in moto's whole seconds).
fn check_lag(
    replica: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
    source: DateTime,
    delay: Duration,
) -> Result<()> {
    let recorded = replica
        .metadata()
        .and_then(|m| m.get(SOURCE_LAST_MODIFIED_META))
        .context("source LastModified metadata on the replica")?;
    ensure!(
        *recorded == source.fmt(DateTimeFormat::DateTime)?,
        "metadata {recorded} vs source {source}"
    );
    let copied = replica.last_modified().context("replica LastModified")?;
    let lag = copied.secs() - source.secs();
    ensure!(
        lag >= i64::try_from(delay.as_secs())?,
        "replica made {lag} s after its source, before the {delay:?} delay"
    );
    Ok(())
}

/// Polls the replicator's status over HTTP until `check` holds.
async fn status_until(
    client: &ProxyClient,
    what: &str,
    check: impl Fn(&ReplicatorStatus) -> bool,
) -> Result<ReplicatorStatus> {
    poll(what, DEADLINE, || async {
        let status = client.replicator_status().await?;
        Ok(check(&status).then_some(status))
    })
    .await
}

struct Estate {
    primary: AwsClients,
    dr: AwsClients,
    replicated: String,
    replicated_dr: String,
    plain: String,
    plain_dr: String,
}

async fn seed(session: &LabSession) -> Result<Estate> {
    let primary = session.clients(PRIMARY).await;
    let dr = session.clients(DR).await;
    let replicated = unique(session, "app");
    let plain = unique(session, "scratch");
    let seeded = seed_buckets(
        &primary,
        &dr,
        &[
            BucketSpec {
                objects: 3,
                object_bytes: 100,
                ..BucketSpec::new(&replicated)
            },
            BucketSpec {
                objects: 2,
                replicate: false,
                ..BucketSpec::new(&plain)
            },
        ],
    )
    .await?;
    ensure!(seeded.len() == 2);
    Ok(Estate {
        replicated_dr: seeded[0].dr_bucket.clone(),
        plain_dr: seeded[1].dr_bucket.clone(),
        primary,
        dr,
        replicated,
        plain,
    })
}

#[tokio::test]
async fn seeding_creates_versioned_buckets_with_replication() -> Result<()> {
    let session = Lab::session().await?;
    let account = session.account_id().to_owned();
    let primary = session.clients(PRIMARY).await;
    let dr = session.clients(DR).await;
    let name = unique(&session, "orders");
    let orphan = unique(&session, "orphan");
    let seeded = seed_buckets(
        &primary,
        &dr,
        &[
            BucketSpec {
                objects: 4,
                object_bytes: 64,
                ..BucketSpec::new(&name)
            },
            BucketSpec {
                create_dr_bucket: false,
                ..BucketSpec::new(&orphan)
            },
        ],
    )
    .await?;
    let role = format!("arn:aws:iam::{account}:role/{REPLICATION_ROLE}");
    assert_eq!(seeded[0].dr_bucket, format!("{name}-dr"));
    assert_eq!(seeded[0].replication_role.as_deref(), Some(role.as_str()));
    assert_eq!(
        (seeded[0].region.as_str(), seeded[0].dr_region.as_str()),
        (PRIMARY, DR)
    );

    for (client, bucket, region) in [
        (&primary, name.as_str(), None),
        (&dr, seeded[0].dr_bucket.as_str(), Some(DR)),
    ] {
        assert!(
            versioned(&client.s3, bucket).await?,
            "{bucket} not versioned"
        );
        let location = client
            .s3
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await?;
        assert_eq!(
            location
                .location_constraint()
                .map(|c| c.as_str())
                .filter(|c| !c.is_empty()),
            region,
            "{bucket}"
        );
    }

    let config = primary
        .s3
        .get_bucket_replication()
        .bucket(&name)
        .send()
        .await?
        .replication_configuration
        .context("replication configuration")?;
    assert_eq!(config.role(), role);
    assert_eq!(config.rules().len(), 1);
    let rule = &config.rules()[0];
    assert_eq!(rule.status(), &ReplicationRuleStatus::Enabled);
    assert_eq!(
        rule.destination().map(|d| d.bucket()),
        Some(format!("arn:aws:s3:::{name}-dr").as_str())
    );

    let listed = keys(&primary.s3, &name).await?;
    assert_eq!(listed, seeded[0].keys);
    assert_eq!(listed.len(), 4);
    let body = primary
        .s3
        .get_object()
        .bucket(&name)
        .key(&listed[0])
        .send()
        .await?
        .body
        .collect()
        .await?
        .into_bytes();
    assert_eq!(body.as_ref(), object_body(&listed[0], 64).as_slice());
    assert!(
        keys(&dr.s3, &seeded[0].dr_bucket).await?.is_empty(),
        "nothing replicates by itself"
    );

    // The orphan's rule points at a DR bucket that does not exist.
    assert!(!seeded[1].dr_bucket_created);
    let orphan_rules = primary
        .s3
        .get_bucket_replication()
        .bucket(&orphan)
        .send()
        .await?;
    assert!(orphan_rules.replication_configuration().is_some());
    let missing = dr
        .s3
        .head_bucket()
        .bucket(&seeded[1].dr_bucket)
        .send()
        .await;
    assert!(missing.is_err(), "{missing:?}");

    // Seeding again is accepted (the account owns the buckets); another account is refused.
    seed_buckets(&primary, &dr, &[BucketSpec::new(&name)]).await?;
    let other = Lab::session().await?;
    let taken = seed_buckets(
        &other.clients(PRIMARY).await,
        &other.clients(DR).await,
        &[BucketSpec::new(&name)],
    )
    .await;
    assert!(
        matches!(
            &taken,
            Err(LabError::Aws {
                operation: "CreateBucket",
                ..
            })
        ),
        "{taken:?}"
    );
    Ok(())
}

#[tokio::test]
async fn replicator_copies_after_the_delay_and_obeys_pause_resume_and_delay() -> Result<()> {
    let session = Lab::session().await?;
    let estate = seed(&session).await?;
    let (s3, dr) = (&estate.primary.s3, &estate.dr.s3);
    let (bucket, dr_bucket) = (estate.replicated.as_str(), estate.replicated_dr.as_str());
    let replicator = Replicator::for_session(
        &session,
        PRIMARY,
        DR,
        ReplicatorOptions {
            delay: DELAY,
            ..ReplicatorOptions::default()
        },
    )
    .await?;
    let client = ProxyClient::new(&session.endpoint())?;
    session.proxy().reset_counters();

    // The seeded objects arrive, with the source's LastModified and no sooner than the delay.
    for key in ["object-000000", "object-000001", "object-000002"] {
        let head = replica(dr, dr_bucket, key, &object_body(key, 100)).await?;
        let source = modified(s3, bucket, key).await?.context("source")?;
        check_lag(&head, source, DELAY)?;
    }

    // A new object follows, with its content type.
    put(s3, bucket, "fresh.txt", b"fresh").await?;
    let head = replica(dr, dr_bucket, "fresh.txt", b"fresh").await?;
    assert_eq!(head.content_type(), Some("text/plain"));
    check_lag(
        &head,
        modified(s3, bucket, "fresh.txt").await?.context("source")?,
        DELAY,
    )?;
    let status = status_until(&client, "no pending objects", |s| s.pending(bucket) == 0).await?;
    assert!(status.objects_replicated >= 4, "{status:?}");

    // Paused over HTTP: a new object stays pending past the delay and is not copied.
    assert!(client.pause_replicator().await?.paused);
    put(s3, bucket, "held.txt", b"held").await?;
    let held_since = modified(s3, bucket, "held.txt").await?.context("source")?;
    let min_age = DELAY.as_secs_f64() + 1.0;
    let status = status_until(&client, "held.txt pending past the delay", |s| {
        s.bucket(bucket, dr_bucket)
            .is_some_and(|b| b.pending == 1 && b.oldest_pending_secs.is_some_and(|a| a > min_age))
    })
    .await?;
    assert!(status.paused);
    assert_eq!(
        modified(dr, dr_bucket, "held.txt").await?,
        None,
        "copied while paused"
    );

    // Resumed: it arrives, and nothing is pending.
    assert!(!client.resume_replicator().await?.paused);
    let head = replica(dr, dr_bucket, "held.txt", b"held").await?;
    check_lag(&head, held_since, DELAY)?;
    status_until(&client, "nothing pending after resume", |s| {
        s.pending(bucket) == 0
    })
    .await?;

    // A long delay set at run time holds a new object back; a zero delay releases it.
    let status = client
        .set_replicator_delay(Duration::from_secs(3600))
        .await?;
    assert_eq!(status.delay_secs, 3600.0);
    put(s3, bucket, "late.txt", b"late").await?;
    status_until(&client, "late.txt pending past the old delay", |s| {
        s.bucket(bucket, dr_bucket)
            .is_some_and(|b| b.pending == 1 && b.oldest_pending_secs.is_some_and(|a| a > min_age))
    })
    .await?;
    assert_eq!(modified(dr, dr_bucket, "late.txt").await?, None);
    client.set_replicator_delay(Duration::ZERO).await?;
    replica(dr, dr_bucket, "late.txt", b"late").await?;

    // An overwritten object is copied again.
    put(s3, bucket, "object-000000", b"rewritten").await?;
    replica(dr, dr_bucket, "object-000000", b"rewritten").await?;

    // The bucket without replication is never copied, nor reported.
    let status = client.replicator_status().await?;
    assert!(status.running);
    assert!(
        status.buckets.iter().all(|b| b.bucket != estate.plain),
        "{status:?}"
    );
    assert!(keys(dr, &estate.plain_dr).await?.is_empty());
    assert_eq!(keys(s3, &estate.plain).await?.len(), 2);
    let entry = status.bucket(bucket, dr_bucket).context("bucket status")?;
    assert_eq!(
        (entry.objects, entry.pending, entry.error.as_deref()),
        (6, 0, None)
    );
    assert!(entry.replicated >= 7, "{entry:?}");

    // The replicator's calls went through its own door: this proxy saw none of its copies.
    let counts = session.proxy().counters();
    let calls = |op: &str| {
        counts
            .rows
            .iter()
            .filter(|r| r.service == "s3" && r.operation == op)
            .map(|r| r.calls)
            .sum::<u64>()
    };
    assert_eq!(calls("CopyObject"), 0);
    assert_eq!(calls("GetBucketReplication"), 0);

    // Stopped: the routes say so.
    replicator.shutdown().await;
    let status = client.replicator_status().await?;
    assert!(!status.running);
    let refused = client.pause_replicator().await;
    assert!(
        matches!(&refused, Err(LabError::AdminApi { status: 409, .. })),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn control_routes_answer_404_without_a_replicator() -> Result<()> {
    let session = Lab::session().await?;
    let client = ProxyClient::new(&session.endpoint())?;
    for answer in [
        client.replicator_status().await,
        client.pause_replicator().await,
        client.resume_replicator().await,
        client.set_replicator_delay(Duration::from_secs(1)).await,
    ] {
        let Err(LabError::AdminApi { status, body, .. }) = answer else {
            anyhow::bail!("expected a 404, got {answer:?}");
        };
        assert_eq!(status, 404);
        let reason: serde_json::Value = serde_json::from_str(&body)?;
        assert!(
            reason["error"]
                .as_str()
                .is_some_and(|e| e.contains("no replicator")),
            "{body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_destination_is_reported_and_nothing_is_copied() -> Result<()> {
    let session = Lab::session().await?;
    let primary = session.clients(PRIMARY).await;
    let dr = session.clients(DR).await;
    let name = unique(&session, "nodest");
    let seeded = seed_buckets(
        &primary,
        &dr,
        &[BucketSpec {
            objects: 2,
            create_dr_bucket: false,
            ..BucketSpec::new(&name)
        }],
    )
    .await?;
    let replicator = Replicator::for_session(
        &session,
        PRIMARY,
        DR,
        ReplicatorOptions {
            delay: Duration::ZERO,
            ..ReplicatorOptions::default()
        },
    )
    .await?;
    let control = replicator.control();
    let dr_bucket = seeded[0].dr_bucket.clone();
    let status = poll("the missing destination reported", DEADLINE, || async {
        let status = control.status();
        Ok(status
            .bucket(&name, &dr_bucket)
            .is_some_and(|b| b.error.is_some() && b.pending == 2)
            .then_some(status))
    })
    .await?;
    assert_eq!(status.objects_replicated, 0);
    let error = status
        .bucket(&name, &dr_bucket)
        .and_then(|b| b.error.clone());
    assert!(
        error.as_deref().is_some_and(|e| e.contains("NoSuchBucket")),
        "{error:?}"
    );
    Ok(())
}
