//! The conformance corpora (`../shared/conformance/dsl.jsonl` and
//! `testing/conformance-extra.jsonl`) through `betrace test --format json` run as a process:
//! one generated test per case (libtest-mimic, `harness = false`), named
//! `betrace-test::<id>`. A compile-error or malformed-span case must exit 2 with the code or
//! the span index in the JSON error; an evaluation case must exit 0 with exactly the expected
//! outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use betrace_testing::conformance;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};

/// Runs `betrace test` on one case, its spans written to a file in `dir`.
fn run_case(dir: &Path, case: &Value) -> Result<(), String> {
    let id = case["id"].as_str().unwrap_or("?");
    let spans = dir.join(format!("{id}.json"));
    std::fs::write(&spans, case["spans"].to_string())
        .map_err(|e| format!("cannot write {}: {e}", spans.display()))?;
    let out = Command::new(env!("CARGO_BIN_EXE_betrace"))
        .args(["test", "--format", "json", "--expression"])
        .arg(conformance::rule_text(case))
        .arg("--spans")
        .arg(&spans)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("betrace does not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!(
            "output is not JSON ({e}): {stdout:?} {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let code = out.status.code();
    let expect = &case["expect"];
    if let Some(err) = expect["error"].as_str() {
        let codes: Vec<&str> = got["error"]["diagnostics"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d["code"].as_str()).collect())
            .unwrap_or_default();
        let ok = codes.iter().any(|c| {
            if err == "E2" {
                c.starts_with("E2")
            } else {
                *c == err
            }
        });
        if code != Some(2) || !ok {
            return Err(format!("expected {err} and exit 2, got {code:?} {got}"));
        }
    } else if let Some(index) = expect["malformedSpan"].as_u64() {
        if code != Some(2)
            || got["error"]["span"].as_u64() != Some(index)
            || got["error"]["message"].as_str().is_none()
        {
            return Err(format!(
                "expected malformed span {index}, got {code:?} {got}"
            ));
        }
    } else {
        let want = json!({
            "violated": expect["violated"],
            "failedClause": expect["failedClause"],
            "triggerSpans": expect["triggerSpans"],
            "offendingSpans": expect["offendingSpans"],
        });
        if code != Some(0) || got != want {
            return Err(format!("expected {want}, got {code:?} {got}"));
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
    let trials = conformance::cases()
        .into_iter()
        .map(|case| {
            let dir = Arc::clone(&dir);
            let name = format!("betrace-test::{}", case["id"].as_str().unwrap_or("?"));
            Trial::test(name, move || {
                run_case(dir.path(), &case).map_err(Failed::from)
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    drop(dir);
    conclusion.exit();
}
