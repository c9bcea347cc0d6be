//! The reconcile scheduler.
//!
//! Keys are `(reconciler, key)` pairs. Each is due at one time; when due and not already
//! running, and fewer than `concurrency` reconciles are running, it is started. A key that comes
//! due (or is triggered) while it runs is re-run right after it finishes, never concurrently.
//! Success requeues after the [`Action`]'s delay; failure asks the reconciler's
//! [`Reconciler::error_policy`].
//!
//! Bounds: the trigger queue holds [`TRIGGER_QUEUE`] requests; when full, [`SchedulerHandle::
//! trigger`] refuses rather than waits. The set of keys is the reconcilers' own, fixed at start.
//!
//! Restore mode (D1): with a [`RestoreMode`] attached ([`Scheduler::with_restore_mode`]), while
//! it is active a due key of a reconciler that [reads the primary](Reconciler::reads_primary) is
//! not started: its status shows `paused` (its last outcome and failure count untouched) and it
//! is checked again every [`PAUSE_RECHECK`], so it runs again within that once the mode ends. A
//! reconcile of such a reconciler already running when the mode starts finishes; if it fails
//! while the mode is on, the failure is not counted (the primary is expected to be gone) and
//! the key is paused like the others. DR-side reconcilers are not affected.
//!
//! Shutdown: when the token is cancelled the scheduler starts nothing new and waits for running
//! reconciles, which see the same token and stop at their next safe point (after the AWS call in
//! flight has been recorded).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::ReconcileError;
use crate::metrics::{EngineMetrics, ReconcilerLabels, RunLabels};
use crate::restore::RestoreMode;
use crate::status::StatusBoard;

/// How many trigger requests may wait before new ones are refused.
pub const TRIGGER_QUEUE: usize = 64;

/// How often a key paused by restore mode is checked again.
pub const PAUSE_RECHECK: Duration = Duration::from_secs(1);

/// What to do after a reconcile: run again after `requeue_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub requeue_after: Duration,
}

impl Action {
    pub fn requeue(after: Duration) -> Action {
        Action {
            requeue_after: after,
        }
    }
}

/// The outcome of a successful reconcile: when to run again and a summary for `/v1/status`.
#[derive(Debug, Clone)]
pub struct Reconciled {
    pub action: Action,
    pub report: serde_json::Value,
}

/// An idempotent reconciler.
#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// The closed name used in metrics, status and the trigger API.
    fn name(&self) -> &'static str;

    /// The keys this reconciler owns.
    fn keys(&self) -> Vec<String>;

    /// Makes the DR side match for `key`.
    ///
    /// # Errors
    /// Any failure; [`Reconciler::error_policy`] decides when to retry.
    ///
    /// # Cancellation
    /// Must return promptly (with [`ReconcileError::Cancelled`] or success) once `cancel` fires,
    /// having recorded every AWS mutation it made.
    async fn reconcile(
        &self,
        key: &str,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, ReconcileError>;

    /// The delay before retrying after the `failures`-th consecutive failure.
    fn error_policy(&self, key: &str, error: &ReconcileError, failures: u32) -> Action;

    /// Whether a reconcile calls the primary region: such a reconciler is paused while the
    /// daemon is in restore mode (a declared disaster has the primary gone). Default `false`.
    fn reads_primary(&self) -> bool {
        false
    }
}

/// Exponential backoff from `base`, doubling per failure, capped at `max`; throttling and limit
/// errors start from four times the base.
pub fn backoff(error: &ReconcileError, failures: u32, base: Duration, max: Duration) -> Action {
    let start = if error.is_backpressure() {
        base * 4
    } else {
        base
    };
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    Action::requeue(start.saturating_mul(factor).min(max))
}

#[derive(Debug)]
enum Trigger {
    Run { reconciler: String },
}

/// A handle to a running scheduler: trigger runs, read the status board.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Trigger>,
    names: Arc<Vec<&'static str>>,
    pub status: StatusBoard,
}

/// Why a trigger was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TriggerError {
    #[error("no reconciler named {name:?}")]
    UnknownReconciler { name: String },
    #[error("trigger queue is full ({TRIGGER_QUEUE} waiting)")]
    QueueFull,
    #[error("scheduler is not running")]
    Stopped,
}

impl SchedulerHandle {
    /// The reconcilers' names.
    pub fn reconcilers(&self) -> &[&'static str] {
        &self.names
    }

    /// Asks for every key of `reconciler` to run now.
    ///
    /// # Errors
    /// [`TriggerError`] when the name is unknown, the queue is full, or the scheduler stopped.
    pub fn trigger(&self, reconciler: &str) -> Result<(), TriggerError> {
        if !self.names.contains(&reconciler) {
            return Err(TriggerError::UnknownReconciler {
                name: reconciler.to_owned(),
            });
        }
        self.tx
            .try_send(Trigger::Run {
                reconciler: reconciler.to_owned(),
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => TriggerError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => TriggerError::Stopped,
            })
    }
}

type Key = (usize, String);

/// Runs reconcilers until cancelled.
pub struct Scheduler {
    reconcilers: Vec<Arc<dyn Reconciler>>,
    concurrency: usize,
    metrics: EngineMetrics,
    status: StatusBoard,
    rx: mpsc::Receiver<Trigger>,
    mode: Option<RestoreMode>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("reconcilers", &self.reconcilers.len())
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl Scheduler {
    /// Creates a scheduler and its handle. Nothing runs until [`Scheduler::run`].
    pub fn new(
        reconcilers: Vec<Arc<dyn Reconciler>>,
        concurrency: usize,
        metrics: EngineMetrics,
        status: StatusBoard,
    ) -> (Scheduler, SchedulerHandle) {
        let (tx, rx) = mpsc::channel(TRIGGER_QUEUE);
        let names = Arc::new(reconcilers.iter().map(|r| r.name()).collect());
        for r in &reconcilers {
            status.update(r.name(), |_| {});
        }
        let handle = SchedulerHandle {
            tx,
            names,
            status: status.clone(),
        };
        (
            Scheduler {
                reconcilers,
                concurrency: concurrency.max(1),
                metrics,
                status,
                rx,
                mode: None,
            },
            handle,
        )
    }

    /// Pauses the reconcilers that [read the primary](Reconciler::reads_primary) while `mode`
    /// is active, and shows the mode on the status board
    /// ([`StatusBoard::restore_mode`]). Call before [`Scheduler::run`].
    pub fn with_restore_mode(mut self, mode: RestoreMode) -> Scheduler {
        self.status.attach_restore_mode(mode.clone());
        self.mode = Some(mode);
        self
    }

    /// Whether `key` is held back by restore mode now.
    fn paused(&self, key: &Key) -> bool {
        self.mode.as_ref().is_some_and(RestoreMode::is_active)
            && self.reconcilers[key.0].reads_primary()
    }

    /// Marks the reconciler of `key` paused on the board.
    fn show_paused(&self, key: &Key) {
        let name = self.reconcilers[key.0].name();
        let next = crate::now_ms() + PAUSE_RECHECK.as_millis() as i64;
        self.status.update(name, |s| {
            s.state = "paused";
            s.next_run_ms = Some(next);
        });
    }

    /// Runs until `cancel` fires, then waits for running reconciles to stop.
    ///
    /// # Cancellation
    /// Returns once every started reconcile has returned; callers bound that with their own
    /// deadline.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut due: BTreeMap<(Instant, u64), Key> = BTreeMap::new();
        let mut due_at: BTreeMap<Key, (Instant, u64)> = BTreeMap::new();
        let mut seq = 0u64;
        let mut running: HashSet<Key> = HashSet::new();
        let mut rerun: HashSet<Key> = HashSet::new();
        let mut failures: BTreeMap<Key, u32> = BTreeMap::new();
        let mut tasks: JoinSet<(Key, Result<Reconciled, ReconcileError>, Duration)> =
            JoinSet::new();

        let now = Instant::now();
        for (i, r) in self.reconcilers.iter().enumerate() {
            for key in r.keys() {
                schedule(&mut due, &mut due_at, &mut seq, (i, key), now);
            }
        }

        loop {
            // Restore mode: due keys of reconcilers reading the primary wait and are checked
            // again later.
            let now = Instant::now();
            let held: Vec<((Instant, u64), Key)> = due
                .range(..=(now, u64::MAX))
                .filter(|(_, k)| !running.contains(*k) && self.paused(k))
                .map(|(slot, k)| (*slot, k.clone()))
                .collect();
            for (slot, key) in held {
                due.remove(&slot);
                due_at.remove(&key);
                self.show_paused(&key);
                schedule(&mut due, &mut due_at, &mut seq, key, now + PAUSE_RECHECK);
            }
            // Start everything due while there is capacity.
            while tasks.len() < self.concurrency {
                let Some((&(at, s), _)) = due.iter().find(|(_, k)| !running.contains(*k)) else {
                    break;
                };
                if at > now {
                    break;
                }
                let Some(key) = due.remove(&(at, s)) else {
                    break;
                };
                due_at.remove(&key);
                running.insert(key.clone());
                self.start(&mut tasks, key, &cancel);
            }
            let next_due = due
                .iter()
                .find(|(_, k)| !running.contains(*k))
                .map(|((at, _), _)| *at);
            let can_start = tasks.len() < self.concurrency;

            tokio::select! {
                () = cancel.cancelled() => break,
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok((key, result, elapsed)) = joined else { continue };
                    running.remove(&key);
                    let next = self.finish(&key, result, elapsed, &mut failures);
                    let at = if rerun.remove(&key) { Instant::now() } else { Instant::now() + next.requeue_after };
                    schedule(&mut due, &mut due_at, &mut seq, key, at);
                }
                Some(trigger) = self.rx.recv() => {
                    let Trigger::Run { reconciler } = trigger;
                    for (i, r) in self.reconcilers.iter().enumerate() {
                        if r.name() != reconciler { continue; }
                        for key in r.keys() {
                            let key = (i, key);
                            if running.contains(&key) {
                                rerun.insert(key);
                            } else {
                                schedule(&mut due, &mut due_at, &mut seq, key, Instant::now());
                            }
                        }
                    }
                }
                () = sleep_until(next_due), if next_due.is_some() && can_start => {}
            }
        }

        // Phase two: nothing new starts; running reconciles see the cancelled token.
        while let Some(joined) = tasks.join_next().await {
            if let Ok((key, result, elapsed)) = joined {
                self.finish(&key, result, elapsed, &mut failures);
            }
        }
    }

    fn start(
        &self,
        tasks: &mut JoinSet<(Key, Result<Reconciled, ReconcileError>, Duration)>,
        key: Key,
        cancel: &CancellationToken,
    ) {
        let reconciler = self.reconcilers[key.0].clone();
        let name = reconciler.name();
        self.status.update(name, |s| {
            s.state = "running";
            s.last_started_ms = Some(crate::now_ms());
            s.next_run_ms = None;
        });
        let cancel = cancel.clone();
        let span = tracing::info_span!("reconcile", resource.kind = name, resource.key = %key.1);
        tasks.spawn(
            async move {
                let start = Instant::now();
                let result = reconciler.reconcile(&key.1, &cancel).await;
                (key, result, start.elapsed())
            }
            .instrument(span),
        );
    }

    fn finish(
        &self,
        key: &Key,
        result: Result<Reconciled, ReconcileError>,
        elapsed: Duration,
        failures: &mut BTreeMap<Key, u32>,
    ) -> Action {
        let reconciler = &self.reconcilers[key.0];
        let name = reconciler.name();
        self.metrics
            .duration
            .get_or_create(&ReconcilerLabels { reconciler: name })
            .observe(elapsed.as_secs_f64());
        let now = crate::now_ms();
        let paused = self.paused(key)
            && matches!(&result, Err(e) if !matches!(e, ReconcileError::Cancelled));
        let (action, outcome) = match result {
            Ok(done) => {
                failures.remove(key);
                self.metrics
                    .last_success
                    .get_or_create(&ReconcilerLabels { reconciler: name })
                    .set(now as f64 / 1000.0);
                self.status.update(name, |s| {
                    s.last_outcome = Some("success");
                    s.last_error = None;
                    s.consecutive_failures = 0;
                    s.last_success_ms = Some(now);
                    s.last_report = done.report;
                });
                (done.action, "success")
            }
            Err(err) if paused => {
                tracing::info!(
                    reconciler = name,
                    key = %key.1,
                    error.kind = err.kind(),
                    error = %error_chain(&err),
                    "reconcile failed in restore mode; paused, not counted"
                );
                (Action::requeue(PAUSE_RECHECK), "paused")
            }
            Err(err) => {
                let n = failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let action = reconciler.error_policy(&key.1, &err, *n);
                let outcome = if matches!(err, ReconcileError::Cancelled) {
                    tracing::info!(reconciler = name, key = %key.1, "reconcile stopped by shutdown");
                    "cancelled"
                } else {
                    tracing::warn!(
                        reconciler = name,
                        key = %key.1,
                        error.kind = err.kind(),
                        error = %error_chain(&err),
                        retry_in_secs = action.requeue_after.as_secs_f64(),
                        "reconcile failed"
                    );
                    "error"
                };
                let failures_now = *n;
                self.status.update(name, |s| {
                    s.last_outcome = Some(outcome);
                    s.last_error = Some(error_chain(&err));
                    s.consecutive_failures = failures_now;
                });
                (
                    action,
                    if outcome == "cancelled" {
                        "cancelled"
                    } else {
                        err.kind()
                    },
                )
            }
        };
        self.metrics
            .runs
            .get_or_create(&RunLabels {
                reconciler: name,
                outcome,
            })
            .inc();
        self.status.update(name, |s| {
            s.state = if paused { "paused" } else { "idle" };
            s.runs += 1;
            s.last_finished_ms = Some(now);
            s.next_run_ms = Some(now + action.requeue_after.as_millis() as i64);
        });
        action
    }
}

/// An error and its causes, joined with ": " — each cause printed once.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn schedule(
    due: &mut BTreeMap<(Instant, u64), Key>,
    due_at: &mut BTreeMap<Key, (Instant, u64)>,
    seq: &mut u64,
    key: Key,
    at: Instant,
) {
    if let Some(existing) = due_at.get(&key) {
        if existing.0 <= at {
            return;
        }
        due.remove(existing);
    }
    *seq += 1;
    due.insert((at, *seq), key.clone());
    due_at.insert(key, (at, *seq));
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    struct Counting {
        runs: Arc<AtomicU32>,
        concurrent: Arc<AtomicU32>,
        max_concurrent: Arc<AtomicU32>,
        fail_first: bool,
    }

    #[async_trait]
    impl Reconciler for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn keys(&self) -> Vec<String> {
            vec!["a".into(), "b".into(), "c".into()]
        }
        async fn reconcile(
            &self,
            _key: &str,
            _cancel: &CancellationToken,
        ) -> Result<Reconciled, ReconcileError> {
            let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_concurrent.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.concurrent.fetch_sub(1, Ordering::SeqCst);
            let n = self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail_first && n == 0 {
                return Err(ReconcileError::Unexpected {
                    operation: "Test",
                    detail: "boom".into(),
                });
            }
            Ok(Reconciled {
                action: Action::requeue(Duration::from_secs(60)),
                report: serde_json::json!({"n": n}),
            })
        }
        fn error_policy(&self, _key: &str, err: &ReconcileError, failures: u32) -> Action {
            backoff(
                err,
                failures,
                Duration::from_secs(5),
                Duration::from_secs(300),
            )
        }
    }

    fn counting(fail_first: bool) -> (Arc<Counting>, Arc<AtomicU32>, Arc<AtomicU32>) {
        let runs = Arc::new(AtomicU32::new(0));
        let max = Arc::new(AtomicU32::new(0));
        (
            Arc::new(Counting {
                runs: runs.clone(),
                concurrent: Arc::new(AtomicU32::new(0)),
                max_concurrent: max.clone(),
                fail_first,
            }),
            runs,
            max,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_concurrency_and_requeue() {
        let (r, runs, max) = counting(false);
        let (sched, handle) = Scheduler::new(
            vec![r],
            2,
            EngineMetrics::unregistered(),
            StatusBoard::default(),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sched.run(cancel.clone()));
        // Three keys, concurrency two: after 2.5 s of virtual time all three ran once.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(max.load(Ordering::SeqCst), 2);
        // Nothing more until the 60 s requeue.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 6);
        let st = handle.status.get("counting").unwrap();
        assert_eq!(st.last_outcome, Some("success"));
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn trigger_runs_now_and_unknown_names_are_refused() {
        let (r, runs, _) = counting(false);
        let (sched, handle) = Scheduler::new(
            vec![r],
            4,
            EngineMetrics::unregistered(),
            StatusBoard::default(),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sched.run(cancel.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        handle.trigger("counting").unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 6);
        assert_eq!(
            handle.trigger("nope"),
            Err(TriggerError::UnknownReconciler {
                name: "nope".into()
            })
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn failure_uses_error_policy() {
        let (r, runs, _) = counting(true);
        let (sched, handle) = Scheduler::new(
            vec![r],
            1,
            EngineMetrics::unregistered(),
            StatusBoard::default(),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sched.run(cancel.clone()));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        // a failed (1 s), b and c ran (2 s); a retries 5 s after its failure.
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let st = handle.status.get("counting").unwrap();
        assert_eq!(st.runs, 3);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        cancel.cancel();
        task.await.unwrap();
    }

    /// Reads "the primary": paused in restore mode. Fails while `fail` is set.
    struct PrimaryReader {
        runs: Arc<AtomicU32>,
        fail: Arc<std::sync::atomic::AtomicBool>,
    }

    #[async_trait]
    impl Reconciler for PrimaryReader {
        fn name(&self) -> &'static str {
            "primary"
        }
        fn keys(&self) -> Vec<String> {
            vec!["p".into()]
        }
        async fn reconcile(
            &self,
            _key: &str,
            _cancel: &CancellationToken,
        ) -> Result<Reconciled, ReconcileError> {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(ReconcileError::Unexpected {
                    operation: "DescribeVpcs",
                    detail: "primary unreachable".into(),
                });
            }
            Ok(Reconciled {
                action: Action::requeue(Duration::from_secs(60)),
                report: serde_json::json!({}),
            })
        }
        fn error_policy(&self, _key: &str, err: &ReconcileError, failures: u32) -> Action {
            backoff(
                err,
                failures,
                Duration::from_secs(5),
                Duration::from_secs(300),
            )
        }
        fn reads_primary(&self) -> bool {
            true
        }
    }

    fn primary_reader() -> (
        Arc<PrimaryReader>,
        Arc<AtomicU32>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let runs = Arc::new(AtomicU32::new(0));
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        (
            Arc::new(PrimaryReader {
                runs: runs.clone(),
                fail: fail.clone(),
            }),
            runs,
            fail,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn restore_mode_pauses_primary_readers_until_it_ends() {
        let (primary, primary_runs, _) = primary_reader();
        let (dr, dr_runs, _) = counting(false);
        let mode = RestoreMode::default();
        mode.set(true);
        let status = StatusBoard::default();
        let (sched, handle) = Scheduler::new(
            vec![primary, dr],
            4,
            EngineMetrics::unregistered(),
            status.clone(),
        );
        let sched = sched.with_restore_mode(mode.clone());
        assert!(status.restore_mode());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sched.run(cancel.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        // DR-side work goes on; the primary reader never started.
        assert_eq!(dr_runs.load(Ordering::SeqCst), 3);
        assert_eq!(primary_runs.load(Ordering::SeqCst), 0);
        let st = handle.status.get("primary").unwrap();
        assert_eq!(st.state, "paused");
        assert_eq!(st.last_outcome, None);
        assert_eq!(st.consecutive_failures, 0);
        assert_eq!(st.runs, 0);
        // A trigger does not get past the pause either.
        handle.trigger("primary").unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(primary_runs.load(Ordering::SeqCst), 0);

        // The mode ends: it runs within a recheck (plus its own second).
        mode.set(false);
        assert!(!status.restore_mode());
        tokio::time::sleep(PAUSE_RECHECK + Duration::from_millis(1100)).await;
        assert_eq!(primary_runs.load(Ordering::SeqCst), 1);
        let st = handle.status.get("primary").unwrap();
        assert_eq!(st.state, "idle");
        assert_eq!(st.last_outcome, Some("success"));
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_during_restore_mode_is_not_counted() {
        let (primary, runs, fail) = primary_reader();
        let mode = RestoreMode::default();
        let (sched, handle) = Scheduler::new(
            vec![primary],
            1,
            EngineMetrics::unregistered(),
            StatusBoard::default(),
        );
        let sched = sched.with_restore_mode(mode.clone());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sched.run(cancel.clone()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            handle.status.get("primary").unwrap().last_outcome,
            Some("success")
        );

        // A reconcile is in flight when the disaster is declared, and fails.
        handle.trigger("primary").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(handle.status.get("primary").unwrap().state, "running");
        fail.store(true, Ordering::SeqCst);
        mode.set(true);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "no run after the failure");
        let st = handle.status.get("primary").unwrap();
        assert_eq!(st.state, "paused");
        assert_eq!(st.last_outcome, Some("success"));
        assert_eq!(st.last_error, None);
        assert_eq!(st.consecutive_failures, 0);

        // Back to normal: it runs again at once (the pause recheck), and now its failures count.
        mode.set(false);
        tokio::time::sleep(PAUSE_RECHECK + Duration::from_millis(1100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let st = handle.status.get("primary").unwrap();
        assert_eq!(st.last_outcome, Some("error"));
        assert_eq!(st.consecutive_failures, 1);
        cancel.cancel();
        task.await.unwrap();
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let e = ReconcileError::Unexpected {
            operation: "X",
            detail: String::new(),
        };
        let b = |n| backoff(&e, n, Duration::from_secs(5), Duration::from_secs(60)).requeue_after;
        assert_eq!(b(1), Duration::from_secs(5));
        assert_eq!(b(2), Duration::from_secs(10));
        assert_eq!(b(5), Duration::from_secs(60));
    }
}
