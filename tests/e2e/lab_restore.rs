//! The lab behaving like AWS during a restore, through the real SDK and moto: `RunInstances`
//! launches up to `MaxCount`, capacity rules refuse or cut launches per (type, AZ) with AWS's
//! error, `ClientToken` replays survive the rewritten launch, instances, DB instances, load
//! balancers and Route 53 changes stay pending for their (time-scaled) time, and a region
//! taken down fails every call to it — and only to it — until it is brought back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, InstanceStateName, InstanceType, Placement};
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancerStateEnum, LoadBalancerTypeEnum};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use pilotlight_aws::ErrorKind;
use pilotlight_lab::proxy::{CapacityPhase, CapacityRule};
use pilotlight_lab::{Lab, LabSession, ProxyClient, ProxyOptions};

use crate::support::poll;

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";
/// moto accepts any AMI id when AMI validation is off (the lab's default).
const AMI: &str = "ami-0123456789abcdef0";
/// AWS time runs 100 times faster (rate-limit refills and pending times alike).
const TIME_SCALE: f64 = 100.0;
const DEADLINE: Duration = Duration::from_secs(30);

async fn session(opts: ProxyOptions) -> Result<LabSession> {
    Ok(Lab::session_with(ProxyOptions {
        time_scale: TIME_SCALE,
        ..opts
    })
    .await?)
}

/// Launches as AWS does.
fn max_count() -> ProxyOptions {
    ProxyOptions {
        launch_max_count: true,
        ..ProxyOptions::default()
    }
}

/// Launches `min..=max` of `ty` in `az` (when given); returns the instance ids.
async fn launch(
    ec2: &aws_sdk_ec2::Client,
    ty: InstanceType,
    az: Option<&str>,
    min: i32,
    max: i32,
) -> Result<Vec<String>, SdkError<aws_sdk_ec2::operation::run_instances::RunInstancesError>> {
    let out = ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(ty)
        .set_placement(az.map(|az| Placement::builder().availability_zone(az).build()))
        .min_count(min)
        .max_count(max)
        .send()
        .await?;
    Ok(out
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect())
}

/// The instances of the account in `region`: id → state.
async fn instance_states(ec2: &aws_sdk_ec2::Client) -> Result<Vec<(String, InstanceStateName)>> {
    let out = ec2.describe_instances().send().await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| Some((i.instance_id()?.to_owned(), i.state()?.name()?.clone())))
        .collect())
}

/// The code, HTTP status and message of an SDK service error.
fn service_error<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E>>,
) -> Result<(String, u16, String)> {
    match result {
        Ok(out) => Err(anyhow!("expected an error, got {out:?}")),
        Err(e) => Ok((
            e.code().context("error without a code")?.to_owned(),
            e.raw_response()
                .map(|r| r.status().as_u16())
                .unwrap_or_default(),
            e.message().unwrap_or_default().to_owned(),
        )),
    }
}

/// The default subnet of `az`.
async fn default_subnet(ec2: &aws_sdk_ec2::Client, az: &str) -> Result<String> {
    let out = ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("default-for-az")
                .values("true")
                .build(),
        )
        .send()
        .await?;
    out.subnets()
        .iter()
        .find(|s| s.availability_zone() == Some(az))
        .and_then(|s| s.subnet_id())
        .map(str::to_owned)
        .with_context(|| format!("no default subnet in {az}"))
}

#[tokio::test]
async fn run_instances_launches_max_count() -> Result<()> {
    let lab = session(max_count()).await?;
    let ec2 = lab.ec2(DR).await;
    let ids = launch(&ec2, InstanceType::T3Micro, None, 1, 5).await?;
    ensure!(ids.len() == 5, "{ids:?}");
    let listed = instance_states(&ec2).await?;
    ensure!(listed.len() == 5, "{listed:?}");
    let distinct: BTreeSet<&String> = ids.iter().collect();
    ensure!(distinct.len() == 5);
    Ok(())
}

#[tokio::test]
async fn client_token_replay_after_the_rewrite_returns_the_same_instances() -> Result<()> {
    let lab = session(max_count()).await?;
    let ec2 = lab.ec2(DR).await;
    let run = || {
        ec2.run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(3)
            .client_token("restore-run-7-group-web")
            .send()
    };
    let first = run().await?;
    let again = run().await?;
    let ids = |out: &aws_sdk_ec2::operation::run_instances::RunInstancesOutput| {
        out.instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    ensure!(ids(&first).len() == 3, "{:?}", ids(&first));
    ensure!(
        ids(&first) == ids(&again),
        "{:?} vs {:?}",
        ids(&first),
        ids(&again)
    );
    ensure!(first.reservation_id() == again.reservation_id());
    ensure!(
        instance_states(&ec2).await?.len() == 3,
        "the replay launched nothing"
    );
    Ok(())
}

#[tokio::test]
async fn capacity_rule_refuses_the_fourth_r5_2xlarge_in_us_west_2a_only() -> Result<()> {
    let lab = session(max_count()).await?;
    let ec2 = lab.ec2(DR).await;
    let client = ProxyClient::new(&lab.endpoint())?;
    let rule = client
        .add_capacity_rule(&CapacityRule::new("r5.2xlarge", "us-west-2a", 3))
        .await?;

    let a = Some("us-west-2a");
    ensure!(launch(&ec2, InstanceType::R52xlarge, a, 2, 2).await?.len() == 2);
    ensure!(launch(&ec2, InstanceType::R52xlarge, a, 1, 1).await?.len() == 1);
    let (code, status, message) =
        service_error(launch(&ec2, InstanceType::R52xlarge, a, 1, 1).await)?;
    ensure!(code == "InsufficientInstanceCapacity", "{code}");
    ensure!(status == 500, "{status}");
    ensure!(
        message.starts_with(
            "We currently do not have sufficient r5.2xlarge capacity in the Availability Zone \
             you requested (us-west-2a)."
        ),
        "{message}"
    );
    // pilotlight's own classification sees a capacity error (plan B's trigger).
    let err = launch(&ec2, InstanceType::R52xlarge, a, 1, 1)
        .await
        .expect_err("still refused");
    ensure!(pilotlight_aws::error::classify(&err).0 == ErrorKind::Capacity);
    // The same AZ through its subnet (the proxy looks the subnet's AZ up) is refused too.
    let subnet_a = default_subnet(&ec2, "us-west-2a").await?;
    let (code, _, _) = service_error(
        ec2.run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::R52xlarge)
            .subnet_id(&subnet_a)
            .min_count(1)
            .max_count(1)
            .send()
            .await,
    )?;
    ensure!(code == "InsufficientInstanceCapacity", "{code}");

    // Another type in the AZ, and the type in another AZ, still launch.
    ensure!(launch(&ec2, InstanceType::M5Large, a, 1, 1).await?.len() == 1);
    ensure!(
        launch(&ec2, InstanceType::R52xlarge, Some("us-west-2b"), 1, 1)
            .await?
            .len()
            == 1
    );
    ensure!(instance_states(&ec2).await?.len() == 5, "3 + m5 + 2b");

    let rules = client.capacity_rules().await?;
    let status = rules.iter().find(|r| r.id == rule).context("rule listed")?;
    ensure!(
        (
            status.phase,
            status.launched,
            status.remaining,
            status.refused
        ) == (CapacityPhase::Short, 3, Some(0), 3),
        "{status:?}"
    );
    // Clearing the rules brings the capacity back.
    client.clear_capacity_rules().await?;
    ensure!(launch(&ec2, InstanceType::R52xlarge, a, 1, 1).await?.len() == 1);
    Ok(())
}

#[tokio::test]
async fn available_capacity_cuts_a_launch_to_what_is_left() -> Result<()> {
    let lab = session(max_count()).await?;
    let ec2 = lab.ec2(DR).await;
    lab.proxy()
        .add_capacity_rule(CapacityRule::new("c5.xlarge", "us-west-2c", 0).available(2))?;
    let c = Some("us-west-2c");
    let ids = launch(&ec2, InstanceType::C5Xlarge, c, 1, 5).await?;
    ensure!(ids.len() == 2, "{ids:?}");
    ensure!(instance_states(&ec2).await?.len() == 2);
    let (code, _, _) = service_error(launch(&ec2, InstanceType::C5Xlarge, c, 1, 5).await)?;
    ensure!(code == "InsufficientInstanceCapacity", "{code}");
    Ok(())
}

#[tokio::test]
async fn instances_are_pending_then_running_after_their_scaled_time() -> Result<()> {
    // 300 s of AWS time: 3 s.
    let lab = session(ProxyOptions {
        instance_pending_secs: 300.0,
        ..ProxyOptions::default()
    })
    .await?;
    let ec2 = lab.ec2(DR).await;
    let launched = Instant::now();
    let ids = launch(&ec2, InstanceType::T3Micro, None, 2, 2).await?;
    let states = instance_states(&ec2).await?;
    ensure!(
        states.len() == 2 && states.iter().all(|(_, s)| *s == InstanceStateName::Pending),
        "{states:?}"
    );
    let described = ec2
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await?;
    let state = described
        .reservations()
        .first()
        .and_then(|r| r.instances().first())
        .and_then(|i| i.state())
        .context("state")?;
    ensure!(state.code() == Some(0), "{state:?}");
    // Not running yet: left out of the default instance status, shown with all instances.
    let status = ec2.describe_instance_status().send().await?;
    ensure!(status.instance_statuses().is_empty(), "{status:?}");
    let all = ec2
        .describe_instance_status()
        .include_all_instances(true)
        .send()
        .await?;
    ensure!(all.instance_statuses().len() == 2);
    ensure!(all.instance_statuses().iter().all(|s| {
        s.instance_state().and_then(|st| st.name()) == Some(&InstanceStateName::Pending)
    }));

    poll("instances running", DEADLINE, || async {
        let states = instance_states(&ec2).await?;
        Ok(states
            .iter()
            .all(|(_, s)| *s == InstanceStateName::Running)
            .then_some(()))
    })
    .await?;
    ensure!(
        launched.elapsed() >= Duration::from_secs(3),
        "running after {:?}, before the 3 s pending time",
        launched.elapsed()
    );
    let status = ec2.describe_instance_status().send().await?;
    ensure!(status.instance_statuses().len() == 2, "{status:?}");
    Ok(())
}

#[tokio::test]
async fn rds_restore_is_creating_then_available() -> Result<()> {
    // 200 s of AWS time: 2 s.
    let lab = session(ProxyOptions {
        db_creating_secs: 200.0,
        ..ProxyOptions::default()
    })
    .await?;
    let rds = lab.rds(DR).await;
    let status_of = |id: &'static str| {
        let rds = rds.clone();
        async move {
            let out = rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await?;
            let db = out.db_instances().first().context("described")?;
            Ok::<_, anyhow::Error>((
                db.db_instance_status().unwrap_or_default().to_owned(),
                db.endpoint().and_then(|e| e.address()).map(str::to_owned),
            ))
        }
    };
    let created = rds
        .create_db_instance()
        .db_instance_identifier("orders-src")
        .engine("postgres")
        .db_instance_class("db.m5.large")
        .allocated_storage(20)
        .master_username("pilot")
        .master_user_password("light-password-1")
        .send()
        .await?;
    let db = created.db_instance().context("created")?;
    ensure!(db.db_instance_status() == Some("creating"), "{db:?}");
    ensure!(db.endpoint().is_none(), "no address while creating: {db:?}");
    poll("the source DB available", DEADLINE, || async {
        Ok((status_of("orders-src").await?.0 == "available").then_some(()))
    })
    .await?;
    rds.create_db_snapshot()
        .db_instance_identifier("orders-src")
        .db_snapshot_identifier("orders-snap")
        .send()
        .await?;

    let restored_at = Instant::now();
    let restored = rds
        .restore_db_instance_from_db_snapshot()
        .db_instance_identifier("orders")
        .db_snapshot_identifier("orders-snap")
        .db_instance_class("db.m5.large")
        .send()
        .await?;
    let db = restored.db_instance().context("restored")?;
    ensure!(db.db_instance_status() == Some("creating"), "{db:?}");
    let (status, endpoint) = status_of("orders").await?;
    ensure!(
        status == "creating" && endpoint.is_none(),
        "{status} {endpoint:?}"
    );
    // The source is not affected.
    ensure!(status_of("orders-src").await?.0 == "available");
    let endpoint = poll("the restored DB available", DEADLINE, || async {
        let (status, endpoint) = status_of("orders").await?;
        Ok((status == "available").then_some(endpoint))
    })
    .await?;
    ensure!(restored_at.elapsed() >= Duration::from_secs(2));
    ensure!(
        endpoint.is_some_and(|e| e.starts_with("orders.")),
        "the endpoint appears once available"
    );
    Ok(())
}

#[tokio::test]
async fn alb_is_provisioning_then_active() -> Result<()> {
    // 200 s of AWS time: 2 s.
    let lab = session(ProxyOptions {
        lb_provisioning_secs: 200.0,
        ..ProxyOptions::default()
    })
    .await?;
    let ec2 = lab.ec2(DR).await;
    let subnets = [
        default_subnet(&ec2, "us-west-2a").await?,
        default_subnet(&ec2, "us-west-2b").await?,
    ];
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&lab.sdk_config(DR).await);
    let created_at = Instant::now();
    let created = elbv2
        .create_load_balancer()
        .name("web-dr")
        .r#type(LoadBalancerTypeEnum::Application)
        .subnets(&subnets[0])
        .subnets(&subnets[1])
        .send()
        .await?;
    let lb = created.load_balancers().first().context("created")?;
    let arn = lb.load_balancer_arn().context("arn")?.to_owned();
    let state = |lb: &aws_sdk_elasticloadbalancingv2::types::LoadBalancer| {
        lb.state().and_then(|s| s.code()).cloned()
    };
    ensure!(state(lb) == Some(LoadBalancerStateEnum::Provisioning));
    let describe = || async {
        let out = elbv2
            .describe_load_balancers()
            .load_balancer_arns(&arn)
            .send()
            .await?;
        let lb = out.load_balancers().first().context("described")?;
        Ok::<_, anyhow::Error>(state(lb))
    };
    ensure!(describe().await? == Some(LoadBalancerStateEnum::Provisioning));
    poll("the ALB active", DEADLINE, || async {
        Ok((describe().await? == Some(LoadBalancerStateEnum::Active)).then_some(()))
    })
    .await?;
    ensure!(created_at.elapsed() >= Duration::from_secs(2));
    Ok(())
}

#[tokio::test]
async fn route53_changes_are_pending_with_distinct_ids_then_insync() -> Result<()> {
    // 200 s of AWS time: 2 s.
    let lab = session(ProxyOptions {
        dns_pending_secs: 200.0,
        ..ProxyOptions::default()
    })
    .await?;
    let r53 = aws_sdk_route53::Client::new(&lab.sdk_config(DR).await);
    let zone = r53
        .create_hosted_zone()
        .name("restore.lab.example.")
        .caller_reference(format!("restore-{}", lab.account_id()))
        .send()
        .await?;
    let zone_id = zone.hosted_zone().context("zone")?.id().to_owned();
    let upsert = |name: &str, ip: &str| -> Result<ChangeBatch> {
        Ok(ChangeBatch::builder()
            .changes(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(
                        ResourceRecordSet::builder()
                            .name(name)
                            .r#type(RrType::A)
                            .ttl(60)
                            .resource_records(ResourceRecord::builder().value(ip).build()?)
                            .build()?,
                    )
                    .build()?,
            )
            .build()?)
    };
    let changed_at = Instant::now();
    let mut ids = Vec::new();
    for (name, ip) in [
        ("web.restore.lab.example.", "10.0.0.1"),
        ("api.restore.lab.example.", "10.0.0.2"),
    ] {
        let out = r53
            .change_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .change_batch(upsert(name, ip)?)
            .send()
            .await?;
        let info = out.change_info().context("change info")?;
        ensure!(info.status() == &ChangeStatus::Pending, "{info:?}");
        ensure!(info.id().starts_with("/change/C"), "{info:?}");
        ids.push(info.id().to_owned());
    }
    ensure!(ids[0] != ids[1], "each change has its own id: {ids:?}");
    ensure!(
        !ids.contains(&"/change/C2682N5HXP0BZ4".to_owned()),
        "{ids:?}"
    );
    let status_of = |id: String| {
        let r53 = r53.clone();
        async move {
            let out = r53.get_change().id(&id).send().await?;
            let info = out.change_info().context("change info")?;
            ensure!(info.id() == id, "GetChange answers its own id: {info:?}");
            Ok::<_, anyhow::Error>(info.status().clone())
        }
    };
    ensure!(status_of(ids[0].clone()).await? == ChangeStatus::Pending);
    for id in &ids {
        poll("the change INSYNC", DEADLINE, || async {
            Ok((status_of(id.clone()).await? == ChangeStatus::Insync).then_some(()))
        })
        .await?;
    }
    ensure!(changed_at.elapsed() >= Duration::from_secs(2));
    // The records are there (the change was applied at once by moto).
    let records = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await?;
    ensure!(
        records
            .resource_record_sets()
            .iter()
            .filter(|r| r.r#type() == &RrType::A)
            .count()
            == 2
    );
    Ok(())
}

#[tokio::test]
async fn a_region_down_fails_calls_there_only_until_it_is_up() -> Result<()> {
    let lab = session(ProxyOptions::default()).await?;
    let client = ProxyClient::new(&lab.endpoint())?;
    let primary = lab.ec2(PRIMARY).await;
    let dr = lab.ec2(DR).await;
    primary.describe_vpcs().send().await?;

    let down = client.region_down(PRIMARY).await?;
    ensure!(down.down == [PRIMARY], "{down:?}");
    let err = primary
        .describe_vpcs()
        .send()
        .await
        .expect_err("the primary region is down");
    ensure!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "a connection-level failure, not a service answer: {err:?}"
    );
    ensure!(err.code().is_none(), "{err:?}");
    ensure!(pilotlight_aws::error::classify(&err).0 == ErrorKind::Transient);
    // The DR region and global Route 53 still answer.
    dr.describe_vpcs().send().await?;
    aws_sdk_route53::Client::new(&lab.sdk_config(PRIMARY).await)
        .list_hosted_zones()
        .send()
        .await?;

    // The SDK's standard retry strategy treats it as transient: 3 attempts, then it gives up.
    lab.proxy().reset_counters();
    let retrying = aws_sdk_ec2::Client::new(
        &pilotlight_aws::sdk::sdk_config(
            &pilotlight_aws::AwsSettings::lab(&lab.endpoint()),
            PRIMARY,
        )
        .await,
    );
    ensure!(retrying.describe_availability_zones().send().await.is_err());
    let row = lab
        .proxy()
        .counters()
        .row("ec2", "DescribeAvailabilityZones", PRIMARY)
        .cloned()
        .context("counted")?;
    ensure!((row.calls, row.faulted) == (3, 3), "{row:?}");

    let up = client.region_up(PRIMARY).await?;
    ensure!(up.down.is_empty(), "{up:?}");
    primary.describe_vpcs().send().await?;
    retrying.describe_availability_zones().send().await?;
    Ok(())
}
