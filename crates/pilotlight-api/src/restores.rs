//! Restore runs (SPEC D1, D11): declare, approve, cancel, list and follow them.
//!
//! | Route | Role | Answers |
//! |---|---|---|
//! | `POST /v1/restores` | operator | 201 a new run, 200 the run of a repeated `Idempotency-Key`, 200 a dry run's plan, 409 `restore_active`, 422 `idempotency_key_reused`, 400 a bad mode, tier or tenant, 503 `no_inventory` |
//! | `POST /v1/restores/{id}/approve` | approver | 200 the run, now `pending`; 403 `same_principal`; 409 `not_awaiting_approval` |
//! | `POST /v1/restores/{id}/cancel` | operator | 200 the run, now `cancelled`; 409 `run_finished` |
//! | `GET /v1/restores` | viewer | `{"runs": [run…]}`, newest first (`?limit=`, default 50) |
//! | `GET /v1/restores/{id}` | viewer | the run and `"report"`, its progress (per-tier timeline, counts, substitutions, calls, RTO); `?plan=true` adds `"plan"`, the plan it executes |
//!
//! Every answer about one run is `{"run": {…}, …}`; the run object holds `id`, `mode`,
//! `state`, `dry_run`, `tiers`, `requested_by`, `approved_by`, `idempotency_key`,
//! `created_at_ms`, `started_at_ms`, `finished_at_ms`, `error` (not the stored plan). A
//! declaration adds `created` and `problems` (resources of the plan lacking a DR counterpart —
//! the run is declared anyway, the operator decides). A dry run answers
//! `{"mode", "dry_run": true, "plan"}`. Unknown runs are 404.
//! Every action is written to the audit log (`restore.declare`, `restore.dry_run`,
//! `restore.approve`, `restore.cancel`) with the principal and its role.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use pilotlight_core::config::Role;
use pilotlight_engine::restore::{DeclareRequest, Declared, RestoreServiceError};
use pilotlight_store::{RestoreRun, RunMode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::estate::{audit, plan_error};
use crate::routes::ApiJson;

/// The header that makes a declaration idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 255;

/// The body of `POST /v1/restores`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclareBody {
    /// `disaster` or `drill`.
    mode: String,
    /// Tiers to restore (empty: all).
    #[serde(default)]
    tiers: Vec<u8>,
    /// Tenants to restore (empty: the whole estate).
    #[serde(default)]
    tenants: Vec<String>,
    /// Return the plan without touching AWS.
    #[serde(default)]
    dry_run: bool,
}

fn service_error(e: RestoreServiceError) -> ApiError {
    let message = e.to_string();
    match e {
        RestoreServiceError::Plan(e) => plan_error(e),
        RestoreServiceError::Active { .. } => {
            ApiError::new(StatusCode::CONFLICT, "restore_active", message)
        }
        RestoreServiceError::IdempotencyMismatch { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            message,
        ),
        RestoreServiceError::NotFound { .. } => ApiError::not_found(message),
        RestoreServiceError::NotAwaitingApproval { .. } => {
            ApiError::new(StatusCode::CONFLICT, "not_awaiting_approval", message)
        }
        RestoreServiceError::SamePrincipal { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "same_principal", message)
        }
        RestoreServiceError::Finished { .. } => {
            ApiError::new(StatusCode::CONFLICT, "run_finished", message)
        }
        RestoreServiceError::Encode(ref inner) => ApiError::internal("encoding the plan", inner),
        RestoreServiceError::Store(ref inner) => {
            ApiError::internal("reading or writing restore runs", inner)
        }
    }
}

/// A run as the API shows it: the stored row without its (large) plan, tiers as a list.
pub fn run_json(run: &RestoreRun) -> Value {
    let tiers: Value = serde_json::from_str(&run.tiers_json).unwrap_or_else(|_| json!([]));
    json!({
        "id": run.id,
        "mode": run.mode,
        "state": run.state,
        "dry_run": run.dry_run,
        "tiers": tiers,
        "requested_by": run.requested_by,
        "approved_by": run.approved_by,
        "idempotency_key": run.idempotency_key,
        "created_at_ms": run.created_at_ms,
        "started_at_ms": run.started_at_ms,
        "finished_at_ms": run.finished_at_ms,
        "error": run.error,
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters without spaces"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// `POST /v1/restores`: declares a run (or answers a dry run's plan).
pub async fn declare(
    principal: Principal,
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DeclareBody>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let mode: RunMode = body.mode.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "mode {:?} is not one of \"disaster\", \"drill\"",
            body.mode
        ))
    })?;
    let key = idempotency_key(&headers)?;
    let request = DeclareRequest {
        mode,
        tiers: body.tiers,
        tenants: body.tenants,
        dry_run: body.dry_run,
    };
    let scope = json!({"tiers": request.tiers, "tenants": request.tenants});
    let declared = state
        .restores
        .declare(&principal.name, request, key.as_deref())
        .await
        .map_err(service_error)?;
    match declared {
        Declared::DryRun(plan) => {
            audit(
                &state,
                &principal,
                "restore.dry_run",
                mode.as_str(),
                json!({
                    "scope": scope,
                    "inventory_version": plan.inventory_version,
                    "estimated_secs": plan.restore.schedule.total_secs,
                    "problems": plan.restore.problems.len(),
                }),
            )
            .await?;
            Ok((
                StatusCode::OK,
                Json(json!({"mode": mode, "dry_run": true, "plan": plan})),
            )
                .into_response())
        }
        Declared::Run {
            run,
            created,
            problems,
        } => {
            audit(
                &state,
                &principal,
                "restore.declare",
                &run.id,
                json!({
                    "mode": run.mode,
                    "scope": scope,
                    "state": run.state,
                    "created": created,
                    "problems": problems,
                    "idempotency_key": key,
                }),
            )
            .await?;
            let answer = json!({
                "run": run_json(&run),
                "created": created,
                "problems": problems,
            });
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(answer)).into_response())
        }
    }
}

/// `POST /v1/restores/{id}/approve` (approver; the two-person rule).
pub async fn approve(
    principal: Principal,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Approver)?;
    let run = state
        .restores
        .approve(&id, &principal.name)
        .await
        .map_err(service_error)?;
    audit(
        &state,
        &principal,
        "restore.approve",
        &run.id,
        json!({"mode": run.mode, "requested_by": run.requested_by}),
    )
    .await?;
    Ok(Json(json!({"run": run_json(&run)})))
}

/// `POST /v1/restores/{id}/cancel` (operator): the executor starts no new work for the run.
pub async fn cancel(
    principal: Principal,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Operator)?;
    let before = state.restores.get(&id).await.map_err(service_error)?;
    let run = state
        .restores
        .cancel(&id, &principal.name)
        .await
        .map_err(service_error)?;
    audit(
        &state,
        &principal,
        "restore.cancel",
        &run.id,
        json!({"mode": run.mode, "state_before": before.state}),
    )
    .await?;
    Ok(Json(json!({"run": run_json(&run)})))
}

/// `?limit=` of `GET /v1/restores`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
}

/// `GET /v1/restores`: runs, newest first.
pub async fn list(
    principal: Principal,
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let runs = state
        .restores
        .list(limit)
        .await
        .map_err(|e| ApiError::internal("listing restore runs", &e))?;
    let runs: Vec<Value> = runs.iter().map(run_json).collect();
    Ok(Json(json!({"runs": runs})))
}

/// `GET /v1/drills`: drills, newest first, each with its RTO overall and per tier, its
/// teardown time and what the teardown left (D12), and the schedule.
pub async fn drills(
    principal: Principal,
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let drills = pilotlight_engine::drill::summaries(state.restores.store(), limit as usize)
        .await
        .map_err(|e| ApiError::internal("listing drills", &e))?;
    let next_at_ms = state.info.drill_schedule.as_deref().and_then(|s| {
        pilotlight_core::cron::Cron::parse(s)
            .ok()?
            .next_after(pilotlight_engine::now_ms())
    });
    Ok(Json(json!({
        "drills": drills,
        "schedule": {"cron": state.info.drill_schedule, "next_at_ms": next_at_ms},
    })))
}

/// `?plan=true` of `GET /v1/restores/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    #[serde(default)]
    plan: bool,
}

/// `GET /v1/restores/{id}`: the run and its progress report.
pub async fn get(
    principal: Principal,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let run = state.restores.get(&id).await.map_err(service_error)?;
    let report = pilotlight_engine::restore::progress::report(state.restores.store(), &run)
        .await
        .map_err(|e| ApiError::internal("reading the run's progress", &e))?;
    let mut answer = json!({"run": run_json(&run), "report": report});
    if q.plan {
        answer["plan"] = serde_json::from_str(&run.plan_json).unwrap_or(Value::Null);
    }
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use pilotlight_core::config::{Config, RestoreConfig, TenantConfig};
    use pilotlight_core::inventory::Inventory;
    use pilotlight_core::scope::{DrState, Scope, select};
    use pilotlight_engine::estate::{PlanError, PlanView};
    use pilotlight_engine::restore::{PlanSource, RestoreMode, RestoreService};
    use pilotlight_store::{Store, StoreOptions};
    use tower::ServiceExt;

    use super::*;
    use crate::ApiLimits;

    /// Plans an empty estate with one tenant, through the same pure functions as the planner.
    #[derive(Debug)]
    struct EmptyEstate;

    #[pilotlight_engine::async_trait]
    impl PlanSource for EmptyEstate {
        async fn plan(&self, scope: &Scope) -> Result<PlanView, PlanError> {
            let config = Config::default();
            let inventory = Inventory::default();
            let tenants = [TenantConfig {
                name: "acme".into(),
                clusters: vec!["web".into()],
            }];
            let selection = select(&inventory, &tenants, scope)?;
            Ok(PlanView {
                inventory_version: 7,
                inventory_bucket: "dr-bucket".into(),
                inventory_key: "inventory/7.json.gz".into(),
                captured_at_ms: 1,
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

    const VIEWER: &str = "v-token";
    const OPERATOR: &str = "o-token";
    const APPROVER: &str = "a-token";
    const APPROVER2: &str = "b-token";

    struct Api {
        app: axum::Router,
        store: Store,
    }

    async fn api(require_approval: bool) -> Api {
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // The estate routes are not called here: the DR bucket is a closed port.
        let state = crate::testing::state(
            store.clone(),
            &[
                ("vera", Role::Viewer, VIEWER),
                ("otto", Role::Operator, OPERATOR),
                ("anna", Role::Approver, APPROVER),
                ("alex", Role::Approver, APPROVER2),
            ],
            |store, _planner| {
                RestoreService::new(
                    store,
                    EmptyEstate,
                    Arc::new(RestoreConfig {
                        require_approval,
                        ..RestoreConfig::default()
                    }),
                    RestoreMode::default(),
                    Arc::new(tokio::sync::Notify::new()),
                )
            },
        )
        .await;
        let app = crate::router(
            state,
            ApiLimits {
                max_body_bytes: 4096,
                request_timeout: Duration::from_secs(10),
            },
        );
        Api { app, store }
    }

    impl Api {
        async fn call(
            &self,
            method: &str,
            path: &str,
            token: Option<&str>,
            key: Option<&str>,
            body: Option<&str>,
        ) -> (StatusCode, Value) {
            let mut req = Request::builder().method(method).uri(path);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            if let Some(k) = key {
                req = req.header("idempotency-key", k);
            }
            let req = match body {
                Some(b) => req
                    .header("content-type", "application/json")
                    .body(Body::from(b.to_owned())),
                None => req.body(Body::empty()),
            }
            .unwrap();
            let res = self.app.clone().oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }

        async fn declare(&self, token: &str, key: Option<&str>, body: &str) -> (StatusCode, Value) {
            self.call("POST", "/v1/restores", Some(token), key, Some(body))
                .await
        }

        async fn audit_actions(&self) -> Vec<String> {
            self.store
                .list_audit(None, 1000)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect()
        }
    }

    const DISASTER: &str = r#"{"mode": "disaster"}"#;

    #[tokio::test]
    async fn declaring_needs_an_operator() {
        let api = api(false).await;
        let (s, b) = api
            .call("POST", "/v1/restores", None, None, Some(DISASTER))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        let (s, b) = api.declare("wrong", None, DISASTER).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        let (s, b) = api.declare(VIEWER, None, DISASTER).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert_eq!(b["error"]["code"], "forbidden");
        assert!(api.store.list_runs(10).await.unwrap().is_empty());
        assert!(api.audit_actions().await.is_empty());
    }

    #[tokio::test]
    async fn bad_requests_are_400_and_write_nothing() {
        let api = api(false).await;
        for body in [
            r#"{"mode": "sideways"}"#,
            r#"{"mode": "disaster", "tiers": [12]}"#,
            r#"{"mode": "disaster", "tenants": ["nobody"]}"#,
        ] {
            let (s, b) = api.declare(OPERATOR, None, body).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        }
        // Bodies that do not fit the schema: the API's JSON extractor answers 422.
        for body in [
            r#"{"mode": "disaster", "colour": "red"}"#,
            r#"{"mode": "disaster", "tiers": [-1]}"#,
        ] {
            let (s, b) = api.declare(OPERATOR, None, body).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
            assert_eq!(b["error"]["code"], "bad_request");
        }
        let (s, b) = api.declare(OPERATOR, Some("has space"), DISASTER).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(api.store.list_runs(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn dry_run_answers_the_plan_only() {
        let api = api(false).await;
        let (s, b) = api
            .declare(
                OPERATOR,
                Some("k"),
                r#"{"mode": "drill", "dry_run": true, "tiers": [1]}"#,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["dry_run"], true);
        assert_eq!(b["mode"], "drill");
        assert_eq!(b["plan"]["inventory_version"], 7);
        assert!(api.store.list_runs(10).await.unwrap().is_empty());
        assert_eq!(api.audit_actions().await, ["restore.dry_run"]);
    }

    #[tokio::test]
    async fn declare_is_idempotent_and_a_second_disaster_conflicts() {
        let api = api(false).await;
        let (s, first) = api
            .declare(
                OPERATOR,
                Some("key-1"),
                r#"{"mode": "disaster", "tiers": [1, 2]}"#,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{first}");
        assert_eq!(first["run"]["state"], "pending");
        assert_eq!(first["created"], true);
        assert_eq!(first["problems"], 0);
        assert_eq!(first["run"]["tiers"], json!([1, 2]));
        assert_eq!(first["run"]["requested_by"], "otto");
        assert!(first["run"].get("plan_json").is_none());
        let id = first["run"]["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("r-"), "{id}");

        // The same key (tiers written differently): the same run.
        let (s, again) = api
            .declare(
                OPERATOR,
                Some("key-1"),
                r#"{"mode": "disaster", "tiers": [2, 1]}"#,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{again}");
        assert_eq!(again["run"]["id"], id.as_str());
        assert_eq!(again["created"], false);

        // The same key for another request.
        let (s, b) = api
            .declare(OPERATOR, Some("key-1"), r#"{"mode": "drill"}"#)
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["code"], "idempotency_key_reused");

        // Another disaster while this one is active.
        let (s, b) = api.declare(OPERATOR, Some("key-2"), DISASTER).await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "restore_active");
        assert!(b["error"]["message"].as_str().unwrap().contains(&id));
        let (s, _) = api.declare(OPERATOR, None, DISASTER).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(api.store.list_runs(10).await.unwrap().len(), 1);

        // Status shows restore mode and the run.
        let (s, status) = api
            .call("GET", "/v1/status", Some(VIEWER), None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{status}");
        assert_eq!(status["restore_mode"], true);
        assert_eq!(status["active_run"], id.as_str());
        assert_eq!(status["mode"], "restore");

        let actions = api.audit_actions().await;
        assert_eq!(actions, ["restore.declare", "restore.declare"]);
    }

    #[tokio::test]
    async fn approval_needs_a_second_principal_with_the_approver_role() {
        let api = api(true).await;
        // anna (approver) declares: an approver may do what an operator may.
        let (s, run) = api.declare(APPROVER, None, DISASTER).await;
        assert_eq!(s, StatusCode::CREATED, "{run}");
        assert_eq!(run["run"]["state"], "awaiting_approval");
        let approve = format!(
            "/v1/restores/{}/approve",
            run["run"]["id"].as_str().unwrap()
        );

        let (s, b) = api.call("POST", &approve, Some(OPERATOR), None, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "an operator cannot approve: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
        let (s, b) = api.call("POST", &approve, Some(APPROVER), None, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert_eq!(b["error"]["code"], "same_principal");

        let (s, b) = api
            .call("POST", &approve, Some(APPROVER2), None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["run"]["state"], "pending");
        assert_eq!(b["run"]["approved_by"], "alex");
        let (s, b) = api
            .call("POST", &approve, Some(APPROVER2), None, None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "not_awaiting_approval");

        let (s, b) = api
            .call(
                "POST",
                "/v1/restores/r-nope/approve",
                Some(APPROVER2),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(
            api.audit_actions().await,
            ["restore.declare", "restore.approve"]
        );
    }

    #[tokio::test]
    async fn cancel_list_and_get() {
        let api = api(false).await;
        let (_, first) = api.declare(OPERATOR, None, DISASTER).await;
        let id = first["run"]["id"].as_str().unwrap().to_owned();
        let cancel = format!("/v1/restores/{id}/cancel");

        let (s, _) = api.call("POST", &cancel, Some(VIEWER), None, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, b) = api.call("POST", &cancel, Some(OPERATOR), None, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["run"]["state"], "cancelled");
        assert_eq!(b["run"]["error"], "cancelled by otto");
        let (s, b) = api.call("POST", &cancel, Some(OPERATOR), None, None).await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "run_finished");
        let (s, _) = api
            .call(
                "POST",
                "/v1/restores/r-nope/cancel",
                Some(OPERATOR),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Cancelled, the estate is free for the next declaration.
        let (s, second) = api.declare(OPERATOR, None, r#"{"mode": "drill"}"#).await;
        assert_eq!(s, StatusCode::CREATED, "{second}");
        let (s, status) = api
            .call("GET", "/v1/status", Some(VIEWER), None, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(status["restore_mode"], false, "a drill is not restore mode");
        assert_eq!(status["active_run"], second["run"]["id"]);

        let (s, b) = api.call("GET", "/v1/restores", None, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        let (s, b) = api
            .call("GET", "/v1/restores", Some(VIEWER), None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let runs = b["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["id"], second["run"]["id"], "newest first");
        assert_eq!(runs[1]["id"], id.as_str());
        let (s, _) = api
            .call("GET", "/v1/restores?limit=0", Some(VIEWER), None, None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);

        let (s, b) = api
            .call(
                "GET",
                &format!("/v1/restores/{id}"),
                Some(VIEWER),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["run"]["id"], id.as_str());
        assert_eq!(b["run"]["state"], "cancelled");
        assert_eq!(b["report"]["run"]["state"], "cancelled", "{b}");
        assert!(b.get("plan").is_none());
        let (s, b) = api
            .call(
                "GET",
                &format!("/v1/restores/{id}?plan=true"),
                Some(VIEWER),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["plan"]["inventory_version"], 7);
        let (s, b) = api
            .call("GET", "/v1/restores/r-nope", Some(VIEWER), None, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(
            api.audit_actions().await,
            ["restore.declare", "restore.cancel", "restore.declare"]
        );
    }
}
