//! Node.js bindings of the BeTrace engine (BINDINGS.md, Node): the npm package `betrace`.
//!
//! In: rule objects and rule text, spans as OpenTelemetry JS `ReadableSpan` objects,
//! simple-JSON objects, OTLP/JSON objects or `Buffer`s of OTLP protobuf ([`spans`]). Out:
//! violation and diagnostic objects ([`output`]) and `Error`s with a stable `code`
//! ([`error`]). Compiling, decoding and evaluating are `betrace-core`'s and `betrace-dsl`'s;
//! this crate converts values and maps errors.
//!
//! `unsafe_code` is `deny` here rather than the workspace's `forbid`: the registration code that
//! `#[napi]` generates allows it locally. This crate's own code has no `unsafe`.
#![deny(unsafe_code)]

mod batch;
pub mod error;
mod js;
pub mod output;
pub mod spans;

use std::sync::Arc;

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::rules::{Rule, RuleProblem, rules_from_json_values};
use betrace_core::{Violation, group_by_trace};
use napi::bindgen_prelude::{AsyncTask, Either, JsObjectValue, Uint8Array};
use napi::{Env, ScopedTask, Unknown};
use napi_derive::napi;

use crate::error::Failure;
use crate::js::{Js, ReadError, to_json};
use crate::output::JsRule;
use crate::spans::SpanInput;

/// mimalloc serves the allocations of this module: converting a batch allocates and frees a
/// string per attribute key and value, and with mimalloc `bench/bench.mjs` measures the
/// fastest `evaluate` of 10 000 SDK spans about 8% below glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The rule id of the violations [`check`] returns.
pub const CHECK_RULE_ID: &str = "check";

/// Settings of an `Engine` (DSL.md §3.6, ENGINE.md §7).
#[napi(object, js_name = "EngineOptions")]
pub struct JsEngineOptions {
    /// Signs every violation with HMAC-SHA256 under this key (`signature` = `v1:<hex>`,
    /// ENGINE.md §7): the UTF-8 bytes of a string, or the bytes of a `Uint8Array`/`Buffer`.
    pub signing_key: Option<Either<String, Uint8Array>>,
    /// Longest span list of a violation (default 100); longer lists are cut and the violation
    /// is marked `truncated`.
    pub max_span_refs: Option<u32>,
}

impl std::fmt::Debug for JsEngineOptions {
    /// Leaves the signing key out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsEngineOptions")
            .field("signing_key", &self.signing_key.as_ref().map(|_| "…"))
            .field("max_span_refs", &self.max_span_refs)
            .finish()
    }
}

/// Compiled, immutable rules. Construct once and evaluate many span batches; evaluation
/// groups the spans by trace id and evaluates every rule against every trace.
#[napi]
#[derive(Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
}

#[napi]
impl Engine {
    /// Compiles `rules`: objects `{id, expression, severity?, name?, description?, tags?,
    /// enabled?}` (ENGINE.md §3; `condition` is accepted for `expression`; severity
    /// `CRITICAL`, `HIGH`, `MEDIUM` (default) or `LOW`, any case).
    ///
    /// Throws `BETRACE_INVALID_RULE` with `diagnostics` (every compile error of every rule,
    /// each with its `ruleId`) and `ruleProblems` (missing, unknown or mistyped fields, ids
    /// used twice); the message is the rendered report.
    #[napi(
        constructor,
        ts_args_type = "rules: RuleDefinition[], options?: EngineOptions | undefined | null"
    )]
    pub fn new(
        env: Env,
        rules: Unknown<'_>,
        options: Option<JsEngineOptions>,
    ) -> napi::Result<Engine> {
        compile(rules, options)
            .map(|rules| Engine {
                rules: Arc::new(rules),
            })
            .map_err(|f| f.into_js(&env))
    }

    /// Evaluates every rule against the spans, grouped by trace id, on the calling thread.
    /// Violations come trace by trace (traces in the order their first span appears), rules
    /// in the order given.
    ///
    /// Throws `BETRACE_INVALID_SPAN` naming every malformed span (`spanIndex`, `field`,
    /// `spanErrors`), and `BETRACE_EVALUATION_FAILED` when a rule's evaluation fails.
    #[napi(ts_args_type = "spans: SpanInput", ts_return_type = "Violation[]")]
    pub fn evaluate<'e>(&self, env: &'e Env, spans: Unknown<'_>) -> napi::Result<Unknown<'e>> {
        SpanInput::read(env, spans)
            .map_err(Failure::from)
            .and_then(|input| run(&self.rules, input))
            .map_err(|f| f.into_js(env))
            .and_then(|vs| output::violations(env, &vs))
    }

    /// `evaluate` off the JavaScript thread, for big batches: SDK spans are read on
    /// the calling thread, decoding and evaluation run in the libuv thread pool. The promise
    /// rejects with the errors `evaluate` throws.
    #[napi(
        ts_args_type = "spans: SpanInput",
        ts_return_type = "Promise<Violation[]>"
    )]
    pub fn evaluate_async(
        &self,
        env: Env,
        spans: Unknown<'_>,
    ) -> napi::Result<AsyncTask<Evaluate>> {
        let input = SpanInput::read(&env, spans)?;
        Ok(AsyncTask::new(Evaluate {
            rules: self.rules.clone(),
            input: Some(input),
            failure: None,
        }))
    }

    /// The rules, every default applied, in the order given.
    #[napi(getter)]
    pub fn rules(&self) -> Vec<JsRule> {
        self.rules.rules().map(JsRule::from).collect()
    }
}

/// The work of [`Engine::evaluate_async`].
#[derive(Debug)]
pub struct Evaluate {
    rules: Arc<RuleSet>,
    input: Option<SpanInput>,
    /// The failure of `compute`, turned into a JavaScript error in `reject`.
    failure: Option<Failure>,
}

impl<'task> ScopedTask<'task> for Evaluate {
    type Output = Vec<Violation>;
    type JsValue = Unknown<'task>;

    fn compute(&mut self) -> napi::Result<Vec<Violation>> {
        let Some(input) = self.input.take() else {
            return Err(napi::Error::from_reason("the evaluation already ran"));
        };
        run(&self.rules, input).map_err(|failure| {
            let error = napi::Error::from_reason(format!("{failure:?}"));
            self.failure = Some(failure);
            error
        })
    }

    fn resolve(&mut self, env: &'task Env, found: Vec<Violation>) -> napi::Result<Unknown<'task>> {
        output::violations(env, &found)
    }

    fn reject(&mut self, env: &'task Env, err: napi::Error) -> napi::Result<Unknown<'task>> {
        Err(match self.failure.take() {
            Some(failure) => failure.into_js(env),
            None => err,
        })
    }
}

/// Evaluates one rule expression (block or expression form) against the spans, grouped by
/// trace id: the violations of a rule with id `check` and severity `MEDIUM`.
///
/// Throws `BETRACE_INVALID_RULE` with `diagnostics` when the expression does not compile, and
/// the span errors of `evaluate`.
#[napi(
    ts_args_type = "expression: string, spans: SpanInput",
    ts_return_type = "Violation[]"
)]
pub fn check<'e>(
    env: &'e Env,
    expression: String,
    spans: Unknown<'_>,
) -> napi::Result<Unknown<'e>> {
    let compiled = RuleSet::compile(
        vec![Rule::new(CHECK_RULE_ID, expression.clone())],
        EngineOptions::default(),
    )
    .map_err(|failures| {
        let diagnostics: Vec<_> = failures.into_iter().flat_map(|f| f.diagnostics).collect();
        text_failure(&diagnostics, &expression)
    });
    compiled
        .and_then(|rules| {
            let input = SpanInput::read(env, spans)?;
            run(&rules, input)
        })
        .map_err(|f| f.into_js(env))
        .and_then(|vs| output::violations(env, &vs))
}

/// Every diagnostic of one rule's text (DSL.md §4); empty when it compiles. Never throws for a
/// bad rule.
#[napi(ts_return_type = "Diagnostic[]")]
pub fn validate(env: &Env, text: String) -> napi::Result<Unknown<'_>> {
    let list: Vec<_> = betrace_dsl::validate(&text)
        .iter()
        .map(|d| output::diagnostic(d, &text, None))
        .collect();
    output::diagnostics(env, &list)
}

/// The canonical text of one rule (DSL.md §5); a rule holding comments comes back unchanged.
/// Throws `BETRACE_INVALID_RULE` with `diagnostics` when it does not compile.
#[napi]
pub fn format(env: Env, text: String) -> napi::Result<String> {
    betrace_dsl::format(&text)
        .map_err(|diagnostics| text_failure(&diagnostics, &text).into_js(&env))
}

/// The failure of rule text that does not compile, rendered with `expression` as its origin.
fn text_failure(diagnostics: &[betrace_dsl::Diagnostic], text: &str) -> Failure {
    Failure::RuleText {
        diagnostics: diagnostics
            .iter()
            .map(|d| output::diagnostic(d, text, None))
            .collect(),
        report: betrace_dsl::render(diagnostics, "expression", text),
    }
}

/// Reads and compiles the constructor's arguments.
fn compile(rules: Unknown<'_>, options: Option<JsEngineOptions>) -> Result<RuleSet, Failure> {
    let array = match Js::read(rules)? {
        Js::Array(array) => array,
        other => {
            return Err(Failure::RuleInput(format!(
                "expected an array of rule objects, found {}",
                other.describe()
            )));
        }
    };
    let len = array.get_array_length()?;
    let mut values = Vec::with_capacity(len as usize);
    let mut problems = Vec::new();
    for i in 0..len {
        let item = array.get_element::<Unknown>(i)?;
        match to_json(item) {
            Ok(v) => values.push(v),
            Err(ReadError::Data(p)) => problems.push(RuleProblem {
                index: i as usize,
                id: None,
                field: (!p.path.is_empty()).then_some(p.path),
                message: p.message,
            }),
            Err(ReadError::Napi(e)) => return Err(Failure::Napi(e)),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::RuleFields(problems));
    }
    let rules = rules_from_json_values(&values).map_err(Failure::RuleFields)?;
    let options = engine_options(options)?;
    RuleSet::compile(rules, options).map_err(|failures| {
        let mut diagnostics = Vec::new();
        let mut report = String::new();
        for f in &failures {
            diagnostics.extend(
                f.diagnostics
                    .iter()
                    .map(|d| output::diagnostic(d, &f.expression, Some(&f.rule_id))),
            );
            report.push_str(&f.render());
        }
        Failure::RuleText {
            diagnostics,
            report,
        }
    })
}

fn engine_options(options: Option<JsEngineOptions>) -> Result<EngineOptions, Failure> {
    let mut out = EngineOptions::default();
    let Some(options) = options else {
        return Ok(out);
    };
    if let Some(max) = options.max_span_refs {
        out.max_span_refs = max as usize;
    }
    out.signing_key = match options.signing_key {
        Some(Either::A(text)) => Some(text.into_bytes()),
        Some(Either::B(bytes)) => Some(bytes.to_vec()),
        None => None,
    };
    if out.signing_key.as_ref().is_some_and(Vec::is_empty) {
        return Err(Failure::Option("`signingKey` must not be empty".into()));
    }
    Ok(out)
}

/// Decodes, groups by trace and evaluates: the shared path of `evaluate`, `evaluateAsync`
/// and `check`.
fn run(rules: &RuleSet, input: SpanInput) -> Result<Vec<Violation>, Failure> {
    let spans = input.decode().map_err(Failure::Spans)?;
    let traces = group_by_trace(spans);
    let mut violations = Vec::new();
    let mut errors = Vec::new();
    for evaluation in rules.evaluate_many(&traces, TraceContext::direct()) {
        violations.extend(evaluation.violations);
        errors.extend(evaluation.errors);
    }
    if errors.is_empty() {
        Ok(violations)
    } else {
        Err(Failure::Evaluation { errors, violations })
    }
}
