//! One complete trace, ready for evaluation (ENGINE.md §4).
//!
//! In: the spans of one trace, in any order, possibly with repeated span ids. Out: [`Trace`]:
//! spans deduplicated by span id (the last copy wins), ordered by (start time, span id) — the
//! order of every span list in a violation (DSL.md §7.3) — with parent/child links resolved
//! once so relation tests are index lookups.

use ahash::AHashMap;
use smallvec::SmallVec;

use crate::span::{Span, SpanId, TraceId};

/// Index of a span inside its [`Trace`] (position in [`Trace::spans`]).
pub type SpanIndex = u32;

/// The spans of one trace with links resolved.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    spans: Vec<Span>,
    parent: Vec<Option<SpanIndex>>,
    children: Vec<SmallVec<[SpanIndex; 4]>>,
}

impl Trace {
    /// Builds a trace from spans given in arrival order. A span id seen more than once keeps
    /// its last copy. Spans are reordered by (start time, span id).
    pub fn new(spans: Vec<Span>) -> Trace {
        let mut last: AHashMap<SpanId, usize> = AHashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            last.insert(s.span_id, i);
        }
        let mut spans: Vec<Span> = if last.len() == spans.len() {
            spans
        } else {
            spans
                .into_iter()
                .enumerate()
                .filter(|(i, s)| last.get(&s.span_id) == Some(i))
                .map(|(_, s)| s)
                .collect()
        };
        spans.sort_by(|a, b| {
            (a.start_time_unix_nano, a.span_id).cmp(&(b.start_time_unix_nano, b.span_id))
        });
        let index: AHashMap<SpanId, SpanIndex> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i as SpanIndex))
            .collect();
        let mut parent = Vec::with_capacity(spans.len());
        let mut children: Vec<SmallVec<[SpanIndex; 4]>> = vec![SmallVec::new(); spans.len()];
        for (i, s) in spans.iter().enumerate() {
            let p = s
                .parent_span_id
                .and_then(|pid| index.get(&pid).copied())
                .filter(|&p| p as usize != i);
            if let Some(p) = p {
                children[p as usize].push(i as SpanIndex);
            }
            parent.push(p);
        }
        Trace {
            spans,
            parent,
            children,
        }
    }

    /// The spans, ordered by (start time, span id).
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Number of distinct span ids.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when the trace has no span.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The span at `i`.
    pub fn span(&self, i: SpanIndex) -> &Span {
        &self.spans[i as usize]
    }

    /// The trace id of the first span (all spans of a trace share it), zero when empty.
    pub fn trace_id(&self) -> TraceId {
        self.spans.first().map(|s| s.trace_id).unwrap_or_default()
    }

    /// The parent of span `i` when its parent id names a span of this trace.
    pub fn parent(&self, i: SpanIndex) -> Option<SpanIndex> {
        self.parent[i as usize]
    }

    /// The direct children of span `i`, in span order.
    pub fn children(&self, i: SpanIndex) -> &[SpanIndex] {
        &self.children[i as usize]
    }

    /// Root spans: spans with no parent id (DSL.md §7.15: a span whose parent id is not in
    /// the trace is not a root), in span order.
    pub fn roots(&self) -> impl Iterator<Item = SpanIndex> + '_ {
        self.spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.parent_span_id.is_none())
            .map(|(i, _)| i as SpanIndex)
    }

    /// The earliest root by (start, id), used by `trace.root_name` / `trace.root_service`.
    pub fn root(&self) -> Option<&Span> {
        self.roots().next().map(|i| self.span(i))
    }

    /// `max end − min start` in nanoseconds (DSL.md §3.4 `trace.duration`), 0 when empty;
    /// negative when every span ends before the earliest start, like `span.duration`.
    pub fn duration_nanos(&self) -> i64 {
        let start = self.spans.iter().map(|s| s.start_time_unix_nano).min();
        let end = self.spans.iter().map(|s| s.end_time_unix_nano).max();
        match (start, end) {
            (Some(s), Some(e)) => crate::span::signed_difference(e, s),
            _ => 0,
        }
    }

    /// Gives the spans back, in span order.
    pub fn into_spans(self) -> Vec<Span> {
        self.spans
    }
}

/// Groups spans by trace id into [`Trace`]s, traces in the order their first span appears
/// (spans within a trace are ordered by [`Trace::new`]).
pub fn group_by_trace(spans: Vec<Span>) -> Vec<Trace> {
    let mut position: AHashMap<TraceId, usize> = AHashMap::new();
    let mut groups: Vec<Vec<Span>> = Vec::new();
    for span in spans {
        match position.get(&span.trace_id) {
            Some(&i) => groups[i].push(span),
            None => {
                position.insert(span.trace_id, groups.len());
                groups.push(vec![span]);
            }
        }
    }
    groups.into_iter().map(Trace::new).collect()
}
