//! OTLP/HTTP `POST /v1/traces` and the earlier `POST /v1/spans` (SERVER.md §1 "Ingest").
//!
//! In: an `ExportTraceServiceRequest` as protobuf or OTLP/JSON (gzip allowed), or
//! `{"spans": [simple JSON span…]}`. Out: OTLP responses per the OTLP/HTTP specification —
//! 200 with `ExportTraceServiceResponse` (and `partial_success` naming the rejected spans),
//! 400 with a `google.rpc.Status` for an undecodable body, 413 past the limits, 415 for an
//! unknown content type or encoding, 429 with `Retry-After` under back-pressure, 503 with
//! `Retry-After` while shutting down or while storage fails — each encoded like the request
//! (protobuf or JSON). A 200 means the request is in the ingest spool when there is one
//! (docs/server.md "Durability").

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;
use serde_json::{Value, json};

use super::body::{self, BodyError};
use super::{ApiError, AppState, parse_json};
use crate::serve::admit::{Accepted, RETRY_AFTER_SECONDS, Transport};
use crate::serve::spool::RecordKind;

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn encoding_of(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}

/// The gRPC status code of `google.rpc.Status` for a body that cannot be read.
const INVALID_ARGUMENT: i32 = tonic::Code::InvalidArgument as i32;

fn status_response(enc: Encoding, status: StatusCode, code: i32, message: String) -> Response {
    let mut resp = match enc {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            RpcStatus { code, message }.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (status, Json(json!({"code": code, "message": message}))).into_response(),
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    resp
}

fn body_error(enc: Encoding, e: BodyError) -> Response {
    match e {
        BodyError::TooLarge(m) => {
            status_response(enc, StatusCode::PAYLOAD_TOO_LARGE, INVALID_ARGUMENT, m)
        }
        BodyError::Invalid(m) => status_response(enc, StatusCode::BAD_REQUEST, INVALID_ARGUMENT, m),
        e @ BodyError::Encoding(_) => status_response(
            enc,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_ARGUMENT,
            e.to_string(),
        ),
    }
}

/// OTLP/HTTP trace export.
#[utoipa::path(post, path = "/v1/traces", tag = "ingest",
    request_body(content = Vec<u8>, description = "ExportTraceServiceRequest as protobuf or OTLP/JSON; gzip allowed", content_type = "application/x-protobuf"),
    responses(
        (status = 200, description = "ExportTraceServiceResponse, with partial_success when spans were rejected"),
        (status = 400, description = "Undecodable body (google.rpc.Status)"),
        (status = 413, description = "Body or spans over the limits"),
        (status = 415, description = "Unsupported content type or encoding"),
        (status = 429, description = "Trace buffer full; Retry-After"),
    ))]
pub async fn otlp_traces(
    State(st): State<super::AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(enc) = encoding_of(&headers) else {
        return status_response(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_ARGUMENT,
            "unsupported Content-Type; send application/x-protobuf or application/json".to_owned(),
        );
    };
    let bytes = match body::read(&headers, body, &st.limits).await {
        Ok(b) => b,
        Err(e) => return body_error(enc, e),
    };
    let decoded = match enc {
        Encoding::Protobuf => betrace_core::decode_otlp_protobuf(&bytes),
        Encoding::Json => betrace_core::decode_otlp_json(&bytes),
    };
    // A JSON body in another trace format (Jaeger, Zipkin, …) is named: in the 400 when it is
    // not an OTLP request at all, else in a partial success that rejects nothing (an OTLP
    // warning) when it yields no spans.
    let other_format = || {
        (enc == Encoding::Json)
            .then(|| serde_json::from_slice::<Value>(&bytes).ok())
            .flatten()
            .and_then(|v| betrace_core::unsupported_json_format(&v))
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            let message = match other_format() {
                Some(m) => format!("{e}: {m}"),
                None => e.to_string(),
            };
            return status_response(enc, StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message);
        }
    };
    let warning = (decoded.total() == 0)
        .then(other_format)
        .flatten()
        .map(|m| format!("no spans read: {m}"));
    let kind = match enc {
        Encoding::Protobuf => RecordKind::OtlpProtobuf,
        Encoding::Json => RecordKind::OtlpJson,
    };
    match st
        .admission
        .accept(decoded, Transport::OtlpHttp, Some((kind, &bytes)))
    {
        Err(r) => status_response(enc, r.http_status(), r.grpc_code() as i32, r.to_string()),
        Ok(accepted) => {
            let partial = accepted.partial_success().or_else(|| {
                warning.map(|error_message| ExportTracePartialSuccess {
                    rejected_spans: 0,
                    error_message,
                })
            });
            match enc {
                Encoding::Protobuf => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse {
                        partial_success: partial,
                    }
                    .encode_to_vec(),
                )
                    .into_response(),
                Encoding::Json => {
                    let body = match partial {
                        Some(p) => json!({"partialSuccess": {
                            "rejectedSpans": p.rejected_spans.to_string(),
                            "errorMessage": p.error_message,
                        }}),
                        None => json!({}),
                    };
                    (StatusCode::OK, Json(body)).into_response()
                }
            }
        }
    }
}

/// The earlier BeTrace span API: simple-JSON spans.
#[utoipa::path(post, path = "/v1/spans", tag = "ingest",
    request_body(content = Object, description = "`{\"spans\": [simple JSON span…]}`"),
    responses(
        (status = 200, description = "`{accepted, rejected, errors: [{index, message}]}`"),
        (status = 400, description = "Not a span list"),
        (status = 413, description = "Body over server.max_bulk_body_bytes (or, inflated, server.max_decompressed_bytes)"),
        (status = 429, description = "Trace buffer full; Retry-After"),
        (status = 503, description = "Shutting down; Retry-After"),
    ))]
pub async fn spans(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let limit = body::BodyLimit {
        bytes: st.limits.max_bulk_body_bytes,
        key: "server.max_bulk_body_bytes",
    };
    let bytes = body::read_within(&headers, body, limit, st.limits.max_decompressed_bytes)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m)
            }
            BodyError::Invalid(m) => ApiError::bad_request(m),
            e @ BodyError::Encoding(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                e.to_string(),
            ),
        })?;
    let value = parse_json(&bytes)?;
    // Jaeger or Zipkin spans would each be rejected for a missing `traceId`: name the format.
    if let Some(message) = betrace_core::unsupported_json_format(&value) {
        return Err(ApiError::bad_request(message));
    }
    let decoded = betrace_core::decode_simple_json(&value)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let accepted = decoded.spans.len();
    match st.admission.accept(
        decoded,
        Transport::SpansApi,
        Some((RecordKind::SimpleJson, &bytes)),
    ) {
        Ok(Accepted { rejected, .. }) => Ok(Json(json!({
            "accepted": accepted,
            "rejected": rejected.len(),
            "errors": rejected.iter().map(|e| json!({"index": e.index, "message": e.to_string()})).collect::<Vec<_>>(),
        }))),
        Err(r) => {
            let status = r.http_status();
            let code = match status {
                StatusCode::TOO_MANY_REQUESTS => "resource_exhausted",
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                _ => "unavailable",
            };
            let mut e = ApiError::new(status, code, r.to_string());
            if r.retryable() {
                e = e.with_retry_after(RETRY_AFTER_SECONDS);
            }
            Err(e)
        }
    }
}
