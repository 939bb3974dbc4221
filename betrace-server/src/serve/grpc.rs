//! OTLP/gRPC receiver (SERVER.md §1 "Ingest"): `opentelemetry.proto.collector.trace.v1.
//! TraceService/Export` on tonic, gzip accepted.
//!
//! In: `ExportTraceServiceRequest`s. Out: `ExportTraceServiceResponse` with `partial_success`
//! for rejected spans; `RESOURCE_EXHAUSTED` under back-pressure, `INVALID_ARGUMENT` past the
//! span limit, `UNAVAILABLE` while shutting down, `UNAUTHENTICATED` without the bearer token.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::http::AppState;
use super::http::ingest::{accept, partial_success};

/// The gRPC trace service.
#[derive(Debug, Clone)]
pub struct GrpcReceiver {
    state: AppState,
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
        let decoded = betrace_core::otlp::decode_otlp_request(request.into_inner());
        match accept(st, decoded, "otlp_grpc") {
            Ok(accepted) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: partial_success(&accepted),
            })),
            Err(r) => Err(Status::new(tonic::Code::from(r.code), r.message)),
        }
    }
}
