//! Ingest → trace assembly → evaluation → storage (SERVER.md §1 "Ingest", ENGINE.md §5).
//!
//! In: decoded [`Span`]s from any receiver (OTLP/HTTP, OTLP/gRPC, `/v1/spans`). Out: signed
//! violations in the [`Store`], counted in [`Metrics`], and a wake-up for the exporter.
//!
//! Violation spans of BeTrace's own exporter ([`export::is_own_violation`]) are dropped first
//! and counted in `betrace_spans_ignored_total{reason="own_violation"}`: evaluating them would
//! make violations of violations, without end, when the exported spans come back through a
//! shared Collector. The other spans get the attribute limits applied (extra attributes dropped, long values truncated,
//! both counted), then go into the [`StreamEngine`] (`Executor::Workers`), the one streaming
//! driver of BeTrace. Traces its [`TraceAssembler`] releases — on ingest (span cap, eviction),
//! from the background tick every 100 ms (root complete, idle, age), on [`Pipeline::flush`]
//! and on [`Pipeline::shutdown`] — are queued for a pool of evaluation threads that evaluate
//! them against the rule set in force at that moment; the [`Recorder`] sink stores the
//! violations, with the span summaries of each trace that produced one ([`TraceSpans`]).
//! Back-pressure: a batch is refused ([`IngestError::Backpressure`], HTTP 429 /
//! gRPC `RESOURCE_EXHAUSTED`) when the assembler refuses it (`trace.reject_when_full`) or
//! when the spans queued for evaluation exceed `trace.max_buffered_spans`, so memory stays
//! bounded by twice the buffer plus the spans kept for re-evaluation
//! (`trace.max_retained_spans`). Every span received is counted as ignored, rejected,
//! buffered, queued or evaluated.
//!
//! **Re-evaluation.** After a trace is evaluated and its violations stored, its spans go back
//! to the assembler ([`TraceAssembler::retain`]) for `trace.reevaluate_window`. When late
//! spans re-open the whole trace (evaluation n > 1, not partial), its fresh violations are
//! reconciled with the live stored violations of the trace ([`Sink::earlier_violations`],
//! [`betrace_core::violation::reconcile`]): an unchanged
//! finding adds nothing, a changed one supersedes the earlier violation, and a rule no longer
//! violated gets a retraction record. Records of a re-evaluation are signed again; stored
//! records are never rewritten (storage marks them `superseded` or `retracted`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use betrace_core::assemble::{RefuseReason, TraceAssembler};
use betrace_core::engine::{RuleSet, now_unix_nanos};
use betrace_core::stream::{Evaluated, Executor, Refused, Sink, StreamEngine};
use betrace_core::{AttrValue, Span, TraceId, Violation};
use parking_lot::Mutex;

use super::config::Limits;
use super::export;
use super::metrics::{CompletionLabel, Metrics, ReasonLabel, RuleLabel, ViolationLabel};
use super::spool::{RecordKind, Spool, TraceCounts, trace_counts};
use super::storage::{Store, ViolationQuery};
use super::summary::TraceSpans;

/// Why a batch of spans was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The trace buffer is full and evaluation cannot keep up; retry later.
    #[error("the trace buffer is full; retry later")]
    Backpressure,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Storage or the ingest spool cannot be written (e.g. the disk is full); retry later.
    #[error("storage is failing (violations cannot be stored or the spool written); retry later")]
    StorageUnavailable,
}

/// Violations whose store failed, with the traces they came from, held for a retry.
#[derive(Debug)]
struct Held {
    violations: Vec<Violation>,
    summaries: Vec<TraceSpans>,
    traces: TraceCounts,
}

/// Time between two store retries while storage fails.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Longest wait of [`Pipeline::flush`].
const FLUSH_WAIT: Duration = Duration::from_secs(60);

/// Longest wait of [`Pipeline::shutdown`] for the evaluation of the buffered traces.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(120);

/// The settings of a [`Pipeline`].
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub limits: Limits,
    /// `storage.max_violations`.
    pub max_violations: u64,
    /// `storage.violation_retention`.
    pub retention: Duration,
    /// `storage.retry_queue_violations`: violations held in memory while storage fails.
    pub retry_queue_violations: usize,
    /// `server.evaluation_workers`.
    pub eval_workers: usize,
}

/// The sink of the server's [`StreamEngine`]: metrics, span summaries, storage (with the
/// retry queue while it fails), the spool's bookkeeping, the exporter's wake-up, and the
/// stored violations a re-evaluation is reconciled with.
#[derive(Debug)]
pub struct Recorder {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    spool: Option<Spool>,
    violations_stored: Arc<tokio::sync::Notify>,
    /// Violations waiting for a retry, oldest first, and their count.
    held: Mutex<(VecDeque<Held>, usize)>,
    held_limit: usize,
    /// A store failed and its violations are held.
    store_failing: AtomicBool,
    /// The last spool write failed.
    spool_failing: AtomicBool,
    last_retry: Mutex<Option<Instant>>,
}

/// The ingest and evaluation pipeline.
#[derive(Debug)]
pub struct Pipeline {
    engine: Arc<StreamEngine<Recorder>>,
    limits: Limits,
    ticking: AtomicBool,
    ticker: Mutex<Option<JoinHandle<()>>>,
    /// `(storage.max_violations, storage.violation_retention in ns)`.
    retention: (u64, u64),
}

impl Pipeline {
    /// A pipeline evaluating with the set in `rules` (swapped by the rule registry) on
    /// `config.eval_workers` threads; `spool` keeps every accepted request until its traces
    /// are stored. Call [`Pipeline::start`] to run its threads.
    pub fn new(
        assembler: TraceAssembler,
        rules: Arc<ArcSwap<RuleSet>>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        spool: Option<Spool>,
        config: PipelineConfig,
    ) -> Pipeline {
        let recorder = Recorder {
            store,
            metrics,
            spool,
            violations_stored: Arc::new(tokio::sync::Notify::new()),
            held: Mutex::new((VecDeque::new(), 0)),
            held_limit: config.retry_queue_violations,
            store_failing: AtomicBool::new(false),
            spool_failing: AtomicBool::new(false),
            last_retry: Mutex::new(None),
        };
        Pipeline {
            engine: Arc::new(StreamEngine::with_sink(
                rules,
                assembler,
                recorder,
                Executor::Workers(config.eval_workers),
            )),
            limits: config.limits,
            ticking: AtomicBool::new(false),
            ticker: Mutex::new(None),
            retention: (
                config.max_violations,
                u64::try_from(config.retention.as_nanos()).unwrap_or(u64::MAX),
            ),
        }
    }

    fn recorder(&self) -> &Recorder {
        self.engine.sink()
    }

    /// Why storage is failing, or `None` when it works (`/v1/ready`).
    pub fn storage_problem(&self) -> Option<&'static str> {
        self.recorder().storage_problem()
    }

    /// Remembers the traces the previous process evaluated at its shutdown within the
    /// assembler's `released_memory`, so that their spans arriving now are evaluated as
    /// partial fragments (`"partial": true`) rather than as whole traces.
    pub fn resume_after_shutdown(&self) {
        let assembler = self.engine.assembler();
        let memory =
            u64::try_from(assembler.config().released_memory.as_nanos()).unwrap_or(u64::MAX);
        let since = now_unix_nanos().saturating_sub(memory) as i64;
        match self.recorder().store.shutdown_traces_since(since) {
            Ok(ids) => {
                let n = ids.len();
                assembler.remember_released(ids);
                if n > 0 {
                    tracing::info!(
                        traces = n,
                        "later spans of traces evaluated at the last shutdown will be partial fragments"
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the traces evaluated at the last shutdown failed")
            }
        }
    }

    /// Starts the evaluation threads and the 100 ms tick.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        self.engine.start()?;
        self.ticking.store(true, Ordering::Release);
        let me = Arc::clone(self);
        *self.ticker.lock() = Some(
            std::thread::Builder::new()
                .name("betrace-tick".into())
                .spawn(move || me.tick_loop())?,
        );
        Ok(())
    }

    /// Notified after violations were stored (wakes the exporter).
    pub fn violations_stored(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.recorder().violations_stored)
    }

    pub fn assembler(&self) -> &TraceAssembler {
        self.engine.assembler()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Brings the assembler's counters and the evaluation queue's gauge up to date (before a
    /// scrape).
    pub fn sync_metrics(&self) {
        let m = &self.recorder().metrics;
        m.sync_assembler(&self.engine.assembler().stats());
        m.pending_evaluation_spans
            .set(i64::try_from(self.engine.pending_spans()).unwrap_or(i64::MAX));
    }

    /// Buffers a batch of decoded spans (counted as received by the caller, [`super::admit`]);
    /// `raw` is the request body (`kind`, bytes after gzip) for the spool, when there is one,
    /// written before the spans are buffered.
    pub fn ingest(
        &self,
        mut spans: Vec<Span>,
        raw: Option<(RecordKind, &[u8])>,
    ) -> Result<(), IngestError> {
        let rec = self.recorder();
        let before = spans.len();
        spans.retain(|s| !export::is_own_violation(s));
        let n = spans.len();
        if n < before {
            rec.metrics
                .spans_ignored
                .get_or_create(&ReasonLabel {
                    reason: "own_violation".to_owned(),
                })
                .inc_by((before - n) as u64);
        }
        if n == 0 {
            return Ok(());
        }
        if rec.store_failing.load(Ordering::Acquire) {
            rec.metrics.rejected("storage", n);
            return Err(IngestError::StorageUnavailable);
        }
        if self.engine.saturated() {
            rec.metrics.rejected("backpressure", n);
            return Err(IngestError::Backpressure);
        }
        self.apply_limits(&mut spans);
        let spooled = match (&rec.spool, raw) {
            (Some(spool), Some((kind, body))) => {
                let traces = trace_counts(spans.iter().map(|s| &s.trace_id));
                match spool.append(kind, body, &traces) {
                    Ok(seg) => {
                        if rec.spool_failing.swap(false, Ordering::AcqRel) {
                            tracing::info!("the ingest spool can be written again");
                            rec.set_health();
                        }
                        Some((spool, seg, traces))
                    }
                    Err(e) => {
                        if !rec.spool_failing.swap(true, Ordering::AcqRel) {
                            tracing::error!(error = %e, "the ingest spool cannot be written; ingest answers 503 until it can");
                            rec.set_health();
                        }
                        rec.metrics.spool_write_failures.inc();
                        rec.metrics.rejected("storage", n);
                        return Err(IngestError::StorageUnavailable);
                    }
                }
            }
            _ => None,
        };
        match self.engine.ingest(spans) {
            Ok(_) => Ok(()),
            Err(Refused { reason, .. }) => {
                if let Some((spool, seg, traces)) = spooled {
                    spool.untrack(seg, &traces);
                }
                match reason {
                    RefuseReason::Full => {
                        rec.metrics.rejected("backpressure", n);
                        Err(IngestError::Backpressure)
                    }
                    RefuseReason::ShutDown => {
                        rec.metrics.rejected("shutdown", n);
                        Err(IngestError::ShuttingDown)
                    }
                }
            }
        }
    }

    /// Feeds the requests left in the spool by an earlier run back into the trace buffer
    /// (before the listeners open). Returns the spans replayed.
    pub fn replay(&self) -> u64 {
        let rec = self.recorder();
        let Some(spool) = &rec.spool else {
            return 0;
        };
        let mut total = 0u64;
        for seg in spool.leftover() {
            let records = match spool.read_segment(seg) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(segment = seg, error = %e, "spool: cannot read a segment; it is kept");
                    continue;
                }
            };
            let done = spool.done_marks(seg);
            for (offset, r) in records {
                let decoded = match r.kind {
                    RecordKind::OtlpProtobuf => {
                        betrace_core::decode_otlp_protobuf(&r.body).map_err(|e| e.to_string())
                    }
                    RecordKind::OtlpJson => {
                        betrace_core::decode_otlp_json(&r.body).map_err(|e| e.to_string())
                    }
                    RecordKind::SimpleJson => serde_json::from_slice(&r.body)
                        .map_err(|e| e.to_string())
                        .and_then(|v| {
                            betrace_core::decode_simple_json(&v).map_err(|e| e.to_string())
                        }),
                };
                let mut spans = match decoded {
                    Ok(mut d) => {
                        // Traces stored before the stop, from this record on: not again.
                        d.spans.retain(|s| {
                            !export::is_own_violation(s)
                                && done.get(&s.trace_id).is_none_or(|&at| offset >= at)
                        });
                        d.spans
                    }
                    Err(e) => {
                        tracing::warn!(segment = seg, error = %e, "spool: a record no longer decodes; skipped");
                        continue;
                    }
                };
                if spans.is_empty() {
                    continue;
                }
                self.apply_limits(&mut spans);
                let traces = trace_counts(spans.iter().map(|s| &s.trace_id));
                let n = spans.len() as u64;
                spool.track(seg, &traces);
                // Back-pressure at start: wait for the evaluation threads.
                let mut spans = Some(spans);
                while let Some(batch) = spans.take() {
                    match self.engine.ingest(batch) {
                        Ok(_) => {}
                        Err(Refused {
                            reason: RefuseReason::Full,
                            spans: back,
                        }) => {
                            std::thread::sleep(Duration::from_millis(10));
                            spans = Some(back);
                        }
                        Err(Refused { .. }) => {
                            spool.untrack(seg, &traces);
                            return total;
                        }
                    }
                }
                total += n;
                rec.metrics.spool_replayed_spans.inc_by(n);
            }
        }
        total
    }

    fn apply_limits(&self, spans: &mut [Span]) {
        let max_attrs = self.limits.max_attributes_per_span;
        let max_len = self.limits.max_attribute_value_bytes;
        let mut dropped = 0u64;
        let mut truncated = 0u64;
        for s in spans {
            if s.attributes.len() > max_attrs {
                dropped += (s.attributes.len() - max_attrs) as u64;
                s.attributes.truncate(max_attrs);
            }
            for (_, v) in &mut s.attributes {
                truncate_value(v, max_len, &mut truncated);
            }
        }
        let m = &self.recorder().metrics;
        if dropped > 0 {
            m.attributes_dropped("limit", dropped as usize);
        }
        if truncated > 0 {
            m.attribute_values_truncated.inc_by(truncated);
        }
    }

    /// Releases every buffered trace (`completion_reason=flush`) and waits until they and
    /// everything queued before are evaluated and stored. Returns the number released.
    pub fn flush(&self) -> usize {
        self.engine.flush(FLUSH_WAIT)
    }

    /// Refuses further spans, releases every buffered trace (`completion_reason=shutdown`),
    /// evaluates and stores them, then stops the threads. Returns the number released.
    pub fn shutdown(&self) -> usize {
        self.ticking.store(false, Ordering::Release);
        if let Some(t) = self.ticker.lock().take() {
            let _ = t.join();
        }
        let done = self.engine.shutdown(SHUTDOWN_WAIT);
        let rec = self.recorder();
        if done.unfinished_spans > 0 {
            tracing::error!(
                spans = done.unfinished_spans,
                "evaluation did not finish within 120 s of shutdown"
            );
            rec.metrics.dropped("shutdown", done.unfinished_spans);
        }
        rec.retry_held();
        if let Some(spool) = &rec.spool {
            let kept = spool.close();
            if kept > 0 {
                tracing::warn!(
                    segments = kept,
                    "spool: segments kept for the next start (their violations are not stored yet)"
                );
            }
        }
        self.sync_metrics();
        done.released
    }

    /// Waits until every queued trace is evaluated and stored, at most `limit`.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        self.engine.wait_idle(limit)
    }

    fn tick_loop(&self) {
        let mut last_prune: Option<Instant> = None;
        while self.ticking.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            self.engine.poll();
            let rec = self.recorder();
            rec.retry_held();
            if let Some(spool) = &rec.spool {
                spool.tick();
            }
            self.sync_metrics();
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_prune = Some(Instant::now());
                self.prune();
            }
        }
    }

    fn prune(&self) {
        let (max, retention) = self.retention;
        let cutoff = now_unix_nanos().saturating_sub(retention) as i64;
        match self.recorder().store.prune(max, cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned old violations"),
            Err(e) => tracing::error!(error = %e, "pruning violations failed"),
        }
    }
}

impl Sink for Recorder {
    fn complete(&self, _rules: &RuleSet, batch: &mut [Evaluated]) {
        let mut violations: Vec<Violation> = Vec::new();
        let mut summaries: Vec<TraceSpans> = Vec::new();
        let done: TraceCounts = if self.spool.is_some() {
            batch
                .iter()
                .map(|e| (e.evaluation.trace_id, e.spans_released as u64))
                .collect()
        } else {
            Vec::new()
        };
        for e in batch.iter_mut() {
            let t = &mut e.evaluation;
            self.metrics
                .evaluation_duration
                .observe(e.elapsed.as_secs_f64());
            self.metrics
                .traces_evaluated
                .get_or_create(&CompletionLabel {
                    completion_reason: t.completion_reason.as_str().to_owned(),
                })
                .inc();
            for err in &t.evaluation.errors {
                self.metrics
                    .rule_evaluation_errors
                    .get_or_create(&RuleLabel {
                        rule_id: err.rule_id.clone(),
                    })
                    .inc();
                tracing::warn!(rule_id = %err.rule_id, trace_id = %err.trace_id, error = ?err.error, "rule evaluation failed");
            }
            for v in &t.evaluation.violations {
                if v.supersedes.is_some() {
                    let reason = if v.retraction {
                        "retracted"
                    } else {
                        "superseded"
                    };
                    self.metrics
                        .violations_replaced
                        .get_or_create(&ReasonLabel {
                            reason: reason.to_owned(),
                        })
                        .inc();
                }
                if !v.retraction {
                    self.metrics
                        .violations
                        .get_or_create(&ViolationLabel {
                            rule_id: v.rule_id.clone(),
                            severity: v.severity.as_str().to_owned(),
                        })
                        .inc();
                }
            }
            if !t.evaluation.violations.is_empty() {
                summaries.push(TraceSpans::of(&e.trace, &t.evaluation.violations));
            }
            violations.append(&mut t.evaluation.violations);
        }
        self.store_or_hold(violations, summaries, done);
    }

    /// The live stored violations of the trace; `None` (the fresh ones are stored beside
    /// them) when they cannot be read.
    fn earlier_violations(&self, trace_id: TraceId) -> Option<Vec<Violation>> {
        let query = ViolationQuery {
            trace_id: Some(trace_id),
            limit: 1000,
            ..Default::default()
        };
        let rows = match self.store.list_violations(&query) {
            Ok((rows, _)) => rows,
            Err(e) => {
                tracing::error!(error = %e, trace_id = %trace_id.to_hex(), "reading the earlier violations of a re-evaluated trace failed; storing the new ones beside them");
                return None;
            }
        };
        Some(
            rows.into_iter()
                .filter_map(|r| match serde_json::from_value::<Violation>(r.json) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::error!(error = %e, seq = r.seq, "a stored violation cannot be read; it is left out of the re-evaluation");
                        None
                    }
                })
                .collect(),
        )
    }

    fn releasing_at_shutdown(&self, traces: &[TraceId]) {
        if let Err(e) = self
            .store
            .remember_shutdown_traces(traces, now_unix_nanos() as i64)
        {
            tracing::error!(error = %e, "recording the traces evaluated at shutdown failed");
        }
    }
}

impl Recorder {
    fn storage_problem(&self) -> Option<&'static str> {
        if self.store_failing.load(Ordering::Acquire) {
            Some("violations cannot be stored")
        } else if self.spool_failing.load(Ordering::Acquire) {
            Some("the ingest spool cannot be written")
        } else {
            None
        }
    }

    fn set_health(&self) {
        let ok = self.storage_problem().is_none();
        self.metrics.storage_ok.set(i64::from(ok));
    }

    /// Stores `violations`; when that fails, holds them for a retry (ingest answers 503 until
    /// they are stored). `traces` leave the spool once their violations are stored.
    fn store_or_hold(
        &self,
        violations: Vec<Violation>,
        summaries: Vec<TraceSpans>,
        traces: TraceCounts,
    ) {
        let stored = if violations.is_empty() {
            true
        } else if self.store_failing.load(Ordering::Acquire) {
            // Keep the order of the held ones.
            false
        } else {
            // Cloned so that a failed store can be retried with the span summaries.
            match self
                .store
                .insert_violations_with_spans(&violations, summaries.clone())
            {
                Ok(()) => {
                    self.violations_stored.notify_one();
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, count = violations.len(), "storing violations failed; they are held for a retry and ingest answers 503");
                    false
                }
            }
        };
        if stored {
            if let Some(spool) = &self.spool {
                spool.stored(&traces);
            }
            return;
        }
        self.metrics
            .violations_store_failed
            .inc_by(violations.len() as u64);
        let mut held = self.held.lock();
        if !self.store_failing.swap(true, Ordering::AcqRel) {
            self.set_health();
        }
        held.1 += violations.len();
        held.0.push_back(Held {
            violations,
            summaries,
            traces,
        });
        while held.1 > self.held_limit {
            let Some(old) = held.0.pop_front() else {
                break;
            };
            held.1 -= old.violations.len();
            self.metrics
                .violations_store_dropped
                .inc_by(old.violations.len() as u64);
            if let Some(spool) = &self.spool {
                spool.stored(&old.traces);
            }
        }
        self.metrics.violations_store_pending.set(held.1 as i64);
    }

    /// Stores held violations, oldest first, until one store fails; at most every
    /// [`RETRY_EVERY`].
    fn retry_held(&self) {
        if !self.store_failing.load(Ordering::Acquire) {
            return;
        }
        {
            let mut last = self.last_retry.lock();
            if last.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let mut held = self.held.lock();
        while let Some(front) = held.0.front() {
            if let Err(e) = self
                .store
                .insert_violations_with_spans(&front.violations, front.summaries.clone())
            {
                tracing::debug!(error = %e, "storing held violations failed again");
                return;
            }
            let Some(h) = held.0.pop_front() else {
                break;
            };
            held.1 -= h.violations.len();
            self.metrics
                .violations_store_retried
                .inc_by(h.violations.len() as u64);
            self.metrics.violations_store_pending.set(held.1 as i64);
            if let Some(spool) = &self.spool {
                spool.stored(&h.traces);
            }
            self.violations_stored.notify_one();
        }
        self.store_failing.store(false, Ordering::Release);
        self.set_health();
        tracing::info!("storage works again; held violations stored");
    }
}

/// Truncates strings (also inside arrays and key-value lists) longer than `max` bytes, at a
/// character boundary.
fn truncate_value(v: &mut AttrValue, max: usize, count: &mut u64) {
    match v {
        AttrValue::Str(s) if s.len() > max => {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            *s = s[..cut].into();
            *count += 1;
        }
        AttrValue::Bytes(b) if b.len() > max => {
            *b = b[..max].into();
            *count += 1;
        }
        AttrValue::Array(items) => {
            for i in items.iter_mut() {
                truncate_value(i, max, count);
            }
        }
        AttrValue::KvList(items) => {
            for (_, i) in items.iter_mut() {
                truncate_value(i, max, count);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut n = 0;
        let mut v = AttrValue::Str("ééé".into());
        truncate_value(&mut v, 3, &mut n);
        assert_eq!(v, AttrValue::Str("é".into()));
        let mut v =
            AttrValue::Array(vec![AttrValue::Str("abcdef".into()), AttrValue::Int(1)].into());
        truncate_value(&mut v, 4, &mut n);
        assert_eq!(
            v,
            AttrValue::Array(vec![AttrValue::Str("abcd".into()), AttrValue::Int(1)].into())
        );
        assert_eq!(n, 2);
    }
}
