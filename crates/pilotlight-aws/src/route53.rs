//! Route 53 in two faces: [`PrimaryRoute53`] lists the hosted zones and records the restore's
//! DNS cutover (SPEC D7) starts from; [`DrRoute53`] applies the cutover. Route 53 is a global service, so one handle serves every
//! region; its calls draw from the account-wide Route 53 buckets.
//!
//! The SDK client is private and only list/get calls exist on the handle, so capturing DNS
//! cannot change a record.

use pilotlight_core::aws_limits::{CallShape, Service};

use crate::call::AwsCtx;
use crate::ops::{handle_ctor, sdk_ops};

/// Largest `MaxItems` of `ListHostedZones`.
pub const ZONES_PAGE: i32 = 100;
/// Largest `MaxItems` of `ListResourceRecordSets`.
pub const RECORDS_PAGE: i32 = 300;

/// Read-only Route 53 (the primary's view).
#[derive(Debug, Clone)]
pub struct PrimaryRoute53 {
    client: aws_sdk_route53::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryRoute53, aws_sdk_route53, Route53);

impl PrimaryRoute53 {
    sdk_ops! {
        aws_sdk_route53, Service::Route53;
        /// Hosted zones (`MaxItems` ≤ 100, `Marker`).
        list_hosted_zones => list_hosted_zones::ListHostedZonesFluentBuilder -> ListHostedZonesOutput, "ListHostedZones";
        /// One zone with its associated VPCs (private zones).
        get_hosted_zone => get_hosted_zone::GetHostedZoneFluentBuilder -> GetHostedZoneOutput, "GetHostedZone";
        /// Records of one zone (`MaxItems` ≤ 300, paged by next record name/type/identifier).
        list_resource_record_sets => list_resource_record_sets::ListResourceRecordSetsFluentBuilder -> ListResourceRecordSetsOutput, "ListResourceRecordSets";
    }
}

/// Route 53 as the restore uses it: list and change records, wait for changes (D7).
#[derive(Debug, Clone)]
pub struct DrRoute53 {
    client: aws_sdk_route53::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(DrRoute53, aws_sdk_route53, Route53);

impl DrRoute53 {
    sdk_ops! {
        aws_sdk_route53, Service::Route53;
        list_hosted_zones => list_hosted_zones::ListHostedZonesFluentBuilder -> ListHostedZonesOutput, "ListHostedZones";
        get_hosted_zone => get_hosted_zone::GetHostedZoneFluentBuilder -> GetHostedZoneOutput, "GetHostedZone";
        list_resource_record_sets => list_resource_record_sets::ListResourceRecordSetsFluentBuilder -> ListResourceRecordSetsOutput, "ListResourceRecordSets";
        /// Whether a change is `INSYNC` yet.
        get_change => get_change::GetChangeFluentBuilder -> GetChangeOutput, "GetChange";
        /// Makes a private zone answer in the DR VPC.
        associate_vpc_with_hosted_zone => associate_vpc_with_hosted_zone::AssociateVPCWithHostedZoneFluentBuilder -> AssociateVpcWithHostedZoneOutput, "AssociateVPCWithHostedZone";
        /// A drill's private hosted zone (D12). The `CallerReference` is derived from the run,
        /// so AWS refuses a second zone for the same run; the caller looks it up first.
        create_hosted_zone => create_hosted_zone::CreateHostedZoneFluentBuilder -> CreateHostedZoneOutput, "CreateHostedZone";
        /// Tags a drill's hosted zone as pilotlight's and the run's.
        change_tags_for_resource => change_tags_for_resource::ChangeTagsForResourceFluentBuilder -> ChangeTagsForResourceOutput, "ChangeTagsForResource";
        /// Tags of up to 10 hosted zones (what a drill's teardown finds its zone by).
        list_tags_for_resources => list_tags_for_resources::ListTagsForResourcesFluentBuilder -> ListTagsForResourcesOutput, "ListTagsForResources";
    }

    /// Deletes a hosted zone pilotlight owns (a drill's zone, once its records are deleted).
    ///
    /// # Errors
    /// The call's classified [`AwsError`](crate::AwsError).
    pub async fn delete_hosted_zone(
        &self,
        zone: &crate::tags::Owned,
    ) -> Result<(), crate::AwsError> {
        let request = self.client.delete_hosted_zone().id(zone.id());
        self.ctx
            .owned_call(Service::Route53, &self.region, "DeleteHostedZone", || {
                request.send()
            })
            .await
    }

    /// One `ChangeResourceRecordSets` batch, paying `change_tokens` Route 53 change tokens
    /// (1 per CREATE or DELETE, 2 per UPSERT). UPSERTs are idempotent, so a retried or resumed
    /// batch changes nothing the first one did not.
    ///
    /// # Errors
    /// The call's classified [`AwsError`](crate::AwsError).
    pub async fn change_resource_record_sets(
        &self,
        change_tokens: u32,
        build: impl FnOnce(
            aws_sdk_route53::operation::change_resource_record_sets::builders::ChangeResourceRecordSetsFluentBuilder,
        ) -> aws_sdk_route53::operation::change_resource_record_sets::builders::ChangeResourceRecordSetsFluentBuilder,
    ) -> Result<
        aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsOutput,
        crate::AwsError,
    > {
        let request = build(self.client.change_resource_record_sets());
        self.ctx
            .call(
                Service::Route53,
                &self.region,
                "ChangeResourceRecordSets",
                CallShape {
                    units: change_tokens.max(1),
                    unfiltered_unpaginated: false,
                },
                || request.send(),
            )
            .await
    }
}
