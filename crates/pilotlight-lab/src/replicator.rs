//! The lab's S3 replicator: what moto lacks to make S3 cross-region replication observable.
//!
//! moto stores a bucket's replication configuration but never copies an object
//! (shared/LAB-NOTES.md, S3). A [`Replicator`] is a tokio task that does the copying, with a
//! delay, so pilotlight's replication watch (SPEC R6) sees lag rise while it is paused and fall
//! when it resumes.
//!
//! **What one tick does** (every [`ReplicatorOptions::interval`], default 500 ms, or at once
//! after a control call):
//!
//! 1. The watched buckets: [`ReplicatorOptions::buckets`], or every bucket of the account
//!    (`ListBuckets`); only those in the primary client's region are kept (`GetBucketLocation`,
//!    remembered per bucket). A bucket without a replication configuration is skipped.
//! 2. Per enabled rule of a bucket's configuration (`GetBucketReplication`, read every tick so a
//!    rule disabled or changed takes effect): the source objects under the rule's prefix and the
//!    destination bucket's objects under it (`ListObjectsV2`, paginated). A source object is
//!    *pending* when the destination lacks its key, has another ETag, or has an older
//!    `LastModified` than the source.
//! 3. Unless paused, every pending object older than the delay ([`ReplicatorOptions::delay`],
//!    default 5 s, changeable at run time) is copied, oldest first: `HeadObject` of the source,
//!    then `CopyObject` of exactly that version into the destination under the same key, with
//!    the source's content type and user metadata plus `x-amz-meta-lab-source-last-modified`
//!    (the source's `LastModified`, RFC 3339), so a reader can measure the lag of each replica.
//!
//! **Not emulated:** `x-amz-replication-status` (AWS's PENDING/COMPLETED/REPLICA; moto has none
//! and the replicator does not fake it — pilotlight measures lag by comparing the newest source
//! objects with the DR bucket), delete markers and deletions (never replicated, as with
//! `DeleteMarkerReplication` disabled), tag filters of rules (only the prefix is honoured),
//! version ids of replicas (a replica is a new version in the destination), and AWS's "only
//! objects written after the rule" — every listed object is replicated, like Batch Replication.
//! moto's `LastModified` has whole seconds, so the delay holds to within one second. moto
//! 5.2.1 loses a rule's prefix (it answers `<Filter><Prefix/></Filter>` whatever was put), so
//! through moto every rule covers every key. A rule whose destination is its own bucket is
//! ignored.
//!
//! **Bounds per tick:** at most [`MAX_BUCKETS`] buckets (by name), [`MAX_KEYS_PER_BUCKET`] keys
//! listed per bucket and side (a bucket beyond that is reported `truncated` and only its first
//! keys, in key order, are replicated), [`MAX_COPIES_PER_TICK`] copies, [`COPY_CONCURRENCY`] at
//! a time. Errors are recorded per bucket in the status and retried next tick.
//!
//! **Counters stay clean:** the replicator is meant to talk to moto through its own uncounted,
//! unlimited door ([`Replicator::start_uncounted`] starts a [`RealismProxy`] with
//! `enforce_limits: false` as the session's account), never through the proxy whose counters
//! a test asserts on.
//!
//! **Control:** a [`ReplicatorControl`] pauses, resumes, changes the delay and reads the
//! [`ReplicatorStatus`]; attached to a proxy with [`ProxyHandle::set_replicator`] it is served
//! under `/__lab/replicator` (`GET`, `POST …/pause`, `POST …/resume`, `POST …/delay` with
//! `{"secs": n}`), which [`ProxyClient`](crate::ProxyClient) and `pilotlight-lab replicator`
//! use.
//!
//! # Cancellation
//!
//! The task stops when the token given to [`Replicator::start`] (or a parent of it) is
//! cancelled, on [`Replicator::shutdown`], and when the [`Replicator`] is dropped. A copy in
//! flight is abandoned; `CopyObject` is atomic, so nothing half-written is left.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::DateTimeFormat;
use aws_sdk_s3::types::{MetadataDirective, ReplicationConfiguration, ReplicationRuleStatus};
use bytes::Bytes;
use futures::{StreamExt as _, stream};
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clients::AwsClients;
use crate::error::LabError;
use crate::lab::LabSession;
use crate::proxy::{ProxyHandle, ProxyOptions, RealismProxy};

/// The user-metadata key (`x-amz-meta-…`) holding the source's `LastModified` on a replica.
pub const SOURCE_LAST_MODIFIED_META: &str = "lab-source-last-modified";
/// Default age an object must reach before it is copied.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(5);
/// Default time between ticks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
/// The longest delay accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);
/// Most buckets looked at per tick.
pub const MAX_BUCKETS: usize = 100;
/// Most keys listed per bucket (and per destination) per tick.
pub const MAX_KEYS_PER_BUCKET: usize = 10_000;
/// Most objects copied per tick.
pub const MAX_COPIES_PER_TICK: usize = 100;
/// Most copies in flight at once.
pub const COPY_CONCURRENCY: usize = 8;
/// Largest body accepted by the replicator's admin routes.
const MAX_ADMIN_BODY_BYTES: usize = 4096;

/// How a [`Replicator`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatorOptions {
    /// How old (by `LastModified`) an object must be before it is copied; at most
    /// [`MAX_DELAY`].
    pub delay: Duration,
    /// Time between ticks; not zero.
    pub interval: Duration,
    /// The primary buckets to watch; `None` watches every bucket of the account in the primary
    /// region.
    pub buckets: Option<Vec<String>>,
}

impl Default for ReplicatorOptions {
    fn default() -> Self {
        ReplicatorOptions {
            delay: DEFAULT_DELAY,
            interval: DEFAULT_INTERVAL,
            buckets: None,
        }
    }
}

impl ReplicatorOptions {
    fn validate(&self) -> Result<(), LabError> {
        let mut problems = Vec::new();
        if self.interval.is_zero() {
            problems.push("interval must be above zero".to_owned());
        }
        if self.delay > MAX_DELAY {
            problems.push(format!(
                "delay must be at most {} s, got {} s",
                MAX_DELAY.as_secs(),
                self.delay.as_secs_f64()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::InvalidOptions {
                reason: problems.join("; "),
            })
        }
    }
}

/// What the replicator is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicatorStatus {
    /// The task is running (false once it was cancelled or dropped).
    pub running: bool,
    pub paused: bool,
    pub delay_secs: f64,
    pub interval_ms: u64,
    /// Ticks completed.
    pub ticks: u64,
    /// Objects copied since start.
    pub objects_replicated: u64,
    /// One entry per (watched bucket, enabled rule), as of the last tick.
    pub buckets: Vec<BucketStatus>,
}

impl ReplicatorStatus {
    /// The entry for the primary `bucket`'s rule to `destination`.
    pub fn bucket(&self, bucket: &str, destination: &str) -> Option<&BucketStatus> {
        self.buckets
            .iter()
            .find(|b| b.bucket == bucket && b.destination == destination)
    }

    /// Pending objects of `bucket`, all its rules together.
    pub fn pending(&self, bucket: &str) -> u64 {
        self.buckets
            .iter()
            .filter(|b| b.bucket == bucket)
            .map(|b| b.pending)
            .sum()
    }
}

/// One replication rule of one watched bucket, as of the last tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketStatus {
    /// The primary bucket.
    pub bucket: String,
    /// The destination bucket (from the rule's ARN).
    pub destination: String,
    pub rule_id: Option<String>,
    /// The rule's key prefix (empty: every key).
    pub prefix: String,
    /// Source objects under the prefix.
    pub objects: u64,
    /// Source objects not (or not in their newest form) in the destination after the tick.
    pub pending: u64,
    /// Age of the oldest pending object, in seconds.
    pub oldest_pending_secs: Option<f64>,
    /// Objects copied for this rule since start.
    pub replicated: u64,
    /// A listing stopped at [`MAX_KEYS_PER_BUCKET`].
    pub truncated: bool,
    /// Why the last tick could not finish this rule (source or destination unreadable, …).
    pub error: Option<String>,
}

#[derive(Debug)]
struct State {
    paused: AtomicBool,
    running: AtomicBool,
    delay_ms: AtomicU64,
    interval: Duration,
    wake: Notify,
    report: Mutex<Report>,
}

#[derive(Debug, Default)]
struct Report {
    ticks: u64,
    replicated: u64,
    buckets: Vec<BucketStatus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Pauses, resumes, re-times and reads one [`Replicator`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReplicatorControl {
    state: Arc<State>,
}

impl ReplicatorControl {
    fn new(opts: &ReplicatorOptions) -> ReplicatorControl {
        ReplicatorControl {
            state: Arc::new(State {
                paused: AtomicBool::new(false),
                running: AtomicBool::new(true),
                delay_ms: AtomicU64::new(millis(opts.delay)),
                interval: opts.interval,
                wake: Notify::new(),
                report: Mutex::default(),
            }),
        }
    }

    /// Stops copying (listing and pending counts go on).
    pub fn pause(&self) {
        self.state.paused.store(true, Ordering::SeqCst);
        self.state.wake.notify_one();
    }

    /// Copies again, starting with a tick now.
    pub fn resume(&self) {
        self.state.paused.store(false, Ordering::SeqCst);
        self.state.wake.notify_one();
    }

    /// Whether copying is paused.
    pub fn is_paused(&self) -> bool {
        self.state.paused.load(Ordering::SeqCst)
    }

    /// The current delay.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.state.delay_ms.load(Ordering::SeqCst))
    }

    /// Changes the delay (millisecond precision); the next tick, started now, uses it.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidOptions`] above [`MAX_DELAY`].
    pub fn set_delay(&self, delay: Duration) -> Result<(), LabError> {
        if delay > MAX_DELAY {
            return Err(LabError::InvalidOptions {
                reason: format!(
                    "delay must be at most {} s, got {} s",
                    MAX_DELAY.as_secs(),
                    delay.as_secs_f64()
                ),
            });
        }
        self.state.delay_ms.store(millis(delay), Ordering::SeqCst);
        self.state.wake.notify_one();
        Ok(())
    }

    /// Whether the task still runs.
    pub fn is_running(&self) -> bool {
        self.state.running.load(Ordering::SeqCst)
    }

    /// A snapshot of the status.
    pub fn status(&self) -> ReplicatorStatus {
        let report = lock(&self.state.report);
        ReplicatorStatus {
            running: self.is_running(),
            paused: self.is_paused(),
            delay_secs: self.delay().as_secs_f64(),
            interval_ms: millis(self.state.interval),
            ticks: report.ticks,
            objects_replicated: report.replicated,
            buckets: report.buckets.clone(),
        }
    }
}

/// A running replicator task (module docs). Dropping it stops the task.
#[derive(Debug)]
pub struct Replicator {
    control: ReplicatorControl,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// The uncounted proxy of [`Replicator::start_uncounted`], stopped with the replicator.
    door: Option<ProxyHandle>,
}

impl Replicator {
    /// Starts replicating from buckets in `primary`'s region, copying through `dr`'s clients,
    /// until `cancel` (or a parent) is cancelled or the replicator is dropped. Must be called
    /// on a tokio runtime. The clients should not be ones whose calls a test counts.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidOptions`] for a zero interval or a delay over [`MAX_DELAY`].
    pub fn start(
        primary: AwsClients,
        dr: AwsClients,
        opts: ReplicatorOptions,
        cancel: &CancellationToken,
    ) -> Result<Replicator, LabError> {
        opts.validate()?;
        let control = ReplicatorControl::new(&opts);
        let cancel = cancel.child_token();
        let worker = Worker {
            primary,
            dr,
            buckets: opts.buckets,
            state: control.state.clone(),
            regions: HashMap::new(),
            replicated: HashMap::new(),
        };
        let task = tokio::spawn(worker.run(cancel.clone()));
        Ok(Replicator {
            control,
            cancel,
            task: Some(task),
            door: None,
        })
    }

    /// Starts a replicator that reaches moto at `moto` through a proxy of its own — no rate
    /// limits, no counters anyone reads — as `account_id` (`None`: the caller's header or
    /// moto's default account), with clients for `primary_region` and `dr_region`.
    ///
    /// # Errors
    ///
    /// As [`RealismProxy::start`] and [`Replicator::start`].
    pub async fn start_uncounted(
        moto: SocketAddr,
        account_id: Option<&str>,
        primary_region: &str,
        dr_region: &str,
        opts: ReplicatorOptions,
        cancel: &CancellationToken,
    ) -> Result<Replicator, LabError> {
        opts.validate()?;
        let door = RealismProxy::start(
            moto,
            ProxyOptions {
                enforce_limits: false,
                account_id: account_id.map(str::to_owned),
                ..ProxyOptions::default()
            },
        )
        .await?;
        let primary = AwsClients::for_endpoint(&door.endpoint(), primary_region).await;
        let dr = AwsClients::for_endpoint(&door.endpoint(), dr_region).await;
        let mut replicator = Replicator::start(primary, dr, opts, cancel)?;
        replicator.door = Some(door);
        Ok(replicator)
    }

    /// A replicator for a test's lab session: uncounted, as the session's account, and
    /// attached to the session's proxy (so `/__lab/replicator` on its endpoint controls it).
    ///
    /// # Errors
    ///
    /// As [`Replicator::start_uncounted`].
    pub async fn for_session(
        session: &LabSession,
        primary_region: &str,
        dr_region: &str,
        opts: ReplicatorOptions,
    ) -> Result<Replicator, LabError> {
        let moto = crate::lab::Lab::shared().await?.moto().addr();
        let replicator = Replicator::start_uncounted(
            moto,
            Some(session.account_id()),
            primary_region,
            dr_region,
            opts,
            &CancellationToken::new(),
        )
        .await?;
        session.proxy().set_replicator(Some(replicator.control()));
        Ok(replicator)
    }

    /// A handle to pause, resume, re-time and read it.
    pub fn control(&self) -> ReplicatorControl {
        self.control.clone()
    }

    /// Stops the task and waits for it to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "replicator task ended abnormally");
        }
        if let Some(door) = self.door.take() {
            door.shutdown().await;
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Marks the state stopped when the task ends, however it ends.
struct RunningGuard(Arc<State>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

/// One enabled rule of a watched bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    id: Option<String>,
    prefix: String,
    destination: String,
}

/// A listed object: ETag and `LastModified` in seconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    etag: String,
    modified: f64,
}

/// A listing of one bucket under a prefix.
#[derive(Debug, Default)]
struct Listing {
    objects: BTreeMap<String, Listed>,
    truncated: bool,
}

/// What one rule needs: the pending source keys with their `LastModified`, oldest first.
fn pending(source: &Listing, destination: &Listing) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = source
        .objects
        .iter()
        .filter(|(key, src)| match destination.objects.get(*key) {
            None => true,
            Some(dst) => dst.etag != src.etag || dst.modified < src.modified,
        })
        .map(|(key, src)| (key.clone(), src.modified))
        .collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The enabled rules of `bucket`'s configuration with a destination other than itself.
fn enabled_rules(bucket: &str, config: &ReplicationConfiguration) -> Vec<Rule> {
    config
        .rules()
        .iter()
        .filter(|r| *r.status() == ReplicationRuleStatus::Enabled)
        .filter_map(|r| {
            let destination = bucket_of_arn(r.destination()?.bucket()).to_owned();
            // V1 configurations (no Filter) carry the prefix on the rule itself; an empty
            // prefix anywhere means "every key".
            #[allow(deprecated)]
            let legacy_prefix = r.prefix();
            let prefix = [
                r.filter().and_then(|f| f.prefix()),
                r.filter().and_then(|f| f.and()).and_then(|a| a.prefix()),
                legacy_prefix,
            ]
            .into_iter()
            .flatten()
            .find(|p| !p.is_empty())
            .unwrap_or_default()
            .to_owned();
            (destination != bucket).then(|| Rule {
                id: r.id().map(str::to_owned),
                prefix,
                destination,
            })
        })
        .collect()
}

/// The bucket name of a destination ARN (`arn:aws:s3:::name`), or the text as it is.
fn bucket_of_arn(arn: &str) -> &str {
    arn.strip_prefix("arn:aws:s3:::")
        .or_else(|| arn.rsplit_once(":::").map(|(_, b)| b))
        .unwrap_or(arn)
}

/// `bucket/key?versionId=v` with the key percent-encoded (slashes kept), as `CopySource` wants.
fn copy_source(bucket: &str, key: &str, version: Option<&str>) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if let Some(v) = version.filter(|v| !v.is_empty() && *v != "null") {
        out.push_str("?versionId=");
        out.push_str(v);
    }
    out
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An SDK error as one line with its causes.
fn describe<E: std::error::Error>(e: &E) -> String {
    DisplayErrorContext(e).to_string()
}

fn aws_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
    resource: &str,
    region: &str,
    source: E,
) -> LabError {
    LabError::Aws {
        operation,
        resource: resource.to_owned(),
        region: region.to_owned(),
        source: Box::new(source),
    }
}

/// One planned copy.
#[derive(Debug, Clone)]
struct CopyJob {
    rule: usize,
    bucket: String,
    destination: String,
    key: String,
    modified: f64,
}

struct Worker {
    primary: AwsClients,
    dr: AwsClients,
    buckets: Option<Vec<String>>,
    state: Arc<State>,
    /// Region of each bucket seen (a bucket's region never changes).
    regions: HashMap<String, String>,
    /// Copies per (bucket, destination) since start.
    replicated: HashMap<(String, String), u64>,
}

impl Worker {
    async fn run(mut self, cancel: CancellationToken) {
        let state = self.state.clone();
        let _running = RunningGuard(state.clone());
        tracing::debug!(region = %self.primary.region, "replicator started");
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.tick() => {}
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(state.interval) => {}
                () = state.wake.notified() => {}
            }
        }
        tracing::debug!("replicator stopped");
    }

    async fn tick(&mut self) {
        let paused = self.state.paused.load(Ordering::SeqCst);
        let delay = Duration::from_millis(self.state.delay_ms.load(Ordering::SeqCst));
        let previous = lock(&self.state.report).buckets.clone();
        let mut statuses: Vec<BucketStatus> = Vec::new();
        let mut pendings: Vec<Vec<(String, f64)>> = Vec::new();
        let buckets = match self.watched().await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %describe(&e), "replicator cannot list buckets");
                Vec::new()
            }
        };
        for bucket in buckets {
            let rules = match self.rules(&bucket).await {
                Ok(rules) => rules,
                Err(e) => {
                    tracing::debug!(bucket, error = %describe(&e),
                        "replicator cannot read a replication configuration");
                    continue;
                }
            };
            for rule in rules {
                let (status, pending) = self.inspect(&bucket, &rule).await;
                statuses.push(status);
                pendings.push(pending);
            }
        }
        let now = epoch_now();
        let mut jobs: Vec<CopyJob> = Vec::new();
        if !paused {
            for (i, pending) in pendings.iter().enumerate() {
                let s = &statuses[i];
                if s.error.is_some() {
                    continue;
                }
                jobs.extend(
                    pending
                        .iter()
                        .filter(|(_, modified)| now - modified >= delay.as_secs_f64())
                        .map(|(key, modified)| CopyJob {
                            rule: i,
                            bucket: s.bucket.clone(),
                            destination: s.destination.clone(),
                            key: key.clone(),
                            modified: *modified,
                        }),
                );
            }
            jobs.sort_by(|a, b| {
                a.modified
                    .total_cmp(&b.modified)
                    .then_with(|| a.key.cmp(&b.key))
            });
            jobs.truncate(MAX_COPIES_PER_TICK);
        }
        let copied = self.copy_all(jobs).await;
        let mut done: HashSet<(usize, String)> = HashSet::new();
        for job in &copied {
            *self
                .replicated
                .entry((job.bucket.clone(), job.destination.clone()))
                .or_default() += 1;
            done.insert((job.rule, job.key.clone()));
        }
        for (i, (status, pending)) in statuses.iter_mut().zip(&pendings).enumerate() {
            let left: Vec<f64> = pending
                .iter()
                .filter(|(key, _)| !done.contains(&(i, key.clone())))
                .map(|(_, modified)| *modified)
                .collect();
            status.pending = left.len() as u64;
            status.oldest_pending_secs = left
                .iter()
                .copied()
                .reduce(f64::min)
                .map(|oldest| (now - oldest).max(0.0));
            status.replicated = self
                .replicated
                .get(&(status.bucket.clone(), status.destination.clone()))
                .copied()
                .unwrap_or(0);
            if let Some(error) = &status.error {
                let before = previous
                    .iter()
                    .find(|p| p.bucket == status.bucket && p.destination == status.destination)
                    .and_then(|p| p.error.as_ref());
                if before != Some(error) {
                    tracing::warn!(bucket = %status.bucket, destination = %status.destination,
                        %error, "replicator cannot replicate a bucket");
                }
            }
        }
        let mut report = lock(&self.state.report);
        report.ticks += 1;
        report.replicated += copied.len() as u64;
        report.buckets = statuses;
    }

    /// The primary-region buckets to look at this tick, by name, at most [`MAX_BUCKETS`].
    async fn watched(&mut self) -> Result<Vec<String>, LabError> {
        let region = self.primary.region.clone();
        let names: Vec<String> = match &self.buckets {
            Some(names) => names.clone(),
            None => {
                let out = self
                    .primary
                    .s3
                    .list_buckets()
                    .send()
                    .await
                    .map_err(|e| aws_error("ListBuckets", "buckets", &region, e))?;
                out.buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_owned))
                    .collect()
            }
        };
        let listed: HashSet<&String> = names.iter().collect();
        self.regions.retain(|name, _| listed.contains(name));
        let mut names: Vec<String> = names.clone();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let bucket_region = match self.regions.get(&name) {
                Some(r) => r.clone(),
                None => match self.location(&name).await {
                    Ok(r) => {
                        self.regions.insert(name.clone(), r.clone());
                        r
                    }
                    Err(e) => {
                        tracing::debug!(bucket = %name, error = %describe(&e),
                            "replicator cannot locate a bucket");
                        continue;
                    }
                },
            };
            if bucket_region == region {
                out.push(name);
            }
        }
        if out.len() > MAX_BUCKETS {
            tracing::debug!(
                buckets = out.len(),
                max = MAX_BUCKETS,
                "replicator watches only the first buckets by name"
            );
            out.truncate(MAX_BUCKETS);
        }
        Ok(out)
    }

    async fn location(&self, bucket: &str) -> Result<String, LabError> {
        let out = self
            .primary
            .s3
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| aws_error("GetBucketLocation", bucket, &self.primary.region, e))?;
        Ok(match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_owned(),
            Some("EU") => "eu-west-1".to_owned(),
            Some(other) => other.to_owned(),
        })
    }

    /// The enabled rules of `bucket` (none without a configuration).
    async fn rules(&self, bucket: &str) -> Result<Vec<Rule>, LabError> {
        let out = match self
            .primary
            .s3
            .get_bucket_replication()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("ReplicationConfigurationNotFoundError") =>
            {
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(aws_error(
                    "GetBucketReplication",
                    bucket,
                    &self.primary.region,
                    e,
                ));
            }
        };
        let Some(config) = out.replication_configuration() else {
            return Ok(Vec::new());
        };
        Ok(enabled_rules(bucket, config))
    }

    /// Lists both sides of one rule: its status (pending not yet final) and pending keys.
    async fn inspect(&self, bucket: &str, rule: &Rule) -> (BucketStatus, Vec<(String, f64)>) {
        let mut status = BucketStatus {
            bucket: bucket.to_owned(),
            destination: rule.destination.clone(),
            rule_id: rule.id.clone(),
            prefix: rule.prefix.clone(),
            objects: 0,
            pending: 0,
            oldest_pending_secs: None,
            replicated: 0,
            truncated: false,
            error: None,
        };
        let source = match list(&self.primary, bucket, &rule.prefix).await {
            Ok(l) => l,
            Err(e) => {
                status.error = Some(describe(&e));
                return (status, Vec::new());
            }
        };
        status.objects = source.objects.len() as u64;
        let destination = match list(&self.dr, &rule.destination, &rule.prefix).await {
            Ok(l) => l,
            Err(e) => {
                status.error = Some(describe(&e));
                Listing::default()
            }
        };
        status.truncated = source.truncated || destination.truncated;
        (status, pending(&source, &destination))
    }

    /// Runs the copies, [`COPY_CONCURRENCY`] at a time; returns those that were made.
    async fn copy_all(&self, jobs: Vec<CopyJob>) -> Vec<CopyJob> {
        stream::iter(jobs)
            .map(|job| async move {
                match self.copy(&job).await {
                    Ok(true) => Some(job),
                    Ok(false) => None,
                    Err(e) => {
                        tracing::warn!(bucket = %job.bucket, key = %job.key,
                            destination = %job.destination, error = %describe(&e),
                            "replicator copy failed; retried next tick");
                        None
                    }
                }
            })
            .buffer_unordered(COPY_CONCURRENCY)
            .filter_map(|done| async move { done })
            .collect()
            .await
    }

    /// Copies the source's current version of `job.key`; `false` when it vanished.
    async fn copy(&self, job: &CopyJob) -> Result<bool, LabError> {
        let head = match self
            .primary
            .s3
            .head_object()
            .bucket(&job.bucket)
            .key(&job.key)
            .send()
            .await
        {
            Ok(head) => head,
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => return Ok(false),
            Err(e) => {
                return Err(aws_error("HeadObject", &job.key, &self.primary.region, e));
            }
        };
        let mut metadata = head.metadata().cloned().unwrap_or_default();
        if let Some(modified) = head.last_modified() {
            let text = modified
                .fmt(DateTimeFormat::DateTime)
                .map_err(|e| aws_error("HeadObject", &job.key, &self.primary.region, e))?;
            metadata.insert(SOURCE_LAST_MODIFIED_META.to_owned(), text);
        }
        let mut copy = self
            .dr
            .s3
            .copy_object()
            .bucket(&job.destination)
            .key(&job.key)
            .copy_source(copy_source(&job.bucket, &job.key, head.version_id()))
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(metadata));
        if let Some(content_type) = head.content_type() {
            copy = copy.content_type(content_type);
        }
        copy.send()
            .await
            .map_err(|e| aws_error("CopyObject", &job.key, &self.dr.region, e))?;
        tracing::trace!(bucket = %job.bucket, key = %job.key, destination = %job.destination,
            "object replicated");
        Ok(true)
    }
}

/// Lists `bucket` under `prefix`, at most [`MAX_KEYS_PER_BUCKET`] keys.
async fn list(clients: &AwsClients, bucket: &str, prefix: &str) -> Result<Listing, LabError> {
    let mut listing = Listing::default();
    let mut token: Option<String> = None;
    loop {
        let out = clients
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| aws_error("ListObjectsV2", bucket, &clients.region, e))?;
        for object in out.contents() {
            let (Some(key), Some(modified)) = (object.key(), object.last_modified()) else {
                continue;
            };
            listing.objects.insert(
                key.to_owned(),
                Listed {
                    etag: object.e_tag().unwrap_or_default().to_owned(),
                    modified: modified.as_secs_f64(),
                },
            );
        }
        token = out
            .next_continuation_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() || out.is_truncated() != Some(true) {
            return Ok(listing);
        }
        if listing.objects.len() >= MAX_KEYS_PER_BUCKET {
            listing.truncated = true;
            return Ok(listing);
        }
    }
}

/// `{"secs": n}`, the body of `POST /__lab/replicator/delay`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayRequest {
    pub secs: f64,
}

/// Serves `/__lab/replicator…` for the proxy: the status code and JSON answer.
pub(crate) async fn admin(
    control: Option<ReplicatorControl>,
    method: &Method,
    path: &str,
    body: hyper::body::Incoming,
) -> (StatusCode, serde_json::Value) {
    let error = |status: StatusCode, text: String| (status, serde_json::json!({ "error": text }));
    let route = path.trim_start_matches("/__lab/replicator");
    let known = matches!(
        (method, route),
        (&Method::GET, "") | (&Method::POST, "/pause" | "/resume" | "/delay")
    );
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            format!("no lab endpoint {method} {path}"),
        );
    }
    let Some(control) = control else {
        return error(
            StatusCode::NOT_FOUND,
            "this proxy has no replicator (`pilotlight-lab up` runs one; tests attach one with \
             ProxyHandle::set_replicator)"
                .to_owned(),
        );
    };
    if *method == Method::POST && !control.is_running() {
        return error(
            StatusCode::CONFLICT,
            "the replicator has stopped".to_owned(),
        );
    }
    match route {
        "/pause" => control.pause(),
        "/resume" => control.resume(),
        "/delay" => {
            let bytes: Bytes = match Limited::new(body, MAX_ADMIN_BODY_BYTES).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("body unreadable or over {MAX_ADMIN_BODY_BYTES} bytes: {e}"),
                    );
                }
            };
            let request: DelayRequest = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("expected {{\"secs\": n}}: {e}"),
                    );
                }
            };
            let delay = match Duration::try_from_secs_f64(request.secs) {
                Ok(d) => d,
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("secs must be a number >= 0, got {}", request.secs),
                    );
                }
            };
            if let Err(e) = control.set_delay(delay) {
                return error(StatusCode::BAD_REQUEST, e.to_string());
            }
        }
        _ => {}
    }
    match serde_json::to_value(control.status()) {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ProxyClient;

    fn listing(items: &[(&str, &str, f64)]) -> Listing {
        Listing {
            objects: items
                .iter()
                .map(|(k, e, m)| {
                    (
                        (*k).to_owned(),
                        Listed {
                            etag: (*e).to_owned(),
                            modified: *m,
                        },
                    )
                })
                .collect(),
            truncated: false,
        }
    }

    #[test]
    fn pending_is_missing_changed_or_newer_oldest_first() {
        let source = listing(&[
            ("same", "e1", 10.0),
            ("missing", "e2", 30.0),
            ("changed", "e3", 20.0),
            ("newer", "e4", 50.0),
            ("older-missing", "e5", 5.0),
        ]);
        let destination = listing(&[
            ("same", "e1", 12.0),
            ("changed", "old", 25.0),
            ("newer", "e4", 40.0),
            ("extra", "e9", 1.0),
        ]);
        let keys: Vec<String> = pending(&source, &destination)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["older-missing", "changed", "missing", "newer"]);
        assert!(pending(&source, &source).is_empty());
    }

    #[test]
    #[allow(deprecated)]
    fn rules_are_enabled_ones_with_their_prefix() {
        use aws_sdk_s3::types::{
            Destination, ReplicationRule, ReplicationRuleAndOperator, ReplicationRuleFilter,
        };
        let rule = |id: &str, dest: &str, enabled: bool| {
            ReplicationRule::builder()
                .id(id)
                .status(if enabled {
                    ReplicationRuleStatus::Enabled
                } else {
                    ReplicationRuleStatus::Disabled
                })
                .destination(
                    Destination::builder()
                        .bucket(format!("arn:aws:s3:::{dest}"))
                        .build()
                        .expect("destination"),
                )
        };
        let config = ReplicationConfiguration::builder()
            .role("arn:aws:iam::123456789012:role/s3-replication")
            .rules(
                rule("v1", "dr-a", true)
                    .prefix("logs/")
                    .build()
                    .expect("rule"),
            )
            .rules(
                rule("filter", "dr-b", true)
                    .filter(ReplicationRuleFilter::builder().prefix("img/").build())
                    .build()
                    .expect("rule"),
            )
            .rules(
                rule("and", "dr-c", true)
                    .filter(
                        ReplicationRuleFilter::builder()
                            .prefix("")
                            .and(ReplicationRuleAndOperator::builder().prefix("tmp/").build())
                            .build(),
                    )
                    .build()
                    .expect("rule"),
            )
            .rules(
                rule("all", "dr-d", true)
                    .filter(ReplicationRuleFilter::builder().prefix("").build())
                    .build()
                    .expect("rule"),
            )
            .rules(rule("off", "dr-e", false).build().expect("rule"))
            .rules(rule("self", "src", true).build().expect("rule"))
            .build()
            .expect("config");
        let rules: Vec<(Option<String>, String, String)> = enabled_rules("src", &config)
            .into_iter()
            .map(|r| (r.id, r.prefix, r.destination))
            .collect();
        let want = |id: &str, prefix: &str, dest: &str| {
            (Some(id.to_owned()), prefix.to_owned(), dest.to_owned())
        };
        assert_eq!(
            rules,
            [
                want("v1", "logs/", "dr-a"),
                want("filter", "img/", "dr-b"),
                want("and", "tmp/", "dr-c"),
                want("all", "", "dr-d"),
            ]
        );
    }

    #[test]
    fn arns_and_copy_sources() {
        assert_eq!(bucket_of_arn("arn:aws:s3:::dr-bucket"), "dr-bucket");
        assert_eq!(bucket_of_arn("arn:aws-cn:s3:::cn-bucket"), "cn-bucket");
        assert_eq!(bucket_of_arn("plain"), "plain");
        assert_eq!(copy_source("b", "a/b c+d.txt", None), "b/a/b%20c%2Bd.txt");
        assert_eq!(copy_source("b", "k", Some("v1")), "b/k?versionId=v1");
        assert_eq!(copy_source("b", "k", Some("null")), "b/k");
    }

    #[test]
    fn options_and_delay_are_validated() {
        assert!(ReplicatorOptions::default().validate().is_ok());
        let bad = ReplicatorOptions {
            interval: Duration::ZERO,
            delay: MAX_DELAY + Duration::from_secs(1),
            buckets: None,
        };
        let Err(LabError::InvalidOptions { reason }) = bad.validate() else {
            panic!("expected InvalidOptions");
        };
        assert!(
            reason.contains("interval") && reason.contains("delay"),
            "{reason}"
        );
        let control = ReplicatorControl::new(&ReplicatorOptions::default());
        assert_eq!(control.delay(), DEFAULT_DELAY);
        control
            .set_delay(Duration::from_millis(1500))
            .expect("delay");
        assert_eq!(control.status().delay_secs, 1.5);
        assert!(control.set_delay(MAX_DELAY * 2).is_err());
        assert_eq!(control.delay(), Duration::from_millis(1500));
        control.pause();
        assert!(control.status().paused);
        control.resume();
        assert!(!control.status().paused);
    }

    #[tokio::test]
    async fn control_routes_over_http() {
        // Nothing is forwarded, so the upstream address is never dialled.
        let upstream = SocketAddr::from(([127, 0, 0, 1], 9));
        let proxy = RealismProxy::start(upstream, ProxyOptions::default())
            .await
            .expect("proxy");
        let client = ProxyClient::new(&proxy.endpoint()).expect("client");
        let none = client.replicator_status().await;
        assert!(
            matches!(&none, Err(LabError::AdminApi { status: 404, body, .. })
                if body.contains("no replicator")),
            "{none:?}"
        );

        let control = ReplicatorControl::new(&ReplicatorOptions::default());
        proxy.set_replicator(Some(control.clone()));
        let status = client.replicator_status().await.expect("status");
        assert!(status.running && !status.paused);
        assert_eq!((status.delay_secs, status.interval_ms), (5.0, 500));

        assert!(client.pause_replicator().await.expect("pause").paused);
        assert!(control.is_paused());
        assert!(!client.resume_replicator().await.expect("resume").paused);
        assert!(!control.is_paused());
        let status = client
            .set_replicator_delay(Duration::from_millis(2500))
            .await
            .expect("delay");
        assert_eq!(status.delay_secs, 2.5);
        assert_eq!(control.delay(), Duration::from_millis(2500));

        for bad in [
            r#"{"secs": -1}"#,
            r#"{"seconds": 1}"#,
            "nope",
            r#"{"secs": 1e9}"#,
        ] {
            let answer = client.post_raw("/__lab/replicator/delay", bad).await;
            assert!(
                matches!(answer, Err(LabError::AdminApi { status: 400, .. })),
                "{bad}: {answer:?}"
            );
        }
        assert_eq!(control.delay(), Duration::from_millis(2500));
        let unknown = client.post_raw("/__lab/replicator/explode", "{}").await;
        assert!(matches!(
            unknown,
            Err(LabError::AdminApi { status: 404, .. })
        ));

        control.state.running.store(false, Ordering::SeqCst);
        let stopped = client.pause_replicator().await;
        assert!(
            matches!(stopped, Err(LabError::AdminApi { status: 409, .. })),
            "{stopped:?}"
        );
        assert!(!client.replicator_status().await.expect("status").running);
        proxy.set_replicator(None);
        assert!(matches!(
            client.replicator_status().await,
            Err(LabError::AdminApi { status: 404, .. })
        ));
    }

    #[tokio::test]
    async fn stops_on_cancel_and_on_drop() {
        // Calls fail fast (nothing listens on the port); the task keeps ticking regardless.
        let dead = "http://127.0.0.1:9";
        let clients = AwsClients::for_endpoint(dead, "us-east-1").await;
        let parent = CancellationToken::new();
        let opts = ReplicatorOptions {
            interval: Duration::from_millis(10),
            ..ReplicatorOptions::default()
        };
        let replicator = Replicator::start(clients.clone(), clients.clone(), opts.clone(), &parent)
            .expect("start");
        let control = replicator.control();
        wait_until(|| control.status().ticks >= 2).await;
        assert!(control.is_running());
        parent.cancel();
        wait_until(|| !control.is_running()).await;
        drop(replicator);

        let replicator =
            Replicator::start(clients.clone(), clients, opts, &CancellationToken::new())
                .expect("start");
        let control = replicator.control();
        wait_until(|| control.status().ticks >= 1).await;
        drop(replicator);
        wait_until(|| !control.is_running()).await;
    }

    async fn wait_until(mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
