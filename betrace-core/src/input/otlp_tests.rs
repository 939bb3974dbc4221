use std::sync::Arc;

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message as _;
use serde_json::Value;

use super::otlp_json::BASE64_STANDARD;
use super::*;
use crate::span::{AttrValue, Span, SpanKind, StatusCode};

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
        "span 1: field `trace_id`: a trace id is 16 bytes, found 15"
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
        let (_, dropped) = super::otlp_wire::without_deep_values(&bytes).unwrap();
        assert_eq!(dropped, d.dropped_attributes);
    }
}

#[test]
fn protobuf_values_at_the_depth_limit_are_kept() {
    for kvlist in [false, true] {
        let bytes = deep_request(MAX_VALUE_DEPTH, kvlist).encode_to_vec();
        // prost decodes the deepest allowed value without the wire pass.
        assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
        let (_, dropped) = super::otlp_wire::without_deep_values(&bytes).unwrap();
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
        let pb =
            decode_otlp_protobuf(&deep_request(MAX_VALUE_DEPTH, kvlist).encode_to_vec()).unwrap();
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
    let mut d = decode_otlp_json_value(&json_request(json!([json_span_value(changes)]))).unwrap();
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
    let e = one_json(json!({"attributes": [{"key": 1, "value": {"intValue": 1}}]})).unwrap_err();
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
