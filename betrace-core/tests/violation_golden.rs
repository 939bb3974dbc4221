//! The JSON text and the signature of violations, pinned (ENGINE.md §6–7): a first
//! evaluation, a re-evaluation that supersedes it, a retraction, a record with cut span lists
//! and one that names no span. The stored body, the bindings' objects and the signed bytes are
//! all this text, so any change of the shape or of a value's spelling shows up here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::rules::Rule;
use betrace_core::sign::{canonical_bytes, sign_in_place, verify, verify_json};
use betrace_core::violation::reconcile;
use betrace_core::{CompletionReason, Severity, Violation, spans_from_simple_json};

const KEY: &[u8] = b"golden-key";
/// 2024-05-01T12:00:00.123456789Z: `createdAt` keeps the milliseconds.
const AT: u64 = 1_714_564_800_123_456_789;

fn spans(extra_checkout: bool) -> Vec<betrace_core::Span> {
    let mut list = vec![
        serde_json::json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
            "name": "checkout", "serviceName": "shop", "startTime": "1714564800000000000",
            "endTime": "1714564800500000000", "attributes": {"amount": 1500}}),
        serde_json::json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "a1b2c3d4e5f60718",
            "parentSpanId": "00f067aa0ba902b7", "name": "debug_dump", "serviceName": "shop \"eu\"",
            "startTime": "1714564800100000000", "endTime": "1714564800200000000"}),
        serde_json::json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "b1b2c3d4e5f60718",
            "parentSpanId": "00f067aa0ba902b7", "name": "debug_dump", "serviceName": "shop",
            "startTime": "1714564800150000000", "endTime": "1714564800250000000"}),
    ];
    if extra_checkout {
        list.push(
            serde_json::json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "spanId": "c1b2c3d4e5f60718", "name": "checkout", "serviceName": "shop",
            "startTime": "1714564800300000000", "endTime": "1714564800400000000"}),
        );
    }
    spans_from_simple_json(&serde_json::Value::Array(list)).unwrap()
}

fn rules() -> Vec<Rule> {
    let mut fraud = Rule::new(
        "large-order-fraud",
        "when { checkout } always { fraud_check }",
    );
    fraud.severity = Severity::High;
    let mut debug = Rule::new("no-debug", "never { debug_dump }");
    debug.name = "No debug dumps in production".into();
    debug.severity = Severity::Critical;
    let mut big = Rule::new("big-trace", "trace.duration > 100ms");
    big.severity = Severity::Low;
    vec![fraud, debug, big]
}

fn evaluate(max_span_refs: usize, extra_checkout: bool, at: u64) -> Vec<Violation> {
    let set = RuleSet::compile(
        rules(),
        EngineOptions {
            max_span_refs,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let ctx = TraceContext {
        completion_reason: CompletionReason::RootComplete,
        partial: false,
        now_unix_nanos: at,
    };
    let out = set.evaluate_spans(spans(extra_checkout), ctx);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    out.violations
}

/// Fixed ids (a UUIDv7 is random), then signed.
fn pin(mut vs: Vec<Violation>, first_id: u32) -> Vec<Violation> {
    for (i, v) in vs.iter_mut().enumerate() {
        v.id = format!("0190f5a2-7c3e-7000-8000-{:012x}", first_id as usize + i);
        sign_in_place(v, KEY);
    }
    vs
}

fn render(label: &str, v: &Violation) -> String {
    let text = serde_json::to_string(v).unwrap();
    let canonical = String::from_utf8(canonical_bytes(v)).unwrap();
    // What is stored and sent verifies, and reads back to the same record.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(verify_json(&value, KEY), "{label}");
    assert!(verify(v, KEY), "{label}");
    let back: Violation = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, v, "{label}");
    assert_eq!(serde_json::to_string(&back).unwrap(), text, "{label}");
    format!(
        "{label}\njson:      {text}\ncanonical: {canonical}\nsignature: {}\n",
        v.signature.as_deref().unwrap_or("")
    )
}

#[test]
fn violation_json_and_signatures() {
    let first = pin(evaluate(100, false, AT), 1);
    assert_eq!(first.len(), 3);
    let truncated = pin(evaluate(1, false, AT), 11);
    // Evaluation 2 of the whole trace, with a second checkout: the fraud rule's finding
    // changes (a record that supersedes), the other two stand, and an earlier violation of a
    // rule that no longer fires is retracted.
    let later = evaluate(100, true, AT + 60_000_000_000);
    let mut earlier = first.clone();
    let mut gone = earlier[2].clone();
    gone.rule_id = "gone-rule".into();
    gone.rule_name = "gone-rule".into();
    gone.id = "0190f5a2-7c3e-7000-8000-0000000000ff".into();
    earlier.push(gone);
    let out = reconcile(
        &earlier,
        later,
        2,
        4,
        CompletionReason::RootComplete,
        AT + 61_000_000_000,
    );
    assert_eq!(out.unchanged, 2);
    let second = pin(out.records, 21);
    assert_eq!(second.len(), 2);

    let mut text = String::new();
    for (label, v) in [
        ("first evaluation, always (trigger span)", &first[0]),
        ("first evaluation, never (no trigger span)", &first[1]),
        ("expression form, no span id", &first[2]),
        ("truncated span lists", &truncated[1]),
    ] {
        text.push_str(&render(label, v));
    }
    for v in &second {
        let label = if v.retraction {
            "retraction"
        } else {
            "re-evaluation, supersedes"
        };
        text.push_str(&render(label, v));
    }
    insta::assert_snapshot!(text);
}
