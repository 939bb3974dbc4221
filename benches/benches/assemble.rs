//! `engine/assemble`: streaming trace assembly (ENGINE.md §5) of 100 000 spans in traces of
//! 20 spans, ingested in batches of 500 spans (an OTLP exporter's usual batch), reported in
//! spans per second.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use betrace_core::assemble::{AssemblerConfig, IngestOutcome, ManualClock, TraceAssembler};
use betrace_core::{AttrValue, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const SPANS: usize = 100_000;
const SPANS_PER_TRACE: usize = 20;
const BATCH: usize = 500;

/// Batches of spans as they would arrive: traces one after another, a root and 19 children
/// each, from 4 services, with a few attributes per span.
fn workload() -> Vec<Vec<Span>> {
    let resources: Vec<Arc<Resource>> = ["checkout", "payments", "inventory", "frontend"]
        .iter()
        .map(|s| Arc::new(Resource::with_service(s)))
        .collect();
    let mut spans = Vec::with_capacity(SPANS);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for t in 0..SPANS / SPANS_PER_TRACE {
        let trace_id = TraceId((u128::from(next()) << 64 | u128::from(next())).to_le_bytes());
        let root = SpanId(next().to_le_bytes());
        for i in 0..SPANS_PER_TRACE {
            let start = 1_700_000_000_000_000_000 + (t * 1_000_000 + i * 1_000) as u64;
            spans.push(Span {
                trace_id,
                span_id: if i == 0 {
                    root
                } else {
                    SpanId(next().to_le_bytes())
                },
                parent_span_id: (i != 0).then_some(root),
                name: format!("op-{}", i % 7),
                kind: if i == 0 {
                    SpanKind::Server
                } else {
                    SpanKind::Internal
                },
                start_time_unix_nano: start,
                end_time_unix_nano: start + 500_000,
                status_code: StatusCode::Ok,
                status_message: String::new(),
                attributes: vec![
                    ("http.method".into(), AttrValue::Str("POST".into())),
                    ("amount".into(), AttrValue::Int((i * 100) as i64)),
                    ("retry".into(), AttrValue::Bool(false)),
                ],
                resource: resources[i % resources.len()].clone(),
                scope_name: "bench".into(),
            });
        }
    }
    let mut batches = Vec::new();
    let mut it = spans.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(BATCH).collect());
    }
    batches
}

fn released(outcome: IngestOutcome) -> usize {
    match outcome {
        IngestOutcome::Accepted { completed } => completed.len(),
        IngestOutcome::Refused { spans, .. } => spans.len(),
    }
}

fn bench(c: &mut Criterion) {
    let batches = workload();
    let mut group = c.benchmark_group("engine/assemble");
    group.throughput(Throughput::Elements(SPANS as u64));

    // Ingest only: every span is buffered; the assembler is dropped outside the timing.
    group.bench_function("ingest_100k_spans_traces_of_20", |b| {
        b.iter_batched(
            || {
                let a = TraceAssembler::new(AssemblerConfig::default())
                    .unwrap_or_else(|e| unreachable!("default config is valid: {e}"));
                (a, batches.clone())
            },
            |(a, batches)| {
                let mut n = 0;
                for batch in batches {
                    n += released(a.ingest(batch));
                }
                black_box(n);
                a
            },
            BatchSize::PerIteration,
        )
    });

    // Ingest with the root-grace path: the clock moves 3 s after every 10 batches and
    // `poll_expired` releases the traces whose roots are complete; a final flush releases
    // the rest. The released traces are dropped outside the timing.
    group.bench_function("ingest_poll_release_100k_spans_traces_of_20", |b| {
        b.iter_batched(
            || {
                let clock = Arc::new(ManualClock::new(0));
                let a = TraceAssembler::with_clock(AssemblerConfig::default(), clock.clone())
                    .unwrap_or_else(|e| unreachable!("default config is valid: {e}"));
                (clock, a, batches.clone())
            },
            |(clock, a, batches)| {
                let mut out = Vec::with_capacity(SPANS / SPANS_PER_TRACE);
                for (i, batch) in batches.into_iter().enumerate() {
                    if let IngestOutcome::Accepted { completed } = a.ingest(batch) {
                        out.extend(completed);
                    }
                    if i % 10 == 9 {
                        clock.advance(Duration::from_secs(3));
                        out.extend(a.poll_expired());
                    }
                }
                out.extend(a.flush());
                assert_eq!(out.len(), SPANS / SPANS_PER_TRACE);
                (a, out)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
