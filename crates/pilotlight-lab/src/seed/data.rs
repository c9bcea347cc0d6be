//! The data side of an estate: EBS volumes with snapshots, RDS instances and Aurora clusters
//! with manual snapshots, and AMIs with the instances launched from them — what pilotlight
//! copies to the DR region.
//!
//! Every resource carries `Name` and the tier tag [`TIER_TAG`] (`dr:tier`, pilotlight's
//! default `tiers.tag_key`). Snapshots are created in rounds, oldest first: round `n` makes
//! every volume's `n`-th snapshot. moto stamps an EBS snapshot's `StartTime` at creation with
//! whole-second precision, so before each later round the seeder lets the wall clock pass into
//! a new second (a wait for a time, not a condition): a volume's last snapshot then always has
//! the latest `StartTime`. Calls run at most [`SEED_CONCURRENCY`] at a time.
//!
//! moto facts this relies on (shared/LAB-NOTES.md, moto 5.2.1): `RegisterImage` ignores the
//! block-device mappings and tags it is given — every registered AMI reports one 15 GiB root
//! device — so the seeder tags AMIs with `CreateTags`; RDS and cluster snapshots are
//! `available` at once.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, EbsBlockDevice, Filter, InstanceType, ResourceType,
    Tag, TagSpecification, VolumeType,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{call, missing};
use crate::error::LabError;

/// The tag holding a resource's recovery tier (pilotlight's default `tiers.tag_key`).
pub const TIER_TAG: &str = "dr:tier";
/// Most seeding calls in flight at once.
pub const SEED_CONCURRENCY: usize = 8;
/// The master user of seeded databases (moto never checks it).
const DB_USER: &str = "labadmin";
/// The master password of seeded databases: a lab fixture, not a secret.
const DB_PASSWORD: &str = "lab-password-0";

/// An EBS volume and its snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub name: String,
    pub size_gib: u32,
    /// The AZ letter, `a` to `f`.
    pub az: String,
    /// 1 to 9, tagged [`TIER_TAG`].
    pub tier: u8,
    /// How many snapshots, created oldest first (`<name>-1`, `<name>-2`, …).
    #[serde(default)]
    pub snapshots: u32,
    /// More tags for the volume and its snapshots.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_db_engine() -> String {
    "postgres".to_owned()
}

fn default_db_class() -> String {
    "db.t3.micro".to_owned()
}

fn default_db_size() -> u32 {
    20
}

fn default_cluster_engine() -> String {
    "aurora-postgresql".to_owned()
}

fn default_cluster_class() -> String {
    "db.r6g.large".to_owned()
}

fn default_root_gib() -> u32 {
    8
}

fn default_instance_type() -> String {
    "t3.micro".to_owned()
}

/// An RDS DB instance and its manual snapshots (`<name>-1`, `<name>-2`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbInstanceSpec {
    pub name: String,
    #[serde(default = "default_db_engine")]
    pub engine: String,
    #[serde(default = "default_db_class")]
    pub class: String,
    #[serde(default = "default_db_size")]
    pub size_gib: u32,
    pub tier: u8,
    #[serde(default)]
    pub snapshots: u32,
    /// Where the DB lives; `None` puts it in moto's default VPC (which pilotlight does not
    /// mirror, so a restore cannot place it).
    #[serde(default)]
    pub network: Option<DbNetworkSpec>,
}

/// A DB instance's (or Aurora cluster's) place in an estate VPC: a subnet group
/// `<name>-subnets` made of `subnets`, and the VPC security groups `security_groups` (names
/// within `vpc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbNetworkSpec {
    pub vpc: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

impl DbNetworkSpec {
    /// `subnets` and `security_groups` of the VPC `vpc`.
    pub fn new(vpc: &str, subnets: &[&str], security_groups: &[&str]) -> DbNetworkSpec {
        DbNetworkSpec {
            vpc: vpc.to_owned(),
            subnets: subnets.iter().map(|s| (*s).to_owned()).collect(),
            security_groups: security_groups.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// An Aurora DB cluster, its member instances and its manual cluster snapshots (`<name>-1`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbClusterSpec {
    pub name: String,
    #[serde(default = "default_cluster_engine")]
    pub engine: String,
    pub tier: u8,
    #[serde(default)]
    pub snapshots: u32,
    /// Member DB instances `<name>-i1`, `<name>-i2`, … (the first one the writer), created after
    /// the cluster with `CreateDBInstance` and tagged like it.
    #[serde(default)]
    pub instances: u32,
    /// The members' instance class.
    #[serde(default = "default_cluster_class")]
    pub class: String,
    /// Where the cluster lives; `None` puts it in moto's default VPC (which pilotlight does not
    /// mirror, so a restore cannot place it).
    #[serde(default)]
    pub network: Option<DbNetworkSpec>,
}

impl DbClusterSpec {
    /// The identifiers of its member instances, the writer first.
    pub fn member_names(&self) -> Vec<String> {
        (1..=self.instances)
            .map(|n| format!("{}-i{n}", self.name))
            .collect()
    }
}

/// An AMI (registered with a root device of `root_gib`) and the instances launched from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub name: String,
    /// Instances launched from the AMI (one `RunInstances`), tagged `Name=<name>` and the tier.
    #[serde(default)]
    pub instances: u32,
    pub tier: u8,
    /// Root device size asked of `RegisterImage` (moto reports 15 GiB whatever is asked).
    #[serde(default = "default_root_gib")]
    pub root_gib: u32,
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    /// Launch into this VPC's `subnet` (both names from the spec); neither: the default VPC.
    #[serde(default)]
    pub vpc: Option<String>,
    #[serde(default)]
    pub subnet: Option<String>,
}

/// A seeded volume: its id and its snapshots' ids, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededVolume {
    pub id: String,
    pub snapshots: Vec<String>,
}

/// A seeded RDS snapshot or cluster snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededDbSnapshot {
    pub id: String,
    pub arn: String,
}

/// A seeded DB instance or cluster: its ARN and its manual snapshots, oldest first; a
/// cluster's member instance identifiers, the writer first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededDb {
    pub arn: String,
    pub snapshots: Vec<SeededDbSnapshot>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// A seeded AMI and the instances launched from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededImage {
    pub id: String,
    pub instances: Vec<String>,
}

fn volume(name: &str, size_gib: u32, az: &str, tier: u8, snapshots: u32) -> VolumeSpec {
    VolumeSpec {
        name: name.to_owned(),
        size_gib,
        az: az.to_owned(),
        tier,
        snapshots,
        tags: BTreeMap::from([("app".to_owned(), "shop".to_owned())]),
    }
}

/// The data part of [`super::EstateSpec::sample`]: six small volumes over tiers 1–3 with two or
/// three snapshots each, two DB instances with two snapshots each, one Aurora cluster with one
/// snapshot (no member instance, in the default VPC), and two AMIs with two and one instances
/// in the `prod` VPC.
pub(super) fn sample_data() -> (
    Vec<VolumeSpec>,
    Vec<DbInstanceSpec>,
    Vec<DbClusterSpec>,
    Vec<ImageSpec>,
) {
    let volumes = vec![
        volume("web-root", 2, "a", 1, 3),
        volume("app-data", 4, "a", 1, 3),
        volume("app-logs", 2, "b", 2, 2),
        volume("search-index", 8, "b", 2, 2),
        volume("reports", 4, "c", 3, 2),
        volume("archive", 6, "c", 3, 2),
    ];
    let dbs = vec![
        DbInstanceSpec {
            name: "orders-db".into(),
            engine: "postgres".into(),
            class: "db.t3.micro".into(),
            size_gib: 20,
            tier: 1,
            snapshots: 2,
            network: Some(DbNetworkSpec::new("prod", &["app-a", "app-b"], &["db"])),
        },
        DbInstanceSpec {
            name: "reports-db".into(),
            engine: "mysql".into(),
            class: "db.t3.small".into(),
            size_gib: 20,
            tier: 2,
            snapshots: 2,
            network: Some(DbNetworkSpec::new("prod", &["app-a", "app-b"], &["db"])),
        },
    ];
    let clusters = vec![DbClusterSpec {
        name: "ledger".into(),
        engine: default_cluster_engine(),
        tier: 1,
        snapshots: 1,
        instances: 0,
        class: default_cluster_class(),
        // In prod's app subnets like the DB instances, so the DR side can place it.
        network: Some(DbNetworkSpec::new("prod", &["app-a", "app-b"], &["db"])),
    }];
    let images = vec![
        ImageSpec {
            name: "web-ami".into(),
            instances: 2,
            tier: 1,
            root_gib: 8,
            instance_type: default_instance_type(),
            vpc: Some("prod".into()),
            subnet: Some("web-a".into()),
        },
        ImageSpec {
            name: "batch-ami".into(),
            instances: 1,
            tier: 3,
            root_gib: 8,
            instance_type: default_instance_type(),
            vpc: Some("prod".into()),
            subnet: Some("app-a".into()),
        },
    ];
    (volumes, dbs, clusters, images)
}

/// `count` volumes with one snapshot each, deterministic for `seed`: names `v00000`…, AZs
/// a–c, tiers 1/2/3 in about 20/30/50 %, sizes from 8 GiB to 1 TiB (mostly small).
pub(super) fn scaled_volumes(count: usize, seed: u64) -> Vec<VolumeSpec> {
    // splitmix64: tiny, deterministic, good enough for a workload mix.
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    const SIZES: [u32; 8] = [8, 8, 20, 20, 50, 100, 200, 1024];
    const AZS: [&str; 3] = ["a", "b", "c"];
    (0..count)
        .map(|i| {
            let r = next();
            let tier = match r % 10 {
                0 | 1 => 1,
                2..=4 => 2,
                _ => 3,
            };
            let size = SIZES[usize::try_from((r >> 8) % 8).unwrap_or(0)];
            let az = AZS[usize::try_from((r >> 16) % 3).unwrap_or(0)];
            VolumeSpec {
                name: format!("v{i:05}"),
                size_gib: size,
                az: az.to_owned(),
                tier,
                snapshots: 1,
                tags: BTreeMap::new(),
            }
        })
        .collect()
}

/// RDS identifiers: a letter first, then letters, digits and single hyphens, no trailing
/// hyphen, at most 63 characters (snapshot ids add `-<n>`).
fn valid_rds_identifier(name: &str) -> bool {
    name.len() <= 58
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.contains("--")
        && !name.ends_with('-')
}

/// Checks the data part of a spec; pushes every problem found. `subnets` lists the spec's
/// (VPC, subnet) names.
pub(super) fn validate(
    volumes: &[VolumeSpec],
    dbs: &[DbInstanceSpec],
    clusters: &[DbClusterSpec],
    images: &[ImageSpec],
    subnets: &[(&str, &str)],
    problems: &mut Vec<String>,
) {
    let mut check_unique = |kind: &str, names: Vec<&str>| {
        let mut seen = std::collections::BTreeSet::new();
        for n in names {
            if n.is_empty() {
                problems.push(format!("a {kind} has an empty name"));
            } else if !seen.insert(n) {
                problems.push(format!("{kind} {n:?} is defined twice"));
            }
        }
    };
    check_unique("volume", volumes.iter().map(|v| v.name.as_str()).collect());
    check_unique("DB instance", dbs.iter().map(|d| d.name.as_str()).collect());
    check_unique(
        "DB cluster",
        clusters.iter().map(|c| c.name.as_str()).collect(),
    );
    check_unique("image", images.iter().map(|i| i.name.as_str()).collect());
    let tier_ok = |t: u8| (1..=9).contains(&t);
    for v in volumes {
        if !matches!(v.az.as_str(), "a" | "b" | "c" | "d" | "e" | "f") {
            problems.push(format!(
                "volume {:?} has AZ {:?}; use a letter a..f",
                v.name, v.az
            ));
        }
        if !(1..=16_384).contains(&v.size_gib) {
            problems.push(format!(
                "volume {:?}: size_gib {} is outside 1..=16384",
                v.name, v.size_gib
            ));
        }
        if !tier_ok(v.tier) {
            problems.push(format!("volume {:?}: tier {} is not 1..9", v.name, v.tier));
        }
    }
    for d in dbs {
        if !valid_rds_identifier(&d.name) {
            problems.push(format!(
                "DB instance {:?} is not a valid RDS identifier",
                d.name
            ));
        }
        if d.size_gib == 0 {
            problems.push(format!("DB instance {:?}: size_gib is 0", d.name));
        }
        if !tier_ok(d.tier) {
            problems.push(format!(
                "DB instance {:?}: tier {} is not 1..9",
                d.name, d.tier
            ));
        }
    }
    let db_names: std::collections::BTreeSet<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
    for c in clusters {
        for member in c.member_names() {
            if db_names.contains(member.as_str()) {
                problems.push(format!(
                    "DB cluster {:?}: member {member:?} has the name of a DB instance",
                    c.name
                ));
            }
        }
        if c.instances > 0 && c.class.is_empty() {
            problems.push(format!("DB cluster {:?}: class is empty", c.name));
        }
        if !valid_rds_identifier(&c.name) {
            problems.push(format!(
                "DB cluster {:?} is not a valid RDS identifier",
                c.name
            ));
        }
        if !c.engine.starts_with("aurora") {
            problems.push(format!(
                "DB cluster {:?}: engine {:?} is not an Aurora engine",
                c.name, c.engine
            ));
        }
        if !tier_ok(c.tier) {
            problems.push(format!(
                "DB cluster {:?}: tier {} is not 1..9",
                c.name, c.tier
            ));
        }
    }
    for i in images {
        if !tier_ok(i.tier) {
            problems.push(format!("image {:?}: tier {} is not 1..9", i.name, i.tier));
        }
        if i.root_gib == 0 {
            problems.push(format!("image {:?}: root_gib is 0", i.name));
        }
        match (&i.vpc, &i.subnet) {
            (None, None) => {}
            (Some(v), Some(s)) => {
                if !subnets.contains(&(v.as_str(), s.as_str())) {
                    problems.push(format!(
                        "image {:?} launches into unknown subnet {s:?} of VPC {v:?}",
                        i.name
                    ));
                }
            }
            _ => problems.push(format!(
                "image {:?}: give both vpc and subnet, or neither",
                i.name
            )),
        }
    }
}

fn ec2_tags(
    kind: ResourceType,
    name: &str,
    tier: u8,
    extra: &BTreeMap<String, String>,
) -> TagSpecification {
    let mut spec = TagSpecification::builder()
        .resource_type(kind)
        .tags(Tag::builder().key("Name").value(name).build())
        .tags(Tag::builder().key(TIER_TAG).value(tier.to_string()).build());
    for (k, v) in extra {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

fn rds_tags(name: &str, tier: u8) -> Vec<aws_sdk_rds::types::Tag> {
    vec![
        aws_sdk_rds::types::Tag::builder()
            .key("Name")
            .value(name)
            .build(),
        aws_sdk_rds::types::Tag::builder()
            .key(TIER_TAG)
            .value(tier.to_string())
            .build(),
    ]
}

/// Sleeps until the wall clock is in a later whole second than `after` (seconds since the
/// epoch), so a snapshot created next gets a later `StartTime` from moto.
async fn pass_second(after: u64) {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if now.as_secs() > after {
            return;
        }
        // Until just past the next second boundary.
        let rest = Duration::from_secs(1)
            .saturating_sub(Duration::from_nanos(u64::from(now.subsec_nanos())));
        tokio::time::sleep(rest + Duration::from_millis(5)).await;
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates one snapshot of `volume_id` with `tags` (a `Name` among them if wanted).
async fn create_snapshot(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    volume_id: &str,
    name: &str,
    spec: TagSpecification,
) -> Result<String, LabError> {
    let out = call("CreateSnapshot", name, region, || {
        ec2.create_snapshot()
            .volume_id(volume_id)
            .description(format!("pilotlight lab snapshot {name}"))
            .tag_specifications(spec.clone())
            .send()
    })
    .await?;
    out.snapshot_id()
        .map(str::to_owned)
        .ok_or_else(|| missing("CreateSnapshot", name, "SnapshotId"))
}

/// Creates the volumes, then their snapshots in rounds (oldest first).
pub(super) async fn seed_volumes(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    volumes: &[VolumeSpec],
) -> Result<BTreeMap<String, SeededVolume>, LabError> {
    let created: Vec<(String, String)> = stream::iter(volumes)
        .map(|v| async move {
            let az = format!("{region}{}", v.az);
            let size = i32::try_from(v.size_gib).unwrap_or(i32::MAX);
            let out = call("CreateVolume", &v.name, region, || {
                ec2.create_volume()
                    .availability_zone(&az)
                    .size(size)
                    .volume_type(VolumeType::Gp3)
                    .tag_specifications(ec2_tags(ResourceType::Volume, &v.name, v.tier, &v.tags))
                    .send()
            })
            .await?;
            let id = out
                .volume_id()
                .ok_or_else(|| missing("CreateVolume", &v.name, "VolumeId"))?
                .to_owned();
            Ok::<_, LabError>((v.name.clone(), id))
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect()
        .await?;
    let mut seeded: BTreeMap<String, SeededVolume> = created
        .into_iter()
        .map(|(name, id)| {
            (
                name,
                SeededVolume {
                    id,
                    snapshots: Vec::new(),
                },
            )
        })
        .collect();
    let rounds = volumes.iter().map(|v| v.snapshots).max().unwrap_or(0);
    let mut round_end = 0;
    for round in 1..=rounds {
        if round > 1 {
            pass_second(round_end).await;
        }
        let jobs: Vec<(&VolumeSpec, String)> = volumes
            .iter()
            .filter(|v| v.snapshots >= round)
            .filter_map(|v| seeded.get(&v.name).map(|s| (v, s.id.clone())))
            .collect();
        let made: Vec<(String, String)> = stream::iter(jobs)
            .map(|(v, volume_id)| async move {
                let name = format!("{}-{round}", v.name);
                let tags = ec2_tags(ResourceType::Snapshot, &name, v.tier, &v.tags);
                let id = create_snapshot(ec2, region, &volume_id, &name, tags).await?;
                Ok::<_, LabError>((v.name.clone(), id))
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .try_collect()
            .await?;
        round_end = epoch_secs();
        for (name, id) in made {
            if let Some(v) = seeded.get_mut(&name) {
                v.snapshots.push(id);
            }
        }
    }
    Ok(seeded)
}

/// Registers the AMIs, tags them and launches their instances.
pub(super) async fn seed_images(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    images: &[ImageSpec],
    subnet_ids: &BTreeMap<(String, String), String>,
) -> Result<BTreeMap<String, SeededImage>, LabError> {
    let mut out = BTreeMap::new();
    for image in images {
        let name = &image.name;
        let root = BlockDeviceMapping::builder()
            .device_name("/dev/xvda")
            .ebs(
                EbsBlockDevice::builder()
                    .volume_size(i32::try_from(image.root_gib).unwrap_or(i32::MAX))
                    .volume_type(VolumeType::Gp3)
                    .delete_on_termination(true)
                    .build(),
            )
            .build();
        let registered = call("RegisterImage", name, region, || {
            ec2.register_image()
                .name(name)
                .description(format!("pilotlight lab image {name}"))
                .architecture(ArchitectureValues::X8664)
                .virtualization_type("hvm")
                .root_device_name("/dev/xvda")
                .block_device_mappings(root.clone())
                .send()
        })
        .await?;
        let image_id = registered
            .image_id()
            .ok_or_else(|| missing("RegisterImage", name, "ImageId"))?
            .to_owned();
        call("CreateTags", &image_id, region, || {
            ec2.create_tags()
                .resources(&image_id)
                .tags(Tag::builder().key("Name").value(name).build())
                .tags(
                    Tag::builder()
                        .key(TIER_TAG)
                        .value(image.tier.to_string())
                        .build(),
                )
                .send()
        })
        .await?;
        let mut instances = Vec::new();
        if image.instances > 0 {
            let count = i32::try_from(image.instances).unwrap_or(i32::MAX);
            let subnet = match (&image.vpc, &image.subnet) {
                (Some(v), Some(s)) => Some(
                    subnet_ids
                        .get(&(v.clone(), s.clone()))
                        .cloned()
                        .ok_or_else(|| missing("CreateSubnet", s, "SubnetId"))?,
                ),
                _ => None,
            };
            let launched = call("RunInstances", name, region, || {
                ec2.run_instances()
                    .image_id(&image_id)
                    .instance_type(InstanceType::from(image.instance_type.as_str()))
                    .min_count(count)
                    .max_count(count)
                    .set_subnet_id(subnet.clone())
                    .tag_specifications(ec2_tags(
                        ResourceType::Instance,
                        name,
                        image.tier,
                        &BTreeMap::new(),
                    ))
                    .send()
            })
            .await?;
            instances = launched
                .instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_owned))
                .collect();
        }
        out.insert(
            name.clone(),
            SeededImage {
                id: image_id,
                instances,
            },
        );
    }
    Ok(out)
}

/// Creates the DB instances and clusters with their manual snapshots.
pub(super) async fn seed_databases(
    rds: &aws_sdk_rds::Client,
    region: &str,
    dbs: &[DbInstanceSpec],
    clusters: &[DbClusterSpec],
    vpcs: &BTreeMap<String, super::SeededVpc>,
) -> Result<(BTreeMap<String, SeededDb>, BTreeMap<String, SeededDb>), LabError> {
    let mut instances = BTreeMap::new();
    for db in dbs {
        let name = &db.name;
        let (subnet_group, security_groups) =
            db_network(rds, region, "DB instance", name, db.network.as_ref(), vpcs).await?;
        let out = call("CreateDBInstance", name, region, || {
            rds.create_db_instance()
                .db_instance_identifier(name)
                .engine(&db.engine)
                .db_instance_class(&db.class)
                .allocated_storage(i32::try_from(db.size_gib).unwrap_or(i32::MAX))
                .master_username(DB_USER)
                .master_user_password(DB_PASSWORD)
                .set_db_subnet_group_name(subnet_group.clone())
                .set_vpc_security_group_ids(security_groups.clone())
                .set_tags(Some(rds_tags(name, db.tier)))
                .send()
        })
        .await?;
        let arn = out
            .db_instance()
            .and_then(|d| d.db_instance_arn())
            .ok_or_else(|| missing("CreateDBInstance", name, "DBInstanceArn"))?
            .to_owned();
        let mut snapshots = Vec::new();
        for n in 1..=db.snapshots {
            let id = format!("{name}-{n}");
            let out = call("CreateDBSnapshot", &id, region, || {
                rds.create_db_snapshot()
                    .db_instance_identifier(name)
                    .db_snapshot_identifier(&id)
                    .set_tags(Some(rds_tags(&id, db.tier)))
                    .send()
            })
            .await?;
            let arn = out
                .db_snapshot()
                .and_then(|s| s.db_snapshot_arn())
                .ok_or_else(|| missing("CreateDBSnapshot", &id, "DBSnapshotArn"))?
                .to_owned();
            snapshots.push(SeededDbSnapshot { id, arn });
        }
        instances.insert(
            name.clone(),
            SeededDb {
                arn,
                snapshots,
                members: Vec::new(),
            },
        );
    }
    let mut seeded_clusters = BTreeMap::new();
    for cluster in clusters {
        let name = &cluster.name;
        let (subnet_group, security_groups) = db_network(
            rds,
            region,
            "DB cluster",
            name,
            cluster.network.as_ref(),
            vpcs,
        )
        .await?;
        let out = call("CreateDBCluster", name, region, || {
            rds.create_db_cluster()
                .db_cluster_identifier(name)
                .engine(&cluster.engine)
                .master_username(DB_USER)
                .master_user_password(DB_PASSWORD)
                .set_db_subnet_group_name(subnet_group.clone())
                .set_vpc_security_group_ids(security_groups.clone())
                .set_tags(Some(rds_tags(name, cluster.tier)))
                .send()
        })
        .await?;
        let arn = out
            .db_cluster()
            .and_then(|c| c.db_cluster_arn())
            .ok_or_else(|| missing("CreateDBCluster", name, "DBClusterArn"))?
            .to_owned();
        // One at a time, the writer first: the first instance of a cluster is its writer.
        let members = cluster.member_names();
        for (n, member) in members.iter().enumerate() {
            call("CreateDBInstance", member, region, || {
                rds.create_db_instance()
                    .db_instance_identifier(member)
                    .db_cluster_identifier(name)
                    .engine(&cluster.engine)
                    .db_instance_class(&cluster.class)
                    .promotion_tier(i32::from(n > 0))
                    .set_tags(Some(rds_tags(member, cluster.tier)))
                    .send()
            })
            .await?;
        }
        let mut snapshots = Vec::new();
        for n in 1..=cluster.snapshots {
            let id = format!("{name}-{n}");
            let out = call("CreateDBClusterSnapshot", &id, region, || {
                rds.create_db_cluster_snapshot()
                    .db_cluster_identifier(name)
                    .db_cluster_snapshot_identifier(&id)
                    .set_tags(Some(rds_tags(&id, cluster.tier)))
                    .send()
            })
            .await?;
            let arn = out
                .db_cluster_snapshot()
                .and_then(|s| s.db_cluster_snapshot_arn())
                .ok_or_else(|| missing("CreateDBClusterSnapshot", &id, "DBClusterSnapshotArn"))?
                .to_owned();
            snapshots.push(SeededDbSnapshot { id, arn });
        }
        seeded_clusters.insert(
            name.clone(),
            SeededDb {
                arn,
                snapshots,
                members,
            },
        );
    }
    Ok((instances, seeded_clusters))
}

/// The subnet group (`<name>-subnets`, created here) and security group ids of a DB instance's
/// or cluster's place in the estate; `(None, None)` without one.
async fn db_network(
    rds: &aws_sdk_rds::Client,
    region: &str,
    kind: &str,
    name: &str,
    network: Option<&DbNetworkSpec>,
    vpcs: &BTreeMap<String, super::SeededVpc>,
) -> Result<(Option<String>, Option<Vec<String>>), LabError> {
    let Some(net) = network else {
        return Ok((None, None));
    };
    let unknown = |what: &str| LabError::InvalidSpec {
        problems: vec![format!("{kind} {name}: {what} is not part of the estate")],
    };
    let vpc = vpcs
        .get(&net.vpc)
        .ok_or_else(|| unknown(&format!("VPC {}", net.vpc)))?;
    let subnet_ids = net
        .subnets
        .iter()
        .map(|s| {
            vpc.subnets
                .get(s)
                .cloned()
                .ok_or_else(|| unknown(&format!("subnet {s}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let group_ids = net
        .security_groups
        .iter()
        .map(|g| {
            vpc.security_groups
                .get(g)
                .cloned()
                .ok_or_else(|| unknown(&format!("security group {g}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let group = format!("{name}-subnets");
    call("CreateDBSubnetGroup", &group, region, || {
        rds.create_db_subnet_group()
            .db_subnet_group_name(&group)
            .db_subnet_group_description(format!("subnets of {name}"))
            .set_subnet_ids(Some(subnet_ids.clone()))
            .send()
    })
    .await?;
    Ok((Some(group), Some(group_ids)))
}

/// Creates one more snapshot of an existing volume (the "a new primary snapshot appears"
/// scenario), tagged with `tags`, and returns its id. Its `StartTime` is later than that of
/// every earlier snapshot of the volume: when the newest one was taken in the current second,
/// this waits for the next (moto's `StartTime` has whole-second precision).
///
/// # Errors
///
/// [`LabError::Aws`] when `DescribeSnapshots` or `CreateSnapshot` fails,
/// [`LabError::MissingField`] without an id.
pub async fn add_snapshot(
    ec2: &aws_sdk_ec2::Client,
    volume_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<String, LabError> {
    let region = ec2
        .config()
        .region()
        .map(ToString::to_string)
        .unwrap_or_default();
    let existing = call("DescribeSnapshots", volume_id, &region, || {
        ec2.describe_snapshots()
            .filters(
                Filter::builder()
                    .name("volume-id")
                    .values(volume_id)
                    .build(),
            )
            .send()
    })
    .await?;
    let newest = existing
        .snapshots()
        .iter()
        .filter_map(|s| s.start_time())
        .map(aws_sdk_ec2::primitives::DateTime::secs)
        .max();
    if let Some(newest) = newest {
        pass_second(u64::try_from(newest).unwrap_or(0)).await;
    }
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Snapshot);
    // Every seeded resource has a Name (and a tag specification may not be empty).
    if !tags.contains_key("Name") {
        spec = spec.tags(
            Tag::builder()
                .key("Name")
                .value(format!("{volume_id}-snapshot"))
                .build(),
        );
    }
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    create_snapshot(ec2, &region, volume_id, volume_id, spec.build()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_volumes_are_deterministic_and_mixed() {
        let a = scaled_volumes(2000, 7);
        assert_eq!(a, scaled_volumes(2000, 7));
        assert_ne!(a, scaled_volumes(2000, 8));
        assert_eq!(a.len(), 2000);
        assert_eq!(a[0].name, "v00000");
        assert_eq!(a[1999].name, "v01999");
        assert!(a.iter().all(|v| v.snapshots == 1));
        let tier = |t: u8| a.iter().filter(|v| v.tier == t).count();
        // About 20/30/50 %.
        assert!((300..500).contains(&tier(1)), "{}", tier(1));
        assert!((500..700).contains(&tier(2)), "{}", tier(2));
        assert!((900..1100).contains(&tier(3)), "{}", tier(3));
        let sizes: std::collections::BTreeSet<u32> = a.iter().map(|v| v.size_gib).collect();
        assert!(sizes.len() >= 5, "{sizes:?}");
        let azs: std::collections::BTreeSet<&str> = a.iter().map(|v| v.az.as_str()).collect();
        assert_eq!(azs.len(), 3);
        assert!(scaled_volumes(0, 1).is_empty());
    }

    #[test]
    fn rds_identifiers() {
        assert!(valid_rds_identifier("orders-db"));
        assert!(valid_rds_identifier("a1"));
        for bad in ["", "1db", "db--x", "db-", "db_x", &"x".repeat(59)] {
            assert!(!valid_rds_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn data_validation_reports_every_problem() {
        let (mut volumes, mut dbs, mut clusters, mut images) = sample_data();
        volumes[0].az = "z".into();
        volumes[1].size_gib = 0;
        volumes.push(volumes[2].clone());
        dbs[0].name = "Bad_Name".into();
        dbs[1].tier = 0;
        clusters[0].engine = "postgres".into();
        images[0].subnet = Some("nowhere".into());
        images[1].vpc = None;
        let mut problems = Vec::new();
        validate(
            &volumes,
            &dbs,
            &clusters,
            &images,
            &[("prod", "web-a"), ("prod", "app-a")],
            &mut problems,
        );
        assert_eq!(problems.len(), 8, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("AZ \"z\"")));
        assert!(problems.iter().any(|p| p.contains("size_gib 0")));
        assert!(problems.iter().any(|p| p.contains("defined twice")));
        assert!(problems.iter().any(|p| p.contains("Bad_Name")));
        assert!(problems.iter().any(|p| p.contains("tier 0")));
        assert!(problems.iter().any(|p| p.contains("not an Aurora engine")));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown subnet \"nowhere\""))
        );
        assert!(problems.iter().any(|p| p.contains("both vpc and subnet")));
    }
}
