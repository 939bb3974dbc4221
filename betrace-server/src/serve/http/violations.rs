//! Violations routes (SERVER.md §1 "Violations API").
//!
//! In: query filters (`ruleId`, `severity`, `traceId`, `startTime`, `endTime` as Unix seconds
//! or RFC 3339, `limit`, `cursor`, `format=csv`, `includeSuperseded`; snake_case names too).
//! Out: violations newest first with a cursor to the next page, as JSON or CSV; one violation
//! with `verified` and `state`.
//!
//! The parsing of the filters ([`limit_param`], [`severity_filter`], [`trace_id_param`],
//! [`time_param`]) is shared with the `/api/violations…` routes of the earlier clients
//! ([`super::compat`]) and `GET /api/traces/{traceId}`.
//!
//! A listing shows the live answer only: violations superseded or retracted after a
//! re-evaluation of their trace, and retraction records, are left out unless
//! `includeSuperseded=true`, which lists every record with `state` (`live`, `superseded`,
//! `retracted`, `retraction`) and, when replaced, `supersededBy`. These two keys, like
//! `verified`, are not part of the signed record: remove them before checking a signature.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use betrace_core::{Severity, TraceId};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rules::severity_param;
use super::{ApiError, AppState, blocking};
use crate::serve::storage::{StoredViolation, ViolationQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_violations))
        .routes(routes!(get_violation))
}

fn param<'a>(q: &'a HashMap<String, String>, camel: &str, snake: &str) -> Option<&'a str> {
    q.get(camel)
        .or_else(|| q.get(snake))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// A time as Unix seconds (a fraction allowed) or RFC 3339, in Unix nanoseconds.
pub fn time_param(name: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
    {
        return Ok((secs * 1e9) as i64);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter `{name}`: `{v}` is neither Unix seconds nor an RFC 3339 time"
            ))
        })
}

/// A trace id: 32 hex digits, either case.
pub fn trace_id_param(v: &str) -> Result<TraceId, ApiError> {
    v.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "query parameter `traceId`: `{v}` is not 32 hexadecimal digits"
        ))
    })
}

/// The page size `limit`: 1 to 1000, 100 when absent.
pub fn limit_param(v: Option<&str>) -> Result<usize, ApiError> {
    match v {
        None => Ok(100),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "query parameter `limit`: `{v}` is not a number from 1 to 1000"
            ))),
        },
    }
}

/// A `severity` filter, any case.
pub fn severity_filter(v: Option<&str>) -> Result<Option<Severity>, ApiError> {
    v.map(severity_param).transpose()
}

fn query_of(q: &HashMap<String, String>) -> Result<ViolationQuery, ApiError> {
    let limit = limit_param(param(q, "limit", "limit"))?;
    let before_seq = param(q, "cursor", "cursor")
        .map(|c| {
            c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter `cursor`: `{c}` is not a cursor returned as `nextCursor`"
                ))
            })
        })
        .transpose()?;
    Ok(ViolationQuery {
        rule_id: param(q, "ruleId", "rule_id").map(str::to_owned),
        severity: severity_filter(param(q, "severity", "severity"))?,
        trace_id: param(q, "traceId", "trace_id")
            .map(trace_id_param)
            .transpose()?,
        start_ns: param(q, "startTime", "start_time")
            .map(|v| time_param("startTime", v))
            .transpose()?,
        end_ns: param(q, "endTime", "end_time")
            .map(|v| time_param("endTime", v))
            .transpose()?,
        before_seq,
        limit,
        all_states: match param(q, "includeSuperseded", "include_superseded") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "query parameter `includeSuperseded`: `{other}` is not true or false"
                )));
            }
        },
    })
}

/// The columns of `format=csv`: the keys of the record, then its `state` (also without
/// `includeSuperseded`).
const CSV_COLUMNS: [&str; 14] = [
    "id",
    "createdAt",
    "ruleId",
    "ruleName",
    "ruleVersion",
    "severity",
    "traceId",
    "spanId",
    "failedClause",
    "completionReason",
    "partial",
    "message",
    "signature",
    "state",
];

fn csv_of(rows: &[Value]) -> Result<String, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| ApiError::internal(format!("cannot write CSV: {e}"));
    w.write_record(CSV_COLUMNS).map_err(err)?;
    for v in rows {
        let fields: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| match &v[*c] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        w.write_record(&fields).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::internal(format!("cannot write CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|_| ApiError::internal("CSV is not UTF-8"))
}

/// Lists violations, newest first.
#[utoipa::path(get, path = "/v1/violations", tag = "violations",
    params(
        ("ruleId" = Option<String>, Query, description = "Only this rule (also rule_id)"),
        ("severity" = Option<String>, Query, description = "CRITICAL, HIGH, MEDIUM or LOW"),
        ("traceId" = Option<String>, Query, description = "32 hex digits (also trace_id)"),
        ("startTime" = Option<String>, Query, description = "Created at or after: Unix seconds or RFC 3339 (also start_time)"),
        ("endTime" = Option<String>, Query, description = "Created at or before (also end_time)"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
        ("includeSuperseded" = Option<bool>, Query, description = "Also superseded and retracted violations and retraction records, each with `state` (also include_superseded)"),
    ),
    responses(
        (status = 200, description = "`{violations: [...], nextCursor}`, or CSV with a header row"),
        (status = 400, description = "A bad parameter"),
    ))]
pub async fn list_violations(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let query = query_of(&q)?;
    let annotate = query.all_states;
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "query parameter `format`: `{other}` is not json or csv"
            )));
        }
    };
    let store = Arc::clone(&st.store);
    let (rows, more) = blocking(move || store.list_violations(&query)).await??;
    let next = if more {
        rows.last().map(|r| Value::String(r.seq.to_string()))
    } else {
        None
    };
    let values: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            if annotate || csv {
                annotated(r)
            } else {
                r.json
            }
        })
        .collect();
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv_of(&values)?,
        )
            .into_response());
    }
    Ok(Json(json!({
        "violations": values,
        "nextCursor": next.unwrap_or(Value::Null),
    }))
    .into_response())
}

/// One violation with `verified`: whether its signature holds under the server's key.
#[utoipa::path(get, path = "/v1/violations/{id}", tag = "violations",
    params(("id" = String, Path, description = "Violation id (UUID)")),
    responses(
        (status = 200, description = "The violation with `verified` and `state` (and `supersededBy` when replaced)"),
        (status = 400, description = "Not a UUID"),
        (status = 404, description = "No such violation"),
    ))]
pub async fn get_violation(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::bad_request(format!(
            "`{id}` is not a violation id (a UUID)"
        )));
    }
    let store = Arc::clone(&st.store);
    let lookup = id.clone();
    let found = blocking(move || store.get_violation(&lookup)).await??;
    let Some(v) = found else {
        return Err(ApiError::not_found(format!("no violation with id `{id}`")));
    };
    let verified = betrace_core::sign::verify_json(&v.json, &st.signing_key);
    let mut json = annotated(v);
    json["verified"] = Value::Bool(verified);
    Ok(Json(json))
}

/// The record with `state` and, when replaced, `supersededBy`.
fn annotated(v: StoredViolation) -> Value {
    let mut json = v.json;
    json["state"] = Value::String(v.state.as_str().to_owned());
    if let Some(by) = v.superseded_by {
        json["supersededBy"] = Value::String(by);
    }
    json
}
