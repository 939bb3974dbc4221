//! Streaming evaluation (ENGINE.md §3 swap, §5).
//!
//! In: batches of spans from any number of traces, in any order. Out: one [`TraceEvaluation`]
//! per trace the [`TraceAssembler`] releases, evaluated with the rule set in force at release
//! time. The rule set lives in an [`ArcSwap`]: [`StreamEngine::swap_rules`] replaces it
//! atomically while spans stay buffered, so a rule change applies to every trace evaluated
//! afterwards and nothing buffered is lost.
//!
//! After evaluation the spans of each trace go back to the assembler
//! ([`TraceAssembler::retain`]), so that late spans re-open the whole trace: its violations
//! then carry `evaluation` n > 1. Relating them to the violations of earlier evaluations
//! (supersede, retract: [`crate::violation::reconcile`]) is left to the caller, which holds
//! those.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rayon::prelude::*;

use crate::assemble::{
    AssemblerConfig, AssemblerConfigError, Clock, CompletedTrace, IngestOutcome, RefuseReason,
    SystemClock, TraceAssembler,
};
use crate::engine::{Evaluation, RuleSet, TraceContext, now_unix_nanos};
use crate::span::{Span, TraceId};
use crate::violation::{CompletionReason, Violation};

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

/// Evaluates a trace the assembler released, its completion reason, partiality and
/// evaluation number copied into the violations (signed again with the rule set's key when the
/// number is above 1), `createdAt` = `now_unix_nanos`.
pub fn evaluate_completed(
    rules: &RuleSet,
    completed: CompletedTrace,
    now_unix_nanos: u64,
) -> TraceEvaluation {
    evaluate_completed_keeping(rules, completed, now_unix_nanos).0
}

/// Sets `evaluation` = `number` on violations of evaluation `number` of their trace and signs
/// them again with the rule set's key; nothing to do for the first evaluation.
pub fn number_violations(rules: &RuleSet, violations: &mut [Violation], number: u32) {
    if number <= 1 {
        return;
    }
    for v in violations {
        v.evaluation = number;
        if let Some(key) = &rules.options().signing_key {
            crate::sign::sign_in_place(v, key);
        }
    }
}

/// [`evaluate_completed`], also handing back the trace's spans (deduplicated) for
/// [`TraceAssembler::retain`].
pub fn evaluate_completed_keeping(
    rules: &RuleSet,
    completed: CompletedTrace,
    now_unix_nanos: u64,
) -> (TraceEvaluation, Vec<Span>) {
    let ctx = TraceContext {
        completion_reason: completed.reason,
        partial: completed.partial,
        now_unix_nanos,
    };
    let trace_id = completed.trace_id;
    let number = completed.evaluation;
    let trace = completed.into_trace();
    let mut evaluation = rules.evaluate(&trace, ctx);
    number_violations(rules, &mut evaluation.violations, number);
    let out = TraceEvaluation {
        trace_id,
        completion_reason: ctx.completion_reason,
        partial: ctx.partial,
        evaluation_number: number,
        span_count: trace.len(),
        evaluation,
    };
    (out, trace.into_spans())
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
        let one = |c: CompletedTrace| {
            let (e, spans) = evaluate_completed_keeping(&rules, c, now);
            let _ = self
                .assembler
                .retain(e.trace_id, e.evaluation_number, spans);
            e
        };
        if completed.len() == 1 {
            completed.into_iter().map(one).collect()
        } else {
            completed.into_par_iter().map(one).collect()
        }
    }
}
