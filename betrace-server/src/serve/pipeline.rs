//! Ingest → trace assembly → evaluation → storage (SERVER.md §1 "Ingest", ENGINE.md §5).
//!
//! In: decoded [`Span`]s from any receiver (OTLP/HTTP, OTLP/gRPC, `/v1/spans`). Out: signed
//! violations in the [`Store`], counted in [`Metrics`], and a wake-up for the exporter.
//!
//! Violation spans of BeTrace's own exporter ([`export::is_own_violation`]) are dropped first
//! and counted in `betrace_spans_ignored_total{reason="own_violation"}`: evaluating them would
//! make violations of violations, without end, when the exported spans come back through a
//! shared Collector. The other spans get the attribute limits applied (extra attributes dropped, long values truncated,
//! both counted), then go into the [`TraceAssembler`]. Traces it releases — on ingest (span
//! cap, eviction), from the background tick every 100 ms (root complete, idle, age), on
//! [`Pipeline::flush`] and on [`Pipeline::shutdown`] — are queued for a pool of evaluation
//! threads that evaluate them against the rule set in force at that moment and store the
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
//! reconciled with the live stored violations of the trace ([`reconcile`]): an unchanged
//! finding adds nothing, a changed one supersedes the earlier violation, and a rule no longer
//! violated gets a retraction record. Records of a re-evaluation are signed again; stored
//! records are never rewritten (storage marks them `superseded` or `retracted`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use betrace_core::assemble::{CompletedTrace, IngestOutcome, RefuseReason, TraceAssembler};
use betrace_core::engine::now_unix_nanos;
use betrace_core::engine::{RuleSet, TraceContext};
use betrace_core::stream::number_violations;
use betrace_core::violation::reconcile;
use betrace_core::{AttrValue, CompletionReason, Span, TraceId, Violation};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::config::Limits;
use super::export;
use super::metrics::{CompletionLabel, Metrics, ReasonLabel, RuleLabel, ViolationLabel};
use super::registry::RuleRegistry;
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

enum Job {
    Traces(Vec<CompletedTrace>),
    Stop,
}

/// The ingest and evaluation pipeline.
#[derive(Debug)]
pub struct Pipeline {
    assembler: TraceAssembler,
    registry: Arc<RuleRegistry>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    limits: Limits,
    tx: Sender<Job>,
    rx: Receiver<Job>,
    /// Spans of released traces not yet evaluated.
    pending_spans: AtomicU64,
    /// Released traces not yet evaluated and stored.
    in_flight: AtomicU64,
    queue_limit: u64,
    violations_stored: Arc<tokio::sync::Notify>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    ticking: AtomicBool,
    ticker: Mutex<Option<JoinHandle<()>>>,
    /// `(storage.max_violations, storage.violation_retention in ns)`.
    retention: (u64, u64),
    spool: Option<Spool>,
    /// Violations waiting for a retry, oldest first, and their count.
    held: Mutex<(VecDeque<Held>, usize)>,
    held_limit: usize,
    /// A store failed and its violations are held.
    store_failing: AtomicBool,
    /// The last spool write failed.
    spool_failing: AtomicBool,
    last_retry: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Traces(t) => write!(f, "Traces({})", t.len()),
            Job::Stop => f.write_str("Stop"),
        }
    }
}

impl Pipeline {
    /// A pipeline; call [`Pipeline::start`] to run its threads.
    pub fn new(
        assembler: TraceAssembler,
        registry: Arc<RuleRegistry>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        limits: Limits,
        max_violations: u64,
        retention: Duration,
    ) -> Pipeline {
        let (tx, rx) = crossbeam_channel::unbounded();
        let queue_limit = assembler.config().max_buffered_spans as u64;
        Pipeline {
            assembler,
            registry,
            store,
            metrics,
            limits,
            tx,
            rx,
            pending_spans: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            queue_limit,
            violations_stored: Arc::new(tokio::sync::Notify::new()),
            workers: Mutex::new(Vec::new()),
            ticking: AtomicBool::new(false),
            ticker: Mutex::new(None),
            retention: (
                max_violations,
                u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX),
            ),
            spool: None,
            held: Mutex::new((VecDeque::new(), 0)),
            held_limit: 100_000,
            store_failing: AtomicBool::new(false),
            spool_failing: AtomicBool::new(false),
            last_retry: Mutex::new(None),
        }
    }

    /// Keeps every accepted request in `spool` until its traces are stored.
    pub fn with_spool(mut self, spool: Spool) -> Pipeline {
        self.spool = Some(spool);
        self
    }

    /// Holds at most `limit` violations in memory while storage fails.
    pub fn with_retry_queue(mut self, limit: usize) -> Pipeline {
        self.held_limit = limit;
        self
    }

    /// Why storage is failing, or `None` when it works (`/v1/ready`).
    pub fn storage_problem(&self) -> Option<&'static str> {
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

    /// Remembers the traces the previous process evaluated at its shutdown within the
    /// assembler's `released_memory`, so that their spans arriving now are evaluated as
    /// partial fragments (`"partial": true`) rather than as whole traces.
    pub fn resume_after_shutdown(&self) {
        let memory =
            u64::try_from(self.assembler.config().released_memory.as_nanos()).unwrap_or(u64::MAX);
        let since = now_unix_nanos().saturating_sub(memory) as i64;
        match self.store.shutdown_traces_since(since) {
            Ok(ids) => {
                let n = ids.len();
                self.assembler.remember_released(
                    ids.iter()
                        .filter_map(|id| betrace_core::input::hex_bytes(id))
                        .map(betrace_core::TraceId),
                );
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

    /// Starts `workers` evaluation threads and the 100 ms tick.
    pub fn start(self: &Arc<Self>, workers: usize) -> std::io::Result<()> {
        let mut handles = self.workers.lock();
        for i in 0..workers.max(1) {
            let me = Arc::clone(self);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("betrace-eval-{i}"))
                    .spawn(move || me.work())?,
            );
        }
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
        Arc::clone(&self.violations_stored)
    }

    pub fn assembler(&self) -> &TraceAssembler {
        &self.assembler
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Buffers a batch of decoded spans. `transport` labels the received counter.
    pub fn ingest(&self, spans: Vec<Span>, transport: &str) -> Result<(), IngestError> {
        self.ingest_raw(spans, transport, None)
    }

    /// [`Pipeline::ingest`] of a request whose body (`kind`, bytes after gzip) goes into the
    /// spool, when there is one, before the spans are buffered.
    pub fn ingest_raw(
        &self,
        mut spans: Vec<Span>,
        transport: &str,
        raw: Option<(RecordKind, &[u8])>,
    ) -> Result<(), IngestError> {
        self.metrics.received(transport, spans.len());
        let before = spans.len();
        spans.retain(|s| !export::is_own_violation(s));
        let n = spans.len();
        if n < before {
            self.metrics
                .spans_ignored
                .get_or_create(&ReasonLabel {
                    reason: "own_violation".to_owned(),
                })
                .inc_by((before - n) as u64);
        }
        if n == 0 {
            return Ok(());
        }
        if self.store_failing.load(Ordering::Acquire) {
            self.metrics.rejected("storage", n);
            return Err(IngestError::StorageUnavailable);
        }
        if self.pending_spans.load(Ordering::Acquire) >= self.queue_limit {
            self.metrics.rejected("backpressure", n);
            return Err(IngestError::Backpressure);
        }
        self.apply_limits(&mut spans);
        let spooled = match (&self.spool, raw) {
            (Some(spool), Some((kind, body))) => {
                let traces = trace_counts(spans.iter().map(|s| &s.trace_id));
                match spool.append(kind, body, &traces) {
                    Ok(seg) => {
                        if self.spool_failing.swap(false, Ordering::AcqRel) {
                            tracing::info!("the ingest spool can be written again");
                            self.set_health();
                        }
                        Some((spool, seg, traces))
                    }
                    Err(e) => {
                        if !self.spool_failing.swap(true, Ordering::AcqRel) {
                            tracing::error!(error = %e, "the ingest spool cannot be written; ingest answers 503 until it can");
                            self.set_health();
                        }
                        self.metrics.spool_write_failures.inc();
                        self.metrics.rejected("storage", n);
                        return Err(IngestError::StorageUnavailable);
                    }
                }
            }
            _ => None,
        };
        self.buffer(spans, spooled)
    }

    fn buffer(
        &self,
        spans: Vec<Span>,
        spooled: Option<(&Spool, u64, TraceCounts)>,
    ) -> Result<(), IngestError> {
        let n = spans.len();
        match self.assembler.ingest(spans) {
            IngestOutcome::Accepted { completed } => {
                self.enqueue(completed);
                Ok(())
            }
            IngestOutcome::Refused { reason, .. } => {
                if let Some((spool, seg, traces)) = spooled {
                    spool.untrack(seg, &traces);
                }
                self.refused(reason, n)
            }
        }
    }

    fn refused(&self, reason: RefuseReason, n: usize) -> Result<(), IngestError> {
        match reason {
            RefuseReason::Full => {
                self.metrics.rejected("backpressure", n);
                Err(IngestError::Backpressure)
            }
            RefuseReason::ShutDown => {
                self.metrics.rejected("shutdown", n);
                Err(IngestError::ShuttingDown)
            }
        }
    }

    /// Feeds the requests left in the spool by an earlier run back into the trace buffer
    /// (before the listeners open). Returns the spans replayed.
    pub fn replay(&self) -> u64 {
        let Some(spool) = &self.spool else {
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
                    match self.assembler.ingest(batch) {
                        IngestOutcome::Accepted { completed } => self.enqueue(completed),
                        IngestOutcome::Refused {
                            reason: RefuseReason::Full,
                            spans: back,
                        } => {
                            std::thread::sleep(Duration::from_millis(10));
                            spans = Some(back);
                        }
                        IngestOutcome::Refused { .. } => {
                            spool.untrack(seg, &traces);
                            return total;
                        }
                    }
                }
                total += n;
                self.metrics.spool_replayed_spans.inc_by(n);
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
        if dropped > 0 {
            self.metrics.attributes_dropped("limit", dropped as usize);
        }
        if truncated > 0 {
            self.metrics.attribute_values_truncated.inc_by(truncated);
        }
    }

    fn enqueue(&self, traces: Vec<CompletedTrace>) {
        if traces.is_empty() {
            return;
        }
        let spans: u64 = traces.iter().map(|t| t.spans.len() as u64).sum();
        self.pending_spans.fetch_add(spans, Ordering::AcqRel);
        self.in_flight
            .fetch_add(traces.len() as u64, Ordering::AcqRel);
        self.metrics
            .pending_evaluation_spans
            .set(self.pending_spans.load(Ordering::Relaxed) as i64);
        if self.tx.send(Job::Traces(traces)).is_err() {
            tracing::error!("the evaluation queue is closed");
        }
    }

    /// Releases every buffered trace (`completion_reason=flush`) and waits until they and
    /// everything queued before are evaluated and stored. Returns the number released.
    pub fn flush(&self) -> usize {
        let traces = self.assembler.flush();
        let n = traces.len();
        self.enqueue(traces);
        self.wait_idle(Duration::from_secs(60));
        n
    }

    /// Refuses further spans, releases every buffered trace (`completion_reason=shutdown`),
    /// evaluates and stores them, then stops the threads. Returns the number released.
    pub fn shutdown(&self) -> usize {
        self.ticking.store(false, Ordering::Release);
        if let Some(t) = self.ticker.lock().take() {
            let _ = t.join();
        }
        let traces = self.assembler.shutdown();
        let n = traces.len();
        let ids: Vec<String> = traces.iter().map(|t| t.trace_id.to_hex()).collect();
        if let Err(e) = self
            .store
            .remember_shutdown_traces(&ids, now_unix_nanos() as i64)
        {
            tracing::error!(error = %e, "recording the traces evaluated at shutdown failed");
        }
        self.enqueue(traces);
        if !self.wait_idle(Duration::from_secs(120)) {
            let lost = self.pending_spans.load(Ordering::Acquire);
            tracing::error!(
                spans = lost,
                "evaluation did not finish within 120 s of shutdown"
            );
            self.metrics.dropped("shutdown", lost);
        }
        let workers: Vec<_> = self.workers.lock().drain(..).collect();
        for _ in &workers {
            let _ = self.tx.send(Job::Stop);
        }
        for w in workers {
            let _ = w.join();
        }
        self.retry_held();
        if let Some(spool) = &self.spool {
            let kept = spool.close();
            if kept > 0 {
                tracing::warn!(
                    segments = kept,
                    "spool: segments kept for the next start (their violations are not stored yet)"
                );
            }
        }
        self.metrics.sync_assembler(&self.assembler.stats());
        n
    }

    /// Waits until every queued trace is evaluated and stored, at most `limit`.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.in_flight.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn tick_loop(&self) {
        let mut last_prune: Option<Instant> = None;
        while self.ticking.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            let expired = self.assembler.poll_expired();
            self.enqueue(expired);
            self.retry_held();
            if let Some(spool) = &self.spool {
                spool.tick();
            }
            self.metrics.sync_assembler(&self.assembler.stats());
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_prune = Some(Instant::now());
                self.prune();
            }
        }
    }

    fn prune(&self) {
        let Some((max, retention)) = self.retention() else {
            return;
        };
        let cutoff = now_unix_nanos().saturating_sub(retention) as i64;
        match self.store.prune(max, cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned old violations"),
            Err(e) => tracing::error!(error = %e, "pruning violations failed"),
        }
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

    fn retention(&self) -> Option<(u64, u64)> {
        Some(self.retention)
    }

    fn work(&self) {
        while let Ok(job) = self.rx.recv() {
            let mut batch = match job {
                Job::Stop => return,
                Job::Traces(t) => t,
            };
            let mut stop = false;
            // Take what else is queued, up to a bound, to store in one transaction.
            while batch.len() < 256 {
                match self.rx.try_recv() {
                    Ok(Job::Traces(t)) => batch.extend(t),
                    Ok(Job::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.process(batch);
            if stop {
                return;
            }
        }
    }

    fn process(&self, traces: Vec<CompletedTrace>) {
        let set = self.registry.current();
        let now = now_unix_nanos();
        let count = traces.len() as u64;
        let mut spans = 0u64;
        let mut violations: Vec<Violation> = Vec::new();
        let done: TraceCounts = if self.spool.is_some() {
            traces
                .iter()
                .map(|t| (t.trace_id, t.spans.len() as u64))
                .collect()
        } else {
            Vec::new()
        };
        let mut keep: Vec<(TraceId, u32, Vec<Span>)> = Vec::new();
        let mut summaries: Vec<TraceSpans> = Vec::new();
        for t in traces {
            spans += t.spans.len() as u64;
            let reason = t.reason;
            let whole_again = t.evaluation > 1 && !t.partial;
            let started = Instant::now();
            let ctx = TraceContext {
                completion_reason: t.reason,
                partial: t.partial,
                now_unix_nanos: now,
            };
            let (trace_id, number) = (t.trace_id, t.evaluation);
            let trace = t.into_trace();
            let mut eval = set.evaluate(&trace, ctx);
            number_violations(&set, &mut eval.violations, number);
            if whole_again {
                eval.violations = self.reconcile(
                    &set,
                    trace_id,
                    std::mem::take(&mut eval.violations),
                    number,
                    trace.len(),
                    reason,
                    now,
                );
            }
            self.metrics
                .evaluation_duration
                .observe(started.elapsed().as_secs_f64());
            self.metrics
                .traces_evaluated
                .get_or_create(&CompletionLabel {
                    completion_reason: reason.as_str().to_owned(),
                })
                .inc();
            for e in &eval.errors {
                self.metrics
                    .rule_evaluation_errors
                    .get_or_create(&RuleLabel {
                        rule_id: e.rule_id.clone(),
                    })
                    .inc();
                tracing::warn!(rule_id = %e.rule_id, trace_id = %e.trace_id, error = ?e.error, "rule evaluation failed");
            }
            for v in eval.violations.iter().filter(|v| !v.retraction) {
                self.metrics
                    .violations
                    .get_or_create(&ViolationLabel {
                        rule_id: v.rule_id.clone(),
                        severity: v.severity.as_str().to_owned(),
                    })
                    .inc();
            }
            if !eval.violations.is_empty() {
                summaries.push(TraceSpans::of(&trace, &eval.violations));
            }
            violations.extend(eval.violations);
            keep.push((trace_id, number, trace.into_spans()));
        }
        self.store_or_hold(violations, summaries, done);
        // After storing: a re-evaluation then finds these violations stored.
        for (trace_id, number, kept) in keep {
            let _ = self.assembler.retain(trace_id, number, kept);
        }
        self.pending_spans.fetch_sub(spans, Ordering::AcqRel);
        self.metrics
            .pending_evaluation_spans
            .set(self.pending_spans.load(Ordering::Relaxed) as i64);
        self.in_flight.fetch_sub(count, Ordering::AcqRel);
    }
}

impl Pipeline {
    /// The records to store for evaluation `number` of the whole trace `trace_id`: `fresh`
    /// reconciled with the trace's live stored violations of rules the set evaluates (a
    /// removed or disabled rule's violations stay as they are). When the stored ones cannot be
    /// read, `fresh` as it is.
    #[expect(clippy::too_many_arguments, reason = "the facts of one evaluation")]
    fn reconcile(
        &self,
        set: &RuleSet,
        trace_id: TraceId,
        fresh: Vec<Violation>,
        number: u32,
        span_count: usize,
        reason: CompletionReason,
        now: u64,
    ) -> Vec<Violation> {
        let query = ViolationQuery {
            trace_id: Some(trace_id),
            limit: 1000,
            ..Default::default()
        };
        let stored = match self.store.list_violations(&query) {
            Ok((rows, _)) => rows,
            Err(e) => {
                tracing::error!(error = %e, trace_id = %trace_id.to_hex(), "reading the earlier violations of a re-evaluated trace failed; storing the new ones beside them");
                return fresh;
            }
        };
        let evaluated: std::collections::HashSet<&str> = set
            .rules()
            .filter(|r| r.enabled)
            .map(|r| r.id.as_str())
            .collect();
        let earlier: Vec<Violation> = stored
            .into_iter()
            .filter_map(|r| serde_json::from_value::<Violation>(r.json).ok())
            .filter(|v| evaluated.contains(v.rule_id.as_str()))
            .collect();
        let mut out = reconcile(&earlier, fresh, number, span_count, reason, now);
        for v in &mut out.records {
            if let Some(key) = &set.options().signing_key {
                betrace_core::sign::sign_in_place(v, key);
            }
            if v.supersedes.is_some() {
                let label = if v.retraction {
                    "retracted"
                } else {
                    "superseded"
                };
                self.metrics
                    .violations_replaced
                    .get_or_create(&ReasonLabel {
                        reason: label.to_owned(),
                    })
                    .inc();
            }
        }
        out.records
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
