//! Route 53, read-only: [`PrimaryRoute53`] lists the hosted zones and records the restore's DNS
//! cutover (SPEC D7) starts from. Route 53 is a global service, so one handle serves every
//! region; its calls draw from the account-wide Route 53 buckets.
//!
//! The SDK client is private and only list/get calls exist on the handle, so capturing DNS
//! cannot change a record.

use pilotlight_core::aws_limits::Service;

use crate::call::AwsCtx;
use crate::ops::{handle_ctor, sdk_ops};

/// Largest `MaxItems` of `ListHostedZones`.
pub const ZONES_PAGE: i32 = 100;
/// Largest `MaxItems` of `ListResourceRecordSets`.
pub const RECORDS_PAGE: i32 = 300;

/// Read-only Route 53.
#[derive(Debug, Clone)]
pub struct PrimaryRoute53 {
    client: aws_sdk_route53::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryRoute53, aws_sdk_route53);

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
