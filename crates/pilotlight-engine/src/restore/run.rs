//! Executing a run, and the executor that picks runs up (D3–D11).

use std::sync::Arc;
use std::time::Duration;

use pilotlight_aws::cache::{CacheMetrics, DescribeCache};
use pilotlight_aws::{AwsCtx, AwsError, CallTally, ErrorKind};
use pilotlight_core::config::{DrillConfig, RestoreConfig};
use pilotlight_store::{ItemState, RestoreRun, RunMode, RunState, RunUpdate, StepState, Store};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{
    PlanView, RestoreHandles, RestoreMode, RunCtx, dns, ec2, hooks, journal::Journal, lb, rds,
};
use crate::ReconcileError;
use crate::estate::Planner;
use crate::now_ms;

/// Executes a run to its end: the EC2 tiers and the load balancers side by side, then the
/// instances registered with the load balancers — all of that beside RDS, whose restores take
/// far longer than a load balancer's members need to wait — then DNS (for a disaster), which
/// needs every restored endpoint. After each stage (every tier at its gate, the registered
/// load balancers, the available databases, the cutover) the restore hooks that follow it are
/// called ([`hooks::after`]; a waited-for one holds the next stage). Idempotent against the
/// journal: executing it again after a crash finishes it.
///
/// Returns the number of failed items (each recorded in the journal with its reason).
///
/// # Errors
/// [`ReconcileError::Cancelled`] when the run was stopped; store failures and unexpected AWS
/// answers that stop the whole run.
pub async fn execute(ctx: &RunCtx) -> Result<u64, ReconcileError> {
    let front = async {
        let (ec2, lbs) = tokio::join!(ec2::restore_tiers(ctx), lb::create(ctx));
        let (ec2, lbs) = (ec2?, lbs?);
        lb::register(ctx, &lbs, &ec2).await?;
        hooks::after_load_balancers(ctx, &lbs).await?;
        Ok::<_, ReconcileError>((ec2, lbs))
    };
    let dbs = async {
        let dbs = rds::restore(ctx).await?;
        hooks::after_databases(ctx, &dbs).await?;
        Ok::<_, ReconcileError>(dbs)
    };
    let (front, dbs) = tokio::join!(front, dbs);
    let ((ec2, lbs), dbs) = (front?, dbs?);
    match (ctx.mode, &ctx.drill_zone) {
        (RunMode::Disaster, _) => {
            dns::cutover(ctx, &ec2, &lbs, &dbs).await?;
            hooks::after_dns(ctx).await?;
        }
        (RunMode::Drill, Some(domain)) => {
            dns::drill_zone(ctx, &ec2, &lbs, &dbs, domain).await?;
            hooks::after_dns(ctx).await?;
        }
        (RunMode::Drill, None) => {
            ctx.journal
                .step(
                    "dns",
                    0,
                    "dns",
                    StepState::Skipped,
                    &json!({"reason": "a drill never touches production DNS (drill.dns_zone is empty)"}),
                )
                .await?;
        }
    }
    let failed = ctx
        .journal
        .store()
        .list_items(&ctx.run_id, Some(ItemState::Failed))
        .await?;
    // A hook's failure fails the run only as `HookFailed` (`on_failure = "fail"`).
    Ok(failed.iter().filter(|i| i.kind != hooks::KIND).count() as u64)
}

/// Runs `call` until it succeeds, retrying throttling, limit and transient errors with
/// exponential backoff from the poll interval (at most 30 s apart, at most `MAX_TRIES` tries).
/// Other errors, and the last retryable one, are returned.
///
/// # Errors
/// The call's last error, or [`ReconcileError::Cancelled`] when the run stops while waiting.
pub async fn retrying<T, F, Fut>(ctx: &RunCtx, mut call: F) -> Result<T, ReconcileError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AwsError>>,
{
    const MAX_TRIES: u32 = 12;
    let mut delay = ctx.poll_interval().max(Duration::from_millis(50));
    for attempt in 1.. {
        ctx.check_stop()?;
        match call().await {
            Ok(v) => return Ok(v),
            Err(e)
                if attempt < MAX_TRIES
                    && matches!(
                        e.kind,
                        ErrorKind::Throttled | ErrorKind::LimitExceeded | ErrorKind::Transient
                    ) =>
            {
                tracing::info!(
                    run = %ctx.run_id,
                    operation = e.operation,
                    error.kind = e.kind.as_str(),
                    attempt,
                    "restore call pushed back; retrying"
                );
                tokio::select! {
                    () = ctx.stop.cancelled() => return Err(ReconcileError::Cancelled),
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns")
}

/// What the executor needs besides the run.
#[derive(Debug, Clone)]
pub struct ExecutorDeps {
    pub store: Store,
    pub planner: Planner,
    /// The DR region's SDK configuration.
    pub dr: aws_types::SdkConfig,
    pub aws: AwsCtx,
    pub settings: Arc<RestoreConfig>,
    /// The restore hooks with their secrets (D13).
    pub hooks: Arc<super::hooks::Hooks>,
    /// `[drill]`: how long a drill's estate is held before its teardown.
    pub drill: Arc<DrillConfig>,
    pub mode: RestoreMode,
    pub cache_metrics: CacheMetrics,
    pub metrics: super::progress::RestoreMetrics,
    /// Set from the store when a drill finishes.
    pub drill_metrics: crate::drill::DrillMetrics,
}

/// Picks up pending and running runs on the leader and executes them one at a time.
#[derive(Debug, Clone)]
pub struct Executor {
    deps: ExecutorDeps,
    wake: Arc<tokio::sync::Notify>,
}

/// Consecutive failed executions after which a run is marked failed.
const MAX_EXECUTIONS: u32 = 5;

impl Executor {
    pub fn new(deps: ExecutorDeps, wake: Arc<tokio::sync::Notify>) -> Executor {
        Executor { deps, wake }
    }

    /// Runs until `shutdown` fires (the daemon stops or this replica stops leading).
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.next_run().await {
                Ok(Some(run)) => self.drive(run, &shutdown).await,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read restore runs"),
            }
            self.refresh_mode().await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Restore mode is on while a disaster run is active (awaiting approval included: the
    /// operator has declared the primary gone).
    async fn refresh_mode(&self) {
        if let Ok(active) = self.deps.store.active_runs().await {
            let on = active
                .iter()
                .any(|r| r.mode == RunMode::Disaster && !r.dry_run);
            self.deps.mode.set(on);
            self.deps.metrics.set_mode(on);
        }
    }

    async fn next_run(&self) -> Result<Option<RestoreRun>, ReconcileError> {
        let mut runs: Vec<RestoreRun> = self
            .deps
            .store
            .active_runs()
            .await?
            .into_iter()
            .filter(|r| {
                !r.dry_run
                    && matches!(
                        r.state,
                        RunState::Pending | RunState::Running | RunState::TearingDown
                    )
            })
            .collect();
        // A disaster goes before any drill (a drill in progress yields to it, see `drive`).
        runs.sort_by(|a, b| {
            (a.mode != RunMode::Disaster)
                .cmp(&(b.mode != RunMode::Disaster))
                .then(a.created_at_ms.cmp(&b.created_at_ms))
                .then(a.id.cmp(&b.id))
        });
        Ok(runs.into_iter().next())
    }

    /// Executes one run until it ends, is cancelled, or the executor shuts down.
    async fn drive(&self, run: RestoreRun, shutdown: &CancellationToken) {
        let store = &self.deps.store;
        self.deps.mode.set(run.mode == RunMode::Disaster);
        let mut run = run;
        if run.state == RunState::Pending {
            let mut update = RunUpdate::from(&run);
            update.state = RunState::Running;
            update.started_at_ms = Some(now_ms());
            match store
                .update_run_if(&run.id, RunState::Pending, &update)
                .await
            {
                Ok(Some(r)) => run = r,
                // Cancelled (or picked up elsewhere) since it was read: nothing to start.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "cannot start run");
                    return;
                }
            }
        }
        let plan: PlanView = match serde_json::from_str(&run.plan_json) {
            Ok(p) => p,
            Err(e) => {
                self.finish(
                    &run,
                    RunState::Failed,
                    Some(format!("stored plan unreadable: {e}")),
                )
                .await;
                return;
            }
        };
        let inventory = match self
            .deps
            .planner
            .inventory_document(
                plan.inventory_version,
                &plan.inventory_bucket,
                &plan.inventory_key,
            )
            .await
        {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "cannot read the run's inventory; retrying");
                return;
            }
        };
        let stop = shutdown.child_token();
        let tally = Arc::new(CallTally::default());
        let cache = if self.deps.settings.cache_ttl_secs == 0 {
            DescribeCache::disabled(self.deps.cache_metrics.clone())
        } else {
            DescribeCache::new(
                Duration::from_secs(self.deps.settings.cache_ttl_secs),
                self.deps.cache_metrics.clone(),
            )
        };
        let ctx = RunCtx {
            run_id: run.id.clone(),
            mode: run.mode,
            plan: Arc::new(plan),
            inventory,
            aws: RestoreHandles::new(
                &self.deps.dr,
                &self.deps.aws,
                tally.clone(),
                cache,
                Arc::new(Semaphore::new(
                    self.deps.settings.concurrency.max(1) as usize
                )),
            ),
            journal: Journal::new(store.clone(), run.id.clone()),
            settings: self.deps.settings.clone(),
            stop: stop.clone(),
            tally,
            hooks: self.deps.hooks.clone(),
            drill_zone: Some(self.deps.drill.dns_zone.trim().to_owned())
                .filter(|z| run.mode == RunMode::Drill && !z.is_empty()),
        };
        let progress = tokio::spawn(super::progress::publish(
            ctx.clone(),
            self.deps.metrics.clone(),
        ));
        let outcome = if run.state == RunState::Running {
            let watcher = tokio::spawn(watch_stop(
                store.clone(),
                run.clone(),
                StopWhen::RestorePhase,
                stop.clone(),
            ));
            let outcome = self.executions(&ctx, &stop, execute).await;
            stop.cancel();
            watcher.abort();
            Some(outcome)
        } else {
            None
        };
        let outcome = if run.mode == RunMode::Drill && !shutdown.is_cancelled() {
            self.drill_after_restore(&ctx, &run, outcome, shutdown)
                .await
        } else {
            outcome
        };
        super::progress::save_tally(&ctx).await;
        progress.abort();
        match outcome {
            Some(Ok(0)) => self.finish(&run, RunState::Succeeded, None).await,
            Some(Ok(failed)) => {
                self.finish(
                    &run,
                    RunState::Failed,
                    Some(format!("{failed} items failed; see the run's items")),
                )
                .await;
            }
            Some(Err(Some(e))) => self.finish(&run, RunState::Failed, Some(e)).await,
            // Cancelled by the operator (the state is already `cancelled`) or by shutdown (the
            // run stays `running` or `tearing_down` and resumes on the next leader).
            Some(Err(None)) | None => {}
        }
        super::progress::publish_once(&ctx, &self.deps.metrics).await;
        if run.mode == RunMode::Drill {
            self.deps.drill_metrics.refresh(store).await;
        }
    }

    /// Executes `phase` until it succeeds, is stopped, or failed [`MAX_EXECUTIONS`] times:
    /// `Ok(failed items)`, `Err(None)` when stopped, `Err(Some(reason))` when it gave up.
    async fn executions<'a, F, Fut>(
        &self,
        ctx: &'a RunCtx,
        stop: &CancellationToken,
        phase: F,
    ) -> Result<u64, Option<String>>
    where
        F: Fn(&'a RunCtx) -> Fut,
        Fut: std::future::Future<Output = Result<u64, ReconcileError>> + 'a,
    {
        let mut executions = 0;
        loop {
            executions += 1;
            match phase(ctx).await {
                Ok(failed) => return Ok(failed),
                Err(ReconcileError::Cancelled) => return Err(None),
                // A waited-for hook failed (D13): executing again would not send it again.
                Err(e @ ReconcileError::HookFailed { .. }) => return Err(Some(error_chain(&e))),
                Err(e) if executions >= MAX_EXECUTIONS => return Err(Some(error_chain(&e))),
                Err(e) => {
                    tracing::warn!(run = %ctx.run_id, error = %error_chain(&e), executions, "restore execution failed; executing again");
                    tokio::select! {
                        () = stop.cancelled() => return Err(None),
                        () = tokio::time::sleep(Duration::from_secs(2u64.pow(executions))) => {}
                    }
                }
            }
        }
    }

    /// A drill's second half (D12): the restore phase's end recorded as the drill's RTO, the
    /// estate held for `drill.hold_secs`, then the teardown, journalled and resumable. The
    /// answer is the drill's outcome; `None` when the teardown has to go on later (shutdown,
    /// or a disaster run pre-empting it).
    async fn drill_after_restore(
        &self,
        ctx: &RunCtx,
        run: &RestoreRun,
        restored: Option<Result<u64, Option<String>>>,
        shutdown: &CancellationToken,
    ) -> Option<Result<u64, Option<String>>> {
        let store = &self.deps.store;
        let mut current = store.get_run(&run.id).await.ok().flatten()?;
        if current.state == RunState::Running {
            // The restore phase ended on its own: record its end (the drill's RTO) and hold.
            let (failed, error) = match &restored {
                Some(Ok(n)) => (*n, None),
                Some(Err(Some(e))) => (0, Some(e.clone())),
                // Stopped by shutdown: resume later.
                Some(Err(None)) | None => return None,
            };
            let detail = json!({"failed_items": failed, "error": error});
            if let Err(e) = ctx
                .journal
                .step(RESTORED_STEP, 0, "drill", StepState::Done, &detail)
                .await
            {
                tracing::warn!(run = %run.id, error = %e, "cannot record the drill's restore end");
                return None;
            }
            let hold = Duration::from_secs(self.deps.drill.hold_secs);
            if !hold.is_zero() {
                tracing::info!(run = %run.id, hold_secs = hold.as_secs(), "drill restored; holding its estate before the teardown");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(hold) => {}
                }
            }
            let mut update = RunUpdate::from(&current);
            update.state = RunState::TearingDown;
            update.error = match (failed, error) {
                (_, Some(e)) => Some(e),
                (0, None) => None,
                (n, None) => Some(format!("{n} items failed; see the run's items")),
            };
            current = match store
                .update_run_if(&run.id, RunState::Running, &update)
                .await
            {
                Ok(Some(r)) => r,
                // Cancelled (to tearing down) meanwhile: read it again.
                Ok(None) => store.get_run(&run.id).await.ok().flatten()?,
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "cannot start the drill's teardown");
                    return None;
                }
            };
        }
        if current.state != RunState::TearingDown {
            return restored;
        }
        tracing::info!(run = %run.id, "drill teardown");
        let stop = shutdown.child_token();
        let watcher = tokio::spawn(watch_stop(
            store.clone(),
            current.clone(),
            StopWhen::Teardown,
            stop.clone(),
        ));
        let ctx = RunCtx {
            stop: stop.clone(),
            ..ctx.clone()
        };
        let torn = self
            .executions(&ctx, &stop, |c| async move {
                super::teardown::teardown(c).await.map(|()| 0)
            })
            .await;
        watcher.abort();
        let teardown_error = match torn {
            Ok(_) => None,
            Err(None) => return None,
            Err(Some(e)) => Some(format!("teardown: {e}")),
        };
        let restore_error = current.error.clone();
        let cancelled = restore_error.as_deref().is_some_and(is_cancel_reason);
        let state = if teardown_error.is_some() {
            RunState::Failed
        } else if cancelled {
            RunState::Cancelled
        } else if restore_error.is_some() {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        let error = match (restore_error, teardown_error) {
            (None, None) => None,
            (Some(a), None) => Some(a),
            (None, Some(b)) => Some(b),
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        };
        self.finish_from(&current, RunState::TearingDown, state, error)
            .await;
        // Recorded here: nothing left for `drive` to finish.
        None
    }

    /// Ends a run from `expected` (a drill's `tearing_down`).
    async fn finish_from(
        &self,
        run: &RestoreRun,
        expected: RunState,
        state: RunState,
        error: Option<String>,
    ) {
        let mut update = RunUpdate::from(run);
        update.state = state;
        update.finished_at_ms = Some(now_ms());
        update.error = error;
        match self
            .deps
            .store
            .update_run_if(&run.id, expected, &update)
            .await
        {
            Ok(Some(_)) => tracing::info!(run = %run.id, state = %state, "drill finished"),
            Ok(None) => tracing::info!(run = %run.id, "the drill changed state as it finished"),
            Err(e) => tracing::warn!(run = %run.id, error = %e, "cannot record the drill's end"),
        }
    }

    async fn finish(&self, run: &RestoreRun, state: RunState, error: Option<String>) {
        let current = match self.deps.store.get_run(&run.id).await {
            Ok(Some(r)) => r,
            _ => run.clone(),
        };
        if !current.state.is_active() {
            return;
        }
        let mut update = RunUpdate::from(&current);
        update.state = state;
        update.finished_at_ms = Some(now_ms());
        update.error = error;
        // Only from the state just read: a cancel that lands in between is kept.
        match self
            .deps
            .store
            .update_run_if(&run.id, current.state, &update)
            .await
        {
            Ok(Some(_)) => tracing::info!(run = %run.id, state = %state, "restore run finished"),
            Ok(None) => tracing::info!(
                run = %run.id,
                "the run changed state as it finished (cancelled meanwhile); its state is kept"
            ),
            Err(e) => tracing::warn!(run = %run.id, error = %e, "cannot record the run's end"),
        }
    }
}

/// The step a drill's restore phase ends with: its finish time is the drill's RTO.
pub const RESTORED_STEP: &str = "drill/restored";

/// Whether a run's error says an operator cancelled it, or a disaster pre-empted the drill.
pub fn is_cancel_reason(error: &str) -> bool {
    error.starts_with(super::service::CANCELLED_BY) || error.starts_with(PRE_EMPTED)
}

/// The error a drill pre-empted by a disaster run records.
const PRE_EMPTED: &str = "pre-empted by disaster run";

/// What ends a phase early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopWhen {
    /// The restore phase: the run leaves `running` (cancelled; a drill cancelled goes to
    /// `tearing_down`), or, for a drill, a disaster run is waiting.
    RestorePhase,
    /// A drill's teardown: only a waiting disaster run stops it (it resumes afterwards).
    Teardown,
}

/// Fires `stop` once the phase must end: see [`StopWhen`]. A drill in its restore phase that
/// yields to a disaster run is moved to `tearing_down` with the reason, so it is torn down once
/// the disaster run is over.
async fn watch_stop(store: Store, run: RestoreRun, when: StopWhen, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let Ok(Some(current)) = store.get_run(&run.id).await else {
            continue;
        };
        if when == StopWhen::RestorePhase && current.state != RunState::Running {
            tracing::info!(run = %run.id, state = %current.state, "run cancelled: starting no new work");
            stop.cancel();
            return;
        }
        if run.mode != RunMode::Drill {
            continue;
        }
        let Ok(active) = store.active_runs().await else {
            continue;
        };
        let Some(disaster) = active
            .iter()
            .find(|r| r.mode == RunMode::Disaster && !r.dry_run && r.state == RunState::Pending)
        else {
            continue;
        };
        tracing::warn!(run = %run.id, disaster = %disaster.id, "a disaster run was declared: the drill yields to it");
        if when == StopWhen::RestorePhase {
            let mut update = RunUpdate::from(&current);
            update.state = RunState::TearingDown;
            update.error = Some(format!("{PRE_EMPTED} {}", disaster.id));
            if let Err(e) = store
                .update_run_if(&run.id, RunState::Running, &update)
                .await
            {
                tracing::warn!(run = %run.id, error = %e, "cannot record the drill's pre-emption");
            }
        }
        stop.cancel();
        return;
    }
}

/// An error with its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    /// The executor runs in `tokio::spawn` on the multi-threaded runtime, so its future must be
    /// `Send`: this does not compile otherwise.
    #[allow(dead_code)]
    fn execute_is_send(ctx: &'static super::RunCtx) {
        fn send<T: Send>(_: T) {}
        send(super::execute(ctx));
    }
}
