//! The estate around the data: EC2 fleets with data volumes, ACM certificates in both regions,
//! classic and v2 load balancers, Route 53 zones and records, and the always-on services of the
//! pilot light in the DR region — what inventory (R5), capacity planning (R8), readiness (R10)
//! and restore (D3, D6, D7) work on.
//!
//! [`seed_estate`] seeds a whole [`EstateSpec`]: first everything [`super::seed_with_rds`]
//! seeds (network, volumes, AMIs, databases), then, in this order:
//!
//! 1. certificates ([`CertificateSpec`]): a self-signed certificate made at seed time
//!    (see `cert`), imported into the primary region and — unless `dr_counterpart = false` —
//!    the same certificate into the DR region, so both show the same domain, `ISSUED`;
//! 2. fleets ([`FleetSpec`]): one `RunInstances` (`MinCount = MaxCount`) per subnet the fleet
//!    spreads over, in contiguous blocks; the root and data volumes come from block-device
//!    mappings at launch; instance and volume tags `dr:tier`, `dr:cluster`, `pilotlight:role`
//!    and the fleet's own tags come from the launch's tag specifications, and `Name`
//!    (`<fleet>-<nn>`, numbered from 1 in launch order) from one `CreateTags` per instance
//!    that names the instance and all its volumes; then one snapshot per data volume, tagged
//!    like it (unless `snapshot_data_volumes = false`);
//! 3. load balancers ([`LoadBalancerSpec`]) in the primary region: classic ones with their
//!    listeners, health check and registered instances; application and network ones with one
//!    target group, the fleets' instances as targets and one forwarding listener per listener
//!    spec; TLS listeners use the primary region's certificate ARN;
//! 4. hosted zones ([`ZoneSpec`]) with their records ([`RecordSpec`]), written with `UPSERT`
//!    in batches of at most [`MAX_CHANGES_PER_BATCH`] changes and
//!    [`MAX_VALUE_CHARS_PER_BATCH`] value characters (an `UPSERT` counts twice against both of
//!    Route 53's limits; `UPSERT` because moto stores duplicates on a repeated `CREATE`);
//! 5. always-on instances ([`AlwaysOnSpec`]) in the DR region, launched from one AMI
//!    registered there and tagged [`ALWAYS_ON_TAG`]`=<service>`.
//!
//! Everything a restore or a test needs to find again is in the returned [`SeededEstate`].
//! moto facts this relies on (shared/LAB-NOTES.md): classic load balancers have no
//! `CanonicalHostedZoneNameID` (AWS's per-region table is used, [`classic_elb_hosted_zone`]);
//! v2 load balancers report a placeholder zone id, used as it is; instances are in private
//! IP order within a subnet; moto launches `MinCount` instances.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::{EstateSpec, SeededEstate};
use crate::clients::AwsClients;
use crate::error::LabError;

mod balancers;
mod cert;
mod dns;
mod fleets;
mod shapes;
mod validate;

pub(super) use shapes::{case_study, sample_parts};
pub(super) use validate::validate;

/// The tag naming an instance's cluster (pilotlight's default `inventory.cluster_tag`).
pub const CLUSTER_TAG: &str = "dr:cluster";
/// The tag naming an instance's launch role (what AMI copies are grouped by).
pub const ROLE_TAG: &str = "pilotlight:role";
/// The DR-region tag naming the always-on service an instance provides (pilotlight's default
/// `readiness.always_on_tag`).
pub const ALWAYS_ON_TAG: &str = "dr:always-on";
/// The root device of every AMI the seeder registers (and of the instances launched from it).
pub const ROOT_DEVICE: &str = "/dev/xvda";
/// Most changes in one `ChangeResourceRecordSets` (all `UPSERT`s, which count twice).
pub const MAX_CHANGES_PER_BATCH: usize = 500;
/// Most characters of all record values in one `ChangeResourceRecordSets` (Route 53's limit;
/// an `UPSERT`'s values count twice).
pub const MAX_VALUE_CHARS_PER_BATCH: usize = 32_000;

fn default_true() -> bool {
    true
}

fn default_volume_type() -> String {
    "gp3".to_owned()
}

fn default_ttl() -> u32 {
    300
}

fn default_always_on_type() -> String {
    "t3.medium".to_owned()
}

fn default_one() -> u32 {
    1
}

/// Accepts one name (`subnet = "web-a"`) or a list (`subnets = ["web-a", "web-b"]`).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A group of identical EC2 instances of one tier and cluster, e.g. `web-01` … `web-04`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    pub name: String,
    /// Instances, at least 1.
    pub count: u32,
    pub instance_type: String,
    /// 1 to 9, tagged `dr:tier`.
    pub tier: u8,
    /// Tagged [`CLUSTER_TAG`].
    pub cluster: String,
    /// A VPC of the spec.
    pub vpc: String,
    /// Subnets of `vpc`; the instances are spread over them in contiguous blocks (the first
    /// subnets get one more when `count` does not divide evenly). `subnet = "x"` also works.
    #[serde(alias = "subnet", deserialize_with = "one_or_many")]
    pub subnets: Vec<String>,
    /// An [`super::ImageSpec`] of the spec; its AMI is launched.
    pub image: String,
    /// Data volumes of every instance, attached at launch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_volumes: Vec<DataVolumeSpec>,
    /// Snapshot every data volume once after launch.
    #[serde(default = "default_true")]
    pub snapshot_data_volumes: bool,
    /// Security groups of `vpc`, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// Tagged [`ROLE_TAG`]; default: the fleet's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// More tags for the instances, their volumes and snapshots.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl FleetSpec {
    /// The role tag's value.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or(&self.name)
    }

    /// The `Name` of instance `index` (1-based): `<fleet>-<nn>`, zero-padded to at least two
    /// digits and to the width of `count`.
    pub fn instance_name(&self, index: u32) -> String {
        let width = self.count.to_string().len().max(2);
        format!("{}-{index:0width$}", self.name)
    }
}

/// A data volume every instance of a fleet gets at launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataVolumeSpec {
    pub size_gib: u32,
    /// `/dev/sd[f-p]` or `/dev/xvd[f-p]`.
    pub device: String,
    /// `gp2`, `gp3`, `st1`, `sc1` or `standard`.
    #[serde(default = "default_volume_type")]
    pub volume_type: String,
}

/// An ACM certificate for `domain`, imported into the primary region and (by default) into the
/// DR region too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    pub name: String,
    /// The common name, at most 64 characters; `*.` allowed in front.
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alternative_names: Vec<String>,
    /// Import the same certificate into the DR region.
    #[serde(default = "default_true")]
    pub dr_counterpart: bool,
}

/// Where a load balancer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    Internal,
    InternetFacing,
}

impl Scheme {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Internal => "internal",
            Scheme::InternetFacing => "internet-facing",
        }
    }
}

/// A listener or target-group protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    Http,
    Https,
    Tcp,
    Ssl,
    Tls,
    Udp,
    TcpUdp,
}

impl Protocol {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tcp => "TCP",
            Protocol::Ssl => "SSL",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
            Protocol::TcpUdp => "TCP_UDP",
        }
    }

    /// Terminates TLS, so the listener needs a certificate.
    pub fn needs_certificate(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Ssl | Protocol::Tls)
    }
}

/// The kind of a load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadBalancerKind {
    Classic,
    Application,
    Network,
}

/// A load balancer: `kind = "classic"`, `"application"` or `"network"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LoadBalancerSpec {
    Classic(ClassicLoadBalancerSpec),
    Application(V2LoadBalancerSpec),
    Network(V2LoadBalancerSpec),
}

impl LoadBalancerSpec {
    pub fn name(&self) -> &str {
        match self {
            LoadBalancerSpec::Classic(c) => &c.name,
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => &v.name,
        }
    }

    pub fn kind(&self) -> LoadBalancerKind {
        match self {
            LoadBalancerSpec::Classic(_) => LoadBalancerKind::Classic,
            LoadBalancerSpec::Application(_) => LoadBalancerKind::Application,
            LoadBalancerSpec::Network(_) => LoadBalancerKind::Network,
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            LoadBalancerSpec::Classic(c) => c.scheme,
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => v.scheme,
        }
    }

    pub fn vpc(&self) -> &str {
        match self {
            LoadBalancerSpec::Classic(c) => &c.vpc,
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => &v.vpc,
        }
    }

    pub fn subnets(&self) -> &[String] {
        match self {
            LoadBalancerSpec::Classic(c) => &c.subnets,
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => &v.subnets,
        }
    }

    pub fn security_groups(&self) -> &[String] {
        match self {
            LoadBalancerSpec::Classic(c) => &c.security_groups,
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => &v.security_groups,
        }
    }

    /// The fleets whose instances are registered.
    pub fn fleets(&self) -> &[String] {
        match self {
            LoadBalancerSpec::Classic(c) => &c.fleets,
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => &v.fleets,
        }
    }

    /// Every listener as (protocol, port, certificate name).
    pub fn listeners(&self) -> Vec<(Protocol, u16, Option<&str>)> {
        match self {
            LoadBalancerSpec::Classic(c) => c
                .listeners
                .iter()
                .map(|l| (l.protocol, l.port, l.certificate.as_deref()))
                .collect(),
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => v
                .listeners
                .iter()
                .map(|l| (l.protocol, l.port, l.certificate.as_deref()))
                .collect(),
        }
    }
}

/// A classic load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassicLoadBalancerSpec {
    /// 1–32 letters, digits and hyphens, no hyphen at either end.
    pub name: String,
    pub scheme: Scheme,
    pub vpc: String,
    /// Subnets of `vpc`, at most one per AZ.
    pub subnets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    pub listeners: Vec<ClassicListenerSpec>,
    /// Default: `TCP:<first listener's instance port>`, AWS's default timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleets: Vec<String>,
}

/// A classic listener: `protocol` HTTP, HTTPS, TCP or SSL (HTTPS and SSL need `certificate`,
/// a certificate of the spec); instances are spoken to over HTTP (or TCP for TCP and SSL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassicListenerSpec {
    pub protocol: Protocol,
    pub port: u16,
    pub instance_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

fn default_interval() -> u32 {
    30
}

fn default_timeout() -> u32 {
    5
}

fn default_healthy() -> u32 {
    10
}

fn default_unhealthy() -> u32 {
    2
}

/// A classic load balancer's health check (defaults are AWS's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// `PROTOCOL:PORT[/PATH]`, e.g. `HTTP:8080/health`.
    pub target: String,
    #[serde(default = "default_interval")]
    pub interval_secs: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    #[serde(default = "default_healthy")]
    pub healthy_threshold: u32,
    #[serde(default = "default_unhealthy")]
    pub unhealthy_threshold: u32,
}

/// An application or network load balancer with one target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V2LoadBalancerSpec {
    /// 1–32 letters, digits and hyphens, no hyphen at either end; also the target group's name.
    pub name: String,
    pub scheme: Scheme,
    pub vpc: String,
    /// Subnets of `vpc` in different AZs (an application load balancer needs two or more).
    pub subnets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// Each forwards to the target group.
    pub listeners: Vec<V2ListenerSpec>,
    pub target_group: TargetGroupSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleets: Vec<String>,
}

/// A v2 listener: HTTP or HTTPS (application), TCP, TLS, UDP or TCP_UDP (network); HTTPS and
/// TLS need `certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V2ListenerSpec {
    pub protocol: Protocol,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The target group of a v2 load balancer (instance targets on `port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroupSpec {
    pub protocol: Protocol,
    pub port: u16,
    /// Only for HTTP and HTTPS target groups (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
}

/// A Route 53 hosted zone; a private one is associated with `vpc` in the primary region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// The domain, e.g. `example.com` (no trailing dot needed).
    pub name: String,
    #[serde(default)]
    pub private: bool,
    /// The VPC of a private zone (required then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordSpec>,
}

/// One record set, by `kind`. `name` is relative to the zone (`www`), `@` for the apex, or
/// absolute with a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecordSpec {
    /// `A` → the private IP of instance `index` (1-based, as in its `Name`) of `fleet`.
    Instance {
        name: String,
        fleet: String,
        index: u32,
        #[serde(default = "default_ttl")]
        ttl: u32,
    },
    /// `A` with literal IPv4 values.
    A {
        name: String,
        values: Vec<String>,
        #[serde(default = "default_ttl")]
        ttl: u32,
    },
    /// `CNAME` → a load balancer's DNS name.
    LbCname {
        name: String,
        load_balancer: String,
        #[serde(default = "default_ttl")]
        ttl: u32,
    },
    /// `CNAME` → an RDS instance's (or Aurora cluster's) endpoint address.
    DbCname {
        name: String,
        db: String,
        #[serde(default = "default_ttl")]
        ttl: u32,
    },
    /// Alias `A` → a load balancer (its canonical hosted zone).
    LbAlias {
        name: String,
        load_balancer: String,
        #[serde(default)]
        evaluate_target_health: bool,
    },
    /// `TXT`; values are quoted when they are not already.
    Txt {
        name: String,
        values: Vec<String>,
        #[serde(default = "default_ttl")]
        ttl: u32,
    },
}

impl RecordSpec {
    pub fn name(&self) -> &str {
        match self {
            RecordSpec::Instance { name, .. }
            | RecordSpec::A { name, .. }
            | RecordSpec::LbCname { name, .. }
            | RecordSpec::DbCname { name, .. }
            | RecordSpec::LbAlias { name, .. }
            | RecordSpec::Txt { name, .. } => name,
        }
    }

    /// The DNS type: `A`, `CNAME` or `TXT`.
    pub fn record_type(&self) -> &'static str {
        match self {
            RecordSpec::Instance { .. } | RecordSpec::A { .. } | RecordSpec::LbAlias { .. } => "A",
            RecordSpec::LbCname { .. } | RecordSpec::DbCname { .. } => "CNAME",
            RecordSpec::Txt { .. } => "TXT",
        }
    }
}

/// An always-on service of the pilot light, running in the DR region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlwaysOnSpec {
    /// `directory`, `build`, `monitoring`, …: tagged [`ALWAYS_ON_TAG`].
    pub service: String,
    #[serde(default = "default_always_on_type")]
    pub instance_type: String,
    #[serde(default = "default_one")]
    pub count: u32,
}

/// A seeded fleet instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededInstance {
    pub id: String,
    /// `<fleet>-<nn>`.
    pub name: String,
    pub private_ip: String,
    pub subnet_id: String,
    pub root_volume: Option<String>,
    pub data_volumes: Vec<SeededDataVolume>,
}

/// A data volume of a seeded instance and its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededDataVolume {
    pub device: String,
    pub id: String,
    pub snapshot: Option<String>,
}

/// A seeded certificate: its ARN in each region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededCertificate {
    pub domain: String,
    pub primary_arn: String,
    /// `None` when the spec asked for no DR counterpart.
    pub dr_arn: Option<String>,
}

/// A seeded load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededLoadBalancer {
    pub kind: LoadBalancerKind,
    /// v2 only.
    pub arn: Option<String>,
    pub dns_name: String,
    /// For alias records.
    pub canonical_hosted_zone_id: String,
    /// v2 only.
    pub target_group_arn: Option<String>,
    /// Registered instance ids.
    pub instances: Vec<String>,
}

/// A seeded hosted zone and the records the seeder wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededZone {
    /// Without the `/hostedzone/` prefix.
    pub id: String,
    /// With the trailing dot.
    pub name: String,
    pub private: bool,
    pub records: Vec<SeededRecord>,
}

/// A record set as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRecord {
    /// Fully qualified, with the trailing dot.
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    /// An alias: `values` holds the target's DNS name.
    pub alias: bool,
    pub values: Vec<String>,
}

/// The Route 53 hosted zone of classic load balancers in `region` (AWS's published table in
/// [`pilotlight_core::elb_zones`]; moto omits `CanonicalHostedZoneNameID`). Application load
/// balancers share these ids.
pub fn classic_elb_hosted_zone(region: &str) -> Option<&'static str> {
    pilotlight_core::elb_zones::elb_hosted_zone(
        region,
        pilotlight_core::elb_zones::ElbFlavour::ClassicOrApplication,
    )
}

/// Maps a request that could not be built (an SDK builder missing a required field) to the
/// lab's error for the call it was for.
fn built<T, E>(
    operation: &'static str,
    resource: &str,
    region: &str,
    r: Result<T, E>,
) -> Result<T, LabError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    r.map_err(|e| LabError::Aws {
        operation,
        resource: resource.to_owned(),
        region: region.to_owned(),
        source: Box::new(e),
    })
}

/// Seeds all of `spec`: what [`super::seed_with_rds`] seeds in the primary region (through
/// `primary`), then certificates (both regions), fleets, load balancers, hosted zones and
/// records in the primary region, and the always-on services in the DR region (through `dr`).
///
/// # Errors
///
/// [`LabError::InvalidSpec`] before any call when the spec is inconsistent (every problem
/// listed); [`LabError::Aws`] when a call fails (resources created before it are left in
/// place); [`LabError::MissingField`] when an answer lacks an id; [`LabError::Io`] when the
/// system random number generator fails while making a certificate.
pub async fn seed_estate(
    primary: &AwsClients,
    dr: &AwsClients,
    spec: &EstateSpec,
) -> Result<SeededEstate, LabError> {
    spec.validate()?;
    let mut estate =
        super::seed_with_rds(&primary.ec2, &primary.rds, &primary.region, spec).await?;
    estate.dr_region = dr.region.clone();
    estate.certificates = balancers::seed_certificates(primary, dr, &spec.certificates).await?;
    estate.fleets = fleets::seed_fleets(&primary.ec2, &primary.region, spec, &estate).await?;
    estate.load_balancers = balancers::seed_load_balancers(primary, spec, &estate).await?;
    if !spec.db_instances.is_empty() || !spec.db_clusters.is_empty() {
        estate.db_endpoints = dns::db_endpoints(&primary.rds, &primary.region, spec).await?;
    }
    estate.zones = dns::seed_zones(&primary.route53, &primary.region, spec, &estate).await?;
    estate.always_on = fleets::seed_always_on(&dr.ec2, &dr.region, &spec.always_on).await?;
    Ok(estate)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn problems_of(spec: &EstateSpec) -> Vec<String> {
        match spec.validate() {
            Ok(()) => Vec::new(),
            Err(LabError::InvalidSpec { problems }) => problems,
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn sample_estate_has_the_promised_shape() {
        let s = EstateSpec::sample();
        s.validate().expect("valid");
        let total: u32 = s.fleets.iter().map(|f| f.count).sum();
        assert_eq!(total, 12);
        let per_tier = |t: u8| -> u32 {
            s.fleets
                .iter()
                .filter(|f| f.tier == t)
                .map(|f| f.count)
                .sum()
        };
        assert_eq!((per_tier(1), per_tier(2), per_tier(3)), (7, 3, 2));
        let families: BTreeSet<&str> = s
            .fleets
            .iter()
            .filter_map(|f| f.instance_type.split('.').next())
            .collect();
        assert_eq!(families, BTreeSet::from(["c5", "m5", "r5"]));
        let clusters: BTreeSet<&str> = s.fleets.iter().map(|f| f.cluster.as_str()).collect();
        assert_eq!(clusters.len(), 4);
        // Data volumes on tier 1 only: 4 x 1 + 3 x 2.
        assert!(
            s.fleets
                .iter()
                .all(|f| f.data_volumes.is_empty() == (f.tier != 1))
        );
        let volumes: u32 = s
            .fleets
            .iter()
            .map(|f| f.count * u32::try_from(f.data_volumes.len()).unwrap_or(0))
            .sum();
        assert_eq!(volumes, 10);
        assert_eq!(s.certificates.len(), 2);
        assert!(s.certificates.iter().all(|c| c.dr_counterpart));
        let kinds: Vec<(LoadBalancerKind, Scheme)> = s
            .load_balancers
            .iter()
            .map(|lb| (lb.kind(), lb.scheme()))
            .collect();
        assert_eq!(
            kinds,
            [
                (LoadBalancerKind::Application, Scheme::InternetFacing),
                (LoadBalancerKind::Classic, Scheme::Internal)
            ]
        );
        assert!(
            s.load_balancers[0]
                .listeners()
                .contains(&(Protocol::Https, 443, Some("public")))
        );
        assert_eq!(s.zones.iter().filter(|z| z.private).count(), 1);
        assert_eq!(s.zones.len(), 2);
        let records: Vec<&RecordSpec> = s.zones.iter().flat_map(|z| &z.records).collect();
        assert!(
            records
                .iter()
                .any(|r| matches!(r, RecordSpec::DbCname { db, .. } if db == "orders-db"))
        );
        for kind in ["A", "CNAME", "TXT"] {
            assert!(records.iter().any(|r| r.record_type() == kind), "{kind}");
        }
        assert_eq!(
            records
                .iter()
                .filter(|r| matches!(r, RecordSpec::LbAlias { .. }))
                .count(),
            2
        );
        let services: Vec<&str> = s.always_on.iter().map(|a| a.service.as_str()).collect();
        assert_eq!(services, ["directory", "build", "monitoring"]);
        assert_eq!(s.fleets[0].instance_name(3), "web-03");
        assert_eq!(s.fleets[0].role(), "web");
    }

    #[test]
    fn estate_sections_parse_from_toml_with_defaults() {
        let text = r#"
            [[vpcs]]
            name = "v"
            cidr = "10.1.0.0/16"
            [[vpcs.subnets]]
            name = "s1"
            cidr = "10.1.1.0/24"
            az = "a"
            [[vpcs.subnets]]
            name = "s2"
            cidr = "10.1.2.0/24"
            az = "b"

            [[images]]
            name = "img"
            tier = 1

            [[fleets]]
            name = "app"
            count = 120
            instance_type = "m5.large"
            tier = 1
            cluster = "c"
            vpc = "v"
            subnet = "s1"
            image = "img"
            data_volumes = [{ size_gib = 10, device = "/dev/sdf" }]

            [[certificates]]
            name = "c"
            domain = "*.example.com"
            dr_counterpart = false

            [[load_balancers]]
            kind = "network"
            name = "nlb"
            scheme = "internal"
            vpc = "v"
            subnets = ["s1", "s2"]
            listeners = [{ protocol = "TLS", port = 443, certificate = "c" }]
            target_group = { protocol = "TCP", port = 8443 }
            fleets = ["app"]

            [[zones]]
            name = "example.com"
            [[zones.records]]
            kind = "instance"
            name = "app"
            fleet = "app"
            index = 120
            [[zones.records]]
            kind = "lb_alias"
            name = "@"
            load_balancer = "nlb"

            [[always_on]]
            service = "directory"
        "#;
        let spec = EstateSpec::from_toml_str(text).expect("parse");
        spec.validate().expect("valid");
        let f = &spec.fleets[0];
        assert_eq!(f.subnets, ["s1"]);
        assert!(f.snapshot_data_volumes);
        assert_eq!(f.data_volumes[0].volume_type, "gp3");
        assert_eq!(f.instance_name(7), "app-007");
        assert!(!spec.certificates[0].dr_counterpart);
        assert_eq!(spec.load_balancers[0].kind(), LoadBalancerKind::Network);
        assert!(matches!(
            spec.zones[0].records[0],
            RecordSpec::Instance { ttl: 300, .. }
        ));
        assert_eq!(spec.always_on[0].instance_type, "t3.medium");
        assert_eq!(spec.always_on[0].count, 1);
        let json = serde_json::to_string(&spec).expect("json");
        assert_eq!(EstateSpec::from_json_str(&json).expect("parse"), spec);
        for bad in [
            text.replace("fleets = [\"app\"]", "fleets = [\"app\"]\nbogus = 1"),
            text.replace("index = 120", "index = 120\nbogus = 1"),
            text.replace("kind = \"network\"", "kind = \"gateway\""),
        ] {
            assert!(
                matches!(
                    EstateSpec::from_toml_str(&bad),
                    Err(LabError::SpecParse { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn estate_validation_reports_every_problem() {
        let mut s = EstateSpec::sample();
        s.fleets[0].subnets.push("nowhere".into());
        s.fleets[0].image = "no-ami".into();
        s.fleets[1].data_volumes[1].device = "/dev/xvda".into();
        s.fleets[2].tags.insert("dr:cluster".into(), "x".into());
        s.fleets[3].count = 0;
        s.certificates[1].domain = "bad domain".into();
        if let LoadBalancerSpec::Application(alb) = &mut s.load_balancers[0] {
            alb.subnets.truncate(1);
            alb.listeners[1].protocol = Protocol::Tcp;
        }
        if let LoadBalancerSpec::Classic(elb) = &mut s.load_balancers[1] {
            elb.listeners[0].certificate = None;
            elb.fleets.push("ghost".into());
        }
        s.zones[0].records.push(RecordSpec::LbCname {
            name: "shop".into(),
            load_balancer: "shop-alb".into(),
            ttl: 60,
        });
        s.zones[1].vpc = None;
        s.zones[1].records.push(RecordSpec::Instance {
            name: "web-09".into(),
            fleet: "web".into(),
            index: 9,
            ttl: 60,
        });
        s.zones[1].records.push(RecordSpec::DbCname {
            name: "gone-db".into(),
            db: "gone".into(),
            ttl: 60,
        });
        s.always_on.push(s.always_on[0].clone());
        let problems = problems_of(&s);
        let expect = [
            "unknown subnet \"nowhere\"",
            "unknown image \"no-ami\"",
            "device \"/dev/xvda\"",
            "tag \"dr:cluster\" is set by the seeder",
            "fleet \"search\": count is 0",
            "domain \"bad domain\"",
            "needs subnets in two or more AZs",
            "protocol TCP is not allowed for an application load balancer",
            "the HTTPS listener on port 443 needs a certificate",
            "registers unknown fleet \"ghost\"",
            "has a CNAME and a A record",
            "private zone \"corp.example.com\" needs a vpc",
            "instance 9 of fleet \"web\"",
            // The fleet of 0 leaves its record without an instance.
            "instance 1 of fleet \"search\"",
            "unknown database \"gone\"",
            "always-on service \"directory\" is defined twice",
        ];
        for e in expect {
            assert!(problems.iter().any(|p| p.contains(e)), "{e}: {problems:#?}");
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    }

    #[test]
    fn case_study_scales_its_shape() {
        let full = EstateSpec::case_study(1.0);
        full.validate().expect("valid");
        let instances: u32 = full.fleets.iter().map(|f| f.count).sum();
        assert_eq!(instances, 3000);
        assert!(full.fleets.iter().all(|f| f.count <= 50));
        assert!(full.fleets.iter().all(|f| f.data_volumes.len() == 2));
        let tiers: BTreeSet<u8> = full.fleets.iter().map(|f| f.tier).collect();
        assert_eq!(tiers, BTreeSet::from([1, 2, 3]));
        assert_eq!(full.load_balancers.len(), 100);
        let records: usize = full.zones.iter().map(|z| z.records.len()).sum();
        assert_eq!(records, 4000);
        assert!(full.zones.len() > 1 && full.zones.iter().any(|z| z.private));
        assert!(
            full.zones
                .iter()
                .all(|z| z.records.len() <= MAX_CHANGES_PER_BATCH)
        );
        assert_eq!(full.db_instances.len(), 50);
        assert_eq!(full.always_on.len(), 3);
        for kind in [
            LoadBalancerKind::Classic,
            LoadBalancerKind::Application,
            LoadBalancerKind::Network,
        ] {
            assert!(full.load_balancers.iter().any(|lb| lb.kind() == kind));
        }
        assert_eq!(EstateSpec::case_study(1.0), full, "deterministic");

        let small = EstateSpec::case_study(0.01);
        small.validate().expect("valid");
        let instances: u32 = small.fleets.iter().map(|f| f.count).sum();
        assert_eq!(instances, 30);
        assert_eq!(small.load_balancers.len(), 1);
        assert_eq!(small.zones.len(), 1);
        assert_eq!(small.zones[0].records.len(), 40);
        assert_eq!(small.db_instances.len(), 1);
        // At least one of everything, even at scale 0.
        let tiny = EstateSpec::case_study(0.0);
        tiny.validate().expect("valid");
        assert_eq!(tiny.fleets.len(), 3);
        assert!(tiny.fleets.iter().all(|f| f.count == 1));
        assert_eq!(
            (
                tiny.load_balancers.len(),
                tiny.zones.len(),
                tiny.db_instances.len()
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn classic_hosted_zones_come_from_aws_table() {
        assert_eq!(classic_elb_hosted_zone("us-east-1"), Some("Z35SXDOTRQ7X7K"));
        assert_eq!(classic_elb_hosted_zone("us-west-2"), Some("Z1H1FL5HABSF5"));
        assert_eq!(classic_elb_hosted_zone("mars-1"), None);
    }
}
