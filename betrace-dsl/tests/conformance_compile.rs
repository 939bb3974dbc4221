//! The compile side of the conformance corpus (`../shared/conformance/dsl.jsonl`): every
//! error case reports its code, every other case compiles, and formatting round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use betrace_dsl::{Symbols, check_source, parser};
use serde_json::Value;

fn corpus() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/dsl.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the conformance corpus is missing at {} ({e}); it lives in shared/conformance beside the repository",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("corpus line is JSON"))
        .collect()
}

pub fn rule_text(case: &Value) -> String {
    if let Some(r) = case["rule"].as_str() {
        return r.to_string();
    }
    let g = &case["generate"];
    let times = g["times"].as_u64().expect("times") as usize;
    format!(
        "{}{}{}",
        g["prefix"].as_str().unwrap_or(""),
        g["repeat"].as_str().unwrap_or("").repeat(times),
        g["suffix"].as_str().unwrap_or("")
    )
}

#[test]
fn every_case_compiles_or_fails_with_its_code() {
    let mut failures = Vec::new();
    let cases = corpus();
    assert!(cases.len() > 200, "corpus looks truncated");
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let rule = rule_text(case);
        let result = check_source(&rule, &mut Symbols::new());
        match case["expect"]["error"].as_str() {
            Some(code) => match &result {
                Ok(_) => failures.push(format!("{id}: compiled, expected {code}")),
                Err(diags) => {
                    let found = diags.iter().any(|d| {
                        let c = d.code.as_str();
                        if code == "E2" {
                            c.starts_with("E2")
                        } else {
                            c == code
                        }
                    });
                    if !found {
                        let got: Vec<_> = diags
                            .iter()
                            .map(|d| format!("{} {}", d.code, d.message))
                            .collect();
                        failures.push(format!("{id}: expected {code}, got {got:?}"));
                    }
                }
            },
            None => {
                if let Err(diags) = &result {
                    let got: Vec<_> = diags
                        .iter()
                        .map(|d| format!("{} {}", d.code, d.message))
                        .collect();
                    failures.push(format!("{id}: expected to compile, got {got:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn formatting_round_trips_on_the_corpus() {
    let mut failures = Vec::new();
    for case in corpus() {
        let id = case["id"].as_str().unwrap_or("?");
        let rule = rule_text(&case);
        let (Some(ast), diags) = parser::parse(&rule) else {
            continue;
        };
        if !diags.is_empty() {
            continue;
        }
        let text = betrace_dsl::format::format_ast(&ast);
        let (again, d2) = parser::parse(&text);
        if again.as_ref() != Some(&ast) || !d2.is_empty() {
            failures.push(format!("{id}: {rule:?} formatted as {text:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
