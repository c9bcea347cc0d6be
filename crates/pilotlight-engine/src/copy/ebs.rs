//! R2: EBS snapshots. Sources are the primary's completed snapshots owned by the account
//! (optionally narrowed by tags and volume ids), listed with `DescribeSnapshots`; the tier comes
//! from the snapshot's tier tag, else its volume's (one paginated `DescribeVolumes`), else the
//! default. Copies are made from the DR side with `CopySnapshot` (which has no idempotency token:
//! the reconciler's journal and the `pilotlight:source` tag stand in for one), re-encrypted
//! with the mapped DR KMS key, and carry the source's tags plus pilotlight's.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use pilotlight_aws::ec2::{self, DrEc2, PrimaryEc2};
use pilotlight_aws::tags::{self as owntags, Owned};
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::copy::CopyKind;

use super::{CopyOps, DrCopy, DrState, KmsKeys, RESOURCE_TAG, SOURCE_TIME_TAG, Source, TIER_TAG};
use crate::ReconcileError;

/// Page size for the snapshot and volume lists (the API's maximum is 1,000).
const PAGE: i32 = 1000;

/// Which primary snapshots are protected and how copies are encrypted.
#[derive(Debug, Clone, Default)]
pub struct EbsSelection {
    /// Every one of these tags must be on the snapshot.
    pub tags: BTreeMap<String, String>,
    /// Only snapshots of these volumes (empty: all).
    pub volume_ids: Vec<String>,
    /// The tag holding a volume's or snapshot's tier.
    pub tier_tag: String,
    pub default_tier: u8,
    /// The DR KMS key for encrypted sources.
    pub kms: KmsKeys,
}

/// EBS snapshot copies.
#[derive(Debug)]
pub struct EbsCopies {
    pub primary: PrimaryEc2,
    pub dr: DrEc2,
    pub selection: EbsSelection,
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// A tier tag's value, if it is a tier (1–9); anything else falls back to the default tier.
fn parse_tier(value: &str) -> Option<u8> {
    value.trim().parse().ok().filter(|t| (1..=9).contains(t))
}

fn millis(t: Option<&aws_smithy_types::DateTime>) -> i64 {
    t.and_then(|t| t.to_millis().ok()).unwrap_or(0)
}

impl EbsCopies {
    /// Volume id → tier, from one paginated volume list.
    async fn volume_tiers(&self) -> Result<HashMap<String, u8>, AwsError> {
        let mut out = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .primary
                .describe_volumes(|b| {
                    b.filters(
                        Filter::builder()
                            .name("tag-key")
                            .values(&self.selection.tier_tag)
                            .build(),
                    )
                    .max_results(PAGE)
                    .set_next_token(token.clone())
                })
                .await?;
            for v in page.volumes() {
                if let (Some(id), Some(tier)) = (
                    v.volume_id(),
                    tag_value(v.tags(), &self.selection.tier_tag).and_then(parse_tier),
                ) {
                    out.insert(id.to_owned(), tier);
                }
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

#[async_trait]
impl CopyOps for EbsCopies {
    fn kind(&self) -> CopyKind {
        CopyKind::EbsSnapshot
    }

    async fn sources(&self) -> Result<Vec<Source>, ReconcileError> {
        let mut filters = vec![Filter::builder().name("status").values("completed").build()];
        for (k, v) in &self.selection.tags {
            filters.push(Filter::builder().name(format!("tag:{k}")).values(v).build());
        }
        if !self.selection.volume_ids.is_empty() {
            filters.push(
                Filter::builder()
                    .name("volume-id")
                    .set_values(Some(self.selection.volume_ids.clone()))
                    .build(),
            );
        }
        let mut snapshots = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .primary
                .describe_snapshots(|b| {
                    b.owner_ids("self")
                        .set_filters(Some(filters.clone()))
                        .max_results(PAGE)
                        .set_next_token(token.clone())
                })
                .await?;
            snapshots.extend(page.snapshots().iter().cloned());
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let need_volume_tiers = snapshots
            .iter()
            .any(|s| tag_value(s.tags(), &self.selection.tier_tag).is_none());
        let volume_tiers = if need_volume_tiers {
            self.volume_tiers().await?
        } else {
            HashMap::new()
        };
        Ok(snapshots
            .iter()
            .filter_map(|s| {
                let id = s.snapshot_id()?.to_owned();
                let volume = s.volume_id()?.to_owned();
                let tier = tag_value(s.tags(), &self.selection.tier_tag)
                    .and_then(parse_tier)
                    .or_else(|| volume_tiers.get(&volume).copied())
                    .unwrap_or(self.selection.default_tier);
                Some(Source {
                    id,
                    resource_id: volume,
                    created_ms: millis(s.start_time()),
                    size_gib: u64::try_from(s.volume_size().unwrap_or(0)).unwrap_or(0),
                    tier,
                    encrypted: s.encrypted().unwrap_or(false),
                    kms_key_id: s.kms_key_id().map(str::to_owned),
                    tags: s
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with("pilotlight:"))
                        .collect(),
                })
            })
            .collect())
    }

    async fn dr_copies(&self) -> Result<Vec<DrCopy>, ReconcileError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .dr
                .describe_snapshots(|b| {
                    b.owner_ids("self")
                        .filters(
                            Filter::builder()
                                .name(format!("tag:{}", owntags::MANAGED))
                                .values("true")
                                .build(),
                        )
                        .max_results(PAGE)
                        .set_next_token(token.clone())
                })
                .await?;
            for s in page.snapshots() {
                let Some(id) = s.snapshot_id() else { continue };
                let state = match s.state().map(|st| st.as_str()) {
                    Some("completed") => DrState::Completed,
                    Some("error") | Some("recoverable") => DrState::Failed,
                    _ => DrState::Pending {
                        progress_pct: s
                            .progress()
                            .and_then(|p| p.trim_end_matches('%').parse().ok())
                            .unwrap_or(0),
                    },
                };
                out.push(DrCopy {
                    id: id.to_owned(),
                    source_id: tag_value(s.tags(), owntags::SOURCE).map(str::to_owned),
                    resource_id: tag_value(s.tags(), RESOURCE_TAG).map(str::to_owned),
                    source_created_ms: tag_value(s.tags(), SOURCE_TIME_TAG)
                        .and_then(|t| t.parse().ok()),
                    state,
                    owned: ec2::owned(id, s.tags()),
                });
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn start(&self, source: &Source) -> Result<String, AwsError> {
        let mut tags = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .tags(tag(owntags::MANAGED, "true"))
            .tags(tag(owntags::SOURCE, &source.id))
            .tags(tag(RESOURCE_TAG, &source.resource_id))
            .tags(tag(SOURCE_TIME_TAG, &source.created_ms.to_string()))
            .tags(tag(TIER_TAG, &source.tier.to_string()));
        for (k, v) in &source.tags {
            tags = tags.tags(tag(k, v));
        }
        let kms = if source.encrypted {
            self.selection.kms.dr_key_for(source.kms_key_id.as_deref())
        } else {
            None
        };
        let region = self.primary.region().to_owned();
        let out = self
            .dr
            .copy_snapshot(|b| {
                b.source_region(&region)
                    .source_snapshot_id(&source.id)
                    .description(format!(
                        "pilotlight copy of {} ({}) from {region}",
                        source.id, source.resource_id
                    ))
                    .set_encrypted(source.encrypted.then_some(true))
                    .set_kms_key_id(kms)
                    .tag_specifications(tags.build())
            })
            .await?;
        out.snapshot_id()
            .map(str::to_owned)
            .ok_or_else(|| AwsError {
                service: "ec2",
                operation: "CopySnapshot",
                region: self.dr.region().to_owned(),
                kind: ErrorKind::Fatal,
                code: String::new(),
                message: Some("response has no snapshot id".into()),
                source: "CopySnapshot response without snapshotId".into(),
            })
    }

    async fn delete(&self, copy: &Owned) -> Result<(), AwsError> {
        self.dr.delete_snapshot(copy).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_tiers_one_to_nine_are_tiers() {
        assert_eq!(super::parse_tier("1"), Some(1));
        assert_eq!(super::parse_tier(" 9 "), Some(9));
        assert_eq!(super::parse_tier("0"), None);
        assert_eq!(super::parse_tier("12"), None);
        assert_eq!(super::parse_tier("gold"), None);
    }
}
