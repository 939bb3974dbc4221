//! Why `betrace-core` reads OTLP/JSON itself rather than through opentelemetry-proto's
//! `with-serde` types (benches/README.md, "OTLP/JSON"): valid OTLP/JSON (OTLP spec,
//! "JSON Protobuf Encoding") that the generated decoding rejects or reads differently, and a
//! bad span that costs the whole request. When one of these starts to pass, revisit the choice.

#![allow(clippy::panic, clippy::unwrap_used)]

use betrace_core::{decode_otlp_json, decode_otlp_request};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

fn document(span_fields: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"op"{span_fields}}}]}}]}}]}}"#
    )
}

/// The spans of `text` through the generated serde, as `betrace-core` spans, or its error.
fn via_proto_serde(text: &str) -> Result<Vec<betrace_core::Span>, String> {
    let request: ExportTraceServiceRequest =
        serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(decode_otlp_request(request).spans)
}

#[test]
fn an_empty_array_value_is_read_by_core_only() {
    let text = document(r#","attributes":[{"key":"list","value":{"arrayValue":{}}}]"#);
    let ours = decode_otlp_json(text.as_bytes()).unwrap();
    assert_eq!(ours.spans.len(), 1);
    assert!(ours.spans[0].attribute("list").is_some());
    match via_proto_serde(&text) {
        Err(_) => {}
        Ok(spans) => assert_ne!(spans, ours.spans, "the generated serde now reads `{{}}`"),
    }
}

#[test]
fn null_for_a_default_is_read_by_core_only() {
    let text = document(r#","parentSpanId":null"#);
    let ours = decode_otlp_json(text.as_bytes()).unwrap();
    assert_eq!(ours.spans.len(), 1);
    assert!(
        via_proto_serde(&text).is_err(),
        "the generated serde now reads `null`"
    );
}

#[test]
fn one_bad_span_costs_the_generated_serde_the_whole_request() {
    let good =
        r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a"}"#;
    let bad = r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"not-hex","name":"b"}"#;
    let text = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{good},{bad}]}}]}}]}}"#);
    let ours = decode_otlp_json(text.as_bytes()).unwrap();
    assert_eq!(ours.spans.len(), 1);
    assert_eq!(ours.rejected.len(), 1);
    assert_eq!(ours.rejected[0].index, 1);
    assert!(via_proto_serde(&text).is_err());
}

#[test]
fn snake_case_field_names_are_read_by_core_only() {
    let text = r#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","name":"op","start_time_unix_nano":"5","end_time_unix_nano":"9"}]}]}]}"#;
    let ours = decode_otlp_json(text.as_bytes()).unwrap();
    assert_eq!(ours.spans.len(), 1);
    match via_proto_serde(text) {
        Err(_) => {}
        Ok(spans) => assert_ne!(
            spans, ours.spans,
            "the generated serde now reads snake_case"
        ),
    }
}
