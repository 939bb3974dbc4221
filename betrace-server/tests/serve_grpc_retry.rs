//! OTLP/gRPC back-pressure tells the client to retry: `RESOURCE_EXHAUSTED` with a
//! `google.rpc.RetryInfo` detail (without it, the Collector's OTLP exporter drops the data).
//! Attribute values nested too deep over gRPC: the attribute is dropped, within prost's
//! recursion limit and past it (the receiver decodes the request bytes itself).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn request(trace: u32) -> ExportTraceServiceRequest {
    let spans = (0..10u64)
        .map(|i| Span {
            trace_id: [trace.to_be_bytes().as_slice(), &[1; 12]].concat(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
            name: "op".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn resource_exhausted_carries_retry_info() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "trace:\n  max_buffered_spans: 50\n  reject_when_full: true\n  root_grace: 10s\n  idle_timeout: 10s\n",
    )
    .unwrap();
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        ..Opts::default()
    });
    let endpoint = format!("http://{}", s.otlp_grpc.clone().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
        for trace in 1..=20u32 {
            if let Err(status) = client.export(request(trace)).await {
                return status;
            }
        }
        panic!("no RESOURCE_EXHAUSTED with a 50-span buffer");
    });
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        grpc_retry_info(&status),
        (8, Some(std::time::Duration::from_secs(1)))
    );
    assert!(s.metric("betrace_spans_rejected_total{reason=\"backpressure\"}") > 0.0);
}

fn nested(levels: usize) -> opentelemetry_proto::tonic::common::v1::AnyValue {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, any_value};
    let mut v = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for _ in 0..levels {
        v = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    v
}

#[test]
fn deep_values_over_grpc() {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    let s = Server::test_mode();
    let endpoint = format!("http://{}", s.otlp_grpc.clone().unwrap());
    let with_deep = |levels: usize| {
        let mut r = request(1);
        r.resource_spans[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
            key: "deep".into(),
            value: Some(nested(levels)),
            ..Default::default()
        }];
        r
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
        // Past BeTrace's limit, within prost's and past it: the attribute is dropped, the
        // spans kept.
        for levels in [31, 300] {
            let resp = client.export(with_deep(levels)).await.unwrap().into_inner();
            let partial = resp.partial_success.unwrap();
            assert_eq!(partial.rejected_spans, 0);
            assert!(
                partial.error_message.contains("field `attributes.deep`"),
                "{}",
                partial.error_message
            );
        }
        assert!(
            client
                .export(request(2))
                .await
                .unwrap()
                .into_inner()
                .partial_success
                .is_none()
        );
    });
    assert_eq!(
        s.metric("betrace_attributes_dropped_total{reason=\"depth\"}"),
        2.0
    );
    assert_eq!(
        s.metric("betrace_spans_received_total{transport=\"otlp_grpc\"}"),
        30.0
    );
}
