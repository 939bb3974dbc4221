//! The DSL conformance corpora (`shared/conformance/dsl.jsonl` and the project's
//! `testing/conformance-extra.jsonl`) through the engine API: every case is compiled with the
//! real compiler, its spans decoded from simple JSON, and the rule evaluated by the VM and by
//! the reference evaluator, and through [`RuleSet`] with the rule index on — alone, and
//! together with every other case's rule in one set (shared symbols, shared index). Each must
//! give exactly the expected `violated`, `failedClause`, `triggerSpans` and `offendingSpans`
//! (lists compared in trace order after truncation to the default `max_span_refs` of 100,
//! DSL.md §3.6, §7.3). Compile-error cases must fail with their code; malformed-span cases
//! must be rejected at the span's index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod reference;

#[path = "../../testing/conformance.rs"]
mod conformance;

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::{
    EvalOptions, FailedClause, Outcome, PreparedTrace, Rule, Trace, Violation, evaluate,
    spans_from_simple_json,
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

/// A rule set's answer for one rule on one trace, in the corpus's terms.
fn violation_as_expect(violations: &[&Violation]) -> Value {
    match violations {
        [] => serde_json::json!({
            "violated": false,
            "failedClause": null,
            "triggerSpans": [],
            "offendingSpans": [],
        }),
        [v] => {
            let ids = |list: &[betrace_core::SpanRef]| -> Vec<Value> {
                list.iter().map(|s| s.span_id.clone().into()).collect()
            };
            serde_json::json!({
                "violated": true,
                "failedClause": v.failed_clause.as_str(),
                "triggerSpans": ids(&v.trigger_spans),
                "offendingSpans": ids(&v.offending_spans),
            })
        }
        more => serde_json::json!({ "violations": more.len() }),
    }
}

/// The evaluation cases: (id, rule text, trace, expectation).
fn evaluation_cases() -> Vec<(String, String, Trace, Value)> {
    conformance::cases()
        .into_iter()
        .filter(|c| c["expect"].get("violated").is_some())
        .map(|c| {
            let id = c["id"].as_str().unwrap_or("?").to_owned();
            let spans = spans_from_simple_json(&c["spans"])
                .unwrap_or_else(|e| panic!("{id}: spans do not decode: {e}"));
            (
                id,
                conformance::rule_text(&c),
                Trace::new(spans),
                c["expect"].clone(),
            )
        })
        .collect()
}

fn evaluate_in(set: &RuleSet, id: &str, trace: &Trace) -> Result<Value, String> {
    let eval = set.evaluate(trace, TraceContext::direct());
    if let Some(e) = eval.errors.iter().find(|e| e.rule_id == id) {
        return Err(format!("evaluation error: {}", e.error));
    }
    let mine: Vec<&Violation> = eval.violations.iter().filter(|v| v.rule_id == id).collect();
    Ok(violation_as_expect(&mine))
}

#[test]
fn every_evaluation_case_through_an_indexed_rule_set() {
    let cases = evaluation_cases();
    let options = EngineOptions::default();
    assert!(options.use_index);
    let mut failures = Vec::new();
    for (id, text, trace, expect) in &cases {
        let set = match RuleSet::compile(vec![Rule::new(id.clone(), text.clone())], options.clone())
        {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{id}: does not compile: {}", e[0].render()));
                continue;
            }
        };
        match evaluate_in(&set, id, trace) {
            Ok(got) if &got == expect => {}
            Ok(got) => failures.push(format!("{id}: rule set gave {got}, expected {expect}")),
            Err(e) => failures.push(format!("{id}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} evaluation cases failed through RuleSet:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Every case's rule in one set: the index and the symbol table are shared, so a rule can
/// only run on a trace when the index lets it, exactly as in the server.
#[test]
fn every_evaluation_case_through_one_shared_rule_set() {
    let cases = evaluation_cases();
    let rules = cases
        .iter()
        .map(|(id, text, _, _)| Rule::new(id.clone(), text.clone()))
        .collect();
    let set = RuleSet::compile(rules, EngineOptions::default())
        .unwrap_or_else(|e| panic!("{}", e[0].render()));
    let mut failures = Vec::new();
    for (id, _, trace, expect) in &cases {
        match evaluate_in(&set, id, trace) {
            Ok(got) if &got == expect => {}
            Ok(got) => failures.push(format!("{id}: rule set gave {got}, expected {expect}")),
            Err(e) => failures.push(format!("{id}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} evaluation cases failed through the shared RuleSet:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
