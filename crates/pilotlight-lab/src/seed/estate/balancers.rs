//! Certificates (both regions) and load balancers (primary region).
//!
//! A certificate is made once per spec entry and the same PEM imported into the primary and —
//! for a DR counterpart — the DR region. Classic load balancers are created with their
//! listeners, then get their health check (`ConfigureHealthCheck`) and instances; their alias
//! zone is read back with `DescribeLoadBalancers` and, where the answer has none (moto), taken
//! from AWS's table ([`super::classic_elb_hosted_zone`]). A v2 load balancer gets one target
//! group named like it, its fleets' instances as targets, and one forwarding listener per
//! listener spec.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
    ProtocolEnum, TargetDescription, TargetTypeEnum,
};

use super::{
    CertificateSpec, ClassicLoadBalancerSpec, LoadBalancerKind, LoadBalancerSpec, Protocol, Scheme,
    SeededCertificate, SeededLoadBalancer, V2LoadBalancerSpec, built, cert,
    classic_elb_hosted_zone,
};
use crate::clients::AwsClients;
use crate::error::LabError;
use crate::seed::{EstateSpec, SeededEstate, call, missing};

/// Makes and imports every certificate; returns name → ARNs.
pub(super) async fn seed_certificates(
    primary: &AwsClients,
    dr: &AwsClients,
    certificates: &[CertificateSpec],
) -> Result<BTreeMap<String, SeededCertificate>, LabError> {
    let mut out = BTreeMap::new();
    for c in certificates {
        let made = cert::self_signed(&c.domain, &c.subject_alternative_names).map_err(|e| {
            LabError::Io {
                action: format!("making a certificate for {}", c.domain),
                source: std::io::Error::other(e),
            }
        })?;
        let primary_arn = import(primary, c, &made).await?;
        let dr_arn = if c.dr_counterpart {
            Some(import(dr, c, &made).await?)
        } else {
            None
        };
        out.insert(
            c.name.clone(),
            SeededCertificate {
                domain: c.domain.clone(),
                primary_arn,
                dr_arn,
            },
        );
    }
    Ok(out)
}

async fn import(
    clients: &AwsClients,
    c: &CertificateSpec,
    made: &cert::SelfSigned,
) -> Result<String, LabError> {
    let region = &clients.region;
    let name_tag = built(
        "ImportCertificate",
        &c.name,
        region,
        aws_sdk_acm::types::Tag::builder()
            .key("Name")
            .value(&c.name)
            .build(),
    )?;
    let out = call("ImportCertificate", &c.name, region, || {
        clients
            .acm
            .import_certificate()
            .certificate(aws_sdk_acm::primitives::Blob::new(
                made.certificate_pem.as_bytes(),
            ))
            .private_key(aws_sdk_acm::primitives::Blob::new(
                made.private_key_pem.as_bytes(),
            ))
            .tags(name_tag.clone())
            .send()
    })
    .await?;
    out.certificate_arn()
        .map(str::to_owned)
        .ok_or_else(|| missing("ImportCertificate", &c.name, "CertificateArn"))
}

/// The registered instances of `lb`: every instance of its fleets, in fleet order.
fn instances_of(lb: &LoadBalancerSpec, estate: &SeededEstate) -> Vec<String> {
    lb.fleets()
        .iter()
        .flat_map(|f| estate.fleets.get(f).into_iter().flatten())
        .map(|i| i.id.clone())
        .collect()
}

/// The primary ARN of certificate `name` (none without a name).
fn certificate_arn(name: Option<&str>, estate: &SeededEstate) -> Result<Option<String>, LabError> {
    match name {
        None => Ok(None),
        Some(n) => estate
            .certificates
            .get(n)
            .map(|c| Some(c.primary_arn.clone()))
            .ok_or_else(|| missing("ImportCertificate", n, "CertificateArn")),
    }
}

fn ids(
    names: &[String],
    vpc: &str,
    lookup: impl Fn(&str, &str) -> Option<String>,
    operation: &'static str,
    field: &'static str,
) -> Result<Vec<String>, LabError> {
    names
        .iter()
        .map(|n| lookup(vpc, n).ok_or_else(|| missing(operation, n, field)))
        .collect()
}

/// Creates every load balancer of `spec` in the primary region.
pub(super) async fn seed_load_balancers(
    primary: &AwsClients,
    spec: &EstateSpec,
    estate: &SeededEstate,
) -> Result<BTreeMap<String, SeededLoadBalancer>, LabError> {
    let mut out = BTreeMap::new();
    for lb in &spec.load_balancers {
        let subnets = ids(
            lb.subnets(),
            lb.vpc(),
            |v, s| estate.subnet_id(v, s).map(str::to_owned),
            "CreateSubnet",
            "SubnetId",
        )?;
        let groups = ids(
            lb.security_groups(),
            lb.vpc(),
            |v, g| estate.security_group_id(v, g).map(str::to_owned),
            "CreateSecurityGroup",
            "GroupId",
        )?;
        let instances = instances_of(lb, estate);
        let seeded = match lb {
            LoadBalancerSpec::Classic(c) => {
                classic(primary, c, &subnets, &groups, instances, estate).await?
            }
            LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => {
                v2(primary, lb.kind(), v, &subnets, &groups, instances, estate).await?
            }
        };
        out.insert(lb.name().to_owned(), seeded);
    }
    Ok(out)
}

async fn classic(
    primary: &AwsClients,
    lb: &ClassicLoadBalancerSpec,
    subnets: &[String],
    groups: &[String],
    instances: Vec<String>,
    estate: &SeededEstate,
) -> Result<SeededLoadBalancer, LabError> {
    use aws_sdk_elasticloadbalancing::types::{HealthCheck, Instance, Listener, Tag};
    let region = &primary.region;
    let name = &lb.name;
    let elb = &primary.elb;
    let mut listeners = Vec::new();
    for l in &lb.listeners {
        let certificate = certificate_arn(l.certificate.as_deref(), estate)?;
        let instance_protocol = match l.protocol {
            Protocol::Tcp | Protocol::Ssl => "TCP",
            _ => "HTTP",
        };
        listeners.push(built(
            "CreateLoadBalancer",
            name,
            region,
            Listener::builder()
                .protocol(l.protocol.as_str())
                .load_balancer_port(i32::from(l.port))
                .instance_protocol(instance_protocol)
                .instance_port(i32::from(l.instance_port))
                .set_ssl_certificate_id(certificate)
                .build(),
        )?);
    }
    let name_tag = built(
        "CreateLoadBalancer",
        name,
        region,
        Tag::builder().key("Name").value(name).build(),
    )?;
    let created = call("CreateLoadBalancer", name, region, || {
        elb.create_load_balancer()
            .load_balancer_name(name)
            .set_listeners(Some(listeners.clone()))
            .set_subnets(Some(subnets.to_vec()))
            .set_security_groups((!groups.is_empty()).then(|| groups.to_vec()))
            // Internet-facing is the default; AWS documents only `internal` as a value.
            .set_scheme((lb.scheme == Scheme::Internal).then(|| "internal".to_owned()))
            .tags(name_tag.clone())
            .send()
    })
    .await?;
    let dns_name = created
        .dns_name()
        .ok_or_else(|| missing("CreateLoadBalancer", name, "DNSName"))?
        .to_owned();
    let first_port = lb.listeners.first().map_or(80, |l| l.instance_port);
    let (target, interval, timeout, healthy, unhealthy) = match &lb.health_check {
        Some(h) => (
            h.target.clone(),
            h.interval_secs,
            h.timeout_secs,
            h.healthy_threshold,
            h.unhealthy_threshold,
        ),
        None => (format!("TCP:{first_port}"), 30, 5, 10, 2),
    };
    let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let check = built(
        "ConfigureHealthCheck",
        name,
        region,
        HealthCheck::builder()
            .target(target)
            .interval(as_i32(interval))
            .timeout(as_i32(timeout))
            .healthy_threshold(as_i32(healthy))
            .unhealthy_threshold(as_i32(unhealthy))
            .build(),
    )?;
    call("ConfigureHealthCheck", name, region, || {
        elb.configure_health_check()
            .load_balancer_name(name)
            .health_check(check.clone())
            .send()
    })
    .await?;
    if !instances.is_empty() {
        let members: Vec<Instance> = instances
            .iter()
            .map(|id| Instance::builder().instance_id(id).build())
            .collect();
        call("RegisterInstancesWithLoadBalancer", name, region, || {
            elb.register_instances_with_load_balancer()
                .load_balancer_name(name)
                .set_instances(Some(members.clone()))
                .send()
        })
        .await?;
    }
    let described = call("DescribeLoadBalancers", name, region, || {
        elb.describe_load_balancers()
            .load_balancer_names(name)
            .send()
    })
    .await?;
    let zone = described
        .load_balancer_descriptions()
        .first()
        .and_then(|d| d.canonical_hosted_zone_name_id())
        .map(str::to_owned)
        .or_else(|| classic_elb_hosted_zone(region).map(str::to_owned))
        .ok_or_else(|| missing("DescribeLoadBalancers", name, "CanonicalHostedZoneNameID"))?;
    Ok(SeededLoadBalancer {
        kind: LoadBalancerKind::Classic,
        arn: None,
        dns_name,
        canonical_hosted_zone_id: zone,
        target_group_arn: None,
        instances,
    })
}

async fn v2(
    primary: &AwsClients,
    kind: LoadBalancerKind,
    lb: &V2LoadBalancerSpec,
    subnets: &[String],
    groups: &[String],
    instances: Vec<String>,
    estate: &SeededEstate,
) -> Result<SeededLoadBalancer, LabError> {
    use aws_sdk_elasticloadbalancingv2::types::Tag;
    let region = &primary.region;
    let name = &lb.name;
    let elbv2 = &primary.elbv2;
    let lb_type = if kind == LoadBalancerKind::Network {
        LoadBalancerTypeEnum::Network
    } else {
        LoadBalancerTypeEnum::Application
    };
    let scheme = match lb.scheme {
        Scheme::Internal => LoadBalancerSchemeEnum::Internal,
        Scheme::InternetFacing => LoadBalancerSchemeEnum::InternetFacing,
    };
    let name_tag = Tag::builder().key("Name").value(name).build();
    let created = call("CreateLoadBalancer", name, region, || {
        elbv2
            .create_load_balancer()
            .name(name)
            .r#type(lb_type.clone())
            .scheme(scheme.clone())
            .set_subnets(Some(subnets.to_vec()))
            .set_security_groups((!groups.is_empty()).then(|| groups.to_vec()))
            .tags(name_tag.clone())
            .send()
    })
    .await?;
    let described = created
        .load_balancers()
        .first()
        .ok_or_else(|| missing("CreateLoadBalancer", name, "LoadBalancers"))?;
    let arn = described
        .load_balancer_arn()
        .ok_or_else(|| missing("CreateLoadBalancer", name, "LoadBalancerArn"))?
        .to_owned();
    let dns_name = described
        .dns_name()
        .ok_or_else(|| missing("CreateLoadBalancer", name, "DNSName"))?
        .to_owned();
    let zone = described
        .canonical_hosted_zone_id()
        .ok_or_else(|| missing("CreateLoadBalancer", name, "CanonicalHostedZoneId"))?
        .to_owned();

    let tg = &lb.target_group;
    let http = matches!(tg.protocol, Protocol::Http | Protocol::Https);
    let created = call("CreateTargetGroup", name, region, || {
        elbv2
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::from(tg.protocol.as_str()))
            .port(i32::from(tg.port))
            .vpc_id(estate.vpc_id(&lb.vpc).unwrap_or_default())
            .target_type(TargetTypeEnum::Instance)
            .set_health_check_path(http.then(|| {
                tg.health_check_path
                    .clone()
                    .unwrap_or_else(|| "/".to_owned())
            }))
            .tags(name_tag.clone())
            .send()
    })
    .await?;
    let target_group_arn = created
        .target_groups()
        .first()
        .and_then(|t| t.target_group_arn())
        .ok_or_else(|| missing("CreateTargetGroup", name, "TargetGroupArn"))?
        .to_owned();
    if !instances.is_empty() {
        let targets: Vec<TargetDescription> = instances
            .iter()
            .map(|id| {
                TargetDescription::builder()
                    .id(id)
                    .port(i32::from(tg.port))
                    .build()
            })
            .collect();
        call("RegisterTargets", name, region, || {
            elbv2
                .register_targets()
                .target_group_arn(&target_group_arn)
                .set_targets(Some(targets.clone()))
                .send()
        })
        .await?;
    }
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(&target_group_arn)
        .build();
    for l in &lb.listeners {
        let certificate = certificate_arn(l.certificate.as_deref(), estate)?;
        let resource = format!("{name}:{}", l.port);
        call("CreateListener", &resource, region, || {
            elbv2
                .create_listener()
                .load_balancer_arn(&arn)
                .protocol(ProtocolEnum::from(l.protocol.as_str()))
                .port(i32::from(l.port))
                .set_certificates(
                    certificate
                        .clone()
                        .map(|c| vec![Certificate::builder().certificate_arn(c).build()]),
                )
                .default_actions(forward.clone())
                .send()
        })
        .await?;
    }
    Ok(SeededLoadBalancer {
        kind,
        arn: Some(arn),
        dns_name,
        canonical_hosted_zone_id: zone,
        target_group_arn: Some(target_group_arn),
        instances,
    })
}
