//! Shape detection of JSON span input: which format a document is in, and the decoding of any
//! JSON span input by its shape.

use super::{Decoded, OtlpError, otlp_json, simple_json};

/// A JSON document whose shape is not a span input BeTrace reads.
#[derive(Debug, thiserror::Error)]
pub enum JsonInputError {
    /// An OTLP/JSON request that cannot be read.
    #[error(transparent)]
    Otlp(#[from] OtlpError),
    /// Not a list of simple-JSON spans.
    #[error(transparent)]
    Simple(#[from] simple_json::SimpleJsonError),
    /// A document in a format BeTrace does not read (Jaeger, Zipkin, a wrapped response, OTLP
    /// logs or metrics, …), or none it recognises; the message names what was found.
    #[error("{0}")]
    Unsupported(String),
}

/// What to send instead, for messages about unsupported documents.
const SEND_INSTEAD: &str = "send OTLP (an OTLP/JSON `ExportTraceServiceRequest` with \
     `resourceSpans`, or OTLP protobuf) or simple-JSON spans";

/// The keys of a simple-JSON span (ENGINE.md §2), any of which makes an object a span.
const SIMPLE_SPAN_KEYS: &[&str] = &[
    "traceId",
    "trace_id",
    "spanId",
    "span_id",
    "parentSpanId",
    "parent_span_id",
    "name",
    "operationName",
    "operation_name",
    "serviceName",
    "service_name",
    "startTime",
    "start_time",
    "endTime",
    "end_time",
];

/// Names the format of a JSON document that is not a span input BeTrace reads, when it is
/// recognisable: Jaeger JSON (`{"data": [{"traceID", "spans"}]}`, or its spans with `traceID`
/// / `spanID`), Zipkin JSON (v2 `[{traceId, id, localEndpoint…}]`, v1 with `annotations`), a
/// response wrapped in `result` (the Jaeger query API v3), Grafana Tempo JSON (`batches`), OTLP
/// logs or metrics, an array of OTLP requests, or an object holding no span field at all.
/// `None` for OTLP/JSON requests and simple-JSON spans, which the decoders read (and report
/// field by field). The message says what was found and what to send.
pub fn unsupported_json_format(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let has =
        |o: &serde_json::Map<String, Value>, keys: &[&str]| keys.iter().any(|k| o.contains_key(*k));
    let first_object = |v: Option<&Value>| match v {
        Some(Value::Array(items)) => items.first().and_then(Value::as_object).cloned(),
        _ => None,
    };
    let span_like = |o: &serde_json::Map<String, Value>| -> Option<String> {
        if has(o, &["traceID", "spanID", "processID", "references"])
            && !has(o, &["traceId", "trace_id"])
        {
            return Some(format!(
                "Jaeger JSON spans (`traceID`, `spanID`, `operationName`) are not supported; {SEND_INSTEAD}"
            ));
        }
        if o.contains_key("id")
            && !has(o, &["spanId", "span_id"])
            && has(
                o,
                &[
                    "localEndpoint",
                    "remoteEndpoint",
                    "timestamp",
                    "annotations",
                    "binaryAnnotations",
                ],
            )
        {
            let version = if has(o, &["annotations", "binaryAnnotations"]) {
                "v1"
            } else {
                "v2"
            };
            return Some(format!(
                "Zipkin JSON {version} spans (`traceId`, `id`, `localEndpoint`) are not supported; {SEND_INSTEAD}"
            ));
        }
        None
    };
    match value {
        Value::Object(o) => {
            if has(o, &["resourceSpans", "resource_spans"]) {
                return None;
            }
            if has(o, &["resourceLogs", "resource_logs"]) {
                return Some(format!(
                    "this is an OTLP logs request (`resourceLogs`), which holds no spans; {SEND_INSTEAD}"
                ));
            }
            if has(o, &["resourceMetrics", "resource_metrics"]) {
                return Some(format!(
                    "this is an OTLP metrics request (`resourceMetrics`), which holds no spans; {SEND_INSTEAD}"
                ));
            }
            if let Some(first) = first_object(o.get("data"))
                && has(&first, &["spans", "traceID", "processes"])
            {
                return Some(format!(
                    "Jaeger JSON (`data[].spans`) is not supported; {SEND_INSTEAD}"
                ));
            }
            if o.contains_key("traceID") && o.contains_key("spans") {
                return Some(format!(
                    "a Jaeger JSON trace (`traceID`, `spans`) is not supported; {SEND_INSTEAD}"
                ));
            }
            if o.contains_key("batches") {
                return Some(format!(
                    "Grafana Tempo JSON (`batches`) is not supported; {SEND_INSTEAD} (Tempo's \
                     `batches` are OTLP `resourceSpans`)"
                ));
            }
            if let Some(Value::Object(inner)) = o.get("result") {
                let what = if has(inner, &["resourceSpans", "resource_spans"]) {
                    "an OTLP request"
                } else {
                    "a document"
                };
                return Some(format!(
                    "{what} wrapped in `{{\"result\": …}}` (a query API response, e.g. Jaeger's \
                     `/api/v3/traces`) is not supported; send the request inside `result` \
                     as the whole document"
                ));
            }
            if let Some(first) = first_object(o.get("spans")) {
                return span_like(&first);
            }
            if !o.contains_key("spans") && !has(o, SIMPLE_SPAN_KEYS) {
                let mut keys: Vec<String> = o.keys().take(5).map(|k| format!("`{k}`")).collect();
                if o.len() > 5 {
                    keys.push("…".into());
                }
                let found = if keys.is_empty() {
                    "an empty object".to_owned()
                } else {
                    format!("an object with the keys {}", keys.join(", "))
                };
                return Some(format!(
                    "the format was not recognised: found {found}, not an OTLP/JSON request \
                     (`resourceSpans`) nor a simple-JSON span; {SEND_INSTEAD}"
                ));
            }
            span_like(o)
        }
        Value::Array(items) => {
            let first = items.first()?.as_object()?;
            if has(first, &["resourceSpans", "resource_spans"]) {
                return Some(
                    "a JSON array of OTLP requests is not supported; send one \
                     `ExportTraceServiceRequest` per document (or one per line)"
                        .to_owned(),
                );
            }
            span_like(first)
        }
        _ => None,
    }
}

/// Decodes any JSON span input, recognised by shape: an OTLP/JSON `ExportTraceServiceRequest`
/// (an object with `resourceSpans`), a list of simple-JSON spans or `{"spans": [...]}`, or
/// one simple-JSON span object. Malformed spans are rejected one by one (see [`Decoded`]).
/// A document in another format is [`JsonInputError::Unsupported`], naming the format when
/// it is recognisable ([`unsupported_json_format`]).
pub fn decode_json(value: &serde_json::Value) -> Result<Decoded, JsonInputError> {
    if let Some(message) = unsupported_json_format(value) {
        return Err(JsonInputError::Unsupported(message));
    }
    if let Some(obj) = value.as_object() {
        if obj.contains_key("resourceSpans") || obj.contains_key("resource_spans") {
            return Ok(otlp_json::decode_otlp_json_value(value)?);
        }
        if !obj.contains_key("spans") {
            let list = serde_json::Value::Array(vec![value.clone()]);
            return Ok(simple_json::decode_simple_json(&list)?);
        }
    }
    Ok(simple_json::decode_simple_json(value)?)
}
