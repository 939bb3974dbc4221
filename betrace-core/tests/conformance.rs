//! The DSL conformance corpora (`shared/conformance/dsl.jsonl` and the project's
//! `testing/conformance-extra.jsonl`) through the engine API: every case is compiled with the
//! real compiler, its spans decoded from simple JSON, and the rule evaluated by the VM and by
//! the reference evaluator, and through [`RuleSet`] with the rule index on — alone, and
//! together with every other case's rule in one set (shared symbols, shared index). Each must
//! give exactly the expected `violated`, `failedClause`, `triggerSpans` and `offendingSpans`
//! (lists compared in trace order after truncation to the default `max_span_refs` of 100,
//! DSL.md §3.6, §7.3). Compile-error cases must fail with their code; malformed-span cases
//! must be rejected at the span's index.
//!
//! One generated test per case and runner (libtest-mimic, `harness = false`), named
//! `vm::<id>`, `reference::<id>`, `ruleset::<id>` (the rule alone in an indexed set) and
//! `ruleset-shared::<id>` (every evaluation case's rule in one set), so a failure names its
//! case and `cargo test -p betrace-core --test conformance -- <id>` runs one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use betrace_testing::conformance;
use betrace_testing::reference;

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::{
    EvalOptions, FailedClause, Outcome, PreparedTrace, Rule, Trace, Violation, evaluate,
    spans_from_simple_json,
};
use betrace_dsl::{Symbols, check_source};
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
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

/// An evaluation case ready to run: its checked rule, the symbols it was checked against, and
/// its trace.
type Checked = (betrace_dsl::ir::Rule, Symbols, Trace);

/// Compiles the case and decodes its spans; compile-error and malformed-span cases are judged
/// here and give `Ok(None)`. `Err` describes how the case failed.
fn prepare(case: &Value) -> Result<Option<Checked>, String> {
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
                    Ok(None)
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
            Err(e) if e.span_index() == want => Ok(None),
            Err(e) => Err(format!("expected span {index} to be malformed, got: {e}")),
        };
    }
    let spans = decoded.map_err(|e| format!("spans do not decode: {e}"))?;
    Ok(Some((rule, symbols, Trace::new(spans))))
}

fn run_vm(
    rule: &betrace_dsl::ir::Rule,
    symbols: &Symbols,
    trace: &Trace,
) -> Result<Outcome, String> {
    let program = betrace_dsl::lower::lower(rule.clone());
    let prepared = PreparedTrace::new(trace, symbols);
    evaluate(&program, &prepared, &EvalOptions::default()).map_err(|e| format!("VM error: {e}"))
}

/// `vm::<id>`: every case; the compiler's verdict, span decoding, and the VM's outcome.
fn vm_case(case: &Value) -> Result<(), String> {
    let Some((rule, symbols, trace)) = prepare(case)? else {
        return Ok(());
    };
    let vm = run_vm(&rule, &symbols, &trace)?;
    let got = as_expect(&trace, &vm);
    if got == case["expect"] {
        Ok(())
    } else {
        Err(format!("VM gave {got}, expected {}", case["expect"]))
    }
}

/// `reference::<id>`: evaluation cases; the reference evaluator's outcome, which must also be
/// exactly the VM's (spans in the same order, untruncated).
fn reference_case(case: &Value) -> Result<(), String> {
    let Some((rule, symbols, trace)) = prepare(case)? else {
        return Err("not an evaluation case".into());
    };
    let walked = reference::evaluate(&rule, &trace, &symbols);
    let got = as_expect(&trace, &walked);
    if got != case["expect"] {
        return Err(format!("reference gave {got}, expected {}", case["expect"]));
    }
    let vm = run_vm(&rule, &symbols, &trace)?;
    if vm != walked {
        return Err(format!("VM {vm:?} and reference {walked:?} differ"));
    }
    Ok(())
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
                list.iter().map(|s| s.span_id.to_hex().into()).collect()
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

/// `ruleset::<id>`: the case's rule alone in an indexed [`RuleSet`].
fn ruleset_case(id: &str, text: &str, trace: &Trace, expect: &Value) -> Result<(), String> {
    let options = EngineOptions::default();
    if !options.use_index {
        return Err("the rule index is off by default".into());
    }
    let set = RuleSet::compile(vec![Rule::new(id, text)], options)
        .map_err(|e| format!("does not compile: {}", e[0].render()))?;
    let got = evaluate_in(&set, id, trace)?;
    if &got == expect {
        Ok(())
    } else {
        Err(format!("rule set gave {got}, expected {expect}"))
    }
}

/// `ruleset-shared::<id>`: every evaluation case's rule in one set. The index and the symbol
/// table are shared, so a rule can only run on a trace when the index lets it, exactly as in
/// the server.
fn shared_case(
    set: &Result<RuleSet, String>,
    id: &str,
    trace: &Trace,
    expect: &Value,
) -> Result<(), String> {
    let set = set.as_ref().map_err(Clone::clone)?;
    let got = evaluate_in(set, id, trace)?;
    if &got == expect {
        Ok(())
    } else {
        Err(format!("shared rule set gave {got}, expected {expect}"))
    }
}

fn trial(name: String, run: impl FnOnce() -> Result<(), String> + Send + 'static) -> Trial {
    Trial::test(name, move || run().map_err(Failed::from))
}

fn main() {
    let args = Arguments::from_args();
    let cases = conformance::cases();
    let evaluation = evaluation_cases();
    let shared = Arc::new(
        RuleSet::compile(
            evaluation
                .iter()
                .map(|(id, text, _, _)| Rule::new(id.clone(), text.clone()))
                .collect(),
            EngineOptions::default(),
        )
        .map_err(|e| format!("the shared rule set does not compile: {}", e[0].render())),
    );

    let mut trials = Vec::new();
    let count = evaluation.len();
    trials.push(trial("corpus::evaluation-cases".into(), move || {
        if count > 100 {
            Ok(())
        } else {
            Err(format!("only {count} evaluation cases"))
        }
    }));
    for case in cases {
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        let evaluates = case["expect"].get("violated").is_some();
        let case = Arc::new(case);
        let c = Arc::clone(&case);
        trials.push(trial(format!("vm::{id}"), move || vm_case(&c)));
        if evaluates {
            trials.push(trial(format!("reference::{id}"), move || {
                reference_case(&case)
            }));
        }
    }
    for (id, text, trace, expect) in evaluation {
        let (t, e, i) = (trace, expect, id.clone());
        let (t2, e2) = (t.clone(), e.clone());
        trials.push(trial(format!("ruleset::{id}"), move || {
            ruleset_case(&i, &text, &t, &e)
        }));
        let set = Arc::clone(&shared);
        trials.push(trial(format!("ruleset-shared::{id}"), move || {
            shared_case(&set, &id, &t2, &e2)
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
