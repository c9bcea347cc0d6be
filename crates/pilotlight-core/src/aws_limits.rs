//! AWS's documented API rate limits, as data.
//!
//! This is the one table of the token buckets AWS documents per account and region (see
//! `shared/AWS-LIMITS.md` for every number's source). Two users read it and neither owns it:
//! the daemon's throttle takes its *defaults* from here (operators may override them in the
//! config), and the lab's realism proxy *enforces* exactly these numbers regardless of the
//! daemon's config, so a misconfigured daemon is caught by the lab rather than hidden by it.
//!
//! A call may draw from several buckets at once (EC2 `RunInstances` charges its request bucket
//! and, per instance, its resource bucket; every ELB call also charges the account-wide ELB
//! bucket; Route 53 charges the account bucket, the action bucket and the change bucket). A call
//! is allowed only when every [`Charge`] it returns can be paid.

use std::fmt;

/// AWS services pilotlight talks to. The names are the closed label set used in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ec2,
    Rds,
    S3,
    Route53,
    /// Classic load balancing (API version 2012-06-01).
    Elb,
    /// Application/network load balancing (API version 2015-12-01).
    Elbv2,
    CloudWatch,
    /// Certificate Manager: listener certificates and their DR counterparts.
    Acm,
}

impl Service {
    /// Every service, in a stable order.
    pub const ALL: [Service; 8] = [
        Service::Ec2,
        Service::Rds,
        Service::S3,
        Service::Route53,
        Service::Elb,
        Service::Elbv2,
        Service::CloudWatch,
        Service::Acm,
    ];

    /// The short lowercase name used in config keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Rds => "rds",
            Service::S3 => "s3",
            Service::Route53 => "route53",
            Service::Elb => "elb",
            Service::Elbv2 => "elbv2",
            Service::CloudWatch => "cloudwatch",
            Service::Acm => "acm",
        }
    }

    /// Parses [`Service::as_str`] names.
    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the service's buckets are global (per account) rather than per region.
    pub fn is_global(self) -> bool {
        matches!(self, Service::Route53)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token bucket: `capacity` tokens when full, refilled at `refill_per_sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub capacity: f64,
    pub refill_per_sec: f64,
}

impl Bucket {
    const fn new(capacity: f64, refill_per_sec: f64) -> Bucket {
        Bucket {
            capacity,
            refill_per_sec,
        }
    }

    /// Seconds needed to push `tokens` through this bucket starting full:
    /// `max(0, (tokens - capacity) / refill)`.
    pub fn drain_secs(&self, tokens: f64) -> f64 {
        ((tokens - self.capacity) / self.refill_per_sec).max(0.0)
    }
}

/// One payment a call owes one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// The bucket's identity within a region (or the account, for global services), e.g.
    /// `ec2:RunInstances`, `ec2:RunInstances#resource`, `elbv2:category:registration`,
    /// `elbv2:account`, `route53:changes`.
    pub key: String,
    /// The bucket's documented size.
    pub bucket: Bucket,
    /// Tokens this call takes from it.
    pub tokens: f64,
}

/// What about a call changes its charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallShape {
    /// Instances for `RunInstances`/`StartInstances`/`StopInstances`/`TerminateInstances`;
    /// change tokens for Route 53 `ChangeResourceRecordSets` (1 per CREATE/DELETE, 2 per UPSERT).
    /// Ignored elsewhere. Zero is treated as one.
    pub units: u32,
    /// An EC2 describe of the expensive kind: no filter, no pagination and no id list.
    pub unfiltered_unpaginated: bool,
}

impl Default for CallShape {
    fn default() -> Self {
        CallShape {
            units: 1,
            unfiltered_unpaginated: false,
        }
    }
}

/// Whether `operation` changes state. Read-only operations start with a read verb; everything
/// else is treated as mutating, which is the safe default for the primary-region guarantee.
pub fn is_mutating(_service: Service, operation: &str) -> bool {
    const READ_PREFIXES: [&str; 6] = ["Describe", "List", "Get", "Search", "Head", "Lookup"];
    !READ_PREFIXES.iter().any(|p| operation.starts_with(p))
}

/// The error AWS answers a throttled call with: HTTP status and error code.
pub fn throttle_error(service: Service) -> (u16, &'static str) {
    match service {
        Service::Ec2 => (503, "RequestLimitExceeded"),
        Service::S3 => (503, "SlowDown"),
        Service::Rds
        | Service::Elb
        | Service::Elbv2
        | Service::CloudWatch
        | Service::Route53
        | Service::Acm => (400, "Throttling"),
    }
}

/// The EC2 actions AWS documents with their own bucket size ("uncategorized" table).
const EC2_UNCATEGORIZED: [(&str, Bucket); 17] = [
    ("RunInstances", Bucket::new(5.0, 2.0)),
    ("StartInstances", Bucket::new(5.0, 2.0)),
    ("TerminateInstances", Bucket::new(100.0, 5.0)),
    ("CreateTags", Bucket::new(100.0, 10.0)),
    ("DeleteTags", Bucket::new(100.0, 10.0)),
    ("CopyImage", Bucket::new(100.0, 1.0)),
    ("CreateVolume", Bucket::new(100.0, 5.0)),
    ("DeleteVolume", Bucket::new(100.0, 5.0)),
    ("CreateSnapshot", Bucket::new(100.0, 5.0)),
    ("CreateSnapshots", Bucket::new(100.0, 5.0)),
    ("DeleteSnapshot", Bucket::new(100.0, 5.0)),
    ("ModifySnapshotAttribute", Bucket::new(100.0, 5.0)),
    ("CreateNetworkInterface", Bucket::new(100.0, 5.0)),
    ("AssociateIamInstanceProfile", Bucket::new(100.0, 5.0)),
    ("ModifyInstanceMetadataOptions", Bucket::new(100.0, 5.0)),
    ("CreateNatGateway", Bucket::new(10.0, 1.0)),
    ("CreateVpcEndpoint", Bucket::new(4.0, 0.3)),
];

/// EC2 actions with a second, per-instance resource bucket.
const EC2_RESOURCE: [(&str, Bucket); 4] = [
    ("RunInstances", Bucket::new(1000.0, 2.0)),
    ("StartInstances", Bucket::new(1000.0, 2.0)),
    ("TerminateInstances", Bucket::new(1000.0, 20.0)),
    ("StopInstances", Bucket::new(1000.0, 20.0)),
];

/// Describe calls that fall into the small bucket when unfiltered and unpaginated.
const EC2_EXPENSIVE_DESCRIBES: [&str; 7] = [
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSpotInstanceRequests",
    "DescribeVolumes",
];

const EC2_NON_MUTATING: Bucket = Bucket::new(100.0, 20.0);
const EC2_UNFILTERED: Bucket = Bucket::new(50.0, 10.0);
const EC2_MUTATING: Bucket = Bucket::new(50.0, 5.0);
const RDS_ACCOUNT: Bucket = Bucket::new(300.0, 12.0);
const ELB_ACCOUNT: Bucket = Bucket::new(40.0, 10.0);
const ELB_RESOURCE_INTENSIVE: Bucket = Bucket::new(10.0, 0.2);
const ELB_REGISTRATION: Bucket = Bucket::new(20.0, 4.0);
const ELB_NON_MUTATING: Bucket = Bucket::new(40.0, 10.0);
const ELB_MUTATING: Bucket = Bucket::new(20.0, 3.0);
const ROUTE53_ACCOUNT: Bucket = Bucket::new(50.0, 10.0);
const ROUTE53_ACTION: Bucket = Bucket::new(50.0, 10.0);
const ROUTE53_CHANGES: Bucket = Bucket::new(1500.0, 100.0);
const CLOUDWATCH_GET_METRIC_DATA: Bucket = Bucket::new(50.0, 50.0);
const CLOUDWATCH_GET_METRIC_STATISTICS: Bucket = Bucket::new(400.0, 400.0);
const CLOUDWATCH_LIST_METRICS: Bucket = Bucket::new(25.0, 25.0);
const CLOUDWATCH_OTHER: Bucket = Bucket::new(50.0, 50.0);
/// ACM's per-action request rates (ACM quotas page: `DescribeCertificate` 10/s,
/// `ListCertificates` 8/s, `ImportCertificate` 1/s, `RequestCertificate` 5/s; other actions
/// are taken at 5/s). A burst of one second's worth.
const ACM_DESCRIBE: Bucket = Bucket::new(10.0, 10.0);
const ACM_LIST: Bucket = Bucket::new(8.0, 8.0);
const ACM_IMPORT: Bucket = Bucket::new(1.0, 1.0);
const ACM_OTHER: Bucket = Bucket::new(5.0, 5.0);
/// S3 documents "at least 3,500 writes and 5,500 reads per second per prefix"; pilotlight's
/// traffic never comes near, so one generous bucket per kind stands in for it.
const S3_WRITE: Bucket = Bucket::new(3500.0, 3500.0);
const S3_READ: Bucket = Bucket::new(5500.0, 5500.0);

fn charge(key: String, bucket: Bucket, tokens: f64) -> Charge {
    Charge {
        key,
        bucket,
        tokens,
    }
}

fn lookup(table: &[(&str, Bucket)], operation: &str) -> Option<Bucket> {
    table
        .iter()
        .find(|(name, _)| *name == operation)
        .map(|(_, b)| *b)
}

/// The ELB API category of an operation (classic and v2 share the scheme).
pub fn elb_category(operation: &str) -> &'static str {
    match operation {
        "CreateLoadBalancer"
        | "SetSubnets"
        | "AttachLoadBalancerToSubnets"
        | "DetachLoadBalancerFromSubnets"
        | "EnableAvailabilityZonesForLoadBalancer"
        | "DisableAvailabilityZonesForLoadBalancer"
        | "CreateTrustStore" => "resource_intensive",
        "RegisterTargets"
        | "DeregisterTargets"
        | "RegisterInstancesWithLoadBalancer"
        | "DeregisterInstancesFromLoadBalancer" => "registration",
        op if op.starts_with("Describe") => "non_mutating",
        _ => "mutating",
    }
}

/// The EC2 bucket category an action's request bucket belongs to (for docs and metrics).
pub fn ec2_category(operation: &str, unfiltered_unpaginated: bool) -> &'static str {
    if lookup(&EC2_UNCATEGORIZED, operation).is_some() {
        "uncategorized"
    } else if !is_mutating(Service::Ec2, operation) {
        if unfiltered_unpaginated && EC2_EXPENSIVE_DESCRIBES.contains(&operation) {
            "unfiltered_non_mutating"
        } else {
            "non_mutating"
        }
    } else {
        "mutating"
    }
}

/// Every bucket a call to `operation` must pay, per AWS's documented limits.
pub fn charges(service: Service, operation: &str, shape: &CallShape) -> Vec<Charge> {
    let units = f64::from(shape.units.max(1));
    let svc = service.as_str();
    match service {
        Service::Ec2 => {
            // Each EC2 action has its own bucket; the category only sets its default size.
            let category = ec2_category(operation, shape.unfiltered_unpaginated);
            let bucket = match category {
                "uncategorized" => lookup(&EC2_UNCATEGORIZED, operation).unwrap_or(EC2_MUTATING),
                "unfiltered_non_mutating" => EC2_UNFILTERED,
                "non_mutating" => EC2_NON_MUTATING,
                _ => EC2_MUTATING,
            };
            let key = if category == "unfiltered_non_mutating" {
                format!("ec2:{operation}#unfiltered")
            } else {
                format!("ec2:{operation}")
            };
            let mut out = vec![charge(key, bucket, 1.0)];
            if let Some(resource) = lookup(&EC2_RESOURCE, operation) {
                out.push(charge(format!("ec2:{operation}#resource"), resource, units));
            }
            out
        }
        Service::Rds => vec![charge("rds:account".into(), RDS_ACCOUNT, 1.0)],
        Service::Elb | Service::Elbv2 => {
            let category = elb_category(operation);
            let bucket = match category {
                "resource_intensive" => ELB_RESOURCE_INTENSIVE,
                "registration" => ELB_REGISTRATION,
                "non_mutating" => ELB_NON_MUTATING,
                _ => ELB_MUTATING,
            };
            vec![
                charge(format!("{svc}:category:{category}"), bucket, 1.0),
                // One account-level bucket shared by every ELB action, classic and v2 alike.
                charge("elb:account".into(), ELB_ACCOUNT, 1.0),
            ]
        }
        Service::Route53 => {
            let action = match operation {
                "CreateHostedZone" => Bucket::new(40.0, 2.0),
                "CreateHealthCheck" => Bucket::new(50.0, 0.5),
                "AssociateVPCWithHostedZone" => Bucket::new(20.0, 5.0),
                _ => ROUTE53_ACTION,
            };
            let mut out = vec![
                charge("route53:account".into(), ROUTE53_ACCOUNT, 1.0),
                charge(format!("route53:{operation}"), action, 1.0),
            ];
            let changes = match operation {
                "ChangeResourceRecordSets" => Some(units),
                "CreateHostedZone"
                | "DeleteHostedZone"
                | "AssociateVPCWithHostedZone"
                | "DisassociateVPCFromHostedZone" => Some(2.0),
                _ => None,
            };
            if let Some(tokens) = changes {
                out.push(charge("route53:changes".into(), ROUTE53_CHANGES, tokens));
            }
            out
        }
        Service::CloudWatch => {
            let bucket = match operation {
                "GetMetricData" => CLOUDWATCH_GET_METRIC_DATA,
                "GetMetricStatistics" => CLOUDWATCH_GET_METRIC_STATISTICS,
                "ListMetrics" => CLOUDWATCH_LIST_METRICS,
                _ => CLOUDWATCH_OTHER,
            };
            vec![charge(format!("cloudwatch:{operation}"), bucket, 1.0)]
        }
        Service::Acm => {
            let bucket = match operation {
                "DescribeCertificate" => ACM_DESCRIBE,
                "ListCertificates" => ACM_LIST,
                "ImportCertificate" => ACM_IMPORT,
                _ => ACM_OTHER,
            };
            vec![charge(format!("acm:{operation}"), bucket, 1.0)]
        }
        Service::S3 => {
            let (key, bucket) = if is_mutating(service, operation) {
                ("s3:write", S3_WRITE)
            } else {
                ("s3:read", S3_READ)
            };
            vec![charge(key.into(), bucket, 1.0)]
        }
    }
}

/// The single bucket the daemon should wait on for `operation`'s request rate, and the extra
/// per-unit bucket if any — a convenience over [`charges`] for callers that size one limiter per
/// key.
pub fn request_bucket(service: Service, operation: &str) -> Bucket {
    charges(service, operation, &CallShape::default())
        .into_iter()
        .find(|c| !c.key.ends_with(":account"))
        .map(|c| c.bucket)
        .unwrap_or(EC2_MUTATING)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(service: Service, op: &str, shape: CallShape) -> Vec<(String, f64, f64, f64)> {
        charges(service, op, &shape)
            .into_iter()
            .map(|c| (c.key, c.bucket.capacity, c.bucket.refill_per_sec, c.tokens))
            .collect()
    }

    #[test]
    fn run_instances_pays_request_and_resource_buckets() {
        let shape = CallShape {
            units: 100,
            unfiltered_unpaginated: false,
        };
        assert_eq!(
            keys(Service::Ec2, "RunInstances", shape),
            vec![
                ("ec2:RunInstances".into(), 5.0, 2.0, 1.0),
                ("ec2:RunInstances#resource".into(), 1000.0, 2.0, 100.0),
            ]
        );
    }

    #[test]
    fn ec2_describe_bucket_depends_on_filtering() {
        let filtered = keys(Service::Ec2, "DescribeInstances", CallShape::default());
        assert_eq!(
            filtered,
            vec![("ec2:DescribeInstances".into(), 100.0, 20.0, 1.0)]
        );
        let unfiltered = keys(
            Service::Ec2,
            "DescribeInstances",
            CallShape {
                units: 1,
                unfiltered_unpaginated: true,
            },
        );
        assert_eq!(
            unfiltered,
            vec![("ec2:DescribeInstances#unfiltered".into(), 50.0, 10.0, 1.0)]
        );
        // Not one of the expensive describes: stays in the normal bucket.
        let vpcs = keys(
            Service::Ec2,
            "DescribeVpcs",
            CallShape {
                units: 1,
                unfiltered_unpaginated: true,
            },
        );
        assert_eq!(vpcs, vec![("ec2:DescribeVpcs".into(), 100.0, 20.0, 1.0)]);
    }

    #[test]
    fn ec2_mutating_default_and_uncategorized() {
        assert_eq!(
            keys(Service::Ec2, "CopySnapshot", CallShape::default()),
            vec![("ec2:CopySnapshot".into(), 50.0, 5.0, 1.0)]
        );
        assert_eq!(
            keys(Service::Ec2, "CopyImage", CallShape::default()),
            vec![("ec2:CopyImage".into(), 100.0, 1.0, 1.0)]
        );
    }

    #[test]
    fn elb_calls_also_pay_the_account_bucket() {
        let k = keys(Service::Elbv2, "CreateLoadBalancer", CallShape::default());
        assert_eq!(
            k,
            vec![
                ("elbv2:category:resource_intensive".into(), 10.0, 0.2, 1.0),
                ("elb:account".into(), 40.0, 10.0, 1.0),
            ]
        );
        let k = keys(
            Service::Elb,
            "RegisterInstancesWithLoadBalancer",
            CallShape::default(),
        );
        assert_eq!(k[0].0, "elb:category:registration");
    }

    #[test]
    fn route53_changes_count_units() {
        let k = keys(
            Service::Route53,
            "ChangeResourceRecordSets",
            CallShape {
                units: 2000,
                unfiltered_unpaginated: false,
            },
        );
        assert_eq!(k.len(), 3);
        assert_eq!(k[2], ("route53:changes".into(), 1500.0, 100.0, 2000.0));
    }

    #[test]
    fn mutating_classification() {
        assert!(!is_mutating(Service::Ec2, "DescribeVpcs"));
        assert!(!is_mutating(Service::S3, "GetObject"));
        assert!(!is_mutating(Service::Route53, "ListResourceRecordSets"));
        assert!(is_mutating(Service::Ec2, "CreateVpc"));
        assert!(is_mutating(Service::Ec2, "AuthorizeSecurityGroupIngress"));
        assert!(is_mutating(Service::Rds, "CopyDBSnapshot"));
    }

    #[test]
    fn drain_time_matches_the_documented_example() {
        // AWS-LIMITS.md: 3,000 instances through the resource bucket take 1,000 s.
        let b = Bucket::new(1000.0, 2.0);
        assert!((b.drain_secs(3000.0) - 1000.0).abs() < 1e-9);
        assert_eq!(b.drain_secs(10.0), 0.0);
    }

    #[test]
    fn service_names_round_trip() {
        for s in Service::ALL {
            assert_eq!(Service::parse(s.as_str()), Some(s));
        }
        assert_eq!(Service::parse("lambda"), None);
    }
}
