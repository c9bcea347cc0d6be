//! The seeder's whole estate through the real SDK: fleets with data volumes and their
//! snapshots, load balancers with HTTPS listeners on the primary certificate, hosted zones with
//! instance, CNAME, alias and TXT records, certificates in both regions, and the always-on
//! services in the DR region — checked with describe calls, not with what the seeder says it
//! made; plus the shape's determinism, a spec without DR counterparts, and the case study at
//! one percent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use aws_sdk_ec2::types::{Filter, Instance, Tag};
use pilotlight_lab::LabError;
use pilotlight_lab::clients::AwsClients;
use pilotlight_lab::seed::{
    ALWAYS_ON_TAG, CLUSTER_TAG, EstateSpec, ROLE_TAG, SeededEstate, TIER_TAG, seed_estate,
};

use crate::support::{DR, PRIMARY, World};

/// The sample must stay quick to seed through the lab (AWS's limits enforced).
const SAMPLE_SEED_BUDGET: Duration = Duration::from_secs(10);

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Running instances with tag key `key`.
async fn instances_tagged(ec2: &aws_sdk_ec2::Client, key: &str) -> Result<Vec<Instance>> {
    let out = ec2
        .describe_instances()
        .filters(filter("tag-key", key))
        .filters(filter("instance-state-name", "running"))
        .send()
        .await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances().iter().cloned())
        .collect())
}

/// How many of `items` fall under each key.
fn counts<K: Ord, I: IntoIterator<Item = K>>(items: I) -> BTreeMap<K, usize> {
    let mut out = BTreeMap::new();
    for k in items {
        *out.entry(k).or_insert(0) += 1;
    }
    out
}

/// A record set as Route 53 lists it.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    name: String,
    kind: String,
    /// (hosted zone id, DNS name without the trailing dot).
    alias: Option<(String, String)>,
    values: Vec<String>,
}

/// Record sets of a zone other than NS and SOA.
async fn records(route53: &aws_sdk_route53::Client, zone_id: &str) -> Result<Vec<Rec>> {
    let out = route53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .send()
        .await?;
    Ok(out
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "NS" | "SOA"))
        .map(|r| Rec {
            name: r.name().to_owned(),
            kind: r.r#type().as_str().to_owned(),
            alias: r.alias_target().map(|a| {
                (
                    a.hosted_zone_id().to_owned(),
                    a.dns_name().trim_end_matches('.').to_owned(),
                )
            }),
            values: r
                .resource_records()
                .iter()
                .map(|v| v.value().to_owned())
                .collect(),
        })
        .collect())
}

/// Zone name (with the dot) → (id, private).
async fn zones(route53: &aws_sdk_route53::Client) -> Result<BTreeMap<String, (String, bool)>> {
    let out = route53.list_hosted_zones().send().await?;
    Ok(out
        .hosted_zones()
        .iter()
        .map(|z| {
            (
                z.name().to_owned(),
                (
                    z.id().to_owned(),
                    z.config().is_some_and(|c| c.private_zone()),
                ),
            )
        })
        .collect())
}

/// ACM certificates of a region: domain → (ARN, status).
async fn certificates(acm: &aws_sdk_acm::Client) -> Result<BTreeMap<String, (String, String)>> {
    let out = acm.list_certificates().send().await?;
    let mut found = BTreeMap::new();
    for c in out.certificate_summary_list() {
        let arn = c.certificate_arn().context("certificate ARN")?;
        let described = acm
            .describe_certificate()
            .certificate_arn(arn)
            .send()
            .await?;
        let detail = described.certificate().context("certificate detail")?;
        found.insert(
            detail.domain_name().unwrap_or_default().to_owned(),
            (
                arn.to_owned(),
                detail
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            ),
        );
    }
    Ok(found)
}

#[tokio::test]
async fn sample_estate_is_seeded_as_described() -> Result<()> {
    let world = World::new(1.0).await?;
    // Through the session's proxy, which enforces AWS's rate limits.
    let primary = world.session.clients(PRIMARY).await;
    let dr = world.session.clients(DR).await;
    let spec = EstateSpec::sample();
    let started = Instant::now();
    let estate = seed_estate(&primary, &dr, &spec).await?;
    let took = started.elapsed();
    ensure!(
        took < SAMPLE_SEED_BUDGET,
        "seeding the sample took {took:?}"
    );
    let ec2 = &primary.ec2;
    // The calls AWS's limits pace: one RunInstances per fleet subnet (7 + 1 per multi-subnet
    // fleet) and per AMI with instances (2) in the primary, one per service in the DR region,
    // which otherwise only gets its certificates and the always-on AMI.
    let c = world.proxy().counters();
    let done =
        |svc: &str, op: &str, region: &str| c.count(svc, op, region) - c.throttled(svc, op, region);
    ensure!(done("ec2", "RunInstances", PRIMARY) == 10, "{c:#?}");
    ensure!(done("ec2", "RunInstances", DR) == 3, "{c:#?}");
    ensure!(done("acm", "ImportCertificate", PRIMARY) == 2, "{c:#?}");
    ensure!(done("acm", "ImportCertificate", DR) == 2, "{c:#?}");
    let dr_mutations: u64 = c
        .rows
        .iter()
        .filter(|r| r.mutating && r.region == DR)
        .map(|r| r.calls - r.throttled)
        .sum();
    ensure!(dr_mutations == 7, "{c:#?}");

    // Fleets: 12 instances over three tiers, three families and four clusters.
    let fleet = instances_tagged(ec2, CLUSTER_TAG).await?;
    ensure!(fleet.len() == 12, "{} fleet instances", fleet.len());
    let tiers = counts(fleet.iter().filter_map(|i| tag(i.tags(), TIER_TAG)));
    ensure!(
        tiers == BTreeMap::from([("1", 7), ("2", 3), ("3", 2)]),
        "{tiers:?}"
    );
    let families = counts(fleet.iter().filter_map(|i| {
        i.instance_type()
            .and_then(|t| t.as_str().split('.').next().map(str::to_owned))
    }));
    ensure!(
        families
            == BTreeMap::from([
                ("c5".to_owned(), 4),
                ("m5".to_owned(), 5),
                ("r5".to_owned(), 3)
            ]),
        "{families:?}"
    );
    let clusters = counts(fleet.iter().filter_map(|i| tag(i.tags(), CLUSTER_TAG)));
    ensure!(
        clusters
            == BTreeMap::from([
                ("checkout", 3),
                ("reporting", 2),
                ("shared-services", 3),
                ("storefront", 4)
            ]),
        "{clusters:?}"
    );
    let names: BTreeSet<&str> = fleet.iter().filter_map(|i| tag(i.tags(), "Name")).collect();
    let expected: BTreeSet<&str> = [
        "web-01",
        "web-02",
        "web-03",
        "web-04",
        "api-01",
        "api-02",
        "api-03",
        "cache-01",
        "cache-02",
        "search-01",
        "batch-01",
        "batch-02",
    ]
    .into();
    ensure!(names == expected, "{names:?}");
    ensure!(
        fleet.iter().all(|i| tag(i.tags(), ROLE_TAG).is_some_and(
            |r| tag(i.tags(), "Name").is_some_and(|n| n.starts_with(&format!("{r}-")))
        ))
    );
    // `web` is spread over web-a and web-b, two each.
    let by_name: BTreeMap<&str, &Instance> = fleet
        .iter()
        .filter_map(|i| Some((tag(i.tags(), "Name")?, i)))
        .collect();
    let web_subnets = counts(
        ["web-01", "web-02", "web-03", "web-04"]
            .iter()
            .filter_map(|n| by_name.get(n)?.subnet_id()),
    );
    let web_a = estate.subnet_id("prod", "web-a").context("web-a")?;
    let web_b = estate.subnet_id("prod", "web-b").context("web-b")?;
    ensure!(web_subnets == BTreeMap::from([(web_a, 2), (web_b, 2)]));

    // Volumes: a root on each instance, data volumes on the tier-1 ones, all attached.
    let volumes = ec2
        .describe_volumes()
        .filters(filter("tag-key", CLUSTER_TAG))
        .send()
        .await?;
    let volumes = volumes.volumes();
    ensure!(volumes.len() == 12 + 10, "{} volumes", volumes.len());
    let mut data_sizes = Vec::new();
    let mut data_ids = BTreeSet::new();
    for v in volumes {
        let attachment = v.attachments().first().context("attached")?;
        ensure!(attachment.state().map(|s| s.as_str()) == Some("attached"));
        let owner = fleet
            .iter()
            .find(|i| i.instance_id() == attachment.instance_id())
            .context("attached to a fleet instance")?;
        ensure!(tag(v.tags(), "Name") == tag(owner.tags(), "Name"));
        ensure!(tag(v.tags(), TIER_TAG) == tag(owner.tags(), TIER_TAG));
        if attachment.device() != Some("/dev/xvda") {
            ensure!(tag(owner.tags(), TIER_TAG) == Some("1"));
            data_sizes.push(v.size().unwrap_or_default());
            data_ids.insert(v.volume_id().unwrap_or_default().to_owned());
        }
    }
    data_sizes.sort_unstable();
    ensure!(
        data_sizes == [8, 8, 8, 10, 10, 10, 10, 20, 20, 20],
        "{data_sizes:?}"
    );
    // One snapshot per data volume, tagged like it.
    let snapshots = ec2
        .describe_snapshots()
        .filters(filter("tag-key", CLUSTER_TAG))
        .send()
        .await?;
    let snapshot_volumes: BTreeSet<String> = snapshots
        .snapshots()
        .iter()
        .filter_map(|s| s.volume_id().map(str::to_owned))
        .collect();
    ensure!(snapshots.snapshots().len() == 10);
    ensure!(snapshot_volumes == data_ids);
    ensure!(
        snapshots
            .snapshots()
            .iter()
            .all(|s| tag(s.tags(), TIER_TAG) == Some("1")
                && tag(s.tags(), "Name")
                    .is_some_and(|n| n.starts_with("web-") || n.starts_with("api-")))
    );

    // Certificates: the same two domains, ISSUED, in both regions.
    let primary_certs = certificates(&primary.acm).await?;
    let dr_certs = certificates(&dr.acm).await?;
    let domains: BTreeSet<&str> = ["shop.example.com", "api.corp.example.com"].into();
    for (region, certs) in [(PRIMARY, &primary_certs), (DR, &dr_certs)] {
        ensure!(
            certs.keys().map(String::as_str).collect::<BTreeSet<_>>() == domains,
            "{region}: {certs:?}"
        );
        ensure!(
            certs.values().all(|(arn, status)| status == "ISSUED"
                && arn.starts_with(&format!("arn:aws:acm:{region}:"))),
            "{region}: {certs:?}"
        );
    }
    let public_arn = &primary_certs["shop.example.com"].0;
    let internal_arn = &primary_certs["api.corp.example.com"].0;

    // The internet-facing ALB: HTTPS on the primary certificate, the web fleet as targets.
    let albs = primary
        .elbv2
        .describe_load_balancers()
        .names("shop-alb")
        .send()
        .await?;
    let alb = albs.load_balancers().first().context("shop-alb")?;
    ensure!(alb.scheme().map(|s| s.as_str()) == Some("internet-facing"));
    ensure!(alb.r#type().map(|t| t.as_str()) == Some("application"));
    let alb_arn = alb.load_balancer_arn().context("ALB ARN")?;
    let listeners = primary
        .elbv2
        .describe_listeners()
        .load_balancer_arn(alb_arn)
        .send()
        .await?;
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .context("HTTPS listener")?;
    ensure!(https.protocol().map(|p| p.as_str()) == Some("HTTPS"));
    let https_certs: Vec<&str> = https
        .certificates()
        .iter()
        .filter_map(|c| c.certificate_arn())
        .collect();
    ensure!(https_certs == [public_arn.as_str()], "{https_certs:?}");
    ensure!(listeners.listeners().len() == 2);
    let tg = https
        .default_actions()
        .first()
        .and_then(|a| a.target_group_arn())
        .context("forward action")?;
    let health = primary
        .elbv2
        .describe_target_health()
        .target_group_arn(tg)
        .send()
        .await?;
    let targets: BTreeSet<&str> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|t| t.target()?.id())
        .collect();
    let web_ids: BTreeSet<&str> = fleet
        .iter()
        .filter(|i| tag(i.tags(), ROLE_TAG) == Some("web"))
        .filter_map(Instance::instance_id)
        .collect();
    ensure!(targets == web_ids && targets.len() == 4, "{targets:?}");

    // The internal classic ELB: HTTPS on the primary certificate, the api fleet registered.
    let elbs = primary
        .elb
        .describe_load_balancers()
        .load_balancer_names("api-elb")
        .send()
        .await?;
    let elb = elbs
        .load_balancer_descriptions()
        .first()
        .context("api-elb")?;
    ensure!(elb.scheme() == Some("internal"));
    let elb_https = elb
        .listener_descriptions()
        .iter()
        .filter_map(|d| d.listener())
        .find(|l| l.load_balancer_port() == 443)
        .context("classic HTTPS listener")?;
    ensure!(elb_https.protocol() == "HTTPS" && elb_https.instance_port() == 8080);
    ensure!(elb_https.ssl_certificate_id() == Some(internal_arn.as_str()));
    ensure!(elb.health_check().map(|h| h.target()) == Some("HTTP:8080/health"));
    let registered: BTreeSet<&str> = elb
        .instances()
        .iter()
        .filter_map(|i| i.instance_id())
        .collect();
    let api_ids: BTreeSet<&str> = fleet
        .iter()
        .filter(|i| tag(i.tags(), ROLE_TAG) == Some("api"))
        .filter_map(Instance::instance_id)
        .collect();
    ensure!(registered == api_ids && registered.len() == 3);

    // Zones: one public, one private, with the records by type.
    let hosted = zones(&primary.route53).await?;
    ensure!(hosted.len() == 2, "{hosted:?}");
    let (public_id, public_private) = hosted.get("example.com.").context("example.com")?;
    let (corp_id, corp_private) = hosted
        .get("corp.example.com.")
        .context("corp.example.com")?;
    ensure!(!public_private && *corp_private);
    let public = records(&primary.route53, public_id).await?;
    let corp = records(&primary.route53, corp_id).await?;
    let by_type = |rs: &[Rec]| {
        counts(rs.iter().map(|r| {
            format!(
                "{}{}",
                r.kind,
                if r.alias.is_some() { " alias" } else { "" }
            )
        }))
    };
    ensure!(
        by_type(&public)
            == BTreeMap::from([
                ("A".to_owned(), 1),
                ("A alias".to_owned(), 1),
                ("CNAME".to_owned(), 1),
                ("TXT".to_owned(), 1)
            ]),
        "{public:?}"
    );
    ensure!(
        by_type(&corp)
            == BTreeMap::from([
                ("A".to_owned(), 4),
                ("A alias".to_owned(), 1),
                ("CNAME".to_owned(), 2),
                ("TXT".to_owned(), 1)
            ]),
        "{corp:?}"
    );
    let find = |rs: &[Rec], name: &str| {
        rs.iter()
            .find(|r| r.name == name)
            .cloned()
            .ok_or_else(|| anyhow!("no record {name}"))
    };
    // Alias to the ALB: its DNS name and its own canonical zone.
    let shop = find(&public, "shop.example.com.")?;
    ensure!(
        shop.alias
            == Some((
                alb.canonical_hosted_zone_id()
                    .unwrap_or_default()
                    .to_owned(),
                alb.dns_name().unwrap_or_default().to_owned()
            )),
        "{shop:?}"
    );
    // Alias to the classic ELB: AWS's zone for us-east-1 classic load balancers.
    let api_lb = find(&corp, "api-lb.corp.example.com.")?;
    ensure!(
        api_lb.alias
            == Some((
                "Z35SXDOTRQ7X7K".to_owned(),
                elb.dns_name().unwrap_or_default().to_owned()
            )),
        "{api_lb:?}"
    );
    ensure!(find(&public, "www.shop.example.com.")?.values == [alb.dns_name().unwrap_or_default()]);
    ensure!(find(&corp, "api.corp.example.com.")?.values == [elb.dns_name().unwrap_or_default()]);
    ensure!(find(&public, "example.com.")?.values == ["\"v=spf1 -all\""]);
    // Instance records hold the instances' private IPs.
    for (record, instance) in [
        ("web-01", "web-01"),
        ("web-02", "web-02"),
        ("cache-01", "cache-01"),
        ("search-01", "search-01"),
    ] {
        let ip = by_name
            .get(instance)
            .and_then(|i| i.private_ip_address())
            .context("private IP")?;
        let r = find(&corp, &format!("{record}.corp.example.com."))?;
        ensure!(r.values == [ip], "{record}: {r:?} vs {ip}");
    }
    // The database CNAME holds the RDS endpoint.
    let db = primary
        .rds
        .describe_db_instances()
        .db_instance_identifier("orders-db")
        .send()
        .await?;
    let endpoint = db
        .db_instances()
        .first()
        .and_then(|d| d.endpoint())
        .and_then(|e| e.address())
        .context("orders-db endpoint")?;
    ensure!(find(&corp, "orders-db.corp.example.com.")?.values == [endpoint]);

    // The always-on services run in the DR region only.
    let always_on = instances_tagged(&dr.ec2, ALWAYS_ON_TAG).await?;
    let services: BTreeMap<&str, &str> = always_on
        .iter()
        .filter_map(|i| Some((tag(i.tags(), ALWAYS_ON_TAG)?, i.instance_type()?.as_str())))
        .collect();
    ensure!(
        services
            == BTreeMap::from([
                ("build", "c5.xlarge"),
                ("directory", "t3.medium"),
                ("monitoring", "m5.large")
            ]),
        "{services:?}"
    );
    ensure!(instances_tagged(ec2, ALWAYS_ON_TAG).await?.is_empty());
    ensure!(instances_tagged(&dr.ec2, CLUSTER_TAG).await?.is_empty());

    // What the seeder reports matches what AWS describes.
    ensure!(estate.dr_region == DR);
    ensure!(estate.fleet_instances("web").len() == 4);
    let web_01 = estate.instance("web", 1).context("web-01")?;
    ensure!(web_01.name == "web-01");
    ensure!(Some(web_01.id.as_str()) == by_name["web-01"].instance_id());
    ensure!(
        estate.certificates["public"].dr_arn.as_deref()
            == Some(dr_certs["shop.example.com"].0.as_str())
    );
    ensure!(estate.load_balancers["shop-alb"].arn.as_deref() == Some(alb_arn));
    ensure!(estate.always_on.values().map(Vec::len).sum::<usize>() == 3);
    ensure!(estate.zones["corp.example.com"].records.len() == 8);
    Ok(())
}

/// Everything describable about an account's seeded estate, ids left out, sorted.
async fn shape(primary: &AwsClients, dr: &AwsClients) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let subnets = primary.ec2.describe_subnets().send().await?;
    let subnet_names: BTreeMap<&str, &str> = subnets
        .subnets()
        .iter()
        .filter_map(|s| Some((s.subnet_id()?, tag(s.tags(), "Name")?)))
        .collect();
    let fleet = instances_tagged(&primary.ec2, CLUSTER_TAG).await?;
    let instance_names: BTreeMap<&str, &str> = fleet
        .iter()
        .filter_map(|i| Some((i.instance_id()?, tag(i.tags(), "Name")?)))
        .collect();
    for i in &fleet {
        let mut tags: Vec<String> = i
            .tags()
            .iter()
            .map(|t| {
                format!(
                    "{}={}",
                    t.key().unwrap_or_default(),
                    t.value().unwrap_or_default()
                )
            })
            .collect();
        tags.sort();
        lines.push(format!(
            "instance {} {} {} {} {}",
            i.instance_type().map(|t| t.as_str()).unwrap_or_default(),
            i.subnet_id()
                .and_then(|s| subnet_names.get(s))
                .unwrap_or(&"?"),
            i.private_ip_address().unwrap_or_default(),
            i.block_device_mappings()
                .iter()
                .filter_map(|m| m.device_name())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(","),
            tags.join(",")
        ));
    }
    let volumes = primary
        .ec2
        .describe_volumes()
        .filters(filter("tag-key", CLUSTER_TAG))
        .send()
        .await?;
    for v in volumes.volumes() {
        let attachment = v.attachments().first();
        lines.push(format!(
            "volume {} {} {:?} {}",
            attachment
                .and_then(|a| a.instance_id())
                .and_then(|i| instance_names.get(i))
                .unwrap_or(&"?"),
            attachment.and_then(|a| a.device()).unwrap_or_default(),
            v.size(),
            v.volume_type().map(|t| t.as_str()).unwrap_or_default()
        ));
    }
    let snapshots = primary
        .ec2
        .describe_snapshots()
        .filters(filter("tag-key", CLUSTER_TAG))
        .send()
        .await?;
    for s in snapshots.snapshots() {
        lines.push(format!(
            "snapshot {} {:?}",
            tag(s.tags(), "Name").unwrap_or_default(),
            s.volume_size()
        ));
    }
    for (region, clients) in [(PRIMARY, primary), (DR, dr)] {
        for (domain, (_, status)) in certificates(&clients.acm).await? {
            lines.push(format!("certificate {region} {domain} {status}"));
        }
    }
    let v2 = primary.elbv2.describe_load_balancers().send().await?;
    for lb in v2.load_balancers() {
        let listeners = primary
            .elbv2
            .describe_listeners()
            .load_balancer_arn(lb.load_balancer_arn().unwrap_or_default())
            .send()
            .await?;
        for l in listeners.listeners() {
            lines.push(format!(
                "v2 {} {:?} {:?} {:?} {:?} certificates={}",
                lb.load_balancer_name().unwrap_or_default(),
                lb.r#type(),
                lb.scheme(),
                l.protocol(),
                l.port(),
                l.certificates().len()
            ));
        }
    }
    let classic = primary.elb.describe_load_balancers().send().await?;
    for lb in classic.load_balancer_descriptions() {
        for d in lb.listener_descriptions() {
            let l = d.listener().context("listener")?;
            lines.push(format!(
                "classic {} {:?} {} {} {:?} certificate={} instances={}",
                lb.load_balancer_name().unwrap_or_default(),
                lb.scheme(),
                l.protocol(),
                l.load_balancer_port(),
                l.instance_port(),
                l.ssl_certificate_id().is_some(),
                lb.instances().len()
            ));
        }
    }
    for (name, (id, private)) in zones(&primary.route53).await? {
        for Rec {
            name: record,
            kind,
            alias,
            values,
        } in records(&primary.route53, &id).await?
        {
            lines.push(format!(
                "record {name} private={private} {record} {kind} {alias:?} {values:?}"
            ));
        }
    }
    for i in instances_tagged(&dr.ec2, ALWAYS_ON_TAG).await? {
        lines.push(format!(
            "always-on {} {}",
            tag(i.tags(), ALWAYS_ON_TAG).unwrap_or_default(),
            i.instance_type().map(|t| t.as_str()).unwrap_or_default()
        ));
    }
    lines.sort();
    Ok(lines)
}

/// What a seeded estate says, ids left out.
fn reported(estate: &SeededEstate) -> Vec<String> {
    let mut lines: Vec<String> = estate
        .fleets
        .iter()
        .flat_map(|(fleet, instances)| {
            instances.iter().map(move |i| {
                format!(
                    "{fleet} {} {} {:?}",
                    i.name,
                    i.private_ip,
                    i.data_volumes
                        .iter()
                        .map(|v| (&v.device, v.snapshot.is_some()))
                        .collect::<Vec<_>>()
                )
            })
        })
        .collect();
    for (name, zone) in &estate.zones {
        for r in &zone.records {
            lines.push(format!("{name} {} {} {}", r.name, r.record_type, r.alias));
        }
    }
    lines.extend(estate.load_balancers.keys().cloned());
    lines.extend(estate.always_on.keys().cloned());
    lines
}

#[tokio::test]
async fn seeding_is_deterministic_in_shape() -> Result<()> {
    let (a, b) = tokio::try_join!(World::new(1.0), World::new(1.0))?;
    let spec = EstateSpec::sample();
    let (pa, da, pb, db) = (
        a.clients(PRIMARY).await,
        a.clients(DR).await,
        b.clients(PRIMARY).await,
        b.clients(DR).await,
    );
    let (ea, eb) = tokio::try_join!(seed_estate(&pa, &da, &spec), seed_estate(&pb, &db, &spec))?;
    let (sa, sb) = tokio::try_join!(shape(&pa, &da), shape(&pb, &db))?;
    // 12 instances + 22 volumes + 10 snapshots + 4 certificates + 4 listeners + 12 records +
    // 3 always-on.
    ensure!(sa.len() == 67, "{}: {sa:#?}", sa.len());
    ensure!(sa == sb, "shapes differ:\n{sa:#?}\n{sb:#?}");
    ensure!(reported(&ea) == reported(&eb));
    // Different accounts, different resources.
    ensure!(ea.instance("web", 1).map(|i| &i.id) != eb.instance("web", 1).map(|i| &i.id));
    Ok(())
}

/// A small spec of every estate section, one certificate without a DR counterpart and data
/// volumes left unsnapshotted.
const SMALL: &str = r#"
[[vpcs]]
name = "core"
cidr = "10.40.0.0/16"
[[vpcs.subnets]]
name = "a"
cidr = "10.40.1.0/24"
az = "a"
[[vpcs.subnets]]
name = "b"
cidr = "10.40.2.0/24"
az = "b"
[[vpcs.security_groups]]
name = "svc"
description = "service"

[[images]]
name = "svc-ami"
tier = 2

[[fleets]]
name = "svc"
count = 5
instance_type = "m5.large"
tier = 2
cluster = "core"
vpc = "core"
subnets = ["a", "b"]
image = "svc-ami"
security_groups = ["svc"]
role = "service"
snapshot_data_volumes = false
tags = { team = "core" }
data_volumes = [{ size_gib = 30, device = "/dev/sdh", volume_type = "gp2" }]

[[certificates]]
name = "only-primary"
domain = "svc.internal.example.net"
dr_counterpart = false

[[load_balancers]]
kind = "network"
name = "svc-nlb"
scheme = "internal"
vpc = "core"
subnets = ["a", "b"]
listeners = [{ protocol = "TLS", port = 443, certificate = "only-primary" }]
target_group = { protocol = "TCP", port = 9000 }
fleets = ["svc"]

[[zones]]
name = "internal.example.net"
private = true
vpc = "core"
records = [
  { kind = "instance", name = "svc-05", fleet = "svc", index = 5 },
  { kind = "lb_alias", name = "svc", load_balancer = "svc-nlb" },
]
"#;

#[tokio::test]
async fn small_spec_without_dr_counterpart_or_snapshots() -> Result<()> {
    let world = World::new(1.0).await?;
    let (primary, dr) = (world.clients(PRIMARY).await, world.clients(DR).await);

    // An invalid spec fails before any call, with every problem.
    let bad = EstateSpec::from_toml_str(
        &SMALL
            .replace("index = 5", "index = 6")
            .replace("certificate = \"only-primary\"", "certificate = \"nope\""),
    )?;
    match seed_estate(&primary, &dr, &bad).await {
        Err(LabError::InvalidSpec { problems }) => ensure!(problems.len() == 2, "{problems:?}"),
        other => return Err(anyhow!("expected InvalidSpec, got {other:?}")),
    }
    ensure!(
        world
            .clients(PRIMARY)
            .await
            .ec2
            .describe_vpcs()
            .filters(filter("tag:Name", "core"))
            .send()
            .await?
            .vpcs()
            .is_empty()
    );

    let spec = EstateSpec::from_toml_str(SMALL)?;
    let estate = seed_estate(&primary, &dr, &spec).await?;
    // 5 instances over two subnets: 3 + 2, named in launch order.
    let fleet = instances_tagged(&primary.ec2, CLUSTER_TAG).await?;
    ensure!(fleet.len() == 5);
    let a = estate.subnet_id("core", "a").context("a")?;
    let in_a: BTreeSet<&str> = fleet
        .iter()
        .filter(|i| i.subnet_id() == Some(a))
        .filter_map(|i| tag(i.tags(), "Name"))
        .collect();
    ensure!(in_a == ["svc-01", "svc-02", "svc-03"].into(), "{in_a:?}");
    ensure!(
        fleet
            .iter()
            .all(|i| tag(i.tags(), ROLE_TAG) == Some("service")
                && tag(i.tags(), "team") == Some("core")
                && tag(i.tags(), TIER_TAG) == Some("2"))
    );
    // Data volumes, but no snapshots of them.
    let volumes = primary
        .ec2
        .describe_volumes()
        .filters(filter("tag-key", CLUSTER_TAG))
        .send()
        .await?;
    let data: Vec<_> = volumes
        .volumes()
        .iter()
        .filter(|v| v.attachments().first().and_then(|a| a.device()) == Some("/dev/sdh"))
        .collect();
    ensure!(volumes.volumes().len() == 10 && data.len() == 5);
    ensure!(
        data.iter()
            .all(|v| v.size() == Some(30) && v.volume_type().map(|t| t.as_str()) == Some("gp2"))
    );
    let snapshots = primary
        .ec2
        .describe_snapshots()
        .filters(filter("tag-key", CLUSTER_TAG))
        .send()
        .await?;
    ensure!(snapshots.snapshots().is_empty());
    // The certificate exists in the primary only.
    let primary_certs = certificates(&primary.acm).await?;
    ensure!(primary_certs.len() == 1);
    ensure!(certificates(&dr.acm).await?.is_empty());
    ensure!(estate.certificates["only-primary"].dr_arn.is_none());
    // The NLB's TLS listener uses it.
    let nlb = primary
        .elbv2
        .describe_load_balancers()
        .names("svc-nlb")
        .send()
        .await?;
    let nlb = nlb.load_balancers().first().context("svc-nlb")?;
    ensure!(nlb.r#type().map(|t| t.as_str()) == Some("network"));
    let listeners = primary
        .elbv2
        .describe_listeners()
        .load_balancer_arn(nlb.load_balancer_arn().unwrap_or_default())
        .send()
        .await?;
    let tls = listeners.listeners().first().context("TLS listener")?;
    ensure!(tls.protocol().map(|p| p.as_str()) == Some("TLS"));
    ensure!(
        tls.certificates().first().and_then(|c| c.certificate_arn())
            == Some(primary_certs["svc.internal.example.net"].0.as_str())
    );
    // The private zone: the 5th instance's IP and an alias to the NLB's own zone.
    let hosted = zones(&primary.route53).await?;
    let (zone_id, private) = hosted.get("internal.example.net.").context("zone")?;
    ensure!(*private);
    let rs = records(&primary.route53, zone_id).await?;
    ensure!(rs.len() == 2, "{rs:?}");
    let svc_05 = fleet
        .iter()
        .find(|i| tag(i.tags(), "Name") == Some("svc-05"))
        .and_then(|i| i.private_ip_address())
        .context("svc-05")?;
    ensure!(
        rs.iter()
            .any(|r| r.name == "svc-05.internal.example.net." && r.values == [svc_05])
    );
    ensure!(rs.iter().any(|r| {
        r.name == "svc.internal.example.net."
            && r.alias
                == Some((
                    nlb.canonical_hosted_zone_id()
                        .unwrap_or_default()
                        .to_owned(),
                    nlb.dns_name().unwrap_or_default().to_owned(),
                ))
    }));
    // No always-on services asked for, none launched.
    ensure!(estate.always_on.is_empty());
    ensure!(
        dr.ec2
            .describe_instances()
            .send()
            .await?
            .reservations()
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn case_study_at_one_percent_has_its_shape() -> Result<()> {
    let world = World::new(1.0).await?;
    let (primary, dr) = (world.clients(PRIMARY).await, world.clients(DR).await);
    let spec = EstateSpec::case_study(0.01);
    let estate = seed_estate(&primary, &dr, &spec).await?;

    let fleet = instances_tagged(&primary.ec2, CLUSTER_TAG).await?;
    ensure!(fleet.len() == 30);
    let tiers = counts(fleet.iter().filter_map(|i| tag(i.tags(), TIER_TAG)));
    ensure!(
        tiers == BTreeMap::from([("1", 6), ("2", 9), ("3", 15)]),
        "{tiers:?}"
    );
    ensure!(fleet.iter().all(|i| i.block_device_mappings().len() == 3));
    let snapshots = primary
        .ec2
        .describe_snapshots()
        .filters(filter("tag-key", CLUSTER_TAG))
        .send()
        .await?;
    ensure!(snapshots.snapshots().len() == 60);
    let lbs = primary.elbv2.describe_load_balancers().send().await?;
    ensure!(lbs.load_balancers().len() == 1);
    let hosted = zones(&primary.route53).await?;
    ensure!(hosted.len() == 1);
    let (zone_id, _) = hosted.values().next().context("zone")?;
    let rs = records(&primary.route53, zone_id).await?;
    ensure!(rs.len() == 40, "{} records", rs.len());
    let dbs = primary.rds.describe_db_instances().send().await?;
    ensure!(dbs.db_instances().len() == 1);
    ensure!(certificates(&dr.acm).await?.len() == 1);
    ensure!(instances_tagged(&dr.ec2, ALWAYS_ON_TAG).await?.len() == 3);
    ensure!(
        estate
            .zones
            .values()
            .map(|z| z.records.len())
            .sum::<usize>()
            == 40
    );
    Ok(())
}
