//! Rule sets and evaluation (ENGINE.md §3, §4).
//!
//! In: [`Rule`]s (text) and complete [`Trace`]s. Out: [`Violation`]s and per-rule evaluation
//! errors. [`RuleSet::compile`] compiles every rule against one shared [`Symbols`] table,
//! reports every diagnostic of every rule with the rule's id, and builds an index from span
//! names to the rules whose violation needs a span of that name, so evaluating N rules on a
//! trace runs only the rules that can fire. A rule set is immutable; swap it whole (e.g. with
//! `arc-swap`). [`RuleSet::with_rule`] and [`RuleSet::without_rule`] derive the set after one
//! rule changes, compiling that rule only.

use betrace_dsl::bytecode::Program;
use betrace_dsl::requirements::{Need, violation_needs};
use betrace_dsl::{Diagnostic, Symbols};
use rayon::prelude::*;

use crate::prepared::PreparedTrace;
use crate::rules::Rule;
use crate::span::Span;
use crate::trace::{SpanIndex, Trace, group_by_trace};
use crate::violation::{
    ClauseTexts, CompletionReason, FailedClause, SpanRef, Violation, ViolationParts,
};
use crate::vm::{self, EvalError, EvalOptions, Outcome};

/// Evaluation settings (DSL.md §3.6, §3.7).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Longest span list of a violation (`max_span_refs`, default 100).
    pub max_span_refs: usize,
    /// VM steps one evaluation of one rule may take (default 10 000 000).
    pub instruction_budget: u64,
    /// Signs every violation with this key when set (ENGINE.md §7).
    pub signing_key: Option<Vec<u8>>,
    /// Use the span-name index (on by default; off only to measure its effect).
    pub use_index: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_span_refs: 100,
            instruction_budget: 10_000_000,
            signing_key: None,
            use_index: true,
        }
    }
}

/// The diagnostics of one rule that did not compile.
#[derive(Clone, Debug)]
pub struct RuleDiagnostics {
    pub rule_id: String,
    /// The rule text the diagnostics' ranges refer to.
    pub expression: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl RuleDiagnostics {
    /// The diagnostics rendered with the source line and a caret, the rule id as origin.
    pub fn render(&self) -> String {
        betrace_dsl::render(
            &self.diagnostics,
            &format!("rule `{}`", self.rule_id),
            &self.expression,
        )
    }
}

/// A rule whose evaluation failed on a trace (e.g. the instruction budget ran out).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleEvalError {
    pub rule_id: String,
    pub trace_id: String,
    pub error: EvalError,
}

/// The result of evaluating a rule set against one trace.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub violations: Vec<Violation>,
    pub errors: Vec<RuleEvalError>,
    /// How many rules were run (after the index).
    pub rules_run: usize,
}

/// How a trace came to be evaluated, copied into its violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub completion_reason: CompletionReason,
    pub partial: bool,
    /// `createdAt` of the violations, Unix nanoseconds.
    pub now_unix_nanos: u64,
}

impl TraceContext {
    /// A complete trace evaluated directly (not through the assembler), now.
    pub fn direct() -> TraceContext {
        TraceContext {
            completion_reason: CompletionReason::Direct,
            partial: false,
            now_unix_nanos: now_unix_nanos(),
        }
    }
}

/// The current time in Unix nanoseconds (0 before 1970).
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One rule, checked and lowered against the set's [`Symbols`].
#[derive(Clone, Debug)]
struct CompiledRule {
    rule: Rule,
    program: Program,
    /// What a trace must contain for a violation ([`violation_needs`]); `None` when it may
    /// fire on any trace.
    needs: Option<Vec<Need>>,
    when: Option<String>,
    always: Option<String>,
    never: Option<String>,
}

impl CompiledRule {
    /// Parses, checks and lowers `rule`, interning its names and keys in `symbols`. Errors:
    /// the rule's diagnostics (`symbols` may then hold names of the failed rule).
    fn compile(rule: Rule, symbols: &mut Symbols) -> Result<CompiledRule, RuleDiagnostics> {
        match betrace_dsl::check_source(&rule.expression, symbols) {
            Ok(ir) => {
                let needs =
                    violation_needs(&ir.body, &mut |name| Some(symbols.intern_span_name(name)));
                let (when, always, never) = clause_texts(&rule.expression);
                Ok(CompiledRule {
                    program: betrace_dsl::lower::lower(ir),
                    needs,
                    rule,
                    when,
                    always,
                    never,
                })
            }
            Err(diagnostics) => Err(RuleDiagnostics {
                rule_id: rule.id.clone(),
                expression: rule.expression.clone(),
                diagnostics,
            }),
        }
    }
}

/// Which rules can fire on a trace: by span name, by service, or on any trace. Holds indices
/// into the set's rules; disabled rules are in none of the lists.
#[derive(Debug)]
struct RuleIndex {
    /// Rules whose violation needs a span of the name; by `NameId`.
    by_name: Vec<Vec<u32>>,
    /// Rules whose violation needs a span of the service.
    by_service: ahash::AHashMap<Box<str>, Vec<u32>>,
    /// Enabled rules that may fire on any trace.
    unindexed: Vec<u32>,
}

impl RuleIndex {
    /// The index of `rules`, whose name ids are below `names` (the size of their symbol
    /// table); rule `i` is `rules[i]`.
    fn build(rules: &[CompiledRule], names: usize) -> RuleIndex {
        let mut by_name = vec![Vec::new(); names];
        let mut by_service: ahash::AHashMap<Box<str>, Vec<u32>> = ahash::AHashMap::new();
        let mut unindexed = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !rule.rule.enabled {
                continue;
            }
            match &rule.needs {
                Some(needs) => {
                    for n in needs {
                        match n {
                            Need::Name(n) => {
                                if let Some(v) = by_name.get_mut(n.0 as usize) {
                                    v.push(i as u32);
                                }
                            }
                            Need::Service(s) => {
                                by_service.entry(s.clone()).or_default().push(i as u32)
                            }
                        }
                    }
                }
                None => unindexed.push(i as u32),
            }
        }
        RuleIndex {
            by_name,
            by_service,
            unindexed,
        }
    }
}

/// Compiled, immutable rules with their span-name index.
///
/// [`RuleSet::compile`] builds a set from a list of rules; [`RuleSet::with_rule`] and
/// [`RuleSet::without_rule`] derive a new set from this one, compiling only the rule that
/// changes. Names and attribute keys of a removed or replaced rule stay in the symbol table
/// until a set is compiled anew: harmless (no rule refers to them; a trace prepared for the
/// set resolves a few more names and keys), and bounded by the rule text edited since.
#[derive(Debug)]
pub struct RuleSet {
    symbols: Symbols,
    rules: Vec<CompiledRule>,
    index: RuleIndex,
    options: EngineOptions,
}

impl RuleSet {
    /// Compiles `rules`, in order, against one new symbol table. Errors: the diagnostics of
    /// every rule that does not compile.
    pub fn compile(
        rules: Vec<Rule>,
        options: EngineOptions,
    ) -> Result<RuleSet, Vec<RuleDiagnostics>> {
        let mut symbols = Symbols::new();
        let mut compiled = Vec::with_capacity(rules.len());
        let mut failures = Vec::new();
        for rule in rules {
            match CompiledRule::compile(rule, &mut symbols) {
                Ok(c) => compiled.push(c),
                Err(f) => failures.push(f),
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        Ok(RuleSet::assemble(symbols, compiled, options))
    }

    /// A new set with `rule` in place of the first rule of the same id (at its position), or
    /// appended when there is none; the other rules and the options are this set's.
    ///
    /// Only `rule` is parsed, checked and lowered, against a copy of this set's symbol table:
    /// interning only appends to the table, so the ids the other compiled rules hold keep
    /// their meaning; nothing in checking or lowering reads the table's size. The name and key
    /// ids `rule` gets may differ from the ones a [`RuleSet::compile`] of the same list would
    /// give it (names already interned keep their ids, the replaced rule's names stay
    /// interned). The lowering may then pick another route for it — a gate is read through a
    /// [`betrace_dsl::gate::Window`] only when its names' ids lie close together — and every
    /// route gives the same verdict and charges the same steps, so the evaluation is the
    /// same. Errors: the diagnostics of `rule`, and this set is unchanged.
    pub fn with_rule(&self, rule: Rule) -> Result<RuleSet, RuleDiagnostics> {
        let mut symbols = self.symbols.clone();
        let compiled = CompiledRule::compile(rule, &mut symbols)?;
        let mut new = Some(compiled);
        let mut rules = Vec::with_capacity(self.rules.len() + 1);
        for r in &self.rules {
            match new.take_if(|n| n.rule.id == r.rule.id) {
                Some(n) => rules.push(n),
                None => rules.push(r.clone()),
            }
        }
        rules.extend(new);
        Ok(RuleSet::assemble(symbols, rules, self.options.clone()))
    }

    /// A new set without the rules of id `id` (this set's rules otherwise, in order, and its
    /// options). Nothing is compiled; the symbol table is kept whole, the removed rules' names
    /// included (see [`RuleSet`]).
    pub fn without_rule(&self, id: &str) -> RuleSet {
        let rules = self
            .rules
            .iter()
            .filter(|r| r.rule.id != id)
            .cloned()
            .collect();
        RuleSet::assemble(self.symbols.clone(), rules, self.options.clone())
    }

    /// The set of compiled `rules` over `symbols`, with its index.
    fn assemble(symbols: Symbols, rules: Vec<CompiledRule>, options: EngineOptions) -> RuleSet {
        let index = RuleIndex::build(&rules, symbols.span_names().len());
        RuleSet {
            symbols,
            rules,
            index,
            options,
        }
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The symbol table shared by the compiled rules.
    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// The options the set was compiled with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates every enabled rule that can fire against one complete trace.
    pub fn evaluate(&self, trace: &Trace, ctx: TraceContext) -> Evaluation {
        let prepared = PreparedTrace::new(trace, &self.symbols);
        let mut out = Evaluation::default();
        let candidates = self.candidates(&prepared);
        let vm_options = EvalOptions {
            instruction_budget: self.options.instruction_budget,
        };
        for i in candidates {
            let Some(rule) = self.rules.get(i as usize) else {
                continue;
            };
            out.rules_run += 1;
            match vm::evaluate(&rule.program, &prepared, &vm_options) {
                Ok(outcome) if outcome.violated => {
                    out.violations
                        .push(self.violation(rule, trace, &outcome, ctx));
                }
                Ok(_) => {}
                Err(error) => out.errors.push(RuleEvalError {
                    rule_id: rule.rule.id.clone(),
                    trace_id: trace.trace_id().to_hex(),
                    error,
                }),
            }
        }
        out
    }

    /// Evaluates many traces in parallel (rayon); results in input order.
    pub fn evaluate_many(&self, traces: &[Trace], ctx: TraceContext) -> Vec<Evaluation> {
        traces.par_iter().map(|t| self.evaluate(t, ctx)).collect()
    }

    /// Groups `spans` into traces by trace id ([`group_by_trace`]) and evaluates each one
    /// ([`RuleSet::evaluate_many`]); what the bindings' `evaluate` does with a batch of spans
    /// (BINDINGS.md). Out: the violations and errors of every trace in one [`Evaluation`],
    /// traces in the order their first span appears, rules in rule order within a trace.
    pub fn evaluate_spans(&self, spans: Vec<Span>, ctx: TraceContext) -> Evaluation {
        let traces = group_by_trace(spans);
        let mut out = Evaluation::default();
        for e in self.evaluate_many(&traces, ctx) {
            out.violations.extend(e.violations);
            out.errors.extend(e.errors);
            out.rules_run += e.rules_run;
        }
        out
    }

    /// Rule indices to run on `trace`, in rule order.
    fn candidates(&self, trace: &PreparedTrace<'_>) -> Vec<u32> {
        if !self.options.use_index {
            return (0..self.rules.len() as u32)
                .filter(|&i| self.rules[i as usize].rule.enabled)
                .collect();
        }
        let mut out = self.index.unindexed.clone();
        // Each name present in the trace once: at its first span.
        for &i in trace.all() {
            if let Some(name) = trace.name_id(i)
                && trace.spans_named(name).first() == Some(&i)
                && let Some(rules) = self.index.by_name.get(name.0 as usize)
            {
                out.extend_from_slice(rules);
            }
        }
        if !self.index.by_service.is_empty() {
            let mut last: Option<*const crate::span::Resource> = None;
            for span in trace.trace().spans() {
                let ptr = std::sync::Arc::as_ptr(&span.resource);
                if last == Some(ptr) {
                    continue;
                }
                last = Some(ptr);
                if let Some(rules) = self.index.by_service.get(span.service()) {
                    out.extend_from_slice(rules);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn violation(
        &self,
        rule: &CompiledRule,
        trace: &Trace,
        outcome: &Outcome,
        ctx: TraceContext,
    ) -> Violation {
        let max = self.options.max_span_refs;
        let refs = |list: &[SpanIndex]| -> Vec<SpanRef> {
            list.iter()
                .take(max)
                .map(|&i| SpanRef::from_span(trace.span(i)))
                .collect()
        };
        let truncated = outcome.trigger_spans.len() > max || outcome.offending_spans.len() > max;
        let failed_clause = outcome.failed_clause.unwrap_or(FailedClause::Expression);
        let mut v = Violation::new(
            ViolationParts {
                rule_id: &rule.rule.id,
                rule_name: &rule.rule.name,
                expression: &rule.rule.expression,
                severity: rule.rule.severity,
                clauses: ClauseTexts {
                    when: rule.when.as_deref(),
                    always: rule.always.as_deref(),
                    never: rule.never.as_deref(),
                },
                trace_id: trace.trace_id(),
                failed_clause,
                trigger_spans: refs(&outcome.trigger_spans),
                offending_spans: refs(&outcome.offending_spans),
                truncated,
                completion_reason: ctx.completion_reason,
                partial: ctx.partial,
            },
            ctx.now_unix_nanos,
        );
        if let Some(key) = &self.options.signing_key {
            crate::sign::sign_in_place(&mut v, key);
        }
        v
    }
}

/// The outcome of one expression against one trace, with span ids (lowercase hex) in
/// (start, span id) order, cut at `max_span_refs` — the shape of `betrace test --format json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestOutcome {
    pub violated: bool,
    pub failed_clause: Option<FailedClause>,
    pub trigger_spans: Vec<String>,
    pub offending_spans: Vec<String>,
}

/// An expression that does not compile, or fails to evaluate.
#[derive(Clone, Debug)]
pub enum TestError {
    Compile(Vec<Diagnostic>),
    Eval(EvalError),
}

/// Compiles `expression` and evaluates it against `trace` (DSL.md §3.1).
pub fn test_expression(
    expression: &str,
    trace: &Trace,
    options: &EngineOptions,
) -> Result<TestOutcome, TestError> {
    let mut symbols = Symbols::new();
    let ir = betrace_dsl::check_source(expression, &mut symbols).map_err(TestError::Compile)?;
    let program = betrace_dsl::lower::lower(ir);
    let prepared = PreparedTrace::new(trace, &symbols);
    let outcome = vm::evaluate(
        &program,
        &prepared,
        &EvalOptions {
            instruction_budget: options.instruction_budget,
        },
    )
    .map_err(TestError::Eval)?;
    let ids = |list: &[SpanIndex]| -> Vec<String> {
        list.iter()
            .take(options.max_span_refs)
            .map(|&i| trace.span(i).span_id.to_hex())
            .collect()
    };
    Ok(TestOutcome {
        violated: outcome.violated,
        failed_clause: outcome.failed_clause,
        trigger_spans: ids(&outcome.trigger_spans),
        offending_spans: ids(&outcome.offending_spans),
    })
}

/// The body texts of a block rule's clauses (for violation messages).
fn clause_texts(source: &str) -> (Option<String>, Option<String>, Option<String>) {
    use betrace_dsl::ast::{ClauseKind, RuleAst};
    let (Some(RuleAst::Block(clauses)), _) = betrace_dsl::parser::parse(source) else {
        return (None, None, None);
    };
    let mut out = (None, None, None);
    for c in clauses {
        let text = source
            .get(c.body.range.start..c.body.range.end)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        match c.kind {
            ClauseKind::When => out.0 = text,
            ClauseKind::Always => out.1 = text,
            ClauseKind::Never => out.2 = text,
        }
    }
    out
}
