//! Declarative estate seeding for the lab's PRIMARY region (and, for [`seed_estate`], the
//! always-on services and certificate counterparts in the DR region).
//!
//! An [`EstateSpec`] (serde; TOML or JSON) describes VPCs with secondary CIDRs, an internet
//! gateway, subnets by AZ letter, security groups whose rules may reference other groups of the
//! same VPC, and route tables; and the data pilotlight copies ([`data`]): EBS volumes with
//! snapshots, RDS instances and Aurora clusters with manual snapshots, AMIs with instances.
//! [`seed_with_rds`] validates the whole spec first (reporting every problem at once), then
//! creates it through the given clients, tagging every resource with `Name` (and the data with
//! `dr:tier`), and returns the name → id maps ([`SeededEstate`]); [`seed`] does the same with an
//! EC2 client only and leaves the spec's RDS part out. Only the lab mutates the primary region
//! this way; pilotlight itself never does. Throttled calls (`RequestLimitExceeded` or
//! `Throttling` from the realism proxy) are retried with backoff until [`THROTTLE_DEADLINE`].
//! [`EstateSpec::scaled`] generates benchmark estates of thousands of volumes.
//!
//! The rest of an estate ([`estate`]) — fleets of instances with data volumes, certificates,
//! load balancers, hosted zones with records, always-on DR services — is seeded by
//! [`seed_estate`], which does everything [`seed_with_rds`] does first;
//! [`EstateSpec::case_study`] scales the case study's shape for benchmarks.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    AttributeBooleanValue, IpPermission, IpRange, ResourceType, Tag, TagSpecification,
    UserIdGroupPair,
};
use serde::{Deserialize, Serialize};

use crate::error::LabError;

pub mod data;
pub mod estate;
pub mod metrics;
pub mod s3;

pub use data::{
    DbClusterSpec, DbInstanceSpec, DbNetworkSpec, ImageSpec, SEED_CONCURRENCY, SeededDb,
    SeededDbSnapshot, SeededImage, SeededVolume, TIER_TAG, VolumeSpec, add_snapshot,
};
pub use estate::{
    ALWAYS_ON_TAG, AlwaysOnSpec, CLUSTER_TAG, CertificateSpec, ClassicListenerSpec,
    ClassicLoadBalancerSpec, DataVolumeSpec, FleetSpec, HealthCheckSpec, LoadBalancerKind,
    LoadBalancerSpec, Protocol, ROLE_TAG, RecordSpec, Scheme, SeededCertificate, SeededDataVolume,
    SeededInstance, SeededLoadBalancer, SeededRecord, SeededZone, TargetGroupSpec, V2ListenerSpec,
    V2LoadBalancerSpec, ZoneSpec, classic_elb_hosted_zone, seed_estate,
};

/// How long one seeding call keeps retrying while throttled.
pub const THROTTLE_DEADLINE: Duration = Duration::from_secs(120);

/// A whole estate: its VPCs and its data. Every list is optional (default empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstateSpec {
    #[serde(default)]
    pub vpcs: Vec<VpcSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db_instances: Vec<DbInstanceSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db_clusters: Vec<DbClusterSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageSpec>,
    /// EC2 instances by fleet ([`estate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleets: Vec<FleetSpec>,
    /// ACM certificates, imported into both regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateSpec>,
    /// Classic, application and network load balancers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<LoadBalancerSpec>,
    /// Route 53 hosted zones and their records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneSpec>,
    /// The always-on services of the pilot light, in the DR region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always_on: Vec<AlwaysOnSpec>,
}

/// One VPC and everything in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcSpec {
    pub name: String,
    pub cidr: String,
    #[serde(default)]
    pub secondary_cidrs: Vec<String>,
    /// Create and attach an internet gateway (route target `igw`).
    #[serde(default)]
    pub internet_gateway: bool,
    #[serde(default)]
    pub subnets: Vec<SubnetSpec>,
    #[serde(default)]
    pub security_groups: Vec<SecurityGroupSpec>,
    #[serde(default)]
    pub route_tables: Vec<RouteTableSpec>,
}

/// A subnet in the AZ `<region><az>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    pub name: String,
    pub cidr: String,
    /// The AZ letter, `a` to `f`.
    pub az: String,
    /// Map public IPs on launch.
    #[serde(default)]
    pub public: bool,
}

/// A security group and its ingress rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupSpec {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub ingress: Vec<IngressRule>,
}

/// One ingress permission: from CIDRs and/or from other groups of the same VPC (by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    #[serde(default)]
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub source_groups: Vec<String>,
}

/// A route table, its routes and the subnets associated with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTableSpec {
    pub name: String,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub destination_cidr: String,
    pub target: RouteTarget,
}

/// Where a route goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteTarget {
    /// The VPC's internet gateway.
    Igw,
    /// The VPC itself: AWS creates these routes for every VPC CIDR, so they are only checked.
    Local,
}

fn ingress(protocol: &str, port: i32, cidrs: &[&str], groups: &[&str]) -> IngressRule {
    IngressRule {
        protocol: protocol.to_owned(),
        from_port: port,
        to_port: port,
        cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
        source_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn subnet(name: &str, cidr: &str, az: &str, public: bool) -> SubnetSpec {
    SubnetSpec {
        name: name.to_owned(),
        cidr: cidr.to_owned(),
        az: az.to_owned(),
        public,
    }
}

impl EstateSpec {
    /// A small but complete estate: VPC `prod` (10.20.0.0/16 plus secondary 10.21.0.0/16,
    /// an internet gateway, five subnets over AZs a–c, two of them public behind a public route
    /// table, security groups `web`/`app`/`db` where `app` and `db` reference each other) and
    /// VPC `mgmt` (10.30.0.0/16, one subnet, a `bastion` group); six small volumes (2–8 GiB)
    /// over tiers 1–3 with two or three snapshots each; DB instances `orders-db` (postgres) and
    /// `reports-db` (mysql) with two snapshots each; Aurora cluster `ledger` (in `prod/app-a,b`) with one snapshot;
    /// AMIs `web-ami` (two instances in `prod/web-a`) and `batch-ami` (one in `prod/app-a`).
    /// And the estate around them (seeded by [`seed_estate`] only): 12 instances in 5 fleets
    /// over tiers 1–3, families c5/m5/r5 and 4 clusters, data volumes on the tier-1 ones; an
    /// internet-facing ALB with HTTPS and an internal classic ELB; a public and a private zone
    /// with `A`, `CNAME` and alias records (one `CNAME` to `orders-db`); two certificates with
    /// DR counterparts; always-on `directory`, `build` and `monitoring` in the DR region
    /// (details: `estate::shapes::sample_parts`).
    pub fn sample() -> EstateSpec {
        let prod = VpcSpec {
            name: "prod".into(),
            cidr: "10.20.0.0/16".into(),
            secondary_cidrs: vec!["10.21.0.0/16".into()],
            internet_gateway: true,
            subnets: vec![
                subnet("web-a", "10.20.1.0/24", "a", true),
                subnet("web-b", "10.20.2.0/24", "b", true),
                subnet("app-a", "10.20.11.0/24", "a", false),
                subnet("app-b", "10.20.12.0/24", "b", false),
                subnet("data-c", "10.21.1.0/24", "c", false),
            ],
            security_groups: vec![
                SecurityGroupSpec {
                    name: "web".into(),
                    description: "public web tier".into(),
                    ingress: vec![
                        ingress("tcp", 443, &["0.0.0.0/0"], &[]),
                        ingress("tcp", 80, &["0.0.0.0/0"], &[]),
                    ],
                },
                SecurityGroupSpec {
                    name: "app".into(),
                    description: "application tier".into(),
                    ingress: vec![
                        ingress("tcp", 8080, &[], &["web"]),
                        ingress("tcp", 9100, &[], &["db"]),
                    ],
                },
                SecurityGroupSpec {
                    name: "db".into(),
                    description: "database tier".into(),
                    ingress: vec![ingress("tcp", 5432, &["10.30.0.0/16"], &["app"])],
                },
            ],
            route_tables: vec![RouteTableSpec {
                name: "public".into(),
                subnets: vec!["web-a".into(), "web-b".into()],
                routes: vec![
                    RouteSpec {
                        destination_cidr: "0.0.0.0/0".into(),
                        target: RouteTarget::Igw,
                    },
                    RouteSpec {
                        destination_cidr: "10.20.0.0/16".into(),
                        target: RouteTarget::Local,
                    },
                ],
            }],
        };
        let mgmt = VpcSpec {
            name: "mgmt".into(),
            cidr: "10.30.0.0/16".into(),
            secondary_cidrs: Vec::new(),
            internet_gateway: false,
            subnets: vec![subnet("mgmt-a", "10.30.1.0/24", "a", false)],
            security_groups: vec![SecurityGroupSpec {
                name: "bastion".into(),
                description: "operator access".into(),
                ingress: vec![ingress("tcp", 22, &["10.20.0.0/16"], &[])],
            }],
            route_tables: Vec::new(),
        };
        let (volumes, db_instances, db_clusters, images) = data::sample_data();
        let (fleets, certificates, load_balancers, zones, always_on) = estate::sample_parts();
        EstateSpec {
            vpcs: vec![prod, mgmt],
            volumes,
            db_instances,
            db_clusters,
            images,
            fleets,
            certificates,
            load_balancers,
            zones,
            always_on,
        }
    }

    /// The case study's estate (`seed/sprinklr-dr-case-study.ko.txt`) scaled by `scale`, each
    /// count rounded and at least 1: 3,000 instances over tiers 1/2/3 (20/30/50 %) in fleets of
    /// at most 50 (families m5, r5, c5; two fleets per cluster) with two data volumes each
    /// (100 and 250 GiB, snapshotted) in VPC `prod` (three public and three private subnets
    /// over AZs a–c); 100 load balancers (half internet-facing application ones with HTTPS,
    /// a quarter internal network ones, a quarter internal classic ones with HTTPS); 8 zones
    /// (every fourth private; one public zone when scaled to one) with one wildcard certificate
    /// each (DR counterparts too); 4,000 records over the zones (70 % instance `A`, 10 %
    /// `CNAME` to load balancers, 5 % each alias, `CNAME` to databases, literal `A` and `TXT`);
    /// 50 RDS instances with one snapshot each; the always-on `directory`, `build` and
    /// `monitoring`. Deterministic for a given `scale`. For benchmarks: at `scale = 1` seeding
    /// makes tens of thousands of calls.
    pub fn case_study(scale: f64) -> EstateSpec {
        estate::case_study(scale)
    }

    /// A benchmark estate: `volumes` EBS volumes with one snapshot each, tiers 1/2/3 in about
    /// 20/30/50 %, sizes from 8 GiB to 1 TiB (mostly small), over AZs a–c; the same `seed`
    /// always gives the same estate. No VPCs, databases or images. Seeding it costs two calls
    /// per volume, [`SEED_CONCURRENCY`] at a time; through a proxy that enforces AWS's limits,
    /// `CreateVolume`/`CreateSnapshot` (100 burst, 5/s) pace it unless `time_scale` is raised.
    pub fn scaled(volumes: usize, seed: u64) -> EstateSpec {
        EstateSpec {
            volumes: data::scaled_volumes(volumes, seed),
            ..EstateSpec::default()
        }
    }

    /// Parses a TOML spec.
    ///
    /// # Errors
    ///
    /// [`LabError::SpecParse`] on a syntax error or an unknown field.
    pub fn from_toml_str(text: &str) -> Result<EstateSpec, LabError> {
        toml::from_str(text).map_err(|e| LabError::SpecParse {
            origin: "TOML".to_owned(),
            source: Box::new(e),
        })
    }

    /// Parses a JSON spec.
    ///
    /// # Errors
    ///
    /// [`LabError::SpecParse`] on a syntax error or an unknown field.
    pub fn from_json_str(text: &str) -> Result<EstateSpec, LabError> {
        serde_json::from_str(text).map_err(|e| LabError::SpecParse {
            origin: "JSON".to_owned(),
            source: Box::new(e),
        })
    }

    /// Reads a spec file: JSON if it ends in `.json`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// [`LabError::Io`] when the file cannot be read, [`LabError::SpecParse`] when it does not
    /// parse.
    pub fn load(path: &Path) -> Result<EstateSpec, LabError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LabError::io(format!("reading estate spec {}", path.display()), e))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        parsed.map_err(|e| match e {
            LabError::SpecParse { source, .. } => LabError::SpecParse {
                origin: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Checks names, references, AZ letters, route targets, tiers, sizes and RDS identifiers;
    /// lists every problem found.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidSpec`] with all the problems.
    pub fn validate(&self) -> Result<(), LabError> {
        let mut problems = Vec::new();
        let mut vpc_names = BTreeSet::new();
        for vpc in &self.vpcs {
            let v = &vpc.name;
            if v.is_empty() {
                problems.push("a VPC has an empty name".to_owned());
            }
            if !vpc_names.insert(v.as_str()) {
                problems.push(format!("VPC {v:?} is defined twice"));
            }
            for cidr in std::iter::once(&vpc.cidr).chain(&vpc.secondary_cidrs) {
                if !looks_like_cidr(cidr) {
                    problems.push(format!("VPC {v:?}: {cidr:?} is not an IPv4 CIDR"));
                }
            }
            let mut subnets = BTreeSet::new();
            for s in &vpc.subnets {
                if !subnets.insert(s.name.as_str()) {
                    problems.push(format!("VPC {v:?}: subnet {:?} is defined twice", s.name));
                }
                if !matches!(s.az.as_str(), "a" | "b" | "c" | "d" | "e" | "f") {
                    problems.push(format!(
                        "VPC {v:?}: subnet {:?} has AZ {:?}; use a letter a..f",
                        s.name, s.az
                    ));
                }
                if !looks_like_cidr(&s.cidr) {
                    problems.push(format!(
                        "VPC {v:?}: subnet {:?} CIDR {:?} is not an IPv4 CIDR",
                        s.name, s.cidr
                    ));
                }
            }
            let groups: BTreeSet<&str> = vpc
                .security_groups
                .iter()
                .map(|g| g.name.as_str())
                .collect();
            if groups.len() != vpc.security_groups.len() {
                problems.push(format!("VPC {v:?}: security group names are not unique"));
            }
            for g in &vpc.security_groups {
                for rule in &g.ingress {
                    if rule.protocol.is_empty() {
                        problems.push(format!(
                            "VPC {v:?}: group {:?} has a rule without protocol",
                            g.name
                        ));
                    }
                    if rule.cidrs.is_empty() && rule.source_groups.is_empty() {
                        problems.push(format!(
                            "VPC {v:?}: group {:?} has a rule with neither cidrs nor source_groups",
                            g.name
                        ));
                    }
                    for src in &rule.source_groups {
                        if !groups.contains(src.as_str()) {
                            problems.push(format!(
                                "VPC {v:?}: group {:?} references unknown group {src:?}",
                                g.name
                            ));
                        }
                    }
                }
            }
            let mut tables = BTreeSet::new();
            let mut associated = BTreeSet::new();
            for t in &vpc.route_tables {
                if !tables.insert(t.name.as_str()) {
                    problems.push(format!(
                        "VPC {v:?}: route table {:?} is defined twice",
                        t.name
                    ));
                }
                for s in &t.subnets {
                    if !subnets.contains(s.as_str()) {
                        problems.push(format!(
                            "VPC {v:?}: route table {:?} names unknown subnet {s:?}",
                            t.name
                        ));
                    } else if !associated.insert(s.as_str()) {
                        problems.push(format!(
                            "VPC {v:?}: subnet {s:?} is associated with two route tables"
                        ));
                    }
                }
                for r in &t.routes {
                    match r.target {
                        RouteTarget::Igw if !vpc.internet_gateway => problems.push(format!(
                            "VPC {v:?}: route table {:?} routes {} to igw but the VPC has no \
                             internet_gateway",
                            t.name, r.destination_cidr
                        )),
                        RouteTarget::Local
                            if r.destination_cidr != vpc.cidr
                                && !vpc.secondary_cidrs.contains(&r.destination_cidr) =>
                        {
                            problems.push(format!(
                                "VPC {v:?}: route table {:?} has a local route to {} which is \
                                 not one of the VPC's CIDRs",
                                t.name, r.destination_cidr
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
        let subnets: Vec<(&str, &str)> = self
            .vpcs
            .iter()
            .flat_map(|v| v.subnets.iter().map(|s| (v.name.as_str(), s.name.as_str())))
            .collect();
        data::validate(
            &self.volumes,
            &self.db_instances,
            &self.db_clusters,
            &self.images,
            &subnets,
            &mut problems,
        );
        estate::validate(self, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::InvalidSpec { problems })
        }
    }
}

fn looks_like_cidr(text: &str) -> bool {
    let Some((ip, len)) = text.split_once('/') else {
        return false;
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
}

/// The ids of one seeded VPC's resources, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededVpc {
    pub id: String,
    pub internet_gateway: Option<String>,
    pub subnets: BTreeMap<String, String>,
    pub security_groups: BTreeMap<String, String>,
    pub route_tables: BTreeMap<String, String>,
}

/// What [`seed`] created: each kind's name → its resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededEstate {
    pub region: String,
    pub vpcs: BTreeMap<String, SeededVpc>,
    #[serde(default)]
    pub volumes: BTreeMap<String, SeededVolume>,
    #[serde(default)]
    pub db_instances: BTreeMap<String, SeededDb>,
    #[serde(default)]
    pub db_clusters: BTreeMap<String, SeededDb>,
    #[serde(default)]
    pub images: BTreeMap<String, SeededImage>,
    /// The DR region ([`seed_estate`] only).
    #[serde(default)]
    pub dr_region: String,
    /// Fleet → its instances, in `Name` order.
    #[serde(default)]
    pub fleets: BTreeMap<String, Vec<SeededInstance>>,
    #[serde(default)]
    pub certificates: BTreeMap<String, SeededCertificate>,
    #[serde(default)]
    pub load_balancers: BTreeMap<String, SeededLoadBalancer>,
    /// DB instance or cluster → its endpoint address.
    #[serde(default)]
    pub db_endpoints: BTreeMap<String, String>,
    /// Zone (as in the spec) → the zone and its records.
    #[serde(default)]
    pub zones: BTreeMap<String, SeededZone>,
    /// Always-on service → its DR-region instance ids.
    #[serde(default)]
    pub always_on: BTreeMap<String, Vec<String>>,
}

impl SeededEstate {
    /// A VPC's id.
    pub fn vpc_id(&self, vpc: &str) -> Option<&str> {
        self.vpcs.get(vpc).map(|v| v.id.as_str())
    }

    /// A subnet's id.
    pub fn subnet_id(&self, vpc: &str, subnet: &str) -> Option<&str> {
        self.vpcs
            .get(vpc)
            .and_then(|v| v.subnets.get(subnet))
            .map(String::as_str)
    }

    /// A security group's id.
    pub fn security_group_id(&self, vpc: &str, group: &str) -> Option<&str> {
        self.vpcs
            .get(vpc)
            .and_then(|v| v.security_groups.get(group))
            .map(String::as_str)
    }

    /// A volume's id.
    pub fn volume_id(&self, volume: &str) -> Option<&str> {
        self.volumes.get(volume).map(|v| v.id.as_str())
    }

    /// A volume's snapshot ids, oldest first (empty for an unknown volume).
    pub fn snapshot_ids(&self, volume: &str) -> &[String] {
        self.volumes
            .get(volume)
            .map_or(&[][..], |v| v.snapshots.as_slice())
    }

    /// An AMI's id.
    pub fn image_id(&self, image: &str) -> Option<&str> {
        self.images.get(image).map(|i| i.id.as_str())
    }

    /// A fleet's instances, in `Name` order (empty for an unknown fleet).
    pub fn fleet_instances(&self, fleet: &str) -> &[SeededInstance] {
        self.fleets.get(fleet).map_or(&[][..], Vec::as_slice)
    }

    /// Instance `index` (1-based, as in its `Name`) of a fleet.
    pub fn instance(&self, fleet: &str, index: u32) -> Option<&SeededInstance> {
        let i = usize::try_from(index).ok()?.checked_sub(1)?;
        self.fleet_instances(fleet).get(i)
    }
}

/// Runs one AWS call, retrying while it is throttled (until [`THROTTLE_DEADLINE`]).
async fn call<T, E, R, F, Fut>(
    operation: &'static str,
    resource: &str,
    region: &str,
    mut send: F,
) -> Result<T, LabError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let deadline = Instant::now() + THROTTLE_DEADLINE;
    let mut backoff = Duration::from_millis(100);
    loop {
        match send().await {
            Ok(out) => return Ok(out),
            Err(e) => {
                let throttled = matches!(e.code(), Some("RequestLimitExceeded" | "Throttling"));
                if throttled && Instant::now() + backoff < deadline {
                    tracing::debug!(operation, resource, "throttled while seeding; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
                return Err(LabError::Aws {
                    operation,
                    resource: resource.to_owned(),
                    region: region.to_owned(),
                    source: Box::new(e),
                });
            }
        }
    }
}

fn name_tag(kind: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

fn missing(operation: &'static str, resource: &str, field: &'static str) -> LabError {
    LabError::MissingField {
        operation,
        resource: resource.to_owned(),
        field,
    }
}

/// Creates the EC2 part of `spec` in `region` through `ec2` — VPCs, volumes with snapshots,
/// AMIs with instances — tagging everything with `Name`. The spec's DB instances and clusters
/// need an RDS client: they are left out here (and logged); [`seed_with_rds`] seeds them too.
///
/// # Errors
///
/// [`LabError::InvalidSpec`] before any call when the spec is inconsistent;
/// [`LabError::Aws`] when a call fails (resources created before it are left in place);
/// [`LabError::MissingField`] when an answer lacks an id.
pub async fn seed(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    spec: &EstateSpec,
) -> Result<SeededEstate, LabError> {
    if !spec.db_instances.is_empty() || !spec.db_clusters.is_empty() {
        tracing::info!(
            db_instances = spec.db_instances.len(),
            db_clusters = spec.db_clusters.len(),
            "no RDS client: the spec's databases are not seeded (use seed_with_rds)"
        );
    }
    seed_all(ec2, None, region, spec).await
}

/// Creates all of `spec` in `region` through `ec2` and `rds`: VPCs, volumes with snapshots,
/// AMIs with instances, DB instances and Aurora clusters with manual snapshots.
///
/// # Errors
///
/// As [`seed`].
pub async fn seed_with_rds(
    ec2: &aws_sdk_ec2::Client,
    rds: &aws_sdk_rds::Client,
    region: &str,
    spec: &EstateSpec,
) -> Result<SeededEstate, LabError> {
    seed_all(ec2, Some(rds), region, spec).await
}

async fn seed_all(
    ec2: &aws_sdk_ec2::Client,
    rds: Option<&aws_sdk_rds::Client>,
    region: &str,
    spec: &EstateSpec,
) -> Result<SeededEstate, LabError> {
    spec.validate()?;
    let mut estate = SeededEstate {
        region: region.to_owned(),
        ..SeededEstate::default()
    };
    for vpc in &spec.vpcs {
        let seeded = seed_vpc(ec2, region, vpc).await?;
        estate.vpcs.insert(vpc.name.clone(), seeded);
    }
    estate.volumes = data::seed_volumes(ec2, region, &spec.volumes).await?;
    let subnet_ids: BTreeMap<(String, String), String> = estate
        .vpcs
        .iter()
        .flat_map(|(vpc, seeded)| {
            seeded
                .subnets
                .iter()
                .map(|(subnet, id)| ((vpc.clone(), subnet.clone()), id.clone()))
        })
        .collect();
    estate.images = data::seed_images(ec2, region, &spec.images, &subnet_ids).await?;
    if let Some(rds) = rds {
        let (instances, clusters) = data::seed_databases(
            rds,
            region,
            &spec.db_instances,
            &spec.db_clusters,
            &estate.vpcs,
        )
        .await?;
        estate.db_instances = instances;
        estate.db_clusters = clusters;
    }
    Ok(estate)
}

async fn seed_vpc(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    vpc: &VpcSpec,
) -> Result<SeededVpc, LabError> {
    let name = &vpc.name;
    let out = call("CreateVpc", name, region, || {
        ec2.create_vpc()
            .cidr_block(&vpc.cidr)
            .tag_specifications(name_tag(ResourceType::Vpc, name))
            .send()
    })
    .await?;
    let vpc_id = out
        .vpc()
        .and_then(|v| v.vpc_id())
        .ok_or_else(|| missing("CreateVpc", name, "VpcId"))?
        .to_owned();
    let mut seeded = SeededVpc {
        id: vpc_id.clone(),
        ..SeededVpc::default()
    };
    for cidr in &vpc.secondary_cidrs {
        call("AssociateVpcCidrBlock", &vpc_id, region, || {
            ec2.associate_vpc_cidr_block()
                .vpc_id(&vpc_id)
                .cidr_block(cidr)
                .send()
        })
        .await?;
    }
    if vpc.internet_gateway {
        let igw_name = format!("{name}-igw");
        let out = call("CreateInternetGateway", &igw_name, region, || {
            ec2.create_internet_gateway()
                .tag_specifications(name_tag(ResourceType::InternetGateway, &igw_name))
                .send()
        })
        .await?;
        let igw = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| missing("CreateInternetGateway", &igw_name, "InternetGatewayId"))?
            .to_owned();
        call("AttachInternetGateway", &igw, region, || {
            ec2.attach_internet_gateway()
                .internet_gateway_id(&igw)
                .vpc_id(&vpc_id)
                .send()
        })
        .await?;
        seeded.internet_gateway = Some(igw);
    }
    for s in &vpc.subnets {
        let az = format!("{region}{}", s.az);
        let id = create_subnet(ec2, region, &vpc_id, &s.cidr, &az, &s.name).await?;
        if s.public {
            call("ModifySubnetAttribute", &id, region, || {
                ec2.modify_subnet_attribute()
                    .subnet_id(&id)
                    .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                    .send()
            })
            .await?;
        }
        seeded.subnets.insert(s.name.clone(), id);
    }
    // Groups first, rules second: rules may reference any group of the VPC.
    for g in &vpc.security_groups {
        let out = call("CreateSecurityGroup", &g.name, region, || {
            ec2.create_security_group()
                .group_name(&g.name)
                .description(&g.description)
                .vpc_id(&vpc_id)
                .tag_specifications(name_tag(ResourceType::SecurityGroup, &g.name))
                .send()
        })
        .await?;
        let id = out
            .group_id()
            .ok_or_else(|| missing("CreateSecurityGroup", &g.name, "GroupId"))?
            .to_owned();
        seeded.security_groups.insert(g.name.clone(), id);
    }
    for g in &vpc.security_groups {
        if g.ingress.is_empty() {
            continue;
        }
        let group_id = seeded
            .security_groups
            .get(&g.name)
            .cloned()
            .ok_or_else(|| missing("CreateSecurityGroup", &g.name, "GroupId"))?;
        let permissions: Vec<IpPermission> = g
            .ingress
            .iter()
            .map(|rule| {
                let mut p = IpPermission::builder()
                    .ip_protocol(&rule.protocol)
                    .from_port(rule.from_port)
                    .to_port(rule.to_port);
                for cidr in &rule.cidrs {
                    p = p.ip_ranges(IpRange::builder().cidr_ip(cidr).build());
                }
                for src in &rule.source_groups {
                    if let Some(src_id) = seeded.security_groups.get(src) {
                        p = p.user_id_group_pairs(
                            UserIdGroupPair::builder().group_id(src_id).build(),
                        );
                    }
                }
                p.build()
            })
            .collect();
        call("AuthorizeSecurityGroupIngress", &group_id, region, || {
            ec2.authorize_security_group_ingress()
                .group_id(&group_id)
                .set_ip_permissions(Some(permissions.clone()))
                .send()
        })
        .await?;
    }
    for t in &vpc.route_tables {
        let out = call("CreateRouteTable", &t.name, region, || {
            ec2.create_route_table()
                .vpc_id(&vpc_id)
                .tag_specifications(name_tag(ResourceType::RouteTable, &t.name))
                .send()
        })
        .await?;
        let rt = out
            .route_table()
            .and_then(|r| r.route_table_id())
            .ok_or_else(|| missing("CreateRouteTable", &t.name, "RouteTableId"))?
            .to_owned();
        for r in &t.routes {
            if r.target == RouteTarget::Igw {
                let igw = seeded
                    .internet_gateway
                    .clone()
                    .ok_or_else(|| missing("CreateInternetGateway", name, "InternetGatewayId"))?;
                call("CreateRoute", &rt, region, || {
                    ec2.create_route()
                        .route_table_id(&rt)
                        .destination_cidr_block(&r.destination_cidr)
                        .gateway_id(&igw)
                        .send()
                })
                .await?;
            }
        }
        for s in &t.subnets {
            let subnet_id = seeded
                .subnets
                .get(s)
                .cloned()
                .ok_or_else(|| missing("CreateSubnet", s, "SubnetId"))?;
            call("AssociateRouteTable", &rt, region, || {
                ec2.associate_route_table()
                    .route_table_id(&rt)
                    .subnet_id(&subnet_id)
                    .send()
            })
            .await?;
        }
        seeded.route_tables.insert(t.name.clone(), rt);
    }
    Ok(seeded)
}

async fn create_subnet(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    vpc_id: &str,
    cidr: &str,
    az: &str,
    name: &str,
) -> Result<String, LabError> {
    let out = call("CreateSubnet", name, region, || {
        ec2.create_subnet()
            .vpc_id(vpc_id)
            .cidr_block(cidr)
            .availability_zone(az)
            .tag_specifications(name_tag(ResourceType::Subnet, name))
            .send()
    })
    .await?;
    Ok(out
        .subnet()
        .and_then(|s| s.subnet_id())
        .ok_or_else(|| missing("CreateSubnet", name, "SubnetId"))?
        .to_owned())
}

/// Adds one subnet (tagged `Name=lab-<cidr>`) to an existing VPC, in the full AZ name `az`
/// (e.g. `us-east-1c`); returns its id.
///
/// # Errors
///
/// [`LabError::Aws`] when `CreateSubnet` fails, [`LabError::MissingField`] without an id.
pub async fn add_subnet(
    ec2: &aws_sdk_ec2::Client,
    vpc_id: &str,
    cidr: &str,
    az: &str,
) -> Result<String, LabError> {
    let region = ec2
        .config()
        .region()
        .map(ToString::to_string)
        .unwrap_or_default();
    create_subnet(ec2, &region, vpc_id, cidr, az, &format!("lab-{cidr}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_valid_and_has_the_promised_shape() {
        let s = EstateSpec::sample();
        s.validate().expect("valid");
        assert_eq!(s.vpcs.len(), 2);
        let subnets: usize = s.vpcs.iter().map(|v| v.subnets.len()).sum();
        assert!((5..=6).contains(&subnets));
        assert!(s.vpcs.iter().any(|v| !v.secondary_cidrs.is_empty()));
        let azs: BTreeSet<&str> = s
            .vpcs
            .iter()
            .flat_map(|v| v.subnets.iter().map(|s| s.az.as_str()))
            .collect();
        assert!(azs.len() >= 3);
        // The data part: 6 volumes over tiers 1-3 with 2-3 snapshots, 2 DBs x 2 snapshots,
        // 1 cluster x 1 snapshot, 2 AMIs with 1-2 instances.
        assert_eq!(s.volumes.len(), 6);
        let tiers: BTreeSet<u8> = s.volumes.iter().map(|v| v.tier).collect();
        assert_eq!(tiers, BTreeSet::from([1, 2, 3]));
        assert!(s.volumes.iter().all(|v| (2..=3).contains(&v.snapshots)));
        assert_eq!(s.db_instances.len(), 2);
        assert!(s.db_instances.iter().all(|d| d.snapshots == 2));
        assert_eq!(s.db_clusters.len(), 1);
        assert_eq!(s.db_clusters[0].snapshots, 1);
        assert_eq!(s.images.len(), 2);
        assert!(s.images.iter().all(|i| (1..=2).contains(&i.instances)));
    }

    #[test]
    fn specs_without_data_still_parse_and_scaled_is_volumes_only() {
        let old = r#"{"vpcs":[{"name":"v","cidr":"10.1.0.0/16"}]}"#;
        let spec = EstateSpec::from_json_str(old).expect("parse");
        assert!(spec.volumes.is_empty() && spec.images.is_empty());
        assert!(spec.db_instances.is_empty() && spec.db_clusters.is_empty());
        // Nothing new is written for an estate without data.
        assert_eq!(
            serde_json::to_string(&spec)
                .expect("json")
                .matches("volumes")
                .count(),
            0
        );
        let scaled = EstateSpec::scaled(300, 1);
        scaled.validate().expect("valid");
        assert_eq!(scaled.volumes.len(), 300);
        assert!(scaled.vpcs.is_empty() && scaled.images.is_empty());
        let toml_text = r#"
            [[volumes]]
            name = "data"
            size_gib = 10
            az = "a"
            tier = 1
            snapshots = 2
            tags = { team = "core" }

            [[db_instances]]
            name = "db1"
            tier = 2

            [[images]]
            name = "img"
            tier = 3
        "#;
        let spec = EstateSpec::from_toml_str(toml_text).expect("parse");
        spec.validate().expect("valid");
        assert_eq!(spec.volumes[0].tags["team"], "core");
        assert_eq!(spec.db_instances[0].engine, "postgres");
        assert_eq!(spec.db_instances[0].size_gib, 20);
        assert_eq!(spec.images[0].instances, 0);
        assert_eq!(spec.images[0].root_gib, 8);
        assert!(
            EstateSpec::from_toml_str("[[volumes]]\nname = \"x\"\nbogus = 1\n").is_err(),
            "unknown fields are rejected"
        );
    }

    #[test]
    fn spec_round_trips_through_toml_and_json() {
        let s = EstateSpec::sample();
        let toml_text = toml::to_string(&s).expect("toml");
        assert_eq!(EstateSpec::from_toml_str(&toml_text).expect("parse"), s);
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(EstateSpec::from_json_str(&json).expect("parse"), s);
    }

    #[test]
    fn toml_spec_with_defaults_and_files() {
        let text = r#"
            [[vpcs]]
            name = "v"
            cidr = "10.1.0.0/16"
            [[vpcs.subnets]]
            name = "s"
            cidr = "10.1.1.0/24"
            az = "b"
        "#;
        let spec = EstateSpec::from_toml_str(text).expect("parse");
        assert!(!spec.vpcs[0].internet_gateway);
        assert!(!spec.vpcs[0].subnets[0].public);
        let dir = tempfile::tempdir().expect("dir");
        let toml_path = dir.path().join("estate.toml");
        std::fs::write(&toml_path, text).expect("write");
        assert_eq!(EstateSpec::load(&toml_path).expect("load"), spec);
        let json_path = dir.path().join("estate.json");
        std::fs::write(&json_path, serde_json::to_string(&spec).expect("json")).expect("write");
        assert_eq!(EstateSpec::load(&json_path).expect("load"), spec);
        let err = EstateSpec::from_toml_str("[[vpcs]]\nname = \"v\"\ncidr = \"x\"\nbogus = 1\n")
            .expect_err("unknown field");
        assert!(matches!(err, LabError::SpecParse { .. }));
        assert!(matches!(
            EstateSpec::load(&dir.path().join("missing.toml")),
            Err(LabError::Io { .. })
        ));
    }

    #[test]
    fn validation_reports_every_problem() {
        let mut s = EstateSpec::sample();
        let prod = &mut s.vpcs[0];
        prod.subnets[0].az = "z".into();
        prod.security_groups[1].ingress[0].source_groups = vec!["nope".into()];
        prod.route_tables[0].subnets.push("ghost".into());
        prod.route_tables[0].routes.push(RouteSpec {
            destination_cidr: "192.168.0.0/16".into(),
            target: RouteTarget::Local,
        });
        s.vpcs[1].route_tables.push(RouteTableSpec {
            name: "rt".into(),
            subnets: vec![],
            routes: vec![RouteSpec {
                destination_cidr: "0.0.0.0/0".into(),
                target: RouteTarget::Igw,
            }],
        });
        s.vpcs[1].cidr = "10.30.0.0/33".into();
        let Err(LabError::InvalidSpec { problems }) = s.validate() else {
            panic!("expected InvalidSpec");
        };
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("AZ \"z\"")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown group \"nope\""))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown subnet \"ghost\""))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("not one of the VPC's CIDRs"))
        );
        assert!(problems.iter().any(|p| p.contains("no internet_gateway")));
        assert!(problems.iter().any(|p| p.contains("10.30.0.0/33")));
    }
}
