//! Carries out a [`NetworkPlan`]'s actions in the DR region, in order.
//!
//! Every create tags the new resource at creation (`TagSpecifications`), so a resource exists
//! with its `pilotlight:source` tag or not at all: the next cycle's discovery finds it either
//! way and never creates it twice. Each create's mapping is written to the store right after
//! the call returns, so a shutdown between two actions loses nothing. Actions name resources by
//! primary id; [`Applier`] resolves them through the [`IdMap`], which grows as creates succeed.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType,
    Tag, TagSpecification, UserIdGroupPair,
};
use pilotlight_aws::ec2::DrEc2;
use pilotlight_aws::{ErrorKind, tags};
use pilotlight_core::network::{
    IdMap, NetworkAction, NetworkKind, Peer, Permission, RouteTarget, to_dr_permission,
};
use pilotlight_store::{MappingStatus, Store};
use tokio_util::sync::CancellationToken;

use super::Regions;
use crate::ReconcileError;

/// Applies actions and records mappings.
pub(crate) struct Applier<'a> {
    pub dr: &'a DrEc2,
    pub store: &'a Store,
    pub primary_region: &'a str,
    pub ids: IdMap,
    /// Mutating calls made (for the report).
    pub mutations: u64,
}

impl Applier<'_> {
    /// Applies `actions` in order, stopping at the first failure or when `cancel` fires.
    ///
    /// # Errors
    /// The first failed call, or [`ReconcileError::Cancelled`].
    pub async fn apply(
        &mut self,
        actions: &[NetworkAction],
        cancel: &CancellationToken,
        applied: &mut Vec<NetworkAction>,
    ) -> Result<(), ReconcileError> {
        for action in actions {
            if cancel.is_cancelled() {
                return Err(ReconcileError::Cancelled);
            }
            if self.one(action).await? {
                applied.push(action.clone());
            }
        }
        Ok(())
    }

    fn resolve(&self, kind: NetworkKind, primary: &str) -> Result<String, ReconcileError> {
        self.ids
            .get(kind, primary)
            .map(str::to_owned)
            .ok_or_else(|| ReconcileError::Unexpected {
                operation: "resolve",
                detail: format!("no DR {} for primary {primary}", kind.as_str()),
            })
    }

    async fn record(
        &mut self,
        kind: NetworkKind,
        source: &str,
        dr_id: &str,
        fingerprint: String,
    ) -> Result<(), ReconcileError> {
        self.ids.insert(kind, source, dr_id);
        let row = Regions {
            primary: self.primary_region,
            dr: self.dr.region(),
        }
        .mapping(kind, source, dr_id, fingerprint, MappingStatus::Active);
        self.store.upsert_mapping(&row, crate::now_ms()).await?;
        Ok(())
    }

    /// Tags an implicitly created DR resource as the mirror of `source`, and records it.
    async fn adopt(
        &mut self,
        kind: NetworkKind,
        source: &str,
        dr_id: &str,
    ) -> Result<(), ReconcileError> {
        self.dr
            .create_tags(|b| {
                b.resources(dr_id)
                    .tags(tag(tags::MANAGED, "true"))
                    .tags(tag(tags::SOURCE, source))
            })
            .await?;
        self.record(kind, source, dr_id, "adopted".into()).await
    }

    /// Applies one action; returns whether it changed anything.
    async fn one(&mut self, action: &NetworkAction) -> Result<bool, ReconcileError> {
        self.mutations += 1;
        match action {
            NetworkAction::CreateVpc { source, cidr, name } => {
                let out = self
                    .dr
                    .create_vpc(|b| {
                        b.cidr_block(cidr).tag_specifications(spec(
                            ResourceType::Vpc,
                            source,
                            name.as_deref(),
                        ))
                    })
                    .await?;
                let id = out
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .ok_or_else(|| missing("CreateVpc", "vpc id"))?
                    .to_owned();
                self.record(NetworkKind::Vpc, source, &id, cidr.clone())
                    .await?;
            }
            NetworkAction::AssociateVpcCidr { vpc, cidr } => {
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let result = self
                    .dr
                    .associate_vpc_cidr_block(|b| b.vpc_id(&vpc_id).cidr_block(cidr))
                    .await;
                tolerate_exists(result)?;
            }
            NetworkAction::CreateSubnet {
                source,
                vpc,
                cidr,
                dr_az,
                name,
            } => {
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let out = self
                    .dr
                    .create_subnet(|b| {
                        b.vpc_id(&vpc_id)
                            .cidr_block(cidr)
                            .availability_zone(dr_az)
                            .tag_specifications(spec(ResourceType::Subnet, source, name.as_deref()))
                    })
                    .await?;
                let id = out
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .ok_or_else(|| missing("CreateSubnet", "subnet id"))?
                    .to_owned();
                self.record(NetworkKind::Subnet, source, &id, format!("{cidr}@{dr_az}"))
                    .await?;
            }
            NetworkAction::SetSubnetPublicIp {
                subnet,
                map_public_ip_on_launch,
            } => {
                let id = self.resolve(NetworkKind::Subnet, subnet)?;
                self.dr
                    .modify_subnet_attribute(|b| {
                        b.subnet_id(&id).map_public_ip_on_launch(
                            AttributeBooleanValue::builder()
                                .value(*map_public_ip_on_launch)
                                .build(),
                        )
                    })
                    .await?;
            }
            NetworkAction::CreateSecurityGroup {
                source,
                vpc,
                group_name,
                description,
            } => {
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let out = self
                    .dr
                    .create_security_group(|b| {
                        b.vpc_id(&vpc_id)
                            .group_name(group_name)
                            .description(description)
                            .tag_specifications(spec(
                                ResourceType::SecurityGroup,
                                source,
                                Some(group_name),
                            ))
                    })
                    .await?;
                let id = out
                    .group_id()
                    .ok_or_else(|| missing("CreateSecurityGroup", "group id"))?
                    .to_owned();
                self.record(NetworkKind::SecurityGroup, source, &id, group_name.clone())
                    .await?;
            }
            NetworkAction::Adopt {
                kind,
                source,
                dr_id,
            } => self.adopt(*kind, source, dr_id).await?,
            NetworkAction::AdoptDefaultSecurityGroup { source, vpc } => {
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let out = self
                    .dr
                    .describe_security_groups(|b| {
                        b.filters(filter("vpc-id", &vpc_id))
                            .filters(filter("group-name", "default"))
                    })
                    .await?;
                let dr_id = out
                    .security_groups()
                    .iter()
                    .find_map(|g| g.group_id())
                    .ok_or_else(|| {
                        missing("DescribeSecurityGroups", "default group of the new VPC")
                    })?
                    .to_owned();
                self.adopt(NetworkKind::SecurityGroup, source, &dr_id)
                    .await?;
            }
            NetworkAction::AdoptMainRouteTable { source, vpc } => {
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let out = self
                    .dr
                    .describe_route_tables(|b| b.filters(filter("vpc-id", &vpc_id)))
                    .await?;
                let dr_id = out
                    .route_tables()
                    .iter()
                    .find(|t| t.associations().iter().any(|a| a.main().unwrap_or(false)))
                    .and_then(|t| t.route_table_id())
                    .ok_or_else(|| {
                        missing("DescribeRouteTables", "main route table of the new VPC")
                    })?
                    .to_owned();
                self.adopt(NetworkKind::RouteTable, source, &dr_id).await?;
            }
            NetworkAction::AuthorizeIngress { group, permissions }
            | NetworkAction::AuthorizeEgress { group, permissions } => {
                let id = self.resolve(NetworkKind::SecurityGroup, group)?;
                let perms: Vec<IpPermission> = permissions
                    .iter()
                    .filter_map(|p| {
                        let dr = to_dr_permission(p, &self.ids);
                        if dr.is_none() {
                            tracing::info!(
                                group,
                                ?p,
                                "rule references an unmirrored group; retried next cycle"
                            );
                        }
                        dr
                    })
                    .map(|p| ip_permission(&p))
                    .collect();
                if perms.is_empty() {
                    return Ok(false);
                }
                let result = if matches!(action, NetworkAction::AuthorizeIngress { .. }) {
                    self.dr
                        .authorize_security_group_ingress(|b| {
                            b.group_id(&id).set_ip_permissions(Some(perms))
                        })
                        .await
                        .map(|_| ())
                } else {
                    self.dr
                        .authorize_security_group_egress(|b| {
                            b.group_id(&id).set_ip_permissions(Some(perms))
                        })
                        .await
                        .map(|_| ())
                };
                tolerate_exists(result)?;
            }
            NetworkAction::RevokeIngress { group, permissions }
            | NetworkAction::RevokeEgress { group, permissions } => {
                let id = self.resolve(NetworkKind::SecurityGroup, group)?;
                let perms: Vec<IpPermission> = permissions.iter().map(ip_permission).collect();
                let result = if matches!(action, NetworkAction::RevokeIngress { .. }) {
                    self.dr
                        .revoke_security_group_ingress(|b| {
                            b.group_id(&id).set_ip_permissions(Some(perms))
                        })
                        .await
                        .map(|_| ())
                } else {
                    self.dr
                        .revoke_security_group_egress(|b| {
                            b.group_id(&id).set_ip_permissions(Some(perms))
                        })
                        .await
                        .map(|_| ())
                };
                match result {
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    other => other?,
                }
            }
            NetworkAction::CreateInternetGateway { source, vpc } => {
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let out = self
                    .dr
                    .create_internet_gateway(|b| {
                        b.tag_specifications(spec(ResourceType::InternetGateway, source, None))
                    })
                    .await?;
                let id = out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .ok_or_else(|| missing("CreateInternetGateway", "gateway id"))?
                    .to_owned();
                self.record(NetworkKind::InternetGateway, source, &id, vpc.clone())
                    .await?;
                self.mutations += 1;
                self.dr
                    .attach_internet_gateway(|b| b.internet_gateway_id(&id).vpc_id(&vpc_id))
                    .await?;
            }
            NetworkAction::AttachInternetGateway { gateway, vpc } => {
                let id = self.resolve(NetworkKind::InternetGateway, gateway)?;
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let result = self
                    .dr
                    .attach_internet_gateway(|b| b.internet_gateway_id(&id).vpc_id(&vpc_id))
                    .await;
                tolerate_exists(result.map(|_| ()))?;
            }
            NetworkAction::CreateRouteTable { source, vpc, name } => {
                let vpc_id = self.resolve(NetworkKind::Vpc, vpc)?;
                let out = self
                    .dr
                    .create_route_table(|b| {
                        b.vpc_id(&vpc_id).tag_specifications(spec(
                            ResourceType::RouteTable,
                            source,
                            name.as_deref(),
                        ))
                    })
                    .await?;
                let id = out
                    .route_table()
                    .and_then(|r| r.route_table_id())
                    .ok_or_else(|| missing("CreateRouteTable", "route table id"))?
                    .to_owned();
                self.record(NetworkKind::RouteTable, source, &id, vpc.clone())
                    .await?;
            }
            NetworkAction::CreateRoute {
                route_table,
                destination_cidr,
                target,
            } => {
                let rt = self.resolve(NetworkKind::RouteTable, route_table)?;
                let RouteTarget::InternetGateway(igw) = target else {
                    return Ok(false);
                };
                let gw = self.resolve(NetworkKind::InternetGateway, igw)?;
                let result = self
                    .dr
                    .create_route(|b| {
                        b.route_table_id(&rt)
                            .destination_cidr_block(destination_cidr)
                            .gateway_id(&gw)
                    })
                    .await;
                tolerate_exists(result.map(|_| ()))?;
            }
            NetworkAction::AssociateRouteTable {
                route_table,
                subnet,
            } => {
                let rt = self.resolve(NetworkKind::RouteTable, route_table)?;
                let subnet_id = self.resolve(NetworkKind::Subnet, subnet)?;
                let result = self
                    .dr
                    .associate_route_table(|b| b.route_table_id(&rt).subnet_id(&subnet_id))
                    .await;
                tolerate_exists(result.map(|_| ()))?;
            }
        }
        Ok(true)
    }
}

fn tolerate_exists<T>(result: Result<T, pilotlight_aws::AwsError>) -> Result<(), ReconcileError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn missing(operation: &'static str, what: &str) -> ReconcileError {
    ReconcileError::Unexpected {
        operation,
        detail: format!("response has no {what}"),
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The ownership tags every created resource carries, plus its Name.
fn spec(kind: ResourceType, source: &str, name: Option<&str>) -> TagSpecification {
    let mut b = TagSpecification::builder()
        .resource_type(kind)
        .tags(tag(tags::MANAGED, "true"))
        .tags(tag(tags::SOURCE, source));
    if let Some(name) = name {
        b = b.tags(tag("Name", name));
    }
    b.build()
}

fn ip_permission(p: &Permission) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&p.protocol);
    if p.protocol != "-1" {
        b = b.set_from_port(p.from_port).set_to_port(p.to_port);
    }
    match &p.peer {
        Peer::Cidr(c) => b = b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        Peer::CidrV6(c) => b = b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build()),
        Peer::Group(g) => b = b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
        Peer::PrefixList(id) => {
            b = b.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build())
        }
    }
    b.build()
}
