//! Bounded request bodies, rule field bounds and exact answers of `betrace serve` as a process
//! over loopback: 413 JSON just over each route's body limit and success just under it, 400
//! naming the rule field and its limit, E401 for rule text over the length limit, gRPC
//! `INVALID_ARGUMENT` past the message size, a 429 counted once, 503 while shutting down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn with_config(yaml: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        ..Opts::default()
    });
    (s, dir)
}

/// `value` as JSON padded with trailing spaces to exactly `len` bytes.
fn padded(value: &Value, len: usize) -> Vec<u8> {
    let mut b = serde_json::to_vec(value).unwrap();
    assert!(b.len() <= len, "{} > {len}", b.len());
    b.resize(len, b' ');
    b
}

fn send_raw(s: &Server, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r = s
        .client
        .request(m, s.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = r.text().unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status == 413 {
        assert!(ct.starts_with("application/json"), "413 as {ct}: {text}");
    }
    (status, v)
}

fn assert_413(status: u16, body: &Value, key: &str, what: &str) {
    assert_eq!(status, 413, "{what}: {body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{what}: {body}");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(m.contains(key), "{what}: {m}");
}

const API: usize = 4096;
const BULK: usize = 16384;

#[test]
fn every_rest_route_bounds_its_body() {
    let (s, _dir) = with_config(&format!(
        "server:\n  max_api_body_bytes: {API}\n  max_bulk_body_bytes: {BULK}\n"
    ));
    let rule = |id: &str| json!({"id": id, "expression": "span.name == \"x\""});
    // (method, path, a valid body, the status it gets within the limit)
    let api: Vec<(&str, String, Value, u16)> = vec![
        ("POST", "/v1/rules".into(), rule("r1"), 201),
        ("PUT", "/v1/rules/r1".into(), rule("r1"), 200),
        (
            "PATCH",
            "/v1/rules/r1".into(),
            json!({"enabled": false}),
            200,
        ),
        (
            "POST",
            "/v1/rules/validate".into(),
            json!({"expression": "span.name == \"x\""}),
            200,
        ),
        ("POST", "/api/v1/rules".into(), rule("r2"), 201),
        ("PUT", "/api/v1/rules/r2".into(), rule("r2"), 200),
        (
            "POST",
            "/api/rules".into(),
            json!({"name": "r3", "dsl": "span.name == \"x\""}),
            201,
        ),
        (
            "PUT",
            "/api/rules/r3".into(),
            json!({"name": "r3", "dsl": "span.name == \"y\""}),
            200,
        ),
        (
            "PATCH",
            "/api/rules/r3".into(),
            json!({"enabled": false}),
            200,
        ),
        (
            "POST",
            "/api/v1/rules/validate".into(),
            json!({"expression": "span.name == \"x\""}),
            200,
        ),
        ("POST", "/v1/flush".into(), json!({}), 200),
        ("POST", "/v1/rules/r1/enable".into(), json!({}), 200),
    ];
    for (method, path, body, ok) in &api {
        let (st, e) = send_raw(&s, method, path, padded(body, API + 1));
        assert_413(
            st,
            &e,
            "server.max_api_body_bytes (4096 bytes)",
            &format!("{method} {path}"),
        );
        let (st, e) = send_raw(&s, method, path, padded(body, API));
        assert_eq!(st, *ok, "{method} {path} within the limit: {e}");
    }
    let spans = json!({"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "x", "serviceName": "shop", "startTime": 1000, "endTime": 2000}]});
    let mut test_body = spans.clone();
    test_body["expression"] = json!("span.name == \"x\"");
    let import = json!({"rules": [{"id": "imp", "expression": "span.name == \"x\""}]});
    let bulk: Vec<(&str, Value)> = vec![
        ("/v1/rules/test", test_body.clone()),
        ("/api/v1/rules/test", test_body),
        ("/v1/rules/import", import.clone()),
        ("/api/v1/rules/import", import),
        ("/v1/spans", spans),
    ];
    for (path, body) in &bulk {
        let (st, e) = send_raw(&s, "POST", path, padded(body, BULK + 1));
        assert_413(st, &e, "server.max_bulk_body_bytes (16384 bytes)", path);
        let (st, e) = send_raw(&s, "POST", path, padded(body, BULK));
        assert_eq!(st, 200, "{path} within the limit: {e}");
        // Bulk routes take more than the API limit.
        let (st, e) = send_raw(&s, "POST", path, padded(body, API * 2));
        assert_eq!(st, 200, "{path}: {e}");
    }
    // Without Content-Length (chunked), the limit holds as the body streams in.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(padded(&rule("r9"), API + 1)));
    let r = s
        .client
        .post(s.url("/v1/rules"))
        .header("content-type", "application/json")
        .body(chunked)
        .send()
        .unwrap();
    assert!(r.headers().get("content-length").is_none() || r.status() == 413);
    assert_eq!(r.status(), 413);
    let e: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(e["error"]["code"], "payload_too_large", "{e}");
    let (st, _) = s.get("/v1/rules/r9");
    assert_eq!(st, 404);
    let (st, h) = s.get("/v1/health");
    assert_eq!((st, h["status"].clone()), (200, json!("HEALTHY")));
}

/// Sends the head of a request announcing `len` body bytes and the first bytes of its body,
/// then reads the answer: the server must answer without reading the rest.
fn announce(s: &Server, path: &str, len: usize, start: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = s.http.strip_prefix("http://").unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n{start}"
    )
    .unwrap();
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn default_limits_refuse_a_100_mib_body() {
    let s = Server::test_mode();
    const HUGE: usize = 100 * 1024 * 1024;
    let (st, e) = announce(
        &s,
        "/v1/rules",
        HUGE,
        "{\"id\": \"big\", \"expression\": \"span.name == 1\", \"description\": \"xxxx",
    );
    assert_413(
        st,
        &e,
        "server.max_api_body_bytes (1048576 bytes)",
        "POST /v1/rules",
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("104857600 bytes"),
        "{e}"
    );
    let (st, e) = announce(&s, "/v1/rules/validate", HUGE, "{\"expression\": \"xxxx");
    assert_413(
        st,
        &e,
        "server.max_api_body_bytes",
        "POST /v1/rules/validate",
    );
    let (st, _) = s.get("/v1/rules/big");
    assert_eq!(st, 404);
    // Just over and at the default limit.
    let rule = json!({"id": "ok", "expression": "span.name == \"x\""});
    let (st, e) = send_raw(&s, "POST", "/v1/rules", padded(&rule, 1024 * 1024 + 1));
    assert_413(st, &e, "server.max_api_body_bytes", "POST /v1/rules");
    let (st, r) = send_raw(&s, "POST", "/v1/rules", padded(&rule, 1024 * 1024));
    assert_eq!(st, 201, "{r}");
}

#[test]
fn rule_fields_are_bounded_naming_field_and_limit() {
    let s = Server::test_mode();
    let base = || json!({"expression": "span.name == \"x\""});
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let cases = [
        (
            with("name", json!("n".repeat(257))),
            "field `name`: 257 bytes, longer than the limit of 256 bytes",
        ),
        (
            with("description", json!("d".repeat(16 * 1024 + 1))),
            "field `description`: 16385 bytes, longer than the limit of 16384 bytes",
        ),
        (
            with(
                "tags",
                json!((0..65).map(|i| format!("t{i}")).collect::<Vec<_>>()),
            ),
            "field `tags`: 65 tags, more than the limit of 64",
        ),
        (
            with("tags", json!(["ok", "t".repeat(129)])),
            "field `tags[1]`: 129 bytes, longer than the limit of 128 bytes",
        ),
    ];
    for (body, message) in &cases {
        let (st, e) = s.post("/v1/rules", body);
        assert_eq!(st, 400, "{e}");
        assert_eq!(e["error"]["message"], *message);
        let (st, e) = s.post("/api/v1/rules", body);
        assert_eq!(st, 400, "{e}");
        assert_eq!(e["message"], *message);
    }
    // At the limits: accepted.
    let mut b = base();
    b["id"] = json!("at-limits");
    b["name"] = json!("n".repeat(256));
    b["description"] = json!("d".repeat(16 * 1024));
    b["tags"] = json!((0..64).map(|i| format!("{i:0>128}")).collect::<Vec<_>>());
    s.create_rule(&b);
    // A change over a limit is refused and the rule kept.
    let (st, e) = s.send(
        "PATCH",
        "/v1/rules/at-limits",
        Some(&json!({"name": "n".repeat(300)})),
    );
    assert_eq!(st, 400, "{e}");
    let (_, r) = s.get("/v1/rules/at-limits");
    assert_eq!(r["name"].as_str().unwrap().len(), 256);
    // Import reports the field per rule.
    let file = json!({"rules": [
        {"id": "fine", "expression": "span.name == \"x\""},
        {"id": "long", "expression": "span.name == \"x\"", "description": "d".repeat(20_000)},
    ]});
    let (st, r) = s.post("/v1/rules/import", &file);
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["created"].clone(), r["failed"].clone()),
        (json!(1), json!(1))
    );
    assert!(
        r["results"][1]["message"]
            .as_str()
            .unwrap()
            .contains("field `description`"),
        "{r}"
    );
}

#[test]
fn rule_text_over_the_limit_is_e401() {
    let s = Server::test_mode();
    let long = format!("span.name == \"{}\"", "a".repeat(64 * 1024));
    let (st, e) = s.post("/v1/rules", &json!({"id": "long", "expression": long}));
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["code"], "invalid_expression");
    assert_eq!(e["error"]["diagnostics"][0]["code"], "E401", "{e}");
    let (st, v) = s.post("/v1/rules/validate", &json!({"expression": long}));
    assert_eq!(st, 200);
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["code"], "E401");
    assert!(
        v["error"].as_str().unwrap().starts_with("1:1: E401 "),
        "{v}"
    );
    let (st, e) = s.post(
        "/v1/rules/test",
        &json!({"expression": long, "span": {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "x"}}),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["diagnostics"][0]["code"], "E401");

    // A smaller configured limit is E401 too, naming the setting.
    let (s, _dir) = with_config("rules:\n  max_expression_length: 100\n");
    let text = format!("span.name == \"{}\"", "a".repeat(100));
    let (st, e) = s.post("/v1/rules", &json!({"id": "long", "expression": text}));
    assert_eq!(st, 400);
    let d = &e["error"]["diagnostics"][0];
    assert_eq!(d["code"], "E401", "{e}");
    assert_eq!(d["ruleId"], "long", "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("rules.max_expression_length (100 bytes)"),
        "{d}"
    );
    let (st, _) = s.post(
        "/v1/rules",
        &json!({"id": "short", "expression": "span.name == \"a\""}),
    );
    assert_eq!(st, 201);
}

fn grpc_export(
    addr: &str,
    request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    gzip: bool,
) -> Result<(), tonic::Status> {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = TraceServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        if gzip {
            c = c.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        c.export(request).await.map(|_| ())
    })
}

/// One span with a `payload` attribute of `bytes` bytes.
fn request_of(
    bytes: usize,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "op".into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    attributes: vec![KeyValue {
                        key: "payload".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("z".repeat(bytes))),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn grpc_message_over_the_limit_is_invalid_argument() {
    let (s, _dir) = with_config("server:\n  max_decompressed_bytes: 100000\n");
    let addr = s.otlp_grpc.clone().unwrap();
    grpc_export(&addr, request_of(1000), false).unwrap();
    for gzip in [false, true] {
        let e = grpc_export(&addr, request_of(200_000), gzip).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "gzip {gzip}: {e:?}");
        assert!(
            e.message()
                .contains("server.max_decompressed_bytes (100000 bytes)"),
            "{e:?}"
        );
    }
    grpc_export(&addr, request_of(1000), true).unwrap();
}

#[test]
fn a_429_is_counted_once() {
    let (s, _dir) = with_config(
        "trace:\n  max_buffered_spans: 20\n  reject_when_full: true\n  root_grace: 10s\n  idle_timeout: 10s\n",
    );
    let mut refused = 0u64;
    for i in 0..10u32 {
        let spans: Vec<Value> = (0..10)
            .map(|j| json!({"traceId": format!("{:032x}", i + 1), "spanId": format!("{:016x}", j + 1), "name": "op", "serviceName": "shop", "startTime": 1000, "endTime": 2000}))
            .collect();
        let (st, e) = s.post("/v1/spans", &json!({ "spans": spans }));
        match st {
            200 => {}
            429 => refused += 10,
            other => panic!("{other}: {e}"),
        }
    }
    assert!(refused > 0);
    assert_eq!(
        s.metric("betrace_spans_rejected_total{reason=\"backpressure\"}"),
        refused as f64
    );
    let (_, text) = s.get_text("/metrics");
    let dropped: f64 = text
        .lines()
        .filter(|l| l.starts_with("betrace_spans_dropped_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(dropped, 0.0, "{text}");
}

#[test]
fn shutdown_answers_503_while_draining() {
    let (mut s, _dir) = with_config("server:\n  shutdown_delay: 3s\n");
    s.create_rule(&json!({"id": "every-op", "expression": "span.name == \"op\""}));
    let span = |id: &str| json!({"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": id, "name": "op", "serviceName": "shop", "startTime": 1000, "endTime": 2000}]});
    let (st, _) = s.post("/v1/spans", &span("0102030405060708"));
    assert_eq!(st, 200);
    let ok = Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let (st, e) = loop {
        let r = s
            .client
            .post(s.url("/v1/spans"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&span("0102030405060709")).unwrap())
            .send()
            .unwrap();
        if r.status() == 503 {
            assert!(r.headers().get("retry-after").is_some());
            break (
                503,
                serde_json::from_str::<Value>(&r.text().unwrap()).unwrap(),
            );
        }
        assert!(Instant::now() < deadline, "no 503 after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st, 503);
    assert_eq!(e["error"]["code"], "shutting_down", "{e}");
    let (st, r) = s.get("/v1/ready");
    assert_eq!((st, r["status"].clone()), (503, json!("SHUTTING_DOWN")));
    let (st, _) = s.get("/v1/rules");
    assert_eq!(st, 503);
    let (st, _) = s.get("/v1/health");
    assert_eq!(st, 200);
    let r = s.post_raw(
        "/v1/traces",
        "application/json",
        None,
        serde_json::to_vec(&json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "0102030405060708090a0b0c0d0e0f11", "spanId": "0102030405060708", "name": "op", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
        ]}]}]}))
        .unwrap(),
    );
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let b: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(b["code"], 14, "{b}");
    let e = grpc_export(s.otlp_grpc.as_deref().unwrap(), request_of(10), false).unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert_eq!(
        s.metric("betrace_spans_rejected_total{reason=\"shutdown\"}"),
        2.0
    );
    let status = s.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}\n{}", s.stderr());
    // The span accepted before the signal was evaluated at shutdown.
    assert!(
        s.stderr().contains("buffered traces evaluated at shutdown"),
        "{}",
        s.stderr()
    );
}

/// One span in a trace of its own (trace id bytes all `i`).
fn trace_request(
    i: u8,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let mut r = request_of(10);
    let span = &mut r.resource_spans[0].scope_spans[0].spans[0];
    span.trace_id = vec![i.max(1); 16];
    r
}

#[test]
fn grpc_back_pressure_carries_retry_info() {
    let (s, _dir) = with_config(
        "trace:\n  max_buffered_spans: 3\n  reject_when_full: true\n  root_grace: 10s\n  idle_timeout: 10s\n",
    );
    let addr = s.otlp_grpc.clone().unwrap();
    let refused = (1..=10u8)
        .map(|i| grpc_export(&addr, trace_request(i), false))
        .find_map(Result::err)
        .expect("a 3-span buffer refuses the 4th trace");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(grpc_retry_info(&refused), (8, Some(Duration::from_secs(1))));
}
