//! Span input end to end: the conformance corpus's spans, OTLP protobuf and OTLP/JSON of the
//! same content, and a property test over arbitrary span data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test on unexpected input"
)]

use betrace_testing::conformance;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use betrace_core::{
    AttrValue, Attributes, Decoded, Resource, Span, SpanId, SpanKind, StatusCode, TraceId,
    decode_otlp_json, decode_otlp_json_value, decode_otlp_protobuf, group_by_trace,
    spans_from_simple_json,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
use opentelemetry_proto::tonic::trace::v1 as pb;
use proptest::prelude::*;
use prost::Message as _;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Conformance corpus

#[test]
fn conformance_spans_decode_as_the_corpus_says() {
    let mut cases = 0;
    let mut malformed = 0;
    let mut span_input = 0;
    for case in conformance::cases() {
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        let result = spans_from_simple_json(&case["spans"]);
        cases += 1;
        if case["area"] == "span-input" {
            span_input += 1;
        }
        match case["expect"].get("malformedSpan") {
            Some(index) => {
                malformed += 1;
                let err = result.expect_err(&id);
                assert_eq!(
                    err.span_index(),
                    Some(index.as_u64().unwrap() as usize),
                    "{id}: {err}"
                );
                assert!(!err.to_string().is_empty());
            }
            None => {
                let spans = result.unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(spans.len(), case["spans"].as_array().unwrap().len(), "{id}");
                assert_eq!(
                    group_by_trace(spans.clone()).len(),
                    1,
                    "{id}: one trace per case"
                );
                check_span_input_case(&id, &spans);
            }
        }
    }
    eprintln!("{cases} conformance cases decoded ({malformed} malformed, {span_input} span-input)");
    assert!(cases > 0 && malformed > 0 && span_input > 0);
}

/// Details of the `span-input` cases beyond "decodes".
fn check_span_input_case(id: &str, spans: &[Span]) {
    let by_id = |hex: &str| {
        spans
            .iter()
            .find(|s| s.span_id.to_hex() == hex)
            .unwrap_or_else(|| panic!("{id}: no span {hex}"))
    };
    match id {
        "in-kind-status-spellings" => {
            let kinds: Vec<SpanKind> = spans.iter().map(|s| s.kind).collect();
            use SpanKind::*;
            assert_eq!(kinds, [Server, Server, Server, Server, Client]);
            let codes: Vec<StatusCode> = spans.iter().map(|s| s.status_code).collect();
            use StatusCode::*;
            assert_eq!(codes, [Error, Error, Error, Ok, Error]);
            assert_eq!(spans[2].status_message, "boom");
        }
        "in-root-null-attr-upper-id" => {
            let root = by_id("00000000000000ab");
            assert_eq!(root.parent_span_id, None);
            assert_eq!(root.attribute("coupon"), None);
            assert_eq!(by_id("00000000000000ac").parent_span_id, Some(root.span_id));
        }
        "in-duration-ms-string-times" => {
            assert_eq!(by_id("00000000000000b1").duration_nanos(), 1_500_000);
            assert_eq!(by_id("00000000000000b2").duration_nanos(), 1_500_000);
            assert_eq!(by_id("00000000000000b3").duration_nanos(), 2_000_000);
        }
        "in-end-time-wins" => {
            let d: Vec<i64> = spans.iter().map(Span::duration_nanos).collect();
            assert_eq!(d, [10_000_000, 10_000_000, 20_000_000, 10_000]);
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP: protobuf and JSON of the same content

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn id16(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).unwrap()
}

/// Two services, two scopes, a parent/child pair across services and every value type.
fn realistic_request() -> ExportTraceServiceRequest {
    use any_value::Value as V;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    ExportTraceServiceRequest {
        resource_spans: vec![
            pb::ResourceSpans {
                resource: Some(PbResource {
                    attributes: vec![
                        kv("service.name", V::StringValue("checkout".into())),
                        kv("service.version", V::StringValue("1.4.2".into())),
                        kv("host.cpu.count", V::IntValue(8)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![
                    pb::ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "io.opentelemetry.http".into(),
                            version: "2.0".into(),
                            ..Default::default()
                        }),
                        spans: vec![pb::Span {
                            trace_id: id16(trace),
                            span_id: id16("00f067aa0ba902b7"),
                            name: "POST /checkout".into(),
                            kind: 2,
                            start_time_unix_nano: 1_700_000_000_000_000_000,
                            end_time_unix_nano: 1_700_000_000_250_000_000,
                            attributes: vec![
                                kv("http.request.method", V::StringValue("POST".into())),
                                kv("http.response.status_code", V::IntValue(500)),
                                kv("order.total", V::DoubleValue(1250.75)),
                                kv("user.premium", V::BoolValue(true)),
                                kv(
                                    "request.digest",
                                    V::BytesValue(vec![0xde, 0xad, 0xbe, 0xef]),
                                ),
                                kv(
                                    "order.items",
                                    V::ArrayValue(ArrayValue {
                                        values: vec![
                                            AnyValue {
                                                value: Some(V::StringValue("sku-1".into())),
                                            },
                                            AnyValue {
                                                value: Some(V::IntValue(-9_007_199_254_740_993)),
                                            },
                                        ],
                                    }),
                                ),
                                kv(
                                    "order.meta",
                                    V::KvlistValue(KeyValueList {
                                        values: vec![
                                            kv("channel", V::StringValue("web".into())),
                                            kv("retries", V::IntValue(0)),
                                        ],
                                    }),
                                ),
                                kv("empty.list", V::ArrayValue(ArrayValue { values: vec![] })),
                            ],
                            status: Some(pb::Status {
                                message: "payment declined".into(),
                                code: 2,
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    pb::ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "checkout.internal".into(),
                            ..Default::default()
                        }),
                        spans: vec![pb::Span {
                            trace_id: id16(trace),
                            span_id: id16("a1b2c3d4e5f60718"),
                            parent_span_id: id16("00f067aa0ba902b7"),
                            name: "validate cart".into(),
                            kind: 1,
                            start_time_unix_nano: 1_700_000_000_010_000_000,
                            end_time_unix_nano: 1_700_000_000_020_000_000,
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            pb::ResourceSpans {
                resource: Some(PbResource {
                    attributes: vec![kv("service.name", V::StringValue("payments".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![pb::ScopeSpans {
                    scope: None,
                    spans: vec![pb::Span {
                        trace_id: id16(trace),
                        span_id: id16("1122334455667788"),
                        parent_span_id: id16("00f067aa0ba902b7"),
                        name: "charge".into(),
                        kind: 3,
                        start_time_unix_nano: 1_700_000_000_030_000_000,
                        end_time_unix_nano: 1_700_000_000_240_000_000,
                        attributes: vec![kv("payment.amount", V::DoubleValue(1250.75))],
                        status: Some(pb::Status {
                            message: String::new(),
                            code: 1,
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

/// The same content as [`realistic_request`], as an OTLP/JSON exporter writes it.
const REALISTIC_JSON: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          {"key": "service.name", "value": {"stringValue": "checkout"}},
          {"key": "service.version", "value": {"stringValue": "1.4.2"}},
          {"key": "host.cpu.count", "value": {"intValue": "8"}}
        ],
        "droppedAttributesCount": 0
      },
      "scopeSpans": [
        {
          "scope": {"name": "io.opentelemetry.http", "version": "2.0"},
          "spans": [
            {
              "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736",
              "spanId": "00f067aa0ba902b7",
              "parentSpanId": "",
              "traceState": "",
              "flags": 257,
              "name": "POST /checkout",
              "kind": 2,
              "startTimeUnixNano": "1700000000000000000",
              "endTimeUnixNano": "1700000000250000000",
              "attributes": [
                {"key": "http.request.method", "value": {"stringValue": "POST"}},
                {"key": "http.response.status_code", "value": {"intValue": "500"}},
                {"key": "order.total", "value": {"doubleValue": 1250.75}},
                {"key": "user.premium", "value": {"boolValue": true}},
                {"key": "request.digest", "value": {"bytesValue": "3q2+7w=="}},
                {"key": "order.items", "value": {"arrayValue": {"values": [
                  {"stringValue": "sku-1"},
                  {"intValue": "-9007199254740993"}
                ]}}},
                {"key": "order.meta", "value": {"kvlistValue": {"values": [
                  {"key": "channel", "value": {"stringValue": "web"}},
                  {"key": "retries", "value": {"intValue": 0}}
                ]}}},
                {"key": "empty.list", "value": {"arrayValue": {}}}
              ],
              "droppedAttributesCount": 0,
              "events": [{"timeUnixNano": "1700000000100000000", "name": "retry"}],
              "links": [],
              "status": {"code": 2, "message": "payment declined"}
            }
          ],
          "schemaUrl": "https://opentelemetry.io/schemas/1.24.0"
        },
        {
          "scope": {"name": "checkout.internal"},
          "spans": [
            {
              "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
              "spanId": "a1b2c3d4e5f60718",
              "parentSpanId": "00f067aa0ba902b7",
              "name": "validate cart",
              "kind": 1,
              "startTimeUnixNano": 1700000000010000000,
              "endTimeUnixNano": 1700000000020000000,
              "status": {}
            }
          ]
        }
      ]
    },
    {
      "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]},
      "scopeSpans": [
        {
          "spans": [
            {
              "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
              "spanId": "1122334455667788",
              "parentSpanId": "00f067aa0ba902b7",
              "name": "charge",
              "kind": 3,
              "startTimeUnixNano": "1700000000030000000",
              "endTimeUnixNano": "1700000000240000000",
              "attributes": [{"key": "payment.amount", "value": {"doubleValue": 1250.75}}],
              "status": {"code": 1}
            }
          ]
        }
      ]
    }
  ]
}"#;

fn expected_realistic_spans() -> Vec<Span> {
    let trace = TraceId(id16("4bf92f3577b34da6a3ce929d0e0e4736").try_into().unwrap());
    let sid = |h: &str| SpanId(hex::decode(h).unwrap().try_into().unwrap());
    let s = |k: &str, v: &str| {
        (
            betrace_core::span::AttrKey::from(k),
            AttrValue::Str(v.into()),
        )
    };
    let checkout = Arc::new(Resource {
        attributes: vec![
            s("service.name", "checkout"),
            s("service.version", "1.4.2"),
            ("host.cpu.count".into(), AttrValue::Int(8)),
        ],
    });
    vec![
        Span {
            trace_id: trace,
            span_id: sid("00f067aa0ba902b7"),
            parent_span_id: None,
            name: "POST /checkout".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            status_code: StatusCode::Error,
            status_message: "payment declined".into(),
            attributes: vec![
                s("http.request.method", "POST"),
                ("http.response.status_code".into(), AttrValue::Int(500)),
                ("order.total".into(), AttrValue::Float(1250.75)),
                ("user.premium".into(), AttrValue::Bool(true)),
                (
                    "request.digest".into(),
                    AttrValue::Bytes(vec![0xde, 0xad, 0xbe, 0xef].into()),
                ),
                (
                    "order.items".into(),
                    AttrValue::Array(
                        vec![
                            AttrValue::Str("sku-1".into()),
                            AttrValue::Int(-9_007_199_254_740_993),
                        ]
                        .into(),
                    ),
                ),
                (
                    "order.meta".into(),
                    AttrValue::KvList(
                        vec![s("channel", "web"), ("retries".into(), AttrValue::Int(0))].into(),
                    ),
                ),
                ("empty.list".into(), AttrValue::Array(vec![].into())),
            ],
            resource: checkout.clone(),
            scope_name: "io.opentelemetry.http".into(),
        },
        Span {
            trace_id: trace,
            span_id: sid("a1b2c3d4e5f60718"),
            parent_span_id: Some(sid("00f067aa0ba902b7")),
            name: "validate cart".into(),
            kind: SpanKind::Internal,
            start_time_unix_nano: 1_700_000_000_010_000_000,
            end_time_unix_nano: 1_700_000_000_020_000_000,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            attributes: vec![],
            resource: checkout,
            scope_name: "checkout.internal".into(),
        },
        Span {
            trace_id: trace,
            span_id: sid("1122334455667788"),
            parent_span_id: Some(sid("00f067aa0ba902b7")),
            name: "charge".into(),
            kind: SpanKind::Client,
            start_time_unix_nano: 1_700_000_000_030_000_000,
            end_time_unix_nano: 1_700_000_000_240_000_000,
            status_code: StatusCode::Ok,
            status_message: String::new(),
            attributes: vec![("payment.amount".into(), AttrValue::Float(1250.75))],
            resource: Arc::new(Resource::with_service("payments")),
            scope_name: "".into(),
        },
    ]
}

#[test]
fn protobuf_round_trip_matches_hand_written_json() {
    let bytes = realistic_request().encode_to_vec();
    let from_pb = decode_otlp_protobuf(&bytes).unwrap();
    assert!(from_pb.rejected.is_empty(), "{:?}", from_pb.rejected);
    assert_eq!(from_pb.spans, expected_realistic_spans());
    assert!(Arc::ptr_eq(
        &from_pb.spans[0].resource,
        &from_pb.spans[1].resource
    ));
    assert!(!Arc::ptr_eq(
        &from_pb.spans[1].resource,
        &from_pb.spans[2].resource
    ));

    let from_json = decode_otlp_json(REALISTIC_JSON.as_bytes()).unwrap();
    assert!(from_json.rejected.is_empty(), "{:?}", from_json.rejected);
    assert_eq!(from_json.spans, from_pb.spans);
    assert!(Arc::ptr_eq(
        &from_json.spans[0].resource,
        &from_json.spans[1].resource
    ));

    let traces = group_by_trace(from_pb.spans);
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].len(), 3);
    let root = traces[0].root().unwrap();
    assert_eq!(root.name, "POST /checkout");
    assert_eq!(traces[0].children(0).len(), 2);
}

/// The example request of the opentelemetry-proto repository (`examples/trace.json`),
/// upper-case ids and all.
#[test]
fn official_otlp_json_example() {
    let doc = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},"scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0","attributes":[{"key":"my.scope.attribute","value":{"stringValue":"some scope attribute"}}]},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173","name":"I'm a server span","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}"#;
    let d = decode_otlp_json(doc.as_bytes()).unwrap();
    assert!(d.rejected.is_empty());
    let s = &d.spans[0];
    assert_eq!(s.trace_id.to_hex(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(s.span_id.to_hex(), "eee19b7ec3c1b174");
    assert_eq!(s.parent_span_id.unwrap().to_hex(), "eee19b7ec3c1b173");
    assert_eq!(s.service(), "my.service");
    assert_eq!(&*s.scope_name, "my.library");
    assert_eq!(s.kind, SpanKind::Server);
    assert_eq!(s.duration_nanos(), 1_000_000_000);
    assert_eq!(
        s.attribute("my.span.attr"),
        Some(&AttrValue::Str("some value".into()))
    );
}

/// Valid OTLP/JSON that opentelemetry-proto's serde decoding rejects or misreads.
#[test]
fn otlp_json_that_generated_serde_gets_wrong() {
    let span = |extra: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"op"{extra}}}]}}]}}]}}"#
        )
    };
    // An empty ArrayValue message is `{}`.
    let d = decode_otlp_json(
        span(r#","attributes":[{"key":"list","value":{"arrayValue":{}}}]"#).as_bytes(),
    )
    .unwrap();
    assert_eq!(
        d.spans[0].attribute("list"),
        Some(&AttrValue::Array(vec![].into()))
    );
    // `null` means the default: no parent.
    let d = decode_otlp_json(span(r#","parentSpanId":null"#).as_bytes()).unwrap();
    assert_eq!(d.spans.len(), 1);
    assert_eq!(d.spans[0].parent_span_id, None);
    // snake_case field names are read, not ignored.
    let snake = r#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"shop"}}]},"scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","parent_span_id":"eee19b7ec3c1b173","name":"op","start_time_unix_nano":"5","end_time_unix_nano":"9","attributes":[{"key":"n","value":{"int_value":"3"}}]}]}]}]}"#;
    let d = decode_otlp_json(snake.as_bytes()).unwrap();
    assert!(d.rejected.is_empty());
    let s = &d.spans[0];
    assert_eq!(s.service(), "shop");
    assert_eq!(s.parent_span_id.unwrap().to_hex(), "eee19b7ec3c1b173");
    assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (5, 9));
    assert_eq!(s.attribute("n"), Some(&AttrValue::Int(3)));
}

#[test]
fn rejected_span_indices_count_across_the_request() {
    let mut req = realistic_request();
    req.resource_spans[1].scope_spans[0].spans[0].span_id = vec![1, 2, 3];
    let d = decode_otlp_protobuf(&req.encode_to_vec()).unwrap();
    assert_eq!(d.spans.len(), 2);
    assert_eq!(d.rejected.len(), 1);
    assert_eq!(d.rejected[0].index, 2);
    assert_eq!(d.rejected[0].field, "span_id");

    let mut doc: Value = serde_json::from_str(REALISTIC_JSON).unwrap();
    doc["resourceSpans"][0]["scopeSpans"][1]["spans"][0]["kind"] = json!(42);
    let d = decode_otlp_json_value(&doc).unwrap();
    assert_eq!(d.spans.len(), 2);
    assert_eq!(
        (d.rejected[0].index, d.rejected[0].field.as_str()),
        (1, "kind")
    );
    assert_eq!(
        d.rejected[0].to_string(),
        "span 1: field `kind`: `42` is not a span kind (expected an OTLP number 0 to 5 or a name \
         such as `server` or `SPAN_KIND_SERVER`, in any case)"
    );
}

#[test]
fn group_by_trace_keeps_first_seen_order() {
    let spans = spans_from_simple_json(&json!([
        {"traceId": "b", "spanId": "1", "startTime": 5},
        {"traceId": "a", "spanId": "2", "startTime": 1},
        {"traceId": "b", "spanId": "3", "startTime": 2, "parentSpanId": "1"},
        {"traceId": "c", "spanId": "4", "startTime": 0},
        {"traceId": "a", "spanId": "5", "startTime": 3},
    ]))
    .unwrap();
    let ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id).collect();
    let traces = group_by_trace(spans);
    let order: Vec<TraceId> = traces.iter().map(|t| t.trace_id()).collect();
    assert_eq!(order, [ids[0], ids[1], ids[3]]);
    let sizes: Vec<usize> = traces.iter().map(|t| t.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(group_by_trace(Vec::new()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Property: arbitrary span data survives protobuf and OTLP/JSON

#[derive(Debug, Clone)]
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    start: u64,
    end: u64,
    status: StatusCode,
    status_message: String,
    attributes: Attributes,
    /// When set, the trace id is cut to 15 bytes and the span must be rejected.
    corrupt: bool,
}

#[derive(Debug, Clone)]
struct ResourceData {
    attributes: Attributes,
    scopes: Vec<(String, Vec<SpanData>)>,
}

fn nonzero<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    prop::array::uniform::<_, N>(any::<u8>())
        .prop_filter("all-zero id is invalid", |a| a.iter().any(|&b| b != 0))
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    let leaf = prop_oneof![
        ".{0,12}".prop_map(|s: String| AttrValue::Str(s.into())),
        any::<bool>().prop_map(AttrValue::Bool),
        any::<i64>().prop_map(AttrValue::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(AttrValue::Float),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| AttrValue::Bytes(b.into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| AttrValue::Array(v.into())),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..4).prop_map(
                |v: Vec<(String, AttrValue)>| AttrValue::KvList(
                    v.into_iter().map(|(k, v)| (k.into(), v)).collect()
                )
            ),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Attributes> {
    prop::collection::btree_map("[a-z.]{1,6}", attr_value(), 0..6)
        .prop_map(|m: BTreeMap<String, AttrValue>| {
            m.into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

fn span_data() -> impl Strategy<Value = SpanData> {
    (
        (
            nonzero::<16>(),
            nonzero::<8>(),
            prop::option::of(nonzero::<8>()),
        ),
        (".{0,10}", 0..=5i64, any::<u64>(), any::<u64>()),
        (0..=2i64, ".{0,6}", attributes(), prop::bool::weighted(0.1)),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent),
                (name, kind, start, end),
                (status, msg, attrs, corrupt),
            )| {
                SpanData {
                    trace_id,
                    span_id,
                    parent,
                    name,
                    kind: SpanKind::from_otlp(kind).unwrap(),
                    start,
                    end,
                    status: StatusCode::from_otlp(status).unwrap(),
                    status_message: msg,
                    attributes: attrs,
                    corrupt,
                }
            },
        )
}

fn request_data() -> impl Strategy<Value = Vec<ResourceData>> {
    prop::collection::vec(
        (
            attributes(),
            prop::collection::vec((".{0,8}", prop::collection::vec(span_data(), 0..4)), 0..3),
        )
            .prop_map(|(attributes, scopes)| ResourceData { attributes, scopes }),
        0..3,
    )
}

fn pb_value(v: &AttrValue) -> AnyValue {
    use any_value::Value as V;
    AnyValue {
        value: Some(match v {
            AttrValue::Str(s) => V::StringValue(s.to_string()),
            AttrValue::Bool(b) => V::BoolValue(*b),
            AttrValue::Int(i) => V::IntValue(*i),
            AttrValue::Float(f) => V::DoubleValue(*f),
            AttrValue::Bytes(b) => V::BytesValue(b.to_vec()),
            AttrValue::Array(items) => V::ArrayValue(ArrayValue {
                values: items.iter().map(pb_value).collect(),
            }),
            AttrValue::KvList(kvs) => V::KvlistValue(KeyValueList {
                values: pb_key_values(kvs),
            }),
        }),
    }
}

fn pb_key_values(attrs: &[(betrace_core::span::AttrKey, AttrValue)]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: Some(pb_value(v)),
            ..Default::default()
        })
        .collect()
}

fn to_protobuf(data: &[ResourceData]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: data
            .iter()
            .map(|r| pb::ResourceSpans {
                resource: Some(PbResource {
                    attributes: pb_key_values(&r.attributes),
                    ..Default::default()
                }),
                scope_spans: r
                    .scopes
                    .iter()
                    .map(|(scope, spans)| pb::ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: scope.clone(),
                            ..Default::default()
                        }),
                        spans: spans
                            .iter()
                            .map(|s| pb::Span {
                                trace_id: s.trace_id[..if s.corrupt { 15 } else { 16 }].to_vec(),
                                span_id: s.span_id.to_vec(),
                                parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
                                name: s.name.clone(),
                                kind: s.kind as i32,
                                start_time_unix_nano: s.start,
                                end_time_unix_nano: s.end,
                                attributes: pb_key_values(&s.attributes),
                                status: Some(pb::Status {
                                    message: s.status_message.clone(),
                                    code: s.status as i32,
                                }),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}

/// Spelling choices of an OTLP/JSON writer.
#[derive(Debug, Clone, Copy)]
struct JsonStyle {
    snake_case: bool,
    ints_as_strings: bool,
    upper_case_ids: bool,
}

fn json_value(v: &AttrValue, st: JsonStyle) -> Value {
    let key = |camel: &str, snake: &str| {
        if st.snake_case {
            snake.to_owned()
        } else {
            camel.to_owned()
        }
    };
    let mut obj = serde_json::Map::new();
    match v {
        AttrValue::Str(s) => obj.insert(key("stringValue", "string_value"), json!(s)),
        AttrValue::Bool(b) => obj.insert(key("boolValue", "bool_value"), json!(b)),
        AttrValue::Int(i) => obj.insert(
            key("intValue", "int_value"),
            if st.ints_as_strings {
                json!(i.to_string())
            } else {
                json!(i)
            },
        ),
        AttrValue::Float(f) => obj.insert(key("doubleValue", "double_value"), json!(f)),
        AttrValue::Bytes(b) => obj.insert(
            key("bytesValue", "bytes_value"),
            json!(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
        AttrValue::Array(items) => obj.insert(
            key("arrayValue", "array_value"),
            json!({"values": items.iter().map(|i| json_value(i, st)).collect::<Vec<_>>()}),
        ),
        AttrValue::KvList(kvs) => obj.insert(
            key("kvlistValue", "kvlist_value"),
            json!({"values": json_key_values(kvs, st)}),
        ),
    };
    Value::Object(obj)
}

fn json_key_values(
    attrs: &[(betrace_core::span::AttrKey, AttrValue)],
    st: JsonStyle,
) -> Vec<Value> {
    attrs
        .iter()
        .map(|(k, v)| json!({"key": &**k, "value": json_value(v, st)}))
        .collect()
}

fn to_otlp_json(data: &[ResourceData], st: JsonStyle) -> Value {
    let k = |camel: &'static str, snake: &'static str| if st.snake_case { snake } else { camel };
    let hex_id = |b: &[u8]| {
        let h = hex::encode(b);
        if st.upper_case_ids {
            h.to_uppercase()
        } else {
            h
        }
    };
    let nanos = |n: u64| {
        if st.ints_as_strings {
            json!(n.to_string())
        } else {
            json!(n)
        }
    };
    let resource_spans: Vec<Value> = data
        .iter()
        .map(|r| {
            let scopes: Vec<Value> = r
                .scopes
                .iter()
                .map(|(scope, spans)| {
                    let spans: Vec<Value> = spans
                        .iter()
                        .map(|s| {
                            let mut o = serde_json::Map::new();
                            o.insert(
                                k("traceId", "trace_id").into(),
                                json!(hex_id(&s.trace_id[..if s.corrupt { 15 } else { 16 }])),
                            );
                            o.insert(k("spanId", "span_id").into(), json!(hex_id(&s.span_id)));
                            if let Some(p) = s.parent {
                                o.insert(
                                    k("parentSpanId", "parent_span_id").into(),
                                    json!(hex_id(&p)),
                                );
                            }
                            o.insert("name".into(), json!(s.name));
                            o.insert("kind".into(), json!(s.kind as i32));
                            o.insert(
                                k("startTimeUnixNano", "start_time_unix_nano").into(),
                                nanos(s.start),
                            );
                            o.insert(
                                k("endTimeUnixNano", "end_time_unix_nano").into(),
                                nanos(s.end),
                            );
                            o.insert(
                                "attributes".into(),
                                json!(json_key_values(&s.attributes, st)),
                            );
                            o.insert(
                                "status".into(),
                                json!({"code": s.status as i32, "message": s.status_message}),
                            );
                            Value::Object(o)
                        })
                        .collect();
                    json!({"scope": {"name": scope}, "spans": spans})
                })
                .collect();
            let mut o = serde_json::Map::new();
            o.insert(
                "resource".into(),
                json!({"attributes": json_key_values(&r.attributes, st)}),
            );
            o.insert(k("scopeSpans", "scope_spans").into(), json!(scopes));
            Value::Object(o)
        })
        .collect();
    let mut root = serde_json::Map::new();
    root.insert(
        k("resourceSpans", "resource_spans").into(),
        json!(resource_spans),
    );
    Value::Object(root)
}

/// The spans the data describes, and the indices of the corrupt ones.
fn expected(data: &[ResourceData]) -> (Vec<Span>, Vec<usize>) {
    let mut spans = Vec::new();
    let mut rejected = Vec::new();
    let mut index = 0;
    for r in data {
        let resource = Arc::new(Resource {
            attributes: r.attributes.clone(),
        });
        for (scope, list) in &r.scopes {
            for s in list {
                if s.corrupt {
                    rejected.push(index);
                } else {
                    spans.push(Span {
                        trace_id: TraceId(s.trace_id),
                        span_id: SpanId(s.span_id),
                        parent_span_id: s.parent.map(SpanId),
                        name: s.name.clone(),
                        kind: s.kind,
                        start_time_unix_nano: s.start,
                        end_time_unix_nano: s.end,
                        status_code: s.status,
                        status_message: s.status_message.clone(),
                        attributes: s.attributes.clone(),
                        resource: resource.clone(),
                        scope_name: scope.as_str().into(),
                    });
                }
                index += 1;
            }
        }
    }
    (spans, rejected)
}

fn check(decoded: &Decoded, spans: &[Span], rejected: &[usize], trace_field: &str) {
    assert_eq!(decoded.spans, spans);
    let got: Vec<usize> = decoded.rejected.iter().map(|e| e.index).collect();
    assert_eq!(got, rejected);
    assert!(decoded.rejected.iter().all(|e| e.field == trace_field));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn protobuf_and_json_decode_to_the_described_spans(
        data in request_data(),
        snake_case in any::<bool>(),
        ints_as_strings in any::<bool>(),
        upper_case_ids in any::<bool>(),
    ) {
        let (spans, rejected) = expected(&data);
        let bytes = to_protobuf(&data).encode_to_vec();
        let from_pb = decode_otlp_protobuf(&bytes).unwrap();
        check(&from_pb, &spans, &rejected, "trace_id");

        let style = JsonStyle { snake_case, ints_as_strings, upper_case_ids };
        let text = serde_json::to_vec(&to_otlp_json(&data, style)).unwrap();
        let from_json = decode_otlp_json(&text).unwrap();
        check(&from_json, &spans, &rejected, "traceId");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_otlp_protobuf(&bytes);
        let _ = decode_otlp_json(&bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Pre-1.0 OTLP and formats that are not span input

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The recorded exporter bodies of `examples/traces` with the given extension.
fn example_bodies(ext: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(repo_root().join("examples/traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no examples/traces/*.{ext}");
    out
}

/// A JSON value with every object key renamed by `rename`.
fn rename_keys(v: &Value, rename: &dyn Fn(&str) -> Option<&'static str>) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let k = rename(k).map_or_else(|| k.clone(), str::to_owned);
                    (k, rename_keys(v, rename))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| rename_keys(i, rename)).collect()),
        other => other.clone(),
    }
}

fn to_pre_1_0(key: &str) -> Option<&'static str> {
    match key {
        "scopeSpans" => Some("instrumentationLibrarySpans"),
        "scope" => Some("instrumentationLibrary"),
        _ => None,
    }
}

/// Pre-1.0 OTLP/JSON (`instrumentationLibrarySpans` / `instrumentationLibrary`, still sent by
/// published exporters) decodes like the 1.0 names, through both decoders; before, such a
/// request gave no spans at all.
#[test]
fn pre_1_0_otlp_json_decodes_like_scope_spans() {
    for (name, bytes) in example_bodies("json") {
        let current = decode_otlp_json(&bytes).unwrap();
        assert!(current.total() > 0, "{name}");
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let old = rename_keys(&value, &to_pre_1_0);
        let text = serde_json::to_vec(&old).unwrap();
        assert!(String::from_utf8_lossy(&text).contains("instrumentationLibrarySpans"));
        assert_eq!(
            decode_otlp_json(&text).unwrap(),
            current,
            "{name}: fast path"
        );
        assert_eq!(
            decode_otlp_json_value(&old).unwrap(),
            current,
            "{name}: reference"
        );
    }
    let path = repo_root().join("testing/inputs/otlp-json-pre-1.0.json");
    let bytes = std::fs::read(&path).unwrap();
    let fast = decode_otlp_json(&bytes).unwrap();
    let reference = decode_otlp_json_value(&serde_json::from_slice(&bytes).unwrap()).unwrap();
    assert_eq!(fast, reference);
    assert!(fast.rejected.is_empty());
    let names: Vec<&str> = fast.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["POST /checkout", "payment"]);
    for s in &fast.spans {
        assert_eq!(s.service(), "checkout");
        assert_eq!(&*s.scope_name, "@opentelemetry/instrumentation-http");
    }
    assert_eq!(fast.spans[1].status_code, StatusCode::Error);
}

/// With both names present, `scopeSpans` / `scope` win and the pre-1.0 copy is ignored, as
/// `trace.proto` v0.16–v0.19 asks of receivers during the transition.
#[test]
fn scope_spans_win_over_their_pre_1_0_copy() {
    let span = |id: &str| {
        json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": id, "name": id,
               "startTimeUnixNano": "1", "endTimeUnixNano": "2"})
    };
    let doc = json!({"resourceSpans": [{
        "scopeSpans": [{"scope": {"name": "new"}, "instrumentationLibrary": {"name": "old"},
                        "spans": [span("00000000000000a1")]}],
        "instrumentationLibrarySpans": [{"spans": [span("00000000000000a2")]}],
    }]});
    for decoded in [
        decode_otlp_json(doc.to_string().as_bytes()).unwrap(),
        decode_otlp_json_value(&doc).unwrap(),
    ] {
        assert_eq!(decoded.spans.len(), 1);
        assert_eq!(decoded.spans[0].name, "00000000000000a1");
        assert_eq!(&*decoded.spans[0].scope_name, "new");
    }
    // A bad pre-1.0 list is named by its own key.
    let bad = json!({"resourceSpans": [{"instrumentationLibrarySpans": {"spans": []}}]});
    let e = decode_otlp_json(bad.to_string().as_bytes()).unwrap_err();
    assert!(
        e.to_string()
            .contains("resourceSpans[0].instrumentationLibrarySpans"),
        "{e}"
    );
}

/// Pre-1.0 protobuf senders during the transition could fill `ResourceSpans` field 1000
/// (`instrumentation_library_spans`) instead of field 2: the recorded SDK bodies, re-encoded
/// that way, decode to the same spans.
#[test]
fn pre_1_0_protobuf_field_1000_decodes_like_scope_spans() {
    for (name, bytes) in example_bodies("pb") {
        let current = decode_otlp_protobuf(&bytes).unwrap();
        assert!(current.total() > 0, "{name}");
        let request = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let mut old = Vec::new();
        for rs in request.resource_spans {
            let mut body = Vec::new();
            if let Some(r) = &rs.resource {
                prost::encoding::message::encode(1, r, &mut body);
            }
            for ss in &rs.scope_spans {
                prost::encoding::message::encode(1000, ss, &mut body);
            }
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut old);
            prost::encoding::encode_varint(body.len() as u64, &mut old);
            old.extend_from_slice(&body);
        }
        assert_eq!(decode_otlp_protobuf(&old).unwrap(), current, "{name}");
    }
}

fn unsupported(doc: &Value) -> String {
    let message = betrace_core::unsupported_json_format(doc).expect("recognised as unsupported");
    match betrace_core::decode_json(doc) {
        Err(betrace_core::JsonInputError::Unsupported(m)) => assert_eq!(m, message),
        other => panic!("decode_json gave {other:?}"),
    }
    message
}

/// Jaeger and Zipkin JSON and wrapped API responses are named, not reported as a span without
/// `traceId`.
#[test]
fn other_trace_formats_are_named() {
    let read = |name: &str| -> Value {
        serde_json::from_slice(
            &std::fs::read(repo_root().join("testing/inputs").join(name)).unwrap(),
        )
        .unwrap()
    };
    let m = unsupported(&read("jaeger-ui.json"));
    assert!(
        m.starts_with("Jaeger JSON (`data[].spans`) is not supported; send OTLP"),
        "{m}"
    );
    let m = unsupported(&read("zipkin-v2.json"));
    assert!(m.starts_with("Zipkin JSON v2 spans"), "{m}");
    let m = unsupported(&read("jaeger-api-v3.json"));
    assert!(
        m.starts_with("an OTLP request wrapped in `{\"result\": …}`"),
        "{m}"
    );
    let jaeger_trace = read("jaeger-ui.json")["data"][0].clone();
    assert!(unsupported(&jaeger_trace).starts_with("a Jaeger JSON trace"));
    let jaeger_spans = jaeger_trace["spans"].clone();
    assert!(unsupported(&jaeger_spans).starts_with("Jaeger JSON spans"));
    assert!(unsupported(&json!({"batches": []})).starts_with("Grafana Tempo JSON"));
    assert!(unsupported(&json!({"resourceLogs": []})).contains("OTLP logs"));
    assert!(unsupported(&json!([{"resourceSpans": []}])).contains("array of OTLP requests"));
    let m = unsupported(&json!({"trace": {"id": 1}, "kind": "x"}));
    assert!(
        m.starts_with(
            "the format was not recognised: found an object with the keys `kind`, `trace`"
        ),
        "{m}"
    );
    assert!(unsupported(&json!({})).contains("found an empty object"));
    // What BeTrace reads is not flagged; a malformed simple span still names its field.
    for ok in [
        json!({"resourceSpans": []}),
        json!({"spans": []}),
        json!([]),
        json!([{"traceId": "x", "name": "a"}]),
        json!({"traceId": "x", "name": "a"}),
    ] {
        assert_eq!(betrace_core::unsupported_json_format(&ok), None, "{ok}");
    }
    let e = betrace_core::decode_json(&json!({"name": "a", "startTime": 1})).unwrap();
    assert_eq!(
        e.rejected[0].to_string(),
        "span 0: field `traceId`: missing trace id"
    );
}
