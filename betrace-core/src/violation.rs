//! Violations (ENGINE.md §6).
//!
//! In: the outcome of evaluating one rule against one trace, as plain values (rule id, name,
//! expression, severity, the clause that failed, the trigger and offending span references,
//! how the trace was completed) and a wall-clock time. Out: [`Violation`], the record stored,
//! exported, signed ([`crate::sign`]) and returned by every interface, serialized as JSON with
//! camelCase keys:
//!
//! ```json
//! {"id":"0190…","ruleId":"large-order-fraud","ruleName":"large-order-fraud",
//!  "ruleVersion":"3f2a9c0d1b7e4a55","severity":"HIGH","message":"rule \"large-order-fraud\" (HIGH): …",
//!  "traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
//!  "failedClause":"always","completionReason":"root_complete","partial":false,
//!  "triggerSpans":[{"traceId":"…","spanId":"…","name":"checkout","service":"shop"}],
//!  "offendingSpans":[],"truncated":false,"createdAt":"2024-05-01T12:00:00.123Z","signature":null}
//! ```
//!
//! Ids and the time are typed ([`TraceId`], [`SpanId`], [`UnixMillis`]); their JSON spelling
//! (lower-case hex, `""` for no span id, RFC 3339 with milliseconds and `Z`) is
//! [`crate::json`]'s.
//!
//! Every key above is always present; `signature` is `null` when the violation is unsigned.
//! A record made by a re-evaluation of its trace (late spans, ENGINE.md §5) adds
//! `"evaluation": n` (n ≥ 2, a JSON integer), `"supersedes": "<id>"` when it replaces an
//! earlier violation, and `"retraction": true` when it withdraws it ([`reconcile`]); these
//! keys are absent otherwise, so a first evaluation's record is what it always was. Apart from
//! `evaluation`, a violation holds no JSON numbers, and an integer below 2^53 is printed
//! alike by every JSON library, which keeps the canonical form identical across them (see
//! [`crate::sign`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::span::{Span, SpanId, TraceId};

/// Severity of a rule and of its violations (ENGINE.md §3). Parsed case-insensitively,
/// serialized in upper case. Ordered `LOW < MEDIUM < HIGH < CRITICAL`, the order used by
/// `betrace check --fail-on` (SERVER.md §2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// Upper-case name (`HIGH`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is none of CRITICAL, HIGH, MEDIUM, LOW (in any case).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity `{0}`; expected one of CRITICAL, HIGH, MEDIUM, LOW")]
pub struct ParseSeverityError(pub String);

impl FromStr for Severity {
    type Err = ParseSeverityError;

    /// Case-insensitive; surrounding whitespace is ignored.
    fn from_str(s: &str) -> Result<Severity, ParseSeverityError> {
        let t = s.trim();
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseSeverityError(s.to_owned()))
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Severity, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The clause that made the rule fail (DSL.md §3.6, §7.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailedClause {
    /// `always` was false (when `never` also matched, `offendingSpans` lists its matches).
    Always,
    /// `never` matched.
    Never,
    /// An expression-form rule was true.
    Expression,
}

impl FailedClause {
    /// Lower-case name as serialized (`always`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailedClause::Always => "always",
            FailedClause::Never => "never",
            FailedClause::Expression => "expression",
        }
    }
}

impl fmt::Display for FailedClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the evaluated trace was considered complete (ENGINE.md §5), serialized in snake case.
///
/// `Direct` is an addition to the table of ENGINE.md §5: the trace was not assembled from a
/// stream but handed over whole, e.g. by `betrace check`, `betrace test`, `POST /v1/rules/test`
/// or `Engine.evaluate` in the bindings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    /// The root span had ended and no span arrived for `root_grace`.
    RootComplete,
    /// No span arrived for `idle_timeout`.
    IdleTimeout,
    /// The first span arrived more than `max_trace_age` ago.
    MaxAge,
    /// The trace reached `max_spans_per_trace` spans.
    SpanCap,
    /// Released early because the buffer was over `max_buffered_spans`.
    Evicted,
    /// Released by an explicit flush.
    Flush,
    /// Released at shutdown.
    Shutdown,
    /// Evaluated outside the assembler, as one whole trace.
    Direct,
}

impl CompletionReason {
    /// Every reason, in the order of ENGINE.md §5, `Direct` last.
    pub const ALL: [CompletionReason; 8] = [
        CompletionReason::RootComplete,
        CompletionReason::IdleTimeout,
        CompletionReason::MaxAge,
        CompletionReason::SpanCap,
        CompletionReason::Evicted,
        CompletionReason::Flush,
        CompletionReason::Shutdown,
        CompletionReason::Direct,
    ];

    /// Snake-case name as serialized (`root_complete`), also the metrics label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionReason::RootComplete => "root_complete",
            CompletionReason::IdleTimeout => "idle_timeout",
            CompletionReason::MaxAge => "max_age",
            CompletionReason::SpanCap => "span_cap",
            CompletionReason::Evicted => "evicted",
            CompletionReason::Flush => "flush",
            CompletionReason::Shutdown => "shutdown",
            CompletionReason::Direct => "direct",
        }
    }
}

impl fmt::Display for CompletionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An instant as Unix milliseconds (UTC), the precision of `createdAt`. Written and read as
/// RFC 3339 with milliseconds and `Z` ([`crate::json`]); `Display` gives that text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// The millisecond of `unix_nanos` (Unix nanoseconds), finer digits dropped.
    pub fn from_unix_nanos(unix_nanos: u64) -> UnixMillis {
        UnixMillis(unix_nanos / 1_000_000)
    }

    /// Unix nanoseconds (saturating at `u64::MAX`, past the year 2554).
    pub fn unix_nanos(self) -> u64 {
        self.0.saturating_mul(1_000_000)
    }
}

/// A reference to one span named by a violation.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanRef {
    /// Written as lowercase hex, 32 characters.
    pub trace_id: TraceId,
    /// Written as lowercase hex, 16 characters.
    pub span_id: SpanId,
    /// Span name.
    pub name: String,
    /// `service.name` of the span's resource, `""` when absent.
    pub service: String,
}

impl SpanRef {
    /// The reference to `span`.
    pub fn from_span(span: &Span) -> SpanRef {
        SpanRef {
            trace_id: span.trace_id,
            span_id: span.span_id,
            name: span.name.clone(),
            service: span.service().to_owned(),
        }
    }
}

/// One violation of one rule by one trace (ENGINE.md §6). See the module docs for the JSON
/// shape.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// UUIDv7, hyphenated lower case; its timestamp is `createdAt`.
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    /// [`rule_version`] of the rule's expression text.
    pub rule_version: String,
    pub severity: Severity,
    /// Human-readable, self-contained description (see [`Violation::new`]).
    pub message: String,
    /// Written as lowercase hex, 32 characters.
    pub trace_id: TraceId,
    /// The first trigger span, else the first offending span; written as lowercase hex, `""`
    /// when the violation names no span.
    #[serde(with = "crate::json::span_id_or_empty")]
    pub span_id: Option<SpanId>,
    pub failed_clause: FailedClause,
    pub completion_reason: CompletionReason,
    /// True when the trace was an incomplete fragment (late spans, or spans past the cap).
    pub partial: bool,
    /// Spans that made `when` true, or that matched an expression-form rule (DSL.md §3.6).
    pub trigger_spans: Vec<SpanRef>,
    /// Spans matched by `never` (DSL.md §3.6).
    pub offending_spans: Vec<SpanRef>,
    /// True when either list was cut at `max_span_refs`.
    pub truncated: bool,
    /// Written as RFC 3339, UTC, millisecond precision, `Z` suffix
    /// (`2024-05-01T12:00:00.123Z`).
    pub created_at: UnixMillis,
    /// `v1:<hex>` (ENGINE.md §7, [`crate::sign`]); serialized as `null` when unsigned.
    pub signature: Option<String>,
    /// Which evaluation of the trace id produced the record: 1 for the first, n for the one
    /// after the (n-1)-th was re-opened by late spans. Serialized only when above 1 (a JSON
    /// integer), so the record of a first evaluation keeps exactly the keys above.
    #[serde(
        default = "first_evaluation",
        skip_serializing_if = "is_first_evaluation"
    )]
    pub evaluation: u32,
    /// The id of the earlier violation of the same rule and trace that this record replaces;
    /// serialized only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// True for a retraction: evaluation `evaluation` of the whole trace no longer violates
    /// the rule, and the violation `supersedes` is withdrawn. Serialized only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retraction: bool,
}

fn first_evaluation() -> u32 {
    1
}

fn is_first_evaluation(n: &u32) -> bool {
    *n <= 1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The source text of a block rule's clauses, without their braces, used to build a
/// violation's message. Every field is optional: a missing clause text is described by the
/// clause name alone.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ClauseTexts<'a> {
    pub when: Option<&'a str>,
    pub always: Option<&'a str>,
    pub never: Option<&'a str>,
}

/// Everything [`Violation::new`] needs, as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct ViolationParts<'a> {
    pub rule_id: &'a str,
    pub rule_name: &'a str,
    /// The rule's full expression text; hashed into `ruleVersion`, and quoted in the message
    /// of an expression-form rule.
    pub expression: &'a str,
    pub severity: Severity,
    /// Clause texts of a block rule (ignored for [`FailedClause::Expression`]).
    pub clauses: ClauseTexts<'a>,
    pub trace_id: TraceId,
    pub failed_clause: FailedClause,
    /// Already ordered (start time, span id) and cut at `max_span_refs` by the caller.
    pub trigger_spans: Vec<SpanRef>,
    /// Already ordered and cut like `trigger_spans`.
    pub offending_spans: Vec<SpanRef>,
    /// True when the caller cut either list.
    pub truncated: bool,
    pub completion_reason: CompletionReason,
    pub partial: bool,
}

/// `ruleVersion`: the first 16 lowercase hex characters of SHA-256 of the expression text
/// (ENGINE.md §6). Any change of the text, whitespace included, changes the version.
pub fn rule_version(expression: &str) -> String {
    let digest = Sha256::digest(expression.as_bytes());
    let mut hex = hex::encode(digest);
    hex.truncate(16);
    hex
}

/// Longest clause text quoted in a message, in characters.
const MAX_SNIPPET_CHARS: usize = 80;
/// Span references listed in a message; the rest are counted.
const MAX_LISTED_SPANS: usize = 3;
/// Span id bytes shown in a message (as 8 hex digits).
const SPAN_ID_PREFIX_BYTES: usize = 4;

impl Violation {
    /// Builds an unsigned violation with a fresh UUIDv7 id whose timestamp is
    /// `created_at_unix_nanos` (wall clock, Unix nanoseconds), which also gives `createdAt`.
    ///
    /// `spanId` is the first trigger span, else the first offending span, else `""`. The
    /// message is deterministic given `parts`:
    /// `rule "<name>" (<SEVERITY>): <what happened>`, where the id is added after the name
    /// when they differ, and what happened is, per failed clause:
    /// - `always`: `when matched <spans>; always { <text> } did not hold`, plus
    ///   `; never { <text> } matched <spans>` when offending spans are listed;
    /// - `never`: `when matched <spans>; never { <text> } matched <spans>`;
    /// - `expression`: `{ <expression> } matched <spans>`, or `held for the trace` when no
    ///   span is named.
    ///
    /// Spans are shown as `name` and the first 8 hex digits of the span id (`checkout
    /// 5f1c2a3b…`), at most three, then `and N more`. Clause texts have their whitespace
    /// collapsed and are cut at 80 characters. A partial trace adds
    /// `; evaluated on a partial trace`.
    pub fn new(parts: ViolationParts<'_>, created_at_unix_nanos: u64) -> Violation {
        let message = compose_message(&parts);
        let span_id = parts
            .trigger_spans
            .first()
            .or(parts.offending_spans.first())
            .map(|r| r.span_id);
        let (id, created_at) = fresh_id(created_at_unix_nanos);
        Violation {
            id,
            rule_id: parts.rule_id.to_owned(),
            rule_name: parts.rule_name.to_owned(),
            rule_version: rule_version(parts.expression),
            severity: parts.severity,
            message,
            trace_id: parts.trace_id,
            span_id,
            failed_clause: parts.failed_clause,
            completion_reason: parts.completion_reason,
            partial: parts.partial,
            trigger_spans: parts.trigger_spans,
            offending_spans: parts.offending_spans,
            truncated: parts.truncated,
            created_at,
            signature: None,
            evaluation: 1,
            supersedes: None,
            retraction: false,
        }
    }

    /// True when `self` and `other` say the same thing about the trace: same rule version,
    /// failed clause, span lists and partiality (ids, times, messages and signatures aside).
    pub fn same_finding(&self, other: &Violation) -> bool {
        self.rule_id == other.rule_id
            && self.rule_version == other.rule_version
            && self.failed_clause == other.failed_clause
            && self.trigger_spans == other.trigger_spans
            && self.offending_spans == other.offending_spans
            && self.truncated == other.truncated
            && self.partial == other.partial
            && !self.retraction
            && !other.retraction
    }

    /// The retraction of `self`: a new record (fresh UUIDv7 id, `createdAt` =
    /// `created_at_unix_nanos`, unsigned) with the rule, trace and span lists of `self`,
    /// `evaluation`, `supersedes` = the id of `self`, `retraction: true`, `completionReason`
    /// of the evaluation that found the rule no longer violated, and the message
    /// `rule "<name>" (<SEVERITY>): retracted: evaluation <n> of the whole trace (<k> spans) no
    /// longer violates the rule`.
    pub fn retraction_of(
        &self,
        evaluation: u32,
        span_count: usize,
        completion_reason: CompletionReason,
        created_at_unix_nanos: u64,
    ) -> Violation {
        let mut r = self.clone();
        let (id, created_at) = fresh_id(created_at_unix_nanos);
        r.id = id;
        r.created_at = created_at;
        r.message = format!(
            "{}retracted: evaluation {evaluation} of the whole trace ({span_count} spans) no longer violates the rule",
            message_prefix(&self.rule_name, &self.rule_id, self.severity)
        );
        r.completion_reason = completion_reason;
        r.partial = false;
        r.signature = None;
        r.evaluation = evaluation;
        r.supersedes = Some(self.id.clone());
        r.retraction = true;
        r
    }

    /// The message without its `rule "name" (id, SEVERITY): ` head, for reports that show
    /// the rule already; the whole message when it does not start with that head.
    pub fn message_detail(&self) -> &str {
        let prefix = message_prefix(&self.rule_name, &self.rule_id, self.severity);
        self.message
            .strip_prefix(prefix.as_str())
            .unwrap_or(&self.message)
    }
}

/// A UUIDv7 whose timestamp is `unix_nanos`, and `createdAt` of the same instant.
fn fresh_id(unix_nanos: u64) -> (String, UnixMillis) {
    let secs = unix_nanos / 1_000_000_000;
    let subsec = (unix_nanos % 1_000_000_000) as u32;
    let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, subsec));
    (
        id.hyphenated().to_string(),
        UnixMillis::from_unix_nanos(unix_nanos),
    )
}

/// How the violations of a re-evaluation relate to the live violations of the earlier
/// evaluations of the same trace (see [`reconcile`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Records to store: new violations (possibly superseding an earlier one) and
    /// retractions, unsigned when they were changed (sign them again).
    pub records: Vec<Violation>,
    /// Fresh violations dropped because an earlier live violation says the same.
    pub unchanged: usize,
}

/// Reconciles `fresh`, the violations of evaluation `evaluation` of a whole trace (not a
/// partial fragment), with `earlier`, the live violations of the same trace from earlier
/// evaluations. Per rule:
/// - violated before and now with the same finding ([`Violation::same_finding`]): nothing new
///   is recorded, the earlier violation stands;
/// - violated before and now differently: the fresh violation gets `supersedes` = the earlier
///   id;
/// - violated before, not now: a retraction ([`Violation::retraction_of`]);
/// - violated only now: the fresh violation as it is.
///
/// Every record gets `evaluation`; changed records lose their signature (`signature: None`)
/// so that the caller signs what it stores.
pub fn reconcile(
    earlier: &[Violation],
    fresh: Vec<Violation>,
    evaluation: u32,
    span_count: usize,
    completion_reason: CompletionReason,
    now_unix_nanos: u64,
) -> Reconciled {
    let mut out = Reconciled::default();
    let mut matched = vec![false; earlier.len()];
    for mut v in fresh {
        let old = earlier
            .iter()
            .enumerate()
            .find(|(i, e)| !matched[*i] && !e.retraction && e.rule_id == v.rule_id);
        if let Some((i, e)) = old {
            matched[i] = true;
            if e.same_finding(&v) {
                out.unchanged += 1;
                continue;
            }
            v.supersedes = Some(e.id.clone());
        }
        v.evaluation = evaluation;
        v.signature = None;
        out.records.push(v);
    }
    for (e, done) in earlier.iter().zip(matched) {
        if !done && !e.retraction {
            out.records.push(e.retraction_of(
                evaluation,
                span_count,
                completion_reason,
                now_unix_nanos,
            ));
        }
    }
    out
}

/// `rule "name" (id, SEVERITY): ` — the head of every message (the id only when it differs
/// from the name).
fn message_prefix(rule_name: &str, rule_id: &str, severity: Severity) -> String {
    if rule_name != rule_id {
        format!("rule \"{rule_name}\" ({rule_id}, {severity}): ")
    } else {
        format!("rule \"{rule_name}\" ({severity}): ")
    }
}

fn compose_message(p: &ViolationParts<'_>) -> String {
    let mut out = message_prefix(p.rule_name, p.rule_id, p.severity);
    let mut parts: Vec<String> = Vec::new();
    match p.failed_clause {
        FailedClause::Always | FailedClause::Never => {
            if !p.trigger_spans.is_empty() {
                parts.push(format!(
                    "when matched {}",
                    span_list(&p.trigger_spans, p.truncated)
                ));
            } else if let Some(w) = p.clauses.when {
                parts.push(format!("{} held", clause("when", Some(w))));
            }
            if p.failed_clause == FailedClause::Always {
                parts.push(format!(
                    "{} did not hold",
                    clause("always", p.clauses.always)
                ));
            }
            if p.failed_clause == FailedClause::Never || !p.offending_spans.is_empty() {
                let mut s = format!("{} matched", clause("never", p.clauses.never));
                if !p.offending_spans.is_empty() {
                    s.push(' ');
                    s.push_str(&span_list(&p.offending_spans, p.truncated));
                }
                parts.push(s);
            }
        }
        FailedClause::Expression => {
            let head = format!("{{ {} }}", snippet(p.expression));
            if p.trigger_spans.is_empty() {
                parts.push(format!("{head} held for the trace"));
            } else {
                parts.push(format!(
                    "{head} matched {}",
                    span_list(&p.trigger_spans, p.truncated)
                ));
            }
        }
    }
    if p.partial {
        parts.push("evaluated on a partial trace".to_owned());
    }
    out.push_str(&parts.join("; "));
    out
}

/// `always { text }`, or `the always clause` without text.
fn clause(keyword: &str, text: Option<&str>) -> String {
    match text {
        Some(t) => format!("{keyword} {{ {} }}", snippet(t)),
        None => format!("the {keyword} clause"),
    }
}

fn snippet(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= MAX_SNIPPET_CHARS {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(MAX_SNIPPET_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

fn span_list(spans: &[SpanRef], truncated: bool) -> String {
    let shown: Vec<String> = spans
        .iter()
        .take(MAX_LISTED_SPANS)
        .map(|r| {
            let name = if r.name.is_empty() {
                "(unnamed)"
            } else {
                &r.name
            };
            let id = hex::encode(&r.span_id.0[..SPAN_ID_PREFIX_BYTES]);
            format!("{name} {id}…")
        })
        .collect();
    let mut out = shown.join(", ");
    let rest = spans.len().saturating_sub(MAX_LISTED_SPANS);
    if rest > 0 || (truncated && !spans.is_empty()) {
        let plus = if truncated { "+" } else { "" };
        if rest > 0 {
            out.push_str(&format!(" and {rest}{plus} more"));
        } else {
            out.push_str(" and more");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, id: &str) -> SpanRef {
        SpanRef {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap(),
            span_id: id.parse().unwrap(),
            name: name.into(),
            service: "shop".into(),
        }
    }

    #[test]
    fn message_detail_drops_the_head_only() {
        let v = Violation::new(parts(FailedClause::Always), 0);
        assert!(v.message.starts_with("rule \""));
        assert!(v.message.ends_with(v.message_detail()));
        assert!(!v.message_detail().starts_with("rule \""));
        let mut odd = parts(FailedClause::Always);
        odd.rule_name = "weird): name";
        let w = Violation::new(odd, 0);
        assert_eq!(w.message_detail(), v.message_detail());
    }

    fn parts(failed: FailedClause) -> ViolationParts<'static> {
        ViolationParts {
            rule_id: "large-order-fraud",
            rule_name: "large-order-fraud",
            expression: "when { checkout } always { fraud_check }",
            severity: Severity::High,
            clauses: ClauseTexts {
                when: Some("checkout"),
                always: Some("fraud_check"),
                never: None,
            },
            trace_id: TraceId([0x4b; 16]),
            failed_clause: failed,
            trigger_spans: vec![r("checkout", "5f1c2a3b4c5d6e7f")],
            offending_spans: vec![],
            truncated: false,
            completion_reason: CompletionReason::RootComplete,
            partial: false,
        }
    }

    #[test]
    fn severity_parses_any_case_and_orders() {
        assert_eq!("high".parse::<Severity>(), Ok(Severity::High));
        assert_eq!(" Critical ".parse::<Severity>(), Ok(Severity::Critical));
        assert_eq!("LOW".parse::<Severity>(), Ok(Severity::Low));
        let e = "urgent".parse::<Severity>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown severity `urgent`; expected one of CRITICAL, HIGH, MEDIUM, LOW"
        );
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
        assert_eq!(Severity::default(), Severity::Medium);
        assert_eq!(serde_json::to_string(&Severity::High).unwrap(), "\"HIGH\"");
        assert_eq!(
            serde_json::from_str::<Severity>("\"medium\"").unwrap(),
            Severity::Medium
        );
        assert!(serde_json::from_str::<Severity>("\"meh\"").is_err());
    }

    #[test]
    fn enums_serialize_in_spec_case() {
        assert_eq!(
            serde_json::to_string(&FailedClause::Expression).unwrap(),
            "\"expression\""
        );
        for reason in CompletionReason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            assert_eq!(
                serde_json::from_str::<CompletionReason>(&json).unwrap(),
                reason
            );
        }
    }

    #[test]
    fn rule_version_is_16_hex_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(rule_version("abc"), "ba7816bf8f01cfea");
        assert_ne!(rule_version("abc "), rule_version("abc"));
    }

    #[test]
    fn always_message_and_span_id() {
        let v = Violation::new(parts(FailedClause::Always), 1_714_564_800_123_456_789);
        assert_eq!(
            v.message,
            "rule \"large-order-fraud\" (HIGH): when matched checkout 5f1c2a3b…; \
             always { fraud_check } did not hold"
        );
        assert_eq!(v.span_id, Some("5f1c2a3b4c5d6e7f".parse().unwrap()));
        assert_eq!(v.created_at.to_string(), "2024-05-01T12:00:00.123Z");
        assert_eq!(v.created_at.unix_nanos(), 1_714_564_800_123_000_000);
        assert_eq!(v.trace_id, TraceId([0x4b; 16]));
        assert_eq!(
            v.rule_version,
            rule_version(parts(FailedClause::Always).expression)
        );
        let id = uuid::Uuid::parse_str(&v.id).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_714_564_800);
        assert_eq!(v.signature, None);
    }

    #[test]
    fn always_with_never_matches_names_offending_spans() {
        let mut p = parts(FailedClause::Always);
        p.clauses.never = Some("debug_dump");
        p.offending_spans = vec![r("debug_dump", "aaaabbbbccccdddd")];
        let v = Violation::new(p, 0);
        assert!(v.message.ends_with(
            "always { fraud_check } did not hold; never { debug_dump } matched debug_dump aaaabbbb…"
        ));
    }

    #[test]
    fn never_message_lists_offending_spans() {
        let mut p = parts(FailedClause::Never);
        p.rule_name = "No debug in prod";
        p.clauses = ClauseTexts {
            when: None,
            always: None,
            never: Some("debug_dump.where(env   ==\n prod)"),
        };
        p.trigger_spans = vec![];
        p.offending_spans = (0..5)
            .map(|i| r("debug_dump", &format!("{i:016x}")))
            .collect();
        p.truncated = true;
        p.partial = true;
        let v = Violation::new(p, 0);
        assert_eq!(
            v.message,
            "rule \"No debug in prod\" (large-order-fraud, HIGH): never { debug_dump.where(env == prod) } \
             matched debug_dump 00000000…, debug_dump 00000000…, debug_dump 00000000… and 2+ more; \
             evaluated on a partial trace"
        );
        assert_eq!(v.span_id, Some(SpanId([0; 8])));
    }

    #[test]
    fn expression_messages() {
        let mut p = parts(FailedClause::Expression);
        p.expression = "span.duration > 1s";
        let v = Violation::new(p.clone(), 0);
        assert_eq!(
            v.message,
            "rule \"large-order-fraud\" (HIGH): { span.duration > 1s } matched checkout 5f1c2a3b…"
        );
        p.trigger_spans.clear();
        p.expression = "trace.count(*) > 1000";
        let v = Violation::new(p, 0);
        assert_eq!(
            v.message,
            "rule \"large-order-fraud\" (HIGH): { trace.count(*) > 1000 } held for the trace"
        );
        assert_eq!(v.span_id, None);
        assert_eq!(serde_json::to_value(&v).unwrap()["spanId"], "");
    }

    #[test]
    fn long_clause_is_cut() {
        let long = "a ".repeat(100);
        let mut p = parts(FailedClause::Always);
        p.clauses.always = Some(&long);
        p.trigger_spans.clear();
        p.clauses.when = Some("checkout");
        let v = Violation::new(p, 0);
        assert!(v.message.contains("when { checkout } held"));
        let inner = v.message.split("always { ").nth(1).unwrap();
        let inner = inner.split(" }").next().unwrap();
        assert!(inner.ends_with('…'));
        assert!(inner.chars().count() <= MAX_SNIPPET_CHARS);
    }

    #[test]
    fn json_shape_has_every_key_in_camel_case() {
        let v = Violation::new(parts(FailedClause::Always), 0);
        let json = serde_json::to_value(&v).unwrap();
        let obj = json.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "completionReason",
                "createdAt",
                "failedClause",
                "id",
                "message",
                "offendingSpans",
                "partial",
                "ruleId",
                "ruleName",
                "ruleVersion",
                "severity",
                "signature",
                "spanId",
                "traceId",
                "triggerSpans",
                "truncated"
            ]
        );
        assert_eq!(obj["signature"], serde_json::Value::Null);
        assert_eq!(obj["completionReason"], "root_complete");
        assert_eq!(obj["triggerSpans"][0]["spanId"], "5f1c2a3b4c5d6e7f");
        let back: Violation = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn first_evaluation_json_has_no_new_keys_and_later_ones_do() {
        let mut v = Violation::new(parts(FailedClause::Always), 0);
        let plain = serde_json::to_string(&v).unwrap();
        assert!(!plain.contains("evaluation") && !plain.contains("supersedes"));
        assert!(!plain.contains("retraction"));
        v.evaluation = 2;
        v.supersedes = Some("x".into());
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["evaluation"], 2);
        assert_eq!(json["supersedes"], "x");
        assert!(json.get("retraction").is_none());
        let back: Violation = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
        let old: Violation = serde_json::from_str(&plain).unwrap();
        assert_eq!(old.evaluation, 1);
    }

    #[test]
    fn reconcile_keeps_supersedes_retracts_and_adds() {
        let earlier_same = Violation::new(parts(FailedClause::Always), 0);
        let mut p = parts(FailedClause::Always);
        p.rule_id = "changes";
        let earlier_changed = Violation::new(p.clone(), 0);
        p.rule_id = "goes-away";
        let earlier_gone = Violation::new(p.clone(), 0);
        let same_again = Violation::new(parts(FailedClause::Always), 5);
        let mut changed = parts(FailedClause::Always);
        changed.rule_id = "changes";
        changed
            .trigger_spans
            .push(r("checkout", "6f1c2a3b4c5d6e7f"));
        let changed = Violation::new(changed, 5);
        let mut fresh = parts(FailedClause::Never);
        fresh.rule_id = "new";
        let fresh = Violation::new(fresh, 5);
        let out = reconcile(
            &[earlier_same, earlier_changed.clone(), earlier_gone.clone()],
            vec![same_again, changed.clone(), fresh.clone()],
            2,
            4,
            CompletionReason::RootComplete,
            1_714_564_800_000_000_000,
        );
        assert_eq!(out.unchanged, 1);
        assert_eq!(out.records.len(), 3);
        let [sup, add, retract] = &out.records[..] else {
            panic!("{out:?}")
        };
        assert_eq!(sup.id, changed.id);
        assert_eq!(sup.supersedes.as_deref(), Some(earlier_changed.id.as_str()));
        assert_eq!(sup.evaluation, 2);
        assert_eq!(add.id, fresh.id);
        assert_eq!(add.supersedes, None);
        assert_eq!(add.evaluation, 2);
        assert!(retract.retraction);
        assert_eq!(
            retract.supersedes.as_deref(),
            Some(earlier_gone.id.as_str())
        );
        assert_ne!(retract.id, earlier_gone.id);
        assert_eq!(retract.created_at.to_string(), "2024-05-01T12:00:00.000Z");
        assert_eq!(retract.signature, None);
        assert_eq!(
            retract.message,
            "rule \"large-order-fraud\" (goes-away, HIGH): retracted: evaluation 2 of the whole \
             trace (4 spans) no longer violates the rule"
        );
        let json = serde_json::to_value(retract).unwrap();
        assert_eq!(json["retraction"], true);
    }

    #[test]
    fn span_ref_from_span() {
        let span = Span {
            trace_id: TraceId([1; 16]),
            span_id: crate::span::SpanId([2; 8]),
            parent_span_id: None,
            name: "GET /users".into(),
            kind: Default::default(),
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            status_code: Default::default(),
            status_message: String::new(),
            attributes: vec![],
            resource: std::sync::Arc::new(crate::span::Resource::with_service("api")),
            scope_name: "".into(),
        };
        let r = SpanRef::from_span(&span);
        assert_eq!(r.trace_id, TraceId([1; 16]));
        assert_eq!(r.span_id, SpanId([2; 8]));
        assert_eq!(r.name, "GET /users");
        assert_eq!(r.service, "api");
    }
}
