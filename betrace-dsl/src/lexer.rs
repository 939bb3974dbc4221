//! Lexer (DSL.md §1).
//!
//! In: rule text. Out: `(start, Tok, end)` triples for the parser plus lexical diagnostics
//! (E100–E105). Scanning never stops at an error: a bad escape still yields its string, a lone
//! `=` yields `==`, an unexpected character is skipped, so the parser can report further
//! problems of the same rule.

use logos::Logos;

use crate::codes::Code;
use crate::diagnostic::{Diagnostic, TextRange};

/// Scanner states recognised by logos; values are decoded in [`lex`].
#[derive(Logos, Debug, Clone, Copy, PartialEq, Eq)]
#[logos(skip r"\s+")]
#[logos(skip(r"(//|--)[^\n]*", allow_greedy = true))]
enum Raw {
    #[token("/*", block_comment)]
    BlockComment,
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", ident_tail)]
    Ident,
    #[regex(r"[0-9]+", number_tail)]
    Number,
    #[token("\"", string_tail)]
    #[token("'", string_tail)]
    Str,
    #[token("`", raw_tail)]
    Backtick,
    #[token("==")]
    EqEq,
    #[token("=")]
    Assign,
    #[token("!=")]
    Ne,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("=~")]
    Tilde,
    #[token("!~")]
    NotTilde,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,
    #[token("#")]
    Hash,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(".")]
    Dot,
    #[token(":")]
    Colon,
    #[token("*")]
    Star,
    #[token("-")]
    Minus,
}

fn block_comment(lex: &mut logos::Lexer<Raw>) {
    match lex.remainder().find("*/") {
        Some(i) => lex.bump(i + 2),
        None => lex.bump(lex.remainder().len()),
    }
}

/// Identifiers may hold hyphens inside but not at the end (`fraud-check-service`).
fn ident_tail(lex: &mut logos::Lexer<Raw>) {
    let rest = lex.remainder().as_bytes();
    let mut n = 0;
    while n < rest.len() && (rest[n].is_ascii_alphanumeric() || rest[n] == b'_' || rest[n] == b'-')
    {
        n += 1;
    }
    while n > 0 && rest[n - 1] == b'-' {
        n -= 1;
    }
    lex.bump(n);
}

/// Digits, an optional fraction and exponent, then any suffix of letters, digits and `_` (a
/// duration unit, or junk reported as E105).
fn number_tail(lex: &mut logos::Lexer<Raw>) {
    let rest = lex.remainder();
    let b = rest.as_bytes();
    let mut n = 0;
    if b.len() > 1 && b[0] == b'.' && b[1].is_ascii_digit() {
        n = 1;
        while n < b.len() && b[n].is_ascii_digit() {
            n += 1;
        }
    }
    if n < b.len() && (b[n] == b'e' || b[n] == b'E') {
        let mut m = n + 1;
        if m < b.len() && (b[m] == b'+' || b[m] == b'-') {
            m += 1;
        }
        if m < b.len() && b[m].is_ascii_digit() {
            while m < b.len() && b[m].is_ascii_digit() {
                m += 1;
            }
            n = m;
        }
    }
    // Any letters after the number are its suffix: a unit, or E105 (`5min`, `7Μs`).
    let suffix = &rest[n..];
    let mut m = 0;
    for c in suffix.chars() {
        if c.is_alphanumeric() || c == '_' {
            m += c.len_utf8();
        } else {
            break;
        }
    }
    lex.bump(n + m);
}

fn string_tail(lex: &mut logos::Lexer<Raw>) {
    let quote = lex.slice().as_bytes()[0];
    let rest = lex.remainder().as_bytes();
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\\' => i += 2,
            c if c == quote => {
                lex.bump(i + 1);
                return;
            }
            _ => i += 1,
        }
    }
    lex.bump(rest.len());
}

fn raw_tail(lex: &mut logos::Lexer<Raw>) {
    match lex.remainder().find('`') {
        Some(i) => lex.bump(i + 1),
        None => lex.bump(lex.remainder().len()),
    }
}

/// A token as the parser sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok<'a> {
    When,
    Always,
    Never,
    And,
    Or,
    Not,
    In,
    Where,
    Count,
    True,
    False,
    Null,
    Matches,
    Contains,
    StartsWith,
    EndsWith,
    Ident(&'a str),
    /// A quoted string, escapes decoded.
    Str(String),
    /// A backtick raw string, without the backticks.
    Raw(&'a str),
    /// Magnitude of an integer literal; at most 2^63 (the sign comes from the parser).
    Int(u64),
    /// A finite float literal.
    Float(f64),
    /// Magnitude of a duration literal in nanoseconds; at most 2^63.
    Duration(u64),
    EqEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Tilde,
    NotTilde,
    Hash,
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Colon,
    Star,
    Minus,
}

impl Tok<'_> {
    /// How the token is written, for "unexpected token" messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Raw(_) => "a raw string".into(),
            Tok::Int(_) | Tok::Float(_) => "a number".into(),
            Tok::Duration(_) => "a duration".into(),
            other => format!("`{}`", other.text()),
        }
    }

    fn text(&self) -> &'static str {
        match self {
            Tok::When => "when",
            Tok::Always => "always",
            Tok::Never => "never",
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::In => "in",
            Tok::Where => "where",
            Tok::Count => "count",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::Matches => "matches",
            Tok::Contains => "contains",
            Tok::StartsWith => "starts_with",
            Tok::EndsWith => "ends_with",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Tilde => "=~",
            Tok::NotTilde => "!~",
            Tok::Hash => "#",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Colon => ":",
            Tok::Star => "*",
            Tok::Minus => "-",
            Tok::Ident(_)
            | Tok::Str(_)
            | Tok::Raw(_)
            | Tok::Int(_)
            | Tok::Float(_)
            | Tok::Duration(_) => "",
        }
    }
}

/// The reserved words of DSL.md §1, lower case only.
pub const RESERVED: &[&str] = &[
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
];

fn keyword(s: &str) -> Option<Tok<'static>> {
    Some(match s {
        "when" => Tok::When,
        "always" => Tok::Always,
        "never" => Tok::Never,
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "in" => Tok::In,
        "where" => Tok::Where,
        "count" => Tok::Count,
        "true" => Tok::True,
        "false" => Tok::False,
        "null" => Tok::Null,
        "matches" => Tok::Matches,
        "contains" => Tok::Contains,
        "starts_with" => Tok::StartsWith,
        "ends_with" => Tok::EndsWith,
        _ => return None,
    })
}

/// A token with its byte range.
pub type Spanned<'a> = (usize, Tok<'a>, usize);

/// Scans `source` completely: every token, and every lexical diagnostic.
pub fn lex(source: &str) -> (Vec<Spanned<'_>>, Vec<Diagnostic>) {
    let mut tokens = Vec::new();
    let mut diags = Vec::new();
    let mut lexer = Raw::lexer(source);
    while let Some(item) = lexer.next() {
        let r = lexer.span();
        let range = TextRange::new(r.start, r.end);
        let slice = lexer.slice();
        let raw = match item {
            Ok(raw) => raw,
            Err(()) => {
                let ch = slice.chars().next().unwrap_or('?');
                diags.push(
                    Diagnostic::new(
                        Code::E100,
                        range,
                        format!("unexpected character `{}`", ch.escape_debug()),
                    )
                    .with_label_message("not part of the rule language"),
                );
                continue;
            }
        };
        let tok = match raw {
            Raw::BlockComment => {
                if slice.len() < 4 || !slice.ends_with("*/") {
                    diags.push(
                        Diagnostic::new(
                            Code::E104,
                            TextRange::new(r.start, r.start + 2),
                            "unterminated block comment",
                        )
                        .with_help("close the comment with `*/`"),
                    );
                }
                continue;
            }
            Raw::Ident => keyword(slice).unwrap_or(Tok::Ident(slice)),
            Raw::Number => number(slice, range, &mut diags),
            Raw::Str => Tok::Str(string(slice, r.start, &mut diags)),
            Raw::Backtick => {
                if slice.len() >= 2 && slice.ends_with('`') {
                    Tok::Raw(&slice[1..slice.len() - 1])
                } else {
                    diags.push(
                        Diagnostic::new(
                            Code::E104,
                            TextRange::new(r.start, r.start + 1),
                            "unterminated raw string",
                        )
                        .with_help("close the raw string with a backtick"),
                    );
                    Tok::Raw(&slice[1..])
                }
            }
            Raw::EqEq => Tok::EqEq,
            Raw::Assign => {
                diags.push(
                    Diagnostic::new(Code::E101, range, "`=` is not an operator")
                        .with_help("use `==`"),
                );
                Tok::EqEq
            }
            Raw::Ne => Tok::Ne,
            Raw::Lt => Tok::Lt,
            Raw::Le => Tok::Le,
            Raw::Gt => Tok::Gt,
            Raw::Ge => Tok::Ge,
            Raw::Tilde => Tok::Tilde,
            Raw::NotTilde => Tok::NotTilde,
            Raw::AndAnd => Tok::And,
            Raw::OrOr => Tok::Or,
            Raw::Bang => Tok::Not,
            Raw::Hash => Tok::Hash,
            Raw::LBrace => Tok::LBrace,
            Raw::RBrace => Tok::RBrace,
            Raw::LParen => Tok::LParen,
            Raw::RParen => Tok::RParen,
            Raw::LBracket => Tok::LBracket,
            Raw::RBracket => Tok::RBracket,
            Raw::Comma => Tok::Comma,
            Raw::Dot => Tok::Dot,
            Raw::Colon => Tok::Colon,
            Raw::Star => Tok::Star,
            Raw::Minus => Tok::Minus,
        };
        tokens.push((r.start, tok, r.end));
    }
    (tokens, diags)
}

/// True when `source` holds a comment (text between tokens that is not white space).
pub fn has_comments(source: &str) -> bool {
    let (tokens, _) = lex(source);
    let mut pos = 0;
    for (l, _, r) in &tokens {
        if source
            .get(pos..*l)
            .is_some_and(|gap| !gap.trim().is_empty())
        {
            return true;
        }
        pos = *r;
    }
    source.get(pos..).is_some_and(|gap| !gap.trim().is_empty())
}

const MAX_MAGNITUDE: u128 = 1 << 63;

/// Nanoseconds per unit (DSL.md §1). Microseconds are `us`, `µs` (U+00B5 MICRO SIGN, as
/// DSL.md writes it) or `μs` (U+03BC GREEK SMALL LETTER MU, what most keyboards type and what
/// Unicode compatibility normalisation turns U+00B5 into).
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Decodes a number token: integer, float or duration, reporting E103/E105.
fn number<'a>(slice: &str, range: TextRange, diags: &mut Vec<Diagnostic>) -> Tok<'a> {
    let numeric_len = slice
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || ((c == 'e' || c == 'E') && exponent_follows(&slice[i..]))
                || ((c == '+' || c == '-') && i > 0 && matches!(&slice[i - 1..i], "e" | "E")))
        })
        .map(|(i, _)| i)
        .unwrap_or(slice.len());
    let (num, suffix) = slice.split_at(numeric_len);
    let is_float = num.contains(['.', 'e', 'E']);
    if suffix.is_empty() {
        if is_float {
            return match num.parse::<f64>() {
                Ok(f) if f.is_finite() => Tok::Float(f),
                _ => {
                    diags.push(
                        Diagnostic::new(Code::E103, range, format!("`{num}` is out of range"))
                            .with_help("floats must be finite 64-bit values"),
                    );
                    Tok::Float(0.0)
                }
            };
        }
        return match num.parse::<u128>() {
            Ok(v) if v <= MAX_MAGNITUDE => Tok::Int(v as u64),
            _ => {
                diags.push(
                    Diagnostic::new(Code::E103, range, format!("`{num}` is out of range"))
                        .with_help(
                            "integers must fit a signed 64-bit value (-9223372036854775808 to 9223372036854775807)",
                        ),
                );
                Tok::Int(0)
            }
        };
    }
    let Some(unit) = unit_nanos(suffix) else {
        diags.push(
            Diagnostic::new(
                Code::E105,
                TextRange::new(range.start + numeric_len, range.end),
                format!("`{suffix}` is not a duration unit"),
            )
            .with_help("durations take one of the units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`"),
        );
        return Tok::Int(0);
    };
    match exact_duration(num, unit) {
        Some(v) => Tok::Duration(v),
        None => {
            diags.push(
                Diagnostic::new(
                    Code::E103,
                    range,
                    format!("duration `{slice}` is out of range"),
                )
                .with_help("durations must fit a signed 64-bit count of nanoseconds"),
            );
            Tok::Duration(0)
        }
    }
}

fn exponent_follows(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 1;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    i < b.len() && b[i].is_ascii_digit()
}

/// `num × unit` nanoseconds, computed exactly and truncated toward zero; `None` past 2^63.
fn exact_duration(num: &str, unit: u128) -> Option<u64> {
    let (mantissa, exp) = match num.find(['e', 'E']) {
        Some(i) => (&num[..i], num[i + 1..].parse::<i64>().ok()?),
        None => (num, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = format!("{int_part}{frac_part}")
        .trim_start_matches('0')
        .to_string();
    let mut scale = exp.checked_sub(frac_part.len() as i64)?;
    while digits.len() > 30 && scale < 0 {
        digits.pop();
        scale += 1;
    }
    if digits.is_empty() {
        return Some(0);
    }
    if digits.len() > 30 {
        return None;
    }
    let n: u128 = digits.parse().ok()?;
    let mut value = n.checked_mul(unit)?;
    if scale >= 0 {
        for _ in 0..scale {
            value = value.checked_mul(10)?;
            if value > MAX_MAGNITUDE {
                return None;
            }
        }
    } else {
        for _ in 0..(-scale).min(40) {
            value /= 10;
        }
    }
    (value <= MAX_MAGNITUDE).then_some(value as u64)
}

/// Decodes a quoted string token (with its quotes), reporting E102/E104.
fn string(slice: &str, offset: usize, diags: &mut Vec<Diagnostic>) -> String {
    let quote = slice.chars().next().unwrap_or('"');
    let body_end = if slice.len() >= 2 && slice.ends_with(quote) && !ends_escaped(slice) {
        slice.len() - 1
    } else {
        diags.push(
            Diagnostic::new(
                Code::E104,
                TextRange::new(offset, offset + 1),
                "unterminated string",
            )
            .with_help(format!("close the string with `{quote}`")),
        );
        slice.len()
    };
    let body = &slice[1..body_end];
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let at = offset + 1 + i;
        match chars.next() {
            Some((_, '\\')) => out.push('\\'),
            Some((_, '"')) => out.push('"'),
            Some((_, '\'')) => out.push('\''),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 'r')) => out.push('\r'),
            Some((_, 't')) => out.push('\t'),
            Some((_, '0')) => out.push('\0'),
            Some((j, 'u')) => {
                let rest = &body[j + 1..];
                let decoded = rest
                    .strip_prefix('{')
                    .and_then(|r| r.find('}').map(|e| &r[..e]))
                    .filter(|h| !h.is_empty() && h.len() <= 6)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32);
                match decoded {
                    Some(ch) => {
                        out.push(ch);
                        let len = rest.find('}').map(|e| e + 1).unwrap_or(0);
                        for _ in 0..rest[..len].chars().count() {
                            chars.next();
                        }
                    }
                    None => diags.push(
                        Diagnostic::new(
                            Code::E102,
                            TextRange::new(at, at + 2),
                            "invalid unicode escape",
                        )
                        .with_help("write a code point as `\\u{1F600}` (1 to 6 hex digits)"),
                    ),
                }
            }
            Some((_, other)) => diags.push(
                Diagnostic::new(
                    Code::E102,
                    TextRange::new(at, at + 1 + other.len_utf8()),
                    format!("unknown escape `\\{}`", other.escape_debug()),
                )
                .with_help(
                    "the escapes are `\\\\ \\\" \\' \\n \\r \\t \\0 \\u{...}`; use a raw string (`...`) for regular expressions",
                ),
            ),
            None => {}
        }
    }
    out
}

/// True when the final quote of `slice` is escaped by an odd run of backslashes.
fn ends_escaped(slice: &str) -> bool {
    let b = slice.as_bytes();
    let mut n = 0;
    let mut i = b.len().saturating_sub(1);
    while i > 1 && b[i - 1] == b'\\' {
        n += 1;
        i -= 1;
    }
    n % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok<'_>> {
        let (t, d) = lex(s);
        assert!(d.is_empty(), "{d:?}");
        t.into_iter().map(|(_, t, _)| t).collect()
    }

    fn codes(s: &str) -> Vec<&'static str> {
        lex(s).1.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn identifiers_with_hyphens() {
        assert_eq!(
            toks("fraud-check-service a-- b"),
            vec![Tok::Ident("fraud-check-service"), Tok::Ident("a")]
        );
        assert_eq!(toks("retry-count"), vec![Tok::Ident("retry-count")]);
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(
            toks("250ms 1.5s 2m 1500ns 3us 7µs 2.5ns 1e6 0.30 5"),
            vec![
                Tok::Duration(250_000_000),
                Tok::Duration(1_500_000_000),
                Tok::Duration(120_000_000_000),
                Tok::Duration(1500),
                Tok::Duration(3000),
                Tok::Duration(7000),
                Tok::Duration(2),
                Tok::Float(1e6),
                Tok::Float(0.3),
                Tok::Int(5),
            ]
        );
        assert_eq!(toks("9223372036854775808"), vec![Tok::Int(1 << 63)]);
        assert_eq!(codes("9223372036854775809"), vec!["E103"]);
        assert_eq!(codes("1e400"), vec!["E103"]);
        assert_eq!(codes("5min"), vec!["E105"]);
        assert_eq!(codes("10x"), vec!["E105"]);
        assert_eq!(codes("9223372036854775809ns"), vec!["E103"]);
        // Micro: the micro sign (U+00B5) and the Greek small mu (U+03BC) alike; any other
        // letter after a number, ASCII or not, is a bad suffix.
        assert_eq!(
            toks("7\u{b5}s 7\u{3bc}s 1.5\u{3bc}s"),
            vec![
                Tok::Duration(7000),
                Tok::Duration(7000),
                Tok::Duration(1500)
            ]
        );
        assert_eq!(codes("7\u{39c}s"), vec!["E105"]);
        assert_eq!(codes("7\u{3bc}"), vec!["E105"]);
        assert_eq!(codes("7\u{e9}"), vec!["E105"]);
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#""a\"b\\c\n" 'x\'y' "\u{1F600}""#),
            vec![
                Tok::Str("a\"b\\c\n".into()),
                Tok::Str("x'y".into()),
                Tok::Str("😀".into())
            ]
        );
        assert_eq!(codes(r#""a\qb""#), vec!["E102"]);
        assert_eq!(codes(r#""abc"#), vec!["E104"]);
        assert_eq!(codes("`abc"), vec!["E104"]);
        assert_eq!(codes("/* abc"), vec!["E104"]);
        assert_eq!(toks("`a\\d`"), vec![Tok::Raw("a\\d")]);
    }

    #[test]
    fn comments_and_operators() {
        assert_eq!(
            toks("a // x\n-- y\n/* z */ && || ! =~ !~ #"),
            vec![
                Tok::Ident("a"),
                Tok::And,
                Tok::Or,
                Tok::Not,
                Tok::Tilde,
                Tok::NotTilde,
                Tok::Hash
            ]
        );
        assert_eq!(codes("x = 1"), vec!["E101"]);
        assert_eq!(codes("a; b"), vec!["E100"]);
        assert_eq!(
            toks("a\u{3000}b\u{a0}"),
            vec![Tok::Ident("a"), Tok::Ident("b")]
        );
    }
}
