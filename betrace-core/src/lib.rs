//! BeTrace engine (ENGINE.md): the span model, OTLP input, the VM that runs compiled rules,
//! rule sets, streaming trace assembly, violations and their signatures.
#![forbid(unsafe_code)]

pub mod prepared;
pub mod span;
pub mod trace;
pub mod value;
pub mod vm;

pub use prepared::PreparedTrace;
pub use span::{AttrValue, Attributes, Resource, Span, SpanId, SpanKind, StatusCode, TraceId};
pub use trace::{SpanIndex, Trace};
pub use value::Value;
pub use vm::{EvalError, EvalOptions, FailedClause, Outcome, evaluate};
