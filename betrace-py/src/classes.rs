//! The classes and functions of the `betrace` module (BINDINGS.md, Python).
//!
//! In: Python arguments (rule texts, options, span input). Out: `Rule`, `Engine`, `Violation`,
//! `SpanRef` and `Diagnostic` objects wrapping the core values, and the module functions
//! `check`, `validate` and `format`. Compiling is `betrace-dsl`'s, evaluation
//! [`RuleSet::evaluate_spans`], span conversion [`crate::spans`]; evaluation runs with the
//! interpreter lock released, so an `Engine` serves several Python threads at once.

use std::path::PathBuf;
use std::sync::Arc;

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::rules::{self, load_rules_file};
use betrace_core::violation::{Severity, SpanRef as CoreSpanRef, Violation as CoreViolation};
use betrace_dsl::DiagnosticJson;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors;
use crate::json;
use crate::spans;

/// One compile error of a rule (DSL.md §4): a [`DiagnosticJson`], the shape of the server.
#[pyclass(frozen, module = "betrace", eq)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    inner: DiagnosticJson,
}

impl Diagnostic {
    /// The diagnostic with lines and columns computed against `source`, attributed to
    /// `rule_id` when it came from a rule with an id.
    pub fn new(d: &betrace_dsl::Diagnostic, source: &str, rule_id: Option<&str>) -> Diagnostic {
        let mut inner = d.to_json(source);
        inner.rule_id = rule_id.map(str::to_owned);
        Diagnostic { inner }
    }
}

#[pymethods]
impl Diagnostic {
    /// Stable code, e.g. `E302`.
    #[getter]
    fn code(&self) -> &str {
        &self.inner.code
    }

    /// Lower case, user text in backticks.
    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }

    /// 1-based line of the start.
    #[getter]
    fn line(&self) -> usize {
        self.inner.line
    }

    /// 1-based column of the start, in characters.
    #[getter]
    fn column(&self) -> usize {
        self.inner.column
    }

    /// Byte offset of the start in the rule text (UTF-8).
    #[getter]
    fn start(&self) -> usize {
        self.inner.start
    }

    /// Byte offset of the end (exclusive).
    #[getter]
    fn end(&self) -> usize {
        self.inner.end
    }

    #[getter]
    fn help(&self) -> Option<&str> {
        self.inner.help.as_deref()
    }

    /// The rule the diagnostic belongs to, when it came from a rule with an id.
    #[getter]
    fn rule_id(&self) -> Option<&str> {
        self.inner.rule_id.as_deref()
    }

    /// The secondary ranges (context such as "first written here") as dicts
    /// `{message, line, column, start, end}`.
    #[getter]
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner.labels)
    }

    /// The JSON shape of the server: `code, message, line, column, start, end, help`, plus
    /// `ruleId` and `labels` when set.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let d = &self.inner;
        format!(
            "Diagnostic(code={}, message={}, line={}, column={}, start={}, end={}, help={})",
            repr(py, &d.code),
            repr(py, &d.message),
            d.line,
            d.column,
            d.start,
            d.end,
            repr_opt(py, d.help.as_deref()),
        )
    }

    fn __str__(&self) -> String {
        let d = &self.inner;
        format!("{}:{}: error[{}]: {}", d.line, d.column, d.code, d.message)
    }
}

/// A span named by a violation.
#[pyclass(frozen, module = "betrace", eq, hash)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpanRef {
    inner: CoreSpanRef,
}

#[pymethods]
impl SpanRef {
    /// Lowercase hex, 32 characters.
    #[getter]
    fn trace_id(&self) -> String {
        self.inner.trace_id.to_hex()
    }

    /// Lowercase hex, 16 characters.
    #[getter]
    fn span_id(&self) -> String {
        self.inner.span_id.to_hex()
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// `service.name` of the span's resource, `""` when absent.
    #[getter]
    fn service(&self) -> &str {
        &self.inner.service
    }

    /// `{"traceId", "spanId", "name", "service"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "SpanRef(name={}, service={}, span_id={}, trace_id={})",
            repr(py, &self.inner.name),
            repr(py, &self.inner.service),
            repr(py, &self.inner.span_id.to_hex()),
            repr(py, &self.inner.trace_id.to_hex()),
        )
    }
}

/// Python's `repr` of a string (`'checkout'`).
fn repr(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("{s:?}"))
}

fn repr_opt(py: Python<'_>, s: Option<&str>) -> String {
    s.map_or_else(|| "None".to_owned(), |s| repr(py, s))
}

fn span_refs(list: &[CoreSpanRef]) -> Vec<SpanRef> {
    list.iter().map(|r| SpanRef { inner: r.clone() }).collect()
}

/// One violation of one rule by one trace (ENGINE.md §6).
#[pyclass(frozen, module = "betrace", eq)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    inner: CoreViolation,
}

#[pymethods]
impl Violation {
    /// UUIDv7 of the violation.
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    #[getter]
    fn rule_id(&self) -> &str {
        &self.inner.rule_id
    }

    #[getter]
    fn rule_name(&self) -> &str {
        &self.inner.rule_name
    }

    /// First 16 hex digits of SHA-256 of the rule's expression.
    #[getter]
    fn rule_version(&self) -> &str {
        &self.inner.rule_version
    }

    /// `CRITICAL`, `HIGH`, `MEDIUM` or `LOW`.
    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.severity.as_str()
    }

    #[getter]
    fn message(&self) -> &str {
        &self.inner.message
    }

    /// Lowercase hex, 32 characters.
    #[getter]
    fn trace_id(&self) -> String {
        self.inner.trace_id.to_hex()
    }

    /// The first trigger span, else the first offending span, else `""`.
    #[getter]
    fn span_id(&self) -> String {
        self.inner.span_id.map(|s| s.to_hex()).unwrap_or_default()
    }

    /// `always`, `never` or `expression`.
    #[getter]
    fn failed_clause(&self) -> &'static str {
        self.inner.failed_clause.as_str()
    }

    /// Spans that made `when` true, or that matched an expression-form rule.
    #[getter]
    fn trigger_spans(&self) -> Vec<SpanRef> {
        span_refs(&self.inner.trigger_spans)
    }

    /// Spans matched by `never`.
    #[getter]
    fn offending_spans(&self) -> Vec<SpanRef> {
        span_refs(&self.inner.offending_spans)
    }

    /// True when a span list was cut at `max_span_refs`.
    #[getter]
    fn truncated(&self) -> bool {
        self.inner.truncated
    }

    /// `direct` for spans evaluated by `Engine.evaluate`.
    #[getter]
    fn completion_reason(&self) -> &'static str {
        self.inner.completion_reason.as_str()
    }

    #[getter]
    fn partial(&self) -> bool {
        self.inner.partial
    }

    /// RFC 3339, UTC, milliseconds.
    #[getter]
    fn created_at(&self) -> String {
        self.inner.created_at.to_string()
    }

    /// Which evaluation of the trace produced the record: 1, or n ≥ 2 after late spans
    /// (ENGINE.md §5).
    #[getter]
    fn evaluation(&self) -> u32 {
        self.inner.evaluation
    }

    /// The id of the earlier violation this record replaces, else `None`.
    #[getter]
    fn supersedes(&self) -> Option<&str> {
        self.inner.supersedes.as_deref()
    }

    /// True for a retraction of the violation `supersedes`.
    #[getter]
    fn retraction(&self) -> bool {
        self.inner.retraction
    }

    /// `v1:<hex>` (HMAC-SHA256, ENGINE.md §7) when the engine has a signing key, else `None`.
    #[getter]
    fn signature(&self) -> Option<&str> {
        self.inner.signature.as_deref()
    }

    /// The server's JSON shape (camelCase keys, ENGINE.md §6; `evaluation`, `supersedes`
    /// and `retraction` only on records of a re-evaluation).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner)
    }

    /// Rule, severity, failed clause, trace and the names of the spans.
    fn __repr__(&self, py: Python<'_>) -> String {
        let names = |list: &[CoreSpanRef]| {
            list.iter()
                .map(|r| repr(py, &r.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "Violation(rule_id={}, severity={}, failed_clause={}, trace_id={}, trigger_spans=[{}], offending_spans=[{}])",
            repr(py, &self.inner.rule_id),
            repr(py, self.inner.severity.as_str()),
            repr(py, self.inner.failed_clause.as_str()),
            repr(py, &self.inner.trace_id.to_hex()),
            names(&self.inner.trigger_spans),
            names(&self.inner.offending_spans),
        )
    }

    fn __str__(&self) -> String {
        self.inner.message.clone()
    }
}

/// A rule (ENGINE.md §3); constructing one compiles its expression.
#[pyclass(frozen, module = "betrace", eq)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    inner: rules::Rule,
}

#[pymethods]
impl Rule {
    /// `Rule(id, expression, *, severity="MEDIUM", name=None, description="", tags=(),
    /// enabled=True)`. Errors: `RuleError` when the expression does not compile (with its
    /// diagnostics), the id is not a slug or the severity is unknown.
    #[new]
    #[expect(
        clippy::too_many_arguments,
        reason = "the keyword arguments of the Python constructor"
    )]
    #[pyo3(signature = (id, expression, *, severity = "MEDIUM", name = None, description = "", tags = Vec::new(), enabled = true))]
    fn py_new(
        py: Python<'_>,
        id: String,
        expression: String,
        severity: &str,
        name: Option<String>,
        description: &str,
        tags: Vec<String>,
        enabled: bool,
    ) -> PyResult<Rule> {
        if !rules::is_slug(&id) {
            return Err(errors::invalid_rule(
                py,
                format!("rule id `{id}` is not a slug (1 to 128 characters of A-Z a-z 0-9 . _ -)"),
            ));
        }
        let severity: Severity =
            severity
                .parse()
                .map_err(|e: betrace_core::violation::ParseSeverityError| {
                    errors::invalid_rule(py, format!("rule `{id}`: {e}"))
                })?;
        let diagnostics = betrace_dsl::validate(&expression);
        if !diagnostics.is_empty() {
            return Err(errors::expression_error(
                py,
                &format!("rule `{id}`"),
                Some(&id),
                &expression,
                &diagnostics,
            ));
        }
        let mut inner = rules::Rule::new(id, expression);
        if let Some(name) = name {
            inner.name = name;
        }
        inner.severity = severity;
        inner.description = description.to_owned();
        inner.tags = tags;
        inner.enabled = enabled;
        Ok(Rule { inner })
    }

    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    #[getter]
    fn expression(&self) -> &str {
        &self.inner.expression
    }

    /// `CRITICAL`, `HIGH`, `MEDIUM` or `LOW`.
    #[getter]
    fn severity(&self) -> &'static str {
        self.inner.severity.as_str()
    }

    #[getter]
    fn description(&self) -> &str {
        &self.inner.description
    }

    #[getter]
    fn tags(&self) -> Vec<String> {
        self.inner.tags.clone()
    }

    #[getter]
    fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// The rules-file shape (`id, name, description, expression, severity, tags, enabled`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Rule(id={}, expression={}, severity={})",
            repr(py, &self.inner.id),
            repr(py, &self.inner.expression),
            repr(py, self.inner.severity.as_str()),
        )
    }
}

/// The default `instruction_budget` (DSL.md §3.7), as in [`EngineOptions::default`].
const DEFAULT_BUDGET: u64 = 10_000_000;

/// Compiled rules, evaluated against batches of spans (ENGINE.md §4).
#[pyclass(frozen, module = "betrace")]
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
}

fn options(
    signing_key: Option<&Bound<'_, PyAny>>,
    max_span_refs: usize,
    instruction_budget: u64,
) -> PyResult<EngineOptions> {
    let signing_key = match signing_key {
        None => None,
        Some(k) if k.is_none() => None,
        Some(k) => {
            if let Ok(b) = k.cast::<PyBytes>() {
                Some(b.as_bytes().to_vec())
            } else if let Ok(s) = k.cast::<PyString>() {
                Some(s.to_cow()?.as_bytes().to_vec())
            } else {
                return Err(PyTypeError::new_err(format!(
                    "signing_key must be bytes or str, found `{}`",
                    json::type_name(k)
                )));
            }
        }
    };
    if max_span_refs == 0 {
        return Err(PyValueError::new_err("max_span_refs must be at least 1"));
    }
    if instruction_budget == 0 {
        return Err(PyValueError::new_err(
            "instruction_budget must be at least 1",
        ));
    }
    Ok(EngineOptions {
        max_span_refs,
        signing_key,
        instruction_budget,
        ..EngineOptions::default()
    })
}

fn compile(py: Python<'_>, rules: Vec<rules::Rule>, options: EngineOptions) -> PyResult<Engine> {
    let set = RuleSet::compile(rules, options).map_err(|f| errors::rule_set_error(py, &f))?;
    Ok(Engine {
        rules: Arc::new(set),
    })
}

/// Evaluates `rules` against span input, the lock released while decoding and evaluating.
fn evaluate(
    py: Python<'_>,
    rules: &Arc<RuleSet>,
    spans: &Bound<'_, PyAny>,
) -> PyResult<Vec<Violation>> {
    let pieces = spans::collect(spans)?;
    let rules = Arc::clone(rules);
    let result = py.detach(move || {
        spans::decode(pieces).map(|spans| rules.evaluate_spans(spans, TraceContext::direct()))
    });
    let evaluation = result.map_err(|e| errors::span_errors(py, &e))?;
    if let Some(e) = evaluation.errors.first() {
        return Err(errors::evaluation_error(py, e));
    }
    Ok(evaluation
        .violations
        .into_iter()
        .map(|inner| Violation { inner })
        .collect())
}

#[pymethods]
impl Engine {
    /// `Engine(rules, *, signing_key=None, max_span_refs=100, instruction_budget=10_000_000)`:
    /// `rules` is an iterable of `Rule` objects and expression strings (a string at position
    /// i gets the id `rule-{i+1}`); `signing_key` (bytes, or str as UTF-8) signs every
    /// violation (ENGINE.md §7); `max_span_refs` cuts span lists (DSL.md §3.6);
    /// `instruction_budget` bounds the VM steps of one rule on one trace (DSL.md §3.7). Errors: `RuleError` with the diagnostics of every rule that does not
    /// compile, and for two rules with one id.
    #[new]
    #[pyo3(signature = (rules, *, signing_key = None, max_span_refs = 100, instruction_budget = DEFAULT_BUDGET))]
    fn py_new(
        py: Python<'_>,
        rules: &Bound<'_, PyAny>,
        signing_key: Option<&Bound<'_, PyAny>>,
        max_span_refs: usize,
        instruction_budget: u64,
    ) -> PyResult<Engine> {
        let options = options(signing_key, max_span_refs, instruction_budget)?;
        if rules.is_instance_of::<PyString>() || rules.is_instance_of::<Rule>() {
            return Err(PyTypeError::new_err(
                "rules must be a list of Rule objects or expression strings (use Engine.from_file for a rules file)",
            ));
        }
        let mut list = Vec::new();
        for (i, item) in rules.try_iter()?.enumerate() {
            let item = item?;
            if let Ok(r) = item.cast::<Rule>() {
                list.push(r.get().inner.clone());
            } else if let Ok(s) = item.cast::<PyString>() {
                list.push(rules::Rule::new(format!("rule-{}", i + 1), s.to_cow()?));
            } else {
                return Err(PyTypeError::new_err(format!(
                    "rules[{i}]: expected a Rule or an expression string, found `{}`",
                    json::type_name(&item)
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &list {
            if !seen.insert(r.id.as_str()) {
                return Err(errors::invalid_rule(
                    py,
                    format!("two rules have the id `{}`; rule ids must be unique", r.id),
                ));
            }
        }
        compile(py, list, options)
    }

    /// `Engine.from_file(path, *, signing_key=None, max_span_refs=100,
    /// instruction_budget=10_000_000)`: the rules of a YAML or JSON rules file (ENGINE.md §3). Errors: `FileNotFoundError` / `OSError` when it cannot be read,
    /// `RuleError` for an invalid file or rules that do not compile.
    #[staticmethod]
    #[pyo3(signature = (path, *, signing_key = None, max_span_refs = 100, instruction_budget = DEFAULT_BUDGET))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        signing_key: Option<&Bound<'_, PyAny>>,
        max_span_refs: usize,
        instruction_budget: u64,
    ) -> PyResult<Engine> {
        let options = options(signing_key, max_span_refs, instruction_budget)?;
        let rules = load_rules_file(&path).map_err(|e| errors::rules_file_error(py, &e))?;
        compile(py, rules, options)
    }

    /// Every violation of the enabled rules by the traces in `spans` (spans grouped by trace
    /// id; traces in order of first appearance, rules in rule order). Errors: `SpanError` for
    /// a malformed span (naming its index), `EvaluationError` when a rule's evaluation fails,
    /// `TypeError` for input that is not spans.
    fn evaluate(&self, py: Python<'_>, spans: &Bound<'_, PyAny>) -> PyResult<Vec<Violation>> {
        evaluate(py, &self.rules, spans)
    }

    /// The rules, in the order given.
    #[getter]
    fn rules(&self) -> Vec<Rule> {
        self.rules
            .rules()
            .map(|r| Rule { inner: r.clone() })
            .collect()
    }

    fn __len__(&self) -> usize {
        self.rules.len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let ids: Vec<String> = self.rules.rules().map(|r| repr(py, &r.id)).collect();
        format!("Engine(rules=[{}])", ids.join(", "))
    }
}

/// `check(expression, spans, *, max_span_refs=100)`: one expression (rule id `check`,
/// severity MEDIUM) against span input; the violations, one per violating trace. Errors as
/// `Rule` and `Engine.evaluate`.
#[pyfunction]
#[pyo3(signature = (expression, spans, *, max_span_refs = 100))]
pub fn check(
    py: Python<'_>,
    expression: &str,
    spans: &Bound<'_, PyAny>,
    max_span_refs: usize,
) -> PyResult<Vec<Violation>> {
    let diagnostics = betrace_dsl::validate(expression);
    if !diagnostics.is_empty() {
        return Err(errors::expression_error(
            py,
            "<expression>",
            None,
            expression,
            &diagnostics,
        ));
    }
    let engine = compile(
        py,
        vec![rules::Rule::new("check", expression)],
        options(None, max_span_refs, DEFAULT_BUDGET)?,
    )?;
    evaluate(py, &engine.rules, spans)
}

/// `validate(text)`: every diagnostic of a rule text, empty when it compiles; never raises
/// for a bad rule.
#[pyfunction]
pub fn validate(text: &str) -> Vec<Diagnostic> {
    betrace_dsl::validate(text)
        .iter()
        .map(|d| Diagnostic::new(d, text, None))
        .collect()
}

/// `format(text)`: the canonical text of a rule (DSL.md §5); a rule with comments comes back
/// unchanged. Errors: `RuleError` when it does not compile.
#[pyfunction]
pub fn format(py: Python<'_>, text: &str) -> PyResult<String> {
    betrace_dsl::format(text)
        .map_err(|d| errors::expression_error(py, "<expression>", None, text, &d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_budget_is_the_engine_default() {
        assert_eq!(DEFAULT_BUDGET, EngineOptions::default().instruction_budget);
    }
}
