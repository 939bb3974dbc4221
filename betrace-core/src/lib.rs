//! BeTrace engine (ENGINE.md): the span model, OTLP input, the VM that runs compiled rules,
//! rule sets, streaming trace assembly, violations and their signatures.
//!
//! # Verifying a violation's signature
//!
//! A signed [`Violation`] carries `signature = "v1:" + hex(HMAC-SHA256(key, canonical))`,
//! where `canonical` is the RFC 8785 canonical JSON of the violation without `signature`
//! (ENGINE.md §7; details in [`sign`]). A violation holds no numbers and only ASCII keys, so
//! Python's `json.dumps(…, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` yields
//! the same bytes, and this standard-library script verifies one:
//!
//! ```python
#![doc = include_str!("../docs/verify_signature.py")]
//! ```
#![forbid(unsafe_code)]

pub mod assemble;
pub mod engine;
pub mod input;
pub mod json;
pub mod otlp;
pub mod prepared;
pub mod rules;
pub mod sign;
pub mod span;
pub mod stream;
pub mod trace;
pub mod value;
pub mod violation;
pub mod vm;

pub use assemble::{AssemblerConfig, CompletedTrace, TraceAssembler};
pub use input::simple_json::{
    SimpleJsonDecoder, SimpleJsonError, decode_simple_json, span_from_simple_json,
    spans_from_simple_json,
};
pub use input::{
    Decoded, EnumDraft, IdDraft, InputFormat, JsonInputError, OtlpError, SpanDraft, SpanError,
    decode_json, decode_otlp_json, decode_otlp_json_value, decode_otlp_protobuf,
    decode_otlp_request, unsupported_json_format,
};
pub use prepared::PreparedTrace;
pub use rules::Rule;
pub use span::{AttrValue, Attributes, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};
pub use trace::{SpanIndex, Trace, group_by_trace};
pub use value::Value;
pub use violation::{
    ClauseTexts, CompletionReason, FailedClause, Severity, SpanRef, UnixMillis, Violation,
    ViolationParts,
};
pub use vm::{EvalError, EvalOptions, Outcome, evaluate};
