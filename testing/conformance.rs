//! The DSL conformance corpora, read at test time. One loader for the test suites of every
//! crate, included with `#[path = "../../testing/conformance.rs"] mod conformance;`.
//!
//! Two files of the same format (one JSON object per line, described in
//! `../shared/conformance/README.md`):
//! - the shared corpus `../shared/conformance/dsl.jsonl` (read-only here; `BETRACE_CONFORMANCE`
//!   names another copy), which follows DSL.md;
//! - the project corpus `testing/conformance-extra.jsonl` (`BETRACE_CONFORMANCE_EXTRA` names
//!   another copy): cases this repository adds for behaviour DSL.md settles but the shared
//!   corpus does not cover, each found on a real deployment or while reading the spec
//!   (`testing/README.md`).
//!
//! [`cases`] returns both, shared cases first; ids are unique across the two files.
#![allow(dead_code, clippy::panic)]

use serde_json::Value;

/// Where the shared corpus is read from.
pub fn path() -> String {
    std::env::var("BETRACE_CONFORMANCE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/dsl.jsonl"
        )
        .to_owned()
    })
}

/// Where the project corpus is read from.
pub fn extra_path() -> String {
    std::env::var("BETRACE_CONFORMANCE_EXTRA").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testing/conformance-extra.jsonl"
        )
        .to_owned()
    })
}

/// Every case of both corpora: the shared one in file order, then the project one. Panics
/// with instructions when the shared corpus is missing: CI checks it out beside the
/// repository, and a silent skip would hide the whole suite.
pub fn cases() -> Vec<Value> {
    let mut all = shared_cases();
    all.extend(extra_cases());
    let mut seen = std::collections::BTreeSet::new();
    for case in &all {
        let id = case["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a case without an id: {case}"));
        assert!(seen.insert(id.to_owned()), "case id `{id}` appears twice");
    }
    all
}

/// The cases of the shared corpus, in file order.
pub fn shared_cases() -> Vec<Value> {
    let path = path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the DSL conformance corpus is missing at {path} ({e}).\n\
             It lives in the shared specification tree beside the repository \
             (shared/conformance/dsl.jsonl); check it out next to the repository root, as CI \
             does, or set BETRACE_CONFORMANCE to its path."
        )
    });
    let cases = parse(&path, &text);
    assert!(cases.len() > 200, "{path}: the corpus looks truncated");
    cases
}

/// The cases of the project corpus, in file order.
pub fn extra_cases() -> Vec<Value> {
    let path = extra_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the project conformance corpus is missing at {path} ({e})"));
    let cases = parse(&path, &text);
    assert!(!cases.is_empty(), "{path}: no cases");
    cases
}

/// One case per non-empty line.
fn parse(path: &str, text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)))
        .collect()
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
