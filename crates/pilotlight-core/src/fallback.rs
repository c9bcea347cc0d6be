//! Plan B on capacity errors (SPEC D4), the pure part: which (instance type, availability zone,
//! count) a launch group tries next after EC2 answered `InsufficientInstanceCapacity`.
//!
//! The restore executor describes a launch group as a [`LaunchRequest`] and asks
//! [`next_attempt`] what to launch. It launches that [`Attempt`]; on a capacity error it marks
//! the pair in the shared [`UnavailableCache`] (so other groups skip it for the policy's TTL),
//! adds the attempt to the group's tried list and asks again, until an attempt succeeds or
//! [`next_attempt`] answers `None` (every option is tried or unavailable). An attempt that
//! differs from the request carries a [`Substitution`]; the executor records the one that
//! succeeded and reports it (D11). A partly launched group is the executor's business: it asks
//! again with a request for the instances still missing.
//!
//! # Order of the options
//!
//! [`candidates`] lists every option once, in this order (a later duplicate of a (type, AZ)
//! pair is dropped):
//!
//! 1. the requested type in the requested AZ, with the requested count (no substitution);
//! 2. the requested type in each other allowed AZ, in [`LaunchRequest::allowed_azs`] order
//!    ([`SubstitutionReason::OtherAvailabilityZone`]);
//! 3. each [neighbouring size](neighbours) of the same family — the next smaller size first,
//!    then the next larger one — in the requested AZ and then in each other allowed AZ, with
//!    the count from [`count_for`] ([`SubstitutionReason::NeighbourSize`], or
//!    [`SubstitutionReason::SmallerFootprint`] when the utilisation allowed less capacity than
//!    the group had);
//! 4. for each alternative family configured for the type's family
//!    ([`FallbackPolicy::alternative_families`], in configured order), the same size in that
//!    family when the catalog gives it exactly the same vCPUs and memory, in the requested AZ
//!    and then in each other allowed AZ, with the requested count
//!    ([`SubstitutionReason::AlternativeFamily`]).
//!
//! Neighbours and alternatives need the requested type in the catalog (the vCPUs and memory to
//! scale from); without it only the AZ options remain. The list depends on nothing but the
//! arguments (maps are ordered), so the same state always gives the same answer.
//!
//! # Counts
//!
//! A neighbouring size is asked for enough instances to hold the group's capacity — its vCPUs
//! *and* its memory — rounded up, never down: `count = max(1, ⌈vCPUs needed / vCPUs per
//! instance⌉, ⌈MiB needed / MiB per instance⌉)`. So `r5.2xlarge × 1` (8 vCPUs) becomes
//! `r5.xlarge × 2`, `r5.xlarge × 2` becomes `r5.2xlarge × 1`, and `r5.xlarge × 3` (12 vCPUs)
//! becomes `r5.2xlarge × 2` (16 vCPUs). What is "needed" is the group's full footprint, unless
//! the stored utilisation history shows its peak fits in less ([`required_footprint`]):
//! needed vCPUs = ⌈vCPUs × peak CPU % × (1 + headroom)⌉, needed memory likewise from the memory
//! peak when every instance has one, else the full memory. A request with
//! [`LaunchRequest::keep_count`] (instances with their own data volumes or fixed IPs, which
//! cannot be split or merged) keeps its count and takes a neighbour only when that many of it
//! hold what is needed.

mod size;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::inventory::{InstanceTypeInfo, Utilisation, family};

pub use size::{Size, neighbours, parse_size, size_rank};

/// Knobs of plan B, configured as `[restore.fallback]`
/// ([`RestoreConfig::fallback`](crate::config::RestoreConfig::fallback)), whose loader checks
/// the ranges and names given below. Defaults are the documented ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackPolicy {
    /// Headroom kept above the measured utilisation peak when the history allows a smaller
    /// footprint, in percent of the peak (0 to 100; default 20: a 50 % CPU peak over 16 vCPUs
    /// needs ⌈16 × 0.5 × 1.2⌉ = 10 vCPUs).
    pub headroom_pct: u32,
    /// How long a (type, AZ) pair that answered `InsufficientInstanceCapacity` is skipped by
    /// every launch group, in seconds (at least 1; default 600).
    pub unavailable_ttl_secs: u64,
    /// Family → families whose same-size types may replace it when they have exactly the same
    /// vCPUs and memory (`r5 = ["r5a", "r6i"]`), tried in this order after the neighbouring
    /// sizes. Families are lowercase letters, digits and `-`, starting with a letter (`r5`,
    /// `m7i-flex`); a family may not list itself, nor the same alternative twice. Default: none.
    pub alternative_families: BTreeMap<String, Vec<String>>,
    /// Whether the utilisation history may shrink the footprint of a neighbouring size
    /// (default true). When false, a neighbour always holds the group's full capacity.
    pub smaller_footprint: bool,
    /// Data points each instance's utilisation needs before it counts (at least 1; default 24:
    /// a day at the default hourly period). Fewer, on any instance of the group, is no history
    /// at all.
    pub min_utilisation_samples: u32,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        Self {
            headroom_pct: 20,
            unavailable_ttl_secs: 600,
            alternative_families: BTreeMap::new(),
            smaller_footprint: true,
            min_utilisation_samples: 24,
        }
    }
}

/// A launch group as plan B sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRequest {
    /// The instance type the plan asked for.
    pub instance_type: String,
    /// The DR availability zone the plan asked for.
    pub availability_zone: String,
    /// Instances asked for; a request for 0 has no options.
    pub count: u32,
    /// DR availability zones the group may also launch in (the mapped AZs where it has a
    /// subnet), in order of preference. The requested AZ comes first whether listed or not;
    /// duplicates are ignored.
    pub allowed_azs: Vec<String>,
    /// Primary instance ids of the group, whose utilisation decides whether a smaller
    /// footprint fits.
    pub instance_ids: Vec<String>,
    /// The count may not change (instances with their own data volumes or a fixed private IP).
    pub keep_count: bool,
}

/// Why an attempt differs from its request. Serialised (and usable as a metric label) in
/// snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubstitutionReason {
    /// The same type and count in another allowed AZ.
    OtherAvailabilityZone,
    /// A neighbouring size of the same family holding at least the group's capacity.
    NeighbourSize,
    /// A neighbouring size holding less than the group's capacity, as the utilisation peak
    /// (with headroom) fits.
    SmallerFootprint,
    /// The same size of an allowed alternative family with equal vCPUs and memory.
    AlternativeFamily,
}

impl SubstitutionReason {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            SubstitutionReason::OtherAvailabilityZone => "other_availability_zone",
            SubstitutionReason::NeighbourSize => "neighbour_size",
            SubstitutionReason::SmallerFootprint => "smaller_footprint",
            SubstitutionReason::AlternativeFamily => "alternative_family",
        }
    }
}

/// What was launched instead of what was asked: recorded and reported for every attempt that
/// differs from its request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Substitution {
    pub from_type: String,
    pub from_az: String,
    pub from_count: u32,
    pub to_type: String,
    pub to_az: String,
    pub to_count: u32,
    pub reason: SubstitutionReason,
}

/// One option to launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub instance_type: String,
    pub availability_zone: String,
    pub count: u32,
    /// `None` for the request itself.
    pub substitution: Option<Substitution>,
}

/// vCPUs and memory of a number of instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    pub vcpus: u64,
    pub memory_mib: u64,
}

impl Footprint {
    /// `count` instances of a type.
    pub fn of(info: InstanceTypeInfo, count: u32) -> Self {
        Self {
            vcpus: u64::from(info.vcpus).saturating_mul(u64::from(count)),
            memory_mib: info.memory_mib.saturating_mul(u64::from(count)),
        }
    }

    /// Whether this holds at least `other` in both vCPUs and memory.
    pub fn covers(self, other: Footprint) -> bool {
        self.vcpus >= other.vcpus && self.memory_mib >= other.memory_mib
    }
}

/// The utilisation peak of a whole launch group, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupPeak {
    /// The highest CPU peak of any instance of the group.
    pub cpu_pct: f64,
    /// The highest memory peak, when every instance has one.
    pub mem_pct: Option<f64>,
}

/// The group's peak: the busiest instance's CPU peak (and memory peak) applied to the whole
/// group, the conservative reading, since load need not spread evenly over the new instances.
/// Peaks above 100 % count as 100 %.
///
/// `None` — no history, so no smaller footprint — when `instance_ids` is empty, or any
/// instance has no utilisation, fewer than `min_samples` data points, or a CPU peak that is
/// negative or not finite. A memory peak that is missing, negative or not finite on any
/// instance makes the group's memory peak unknown.
pub fn group_peak(
    instance_ids: &[String],
    utilisation: &BTreeMap<String, Utilisation>,
    min_samples: u32,
) -> Option<GroupPeak> {
    if instance_ids.is_empty() {
        return None;
    }
    let valid = |pct: f64| (pct.is_finite() && pct >= 0.0).then(|| pct.min(100.0));
    let mut cpu_pct: f64 = 0.0;
    let mut mem_pct: Option<f64> = Some(0.0);
    for id in instance_ids {
        let u = utilisation.get(id).filter(|u| u.samples >= min_samples)?;
        cpu_pct = cpu_pct.max(valid(u.cpu_peak_pct)?);
        mem_pct = match (mem_pct, u.mem_peak_pct.and_then(valid)) {
            (Some(so_far), Some(this)) => Some(so_far.max(this)),
            _ => None,
        };
    }
    Some(GroupPeak { cpu_pct, mem_pct })
}

/// What a peak of `peak_pct` percent of `total` needs with `headroom_pct` percent of headroom:
/// ⌈total × peak/100 × (100 + headroom)/100⌉, never more than `total`. Floating-point noise
/// below 10⁻⁶ is not rounded up (25 × 35.2 % × 1.25 is 11, not 12). A peak that is negative or
/// not finite needs the whole `total`.
pub fn peak_need(total: u64, peak_pct: f64, headroom_pct: u32) -> u64 {
    if !peak_pct.is_finite() || peak_pct < 0.0 {
        return total;
    }
    let exact =
        total as f64 * peak_pct.min(100.0) * f64::from(100_u32.saturating_add(headroom_pct))
            / 10_000.0;
    let rounded = (exact - 1e-6).ceil().max(0.0);
    if rounded >= total as f64 {
        total
    } else {
        // Non-negative and below `total`, so it fits in a u64 exactly.
        rounded as u64
    }
}

/// What a group of footprint `full` needs of a replacement: `full`, or less when `peak` is
/// known and `policy.smaller_footprint` allows it — vCPUs from the CPU peak, memory from the
/// memory peak when known (else the full memory), each with `policy.headroom_pct` of headroom
/// ([`peak_need`]).
pub fn required_footprint(
    full: Footprint,
    peak: Option<&GroupPeak>,
    policy: &FallbackPolicy,
) -> Footprint {
    match peak {
        Some(peak) if policy.smaller_footprint => Footprint {
            vcpus: peak_need(full.vcpus, peak.cpu_pct, policy.headroom_pct),
            memory_mib: peak.mem_pct.map_or(full.memory_mib, |pct| {
                peak_need(full.memory_mib, pct, policy.headroom_pct)
            }),
        },
        _ => full,
    }
}

/// Instances of type `to` holding `required`: max(1, ⌈vCPUs / vCPUs per instance⌉, ⌈MiB /
/// MiB per instance⌉). `None` when `to` has no vCPUs or no memory in the catalog, or the
/// count exceeds `u32::MAX`.
pub fn count_for(required: Footprint, to: InstanceTypeInfo) -> Option<u32> {
    if to.vcpus == 0 || to.memory_mib == 0 {
        return None;
    }
    let by_cpu = required.vcpus.div_ceil(u64::from(to.vcpus));
    let by_mem = required.memory_mib.div_ceil(to.memory_mib);
    u32::try_from(by_cpu.max(by_mem).max(1)).ok()
}

/// `count` instances of `from` scaled to type `to` with no capacity lost (the full-footprint
/// case of [`count_for`]): 1 × 8 vCPUs → 2 × 4 vCPUs, 2 × 4 → 1 × 8, 3 × 4 → 2 × 8.
pub fn scaled_count(count: u32, from: InstanceTypeInfo, to: InstanceTypeInfo) -> Option<u32> {
    count_for(Footprint::of(from, count), to)
}

/// Every option of `request`, in the order of the module documentation, each (type, AZ) pair
/// once. Empty when the request asks for no instances.
pub fn candidates(
    request: &LaunchRequest,
    catalog: &BTreeMap<String, InstanceTypeInfo>,
    utilisation: &BTreeMap<String, Utilisation>,
    policy: &FallbackPolicy,
) -> Vec<Attempt> {
    let mut options = Options::new(request);
    if request.count == 0 {
        return options.list;
    }
    options.push_all(&request.instance_type, request.count, None);

    let Some(&from) = catalog.get(&request.instance_type) else {
        return options.list;
    };
    let full = Footprint::of(from, request.count);
    let peak = if policy.smaller_footprint {
        group_peak(
            &request.instance_ids,
            utilisation,
            policy.min_utilisation_samples,
        )
    } else {
        None
    };
    let required = required_footprint(full, peak.as_ref(), policy);
    for neighbour in neighbours(&request.instance_type, catalog) {
        let Some(&to) = catalog.get(&neighbour) else {
            continue;
        };
        let Some(minimal) = count_for(required, to) else {
            continue;
        };
        let count = if request.keep_count {
            if minimal > request.count {
                continue;
            }
            request.count
        } else {
            minimal
        };
        let reason = if Footprint::of(to, count).covers(full) {
            SubstitutionReason::NeighbourSize
        } else {
            SubstitutionReason::SmallerFootprint
        };
        options.push_all(&neighbour, count, Some(reason));
    }

    let own_family = family(&request.instance_type);
    let size = request
        .instance_type
        .split_once('.')
        .map_or("", |(_, size)| size);
    if size.is_empty() {
        return options.list;
    }
    let alternatives = policy
        .alternative_families
        .get(own_family)
        .map_or(&[][..], Vec::as_slice);
    for alternative in alternatives {
        let name = format!("{alternative}.{size}");
        let equal = catalog
            .get(&name)
            .is_some_and(|to| to.vcpus == from.vcpus && to.memory_mib == from.memory_mib);
        if equal {
            options.push_all(
                &name,
                request.count,
                Some(SubstitutionReason::AlternativeFamily),
            );
        }
    }
    options.list
}

/// The first of [`candidates`] that is neither in `tried` (matched by type and AZ) nor
/// unavailable at `now_ms`; `None` when every option is used up.
///
/// `tried` holds the attempts this request already made, whatever made them fail; a capacity
/// failure also belongs in `unavailable`, which other requests share.
pub fn next_attempt(
    request: &LaunchRequest,
    tried: &[Attempt],
    unavailable: &UnavailableCache,
    catalog: &BTreeMap<String, InstanceTypeInfo>,
    utilisation: &BTreeMap<String, Utilisation>,
    policy: &FallbackPolicy,
    now_ms: i64,
) -> Option<Attempt> {
    candidates(request, catalog, utilisation, policy)
        .into_iter()
        .find(|option| {
            let was_tried = tried.iter().any(|t| {
                t.instance_type == option.instance_type
                    && t.availability_zone == option.availability_zone
            });
            !was_tried
                && !unavailable.is_unavailable(
                    &option.instance_type,
                    &option.availability_zone,
                    now_ms,
                )
        })
}

/// The ordered, de-duplicated option list [`candidates`] builds.
struct Options<'r> {
    request: &'r LaunchRequest,
    /// The requested AZ, then the other allowed ones in order, each once.
    azs: Vec<&'r str>,
    seen: BTreeSet<(String, String)>,
    list: Vec<Attempt>,
}

impl<'r> Options<'r> {
    fn new(request: &'r LaunchRequest) -> Self {
        let mut azs: Vec<&str> = vec![request.availability_zone.as_str()];
        for az in &request.allowed_azs {
            if !azs.contains(&az.as_str()) {
                azs.push(az);
            }
        }
        Self {
            request,
            azs,
            seen: BTreeSet::new(),
            list: Vec::new(),
        }
    }

    /// `count` of `instance_type` in every AZ, in order. `reason` is that of a changed type;
    /// `None` means the requested type, whose other AZs are
    /// [`SubstitutionReason::OtherAvailabilityZone`].
    fn push_all(&mut self, instance_type: &str, count: u32, reason: Option<SubstitutionReason>) {
        let request = self.request;
        for &az in &self.azs {
            if !self.seen.insert((instance_type.to_owned(), az.to_owned())) {
                continue;
            }
            let changed = instance_type != request.instance_type
                || az != request.availability_zone
                || count != request.count;
            let substitution = changed.then(|| Substitution {
                from_type: request.instance_type.clone(),
                from_az: request.availability_zone.clone(),
                from_count: request.count,
                to_type: instance_type.to_owned(),
                to_az: az.to_owned(),
                to_count: count,
                reason: reason.unwrap_or(SubstitutionReason::OtherAvailabilityZone),
            });
            self.list.push(Attempt {
                instance_type: instance_type.to_owned(),
                availability_zone: az.to_owned(),
                count,
                substitution,
            });
        }
    }
}

/// (instance type, AZ) pairs that answered `InsufficientInstanceCapacity`, each skipped until
/// its expiry. Time is passed in (unix ms); the cache reads no clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnavailableCache {
    ttl_ms: i64,
    /// Type → AZ → unix ms until which the pair is unavailable.
    until: BTreeMap<String, BTreeMap<String, i64>>,
}

impl UnavailableCache {
    /// An empty cache whose entries last `ttl_secs`.
    pub fn new(ttl_secs: u64) -> Self {
        Self {
            ttl_ms: i64::try_from(ttl_secs.saturating_mul(1_000)).unwrap_or(i64::MAX),
            until: BTreeMap::new(),
        }
    }

    /// An empty cache with [`FallbackPolicy::unavailable_ttl_secs`].
    pub fn from_policy(policy: &FallbackPolicy) -> Self {
        Self::new(policy.unavailable_ttl_secs)
    }

    /// How long an entry lasts, in ms.
    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    /// Records that (`instance_type`, `az`) had no capacity at `now_ms`: it is unavailable
    /// until `now_ms + ttl` (a later mark extends, an earlier one never shortens).
    pub fn mark(&mut self, instance_type: &str, az: &str, now_ms: i64) {
        let expiry = now_ms.saturating_add(self.ttl_ms);
        let entry = self
            .until
            .entry(instance_type.to_owned())
            .or_default()
            .entry(az.to_owned())
            .or_insert(expiry);
        *entry = (*entry).max(expiry);
    }

    /// Whether (`instance_type`, `az`) is still unavailable at `now_ms` (strictly before its
    /// expiry).
    pub fn is_unavailable(&self, instance_type: &str, az: &str, now_ms: i64) -> bool {
        self.unavailable_until(instance_type, az)
            .is_some_and(|until| now_ms < until)
    }

    /// The expiry of the pair's entry, expired or not.
    pub fn unavailable_until(&self, instance_type: &str, az: &str) -> Option<i64> {
        self.until.get(instance_type)?.get(az).copied()
    }

    /// Drops the entries expired at `now_ms`; returns how many.
    pub fn purge_expired(&mut self, now_ms: i64) -> usize {
        let before = self.len();
        for zones in self.until.values_mut() {
            zones.retain(|_, until| now_ms < *until);
        }
        self.until.retain(|_, zones| !zones.is_empty());
        before - self.len()
    }

    /// Entries held, expired or not.
    pub fn len(&self) -> usize {
        self.until.values().map(BTreeMap::len).sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}
