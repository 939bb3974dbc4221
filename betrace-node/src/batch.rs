//! SDK spans of an array read in one pass by JavaScript.
//!
//! In: the array given to `evaluate`/`check`. Out: for each element, a [`Span`] (or the
//! [`Problem`] of one of its values) when it is an SDK `ReadableSpan` of the plain shape
//! `read_sdk_spans.js` accepts, else `None`: the element is then read one property at a time
//! by [`crate::spans`], which accepts every shape and reports every problem.
//!
//! Reading a span through Node-API costs one call per property, string and array element
//! (about 150 for a span of ten attributes); `read_sdk_spans.js` reads the same properties in
//! JavaScript and hands over one JSON text, which is parsed here with the same conversions:
//! ids, kinds, status codes and times are checked by the functions of [`crate::spans`], and a
//! number becomes an integer attribute exactly when [`crate::js::integral_i64`] says so.

use std::fmt;
use std::sync::Arc;

use betrace_core::{AttrValue, Attributes, IdDraft, InputFormat, Resource, Span, SpanDraft};
use napi::bindgen_prelude::{FromNapiValue, Function, FunctionRef, Object};
use napi::{Env, JsValue, UnknownRef};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::js::{Problem, integral_i64};
use crate::spans::{checked, hrtime_parts, span_kind, status_code};

/// The function of `read_sdk_spans.js`.
const SCRIPT: &str = include_str!("read_sdk_spans.js");

/// The compiled `read_sdk_spans.js` of one Node.js environment (instance data), kept so that
/// V8 optimizes it once rather than on every call.
struct Reader(FunctionRef<UnknownRef<false>, String>);

/// The function of `read_sdk_spans.js`, compiled on the environment's first call.
fn reader(env: &Env) -> napi::Result<Function<'_, UnknownRef<false>, String>> {
    if let Some(Reader(function)) = env.get_instance_data::<Reader>()? {
        return function.borrow_back(env);
    }
    let function: Function<UnknownRef<false>, String> = env.run_script(SCRIPT)?;
    env.set_instance_data(Reader(function.create_ref()?), (), |_| {})?;
    Ok(function)
}

/// One element's result: `None` when the element is left to [`crate::spans`].
pub(crate) type Element = Option<Result<Span, Problem>>;

/// Reads `items` with `read_sdk_spans.js`. `Ok(None)` when its JSON cannot be parsed (a string
/// with a lone UTF-16 surrogate, which JSON cannot carry): every element is then left to
/// [`crate::spans`]. Errors: exceptions thrown while reading (a getter, `spanContext()`).
pub(crate) fn read(env: &Env, items: &Object<'_>) -> napi::Result<Option<Vec<Element>>> {
    let items = UnknownRef::<false>::from_unknown(items.to_unknown())?;
    let text = reader(env)?.call(items)?;
    let Ok(Batch(spans, resources)) = serde_json::from_str::<Batch>(&text) else {
        return Ok(None);
    };
    let resources: Vec<Arc<Resource>> = resources
        .into_iter()
        .map(|AttributeList(attributes)| Arc::new(Resource { attributes }))
        .collect();
    let no_resource = Arc::new(Resource::default());
    Ok(Some(
        spans
            .into_iter()
            .map(|s| s.map(|s| s.into_span(&resources, &no_resource)))
            .collect(),
    ))
}

/// `[spans, resources]` as `read_sdk_spans.js` writes it.
#[derive(Deserialize)]
struct Batch(Vec<Option<SdkSpan>>, Vec<AttributeList>);

/// One span as `read_sdk_spans.js` writes it.
#[derive(Deserialize)]
struct SdkSpan(
    /// traceId
    String,
    /// spanId
    String,
    /// parent span id, `""` for none
    String,
    /// name
    String,
    /// JS `SpanKind`
    f64,
    /// status code
    f64,
    /// status message
    String,
    /// start hrtime
    [f64; 2],
    /// end hrtime
    [f64; 2],
    /// index into the resources, -1 for none
    i64,
    /// instrumentation scope name
    String,
    AttributeList,
);

impl SdkSpan {
    /// The span, its values checked as [`crate::spans`] checks them.
    fn into_span(
        self,
        resources: &[Arc<Resource>],
        no_resource: &Arc<Resource>,
    ) -> Result<Span, Problem> {
        let SdkSpan(
            trace_id,
            span_id,
            parent,
            name,
            kind,
            code,
            status_message,
            start,
            end,
            resource,
            scope_name,
            AttributeList(attributes),
        ) = self;
        let resource = usize::try_from(resource)
            .ok()
            .and_then(|i| resources.get(i))
            .unwrap_or(no_resource)
            .clone();
        let start_time_unix_nano = hrtime_parts("startTime", start[0], start[1])?;
        let end_time_unix_nano = hrtime_parts("endTime", end[0], end[1])?;
        checked(SpanDraft {
            trace_id: IdDraft::Hex(trace_id.into()),
            span_id: IdDraft::Hex(span_id.into()),
            parent_span_id: IdDraft::Hex(parent.into()),
            name,
            kind: span_kind(kind),
            status_code: status_code(code),
            status_message,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes,
            ..SpanDraft::new(InputFormat::NodeSdk, resource, scope_name.into())
        })
    }
}

/// Attributes from a JSON object: `null` values are left out.
struct AttributeList(Attributes);

impl<'de> Deserialize<'de> for AttributeList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AttributeList, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = AttributeList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of attributes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeList, A::Error> {
                let mut out = Attributes::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((key, MaybeValue(value))) = map.next_entry::<String, MaybeValue>()? {
                    if let Some(value) = value {
                        out.push((key.into(), value));
                    }
                }
                Ok(AttributeList(out))
            }
        }
        deserializer.deserialize_map(ListVisitor)
    }
}

/// One attribute value, `None` for `null`.
struct MaybeValue(Option<AttrValue>);

impl<'de> Deserialize<'de> for MaybeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MaybeValue, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = MaybeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, boolean, number, array or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<MaybeValue, E> {
        Ok(MaybeValue(None))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<MaybeValue, E> {
        Ok(MaybeValue(Some(AttrValue::Bool(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MaybeValue, E> {
        Ok(MaybeValue(Some(AttrValue::Str(v.into()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<MaybeValue, E> {
        Ok(MaybeValue(Some(AttrValue::Str(v.into()))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MaybeValue, E> {
        Ok(MaybeValue(Some(AttrValue::Int(v))))
    }

    /// JSON writes every number as the double it is; one beyond i64 is a float, as
    /// [`integral_i64`] decides for a number read through Node-API.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MaybeValue, E> {
        Ok(MaybeValue(Some(match i64::try_from(v) {
            Ok(i) => AttrValue::Int(i),
            Err(_) => AttrValue::Float(v as f64),
        })))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<MaybeValue, E> {
        Ok(MaybeValue(Some(match integral_i64(v) {
            Some(i) => AttrValue::Int(i),
            None => AttrValue::Float(v),
        })))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(MaybeValue(item)) = seq.next_element::<MaybeValue>()? {
            items.extend(item);
        }
        Ok(MaybeValue(Some(AttrValue::Array(items.into()))))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeValue, A::Error> {
        let mut items = Vec::new();
        while let Some((key, MaybeValue(value))) = map.next_entry::<String, MaybeValue>()? {
            if let Some(value) = value {
                items.push((key, value));
            }
        }
        Ok(MaybeValue(Some(AttrValue::KvList(
            items.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(json: &str) -> Attributes {
        serde_json::from_str::<AttributeList>(json).unwrap().0
    }

    #[test]
    fn numbers_become_integers_as_through_node_api() {
        let a = attrs(
            r#"{"i":1500,"f":0.25,"neg":-3,"big":100000000000000000000,"edge":9223372036854776000,"min":-9223372036854776000,"s":"x","b":true,"n":null,"l":[1,null,"a"]}"#,
        );
        assert_eq!(
            a,
            vec![
                ("i".into(), AttrValue::Int(1500)),
                ("f".into(), AttrValue::Float(0.25)),
                ("neg".into(), AttrValue::Int(-3)),
                ("big".into(), AttrValue::Float(1e20)),
                ("edge".into(), AttrValue::Float(9_223_372_036_854_775_808.0)),
                ("min".into(), AttrValue::Int(i64::MIN)),
                ("s".into(), AttrValue::Str("x".into())),
                ("b".into(), AttrValue::Bool(true)),
                (
                    "l".into(),
                    AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("a".into())].into())
                ),
            ]
        );
        for (n, json) in [(1e20, "100000000000000000000"), (-0.0, "0"), (0.25, "0.25")] {
            let via_json = attrs(&format!(r#"{{"x":{json}}}"#));
            let via_napi = match integral_i64(n) {
                Some(i) => AttrValue::Int(i),
                None => AttrValue::Float(n),
            };
            assert_eq!(via_json, vec![("x".into(), via_napi)]);
        }
    }

    #[test]
    fn span_values_are_checked_like_the_property_reader() {
        let span = |kind: f64, start: [f64; 2]| {
            SdkSpan(
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into(),
                String::new(),
                "checkout".into(),
                kind,
                2.0,
                "declined".into(),
                start,
                [1.0, 5.0],
                0,
                "scope".into(),
                AttributeList(Vec::new()),
            )
        };
        let resources = vec![Arc::new(Resource::with_service("shop"))];
        let none = Arc::new(Resource::default());
        let ok = span(1.0, [1.0, 2.0]).into_span(&resources, &none).unwrap();
        assert_eq!(ok.kind, betrace_core::SpanKind::Server);
        assert_eq!(ok.start_time_unix_nano, 1_000_000_002);
        assert_eq!(ok.service(), "shop");
        assert_eq!(ok.parent_span_id, None);
        let bad = span(7.0, [1.0, 2.0])
            .into_span(&resources, &none)
            .unwrap_err();
        assert_eq!(bad.path, "kind");
        let bad = span(1.0, [1.0, -2.0])
            .into_span(&resources, &none)
            .unwrap_err();
        assert_eq!(bad.path, "startTime[1]");
    }
}
