//! EC2 in two faces.
//!
//! [`PrimaryEc2`] wraps the primary region's client and exposes **only** describe calls: the
//! SDK client is private and there is no method that mutates, so "pilotlight never mutates the
//! primary region" is a property of the types, not of discipline. [`DrEc2`] wraps the DR
//! region's client and adds the mutations the reconcilers and the restore need. Deletions take
//! an [`Owned`] id, which can only be made from a resource carrying `pilotlight:managed=true`.
//! [`DrEc2::running_by_tag`] is readiness's lookup of the always-on services (SPEC R10).
//!
//! Every method takes a closure that fills in the request builder, and runs the call through
//! [`AwsCtx::call`] (throttle, span, metrics, error classification).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Tag};
use pilotlight_core::aws_limits::{CallShape, Service};

use crate::call::AwsCtx;
use crate::error::AwsError;
use crate::ops::{handle_ctor, sdk_ops};

/// The describe calls both faces share: the only calls the primary face has.
macro_rules! describe_ops {
    () => {
        sdk_ops! {
            aws_sdk_ec2, Service::Ec2;
            describe_availability_zones => describe_availability_zones::DescribeAvailabilityZonesFluentBuilder -> DescribeAvailabilityZonesOutput, "DescribeAvailabilityZones";
            describe_vpcs => describe_vpcs::DescribeVpcsFluentBuilder -> DescribeVpcsOutput, "DescribeVpcs";
            describe_subnets => describe_subnets::DescribeSubnetsFluentBuilder -> DescribeSubnetsOutput, "DescribeSubnets";
            describe_security_groups => describe_security_groups::DescribeSecurityGroupsFluentBuilder -> DescribeSecurityGroupsOutput, "DescribeSecurityGroups";
            describe_route_tables => describe_route_tables::DescribeRouteTablesFluentBuilder -> DescribeRouteTablesOutput, "DescribeRouteTables";
            describe_internet_gateways => describe_internet_gateways::DescribeInternetGatewaysFluentBuilder -> DescribeInternetGatewaysOutput, "DescribeInternetGateways";
            describe_snapshots => describe_snapshots::DescribeSnapshotsFluentBuilder -> DescribeSnapshotsOutput, "DescribeSnapshots";
            describe_volumes => describe_volumes::DescribeVolumesFluentBuilder -> DescribeVolumesOutput, "DescribeVolumes";
            describe_images => describe_images::DescribeImagesFluentBuilder -> DescribeImagesOutput, "DescribeImages";
            describe_instances => describe_instances::DescribeInstancesFluentBuilder -> DescribeInstancesOutput, "DescribeInstances";
            describe_instance_types => describe_instance_types::DescribeInstanceTypesFluentBuilder -> DescribeInstanceTypesOutput, "DescribeInstanceTypes";
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

handle_ctor!(PrimaryEc2, aws_sdk_ec2, Ec2);

impl PrimaryEc2 {
    describe_ops!();
}

handle_ctor!(DrEc2, aws_sdk_ec2, Ec2);

impl DrEc2 {
    describe_ops!();

    sdk_ops! {
        aws_sdk_ec2, Service::Ec2;
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
        /// Restore (D3): a data volume from its DR snapshot, tagged at creation.
        create_volume => create_volume::CreateVolumeFluentBuilder -> CreateVolumeOutput, "CreateVolume";
        /// Restore (D3): a restored volume onto its restored instance.
        attach_volume => attach_volume::AttachVolumeFluentBuilder -> AttachVolumeOutput, "AttachVolume";
        /// The `healthy` tier gate (D3): instance and system status checks.
        describe_instance_status => describe_instance_status::DescribeInstanceStatusFluentBuilder -> DescribeInstanceStatusOutput, "DescribeInstanceStatus";
        /// Plan B (D4): which AZs offer an instance type.
        describe_instance_type_offerings => describe_instance_type_offerings::DescribeInstanceTypeOfferingsFluentBuilder -> DescribeInstanceTypeOfferingsOutput, "DescribeInstanceTypeOfferings";
    }

    /// Restore (D3): one `RunInstances` launching `max_count` instances. It pays the request
    /// bucket once and the resource bucket once per instance, as AWS charges it. Callers pass a
    /// `ClientToken` derived from the run and the launch, so the SDK's retries and a resumed run
    /// get the same instances back instead of new ones.
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn run_instances(
        &self,
        max_count: u32,
        build: impl FnOnce(
            aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder,
        )
            -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder,
    ) -> Result<aws_sdk_ec2::operation::run_instances::RunInstancesOutput, AwsError> {
        let request = build(self.client.run_instances());
        self.ctx
            .call(
                Service::Ec2,
                &self.region,
                "RunInstances",
                CallShape {
                    units: max_count.max(1),
                    unfiltered_unpaginated: false,
                },
                || request.send(),
            )
            .await
    }

    sdk_ops! {
        once aws_sdk_ec2, Service::Ec2;
        /// `CopyImage`, sent exactly once. AWS makes it idempotent with a `ClientToken`, but the
        /// lab (moto behind the proxy) ignores the token, so an SDK retry after a lost response
        /// would make a second copy there; callers pass a deterministic `ClientToken` and `Name`
        /// and resolve an unknown outcome by looking the copy up (by tag or by its name).
        copy_image => copy_image::CopyImageFluentBuilder -> CopyImageOutput, "CopyImage";
        /// `CopySnapshot`, sent exactly once. It has no idempotency token, so an SDK retry after
        /// a lost response could make a second copy; callers journal the request and resolve an
        /// unknown outcome by looking the copy up by its `pilotlight:source` tag.
        copy_snapshot => copy_snapshot::CopySnapshotFluentBuilder -> CopySnapshotOutput, "CopySnapshot";
    }

    /// The running instances carrying the tag `tag_key`, by the tag's value: a paginated
    /// `DescribeInstances` filtered by `tag-key` and `instance-state-name=running` (one call
    /// per 1,000 reservations). Values map to their instance ids, sorted.
    ///
    /// # Errors
    /// The first failed call's classified [`AwsError`].
    pub async fn running_by_tag(
        &self,
        tag_key: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, AwsError> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .describe_instances(|b| {
                    b.filters(Filter::builder().name("tag-key").values(tag_key).build())
                        .filters(
                            Filter::builder()
                                .name("instance-state-name")
                                .values("running")
                                .build(),
                        )
                        .max_results(1000)
                        .set_next_token(token.clone())
                })
                .await?;
            for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                let value = instance
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(tag_key))
                    .and_then(|t| t.value());
                if let (Some(value), Some(id)) = (value, instance.instance_id()) {
                    out.entry(value.to_owned()).or_default().push(id.to_owned());
                }
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        for ids in out.values_mut() {
            ids.sort();
            ids.dedup();
        }
        Ok(out)
    }

    /// Deletes a subnet pilotlight owns.
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_subnet(&self, subnet: &Owned) -> Result<(), AwsError> {
        let request = self.client.delete_subnet().subnet_id(subnet.id());
        self.ctx
            .owned_call(Service::Ec2, &self.region, "DeleteSubnet", || {
                request.send()
            })
            .await
    }

    /// Deletes a snapshot pilotlight owns (a DR copy past retention).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_snapshot(&self, snapshot: &Owned) -> Result<(), AwsError> {
        let request = self.client.delete_snapshot().snapshot_id(snapshot.id());
        self.ctx
            .owned_call(Service::Ec2, &self.region, "DeleteSnapshot", || {
                request.send()
            })
            .await
    }

    /// Terminates instances pilotlight owns (a drill's teardown, D12): one call for up to
    /// 1,000 ids. Terminating an instance that is already terminated changes nothing.
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn terminate_instances(&self, instances: &[Owned]) -> Result<(), AwsError> {
        let request = self
            .client
            .terminate_instances()
            .set_instance_ids(Some(instances.iter().map(|i| i.id().to_owned()).collect()));
        self.ctx
            .owned_call(Service::Ec2, &self.region, "TerminateInstances", || {
                request.send()
            })
            .await
    }

    /// Deletes a volume pilotlight owns (a drill's teardown, D12). The volume must be
    /// `available` (detached).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn delete_volume(&self, volume: &Owned) -> Result<(), AwsError> {
        let request = self.client.delete_volume().volume_id(volume.id());
        self.ctx
            .owned_call(Service::Ec2, &self.region, "DeleteVolume", || {
                request.send()
            })
            .await
    }

    /// Deregisters an AMI pilotlight owns (a DR copy past retention).
    ///
    /// # Errors
    /// The call's classified [`AwsError`].
    pub async fn deregister_image(&self, image: &Owned) -> Result<(), AwsError> {
        let request = self.client.deregister_image().image_id(image.id());
        self.ctx
            .owned_call(Service::Ec2, &self.region, "DeregisterImage", || {
                request.send()
            })
            .await
    }
}

pub use crate::tags::Owned;

/// The id as [`Owned`] if and only if its EC2 `tags` mark it as pilotlight's.
pub fn owned(id: &str, tags: &[Tag]) -> Option<Owned> {
    Owned::from_pairs(
        id,
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_requires_the_managed_tag() {
        let managed = [Tag::builder()
            .key(crate::tags::MANAGED)
            .value("true")
            .build()];
        let other = [Tag::builder().key("Name").value("x").build()];
        assert!(owned("subnet-1", &managed).is_some());
        assert!(owned("subnet-1", &other).is_none());
        assert!(owned("subnet-1", &[]).is_none());
    }
}
