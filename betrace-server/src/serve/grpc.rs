//! OTLP/gRPC receiver (SERVER.md §1 "Ingest"): `opentelemetry.proto.collector.trace.v1.
//! TraceService/Export` on tonic, gzip accepted.
//!
//! In: `ExportTraceServiceRequest`s. Out: `ExportTraceServiceResponse` with `partial_success`
//! for rejected spans; `RESOURCE_EXHAUSTED` under back-pressure, `INVALID_ARGUMENT` past the
//! span limit, `UNAVAILABLE` while shutting down or while storage fails, `UNAUTHENTICATED`
//! without the bearer token.

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
            Err(r) => Err(Status::new(tonic::Code::from(r.code), r.message)),
        }
    }
}
