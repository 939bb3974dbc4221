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
pub mod rules;
pub mod sign;
pub mod span;
pub mod trace;
pub mod violation;

pub use assemble::{AssemblerConfig, CompletedTrace, TraceAssembler};
pub use rules::Rule;
pub use span::{AttrValue, Attributes, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};
pub use trace::{SpanIndex, Trace};
pub use violation::{
    ClauseTexts, CompletionReason, FailedClause, Severity, SpanRef, Violation, ViolationParts,
};
