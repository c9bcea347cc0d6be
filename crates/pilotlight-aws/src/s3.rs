//! S3 in two faces: [`PrimaryS3`] reads a primary bucket's replication set-up and objects
//! (SPEC R6), [`DrS3`] owns the DR region's inventory bucket (R5) and checks replicas.
//!
//! # Addressing
//!
//! [`PrimaryS3::new`] and [`DrS3::new`] address buckets by path (`http://host/bucket`) when the
//! SDK configuration has an endpoint override — the lab, or any endpoint that is an IP or a
//! host without bucket sub-domains, which is what `aws.s3_force_path_style` exists for — and
//! virtual-hosted otherwise. `with_path_style` sets it explicitly (from
//! [`AwsSettings::s3_force_path_style`](crate::AwsSettings)).
//!
//! # Replication status (R6)
//!
//! [`replication_status`] reads `GetBucketReplication` of the source, picks the destination of the first enabled rule (highest `Priority`, then document order),
//! checks it with `HeadBucket` through the DR face, and — only when replication is enabled and
//! the destination exists — measures the lag: it lists the source objects covered by the
//! enabled rules to that destination (`ListObjectsV2` under the rules' common prefix, 1,000
//! keys a page, at most [`MAX_LISTED_KEYS`] keys), keeps the `sample` newest by `LastModified`,
//! and sends one `HeadObject` per sampled key to the destination. A sampled object is
//! *missing* when the destination has no such key or an older `LastModified` (a replica of an
//! earlier write). The lag is `now − LastModified` of the oldest missing sampled object, `0`
//! when none is missing. Cost per check:
//! `2 + ceil(min(objects, MAX_LISTED_KEYS) / 1000) + sample` calls. Versioning is not read
//! separately: S3 accepts a replication configuration only on a versioned bucket and refuses
//! to suspend versioning while one exists (and moto's `GetBucketVersioning` answer does not
//! parse in the Rust SDK: its XML root is `GetBucketVersioningResponse`). A bucket with more than
//! [`MAX_LISTED_KEYS`] keys under the prefix is sampled among its first keys in key order only
//! (`list_truncated` says so); for such buckets S3's own replication metrics
//! (`ReplicationLatency` in the destination region) are the better instrument. Rule tag
//! filters are not evaluated (objects are not tagged in a listing): a tag-filtered rule counts
//! as covering its whole prefix.
//!
//! # Inventory documents (R5)
//!
//! [`write_inventory`] stores the document as gzip JSON with `Content-Type: application/gzip`
//! and **no** `Content-Encoding`, so no client or proxy decodes it on the way and the stored
//! bytes are exactly the bytes hashed ([`Written::sha256`]). The gzip header carries no time or
//! name, so equal documents give equal bytes. [`read_inventory`] reverses it and refuses a
//! schema version this build cannot read ([`InventoryIoError::UnsupportedSchema`]).

use std::io::{Read, Write};
use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, ReplicationRule, ReplicationRuleStatus,
    Tag, Tagging,
};
use aws_smithy_types::DateTime;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use pilotlight_core::aws_limits::Service;
use pilotlight_core::digest::sha256_hex;
use pilotlight_core::inventory::{self, Inventory, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};

use crate::call::AwsCtx;
use crate::error::{AwsError, ErrorKind};
use crate::ops::sdk_ops;
use crate::tags::MANAGED;

/// Most source keys [`replication_status`] lists per check.
pub const MAX_LISTED_KEYS: usize = 50_000;
/// Keys per `ListObjectsV2` page (AWS's maximum).
const LIST_PAGE: i32 = 1000;
/// The largest inventory document [`read_inventory`] inflates (1 GiB).
pub const MAX_DOCUMENT_BYTES: u64 = 1 << 30;
/// Content type of an inventory document.
pub const INVENTORY_CONTENT_TYPE: &str = "application/gzip";

fn s3_client(config: &aws_types::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}

fn region_of(config: &aws_types::SdkConfig) -> String {
    config
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_default()
}

/// Read-only S3 for the primary region's buckets.
#[derive(Debug, Clone)]
pub struct PrimaryS3 {
    client: aws_sdk_s3::Client,
    region: String,
    ctx: AwsCtx,
}

impl PrimaryS3 {
    /// Path-style addressing when `config` has an endpoint override (see the module doc).
    pub fn new(config: &aws_types::SdkConfig, ctx: AwsCtx) -> PrimaryS3 {
        PrimaryS3::with_path_style(config, ctx, config.endpoint_url().is_some())
    }

    pub fn with_path_style(
        config: &aws_types::SdkConfig,
        ctx: AwsCtx,
        path_style: bool,
    ) -> PrimaryS3 {
        PrimaryS3 {
            client: s3_client(config, path_style),
            region: region_of(config),
            ctx,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    sdk_ops! {
        aws_sdk_s3, Service::S3;
        /// The bucket's replication configuration (`ReplicationConfigurationNotFoundError`
        /// without one).
        get_bucket_replication => get_bucket_replication::GetBucketReplicationFluentBuilder -> GetBucketReplicationOutput, "GetBucketReplication";
        /// The bucket's versioning state. Against moto 5.2 the answer does not parse (see the
        /// module doc); [`replication_status`] does not need it.
        get_bucket_versioning => get_bucket_versioning::GetBucketVersioningFluentBuilder -> GetBucketVersioningOutput, "GetBucketVersioning";
        /// One page of keys (≤ 1,000).
        list_objects_v2 => list_objects_v2::ListObjectsV2FluentBuilder -> ListObjectsV2Output, "ListObjectsV2";
        /// One object's metadata.
        head_object => head_object::HeadObjectFluentBuilder -> HeadObjectOutput, "HeadObject";
    }
}

/// S3 in the DR region: the inventory bucket and replica checks.
#[derive(Debug, Clone)]
pub struct DrS3 {
    client: aws_sdk_s3::Client,
    region: String,
    ctx: AwsCtx,
}

impl DrS3 {
    /// Path-style addressing when `config` has an endpoint override (see the module doc).
    pub fn new(config: &aws_types::SdkConfig, ctx: AwsCtx) -> DrS3 {
        DrS3::with_path_style(config, ctx, config.endpoint_url().is_some())
    }

    pub fn with_path_style(config: &aws_types::SdkConfig, ctx: AwsCtx, path_style: bool) -> DrS3 {
        DrS3 {
            client: s3_client(config, path_style),
            region: region_of(config),
            ctx,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    sdk_ops! {
        aws_sdk_s3, Service::S3;
        /// Whether a bucket exists and is reachable (`NotFound` when it does not exist).
        head_bucket => head_bucket::HeadBucketFluentBuilder -> HeadBucketOutput, "HeadBucket";
        /// Creates a bucket; use [`DrS3::ensure_bucket`].
        create_bucket => create_bucket::CreateBucketFluentBuilder -> CreateBucketOutput, "CreateBucket";
        /// Replaces a bucket's tags; [`DrS3::ensure_bucket`] tags the buckets it creates.
        put_bucket_tagging => put_bucket_tagging::PutBucketTaggingFluentBuilder -> PutBucketTaggingOutput, "PutBucketTagging";
        /// Stores an object.
        put_object => put_object::PutObjectFluentBuilder -> PutObjectOutput, "PutObject";
        /// Reads an object (the body streams after the call returns).
        get_object => get_object::GetObjectFluentBuilder -> GetObjectOutput, "GetObject";
        /// One page of keys (≤ 1,000).
        list_objects_v2 => list_objects_v2::ListObjectsV2FluentBuilder -> ListObjectsV2Output, "ListObjectsV2";
        /// One object's metadata.
        head_object => head_object::HeadObjectFluentBuilder -> HeadObjectOutput, "HeadObject";
    }

    /// Makes sure `bucket` exists in the DR region: `HeadBucket`, and when that answers
    /// `NotFound`, `CreateBucket` with `LocationConstraint` = this region (none for
    /// `us-east-1`, which takes none) followed by `PutBucketTagging` with
    /// `pilotlight:managed=true`. Returns whether this call created it. A bucket that another
    /// caller created meanwhile (`BucketAlreadyOwnedByYou`) counts as existing and is not
    /// re-tagged.
    ///
    /// # Errors
    /// The failed call's classified [`AwsError`]; `BucketAlreadyExists` (the name is taken by
    /// another account) is one of them.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<bool, AwsError> {
        match self.head_bucket(|b| b.bucket(bucket)).await {
            Ok(_) => return Ok(false),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let region = self.region.clone();
        let created = self
            .create_bucket(|b| {
                if region == "us-east-1" {
                    b.bucket(bucket)
                } else {
                    b.bucket(bucket).create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(region.as_str()))
                            .build(),
                    )
                }
            })
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code == "BucketAlreadyOwnedByYou" => return Ok(false),
            Err(e) => return Err(e),
        }
        let tagging = Tag::builder()
            .key(MANAGED)
            .value("true")
            .build()
            .and_then(|tag| Tagging::builder().tag_set(tag).build())
            .map_err(|e| self.local_error("PutBucketTagging", "building the tag set failed", e))?;
        self.put_bucket_tagging(|b| b.bucket(bucket).tagging(tagging))
            .await?;
        Ok(true)
    }

    /// An [`AwsError`] for a request that failed before it was sent.
    fn local_error(
        &self,
        operation: &'static str,
        message: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> AwsError {
        AwsError {
            service: Service::S3.as_str(),
            operation,
            region: self.region.clone(),
            kind: ErrorKind::Fatal,
            code: String::new(),
            message: Some(message.to_owned()),
            source: Box::new(source),
        }
    }
}

/// What [`replication_status`] found for one source bucket. Counts and the lag are 0 when
/// nothing was sampled (replication not enabled, or no destination).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplicationStatus {
    pub bucket: String,
    /// The bucket has a replication configuration.
    pub configured: bool,
    /// At least one rule is `Enabled`.
    pub enabled: bool,
    /// Rules in the configuration, and how many of them are enabled.
    pub rules: u32,
    pub enabled_rules: u32,
    /// The destination of the first enabled rule, as configured (`arn:aws:s3:::name`).
    pub destination_arn: Option<String>,
    /// The bucket name of [`ReplicationStatus::destination_arn`].
    pub destination_bucket: Option<String>,
    /// The `ID` of that rule (the `RuleId` dimension of S3's replication metrics).
    pub rule_id: Option<String>,
    /// S3's own `ReplicationLatency` metric for that rule, when CloudWatch has a recent data
    /// point (only with S3 Replication Time Control or replication metrics enabled); filled in
    /// by the caller with `cloudwatch::replication_latency`.
    pub metric_latency_secs: Option<f64>,
    /// `HeadBucket` of the destination through the DR face succeeded.
    pub destination_exists: bool,
    /// Source keys listed to choose the sample.
    pub listed: u32,
    /// The listing stopped at [`MAX_LISTED_KEYS`] before the end of the bucket.
    pub list_truncated: bool,
    /// Newest source objects checked at the destination.
    pub sampled: u32,
    /// Sampled objects missing (or older) at the destination.
    pub missing: u32,
    /// `now − LastModified` of the oldest missing sampled object, in seconds; 0 when none.
    pub lag_secs: f64,
    /// The key that gives the lag.
    pub oldest_missing_key: Option<String>,
}

/// The bucket name of a destination ARN (`arn:aws:s3:::name` → `name`); a bare name stays.
pub fn bucket_of_arn(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// The prefix a rule covers (its filter's, its `And` filter's, or the legacy rule prefix).
// The rule-level `Prefix` is deprecated in the API but still what V1 configurations carry.
#[allow(deprecated)]
fn rule_prefix(rule: &ReplicationRule) -> &str {
    rule.filter()
        .and_then(|f| f.prefix().or_else(|| f.and().and_then(|a| a.prefix())))
        .or_else(|| rule.prefix())
        .unwrap_or("")
}

/// The longest common prefix of `prefixes` (empty for none).
fn common_prefix<'a>(prefixes: &[&'a str]) -> &'a str {
    let Some(first) = prefixes.first() else {
        return "";
    };
    let mut len = first.len();
    for p in &prefixes[1..] {
        len = first
            .char_indices()
            .zip(p.chars())
            .take_while(|((_, a), b)| a == b)
            .map(|((i, a), _)| i + a.len_utf8())
            .last()
            .unwrap_or(0)
            .min(len);
    }
    &first[..len]
}

/// Keeps the `n` newest of `objects` (by `LastModified`, then key), newest first.
fn keep_newest(objects: &mut Vec<(DateTime, String)>, n: usize) {
    objects.sort_by(|a, b| {
        (b.0.secs(), b.0.subsec_nanos(), &a.1).cmp(&(a.0.secs(), a.0.subsec_nanos(), &b.1))
    });
    objects.truncate(n);
}

fn secs_of(d: &DateTime) -> f64 {
    d.secs() as f64 + f64::from(d.subsec_nanos()) / 1e9
}

/// The replication set-up and lag of `bucket` (see the module doc for what is checked and what
/// it costs).
///
/// # Errors
/// The first failed call's classified [`AwsError`]; a missing replication configuration or a
/// missing destination bucket is a finding, not an error.
pub async fn replication_status(
    primary: &PrimaryS3,
    dr: &DrS3,
    bucket: &str,
    sample: u32,
) -> Result<ReplicationStatus, AwsError> {
    let mut status = ReplicationStatus {
        bucket: bucket.to_owned(),
        ..ReplicationStatus::default()
    };
    let config = match primary.get_bucket_replication(|b| b.bucket(bucket)).await {
        Ok(out) => out.replication_configuration,
        Err(e) if e.code == "ReplicationConfigurationNotFoundError" => None,
        Err(e) => return Err(e),
    };
    let Some(config) = config else {
        return Ok(status);
    };
    status.configured = true;
    let rules = config.rules();
    status.rules = u32::try_from(rules.len()).unwrap_or(u32::MAX);
    let mut enabled: Vec<&ReplicationRule> = rules
        .iter()
        .filter(|r| r.status() == &ReplicationRuleStatus::Enabled)
        .collect();
    status.enabled_rules = u32::try_from(enabled.len()).unwrap_or(u32::MAX);
    status.enabled = !enabled.is_empty();
    // Highest priority first; a stable sort keeps document order among equals.
    enabled.sort_by_key(|r| std::cmp::Reverse(r.priority().unwrap_or(0)));
    let Some(first) = enabled.first() else {
        return Ok(status);
    };
    let Some(destination_arn) = first.destination().map(|d| d.bucket().to_owned()) else {
        return Ok(status);
    };
    let destination = bucket_of_arn(&destination_arn).to_owned();
    status.rule_id = first.id().map(str::to_owned);
    status.destination_arn = Some(destination_arn.clone());
    status.destination_bucket = Some(destination.clone());
    status.destination_exists = match dr.head_bucket(|b| b.bucket(&destination)).await {
        Ok(_) => true,
        Err(e) if e.kind == ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    if !status.destination_exists || sample == 0 {
        return Ok(status);
    }

    // The prefixes of the enabled rules replicating to this destination.
    let prefixes: Vec<&str> = enabled
        .iter()
        .filter(|r| r.destination().map(|d| d.bucket()) == Some(destination_arn.as_str()))
        .map(|r| rule_prefix(r))
        .collect();
    let list_prefix = common_prefix(&prefixes);
    let covered = |key: &str| prefixes.iter().any(|p| key.starts_with(p));
    let n = usize::try_from(sample).unwrap_or(usize::MAX);
    let mut newest: Vec<(DateTime, String)> = Vec::new();
    let mut listed = 0usize;
    let mut token: Option<String> = None;
    loop {
        let page = primary
            .list_objects_v2(|b| {
                b.bucket(bucket)
                    .prefix(list_prefix)
                    .max_keys(LIST_PAGE)
                    .set_continuation_token(token.clone())
            })
            .await?;
        for object in page.contents() {
            listed += 1;
            if let (Some(key), Some(modified)) = (object.key(), object.last_modified())
                && covered(key)
            {
                newest.push((*modified, key.to_owned()));
            }
        }
        keep_newest(&mut newest, n);
        token = page
            .next_continuation_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
        if listed >= MAX_LISTED_KEYS {
            status.list_truncated = true;
            break;
        }
    }
    status.listed = u32::try_from(listed).unwrap_or(u32::MAX);
    status.sampled = u32::try_from(newest.len()).unwrap_or(u32::MAX);

    let mut oldest_missing: Option<&(DateTime, String)> = None;
    for object in &newest {
        let replica = match dr
            .head_object(|b| b.bucket(&destination).key(&object.1))
            .await
        {
            Ok(head) => head.last_modified().copied(),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let missing = replica.is_none_or(|r| secs_of(&r) < secs_of(&object.0));
        if missing {
            status.missing += 1;
            // `newest` is newest first, so the last missing one is the oldest.
            oldest_missing = Some(object);
        }
    }
    if let Some((modified, key)) = oldest_missing {
        let now = DateTime::from(SystemTime::now());
        status.lag_secs = (secs_of(&now) - secs_of(modified)).max(0.0);
        status.oldest_missing_key = Some(key.clone());
    }
    Ok(status)
}

/// Where [`write_inventory`] put a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub key: String,
    /// Hex SHA-256 of the stored (gzip) bytes.
    pub sha256: String,
    /// Size of the stored bytes.
    pub size_bytes: u64,
}

/// Why an inventory document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryIoError {
    /// The S3 call failed (boxed: [`AwsError`] is large and this is the rare path).
    #[error(transparent)]
    Aws(Box<AwsError>),
    /// The object's body could not be read to the end.
    #[error("reading the body of inventory document {key} failed")]
    Body {
        key: String,
        #[source]
        source: aws_smithy_types::byte_stream::error::Error,
    },
    /// The object is not gzip, or inflates past [`MAX_DOCUMENT_BYTES`].
    #[error("inventory document {key} is not a gzip stream of at most {MAX_DOCUMENT_BYTES} bytes")]
    Gzip {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// The inflated document is not an inventory document this build understands.
    #[error("inventory document {key} is not valid inventory JSON")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// The document's schema is newer (or older) than this build reads.
    #[error(
        "inventory document {key} has schema version {found}; this build reads versions 1 to {supported}"
    )]
    UnsupportedSchema {
        key: String,
        found: u32,
        supported: u32,
    },
}

impl From<AwsError> for InventoryIoError {
    fn from(e: AwsError) -> InventoryIoError {
        InventoryIoError::Aws(Box::new(e))
    }
}

/// The gzip JSON bytes of `inventory`, as [`write_inventory`] stores them.
///
/// # Errors
/// Serialising or compressing failed (not expected for plain data written to memory).
pub fn encode_inventory(inventory: &Inventory) -> Result<Vec<u8>, std::io::Error> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    serde_json::to_writer(&mut gz, inventory).map_err(std::io::Error::other)?;
    gz.flush()?;
    gz.finish()
}

/// Only the version, read first so a newer document is refused before it is misread.
#[derive(Deserialize)]
struct Header {
    schema_version: u32,
}

/// The document in gzip JSON `bytes` (what [`encode_inventory`] made); `key` names it in errors.
///
/// # Errors
/// [`InventoryIoError::Gzip`], [`InventoryIoError::Json`] or
/// [`InventoryIoError::UnsupportedSchema`].
pub fn decode_inventory(key: &str, bytes: &[u8]) -> Result<Inventory, InventoryIoError> {
    let mut json = Vec::new();
    let mut reader = GzDecoder::new(bytes).take(MAX_DOCUMENT_BYTES + 1);
    reader
        .read_to_end(&mut json)
        .map_err(|source| InventoryIoError::Gzip {
            key: key.to_owned(),
            source,
        })?;
    if json.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(InventoryIoError::Gzip {
            key: key.to_owned(),
            source: std::io::Error::other("the document inflates past the size limit"),
        });
    }
    let json_error = |source| InventoryIoError::Json {
        key: key.to_owned(),
        source,
    };
    let header: Header = serde_json::from_slice(&json).map_err(json_error)?;
    if !inventory::readable(header.schema_version) {
        return Err(InventoryIoError::UnsupportedSchema {
            key: key.to_owned(),
            found: header.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(&json).map_err(json_error)
}

/// Writes `inventory` to `s3://bucket/key` in the DR region as gzip JSON (see the module doc):
/// one `PutObject`.
///
/// # Errors
/// The `PutObject`'s classified [`AwsError`] (an encoding failure, not expected, is reported as
/// a [`ErrorKind::Fatal`] `PutObject` error that was never sent).
pub async fn write_inventory(
    dr: &DrS3,
    bucket: &str,
    key: &str,
    inventory: &Inventory,
) -> Result<Written, AwsError> {
    let bytes = encode_inventory(inventory)
        .map_err(|e| dr.local_error("PutObject", "encoding the inventory document failed", e))?;
    let written = Written {
        key: key.to_owned(),
        sha256: sha256_hex(&bytes),
        size_bytes: bytes.len() as u64,
    };
    dr.put_object(|b| {
        b.bucket(bucket)
            .key(key)
            .content_type(INVENTORY_CONTENT_TYPE)
            .metadata("schema-version", inventory.schema_version.to_string())
            .body(ByteStream::from(bytes))
    })
    .await?;
    Ok(written)
}

/// Reads the inventory document at `s3://bucket/key` in the DR region: one `GetObject`.
///
/// # Errors
/// [`InventoryIoError`]: the call failed, the body could not be read, or the document is not
/// one this build reads.
pub async fn read_inventory(
    dr: &DrS3,
    bucket: &str,
    key: &str,
) -> Result<Inventory, InventoryIoError> {
    let out = dr.get_object(|b| b.bucket(bucket).key(key)).await?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|source| InventoryIoError::Body {
            key: key.to_owned(),
            source,
        })?
        .into_bytes();
    decode_inventory(key, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_names_come_from_arns() {
        assert_eq!(bucket_of_arn("arn:aws:s3:::dr-bucket"), "dr-bucket");
        assert_eq!(bucket_of_arn("dr-bucket"), "dr-bucket");
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix(&[]), "");
        assert_eq!(common_prefix(&["logs/a/"]), "logs/a/");
        assert_eq!(common_prefix(&["logs/a/", "logs/b/"]), "logs/");
        assert_eq!(common_prefix(&["logs/", ""]), "");
        assert_eq!(common_prefix(&["é1", "é2"]), "é");
    }

    #[test]
    fn newest_are_kept_newest_first() {
        let mut v = vec![
            (DateTime::from_secs(10), "a".to_owned()),
            (DateTime::from_secs(30), "b".to_owned()),
            (DateTime::from_secs(20), "c".to_owned()),
            (DateTime::from_secs(30), "a".to_owned()),
        ];
        keep_newest(&mut v, 3);
        let keys: Vec<&str> = v.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    fn sample() -> Inventory {
        let mut inv = Inventory {
            schema_version: SCHEMA_VERSION,
            captured_at_ms: 5,
            primary_region: "us-east-1".into(),
            dr_region: "us-west-2".into(),
            ..Inventory::default()
        };
        inv.instances.push(pilotlight_core::inventory::Instance {
            id: "i-1".into(),
            instance_type: "m5.large".into(),
            tier: 1,
            ..Default::default()
        });
        inv
    }

    #[test]
    fn encoding_is_deterministic_and_round_trips() {
        let inv = sample();
        let a = encode_inventory(&inv).unwrap();
        let b = encode_inventory(&inv).unwrap();
        assert_eq!(a, b);
        assert_eq!(decode_inventory("k", &a).unwrap(), inv);
    }

    #[test]
    fn newer_schemas_and_garbage_are_refused_with_their_reason() {
        let mut inv = sample();
        inv.schema_version = SCHEMA_VERSION + 1;
        let bytes = encode_inventory(&inv).unwrap();
        match decode_inventory("k", &bytes) {
            Err(InventoryIoError::UnsupportedSchema {
                found, supported, ..
            }) => {
                assert_eq!(found, SCHEMA_VERSION + 1);
                assert_eq!(supported, SCHEMA_VERSION);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_inventory("k", b"not gzip"),
            Err(InventoryIoError::Gzip { .. })
        ));
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"{\"schema_version\": 1, \"bogus\": true}")
            .unwrap();
        assert!(matches!(
            decode_inventory("k", &gz.finish().unwrap()),
            Err(InventoryIoError::Json { .. })
        ));
    }
}
