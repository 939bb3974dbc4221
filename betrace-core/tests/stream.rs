//! Streaming evaluation: any interleaving and batching of the spans of several traces through
//! the assembler gives the same violations as evaluating each complete trace (ENGINE.md §5),
//! no span is lost (counters), and swapping the rule set keeps buffered spans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use betrace_core::assemble::TraceAssembler;
use betrace_core::assemble::{AssemblerConfig, ManualClock};
use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::rules::Rule;
use betrace_core::stream::{Evaluated, Executor, Sink, StreamEngine};
use betrace_core::{
    AttrValue, CompletionReason, Resource, Span, SpanId, SpanKind, StatusCode, Trace, TraceId,
};
use proptest::prelude::*;

const NAMES: &[&str] = &[
    "checkout",
    "payment",
    "fraud_check",
    "db.query",
    "retry",
    "audit",
    "http.client",
    "http.server",
];

fn rules() -> RuleSet {
    let r = |id: &str, e: &str| Rule::new(id, e);
    RuleSet::compile(
        vec![
            r(
                "large-fraud",
                "when { payment.where(amount > 1000) } always { fraud_check }",
            ),
            r(
                "no-failed-payment",
                "never { payment.where(span.status == error) }",
            ),
            r(
                "retry-bound",
                "when { checkout } always { count(retry) < 3 }",
            ),
            r(
                "db-under-checkout",
                "never { db.query.where(not has_ancestor(checkout)) }",
            ),
            r(
                "server-errors",
                "span.kind == server and span.status == error",
            ),
            r(
                "client-server",
                "never { http.client.where(not has_child(http.server, within 2s)) }",
            ),
            r("big-trace", "trace.span_count > 10"),
            r(
                "payment-audited",
                "when { payment } always { payment.followed_by(audit) }",
            ),
            r("eur-only", "never { payment.currency in [USD] }"),
        ],
        EngineOptions::default(),
    )
    .unwrap()
}

#[derive(Clone, Debug)]
struct SpanSpec {
    name: usize,
    parent: Option<usize>,
    kind: u8,
    error: bool,
    start_ms: u64,
    dur_ms: u64,
    amount: i64,
    usd: bool,
}

fn span_spec() -> impl Strategy<Value = SpanSpec> {
    (
        0..NAMES.len(),
        any::<Option<prop::sample::Index>>(),
        0u8..6,
        any::<bool>(),
        0u64..5_000,
        0u64..3_000,
        0i64..3_000,
        any::<bool>(),
    )
        .prop_map(
            |(name, parent, kind, error, start_ms, dur_ms, amount, usd)| SpanSpec {
                name,
                parent: parent.map(|i| i.index(usize::MAX)),
                kind,
                error,
                start_ms,
                dur_ms,
                amount,
                usd,
            },
        )
}

fn build(trace_no: u8, specs: &[SpanSpec]) -> Vec<Span> {
    let resource = Arc::new(Resource::with_service("shop"));
    let trace_id = TraceId([trace_no + 1; 16]);
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let parent = if i == 0 {
                None
            } else {
                s.parent.map(|p| p % i)
            };
            let start = 1_700_000_000_000_000_000 + s.start_ms * 1_000_000;
            Span {
                trace_id,
                span_id: SpanId([trace_no, 0, 0, 0, 0, 0, 0, i as u8 + 1]),
                parent_span_id: parent.map(|p| SpanId([trace_no, 0, 0, 0, 0, 0, 0, p as u8 + 1])),
                name: NAMES[s.name].to_string(),
                kind: SpanKind::from_otlp(i64::from(s.kind)).unwrap(),
                start_time_unix_nano: start,
                end_time_unix_nano: start + s.dur_ms * 1_000_000,
                status_code: if s.error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: String::new(),
                attributes: vec![
                    ("amount".into(), AttrValue::Int(s.amount)),
                    (
                        "currency".into(),
                        AttrValue::Str(if s.usd { "USD" } else { "EUR" }.into()),
                    ),
                ],
                resource: resource.clone(),
                scope_name: "".into(),
            }
        })
        .collect()
}

type Key = (String, String, String, Vec<String>, Vec<String>);

fn key(trace_id: &str, v: &betrace_core::Violation) -> Key {
    (
        trace_id.to_string(),
        v.rule_id.clone(),
        v.failed_clause.to_string(),
        v.trigger_spans.iter().map(|s| s.span_id.to_hex()).collect(),
        v.offending_spans
            .iter()
            .map(|s| s.span_id.to_hex())
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_gives_the_violations_of_the_complete_traces(
        traces in prop::collection::vec(prop::collection::vec(span_spec(), 1..14), 1..4),
        order_seed in any::<u64>(),
        batch_sizes in prop::collection::vec(1usize..7, 1..40),
        duplicate in any::<bool>(),
    ) {
        let rules = rules();
        let built: Vec<Vec<Span>> = traces.iter().enumerate().map(|(i, t)| build(i as u8, t)).collect();
        let mut expected = BTreeSet::new();
        for spans in &built {
            let trace = Trace::new(spans.clone());
            let tid = trace.trace_id().to_hex();
            for v in rules.evaluate(&trace, TraceContext::direct()).violations {
                expected.insert(key(&tid, &v));
            }
        }
        // Interleave: a seeded shuffle of all spans, optionally with a repeated span.
        let mut all: Vec<Span> = built.concat();
        if duplicate {
            let again = all[0].clone();
            all.push(again);
        }
        let mut state = order_seed | 1;
        for i in (1..all.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            all.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let clock = Arc::new(ManualClock::new(0));
        let engine = StreamEngine::with_clock(rules, AssemblerConfig::default(), clock).unwrap();
        let mut got = BTreeSet::new();
        let mut evaluated = Vec::new();
        let mut rest = all.as_slice();
        let mut sizes = batch_sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            engine.ingest(batch.to_vec()).unwrap();
            evaluated.extend(engine.sink().take());
        }
        engine.flush(Duration::ZERO);
        evaluated.extend(engine.sink().take());
        for e in &evaluated {
            prop_assert_eq!(e.completion_reason, CompletionReason::Flush);
            prop_assert!(!e.partial);
            prop_assert!(e.evaluation.errors.is_empty());
            for v in &e.evaluation.violations {
                got.insert(key(&e.trace_id.to_hex(), v));
            }
        }
        prop_assert_eq!(evaluated.len(), built.len());
        prop_assert_eq!(got, expected);
        let stats = engine.assembler().stats();
        prop_assert_eq!(stats.spans_in, all.len() as u64);
        prop_assert_eq!(stats.spans_in, stats.spans_released + stats.spans_buffered + stats.spans_dropped.total());
    }
}

#[test]
fn swapping_rules_keeps_buffered_spans_and_applies_to_later_traces() {
    let spans = build(
        0,
        &[SpanSpec {
            name: 1,
            parent: None,
            kind: 2,
            error: true,
            start_ms: 0,
            dur_ms: 5,
            amount: 10,
            usd: false,
        }],
    );
    let first = RuleSet::compile(
        vec![Rule::new("never-audit", "never { audit }")],
        EngineOptions::default(),
    )
    .unwrap();
    let engine = StreamEngine::with_clock(
        first,
        AssemblerConfig::default(),
        Arc::new(ManualClock::new(0)),
    )
    .unwrap();
    assert_eq!(engine.ingest(spans).unwrap(), 0);
    let old = engine.swap_rules(
        RuleSet::compile(
            vec![Rule::new(
                "failed-payment",
                "never { payment.where(span.status == error) }",
            )],
            EngineOptions::default(),
        )
        .unwrap(),
    );
    assert_eq!(old.rules().next().unwrap().id, "never-audit");
    engine.flush(Duration::ZERO);
    let out = engine.sink().take();
    assert_eq!(out.len(), 1);
    let ids: Vec<_> = out[0]
        .evaluation
        .violations
        .iter()
        .map(|v| v.rule_id.as_str())
        .collect();
    assert_eq!(ids, ["failed-payment"]);
    assert_eq!(out[0].span_count, 1);
}

#[test]
fn the_index_runs_only_rules_that_can_fire() {
    let rules = RuleSet::compile(
        (0..100)
            .map(|i| {
                Rule::new(
                    format!("r{i}"),
                    format!("when {{ op_{i} }} always {{ done_{i} }}"),
                )
            })
            .chain([Rule::new("always-on", "always { heartbeat }")])
            .collect(),
        EngineOptions::default(),
    )
    .unwrap();
    let spans = betrace_core::spans_from_simple_json(&serde_json::json!([
        {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7", "name": "op_7",
         "startTime": 1, "endTime": 2}
    ]))
    .unwrap();
    let eval = rules.evaluate(&Trace::new(spans.clone()), TraceContext::direct());
    assert_eq!(eval.rules_run, 2, "op_7's rule and the unindexed rule");
    let ids: BTreeSet<_> = eval.violations.iter().map(|v| v.rule_id.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["r7".to_string(), "always-on".to_string()])
    );
    let unindexed = RuleSet::compile(
        rules.rules().cloned().collect(),
        EngineOptions {
            use_index: false,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let all = unindexed.evaluate(&Trace::new(spans), TraceContext::direct());
    assert_eq!(all.rules_run, 101);
    let ids_all: BTreeSet<_> = all.violations.iter().map(|v| v.rule_id.clone()).collect();
    assert_eq!(ids, ids_all);
}

#[test]
fn the_index_also_selects_rules_by_service() {
    let rules = RuleSet::compile(
        vec![
            Rule::new(
                "billing-errors",
                "span.service == \"billing\" and span.status == error",
            ),
            Rule::new(
                "root-billing",
                "trace.root_service == billing and trace.span_count > 0",
            ),
            Rule::new(
                "any-error-below",
                "never { *.where(span.name == \"charge\" and span.status == error) }",
            ),
        ],
        EngineOptions::default(),
    )
    .unwrap();
    let trace = |service: &str, name: &str| {
        Trace::new(
            betrace_core::spans_from_simple_json(&serde_json::json!([
                {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7", "name": name,
                 "serviceName": service, "status": "error", "startTime": 1, "endTime": 2}
            ]))
            .unwrap(),
        )
    };
    let shop = rules.evaluate(&trace("shop", "GET /"), TraceContext::direct());
    assert_eq!(shop.rules_run, 0);
    let billing = rules.evaluate(&trace("billing", "charge"), TraceContext::direct());
    assert_eq!(billing.rules_run, 3);
    let ids: BTreeSet<_> = billing
        .violations
        .iter()
        .map(|v| v.rule_id.clone())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[test]
fn late_spans_reopen_the_trace_for_a_second_evaluation() {
    let rules = RuleSet::compile(
        vec![
            Rule::new("paid", "when { checkout } always { charge }"),
            Rule::new("no-refund", "never { refund }"),
        ],
        EngineOptions {
            signing_key: Some(b"k".to_vec()),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let engine = StreamEngine::with_clock(
        rules,
        AssemblerConfig::default(),
        Arc::new(ManualClock::new(0)),
    )
    .unwrap();
    let (spans, late) = checkout_and_charge();
    assert_eq!(engine.ingest(spans).unwrap(), 0);
    engine.flush(Duration::ZERO);
    let first = engine.sink().take();
    assert_eq!(first[0].evaluation_number, 1);
    let v = &first[0].evaluation.violations;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].evaluation, 1);
    assert_eq!(engine.assembler().stats().spans_retained, 1);
    // The downstream span arrives after the evaluation: the whole trace is evaluated again.
    assert_eq!(engine.ingest(vec![late.clone()]).unwrap(), 0);
    engine.flush(Duration::ZERO);
    let second = engine.sink().take();
    assert_eq!(second[0].evaluation_number, 2);
    assert!(!second[0].partial);
    assert_eq!(second[0].span_count, 2);
    assert!(second[0].evaluation.violations.is_empty());
    // Once more, with a span that breaks the rule again: numbered 3 and signed.
    let mut third = late;
    third.span_id.0[0] ^= 0xff;
    third.name = "refund".into();
    assert_eq!(engine.ingest(vec![third]).unwrap(), 0);
    engine.flush(Duration::ZERO);
    let out = engine.sink().take();
    assert_eq!(out[0].evaluation_number, 3);
    let v = &out[0].evaluation.violations;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].rule_id, "no-refund");
    assert_eq!(v[0].evaluation, 3);
    assert!(betrace_core::sign::verify(&v[0], b"k"));
}

/// A sink that keeps the live violations of each trace, as a store would.
#[derive(Default)]
struct Ledger {
    live: parking_lot::Mutex<Vec<betrace_core::Violation>>,
    batches: std::sync::atomic::AtomicUsize,
}

impl Sink for Ledger {
    fn complete(&self, _rules: &RuleSet, batch: &mut [Evaluated]) {
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut live = self.live.lock();
        for e in batch.iter_mut() {
            for v in e.evaluation.evaluation.violations.drain(..) {
                if let Some(old) = &v.supersedes {
                    live.retain(|l| &l.id != old);
                }
                if !v.retraction {
                    live.push(v);
                }
            }
        }
    }

    fn earlier_violations(&self, trace_id: TraceId) -> Option<Vec<betrace_core::Violation>> {
        Some(
            self.live
                .lock()
                .iter()
                .filter(|v| v.trace_id == trace_id)
                .cloned()
                .collect(),
        )
    }
}

fn checkout_and_charge() -> (Vec<Span>, Span) {
    let mut spans = build(
        9,
        &[
            SpanSpec {
                name: 0,
                parent: None,
                kind: 2,
                error: false,
                start_ms: 0,
                dur_ms: 50,
                amount: 10,
                usd: false,
            },
            SpanSpec {
                name: 0,
                parent: Some(0),
                kind: 3,
                error: false,
                start_ms: 5,
                dur_ms: 10,
                amount: 10,
                usd: false,
            },
        ],
    );
    spans[0].name = "checkout".into();
    spans[1].name = "charge".into();
    let late = spans.pop().unwrap();
    (spans, late)
}

#[test]
fn a_sink_that_knows_earlier_violations_gets_re_evaluations_reconciled() {
    let rules = RuleSet::compile(
        vec![Rule::new("paid", "when { checkout } always { charge }")],
        EngineOptions {
            signing_key: Some(b"k".to_vec()),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let engine = StreamEngine::with_sink(
        Arc::new(ArcSwap::from_pointee(rules)),
        TraceAssembler::with_clock(AssemblerConfig::default(), Arc::new(ManualClock::new(0)))
            .unwrap(),
        Ledger::default(),
        Executor::Inline,
    );
    let (spans, late) = checkout_and_charge();
    engine.ingest(spans).unwrap();
    engine.flush(Duration::ZERO);
    let first = engine.sink().live.lock().clone();
    assert_eq!(first.len(), 1);
    // The charge arrives late: the rule holds now, so the earlier violation is retracted.
    engine.ingest(vec![late]).unwrap();
    engine.flush(Duration::ZERO);
    assert!(engine.sink().live.lock().is_empty());
    assert_eq!(
        engine
            .sink()
            .batches
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[test]
fn workers_evaluate_what_inline_does_and_refuse_while_the_queue_is_full() {
    let config = AssemblerConfig {
        max_buffered_spans: 4,
        ..AssemblerConfig::default()
    };
    let engine = Arc::new(StreamEngine::with_sink(
        Arc::new(ArcSwap::from_pointee(rules())),
        TraceAssembler::with_clock(config.clone(), Arc::new(ManualClock::new(0))).unwrap(),
        Ledger::default(),
        Executor::Workers(2),
    ));
    let inline =
        StreamEngine::with_clock(rules(), config.clone(), Arc::new(ManualClock::new(0))).unwrap();
    let (spans, late) = checkout_and_charge();
    let mut more = build(
        11,
        &[SpanSpec {
            name: 1,
            parent: None,
            kind: 2,
            error: true,
            start_ms: 0,
            dur_ms: 5,
            amount: 2000,
            usd: false,
        }],
    );
    more.extend(spans);
    for e in [&engine.ingest(more.clone()), &inline.ingest(more)] {
        assert!(e.is_ok());
    }
    // Released into the queue, no thread started yet: 2 spans wait for evaluation.
    assert_eq!(engine.flush(Duration::ZERO), 2);
    assert_eq!(engine.pending_spans(), 2);
    assert!(!engine.saturated());
    engine.ingest(vec![late.clone()]).unwrap();
    engine.flush(Duration::ZERO);
    assert_eq!(engine.pending_spans(), 3);
    let mut other = late;
    other.trace_id.0[0] ^= 0x55;
    engine.ingest(vec![other.clone()]).unwrap();
    engine.flush(Duration::ZERO);
    assert!(engine.saturated());
    match engine.ingest(vec![other.clone()]) {
        Err(r) => {
            assert_eq!(r.reason, betrace_core::assemble::RefuseReason::Full);
            assert_eq!(r.spans.len(), 1);
        }
        Ok(n) => panic!("accepted while saturated ({n} released)"),
    }
    engine.start().unwrap();
    assert!(engine.wait_idle(Duration::from_secs(30)));
    assert_eq!(engine.pending_spans(), 0);
    assert!(engine.ingest(vec![other]).is_ok());
    let done = engine.shutdown(Duration::from_secs(30));
    assert_eq!(done.unfinished_spans, 0);
    // The first batch's violations, as the inline engine found them.
    inline.flush(Duration::ZERO);
    let mut want: Vec<String> = inline
        .sink()
        .take()
        .iter()
        .flat_map(|e| e.evaluation.violations.iter().map(|v| v.rule_id.clone()))
        .collect();
    want.sort();
    assert!(!want.is_empty());
    let live = engine.sink().live.lock();
    for rule in &want {
        assert!(live.iter().any(|v| &v.rule_id == rule), "{rule} missing");
    }
}
