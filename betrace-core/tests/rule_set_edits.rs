//! [`RuleSet::with_rule`] and [`RuleSet::without_rule`] against [`RuleSet::compile`]: a set
//! built rule by rule, with rules replaced, disabled and removed on the way, must evaluate
//! every trace exactly as the set compiled at once from the same final list in the same order
//! — same violations (ids and times aside), same evaluation errors, same rules run through
//! the index. The rules and traces are the evaluation cases of the conformance corpora
//! (`betrace_testing::conformance`), so the sets share names, keys and services the way a
//! server's rules do; each comparison runs with the default options and with an instruction
//! budget tight enough that many rules fail, so errors are compared too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use betrace_core::engine::{EngineOptions, Evaluation, RuleSet, TraceContext};
use betrace_core::{CompletionReason, Rule, Trace, spans_from_simple_json};
use betrace_testing::conformance;
use serde_json::Value;

/// The evaluation cases: rules (id = case id) and their traces.
fn corpus() -> (Vec<Rule>, Vec<Trace>) {
    let mut rules = Vec::new();
    let mut traces = Vec::new();
    for c in conformance::cases() {
        if c["expect"].get("violated").is_none() {
            continue;
        }
        let id = c["id"].as_str().unwrap().to_owned();
        let spans = spans_from_simple_json(&c["spans"])
            .unwrap_or_else(|e| panic!("{id}: spans do not decode: {e}"));
        rules.push(Rule::new(id, conformance::rule_text(&c)));
        traces.push(Trace::new(spans));
    }
    assert!(rules.len() > 100, "only {} evaluation cases", rules.len());
    (rules, traces)
}

/// Options: the defaults, and a budget most rules run out of on some trace.
fn option_sets() -> [EngineOptions; 2] {
    [
        EngineOptions::default(),
        EngineOptions {
            instruction_budget: 40,
            ..EngineOptions::default()
        },
    ]
}

const CTX: TraceContext = TraceContext {
    completion_reason: CompletionReason::Direct,
    partial: false,
    now_unix_nanos: 1_700_000_000_000_000_000,
};

/// An evaluation without what differs between two runs (violation ids).
fn comparable(e: &Evaluation) -> Value {
    let violations: Vec<Value> = e
        .violations
        .iter()
        .map(|v| {
            let mut j = serde_json::to_value(v).unwrap();
            j.as_object_mut().unwrap().remove("id");
            j
        })
        .collect();
    let errors: Vec<Value> = e
        .errors
        .iter()
        .map(|r| serde_json::json!([r.rule_id, r.trace_id, format!("{:?}", r.error)]))
        .collect();
    serde_json::json!({
        "violations": violations,
        "errors": errors,
        "rulesRun": e.rules_run,
    })
}

/// `set` evaluates every trace as `RuleSet::compile(expected)` does, and holds those rules.
fn assert_same(set: &RuleSet, expected: &[Rule], traces: &[Trace], what: &str) {
    let full = RuleSet::compile(expected.to_vec(), set.options().clone())
        .unwrap_or_else(|e| panic!("{what}: the final list does not compile: {}", e[0].render()));
    let got: Vec<&Rule> = set.rules().collect();
    let want: Vec<&Rule> = expected.iter().collect();
    assert_eq!(got, want, "{what}: the rules differ");
    let (mut violations, mut errors) = (0, 0);
    for (i, trace) in traces.iter().enumerate() {
        let a = set.evaluate(trace, CTX);
        let b = full.evaluate(trace, CTX);
        violations += b.violations.len();
        errors += b.errors.len();
        assert_eq!(
            comparable(&a),
            comparable(&b),
            "{what}: trace {i} evaluates differently"
        );
    }
    // The comparison has something to compare.
    if !expected.is_empty() {
        assert!(violations > 0, "{what}: no violation on any trace");
    }
    if set.options().instruction_budget < 100 && !expected.is_empty() {
        assert!(
            errors > 0,
            "{what}: no evaluation error under a tight budget"
        );
    }
}

#[test]
fn built_rule_by_rule_equals_compiled_at_once() {
    let (rules, traces) = corpus();
    for options in option_sets() {
        let mut set = RuleSet::compile(Vec::new(), options.clone()).unwrap();
        for r in &rules {
            set = set
                .with_rule(r.clone())
                .unwrap_or_else(|e| panic!("{}: {}", r.id, e.render()));
        }
        assert_eq!(set.len(), rules.len());
        assert_same(&set, &rules, &traces, "rule by rule");
    }
}

/// A small deterministic generator (xorshift64), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn edits_equal_compiling_the_final_list() {
    let (pool, traces) = corpus();
    for options in option_sets() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // The list a full compile gets, kept by the rules of `with_rule`/`without_rule`:
        // a replacement stays in place, a new rule goes last, a removal closes the gap.
        let mut model: Vec<Rule> = Vec::new();
        let mut set = RuleSet::compile(Vec::new(), options.clone()).unwrap();
        let mut next = 0;
        for step in 0..600 {
            match rng.below(10) {
                // Add the next rule of the pool.
                0..=3 if next < pool.len() => {
                    let r = pool[next].clone();
                    next += 1;
                    set = set.with_rule(r.clone()).unwrap();
                    model.push(r);
                }
                // Give an existing id another rule's expression.
                4 | 5 if !model.is_empty() => {
                    let at = rng.below(model.len());
                    let mut r = pool[rng.below(pool.len())].clone();
                    r.id = model[at].id.clone();
                    r.name = model[at].name.clone();
                    set = set.with_rule(r.clone()).unwrap();
                    model[at] = r;
                }
                // Disable or enable one.
                6 if !model.is_empty() => {
                    let at = rng.below(model.len());
                    let mut r = model[at].clone();
                    r.enabled = !r.enabled;
                    set = set.with_rule(r.clone()).unwrap();
                    model[at] = r;
                }
                // Remove one.
                7 if !model.is_empty() => {
                    let at = rng.below(model.len());
                    let r = model.remove(at);
                    set = set.without_rule(&r.id);
                }
                // Remove an id the set does not have: nothing changes.
                8 => set = set.without_rule("no-such-rule"),
                _ => {}
            }
            if step % 200 == 199 {
                assert_same(&set, &model, &traces, &format!("after step {step}"));
            }
        }
        assert!(model.len() > 20, "only {} rules left", model.len());
        // Names of removed and replaced rules are still interned, and harmless.
        let full = RuleSet::compile(model.clone(), options.clone()).unwrap();
        assert!(set.symbols().span_names().len() > full.symbols().span_names().len());
        // Removing every rule leaves a set that finds nothing.
        for r in &model {
            set = set.without_rule(&r.id);
        }
        assert!(set.is_empty());
        assert_same(&set, &[], &traces, "every rule removed");
        for t in &traces {
            let e = set.evaluate(t, CTX);
            assert_eq!((e.violations.len(), e.rules_run), (0, 0));
        }
    }
}

#[test]
fn a_rule_that_does_not_compile_leaves_the_set_as_it_was() {
    let (rules, traces) = corpus();
    let rules: Vec<Rule> = rules.into_iter().take(40).collect();
    let set = RuleSet::compile(rules.clone(), EngineOptions::default()).unwrap();
    let before: Vec<Value> = traces
        .iter()
        .map(|t| comparable(&set.evaluate(t, CTX)))
        .collect();
    let bad_text = "never { payment.where( }";
    let alone = RuleSet::compile(vec![Rule::new("bad", bad_text)], EngineOptions::default())
        .expect_err("the rule does not compile");
    // New, and in place of an existing rule.
    for id in ["bad", rules[3].id.as_str()] {
        let err = set
            .with_rule(Rule::new(id, bad_text))
            .expect_err("the rule does not compile");
        assert_eq!(err.rule_id, id);
        assert_eq!(err.expression, bad_text);
        assert!(!err.diagnostics.is_empty());
        assert_eq!(err.diagnostics, alone[0].diagnostics);
    }
    assert_same(&set, &rules, &traces, "after the refused rules");
    let after: Vec<Value> = traces
        .iter()
        .map(|t| comparable(&set.evaluate(t, CTX)))
        .collect();
    assert_eq!(before, after);
    // And it still takes a rule that compiles.
    let more = set.with_rule(Rule::new("ok", "never { payment }")).unwrap();
    assert_eq!(more.len(), rules.len() + 1);
}

#[test]
fn a_replaced_rule_keeps_its_place_and_a_new_one_goes_last() {
    let set = RuleSet::compile(
        vec![
            Rule::new("b", "never { b }"),
            Rule::new("a", "never { a }"),
            Rule::new("c", "never { c }"),
        ],
        EngineOptions::default(),
    )
    .unwrap();
    let set = set.with_rule(Rule::new("a", "never { x }")).unwrap();
    let set = set.with_rule(Rule::new("0", "never { y }")).unwrap();
    let ids: Vec<(&str, &str)> = set
        .rules()
        .map(|r| (r.id.as_str(), r.expression.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("b", "never { b }"),
            ("a", "never { x }"),
            ("c", "never { c }"),
            ("0", "never { y }")
        ]
    );
    let set = set.without_rule("a");
    let ids: Vec<&str> = set.rules().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "0"]);
    // The replaced rule's name `a` is still interned; `x` too, though its rule is gone.
    assert!(set.symbols().span_name_id("a").is_some());
    assert!(set.symbols().span_name_id("x").is_some());
}
