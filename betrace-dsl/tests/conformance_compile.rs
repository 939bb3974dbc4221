//! The compile side of the conformance corpus (`../shared/conformance/dsl.jsonl`): every
//! error case reports its code, every other case compiles, and formatting round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use betrace_testing::conformance;

use betrace_dsl::{Symbols, check_source, parser};

#[test]
fn every_case_compiles_or_fails_with_its_code() {
    let mut failures = Vec::new();
    let cases = conformance::cases();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let rule = conformance::rule_text(case);
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
    for case in conformance::cases() {
        let id = case["id"].as_str().unwrap_or("?");
        let rule = conformance::rule_text(&case);
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
