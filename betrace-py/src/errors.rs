//! Every mapping from a core error to a Python exception (BINDINGS.md, Python).
//!
//! In: compile diagnostics, span errors, evaluation errors and rules-file errors of
//! `betrace-core` / `betrace-dsl`. Out: instances of the exception classes of
//! `betrace/_errors.py` — `RuleError(ValueError)` with `.diagnostics`, `SpanError(ValueError)`
//! with `.index` and `.field`, `EvaluationError(RuntimeError)` with `.rule_id` and
//! `.trace_id` — or of the built-in `OSError` family for files that cannot be read.

use betrace_core::SpanError as CoreSpanError;
use betrace_core::engine::{RuleDiagnostics, RuleEvalError};
use betrace_core::rules::RulesFileError;
use betrace_dsl::Diagnostic as CoreDiagnostic;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError};
use pyo3::prelude::*;

use crate::classes::Diagnostic;

mod py {
    pyo3::import_exception!(betrace._errors, RuleError);
    pyo3::import_exception!(betrace._errors, SpanError);
    pyo3::import_exception!(betrace._errors, EvaluationError);
}

/// `RuleError(report, diagnostics)`; `report` is the rendered text (source line and caret).
fn rule_error(py: Python<'_>, report: String, diagnostics: Vec<Diagnostic>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let diagnostics = diagnostics
            .into_iter()
            .map(|d| Py::new(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        let instance = py
            .get_type::<py::RuleError>()
            .call1((report, diagnostics))?;
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|e| e)
}

/// One expression that does not compile; `origin` names it in the report (`<expression>`,
/// ``rule `slow` ``).
pub fn expression_error(
    py: Python<'_>,
    origin: &str,
    rule_id: Option<&str>,
    source: &str,
    diagnostics: &[CoreDiagnostic],
) -> PyErr {
    let report = betrace_dsl::render(diagnostics, origin, source);
    let diagnostics = diagnostics
        .iter()
        .map(|d| Diagnostic::new(d, source, rule_id))
        .collect();
    rule_error(py, report, diagnostics)
}

/// Rules of a rule set that do not compile: every diagnostic of every rule, each report
/// naming its rule.
pub fn rule_set_error(py: Python<'_>, failures: &[RuleDiagnostics]) -> PyErr {
    let report = failures.iter().map(RuleDiagnostics::render).collect();
    let diagnostics = failures
        .iter()
        .flat_map(|f| {
            f.diagnostics
                .iter()
                .map(|d| Diagnostic::new(d, &f.expression, Some(&f.rule_id)))
        })
        .collect();
    rule_error(py, report, diagnostics)
}

/// A rule that is not a rule at all (an id that is not a slug, an unknown severity): a
/// `RuleError` without diagnostics.
pub fn invalid_rule(py: Python<'_>, message: String) -> PyErr {
    rule_error(py, message, Vec::new())
}

/// A rules file that cannot be read (`OSError`: `FileNotFoundError`, `PermissionError`) or
/// holds invalid rules (`RuleError` without diagnostics; expressions are compiled later).
pub fn rules_file_error(py: Python<'_>, error: &RulesFileError) -> PyErr {
    let message = error.to_string();
    match error {
        RulesFileError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
            _ => PyOSError::new_err(message),
        },
        _ => invalid_rule(py, message),
    }
}

/// `SpanError(message, index, field, errors)` of the first of `errors` (the message is the
/// core error's text, ``span 2: field `kind`: …``), `errors` holding one `SpanError` per bad
/// span in input order, the first included.
pub fn span_errors(py: Python<'_>, errors: &[CoreSpanError]) -> PyErr {
    let one = |e: &CoreSpanError| {
        py.get_type::<py::SpanError>()
            .call1((e.to_string(), e.index, e.field.as_str()))
    };
    let build = || -> PyResult<PyErr> {
        let Some(first) = errors.first() else {
            return Ok(PyValueError::new_err("no span error"));
        };
        let all = errors.iter().map(one).collect::<PyResult<Vec<_>>>()?;
        let instance = py.get_type::<py::SpanError>().call1((
            first.to_string(),
            first.index,
            first.field.as_str(),
            all,
        ))?;
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|e| e)
}

/// `EvaluationError(message, rule_id, trace_id)`: a rule whose evaluation failed on a trace
/// (the instruction budget of DSL.md §3.7 ran out); never reported as "no violation".
pub fn evaluation_error(py: Python<'_>, error: &RuleEvalError) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let message = format!(
            "rule `{}` on trace {}: {}",
            error.rule_id, error.trace_id, error.error
        );
        let instance = py.get_type::<py::EvaluationError>().call1((
            message,
            error.rule_id.as_str(),
            error.trace_id.as_str(),
        ))?;
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|e| e)
}
