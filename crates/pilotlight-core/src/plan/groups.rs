//! What one tier restores: its launch groups, its data volumes, its databases and its Aurora
//! clusters, in DR terms.

use std::collections::BTreeMap;

use super::{
    ClusterMemberRestore, ClusterRestore, DataVolume, DbRestore, DrRef, LaunchGroup, LaunchSpec,
    ProblemKind, Problems, TierInput, TierPlan, VolumeMethod, VolumeSpec,
};
use crate::config::RestoreConfig;
use crate::digest::sha256_hex;
use crate::inventory::{DbCluster, DbInstance, Instance};
use crate::scope::DrState;

/// The tier's plan under `method` (its `calls` are filled in by the schedule).
pub(super) fn tier_plan(
    tier: u8,
    input: &TierInput<'_>,
    method: VolumeMethod,
    restore: &RestoreConfig,
    dr: &DrState,
    problems: &mut Problems,
) -> TierPlan {
    let mut groups: Vec<LaunchGroup> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut volumes: Vec<DataVolume> = Vec::new();
    let mut instance_types: BTreeMap<String, u64> = BTreeMap::new();
    let instances = &input.instances;
    for instance in instances {
        *instance_types
            .entry(instance.instance_type.clone())
            .or_insert(0) += 1;
        let own = data_volumes(instance, dr, problems);
        let spec = launch_spec(instance, &own, method, restore, dr, problems);
        let fixed_ip = restore.preserve_private_ips.then_some(instance.id.as_str());
        let group_id = group_id(tier, &spec, fixed_ip);
        match by_id.get(&group_id) {
            Some(&g) => groups[g].instance_ids.push(instance.id.clone()),
            None => {
                by_id.insert(group_id.clone(), groups.len());
                groups.push(LaunchGroup {
                    group_id,
                    spec,
                    instance_ids: vec![instance.id.clone()],
                    count: 0,
                    launches: Vec::new(),
                });
            }
        }
        volumes.extend(own);
    }
    let per_call = restore.max_instances_per_call.max(1);
    let mut launch_order: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (g, group) in groups.iter_mut().enumerate() {
        group.count = u32::try_from(group.instance_ids.len()).unwrap_or(u32::MAX);
        group.launches = split(group.count, per_call);
        for (pos, id) in group.instance_ids.iter().enumerate() {
            launch_order.insert(id.as_str(), (g, pos));
        }
    }
    // Volumes in the order their instances launch, so attachments follow the launches.
    let mut keyed: Vec<((usize, usize), DataVolume)> = volumes
        .into_iter()
        .map(|v| {
            let key = launch_order
                .get(v.instance_id.as_str())
                .copied()
                .unwrap_or((usize::MAX, usize::MAX));
            (key, v)
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    let data_volumes = keyed.into_iter().map(|(_, v)| v).collect();

    TierPlan {
        tier,
        instances: instances.len() as u64,
        instance_types,
        groups,
        data_volumes,
        databases: input
            .dbs
            .iter()
            .map(|db| db_restore(db, dr, problems))
            .collect(),
        clusters: input
            .clusters
            .iter()
            .map(|(cluster, members)| cluster_restore(cluster, members, dr, problems))
            .collect(),
        calls: BTreeMap::new(),
    }
}

/// `count` instances in launches of at most `per_call`, full ones first.
fn split(count: u32, per_call: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut left = count;
    while left > 0 {
        let n = left.min(per_call);
        out.push(n);
        left -= n;
    }
    out
}

/// `t<tier>-` and the first 16 hex digits of the SHA-256 of the tier, the spec and, for a
/// fixed-IP launch, the instance id.
fn group_id(tier: u8, spec: &LaunchSpec, instance: Option<&str>) -> String {
    // Plain data with no maps: serialising cannot fail.
    let canonical = serde_json::to_vec(&(tier, spec, instance)).unwrap_or_default();
    let digest = sha256_hex(&canonical);
    format!("t{tier}-{}", &digest[..16])
}

fn launch_spec(
    instance: &Instance,
    volumes: &[DataVolume],
    method: VolumeMethod,
    restore: &RestoreConfig,
    dr: &DrState,
    problems: &mut Problems,
) -> LaunchSpec {
    let image = match dr.images.get(&instance.image_id) {
        Some(copy) => DrRef::Dr(copy.dr_id.clone()),
        None => {
            problems.add(
                ProblemKind::ImageNotCopied,
                &instance.id,
                &instance.image_id,
                format!("AMI {} has no copy in the DR region", instance.image_id),
            );
            DrRef::Missing(instance.image_id.clone())
        }
    };
    let subnet = match &instance.subnet_id {
        Some(subnet) => Some(problems.mapped(
            dr,
            ProblemKind::SubnetNotMapped,
            &instance.id,
            subnet,
            "subnet",
        )),
        None => {
            problems.add(
                ProblemKind::NoSubnet,
                &instance.id,
                "",
                "the inventory has no subnet for the instance".to_owned(),
            );
            None
        }
    };
    LaunchSpec {
        image,
        instance_type: instance.instance_type.clone(),
        subnet,
        security_groups: problems.security_groups(dr, &instance.id, &instance.security_group_ids),
        key_name: instance.key_name.clone(),
        iam_instance_profile_arn: instance.iam_instance_profile_arn.clone(),
        private_ip: if restore.preserve_private_ips {
            instance.private_ip.clone()
        } else {
            None
        },
        block_devices: match method {
            VolumeMethod::BlockDeviceMapping => volumes.iter().map(|v| v.volume.clone()).collect(),
            VolumeMethod::CreateAttach => Vec::new(),
        },
    }
}

/// The instance's non-root block devices with their DR snapshots.
fn data_volumes(instance: &Instance, dr: &DrState, problems: &mut Problems) -> Vec<DataVolume> {
    instance
        .block_devices
        .iter()
        .filter(|b| !b.root)
        .map(|b| {
            let snapshot = match dr.volume_snapshots.get(&b.volume_id) {
                Some(copy) => DrRef::Dr(copy.dr_id.clone()),
                None => {
                    problems.add(
                        ProblemKind::VolumeSnapshotMissing,
                        &instance.id,
                        &b.volume_id,
                        format!(
                            "data volume {} ({}) has no snapshot in the DR region",
                            b.volume_id, b.device_name
                        ),
                    );
                    DrRef::Missing(b.volume_id.clone())
                }
            };
            DataVolume {
                instance_id: instance.id.clone(),
                volume_id: b.volume_id.clone(),
                volume: VolumeSpec {
                    device_name: b.device_name.clone(),
                    snapshot,
                    size_gib: b.size_gib,
                    volume_type: b.volume_type.clone(),
                    iops: b.iops,
                    encrypted: b.encrypted,
                    delete_on_termination: b.delete_on_termination,
                },
            }
        })
        .collect()
}

fn db_restore(db: &DbInstance, dr: &DrState, problems: &mut Problems) -> DbRestore {
    let snapshot = match dr.db_snapshots.get(&db.id) {
        Some(copy) => DrRef::Dr(copy.dr_id.clone()),
        None => {
            problems.add(
                ProblemKind::DbSnapshotMissing,
                &db.id,
                &db.id,
                format!("DB instance {} has no snapshot in the DR region", db.id),
            );
            DrRef::Missing(db.id.clone())
        }
    };
    DbRestore {
        db_instance_id: db.id.clone(),
        tier: db.tier,
        class: db.class.clone(),
        engine: db.engine.clone(),
        snapshot,
        multi_az: db.multi_az,
        subnets: db
            .subnet_ids
            .iter()
            .map(|s| problems.mapped(dr, ProblemKind::SubnetNotMapped, &db.id, s, "subnet"))
            .collect(),
        security_groups: problems.security_groups(dr, &db.id, &db.vpc_security_group_ids),
    }
}

fn cluster_restore(
    cluster: &DbCluster,
    members: &[&DbInstance],
    dr: &DrState,
    problems: &mut Problems,
) -> ClusterRestore {
    let snapshot = match dr.db_cluster_snapshots.get(&cluster.id) {
        Some(copy) => DrRef::Dr(copy.dr_id.clone()),
        None => {
            problems.add(
                ProblemKind::DbClusterSnapshotMissing,
                &cluster.id,
                &cluster.id,
                format!(
                    "Aurora cluster {} has no cluster snapshot in the DR region",
                    cluster.id
                ),
            );
            DrRef::Missing(cluster.id.clone())
        }
    };
    let writer = cluster.writer();
    let mut members: Vec<ClusterMemberRestore> = members
        .iter()
        .map(|m| ClusterMemberRestore {
            db_instance_id: m.id.clone(),
            class: m.class.clone(),
            writer: writer == Some(m.id.as_str()),
        })
        .collect();
    members.sort_by(|a, b| (!a.writer, &a.db_instance_id).cmp(&(!b.writer, &b.db_instance_id)));
    ClusterRestore {
        db_cluster_id: cluster.id.clone(),
        tier: cluster.tier,
        engine: cluster.engine.clone(),
        engine_version: cluster.engine_version.clone(),
        port: cluster.port,
        snapshot,
        subnets: cluster
            .subnet_ids
            .iter()
            .map(|s| problems.mapped(dr, ProblemKind::SubnetNotMapped, &cluster.id, s, "subnet"))
            .collect(),
        security_groups: problems.security_groups(dr, &cluster.id, &cluster.vpc_security_group_ids),
        members,
    }
}
