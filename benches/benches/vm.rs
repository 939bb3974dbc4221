//! VM benchmarks: one rule against one trace that is already built and prepared.
//!
//! Results are observed with `black_box(&outcome)`: passing the 64-byte `Result` to
//! `black_box` by value adds a copy that costs more than the smallest evaluations.
//!
//! Groups: `vm/…` the bytecode VM, `vm_reference/…` the reference tree-walking evaluator on
//! the same workloads (the baseline the VM must beat), `vm_prepare/…` the cost of
//! `PreparedTrace::new` and `vm_trace/…` of `Trace::new` for the traces used here.
//!
//! Workloads (rules compiled from the text below):
//! - `evaluator/{10,100,1000}`: `when { payment.where(amount > 1000) } always { fraud_check }
//!   never { bypass }` over spans named `operation_{i % 10}` with one attribute `index` —
//!   nothing matches.
//! - `evaluator_match/100`: the same rule over 100 spans among which `payment{amount=5000}`
//!   and `fraud_check` appear — `when` and `always` hold, `never` does not.
//! - `basic_existence`: `when { payment } always { fraud_check }` over `payment`,
//!   `fraud_check`.
//! - `where_clause`: `when { payment.where(amount > 1000) } always { fraud_check }` over
//!   `payment{amount=5000}`, `fraud_check`.
//! - `chained_where`: `when { payment.where(amount > 1000).where(currency == USD) } always
//!   { fraud_check }` over `payment{amount=5000, currency=USD}`, `fraud_check`.
//! - `count_comparison`: `when { count(http_retry) > 3 } always { alert }` over `http_retry`,
//!   `fraud_check`.
//! - `count_operations/{10,100,1000}`: `when { count(http_request) != count(http_response) }
//!   never { orphaned }` over N `http_request` and N `http_response` spans.
//! - `relation/100`: `never { payment.where(amount > 1000 and not has_descendant(fraud_check))
//!   }` over ten payments that each have a `fraud_check` child — conforming.
//! - `expression/100`: `span.kind == server and span.name:starts_with("/api/") and not
//!   span.attributes["auth.token"]` over 100 spans, 20 of them authenticated API servers —
//!   conforming.
//! - `violation_witnesses/100`: `when { payment.where(amount > 1000) } always { audit }` over
//!   100 spans of which 10 are matching payments — violated, so the witness pass runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use betrace_core::{
    AttrValue, EvalOptions, PreparedTrace, Resource, Span, SpanId, SpanKind, StatusCode, Trace,
    TraceId, evaluate,
};
use betrace_dsl::ir::{Rule, Symbols};
use betrace_dsl::lower::lower;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use betrace_testing::reference;

// ---- rules

const THREE_CLAUSE: &str =
    "when { payment.where(amount > 1000) } always { fraud_check } never { bypass }";
const BASIC_EXISTENCE: &str = "when { payment } always { fraud_check }";
const WHERE_CLAUSE: &str = "when { payment.where(amount > 1000) } always { fraud_check }";
const CHAINED_WHERE: &str =
    "when { payment.where(amount > 1000).where(currency == USD) } always { fraud_check }";
const COUNT_COMPARISON: &str = "when { count(http_retry) > 3 } always { alert }";
const COUNT_OPERATIONS: &str =
    "when { count(http_request) != count(http_response) } never { orphaned }";
const VIOLATED_WHERE: &str = "when { payment.where(amount > 1000) } always { audit }";
const RELATION: &str = "never { payment.where(amount > 1000 and not has_descendant(fraud_check)) }";
const EXPRESSION: &str = r#"span.kind == server and span.name:starts_with("/api/") and not span.attributes["auth.token"]"#;

fn compile(source: &str) -> (Rule, Symbols) {
    let mut symbols = Symbols::new();
    let rule = betrace_dsl::check_source(source, &mut symbols)
        .unwrap_or_else(|d| panic!("{source}: {d:?}"));
    (rule, symbols)
}

// ---- traces

fn span(i: u64, name: &str, attrs: Vec<(&str, AttrValue)>, resource: &Arc<Resource>) -> Span {
    Span {
        trace_id: TraceId([0xab; 16]),
        span_id: SpanId((i + 1).to_be_bytes()),
        parent_span_id: None,
        name: name.into(),
        kind: SpanKind::Internal,
        start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000 + 500,
        status_code: StatusCode::Ok,
        status_message: String::new(),
        attributes: attrs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        resource: Arc::clone(resource),
        scope_name: "".into(),
    }
}

fn resource() -> Arc<Resource> {
    Arc::new(Resource::with_service("benchmark-service"))
}

fn operations(n: u64) -> Vec<Span> {
    let r = resource();
    (0..n)
        .map(|i| {
            span(
                i,
                &format!("operation_{}", i % 10),
                vec![("index", AttrValue::Int(i as i64))],
                &r,
            )
        })
        .collect()
}

fn pair(first: Span) -> Vec<Span> {
    let r = resource();
    vec![first, span(1, "fraud_check", vec![], &r)]
}

fn payment(attrs: Vec<(&str, AttrValue)>) -> Span {
    span(0, "payment", attrs, &resource())
}

fn matching_100() -> Vec<Span> {
    let r = resource();
    let mut spans = operations(100);
    spans[37] = span(37, "payment", vec![("amount", AttrValue::Int(5000))], &r);
    spans[81] = span(81, "fraud_check", vec![], &r);
    spans
}

fn requests(n: u64) -> Vec<Span> {
    let r = resource();
    (0..2 * n)
        .map(|i| {
            let name = if i < n {
                "http_request"
            } else {
                "http_response"
            };
            span(i, name, vec![], &r)
        })
        .collect()
}

fn payments_100() -> Vec<Span> {
    let r = resource();
    (0..100)
        .map(|i| {
            if i % 10 == 3 {
                span(i, "payment", vec![("amount", AttrValue::Int(5000))], &r)
            } else {
                span(i, &format!("operation_{}", i % 10), vec![], &r)
            }
        })
        .collect()
}

/// Ten groups of ten: a `payment{amount=5000}` head with nine children, one of them a
/// `fraud_check`; the heads of groups 1–9 are children of span 0.
fn payment_tree_100() -> Vec<Span> {
    let r = resource();
    (0..100u64)
        .map(|i| {
            let head = i - i % 10;
            let mut s = if i % 10 == 0 {
                span(i, "payment", vec![("amount", AttrValue::Int(5000))], &r)
            } else if i % 10 == 5 {
                span(i, "fraud_check", vec![], &r)
            } else {
                span(i, &format!("operation_{}", i % 10), vec![], &r)
            };
            let parent = if i % 10 == 0 {
                (i > 0).then_some(0)
            } else {
                Some(head)
            };
            s.parent_span_id = parent.map(|p| SpanId((p + 1).to_be_bytes()));
            s
        })
        .collect()
}

/// 100 spans: every fifth a server span named `/api/…` carrying `auth.token`, the rest
/// internal operations.
fn api_100() -> Vec<Span> {
    let r = resource();
    (0..100u64)
        .map(|i| {
            if i % 5 == 0 {
                let mut s = span(
                    i,
                    &format!("/api/items/{i}"),
                    vec![("auth.token", AttrValue::Str("t".into()))],
                    &r,
                );
                s.kind = SpanKind::Server;
                s
            } else {
                span(i, &format!("operation_{}", i % 10), vec![], &r)
            }
        })
        .collect()
}

struct Workload {
    name: String,
    rule: Rule,
    symbols: Symbols,
    trace: Trace,
}

fn workloads() -> Vec<Workload> {
    let mut out = Vec::new();
    let mut add = |name: String, (rule, symbols): (Rule, Symbols), spans: Vec<Span>| {
        out.push(Workload {
            name,
            rule,
            symbols,
            trace: Trace::new(spans),
        })
    };
    for n in [10, 100, 1000] {
        add(
            format!("evaluator/{n}"),
            compile(THREE_CLAUSE),
            operations(n),
        );
    }
    add(
        "evaluator_match/100".into(),
        compile(THREE_CLAUSE),
        matching_100(),
    );
    add(
        "basic_existence".into(),
        compile(BASIC_EXISTENCE),
        pair(payment(vec![])),
    );
    add(
        "where_clause".into(),
        compile(WHERE_CLAUSE),
        pair(payment(vec![("amount", AttrValue::Int(5000))])),
    );
    add(
        "chained_where".into(),
        compile(CHAINED_WHERE),
        pair(payment(vec![
            ("amount", AttrValue::Int(5000)),
            ("currency", AttrValue::Str("USD".into())),
        ])),
    );
    add(
        "count_comparison".into(),
        compile(COUNT_COMPARISON),
        pair(span(0, "http_retry", vec![], &resource())),
    );
    for n in [10, 100, 1000] {
        add(
            format!("count_operations/{n}"),
            compile(COUNT_OPERATIONS),
            requests(n),
        );
    }
    add("relation/100".into(), compile(RELATION), payment_tree_100());
    add("expression/100".into(), compile(EXPRESSION), api_100());
    add(
        "violation_witnesses/100".into(),
        compile(VIOLATED_WHERE),
        payments_100(),
    );
    out
}

fn bench(c: &mut Criterion) {
    let options = EvalOptions::default();
    let workloads = workloads();

    let mut vm = c.benchmark_group("vm");
    for w in &workloads {
        let program = lower(w.rule.clone());
        let prepared = PreparedTrace::new(&w.trace, &w.symbols);
        // The VM and the reference agree on every workload.
        let expected = reference::evaluate(&w.rule, &w.trace, &w.symbols);
        assert_eq!(evaluate(&program, &prepared, &options).unwrap(), expected);
        vm.bench_function(BenchmarkId::from_parameter(&w.name), |b| {
            b.iter(|| {
                let outcome = evaluate(black_box(&program), black_box(&prepared), &options);
                black_box(&outcome);
            })
        });
    }
    vm.finish();

    let mut reference = c.benchmark_group("vm_reference");
    for w in &workloads {
        reference.bench_function(BenchmarkId::from_parameter(&w.name), |b| {
            b.iter(|| {
                let outcome =
                    reference::evaluate(black_box(&w.rule), black_box(&w.trace), &w.symbols);
                black_box(&outcome);
            })
        });
    }
    reference.finish();

    let mut prepare = c.benchmark_group("vm_prepare");
    for w in &workloads {
        prepare.bench_function(BenchmarkId::from_parameter(&w.name), |b| {
            b.iter(|| PreparedTrace::new(black_box(&w.trace), &w.symbols))
        });
    }
    prepare.finish();

    let mut trace = c.benchmark_group("vm_trace");
    for w in &workloads {
        let spans = w.trace.spans().to_vec();
        trace.bench_function(BenchmarkId::from_parameter(&w.name), |b| {
            b.iter_batched(
                || spans.clone(),
                |spans| Trace::new(black_box(spans)),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    trace.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
