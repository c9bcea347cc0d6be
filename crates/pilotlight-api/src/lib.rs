//! The admin API (P3) and the Prometheus listener (P4).
//!
//! [`router`] builds the admin API as a plain axum `Router` over an [`ApiState`], so tests drive
//! it with `oneshot` and the daemon serves it with [`serve`]. Every `/v1` route needs a bearer
//! token whose [`Role`](pilotlight_core::config::Role) is high enough (401 without a known
//! token, 403 with too low a role); `/healthz` and `/readyz` are open for probes, and
//! `/v1/openapi.json` (the API's OpenAPI document, `docs/openapi.json`) is open too. Errors are
//! JSON `{"error": {"code", "message"}}`; bodies above the configured size get 413 and requests
//! over the time limit 408. Restore runs are declared, approved, cancelled and followed under
//! `/v1/restores` (see `restores.rs` for the routes and their answers). Routes are declared
//! once, in the `api_routes!` table below, which yields both the router and [`ROUTES`];
//! `openapi.rs` tests that the document and that table agree. [`metrics_router`] serves
//! `/metrics` on its own listener.

mod auth;
mod error;
mod estate;
mod openapi;
mod restores;
mod routes;
#[cfg(test)]
mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use pilotlight_engine::SchedulerHandle;
use pilotlight_engine::leader::LeaderState;
use pilotlight_engine::status::StatusBoard;
use pilotlight_store::Store;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

pub use auth::{Principal, TokenEntry, TokenTable};
pub use error::ApiError;

/// Facts about this daemon shown in `/v1/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DaemonInfo {
    pub version: &'static str,
    pub primary_region: String,
    pub dr_region: String,
    pub store_backend: &'static str,
    /// `drill.schedule` when drills are scheduled (a cron expression, UTC).
    pub drill_schedule: Option<String>,
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub tokens: Arc<TokenTable>,
    pub leader: LeaderState,
    pub status: StatusBoard,
    /// Present while this replica leads and runs the scheduler.
    pub scheduler: Arc<std::sync::RwLock<Option<SchedulerHandle>>>,
    /// The copy reconcilers' latest per-resource RPO picture.
    pub rpo: pilotlight_engine::copy::RpoBoard,
    /// Plans from the inventory document and the store.
    pub planner: pilotlight_engine::estate::Planner,
    /// The latest readiness evaluation.
    pub readiness: pilotlight_engine::estate::ReadinessBoard,
    /// The S3 replication watch.
    pub s3: pilotlight_engine::estate::S3Board,
    /// Restore runs: declare, approve, cancel, list (D1).
    pub restores: pilotlight_engine::restore::RestoreService,
    pub info: DaemonInfo,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("info", &self.info)
            .finish()
    }
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// Declares the admin API's routes once: [`ROUTES`] (what the OpenAPI document is checked
/// against) and the router's `.route` calls are both expanded from this one table.
macro_rules! api_routes {
    ($($path:literal => $method:ident($handler:path) $(. $more:ident($more_handler:path))* ;)*) => {
        /// Every route of the admin API with its methods (lower case), exactly as [`router`]
        /// serves them. `docs/openapi.json` must document each (tested in `openapi.rs`).
        pub const ROUTES: &[(&str, &[&str])] = &[
            $(($path, &[stringify!($method) $(, stringify!($more))*])),*
        ];

        fn add_routes(router: Router<ApiState>) -> Router<ApiState> {
            router $(.route($path, $method($handler) $(. $more($more_handler))*))*
        }
    };
}

// Add a route here, never with `.route` in `router`, and document it in docs/openapi.json.
api_routes! {
    "/healthz" => get(routes::healthz);
    "/readyz" => get(routes::readyz);
    "/v1/openapi.json" => get(openapi::document);
    "/v1/status" => get(routes::status);
    "/v1/mappings" => get(routes::mappings);
    "/v1/reconcilers/{name}/run" => post(routes::run_reconciler);
    "/v1/audit" => get(routes::audit);
    "/v1/copies" => get(routes::copies);
    "/v1/rpo" => get(routes::rpo);
    "/v1/inventory" => get(estate::inventory);
    "/v1/plan" => get(estate::plan);
    "/v1/restores" => post(restores::declare).get(restores::list);
    "/v1/restores/{id}" => get(restores::get);
    "/v1/restores/{id}/approve" => post(restores::approve);
    "/v1/restores/{id}/cancel" => post(restores::cancel);
    "/v1/drills" => get(restores::drills);
    "/v1/readiness" => get(estate::readiness);
    "/v1/s3" => get(estate::s3);
    "/v1/tenants" => get(estate::tenants);
    "/v1/tenants/{name}" => put(estate::put_tenant).delete(estate::delete_tenant);
}

/// Builds the admin API.
pub fn router(state: ApiState, limits: ApiLimits) -> Router {
    add_routes(Router::new())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .with_state(state)
}

/// Builds the `/metrics` router over a registry.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(routes::metrics))
        .with_state(registry)
}

/// Serves `app` on `listener` until `shutdown` fires, then finishes in-flight requests.
///
/// # Errors
/// The server's I/O error.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// Builds the token table from `(name, role, token)` triples.
pub fn auth_table(
    tokens: impl IntoIterator<
        Item = (
            String,
            pilotlight_core::config::Role,
            pilotlight_core::secret::Secret,
        ),
    >,
) -> TokenTable {
    TokenTable::new(
        tokens
            .into_iter()
            .map(|(name, role, token)| auth::TokenEntry { name, role, token })
            .collect(),
    )
}
