//! Checks of the estate sections of a spec (fleets, certificates, load balancers, zones,
//! always-on services) against each other and against the network and data sections; every
//! problem is reported, none stops the others being found.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    CLUSTER_TAG, FleetSpec, LoadBalancerKind, LoadBalancerSpec, Protocol, ROLE_TAG, ROOT_DEVICE,
    RecordSpec, ZoneSpec, dns,
};
use crate::seed::{EstateSpec, TIER_TAG, VpcSpec};

const VOLUME_TYPES: [&str; 5] = ["gp2", "gp3", "st1", "sc1", "standard"];

/// Pushes a problem for every empty or repeated name.
fn unique<'a>(kind: &str, names: impl IntoIterator<Item = &'a str>, problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for n in names {
        if n.is_empty() {
            problems.push(format!("a {kind} has an empty name"));
        } else if !seen.insert(n) {
            problems.push(format!("{kind} {n:?} is defined twice"));
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits, hyphens and (for record names)
/// underscores, each 1–63 characters, 253 in all; `wildcard` allows a leading `*.`.
pub(super) fn valid_domain(name: &str, wildcard: bool) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let name = if wildcard {
        name.strip_prefix("*.").unwrap_or(name)
    } else {
        name
    };
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// A load balancer (and target group) name: 1–32 letters, digits and hyphens, no hyphen at
/// either end.
fn valid_lb_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `/dev/sd[f-p]` or `/dev/xvd[f-p]`.
fn valid_data_device(device: &str) -> bool {
    let letter = device
        .strip_prefix("/dev/sd")
        .or_else(|| device.strip_prefix("/dev/xvd"));
    matches!(letter, Some(l) if l.len() == 1 && ('f'..='p').contains(&l.chars().next().unwrap_or('a')))
}

fn valid_instance_type(t: &str) -> bool {
    matches!(t.split_once('.'), Some((family, size)) if !family.is_empty() && !size.is_empty())
}

/// Checks the estate sections of `spec`; pushes every problem found.
pub(crate) fn validate(spec: &EstateSpec, problems: &mut Vec<String>) {
    let vpcs: BTreeMap<&str, &VpcSpec> = spec.vpcs.iter().map(|v| (v.name.as_str(), v)).collect();
    let images: BTreeSet<&str> = spec.images.iter().map(|i| i.name.as_str()).collect();
    let fleets: BTreeMap<&str, &FleetSpec> =
        spec.fleets.iter().map(|f| (f.name.as_str(), f)).collect();
    let certificates: BTreeSet<&str> = spec.certificates.iter().map(|c| c.name.as_str()).collect();

    unique(
        "fleet",
        spec.fleets.iter().map(|f| f.name.as_str()),
        problems,
    );
    for f in &spec.fleets {
        check_fleet(f, &vpcs, &images, problems);
    }

    unique(
        "certificate",
        spec.certificates.iter().map(|c| c.name.as_str()),
        problems,
    );
    for c in &spec.certificates {
        if !valid_domain(&c.domain, true) || c.domain.len() > 64 || c.domain.contains('_') {
            problems.push(format!(
                "certificate {:?}: domain {:?} is not a domain name of at most 64 characters",
                c.name, c.domain
            ));
        }
        for san in &c.subject_alternative_names {
            if !valid_domain(san, true) || san.contains('_') {
                problems.push(format!(
                    "certificate {:?}: alternative name {san:?} is not a domain name",
                    c.name
                ));
            }
        }
    }

    unique(
        "load balancer",
        spec.load_balancers.iter().map(LoadBalancerSpec::name),
        problems,
    );
    for lb in &spec.load_balancers {
        check_load_balancer(lb, &vpcs, &fleets, &certificates, problems);
    }

    let lbs: BTreeSet<&str> = spec
        .load_balancers
        .iter()
        .map(LoadBalancerSpec::name)
        .collect();
    let dbs: BTreeSet<&str> = spec
        .db_instances
        .iter()
        .map(|d| d.name.as_str())
        .chain(spec.db_clusters.iter().map(|c| c.name.as_str()))
        .collect();
    unique(
        "zone",
        spec.zones.iter().map(|z| dns::zone_domain(&z.name)),
        problems,
    );
    for z in &spec.zones {
        check_zone(z, &vpcs, &fleets, &lbs, &dbs, problems);
    }

    unique(
        "always-on service",
        spec.always_on.iter().map(|a| a.service.as_str()),
        problems,
    );
    for a in &spec.always_on {
        if !valid_instance_type(&a.instance_type) {
            problems.push(format!(
                "always-on service {:?}: instance_type {:?} is not FAMILY.SIZE",
                a.service, a.instance_type
            ));
        }
        if a.count == 0 {
            problems.push(format!("always-on service {:?}: count is 0", a.service));
        }
    }
}

fn check_fleet(
    f: &FleetSpec,
    vpcs: &BTreeMap<&str, &VpcSpec>,
    images: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    let n = &f.name;
    if f.count == 0 {
        problems.push(format!("fleet {n:?}: count is 0"));
    }
    if !valid_instance_type(&f.instance_type) {
        problems.push(format!(
            "fleet {n:?}: instance_type {:?} is not FAMILY.SIZE",
            f.instance_type
        ));
    }
    if !(1..=9).contains(&f.tier) {
        problems.push(format!("fleet {n:?}: tier {} is not 1..9", f.tier));
    }
    if f.cluster.is_empty() {
        problems.push(format!("fleet {n:?}: cluster is empty"));
    }
    if f.role.as_deref() == Some("") {
        problems.push(format!("fleet {n:?}: role is empty"));
    }
    if !images.contains(f.image.as_str()) {
        problems.push(format!("fleet {n:?} launches unknown image {:?}", f.image));
    }
    match vpcs.get(f.vpc.as_str()) {
        None => problems.push(format!("fleet {n:?} is in unknown VPC {:?}", f.vpc)),
        Some(vpc) => {
            if f.subnets.is_empty() {
                problems.push(format!("fleet {n:?} has no subnets"));
            }
            for s in &f.subnets {
                if !vpc.subnets.iter().any(|x| &x.name == s) {
                    problems.push(format!(
                        "fleet {n:?} launches into unknown subnet {s:?} of VPC {:?}",
                        f.vpc
                    ));
                }
            }
            for g in &f.security_groups {
                if !vpc.security_groups.iter().any(|x| &x.name == g) {
                    problems.push(format!(
                        "fleet {n:?} uses unknown security group {g:?} of VPC {:?}",
                        f.vpc
                    ));
                }
            }
        }
    }
    let mut devices = BTreeSet::new();
    for v in &f.data_volumes {
        if v.device == ROOT_DEVICE || !valid_data_device(&v.device) {
            problems.push(format!(
                "fleet {n:?}: data volume device {:?} is not /dev/sd[f-p] or /dev/xvd[f-p]",
                v.device
            ));
        } else if !devices.insert(v.device.as_str()) {
            problems.push(format!(
                "fleet {n:?}: data volume device {:?} is used twice",
                v.device
            ));
        }
        if !(1..=16_384).contains(&v.size_gib) {
            problems.push(format!(
                "fleet {n:?}: data volume {} size_gib {} is outside 1..=16384",
                v.device, v.size_gib
            ));
        }
        if !VOLUME_TYPES.contains(&v.volume_type.as_str()) {
            problems.push(format!(
                "fleet {n:?}: volume_type {:?} is not one of {}",
                v.volume_type,
                VOLUME_TYPES.join(", ")
            ));
        }
    }
    for key in f.tags.keys() {
        if matches!(key.as_str(), "Name" | TIER_TAG | CLUSTER_TAG | ROLE_TAG) {
            problems.push(format!(
                "fleet {n:?}: tag {key:?} is set by the seeder; use the fleet's own field"
            ));
        }
    }
}

fn check_load_balancer(
    lb: &LoadBalancerSpec,
    vpcs: &BTreeMap<&str, &VpcSpec>,
    fleets: &BTreeMap<&str, &FleetSpec>,
    certificates: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    let n = lb.name();
    if !valid_lb_name(n) {
        problems.push(format!(
            "load balancer {n:?}: a name is 1-32 letters, digits and hyphens, no hyphen at an end"
        ));
    }
    match vpcs.get(lb.vpc()) {
        None => problems.push(format!(
            "load balancer {n:?} is in unknown VPC {:?}",
            lb.vpc()
        )),
        Some(vpc) => {
            let mut azs = BTreeSet::new();
            for s in lb.subnets() {
                match vpc.subnets.iter().find(|x| &x.name == s) {
                    None => problems.push(format!(
                        "load balancer {n:?} uses unknown subnet {s:?} of VPC {:?}",
                        lb.vpc()
                    )),
                    Some(subnet) => {
                        if !azs.insert(subnet.az.as_str()) {
                            problems.push(format!(
                                "load balancer {n:?}: two subnets in AZ {:?}; use one per AZ",
                                subnet.az
                            ));
                        }
                    }
                }
            }
            if lb.subnets().is_empty() {
                problems.push(format!("load balancer {n:?} has no subnets"));
            }
            if matches!(lb, LoadBalancerSpec::Application(_)) && lb.subnets().len() < 2 {
                problems.push(format!(
                    "load balancer {n:?}: an application load balancer needs subnets in two \
                     or more AZs"
                ));
            }
            for g in lb.security_groups() {
                if !vpc.security_groups.iter().any(|x| &x.name == g) {
                    problems.push(format!(
                        "load balancer {n:?} uses unknown security group {g:?} of VPC {:?}",
                        lb.vpc()
                    ));
                }
            }
        }
    }
    for f in lb.fleets() {
        match fleets.get(f.as_str()) {
            None => problems.push(format!("load balancer {n:?} registers unknown fleet {f:?}")),
            Some(fleet) if fleet.vpc != lb.vpc() => problems.push(format!(
                "load balancer {n:?} (VPC {:?}) registers fleet {f:?} of VPC {:?}",
                lb.vpc(),
                fleet.vpc
            )),
            Some(_) => {}
        }
    }
    let allowed: &[Protocol] = match lb {
        LoadBalancerSpec::Classic(_) => &[
            Protocol::Http,
            Protocol::Https,
            Protocol::Tcp,
            Protocol::Ssl,
        ],
        LoadBalancerSpec::Application(_) => &[Protocol::Http, Protocol::Https],
        LoadBalancerSpec::Network(_) => &[
            Protocol::Tcp,
            Protocol::Tls,
            Protocol::Udp,
            Protocol::TcpUdp,
        ],
    };
    let listeners = lb.listeners();
    if listeners.is_empty() {
        problems.push(format!("load balancer {n:?} has no listeners"));
    }
    let mut ports = BTreeSet::new();
    for (protocol, port, certificate) in listeners {
        let p = protocol.as_str();
        if !allowed.contains(&protocol) {
            let kind = match lb.kind() {
                LoadBalancerKind::Classic => "a classic",
                LoadBalancerKind::Application => "an application",
                LoadBalancerKind::Network => "a network",
            };
            problems.push(format!(
                "load balancer {n:?}: protocol {p} is not allowed for {kind} load balancer"
            ));
        }
        if port == 0 {
            problems.push(format!("load balancer {n:?}: listener port 0"));
        } else if !ports.insert(port) {
            problems.push(format!("load balancer {n:?}: two listeners on port {port}"));
        }
        match certificate {
            None if protocol.needs_certificate() => problems.push(format!(
                "load balancer {n:?}: the {p} listener on port {port} needs a certificate"
            )),
            Some(c) if !protocol.needs_certificate() => problems.push(format!(
                "load balancer {n:?}: the {p} listener on port {port} cannot use certificate {c:?}"
            )),
            Some(c) if !certificates.contains(c) => problems.push(format!(
                "load balancer {n:?}: listener on port {port} uses unknown certificate {c:?}"
            )),
            _ => {}
        }
    }
    match lb {
        LoadBalancerSpec::Classic(c) => {
            for l in &c.listeners {
                if l.instance_port == 0 {
                    problems.push(format!("load balancer {n:?}: instance_port 0"));
                }
            }
            if let Some(h) = &c.health_check {
                let valid = h.target.split_once(':').is_some_and(|(proto, rest)| {
                    let port = rest.split('/').next().unwrap_or_default();
                    matches!(proto, "HTTP" | "HTTPS" | "TCP" | "SSL")
                        && port.parse::<u16>().is_ok_and(|p| p > 0)
                        && (rest.contains('/') == matches!(proto, "HTTP" | "HTTPS"))
                });
                if !valid {
                    problems.push(format!(
                        "load balancer {n:?}: health check target {:?} is not PROTOCOL:PORT \
                         (with /PATH for HTTP and HTTPS)",
                        h.target
                    ));
                }
                if h.timeout_secs >= h.interval_secs {
                    problems.push(format!(
                        "load balancer {n:?}: health check timeout must be below its interval"
                    ));
                }
            }
        }
        LoadBalancerSpec::Application(v) | LoadBalancerSpec::Network(v) => {
            let tg = &v.target_group;
            let tg_allowed = match lb {
                LoadBalancerSpec::Application(_) => [Protocol::Http, Protocol::Https].as_slice(),
                _ => [
                    Protocol::Tcp,
                    Protocol::Tls,
                    Protocol::Udp,
                    Protocol::TcpUdp,
                ]
                .as_slice(),
            };
            if !tg_allowed.contains(&tg.protocol) {
                problems.push(format!(
                    "load balancer {n:?}: target group protocol {} is not allowed here",
                    tg.protocol.as_str()
                ));
            }
            if tg.port == 0 {
                problems.push(format!("load balancer {n:?}: target group port 0"));
            }
            if let Some(path) = &tg.health_check_path {
                if !path.starts_with('/') {
                    problems.push(format!(
                        "load balancer {n:?}: health_check_path {path:?} does not start with /"
                    ));
                }
                if !matches!(tg.protocol, Protocol::Http | Protocol::Https) {
                    problems.push(format!(
                        "load balancer {n:?}: health_check_path needs an HTTP or HTTPS target \
                         group"
                    ));
                }
            }
        }
    }
}

fn check_zone(
    z: &ZoneSpec,
    vpcs: &BTreeMap<&str, &VpcSpec>,
    fleets: &BTreeMap<&str, &FleetSpec>,
    lbs: &BTreeSet<&str>,
    dbs: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    let n = dns::zone_domain(&z.name);
    if !valid_domain(n, false) {
        problems.push(format!("zone {n:?} is not a domain name"));
    }
    match (&z.vpc, z.private) {
        (None, true) => problems.push(format!("private zone {n:?} needs a vpc")),
        (Some(v), true) if !vpcs.contains_key(v.as_str()) => {
            problems.push(format!("private zone {n:?} names unknown VPC {v:?}"));
        }
        (Some(v), false) => problems.push(format!(
            "public zone {n:?} names VPC {v:?}; only private zones have one"
        )),
        _ => {}
    }
    let mut seen = BTreeSet::new();
    for r in &z.records {
        let name = dns::fqdn(r.name(), n);
        let shown = r.name();
        let fqdn_ok = name == format!("{n}.") || name.ends_with(&format!(".{n}."));
        if !valid_domain(&name, true) || !fqdn_ok {
            problems.push(format!(
                "zone {n:?}: record name {shown:?} is not a name in the zone"
            ));
        }
        if !seen.insert((name.clone(), r.record_type())) {
            problems.push(format!(
                "zone {n:?}: record {shown:?} {} is defined twice",
                r.record_type()
            ));
        }
        match r {
            RecordSpec::Instance { fleet, index, .. } => match fleets.get(fleet.as_str()) {
                None => problems.push(format!(
                    "zone {n:?}: record {shown:?} names unknown fleet {fleet:?}"
                )),
                Some(f) if *index == 0 || *index > f.count => problems.push(format!(
                    "zone {n:?}: record {shown:?} names instance {index} of fleet {fleet:?}, \
                     which has instances 1..={}",
                    f.count
                )),
                Some(_) => {}
            },
            RecordSpec::A { values, .. } => {
                if values.is_empty() {
                    problems.push(format!("zone {n:?}: record {shown:?} has no values"));
                }
                for v in values {
                    if v.parse::<std::net::Ipv4Addr>().is_err() {
                        problems.push(format!(
                            "zone {n:?}: record {shown:?} value {v:?} is not an IPv4 address"
                        ));
                    }
                }
            }
            RecordSpec::LbCname { load_balancer, .. }
            | RecordSpec::LbAlias { load_balancer, .. } => {
                if !lbs.contains(load_balancer.as_str()) {
                    problems.push(format!(
                        "zone {n:?}: record {shown:?} names unknown load balancer \
                         {load_balancer:?}"
                    ));
                }
            }
            RecordSpec::DbCname { db, .. } => {
                if !dbs.contains(db.as_str()) {
                    problems.push(format!(
                        "zone {n:?}: record {shown:?} names unknown database {db:?}"
                    ));
                }
            }
            RecordSpec::Txt { values, .. } => {
                if values.is_empty() || values.iter().any(|v| v.len() > 255) {
                    problems.push(format!(
                        "zone {n:?}: TXT record {shown:?} needs 1+ values of at most 255 characters"
                    ));
                }
            }
        }
    }
    // A CNAME cannot share its name with any other record.
    let cnames: BTreeSet<&String> = seen
        .iter()
        .filter(|(_, t)| *t == "CNAME")
        .map(|(name, _)| name)
        .collect();
    for (name, t) in &seen {
        if *t != "CNAME" && cnames.contains(name) {
            problems.push(format!("zone {n:?}: {name} has a CNAME and a {t} record"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_devices_and_types() {
        assert!(valid_domain("example.com", false));
        assert!(valid_domain("example.com.", false));
        assert!(valid_domain("_meta.corp.example.com", false));
        assert!(!valid_domain("*.example.com", false));
        assert!(valid_domain("*.example.com", true));
        assert!(!valid_domain("bad..example.com", false));
        assert!(!valid_domain("-x.example.com", false));
        assert!(!valid_domain("", false));
        assert!(!valid_domain(&format!("{}.com", "a".repeat(64)), false));
        assert!(valid_lb_name("shop-alb"));
        assert!(!valid_lb_name("-x") && !valid_lb_name("a_b") && !valid_lb_name(&"a".repeat(33)));
        assert!(valid_data_device("/dev/sdf") && valid_data_device("/dev/xvdp"));
        assert!(!valid_data_device("/dev/sda") && !valid_data_device("/dev/xvda"));
        assert!(!valid_data_device("/dev/sdff") && !valid_data_device("sdf"));
        assert!(valid_instance_type("r5.2xlarge") && !valid_instance_type("r5"));
    }
}
