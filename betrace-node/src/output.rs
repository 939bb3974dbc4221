//! What the binding returns to JavaScript (BINDINGS.md, Node).
//!
//! In: `betrace-core` [`Violation`]s, compiled [`betrace_core::rules::Rule`]s and
//! `betrace-dsl` diagnostics. Out: plain JavaScript objects with camelCase keys — the JSON
//! shape of the server. Violations (`violations`) and diagnostics (`diagnostics`) are
//! the serde shapes of `betrace_core::json` (ENGINE.md §6) and [`DiagnosticJson`] (DSL.md
//! §4) written straight into JavaScript values, so `evaluation`, `supersedes`, `retraction`,
//! `ruleId` and `labels` appear exactly when the server would write them; their TypeScript
//! interfaces are in `types-header.d.ts`. The rule objects' interface is generated from
//! [`JsRule`].

use betrace_core::Violation;
use betrace_dsl::DiagnosticJson;
use napi::{Env, Unknown};
use napi_derive::napi;

/// `Violation[]`: the violations as the server writes them.
pub(crate) fn violations<'e>(env: &Env, list: &[Violation]) -> napi::Result<Unknown<'e>> {
    env.to_js_value(&list)
}

/// `Diagnostic[]`.
pub(crate) fn diagnostics<'e>(env: &Env, list: &[DiagnosticJson]) -> napi::Result<Unknown<'e>> {
    env.to_js_value(&list)
}

/// The JSON shape of `d`, positions computed against `source`, attributed to `rule_id` when
/// it is a rule of an engine.
pub(crate) fn diagnostic(
    d: &betrace_dsl::Diagnostic,
    source: &str,
    rule_id: Option<&str>,
) -> DiagnosticJson {
    let mut j = d.to_json(source);
    j.rule_id = rule_id.map(str::to_owned);
    j
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
