//! One admission for every receiver: the same `Authorization` value is admitted or refused
//! alike by OTLP/HTTP (both listeners), `/v1/spans` and OTLP/gRPC, with the same message; every
//! span of an admitted request is counted once in `betrace_spans_received_total`, whatever
//! happens to it next, and refused requests are answered with one mapping of reasons to codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::json;

const TOKEN: &str = "s3cret";

/// `n` spans of trace `trace` (span ids from 1); with `bad`, one more span with an empty span
/// id, which the decoder rejects.
fn request(trace: u32, n: u64, bad: bool) -> ExportTraceServiceRequest {
    let mut spans: Vec<Span> = (0..n)
        .map(|i| Span {
            trace_id: [trace.to_be_bytes().as_slice(), &[7; 12]].concat(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            name: "op".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        })
        .collect();
    if bad {
        spans.push(Span {
            trace_id: [trace.to_be_bytes().as_slice(), &[7; 12]].concat(),
            name: "no-id".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        });
    }
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

/// What a receiver answered: admitted, or refused with (HTTP status or gRPC code, message).
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Admitted,
    Refused(String),
}

struct Receivers<'a> {
    s: &'a Server,
    http: reqwest::blocking::Client,
    rt: tokio::runtime::Runtime,
}

impl Receivers<'_> {
    fn otlp_http(&self, base: &str, auth: Option<&str>, req: &ExportTraceServiceRequest) -> Answer {
        let mut r = self
            .http
            .post(format!("{base}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        http_answer(r.send().unwrap())
    }

    fn spans_api(&self, auth: Option<&str>, trace: u32, n: u64) -> Answer {
        let spans: Vec<_> = (0..n)
            .map(|i| {
                json!({"traceId": format!("{trace:08x}{}", "07".repeat(12)), "spanId": format!("{:016x}", i + 1),
                       "name": "op", "serviceName": "shop", "startTime": 1000, "endTime": 2000})
            })
            .collect();
        let mut r = self
            .http
            .post(self.s.url("/v1/spans"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&json!({ "spans": spans })).unwrap());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        http_answer(r.send().unwrap())
    }

    fn grpc(&self, auth: Option<&str>, req: ExportTraceServiceRequest) -> Answer {
        let endpoint = format!("http://{}", self.s.otlp_grpc.clone().unwrap());
        self.rt.block_on(async {
            let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
            let mut request = tonic::Request::new(req);
            if let Some(a) = auth {
                request
                    .metadata_mut()
                    .insert("authorization", a.parse().unwrap());
            }
            match client.export(request).await {
                Ok(_) => Answer::Admitted,
                Err(s) if s.code() == tonic::Code::Unauthenticated => {
                    Answer::Refused(format!("unauthenticated: {}", s.message()))
                }
                Err(s) => Answer::Refused(format!("{:?}: {}", s.code(), s.message())),
            }
        })
    }
}

fn http_answer(resp: reqwest::blocking::Response) -> Answer {
    match resp.status().as_u16() {
        200 => Answer::Admitted,
        401 => {
            let body: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
            Answer::Refused(format!(
                "unauthenticated: {}",
                body["error"]["message"].as_str().unwrap()
            ))
        }
        other => Answer::Refused(format!("{other}: {}", resp.text().unwrap())),
    }
}

fn received(s: &Server, transport: &str) -> f64 {
    s.metric(&format!(
        "betrace_spans_received_total{{transport=\"{transport}\"}}"
    ))
}

#[test]
fn every_receiver_checks_the_token_alike_and_counts_each_span_once() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "server:\n  max_spans_per_request: 20\ntrace:\n  root_grace: 30s\n  idle_timeout: 30s\n",
    )
    .unwrap();
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        env: vec![("BETRACE_API_TOKEN", TOKEN.into())],
        ..Opts::default()
    });
    let rx = Receivers {
        s: &s,
        http: reqwest::blocking::Client::new(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    };
    let otlp_listener = s.otlp_http.clone().unwrap();
    let refused = Answer::Refused(
        "unauthenticated: missing or wrong `Authorization: Bearer <token>`".to_owned(),
    );
    let cases: [(Option<&str>, bool); 9] = [
        (None, false),
        (Some(""), false),
        (Some("Bearer wrong"), false),
        (Some("Bearer s3cret2"), false),
        (Some("Basic s3cret"), false),
        (Some("s3cret"), false),
        (Some("Bearer s3cret"), true),
        (Some("bearer s3cret"), true),
        (Some("BEARER  s3cret "), true),
    ];
    let mut trace = 0u32;
    let mut admitted = 0u64;
    for (auth, ok) in cases {
        let want = if ok {
            Answer::Admitted
        } else {
            refused.clone()
        };
        trace += 1;
        assert_eq!(
            rx.otlp_http(&s.http, auth, &request(trace, 3, false)),
            want,
            "main listener /v1/traces, {auth:?}"
        );
        trace += 1;
        assert_eq!(
            rx.otlp_http(&otlp_listener, auth, &request(trace, 3, false)),
            want,
            "OTLP/HTTP listener, {auth:?}"
        );
        trace += 1;
        assert_eq!(rx.spans_api(auth, trace, 3), want, "/v1/spans, {auth:?}");
        trace += 1;
        assert_eq!(
            rx.grpc(auth, request(trace, 3, false)),
            want,
            "OTLP/gRPC, {auth:?}"
        );
        if ok {
            admitted += 3;
        }
    }
    // Refused for the token: nothing read, nothing counted.
    assert_eq!(received(&s, "otlp_http"), (2 * admitted) as f64);
    assert_eq!(received(&s, "spans_api"), admitted as f64);
    assert_eq!(received(&s, "otlp_grpc"), admitted as f64);

    // A span the decoder rejects is counted once as received and once as rejected, over
    // either OTLP transport.
    let auth = Some("Bearer s3cret");
    let before = (received(&s, "otlp_http"), received(&s, "otlp_grpc"));
    let invalid = s.metric("betrace_spans_rejected_total{reason=\"invalid\"}");
    assert_eq!(
        rx.otlp_http(&otlp_listener, auth, &request(100, 4, true)),
        Answer::Admitted
    );
    assert_eq!(rx.grpc(auth, request(101, 4, true)), Answer::Admitted);
    assert_eq!(received(&s, "otlp_http"), before.0 + 5.0);
    assert_eq!(received(&s, "otlp_grpc"), before.1 + 5.0);
    assert_eq!(
        s.metric("betrace_spans_rejected_total{reason=\"invalid\"}"),
        invalid + 2.0
    );

    // Over server.max_spans_per_request: refused alike (HTTP 413, gRPC INVALID_ARGUMENT, the
    // same message), every span counted once as received and as rejected for the limit.
    let limit = s.metric("betrace_spans_rejected_total{reason=\"limit\"}");
    let before = (received(&s, "otlp_http"), received(&s, "otlp_grpc"));
    let message = "the request holds 25 spans, more than server.max_spans_per_request (20)";
    match rx.otlp_http(&otlp_listener, auth, &request(102, 25, false)) {
        Answer::Refused(m) => assert!(m.starts_with("413: ") && m.contains(message), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        rx.grpc(auth, request(103, 25, false)),
        Answer::Refused(format!("InvalidArgument: {message}"))
    );
    assert_eq!(received(&s, "otlp_http"), before.0 + 25.0);
    assert_eq!(received(&s, "otlp_grpc"), before.1 + 25.0);
    assert_eq!(
        s.metric("betrace_spans_rejected_total{reason=\"limit\"}"),
        limit + 50.0
    );

    // What was admitted is evaluated: every trace taken above is released by a flush.
    let flushed = s.flush();
    assert_eq!(flushed, 3 * 4 + 2, "traces admitted");
}
