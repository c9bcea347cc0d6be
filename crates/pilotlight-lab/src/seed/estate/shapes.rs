//! The built-in estates: the estate part of [`EstateSpec::sample`] and the case study's shape
//! ([`EstateSpec::case_study`]), both pure functions of their arguments.

use std::collections::BTreeMap;

use super::{
    AlwaysOnSpec, CertificateSpec, ClassicListenerSpec, ClassicLoadBalancerSpec, DataVolumeSpec,
    FleetSpec, HealthCheckSpec, LoadBalancerSpec, Protocol, RecordSpec, Scheme, TargetGroupSpec,
    V2ListenerSpec, V2LoadBalancerSpec, ZoneSpec,
};
use crate::seed::{
    DbInstanceSpec, DbNetworkSpec, EstateSpec, ImageSpec, IngressRule, RouteSpec, RouteTableSpec,
    RouteTarget, SecurityGroupSpec, SubnetSpec, VpcSpec,
};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn data_volume(device: &str, size_gib: u32) -> DataVolumeSpec {
    DataVolumeSpec {
        size_gib,
        device: device.to_owned(),
        volume_type: "gp3".to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn fleet(
    name: &str,
    count: u32,
    instance_type: &str,
    tier: u8,
    cluster: &str,
    subnets: &[&str],
    image: &str,
    groups: &[&str],
    data_volumes: Vec<DataVolumeSpec>,
) -> FleetSpec {
    FleetSpec {
        name: name.to_owned(),
        count,
        instance_type: instance_type.to_owned(),
        tier,
        cluster: cluster.to_owned(),
        vpc: "prod".to_owned(),
        subnets: names(subnets),
        image: image.to_owned(),
        data_volumes,
        snapshot_data_volumes: true,
        security_groups: names(groups),
        role: None,
        tags: BTreeMap::from([("app".to_owned(), "shop".to_owned())]),
    }
}

fn always_on_services() -> Vec<AlwaysOnSpec> {
    [
        ("directory", "t3.medium"),
        ("build", "c5.xlarge"),
        ("monitoring", "m5.large"),
    ]
    .into_iter()
    .map(|(service, instance_type)| AlwaysOnSpec {
        service: service.to_owned(),
        instance_type: instance_type.to_owned(),
        count: 1,
    })
    .collect()
}

/// The estate sections of the sample.
pub(crate) type SampleParts = (
    Vec<FleetSpec>,
    Vec<CertificateSpec>,
    Vec<LoadBalancerSpec>,
    Vec<ZoneSpec>,
    Vec<AlwaysOnSpec>,
);

/// The estate part of [`EstateSpec::sample`], on the sample's `prod` VPC, its AMIs and its
/// `orders-db`:
///
/// - 12 instances in 5 fleets over tiers 1–3 and families c5, m5, r5, in 4 clusters: `web`
///   (4 × c5.large, tier 1, `storefront`, one 10 GiB data volume each), `api` (3 × m5.large,
///   tier 1, `checkout`, 20 + 8 GiB data volumes), `cache` (2 × r5.large, tier 2) and `search`
///   (1 × r5.xlarge, tier 2) both in `shared-services`, `batch` (2 × m5.xlarge, tier 3,
///   `reporting`); every data volume snapshotted once;
/// - certificates `public` (`shop.example.com`, also `www.shop.example.com`) and `internal`
///   (`api.corp.example.com`), both with DR counterparts;
/// - `shop-alb`: internet-facing application load balancer over `web-a`/`web-b`, HTTPS 443
///   (certificate `public`) and HTTP 80, forwarding to `web` on 8080; `api-elb`: internal
///   classic load balancer over `app-a`/`app-b`, HTTPS 443 → 8080 (certificate `internal`)
///   and HTTP 80 → 8080, health check `HTTP:8080/health`, instances of `api`;
/// - public zone `example.com`: alias `shop` → `shop-alb`, `CNAME` `www.shop` → `shop-alb`,
///   literal `A` `status`, apex `TXT`; private zone `corp.example.com` (VPC `prod`): `A`
///   `web-01`, `web-02`, `cache-01`, `search-01` → instance IPs, `CNAME` `api` → `api-elb`,
///   `CNAME` `orders-db` → the `orders-db` endpoint, alias `api-lb` → `api-elb`, `TXT` `_meta`;
/// - always-on `directory`, `build` and `monitoring` in the DR region.
pub(crate) fn sample_parts() -> SampleParts {
    // `shared-services` is one cluster that several tenants use; which tenants share it is
    // capacity-planning configuration (R8), not part of the lab's estate.
    let fleets = vec![
        fleet(
            "web",
            4,
            "c5.large",
            1,
            "storefront",
            &["web-a", "web-b"],
            "web-ami",
            &["web"],
            vec![data_volume("/dev/sdf", 10)],
        ),
        fleet(
            "api",
            3,
            "m5.large",
            1,
            "checkout",
            &["app-a", "app-b"],
            "web-ami",
            &["app"],
            vec![data_volume("/dev/sdf", 20), data_volume("/dev/sdg", 8)],
        ),
        fleet(
            "cache",
            2,
            "r5.large",
            2,
            "shared-services",
            &["app-a", "app-b"],
            "batch-ami",
            &["app"],
            Vec::new(),
        ),
        fleet(
            "search",
            1,
            "r5.xlarge",
            2,
            "shared-services",
            &["data-c"],
            "batch-ami",
            &["db"],
            Vec::new(),
        ),
        fleet(
            "batch",
            2,
            "m5.xlarge",
            3,
            "reporting",
            &["app-b"],
            "batch-ami",
            &["app"],
            Vec::new(),
        ),
    ];
    let certificates = vec![
        CertificateSpec {
            name: "public".into(),
            domain: "shop.example.com".into(),
            subject_alternative_names: names(&["www.shop.example.com"]),
            dr_counterpart: true,
        },
        CertificateSpec {
            name: "internal".into(),
            domain: "api.corp.example.com".into(),
            subject_alternative_names: Vec::new(),
            dr_counterpart: true,
        },
    ];
    let load_balancers = vec![
        LoadBalancerSpec::Application(V2LoadBalancerSpec {
            name: "shop-alb".into(),
            scheme: Scheme::InternetFacing,
            vpc: "prod".into(),
            subnets: names(&["web-a", "web-b"]),
            security_groups: names(&["web"]),
            listeners: vec![
                V2ListenerSpec {
                    protocol: Protocol::Https,
                    port: 443,
                    certificate: Some("public".into()),
                },
                V2ListenerSpec {
                    protocol: Protocol::Http,
                    port: 80,
                    certificate: None,
                },
            ],
            target_group: TargetGroupSpec {
                protocol: Protocol::Http,
                port: 8080,
                health_check_path: Some("/health".into()),
            },
            fleets: names(&["web"]),
        }),
        LoadBalancerSpec::Classic(ClassicLoadBalancerSpec {
            name: "api-elb".into(),
            scheme: Scheme::Internal,
            vpc: "prod".into(),
            subnets: names(&["app-a", "app-b"]),
            security_groups: names(&["app"]),
            listeners: vec![
                ClassicListenerSpec {
                    protocol: Protocol::Https,
                    port: 443,
                    instance_port: 8080,
                    certificate: Some("internal".into()),
                },
                ClassicListenerSpec {
                    protocol: Protocol::Http,
                    port: 80,
                    instance_port: 8080,
                    certificate: None,
                },
            ],
            health_check: Some(HealthCheckSpec {
                target: "HTTP:8080/health".into(),
                interval_secs: 30,
                timeout_secs: 5,
                healthy_threshold: 3,
                unhealthy_threshold: 2,
            }),
            fleets: names(&["api"]),
        }),
    ];
    let instance = |name: &str, fleet: &str, index: u32| RecordSpec::Instance {
        name: name.into(),
        fleet: fleet.into(),
        index,
        ttl: 60,
    };
    let zones = vec![
        ZoneSpec {
            name: "example.com".into(),
            private: false,
            vpc: None,
            records: vec![
                RecordSpec::LbAlias {
                    name: "shop".into(),
                    load_balancer: "shop-alb".into(),
                    evaluate_target_health: true,
                },
                RecordSpec::LbCname {
                    name: "www.shop".into(),
                    load_balancer: "shop-alb".into(),
                    ttl: 300,
                },
                RecordSpec::A {
                    name: "status".into(),
                    values: names(&["203.0.113.10"]),
                    ttl: 300,
                },
                RecordSpec::Txt {
                    name: "@".into(),
                    values: names(&["v=spf1 -all"]),
                    ttl: 3600,
                },
            ],
        },
        ZoneSpec {
            name: "corp.example.com".into(),
            private: true,
            vpc: Some("prod".into()),
            records: vec![
                instance("web-01", "web", 1),
                instance("web-02", "web", 2),
                instance("cache-01", "cache", 1),
                instance("search-01", "search", 1),
                RecordSpec::LbCname {
                    name: "api".into(),
                    load_balancer: "api-elb".into(),
                    ttl: 300,
                },
                RecordSpec::DbCname {
                    name: "orders-db".into(),
                    db: "orders-db".into(),
                    ttl: 300,
                },
                RecordSpec::LbAlias {
                    name: "api-lb".into(),
                    load_balancer: "api-elb".into(),
                    evaluate_target_health: false,
                },
                RecordSpec::Txt {
                    name: "_meta".into(),
                    values: names(&["owner=platform", "dr=pilotlight"]),
                    ttl: 300,
                },
            ],
        },
    ];
    (
        fleets,
        certificates,
        load_balancers,
        zones,
        always_on_services(),
    )
}

/// `round(n * scale)`, at least 1 (a non-finite or negative scale counts as 0).
pub(crate) fn scaled(n: usize, scale: f64) -> usize {
    let scale = if scale.is_finite() {
        scale.max(0.0)
    } else {
        0.0
    };
    let value = (n as f64 * scale).round();
    // Bounded by `n * scale`; saturates on absurd scales.
    (if value >= usize::MAX as f64 {
        usize::MAX
    } else {
        value as usize
    })
    .max(1)
}

/// Instances per fleet in the case study.
const FLEET_SIZE: usize = 50;
const FAMILIES: [&str; 3] = ["m5", "r5", "c5"];
const SIZES: [&str; 3] = ["large", "xlarge", "2xlarge"];
const ZONES: usize = 8;
/// Every `PRIVATE_EVERY`-th zone is private (the last of each group).
const PRIVATE_EVERY: usize = 4;

fn cs_subnet(name: &str, cidr: &str, az: &str, public: bool) -> SubnetSpec {
    SubnetSpec {
        name: name.to_owned(),
        cidr: cidr.to_owned(),
        az: az.to_owned(),
        public,
    }
}

fn rule(port: i32, cidrs: &[&str], groups: &[&str]) -> IngressRule {
    IngressRule {
        protocol: "tcp".to_owned(),
        from_port: port,
        to_port: port,
        cidrs: names(cidrs),
        source_groups: names(groups),
    }
}

fn case_study_vpc() -> VpcSpec {
    VpcSpec {
        name: "prod".into(),
        cidr: "10.0.0.0/16".into(),
        secondary_cidrs: Vec::new(),
        internet_gateway: true,
        subnets: vec![
            cs_subnet("public-a", "10.0.0.0/20", "a", true),
            cs_subnet("public-b", "10.0.16.0/20", "b", true),
            cs_subnet("public-c", "10.0.32.0/20", "c", true),
            cs_subnet("private-a", "10.0.64.0/18", "a", false),
            cs_subnet("private-b", "10.0.128.0/18", "b", false),
            cs_subnet("private-c", "10.0.192.0/18", "c", false),
        ],
        security_groups: vec![
            SecurityGroupSpec {
                name: "lb".into(),
                description: "load balancers".into(),
                ingress: vec![
                    rule(443, &["0.0.0.0/0"], &[]),
                    rule(80, &["0.0.0.0/0"], &[]),
                ],
            },
            SecurityGroupSpec {
                name: "app".into(),
                description: "application servers".into(),
                ingress: vec![rule(8080, &["10.0.0.0/16"], &["lb"])],
            },
            SecurityGroupSpec {
                name: "db".into(),
                description: "databases".into(),
                ingress: vec![rule(5432, &[], &["app"])],
            },
        ],
        route_tables: vec![RouteTableSpec {
            name: "public".into(),
            subnets: names(&["public-a", "public-b", "public-c"]),
            routes: vec![RouteSpec {
                destination_cidr: "0.0.0.0/0".into(),
                target: RouteTarget::Igw,
            }],
        }],
    }
}

/// The case study's shape (`seed/sprinklr-dr-case-study.ko.txt`) scaled by `scale`; see
/// [`EstateSpec::case_study`].
pub(crate) fn case_study(scale: f64) -> EstateSpec {
    const PRIVATE: [&str; 3] = ["private-a", "private-b", "private-c"];
    const PUBLIC: [&str; 3] = ["public-a", "public-b", "public-c"];
    let total = scaled(3000, scale);
    // Tiers 1/2/3 at 20/30/50 %, each at least 1.
    let t1 = scaled(total, 0.2);
    let t2 = scaled(total, 0.3);
    let t3 = total.saturating_sub(t1 + t2).max(1);
    let images: Vec<ImageSpec> = (1..=3u8)
        .map(|tier| ImageSpec {
            name: format!("tier{tier}-ami"),
            instances: 0,
            tier,
            root_gib: 8,
            instance_type: "t3.micro".into(),
            vpc: None,
            subnet: None,
        })
        .collect();

    let mut fleets = Vec::new();
    for (tier, count) in [(1u8, t1), (2, t2), (3, t3)] {
        let groups = count.div_ceil(FLEET_SIZE);
        for g in 0..groups {
            let size = count / groups + usize::from(g < count % groups);
            let n = fleets.len();
            let family = FAMILIES[n % FAMILIES.len()];
            let instance_type = format!("{family}.{}", SIZES[(n / FAMILIES.len()) % SIZES.len()]);
            let name = format!("t{tier}-{family}-{n:03}");
            fleets.push(FleetSpec {
                role: Some(format!("svc-{n:03}")),
                // Two fleets per cluster.
                cluster: format!("cluster-{:03}", n / 2),
                data_volumes: vec![data_volume("/dev/sdf", 100), data_volume("/dev/sdg", 250)],
                tags: BTreeMap::new(),
                ..fleet(
                    &name,
                    u32::try_from(size).unwrap_or(u32::MAX),
                    &instance_type,
                    tier,
                    "",
                    &PRIVATE,
                    &format!("tier{tier}-ami"),
                    &["app"],
                    Vec::new(),
                )
            });
        }
    }

    let zones_n = scaled(ZONES, scale).min(ZONES);
    let certificates: Vec<CertificateSpec> = (0..zones_n)
        .map(|z| CertificateSpec {
            name: format!("zone-{z}"),
            domain: format!("*.z{z}.example.com"),
            subject_alternative_names: Vec::new(),
            dr_counterpart: true,
        })
        .collect();

    let lbs_n = scaled(100, scale);
    let load_balancers: Vec<LoadBalancerSpec> = (0..lbs_n)
        .map(|i| {
            let fleet = fleets[i % fleets.len()].name.clone();
            let certificate = format!("zone-{}", i % zones_n);
            match i % 4 {
                0 | 1 => LoadBalancerSpec::Application(V2LoadBalancerSpec {
                    name: format!("alb-{i:03}"),
                    scheme: Scheme::InternetFacing,
                    vpc: "prod".into(),
                    subnets: names(&PUBLIC),
                    security_groups: names(&["lb"]),
                    listeners: vec![V2ListenerSpec {
                        protocol: Protocol::Https,
                        port: 443,
                        certificate: Some(certificate),
                    }],
                    target_group: TargetGroupSpec {
                        protocol: Protocol::Http,
                        port: 8080,
                        health_check_path: Some("/health".into()),
                    },
                    fleets: vec![fleet],
                }),
                2 => LoadBalancerSpec::Network(V2LoadBalancerSpec {
                    name: format!("nlb-{i:03}"),
                    scheme: Scheme::Internal,
                    vpc: "prod".into(),
                    subnets: names(&PRIVATE),
                    security_groups: Vec::new(),
                    listeners: vec![V2ListenerSpec {
                        protocol: Protocol::Tcp,
                        port: 443,
                        certificate: None,
                    }],
                    target_group: TargetGroupSpec {
                        protocol: Protocol::Tcp,
                        port: 8443,
                        health_check_path: None,
                    },
                    fleets: vec![fleet],
                }),
                _ => LoadBalancerSpec::Classic(ClassicLoadBalancerSpec {
                    name: format!("elb-{i:03}"),
                    scheme: Scheme::Internal,
                    vpc: "prod".into(),
                    subnets: names(&PRIVATE),
                    security_groups: names(&["lb"]),
                    listeners: vec![ClassicListenerSpec {
                        protocol: Protocol::Https,
                        port: 443,
                        instance_port: 8080,
                        certificate: Some(certificate),
                    }],
                    health_check: Some(HealthCheckSpec {
                        target: "HTTP:8080/health".into(),
                        interval_secs: 30,
                        timeout_secs: 5,
                        healthy_threshold: 3,
                        unhealthy_threshold: 2,
                    }),
                    fleets: vec![fleet],
                }),
            }
        })
        .collect();

    let dbs_n = scaled(50, scale);
    let db_instances: Vec<DbInstanceSpec> = (0..dbs_n)
        .map(|d| DbInstanceSpec {
            name: format!("db-{d:03}"),
            engine: if d % 2 == 0 { "postgres" } else { "mysql" }.into(),
            class: "db.r5.large".into(),
            size_gib: 100,
            tier: u8::try_from(d % 3 + 1).unwrap_or(3),
            snapshots: 1,
            network: Some(DbNetworkSpec::new(
                "prod",
                &["private-a", "private-b", "private-c"],
                &["db"],
            )),
        })
        .collect();

    // Every instance by (fleet, index), for A records.
    let instances: Vec<(&str, u32)> = fleets
        .iter()
        .flat_map(|f| (1..=f.count).map(move |i| (f.name.as_str(), i)))
        .collect();
    let records_n = scaled(4000, scale);
    let mut zones: Vec<ZoneSpec> = (0..zones_n)
        .map(|z| {
            // With a single zone it is public.
            let private = zones_n > 1 && z % PRIVATE_EVERY == PRIVATE_EVERY - 1;
            ZoneSpec {
                name: format!("z{z}.example.com"),
                private,
                vpc: private.then(|| "prod".to_owned()),
                records: Vec::new(),
            }
        })
        .collect();
    let mut next_instance = 0;
    for i in 0..records_n {
        let name = format!("h{i:05}");
        let record = match i % 20 {
            0 => RecordSpec::LbAlias {
                name,
                load_balancer: load_balancers[i % lbs_n].name().to_owned(),
                evaluate_target_health: false,
            },
            1 | 2 => RecordSpec::LbCname {
                name,
                load_balancer: load_balancers[i % lbs_n].name().to_owned(),
                ttl: 300,
            },
            3 => RecordSpec::DbCname {
                name,
                db: db_instances[i % dbs_n].name.clone(),
                ttl: 300,
            },
            4 => RecordSpec::Txt {
                name,
                values: vec![format!("record {i}")],
                ttl: 300,
            },
            5 => RecordSpec::A {
                name,
                values: vec![format!("198.51.100.{}", i % 250 + 1)],
                ttl: 300,
            },
            _ => {
                let (fleet, index) = instances[next_instance % instances.len()];
                next_instance += 1;
                RecordSpec::Instance {
                    name,
                    fleet: fleet.to_owned(),
                    index,
                    ttl: 60,
                }
            }
        };
        zones[i % zones_n].records.push(record);
    }

    EstateSpec {
        vpcs: vec![case_study_vpc()],
        images,
        db_instances,
        fleets,
        certificates,
        load_balancers,
        zones,
        always_on: always_on_services(),
        ..EstateSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_rounds_with_a_floor_of_one() {
        assert_eq!(scaled(3000, 1.0), 3000);
        assert_eq!(scaled(3000, 0.01), 30);
        assert_eq!(scaled(50, 0.01), 1);
        assert_eq!(scaled(100, 0.0), 1);
        assert_eq!(scaled(100, -3.0), 1);
        assert_eq!(scaled(100, f64::NAN), 1);
        assert_eq!(scaled(100, 0.5), 50);
    }
}
