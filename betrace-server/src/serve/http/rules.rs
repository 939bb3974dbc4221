//! Rules routes (SERVER.md §1 "Rules API"): `/v1/rules…`, also served under `/api` for
//! clients of the earlier BeTrace.
//!
//! In: JSON (camelCase) or, for import, a rules file. Out: rules in the API shape
//! (`id, name, description, expression, severity, tags, enabled, ruleVersion, createdAt,
//! updatedAt, readOnly`), validation and test results, rules files.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use betrace_core::engine::{RuleSet, TraceContext};
use betrace_core::rules::Rule;
use betrace_core::{Severity, Span, Trace};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::{Bounded, bounded};
use super::{ApiError, AppState, Who, blocking, parse_json};
use crate::serve::config::Limits;

/// The rules routes; import and test take bodies up to `server.max_bulk_body_bytes`, the
/// others up to `server.max_api_body_bytes`.
pub fn router(limits: &Limits) -> OpenApiRouter<AppState> {
    let bulk = OpenApiRouter::new()
        .routes(routes!(test_rule))
        .routes(routes!(import_rules));
    let api = OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(validate))
        .routes(routes!(export_rules))
        .routes(routes!(get_rule, put_rule, patch_rule, delete_rule))
        .routes(routes!(enable_rule))
        .routes(routes!(disable_rule));
    bounded(api, limits.max_api_body_bytes, "server.max_api_body_bytes").merge(bounded(
        bulk,
        limits.max_bulk_body_bytes,
        "server.max_bulk_body_bytes",
    ))
}

fn param<'a>(q: &'a HashMap<String, String>, camel: &str, snake: &str) -> Option<&'a str> {
    q.get(camel)
        .or_else(|| q.get(snake))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// Parses a boolean query parameter.
pub fn bool_param(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "query parameter `{name}`: `{v}` is not true or false"
        ))),
    }
}

/// Parses a severity query parameter (any case).
pub fn severity_param(v: &str) -> Result<Severity, ApiError> {
    v.parse::<Severity>()
        .map_err(|e| ApiError::bad_request(format!("query parameter `severity`: {e}")))
}

/// Lists rules, sorted by id.
#[utoipa::path(get, path = "/v1/rules", tag = "rules",
    params(
        ("enabledOnly" = Option<bool>, Query, description = "Only enabled rules"),
        ("severity" = Option<String>, Query, description = "CRITICAL, HIGH, MEDIUM or LOW"),
        ("tag" = Option<String>, Query, description = "Rules with this tag"),
        ("tags" = Option<String>, Query, description = "Comma list: rules with at least one of these tags"),
    ),
    responses((status = 200, description = "`{rules: [...], totalCount}`")))]
pub async fn list_rules(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let rules = filtered_rules(&st, &q)?;
    Ok(Json(json!({"totalCount": rules.len(), "rules": rules})))
}

/// The rules matching `enabledOnly`, `severity`, `tag` and `tags` (a comma list: at least one
/// of them).
pub fn filtered_rules(
    st: &super::Shared,
    q: &HashMap<String, String>,
) -> Result<Vec<Value>, ApiError> {
    let enabled_only = param(q, "enabledOnly", "enabled_only")
        .map(|v| bool_param("enabledOnly", v))
        .transpose()?
        .unwrap_or(false);
    let severity = param(q, "severity", "severity")
        .map(severity_param)
        .transpose()?;
    let tag = param(q, "tag", "tag");
    let any_of: Vec<&str> = param(q, "tags", "tags")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(st
        .registry
        .list()
        .into_iter()
        .filter(|r| !enabled_only || r["enabled"] == true)
        .filter(|r| severity.is_none_or(|s| r["severity"] == s.as_str()))
        .filter(|r| {
            tag.is_none_or(|t| {
                r["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|x| x == t))
            })
        })
        .filter(|r| {
            any_of.is_empty()
                || r["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|x| any_of.iter().any(|t| x == *t)))
        })
        .collect())
}

/// Creates a rule; `id` defaults to the name when it is a slug, else a UUID.
#[utoipa::path(post, path = "/v1/rules", tag = "rules",
    request_body(content = Object, description = "`{id?, name?, description?, expression, severity?, tags?, enabled?}`"),
    responses(
        (status = 201, description = "The rule"),
        (status = 400, description = "Invalid rule, or an expression that does not compile (with diagnostics)"),
        (status = 409, description = "Duplicate id"),
        (status = 422, description = "Past rules.max_rules"),
    ))]
pub async fn create_rule(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Bounded(body): Bounded,
) -> Result<Response, ApiError> {
    let value = parse_json(&body)?;
    let reg = Arc::clone(&st.registry);
    let rule = blocking(move || {
        let rule = reg.parse(&value, None)?;
        reg.create(rule, &who.0)
    })
    .await??;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

/// One rule.
#[utoipa::path(get, path = "/v1/rules/{id}", tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "The rule"), (status = 404, description = "No such rule")))]
pub async fn get_rule(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.registry
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no rule with id `{id}`")))
}

/// Replaces a rule; `createdAt` is kept, `enabled` defaults to true.
#[utoipa::path(put, path = "/v1/rules/{id}", tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    request_body(content = Object, description = "The whole rule"),
    responses((status = 200, description = "The rule"), (status = 400, description = "Invalid rule"), (status = 404, description = "No such rule")))]
pub async fn put_rule(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Bounded(body): Bounded,
) -> Result<Json<Value>, ApiError> {
    let value = parse_json(&body)?;
    let reg = Arc::clone(&st.registry);
    Ok(Json(
        blocking(move || {
            if reg.get(&id).is_none() {
                return Err(crate::serve::registry::RuleOpError::NotFound(id));
            }
            let rule = reg.parse(&value, Some(&id))?;
            reg.replace(rule, &who.0)
        })
        .await??,
    ))
}

/// Changes some fields of a rule, e.g. `{"enabled": false}`.
#[utoipa::path(patch, path = "/v1/rules/{id}", tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    request_body(content = Object, description = "Fields to change"),
    responses((status = 200, description = "The rule"), (status = 400, description = "Invalid change"), (status = 404, description = "No such rule")))]
pub async fn patch_rule(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    Bounded(body): Bounded,
) -> Result<Json<Value>, ApiError> {
    let value = parse_json(&body)?;
    let reg = Arc::clone(&st.registry);
    Ok(Json(
        blocking(move || reg.patch(&id, &value, &who.0)).await??,
    ))
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/v1/rules/{id}", tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such rule")))]
pub async fn delete_rule(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let reg = Arc::clone(&st.registry);
    blocking(move || reg.delete(&id, &who.0)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a rule.
#[utoipa::path(post, path = "/v1/rules/{id}/enable", tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "The rule"), (status = 404, description = "No such rule")))]
pub async fn enable_rule(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let reg = Arc::clone(&st.registry);
    Ok(Json(
        blocking(move || reg.set_enabled(&id, true, &who.0)).await??,
    ))
}

/// Disables a rule.
#[utoipa::path(post, path = "/v1/rules/{id}/disable", tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "The rule"), (status = 404, description = "No such rule")))]
pub async fn disable_rule(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let reg = Arc::clone(&st.registry);
    Ok(Json(
        blocking(move || reg.set_enabled(&id, false, &who.0)).await??,
    ))
}

fn expression_of(value: &Value) -> Result<String, ApiError> {
    let e = value
        .get("expression")
        .or_else(|| value.get("condition"))
        .ok_or_else(|| ApiError::bad_request("missing `expression`"))?;
    let e = e
        .as_str()
        .ok_or_else(|| ApiError::bad_request("field `expression`: expected a string"))?;
    Ok(e.to_owned())
}

/// Compiles an expression and reports its diagnostics; `error` renders the first one.
#[utoipa::path(post, path = "/v1/rules/validate", tag = "rules",
    request_body(content = Object, description = "`{expression}`"),
    responses((status = 200, description = "`{valid, diagnostics: [...], form: block|expression, error?: \"line:col: CODE message\"}`; text over rules.max_expression_length is one E401 diagnostic")))]
pub async fn validate(
    State(st): State<AppState>,
    Bounded(body): Bounded,
) -> Result<Json<Value>, ApiError> {
    let value = parse_json(&body)?;
    let expr = expression_of(&value)?;
    let too_long = st.registry.length_diagnostic(&expr);
    let form = if too_long.is_some() {
        None
    } else {
        betrace_dsl::form_of(&expr).map(|f| match f {
            betrace_dsl::ir::FormKind::Block => "block",
            betrace_dsl::ir::FormKind::Expression => "expression",
        })
    };
    let diagnostics: Vec<_> = match too_long {
        Some(d) => vec![d],
        None => betrace_dsl::validate(&expr)
            .iter()
            .map(|d| d.to_json(&expr))
            .collect(),
    };
    let mut out = json!({
        "valid": diagnostics.is_empty(),
        "diagnostics": diagnostics,
        "form": form,
    });
    if let Some(d) = diagnostics.first() {
        out["error"] = json!(format!("{}:{}: {} {}", d.line, d.column, d.code, d.message));
    }
    Ok(Json(out))
}

fn spans_of(value: &Value) -> Result<Vec<Span>, ApiError> {
    let decoded = if let Some(otlp) = value.get("otlp") {
        betrace_core::decode_otlp_json_value(otlp)
            .map_err(|e| ApiError::bad_request(format!("field `otlp`: {e}")))?
    } else if let Some(span) = value.get("span") {
        betrace_core::decode_simple_json(&Value::Array(vec![span.clone()]))
            .map_err(|e| ApiError::bad_request(format!("field `span`: {e}")))?
    } else if let Some(spans) = value.get("spans") {
        if !spans.is_array() {
            return Err(ApiError::bad_request(
                "field `spans`: expected a list of spans",
            ));
        }
        betrace_core::decode_simple_json(spans)
            .map_err(|e| ApiError::bad_request(format!("field `spans`: {e}")))?
    } else {
        return Err(ApiError::bad_request(
            "give the trace as `spans` (a list), `span` (one span) or `otlp` (an OTLP/JSON request)",
        ));
    };
    if let Some(first) = decoded.rejected.first() {
        return Err(
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_span", first.to_string())
                .with_extra("span", json!(first.index)),
        );
    }
    if decoded.spans.is_empty() {
        return Err(ApiError::bad_request("the trace has no spans"));
    }
    Ok(decoded.spans)
}

/// Evaluates an expression against spans taken as one trace.
#[utoipa::path(post, path = "/v1/rules/test", tag = "rules",
    request_body(content = Object, description = "`{expression, spans: [...]}` or `span: {...}` or `otlp: {...}`"),
    responses(
        (status = 200, description = "`{matches, violation, evaluationTimeMs}`"),
        (status = 400, description = "Does not compile (diagnostics), or a malformed span"),
    ))]
pub async fn test_rule(
    State(st): State<AppState>,
    Bounded(body): Bounded,
) -> Result<Json<Value>, ApiError> {
    let value = parse_json(&body)?;
    let expr = expression_of(&value)?;
    if let Some(d) = st.registry.length_diagnostic(&expr) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_expression",
            d.message.clone(),
        )
        .with_diagnostics(vec![d]));
    }
    let spans = spans_of(&value)?;
    let mut engine = st.registry.engine().clone();
    engine.signing_key = None;
    blocking(move || {
        let set = RuleSet::compile(vec![Rule::new("test", expr)], engine).map_err(|f| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_expression",
                "the expression does not compile",
            )
            .with_diagnostics(
                f.iter()
                    .flat_map(|r| r.diagnostics.iter().map(|d| d.to_json(&r.expression)))
                    .collect(),
            )
        })?;
        let started = Instant::now();
        let trace = Trace::new(spans);
        let eval = set.evaluate(&trace, TraceContext::direct());
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(e) = eval.errors.first() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "evaluation_failed",
                format!("evaluation failed: {:?}", e.error),
            ));
        }
        let violation = eval.violations.into_iter().next();
        Ok(Json(json!({
            "matches": violation.is_some(),
            "violation": violation,
            "evaluationTimeMs": ms,
        })))
    })
    .await?
}

/// The rules as a rules file (YAML, or JSON with `?format=json`).
#[utoipa::path(get, path = "/v1/rules/export", tag = "rules",
    params(("format" = Option<String>, Query, description = "yaml (default) or json")),
    responses((status = 200, description = "A rules file `{rules: [...]}`")))]
pub async fn export_rules(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let doc = json!({ "rules": st.registry.rules() });
    match q.get("format").map(String::as_str).unwrap_or("yaml") {
        "json" => Ok(Json(doc).into_response()),
        "yaml" => {
            let text = serde_yaml_ng::to_string(&doc)
                .map_err(|e| ApiError::internal(format!("cannot write YAML: {e}")))?;
            Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response())
        }
        other => Err(ApiError::bad_request(format!(
            "query parameter `format`: `{other}` is not yaml or json"
        ))),
    }
}

/// Creates or replaces the rules of a rules file; one result per rule.
#[utoipa::path(post, path = "/v1/rules/import", tag = "rules",
    request_body(content = String, description = "A rules file, YAML or JSON", content_type = "application/yaml"),
    responses(
        (status = 200, description = "`{results: [{id, status: created|updated|error, message?, diagnostics?}], created, updated, failed}`"),
        (status = 400, description = "Not a rules file"),
    ))]
pub async fn import_rules(
    State(st): State<AppState>,
    Extension(who): Extension<Who>,
    Bounded(body): Bounded,
) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the rules file is not UTF-8"))?;
    let rules = betrace_core::rules::parse_rules(text, "request body")
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_rules_file", e.to_string()))?;
    let reg = Arc::clone(&st.registry);
    let results = blocking(move || reg.import(rules, &who.0)).await?;
    let count = |s: &str| results.iter().filter(|r| r["status"] == s).count();
    Ok(Json(json!({
        "created": count("created"),
        "updated": count("updated"),
        "failed": count("error"),
        "results": results,
    })))
}
