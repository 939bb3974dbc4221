//! Span input (ENGINE.md §2): every format BeTrace reads, converted to [`Span`]s through one
//! validating step.
//!
//! Each converter reads its format into [`draft::SpanDraft`]s — [`otlp_proto`] (OTLP protobuf
//! and the gRPC receiver's decoded requests), [`otlp_json`] (OTLP/JSON), [`simple_json`]
//! (simple JSON, the `/v1/spans` shape), and the bindings' readers of SDK span objects — and
//! [`draft::SpanDraft::into_span`] applies the rules they share (ids, kind, status code, unique
//! attribute keys) with one wording. [`detect`] recognises the format of a JSON document.
//!
//! Out: [`Decoded`] for a batch — the spans that converted, and one [`SpanError`] (span index,
//! field as written in the input, message) per span that did not; or an [`OtlpError`] /
//! [`JsonInputError`] when the document as a whole cannot be read.

pub mod detect;
pub mod draft;
pub mod otlp_json;
pub mod otlp_proto;
mod otlp_wire;
pub mod simple_json;

#[cfg(test)]
mod otlp_tests;

pub use detect::{JsonInputError, decode_json, unsupported_json_format};
pub use draft::{EnumDraft, Fields, IdDraft, InputFormat, SpanDraft};
pub use otlp_json::{decode_otlp_json, decode_otlp_json_value};
pub use otlp_proto::{decode_otlp_protobuf, decode_otlp_request};

use std::fmt;
use std::sync::Arc;

use ahash::{AHashMap, AHashSet};
use sha2::{Digest, Sha256};

use crate::span::{Attributes, Span, SpanId, SpanKind, StatusCode, TraceId};

/// One span that could not be converted (ENGINE.md §2: "a typed error naming the span index
/// and field"). Its neighbours are unaffected.
///
/// Displayed as ``span 2: field `attributes.user`: an object is not a valid attribute value``,
/// or `span 2: <message>` when the problem is not one field (e.g. the span is not an object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("span {index}: {}{message}", FieldPrefix(field))]
pub struct SpanError {
    /// Position of the span in its input, from 0. For OTLP: across the whole request, in
    /// document order (resource spans, then scope spans, then spans).
    pub index: usize,
    /// The offending field as written in the input, e.g. `kind`, `startTime`,
    /// `attributes.user`; empty when the span as a whole is wrong.
    pub field: String,
    /// What is wrong, lower case, user text in backticks.
    pub message: String,
}

impl SpanError {
    /// A span error for `field` (may be empty) of span `index`.
    pub fn new(index: usize, field: impl Into<String>, message: impl Into<String>) -> SpanError {
        SpanError {
            index,
            field: field.into(),
            message: message.into(),
        }
    }
}

struct FieldPrefix<'a>(&'a str);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "field `{}`: ", self.0)
        }
    }
}

/// An OTLP body that cannot be read at all (HTTP 400 for the OTLP/HTTP receiver).
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The bytes are not a protobuf `ExportTraceServiceRequest`; the message names the field
    /// path where decoding failed.
    #[error("undecodable OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The bytes are not JSON; the message names the line and column.
    #[error("undecodable OTLP/JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is not shaped like an `ExportTraceServiceRequest`.
    #[error("invalid OTLP/JSON at `{path}`: {message}")]
    Structure {
        /// Where, e.g. `resourceSpans[0].scopeSpans`; empty for the document itself.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The entry of [`Decoded::dropped_attributes`] for `field` of span `index`.
pub(crate) fn deep_attribute(index: usize, field: &str) -> SpanError {
    SpanError::new(
        index,
        field,
        format!("attribute dropped: its value is nested deeper than {MAX_VALUE_DEPTH} levels"),
    )
}

/// The result of converting a batch of spans where each span stands alone (OTLP partial
/// success, `/v1/spans`): the spans that converted, in input order, one error per span that
/// did not, and one entry per attribute removed from a span that was kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Converted spans, in input order.
    pub spans: Vec<Span>,
    /// One error per rejected span, in input order.
    pub rejected: Vec<SpanError>,
    /// Attributes removed because their value nests deeper than [`MAX_VALUE_DEPTH`] (OTLP
    /// input): `field` is `attributes.<key>` or `resource.attributes.<key>`, `index` the span
    /// (for a resource attribute, the first span of that resource). The spans are kept.
    pub dropped_attributes: Vec<SpanError>,
}

impl Decoded {
    /// Number of spans in the input: converted plus rejected.
    pub fn total(&self) -> usize {
        self.spans.len() + self.rejected.len()
    }
}

/// A trace id from simple-JSON text (ENGINE.md §2): 32 hex digits (either case) are used as
/// is; any other non-empty text is hashed (first 16 bytes of SHA-256 of its UTF-8), so equal
/// text always gives the equal id. `None` for `""`.
pub fn trace_id_from_text(text: &str) -> Option<TraceId> {
    if text.is_empty() {
        return None;
    }
    if let Some(id) = hex_bytes(text) {
        return Some(TraceId(id));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&Sha256::digest(text.as_bytes())[..16]);
    Some(TraceId(id))
}

/// `N` bytes from exactly `2N` hex digits, either case (an OTLP/JSON id, OTLP "JSON Protobuf
/// Encoding"); `None` for any other text.
pub fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut id = [0u8; N];
    (text.len() == 2 * N && hex::decode_to_slice(text, &mut id).is_ok()).then_some(id)
}

/// A span id from simple-JSON text (ENGINE.md §2): 16 hex digits (either case) are used as
/// is; any other non-empty text is hashed (first 8 bytes of SHA-256 of its UTF-8), so a
/// parent id written as the same text as a span id links to that span. `None` for `""`.
pub fn span_id_from_text(text: &str) -> Option<SpanId> {
    if text.is_empty() {
        return None;
    }
    if let Some(id) = hex_bytes(text) {
        return Some(SpanId(id));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&Sha256::digest(text.as_bytes())[..8]);
    Some(SpanId(id))
}

/// Interns attribute keys (and scope names) within one decoded batch, so the spans of a
/// request share one allocation per distinct key.
#[derive(Debug, Default)]
pub struct KeyInterner {
    keys: AHashSet<Arc<str>>,
}

impl KeyInterner {
    /// The shared copy of `key`.
    pub fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(key) {
            return Arc::clone(k);
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(Arc::clone(&k));
        k
    }
}

/// Makes attribute keys unique: a later duplicate replaces the value of the first occurrence,
/// which keeps its position (the contract of [`Attributes`]). Lists without duplicates (the
/// normal case) are returned untouched, without allocating when they are short.
pub(crate) fn dedup_attributes(attrs: Attributes) -> Attributes {
    if !has_duplicate_key(&attrs) {
        return attrs;
    }
    let mut position: AHashMap<Arc<str>, usize> = AHashMap::with_capacity(attrs.len());
    let mut out: Attributes = Vec::with_capacity(attrs.len());
    for (key, value) in attrs {
        match position.get(&key) {
            Some(&i) => out[i].1 = value,
            None => {
                position.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    out
}

fn has_duplicate_key(attrs: &Attributes) -> bool {
    const LINEAR_SCAN_MAX: usize = 16;
    if attrs.len() < 2 {
        return false;
    }
    if attrs.len() <= LINEAR_SCAN_MAX {
        return attrs
            .iter()
            .enumerate()
            .any(|(i, (key, _))| attrs[..i].iter().any(|(k, _)| k == key));
    }
    let mut seen: AHashSet<&str> = AHashSet::with_capacity(attrs.len());
    !attrs.iter().all(|(k, _)| seen.insert(&**k))
}

/// Nesting depth allowed for array and key-value-list attribute values (a scalar at the top
/// of an attribute is depth 0, the elements of an array in it depth 1, and so on). Deeper
/// values never recurse without bound: the OTLP converters drop the attribute that holds one
/// ([`Decoded::dropped_attributes`]), the simple-JSON converter and the bindings' converters
/// of SDK span objects reject the span. 30 keeps an OTLP protobuf request holding the deepest
/// allowed value within prost's recursion limit (100 nested messages: 5 down to a span
/// attribute's value, 3 per key-value-list level).
pub const MAX_VALUE_DEPTH: usize = 30;

/// A span kind by name: `server`, `SERVER`, `SPAN_KIND_SERVER` (ASCII case-insensitive,
/// optional `SPAN_KIND_` prefix), as ENGINE.md §2 accepts.
pub(crate) fn span_kind_from_name(name: &str) -> Option<SpanKind> {
    let bare = strip_prefix_ignore_case(name, "span_kind_");
    [
        SpanKind::Unspecified,
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ]
    .into_iter()
    .find(|k| k.as_str().eq_ignore_ascii_case(bare))
}

/// A status code by name: `error`, `ERROR`, `STATUS_CODE_ERROR` (ASCII case-insensitive,
/// optional `STATUS_CODE_` prefix).
pub(crate) fn status_code_from_name(name: &str) -> Option<StatusCode> {
    let bare = strip_prefix_ignore_case(name, "status_code_");
    [StatusCode::Unset, StatusCode::Ok, StatusCode::Error]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(bare))
}

/// `text` without a leading `prefix`, compared ASCII case-insensitively.
pub(crate) fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::AttrValue;

    #[test]
    fn span_error_display_names_index_and_field() {
        let e = SpanError::new(
            2,
            "attributes.user",
            "an object is not a valid attribute value",
        );
        assert_eq!(
            e.to_string(),
            "span 2: field `attributes.user`: an object is not a valid attribute value"
        );
        let e = SpanError::new(0, "", "expected a JSON object");
        assert_eq!(e.to_string(), "span 0: expected a JSON object");
    }

    #[test]
    fn hex_ids_are_used_as_is_in_either_case() {
        let t = trace_id_from_text("0000000000000000000000005EED011F").unwrap();
        assert_eq!(t.to_hex(), "0000000000000000000000005eed011f");
        let s = span_id_from_text("00000000000000AB").unwrap();
        assert_eq!(s.to_hex(), "00000000000000ab");
        assert_eq!(span_id_from_text("00000000000000ab"), Some(s));
    }

    #[test]
    fn other_ids_are_hashed_consistently() {
        let a = span_id_from_text("checkout-1").unwrap();
        assert_eq!(span_id_from_text("checkout-1"), Some(a));
        assert_ne!(span_id_from_text("checkout-2"), Some(a));
        // Hex of the wrong length is hashed too.
        let short = span_id_from_text("abcd").unwrap();
        assert_ne!(short.to_hex(), "000000000000abcd");
        let t = trace_id_from_text("order-42").unwrap();
        assert_eq!(trace_id_from_text("order-42"), Some(t));
        // SHA-256("order-42") truncated to 16 bytes.
        let digest = Sha256::digest(b"order-42");
        assert_eq!(t.0[..], digest[..16]);
        assert_eq!(trace_id_from_text(""), None);
        assert_eq!(span_id_from_text(""), None);
    }

    #[test]
    fn non_ascii_text_of_hex_length_is_hashed_without_panic() {
        // 16 bytes but not hex, with a multi-byte character.
        assert!(span_id_from_text("éééééééé").is_some());
        assert!(trace_id_from_text("0123456789abcdef0123456789abcdeé").is_some());
    }

    #[test]
    fn dedup_keeps_first_position_and_last_value() {
        let attrs = vec![
            ("a".into(), AttrValue::Int(1)),
            ("b".into(), AttrValue::Int(2)),
            ("a".into(), AttrValue::Int(3)),
        ];
        assert_eq!(
            dedup_attributes(attrs),
            vec![
                ("a".into(), AttrValue::Int(3)),
                ("b".into(), AttrValue::Int(2)),
            ]
        );
        let many: Attributes = (0..40)
            .map(|i| (format!("k{}", i % 30).into(), AttrValue::Int(i)))
            .collect();
        let out = dedup_attributes(many);
        assert_eq!(out.len(), 30);
        assert_eq!(out[0], ("k0".into(), AttrValue::Int(30)));
        assert_eq!(out[29], ("k29".into(), AttrValue::Int(29)));
        let unique: Attributes = (0..40)
            .map(|i| (format!("k{i}").into(), AttrValue::Int(i)))
            .collect();
        assert_eq!(dedup_attributes(unique.clone()), unique);
    }

    #[test]
    fn kind_and_status_names() {
        for (text, kind) in [
            ("server", SpanKind::Server),
            ("SERVER", SpanKind::Server),
            ("Server", SpanKind::Server),
            ("SPAN_KIND_SERVER", SpanKind::Server),
            ("span_kind_client", SpanKind::Client),
            ("SPAN_KIND_UNSPECIFIED", SpanKind::Unspecified),
            ("internal", SpanKind::Internal),
            ("producer", SpanKind::Producer),
            ("CONSUMER", SpanKind::Consumer),
        ] {
            assert_eq!(span_kind_from_name(text), Some(kind), "{text}");
        }
        for bad in [
            "",
            "sideways",
            "SPAN_KIND_",
            "SPAN_KIND_SIDEWAYS",
            "serverx",
            "2",
        ] {
            assert_eq!(span_kind_from_name(bad), None, "{bad}");
        }
        for (text, code) in [
            ("ok", StatusCode::Ok),
            ("OK", StatusCode::Ok),
            ("Error", StatusCode::Error),
            ("STATUS_CODE_ERROR", StatusCode::Error),
            ("unset", StatusCode::Unset),
            ("status_code_unset", StatusCode::Unset),
        ] {
            assert_eq!(status_code_from_name(text), Some(code), "{text}");
        }
        for bad in ["", "failed", "STATUS_CODE_", "2"] {
            assert_eq!(status_code_from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefix_strip_is_case_insensitive_and_char_safe() {
        assert_eq!(
            strip_prefix_ignore_case("SPAN_KIND_SERVER", "span_kind_"),
            "SERVER"
        );
        assert_eq!(strip_prefix_ignore_case("server", "span_kind_"), "server");
        assert_eq!(strip_prefix_ignore_case("ééééé", "span_kind_"), "ééééé");
    }
}
