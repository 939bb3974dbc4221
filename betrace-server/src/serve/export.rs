//! Export of violations as OTLP spans (SERVER.md §1 "Violations as OTLP spans").
//!
//! In: stored violations, read from the database in insertion order after the export cursor.
//! Out: `ExportTraceServiceRequest`s of `betrace.violation` spans sent over OTLP/gRPC or
//! OTLP/HTTP protobuf. The cursor advances only after the receiver accepted a batch, so every
//! violation is delivered at least once, in order, across restarts; failures are retried
//! with exponential back-off (100 ms doubling to 30 s, with jitter). A batch the receiver
//! refuses as malformed (HTTP 400/401/403/404/413, gRPC `INVALID_ARGUMENT` and the like)
//! cannot succeed by retrying: it is logged, counted as `rejected` and skipped.
//!
//! Each violation becomes one span in the violating trace: trace id of the violation, span
//! id = the first 8 bytes of SHA-256 of the violation id (so a re-export is recognisable as
//! the same span), parent = the violation's `spanId` (the first trigger span, else the first
//! offending span; none only when the violation names no span), a link to every referenced
//! span, start and end = `createdAt`, kind INTERNAL, status ERROR for CRITICAL and HIGH (UNSET
//! for a retraction), resource `service.name=betrace`, instrumentation scope `betrace`
//! ([`SCOPE_NAME`]), and the attributes `betrace.violation=true`,
//! `betrace.violation.{id,rule_id,rule_name,severity,message,failed_clause,signature}` plus
//! `betrace.span_ref.N.{trace_id,span_id,service}` for the first ten references. A record of a
//! re-evaluation adds `betrace.violation.evaluation` (integer) and, when it replaces an
//! earlier violation, `betrace.violation.supersedes` (that id); a retraction adds
//! `betrace.violation.retraction=true`. A consumer gets the final answer by letting a span
//! with `supersedes` replace the span of that id, and dropping both for a retraction.
//!
//! Spans that come back to BeTrace's own receivers ([`is_own_violation`]) are never
//! evaluated, so a pipeline that shares one Collector cannot loop.

use std::sync::Arc;
use std::time::Duration;

use betrace_core::{Severity, Violation};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use prost::Message as _;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use super::config::{ExportConfig, ExportProtocol};
use super::metrics::Metrics;
use super::storage::{Store, StoredViolation};

/// Name of the export cursor in storage.
pub const CURSOR: &str = "otlp";
/// References listed as `betrace.span_ref.N.*` attributes.
pub const MAX_REF_ATTRIBUTES: usize = 10;
/// The instrumentation scope name of exported violation spans.
pub const SCOPE_NAME: &str = "betrace";

/// True for a violation span of BeTrace's own exporter: instrumentation scope [`SCOPE_NAME`]
/// and the span attribute `betrace.violation` = `true` (a boolean). The resource is not
/// looked at, since a Collector may rewrite it.
pub fn is_own_violation(span: &betrace_core::Span) -> bool {
    &*span.scope_name == SCOPE_NAME
        && span
            .attributes
            .iter()
            .any(|(k, v)| &**k == "betrace.violation" && *v == betrace_core::AttrValue::Bool(true))
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.to_owned()))
}

/// The `betrace.violation` span of a violation.
pub fn violation_span(v: &Violation) -> Span {
    let span_id = Sha256::digest(v.id.as_bytes())[..8].to_vec();
    let parent = v.span_id.map(|p| p.0.to_vec()).unwrap_or_default();
    let at = v.created_at.unix_nanos();
    let mut attributes = vec![
        kv("betrace.violation", any_value::Value::BoolValue(true)),
        s("betrace.violation.id", &v.id),
        s("betrace.violation.rule_id", &v.rule_id),
        s("betrace.violation.rule_name", &v.rule_name),
        s("betrace.violation.severity", v.severity.as_str()),
        s("betrace.violation.message", &v.message),
        s("betrace.violation.failed_clause", v.failed_clause.as_str()),
        s(
            "betrace.violation.signature",
            v.signature.as_deref().unwrap_or(""),
        ),
    ];
    if v.evaluation > 1 {
        attributes.push(kv(
            "betrace.violation.evaluation",
            any_value::Value::IntValue(i64::from(v.evaluation)),
        ));
    }
    if let Some(old) = &v.supersedes {
        attributes.push(s("betrace.violation.supersedes", old));
    }
    if v.retraction {
        attributes.push(kv(
            "betrace.violation.retraction",
            any_value::Value::BoolValue(true),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let refs: Vec<_> = v
        .trigger_spans
        .iter()
        .chain(&v.offending_spans)
        .filter(|r| seen.insert((r.trace_id, r.span_id)))
        .collect();
    for (n, r) in refs.iter().take(MAX_REF_ATTRIBUTES).enumerate() {
        attributes.push(s(
            &format!("betrace.span_ref.{n}.trace_id"),
            &r.trace_id.to_hex(),
        ));
        attributes.push(s(
            &format!("betrace.span_ref.{n}.span_id"),
            &r.span_id.to_hex(),
        ));
        attributes.push(s(&format!("betrace.span_ref.{n}.service"), &r.service));
    }
    let links = refs
        .iter()
        .map(|r| span::Link {
            trace_id: r.trace_id.0.to_vec(),
            span_id: r.span_id.0.to_vec(),
            attributes: vec![s("betrace.span_ref.name", &r.name)],
            ..Default::default()
        })
        .collect();
    let error = !v.retraction && matches!(v.severity, Severity::Critical | Severity::High);
    Span {
        trace_id: v.trace_id.0.to_vec(),
        span_id,
        parent_span_id: parent,
        name: "betrace.violation".to_owned(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: at,
        end_time_unix_nano: at,
        attributes,
        links,
        status: Some(Status {
            code: if error {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: if error {
                v.message.clone()
            } else {
                String::new()
            },
        }),
        ..Default::default()
    }
}

/// An export request holding the spans of `violations`.
pub fn export_request(violations: &[Violation]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", "betrace")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans: violations.iter().map(violation_span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

enum Outcome {
    Accepted,
    /// Refused for good (malformed, unauthorized); retrying cannot help.
    Rejected(String),
}

#[derive(Debug)]
enum Client {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

/// The exporter task.
#[derive(Debug)]
pub struct Exporter {
    store: Arc<dyn Store>,
    config: ExportConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    client: Client,
}

impl Exporter {
    /// An exporter to `config.endpoint`; connects lazily.
    pub fn new(
        store: Arc<dyn Store>,
        config: ExportConfig,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Result<Exporter, String> {
        let client = match config.protocol {
            ExportProtocol::Grpc => {
                let channel = tonic::transport::Channel::from_shared(config.endpoint.clone())
                    .map_err(|e| format!("OTLP endpoint `{}`: {e}", config.endpoint))?
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout)
                    .connect_lazy();
                Client::Grpc(TraceServiceClient::new(channel))
            }
            ExportProtocol::HttpProtobuf => {
                let base = config.endpoint.trim_end_matches('/');
                let url = if base.ends_with("/v1/traces") {
                    base.to_owned()
                } else {
                    format!("{base}/v1/traces")
                };
                let client = reqwest::Client::builder()
                    .timeout(config.timeout)
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
                Client::Http { client, url }
            }
        };
        Ok(Exporter {
            store,
            config,
            metrics,
            wake,
            client,
        })
    }

    async fn store_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, super::storage::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn send(&mut self, request: ExportTraceServiceRequest) -> Result<Outcome, String> {
        match &mut self.client {
            Client::Grpc(client) => {
                let mut req = tonic::Request::new(request);
                for (k, v) in &self.config.headers {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        tonic::metadata::MetadataValue::try_from(v.as_str()),
                    ) {
                        req.metadata_mut().insert(k, v);
                    }
                }
                match client.export(req).await {
                    Ok(resp) => Ok(partial(resp.into_inner().partial_success)),
                    Err(status) => {
                        use tonic::Code;
                        match status.code() {
                            Code::InvalidArgument
                            | Code::Unauthenticated
                            | Code::PermissionDenied
                            | Code::NotFound
                            | Code::Unimplemented => Ok(Outcome::Rejected(format!(
                                "{:?}: {}",
                                status.code(),
                                status.message()
                            ))),
                            _ => Err(format!("{:?}: {}", status.code(), status.message())),
                        }
                    }
                }
            }
            Client::Http { client, url } => {
                let mut req = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(request.encode_to_vec());
                for (k, v) in &self.config.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let resp = req.send().await.map_err(|e| e.to_string())?;
                let status = resp.status();
                if status.is_success() {
                    let body = resp.bytes().await.unwrap_or_default();
                    let parsed = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(body.as_ref()).ok();
                    return Ok(partial(parsed.and_then(|p| p.partial_success)));
                }
                match status.as_u16() {
                    400 | 401 | 403 | 404 | 413 => Ok(Outcome::Rejected(format!("HTTP {status}"))),
                    _ => Err(format!("HTTP {status}")),
                }
            }
        }
    }

    /// Exports until `stop` turns true; then exports what is left and returns once the queue
    /// is empty, an export fails, or `2 × otlp.timeout` has passed.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut cursor = match self.store_call(|s| s.cursor(CURSOR)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the export cursor; export is off");
                return;
            }
        };
        let mut backoff = Duration::from_millis(100);
        let mut stopping_since: Option<tokio::time::Instant> = None;
        let batch_size = self.config.batch_size;
        tracing::info!(endpoint = %self.config.endpoint, cursor, "exporting violations over OTLP");
        loop {
            if *stop.borrow() && stopping_since.is_none() {
                stopping_since = Some(tokio::time::Instant::now());
            }
            if let Some(t) = stopping_since
                && t.elapsed() > self.config.timeout * 2
            {
                tracing::warn!("export stopped at shutdown before the queue was empty");
                return;
            }
            let after = cursor;
            let batch = match self
                .store_call(move |s| s.violations_after(after, batch_size))
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "reading violations to export failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Ok(depth) = self.store_call(move |s| s.count_after(after)).await {
                self.metrics.export_queue_depth.set(depth as i64);
            }
            if batch.is_empty() {
                if stopping_since.is_some() {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let last = batch.last().map_or(cursor, |v| v.seq);
            let violations = decode_all(&batch);
            let n = violations.len();
            match self.send(export_request(&violations)).await {
                Ok(outcome) => {
                    match outcome {
                        Outcome::Accepted => self.metrics.exported("success", n),
                        Outcome::Rejected(why) => {
                            tracing::error!(reason = %why, count = n, "the OTLP receiver refused violation spans; skipping them");
                            self.metrics.exported("rejected", n);
                            self.metrics.export_failed(format!(
                                "the OTLP receiver refused {n} violation spans: {why}"
                            ));
                        }
                    }
                    cursor = last;
                    if let Err(e) = self.store_call(move |s| s.set_cursor(CURSOR, last)).await {
                        tracing::error!(error = %e, "saving the export cursor failed");
                    }
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    self.metrics.exported("failure", n);
                    self.metrics.export_failed(e.to_string());
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "exporting violations failed");
                    if stopping_since.is_some() {
                        tracing::warn!(
                            "export stopped at shutdown; the rest is sent after the next start"
                        );
                        return;
                    }
                    let jitter = rand::random_range(0.5..1.0);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

fn partial(
    p: Option<opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess>,
) -> Outcome {
    match p {
        Some(p) if p.rejected_spans > 0 => Outcome::Rejected(format!(
            "{} span(s) rejected: {}",
            p.rejected_spans, p.error_message
        )),
        _ => Outcome::Accepted,
    }
}

fn decode_all(batch: &[StoredViolation]) -> Vec<Violation> {
    batch
        .iter()
        .filter_map(|v| match betrace_core::json::from_value(v.json.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(seq = v.seq, error = %e, "a stored violation cannot be read; not exported");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use betrace_core::violation::{ClauseTexts, FailedClause, SpanRef, ViolationParts};
    use betrace_core::{CompletionReason, TraceId};

    #[test]
    fn span_of_a_violation() {
        let r = |id: &str| SpanRef {
            trace_id: TraceId([1; 16]),
            span_id: id.parse().unwrap(),
            name: "checkout".into(),
            service: "shop".into(),
        };
        let mut v = Violation::new(
            ViolationParts {
                rule_id: "r",
                rule_name: "R",
                expression: "when { checkout } always { fraud }",
                severity: Severity::High,
                clauses: ClauseTexts::default(),
                trace_id: TraceId([1; 16]),
                failed_clause: FailedClause::Always,
                trigger_spans: vec![r("0202020202020202")],
                offending_spans: vec![r("0303030303030303"), r("0202020202020202")],
                truncated: false,
                completion_reason: CompletionReason::Flush,
                partial: false,
            },
            1_700_000_000_000_000_000,
        );
        betrace_core::sign::sign_in_place(&mut v, b"k");
        let span = violation_span(&v);
        assert_eq!(span.trace_id, vec![1; 16]);
        assert_eq!(span.parent_span_id, vec![2; 8]);
        assert_eq!(span.links.len(), 2);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(span.status.unwrap().code, status::StatusCode::Error as i32);
        let attr = |k: &str| {
            span.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            attr("betrace.violation.rule_id"),
            Some(any_value::Value::StringValue("r".into()))
        );
        assert_eq!(
            attr("betrace.span_ref.1.span_id"),
            Some(any_value::Value::StringValue("0303030303030303".into()))
        );
        assert!(attr("betrace.span_ref.2.span_id").is_none());
        assert!(matches!(
            attr("betrace.violation.signature"),
            Some(any_value::Value::StringValue(s)) if s.starts_with("v1:")
        ));
        assert!(attr("betrace.violation.evaluation").is_none());
    }

    #[test]
    fn a_violation_naming_no_span_is_a_root_at_its_millisecond() {
        let v = Violation::new(
            ViolationParts {
                rule_id: "big",
                rule_name: "big",
                expression: "trace.duration > 1s",
                severity: Severity::Low,
                clauses: ClauseTexts::default(),
                trace_id: TraceId([9; 16]),
                failed_clause: FailedClause::Expression,
                trigger_spans: vec![],
                offending_spans: vec![],
                truncated: false,
                completion_reason: CompletionReason::Flush,
                partial: false,
            },
            1_700_000_000_123_456_789,
        );
        let span = violation_span(&v);
        assert_eq!(span.trace_id, vec![9; 16]);
        assert!(span.parent_span_id.is_empty());
        assert!(span.links.is_empty());
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_123_000_000);
        assert_eq!(span.end_time_unix_nano, span.start_time_unix_nano);
    }

    #[test]
    fn a_rule_without_when_parents_to_the_first_offending_span() {
        let v = Violation::new(
            ViolationParts {
                rule_id: "r",
                rule_name: "r",
                expression: "never { debug }",
                severity: Severity::Low,
                clauses: ClauseTexts::default(),
                trace_id: TraceId([1; 16]),
                failed_clause: FailedClause::Never,
                trigger_spans: vec![],
                offending_spans: vec![SpanRef {
                    trace_id: TraceId([1; 16]),
                    span_id: betrace_core::SpanId([4; 8]),
                    name: "debug".into(),
                    service: "shop".into(),
                }],
                truncated: false,
                completion_reason: CompletionReason::Flush,
                partial: false,
            },
            1_700_000_000_000_000_000,
        );
        assert_eq!(violation_span(&v).parent_span_id, vec![4; 8]);
        let r = v.retraction_of(
            2,
            1,
            CompletionReason::RootComplete,
            1_700_000_000_000_000_001,
        );
        let span = violation_span(&r);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
        let has = |k: &str, want: any_value::Value| {
            span.attributes.iter().any(|a| {
                a.key == k && a.value.as_ref().and_then(|v| v.value.clone()) == Some(want.clone())
            })
        };
        assert!(has(
            "betrace.violation.evaluation",
            any_value::Value::IntValue(2)
        ));
        assert!(has(
            "betrace.violation.supersedes",
            any_value::Value::StringValue(v.id.clone())
        ));
        assert!(has(
            "betrace.violation.retraction",
            any_value::Value::BoolValue(true)
        ));
        assert_eq!(span.status.unwrap().code, status::StatusCode::Unset as i32);
    }
}
