//! The REST API of `betrace serve` as a process: rules, violations, bad input, security,
//! the OpenAPI document, durability, back-pressure, configuration (compatibility routes:
//! `serve_compat.rs`; body limits and exact codes: `serve_limits.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use prost::Message;
use serde_json::{Value, json};

fn span(trace: &str, id: &str, name: &str, extra: Value) -> Value {
    let mut s = json!({
        "traceId": trace, "spanId": id, "name": name, "serviceName": "shop",
        "startTime": 1_000, "endTime": 2_000,
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut s, extra) {
        m.extend(e);
    }
    s
}

#[test]
fn rules_crud() {
    let s = Server::test_mode();
    let r = s.create_rule(&json!({"name": "no-errors", "expression": "never { payment.where(span.status == error) }", "severity": "high", "tags": ["pay"]}));
    assert_eq!(r["id"], "no-errors");
    assert_eq!(r["severity"], "HIGH");
    assert_eq!(r["enabled"], true);
    // A name that is not a slug gives a UUID id.
    let u = s.create_rule(&json!({"name": "Has spaces", "expression": "span.name == \"x\""}));
    assert!(
        uuid::Uuid::parse_str(u["id"].as_str().unwrap()).is_ok(),
        "{u}"
    );
    let (st, e) = s.post(
        "/v1/rules",
        &json!({"id": "no-errors", "expression": "span.name == \"x\""}),
    );
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"]["code"], "conflict");
    let (st, e) = s.post(
        "/v1/rules",
        &json!({"id": "bad", "expression": "never { payment.where( }"}),
    );
    assert_eq!(st, 400);
    assert!(
        !e["error"]["diagnostics"].as_array().unwrap().is_empty(),
        "{e}"
    );
    assert!(
        e["error"]["diagnostics"][0]["code"]
            .as_str()
            .unwrap()
            .starts_with('E')
    );
    assert_eq!(e["error"]["diagnostics"][0]["ruleId"], "bad", "{e}");
    let (st, e) = s.post("/v1/rules", &json!({"id": "x", "expresion": "a"}));
    assert_eq!(st, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expresion"),
        "{e}"
    );

    let (st, list) = s.get("/v1/rules?tag=pay");
    assert_eq!(st, 200);
    assert_eq!(list["totalCount"], 1);
    let (_, list) = s.get("/v1/rules");
    assert_eq!(list["totalCount"], 2);
    let (_, list) = s.get("/v1/rules?severity=HIGH");
    assert_eq!(list["rules"][0]["id"], "no-errors");

    let created = r["createdAt"].clone();
    let (st, put) = s.send(
        "PUT",
        "/v1/rules/no-errors",
        Some(&json!({"expression": "never { payment }", "severity": "LOW"})),
    );
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["createdAt"], created);
    assert_eq!(put["severity"], "LOW");
    assert_eq!(put["tags"], json!([]));
    let (st, p) = s.send(
        "PATCH",
        "/v1/rules/no-errors",
        Some(&json!({"enabled": false})),
    );
    assert_eq!(st, 200);
    assert_eq!(p["enabled"], false);
    assert_eq!(p["expression"], "never { payment }");
    let (_, list) = s.get("/v1/rules?enabledOnly=true");
    assert_eq!(list["totalCount"], 1);
    let (st, en) = s.post("/v1/rules/no-errors/enable", &Value::Null);
    assert_eq!((st, en["enabled"].clone()), (200, json!(true)));
    let (st, en) = s.post("/v1/rules/no-errors/disable", &Value::Null);
    assert_eq!((st, en["enabled"].clone()), (200, json!(false)));
    let (st, _) = s.send("DELETE", "/v1/rules/no-errors", None);
    assert_eq!(st, 204);
    let (st, e) = s.get("/v1/rules/no-errors");
    assert_eq!(st, 404);
    assert_eq!(e["error"]["code"], "not_found");
    let (st, _) = s.send("DELETE", "/v1/rules/no-errors", None);
    assert_eq!(st, 404);
}

#[test]
fn validate_test_export_import() {
    let s = Server::test_mode();
    let (st, v) = s.post(
        "/v1/rules/validate",
        &json!({"expression": "when { a } always { b }"}),
    );
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({"valid": true, "diagnostics": [], "form": "block"})
    );
    let (_, v) = s.post("/v1/rules/validate", &json!({"expression": "span.name =="}));
    assert_eq!(v["valid"], false);
    assert!(!v["diagnostics"].as_array().unwrap().is_empty());

    let spans = json!([
        span(
            "t1",
            "a",
            "checkout",
            json!({"attributes": {"order.amount": 1500}})
        ),
        span("t1", "b", "payment", json!({"parentSpanId": "a"})),
    ]);
    let (st, t) = s.post(
        "/v1/rules/test",
        &json!({"expression": "when { checkout.where(order.amount > 1000) } always { fraud_check }", "spans": spans}),
    );
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["matches"], true);
    assert_eq!(t["violation"]["failedClause"], "always");
    assert!(t["evaluationTimeMs"].as_f64().unwrap() >= 0.0);
    let (_, t) = s.post(
        "/v1/rules/test",
        &json!({"expression": "never { fraud_check }", "span": span("t1", "a", "checkout", json!({}))}),
    );
    assert_eq!(t["matches"], false);
    assert_eq!(t["violation"], Value::Null);
    let (st, e) = s.post(
        "/v1/rules/test",
        &json!({"expression": "never { x }", "spans": [{"spanId": "a"}]}),
    );
    assert_eq!(st, 400);
    assert_eq!(e["error"]["span"], 0);
    let (st, e) = s.post(
        "/v1/rules/test",
        &json!({"expression": "never {", "spans": spans}),
    );
    assert_eq!(st, 400);
    assert!(e["error"]["diagnostics"].is_array());

    let yaml = "rules:\n  - id: a\n    expression: never { x }\n  - id: b\n    expression: never {\n  - id: c\n    expression: span.name == \"c\"\n    severity: low\n";
    let r = s
        .client
        .post(s.url("/v1/rules/import"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(
        (body["created"].clone(), body["failed"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(body["results"][1]["status"], "error");
    assert!(body["results"][1]["diagnostics"].is_array());
    let (st, text) = s.get_text("/v1/rules/export");
    assert_eq!(st, 200);
    let back = betrace_core::rules::parse_rules(&text, "export").unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[1].severity, betrace_core::Severity::Low);
    let (_, j) = s.get("/v1/rules/export?format=json");
    assert_eq!(j["rules"].as_array().unwrap().len(), 2);
    // Import again: updated, not created.
    let r = s
        .client
        .post(s.url("/v1/rules/import"))
        .body(r#"[{"id": "a", "expression": "never { y }"}]"#)
        .send()
        .unwrap();
    let body: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(body["updated"], 1);
    let r = s
        .client
        .post(s.url("/v1/rules/import"))
        .body("rules: 5")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn violations_filters_cursor_csv_and_ids() {
    let s = Server::test_mode();
    s.create_rule(&json!({"id": "errs", "expression": "never { payment.where(span.status == error) }", "severity": "HIGH"}));
    s.create_rule(&json!({"id": "slow", "expression": "span.name == \"payment\" and span.duration > 500", "severity": "LOW"}));
    let mut spans = Vec::new();
    for i in 0..5 {
        spans.push(span(
            &format!("{:032x}", i + 1),
            &format!("{:016x}", i + 1),
            "payment",
            json!({"status": "error"}),
        ));
    }
    let (st, r) = s.post("/v1/spans", &json!({ "spans": spans }));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["accepted"], 5);
    assert_eq!(s.flush(), 5);
    let all = s.violations("");
    assert_eq!(all.len(), 10);
    assert_eq!(s.violations("?ruleId=errs").len(), 5);
    assert_eq!(s.violations("?rule_id=slow&severity=low").len(), 5);
    let t = format!("{:032x}", 3);
    let one = s.violations(&format!("?traceId={t}"));
    assert_eq!(one.len(), 2);
    assert!(one.iter().all(|v| v["traceId"] == t.as_str()));
    // Newest first; pages through the cursor.
    let (_, page) = s.get("/v1/violations?limit=4");
    let mut seen: Vec<Value> = page["violations"].as_array().unwrap().clone();
    let mut cursor = page["nextCursor"].clone();
    while let Some(c) = cursor.as_str() {
        let (_, p) = s.get(&format!("/v1/violations?limit=4&cursor={c}"));
        seen.extend(p["violations"].as_array().unwrap().clone());
        cursor = p["nextCursor"].clone();
    }
    assert_eq!(seen, all);
    let times: Vec<&str> = all
        .iter()
        .map(|v| v["createdAt"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));
    // Time filters: Unix seconds and RFC 3339.
    assert_eq!(s.violations("?startTime=4102444800").len(), 0);
    assert_eq!(s.violations("?start_time=2000-01-01T00:00:00Z").len(), 10);
    assert_eq!(s.violations("?endTime=946684800").len(), 0);
    // CSV.
    let (st, csv) = s.get_text("/v1/violations?format=csv&ruleId=errs");
    assert_eq!(st, 200);
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("id,createdAt,ruleId"), "{header}");
    assert!(header.ends_with(",signature,state"), "{header}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.ends_with(",live")), "{rows:?}");
    // Bad parameters.
    for q in [
        "?limit=0",
        "?limit=5000",
        "?cursor=abc",
        "?traceId=xyz",
        "?severity=loud",
        "?startTime=yesterday",
        "?format=xml",
    ] {
        let (st, e) = s.get(&format!("/v1/violations{q}"));
        assert_eq!(st, 400, "{q}: {e}");
        assert_eq!(e["error"]["code"], "bad_request");
    }
    let (st, _) = s.get("/v1/violations/not-a-uuid");
    assert_eq!(st, 400);
    let (st, _) = s.get(&format!("/v1/violations/{}", uuid::Uuid::now_v7()));
    assert_eq!(st, 404);
    let (st, v) = s.get(&format!(
        "/v1/violations/{}",
        all[0]["id"].as_str().unwrap()
    ));
    assert_eq!(st, 200);
    assert_eq!(v["verified"], true);
}

fn otlp_request(spans: usize, attrs: usize) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let kv = |k: String, v: String| KeyValue {
        key: k,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![7; 16],
            span_id: ((i as u64) + 1).to_be_bytes().to_vec(),
            name: "op".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: (0..attrs)
                .map(|a| kv(format!("k{a}"), "x".repeat(if a == 0 { 10_000 } else { 3 })))
                .collect(),
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
    .encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn bad_input_gets_the_specified_answer_and_the_server_stays_up() {
    let s = Server::start(Opts {
        args: vec!["--test-mode".into(), "--config".into(), {
            let dir =
                std::env::temp_dir().join(format!("betrace-bad-input-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join("c.yaml");
            std::fs::write(
                &p,
                "server:\n  max_body_bytes: 1000000\n  max_decompressed_bytes: 4000000\n  max_spans_per_request: 1000\n",
            )
            .unwrap();
            p.display().to_string()
        }],
        ..Opts::default()
    });
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let pb = "application/x-protobuf";
    // Garbage protobuf and JSON: 400 with a google.rpc.Status.
    let r = s.post_raw("/v1/traces", pb, None, vec![0xff, 0xff, 0xff, 0x01, 0x02]);
    assert_eq!(r.status(), 400);
    let r = s.post_raw(
        "/v1/traces",
        "application/json",
        None,
        b"{not json".to_vec(),
    );
    assert_eq!(r.status(), 400);
    let body: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(body["code"], 3);
    assert!(
        body["message"].as_str().unwrap().contains("OTLP/JSON"),
        "{body}"
    );
    let r = s.post_raw("/v1/traces", "text/plain", None, b"hello".to_vec());
    assert_eq!(r.status(), 415);
    let r = s.post_raw("/v1/traces", pb, Some("br"), b"x".to_vec());
    assert_eq!(r.status(), 415);
    // A gzip bomb: 200 MB of zeros in a small body.
    let bomb = gzip(&vec![0u8; 200_000_000]);
    assert!(bomb.len() < 1_000_000);
    let r = s.post_raw("/v1/traces", pb, Some("gzip"), bomb);
    assert_eq!(r.status(), 413);
    let r = s.post_raw("/v1/traces", pb, Some("gzip"), b"not gzip at all".to_vec());
    assert_eq!(r.status(), 400);
    // Over the body limit.
    let r = s.post_raw("/v1/traces", pb, None, vec![0u8; 1_500_000]);
    assert_eq!(r.status(), 413);
    // Over the spans-per-request limit.
    let r = s.post_raw("/v1/traces", pb, None, otlp_request(1001, 0));
    assert_eq!(r.status(), 413);
    // Invalid ids: partial success naming the span.
    let ok = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "good", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
        {"traceId": "abc", "spanId": "0102030405060709", "name": "bad"},
        {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "00000000000000000", "name": "bad2"}
    ]}]}]});
    let r = s.post_raw(
        "/v1/traces",
        "application/json",
        None,
        serde_json::to_vec(&ok).unwrap(),
    );
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "2");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("span 1: field `traceId`"),
        "{body}"
    );
    // 200 attributes on a span, one value of 10 000 bytes: kept to 128, truncated to 4 KiB.
    let r = s.post_raw("/v1/traces", pb, Some("gzip"), gzip(&otlp_request(1, 200)));
    assert_eq!(r.status(), 200);
    let resp = ExportTraceServiceResponse::decode(r.bytes().unwrap().as_ref()).unwrap();
    assert!(resp.partial_success.is_none());
    assert_eq!(
        s.metric("betrace_attributes_dropped_total{reason=\"limit\"}"),
        72.0
    );
    assert_eq!(s.metric("betrace_attribute_values_truncated_total"), 1.0);
    // Malformed JSON and wrong shapes on the REST API.
    let r = s.post_raw("/v1/rules", "application/json", None, b"{\"id\": ".to_vec());
    assert_eq!(r.status(), 400);
    let e: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(e["error"]["code"], "malformed_json");
    let (st, e) = s.post("/v1/spans", &json!({"spans": "nope"}));
    assert_eq!(st, 400, "{e}");
    let (st, e) = s.post("/v1/rules", &json!([1, 2]));
    assert_eq!(st, 400, "{e}");
    let (st, e) = s.get("/v1/nowhere");
    assert_eq!((st, e["error"]["code"].clone()), (404, json!("not_found")));
    // Still up.
    let (st, h) = s.get("/v1/health");
    assert_eq!((st, h["status"].clone()), (200, json!("HEALTHY")));
}

#[test]
fn token_health_ready_metrics_and_cors() {
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--cors-origin".into(),
            "https://ui.example".into(),
        ],
        env: vec![("BETRACE_API_TOKEN", "s3cret".into())],
        ..Opts::default()
    });
    let c = reqwest::blocking::Client::new();
    for p in ["/v1/rules", "/v1/violations", "/v1/openapi.json"] {
        let r = c.get(s.url(p)).send().unwrap();
        assert_eq!(r.status(), 401, "{p}");
        let r = c.get(s.url(p)).bearer_auth("wrong").send().unwrap();
        assert_eq!(r.status(), 401, "{p}");
    }
    let r = c
        .post(s.url("/v1/traces"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    for p in ["/v1/health", "/health", "/v1/ready", "/metrics"] {
        let r = c.get(s.url(p)).send().unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }
    let (st, _) = s.get("/v1/rules");
    assert_eq!(st, 200);
    let (_, h) = s.get("/v1/health");
    assert_eq!(h["metadata"]["storage"], "memory");
    let r = c
        .get(s.url("/v1/health"))
        .header("origin", "https://ui.example")
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    let r = c
        .get(s.url("/v1/health"))
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let (_, text) = s.get_text("/metrics");
    // Counter families are named without `_total` in their TYPE line (OpenMetrics); their
    // samples carry it.
    for name in [
        "betrace_spans_received",
        "betrace_spans_rejected",
        "betrace_spans_dropped",
        "betrace_late_spans_total",
        "betrace_traces_evaluated",
        "betrace_export_spans",
        "betrace_buffered_spans",
        "betrace_buffered_traces",
        "betrace_evaluation_duration_seconds",
        "betrace_rules_active",
        "betrace_export_queue_depth",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} "))
                    || l.starts_with(&format!("{name} "))
                    || l.starts_with(&format!("{name}{{"))),
            "{name} missing from /metrics:\n{text}"
        );
    }
}

#[test]
fn cors_is_off_by_default() {
    let s = Server::test_mode();
    let r = reqwest::blocking::Client::new()
        .get(s.url("/v1/health"))
        .header("origin", "https://ui.example")
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// Every route of SERVER.md §1 is in the OpenAPI document, and every documented route is
/// served (not a 404 from the router's fallback).
#[test]
fn openapi_lists_every_route() {
    let s = Server::test_mode();
    let (st, doc) = s.get("/v1/openapi.json");
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let spec: &[(&str, &str)] = &[
        ("get", "/v1/rules"),
        ("post", "/v1/rules"),
        ("get", "/v1/rules/{id}"),
        ("put", "/v1/rules/{id}"),
        ("patch", "/v1/rules/{id}"),
        ("delete", "/v1/rules/{id}"),
        ("post", "/v1/rules/{id}/enable"),
        ("post", "/v1/rules/{id}/disable"),
        ("post", "/v1/rules/validate"),
        ("post", "/v1/rules/test"),
        ("get", "/v1/rules/export"),
        ("post", "/v1/rules/import"),
        ("get", "/v1/violations"),
        ("get", "/v1/violations/{id}"),
        ("post", "/v1/flush"),
        ("get", "/v1/health"),
        ("get", "/health"),
        ("get", "/v1/ready"),
        ("get", "/metrics"),
        ("post", "/v1/traces"),
        ("post", "/v1/spans"),
        ("get", "/v1/openapi.json"),
        ("get", "/api/v1/rules"),
        ("post", "/api/v1/rules"),
        ("get", "/api/v1/rules/{id}"),
        ("post", "/api/v1/rules/validate"),
        ("get", "/api/rules"),
        ("patch", "/api/rules/{id}"),
        ("get", "/api/violations"),
    ];
    for (method, path) in spec {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "0190a000-0000-7000-8000-000000000000");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s.client.request(m, s.url(&concrete)).send().unwrap();
            let status = r.status().as_u16();
            let body = r.text().unwrap_or_default();
            assert!(
                !(status == 404 && body.contains("no route")) && status != 405,
                "{method} {path} is documented but not served ({status})"
            );
        }
    }
}

#[test]
fn rules_and_violations_survive_a_restart_and_shutdown_drains() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/betrace.db");
    let opts = || Opts {
        args: vec!["--storage-path".into(), db.display().to_string()],
        env: vec![],
        cwd: Some(dir.path()),
    };
    let mut s = Server::start(opts());
    for r in shop_rules() {
        s.create_rule(&r);
    }
    s.post(
        "/v1/spans",
        &json!({"spans": [span("t1", "p", "payment", json!({"status": "error"}))]}),
    );
    // Not flushed: SIGTERM must evaluate the buffered trace with completion_reason=shutdown.
    let status = s.terminate();
    assert!(status.success(), "exit {status:?}: {}", s.stderr());
    let key = std::fs::metadata(dir.path().join("data/signature.key"));
    assert!(
        key.is_err(),
        "the key came from the environment; no file expected"
    );
    let s = Server::start(opts());
    let (_, rules) = s.get("/v1/rules");
    assert_eq!(rules["totalCount"], 2);
    let vs = s.violations("");
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0]["completionReason"], "shutdown");
    assert!(betrace_core::sign::verify_json(&vs[0], KEY.as_bytes()));
    let (_, h) = s.get("/v1/health");
    assert_eq!(h["metadata"]["storage"], "sqlite");
}

#[test]
fn generated_signature_key_is_private_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let start = || {
        let mut cmd = betrace();
        cmd.arg("serve")
            .args(["--http-addr", "127.0.0.1:0", "--otlp-http-addr", "off"])
            .args(["--otlp-grpc-addr", "off", "--data-dir"])
            .arg(&data)
            .env_remove("BETRACE_SIGNATURE_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.starts_with("betrace listening"), "{line}");
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let log = start();
    let path = data.join("signature.key");
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.len(), 64);
    assert!(!log.contains(&key), "the key must never be logged");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    start();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key);
}

#[test]
fn back_pressure_refuses_with_429_and_loses_nothing_accepted() {
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
    s.create_rule(&json!({"id": "every-op", "expression": "span.name == \"op\""}));
    let mut accepted = 0u64;
    let mut refused = 0u64;
    let mut retry_after_seen = false;
    for i in 0..40u32 {
        let spans: Vec<Value> = (0..10)
            .map(|j| {
                span(
                    &format!("{:032x}", i + 1),
                    &format!("{:016x}", j + 1),
                    "op",
                    json!({}),
                )
            })
            .collect();
        let body = serde_json::to_vec(&json!({ "spans": spans })).unwrap();
        let r = s.post_raw("/v1/spans", "application/json", None, body);
        match r.status().as_u16() {
            200 => accepted += 10,
            429 => {
                refused += 10;
                retry_after_seen |= r.headers().get("retry-after").is_some();
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "no 429 with a 50-span buffer");
    assert!(retry_after_seen);
    assert_eq!(accepted + refused, 400);
    s.flush();
    // Every accepted span was evaluated: one violation per accepted span (one per trace of
    // ten, each naming ten spans).
    let vs = s.violations("?limit=1000");
    let named: u64 = vs
        .iter()
        .map(|v| v["triggerSpans"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(named, accepted);
    assert_eq!(
        s.metric("betrace_spans_rejected_total{reason=\"backpressure\"}"),
        refused as f64
    );
    assert_eq!(
        s.metric("betrace_spans_received_total{transport=\"spans_api\"}"),
        400.0
    );
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    for (text, key) in [
        ("storage:\n  type: floppy\n", "storage.type"),
        ("trace:\n  idle_timeout: soon\n", "trace.idle_timeout"),
        ("server:\n  http_prot: 1\n", "http_prot"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = betrace()
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{key} not named in: {err}");
    }
    let out = betrace()
        .args(["serve", "--test-mode"])
        .env("BETRACE_HTTP_PORT", "http")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BETRACE_HTTP_PORT"));
    let out = betrace()
        .args(["serve", "--test-mode", "--http-addr", "0.0.0.0:0"])
        .env_remove("BETRACE_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-unauthenticated"));
}

#[test]
fn a_flags_variable_is_read_and_the_flag_wins() {
    // From the variable: the error names it.
    let out = betrace()
        .args(["serve", "--test-mode"])
        .env("BETRACE_HTTP_ADDR", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable BETRACE_HTTP_ADDR") && err.contains("`nowhere`"),
        "{err}"
    );
    // The flag overrides the variable, and the error names the flag.
    let out = betrace()
        .args(["serve", "--test-mode", "--log-level", "loud"])
        .env("LOG_LEVEL", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("flag --log-level") && !err.contains("LOG_LEVEL"),
        "{err}"
    );
    let out = betrace()
        .args(["serve", "--test-mode", "--spool-fsync", "sometimes"])
        .env("BETRACE_SPOOL_FSYNC", "always")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag --spool-fsync"));
    // `--help` shows each flag's variable.
    let out = betrace().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "BETRACE_HTTP_ADDR",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "LOG_LEVEL",
    ] {
        assert!(help.contains(&format!("env: {var}")), "{var} in {help}");
    }
}

#[test]
fn rules_file_is_loaded_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - id: from-file\n    expression: never { x }\n",
    )
    .unwrap();
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--rules".into(),
            rules.display().to_string(),
        ],
        ..Opts::default()
    });
    let (_, r) = s.get("/v1/rules/from-file");
    assert_eq!(r["readOnly"], true);
    let (st, e) = s.send("DELETE", "/v1/rules/from-file", None);
    assert_eq!((st, e["error"]["code"].clone()), (403, json!("read_only")));
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn max_rules_gives_422() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "rules:\n  max_rules: 1\n").unwrap();
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        ..Opts::default()
    });
    s.create_rule(&json!({"id": "one", "expression": "never { x }"}));
    let (st, e) = s.post(
        "/v1/rules",
        &json!({"id": "two", "expression": "never { y }"}),
    );
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"]["code"], "too_many_rules");
}

#[test]
fn rule_changes_apply_to_buffered_traces_and_are_audited() {
    // Traces stay buffered until the flush, however slowly the rule is created.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "trace:\n  root_grace: 2m\n  idle_timeout: 2m\n").unwrap();
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--config".into(),
            cfg.display().to_string(),
        ],
        env: vec![],
        cwd: None,
    });
    // Buffered before the rule exists; evaluated after it was created.
    s.post(
        "/v1/spans",
        &json!({"spans": [span("t1", "p", "payment", json!({"status": "error"}))]}),
    );
    s.create_rule(
        &json!({"id": "errs", "expression": "never { payment.where(span.status == error) }"}),
    );
    s.flush();
    assert_eq!(s.violations("").len(), 1);
    // Disabled: the next trace does not violate.
    s.post("/v1/rules/errs/disable", &Value::Null);
    s.post(
        "/v1/spans",
        &json!({"spans": [span("t2", "p", "payment", json!({"status": "error"}))]}),
    );
    s.flush();
    assert_eq!(s.violations("").len(), 1);
    let log = s.stderr();
    assert!(log.contains("betrace::audit"), "{log}");
    assert!(
        log.contains("rule.create") && log.contains("rule.update"),
        "{log}"
    );
}

#[test]
fn retention_prunes_old_violations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let cfg = dir.path().join("c.yaml");
    let start = |retention: &str| {
        std::fs::write(
            &cfg,
            format!(
                "storage:\n  path: {}\n  violation_retention: {retention}\ntrace:\n  root_grace: 100ms\n",
                db.display()
            ),
        )
        .unwrap();
        Server::start(Opts {
            args: vec!["--config".into(), cfg.display().to_string()],
            env: vec![],
            cwd: Some(dir.path()),
        })
    };
    let mut s = start("30d");
    s.create_rule(
        &json!({"id": "errs", "expression": "never { payment.where(span.status == error) }"}),
    );
    s.post(
        "/v1/spans",
        &json!({"spans": [span("t1", "p", "payment", json!({"status": "error"}))]}),
    );
    s.flush();
    assert_eq!(s.violations("").len(), 1);
    assert!(s.terminate().success());
    // Kept under 30 days; pruned at the first tick with a retention of 1 ms.
    let mut s = start("30d");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.violations("").len(), 1);
    assert!(s.terminate().success());
    let s = start("1ms");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s.violations("").is_empty() {
        assert!(std::time::Instant::now() < deadline, "not pruned");
        std::thread::sleep(Duration::from_millis(50));
    }
}
