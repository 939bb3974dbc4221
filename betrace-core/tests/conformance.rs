//! The DSL conformance corpus (`shared/conformance/dsl.jsonl`) through the engine API: every
//! case is compiled with the real compiler, its spans decoded from simple JSON, and the rule
//! evaluated by the VM and by the reference evaluator; both must give exactly the expected
//! `violated`, `failedClause`, `triggerSpans` and `offendingSpans` (lists compared in trace
//! order after truncation to the default `max_span_refs` of 100, DSL.md §3.6, §7.3).
//! Compile-error cases must fail with their code; malformed-span cases must be rejected at
//! the span's index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod reference;

#[path = "../../testing/conformance.rs"]
mod conformance;

use betrace_core::{
    EvalOptions, FailedClause, Outcome, PreparedTrace, Trace, evaluate, spans_from_simple_json,
};
use betrace_dsl::{Symbols, check_source};
use serde_json::Value;

/// Default `max_span_refs` (DSL.md §3.6).
const MAX_SPAN_REFS: usize = 100;

fn clause_name(c: Option<FailedClause>) -> Value {
    match c {
        None => Value::Null,
        Some(FailedClause::Always) => "always".into(),
        Some(FailedClause::Never) => "never".into(),
        Some(FailedClause::Expression) => "expression".into(),
    }
}

/// The outcome in the corpus's terms.
fn as_expect(trace: &Trace, o: &Outcome) -> Value {
    let ids = |list: &[u32]| -> Vec<Value> {
        list.iter()
            .take(MAX_SPAN_REFS)
            .map(|&i| trace.span(i).span_id.to_hex().into())
            .collect()
    };
    serde_json::json!({
        "violated": o.violated,
        "failedClause": clause_name(o.failed_clause),
        "triggerSpans": ids(&o.trigger_spans),
        "offendingSpans": ids(&o.offending_spans),
    })
}

/// Runs one case; `Err` describes how it failed.
fn run_case(case: &Value) -> Result<(), String> {
    let text = conformance::rule_text(case);
    let expect = &case["expect"];
    let mut symbols = Symbols::new();
    let compiled = check_source(&text, &mut symbols);

    if let Some(code) = expect["error"].as_str() {
        return match compiled {
            Ok(_) => Err(format!("compiled, expected {code}")),
            Err(diags) => {
                let hit = diags.iter().any(|d| {
                    let c = d.code.as_str();
                    if code == "E2" {
                        c.starts_with("E2")
                    } else {
                        c == code
                    }
                });
                if hit {
                    Ok(())
                } else {
                    let got: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
                    Err(format!("expected {code}, got {got:?}"))
                }
            }
        };
    }

    let rule = compiled.map_err(|d| {
        let got: Vec<String> = d
            .iter()
            .map(|d| format!("{} {}", d.code.as_str(), d.message))
            .collect();
        format!("does not compile: {got:?}")
    })?;
    let decoded = spans_from_simple_json(&case["spans"]);
    if let Some(index) = expect.get("malformedSpan") {
        let want = index.as_u64().map(|i| i as usize);
        return match decoded {
            Ok(_) => Err(format!(
                "spans decoded, expected span {index} to be malformed"
            )),
            Err(e) if e.span_index() == want => Ok(()),
            Err(e) => Err(format!("expected span {index} to be malformed, got: {e}")),
        };
    }
    let spans = decoded.map_err(|e| format!("spans do not decode: {e}"))?;
    let trace = Trace::new(spans);

    let program = betrace_dsl::lower::lower(rule.clone());
    let prepared = PreparedTrace::new(&trace, &symbols);
    let vm = evaluate(&program, &prepared, &EvalOptions::default())
        .map_err(|e| format!("VM error: {e}"))?;
    let walked = reference::evaluate(&rule, &trace, &symbols);

    let mut problems = Vec::new();
    let vm_json = as_expect(&trace, &vm);
    if &vm_json != expect {
        problems.push(format!("VM gave {vm_json}, expected {expect}"));
    }
    let ref_json = as_expect(&trace, &walked);
    if &ref_json != expect {
        problems.push(format!("reference gave {ref_json}, expected {expect}"));
    }
    if vm != walked {
        problems.push(format!("VM {vm:?} and reference {walked:?} differ"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn every_conformance_case_through_vm_and_reference() {
    let cases = conformance::cases();
    let mut failures = Vec::new();
    let mut evaluated = 0;
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        if case["expect"].get("violated").is_some() {
            evaluated += 1;
        }
        if let Err(why) = run_case(case) {
            failures.push(format!("{id}: {why}"));
        }
    }
    assert!(evaluated > 100, "only {evaluated} evaluation cases");
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
