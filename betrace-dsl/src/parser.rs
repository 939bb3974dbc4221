//! Parser (DSL.md §2).
//!
//! In: rule text (or bytes). Out: a [`RuleAst`] and every lexical and syntax diagnostic found,
//! with error recovery inside clauses and parentheses so one rule can report several problems.
//! Limits are checked before parsing (E401 length, E402 nesting), so any input — however long,
//! deep or malformed — yields diagnostics, never a stack overflow.

use lalrpop_util::{ErrorRecovery, ParseError};

use crate::ast::{ClauseKind, Expr, ExprKind, RuleAst};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, TextRange};
use crate::lexer::{self, Spanned, Tok};

lalrpop_util::lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        missing_debug_implementations,
        unused
    )]
    grammar
);

/// Maximum rule text length in bytes (DSL.md §3.7, E401).
pub const MAX_RULE_BYTES: usize = 64 * 1024;

/// Maximum syntactic nesting depth (DSL.md §3.7 and §7.13, E402).
pub const MAX_DEPTH: usize = 64;

/// Errors raised from grammar actions.
#[derive(Clone, Debug, PartialEq)]
pub enum SyntaxError {
    /// `- 5`: a sign separated from its number.
    SpacedMinus(TextRange),
}

/// Joins `a or b` / `a and b` into flat chains.
pub(crate) fn chain(a: Expr, b: Expr, l: usize, r: usize, or: bool) -> Expr {
    match (a.kind, or) {
        (ExprKind::Or(mut v), true) => {
            v.push(b);
            Expr::new(ExprKind::Or(v), l, r)
        }
        (ExprKind::And(mut v), false) => {
            v.push(b);
            Expr::new(ExprKind::And(v), l, r)
        }
        (kind, _) => {
            let a = Expr {
                kind,
                range: a.range,
            };
            let v = vec![a, b];
            Expr::new(
                if or {
                    ExprKind::Or(v)
                } else {
                    ExprKind::And(v)
                },
                l,
                r,
            )
        }
    }
}

/// Parses rule text given as bytes: invalid UTF-8 is reported as E100 at the first bad byte.
pub fn parse_bytes(bytes: &[u8]) -> (Option<RuleAst>, Vec<Diagnostic>) {
    if bytes.len() > MAX_RULE_BYTES {
        return (None, vec![too_long(bytes.len())]);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => parse(s),
        Err(e) => {
            let at = e.valid_up_to();
            let len = e.error_len().unwrap_or(1);
            (
                None,
                vec![
                    Diagnostic::new(
                        Code::E100,
                        TextRange::new(at, at + len),
                        format!("the rule text is not valid UTF-8 at byte {at}"),
                    )
                    .with_help("rules are UTF-8 text"),
                ],
            )
        }
    }
}

fn too_long(len: usize) -> Diagnostic {
    Diagnostic::new(
        Code::E401,
        TextRange::new(0, 0),
        format!("the rule is {len} bytes long, more than the limit of {MAX_RULE_BYTES} bytes"),
    )
    .with_help("split it into several rules")
}

/// Parses rule text. Returns the tree when the text parsed (possibly with recovered errors,
/// in which case the diagnostics are not empty and the tree holds `Error` nodes) and every
/// diagnostic found.
pub fn parse(source: &str) -> (Option<RuleAst>, Vec<Diagnostic>) {
    if source.len() > MAX_RULE_BYTES {
        return (None, vec![too_long(source.len())]);
    }
    let (tokens, mut diags) = lexer::lex(source);
    if let Some(d) = check_depth(&tokens) {
        diags.push(d);
        return (None, diags);
    }
    if tokens.is_empty() {
        if diags.is_empty() {
            diags.push(
                Diagnostic::new(
                    Code::E206,
                    TextRange::new(0, 0),
                    "the rule is empty",
                )
                .with_help("write a block rule such as `when { payment } always { fraud_check }` or a predicate such as `span.status == error`"),
            );
        }
        return (None, diags);
    }
    let mut recovered: Vec<ErrorRecovery<usize, Tok<'_>, SyntaxError>> = Vec::new();
    let result = grammar::RuleParser::new().parse(
        &mut recovered,
        tokens.into_iter().map(Ok::<Spanned<'_>, SyntaxError>),
    );
    for r in recovered {
        diags.push(parse_error(r.error, source));
    }
    let ast = match result {
        Ok(ast) => Some(ast),
        Err(e) => {
            diags.push(parse_error(e, source));
            None
        }
    };
    if let Some(RuleAst::Block(clauses)) = &ast {
        check_clause_order(clauses, &mut diags);
    }
    diags.sort_by_key(|d| (d.range().start, d.code));
    diags.dedup();
    (ast, diags)
}

fn check_clause_order(clauses: &[crate::ast::Clause], diags: &mut Vec<Diagnostic>) {
    let mut seen: Vec<(ClauseKind, TextRange)> = Vec::new();
    for c in clauses {
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == c.kind) {
            diags.push(
                Diagnostic::new(
                    Code::E203,
                    c.keyword,
                    format!("`{}` appears twice", c.kind.as_str()),
                )
                .with_secondary(*first, "first written here")
                .with_help("join the conditions with `and` inside one clause"),
            );
        } else if c.kind == ClauseKind::When && !seen.is_empty() {
            diags.push(
                Diagnostic::new(
                    Code::E203,
                    c.keyword,
                    "`when` must come before `always` and `never`",
                )
                .with_help("move the `when` clause to the start of the rule"),
            );
        }
        seen.push((c.kind, c.keyword));
    }
}

fn parse_error(e: ParseError<usize, Tok<'_>, SyntaxError>, source: &str) -> Diagnostic {
    match e {
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => Diagnostic::new(
            Code::E201,
            TextRange::new(l, r),
            format!("unexpected {}", tok.describe()),
        )
        .with_help(expected_help(&expected)),
        ParseError::UnrecognizedEof { location, expected } => Diagnostic::new(
            Code::E202,
            TextRange::new(location.min(source.len()), source.len()),
            "the rule ends too early",
        )
        .with_help(expected_help(&expected)),
        ParseError::ExtraToken { token: (l, tok, r) } => Diagnostic::new(
            Code::E201,
            TextRange::new(l, r),
            format!("unexpected {} after the end of the rule", tok.describe()),
        ),
        ParseError::InvalidToken { location } => Diagnostic::new(
            Code::E100,
            TextRange::new(location, location + 1),
            "unexpected character",
        ),
        ParseError::User {
            error: SyntaxError::SpacedMinus(range),
        } => Diagnostic::new(Code::E204, range, "a `-` sign must touch its number")
            .with_help("write `-5`, not `- 5`"),
    }
}

fn expected_help(expected: &[String]) -> String {
    let mut names: Vec<String> = expected
        .iter()
        .map(|e| match e.as_str() {
            "\"ident\"" => "a name".to_string(),
            "\"string\"" => "a string".to_string(),
            "\"raw\"" => "a raw string".to_string(),
            "\"int\"" | "\"float\"" => "a number".to_string(),
            "\"duration\"" => "a duration".to_string(),
            other => format!("`{}`", other.trim_matches('"')),
        })
        .collect();
    names.dedup();
    match names.len() {
        0 => "check the rule against the grammar in the language reference".to_string(),
        1..=8 => format!("expected {}", names.join(", ")),
        _ => "expected an expression".to_string(),
    }
}

/// The syntactic nesting depth check of DSL.md §7.13, on tokens: brackets, clause braces,
/// argument lists and lists each add a level, and so does every prefix `not`/`!`/`#` until
/// the end of its operand (approximated by the next `and`, `or`, `,` at the same level, and for
/// `#` also the next comparison). A flat `and`/`or` chain adds nothing.
fn check_depth(tokens: &[Spanned<'_>]) -> Option<Diagnostic> {
    struct Frame {
        nots: usize,
        hashes: usize,
    }
    let mut frames = vec![Frame { nots: 0, hashes: 0 }];
    let mut depth = 0usize;
    let mut prev_is_operand = false;
    for (l, tok, r) in tokens {
        let mut grew = false;
        match tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                frames.push(Frame { nots: 0, hashes: 0 });
                depth += 1;
                grew = true;
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                if frames.len() > 1
                    && let Some(f) = frames.pop()
                {
                    depth -= 1 + f.nots + f.hashes;
                }
            }
            Tok::Not if !prev_is_operand => {
                if let Some(f) = frames.last_mut() {
                    f.nots += 1;
                    depth += 1;
                    grew = true;
                }
            }
            Tok::Hash => {
                if let Some(f) = frames.last_mut() {
                    f.hashes += 1;
                    depth += 1;
                    grew = true;
                }
            }
            Tok::And | Tok::Or | Tok::Comma => {
                if let Some(f) = frames.last_mut() {
                    depth -= f.nots + f.hashes;
                    f.nots = 0;
                    f.hashes = 0;
                }
            }
            Tok::EqEq
            | Tok::Ne
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::In
            | Tok::Matches
            | Tok::Contains
            | Tok::StartsWith
            | Tok::EndsWith
            | Tok::Tilde
            | Tok::NotTilde => {
                if let Some(f) = frames.last_mut() {
                    depth -= f.hashes;
                    f.hashes = 0;
                }
            }
            _ => {}
        }
        if grew && depth > MAX_DEPTH {
            return Some(
                Diagnostic::new(
                    Code::E402,
                    TextRange::new(*l, *r),
                    format!("the rule nests deeper than {MAX_DEPTH} levels"),
                )
                .with_help("split the condition into several rules or flatten it with `and`/`or`"),
            );
        }
        prev_is_operand = matches!(
            tok,
            Tok::Ident(_)
                | Tok::Str(_)
                | Tok::Raw(_)
                | Tok::Int(_)
                | Tok::Float(_)
                | Tok::Duration(_)
                | Tok::True
                | Tok::False
                | Tok::Null
                | Tok::RParen
                | Tok::RBracket
                | Tok::Star
        );
    }
    None
}
