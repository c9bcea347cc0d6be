//! Copy realism: snapshot and image copies that take time, and AWS's in-flight copy limits.
//!
//! moto completes every copy instantly. The proxy records each successful copy call
//! (`CopySnapshot`, `CopyDBSnapshot`, `CopyDBClusterSnapshot`, `CopyImage`) as a [`CopyRecord`]
//! with a duration derived from the source's size ([`copy_duration`]); until that duration has
//! passed the copy is *in flight*, its destination region's describe answers are rewritten to
//! show it pending with rising progress, and it counts against the per-destination-region
//! limit of its [`CopyKind`]. A copy request over the limit is refused before it reaches moto
//! with the error AWS answers ([`limit_reply`]).
//!
//! Every copy call counts, same-region copies included (AWS's limits are per destination
//! region). Describe answers are rewritten by item id whatever their filters: a `status`
//! filter is applied by moto to its own (completed) state, so an in-flight copy can show up
//! as `pending` under `status=completed`; the backing snapshots of a copied AMI are not
//! rewritten.
//!
//! Bookkeeping is per (account, destination region, kind). A request first takes a
//! reservation ([`CopyTracker::try_reserve`]), so concurrent requests cannot overshoot the
//! limit; the reservation becomes a record when moto succeeds or is released when it fails.
//! Finished records are pruned on every call, so the table holds at most the in-flight copies:
//! bounded by the limits × accounts × regions. Deleting an in-flight copy
//! ([`CopyTracker::forget`]) ends it, as on AWS.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::envelope::ErrorReply;

/// A kind of copy with its own in-flight limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CopyKind {
    /// EBS snapshot (`CopySnapshot`).
    Ebs,
    /// RDS DB instance snapshot (`CopyDBSnapshot`).
    Rds,
    /// Aurora DB cluster snapshot (`CopyDBClusterSnapshot`).
    Aurora,
    /// AMI (`CopyImage`).
    Ami,
}

/// Every kind, in display order.
pub const COPY_KINDS: [CopyKind; 4] = [
    CopyKind::Ebs,
    CopyKind::Rds,
    CopyKind::Aurora,
    CopyKind::Ami,
];

impl CopyKind {
    /// The kind's name in options, counters and [`super::ProxyHandle::copies_in_flight`]:
    /// `ebs`, `rds`, `aurora`, `ami`.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyKind::Ebs => "ebs",
            CopyKind::Rds => "rds",
            CopyKind::Aurora => "aurora",
            CopyKind::Ami => "ami",
        }
    }

    /// The kind named `name` (see [`CopyKind::as_str`]).
    pub fn parse(name: &str) -> Option<CopyKind> {
        COPY_KINDS.into_iter().find(|k| k.as_str() == name)
    }

    /// AWS's documented limit of copies in flight per destination region and account
    /// (shared/AWS-LIMITS.md §2–4): EBS 20, RDS 20, Aurora cluster snapshots 5 (the Aurora
    /// guide's figure; the general RDS quotas page says 20), AMIs 300.
    pub fn default_limit(self) -> u32 {
        match self {
            CopyKind::Ebs | CopyKind::Rds => 20,
            CopyKind::Aurora => 5,
            CopyKind::Ami => 300,
        }
    }

    /// The copy kind a call starts, if it is a copy call.
    pub fn of_copy(service: &str, operation: &str) -> Option<CopyKind> {
        match (service, operation) {
            ("ec2", "CopySnapshot") => Some(CopyKind::Ebs),
            ("ec2", "CopyImage") => Some(CopyKind::Ami),
            ("rds", "CopyDBSnapshot") => Some(CopyKind::Rds),
            ("rds", "CopyDBClusterSnapshot") => Some(CopyKind::Aurora),
            _ => None,
        }
    }

    /// The kind a delete call ends and the parameter naming the deleted id.
    pub fn of_delete(service: &str, operation: &str) -> Option<(CopyKind, &'static str)> {
        match (service, operation) {
            ("ec2", "DeleteSnapshot") => Some((CopyKind::Ebs, "SnapshotId")),
            ("ec2", "DeregisterImage") => Some((CopyKind::Ami, "ImageId")),
            ("rds", "DeleteDBSnapshot") => Some((CopyKind::Rds, "DBSnapshotIdentifier")),
            ("rds", "DeleteDBClusterSnapshot") => {
                Some((CopyKind::Aurora, "DBClusterSnapshotIdentifier"))
            }
            _ => None,
        }
    }

    /// The kind whose items a describe call lists, with the list element, the item's id
    /// element (moto 5.2.1's names, as in a real AWS answer).
    pub fn of_describe(service: &str, operation: &str) -> Option<(CopyKind, Listing)> {
        let listing = |container, id| Listing { container, id };
        match (service, operation) {
            ("ec2", "DescribeSnapshots") => {
                Some((CopyKind::Ebs, listing("snapshotSet", "snapshotId")))
            }
            ("ec2", "DescribeImages") => Some((CopyKind::Ami, listing("imagesSet", "imageId"))),
            ("rds", "DescribeDBSnapshots") => Some((
                CopyKind::Rds,
                listing("DBSnapshots", "DBSnapshotIdentifier"),
            )),
            ("rds", "DescribeDBClusterSnapshots") => Some((
                CopyKind::Aurora,
                listing("DBClusterSnapshots", "DBClusterSnapshotIdentifier"),
            )),
            _ => None,
        }
    }

    /// The element of a successful copy call's answer that names the new copy (moto's and
    /// AWS's answers carry exactly one).
    pub fn new_id_element(self) -> &'static str {
        match self {
            CopyKind::Ebs => "snapshotId",
            CopyKind::Ami => "imageId",
            CopyKind::Rds => "DBSnapshotIdentifier",
            CopyKind::Aurora => "DBClusterSnapshotIdentifier",
        }
    }

    /// For the RDS kinds, whose copy answer describes the new copy (with its `Status`): the
    /// element holding that description, to be rewritten like a describe item. EC2's copy
    /// answers carry only the new id.
    pub fn copy_answer(self) -> Option<Listing> {
        match self {
            CopyKind::Ebs | CopyKind::Ami => None,
            CopyKind::Rds => Some(Listing {
                container: "CopyDBSnapshotResult",
                id: "DBSnapshotIdentifier",
            }),
            CopyKind::Aurora => Some(Listing {
                container: "CopyDBClusterSnapshotResult",
                id: "DBClusterSnapshotIdentifier",
            }),
        }
    }

    /// The child elements to set on an item of this kind at `progress` percent (< 100):
    /// EBS `status` `pending` + `progress` `NN%`; RDS `Status` `pending` for the first 10 %,
    /// then `copying`, + `PercentProgress`; Aurora `Status` `copying` + `PercentProgress`;
    /// AMI `imageState` `pending`.
    pub fn pending_edits(self, progress: u8) -> Vec<(&'static str, String)> {
        match self {
            CopyKind::Ebs => vec![
                ("status", "pending".to_owned()),
                ("progress", format!("{progress}%")),
            ],
            CopyKind::Rds => vec![
                (
                    "Status",
                    if progress < 10 { "pending" } else { "copying" }.to_owned(),
                ),
                ("PercentProgress", progress.to_string()),
            ],
            CopyKind::Aurora => vec![
                ("Status", "copying".to_owned()),
                ("PercentProgress", progress.to_string()),
            ],
            CopyKind::Ami => vec![("imageState", "pending".to_owned())],
        }
    }
}

impl fmt::Display for CopyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the items of an XML answer are: the list element and each item's id element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    pub container: &'static str,
    pub id: &'static str,
}

/// The error AWS answers a copy request with when the destination region already has `limit`
/// copies of that kind in flight.
///
/// - EBS: `ResourceLimitExceeded` (HTTP 400) "Too many snapshot copies in progress. The limit
///   is N for this destination region." — the code is documented on the EBS copy page
///   (AWS-LIMITS.md §2), the message is the one AWS returned in reports
///   (aws-samples/copy-encrypted-ami#3, aws-samples/aws-step-functions-ebs-snapshot-mgmt#3).
/// - AMI: `ResourceLimitExceeded` (400), EC2's code for every count quota; the message follows
///   the EBS one (AWS's exact AMI wording was not found).
/// - RDS and Aurora: `SnapshotQuotaExceeded` (400, awsQuery envelope; the SDK's
///   `SnapshotQuotaExceededFault`) "Cannot copy more than N snapshots across regions".
///   `CopyDBSnapshot`'s and `CopyDBClusterSnapshot`'s API references list no other quota
///   error, and that is what RDS returned when the cross-region copy limit was hit
///   (pbudzon/aws-maintenance#19: "SnapshotQuotaExceeded … Cannot copy more than 5 snapshots
///   across regions", from the time the limit was 5). No `CopySnapshotLimitExceeded`-style
///   code exists in the RDS API model, so inventing one would make the SDK report an
///   unmodelled error that no real client handles.
pub fn limit_reply(kind: CopyKind, limit: u32) -> ErrorReply {
    match kind {
        CopyKind::Ebs => ErrorReply::new(
            400,
            "ResourceLimitExceeded",
            &format!(
                "Too many snapshot copies in progress. The limit is {limit} for this \
                 destination region."
            ),
        ),
        CopyKind::Ami => ErrorReply::new(
            400,
            "ResourceLimitExceeded",
            &format!(
                "Too many image copies in progress. The limit is {limit} for this destination \
                 region."
            ),
        ),
        CopyKind::Rds | CopyKind::Aurora => ErrorReply::new(
            400,
            "SnapshotQuotaExceeded",
            &format!("Cannot copy more than {limit} snapshots across regions"),
        ),
    }
}

/// How long a copy of `size_gib` takes: `max(min_secs, size_gib / gib_per_sec) / time_scale`.
/// Inputs are validated by `ProxyOptions`; absurd values saturate instead of panicking.
pub fn copy_duration(size_gib: f64, gib_per_sec: f64, min_secs: f64, time_scale: f64) -> Duration {
    let secs = (size_gib / gib_per_sec).max(min_secs) / time_scale;
    Duration::try_from_secs_f64(secs).unwrap_or(if secs > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// One copy, from its start to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyRecord {
    pub size_gib: f64,
    pub started: Instant,
    pub duration: Duration,
}

impl CopyRecord {
    /// Percent done at `now`, or `None` once done. Rises linearly from 0 and stays below 100.
    pub fn progress(&self, now: Instant) -> Option<u8> {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= self.duration {
            return None;
        }
        let pct = (elapsed.as_secs_f64() / self.duration.as_secs_f64() * 100.0).floor();
        // In [0, 100): the cast cannot truncate.
        Some(pct.clamp(0.0, 99.0) as u8)
    }
}

/// One row of the copy counters: a (kind, destination region) pair, all accounts together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyCount {
    /// `ebs`, `rds`, `aurora` or `ami`.
    pub kind: String,
    /// The destination region.
    pub region: String,
    /// Copies not yet done now.
    pub in_flight: u32,
    /// The most ever in flight at once (since start or the last counter reset).
    pub max_in_flight: u32,
    /// The limit enforced per account.
    pub limit: u32,
    /// Copies started (moto succeeded).
    pub started: u64,
    /// Copy requests refused by the limit.
    pub refused: u64,
}

type AccountKey = (String, String, CopyKind);

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    max_in_flight: u32,
    started: u64,
    refused: u64,
}

/// The copies in flight, per account, destination region and kind.
#[derive(Debug)]
pub struct CopyTracker {
    limits: BTreeMap<CopyKind, u32>,
    /// (account, region, kind) → id → record.
    records: HashMap<AccountKey, HashMap<String, CopyRecord>>,
    reserved: HashMap<AccountKey, u32>,
    /// (region, kind) → totals over accounts.
    totals: BTreeMap<(String, CopyKind), Totals>,
}

impl CopyTracker {
    /// A tracker with AWS's limits, replaced by `overrides` where given.
    pub fn new(overrides: &BTreeMap<CopyKind, u32>) -> CopyTracker {
        let limits = COPY_KINDS
            .into_iter()
            .map(|k| (k, overrides.get(&k).copied().unwrap_or(k.default_limit())))
            .collect();
        CopyTracker {
            limits,
            records: HashMap::new(),
            reserved: HashMap::new(),
            totals: BTreeMap::new(),
        }
    }

    /// The limit for `kind`.
    pub fn limit(&self, kind: CopyKind) -> u32 {
        self.limits
            .get(&kind)
            .copied()
            .unwrap_or(kind.default_limit())
    }

    fn prune(&mut self, now: Instant) {
        self.records.retain(|_, copies| {
            copies.retain(|_, r| r.progress(now).is_some());
            !copies.is_empty()
        });
    }

    fn key(account: &str, region: &str, kind: CopyKind) -> AccountKey {
        (account.to_owned(), region.to_owned(), kind)
    }

    /// Takes a slot for a new copy unless the account already has `limit` copies of `kind`
    /// in flight (or reserved) to `region`; on refusal returns the limit.
    pub fn try_reserve(
        &mut self,
        account: &str,
        region: &str,
        kind: CopyKind,
        now: Instant,
    ) -> Result<(), u32> {
        self.prune(now);
        let key = Self::key(account, region, kind);
        let limit = self.limit(kind);
        let in_flight = self.records.get(&key).map_or(0, HashMap::len);
        let reserved = self.reserved.get(&key).copied().unwrap_or(0);
        if u64::try_from(in_flight).unwrap_or(u64::MAX) + u64::from(reserved) >= u64::from(limit) {
            self.totals
                .entry((region.to_owned(), kind))
                .or_default()
                .refused += 1;
            return Err(limit);
        }
        *self.reserved.entry(key).or_default() += 1;
        Ok(())
    }

    /// Gives a reservation back (the copy call failed or was abandoned).
    pub fn release(&mut self, account: &str, region: &str, kind: CopyKind) {
        let key = Self::key(account, region, kind);
        if let Some(n) = self.reserved.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.reserved.remove(&key);
            }
        }
    }

    /// Turns a reservation into an in-flight copy `id`.
    pub fn start(
        &mut self,
        account: &str,
        region: &str,
        kind: CopyKind,
        id: &str,
        record: CopyRecord,
    ) {
        self.release(account, region, kind);
        let now = record.started;
        self.records
            .entry(Self::key(account, region, kind))
            .or_default()
            .insert(id.to_owned(), record);
        self.prune(now);
        let in_flight = self.in_flight_at(kind, region);
        let totals = self.totals.entry((region.to_owned(), kind)).or_default();
        totals.started += 1;
        totals.max_in_flight = totals.max_in_flight.max(in_flight);
    }

    /// Ends copy `id` (it was deleted). Returns whether it was in flight.
    pub fn forget(&mut self, account: &str, region: &str, kind: CopyKind, id: &str) -> bool {
        let key = Self::key(account, region, kind);
        let Some(copies) = self.records.get_mut(&key) else {
            return false;
        };
        let removed = copies.remove(id).is_some();
        if copies.is_empty() {
            self.records.remove(&key);
        }
        removed
    }

    /// Progress of the account's in-flight copies of `kind` in `region`: id → percent.
    pub fn progress_of(
        &self,
        account: &str,
        region: &str,
        kind: CopyKind,
        now: Instant,
    ) -> HashMap<String, u8> {
        self.records
            .get(&Self::key(account, region, kind))
            .map(|copies| {
                copies
                    .iter()
                    .filter_map(|(id, r)| r.progress(now).map(|p| (id.clone(), p)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records not pruned yet, all accounts (call after a prune for a live figure).
    fn in_flight_at(&self, kind: CopyKind, region: &str) -> u32 {
        let n: usize = self
            .records
            .iter()
            .filter(|((_, r, k), _)| *k == kind && r == region)
            .map(|(_, copies)| copies.len())
            .sum();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Copies of `kind` in flight to `region` at `now`, all accounts.
    pub fn in_flight(&mut self, kind: CopyKind, region: &str, now: Instant) -> u32 {
        self.prune(now);
        self.in_flight_at(kind, region)
    }

    /// The most copies of `kind` ever in flight to `region` at once, all accounts.
    pub fn max_in_flight(&self, kind: CopyKind, region: &str) -> u32 {
        self.totals
            .get(&(region.to_owned(), kind))
            .map_or(0, |t| t.max_in_flight)
    }

    /// One row per (kind, region) that has seen a copy or a refusal, sorted.
    pub fn snapshot(&mut self, now: Instant) -> Vec<CopyCount> {
        self.prune(now);
        let keys: Vec<(String, CopyKind)> = self.totals.keys().cloned().collect();
        keys.into_iter()
            .map(|(region, kind)| {
                let totals = self
                    .totals
                    .get(&(region.clone(), kind))
                    .copied()
                    .unwrap_or_default();
                CopyCount {
                    kind: kind.as_str().to_owned(),
                    in_flight: self.in_flight_at(kind, &region),
                    region,
                    max_in_flight: totals.max_in_flight,
                    limit: self.limit(kind),
                    started: totals.started,
                    refused: totals.refused,
                }
            })
            .collect()
    }

    /// Zeroes the started/refused totals and lowers each maximum to what is in flight now.
    pub fn reset(&mut self, now: Instant) {
        self.prune(now);
        let keys: Vec<(String, CopyKind)> = self.totals.keys().cloned().collect();
        for (region, kind) in keys {
            let in_flight = self.in_flight_at(kind, &region);
            self.totals.insert(
                (region, kind),
                Totals {
                    max_in_flight: in_flight,
                    started: 0,
                    refused: 0,
                },
            );
        }
    }
}

/// The region and identifier of an RDS snapshot named by ARN
/// (`arn:aws:rds:<region>:<account>:snapshot:<id>` or `…:cluster-snapshot:<id>`), or by plain
/// identifier (then in `default_region`).
pub fn rds_source(identifier: &str, default_region: &str) -> (String, String) {
    let parts: Vec<&str> = identifier.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "rds", region, _, _, id] if !region.is_empty() => {
            ((*region).to_owned(), (*id).to_owned())
        }
        _ => (default_region.to_owned(), identifier.to_owned()),
    }
}

/// GiB of an Aurora cluster snapshot as reported: AWS (and moto) report `AllocatedStorage`
/// 1 (moto sometimes 0) because Aurora storage grows on demand; such values count as 10 GiB.
pub fn aurora_size(allocated: f64) -> f64 {
    if allocated <= 1.0 { 10.0 } else { allocated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: f64, started: Instant, secs: f64) -> CopyRecord {
        CopyRecord {
            size_gib: size,
            started,
            duration: Duration::from_secs_f64(secs),
        }
    }

    #[test]
    fn names_and_operations() {
        for k in COPY_KINDS {
            assert_eq!(CopyKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(CopyKind::parse("EBS"), None);
        assert_eq!(
            CopyKind::of_copy("ec2", "CopySnapshot"),
            Some(CopyKind::Ebs)
        );
        assert_eq!(CopyKind::of_copy("ec2", "CopyImage"), Some(CopyKind::Ami));
        assert_eq!(
            CopyKind::of_copy("rds", "CopyDBSnapshot"),
            Some(CopyKind::Rds)
        );
        assert_eq!(
            CopyKind::of_copy("rds", "CopyDBClusterSnapshot"),
            Some(CopyKind::Aurora)
        );
        assert_eq!(CopyKind::of_copy("rds", "CopySnapshot"), None);
        assert_eq!(
            CopyKind::of_delete("ec2", "DeregisterImage"),
            Some((CopyKind::Ami, "ImageId"))
        );
        assert_eq!(
            CopyKind::of_describe("rds", "DescribeDBClusterSnapshots").map(|(k, l)| (k, l.id)),
            Some((CopyKind::Aurora, "DBClusterSnapshotIdentifier"))
        );
        assert_eq!(
            [20, 20, 5, 300],
            COPY_KINDS.map(CopyKind::default_limit),
            "AWS-LIMITS.md"
        );
    }

    #[test]
    fn durations_follow_size_throughput_minimum_and_time_scale() {
        assert_eq!(copy_duration(8.0, 1.0, 2.0, 1.0), Duration::from_secs(8));
        assert_eq!(copy_duration(1.0, 1.0, 2.0, 1.0), Duration::from_secs(2));
        assert_eq!(copy_duration(100.0, 10.0, 2.0, 5.0), Duration::from_secs(2));
        assert_eq!(copy_duration(0.0, 1.0, 0.0, 1.0), Duration::ZERO);
        assert_eq!(copy_duration(1e300, 1e-300, 0.0, 1.0), Duration::MAX);
    }

    #[test]
    fn progress_rises_linearly_below_100_then_ends() {
        let t0 = Instant::now();
        let r = record(10.0, t0, 10.0);
        assert_eq!(r.progress(t0), Some(0));
        assert_eq!(r.progress(t0 + Duration::from_millis(2_500)), Some(25));
        assert_eq!(r.progress(t0 + Duration::from_millis(9_999)), Some(99));
        assert_eq!(r.progress(t0 + Duration::from_secs(10)), None);
        // A clock before the start reads as 0 %.
        let later = record(1.0, t0 + Duration::from_secs(5), 1.0);
        assert_eq!(later.progress(t0), Some(0));
    }

    #[test]
    fn pending_edits_per_kind() {
        assert_eq!(
            CopyKind::Ebs.pending_edits(42),
            vec![
                ("status", "pending".to_owned()),
                ("progress", "42%".to_owned())
            ]
        );
        assert_eq!(CopyKind::Rds.pending_edits(9)[0].1, "pending");
        assert_eq!(CopyKind::Rds.pending_edits(10)[0].1, "copying");
        assert_eq!(CopyKind::Aurora.pending_edits(3)[0].1, "copying");
        assert_eq!(CopyKind::Aurora.pending_edits(3)[1].1, "3");
        assert_eq!(
            CopyKind::Ami.pending_edits(50),
            vec![("imageState", "pending".to_owned())]
        );
    }

    #[test]
    fn limit_replies_carry_aws_codes() {
        let ebs = limit_reply(CopyKind::Ebs, 20);
        assert_eq!(
            (ebs.status.as_u16(), ebs.code.as_str()),
            (400, "ResourceLimitExceeded")
        );
        assert!(ebs.message.contains("The limit is 20"));
        assert_eq!(
            limit_reply(CopyKind::Ami, 300).code,
            "ResourceLimitExceeded"
        );
        let aurora = limit_reply(CopyKind::Aurora, 5);
        assert_eq!(aurora.code, "SnapshotQuotaExceeded");
        assert!(aurora.message.contains("more than 5"));
        assert_eq!(limit_reply(CopyKind::Rds, 20).code, "SnapshotQuotaExceeded");
    }

    #[test]
    fn limit_counts_records_and_reservations_per_account_region_kind() {
        let overrides = BTreeMap::from([(CopyKind::Aurora, 2)]);
        let mut t = CopyTracker::new(&overrides);
        assert_eq!(t.limit(CopyKind::Aurora), 2);
        assert_eq!(t.limit(CopyKind::Ebs), 20);
        let t0 = Instant::now();
        let west = "us-west-2";
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t0), Ok(()));
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t0), Ok(()));
        // Two reservations fill the limit before either has an answer.
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t0), Err(2));
        // Other accounts, regions and kinds have their own.
        assert_eq!(t.try_reserve("b", west, CopyKind::Aurora, t0), Ok(()));
        assert_eq!(
            t.try_reserve("a", "eu-west-1", CopyKind::Aurora, t0),
            Ok(())
        );
        assert_eq!(t.try_reserve("a", west, CopyKind::Rds, t0), Ok(()));
        t.release("b", west, CopyKind::Aurora);
        t.release("a", "eu-west-1", CopyKind::Aurora);
        t.release("a", west, CopyKind::Rds);

        t.start("a", west, CopyKind::Aurora, "c1", record(10.0, t0, 10.0));
        // A failed call gives its reservation back.
        t.release("a", west, CopyKind::Aurora);
        assert_eq!(t.in_flight(CopyKind::Aurora, west, t0), 1);
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t0), Ok(()));
        t.start("a", west, CopyKind::Aurora, "c2", record(10.0, t0, 2.0));
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t0), Err(2));
        assert_eq!(t.max_in_flight(CopyKind::Aurora, west), 2);

        let progress = t.progress_of("a", west, CopyKind::Aurora, t0 + Duration::from_secs(1));
        assert_eq!(progress.get("c1"), Some(&10));
        assert_eq!(progress.get("c2"), Some(&50));
        assert!(t.progress_of("b", west, CopyKind::Aurora, t0).is_empty());

        // c2 is done after 2 s: a slot is free again.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(t.in_flight(CopyKind::Aurora, west, t2), 1);
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t2), Ok(()));
        t.start("a", west, CopyKind::Aurora, "c3", record(1.0, t2, 100.0));
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t2), Err(2));
        // Deleting an in-flight copy frees its slot; unknown ids change nothing.
        assert!(t.forget("a", west, CopyKind::Aurora, "c1"));
        assert!(!t.forget("a", west, CopyKind::Aurora, "c1"));
        assert!(!t.forget("a", west, CopyKind::Ebs, "c3"));
        assert_eq!(t.in_flight(CopyKind::Aurora, west, t2), 1);
        assert_eq!(t.try_reserve("a", west, CopyKind::Aurora, t2), Ok(()));

        let rows = t.snapshot(t2);
        let aurora = rows
            .iter()
            .find(|r| r.kind == "aurora" && r.region == west)
            .expect("row");
        assert_eq!(
            (
                aurora.in_flight,
                aurora.max_in_flight,
                aurora.limit,
                aurora.started,
                aurora.refused
            ),
            (1, 2, 2, 3, 3)
        );
        t.reset(t2);
        let aurora = t
            .snapshot(t2)
            .into_iter()
            .find(|r| r.kind == "aurora" && r.region == west);
        assert_eq!(
            aurora.map(|r| (r.in_flight, r.max_in_flight, r.started, r.refused)),
            Some((1, 1, 0, 0))
        );
    }

    #[test]
    fn in_flight_sums_accounts_and_max_tracks_the_peak() {
        let mut t = CopyTracker::new(&BTreeMap::new());
        let t0 = Instant::now();
        for (account, id) in [("a", "s1"), ("a", "s2"), ("b", "s3")] {
            t.try_reserve(account, "us-west-2", CopyKind::Ebs, t0)
                .expect("slot");
            t.start(
                account,
                "us-west-2",
                CopyKind::Ebs,
                id,
                record(1.0, t0, 5.0),
            );
        }
        assert_eq!(t.in_flight(CopyKind::Ebs, "us-west-2", t0), 3);
        assert_eq!(t.in_flight(CopyKind::Ebs, "us-east-1", t0), 0);
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(t.in_flight(CopyKind::Ebs, "us-west-2", t5), 0);
        assert_eq!(t.max_in_flight(CopyKind::Ebs, "us-west-2"), 3);
        t.try_reserve("a", "us-west-2", CopyKind::Ebs, t5)
            .expect("slot");
        t.start("a", "us-west-2", CopyKind::Ebs, "s4", record(1.0, t5, 5.0));
        assert_eq!(t.max_in_flight(CopyKind::Ebs, "us-west-2"), 3);
    }

    #[test]
    fn rds_sources_by_arn_or_identifier() {
        assert_eq!(
            rds_source(
                "arn:aws:rds:us-east-1:123456789012:snapshot:db1-1",
                "us-west-2"
            ),
            ("us-east-1".to_owned(), "db1-1".to_owned())
        );
        assert_eq!(
            rds_source(
                "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:cl-1",
                "us-west-2"
            ),
            ("us-east-1".to_owned(), "cl-1".to_owned())
        );
        assert_eq!(
            rds_source("db1-1", "us-west-2"),
            ("us-west-2".to_owned(), "db1-1".to_owned())
        );
        assert_eq!(aurora_size(1.0), 10.0);
        assert_eq!(aurora_size(0.0), 10.0);
        assert_eq!(aurora_size(50.0), 50.0);
    }
}
