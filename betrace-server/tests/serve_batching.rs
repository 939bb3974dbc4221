//! Right answers under real exporters' batching: the default timings wait for a downstream
//! service's batch (real Python SDK, two services), late spans re-evaluate the whole trace and
//! retract, supersede or add violations, and violation spans exported back into BeTrace are
//! never evaluated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn span(trace: &str, id: &str, parent: Option<&str>, name: &str, service: &str) -> Value {
    let mut s = json!({"traceId": trace, "spanId": id, "name": name, "serviceName": service,
                       "startTime": 1000, "endTime": 5000});
    if let Some(p) = parent {
        s["parentSpanId"] = json!(p);
    }
    s
}

fn send(server: &Server, spans: Vec<Value>) {
    let (status, body) = server.post("/v1/spans", &json!({ "spans": spans }));
    assert!(status == 200 || status == 202, "{status} {body}");
}

/// The JSON as signed: without the keys the API adds.
fn signed_part(v: &Value) -> Value {
    let mut v = v.clone();
    for k in ["state", "supersededBy", "verified"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

fn ids(vs: &[Value]) -> Vec<String> {
    vs.iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn default_timings_wait_for_a_downstream_services_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    // Default timings: no --test-mode.
    let server = Server::start(Opts {
        args: vec!["--storage-path".into(), db.display().to_string()],
        env: vec![],
        cwd: Some(dir.path()),
    });
    server.create_rule(&json!({
        "id": "checkout-charges",
        "expression": "when { checkout } always { charge }",
        "severity": "HIGH",
    }));
    let out = run_ok(
        std::process::Command::new(python())
            .arg(sdk("two_services.py"))
            .args(["--endpoint", server.otlp_http.as_deref().unwrap()]),
    );
    let sent: Value = serde_json::from_str(out.trim()).unwrap();
    let gap =
        sent["payments_export_s"].as_f64().unwrap() - sent["frontend_export_s"].as_f64().unwrap();
    // The payments batch came later than a 2 s root grace would have waited.
    assert!(
        gap > 2.5,
        "payments exported only {gap} s after the frontend"
    );
    wait_for(Duration::from_secs(40), "both traces evaluated", || {
        (server.metric("betrace_traces_evaluated_total{completion_reason=\"root_complete\"}")
            >= 2.0)
            .then_some(())
    });
    let vs = server.violations("");
    let traces: Vec<&str> = vs.iter().map(|v| v["traceId"].as_str().unwrap()).collect();
    assert_eq!(
        traces,
        [sent["unpaid"]["trace_id"].as_str().unwrap()],
        "only the trace without charge violates: {vs:#?}"
    );
    assert_eq!(
        vs[0]["triggerSpans"][0]["spanId"],
        sent["unpaid"]["checkout_span_id"]
    );
    assert_eq!(vs[0]["triggerSpans"][0]["service"], "frontend");
    assert!(vs[0].get("evaluation").is_none());
    // The downstream span arrived inside the grace: nothing late, nothing re-evaluated.
    assert_eq!(server.metric("betrace_late_spans_total"), 0.0);
    assert_eq!(server.metric("betrace_traces_reevaluated_total"), 0.0);
}

const T1: &str = "0af7651916cd43dd8448eb211c80319c";

#[test]
fn a_late_span_retracts_a_violation() {
    let server = Server::test_mode();
    server.create_rule(&json!({
        "id": "checkout-charges",
        "expression": "when { checkout } always { charge }",
        "severity": "HIGH",
    }));
    send(
        &server,
        vec![span(T1, "00000000000000a1", None, "checkout", "frontend")],
    );
    server.flush();
    let first = server.violations(&format!("?traceId={T1}"));
    assert_eq!(first.len(), 1);
    let first_id = first[0]["id"].as_str().unwrap().to_owned();
    // The downstream service's span, after the evaluation.
    send(
        &server,
        vec![span(
            T1,
            "00000000000000b2",
            Some("00000000000000a1"),
            "charge",
            "payments",
        )],
    );
    server.flush();
    assert!(
        server.violations(&format!("?traceId={T1}")).is_empty(),
        "the complete trace does not violate the rule"
    );
    assert!(server.violations("").is_empty());
    let all = server.violations(&format!("?traceId={T1}&includeSuperseded=true"));
    assert_eq!(all.len(), 2, "{all:#?}");
    let (retraction, old) = (&all[0], &all[1]);
    assert_eq!(retraction["state"], "retraction");
    assert_eq!(retraction["retraction"], true);
    assert_eq!(retraction["evaluation"], 2);
    assert_eq!(retraction["supersedes"], first_id.as_str());
    assert!(
        retraction["message"]
            .as_str()
            .unwrap()
            .contains("retracted: evaluation 2 of the whole trace (2 spans)")
    );
    assert_eq!(old["id"], first_id.as_str());
    assert_eq!(old["state"], "retracted");
    assert_eq!(old["supersededBy"], retraction["id"]);
    // The earlier record is unchanged, its signature still holds; the new one is signed.
    assert_eq!(signed_part(old), first[0]);
    for v in &all {
        assert!(
            betrace_core::sign::verify_json(&signed_part(v), KEY.as_bytes()),
            "{v}"
        );
    }
    let (status, one) = server.get(&format!("/v1/violations/{first_id}"));
    assert_eq!(status, 200);
    assert_eq!(one["state"], "retracted");
    assert_eq!(one["verified"], true);
    assert_eq!(
        server.metric("betrace_violations_replaced_total{reason=\"retracted\"}"),
        1.0
    );
    assert_eq!(server.metric("betrace_traces_reevaluated_total"), 1.0);
}

#[test]
fn late_spans_add_and_supersede_violations_on_the_whole_trace() {
    let server = Server::test_mode();
    server.create_rule(&json!({
        "id": "no-refund-after-checkout",
        "expression": "when { checkout } never { refund }",
        "severity": "HIGH",
    }));
    server.create_rule(&json!({
        "id": "no-debug",
        "expression": "never { debug }",
        "severity": "LOW",
    }));
    send(
        &server,
        vec![
            span(T1, "00000000000000a1", None, "checkout", "frontend"),
            span(
                T1,
                "00000000000000d1",
                Some("00000000000000a1"),
                "debug",
                "frontend",
            ),
        ],
    );
    server.flush();
    let first = server.violations("");
    assert_eq!(ids(&first).len(), 1);
    assert_eq!(first[0]["ruleId"], "no-debug");
    // Late: a refund, which violates only together with the checkout sent before, and a
    // second debug span, which changes the finding of `no-debug`.
    send(
        &server,
        vec![
            span(
                T1,
                "00000000000000c3",
                Some("00000000000000a1"),
                "refund",
                "payments",
            ),
            span(
                T1,
                "00000000000000d2",
                Some("00000000000000a1"),
                "debug",
                "payments",
            ),
        ],
    );
    server.flush();
    let live = server.violations("");
    assert_eq!(live.len(), 2, "{live:#?}");
    let by_rule = |id: &str| live.iter().find(|v| v["ruleId"] == id).unwrap().clone();
    let refund = by_rule("no-refund-after-checkout");
    assert_eq!(refund["evaluation"], 2);
    assert!(refund.get("supersedes").is_none());
    assert_eq!(refund["partial"], false);
    assert_eq!(refund["offendingSpans"][0]["spanId"], "00000000000000c3");
    let debug = by_rule("no-debug");
    assert_eq!(debug["evaluation"], 2);
    assert_eq!(debug["supersedes"], first[0]["id"]);
    let offending: Vec<&str> = debug["offendingSpans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spanId"].as_str().unwrap())
        .collect();
    assert_eq!(offending, ["00000000000000d1", "00000000000000d2"]);
    for v in &live {
        assert!(betrace_core::sign::verify_json(v, KEY.as_bytes()), "{v}");
    }
    let all = server.violations("?includeSuperseded=true");
    let old = all.iter().find(|v| v["id"] == first[0]["id"]).unwrap();
    assert_eq!(old["state"], "superseded");
    assert_eq!(old["supersededBy"], debug["id"]);
    // A third delivery of the same spans changes nothing: no new record.
    send(
        &server,
        vec![span(
            T1,
            "00000000000000d2",
            Some("00000000000000a1"),
            "debug",
            "payments",
        )],
    );
    server.flush();
    assert_eq!(
        server.violations("?includeSuperseded=true").len(),
        all.len()
    );
    assert_eq!(server.metric("betrace_traces_reevaluated_total"), 2.0);
}

#[test]
fn violation_spans_exported_back_into_betrace_are_not_evaluated() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = Server::start_with_otlp_http(
        Opts {
            args: vec![
                "--test-mode".into(),
                "--otel-endpoint".into(),
                format!("http://{addr}"),
                "--otlp-protocol".into(),
                "http/protobuf".into(),
            ],
            ..Opts::default()
        },
        &addr,
    );
    // Fires on any error span, the HIGH violation spans' status included.
    server.create_rule(&json!({
        "id": "no-errors",
        "expression": "never { *.where(span.status == error) }",
        "severity": "HIGH",
    }));
    let mut failing = span(T1, "00000000000000a1", None, "checkout", "shop");
    failing["status"] = json!("error");
    send(&server, vec![failing]);
    server.flush();
    assert_eq!(server.violations("").len(), 1);
    // The violation span comes back through the server's own OTLP receiver.
    wait_for(
        Duration::from_secs(20),
        "the violation span to come back",
        || {
            (server.metric("betrace_spans_ignored_total{reason=\"own_violation\"}") >= 1.0)
                .then_some(())
        },
    );
    server.flush();
    assert_eq!(
        server.violations("?includeSuperseded=true").len(),
        1,
        "no violation of a violation"
    );
    assert_eq!(server.metric("betrace_late_spans_total"), 0.0);
    assert_eq!(
        server.metric("betrace_export_spans_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        server.metric("betrace_spans_ignored_total{reason=\"own_violation\"}"),
        1.0
    );
}
