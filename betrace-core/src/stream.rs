//! Streaming evaluation (ENGINE.md §3 swap, §5).
//!
//! In: batches of spans from any number of traces, in any order. Out: one [`TraceEvaluation`]
//! per trace the [`TraceAssembler`] releases, evaluated with the rule set in force at release
//! time. The rule set lives in an [`ArcSwap`]: [`StreamEngine::swap_rules`] replaces it
//! atomically while spans stay buffered, so a rule change applies to every trace evaluated
//! afterwards and nothing buffered is lost.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rayon::prelude::*;

use crate::assemble::{
    AssemblerConfig, AssemblerConfigError, Clock, CompletedTrace, IngestOutcome, RefuseReason,
    SystemClock, TraceAssembler,
};
use crate::engine::{Evaluation, RuleSet, TraceContext, now_unix_nanos};
use crate::span::{Span, TraceId};
use crate::violation::CompletionReason;

/// The evaluation of one released trace (or late fragment).
#[derive(Clone, Debug)]
pub struct TraceEvaluation {
    pub trace_id: TraceId,
    pub completion_reason: CompletionReason,
    /// True for a fragment of late spans.
    pub partial: bool,
    /// Distinct spans evaluated.
    pub span_count: usize,
    pub evaluation: Evaluation,
}

/// Evaluates a trace the assembler released, its completion reason and partiality copied into
/// the violations, `createdAt` = `now_unix_nanos`.
pub fn evaluate_completed(
    rules: &RuleSet,
    completed: CompletedTrace,
    now_unix_nanos: u64,
) -> TraceEvaluation {
    let ctx = TraceContext {
        completion_reason: completed.reason,
        partial: completed.partial,
        now_unix_nanos,
    };
    let trace_id = completed.trace_id;
    let trace = completed.into_trace();
    TraceEvaluation {
        trace_id,
        completion_reason: ctx.completion_reason,
        partial: ctx.partial,
        span_count: trace.len(),
        evaluation: rules.evaluate(&trace, ctx),
    }
}

/// A batch the assembler did not take (back-pressure or shutdown); the spans are handed back
/// and counted as dropped by the assembler.
#[derive(Debug)]
pub struct Refused {
    pub reason: RefuseReason,
    pub spans: Vec<Span>,
}

/// Assembler + swappable rule set.
#[derive(Debug)]
pub struct StreamEngine {
    assembler: TraceAssembler,
    rules: ArcSwap<RuleSet>,
}

impl StreamEngine {
    /// An engine on the system clock. Errors: an invalid assembler configuration.
    pub fn new(
        rules: RuleSet,
        config: AssemblerConfig,
    ) -> Result<StreamEngine, AssemblerConfigError> {
        StreamEngine::with_clock(rules, config, Arc::new(SystemClock::new()))
    }

    /// An engine whose assembler reads time from `clock` (tests).
    pub fn with_clock(
        rules: RuleSet,
        config: AssemblerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<StreamEngine, AssemblerConfigError> {
        Ok(StreamEngine {
            assembler: TraceAssembler::with_clock(config, clock)?,
            rules: ArcSwap::from_pointee(rules),
        })
    }

    /// The rule set in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Replaces the rule set; traces released from now on use `rules`. Buffered spans are
    /// untouched. Returns the previous set.
    pub fn swap_rules(&self, rules: RuleSet) -> Arc<RuleSet> {
        self.rules.swap(Arc::new(rules))
    }

    /// The assembler (for its counters and configuration).
    pub fn assembler(&self) -> &TraceAssembler {
        &self.assembler
    }

    /// Buffers spans; evaluates traces this batch completed (span cap, eviction).
    pub fn ingest(&self, spans: Vec<Span>) -> Result<Vec<TraceEvaluation>, Refused> {
        match self.assembler.ingest(spans) {
            IngestOutcome::Accepted { completed } => Ok(self.evaluate(completed)),
            IngestOutcome::Refused { reason, spans } => Err(Refused { reason, spans }),
        }
    }

    /// Evaluates the traces whose completion trigger has fired (call periodically).
    pub fn poll(&self) -> Vec<TraceEvaluation> {
        self.evaluate(self.assembler.poll_expired())
    }

    /// Evaluates every buffered trace now (`completion_reason = flush`).
    pub fn flush(&self) -> Vec<TraceEvaluation> {
        self.evaluate(self.assembler.flush())
    }

    /// Stops accepting spans and evaluates every buffered trace (`shutdown`).
    pub fn shutdown(&self) -> Vec<TraceEvaluation> {
        self.evaluate(self.assembler.shutdown())
    }

    fn evaluate(&self, completed: Vec<CompletedTrace>) -> Vec<TraceEvaluation> {
        if completed.is_empty() {
            return Vec::new();
        }
        let rules = self.rules.load_full();
        let now = now_unix_nanos();
        let one = |c: CompletedTrace| evaluate_completed(&rules, c, now);
        if completed.len() == 1 {
            completed.into_iter().map(one).collect()
        } else {
            completed.into_par_iter().map(one).collect()
        }
    }
}
