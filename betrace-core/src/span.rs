//! The span model (ENGINE.md §2).
//!
//! In: nothing (plain data). Out: [`Span`], the one shape every input (OTLP protobuf,
//! OTLP/JSON, simple JSON, SDK objects of the bindings) is converted to before assembly and
//! evaluation. Times are Unix nanoseconds; ids are raw bytes, rendered as lowercase hex.

use std::fmt;
use std::sync::Arc;

/// 16-byte trace id (OTLP `trace_id`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct TraceId(pub [u8; 16]);

/// 8-byte span id (OTLP `span_id`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// Lowercase hex, 32 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl SpanId {
    /// Lowercase hex, 16 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.to_hex())
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.to_hex())
    }
}

/// Span kind (OTLP `Span.SpanKind`; the discriminant is the OTLP number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum SpanKind {
    #[default]
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    /// The kind for an OTLP number, `None` outside 0..=5.
    pub fn from_otlp(n: i64) -> Option<SpanKind> {
        Some(match n {
            0 => SpanKind::Unspecified,
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => return None,
        })
    }

    /// Lower-case name as used in rules (`server`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// Status code (OTLP `Status.StatusCode`; the discriminant is the OTLP number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum StatusCode {
    #[default]
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    /// The status for an OTLP number, `None` outside 0..=2.
    pub fn from_otlp(n: i64) -> Option<StatusCode> {
        Some(match n {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => return None,
        })
    }

    /// Lower-case name as used in rules (`error`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// An attribute value, keeping its OTLP type (`AnyValue`). Boxed slices rather than `String`
/// and `Vec` keep the value at 24 bytes (buffered spans hold many).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum AttrValue {
    Str(Box<str>),
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Box<[u8]>),
    Array(Box<[AttrValue]>),
    KvList(Box<[(AttrKey, AttrValue)]>),
}

impl AttrValue {
    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// An attribute key. Input converters intern keys per batch, so the spans of one request share
/// one allocation per distinct key.
pub type AttrKey = Arc<str>;

/// Attributes in their input order. Keys are unique within one list: a later duplicate
/// replaces the earlier value when the list is built by an input converter.
pub type Attributes = Vec<(AttrKey, AttrValue)>;

/// The resource a span was produced by (OTLP `Resource`), shared by all spans of one
/// `ResourceSpans`.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Resource {
    /// Resource attributes, `service.name` among them.
    pub attributes: Attributes,
}

impl Resource {
    /// `service.name` as a string, `""` when absent or not a string.
    pub fn service_name(&self) -> &str {
        self.attributes
            .iter()
            .find(|(k, _)| &**k == "service.name")
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// A resource with only `service.name` set.
    pub fn with_service(service: &str) -> Resource {
        Resource {
            attributes: vec![("service.name".into(), AttrValue::Str(service.into()))],
        }
    }
}

/// One span (ENGINE.md §2).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `None` for a root span (OTLP: empty `parent_span_id`).
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    /// Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// Unix nanoseconds.
    pub end_time_unix_nano: u64,
    pub status_code: StatusCode,
    pub status_message: String,
    pub attributes: Attributes,
    pub resource: Arc<Resource>,
    /// Instrumentation scope name, `""` when absent; shared by the spans of one scope.
    pub scope_name: Arc<str>,
}

/// `a − b` of two Unix-nanosecond times, saturating at the bounds of `i64`.
pub(crate) fn signed_difference(a: u64, b: u64) -> i64 {
    let d = i128::from(a) - i128::from(b);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

impl Span {
    /// `service.name` of the span's resource, `""` when absent.
    pub fn service(&self) -> &str {
        self.resource.service_name()
    }

    /// `end − start` in nanoseconds (DSL.md §3.4 `span.duration`): negative for a span that
    /// ends before it starts, saturating at the bounds of `i64`.
    pub fn duration_nanos(&self) -> i64 {
        signed_difference(self.end_time_unix_nano, self.start_time_unix_nano)
    }

    /// The span attribute `key`, else the resource attribute `key` (DSL.md §3.4).
    pub fn attribute(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| &**k == key)
            .or_else(|| self.resource.attributes.iter().find(|(k, _)| &**k == key))
            .map(|(_, v)| v)
    }
}
