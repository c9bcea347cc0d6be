//! The handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use pilotlight_core::config::Role;
use pilotlight_engine::scheduler::TriggerError;
use pilotlight_store::NewAuditEntry;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Principal;
use crate::error::ApiError;

/// `Json` whose rejections are this API's JSON errors (400 with the parser's reason, 413 for
/// an oversized body, 415 for a wrong content type).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_request",
    };
    ApiError::new(status, code, rejection.body_text())
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers and the lease has been checked (leading or following).
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let store_ok = state.store.ping().await.is_ok();
    let leader = state.leader.get();
    let mut reasons = Vec::new();
    if !store_ok {
        reasons.push("state store unreachable");
    }
    if !leader.checked {
        reasons.push("leader lease not checked yet");
    }
    let body = json!({
        "ready": reasons.is_empty(),
        "store": store_ok,
        "role": if leader.is_leader { "leader" } else { "follower" },
        "reasons": reasons,
    });
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn status(
    principal: Principal,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let counts = state
        .store
        .mapping_counts()
        .await
        .map_err(|e| ApiError::internal("reading mapping counts", &e))?;
    let mut mappings: BTreeMap<String, BTreeMap<&'static str, i64>> = BTreeMap::new();
    for c in counts {
        mappings
            .entry(c.kind)
            .or_default()
            .insert(c.status.as_str(), c.count);
    }
    // From the store, not this replica's flag: a follower answers the same as the leader.
    let active = state
        .restores
        .active_run()
        .await
        .map_err(|e| ApiError::internal("reading restore runs", &e))?;
    let restore_mode = active
        .as_ref()
        .is_some_and(|r| r.mode == pilotlight_store::RunMode::Disaster);
    Ok(Json(json!({
        "daemon": state.info,
        "mode": if restore_mode { "restore" } else { "pilot_light" },
        "restore_mode": restore_mode,
        "active_run": active.map(|r| r.id),
        "leader": state.leader.get(),
        "reconcilers": state.status.snapshot(),
        "mappings": mappings,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingsQuery {
    kind: Option<String>,
    /// `kind/primary_id` of the last item of the previous page.
    after: Option<String>,
    limit: Option<u32>,
}

pub async fn mappings(
    principal: Principal,
    State(state): State<ApiState>,
    query: Result<Query<MappingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let after = match q.after {
        Some(a) => Some(
            a.split_once('/')
                .map(|(k, id)| (k.to_owned(), id.to_owned()))
                .ok_or_else(|| ApiError::bad_request("after must be <kind>/<primary_id>"))?,
        ),
        None => None,
    };
    let items = state
        .store
        .list_mappings(q.kind.as_deref(), after, limit)
        .await
        .map_err(|e| ApiError::internal("listing mappings", &e))?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|m| format!("{}/{}", m.kind, m.primary_id)))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Why the run was asked for (kept in the audit log).
    reason: String,
}

/// Asks a reconciler to run now (operator). Audited.
pub async fn run_reconciler(
    principal: Principal,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RunRequest>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::bad_request("reason must not be empty"));
    }
    if body.reason.len() > 1024 {
        return Err(ApiError::bad_request(
            "reason is longer than 1024 characters",
        ));
    }
    let handle = state
        .scheduler
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let Some(handle) = handle else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_leader",
            "this replica is not the leader; send the request to the leader",
        ));
    };
    handle.trigger(&name).map_err(|e| match e {
        TriggerError::UnknownReconciler { .. } => ApiError::not_found(e.to_string()),
        TriggerError::QueueFull => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", e.to_string())
        }
        TriggerError::Stopped => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
        }
    })?;
    state
        .store
        .append_audit(&NewAuditEntry {
            at_ms: pilotlight_engine::now_ms(),
            principal: principal.name.clone(),
            role: principal.role.as_str().to_owned(),
            action: "reconciler.run".into(),
            target: name.clone(),
            detail_json: json!({"reason": body.reason}).to_string(),
        })
        .await
        .map_err(|e| ApiError::internal("writing the audit log", &e))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"reconciler": name, "queued": true})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after_id: Option<i64>,
    limit: Option<u32>,
}

pub async fn audit(
    principal: Principal,
    State(state): State<ApiState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = state
        .store
        .list_audit(q.after_id, limit)
        .await
        .map_err(|e| ApiError::internal("reading the audit log", &e))?;
    Ok(Json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopiesQuery {
    kind: Option<String>,
    /// Comma-separated states.
    state: Option<String>,
    tier: Option<i32>,
    limit: Option<u32>,
}

/// Copies tracked in the store (R2–R4), filtered by kind, state and tier.
pub async fn copies(
    principal: Principal,
    State(state): State<ApiState>,
    query: Result<Query<CopiesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let kind = q
        .kind
        .as_deref()
        .map(str::parse::<pilotlight_store::CopyKind>)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let states = q
        .state
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().parse::<pilotlight_store::CopyState>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .unwrap_or_default();
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let mut items = state
        .store
        .list_copies(
            kind,
            &states,
            if q.tier.is_some() { u32::MAX } else { limit },
        )
        .await
        .map_err(|e| ApiError::internal("listing copies", &e))?;
    if let Some(tier) = q.tier {
        items.retain(|c| c.tier == tier);
        items.truncate(limit as usize);
    }
    Ok(Json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpoQuery {
    kind: Option<String>,
    tier: Option<u8>,
    /// Only resources past their RPO target.
    past_target: Option<bool>,
}

/// Per-resource RPO lag (R7), from the copy reconcilers' latest cycle.
pub async fn rpo(
    principal: Principal,
    State(state): State<ApiState>,
    query: Result<Query<RpoQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let items: Vec<_> = state
        .rpo
        .snapshot()
        .into_iter()
        .filter(|r| q.kind.as_deref().is_none_or(|k| r.kind == k))
        .filter(|r| q.tier.is_none_or(|t| r.tier == t))
        .filter(|r| !q.past_target.unwrap_or(false) || r.past_target)
        .collect();
    Ok(Json(json!({"items": items})))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

pub async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
            [(
                http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response(),
    }
}
