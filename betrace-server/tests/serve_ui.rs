//! The web UI's server side, over loopback: the embedded pages and their redirects, the UI
//! routes, span summaries stored beside signed violations (SQLite, across a restart) and
//! `GET /api/traces/{traceId}`, `ui.trace_url` checked at start-up. The pages themselves are
//! driven in a browser by `tests/ui/test_ui.py`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn shop_trace() -> Value {
    let span = |id: &str, parent: &str, name: &str, start: u64, end: u64, extra: Value| {
        let mut s = json!({
            "traceId": TRACE, "spanId": id, "parentSpanId": parent, "name": name,
            "serviceName": "shop", "kind": "server",
            "startTime": start.to_string(), "endTime": end.to_string(),
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut s, extra) {
            m.extend(e);
        }
        s
    };
    let t0: u64 = 1_700_000_000_000_000_000;
    json!({"spans": [
        span("00f067aa0ba902b7", "", "checkout", t0, t0 + 30_000_000, json!({})),
        span("00f067aa0ba902b8", "00f067aa0ba902b7", "payment", t0 + 1_000_000, t0 + 21_000_000,
             json!({"status": "error", "attributes": {"amount": 12.5, "card": "visa"}})),
        span("00f067aa0ba902b9", "00f067aa0ba902b7", "inventory", t0 + 2_000_000, t0 + 4_000_000, json!({})),
    ]})
}

#[test]
fn pages_are_embedded_open_and_redirected() {
    let s = Server::start(Opts {
        env: vec![("BETRACE_API_TOKEN", "s3cret".into())],
        ..Opts::default()
    });
    let plain = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/ui"] {
        let r = plain.get(s.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 307, "{path}");
        assert_eq!(r.headers()["location"], "/ui/");
    }
    let r = plain.get(s.url("/ui/")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = r.text().unwrap();
    assert!(
        html.contains(r#"<script type="module" src="app.js">"#),
        "{html}"
    );
    for (file, mime) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let r = plain.get(s.url(&format!("/ui/{file}"))).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(mime)
        );
        assert!(r.text().unwrap().len() > 100, "{file} is empty");
    }
    let r = plain.get(s.url("/ui/nope.js")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // The data routes stay behind the token.
    let r = plain.get(s.url("/v1/ui/config")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (st, c) = s.get("/v1/ui/config");
    assert_eq!(st, 200);
    assert_eq!(c["traceUrl"], Value::Null);
    assert_eq!(c["rulesReadOnly"], false);
    let (st, status) = s.get("/v1/ui/status");
    assert_eq!(st, 200);
    assert_eq!(status["lastExportError"], Value::Null);
    assert_eq!(status["exportEnabled"], false);
}

#[test]
fn span_summaries_beside_signed_violations_and_api_traces() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - id: no-payment-errors\n    expression: never { payment.where(span.status == error) }\n    severity: high\n",
    )
    .unwrap();
    let opts = || Opts {
        args: vec![
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--rules".into(),
            rules.display().to_string(),
            "--ui-trace-url".into(),
            "http://tempo:3000/explore?traceId={traceId}".into(),
        ],
        env: vec![],
        cwd: Some(dir.path()),
    };
    let mut s = Server::start(opts());
    let (_, c) = s.get("/v1/ui/config");
    assert_eq!(c["traceUrl"], "http://tempo:3000/explore?traceId={traceId}");
    assert_eq!(c["rulesReadOnly"], true);
    assert_eq!(c["rulesFile"], rules.display().to_string());
    assert_eq!(c["storage"], "sqlite");
    let (st, _) = s.post("/v1/spans", &shop_trace());
    assert_eq!(st, 200);
    s.flush();
    let vs = s.violations("");
    assert_eq!(vs.len(), 1);
    let id = vs[0]["id"].as_str().unwrap().to_owned();
    // The signed record is unchanged: no summary inside, the signature holds.
    assert!(vs[0].get("spans").is_none());
    assert!(betrace_core::sign::verify_json(&vs[0], KEY.as_bytes()));

    let check = |s: &Server| {
        let (st, t) = s.get(&format!("/api/traces/{}", TRACE.to_uppercase()));
        assert_eq!(st, 200, "{t}");
        assert_eq!(t["traceId"], TRACE);
        assert_eq!(t["totalSpans"], 3);
        assert_eq!(t["truncated"], false);
        let spans = t["spans"].as_array().unwrap();
        let names: Vec<&str> = spans.iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["checkout", "payment", "inventory"]);
        let pay = &spans[1];
        assert_eq!(pay["spanId"], "00f067aa0ba902b8");
        assert_eq!(pay["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(spans[0]["parentSpanId"], "");
        assert_eq!(pay["serviceName"], "shop");
        assert_eq!(pay["kind"], "server");
        assert_eq!(pay["status"], "error");
        assert_eq!(pay["startTime"], "1700000000001000000");
        assert_eq!(pay["endTime"], "1700000000021000000");
        assert_eq!(pay["durationMs"], 20.0);
        assert_eq!(pay["attributes"]["card"], "visa");
        assert_eq!(pay["attributes"]["amount"], 12.5);
        let tv = t["violations"].as_array().unwrap();
        assert_eq!(tv.len(), 1);
        assert_eq!(tv[0]["id"], id.as_str());
        assert_eq!(tv[0]["offendingSpans"][0]["spanId"], "00f067aa0ba902b8");
        // The spans go back into the rules test route as they are.
        let (st, r) = s.post(
            "/v1/rules/test",
            &json!({"expression": "never { payment.where(span.status == error) }", "spans": spans}),
        );
        assert_eq!((st, r["matches"].clone()), (200, json!(true)), "{r}");
    };
    check(&s);
    let (st, e) = s.get(&format!("/api/traces/{}", "0".repeat(32)));
    assert_eq!((st, e["error"]["code"].clone()), (404, json!("not_found")));
    let (st, e) = s.get("/api/traces/xyz");
    assert_eq!(st, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("traceId"),
        "{e}"
    );
    let (_, doc) = s.get("/v1/openapi.json");
    let (_, last) = s.get("/v1/ui/last-violations");
    assert_eq!(
        last["rules"]["no-payment-errors"]["id"],
        id.as_str(),
        "{last}"
    );
    assert_eq!(last["rules"].as_object().unwrap().len(), 1);
    for p in [
        "/api/traces/{traceId}",
        "/v1/ui/config",
        "/v1/ui/status",
        "/v1/ui/last-violations",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} is not in the OpenAPI document"
        );
    }

    // SQLite: the summaries survive a restart, the signature still verifies.
    assert!(s.terminate().success(), "{}", s.stderr());
    let s = Server::start(opts());
    check(&s);
    let (_, v) = s.get(&format!("/v1/violations/{id}"));
    assert_eq!(v["verified"], true);
}

#[test]
fn bad_trace_url_stops_start_up() {
    for (args, env, named) in [
        (
            vec!["--ui-trace-url", "http://tempo/explore"],
            None,
            "--ui-trace-url",
        ),
        (vec![], Some("ftp://x/{traceId}"), "BETRACE_UI_TRACE_URL"),
    ] {
        let mut cmd = betrace();
        cmd.args(["serve", "--test-mode"]).args(&args);
        if let Some(v) = env {
            cmd.env("BETRACE_UI_TRACE_URL", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{named} not named in: {err}");
    }
}

#[test]
fn status_route_reports_the_last_export_error() {
    // A port nothing listens on: every export attempt fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--otel-endpoint".into(),
            endpoint,
            "--otlp-protocol".into(),
            "http/protobuf".into(),
        ],
        ..Opts::default()
    });
    s.create_rule(&json!({"name": "no-payment-errors", "expression": "never { payment.where(span.status == error) }"}));
    s.post("/v1/spans", &shop_trace());
    s.flush();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let (st, status) = s.get("/v1/ui/status");
        assert_eq!(st, 200);
        if !status["lastExportError"].is_null() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no export error reported: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status["exportEnabled"], true);
    let err = &status["lastExportError"];
    assert!(!err["message"].as_str().unwrap().is_empty(), "{err}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(err["at"].as_str().unwrap()).is_ok(),
        "{err}"
    );
    assert!(s.metric("betrace_export_spans_total{result=\"failure\"}") >= 1.0);
}
