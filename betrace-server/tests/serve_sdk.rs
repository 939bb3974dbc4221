//! `betrace serve` fed by the real OpenTelemetry SDK exporters: Python OTLP/HTTP protobuf
//! (gzip) and OTLP/gRPC (gzip), JavaScript OTLP/HTTP JSON. Rules are created over REST; after
//! `POST /v1/flush` the violations read back are exactly the expected ones, with their span
//! lists and valid signatures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn with_rules() -> Server {
    let s = Server::test_mode();
    for r in shop_rules() {
        s.create_rule(&r);
    }
    s
}

fn send_python(server: &Server, protocol: &str, endpoint: &str, extra: &[&str]) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(sdk("send_python.py"))
        .args(["--protocol", protocol, "--endpoint", endpoint, "--gzip"])
        .args(extra);
    if let Some(t) = &server.token {
        cmd.args(["--token", t]);
    }
    serde_json::from_str(&run_ok(&mut cmd)).unwrap()
}

#[test]
fn python_sdk_otlp_http_protobuf() {
    let s = with_rules();
    let endpoint = s.otlp_http.clone().unwrap();
    let sent = send_python(&s, "http", &endpoint, &["--traces", "20"]);
    s.flush();
    check_shop_violations(&s, &sent);
    // 2 spans per checkout trace, 3 with the fraud check, 2 in the payment trace.
    assert_eq!(
        s.metric("betrace_spans_received_total{transport=\"otlp_http\"}"),
        2.0 + 3.0 + 2.0 + 20.0 * 2.0
    );
}

#[test]
fn python_sdk_to_the_rest_port() {
    let s = with_rules();
    let sent = send_python(&s, "http", &s.http.clone(), &[]);
    s.flush();
    check_shop_violations(&s, &sent);
}

#[test]
fn python_sdk_otlp_grpc() {
    let s = with_rules();
    let endpoint = format!("http://{}", s.otlp_grpc.clone().unwrap());
    let sent = send_python(&s, "grpc", &endpoint, &[]);
    s.flush();
    check_shop_violations(&s, &sent);
    assert_eq!(
        s.metric("betrace_spans_received_total{transport=\"otlp_grpc\"}"),
        7.0
    );
}

#[test]
fn javascript_sdk_otlp_http_json() {
    let s = with_rules();
    let out = run_ok(
        Command::new("node")
            .arg(sdk("send_node.mjs"))
            .arg(s.otlp_http.clone().unwrap())
            .env("NODE_PATH", node_path()),
    );
    let sent: Value = serde_json::from_str(&out).unwrap();
    s.flush();
    check_shop_violations(&s, &sent);
}

#[test]
fn bearer_token_applies_to_otlp_receivers() {
    let s = Server::start(Opts {
        env: vec![("BETRACE_API_TOKEN", "s3cret".into())],
        ..Opts::default()
    });
    for r in shop_rules() {
        s.create_rule(&r);
    }
    // With the token: accepted over HTTP and gRPC.
    let sent = send_python(&s, "http", &s.otlp_http.clone().unwrap(), &[]);
    s.flush();
    check_shop_violations(&s, &sent);
    let grpc = format!("http://{}", s.otlp_grpc.clone().unwrap());
    let out = Command::new(python())
        .arg(sdk("send_python.py"))
        .args(["--protocol", "grpc", "--endpoint", &grpc])
        .output()
        .unwrap();
    assert!(!out.status.success(), "gRPC export without token must fail");
    let out = Command::new(python())
        .arg(sdk("send_python.py"))
        .args(["--protocol", "http", "--endpoint", &s.http])
        .output()
        .unwrap();
    assert!(!out.status.success(), "HTTP export without token must fail");
}

/// The quick start of docs/server.md, run as written (the endpoint pointed at this server).
#[test]
fn docs_quick_start_works() {
    let doc = std::fs::read_to_string(root().join("docs/server.md")).unwrap();
    let block = |lang: &str, nth: usize| -> String {
        doc.split(&format!("```{lang}\n"))
            .nth(nth)
            .and_then(|b| b.split("```").next())
            .unwrap()
            .to_owned()
    };
    let s = Server::test_mode();
    // The rule of the `curl` example.
    let curl = block("sh", 2);
    let rule_json = curl
        .split("-d '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    s.create_rule(&serde_json::from_str(rule_json).unwrap());
    let script =
        block("python", 1).replace("http://127.0.0.1:4318", s.otlp_http.as_deref().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quick_start.py");
    std::fs::write(&path, script).unwrap();
    run_ok(Command::new(python()).arg(&path));
    s.flush();
    let vs = s.violations("?ruleId=large-order-fraud");
    assert_eq!(vs.len(), 1, "{vs:?}");
    assert_eq!(vs[0]["triggerSpans"][0]["name"], "checkout");
    assert_eq!(vs[0]["triggerSpans"][0]["service"], "shop");
}
