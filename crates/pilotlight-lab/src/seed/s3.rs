//! S3 buckets with cross-region replication for the lab (what pilotlight's R6 watch reads).
//!
//! [`seed_buckets`] creates, per [`BucketSpec`], a versioned bucket in the primary region, a
//! versioned DR bucket in the DR region (`<name>-dr` unless named) and a replication
//! configuration on the primary bucket — role `arn:aws:iam::<account>:role/s3-replication`, one
//! enabled rule for every key, destination the DR bucket's ARN — then puts the spec's objects.
//! moto stores the configuration but never copies an object; the lab's
//! [`Replicator`](crate::replicator::Replicator) does.
//!
//! **Bucket names are global across accounts in moto, as on AWS**: two lab sessions on one
//! moto that seed the same name collide (`BucketAlreadyExists`). Callers pick unique names
//! (e.g. with the session's account id in them). Seeding a bucket the same account already
//! owns is accepted, so seeding is repeatable.
//!
//! The account in the role ARN is the caller's, read from the owner of the primary region's
//! default VPC (the lab's clients have no STS; moto gives every account a default VPC per
//! region). Objects are put at most [`SEED_CONCURRENCY`] at a time.

use std::collections::BTreeSet;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, ReplicationConfiguration,
    ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus, VersioningConfiguration,
};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use serde::{Deserialize, Serialize};

use super::{SEED_CONCURRENCY, call, missing};
use crate::clients::AwsClients;
use crate::error::LabError;

/// The replication role's name; its ARN is `arn:aws:iam::<account>:role/s3-replication`.
pub const REPLICATION_ROLE: &str = "s3-replication";
/// The id of the one replication rule the seeder writes.
pub const REPLICATION_RULE_ID: &str = "lab-replicate-all";
/// The largest object the seeder puts (the lab is not a storage benchmark).
pub const MAX_OBJECT_BYTES: u32 = 16 << 20;

/// One primary bucket, its DR bucket and its objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    /// The primary bucket's name (global across accounts: pick a unique one).
    pub name: String,
    /// How many objects to put (`object-000000`, `object-000001`, …).
    #[serde(default)]
    pub objects: u32,
    /// Each object's size in bytes (at most [`MAX_OBJECT_BYTES`]).
    #[serde(default = "default_object_bytes")]
    pub object_bytes: u32,
    /// Configure replication to the DR bucket.
    #[serde(default = "yes")]
    pub replicate: bool,
    /// The DR bucket's name; default `<name>-dr`.
    #[serde(default)]
    pub dr_bucket: Option<String>,
    /// Create the DR bucket (`false` leaves a replication rule pointing at nothing, as R6 must
    /// detect).
    #[serde(default = "yes")]
    pub create_dr_bucket: bool,
}

fn default_object_bytes() -> u32 {
    1024
}

fn yes() -> bool {
    true
}

impl BucketSpec {
    /// A replicated bucket `name` with a DR bucket `<name>-dr` and no objects.
    pub fn new(name: impl Into<String>) -> BucketSpec {
        BucketSpec {
            name: name.into(),
            objects: 0,
            object_bytes: default_object_bytes(),
            replicate: true,
            dr_bucket: None,
            create_dr_bucket: true,
        }
    }

    /// The DR bucket's name: [`BucketSpec::dr_bucket`] or `<name>-dr`.
    pub fn dr_bucket_name(&self) -> String {
        self.dr_bucket
            .clone()
            .unwrap_or_else(|| format!("{}-dr", self.name))
    }

    /// The key of object `i`.
    pub fn object_key(i: u32) -> String {
        format!("object-{i:06}")
    }
}

/// What [`seed_buckets`] made of one [`BucketSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededBucket {
    pub name: String,
    pub region: String,
    /// The DR bucket's name (whether or not it was created).
    pub dr_bucket: String,
    pub dr_region: String,
    pub dr_bucket_created: bool,
    /// The replication role when a configuration was written.
    pub replication_role: Option<String>,
    /// The objects put, in key order.
    pub keys: Vec<String>,
}

/// The S3 ARN of a bucket.
pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// Whether `name` is a valid S3 bucket name: 3–63 characters of lower-case letters, digits,
/// `-` and `.`, starting and ending with a letter or digit, no `..`.
pub fn valid_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

/// Every problem of `specs` at once.
fn validate(specs: &[BucketSpec]) -> Result<(), LabError> {
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for spec in specs {
        let dr = spec.dr_bucket_name();
        for name in [&spec.name, &dr] {
            if !valid_bucket_name(name) {
                problems.push(format!(
                    "bucket {name:?}: not a valid S3 bucket name (3-63 of a-z 0-9 - .)"
                ));
            }
        }
        if !names.insert(spec.name.clone()) {
            problems.push(format!("bucket {:?} is listed twice", spec.name));
        }
        if (spec.replicate || spec.create_dr_bucket) && !names.insert(dr.clone()) {
            problems.push(format!("bucket {dr:?} is used twice (as a DR bucket)"));
        }
        if spec.object_bytes > MAX_OBJECT_BYTES {
            problems.push(format!(
                "bucket {:?}: object_bytes {} is over {MAX_OBJECT_BYTES}",
                spec.name, spec.object_bytes
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LabError::InvalidSpec { problems })
    }
}

/// Creates the buckets of `specs` — primary ones through `primary`, DR ones through `dr` — with
/// versioning, replication and objects (module docs).
///
/// # Errors
///
/// [`LabError::InvalidSpec`] before any call when a name is invalid or repeated or an object
/// too large; [`LabError::Aws`] when a call fails (`BucketAlreadyExists` when another account
/// owns a name; what was created before stays); [`LabError::MissingField`] when the caller's
/// account cannot be read.
pub async fn seed_buckets(
    primary: &AwsClients,
    dr: &AwsClients,
    specs: &[BucketSpec],
) -> Result<Vec<SeededBucket>, LabError> {
    validate(specs)?;
    let role = if specs.iter().any(|s| s.replicate) {
        let account = account_id(primary).await?;
        Some(format!("arn:aws:iam::{account}:role/{REPLICATION_ROLE}"))
    } else {
        None
    };
    let mut seeded = Vec::with_capacity(specs.len());
    for spec in specs {
        seeded.push(seed_bucket(primary, dr, spec, role.as_deref()).await?);
    }
    Ok(seeded)
}

async fn seed_bucket(
    primary: &AwsClients,
    dr: &AwsClients,
    spec: &BucketSpec,
    role: Option<&str>,
) -> Result<SeededBucket, LabError> {
    let dr_name = spec.dr_bucket_name();
    create_versioned_bucket(primary, &spec.name).await?;
    if spec.create_dr_bucket {
        create_versioned_bucket(dr, &dr_name).await?;
    }
    let role = if spec.replicate { role } else { None };
    if let Some(role) = role {
        let rule = ReplicationRule::builder()
            .id(REPLICATION_RULE_ID)
            .priority(1)
            .status(ReplicationRuleStatus::Enabled)
            .filter(ReplicationRuleFilter::builder().prefix("").build())
            .delete_marker_replication(
                DeleteMarkerReplication::builder()
                    .status(DeleteMarkerReplicationStatus::Disabled)
                    .build(),
            )
            .destination(
                Destination::builder()
                    .bucket(bucket_arn(&dr_name))
                    .build()
                    .map_err(|e| build_error("PutBucketReplication", &spec.name, primary, e))?,
            )
            .build()
            .map_err(|e| build_error("PutBucketReplication", &spec.name, primary, e))?;
        let config = ReplicationConfiguration::builder()
            .role(role)
            .rules(rule)
            .build()
            .map_err(|e| build_error("PutBucketReplication", &spec.name, primary, e))?;
        call("PutBucketReplication", &spec.name, &primary.region, || {
            primary
                .s3
                .put_bucket_replication()
                .bucket(&spec.name)
                .replication_configuration(config.clone())
                .send()
        })
        .await?;
    }
    let keys: Vec<String> = (0..spec.objects).map(BucketSpec::object_key).collect();
    let size = usize::try_from(spec.object_bytes).unwrap_or(usize::MAX);
    stream::iter(&keys)
        .map(|key| async move {
            let body = object_body(key, size);
            call("PutObject", key, &primary.region, || {
                primary
                    .s3
                    .put_object()
                    .bucket(&spec.name)
                    .key(key)
                    .content_type("application/octet-stream")
                    .body(ByteStream::from(body.clone()))
                    .send()
            })
            .await
            .map(|_| ())
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    tracing::debug!(bucket = %spec.name, dr_bucket = %dr_name, objects = keys.len(),
        replicated = role.is_some(), "bucket seeded");
    Ok(SeededBucket {
        name: spec.name.clone(),
        region: primary.region.clone(),
        dr_bucket: dr_name,
        dr_region: dr.region.clone(),
        dr_bucket_created: spec.create_dr_bucket,
        replication_role: role.map(str::to_owned),
        keys,
    })
}

/// `size` bytes repeating the key, so every object's content is distinct and checkable.
pub fn object_body(key: &str, size: usize) -> Vec<u8> {
    key.bytes()
        .chain(std::iter::once(b'\n'))
        .cycle()
        .take(size)
        .collect()
}

fn build_error(
    operation: &'static str,
    bucket: &str,
    clients: &AwsClients,
    source: aws_sdk_s3::error::BuildError,
) -> LabError {
    LabError::Aws {
        operation,
        resource: bucket.to_owned(),
        region: clients.region.clone(),
        source: Box::new(source),
    }
}

/// Creates `bucket` in `clients`' region (a `LocationConstraint` except in us-east-1) unless
/// this account already owns it, and enables versioning.
async fn create_versioned_bucket(clients: &AwsClients, bucket: &str) -> Result<(), LabError> {
    let region = clients.region.as_str();
    let mut create = clients.s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("BucketAlreadyOwnedByYou") => {
            tracing::debug!(bucket, region, "bucket already owned; reusing it");
        }
        Err(e) => {
            return Err(LabError::Aws {
                operation: "CreateBucket",
                resource: bucket.to_owned(),
                region: region.to_owned(),
                source: Box::new(e),
            });
        }
    }
    call("PutBucketVersioning", bucket, region, || {
        clients
            .s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
    })
    .await?;
    Ok(())
}

/// The caller's account: the owner of the region's default VPC.
async fn account_id(clients: &AwsClients) -> Result<String, LabError> {
    let out = call("DescribeVpcs", "default VPC", &clients.region, || {
        clients
            .ec2
            .describe_vpcs()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("is-default")
                    .values("true")
                    .build(),
            )
            .send()
    })
    .await?;
    out.vpcs()
        .iter()
        .find_map(|v| v.owner_id())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| missing("DescribeVpcs", "default VPC", "OwnerId"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_from_toml() {
        let spec: BucketSpec = toml::from_str("name = \"app-logs\"\nobjects = 3\n").expect("toml");
        assert_eq!(
            spec,
            BucketSpec {
                objects: 3,
                ..BucketSpec::new("app-logs")
            }
        );
        assert!(spec.replicate && spec.create_dr_bucket);
        assert_eq!(spec.object_bytes, 1024);
        assert_eq!(spec.dr_bucket_name(), "app-logs-dr");
        let named = BucketSpec {
            dr_bucket: Some("elsewhere".into()),
            ..spec
        };
        assert_eq!(named.dr_bucket_name(), "elsewhere");
        assert!(toml::from_str::<BucketSpec>("name = \"x\"\ncolour = 1\n").is_err());
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "a.b-c", "my-bucket-2026", &"a".repeat(63)] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in ["ab", "Abc", "-abc", "abc-", "a..b", "a_b", &"a".repeat(64)] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
        assert_eq!(bucket_arn("b"), "arn:aws:s3:::b");
    }

    #[test]
    fn validation_reports_every_problem() {
        let specs = vec![
            BucketSpec::new("Bad_Name"),
            BucketSpec::new("twice"),
            BucketSpec::new("twice"),
            BucketSpec {
                object_bytes: MAX_OBJECT_BYTES + 1,
                dr_bucket: Some("twice".into()),
                ..BucketSpec::new("third")
            },
        ];
        let Err(LabError::InvalidSpec { problems }) = validate(&specs) else {
            panic!("expected InvalidSpec");
        };
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems[0].contains("Bad_Name"));
        assert!(problems.iter().any(|p| p.contains("listed twice")));
        assert!(problems.iter().any(|p| p.contains("as a DR bucket")));
        assert!(problems.iter().any(|p| p.contains("object_bytes")));
        // A DR bucket that is neither created nor replicated to may share a name.
        let unused = BucketSpec {
            replicate: false,
            create_dr_bucket: false,
            dr_bucket: Some("shared".into()),
            ..BucketSpec::new("one")
        };
        assert!(validate(&[unused.clone(), BucketSpec::new("shared")]).is_ok());
    }

    #[test]
    fn bodies_have_the_size_and_repeat_the_key() {
        assert_eq!(object_body("ab", 7), b"ab\nab\na".to_vec());
        assert!(object_body("k", 0).is_empty());
        assert_eq!(object_body("object-000001", 4096).len(), 4096);
    }
}
