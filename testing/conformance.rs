//! The DSL conformance corpus (`../shared/conformance/dsl.jsonl`, format in its README), read
//! at test time. One loader for the test suites of every crate, included with
//! `#[path = "../../testing/conformance.rs"] mod conformance;`. `BETRACE_CONFORMANCE` names
//! another copy of the file.
#![allow(dead_code, clippy::panic)]

use serde_json::Value;

/// Where the corpus is read from.
pub fn path() -> String {
    std::env::var("BETRACE_CONFORMANCE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/dsl.jsonl"
        )
        .to_owned()
    })
}

/// Every case, in file order. Panics with instructions when the corpus is missing: CI checks
/// it out beside the repository, and a silent skip would hide the whole suite.
pub fn cases() -> Vec<Value> {
    let path = path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the DSL conformance corpus is missing at {path} ({e}).\n\
             It lives in the shared specification tree beside the repository \
             (shared/conformance/dsl.jsonl); check it out next to the repository root, as CI \
             does, or set BETRACE_CONFORMANCE to its path."
        )
    });
    let cases: Vec<Value> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)))
        .collect();
    assert!(cases.len() > 200, "{path}: the corpus looks truncated");
    cases
}

/// The rule text of a case: `rule`, or `generate` expanded (`prefix + repeat × times + suffix`).
pub fn rule_text(case: &Value) -> String {
    if let Some(r) = case["rule"].as_str() {
        return r.to_owned();
    }
    let g = &case["generate"];
    format!(
        "{}{}{}",
        g["prefix"].as_str().unwrap_or(""),
        g["repeat"]
            .as_str()
            .unwrap_or("")
            .repeat(g["times"].as_u64().unwrap_or(0) as usize),
        g["suffix"].as_str().unwrap_or("")
    )
}
