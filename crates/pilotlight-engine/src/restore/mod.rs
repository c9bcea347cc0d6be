//! Restore mode (SPEC D1, D3–D11): a declared disaster brought up in the DR region.
//!
//! # How a run goes
//!
//! [`RestoreService`] (the API's side) declares a run from the current plan and keeps it in the
//! store's journal with the plan it will execute ([`PlanView`], the same document a dry run
//! answers). The run waits for approval under the two-person rule, then is `pending`. The
//! [`Executor`] runs on the leader only: it picks the oldest pending or running run and
//! executes it with [`run::execute`]:
//!
//! ```text
//!  t=0 ─┬─ EC2 tier 1 ─▶ tier 2 ─▶ … (each tier gated on the previous one running)  [ec2]
//!       ├─ load balancers, target groups, listeners ───────▶ register instances     [lb]
//!       └─ RDS restores, Aurora clusters + members ─▶ wait available                   [rds]
//!                                         all three done ─▶ DNS cutover, zone by zone [dns]
//! ```
//!
//! After each stage — a tier at its gate, the load balancers registered, the databases
//! available, the cutover — the configured restore hooks are called with the stage's restored
//! resources ([`hooks`], D13): signed, journalled, at most once per (run, hook, stage); a
//! waited-for hook holds what follows the stage until it answers.
//!
//! # Crash safety (D10)
//!
//! Every AWS mutation is an *item* of the journal ([`journal::Journal`]). It is written
//! `requested` with its idempotency token before the call and `done` with the DR id after it.
//! Executing a run is idempotent against the journal: a `done` item is reused, a `requested`
//! one is resolved first — `RunInstances` is simply sent again with the same `ClientToken`
//! (AWS, and the lab, answer the instances of the first call), other kinds are looked up by
//! their deterministic name or by the `pilotlight:run` + `pilotlight:source` tags — and only
//! then is anything new created. So a daemon killed at any point, restarted (or replaced by a
//! new leader), executes the same run again and finishes it with no duplicate and no orphan.
//!
//! # Restore mode
//!
//! While a disaster run is active, [`RestoreMode`] is on: the scheduler skips the reconcilers
//! that read the primary region (their failures would only be noise), DR-side work goes on, and
//! `/v1/status` and `pilotlight_restore_mode` show it.

mod dns;
mod ec2;
pub mod hooks;
mod journal;
mod lb;
pub mod progress;
mod rds;
mod run;
pub mod service;
pub mod teardown;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pilotlight_aws::cache::DescribeCache;
use pilotlight_aws::ec2::DrEc2;
use pilotlight_aws::elb::{DrElb, DrElbv2};
use pilotlight_aws::rds::DrRds;
use pilotlight_aws::route53::DrRoute53;
use pilotlight_aws::{AwsCtx, CallTally};
use pilotlight_core::config::RestoreConfig;
use pilotlight_core::inventory::Inventory;
use pilotlight_store::RunMode;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use crate::estate::PlanView;
pub use journal::Journal;
pub use run::{Executor, ExecutorDeps, RESTORED_STEP, execute, is_cancel_reason, retrying};
pub use service::*;

/// Whether the daemon is in restore mode (a disaster run is active). Cheap to clone; clones
/// share the flag.
#[derive(Debug, Clone, Default)]
pub struct RestoreMode {
    active: Arc<AtomicBool>,
}

impl RestoreMode {
    /// Whether a disaster run is active.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Switches restore mode on or off.
    pub fn set(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }
}

/// The DR-region handles a restore uses, and its describe cache.
#[derive(Debug, Clone)]
pub struct RestoreHandles {
    pub ec2: DrEc2,
    pub rds: DrRds,
    pub elb: DrElb,
    pub elbv2: DrElbv2,
    pub route53: DrRoute53,
    pub cache: DescribeCache,
}

impl RestoreHandles {
    /// Handles over the DR region's SDK configuration, every call also counted in `tally`,
    /// at most `in_flight` calls at a time (a permit is taken once the throttle has let the
    /// call go, so a call waiting for its bucket never holds up another service's).
    pub fn new(
        dr: &aws_types::SdkConfig,
        ctx: &AwsCtx,
        tally: Arc<CallTally>,
        cache: DescribeCache,
        in_flight: Arc<Semaphore>,
    ) -> RestoreHandles {
        let ctx = ctx.with_tally(tally).with_in_flight(in_flight);
        RestoreHandles {
            ec2: DrEc2::new(dr, ctx.clone()),
            rds: DrRds::new(dr, ctx.clone()),
            elb: DrElb::new(dr, ctx.clone()),
            elbv2: DrElbv2::new(dr, ctx.clone()),
            route53: DrRoute53::new(dr, ctx),
            cache,
        }
    }
}

/// Everything one run's steps share.
#[derive(Debug, Clone)]
pub struct RunCtx {
    pub run_id: String,
    pub mode: RunMode,
    /// The plan the run executes (fixed at declaration).
    pub plan: Arc<PlanView>,
    /// The inventory document the plan was built from.
    pub inventory: Arc<Inventory>,
    pub aws: RestoreHandles,
    pub journal: Journal,
    pub settings: Arc<RestoreConfig>,
    /// Fires when the run is cancelled (`POST /v1/restores/{id}/cancel`) or the daemon stops
    /// leading or shuts down: start no new mutation, record the ones in flight, return.
    pub stop: CancellationToken,
    /// This run's calls by operation (D11).
    pub tally: Arc<CallTally>,
    /// The restore hooks called after each stage (D13).
    pub hooks: Arc<hooks::Hooks>,
    /// A drill's DNS domain (`drill.dns_zone`); `None`: the drill skips DNS (and always for a
    /// disaster, which cuts the production zones over).
    pub drill_zone: Option<String>,
}

impl RunCtx {
    /// The tags every resource of the run carries: managed, run, source, and for a drill
    /// `pilotlight:drill=true`.
    pub fn tags(&self, source: &str) -> Vec<(String, String)> {
        let mut tags = vec![
            (pilotlight_aws::tags::MANAGED.to_owned(), "true".to_owned()),
            (pilotlight_aws::tags::RUN.to_owned(), self.run_id.clone()),
            (pilotlight_aws::tags::SOURCE.to_owned(), source.to_owned()),
        ];
        if self.mode == RunMode::Drill {
            tags.push((pilotlight_aws::tags::DRILL.to_owned(), "true".to_owned()));
        }
        tags
    }

    /// The poll interval for waits.
    pub fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.settings.poll_interval_ms)
    }

    /// Waits one poll interval, or returns `Err(Cancelled)` when the run is stopped first.
    ///
    /// # Errors
    /// [`crate::ReconcileError::Cancelled`] when [`RunCtx::stop`] fires.
    pub async fn pause(&self) -> Result<(), crate::ReconcileError> {
        tokio::select! {
            () = self.stop.cancelled() => Err(crate::ReconcileError::Cancelled),
            () = tokio::time::sleep(self.poll_interval()) => Ok(()),
        }
    }

    /// Returns `Err(Cancelled)` once the run is stopped: call before each new mutation.
    ///
    /// # Errors
    /// [`crate::ReconcileError::Cancelled`] when [`RunCtx::stop`] has fired.
    pub fn check_stop(&self) -> Result<(), crate::ReconcileError> {
        if self.stop.is_cancelled() {
            Err(crate::ReconcileError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A restored EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredInstance {
    pub instance_id: String,
    pub instance_type: String,
    pub availability_zone: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

/// What the EC2 tiers brought up: each primary instance id → the DR instances standing in for
/// it. Usually one; plan B may give one primary several smaller instances
/// (`r5.2xlarge × 1 → r5.xlarge × 2`), or one larger instance several primaries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ec2Outcome {
    pub instances: BTreeMap<String, Vec<RestoredInstance>>,
}

impl Ec2Outcome {
    /// The DR instances of a primary instance (empty when it was not restored).
    pub fn of(&self, primary_id: &str) -> &[RestoredInstance] {
        self.instances.get(primary_id).map_or(&[], Vec::as_slice)
    }

    /// The DR instances standing in for the primary instance with this private IP.
    pub fn by_private_ip<'a>(
        &'a self,
        inventory: &Inventory,
        ip: &str,
    ) -> Option<&'a [RestoredInstance]> {
        let primary = inventory
            .instances
            .iter()
            .find(|i| i.private_ip.as_deref() == Some(ip))?;
        self.instances.get(&primary.id).map(Vec::as_slice)
    }
}

/// Assigns the `m` instances launched for `n` primaries (in launch order) to the primaries:
/// with `m ≥ n` primary `i` gets every instance `j` with `j mod n = i` (a fan-out by plan B);
/// with `m < n` primary `i` shares instance `i mod m` (a fan-in). Equal counts map one to one.
pub fn assign<T: Clone>(primaries: &[String], launched: &[T]) -> BTreeMap<String, Vec<T>> {
    let (n, m) = (primaries.len(), launched.len());
    let mut out: BTreeMap<String, Vec<T>> = BTreeMap::new();
    if n == 0 || m == 0 {
        return out;
    }
    for (i, p) in primaries.iter().enumerate() {
        let mine: Vec<T> = if m >= n {
            launched.iter().skip(i).step_by(n).cloned().collect()
        } else {
            vec![launched[i % m].clone()]
        };
        out.insert(p.clone(), mine);
    }
    out
}

/// A recreated load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrLoadBalancer {
    /// Its name (classic) or ARN (v2).
    pub id: String,
    pub name: String,
    pub dns_name: String,
    /// The hosted zone id alias records pointing at it need.
    pub canonical_hosted_zone_id: Option<String>,
}

/// The load balancers recreated, by primary key (classic name, v2 ARN), and the DR target
/// group of each primary target group ARN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbOutcome {
    pub load_balancers: BTreeMap<String, DrLoadBalancer>,
    pub target_groups: BTreeMap<String, String>,
}

/// A restored RDS DB instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrDatabase {
    pub identifier: String,
    pub class: String,
    pub endpoint_address: Option<String>,
    pub endpoint_port: Option<i32>,
}

/// A restored Aurora cluster: its identifier and endpoints in the DR region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrCluster {
    pub identifier: String,
    /// The writer endpoint.
    pub endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    pub port: Option<i32>,
}

/// What the RDS step brought back, by primary identifier: DB instances (Aurora members among
/// them) and Aurora clusters. A cluster is listed once it is available with an endpoint and,
/// when it has members, one of them is available.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdsOutcome {
    pub databases: BTreeMap<String, DrDatabase>,
    #[serde(default)]
    pub clusters: BTreeMap<String, DrCluster>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("p{i}")).collect()
    }

    #[test]
    fn equal_counts_map_one_to_one() {
        let a = assign(&ids(3), &["a", "b", "c"]);
        assert_eq!(a["p0"], ["a"]);
        assert_eq!(a["p1"], ["b"]);
        assert_eq!(a["p2"], ["c"]);
    }

    #[test]
    fn fan_out_gives_each_primary_its_share() {
        // r5.2xlarge × 2 → r5.xlarge × 4
        let a = assign(&ids(2), &["a", "b", "c", "d"]);
        assert_eq!(a["p0"], ["a", "c"]);
        assert_eq!(a["p1"], ["b", "d"]);
    }

    #[test]
    fn fan_in_shares_instances() {
        // r5.xlarge × 2 → r5.2xlarge × 1
        let a = assign(&ids(2), &["a"]);
        assert_eq!(a["p0"], ["a"]);
        assert_eq!(a["p1"], ["a"]);
        assert!(assign(&ids(2), &Vec::<&str>::new()).is_empty());
    }
}
