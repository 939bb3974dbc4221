//! Spans produced by the real OpenTelemetry SDKs (Python `opentelemetry-sdk`, JS
//! `@opentelemetry/sdk-trace-base`), exported by their real OTLP/HTTP exporters as protobuf and
//! OTLP/JSON, decode to exactly the spans the SDKs recorded (their in-memory exporters'
//! manifests), and the same scenario recorded by both SDKs violates the same example rules.
//!
//! The fixtures are generated at test time by `tools/otel-fixtures/generate.sh`, which installs
//! the pinned SDKs first (`.ci/setup-deps.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::rules::load_rules_file;
use betrace_core::{AttrValue, Span, Trace, decode_otlp_json, decode_otlp_protobuf};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn generate() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fixtures");
    let status = Command::new("bash")
        .arg(root().join("tools/otel-fixtures/generate.sh"))
        .arg(&out)
        .current_dir(root())
        .output()
        .expect("bash runs");
    assert!(
        status.status.success(),
        "tools/otel-fixtures/generate.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    (dir, out)
}

fn typed(v: &Value) -> AttrValue {
    let value = &v["value"];
    match v["type"].as_str().unwrap() {
        "string" => AttrValue::Str(value.as_str().unwrap().into()),
        "int" => AttrValue::Int(value.as_i64().unwrap()),
        "double" => AttrValue::Float(value.as_f64().unwrap()),
        "bool" => AttrValue::Bool(value.as_bool().unwrap()),
        "array" => AttrValue::Array(value.as_array().unwrap().iter().map(typed).collect()),
        other => panic!("unknown manifest type {other}"),
    }
}

fn attrs(map: &Value) -> BTreeMap<String, AttrValue> {
    map.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), typed(v)))
        .collect()
}

fn decode(path: &Path) -> Vec<Span> {
    let bytes = std::fs::read(path).unwrap();
    let decoded = if path.extension().unwrap() == "pb" {
        decode_otlp_protobuf(&bytes).unwrap()
    } else {
        let decoded = decode_otlp_json(&bytes).unwrap();
        // The typed fast path and the `serde_json::Value` decoder agree on real exporter bodies.
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let reference = betrace_core::decode_otlp_json_value(&value).unwrap();
        assert_eq!(
            format!("{decoded:?}"),
            format!("{reference:?}"),
            "{}",
            path.display()
        );
        decoded
    };
    assert!(
        decoded.rejected.is_empty(),
        "{}: {:?}",
        path.display(),
        decoded.rejected
    );
    decoded.spans
}

fn check_manifest(dir: &Path, manifest: &Value) -> usize {
    let resources: BTreeMap<String, BTreeMap<String, AttrValue>> = manifest["resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), attrs(v)))
        .collect();
    let mut files = 0;
    for scenario in manifest["scenarios"].as_array().unwrap() {
        let name = scenario["name"].as_str().unwrap();
        for file in scenario["files"].as_array().unwrap() {
            files += 1;
            let path = dir.join(file["path"].as_str().unwrap());
            let spans = decode(&path);
            let what = format!("{} ({name})", path.display());
            assert_eq!(
                spans.len() as u64,
                scenario["span_count"].as_u64().unwrap(),
                "{what}"
            );
            let by_id: BTreeMap<String, &Span> =
                spans.iter().map(|s| (s.span_id.to_hex(), s)).collect();
            for m in scenario["spans"].as_array().unwrap() {
                let id = m["span_id"].as_str().unwrap();
                let s = by_id
                    .get(id)
                    .unwrap_or_else(|| panic!("{what}: span {id} missing"));
                assert_eq!(
                    s.trace_id.to_hex(),
                    m["trace_id"].as_str().unwrap(),
                    "{what} {id}"
                );
                assert_eq!(
                    s.parent_span_id.map(|p| p.to_hex()),
                    m["parent_span_id"].as_str().map(str::to_string),
                    "{what} {id}"
                );
                assert_eq!(s.name, m["name"].as_str().unwrap(), "{what} {id}");
                assert_eq!(s.kind.as_str(), m["kind"].as_str().unwrap(), "{what} {id}");
                assert_eq!(
                    s.status_code.as_str(),
                    m["status"].as_str().unwrap(),
                    "{what} {id}"
                );
                assert_eq!(
                    s.status_message,
                    m["status_message"].as_str().unwrap_or(""),
                    "{what} {id}"
                );
                assert_eq!(
                    s.start_time_unix_nano,
                    m["start_time_unix_nano"].as_u64().unwrap(),
                    "{what} {id}"
                );
                assert_eq!(
                    s.end_time_unix_nano,
                    m["end_time_unix_nano"].as_u64().unwrap(),
                    "{what} {id}"
                );
                assert_eq!(
                    s.service(),
                    m["service_name"].as_str().unwrap(),
                    "{what} {id}"
                );
                assert_eq!(
                    &*s.scope_name,
                    m["scope"]["name"].as_str().unwrap(),
                    "{what} {id}"
                );
                let got: BTreeMap<String, AttrValue> = s
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                assert_eq!(got, attrs(&m["attributes"]), "{what} {id}: attributes");
                let res: BTreeMap<String, AttrValue> = s
                    .resource
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                assert_eq!(
                    &res,
                    &resources[m["service_name"].as_str().unwrap()],
                    "{what} {id}: resource"
                );
            }
        }
    }
    files
}

#[test]
fn sdk_exports_decode_exactly_and_both_sdks_violate_the_same_rules() {
    let (_keep, dir) = generate();
    let python: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("python-manifest.json")).unwrap())
            .unwrap();
    let node: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("node-manifest.json")).unwrap())
            .unwrap();
    let files = check_manifest(&dir, &python) + check_manifest(&dir, &node);
    assert!(
        files >= 30,
        "expected protobuf and JSON bodies for every scenario, got {files} files"
    );

    let rules = RuleSet::compile(
        load_rules_file(root().join("examples/rules.yaml")).unwrap(),
        EngineOptions::default(),
    )
    .unwrap();
    let fired = |path: PathBuf| -> BTreeSet<String> {
        let trace = Trace::new(decode(&path));
        let eval = rules.evaluate(&trace, TraceContext::direct());
        assert!(eval.errors.is_empty(), "{:?}", eval.errors);
        eval.violations.into_iter().map(|v| v.rule_id).collect()
    };
    let mut any = 0;
    for scenario in python["scenarios"].as_array().unwrap() {
        let name = scenario["name"].as_str().unwrap();
        let py = fired(dir.join(format!("python-{name}.pb")));
        let js_pb = fired(dir.join(format!("node-{name}.pb")));
        let js_json = fired(dir.join(format!("node-{name}.json")));
        assert_eq!(py, js_pb, "{name}: Python protobuf vs JS protobuf");
        assert_eq!(js_pb, js_json, "{name}: JS protobuf vs JS OTLP/JSON");
        any += py.len();
    }
    assert!(any > 10, "the scenarios should violate rules");
}
