//! Prometheus metrics (SERVER.md §1 "Health and metrics"), with the `prometheus-client` crate.
//!
//! In: counts from ingest, the assembler's counters, evaluation and export. Out: the text
//! exposition format served at `GET /metrics`. Counter names get `_total` from the crate.

use betrace_core::assemble::AssemblerStats;

use super::admit::Transport;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompletionLabel {
    pub completion_reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabel {
    pub rule_id: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// The `reason` labels of `betrace_spans_rejected_total`.
const REJECT_REASONS: [&str; 5] = ["invalid", "backpressure", "limit", "shutdown", "storage"];

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub spans_received: Family<TransportLabel, Counter>,
    pub spans_rejected: Family<ReasonLabel, Counter>,
    pub spans_dropped: Family<ReasonLabel, Counter>,
    pub late_spans: Counter,
    pub traces_evaluated: Family<CompletionLabel, Counter>,
    pub buffered_spans: Gauge,
    pub buffered_traces: Gauge,
    pub violations: Family<ViolationLabel, Counter>,
    pub rule_evaluation_errors: Family<RuleLabel, Counter>,
    pub evaluation_duration: Histogram,
    pub rules_active: Gauge,
    pub rule_compilations: Counter,
    pub export_spans: Family<ResultLabel, Counter>,
    pub export_queue_depth: Gauge,
    pub attributes_dropped: Family<ReasonLabel, Counter>,
    pub attribute_values_truncated: Counter,
    pub pending_evaluation_spans: Gauge,
    pub violations_store_failed: Counter,
    pub connections_open: Gauge,
    pub connections_closed: Family<ReasonLabel, Counter>,
    pub storage_ok: Gauge,
    pub violations_store_pending: Gauge,
    pub violations_store_retried: Counter,
    pub violations_store_dropped: Counter,
    pub spool_bytes: Gauge,
    pub spool_segments: Gauge,
    pub spool_replayed_spans: Counter,
    pub spool_corrupt_records: Counter,
    pub spool_write_failures: Counter,
    pub spans_ignored: Family<ReasonLabel, Counter>,
    pub traces_reevaluated: Counter,
    pub retained_spans: Gauge,
    pub violations_replaced: Family<ReasonLabel, Counter>,
    sync: Mutex<()>,
    /// The last export failure: message and time (RFC 3339).
    last_export_error: Mutex<Option<(String, String)>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            spans_received: Family::default(),
            spans_rejected: Family::default(),
            spans_dropped: Family::default(),
            late_spans: Counter::default(),
            traces_evaluated: Family::default(),
            buffered_spans: Gauge::default(),
            buffered_traces: Gauge::default(),
            violations: Family::default(),
            rule_evaluation_errors: Family::default(),
            evaluation_duration: Histogram::new(exponential_buckets(0.000_01, 4.0, 10)),
            rules_active: Gauge::default(),
            rule_compilations: Counter::default(),
            export_spans: Family::default(),
            export_queue_depth: Gauge::default(),
            attributes_dropped: Family::default(),
            attribute_values_truncated: Counter::default(),
            pending_evaluation_spans: Gauge::default(),
            violations_store_failed: Counter::default(),
            connections_open: Gauge::default(),
            connections_closed: Family::default(),
            storage_ok: Gauge::default(),
            violations_store_pending: Gauge::default(),
            violations_store_retried: Counter::default(),
            violations_store_dropped: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_segments: Gauge::default(),
            spool_replayed_spans: Counter::default(),
            spool_corrupt_records: Counter::default(),
            spool_write_failures: Counter::default(),
            spans_ignored: Family::default(),
            traces_reevaluated: Counter::default(),
            retained_spans: Gauge::default(),
            violations_replaced: Family::default(),
            sync: Mutex::new(()),
            last_export_error: Mutex::new(None),
        };
        registry.register(
            "betrace_spans_received",
            "Spans received, by transport (otlp_http, otlp_grpc, spans_api)",
            m.spans_received.clone(),
        );
        registry.register(
            "betrace_spans_rejected",
            "Spans refused to the sender, by reason (invalid, backpressure, limit, shutdown, storage)",
            m.spans_rejected.clone(),
        );
        registry.register(
            "betrace_spans_dropped",
            "Spans accepted (answered 2xx) and not evaluated, by reason (shutdown: evaluation did not finish within 120 s of shutdown); refused spans are counted in betrace_spans_rejected only",
            m.spans_dropped.clone(),
        );
        registry.register(
            "betrace_late_spans",
            "Spans that arrived for an already evaluated trace (the trace is evaluated again)",
            m.late_spans.clone(),
        );
        registry.register(
            "betrace_spans_ignored",
            "Spans received and never evaluated, by reason (own_violation: a betrace.violation span of BeTrace's own exporter)",
            m.spans_ignored.clone(),
        );
        registry.register(
            "betrace_traces_reevaluated",
            "Traces evaluated again, whole, because late spans arrived within trace.reevaluate_window",
            m.traces_reevaluated.clone(),
        );
        registry.register(
            "betrace_retained_spans",
            "Spans of evaluated traces kept for re-evaluation (at most trace.max_retained_spans)",
            m.retained_spans.clone(),
        );
        registry.register(
            "betrace_violations_replaced",
            "Violations replaced after a re-evaluation, by reason (superseded, retracted)",
            m.violations_replaced.clone(),
        );
        registry.register(
            "betrace_traces_evaluated",
            "Traces evaluated, by completion reason",
            m.traces_evaluated.clone(),
        );
        registry.register(
            "betrace_buffered_spans",
            "Spans waiting in the trace buffer",
            m.buffered_spans.clone(),
        );
        registry.register(
            "betrace_buffered_traces",
            "Traces waiting in the trace buffer",
            m.buffered_traces.clone(),
        );
        registry.register(
            "betrace_violations",
            "Violations found, by rule and severity",
            m.violations.clone(),
        );
        registry.register(
            "betrace_rule_evaluation_errors",
            "Rule evaluations that failed (e.g. instruction budget), by rule",
            m.rule_evaluation_errors.clone(),
        );
        registry.register(
            "betrace_evaluation_duration_seconds",
            "Time to evaluate the rules against one trace",
            m.evaluation_duration.clone(),
        );
        registry.register(
            "betrace_rules_active",
            "Enabled rules",
            m.rules_active.clone(),
        );
        registry.register(
            "betrace_rule_compilations",
            "Rules parsed, checked and lowered: every rule at start, then each rule created or changed over the API",
            m.rule_compilations.clone(),
        );
        registry.register(
            "betrace_export_spans",
            "Violation spans exported over OTLP, by result (success, failure)",
            m.export_spans.clone(),
        );
        registry.register(
            "betrace_export_queue_depth",
            "Stored violations not yet exported",
            m.export_queue_depth.clone(),
        );
        registry.register(
            "betrace_attributes_dropped",
            "Span attributes dropped, by reason (limit: past the per-span limit; depth: value nested too deep)",
            m.attributes_dropped.clone(),
        );
        registry.register(
            "betrace_attribute_values_truncated",
            "Attribute values truncated to the length limit",
            m.attribute_values_truncated.clone(),
        );
        registry.register(
            "betrace_pending_evaluation_spans",
            "Spans of released traces waiting for evaluation",
            m.pending_evaluation_spans.clone(),
        );
        registry.register(
            "betrace_violations_store_failed",
            "Violations whose store failed (held for a retry, see betrace_violations_store_pending)",
            m.violations_store_failed.clone(),
        );
        registry.register(
            "betrace_connections_open",
            "Open client connections, all listeners",
            m.connections_open.clone(),
        );
        registry.register(
            "betrace_connections_closed",
            "Connections closed by the server, by reason (evicted, idle, header_timeout)",
            m.connections_closed.clone(),
        );
        registry.register(
            "betrace_storage_ok",
            "1 while storage and the ingest spool accept writes, 0 while they fail",
            m.storage_ok.clone(),
        );
        registry.register(
            "betrace_violations_store_pending",
            "Violations held in memory after a failed store, waiting for a retry",
            m.violations_store_pending.clone(),
        );
        registry.register(
            "betrace_violations_store_retried",
            "Violations stored on a retry after a failed store",
            m.violations_store_retried.clone(),
        );
        registry.register(
            "betrace_violations_store_dropped",
            "Violations dropped because the retry queue (storage.retry_queue_violations) was full",
            m.violations_store_dropped.clone(),
        );
        registry.register(
            "betrace_spool_bytes",
            "Bytes in the ingest spool",
            m.spool_bytes.clone(),
        );
        registry.register(
            "betrace_spool_segments",
            "Segment files in the ingest spool",
            m.spool_segments.clone(),
        );
        registry.register(
            "betrace_spool_replayed_spans",
            "Spans read back from the ingest spool at start",
            m.spool_replayed_spans.clone(),
        );
        registry.register(
            "betrace_spool_corrupt_records",
            "Spool records skipped at start because they were torn or corrupt",
            m.spool_corrupt_records.clone(),
        );
        registry.register(
            "betrace_spool_write_failures",
            "Requests refused because the spool could not be written",
            m.spool_write_failures.clone(),
        );
        for r in ["evicted", "idle", "header_timeout"] {
            m.connections_closed
                .get_or_create(&ReasonLabel {
                    reason: r.to_owned(),
                })
                .inc_by(0);
        }
        m.storage_ok.set(1);
        // Families of known labels show from the start, at 0.
        for t in Transport::ALL {
            m.received(t, 0);
        }
        for r in REJECT_REASONS {
            m.rejected_init(r);
        }
        for r in ["limit", "depth"] {
            m.attributes_dropped(r, 0);
        }
        m.dropped("shutdown", 0);
        for r in ["success", "failure", "rejected"] {
            m.exported(r, 0);
        }
        let reason = |r: &str| ReasonLabel {
            reason: r.to_owned(),
        };
        m.spans_ignored
            .get_or_create(&reason("own_violation"))
            .inc_by(0);
        for r in ["superseded", "retracted"] {
            m.violations_replaced.get_or_create(&reason(r)).inc_by(0);
        }
        for r in betrace_core::CompletionReason::ALL {
            if r != betrace_core::CompletionReason::Direct {
                m.traces_evaluated
                    .get_or_create(&CompletionLabel {
                        completion_reason: r.as_str().to_owned(),
                    })
                    .inc_by(0);
            }
        }
        Metrics { registry, ..m }
    }

    /// Brings the counters mirrored from the assembler up to `stats`. The assembler's refused
    /// spans (`spans_dropped`: back-pressure, shut down) are not mirrored: the pipeline counts
    /// each refusal once, as `betrace_spans_rejected_total{reason="backpressure"|"shutdown"}`.
    pub fn sync_assembler(&self, stats: &AssemblerStats) {
        let _guard = self.sync.lock();
        let up = |c: &Counter, to: u64| {
            let now = c.get();
            if to > now {
                c.inc_by(to - now);
            }
        };
        up(&self.late_spans, stats.late_spans);
        up(&self.traces_reevaluated, stats.traces_reevaluated);
        self.retained_spans.set(stats.spans_retained as i64);
        self.buffered_spans.set(stats.spans_buffered as i64);
        self.buffered_traces.set(stats.traces_buffered as i64);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn received(&self, transport: Transport, n: usize) {
        self.spans_received
            .get_or_create(&TransportLabel {
                transport: transport.as_str().to_owned(),
            })
            .inc_by(n as u64);
    }

    fn rejected_init(&self, reason: &str) {
        self.spans_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(0);
    }

    pub fn rejected(&self, reason: &str, n: usize) {
        if n > 0 {
            self.spans_rejected
                .get_or_create(&ReasonLabel {
                    reason: reason.to_owned(),
                })
                .inc_by(n as u64);
        }
    }

    pub fn connection_closed(&self, reason: &str) {
        self.connections_closed
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn attributes_dropped(&self, reason: &str, n: usize) {
        self.attributes_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(n as u64);
    }

    /// Spans received over every transport.
    pub fn spans_received_total(&self) -> u64 {
        Transport::ALL
            .iter()
            .map(|t| {
                self.spans_received
                    .get_or_create(&TransportLabel {
                        transport: t.as_str().to_owned(),
                    })
                    .get()
            })
            .sum()
    }

    /// Spans refused to their senders, every reason.
    pub fn spans_rejected_total(&self) -> u64 {
        REJECT_REASONS
            .iter()
            .map(|r| {
                self.spans_rejected
                    .get_or_create(&ReasonLabel {
                        reason: (*r).to_owned(),
                    })
                    .get()
            })
            .sum()
    }

    pub fn dropped(&self, reason: &str, n: u64) {
        self.spans_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }

    /// Records an export failure (shown by the web UI's status page).
    pub fn export_failed(&self, message: String) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        *self.last_export_error.lock() = Some((message, at));
    }

    /// The last export failure: message and time (RFC 3339).
    pub fn last_export_error(&self) -> Option<(String, String)> {
        self.last_export_error.lock().clone()
    }

    pub fn exported(&self, result: &str, n: usize) {
        self.export_spans
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc_by(n as u64);
    }
}
