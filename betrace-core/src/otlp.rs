//! OTLP input (ENGINE.md §2 item 1), kept under its earlier path: see [`crate::input`].

pub use crate::input::{
    OtlpError, decode_otlp_json, decode_otlp_json_value, decode_otlp_protobuf, decode_otlp_request,
};
