//! The load balancers to recreate, in DR terms, and the instances each registers.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    DrRef, LbKind, ListenerRestore, LoadBalancerRestore, ProblemKind, Problems, TargetGroupRestore,
};
use crate::inventory::LoadBalancerKind;
use crate::scope::{DrState, Selection};

/// Classic load balancers of the selection (by name), then v2 ones (by ARN).
pub(super) fn plan(
    selection: &Selection<'_>,
    dr: &DrState,
    problems: &mut Problems,
) -> Vec<LoadBalancerRestore> {
    let selected: BTreeSet<&str> = selection.instances.iter().map(|i| i.id.as_str()).collect();
    let by_ip: BTreeMap<&str, &str> = selection
        .instances
        .iter()
        .filter_map(|i| i.private_ip.as_deref().map(|ip| (ip, i.id.as_str())))
        .collect();
    let mut out = Vec::new();

    for lb in &selection.classic_load_balancers {
        let source = lb.name.as_str();
        let listeners = lb
            .listeners
            .iter()
            .map(|l| ListenerRestore {
                port: l.port,
                protocol: l.protocol.clone(),
                certificates: l
                    .certificate_arn
                    .iter()
                    .map(|arn| certificate(dr, problems, source, l.port, arn))
                    .collect(),
            })
            .collect();
        let mut instance_ids: Vec<String> = lb
            .instance_ids
            .iter()
            .filter(|id| selected.contains(id.as_str()))
            .cloned()
            .collect();
        instance_ids.sort();
        instance_ids.dedup();
        out.push(LoadBalancerRestore {
            kind: LbKind::Classic,
            name: lb.name.clone(),
            source: source.to_owned(),
            scheme: lb.scheme,
            subnets: subnets(dr, problems, source, &lb.subnet_ids),
            security_groups: problems.security_groups(dr, source, &lb.security_group_ids),
            listeners,
            health_check: lb.health_check.is_some(),
            instance_ids,
            target_groups: Vec::new(),
        });
    }

    for lb in &selection.load_balancers {
        let source = lb.arn.as_str();
        let listeners = lb
            .listeners
            .iter()
            .map(|l| ListenerRestore {
                port: l.port,
                protocol: l.protocol.clone(),
                certificates: l
                    .certificate_arns
                    .iter()
                    .map(|arn| certificate(dr, problems, source, l.port, arn))
                    .collect(),
            })
            .collect();
        let target_groups = lb
            .target_groups
            .iter()
            .map(|tg| {
                let ids: BTreeSet<String> = tg
                    .targets
                    .iter()
                    .filter_map(|t| match tg.target_type.as_str() {
                        "instance" => selected.get(t.id.as_str()).copied(),
                        "ip" => by_ip.get(t.id.as_str()).copied(),
                        _ => None,
                    })
                    .map(str::to_owned)
                    .collect();
                TargetGroupRestore {
                    arn: tg.arn.clone(),
                    name: tg.name.clone(),
                    instance_ids: ids.into_iter().collect(),
                }
            })
            .collect();
        out.push(LoadBalancerRestore {
            kind: match lb.kind {
                LoadBalancerKind::Application => LbKind::Application,
                LoadBalancerKind::Network => LbKind::Network,
                LoadBalancerKind::Gateway => LbKind::Gateway,
            },
            name: lb.name.clone(),
            source: source.to_owned(),
            scheme: lb.scheme,
            subnets: subnets(dr, problems, source, &lb.subnet_ids),
            security_groups: problems.security_groups(dr, source, &lb.security_group_ids),
            listeners,
            health_check: false,
            instance_ids: Vec::new(),
            target_groups,
        });
    }
    out
}

fn subnets(dr: &DrState, problems: &mut Problems, lb: &str, ids: &[String]) -> Vec<DrRef> {
    ids.iter()
        .map(|s| problems.mapped(dr, ProblemKind::SubnetNotMapped, lb, s, "subnet"))
        .collect()
}

fn certificate(dr: &DrState, problems: &mut Problems, lb: &str, port: i32, arn: &str) -> DrRef {
    match dr.certificates.get(arn) {
        Some(dr_arn) => DrRef::Dr(dr_arn.clone()),
        None => {
            problems.add(
                ProblemKind::CertificateNotMapped,
                lb,
                arn,
                format!("the certificate of listener {port} has no counterpart in the DR region"),
            );
            DrRef::Missing(arn.to_owned())
        }
    }
}
