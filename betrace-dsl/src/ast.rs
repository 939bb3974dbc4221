//! Abstract syntax tree (DSL.md §2), as written, before name resolution and typing.
//!
//! In: produced by [`crate::parser`]. Out: consumed by [`crate::check`] and
//! [`crate::format()`]. Every node carries its byte range; equality ignores ranges so tests
//! compare shapes (`parse(format(r)) == parse(r)`). Operator aliases are normalised here
//! (`&&` is `and`, `=~` is `matches`, `!~` is `not matches`). `and`/`or` chains are flat
//! vectors and postfix chains (`a.b.where(…)`) are flat suffix lists, so the tree is only as
//! deep as the rule's syntactic nesting (bounded by E402).

use crate::diagnostic::TextRange;
pub use crate::ir::CmpOp;

/// A parsed rule.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleAst {
    /// `when { … } always { … } never { … }` (clauses in written order).
    Block(Vec<Clause>),
    /// The expression form: one predicate.
    Expression(Expr),
}

/// Clause keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClauseKind {
    When,
    Always,
    Never,
}

impl ClauseKind {
    /// The keyword as written.
    pub fn as_str(self) -> &'static str {
        match self {
            ClauseKind::When => "when",
            ClauseKind::Always => "always",
            ClauseKind::Never => "never",
        }
    }
}

/// One clause of a block rule.
#[derive(Clone, Debug)]
pub struct Clause {
    pub kind: ClauseKind,
    pub body: Expr,
    /// The keyword.
    pub keyword: TextRange,
    pub range: TextRange,
}

impl PartialEq for Clause {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.body == other.body
    }
}

/// An expression node.
#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub range: TextRange,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Expr {
    /// A node covering `start..end`.
    pub fn new(kind: ExprKind, start: usize, end: usize) -> Expr {
        Expr {
            kind,
            range: TextRange::new(start, end),
        }
    }
}

/// String test keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrKw {
    Matches,
    Contains,
    StartsWith,
    EndsWith,
}

impl StrKw {
    /// The keyword as written.
    pub fn as_str(self) -> &'static str {
        match self {
            StrKw::Matches => "matches",
            StrKw::Contains => "contains",
            StrKw::StartsWith => "starts_with",
            StrKw::EndsWith => "ends_with",
        }
    }
}

/// Expression kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// Two or more operands.
    Or(Vec<Expr>),
    /// Two or more operands.
    And(Vec<Expr>),
    Not(Box<Expr>),
    Paren(Box<Expr>),
    Compare {
        op: CmpOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    In {
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        negated: bool,
    },
    StrTest {
        op: StrKw,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        negated: bool,
    },
    /// `#x`
    Len(Box<Expr>),
    /// `base` followed by `.name`, `.name(args)`, `:name(args)` or `[index]` suffixes.
    Postfix {
        base: Box<Expr>,
        suffixes: Vec<Suffix>,
    },
    /// `name(args)`, e.g. `count(a)`, `exists(x)`, `has_child(b)`.
    Call {
        name: Name,
        args: Vec<Arg>,
    },
    Ident(String),
    /// Quoted string, escapes decoded.
    Str(String),
    /// Backtick raw string.
    Raw(String),
    Number(Number),
    Bool(bool),
    Null,
    /// `*`
    Star,
    List(Vec<Expr>),
    /// Placeholder for a part the parser could not read (already reported).
    Error,
}

/// A name with its range (equality ignores the range).
#[derive(Clone, Debug)]
pub struct Name {
    pub text: String,
    pub range: TextRange,
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Postfix suffixes.
#[derive(Clone, Debug, PartialEq)]
pub enum Suffix {
    /// `.name`
    Field(Name),
    /// `.name(args)`; `range` covers the whole call from the dot.
    Method {
        name: Name,
        args: Vec<Arg>,
        range: RangeEq,
    },
    /// `:name(args)`
    Colon {
        name: Name,
        args: Vec<Arg>,
        range: RangeEq,
    },
    /// `[index]`
    Index(Box<Expr>),
}

/// A range that compares equal to any other range (for nodes whose equality ignores it).
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeEq(pub TextRange);

impl PartialEq for RangeEq {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A call argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Expr(Expr),
    /// `within <value>` (the keyword is an identifier; the checker requires `within` and a
    /// duration).
    Within {
        keyword: Name,
        value: Expr,
    },
}

impl Arg {
    /// The source range of the argument.
    pub fn range(&self) -> TextRange {
        match self {
            Arg::Expr(e) => e.range,
            Arg::Within { keyword, value } => keyword.range.cover(value.range),
        }
    }
}

/// A numeric literal as written: sign and magnitude.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number {
    pub negative: bool,
    pub value: NumberValue,
}

/// Magnitudes of numeric literals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NumberValue {
    /// At most 2^63; the checker reports E103 for `9223372036854775808` without a sign.
    Int(u64),
    Float(f64),
    /// Nanoseconds, at most 2^63.
    Duration(u64),
}

impl Number {
    /// The signed integer value, `None` when out of i64 range.
    pub fn as_i64(&self, magnitude: u64) -> Option<i64> {
        if self.negative {
            if magnitude == 1 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(magnitude).ok().map(|v| -v)
            }
        } else {
            i64::try_from(magnitude).ok()
        }
    }
}
