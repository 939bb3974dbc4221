//! OTLP/gRPC receiver (SERVER.md §1 "Ingest"): `opentelemetry.proto.collector.trace.v1.
//! TraceService/Export` on tonic, gzip accepted.
//!
//! In: `ExportTraceServiceRequest`s. Out: `ExportTraceServiceResponse` with `partial_success`
//! for rejected spans; `RESOURCE_EXHAUSTED` with `RetryInfo` (1 s) under back-pressure,
//! `INVALID_ARGUMENT` past the span limit and past the message size limit, `UNAVAILABLE`
//! while shutting down or while storage fails, `UNAUTHENTICATED` without the bearer token.
//!
//! A message over `server.max_decompressed_bytes` (as sent, or once inflated) is refused by
//! tonic before the handler with `OUT_OF_RANGE` (or `RESOURCE_EXHAUSTED` when inflating);
//! OTLP clients retry `OUT_OF_RANGE` (OTLP specification, "OTLP/gRPC Response": retryable
//! codes), and the same message would be refused forever, so [`status_layer`] turns both into
//! `INVALID_ARGUMENT`, which no OTLP client retries.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::time::Duration;

use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::config::ConnLimits;
use super::http::AppState;
use super::http::ingest::{accept, rejection_message};
use super::spool::RecordKind;

/// The gRPC trace service.
#[derive(Debug, Clone)]
pub struct GrpcReceiver {
    state: AppState,
}

/// Requests in progress on one connection (HTTP/2 streams).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Longest time one export call may take before it fails with `CANCELLED`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// tonic's server with the connection limits: an HTTP/2 keep-alive ping after each
/// `idle_timeout` (a peer that does not answer within `header_read_timeout` is dropped), at
/// most [`MAX_STREAMS_PER_CONNECTION`] concurrent requests per connection, each bounded by
/// [`REQUEST_TIMEOUT`]. The connection cap and the idle timeout come from
/// [`super::conn`].
pub fn server_builder(limits: &ConnLimits) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(limits.idle_timeout))
        .http2_keepalive_timeout(Some(limits.header_read_timeout))
}

/// `google.rpc.Status` with its details (`grpc-status-details-bin`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// `RESOURCE_EXHAUSTED` with a `RetryInfo` detail (retry after
/// [`RETRY_AFTER_SECONDS`](super::http::ingest::RETRY_AFTER_SECONDS)): OTLP clients retry
/// `RESOURCE_EXHAUSTED` only when it carries `RetryInfo` (OTLP specification, "OTLP/gRPC
/// Throttling"), and back-pressure is temporary.
fn retryable_exhausted(message: String) -> Status {
    use prost::Message as _;
    let retry = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: super::http::ingest::RETRY_AFTER_SECONDS as i64,
            nanos: 0,
        }),
    };
    let details = RpcStatus {
        code: tonic::Code::ResourceExhausted as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".to_owned(),
            value: retry.encode_to_vec(),
        }],
    };
    Status::with_details(
        tonic::Code::ResourceExhausted,
        message,
        details.encode_to_vec().into(),
    )
}

/// The layer that answers `INVALID_ARGUMENT` where tonic refuses a message over `max` bytes.
pub fn status_layer(
    max: usize,
) -> tower::util::MapResponseLayer<
    impl Fn(axum::http::Response<tonic::body::Body>) -> axum::http::Response<tonic::body::Body> + Clone,
> {
    tower::util::MapResponseLayer::new(move |resp| size_status(resp, max))
}

/// Rewrites a trailers-only answer of tonic's size checks (`grpc-status` in the headers).
fn size_status<B>(mut resp: axum::http::Response<B>, max: usize) -> axum::http::Response<B> {
    let Some(status) = Status::from_header_map(resp.headers()) else {
        return resp;
    };
    let over = match status.code() {
        tonic::Code::OutOfRange => true,
        tonic::Code::ResourceExhausted => status.message().starts_with("Error decompressing"),
        _ => false,
    };
    if over {
        let s = Status::invalid_argument(format!(
            "the request message is larger than server.max_decompressed_bytes ({max} bytes): {}",
            status.message()
        ));
        if s.add_header(resp.headers_mut()).is_err() {
            tracing::warn!("cannot rewrite a gRPC size-limit status");
        }
    }
    resp
}

/// The service with gzip accepted and the decompressed size limit applied.
pub fn service(state: AppState) -> TraceServiceServer<GrpcReceiver> {
    let max = state.limits.max_decompressed_bytes;
    TraceServiceServer::new(GrpcReceiver { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let st = &self.state;
        if let Some(hash) = &st.token_hash {
            let ok = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .is_some_and(|t| {
                    subtle::ConstantTimeEq::ct_eq(&super::http::token_hash(t.trim())[..], &hash[..])
                        .into()
                });
            if !ok {
                return Err(Status::unauthenticated(
                    "missing or wrong `authorization: Bearer <token>`",
                ));
            }
        }
        let request = request.into_inner();
        // The spool keeps the request as protobuf; encoding it again is the cost of that.
        let raw = st
            .pipeline
            .spooling()
            .then(|| prost::Message::encode_to_vec(&request));
        let decoded = betrace_core::otlp::decode_otlp_request(request);
        match accept(
            st,
            decoded,
            "otlp_grpc",
            raw.as_deref().map(|b| (RecordKind::OtlpProtobuf, b)),
        ) {
            Ok(rejected) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected.len() as i64,
                    error_message: rejection_message(&rejected),
                }),
            })),
            Err(r) => {
                let code = tonic::Code::from(r.code);
                if code == tonic::Code::ResourceExhausted {
                    Err(retryable_exhausted(r.message))
                } else {
                    Err(Status::new(code, r.message))
                }
            }
        }
    }
}
