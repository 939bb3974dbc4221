//! Request bodies with limits (SERVER.md §1 "Ingest"): the body as received is capped at
//! `max_body_bytes`, and a gzip body is inflated only up to `max_decompressed_bytes` — a gzip
//! bomb is refused without being inflated beyond the limit.
//!
//! In: an HTTP body and its headers. Out: the decoded bytes, or a [`BodyError`].

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

use crate::serve::config::Limits;

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

/// Reads the whole body, then inflates it when `Content-Encoding: gzip`.
pub async fn read(headers: &HeaderMap, body: Body, limits: &Limits) -> Result<Bytes, BodyError> {
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
    let max = limits.max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(too_large(len, max));
    }
    let limited = http_body_util::Limited::new(body, max);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(BodyError::TooLarge(format!(
                    "the request body is larger than server.max_body_bytes ({max} bytes)"
                )));
            }
            return Err(BodyError::Invalid(format!(
                "cannot read the request body: {e}"
            )));
        }
    };
    if gzip {
        gunzip(&bytes, limits.max_decompressed_bytes).map(Bytes::from)
    } else {
        Ok(bytes)
    }
}

fn too_large(len: u64, max: usize) -> BodyError {
    BodyError::TooLarge(format!(
        "the request body has {len} bytes, more than server.max_body_bytes ({max} bytes)"
    ))
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
