//! EC2 in two faces.
//!
//! [`PrimaryEc2`] wraps the primary region's client and exposes **only** describe calls: the
//! SDK client is private and there is no method that mutates, so "pilotlight never mutates the
//! primary region" is a property of the types, not of discipline. [`DrEc2`] wraps the DR
//! region's client and adds the mutations the reconcilers and the restore need. Deletions take
//! an [`Owned`] id, which can only be made from a resource carrying `pilotlight:managed=true`.
//!
//! Every method takes a closure that fills in the request builder, and runs the call through
//! [`AwsCtx::call`] (throttle, span, metrics, error classification).

use aws_sdk_ec2::types::Tag;
use pilotlight_core::aws_limits::{CallShape, Service};

use crate::call::AwsCtx;
use crate::error::AwsError;
use crate::tags;

macro_rules! ec2_ops {
    ($( $(#[$doc:meta])* $method:ident => $module:ident :: $builder:ident -> $output:ident, $op:literal; )*) => {
        $(
            $(#[$doc])*
            ///
            /// # Errors
            /// The call's classified [`AwsError`].
            pub async fn $method(
                &self,
                build: impl FnOnce(aws_sdk_ec2::operation::$module::builders::$builder)
                    -> aws_sdk_ec2::operation::$module::builders::$builder,
            ) -> Result<aws_sdk_ec2::operation::$module::$output, AwsError> {
                let request = build(self.client.$method());
                self.ctx
                    .call(Service::Ec2, &self.region, $op, CallShape::default(), || request.send())
                    .await
            }
        )*
    };
}

/// The describe calls both faces share: the only calls the primary face has.
macro_rules! describe_ops {
    () => {
        ec2_ops! {
            describe_availability_zones => describe_availability_zones::DescribeAvailabilityZonesFluentBuilder -> DescribeAvailabilityZonesOutput, "DescribeAvailabilityZones";
            describe_vpcs => describe_vpcs::DescribeVpcsFluentBuilder -> DescribeVpcsOutput, "DescribeVpcs";
            describe_subnets => describe_subnets::DescribeSubnetsFluentBuilder -> DescribeSubnetsOutput, "DescribeSubnets";
            describe_security_groups => describe_security_groups::DescribeSecurityGroupsFluentBuilder -> DescribeSecurityGroupsOutput, "DescribeSecurityGroups";
            describe_route_tables => describe_route_tables::DescribeRouteTablesFluentBuilder -> DescribeRouteTablesOutput, "DescribeRouteTables";
            describe_internet_gateways => describe_internet_gateways::DescribeInternetGatewaysFluentBuilder -> DescribeInternetGatewaysOutput, "DescribeInternetGateways";
        }
    };
}

/// Builds a handle from the region's SDK config.
macro_rules! handle_ctor {
    ($ty:ident) => {
        impl $ty {
            pub fn new(config: &aws_types::SdkConfig, ctx: AwsCtx) -> $ty {
                $ty {
                    client: aws_sdk_ec2::Client::new(config),
                    region: config
                        .region()
                        .map(|r| r.as_ref().to_owned())
                        .unwrap_or_default(),
                    ctx,
                }
            }

            pub fn region(&self) -> &str {
                &self.region
            }
        }
    };
}

/// Read-only EC2 in the primary region.
#[derive(Debug, Clone)]
pub struct PrimaryEc2 {
    client: aws_sdk_ec2::Client,
    region: String,
    ctx: AwsCtx,
}

/// Read-write EC2 in the DR region.
#[derive(Debug, Clone)]
pub struct DrEc2 {
    client: aws_sdk_ec2::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryEc2);

impl PrimaryEc2 {
    describe_ops!();
}

handle_ctor!(DrEc2);

impl DrEc2 {
    describe_ops!();

    ec2_ops! {
        create_vpc => create_vpc::CreateVpcFluentBuilder -> CreateVpcOutput, "CreateVpc";
        associate_vpc_cidr_block => associate_vpc_cidr_block::AssociateVpcCidrBlockFluentBuilder -> AssociateVpcCidrBlockOutput, "AssociateVpcCidrBlock";
        create_subnet => create_subnet::CreateSubnetFluentBuilder -> CreateSubnetOutput, "CreateSubnet";
        modify_subnet_attribute => modify_subnet_attribute::ModifySubnetAttributeFluentBuilder -> ModifySubnetAttributeOutput, "ModifySubnetAttribute";
        create_security_group => create_security_group::CreateSecurityGroupFluentBuilder -> CreateSecurityGroupOutput, "CreateSecurityGroup";
        authorize_security_group_ingress => authorize_security_group_ingress::AuthorizeSecurityGroupIngressFluentBuilder -> AuthorizeSecurityGroupIngressOutput, "AuthorizeSecurityGroupIngress";
        authorize_security_group_egress => authorize_security_group_egress::AuthorizeSecurityGroupEgressFluentBuilder -> AuthorizeSecurityGroupEgressOutput, "AuthorizeSecurityGroupEgress";
        revoke_security_group_ingress => revoke_security_group_ingress::RevokeSecurityGroupIngressFluentBuilder -> RevokeSecurityGroupIngressOutput, "RevokeSecurityGroupIngress";
        revoke_security_group_egress => revoke_security_group_egress::RevokeSecurityGroupEgressFluentBuilder -> RevokeSecurityGroupEgressOutput, "RevokeSecurityGroupEgress";
        create_internet_gateway => create_internet_gateway::CreateInternetGatewayFluentBuilder -> CreateInternetGatewayOutput, "CreateInternetGateway";
        attach_internet_gateway => attach_internet_gateway::AttachInternetGatewayFluentBuilder -> AttachInternetGatewayOutput, "AttachInternetGateway";
        create_route_table => create_route_table::CreateRouteTableFluentBuilder -> CreateRouteTableOutput, "CreateRouteTable";
        create_route => create_route::CreateRouteFluentBuilder -> CreateRouteOutput, "CreateRoute";
        associate_route_table => associate_route_table::AssociateRouteTableFluentBuilder -> AssociateRouteTableOutput, "AssociateRouteTable";
        create_tags => create_tags::CreateTagsFluentBuilder -> CreateTagsOutput, "CreateTags";
    }

    /// Deletes a subnet pilotlight owns.
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_subnet(&self, subnet: &Owned) -> Result<(), AwsError> {
        let request = self.client.delete_subnet().subnet_id(&subnet.id);
        self.ctx
            .call(
                Service::Ec2,
                &self.region,
                "DeleteSubnet",
                CallShape::default(),
                || request.send(),
            )
            .await
            .map(|_| ())
    }
}

/// The id of a DR resource proven to carry `pilotlight:managed=true`: the only kind of id the
/// delete methods accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    id: String,
}

impl Owned {
    /// Returns the id as owned if and only if `tags` mark it as pilotlight's.
    pub fn from_tags(id: &str, tags: &[Tag]) -> Option<Owned> {
        Owned::from_pairs(
            id,
            tags.iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
        )
    }

    /// [`Owned::from_tags`] for tags already read into key/value pairs.
    pub fn from_pairs<'a>(
        id: &str,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Owned> {
        tags::is_managed(tags).then(|| Owned { id: id.to_owned() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_requires_the_managed_tag() {
        let managed = [Tag::builder().key(tags::MANAGED).value("true").build()];
        let other = [Tag::builder().key("Name").value("x").build()];
        assert!(Owned::from_tags("subnet-1", &managed).is_some());
        assert!(Owned::from_tags("subnet-1", &other).is_none());
        assert!(Owned::from_tags("subnet-1", &[]).is_none());
    }
}
