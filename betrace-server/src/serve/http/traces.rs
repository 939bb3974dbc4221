//! `GET /api/traces/{traceId}` (COMPAT.md, `/api/...` dialect): a trace that produced
//! violations, from the span summaries stored beside them ([`crate::serve::summary`]).
//!
//! In: a trace id (32 hex digits, any case). Out: `{traceId, spans: [{traceId, spanId,
//! parentSpanId, name, serviceName, kind, startTime, endTime, durationMs, status,
//! statusMessage, attributes}], violations: [...], totalSpans, truncated}` — the spans in
//! the simple-JSON shape of ENGINE.md §2 (times as Unix-nanosecond strings, `parentSpanId`
//! `""` for a root, `status` `ok|error|unset`), so they can be sent back to
//! `POST /v1/rules/test`; the violations as `GET /v1/violations` lists them, newest first (at
//! most 1000). 404 when no violation of that trace is stored.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::violations::trace_id_param;
use super::{ApiError, AppState, blocking};
use crate::serve::storage::ViolationQuery;
use crate::serve::summary::SpanSummary;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_trace))
}

fn span_json(trace_id: &str, s: &SpanSummary) -> Value {
    json!({
        "traceId": trace_id,
        "spanId": s.span_id,
        "parentSpanId": s.parent_span_id.map(|p| p.to_hex()).unwrap_or_default(),
        "name": s.name,
        "serviceName": s.service,
        "kind": s.kind,
        "startTime": s.start_ns.to_string(),
        "endTime": s.end_ns.to_string(),
        "durationMs": s.end_ns.saturating_sub(s.start_ns) as f64 / 1e6,
        "status": s.status,
        "statusMessage": s.status_message,
        "attributes": s.attributes,
    })
}

/// A trace that produced violations: its span summaries and its violations.
#[utoipa::path(get, path = "/api/traces/{traceId}", tag = "compatibility",
    params(("traceId" = String, Path, description = "Trace id, 32 hex digits")),
    responses(
        (status = 200, description = "`{traceId, spans: [...], violations: [...], totalSpans, truncated}`"),
        (status = 400, description = "Not 32 hex digits"),
        (status = 404, description = "No violation of this trace is stored"),
    ))]
pub async fn get_trace(
    State(st): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let trace = trace_id_param(&trace_id)?;
    let id = trace.to_hex();
    let store = Arc::clone(&st.store);
    let (spans, violations) = blocking(move || {
        let spans = store.trace_spans(trace)?;
        let (rows, _) = store.list_violations(&ViolationQuery {
            trace_id: Some(trace),
            limit: 1000,
            ..ViolationQuery::default()
        })?;
        Ok::<_, crate::serve::storage::StoreError>((spans, rows))
    })
    .await??;
    if violations.is_empty() && spans.is_none() {
        return Err(ApiError::not_found(format!(
            "no violation of trace `{id}` is stored"
        )));
    }
    let (list, total, truncated) = match &spans {
        Some(t) => (
            t.spans
                .iter()
                .map(|s| span_json(&id, s))
                .collect::<Vec<_>>(),
            t.total_spans,
            t.truncated,
        ),
        None => (Vec::new(), 0, false),
    };
    Ok(Json(json!({
        "traceId": id,
        "spans": list,
        "violations": violations.into_iter().map(|r| r.json).collect::<Vec<_>>(),
        "totalSpans": total,
        "truncated": truncated,
    })))
}
