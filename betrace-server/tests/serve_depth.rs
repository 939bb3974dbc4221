//! An attribute value nested deeper than the limit, over OTLP/HTTP (protobuf and JSON) to a
//! server process: the attribute is dropped and counted, the request is answered 200 with a
//! partial-success message naming it, and its span and the other spans are evaluated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::{Value, json};

/// Past prost's recursion limit (and serde_json's), not only past BeTrace's.
const LEVELS: usize = 300;

fn nested(levels: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for _ in 0..levels {
        v = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    v
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

/// Two traces of one `payment` span each; the first span holds `deep` and `ok`.
fn request(trace_byte: u8) -> ExportTraceServiceRequest {
    let span = |t: u8, attributes: Vec<KeyValue>| Span {
        trace_id: vec![t; 16],
        span_id: vec![t; 8],
        name: "payment".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", string("pay"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(
                        trace_byte,
                        vec![kv("deep", nested(LEVELS)), kv("ok", string("yes"))],
                    ),
                    span(trace_byte + 1, vec![kv("ok", string("yes"))]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The OTLP/JSON of `request` (protobuf JSON mapping: hex ids, lowerCamelCase).
fn json_request(trace_byte: u8) -> Vec<u8> {
    let mut deep = json!({"intValue": "1"});
    for _ in 0..LEVELS {
        deep = json!({"arrayValue": {"values": [deep]}});
    }
    let span = |t: u8, deep: Option<&Value>| {
        let mut attrs = vec![json!({"key": "ok", "value": {"stringValue": "yes"}})];
        if let Some(d) = deep {
            attrs.insert(0, json!({"key": "deep", "value": d}));
        }
        json!({"traceId": hex(t, 16), "spanId": hex(t, 8), "name": "payment",
               "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": attrs})
    };
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "pay"}}]},
        "scopeSpans": [{"spans": [span(trace_byte, Some(&deep)), span(trace_byte + 1, None)]}]
    }]});
    // serde_json's own writer has no depth limit.
    serde_json::to_vec(&body).unwrap()
}

fn hex(byte: u8, n: usize) -> String {
    format!("{byte:02x}").repeat(n)
}

#[test]
fn deep_attribute_values_drop_the_attribute_not_the_request() {
    let s = Server::test_mode();
    s.create_rule(&json!({"id": "no-payment", "expression": "never { payment.where(ok == \"yes\") }", "severity": "HIGH"}));

    let r = s.post_raw(
        "/v1/traces",
        "application/x-protobuf",
        None,
        request(0x11).encode_to_vec(),
    );
    assert_eq!(r.status(), 200);
    let resp = ExportTraceServiceResponse::decode(r.bytes().unwrap().as_ref()).unwrap();
    let partial = resp
        .partial_success
        .expect("a partial success names the attribute");
    assert_eq!(partial.rejected_spans, 0);
    assert!(
        partial
            .error_message
            .contains("1 attribute(s) dropped: span 0: field `attributes.deep`"),
        "{}",
        partial.error_message
    );

    let r = s.post_raw("/v1/traces", "application/json", None, json_request(0x21));
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "0", "{body}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("span 0: field `attributes.deep`: attribute dropped: its value is nested deeper than 30 levels"),
        "{body}"
    );

    assert_eq!(
        s.metric("betrace_attributes_dropped_total{reason=\"depth\"}"),
        2.0
    );
    assert_eq!(
        s.metric("betrace_spans_rejected_total{reason=\"invalid\"}"),
        0.0
    );
    // Every span was kept with its other attributes: all four traces violate the rule.
    s.flush();
    let mut traces: Vec<String> = s
        .violations("")
        .iter()
        .map(|v| v["traceId"].as_str().unwrap().to_owned())
        .collect();
    traces.sort();
    assert_eq!(
        traces,
        [hex(0x11, 16), hex(0x12, 16), hex(0x21, 16), hex(0x22, 16)]
    );
    let (st, h) = s.get("/v1/health");
    assert_eq!((st, h["status"].clone()), (200, json!("HEALTHY")));
}
