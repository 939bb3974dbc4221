//! OTLP input (ENGINE.md §2 item 1): `ExportTraceServiceRequest` → [`Span`]s.
//!
//! In: protobuf bytes, OTLP/JSON bytes (or a parsed JSON value), or an already decoded
//! request (the gRPC receiver's). Out: [`Decoded`] — the spans that converted, in document
//! order, and one [`SpanError`] per span that did not (OTLP partial success: a bad span is
//! rejected alone) — or an [`OtlpError`] when the body as a whole cannot be read.
//!
//! Every span gets the `Arc<Resource>` of its `ResourceSpans` (shared, not copied) and the name
//! of its instrumentation scope. Span indices count every span of the request in document
//! order (resource spans, then scope spans, then spans), from 0.
//!
//! Per-span errors: a trace id that is not 16 bytes or is all zeros, a span id that is not 8
//! bytes or is all zeros (OTLP `trace.proto`: such ids are invalid), a parent span id that is
//! neither empty, all zeros (both meaning root) nor 8 bytes, a span kind outside 0–5, a status
//! code outside 0–2. An attribute whose value nests deeper than [`MAX_VALUE_DEPTH`] levels is
//! dropped from its span or resource, which are kept, and listed in
//! [`Decoded::dropped_attributes`] — also when the nesting is past what prost or serde_json
//! would decode (see `decode_otlp_protobuf`). Attribute keys are made unique (a later
//! duplicate replaces the earlier value); key-values whose `AnyValue` is empty (no value set)
//! are dropped, and so are empty elements of arrays.
//!
//! OTLP/JSON follows the OTLP specification ("JSON Protobuf Encoding"): lowerCamelCase keys,
//! and also the original snake_case field names, which the protobuf JSON mapping lets a parser
//! accept; ids as case-insensitive hex; enums as numbers (names such as `SPAN_KIND_SERVER` are
//! accepted too); 64-bit integers as numbers or decimal strings; `bytesValue` as base64;
//! `doubleValue` as a number or `"NaN"`, `"Infinity"`, `"-Infinity"`; `null` or an absent field
//! means the default (`{"arrayValue": {}}` is an empty array); unknown fields are ignored. A
//! malformed resource or scope rejects each span below it; a request, resource spans or scope
//! spans that is not an object, or a list that is not an array, is an [`OtlpError`].
//!
//! Pre-1.0 senders are read too (opentelemetry-proto v0.16–v0.19 asks receivers to): in
//! OTLP/JSON `instrumentationLibrarySpans` / `instrumentationLibrary` where `scopeSpans` /
//! `scope` are absent, in protobuf `ResourceSpans` field 1000 where field 2 is empty.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message as _;
use serde_json::{Map, Value};

use crate::input::simple_json::{json_kind, parse_nanos, quote_str};
use crate::input::{
    Decoded, KeyInterner, MAX_VALUE_DEPTH, SpanError, dedup_attributes, hex_bytes,
    span_kind_from_name, status_code_from_name,
};
use crate::span::{AttrValue, Attributes, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};

/// An OTLP body that cannot be read at all (HTTP 400 for the OTLP/HTTP receiver).
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The bytes are not a protobuf `ExportTraceServiceRequest`; the message names the field
    /// path where decoding failed.
    #[error("undecodable OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The bytes are not JSON; the message names the line and column.
    #[error("undecodable OTLP/JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not shaped like an `ExportTraceServiceRequest`.
    #[error("invalid OTLP/JSON at `{path}`: {message}")]
    Structure {
        /// Where, e.g. `resourceSpans[0].scopeSpans`; empty for the document itself.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Decodes an OTLP protobuf `ExportTraceServiceRequest` (the body of OTLP/HTTP
/// `application/x-protobuf`) and converts its spans with [`decode_otlp_request`]. A resource
/// spans without scope spans takes those of the pre-1.0 field
/// `instrumentation_library_spans` (number 1000, the wire layout of `ScopeSpans`), as
/// `trace.proto` v0.16–v0.19 asks receivers to.
///
/// A request that prost refuses because an attribute value nests past its recursion limit
/// is decoded again without the attributes nested deeper than [`MAX_VALUE_DEPTH`] (and
/// without span events and links, which are not converted): those attributes go to
/// [`Decoded::dropped_attributes`], the rest of the request is kept.
pub fn decode_otlp_protobuf(bytes: &[u8]) -> Result<Decoded, OtlpError> {
    match ExportTraceServiceRequest::decode(bytes) {
        Ok(request) => Ok(decode_otlp_request(with_legacy_spans(request, bytes))),
        Err(e) => {
            let Some((trimmed, dropped)) = crate::otlp_wire::without_deep_values(bytes) else {
                return Err(e.into());
            };
            let Ok(request) = ExportTraceServiceRequest::decode(&trimmed[..]) else {
                return Err(e.into());
            };
            let mut decoded = decode_otlp_request(with_legacy_spans(request, &trimmed));
            // As the converter reports them: a rejected span's attributes are not listed.
            let rejected: Vec<usize> = decoded.rejected.iter().map(|e| e.index).collect();
            decoded.dropped_attributes = dropped
                .into_iter()
                .filter(|d| {
                    d.field.starts_with("resource.") || rejected.binary_search(&d.index).is_err()
                })
                .collect();
            Ok(decoded)
        }
    }
}

/// `request` with the pre-1.0 scope spans of `bytes` where it has none.
fn with_legacy_spans(
    mut request: ExportTraceServiceRequest,
    bytes: &[u8],
) -> ExportTraceServiceRequest {
    if request
        .resource_spans
        .iter()
        .any(|rs| rs.scope_spans.is_empty())
        && let Ok(legacy) = LegacyRequest::decode(bytes)
    {
        for (rs, old) in request.resource_spans.iter_mut().zip(legacy.resource_spans) {
            if rs.scope_spans.is_empty() {
                rs.scope_spans = old.instrumentation_library_spans;
            }
        }
    }
    request
}

/// `ExportTraceServiceRequest` as pre-1.0 senders could fill it: only what
/// [`decode_otlp_protobuf`] needs of it.
#[derive(Clone, PartialEq, prost::Message)]
struct LegacyRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<LegacyResourceSpans>,
}

/// `ResourceSpans.instrumentation_library_spans` (field 1000, deprecated in v0.16, removed in
/// 1.0); `InstrumentationLibrarySpans` and `InstrumentationLibrary` have the field numbers and
/// types of `ScopeSpans` and `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
struct LegacyResourceSpans {
    #[prost(message, repeated, tag = "1000")]
    instrumentation_library_spans: Vec<pb::ScopeSpans>,
}

/// Converts the spans of a decoded request, moving its strings and values (nothing is
/// copied but the scope name, once per span). Per-span problems go to
/// [`Decoded::rejected`], with the protobuf field name (`trace_id`, `attributes.key`, …).
pub fn decode_otlp_request(request: ExportTraceServiceRequest) -> Decoded {
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum();
    let mut out = Decoded {
        spans: Vec::with_capacity(total),
        ..Decoded::default()
    };
    let mut index = 0usize;
    let mut keys = KeyInterner::default();
    let mut deep = Vec::new();
    for rs in request.resource_spans {
        let attributes = match rs.resource {
            None => Vec::new(),
            Some(r) => key_values(r.attributes, &mut keys, &mut deep),
        };
        if rs.scope_spans.iter().any(|ss| !ss.spans.is_empty()) {
            out.dropped_attributes.extend(
                deep.drain(..)
                    .map(|key| deep_attribute(index, &format!("resource.attributes.{key}"))),
            );
        }
        deep.clear();
        let resource = Arc::new(Resource { attributes });
        for ss in rs.scope_spans {
            let scope_name = keys.intern(ss.scope.as_ref().map(|s| s.name.as_str()).unwrap_or(""));
            for span in ss.spans {
                match proto_span(span, index, &resource, &scope_name, &mut keys, &mut deep) {
                    Ok(span) => {
                        out.spans.push(span);
                        out.dropped_attributes.extend(
                            deep.iter()
                                .map(|key| deep_attribute(index, &format!("attributes.{key}"))),
                        );
                    }
                    Err(e) => out.rejected.push(e),
                }
                deep.clear();
                index += 1;
            }
        }
    }
    out
}

fn proto_span(
    s: pb::Span,
    index: usize,
    resource: &Arc<Resource>,
    scope_name: &Arc<str>,
    keys: &mut KeyInterner,
    deep: &mut Vec<String>,
) -> Result<Span, SpanError> {
    let err = |field: &str, message: String| SpanError::new(index, field, message);
    let trace_id = <[u8; 16]>::try_from(s.trace_id.as_slice())
        .map_err(|_| err("trace_id", id_length_message(16, s.trace_id.len())))?;
    if trace_id == [0; 16] {
        return Err(err("trace_id", "an all-zero trace id is invalid".into()));
    }
    let span_id = <[u8; 8]>::try_from(s.span_id.as_slice())
        .map_err(|_| err("span_id", id_length_message(8, s.span_id.len())))?;
    if span_id == [0; 8] {
        return Err(err("span_id", "an all-zero span id is invalid".into()));
    }
    let parent_span_id = match s.parent_span_id.len() {
        0 => None,
        _ => match <[u8; 8]>::try_from(s.parent_span_id.as_slice()) {
            Ok([0, 0, 0, 0, 0, 0, 0, 0]) => None,
            Ok(id) => Some(SpanId(id)),
            Err(_) => {
                return Err(err(
                    "parent_span_id",
                    id_length_message(8, s.parent_span_id.len()),
                ));
            }
        },
    };
    let kind = SpanKind::from_otlp(i64::from(s.kind)).ok_or_else(|| {
        err(
            "kind",
            format!("{} is not an OTLP span kind (0 to 5)", s.kind),
        )
    })?;
    let (status_code, status_message) = match s.status {
        None => (StatusCode::Unset, String::new()),
        Some(st) => (
            StatusCode::from_otlp(i64::from(st.code)).ok_or_else(|| {
                err(
                    "status.code",
                    format!("{} is not an OTLP status code (0 to 2)", st.code),
                )
            })?,
            st.message,
        ),
    };
    let attributes = key_values(s.attributes, keys, deep);
    Ok(Span {
        trace_id: TraceId(trace_id),
        span_id: SpanId(span_id),
        parent_span_id,
        name: s.name,
        kind,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        status_code,
        status_message,
        attributes,
        resource: Arc::clone(resource),
        scope_name: Arc::clone(scope_name),
    })
}

fn id_length_message(expected: usize, found: usize) -> String {
    format!("expected {expected} bytes, found {found}")
}

/// The entry of [`Decoded::dropped_attributes`] for `field` of span `index`.
pub(crate) fn deep_attribute(index: usize, field: &str) -> SpanError {
    SpanError::new(
        index,
        field,
        format!("attribute dropped: its value is nested deeper than {MAX_VALUE_DEPTH} levels"),
    )
}

/// A key-value list as unique attributes; the keys of attributes whose value nests deeper
/// than [`MAX_VALUE_DEPTH`] go to `deep` instead.
fn key_values(kvs: Vec<KeyValue>, keys: &mut KeyInterner, deep: &mut Vec<String>) -> Attributes {
    let mut out = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let Some(value) = kv.value else { continue };
        match proto_value(value, 0, keys) {
            Ok(Some(v)) => out.push((keys.intern(&kv.key), v)),
            Ok(None) => {}
            Err(TooDeep) => deep.push(kv.key),
        }
    }
    dedup_attributes(out)
}

/// A value nested deeper than [`MAX_VALUE_DEPTH`].
#[derive(Debug)]
struct TooDeep;

fn proto_value(
    v: AnyValue,
    depth: usize,
    keys: &mut KeyInterner,
) -> Result<Option<AttrValue>, TooDeep> {
    use any_value::Value as V;
    Ok(Some(match v.value {
        None | Some(V::StringValueStrindex(_)) => return Ok(None),
        Some(V::StringValue(s)) => AttrValue::Str(s.into_boxed_str()),
        Some(V::BoolValue(b)) => AttrValue::Bool(b),
        Some(V::IntValue(i)) => AttrValue::Int(i),
        Some(V::DoubleValue(d)) => AttrValue::Float(d),
        Some(V::BytesValue(b)) => AttrValue::Bytes(b.into_boxed_slice()),
        Some(V::ArrayValue(a)) => {
            check_depth(depth)?;
            let mut out = Vec::with_capacity(a.values.len());
            for item in a.values {
                if let Some(v) = proto_value(item, depth + 1, keys)? {
                    out.push(v);
                }
            }
            AttrValue::Array(out.into_boxed_slice())
        }
        Some(V::KvlistValue(kvs)) => {
            check_depth(depth)?;
            let mut out = Vec::with_capacity(kvs.values.len());
            for kv in kvs.values {
                let Some(value) = kv.value else { continue };
                if let Some(v) = proto_value(value, depth + 1, keys)? {
                    out.push((keys.intern(&kv.key), v));
                }
            }
            AttrValue::KvList(out.into_boxed_slice())
        }
    }))
}

fn check_depth(depth: usize) -> Result<(), TooDeep> {
    if depth >= MAX_VALUE_DEPTH {
        return Err(TooDeep);
    }
    Ok(())
}

/// Parses OTLP/JSON bytes (the body of OTLP/HTTP `application/json`, one
/// `ExportTraceServiceRequest`). A request in the plain shape (each field once, values of their
/// expected JSON types, every span valid — what SDK exporters send) is read straight into typed
/// structures; any other is parsed to a `serde_json::Value` and converted with
/// [`decode_otlp_json_value`], which names each problem. Both give the same spans.
pub fn decode_otlp_json(bytes: &[u8]) -> Result<Decoded, OtlpError> {
    if let Some(decoded) = crate::otlp_json::decode(bytes) {
        return Ok(decoded);
    }
    let value = crate::otlp_json::parse_value(bytes)?;
    decode_otlp_json_value(&value)
}

/// Converts a parsed OTLP/JSON `ExportTraceServiceRequest`. Per-span problems go to
/// [`Decoded::rejected`] with the field as written (`traceId`, `attributes.user`, …).
pub fn decode_otlp_json_value(request: &Value) -> Result<Decoded, OtlpError> {
    let root = json_object(request, String::new)?;
    let resource_spans = json_array(root, "resourceSpans", "resource_spans", String::new)?;
    let mut out = Decoded::default();
    let mut index = 0usize;
    let mut keys = KeyInterner::default();
    for (ri, rs) in resource_spans.iter().enumerate() {
        let rs_path = || format!("resourceSpans[{ri}]");
        let rs = json_object(rs, rs_path)?;
        let mut deep = Vec::new();
        let resource = json_resource(rs, &mut keys, &mut deep);
        // Pre-1.0 OTLP names scope spans `instrumentationLibrarySpans`; receivers read them
        // when `scopeSpans` is absent (opentelemetry-proto v0.16–v0.19, `trace.proto`).
        let list = if get(rs, "scopeSpans", "scope_spans").is_none()
            && get(rs, LEGACY_SCOPE_SPANS, "instrumentation_library_spans").is_some()
        {
            LEGACY_SCOPE_SPANS
        } else {
            "scopeSpans"
        };
        let scope_spans = if list == LEGACY_SCOPE_SPANS {
            json_array(
                rs,
                LEGACY_SCOPE_SPANS,
                "instrumentation_library_spans",
                rs_path,
            )?
        } else {
            json_array(rs, "scopeSpans", "scope_spans", rs_path)?
        };
        let first_span = index;
        for (si, ss) in scope_spans.iter().enumerate() {
            let ss_path = || format!("{}.{list}[{si}]", rs_path());
            let ss = json_object(ss, ss_path)?;
            let scope_name = json_scope_name(ss).map(|n| keys.intern(&n));
            let spans = json_array(ss, "spans", "spans", ss_path)?;
            for span in spans {
                let mut span_deep = Vec::new();
                let converted = match (&resource, &scope_name) {
                    (Ok(resource), Ok(scope_name)) => {
                        json_span(span, index, resource, scope_name, &mut keys, &mut span_deep)
                    }
                    (Err((field, message)), _) | (_, Err((field, message))) => {
                        Err(SpanError::new(index, field.as_str(), message.as_str()))
                    }
                };
                match converted {
                    Ok(span) => {
                        out.spans.push(span);
                        out.dropped_attributes.extend(
                            span_deep
                                .iter()
                                .map(|key| deep_attribute(index, &format!("attributes.{key}"))),
                        );
                    }
                    Err(e) => out.rejected.push(e),
                }
                index += 1;
            }
        }
        if resource.is_ok() && index > first_span {
            let at = out
                .dropped_attributes
                .partition_point(|d| d.index < first_span);
            let resource_drops: Vec<SpanError> = deep
                .iter()
                .map(|key| deep_attribute(first_span, &format!("resource.attributes.{key}")))
                .collect();
            out.dropped_attributes.splice(at..at, resource_drops);
        }
    }
    Ok(out)
}

/// The non-null value of `camel` (else `snake`) in `obj`.
fn get<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    match obj.get(camel) {
        Some(v) if !v.is_null() => Some(v),
        _ => obj.get(snake).filter(|v| !v.is_null()),
    }
}

fn json_object(v: &Value, path: impl FnOnce() -> String) -> Result<&Map<String, Value>, OtlpError> {
    match v {
        Value::Object(obj) => Ok(obj),
        other => Err(OtlpError::Structure {
            path: path(),
            message: format!("expected an object, found {}", json_kind(other)),
        }),
    }
}

fn json_array<'a>(
    obj: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
    path: impl FnOnce() -> String,
) -> Result<&'a [Value], OtlpError> {
    match get(obj, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => {
            let base = path();
            Err(OtlpError::Structure {
                path: if base.is_empty() {
                    camel.to_owned()
                } else {
                    format!("{base}.{camel}")
                },
                message: format!("expected an array, found {}", json_kind(other)),
            })
        }
    }
}

type FieldError = (String, String);

/// A problem in a key-value list or value.
#[derive(Debug)]
enum ValueError {
    /// The path below the list (`.key`, `[i]`…) and what is wrong: the span is rejected.
    Invalid(String, String),
    /// Nested deeper than [`MAX_VALUE_DEPTH`]: the top-level attribute holding it is dropped.
    TooDeep,
}

impl ValueError {
    /// The same error, its path below `prefix`.
    fn under(self, prefix: impl FnOnce() -> String) -> ValueError {
        match self {
            ValueError::Invalid(p, m) => ValueError::Invalid(format!("{}{p}", prefix()), m),
            ValueError::TooDeep => ValueError::TooDeep,
        }
    }
}

impl From<FieldError> for ValueError {
    fn from((path, message): FieldError) -> ValueError {
        ValueError::Invalid(path, message)
    }
}

/// The error of a top-level attribute list (which absorbs [`ValueError::TooDeep`]).
fn invalid(e: ValueError) -> FieldError {
    match e {
        ValueError::Invalid(p, m) => (p, m),
        ValueError::TooDeep => (String::new(), "nested too deep".into()),
    }
}

fn json_resource(
    rs: &Map<String, Value>,
    keys: &mut KeyInterner,
    deep: &mut Vec<String>,
) -> Result<Arc<Resource>, FieldError> {
    let Some(resource) = get(rs, "resource", "resource") else {
        return Ok(Arc::new(Resource::default()));
    };
    let Value::Object(resource) = resource else {
        return Err((
            "resource".into(),
            format!("expected an object, found {}", json_kind(resource)),
        ));
    };
    let attributes = match get(resource, "attributes", "attributes") {
        None => Vec::new(),
        Some(v) => json_key_values(v, 0, Some(deep), keys).map_err(|e| {
            let (p, m) = invalid(e);
            (join_path("resource.attributes", &p), m)
        })?,
    };
    Ok(Arc::new(Resource { attributes }))
}

/// The pre-1.0 name of `scopeSpans`.
const LEGACY_SCOPE_SPANS: &str = "instrumentationLibrarySpans";

fn json_scope_name(ss: &Map<String, Value>) -> Result<String, FieldError> {
    // Pre-1.0: `instrumentationLibrary`, read when `scope` is absent.
    let (field, scope) = match get(ss, "scope", "scope") {
        Some(scope) => ("scope", scope),
        None => match get(ss, "instrumentationLibrary", "instrumentation_library") {
            Some(library) => ("instrumentationLibrary", library),
            None => return Ok(String::new()),
        },
    };
    let Value::Object(scope) = scope else {
        return Err((
            field.into(),
            format!("expected an object, found {}", json_kind(scope)),
        ));
    };
    json_string(scope, "name").map_err(|m| (format!("{field}.name"), m))
}

/// The string at `key` (the same in camelCase and snake_case) of `obj`, `""` when absent.
fn json_string(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match get(obj, key, key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("expected a string, found {}", json_kind(other))),
    }
}

/// `base` followed by a relative path (`.key`, `[i]`, or empty).
fn join_path(base: &str, rest: &str) -> String {
    format!("{base}{rest}")
}

fn json_span(
    v: &Value,
    index: usize,
    resource: &Arc<Resource>,
    scope_name: &Arc<str>,
    keys: &mut KeyInterner,
    deep: &mut Vec<String>,
) -> Result<Span, SpanError> {
    let err = |field: &str, message: String| SpanError::new(index, field, message);
    let Value::Object(s) = v else {
        return Err(err(
            "",
            format!("expected a span object, found {}", json_kind(v)),
        ));
    };
    let trace_id = match get(s, "traceId", "trace_id") {
        None => return Err(err("traceId", "missing".into())),
        Some(v) => TraceId(hex_id::<16>(v, "trace id").map_err(|m| err("traceId", m))?),
    };
    if trace_id.0 == [0; 16] {
        return Err(err("traceId", "an all-zero trace id is invalid".into()));
    }
    let span_id = match get(s, "spanId", "span_id") {
        None => return Err(err("spanId", "missing".into())),
        Some(v) => SpanId(hex_id::<8>(v, "span id").map_err(|m| err("spanId", m))?),
    };
    if span_id.0 == [0; 8] {
        return Err(err("spanId", "an all-zero span id is invalid".into()));
    }
    let parent_span_id = match get(s, "parentSpanId", "parent_span_id") {
        None => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(v) => match hex_id::<8>(v, "span id").map_err(|m| err("parentSpanId", m))? {
            [0, 0, 0, 0, 0, 0, 0, 0] => None,
            id => Some(SpanId(id)),
        },
    };
    let name = json_string(s, "name").map_err(|m| err("name", m))?;
    let kind = match get(s, "kind", "kind") {
        None => SpanKind::Unspecified,
        Some(v) => enum_value(v, span_kind_from_name, SpanKind::from_otlp)
            .ok_or_else(|| err("kind", format!("{} is not an OTLP span kind", show(v))))?,
    };
    let start = match get(s, "startTimeUnixNano", "start_time_unix_nano") {
        None => 0,
        Some(v) => parse_nanos(v).map_err(|m| err("startTimeUnixNano", m))?,
    };
    let end = match get(s, "endTimeUnixNano", "end_time_unix_nano") {
        None => 0,
        Some(v) => parse_nanos(v).map_err(|m| err("endTimeUnixNano", m))?,
    };
    let (status_code, status_message) = match get(s, "status", "status") {
        None => (StatusCode::Unset, String::new()),
        Some(Value::Object(st)) => {
            let code = match get(st, "code", "code") {
                None => StatusCode::Unset,
                Some(v) => enum_value(v, status_code_from_name, StatusCode::from_otlp).ok_or_else(
                    || {
                        err(
                            "status.code",
                            format!("{} is not an OTLP status code", show(v)),
                        )
                    },
                )?,
            };
            let message = json_string(st, "message").map_err(|m| err("status.message", m))?;
            (code, message)
        }
        Some(other) => {
            return Err(err(
                "status",
                format!("expected an object, found {}", json_kind(other)),
            ));
        }
    };
    let attributes = match get(s, "attributes", "attributes") {
        None => Vec::new(),
        Some(v) => json_key_values(v, 0, Some(deep), keys).map_err(|e| {
            let (p, m) = invalid(e);
            err(&join_path("attributes", &p), m)
        })?,
    };
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        name,
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        status_code,
        status_message,
        attributes,
        resource: Arc::clone(resource),
        scope_name: Arc::clone(scope_name),
    })
}

/// `N` bytes from a hex string of `2N` digits, either case.
fn hex_id<const N: usize>(v: &Value, what: &str) -> Result<[u8; N], String> {
    let Value::String(text) = v else {
        return Err(format!(
            "expected a {what} as a hex string, found {}",
            json_kind(v)
        ));
    };
    hex_bytes(text).ok_or_else(|| {
        format!(
            "{} is not a {what} of {} hex digits",
            quote_str(text),
            2 * N
        )
    })
}

/// An enum given as its number or its name.
fn enum_value<T>(
    v: &Value,
    by_name: impl Fn(&str) -> Option<T>,
    by_number: impl Fn(i64) -> Option<T>,
) -> Option<T> {
    match v {
        Value::Number(n) => n.as_i64().and_then(by_number),
        Value::String(s) => by_name(s),
        _ => None,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => quote_str(s),
        Value::Number(n) => format!("`{n}`"),
        other => json_kind(other).to_owned(),
    }
}

/// A JSON array of `KeyValue` objects; the error path is relative (`.key…` or `[i]…`). A top
/// list (span and resource attributes, `deep` given) is made unique by key, and the keys of
/// its attributes nested too deep go to `deep` instead; nested key-value lists are kept as
/// written.
fn json_key_values(
    v: &Value,
    depth: usize,
    mut deep: Option<&mut Vec<String>>,
    keys: &mut KeyInterner,
) -> Result<Attributes, ValueError> {
    let Value::Array(items) = v else {
        return Err(ValueError::Invalid(
            String::new(),
            format!("expected an array of key-values, found {}", json_kind(v)),
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(kv) = item else {
            return Err(ValueError::Invalid(
                format!("[{i}]"),
                format!("expected a key-value object, found {}", json_kind(item)),
            ));
        };
        let key = match get(kv, "key", "key") {
            None => "",
            Some(Value::String(k)) => k.as_str(),
            Some(other) => {
                return Err(ValueError::Invalid(
                    format!("[{i}].key"),
                    format!("expected a string, found {}", json_kind(other)),
                ));
            }
        };
        let Some(value) = get(kv, "value", "value") else {
            continue;
        };
        match (json_any_value(value, depth, keys), deep.as_deref_mut()) {
            (Ok(Some(v)), _) => out.push((keys.intern(key), v)),
            (Ok(None), _) => {}
            (Err(ValueError::TooDeep), Some(deep)) => deep.push(key.to_owned()),
            (Err(e), _) => return Err(e.under(|| format!(".{key}"))),
        }
    }
    Ok(if deep.is_some() {
        dedup_attributes(out)
    } else {
        out
    })
}

#[derive(Clone, Copy)]
enum Which {
    Str,
    Bool,
    Int,
    Double,
    Bytes,
    Array,
    KvList,
}

fn which(key: &str) -> Option<Which> {
    Some(match key {
        "stringValue" | "string_value" => Which::Str,
        "boolValue" | "bool_value" => Which::Bool,
        "intValue" | "int_value" => Which::Int,
        "doubleValue" | "double_value" => Which::Double,
        "bytesValue" | "bytes_value" => Which::Bytes,
        "arrayValue" | "array_value" => Which::Array,
        "kvlistValue" | "kvlist_value" => Which::KvList,
        _ => return None,
    })
}

/// Base64 as the protobuf JSON mapping reads it: standard or URL-safe alphabet, padding
/// optional.
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `bytesValue` as the protobuf JSON mapping reads it.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64_STANDARD
        .decode(text)
        .or_else(|_| BASE64_URL_SAFE.decode(text))
}

/// One OTLP/JSON `AnyValue`; `None` when no value is set.
fn json_any_value(
    v: &Value,
    depth: usize,
    keys: &mut KeyInterner,
) -> Result<Option<AttrValue>, ValueError> {
    let Value::Object(obj) = v else {
        return Err(ValueError::Invalid(
            String::new(),
            format!(
                "expected an AnyValue object such as {{\"stringValue\": …}}, found {}",
                json_kind(v)
            ),
        ));
    };
    let mut found: Option<(&str, Which, &Value)> = None;
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        let Some(w) = which(key) else { continue };
        if let Some((first, _, _)) = found {
            return Err(ValueError::Invalid(
                String::new(),
                format!("an AnyValue holds one value, found `{first}` and `{key}`"),
            ));
        }
        found = Some((key.as_str(), w, value));
    }
    let Some((key, which, value)) = found else {
        return Ok(None);
    };
    let wrong = |expected: &str| {
        (
            String::new(),
            format!("`{key}` expects {expected}, found {}", json_kind(value)),
        )
    };
    Ok(Some(match which {
        Which::Str => match value {
            Value::String(s) => AttrValue::Str(s.as_str().into()),
            _ => return Err(wrong("a string").into()),
        },
        Which::Bool => match value {
            Value::Bool(b) => AttrValue::Bool(*b),
            _ => return Err(wrong("a boolean").into()),
        },
        Which::Int => {
            AttrValue::Int(json_i64(value).map_err(|m| (String::new(), format!("`{key}`: {m}")))?)
        }
        Which::Double => {
            AttrValue::Float(json_f64(value).map_err(|m| (String::new(), format!("`{key}`: {m}")))?)
        }
        Which::Bytes => match value {
            Value::String(s) => AttrValue::Bytes(
                decode_base64(s)
                    .map_err(|e| (String::new(), format!("`{key}` is not base64: {e}")))?
                    .into_boxed_slice(),
            ),
            _ => return Err(wrong("a base64 string").into()),
        },
        Which::Array => {
            check_depth(depth).map_err(|TooDeep| ValueError::TooDeep)?;
            let Value::Object(array) = value else {
                return Err(wrong("an object `{\"values\": [...]}`").into());
            };
            let items: &[Value] = match get(array, "values", "values") {
                None => &[],
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(ValueError::Invalid(
                        String::new(),
                        format!(
                            "`{key}.values` expects an array, found {}",
                            json_kind(other)
                        ),
                    ));
                }
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if let Some(v) = json_any_value(item, depth + 1, keys)
                    .map_err(|e| e.under(|| format!("[{i}]")))?
                {
                    out.push(v);
                }
            }
            AttrValue::Array(out.into_boxed_slice())
        }
        Which::KvList => {
            check_depth(depth).map_err(|TooDeep| ValueError::TooDeep)?;
            let Value::Object(list) = value else {
                return Err(wrong("an object `{\"values\": [...]}`").into());
            };
            match get(list, "values", "values") {
                None => AttrValue::KvList(Box::default()),
                Some(values) => AttrValue::KvList(
                    json_key_values(values, depth + 1, None, keys)?.into_boxed_slice(),
                ),
            }
        }
    }))
}

/// A protobuf JSON int64: a number without fraction, or a decimal string.
fn json_i64(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                // Exponent notation of a whole number is accepted by the protobuf JSON mapping.
                Some(f)
                    if f.fract() == 0.0
                        && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
                            .contains(&f) =>
                {
                    Ok(f as i64)
                }
                _ => Err(format!("`{n}` is not a 64-bit integer")),
            }
        }
        Value::String(s) => s
            .parse::<i64>()
            .map_err(|_| format!("{} is not a 64-bit integer", quote_str(s))),
        other => Err(format!(
            "expected an integer or a decimal string, found {}",
            json_kind(other)
        )),
    }
}

/// A protobuf JSON double written as a string: a finite number, or `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
pub(crate) fn double_from_text(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        text => text.parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

/// A protobuf JSON double: a number, a numeric string, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn json_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("`{n}` is not a double")),
        Value::String(s) => {
            double_from_text(s).ok_or_else(|| format!("{} is not a double", quote_str(s)))
        }
        other => Err(format!(
            "expected a number or a numeric string, found {}",
            json_kind(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::engine::general_purpose::STANDARD;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
    use serde_json::json;

    const TRACE_HEX: &str = "5b8efff798038103d269b633813fc60c";

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn pb_span(span_id: u8, parent: Option<u8>) -> pb::Span {
        pb::Span {
            trace_id: hex::decode(TRACE_HEX).unwrap(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, span_id],
            parent_span_id: parent
                .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                .unwrap_or_default(),
            name: format!("op-{span_id}"),
            kind: 2,
            start_time_unix_nano: 1_544_712_660_000_000_000,
            end_time_unix_nano: 1_544_712_661_000_000_000,
            ..Default::default()
        }
    }

    fn request(spans: Vec<pb::Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![pb::ResourceSpans {
                resource: Some(PbResource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue("shop".into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![pb::ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn protobuf_per_span_errors_keep_neighbours() {
        let mut bad_trace = pb_span(2, None);
        bad_trace.trace_id.pop();
        let mut zero_trace = pb_span(3, None);
        zero_trace.trace_id = vec![0; 16];
        let mut bad_span = pb_span(4, None);
        bad_span.span_id = vec![1; 9];
        let mut zero_span = pb_span(5, None);
        zero_span.span_id = vec![0; 8];
        let mut bad_parent = pb_span(6, None);
        bad_parent.parent_span_id = vec![1, 2, 3];
        let mut bad_kind = pb_span(7, None);
        bad_kind.kind = 6;
        let mut bad_status = pb_span(8, None);
        bad_status.status = Some(pb::Status {
            code: 3,
            message: String::new(),
        });
        let mut zero_parent = pb_span(9, None);
        zero_parent.parent_span_id = vec![0; 8];
        let bytes = request(vec![
            pb_span(1, None),
            bad_trace,
            zero_trace,
            bad_span,
            zero_span,
            bad_parent,
            bad_kind,
            bad_status,
            zero_parent,
            pb_span(10, Some(1)),
        ])
        .encode_to_vec();
        let d = decode_otlp_protobuf(&bytes).unwrap();
        let fields: Vec<(usize, &str)> = d
            .rejected
            .iter()
            .map(|e| (e.index, e.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (1, "trace_id"),
                (2, "trace_id"),
                (3, "span_id"),
                (4, "span_id"),
                (5, "parent_span_id"),
                (6, "kind"),
                (7, "status.code"),
            ]
        );
        assert_eq!(
            d.rejected[0].to_string(),
            "span 1: field `trace_id`: expected 16 bytes, found 15"
        );
        let names: Vec<&str> = d.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["op-1", "op-9", "op-10"]);
        assert_eq!(d.spans[1].parent_span_id, None);
        assert_eq!(d.spans[2].parent_span_id, Some(d.spans[0].span_id));
        assert!(Arc::ptr_eq(&d.spans[0].resource, &d.spans[2].resource));
        assert_eq!(&*d.spans[0].scope_name, "lib");
        assert_eq!(d.spans[0].service(), "shop");
        assert_eq!(d.total(), 10);
    }

    #[test]
    fn protobuf_garbage_is_an_error() {
        let e = decode_otlp_protobuf(&[0x0a, 0xff, 0xff]).unwrap_err();
        assert!(matches!(e, OtlpError::Protobuf(_)));
        assert!(
            e.to_string().starts_with("undecodable OTLP protobuf"),
            "{e}"
        );
        assert_eq!(decode_otlp_protobuf(&[]).unwrap(), Decoded::default());
    }

    #[test]
    fn protobuf_values() {
        let mut s = pb_span(1, None);
        s.attributes = vec![
            kv("s", any_value::Value::StringValue("x".into())),
            kv("b", any_value::Value::BoolValue(true)),
            kv("i", any_value::Value::IntValue(-3)),
            kv("d", any_value::Value::DoubleValue(2.5)),
            kv("bytes", any_value::Value::BytesValue(vec![1, 2])),
            kv(
                "arr",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(any_value::Value::IntValue(1)),
                        },
                        AnyValue { value: None },
                        AnyValue {
                            value: Some(any_value::Value::StringValue("two".into())),
                        },
                    ],
                }),
            ),
            kv(
                "kv",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", any_value::Value::BoolValue(false))],
                }),
            ),
            KeyValue {
                key: "empty".into(),
                value: None,
                ..Default::default()
            },
            KeyValue {
                key: "empty2".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
            kv("i", any_value::Value::IntValue(4)),
        ];
        let d = decode_otlp_request(request(vec![s]));
        let span = &d.spans[0];
        assert_eq!(
            span.attributes,
            vec![
                ("s".into(), AttrValue::Str("x".into())),
                ("b".into(), AttrValue::Bool(true)),
                ("i".into(), AttrValue::Int(4)),
                ("d".into(), AttrValue::Float(2.5)),
                ("bytes".into(), AttrValue::Bytes(vec![1, 2].into())),
                (
                    "arr".into(),
                    AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("two".into())].into())
                ),
                (
                    "kv".into(),
                    AttrValue::KvList(vec![("inner".into(), AttrValue::Bool(false))].into())
                ),
            ]
        );
    }

    /// An `AnyValue` of `levels` nested arrays (or key-value lists) around an integer: an
    /// array or list at value depth `levels - 1`, the integer at depth `levels`.
    fn nested(levels: usize, kvlist: bool) -> AnyValue {
        let mut v = AnyValue {
            value: Some(any_value::Value::IntValue(1)),
        };
        for _ in 0..levels {
            v = AnyValue {
                value: Some(if kvlist {
                    any_value::Value::KvlistValue(KeyValueList {
                        values: vec![KeyValue {
                            key: "k".into(),
                            value: Some(v),
                            ..Default::default()
                        }],
                    })
                } else {
                    any_value::Value::ArrayValue(ArrayValue { values: vec![v] })
                }),
            };
        }
        v
    }

    fn with_value(key: &str, value: AnyValue) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(value),
            ..Default::default()
        }
    }

    /// Span 1 holds `deep` (nested `levels`) and `ok`; span 2 is plain; the resource holds a
    /// value nested `levels` too.
    fn deep_request(levels: usize, kvlist: bool) -> ExportTraceServiceRequest {
        let mut s = pb_span(1, None);
        s.attributes = vec![
            with_value("deep", nested(levels, kvlist)),
            kv("ok", any_value::Value::BoolValue(true)),
        ];
        let mut r = request(vec![s, pb_span(2, None)]);
        if let Some(res) = r.resource_spans[0].resource.as_mut() {
            res.attributes
                .push(with_value("res.deep", nested(levels, kvlist)));
        }
        r
    }

    fn check_deep_dropped(d: &Decoded) {
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(d.spans.len(), 2);
        let keys: Vec<&str> = d.spans[0].attributes.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["ok"]);
        let res: Vec<&str> = d.spans[0]
            .resource
            .attributes
            .iter()
            .map(|(k, _)| &**k)
            .collect();
        assert_eq!(res, ["service.name"]);
        let fields: Vec<(usize, &str)> = d
            .dropped_attributes
            .iter()
            .map(|e| (e.index, e.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [(0, "resource.attributes.res.deep"), (0, "attributes.deep")]
        );
        assert!(
            d.dropped_attributes[1]
                .to_string()
                .contains("nested deeper than 30 levels"),
            "{}",
            d.dropped_attributes[1]
        );
    }

    #[test]
    fn protobuf_too_deep_values_drop_the_attribute() {
        for kvlist in [false, true] {
            // Within prost's recursion limit: dropped by the converter.
            let d = decode_otlp_request(deep_request(MAX_VALUE_DEPTH + 1, kvlist));
            check_deep_dropped(&d);
            // Far past it: prost refuses the request, the wire pass removes the attribute.
            let bytes = deep_request(300, kvlist).encode_to_vec();
            assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());
            let d = decode_otlp_protobuf(&bytes).unwrap();
            check_deep_dropped(&d);
            // Just past the limit, through the wire pass and through the converter alike.
            let bytes = deep_request(MAX_VALUE_DEPTH + 1, kvlist).encode_to_vec();
            let (_, dropped) = crate::otlp_wire::without_deep_values(&bytes).unwrap();
            assert_eq!(dropped, d.dropped_attributes);
        }
    }

    #[test]
    fn protobuf_values_at_the_depth_limit_are_kept() {
        for kvlist in [false, true] {
            let bytes = deep_request(MAX_VALUE_DEPTH, kvlist).encode_to_vec();
            // prost decodes the deepest allowed value without the wire pass.
            assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
            let (_, dropped) = crate::otlp_wire::without_deep_values(&bytes).unwrap();
            assert!(dropped.is_empty());
            let d = decode_otlp_protobuf(&bytes).unwrap();
            assert!(d.dropped_attributes.is_empty());
            assert_eq!(d.spans[0].attributes.len(), 2);
            assert_eq!(d.spans[0].resource.attributes.len(), 2);
        }
    }

    #[test]
    fn protobuf_deep_values_in_events_links_and_scope_do_not_fail_the_request() {
        let mut s = pb_span(1, None);
        s.events = vec![pb::span::Event {
            name: "e".into(),
            attributes: vec![with_value("x", nested(300, false))],
            ..Default::default()
        }];
        s.links = vec![pb::span::Link {
            trace_id: s.trace_id.clone(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 9],
            attributes: vec![with_value("x", nested(300, true))],
            ..Default::default()
        }];
        let mut r = request(vec![s, pb_span(2, None)]);
        r.resource_spans[0].scope_spans[0]
            .scope
            .as_mut()
            .unwrap()
            .attributes = vec![with_value("x", nested(300, false))];
        let d = decode_otlp_protobuf(&r.encode_to_vec()).unwrap();
        assert_eq!(d.spans.len(), 2);
        assert_eq!(&*d.spans[0].scope_name, "lib");
        assert!(d.dropped_attributes.is_empty());
    }

    #[test]
    fn a_rejected_span_lists_no_dropped_attributes() {
        for levels in [MAX_VALUE_DEPTH + 1, 300] {
            let mut r = deep_request(levels, false);
            r.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 3];
            let d = decode_otlp_protobuf(&r.encode_to_vec()).unwrap();
            assert_eq!(d.rejected.len(), 1);
            assert_eq!(d.rejected[0].field, "trace_id");
            let fields: Vec<&str> = d
                .dropped_attributes
                .iter()
                .map(|e| e.field.as_str())
                .collect();
            assert_eq!(fields, ["resource.attributes.res.deep"], "{levels}");
        }
    }

    #[test]
    fn protobuf_garbage_is_still_an_error() {
        let mut bytes = deep_request(300, false).encode_to_vec();
        bytes.truncate(bytes.len() - 3);
        assert!(matches!(
            decode_otlp_protobuf(&bytes),
            Err(OtlpError::Protobuf(_))
        ));
    }

    /// The OTLP/JSON of `deep_request` (as the protobuf JSON mapping writes it).
    fn deep_json(levels: usize, kvlist: bool) -> String {
        let mut v = r#"{"intValue":"1"}"#.to_owned();
        for _ in 0..levels {
            v = if kvlist {
                format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{v}}}]}}}}"#)
            } else {
                format!(r#"{{"arrayValue":{{"values":[{v}]}}}}"#)
            };
        }
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"shop"}}}},{{"key":"res.deep","value":{v}}}]}},"scopeSpans":[{{"scope":{{"name":"lib"}},"spans":[{{"traceId":"{TRACE_HEX}","spanId":"0000000000000001","name":"op-1","attributes":[{{"key":"deep","value":{v}}},{{"key":"ok","value":{{"boolValue":true}}}}]}},{{"traceId":"{TRACE_HEX}","spanId":"0000000000000002","name":"op-2"}}]}}]}}]}}"#
        )
    }

    #[test]
    fn json_too_deep_values_drop_the_attribute() {
        for kvlist in [false, true] {
            for levels in [MAX_VALUE_DEPTH + 1, 300] {
                let d = decode_otlp_json(deep_json(levels, kvlist).as_bytes()).unwrap();
                check_deep_dropped(&d);
            }
            let d = decode_otlp_json(deep_json(MAX_VALUE_DEPTH, kvlist).as_bytes()).unwrap();
            assert!(d.dropped_attributes.is_empty() && d.rejected.is_empty());
            assert_eq!(d.spans[0].attributes.len(), 2);
            assert_eq!(d.spans[0].resource.attributes.len(), 2);
            // The same spans as the protobuf of the same request.
            let pb = decode_otlp_protobuf(&deep_request(MAX_VALUE_DEPTH, kvlist).encode_to_vec())
                .unwrap();
            assert_eq!(d.spans[0].attributes, pb.spans[0].attributes);
        }
    }

    #[test]
    fn json_deep_nesting_elsewhere_is_skipped_and_errors_keep_their_place() {
        let junk = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!(
            r#"{{"junk":{junk},"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{TRACE_HEX}","spanId":"0000000000000001","events":[{{"x":{junk}}}]}}]}}]}}]}}"#
        );
        let d = decode_otlp_json(body.as_bytes()).unwrap();
        assert_eq!(d.spans.len(), 1);
        // Another attribute of the span that is invalid still rejects it.
        let body = deep_json(300, false).replace(
            r#"{"key":"ok","value":{"boolValue":true}}"#,
            r#"{"key":"ok","value":{"boolValue":"yes"}}"#,
        );
        let d = decode_otlp_json(body.as_bytes()).unwrap();
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(d.rejected[0].field, "attributes.ok");
        assert_eq!(d.spans.len(), 1);
        // Unterminated deep nesting is still malformed JSON.
        let e = decode_otlp_json(format!("{}1", "[".repeat(200)).as_bytes()).unwrap_err();
        assert!(matches!(e, OtlpError::Json(_)), "{e}");
    }

    fn json_request(spans: Value) -> Value {
        json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
            "scopeSpans": [{"scope": {"name": "lib"}, "spans": spans}]
        }]})
    }

    fn json_span_value(changes: Value) -> Value {
        let mut v = json!({
            "traceId": TRACE_HEX,
            "spanId": "eee19b7ec3c1b174",
            "name": "op",
            "kind": 2,
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": "1544712661000000000",
        });
        for (k, val) in changes.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    fn one_json(changes: Value) -> Result<Span, SpanError> {
        let mut d =
            decode_otlp_json_value(&json_request(json!([json_span_value(changes)]))).unwrap();
        match d.rejected.pop() {
            Some(e) => Err(e),
            None => Ok(d.spans.remove(0)),
        }
    }

    fn attr(value: Value) -> Result<Option<AttrValue>, SpanError> {
        one_json(json!({"attributes": [{"key": "a", "value": value}]}))
            .map(|s| s.attributes.into_iter().next().map(|(_, v)| v))
    }

    #[test]
    fn json_any_values() {
        for (value, expect) in [
            (
                json!({"stringValue": "x"}),
                Some(AttrValue::Str("x".into())),
            ),
            (
                json!({"string_value": "x"}),
                Some(AttrValue::Str("x".into())),
            ),
            (json!({"boolValue": true}), Some(AttrValue::Bool(true))),
            (json!({"intValue": "-42"}), Some(AttrValue::Int(-42))),
            (json!({"intValue": 42}), Some(AttrValue::Int(42))),
            (
                json!({"intValue": "9223372036854775807"}),
                Some(AttrValue::Int(i64::MAX)),
            ),
            (json!({"intValue": 1e3}), Some(AttrValue::Int(1000))),
            (json!({"int_value": 7}), Some(AttrValue::Int(7))),
            (json!({"doubleValue": 1.5}), Some(AttrValue::Float(1.5))),
            (json!({"doubleValue": 3}), Some(AttrValue::Float(3.0))),
            (json!({"doubleValue": "2.5"}), Some(AttrValue::Float(2.5))),
            (
                json!({"doubleValue": "Infinity"}),
                Some(AttrValue::Float(f64::INFINITY)),
            ),
            (
                json!({"doubleValue": "-Infinity"}),
                Some(AttrValue::Float(f64::NEG_INFINITY)),
            ),
            (
                json!({"bytesValue": "AQID"}),
                Some(AttrValue::Bytes(vec![1, 2, 3].into())),
            ),
            (
                json!({"bytesValue": "AQI="}),
                Some(AttrValue::Bytes(vec![1, 2].into())),
            ),
            (
                json!({"bytesValue": "AQI"}),
                Some(AttrValue::Bytes(vec![1, 2].into())),
            ),
            (
                json!({"bytesValue": "-_8"}),
                Some(AttrValue::Bytes(vec![0xfb, 0xff].into())),
            ),
            (
                json!({"bytes_value": ""}),
                Some(AttrValue::Bytes(vec![].into())),
            ),
            (
                json!({"arrayValue": {}}),
                Some(AttrValue::Array(vec![].into())),
            ),
            (
                json!({"arrayValue": {"values": null}}),
                Some(AttrValue::Array(vec![].into())),
            ),
            (
                json!({"arrayValue": {"values": [{"intValue": "1"}, {}, {"stringValue": "b"}]}}),
                Some(AttrValue::Array(
                    vec![AttrValue::Int(1), AttrValue::Str("b".into())].into(),
                )),
            ),
            (
                json!({"array_value": {"values": [{"array_value": {"values": [{"bool_value": false}]}}]}}),
                Some(AttrValue::Array(
                    vec![AttrValue::Array(vec![AttrValue::Bool(false)].into())].into(),
                )),
            ),
            (
                json!({"kvlistValue": {}}),
                Some(AttrValue::KvList(vec![].into())),
            ),
            (
                json!({"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}, {"key": "k", "value": {"intValue": 2}}]}}),
                Some(AttrValue::KvList(
                    vec![
                        ("k".into(), AttrValue::Int(1)),
                        ("k".into(), AttrValue::Int(2)),
                    ]
                    .into(),
                )),
            ),
            (json!({}), None),
            (json!({"stringValue": null}), None),
            (json!({"futureValue": 1}), None),
            (
                json!({"stringValue": "x", "unknownField": 1}),
                Some(AttrValue::Str("x".into())),
            ),
        ] {
            assert_eq!(attr(value.clone()).unwrap(), expect, "{value}");
        }
        match attr(json!({"doubleValue": "NaN"})).unwrap() {
            Some(AttrValue::Float(f)) => assert!(f.is_nan()),
            other => panic!("{other:?}"),
        }
        assert_eq!(attr(Value::Null).unwrap(), None);
    }

    #[test]
    fn json_any_value_errors() {
        for value in [
            json!({"stringValue": 1}),
            json!({"boolValue": "true"}),
            json!({"intValue": "1.5"}),
            json!({"intValue": 1.5}),
            json!({"intValue": "9223372036854775808"}),
            json!({"intValue": 1e19}),
            json!({"intValue": true}),
            json!({"doubleValue": "fast"}),
            json!({"doubleValue": []}),
            json!({"bytesValue": "@@@"}),
            json!({"bytesValue": 5}),
            json!({"arrayValue": []}),
            json!({"arrayValue": {"values": {}}}),
            json!({"kvlistValue": {"values": 3}}),
            json!({"kvlistValue": 3}),
            json!({"stringValue": "a", "intValue": 1}),
            json!({"stringValue": "a", "string_value": "b"}),
            json!("plain"),
        ] {
            let e = attr(value.clone()).unwrap_err();
            assert!(e.field.starts_with("attributes.a"), "{value}: {e}");
        }
        let e = attr(json!({"arrayValue": {"values": [{"intValue": 1}, {"kvlistValue": {"values": [{"key": "x", "value": {"intValue": "z"}}]}}]}})).unwrap_err();
        assert_eq!(e.field, "attributes.a[1].x");
        let e = one_json(json!({"attributes": {"a": 1}})).unwrap_err();
        assert_eq!(e.field, "attributes");
        let e = one_json(json!({"attributes": [1]})).unwrap_err();
        assert_eq!(e.field, "attributes[0]");
        let e =
            one_json(json!({"attributes": [{"key": 1, "value": {"intValue": 1}}]})).unwrap_err();
        assert_eq!(e.field, "attributes[0].key");
    }

    #[test]
    fn json_span_fields() {
        let s = one_json(json!({
            "traceId": TRACE_HEX.to_uppercase(),
            "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "EEE19B7EC3C1B173",
            "kind": "SPAN_KIND_CLIENT",
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            "startTimeUnixNano": 1544712660000000000u64,
            "endTimeUnixNano": "1544712661000000000",
            "flags": 1,
            "events": [{"name": "e"}],
            "links": [],
            "droppedAttributesCount": 3,
        }))
        .unwrap();
        assert_eq!(s.trace_id.to_hex(), TRACE_HEX);
        assert_eq!(s.span_id.to_hex(), "eee19b7ec3c1b174");
        assert_eq!(s.parent_span_id.unwrap().to_hex(), "eee19b7ec3c1b173");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(
            (s.status_code, s.status_message.as_str()),
            (StatusCode::Error, "boom")
        );
        assert_eq!(s.duration_nanos(), 1_000_000_000);
        assert_eq!(&*s.scope_name, "lib");
        assert_eq!(s.service(), "shop");

        for parent in [Value::Null, json!(""), json!("0000000000000000")] {
            assert_eq!(
                one_json(json!({ "parentSpanId": parent }))
                    .unwrap()
                    .parent_span_id,
                None
            );
        }
        let s = one_json(
            json!({"status": {"code": 2}, "kind": null, "name": null, "startTimeUnixNano": null}),
        )
        .unwrap();
        assert_eq!(
            (
                s.status_code,
                s.kind,
                s.name.as_str(),
                s.start_time_unix_nano
            ),
            (StatusCode::Error, SpanKind::Unspecified, "", 0)
        );

        for (changes, field) in [
            (json!({"traceId": null}), "traceId"),
            (json!({"traceId": ""}), "traceId"),
            (
                json!({"traceId": "5b8efff798038103d269b633813fc60"}),
                "traceId",
            ),
            (
                json!({"traceId": "zz8efff798038103d269b633813fc60c"}),
                "traceId",
            ),
            (
                json!({"traceId": "00000000000000000000000000000000"}),
                "traceId",
            ),
            (json!({"traceId": "W47/95gDgQPSabYzgT/GDA=="}), "traceId"),
            (json!({"traceId": 5}), "traceId"),
            (json!({"spanId": "eee19b7ec3c1b17"}), "spanId"),
            (json!({"spanId": "0000000000000000"}), "spanId"),
            (json!({"spanId": null}), "spanId"),
            (json!({"parentSpanId": "abc"}), "parentSpanId"),
            (json!({"parentSpanId": 1}), "parentSpanId"),
            (json!({"kind": 9}), "kind"),
            (json!({"kind": "SIDEWAYS"}), "kind"),
            (json!({"kind": "2"}), "kind"),
            (json!({"status": {"code": 5}}), "status.code"),
            (
                json!({"status": {"code": 1, "message": 1}}),
                "status.message",
            ),
            (json!({"status": "ERROR"}), "status"),
            (json!({"startTimeUnixNano": "x"}), "startTimeUnixNano"),
            (json!({"endTimeUnixNano": -1}), "endTimeUnixNano"),
            (json!({"name": 1}), "name"),
        ] {
            let e = one_json(changes.clone()).unwrap_err();
            assert_eq!(e.field, field, "{changes}: {e}");
        }
        let e = decode_otlp_json_value(&json_request(json!([1]))).unwrap();
        assert_eq!(e.rejected[0].field, "");
    }

    #[test]
    fn json_snake_case_request() {
        let v = json!({"resource_spans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "shop"}}]},
            "scope_spans": [{"scope": {"name": "lib"}, "spans": [{
                "trace_id": TRACE_HEX,
                "span_id": "eee19b7ec3c1b174",
                "parent_span_id": "eee19b7ec3c1b173",
                "name": "op",
                "kind": 2,
                "start_time_unix_nano": "1",
                "end_time_unix_nano": 2,
                "status": {"code": 1}
            }]}]
        }]});
        let d = decode_otlp_json_value(&v).unwrap();
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        let s = &d.spans[0];
        assert_eq!(s.service(), "shop");
        assert_eq!(s.parent_span_id.unwrap().to_hex(), "eee19b7ec3c1b173");
        assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (1, 2));
        assert_eq!(s.status_code, StatusCode::Ok);
    }

    #[test]
    fn json_structure_errors() {
        for (doc, path) in [
            (json!([]), ""),
            (json!({"resourceSpans": {}}), "resourceSpans"),
            (json!({"resourceSpans": [1]}), "resourceSpans[0]"),
            (
                json!({"resourceSpans": [{"scopeSpans": 1}]}),
                "resourceSpans[0].scopeSpans",
            ),
            (
                json!({"resourceSpans": [{"scopeSpans": [{}, 2]}]}),
                "resourceSpans[0].scopeSpans[1]",
            ),
            (
                json!({"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}),
                "resourceSpans[0].scopeSpans[0].spans",
            ),
        ] {
            match decode_otlp_json_value(&doc) {
                Err(OtlpError::Structure { path: p, .. }) => assert_eq!(p, path, "{doc}"),
                other => panic!("{doc}: {other:?}"),
            }
        }
        for doc in [
            json!({}),
            json!({"resourceSpans": null}),
            json!({"resourceSpans": [{}]}),
        ] {
            assert_eq!(decode_otlp_json_value(&doc).unwrap(), Decoded::default());
        }
        let e = decode_otlp_json(b"{\"resourceSpans\": [").unwrap_err();
        assert!(matches!(e, OtlpError::Json(_)));
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn json_bad_resource_or_scope_rejects_its_spans_only() {
        let good = json_span_value(json!({}));
        let doc = json!({"resourceSpans": [
            {"resource": {"attributes": [{"key": "x", "value": {"intValue": "nope"}}]},
             "scopeSpans": [{"spans": [good.clone(), good.clone()]}]},
            {"resource": {}, "scopeSpans": [
                {"scope": {"name": 3}, "spans": [good.clone()]},
                {"scope": {"name": "ok"}, "spans": [good.clone()]}
            ]},
            {"resource": 7, "scopeSpans": [{"spans": [good]}]}
        ]});
        let d = decode_otlp_json_value(&doc).unwrap();
        let rejected: Vec<(usize, &str)> = d
            .rejected
            .iter()
            .map(|e| (e.index, e.field.as_str()))
            .collect();
        assert_eq!(
            rejected,
            [
                (0, "resource.attributes.x"),
                (1, "resource.attributes.x"),
                (2, "scope.name"),
                (4, "resource")
            ]
        );
        assert_eq!(d.spans.len(), 1);
        assert_eq!(&*d.spans[0].scope_name, "ok");
        assert!(d.spans[0].resource.attributes.is_empty());
    }

    #[test]
    fn base64_engines_accept_padding_either_way() {
        assert_eq!(
            BASE64_STANDARD.decode("AQ==").unwrap(),
            STANDARD.decode("AQ==").unwrap()
        );
        assert_eq!(BASE64_STANDARD.decode("AQ").unwrap(), vec![1]);
    }
}
