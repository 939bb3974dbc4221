//! The compile side of the conformance corpora (`../shared/conformance/dsl.jsonl` and
//! `testing/conformance-extra.jsonl`), one generated test per case (libtest-mimic,
//! `harness = false`): `compile::<id>`, every error case reports its code and every other case
//! compiles; `format::<id>`, formatting a case that parses cleanly parses back to the same AST.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use betrace_dsl::{Symbols, check_source, parser};
use betrace_testing::conformance;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

fn compile_case(case: &Value) -> Result<(), String> {
    let rule = conformance::rule_text(case);
    let result = check_source(&rule, &mut Symbols::new());
    let render = |diags: &[betrace_dsl::Diagnostic]| -> Vec<String> {
        diags
            .iter()
            .map(|d| format!("{} {}", d.code, d.message))
            .collect()
    };
    match (case["expect"]["error"].as_str(), &result) {
        (Some(code), Ok(_)) => Err(format!("compiled, expected {code}")),
        (Some(code), Err(diags)) => {
            let found = diags.iter().any(|d| {
                let c = d.code.as_str();
                if code == "E2" {
                    c.starts_with("E2")
                } else {
                    c == code
                }
            });
            if found {
                Ok(())
            } else {
                Err(format!("expected {code}, got {:?}", render(diags)))
            }
        }
        (None, Err(diags)) => Err(format!("expected to compile, got {:?}", render(diags))),
        (None, Ok(_)) => Ok(()),
    }
}

fn format_case(case: &Value) -> Result<(), String> {
    let rule = conformance::rule_text(case);
    let (Some(ast), diags) = parser::parse(&rule) else {
        return Ok(());
    };
    if !diags.is_empty() {
        return Ok(());
    }
    let text = betrace_dsl::format::format_ast(&ast);
    let (again, d2) = parser::parse(&text);
    if again.as_ref() != Some(&ast) || !d2.is_empty() {
        return Err(format!("{rule:?} formatted as {text:?}"));
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for case in conformance::cases() {
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        let case = Arc::new(case);
        let c = Arc::clone(&case);
        trials.push(Trial::test(format!("compile::{id}"), move || {
            compile_case(&c).map_err(Failed::from)
        }));
        trials.push(Trial::test(format!("format::{id}"), move || {
            format_case(&case).map_err(Failed::from)
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
