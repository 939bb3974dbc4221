//! `betrace test --expression EXPR --spans FILE [--format json]` (SERVER.md §2): one
//! expression against the spans of one file taken as one trace.

use std::path::Path;

use betrace_core::Trace;
use betrace_core::engine::{EngineOptions, TestError, test_expression};
use betrace_dsl::render;
use serde_json::json;

use super::TestFormat;
use super::load::load_file;

/// Exit 0 whether or not the rule is violated; 2 for a rule that does not compile, an empty
/// or malformed spans file, or an evaluation error.
pub fn run(expression: &str, spans: &Path, format: TestFormat) -> u8 {
    let fail = |message: String, span: Option<usize>| -> u8 {
        match format {
            TestFormat::Json => {
                let mut err = json!({ "message": message });
                if let Some(i) = span {
                    err["span"] = json!(i);
                }
                outln!("{}", json!({ "error": err }));
            }
            TestFormat::Text => eprintln!("error: {message}"),
        }
        2
    };
    let loaded = match load_file(spans) {
        Ok(s) => s,
        Err(e) => return fail(e.message, e.span),
    };
    if loaded.is_empty() {
        return fail(
            format!("{}: the file holds no spans", spans.display()),
            None,
        );
    }
    let trace = Trace::new(loaded);
    match test_expression(expression, &trace, &EngineOptions::default()) {
        Ok(outcome) => {
            match format {
                TestFormat::Json => match serde_json::to_string(&outcome) {
                    Ok(s) => outln!("{s}"),
                    Err(e) => return fail(e.to_string(), None),
                },
                TestFormat::Text => {
                    if outcome.violated {
                        let clause = outcome
                            .failed_clause
                            .map(|c| c.as_str())
                            .unwrap_or("expression");
                        outln!("violation (failed clause: {clause})");
                        outln!("  trigger spans:   {}", list(&outcome.trigger_spans));
                        outln!("  offending spans: {}", list(&outcome.offending_spans));
                    } else {
                        outln!("no violation");
                    }
                }
            }
            0
        }
        Err(TestError::Compile(diags)) => {
            match format {
                TestFormat::Json => {
                    let d: Vec<_> = diags.iter().map(|d| d.to_json(expression)).collect();
                    outln!("{}", json!({ "error": { "diagnostics": d } }));
                }
                TestFormat::Text => eprint!("{}", render(&diags, "<expression>", expression)),
            }
            2
        }
        Err(TestError::Eval(e)) => fail(format!("evaluation failed: {e}"), None),
    }
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        "(none)".to_string()
    } else {
        ids.join(", ")
    }
}
