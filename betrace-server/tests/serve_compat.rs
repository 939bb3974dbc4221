//! The routes of the earlier product's clients (COMPAT.md) on `betrace serve` as a process, over
//! loopback: each answer has the field names and types those clients parse. Violations come
//! from the OpenTelemetry Python SDK; CORS preflights as a browser sends them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The top-level error fields the clients show: `message` (a string naming the problem), and
/// `name`, beside the usual `error` object.
fn assert_compat_error(body: &Value, status_code: &str, needle: &str) {
    assert_eq!(body["name"], status_code, "{body}");
    assert_eq!(body["error"]["code"], status_code, "{body}");
    let m = body["message"].as_str().unwrap();
    assert!(m.contains(needle), "{needle} not in {body}");
}

#[test]
fn health_in_both_shapes() {
    let s = Server::test_mode();
    let (st, h) = s.get("/health");
    assert_eq!(st, 200);
    assert_eq!(h["status"], "healthy");
    assert!(h["uptimeSeconds"].is_number(), "{h}");
    let (st, h) = s.get("/v1/health");
    assert_eq!((st, h["status"].clone()), (200, json!("HEALTHY")));
}

#[test]
fn api_v1_rules_dialect() {
    let s = Server::test_mode();
    let expr = "never { payment.where(span.status == error) }";
    for (id, tags) in [
        ("a", json!(["pay"])),
        ("b", json!(["ship"])),
        ("c", json!([])),
    ] {
        let (st, r) = s.post(
            "/api/v1/rules",
            &json!({"id": id, "expression": expr, "severity": "HIGH", "tags": tags}),
        );
        assert_eq!(st, 201, "{r}");
        assert!(
            is_rfc3339(&r["createdAt"]) && is_rfc3339(&r["updatedAt"]),
            "{r}"
        );
    }
    let (st, list) = s.get("/api/v1/rules?tags=pay,ship");
    assert_eq!(st, 200);
    assert_eq!(list["totalCount"], 2, "{list}");
    let ids: Vec<&str> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let (_, all) = s.get("/api/v1/rules");
    assert_eq!(all["totalCount"], 3);

    let (st, r) = s.get("/api/v1/rules/a");
    assert_eq!((st, r["expression"].clone()), (200, json!(expr)));
    let (st, r) = s.send(
        "PUT",
        "/api/v1/rules/a",
        Some(&json!({"expression": expr, "severity": "LOW"})),
    );
    assert_eq!((st, r["severity"].clone()), (200, json!("LOW")));
    let (st, r) = s.send(
        "PATCH",
        "/api/v1/rules/a",
        Some(&json!({"tags": ["pay", "eu"]})),
    );
    assert_eq!((st, r["tags"].clone()), (200, json!(["pay", "eu"])));
    let (st, r) = s.post("/api/v1/rules/a/disable", &Value::Null);
    assert_eq!((st, r["enabled"].clone()), (200, json!(false)));
    let (st, r) = s.post("/api/v1/rules/a/enable", &Value::Null);
    assert_eq!((st, r["enabled"].clone()), (200, json!(true)));
    let (st, _) = s.send("DELETE", "/api/v1/rules/a", None);
    assert_eq!(st, 204);

    // Errors carry `message` and `name` at the top level.
    let (st, e) = s.get("/api/v1/rules/a");
    assert_eq!(st, 404);
    assert_compat_error(&e, "not_found", "`a`");
    let (st, e) = s.post(
        "/api/v1/rules",
        &json!({"id": "bad", "expression": "never { payment.where( }"}),
    );
    assert_eq!(st, 400);
    assert_compat_error(&e, "invalid_expression", "does not compile");
    assert!(
        e["diagnostics"][0]["code"]
            .as_str()
            .unwrap()
            .starts_with('E')
    );

    // Validation: `error` only when invalid, rendered `line:col: CODE message`.
    let (st, v) = s.post("/api/v1/rules/validate", &json!({"expression": expr}));
    assert_eq!(st, 200);
    assert_eq!(v["valid"], true);
    assert!(v.get("error").is_none(), "{v}");
    let (_, v) = s.post(
        "/api/v1/rules/validate",
        &json!({"expression": "never { x ="}),
    );
    assert_eq!(v["valid"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(
        v["error"].as_str().unwrap(),
        format!(
            "{}:{}: {} {}",
            d["line"],
            d["column"],
            d["code"].as_str().unwrap(),
            d["message"].as_str().unwrap()
        )
    );
}

#[test]
fn api_rules_dialect() {
    let s = Server::test_mode();
    let (st, r) = s.post(
        "/api/rules",
        &json!({"name": "payments-ok", "description": "no failed payment", "dsl": "never { payment.where(span.status == error) }", "enabled": true, "severity": "critical"}),
    );
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["id"], "payments-ok");
    assert_eq!(r["severity"], "critical");
    assert_eq!(r["dsl"], "never { payment.where(span.status == error) }");
    let (st, list) = s.get("/api/rules");
    assert_eq!(st, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let r = &list[0];
    for k in ["id", "name", "description", "dsl", "severity"] {
        assert!(r[k].is_string(), "{k} in {r}");
    }
    assert!(r["enabled"].is_boolean());
    assert!(
        is_rfc3339(&r["createdAt"]) && is_rfc3339(&r["updatedAt"]),
        "{r}"
    );

    let (st, r) = s.send(
        "PUT",
        "/api/rules/payments-ok",
        Some(&json!({"name": "payments-ok", "description": "changed", "dsl": "span.name == \"x\"", "enabled": true, "severity": "low"})),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["severity"].clone(), r["description"].clone()),
        (json!("low"), json!("changed"))
    );
    let (st, one) = s.get("/api/rules/payments-ok");
    assert_eq!((st, one["description"].clone()), (200, json!("changed")));
    assert_eq!(one["dsl"], "span.name == \"x\"");
    let (st, r) = s.send(
        "PATCH",
        "/api/rules/payments-ok",
        Some(&json!({"enabled": false})),
    );
    assert_eq!(
        (st, r["enabled"].clone(), r["dsl"].clone()),
        (200, json!(false), json!("span.name == \"x\""))
    );
    let (st, e) = s.send(
        "PATCH",
        "/api/rules/payments-ok",
        Some(&json!({"enabled": "no"})),
    );
    assert_eq!(st, 400);
    assert_compat_error(&e, "bad_request", "enabled");

    // A rule that does not compile: 400 with `message` and `diagnostics`.
    let (st, e) = s.post(
        "/api/rules",
        &json!({"name": "broken", "dsl": "never { payment.where( }", "severity": "high"}),
    );
    assert_eq!(st, 400);
    assert_compat_error(&e, "invalid_expression", "does not compile");
    assert!(!e["diagnostics"].as_array().unwrap().is_empty(), "{e}");
    let (st, e) = s.post(
        "/api/rules",
        &json!({"name": "x", "dsl": "span.name == \"x\"", "severity": "urgent"}),
    );
    assert_eq!(st, 400);
    assert_compat_error(&e, "invalid_rule", "severity");

    let (st, _) = s.send("DELETE", "/api/rules/payments-ok", None);
    assert_eq!(st, 204);
    let (st, e) = s.send("DELETE", "/api/rules/payments-ok", None);
    assert_eq!(st, 404);
    assert_compat_error(&e, "not_found", "payments-ok");
    let (_, list) = s.get("/api/rules");
    assert_eq!(list, json!([]));
    let (st, e) = s.get("/api/nowhere");
    assert_eq!(st, 404);
    assert_compat_error(&e, "not_found", "/api/nowhere");
}

fn send_python(server: &Server) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(sdk("send_python.py")).args([
        "--protocol",
        "http",
        "--endpoint",
        server.otlp_http.as_deref().unwrap(),
    ]);
    serde_json::from_str(&run_ok(&mut cmd)).unwrap()
}

#[test]
fn api_violations_stats_and_dashboard() {
    let s = Server::test_mode();
    for r in shop_rules() {
        s.create_rule(&r);
    }
    let sent = send_python(&s);
    s.flush();

    let (st, list) = s.get("/api/violations?timeRange=1h");
    assert_eq!(st, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    for v in &list {
        assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
        assert!(is_rfc3339(&v["timestamp"]), "{v}");
        assert!(is_hex(&v["traceId"], 32) && is_hex(&v["spanId"], 16), "{v}");
        for k in ["ruleId", "ruleName", "serviceName", "spanName", "message"] {
            assert!(v[k].is_string(), "{k} in {v}");
        }
        assert_eq!(v["serviceName"], "shop");
        assert!(v["metadata"].is_object());
    }
    let by_rule = |id: &str| list.iter().find(|v| v["ruleId"] == id).unwrap().clone();
    let fraud = by_rule("large-order-fraud");
    assert_eq!(fraud["severity"], "high");
    assert_eq!(fraud["traceId"], sent["fraud"]["trace_id"]);
    assert_eq!(fraud["spanId"], sent["fraud"]["checkout_span_id"]);
    assert_eq!(fraud["spanName"], "checkout");
    let payment = by_rule("payment-must-not-fail");
    assert_eq!(payment["severity"], "critical");
    assert_eq!(payment["spanId"], sent["payment"]["payment_span_id"]);
    assert_eq!(payment["spanName"], "payment");

    // Filters.
    let count = |q: &str| {
        let (st, l) = s.get(&format!("/api/violations?{q}"));
        assert_eq!(st, 200, "{q}: {l}");
        l.as_array().unwrap().len()
    };
    assert_eq!(count("severity=critical"), 1);
    assert_eq!(count("severity=HIGH"), 1);
    assert_eq!(count("rule=large-order-fraud"), 1);
    assert_eq!(count("service=shop"), 2);
    assert_eq!(count("service=elsewhere"), 0);
    assert_eq!(count("limit=1"), 1);
    let now = now_ms();
    assert_eq!(
        count(&format!("from={}&to={}", now - 60_000, now + 60_000)),
        2
    );
    assert_eq!(count(&format!("to={}", now - 60_000)), 0);
    assert_eq!(count("timeRange=30d&service=shop&severity=low"), 0);
    let (st, e) = s.get("/api/violations?timeRange=2w");
    assert_eq!(st, 400);
    assert_compat_error(&e, "bad_request", "timeRange");
    let (st, e) = s.get("/api/violations?from=yesterday");
    assert_eq!(st, 400);
    assert_compat_error(&e, "bad_request", "from");

    // Buckets.
    for (group, keys) in [
        ("rule", vec!["large-order-fraud", "payment-must-not-fail"]),
        ("severity", vec!["critical", "high"]),
        ("service", vec!["shop"]),
    ] {
        let (st, b) = s.get(&format!(
            "/api/violations/stats?from={}&to={}&groupBy={group}&interval=1m",
            now - 3_600_000,
            now + 60_000
        ));
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["total"], 2, "{b}");
        let buckets = b["buckets"].as_array().unwrap();
        let mut seen: Vec<&str> = buckets.iter().map(|x| x["key"].as_str().unwrap()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, keys, "{b}");
        let sum: u64 = buckets.iter().map(|x| x["count"].as_u64().unwrap()).sum();
        assert_eq!(sum, 2);
        for x in buckets {
            assert!(is_rfc3339(&x["time"]), "{x}");
            let t = chrono::DateTime::parse_from_rfc3339(x["time"].as_str().unwrap()).unwrap();
            assert_eq!(t.timestamp() % 60, 0, "bucket start on the minute: {x}");
        }
    }
    let (st, e) = s.get("/api/violations/stats?groupBy=colour");
    assert_eq!(st, 400);
    assert_compat_error(&e, "bad_request", "groupBy");

    let (st, stats) = s.get("/api/stats");
    assert_eq!(st, 200);
    assert_eq!(
        stats,
        json!({"totalRules": 2, "activeRules": 2, "violations24h": 2})
    );
    s.send(
        "PATCH",
        "/api/rules/large-order-fraud",
        Some(&json!({"enabled": false})),
    );
    let (_, stats) = s.get("/api/stats");
    assert_eq!(stats["activeRules"], 1);

    let (st, d) = s.get("/api/metrics/dashboard");
    assert_eq!(st, 200);
    assert_eq!(d["rules"]["total"], 2);
    assert_eq!(d["rules"]["active"], 1);
    assert_eq!(d["violations"]["last24h"], 2);
    assert_eq!(
        d["violations"]["bySeverity"],
        json!({"critical": 1, "high": 1})
    );
    // The SDK script sends 7 spans (two checkout traces and a payment trace).
    assert_eq!(d["spans"]["received"], 7, "{d}");
    assert!(d["spans"]["buffered"].is_number());
}

fn preflight(s: &Server, origin: &str, method: &str, headers: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/rules"))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .unwrap()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default()
}

#[test]
fn cors_preflight_for_the_clients_origins() {
    let s = Server::start(Opts {
        args: vec![
            "--test-mode".into(),
            "--cors-origin".into(),
            "http://localhost:3000,https://grafana.example".into(),
        ],
        env: vec![("BETRACE_API_TOKEN", "s3cret".into())],
        ..Opts::default()
    });
    let asked = "authorization,content-type,x-api-key,x-tenant-id";
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        // A preflight carries no credentials; it is answered before the token check.
        let r = preflight(&s, "https://grafana.example", method, asked);
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            "https://grafana.example"
        );
        let methods = header(&r, "access-control-allow-methods");
        for m in ["get", "post", "put", "patch", "delete", "options"] {
            assert!(methods.contains(m), "{m} not in {methods}");
        }
        let allowed = header(&r, "access-control-allow-headers");
        for h in asked.split(',') {
            assert!(allowed.contains(h), "{h} not in {allowed}");
        }
    }
    // Without the token: 401 in this dialect's error shape.
    let r = reqwest::blocking::Client::new()
        .get(s.url("/api/rules"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_compat_error(&e, "unauthorized", "Bearer");
    // The actual request from the allowed origin, with the token.
    let r = reqwest::blocking::Client::new()
        .get(s.url("/api/rules"))
        .header("origin", "http://localhost:3000")
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "http://localhost:3000"
    );
    // Another origin gets no CORS headers.
    let r = preflight(&s, "https://evil.example", "DELETE", asked);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn cors_origins_from_the_environment_and_off_by_default() {
    let s = Server::start(Opts {
        env: vec![(
            "BETRACE_CORS_ORIGINS",
            "http://localhost:3000, http://kibana.example".into(),
        )],
        ..Opts::default()
    });
    let r = preflight(
        &s,
        "http://kibana.example",
        "PATCH",
        "content-type,x-tenant-id",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "http://kibana.example"
    );
    let off = Server::test_mode();
    let r = preflight(&off, "http://kibana.example", "PATCH", "content-type");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn openapi_documents_the_compatibility_routes() {
    let s = Server::test_mode();
    let (_, doc) = s.get("/v1/openapi.json");
    let paths = doc["paths"].as_object().unwrap();
    let expected: &[(&str, &str)] = &[
        ("get", "/health"),
        ("get", "/api/v1/rules"),
        ("post", "/api/v1/rules"),
        ("get", "/api/v1/rules/{id}"),
        ("put", "/api/v1/rules/{id}"),
        ("delete", "/api/v1/rules/{id}"),
        ("post", "/api/v1/rules/{id}/enable"),
        ("post", "/api/v1/rules/validate"),
        ("get", "/api/rules"),
        ("post", "/api/rules"),
        ("get", "/api/rules/{id}"),
        ("put", "/api/rules/{id}"),
        ("patch", "/api/rules/{id}"),
        ("delete", "/api/rules/{id}"),
        ("get", "/api/violations"),
        ("get", "/api/violations/stats"),
        ("get", "/api/stats"),
        ("get", "/api/metrics/dashboard"),
    ];
    for (m, p) in expected {
        let op = &paths[*p][*m];
        assert_eq!(op["tags"], json!(["compatibility"]), "{m} {p}: {op}");
    }
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "operation ids are unique");
}
