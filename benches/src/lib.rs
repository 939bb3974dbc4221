//! Workloads shared by the criterion benchmarks in `benches/`: realistic OTLP requests (as the
//! OpenTelemetry SDKs send them), realistic rules (`examples/rules.yaml`), and the engine
//! benchmark groups, which run under two global allocators (`engine`, `engine_mimalloc`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use betrace_core::assemble::{AssemblerConfig, ManualClock, TraceAssembler};
use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::rules::{Rule, parse_rules};
use betrace_core::stream::{Collect, Executor, StreamEngine};
use betrace_core::{PreparedTrace, Trace, decode_otlp_json, decode_otlp_protobuf};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message as _;
use serde_json::{Value, json};

/// The first `n` rules of `examples/rules.yaml`.
pub fn realistic_rules(n: usize) -> Vec<Rule> {
    let text = include_str!("../../examples/rules.yaml");
    parse_rules(text, "examples/rules.yaml")
        .map(|mut r| {
            r.truncate(n);
            r
        })
        .unwrap_or_default()
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

const SHAPE: [(&str, i32); 10] = [
    ("checkout", 2),
    ("payment", 1),
    ("fraud_check", 1),
    ("db.query", 3),
    ("inventory.reserve", 1),
    ("GET /v1/customers/{id}", 3),
    ("GET /v1/customers/{id}", 2),
    ("db.query", 3),
    ("pii.read", 1),
    ("audit.log", 1),
];

/// An OTLP request of `traces` traces of `spans_per_trace` spans, each span with 10
/// attributes, in one resource of 4 attributes — the shape of an SDK batch.
pub fn otlp_request(traces: u64, spans_per_trace: u64) -> ExportTraceServiceRequest {
    use any_value::Value as V;
    let mut spans = Vec::with_capacity((traces * spans_per_trace) as usize);
    for t in 0..traces {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(t + 1).to_be_bytes());
        trace_id[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
        let base = 1_741_942_800_000_000_000u64 + t * 1_000_000_000;
        for s in 0..spans_per_trace {
            let (name, kind) = SHAPE[(s % SHAPE.len() as u64) as usize];
            let parent = if s == 0 {
                Vec::new()
            } else {
                ((s - 1) / 3 + 1 + t * 1_000).to_be_bytes().to_vec()
            };
            let start = base + s * 3_000_000;
            spans.push(pb::Span {
                trace_id: trace_id.to_vec(),
                span_id: (s + 1 + t * 1_000).to_be_bytes().to_vec(),
                parent_span_id: parent,
                name: name.into(),
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 2_000_000 + (s % 7) * 90_000_000,
                attributes: vec![
                    kv(
                        "order.amount",
                        V::DoubleValue(250.5 + (t % 8) as f64 * 200.0),
                    ),
                    kv("order.currency", V::StringValue("EUR".into())),
                    kv("customer.tier", V::StringValue("gold".into())),
                    kv("enduser.id", V::StringValue(format!("cust-{t}"))),
                    kv("http.request.method", V::StringValue("POST".into())),
                    kv("http.route", V::StringValue("/api/checkout".into())),
                    kv("db.system", V::StringValue("postgresql".into())),
                    kv(
                        "db.statement",
                        V::StringValue("SELECT * FROM orders WHERE id = $1".into()),
                    ),
                    kv("retry.count", V::IntValue((s % 3) as i64)),
                    kv("cache.hit", V::BoolValue(s % 2 == 0)),
                ],
                status: Some(pb::Status {
                    code: if s % 17 == 5 { 2 } else { 0 },
                    ..Default::default()
                }),
                flags: 257,
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", V::StringValue("storefront".into())),
                    kv("service.version", V::StringValue("2.14.0".into())),
                    kv(
                        "deployment.environment",
                        V::StringValue("production".into()),
                    ),
                    kv("telemetry.sdk.language", V::StringValue("python".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![pb::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "shop.storefront".into(),
                    version: "2.14.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn json_value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(any_value::Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(any_value::Value::DoubleValue(d)) => json!({ "doubleValue": d }),
        Some(any_value::Value::BoolValue(b)) => json!({ "boolValue": b }),
        _ => json!({}),
    }
}

fn json_attrs(a: &[KeyValue]) -> Value {
    Value::Array(
        a.iter()
            .map(|kv| {
                json!({ "key": kv.key, "value": kv.value.as_ref().map(json_value).unwrap_or(json!({})) })
            })
            .collect(),
    )
}

/// The request as OTLP/JSON bytes (hex ids, 64-bit integers as strings, as the JS SDK sends).
pub fn otlp_json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let rs: Vec<Value> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let scope_spans: Vec<Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let spans: Vec<Value> = ss
                        .spans
                        .iter()
                        .map(|s| {
                            json!({
                                "traceId": hex(&s.trace_id), "spanId": hex(&s.span_id),
                                "parentSpanId": hex(&s.parent_span_id), "name": s.name, "kind": s.kind,
                                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                                "attributes": json_attrs(&s.attributes),
                                "status": {"code": s.status.as_ref().map(|st| st.code).unwrap_or(0)},
                                "flags": s.flags, "events": [], "links": [],
                            })
                        })
                        .collect();
                    json!({"scope": {"name": ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default()}, "spans": spans})
                })
                .collect();
            json!({
                "resource": {"attributes": json_attrs(rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]))},
                "scopeSpans": scope_spans,
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceSpans": rs })).unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn stream_engine(rules: usize) -> Option<StreamEngine> {
    let rules = RuleSet::compile(realistic_rules(rules), EngineOptions::default()).ok()?;
    StreamEngine::with_clock(
        rules,
        AssemblerConfig::default(),
        Arc::new(ManualClock::new(0)),
    )
    .ok()
}

/// [`stream_engine`] on one evaluation thread behind the queue, as `betrace serve` runs it.
fn workers_engine(rules: usize) -> Option<Arc<StreamEngine>> {
    let rules = RuleSet::compile(realistic_rules(rules), EngineOptions::default()).ok()?;
    let assembler =
        TraceAssembler::with_clock(AssemblerConfig::default(), Arc::new(ManualClock::new(0)))
            .ok()?;
    let engine = Arc::new(StreamEngine::with_sink(
        Arc::new(ArcSwap::from_pointee(rules)),
        assembler,
        Collect::default(),
        Executor::Workers(1),
    ));
    engine.start().ok()?;
    Some(engine)
}

/// `engine/ingest_otlp_{proto,json}`: request bytes → spans → assembled → evaluated with 10
/// rules, inline; `ingest_otlp_proto_workers` through the queue to one evaluation thread; 50
/// traces of 20 spans, 10 attributes a span.
pub fn bench_ingest(c: &mut Criterion, allocator: &str) {
    let request = otlp_request(50, 20);
    let proto = request.encode_to_vec();
    let json = otlp_json(&request);
    let spans = 1_000u64;
    let mut g = c.benchmark_group(format!("engine/{allocator}"));
    g.throughput(Throughput::Elements(spans));
    let Some(engine) = stream_engine(10) else {
        return;
    };
    g.bench_function("ingest_otlp_proto", |b| {
        b.iter(|| {
            let decoded = decode_otlp_protobuf(black_box(&proto))
                .map(|d| d.spans)
                .unwrap_or_default();
            let mut out = engine.ingest(decoded).unwrap_or(0);
            out += engine.flush(Duration::ZERO);
            out += engine.sink().take().len();
            black_box(out)
        })
    });
    g.bench_function("ingest_otlp_json", |b| {
        b.iter(|| {
            let decoded = decode_otlp_json(black_box(&json))
                .map(|d| d.spans)
                .unwrap_or_default();
            let mut out = engine.ingest(decoded).unwrap_or(0);
            out += engine.flush(Duration::ZERO);
            out += engine.sink().take().len();
            black_box(out)
        })
    });
    // The server's executor: released traces go through the queue to an evaluation thread.
    if let Some(workers) = workers_engine(10) {
        g.bench_function("ingest_otlp_proto_workers", |b| {
            b.iter(|| {
                let decoded = decode_otlp_protobuf(black_box(&proto))
                    .map(|d| d.spans)
                    .unwrap_or_default();
                let mut out = workers.ingest(decoded).unwrap_or(0);
                out += workers.flush(Duration::from_secs(60));
                out += workers.sink().take().len();
                black_box(out)
            })
        });
        workers.shutdown(Duration::from_secs(60));
    }
    g.bench_function("decode_otlp_proto_only", |b| {
        b.iter(|| black_box(decode_otlp_protobuf(black_box(&proto)).map(|d| d.spans.len())))
    });
    g.bench_function("decode_otlp_json_only", |b| {
        b.iter(|| black_box(decode_otlp_json(black_box(&json)).map(|d| d.spans.len())))
    });
    g.finish();
}

fn scaling_rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|i| {
            Rule::new(
                format!("r{i}"),
                format!("when {{ op_{i}.where(amount > 1000) }} always {{ check_{i} }}"),
            )
        })
        .collect()
}

/// `engine/rules_scaling`: 1, 10, 100, 1000 rules selecting disjoint span names on one
/// 100-span trace (spans named `op_0` … `op_9`), with the index and without (baseline).
pub fn bench_rules_scaling(c: &mut Criterion) {
    let spans: Vec<Value> = (0..100)
        .map(|i| {
            json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": format!("{:016x}", i + 1),
                   "name": format!("op_{}", i % 10), "serviceName": "shop",
                   "startTime": 1_700_000_000_000_000_000u64 + i * 1000, "endTime": 1_700_000_000_000_000_000u64 + i * 1000 + 500,
                   "attributes": {"amount": i}})
        })
        .collect();
    let Ok(spans) = betrace_core::spans_from_simple_json(&Value::Array(spans)) else {
        return;
    };
    let trace = Trace::new(spans);
    let mut g = c.benchmark_group("engine/rules_scaling");
    for n in [1usize, 10, 100, 1000] {
        for (label, use_index) in [("indexed", true), ("unindexed", false)] {
            let Ok(rules) = RuleSet::compile(
                scaling_rules(n),
                EngineOptions {
                    use_index,
                    ..EngineOptions::default()
                },
            ) else {
                continue;
            };
            g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter(|| {
                    black_box(
                        rules
                            .evaluate(black_box(&trace), TraceContext::direct())
                            .rules_run,
                    )
                })
            });
        }
    }
    g.finish();
}

/// `engine/trace_build`: building the `Trace` (dedup, order, links) and its `PreparedTrace`
/// (interned names and keys) for a 20-span trace — the cost outside evaluation.
pub fn bench_trace_build(c: &mut Criterion) {
    let Ok(decoded) = decode_otlp_protobuf(&otlp_request(1, 20).encode_to_vec()) else {
        return;
    };
    let Ok(rules) = RuleSet::compile(realistic_rules(10), EngineOptions::default()) else {
        return;
    };
    let mut g = c.benchmark_group("engine/trace_build");
    g.throughput(Throughput::Elements(20));
    g.bench_function("trace_new_20_spans", |b| {
        b.iter_batched(
            || decoded.spans.clone(),
            |spans| black_box(Trace::new(spans).len()),
            BatchSize::SmallInput,
        )
    });
    let trace = Trace::new(decoded.spans.clone());
    g.bench_function("prepared_20_spans", |b| {
        b.iter(|| black_box(PreparedTrace::new(black_box(&trace), rules.symbols()).len()))
    });
    g.finish();
}
