//! `betrace check` and `betrace test` run as processes on trace files as they come from real
//! deployments: protobuf without a `.pb` name, gzip, pretty-printed documents back to back,
//! pre-1.0 OTLP/JSON, other formats (named, not misreported), fragments without a root; and
//! a standard output that the reader has closed (`betrace check … | head -1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Write as _;
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `betrace check --format json` of the example rules on `files`: the rule ids that fired.
fn check(files: &[&Path]) -> (Output, BTreeSet<String>) {
    let out = run(betrace()
        .args(["check", "--format", "json", "--rules"])
        .arg(root().join("examples/rules.yaml"))
        .args(files));
    let ids = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("one violation per line");
            v["ruleId"].as_str().unwrap().to_owned()
        })
        .collect();
    (out, ids)
}

/// The rule ids `examples/expected-violations.json` lists for the example `file`.
fn expected(file: &str) -> BTreeSet<String> {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/expected-violations.json")).unwrap(),
    )
    .unwrap();
    all[file]
        .as_array()
        .unwrap_or_else(|| panic!("{file} is not in expected-violations.json"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn protobuf_and_gzip_are_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let pb = std::fs::read(root().join("examples/traces/failed-payment.pb")).unwrap();
    let json = std::fs::read(root().join("examples/traces/failed-payment.json")).unwrap();
    let want = expected("traces/failed-payment.pb");
    assert_eq!(want, expected("traces/failed-payment.json"));
    let cases = [
        ("export.bin", pb.clone()),
        ("export", pb.clone()),
        ("export.pb.gz", gzip(&pb)),
        ("export.json.gz", gzip(&json)),
        ("export.gz", gzip(&json)),
        // Two gzip members, as `cat a.gz b.gz` gives.
        ("twice.json.gz", [gzip(&json), gzip(b"\n")].concat()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (out, ids) = check(&[&path]);
        assert_eq!(ids, want, "{name}: {}", stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(!stderr(&out).contains("UTF-8"), "{name}: {}", stderr(&out));
    }
    // A directory holds `.gz` files too.
    let (out, ids) = check(&[dir.path()]);
    assert_eq!(ids, want, "{}", stderr(&out));
    // Corrupt gzip and binary junk are named as such.
    let bad = dir.path().join("bad.json.gz");
    std::fs::write(&bad, &gzip(&json)[..40]).unwrap();
    let (out, _) = check(&[&bad]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("corrupt gzip data"),
        "{}",
        stderr(&out)
    );
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0xffu8, 0xfe, 0x00, 0x81, 0x92]).unwrap();
    let (out, _) = check(&[&junk]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither OTLP/JSON nor simple-JSON text nor OTLP protobuf"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pretty_printed_documents_back_to_back_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "failed-payment.json",
        "slow-db-query.json",
        "server-error.json",
    ];
    let mut text = String::new();
    let mut want = BTreeSet::new();
    for n in names {
        let v: Value =
            serde_json::from_slice(&std::fs::read(root().join("examples/traces").join(n)).unwrap())
                .unwrap();
        text.push_str(&serde_json::to_string_pretty(&v).unwrap());
        text.push('\n');
        want.extend(expected(&format!("traces/{n}")));
    }
    let path = dir.path().join("three.json");
    std::fs::write(&path, &text).unwrap();
    let (out, ids) = check(&[&path]);
    assert_eq!(ids, want, "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // Without white space between them too, and a bad span is named by the line of its
    // document.
    let glued = text.replace("}\n{", "}{");
    std::fs::write(&path, &glued).unwrap();
    let (_, ids) = check(&[&path]);
    assert_eq!(ids, want);
    let second_line = glued
        .find("}{")
        .map(|i| glued[..=i].lines().count())
        .unwrap();
    let broken = format!(
        "{}{}",
        &glued[..glued.find("}{").unwrap() + 1],
        "{\"spans\": [{\"traceId\": \"t\", \"spanId\": \"s\", \"startTime\": \"soon\"}]}"
    );
    std::fs::write(&path, &broken).unwrap();
    let (out, _) = check(&[&path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "three.json:{second_line}: span 0: field `startTime`"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pre_1_0_otlp_json_is_read() {
    let file = root().join("testing/inputs/otlp-json-pre-1.0.json");
    let out = run(betrace()
        .args(["test", "--format", "json", "--expression"])
        .arg("never { payment.where(span.status == error) }")
        .arg("--spans")
        .arg(&file));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["violated"], true);
    assert_eq!(v["offendingSpans"], json!(["eee19b7ec3c1b175"]));
}

#[test]
fn other_formats_are_named_not_misread() {
    for (file, says) in [
        (
            "jaeger-ui.json",
            "Jaeger JSON (`data[].spans`) is not supported; send OTLP",
        ),
        ("zipkin-v2.json", "Zipkin JSON v2 spans"),
        ("jaeger-api-v3.json", "wrapped in `{\"result\": …}`"),
    ] {
        let path = root().join("testing/inputs").join(file);
        let (out, _) = check(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        assert!(stderr(&out).contains(says), "{file}: {}", stderr(&out));
        assert!(!stderr(&out).contains("`traceId`: missing"), "{file}");
        let out = run(betrace()
            .args([
                "test",
                "--format",
                "json",
                "--expression",
                "span.name == \"x\"",
                "--spans",
            ])
            .arg(&path));
        assert_eq!(out.status.code(), Some(2), "{file}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{v}"
        );
        assert!(v["error"].get("span").is_none(), "{v}");
    }
}

#[test]
fn a_file_without_spans_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"resourceSpans": []}"#).unwrap();
    let (out, ids) = check(&[&empty]);
    assert!(ids.is_empty());
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("empty.json: the file holds no spans"),
        "{}",
        stderr(&out)
    );
}

/// A trace fragment whose spans all have parents outside it has no root, so
/// `trace.root_name` and `trace.root_service` are `""` (DSL.md §3.4, §7.15): `check` (through
/// the rule index) fires as `betrace test` does.
#[test]
fn root_name_empty_fires_through_check() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - id: rootless\n    expression: 'never { trace.root_name == \"\" }'\n  \
         - id: no-root-service\n    expression: 'trace.root_service == \"\"'\n  \
         - id: named-root\n    expression: 'never { trace.root_name == \"checkout\" }'\n",
    )
    .unwrap();
    let fragment = dir.path().join("fragment.json");
    let span = |id: &str, parent: &str, name: &str| {
        json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": id, "parentSpanId": parent,
               "name": name, "serviceName": "payment", "startTime": 1_000, "endTime": 2_000})
    };
    std::fs::write(
        &fragment,
        json!([
            span("00000000000000a2", "00000000000000a1", "payment"),
            span("00000000000000a3", "00000000000000a2", "db")
        ])
        .to_string(),
    )
    .unwrap();
    let out = run(betrace()
        .args(["check", "--format", "json", "--rules"])
        .arg(&rules)
        .arg(&fragment));
    let ids: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["ruleId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["rootless".to_owned(), "no-root-service".to_owned()]),
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(1));
}

/// Runs `cmd` with a standard output whose reading end is closed before the command writes,
/// as `betrace check … | head -0` does: the command must neither panic nor report an error,
/// and exits with its usual code.
fn closed_stdout(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("betrace runs");
    drop(child.stdout.take());
    child.wait_with_output().expect("betrace exits")
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let rules = root().join("examples/rules.yaml");
    let traces = root().join("examples/traces");
    for format in ["text", "json", "junit"] {
        let out = closed_stdout(
            betrace()
                .args(["check", "--format", format, "--rules"])
                .arg(&rules)
                .arg(&traces),
        );
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{format}: {err}"
        );
        assert!(err.is_empty(), "{format}: {err}");
        // Violations were found: the exit code says so, output or not.
        assert_eq!(out.status.code(), Some(1), "{format}: {err}");
    }
    for format in ["text", "json"] {
        let out = closed_stdout(
            betrace()
                .args([
                    "test",
                    "--format",
                    format,
                    "--expression",
                    "span.name == \"payment\"",
                    "--spans",
                ])
                .arg(traces.join("failed-payment.json")),
        );
        let err = stderr(&out);
        assert!(err.is_empty(), "{format}: {err}");
        assert_eq!(out.status.code(), Some(0), "{format}");
    }
    let out = closed_stdout(betrace().args(["validate"]).arg(&rules));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
}
