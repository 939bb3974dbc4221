//! Rule changes over the REST API compile only the rules they change, and the compiled rule is
//! the one evaluated: `betrace serve` as a process, `betrace_rule_compilations_total` read
//! from `/metrics` after every request, violations from spans posted to `/v1/spans`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn compilations(s: &Server) -> f64 {
    s.metric("betrace_rule_compilations_total ")
}

fn span(trace: u32, id: u32, name: &str, status: &str) -> Value {
    json!({
        "traceId": format!("{trace:032x}"), "spanId": format!("{id:016x}"), "name": name,
        "serviceName": "shop", "startTime": 1_000, "endTime": 2_000, "status": status,
    })
}

fn import(s: &Server, body: &str) -> Value {
    let r = s
        .client
        .post(s.url("/v1/rules/import"))
        .header("content-type", "application/yaml")
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_slice(&r.bytes().unwrap()).unwrap()
}

/// The rule ids of the stored violations of `trace`, sorted.
fn violated(s: &Server, trace: u32) -> Vec<String> {
    let mut ids: Vec<String> = s
        .violations(&format!("?traceId={trace:032x}"))
        .iter()
        .map(|v| v["ruleId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn each_change_compiles_the_rule_it_changes_once() {
    let s = Server::test_mode();
    let mut expected = 0.0;
    let mut changed = |what: &str, rules: f64| {
        expected += rules;
        assert_eq!(compilations(&s), expected, "after {what}");
    };
    changed("start without rules", 0.0);

    let errs = "never { payment.where(span.status == error) }";
    s.create_rule(&json!({"id": "pay-fails", "expression": errs}));
    changed("POST /v1/rules", 1.0);
    s.create_rule(&json!({"id": "no-refund", "expression": "never { refund }"}));
    changed("a second POST /v1/rules", 1.0);

    let (st, r) = s.send(
        "PUT",
        "/v1/rules/pay-fails",
        Some(&json!({"expression": errs, "severity": "HIGH"})),
    );
    assert_eq!(st, 200, "{r}");
    changed("PUT", 1.0);
    let (st, r) = s.send(
        "PATCH",
        "/v1/rules/pay-fails",
        Some(&json!({"description": "payments do not fail"})),
    );
    assert_eq!(st, 200, "{r}");
    changed("PATCH", 1.0);
    let (st, r) = s.post("/v1/rules/no-refund/disable", &Value::Null);
    assert_eq!((st, r["enabled"].clone()), (200, json!(false)));
    changed("disable", 1.0);
    let (st, r) = s.post("/v1/rules/no-refund/enable", &Value::Null);
    assert_eq!((st, r["enabled"].clone()), (200, json!(true)));
    changed("enable", 1.0);

    // Two rules: one new, one replacing a stored rule.
    let body = import(
        &s,
        "rules:\n  - id: no-cancel\n    expression: never { cancel }\n  - id: no-refund\n    expression: never { refund.where(span.status == error) }\n",
    );
    assert_eq!(
        (body["created"].clone(), body["updated"].clone()),
        (json!(1), json!(1)),
        "{body}"
    );
    changed("importing two rules", 2.0);

    let (st, r) = s.post(
        "/api/rules",
        &json!({"name": "no-chargeback", "dsl": "never { chargeback }", "severity": "high"}),
    );
    assert_eq!(st, 201, "{r}");
    changed("POST /api/rules", 1.0);

    // A delete compiles nothing.
    s.create_rule(&json!({"id": "gone", "expression": "never { payment }"}));
    changed("POST /v1/rules", 1.0);
    let (st, _) = s.send("DELETE", "/v1/rules/gone", None);
    assert_eq!(st, 204);
    changed("DELETE", 0.0);

    // An expression that does not compile: the 400 with the expression's diagnostics, no
    // rule stored, the set unchanged, nothing counted.
    let bad = "never { payment.where( }";
    let (_, v) = s.post("/v1/rules/validate", &json!({"expression": bad}));
    assert_eq!(v["valid"], false, "{v}");
    assert!(!v["diagnostics"].as_array().unwrap().is_empty(), "{v}");
    // A rule change's diagnostics are validate's, each naming the rule it is about.
    let of_rule = |id: &str| {
        let mut d = v["diagnostics"].clone();
        for x in d.as_array_mut().unwrap() {
            x["ruleId"] = json!(id);
        }
        d
    };
    let (st, e) = s.post("/v1/rules", &json!({"id": "bad", "expression": bad}));
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["code"], "invalid_expression");
    assert_eq!(
        e["error"]["message"],
        "rule `bad`: the expression does not compile"
    );
    assert_eq!(e["error"]["diagnostics"], of_rule("bad"));
    assert_eq!(s.get("/v1/rules/bad").0, 404);
    let (st, e) = s.send(
        "PUT",
        "/v1/rules/pay-fails",
        Some(&json!({"expression": bad})),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["diagnostics"], of_rule("pay-fails"));
    let (st, e) = s.post(
        "/api/rules",
        &json!({"name": "broken", "dsl": bad, "severity": "high"}),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["diagnostics"], of_rule("broken"));
    let (st, e) = s.send(
        "PATCH",
        "/v1/rules/pay-fails",
        Some(&json!({"expression": bad})),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["diagnostics"], of_rule("pay-fails"));
    changed("four rules that do not compile", 0.0);
    assert_eq!(s.metric("betrace_rules_active "), 4.0);

    // The rules in force are the ones changed over the API: each trace violates the rules
    // named, the deleted rule and the refused versions none.
    let spans = vec![
        span(1, 1, "payment", "error"),
        span(2, 2, "refund", "ok"),
        span(3, 3, "refund", "error"),
        span(4, 4, "cancel", "ok"),
        span(5, 5, "chargeback", "ok"),
        span(6, 6, "payment", "ok"),
    ];
    let (st, r) = s.post("/v1/spans", &json!({ "spans": spans }));
    assert_eq!(st, 200, "{r}");
    assert_eq!(s.flush(), 6);
    assert_eq!(violated(&s, 1), ["pay-fails"]);
    assert!(
        violated(&s, 2).is_empty(),
        "the imported no-refund is in force"
    );
    assert_eq!(violated(&s, 3), ["no-refund"]);
    assert_eq!(violated(&s, 4), ["no-cancel"]);
    assert_eq!(violated(&s, 5), ["no-chargeback"]);
    assert!(
        violated(&s, 6).is_empty(),
        "the deleted rule is not in force"
    );
    let v = &s.violations("?traceId=00000000000000000000000000000001")[0];
    assert_eq!(
        v["severity"], "HIGH",
        "the replaced version is in force: {v}"
    );
    assert!(betrace_core::sign::verify_json(v, KEY.as_bytes()));
}

#[test]
fn start_compiles_every_rule_once() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - id: a\n    expression: never { a }\n  - id: b\n    expression: never { b }\n  - id: c\n    expression: never { c }\n",
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
    assert_eq!(compilations(&s), 3.0);
    s.create_rule(&json!({"id": "d", "expression": "never { d }"}));
    assert_eq!(compilations(&s), 4.0);
    // A rule of the file cannot be changed; an expression that does not compile is still
    // reported first.
    let (st, e) = s.send(
        "PUT",
        "/v1/rules/a",
        Some(&json!({"expression": "never { a.where( }"})),
    );
    assert_eq!(
        (st, e["error"]["code"].clone()),
        (400, json!("invalid_expression"))
    );
    let (st, e) = s.send(
        "PUT",
        "/v1/rules/a",
        Some(&json!({"expression": "never { z }"})),
    );
    assert_eq!((st, e["error"]["code"].clone()), (403, json!("read_only")));
    // The file's rules and the new one are in force.
    let spans = vec![
        span(1, 1, "a", "ok"),
        span(2, 2, "d", "ok"),
        span(3, 3, "z", "ok"),
    ];
    let (st, r) = s.post("/v1/spans", &json!({ "spans": spans }));
    assert_eq!(st, 200, "{r}");
    assert_eq!(s.flush(), 3);
    assert_eq!(violated(&s, 1), ["a"]);
    assert_eq!(violated(&s, 2), ["d"]);
    assert!(violated(&s, 3).is_empty());
}
