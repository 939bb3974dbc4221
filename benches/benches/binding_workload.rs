//! `binding/*`: the Rust side of the Python binding benchmark
//! (`betrace-py/bench/bench_binding.py`), on the same workload.
//!
//! In: the OTLP protobuf body the script writes from 10 000 OpenTelemetry SDK spans
//! (`$BETRACE_BINDING_WORKLOAD/spans.pb`, default `target/binding-workload/spans.pb`) and the
//! rules `betrace-py/bench/rules.yaml`. Out: criterion timings of
//! - `binding/evaluate`: `RuleSet::evaluate_many` on the traces, already grouped;
//! - `binding/group_and_evaluate`: `RuleSet::evaluate_spans` on the decoded spans (what
//!   `Engine.evaluate` runs once the Python objects are converted);
//! - `binding/decode_group_evaluate`: the same from the protobuf body (`Engine.evaluate(bytes)`
//!   without the Python call).
//!
//! Without the workload file the group is skipped with a message.

use std::path::PathBuf;

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::rules::load_rules_file;
use betrace_core::{decode_otlp_protobuf, group_by_trace};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("BETRACE_BINDING_WORKLOAD")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/binding-workload"));
    let Ok(body) = std::fs::read(dir.join("spans.pb")) else {
        eprintln!(
            "binding/*: skipped, no workload in {}; run betrace-py/bench/bench_binding.py first",
            dir.display()
        );
        return;
    };
    let rules = match load_rules_file(root.join("betrace-py/bench/rules.yaml")) {
        Ok(r) => r,
        Err(e) => return eprintln!("binding/*: {e}"),
    };
    let rules = match RuleSet::compile(rules, EngineOptions::default()) {
        Ok(r) => r,
        Err(e) => return eprintln!("binding/*: rules do not compile: {e:?}"),
    };
    let spans = match decode_otlp_protobuf(&body) {
        Ok(d) if d.rejected.is_empty() => d.spans,
        Ok(d) => return eprintln!("binding/*: rejected spans: {:?}", d.rejected),
        Err(e) => return eprintln!("binding/*: {e}"),
    };
    let traces = group_by_trace(spans.clone());
    let ctx = TraceContext::direct();

    let mut group = c.benchmark_group("binding");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function("evaluate", |b| b.iter(|| rules.evaluate_many(&traces, ctx)));
    group.bench_function("group_and_evaluate", |b| {
        b.iter_batched(
            || spans.clone(),
            |s| rules.evaluate_spans(s, ctx),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode_group_evaluate", |b| {
        b.iter(|| {
            decode_otlp_protobuf(&body).map(|d| rules.evaluate_spans(d.spans, ctx).violations.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
