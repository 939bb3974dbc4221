//! Request bodies with limits (SERVER.md §1 "Ingest"): the body as received is capped at
//! `max_body_bytes`, and a gzip body is inflated only up to `max_decompressed_bytes` — a gzip
//! bomb is refused without being inflated beyond the limit.
//!
//! REST bodies are bounded per route ([`bounded`]: a `Content-Length` check, axum's
//! `DefaultBodyLimit`, and the name of the setting) and read with the [`Bounded`] extractor;
//! past the limit the answer is 413 with the JSON error shape.
//!
//! In: an HTTP body and its headers. Out: the decoded bytes, or a [`BodyError`].

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use utoipa_axum::router::OpenApiRouter;

use super::{ApiError, AppState};
use crate::serve::config::Limits;

/// The body limit of a route: bytes, and the setting that sets it (for messages).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub bytes: usize,
    pub key: &'static str,
}

impl BodyLimit {
    fn too_large(self, what: String) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body {what} more than {} ({} bytes)",
                self.key, self.bytes
            ),
        )
    }
}

/// Bounds the bodies of `router`'s routes to `bytes` (`key` names the setting in the 413): a
/// `Content-Length` over it is answered before the handler runs, and a body without one is cut
/// by axum's `DefaultBodyLimit` while [`Bounded`] reads it.
pub fn bounded(
    router: OpenApiRouter<AppState>,
    bytes: usize,
    key: &'static str,
) -> OpenApiRouter<AppState> {
    router
        .layer(axum::middleware::from_fn(check_length))
        .layer(DefaultBodyLimit::max(bytes))
        .layer(axum::Extension(BodyLimit { bytes, key }))
}

async fn check_length(req: Request, next: Next) -> Response {
    if let Some(limit) = req.extensions().get::<BodyLimit>().copied()
        && let Some(len) = content_length(req.headers())
        && len > limit.bytes as u64
    {
        drain(req.into_body(), len).await;
        return limit.too_large(format!("has {len} bytes,")).into_response();
    }
    next.run(req).await
}

/// The largest announced body that is read and discarded before a 413 is sent (bytes).
const DRAIN_MAX: u64 = 16 << 20;

/// Reads and discards a refused body of `len` announced bytes when it is at most
/// [`DRAIN_MAX`], so that a client still sending it reads the 413 instead of a reset
/// connection (closing a socket with unread data resets it); larger ones are not read at all.
/// The listener's body-chunk timeout bounds how long this waits.
async fn drain(mut body: Body, len: u64) {
    if len > DRAIN_MAX {
        return;
    }
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            seen += data.len() as u64;
            if seen > DRAIN_MAX {
                return;
            }
        }
    }
}

/// A REST request body within the route's [`BodyLimit`]; past it, 413
/// `{"error": {"code": "payload_too_large", "message"}}` naming the limit and its setting.
#[derive(Debug)]
pub struct Bounded(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Bounded {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Bounded, ApiError> {
        let limit = req.extensions().get::<BodyLimit>().copied();
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Bounded(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(limit
                .unwrap_or(BodyLimit {
                    bytes: 0,
                    key: "the body limit",
                })
                .too_large("has".to_owned())),
            Err(r) => Err(ApiError::bad_request(format!(
                "cannot read the request body: {}",
                r.body_text()
            ))),
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Not readable: broken gzip, connection error (400).
    #[error("{0}")]
    Invalid(String),
    /// A `Content-Encoding` other than gzip or identity (415).
    #[error("unsupported Content-Encoding `{0}`; send gzip or no encoding")]
    Encoding(String),
}

/// Reads the whole body (at most `server.max_body_bytes`), then inflates it when
/// `Content-Encoding: gzip` (at most `server.max_decompressed_bytes`).
pub async fn read(headers: &HeaderMap, body: Body, limits: &Limits) -> Result<Bytes, BodyError> {
    read_within(
        headers,
        body,
        BodyLimit {
            bytes: limits.max_body_bytes,
            key: "server.max_body_bytes",
        },
        limits.max_decompressed_bytes,
    )
    .await
}

/// [`read`] with the limit as received given as `limit`.
pub async fn read_within(
    headers: &HeaderMap,
    body: Body,
    limit: BodyLimit,
    max_decompressed: usize,
) -> Result<Bytes, BodyError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let gzip = match encoding.as_str() {
        "" | "identity" => false,
        "gzip" | "x-gzip" => true,
        other => return Err(BodyError::Encoding(other.to_owned())),
    };
    let max = limit.bytes;
    if let Some(len) = content_length(headers)
        && len > max as u64
    {
        drain(body, len).await;
        return Err(BodyError::TooLarge(format!(
            "the request body has {len} bytes, more than {} ({max} bytes)",
            limit.key
        )));
    }
    let limited = http_body_util::Limited::new(body, max);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(BodyError::TooLarge(format!(
                    "the request body is larger than {} ({max} bytes)",
                    limit.key
                )));
            }
            return Err(BodyError::Invalid(format!(
                "cannot read the request body: {e}"
            )));
        }
    };
    if gzip {
        gunzip(&bytes, max_decompressed).map(Bytes::from)
    } else {
        Ok(bytes)
    }
}

/// Inflates gzip data, refusing to produce more than `max` bytes.
pub fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max));
    let mut decoder = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Invalid(format!("the gzip body cannot be inflated: {e}")))?;
    if out.len() > max {
        return Err(BodyError::TooLarge(format!(
            "the gzip body inflates to more than server.max_decompressed_bytes ({max} bytes)"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_within_and_beyond_the_limit() {
        assert_eq!(gunzip(&gz(b"hello"), 5).unwrap(), b"hello");
        let bomb = gz(&vec![0u8; 10_000_000]);
        assert!(bomb.len() < 20_000);
        assert!(matches!(
            gunzip(&bomb, 1_000_000),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(BodyError::Invalid(_))
        ));
    }
}
