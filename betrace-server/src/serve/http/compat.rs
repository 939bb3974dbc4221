//! Routes for clients of the earlier BeTrace (SERVER.md §1 "Compatibility routes"):
//! `GET /api/rules` (a bare array), `PATCH /api/rules/{id}` `{"enabled"}`, and
//! `GET /api/violations?from=&to=&severity=` (Unix milliseconds; a bare array in the earlier
//! shape). `/api/v1/rules…` is the rules router mounted under `/api`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rules::{filtered_rules, severity_param};
use super::{ApiError, AppState, Who, blocking, parse_json};
use crate::serve::storage::ViolationQuery;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(legacy_rules))
        .routes(routes!(legacy_toggle))
        .routes(routes!(legacy_violations))
}

/// Every rule, as a bare array.
#[utoipa::path(get, path = "/api/rules", tag = "compatibility",
    responses((status = 200, description = "A bare array of rules")))]
pub async fn legacy_rules(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(Value::Array(filtered_rules(&st, &q)?)))
}

/// Enables or disables a rule: `{"enabled": bool}`.
#[utoipa::path(patch, path = "/api/rules/{id}", tag = "compatibility",
    params(("id" = String, Path, description = "Rule id")),
    request_body(content = Object, description = "`{enabled}`"),
    responses((status = 200, description = "The rule"), (status = 404, description = "No such rule")))]
pub async fn legacy_toggle(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let value = parse_json(&body)?;
    let Some(enabled) = value.get("enabled").and_then(Value::as_bool) else {
        return Err(ApiError::bad_request(
            "expected `{\"enabled\": true|false}`",
        ));
    };
    let reg = Arc::clone(&st.registry);
    Ok(Json(
        blocking(move || reg.set_enabled(&id, enabled, &who.0)).await??,
    ))
}

fn millis(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>()
        .map(|ms| ms.saturating_mul(1_000_000))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter `{name}`: `{v}` is not Unix milliseconds"
            ))
        })
}

/// The earlier violation shape.
fn legacy(v: &Value) -> Value {
    let refs: Vec<Value> = ["triggerSpans", "offendingSpans"]
        .iter()
        .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
        .map(|r| json!({"traceId": r["traceId"], "spanId": r["spanId"], "serviceName": r["service"]}))
        .collect();
    json!({
        "id": v["id"],
        "ruleId": v["ruleId"],
        "ruleName": v["ruleName"],
        "severity": v["severity"],
        "message": v["message"],
        "traceIds": [v["traceId"]],
        "spanReferences": refs,
        "createdAt": v["createdAt"],
        "signature": v["signature"],
    })
}

/// Violations (newest first, at most 1000) in the earlier shape.
#[utoipa::path(get, path = "/api/violations", tag = "compatibility",
    params(
        ("from" = Option<i64>, Query, description = "Created at or after, Unix milliseconds"),
        ("to" = Option<i64>, Query, description = "Created at or before, Unix milliseconds"),
        ("severity" = Option<String>, Query, description = "CRITICAL, HIGH, MEDIUM or LOW"),
    ),
    responses((status = 200, description = "A bare array of `{id, ruleId, ruleName, severity, message, traceIds, spanReferences, createdAt, signature}`")))]
pub async fn legacy_violations(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let query = ViolationQuery {
        severity: get("severity")
            .map(severity_param)
            .transpose()?
            .map(|s| s.as_str().to_owned()),
        start_ns: get("from").map(|v| millis("from", v)).transpose()?,
        end_ns: get("to").map(|v| millis("to", v)).transpose()?,
        limit: 1000,
        ..Default::default()
    };
    let store = Arc::clone(&st.store);
    let (rows, _) = blocking(move || store.list_violations(&query)).await??;
    Ok(Json(Value::Array(
        rows.iter().map(|r| legacy(&r.json)).collect(),
    )))
}
