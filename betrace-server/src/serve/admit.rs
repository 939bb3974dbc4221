//! Admission (SERVER.md §1 "Ingest", "Security"): the bearer-token check of every listener and
//! what every receiver — OTLP/HTTP `POST /v1/traces`, OTLP/gRPC `TraceService/Export`,
//! `POST /v1/spans` — does with a request it has decoded. The receivers only translate: HTTP
//! status or gRPC code, and their body encodings.
//!
//! [`Admission::accept`] counts every span of the request once in
//! `betrace_spans_received_total{transport}`, refuses the whole request while shutting down or
//! past `server.max_spans_per_request`, counts the spans the decoder rejected
//! (`rejected{invalid}`) and the attributes it dropped for nesting (`attributes_dropped{depth}`),
//! and hands the rest to the [`Pipeline`] (which counts its own refusals).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use betrace_core::{Decoded, SpanError};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::metrics::Metrics;
use super::pipeline::{IngestError, Pipeline};
use super::spool::RecordKind;

/// Seconds a client is told to wait after a 429 or 503 (`Retry-After`, gRPC `RetryInfo`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The answer to a request without the right token, HTTP 401 or gRPC `UNAUTHENTICATED`.
pub const UNAUTHENTICATED: &str = "missing or wrong `Authorization: Bearer <token>`";

/// The API token, kept as its SHA-256 and compared in constant time.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn new(token: &str) -> Token {
        Token(Sha256::digest(token.as_bytes()).into())
    }

    /// True when `authorization` — the HTTP `Authorization` header or the gRPC `authorization`
    /// metadata — is `Bearer <token>`: the scheme in any case (RFC 9110 §11.1), blanks around
    /// the token ignored.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some(token) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .and_then(|_| value.get(7..))
        else {
            return false;
        };
        Token::new(token.trim()).0.ct_eq(&self.0).into()
    }
}

/// The receiver a request came through: the `transport` label of
/// `betrace_spans_received_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    OtlpHttp,
    OtlpGrpc,
    SpansApi,
}

impl Transport {
    pub const ALL: [Transport; 3] = [
        Transport::OtlpHttp,
        Transport::OtlpGrpc,
        Transport::SpansApi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::OtlpHttp => "otlp_http",
            Transport::OtlpGrpc => "otlp_grpc",
            Transport::SpansApi => "spans_api",
        }
    }
}

/// Why a whole request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the request holds {total} spans, more than server.max_spans_per_request ({max})")]
    TooManySpans { total: usize, max: usize },
    #[error(transparent)]
    Pipeline(IngestError),
}

impl Refusal {
    /// The OTLP/HTTP status (OTLP specification, "OTLP/HTTP Response").
    pub fn http_status(&self) -> StatusCode {
        match self {
            Refusal::TooManySpans { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Pipeline(IngestError::Backpressure) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::ShuttingDown
            | Refusal::Pipeline(IngestError::ShuttingDown | IngestError::StorageUnavailable) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The gRPC status code (OTLP specification, "OTLP/gRPC Response"), also the `code` of
    /// the `google.rpc.Status` body of OTLP/HTTP.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Refusal::TooManySpans { .. } => tonic::Code::InvalidArgument,
            Refusal::Pipeline(IngestError::Backpressure) => tonic::Code::ResourceExhausted,
            Refusal::ShuttingDown
            | Refusal::Pipeline(IngestError::ShuttingDown | IngestError::StorageUnavailable) => {
                tonic::Code::Unavailable
            }
        }
    }

    /// True when the client should retry after [`RETRY_AFTER_SECONDS`].
    pub fn retryable(&self) -> bool {
        !matches!(self, Refusal::TooManySpans { .. })
    }
}

/// What an accepted request left out: the spans rejected and the attributes dropped from
/// spans that were kept.
#[derive(Debug, Default)]
pub struct Accepted {
    pub rejected: Vec<SpanError>,
    pub dropped_attributes: Vec<SpanError>,
}

impl Accepted {
    /// The OTLP partial success (OTLP specification, "Partial Success"): `rejected_spans`
    /// counts the rejected spans; `error_message` names the first rejected spans and the
    /// first attributes dropped for nesting too deep (a warning: with only dropped attributes,
    /// `rejected_spans` is 0). `None` when everything was kept.
    pub fn partial_success(&self) -> Option<ExportTracePartialSuccess> {
        let mut parts = Vec::new();
        if !self.rejected.is_empty() {
            parts.push(format!(
                "{} span(s) rejected: {}",
                self.rejected.len(),
                first_few(&self.rejected)
            ));
        }
        if !self.dropped_attributes.is_empty() {
            parts.push(format!(
                "{} attribute(s) dropped: {}",
                self.dropped_attributes.len(),
                first_few(&self.dropped_attributes)
            ));
        }
        (!parts.is_empty()).then(|| ExportTracePartialSuccess {
            rejected_spans: self.rejected.len() as i64,
            error_message: parts.join(". "),
        })
    }
}

/// The first few of `items`, `; `-separated, with how many more.
fn first_few(items: &[SpanError]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = items.iter().take(SHOWN).map(ToString::to_string).collect();
    if items.len() > SHOWN {
        parts.push(format!("and {} more", items.len() - SHOWN));
    }
    parts.join("; ")
}

/// The token check and the door to the pipeline, shared by every listener.
#[derive(Debug)]
pub struct Admission {
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    token: Option<Token>,
    max_spans_per_request: usize,
    /// Set at SIGTERM/SIGINT: requests are refused while the buffered traces drain.
    draining: AtomicBool,
}

impl Admission {
    pub fn new(
        pipeline: Arc<Pipeline>,
        metrics: Arc<Metrics>,
        token: Option<Token>,
        max_spans_per_request: usize,
    ) -> Admission {
        Admission {
            pipeline,
            metrics,
            token,
            max_spans_per_request,
            draining: AtomicBool::new(false),
        }
    }

    /// True when a token is configured.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// True when no token is configured or `authorization` carries it ([`Token::admits`]).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        self.token.as_ref().is_none_or(|t| t.admits(authorization))
    }

    /// Starts refusing requests (shutdown).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Counts, limits and ingests the spans of one decoded request; returns what was left
    /// out. `raw` is the request body (after gzip) for the ingest spool.
    pub fn accept(
        &self,
        decoded: Decoded,
        transport: Transport,
        raw: Option<(RecordKind, &[u8])>,
    ) -> Result<Accepted, Refusal> {
        let total = decoded.total();
        self.metrics.received(transport, total);
        if self.draining() {
            self.metrics.rejected("shutdown", total);
            return Err(Refusal::ShuttingDown);
        }
        let max = self.max_spans_per_request;
        if total > max {
            self.metrics.rejected("limit", total);
            return Err(Refusal::TooManySpans { total, max });
        }
        self.metrics.rejected("invalid", decoded.rejected.len());
        self.pipeline
            .ingest(decoded.spans, raw)
            .map_err(Refusal::Pipeline)?;
        self.metrics
            .attributes_dropped("depth", decoded.dropped_attributes.len());
        Ok(Accepted {
            rejected: decoded.rejected,
            dropped_attributes: decoded.dropped_attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_the_token_exactly() {
        let t = Token::new("s3cret");
        for ok in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret ",
            "bEaReR s3cret",
        ] {
            assert!(t.admits(Some(ok)), "{ok}");
        }
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer S3cret",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearers3cret",
            "Bé",
        ] {
            assert!(!t.admits(Some(bad)), "{bad}");
        }
        assert!(!t.admits(None));
    }

    #[test]
    fn refusals_map_to_one_status_and_one_code() {
        let cases = [
            (
                Refusal::ShuttingDown,
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                true,
            ),
            (
                Refusal::TooManySpans { total: 2, max: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::InvalidArgument,
                false,
            ),
            (
                Refusal::Pipeline(IngestError::Backpressure),
                StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::ResourceExhausted,
                true,
            ),
            (
                Refusal::Pipeline(IngestError::StorageUnavailable),
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                true,
            ),
        ];
        for (r, status, code, retry) in cases {
            assert_eq!(r.http_status(), status, "{r}");
            assert_eq!(r.grpc_code(), code, "{r}");
            assert_eq!(r.retryable(), retry, "{r}");
        }
    }
}
