//! Export of violations as `betrace.violation` spans to a test OTLP receiver that decodes
//! `ExportTraceServiceRequest` with the Python `opentelemetry-proto` package: over
//! http/protobuf and gRPC, with retries, at shutdown, and across a SIGKILL and restart
//! (every violation arrives at least once).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The Python receiver, killed on drop.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start(protocol: &str, extra: &[&str]) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let mut child = Command::new(python())
            .arg(sdk("receiver.py"))
            .args(["--protocol", protocol, "--out"])
            .arg(&out)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("receiver did not start: {line:?}"))
            .parse()
            .unwrap();
        Receiver {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    fn spans(&self) -> Vec<Value> {
        read_lines(&self.out)
    }

    /// Waits until the violation ids received cover `ids`.
    fn wait_for(&self, ids: &BTreeSet<String>, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let spans = self.spans();
            let got: BTreeSet<String> = spans.iter().map(violation_id).collect();
            if ids.is_subset(&got) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} violations received",
                ids.intersection(&got).count(),
                ids.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn violation_id(span: &Value) -> String {
    span["attributes"]["betrace.violation.id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn error_spans(n: usize) -> Value {
    let spans: Vec<Value> = (0..n)
        .flat_map(|i| {
            let t = format!("{:032x}", i + 1);
            [
                json!({"traceId": t, "spanId": "00000000000000a1", "name": "checkout", "serviceName": "shop",
                       "startTime": 1000, "endTime": 5000}),
                json!({"traceId": t, "spanId": "00000000000000b2", "parentSpanId": "00000000000000a1",
                       "name": "payment", "serviceName": "pay", "startTime": 2000, "endTime": 3000, "status": "error"}),
            ]
        })
        .collect();
    json!({ "spans": spans })
}

const RULE: &str = "when { checkout } never { payment.where(span.status == error) }";

fn ids_of(server: &Server) -> BTreeSet<String> {
    server
        .violations("?limit=1000")
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

fn exporting(receiver: &Receiver, protocol: &str, extra: &[String]) -> Server {
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let mut args = vec![
        "--test-mode".to_owned(),
        "--otel-endpoint".into(),
        endpoint,
        "--otlp-protocol".into(),
        protocol.into(),
    ];
    args.extend_from_slice(extra);
    Server::start(Opts {
        args,
        ..Opts::default()
    })
}

fn check_span(span: &Value, v: &Value) {
    assert_eq!(span["name"], "betrace.violation");
    assert_eq!(span["trace_id"], v["traceId"]);
    assert_eq!(span["parent_span_id"], v["triggerSpans"][0]["spanId"]);
    assert_eq!(span["resource"]["service.name"], "betrace");
    assert_eq!(span["status_code"], 2, "CRITICAL is ERROR");
    let a = &span["attributes"];
    assert_eq!(a["betrace.violation"], true);
    assert_eq!(a["betrace.violation.rule_id"], v["ruleId"]);
    assert_eq!(a["betrace.violation.rule_name"], v["ruleName"]);
    assert_eq!(a["betrace.violation.severity"], "CRITICAL");
    assert_eq!(a["betrace.violation.message"], v["message"]);
    assert_eq!(a["betrace.violation.failed_clause"], "never");
    assert_eq!(a["betrace.violation.signature"], v["signature"]);
    assert_eq!(a["betrace.span_ref.0.span_id"], "00000000000000a1");
    assert_eq!(a["betrace.span_ref.0.service"], "shop");
    assert_eq!(a["betrace.span_ref.1.span_id"], "00000000000000b2");
    assert_eq!(a["betrace.span_ref.1.trace_id"], v["traceId"]);
    let links: BTreeSet<String> = span["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["span_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        links,
        BTreeSet::from(["00000000000000a1".to_owned(), "00000000000000b2".to_owned()])
    );
}

fn export_with(protocol: &str, receiver_protocol: &str) {
    // The receiver fails its first two requests: the exporter must retry.
    let receiver = Receiver::start(receiver_protocol, &["--fail-first", "2"]);
    let s = exporting(&receiver, protocol, &[]);
    s.create_rule(&json!({"id": "pay-ok", "expression": RULE, "severity": "CRITICAL"}));
    let (st, _) = s.post("/v1/spans", &error_spans(3));
    assert_eq!(st, 200);
    s.flush();
    let ids = ids_of(&s);
    assert_eq!(ids.len(), 3);
    let spans = receiver.wait_for(&ids, Duration::from_secs(30));
    for v in s.violations("") {
        let span = spans
            .iter()
            .find(|sp| violation_id(sp) == v["id"].as_str().unwrap())
            .unwrap();
        check_span(span, &v);
    }
    assert!(s.metric("betrace_export_spans_total{result=\"failure\"}") >= 2.0);
    assert!(s.metric("betrace_export_spans_total{result=\"success\"}") >= 3.0);
}

#[test]
fn export_over_http_protobuf_with_retries() {
    export_with("http/protobuf", "http");
}

#[test]
fn export_over_grpc_with_retries() {
    export_with("grpc", "grpc");
}

#[test]
fn shutdown_evaluates_stores_and_exports_buffered_traces() {
    let receiver = Receiver::start("http", &[]);
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let dir = tempfile::tempdir().unwrap();
    // Long timeouts: only the shutdown releases the trace.
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "trace:\n  root_grace: 1h\n  idle_timeout: 1h\n").unwrap();
    let mut s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--otel-endpoint".into(),
            endpoint,
            "--otlp-protocol".into(),
            "http/protobuf".into(),
        ],
        ..Opts::default()
    });
    s.create_rule(&json!({"id": "pay-ok", "expression": RULE, "severity": "CRITICAL"}));
    s.post("/v1/spans", &error_spans(2));
    assert!(s.violations("").is_empty());
    let status = s.terminate();
    assert!(status.success(), "{}", s.stderr());
    let spans = receiver.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans.iter().all(|sp| sp["name"] == "betrace.violation"));
}

#[test]
fn sigkill_mid_export_then_restart_delivers_every_violation() {
    // A slow receiver (100 ms per request) and batches of 5: 200 violations take 40
    // requests, so the server is killed part way.
    let receiver = Receiver::start("http", &["--delay-ms", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  path: {}\notlp:\n  endpoint: http://127.0.0.1:{}\n  protocol: http/protobuf\n  batch_size: 5\ntrace:\n  root_grace: 100ms\n",
            dir.path().join("betrace.db").display(),
            receiver.port
        ),
    )
    .unwrap();
    let opts = || Opts {
        args: vec!["--config".into(), cfg.display().to_string()],
        env: vec![],
        cwd: Some(dir.path()),
    };
    let mut s = Server::start(opts());
    s.create_rule(&json!({"id": "pay-ok", "expression": RULE, "severity": "CRITICAL"}));
    s.post("/v1/spans", &error_spans(200));
    s.flush();
    let ids = ids_of(&s);
    assert_eq!(ids.len(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.spans().len() < 10 {
        assert!(Instant::now() < deadline, "export did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill();
    let before = receiver.spans().len();
    assert!(
        before < 200,
        "the export finished before the kill ({before})"
    );
    let s = Server::start(opts());
    assert_eq!(ids_of(&s), ids, "violations survive the SIGKILL");
    let spans = receiver.wait_for(&ids, Duration::from_secs(60));
    // In order of storage: the first occurrence of each id follows the stored order.
    let stored: Vec<String> = s
        .violations("?limit=1000")
        .iter()
        .rev()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    let mut first_seen = Vec::new();
    let mut seen = BTreeSet::new();
    for sp in &spans {
        let id = violation_id(sp);
        if seen.insert(id.clone()) {
            first_seen.push(id);
        }
    }
    assert_eq!(first_seen, stored);
}

#[test]
fn a_rule_without_when_parents_its_span_to_the_first_offending_span() {
    let receiver = Receiver::start("http", &[]);
    let s = exporting(&receiver, "http/protobuf", &[]);
    s.create_rule(&json!({
        "id": "pay-ok",
        "expression": "never { payment.where(span.status == error) }",
        "severity": "CRITICAL",
    }));
    let (st, _) = s.post("/v1/spans", &error_spans(1));
    assert_eq!(st, 200);
    s.flush();
    let ids = ids_of(&s);
    assert_eq!(ids.len(), 1);
    let spans = receiver.wait_for(&ids, Duration::from_secs(30));
    assert_eq!(spans[0]["parent_span_id"], "00000000000000b2");
    let v = &s.violations("")[0];
    assert_eq!(v["spanId"], "00000000000000b2");
    assert!(v["triggerSpans"].as_array().unwrap().is_empty());
}

#[test]
fn a_retraction_after_late_spans_is_exported() {
    let receiver = Receiver::start("http", &[]);
    let s = exporting(&receiver, "http/protobuf", &[]);
    s.create_rule(&json!({
        "id": "charged",
        "expression": "when { checkout } always { charge }",
        "severity": "HIGH",
    }));
    let t = "0af7651916cd43dd8448eb211c80319c";
    let root = json!({"traceId": t, "spanId": "00000000000000a1", "name": "checkout",
                      "serviceName": "shop", "startTime": 1000, "endTime": 5000});
    assert_eq!(s.post("/v1/spans", &json!({"spans": [root]})).0, 200);
    s.flush();
    let first = ids_of(&s);
    receiver.wait_for(&first, Duration::from_secs(30));
    let late = json!({"traceId": t, "spanId": "00000000000000b2", "parentSpanId": "00000000000000a1",
                      "name": "charge", "serviceName": "pay", "startTime": 2000, "endTime": 3000});
    assert_eq!(s.post("/v1/spans", &json!({"spans": [late]})).0, 200);
    s.flush();
    assert!(ids_of(&s).is_empty());
    let all = s.violations("?includeSuperseded=true");
    let retraction = all.iter().find(|v| v["retraction"] == true).unwrap();
    let spans = receiver.wait_for(
        &BTreeSet::from([retraction["id"].as_str().unwrap().to_owned()]),
        Duration::from_secs(30),
    );
    let span = spans
        .iter()
        .find(|sp| violation_id(sp) == retraction["id"].as_str().unwrap())
        .unwrap();
    let a = &span["attributes"];
    assert_eq!(a["betrace.violation.retraction"], true);
    assert_eq!(a["betrace.violation.evaluation"], 2);
    assert_eq!(
        a["betrace.violation.supersedes"].as_str().unwrap(),
        first.iter().next().unwrap()
    );
    assert_eq!(span["status_code"], 0, "a retraction is not an error");
    assert_eq!(span["parent_span_id"], "00000000000000a1");
}
