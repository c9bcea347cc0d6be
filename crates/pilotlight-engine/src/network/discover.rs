//! Reads a region's network into [`NetworkSnapshot`]: paginated list calls only, never one
//! call per resource, so a quiet cycle costs a handful of calls however large the estate.
//!
//! The primary side reads everything (scope is applied by the planner); the DR side reads only
//! what lives in pilotlight-managed VPCs, plus gateways carrying the managed tag.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, IpPermission, Tag};
use pilotlight_aws::ec2::{DrEc2, PrimaryEc2};
use pilotlight_aws::{AwsError, tags};
use pilotlight_core::network::{
    InternetGateway, NetworkSnapshot, Peer, Permission, Route, RouteTable, RouteTarget,
    SecurityGroup, Subnet, Vpc,
};

/// Page size for list calls (each API's maximum where it is ≥ 100).
const PAGE: i32 = 1000;
const ROUTE_TABLE_PAGE: i32 = 100;

/// One face of EC2 the discovery can read from; both handles implement it.
pub(crate) trait Ec2Reader {
    async fn vpcs(&self, filters: Vec<Filter>) -> Result<Vec<Vpc>, AwsError>;
    async fn subnets(&self, filters: Vec<Filter>) -> Result<Vec<Subnet>, AwsError>;
    async fn security_groups(&self, filters: Vec<Filter>) -> Result<Vec<SecurityGroup>, AwsError>;
    async fn route_tables(&self, filters: Vec<Filter>) -> Result<Vec<RouteTable>, AwsError>;
    async fn internet_gateways(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<InternetGateway>, AwsError>;
    async fn availability_zones(&self) -> Result<Vec<String>, AwsError>;
}

/// One paginated list: follow `NextToken` until the last page, converting every item.
macro_rules! paginate {
    ($ec2:expr, $method:ident, $filters:expr, $page:expr, $items:ident, $convert:expr) => {{
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = $ec2
                .$method(|b| {
                    b.set_filters(non_empty(&$filters))
                        .max_results($page)
                        .set_next_token(token.clone())
                })
                .await?;
            out.extend(page.$items().iter().filter_map($convert));
            token = next(page.next_token());
            if token.is_none() {
                break Ok(out);
            }
        }
    }};
}

macro_rules! impl_reader {
    ($ty:ty) => {
        impl Ec2Reader for $ty {
            async fn vpcs(&self, filters: Vec<Filter>) -> Result<Vec<Vpc>, AwsError> {
                paginate!(self, describe_vpcs, filters, PAGE, vpcs, vpc)
            }

            async fn subnets(&self, filters: Vec<Filter>) -> Result<Vec<Subnet>, AwsError> {
                paginate!(self, describe_subnets, filters, PAGE, subnets, subnet)
            }

            async fn security_groups(
                &self,
                filters: Vec<Filter>,
            ) -> Result<Vec<SecurityGroup>, AwsError> {
                paginate!(
                    self,
                    describe_security_groups,
                    filters,
                    PAGE,
                    security_groups,
                    security_group
                )
            }

            async fn route_tables(
                &self,
                filters: Vec<Filter>,
            ) -> Result<Vec<RouteTable>, AwsError> {
                paginate!(
                    self,
                    describe_route_tables,
                    filters,
                    ROUTE_TABLE_PAGE,
                    route_tables,
                    route_table
                )
            }

            async fn internet_gateways(
                &self,
                filters: Vec<Filter>,
            ) -> Result<Vec<InternetGateway>, AwsError> {
                paginate!(
                    self,
                    describe_internet_gateways,
                    filters,
                    PAGE,
                    internet_gateways,
                    internet_gateway
                )
            }

            async fn availability_zones(&self) -> Result<Vec<String>, AwsError> {
                let out = self.describe_availability_zones(|b| b).await?;
                Ok(out
                    .availability_zones()
                    .iter()
                    .filter_map(|z| z.zone_name().map(str::to_owned))
                    .collect())
            }
        }
    };
}

impl_reader!(PrimaryEc2);
impl_reader!(DrEc2);

/// Reads the whole primary network.
///
/// # Errors
/// The first failed call.
pub(crate) async fn primary(ec2: &PrimaryEc2) -> Result<NetworkSnapshot, AwsError> {
    Ok(NetworkSnapshot {
        vpcs: ec2.vpcs(vec![]).await?,
        subnets: ec2.subnets(vec![]).await?,
        security_groups: ec2.security_groups(vec![]).await?,
        route_tables: ec2.route_tables(vec![]).await?,
        internet_gateways: ec2.internet_gateways(vec![]).await?,
    })
}

/// Reads the DR network pilotlight manages: managed VPCs and what lives in them, and managed
/// internet gateways (found by tag, so one created but not yet attached is still seen).
///
/// # Errors
/// The first failed call.
pub(crate) async fn dr(ec2: &DrEc2) -> Result<NetworkSnapshot, AwsError> {
    let managed = || {
        Filter::builder()
            .name(format!("tag:{}", tags::MANAGED))
            .values("true")
            .build()
    };
    let vpcs = ec2.vpcs(vec![managed()]).await?;
    let internet_gateways = ec2.internet_gateways(vec![managed()]).await?;
    if vpcs.is_empty() {
        return Ok(NetworkSnapshot {
            internet_gateways,
            ..NetworkSnapshot::default()
        });
    }
    let in_vpcs = || {
        Filter::builder()
            .name("vpc-id")
            .set_values(Some(vpcs.iter().map(|v| v.id.clone()).collect()))
            .build()
    };
    Ok(NetworkSnapshot {
        subnets: ec2.subnets(vec![in_vpcs()]).await?,
        security_groups: ec2.security_groups(vec![in_vpcs()]).await?,
        route_tables: ec2.route_tables(vec![in_vpcs()]).await?,
        internet_gateways,
        vpcs,
    })
}

fn non_empty(filters: &[Filter]) -> Option<Vec<Filter>> {
    (!filters.is_empty()).then(|| filters.to_vec())
}

fn next(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn vpc(v: &aws_sdk_ec2::types::Vpc) -> Option<Vpc> {
    let cidr = v.cidr_block()?.to_owned();
    let secondary_cidrs = v
        .cidr_block_association_set()
        .iter()
        .filter(|a| {
            a.cidr_block_state()
                .and_then(|s| s.state())
                .is_none_or(|s| s.as_str() == "associated" || s.as_str() == "associating")
        })
        .filter_map(|a| a.cidr_block())
        .filter(|c| *c != cidr)
        .map(str::to_owned)
        .collect();
    Some(Vpc {
        id: v.vpc_id()?.to_owned(),
        cidr,
        secondary_cidrs,
        is_default: v.is_default().unwrap_or(false),
        tags: tag_map(v.tags()),
    })
}

fn subnet(s: &aws_sdk_ec2::types::Subnet) -> Option<Subnet> {
    Some(Subnet {
        id: s.subnet_id()?.to_owned(),
        vpc_id: s.vpc_id()?.to_owned(),
        cidr: s.cidr_block()?.to_owned(),
        az: s.availability_zone()?.to_owned(),
        map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
        tags: tag_map(s.tags()),
    })
}

/// Splits SDK permissions into atomic [`Permission`]s (one peer each).
pub(crate) fn permissions(perms: &[IpPermission]) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or("-1").to_owned();
        let (from_port, to_port) = if protocol == "-1" {
            (None, None)
        } else {
            (p.from_port(), p.to_port())
        };
        let atom = |peer| Permission {
            protocol: protocol.clone(),
            from_port,
            to_port,
            peer,
        };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.insert(atom(Peer::Cidr(c.to_owned())));
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                out.insert(atom(Peer::CidrV6(c.to_owned())));
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.insert(atom(Peer::Group(id.to_owned())));
            }
        }
        for pl in p.prefix_list_ids() {
            if let Some(id) = pl.prefix_list_id() {
                out.insert(atom(Peer::PrefixList(id.to_owned())));
            }
        }
    }
    out
}

fn security_group(g: &aws_sdk_ec2::types::SecurityGroup) -> Option<SecurityGroup> {
    Some(SecurityGroup {
        id: g.group_id()?.to_owned(),
        vpc_id: g.vpc_id()?.to_owned(),
        name: g.group_name().unwrap_or_default().to_owned(),
        description: g.description().unwrap_or_default().to_owned(),
        ingress: permissions(g.ip_permissions()),
        egress: permissions(g.ip_permissions_egress()),
        tags: tag_map(g.tags()),
    })
}

fn route_table(r: &aws_sdk_ec2::types::RouteTable) -> Option<RouteTable> {
    let main = r.associations().iter().any(|a| a.main().unwrap_or(false));
    let subnet_ids = r
        .associations()
        .iter()
        .filter_map(|a| a.subnet_id().map(str::to_owned))
        .collect();
    let routes = r
        .routes()
        .iter()
        .filter_map(|route| {
            let destination_cidr = route.destination_cidr_block()?.to_owned();
            let target = if let Some(g) = route.gateway_id() {
                if g == "local" {
                    RouteTarget::Local
                } else if g.starts_with("igw-") {
                    RouteTarget::InternetGateway(g.to_owned())
                } else {
                    RouteTarget::Other(g.to_owned())
                }
            } else if let Some(n) = route.nat_gateway_id() {
                RouteTarget::NatGateway(n.to_owned())
            } else {
                let other = route
                    .transit_gateway_id()
                    .or(route.vpc_peering_connection_id())
                    .or(route.network_interface_id())
                    .or(route.instance_id())
                    .unwrap_or("unknown");
                RouteTarget::Other(other.to_owned())
            };
            Some(Route {
                destination_cidr,
                target,
            })
        })
        .collect();
    Some(RouteTable {
        id: r.route_table_id()?.to_owned(),
        vpc_id: r.vpc_id()?.to_owned(),
        main,
        subnet_ids,
        routes,
        tags: tag_map(r.tags()),
    })
}

fn internet_gateway(i: &aws_sdk_ec2::types::InternetGateway) -> Option<InternetGateway> {
    Some(InternetGateway {
        id: i.internet_gateway_id()?.to_owned(),
        vpc_ids: i
            .attachments()
            .iter()
            .filter_map(|a| a.vpc_id().map(str::to_owned))
            .collect(),
        tags: tag_map(i.tags()),
    })
}
