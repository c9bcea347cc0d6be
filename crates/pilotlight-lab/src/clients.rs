//! One SDK client per service for a region, built from one `SdkConfig`: what the seeder, the
//! S3 replicator and the tests use to talk to the lab (S3 addressed by path, as the lab needs).

use aws_types::SdkConfig;

/// Every service client the lab uses, for one region.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// The region the clients sign for.
    pub region: String,
    pub ec2: aws_sdk_ec2::Client,
    pub rds: aws_sdk_rds::Client,
    /// Path-style addressing (`http://host/bucket`).
    pub s3: aws_sdk_s3::Client,
    /// Classic load balancing.
    pub elb: aws_sdk_elasticloadbalancing::Client,
    /// Application and network load balancing.
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub route53: aws_sdk_route53::Client,
    pub acm: aws_sdk_acm::Client,
    /// Speaks RPC v2 CBOR; the realism proxy translates it for moto.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl AwsClients {
    /// Clients for `config`'s region.
    pub fn new(config: &SdkConfig) -> AwsClients {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build();
        AwsClients {
            region: config.region().map(ToString::to_string).unwrap_or_default(),
            ec2: aws_sdk_ec2::Client::new(config),
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            elb: aws_sdk_elasticloadbalancing::Client::new(config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(config),
            route53: aws_sdk_route53::Client::new(config),
            acm: aws_sdk_acm::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
        }
    }

    /// Clients for `region` through the lab endpoint `endpoint` (static test credentials, no
    /// retries).
    pub async fn for_endpoint(endpoint: &str, region: &str) -> AwsClients {
        AwsClients::new(&pilotlight_aws::sdk::static_sdk_config(endpoint, region).await)
    }
}
