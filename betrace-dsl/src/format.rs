//! Canonical formatting (DSL.md §5).
//!
//! In: a [`RuleAst`]. Out: the canonical text — one clause per line, long `and`/`or` chains of
//! a clause broken one operand per line with a two-space indent, canonical operator spellings
//! (`and`, `or`, `not`, `matches`), double-quoted strings and durations in their largest exact
//! unit. `parse(format(ast)) == ast` for every valid rule.

use crate::ast::{Arg, Expr, ExprKind, Number, NumberValue, RuleAst, Suffix};

/// Longest clause line, in characters, kept on one line; a longer clause is broken.
const MAX_LINE: usize = 100;

/// The canonical text of a rule.
pub fn format_ast(ast: &RuleAst) -> String {
    match ast {
        RuleAst::Expression(e) => expr(e),
        RuleAst::Block(clauses) => {
            let mut out = String::new();
            for c in clauses {
                if !out.is_empty() {
                    out.push('\n');
                }
                let kw = c.kind.as_str();
                let body = expr(&c.body);
                // `{kw} { {body} }`
                if kw.len() + body.chars().count() + 5 <= MAX_LINE {
                    out.push_str(&format!("{kw} {{ {body} }}"));
                } else {
                    out.push_str(kw);
                    out.push_str(" {\n");
                    match &c.body.kind {
                        ExprKind::Or(items) | ExprKind::And(items) => {
                            let op = if matches!(c.body.kind, ExprKind::Or(_)) {
                                "or"
                            } else {
                                "and"
                            };
                            for (i, item) in items.iter().enumerate() {
                                out.push_str("  ");
                                if i > 0 {
                                    out.push_str(op);
                                    out.push(' ');
                                }
                                out.push_str(&expr(item));
                                out.push('\n');
                            }
                        }
                        _ => {
                            out.push_str("  ");
                            out.push_str(&body);
                            out.push('\n');
                        }
                    }
                    out.push('}');
                }
            }
            out
        }
    }
}

fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Or(items) => join(items, " or "),
        ExprKind::And(items) => join(items, " and "),
        ExprKind::Not(inner) => format!("not {}", expr(inner)),
        ExprKind::Paren(inner) => format!("({})", expr(inner)),
        ExprKind::Compare { op, lhs, rhs } => {
            format!("{} {} {}", expr(lhs), op.as_str(), expr(rhs))
        }
        ExprKind::In { lhs, rhs, negated } => format!(
            "{} {}in {}",
            expr(lhs),
            if *negated { "not " } else { "" },
            expr(rhs)
        ),
        ExprKind::StrTest {
            op,
            lhs,
            rhs,
            negated,
        } => format!(
            "{} {}{} {}",
            expr(lhs),
            if *negated { "not " } else { "" },
            op.as_str(),
            expr(rhs)
        ),
        ExprKind::Len(inner) => format!("#{}", expr(inner)),
        ExprKind::Postfix { base, suffixes } => {
            let mut s = expr(base);
            for suf in suffixes {
                match suf {
                    Suffix::Field(n) => {
                        s.push('.');
                        s.push_str(&n.text);
                    }
                    Suffix::Method { name, args, .. } => {
                        s.push('.');
                        s.push_str(&name.text);
                        s.push_str(&args_text(args));
                    }
                    Suffix::Colon { name, args, .. } => {
                        s.push(':');
                        s.push_str(&name.text);
                        s.push_str(&args_text(args));
                    }
                    Suffix::Index(i) => {
                        s.push('[');
                        s.push_str(&expr(i));
                        s.push(']');
                    }
                }
            }
            s
        }
        ExprKind::Call { name, args } => format!("{}{}", name.text, args_text(args)),
        ExprKind::Ident(s) => s.clone(),
        ExprKind::Str(s) => quote(s),
        ExprKind::Raw(s) => format!("`{s}`"),
        ExprKind::Number(n) => number(n),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Null => "null".into(),
        ExprKind::Star => "*".into(),
        ExprKind::List(items) => format!(
            "[{}]",
            items.iter().map(expr).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Error => String::new(),
    }
}

/// Operands of a flat chain. A chain nested in another is either parenthesised (a Paren node)
/// or an `and` inside an `or`, which needs no parentheses, so operands print as they are.
fn join(items: &[Expr], sep: &str) -> String {
    items.iter().map(expr).collect::<Vec<_>>().join(sep)
}

fn args_text(args: &[Arg]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|a| match a {
            Arg::Expr(e) => expr(e),
            Arg::Within { keyword, value } => format!("{} {}", keyword.text, expr(value)),
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn number(n: &Number) -> String {
    let sign = if n.negative { "-" } else { "" };
    match n.value {
        NumberValue::Int(m) => format!("{sign}{m}"),
        NumberValue::Float(f) => format!("{sign}{f:?}"),
        NumberValue::Duration(ns) => {
            const UNITS: [(u64, &str); 5] = [
                (3_600_000_000_000, "h"),
                (60_000_000_000, "m"),
                (1_000_000_000, "s"),
                (1_000_000, "ms"),
                (1_000, "us"),
            ];
            for (size, unit) in UNITS {
                if ns != 0 && ns % size == 0 {
                    return format!("{sign}{}{unit}", ns / size);
                }
            }
            format!("{sign}{ns}ns")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clauses_up_to_the_line_limit_stay_on_one_line() {
        // `always { ` + body + ` }` is 11 characters around the body.
        let rule = |n: usize| format!("when {{ a }} always {{ {} and b }}", "x".repeat(n));
        let one_line = crate::format(&rule(100 - 11 - 6)).unwrap();
        let last = one_line.lines().last().unwrap();
        assert_eq!(last.chars().count(), 100, "{one_line}");
        let broken = crate::format(&rule(100 - 11 - 5)).unwrap();
        assert_eq!(broken.lines().count(), 5, "{broken}");
        // Characters, not bytes: a string of 40 two-byte letters is 40 characters.
        let wide = format!(
            "when {{ a }} always {{ b.where(c == \"{}\") }}",
            "é".repeat(40)
        );
        assert_eq!(crate::format(&wide).unwrap().lines().count(), 2);
    }
}
