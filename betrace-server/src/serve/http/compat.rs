//! Routes for the clients of the earlier BeTrace (COMPAT.md): the Grafana app, the SigNoz-style
//! app, the Kibana plugin and the MCP server, which call the backend from the browser.
//!
//! Two dialects, each in the shape those clients parse:
//! - `/api/v1/rules…`: the `/v1/rules…` routes, `tags=` a comma list.
//! - `/api/rules…` (bare arrays, `dsl`, lower-case severities), `/api/violations`,
//!   `/api/violations/stats`, `/api/stats`, `/api/metrics/dashboard`.
//!
//! Every error under `/api` keeps the `{"error": {code, message, diagnostics?}}` object and
//! repeats `name` (the code), `message` and `diagnostics` at the top level, where these
//! clients read them. Violation listings, counts and buckets read at most [`MAX_SCAN`] stored
//! violations per request, newest first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::Bounded;
use super::violations::{limit_param, severity_filter};
use super::{ApiError, AppState, Shared, Who, blocking, parse_json};
use crate::serve::config::Limits;
use crate::serve::registry::RuleOpError;
use crate::serve::storage::{Store, StoreError, StoredViolation, ViolationQuery};

/// Most stored violations one request of these routes reads.
pub const MAX_SCAN: usize = 100_000;

const NS_PER_MS: i64 = 1_000_000;
const NS_PER_HOUR: i64 = 3_600_000_000_000;

/// `/api/v1/rules…`: the rules routes.
pub fn v1_router(limits: &Limits) -> OpenApiRouter<AppState> {
    super::rules::router(limits)
}

/// The `/api/...` dialect, bodies up to `server.max_api_body_bytes`.
pub fn router(limits: &Limits) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(legacy_rules, legacy_create))
        .routes(routes!(
            legacy_get,
            legacy_replace,
            legacy_toggle,
            legacy_delete
        ))
        .routes(routes!(legacy_violations))
        .routes(routes!(violation_stats))
        .routes(routes!(stats))
        .routes(routes!(dashboard));
    super::body::bounded(
        routes,
        limits.max_api_body_bytes,
        "server.max_api_body_bytes",
    )
}

/// Tags every `/api` and `/health` operation `compatibility`, and prefixes the operation ids
/// of `/api` ones with `compat_` so that they stay unique beside the `/v1` routes they alias.
pub fn tag_openapi(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        if !api && path != "/health" {
            continue;
        }
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            op.tags = Some(vec!["compatibility".to_owned()]);
            if api
                && let Some(id) = &op.operation_id
                && !id.starts_with("compat_")
            {
                op.operation_id = Some(format!("compat_{id}"));
            }
        }
    }
}

/// Under `/api/`, copies `code`, `message` and `diagnostics` of an error body to its top level
/// (as `name`, `message`, `diagnostics`); every error is covered, 401, 404 and 503 included.
pub async fn errors(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let resp = next.run(req).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return ApiError::internal("cannot read an error body").into_response();
    };
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(err) = value.get("error").cloned() {
        value["name"] = err["code"].clone();
        value["message"] = err["message"].clone();
        if let Some(d) = err.get("diagnostics") {
            value["diagnostics"] = d.clone();
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, Json(value)).into_response()
}

/// The earlier rule shape: `{id, name, description, dsl, enabled, severity (lower case),
/// tags, createdAt, updatedAt}`.
fn legacy_rule(r: &Value) -> Value {
    json!({
        "id": r["id"],
        "name": r["name"],
        "description": r["description"],
        "dsl": r["expression"],
        "enabled": r["enabled"],
        "severity": lower(&r["severity"]),
        "tags": r["tags"],
        "createdAt": r["createdAt"],
        "updatedAt": r["updatedAt"],
    })
}

fn lower(v: &Value) -> Value {
    v.as_str()
        .map_or(Value::Null, |s| Value::String(s.to_ascii_lowercase()))
}

/// A rule body of this dialect in the `/v1/rules` shape: `dsl` is the expression.
fn from_legacy(body: &[u8]) -> Result<Value, ApiError> {
    let value = parse_json(body)?;
    let Value::Object(map) = value else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_rule",
            "expected a JSON object with `dsl`",
        ));
    };
    let map: Map<String, Value> = map
        .into_iter()
        .map(|(k, v)| {
            (
                if k == "dsl" {
                    "expression".to_owned()
                } else {
                    k
                },
                v,
            )
        })
        .collect();
    Ok(Value::Object(map))
}

/// Every rule, as a bare array of the earlier shape.
#[utoipa::path(get, path = "/api/rules", tag = "compatibility",
    params(
        ("enabledOnly" = Option<bool>, Query, description = "Only enabled rules"),
        ("severity" = Option<String>, Query, description = "Any case"),
        ("tags" = Option<String>, Query, description = "Comma list: rules with at least one of these tags"),
    ),
    responses((status = 200, description = "`[{id, name, description, dsl, enabled, severity, tags, createdAt, updatedAt}]`, severity lower case")))]
pub async fn legacy_rules(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let rules = super::rules::filtered_rules(&st, &q)?;
    Ok(Json(rules.iter().map(legacy_rule).collect()))
}

/// Creates a rule from `{name, description, dsl, enabled, severity}` (severity any case).
#[utoipa::path(post, path = "/api/rules", tag = "compatibility",
    request_body(content = Object, description = "`{id?, name, description?, dsl, enabled?, severity?, tags?}`"),
    responses(
        (status = 201, description = "The rule, earlier shape"),
        (status = 400, description = "Invalid rule, or `dsl` does not compile (`message`, `diagnostics`)"),
        (status = 409, description = "Duplicate id"),
    ))]
pub async fn legacy_create(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Bounded(body): Bounded,
) -> Result<Response, ApiError> {
    let value = from_legacy(&body)?;
    let reg = Arc::clone(&st.registry);
    let rule = blocking(move || {
        let rule = reg.parse(&value, None)?;
        reg.create(rule, &who.0)
    })
    .await??;
    Ok((StatusCode::CREATED, Json(legacy_rule(&rule))).into_response())
}

/// One rule, earlier shape.
#[utoipa::path(get, path = "/api/rules/{id}", tag = "compatibility",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "The rule"), (status = 404, description = "No such rule")))]
pub async fn legacy_get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.registry
        .get(&id)
        .map(|r| Json(legacy_rule(&r)))
        .ok_or_else(|| ApiError::not_found(format!("no rule with id `{id}`")))
}

/// Replaces a rule (the body of `POST /api/rules`); `createdAt` kept.
#[utoipa::path(put, path = "/api/rules/{id}", tag = "compatibility",
    params(("id" = String, Path, description = "Rule id")),
    request_body(content = Object, description = "`{name, description?, dsl, enabled?, severity?, tags?}`"),
    responses((status = 200, description = "The rule"), (status = 400, description = "Invalid rule"), (status = 404, description = "No such rule")))]
pub async fn legacy_replace(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Bounded(body): Bounded,
) -> Result<Json<Value>, ApiError> {
    let value = from_legacy(&body)?;
    let reg = Arc::clone(&st.registry);
    let rule = blocking(move || {
        if reg.get(&id).is_none() {
            return Err(RuleOpError::NotFound(id));
        }
        let rule = reg.parse(&value, Some(&id))?;
        reg.replace(rule, &who.0)
    })
    .await??;
    Ok(Json(legacy_rule(&rule)))
}

/// Changes some fields, typically `{"enabled": bool}` (`dsl` for the expression).
#[utoipa::path(patch, path = "/api/rules/{id}", tag = "compatibility",
    params(("id" = String, Path, description = "Rule id")),
    request_body(content = Object, description = "`{enabled}`, or other fields to change"),
    responses((status = 200, description = "The rule, earlier shape"), (status = 404, description = "No such rule")))]
pub async fn legacy_toggle(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Bounded(body): Bounded,
) -> Result<Json<Value>, ApiError> {
    let value = from_legacy(&body)?;
    if let Some(e) = value.get("enabled")
        && !e.is_boolean()
    {
        return Err(ApiError::bad_request(
            "field `enabled`: expected true or false",
        ));
    }
    let reg = Arc::clone(&st.registry);
    let rule = blocking(move || reg.patch(&id, &value, &who.0)).await??;
    Ok(Json(legacy_rule(&rule)))
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/api/rules/{id}", tag = "compatibility",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such rule")))]
pub async fn legacy_delete(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let reg = Arc::clone(&st.registry);
    blocking(move || reg.delete(&id, &who.0)).await??;
    Ok(StatusCode::NO_CONTENT)
}

fn millis(name: &str, v: &str) -> Result<i64, ApiError> {
    v.trim()
        .parse::<i64>()
        .map(|ms| ms.saturating_mul(NS_PER_MS))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter `{name}`: `{v}` is not Unix milliseconds"
            ))
        })
}

fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `timeRange` in nanoseconds.
fn time_range(v: &str) -> Result<i64, ApiError> {
    let hours = match v {
        "1h" => 1,
        "6h" => 6,
        "24h" => 24,
        "7d" => 7 * 24,
        "30d" => 30 * 24,
        other => {
            return Err(ApiError::bad_request(format!(
                "query parameter `timeRange`: `{other}` is not 1h, 6h, 24h, 7d or 30d"
            )));
        }
    };
    Ok(hours * NS_PER_HOUR)
}

fn get<'a>(q: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The store query of `timeRange` (before `to`, default now), `from`, `to` (`from` wins over
/// `timeRange`), `severity`, `rule`; `default_range` (nanoseconds) when neither `from` nor
/// `timeRange` is given.
fn base_query(
    q: &HashMap<String, String>,
    default_range: Option<i64>,
) -> Result<ViolationQuery, ApiError> {
    let range = get(q, "timeRange").map(time_range).transpose()?;
    let from = get(q, "from").map(|v| millis("from", v)).transpose()?;
    let to = get(q, "to").map(|v| millis("to", v)).transpose()?;
    let start = match (from, range.or(default_range)) {
        (Some(f), _) => Some(f),
        (None, Some(r)) => Some(to.unwrap_or_else(now_ns).saturating_sub(r)),
        (None, None) => None,
    };
    Ok(ViolationQuery {
        rule_id: get(q, "rule").map(str::to_owned),
        severity: severity_filter(get(q, "severity"))?,
        start_ns: start,
        end_ns: to,
        ..Default::default()
    })
}

/// The span a violation is about: its first trigger span, else its first offending span (the
/// span of the violation's `spanId`).
fn first_span(v: &Value) -> &Value {
    ["triggerSpans", "offendingSpans"]
        .iter()
        .find_map(|k| v[*k].as_array().and_then(|a| a.first()))
        .unwrap_or(&Value::Null)
}

fn service_of(v: &Value) -> &str {
    first_span(v)["service"].as_str().unwrap_or("")
}

/// The earlier violation shape.
fn legacy_violation(v: &Value) -> Value {
    let span = first_span(v);
    json!({
        "id": v["id"],
        "timestamp": v["createdAt"],
        "traceId": v["traceId"],
        "spanId": v["spanId"],
        "ruleId": v["ruleId"],
        "ruleName": v["ruleName"],
        "severity": lower(&v["severity"]),
        "serviceName": span["service"].as_str().unwrap_or(""),
        "spanName": span["name"].as_str().unwrap_or(""),
        "message": v["message"],
        "metadata": {
            "failedClause": v["failedClause"],
            "completionReason": v["completionReason"],
            "partial": v["partial"],
            "ruleVersion": v["ruleVersion"],
            "signature": v["signature"],
        },
    })
}

/// Reads stored violations newest first, keeping those `keep` accepts, until `want` are kept,
/// none are left, or [`MAX_SCAN`] were read. Returns them and whether the scan stopped at
/// [`MAX_SCAN`] with more left.
fn scan(
    store: &dyn Store,
    mut q: ViolationQuery,
    want: usize,
    keep: impl Fn(&Value) -> bool,
) -> Result<(Vec<StoredViolation>, bool), StoreError> {
    let mut out = Vec::new();
    let mut read = 0usize;
    q.limit = 1000;
    loop {
        let (rows, more) = store.list_violations(&q)?;
        let last = rows.last().map(|r| r.seq);
        for r in rows {
            read += 1;
            if keep(&r.json) {
                out.push(r);
                if out.len() >= want {
                    return Ok((out, false));
                }
            }
        }
        match last {
            Some(last) if more => {
                if read >= MAX_SCAN {
                    return Ok((out, true));
                }
                q.before_seq = Some(last);
            }
            _ => return Ok((out, false)),
        }
    }
}

/// Violations, newest first, as a bare array of the earlier shape.
#[utoipa::path(get, path = "/api/violations", tag = "compatibility",
    params(
        ("timeRange" = Option<String>, Query, description = "1h, 6h, 24h, 7d or 30d before now (or before `to`)"),
        ("from" = Option<i64>, Query, description = "Created at or after, Unix milliseconds (wins over timeRange)"),
        ("to" = Option<i64>, Query, description = "Created at or before, Unix milliseconds"),
        ("severity" = Option<String>, Query, description = "Any case"),
        ("service" = Option<String>, Query, description = "`serviceName` of the violation"),
        ("rule" = Option<String>, Query, description = "Rule id"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, description = "`[{id, timestamp, traceId, spanId, ruleId, ruleName, severity, serviceName, spanName, message, metadata}]`: severity lower case; traceId/spanId/serviceName/spanName of the first trigger (else offending) span"),
        (status = 400, description = "A bad parameter"),
    ))]
pub async fn legacy_violations(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = base_query(&q, None)?;
    let limit = limit_param(get(&q, "limit"))?;
    let service = get(&q, "service").map(str::to_owned);
    let store = Arc::clone(&st.store);
    let (rows, _) = blocking(move || {
        scan(store.as_ref(), query, limit, |v| {
            service.as_deref().is_none_or(|s| service_of(v) == s)
        })
    })
    .await??;
    Ok(Json(
        rows.iter().map(|r| legacy_violation(&r.json)).collect(),
    ))
}

fn interval_ns(v: &str) -> Result<i64, ApiError> {
    match v {
        "1m" => Ok(60_000_000_000),
        "1h" => Ok(NS_PER_HOUR),
        "1d" => Ok(24 * NS_PER_HOUR),
        other => Err(ApiError::bad_request(format!(
            "query parameter `interval`: `{other}` is not 1m, 1h or 1d"
        ))),
    }
}

fn rfc3339(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Violation counts per time bucket and rule, severity or service.
#[utoipa::path(get, path = "/api/violations/stats", tag = "compatibility",
    params(
        ("from" = Option<i64>, Query, description = "Unix milliseconds; default 24 hours before `to`"),
        ("to" = Option<i64>, Query, description = "Unix milliseconds; default now"),
        ("timeRange" = Option<String>, Query, description = "Instead of `from`: 1h, 6h, 24h, 7d or 30d"),
        ("groupBy" = Option<String>, Query, description = "rule (default), severity or service"),
        ("interval" = Option<String>, Query, description = "Bucket width: 1m, 1h (default) or 1d"),
    ),
    responses(
        (status = 200, description = "`{buckets: [{time (RFC 3339, bucket start), key, count}], total, truncated}`, by time then key"),
        (status = 400, description = "A bad parameter"),
    ))]
pub async fn violation_stats(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = base_query(&q, Some(24 * NS_PER_HOUR))?;
    let group = get(&q, "groupBy").unwrap_or("rule").to_owned();
    let key_of: fn(&Value) -> String = match group.as_str() {
        "rule" => |v| v["ruleId"].as_str().unwrap_or("").to_owned(),
        "severity" => |v| v["severity"].as_str().unwrap_or("").to_ascii_lowercase(),
        "service" => |v| service_of(v).to_owned(),
        other => {
            return Err(ApiError::bad_request(format!(
                "query parameter `groupBy`: `{other}` is not rule, severity or service"
            )));
        }
    };
    let width = interval_ns(get(&q, "interval").unwrap_or("1h"))?;
    let store = Arc::clone(&st.store);
    let (rows, truncated) =
        blocking(move || scan(store.as_ref(), query, usize::MAX, |_| true)).await??;
    let mut buckets: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for r in &rows {
        let t = r.created_ns;
        *buckets
            .entry((t - t.rem_euclid(width), key_of(&r.json)))
            .or_default() += 1;
    }
    let list: Vec<Value> = buckets
        .into_iter()
        .map(|((t, key), count)| json!({"time": rfc3339(t), "key": key, "count": count}))
        .collect();
    Ok(Json(json!({
        "buckets": list,
        "total": rows.len(),
        "truncated": truncated,
    })))
}

/// Violations of the last 24 hours by severity (lower case), and how many.
fn last_day(st: &Shared) -> Result<(u64, u64, BTreeMap<String, u64>), ApiError> {
    let now = now_ns();
    let q = ViolationQuery {
        start_ns: Some(now - 24 * NS_PER_HOUR),
        ..Default::default()
    };
    let (rows, _) = scan(st.store.as_ref(), q, usize::MAX, |_| true)?;
    let mut by = BTreeMap::new();
    let mut last_hour = 0;
    for r in &rows {
        *by.entry(
            r.json["severity"]
                .as_str()
                .unwrap_or("")
                .to_ascii_lowercase(),
        )
        .or_default() += 1;
        if r.created_ns >= now - NS_PER_HOUR {
            last_hour += 1;
        }
    }
    Ok((rows.len() as u64, last_hour, by))
}

/// Rule and violation counts.
#[utoipa::path(get, path = "/api/stats", tag = "compatibility",
    responses((status = 200, description = "`{totalRules, activeRules, violations24h}`")))]
pub async fn stats(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rules = st.registry.list();
    let active = rules.iter().filter(|r| r["enabled"] == true).count();
    let s = Arc::clone(&st);
    let (day, _, _) = blocking(move || last_day(&s)).await??;
    Ok(Json(json!({
        "totalRules": rules.len(),
        "activeRules": active,
        "violations24h": day,
    })))
}

/// A summary of rules, violations and ingest for a home page.
#[utoipa::path(get, path = "/api/metrics/dashboard", tag = "compatibility",
    responses((status = 200, description = "`{rules: {total, active, bySeverity}, violations: {last24h, lastHour, bySeverity}, spans: {received, rejected, buffered, buffered_traces}}`; severities lower case")))]
pub async fn dashboard(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rules = st.registry.list();
    let mut by_severity: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rules {
        *by_severity
            .entry(r["severity"].as_str().unwrap_or("").to_ascii_lowercase())
            .or_default() += 1;
    }
    let active = rules.iter().filter(|r| r["enabled"] == true).count();
    let s = Arc::clone(&st);
    let (day, hour, violations_by) = blocking(move || last_day(&s)).await??;
    let m = &st.metrics;
    st.pipeline.sync_metrics();
    Ok(Json(json!({
        "rules": {"total": rules.len(), "active": active, "bySeverity": by_severity},
        "violations": {"last24h": day, "lastHour": hour, "bySeverity": violations_by},
        "spans": {
            "received": m.spans_received_total(),
            "rejected": m.spans_rejected_total(),
            "buffered": m.buffered_spans.get(),
            "bufferedTraces": m.buffered_traces.get(),
        },
    })))
}
