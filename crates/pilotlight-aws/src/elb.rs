//! Load balancing in two faces: [`PrimaryElb`] (classic, API 2012-06-01) and [`PrimaryElbv2`]
//! (application/network, API 2015-12-01) read the primary region; [`DrElb`] and [`DrElbv2`]
//! recreate load balancers in the DR region during a restore (SPEC D6).
//!
//! Like [`crate::ec2::PrimaryEc2`], each handle keeps its SDK client private and exposes only
//! describe calls, so the capture of load balancers (SPEC R5) cannot mutate the primary region.
//! Every call runs through [`AwsCtx::call`](crate::AwsCtx::call) and draws from the ELB
//! throttle buckets (the non-mutating category and the account bucket shared by classic and v2).

use pilotlight_core::aws_limits::Service;

use crate::call::AwsCtx;
use crate::ops::{handle_ctor, sdk_ops};
pub use crate::tags::Owned;

/// Most load balancer names per classic `DescribeTags` (AWS's limit).
pub const CLASSIC_TAGS_BATCH: usize = 20;
/// Most resource ARNs per v2 `DescribeTags` (AWS's limit).
pub const V2_TAGS_BATCH: usize = 20;
/// Largest page of the describe calls that page (`PageSize`, AWS's maximum).
pub const PAGE_SIZE: i32 = 400;

/// Read-only classic load balancing in the primary region.
#[derive(Debug, Clone)]
pub struct PrimaryElb {
    client: aws_sdk_elasticloadbalancing::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryElb, aws_sdk_elasticloadbalancing, Elb);

impl PrimaryElb {
    sdk_ops! {
        aws_sdk_elasticloadbalancing, Service::Elb;
        /// Load balancers with listeners, health check and registered instances (`PageSize`
        /// ≤ 400, `Marker`).
        describe_load_balancers => describe_load_balancers::DescribeLoadBalancersFluentBuilder -> DescribeLoadBalancersOutput, "DescribeLoadBalancers";
        /// Tags of at most [`CLASSIC_TAGS_BATCH`] load balancers.
        describe_tags => describe_tags::DescribeTagsFluentBuilder -> DescribeTagsOutput, "DescribeTags";
        /// Attributes (idle timeout, draining, cross-zone, access log) of one load balancer.
        describe_load_balancer_attributes => describe_load_balancer_attributes::DescribeLoadBalancerAttributesFluentBuilder -> DescribeLoadBalancerAttributesOutput, "DescribeLoadBalancerAttributes";
    }
}

/// Read-only application/network load balancing in the primary region.
#[derive(Debug, Clone)]
pub struct PrimaryElbv2 {
    client: aws_sdk_elasticloadbalancingv2::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryElbv2, aws_sdk_elasticloadbalancingv2, Elbv2);

impl PrimaryElbv2 {
    sdk_ops! {
        aws_sdk_elasticloadbalancingv2, Service::Elbv2;
        /// Load balancers (`PageSize` ≤ 400, `Marker`).
        describe_load_balancers => describe_load_balancers::DescribeLoadBalancersFluentBuilder -> DescribeLoadBalancersOutput, "DescribeLoadBalancers";
        /// Listeners of one load balancer, with their default certificate and actions.
        describe_listeners => describe_listeners::DescribeListenersFluentBuilder -> DescribeListenersOutput, "DescribeListeners";
        /// Every certificate of one listener: the default and the SNI certificates, which
        /// `DescribeListeners` does not list.
        describe_listener_certificates => describe_listener_certificates::DescribeListenerCertificatesFluentBuilder -> DescribeListenerCertificatesOutput, "DescribeListenerCertificates";
        /// Target groups of the region with the load balancers they serve (`PageSize` ≤ 400).
        describe_target_groups => describe_target_groups::DescribeTargetGroupsFluentBuilder -> DescribeTargetGroupsOutput, "DescribeTargetGroups";
        /// The registered targets of one target group.
        describe_target_health => describe_target_health::DescribeTargetHealthFluentBuilder -> DescribeTargetHealthOutput, "DescribeTargetHealth";
        /// Tags of at most [`V2_TAGS_BATCH`] resources.
        describe_tags => describe_tags::DescribeTagsFluentBuilder -> DescribeTagsOutput, "DescribeTags";
    }
}

/// Classic load balancing in the DR region: what a restore recreates (D6).
#[derive(Debug, Clone)]
pub struct DrElb {
    client: aws_sdk_elasticloadbalancing::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(DrElb, aws_sdk_elasticloadbalancing, Elb);

impl DrElb {
    sdk_ops! {
        aws_sdk_elasticloadbalancing, Service::Elb;
        describe_load_balancers => describe_load_balancers::DescribeLoadBalancersFluentBuilder -> DescribeLoadBalancersOutput, "DescribeLoadBalancers";
        describe_tags => describe_tags::DescribeTagsFluentBuilder -> DescribeTagsOutput, "DescribeTags";
        /// Creates a load balancer with its listeners and tags. AWS answers a second call with
        /// the same name and configuration with the existing load balancer.
        create_load_balancer => create_load_balancer::CreateLoadBalancerFluentBuilder -> CreateLoadBalancerOutput, "CreateLoadBalancer";
        configure_health_check => configure_health_check::ConfigureHealthCheckFluentBuilder -> ConfigureHealthCheckOutput, "ConfigureHealthCheck";
        modify_load_balancer_attributes => modify_load_balancer_attributes::ModifyLoadBalancerAttributesFluentBuilder -> ModifyLoadBalancerAttributesOutput, "ModifyLoadBalancerAttributes";
        /// Registers restored instances (idempotent: registering a member again changes nothing).
        register_instances_with_load_balancer => register_instances_with_load_balancer::RegisterInstancesWithLoadBalancerFluentBuilder -> RegisterInstancesWithLoadBalancerOutput, "RegisterInstancesWithLoadBalancer";
    }

    /// Deletes a classic load balancer pilotlight owns (a drill's teardown, D12); deleting one
    /// that is gone changes nothing.
    ///
    /// # Errors
    /// The call's classified [`AwsError`](crate::AwsError).
    pub async fn delete_load_balancer(&self, name: &Owned) -> Result<(), crate::AwsError> {
        let request = self
            .client
            .delete_load_balancer()
            .load_balancer_name(name.id());
        self.ctx
            .owned_call(Service::Elb, &self.region, "DeleteLoadBalancer", || {
                request.send()
            })
            .await
    }
}

/// Application/network load balancing in the DR region: what a restore recreates (D6).
#[derive(Debug, Clone)]
pub struct DrElbv2 {
    client: aws_sdk_elasticloadbalancingv2::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(DrElbv2, aws_sdk_elasticloadbalancingv2, Elbv2);

impl DrElbv2 {
    sdk_ops! {
        aws_sdk_elasticloadbalancingv2, Service::Elbv2;
        describe_load_balancers => describe_load_balancers::DescribeLoadBalancersFluentBuilder -> DescribeLoadBalancersOutput, "DescribeLoadBalancers";
        describe_listeners => describe_listeners::DescribeListenersFluentBuilder -> DescribeListenersOutput, "DescribeListeners";
        describe_target_groups => describe_target_groups::DescribeTargetGroupsFluentBuilder -> DescribeTargetGroupsOutput, "DescribeTargetGroups";
        describe_target_health => describe_target_health::DescribeTargetHealthFluentBuilder -> DescribeTargetHealthOutput, "DescribeTargetHealth";
        describe_tags => describe_tags::DescribeTagsFluentBuilder -> DescribeTagsOutput, "DescribeTags";
        /// Creates a load balancer with its tags; the same name and configuration again answers
        /// the existing one.
        create_load_balancer => create_load_balancer::CreateLoadBalancerFluentBuilder -> CreateLoadBalancerOutput, "CreateLoadBalancer";
        /// Creates a target group; the same name and configuration again answers the existing one.
        create_target_group => create_target_group::CreateTargetGroupFluentBuilder -> CreateTargetGroupOutput, "CreateTargetGroup";
        create_listener => create_listener::CreateListenerFluentBuilder -> CreateListenerOutput, "CreateListener";
        /// Adds SNI certificates to a listener (`CreateListener` takes only the default one);
        /// adding a certificate the listener already has changes nothing.
        add_listener_certificates => add_listener_certificates::AddListenerCertificatesFluentBuilder -> AddListenerCertificatesOutput, "AddListenerCertificates";
        /// Registers targets (idempotent).
        register_targets => register_targets::RegisterTargetsFluentBuilder -> RegisterTargetsOutput, "RegisterTargets";
        modify_load_balancer_attributes => modify_load_balancer_attributes::ModifyLoadBalancerAttributesFluentBuilder -> ModifyLoadBalancerAttributesOutput, "ModifyLoadBalancerAttributes";
        add_tags => add_tags::AddTagsFluentBuilder -> AddTagsOutput, "AddTags";
    }

    /// Deletes a load balancer pilotlight owns, with its listeners (a drill's teardown, D12).
    ///
    /// # Errors
    /// The call's classified [`AwsError`](crate::AwsError).
    pub async fn delete_load_balancer(&self, arn: &Owned) -> Result<(), crate::AwsError> {
        let request = self
            .client
            .delete_load_balancer()
            .load_balancer_arn(arn.id());
        self.ctx
            .owned_call(Service::Elbv2, &self.region, "DeleteLoadBalancer", || {
                request.send()
            })
            .await
    }

    /// Deletes a target group pilotlight owns, once no listener uses it (a drill's teardown).
    ///
    /// # Errors
    /// The call's classified [`AwsError`](crate::AwsError).
    pub async fn delete_target_group(&self, arn: &Owned) -> Result<(), crate::AwsError> {
        let request = self.client.delete_target_group().target_group_arn(arn.id());
        self.ctx
            .owned_call(Service::Elbv2, &self.region, "DeleteTargetGroup", || {
                request.send()
            })
            .await
    }
}
