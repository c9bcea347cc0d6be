//! The restore plan on hand-made estates. Every expected number is worked out by hand in the
//! comments from AWS's documented buckets (`shared/AWS-LIMITS.md`, `aws_limits`) and the
//! default `[restore]` settings: 100 instances per call, boot 90 s, load balancer provisioning
//! 120 s, DB restore 900 s, DNS sync 60 s, 1,000 change units per batch.

use std::collections::BTreeMap;

use super::*;
use crate::config::{RestoreConfig, ThrottleConfig, ThrottleOverride, VolumeStrategy};
use crate::inventory::{
    AliasTarget, BlockDevice, ClassicHealthCheck, ClassicListener, ClassicLoadBalancer, DbCluster,
    DbClusterMember, DbInstance, HostedZone, Instance, Inventory, Listener, LoadBalancer,
    LoadBalancerKind, Record, Target, TargetGroup,
};
use crate::scope::{DrCopy, DrState, Scope, select};

const ALB_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/app-alb/1";
const WEB_CERT: &str = "arn:aws:acm:us-east-1:1:certificate/web";
const APP_CERT: &str = "arn:aws:acm:us-east-1:1:certificate/app";

fn assert_secs(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: expected {expected} s, got {actual} s"
    );
}

fn copy(id: &str) -> DrCopy {
    DrCopy {
        dr_id: id.to_owned(),
        source_created_at_ms: 0,
    }
}

fn disk(volume_id: &str, device: &str, root: bool) -> BlockDevice {
    BlockDevice {
        device_name: device.to_owned(),
        volume_id: volume_id.to_owned(),
        size_gib: 100,
        volume_type: Some("gp3".to_owned()),
        iops: None,
        encrypted: true,
        delete_on_termination: !root,
        root,
    }
}

#[allow(clippy::too_many_arguments)]
fn instance(
    id: &str,
    tier: u8,
    instance_type: &str,
    ami: &str,
    subnet: &str,
    sgs: &[&str],
    ip: &str,
    data: &[&str],
) -> Instance {
    let mut block_devices = vec![disk(&format!("vol-root-{id}"), "/dev/xvda", true)];
    for (n, volume) in data.iter().enumerate() {
        block_devices.push(disk(
            volume,
            &format!("/dev/sd{}", (b'f' + n as u8) as char),
            false,
        ));
    }
    Instance {
        id: id.to_owned(),
        instance_type: instance_type.to_owned(),
        tier,
        role: "role".to_owned(),
        availability_zone: "us-east-1a".to_owned(),
        vpc_id: Some("vpc-1".to_owned()),
        subnet_id: Some(subnet.to_owned()),
        security_group_ids: sgs.iter().map(|s| (*s).to_owned()).collect(),
        image_id: ami.to_owned(),
        key_name: Some("ops".to_owned()),
        iam_instance_profile_arn: Some("arn:aws:iam::1:instance-profile/app".to_owned()),
        private_ip: Some(ip.to_owned()),
        root_device_name: Some("/dev/xvda".to_owned()),
        block_devices,
        state: "running".to_owned(),
        ..Instance::default()
    }
}

fn record(name: &str, record_type: &str, values: &[&str]) -> Record {
    Record {
        name: name.to_owned(),
        record_type: record_type.to_owned(),
        ttl: Some(60),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
        ..Record::default()
    }
}

fn alias(name: &str, target: &str) -> Record {
    Record {
        name: name.to_owned(),
        record_type: "A".to_owned(),
        alias: Some(AliasTarget {
            dns_name: target.to_owned(),
            hosted_zone_id: "ZELB".to_owned(),
            evaluate_target_health: false,
        }),
        ..Record::default()
    }
}

fn db(id: &str, tier: u8, subnet: &str, sg: &str) -> DbInstance {
    DbInstance {
        id: id.to_owned(),
        arn: format!("arn:aws:rds:us-east-1:1:db:{id}"),
        class: "db.r5.large".to_owned(),
        engine: "postgres".to_owned(),
        tier,
        subnet_ids: vec![subnet.to_owned()],
        vpc_security_group_ids: vec![sg.to_owned()],
        endpoint_address: Some(format!("{id}.abc123.us-east-1.rds.amazonaws.com")),
        ..DbInstance::default()
    }
}

fn empty_inventory() -> Inventory {
    Inventory {
        primary_region: "us-east-1".to_owned(),
        dr_region: "us-west-2".to_owned(),
        ..Inventory::default()
    }
}

/// The estate of most tests:
///
/// - tier 1: `i-web1..3` (m5.large, identical spec, no data volume), `i-data1..2` (r5.xlarge,
///   one data volume each, both with DR snapshots), DB `db-main` (with a DR snapshot);
/// - tier 2: `i-app1` (c5.large), `i-app2` (c5.large, its data volume has **no** DR snapshot),
///   `i-old` (c5.large, its AMI has **no** DR copy, its group `sg-gone` is **not** mapped),
///   DB `db-reports` (**no** DR snapshot);
/// - classic `web-classic` (HTTPS 443 with a mapped certificate, a health check, `i-web1..2`);
/// - ALB `app-alb` (HTTP 80 → `tg-app`; HTTPS 443 with an **unmapped** certificate), target
///   groups `tg-app` (`i-app1..2`) and `tg-spare` (no targets);
/// - public zone `Z1`: alias A → classic, CNAME → ALB, CNAME → DB, A → `i-web1`'s IP, and an MX
///   pointing elsewhere; private zone `Z2` (VPC `vpc-1`): A → `i-app1`'s IP.
fn estate() -> Inventory {
    let mut inv = empty_inventory();
    inv.instances = vec![
        instance(
            "i-app1",
            2,
            "c5.large",
            "ami-app",
            "subnet-b",
            &["sg-app"],
            "10.0.2.21",
            &[],
        ),
        instance(
            "i-app2",
            2,
            "c5.large",
            "ami-app",
            "subnet-b",
            &["sg-app"],
            "10.0.2.22",
            &["vol-a2"],
        ),
        instance(
            "i-data1",
            1,
            "r5.xlarge",
            "ami-data",
            "subnet-a",
            &["sg-web", "sg-data"],
            "10.0.1.21",
            &["vol-d1"],
        ),
        instance(
            "i-data2",
            1,
            "r5.xlarge",
            "ami-data",
            "subnet-a",
            &["sg-web", "sg-data"],
            "10.0.1.22",
            &["vol-d2"],
        ),
        instance(
            "i-old",
            2,
            "c5.large",
            "ami-old",
            "subnet-b",
            &["sg-gone"],
            "10.0.2.99",
            &[],
        ),
        instance(
            "i-web1",
            1,
            "m5.large",
            "ami-web",
            "subnet-a",
            &["sg-web"],
            "10.0.1.11",
            &[],
        ),
        instance(
            "i-web2",
            1,
            "m5.large",
            "ami-web",
            "subnet-a",
            &["sg-web"],
            "10.0.1.12",
            &[],
        ),
        instance(
            "i-web3",
            1,
            "m5.large",
            "ami-web",
            "subnet-a",
            &["sg-web"],
            "10.0.1.13",
            &[],
        ),
    ];
    inv.db_instances = vec![
        db("db-main", 1, "subnet-a", "sg-data"),
        db("db-reports", 2, "subnet-b", "sg-app"),
    ];
    inv.classic_load_balancers = vec![ClassicLoadBalancer {
        name: "web-classic".to_owned(),
        dns_name: "web-classic-123.us-east-1.elb.amazonaws.com".to_owned(),
        subnet_ids: vec!["subnet-a".to_owned()],
        security_group_ids: vec!["sg-web".to_owned()],
        listeners: vec![ClassicListener {
            protocol: "HTTPS".to_owned(),
            port: 443,
            instance_protocol: Some("HTTP".to_owned()),
            instance_port: 80,
            certificate_arn: Some(WEB_CERT.to_owned()),
        }],
        health_check: Some(ClassicHealthCheck {
            target: "HTTP:80/health".to_owned(),
            interval_secs: 10,
            timeout_secs: 5,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }),
        instance_ids: vec!["i-web1".to_owned(), "i-web2".to_owned()],
        ..ClassicLoadBalancer::default()
    }];
    inv.load_balancers = vec![LoadBalancer {
        arn: ALB_ARN.to_owned(),
        name: "app-alb".to_owned(),
        kind: LoadBalancerKind::Application,
        dns_name: "app-alb-456.us-east-1.elb.amazonaws.com".to_owned(),
        subnet_ids: vec!["subnet-b".to_owned()],
        security_group_ids: vec!["sg-app".to_owned()],
        listeners: vec![
            Listener {
                arn: format!("{ALB_ARN}/l80"),
                port: 80,
                protocol: "HTTP".to_owned(),
                default_target_group_arns: vec!["arn:tg/app".to_owned()],
                ..Listener::default()
            },
            Listener {
                arn: format!("{ALB_ARN}/l443"),
                port: 443,
                protocol: "HTTPS".to_owned(),
                certificate_arns: vec![APP_CERT.to_owned()],
                default_target_group_arns: vec!["arn:tg/app".to_owned()],
                ..Listener::default()
            },
        ],
        target_groups: vec![
            TargetGroup {
                arn: "arn:tg/app".to_owned(),
                name: "tg-app".to_owned(),
                target_type: "instance".to_owned(),
                targets: vec![
                    Target {
                        id: "i-app1".to_owned(),
                        port: Some(8080),
                    },
                    Target {
                        id: "i-app2".to_owned(),
                        port: Some(8080),
                    },
                ],
                ..TargetGroup::default()
            },
            TargetGroup {
                arn: "arn:tg/spare".to_owned(),
                name: "tg-spare".to_owned(),
                target_type: "instance".to_owned(),
                ..TargetGroup::default()
            },
        ],
        ..LoadBalancer::default()
    }];
    inv.hosted_zones = vec![
        HostedZone {
            id: "Z1".to_owned(),
            name: "example.com.".to_owned(),
            records: vec![
                record(
                    "app.example.com.",
                    "CNAME",
                    &["app-alb-456.us-east-1.elb.amazonaws.com"],
                ),
                record(
                    "db.example.com.",
                    "CNAME",
                    &["db-main.abc123.us-east-1.rds.amazonaws.com"],
                ),
                record("host1.example.com.", "A", &["10.0.1.11"]),
                record("mail.example.com.", "MX", &["10 mail.other.net"]),
                alias(
                    "web.example.com.",
                    "dualstack.web-classic-123.us-east-1.elb.amazonaws.com.",
                ),
            ],
            ..HostedZone::default()
        },
        HostedZone {
            id: "Z2".to_owned(),
            name: "internal.example.".to_owned(),
            private: true,
            vpcs: vec![("us-east-1".to_owned(), "vpc-1".to_owned())],
            records: vec![record("app1.internal.example.", "A", &["10.0.2.21"])],
        },
    ];
    inv
}

fn dr_state() -> DrState {
    let pairs = |list: &[(&str, &str)]| -> BTreeMap<String, String> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    DrState {
        mappings: pairs(&[
            ("subnet-a", "subnet-dr-a"),
            ("subnet-b", "subnet-dr-b"),
            ("sg-web", "sg-dr-web"),
            ("sg-data", "sg-dr-data"),
            ("sg-app", "sg-dr-app"),
            ("vpc-1", "vpc-dr-1"),
        ]),
        volume_snapshots: [("vol-d1", "snap-dr-d1"), ("vol-d2", "snap-dr-d2")]
            .into_iter()
            .map(|(v, s)| (v.to_owned(), copy(s)))
            .collect(),
        images: [
            ("ami-web", "ami-dr-web"),
            ("ami-data", "ami-dr-data"),
            ("ami-app", "ami-dr-app"),
        ]
        .into_iter()
        .map(|(a, d)| (a.to_owned(), copy(d)))
        .collect(),
        db_snapshots: [("db-main".to_owned(), copy("dbsnap-dr-main"))].into(),
        db_cluster_snapshots: BTreeMap::new(),
        certificates: pairs(&[(WEB_CERT, "arn:aws:acm:us-west-2:1:certificate/web-dr")]),
    }
}

fn plan_of(
    inv: &Inventory,
    dr: &DrState,
    restore: &RestoreConfig,
    throttle: &ThrottleConfig,
) -> RestorePlan {
    let selection = select(inv, &[], &Scope::default()).expect("unscoped selection");
    restore_plan(inv, &selection, dr, restore, throttle)
}

fn calls(list: &[(&str, u64)]) -> CallCounts {
    list.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn group_sizes(tier: &TierPlan) -> Vec<(Vec<&str>, Vec<u32>)> {
    tier.groups
        .iter()
        .map(|g| {
            (
                g.instance_ids.iter().map(String::as_str).collect(),
                g.launches.clone(),
            )
        })
        .collect()
}

#[test]
fn estate_plan_tiers_groups_calls_and_schedule() {
    let plan = plan_of(
        &estate(),
        &dr_state(),
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );

    // Tiers ascending, with their instance types and databases.
    let tiers: Vec<u8> = plan.tiers.iter().map(|t| t.tier).collect();
    assert_eq!(tiers, [1, 2]);
    let (t1, t2) = (&plan.tiers[0], &plan.tiers[1]);
    assert_eq!(t1.instances, 5);
    assert_eq!(
        t1.instance_types,
        BTreeMap::from([("m5.large".to_owned(), 3), ("r5.xlarge".to_owned(), 2)])
    );
    assert_eq!(
        t2.instance_types,
        BTreeMap::from([("c5.large".to_owned(), 3)])
    );
    assert_eq!(plan.instance_count(), 8);
    assert_eq!(t1.databases[0].db_instance_id, "db-main");
    assert_eq!(t2.databases[0].db_instance_id, "db-reports");

    // Few instances: both volume methods fit in the bursts and finish at the same time, so
    // auto keeps block-device mappings (see `volume_methods_on_a_small_estate_tie`).
    assert_eq!(plan.volumes.chosen, VolumeMethod::BlockDeviceMapping);
    assert_eq!(plan.volumes.data_volumes, 3);

    // Block-device mappings: the three web servers share one spec and one launch; each data
    // server has its own snapshot, so its own group. Tier 2: i-app2's missing snapshot and
    // i-old's AMI make three specs.
    assert_eq!(
        group_sizes(t1),
        [
            (vec!["i-data1"], vec![1]),
            (vec!["i-data2"], vec![1]),
            (vec!["i-web1", "i-web2", "i-web3"], vec![3]),
        ]
    );
    assert_eq!(
        group_sizes(t2),
        [
            (vec!["i-app1"], vec![1]),
            (vec!["i-app2"], vec![1]),
            (vec!["i-old"], vec![1]),
        ]
    );
    let web = &t1.groups[2];
    assert_eq!(web.count, 3);
    assert!(web.group_id.starts_with("t1-") && web.group_id.len() == 19);
    assert_eq!(web.spec.image, DrRef::Dr("ami-dr-web".to_owned()));
    assert_eq!(web.spec.subnet, Some(DrRef::Dr("subnet-dr-a".to_owned())));
    assert!(web.spec.block_devices.is_empty());
    let data1 = &t1.groups[0].spec;
    // DR groups sorted, whatever the primary order.
    assert_eq!(
        data1.security_groups,
        [
            DrRef::Dr("sg-dr-data".to_owned()),
            DrRef::Dr("sg-dr-web".to_owned())
        ]
    );
    assert_eq!(data1.block_devices.len(), 1);
    assert_eq!(data1.block_devices[0].device_name, "/dev/sdf");
    assert_eq!(
        data1.block_devices[0].snapshot,
        DrRef::Dr("snap-dr-d1".to_owned())
    );
    let old = &t2.groups[2].spec;
    assert_eq!(old.image, DrRef::Missing("ami-old".to_owned()));
    assert_eq!(old.security_groups, [DrRef::Missing("sg-gone".to_owned())]);
    let ids: std::collections::BTreeSet<&str> = plan
        .tiers
        .iter()
        .flat_map(|t| &t.groups)
        .map(|g| g.group_id.as_str())
        .collect();
    assert_eq!(ids.len(), 6, "group ids are distinct");

    // Calls: 6 launches + 6 describes; the web launch (3 instances) tags each instance with its
    // own primary id (3 CreateTags; the one-instance launches are tagged at launch); classic:
    // create, health check, one registration; ALB: create, 2 target groups, 2 listeners, 1
    // registration (tg-spare has no target); 2 DB restores; DNS: 1 association (Z2), 2 batches
    // (one per zone), 2 GetChange.
    assert_eq!(
        plan.calls,
        calls(&[
            ("ec2:CreateTags", 3),
            ("ec2:DescribeInstances", 6),
            ("ec2:RunInstances", 6),
            ("elb:ConfigureHealthCheck", 1),
            ("elb:CreateLoadBalancer", 1),
            ("elb:RegisterInstancesWithLoadBalancer", 1),
            ("elbv2:CreateListener", 2),
            ("elbv2:CreateLoadBalancer", 1),
            ("elbv2:CreateTargetGroup", 2),
            ("elbv2:RegisterTargets", 1),
            ("rds:RestoreDBInstanceFromDBSnapshot", 2),
            ("route53:AssociateVPCWithHostedZone", 1),
            ("route53:ChangeResourceRecordSets", 2),
            ("route53:GetChange", 2),
        ])
    );
    assert_eq!(plan.call_count(), 31);
    assert_eq!(
        t1.calls,
        calls(&[
            ("ec2:CreateTags", 3),
            ("ec2:DescribeInstances", 3),
            ("ec2:RunInstances", 3),
            ("rds:RestoreDBInstanceFromDBSnapshot", 1),
        ])
    );
    assert_eq!(
        t2.calls,
        calls(&[
            ("ec2:DescribeInstances", 3),
            ("ec2:RunInstances", 3),
            ("rds:RestoreDBInstanceFromDBSnapshot", 1),
        ])
    );

    // Load balancers: registrations follow the selection.
    let classic = &plan.load_balancers[0];
    assert_eq!(classic.kind, LbKind::Classic);
    assert_eq!(classic.instance_ids, ["i-web1", "i-web2"]);
    assert!(classic.health_check);
    assert_eq!(
        classic.listeners[0].certificates,
        [DrRef::Dr(
            "arn:aws:acm:us-west-2:1:certificate/web-dr".to_owned()
        )]
    );
    let alb = &plan.load_balancers[1];
    assert_eq!(alb.kind, LbKind::Application);
    assert_eq!(alb.target_groups[0].instance_ids, ["i-app1", "i-app2"]);
    assert!(alb.target_groups[1].instance_ids.is_empty());
    assert_eq!(
        alb.listeners[1].certificates,
        [DrRef::Missing(APP_CERT.to_owned())]
    );

    // DNS: 4 of Z1's 5 records point at the restore (not the MX), and Z2's one.
    assert_eq!(plan.dns.records, 5);
    let z1 = &plan.dns.zones[0];
    assert_eq!(z1.zone_id, "Z1");
    assert_eq!(z1.associate_vpc, None);
    assert_eq!(z1.batches.len(), 1);
    let batch = &z1.batches[0];
    let pointed: Vec<(&str, Vec<&str>)> = batch
        .records
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.points_at.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        pointed,
        [
            ("app.example.com.", vec![ALB_ARN]),
            ("db.example.com.", vec!["db-main"]),
            ("host1.example.com.", vec!["i-web1"]),
            ("web.example.com.", vec!["web-classic"]),
        ]
    );
    // 4 UPSERTs: 8 change tokens; characters ×2: 39 (ALB name) + 42 (DB endpoint) + 15 (an
    // IPv4 value counts 15) + 0 (alias) = 96 → 192.
    assert_eq!(batch.change_tokens, 8);
    assert_eq!(batch.resource_record_units, 8);
    assert_eq!(batch.value_chars, 192);
    let z2 = &plan.dns.zones[1];
    assert!(z2.private);
    assert_eq!(z2.associate_vpc, Some(DrRef::Dr("vpc-dr-1".to_owned())));
    assert_eq!(z2.batches[0].records[0].points_at, ["i-app1"]);

    // Schedule: every bucket's burst covers this estate, so only the waits count.
    // Tier 1: 3 launches and the 3 tags at 0, up at 0 + 90. Tier 2 starts at 90 (RunInstances
    // refilled to 5), up at 180.
    let s = &plan.schedule;
    assert_secs(s.tiers[0].start_secs, 0.0, "tier 1 start");
    assert_secs(s.tiers[0].launches_done_secs, 0.0, "tier 1 launches");
    assert_secs(s.tiers[0].api_secs, 0.0, "tier 1 api");
    assert_secs(s.tiers[0].end_secs, 90.0, "tier 1 end");
    assert_secs(s.tiers[1].start_secs, 90.0, "tier 2 start");
    assert_secs(s.tiers[1].end_secs, 180.0, "tier 2 end");
    assert_eq!(s.tiers[0].binding, None);
    // LBs from 0: classic active at 120, registered at 90; tg-app registered once tier 2 runs
    // (180).
    let lb = s.load_balancers.expect("lb span");
    assert_secs(lb.start_secs, 0.0, "lb start");
    assert_secs(lb.end_secs, 180.0, "lb end");
    // DNS after both (180), in sync 60 s later.
    let dns = s.dns.expect("dns span");
    assert_secs(dns.start_secs, 180.0, "dns start");
    assert_secs(dns.end_secs, 240.0, "dns end");
    // RDS from 0, available after 900 s: the longest chain.
    let rds = s.databases.expect("rds span");
    assert_secs(rds.end_secs, 900.0, "rds end");
    assert_secs(s.total_secs, 900.0, "total");
    // Lower bound: the 6 launches of the whole plan exceed the RunInstances burst of 5 by one:
    // (6 − 5) / 2 = 0.5 s (in the schedule the tier gate lets the bucket refill in between).
    // Every other bucket's burst covers the estate.
    assert_secs(s.lower_bound.secs, 0.5, "lower bound");
    assert_eq!(s.lower_bound.binding.as_deref(), Some("ec2:RunInstances"));
    assert_secs(s.lower_bound.chains["elb+dns"], 0.0, "elb+dns chain");
    assert_secs(s.lower_bound.chains["rds"], 0.0, "rds chain");
}

#[test]
fn problems_are_listed_and_their_items_still_planned() {
    let plan = plan_of(
        &estate(),
        &dr_state(),
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    let listed: Vec<(ProblemKind, &str, &str)> = plan
        .problems
        .iter()
        .map(|p| (p.kind, p.resource_id.as_str(), p.missing_id.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (ProblemKind::ImageNotCopied, "i-old", "ami-old"),
            (ProblemKind::VolumeSnapshotMissing, "i-app2", "vol-a2"),
            (ProblemKind::SecurityGroupNotMapped, "i-old", "sg-gone"),
            (ProblemKind::DbSnapshotMissing, "db-reports", "db-reports"),
            (ProblemKind::CertificateNotMapped, ALB_ARN, APP_CERT),
        ]
    );
    assert!(plan.problems.iter().all(|p| !p.reason.is_empty()));
    // Still counted: i-old is launched, vol-a2 restored, db-reports restored.
    let t2 = &plan.tiers[1];
    assert!(t2.groups.iter().any(|g| g.instance_ids == ["i-old"]));
    assert_eq!(
        t2.data_volumes[0].volume.snapshot,
        DrRef::Missing("vol-a2".to_owned())
    );
    assert_eq!(
        t2.databases[0].snapshot,
        DrRef::Missing("db-reports".to_owned())
    );

    // A complete DR state leaves no problem.
    let mut dr = dr_state();
    dr.images.insert("ami-old".to_owned(), copy("ami-dr-old"));
    dr.mappings
        .insert("sg-gone".to_owned(), "sg-dr-gone".to_owned());
    dr.volume_snapshots
        .insert("vol-a2".to_owned(), copy("snap-dr-a2"));
    dr.db_snapshots
        .insert("db-reports".to_owned(), copy("dbsnap-dr-reports"));
    dr.certificates.insert(
        APP_CERT.to_owned(),
        "arn:aws:acm:us-west-2:1:certificate/app-dr".to_owned(),
    );
    let clean = plan_of(
        &estate(),
        &dr,
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    assert_eq!(clean.problems, []);
}

/// The estate plus Aurora cluster `ledger` (tier 1, writer `ledger-1` and reader `ledger-2`,
/// each tagged tier 3, which does not matter: they come back with their cluster) and a CNAME
/// to its reader endpoint.
fn estate_with_cluster() -> Inventory {
    let mut inv = estate();
    for (id, class) in [("ledger-2", "db.r6g.large"), ("ledger-1", "db.r6g.xlarge")] {
        inv.db_instances.push(DbInstance {
            engine: "aurora-postgresql".to_owned(),
            class: class.to_owned(),
            cluster_id: Some("ledger".to_owned()),
            ..db(id, 3, "subnet-a", "sg-data")
        });
    }
    inv.db_clusters = vec![DbCluster {
        id: "ledger".to_owned(),
        arn: "arn:aws:rds:us-east-1:1:cluster:ledger".to_owned(),
        engine: "aurora-postgresql".to_owned(),
        engine_version: Some("15.4".to_owned()),
        tier: 1,
        port: Some(5432),
        subnet_group: Some("ledger-subnets".to_owned()),
        subnet_ids: vec!["subnet-a".to_owned(), "subnet-b".to_owned()],
        vpc_security_group_ids: vec!["sg-data".to_owned()],
        endpoint: Some("ledger.cluster-abc.us-east-1.rds.amazonaws.com".to_owned()),
        reader_endpoint: Some("ledger.cluster-ro-abc.us-east-1.rds.amazonaws.com".to_owned()),
        members: vec![
            DbClusterMember {
                db_instance_id: "ledger-1".to_owned(),
                writer: true,
            },
            DbClusterMember {
                db_instance_id: "ledger-2".to_owned(),
                writer: false,
            },
        ],
        ..DbCluster::default()
    }];
    inv.hosted_zones[0].records.push(record(
        "ledger-ro.example.com.",
        "CNAME",
        &["ledger.cluster-ro-abc.us-east-1.rds.amazonaws.com"],
    ));
    inv.normalize();
    inv
}

#[test]
fn aurora_clusters_restore_with_their_members_in_the_cluster_tier() {
    let mut dr = dr_state();
    dr.db_cluster_snapshots
        .insert("ledger".to_owned(), copy("cluster-snap-dr"));
    let plan = plan_of(
        &estate_with_cluster(),
        &dr,
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    let t1 = &plan.tiers[0];
    assert_eq!(t1.tier, 1);
    assert_eq!(t1.clusters.len(), 1);
    let c = &t1.clusters[0];
    assert_eq!(c.db_cluster_id, "ledger");
    assert_eq!(c.engine, "aurora-postgresql");
    assert_eq!(c.engine_version.as_deref(), Some("15.4"));
    assert_eq!(c.port, Some(5432));
    assert_eq!(c.snapshot, DrRef::Dr("cluster-snap-dr".to_owned()));
    assert_eq!(
        c.subnets,
        [
            DrRef::Dr("subnet-dr-a".to_owned()),
            DrRef::Dr("subnet-dr-b".to_owned())
        ]
    );
    assert_eq!(c.security_groups, [DrRef::Dr("sg-dr-data".to_owned())]);
    // The writer first, each with its own class.
    let members: Vec<(&str, &str, bool)> = c
        .members
        .iter()
        .map(|m| (m.db_instance_id.as_str(), m.class.as_str(), m.writer))
        .collect();
    assert_eq!(
        members,
        [
            ("ledger-1", "db.r6g.xlarge", true),
            ("ledger-2", "db.r6g.large", false)
        ]
    );
    // Members are not DB restores of their own, and tier 3 (their own tag) does not exist.
    let dbs: Vec<&str> = plan
        .tiers
        .iter()
        .flat_map(|t| &t.databases)
        .map(|d| d.db_instance_id.as_str())
        .collect();
    assert_eq!(dbs, ["db-main", "db-reports"]);
    let tiers: Vec<u8> = plan.tiers.iter().map(|t| t.tier).collect();
    assert_eq!(tiers, [1, 2]);

    // One cluster restore and one CreateDBInstance per member, counted in tier 1.
    assert_eq!(plan.calls["rds:RestoreDBClusterFromSnapshot"], 1);
    assert_eq!(plan.calls["rds:CreateDBInstance"], 2);
    assert_eq!(plan.calls["rds:RestoreDBInstanceFromDBSnapshot"], 2);
    assert_eq!(t1.calls["rds:RestoreDBClusterFromSnapshot"], 1);
    assert_eq!(t1.calls["rds:CreateDBInstance"], 2);
    // Four RDS calls from t = 0, all inside the RDS burst: the last one goes at once, so the
    // databases are available 900 s later.
    let rds = plan.schedule.databases.expect("rds span");
    assert_secs(rds.start_secs, 0.0, "rds start");
    assert_secs(rds.end_secs, 900.0, "rds end");

    // The CNAME to the reader endpoint is cut over, pointing at the cluster.
    let changes: Vec<(&str, &[String])> = plan
        .dns
        .zones
        .iter()
        .flat_map(|z| z.batches.iter().flat_map(|b| &b.records))
        .map(|r| (r.name.as_str(), r.points_at.as_slice()))
        .collect();
    assert!(
        changes
            .iter()
            .any(|(n, p)| *n == "ledger-ro.example.com." && *p == ["ledger".to_owned()]),
        "{changes:?}"
    );
    assert!(
        !plan
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::DbClusterSnapshotMissing)
    );
}

#[test]
fn an_aurora_cluster_without_a_dr_cluster_snapshot_is_a_problem() {
    let plan = plan_of(
        &estate_with_cluster(),
        &dr_state(),
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    let missing: Vec<(&str, &str)> = plan
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::DbClusterSnapshotMissing)
        .map(|p| (p.resource_id.as_str(), p.missing_id.as_str()))
        .collect();
    assert_eq!(missing, [("ledger", "ledger")]);
    // Still planned and counted, with the snapshot missing.
    let c = &plan.tiers[0].clusters[0];
    assert_eq!(c.snapshot, DrRef::Missing("ledger".to_owned()));
    assert_eq!(plan.calls["rds:RestoreDBClusterFromSnapshot"], 1);
    // An unmirrored cluster subnet is named too.
    let mut dr = dr_state();
    dr.mappings.remove("subnet-b");
    let plan = plan_of(
        &estate_with_cluster(),
        &dr,
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    assert!(
        plan.problems
            .iter()
            .any(|p| p.kind == ProblemKind::SubnetNotMapped
                && p.resource_id == "ledger"
                && p.missing_id == "subnet-b")
    );
}

#[test]
fn plans_written_before_clusters_still_load() {
    let plan = plan_of(
        &estate(),
        &dr_state(),
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    let mut value = serde_json::to_value(&plan).unwrap();
    for tier in value["tiers"].as_array_mut().unwrap() {
        tier.as_object_mut().unwrap().remove("clusters");
    }
    let back: RestorePlan = serde_json::from_value(value).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn volume_methods_on_a_small_estate_tie() {
    // Create + attach: tier 1 launches web (3) and data (2) at 0, creates 2 volumes at 0 and
    // attaches them when the data servers run (0 + 90): up at 90. Tier 2 launches app (2,
    // i-app2's volume no longer splits it) and old (1) at 90, attaches vol-a2 at 180: up at 180.
    // Block-device mappings: tier 1 up at 90, tier 2 at 180. A tie: auto keeps the mappings.
    let restore = RestoreConfig {
        data_volumes: VolumeStrategy::CreateAttach,
        ..RestoreConfig::default()
    };
    let plan = plan_of(&estate(), &dr_state(), &restore, &ThrottleConfig::default());
    assert_eq!(plan.volumes.configured, VolumeStrategy::CreateAttach);
    assert_eq!(plan.volumes.chosen, VolumeMethod::CreateAttach);
    assert_secs(
        plan.volumes.block_device_mapping_ec2_secs,
        180.0,
        "bdm estimate",
    );
    assert_secs(
        plan.volumes.create_attach_ec2_secs,
        180.0,
        "create/attach estimate",
    );
    assert_eq!(
        group_sizes(&plan.tiers[0]),
        [
            (vec!["i-data1", "i-data2"], vec![2]),
            (vec!["i-web1", "i-web2", "i-web3"], vec![3]),
        ]
    );
    assert_eq!(
        group_sizes(&plan.tiers[1]),
        [
            (vec!["i-app1", "i-app2"], vec![2]),
            (vec!["i-old"], vec![1])
        ]
    );
    assert!(plan.tiers[0].groups[0].spec.block_devices.is_empty());
    // CreateTags: one per instance of the launches of 2, 3 and 2; i-old launches alone.
    for (op, n) in [
        ("ec2:RunInstances", 4),
        ("ec2:DescribeInstances", 4),
        ("ec2:CreateTags", 7),
        ("ec2:CreateVolume", 3),
        ("ec2:AttachVolume", 3),
    ] {
        assert_eq!(plan.calls[op], n, "{op}");
    }
    // Attachments wait for their instance: tier 2's last one goes at 180, 90 s after its start.
    assert_secs(plan.schedule.tiers[1].api_secs, 90.0, "tier 2 api");
    assert_secs(plan.schedule.tiers[1].end_secs, 180.0, "tier 2 end");
}

#[test]
fn batching_and_fixed_ips_shape_the_launches() {
    // Two per call: the web group (3) needs launches of 2 and 1 → 7 RunInstances.
    let two = RestoreConfig {
        max_instances_per_call: 2,
        ..RestoreConfig::default()
    };
    let plan = plan_of(&estate(), &dr_state(), &two, &ThrottleConfig::default());
    assert_eq!(plan.tiers[0].groups[2].launches, [2, 1]);
    assert_eq!(plan.calls["ec2:RunInstances"], 7);
    // Only the launch of 2 needs its instances tagged one by one.
    assert_eq!(plan.calls["ec2:CreateTags"], 2);

    // Fixed IPs: one instance per launch, 8 RunInstances, each asking for its IP.
    let fixed = RestoreConfig {
        preserve_private_ips: true,
        ..RestoreConfig::default()
    };
    let plan = plan_of(&estate(), &dr_state(), &fixed, &ThrottleConfig::default());
    assert_eq!(plan.tiers[0].groups.len(), 5);
    assert!(
        plan.tiers
            .iter()
            .flat_map(|t| &t.groups)
            .all(|g| g.count == 1)
    );
    assert_eq!(
        plan.tiers[0].groups[2].spec.private_ip.as_deref(),
        Some("10.0.1.11")
    );
    assert_eq!(plan.calls["ec2:RunInstances"], 8);
    assert!(!plan.calls.contains_key("ec2:CreateTags"));
}

/// `n` tier-1 instances with one spec; with `volumes`, each has its own data volume (with a
/// DR snapshot).
fn fleet(n: usize, volumes: bool) -> (Inventory, DrState) {
    let mut inv = empty_inventory();
    let mut dr = DrState::default();
    dr.images.insert("ami-x".to_owned(), copy("ami-dr-x"));
    dr.mappings
        .insert("subnet-a".to_owned(), "subnet-dr-a".to_owned());
    dr.mappings.insert("sg-a".to_owned(), "sg-dr-a".to_owned());
    for k in 0..n {
        let id = format!("i-{k:05}");
        let volume = format!("vol-{k:05}");
        let data: Vec<&str> = if volumes {
            vec![volume.as_str()]
        } else {
            Vec::new()
        };
        inv.instances.push(instance(
            &id,
            1,
            "m5.large",
            "ami-x",
            "subnet-a",
            &["sg-a"],
            &format!("10.1.{}.{}", k / 250, k % 250),
            &data,
        ));
        if volumes {
            dr.volume_snapshots
                .insert(volume.clone(), copy(&format!("snap-dr-{k:05}")));
        }
    }
    (inv, dr)
}

#[test]
fn batched_launches_are_bound_by_the_resource_bucket() {
    // 1,200 instances in batches of 100: 12 RunInstances, and 1,200 CreateTags (each instance
    // of a batch gets its own pilotlight:source).
    // Lower bound: CreateTags (1,200 − 100) / 10 = 110 s; resource bucket (1,200 − 1,000) / 2 =
    // 100 s; request bucket (12 − 5) / 2 = 3.5 s; 12 filtered describes fit the 100 burst.
    // Simulated: calls 1–5 at 0 (resource 1,000 → 500), calls 6–10 every 0.5 s on the request
    // bucket (resource: 500 + 1 − 100 … → 5 left at 2.5 s); call 11 needs 100 resource tokens:
    // 2.5 + 95 / 2 = 50 s; call 12: 50 + 100 / 2 = 100 s. Up at 100 + 90 = 190 s.
    // Tags, in launch order: the first 100 at 0, then tag j at (j − 100) / 10, never before its
    // launch (launch 11's tags 1,001–1,100 go at 90.1–100 s, after it): the last at 110 s,
    // during launch 12's boot. The tier's end is still set by launch 12 on the resource bucket.
    let (inv, dr) = fleet(1200, false);
    let plan = plan_of(
        &inv,
        &dr,
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    assert_eq!(plan.tiers[0].groups.len(), 1);
    assert_eq!(plan.tiers[0].groups[0].launches, vec![100; 12]);
    assert_eq!(plan.calls["ec2:RunInstances"], 12);
    assert_eq!(plan.calls["ec2:DescribeInstances"], 12);
    assert_eq!(plan.calls["ec2:CreateTags"], 1200);
    let bound = &plan.schedule.lower_bound;
    assert_secs(bound.secs, 110.0, "lower bound");
    assert_eq!(bound.binding.as_deref(), Some("ec2:CreateTags"));
    assert_secs(bound.chains["ec2"], 110.0, "ec2 chain");
    assert_secs(bound.chains["elb"], 0.0, "elb chain");
    assert_secs(
        bound.buckets["ec2:RunInstances#resource"].drain_secs,
        100.0,
        "resource bucket",
    );
    assert_secs(
        bound.buckets["ec2:RunInstances"].drain_secs,
        3.5,
        "request bucket",
    );
    assert_secs(
        bound.buckets["ec2:RunInstances#resource"].tokens,
        1200.0,
        "resource tokens",
    );
    let tier = &plan.schedule.tiers[0];
    assert_secs(tier.launches_done_secs, 100.0, "launches done");
    assert_secs(tier.api_secs, 110.0, "last tag");
    assert_secs(tier.end_secs, 190.0, "tier end");
    assert_eq!(tier.binding.as_deref(), Some("ec2:RunInstances#resource"));
    assert_secs(plan.schedule.total_secs, 190.0, "total");
}

#[test]
fn batched_launches_tag_each_instance_with_its_source() {
    // 4 tier-1 instances of one spec, 3 per call: a launch of 3 and a launch of 1. The launch
    // of 1 carries its pilotlight:source in its TagSpecifications; the launch of 3 can only
    // share tags, so its instances are tagged one by one: 3 CreateTags, in the plan and in the
    // tier, through the CreateTags bucket (100 / 10 per s: 3 tokens drain in 0 s).
    let (inv, dr) = fleet(4, false);
    let three = RestoreConfig {
        max_instances_per_call: 3,
        ..RestoreConfig::default()
    };
    let plan = plan_of(&inv, &dr, &three, &ThrottleConfig::default());
    assert_eq!(plan.tiers[0].groups[0].launches, [3, 1]);
    let expected = calls(&[
        ("ec2:CreateTags", 3),
        ("ec2:DescribeInstances", 2),
        ("ec2:RunInstances", 2),
    ]);
    assert_eq!(plan.calls, expected);
    assert_eq!(plan.tiers[0].calls, expected);
    let tags = &plan.schedule.lower_bound.buckets["ec2:CreateTags"];
    assert_secs(tags.capacity, 100.0, "tag bucket capacity");
    assert_secs(tags.refill_per_sec, 10.0, "tag bucket refill");
    assert_secs(tags.tokens, 3.0, "tag tokens");
    assert_secs(tags.drain_secs, 0.0, "tag drain");
    // The tags go out as the launch returns (0 s), during the boot wait: up at 90 s.
    let tier = &plan.schedule.tiers[0];
    assert_secs(tier.api_secs, 0.0, "tags at launch");
    assert_secs(tier.end_secs, 90.0, "tier end");
    assert_eq!(tier.binding, None);

    // A starved CreateTags bucket (burst 1, 0.01 per s): tags at 0, 100 and 200 s. The tier is
    // up only once its instances are tagged: at 200 s, not 90 s, bound by CreateTags; the
    // bound is (3 − 1) / 0.01 = 200 s.
    let starved = ThrottleConfig {
        time_scale: 1.0,
        overrides: BTreeMap::from([(
            "ec2:CreateTags".to_owned(),
            ThrottleOverride {
                burst: 1,
                refill_per_sec: 0.01,
            },
        )]),
    };
    let plan = plan_of(&inv, &dr, &three, &starved);
    let tier = &plan.schedule.tiers[0];
    assert_secs(tier.api_secs, 200.0, "last tag");
    assert_secs(tier.end_secs, 200.0, "tier end after its tags");
    assert_eq!(tier.binding.as_deref(), Some("ec2:CreateTags"));
    assert_secs(plan.schedule.total_secs, 200.0, "total");
    let bound = &plan.schedule.lower_bound;
    assert_secs(bound.secs, 200.0, "lower bound");
    assert_eq!(bound.binding.as_deref(), Some("ec2:CreateTags"));
    assert_secs(bound.chains["ec2"], 200.0, "ec2 chain");
    assert_secs(
        plan.volumes.block_device_mapping_ec2_secs,
        200.0,
        "the volume-method estimate counts the tags",
    );
}

#[test]
fn throttle_overrides_and_time_scale_change_the_estimate() {
    let (inv, dr) = fleet(1200, false);
    // Resource bucket overridden to 1,000 / 10 per s: (1,200 − 1,000) / 10 = 20 s.
    // Simulated: calls 6–10 at 0.5 … 2.5 s leave 25 resource tokens; call 11 at
    // 2.5 + 75 / 10 = 10 s; call 12 at 10 + 100 / 10 = 20 s. CreateTags overridden to 100 / 100
    // per s: its 1,200 tags drain in (1,200 − 100) / 100 = 11 s, so the resource bucket binds.
    let overridden = ThrottleConfig {
        time_scale: 1.0,
        overrides: BTreeMap::from([
            (
                "ec2:RunInstances#resource".to_owned(),
                ThrottleOverride {
                    burst: 1000,
                    refill_per_sec: 10.0,
                },
            ),
            (
                "ec2:CreateTags".to_owned(),
                ThrottleOverride {
                    burst: 100,
                    refill_per_sec: 100.0,
                },
            ),
        ]),
    };
    let plan = plan_of(&inv, &dr, &RestoreConfig::default(), &overridden);
    assert_secs(plan.schedule.lower_bound.secs, 20.0, "overridden bound");
    assert_eq!(
        plan.schedule.lower_bound.binding.as_deref(),
        Some("ec2:RunInstances#resource")
    );
    assert_secs(
        plan.schedule.lower_bound.buckets["ec2:CreateTags"].drain_secs,
        11.0,
        "overridden tags",
    );
    assert_secs(
        plan.schedule.tiers[0].launches_done_secs,
        20.0,
        "overridden launches",
    );
    assert_eq!(
        plan.schedule.lower_bound.buckets["ec2:RunInstances#resource"].refill_per_sec,
        10.0
    );

    // time_scale 2: every refill doubles: (1,200 − 1,000) / 4 = 50 s on the resource bucket,
    // (1,200 − 100) / 20 = 55 s on CreateTags, which binds. Simulated: calls 6–10 every 0.25 s
    // leave 5 tokens at 1.25 s; call 11 at 1.25 + 95 / 4 = 25 s; call 12 at 25 + 100 / 4 =
    // 50 s; the last tag at 55 s. The boot wait is not scaled: up at 140 s.
    let scaled = ThrottleConfig {
        time_scale: 2.0,
        overrides: BTreeMap::new(),
    };
    let plan = plan_of(&inv, &dr, &RestoreConfig::default(), &scaled);
    assert_secs(plan.schedule.lower_bound.secs, 55.0, "scaled bound");
    assert_secs(
        plan.schedule.lower_bound.buckets["ec2:RunInstances#resource"].drain_secs,
        50.0,
        "scaled resource drain",
    );
    assert_secs(plan.schedule.tiers[0].api_secs, 55.0, "scaled last tag");
    assert_secs(
        plan.schedule.tiers[0].launches_done_secs,
        50.0,
        "scaled launches",
    );
    assert_secs(plan.schedule.tiers[0].end_secs, 140.0, "scaled end");
}

#[test]
fn auto_picks_create_attach_when_per_instance_launches_bind_the_request_bucket() {
    // 1,200 instances, each with its own data volume.
    // Block-device mappings: 1,200 one-instance launches; the request bucket binds:
    // launch k at (k − 5) / 2 → the last at 597.5 s, up at 687.5 s.
    // Create + attach: 12 launches (last at 100 s, as above); CreateVolume k at (k − 100) / 5
    // (last at 220 s); attachments from 90 s (first instances running), 50 at once then 5 per
    // s: attachment k at 90 + (k − 50) / 5, each after its volume and its instance's boot
    // (launch 12 runs at 190 s); the last at 90 + 1,150 / 5 = 320 s. 320 < 687.5.
    let (inv, dr) = fleet(1200, true);
    let plan = plan_of(
        &inv,
        &dr,
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    assert_eq!(plan.volumes.configured, VolumeStrategy::Auto);
    assert_eq!(plan.volumes.chosen, VolumeMethod::CreateAttach);
    assert_secs(
        plan.volumes.block_device_mapping_ec2_secs,
        687.5,
        "bdm estimate",
    );
    assert_secs(
        plan.volumes.create_attach_ec2_secs,
        320.0,
        "create/attach estimate",
    );
    assert_secs(plan.schedule.tiers[0].end_secs, 320.0, "tier end");
    assert_eq!(
        plan.schedule.tiers[0].binding.as_deref(),
        Some("ec2:AttachVolume")
    );
    for (op, n) in [
        ("ec2:RunInstances", 12),
        ("ec2:CreateTags", 1200),
        ("ec2:CreateVolume", 1200),
        ("ec2:AttachVolume", 1200),
    ] {
        assert_eq!(plan.calls[op], n, "{op}");
    }
    // Lower bound: AttachVolume (1,200 − 50) / 5 = 230 s; CreateVolume (1,200 − 100) / 5 =
    // 220 s; CreateTags (1,200 − 100) / 10 = 110 s; RunInstances resource 100 s.
    let bound = &plan.schedule.lower_bound;
    assert_secs(bound.secs, 230.0, "lower bound");
    assert_eq!(bound.binding.as_deref(), Some("ec2:AttachVolume"));
    assert_secs(
        bound.buckets["ec2:CreateVolume"].drain_secs,
        220.0,
        "create drain",
    );

    // Forced block-device mappings: (1,200 − 5) / 2 = 597.5 s on the request bucket.
    let bdm = RestoreConfig {
        data_volumes: VolumeStrategy::BlockDeviceMapping,
        ..RestoreConfig::default()
    };
    let plan = plan_of(&inv, &dr, &bdm, &ThrottleConfig::default());
    assert_eq!(plan.volumes.chosen, VolumeMethod::BlockDeviceMapping);
    assert_eq!(plan.tiers[0].groups.len(), 1200);
    // One instance per launch: each is tagged at launch, no CreateTags.
    assert!(!plan.calls.contains_key("ec2:CreateTags"));
    assert_secs(plan.schedule.lower_bound.secs, 597.5, "bdm bound");
    assert_eq!(
        plan.schedule.lower_bound.binding.as_deref(),
        Some("ec2:RunInstances")
    );
    assert_secs(
        plan.schedule.tiers[0].launches_done_secs,
        597.5,
        "bdm launches",
    );
}

#[test]
fn load_balancer_creation_then_dns_is_one_chain() {
    // 15 classic load balancers and 800 alias records pointing at them, no instances.
    // ELB creation: (15 − 10) / 0.2 = 25 s. Route 53 changes: 800 UPSERTs = 1,600 tokens,
    // (1,600 − 1,500) / 100 = 1 s. The DNS waits for the load balancers: 25 + 1 = 26 s > 25 s.
    let mut inv = empty_inventory();
    for k in 0..15 {
        inv.classic_load_balancers.push(ClassicLoadBalancer {
            name: format!("lb-{k:02}"),
            dns_name: format!("lb-{k:02}-1.us-east-1.elb.amazonaws.com"),
            ..ClassicLoadBalancer::default()
        });
    }
    inv.hosted_zones.push(HostedZone {
        id: "Z1".to_owned(),
        name: "example.com.".to_owned(),
        records: (0..800)
            .map(|k| {
                alias(
                    &format!("r{k:03}.example.com."),
                    &format!("lb-{:02}-1.us-east-1.elb.amazonaws.com.", k % 15),
                )
            })
            .collect(),
        ..HostedZone::default()
    });
    let plan = plan_of(
        &inv,
        &DrState::default(),
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    let bound = &plan.schedule.lower_bound;
    assert_secs(bound.chains["elb"], 25.0, "elb chain");
    assert_secs(bound.chains["elb+dns"], 26.0, "elb+dns chain");
    assert_secs(bound.secs, 26.0, "lower bound");
    assert_eq!(
        bound.binding.as_deref(),
        Some("elb:category:resource_intensive + route53:changes")
    );
    // 2 units per alias UPSERT: 500 then 300 records.
    let sizes: Vec<usize> = plan.dns.zones[0]
        .batches
        .iter()
        .map(|b| b.records.len())
        .collect();
    assert_eq!(sizes, [500, 300]);
    // Simulated: creations at 0 (×10), 5, 10, 15, 20, 25; the last active at 145. Batch 1 at
    // 145 (1,000 of 1,500 change tokens), in sync at 205; batch 2 then (600 tokens, refilled),
    // in sync at 265.
    let lb = plan.schedule.load_balancers.expect("lb span");
    assert_secs(lb.end_secs, 145.0, "lb end");
    let dns = plan.schedule.dns.expect("dns span");
    assert_secs(dns.start_secs, 145.0, "dns start");
    assert_secs(dns.end_secs, 265.0, "dns end");
    assert_secs(plan.schedule.total_secs, 265.0, "total");
    assert!(plan.schedule.tiers.is_empty());
}

#[test]
fn six_hundred_upserts_split_into_two_batches() {
    // 600 single-value A records → 1,200 units > 1,000: batches of 500 (1,000 units) and 100.
    let mut inv = empty_inventory();
    inv.instances.push(instance(
        "i-1",
        1,
        "m5.large",
        "ami-x",
        "subnet-a",
        &[],
        "10.0.0.1",
        &[],
    ));
    inv.hosted_zones.push(HostedZone {
        id: "Z1".to_owned(),
        name: "example.com.".to_owned(),
        records: (0..600)
            .map(|k| record(&format!("h{k:03}.example.com."), "A", &["10.0.0.1"]))
            .collect(),
        ..HostedZone::default()
    });
    let plan = plan_of(
        &inv,
        &DrState::default(),
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    let batches = &plan.dns.zones[0].batches;
    let shape: Vec<(usize, u32)> = batches
        .iter()
        .map(|b| (b.records.len(), b.change_tokens))
        .collect();
    assert_eq!(shape, [(500, 1000), (100, 200)]);
    assert!(batches.iter().all(|b| b.records.len() <= 500));
    // 500 × 15 characters × 2 = 15,000, under 32,000.
    assert_eq!(batches[0].value_chars, 15_000);
    assert_eq!(plan.calls["route53:ChangeResourceRecordSets"], 2);
    assert_eq!(plan.calls["route53:GetChange"], 2);
}

#[test]
fn value_characters_limit_a_batch() {
    // 400 CNAMEs to a 50-character name: 100 counted characters each, so 320 fit 32,000
    // (the 1,000-unit limit would allow 500).
    let name = format!("{}.us-east-1.elb.amazonaws.com", "x".repeat(22));
    assert_eq!(name.len(), 50);
    let mut inv = empty_inventory();
    inv.classic_load_balancers.push(ClassicLoadBalancer {
        name: "lb".to_owned(),
        dns_name: name.clone(),
        ..ClassicLoadBalancer::default()
    });
    inv.hosted_zones.push(HostedZone {
        id: "Z1".to_owned(),
        name: "example.com.".to_owned(),
        records: (0..400)
            .map(|k| record(&format!("c{k:03}.example.com."), "CNAME", &[&name]))
            .collect(),
        ..HostedZone::default()
    });
    let plan = plan_of(
        &inv,
        &DrState::default(),
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    let shape: Vec<(usize, u32)> = plan.dns.zones[0]
        .batches
        .iter()
        .map(|b| (b.records.len(), b.value_chars))
        .collect();
    assert_eq!(shape, [(320, 32_000), (80, 8_000)]);
}

#[test]
fn the_plan_is_deterministic_and_round_trips() {
    let restore = RestoreConfig::default();
    let throttle = ThrottleConfig::default();
    let a = plan_of(&estate(), &dr_state(), &restore, &throttle);
    let b = plan_of(&estate(), &dr_state(), &restore, &throttle);
    assert_eq!(a, b);
    let text = serde_json::to_string(&a).expect("serialise");
    let back: RestorePlan = serde_json::from_str(&text).expect("deserialise");
    assert_eq!(a, back);
    // A change to a launch spec changes its group id and no other.
    let mut changed = estate();
    for i in &mut changed.instances {
        if i.id.starts_with("i-web") {
            i.key_name = Some("other".to_owned());
        }
    }
    let c = plan_of(&changed, &dr_state(), &restore, &throttle);
    let ids = |p: &RestorePlan| -> Vec<String> {
        p.tiers[0]
            .groups
            .iter()
            .map(|g| g.group_id.clone())
            .collect()
    };
    let (before, after) = (ids(&a), ids(&c));
    assert_eq!(before[..2], after[..2]);
    assert_ne!(before[2], after[2]);
}

#[test]
fn case_study_scale_meets_the_documented_floors() {
    // shared/AWS-LIMITS.md's restore: 3,000 instances in 3 tiers of 1,000 with 2 data volumes
    // each, 100 ALBs (one target group, one listener each), 4,000 records in 4 zones, 50 RDS.
    let mut inv = empty_inventory();
    let mut dr = DrState::default();
    dr.images.insert("ami-x".to_owned(), copy("ami-dr-x"));
    dr.mappings
        .insert("subnet-a".to_owned(), "subnet-dr-a".to_owned());
    let ip = |k: usize| format!("10.2.{}.{}", k / 250, k % 250);
    for k in 0..3000 {
        let (a, b) = (format!("vol-{k:04}-a"), format!("vol-{k:04}-b"));
        inv.instances.push(instance(
            &format!("i-{k:04}"),
            (k / 1000 + 1) as u8,
            "m5.large",
            "ami-x",
            "subnet-a",
            &[],
            &ip(k),
            &[&a, &b],
        ));
        dr.volume_snapshots
            .insert(a.clone(), copy(&a.replace("vol", "snap")));
        dr.volume_snapshots
            .insert(b.clone(), copy(&b.replace("vol", "snap")));
    }
    for j in 0..100 {
        let arn = format!("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/lb-{j:03}/1");
        inv.load_balancers.push(LoadBalancer {
            arn: arn.clone(),
            name: format!("lb-{j:03}"),
            dns_name: format!("lb-{j:03}-1.us-east-1.elb.amazonaws.com"),
            listeners: vec![Listener {
                arn: format!("{arn}/l80"),
                port: 80,
                protocol: "HTTP".to_owned(),
                ..Listener::default()
            }],
            target_groups: vec![TargetGroup {
                arn: format!("arn:tg/{j:03}"),
                name: format!("tg-{j:03}"),
                target_type: "instance".to_owned(),
                targets: (0..30)
                    .map(|n| Target {
                        id: format!("i-{:04}", n * 100 + j),
                        port: Some(80),
                    })
                    .collect(),
                ..TargetGroup::default()
            }],
            ..LoadBalancer::default()
        });
    }
    for z in 0..4 {
        inv.hosted_zones.push(HostedZone {
            id: format!("Z{z}"),
            name: format!("zone{z}.example."),
            records: (0..1000)
                .map(|r| {
                    let i = z * 1000 + r;
                    let name = format!("r{r:04}.zone{z}.example.");
                    if i < 3000 {
                        record(&name, "A", &[&ip(i)])
                    } else {
                        alias(
                            &name,
                            &format!("lb-{:03}-1.us-east-1.elb.amazonaws.com", i % 100),
                        )
                    }
                })
                .collect(),
            ..HostedZone::default()
        });
    }
    for d in 0..50 {
        let id = format!("db-{d:02}");
        inv.db_instances
            .push(db(&id, (d % 3 + 1) as u8, "subnet-a", "sg-none"));
        dr.db_snapshots.insert(id, copy("dbsnap"));
        dr.mappings
            .insert("sg-none".to_owned(), "sg-dr-none".to_owned());
    }

    let plan = plan_of(
        &inv,
        &dr,
        &RestoreConfig::default(),
        &ThrottleConfig::default(),
    );
    assert_eq!(plan.problems, []);

    // Block-device mappings: 1,000 one-instance launches per tier, (1,000 − 5) / 2 = 497.5 s
    // each (the request bucket refills to 5 during the boot wait), plus 90 s boot: 587.5,
    // 1,175, 1,762.5 s.
    // Create + attach: tier 1 launches 10 × 100 (done at 2.5 s) and its gate passes when the
    // last launch runs, at 92.5 s; its 2,000 attachments go from 90 s: 90 + 1,950 / 5 = 480 s.
    // Tier 2 launches from 92.5 s while tier 1 attaches: the resource bucket is empty after
    // tier 1, so its 1,000 instances go at 2 per second until 500 s (gate 590 s); tier 3's
    // until 1,000 s. The attachment stream never idles after 90 s: 6,000 attachments end at
    // 90 + 5,950 / 5 = 1,280 s, tier 2's at 880 s.
    assert_eq!(plan.volumes.chosen, VolumeMethod::CreateAttach);
    assert_secs(
        plan.volumes.block_device_mapping_ec2_secs,
        1762.5,
        "bdm estimate",
    );
    assert_secs(
        plan.volumes.create_attach_ec2_secs,
        1280.0,
        "create/attach estimate",
    );
    let ends: Vec<f64> = plan.schedule.tiers.iter().map(|t| t.end_secs).collect();
    assert_secs(ends[0], 480.0, "tier 1");
    assert_secs(ends[1], 880.0, "tier 2");
    assert_secs(ends[2], 1280.0, "tier 3");
    let starts: Vec<f64> = plan.schedule.tiers.iter().map(|t| t.start_secs).collect();
    assert_secs(starts[1], 92.5, "tier 2 start (tier 1's gate)");
    assert_secs(starts[2], 590.0, "tier 3 start (tier 2's gate)");
    assert_secs(
        plan.schedule.tiers[1].launches_done_secs,
        500.0,
        "tier 2 launches",
    );

    for (op, n) in [
        ("ec2:RunInstances", 30),
        ("ec2:DescribeInstances", 30),
        ("ec2:CreateTags", 3000),
        ("ec2:CreateVolume", 6000),
        ("ec2:AttachVolume", 6000),
        ("elbv2:CreateLoadBalancer", 100),
        ("elbv2:CreateTargetGroup", 100),
        ("elbv2:CreateListener", 100),
        ("elbv2:RegisterTargets", 100),
        ("route53:ChangeResourceRecordSets", 8),
        ("route53:GetChange", 8),
        ("rds:RestoreDBInstanceFromDBSnapshot", 50),
    ] {
        assert_eq!(plan.calls[op], n, "{op}");
    }

    // The documented floors: AttachVolume (6,000 − 50) / 5 = 1,190 s (CreateVolume 1,180 s,
    // RunInstances resource (3,000 − 1,000) / 2 = 1,000 s, unique source tags
    // (3,000 − 100) / 10 = 290 s, not binding); ELB creation (100 − 10) / 0.2 =
    // 450 s, then 4,000 UPSERTs (8,000 − 1,500) / 100 = 65 s: 515 s; RDS inside its burst.
    let bound = &plan.schedule.lower_bound;
    assert_secs(bound.secs, 1190.0, "lower bound");
    assert_eq!(bound.binding.as_deref(), Some("ec2:AttachVolume"));
    assert_secs(bound.chains["elb"], 450.0, "elb chain");
    assert_secs(bound.chains["elb+dns"], 515.0, "elb+dns chain");
    assert_secs(bound.chains["rds"], 0.0, "rds chain");
    assert_secs(
        bound.buckets["ec2:RunInstances#resource"].drain_secs,
        1000.0,
        "resource drain",
    );
    assert_secs(
        bound.buckets["ec2:CreateTags"].drain_secs,
        290.0,
        "tag drain",
    );
    // The EC2 chain ends within 1.25× of the API floor (SPEC's restore target); the whole
    // estimate is never below the floor.
    assert!(
        ends[2] <= 1.25 * bound.secs,
        "{} vs {}",
        ends[2],
        bound.secs
    );
    assert!(plan.schedule.total_secs >= bound.secs);
}
