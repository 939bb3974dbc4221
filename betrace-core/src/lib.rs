//! BeTrace engine (ENGINE.md): the span model, OTLP input, the VM that runs compiled rules,
//! rule sets, streaming trace assembly, violations and their signatures.
#![forbid(unsafe_code)]

pub mod input;
pub mod otlp;
pub mod span;
pub mod trace;

pub use input::simple_json::{
    SimpleJsonDecoder, SimpleJsonError, decode_simple_json, span_from_simple_json,
    spans_from_simple_json,
};
pub use input::{Decoded, SpanError};
pub use otlp::{
    OtlpError, decode_otlp_json, decode_otlp_json_value, decode_otlp_protobuf, decode_otlp_request,
};
pub use span::{AttrValue, Attributes, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};
pub use trace::{SpanIndex, Trace, group_by_trace};
