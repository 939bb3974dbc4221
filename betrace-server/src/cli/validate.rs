//! `betrace validate FILE|-` (SERVER.md §2).

use std::io::Read;

use betrace_core::rules::load_rules_file;
use betrace_dsl::{render, validate};

/// Exit 0 when every rule compiles, 1 when any does not, 2 when the input cannot be read.
pub fn run(file: &str) -> u8 {
    if file == "-" {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("error: cannot read standard input: {e}");
            return 2;
        }
        let diags = validate(&text);
        if diags.is_empty() {
            outln!("ok: the expression compiles");
            return 0;
        }
        eprint!("{}", render(&diags, "<stdin>", &text));
        return 1;
    }
    let rules = match load_rules_file(file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut failed = 0;
    for rule in &rules {
        let diags = validate(&rule.expression);
        if !diags.is_empty() {
            failed += 1;
            eprint!(
                "{}",
                render(
                    &diags,
                    &format!("{file} (rule `{}`)", rule.id),
                    &rule.expression
                )
            );
        }
    }
    if failed == 0 {
        outln!("ok: {} rules compile", rules.len());
        0
    } else {
        eprintln!("{failed} of {} rules have errors", rules.len());
        1
    }
}
