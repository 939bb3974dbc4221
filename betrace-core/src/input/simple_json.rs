//! "Simple JSON" spans (ENGINE.md §2 item 2): the shape of the earlier BeTrace `/v1/spans` API
//! and of the conformance corpus.
//!
//! In: a parsed [`serde_json::Value`] — one object per span, or an array of them, or
//! `{"spans": [...]}`. Out: [`Span`]s, or a [`SpanError`] naming the span index and field.
//!
//! Fields of one span (camelCase, or the snake_case alias in parentheses):
//!
//! | field | value |
//! |---|---|
//! | `traceId` (`trace_id`) | required, any non-empty string: 32 hex digits are used as is (either case), anything else is hashed ([`trace_id_from_text`](super::trace_id_from_text)) |
//! | `spanId` (`span_id`) | required, any non-empty string: 16 hex digits as is, else hashed ([`span_id_from_text`](super::span_id_from_text)) |
//! | `parentSpanId` (`parent_span_id`) | like `spanId`; `""`, `null` or absent = root |
//! | `name`, `operationName` (`operation_name`) | string, absent = `""` |
//! | `serviceName` (`service_name`) | string → resource `service.name`; absent = a resource without it |
//! | `kind` | `server`, `SERVER`, `SPAN_KIND_SERVER` or the OTLP number 0–5; absent = unspecified |
//! | `status` | `"ok"`, `"error"`, `"unset"` in any case, or `{"code": name or OTLP number, "message": string}`; absent = unset |
//! | `startTime` (`start_time`) | required, Unix ns as a JSON integer or a string of digits |
//! | `endTime` (`end_time`) | Unix ns like `startTime`; wins over the durations |
//! | `duration` | nanoseconds (integer or string of digits): end = start + duration |
//! | `durationMs` (`duration_ms`) | milliseconds, may have a fraction (`1.5`): end = start + duration |
//! | `attributes` | object of key → string, number, boolean or array (elements of those types, arrays nested); `null` values are dropped; an object value is an error |
//!
//! With no end time and no duration the span ends when it starts. A JSON number with a
//! fraction or an exponent is a float attribute, one without is an integer, and an integer
//! beyond the range of i64 becomes a float. Attributes come out in key order (the order of
//! `serde_json::Map`). Unknown fields are ignored.

use std::borrow::Cow;
use std::sync::Arc;

use ahash::AHashMap;
use serde_json::{Map, Number, Value};

use super::draft::{EnumDraft, IdDraft, InputFormat, SpanDraft, expected, quote_str};
use super::{Decoded, KeyInterner, MAX_VALUE_DEPTH, SpanError};
use crate::span::{AttrValue, Attributes, Resource, Span};

/// The input of [`spans_from_simple_json`] / [`decode_simple_json`] could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimpleJsonError {
    /// The value is neither an array of spans nor an object with a `spans` array.
    #[error("expected a JSON array of spans or an object with a `spans` array, found {found}")]
    NotASpanList {
        /// What was found instead, e.g. `a string`.
        found: &'static str,
    },
    /// One span is malformed.
    #[error(transparent)]
    Span(#[from] SpanError),
}

impl SimpleJsonError {
    /// The index of the malformed span, `None` when the list itself is malformed.
    pub fn span_index(&self) -> Option<usize> {
        match self {
            SimpleJsonError::NotASpanList { .. } => None,
            SimpleJsonError::Span(e) => Some(e.index),
        }
    }
}

/// All spans of `value` (a JSON array of span objects, or `{"spans": [...]}`), or the first
/// error: a [`SimpleJsonError::Span`] names the index of the first malformed span. Spans with
/// the same service share one `Arc<Resource>`.
pub fn spans_from_simple_json(value: &Value) -> Result<Vec<Span>, SimpleJsonError> {
    let list = span_list(value)?;
    let mut decoder = SimpleJsonDecoder::new();
    let mut spans = Vec::with_capacity(list.len());
    for (index, v) in list.iter().enumerate() {
        spans.push(decoder.decode_span(index, v)?);
    }
    Ok(spans)
}

/// Every span of `value` (same shapes as [`spans_from_simple_json`]) that converts, and one
/// [`SpanError`] per span that does not: one bad span never discards its neighbours
/// (ENGINE.md §2). Errs only when `value` is not a list of spans.
pub fn decode_simple_json(value: &Value) -> Result<Decoded, SimpleJsonError> {
    let list = span_list(value)?;
    let mut decoder = SimpleJsonDecoder::new();
    let mut out = Decoded {
        spans: Vec::with_capacity(list.len()),
        ..Decoded::default()
    };
    for (index, v) in list.iter().enumerate() {
        match decoder.decode_span(index, v) {
            Ok(span) => out.spans.push(span),
            Err(e) => out.rejected.push(e),
        }
    }
    Ok(out)
}

/// One span object; `index` is its position in the caller's input and goes into the error.
/// The span gets a resource of its own; use [`SimpleJsonDecoder`] to share resources between
/// the spans of one batch.
pub fn span_from_simple_json(index: usize, value: &Value) -> Result<Span, SpanError> {
    SimpleJsonDecoder::new().decode_span(index, value)
}

fn span_list(value: &Value) -> Result<&[Value], SimpleJsonError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(obj) => match obj.get("spans") {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(SimpleJsonError::NotASpanList {
                found: match other {
                    Value::Null => "`spans: null`",
                    _ => "a `spans` field that is not an array",
                },
            }),
            None => Err(SimpleJsonError::NotASpanList {
                found: "an object without `spans`",
            }),
        },
        other => Err(SimpleJsonError::NotASpanList {
            found: json_kind(other),
        }),
    }
}

/// Converts simple-JSON span objects one by one, sharing one `Arc<Resource>` between the
/// spans of the same service.
#[derive(Debug, Default)]
pub struct SimpleJsonDecoder {
    no_service: Option<Arc<Resource>>,
    by_service: AHashMap<String, Arc<Resource>>,
    keys: KeyInterner,
}

impl SimpleJsonDecoder {
    /// A decoder with no resource seen yet.
    pub fn new() -> SimpleJsonDecoder {
        SimpleJsonDecoder::default()
    }

    /// One span object (fields in the module documentation); `index` goes into the error.
    pub fn decode_span(&mut self, index: usize, value: &Value) -> Result<Span, SpanError> {
        let Value::Object(obj) = value else {
            return Err(SpanError::new(
                index,
                "",
                format!("expected a JSON object, found {}", json_kind(value)),
            ));
        };
        let err = |field: &str, message: String| SpanError::new(index, field, message);
        let mut draft = SpanDraft::new(
            InputFormat::SimpleJson,
            Arc::default(),
            self.keys.intern(""),
        );

        let id = |names: &[&'static str]| match optional_string(obj, names) {
            Ok(None) => Ok((names[0], IdDraft::Absent)),
            Ok(Some((f, text))) => Ok((f, IdDraft::Text(Cow::Borrowed(text)))),
            Err((f, m)) => Err(err(f, m)),
        };
        (draft.fields.trace_id, draft.trace_id) = id(&["traceId", "trace_id"])?;
        (draft.fields.span_id, draft.span_id) = id(&["spanId", "span_id"])?;
        (draft.fields.parent_span_id, draft.parent_span_id) =
            id(&["parentSpanId", "parent_span_id"])?;
        draft.name = optional_string(obj, &["name", "operationName", "operation_name"])
            .map_err(|m| err(m.0, m.1))?
            .map(|(_, s)| s.to_owned())
            .unwrap_or_default();
        let service = optional_string(obj, &["serviceName", "service_name"])
            .map_err(|m| err(m.0, m.1))?
            .map(|(_, s)| s);

        if let Some((_, v)) = field(obj, &["kind"]) {
            draft.kind = enum_draft(v);
        }
        match field(obj, &["status"]) {
            None => {}
            Some((_, v @ Value::String(_))) => draft.status_code = enum_draft(v),
            Some((_, Value::Object(st))) => {
                draft.fields.status_code = "status.code";
                if let Some((_, c)) = field(st, &["code"]) {
                    draft.status_code = enum_draft(c);
                }
                draft.status_message = match field(st, &["message"]) {
                    None => String::new(),
                    Some((_, Value::String(s))) => s.clone(),
                    Some((_, other)) => {
                        return Err(err(
                            "status.message",
                            expected("a string", json_kind(other)),
                        ));
                    }
                };
            }
            Some((_, other)) => {
                return Err(err(
                    "status",
                    expected(
                        "a status name or an object `{code, message}`",
                        json_kind(other),
                    ),
                ));
            }
        }

        let (f, v) = field(obj, &["startTime", "start_time"])
            .ok_or_else(|| err("startTime", "missing start time (Unix nanoseconds)".into()))?;
        let start = parse_nanos(v).map_err(|m| err(f, m))?;
        let end = match field(obj, &["endTime", "end_time"]) {
            Some((f, v)) => Some(parse_nanos(v).map_err(|m| err(f, m))?),
            None => None,
        };
        let duration = match field(obj, &["duration"]) {
            Some((f, v)) => Some((f, parse_nanos(v).map_err(|m| err(f, m))?)),
            None => None,
        };
        let duration_ms = match field(obj, &["durationMs", "duration_ms"]) {
            Some((f, v)) => Some((f, parse_duration_ms(v).map_err(|m| err(f, m))?)),
            None => None,
        };
        let end = match (end, duration.or(duration_ms)) {
            (Some(end), _) => end,
            (None, Some((f, d))) => start.checked_add(d).ok_or_else(|| {
                err(
                    f,
                    "start time plus duration is beyond the range of Unix nanoseconds (u64)".into(),
                )
            })?,
            (None, None) => start,
        };

        let attributes = match field(obj, &["attributes"]) {
            None => Vec::new(),
            Some((f, v)) => parse_attributes(v, &mut self.keys).map_err(|(path, m)| {
                if path.is_empty() {
                    err(f, m)
                } else {
                    err(&format!("{f}.{path}"), m)
                }
            })?,
        };

        draft.start_time_unix_nano = start;
        draft.end_time_unix_nano = end;
        draft.attributes = attributes;
        draft.resource = self.resource(service);
        draft.into_span(index)
    }

    fn resource(&mut self, service: Option<&str>) -> Arc<Resource> {
        match service {
            None => self
                .no_service
                .get_or_insert_with(|| Arc::new(Resource::default()))
                .clone(),
            Some(s) => {
                if let Some(r) = self.by_service.get(s) {
                    return r.clone();
                }
                let r = Arc::new(Resource::with_service(s));
                self.by_service.insert(s.to_owned(), r.clone());
                r
            }
        }
    }
}

/// The first of `names` present in `obj` with a non-null value, with the name found.
fn field<'a>(
    obj: &'a Map<String, Value>,
    names: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    names.iter().find_map(|&n| match obj.get(n) {
        None | Some(Value::Null) => None,
        Some(v) => Some((n, v)),
    })
}

type FieldError = (&'static str, String);

fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    names: &[&'static str],
) -> Result<Option<(&'static str, &'a str)>, FieldError> {
    match field(obj, names) {
        None => Ok(None),
        Some((f, Value::String(s))) => Ok(Some((f, s))),
        Some((f, v)) => Err((f, format!("expected a string, found {}", json_kind(v)))),
    }
}

/// A kind or status code: a name, an OTLP number, or another value (shown in the message).
fn enum_draft(v: &Value) -> EnumDraft<'_> {
    match v {
        Value::String(s) => EnumDraft::Name(Cow::Borrowed(s)),
        Value::Number(n) => match n.as_i64() {
            Some(n) => EnumDraft::Number(n),
            None => EnumDraft::Unknown(format!("`{n}`")),
        },
        other => EnumDraft::Unknown(json_kind(other).to_owned()),
    }
}

/// Unix nanoseconds (or a duration in nanoseconds): a JSON integer or a string of digits.
pub(crate) fn parse_nanos(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            format!("`{n}` is not a whole number of nanoseconds between 0 and 2^64 - 1")
        }),
        Value::String(s) => parse_digits(s),
        other => Err(format!(
            "expected nanoseconds as an integer or a string of digits, found {}",
            json_kind(other)
        )),
    }
}

pub(crate) fn parse_digits(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} is not a string of digits", quote_str(s)));
    }
    s.parse::<u64>()
        .map_err(|_| format!("{} is beyond 2^64 - 1 nanoseconds", quote_str(s)))
}

/// A duration in milliseconds, possibly with a fraction, as nanoseconds.
fn parse_duration_ms(v: &Value) -> Result<u64, String> {
    const NANOS_PER_MS: u64 = 1_000_000;
    let too_large = || "the duration is beyond 2^64 - 1 nanoseconds".to_owned();
    let from_float = |ms: f64, shown: &dyn Fn() -> String| {
        if !ms.is_finite() || ms < 0.0 {
            return Err(format!(
                "{} is not a non-negative number of milliseconds",
                shown()
            ));
        }
        let ns = (ms * NANOS_PER_MS as f64).round();
        // 2^64 as f64; every smaller non-negative f64 converts exactly after rounding.
        if ns >= 18_446_744_073_709_551_616.0 {
            return Err(too_large());
        }
        Ok(ns as u64)
    };
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(ms), _) => ms.checked_mul(NANOS_PER_MS).ok_or_else(too_large),
            (None, Some(ms)) => from_float(ms, &|| format!("`{n}`")),
            (None, None) => Err(format!("`{n}` is not a number of milliseconds")),
        },
        Value::String(s) => {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                let ms: u64 = s.parse().map_err(|_| too_large())?;
                return ms.checked_mul(NANOS_PER_MS).ok_or_else(too_large);
            }
            let ms: f64 = s
                .parse()
                .map_err(|_| format!("{} is not a number of milliseconds", quote_str(s)))?;
            from_float(ms, &|| quote_str(s))
        }
        other => Err(format!(
            "expected milliseconds as a number or a numeric string, found {}",
            json_kind(other)
        )),
    }
}

/// Attributes from a JSON object. The error carries the path below `attributes` (the key,
/// then `[i]` per array level) and the message.
fn parse_attributes(v: &Value, keys: &mut KeyInterner) -> Result<Attributes, (String, String)> {
    let Value::Object(obj) = v else {
        return Err((
            String::new(),
            format!(
                "expected an object of attribute key to value, found {}",
                json_kind(v)
            ),
        ));
    };
    let mut attrs = Vec::with_capacity(obj.len());
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        let value = attribute_value(value, 0).map_err(|(path, m)| (format!("{key}{path}"), m))?;
        attrs.push((keys.intern(key), value));
    }
    Ok(attrs)
}

fn attribute_value(v: &Value, depth: usize) -> Result<AttrValue, (String, String)> {
    match v {
        Value::String(s) => Ok(AttrValue::Str(s.as_str().into())),
        Value::Bool(b) => Ok(AttrValue::Bool(*b)),
        Value::Number(n) => number_value(n).map_err(|m| (String::new(), m)),
        Value::Array(items) => {
            if depth >= MAX_VALUE_DEPTH {
                return Err((
                    String::new(),
                    format!("arrays are nested deeper than {MAX_VALUE_DEPTH} levels"),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    return Err((format!("[{i}]"), "null is not a valid array element".into()));
                }
                let value = attribute_value(item, depth + 1)
                    .map_err(|(path, m)| (format!("[{i}]{path}"), m))?;
                out.push(value);
            }
            Ok(AttrValue::Array(out.into_boxed_slice()))
        }
        Value::Object(_) => Err((
            String::new(),
            "an object is not a valid attribute value".into(),
        )),
        Value::Null => Err((String::new(), "null is not a valid attribute value".into())),
    }
}

/// An integer (no fraction, no exponent, within i64) is `Int`; every other number is `Float`.
fn number_value(n: &Number) -> Result<AttrValue, String> {
    if let Some(i) = n.as_i64() {
        return Ok(AttrValue::Int(i));
    }
    n.as_f64()
        .map(AttrValue::Float)
        .ok_or_else(|| format!("`{n}` is not a representable number"))
}

/// `a string`, `an object`, … for messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{SpanKind, StatusCode};
    use serde_json::json;

    const TRACE: &str = "0000000000000000000000005eed011f";

    fn base() -> Value {
        json!({
            "traceId": TRACE,
            "spanId": "00000000000000b1",
            "name": "op",
            "serviceName": "shop",
            "kind": "internal",
            "status": "unset",
            "startTime": 1_700_000_000_000_000_000u64,
            "endTime": 1_700_000_000_010_000_000u64,
            "attributes": {}
        })
    }

    fn with(changes: Value) -> Value {
        let mut v = base();
        for (k, val) in changes.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    fn without(keys: &[&str]) -> Value {
        let mut v = base();
        for k in keys {
            v.as_object_mut().unwrap().remove(*k);
        }
        v
    }

    fn ok(v: Value) -> Span {
        span_from_simple_json(0, &v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn bad(v: Value) -> SpanError {
        match span_from_simple_json(3, &v) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => {
                assert_eq!(e.index, 3);
                e
            }
        }
    }

    #[test]
    fn full_span() {
        let s = ok(with(json!({
            "parentSpanId": "00000000000000a0",
            "attributes": {"user": "ann", "n": 3, "x": 1.0, "ok": true, "tags": ["a", 1, 2.5, false, [1]]},
            "status": {"code": "error", "message": "boom"},
            "kind": "SERVER"
        })));
        assert_eq!(s.trace_id.to_hex(), TRACE);
        assert_eq!(s.span_id.to_hex(), "00000000000000b1");
        assert_eq!(s.parent_span_id.unwrap().to_hex(), "00000000000000a0");
        assert_eq!(s.name, "op");
        assert_eq!(s.service(), "shop");
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.status_code, StatusCode::Error);
        assert_eq!(s.status_message, "boom");
        assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(s.end_time_unix_nano, 1_700_000_000_010_000_000);
        assert_eq!(&*s.scope_name, "");
        assert_eq!(s.attribute("user"), Some(&AttrValue::Str("ann".into())));
        assert_eq!(s.attribute("n"), Some(&AttrValue::Int(3)));
        assert_eq!(s.attribute("x"), Some(&AttrValue::Float(1.0)));
        assert_eq!(s.attribute("ok"), Some(&AttrValue::Bool(true)));
        assert_eq!(
            s.attribute("tags"),
            Some(&AttrValue::Array(
                vec![
                    AttrValue::Str("a".into()),
                    AttrValue::Int(1),
                    AttrValue::Float(2.5),
                    AttrValue::Bool(false),
                    AttrValue::Array(vec![AttrValue::Int(1)].into()),
                ]
                .into()
            ))
        );
    }

    #[test]
    fn snake_case_aliases() {
        let v = json!({
            "trace_id": TRACE,
            "span_id": "00000000000000b1",
            "parent_span_id": "00000000000000a0",
            "operation_name": "op",
            "service_name": "shop",
            "start_time": "100",
            "end_time": 250,
        });
        let s = ok(v);
        assert_eq!(s.trace_id.to_hex(), TRACE);
        assert_eq!(s.parent_span_id.unwrap().to_hex(), "00000000000000a0");
        assert_eq!(s.name, "op");
        assert_eq!(s.service(), "shop");
        assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (100, 250));
        let s = ok(with(json!({"endTime": null, "duration_ms": 2})));
        assert_eq!(s.duration_nanos(), 2_000_000);
        let s =
            ok(json!({"traceId": "t", "spanId": "s", "operationName": "legacy", "startTime": 5}));
        assert_eq!(s.name, "legacy");
        assert_eq!(s.kind, SpanKind::Unspecified);
        assert_eq!(s.status_code, StatusCode::Unset);
        assert_eq!(s.service(), "");
        assert!(s.resource.attributes.is_empty());
        assert_eq!(s.end_time_unix_nano, 5);
    }

    #[test]
    fn kind_spellings() {
        for (k, expect) in [
            (json!("server"), SpanKind::Server),
            (json!("SERVER"), SpanKind::Server),
            (json!("SPAN_KIND_SERVER"), SpanKind::Server),
            (json!(2), SpanKind::Server),
            (json!("Consumer"), SpanKind::Consumer),
            (json!(0), SpanKind::Unspecified),
            (json!(5), SpanKind::Consumer),
            (Value::Null, SpanKind::Unspecified),
        ] {
            assert_eq!(ok(with(json!({ "kind": k }))).kind, expect);
        }
        for k in [
            json!("sideways"),
            json!(6),
            json!(-1),
            json!(2.0),
            json!(true),
            json!({}),
        ] {
            let e = bad(with(json!({ "kind": k })));
            assert_eq!(e.field, "kind");
        }
        let e = bad(with(json!({"kind": "sideways"})));
        assert!(e.message.contains("`sideways` is not a span kind"), "{e}");
    }

    #[test]
    fn status_spellings() {
        for (st, code, msg) in [
            (json!("ok"), StatusCode::Ok, ""),
            (json!("ERROR"), StatusCode::Error, ""),
            (json!("Unset"), StatusCode::Unset, ""),
            (json!("STATUS_CODE_ERROR"), StatusCode::Error, ""),
            (json!({"code": 2}), StatusCode::Error, ""),
            (json!({"code": 1}), StatusCode::Ok, ""),
            (
                json!({"code": "error", "message": "boom"}),
                StatusCode::Error,
                "boom",
            ),
            (
                json!({"message": "just a message"}),
                StatusCode::Unset,
                "just a message",
            ),
            (
                json!({"code": null, "message": null}),
                StatusCode::Unset,
                "",
            ),
            (Value::Null, StatusCode::Unset, ""),
        ] {
            let s = ok(with(json!({ "status": st })));
            assert_eq!((s.status_code, s.status_message.as_str()), (code, msg));
        }
        for (st, field) in [
            (json!("failed"), "status"),
            (json!(2), "status"),
            (json!({"code": 3}), "status.code"),
            (json!({"code": "bad"}), "status.code"),
            (json!({"code": []}), "status.code"),
            (json!({"code": 2, "message": 5}), "status.message"),
        ] {
            assert_eq!(bad(with(json!({ "status": st }))).field, field);
        }
    }

    #[test]
    fn ids() {
        let s = ok(with(
            json!({"spanId": "00000000000000AB", "parentSpanId": "00000000000000CD"}),
        ));
        assert_eq!(s.span_id.to_hex(), "00000000000000ab");
        assert_eq!(s.parent_span_id.unwrap().to_hex(), "00000000000000cd");
        // Non-hex ids hash the same way for span and parent ids, so links survive.
        let parent = ok(with(json!({"traceId": "order-7", "spanId": "root"})));
        let child = ok(with(
            json!({"traceId": "order-7", "spanId": "child", "parentSpanId": "root"}),
        ));
        assert_eq!(child.parent_span_id, Some(parent.span_id));
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        for root in [json!(""), Value::Null] {
            assert_eq!(
                ok(with(json!({ "parentSpanId": root }))).parent_span_id,
                None
            );
        }
        assert_eq!(ok(without(&[])).parent_span_id, None);

        for (changes, field) in [
            (json!({"traceId": ""}), "traceId"),
            (json!({"spanId": ""}), "spanId"),
            (json!({"traceId": 5}), "traceId"),
            (json!({"spanId": ["a"]}), "spanId"),
            (json!({"parentSpanId": 7}), "parentSpanId"),
            (json!({"traceId": null}), "traceId"),
        ] {
            assert_eq!(bad(with(changes)).field, field);
        }
        assert_eq!(bad(without(&["traceId"])).field, "traceId");
        assert_eq!(bad(without(&["spanId"])).field, "spanId");
    }

    #[test]
    fn times_and_durations() {
        let start = 1_700_000_000_000_000_000u64;
        let dur = |changes: Value| {
            let mut v = without(&["endTime"]);
            for (k, val) in changes.as_object().unwrap() {
                v[k] = val.clone();
            }
            ok(v).duration_nanos()
        };
        assert_eq!(dur(json!({})), 0);
        assert_eq!(dur(json!({"duration": 10_000})), 10_000);
        assert_eq!(dur(json!({"duration": "10000"})), 10_000);
        assert_eq!(dur(json!({"durationMs": 2})), 2_000_000);
        assert_eq!(dur(json!({"durationMs": 1.5})), 1_500_000);
        assert_eq!(dur(json!({"durationMs": "1.5"})), 1_500_000);
        assert_eq!(dur(json!({"durationMs": "3"})), 3_000_000);
        assert_eq!(dur(json!({"durationMs": 0.001})), 1_000);
        assert_eq!(dur(json!({"durationMs": 1.5e3})), 1_500_000_000);
        // `duration` (ns) is preferred to `durationMs` when both are given.
        assert_eq!(dur(json!({"duration": 7, "durationMs": 1})), 7);
        // `endTime` wins over both.
        let s = ok(with(json!({"durationMs": 99, "duration": 5})));
        assert_eq!(s.duration_nanos(), 10_000_000);
        let s = ok(with(
            json!({"startTime": start.to_string(), "endTime": (start + 5).to_string()}),
        ));
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (start, start + 5)
        );
        // An end before the start is kept as given; the duration is negative (DSL.md §3.4).
        let s = ok(with(json!({"endTime": start - 1})));
        assert_eq!(s.end_time_unix_nano, start - 1);
        assert_eq!(s.duration_nanos(), -1);

        for (changes, field) in [
            (json!({"startTime": "abc"}), "startTime"),
            (json!({"startTime": ""}), "startTime"),
            (json!({"startTime": "-5"}), "startTime"),
            (json!({"startTime": " 5"}), "startTime"),
            (json!({"startTime": {}}), "startTime"),
            (json!({"startTime": -1}), "startTime"),
            (json!({"startTime": 1.5}), "startTime"),
            (json!({"startTime": 1e18}), "startTime"),
            (json!({"startTime": "18446744073709551616"}), "startTime"),
            (json!({"endTime": "abc"}), "endTime"),
            (json!({"endTime": true}), "endTime"),
            (json!({"duration": -5}), "duration"),
            (json!({"durationMs": -1}), "durationMs"),
            (json!({"durationMs": "fast"}), "durationMs"),
            (json!({"durationMs": "NaN"}), "durationMs"),
            (json!({"durationMs": "inf"}), "durationMs"),
            (json!({"durationMs": 1e300}), "durationMs"),
            (json!({"durationMs": u64::MAX}), "durationMs"),
            (json!({"duration_ms": []}), "duration_ms"),
        ] {
            let e = bad(with(changes.clone()));
            assert_eq!(e.field, field, "{changes}: {e}");
        }
        assert_eq!(bad(without(&["startTime"])).field, "startTime");
        let e = bad(with(
            json!({"endTime": null, "startTime": u64::MAX, "duration": 1}),
        ));
        assert_eq!(e.field, "duration");
    }

    #[test]
    fn attribute_types() {
        let s = ok(with(json!({"attributes": {
            "null": null,
            "big": 18_446_744_073_709_551_615u64,
            "neg": -5,
            "min": i64::MIN,
            "exp": 1.5e9,
            "one": 1.0,
            "empty": [],
            "s": ""
        }})));
        assert_eq!(s.attribute("null"), None);
        assert_eq!(
            s.attribute("big"),
            Some(&AttrValue::Float(18_446_744_073_709_551_615.0))
        );
        assert_eq!(s.attribute("neg"), Some(&AttrValue::Int(-5)));
        assert_eq!(s.attribute("min"), Some(&AttrValue::Int(i64::MIN)));
        assert_eq!(s.attribute("exp"), Some(&AttrValue::Float(1.5e9)));
        assert_eq!(s.attribute("one"), Some(&AttrValue::Float(1.0)));
        assert_eq!(s.attribute("empty"), Some(&AttrValue::Array(vec![].into())));
        assert_eq!(s.attribute("s"), Some(&AttrValue::Str("".into())));
        assert_eq!(s.attributes.len(), 7);

        // Parsed from text, so the number spellings are the ones written.
        let v: Value = serde_json::from_str(
            r#"{"traceId":"t","spanId":"s","startTime":1,"attributes":{"a":1,"b":1.0,"c":1e2,"d":-0,"e":99999999999999999999,"f":-99999999999999999999}}"#,
        )
        .unwrap();
        let s = ok(v);
        assert_eq!(s.attribute("a"), Some(&AttrValue::Int(1)));
        assert_eq!(s.attribute("b"), Some(&AttrValue::Float(1.0)));
        assert_eq!(s.attribute("c"), Some(&AttrValue::Float(100.0)));
        assert!(matches!(
            s.attribute("d"),
            Some(AttrValue::Int(0)) | Some(AttrValue::Float(_))
        ));
        assert_eq!(s.attribute("e"), Some(&AttrValue::Float(1e20)));
        assert_eq!(s.attribute("f"), Some(&AttrValue::Float(-1e20)));
        assert_eq!(ok(without(&["attributes"])).attributes, vec![]);
        assert_eq!(ok(with(json!({"attributes": null}))).attributes, vec![]);
    }

    #[test]
    fn attribute_errors_name_the_key() {
        let e = bad(with(json!({"attributes": {"user": {"id": 7}}})));
        assert_eq!(e.field, "attributes.user");
        assert_eq!(
            e.to_string(),
            "span 3: field `attributes.user`: an object is not a valid attribute value"
        );
        let e = bad(with(
            json!({"attributes": {"tags": ["a", ["b", {"c": 1}]]}}),
        ));
        assert_eq!(e.field, "attributes.tags[1][1]");
        let e = bad(with(json!({"attributes": {"tags": [1, null]}})));
        assert_eq!(e.field, "attributes.tags[1]");
        let e = bad(with(json!({"attributes": ["a"]})));
        assert_eq!(e.field, "attributes");
        let mut deep = json!(1);
        for _ in 0..=MAX_VALUE_DEPTH {
            deep = json!([deep]);
        }
        let e = bad(with(json!({"attributes": {"deep": deep}})));
        assert!(e.message.contains("nested deeper"), "{e}");
    }

    #[test]
    fn name_and_service_errors() {
        assert_eq!(bad(with(json!({"name": 5}))).field, "name");
        assert_eq!(bad(with(json!({"serviceName": true}))).field, "serviceName");
        assert_eq!(bad(json!("span")).field, "");
        assert_eq!(
            bad(json!([])).to_string(),
            "span 3: expected a JSON object, found an array"
        );
    }

    #[test]
    fn lists_share_resources_and_report_the_first_bad_index() {
        let list = json!([
            base(),
            with(json!({"spanId": "00000000000000b2"})),
            with(json!({"spanId": "00000000000000b3", "serviceName": "other"})),
            without(&["serviceName"]),
            without(&["serviceName"]),
        ]);
        let spans = spans_from_simple_json(&list).unwrap();
        assert_eq!(spans.len(), 5);
        assert!(Arc::ptr_eq(&spans[0].resource, &spans[1].resource));
        assert!(!Arc::ptr_eq(&spans[0].resource, &spans[2].resource));
        assert!(Arc::ptr_eq(&spans[3].resource, &spans[4].resource));
        assert_eq!(spans[2].service(), "other");
        assert_eq!(
            spans_from_simple_json(&json!({ "spans": list })).unwrap(),
            spans
        );

        let list = json!([
            base(),
            with(json!({"kind": "x"})),
            with(json!({"startTime": "x"}))
        ]);
        let e = spans_from_simple_json(&list).unwrap_err();
        assert_eq!(e.span_index(), Some(1));
        let d = decode_simple_json(&list).unwrap();
        assert_eq!(d.spans.len(), 1);
        assert_eq!(d.total(), 3);
        let idx: Vec<usize> = d.rejected.iter().map(|e| e.index).collect();
        assert_eq!(idx, [1, 2]);

        for v in [
            json!("x"),
            json!({"spans": 1}),
            json!({"spans": null}),
            json!({}),
            json!(3),
        ] {
            let e = spans_from_simple_json(&v).unwrap_err();
            assert_eq!(e.span_index(), None, "{v}");
            assert!(decode_simple_json(&v).is_err());
        }
        assert_eq!(spans_from_simple_json(&json!([])).unwrap(), vec![]);
    }

    #[test]
    fn long_user_text_is_cut_in_messages() {
        let long = "k".repeat(1000);
        let e = bad(with(json!({ "kind": long })));
        assert!(e.message.len() < 300, "{}", e.message);
        assert!(e.message.contains('…'));
    }
}
