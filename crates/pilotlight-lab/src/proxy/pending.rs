//! Pending states: resources created through the proxy take time to become ready, as on AWS.
//!
//! moto makes everything ready at once. With a [`ProxyOptions`](super::ProxyOptions) duration
//! above 0 (seconds of AWS time, divided by `time_scale` like the copy durations), the proxy
//! remembers each resource from the answer that created it and rewrites later answers until
//! its time has passed:
//!
//! | created by | kind | shown until ready | then (moto's answer) |
//! |---|---|---|---|
//! | `RunInstances` | instance (`instance_pending_secs`) | `DescribeInstances`: state `pending` (code 0); `DescribeInstanceStatus`: left out, or with `IncludeAllInstances=true` `pending` with both status checks `not-applicable` | `running` (16), checks `ok` |
//! | `CreateDBInstance`, `RestoreDBInstanceFromDBSnapshot`, `RestoreDBInstanceToPointInTime`, `CreateDBInstanceReadReplica` | DB instance (`db_creating_secs`) | the create answer and `DescribeDBInstances`: `creating`, no `Endpoint` (AWS has no address yet) | `available` with its endpoint |
//! | ELBv2 `CreateLoadBalancer` | load balancer (`lb_provisioning_secs`) | `DescribeLoadBalancers`: `State/Code` `provisioning` | `active` |
//! | `ChangeResourceRecordSets` | Route 53 change (`dns_pending_secs`) | the answer and `GetChange`: `PENDING` | `INSYNC` |
//!
//! Only moto's ready state is rewritten (`running`, `available`, `active`): an instance
//! terminated or a database deleted while pending shows what moto says. Describe filters are
//! applied by moto to its own state, so `instance-state-name=running` still lists a pending
//! instance (shown `pending`) and `pending` lists nothing.
//!
//! Route 53: moto answers every `ChangeResourceRecordSets` with the same change id
//! (`/change/C2682N5HXP0BZ4`) and `GetChange` with `INSYNC` for any id. With
//! `dns_pending_secs` above 0 each change answer gets an id of its own (`/change/C` + 13
//! upper-case hex digits, unique per proxy); `GetChange` of such an id is forwarded to moto
//! (which echoes the id) and answered `PENDING` until the change's time has passed, and every
//! `GetChange` answer carries the id as AWS writes it, with the `/change/` prefix.
//!
//! Bookkeeping is per (kind, account, region; `global` for Route 53). Resources past their
//! time are pruned whenever that scope is read and before an insert into a full table; at
//! most [`MAX_PENDING`] resources are remembered, and a new one beyond that ends the pending
//! time of the one closest to ready (it shows ready early).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::identify::CallInfo;
use super::xmledit::{Edit, edit_items, item_ids};
use super::{ProxyOptions, Shared, lock};

/// Most resources remembered as pending at once, all kinds and accounts together.
pub const MAX_PENDING: usize = 100_000;

/// What kind of resource is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PendingKind {
    Instance,
    DbInstance,
    LoadBalancer,
    Change,
}

type Scope = (PendingKind, String, String);

/// The resources not ready yet: scope → id → when it is ready.
#[derive(Debug)]
pub struct PendingTracker {
    records: HashMap<Scope, HashMap<String, Instant>>,
    /// Route 53 change ids: `change_base + next_change`, 52 bits as 13 hex digits.
    change_base: u64,
    next_change: u64,
}

impl Default for PendingTracker {
    fn default() -> Self {
        // Per-proxy ids (from the start time) so two proxies on one moto rarely share one.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        PendingTracker {
            records: HashMap::new(),
            change_base: u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0),
            next_change: 0,
        }
    }
}

impl PendingTracker {
    fn len(&self) -> usize {
        self.records.values().map(HashMap::len).sum()
    }

    fn prune_all(&mut self, now: Instant) {
        self.records.retain(|_, ids| {
            ids.retain(|_, ready| *ready > now);
            !ids.is_empty()
        });
    }

    /// Remembers `id` as pending until `ready`.
    pub fn start(
        &mut self,
        kind: PendingKind,
        account: &str,
        region: &str,
        id: &str,
        ready: Instant,
        now: Instant,
    ) {
        let scope = (kind, account.to_owned(), region.to_owned());
        let known = self
            .records
            .get(&scope)
            .is_some_and(|ids| ids.contains_key(id));
        if !known && self.len() >= MAX_PENDING {
            self.prune_all(now);
            if self.len() >= MAX_PENDING {
                self.evict_closest_to_ready();
            }
        }
        self.records
            .entry(scope)
            .or_default()
            .insert(id.to_owned(), ready);
    }

    fn evict_closest_to_ready(&mut self) {
        let closest = self
            .records
            .iter()
            .flat_map(|(scope, ids)| ids.iter().map(move |(id, ready)| (*ready, scope, id)))
            .min_by_key(|(ready, _, _)| *ready)
            .map(|(_, scope, id)| (scope.clone(), id.clone()));
        if let Some((scope, id)) = closest
            && let Some(ids) = self.records.get_mut(&scope)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.records.remove(&scope);
            }
        }
    }

    /// The ids of a scope still pending at `now` (the rest of the scope is pruned).
    pub fn pending(
        &mut self,
        kind: PendingKind,
        account: &str,
        region: &str,
        now: Instant,
    ) -> HashSet<String> {
        let scope = (kind, account.to_owned(), region.to_owned());
        let Some(ids) = self.records.get_mut(&scope) else {
            return HashSet::new();
        };
        ids.retain(|_, ready| *ready > now);
        let out: HashSet<String> = ids.keys().cloned().collect();
        if out.is_empty() {
            self.records.remove(&scope);
        }
        out
    }

    /// A Route 53 change id of this proxy's own (without the `/change/` prefix).
    pub fn new_change_id(&mut self) -> String {
        let n = self.change_base.wrapping_add(self.next_change) & ((1 << 52) - 1);
        self.next_change += 1;
        format!("C{n:013X}")
    }
}

/// The longest wait [`scaled`] returns: ten years, "never" for any test.
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `secs` of AWS time at `time_scale`, or `None` when the realism is off (0). Inputs are
/// validated by `ProxyOptions`; absurd values saturate at [`MAX_WAIT`].
pub fn scaled(secs: f64, time_scale: f64) -> Option<Duration> {
    if secs <= 0.0 {
        return None;
    }
    let real = secs / time_scale;
    Some(
        Duration::try_from_secs_f64(real)
            .unwrap_or(Duration::MAX)
            .min(MAX_WAIT),
    )
}

/// The problems with the pending-state options (each must be a finite number >= 0).
pub fn option_problems(opts: &ProxyOptions) -> Vec<String> {
    [
        ("instance_pending_secs", opts.instance_pending_secs),
        ("db_creating_secs", opts.db_creating_secs),
        ("lb_provisioning_secs", opts.lb_provisioning_secs),
        ("dns_pending_secs", opts.dns_pending_secs),
    ]
    .into_iter()
    .filter(|(_, v)| !(v.is_finite() && *v >= 0.0))
    .map(|(name, v)| format!("{name} must be a number >= 0, got {v}"))
    .collect()
}

/// The RDS calls that create a DB instance, with the element their answer describes it in.
const DB_CREATES: [(&str, &str); 4] = [
    ("CreateDBInstance", "CreateDBInstanceResult"),
    (
        "RestoreDBInstanceFromDBSnapshot",
        "RestoreDBInstanceFromDBSnapshotResult",
    ),
    (
        "RestoreDBInstanceToPointInTime",
        "RestoreDBInstanceToPointInTimeResult",
    ),
    (
        "CreateDBInstanceReadReplica",
        "CreateDBInstanceReadReplicaResult",
    ),
];

const INSTANCE_PENDING: &str = "<code>0</code><name>pending</name>";

/// Applies pending-state realism to a successful, uncompressed answer of moto's: remembers
/// what a create call made and rewrites what a describe shows. Anything it does not
/// recognise is returned as it is.
pub fn on_answer(shared: &Shared, call: &CallInfo, account: &str, body: Bytes) -> Bytes {
    let opts = &shared.opts;
    let after = |secs: f64| scaled(secs, opts.time_scale);
    let rewritten = match (call.service.as_str(), call.operation.as_str()) {
        ("ec2", "RunInstances") => {
            if let Some(wait) = after(opts.instance_pending_secs) {
                let ids = text(&body)
                    .map_or_else(Vec::new, |t| item_ids(t, "instancesSet", &["instanceId"]));
                remember(shared, PendingKind::Instance, call, account, &ids, wait);
            }
            None
        }
        ("ec2", "DescribeInstances") => {
            describe_instances(shared, call, account, &body, "reservationSet")
        }
        ("ec2", "DescribeInstanceStatus") => {
            describe_instances(shared, call, account, &body, "instanceStatusSet")
        }
        ("rds", op) if DB_CREATES.iter().any(|(o, _)| *o == op) => {
            let wait = after(opts.db_creating_secs);
            let container = DB_CREATES
                .iter()
                .find(|(o, _)| *o == op)
                .map_or("", |(_, c)| *c);
            wait.and_then(|wait| {
                let t = text(&body)?;
                let ids = item_ids(t, container, &["DBInstanceIdentifier"]);
                remember(shared, PendingKind::DbInstance, call, account, &ids, wait);
                let ids: HashSet<String> = ids.into_iter().collect();
                edit_items(t, container, &["DBInstanceIdentifier"], |id, item| {
                    db_creating(ids.contains(id), item)
                })
            })
        }
        ("rds", "DescribeDBInstances") => {
            let pending = pending_of(shared, PendingKind::DbInstance, call, account);
            (!pending.is_empty())
                .then(|| text(&body))
                .flatten()
                .and_then(|t| {
                    edit_items(t, "DBInstances", &["DBInstanceIdentifier"], |id, item| {
                        db_creating(pending.contains(id), item)
                    })
                })
        }
        ("elbv2", "CreateLoadBalancer") => {
            if let Some(wait) = after(opts.lb_provisioning_secs) {
                let ids = text(&body).map_or_else(Vec::new, |t| {
                    item_ids(t, "LoadBalancers", &["LoadBalancerArn"])
                });
                remember(shared, PendingKind::LoadBalancer, call, account, &ids, wait);
            }
            None
        }
        ("elbv2", "DescribeLoadBalancers") => {
            let pending = pending_of(shared, PendingKind::LoadBalancer, call, account);
            (!pending.is_empty())
                .then(|| text(&body))
                .flatten()
                .and_then(|t| {
                    edit_items(t, "LoadBalancers", &["LoadBalancerArn"], |id, item| {
                        if pending.contains(id) && item.text(&["State", "Code"]) == Some("active") {
                            vec![Edit::Text(&["State", "Code"], "provisioning".to_owned())]
                        } else {
                            Vec::new()
                        }
                    })
                })
        }
        ("route53", "ChangeResourceRecordSets") => after(opts.dns_pending_secs).and_then(|wait| {
            let t = text(&body)?;
            let id = lock(&shared.pending).new_change_id();
            remember(
                shared,
                PendingKind::Change,
                call,
                account,
                std::slice::from_ref(&id),
                wait,
            );
            edit_items(t, "ChangeResourceRecordSetsResponse", &["Id"], |_, _| {
                vec![
                    Edit::Text(&["Id"], format!("/change/{id}")),
                    Edit::Text(&["Status"], "PENDING".to_owned()),
                ]
            })
        }),
        ("route53", "GetChange") if opts.dns_pending_secs > 0.0 => {
            let pending = pending_of(shared, PendingKind::Change, call, account);
            text(&body).and_then(|t| {
                edit_items(t, "GetChangeResponse", &["Id"], |id, _| {
                    let bare = id.strip_prefix("/change/").unwrap_or(id);
                    let mut edits = vec![Edit::Text(&["Id"], format!("/change/{bare}"))];
                    if pending.contains(bare) {
                        edits.push(Edit::Text(&["Status"], "PENDING".to_owned()));
                    }
                    edits
                })
            })
        }
        _ => None,
    };
    rewritten.map_or(body, Bytes::from)
}

fn text(body: &Bytes) -> Option<&str> {
    std::str::from_utf8(body).ok()
}

fn remember(
    shared: &Shared,
    kind: PendingKind,
    call: &CallInfo,
    account: &str,
    ids: &[String],
    wait: Duration,
) {
    if ids.is_empty() {
        return;
    }
    let now = Instant::now();
    // `wait` is at most MAX_WAIT, which a monotonic clock can always add.
    let ready = now.checked_add(wait).unwrap_or(now);
    let mut pending = lock(&shared.pending);
    for id in ids {
        pending.start(kind, account, &call.region, id, ready, now);
    }
    tracing::debug!(?kind, region = %call.region, count = ids.len(),
        secs = wait.as_secs_f64(), "pending until ready");
}

fn pending_of(
    shared: &Shared,
    kind: PendingKind,
    call: &CallInfo,
    account: &str,
) -> HashSet<String> {
    lock(&shared.pending).pending(kind, account, &call.region, Instant::now())
}

fn db_creating(pending: bool, item: &super::xmledit::Item<'_>) -> Vec<Edit> {
    if pending && item.text(&["DBInstanceStatus"]) == Some("available") {
        vec![
            Edit::Text(&["DBInstanceStatus"], "creating".to_owned()),
            Edit::Remove(&["Endpoint"]),
        ]
    } else {
        Vec::new()
    }
}

/// `DescribeInstances` (list `reservationSet`) or `DescribeInstanceStatus` (list
/// `instanceStatusSet`) with pending instances shown pending.
fn describe_instances(
    shared: &Shared,
    call: &CallInfo,
    account: &str,
    body: &Bytes,
    list: &str,
) -> Option<String> {
    let pending = pending_of(shared, PendingKind::Instance, call, account);
    if pending.is_empty() {
        return None;
    }
    let t = text(body)?;
    if list == "reservationSet" {
        return edit_items(t, "instancesSet", &["instanceId"], |id, item| {
            if pending.contains(id) && item.text(&["instanceState", "name"]) == Some("running") {
                vec![Edit::Content(
                    &["instanceState"],
                    INSTANCE_PENDING.to_owned(),
                )]
            } else {
                Vec::new()
            }
        });
    }
    let include_all = call
        .param("IncludeAllInstances")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    edit_items(t, "instanceStatusSet", &["instanceId"], |id, item| {
        if !(pending.contains(id) && item.text(&["instanceState", "name"]) == Some("running")) {
            return Vec::new();
        }
        if !include_all {
            // AWS lists only running instances unless asked for all.
            return vec![Edit::RemoveItem];
        }
        vec![
            Edit::Content(&["instanceState"], INSTANCE_PENDING.to_owned()),
            Edit::Text(&["instanceStatus", "status"], "not-applicable".to_owned()),
            Edit::Remove(&["instanceStatus", "details"]),
            Edit::Text(&["systemStatus", "status"], "not-applicable".to_owned()),
            Edit::Remove(&["systemStatus", "details"]),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_until_ready_then_pruned() {
        let mut t = PendingTracker::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        t.start(PendingKind::Instance, "a", "us-west-2", "i-1", later, now);
        t.start(PendingKind::Instance, "a", "us-west-2", "i-2", now, now);
        t.start(PendingKind::DbInstance, "a", "us-west-2", "i-1", later, now);
        let ids = t.pending(PendingKind::Instance, "a", "us-west-2", now);
        assert_eq!(ids, HashSet::from(["i-1".to_owned()]));
        assert!(
            t.pending(PendingKind::Instance, "b", "us-west-2", now)
                .is_empty()
        );
        assert!(
            t.pending(PendingKind::Instance, "a", "us-east-1", now)
                .is_empty()
        );
        assert!(
            t.pending(PendingKind::Instance, "a", "us-west-2", later)
                .is_empty()
        );
        // The DB scope is separate and still there.
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_full_table_prunes_then_evicts_the_closest_to_ready() {
        let mut t = PendingTracker::default();
        let now = Instant::now();
        for n in 0..MAX_PENDING {
            let ready = now + Duration::from_secs(100 + u64::try_from(n).unwrap_or(0));
            t.start(
                PendingKind::Instance,
                "a",
                "r",
                &format!("i-{n}"),
                ready,
                now,
            );
        }
        assert_eq!(t.len(), MAX_PENDING);
        // Re-adding a known id does not evict.
        t.start(
            PendingKind::Instance,
            "a",
            "r",
            "i-5",
            now + Duration::from_secs(1),
            now,
        );
        assert_eq!(t.len(), MAX_PENDING);
        // i-5 is now the closest to ready: it goes.
        t.start(
            PendingKind::Change,
            "a",
            "global",
            "C1",
            now + Duration::from_secs(9),
            now,
        );
        assert_eq!(t.len(), MAX_PENDING);
        let ids = t.pending(PendingKind::Instance, "a", "r", now);
        assert!(!ids.contains("i-5") && ids.contains("i-0"));
        // Once some are ready, an insert prunes them instead of evicting.
        let much_later = now + Duration::from_secs(150);
        t.start(
            PendingKind::Change,
            "a",
            "global",
            "C2",
            much_later,
            much_later,
        );
        assert!(t.len() < MAX_PENDING);
        assert!(
            t.pending(PendingKind::Instance, "a", "r", much_later)
                .contains(&format!("i-{}", MAX_PENDING - 1))
        );
    }

    #[test]
    fn change_ids_are_distinct_and_shaped_like_aws() {
        let mut t = PendingTracker::default();
        let ids: HashSet<String> = (0..1000).map(|_| t.new_change_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 14, "{id}");
            assert!(id.starts_with('C'));
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn durations_scale_and_zero_is_off() {
        assert_eq!(scaled(0.0, 1.0), None);
        assert_eq!(scaled(200.0, 100.0), Some(Duration::from_secs(2)));
        assert_eq!(scaled(1.5, 1.0), Some(Duration::from_millis(1500)));
        assert_eq!(scaled(1e300, 1e-300), Some(MAX_WAIT));
        let opts = ProxyOptions {
            db_creating_secs: -1.0,
            dns_pending_secs: f64::NAN,
            ..ProxyOptions::default()
        };
        let problems = option_problems(&opts);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(option_problems(&ProxyOptions::default()).is_empty());
    }
}
