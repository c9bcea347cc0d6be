//! Restore hooks (SPEC D13): after each stage of a run — an EC2 tier at its gate, the load
//! balancers with their instances registered, the databases available, the DNS cutover — every
//! configured hook that follows the stage gets one signed JSON `POST`, and the run waits for the
//! 2xx answer of those with `wait = true` before its next stage, so application steps (deploy a
//! build, warm a cache, run smoke tests) are part of the run and of its measured RTO.
//!
//! # Delivery
//!
//! The body is `{run_id, mode, stage, tier, resources, attempt_at}`; the headers are
//! `X-Pilotlight-Delivery: <run>/<hook>/<stage>` (the receiver's idempotency key),
//! `X-Pilotlight-Timestamp` (unix seconds) and `X-Pilotlight-Signature: sha256=<hex
//! HMAC-SHA256(secret, timestamp + "." + body)>`. One delivery has `timeout_secs` in all;
//! within it, only a connection that could not be opened (nothing was sent) is tried again.
//!
//! # At most once
//!
//! Each (run, hook, stage) is the journal item `hook/<hook>/<stage>` (kind `hook`, in the step
//! of the same id, kind `hook`, which times it in the report): written `requested` before the
//! request, `done` (status, duration) or `failed` (status or error, duration) after it. A
//! `done` or `failed` item is never sent again, and neither is one found `requested` by a later
//! execution — its request may have reached the receiver before the daemon stopped, so it is
//! recorded failed ("daemon restarted during delivery; not re-sent to keep at-most-once") and
//! treated as any failure: a waited-for hook with `on_failure = "fail"` then fails the run.
//!
//! A hook that is not waited for is delivered in a task of its own beside the run, and its
//! failure never fails the run (the item is failed and reported). A waited-for hook's failure
//! is [`ReconcileError::HookFailed`] with `on_failure = "fail"`, which ends the run failed; with
//! `"continue"` the run goes on. Hook items never count among the run's failed items: the
//! run fails through them only by that error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pilotlight_core::config::{HookConfig, HookMode, HookStage};
use pilotlight_core::digest::hmac_sha256_hex;
use pilotlight_core::secret::Secret;
use pilotlight_store::{ItemState, RunMode, StepState};
use serde_json::{Value, json};

use super::journal::{ItemRef, detail};
use super::{Ec2Outcome, LbOutcome, RdsOutcome, RunCtx};
use crate::{ReconcileError, now_ms};

/// The journal item (and step) kind of a delivery.
pub const KIND: &str = "hook";

/// Why a delivery found `requested` by a later execution is not sent again.
pub const NOT_RESENT: &str = "daemon restarted during delivery; not re-sent to keep at-most-once";

/// Most bytes of an answer's body kept (in the item's detail) when it is not a 2xx.
const ANSWER_BYTES: usize = 512;

/// Header names.
const DELIVERY: &str = "x-pilotlight-delivery";
const TIMESTAMP: &str = "x-pilotlight-timestamp";
const SIGNATURE: &str = "x-pilotlight-signature";

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The configured hooks with their secrets and one HTTP client. Cheap to share (`Arc`).
pub struct Hooks {
    hooks: Vec<Arc<Hook>>,
    client: HttpClient,
    /// Deliveries this process has in flight (a background delivery outliving an execution
    /// of the run must not be taken for one cut by a restart).
    in_flight: Arc<Mutex<BTreeSet<String>>>,
}

/// One hook and its secret.
struct Hook {
    config: HookConfig,
    secret: Secret,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.hooks.iter().map(|h| h.config.name.as_str()).collect();
        f.debug_struct("Hooks").field("hooks", &names).finish()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks::new(&[], &BTreeMap::new())
    }
}

impl Hooks {
    /// The hooks of `configs`, each signed with its secret from `secrets` (by hook name; the
    /// binary reads every `secret_file` at start and refuses to start without one). A hook
    /// without a secret is left out, with an error logged.
    pub fn new(configs: &[HookConfig], secrets: &BTreeMap<String, Secret>) -> Hooks {
        let hooks = configs
            .iter()
            .filter_map(|config| match secrets.get(&config.name) {
                Some(secret) => Some(Arc::new(Hook {
                    config: config.clone(),
                    secret: secret.clone(),
                })),
                None => {
                    tracing::error!(hook = %config.name, "restore hook has no secret; left out");
                    None
                }
            })
            .collect();
        Hooks {
            hooks,
            client: http_client(),
            in_flight: Arc::default(),
        }
    }

    /// Whether any hook is configured.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}

/// A client for `http://` and `https://` URLs, HTTPS verified against the system's roots
/// (none found: HTTPS deliveries fail verification, with an error logged once here).
fn http_client() -> HttpClient {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(builder) => builder,
        Err(e) => {
            tracing::warn!(error = %e, "no system TLS roots: HTTPS restore hooks cannot be verified");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            match config {
                Ok(config) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
                // ring always offers the default protocol versions.
                Err(e) => unreachable!("ring supports TLS 1.2 and 1.3: {e}"),
            }
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The signature header's value for `body` sent at `timestamp`:
/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("sha256={}", hmac_sha256_hex(secret, &signed))
}

/// The delivery id (`X-Pilotlight-Delivery`): `<run>/<hook>/<stage>`.
pub fn delivery_id(run_id: &str, hook: &str, stage: HookStage) -> String {
    format!("{run_id}/{hook}/{stage}")
}

/// The journal item (and step) of a delivery: `hook/<hook>/<stage>`.
pub fn item_key(hook: &str, stage: HookStage) -> String {
    format!("hook/{hook}/{stage}")
}

/// The JSON body of a delivery.
pub fn payload(
    run_id: &str,
    mode: RunMode,
    stage: HookStage,
    resources: &[Value],
    at_ms: i64,
) -> Value {
    json!({
        "run_id": run_id,
        "mode": mode_name(mode),
        "stage": stage.to_string(),
        "tier": stage.tier(),
        "resources": resources,
        "attempt_at": rfc3339(at_ms),
    })
}

fn mode_name(mode: RunMode) -> &'static str {
    match hook_mode(mode) {
        HookMode::Disaster => "disaster",
        HookMode::Drill => "drill",
    }
}

fn hook_mode(mode: RunMode) -> HookMode {
    match mode {
        RunMode::Drill => HookMode::Drill,
        RunMode::Disaster => HookMode::Disaster,
    }
}

/// `2026-01-05T03:04:05.123Z` for unix milliseconds.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = super::service::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

/// What an EC2 tier restored: each DR instance with its primary.
pub fn tier_resources(outcome: &Ec2Outcome) -> Vec<Value> {
    outcome
        .instances
        .iter()
        .flat_map(|(primary, dr)| {
            dr.iter().map(move |i| {
                json!({
                    "kind": "instance",
                    "primary_id": primary,
                    "dr_id": i.instance_id,
                    "private_ip": i.private_ip,
                    "public_ip": i.public_ip,
                    "instance_type": i.instance_type,
                    "availability_zone": i.availability_zone,
                })
            })
        })
        .collect()
}

/// What the load-balancer stage recreated: load balancers and target groups.
pub fn lb_resources(lbs: &LbOutcome) -> Vec<Value> {
    let balancers = lbs.load_balancers.iter().map(|(primary, lb)| {
        json!({
            "kind": "load_balancer",
            "primary_id": primary,
            "dr_id": lb.id,
            "name": lb.name,
            "dns_name": lb.dns_name,
        })
    });
    let groups = lbs
        .target_groups
        .iter()
        .map(|(primary, dr)| json!({"kind": "target_group", "primary_id": primary, "dr_id": dr}));
    balancers.chain(groups).collect()
}

/// What the database stage restored: DB instances and Aurora clusters with their endpoints.
pub fn db_resources(dbs: &RdsOutcome) -> Vec<Value> {
    let instances = dbs.databases.iter().map(|(primary, db)| {
        json!({
            "kind": "db_instance",
            "primary_id": primary,
            "dr_id": db.identifier,
            "class": db.class,
            "endpoint": db.endpoint_address,
            "port": db.endpoint_port,
        })
    });
    let clusters = dbs.clusters.iter().map(|(primary, c)| {
        json!({
            "kind": "db_cluster",
            "primary_id": primary,
            "dr_id": c.identifier,
            "endpoint": c.endpoint,
            "reader_endpoint": c.reader_endpoint,
            "port": c.port,
        })
    });
    instances.chain(clusters).collect()
}

/// What the DNS cutover changed: each Route 53 change batch, by hosted zone, from the journal.
///
/// # Errors
/// The store's error.
pub async fn dns_resources(ctx: &RunCtx) -> Result<Vec<Value>, ReconcileError> {
    Ok(ctx
        .journal
        .items()
        .await?
        .into_iter()
        .filter(|i| i.kind == "dns_batch" && i.state == ItemState::Done)
        .map(|i| json!({"kind": "dns_change", "primary_id": i.primary_id, "dr_id": i.dr_id}))
        .collect())
}

/// The load-balancer stage's hooks, when the plan recreates any load balancer.
///
/// # Errors
/// As [`after`].
pub async fn after_load_balancers(ctx: &RunCtx, lbs: &LbOutcome) -> Result<(), ReconcileError> {
    if ctx.plan.restore.load_balancers.is_empty() {
        return Ok(());
    }
    after(ctx, HookStage::LoadBalancers, lb_resources(lbs)).await
}

/// The database stage's hooks, when the plan restores any DB instance or cluster.
///
/// # Errors
/// As [`after`].
pub async fn after_databases(ctx: &RunCtx, dbs: &RdsOutcome) -> Result<(), ReconcileError> {
    let planned = ctx
        .plan
        .restore
        .tiers
        .iter()
        .any(|t| !t.databases.is_empty() || !t.clusters.is_empty());
    if !planned {
        return Ok(());
    }
    after(ctx, HookStage::Databases, db_resources(dbs)).await
}

/// The DNS stage's hooks (a disaster's cutover), when the plan changes any zone.
///
/// # Errors
/// As [`after`].
pub async fn after_dns(ctx: &RunCtx) -> Result<(), ReconcileError> {
    if ctx.plan.restore.dns.zones.is_empty() || ctx.hooks.is_empty() {
        return Ok(());
    }
    after(ctx, HookStage::Dns, dns_resources(ctx).await?).await
}

/// Calls the hooks that follow `stage` of the run with the stage's `resources`: the waited-for
/// ones side by side, answered before this returns; the others in tasks of their own.
///
/// # Errors
/// [`ReconcileError::HookFailed`] when a waited-for hook with `on_failure = "fail"` failed or
/// timed out (now or in an earlier execution); [`ReconcileError::Cancelled`] when the run
/// stops (a delivery in flight stays `requested`: never sent again); store failures.
pub async fn after(
    ctx: &RunCtx,
    stage: HookStage,
    resources: Vec<Value>,
) -> Result<(), ReconcileError> {
    let mode = hook_mode(ctx.mode);
    let firing: Vec<Arc<Hook>> = ctx
        .hooks
        .hooks
        .iter()
        .filter(|h| h.config.fires(mode, stage))
        .cloned()
        .collect();
    if firing.is_empty() {
        return Ok(());
    }
    let resources = Arc::new(resources);
    let mut waited = Vec::new();
    for hook in firing {
        if hook.config.wait {
            waited.push(async {
                let outcome = deliver(ctx, &hook, stage, &resources).await;
                (hook, outcome)
            });
        } else {
            let (ctx, resources) = (ctx.clone(), resources.clone());
            tokio::spawn(async move {
                if let Err(e) = deliver(&ctx, &hook, stage, &resources).await {
                    tracing::warn!(
                        run = %ctx.run_id,
                        hook = %hook.config.name,
                        %stage,
                        error = %e,
                        "restore hook delivery not recorded"
                    );
                }
            });
        }
    }
    for (hook, outcome) in futures::future::join_all(waited).await {
        if let Err(reason) = outcome? {
            if hook.config.blocks_on_failure() {
                return Err(ReconcileError::HookFailed {
                    hook: hook.config.name.clone(),
                    stage: stage.to_string(),
                    reason,
                });
            }
            tracing::warn!(
                run = %ctx.run_id,
                hook = %hook.config.name,
                %stage,
                %reason,
                "restore hook failed; the run continues (on_failure = \"continue\")"
            );
        }
    }
    Ok(())
}

/// Removes a delivery from the in-flight set when it ends or is dropped.
struct InFlight {
    set: Arc<Mutex<BTreeSet<String>>>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// One delivery, at most once per (run, hook, stage): `Ok(Ok(()))` when it was answered 2xx
/// (now or before), `Ok(Err(reason))` when it failed (now or before).
async fn deliver(
    ctx: &RunCtx,
    hook: &Hook,
    stage: HookStage,
    resources: &[Value],
) -> Result<Result<(), String>, ReconcileError> {
    let name = &hook.config.name;
    let key = item_key(name, stage);
    let item_ref = ItemRef {
        key: &key,
        step_id: &key,
        kind: KIND,
        primary_id: name,
    };
    let tier = stage.tier().unwrap_or(0);
    let _guard = {
        let mut set = ctx
            .hooks
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !set.insert(format!("{}/{key}", ctx.run_id)) {
            // Being delivered by this process already (an earlier execution's task).
            return Ok(Err("delivery still in flight".to_owned()));
        }
        InFlight {
            set: ctx.hooks.in_flight.clone(),
            key: format!("{}/{key}", ctx.run_id),
        }
    };
    if let Some(item) = ctx.journal.item(&key).await? {
        match item.state {
            ItemState::Done => return Ok(Ok(())),
            ItemState::Failed => {
                return Ok(Err(item
                    .last_error
                    .unwrap_or_else(|| "failed earlier".to_owned())));
            }
            ItemState::Requested => {
                let mut d = detail(&item);
                if let Value::Object(m) = &mut d {
                    m.insert("outcome".into(), json!("unknown"));
                }
                ctx.journal.fail(item_ref, NOT_RESENT, &d).await?;
                ctx.journal
                    .step(&key, tier, KIND, StepState::Failed, &d)
                    .await?;
                tracing::warn!(run = %ctx.run_id, hook = %name, %stage, "{NOT_RESENT}");
                return Ok(Err(NOT_RESENT.to_owned()));
            }
            _ => {}
        }
    }
    // A waited-for delivery is part of the run and starts only while it goes on; one beside
    // the run reports a stage that is over, even when the run ended (or stopped) meanwhile.
    if hook.config.wait {
        ctx.check_stop()?;
    }
    let delivery = delivery_id(&ctx.run_id, name, stage);
    let planned = json!({
        "hook": name,
        "stage": stage.to_string(),
        "url": hook.config.url,
        "wait": hook.config.wait,
        "delivery": delivery,
    });
    ctx.journal
        .step(&key, tier, KIND, StepState::Running, &planned)
        .await?;
    let item = ctx
        .journal
        .request(item_ref, Some(&delivery), &planned)
        .await?;
    let started = Instant::now();
    let sent = send(ctx, hook, stage, &delivery, resources);
    // A waited-for delivery gives way to the run's stop (it stays `requested`); one beside the
    // run ends by its own timeout.
    let answer = if hook.config.wait {
        tokio::select! {
            () = ctx.stop.cancelled() => return Err(ReconcileError::Cancelled),
            a = sent => a,
        }
    } else {
        sent.await
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut d = planned;
    if let Value::Object(m) = &mut d {
        m.insert("duration_ms".into(), json!(duration_ms));
    }
    let outcome = match answer {
        Answer::Status(status, _) if (200..300).contains(&status) => {
            if let Value::Object(m) = &mut d {
                m.insert("status".into(), json!(status));
            }
            ctx.journal
                .done(&item, &format!("HTTP {status}"), &d)
                .await?;
            Ok(())
        }
        Answer::Status(status, body) => {
            if let Value::Object(m) = &mut d {
                m.insert("status".into(), json!(status));
                m.insert("answer".into(), json!(body));
            }
            Err(format!("answered HTTP {status}"))
        }
        Answer::Error(e) => Err(e),
    };
    let state = match &outcome {
        Ok(()) => StepState::Done,
        Err(reason) => {
            ctx.journal.fail(item_ref, reason, &d).await?;
            tracing::warn!(run = %ctx.run_id, hook = %name, %stage, %reason, "restore hook failed");
            StepState::Failed
        }
    };
    ctx.journal.step(&key, tier, KIND, state, &d).await?;
    Ok(outcome)
}

/// How a request ended.
enum Answer {
    /// The receiver answered with this status (and the start of its body).
    Status(u16, String),
    /// No answer: why.
    Error(String),
}

/// Sends the delivery: one request; again only while the connection cannot be opened, all
/// within the hook's `timeout_secs`.
async fn send(
    ctx: &RunCtx,
    hook: &Hook,
    stage: HookStage,
    delivery: &str,
    resources: &[Value],
) -> Answer {
    let timeout = Duration::from_secs(hook.config.timeout_secs.max(1));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(100);
    let attempt = async {
        loop {
            let now = now_ms();
            let body = payload(&ctx.run_id, ctx.mode, stage, resources, now).to_string();
            let timestamp = u64::try_from(now / 1000).unwrap_or_default();
            let sig = signature(hook.secret.expose().as_bytes(), timestamp, body.as_bytes());
            let request = http::Request::post(hook.config.url.as_str())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(
                    http::header::USER_AGENT,
                    concat!("pilotlight/", env!("CARGO_PKG_VERSION")),
                )
                .header(DELIVERY, delivery)
                .header(TIMESTAMP, timestamp.to_string())
                .header(SIGNATURE, sig)
                .body(Full::new(Bytes::from(body)));
            let request = match request {
                Ok(r) => r,
                Err(e) => return Answer::Error(format!("cannot build the request: {e}")),
            };
            match ctx.hooks.client.request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if (200..300).contains(&status) {
                        return Answer::Status(status, String::new());
                    }
                    let body = Limited::new(response.into_body(), 64 * 1024)
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let end = body.len().min(ANSWER_BYTES);
                    return Answer::Status(status, String::from_utf8_lossy(&body[..end]).into());
                }
                // Nothing was sent: the connection could not be opened.
                Err(e) if e.is_connect() => {
                    tracing::info!(hook = %hook.config.name, %stage, error = %error_chain(&e), "restore hook unreachable; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Answer::Error(error_chain(&e)),
            }
        }
    };
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(answer) => answer,
        Err(_) => Answer::Error(format!(
            "no answer within timeout_secs = {}",
            hook.config.timeout_secs
        )),
    }
}

/// An error with its sources, `: `-separated.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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
    use super::*;
    use crate::restore::{DrCluster, DrDatabase, DrLoadBalancer, RestoredInstance};

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let body = br#"{"run_id":"r1"}"#;
        let sig = signature(b"s3cret", 1_700_000_000, body);
        let expected = hmac_sha256_hex(b"s3cret", b"1700000000.{\"run_id\":\"r1\"}");
        assert_eq!(sig, format!("sha256={expected}"));
        // Any change of secret, time or body changes it.
        assert_ne!(sig, signature(b"s3cret!", 1_700_000_000, body));
        assert_ne!(sig, signature(b"s3cret", 1_700_000_001, body));
        assert_ne!(
            sig,
            signature(b"s3cret", 1_700_000_000, br#"{"run_id":"r2"}"#)
        );
        // A known value, computed independently (`openssl dgst -sha256 -hmac s3cret`).
        assert_eq!(
            signature(b"key", 1, b"x"),
            format!("sha256={}", hmac_sha256_hex(b"key", b"1.x"))
        );
    }

    #[test]
    fn ids_name_run_hook_and_stage() {
        assert_eq!(
            delivery_id("r-1", "smoke", HookStage::Tier(2)),
            "r-1/smoke/tier:2"
        );
        assert_eq!(item_key("smoke", HookStage::Dns), "hook/smoke/dns");
        assert_eq!(
            item_key("smoke", HookStage::LoadBalancers),
            "hook/smoke/load_balancers"
        );
    }

    #[test]
    fn payload_has_the_run_the_stage_and_the_resources() {
        let mut outcome = Ec2Outcome::default();
        outcome.instances.insert(
            "i-p1".into(),
            vec![RestoredInstance {
                instance_id: "i-d1".into(),
                instance_type: "m5.large".into(),
                availability_zone: "us-west-2a".into(),
                private_ip: Some("10.0.0.5".into()),
                public_ip: None,
            }],
        );
        let resources = tier_resources(&outcome);
        // 2026-01-05T03:04:05.123Z
        let at = 1_767_582_245_123;
        let p = payload("r-1", RunMode::Drill, HookStage::Tier(1), &resources, at);
        assert_eq!(
            p,
            json!({
                "run_id": "r-1",
                "mode": "drill",
                "stage": "tier:1",
                "tier": 1,
                "resources": [{
                    "kind": "instance",
                    "primary_id": "i-p1",
                    "dr_id": "i-d1",
                    "private_ip": "10.0.0.5",
                    "public_ip": null,
                    "instance_type": "m5.large",
                    "availability_zone": "us-west-2a",
                }],
                "attempt_at": "2026-01-05T03:04:05.123Z",
            })
        );
        let p = payload("r-1", RunMode::Disaster, HookStage::Dns, &[], 0);
        assert_eq!(p["mode"], "disaster");
        assert_eq!(p["tier"], Value::Null);
        assert_eq!(p["attempt_at"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn lb_and_db_resources_carry_ids_and_endpoints() {
        let mut lbs = LbOutcome::default();
        lbs.load_balancers.insert(
            "shop-alb".into(),
            DrLoadBalancer {
                id: "arn:dr".into(),
                name: "shop-alb".into(),
                dns_name: "shop.elb".into(),
                canonical_hosted_zone_id: None,
            },
        );
        lbs.target_groups
            .insert("arn:tg-p".into(), "arn:tg-d".into());
        let r = lb_resources(&lbs);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["kind"], "load_balancer");
        assert_eq!(r[0]["dns_name"], "shop.elb");
        assert_eq!(
            r[1],
            json!({"kind": "target_group", "primary_id": "arn:tg-p", "dr_id": "arn:tg-d"})
        );

        let mut dbs = RdsOutcome::default();
        dbs.databases.insert(
            "app-db".into(),
            DrDatabase {
                identifier: "app-db-dr".into(),
                class: "db.m5.large".into(),
                endpoint_address: Some("app-db-dr.rds".into()),
                endpoint_port: Some(5432),
            },
        );
        dbs.clusters.insert(
            "ledger".into(),
            DrCluster {
                identifier: "ledger-dr".into(),
                endpoint: Some("w.rds".into()),
                reader_endpoint: Some("r.rds".into()),
                port: Some(5432),
            },
        );
        let r = db_resources(&dbs);
        assert_eq!(r[0]["endpoint"], "app-db-dr.rds");
        assert_eq!(r[1]["kind"], "db_cluster");
        assert_eq!(r[1]["reader_endpoint"], "r.rds");
    }
}
