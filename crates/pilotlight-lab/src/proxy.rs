//! The realism proxy: an HTTP/1 server in front of moto that adds what moto lacks.
//!
//! Every request is named ([`identify`]), counted ([`CallCounts`]), checked against the fault
//! rules ([`FaultRule`]) and AWS's documented rate limits (token buckets from
//! `pilotlight_core::aws_limits`, refill scaled by [`ProxyOptions::time_scale`]), given
//! `RunInstances` `ClientToken` idempotency, and forwarded to moto with the header
//! `x-moto-account-id` when the proxy has an account — so each proxy can be its own AWS
//! account on a shared moto. Errors are written in each protocol's own envelope so the SDK
//! parses their codes.
//!
//! Copies take time ([`copies`]): a successful `CopySnapshot`, `CopyDBSnapshot`,
//! `CopyDBClusterSnapshot` or `CopyImage` stays in flight for a duration derived from the
//! source's size ([`ProxyOptions::copy_gib_per_sec`], [`ProxyOptions::copy_min_secs`]); while
//! it is, the destination region's describe answers show it pending with rising progress, and
//! a copy request beyond AWS's in-flight limit of its kind is refused with AWS's error without
//! reaching moto. The size comes from a describe of the source that the proxy sends to moto
//! itself (as the same account; not counted).
//!
//! CloudWatch (module `rpcv2`): the current aws-sdk-cloudwatch speaks only Smithy RPC v2 CBOR,
//! which moto does not; at the forward step a CBOR call becomes a JSON 1.0 call to moto and
//! moto's answer becomes CBOR again (timestamps as tag 1), so the real SDK works. Fault rules,
//! rate limits and counters see the CBOR call as `cloudwatch:<Operation>` before that.
//!
//! Restores meet AWS's behaviour too: `RunInstances` launches up to `MaxCount` when asked to
//! ([`ProxyOptions::launch_max_count`]) and no more than the capacity rules allow ([`capacity`],
//! module `launches`); instances, DB instances, load balancers and Route 53 changes stay
//! pending for a while after they are created (module `pending`); and a whole region can be
//! taken down and brought back ([`regions`]).
//!
//! The proxy's own API lives under `/__lab/` on the same port: `GET /__lab/counters` (calls
//! and copies), `POST /__lab/counters/reset`, `GET|POST|DELETE /__lab/faults`,
//! `GET|POST|DELETE /__lab/capacity`, `GET /__lab/regions`,
//! `POST /__lab/regions/{region}/down|up`, `GET /__lab/health`, and the S3 replicator's
//! controls under `/__lab/replicator` when one is attached ([`ProxyHandle::set_replicator`],
//! [`crate::replicator`]).
//!
//! Bounds: request and response bodies up to [`MAX_BODY_BYTES`] (larger requests get 413,
//! larger upstream answers 502); at most [`MAX_CONNECTIONS`] client connections at once
//! (further ones wait in the listen backlog); counters, fault rules, client tokens, copy
//! records, capacity rules, pending resources and regions down are bounded as their modules
//! document.

pub mod capacity;
pub mod cbor;
pub mod copies;
mod counters;
mod envelope;
mod faults;
mod idempotency;
mod identify;
mod launches;
mod limits;
mod pending;
pub mod regions;
mod rewrite;
mod rpcv2;
mod xml;
mod xmledit;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pilotlight_core::aws_limits::{self, CallShape, Service};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use capacity::{CapacityId, CapacityPhase, CapacityRule, CapacityStatus, MAX_CAPACITY_RULES};
pub use copies::{COPY_KINDS, CopyCount, CopyKind};
pub use counters::{CallCount, CallCounts};
pub use envelope::ErrorReply;
pub use faults::{FaultAction, FaultId, FaultRule, FaultStatus, MAX_RULES};
pub use identify::{CallInfo, GLOBAL_REGION, Protocol, UNKNOWN, identify};
pub use pending::MAX_PENDING;
pub use regions::{MAX_REGIONS_DOWN, RegionsDown};

use crate::error::LabError;
use crate::replicator::ReplicatorControl;
use capacity::CapacityTable;
use copies::{CopyRecord, CopyTracker};
use counters::{Counters, Outcome};
use faults::FaultTable;
use idempotency::{CachedResponse, ClientTokens, fingerprint};
use limits::TokenBuckets;
use pending::PendingTracker;
use regions::RegionTable;

/// Largest request or upstream response body the proxy handles.
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// Largest body accepted by the `/__lab/` API.
const MAX_ADMIN_BODY_BYTES: usize = 64 << 10;
/// Most client connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The header moto reads the caller's account from.
pub const ACCOUNT_HEADER: &str = "x-moto-account-id";
/// moto's account when no header is sent.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// How the proxy behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyOptions {
    /// Multiplies every bucket's refill rate (capacity unchanged): 1.0 = AWS's real limits,
    /// 100.0 = a hundred times faster. Must be finite and positive.
    pub time_scale: f64,
    /// Enforce AWS's documented rate limits.
    pub enforce_limits: bool,
    /// The 12-digit account every forwarded request is made as (`x-moto-account-id`); `None`
    /// passes the client's header through, or moto's default account.
    pub account_id: Option<String>,
    /// How fast a copy moves data, in GiB per second of AWS time: a copy of S GiB stays in
    /// flight `max(copy_min_secs, S / copy_gib_per_sec) / time_scale` seconds. Default 1.0.
    /// Must be finite and positive.
    pub copy_gib_per_sec: f64,
    /// The shortest copy, in seconds of AWS time (divided by `time_scale` like the rest).
    /// Default 2.0. Must be finite and not negative.
    pub copy_min_secs: f64,
    /// In-flight copy limits per destination region and account that replace AWS's, by kind
    /// (`ebs` 20, `rds` 20, `aurora` 5, `ami` 300 — [`CopyKind::default_limit`]); kinds not
    /// listed keep AWS's limit. Enforced whatever `enforce_limits` says.
    pub copy_limits: BTreeMap<String, u32>,
    /// `RunInstances` launches `MaxCount` instances (capacity permitting), as AWS does, instead
    /// of moto's `MinCount`. Default false: moto's count, which older lab tests rely on.
    pub launch_max_count: bool,
    /// Seconds of AWS time (divided by `time_scale`) an instance launched through the proxy
    /// shows `pending` before `running`. Default 0: off (moto's instant `running`).
    pub instance_pending_secs: f64,
    /// Seconds of AWS time a DB instance created or restored through the proxy shows
    /// `creating` before `available`. Default 0: off.
    pub db_creating_secs: f64,
    /// Seconds of AWS time an ELBv2 load balancer shows `provisioning` before `active`.
    /// Default 0: off.
    pub lb_provisioning_secs: f64,
    /// Seconds of AWS time a Route 53 change shows `PENDING` before `INSYNC`; above 0 every
    /// change also gets an id of its own. Default 0: off (moto's one id, always `INSYNC`).
    pub dns_pending_secs: f64,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            time_scale: 1.0,
            enforce_limits: true,
            account_id: None,
            copy_gib_per_sec: 1.0,
            copy_min_secs: 2.0,
            copy_limits: BTreeMap::new(),
            launch_max_count: false,
            instance_pending_secs: 0.0,
            db_creating_secs: 0.0,
            lb_provisioning_secs: 0.0,
            dns_pending_secs: 0.0,
        }
    }
}

impl ProxyOptions {
    fn validate(&self) -> Result<(), LabError> {
        let mut problems = Vec::new();
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            problems.push(format!(
                "time_scale must be a positive number, got {}",
                self.time_scale
            ));
        }
        if let Some(account) = &self.account_id
            && (account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()))
        {
            problems.push(format!("account_id must be 12 digits, got {account:?}"));
        }
        if !(self.copy_gib_per_sec.is_finite() && self.copy_gib_per_sec > 0.0) {
            problems.push(format!(
                "copy_gib_per_sec must be a positive number, got {}",
                self.copy_gib_per_sec
            ));
        }
        if !(self.copy_min_secs.is_finite() && self.copy_min_secs >= 0.0) {
            problems.push(format!(
                "copy_min_secs must be a number >= 0, got {}",
                self.copy_min_secs
            ));
        }
        problems.extend(pending::option_problems(self));
        for kind in self.copy_limits.keys() {
            if CopyKind::parse(kind).is_none() {
                problems.push(format!(
                    "copy_limits: unknown kind {kind:?}; use ebs, rds, aurora or ami"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::InvalidOptions {
                reason: problems.join("; "),
            })
        }
    }

    /// The copy-limit overrides by kind (unknown names were rejected by `validate`).
    fn copy_limit_overrides(&self) -> BTreeMap<CopyKind, u32> {
        self.copy_limits
            .iter()
            .filter_map(|(k, v)| CopyKind::parse(k).map(|k| (k, *v)))
            .collect()
    }
}

/// The realism proxy's constructor.
#[derive(Debug)]
pub struct RealismProxy;

impl RealismProxy {
    /// Starts a proxy on a free loopback port, forwarding to moto at `upstream`. It runs on
    /// the current tokio runtime until the handle is shut down or dropped.
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidOptions`] for a non-positive `time_scale` or a malformed account,
    /// [`LabError::Io`] when no loopback port can be bound.
    pub async fn start(upstream: SocketAddr, opts: ProxyOptions) -> Result<ProxyHandle, LabError> {
        opts.validate()?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| LabError::io("binding the realism proxy to 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LabError::io("reading the realism proxy's address", e))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        let shared = Arc::new(Shared {
            upstream,
            buckets: Mutex::new(TokenBuckets::new(opts.time_scale)),
            copies: Mutex::new(CopyTracker::new(&opts.copy_limit_overrides())),
            capacity: Mutex::new(CapacityTable::new(opts.time_scale)),
            pending: Mutex::default(),
            regions: Mutex::default(),
            opts,
            client,
            counters: Mutex::default(),
            faults: Mutex::default(),
            tokens: ClientTokens::default(),
            seq: AtomicU64::new(0),
            replicator: Mutex::default(),
        });
        let cancel = CancellationToken::new();
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
        tracing::debug!(%addr, %upstream, "realism proxy started");
        Ok(ProxyHandle {
            addr,
            shared,
            cancel,
            accept: Some(accept),
        })
    }
}

/// A running proxy. Dropping it (or [`ProxyHandle::shutdown`]) stops it and closes its
/// connections.
#[derive(Debug)]
pub struct ProxyHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    accept: Option<JoinHandle<()>>,
}

impl ProxyHandle {
    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for the SDK's endpoint override.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The options it runs with.
    pub fn options(&self) -> &ProxyOptions {
        &self.shared.opts
    }

    /// A snapshot of the call counters, with the copy counters.
    pub fn counters(&self) -> CallCounts {
        self.shared.counters_snapshot()
    }

    /// Zeroes the call counters and the copy totals (each copy maximum drops to what is in
    /// flight now).
    pub fn reset_counters(&self) {
        self.shared.reset_counters();
    }

    /// Copies of `kind` (`ebs`, `rds`, `aurora`, `ami`) in flight to `region` now, all
    /// accounts together; 0 for an unknown kind.
    pub fn copies_in_flight(&self, kind: &str, region: &str) -> u32 {
        CopyKind::parse(kind).map_or(0, |k| {
            lock(&self.shared.copies).in_flight(k, region, Instant::now())
        })
    }

    /// The most copies of `kind` ever in flight to `region` at once (since start or the last
    /// counter reset), all accounts together; 0 for an unknown kind.
    pub fn max_copies_in_flight(&self, kind: &str, region: &str) -> u32 {
        CopyKind::parse(kind).map_or(0, |k| lock(&self.shared.copies).max_in_flight(k, region))
    }

    /// Adds a fault rule (after the existing ones, which match first).
    pub fn add_fault(&self, rule: FaultRule) -> FaultId {
        lock(&self.shared.faults).add(rule)
    }

    /// How often a rule fired (0 for an unknown id).
    pub fn fault_hits(&self, id: FaultId) -> u64 {
        lock(&self.shared.faults).hits(id)
    }

    /// Every rule with its hit count.
    pub fn faults(&self) -> Vec<FaultStatus> {
        lock(&self.shared.faults).list()
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Serves `control` under `/__lab/replicator` (`None`: those routes answer 404).
    pub fn set_replicator(&self, control: Option<ReplicatorControl>) {
        *lock(&self.shared.replicator) = control;
    }

    /// Stops accepting, closes open connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.accept.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "realism proxy accept loop ended abnormally");
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    opts: ProxyOptions,
    client: Client<HttpConnector, Full<Bytes>>,
    counters: Mutex<Counters>,
    faults: Mutex<FaultTable>,
    buckets: Mutex<TokenBuckets>,
    copies: Mutex<CopyTracker>,
    capacity: Mutex<CapacityTable>,
    pending: Mutex<PendingTracker>,
    regions: Mutex<RegionTable>,
    tokens: ClientTokens,
    seq: AtomicU64,
    /// The S3 replicator served under `/__lab/replicator`, if any.
    replicator: Mutex<Option<ReplicatorControl>>,
}

impl Shared {
    fn counters_snapshot(&self) -> CallCounts {
        let mut counts = lock(&self.counters).snapshot();
        counts.copies = lock(&self.copies).snapshot(Instant::now());
        counts
    }

    fn reset_counters(&self) {
        lock(&self.counters).reset();
        lock(&self.copies).reset(Instant::now());
    }

    fn request_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-{:04x}-4000-8000-{n:012x}",
            std::process::id(),
            self.upstream.port()
        )
    }
}

/// The call was answered by closing the connection (fault `DropResponse`).
#[derive(Debug, thiserror::Error)]
#[error("response dropped by fault injection")]
struct Dropped;

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "realism proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| handle(shared.clone(), req));
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = cancel.cancelled() => {}
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "realism proxy connection ended");
                    }
                }
            }
        });
    }
}

type ProxyResponse = Response<Full<Bytes>>;

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<ProxyResponse, Dropped> {
    if req.uri().path().starts_with("/__lab/") {
        return Ok(admin(&shared, req).await);
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body unreadable or over {MAX_BODY_BYTES} bytes: {e}"),
            ));
        }
    };
    let call = identify(&parts.method, &parts.uri, &parts.headers, &body);
    let account = shared
        .opts
        .account_id
        .clone()
        .or_else(|| {
            parts
                .headers
                .get(ACCOUNT_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
    let request_id = shared.request_id();
    let mut outcome = Outcome::default();
    let record = |outcome: Outcome| {
        lock(&shared.counters).record(
            &call.service,
            &call.operation,
            &call.region,
            call.mutating,
            outcome,
        );
    };

    // 0. A region that is down answers nothing.
    if regions::is_down(&shared, &call.region) {
        record(Outcome {
            faulted: true,
            ..Outcome::default()
        });
        tracing::debug!(service = %call.service, operation = %call.operation,
            region = %call.region, "region down: connection closed");
        return Err(Dropped);
    }

    // 1. Fault rules.
    let action = lock(&shared.faults).fire(&call);
    let mut drop_response = false;
    let mut hold_response = None;
    if let Some(action) = action {
        outcome.faulted = true;
        match action {
            FaultAction::Latency { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            FaultAction::DropResponse => drop_response = true,
            FaultAction::HoldResponse { ms } => hold_response = Some(Duration::from_millis(ms)),
            other => {
                if let Some(reply) = other.error_reply(&call) {
                    outcome.throttled = other == FaultAction::Throttle;
                    record(outcome);
                    tracing::debug!(service = %call.service, operation = %call.operation,
                        region = %call.region, code = %reply.code, "fault injected");
                    return Ok(envelope::error_response(call.protocol, &reply, &request_id));
                }
            }
        }
    }

    // 2. AWS's rate limits.
    if shared.opts.enforce_limits
        && let Some(service) = call.known_service()
    {
        let shape = call_shape(service, &call, &body);
        let charges = aws_limits::charges(service, &call.operation, &shape);
        let paid = lock(&shared.buckets).try_pay(&account, &call.region, &charges, Instant::now());
        if !paid {
            outcome.throttled = true;
            record(outcome);
            let (status, code) = aws_limits::throttle_error(service);
            let message = if service == Service::Ec2 {
                "Request limit exceeded."
            } else {
                "Rate exceeded"
            };
            let reply = ErrorReply::new(status, code, message);
            return Ok(envelope::error_response(call.protocol, &reply, &request_id));
        }
    }
    record(outcome);

    // 3. In-flight copy limits.
    let slot = match CopyKind::of_copy(&call.service, &call.operation) {
        Some(kind) => match CopySlot::take(&shared, &account, &call.region, kind) {
            Ok(slot) => Some(slot),
            Err(limit) => {
                tracing::debug!(kind = %kind, region = %call.region, limit,
                    "copy refused: in-flight limit reached");
                let reply = copies::limit_reply(kind, limit);
                return Ok(envelope::error_response(call.protocol, &reply, &request_id));
            }
        },
        None => None,
    };

    // 4. ClientToken idempotency, then moto.
    let token = (call.service == "ec2" && call.operation == "RunInstances")
        .then(|| call.param("ClientToken"))
        .flatten()
        .filter(|t| !t.is_empty());
    let response = match token {
        Some(token) => {
            let slot = shared.tokens.slot(&account, &call.region, token);
            // The launch runs to its end in a task of its own, even when the client goes away
            // mid-call (a killed daemon): AWS would complete it, and the repeat with the same
            // token must find its answer rather than launch again.
            let (task_shared, task_call, task_parts) =
                (shared.clone(), call.clone(), parts.clone());
            let (task_account, task_request_id, token) =
                (account.clone(), request_id.clone(), token.to_owned());
            let task = tokio::spawn(async move {
                let (shared, call, parts) = (task_shared, task_call, task_parts);
                let (account, request_id) = (task_account, task_request_id);
                let mut cached = slot.lock_owned().await;
                let fp = fingerprint(&call.params);
                match cached.as_ref() {
                    Some(hit) if hit.fingerprint == fp => {
                        rebuild(hit.status, &hit.headers, hit.body.clone(), &parts.method)
                    }
                    Some(_) => {
                        let reply = ErrorReply::new(
                            400,
                            "IdempotentParameterMismatch",
                            &format!(
                                "The client token {token} was already used with different \
                                 parameters."
                            ),
                        );
                        envelope::error_response(call.protocol, &reply, &request_id)
                    }
                    None => match forward_realistic(
                        &shared,
                        &call,
                        &parts,
                        body,
                        &account,
                        &request_id,
                        None,
                    )
                    .await
                    {
                        Ok((status, headers, body)) => {
                            if status.is_success() {
                                *cached = Some(CachedResponse {
                                    fingerprint: fp,
                                    status,
                                    headers: headers.clone(),
                                    body: body.clone(),
                                });
                            }
                            rebuild(status, &headers, body, &parts.method)
                        }
                        Err(response) => response,
                    },
                }
            });
            match task.await {
                Ok(response) => response,
                Err(e) => {
                    let reply =
                        ErrorReply::new(500, "InternalError", &format!("launch task failed: {e}"));
                    envelope::error_response(call.protocol, &reply, &request_id)
                }
            }
        }
        None if call.protocol == Protocol::RpcV2Cbor => {
            forward_rpcv2(&shared, &call, &parts, &body, &account, &request_id).await
        }
        None => {
            match forward_realistic(&shared, &call, &parts, body, &account, &request_id, slot).await
            {
                Ok((status, headers, body)) => rebuild(status, &headers, body, &parts.method),
                Err(response) => response,
            }
        }
    };
    if drop_response {
        tracing::debug!(service = %call.service, operation = %call.operation,
            region = %call.region, "response dropped by fault injection");
        return Err(Dropped);
    }
    if let Some(hold) = hold_response {
        tokio::time::sleep(hold).await;
    }
    Ok(response)
}

/// Forwards a call to moto with the realism that rewrites calls and answers: launches
/// (`MaxCount`, capacity rules), copies, pending states. An answer the proxy makes itself (a
/// capacity refusal, moto unreachable) comes back as `Err`.
async fn forward_realistic(
    shared: &Arc<Shared>,
    call: &CallInfo,
    parts: &http::request::Parts,
    body: Bytes,
    account: &str,
    request_id: &str,
    slot: Option<CopySlot>,
) -> Result<(StatusCode, HeaderMap, Bytes), ProxyResponse> {
    let prepared = launches::prepare(shared, call, parts, body, account)
        .await
        .map_err(|reply| envelope::error_response(call.protocol, &reply, request_id))?;
    let head = prepared.parts.as_ref().unwrap_or(parts);
    let (status, headers, body) = forward(shared, head, prepared.body, account)
        .await
        .map_err(|e| bad_gateway(call, request_id, &e))?;
    if let Some(reservation) = prepared.reservation {
        let launched = if status.is_success() {
            launches::launched(&body).unwrap_or(reservation.count())
        } else {
            0
        };
        reservation.settle(launched);
    }
    let body = copy_realism(shared, call, account, status, &headers, body, slot).await;
    let body = if status.is_success() && !headers.contains_key(header::CONTENT_ENCODING) {
        pending::on_answer(shared, call, account, body)
    } else {
        body
    };
    Ok((status, headers, body))
}

/// A reserved place under a copy limit; given back on drop unless the copy started.
struct CopySlot {
    shared: Arc<Shared>,
    account: String,
    region: String,
    kind: CopyKind,
    armed: bool,
}

impl CopySlot {
    /// Reserves a place, or returns the limit that is reached.
    fn take(
        shared: &Arc<Shared>,
        account: &str,
        region: &str,
        kind: CopyKind,
    ) -> Result<CopySlot, u32> {
        lock(&shared.copies).try_reserve(account, region, kind, Instant::now())?;
        Ok(CopySlot {
            shared: shared.clone(),
            account: account.to_owned(),
            region: region.to_owned(),
            kind,
            armed: true,
        })
    }

    /// The copy `id` is under way.
    fn start(mut self, id: &str, record: CopyRecord) {
        self.armed = false;
        lock(&self.shared.copies).start(&self.account, &self.region, self.kind, id, record);
    }
}

impl Drop for CopySlot {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.shared.copies).release(&self.account, &self.region, self.kind);
        }
    }
}

/// What copy realism does to a forwarded call's answer: start tracking a new copy (and show
/// it pending in the copy answer), end a deleted one, or show in-flight copies pending in a
/// describe answer. Anything unexpected leaves moto's answer as it is.
async fn copy_realism(
    shared: &Arc<Shared>,
    call: &CallInfo,
    account: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    slot: Option<CopySlot>,
) -> Bytes {
    if !status.is_success() || headers.contains_key(header::CONTENT_ENCODING) {
        return body;
    }
    if let Some(slot) = slot {
        return start_copy(shared, call, account, slot, body).await;
    }
    if let Some((kind, param)) = CopyKind::of_delete(&call.service, &call.operation) {
        if let Some(id) = call.param(param) {
            let (_, id) = copies::rds_source(id, &call.region);
            lock(&shared.copies).forget(account, &call.region, kind, &id);
        }
        return body;
    }
    let Some((kind, listing)) = CopyKind::of_describe(&call.service, &call.operation) else {
        return body;
    };
    let progress = lock(&shared.copies).progress_of(account, &call.region, kind, Instant::now());
    if progress.is_empty() {
        return body;
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return body;
    };
    rewrite::rewrite_items(text, listing.container, listing.id, |id| {
        progress.get(id).map(|p| kind.pending_edits(*p))
    })
    .map_or(body, Bytes::from)
}

async fn start_copy(
    shared: &Arc<Shared>,
    call: &CallInfo,
    account: &str,
    slot: CopySlot,
    body: Bytes,
) -> Bytes {
    let kind = slot.kind;
    let Some(id) = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| rewrite::first_text(text, kind.new_id_element()))
        .map(str::to_owned)
    else {
        tracing::warn!(operation = %call.operation, "copy answer without the new id; not tracked");
        return body;
    };
    let size_gib = match source_size(shared, call, account, kind).await {
        Ok(size) => size,
        Err(reason) => {
            tracing::warn!(operation = %call.operation, copy = %id, %reason,
                "source size unknown; the copy takes the minimum time");
            0.0
        }
    };
    let opts = &shared.opts;
    let duration = copies::copy_duration(
        size_gib,
        opts.copy_gib_per_sec,
        opts.copy_min_secs,
        opts.time_scale,
    );
    tracing::debug!(kind = %kind, region = %call.region, copy = %id, size_gib,
        secs = duration.as_secs_f64(), "copy in flight");
    slot.start(
        &id,
        CopyRecord {
            size_gib,
            started: Instant::now(),
            duration,
        },
    );
    let Some(listing) = kind.copy_answer() else {
        return body;
    };
    std::str::from_utf8(&body)
        .ok()
        .and_then(|text| {
            rewrite::rewrite_items(text, listing.container, listing.id, |i| {
                (i == id).then(|| kind.pending_edits(0))
            })
        })
        .map_or(body, Bytes::from)
}

/// The size in GiB of a copy call's source, from a describe of it that the proxy sends to
/// moto in the source region: EBS `volumeSize`; AMI the sum of its block devices'
/// `volumeSize`; RDS `AllocatedStorage`; Aurora `AllocatedStorage` with 0/1 read as 10.
async fn source_size(
    shared: &Shared,
    call: &CallInfo,
    account: &str,
    kind: CopyKind,
) -> Result<f64, String> {
    let need = |name: &str| {
        call.param(name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} in the copy request"))
    };
    let ec2_region = call
        .param("SourceRegion")
        .unwrap_or(&call.region)
        .to_owned();
    let (service, region, form) = match kind {
        CopyKind::Ebs => (
            "ec2",
            ec2_region,
            format!(
                "Action=DescribeSnapshots&Version=2016-11-15&SnapshotId.1={}",
                form_encode(&need("SourceSnapshotId")?)
            ),
        ),
        CopyKind::Ami => (
            "ec2",
            ec2_region,
            format!(
                "Action=DescribeImages&Version=2016-11-15&ImageId.1={}",
                form_encode(&need("SourceImageId")?)
            ),
        ),
        CopyKind::Rds => {
            let (region, id) =
                copies::rds_source(&need("SourceDBSnapshotIdentifier")?, &call.region);
            (
                "rds",
                region,
                format!(
                    "Action=DescribeDBSnapshots&Version=2014-10-31&DBSnapshotIdentifier={}",
                    form_encode(&id)
                ),
            )
        }
        CopyKind::Aurora => {
            let (region, id) =
                copies::rds_source(&need("SourceDBClusterSnapshotIdentifier")?, &call.region);
            (
                "rds",
                region,
                format!(
                    "Action=DescribeDBClusterSnapshots&Version=2014-10-31&\
                     DBClusterSnapshotIdentifier={}",
                    form_encode(&id)
                ),
            )
        }
    };
    let text = moto_query(shared, service, &region, account, form).await?;
    let number = |s: &str| s.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0);
    let size = match kind {
        CopyKind::Ebs => rewrite::first_text(&text, "volumeSize").and_then(number),
        CopyKind::Ami => {
            let sizes: Vec<f64> = rewrite::all_texts(&text, "volumeSize")
                .into_iter()
                .filter_map(number)
                .collect();
            (!sizes.is_empty()).then(|| sizes.iter().sum())
        }
        CopyKind::Rds => rewrite::first_text(&text, "AllocatedStorage").and_then(number),
        CopyKind::Aurora => rewrite::first_text(&text, "AllocatedStorage")
            .and_then(number)
            .map(copies::aurora_size),
    };
    size.ok_or_else(|| format!("no size in moto's {service} answer from {region}"))
}

/// Sends one query-protocol call of the proxy's own to moto, as `account` in `region`.
async fn moto_query(
    shared: &Shared,
    service: &str,
    region: &str,
    account: &str,
    form: String,
) -> Result<String, String> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(shared.upstream.to_string())
        .path_and_query("/")
        .build()
        .map_err(|e| e.to_string())?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(
            header::AUTHORIZATION,
            format!(
                "AWS4-HMAC-SHA256 Credential=pilotlight-lab/20260101/{region}/{service}/\
                 aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCOUNT_HEADER, account)
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| e.to_string())?;
    let response = shared
        .client
        .request(request)
        .await
        .map_err(|e| error_chain(&e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("moto answered HTTP {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|e| e.to_string())
}

/// Percent-encodes a form value (everything but unreserved characters).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What changes a call's charges: instances for EC2 instance actions (`MaxCount` or the id
/// list), change tokens for Route 53, expensive EC2 describes.
fn call_shape(service: Service, call: &CallInfo, body: &[u8]) -> CallShape {
    let units = match (service, call.operation.as_str()) {
        (Service::Ec2, "RunInstances") => call
            .param("MaxCount")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1),
        (Service::Ec2, "StartInstances" | "StopInstances" | "TerminateInstances") => {
            let ids = call
                .params
                .iter()
                .filter(|(k, _)| k.starts_with("InstanceId."))
                .count();
            u32::try_from(ids).unwrap_or(u32::MAX)
        }
        (Service::Route53, "ChangeResourceRecordSets") => identify::route53_change_units(body),
        _ => 1,
    };
    let unfiltered_unpaginated = service == Service::Ec2
        && call.operation.starts_with("Describe")
        && identify::ec2_unfiltered_unpaginated(&call.params);
    CallShape {
        units: units.max(1),
        unfiltered_unpaginated,
    }
}

/// Headers that describe one hop, not the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    )
}

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("building the upstream request")]
    Build(#[source] http::Error),
    #[error("calling moto")]
    Call(#[source] hyper_util::client::legacy::Error),
    #[error("reading moto's answer (over {MAX_BODY_BYTES} bytes or cut short)")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

async fn forward(
    shared: &Shared,
    parts: &http::request::Parts,
    body: Bytes,
    account: &str,
) -> Result<(StatusCode, HeaderMap, Bytes), ForwardError> {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let uri = Uri::builder()
        .scheme("http")
        .authority(shared.upstream.to_string())
        .path_and_query(path)
        .build()
        .map_err(ForwardError::Build)?;
    let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        if shared.opts.account_id.is_some()
            && let Ok(v) = HeaderValue::from_str(account)
        {
            headers.insert(ACCOUNT_HEADER, v);
        }
    }
    let request = builder.body(Full::new(body)).map_err(ForwardError::Build)?;
    let response = shared
        .client
        .request(request)
        .await
        .map_err(ForwardError::Call)?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(ForwardError::Body)?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Forwards an RPC v2 CBOR call to moto as JSON 1.0 and answers in CBOR ([`rpcv2`]). A body
/// that cannot be translated gets a CBOR `SerializationException` (400) without reaching moto.
async fn forward_rpcv2(
    shared: &Shared,
    call: &CallInfo,
    parts: &http::request::Parts,
    body: &[u8],
    account: &str,
    request_id: &str,
) -> ProxyResponse {
    let (json_parts, json_body) = match rpcv2::to_json_request(parts, body) {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(error = %error_chain(&e), operation = %call.operation,
                "RPC v2 CBOR request not translatable");
            return envelope::error_response(Protocol::RpcV2Cbor, &e.reply(), request_id);
        }
    };
    match forward(shared, &json_parts, json_body, account).await {
        Ok((status, headers, body)) => rpcv2::to_cbor_response(status, &headers, &body, request_id),
        Err(e) => bad_gateway(call, request_id, &e),
    }
}

/// A response carrying moto's (or a cached) answer.
fn rebuild(status: StatusCode, headers: &HeaderMap, body: Bytes, method: &Method) -> ProxyResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    for (name, value) in headers {
        // hyper sets Content-Length from the body, except for HEAD, where moto's value (the
        // object's size) must survive.
        if is_hop_by_hop(name) || (name == header::CONTENT_LENGTH && method != Method::HEAD) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    response
}

fn bad_gateway(call: &CallInfo, request_id: &str, error: &ForwardError) -> ProxyResponse {
    tracing::warn!(error = %error_chain(error), operation = %call.operation, "forwarding to moto failed");
    let reply = ErrorReply::new(
        502,
        "BadGateway",
        &format!("the lab proxy could not reach moto: {}", error_chain(error)),
    );
    envelope::error_response(call.protocol, &reply, request_id)
}

/// An error and its causes on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn empty(status: StatusCode) -> ProxyResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn plain(status: StatusCode, text: &str) -> ProxyResponse {
    json_response(status, &serde_json::json!({ "error": text }))
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> ProxyResponse {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn to_json<T: serde::Serialize>(status: StatusCode, value: &T) -> ProxyResponse {
    match serde_json::to_value(value) {
        Ok(v) => json_response(status, &v),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn admin(shared: &Shared, req: Request<Incoming>) -> ProxyResponse {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    match (&method, path.as_str()) {
        (_, p) if p == "/__lab/replicator" || p.starts_with("/__lab/replicator/") => {
            let control = lock(&shared.replicator).clone();
            let (status, answer) =
                crate::replicator::admin(control, &method, &path, req.into_body()).await;
            json_response(status, &answer)
        }
        (_, "/__lab/capacity") => launches::admin(shared, req).await,
        (_, p) if p == "/__lab/regions" || p.starts_with("/__lab/regions/") => {
            match regions::admin(shared, &method, p) {
                Some((status, answer)) => json_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    &answer,
                ),
                None => plain(
                    StatusCode::NOT_FOUND,
                    &format!("no lab endpoint {method} {path}"),
                ),
            }
        }
        (&Method::GET, "/__lab/health") => {
            json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
        }
        (&Method::GET, "/__lab/counters") => to_json(StatusCode::OK, &shared.counters_snapshot()),
        (&Method::POST, "/__lab/counters/reset") => {
            shared.reset_counters();
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::GET, "/__lab/faults") => to_json(StatusCode::OK, &lock(&shared.faults).list()),
        (&Method::DELETE, "/__lab/faults") => {
            lock(&shared.faults).clear();
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, "/__lab/faults") => {
            let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY_BYTES)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("fault rule unreadable or over {MAX_ADMIN_BODY_BYTES} bytes: {e}"),
                    );
                }
            };
            let rule: FaultRule = match serde_json::from_slice(&body) {
                Ok(rule) => rule,
                Err(e) => {
                    return plain(StatusCode::BAD_REQUEST, &format!("invalid fault rule: {e}"));
                }
            };
            let mut faults = lock(&shared.faults);
            if faults.len() >= MAX_RULES {
                return plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("at most {MAX_RULES} fault rules; DELETE /__lab/faults first"),
                );
            }
            let id = faults.add(rule);
            json_response(StatusCode::CREATED, &serde_json::json!({ "id": id }))
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            &format!("no lab endpoint {method} {path}"),
        ),
    }
}

#[cfg(test)]
mod tests;
