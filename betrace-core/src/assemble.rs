//! Streaming trace assembly (ENGINE.md §5).
//!
//! In: batches of [`Span`]s from any number of threads, in any order, spans of one trace
//! possibly spread over many batches. Out: [`CompletedTrace`]s — all buffered spans of one
//! trace id, in arrival order, with the [`CompletionReason`] that released them.
//!
//! A trace is released at the first of:
//!
//! | trigger | setting (default) | reason | returned by |
//! |---|---|---|---|
//! | a root span (no parent, end time set) has arrived and no span arrived for `root_grace` | 7 s | `root_complete` | [`TraceAssembler::poll_expired`] |
//! | no span arrived for `idle_timeout` | 30 s | `idle_timeout` | `poll_expired` |
//! | the first span arrived more than `max_trace_age` ago | 5 min | `max_age` | `poll_expired` |
//! | the trace holds `max_spans_per_trace` spans | 10 000 | `span_cap` | [`TraceAssembler::ingest`] |
//! | more than `max_buffered_spans` spans are buffered: oldest trace (first arrival) first | 1 000 000 | `evicted` | `ingest` |
//! | [`TraceAssembler::flush`] / [`TraceAssembler::shutdown`] | — | `flush` / `shutdown` | those calls |
//!
//! Times are readings of an injectable [`Clock`] taken when spans arrive, never the spans' own
//! timestamps.
//!
//! The defaults follow the exporters in the field: the batch span processor of every
//! OpenTelemetry SDK waits up to 5 s (`OTEL_BSP_SCHEDULE_DELAY` 5000 ms) before it sends, so
//! the spans of a downstream service may arrive 5 s after the root span of its trace;
//! `root_grace` covers that delay plus 2 s for a Collector hop. `idle_timeout` equals the
//! Collector's tail-sampling `decision_wait` (30 s).
//!
//! **Late spans and re-evaluation.** The ids of released traces are remembered for
//! `released_memory` (default 60 s, at most `max_remembered_traces`). A span arriving for a
//! remembered trace id is late: it is counted in `late_spans` and buffered as a new fragment
//! with the next evaluation number ([`CompletedTrace::evaluation`]), released like any trace
//! (by `root_grace` when the earlier part had a root). After a trace was evaluated, its owner
//! may hand its spans back with [`TraceAssembler::retain`]; they are kept for
//! `reevaluate_window` (default 30 s), at most `max_retained_spans` spans in all (oldest
//! trace dropped first). When the late fragment is released and the earlier spans are still
//! kept, it is released together with them as the whole trace, `partial: false`; otherwise
//! on its own, `partial: true`. Traces released by the span cap, by eviction or at shutdown
//! are not kept, and spans past the span cap start a partial fragment: nothing is dropped to
//! enforce the cap.
//!
//! **Accounting.** Every span passed to `ingest` is, at every moment when no call is running,
//! exactly one of: released in a completed trace, buffered, or dropped with a reason (refused
//! by back-pressure, or refused after shutdown):
//! `spans_in == spans_released + spans_buffered + spans_dropped.total()` ([`AssemblerStats`]).
//! Spans kept for re-evaluation are counted apart (`spans_retained`), and a re-released
//! span is not counted as released twice.
//!
//! **Back-pressure.** With `reject_when_full`, a batch that would take the buffer over
//! `max_buffered_spans` is refused whole ([`IngestOutcome::Refused`], for an HTTP 429 or gRPC
//! `RESOURCE_EXHAUSTED`) instead of evicting; a batch larger than the whole buffer is still
//! accepted into an empty buffer (and evicts), so that it cannot be refused forever.
//!
//! **Concurrency.** Traces live in `shards` shards chosen by trace id, each behind its own
//! lock; the global span count is an atomic. Ingest from several threads contends only when
//! spans of the same shard arrive at the same moment.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ahash::AHashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::span::{Span, TraceId};
use crate::trace::Trace;
use crate::violation::CompletionReason;

/// A monotonic time source, in nanoseconds from an arbitrary origin.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current reading; never decreases.
    fn now(&self) -> u64;
}

/// The process's monotonic clock ([`Instant`]), nanoseconds since the clock was created.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to, for deterministic tests. Share it with the
/// assembler through an `Arc`.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start_nanos`.
    pub fn new(start_nanos: u64) -> ManualClock {
        ManualClock {
            nanos: AtomicU64::new(start_nanos),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = nanos_of(by);
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the reading to `nanos`, or leaves it when that would move it backwards.
    pub fn set(&self, nanos: u64) {
        self.nanos.fetch_max(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Settings of a [`TraceAssembler`] (ENGINE.md §5; the server's `trace.*` keys).
///
/// Deserializes from a mapping with these keys, every key optional and unknown keys refused;
/// durations are strings read by [`parse_duration`] (`"2s"`, `"500ms"`, `"1m30s"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssemblerConfig {
    /// Quiet time after a root span arrived before its trace is released. Default 7 s: the
    /// SDKs' 5 s batch delay plus 2 s.
    #[serde(with = "duration_text")]
    pub root_grace: Duration,
    /// Quiet time after which a trace is released without a root. Default 30 s (the
    /// Collector's tail-sampling `decision_wait`).
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// Time after the first span's arrival at which a trace is released regardless. Default
    /// 5 min.
    #[serde(with = "duration_text")]
    pub max_trace_age: Duration,
    /// Spans at which a trace is released at once. Default 10 000; at least 1.
    pub max_spans_per_trace: usize,
    /// Buffered spans above which the oldest traces are evicted (or batches refused). Default
    /// 1 000 000; at least 1.
    pub max_buffered_spans: usize,
    /// Refuse batches instead of evicting when the buffer is full. Default false.
    pub reject_when_full: bool,
    /// Number of shards (independent locks). Default 16; 1 to 4096.
    pub shards: usize,
    /// How long a released trace id is remembered to recognise late spans. Default 60 s.
    #[serde(with = "duration_text")]
    pub released_memory: Duration,
    /// Most released trace ids remembered (spread over the shards). Default 100 000.
    pub max_remembered_traces: usize,
    /// How long the spans of an evaluated trace are kept (see [`TraceAssembler::retain`]) so
    /// that late spans re-open the whole trace. Default 30 s; `0s` keeps nothing (late spans
    /// are then evaluated alone, `partial: true`). Late spans are recognised only while the
    /// trace id is remembered, so a window longer than `released_memory` acts as that.
    #[serde(with = "duration_text")]
    pub reevaluate_window: Duration,
    /// Most spans kept for re-evaluation, all traces together (spread over the shards); the
    /// oldest kept trace goes first. Default 200 000.
    pub max_retained_spans: usize,
}

impl Default for AssemblerConfig {
    fn default() -> AssemblerConfig {
        AssemblerConfig {
            root_grace: Duration::from_secs(7),
            idle_timeout: Duration::from_secs(30),
            max_trace_age: Duration::from_secs(300),
            max_spans_per_trace: 10_000,
            max_buffered_spans: 1_000_000,
            reject_when_full: false,
            shards: 16,
            released_memory: Duration::from_secs(60),
            max_remembered_traces: 100_000,
            reevaluate_window: Duration::from_secs(30),
            max_retained_spans: 200_000,
        }
    }
}

/// A setting of [`AssemblerConfig`] out of its range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid trace assembly setting `{field}`: {message}")]
pub struct AssemblerConfigError {
    pub field: &'static str,
    pub message: String,
}

impl AssemblerConfig {
    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), AssemblerConfigError> {
        let err = |field, message: &str| {
            Err(AssemblerConfigError {
                field,
                message: message.to_owned(),
            })
        };
        if self.max_spans_per_trace == 0 {
            return err("max_spans_per_trace", "must be at least 1");
        }
        if self.max_buffered_spans == 0 {
            return err("max_buffered_spans", "must be at least 1");
        }
        if !(1..=4096).contains(&self.shards) {
            return err("shards", "must be between 1 and 4096");
        }
        Ok(())
    }
}

/// Duration strings for serde: `"1m30s"`, `"250ms"`.
mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a config duration with [`humantime::parse_duration`]: number-and-unit pairs such as
/// `"2s"`, `"500ms"`, `"1m30s"`, `"1.5s"`, `"30d"` (units `ns`, `us`, `ms`, `s`, `m`/`min`,
/// `h`, `d`, `w` and their long names); surrounding whitespace is ignored. The error quotes the
/// text; the caller adds the key or variable it came from.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. `2s` or `500ms`".to_owned());
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration `{t}` ({e}); write e.g. `2s`, `500ms` or `1m30s`"))
}

/// All buffered spans of one trace id, released together.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedTrace {
    pub trace_id: TraceId,
    /// In arrival order, duplicates kept ([`Trace::new`] removes them, the last copy winning).
    pub spans: Vec<Span>,
    pub reason: CompletionReason,
    /// True for a fragment of late spans released without the earlier spans of its trace.
    pub partial: bool,
    /// 1 for the first release of the trace id, n for the n-th (late spans re-opened it).
    /// With `partial: false` and n > 1, `spans` is the whole trace: the spans kept from the
    /// earlier evaluation followed by the late ones.
    pub evaluation: u32,
}

impl CompletedTrace {
    /// The spans as a [`Trace`] ready for evaluation.
    pub fn into_trace(self) -> Trace {
        Trace::new(self.spans)
    }
}

/// Why a batch was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// `reject_when_full` is set and the batch does not fit in `max_buffered_spans`.
    Full,
    /// [`TraceAssembler::shutdown`] was called.
    ShutDown,
}

/// The result of [`TraceAssembler::ingest`].
#[derive(Debug)]
#[must_use = "traces released by the span cap or eviction must be evaluated"]
pub enum IngestOutcome {
    /// Every span was buffered. `completed` holds the traces this call released (span cap,
    /// eviction), oldest first.
    Accepted { completed: Vec<CompletedTrace> },
    /// No span was buffered; they are counted as dropped with `reason` and handed back.
    Refused {
        reason: RefuseReason,
        spans: Vec<Span>,
    },
}

/// Spans that were never released, by reason (ENGINE.md §5: nothing is dropped silently).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpansDropped {
    /// Refused by back-pressure (`reject_when_full`).
    pub refused: u64,
    /// Refused because the assembler was shut down.
    pub shut_down: u64,
}

impl SpansDropped {
    pub fn total(&self) -> u64 {
        self.refused + self.shut_down
    }

    /// `(reason label, count)` pairs, for metrics.
    pub fn by_reason(&self) -> [(&'static str, u64); 2] {
        [("refused", self.refused), ("shutdown", self.shut_down)]
    }
}

/// Traces released, by completion reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracesReleased {
    counts: [u64; CompletionReason::ALL.len()],
}

impl TracesReleased {
    /// Traces released with `reason` (always 0 for `Direct`).
    pub fn get(&self, reason: CompletionReason) -> u64 {
        self.counts[reason_index(reason)]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(reason, count)` for every reason the assembler produces.
    pub fn by_reason(&self) -> impl Iterator<Item = (CompletionReason, u64)> + '_ {
        CompletionReason::ALL
            .into_iter()
            .filter(|r| *r != CompletionReason::Direct)
            .map(|r| (r, self.get(r)))
    }
}

/// A snapshot of the assembler's counters (the server's `betrace_*` metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Spans passed to `ingest`, refused ones included.
    pub spans_in: u64,
    /// Spans handed out in completed traces.
    pub spans_released: u64,
    /// Spans buffered now (gauge).
    pub spans_buffered: u64,
    /// Traces (fragments) buffered now (gauge).
    pub traces_buffered: u64,
    /// Spans that arrived for an already released trace id (buffered into late fragments).
    pub late_spans: u64,
    /// Spans of evaluated traces kept for re-evaluation now (gauge).
    pub spans_retained: u64,
    /// Late fragments released together with the kept spans of their trace.
    pub traces_reevaluated: u64,
    pub spans_dropped: SpansDropped,
    pub traces_released: TracesReleased,
}

fn reason_index(reason: CompletionReason) -> usize {
    CompletionReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Counters {
    spans_in: AtomicU64,
    spans_released: AtomicU64,
    spans_buffered: AtomicU64,
    traces_buffered: AtomicU64,
    late_spans: AtomicU64,
    spans_retained: AtomicU64,
    traces_reevaluated: AtomicU64,
    dropped_refused: AtomicU64,
    dropped_shut_down: AtomicU64,
    traces_released: [AtomicU64; CompletionReason::ALL.len()],
}

/// The settings a shard needs, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Limits {
    root_grace: u64,
    idle_timeout: u64,
    max_trace_age: u64,
    max_spans_per_trace: usize,
    released_memory: u64,
    remembered_per_shard: usize,
    reevaluate_window: u64,
    retained_per_shard: usize,
}

#[derive(Debug)]
struct Pending {
    spans: Vec<Span>,
    /// Global creation order; also tells fragments of one trace id apart.
    seq: u64,
    first_arrival: u64,
    last_arrival: u64,
    root_arrived: bool,
    partial: bool,
    evaluation: u32,
}

impl Pending {
    /// When this trace is due and why, if nothing else arrives.
    fn deadline(&self, l: &Limits) -> (u64, CompletionReason) {
        let mut best = (
            self.last_arrival.saturating_add(l.idle_timeout),
            CompletionReason::IdleTimeout,
        );
        if self.root_arrived {
            let root = self.last_arrival.saturating_add(l.root_grace);
            if root <= best.0 {
                best = (root, CompletionReason::RootComplete);
            }
        }
        let age = self.first_arrival.saturating_add(l.max_trace_age);
        if age < best.0 {
            best = (age, CompletionReason::MaxAge);
        }
        best
    }
}

type Released = (u64, CompletedTrace);

#[derive(Debug, Default)]
struct Shard {
    traces: AHashMap<TraceId, Pending>,
    /// Buffered traces by creation order, for eviction oldest first.
    by_seq: BTreeMap<u64, TraceId>,
    /// `(due, seq, trace id)`: a time at or before which the trace must be looked at. Entries
    /// of released traces go stale and are skipped when they come up.
    timers: BinaryHeap<Reverse<(u64, u64, TraceId)>>,
    /// Released trace id → when and how, for recognising late spans.
    released: AHashMap<TraceId, Remembered>,
    released_order: VecDeque<(u64, TraceId)>,
    /// Spans of evaluated traces kept for re-evaluation.
    retained: AHashMap<TraceId, Retained>,
    /// `(when kept, trace id)`, oldest first; entries of traces no longer kept go stale.
    retained_order: VecDeque<(u64, TraceId)>,
    retained_spans: usize,
}

/// What is remembered of a released trace id.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    at: u64,
    /// Releases so far.
    evaluations: u32,
    had_root: bool,
    /// Its spans may be kept ([`TraceAssembler::retain`]).
    retainable: bool,
}

#[derive(Debug)]
struct Retained {
    at: u64,
    spans: Vec<Span>,
}

impl Shard {
    fn insert(
        &mut self,
        span: Span,
        now: u64,
        l: &Limits,
        next_seq: &AtomicU64,
        c: &Counters,
        out: &mut Vec<Released>,
    ) {
        let tid = span.trace_id;
        let is_root = span.parent_span_id.is_none() && span.end_time_unix_nano != 0;
        let pending = match self.traces.entry(tid) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let p = e.into_mut();
                p.last_arrival = now;
                if is_root && !p.root_arrived {
                    p.root_arrived = true;
                    self.timers
                        .push(Reverse((now.saturating_add(l.root_grace), p.seq, tid)));
                }
                p
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                let prior = self.released.get(&tid).copied();
                let first_check = l.root_grace.min(l.idle_timeout).min(l.max_trace_age);
                self.timers
                    .push(Reverse((now.saturating_add(first_check), seq, tid)));
                self.by_seq.insert(seq, tid);
                c.traces_buffered.fetch_add(1, Ordering::Relaxed);
                e.insert(Pending {
                    spans: Vec::new(),
                    seq,
                    first_arrival: now,
                    last_arrival: now,
                    root_arrived: is_root || prior.is_some_and(|r| r.had_root),
                    partial: prior.is_some(),
                    evaluation: prior.map_or(1, |r| r.evaluations.saturating_add(1)),
                })
            }
        };
        if pending.partial {
            c.late_spans.fetch_add(1, Ordering::Relaxed);
        }
        if pending.spans.len() == pending.spans.capacity() {
            // Grow by a quarter rather than doubling: buffered spans are most of the memory.
            let extra = (pending.spans.len() / 4).max(4);
            pending.spans.reserve_exact(extra);
        }
        pending.spans.push(span);
        if pending.spans.len() >= l.max_spans_per_trace {
            out.extend(self.release(tid, CompletionReason::SpanCap, now, l, c));
        }
    }

    fn release(
        &mut self,
        tid: TraceId,
        reason: CompletionReason,
        now: u64,
        l: &Limits,
        c: &Counters,
    ) -> Option<Released> {
        let p = self.traces.remove(&tid)?;
        self.by_seq.remove(&p.seq);
        let n = p.spans.len() as u64;
        c.spans_buffered.fetch_sub(n, Ordering::Relaxed);
        c.traces_buffered.fetch_sub(1, Ordering::Relaxed);
        c.spans_released.fetch_add(n, Ordering::Relaxed);
        c.traces_released[reason_index(reason)].fetch_add(1, Ordering::Relaxed);
        let mut spans = p.spans;
        let mut partial = p.partial;
        if p.evaluation > 1
            && let Some(kept) = self.unretain(&tid, c)
        {
            let mut all = kept.spans;
            all.append(&mut spans);
            spans = all;
            partial = false;
            c.traces_reevaluated.fetch_add(1, Ordering::Relaxed);
        }
        // Only a whole trace is kept: a partial fragment would pass later for the whole.
        let retainable = l.reevaluate_window > 0
            && !partial
            && !matches!(
                reason,
                CompletionReason::SpanCap | CompletionReason::Evicted | CompletionReason::Shutdown
            );
        self.remember(
            tid,
            Remembered {
                at: now,
                evaluations: p.evaluation,
                had_root: p.root_arrived,
                retainable,
            },
            l,
        );
        Some((
            p.seq,
            CompletedTrace {
                trace_id: tid,
                spans,
                reason,
                partial,
                evaluation: p.evaluation,
            },
        ))
    }

    fn remember(&mut self, tid: TraceId, r: Remembered, l: &Limits) {
        self.released.insert(tid, r);
        self.released_order.push_back((r.at, tid));
        self.forget_old(r.at, l);
    }

    fn unretain(&mut self, tid: &TraceId, c: &Counters) -> Option<Retained> {
        let kept = self.retained.remove(tid)?;
        self.retained_spans -= kept.spans.len();
        c.spans_retained
            .fetch_sub(kept.spans.len() as u64, Ordering::Relaxed);
        Some(kept)
    }

    /// Keeps `spans` of the released trace `tid` (evaluation `evaluation`), within the budget.
    fn retain(
        &mut self,
        tid: TraceId,
        evaluation: u32,
        spans: Vec<Span>,
        now: u64,
        l: &Limits,
        c: &Counters,
    ) -> bool {
        let Some(r) = self.released.get(&tid) else {
            return false;
        };
        if !r.retainable
            || r.evaluations != evaluation
            || spans.is_empty()
            || spans.len() > l.retained_per_shard
        {
            return false;
        }
        let _ = self.unretain(&tid, c);
        while self.retained_spans + spans.len() > l.retained_per_shard {
            let Some((at, old)) = self.retained_order.pop_front() else {
                break;
            };
            if self.retained.get(&old).is_some_and(|k| k.at == at) {
                let _ = self.unretain(&old, c);
            }
        }
        self.retained_spans += spans.len();
        c.spans_retained
            .fetch_add(spans.len() as u64, Ordering::Relaxed);
        self.retained_order.push_back((now, tid));
        self.retained.insert(tid, Retained { at: now, spans });
        true
    }

    fn forget_old(&mut self, now: u64, l: &Limits) {
        while let Some(&(at, tid)) = self.released_order.front() {
            let expired = at.saturating_add(l.released_memory) <= now;
            if !expired && self.released_order.len() <= l.remembered_per_shard {
                break;
            }
            self.released_order.pop_front();
            if self.released.get(&tid).is_some_and(|r| r.at == at) {
                self.released.remove(&tid);
            }
        }
    }

    fn forget_retained(&mut self, now: u64, l: &Limits, c: &Counters) {
        while let Some(&(at, tid)) = self.retained_order.front() {
            let current = self.retained.get(&tid).is_some_and(|k| k.at == at);
            let expired = at.saturating_add(l.reevaluate_window) <= now;
            if current && !expired && self.released.contains_key(&tid) {
                break;
            }
            self.retained_order.pop_front();
            if current {
                let _ = self.unretain(&tid, c);
            }
        }
    }

    fn expire(&mut self, now: u64, l: &Limits, c: &Counters, out: &mut Vec<Released>) {
        while let Some(&Reverse((due, seq, tid))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            let Some(p) = self.traces.get(&tid) else {
                continue;
            };
            if p.seq != seq {
                continue;
            }
            let (deadline, reason) = p.deadline(l);
            if deadline <= now {
                out.extend(self.release(tid, reason, now, l, c));
            } else {
                self.timers.push(Reverse((deadline, seq, tid)));
            }
        }
        self.forget_old(now, l);
        self.forget_retained(now, l, c);
    }

    fn drain(
        &mut self,
        reason: CompletionReason,
        now: u64,
        l: &Limits,
        c: &Counters,
        out: &mut Vec<Released>,
    ) {
        let ids: Vec<TraceId> = self.by_seq.values().copied().collect();
        for tid in ids {
            out.extend(self.release(tid, reason, now, l, c));
        }
        self.timers.clear();
    }
}

/// Buffers spans by trace id and releases complete traces (ENGINE.md §5; see the module
/// docs for the triggers, late spans, accounting and back-pressure). `Send + Sync`: share it
/// between ingest threads and a thread that calls [`poll_expired`](Self::poll_expired)
/// periodically (e.g. every 100 ms).
pub struct TraceAssembler {
    config: AssemblerConfig,
    limits: Limits,
    clock: Arc<dyn Clock>,
    shards: Box<[Mutex<Shard>]>,
    counters: Counters,
    next_seq: AtomicU64,
    closed: AtomicBool,
}

impl fmt::Debug for TraceAssembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceAssembler")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TraceAssembler {
    /// An assembler on the [`SystemClock`].
    pub fn new(config: AssemblerConfig) -> Result<TraceAssembler, AssemblerConfigError> {
        TraceAssembler::with_clock(config, Arc::new(SystemClock::new()))
    }

    /// An assembler reading time from `clock`.
    pub fn with_clock(
        config: AssemblerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<TraceAssembler, AssemblerConfigError> {
        config.validate()?;
        let limits = Limits {
            root_grace: nanos_of(config.root_grace),
            idle_timeout: nanos_of(config.idle_timeout),
            max_trace_age: nanos_of(config.max_trace_age),
            max_spans_per_trace: config.max_spans_per_trace,
            released_memory: nanos_of(config.released_memory),
            remembered_per_shard: (config.max_remembered_traces / config.shards).max(1),
            reevaluate_window: nanos_of(config.reevaluate_window.min(config.released_memory)),
            retained_per_shard: (config.max_retained_spans / config.shards).max(1),
        };
        let shards = (0..config.shards)
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        Ok(TraceAssembler {
            config,
            limits,
            clock,
            shards,
            counters: Counters::default(),
            next_seq: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &AssemblerConfig {
        &self.config
    }

    fn shard_of(&self, tid: &TraceId) -> usize {
        let v = u128::from_le_bytes(tid.0);
        let x = (v as u64) ^ ((v >> 64) as u64);
        let h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((u128::from(h >> 32) * self.shards.len() as u128) >> 32) as usize
    }

    /// Buffers `spans` (any traces, any order). Traces that reach the span cap, and traces
    /// evicted because the buffer went over `max_buffered_spans`, are returned at once; all
    /// others come out of [`poll_expired`](Self::poll_expired), [`flush`](Self::flush) or
    /// [`shutdown`](Self::shutdown).
    pub fn ingest(&self, spans: Vec<Span>) -> IngestOutcome {
        let n = spans.len() as u64;
        let c = &self.counters;
        c.spans_in.fetch_add(n, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            c.dropped_shut_down.fetch_add(n, Ordering::Relaxed);
            return IngestOutcome::Refused {
                reason: RefuseReason::ShutDown,
                spans,
            };
        }
        let max = self.config.max_buffered_spans as u64;
        let before = c.spans_buffered.fetch_add(n, Ordering::AcqRel);
        if self.config.reject_when_full && before > 0 && before.saturating_add(n) > max {
            c.spans_buffered.fetch_sub(n, Ordering::AcqRel);
            c.dropped_refused.fetch_add(n, Ordering::Relaxed);
            return IngestOutcome::Refused {
                reason: RefuseReason::Full,
                spans,
            };
        }

        let now = self.clock.now();
        let mut out = Vec::new();
        if self.shards.len() == 1 {
            let mut shard = self.shards[0].lock();
            for span in spans {
                shard.insert(span, now, &self.limits, &self.next_seq, c, &mut out);
            }
        } else {
            let mut buckets: Vec<Vec<Span>> = Vec::new();
            buckets.resize_with(self.shards.len(), Vec::new);
            for span in spans {
                let i = self.shard_of(&span.trace_id);
                buckets[i].push(span);
            }
            for (i, bucket) in buckets.into_iter().enumerate() {
                if bucket.is_empty() {
                    continue;
                }
                let mut shard = self.shards[i].lock();
                for span in bucket {
                    shard.insert(span, now, &self.limits, &self.next_seq, c, &mut out);
                }
            }
        }
        self.evict_over_limit(now, &mut out);
        IngestOutcome::Accepted {
            completed: in_order(out),
        }
    }

    /// Evicts the oldest traces while more than `max_buffered_spans` spans are buffered.
    fn evict_over_limit(&self, now: u64, out: &mut Vec<Released>) {
        let max = self.config.max_buffered_spans as u64;
        while self.counters.spans_buffered.load(Ordering::Acquire) > max {
            let mut oldest: Option<(u64, usize)> = None;
            for (i, shard) in self.shards.iter().enumerate() {
                let first = shard.lock().by_seq.keys().next().copied();
                if let Some(seq) = first
                    && oldest.is_none_or(|(s, _)| seq < s)
                {
                    oldest = Some((seq, i));
                }
            }
            let Some((seq, i)) = oldest else {
                break;
            };
            let mut shard = self.shards[i].lock();
            if let Some(tid) = shard.by_seq.get(&seq).copied() {
                out.extend(shard.release(
                    tid,
                    CompletionReason::Evicted,
                    now,
                    &self.limits,
                    &self.counters,
                ));
            }
        }
    }

    /// Releases every trace whose root grace, idle timeout or maximum age has passed, oldest
    /// first. Call it periodically; its cost is proportional to the traces that come due, not
    /// to the traces buffered.
    pub fn poll_expired(&self) -> Vec<CompletedTrace> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            shard
                .lock()
                .expire(now, &self.limits, &self.counters, &mut out);
        }
        in_order(out)
    }

    /// Keeps the spans of a trace this assembler released with `evaluation`, after it was
    /// evaluated (pass [`Trace::into_spans`] to avoid a copy), so that late spans re-open the
    /// whole trace (see the module docs). Returns whether they are kept: not when the window is
    /// `0s`, the trace id was forgotten or released again since, it was released by the span
    /// cap, eviction or shutdown, or it alone holds more than the budget of its shard
    /// (`max_retained_spans / shards`). Older kept traces of the shard make room.
    pub fn retain(&self, trace_id: TraceId, evaluation: u32, spans: Vec<Span>) -> bool {
        let now = self.clock.now();
        let i = self.shard_of(&trace_id);
        self.shards[i].lock().retain(
            trace_id,
            evaluation,
            spans,
            now,
            &self.limits,
            &self.counters,
        )
    }

    /// Remembers `ids` as released now, as if this assembler had released them: spans that
    /// arrive for them within `released_memory` are late and form partial fragments. For the
    /// traces an earlier process released at its shutdown, possibly before all their spans
    /// had arrived.
    pub fn remember_released(&self, ids: impl IntoIterator<Item = TraceId>) {
        let now = self.clock.now();
        for tid in ids {
            self.shards[self.shard_of(&tid)].lock().remember(
                tid,
                Remembered {
                    at: now,
                    evaluations: 1,
                    had_root: false,
                    retainable: false,
                },
                &self.limits,
            );
        }
    }

    /// Releases every buffered trace with reason `flush`, oldest first.
    pub fn flush(&self) -> Vec<CompletedTrace> {
        self.drain(CompletionReason::Flush)
    }

    /// Refuses every later batch ([`RefuseReason::ShutDown`]) and releases every buffered trace
    /// with reason `shutdown`, oldest first. A batch being ingested by another thread at the
    /// same moment may still be buffered after this returns: stop ingest first, or
    /// [`flush`](Self::flush) afterwards.
    pub fn shutdown(&self) -> Vec<CompletedTrace> {
        self.closed.store(true, Ordering::Release);
        self.drain(CompletionReason::Shutdown)
    }

    fn drain(&self, reason: CompletionReason) -> Vec<CompletedTrace> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            shard
                .lock()
                .drain(reason, now, &self.limits, &self.counters, &mut out);
        }
        in_order(out)
    }

    /// A snapshot of the counters. Taken while other threads ingest, the numbers may be from
    /// slightly different moments.
    pub fn stats(&self) -> AssemblerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        let mut traces_released = TracesReleased::default();
        for (slot, counter) in traces_released.counts.iter_mut().zip(&c.traces_released) {
            *slot = get(counter);
        }
        AssemblerStats {
            spans_in: get(&c.spans_in),
            spans_released: get(&c.spans_released),
            spans_buffered: get(&c.spans_buffered),
            traces_buffered: get(&c.traces_buffered),
            late_spans: get(&c.late_spans),
            spans_retained: get(&c.spans_retained),
            traces_reevaluated: get(&c.traces_reevaluated),
            spans_dropped: SpansDropped {
                refused: get(&c.dropped_refused),
                shut_down: get(&c.dropped_shut_down),
            },
            traces_released,
        }
    }
}

fn in_order(mut out: Vec<Released>) -> Vec<CompletedTrace> {
    out.sort_by_key(|(seq, _)| *seq);
    out.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Resource, SpanId};

    const S: u64 = 1_000_000_000;

    fn span(trace: u8, id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: format!("s{id}"),
            kind: Default::default(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            status_code: Default::default(),
            status_message: String::new(),
            attributes: vec![],
            resource: Arc::new(Resource::with_service("svc")),
            scope_name: "".into(),
        }
    }

    /// The timings the assertions below are written for.
    fn classic() -> AssemblerConfig {
        AssemblerConfig {
            root_grace: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            max_trace_age: Duration::from_secs(60),
            ..Default::default()
        }
    }

    fn setup(config: AssemblerConfig) -> (Arc<ManualClock>, TraceAssembler) {
        let clock = Arc::new(ManualClock::new(1_000 * S));
        let a = TraceAssembler::with_clock(config, clock.clone()).unwrap();
        (clock, a)
    }

    fn accepted(o: IngestOutcome) -> Vec<CompletedTrace> {
        match o {
            IngestOutcome::Accepted { completed } => completed,
            IngestOutcome::Refused { reason, .. } => panic!("refused: {reason:?}"),
        }
    }

    fn ids(t: &CompletedTrace) -> Vec<u8> {
        t.spans.iter().map(|s| s.span_id.0[0]).collect()
    }

    fn check_invariant(a: &TraceAssembler) {
        let s = a.stats();
        assert_eq!(
            s.spans_in,
            s.spans_released + s.spans_buffered + s.spans_dropped.total(),
            "{s:?}"
        );
    }

    #[test]
    fn root_complete_after_grace() {
        let (clock, a) = setup(classic());
        assert!(accepted(a.ingest(vec![span(1, 2, Some(1))])).is_empty());
        clock.advance(Duration::from_millis(500));
        assert!(accepted(a.ingest(vec![span(1, 1, None)])).is_empty());
        clock.advance(Duration::from_millis(1999));
        assert!(a.poll_expired().is_empty());
        // A child arriving resets the grace.
        assert!(accepted(a.ingest(vec![span(1, 3, Some(1))])).is_empty());
        clock.advance(Duration::from_millis(1999));
        assert!(a.poll_expired().is_empty());
        clock.advance(Duration::from_millis(1));
        let out = a.poll_expired();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, CompletionReason::RootComplete);
        assert!(!out[0].partial);
        assert_eq!(ids(&out[0]), [2, 1, 3]);
        let s = a.stats();
        assert_eq!(s.traces_released.get(CompletionReason::RootComplete), 1);
        assert_eq!(s.spans_released, 3);
        assert_eq!(s.spans_buffered, 0);
        assert_eq!(s.traces_buffered, 0);
        check_invariant(&a);
    }

    #[test]
    fn remembered_trace_ids_make_partial_fragments() {
        let (clock, a) = setup(classic());
        let remembered = span(7, 1, None).trace_id;
        a.remember_released([remembered]);
        let _ = a.ingest(vec![span(7, 1, None), span(8, 1, None)]);
        clock.advance(Duration::from_secs(3));
        let out = a.poll_expired();
        let partial: Vec<bool> = out.iter().map(|t| t.partial).collect();
        assert_eq!(partial, [true, false]);
        assert_eq!(a.stats().late_spans, 1);
        // Forgotten after `released_memory`.
        a.remember_released([span(9, 1, None).trace_id]);
        clock.advance(Duration::from_secs(61));
        let _ = a.poll_expired();
        let _ = a.ingest(vec![span(9, 1, None)]);
        clock.advance(Duration::from_secs(3));
        assert!(!a.poll_expired()[0].partial);
    }

    #[test]
    fn root_without_end_time_has_not_ended() {
        let (clock, a) = setup(classic());
        let mut root = span(1, 1, None);
        root.end_time_unix_nano = 0;
        let _ = a.ingest(vec![root]);
        clock.advance(Duration::from_secs(3));
        assert!(a.poll_expired().is_empty());
        clock.advance(Duration::from_secs(7));
        let out = a.poll_expired();
        assert_eq!(out[0].reason, CompletionReason::IdleTimeout);
    }

    #[test]
    fn idle_timeout_without_root() {
        let (clock, a) = setup(classic());
        let _ = a.ingest(vec![span(1, 2, Some(1))]);
        clock.advance(Duration::from_secs(9));
        let _ = a.ingest(vec![span(1, 3, Some(1))]);
        clock.advance(Duration::from_secs(9));
        assert!(a.poll_expired().is_empty());
        clock.advance(Duration::from_secs(1));
        let out = a.poll_expired();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, CompletionReason::IdleTimeout);
        assert_eq!(ids(&out[0]), [2, 3]);
        check_invariant(&a);
    }

    #[test]
    fn max_age_for_a_trace_that_never_goes_quiet() {
        let (clock, a) = setup(classic());
        for i in 0..60u8 {
            let _ = a.ingest(vec![span(1, i + 2, Some(1))]);
            clock.advance(Duration::from_secs(1));
            if i < 59 {
                assert!(a.poll_expired().is_empty(), "released early at {i}");
            }
        }
        let out = a.poll_expired();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, CompletionReason::MaxAge);
        assert_eq!(out[0].spans.len(), 60);
    }

    #[test]
    fn span_cap_releases_at_once_and_continues_as_partial_fragment() {
        let (clock, a) = setup(AssemblerConfig {
            max_spans_per_trace: 3,
            ..classic()
        });
        let out = accepted(a.ingest((1..=5).map(|i| span(1, i, Some(9))).collect()));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, CompletionReason::SpanCap);
        assert!(!out[0].partial);
        assert_eq!(ids(&out[0]), [1, 2, 3]);
        let out = accepted(a.ingest(vec![span(1, 6, Some(9))]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, CompletionReason::SpanCap);
        assert!(out[0].partial);
        assert_eq!(ids(&out[0]), [4, 5, 6]);
        let _ = a.ingest(vec![span(1, 7, Some(9))]);
        clock.advance(Duration::from_secs(10));
        let out = a.poll_expired();
        assert_eq!(out.len(), 1);
        assert!(out[0].partial);
        assert_eq!(out[0].reason, CompletionReason::IdleTimeout);
        let s = a.stats();
        assert_eq!(s.late_spans, 4);
        assert_eq!(s.traces_released.get(CompletionReason::SpanCap), 2);
        check_invariant(&a);
    }

    #[test]
    fn eviction_releases_oldest_first_across_shards() {
        let (clock, a) = setup(AssemblerConfig {
            max_buffered_spans: 4,
            shards: 4,
            ..classic()
        });
        for t in 1..=4u8 {
            let _ = a.ingest(vec![span(t, 1, Some(0))]);
            clock.advance(Duration::from_millis(1));
        }
        // Traces 1..=4 hold one span each: full, nothing evicted.
        assert_eq!(a.stats().spans_buffered, 4);
        let out = accepted(a.ingest(vec![span(5, 1, Some(0)), span(5, 2, Some(0))]));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|t| t.reason == CompletionReason::Evicted));
        assert_eq!(out[0].trace_id, TraceId([1; 16]));
        assert_eq!(out[1].trace_id, TraceId([2; 16]));
        assert_eq!(a.stats().spans_buffered, 4);
        assert_eq!(a.stats().traces_released.get(CompletionReason::Evicted), 2);
        check_invariant(&a);
    }

    #[test]
    fn reject_when_full_refuses_whole_batches() {
        let (_clock, a) = setup(AssemblerConfig {
            max_buffered_spans: 3,
            reject_when_full: true,
            ..classic()
        });
        assert!(accepted(a.ingest(vec![span(1, 1, Some(0)), span(1, 2, Some(0))])).is_empty());
        match a.ingest(vec![span(2, 1, Some(0)), span(2, 2, Some(0))]) {
            IngestOutcome::Refused { reason, spans } => {
                assert_eq!(reason, RefuseReason::Full);
                assert_eq!(spans.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(accepted(a.ingest(vec![span(2, 1, Some(0))])).is_empty());
        let s = a.stats();
        assert_eq!(s.spans_dropped.refused, 2);
        assert_eq!(s.spans_buffered, 3);
        check_invariant(&a);
        // Into an empty buffer, even an oversized batch is accepted (and evicts).
        assert_eq!(a.flush().len(), 2);
        let out = accepted(a.ingest((0..5).map(|i| span(3 + i, 1, Some(0))).collect()));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|t| t.reason == CompletionReason::Evicted));
        check_invariant(&a);
    }

    #[test]
    fn late_spans_form_partial_fragments_until_forgotten() {
        let (clock, a) = setup(AssemblerConfig {
            released_memory: Duration::from_secs(30),
            ..classic()
        });
        let _ = a.ingest(vec![span(1, 1, None)]);
        clock.advance(Duration::from_secs(2));
        let out = a.poll_expired();
        assert_eq!(out[0].reason, CompletionReason::RootComplete);
        let _ = a.ingest(vec![span(1, 2, Some(1))]);
        assert_eq!(a.stats().late_spans, 1);
        let out = a.flush();
        assert_eq!(out.len(), 1);
        assert!(out[0].partial);
        assert_eq!(out[0].reason, CompletionReason::Flush);
        // After `released_memory` the id is forgotten: a new trace, not partial.
        clock.advance(Duration::from_secs(31));
        assert!(a.poll_expired().is_empty());
        let _ = a.ingest(vec![span(1, 3, Some(1))]);
        let out = a.flush();
        assert!(!out[0].partial);
        assert_eq!(a.stats().late_spans, 1);
    }

    #[test]
    fn late_spans_reopen_the_kept_trace() {
        let (clock, a) = setup(classic());
        let _ = a.ingest(vec![span(1, 1, None), span(1, 2, Some(1))]);
        clock.advance(Duration::from_secs(2));
        let out = a.poll_expired();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].evaluation, 1);
        assert!(a.retain(out[0].trace_id, 1, out[0].spans.clone()));
        assert_eq!(a.stats().spans_retained, 2);
        // A late child: the earlier part had a root, so root_grace applies.
        let _ = a.ingest(vec![span(1, 3, Some(1))]);
        clock.advance(Duration::from_millis(1999));
        assert!(a.poll_expired().is_empty());
        clock.advance(Duration::from_millis(1));
        let out = a.poll_expired();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, CompletionReason::RootComplete);
        assert_eq!(out[0].evaluation, 2);
        assert!(!out[0].partial, "released with the kept spans");
        assert_eq!(ids(&out[0]), [1, 2, 3]);
        let s = a.stats();
        assert_eq!(s.spans_retained, 0);
        assert_eq!(s.traces_reevaluated, 1);
        assert_eq!(s.spans_released, 3, "kept spans are not released twice");
        check_invariant(&a);
        // Evaluation 1 is over: its spans are no longer accepted.
        assert!(!a.retain(out[0].trace_id, 1, out[0].spans.clone()));
        assert!(a.retain(out[0].trace_id, 2, out[0].spans.clone()));
    }

    #[test]
    fn late_spans_without_kept_spans_are_a_partial_fragment() {
        let (clock, a) = setup(classic());
        let _ = a.ingest(vec![span(1, 1, None)]);
        clock.advance(Duration::from_secs(2));
        assert_eq!(a.poll_expired().len(), 1);
        let _ = a.ingest(vec![span(1, 3, Some(1))]);
        clock.advance(Duration::from_secs(2));
        let out = a.poll_expired();
        assert_eq!(out[0].evaluation, 2);
        assert!(out[0].partial);
        assert_eq!(ids(&out[0]), [3]);
        // Its spans are not the whole trace: not kept.
        assert!(!a.retain(out[0].trace_id, 2, out[0].spans.clone()));
    }

    #[test]
    fn kept_spans_are_bounded_by_window_and_budget() {
        let (clock, a) = setup(AssemblerConfig {
            shards: 1,
            max_retained_spans: 3,
            reevaluate_window: Duration::from_secs(5),
            ..classic()
        });
        let _ = a.ingest(vec![span(1, 1, None), span(1, 2, Some(1))]);
        let _ = a.ingest(vec![span(2, 1, None), span(2, 2, Some(1))]);
        let _ = a.ingest(vec![span(3, 1, None); 4]);
        let out = a.flush();
        assert_eq!(out.len(), 3);
        assert!(a.retain(out[0].trace_id, 1, out[0].spans.clone()));
        // Trace 2 does not fit beside trace 1: trace 1, the oldest, makes room.
        assert!(a.retain(out[1].trace_id, 1, out[1].spans.clone()));
        assert_eq!(a.stats().spans_retained, 2);
        // Larger than the whole budget: not kept.
        assert!(!a.retain(out[2].trace_id, 1, out[2].spans.clone()));
        let _ = a.ingest(vec![span(1, 3, Some(1))]);
        let again = a.flush();
        assert!(again[0].partial, "trace 1 was dropped to make room");
        // After the window, trace 2's spans are gone.
        clock.advance(Duration::from_secs(5));
        assert!(a.poll_expired().is_empty());
        assert_eq!(a.stats().spans_retained, 0);
        let _ = a.ingest(vec![span(2, 3, Some(1))]);
        assert!(a.flush()[0].partial);
        check_invariant(&a);
    }

    #[test]
    fn capped_and_evicted_traces_are_not_kept() {
        let (_clock, a) = setup(AssemblerConfig {
            max_spans_per_trace: 2,
            ..classic()
        });
        let out = accepted(a.ingest(vec![span(1, 1, None), span(1, 2, Some(1))]));
        assert_eq!(out[0].reason, CompletionReason::SpanCap);
        assert!(!a.retain(out[0].trace_id, 1, out[0].spans.clone()));
        let (_clock, a) = setup(AssemblerConfig {
            reevaluate_window: Duration::ZERO,
            ..classic()
        });
        let _ = a.ingest(vec![span(1, 1, None)]);
        let out = a.flush();
        assert!(!a.retain(out[0].trace_id, 1, out[0].spans.clone()));
    }

    #[test]
    fn remembered_ids_are_bounded() {
        let (_clock, a) = setup(AssemblerConfig {
            shards: 1,
            max_remembered_traces: 2,
            ..classic()
        });
        for t in 1..=3u8 {
            let _ = a.ingest(vec![span(t, 1, None)]);
        }
        assert_eq!(a.flush().len(), 3);
        // Trace 1 was forgotten (only the last two are remembered).
        let _ = a.ingest(vec![span(1, 2, Some(1)), span(3, 2, Some(1))]);
        let out = a.flush();
        assert_eq!(out.len(), 2);
        assert!(!out[0].partial);
        assert!(out[1].partial);
    }

    #[test]
    fn flush_and_shutdown() {
        let (_clock, a) = setup(classic());
        let _ = a.ingest(vec![span(1, 1, None), span(2, 1, None)]);
        let out = a.flush();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].trace_id, TraceId([1; 16]), "oldest first");
        assert!(out.iter().all(|t| t.reason == CompletionReason::Flush));
        let _ = a.ingest(vec![span(3, 1, None)]);
        let out = a.shutdown();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reason, CompletionReason::Shutdown);
        match a.ingest(vec![span(4, 1, None)]) {
            IngestOutcome::Refused { reason, .. } => assert_eq!(reason, RefuseReason::ShutDown),
            other => panic!("{other:?}"),
        }
        let s = a.stats();
        assert_eq!(s.spans_dropped.shut_down, 1);
        assert_eq!(s.traces_released.total(), 3);
        check_invariant(&a);
    }

    #[test]
    fn stale_timers_do_not_release_a_new_fragment_early() {
        let (clock, a) = setup(classic());
        let _ = a.ingest(vec![span(1, 1, Some(0))]);
        assert_eq!(a.flush().len(), 1);
        clock.advance(Duration::from_secs(9));
        let _ = a.ingest(vec![span(1, 2, Some(0))]);
        // The first fragment's timers come due now; the new fragment is not idle yet.
        clock.advance(Duration::from_secs(2));
        assert!(a.poll_expired().is_empty());
        clock.advance(Duration::from_secs(8));
        let out = a.poll_expired();
        assert_eq!(out.len(), 1);
        assert_eq!(ids(&out[0]), [2]);
    }

    #[test]
    fn config_validation_and_serde() {
        let bad = AssemblerConfig {
            shards: 0,
            ..Default::default()
        };
        let e = TraceAssembler::new(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid trace assembly setting `shards`: must be between 1 and 4096"
        );
        assert!(
            TraceAssembler::new(AssemblerConfig {
                max_spans_per_trace: 0,
                ..Default::default()
            })
            .is_err()
        );
        let c: AssemblerConfig = serde_json::from_str(
            r#"{"root_grace": "100ms", "idle_timeout": "1m30s", "shards": 2}"#,
        )
        .unwrap();
        assert_eq!(c.root_grace, Duration::from_millis(100));
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.max_trace_age, Duration::from_secs(300));
        assert_eq!(c.shards, 2);
        let e =
            serde_json::from_str::<AssemblerConfig>(r#"{"root_grace": "5 parsecs"}"#).unwrap_err();
        assert!(
            e.to_string().contains("invalid duration `5 parsecs`"),
            "{e}"
        );
        let e = serde_json::from_str::<AssemblerConfig>(r#"{"idle_timeot": "5s"}"#).unwrap_err();
        assert!(e.to_string().contains("idle_timeot"), "{e}");
        let text = serde_json::to_string(&AssemblerConfig::default()).unwrap();
        assert!(text.contains(r#""root_grace":"7s""#), "{text}");
        assert!(text.contains(r#""reevaluate_window":"30s""#), "{text}");

        assert_eq!(
            serde_json::from_str::<AssemblerConfig>(&text).unwrap(),
            AssemblerConfig::default()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("1h2m3s4ms5us6ns"),
            Ok(Duration::new(3723, 4_005_006))
        );
        assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "1..5s",
            "-1s",
            "1.s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5 minutes"), Ok(Duration::from_secs(300)));
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(120),
            Duration::ZERO,
            Duration::new(3723, 4_005_006),
        ] {
            let text = humantime::format_duration(d).to_string();
            assert_eq!(parse_duration(&text), Ok(d), "{text}");
        }
    }

    #[test]
    fn shard_choice_is_in_range_and_spreads() {
        let (_c, a) = setup(AssemblerConfig {
            shards: 7,
            ..Default::default()
        });
        let mut hits = [0usize; 7];
        for i in 0..7000u32 {
            let mut id = [0u8; 16];
            id[12..].copy_from_slice(&i.to_be_bytes());
            hits[a.shard_of(&TraceId(id))] += 1;
        }
        assert!(hits.iter().all(|&h| h > 700), "{hits:?}");
    }
}
