//! The network model and the mirror plan (R1).
//!
//! [`NetworkSnapshot`] is what a region's VPCs, subnets, security groups, route tables and
//! internet gateways look like, as far as a DR mirror cares. [`plan`] compares the primary's
//! snapshot with the DR region's *owned* snapshot (resources tagged `pilotlight:source`) and
//! returns the ordered [`NetworkAction`]s that make the DR side match, plus the DR resources
//! whose source has gone ([`Orphan`]s) and the primary intent the mirror does not reproduce
//! ([`Unmirrored`]).
//!
//! Actions refer to resources by their **primary** id; the executor resolves each to the DR id
//! through the mapping, which grows as creates succeed (so a subnet can be created in a VPC made
//! earlier in the same plan). A plan computed from an already-converged pair is empty: that is
//! the idempotence the reconciler relies on to make zero mutating calls in a quiet cycle.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
    /// Associated secondary IPv4 CIDRs.
    pub secondary_cidrs: Vec<String>,
    pub is_default: bool,
    pub tags: BTreeMap<String, String>,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub az: String,
    pub map_public_ip_on_launch: bool,
    pub tags: BTreeMap<String, String>,
}

/// The peer of a security-group rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Peer {
    Cidr(String),
    CidrV6(String),
    /// Another security group, by id (primary ids on the primary side, DR ids on the DR side).
    Group(String),
    PrefixList(String),
}

/// One atomic permission: protocol, port range, one peer. Rules are compared as sets of these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Permission {
    /// `-1` for all, else `tcp`, `udp`, `icmp` or a protocol number.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peer: Peer,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub ingress: BTreeSet<Permission>,
    pub egress: BTreeSet<Permission>,
    pub tags: BTreeMap<String, String>,
}

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum RouteTarget {
    Local,
    InternetGateway(String),
    NatGateway(String),
    /// Peering, transit gateway, endpoint, instance, …: recorded, not mirrored.
    Other(String),
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Route {
    pub destination_cidr: String,
    pub target: RouteTarget,
}

/// A route table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    pub main: bool,
    pub subnet_ids: BTreeSet<String>,
    pub routes: BTreeSet<Route>,
    pub tags: BTreeMap<String, String>,
}

/// An internet gateway and the VPCs it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InternetGateway {
    pub id: String,
    pub vpc_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// One region's network, as seen by the mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkSnapshot {
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub security_groups: Vec<SecurityGroup>,
    pub route_tables: Vec<RouteTable>,
    pub internet_gateways: Vec<InternetGateway>,
}

/// The resource kinds the mirror manages (the closed `kind` label set and store mapping kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    Vpc,
    Subnet,
    SecurityGroup,
    RouteTable,
    InternetGateway,
}

impl NetworkKind {
    pub const ALL: [NetworkKind; 5] = [
        NetworkKind::Vpc,
        NetworkKind::Subnet,
        NetworkKind::SecurityGroup,
        NetworkKind::RouteTable,
        NetworkKind::InternetGateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkKind::Vpc => "vpc",
            NetworkKind::Subnet => "subnet",
            NetworkKind::SecurityGroup => "security_group",
            NetworkKind::RouteTable => "route_table",
            NetworkKind::InternetGateway => "internet_gateway",
        }
    }
}

/// One step of the mirror plan. Ids are primary ids unless the field says `dr_`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NetworkAction {
    CreateVpc {
        source: String,
        cidr: String,
        name: Option<String>,
    },
    AssociateVpcCidr {
        vpc: String,
        cidr: String,
    },
    CreateSubnet {
        source: String,
        vpc: String,
        cidr: String,
        dr_az: String,
        name: Option<String>,
    },
    SetSubnetPublicIp {
        subnet: String,
        map_public_ip_on_launch: bool,
    },
    CreateSecurityGroup {
        source: String,
        vpc: String,
        group_name: String,
        description: String,
    },
    /// Adopt a DR resource AWS made implicitly (a VPC's default security group or main route
    /// table) by tagging it with its source.
    Adopt {
        kind: NetworkKind,
        source: String,
        dr_id: String,
    },
    /// Adopt the default security group of the DR VPC mirroring `vpc` (primary id), which
    /// does not exist until that VPC is created earlier in the same plan.
    AdoptDefaultSecurityGroup {
        source: String,
        vpc: String,
    },
    /// Adopt the main route table of the DR VPC mirroring `vpc` (primary id).
    AdoptMainRouteTable {
        source: String,
        vpc: String,
    },
    /// Permissions with `Peer::Group` hold primary group ids, to be remapped.
    AuthorizeIngress {
        group: String,
        permissions: Vec<Permission>,
    },
    AuthorizeEgress {
        group: String,
        permissions: Vec<Permission>,
    },
    /// Permissions here are already DR-side (they were read from the DR group).
    RevokeIngress {
        group: String,
        permissions: Vec<Permission>,
    },
    RevokeEgress {
        group: String,
        permissions: Vec<Permission>,
    },
    CreateInternetGateway {
        source: String,
        vpc: String,
    },
    /// An owned gateway exists but is not attached to the mapped VPC (a create that crashed
    /// before its attach).
    AttachInternetGateway {
        gateway: String,
        vpc: String,
    },
    CreateRouteTable {
        source: String,
        vpc: String,
        name: Option<String>,
    },
    /// `target` holds the primary gateway id for internet gateways.
    CreateRoute {
        route_table: String,
        destination_cidr: String,
        target: RouteTarget,
    },
    AssociateRouteTable {
        route_table: String,
        subnet: String,
    },
}

impl NetworkAction {
    /// The kind of resource the action changes (for metrics).
    pub fn kind(&self) -> NetworkKind {
        match self {
            NetworkAction::CreateVpc { .. } | NetworkAction::AssociateVpcCidr { .. } => {
                NetworkKind::Vpc
            }
            NetworkAction::CreateSubnet { .. } | NetworkAction::SetSubnetPublicIp { .. } => {
                NetworkKind::Subnet
            }
            NetworkAction::CreateSecurityGroup { .. }
            | NetworkAction::AuthorizeIngress { .. }
            | NetworkAction::AuthorizeEgress { .. }
            | NetworkAction::RevokeIngress { .. }
            | NetworkAction::RevokeEgress { .. } => NetworkKind::SecurityGroup,
            NetworkAction::Adopt { kind, .. } => *kind,
            NetworkAction::AdoptDefaultSecurityGroup { .. } => NetworkKind::SecurityGroup,
            NetworkAction::AdoptMainRouteTable { .. } => NetworkKind::RouteTable,
            NetworkAction::CreateInternetGateway { .. }
            | NetworkAction::AttachInternetGateway { .. } => NetworkKind::InternetGateway,
            NetworkAction::CreateRouteTable { .. }
            | NetworkAction::CreateRoute { .. }
            | NetworkAction::AssociateRouteTable { .. } => NetworkKind::RouteTable,
        }
    }

    /// A short verb for metrics (`create`, `update`, `adopt`).
    pub fn verb(&self) -> &'static str {
        match self {
            NetworkAction::CreateVpc { .. }
            | NetworkAction::CreateSubnet { .. }
            | NetworkAction::CreateSecurityGroup { .. }
            | NetworkAction::CreateInternetGateway { .. }
            | NetworkAction::CreateRouteTable { .. } => "create",
            NetworkAction::Adopt { .. }
            | NetworkAction::AdoptDefaultSecurityGroup { .. }
            | NetworkAction::AdoptMainRouteTable { .. } => "adopt",
            _ => "update",
        }
    }
}

/// A DR resource whose primary source no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub kind: NetworkKind,
    pub source: String,
    pub dr_id: String,
}

/// Primary intent the mirror records but does not reproduce (NAT gateways cost money while
/// idle and are created at restore time; peering and transit attachments need the other side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmirrored {
    pub route_table: String,
    pub destination_cidr: String,
    pub target: String,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkPlan {
    pub actions: Vec<NetworkAction>,
    pub orphans: Vec<Orphan>,
    pub unmirrored: Vec<Unmirrored>,
}

/// How primary AZs map onto DR AZs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzMap {
    map: BTreeMap<String, String>,
}

impl AzMap {
    /// Builds the map: explicit entries win; every other primary AZ maps to the DR AZ with the
    /// same position in letter order (wrapping when the DR region has fewer AZs).
    pub fn new(
        explicit: &BTreeMap<String, String>,
        primary_azs: &[String],
        dr_azs: &[String],
    ) -> AzMap {
        let mut primary: Vec<&String> = primary_azs.iter().collect();
        primary.sort();
        let mut dr: Vec<&String> = dr_azs.iter().collect();
        dr.sort();
        let mut map = BTreeMap::new();
        if !dr.is_empty() {
            for (i, az) in primary.iter().enumerate() {
                map.insert((*az).clone(), dr[i % dr.len()].clone());
            }
        }
        for (k, v) in explicit {
            map.insert(k.clone(), v.clone());
        }
        AzMap { map }
    }

    pub fn get(&self, primary_az: &str) -> Option<&str> {
        self.map.get(primary_az).map(String::as_str)
    }
}

/// Which primary VPCs to mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorScope {
    pub include_default_vpc: bool,
    /// Only VPCs carrying this tag key and value.
    pub vpc_tag: Option<(String, String)>,
}

impl MirrorScope {
    pub fn includes(&self, vpc: &Vpc) -> bool {
        if vpc.is_default && !self.include_default_vpc {
            return false;
        }
        match &self.vpc_tag {
            Some((k, v)) => vpc.tags.get(k) == Some(v),
            None => true,
        }
    }
}

/// The tag holding a DR resource's primary id.
pub const SOURCE_TAG: &str = "pilotlight:source";

fn source_of(tags: &BTreeMap<String, String>) -> Option<&str> {
    tags.get(SOURCE_TAG).map(String::as_str)
}

fn name_of(tags: &BTreeMap<String, String>) -> Option<String> {
    tags.get("Name").cloned()
}

/// The primary → DR id mapping implied by a DR snapshot's source tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdMap {
    pub by_kind: BTreeMap<NetworkKind, BTreeMap<String, String>>,
}

impl IdMap {
    pub fn get(&self, kind: NetworkKind, primary: &str) -> Option<&str> {
        self.by_kind
            .get(&kind)
            .and_then(|m| m.get(primary))
            .map(String::as_str)
    }

    pub fn insert(&mut self, kind: NetworkKind, primary: &str, dr: &str) {
        self.by_kind
            .entry(kind)
            .or_default()
            .insert(primary.to_owned(), dr.to_owned());
    }

    /// Forgets a pair (after its DR resource was deleted).
    pub fn remove(&mut self, kind: NetworkKind, primary: &str) {
        if let Some(m) = self.by_kind.get_mut(&kind) {
            m.remove(primary);
        }
    }

    /// The reverse lookup: which primary id a DR id mirrors.
    pub fn source_of(&self, kind: NetworkKind, dr: &str) -> Option<&str> {
        self.by_kind.get(&kind).and_then(|m| {
            m.iter()
                .find(|(_, d)| d.as_str() == dr)
                .map(|(p, _)| p.as_str())
        })
    }

    /// Every pair, for the store.
    pub fn pairs(&self) -> impl Iterator<Item = (NetworkKind, &str, &str)> {
        self.by_kind
            .iter()
            .flat_map(|(k, m)| m.iter().map(move |(p, d)| (*k, p.as_str(), d.as_str())))
    }

    /// The mapping implied by the DR snapshot's `pilotlight:source` tags.
    pub fn from_dr(dr: &NetworkSnapshot) -> IdMap {
        let mut ids = IdMap::default();
        for v in &dr.vpcs {
            if let Some(s) = source_of(&v.tags) {
                ids.insert(NetworkKind::Vpc, s, &v.id);
            }
        }
        for s in &dr.subnets {
            if let Some(src) = source_of(&s.tags) {
                ids.insert(NetworkKind::Subnet, src, &s.id);
            }
        }
        for g in &dr.security_groups {
            if let Some(src) = source_of(&g.tags) {
                ids.insert(NetworkKind::SecurityGroup, src, &g.id);
            }
        }
        for r in &dr.route_tables {
            if let Some(src) = source_of(&r.tags) {
                ids.insert(NetworkKind::RouteTable, src, &r.id);
            }
        }
        for i in &dr.internet_gateways {
            if let Some(src) = source_of(&i.tags) {
                ids.insert(NetworkKind::InternetGateway, src, &i.id);
            }
        }
        ids
    }
}

/// Translates a primary permission's group peer to the DR group, if mapped.
pub fn to_dr_permission(p: &Permission, ids: &IdMap) -> Option<Permission> {
    match &p.peer {
        Peer::Group(g) => ids.get(NetworkKind::SecurityGroup, g).map(|dr| Permission {
            peer: Peer::Group(dr.to_owned()),
            ..p.clone()
        }),
        _ => Some(p.clone()),
    }
}

/// Translates a DR permission back to primary terms (group peers through the mapping).
fn to_primary_permission(p: &Permission, ids: &IdMap) -> Permission {
    match &p.peer {
        Peer::Group(g) => match ids.source_of(NetworkKind::SecurityGroup, g) {
            Some(src) => Permission {
                peer: Peer::Group(src.to_owned()),
                ..p.clone()
            },
            None => p.clone(),
        },
        _ => p.clone(),
    }
}

/// Computes the actions that make `dr` mirror the in-scope part of `primary`.
///
/// `dr` must contain only DR resources inside pilotlight-managed VPCs. Resources AWS creates
/// implicitly with a VPC (its default security group and main route table) are adopted rather
/// than created.
pub fn plan(
    primary: &NetworkSnapshot,
    dr: &NetworkSnapshot,
    azs: &AzMap,
    scope: &MirrorScope,
) -> NetworkPlan {
    let ids = IdMap::from_dr(dr);
    let mut out = NetworkPlan::default();
    let vpcs: Vec<&Vpc> = primary.vpcs.iter().filter(|v| scope.includes(v)).collect();
    let in_scope: BTreeSet<&str> = vpcs.iter().map(|v| v.id.as_str()).collect();
    let dr_vpc_by_id: BTreeMap<&str, &Vpc> = dr.vpcs.iter().map(|v| (v.id.as_str(), v)).collect();

    // VPCs and their CIDRs.
    for v in &vpcs {
        match ids
            .get(NetworkKind::Vpc, &v.id)
            .and_then(|d| dr_vpc_by_id.get(d))
        {
            None => {
                out.actions.push(NetworkAction::CreateVpc {
                    source: v.id.clone(),
                    cidr: v.cidr.clone(),
                    name: name_of(&v.tags),
                });
                for c in &v.secondary_cidrs {
                    out.actions.push(NetworkAction::AssociateVpcCidr {
                        vpc: v.id.clone(),
                        cidr: c.clone(),
                    });
                }
            }
            Some(d) => {
                for c in &v.secondary_cidrs {
                    if !d.secondary_cidrs.contains(c) && &d.cidr != c {
                        out.actions.push(NetworkAction::AssociateVpcCidr {
                            vpc: v.id.clone(),
                            cidr: c.clone(),
                        });
                    }
                }
            }
        }
    }

    // Subnets.
    let dr_subnets: BTreeMap<&str, &Subnet> =
        dr.subnets.iter().map(|s| (s.id.as_str(), s)).collect();
    for s in primary
        .subnets
        .iter()
        .filter(|s| in_scope.contains(s.vpc_id.as_str()))
    {
        match ids
            .get(NetworkKind::Subnet, &s.id)
            .and_then(|d| dr_subnets.get(d))
        {
            None => {
                let dr_az = azs.get(&s.az).unwrap_or(&s.az).to_owned();
                out.actions.push(NetworkAction::CreateSubnet {
                    source: s.id.clone(),
                    vpc: s.vpc_id.clone(),
                    cidr: s.cidr.clone(),
                    dr_az,
                    name: name_of(&s.tags),
                });
                if s.map_public_ip_on_launch {
                    out.actions.push(NetworkAction::SetSubnetPublicIp {
                        subnet: s.id.clone(),
                        map_public_ip_on_launch: true,
                    });
                }
            }
            Some(d) if d.map_public_ip_on_launch != s.map_public_ip_on_launch => {
                out.actions.push(NetworkAction::SetSubnetPublicIp {
                    subnet: s.id.clone(),
                    map_public_ip_on_launch: s.map_public_ip_on_launch,
                });
            }
            Some(_) => {}
        }
    }

    // Security groups: create (or adopt the VPC's default group) first, then rules, so that
    // rules referencing groups created in this same plan can be remapped by the executor.
    let groups: Vec<&SecurityGroup> = primary
        .security_groups
        .iter()
        .filter(|g| in_scope.contains(g.vpc_id.as_str()))
        .collect();
    let dr_groups: BTreeMap<&str, &SecurityGroup> = dr
        .security_groups
        .iter()
        .map(|g| (g.id.as_str(), g))
        .collect();
    for g in &groups {
        if ids.get(NetworkKind::SecurityGroup, &g.id).is_some() {
            continue;
        }
        if g.name == "default" {
            // The DR VPC's own default group, found by name inside the mapped VPC, or — when
            // that VPC is created by this same plan — looked up right after its creation.
            let dr_default = ids.get(NetworkKind::Vpc, &g.vpc_id).and_then(|dv| {
                dr.security_groups
                    .iter()
                    .find(|d| d.vpc_id == dv && d.name == "default")
            });
            out.actions.push(match dr_default {
                Some(d) => NetworkAction::Adopt {
                    kind: NetworkKind::SecurityGroup,
                    source: g.id.clone(),
                    dr_id: d.id.clone(),
                },
                None => NetworkAction::AdoptDefaultSecurityGroup {
                    source: g.id.clone(),
                    vpc: g.vpc_id.clone(),
                },
            });
        } else {
            out.actions.push(NetworkAction::CreateSecurityGroup {
                source: g.id.clone(),
                vpc: g.vpc_id.clone(),
                group_name: g.name.clone(),
                description: g.description.clone(),
            });
        }
    }
    for g in &groups {
        let existing = ids
            .get(NetworkKind::SecurityGroup, &g.id)
            .and_then(|d| dr_groups.get(d));
        let adopted_default = existing.is_none() && g.name == "default";
        let (have_in, have_out): (BTreeSet<Permission>, BTreeSet<Permission>) = match existing {
            Some(d) => (
                d.ingress
                    .iter()
                    .map(|p| to_primary_permission(p, &ids))
                    .collect(),
                d.egress
                    .iter()
                    .map(|p| to_primary_permission(p, &ids))
                    .collect(),
            ),
            None if adopted_default => {
                // Being adopted in this plan: its current rules are those of the DR default,
                // or AWS's defaults for a VPC created by this plan (all traffic from itself in,
                // everything out).
                let d = ids.get(NetworkKind::Vpc, &g.vpc_id).and_then(|dv| {
                    dr.security_groups
                        .iter()
                        .find(|d| d.vpc_id == dv && d.name == "default")
                });
                match d {
                    Some(d) => {
                        // Read its rules as if already adopted, so a self-reference matches.
                        let mut adopted = ids.clone();
                        adopted.insert(NetworkKind::SecurityGroup, &g.id, &d.id);
                        (
                            d.ingress
                                .iter()
                                .map(|p| to_primary_permission(p, &adopted))
                                .collect(),
                            d.egress
                                .iter()
                                .map(|p| to_primary_permission(p, &adopted))
                                .collect(),
                        )
                    }
                    None => (
                        BTreeSet::from([Permission {
                            protocol: "-1".into(),
                            from_port: None,
                            to_port: None,
                            peer: Peer::Group(g.id.clone()),
                        }]),
                        BTreeSet::from([allow_all_egress()]),
                    ),
                }
            }
            // A new group starts with AWS's default egress (allow all to 0.0.0.0/0).
            None => (BTreeSet::new(), BTreeSet::from([allow_all_egress()])),
        };
        push_rule_diff(&mut out.actions, g, &g.ingress, &have_in, true, &ids);
        push_rule_diff(&mut out.actions, g, &g.egress, &have_out, false, &ids);
    }

    // Internet gateways (one VPC each, as AWS allows).
    for igw in &primary.internet_gateways {
        let Some(vpc) = igw.vpc_ids.iter().find(|v| in_scope.contains(v.as_str())) else {
            continue;
        };
        match ids.get(NetworkKind::InternetGateway, &igw.id) {
            None => out.actions.push(NetworkAction::CreateInternetGateway {
                source: igw.id.clone(),
                vpc: vpc.clone(),
            }),
            Some(dr_igw) => {
                let dr_vpc = ids.get(NetworkKind::Vpc, vpc);
                let attached = dr.internet_gateways.iter().any(|d| {
                    d.id == dr_igw && dr_vpc.is_some_and(|dv| d.vpc_ids.iter().any(|x| x == dv))
                });
                if !attached {
                    out.actions.push(NetworkAction::AttachInternetGateway {
                        gateway: igw.id.clone(),
                        vpc: vpc.clone(),
                    });
                }
            }
        }
    }

    // Route tables: adopt the main table, create the others, then routes and associations.
    let dr_tables: BTreeMap<&str, &RouteTable> =
        dr.route_tables.iter().map(|r| (r.id.as_str(), r)).collect();
    for rt in primary
        .route_tables
        .iter()
        .filter(|r| in_scope.contains(r.vpc_id.as_str()))
    {
        let mapped = ids.get(NetworkKind::RouteTable, &rt.id);
        let existing = mapped.and_then(|d| dr_tables.get(d)).copied();
        if mapped.is_none() {
            if rt.main {
                let dr_main = ids
                    .get(NetworkKind::Vpc, &rt.vpc_id)
                    .and_then(|dv| dr.route_tables.iter().find(|d| d.vpc_id == dv && d.main));
                out.actions.push(match dr_main {
                    Some(d) => NetworkAction::Adopt {
                        kind: NetworkKind::RouteTable,
                        source: rt.id.clone(),
                        dr_id: d.id.clone(),
                    },
                    None => NetworkAction::AdoptMainRouteTable {
                        source: rt.id.clone(),
                        vpc: rt.vpc_id.clone(),
                    },
                });
            } else {
                out.actions.push(NetworkAction::CreateRouteTable {
                    source: rt.id.clone(),
                    vpc: rt.vpc_id.clone(),
                    name: name_of(&rt.tags),
                });
            }
        }
        let adopted_main = mapped.is_none() && rt.main;
        let dr_view = if adopted_main {
            ids.get(NetworkKind::Vpc, &rt.vpc_id)
                .and_then(|dv| dr.route_tables.iter().find(|d| d.vpc_id == dv && d.main))
        } else {
            existing
        };
        for route in &rt.routes {
            match &route.target {
                RouteTarget::Local => {}
                RouteTarget::InternetGateway(primary_igw) => {
                    let present = dr_view.is_some_and(|d| {
                        d.routes.iter().any(|r| {
                            r.destination_cidr == route.destination_cidr
                                && matches!(&r.target, RouteTarget::InternetGateway(dr_igw)
                                    if ids.source_of(NetworkKind::InternetGateway, dr_igw) == Some(primary_igw.as_str()))
                        })
                    });
                    if !present {
                        out.actions.push(NetworkAction::CreateRoute {
                            route_table: rt.id.clone(),
                            destination_cidr: route.destination_cidr.clone(),
                            target: route.target.clone(),
                        });
                    }
                }
                RouteTarget::NatGateway(id) => out.unmirrored.push(Unmirrored {
                    route_table: rt.id.clone(),
                    destination_cidr: route.destination_cidr.clone(),
                    target: format!("nat-gateway:{id}"),
                }),
                RouteTarget::Other(t) => out.unmirrored.push(Unmirrored {
                    route_table: rt.id.clone(),
                    destination_cidr: route.destination_cidr.clone(),
                    target: t.clone(),
                }),
            }
        }
        if !rt.main {
            for subnet in &rt.subnet_ids {
                let associated = dr_view.is_some_and(|d| {
                    d.subnet_ids.iter().any(|dr_subnet| {
                        ids.source_of(NetworkKind::Subnet, dr_subnet) == Some(subnet.as_str())
                    })
                });
                if !associated {
                    out.actions.push(NetworkAction::AssociateRouteTable {
                        route_table: rt.id.clone(),
                        subnet: subnet.clone(),
                    });
                }
            }
        }
    }

    // Orphans: DR resources whose source is gone (or out of scope).
    let primary_ids: BTreeMap<NetworkKind, BTreeSet<&str>> = BTreeMap::from([
        (
            NetworkKind::Vpc,
            vpcs.iter().map(|v| v.id.as_str()).collect(),
        ),
        (
            NetworkKind::Subnet,
            primary
                .subnets
                .iter()
                .filter(|s| in_scope.contains(s.vpc_id.as_str()))
                .map(|s| s.id.as_str())
                .collect(),
        ),
        (
            NetworkKind::SecurityGroup,
            groups.iter().map(|g| g.id.as_str()).collect(),
        ),
        (
            NetworkKind::RouteTable,
            primary
                .route_tables
                .iter()
                .filter(|r| in_scope.contains(r.vpc_id.as_str()))
                .map(|r| r.id.as_str())
                .collect(),
        ),
        (
            NetworkKind::InternetGateway,
            primary
                .internet_gateways
                .iter()
                .map(|i| i.id.as_str())
                .collect(),
        ),
    ]);
    for (kind, source, dr_id) in ids.pairs() {
        let alive = primary_ids.get(&kind).is_some_and(|s| s.contains(source));
        if !alive {
            out.orphans.push(Orphan {
                kind,
                source: source.to_owned(),
                dr_id: dr_id.to_owned(),
            });
        }
    }
    out
}

fn allow_all_egress() -> Permission {
    Permission {
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        peer: Peer::Cidr("0.0.0.0/0".into()),
    }
}

fn push_rule_diff(
    actions: &mut Vec<NetworkAction>,
    group: &SecurityGroup,
    want: &BTreeSet<Permission>,
    have: &BTreeSet<Permission>,
    ingress: bool,
    ids: &IdMap,
) {
    let add: Vec<Permission> = want.difference(have).cloned().collect();
    // Revocations carry DR-side permissions so the executor can send them as read.
    let remove: Vec<Permission> = have
        .difference(want)
        .map(|p| to_dr_permission(p, ids).unwrap_or_else(|| p.clone()))
        .collect();
    if !add.is_empty() {
        actions.push(if ingress {
            NetworkAction::AuthorizeIngress {
                group: group.id.clone(),
                permissions: add,
            }
        } else {
            NetworkAction::AuthorizeEgress {
                group: group.id.clone(),
                permissions: add,
            }
        });
    }
    if !remove.is_empty() {
        actions.push(if ingress {
            NetworkAction::RevokeIngress {
                group: group.id.clone(),
                permissions: remove,
            }
        } else {
            NetworkAction::RevokeEgress {
                group: group.id.clone(),
                permissions: remove,
            }
        });
    }
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

    fn perm(proto: &str, port: i32, peer: Peer) -> Permission {
        Permission {
            protocol: proto.into(),
            from_port: Some(port),
            to_port: Some(port),
            peer,
        }
    }

    fn primary() -> NetworkSnapshot {
        NetworkSnapshot {
            vpcs: vec![
                Vpc {
                    id: "vpc-p1".into(),
                    cidr: "10.0.0.0/16".into(),
                    secondary_cidrs: vec!["10.1.0.0/16".into()],
                    is_default: false,
                    tags: tags(&[("Name", "app")]),
                },
                Vpc {
                    id: "vpc-default".into(),
                    cidr: "172.31.0.0/16".into(),
                    secondary_cidrs: vec![],
                    is_default: true,
                    tags: BTreeMap::new(),
                },
            ],
            subnets: vec![
                Subnet {
                    id: "subnet-p1".into(),
                    vpc_id: "vpc-p1".into(),
                    cidr: "10.0.1.0/24".into(),
                    az: "us-east-1a".into(),
                    map_public_ip_on_launch: true,
                    tags: BTreeMap::new(),
                },
                Subnet {
                    id: "subnet-p2".into(),
                    vpc_id: "vpc-p1".into(),
                    cidr: "10.0.2.0/24".into(),
                    az: "us-east-1b".into(),
                    map_public_ip_on_launch: false,
                    tags: BTreeMap::new(),
                },
                Subnet {
                    id: "subnet-d".into(),
                    vpc_id: "vpc-default".into(),
                    cidr: "172.31.0.0/20".into(),
                    az: "us-east-1a".into(),
                    map_public_ip_on_launch: true,
                    tags: BTreeMap::new(),
                },
            ],
            security_groups: vec![
                SecurityGroup {
                    id: "sg-web".into(),
                    vpc_id: "vpc-p1".into(),
                    name: "web".into(),
                    description: "web tier".into(),
                    ingress: BTreeSet::from([perm("tcp", 443, Peer::Cidr("0.0.0.0/0".into()))]),
                    egress: BTreeSet::from([allow_all_egress()]),
                    tags: BTreeMap::new(),
                },
                SecurityGroup {
                    id: "sg-db".into(),
                    vpc_id: "vpc-p1".into(),
                    name: "db".into(),
                    description: "db tier".into(),
                    ingress: BTreeSet::from([perm("tcp", 5432, Peer::Group("sg-web".into()))]),
                    egress: BTreeSet::from([allow_all_egress()]),
                    tags: BTreeMap::new(),
                },
            ],
            route_tables: vec![],
            internet_gateways: vec![],
        }
    }

    fn azs() -> AzMap {
        AzMap::new(
            &BTreeMap::new(),
            &[
                "us-east-1a".into(),
                "us-east-1b".into(),
                "us-east-1c".into(),
            ],
            &["us-west-2a".into(), "us-west-2b".into()],
        )
    }

    #[test]
    fn az_map_by_letter_order_with_overrides() {
        let m = AzMap::new(
            &BTreeMap::from([("us-east-1c".to_owned(), "us-west-2d".to_owned())]),
            &[
                "us-east-1b".into(),
                "us-east-1a".into(),
                "us-east-1c".into(),
                "us-east-1d".into(),
            ],
            &[
                "us-west-2b".into(),
                "us-west-2a".into(),
                "us-west-2c".into(),
            ],
        );
        assert_eq!(m.get("us-east-1a"), Some("us-west-2a"));
        assert_eq!(m.get("us-east-1b"), Some("us-west-2b"));
        assert_eq!(m.get("us-east-1c"), Some("us-west-2d"));
        assert_eq!(m.get("us-east-1d"), Some("us-west-2a"), "wraps around");
    }

    #[test]
    fn empty_dr_plans_everything_in_dependency_order() {
        let p = plan(
            &primary(),
            &NetworkSnapshot::default(),
            &azs(),
            &MirrorScope::default(),
        );
        let kinds: Vec<&str> = p
            .actions
            .iter()
            .map(|a| match a {
                NetworkAction::CreateVpc { .. } => "vpc",
                NetworkAction::AssociateVpcCidr { .. } => "cidr",
                NetworkAction::CreateSubnet { .. } => "subnet",
                NetworkAction::SetSubnetPublicIp { .. } => "public",
                NetworkAction::CreateSecurityGroup { .. } => "sg",
                NetworkAction::AuthorizeIngress { .. } => "in",
                NetworkAction::AuthorizeEgress { .. } => "out",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "vpc", "cidr", "subnet", "public", "subnet", "sg", "sg", "in", "in"
            ]
        );
        // The default VPC is out of scope by default.
        assert!(!p.actions.iter().any(
            |a| matches!(a, NetworkAction::CreateVpc { source, .. } if source == "vpc-default")
        ));
        // AZ mapped by letter.
        assert!(p.actions.contains(&NetworkAction::CreateSubnet {
            source: "subnet-p2".into(),
            vpc: "vpc-p1".into(),
            cidr: "10.0.2.0/24".into(),
            dr_az: "us-west-2b".into(),
            name: None,
        }));
        assert!(p.orphans.is_empty());
    }

    /// The DR snapshot after a perfect mirror of [`primary`].
    fn converged() -> NetworkSnapshot {
        let src = |id: &str| tags(&[(SOURCE_TAG, id), ("pilotlight:managed", "true")]);
        NetworkSnapshot {
            vpcs: vec![Vpc {
                id: "vpc-d1".into(),
                cidr: "10.0.0.0/16".into(),
                secondary_cidrs: vec!["10.1.0.0/16".into()],
                is_default: false,
                tags: src("vpc-p1"),
            }],
            subnets: vec![
                Subnet {
                    id: "subnet-d1".into(),
                    vpc_id: "vpc-d1".into(),
                    cidr: "10.0.1.0/24".into(),
                    az: "us-west-2a".into(),
                    map_public_ip_on_launch: true,
                    tags: src("subnet-p1"),
                },
                Subnet {
                    id: "subnet-d2".into(),
                    vpc_id: "vpc-d1".into(),
                    cidr: "10.0.2.0/24".into(),
                    az: "us-west-2b".into(),
                    map_public_ip_on_launch: false,
                    tags: src("subnet-p2"),
                },
            ],
            security_groups: vec![
                SecurityGroup {
                    id: "sg-dweb".into(),
                    vpc_id: "vpc-d1".into(),
                    name: "web".into(),
                    description: "web tier".into(),
                    ingress: BTreeSet::from([perm("tcp", 443, Peer::Cidr("0.0.0.0/0".into()))]),
                    egress: BTreeSet::from([allow_all_egress()]),
                    tags: src("sg-web"),
                },
                SecurityGroup {
                    id: "sg-ddb".into(),
                    vpc_id: "vpc-d1".into(),
                    name: "db".into(),
                    description: "db tier".into(),
                    ingress: BTreeSet::from([perm("tcp", 5432, Peer::Group("sg-dweb".into()))]),
                    egress: BTreeSet::from([allow_all_egress()]),
                    tags: src("sg-db"),
                },
            ],
            route_tables: vec![],
            internet_gateways: vec![],
        }
    }

    #[test]
    fn converged_pair_plans_nothing() {
        let p = plan(&primary(), &converged(), &azs(), &MirrorScope::default());
        assert_eq!(p, NetworkPlan::default());
    }

    #[test]
    fn new_primary_subnet_is_planned_alone() {
        let mut prim = primary();
        prim.subnets.push(Subnet {
            id: "subnet-p3".into(),
            vpc_id: "vpc-p1".into(),
            cidr: "10.1.5.0/24".into(),
            az: "us-east-1c".into(),
            map_public_ip_on_launch: false,
            tags: BTreeMap::new(),
        });
        let p = plan(&prim, &converged(), &azs(), &MirrorScope::default());
        assert_eq!(
            p.actions,
            vec![NetworkAction::CreateSubnet {
                source: "subnet-p3".into(),
                vpc: "vpc-p1".into(),
                cidr: "10.1.5.0/24".into(),
                dr_az: "us-west-2a".into(),
                name: None,
            }]
        );
    }

    #[test]
    fn deleted_primary_subnet_is_an_orphan() {
        let mut prim = primary();
        prim.subnets.retain(|s| s.id != "subnet-p2");
        let p = plan(&prim, &converged(), &azs(), &MirrorScope::default());
        assert!(p.actions.is_empty());
        assert_eq!(
            p.orphans,
            vec![Orphan {
                kind: NetworkKind::Subnet,
                source: "subnet-p2".into(),
                dr_id: "subnet-d2".into()
            }]
        );
    }

    #[test]
    fn rule_changes_are_diffed_with_group_references_remapped() {
        let mut prim = primary();
        let db = prim
            .security_groups
            .iter_mut()
            .find(|g| g.id == "sg-db")
            .unwrap();
        db.ingress
            .insert(perm("tcp", 6432, Peer::Group("sg-web".into())));
        db.ingress
            .remove(&perm("tcp", 5432, Peer::Group("sg-web".into())));
        let p = plan(&prim, &converged(), &azs(), &MirrorScope::default());
        assert_eq!(
            p.actions,
            vec![
                NetworkAction::AuthorizeIngress {
                    group: "sg-db".into(),
                    permissions: vec![perm("tcp", 6432, Peer::Group("sg-web".into()))],
                },
                NetworkAction::RevokeIngress {
                    group: "sg-db".into(),
                    permissions: vec![perm("tcp", 5432, Peer::Group("sg-dweb".into()))],
                },
            ]
        );
    }

    #[test]
    fn tag_scope_limits_the_vpcs() {
        let scope = MirrorScope {
            include_default_vpc: true,
            vpc_tag: Some(("dr".into(), "yes".into())),
        };
        let p = plan(&primary(), &NetworkSnapshot::default(), &azs(), &scope);
        assert!(p.actions.is_empty());
    }

    #[test]
    fn nat_routes_are_recorded_not_mirrored() {
        let mut prim = primary();
        prim.route_tables.push(RouteTable {
            id: "rtb-p".into(),
            vpc_id: "vpc-p1".into(),
            main: false,
            subnet_ids: BTreeSet::new(),
            routes: BTreeSet::from([Route {
                destination_cidr: "0.0.0.0/0".into(),
                target: RouteTarget::NatGateway("nat-1".into()),
            }]),
            tags: BTreeMap::new(),
        });
        let p = plan(&prim, &converged(), &azs(), &MirrorScope::default());
        assert_eq!(p.unmirrored.len(), 1);
        assert_eq!(p.unmirrored[0].target, "nat-gateway:nat-1");
    }
}
