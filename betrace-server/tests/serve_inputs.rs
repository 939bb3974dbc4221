//! `betrace serve` as a process, on inputs from real deployments: pre-1.0 OTLP/JSON
//! (`instrumentationLibrarySpans`) is read, a JSON body in another trace format gets an OTLP
//! partial-success warning instead of a silent 200, and `trace.root_name == ""` fires on a
//! rootless fragment through the server's rule index and `/v1/rules/test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn post_json(s: &Server, body: Vec<u8>) -> (u16, Value) {
    let r = s.post_raw("/v1/traces", "application/json", None, body);
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.text().unwrap()).unwrap())
}

#[test]
fn pre_1_0_otlp_json_is_ingested() {
    let s = Server::test_mode();
    s.create_rule(&json!({"name": "payment-ok", "expression": "never { payment.where(span.status == error) }"}));
    let body = std::fs::read(root().join("testing/inputs/otlp-json-pre-1.0.json")).unwrap();
    let (status, resp) = post_json(&s, body);
    assert_eq!(status, 200);
    assert_eq!(resp, json!({}), "a full success");
    s.flush();
    let v = s.violations("?ruleId=payment-ok");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["offendingSpans"][0]["spanId"], "eee19b7ec3c1b175");
}

#[test]
fn another_trace_format_gets_a_partial_success_warning() {
    let s = Server::test_mode();
    // Not an OTLP request at all (an array): 400, naming the format.
    let body = std::fs::read(root().join("testing/inputs/zipkin-v2.json")).unwrap();
    let (status, resp) = post_json(&s, body);
    assert_eq!(status, 400, "{resp}");
    let message = resp["message"].as_str().unwrap();
    assert!(message.contains("Zipkin JSON v2 spans"), "{message}");
    // An object without `resourceSpans`: an OTLP request without spans, with a warning.
    for (file, says) in [
        (
            "jaeger-ui.json",
            "Jaeger JSON (`data[].spans`) is not supported",
        ),
        ("jaeger-api-v3.json", "wrapped in `{\"result\": …}`"),
    ] {
        let body = std::fs::read(root().join("testing/inputs").join(file)).unwrap();
        let (status, resp) = post_json(&s, body);
        assert_eq!(status, 200, "{file}: {resp}");
        assert_eq!(
            resp["partialSuccess"]["rejectedSpans"], "0",
            "{file}: {resp}"
        );
        let message = resp["partialSuccess"]["errorMessage"].as_str().unwrap();
        assert!(message.starts_with("no spans read: "), "{file}: {message}");
        assert!(message.contains(says), "{file}: {message}");
    }
    // The earlier span API names them too, rather than rejecting each span for a missing
    // `traceId`.
    let jaeger: Value = serde_json::from_slice(
        &std::fs::read(root().join("testing/inputs/jaeger-ui.json")).unwrap(),
    )
    .unwrap();
    for (body, says) in [
        (jaeger.clone(), "Jaeger JSON (`data[].spans`)"),
        (jaeger["data"][0].clone(), "a Jaeger JSON trace"),
    ] {
        let (status, e) = s.post("/v1/spans", &body);
        assert_eq!(status, 400, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
    }
    // An empty OTLP request is no warning.
    let (_, resp) = post_json(&s, br#"{"resourceSpans": []}"#.to_vec());
    assert_eq!(resp, json!({}));
}

#[test]
fn root_name_empty_fires_on_a_rootless_fragment() {
    let s = Server::test_mode();
    s.create_rule(&json!({"name": "rootless", "expression": "never { trace.root_name == \"\" }"}));
    s.create_rule(&json!({"name": "no-root-service", "expression": "trace.root_service == \"\""}));
    let spans = json!([
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "00000000000000a2",
         "parentSpanId": "00000000000000a1", "name": "payment", "serviceName": "payment",
         "startTime": 1_000, "endTime": 2_000},
    ]);
    let (status, r) = s.post("/v1/spans", &json!({"spans": spans}));
    assert_eq!(status, 200, "{r}");
    s.flush();
    for rule in ["rootless", "no-root-service"] {
        assert_eq!(s.violations(&format!("?ruleId={rule}")).len(), 1, "{rule}");
    }
    let (status, t) = s.post(
        "/v1/rules/test",
        &json!({"expression": "never { trace.root_name == \"\" }", "spans": spans}),
    );
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["matches"], true, "{t}");
}
