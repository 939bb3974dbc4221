//! Span summaries of the traces that produced violations (SERVER.md §1 "Violations API";
//! COMPAT.md `GET /api/traces/{traceId}`).
//!
//! In: an evaluated [`Trace`] and the violations it produced. Out: a [`TraceSpans`] — a
//! bounded list of [`SpanSummary`]s that the web UI draws as a waterfall — stored beside the
//! violations, never inside their signed JSON.
//!
//! Bounds: at most [`MAX_SPANS`] spans per trace. Past it the proving spans (trigger and
//! offending spans of the violations) are kept first, then the earliest other spans by start
//! time; `totalSpans` keeps the real count and `truncated` is set. Each summary keeps at most
//! [`MAX_ATTRIBUTES`] span attributes (the first ones, in input order), string values cut at
//! [`MAX_ATTRIBUTE_BYTES`] bytes. Late fragments of a trace already summarized are merged
//! into the stored summary under the same bounds.

use std::collections::{BTreeMap, HashSet};

use betrace_core::{AttrValue, Span, SpanId, Trace, TraceId, Violation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Spans kept per trace.
pub const MAX_SPANS: usize = 200;
/// Span attributes kept per span summary.
pub const MAX_ATTRIBUTES: usize = 8;
/// Longest string attribute value kept in a summary, bytes.
pub const MAX_ATTRIBUTE_BYTES: usize = 128;

/// One span as the waterfall needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanSummary {
    /// Written as 16 lower-case hex digits.
    pub span_id: SpanId,
    /// `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    /// `service.name` of the span's resource, `""` when absent.
    pub service: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    /// Unix nanoseconds.
    pub start_ns: u64,
    /// Unix nanoseconds.
    pub end_ns: u64,
    /// `unset`, `ok` or `error`.
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    /// The first [`MAX_ATTRIBUTES`] span attributes, as JSON values.
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

/// The span summaries of one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSpans {
    /// Written as 32 lower-case hex digits.
    pub trace_id: TraceId,
    /// By start time, then span id; at most [`MAX_SPANS`].
    pub spans: Vec<SpanSummary>,
    /// Spans the trace had (across merged fragments), kept or not.
    pub total_spans: u64,
    /// True when spans were left out past [`MAX_SPANS`].
    pub truncated: bool,
}

impl TraceSpans {
    /// The summaries of `trace`, keeping the spans that `violations` name first.
    pub fn of(trace: &Trace, violations: &[Violation]) -> TraceSpans {
        let proving: HashSet<SpanId> = violations
            .iter()
            .flat_map(|v| v.trigger_spans.iter().chain(&v.offending_spans))
            .map(|r| r.span_id)
            .collect();
        let spans = trace.spans();
        let trace_id = trace.trace_id();
        let mut kept: Vec<SpanSummary> = if spans.len() <= MAX_SPANS {
            spans.iter().map(summary_of).collect()
        } else {
            let mut keep = vec![false; spans.len()];
            let mut n = 0;
            for (i, s) in spans.iter().enumerate() {
                if n < MAX_SPANS && proving.contains(&s.span_id) {
                    keep[i] = true;
                    n += 1;
                }
            }
            for k in keep.iter_mut() {
                if n >= MAX_SPANS {
                    break;
                }
                if !*k {
                    *k = true;
                    n += 1;
                }
            }
            spans
                .iter()
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|(s, _)| summary_of(s))
                .collect()
        };
        sort(&mut kept);
        TraceSpans {
            trace_id,
            truncated: spans.len() > kept.len(),
            total_spans: spans.len() as u64,
            spans: kept,
        }
    }

    /// Adds the spans of a later fragment of the same trace: a span id already kept is
    /// replaced, new ones are added while fewer than [`MAX_SPANS`] are kept.
    pub fn merge(&mut self, later: TraceSpans) {
        self.total_spans = self.total_spans.saturating_add(later.total_spans);
        self.truncated |= later.truncated;
        for s in later.spans {
            if let Some(old) = self.spans.iter_mut().find(|o| o.span_id == s.span_id) {
                *old = s;
                self.total_spans = self.total_spans.saturating_sub(1);
            } else if self.spans.len() < MAX_SPANS {
                self.spans.push(s);
            } else {
                self.truncated = true;
            }
        }
        sort(&mut self.spans);
    }
}

fn sort(spans: &mut [SpanSummary]) {
    spans.sort_by(|a, b| {
        a.start_ns
            .cmp(&b.start_ns)
            .then_with(|| a.span_id.cmp(&b.span_id))
    });
}

fn summary_of(s: &Span) -> SpanSummary {
    SpanSummary {
        span_id: s.span_id,
        parent_span_id: s.parent_span_id,
        name: s.name.clone(),
        service: s.service().to_owned(),
        kind: s.kind.as_str().to_owned(),
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano,
        status: s.status_code.as_str().to_owned(),
        status_message: cut(&s.status_message).to_owned(),
        attributes: s
            .attributes
            .iter()
            .take(MAX_ATTRIBUTES)
            .map(|(k, v)| (k.to_string(), attr_json(v, 0)))
            .collect(),
    }
}

fn cut(s: &str) -> &str {
    if s.len() <= MAX_ATTRIBUTE_BYTES {
        return s;
    }
    let mut end = MAX_ATTRIBUTE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An attribute value as JSON; byte strings as hex, nesting cut at depth 3 (as `null`).
fn attr_json(v: &AttrValue, depth: usize) -> Value {
    if depth > 3 {
        return Value::Null;
    }
    match v {
        AttrValue::Str(s) => Value::String(cut(s).to_owned()),
        AttrValue::Bool(b) => Value::Bool(*b),
        AttrValue::Int(i) => Value::from(*i),
        AttrValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AttrValue::Bytes(b) => Value::String(cut(&hex::encode(b)).to_owned()),
        AttrValue::Array(items) => Value::Array(
            items
                .iter()
                .take(MAX_ATTRIBUTES)
                .map(|i| attr_json(i, depth + 1))
                .collect(),
        ),
        AttrValue::KvList(items) => Value::Object(
            items
                .iter()
                .take(MAX_ATTRIBUTES)
                .map(|(k, i)| (k.to_string(), attr_json(i, depth + 1)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use betrace_core::violation::SpanRef;
    use betrace_core::{Resource, SpanId, SpanKind, StatusCode, TraceId};

    fn span(i: u64, parent: Option<u64>) -> Span {
        Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId((i + 1).to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId((p + 1).to_be_bytes())),
            name: format!("op-{i}"),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_000 + i,
            end_time_unix_nano: 2_000 + i,
            status_code: StatusCode::Error,
            status_message: "é".repeat(100),
            attributes: (0..20)
                .map(|k| {
                    (
                        Arc::from(format!("k{k:02}").as_str()),
                        AttrValue::Str("x".repeat(500).into()),
                    )
                })
                .collect(),
            resource: Arc::new(Resource::default()),
            scope_name: Arc::from(""),
        }
    }

    #[test]
    fn bounded_and_proving_spans_kept() {
        let spans: Vec<Span> = (0..500).map(|i| span(i, i.checked_sub(1))).collect();
        let last = spans[499].span_id;
        let trace = Trace::new(spans);
        let mut v = crate_violation();
        v.offending_spans = vec![SpanRef {
            trace_id: TraceId([7; 16]),
            span_id: last,
            name: "op-499".into(),
            service: String::new(),
        }];
        let t = TraceSpans::of(&trace, std::slice::from_ref(&v));
        assert_eq!(t.spans.len(), MAX_SPANS);
        assert_eq!(t.total_spans, 500);
        assert!(t.truncated);
        assert!(t.spans.iter().any(|s| s.span_id == last));
        assert_eq!(t.spans[0].name, "op-0");
        assert_eq!(t.spans[0].parent_span_id, None);
        assert_eq!(t.spans[1].parent_span_id, Some(t.spans[0].span_id));
        // The stored and served shape: ids as hex text, root parent as null.
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["traceId"], "07".repeat(16));
        assert_eq!(json["spans"][0]["spanId"], t.spans[0].span_id.to_hex());
        assert_eq!(json["spans"][0]["parentSpanId"], Value::Null);
        assert_eq!(
            json["spans"][1]["parentSpanId"],
            t.spans[0].span_id.to_hex()
        );
        assert_eq!(serde_json::from_value::<TraceSpans>(json).unwrap(), t);
        let s = &t.spans[0];
        assert_eq!(s.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(
            s.attributes["k00"].as_str().map(str::len),
            Some(MAX_ATTRIBUTE_BYTES)
        );
        assert!(s.status_message.len() <= MAX_ATTRIBUTE_BYTES);
        assert_eq!((s.kind.as_str(), s.status.as_str()), ("server", "error"));
    }

    #[test]
    fn merge_replaces_and_bounds() {
        let a = TraceSpans::of(&Trace::new((0..150).map(|i| span(i, None)).collect()), &[]);
        let b = TraceSpans::of(
            &Trace::new((100..300).map(|i| span(i, None)).collect()),
            &[],
        );
        let mut m = a;
        m.merge(b);
        assert_eq!(m.spans.len(), MAX_SPANS);
        assert_eq!(m.total_spans, 300);
        assert!(m.truncated);
        assert!(m.spans.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
    }

    fn crate_violation() -> Violation {
        use betrace_core::violation::{ClauseTexts, FailedClause, ViolationParts};
        Violation::new(
            ViolationParts {
                rule_id: "r",
                rule_name: "r",
                expression: "x",
                severity: betrace_core::Severity::High,
                clauses: ClauseTexts::default(),
                trace_id: TraceId([7; 16]),
                failed_clause: FailedClause::Expression,
                trigger_spans: vec![],
                offending_spans: vec![],
                truncated: false,
                completion_reason: betrace_core::CompletionReason::Flush,
                partial: false,
            },
            1,
        )
    }
}
