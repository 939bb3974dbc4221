//! OTLP/gRPC receiver (SERVER.md §1 "Ingest"): `opentelemetry.proto.collector.trace.v1.
//! TraceService/Export` on tonic, gzip accepted.
//!
//! In: `ExportTraceServiceRequest`s. Out: `ExportTraceServiceResponse` with `partial_success`
//! for rejected spans; `RESOURCE_EXHAUSTED` under back-pressure, `INVALID_ARGUMENT` past the
//! span limit, `UNAVAILABLE` while shutting down, `UNAUTHENTICATED` without the bearer token.
//! `RESOURCE_EXHAUSTED` and `UNAVAILABLE` carry a `google.rpc.RetryInfo` detail (retry delay
//! [`RETRY_AFTER_SECONDS`]): the OTLP specification ("OTLP/gRPC Throttling") makes
//! `RESOURCE_EXHAUSTED` retryable only with it, and the Collector's OTLP exporter drops the
//! data otherwise.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::http::AppState;
use super::http::ingest::{RETRY_AFTER_SECONDS, accept, partial_success};

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
            Err(r) => Err(refusal(r.code, r.message)),
        }
    }
}

/// gRPC status codes that tell the client to retry later.
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

/// `google.rpc.Status` with its details, as carried in `grpc-status-details-bin`.
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

/// The status of a refused export; with a `RetryInfo` when the client should retry.
fn refusal(code: i32, message: String) -> Status {
    use prost::Message as _;
    if code != RESOURCE_EXHAUSTED && code != UNAVAILABLE {
        return Status::new(tonic::Code::from(code), message);
    }
    let retry = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: RETRY_AFTER_SECONDS as i64,
            nanos: 0,
        }),
    };
    let details = RpcStatus {
        code,
        message: message.clone(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: retry.encode_to_vec(),
        }],
    };
    Status::with_details(
        tonic::Code::from(code),
        message,
        details.encode_to_vec().into(),
    )
}
