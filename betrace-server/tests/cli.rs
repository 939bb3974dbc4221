//! The `betrace` binary run as a process: the examples through `betrace check`, and
//! `validate`, `fmt`, `verify` (the conformance corpus through `betrace test` is
//! `cli_conformance.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn betrace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_betrace"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("betrace runs")
}

#[test]
fn examples_find_exactly_the_expected_violations() {
    let examples = root().join("examples");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(examples.join("expected-violations.json")).unwrap(),
    )
    .unwrap();
    let rules = examples.join("rules.yaml");
    let mut total = 0;
    for (file, ids) in expected.as_object().unwrap() {
        let want: BTreeSet<String> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let out = run(betrace()
            .args(["check", "--format", "json", "--rules"])
            .arg(&rules)
            .arg(examples.join(file)));
        let got: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("one violation per line");
                assert!(v["triggerSpans"].is_array() && v["message"].is_string());
                v["ruleId"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            got,
            want,
            "{file}: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(if want.is_empty() { 0 } else { 1 }),
            "{file}"
        );
        total += want.len();
    }
    assert!(total >= 10, "the examples should exercise many rules");
    // The whole directory at once, as in the README.
    let out = run(betrace()
        .args(["check", "--rules"])
        .arg(&rules)
        .arg(examples.join("traces")));
    assert_eq!(out.status.code(), Some(1));
    let out = run(betrace()
        .args(["check", "--format", "junit", "--rules"])
        .arg(&rules)
        .arg(examples.join("traces")));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(
            "<testcase classname=\"betrace.rules\" name=\"large-order-requires-fraud-check\""
        ),
        "{xml}"
    );
    assert!(xml.contains("<failure"), "{xml}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn validate_reports_every_bad_rule() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        "rules:\n  - id: a\n    expression: when { payment } always { fraud_check }\n",
    );
    let out = run(betrace().arg("validate").arg(&good));
    assert_eq!(out.status.code(), Some(0));
    let bad = write(
        dir.path(),
        "bad.yaml",
        "rules:\n  - id: a\n    expression: 'when { a.where(x = 1) } always { b }'\n  - id: b\n    expression: span.status == failed\n",
    );
    let out = run(betrace().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("E101") && err.contains("E303") && err.contains('^'),
        "{err}"
    );
    assert!(
        err.contains("rule `a`") && err.contains("rule `b`"),
        "{err}"
    );
    let mut child = betrace()
        .args(["validate", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"span.durration > 1s")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `duration`?"));
    let missing = run(betrace().arg("validate").arg(dir.path().join("nope.yaml")));
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn fmt_rewrites_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "rules.yaml",
        "# keep me\nrules:\n  - id: a\n    expression: when {payment}   always {fraud_check}  # also me\n",
    );
    let out = run(betrace().args(["fmt", "--check"]).arg(&f));
    assert_eq!(out.status.code(), Some(1));
    let out = run(betrace().arg("fmt").arg(&f));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.starts_with("# keep me\n"), "{text}");
    assert!(text.contains("when { payment }"), "{text}");
    let out = run(betrace().args(["fmt", "--check"]).arg(&f));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let j = write(
        dir.path(),
        "rules.json",
        r#"{"rules": [{"id": "x", "expression": "span.status==error"}]}"#,
    );
    assert_eq!(run(betrace().arg("fmt").arg(&j)).status.code(), Some(0));
    assert!(
        std::fs::read_to_string(&j)
            .unwrap()
            .contains("\"span.status == error\"")
    );
}

#[test]
fn test_command_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.json", "[]");
    let out = run(betrace()
        .args(["test", "--format", "json", "--expression", "a", "--spans"])
        .arg(&empty));
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"]["message"].is_string());
    let garbage = write(dir.path(), "garbage.json", "{not json");
    let out = run(betrace()
        .args(["test", "--expression", "a", "--spans"])
        .arg(&garbage));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_accepts_signed_and_rejects_tampered() {
    use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
    use betrace_core::rules::Rule;
    let dir = tempfile::tempdir().unwrap();
    let key = b"0123456789abcdef0123456789abcdef";
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{}\n", String::from_utf8_lossy(key))).unwrap();
    let rules = RuleSet::compile(
        vec![Rule::new("no-errors", "span.status == error")],
        EngineOptions {
            signing_key: Some(key.to_vec()),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let spans = betrace_core::spans_from_simple_json(&json!([{
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
        "name": "GET /x", "serviceName": "api", "status": "error",
        "startTime": 1700000000000000000u64, "endTime": 1700000000100000000u64
    }]))
    .unwrap();
    let eval = rules.evaluate(&betrace_core::Trace::new(spans), TraceContext::direct());
    assert_eq!(eval.violations.len(), 1);
    let v = serde_json::to_value(&eval.violations[0]).unwrap();
    let good = write(dir.path(), "v.json", &v.to_string());
    let out = run(betrace()
        .args(["verify", "--key-file"])
        .arg(&key_file)
        .arg(&good));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut t = v.clone();
    t["severity"] = json!("LOW");
    let bad = write(dir.path(), "t.json", &t.to_string());
    let out = run(betrace()
        .args(["verify", "--key-file"])
        .arg(&key_file)
        .arg(&bad));
    assert_eq!(out.status.code(), Some(1));
}
