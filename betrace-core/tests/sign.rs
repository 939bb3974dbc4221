//! Signatures survive a round trip through JSON text and break on any change (ENGINE.md §7).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use betrace_core::sign::{canonical_bytes, sign, sign_in_place, verify, verify_json};
use betrace_core::{
    ClauseTexts, CompletionReason, FailedClause, Severity, SpanRef, TraceId, Violation,
    ViolationParts,
};
use proptest::prelude::*;

fn make(name: &str, message: &str, svc: &str, n_refs: usize, partial: bool) -> Violation {
    let refs: Vec<SpanRef> = (0..n_refs)
        .map(|i| SpanRef {
            trace_id: TraceId([0xab; 16]),
            span_id: betrace_core::SpanId((i as u64).to_be_bytes()),
            name: format!("{name}-{i}"),
            service: svc.to_owned(),
        })
        .collect();
    let mut v = Violation::new(
        ViolationParts {
            rule_id: "r",
            rule_name: name,
            expression: "when { a } always { b }",
            severity: Severity::Critical,
            clauses: ClauseTexts::default(),
            trace_id: TraceId([0xab; 16]),
            failed_clause: FailedClause::Always,
            trigger_spans: refs.clone(),
            offending_spans: refs,
            truncated: false,
            completion_reason: CompletionReason::IdleTimeout,
            partial,
        },
        1_700_000_000_000_000_000,
    );
    v.message = message.to_owned();
    v
}

#[test]
fn every_field_is_covered_by_the_signature() {
    let key = b"0123456789abcdef0123456789abcdef";
    let mut v = make("name", "msg", "svc", 2, false);
    sign_in_place(&mut v, key);
    let json = serde_json::to_value(&v).unwrap();
    assert!(verify_json(&json, key));
    let obj = json.as_object().unwrap();
    for field in obj.keys().filter(|k| *k != "signature") {
        let mut t = json.clone();
        t[field] = match &json[field] {
            serde_json::Value::String(s) => serde_json::Value::String(format!("{s}x")),
            serde_json::Value::Bool(b) => serde_json::Value::Bool(!b),
            serde_json::Value::Array(a) if a.is_empty() => serde_json::json!([1]),
            serde_json::Value::Array(a) => serde_json::Value::Array(a[1..].to_vec()),
            other => panic!("unexpected value for {field}: {other}"),
        };
        assert!(
            !verify_json(&t, key),
            "changing `{field}` kept the signature valid"
        );
    }
    // Removing a key or adding one breaks it too.
    let mut t = json.clone();
    t.as_object_mut().unwrap().remove("partial");
    assert!(!verify_json(&t, key));
    let mut t = json.clone();
    t["extra"] = serde_json::json!("x");
    assert!(!verify_json(&t, key));
}

#[test]
fn signing_ignores_the_previous_signature() {
    let mut v = make("n", "m", "s", 1, true);
    let first = sign(&v, b"k");
    v.signature = Some("v1:garbage".into());
    assert_eq!(sign(&v, b"k"), first);
}

proptest! {
    #[test]
    fn round_trip_through_json_text_verifies(
        name in any::<String>(),
        message in any::<String>(),
        svc in any::<String>(),
        n_refs in 0usize..4,
        partial in any::<bool>(),
        key in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut v = make(&name, &message, &svc, n_refs, partial);
        sign_in_place(&mut v, &key);
        prop_assert!(verify(&v, &key));
        let text = serde_json::to_string(&v).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert!(verify_json(&value, &key));
        let back: Violation = serde_json::from_str(&text).unwrap();
        prop_assert!(verify(&back, &key));
        prop_assert_eq!(canonical_bytes(&back), canonical_bytes(&v));
        let mut other = key.clone();
        other.push(1); // HMAC pads short keys with zeros: a trailing 0 is the same key
        prop_assert!(!verify(&back, &other));
    }
}
