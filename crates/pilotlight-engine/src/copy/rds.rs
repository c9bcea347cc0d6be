//! R3: RDS DB instance snapshots ([`RdsCopies`]) and Aurora DB cluster snapshots
//! ([`RdsClusterCopies`]). Sources are the primary's `available` snapshots, manual and
//! automated, listed with `DescribeDBSnapshots` / `DescribeDBClusterSnapshots` (pages of 100),
//! narrowed by DB instance or cluster ids and by selector tags; the tier comes from the
//! snapshot's tier tag, else its instance's or cluster's (one paginated
//! `DescribeDBInstances` / `DescribeDBClusters`), else the default.
//!
//! Copies are made from the DR side with `CopyDBSnapshot` / `CopyDBClusterSnapshot`, sent
//! without SDK retries, naming the source by ARN and the copy by a **deterministic** identifier
//! derived from that ARN ([`target_id`]): a repeated request answers `…AlreadyExists`, which is
//! taken as success, so RDS copies are idempotent. Encrypted sources are re-encrypted with the
//! mapped DR KMS key and carry a `PreSignedUrl` signed for the source region
//! ([`pilotlight_aws::presign`]).
//!
//! RDS also caps the number of manual snapshots per region (`rds_manual_snapshot_quota`): a copy
//! is a manual snapshot in the DR region, so [`CopyOps::free_slots`] counts every manual DB
//! snapshot (or, for clusters, every manual cluster snapshot) there, owned or not, and copies
//! beyond the quota stay queued.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_rds::types::{DbClusterSnapshot, DbSnapshot, Tag};
use pilotlight_aws::presign::{CopyAction, CopyPresign};
use pilotlight_aws::rds::{DrRds, PrimaryRds};
use pilotlight_aws::tags::{self as owntags, Owned};
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::copy::CopyKind;

use super::{CopyOps, DrCopy, DrState, KmsKeys, RESOURCE_TAG, SOURCE_TIME_TAG, Source, TIER_TAG};
use crate::ReconcileError;

/// Page size for the RDS lists (the API's maximum).
const PAGE: i32 = 100;
/// AWS's limit of tags on one RDS resource.
const MAX_TAGS: usize = 50;
/// Longest DB (cluster) snapshot identifier AWS accepts.
const MAX_ID_LEN: usize = 255;

/// Which primary RDS snapshots are protected and how copies are encrypted.
#[derive(Debug, Clone)]
pub struct RdsSelection {
    /// Every one of these tags must be on the snapshot or on its DB instance / cluster.
    pub tags: BTreeMap<String, String>,
    /// Only snapshots of these DB instances (empty: all).
    pub db_instance_ids: Vec<String>,
    /// Only snapshots of these DB clusters (empty: all).
    pub db_cluster_ids: Vec<String>,
    /// The tag holding a snapshot's, instance's or cluster's tier.
    pub tier_tag: String,
    pub default_tier: u8,
    /// The DR KMS key for encrypted sources.
    pub kms: KmsKeys,
    /// Manual snapshots (of the kind) the DR region may hold; copies beyond it wait.
    pub manual_snapshot_quota: u32,
}

impl Default for RdsSelection {
    fn default() -> RdsSelection {
        RdsSelection {
            tags: BTreeMap::new(),
            db_instance_ids: Vec::new(),
            db_cluster_ids: Vec::new(),
            tier_tag: "dr:tier".into(),
            default_tier: 2,
            kms: KmsKeys::default(),
            manual_snapshot_quota: 100,
        }
    }
}

/// RDS DB instance snapshot copies (kind `rds_snapshot`).
#[derive(Debug)]
pub struct RdsCopies(Rds);

/// Aurora DB cluster snapshot copies (kind `rds_cluster_snapshot`).
#[derive(Debug)]
pub struct RdsClusterCopies(Rds);

impl RdsCopies {
    pub fn new(primary: PrimaryRds, dr: DrRds, selection: RdsSelection) -> RdsCopies {
        RdsCopies(Rds {
            primary,
            dr,
            selection,
            cluster: false,
        })
    }
}

impl RdsClusterCopies {
    pub fn new(primary: PrimaryRds, dr: DrRds, selection: RdsSelection) -> RdsClusterCopies {
        RdsClusterCopies(Rds {
            primary,
            dr,
            selection,
            cluster: true,
        })
    }
}

/// Both kinds: `cluster` picks the cluster-snapshot calls.
#[derive(Debug)]
struct Rds {
    primary: PrimaryRds,
    dr: DrRds,
    selection: RdsSelection,
    cluster: bool,
}

/// A DB snapshot or DB cluster snapshot, as far as copying cares.
#[derive(Debug, Clone, PartialEq)]
struct Snap {
    identifier: String,
    arn: String,
    /// DB instance or cluster identifier.
    resource_id: String,
    status: String,
    created_ms: i64,
    size_gib: u64,
    percent: i32,
    encrypted: bool,
    kms_key_id: Option<String>,
    tags: Vec<(String, String)>,
}

fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

fn get<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn millis(t: Option<&aws_smithy_types::DateTime>) -> i64 {
    t.and_then(|t| t.to_millis().ok()).unwrap_or(0)
}

impl Snap {
    fn from_db(s: &DbSnapshot) -> Option<Snap> {
        Some(Snap {
            identifier: s.db_snapshot_identifier()?.to_owned(),
            arn: s.db_snapshot_arn()?.to_owned(),
            resource_id: s.db_instance_identifier()?.to_owned(),
            status: s.status().unwrap_or_default().to_owned(),
            created_ms: millis(s.snapshot_create_time()),
            size_gib: u64::try_from(s.allocated_storage().unwrap_or(0)).unwrap_or(0),
            percent: s.percent_progress().unwrap_or(0),
            encrypted: s.encrypted().unwrap_or(false),
            kms_key_id: s.kms_key_id().map(str::to_owned),
            tags: pairs(s.tag_list()),
        })
    }

    fn from_cluster(s: &DbClusterSnapshot) -> Option<Snap> {
        Some(Snap {
            identifier: s.db_cluster_snapshot_identifier()?.to_owned(),
            arn: s.db_cluster_snapshot_arn()?.to_owned(),
            resource_id: s.db_cluster_identifier()?.to_owned(),
            status: s.status().unwrap_or_default().to_owned(),
            created_ms: millis(s.snapshot_create_time()),
            size_gib: u64::try_from(s.allocated_storage().unwrap_or(0)).unwrap_or(0),
            percent: s.percent_progress().unwrap_or(0),
            encrypted: s.storage_encrypted().unwrap_or(false),
            kms_key_id: s.kms_key_id().map(str::to_owned),
            tags: pairs(s.tag_list()),
        })
    }

    /// The DR state of a copy from its RDS status.
    fn dr_state(&self) -> DrState {
        match self.status.as_str() {
            "available" => DrState::Completed,
            "failed" | "incompatible-restore" | "error" => DrState::Failed,
            _ => DrState::Pending {
                progress_pct: self.percent.clamp(0, 99),
            },
        }
    }
}

/// A tier tag's value, if it is a tier (1–9); anything else falls back to the default tier.
fn parse_tier(value: &str) -> Option<u8> {
    value.trim().parse().ok().filter(|t| (1..=9).contains(t))
}

/// FNV-1a, 64 bits: a hash that is stable across Rust versions and processes, so the target
/// identifier of a source never changes.
fn fnv1a(data: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The deterministic identifier of the DR copy of the snapshot `source_arn`: `pl-`, the
/// source's identifier (the ARN's last field) lower-cased with every run of characters other
/// than letters and digits turned into one hyphen, then `-` and 8 hex digits of the ARN's
/// hash (so sources with the same name in different regions or accounts differ). It is a valid
/// RDS identifier: letters, digits and hyphens, starting with a letter, no `--`, no trailing
/// hyphen, at most 255 characters.
pub fn target_id(source_arn: &str) -> String {
    let name = source_arn.splitn(7, ':').nth(6).unwrap_or(source_arn);
    let hash = format!("{:08x}", fnv1a(source_arn) & 0xffff_ffff);
    let mut clean = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            clean.push(c.to_ascii_lowercase());
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    // "pl-" + name + "-" + hash.
    clean.truncate(MAX_ID_LEN - 3 - 1 - hash.len());
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        format!("pl-{hash}")
    } else {
        format!("pl-{clean}-{hash}")
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// pilotlight's tags for the copy of `source`, then the source's own (minus `aws:` and
/// `pilotlight:` ones), up to AWS's 50 tags per resource.
fn copy_tags(source: &Source) -> Vec<Tag> {
    let mut tags = vec![
        tag(owntags::MANAGED, "true"),
        tag(owntags::SOURCE, &source.id),
        tag(RESOURCE_TAG, &source.resource_id),
        tag(SOURCE_TIME_TAG, &source.created_ms.to_string()),
        tag(TIER_TAG, &source.tier.to_string()),
    ];
    for (k, v) in &source.tags {
        if tags.len() >= MAX_TAGS {
            break;
        }
        tags.push(tag(k, v));
    }
    tags
}

fn no_marker(m: Option<&str>) -> Option<String> {
    m.filter(|t| !t.is_empty()).map(str::to_owned)
}

impl Rds {
    fn kind(&self) -> CopyKind {
        if self.cluster {
            CopyKind::RdsClusterSnapshot
        } else {
            CopyKind::RdsSnapshot
        }
    }

    fn operation(&self) -> &'static str {
        if self.cluster {
            "CopyDBClusterSnapshot"
        } else {
            "CopyDBSnapshot"
        }
    }

    /// Every snapshot of the kind in the primary (`dr == false`) or the DR region, optionally
    /// only of one `SnapshotType`.
    async fn list(&self, dr: bool, snapshot_type: Option<&str>) -> Result<Vec<Snap>, AwsError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let next = if self.cluster {
                let build = |b: aws_sdk_rds::operation::describe_db_cluster_snapshots::builders::DescribeDBClusterSnapshotsFluentBuilder| {
                    b.set_snapshot_type(snapshot_type.map(str::to_owned))
                        .max_records(PAGE)
                        .set_marker(marker.clone())
                };
                let page = if dr {
                    self.dr.describe_db_cluster_snapshots(build).await?
                } else {
                    self.primary.describe_db_cluster_snapshots(build).await?
                };
                out.extend(
                    page.db_cluster_snapshots()
                        .iter()
                        .filter_map(Snap::from_cluster),
                );
                no_marker(page.marker())
            } else {
                let build = |b: aws_sdk_rds::operation::describe_db_snapshots::builders::DescribeDBSnapshotsFluentBuilder| {
                    b.set_snapshot_type(snapshot_type.map(str::to_owned))
                        .max_records(PAGE)
                        .set_marker(marker.clone())
                };
                let page = if dr {
                    self.dr.describe_db_snapshots(build).await?
                } else {
                    self.primary.describe_db_snapshots(build).await?
                };
                out.extend(page.db_snapshots().iter().filter_map(Snap::from_db));
                no_marker(page.marker())
            };
            match next {
                Some(m) if Some(&m) != marker.as_ref() => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }

    /// DB instance (or cluster) identifier → its tags, from one paginated list.
    async fn resource_tags(&self) -> Result<HashMap<String, Vec<(String, String)>>, AwsError> {
        let mut out = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let next = if self.cluster {
                let page = self
                    .primary
                    .describe_db_clusters(|b| b.max_records(PAGE).set_marker(marker.clone()))
                    .await?;
                for c in page.db_clusters() {
                    if let Some(id) = c.db_cluster_identifier() {
                        out.insert(id.to_owned(), pairs(c.tag_list()));
                    }
                }
                no_marker(page.marker())
            } else {
                let page = self
                    .primary
                    .describe_db_instances(|b| b.max_records(PAGE).set_marker(marker.clone()))
                    .await?;
                for i in page.db_instances() {
                    if let Some(id) = i.db_instance_identifier() {
                        out.insert(id.to_owned(), pairs(i.tag_list()));
                    }
                }
                no_marker(page.marker())
            };
            match next {
                Some(m) if Some(&m) != marker.as_ref() => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }

    fn selected_ids(&self) -> &[String] {
        if self.cluster {
            &self.selection.db_cluster_ids
        } else {
            &self.selection.db_instance_ids
        }
    }

    fn matches_selector(&self, tags: &[(String, String)]) -> bool {
        self.selection
            .tags
            .iter()
            .all(|(k, v)| get(tags, k) == Some(v.as_str()))
    }

    async fn sources(&self) -> Result<Vec<Source>, ReconcileError> {
        let ids = self.selected_ids();
        let snaps: Vec<Snap> = self
            .list(false, None)
            .await?
            .into_iter()
            .filter(|s| s.status == "available")
            .filter(|s| ids.is_empty() || ids.contains(&s.resource_id))
            .collect();
        let tier_tag = self.selection.tier_tag.as_str();
        let need_resources = snaps.iter().any(|s| {
            get(&s.tags, tier_tag).is_none()
                || (!self.selection.tags.is_empty() && !self.matches_selector(&s.tags))
        });
        let resources = if need_resources {
            self.resource_tags().await?
        } else {
            HashMap::new()
        };
        let none = Vec::new();
        Ok(snaps
            .into_iter()
            .filter_map(|s| {
                let owner = resources.get(&s.resource_id).unwrap_or(&none);
                if !self.matches_selector(&s.tags) && !self.matches_selector(owner) {
                    return None;
                }
                let tier = get(&s.tags, tier_tag)
                    .and_then(parse_tier)
                    .or_else(|| get(owner, tier_tag).and_then(parse_tier))
                    .unwrap_or(self.selection.default_tier);
                Some(Source {
                    id: s.arn,
                    resource_id: s.resource_id,
                    created_ms: s.created_ms,
                    size_gib: s.size_gib,
                    tier,
                    encrypted: s.encrypted,
                    kms_key_id: s.kms_key_id,
                    tags: s
                        .tags
                        .into_iter()
                        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with("pilotlight:"))
                        .collect(),
                })
            })
            .collect())
    }

    async fn dr_copies(&self) -> Result<Vec<DrCopy>, ReconcileError> {
        Ok(self
            .list(true, Some("manual"))
            .await?
            .into_iter()
            .filter(|s| owntags::is_managed(s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
            .map(|s| DrCopy {
                state: s.dr_state(),
                source_id: get(&s.tags, owntags::SOURCE).map(str::to_owned),
                resource_id: get(&s.tags, RESOURCE_TAG).map(str::to_owned),
                source_created_ms: get(&s.tags, SOURCE_TIME_TAG).and_then(|t| t.parse().ok()),
                owned: Owned::from_pairs(
                    &s.identifier,
                    s.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ),
                id: s.identifier,
            })
            .collect())
    }

    async fn free_slots(&self) -> Result<u32, ReconcileError> {
        let manual = self.list(true, Some("manual")).await?.len();
        let manual = u32::try_from(manual).unwrap_or(u32::MAX);
        Ok(self.selection.manual_snapshot_quota.saturating_sub(manual))
    }

    fn error(&self, kind: ErrorKind, message: String) -> AwsError {
        AwsError {
            service: "rds",
            operation: self.operation(),
            region: self.dr.region().to_owned(),
            kind,
            code: String::new(),
            source: message.clone().into(),
            message: Some(message),
        }
    }

    async fn start(&self, source: &Source) -> Result<String, AwsError> {
        let target = target_id(&source.id);
        let (kms, presigned) = if source.encrypted {
            let key = self
                .selection
                .kms
                .dr_key_for(source.kms_key_id.as_deref())
                .ok_or_else(|| {
                    self.error(
                        ErrorKind::Fatal,
                        format!(
                            "encrypted source {} uses KMS key {} which has no DR key: add it to \
                         copy.kms_key_map or set copy.dr_default_kms_key",
                            source.id,
                            source.kms_key_id.as_deref().unwrap_or("(unknown)")
                        ),
                    )
                })?;
            let url = self
                .primary
                .presign_copy(&CopyPresign {
                    action: if self.cluster {
                        CopyAction::DbClusterSnapshot
                    } else {
                        CopyAction::DbSnapshot
                    },
                    source_region: self.primary.region(),
                    destination_region: self.dr.region(),
                    source_id: &source.id,
                    target_id: &target,
                    kms_key_id: &key,
                })
                .await?;
            (Some(key), Some(url))
        } else {
            (None, None)
        };
        let tags = copy_tags(source);
        let sent = if self.cluster {
            self.dr
                .copy_db_cluster_snapshot(|b| {
                    b.source_db_cluster_snapshot_identifier(&source.id)
                        .target_db_cluster_snapshot_identifier(&target)
                        .copy_tags(true)
                        .set_tags(Some(tags))
                        .set_kms_key_id(kms)
                        .set_pre_signed_url(presigned)
                })
                .await
                .map(|out| {
                    out.db_cluster_snapshot()
                        .and_then(|s| s.db_cluster_snapshot_identifier())
                        .map(str::to_owned)
                })
        } else {
            self.dr
                .copy_db_snapshot(|b| {
                    b.source_db_snapshot_identifier(&source.id)
                        .target_db_snapshot_identifier(&target)
                        .copy_tags(true)
                        .set_tags(Some(tags))
                        .set_kms_key_id(kms)
                        .set_pre_signed_url(presigned)
                })
                .await
                .map(|out| {
                    out.db_snapshot()
                        .and_then(|s| s.db_snapshot_identifier())
                        .map(str::to_owned)
                })
        };
        match sent {
            Ok(id) => Ok(id.unwrap_or(target)),
            // The deterministic target exists: an earlier request (whose answer was lost) made
            // this very copy.
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                tracing::info!(kind = self.kind().as_str(), source = %source.id, target = %target,
                    "copy already exists; taking it as this request's");
                Ok(target)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, copy: &Owned) -> Result<(), AwsError> {
        if self.cluster {
            self.dr.delete_db_cluster_snapshot(copy).await
        } else {
            self.dr.delete_db_snapshot(copy).await
        }
    }
}

macro_rules! rds_copy_ops {
    ($ty:ident) => {
        #[async_trait]
        impl CopyOps for $ty {
            fn kind(&self) -> CopyKind {
                self.0.kind()
            }

            async fn sources(&self) -> Result<Vec<Source>, ReconcileError> {
                self.0.sources().await
            }

            async fn dr_copies(&self) -> Result<Vec<DrCopy>, ReconcileError> {
                self.0.dr_copies().await
            }

            async fn start(&self, source: &Source) -> Result<String, AwsError> {
                self.0.start(source).await
            }

            async fn delete(&self, copy: &Owned) -> Result<(), AwsError> {
                self.0.delete(copy).await
            }

            async fn free_slots(&self) -> Result<u32, ReconcileError> {
                self.0.free_slots().await
            }
        }
    };
}

rds_copy_ops!(RdsCopies);
rds_copy_ops!(RdsClusterCopies);

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_rds_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id.starts_with(|c: char| c.is_ascii_alphabetic())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !id.contains("--")
            && !id.ends_with('-')
    }

    #[test]
    fn target_ids_are_deterministic_valid_and_distinct() {
        let auto = "arn:aws:rds:us-east-1:123456789012:snapshot:rds:app-db-2026-11-24-10-00";
        let a = target_id(auto);
        assert_eq!(a, target_id(auto));
        assert!(a.starts_with("pl-rds-app-db-2026-11-24-10-00-"), "{a}");
        assert!(valid_rds_id(&a), "{a}");
        // Same name in another region or account: a different copy.
        let other = auto.replace("us-east-1", "eu-west-1");
        assert_ne!(a, target_id(&other));
        for arn in [
            "arn:aws:rds:us-east-1:1:snapshot:--weird__Name--",
            "arn:aws:rds:us-east-1:1:cluster-snapshot:ledger-1",
            "arn:aws:rds:us-east-1:1:snapshot:-",
            "no-arn-at-all",
            &format!("arn:aws:rds:us-east-1:1:snapshot:a{}", "-b".repeat(200)),
            &format!("arn:aws:rds:us-east-1:1:snapshot:{}", "x".repeat(300)),
        ] {
            let id = target_id(arn);
            assert!(valid_rds_id(&id), "{arn} -> {id}");
        }
        assert_eq!(
            target_id("arn:aws:rds:us-east-1:1:snapshot:--weird__Name--")
                .rsplit_once('-')
                .map(|(n, _)| n.to_owned()),
            Some("pl-weird-name".to_owned())
        );
    }

    #[test]
    fn rds_statuses_map_to_dr_states() {
        let snap = |status: &str, percent| Snap {
            identifier: "x".into(),
            arn: "arn".into(),
            resource_id: "db".into(),
            status: status.into(),
            created_ms: 0,
            size_gib: 1,
            percent,
            encrypted: false,
            kms_key_id: None,
            tags: vec![],
        };
        assert_eq!(snap("available", 100).dr_state(), DrState::Completed);
        assert_eq!(
            snap("copying", 40).dr_state(),
            DrState::Pending { progress_pct: 40 }
        );
        assert_eq!(
            snap("pending", 0).dr_state(),
            DrState::Pending { progress_pct: 0 }
        );
        assert_eq!(
            snap("creating", 0).dr_state(),
            DrState::Pending { progress_pct: 0 }
        );
        assert_eq!(snap("failed", 10).dr_state(), DrState::Failed);
    }

    #[test]
    fn only_tiers_one_to_nine_are_tiers() {
        assert_eq!(parse_tier("1"), Some(1));
        assert_eq!(parse_tier(" 9 "), Some(9));
        assert_eq!(parse_tier("0"), None);
        assert_eq!(parse_tier("gold"), None);
    }

    #[test]
    fn copy_tags_carry_ownership_and_stay_within_aws_limit() {
        let source = Source {
            id: "arn:aws:rds:us-east-1:1:snapshot:s".into(),
            resource_id: "db".into(),
            created_ms: 42,
            size_gib: 1,
            tier: 3,
            encrypted: false,
            kms_key_id: None,
            tags: (0..60).map(|i| (format!("k{i}"), "v".to_owned())).collect(),
        };
        let tags = copy_tags(&source);
        assert_eq!(tags.len(), MAX_TAGS);
        let get = |k: &str| {
            tags.iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
        };
        assert_eq!(get(owntags::MANAGED), Some("true"));
        assert_eq!(get(owntags::SOURCE), Some(source.id.as_str()));
        assert_eq!(get(RESOURCE_TAG), Some("db"));
        assert_eq!(get(SOURCE_TIME_TAG), Some("42"));
        assert_eq!(get(TIER_TAG), Some("3"));
    }
}
