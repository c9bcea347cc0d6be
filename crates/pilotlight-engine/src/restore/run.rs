//! Executing a run, and the executor that picks runs up (D3–D11).

use std::sync::Arc;
use std::time::Duration;

use pilotlight_aws::cache::{CacheMetrics, DescribeCache};
use pilotlight_aws::{AwsCtx, AwsError, CallTally, ErrorKind};
use pilotlight_core::config::RestoreConfig;
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
    if ctx.mode == RunMode::Disaster {
        dns::cutover(ctx, &ec2, &lbs, &dbs).await?;
        hooks::after_dns(ctx).await?;
    } else {
        ctx.journal
            .step(
                "dns",
                0,
                "dns",
                StepState::Skipped,
                &json!({"reason": "a drill never touches production DNS"}),
            )
            .await?;
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
    pub mode: RestoreMode,
    pub cache_metrics: CacheMetrics,
    pub metrics: super::progress::RestoreMetrics,
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
            .filter(|r| !r.dry_run && matches!(r.state, RunState::Pending | RunState::Running))
            .collect();
        runs.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then(a.id.cmp(&b.id)));
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
        let watcher = tokio::spawn(watch_cancel(store.clone(), run.id.clone(), stop.clone()));
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
        };
        let progress = tokio::spawn(super::progress::publish(
            ctx.clone(),
            self.deps.metrics.clone(),
        ));
        let mut executions = 0;
        let outcome = loop {
            executions += 1;
            match execute(&ctx).await {
                Ok(failed) => break Ok(failed),
                Err(ReconcileError::Cancelled) => break Err(None),
                Err(e) if executions >= MAX_EXECUTIONS => break Err(Some(e.to_string())),
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, executions, "restore execution failed; executing again");
                    tokio::select! {
                        () = stop.cancelled() => break Err(None),
                        () = tokio::time::sleep(Duration::from_secs(2u64.pow(executions))) => {}
                    }
                }
            }
        };
        stop.cancel();
        watcher.abort();
        super::progress::save_tally(&ctx).await;
        progress.abort();
        match outcome {
            Ok(0) => self.finish(&run, RunState::Succeeded, None).await,
            Ok(failed) => {
                self.finish(
                    &run,
                    RunState::Failed,
                    Some(format!("{failed} items failed; see the run's items")),
                )
                .await;
            }
            Err(Some(e)) => self.finish(&run, RunState::Failed, Some(e)).await,
            // Cancelled by the operator (the state is already `cancelled`) or by shutdown (the
            // run stays `running` and resumes on the next leader).
            Err(None) => {}
        }
        super::progress::publish_once(&ctx, &self.deps.metrics).await;
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

/// Fires `stop` once the run is cancelled in the store (by any replica's API).
async fn watch_cancel(store: Store, run_id: String, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Ok(Some(run)) = store.get_run(&run_id).await
            && run.state == RunState::Cancelled
        {
            tracing::info!(run = %run_id, "run cancelled: starting no new work");
            stop.cancel();
            return;
        }
    }
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
