//! The lab itself, through the real AWS SDK: the realism proxy's counters, fault injection,
//! rate limits, error envelopes, `ClientToken` idempotency, account isolation, and the estate
//! seeder. Each test runs in its own [`LabSession`] (own proxy, own AWS account) on the
//! process's shared moto.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, InstanceType, Placement};
use pilotlight_lab::proxy::GLOBAL_REGION;
use pilotlight_lab::seed::EstateSpec;
use pilotlight_lab::{FaultAction, FaultRule, Lab, LabSession, ProxyClient, ProxyOptions};

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";
/// moto accepts any AMI id when AMI validation is off (the lab's default).
const AMI: &str = "ami-0123456789abcdef0";

async fn session() -> Result<LabSession> {
    Ok(Lab::session().await?)
}

async fn session_with(time_scale: f64) -> Result<LabSession> {
    Ok(Lab::session_with(ProxyOptions {
        time_scale,
        ..ProxyOptions::default()
    })
    .await?)
}

async fn s3(lab: &LabSession, region: &str) -> aws_sdk_s3::Client {
    let config = lab.sdk_config(region).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

/// The error code the SDK parsed, or an error saying the call succeeded.
fn code_of<T: std::fmt::Debug, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
) -> Result<String> {
    match result {
        Ok(out) => Err(anyhow!("expected an error, got {out:?}")),
        Err(e) => e
            .code()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("error without a code")),
    }
}

/// Launches one instance in `region`; returns its id.
async fn run_one(ec2: &aws_sdk_ec2::Client, token: Option<&str>) -> Result<Vec<String>> {
    let out = ec2
        .run_instances()
        .image_id(AMI)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .set_client_token(token.map(str::to_owned))
        .send()
        .await?;
    Ok(out
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect())
}

async fn instance_count(ec2: &aws_sdk_ec2::Client) -> Result<usize> {
    let out = ec2.describe_instances().send().await?;
    Ok(out.reservations().iter().map(|r| r.instances().len()).sum())
}

#[tokio::test]
async fn counters_name_each_call_by_service_operation_region() -> Result<()> {
    let lab = session().await?;
    let primary = lab.ec2(PRIMARY).await;
    let dr = lab.ec2(DR).await;
    primary.describe_vpcs().send().await?;
    dr.create_vpc().cidr_block("10.50.0.0/16").send().await?;
    let bucket = format!("lab-counters-{}", lab.account_id());
    let s3 = s3(&lab, PRIMARY).await;
    s3.create_bucket().bucket(&bucket).send().await?;
    s3.put_object()
        .bucket(&bucket)
        .key("a/b.json")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await?;
    s3.list_objects_v2().bucket(&bucket).send().await?;
    // Bodies and HEAD's Content-Length survive the proxy.
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("a/b.json")
        .send()
        .await?;
    ensure!(head.content_length() == Some(2));
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("a/b.json")
        .send()
        .await?;
    ensure!(got.body.collect().await?.into_bytes().as_ref() == b"{}");
    let r53 = aws_sdk_route53::Client::new(&lab.sdk_config(PRIMARY).await);
    r53.list_hosted_zones().send().await?;

    let c = lab.proxy().counters();
    let row = |svc: &str, op: &str, region: &str| {
        c.row(svc, op, region)
            .cloned()
            .ok_or_else(|| anyhow!("no counter row {svc} {op} {region}: {c:#?}"))
    };
    let describe = row("ec2", "DescribeVpcs", PRIMARY)?;
    ensure!(describe.calls == 1 && !describe.mutating);
    let create = row("ec2", "CreateVpc", DR)?;
    ensure!(create.calls == 1 && create.mutating);
    ensure!(row("s3", "CreateBucket", PRIMARY)?.mutating);
    ensure!(row("s3", "PutObject", PRIMARY)?.mutating);
    ensure!(!row("s3", "ListObjectsV2", PRIMARY)?.mutating);
    ensure!(!row("s3", "HeadObject", PRIMARY)?.mutating);
    ensure!(!row("s3", "GetObject", PRIMARY)?.mutating);
    let zones = row("route53", "ListHostedZones", GLOBAL_REGION)?;
    ensure!(zones.calls == 1 && !zones.mutating);
    ensure!(c.mutating_calls_in(DR) == 1);
    // CreateBucket and PutObject were signed for the primary region.
    ensure!(c.mutating_calls_in(PRIMARY) == 2, "{c:#?}");
    ensure!(c.total() == 8, "{c:#?}");

    // The same numbers over the proxy's HTTP API, which also resets them.
    let client = ProxyClient::new(&lab.endpoint())?;
    ensure!(client.counters().await? == c);
    client.reset_counters().await?;
    ensure!(lab.proxy().counters().total() == 0);
    Ok(())
}

#[tokio::test]
async fn injected_throttle_and_capacity_errors_parse_in_the_sdk() -> Result<()> {
    let lab = session().await?;
    let ec2 = lab.ec2(DR).await;
    let throttle = lab.proxy().add_fault(
        FaultRule::new(FaultAction::Throttle)
            .service("ec2")
            .operation("DescribeVpcs")
            .times(1),
    );
    let code = code_of(ec2.describe_vpcs().send().await)?;
    ensure!(code == "RequestLimitExceeded", "{code}");
    ensure!(lab.proxy().fault_hits(throttle) == 1);
    ec2.describe_vpcs().send().await.context("rule spent")?;
    let c = lab.proxy().counters();
    ensure!(c.throttled("ec2", "DescribeVpcs", DR) == 1);
    ensure!(c.count("ec2", "DescribeVpcs", DR) == 2);

    // Capacity by instance type and AZ: only that pair fails.
    let capacity = lab.proxy().add_fault(
        FaultRule::new(FaultAction::InsufficientCapacity)
            .service("ec2")
            .operation("RunInstances")
            .region(DR)
            .param("InstanceType", "r5.2xlarge")
            .param("Placement.AvailabilityZone", "us-west-2a"),
    );
    let launch = |ty: InstanceType, az: &str| {
        ec2.run_instances()
            .image_id(AMI)
            .instance_type(ty)
            .placement(Placement::builder().availability_zone(az).build())
            .min_count(1)
            .max_count(1)
            .send()
    };
    let err = launch(InstanceType::R52xlarge, "us-west-2a")
        .await
        .expect_err("capacity fault");
    ensure!(err.code() == Some("InsufficientInstanceCapacity"));
    ensure!(err.raw_response().map(|r| r.status().as_u16()) == Some(500));
    ensure!(err.message().is_some_and(|m| m.contains("r5.2xlarge")));
    launch(InstanceType::R52xlarge, "us-west-2b")
        .await
        .context("other AZ")?;
    launch(InstanceType::R5Xlarge, "us-west-2a")
        .await
        .context("other type")?;
    ensure!(lab.proxy().fault_hits(capacity) == 1);
    // The primary region is untouched by a DR-only rule.
    let primary = lab.ec2(PRIMARY).await;
    primary
        .run_instances()
        .image_id(AMI)
        .instance_type(InstanceType::R52xlarge)
        .placement(Placement::builder().availability_zone("us-east-1a").build())
        .min_count(1)
        .max_count(1)
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn server_error_latency_and_dropped_response() -> Result<()> {
    let lab = session().await?;
    let ec2 = lab.ec2(DR).await;
    lab.proxy().add_fault(
        FaultRule::new(FaultAction::ServerError { status: 500 })
            .operation("DescribeSubnets")
            .times(1),
    );
    let err = ec2.describe_subnets().send().await.expect_err("5xx");
    ensure!(err.raw_response().map(|r| r.status().as_u16()) == Some(500));
    ensure!(err.code() == Some("InternalError"));

    lab.proxy().add_fault(
        FaultRule::new(FaultAction::Latency { ms: 400 })
            .operation("DescribeAvailabilityZones")
            .times(1),
    );
    let start = Instant::now();
    ec2.describe_availability_zones().send().await?;
    ensure!(start.elapsed() >= Duration::from_millis(400));

    // Dropped after forwarding: the SDK sees a transport error, yet the VPC exists.
    lab.proxy().add_fault(
        FaultRule::new(FaultAction::DropResponse)
            .operation("CreateVpc")
            .times(1),
    );
    let err = ec2
        .create_vpc()
        .cidr_block("10.77.0.0/16")
        .send()
        .await
        .expect_err("dropped");
    ensure!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{err:?}"
    );
    ensure!(
        err.raw_response()
            .is_none_or(|r| r.status().as_u16() != 200)
    );
    let vpcs = ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("cidr")
                .values("10.77.0.0/16")
                .build(),
        )
        .send()
        .await?;
    ensure!(
        vpcs.vpcs().len() == 1,
        "the dropped call still created the VPC"
    );
    Ok(())
}

#[tokio::test]
async fn run_instances_rate_limit_throttles_then_refills_with_time_scale() -> Result<()> {
    // A refill this slow cannot give a token back during the test: the 6th call must fail.
    let slow = session_with(0.001).await?;
    let ec2 = slow.ec2(DR).await;
    for i in 0..5 {
        run_one(&ec2, None)
            .await
            .with_context(|| format!("call {i}"))?;
    }
    let code = code_of(
        ec2.run_instances()
            .image_id(AMI)
            .min_count(1)
            .max_count(1)
            .send()
            .await,
    )?;
    ensure!(code == "RequestLimitExceeded", "{code}");
    let c = slow.proxy().counters();
    ensure!(c.throttled("ec2", "RunInstances", DR) == 1);
    ensure!(c.count("ec2", "RunInstances", DR) == 6);
    ensure!(
        instance_count(&ec2).await? == 5,
        "the throttled call launched nothing"
    );

    // The resource bucket: MaxCount=1000 empties it (moto launches MinCount=1); refilling it
    // for another 1,000 instances takes 500 s at AWS's 2/s, but 5 s at time_scale 100.
    let fast = session_with(100.0).await?;
    let ec2 = fast.ec2(DR).await;
    let launch = |max: i32| {
        ec2.run_instances()
            .image_id(AMI)
            .min_count(1)
            .max_count(max)
            .send()
    };
    launch(1000).await.context("draining the resource bucket")?;
    let code = code_of(launch(1000).await)?;
    ensure!(code == "RequestLimitExceeded", "{code}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match launch(1000).await {
            Ok(_) => break,
            Err(e) if e.code() == Some("RequestLimitExceeded") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(anyhow!(e).context("waiting for the bucket to refill")),
        }
    }
    ensure!(fast.proxy().counters().throttled("ec2", "RunInstances", DR) >= 1);
    Ok(())
}

#[tokio::test]
async fn throttle_envelopes_of_every_protocol_parse() -> Result<()> {
    let lab = session().await?;
    lab.proxy()
        .add_fault(FaultRule::new(FaultAction::Throttle).times(6));
    let config = lab.sdk_config(DR).await;

    let rds = aws_sdk_rds::Client::new(&config);
    ensure!(code_of(rds.describe_db_instances().send().await)? == "Throttling");
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    ensure!(code_of(elbv2.describe_load_balancers().send().await)? == "Throttling");
    let r53 = aws_sdk_route53::Client::new(&lab.sdk_config(PRIMARY).await);
    ensure!(code_of(r53.list_hosted_zones().send().await)? == "Throttling");
    let s3 = s3(&lab, DR).await;
    let err = s3.list_buckets().send().await.expect_err("throttled");
    ensure!(err.code() == Some("SlowDown"));
    ensure!(err.raw_response().map(|r| r.status().as_u16()) == Some(503));
    let ec2 = lab.ec2(DR).await;
    ensure!(code_of(ec2.describe_vpcs().send().await)? == "RequestLimitExceeded");
    // CloudWatch speaks RPC v2 CBOR in the current SDK.
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    ensure!(code_of(cw.list_metrics().send().await)? == "Throttling");
    ensure!(lab.proxy().counters().throttled_total() == 6);

    // Arbitrary errors keep their code, e.g. Route 53's busy-zone answer.
    lab.proxy().add_fault(
        FaultRule::new(FaultAction::Error {
            status: 400,
            code: "PriorRequestNotComplete".into(),
            message: "still processing".into(),
        })
        .service("route53")
        .times(1),
    );
    ensure!(code_of(r53.list_hosted_zones().send().await)? == "PriorRequestNotComplete");
    Ok(())
}

#[tokio::test]
async fn client_token_replays_the_first_launch() -> Result<()> {
    let lab = session().await?;
    let ec2 = lab.ec2(DR).await;
    let first = run_one(&ec2, Some("restore-run-1-group-a")).await?;
    let again = run_one(&ec2, Some("restore-run-1-group-a")).await?;
    ensure!(first.len() == 1 && first == again, "{first:?} vs {again:?}");
    ensure!(instance_count(&ec2).await? == 1);

    let mismatch = code_of(
        ec2.run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::M5Large)
            .min_count(1)
            .max_count(1)
            .client_token("restore-run-1-group-a")
            .send()
            .await,
    )?;
    ensure!(mismatch == "IdempotentParameterMismatch", "{mismatch}");

    // Response lost after the launch: the retry with the same token gets the same instance.
    lab.proxy().add_fault(
        FaultRule::new(FaultAction::DropResponse)
            .operation("RunInstances")
            .times(1),
    );
    ensure!(run_one(&ec2, Some("restore-run-1-group-b")).await.is_err());
    let retried = run_one(&ec2, Some("restore-run-1-group-b")).await?;
    ensure!(retried.len() == 1 && retried != first);
    ensure!(
        instance_count(&ec2).await? == 2,
        "moto holds one instance per token"
    );
    Ok(())
}

#[tokio::test]
async fn sessions_are_isolated_accounts() -> Result<()> {
    let a = session().await?;
    let b = session().await?;
    ensure!(a.account_id() != b.account_id());
    let a_ec2 = a.ec2(DR).await;
    let vpc = a_ec2
        .create_vpc()
        .cidr_block("10.91.0.0/16")
        .send()
        .await?
        .vpc()
        .and_then(|v| v.vpc_id().map(str::to_owned))
        .context("vpc id")?;
    let a_cfg = a.sdk_config(DR).await;
    aws_sdk_rds::Client::new(&a_cfg)
        .create_db_parameter_group()
        .db_parameter_group_name("lab-isolation")
        .db_parameter_group_family("postgres16")
        .description("isolation probe")
        .send()
        .await?;
    aws_sdk_elasticloadbalancingv2::Client::new(&a_cfg)
        .create_target_group()
        .name("lab-isolation")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(&vpc)
        .send()
        .await?;
    aws_sdk_elasticloadbalancing::Client::new(&a_cfg)
        .create_load_balancer()
        .load_balancer_name("lab-isolation")
        .listeners(
            aws_sdk_elasticloadbalancing::types::Listener::builder()
                .protocol("HTTP")
                .load_balancer_port(80)
                .instance_port(80)
                .build()?,
        )
        .availability_zones("us-west-2a")
        .send()
        .await?;
    let bucket = format!("lab-isolation-{}", a.account_id());
    s3(&a, PRIMARY)
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    aws_sdk_route53::Client::new(&a.sdk_config(PRIMARY).await)
        .create_hosted_zone()
        .name("isolation.lab.example.")
        .caller_reference(format!("isolation-{}", a.account_id()))
        .send()
        .await?;

    let b_ec2 = b.ec2(DR).await;
    let b_vpcs = b_ec2.describe_vpcs().send().await?;
    ensure!(
        b_vpcs
            .vpcs()
            .iter()
            .all(|v| v.cidr_block() != Some("10.91.0.0/16")),
        "B sees A's VPC"
    );
    let a_vpcs = a_ec2.describe_vpcs().send().await?;
    ensure!(
        a_vpcs
            .vpcs()
            .iter()
            .any(|v| v.vpc_id() == Some(vpc.as_str()))
    );
    let b_cfg = b.sdk_config(DR).await;
    let groups = aws_sdk_rds::Client::new(&b_cfg)
        .describe_db_parameter_groups()
        .send()
        .await?;
    ensure!(
        groups
            .db_parameter_groups()
            .iter()
            .all(|g| g.db_parameter_group_name() != Some("lab-isolation")),
        "B sees A's RDS parameter group"
    );
    let tgs = aws_sdk_elasticloadbalancingv2::Client::new(&b_cfg)
        .describe_target_groups()
        .send()
        .await?;
    ensure!(tgs.target_groups().is_empty(), "B sees A's target group");
    let clbs = aws_sdk_elasticloadbalancing::Client::new(&b_cfg)
        .describe_load_balancers()
        .send()
        .await?;
    ensure!(
        clbs.load_balancer_descriptions().is_empty(),
        "B sees A's classic load balancer"
    );
    let buckets = s3(&b, PRIMARY).await.list_buckets().send().await?;
    ensure!(
        buckets
            .buckets()
            .iter()
            .all(|x| x.name() != Some(bucket.as_str())),
        "B sees A's bucket"
    );
    let zones = aws_sdk_route53::Client::new(&b.sdk_config(PRIMARY).await)
        .list_hosted_zones()
        .send()
        .await?;
    ensure!(zones.hosted_zones().is_empty(), "B sees A's hosted zone");
    // Counters are per session too.
    ensure!(b.proxy().counters().mutating_calls_in(DR) == 0);
    ensure!(a.proxy().counters().mutating_calls_in(DR) == 4);
    Ok(())
}

#[tokio::test]
async fn seeder_builds_the_sample_estate_in_the_primary() -> Result<()> {
    let lab = session().await?;
    let ec2 = lab.ec2(PRIMARY).await;
    let estate = pilotlight_lab::seed(&ec2, PRIMARY, &EstateSpec::sample()).await?;
    ensure!(estate.vpcs.len() == 2);
    let prod = estate.vpc_id("prod").context("prod")?;

    let vpcs = ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("tag:Name")
                .values("prod")
                .values("mgmt")
                .build(),
        )
        .send()
        .await?;
    ensure!(vpcs.vpcs().len() == 2);
    let prod_vpc = vpcs
        .vpcs()
        .iter()
        .find(|v| v.vpc_id() == Some(prod))
        .context("prod described")?;
    let mut cidrs: Vec<&str> = prod_vpc
        .cidr_block_association_set()
        .iter()
        .filter_map(|a| a.cidr_block())
        .collect();
    cidrs.sort_unstable();
    ensure!(cidrs == ["10.20.0.0/16", "10.21.0.0/16"], "{cidrs:?}");

    let subnets = ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(prod).build())
        .send()
        .await?;
    ensure!(subnets.subnets().len() == 5);
    let data = subnets
        .subnets()
        .iter()
        .find(|s| s.subnet_id() == estate.subnet_id("prod", "data-c"))
        .context("data-c")?;
    ensure!(data.availability_zone() == Some("us-east-1c"));
    ensure!(data.cidr_block() == Some("10.21.1.0/24"));
    ensure!(
        data.tags()
            .iter()
            .any(|t| t.key() == Some("Name") && t.value() == Some("data-c"))
    );
    let web_a = subnets
        .subnets()
        .iter()
        .find(|s| s.subnet_id() == estate.subnet_id("prod", "web-a"))
        .context("web-a")?;
    ensure!(web_a.map_public_ip_on_launch() == Some(true));

    // app and db reference each other by group id.
    let app = estate.security_group_id("prod", "app").context("app")?;
    let db = estate.security_group_id("prod", "db").context("db")?;
    let groups = ec2
        .describe_security_groups()
        .group_ids(app)
        .group_ids(db)
        .send()
        .await?;
    let references = |group: &str, other: &str| {
        groups.security_groups().iter().any(|g| {
            g.group_id() == Some(group)
                && g.ip_permissions().iter().any(|p| {
                    p.user_id_group_pairs()
                        .iter()
                        .any(|pair| pair.group_id() == Some(other))
                })
        })
    };
    ensure!(references(app, db) && references(db, app));

    let tables = ec2
        .describe_route_tables()
        .filters(Filter::builder().name("tag:Name").values("public").build())
        .send()
        .await?;
    let public = tables
        .route_tables()
        .first()
        .context("public route table")?;
    let igw = estate.vpcs["prod"].internet_gateway.as_deref();
    ensure!(
        public
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && r.gateway_id() == igw)
    );
    ensure!(
        public
            .associations()
            .iter()
            .filter(|a| a.subnet_id().is_some())
            .count()
            == 2
    );

    // A subnet added later (R1's "new subnet appears in the DR region" scenario).
    let extra = pilotlight_lab::add_subnet(&ec2, prod, "10.20.99.0/24", "us-east-1d").await?;
    let described = ec2.describe_subnets().subnet_ids(&extra).send().await?;
    ensure!(
        described
            .subnets()
            .first()
            .and_then(|s| s.availability_zone())
            == Some("us-east-1d")
    );

    let c = lab.proxy().counters();
    ensure!(c.mutating_calls_in(PRIMARY) > 20);
    ensure!(c.mutating_calls_in(DR) == 0);
    Ok(())
}
