//! Launching fleets (primary region) and the always-on services (DR region).
//!
//! A fleet is launched in contiguous blocks, one `RunInstances` (`MinCount = MaxCount`) per
//! subnet, with its root and data volumes as block-device mappings and the shared tags as tag
//! specifications; a `DescribeInstances` by id then reads back private IPs and volume ids (a
//! launch answer on AWS may not list volumes yet), one `CreateTags` per instance names it and
//! its volumes `<fleet>-<nn>`, and one `CreateSnapshot` per data volume snapshots it. Tagging
//! and snapshots run [`SEED_CONCURRENCY`] at a time.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, EbsBlockDevice, InstanceType, ResourceType, Tag,
    TagSpecification, VolumeType,
};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::{
    ALWAYS_ON_TAG, AlwaysOnSpec, CLUSTER_TAG, FleetSpec, ROLE_TAG, ROOT_DEVICE, SeededDataVolume,
    SeededInstance,
};
use crate::error::LabError;
use crate::seed::{EstateSpec, SEED_CONCURRENCY, SeededEstate, TIER_TAG, call, missing};

/// Instance ids per `DescribeInstances` when reading launched instances back.
const DESCRIBE_CHUNK: usize = 200;
/// The AMI the always-on services are launched from, registered in the DR region.
pub(super) const ALWAYS_ON_IMAGE: &str = "pilot-light-base";

/// `count` instances over `subnets` in contiguous blocks: the first `count % n` subnets get
/// one more. Subnets that would get none are left out.
pub(super) fn spread(count: u32, subnets: &[String]) -> Vec<(&str, u32)> {
    let n = u32::try_from(subnets.len()).unwrap_or(u32::MAX);
    if n == 0 {
        return Vec::new();
    }
    subnets
        .iter()
        .zip(0u32..)
        .map(|(s, i)| (s.as_str(), count / n + u32::from(i < count % n)))
        .filter(|(_, k)| *k > 0)
        .collect()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The tags every instance, volume and snapshot of `fleet` carries (`Name` aside).
fn fleet_tags(fleet: &FleetSpec) -> Vec<Tag> {
    let mut tags = vec![
        tag(TIER_TAG, &fleet.tier.to_string()),
        tag(CLUSTER_TAG, &fleet.cluster),
        tag(ROLE_TAG, fleet.role()),
    ];
    tags.extend(fleet.tags.iter().map(|(k, v)| tag(k, v)));
    tags
}

fn tag_spec(kind: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

fn gib(size: u32) -> i32 {
    i32::try_from(size).unwrap_or(i32::MAX)
}

fn count_i32(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// Launches every fleet of `spec`; `estate` already holds the network and the AMIs.
pub(super) async fn seed_fleets(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    spec: &EstateSpec,
    estate: &SeededEstate,
) -> Result<BTreeMap<String, Vec<SeededInstance>>, LabError> {
    let mut out = BTreeMap::new();
    for fleet in &spec.fleets {
        let root_gib = spec
            .images
            .iter()
            .find(|i| i.name == fleet.image)
            .map_or(8, |i| i.root_gib);
        let instances = seed_fleet(ec2, region, fleet, root_gib, estate).await?;
        out.insert(fleet.name.clone(), instances);
    }
    Ok(out)
}

async fn seed_fleet(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    fleet: &FleetSpec,
    root_gib: u32,
    estate: &SeededEstate,
) -> Result<Vec<SeededInstance>, LabError> {
    let name = &fleet.name;
    let image_id = estate
        .image_id(&fleet.image)
        .ok_or_else(|| missing("RegisterImage", &fleet.image, "ImageId"))?
        .to_owned();
    let groups = fleet
        .security_groups
        .iter()
        .map(|g| {
            estate
                .security_group_id(&fleet.vpc, g)
                .map(str::to_owned)
                .ok_or_else(|| missing("CreateSecurityGroup", g, "GroupId"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut mappings = vec![
        BlockDeviceMapping::builder()
            .device_name(ROOT_DEVICE)
            .ebs(
                EbsBlockDevice::builder()
                    .volume_size(gib(root_gib))
                    .volume_type(VolumeType::Gp3)
                    .delete_on_termination(true)
                    .build(),
            )
            .build(),
    ];
    for v in &fleet.data_volumes {
        mappings.push(
            BlockDeviceMapping::builder()
                .device_name(&v.device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(gib(v.size_gib))
                        .volume_type(VolumeType::from(v.volume_type.as_str()))
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        );
    }
    let tags = fleet_tags(fleet);
    let mut launched: Vec<(String, String)> = Vec::new();
    for (subnet, n) in spread(fleet.count, &fleet.subnets) {
        let subnet_id = estate
            .subnet_id(&fleet.vpc, subnet)
            .ok_or_else(|| missing("CreateSubnet", subnet, "SubnetId"))?
            .to_owned();
        let out = call("RunInstances", name, region, || {
            ec2.run_instances()
                .image_id(&image_id)
                .instance_type(InstanceType::from(fleet.instance_type.as_str()))
                .min_count(count_i32(n))
                .max_count(count_i32(n))
                .subnet_id(&subnet_id)
                .set_security_group_ids((!groups.is_empty()).then(|| groups.clone()))
                .set_block_device_mappings(Some(mappings.clone()))
                .tag_specifications(tag_spec(ResourceType::Instance, tags.clone()))
                .tag_specifications(tag_spec(ResourceType::Volume, tags.clone()))
                .send()
        })
        .await?;
        let ids: Vec<String> = out
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if ids.len() != usize::try_from(n).unwrap_or(usize::MAX) {
            return Err(missing("RunInstances", name, "InstanceId"));
        }
        launched.extend(ids.into_iter().map(|id| (id, subnet_id.clone())));
    }

    let ids: Vec<String> = launched.iter().map(|(id, _)| id.clone()).collect();
    let described = describe(ec2, region, &ids).await?;
    let mut instances = Vec::with_capacity(launched.len());
    for ((id, subnet_id), index) in launched.into_iter().zip(1u32..) {
        let (private_ip, devices) = described
            .get(&id)
            .cloned()
            .ok_or_else(|| missing("DescribeInstances", &id, "Instance"))?;
        let mut root_volume = None;
        let mut data_volumes = Vec::new();
        for (device, volume) in devices {
            if device == ROOT_DEVICE {
                root_volume = Some(volume);
            } else {
                data_volumes.push(SeededDataVolume {
                    device,
                    id: volume,
                    snapshot: None,
                });
            }
        }
        data_volumes.sort_by(|a, b| a.device.cmp(&b.device));
        instances.push(SeededInstance {
            id,
            name: fleet.instance_name(index),
            private_ip,
            subnet_id,
            root_volume,
            data_volumes,
        });
    }

    // Name every instance and its volumes.
    stream::iter(&instances)
        .map(|inst| async move {
            let mut resources = vec![inst.id.clone()];
            resources.extend(inst.root_volume.iter().cloned());
            resources.extend(inst.data_volumes.iter().map(|v| v.id.clone()));
            call("CreateTags", &inst.name, region, || {
                ec2.create_tags()
                    .set_resources(Some(resources.clone()))
                    .tags(tag("Name", &inst.name))
                    .send()
            })
            .await
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;

    if fleet.snapshot_data_volumes {
        let jobs: Vec<(usize, usize, &SeededInstance)> = instances
            .iter()
            .enumerate()
            .flat_map(|(i, inst)| (0..inst.data_volumes.len()).map(move |v| (i, v, inst)))
            .collect();
        let made: Vec<(usize, usize, String)> = stream::iter(jobs)
            .map(|(i, v, inst)| {
                let volume = &inst.data_volumes[v];
                let mut snapshot_tags = tags.clone();
                snapshot_tags.push(tag("Name", &inst.name));
                async move {
                    let out = call("CreateSnapshot", &volume.id, region, || {
                        ec2.create_snapshot()
                            .volume_id(&volume.id)
                            .description(format!(
                                "pilotlight lab snapshot {} {}",
                                inst.name, volume.device
                            ))
                            .tag_specifications(tag_spec(
                                ResourceType::Snapshot,
                                snapshot_tags.clone(),
                            ))
                            .send()
                    })
                    .await?;
                    let id = out
                        .snapshot_id()
                        .ok_or_else(|| missing("CreateSnapshot", &volume.id, "SnapshotId"))?
                        .to_owned();
                    Ok::<_, LabError>((i, v, id))
                }
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .try_collect()
            .await?;
        for (i, v, id) in made {
            if let Some(volume) = instances.get_mut(i).and_then(|x| x.data_volumes.get_mut(v)) {
                volume.snapshot = Some(id);
            }
        }
    }
    Ok(instances)
}

/// Instance id → (private IP, [(device, volume id)]).
async fn describe(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    ids: &[String],
) -> Result<BTreeMap<String, (String, Vec<(String, String)>)>, LabError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(DESCRIBE_CHUNK) {
        let first = chunk.first().map_or("", String::as_str);
        let answer = call("DescribeInstances", first, region, || {
            ec2.describe_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
        })
        .await?;
        for instance in answer.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = instance.instance_id() else {
                continue;
            };
            let ip = instance
                .private_ip_address()
                .ok_or_else(|| missing("DescribeInstances", id, "PrivateIpAddress"))?
                .to_owned();
            let devices = instance
                .block_device_mappings()
                .iter()
                .filter_map(|m| {
                    Some((
                        m.device_name()?.to_owned(),
                        m.ebs()?.volume_id()?.to_owned(),
                    ))
                })
                .collect();
            out.insert(id.to_owned(), (ip, devices));
        }
    }
    Ok(out)
}

/// Registers the always-on AMI in the DR region and launches every service from it (in the
/// DR region's default VPC); returns service → instance ids.
pub(super) async fn seed_always_on(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    services: &[AlwaysOnSpec],
) -> Result<BTreeMap<String, Vec<String>>, LabError> {
    let mut out = BTreeMap::new();
    if services.is_empty() {
        return Ok(out);
    }
    let root = BlockDeviceMapping::builder()
        .device_name(ROOT_DEVICE)
        .ebs(
            EbsBlockDevice::builder()
                .volume_size(8)
                .volume_type(VolumeType::Gp3)
                .delete_on_termination(true)
                .build(),
        )
        .build();
    let registered = call("RegisterImage", ALWAYS_ON_IMAGE, region, || {
        ec2.register_image()
            .name(ALWAYS_ON_IMAGE)
            .description("pilotlight lab: base image of the always-on DR services")
            .architecture(ArchitectureValues::X8664)
            .virtualization_type("hvm")
            .root_device_name(ROOT_DEVICE)
            .block_device_mappings(root.clone())
            .send()
    })
    .await?;
    let image_id = registered
        .image_id()
        .ok_or_else(|| missing("RegisterImage", ALWAYS_ON_IMAGE, "ImageId"))?
        .to_owned();
    call("CreateTags", &image_id, region, || {
        ec2.create_tags()
            .resources(&image_id)
            .tags(tag("Name", ALWAYS_ON_IMAGE))
            .send()
    })
    .await?;
    for s in services {
        let tags = vec![tag("Name", &s.service), tag(ALWAYS_ON_TAG, &s.service)];
        let launched = call("RunInstances", &s.service, region, || {
            ec2.run_instances()
                .image_id(&image_id)
                .instance_type(InstanceType::from(s.instance_type.as_str()))
                .min_count(count_i32(s.count))
                .max_count(count_i32(s.count))
                .tag_specifications(tag_spec(ResourceType::Instance, tags.clone()))
                .tag_specifications(tag_spec(ResourceType::Volume, tags.clone()))
                .send()
        })
        .await?;
        let ids: Vec<String> = launched
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Err(missing("RunInstances", &s.service, "InstanceId"));
        }
        out.insert(s.service.clone(), ids);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn spread_gives_contiguous_blocks_first_subnets_one_more() {
        let subnets = names(&["a", "b", "c"]);
        assert_eq!(spread(7, &subnets), vec![("a", 3), ("b", 2), ("c", 2)]);
        assert_eq!(spread(3, &subnets), vec![("a", 1), ("b", 1), ("c", 1)]);
        assert_eq!(spread(2, &subnets), vec![("a", 1), ("b", 1)]);
        assert_eq!(spread(4, &names(&["x"])), vec![("x", 4)]);
        assert!(spread(4, &[]).is_empty());
        let total: u32 = spread(3001, &subnets).iter().map(|(_, n)| n).sum();
        assert_eq!(total, 3001);
    }
}
