//! Tokens → parser: sequences of valid tokens in any order must yield a tree or diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;

const TOKENS: &[&str] = &[
    "when",
    "always",
    "never",
    "and",
    "or",
    "not",
    "in",
    "where",
    "count",
    "true",
    "false",
    "null",
    "matches",
    "contains",
    "starts_with",
    "ends_with",
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

fuzz_target!(|picks: Vec<u8>| {
    let text: Vec<&str> = picks
        .iter()
        .map(|b| TOKENS[*b as usize % TOKENS.len()])
        .collect();
    let _ = betrace_dsl::parser::parse(&text.join(" "));
});
