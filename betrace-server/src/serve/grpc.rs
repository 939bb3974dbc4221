//! OTLP/gRPC receiver (SERVER.md §1 "Ingest"): `opentelemetry.proto.collector.trace.v1.
//! TraceService/Export` on tonic, gzip accepted.
//!
//! In: `ExportTraceServiceRequest`s, taken as bytes (a codec that does not decode) and decoded
//! by [`betrace_core::decode_otlp_protobuf`] like OTLP/HTTP protobuf, so that an attribute
//! value nested past prost's recursion limit drops that attribute instead of failing the
//! request; bytes that are not a request are `INVALID_ARGUMENT`. Out:
//! `ExportTraceServiceResponse` with `partial_success` for rejected spans and dropped
//! attributes; `RESOURCE_EXHAUSTED` under back-pressure, `INVALID_ARGUMENT` past the span
//! limit and past the message size limit, `UNAVAILABLE` while shutting down or while storage
//! fails,
//! `UNAUTHENTICATED` without the bearer token. `RESOURCE_EXHAUSTED` and `UNAVAILABLE` carry a
//! `google.rpc.RetryInfo` detail (retry delay [`RETRY_AFTER_SECONDS`]): the OTLP
//! specification ("OTLP/gRPC Throttling") makes `RESOURCE_EXHAUSTED` retryable only with it,
//! and the Collector's OTLP exporter drops the data otherwise.
//!
//! A message over `server.max_decompressed_bytes` (as sent, or once inflated) is refused by
//! tonic before the handler with `OUT_OF_RANGE` (or `RESOURCE_EXHAUSTED` when inflating);
//! OTLP clients retry `OUT_OF_RANGE` (OTLP specification, "OTLP/gRPC Response": retryable
//! codes), and the same message would be refused forever, so [`status_layer`] turns both into
//! `INVALID_ARGUMENT`, which no OTLP client retries.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{Body, BoxFuture, Bytes, StdError, http};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::admit::{RETRY_AFTER_SECONDS, Refusal, Transport, UNAUTHENTICATED};
use super::config::ConnLimits;
use super::http::AppState;
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
pub fn service(state: AppState) -> TraceServer {
    TraceServer {
        receiver: GrpcReceiver { state },
    }
}

/// `TraceService` as a tower service: what tonic's generated server does, with a codec that
/// hands the handler the request bytes.
#[derive(Debug, Clone)]
pub struct TraceServer {
    receiver: GrpcReceiver,
}

impl tonic::server::NamedService for TraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl<B> tower::Service<http::Request<B>> for TraceServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let receiver = self.receiver.clone();
        Box::pin(async move {
            if req.uri().path() != EXPORT_PATH {
                return Ok(Status::unimplemented(format!(
                    "`{}` is not a method of this server",
                    req.uri().path()
                ))
                .into_http());
            }
            let max = receiver.state.limits.max_decompressed_bytes;
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(ExportMethod(receiver), req).await)
        })
    }
}

struct ExportMethod(GrpcReceiver);

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = self.0.clone();
        Box::pin(async move { receiver.export(request) })
    }
}

/// Requests as their bytes, responses encoded with prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response failed: {e}")))
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        use prost::bytes::Buf as _;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl GrpcReceiver {
    fn export(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let admission = &self.state.admission;
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if !admission.authorized(authorization) {
            return Err(Status::unauthenticated(UNAUTHENTICATED));
        }
        let bytes = request.into_inner();
        let decoded = betrace_core::decode_otlp_protobuf(&bytes)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        match admission.accept(
            decoded,
            Transport::OtlpGrpc,
            Some((RecordKind::OtlpProtobuf, &bytes)),
        ) {
            Ok(accepted) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: accepted.partial_success(),
            })),
            Err(r) => Err(refusal(&r)),
        }
    }
}

/// The status of a refused export; with a `RetryInfo` when the client should retry.
fn refusal(r: &Refusal) -> Status {
    if !r.retryable() {
        return Status::new(r.grpc_code(), r.to_string());
    }
    Status::with_error_details(
        r.grpc_code(),
        r.to_string(),
        ErrorDetails::with_retry_info(Some(Duration::from_secs(RETRY_AFTER_SECONDS))),
    )
}
