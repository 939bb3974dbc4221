//! Streaming evaluation (ENGINE.md §3 swap, §5): the one driver from buffered spans to
//! evaluated traces, used by the server and by Rust services that link the library.
//!
//! In: batches of spans from any number of traces, in any order ([`StreamEngine::ingest`]).
//! Out: one [`Evaluated`] per trace the [`TraceAssembler`] releases, evaluated with the rule
//! set in force at evaluation time, handed to a [`Sink`] in batches. The rule set lives in an
//! [`ArcSwap`] (shareable, [`StreamEngine::with_sink`]): [`StreamEngine::swap_rules`] replaces it
//! atomically while spans stay buffered, so a rule change applies to every trace evaluated
//! afterwards and nothing buffered is lost.
//!
//! **Executors.** [`Executor::Inline`] evaluates on the thread that released the traces
//! (rayon for several), before `ingest`, `poll` or `flush` returns: tests, benchmarks, a
//! service that evaluates in its own threads. [`Executor::Workers`] queues released traces
//! for a pool of evaluation threads ([`StreamEngine::start`]): what `betrace serve` runs, so
//! that receiving never waits for evaluation. With either, a batch is refused
//! ([`RefuseReason::Full`]) while the spans queued for evaluation reach the assembler's
//! `max_buffered_spans`, so memory stays bounded by twice the buffer plus the spans kept for
//! re-evaluation.
//!
//! **Re-evaluation.** After the sink has taken a batch, the spans of each trace go back to the
//! assembler ([`TraceAssembler::retain`]), so that late spans re-open the whole trace: its
//! violations then carry `evaluation` n > 1 and are signed again. When the sink can say what
//! earlier evaluations recorded ([`Sink::earlier_violations`]), they are reconciled with it
//! ([`crate::violation::reconcile`]: supersede, retract) before the sink sees them.
//!
//! ```
//! use std::time::Duration;
//! use betrace_core::engine::{EngineOptions, RuleSet};
//! use betrace_core::stream::StreamEngine;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = vec![betrace_core::Rule::new("no-refund", "never { refund }")];
//! let rules = RuleSet::compile(rules, EngineOptions::default()).map_err(|_| "rules")?;
//! let engine = StreamEngine::new(rules, betrace_core::AssemblerConfig::default())?;
//! let body = serde_json::json!({"spans": [{
//!     "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
//!     "name": "refund", "serviceName": "shop", "startTime": 1000, "endTime": 2000}]});
//! engine.ingest(betrace_core::decode_simple_json(&body)?.spans)?;
//! engine.flush(Duration::ZERO); // or `poll()` periodically: root complete, idle, age
//! let evaluated = engine.sink().take();
//! assert_eq!(evaluated[0].evaluation.violations[0].rule_id, "no-refund");
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};
use rayon::prelude::*;

use crate::assemble::{
    AssemblerConfig, AssemblerConfigError, Clock, CompletedTrace, IngestOutcome, RefuseReason,
    SystemClock, TraceAssembler,
};
use crate::engine::{Evaluation, RuleSet, TraceContext, now_unix_nanos};
use crate::span::{Span, TraceId};
use crate::trace::Trace;
use crate::violation::{CompletionReason, Violation, reconcile};

/// The evaluation of one released trace (or late fragment).
#[derive(Clone, Debug)]
pub struct TraceEvaluation {
    pub trace_id: TraceId,
    pub completion_reason: CompletionReason,
    /// True for a fragment of late spans evaluated without the rest of its trace.
    pub partial: bool,
    /// [`CompletedTrace::evaluation`], also set on every violation.
    pub evaluation_number: u32,
    /// Distinct spans evaluated.
    pub span_count: usize,
    pub evaluation: Evaluation,
}

/// A trace as the sink receives it: its evaluation, the trace itself (for span summaries),
/// the spans released (duplicates counted, as they were received) and the time evaluation
/// and reconciliation took.
#[derive(Debug)]
pub struct Evaluated {
    pub evaluation: TraceEvaluation,
    pub trace: Trace,
    pub spans_released: usize,
    pub elapsed: Duration,
}

/// What happens to evaluated traces (storage, export, metrics).
pub trait Sink: Send + Sync + 'static {
    /// Takes one batch of evaluated traces, in release order. Called before the traces' spans
    /// go back to the assembler, so a later re-evaluation sees what this recorded. The sink may
    /// take the violations out of the batch.
    fn complete(&self, rules: &RuleSet, batch: &mut [Evaluated]);

    /// The live violations recorded for `trace_id` by its earlier evaluations, asked before
    /// evaluation n > 1 of the whole trace; `None` (the default) keeps the fresh violations
    /// as they are.
    fn earlier_violations(&self, trace_id: TraceId) -> Option<Vec<Violation>> {
        let _ = trace_id;
        None
    }

    /// The traces [`StreamEngine::shutdown`] releases, before they are evaluated.
    fn releasing_at_shutdown(&self, traces: &[TraceId]) {
        let _ = traces;
    }
}

/// The default sink: keeps every [`TraceEvaluation`] until [`Collect::take`].
#[derive(Debug, Default)]
pub struct Collect {
    evaluations: Mutex<Vec<TraceEvaluation>>,
}

impl Collect {
    /// The evaluations since the last call, in release order.
    pub fn take(&self) -> Vec<TraceEvaluation> {
        std::mem::take(&mut *self.evaluations.lock())
    }
}

impl Sink for Collect {
    fn complete(&self, _rules: &RuleSet, batch: &mut [Evaluated]) {
        let mut out = self.evaluations.lock();
        out.extend(batch.iter_mut().map(|e| {
            let t = &mut e.evaluation;
            TraceEvaluation {
                trace_id: t.trace_id,
                completion_reason: t.completion_reason,
                partial: t.partial,
                evaluation_number: t.evaluation_number,
                span_count: t.span_count,
                evaluation: std::mem::take(&mut t.evaluation),
            }
        }));
    }
}

/// Where released traces are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// On the thread that released them, before the call returns (rayon for several).
    Inline,
    /// On this many threads behind a queue, started by [`StreamEngine::start`]; each thread
    /// takes up to 256 queued traces at a time, so the sink can store them together.
    Workers(usize),
}

/// Most traces one worker takes from the queue for one [`Sink::complete`].
const WORKER_BATCH: usize = 256;

/// A batch the engine did not take (back-pressure or shutdown); the spans are handed back.
#[derive(Debug, thiserror::Error)]
#[error("{} span(s) refused: {}", spans.len(), match reason {
    RefuseReason::Full => "the trace buffer is full; retry later",
    RefuseReason::ShutDown => "the engine is shut down",
})]
pub struct Refused {
    pub reason: RefuseReason,
    pub spans: Vec<Span>,
}

/// What [`StreamEngine::shutdown`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shutdown {
    /// Traces released at shutdown.
    pub released: usize,
    /// Spans still waiting for evaluation when the time given ran out (0 when all were
    /// evaluated).
    pub unfinished_spans: u64,
}

enum Job {
    Traces(Vec<CompletedTrace>),
    Stop,
}

/// Assembler + swappable rule set + executor + sink.
pub struct StreamEngine<S: Sink = Collect> {
    assembler: TraceAssembler,
    rules: Arc<ArcSwap<RuleSet>>,
    sink: S,
    executor: Executor,
    queue: Option<(
        crossbeam_channel::Sender<Job>,
        crossbeam_channel::Receiver<Job>,
    )>,
    /// Spans of released traces not yet evaluated and taken by the sink.
    pending_spans: AtomicU64,
    /// Released traces not yet evaluated and taken by the sink.
    in_flight: AtomicU64,
    queue_limit: u64,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Notified when `in_flight` drops to 0.
    idle: (Mutex<()>, Condvar),
}

impl<S: Sink + std::fmt::Debug> std::fmt::Debug for StreamEngine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEngine")
            .field("assembler", &self.assembler)
            .field("executor", &self.executor)
            .field("sink", &self.sink)
            .field("pending_spans", &self.pending_spans)
            .finish_non_exhaustive()
    }
}

impl StreamEngine<Collect> {
    /// An inline engine on the system clock that collects evaluations ([`Collect`]). Errors:
    /// an invalid assembler configuration.
    pub fn new(
        rules: RuleSet,
        config: AssemblerConfig,
    ) -> Result<StreamEngine<Collect>, AssemblerConfigError> {
        StreamEngine::with_clock(rules, config, Arc::new(SystemClock::new()))
    }

    /// [`StreamEngine::new`] whose assembler reads time from `clock` (tests).
    pub fn with_clock(
        rules: RuleSet,
        config: AssemblerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<StreamEngine<Collect>, AssemblerConfigError> {
        Ok(StreamEngine::with_sink(
            Arc::new(ArcSwap::from_pointee(rules)),
            TraceAssembler::with_clock(config, clock)?,
            Collect::default(),
            Executor::Inline,
        ))
    }
}

impl<S: Sink> StreamEngine<S> {
    /// An engine evaluating what `assembler` releases with the set in `rules` (which others
    /// may swap too), on `executor`, into `sink`.
    pub fn with_sink(
        rules: Arc<ArcSwap<RuleSet>>,
        assembler: TraceAssembler,
        sink: S,
        executor: Executor,
    ) -> StreamEngine<S> {
        let queue_limit = assembler.config().max_buffered_spans as u64;
        StreamEngine {
            assembler,
            rules,
            sink,
            executor,
            queue: matches!(executor, Executor::Workers(_)).then(crossbeam_channel::unbounded),
            pending_spans: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            queue_limit,
            workers: Mutex::new(Vec::new()),
            idle: (Mutex::new(()), Condvar::new()),
        }
    }

    /// Starts the evaluation threads of [`Executor::Workers`] (named `betrace-eval-<i>`);
    /// nothing for [`Executor::Inline`]. Errors: a thread could not be spawned.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let Executor::Workers(n) = self.executor else {
            return Ok(());
        };
        let mut handles = self.workers.lock();
        for i in 0..n.max(1) {
            let me = Arc::clone(self);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("betrace-eval-{i}"))
                    .spawn(move || me.work())?,
            );
        }
        Ok(())
    }

    /// The rule set in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Replaces the rule set; traces evaluated from now on use `rules`. Buffered spans are
    /// untouched. Returns the previous set.
    pub fn swap_rules(&self, rules: RuleSet) -> Arc<RuleSet> {
        self.rules.swap(Arc::new(rules))
    }

    /// The assembler (for its counters and configuration).
    pub fn assembler(&self) -> &TraceAssembler {
        &self.assembler
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Spans of released traces waiting for evaluation (always 0 with
    /// [`Executor::Inline`] between calls).
    pub fn pending_spans(&self) -> u64 {
        self.pending_spans.load(Ordering::Acquire)
    }

    /// True while the spans waiting for evaluation reach the assembler's
    /// `max_buffered_spans`: [`StreamEngine::ingest`] refuses batches.
    pub fn saturated(&self) -> bool {
        self.pending_spans() >= self.queue_limit
    }

    /// Buffers spans and evaluates (or queues) the traces this batch completed (span cap,
    /// eviction). Returns the number of traces released. Errors: refused, spans handed back
    /// ([`RefuseReason::Full`] also while [`StreamEngine::saturated`]).
    pub fn ingest(&self, spans: Vec<Span>) -> Result<usize, Refused> {
        if self.saturated() {
            return Err(Refused {
                reason: RefuseReason::Full,
                spans,
            });
        }
        match self.assembler.ingest(spans) {
            IngestOutcome::Accepted { completed } => Ok(self.dispatch(completed)),
            IngestOutcome::Refused { reason, spans } => Err(Refused { reason, spans }),
        }
    }

    /// Evaluates (or queues) the traces whose completion trigger has fired (call
    /// periodically). Returns the number released.
    pub fn poll(&self) -> usize {
        self.dispatch(self.assembler.poll_expired())
    }

    /// Releases every buffered trace (`completion_reason = flush`) and waits, at most
    /// `limit`, until they and everything queued before are taken by the sink. Returns the
    /// number released.
    pub fn flush(&self, limit: Duration) -> usize {
        let n = self.dispatch(self.assembler.flush());
        self.wait_idle(limit);
        n
    }

    /// Stops accepting spans, releases every buffered trace (`shutdown`), tells the sink
    /// ([`Sink::releasing_at_shutdown`]), waits at most `limit` for their evaluation, then
    /// stops the evaluation threads.
    pub fn shutdown(&self, limit: Duration) -> Shutdown {
        let traces = self.assembler.shutdown();
        let ids: Vec<TraceId> = traces.iter().map(|t| t.trace_id).collect();
        self.sink.releasing_at_shutdown(&ids);
        let released = self.dispatch(traces);
        let unfinished_spans = if self.wait_idle(limit) {
            0
        } else {
            self.pending_spans()
        };
        let workers: Vec<_> = self.workers.lock().drain(..).collect();
        if let Some((tx, _)) = &self.queue {
            for _ in &workers {
                let _ = tx.send(Job::Stop);
            }
        }
        for w in workers {
            let _ = w.join();
        }
        Shutdown {
            released,
            unfinished_spans,
        }
    }

    /// Waits until every released trace is evaluated and taken by the sink, at most `limit`.
    /// Returns false when the time ran out.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut guard = self.idle.0.lock();
        while self.in_flight.load(Ordering::Acquire) > 0 {
            if self.idle.1.wait_until(&mut guard, deadline).timed_out() {
                return self.in_flight.load(Ordering::Acquire) == 0;
            }
        }
        true
    }

    fn dispatch(&self, traces: Vec<CompletedTrace>) -> usize {
        let n = traces.len();
        if n == 0 {
            return 0;
        }
        match &self.queue {
            None => self.run(traces, true),
            Some((tx, _)) => {
                let spans: u64 = traces.iter().map(|t| t.spans.len() as u64).sum();
                self.pending_spans.fetch_add(spans, Ordering::AcqRel);
                self.in_flight.fetch_add(n as u64, Ordering::AcqRel);
                // The receiver lives in `self`: sending cannot fail.
                let _ = tx.send(Job::Traces(traces));
            }
        }
        n
    }

    fn work(&self) {
        let Some((_, rx)) = &self.queue else {
            return;
        };
        while let Ok(job) = rx.recv() {
            let mut batch = match job {
                Job::Stop => return,
                Job::Traces(t) => t,
            };
            let mut stop = false;
            while batch.len() < WORKER_BATCH {
                match rx.try_recv() {
                    Ok(Job::Traces(t)) => batch.extend(t),
                    Ok(Job::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let (count, spans) = (
                batch.len() as u64,
                batch.iter().map(|t| t.spans.len() as u64).sum::<u64>(),
            );
            self.run(batch, false);
            self.pending_spans.fetch_sub(spans, Ordering::AcqRel);
            if self.in_flight.fetch_sub(count, Ordering::AcqRel) == count {
                // Under the lock, so a waiter between its check and its wait is not missed.
                let _guard = self.idle.0.lock();
                self.idle.1.notify_all();
            }
            if stop {
                return;
            }
        }
    }

    /// Evaluates `traces` with the set in force, reconciles re-evaluations, hands the batch to
    /// the sink, then gives the spans back to the assembler.
    fn run(&self, traces: Vec<CompletedTrace>, parallel: bool) {
        let rules = self.rules.load_full();
        let now = now_unix_nanos();
        let one = |c: CompletedTrace| self.evaluate_one(&rules, c, now);
        let mut batch: Vec<Evaluated> = if parallel && traces.len() > 1 {
            traces.into_par_iter().map(one).collect()
        } else {
            traces.into_iter().map(one).collect()
        };
        self.sink.complete(&rules, &mut batch);
        for e in batch {
            let _ = self.assembler.retain(
                e.evaluation.trace_id,
                e.evaluation.evaluation_number,
                e.trace.into_spans(),
            );
        }
    }

    fn evaluate_one(&self, rules: &RuleSet, completed: CompletedTrace, now: u64) -> Evaluated {
        let started = Instant::now();
        let spans_released = completed.spans.len();
        let whole_again = completed.evaluation > 1 && !completed.partial;
        let (mut evaluation, trace) = evaluate(rules, completed, now);
        if whole_again && let Some(earlier) = self.sink.earlier_violations(evaluation.trace_id) {
            let fresh = std::mem::take(&mut evaluation.evaluation.violations);
            evaluation.evaluation.violations =
                reconcile_with(rules, &earlier, fresh, &evaluation, now);
        }
        Evaluated {
            evaluation,
            trace,
            spans_released,
            elapsed: started.elapsed(),
        }
    }
}

/// Evaluates a trace the assembler released, its completion reason, partiality and
/// evaluation number copied into the violations (signed again with the rule set's key when the
/// number is above 1), `createdAt` = `now_unix_nanos`.
pub fn evaluate_completed(
    rules: &RuleSet,
    completed: CompletedTrace,
    now_unix_nanos: u64,
) -> TraceEvaluation {
    evaluate(rules, completed, now_unix_nanos).0
}

fn evaluate(
    rules: &RuleSet,
    completed: CompletedTrace,
    now_unix_nanos: u64,
) -> (TraceEvaluation, Trace) {
    let ctx = TraceContext {
        completion_reason: completed.reason,
        partial: completed.partial,
        now_unix_nanos,
    };
    let trace_id = completed.trace_id;
    let number = completed.evaluation;
    let trace = completed.into_trace();
    let mut evaluation = rules.evaluate(&trace, ctx);
    if number > 1 {
        for v in &mut evaluation.violations {
            v.evaluation = number;
        }
        sign(rules, &mut evaluation.violations);
    }
    let out = TraceEvaluation {
        trace_id,
        completion_reason: ctx.completion_reason,
        partial: ctx.partial,
        evaluation_number: number,
        span_count: trace.len(),
        evaluation,
    };
    (out, trace)
}

fn sign(rules: &RuleSet, violations: &mut [Violation]) {
    if let Some(key) = &rules.options().signing_key {
        for v in violations {
            crate::sign::sign_in_place(v, key);
        }
    }
}

/// The records of a re-evaluation of a whole trace: `fresh` reconciled with the `earlier`
/// live violations of rules the set evaluates (a removed or disabled rule's violations stay as
/// they are), signed again.
fn reconcile_with(
    rules: &RuleSet,
    earlier: &[Violation],
    fresh: Vec<Violation>,
    e: &TraceEvaluation,
    now_unix_nanos: u64,
) -> Vec<Violation> {
    let evaluated: HashSet<&str> = rules
        .rules()
        .filter(|r| r.enabled)
        .map(|r| r.id.as_str())
        .collect();
    let earlier: Vec<Violation> = earlier
        .iter()
        .filter(|v| evaluated.contains(v.rule_id.as_str()))
        .cloned()
        .collect();
    let mut records = reconcile(
        &earlier,
        fresh,
        e.evaluation_number,
        e.span_count,
        e.completion_reason,
        now_unix_nanos,
    )
    .records;
    sign(rules, &mut records);
    records
}
