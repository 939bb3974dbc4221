//! The Python verifier shipped in the docs (`docs/verify_signature.py`, ENGINE.md §7) accepts
//! violations signed by the engine, byte for byte, and rejects tampered ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use betrace_core::sign::{PYTHON_VERIFIER, canonical_bytes, sign_in_place};
use betrace_core::{
    ClauseTexts, CompletionReason, FailedClause, Severity, SpanRef, TraceId, Violation,
    ViolationParts,
};

fn span_ref(name: &str, service: &str, id: u8) -> SpanRef {
    SpanRef {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap(),
        span_id: betrace_core::SpanId([id; 8]),
        name: name.into(),
        service: service.into(),
    }
}

fn violations() -> Vec<Violation> {
    let base = |rule_name: &'static str, failed, when: Option<&'static str>| ViolationParts {
        rule_id: "rule-1",
        rule_name,
        expression: "when { checkout } always { fraud_check }",
        severity: Severity::High,
        clauses: ClauseTexts {
            when,
            always: Some("fraud_check"),
            never: Some("debug"),
        },
        trace_id: TraceId([0x4b; 16]),
        failed_clause: failed,
        trigger_spans: vec![span_ref("checkout", "shop", 1)],
        offending_spans: vec![],
        truncated: false,
        completion_reason: CompletionReason::RootComplete,
        partial: false,
    };
    let mut out = vec![
        Violation::new(
            base("plain ascii", FailedClause::Always, Some("checkout")),
            1,
        ),
        Violation::new(
            base("Zürich 🚀 payments", FailedClause::Always, Some("ünïcödé")),
            1_714_564_800_123_000_000,
        ),
    ];
    let mut p = base("quotes \" and \\ backslash", FailedClause::Never, None);
    p.offending_spans = vec![
        span_ref("GET /api/ü\u{1}\u{7f}", "svc\t\n\r\u{8}\u{c}", 2),
        span_ref("\u{2028}\u{2029}\u{feff}𝄞", "日本語", 3),
    ];
    p.truncated = true;
    p.partial = true;
    p.completion_reason = CompletionReason::Evicted;
    out.push(Violation::new(p, 42_000_000));
    let mut p = base("expr", FailedClause::Expression, None);
    p.expression = "span.name == \"é\" and \"\u{1f}\" != \"\u{10ffff}\"";
    out.push(Violation::new(p, 99));
    // Fields set directly, beyond what the constructor produces.
    out[3].message = "line1\nline2 \u{0} </script> &amp; 🧪".into();
    // Records of a re-evaluation: an integer key, a supersede and a retraction.
    let mut again = out[0].clone();
    again.evaluation = 2;
    again.supersedes = Some(out[1].id.clone());
    let retraction = out[1].retraction_of(12, 7, CompletionReason::Flush, 5);
    out.push(again);
    out.push(retraction);
    out
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn run(args: &[&Path]) -> (bool, String) {
    let out = match Command::new(python()).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "python3 is required by this test (set PYTHON to another interpreter): \
             could not run `{}`: {e}",
            python()
        ),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn python_verifier_accepts_engine_signatures_and_rejects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("verify_signature.py");
    std::fs::write(&script, PYTHON_VERIFIER).unwrap();
    // A key with bytes that are not UTF-8, read raw by the script.
    let key: Vec<u8> = (0u8..=255).rev().step_by(7).collect();
    let key_file = dir.path().join("signature.key");
    std::fs::write(&key_file, &key).unwrap();

    let mut files = Vec::new();
    for (i, mut v) in violations().into_iter().enumerate() {
        sign_in_place(&mut v, &key);
        let path = dir.path().join(format!("v{i}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        files.push(path);
    }

    let mut args: Vec<&Path> = vec![&script, &key_file];
    args.extend(files.iter().map(|p| p.as_path()));
    let (ok, text) = run(&args);
    assert!(ok, "verifier rejected engine signatures:\n{text}");
    assert_eq!(text.matches("ok  ").count(), files.len(), "{text}");

    // Wrong key.
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, b"not the key").unwrap();
    let (ok, text) = run(&[&script, &other_key, &files[0]]);
    assert!(!ok, "verifier accepted a wrong key:\n{text}");
    assert!(text.contains("BAD "), "{text}");

    // One character of the message changed.
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[1]).unwrap()).unwrap();
    let msg = value["message"]
        .as_str()
        .unwrap()
        .replace("Zürich", "Zurich");
    value["message"] = serde_json::Value::String(msg);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_string(&value).unwrap()).unwrap();
    let (ok, text) = run(&[&script, &key_file, &files[0], &tampered]);
    assert!(!ok, "verifier accepted a tampered violation:\n{text}");
    assert!(text.contains("ok  ") && text.contains("BAD "), "{text}");

    // A missing signature.
    value["signature"] = serde_json::Value::Null;
    std::fs::write(&tampered, serde_json::to_string(&value).unwrap()).unwrap();
    let (ok, _) = run(&[&script, &key_file, &tampered]);
    assert!(!ok);
}

#[test]
fn python_canonical_form_is_byte_identical_to_rfc8785() {
    // The documented `json.dumps` call, applied to each violation, must produce exactly the
    // bytes the engine signs.
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("canonical.py");
    std::fs::write(
        &probe,
        "import json, sys\n\
         body = {k: v for k, v in json.load(open(sys.argv[1], encoding='utf-8')).items() if k != 'signature'}\n\
         sys.stdout.buffer.write(json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8'))\n",
    )
    .unwrap();
    assert!(
        PYTHON_VERIFIER.contains(
            "json.dumps(body, sort_keys=True, separators=(\",\", \":\"), ensure_ascii=False)"
        ),
        "the probe must use the same call as the documented verifier"
    );
    for (i, v) in violations().into_iter().enumerate() {
        let path = dir.path().join(format!("v{i}.json"));
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let out = Command::new(python())
            .arg(&probe)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("python3 is required by this test: {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let engine = canonical_bytes(&v);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&engine),
            "violation {i}: Python and RFC 8785 canonical forms differ"
        );
        assert_eq!(out.stdout, engine);
    }
}
