//! One wording and one error contract for span input: the same problem gives the same message
//! through every format (only the field name follows the format), and a batch reports every
//! rejected span with its index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test on unexpected input"
)]

use std::sync::Arc;

use betrace_core::{
    Decoded, IdDraft, InputFormat, Resource, SpanDraft, SpanError, decode_json, decode_otlp_json,
    decode_otlp_json_value, decode_otlp_protobuf,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message as _;
use serde_json::{Value, json};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const ZERO_TRACE: &str = "00000000000000000000000000000000";

/// One span as OTLP protobuf, OTLP/JSON (typed and `Value` readers) and simple JSON; `kind`
/// is the OTLP number.
struct Span<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    kind: i32,
}

impl Span<'_> {
    fn protobuf(&self) -> pb::Span {
        pb::Span {
            trace_id: hex::decode(self.trace_id).unwrap(),
            span_id: hex::decode(self.span_id).unwrap(),
            kind: self.kind,
            name: "op".into(),
            ..Default::default()
        }
    }

    fn otlp_json(&self) -> Value {
        json!({"traceId": self.trace_id, "spanId": self.span_id, "kind": self.kind, "name": "op"})
    }

    fn simple_json(&self) -> Value {
        json!({"traceId": self.trace_id, "spanId": self.span_id, "kind": self.kind,
               "name": "op", "startTime": 1})
    }
}

fn protobuf(spans: &[Span<'_>]) -> Decoded {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            scope_spans: vec![pb::ScopeSpans {
                spans: spans.iter().map(Span::protobuf).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    decode_otlp_protobuf(&request.encode_to_vec()).unwrap()
}

fn otlp_json_document(spans: &[Span<'_>]) -> Value {
    let spans: Vec<Value> = spans.iter().map(Span::otlp_json).collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
}

/// Through the typed reader (bytes) and the `Value` reader; both must agree.
fn otlp_json(spans: &[Span<'_>]) -> Decoded {
    let doc = otlp_json_document(spans);
    let typed = decode_otlp_json(&serde_json::to_vec(&doc).unwrap()).unwrap();
    let value = decode_otlp_json_value(&doc).unwrap();
    assert_eq!(typed, value);
    typed
}

fn simple_json(spans: &[Span<'_>]) -> Decoded {
    let spans: Vec<Value> = spans.iter().map(Span::simple_json).collect();
    decode_json(&Value::Array(spans)).unwrap()
}

/// The one rejection of a one-span batch.
fn only_error(d: Decoded) -> SpanError {
    assert!(d.spans.is_empty(), "{:?}", d.spans);
    assert_eq!(d.rejected.len(), 1, "{:?}", d.rejected);
    d.rejected.into_iter().next().unwrap()
}

fn sdk_draft(format: InputFormat) -> SpanDraft<'static> {
    let mut draft = SpanDraft::new(format, Arc::new(Resource::default()), "".into());
    draft.trace_id = IdDraft::Hex(TRACE.into());
    draft.span_id = IdDraft::Hex("eee19b7ec3c1b174".into());
    draft
}

#[test]
fn an_all_zero_trace_id_reads_the_same_in_every_format() {
    let span = [Span {
        trace_id: ZERO_TRACE,
        span_id: "eee19b7ec3c1b174",
        kind: 1,
    }];
    let mut errors = vec![
        only_error(protobuf(&span)),
        only_error(otlp_json(&span)),
        only_error(simple_json(&span)),
    ];
    // The bindings' SDK readers: Python gives the 128-bit int as bytes, Node the hex text.
    let mut py = sdk_draft(InputFormat::PythonSdk);
    py.trace_id = IdDraft::Bytes(vec![0; 16].into());
    errors.push(py.into_span(0).unwrap_err());
    let mut node = sdk_draft(InputFormat::NodeSdk);
    node.trace_id = IdDraft::Hex(ZERO_TRACE.into());
    errors.push(node.into_span(0).unwrap_err());

    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "trace_id",
            "traceId",
            "traceId",
            "context.trace_id",
            "spanContext().traceId"
        ]
    );
    for e in &errors {
        assert_eq!(e.index, 0);
        assert_eq!(e.message, "an all-zero trace id is invalid", "{e}");
    }
}

#[test]
fn a_bad_kind_and_bad_hex_read_the_same_in_every_json_format() {
    let bad_kind = [Span {
        trace_id: TRACE,
        span_id: "eee19b7ec3c1b174",
        kind: 9,
    }];
    let pb = only_error(protobuf(&bad_kind));
    let otlp = only_error(otlp_json(&bad_kind));
    let simple = only_error(simple_json(&bad_kind));
    for e in [&pb, &otlp, &simple] {
        assert_eq!(e.field, "kind");
        assert!(
            e.message.starts_with("`9` is not a span kind (expected "),
            "{e}"
        );
    }
    // Each format names what it accepts instead.
    assert_eq!(
        pb.message,
        "`9` is not a span kind (expected an OTLP number 0 to 5)"
    );
    assert_eq!(otlp.message, simple.message);

    // A span id of the wrong length: hex text in OTLP/JSON and the JS SDK.
    let short = Span {
        trace_id: TRACE,
        span_id: "eee19b7e",
        kind: 1,
    };
    let otlp = only_error(otlp_json(&[short]));
    let mut node = sdk_draft(InputFormat::NodeSdk);
    node.span_id = IdDraft::Hex("eee19b7e".into());
    let node = node.into_span(0).unwrap_err();
    assert_eq!(otlp.message, "`eee19b7e` is not a span id of 16 hex digits");
    assert_eq!(node.message, otlp.message);
    // In protobuf the same id is 4 bytes.
    let pb = only_error(protobuf(&[Span {
        trace_id: TRACE,
        span_id: "eee19b7e",
        kind: 1,
    }]));
    assert_eq!(pb.message, "a span id is 8 bytes, found 4");
}

#[test]
fn a_batch_reports_every_problem_with_its_index() {
    let good = |span_id| Span {
        trace_id: TRACE,
        span_id,
        kind: 2,
    };
    let batch = [
        good("0000000000000001"),
        Span {
            trace_id: ZERO_TRACE,
            ..good("0000000000000002")
        },
        good("0000000000000003"),
        good("0000000000000000"),
        Span {
            kind: 7,
            ..good("0000000000000005")
        },
        good("0000000000000006"),
    ];
    for (format, d) in [
        ("protobuf", protobuf(&batch)),
        ("OTLP/JSON", otlp_json(&batch)),
        ("simple JSON", simple_json(&batch)),
    ] {
        let rejected: Vec<(usize, &str)> = d
            .rejected
            .iter()
            .map(|e| (e.index, e.message.as_str()))
            .collect();
        assert_eq!(rejected.len(), 3, "{format}: {rejected:?}");
        assert_eq!(
            rejected[..2],
            [
                (1, "an all-zero trace id is invalid"),
                (3, "an all-zero span id is invalid"),
            ],
            "{format}"
        );
        assert_eq!(rejected[2].0, 4, "{format}");
        assert!(
            rejected[2].1.starts_with("`7` is not a span kind"),
            "{format}"
        );
        let kept: Vec<String> = d.spans.iter().map(|s| s.span_id.to_hex()).collect();
        assert_eq!(
            kept,
            ["0000000000000001", "0000000000000003", "0000000000000006"],
            "{format}"
        );
        assert_eq!(d.total(), batch.len());
    }
}

#[test]
fn a_parent_of_all_zeros_or_empty_is_a_root_in_every_format() {
    let mut draft = sdk_draft(InputFormat::PythonSdk);
    draft.parent_span_id = IdDraft::Bytes(vec![0; 8].into());
    assert_eq!(draft.into_span(0).unwrap().parent_span_id, None);
    let mut draft = sdk_draft(InputFormat::NodeSdk);
    draft.parent_span_id = IdDraft::Hex("".into());
    assert_eq!(draft.into_span(0).unwrap().parent_span_id, None);
    let simple = json!([{"traceId": TRACE, "spanId": "eee19b7ec3c1b174",
                         "parentSpanId": "0000000000000000", "startTime": 1}]);
    let d = decode_json(&simple).unwrap();
    assert_eq!(d.spans[0].parent_span_id, None);
}
