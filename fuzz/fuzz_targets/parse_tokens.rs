//! Tokens → parser: sequences of valid tokens in any order must yield a tree or diagnostics.
#![no_main]

use std::sync::OnceLock;

use betrace_dsl::lexer::RESERVED;
use libfuzzer_sys::fuzz_target;

/// Every reserved word, plus operators, punctuation and typical names and literals.
fn tokens() -> &'static [&'static str] {
    static TOKENS: OnceLock<Vec<&'static str>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        const OTHER: &[&str] = &[
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            ",",
            ".",
            ":",
            "*",
            "-",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "=~",
            "!~",
            "&&",
            "||",
            "!",
            "#",
            "payment",
            "db.query",
            "span",
            "trace",
            "resource",
            "attributes",
            "has_child",
            "within",
            "exists",
            "lower",
            "len",
            "1",
            "2.5",
            "250ms",
            "\"x\"",
            "`^a`",
            "USD",
        ];
        RESERVED.iter().chain(OTHER).copied().collect()
    })
}

fuzz_target!(|picks: Vec<u8>| {
    let tokens = tokens();
    let text: Vec<&str> = picks
        .iter()
        .map(|b| tokens[*b as usize % tokens.len()])
        .collect();
    let _ = betrace_dsl::parser::parse(&text.join(" "));
});
