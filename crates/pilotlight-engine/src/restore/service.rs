//! Declaring, approving and cancelling restore runs (SPEC D1): the API's side of restore mode.
//!
//! [`RestoreService::declare`] plans the requested scope with the current inventory and writes a
//! run carrying that plan (the executor runs exactly what was declared, even if the inventory
//! moves on). A dry run answers the plan and writes nothing. A run starts `pending`, or
//! `awaiting_approval` for a disaster under the two-person rule (`restore.require_approval`);
//! [`RestoreService::approve`] by a *different* principal moves it on. The executor is woken
//! whenever there is something for it to pick up.
//!
//! # Rules
//!
//! - While a disaster run is active nothing else may be declared (a second disaster, or a drill
//!   competing with it for the executor and the API limits): the declaration is refused with
//!   [`RestoreServiceError::Active`] naming the active run.
//! - An `Idempotency-Key` maps to one run forever: repeating a declaration with the same key
//!   answers that run (`created = false`), even while it is active; the same key with a
//!   different request (mode, tiers, tenants) is refused.
//! - A plan with problems (resources lacking a DR copy) still declares: the operator decides.
//!   The problem count is part of the answer.
//!
//! Declarations, approvals and cancellations of this process are serialised, so two concurrent
//! requests cannot both pass the "no active disaster" check. Replicas do not share that lock:
//! across replicas the store enforces one active disaster run (a partial unique index, migration
//! 0003), and a declaration it refuses is answered [`RestoreServiceError::Active`] like any
//! other. (A drill declared on one replica as another declares a disaster can still slip
//! through that window; only the leader executes, one run at a time.)

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use pilotlight_core::config::RestoreConfig;
use pilotlight_core::scope::Scope;
use pilotlight_store::{NewRun, RestoreRun, RunMode, RunState, RunUpdate, Store, StoreError};
use serde::Deserialize;
use tokio::sync::{Mutex, Notify};

use super::{PlanView, RestoreMode};
use crate::estate::{PlanError, Planner};
use crate::now_ms;

/// Where declarations get their plan: the [`Planner`] in the daemon.
#[async_trait]
pub trait PlanSource: Send + Sync + std::fmt::Debug {
    /// The capacity and restore plans for `scope`.
    ///
    /// # Errors
    ///
    /// [`PlanError`]: no inventory yet, a bad scope, store or S3 failures.
    async fn plan(&self, scope: &Scope) -> Result<PlanView, PlanError>;
}

#[async_trait]
impl PlanSource for Planner {
    async fn plan(&self, scope: &Scope) -> Result<PlanView, PlanError> {
        Planner::plan(self, scope).await
    }
}

/// What an operator declares (`POST /v1/restores`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclareRequest {
    /// Disaster or drill.
    pub mode: RunMode,
    /// Tiers to restore (empty: every tier).
    pub tiers: Vec<u8>,
    /// Tenants to restore (empty: the whole estate).
    pub tenants: Vec<String>,
    /// Answer the plan only; write nothing.
    pub dry_run: bool,
}

/// The answer to a declaration.
#[derive(Debug, Clone)]
pub enum Declared {
    /// A run: created now, or the one an earlier request with the same idempotency key created.
    Run {
        run: Box<RestoreRun>,
        /// Whether this request created it.
        created: bool,
        /// Problems in the run's plan (resources lacking a DR counterpart).
        problems: usize,
    },
    /// A dry run: the plan, nothing written.
    DryRun(Box<PlanView>),
}

/// Why a declaration, approval or cancellation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreServiceError {
    /// No plan could be made (no inventory yet, unknown tenant, bad tier, …).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A disaster run is active.
    #[error(
        "restore run {run_id} ({mode}) is active: it must finish or be cancelled before another run is declared"
    )]
    Active { run_id: String, mode: RunMode },
    /// The idempotency key belongs to a run declared with a different request.
    #[error("idempotency key {key:?} was used for run {run_id}, declared with a different request")]
    IdempotencyMismatch { key: String, run_id: String },
    /// No run has this id.
    #[error("no restore run {run_id:?}")]
    NotFound { run_id: String },
    /// Approval of a run that is not waiting for one.
    #[error("restore run {run_id} is {state}, not awaiting approval")]
    NotAwaitingApproval { run_id: String, state: RunState },
    /// The two-person rule: the declaring principal cannot approve.
    #[error("{principal} declared restore run {run_id}: a different principal must approve it")]
    SamePrincipal { run_id: String, principal: String },
    /// Cancellation of a run that has ended.
    #[error("restore run {run_id} has already finished ({state})")]
    Finished { run_id: String, state: RunState },
    /// The plan could not be encoded for the store.
    #[error("cannot encode the restore plan")]
    Encode(#[source] serde_json::Error),
    /// The store failed.
    #[error("state store failed")]
    Store(#[from] StoreError),
}

/// Declares, approves, cancels and lists restore runs. Cheap to clone; clones share the wake-up
/// signal and the declaration lock.
#[derive(Debug, Clone)]
pub struct RestoreService {
    store: Store,
    planner: Arc<dyn PlanSource>,
    settings: Arc<RestoreConfig>,
    mode: RestoreMode,
    wake: Arc<Notify>,
    lock: Arc<Mutex<()>>,
}

/// How the error of a run an operator cancelled begins: `cancelled by <principal>`.
pub const CANCELLED_BY: &str = "cancelled by ";

/// Attempts at a fresh run id when one collides (practically never: 24 random bits per second).
const ID_ATTEMPTS: u32 = 5;

impl RestoreService {
    /// A service over `store`, planning with `planner`. `wake` is the executor's: it is
    /// notified whenever a run becomes pending or is cancelled.
    pub fn new(
        store: Store,
        planner: impl PlanSource + 'static,
        settings: Arc<RestoreConfig>,
        mode: RestoreMode,
        wake: Arc<Notify>,
    ) -> RestoreService {
        RestoreService {
            store,
            planner: Arc::new(planner),
            settings,
            mode,
            wake,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The store the runs live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This process's restore-mode flag.
    pub fn mode(&self) -> &RestoreMode {
        &self.mode
    }

    /// Declares a run (or answers a dry run's plan). See the module doc for the rules.
    ///
    /// # Errors
    ///
    /// [`RestoreServiceError::Plan`] when no plan can be made; [`RestoreServiceError::Active`]
    /// while a disaster run is active; [`RestoreServiceError::IdempotencyMismatch`];
    /// store failures.
    pub async fn declare(
        &self,
        principal: &str,
        request: DeclareRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Declared, RestoreServiceError> {
        let request = normalized(request);
        let scope = Scope {
            tenants: request.tenants.clone(),
            tiers: request.tiers.clone(),
        };
        if request.dry_run {
            let plan = self.planner.plan(&scope).await?;
            return Ok(Declared::DryRun(Box::new(plan)));
        }
        let _serial = self.lock.lock().await;
        let active = self.store.active_runs().await?;
        if let Some(key) = idempotency_key
            && let Some(run) = active
                .iter()
                .find(|r| r.idempotency_key.as_deref() == Some(key))
        {
            return repeated(run.clone(), key, &request);
        }
        if let Some(blocking) = active
            .iter()
            .find(|r| !r.dry_run && r.mode == RunMode::Disaster)
        {
            return Err(RestoreServiceError::Active {
                run_id: blocking.id.clone(),
                mode: blocking.mode,
            });
        }
        let plan = self.planner.plan(&scope).await?;
        let problems = plan.restore.problems.len();
        let plan_json = serde_json::to_string(&plan).map_err(RestoreServiceError::Encode)?;
        let tiers_json =
            serde_json::to_string(&request.tiers).map_err(RestoreServiceError::Encode)?;
        let state = if self.settings.require_approval && request.mode == RunMode::Disaster {
            RunState::AwaitingApproval
        } else {
            RunState::Pending
        };
        let mut attempt = 0;
        let (run, created) = loop {
            attempt += 1;
            let created_at_ms = declaration_time();
            let new = NewRun {
                id: run_id(created_at_ms),
                mode: request.mode,
                state,
                dry_run: false,
                tiers_json: tiers_json.clone(),
                plan_json: plan_json.clone(),
                requested_by: principal.to_owned(),
                idempotency_key: idempotency_key.map(str::to_owned),
                created_at_ms,
            };
            match self.store.create_run(&new).await {
                Ok(done) => break done,
                Err(StoreError::RunIdConflict { .. }) if attempt < ID_ATTEMPTS => {}
                // Another replica declared at the same moment: the store's one-active-disaster
                // index refused this one.
                Err(StoreError::ActiveDisaster { run_id }) => {
                    return Err(RestoreServiceError::Active {
                        run_id,
                        mode: RunMode::Disaster,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        };
        if !created {
            // The key belongs to a run that has finished since (an active one was answered
            // above).
            let key = idempotency_key.unwrap_or_default();
            return repeated(run, key, &request);
        }
        tracing::info!(
            run = %run.id,
            mode = %run.mode,
            state = %run.state,
            requested_by = principal,
            problems,
            "restore run declared"
        );
        self.settle().await;
        Ok(Declared::Run {
            run: Box::new(run),
            created: true,
            problems,
        })
    }

    /// Approves a run awaiting approval: it becomes `pending` and the executor picks it up.
    ///
    /// # Errors
    ///
    /// [`RestoreServiceError::NotFound`], [`RestoreServiceError::NotAwaitingApproval`],
    /// [`RestoreServiceError::SamePrincipal`] (the two-person rule), store failures.
    pub async fn approve(
        &self,
        run_id: &str,
        approver: &str,
    ) -> Result<RestoreRun, RestoreServiceError> {
        let _serial = self.lock.lock().await;
        let run = self.get(run_id).await?;
        if run.state != RunState::AwaitingApproval {
            return Err(RestoreServiceError::NotAwaitingApproval {
                run_id: run.id,
                state: run.state,
            });
        }
        if run.requested_by == approver {
            return Err(RestoreServiceError::SamePrincipal {
                run_id: run.id,
                principal: approver.to_owned(),
            });
        }
        let mut update = RunUpdate::from(&run);
        update.state = RunState::Pending;
        update.approved_by = Some(approver.to_owned());
        let Some(run) = self
            .store
            .update_run_if(run_id, RunState::AwaitingApproval, &update)
            .await?
        else {
            // Cancelled by another replica since it was read.
            let run = self.get(run_id).await?;
            return Err(RestoreServiceError::NotAwaitingApproval {
                run_id: run.id,
                state: run.state,
            });
        };
        tracing::info!(run = %run.id, approved_by = approver, "restore run approved");
        self.settle().await;
        Ok(run)
    }

    /// Cancels an active run: it becomes `cancelled` at once, and the executor (on whichever
    /// replica leads) stops starting new work for it within its watch interval. What a
    /// disaster run already created stays, journalled. A drill that has started goes to
    /// `tearing_down` instead (its teardown then removes what it created, and it ends
    /// `cancelled`); one already tearing down is answered as it is.
    ///
    /// # Errors
    ///
    /// [`RestoreServiceError::NotFound`], [`RestoreServiceError::Finished`], store failures.
    pub async fn cancel(&self, run_id: &str, by: &str) -> Result<RestoreRun, RestoreServiceError> {
        let _serial = self.lock.lock().await;
        // Each write applies only from the state just read: the executor may start or finish
        // the run meanwhile (a finished run stays as it ended; a started one is cancelled from
        // `running`). A few rounds settle it.
        for _ in 0..3 {
            let run = self.get(run_id).await?;
            if !run.state.is_active() {
                return Err(RestoreServiceError::Finished {
                    run_id: run.id,
                    state: run.state,
                });
            }
            let started_drill = run.mode == RunMode::Drill
                && matches!(run.state, RunState::Running | RunState::TearingDown);
            if started_drill && run.state == RunState::TearingDown {
                // Already tearing down: the teardown finishes whatever the operator says.
                return Ok(run);
            }
            let mut update = RunUpdate::from(&run);
            if started_drill {
                // A started drill is never left standing: it goes on to its teardown, and ends
                // `cancelled` once that is done.
                update.state = RunState::TearingDown;
            } else {
                update.state = RunState::Cancelled;
                update.finished_at_ms = Some(now_ms());
            }
            update.error = Some(format!("{CANCELLED_BY}{by}"));
            if let Some(run) = self.store.update_run_if(run_id, run.state, &update).await? {
                tracing::info!(run = %run.id, cancelled_by = by, "restore run cancelled");
                self.settle().await;
                return Ok(run);
            }
        }
        let run = self.get(run_id).await?;
        Err(RestoreServiceError::Finished {
            run_id: run.id,
            state: run.state,
        })
    }

    /// The run with this id.
    ///
    /// # Errors
    ///
    /// [`RestoreServiceError::NotFound`], store failures.
    pub async fn get(&self, run_id: &str) -> Result<RestoreRun, RestoreServiceError> {
        self.store
            .get_run(run_id)
            .await?
            .ok_or_else(|| RestoreServiceError::NotFound {
                run_id: run_id.to_owned(),
            })
    }

    /// The `limit` most recently declared runs, newest first.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn list(&self, limit: u32) -> Result<Vec<RestoreRun>, StoreError> {
        self.store.list_runs(limit).await
    }

    /// The run restore mode is about: the active disaster run, else the oldest active run.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn active_run(&self) -> Result<Option<RestoreRun>, StoreError> {
        let active: Vec<RestoreRun> = self
            .store
            .active_runs()
            .await?
            .into_iter()
            .filter(|r| !r.dry_run)
            .collect();
        let disaster = active.iter().position(|r| r.mode == RunMode::Disaster);
        Ok(match disaster {
            Some(i) => active.into_iter().nth(i),
            None => active.into_iter().next(),
        })
    }

    /// After a change: restore mode follows the store at once on this replica (the executor
    /// keeps it current on the leader), and the executor looks for work.
    async fn settle(&self) {
        match self.store.active_runs().await {
            Ok(active) => self.mode.set(
                active
                    .iter()
                    .any(|r| r.mode == RunMode::Disaster && !r.dry_run),
            ),
            Err(e) => tracing::warn!(error = %e, "cannot refresh restore mode"),
        }
        self.wake.notify_one();
    }
}

/// Sorted, de-duplicated tiers and tenants: the same scope compares equal however it was
/// written.
fn normalized(mut request: DeclareRequest) -> DeclareRequest {
    request.tiers.sort_unstable();
    request.tiers.dedup();
    request.tenants.sort();
    request.tenants.dedup();
    request
}

/// The parts of a stored plan a repeated declaration compares and reports.
#[derive(Deserialize)]
struct PlanHead {
    scope: Scope,
    restore: RestoreHead,
}

#[derive(Deserialize)]
struct RestoreHead {
    problems: Vec<serde::de::IgnoredAny>,
}

/// The answer to a repeated idempotency key: the run it created, if the request is the same.
fn repeated(
    run: RestoreRun,
    key: &str,
    request: &DeclareRequest,
) -> Result<Declared, RestoreServiceError> {
    let head: Option<PlanHead> = serde_json::from_str(&run.plan_json).ok();
    let same_tenants = head.as_ref().is_none_or(|h| {
        let mut stored = h.scope.tenants.clone();
        stored.sort();
        stored.dedup();
        stored == request.tenants
    });
    let same_tiers = serde_json::from_str::<Vec<u8>>(&run.tiers_json).is_ok_and(|mut t| {
        t.sort_unstable();
        t.dedup();
        t == request.tiers
    });
    if run.mode != request.mode || run.dry_run || !same_tiers || !same_tenants {
        return Err(RestoreServiceError::IdempotencyMismatch {
            key: key.to_owned(),
            run_id: run.id,
        });
    }
    let problems = head.map_or(0, |h| h.restore.problems.len());
    Ok(Declared::Run {
        run: Box::new(run),
        created: false,
        problems,
    })
}

/// Now (unix ms), strictly later than every earlier declaration of this process, so runs
/// declared within one millisecond still list in declaration order.
fn declaration_time() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ms();
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

/// A new run id, `r-<yyyymmddThhmmss>-<6 hex>` (UTC): sortable by declaration time, short
/// enough for the `pilotlight:run` tag and the client tokens derived from it.
pub fn run_id(now_ms: i64) -> String {
    let secs = now_ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "r-{y:04}{m:02}{d:02}T{:02}{:02}{:02}-{:06x}",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        random24()
    )
}

/// 24 random bits: std's per-process random hash keys (advanced on every call) over the clock.
fn random24() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish() & 0xff_ffff
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01); Howard Hinnant's
/// `civil_from_days`.
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
pub(crate) mod tests {
    use pilotlight_core::config::Config;
    use pilotlight_core::inventory::Inventory;
    use pilotlight_core::scope::{DrState, select};
    use pilotlight_store::StoreOptions;

    use super::*;

    /// Plans from an empty inventory with one known tenant, through the same pure functions as
    /// the planner.
    #[derive(Debug)]
    pub(crate) struct EmptyEstate;

    #[async_trait]
    impl PlanSource for EmptyEstate {
        async fn plan(&self, scope: &Scope) -> Result<PlanView, PlanError> {
            let config = Config::default();
            let inventory = Inventory::default();
            let tenants = vec![pilotlight_core::config::TenantConfig {
                name: "acme".into(),
                clusters: vec!["web".into()],
            }];
            let selection = select(&inventory, &tenants, scope)?;
            Ok(PlanView {
                inventory_version: 1,
                inventory_bucket: "b".into(),
                inventory_key: "k".into(),
                captured_at_ms: 0,
                scope: scope.clone(),
                capacity: pilotlight_core::capacity::capacity_plan(
                    &inventory,
                    &selection,
                    &config.quotas,
                ),
                restore: pilotlight_core::plan::restore_plan(
                    &inventory,
                    &selection,
                    &DrState::default(),
                    &config.restore,
                    &config.throttle,
                ),
            })
        }
    }

    async fn service(require_approval: bool) -> RestoreService {
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let settings = RestoreConfig {
            require_approval,
            ..RestoreConfig::default()
        };
        RestoreService::new(
            store,
            EmptyEstate,
            Arc::new(settings),
            RestoreMode::default(),
            Arc::new(Notify::new()),
        )
    }

    fn disaster() -> DeclareRequest {
        DeclareRequest {
            mode: RunMode::Disaster,
            tiers: vec![],
            tenants: vec![],
            dry_run: false,
        }
    }

    fn run_of(d: Declared) -> (RestoreRun, bool) {
        match d {
            Declared::Run { run, created, .. } => (*run, created),
            Declared::DryRun(_) => panic!("expected a run"),
        }
    }

    #[test]
    fn run_ids_carry_the_utc_time_and_differ() {
        // 2024-02-29T23:59:58.5Z
        let a = run_id(1_709_251_198_500);
        assert!(a.starts_with("r-20240229T235958-"), "{a}");
        assert_eq!(a.len(), "r-20240229T235958-abcdef".len());
        assert_ne!(a, run_id(1_709_251_198_500));
        assert!(run_id(0).starts_with("r-19700101T000000-"));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[tokio::test]
    async fn dry_run_writes_nothing() {
        let svc = service(false).await;
        let d = svc
            .declare(
                "otto",
                DeclareRequest {
                    dry_run: true,
                    ..disaster()
                },
                Some("k"),
            )
            .await
            .unwrap();
        assert!(matches!(d, Declared::DryRun(_)));
        assert!(svc.list(10).await.unwrap().is_empty());
        assert!(!svc.mode().is_active());
    }

    /// Two replicas (two services, each with its own lock) on one store declare at the same
    /// moment: the store's index lets one through; the other is refused as `Active`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_declaring_at_once_make_one_disaster_run() {
        let a = service(true).await;
        let b = RestoreService::new(
            a.store().clone(),
            EmptyEstate,
            Arc::new(RestoreConfig {
                require_approval: true,
                ..RestoreConfig::default()
            }),
            RestoreMode::default(),
            Arc::new(Notify::new()),
        );
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let declare = |svc: RestoreService, key: &'static str| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                svc.declare("otto", disaster(), Some(key)).await
            })
        };
        let (ra, rb) = (declare(a.clone(), "ka"), declare(b.clone(), "kb"));
        let outcomes = [ra.await.unwrap(), rb.await.unwrap()];
        let created: Vec<RestoreRun> = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(Declared::Run { run, created, .. }) if *created => Some((**run).clone()),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 1, "{outcomes:?}");
        assert!(
            outcomes.iter().any(|o| matches!(
                o,
                Err(RestoreServiceError::Active { run_id, mode: RunMode::Disaster })
                    if *run_id == created[0].id
            )),
            "{outcomes:?}"
        );
        assert_eq!(a.list(10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn declare_is_idempotent_and_a_second_disaster_is_refused() {
        let svc = service(false).await;
        let (first, created) = run_of(svc.declare("otto", disaster(), Some("k1")).await.unwrap());
        assert!(created);
        assert_eq!(first.state, RunState::Pending);
        assert!(svc.mode().is_active());
        let plan: PlanView = serde_json::from_str(&first.plan_json).unwrap();
        assert_eq!(plan.inventory_version, 1);

        let (again, created) = run_of(svc.declare("otto", disaster(), Some("k1")).await.unwrap());
        assert!(!created);
        assert_eq!(again.id, first.id);

        let err = svc
            .declare("otto", disaster(), Some("k2"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RestoreServiceError::Active { ref run_id, .. } if *run_id == first.id)
        );
        let drill = DeclareRequest {
            mode: RunMode::Drill,
            ..disaster()
        };
        assert!(matches!(
            svc.declare("otto", drill, None).await,
            Err(RestoreServiceError::Active { .. })
        ));
        let other = DeclareRequest {
            tiers: vec![1],
            ..disaster()
        };
        assert!(matches!(
            svc.declare("otto", other, Some("k1")).await,
            Err(RestoreServiceError::IdempotencyMismatch { .. })
        ));
        assert_eq!(svc.list(10).await.unwrap().len(), 1);
        assert_eq!(
            svc.active_run().await.unwrap().map(|r| r.id),
            Some(first.id.clone())
        );

        // Cancelled, the key still answers the same run; a new key declares a new one.
        svc.cancel(&first.id, "otto").await.unwrap();
        assert!(!svc.mode().is_active());
        let (after, created) = run_of(svc.declare("otto", disaster(), Some("k1")).await.unwrap());
        assert!(!created);
        assert_eq!(after.id, first.id);
        assert_eq!(after.state, RunState::Cancelled);
        let (second, created) = run_of(svc.declare("otto", disaster(), Some("k3")).await.unwrap());
        assert!(created);
        assert_ne!(second.id, first.id);
    }

    #[tokio::test]
    async fn bad_scope_is_a_plan_error_and_writes_nothing() {
        let svc = service(false).await;
        let bad = DeclareRequest {
            tenants: vec!["nobody".into()],
            ..disaster()
        };
        assert!(matches!(
            svc.declare("otto", bad, None).await,
            Err(RestoreServiceError::Plan(PlanError::Scope(_)))
        ));
        let bad = DeclareRequest {
            tiers: vec![12],
            ..disaster()
        };
        assert!(matches!(
            svc.declare("otto", bad, None).await,
            Err(RestoreServiceError::Plan(PlanError::Scope(_)))
        ));
        assert!(svc.list(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn two_person_rule() {
        let svc = service(true).await;
        let (run, _) = run_of(svc.declare("otto", disaster(), None).await.unwrap());
        assert_eq!(run.state, RunState::AwaitingApproval);
        assert!(
            svc.mode().is_active(),
            "a declared disaster is restore mode"
        );
        assert!(matches!(
            svc.approve(&run.id, "otto").await,
            Err(RestoreServiceError::SamePrincipal { .. })
        ));
        let approved = svc.approve(&run.id, "anna").await.unwrap();
        assert_eq!(approved.state, RunState::Pending);
        assert_eq!(approved.approved_by.as_deref(), Some("anna"));
        assert!(matches!(
            svc.approve(&run.id, "anna").await,
            Err(RestoreServiceError::NotAwaitingApproval { .. })
        ));
        assert!(matches!(
            svc.approve("r-nope", "anna").await,
            Err(RestoreServiceError::NotFound { .. })
        ));

        // A drill needs no approval.
        let svc = service(true).await;
        let drill = DeclareRequest {
            mode: RunMode::Drill,
            ..disaster()
        };
        let (run, _) = run_of(svc.declare("otto", drill, None).await.unwrap());
        assert_eq!(run.state, RunState::Pending);
        assert!(!svc.mode().is_active());
    }

    #[tokio::test]
    async fn cancel_ends_an_active_run_once() {
        let svc = service(false).await;
        let (run, _) = run_of(svc.declare("otto", disaster(), None).await.unwrap());
        let cancelled = svc.cancel(&run.id, "carl").await.unwrap();
        assert_eq!(cancelled.state, RunState::Cancelled);
        assert_eq!(cancelled.error.as_deref(), Some("cancelled by carl"));
        assert!(cancelled.finished_at_ms.is_some());
        assert!(matches!(
            svc.cancel(&run.id, "carl").await,
            Err(RestoreServiceError::Finished {
                state: RunState::Cancelled,
                ..
            })
        ));
        assert!(matches!(
            svc.cancel("r-nope", "carl").await,
            Err(RestoreServiceError::NotFound { .. })
        ));
        assert!(svc.active_run().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_declaration_wakes_the_executor() {
        let svc = service(false).await;
        let woken = svc.wake.clone();
        let waiter = tokio::spawn(async move { woken.notified().await });
        svc.declare("otto", disaster(), None).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the executor was woken")
            .unwrap();
    }
}
