//! The capture of the primary estate into the inventory model (SPEC R5): describe and list
//! calls through the primary faces only ([`PrimaryHandles`]), converted into
//! [`pilotlight_core::inventory`] and normalised.
//!
//! # What is read, and what it costs
//!
//! With `R` reservations, `V` attached EBS volumes, `T` instance types in use (`T'` of them not
//! yet cached), classic load balancers `Lc`, v2 load balancers `L` with `H` HTTPS/TLS
//! listeners and `G` target groups attached to them (`Gr` in the region), ACM listener
//! certificates `C` (`C'` not yet cached), hosted zones `Z` (`Zp` private, `n_z` records in
//! zone `z`), `D` DB instances, `K` Aurora clusters and `S` DB subnet groups, one capture makes
//!
//! ```text
//! EC2      ceil(R/1000) DescribeInstances + ceil(V/200) DescribeVolumes
//!          + ceil(T'/100) DescribeInstanceTypes
//! ELB      ceil(Lc/400) DescribeLoadBalancers + ceil(Lc/20) DescribeTags
//! ELBv2    ceil(L/400) DescribeLoadBalancers + L DescribeListeners
//!          + H DescribeListenerCertificates + ceil(Gr/400) DescribeTargetGroups
//!          + G DescribeTargetHealth + ceil(L/20) DescribeTags
//! ACM      C' DescribeCertificate
//! Route 53 ceil(Z/100) ListHostedZones + Zp GetHostedZone + Σ_z ceil(n_z/300)
//!          ListResourceRecordSets
//! RDS      ceil(D/100) DescribeDBInstances + ceil(K/100) DescribeDBClusters
//!          [+ ceil(S/100) DescribeDBSubnetGroups]
//! ```
//!
//! (each list at least one call; the v2 target-group and listener calls only when there are
//! v2 load balancers; `DescribeDBSubnetGroups` only when a cluster's subnet group is used by no
//! DB instance, whose answer already lists the group's subnets). Instance types and certificates are immutable per name and ARN, so
//! [`PrimaryHandles`] caches them: a steady-state capture makes no `DescribeInstanceTypes` and
//! no `DescribeCertificate` call. The remaining per-resource calls (listeners, listener
//! certificates, target health, private zones) have no list form in the API. For the case
//! study (3,000 instances in ~3,000 reservations, 6,000 volumes, no classic and 100 v2 load
//! balancers with one HTTPS listener and one target group each, 20 public zones of 200
//! records, 50 DB instances, no cluster) a steady-state capture is EC2 3 + 30, ELB 1 + 0, ELBv2
//! 1 + 100 + 100 + 1 + 100 + 5, Route 53 1 + 20, RDS 1 + 1: 364 calls, 307 of them ELB calls
//! paced by the shared ELB describe buckets (40 burst, 10/s): about 27 s.
//!
//! # Choices
//!
//! - **Instances** are those in state `pending`, `running`, `stopping` or `stopped`
//!   (`instance-state-name` filter): terminated and shutting-down instances are not restored.
//!   No `availability-zone` filter is used (moto never matches it).
//! - **Volumes** are looked up with the `volume-id` *filter* in batches of 200 (EC2's limit of
//!   values per filter), so a volume deleted between the two calls is simply absent instead of
//!   failing the batch; such a race fails the capture as [`ErrorKind::Transient`], and the
//!   next cycle retries.
//! - **Tier** is the tier tag's value when it is 1–9, else the default tier; **cluster** the
//!   cluster tag's non-empty value; **role** the [`ROLE_TAG`] tag, else `Name` with one
//!   trailing `-<digits>` stripped, else the AMI id (the rule of the AMI copier).
//! - **Root device**: the mapping whose device name is `RootDeviceName`; where none is, the one
//!   equal to it under Xen naming (`/dev/sda1` ≡ `/dev/xvda`), which moto needs.
//! - **Certificates**: every listener certificate; ACM ARNs are described for their domain
//!   and subject alternative names, others (IAM server certificates) are recorded with an
//!   empty domain.
//! - **Records**: every record set but the zone's own SOA and apex NS; alias records carry no
//!   TTL (moto reports 0).
//! - **Aurora clusters**: `DescribeDBClusters` names a cluster's subnet group only; its subnets
//!   are taken from a DB instance in the same group (an Aurora member normally is one), else
//!   from one paginated `DescribeDBSubnetGroups`. Members are the cluster's `DBClusterMembers`
//!   with their writer flag; their own details are in the DB instances.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::types::{Filter, InstanceType};
use aws_sdk_elasticloadbalancingv2::types::{
    ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum,
};
use pilotlight_core::aws_limits::Service;
use pilotlight_core::config::Config;
use pilotlight_core::inventory::{
    AliasTarget, BlockDevice, Certificate, ClassicHealthCheck, ClassicListener,
    ClassicLoadBalancer, DbCluster, DbClusterMember, DbInstance, HostedZone, Instance,
    InstanceTypeInfo, Inventory, Listener, LoadBalancer, LoadBalancerKind, Record, SCHEMA_VERSION,
    Scheme, Target, TargetGroup,
};

use crate::acm::PrimaryAcm;
use crate::call::AwsCtx;
use crate::ec2::PrimaryEc2;
use crate::elb::{CLASSIC_TAGS_BATCH, PAGE_SIZE, PrimaryElb, PrimaryElbv2, V2_TAGS_BATCH};
use crate::error::{AwsError, ErrorKind};
use crate::rds::PrimaryRds;
use crate::route53::{PrimaryRoute53, RECORDS_PAGE, ZONES_PAGE};

/// The instance tag naming a launch role.
pub const ROLE_TAG: &str = "pilotlight:role";
/// `MaxResults` of `DescribeInstances` (reservations per page).
pub const INSTANCES_PAGE: i32 = 1000;
/// Volume ids per `DescribeVolumes` (values per filter).
pub const VOLUME_BATCH: usize = 200;
/// `MaxResults` of `DescribeVolumes`.
const VOLUMES_PAGE: i32 = 500;
/// Instance types per `DescribeInstanceTypes` (AWS's limit).
pub const INSTANCE_TYPE_BATCH: usize = 100;
/// `MaxRecords` of `DescribeDBInstances`.
pub const DB_PAGE: i32 = 100;
/// The states of a restorable instance.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// Describe results that never change for a name: instance types and certificates.
#[derive(Debug, Default)]
struct Cache {
    instance_types: BTreeMap<String, InstanceTypeInfo>,
    certificates: BTreeMap<String, Certificate>,
}

/// The primary faces a capture reads through; none of them has a mutating call.
#[derive(Debug, Clone)]
pub struct PrimaryHandles {
    pub ec2: PrimaryEc2,
    pub rds: PrimaryRds,
    pub elb: PrimaryElb,
    pub elbv2: PrimaryElbv2,
    pub route53: PrimaryRoute53,
    pub acm: PrimaryAcm,
    cache: Arc<Mutex<Cache>>,
}

impl PrimaryHandles {
    /// Every primary face for `config`'s region (the primary region).
    pub fn new(config: &aws_types::SdkConfig, ctx: AwsCtx) -> PrimaryHandles {
        PrimaryHandles {
            ec2: PrimaryEc2::new(config, ctx.clone()),
            rds: PrimaryRds::new(config, ctx.clone()),
            elb: PrimaryElb::new(config, ctx.clone()),
            elbv2: PrimaryElbv2::new(config, ctx.clone()),
            route53: PrimaryRoute53::new(config, ctx.clone()),
            acm: PrimaryAcm::new(config, ctx),
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What to capture and how to derive tiers and clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    pub primary_region: String,
    pub dr_region: String,
    /// Tag holding a resource's tier (`tiers.tag_key`).
    pub tier_tag: String,
    /// Tier of resources without a valid tier tag.
    pub default_tier: u8,
    /// Tag naming a resource's cluster (`inventory.cluster_tag`).
    pub cluster_tag: String,
    /// Capture classic and v2 load balancers and their certificates.
    pub load_balancers: bool,
    /// Capture Route 53 hosted zones and records.
    pub route53: bool,
    /// Capture RDS DB instances.
    pub rds: bool,
}

impl CaptureOptions {
    /// The options of a daemon configuration.
    pub fn from_config(config: &Config) -> CaptureOptions {
        CaptureOptions {
            primary_region: config.regions.primary.clone(),
            dr_region: config.regions.dr.clone(),
            tier_tag: config.tiers.tag_key.clone(),
            default_tier: config.tiers.default_tier,
            cluster_tag: config.inventory.cluster_tag.clone(),
            load_balancers: config.inventory.load_balancers,
            route53: config.inventory.route53,
            rds: config.inventory.rds,
        }
    }

    fn tier(&self, tag: Option<&str>) -> u8 {
        tag.and_then(parse_tier).unwrap_or(self.default_tier)
    }
}

/// Two describe answers that do not fit together (a resource vanished between them).
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct Inconsistent {
    pub what: String,
}

fn inconsistent(service: Service, operation: &'static str, region: &str, what: String) -> AwsError {
    AwsError {
        service: service.as_str(),
        operation,
        region: region.to_owned(),
        kind: ErrorKind::Transient,
        code: String::new(),
        message: Some(what.clone()),
        source: Box::new(Inconsistent { what }),
    }
}

/// A tier tag's value, if it is a tier (1–9).
pub fn parse_tier(value: &str) -> Option<u8> {
    value.trim().parse().ok().filter(|t| (1..=9).contains(t))
}

/// The launch role of an instance (see the module doc).
pub fn launch_role(tags: &BTreeMap<String, String>, image_id: &str) -> String {
    if let Some(role) = tags
        .get(ROLE_TAG)
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        return role.to_owned();
    }
    if let Some(name) = tags.get("Name").map(|n| n.trim()).filter(|n| !n.is_empty()) {
        return match name.rsplit_once('-') {
            Some((head, digits))
                if !head.is_empty()
                    && !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                head.to_owned()
            }
            _ => name.to_owned(),
        };
    }
    image_id.to_owned()
}

/// A device name under Xen naming: `/dev/sda1`, `/dev/xvda` and `xvda1` are all `a`.
fn xen_normal(device: &str) -> &str {
    let d = device.strip_prefix("/dev/").unwrap_or(device);
    let d = d
        .strip_prefix("xvd")
        .or_else(|| d.strip_prefix("sd"))
        .unwrap_or(d);
    d.trim_end_matches(|c: char| c.is_ascii_digit())
}

/// A non-empty, trimmed tag value.
fn tag_of<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    tags.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn next(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

/// Captures the primary estate (see the module doc); the document's `captured_at_ms` is the
/// time the capture finished.
///
/// # Errors
/// The first failed call's classified [`AwsError`]; answers that contradict each other (a
/// volume vanished between the instance and volume calls) as [`ErrorKind::Transient`].
pub async fn capture_inventory(
    p: &PrimaryHandles,
    opts: &CaptureOptions,
) -> Result<Inventory, AwsError> {
    let mut inventory = Inventory {
        schema_version: SCHEMA_VERSION,
        primary_region: opts.primary_region.clone(),
        dr_region: opts.dr_region.clone(),
        ..Inventory::default()
    };
    inventory.instances = instances(p, opts).await?;
    let types: BTreeSet<String> = inventory
        .instances
        .iter()
        .map(|i| i.instance_type.clone())
        .filter(|t| !t.is_empty())
        .collect();
    inventory.instance_types = instance_types(p, &types).await?;
    if opts.load_balancers {
        inventory.classic_load_balancers = classic_load_balancers(&p.elb).await?;
        inventory.load_balancers = load_balancers(&p.elbv2).await?;
        let arns = inventory.listener_certificate_arns();
        inventory.certificates = certificates(p, &arns).await?;
    }
    if opts.route53 {
        inventory.hosted_zones = hosted_zones(&p.route53).await?;
    }
    if opts.rds {
        inventory.db_instances = db_instances(&p.rds, opts).await?;
        inventory.db_clusters = db_clusters(&p.rds, opts, &inventory.db_instances).await?;
    }
    inventory.captured_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    inventory.normalize();
    Ok(inventory)
}

/// Every restorable instance with its block devices (volume sizes from `DescribeVolumes`).
async fn instances(p: &PrimaryHandles, opts: &CaptureOptions) -> Result<Vec<Instance>, AwsError> {
    let mut raw = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = p
            .ec2
            .describe_instances(|b| {
                b.filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(LIVE_STATES.iter().map(|s| (*s).to_owned()).collect()))
                        .build(),
                )
                .max_results(INSTANCES_PAGE)
                .set_next_token(token.clone())
            })
            .await?;
        raw.extend(
            page.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .cloned(),
        );
        token = next(page.next_token());
        if token.is_none() {
            break;
        }
    }

    let volume_ids: BTreeSet<String> = raw
        .iter()
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs().and_then(|e| e.volume_id()))
        .map(str::to_owned)
        .collect();
    let volumes = volumes(&p.ec2, &volume_ids.into_iter().collect::<Vec<_>>()).await?;

    let mut out = Vec::with_capacity(raw.len());
    for i in &raw {
        let Some(id) = i.instance_id() else { continue };
        let tags: BTreeMap<String, String> = i
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        let image_id = i.image_id().unwrap_or_default().to_owned();
        let root_device_name = i.root_device_name().map(str::to_owned);
        let mut block_devices = Vec::new();
        for m in i.block_device_mappings() {
            let Some(ebs) = m.ebs() else { continue };
            let Some(volume_id) = ebs.volume_id() else {
                continue;
            };
            let Some(volume) = volumes.get(volume_id) else {
                return Err(inconsistent(
                    Service::Ec2,
                    "DescribeVolumes",
                    p.ec2.region(),
                    format!("volume {volume_id} of instance {id} was not found by DescribeVolumes"),
                ));
            };
            block_devices.push(BlockDevice {
                device_name: m.device_name().unwrap_or_default().to_owned(),
                volume_id: volume_id.to_owned(),
                size_gib: volume.size_gib,
                volume_type: volume.volume_type.clone(),
                iops: volume.iops,
                encrypted: volume.encrypted,
                delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
                root: false,
            });
        }
        mark_root(&mut block_devices, root_device_name.as_deref());
        out.push(Instance {
            id: id.to_owned(),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            tier: opts.tier(tags.get(&opts.tier_tag).map(String::as_str)),
            cluster: tag_of(&tags, &opts.cluster_tag).map(str::to_owned),
            role: launch_role(&tags, &image_id),
            availability_zone: i
                .placement()
                .and_then(|pl| pl.availability_zone())
                .unwrap_or_default()
                .to_owned(),
            vpc_id: i.vpc_id().map(str::to_owned),
            subnet_id: i.subnet_id().map(str::to_owned),
            security_group_ids: i
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned))
                .collect(),
            image_id,
            key_name: i.key_name().map(str::to_owned),
            iam_instance_profile_arn: i
                .iam_instance_profile()
                .and_then(|pr| pr.arn())
                .map(str::to_owned),
            private_ip: i.private_ip_address().map(str::to_owned),
            public_ip: i.public_ip_address().map(str::to_owned),
            root_device_name,
            block_devices,
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            tags,
        });
    }
    Ok(out)
}

/// Marks the root device: the exact `root` name, else its Xen-equivalent (module doc).
fn mark_root(devices: &mut [BlockDevice], root: Option<&str>) {
    let Some(root) = root else { return };
    if let Some(d) = devices.iter_mut().find(|d| d.device_name == root) {
        d.root = true;
        return;
    }
    let normal = xen_normal(root);
    if let Some(d) = devices
        .iter_mut()
        .find(|d| xen_normal(&d.device_name) == normal)
    {
        d.root = true;
    }
}

#[derive(Debug, Clone)]
struct VolumeFacts {
    size_gib: u32,
    volume_type: Option<String>,
    iops: Option<u32>,
    encrypted: bool,
}

async fn volumes(
    ec2: &PrimaryEc2,
    ids: &[String],
) -> Result<HashMap<String, VolumeFacts>, AwsError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(VOLUME_BATCH) {
        let mut token: Option<String> = None;
        loop {
            let page = ec2
                .describe_volumes(|b| {
                    b.filters(
                        Filter::builder()
                            .name("volume-id")
                            .set_values(Some(chunk.to_vec()))
                            .build(),
                    )
                    .max_results(VOLUMES_PAGE)
                    .set_next_token(token.clone())
                })
                .await?;
            for v in page.volumes() {
                let Some(id) = v.volume_id() else { continue };
                out.insert(
                    id.to_owned(),
                    VolumeFacts {
                        size_gib: v.size().and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
                        volume_type: v.volume_type().map(|t| t.as_str().to_owned()),
                        iops: v.iops().and_then(|i| u32::try_from(i).ok()),
                        encrypted: v.encrypted().unwrap_or(false),
                    },
                );
            }
            token = next(page.next_token());
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// vCPU and memory of `types`, from the cache or `DescribeInstanceTypes`.
async fn instance_types(
    p: &PrimaryHandles,
    types: &BTreeSet<String>,
) -> Result<BTreeMap<String, InstanceTypeInfo>, AwsError> {
    let missing: Vec<String> = {
        let cache = p.cache();
        types
            .iter()
            .filter(|t| !cache.instance_types.contains_key(*t))
            .cloned()
            .collect()
    };
    for chunk in missing.chunks(INSTANCE_TYPE_BATCH) {
        let mut token: Option<String> = None;
        loop {
            let page = p
                .ec2
                .describe_instance_types(|b| {
                    b.set_instance_types(Some(
                        chunk
                            .iter()
                            .map(|t| InstanceType::from(t.as_str()))
                            .collect(),
                    ))
                    .set_next_token(token.clone())
                })
                .await?;
            let mut cache = p.cache();
            for t in page.instance_types() {
                let Some(name) = t.instance_type() else {
                    continue;
                };
                cache.instance_types.insert(
                    name.as_str().to_owned(),
                    InstanceTypeInfo {
                        vcpus: t
                            .v_cpu_info()
                            .and_then(|v| v.default_v_cpus())
                            .and_then(|v| u32::try_from(v).ok())
                            .unwrap_or(0),
                        memory_mib: t
                            .memory_info()
                            .and_then(|m| m.size_in_mib())
                            .and_then(|m| u64::try_from(m).ok())
                            .unwrap_or(0),
                    },
                );
            }
            drop(cache);
            token = next(page.next_token());
            if token.is_none() {
                break;
            }
        }
    }
    let cache = p.cache();
    Ok(types
        .iter()
        .filter_map(|t| cache.instance_types.get(t).map(|info| (t.clone(), *info)))
        .collect())
}

/// Classic load balancers with their tags.
async fn classic_load_balancers(elb: &PrimaryElb) -> Result<Vec<ClassicLoadBalancer>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = elb
            .describe_load_balancers(|b| b.page_size(PAGE_SIZE).set_marker(marker.clone()))
            .await?;
        for d in page.load_balancer_descriptions() {
            let Some(name) = d.load_balancer_name() else {
                continue;
            };
            out.push(ClassicLoadBalancer {
                name: name.to_owned(),
                dns_name: d.dns_name().unwrap_or_default().to_owned(),
                scheme: if d.scheme() == Some("internal") {
                    Scheme::Internal
                } else {
                    Scheme::InternetFacing
                },
                vpc_id: d.vpc_id().map(str::to_owned),
                subnet_ids: d.subnets().to_vec(),
                security_group_ids: d.security_groups().to_vec(),
                listeners: d
                    .listener_descriptions()
                    .iter()
                    .filter_map(|ld| ld.listener())
                    .map(|l| ClassicListener {
                        protocol: l.protocol().to_owned(),
                        port: l.load_balancer_port(),
                        instance_protocol: l.instance_protocol().map(str::to_owned),
                        instance_port: l.instance_port(),
                        certificate_arn: l
                            .ssl_certificate_id()
                            .filter(|c| !c.is_empty())
                            .map(str::to_owned),
                    })
                    .collect(),
                health_check: d.health_check().map(|h| ClassicHealthCheck {
                    target: h.target().to_owned(),
                    interval_secs: h.interval(),
                    timeout_secs: h.timeout(),
                    healthy_threshold: h.healthy_threshold(),
                    unhealthy_threshold: h.unhealthy_threshold(),
                }),
                instance_ids: d
                    .instances()
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_owned))
                    .collect(),
                tags: BTreeMap::new(),
            });
        }
        marker = next(page.next_marker());
        if marker.is_none() {
            break;
        }
    }
    let names: Vec<String> = out.iter().map(|lb| lb.name.clone()).collect();
    let mut tags: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for chunk in names.chunks(CLASSIC_TAGS_BATCH) {
        let page = elb
            .describe_tags(|b| b.set_load_balancer_names(Some(chunk.to_vec())))
            .await?;
        for d in page.tag_descriptions() {
            let Some(name) = d.load_balancer_name() else {
                continue;
            };
            tags.insert(
                name.to_owned(),
                d.tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
                    .collect(),
            );
        }
    }
    for lb in &mut out {
        lb.tags = tags.remove(&lb.name).unwrap_or_default();
    }
    Ok(out)
}

fn protocol_name(p: Option<&ProtocolEnum>) -> Option<String> {
    p.map(|p| p.as_str().to_owned())
}

/// v2 load balancers with listeners, attached target groups with their targets, and tags.
async fn load_balancers(elbv2: &PrimaryElbv2) -> Result<Vec<LoadBalancer>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = elbv2
            .describe_load_balancers(|b| b.page_size(PAGE_SIZE).set_marker(marker.clone()))
            .await?;
        for lb in page.load_balancers() {
            let Some(arn) = lb.load_balancer_arn() else {
                continue;
            };
            out.push(LoadBalancer {
                arn: arn.to_owned(),
                name: lb.load_balancer_name().unwrap_or_default().to_owned(),
                kind: match lb.r#type() {
                    Some(LoadBalancerTypeEnum::Network) => LoadBalancerKind::Network,
                    Some(LoadBalancerTypeEnum::Gateway) => LoadBalancerKind::Gateway,
                    _ => LoadBalancerKind::Application,
                },
                dns_name: lb.dns_name().unwrap_or_default().to_owned(),
                canonical_hosted_zone_id: lb.canonical_hosted_zone_id().map(str::to_owned),
                scheme: if lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal) {
                    Scheme::Internal
                } else {
                    Scheme::InternetFacing
                },
                vpc_id: lb.vpc_id().map(str::to_owned),
                subnet_ids: lb
                    .availability_zones()
                    .iter()
                    .filter_map(|z| z.subnet_id().map(str::to_owned))
                    .collect(),
                security_group_ids: lb.security_groups().to_vec(),
                listeners: Vec::new(),
                target_groups: Vec::new(),
                tags: BTreeMap::new(),
            });
        }
        marker = next(page.next_marker());
        if marker.is_none() {
            break;
        }
    }
    if out.is_empty() {
        return Ok(out);
    }

    for lb in &mut out {
        lb.listeners = listeners(elbv2, &lb.arn).await?;
    }

    // Every target group of the region, once; attached to the load balancers they serve.
    let mut groups = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = elbv2
            .describe_target_groups(|b| b.page_size(PAGE_SIZE).set_marker(marker.clone()))
            .await?;
        groups.extend(page.target_groups().iter().cloned());
        marker = next(page.next_marker());
        if marker.is_none() {
            break;
        }
    }
    let index: HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, lb)| (lb.arn.clone(), i))
        .collect();
    for g in &groups {
        let Some(arn) = g.target_group_arn() else {
            continue;
        };
        // A load balancer forwarding to the group from several listeners may be listed once
        // per listener (moto does): attach the group to each load balancer once.
        let served: std::collections::BTreeSet<usize> = g
            .load_balancer_arns()
            .iter()
            .filter_map(|a| index.get(a).copied())
            .collect();
        if served.is_empty() {
            continue;
        }
        let health = elbv2
            .describe_target_health(|b| b.target_group_arn(arn))
            .await?;
        let group = TargetGroup {
            arn: arn.to_owned(),
            name: g.target_group_name().unwrap_or_default().to_owned(),
            protocol: protocol_name(g.protocol()),
            port: g.port(),
            target_type: g
                .target_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_else(|| "instance".to_owned()),
            health_check_protocol: protocol_name(g.health_check_protocol()),
            health_check_path: g.health_check_path().map(str::to_owned),
            health_check_port: g.health_check_port().map(str::to_owned),
            targets: health
                .target_health_descriptions()
                .iter()
                .filter_map(|d| d.target())
                .filter_map(|t| {
                    Some(Target {
                        id: t.id()?.to_owned(),
                        port: t.port(),
                    })
                })
                .collect(),
        };
        for i in served {
            out[i].target_groups.push(group.clone());
        }
    }

    let arns: Vec<String> = out.iter().map(|lb| lb.arn.clone()).collect();
    let mut tags: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for chunk in arns.chunks(V2_TAGS_BATCH) {
        let page = elbv2
            .describe_tags(|b| b.set_resource_arns(Some(chunk.to_vec())))
            .await?;
        for d in page.tag_descriptions() {
            let Some(arn) = d.resource_arn() else {
                continue;
            };
            tags.insert(
                arn.to_owned(),
                d.tags()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.key()?.to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        ))
                    })
                    .collect(),
            );
        }
    }
    for lb in &mut out {
        lb.tags = tags.remove(&lb.arn).unwrap_or_default();
    }
    Ok(out)
}

/// The listeners of one v2 load balancer; TLS listeners with every certificate (default and
/// SNI, from `DescribeListenerCertificates`).
async fn listeners(elbv2: &PrimaryElbv2, lb_arn: &str) -> Result<Vec<Listener>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = elbv2
            .describe_listeners(|b| {
                b.load_balancer_arn(lb_arn)
                    .page_size(PAGE_SIZE)
                    .set_marker(marker.clone())
            })
            .await?;
        for l in page.listeners() {
            let Some(arn) = l.listener_arn() else {
                continue;
            };
            let mut certificate_arns: Vec<String> = l
                .certificates()
                .iter()
                .filter_map(|c| c.certificate_arn().map(str::to_owned))
                .collect();
            if matches!(l.protocol(), Some(ProtocolEnum::Https | ProtocolEnum::Tls)) {
                let mut cmarker: Option<String> = None;
                loop {
                    let certs = elbv2
                        .describe_listener_certificates(|b| {
                            b.listener_arn(arn)
                                .page_size(PAGE_SIZE)
                                .set_marker(cmarker.clone())
                        })
                        .await?;
                    certificate_arns.extend(
                        certs
                            .certificates()
                            .iter()
                            .filter_map(|c| c.certificate_arn().map(str::to_owned)),
                    );
                    cmarker = next(certs.next_marker());
                    if cmarker.is_none() {
                        break;
                    }
                }
            }
            certificate_arns.sort();
            certificate_arns.dedup();
            let mut default_target_group_arns = Vec::new();
            let mut default_action_types = Vec::new();
            for action in l.default_actions() {
                match action.r#type() {
                    Some(ActionTypeEnum::Forward) => {
                        default_target_group_arns
                            .extend(action.target_group_arn().map(str::to_owned));
                        if let Some(forward) = action.forward_config() {
                            default_target_group_arns.extend(
                                forward
                                    .target_groups()
                                    .iter()
                                    .filter_map(|t| t.target_group_arn().map(str::to_owned)),
                            );
                        }
                    }
                    Some(other) => default_action_types.push(other.as_str().to_owned()),
                    None => {}
                }
            }
            default_target_group_arns.sort();
            default_target_group_arns.dedup();
            out.push(Listener {
                arn: arn.to_owned(),
                port: l.port().unwrap_or(0),
                protocol: protocol_name(l.protocol()).unwrap_or_default(),
                ssl_policy: l.ssl_policy().map(str::to_owned),
                certificate_arns,
                default_target_group_arns,
                default_action_types,
            });
        }
        marker = next(page.next_marker());
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Whether `arn` is an ACM certificate (`arn:<partition>:acm:…`).
fn is_acm(arn: &str) -> bool {
    arn.split(':').nth(2) == Some("acm")
}

/// The listener certificates: ACM ones described (cached by ARN), others with no domain.
async fn certificates(p: &PrimaryHandles, arns: &[String]) -> Result<Vec<Certificate>, AwsError> {
    let mut out = Vec::with_capacity(arns.len());
    for arn in arns {
        if !is_acm(arn) {
            out.push(Certificate {
                arn: arn.clone(),
                ..Certificate::default()
            });
            continue;
        }
        let cached = p.cache().certificates.get(arn).cloned();
        if let Some(c) = cached {
            out.push(c);
            continue;
        }
        let described = p
            .acm
            .describe_certificate(|b| b.certificate_arn(arn))
            .await?;
        let detail = described.certificate();
        let mut sans: Vec<String> = detail
            .map(|d| d.subject_alternative_names().to_vec())
            .unwrap_or_default();
        sans.sort();
        sans.dedup();
        let c = Certificate {
            arn: arn.clone(),
            domain_name: detail
                .and_then(|d| d.domain_name())
                .unwrap_or_default()
                .to_owned(),
            subject_alternative_names: sans,
        };
        p.cache().certificates.insert(arn.clone(), c.clone());
        out.push(c);
    }
    Ok(out)
}

/// Hosted zones with their records (and private zones' VPCs).
async fn hosted_zones(r53: &PrimaryRoute53) -> Result<Vec<HostedZone>, AwsError> {
    let mut zones = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = r53
            .list_hosted_zones(|b| b.max_items(ZONES_PAGE).set_marker(marker.clone()))
            .await?;
        for z in page.hosted_zones() {
            zones.push(HostedZone {
                id: z.id().trim_start_matches("/hostedzone/").to_owned(),
                name: z.name().to_owned(),
                private: z.config().is_some_and(|c| c.private_zone()),
                vpcs: Vec::new(),
                records: Vec::new(),
            });
        }
        marker = if page.is_truncated() {
            next(page.next_marker())
        } else {
            None
        };
        if marker.is_none() {
            break;
        }
    }
    for zone in &mut zones {
        if zone.private {
            let got = r53.get_hosted_zone(|b| b.id(&zone.id)).await?;
            zone.vpcs = got
                .vpcs()
                .iter()
                .filter_map(|v| Some((v.vpc_region()?.as_str().to_owned(), v.vpc_id()?.to_owned())))
                .collect();
        }
        zone.records = records(r53, &zone.id, &zone.name).await?;
    }
    Ok(zones)
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

async fn records(
    r53: &PrimaryRoute53,
    zone_id: &str,
    zone_name: &str,
) -> Result<Vec<Record>, AwsError> {
    use aws_sdk_route53::types::RrType;
    let mut out = Vec::new();
    let mut start: Option<(String, Option<RrType>, Option<String>)> = None;
    loop {
        let page = r53
            .list_resource_record_sets(|b| {
                let b = b.hosted_zone_id(zone_id).max_items(RECORDS_PAGE);
                match &start {
                    Some((name, rr_type, identifier)) => b
                        .start_record_name(name)
                        .set_start_record_type(rr_type.clone())
                        .set_start_record_identifier(identifier.clone()),
                    None => b,
                }
            })
            .await?;
        for rr in page.resource_record_sets() {
            let record_type = rr.r#type().as_str().to_owned();
            if matches!(rr.r#type(), RrType::Soa | RrType::Ns) && same_name(rr.name(), zone_name) {
                continue;
            }
            let alias = rr.alias_target().map(|a| AliasTarget {
                dns_name: a.dns_name().to_owned(),
                hosted_zone_id: a.hosted_zone_id().to_owned(),
                evaluate_target_health: a.evaluate_target_health(),
            });
            out.push(Record {
                name: rr.name().to_owned(),
                record_type,
                ttl: if alias.is_some() { None } else { rr.ttl() },
                values: rr
                    .resource_records()
                    .iter()
                    .map(|v| v.value().to_owned())
                    .collect(),
                alias,
                set_identifier: rr.set_identifier().map(str::to_owned),
                weight: rr.weight(),
                failover: rr.failover().map(|f| f.as_str().to_owned()),
                health_check_id: rr.health_check_id().map(str::to_owned),
            });
        }
        start = match (page.is_truncated(), page.next_record_name()) {
            (true, Some(name)) => Some((
                name.to_owned(),
                page.next_record_type().cloned(),
                page.next_record_identifier().map(str::to_owned),
            )),
            _ => None,
        };
        if start.is_none() {
            break;
        }
    }
    Ok(out)
}

/// RDS DB instances with tier and cluster from their `TagList`.
async fn db_instances(
    rds: &PrimaryRds,
    opts: &CaptureOptions,
) -> Result<Vec<DbInstance>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = rds
            .describe_db_instances(|b| b.max_records(DB_PAGE).set_marker(marker.clone()))
            .await?;
        for db in page.db_instances() {
            let Some(id) = db.db_instance_identifier() else {
                continue;
            };
            let tags: BTreeMap<String, String> = db
                .tag_list()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect();
            let group = db.db_subnet_group();
            out.push(DbInstance {
                id: id.to_owned(),
                arn: db.db_instance_arn().unwrap_or_default().to_owned(),
                class: db.db_instance_class().unwrap_or_default().to_owned(),
                engine: db.engine().unwrap_or_default().to_owned(),
                engine_version: db.engine_version().map(str::to_owned),
                tier: opts.tier(tags.get(&opts.tier_tag).map(String::as_str)),
                availability_zone: db.availability_zone().map(str::to_owned),
                multi_az: db.multi_az().unwrap_or(false),
                storage_gib: db
                    .allocated_storage()
                    .and_then(|s| u32::try_from(s).ok())
                    .unwrap_or(0),
                storage_type: db.storage_type().map(str::to_owned),
                subnet_group: group
                    .and_then(|g| g.db_subnet_group_name())
                    .map(str::to_owned),
                subnet_ids: group
                    .map(|g| {
                        let mut ids: Vec<String> = g
                            .subnets()
                            .iter()
                            .filter_map(|s| s.subnet_identifier().map(str::to_owned))
                            .collect();
                        ids.sort();
                        ids
                    })
                    .unwrap_or_default(),
                vpc_security_group_ids: {
                    let mut ids: Vec<String> = db
                        .vpc_security_groups()
                        .iter()
                        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                        .collect();
                    ids.sort();
                    ids
                },
                parameter_groups: db
                    .db_parameter_groups()
                    .iter()
                    .filter_map(|g| g.db_parameter_group_name().map(str::to_owned))
                    .collect(),
                endpoint_address: db.endpoint().and_then(|e| e.address()).map(str::to_owned),
                endpoint_port: db.endpoint().and_then(|e| e.port()),
                cluster_id: db.db_cluster_identifier().map(str::to_owned),
                cluster: tag_of(&tags, &opts.cluster_tag).map(str::to_owned),
                tags,
            });
        }
        marker = next(page.marker());
        if marker.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Aurora clusters with tier and cluster from their `TagList`, and their subnet groups'
/// subnets (see the module doc).
async fn db_clusters(
    rds: &PrimaryRds,
    opts: &CaptureOptions,
    instances: &[DbInstance],
) -> Result<Vec<DbCluster>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = rds
            .describe_db_clusters(|b| b.max_records(DB_PAGE).set_marker(marker.clone()))
            .await?;
        for c in page.db_clusters() {
            let Some(id) = c.db_cluster_identifier() else {
                continue;
            };
            let tags: BTreeMap<String, String> = c
                .tag_list()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect();
            let mut vpc_security_group_ids: Vec<String> = c
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                .collect();
            vpc_security_group_ids.sort();
            let mut members: Vec<DbClusterMember> = c
                .db_cluster_members()
                .iter()
                .filter_map(|m| {
                    Some(DbClusterMember {
                        db_instance_id: m.db_instance_identifier()?.to_owned(),
                        writer: m.is_cluster_writer().unwrap_or(false),
                    })
                })
                .collect();
            members.sort_by(|a, b| a.db_instance_id.cmp(&b.db_instance_id));
            out.push(DbCluster {
                id: id.to_owned(),
                arn: c.db_cluster_arn().unwrap_or_default().to_owned(),
                engine: c.engine().unwrap_or_default().to_owned(),
                engine_version: c.engine_version().map(str::to_owned),
                tier: opts.tier(tags.get(&opts.tier_tag).map(String::as_str)),
                port: c.port(),
                subnet_group: c
                    .db_subnet_group()
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned),
                subnet_ids: Vec::new(),
                vpc_security_group_ids,
                endpoint: c.endpoint().map(str::to_owned),
                reader_endpoint: c.reader_endpoint().map(str::to_owned),
                members,
                cluster: tag_of(&tags, &opts.cluster_tag).map(str::to_owned),
                tags,
            });
        }
        marker = next(page.marker());
        if marker.is_none() {
            break;
        }
    }

    // Subnet group → subnets, from the DB instances first.
    let mut groups: BTreeMap<String, Vec<String>> = instances
        .iter()
        .filter(|d| !d.subnet_ids.is_empty())
        .filter_map(|d| Some((d.subnet_group.clone()?, d.subnet_ids.clone())))
        .collect();
    let unknown = out
        .iter()
        .filter_map(|c| c.subnet_group.as_ref())
        .any(|g| !groups.contains_key(g));
    if unknown {
        let mut marker: Option<String> = None;
        loop {
            let page = rds
                .describe_db_subnet_groups(|b| b.max_records(DB_PAGE).set_marker(marker.clone()))
                .await?;
            for g in page.db_subnet_groups() {
                let Some(name) = g.db_subnet_group_name() else {
                    continue;
                };
                let mut ids: Vec<String> = g
                    .subnets()
                    .iter()
                    .filter_map(|s| s.subnet_identifier().map(str::to_owned))
                    .collect();
                ids.sort();
                groups.entry(name.to_owned()).or_insert(ids);
            }
            marker = next(page.marker());
            if marker.is_none() {
                break;
            }
        }
    }
    for c in &mut out {
        if let Some(ids) = c.subnet_group.as_ref().and_then(|g| groups.get(g)) {
            c.subnet_ids.clone_from(ids);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn roles_follow_the_ami_copier_rule() {
        assert_eq!(
            launch_role(&tags(&[(ROLE_TAG, " db "), ("Name", "web-01")]), "ami-1"),
            "db"
        );
        assert_eq!(launch_role(&tags(&[("Name", "web-03")]), "ami-1"), "web");
        assert_eq!(
            launch_role(&tags(&[("Name", "web-03-12")]), "ami-1"),
            "web-03"
        );
        assert_eq!(launch_role(&tags(&[("Name", "web-a")]), "ami-1"), "web-a");
        assert_eq!(launch_role(&tags(&[("Name", "-7")]), "ami-1"), "-7");
        assert_eq!(launch_role(&tags(&[("Name", "  ")]), "ami-1"), "ami-1");
        assert_eq!(launch_role(&tags(&[]), "ami-1"), "ami-1");
    }

    #[test]
    fn tiers_are_one_to_nine_else_the_default() {
        let opts = CaptureOptions {
            primary_region: String::new(),
            dr_region: String::new(),
            tier_tag: "dr:tier".into(),
            default_tier: 3,
            cluster_tag: "dr:cluster".into(),
            load_balancers: true,
            route53: true,
            rds: true,
        };
        assert_eq!(opts.tier(Some("1")), 1);
        assert_eq!(opts.tier(Some(" 9 ")), 9);
        assert_eq!(opts.tier(Some("0")), 3);
        assert_eq!(opts.tier(Some("10")), 3);
        assert_eq!(opts.tier(Some("gold")), 3);
        assert_eq!(opts.tier(None), 3);
    }

    fn device(name: &str) -> BlockDevice {
        BlockDevice {
            device_name: name.into(),
            ..BlockDevice::default()
        }
    }

    #[test]
    fn the_root_device_is_found_exactly_then_under_xen_naming() {
        let mut d = vec![device("/dev/sdf"), device("/dev/sda1")];
        mark_root(&mut d, Some("/dev/sda1"));
        assert_eq!(d.iter().map(|d| d.root).collect::<Vec<_>>(), [false, true]);

        let mut d = vec![device("/dev/sdf"), device("/dev/sda1")];
        mark_root(&mut d, Some("/dev/xvda"));
        assert_eq!(d.iter().map(|d| d.root).collect::<Vec<_>>(), [false, true]);

        let mut d = vec![device("/dev/sdf")];
        mark_root(&mut d, Some("/dev/xvda"));
        assert!(!d[0].root);
        mark_root(&mut d, None);
        assert!(!d[0].root);
    }

    #[test]
    fn acm_arns_are_told_from_iam_ones() {
        assert!(is_acm("arn:aws:acm:us-east-1:123456789012:certificate/abc"));
        assert!(!is_acm(
            "arn:aws:iam::123456789012:server-certificate/legacy"
        ));
        assert!(!is_acm("not-an-arn"));
    }

    #[test]
    fn zone_apex_names_compare_without_the_trailing_dot() {
        assert!(same_name("Example.com.", "example.com"));
        assert!(!same_name("www.example.com.", "example.com."));
    }
}
