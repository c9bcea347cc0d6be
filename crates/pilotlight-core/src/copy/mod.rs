//! The copy scheduler and the RPO arithmetic (SPEC R2–R4, R7).
//!
//! A [`Protected`] resource (an EBS volume, a DB instance, an Aurora cluster, an AMI launch
//! role) has a newest completed primary snapshot and, maybe, a completed DR copy of an older
//! one. Its RPO **lag** is `now − creation time of the source snapshot behind the newest
//! completed DR copy`, and its **deadline** is the instant that lag reaches its tier's RPO
//! target: `copied source time + rpo`. A resource never copied has no lag (it is infinitely
//! behind) and the earliest possible deadline.
//!
//! The scheduling rule ([`pick`]): AWS caps the copies in flight per kind and destination
//! region ([`CopyKind::aws_in_flight_limit`], overridable in [`Limits`]). Whenever slots are
//! free, fill them with the resources that have something newer to copy and nothing in flight,
//! earliest deadline first — that is, the resource furthest past, or closest to, its RPO
//! target goes first — then tier ascending (tier 1 first on ties), then resource id, so the
//! choice is deterministic. Deadlines are absolute instants, so the order does not depend on
//! the clock. This is earliest-deadline-first on lateness, which is what minimises the worst
//! overrun of the RPO targets; [`sim`] measures it against a textbook EDF and against FIFO.
//!
//! [`rpo_summary`] computes the R7 metrics per (kind, tier).
//!
//! Units: instants are milliseconds since the Unix epoch (`*_ms: i64`), durations and lags are
//! whole seconds (`*_secs: u64`, lags rounded down).

pub mod sim;

mod prng;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::CopyConfig;

/// What is copied (matches the store's `copies.kind` text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyKind {
    /// An EBS snapshot (`CopySnapshot`).
    EbsSnapshot,
    /// An RDS DB instance snapshot (`CopyDBSnapshot`).
    RdsSnapshot,
    /// An Aurora DB cluster snapshot (`CopyDBClusterSnapshot`).
    RdsClusterSnapshot,
    /// An AMI (`CopyImage`).
    Ami,
}

impl CopyKind {
    /// Every kind, in a stable order.
    pub const ALL: [CopyKind; 4] = [
        CopyKind::EbsSnapshot,
        CopyKind::RdsSnapshot,
        CopyKind::RdsClusterSnapshot,
        CopyKind::Ami,
    ];

    /// The name used in the store, config keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyKind::EbsSnapshot => "ebs_snapshot",
            CopyKind::RdsSnapshot => "rds_snapshot",
            CopyKind::RdsClusterSnapshot => "rds_cluster_snapshot",
            CopyKind::Ami => "ami",
        }
    }

    /// Parses [`CopyKind::as_str`] names; `None` for anything else.
    pub fn parse(name: &str) -> Option<CopyKind> {
        CopyKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// AWS's documented concurrent-copy limit per destination region: 20 EBS snapshots, 20 DB
    /// snapshots, 5 DB cluster snapshots, 300 AMIs (shared/AWS-LIMITS.md §2–4).
    pub fn aws_in_flight_limit(self) -> u32 {
        match self {
            CopyKind::EbsSnapshot => CopyConfig::AWS_EBS_MAX_IN_FLIGHT,
            CopyKind::RdsSnapshot => CopyConfig::AWS_RDS_MAX_IN_FLIGHT,
            CopyKind::RdsClusterSnapshot => CopyConfig::AWS_RDS_CLUSTER_MAX_IN_FLIGHT,
            CopyKind::Ami => CopyConfig::AWS_AMI_MAX_IN_FLIGHT,
        }
    }

    /// Position in [`CopyKind::ALL`], for per-kind counters.
    fn index(self) -> usize {
        match self {
            CopyKind::EbsSnapshot => 0,
            CopyKind::RdsSnapshot => 1,
            CopyKind::RdsClusterSnapshot => 2,
            CopyKind::Ami => 3,
        }
    }
}

impl fmt::Display for CopyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One protected resource (an EBS volume, a DB instance, an Aurora cluster, an AMI launch role)
/// as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protected {
    pub kind: CopyKind,
    /// The primary resource's id (volume id, DB identifier, launch role …).
    pub resource_id: String,
    /// Recovery tier (1 comes back first).
    pub tier: u8,
    /// The tier's RPO target, in seconds.
    pub rpo_secs: u64,
    /// Creation time of the newest completed primary snapshot (the candidate to copy), if any.
    pub newest_source_ms: Option<i64>,
    /// Creation time of the source snapshot behind the newest *completed* DR copy, if any.
    pub copied_source_ms: Option<i64>,
    /// Whether a copy for this resource is in flight now.
    pub in_flight: bool,
    /// Size of the data to copy, in GiB (informational for the scheduler; the simulator uses
    /// it for copy durations).
    pub size_gib: u64,
}

impl Protected {
    /// The RPO lag, `now − copied_source_ms`, in whole seconds (0 if the copied source is in
    /// the future of `now_ms`); `None` when never copied (infinitely behind).
    pub fn lag_secs(&self, now_ms: i64) -> Option<u64> {
        self.copied_source_ms
            .map(|copied| u64::try_from(now_ms.saturating_sub(copied)).unwrap_or(0) / 1000)
    }

    /// `copied_source_ms + rpo` in milliseconds: the moment the resource breaches its RPO
    /// target (`i64::MIN` when never copied: it is already past any target). Saturates.
    pub fn deadline_ms(&self) -> i64 {
        match self.copied_source_ms {
            None => i64::MIN,
            Some(copied) => copied.saturating_add(secs_to_ms(self.rpo_secs)),
        }
    }

    /// Whether there is something newer to copy and nothing in flight:
    /// `newest_source_ms > copied_source_ms` (any source beats "never copied") and
    /// `!in_flight`.
    pub fn needs_copy(&self) -> bool {
        if self.in_flight {
            return false;
        }
        match (self.newest_source_ms, self.copied_source_ms) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(newest), Some(copied)) => newest > copied,
        }
    }
}

/// Seconds to milliseconds, saturating at `i64::MAX`.
pub(crate) fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// In-flight limits per kind (per destination region).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Copies allowed in flight at once per kind. A kind absent from the map gets AWS's
    /// limit ([`CopyKind::aws_in_flight_limit`]).
    pub in_flight: BTreeMap<CopyKind, u32>,
}

impl Limits {
    /// The limit for `kind`: the map's entry, else AWS's limit.
    pub fn limit(&self, kind: CopyKind) -> u32 {
        self.in_flight
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.aws_in_flight_limit())
    }

    /// The limits configured in `[copy]` (`ebs_max_in_flight` …).
    pub fn from_config(config: &CopyConfig) -> Limits {
        Limits {
            in_flight: CopyKind::ALL
                .into_iter()
                .map(|kind| (kind, config.max_in_flight(kind.as_str())))
                .collect(),
        }
    }
}

impl Default for Limits {
    /// AWS's documented limits for every kind.
    fn default() -> Self {
        Limits {
            in_flight: CopyKind::ALL
                .into_iter()
                .map(|kind| (kind, kind.aws_in_flight_limit()))
                .collect(),
        }
    }
}

/// The scheduling order: deadline, then tier, then resource id; kind and then the index only
/// separate exact duplicates so the order is total.
fn schedule_order(resources: &[Protected], a: usize, b: usize) -> std::cmp::Ordering {
    let (ra, rb) = (&resources[a], &resources[b]);
    (ra.deadline_ms(), ra.tier, &ra.resource_id, ra.kind, a).cmp(&(
        rb.deadline_ms(),
        rb.tier,
        &rb.resource_id,
        rb.kind,
        b,
    ))
}

/// Which resources to start copying now, as indexes into `resources`, in start order.
///
/// For each kind, the free slots (`limits.limit(kind)` minus the resources of that kind with
/// `in_flight` set, never below 0) are filled with the [`Protected::needs_copy`] resources of
/// that kind, earliest [`Protected::deadline_ms`] first (never-copied resources first of all),
/// then tier ascending, then `resource_id`. The result is that same order across kinds. It
/// never holds more than the free slots of a kind, never an in-flight or up-to-date resource,
/// and holds every candidate of a kind when they fit.
///
/// The decision does not depend on the clock (deadlines are absolute), so the instant it is
/// made for, `_now_ms`, does not change it; it is part of the signature for callers that
/// schedule at a known instant.
pub fn pick(resources: &[Protected], limits: &Limits, _now_ms: i64) -> Vec<usize> {
    let mut free = [0u32; CopyKind::ALL.len()];
    let mut busy = [0u32; CopyKind::ALL.len()];
    for resource in resources.iter().filter(|r| r.in_flight) {
        busy[resource.kind.index()] = busy[resource.kind.index()].saturating_add(1);
    }
    for kind in CopyKind::ALL {
        free[kind.index()] = limits.limit(kind).saturating_sub(busy[kind.index()]);
    }

    // Per kind, keep only the best `free` candidates (a linear-time selection, so a large
    // backlog costs O(n) per call), then order everything picked.
    let mut per_kind: [Vec<usize>; CopyKind::ALL.len()] = Default::default();
    for (i, resource) in resources.iter().enumerate() {
        if resource.needs_copy() && free[resource.kind.index()] > 0 {
            per_kind[resource.kind.index()].push(i);
        }
    }
    let mut picked = Vec::new();
    for (candidates, &slots) in per_kind.iter_mut().zip(free.iter()) {
        let slots = usize::try_from(slots).unwrap_or(usize::MAX);
        if candidates.len() > slots {
            candidates.select_nth_unstable_by(slots, |&a, &b| schedule_order(resources, a, b));
            candidates.truncate(slots);
        }
        picked.append(candidates);
    }
    picked.sort_unstable_by(|&a, &b| schedule_order(resources, a, b));
    picked
}

/// The R7 numbers for one (kind, tier).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RpoStats {
    /// Protected resources.
    pub count: u64,
    /// The largest lag among resources with a DR copy, in seconds (0 if none has one).
    pub worst_lag_secs: u64,
    /// The median lag among resources with a DR copy, in seconds: the *lower* median (the
    /// `(n − 1) / 2`-th smallest) for an even count; 0 if none has a copy.
    pub median_lag_secs: u64,
    /// Resources whose lag exceeds their RPO target, never-copied ones included.
    pub past_target: u64,
    /// Resources with no completed DR copy (excluded from worst and median).
    pub never_copied: u64,
    /// Resources waiting for a copy slot: something newer to copy and nothing in flight.
    pub queue_depth: u64,
    /// Resources with a copy in flight.
    pub in_flight: u64,
}

/// The R7 summary per (kind, tier) at `now_ms`. Only (kind, tier) pairs with at least one
/// resource appear.
pub fn rpo_summary(resources: &[Protected], now_ms: i64) -> BTreeMap<(CopyKind, u8), RpoStats> {
    let mut lags: BTreeMap<(CopyKind, u8), Vec<u64>> = BTreeMap::new();
    let mut stats: BTreeMap<(CopyKind, u8), RpoStats> = BTreeMap::new();
    for resource in resources {
        let key = (resource.kind, resource.tier);
        let entry = stats.entry(key).or_default();
        let group_lags = lags.entry(key).or_default();
        entry.count += 1;
        match resource.lag_secs(now_ms) {
            None => {
                entry.never_copied += 1;
                entry.past_target += 1;
            }
            Some(lag) => {
                group_lags.push(lag);
                if lag > resource.rpo_secs {
                    entry.past_target += 1;
                }
            }
        }
        if resource.needs_copy() {
            entry.queue_depth += 1;
        }
        if resource.in_flight {
            entry.in_flight += 1;
        }
    }
    for (key, mut group_lags) in lags {
        if let Some(entry) = stats.get_mut(&key) {
            entry.worst_lag_secs = group_lags.iter().copied().max().unwrap_or(0);
            entry.median_lag_secs = lower_median(&mut group_lags).unwrap_or(0);
        }
    }
    stats
}

/// The lower median (the `(n − 1) / 2`-th smallest value); `None` for an empty slice.
/// Reorders the slice.
pub(crate) fn lower_median(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mid = (values.len() - 1) / 2;
    let (_, median, _) = values.select_nth_unstable(mid);
    Some(*median)
}

#[cfg(test)]
mod tests {
    use super::prng::SplitMix64;
    use super::*;

    const H: i64 = 3_600_000;

    fn res(kind: CopyKind, id: &str, tier: u8, rpo_secs: u64) -> Protected {
        Protected {
            kind,
            resource_id: id.to_owned(),
            tier,
            rpo_secs,
            newest_source_ms: None,
            copied_source_ms: None,
            in_flight: false,
            size_gib: 8,
        }
    }

    /// A resource with a newer snapshot than its copy: `copied` and `newest` in ms.
    fn pending(kind: CopyKind, id: &str, tier: u8, rpo_secs: u64, copied: i64) -> Protected {
        Protected {
            newest_source_ms: Some(copied + 1),
            copied_source_ms: Some(copied),
            ..res(kind, id, tier, rpo_secs)
        }
    }

    fn ids(resources: &[Protected], picked: &[usize]) -> Vec<String> {
        picked
            .iter()
            .map(|&i| resources[i].resource_id.clone())
            .collect()
    }

    fn limits(pairs: &[(CopyKind, u32)]) -> Limits {
        Limits {
            in_flight: pairs.iter().copied().collect(),
        }
    }

    #[test]
    fn kind_names_round_trip_and_match_serde() {
        for kind in CopyKind::ALL {
            assert_eq!(CopyKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().to_owned())
            );
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(CopyKind::ALL[kind.index()], kind);
        }
        assert_eq!(CopyKind::parse("EbsSnapshot"), None);
        assert_eq!(CopyKind::parse(""), None);
        assert_eq!(
            CopyKind::ALL.map(CopyKind::aws_in_flight_limit),
            [20, 20, 5, 300]
        );
    }

    #[test]
    fn limits_default_to_aws_and_follow_config() {
        let default = Limits::default();
        for kind in CopyKind::ALL {
            assert_eq!(default.limit(kind), kind.aws_in_flight_limit());
        }
        // A kind missing from the map falls back to AWS's limit.
        assert_eq!(limits(&[]).limit(CopyKind::Ami), 300);
        let config = CopyConfig {
            ebs_max_in_flight: 3,
            rds_max_in_flight: 4,
            rds_cluster_max_in_flight: 1,
            ami_max_in_flight: 7,
            ..CopyConfig::default()
        };
        let from = Limits::from_config(&config);
        assert_eq!(
            CopyKind::ALL.map(|k| from.limit(k)),
            [3, 4, 1, 7],
            "{from:?}"
        );
    }

    #[test]
    fn lag_deadline_and_needs_copy() {
        let now = 10 * H;
        let mut r = res(CopyKind::EbsSnapshot, "vol-1", 1, 3600);
        assert_eq!(r.lag_secs(now), None);
        assert_eq!(r.deadline_ms(), i64::MIN);
        assert!(!r.needs_copy(), "nothing to copy");
        r.newest_source_ms = Some(9 * H);
        assert!(r.needs_copy(), "never copied, a snapshot exists");
        r.copied_source_ms = Some(7 * H + 1500);
        assert_eq!(
            r.lag_secs(now),
            Some(3 * 3600 - 2),
            "10 798.5 s rounded down"
        );
        assert_eq!(r.deadline_ms(), 8 * H + 1500);
        assert!(r.needs_copy());
        r.in_flight = true;
        assert!(!r.needs_copy(), "in flight");
        r.in_flight = false;
        r.copied_source_ms = Some(9 * H);
        assert!(!r.needs_copy(), "up to date");
        assert_eq!(r.lag_secs(8 * H), Some(0), "copied source after now");
        r.rpo_secs = u64::MAX;
        assert_eq!(r.deadline_ms(), i64::MAX, "saturates");
    }

    #[test]
    fn pick_respects_limits_per_kind() {
        let mut resources = Vec::new();
        for i in 0..5 {
            resources.push(pending(
                CopyKind::EbsSnapshot,
                &format!("vol-{i}"),
                1,
                3600,
                i * 1000,
            ));
            resources.push(pending(
                CopyKind::RdsClusterSnapshot,
                &format!("db-{i}"),
                1,
                3600,
                i * 1000,
            ));
        }
        // One cluster copy already in flight: 2 − 1 = 1 free cluster slot.
        let mut busy = res(CopyKind::RdsClusterSnapshot, "db-busy", 1, 3600);
        busy.in_flight = true;
        resources.push(busy);
        let l = limits(&[
            (CopyKind::EbsSnapshot, 3),
            (CopyKind::RdsClusterSnapshot, 2),
        ]);
        let picked = pick(&resources, &l, 0);
        assert_eq!(
            ids(&resources, &picked),
            ["db-0", "vol-0", "vol-1", "vol-2"],
            "earliest deadlines, 3 EBS slots, 1 free cluster slot"
        );
        // A limit already exceeded leaves no slot (and does not underflow).
        let picked = pick(&resources, &limits(&[(CopyKind::RdsClusterSnapshot, 0)]), 0);
        assert!(
            picked
                .iter()
                .all(|&i| resources[i].kind == CopyKind::EbsSnapshot),
            "{picked:?}"
        );
        assert_eq!(picked.len(), 5, "EBS has AWS's 20 slots: every candidate");
    }

    #[test]
    fn pick_breaks_deadline_ties_by_tier_then_id() {
        // Same deadline (copied + rpo = 5 h) across tiers and ids.
        let resources = vec![
            pending(CopyKind::EbsSnapshot, "vol-b", 2, 3 * 3600, 2 * H),
            pending(CopyKind::EbsSnapshot, "vol-c", 1, 3600, 4 * H),
            pending(CopyKind::EbsSnapshot, "vol-a", 2, 4 * 3600, H),
            pending(CopyKind::EbsSnapshot, "vol-a", 3, 3600, 4 * H),
        ];
        let picked = pick(&resources, &Limits::default(), 0);
        assert_eq!(picked, [1, 2, 0, 3]);
        let picked = pick(&resources, &limits(&[(CopyKind::EbsSnapshot, 2)]), 0);
        assert_eq!(ids(&resources, &picked), ["vol-c", "vol-a"]);
    }

    #[test]
    fn pick_excludes_in_flight_and_up_to_date() {
        let mut in_flight = pending(CopyKind::Ami, "role-busy", 1, 60, 0);
        in_flight.in_flight = true;
        let mut up_to_date = res(CopyKind::Ami, "role-done", 1, 60);
        up_to_date.newest_source_ms = Some(5);
        up_to_date.copied_source_ms = Some(5);
        let no_snapshot = res(CopyKind::Ami, "role-none", 1, 60);
        let wanted = pending(CopyKind::Ami, "role-late", 3, 86_400, 9 * H);
        let resources = vec![in_flight, up_to_date, no_snapshot, wanted];
        assert_eq!(pick(&resources, &Limits::default(), 0), [3]);
        assert!(pick(&resources[..3], &Limits::default(), 0).is_empty());
        assert!(pick(&[], &Limits::default(), 0).is_empty());
    }

    #[test]
    fn pick_starts_the_resource_furthest_past_its_rpo_first() {
        let now = 30 * H;
        // Lags at `now`: big-t3 26 h of 24 h (2 h past); t1 1.5 h of 1 h (0.5 h past);
        // t2 3 h of 4 h (1 h to go); never-copied first of all.
        let mut never = res(CopyKind::EbsSnapshot, "vol-new", 3, 86_400);
        never.newest_source_ms = Some(now - H);
        let resources = vec![
            pending(CopyKind::EbsSnapshot, "vol-t1", 1, 3600, now - 3 * H / 2),
            pending(CopyKind::EbsSnapshot, "vol-t2", 2, 4 * 3600, now - 3 * H),
            pending(CopyKind::EbsSnapshot, "vol-t3", 3, 86_400, now - 26 * H),
            never,
        ];
        let picked = pick(&resources, &Limits::default(), now);
        assert_eq!(
            ids(&resources, &picked),
            ["vol-new", "vol-t3", "vol-t1", "vol-t2"]
        );
        let picked = pick(&resources, &limits(&[(CopyKind::EbsSnapshot, 2)]), now);
        assert_eq!(ids(&resources, &picked), ["vol-new", "vol-t3"]);
    }

    #[test]
    fn rpo_summary_matches_hand_computed_numbers() {
        let now = 100 * H;
        let mut resources = vec![
            // EBS tier 1 (rpo 1 h), lags 1800 s, 7200 s, 3600 s, never copied, 600 s.
            Protected {
                newest_source_ms: Some(now - 1000),
                copied_source_ms: Some(now - 1_800_000),
                ..res(CopyKind::EbsSnapshot, "vol-a", 1, 3600)
            },
            Protected {
                newest_source_ms: Some(now - 1000),
                copied_source_ms: Some(now - 7_200_000),
                in_flight: true,
                ..res(CopyKind::EbsSnapshot, "vol-b", 1, 3600)
            },
            Protected {
                newest_source_ms: Some(now - 3_600_000),
                copied_source_ms: Some(now - 3_600_000),
                ..res(CopyKind::EbsSnapshot, "vol-c", 1, 3600)
            },
            Protected {
                newest_source_ms: Some(now - 5000),
                ..res(CopyKind::EbsSnapshot, "vol-d", 1, 3600)
            },
            Protected {
                newest_source_ms: Some(now - 600_500),
                copied_source_ms: Some(now - 600_500),
                ..res(CopyKind::EbsSnapshot, "vol-e", 1, 3600)
            },
            // RDS tier 2 (rpo 4 h): lag 5 h, in flight.
            Protected {
                newest_source_ms: Some(now - H),
                copied_source_ms: Some(now - 5 * H),
                in_flight: true,
                ..res(CopyKind::RdsSnapshot, "db-a", 2, 4 * 3600)
            },
        ];
        let summary = rpo_summary(&resources, now);
        assert_eq!(summary.len(), 2, "{summary:?}");
        assert_eq!(
            summary[&(CopyKind::EbsSnapshot, 1)],
            RpoStats {
                count: 5,
                worst_lag_secs: 7200,
                // Copied lags sorted: 600, 1800, 3600, 7200 → lower median 1800.
                median_lag_secs: 1800,
                // vol-b (7200 > 3600) and never-copied vol-d; vol-c sits exactly at target.
                past_target: 2,
                never_copied: 1,
                // vol-a and vol-d have something newer and nothing in flight.
                queue_depth: 2,
                in_flight: 1,
            }
        );
        assert_eq!(
            summary[&(CopyKind::RdsSnapshot, 2)],
            RpoStats {
                count: 1,
                worst_lag_secs: 5 * 3600,
                median_lag_secs: 5 * 3600,
                past_target: 1,
                never_copied: 0,
                queue_depth: 0,
                in_flight: 1,
            }
        );
        // Odd count: the middle one. Dropping vol-e leaves 1800, 3600, 7200.
        resources.remove(4);
        let summary = rpo_summary(&resources, now);
        assert_eq!(summary[&(CopyKind::EbsSnapshot, 1)].median_lag_secs, 3600);
        // Only never-copied resources: worst and median are 0, all past target.
        let only_never = [resources[3].clone()];
        let stats = &rpo_summary(&only_never, now)[&(CopyKind::EbsSnapshot, 1)];
        assert_eq!(
            (
                stats.worst_lag_secs,
                stats.median_lag_secs,
                stats.past_target
            ),
            (0, 0, 1)
        );
        assert!(rpo_summary(&[], now).is_empty());
    }

    #[test]
    fn lower_median_takes_the_lower_middle() {
        assert_eq!(lower_median(&mut []), None);
        assert_eq!(lower_median(&mut [5]), Some(5));
        assert_eq!(lower_median(&mut [9, 1]), Some(1));
        assert_eq!(lower_median(&mut [4, 9, 1, 7]), Some(4));
        assert_eq!(lower_median(&mut [4, 9, 1, 7, 8]), Some(7));
    }

    /// A random estate with many ties (few distinct times, tiers, ids) and random limits.
    fn random_case(rng: &mut SplitMix64) -> (Vec<Protected>, Limits) {
        let n = rng.below(40) as usize;
        let resources = (0..n)
            .map(|_| {
                let kind = CopyKind::ALL[rng.below(4) as usize];
                let copied = (rng.below(4) > 0).then(|| rng.below(6) as i64 * H);
                let newest = match rng.below(4) {
                    0 => None,
                    1 => copied,
                    _ => Some(rng.below(8) as i64 * H),
                };
                Protected {
                    kind,
                    resource_id: format!("r-{}", rng.below(10)),
                    tier: 1 + rng.below(3) as u8,
                    rpo_secs: [3600, 4 * 3600, 86_400][rng.below(3) as usize],
                    newest_source_ms: newest,
                    copied_source_ms: copied,
                    in_flight: rng.below(4) == 0,
                    size_gib: 8,
                }
            })
            .collect();
        let mut in_flight = BTreeMap::new();
        for kind in CopyKind::ALL {
            // Some kinds absent: they fall back to AWS's limit.
            if rng.below(5) > 0 {
                in_flight.insert(kind, rng.below(6) as u32);
            }
        }
        (resources, Limits { in_flight })
    }

    #[test]
    fn property_pick_fills_free_slots_in_order_with_candidates_only() {
        let mut rng = SplitMix64::new(0x5eed_c0de);
        for case in 0..600 {
            let (resources, limits) = random_case(&mut rng);
            let now = rng.below(10) as i64 * H;
            let picked = pick(&resources, &limits, now);
            let ctx = format!("case {case}: {resources:#?} {limits:?} → {picked:?}");

            let mut seen = vec![false; resources.len()];
            for &i in &picked {
                assert!(
                    i < resources.len() && !seen[i],
                    "duplicate/out of range {ctx}"
                );
                seen[i] = true;
                assert!(!resources[i].in_flight, "picked in flight {ctx}");
                assert!(resources[i].needs_copy(), "picked up to date {ctx}");
            }
            for window in picked.windows(2) {
                let (a, b) = (&resources[window[0]], &resources[window[1]]);
                assert!(
                    (a.deadline_ms(), a.tier, &a.resource_id)
                        <= (b.deadline_ms(), b.tier, &b.resource_id),
                    "not sorted {ctx}"
                );
            }
            for kind in CopyKind::ALL {
                let busy = resources
                    .iter()
                    .filter(|r| r.kind == kind && r.in_flight)
                    .count();
                let free = (limits.limit(kind) as usize).saturating_sub(busy);
                let candidates = resources
                    .iter()
                    .filter(|r| r.kind == kind && r.needs_copy())
                    .count();
                let of_kind: Vec<usize> = picked
                    .iter()
                    .copied()
                    .filter(|&i| resources[i].kind == kind)
                    .collect();
                assert!(of_kind.len() <= free, "over the limit {kind} {ctx}");
                assert_eq!(
                    of_kind.len(),
                    free.min(candidates),
                    "free slot left idle {kind} {ctx}"
                );
                // Nothing left behind beats anything picked.
                if let Some(&last) = of_kind.last() {
                    for j in (0..resources.len()).filter(|&j| {
                        !seen[j] && resources[j].kind == kind && resources[j].needs_copy()
                    }) {
                        assert_eq!(
                            schedule_order(&resources, last, j),
                            std::cmp::Ordering::Less,
                            "skipped a better candidate {j} {kind} {ctx}"
                        );
                    }
                }
            }
            // The clock does not change the decision.
            assert_eq!(pick(&resources, &limits, now + 7 * H), picked, "{ctx}");
        }
    }

    #[test]
    fn property_rpo_summary_is_consistent() {
        let mut rng = SplitMix64::new(42);
        for case in 0..500 {
            let (resources, _) = random_case(&mut rng);
            let now = rng.below(10) as i64 * H;
            let summary = rpo_summary(&resources, now);
            let total: u64 = summary.values().map(|s| s.count).sum();
            assert_eq!(total, resources.len() as u64, "case {case}");
            for (&(kind, tier), stats) in &summary {
                let group: Vec<&Protected> = resources
                    .iter()
                    .filter(|r| r.kind == kind && r.tier == tier)
                    .collect();
                let lags: Vec<u64> = group.iter().filter_map(|r| r.lag_secs(now)).collect();
                assert_eq!(stats.count, group.len() as u64);
                assert_eq!(stats.never_copied, (group.len() - lags.len()) as u64);
                assert_eq!(
                    stats.worst_lag_secs,
                    lags.iter().copied().max().unwrap_or(0)
                );
                let below = lags.iter().filter(|&&l| l < stats.median_lag_secs).count();
                let at_most = lags.iter().filter(|&&l| l <= stats.median_lag_secs).count();
                if !lags.is_empty() {
                    // Lower median: at most (n−1)/2 values strictly below, more than that ≤.
                    assert!(below <= (lags.len() - 1) / 2 && at_most > (lags.len() - 1) / 2);
                }
                assert!(stats.past_target >= stats.never_copied);
                assert!(stats.queue_depth + stats.in_flight <= stats.count);
            }
        }
    }
}
