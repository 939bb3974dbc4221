//! What the binding returns to JavaScript (BINDINGS.md, Node).
//!
//! In: `betrace-core` [`betrace_core::Violation`]s, compiled [`betrace_core::rules::Rule`]s and
//! `betrace-dsl` diagnostics. Out: plain JavaScript objects with camelCase keys — the JSON
//! shape of the server (ENGINE.md §6 for violations, DSL.md §4 for diagnostics) — whose
//! TypeScript interfaces are generated from these definitions.

use napi_derive::napi;

/// A reference to one span named by a violation.
#[napi(object, js_name = "SpanRef")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsSpanRef {
    /// Lowercase hex, 32 characters.
    pub trace_id: String,
    /// Lowercase hex, 16 characters.
    pub span_id: String,
    /// Span name.
    pub name: String,
    /// `service.name` of the span's resource, `""` when absent.
    pub service: String,
}

impl From<betrace_core::SpanRef> for JsSpanRef {
    fn from(r: betrace_core::SpanRef) -> JsSpanRef {
        JsSpanRef {
            trace_id: r.trace_id,
            span_id: r.span_id,
            name: r.name,
            service: r.service,
        }
    }
}

/// One violation of one rule by one trace (ENGINE.md §6).
#[napi(object, js_name = "Violation", use_nullable = true)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsViolation {
    /// UUIDv7, hyphenated lower case.
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    /// First 16 hex digits of SHA-256 of the rule's expression text.
    pub rule_version: String,
    #[napi(ts_type = "Severity")]
    pub severity: String,
    /// Human-readable, self-contained description.
    pub message: String,
    /// Lowercase hex, 32 characters.
    pub trace_id: String,
    /// The first trigger span, else the first offending span, else `""`.
    pub span_id: String,
    /// The clause that made the rule fail.
    #[napi(ts_type = "'always' | 'never' | 'expression'")]
    pub failed_clause: String,
    /// `direct` for spans given to `evaluate`/`check`.
    pub completion_reason: String,
    /// True when the trace was an incomplete fragment.
    pub partial: bool,
    /// Spans that made `when` true, or that matched an expression-form rule; ordered by
    /// (start time, span id), at most `maxSpanRefs`.
    pub trigger_spans: Vec<JsSpanRef>,
    /// Spans matched by `never`, ordered and cut like `triggerSpans`.
    pub offending_spans: Vec<JsSpanRef>,
    /// True when either span list was cut at `maxSpanRefs`.
    pub truncated: bool,
    /// RFC 3339, UTC, millisecond precision (`2024-05-01T12:00:00.123Z`).
    pub created_at: String,
    /// `v1:<hex>` HMAC-SHA256 (ENGINE.md §7) when the engine has a signing key, else `null`.
    pub signature: Option<String>,
}

impl From<betrace_core::Violation> for JsViolation {
    fn from(v: betrace_core::Violation) -> JsViolation {
        JsViolation {
            id: v.id,
            rule_id: v.rule_id,
            rule_name: v.rule_name,
            rule_version: v.rule_version,
            severity: v.severity.as_str().to_owned(),
            message: v.message,
            trace_id: v.trace_id,
            span_id: v.span_id,
            failed_clause: v.failed_clause.as_str().to_owned(),
            completion_reason: v.completion_reason.as_str().to_owned(),
            partial: v.partial,
            trigger_spans: v.trigger_spans.into_iter().map(JsSpanRef::from).collect(),
            offending_spans: v.offending_spans.into_iter().map(JsSpanRef::from).collect(),
            truncated: v.truncated,
            created_at: v.created_at,
            signature: v.signature,
        }
    }
}

/// One compile error of a rule (DSL.md §4).
#[napi(object, js_name = "Diagnostic", use_nullable = true)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsDiagnostic {
    /// Stable code, e.g. `E301`.
    pub code: String,
    /// Lower case, user text in backticks.
    pub message: String,
    /// 1-based line of the start of the problem.
    pub line: u32,
    /// 1-based column, counted in Unicode code points.
    pub column: u32,
    /// Start of the problem, a byte offset into the UTF-8 rule text.
    pub start: u32,
    /// End (exclusive), a byte offset into the UTF-8 rule text.
    pub end: u32,
    /// How to fix it, when known.
    pub help: Option<String>,
    /// The rule the diagnostic belongs to (errors of `new Engine`), else `null`.
    pub rule_id: Option<String>,
}

impl JsDiagnostic {
    /// The JSON shape of `d`, positions computed against `source`.
    pub(crate) fn new(
        d: &betrace_dsl::Diagnostic,
        source: &str,
        rule_id: Option<&str>,
    ) -> JsDiagnostic {
        let j = d.to_json(source);
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        JsDiagnostic {
            code: j.code,
            message: j.message,
            line: n(j.line),
            column: n(j.column),
            start: n(j.start),
            end: n(j.end),
            help: j.help,
            rule_id: rule_id.map(str::to_owned),
        }
    }
}

/// A rule of an engine, every default applied (ENGINE.md §3).
#[napi(object, js_name = "Rule")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsRule {
    pub id: String,
    /// The id when not given.
    pub name: String,
    pub description: String,
    /// Rule text in the BeTrace DSL.
    pub expression: String,
    #[napi(ts_type = "Severity")]
    pub severity: String,
    pub tags: Vec<String>,
    pub enabled: bool,
}

impl From<&betrace_core::rules::Rule> for JsRule {
    fn from(r: &betrace_core::rules::Rule) -> JsRule {
        JsRule {
            id: r.id.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            expression: r.expression.clone(),
            severity: r.severity.as_str().to_owned(),
            tags: r.tags.clone(),
            enabled: r.enabled,
        }
    }
}
