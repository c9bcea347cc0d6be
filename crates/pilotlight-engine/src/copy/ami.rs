//! R4: AMIs. The protected AMIs are those used by the primary's running or stopped instances
//! (narrowed by the selector tags), listed with a paginated `DescribeInstances` and one
//! `DescribeImages` per 200 image ids (by `image-id` filter, state `available`: an instance
//! whose AMI was deregistered is simply not a source, instead of failing the list).
//!
//! **Launch role.** The protected resource of an AMI copy is the *launch role* of the instances
//! using it: the instance's `pilotlight:role` tag if present; else its `Name` tag with one
//! trailing `-<digits>` stripped (`web-03` → `web`); else the AMI id itself. Per role only the
//! newest AMI (by `CreationDate`) is a source; older ones are superseded. The role's tier is
//! the most important (lowest) tier tag (1–9) among its instances, else the default. An AMI
//! that is the newest of several roles is protected once, under the first of them (sorted),
//! with the most important of their tiers.
//!
//! **Copies** are made from the DR side with `CopyImage`, named deterministically
//! `pl-<source ami id>-<source name, sanitized>` (≤ 128 characters) and sent once with a
//! `ClientToken` derived from the source id and the DR region (AWS answers a repeated request
//! with the first copy). The copy's image and snapshots are tagged through
//! `TagSpecifications` (pilotlight's tags plus the source's own); moto ignores those, so the
//! new image and its backing snapshots are also tagged with `CreateTags` right after the copy.
//! A copy whose tagging never happened (the `CopyImage` answer was lost, or `CreateTags`
//! failed) is still found by its name, so the reconciler's journal resolves it and never
//! requests a second copy; but it carries no `pilotlight:managed` tag, so it is never owned and
//! never deleted by retention (it stays until an operator removes it), and without a resource
//! tag it does not count towards any role's retained copies.
//!
//! **Deletion** deregisters an owned copy, then deletes its backing DR snapshots **only** if
//! they carry `pilotlight:managed=true`; untagged backing snapshots are left in place
//! (deregistering an AMI never deletes its snapshots) for the operator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Image, Instance, ResourceType, Tag, TagSpecification};
use aws_smithy_types::date_time::Format;
use pilotlight_aws::ec2::{self, DrEc2, PrimaryEc2};
use pilotlight_aws::tags::{self as owntags, Owned};
use pilotlight_aws::{AwsError, ErrorKind};
use pilotlight_core::copy::CopyKind;

use super::{CopyOps, DrCopy, DrState, KmsKeys, RESOURCE_TAG, SOURCE_TIME_TAG, Source, TIER_TAG};
use crate::ReconcileError;

/// Page size of the instance and image lists (the API's maximum is 1,000).
const PAGE: i32 = 1000;
/// Image ids per `DescribeImages` (filter values are limited to 200).
const IMAGE_CHUNK: usize = 200;
/// The instance tag naming a launch role.
pub const ROLE_TAG: &str = "pilotlight:role";
/// Prefix of every copy's name.
const NAME_PREFIX: &str = "pl-";
/// AWS's maximum AMI name length.
const MAX_NAME: usize = 128;
/// AWS's maximum `ClientToken` length.
const MAX_TOKEN: usize = 64;

/// Which primary instances are protected and how copies are encrypted.
#[derive(Debug, Clone, Default)]
pub struct AmiSelection {
    /// Every one of these tags must be on the instance.
    pub tags: BTreeMap<String, String>,
    /// The tag holding an instance's tier.
    pub tier_tag: String,
    pub default_tier: u8,
    /// The DR KMS key for encrypted sources.
    pub kms: KmsKeys,
}

/// AMI copies.
#[derive(Debug)]
pub struct AmiCopies {
    pub primary: PrimaryEc2,
    pub dr: DrEc2,
    pub selection: AmiSelection,
    /// Source AMI id → its name, from the last `sources` (the copy's name derives from it).
    names: Mutex<HashMap<String, String>>,
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// A tier tag's value, if it is a tier (1–9).
fn parse_tier(value: &str) -> Option<u8> {
    value.trim().parse().ok().filter(|t| (1..=9).contains(t))
}

/// The launch role of an instance running `image_id` (see the module doc).
pub fn launch_role(tags: &[Tag], image_id: &str) -> String {
    if let Some(role) = tag_value(tags, ROLE_TAG).filter(|r| !r.trim().is_empty()) {
        return role.trim().to_owned();
    }
    if let Some(name) = tag_value(tags, "Name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let stripped = match name.rsplit_once('-') {
            Some((head, digits))
                if !head.is_empty()
                    && !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                head
            }
            _ => name,
        };
        return stripped.to_owned();
    }
    image_id.to_owned()
}

/// The DR copy's name: `pl-<source id>-<source name>`, the name reduced to the characters AMI
/// names allow and the whole cut to 128 characters.
pub fn copy_name(source_id: &str, source_name: Option<&str>) -> String {
    let mut name = format!("{NAME_PREFIX}{source_id}");
    let clean: String = source_name
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim();
    if !clean.is_empty() {
        name.push('-');
        name.push_str(clean);
    }
    name.chars()
        .take(MAX_NAME)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// The source AMI id a copy's name carries, if it is one of pilotlight's names.
pub fn source_of_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix(NAME_PREFIX)?.strip_prefix("ami-")?;
    let hex: String = rest
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (!hex.is_empty()).then(|| format!("ami-{hex}"))
}

/// `CopyImage`'s idempotency token: the same for every request copying `source_id` into
/// `dest_region`, at most 64 ASCII characters.
pub fn client_token(source_id: &str, dest_region: &str) -> String {
    format!("{NAME_PREFIX}{source_id}-{dest_region}")
        .chars()
        .filter(char::is_ascii)
        .take(MAX_TOKEN)
        .collect()
}

fn created_ms(image: &Image) -> i64 {
    image
        .creation_date()
        .and_then(|d| aws_smithy_types::DateTime::from_str(d, Format::DateTime).ok())
        .and_then(|d| d.to_millis().ok())
        .unwrap_or(0)
}

fn image_state(image: &Image) -> Option<DrState> {
    match image.state().map(|s| s.as_str()) {
        Some("available") => Some(DrState::Completed),
        Some("failed" | "invalid" | "error") => Some(DrState::Failed),
        Some("deregistered" | "disabled") => None,
        _ => Some(DrState::Pending { progress_pct: 0 }),
    }
}

fn backing_snapshots(image: &Image) -> Vec<String> {
    image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_owned))
        .collect()
}

/// One role's instances: their AMIs and most important tier.
#[derive(Debug, Default)]
struct Role {
    images: Vec<String>,
    tier: Option<u8>,
}

impl AmiCopies {
    pub fn new(primary: PrimaryEc2, dr: DrEc2, selection: AmiSelection) -> AmiCopies {
        AmiCopies {
            primary,
            dr,
            selection,
            names: Mutex::default(),
        }
    }

    async fn instances(&self) -> Result<Vec<Instance>, AwsError> {
        let mut filters = vec![
            Filter::builder()
                .name("instance-state-name")
                .values("running")
                .values("stopped")
                .build(),
        ];
        for (k, v) in &self.selection.tags {
            filters.push(Filter::builder().name(format!("tag:{k}")).values(v).build());
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .primary
                .describe_instances(|b| {
                    b.set_filters(Some(filters.clone()))
                        .max_results(PAGE)
                        .set_next_token(token.clone())
                })
                .await?;
            for r in page.reservations() {
                out.extend(r.instances().iter().cloned());
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

    /// The available images among `ids`, from the primary or DR face.
    async fn images(&self, ids: &[String], dr: bool) -> Result<Vec<Image>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IMAGE_CHUNK) {
            let build = |b: aws_sdk_ec2::operation::describe_images::builders::DescribeImagesFluentBuilder| {
                b.filters(
                    Filter::builder()
                        .name("image-id")
                        .set_values(Some(chunk.to_vec()))
                        .build(),
                )
            };
            let page = if dr {
                self.dr.describe_images(build).await?
            } else {
                self.primary
                    .describe_images(|b| {
                        build(b)
                            .filters(Filter::builder().name("state").values("available").build())
                    })
                    .await?
            };
            out.extend(page.images().iter().cloned());
        }
        Ok(out)
    }

    /// Every DR image of this account matching `filter`, all pages.
    async fn dr_images(&self, filter: Filter) -> Result<Vec<Image>, AwsError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .dr
                .describe_images(|b| {
                    b.owners("self")
                        .filters(filter.clone())
                        .max_results(PAGE)
                        .set_next_token(token.clone())
                })
                .await?;
            out.extend(page.images().iter().cloned());
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The source's name, from the last listing or, failing that, from the primary.
    async fn source_name(&self, source_id: &str) -> Result<Option<String>, AwsError> {
        let cached = self
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(source_id)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let images = self.images(&[source_id.to_owned()], false).await?;
        Ok(images
            .iter()
            .find(|i| i.image_id() == Some(source_id))
            .and_then(|i| i.name().map(str::to_owned)))
    }

    fn no_id(&self) -> AwsError {
        AwsError {
            service: "ec2",
            operation: "CopyImage",
            region: self.dr.region().to_owned(),
            kind: ErrorKind::Fatal,
            code: String::new(),
            message: Some("response has no image id".into()),
            source: "CopyImage response without imageId".into(),
        }
    }
}

#[async_trait]
impl CopyOps for AmiCopies {
    fn kind(&self) -> CopyKind {
        CopyKind::Ami
    }

    async fn sources(&self) -> Result<Vec<Source>, ReconcileError> {
        let mut roles: BTreeMap<String, Role> = BTreeMap::new();
        for i in self.instances().await? {
            let Some(image) = i.image_id().filter(|s| !s.is_empty()) else {
                continue;
            };
            let role = roles.entry(launch_role(i.tags(), image)).or_default();
            if !role.images.iter().any(|x| x == image) {
                role.images.push(image.to_owned());
            }
            let tier = tag_value(i.tags(), &self.selection.tier_tag).and_then(parse_tier);
            role.tier = match (role.tier, tier) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let mut ids: Vec<String> = roles.values().flat_map(|r| r.images.clone()).collect();
        ids.sort();
        ids.dedup();
        let images: HashMap<String, Image> = self
            .images(&ids, false)
            .await?
            .into_iter()
            .filter(|i| i.state().map(|s| s.as_str()) == Some("available"))
            .filter_map(|i| Some((i.image_id()?.to_owned(), i)))
            .collect();
        {
            let mut names = self
                .names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            names.clear();
            names.extend(
                images
                    .iter()
                    .filter_map(|(id, i)| Some((id.clone(), i.name()?.to_owned()))),
            );
        }
        // The newest AMI of each role; an AMI newest for several roles goes to the first.
        let mut by_image: BTreeMap<&str, (String, u8)> = BTreeMap::new();
        for (name, role) in &roles {
            let newest = role
                .images
                .iter()
                .filter_map(|id| images.get(id))
                .max_by_key(|i| (created_ms(i), i.image_id().unwrap_or_default().to_owned()));
            let Some(image) = newest.and_then(|i| i.image_id()) else {
                continue;
            };
            let tier = role.tier.unwrap_or(self.selection.default_tier);
            by_image
                .entry(image)
                .and_modify(|(_, t)| *t = (*t).min(tier))
                .or_insert((name.clone(), tier));
        }
        Ok(by_image
            .into_iter()
            .filter_map(|(id, (role, tier))| {
                let image = images.get(id)?;
                let ebs: Vec<_> = image
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs())
                    .collect();
                Some(Source {
                    id: id.to_owned(),
                    resource_id: role,
                    created_ms: created_ms(image),
                    size_gib: ebs
                        .iter()
                        .map(|e| u64::try_from(e.volume_size().unwrap_or(0)).unwrap_or(0))
                        .sum(),
                    tier,
                    encrypted: ebs.iter().any(|e| e.encrypted().unwrap_or(false)),
                    kms_key_id: ebs.iter().find_map(|e| e.kms_key_id().map(str::to_owned)),
                    tags: image
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
        let managed = self
            .dr_images(
                Filter::builder()
                    .name(format!("tag:{}", owntags::MANAGED))
                    .values("true")
                    .build(),
            )
            .await?;
        // Copies whose tagging never happened are found by their name (see the module doc).
        let named = self
            .dr_images(
                Filter::builder()
                    .name("name")
                    .values(format!("{NAME_PREFIX}ami-*"))
                    .build(),
            )
            .await?;
        let mut seen = std::collections::HashSet::new();
        let mut untagged = Vec::new();
        let mut tagged = Vec::new();
        for image in managed.iter().chain(&named) {
            let Some(id) = image.image_id() else { continue };
            let Some(state) = image_state(image) else {
                continue;
            };
            if !seen.insert(id.to_owned()) {
                continue;
            }
            let tags = image.tags();
            let owned = ec2::owned(id, tags);
            let copy = DrCopy {
                id: id.to_owned(),
                source_id: tag_value(tags, owntags::SOURCE)
                    .map(str::to_owned)
                    .or_else(|| image.name().and_then(source_of_name)),
                resource_id: tag_value(tags, RESOURCE_TAG).map(str::to_owned),
                source_created_ms: tag_value(tags, SOURCE_TIME_TAG).and_then(|t| t.parse().ok()),
                state,
                owned,
            };
            if copy.owned.is_some() {
                tagged.push(copy);
            } else {
                untagged.push(copy);
            }
        }
        // Owned copies last, so a lookup by source prefers them.
        untagged.extend(tagged);
        Ok(untagged)
    }

    async fn start(&self, source: &Source) -> Result<String, AwsError> {
        let mut own = vec![
            tag(owntags::MANAGED, "true"),
            tag(owntags::SOURCE, &source.id),
            tag(RESOURCE_TAG, &source.resource_id),
            tag(SOURCE_TIME_TAG, &source.created_ms.to_string()),
            tag(TIER_TAG, &source.tier.to_string()),
        ];
        own.extend(source.tags.iter().map(|(k, v)| tag(k, v)));
        let spec = |kind: ResourceType| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(own.clone()))
                .build()
        };
        let kms = if source.encrypted {
            self.selection.kms.dr_key_for(source.kms_key_id.as_deref())
        } else {
            None
        };
        let name = copy_name(&source.id, self.source_name(&source.id).await?.as_deref());
        let region = self.primary.region().to_owned();
        let token = client_token(&source.id, self.dr.region());
        let out = self
            .dr
            .copy_image(|b| {
                b.source_region(&region)
                    .source_image_id(&source.id)
                    .name(&name)
                    .description(format!(
                        "pilotlight copy of {} ({}) from {region}",
                        source.id, source.resource_id
                    ))
                    .client_token(&token)
                    .set_encrypted(source.encrypted.then_some(true))
                    .set_kms_key_id(kms)
                    .tag_specifications(spec(ResourceType::Image))
                    .tag_specifications(spec(ResourceType::Snapshot))
            })
            .await?;
        let id = out
            .image_id()
            .map(str::to_owned)
            .ok_or_else(|| self.no_id())?;
        // moto ignores TagSpecifications on CopyImage: tag the image and its backing snapshots.
        // The copy exists whatever happens here, so a failure is logged, not returned.
        let snapshots = match self.images(std::slice::from_ref(&id), true).await {
            Ok(images) => images.iter().flat_map(backing_snapshots).collect(),
            Err(e) => {
                tracing::warn!(image = %id, error = %e, "cannot list the copy's snapshots");
                Vec::new()
            }
        };
        let tagged = self
            .dr
            .create_tags(|b| {
                b.set_resources(Some(
                    std::iter::once(id.clone())
                        .chain(snapshots.clone())
                        .collect(),
                ))
                .set_tags(Some(own.clone()))
            })
            .await;
        if let Err(e) = tagged {
            tracing::warn!(image = %id, source = %source.id, error = %e,
                "copy made but not tagged: it will be tracked by name and never deleted");
        }
        Ok(id)
    }

    async fn delete(&self, copy: &Owned) -> Result<(), AwsError> {
        let snapshots: Vec<String> = self
            .images(&[copy.id().to_owned()], true)
            .await?
            .iter()
            .flat_map(backing_snapshots)
            .collect();
        self.dr.deregister_image(copy).await?;
        if snapshots.is_empty() {
            return Ok(());
        }
        let listed = self
            .dr
            .describe_snapshots(|b| {
                b.owner_ids("self").filters(
                    Filter::builder()
                        .name("snapshot-id")
                        .set_values(Some(snapshots.clone()))
                        .build(),
                )
            })
            .await?;
        for s in listed.snapshots() {
            let Some(owned) = s.snapshot_id().and_then(|id| ec2::owned(id, s.tags())) else {
                continue;
            };
            match self.dr.delete_snapshot(&owned).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs.iter().map(|(k, v)| tag(k, v)).collect()
    }

    #[test]
    fn the_role_tag_wins_then_the_name_without_its_number_then_the_ami() {
        let t = tags(&[(ROLE_TAG, "api"), ("Name", "web-03")]);
        assert_eq!(launch_role(&t, "ami-1"), "api");
        assert_eq!(launch_role(&tags(&[("Name", "web-03")]), "ami-1"), "web");
        assert_eq!(launch_role(&tags(&[("Name", "web-a")]), "ami-1"), "web-a");
        assert_eq!(launch_role(&tags(&[("Name", "db-1-2")]), "ami-1"), "db-1");
        assert_eq!(launch_role(&tags(&[("Name", "-12")]), "ami-1"), "-12");
        assert_eq!(launch_role(&tags(&[("Name", "  ")]), "ami-1"), "ami-1");
        assert_eq!(launch_role(&[], "ami-1"), "ami-1");
    }

    #[test]
    fn names_are_valid_deterministic_and_lead_back_to_the_source() {
        let n = copy_name("ami-0abc123", Some("web server {prod} v2"));
        assert_eq!(n, "pl-ami-0abc123-web server -prod- v2");
        assert_eq!(copy_name("ami-0abc123", None), "pl-ami-0abc123");
        let long = copy_name("ami-0abc123", Some(&"x".repeat(300)));
        assert_eq!(long.len(), MAX_NAME);
        assert_eq!(source_of_name(&n).as_deref(), Some("ami-0abc123"));
        assert_eq!(source_of_name(&long).as_deref(), Some("ami-0abc123"));
        assert_eq!(
            source_of_name("pl-ami-0abc123").as_deref(),
            Some("ami-0abc123")
        );
        assert_eq!(source_of_name("web-ami-0abc123"), None);
        assert_eq!(source_of_name("pl-snap-1"), None);
    }

    #[test]
    fn client_tokens_are_per_source_and_region_and_short() {
        let a = client_token("ami-0123456789abcdef0", "us-west-2");
        assert_eq!(a, client_token("ami-0123456789abcdef0", "us-west-2"));
        assert_ne!(a, client_token("ami-0123456789abcdef0", "eu-west-1"));
        assert_ne!(a, client_token("ami-0123456789abcdef1", "us-west-2"));
        assert!(client_token(&"a".repeat(100), "us-west-2").len() <= MAX_TOKEN);
    }

    #[test]
    fn only_tiers_one_to_nine_are_tiers() {
        assert_eq!(parse_tier("1"), Some(1));
        assert_eq!(parse_tier("0"), None);
        assert_eq!(parse_tier("10"), None);
    }

    #[test]
    fn image_states_map_to_copy_states() {
        let image = |s: &str| Image::builder().state(s.into()).build();
        assert_eq!(image_state(&image("available")), Some(DrState::Completed));
        assert_eq!(
            image_state(&image("pending")),
            Some(DrState::Pending { progress_pct: 0 })
        );
        assert_eq!(image_state(&image("failed")), Some(DrState::Failed));
        assert_eq!(image_state(&image("invalid")), Some(DrState::Failed));
        assert_eq!(image_state(&image("error")), Some(DrState::Failed));
        assert_eq!(image_state(&image("deregistered")), None);
    }

    #[test]
    fn creation_dates_parse_to_millis() {
        let i = Image::builder()
            .creation_date("2026-11-24T18:00:01.000Z")
            .build();
        assert_eq!(created_ms(&i), 1_795_543_201_000);
    }
}
