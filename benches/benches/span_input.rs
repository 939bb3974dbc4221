//! Span input throughput (ENGINE.md §2, §8): OTLP protobuf, OTLP/JSON and simple JSON bytes →
//! `Span`s, in spans per second. Workload: one request of 1 000 spans (10 traces of 100), each
//! with 10 attributes (6 strings, 2 ints, a double, a bool), one resource of 5 attributes.

#![allow(clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message as _;
use serde_json::{Value, json};

const TRACES: u64 = 10;
const SPANS_PER_TRACE: u64 = 100;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span_attributes(i: u64) -> Vec<KeyValue> {
    use any_value::Value as V;
    vec![
        kv("http.request.method", V::StringValue("POST".into())),
        kv("http.route", V::StringValue("/api/v1/orders/{id}".into())),
        kv("url.path", V::StringValue(format!("/api/v1/orders/{i}"))),
        kv("server.address", V::StringValue("orders.internal".into())),
        kv(
            "user_agent.original",
            V::StringValue("Mozilla/5.0 (X11; Linux x86_64)".into()),
        ),
        kv("customer.tier", V::StringValue("gold".into())),
        kv("http.response.status_code", V::IntValue(200)),
        kv("order.items", V::IntValue((i % 7) as i64)),
        kv("order.total", V::DoubleValue(i as f64 * 1.25)),
        kv("customer.premium", V::BoolValue(i.is_multiple_of(2))),
    ]
}

fn request() -> ExportTraceServiceRequest {
    use any_value::Value as V;
    let mut spans = Vec::new();
    for t in 0..TRACES {
        for s in 0..SPANS_PER_TRACE {
            let mut trace_id = vec![0xab; 16];
            trace_id[..8].copy_from_slice(&(t + 1).to_be_bytes());
            spans.push(pb::Span {
                trace_id,
                span_id: (t * 1000 + s + 1).to_be_bytes().to_vec(),
                parent_span_id: if s == 0 {
                    Vec::new()
                } else {
                    (t * 1000 + 1).to_be_bytes().to_vec()
                },
                name: format!("operation-{}", s % 20),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000 + s * 1_000_000,
                end_time_unix_nano: 1_700_000_000_000_000_000 + s * 1_000_000 + 500_000,
                attributes: span_attributes(s),
                status: Some(pb::Status {
                    message: String::new(),
                    code: 1,
                }),
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", V::StringValue("orders".into())),
                    kv("service.version", V::StringValue("2.3.1".into())),
                    kv(
                        "deployment.environment",
                        V::StringValue("production".into()),
                    ),
                    kv("host.name", V::StringValue("orders-7d9f".into())),
                    kv("process.pid", V::IntValue(4242)),
                ],
                ..Default::default()
            }),
            scope_spans: vec![pb::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.http".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn any_json(v: &AnyValue) -> Value {
    use any_value::Value as V;
    match &v.value {
        Some(V::StringValue(s)) => json!({"stringValue": s}),
        Some(V::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(V::DoubleValue(d)) => json!({"doubleValue": d}),
        Some(V::BoolValue(b)) => json!({"boolValue": b}),
        _ => json!({}),
    }
}

fn kvs_json(kvs: &[KeyValue]) -> Value {
    kvs.iter()
        .map(|kv| json!({"key": kv.key, "value": kv.value.as_ref().map(any_json)}))
        .collect()
}

fn otlp_json(req: &ExportTraceServiceRequest) -> Vec<u8> {
    let rs = &req.resource_spans[0];
    let ss = &rs.scope_spans[0];
    let spans: Vec<Value> = ss
        .spans
        .iter()
        .map(|s| {
            json!({
                "traceId": hex_encode(&s.trace_id),
                "spanId": hex_encode(&s.span_id),
                "parentSpanId": hex_encode(&s.parent_span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                "attributes": kvs_json(&s.attributes),
                "status": {"code": 1}
            })
        })
        .collect();
    let doc = json!({"resourceSpans": [{
        "resource": {"attributes": kvs_json(&rs.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default())},
        "scopeSpans": [{"scope": {"name": "io.opentelemetry.http"}, "spans": spans}]
    }]});
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn simple_json(req: &ExportTraceServiceRequest) -> Vec<u8> {
    let spans: Vec<Value> = req.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            let attrs: serde_json::Map<String, Value> = s
                .attributes
                .iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => json!(s),
                        Some(any_value::Value::IntValue(i)) => json!(i),
                        Some(any_value::Value::DoubleValue(d)) => json!(d),
                        Some(any_value::Value::BoolValue(b)) => json!(b),
                        _ => Value::Null,
                    };
                    (kv.key.clone(), v)
                })
                .collect();
            json!({
                "traceId": hex_encode(&s.trace_id),
                "spanId": hex_encode(&s.span_id),
                "parentSpanId": hex_encode(&s.parent_span_id),
                "name": s.name,
                "serviceName": "orders",
                "kind": "server",
                "status": "ok",
                "startTime": s.start_time_unix_nano,
                "endTime": s.end_time_unix_nano,
                "attributes": attrs
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "spans": spans })).unwrap_or_default()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bench(c: &mut Criterion) {
    let req = request();
    let protobuf = req.encode_to_vec();
    let otlp_json = otlp_json(&req);
    let simple = simple_json(&req);
    let spans = TRACES * SPANS_PER_TRACE;

    let mut group = c.benchmark_group("span_input");
    group.throughput(Throughput::Elements(spans));
    group.bench_function("otlp_protobuf_decode", |b| {
        b.iter(|| betrace_core::decode_otlp_protobuf(black_box(&protobuf)))
    });
    group.bench_function("prost_decode_only", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(protobuf.as_slice())))
    });
    group.bench_function("otlp_json_decode", |b| {
        b.iter(|| betrace_core::decode_otlp_json(black_box(&otlp_json)))
    });
    // The alternative of issue 9: OTLP/JSON through opentelemetry-proto's serde derives
    // (`with-serde`) into the protobuf types, then the protobuf conversion.
    let via_proto = serde_json::from_slice::<ExportTraceServiceRequest>(&otlp_json)
        .map(betrace_core::decode_otlp_request);
    let agree = matches!(
        (&via_proto, betrace_core::decode_otlp_json(&otlp_json)),
        (Ok(a), Ok(b)) if a.spans == b.spans && a.spans.len() as u64 == spans
    );
    assert!(agree, "the two OTLP/JSON decoders disagree on the workload");
    group.bench_function("otlp_json_via_proto_serde", |b| {
        b.iter(|| {
            serde_json::from_slice::<ExportTraceServiceRequest>(black_box(&otlp_json))
                .map(betrace_core::decode_otlp_request)
        })
    });
    group.bench_function("simple_json_decode", |b| {
        b.iter(|| {
            serde_json::from_slice::<Value>(black_box(&simple))
                .map(|v| betrace_core::decode_simple_json(&v))
        })
    });
    group.bench_function("otlp_protobuf_decode_and_group", |b| {
        b.iter(|| {
            betrace_core::decode_otlp_protobuf(black_box(&protobuf))
                .map(|d| betrace_core::group_by_trace(d.spans))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
