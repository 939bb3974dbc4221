//! OTLP/JSON input (ENGINE.md §2 item 1; OTLP "JSON Protobuf Encoding"):
//! `ExportTraceServiceRequest` → [`SpanDraft`]s → [`Span`]s.
//!
//! lowerCamelCase keys, and also the original snake_case field names, which the protobuf JSON
//! mapping lets a parser accept; ids as case-insensitive hex; enums as numbers (names such as
//! `SPAN_KIND_SERVER` are accepted too); 64-bit integers as numbers or decimal strings;
//! `bytesValue` as base64; `doubleValue` as a number or `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! `null` or an absent field means the default (`{"arrayValue": {}}` is an empty array);
//! unknown fields are ignored. A malformed resource or scope rejects each span below it; a
//! request, resource spans or scope spans that is not an object, or a list that is not an
//! array, is an [`OtlpError`]. Pre-1.0 `instrumentationLibrarySpans` /
//! `instrumentationLibrary` are read where `scopeSpans` / `scope` are absent.
//!
//! Two readers produce the drafts: `typed` reads the plain shape SDK exporters send straight
//! into borrowed typed structures; anything else goes through a `serde_json::Value`
//! ([`decode_otlp_json_value`]), which names each problem of shape. Both give the same spans
//! and the same errors (the drafts are checked by the same [`SpanDraft::into_span`]).

pub(crate) mod typed;

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::draft::{EnumDraft, IdDraft, InputFormat, SpanDraft, expected, quote_str};
use super::simple_json::{json_kind, parse_nanos};
use super::{
    Decoded, KeyInterner, MAX_VALUE_DEPTH, OtlpError, SpanError, dedup_attributes, deep_attribute,
};
use crate::span::{AttrValue, Attributes, Resource, Span};

/// Parses OTLP/JSON bytes (the body of OTLP/HTTP `application/json`, one
/// `ExportTraceServiceRequest`). A request in the plain shape (each field once, values of their
/// expected JSON types, every span valid — what SDK exporters send) is read straight into typed
/// structures; any other is parsed to a `serde_json::Value` and converted with
/// [`decode_otlp_json_value`], which names each problem. Both give the same spans.
pub fn decode_otlp_json(bytes: &[u8]) -> Result<Decoded, OtlpError> {
    if let Some(decoded) = typed::decode(bytes) {
        return Ok(decoded);
    }
    let value = typed::parse_value(bytes)?;
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
        Some(v) => dedup_attributes(json_key_values(v, 0, Some(deep), keys).map_err(|e| {
            let (p, m) = invalid(e);
            (join_path("resource.attributes", &p), m)
        })?),
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
        return Err(err("", expected("a span object", json_kind(v))));
    };
    let mut draft = SpanDraft::new(
        InputFormat::OtlpJson,
        Arc::clone(resource),
        Arc::clone(scope_name),
    );
    draft.trace_id =
        hex_id(get(s, "traceId", "trace_id"), "a trace id").map_err(|m| err("traceId", m))?;
    draft.span_id =
        hex_id(get(s, "spanId", "span_id"), "a span id").map_err(|m| err("spanId", m))?;
    draft.parent_span_id = hex_id(get(s, "parentSpanId", "parent_span_id"), "a span id")
        .map_err(|m| err("parentSpanId", m))?;
    draft.name = json_string(s, "name").map_err(|m| err("name", m))?;
    draft.kind = enum_draft(get(s, "kind", "kind"));
    draft.start_time_unix_nano = match get(s, "startTimeUnixNano", "start_time_unix_nano") {
        None => 0,
        Some(v) => parse_nanos(v).map_err(|m| err("startTimeUnixNano", m))?,
    };
    draft.end_time_unix_nano = match get(s, "endTimeUnixNano", "end_time_unix_nano") {
        None => 0,
        Some(v) => parse_nanos(v).map_err(|m| err("endTimeUnixNano", m))?,
    };
    match get(s, "status", "status") {
        None => {}
        Some(Value::Object(st)) => {
            draft.status_code = enum_draft(get(st, "code", "code"));
            draft.status_message =
                json_string(st, "message").map_err(|m| err("status.message", m))?;
        }
        Some(other) => return Err(err("status", expected("an object", json_kind(other)))),
    }
    draft.attributes = match get(s, "attributes", "attributes") {
        None => Vec::new(),
        Some(v) => json_key_values(v, 0, Some(deep), keys).map_err(|e| {
            let (p, m) = invalid(e);
            err(&join_path("attributes", &p), m)
        })?,
    };
    draft.into_span(index)
}

/// An id given as hex text; `null` or absent is [`IdDraft::Absent`].
fn hex_id<'a>(v: Option<&'a Value>, what: &str) -> Result<IdDraft<'a>, String> {
    match v {
        None => Ok(IdDraft::Absent),
        Some(Value::String(text)) => Ok(IdDraft::Hex(Cow::Borrowed(text))),
        Some(other) => Err(expected(
            &format!("{what} as a hex string"),
            json_kind(other),
        )),
    }
}

/// An enum given as its number or its name.
fn enum_draft(v: Option<&Value>) -> EnumDraft<'_> {
    match v {
        None => EnumDraft::Absent,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) => EnumDraft::Number(n),
            None => EnumDraft::Unknown(format!("`{n}`")),
        },
        Some(Value::String(s)) => EnumDraft::Name(Cow::Borrowed(s)),
        Some(other) => EnumDraft::Unknown(json_kind(other).to_owned()),
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
    Ok(out)
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
pub(crate) const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(
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
            if depth >= MAX_VALUE_DEPTH {
                return Err(ValueError::TooDeep);
            }
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
            if depth >= MAX_VALUE_DEPTH {
                return Err(ValueError::TooDeep);
            }
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
