//! Engine benchmarks under the system allocator (ENGINE.md §8), plus memory per buffered span
//! measured with a counting allocator, printed before the criterion groups run.

use std::alloc::System;

use betrace_benches::{bench_ingest, bench_rules_scaling, bench_trace_build, otlp_request};
use betrace_core::assemble::{AssemblerConfig, IngestOutcome, TraceAssembler};
use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message as _;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Net bytes held by the assembler per buffered span, against the span's protobuf size.
fn memory_per_buffered_span() {
    let request = otlp_request(500, 20);
    let proto_bytes = request.encoded_len() as f64;
    let Ok(decoded) = betrace_core::decode_otlp_protobuf(&request.encode_to_vec()) else {
        return;
    };
    let n = decoded.spans.len() as f64;
    let Ok(assembler) = TraceAssembler::new(AssemblerConfig::default()) else {
        return;
    };
    let region = Region::new(GLOBAL);
    // Decoding is counted too: buffered spans are what the decoder produced.
    let spans = betrace_core::decode_otlp_protobuf(&request.encode_to_vec())
        .map(|d| d.spans)
        .unwrap_or_default();
    let outcome = assembler.ingest(spans);
    let stats = region.change();
    let held = stats.bytes_allocated as f64 - stats.bytes_deallocated as f64;
    println!(
        "memory per buffered span: {:.0} bytes held, protobuf {:.0} bytes/span, ratio {:.2} ({} spans)",
        held / n,
        proto_bytes / n,
        held / proto_bytes,
        n
    );
    if let IngestOutcome::Accepted { completed } = outcome {
        drop(completed);
    }
    drop(assembler.flush());
}

fn benches(c: &mut Criterion) {
    memory_per_buffered_span();
    bench_rules_scaling(c);
    bench_trace_build(c);
    bench_ingest(c, "system_alloc");
}

criterion_group!(engine, benches);
criterion_main!(engine);
