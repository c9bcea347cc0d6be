//! Handlers for what a restore would need: `/v1/inventory`, `/v1/plan`, `/v1/readiness`,
//! `/v1/s3` and `/v1/tenants`. Plans are built from the DR bucket's inventory document and the
//! store only. Restore runs themselves (dry runs included) are in [`crate::restores`].

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use pilotlight_core::config::Role;
use pilotlight_core::scope::Scope;
use pilotlight_engine::estate::PlanError;
use pilotlight_store::NewAuditEntry;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::ApiJson;

pub(crate) fn plan_error(e: PlanError) -> ApiError {
    match e {
        PlanError::NoInventory => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_inventory",
            e.to_string(),
        ),
        PlanError::Scope(_) => ApiError::bad_request(e.to_string()),
        PlanError::Store(ref inner) => ApiError::internal("reading the state store", inner),
        PlanError::Read { .. } => ApiError::internal("reading the inventory document", &e),
    }
}

/// Appends an audit entry for `principal`'s `action` on `target`.
pub(crate) async fn audit(
    state: &ApiState,
    principal: &Principal,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<(), ApiError> {
    state
        .store
        .append_audit(&NewAuditEntry {
            at_ms: pilotlight_engine::now_ms(),
            principal: principal.name.clone(),
            role: principal.role.as_str().to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail_json: detail.to_string(),
        })
        .await
        .map(|_| ())
        .map_err(|e| ApiError::internal("writing the audit log", &e))
}

/// `?tenants=a,b&tiers=1,2` of `GET /v1/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    tenants: Option<String>,
    tiers: Option<String>,
}

fn parse_scope(q: &PlanQuery) -> Result<Scope, ApiError> {
    let tenants = q
        .tenants
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut tiers = Vec::new();
    for t in q.tiers.as_deref().unwrap_or("").split(',') {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        let tier: u8 = t
            .parse()
            .map_err(|_| ApiError::bad_request(format!("tier {t:?} is not a number 1 to 9")))?;
        tiers.push(tier);
    }
    Ok(Scope { tenants, tiers })
}

/// `GET /v1/inventory`: the latest document's pointer and counts.
pub async fn inventory(
    principal: Principal,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let latest = state
        .store
        .latest_inventory()
        .await
        .map_err(|e| ApiError::internal("reading the inventory pointer", &e))?;
    let Some(latest) = latest else {
        return Err(plan_error(PlanError::NoInventory));
    };
    let counts: Value = serde_json::from_str(&latest.counts_json).unwrap_or(Value::Null);
    Ok(Json(json!({
        "version": latest.version,
        "schema_version": latest.schema_version,
        "bucket": latest.bucket,
        "key": latest.object_key,
        "sha256": latest.sha256,
        "digest": latest.digest,
        "size_bytes": latest.size_bytes,
        "captured_at_ms": latest.captured_at_ms,
        "counts": counts,
    })))
}

/// `GET /v1/plan`: capacity and restore plans, optionally scoped to tenants and tiers.
pub async fn plan(
    principal: Principal,
    State(state): State<ApiState>,
    query: Result<Query<PlanQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let scope = parse_scope(&q)?;
    let view = state.planner.plan(&scope).await.map_err(plan_error)?;
    Ok(Json(json!(view)))
}

/// `GET /v1/readiness`: the latest evaluation with the failing items named; 503 until the
/// first evaluation.
pub async fn readiness(
    principal: Principal,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    match state.readiness.report() {
        Some(report) => Ok(Json(json!(report))),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_evaluated",
            "readiness has not been evaluated yet",
        )),
    }
}

/// `GET /v1/s3`: the replication watch of every configured bucket.
pub async fn s3(
    principal: Principal,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    Ok(Json(json!({"buckets": state.s3.snapshot()})))
}

/// `GET /v1/tenants`: tenants from the config file and the API.
pub async fn tenants(
    principal: Principal,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let tenants = state
        .planner
        .tenants()
        .await
        .map_err(|e| ApiError::internal("reading tenants", &e))?;
    Ok(Json(json!({"tenants": tenants})))
}

/// The body of `PUT /v1/tenants/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    clusters: Vec<String>,
}

fn check_tenant_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "tenant name {name:?} must be 1 to 128 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn config_owned(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "config_tenant",
        format!("tenant {name:?} is defined in the config file; change it there"),
    )
}

/// `PUT /v1/tenants/{name}`: creates or replaces an API-managed tenant (operator; audited).
pub async fn put_tenant(
    principal: Principal,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TenantBody>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    check_tenant_name(&name)?;
    if body.clusters.is_empty() || body.clusters.iter().any(|c| c.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "clusters must list at least one non-empty cluster name",
        ));
    }
    if state.planner.is_config_tenant(&name) {
        return Err(config_owned(&name));
    }
    let created = state
        .store
        .upsert_tenant(
            &name,
            &body.clusters,
            &principal.name,
            pilotlight_engine::now_ms(),
        )
        .await
        .map_err(|e| ApiError::internal("writing the tenant", &e))?;
    audit(
        &state,
        &principal,
        "tenant.put",
        &name,
        json!({"clusters": body.clusters}),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"name": name, "clusters": body.clusters})),
    )
        .into_response())
}

/// `DELETE /v1/tenants/{name}` (operator; audited).
pub async fn delete_tenant(
    principal: Principal,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    if state.planner.is_config_tenant(&name) {
        return Err(config_owned(&name));
    }
    let existed = state
        .store
        .delete_tenant(&name)
        .await
        .map_err(|e| ApiError::internal("deleting the tenant", &e))?;
    if !existed {
        return Err(ApiError::not_found(format!("no tenant named {name:?}")));
    }
    audit(&state, &principal, "tenant.delete", &name, json!({})).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
