//! The one validating step of span input (ENGINE.md §2): [`SpanDraft`] → [`Span`].
//!
//! Every converter (OTLP protobuf, OTLP/JSON, simple JSON, the bindings' SDK span readers)
//! reads its format into a [`SpanDraft`]: ids as written (raw bytes, hex text, free text),
//! kind and status code as written (an OTLP number or a name), everything else already typed.
//! [`SpanDraft::into_span`] applies the rules all formats share, with one wording:
//!
//! - a trace id is 16 bytes, a span id 8 (OTLP `trace.proto`); hex text has 32 / 16 digits,
//!   either case; simple-JSON text that is not hex of that length is hashed
//!   ([`trace_id_from_text`], [`span_id_from_text`]);
//! - an all-zero trace or span id is invalid; a parent span id that is absent, empty or all
//!   zeros means a root span;
//! - a span kind is an OTLP number 0–5 or a name (`server`, `SERVER`, `SPAN_KIND_SERVER`);
//!   a status code an OTLP number 0–2 or a name (`error`, `STATUS_CODE_ERROR`);
//! - attribute keys are made unique (a later duplicate replaces the earlier value).
//!
//! Errors name the field as the format writes it ([`Fields`], per [`InputFormat`]).

use std::borrow::Cow;
use std::sync::Arc;

use super::{
    SpanError, dedup_attributes, hex_bytes, span_id_from_text, span_kind_from_name,
    status_code_from_name, trace_id_from_text,
};
use crate::span::{Attributes, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};

/// The format a draft was read from: it decides the field names in errors and how a valid
/// kind or status code is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// OTLP protobuf (`trace.proto` field names: `trace_id`, `status.code`).
    OtlpProtobuf,
    /// OTLP/JSON (lowerCamelCase: `traceId`, `status.code`).
    OtlpJson,
    /// Simple JSON (ENGINE.md §2 item 2: `traceId`, `status`).
    SimpleJson,
    /// An OpenTelemetry Python SDK `ReadableSpan` (`context.trace_id`, `status.status_code`).
    PythonSdk,
    /// An OpenTelemetry JS SDK `ReadableSpan` (`spanContext().traceId`, `status.code`).
    NodeSdk,
}

impl InputFormat {
    /// The field names of this format.
    pub fn fields(self) -> Fields {
        match self {
            InputFormat::OtlpProtobuf => Fields {
                trace_id: "trace_id",
                span_id: "span_id",
                parent_span_id: "parent_span_id",
                kind: "kind",
                status_code: "status.code",
            },
            InputFormat::OtlpJson => Fields {
                trace_id: "traceId",
                span_id: "spanId",
                parent_span_id: "parentSpanId",
                kind: "kind",
                status_code: "status.code",
            },
            InputFormat::SimpleJson => Fields {
                trace_id: "traceId",
                span_id: "spanId",
                parent_span_id: "parentSpanId",
                kind: "kind",
                status_code: "status",
            },
            InputFormat::PythonSdk => Fields {
                trace_id: "context.trace_id",
                span_id: "context.span_id",
                parent_span_id: "parent.span_id",
                kind: "kind",
                status_code: "status.status_code",
            },
            InputFormat::NodeSdk => Fields {
                trace_id: "spanContext().traceId",
                span_id: "spanContext().spanId",
                parent_span_id: "parentSpanContext.spanId",
                kind: "kind",
                status_code: "status.code",
            },
        }
    }

    /// How this format writes a span kind, for the message about one it does not accept.
    fn kinds(self) -> &'static str {
        match self {
            InputFormat::OtlpProtobuf => "an OTLP number 0 to 5",
            InputFormat::OtlpJson | InputFormat::SimpleJson => {
                "an OTLP number 0 to 5 or a name such as `server` or `SPAN_KIND_SERVER`, in any case"
            }
            InputFormat::PythonSdk => {
                "a SpanKind member: INTERNAL, SERVER, CLIENT, PRODUCER or CONSUMER"
            }
            InputFormat::NodeSdk => "a SpanKind number 0 to 4 (INTERNAL to CONSUMER)",
        }
    }

    /// How this format writes a status code, for the message about one it does not accept.
    fn status_codes(self) -> &'static str {
        match self {
            InputFormat::OtlpProtobuf => "an OTLP number 0 to 2",
            InputFormat::OtlpJson | InputFormat::SimpleJson => {
                "an OTLP number 0 to 2 or a name such as `error` or `STATUS_CODE_ERROR`, in any case"
            }
            InputFormat::PythonSdk => "a StatusCode member: UNSET, OK or ERROR",
            InputFormat::NodeSdk => "a SpanStatusCode number 0 to 2 (UNSET, OK, ERROR)",
        }
    }
}

/// The names, as written in the input, of the fields [`SpanDraft::into_span`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub trace_id: &'static str,
    pub span_id: &'static str,
    pub parent_span_id: &'static str,
    pub kind: &'static str,
    pub status_code: &'static str,
}

/// A trace, span or parent span id as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdDraft<'a> {
    /// The field is absent (or `null`): an error for a trace or span id, a root for a parent.
    #[default]
    Absent,
    /// Raw bytes (OTLP protobuf; SDK integers as big-endian bytes).
    Bytes(Cow<'a, [u8]>),
    /// Hex text (OTLP/JSON, the JS SDK): exactly 2 digits per byte, either case.
    Hex(Cow<'a, str>),
    /// Simple-JSON text: hex of the right length is used as is, other non-empty text hashed.
    Text(Cow<'a, str>),
}

/// A span kind or status code as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnumDraft<'a> {
    /// Absent (or `null`): unspecified / unset.
    #[default]
    Absent,
    /// The OTLP number.
    Number(i64),
    /// A name: `server`, `SERVER`, `SPAN_KIND_SERVER` (ASCII case-insensitive).
    Name(Cow<'a, str>),
    /// A value of no accepted spelling, as shown in the message (e.g. `` `2.5` ``).
    Unknown(String),
}

/// One span as read from its input, before the shared checks (module documentation).
#[derive(Debug, Clone)]
pub struct SpanDraft<'a> {
    /// The input format, for messages.
    pub format: InputFormat,
    /// The names of the checked fields as written in this span (defaults: `format.fields()`).
    pub fields: Fields,
    pub trace_id: IdDraft<'a>,
    pub span_id: IdDraft<'a>,
    pub parent_span_id: IdDraft<'a>,
    pub name: String,
    pub kind: EnumDraft<'a>,
    pub status_code: EnumDraft<'a>,
    pub status_message: String,
    /// Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// Span attributes in input order; keys may repeat.
    pub attributes: Attributes,
    pub resource: Arc<Resource>,
    pub scope_name: Arc<str>,
}

impl<'a> SpanDraft<'a> {
    /// An empty draft of `format`: no ids, kind and status absent, times 0, no attributes,
    /// an empty resource and scope name.
    pub fn new(format: InputFormat, resource: Arc<Resource>, scope_name: Arc<str>) -> Self {
        SpanDraft {
            format,
            fields: format.fields(),
            trace_id: IdDraft::Absent,
            span_id: IdDraft::Absent,
            parent_span_id: IdDraft::Absent,
            name: String::new(),
            kind: EnumDraft::Absent,
            status_code: EnumDraft::Absent,
            status_message: String::new(),
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            attributes: Attributes::new(),
            resource,
            scope_name,
        }
    }

    /// The span, or the first problem in field order (trace id, span id, parent span id,
    /// kind, status code) as a [`SpanError`] of span `index`.
    pub fn into_span(self, index: usize) -> Result<Span, SpanError> {
        let f = self.fields;
        let err = |field: &str, message: String| SpanError::new(index, field, message);
        let trace_id = id::<16>(&self.trace_id, "trace id", TRACE)
            .map_err(|m| err(f.trace_id, m))?
            .ok_or_else(|| err(f.trace_id, "missing trace id".into()))?;
        if trace_id == [0; 16] {
            return Err(err(f.trace_id, "an all-zero trace id is invalid".into()));
        }
        let span_id = id::<8>(&self.span_id, "span id", SPAN)
            .map_err(|m| err(f.span_id, m))?
            .ok_or_else(|| err(f.span_id, "missing span id".into()))?;
        if span_id == [0; 8] {
            return Err(err(f.span_id, "an all-zero span id is invalid".into()));
        }
        let parent_span_id = match id::<8>(&self.parent_span_id, "span id", SPAN)
            .map_err(|m| err(f.parent_span_id, m))?
        {
            None | Some([0, 0, 0, 0, 0, 0, 0, 0]) => None,
            Some(id) => Some(SpanId(id)),
        };
        let kind = enum_value(&self.kind, span_kind_from_name, SpanKind::from_otlp)
            .map_err(|shown| {
                err(
                    f.kind,
                    format!(
                        "{shown} is not a span kind (expected {})",
                        self.format.kinds()
                    ),
                )
            })?
            .unwrap_or_default();
        let status_code = enum_value(
            &self.status_code,
            status_code_from_name,
            StatusCode::from_otlp,
        )
        .map_err(|shown| {
            err(
                f.status_code,
                format!(
                    "{shown} is not a status code (expected {})",
                    self.format.status_codes()
                ),
            )
        })?
        .unwrap_or_default();
        Ok(Span {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            parent_span_id,
            name: self.name,
            kind,
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            status_code,
            status_message: self.status_message,
            attributes: dedup_attributes(self.attributes),
            resource: self.resource,
            scope_name: self.scope_name,
        })
    }
}

const TRACE: fn(&str) -> Option<[u8; 16]> = |t| trace_id_from_text(t).map(|id| id.0);
const SPAN: fn(&str) -> Option<[u8; 8]> = |t| span_id_from_text(t).map(|id| id.0);

/// The bytes of an id; `None` when absent (also for empty simple-JSON text, which means no
/// parent; a required id reports it as missing).
fn id<const N: usize>(
    draft: &IdDraft<'_>,
    what: &str,
    from_text: fn(&str) -> Option<[u8; N]>,
) -> Result<Option<[u8; N]>, String> {
    match draft {
        IdDraft::Absent => Ok(None),
        IdDraft::Bytes(b) if b.is_empty() => Ok(None),
        IdDraft::Bytes(b) => <[u8; N]>::try_from(&b[..])
            .map(Some)
            .map_err(|_| format!("a {what} is {N} bytes, found {}", b.len())),
        IdDraft::Hex(t) if t.is_empty() => Ok(None),
        IdDraft::Hex(t) => hex_bytes::<N>(t)
            .map(Some)
            .ok_or_else(|| format!("{} is not a {what} of {} hex digits", quote_str(t), 2 * N)),
        IdDraft::Text(t) => Ok(from_text(t)),
    }
}

/// The value of an enum draft, `None` when absent, `Err` with the value as shown otherwise.
fn enum_value<T>(
    draft: &EnumDraft<'_>,
    by_name: fn(&str) -> Option<T>,
    by_number: fn(i64) -> Option<T>,
) -> Result<Option<T>, String> {
    match draft {
        EnumDraft::Absent => Ok(None),
        EnumDraft::Number(n) => by_number(*n).map(Some).ok_or_else(|| format!("`{n}`")),
        EnumDraft::Name(name) => by_name(name).map(Some).ok_or_else(|| quote_str(name)),
        EnumDraft::Unknown(shown) => Err(shown.clone()),
    }
}

/// User text in backticks, cut after 64 characters.
pub fn quote_str(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("`{}…`", &s[..cut]),
        None => format!("`{s}`"),
    }
}

/// "expected {what}, found {found}": the wording of every type mismatch in span input.
pub fn expected(what: &str, found: &str) -> String {
    format!("expected {what}, found {found}")
}
