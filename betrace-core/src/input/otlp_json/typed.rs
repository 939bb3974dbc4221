//! OTLP/JSON read straight into typed structures, without building a `serde_json::Value`.
//!
//! This is the fast path of [`super::decode_otlp_json`]: it accepts only the plain shape of a
//! request (each field once, every value of its expected JSON type, no attribute nested too
//! deep) and answers `None` for anything else, in which case the caller decodes through
//! `serde_json::Value` — the reference decoder, which names each problem of shape. Its drafts
//! go through the same [`SpanDraft::into_span`], so whenever this path answers, its spans and
//! rejections are exactly the reference decoder's (a test compares the two on every OTLP/JSON
//! fixture).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{decode_base64, double_from_text};
use crate::input::draft::{EnumDraft, IdDraft, InputFormat, SpanDraft};
use crate::input::simple_json::parse_digits;
use crate::input::{Decoded, KeyInterner, MAX_VALUE_DEPTH, dedup_attributes};
use crate::span::{AttrValue, Attributes, Resource};

/// The spans of an OTLP/JSON `ExportTraceServiceRequest`, or `None` when the body is not in
/// the plain shape this path reads (see the module documentation).
pub(crate) fn decode(bytes: &[u8]) -> Option<Decoded> {
    let request: Request<'_> = serde_json::from_slice(bytes).ok()?;
    let mut keys = KeyInterner::default();
    let mut out = Decoded::default();
    let mut index = 0;
    for rs in request.resource_spans.unwrap_or_default() {
        let attributes = match rs.resource.and_then(|r| r.attributes) {
            Some(kvs) => dedup_attributes(key_values(kvs, 0, &mut keys)?),
            None => Vec::new(),
        };
        let resource = Arc::new(Resource { attributes });
        for ss in rs.scope_spans.unwrap_or_default() {
            let scope_name = keys.intern(ss.scope.and_then(|s| s.name).as_deref().unwrap_or(""));
            for s in ss.spans.unwrap_or_default() {
                match span(s, &resource, &scope_name, &mut keys)?.into_span(index) {
                    Ok(span) => out.spans.push(span),
                    Err(e) => out.rejected.push(e),
                }
                index += 1;
            }
        }
    }
    Some(out)
}

fn span<'a>(
    s: JsonSpan<'a>,
    resource: &Arc<Resource>,
    scope_name: &Arc<str>,
    keys: &mut KeyInterner,
) -> Option<SpanDraft<'a>> {
    let id = |text: Option<Cow<'a, str>>| text.map_or(IdDraft::Absent, IdDraft::Hex);
    let (status_code, status_message) = match s.status {
        None => (None, None),
        Some(st) => (st.code, st.message),
    };
    Some(SpanDraft {
        trace_id: id(s.trace_id),
        span_id: id(s.span_id),
        parent_span_id: id(s.parent_span_id),
        name: s.name.map(Cow::into_owned).unwrap_or_default(),
        kind: enum_draft(s.kind),
        status_code: enum_draft(status_code),
        status_message: status_message.map(Cow::into_owned).unwrap_or_default(),
        start_time_unix_nano: s.start_time_unix_nano.map_or(0, |n| n.0),
        end_time_unix_nano: s.end_time_unix_nano.map_or(0, |n| n.0),
        attributes: match s.attributes {
            Some(kvs) => key_values(kvs, 0, keys)?,
            None => Vec::new(),
        },
        ..SpanDraft::new(
            InputFormat::OtlpJson,
            Arc::clone(resource),
            Arc::clone(scope_name),
        )
    })
}

fn enum_draft(e: Option<Enum<'_>>) -> EnumDraft<'_> {
    match e {
        None => EnumDraft::Absent,
        Some(Enum::Number(n)) => EnumDraft::Number(n),
        Some(Enum::Name(name)) => EnumDraft::Name(name),
    }
}

/// Key-values with a value set, as written (keys may repeat).
fn key_values(
    kvs: Vec<JsonKeyValue<'_>>,
    depth: usize,
    keys: &mut KeyInterner,
) -> Option<Attributes> {
    let mut out = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let Some(value) = kv.value else { continue };
        if let Some(v) = any_value(value, depth, keys)? {
            out.push((keys.intern(kv.key.as_deref().unwrap_or("")), v));
        }
    }
    Some(out)
}

/// `Some(None)` for an `AnyValue` with no value set; `None` when it has several or a value
/// the reference decoder would reject.
fn any_value(
    v: JsonAnyValue<'_>,
    depth: usize,
    keys: &mut KeyInterner,
) -> Option<Option<AttrValue>> {
    let set = usize::from(v.string_value.is_some())
        + usize::from(v.bool_value.is_some())
        + usize::from(v.int_value.is_some())
        + usize::from(v.double_value.is_some())
        + usize::from(v.bytes_value.is_some())
        + usize::from(v.array_value.is_some())
        + usize::from(v.kvlist_value.is_some());
    if set > 1 {
        return None;
    }
    Some(Some(if let Some(s) = v.string_value {
        AttrValue::Str(s.as_ref().into())
    } else if let Some(b) = v.bool_value {
        AttrValue::Bool(b)
    } else if let Some(i) = v.int_value {
        AttrValue::Int(i.0)
    } else if let Some(d) = v.double_value {
        AttrValue::Float(d.0)
    } else if let Some(b) = v.bytes_value {
        AttrValue::Bytes(decode_base64(&b).ok()?.into_boxed_slice())
    } else if let Some(a) = v.array_value {
        if depth >= MAX_VALUE_DEPTH {
            return None;
        }
        let items = a.values.unwrap_or_default();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = any_value(item, depth + 1, keys)? {
                out.push(v);
            }
        }
        AttrValue::Array(out.into_boxed_slice())
    } else if let Some(l) = v.kvlist_value {
        if depth >= MAX_VALUE_DEPTH {
            return None;
        }
        match l.values {
            None => AttrValue::KvList(Box::default()),
            Some(kvs) => AttrValue::KvList(key_values(kvs, depth + 1, keys)?.into()),
        }
    } else {
        return Some(None);
    }))
}

// ---- the reference decoder's parse, deep values skipped

/// JSON nesting kept by [`parse_value`]. From the document to the first attribute value are
/// 10 levels, and every value level adds at most 4 (`kvlistValue`, `values`, the key-value,
/// its `value`), so a value at depth [`MAX_VALUE_DEPTH`] — which the converter drops with its
/// attribute, without looking inside — still lies within it.
const MAX_JSON_DEPTH: usize = 16 + 4 * (MAX_VALUE_DEPTH + 1);

/// Parses JSON like `serde_json::from_slice::<serde_json::Value>`, except that anything
/// nested deeper than [`MAX_JSON_DEPTH`] is skipped (read without recursion, kept as `null`)
/// instead of failing the whole document at serde_json's recursion limit of 128. Only values
/// below an attribute value too deep to convert, or below fields the decoder ignores, are
/// that deep in a valid request.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = de::DeserializeSeed::deserialize(Capped(0), &mut de)?;
    de.end()?;
    Ok(value)
}

/// A JSON value at nesting `.0`.
#[derive(Clone, Copy)]
struct Capped(usize);

impl<'de> de::DeserializeSeed<'de> for Capped {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        if self.0 >= MAX_JSON_DEPTH {
            de::IgnoredAny::deserialize(d)?;
            return Ok(serde_json::Value::Null);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Capped {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(b.into())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(n.into())
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(s.into())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Capped(self.0 + 1))? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut obj = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(Capped(self.0 + 1))?;
            obj.insert(key, v);
        }
        Ok(serde_json::Value::Object(obj))
    }
}

// ---- the request shape (lowerCamelCase keys, snake_case accepted as aliases)

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow, alias = "resource_spans")]
    resource_spans: Option<Vec<ResourceSpans<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    #[serde(borrow)]
    resource: Option<JsonResource<'a>>,
    /// Pre-1.0 senders name it `instrumentationLibrarySpans`; a request holding both goes to
    /// the reference decoder (a duplicate field here), which prefers `scopeSpans`.
    #[serde(
        borrow,
        alias = "scope_spans",
        alias = "instrumentationLibrarySpans",
        alias = "instrumentation_library_spans"
    )]
    scope_spans: Option<Vec<ScopeSpans<'a>>>,
}

#[derive(Deserialize)]
struct JsonResource<'a> {
    #[serde(borrow)]
    attributes: Option<Vec<JsonKeyValue<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans<'a> {
    /// Pre-1.0: `instrumentationLibrary` (the same `name`), handled like `scopeSpans`.
    #[serde(
        borrow,
        alias = "instrumentationLibrary",
        alias = "instrumentation_library"
    )]
    scope: Option<Scope<'a>>,
    #[serde(borrow)]
    spans: Option<Vec<JsonSpan<'a>>>,
}

#[derive(Deserialize)]
struct Scope<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan<'a> {
    #[serde(borrow, alias = "trace_id")]
    trace_id: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "span_id")]
    span_id: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "parent_span_id")]
    parent_span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Enum<'a>>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<Nanos>,
    #[serde(alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<Nanos>,
    #[serde(borrow)]
    status: Option<Status<'a>>,
    #[serde(borrow)]
    attributes: Option<Vec<JsonKeyValue<'a>>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(borrow)]
    code: Option<Enum<'a>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct JsonKeyValue<'a> {
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<JsonAnyValue<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonAnyValue<'a> {
    #[serde(borrow, alias = "string_value")]
    string_value: Option<Cow<'a, str>>,
    #[serde(alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value")]
    int_value: Option<Int64>,
    #[serde(alias = "double_value")]
    double_value: Option<Double>,
    #[serde(borrow, alias = "bytes_value")]
    bytes_value: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "array_value")]
    array_value: Option<Values<JsonAnyValue<'a>>>,
    #[serde(borrow, alias = "kvlist_value")]
    kvlist_value: Option<Values<JsonKeyValue<'a>>>,
}

#[derive(Deserialize)]
struct Values<T> {
    values: Option<Vec<T>>,
}

/// An enum as its number or its name.
enum Enum<'a> {
    Number(i64),
    Name(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Enum<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Enum<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an enum number or name")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Enum::Number(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                i64::try_from(n)
                    .map(Enum::Number)
                    .map_err(|_| E::custom("enum number out of range"))
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Enum::Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Enum::Name(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

/// Nanoseconds: a non-negative JSON integer or a string of decimal digits.
struct Nanos(u64);

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Nanos;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nanoseconds")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Nanos, E> {
                Ok(Nanos(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Nanos, E> {
                parse_digits(s).map(Nanos).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A protobuf JSON int64 as an integer or a decimal string (other spellings go to the
/// reference decoder).
struct Int64(i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit integer")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Int64, E> {
                Ok(Int64(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Int64, E> {
                i64::try_from(n).map(Int64).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Int64, E> {
                s.parse().map(Int64).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A protobuf JSON double as a number, a finite numeric string, or `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
struct Double(f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Double;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a double")
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Double, E> {
                Ok(Double(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Double, E> {
                Ok(Double(n as f64))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Double, E> {
                Ok(Double(n as f64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Double, E> {
                double_from_text(s)
                    .map(Double)
                    .ok_or_else(|| E::custom("not a double"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::otlp_json::decode_otlp_json_value;

    /// The reference decoder's result for `body`.
    fn reference(body: &[u8]) -> Option<Decoded> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        decode_otlp_json_value(&value).ok()
    }

    #[test]
    fn recorded_sdk_bodies_take_the_fast_path_and_match_the_reference() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/traces");
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            if path.extension().is_none_or(|e| e != "json")
                || !body.starts_with(b"{\"resourceSpans\"")
            {
                continue;
            }
            let fast = decode(&body).unwrap_or_else(|| panic!("{}: no fast path", path.display()));
            assert_eq!(Some(fast), reference(&body), "{}", path.display());
            read += 1;
        }
        assert!(read >= 10, "only {read} OTLP/JSON examples");
    }

    #[test]
    fn pre_1_0_names_take_the_fast_path_unless_both_names_are_present() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testing/inputs/otlp-json-pre-1.0.json");
        let body = std::fs::read(&path).unwrap();
        let fast = decode(&body).expect("the fast path reads pre-1.0 names");
        assert_eq!(fast.spans.len(), 2);
        assert_eq!(Some(fast), reference(&body));
        // Both names: a duplicate field here, so the reference decoder decides (1.0 wins).
        let both = br#"{"resourceSpans":[{"scopeSpans":[],"instrumentationLibrarySpans":[]}]}"#;
        assert!(decode(both).is_none());
    }

    const SPAN: &str =
        r#""traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174""#;

    fn body(span_fields: &str) -> String {
        format!(
            r#"{{"resource_spans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scope_spans":[{{"scope":{{"name":"lib"}},"spans":[{{{SPAN}{span_fields}}}]}}]}}]}}"#
        )
    }

    #[test]
    fn plain_shapes_match_the_reference() {
        for fields in [
            "",
            r#","parentSpanId":null,"name":"a\"b\u00e9","kind":2"#,
            r#","parent_span_id":"","kind":"SPAN_KIND_CLIENT","status":{"code":2,"message":"x"}"#,
            r#","parentSpanId":"0000000000000000","startTimeUnixNano":"1700000000000000000","end_time_unix_nano":1700000000000000500"#,
            r#","status":{"code":"STATUS_CODE_OK"},"events":[{"name":"e"}],"flags":1"#,
            r#","attributes":[{"key":"a","value":{"arrayValue":{}}},{"key":"b","value":{"kvlistValue":{"values":[{"key":"c","value":{"intValue":"7"}}]}}}]"#,
            r#","attributes":[{"key":"d","value":{"doubleValue":"NaN"}},{"key":"e","value":{"double_value":1}},{"key":"f","value":{"bytesValue":"aGk="}}]"#,
            r#","attributes":[{"key":"g","value":{}},{"key":"h"},{"key":"a","value":{"boolValue":true}},{"key":"a","value":{"stringValue":"later"}}]"#,
            r#","attributes":[{"key":"n","value":{"arrayValue":{"values":[{"intValue":1},{},{"stringValue":"s","intValue":null}]}}}]"#,
            // Values of the right JSON type that the shared checks reject.
            r#","kind":9"#,
            r#","kind":"SIDEWAYS""#,
            r#","status":{"code":3}"#,
            r#","parentSpanId":"abc""#,
        ] {
            let text = body(fields);
            let fast = decode(text.as_bytes());
            assert!(fast.is_some(), "{text}");
            // Compared as text: NaN is not equal to itself.
            assert_eq!(
                format!("{fast:?}"),
                format!("{:?}", reference(text.as_bytes())),
                "{text}"
            );
        }
        let zero = body("").replace("eee19b7ec3c1b174", "0000000000000000");
        let fast = decode(zero.as_bytes()).expect("a valid shape with an invalid id");
        assert_eq!(fast.rejected[0].message, "an all-zero span id is invalid");
        assert_eq!(Some(fast), reference(zero.as_bytes()));
    }

    #[test]
    fn anything_unusual_goes_to_the_reference() {
        for fields in [
            r#","name":5"#,
            r#","kind":1.0"#,
            r#","startTimeUnixNano":-1"#,
            r#","startTimeUnixNano":"1e9""#,
            r#","name":"a","name":"b""#,
            r#","attributes":[{"key":"a","value":{"stringValue":"s","intValue":1}}]"#,
            r#","attributes":[{"key":"a","value":{"intValue":1.0}}]"#,
            r#","attributes":[{"key":"a","value":{"bytesValue":"*"}}]"#,
            r#","attributes":[{"key":"a","value":"plain"}]"#,
        ] {
            let text = body(fields);
            assert_eq!(decode(text.as_bytes()), None, "{text}");
        }
        assert_eq!(decode(b"{\"resourceSpans\": 5}"), None);
        assert_eq!(decode(b"[]"), None);
    }
}
