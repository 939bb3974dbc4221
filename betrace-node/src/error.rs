//! Errors thrown to JavaScript (BINDINGS.md, Node), mapped in one place.
//!
//! In: `Failure`, what went wrong as plain Rust data (`Send`, so an `evaluateAsync` task can
//! carry it back to the JavaScript thread). Out: an `Error` object whose `message` is the
//! rendered report and which carries a stable `code` and the details as properties:
//!
//! | `code` | properties |
//! |---|---|
//! | `BETRACE_INVALID_RULE` | `diagnostics` (`Diagnostic[]`, with `ruleId` for engine rules and `labels` for secondary ranges), `ruleProblems` (`{index, ruleId, field, message}[]`: rule objects with a missing, unknown or mistyped field, or an id used twice) |
//! | `BETRACE_INVALID_SPAN` | `spanIndex`, `field` (of the first problem), `spanErrors` (`{index, requestSpanIndex, field, message}[]`, every malformed span) |
//! | `BETRACE_EVALUATION_FAILED` | `evaluationErrors` (`{ruleId, traceId, message}[]`), `violations` (those found by the other rules) |
//! | `BETRACE_INVALID_OPTION` | — |

use betrace_core::engine::RuleEvalError;
use betrace_core::rules::RuleProblem;
use betrace_dsl::DiagnosticJson;
use napi::bindgen_prelude::{JsObjectValue, Object, ToNapiValue};
use napi::{Env, JsValue, Status};
use napi_derive::napi;

use crate::output;
use crate::spans::SpanProblem;

/// What went wrong in a call, before it becomes a JavaScript `Error`.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The rules argument is not an array of rule objects.
    RuleInput(String),
    /// Rule objects with field problems (missing `expression`, unknown key, duplicate id …).
    RuleFields(Vec<RuleProblem>),
    /// Rules that do not compile: their diagnostics and the rendered report.
    RuleText {
        diagnostics: Vec<DiagnosticJson>,
        report: String,
    },
    /// Malformed spans, or span input that cannot be read.
    Spans(Vec<SpanProblem>),
    /// Rules whose evaluation failed on a trace (e.g. the instruction budget ran out).
    Evaluation {
        errors: Vec<RuleEvalError>,
        violations: Vec<betrace_core::Violation>,
    },
    /// A bad engine option.
    Option(String),
    /// A failure of Node-API itself, such as an exception thrown by a getter.
    Napi(napi::Error),
}

impl From<napi::Error> for Failure {
    fn from(e: napi::Error) -> Failure {
        Failure::Napi(e)
    }
}

/// One rule object with a field problem (property `ruleProblems` of a `BETRACE_INVALID_RULE`
/// error).
#[napi(object, js_name = "RuleProblem", use_nullable = true)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsRuleProblem {
    /// Position of the rule in the array given to `new Engine`.
    pub index: u32,
    /// The rule's id, when known.
    pub rule_id: Option<String>,
    /// The field the problem is about, `null` for the rule as a whole.
    pub field: Option<String>,
    pub message: String,
}

/// One malformed span (property `spanErrors` of a `BETRACE_INVALID_SPAN` error).
#[napi(object, js_name = "SpanProblem", use_nullable = true)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsSpanProblem {
    /// Position in the input: the array element, or the span of an OTLP request given alone;
    /// `null` when the input as a whole cannot be read.
    pub index: Option<u32>,
    /// For an OTLP request inside an array: the span's position within that request.
    pub request_span_index: Option<u32>,
    /// The offending field as written in the input, `""` when not one field.
    pub field: String,
    pub message: String,
}

/// A rule that failed to evaluate on a trace (property `evaluationErrors` of a
/// `BETRACE_EVALUATION_FAILED` error).
#[napi(object, js_name = "EvaluationError")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsEvaluationError {
    pub rule_id: String,
    pub trace_id: String,
    pub message: String,
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl Failure {
    /// The error code, message and detail properties.
    fn code(&self) -> &'static str {
        match self {
            Failure::RuleInput(_) | Failure::RuleFields(_) | Failure::RuleText { .. } => {
                "BETRACE_INVALID_RULE"
            }
            Failure::Spans(_) => "BETRACE_INVALID_SPAN",
            Failure::Evaluation { .. } => "BETRACE_EVALUATION_FAILED",
            Failure::Option(_) => "BETRACE_INVALID_OPTION",
            Failure::Napi(_) => "",
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::RuleFields(problems) => {
                let lines: Vec<String> = problems.iter().map(|p| format!("{p}")).collect();
                format!("invalid rules:\n{}", lines.join("\n"))
            }
            Failure::RuleText { report, .. } => report.trim_end().to_owned(),
            Failure::Spans(problems) => match problems.as_slice() {
                [one] => format!("invalid span input: {one}"),
                many => {
                    let lines: Vec<String> = many.iter().map(|p| format!("  {p}")).collect();
                    format!("{} invalid spans:\n{}", many.len(), lines.join("\n"))
                }
            },
            Failure::Evaluation { errors, .. } => {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        format!(
                            "  rule `{}` on trace {}: {}",
                            e.rule_id, e.trace_id, e.error
                        )
                    })
                    .collect();
                format!("evaluation failed:\n{}", lines.join("\n"))
            }
            Failure::RuleInput(message) | Failure::Option(message) => message.clone(),
            Failure::Napi(e) => e.reason.clone(),
        }
    }

    /// The JavaScript error to throw or reject with.
    pub(crate) fn into_js(self, env: &Env) -> napi::Error {
        if let Failure::Napi(e) = self {
            return e;
        }
        match self.build(env) {
            Ok(error) => napi::Error::from(error.to_unknown()),
            Err(e) => e,
        }
    }

    fn build<'e>(self, env: &'e Env) -> napi::Result<Object<'e>> {
        let mut error =
            env.create_error(napi::Error::new(Status::GenericFailure, self.message()))?;
        error.set_named_property("code", self.code())?;
        match self {
            Failure::RuleInput(_) => {
                error.set_named_property("diagnostics", output::diagnostics(env, &[])?)?;
                error.set_named_property("ruleProblems", Vec::<JsRuleProblem>::new())?;
            }
            Failure::RuleFields(problems) => {
                let problems: Vec<JsRuleProblem> = problems
                    .into_iter()
                    .map(|p| JsRuleProblem {
                        index: index(p.index),
                        rule_id: p.id,
                        field: p.field,
                        message: p.message,
                    })
                    .collect();
                error.set_named_property("diagnostics", output::diagnostics(env, &[])?)?;
                error.set_named_property("ruleProblems", problems)?;
            }
            Failure::RuleText { diagnostics, .. } => {
                error.set_named_property("diagnostics", output::diagnostics(env, &diagnostics)?)?;
                error.set_named_property("ruleProblems", Vec::<JsRuleProblem>::new())?;
            }
            Failure::Spans(problems) => {
                let first = problems.first();
                set_nullable(
                    &mut error,
                    "spanIndex",
                    first.and_then(|p| p.index).map(index),
                )?;
                error.set_named_property(
                    "field",
                    first.map(|p| p.field.clone()).unwrap_or_default(),
                )?;
                let problems: Vec<JsSpanProblem> = problems
                    .into_iter()
                    .map(|p| JsSpanProblem {
                        index: p.index.map(index),
                        request_span_index: p.request_span.map(index),
                        field: p.field,
                        message: p.message,
                    })
                    .collect();
                error.set_named_property("spanErrors", problems)?;
            }
            Failure::Evaluation { errors, violations } => {
                let errors: Vec<JsEvaluationError> = errors
                    .into_iter()
                    .map(|e| JsEvaluationError {
                        message: e.error.to_string(),
                        rule_id: e.rule_id,
                        trace_id: e.trace_id,
                    })
                    .collect();
                error.set_named_property("evaluationErrors", errors)?;
                error.set_named_property("violations", output::violations(env, &violations)?)?;
            }
            Failure::Option(_) | Failure::Napi(_) => {}
        }
        Ok(error)
    }
}

fn set_nullable<T: ToNapiValue>(
    object: &mut Object<'_>,
    name: &str,
    value: Option<T>,
) -> napi::Result<()> {
    match value {
        Some(v) => object.set_named_property(name, v),
        None => object.set_named_property(name, napi::bindgen_prelude::Null),
    }
}
