//! The admin API's contract: auth by role, JSON errors, body limits, audit.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Result, ensure};
use async_trait_free::Noop;
use pilotlight_api::{ApiLimits, ApiState, DaemonInfo, auth_table};
use pilotlight_core::config::Role;
use pilotlight_core::secret::Secret;
use pilotlight_engine::leader::LeaderState;
use pilotlight_engine::metrics::EngineMetrics;
use pilotlight_engine::{Reconciler, Scheduler, StatusBoard};
use pilotlight_store::{Store, StoreOptions};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::http;

mod async_trait_free {
    //! A reconciler that does nothing, to give the API a scheduler to trigger.
    use pilotlight_engine::scheduler::{Action, Reconciled};
    use pilotlight_engine::{ReconcileError, Reconciler};
    use tokio_util::sync::CancellationToken;

    pub struct Noop;

    #[pilotlight_engine::async_trait]
    impl Reconciler for Noop {
        fn name(&self) -> &'static str {
            "noop"
        }
        fn keys(&self) -> Vec<String> {
            vec!["k".into()]
        }
        async fn reconcile(
            &self,
            _: &str,
            _: &CancellationToken,
        ) -> Result<Reconciled, ReconcileError> {
            Ok(Reconciled {
                action: Action::requeue(std::time::Duration::from_secs(3600)),
                report: serde_json::Value::Null,
            })
        }
        fn error_policy(&self, _: &str, _: &ReconcileError, _: u32) -> Action {
            Action::requeue(std::time::Duration::from_secs(60))
        }
    }
}

async fn serve() -> Result<(std::net::SocketAddr, Store, CancellationToken)> {
    let store = Store::connect("sqlite::memory:", &StoreOptions::default()).await?;
    store.migrate().await?;
    let status = StatusBoard::default();
    let reconcilers: Vec<Arc<dyn Reconciler>> = vec![Arc::new(Noop)];
    let (scheduler, handle) = Scheduler::new(
        reconcilers,
        1,
        EngineMetrics::unregistered(),
        status.clone(),
    );
    let stop = CancellationToken::new();
    tokio::spawn(scheduler.run(stop.clone()));
    // The estate routes never reach AWS in these tests: the endpoint is a closed port.
    let sdk = pilotlight_aws::sdk::static_sdk_config("http://127.0.0.1:9", "us-west-2").await;
    let ctx = crate::support::aws_ctx();
    let readiness = pilotlight_engine::estate::ReadinessBoard::default();
    let planner = pilotlight_engine::estate::Planner::new(
        store.clone(),
        pilotlight_aws::s3::DrS3::with_path_style(&sdk, ctx, true),
        pilotlight_engine::estate::InventoryBoard::default(),
        readiness.clone(),
        Arc::new(pilotlight_core::config::Config::default()),
    );
    let state = ApiState {
        store: store.clone(),
        tokens: Arc::new(auth_table([
            ("vera".to_owned(), Role::Viewer, Secret::new("v-token")),
            ("otto".to_owned(), Role::Operator, Secret::new("o-token")),
        ])),
        leader: LeaderState::default(),
        status,
        scheduler: Arc::new(RwLock::new(Some(handle))),
        rpo: pilotlight_engine::copy::RpoBoard::default(),
        restores: pilotlight_engine::restore::RestoreService::new(
            store.clone(),
            planner.clone(),
            Arc::new(pilotlight_core::config::RestoreConfig::default()),
            pilotlight_engine::restore::RestoreMode::default(),
            Arc::new(tokio::sync::Notify::new()),
        ),
        planner,
        readiness,
        s3: pilotlight_engine::estate::S3Board::default(),
        info: DaemonInfo {
            version: "test",
            primary_region: "us-east-1".into(),
            dr_region: "us-west-2".into(),
            store_backend: "sqlite",
            drill_schedule: None,
        },
    };
    let app = pilotlight_api::router(
        state,
        ApiLimits {
            max_body_bytes: 1024,
            request_timeout: Duration::from_secs(5),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(pilotlight_api::serve(listener, app, stop.clone()));
    Ok((addr, store, stop))
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn auth_roles_and_json_errors() -> Result<()> {
    let (addr, _store, stop) = serve().await?;
    let run = "/v1/reconcilers/noop/run";

    let (s, _) = http(addr, "GET", "/healthz", None, None).await?;
    ensure!(s == 200);

    let (s, b) = http(addr, "GET", "/v1/status", None, None).await?;
    ensure!(
        s == 401 && json(&b)["error"]["code"] == "unauthorized",
        "{s} {b}"
    );
    let (s, _) = http(addr, "GET", "/v1/status", Some("nope"), None).await?;
    ensure!(s == 401);
    let (s, b) = http(addr, "GET", "/v1/status", Some("v-token"), None).await?;
    ensure!(
        s == 200 && json(&b)["daemon"]["dr_region"] == "us-west-2",
        "{s} {b}"
    );

    let (s, b) = http(
        addr,
        "POST",
        run,
        Some("v-token"),
        Some(r#"{"reason":"x"}"#),
    )
    .await?;
    ensure!(
        s == 403 && json(&b)["error"]["code"] == "forbidden",
        "{s} {b}"
    );

    let (s, b) = http(addr, "POST", run, Some("o-token"), Some(r#"{"reason": "#)).await?;
    ensure!(s == 400, "malformed JSON should be 400, got {s} {b}");
    let msg = json(&b)["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        msg.contains("parse") || msg.contains("EOF"),
        "400 without a reason: {b}"
    );

    let (s, b) = http(addr, "POST", run, Some("o-token"), Some(r#"{"reasn":"x"}"#)).await?;
    ensure!(
        (400..500).contains(&s)
            && json(&b)["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("reasn")),
        "{s} {b}"
    );

    let big = format!(r#"{{"reason":"{}"}}"#, "x".repeat(4096));
    let (s, b) = http(addr, "POST", run, Some("o-token"), Some(&big)).await?;
    ensure!(
        s == 413 && json(&b)["error"]["code"] == "payload_too_large",
        "{s} {b}"
    );

    let (s, b) = http(
        addr,
        "POST",
        "/v1/reconcilers/nope/run",
        Some("o-token"),
        Some(r#"{"reason":"x"}"#),
    )
    .await?;
    ensure!(s == 404, "{s} {b}");

    let (s, b) = http(
        addr,
        "POST",
        run,
        Some("o-token"),
        Some(r#"{"reason":"drill prep"}"#),
    )
    .await?;
    ensure!(s == 202, "{s} {b}");
    let (s, b) = http(addr, "GET", "/v1/audit", Some("v-token"), None).await?;
    let items = json(&b)["items"].as_array().cloned().unwrap_or_default();
    ensure!(
        s == 200
            && items.len() == 1
            && items[0]["principal"] == "otto"
            && items[0]["action"] == "reconciler.run",
        "{b}"
    );

    let (s, b) = http(addr, "GET", "/no/such/route", Some("v-token"), None).await?;
    ensure!(
        s == 404 && json(&b)["error"]["code"] == "not_found",
        "{s} {b}"
    );

    // No lease check has happened in this harness: not ready, and it says why.
    let (s, b) = http(addr, "GET", "/readyz", None, None).await?;
    ensure!(
        s == 503 && b.contains("leader lease not checked"),
        "{s} {b}"
    );
    stop.cancel();
    Ok(())
}
