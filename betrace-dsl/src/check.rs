//! Checker: names, scopes and static types (DSL.md §2 scoping, §3.4 static errors, §7).
//!
//! In: a [`RuleAst`] and the [`Symbols`] table of the rule set. Out: the checked
//! [`ir::Rule`], or every E2xx/E3xx diagnostic found. The checker decides what each node of
//! the permissive parse tree means: a trace-level condition inside `when`/`always`/`never`,
//! a span predicate inside `where(…)`, `trace.has/all/count(…)` and at the top of the
//! expression form.

use regex::Regex;

use crate::ast::{
    self, Arg, ClauseKind, Expr, ExprKind, Name, NumberValue, RuleAst, StrKw, Suffix,
};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, TextRange};
use crate::ir::{
    self, AttrScope, Body, CmpOp, Cond, CountRhs, Intrinsic, Literal, Operand, Pred, RegexId,
    Relation, Selection, StrOp, Symbols, Target, TraceField, TraceTerm,
};

/// The `span.` fields, for E306 suggestions.
pub const SPAN_FIELDS: &[&str] = &[
    "name",
    "service",
    "status",
    "status_message",
    "kind",
    "duration",
    "start",
    "end",
    "id",
    "parent_id",
    "trace_id",
    "is_root",
    "attributes",
];

/// The `trace.` fields and calls, for E306 suggestions.
pub const TRACE_FIELDS: &[&str] = &[
    "id",
    "duration",
    "span_count",
    "root_name",
    "root_service",
    "has",
    "all",
    "count",
];

const STATUS_MEMBERS: &[&str] = &["unset", "ok", "error"];
const KIND_MEMBERS: &[&str] = &[
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

/// Checks a parsed rule.
pub fn check(ast: &RuleAst, symbols: &mut Symbols) -> Result<ir::Rule, Vec<Diagnostic>> {
    let mut c = Checker {
        symbols,
        regexes: Vec::new(),
        diags: Vec::new(),
    };
    let body = c.rule(ast);
    if c.diags.is_empty()
        && let Some(body) = body
    {
        return Ok(ir::Rule {
            body,
            regexes: c.regexes,
        });
    }
    let mut diags = c.diags;
    diags.sort_by_key(|d| (d.range().start, d.code));
    Err(diags)
}

/// Static types for E302/E304 (DSL.md §7.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Str,
    Num,
    Bool,
    Duration,
    Status,
    Kind,
    Null,
    /// A list literal.
    List,
    /// Attributes and other values whose type is known only at run time.
    Dynamic,
}

impl Ty {
    fn is_enum(self) -> bool {
        matches!(self, Ty::Status | Ty::Kind)
    }

    fn describe(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Bool => "a bool",
            Ty::Duration => "a duration",
            Ty::Status => "a `span.status` member",
            Ty::Kind => "a `span.kind` member",
            Ty::Null => "`null`",
            Ty::List => "a list",
            Ty::Dynamic => "a value",
        }
    }
}

fn never_equal(a: Ty, b: Ty) -> bool {
    let pair = |x: Ty, y: Ty| {
        matches!(
            (x, y),
            (Ty::Duration, Ty::Str)
                | (Ty::Duration, Ty::Bool)
                | (Ty::Bool, Ty::Num)
                | (Ty::Status, Ty::Num)
                | (Ty::Status, Ty::Bool)
                | (Ty::Status, Ty::Duration)
                | (Ty::Kind, Ty::Num)
                | (Ty::Kind, Ty::Bool)
                | (Ty::Kind, Ty::Duration)
                | (Ty::Status, Ty::Kind)
        )
    };
    pair(a, b) || pair(b, a)
}

/// Which side of a binary operator an operand is on (DSL.md §2 scoping, §7.9).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Left of an operator, or alone: a bare name or a quoted name is an attribute.
    Left,
    /// Right of an operator: a single bare name or a quoted text is a string; a dotted path
    /// is an attribute.
    Right,
}

struct Checker<'s> {
    symbols: &'s mut Symbols,
    regexes: Vec<Regex>,
    diags: Vec<Diagnostic>,
}

/// A dotted path `a.b.c` read off an expression: `Ident` or `Postfix` with only field suffixes.
fn dotted(e: &Expr) -> Option<Vec<&Name>> {
    match &e.kind {
        ExprKind::Postfix { base, suffixes } => {
            let ExprKind::Ident(first) = &base.kind else {
                return None;
            };
            let _ = first;
            let mut names = Vec::with_capacity(suffixes.len());
            for s in suffixes {
                match s {
                    Suffix::Field(n) => names.push(n),
                    _ => return None,
                }
            }
            Some(names)
        }
        _ => None,
    }
}

fn base_ident(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Ident(s) => Some(s),
        ExprKind::Postfix { base, .. } => match &base.kind {
            ExprKind::Ident(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn unparen(mut e: &Expr) -> &Expr {
    while let ExprKind::Paren(inner) = &e.kind {
        e = inner;
    }
    e
}

/// The candidate closest to `word` by Damerau-Levenshtein distance, if it is at most 2 edits
/// away; ties go to the alphabetically first. Used for "did you mean" hints here and in rule
/// files.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c)
}

fn suggest(word: &str, candidates: &[&str]) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

fn relation_named(name: &str) -> Option<Relation> {
    Some(match name {
        "has_child" => Relation::HasChild,
        "has_parent" => Relation::HasParent,
        "has_descendant" => Relation::HasDescendant,
        "has_ancestor" => Relation::HasAncestor,
        "followed_by" => Relation::FollowedBy,
        "preceded_by" => Relation::PrecededBy,
        _ => return None,
    })
}

fn intrinsic_named(name: &str) -> Option<Intrinsic> {
    Some(match name {
        "name" => Intrinsic::Name,
        "service" => Intrinsic::Service,
        "status" => Intrinsic::Status,
        "status_message" => Intrinsic::StatusMessage,
        "kind" => Intrinsic::Kind,
        "duration" => Intrinsic::Duration,
        "start" => Intrinsic::Start,
        "end" => Intrinsic::End,
        "id" => Intrinsic::Id,
        "parent_id" => Intrinsic::ParentId,
        "trace_id" => Intrinsic::TraceId,
        "is_root" => Intrinsic::IsRoot,
        _ => return None,
    })
}

fn intrinsic_ty(i: Intrinsic) -> Ty {
    match i {
        Intrinsic::Name
        | Intrinsic::Service
        | Intrinsic::StatusMessage
        | Intrinsic::Id
        | Intrinsic::ParentId
        | Intrinsic::TraceId => Ty::Str,
        Intrinsic::Status => Ty::Status,
        Intrinsic::Kind => Ty::Kind,
        Intrinsic::Duration => Ty::Duration,
        Intrinsic::Start | Intrinsic::End => Ty::Num,
        Intrinsic::IsRoot => Ty::Bool,
    }
}

fn trace_field_ty(f: TraceField) -> Ty {
    match f {
        TraceField::Id | TraceField::RootName | TraceField::RootService => Ty::Str,
        TraceField::Duration => Ty::Duration,
        TraceField::SpanCount => Ty::Num,
    }
}

fn operand_ty(o: &Operand) -> Ty {
    match o {
        Operand::Literal(l) => match l {
            Literal::Str(_) => Ty::Str,
            Literal::Int(_) | Literal::Float(_) => Ty::Num,
            Literal::Bool(_) => Ty::Bool,
            Literal::Duration(_) => Ty::Duration,
            Literal::Null => Ty::Null,
            Literal::Status(_) => Ty::Status,
            Literal::Kind(_) => Ty::Kind,
            Literal::List(_) => Ty::List,
        },
        Operand::Attribute { .. } | Operand::Lower(_) | Operand::Upper(_) => Ty::Dynamic,
        Operand::Intrinsic(i) => intrinsic_ty(*i),
        Operand::Len(_) => Ty::Num,
        Operand::Exists { .. } | Operand::StrCall { .. } => Ty::Bool,
    }
}

impl Checker<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn rule(&mut self, ast: &RuleAst) -> Option<Body> {
        match ast {
            RuleAst::Block(clauses) => {
                let mut when = None;
                let mut always = None;
                let mut never = None;
                for c in clauses {
                    let cond = self.cond(&c.body);
                    match c.kind {
                        ClauseKind::When => when = when.or(Some(cond)),
                        ClauseKind::Always => always = always.or(Some(cond)),
                        ClauseKind::Never => never = never.or(Some(cond)),
                    }
                }
                if always.is_none() && never.is_none() {
                    let range = clauses.first().map(|c| c.range).unwrap_or_default();
                    self.err(
                        Diagnostic::new(
                            Code::E301,
                            range,
                            "a rule needs an `always` or `never` clause",
                        )
                        .with_help("add what must hold when the `when` clause matches, e.g. `always { fraud_check }`"),
                    );
                }
                Some(Body::Block {
                    when: when.flatten(),
                    always: always.flatten(),
                    never: never.flatten(),
                })
            }
            RuleAst::Expression(e) => {
                let pred = self.pred(e, true)?;
                if reads_span(&pred) {
                    Some(Body::SpanScoped(pred))
                } else {
                    Some(Body::TraceScoped(pred))
                }
            }
        }
    }

    // ---------------------------------------------------------------- trace level

    fn cond(&mut self, e: &Expr) -> Option<Cond> {
        match &e.kind {
            ExprKind::Error => None,
            ExprKind::Paren(inner) => self.cond(inner),
            ExprKind::Or(items) => {
                let v: Vec<Option<Cond>> = items.iter().map(|i| self.cond(i)).collect();
                v.into_iter().collect::<Option<Vec<_>>>().map(Cond::Or)
            }
            ExprKind::And(items) => {
                let v: Vec<Option<Cond>> = items.iter().map(|i| self.cond(i)).collect();
                v.into_iter().collect::<Option<Vec<_>>>().map(Cond::And)
            }
            ExprKind::Not(inner) => self.cond(inner).map(|c| Cond::Not(Box::new(c))),
            ExprKind::Compare { op, lhs, rhs } => self.cond_compare(e, *op, lhs, rhs),
            ExprKind::In { lhs, .. } | ExprKind::StrTest { lhs, .. } => {
                // `payment.currency in [USD]`: a direct comparison with another operator.
                match self.direct_target(lhs) {
                    Some((name, attr)) => {
                        let pred = self.pred_with_lhs(e, attr)?;
                        Some(Cond::Exists(Selection {
                            target: Target::Name(self.symbols.intern_span_name(&name)),
                            filters: vec![pred],
                        }))
                    }
                    None => {
                        self.not_a_condition(lhs, e.range);
                        None
                    }
                }
            }
            ExprKind::Call { name, args } => self.cond_call(e, name, args),
            ExprKind::Postfix { base, suffixes } if is_ident(base, "trace") => {
                self.trace_postfix_cond(e, suffixes)
            }
            ExprKind::Postfix { base, .. } if is_ident(base, "span") => {
                self.err(span_at_trace_level(e.range));
                None
            }
            ExprKind::Ident(_) | ExprKind::Str(_) | ExprKind::Star | ExprKind::Postfix { .. } => {
                self.selection(e).map(Cond::Exists)
            }
            _ => {
                self.err(
                    Diagnostic::new(
                        Code::E205,
                        e.range,
                        "this is not a condition on the trace",
                    )
                    .with_help("a clause holds span selections (`payment`, `payment.where(amount > 1000)`), comparisons `span_name.attribute op value`, `count(...)` comparisons and `trace.` terms"),
                );
                None
            }
        }
    }

    fn not_a_condition(&mut self, lhs: &Expr, range: TextRange) {
        let help = if matches!(lhs.kind, ExprKind::Ident(_)) {
            "a comparison at the trace level reads `span_name.attribute op value`, e.g. `payment.amount > 1000`; inside `where(...)` compare attributes directly"
        } else {
            "compare inside `where(...)`: `payment.where(amount > 1000)`"
        };
        self.err(
            Diagnostic::new(
                Code::E205,
                range,
                "this comparison is not a condition on the trace",
            )
            .with_help(help),
        );
    }

    /// `payment.amount` on the left of a trace-level comparison: (span name, attribute).
    fn direct_target<'e>(&self, lhs: &'e Expr) -> Option<(String, &'e Name)> {
        let ExprKind::Postfix { base, .. } = &lhs.kind else {
            return None;
        };
        let ExprKind::Ident(first) = &base.kind else {
            return None;
        };
        if first == "span" || first == "trace" {
            return None;
        }
        let segs = dotted(lhs)?;
        let (last, prefix) = segs.split_last()?;
        let mut name = first.clone();
        for p in prefix {
            name.push('.');
            name.push_str(&p.text);
        }
        Some((name, *last))
    }

    /// Re-checks a comparison node `e` with its left side replaced by attribute `attr`.
    fn pred_with_lhs(&mut self, e: &Expr, attr: &Name) -> Option<Pred> {
        let lhs = Expr {
            kind: ExprKind::Ident(attr.text.clone()),
            range: attr.range,
        };
        let rebuilt = match &e.kind {
            ExprKind::Compare { op, rhs, .. } => ExprKind::Compare {
                op: *op,
                lhs: Box::new(lhs),
                rhs: rhs.clone(),
            },
            ExprKind::In { rhs, negated, .. } => ExprKind::In {
                lhs: Box::new(lhs),
                rhs: rhs.clone(),
                negated: *negated,
            },
            ExprKind::StrTest {
                op, rhs, negated, ..
            } => ExprKind::StrTest {
                op: *op,
                lhs: Box::new(lhs),
                rhs: rhs.clone(),
                negated: *negated,
            },
            _ => return None,
        };
        self.pred(
            &Expr {
                kind: rebuilt,
                range: e.range,
            },
            false,
        )
    }

    fn cond_compare(&mut self, e: &Expr, mut op: CmpOp, lhs: &Expr, rhs: &Expr) -> Option<Cond> {
        let lhs = unparen(lhs);
        match &lhs.kind {
            ExprKind::Call { name, args } if name.text == "count" => {
                let sel = self.count_arg(name, args, lhs.range)?;
                let rhs_u = unparen(rhs);
                let rhs = match &rhs_u.kind {
                    ExprKind::Call { name, args } if name.text == "count" => {
                        CountRhs::Count(self.count_arg(name, args, rhs_u.range)?)
                    }
                    ExprKind::Number(n) => {
                        let (bound_op, k) = self.count_bound(op, n, rhs_u.range)?;
                        op = bound_op;
                        CountRhs::Int(k)
                    }
                    _ => {
                        self.err(count_rhs_error(rhs_u.range));
                        return None;
                    }
                };
                Some(Cond::Count { lhs: sel, op, rhs })
            }
            ExprKind::Postfix { base, .. } if is_ident(base, "trace") => {
                let term = self.trace_compare(e, op, lhs, rhs)?;
                Some(Cond::Trace(term))
            }
            ExprKind::Postfix { base, .. } if is_ident(base, "span") => {
                self.err(span_at_trace_level(lhs.range));
                None
            }
            _ => match self.direct_target(lhs) {
                Some((name, attr)) => {
                    let pred = self.pred_with_lhs(e, attr)?;
                    Some(Cond::Exists(Selection {
                        target: Target::Name(self.symbols.intern_span_name(&name)),
                        filters: vec![pred],
                    }))
                }
                None => {
                    self.not_a_condition(lhs, e.range);
                    None
                }
            },
        }
    }

    /// The bound of `count(...) op n` / `trace.count(...) op n` (DSL.md §2: `number`). A count
    /// is a whole number ≥ 0 compared with `n` by value (§3.4), so a fractional or out-of-range
    /// bound becomes the integer comparison that holds for exactly the same counts:
    /// `> 2.5` is `> 2` (true for 3), `<= 2.5` is `<= 2`, `== 2.5` never holds (`< 0`) and
    /// `!= 2.5` always does (`>= 0`). A duration or any other literal is E308.
    fn count_bound(
        &mut self,
        op: CmpOp,
        n: &ast::Number,
        range: TextRange,
    ) -> Option<(CmpOp, i64)> {
        // 2^63: the first f64 outside i64.
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        match n.value {
            NumberValue::Int(m) => Some((op, self.int_value(n, m, range)?)),
            NumberValue::Float(f) => {
                let f = if n.negative { -f } else { f };
                if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
                    return Some((op, f as i64));
                }
                // `as` saturates: a bound beyond i64 compares like i64::MAX / i64::MIN, which
                // no count reaches either.
                let floor = f.floor() as i64;
                Some(match op {
                    CmpOp::Gt | CmpOp::Ge => (CmpOp::Gt, floor),
                    CmpOp::Lt | CmpOp::Le => (CmpOp::Le, floor),
                    CmpOp::Eq => (CmpOp::Lt, 0),
                    CmpOp::Ne => (CmpOp::Ge, 0),
                })
            }
            NumberValue::Duration(_) => {
                self.err(count_rhs_error(range));
                None
            }
        }
    }

    fn count_arg(&mut self, name: &Name, args: &[Arg], range: TextRange) -> Option<Selection> {
        match args {
            [Arg::Expr(a)] => self.selection(a),
            _ => {
                self.err(
                    Diagnostic::new(
                        Code::E308,
                        range,
                        format!("`{}` takes one span selection", name.text),
                    )
                    .with_help(
                        "write `count(http_request)` or `count(payment.where(amount > 1000))`",
                    ),
                );
                None
            }
        }
    }

    fn cond_call(&mut self, e: &Expr, name: &Name, args: &[Arg]) -> Option<Cond> {
        if name.text == "count" {
            self.err(
                Diagnostic::new(Code::E205, e.range, "`count(...)` needs a comparison")
                    .with_help("compare the count: `count(retry) < 3`"),
            );
            let _ = args;
            return None;
        }
        if relation_named(&name.text).is_some() || name.text == "exists" {
            self.err(
                Diagnostic::new(
                    Code::E309,
                    name.range,
                    format!(
                        "`{}` tests the current span, and there is none at the trace level",
                        name.text
                    ),
                )
                .with_help(format!("select spans first: `*.where({}(...))`", name.text)),
            );
            return None;
        }
        self.err(unknown_function(name));
        None
    }

    fn trace_postfix_cond(&mut self, e: &Expr, suffixes: &[Suffix]) -> Option<Cond> {
        match suffixes {
            [Suffix::Method { name, args, .. }] if name.text == "has" || name.text == "all" => {
                let p = self.trace_pred_arg(name, args, e.range)?;
                Some(Cond::Trace(if name.text == "has" {
                    TraceTerm::Has(p)
                } else {
                    TraceTerm::All(p)
                }))
            }
            [Suffix::Method { name, .. }] if name.text == "count" => {
                self.err(
                    Diagnostic::new(Code::E205, e.range, "`trace.count(...)` needs a comparison")
                        .with_help("compare it: `trace.count(span.status == error) >= 2`"),
                );
                None
            }
            _ => {
                self.trace_field_or_error(e, suffixes);
                None
            }
        }
    }

    /// Reports the right error for a `trace.…` that is not a valid term here.
    fn trace_field_or_error(&mut self, e: &Expr, suffixes: &[Suffix]) {
        match suffixes.first() {
            Some(Suffix::Field(n)) | Some(Suffix::Method { name: n, .. })
                if !TRACE_FIELDS.contains(&n.text.as_str()) =>
            {
                let mut d = Diagnostic::new(
                    Code::E306,
                    n.range,
                    format!("unknown field `trace.{}`", n.text),
                );
                if let Some(s) = suggest(&n.text, TRACE_FIELDS) {
                    d = d.with_help(s);
                } else {
                    d = d.with_help(format!("`trace.` has {}", TRACE_FIELDS.join(", ")));
                }
                self.err(d);
            }
            _ => self.err(
                Diagnostic::new(Code::E205, e.range, "a `trace.` field needs a comparison")
                    .with_help("compare it: `trace.duration > 10s`"),
            ),
        }
    }

    fn trace_pred_arg(&mut self, name: &Name, args: &[Arg], range: TextRange) -> Option<Pred> {
        match args {
            [Arg::Expr(a)] => self.pred(a, false),
            _ => {
                self.err(
                    Diagnostic::new(
                        Code::E308,
                        range,
                        format!("`trace.{}` takes one span predicate", name.text),
                    )
                    .with_help(format!("write `trace.{}(span.status == error)`", name.text)),
                );
                None
            }
        }
    }

    /// `trace.field op value` or `trace.count(p) op n`.
    fn trace_compare(&mut self, e: &Expr, op: CmpOp, lhs: &Expr, rhs: &Expr) -> Option<TraceTerm> {
        let ExprKind::Postfix { suffixes, .. } = &lhs.kind else {
            return None;
        };
        match suffixes.as_slice() {
            [Suffix::Method { name, args, .. }] if name.text == "count" => {
                let pred = self.trace_pred_arg(name, args, lhs.range)?;
                let rhs_u = unparen(rhs);
                let (op, value) = match &rhs_u.kind {
                    ExprKind::Number(n) => self.count_bound(op, n, rhs_u.range)?,
                    _ => {
                        self.err(count_rhs_error(rhs_u.range));
                        return None;
                    }
                };
                Some(TraceTerm::Count { pred, op, value })
            }
            [Suffix::Field(n)] => {
                let field = match n.text.as_str() {
                    "id" => TraceField::Id,
                    "duration" => TraceField::Duration,
                    "span_count" => TraceField::SpanCount,
                    "root_name" => TraceField::RootName,
                    "root_service" => TraceField::RootService,
                    _ => {
                        self.trace_field_or_error(e, suffixes);
                        return None;
                    }
                };
                let value = match self.operand(rhs, Side::Right)? {
                    Operand::Literal(l) => l,
                    _ => {
                        self.err(
                            Diagnostic::new(
                                Code::E308,
                                rhs.range,
                                format!("`trace.{}` is compared with a literal value", n.text),
                            )
                            .with_help("write a string, number or duration on the right"),
                        );
                        return None;
                    }
                };
                let lt = trace_field_ty(field);
                let rt = operand_ty(&Operand::Literal(value.clone()));
                if !self.types_ok(op, lt, rt, lhs.range, rhs.range) {
                    return None;
                }
                Some(TraceTerm::Field { field, op, value })
            }
            _ => {
                self.trace_field_or_error(e, suffixes);
                None
            }
        }
    }

    // ---------------------------------------------------------------- selections

    fn selection(&mut self, e: &Expr) -> Option<Selection> {
        match &e.kind {
            ExprKind::Paren(inner) => self.selection(inner),
            ExprKind::Ident(name) => Some(Selection {
                target: Target::Name(self.symbols.intern_span_name(name)),
                filters: Vec::new(),
            }),
            ExprKind::Str(name) => Some(Selection {
                target: Target::Name(self.symbols.intern_span_name(name)),
                filters: Vec::new(),
            }),
            ExprKind::Star => Some(Selection {
                target: Target::Any,
                filters: Vec::new(),
            }),
            ExprKind::Postfix { base, suffixes } => {
                if is_ident(base, "span") {
                    self.err(span_at_trace_level(e.range));
                    return None;
                }
                if is_ident(base, "trace") {
                    self.err(
                        Diagnostic::new(Code::E309, e.range, "`trace.` is not a span selection")
                            .with_help("`trace.` terms stand alone in a clause or at the top of an expression rule"),
                    );
                    return None;
                }
                let mut name = match &base.kind {
                    ExprKind::Ident(s) => Some(s.clone()),
                    ExprKind::Str(s) => Some(s.clone()),
                    ExprKind::Star => None,
                    _ => {
                        self.err(expected_selection(base.range));
                        return None;
                    }
                };
                let mut filters = Vec::new();
                let mut in_methods = false;
                let mut ok = true;
                for s in suffixes {
                    match s {
                        Suffix::Field(n)
                            if !in_methods && matches!(base.kind, ExprKind::Ident(_)) =>
                        {
                            if let Some(name) = name.as_mut() {
                                name.push('.');
                                name.push_str(&n.text);
                            }
                        }
                        Suffix::Method {
                            name: m,
                            args,
                            range,
                        } => {
                            in_methods = true;
                            if m.text == "where" {
                                match args.as_slice() {
                                    [Arg::Expr(a)] => match self.pred(a, false) {
                                        Some(p) => filters.push(p),
                                        None => ok = false,
                                    },
                                    _ => {
                                        self.err(
                                            Diagnostic::new(
                                                Code::E308,
                                                range.0,
                                                "`where` takes one predicate",
                                            )
                                            .with_help("write `payment.where(amount > 1000)`"),
                                        );
                                        ok = false;
                                    }
                                }
                            } else if let Some(rel) = relation_named(&m.text) {
                                match self.relation(rel, m, args, range.0) {
                                    Some(p) => filters.push(p),
                                    None => ok = false,
                                }
                            } else {
                                self.err(
                                    Diagnostic::new(
                                        Code::E308,
                                        m.range,
                                        format!("unknown method `{}` on a span selection", m.text),
                                    )
                                    .with_help(
                                        suggest(
                                            &m.text,
                                            &[
                                                "where",
                                                "has_child",
                                                "has_parent",
                                                "has_descendant",
                                                "has_ancestor",
                                                "followed_by",
                                                "preceded_by",
                                            ],
                                        )
                                        .unwrap_or_else(|| {
                                            "selections take `where(...)` and the relations `has_child`, `has_parent`, `has_descendant`, `has_ancestor`, `followed_by`, `preceded_by`".to_string()
                                        }),
                                    ),
                                );
                                ok = false;
                            }
                        }
                        Suffix::Field(n) => {
                            self.err(
                                Diagnostic::new(
                                    Code::E205,
                                    n.range,
                                    format!("unexpected `.{}` after a selection", n.text),
                                )
                                .with_help("compare attributes inside `where(...)`"),
                            );
                            ok = false;
                        }
                        Suffix::Colon { range, .. } => {
                            self.err(
                                Diagnostic::new(
                                    Code::E205,
                                    range.0,
                                    "a span selection has no `:` functions",
                                )
                                .with_help(
                                    "call string functions on attributes inside `where(...)`",
                                ),
                            );
                            ok = false;
                        }
                        Suffix::Index(i) => {
                            self.err(expected_selection(i.range));
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
                let target = match name {
                    Some(n) => Target::Name(self.symbols.intern_span_name(&n)),
                    None => Target::Any,
                };
                Some(Selection { target, filters })
            }
            ExprKind::Error => None,
            _ => {
                self.err(expected_selection(e.range));
                None
            }
        }
    }

    fn relation(
        &mut self,
        rel: Relation,
        name: &Name,
        args: &[Arg],
        range: TextRange,
    ) -> Option<Pred> {
        let usage = || {
            format!(
                "write `{}(fraud_check)` or `{}(fraud_check, within 2s)`",
                rel.as_str(),
                rel.as_str()
            )
        };
        let (target, within) = match args {
            [Arg::Expr(a)] => (a, None),
            [Arg::Expr(a), Arg::Within { keyword, value }] => (a, Some((keyword, value))),
            _ => {
                self.err(
                    Diagnostic::new(
                        Code::E308,
                        range,
                        format!(
                            "`{}` takes a span selection and an optional `within` bound",
                            name.text
                        ),
                    )
                    .with_help(usage()),
                );
                return None;
            }
        };
        let within = match within {
            None => None,
            Some((keyword, value)) => {
                let ns = match (&keyword.text[..], &value.kind) {
                    ("within", ExprKind::Number(n)) => match n.value {
                        NumberValue::Duration(m) if !n.negative => i64::try_from(m).ok(),
                        _ => None,
                    },
                    _ => None,
                };
                match ns {
                    Some(ns) => Some(ns),
                    None => {
                        self.err(
                            Diagnostic::new(
                                Code::E308,
                                keyword.range.cover(value.range),
                                "the bound of a relation is `within` and a non-negative duration",
                            )
                            .with_help("write `within 2s` or `within 500ms`"),
                        );
                        return None;
                    }
                }
            }
        };
        let target = self.selection(target)?;
        Some(Pred::Relation {
            relation: rel,
            target,
            within,
        })
    }

    // ---------------------------------------------------------------- span level

    /// A span predicate. `top` is true only at the top of the expression form, where
    /// `trace.` terms are allowed.
    fn pred(&mut self, e: &Expr, top: bool) -> Option<Pred> {
        match &e.kind {
            ExprKind::Error => None,
            ExprKind::Paren(inner) => self.pred(inner, top),
            ExprKind::Or(items) => {
                let v: Vec<Option<Pred>> = items.iter().map(|i| self.pred(i, top)).collect();
                v.into_iter().collect::<Option<Vec<_>>>().map(Pred::Or)
            }
            ExprKind::And(items) => {
                let v: Vec<Option<Pred>> = items.iter().map(|i| self.pred(i, top)).collect();
                v.into_iter().collect::<Option<Vec<_>>>().map(Pred::And)
            }
            ExprKind::Not(inner) => self.pred(inner, top).map(|p| Pred::Not(Box::new(p))),
            ExprKind::Compare { op, lhs, rhs } => {
                let l = unparen(lhs);
                if let ExprKind::Postfix { base, .. } = &l.kind
                    && is_ident(base, "trace")
                {
                    if !top {
                        self.err(trace_in_span_predicate(l.range));
                        return None;
                    }
                    return self
                        .trace_compare(e, *op, l, rhs)
                        .map(|t| Pred::Trace(Box::new(t)));
                }
                if let ExprKind::Call { name, .. } = &l.kind
                    && name.text == "count"
                {
                    self.err(count_in_predicate(name.range, top));
                    return None;
                }
                let lo = self.operand(lhs, Side::Left);
                let ro = self.operand(rhs, Side::Right);
                let (mut lo, mut ro) = (lo?, ro?);
                self.resolve_enum(&lo, &mut ro, rhs.range)?;
                self.resolve_enum(&ro, &mut lo, lhs.range)?;
                if !self.types_ok(*op, operand_ty(&lo), operand_ty(&ro), lhs.range, rhs.range) {
                    return None;
                }
                Some(Pred::Compare {
                    lhs: lo,
                    op: *op,
                    rhs: ro,
                })
            }
            ExprKind::In { lhs, rhs, negated } => {
                let operand = self.operand(lhs, Side::Left)?;
                let ExprKind::List(items) = &unparen(rhs).kind else {
                    self.err(
                        Diagnostic::new(Code::E307, rhs.range, "`in` needs a list")
                            .with_help("write `currency in [USD, EUR]`; use `==` for one value"),
                    );
                    return None;
                };
                let lt = operand_ty(&operand);
                let mut list = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.list_item(item, lt) {
                        Some(l) => {
                            if never_equal(lt, operand_ty(&Operand::Literal(l.clone()))) {
                                self.err(type_mismatch(
                                    lt,
                                    operand_ty(&Operand::Literal(l.clone())),
                                    lhs.range,
                                    item.range,
                                ));
                                ok = false;
                            }
                            list.push(l)
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Pred::In {
                    operand,
                    list,
                    negated: *negated,
                })
            }
            ExprKind::StrTest {
                op,
                lhs,
                rhs,
                negated,
            } => {
                let operand = self.operand(lhs, Side::Left);
                let (op, arg) = self.str_op_arg(*op, rhs)?;
                Some(Pred::StrTest {
                    op,
                    operand: operand?,
                    arg,
                    negated: *negated,
                })
            }
            ExprKind::Call { name, args } => {
                if let Some(rel) = relation_named(&name.text) {
                    return self.relation(rel, name, args, e.range);
                }
                if name.text == "count" {
                    self.err(
                        Diagnostic::new(Code::E205, e.range, "`count(...)` needs a comparison")
                            .with_help(
                                "compare the count in a block rule: `always { count(retry) < 3 }`",
                            ),
                    );
                    return None;
                }
                self.operand(e, Side::Left).map(Pred::Truthy)
            }
            ExprKind::Postfix { base, suffixes } if is_ident(base, "trace") => {
                if !top {
                    self.err(trace_in_span_predicate(e.range));
                    return None;
                }
                match suffixes.as_slice() {
                    [Suffix::Method { name, args, .. }]
                        if name.text == "has" || name.text == "all" =>
                    {
                        let p = self.trace_pred_arg(name, args, e.range)?;
                        Some(Pred::Trace(Box::new(if name.text == "has" {
                            TraceTerm::Has(p)
                        } else {
                            TraceTerm::All(p)
                        })))
                    }
                    [Suffix::Method { name, .. }] if name.text == "count" => {
                        self.err(
                            Diagnostic::new(
                                Code::E205,
                                e.range,
                                "`trace.count(...)` needs a comparison",
                            )
                            .with_help("compare it: `trace.count(span.status == error) >= 2`"),
                        );
                        None
                    }
                    _ => {
                        self.trace_field_or_error(e, suffixes);
                        None
                    }
                }
            }
            ExprKind::Postfix { suffixes, .. }
                if suffixes.iter().any(|s| matches!(s, Suffix::Method { .. })) =>
            {
                let m = suffixes.iter().find_map(|s| match s {
                    Suffix::Method { name, .. } => Some(name),
                    _ => None,
                });
                let (range, text) = m
                    .map(|n| (n.range, n.text.clone()))
                    .unwrap_or((e.range, String::new()));
                self.err(
                    Diagnostic::new(
                        Code::E308,
                        range,
                        format!("`.{text}(...)` is not available on a value inside a span predicate"),
                    )
                    .with_help("inside `where(...)`, test the current span directly, e.g. `has_child(fraud_check)`"),
                );
                None
            }
            _ => self.operand(e, Side::Left).map(Pred::Truthy),
        }
    }

    /// Turns a string literal compared with `span.status`/`span.kind` into the typed member
    /// (DSL.md §7.10); E303 for an unknown member.
    fn resolve_enum(
        &mut self,
        typed: &Operand,
        other: &mut Operand,
        range: TextRange,
    ) -> Option<()> {
        let members = match operand_ty(typed) {
            Ty::Status => STATUS_MEMBERS,
            Ty::Kind => KIND_MEMBERS,
            _ => return Some(()),
        };
        if let Operand::Literal(Literal::Str(s)) = other {
            let lower = s.to_ascii_lowercase();
            match members.iter().position(|m| *m == lower) {
                Some(i) => {
                    *other = Operand::Literal(if operand_ty(typed) == Ty::Status {
                        Literal::Status(i as u8)
                    } else {
                        Literal::Kind(i as u8)
                    });
                }
                None => {
                    let what = if operand_ty(typed) == Ty::Status {
                        "span.status"
                    } else {
                        "span.kind"
                    };
                    self.err(
                        Diagnostic::new(
                            Code::E303,
                            range,
                            format!("`{s}` is not a member of `{what}`"),
                        )
                        .with_help(format!("`{what}` is one of {}", members.join(", "))),
                    );
                    return None;
                }
            }
        }
        Some(())
    }

    fn types_ok(&mut self, op: CmpOp, lt: Ty, rt: Ty, lr: TextRange, rr: TextRange) -> bool {
        let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        if ordering && (lt == Ty::Bool || rt == Ty::Bool || lt.is_enum() || rt.is_enum()) {
            let (bad, range) = if lt == Ty::Bool || lt.is_enum() {
                (lt, lr)
            } else {
                (rt, rr)
            };
            self.err(
                Diagnostic::new(
                    Code::E304,
                    range,
                    format!("`{}` cannot order {}", op.as_str(), bad.describe()),
                )
                .with_help("bools and enum members compare only with `==` and `!=`"),
            );
            return false;
        }
        if never_equal(lt, rt) {
            self.err(type_mismatch(lt, rt, lr, rr));
            return false;
        }
        true
    }

    fn list_item(&mut self, item: &Expr, lhs_ty: Ty) -> Option<Literal> {
        let lit = match &item.kind {
            ExprKind::Ident(s) | ExprKind::Str(s) | ExprKind::Raw(s) => {
                Literal::Str(s.as_str().into())
            }
            ExprKind::Number(n) => self.number(n, item.range)?,
            ExprKind::Bool(b) => Literal::Bool(*b),
            ExprKind::Null => Literal::Null,
            ExprKind::List(items) => self.list_literal(items)?,
            _ => {
                self.err(
                    Diagnostic::new(Code::E308, item.range, "list items must be literal values")
                        .with_help("write strings, numbers, durations, `true`, `false` or `null`"),
                );
                return None;
            }
        };
        if lhs_ty.is_enum() {
            let typed = Operand::Intrinsic(if lhs_ty == Ty::Status {
                Intrinsic::Status
            } else {
                Intrinsic::Kind
            });
            let mut o = Operand::Literal(lit);
            self.resolve_enum(&typed, &mut o, item.range)?;
            if let Operand::Literal(l) = o {
                return Some(l);
            }
            return None;
        }
        Some(lit)
    }

    /// A list as a value (DSL.md §2 `list`): its items are values, lists included; a bare
    /// name in it is a string, as in `in` lists.
    fn list_literal(&mut self, items: &[Expr]) -> Option<Literal> {
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match self.list_item(item, Ty::Dynamic) {
                Some(l) => out.push(l),
                None => ok = false,
            }
        }
        ok.then(|| Literal::List(out.into()))
    }

    fn str_op_arg(&mut self, op: StrKw, rhs: &Expr) -> Option<(StrOp, Operand)> {
        let arg = self.operand(rhs, Side::Right)?;
        let op = match op {
            StrKw::Contains => StrOp::Contains,
            StrKw::StartsWith => StrOp::StartsWith,
            StrKw::EndsWith => StrOp::EndsWith,
            StrKw::Matches => {
                let Operand::Literal(Literal::Str(pattern)) = &arg else {
                    self.err(
                        Diagnostic::new(
                            Code::E308,
                            rhs.range,
                            "the pattern of `matches` must be a string literal",
                        )
                        .with_help(
                            "write the regular expression as a raw string: `path matches `^/api/``",
                        ),
                    );
                    return None;
                };
                StrOp::Matches(self.regex(pattern, rhs.range)?)
            }
        };
        Some((op, arg))
    }

    fn regex(&mut self, pattern: &str, range: TextRange) -> Option<RegexId> {
        match regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
        {
            Ok(re) => {
                let id = RegexId(self.regexes.len() as u32);
                self.regexes.push(re);
                Some(id)
            }
            Err(e) => {
                let detail = e.to_string();
                let last = detail
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("error:"))
                    .map(|l| l.trim_start_matches("error:").trim().to_string())
                    .unwrap_or_else(|| detail.lines().last().unwrap_or("").trim().to_string());
                self.err(
                    Diagnostic::new(
                        Code::E305,
                        range,
                        format!("invalid regular expression: {last}"),
                    )
                    .with_help("patterns use RE2 syntax (the `regex` crate); write them as raw strings to avoid escaping"),
                );
                None
            }
        }
    }

    fn number(&mut self, n: &ast::Number, range: TextRange) -> Option<Literal> {
        match n.value {
            NumberValue::Int(m) => self.int_value(n, m, range).map(Literal::Int),
            NumberValue::Float(f) => Some(Literal::Float(if n.negative { -f } else { f })),
            NumberValue::Duration(m) => match n.as_i64(m) {
                Some(v) => Some(Literal::Duration(v)),
                None => {
                    self.err(
                        Diagnostic::new(Code::E103, range, "duration out of range")
                            .with_help("durations must fit a signed 64-bit count of nanoseconds"),
                    );
                    None
                }
            },
        }
    }

    fn int_value(&mut self, n: &ast::Number, m: u64, range: TextRange) -> Option<i64> {
        match n.as_i64(m) {
            Some(v) => Some(v),
            None => {
                self.err(
                    Diagnostic::new(Code::E103, range, "integer out of range").with_help(
                        "integers must fit a signed 64-bit value (-9223372036854775808 to 9223372036854775807)",
                    ),
                );
                None
            }
        }
    }

    fn attribute(&mut self, key: &str, scope: AttrScope) -> Operand {
        Operand::Attribute {
            key: self.symbols.intern_attribute_key(key),
            scope,
        }
    }

    /// A value operand of a span predicate.
    fn operand(&mut self, e: &Expr, side: Side) -> Option<Operand> {
        match &e.kind {
            ExprKind::Error => None,
            ExprKind::Paren(inner) => self.operand(inner, side),
            ExprKind::Ident(name) => Some(match side {
                Side::Left => self.attribute(name, AttrScope::SpanThenResource),
                Side::Right => Operand::Literal(Literal::Str(name.as_str().into())),
            }),
            ExprKind::Str(s) => Some(match side {
                Side::Left => self.attribute(s, AttrScope::SpanThenResource),
                Side::Right => Operand::Literal(Literal::Str(s.as_str().into())),
            }),
            ExprKind::Raw(s) => Some(Operand::Literal(Literal::Str(s.as_str().into()))),
            ExprKind::Number(n) => self.number(n, e.range).map(Operand::Literal),
            ExprKind::Bool(b) => Some(Operand::Literal(Literal::Bool(*b))),
            ExprKind::Null => Some(Operand::Literal(Literal::Null)),
            ExprKind::Len(inner) => self
                .operand(inner, Side::Left)
                .map(|o| Operand::Len(Box::new(o))),
            ExprKind::Call { name, args } => self.operand_call(e, name, args),
            ExprKind::Postfix { base, suffixes } => self.operand_postfix(e, base, suffixes, side),
            ExprKind::List(items) => self.list_literal(items).map(Operand::Literal),
            ExprKind::Star => {
                self.err(
                    Diagnostic::new(Code::E201, e.range, "unexpected `*`")
                        .with_help("`*` selects every span; it is not a value"),
                );
                None
            }
            ExprKind::Or(_)
            | ExprKind::And(_)
            | ExprKind::Not(_)
            | ExprKind::Compare { .. }
            | ExprKind::In { .. }
            | ExprKind::StrTest { .. } => {
                self.err(
                    Diagnostic::new(
                        Code::E201,
                        e.range,
                        "a condition cannot be used as a value here",
                    )
                    .with_help("compare values, then combine the comparisons with `and`/`or`"),
                );
                None
            }
        }
    }

    fn operand_call(&mut self, e: &Expr, name: &Name, args: &[Arg]) -> Option<Operand> {
        if name.text == "count" {
            self.err(count_in_predicate(name.range, false));
            return None;
        }
        if name.text == "exists" {
            let attr = match args {
                [Arg::Expr(a)] => self.attribute_ref(a),
                _ => None,
            };
            return match attr {
                Some((key, scope)) => Some(Operand::Exists {
                    key: self.symbols.intern_attribute_key(&key),
                    scope,
                }),
                None => {
                    self.err(
                        Diagnostic::new(Code::E308, e.range, "`exists` takes one attribute")
                            .with_help("write `exists(coupon)`, `exists(\"http.status_code\")` or `exists(span.attributes[\"k\"])`"),
                    );
                    None
                }
            };
        }
        if relation_named(&name.text).is_some() {
            self.err(
                Diagnostic::new(
                    Code::E308,
                    e.range,
                    format!("`{}` is a test, not a value", name.text),
                )
                .with_help(format!(
                    "use it as a condition: `{}(...)` or `not {}(...)`",
                    name.text, name.text
                )),
            );
            return None;
        }
        self.err(unknown_function(name));
        None
    }

    /// An attribute reference for `exists(...)`: bare or dotted name, quoted name,
    /// `span.attributes["k"]`, `resource.attributes["k"]`.
    fn attribute_ref(&mut self, e: &Expr) -> Option<(String, AttrScope)> {
        match &e.kind {
            ExprKind::Paren(inner) => self.attribute_ref(inner),
            ExprKind::Ident(s) | ExprKind::Str(s) => Some((s.clone(), AttrScope::SpanThenResource)),
            ExprKind::Postfix { base, suffixes } => {
                let first = base_ident(e)?;
                match (first, suffixes.as_slice()) {
                    ("span" | "resource", [Suffix::Field(f), Suffix::Index(i)])
                        if f.text == "attributes" =>
                    {
                        let ExprKind::Str(k) = &i.kind else {
                            return None;
                        };
                        let scope = if first == "span" {
                            AttrScope::Span
                        } else {
                            AttrScope::Resource
                        };
                        Some((k.clone(), scope))
                    }
                    ("span" | "trace", _) => None,
                    _ => {
                        let segs = dotted(e)?;
                        let mut key = first.to_string();
                        for s in segs {
                            key.push('.');
                            key.push_str(&s.text);
                        }
                        let _ = base;
                        Some((key, AttrScope::SpanThenResource))
                    }
                }
            }
            _ => None,
        }
    }

    fn operand_postfix(
        &mut self,
        e: &Expr,
        base: &Expr,
        suffixes: &[Suffix],
        side: Side,
    ) -> Option<Operand> {
        // Split off trailing `:fn(...)` calls; what precedes them is the receiver.
        let first_colon = suffixes
            .iter()
            .position(|s| matches!(s, Suffix::Colon { .. }));
        let (head, calls) = match first_colon {
            Some(i) => suffixes.split_at(i),
            None => (suffixes, &[][..]),
        };
        let mut operand = if head.is_empty() {
            self.operand(base, Side::Left)?
        } else {
            self.path_operand(e, base, head, side)?
        };
        for call in calls {
            let Suffix::Colon { name, args, range } = call else {
                self.err(
                    Diagnostic::new(Code::E201, e.range, "unexpected suffix after a `:` call")
                        .with_help("`:` calls come last: `name:lower():starts_with(\"a\")`"),
                );
                return None;
            };
            operand = self.colon_call(operand, name, args, range.0)?;
        }
        Some(operand)
    }

    fn colon_call(
        &mut self,
        receiver: Operand,
        name: &Name,
        args: &[Arg],
        range: TextRange,
    ) -> Option<Operand> {
        let arity_err = |c: &mut Self, n: usize| {
            c.err(
                Diagnostic::new(
                    Code::E308,
                    range,
                    format!(
                        "`{}` takes {}",
                        name.text,
                        if n == 0 {
                            "no argument".to_string()
                        } else {
                            "one argument".to_string()
                        }
                    ),
                )
                .with_help(if n == 0 {
                    format!("write `x:{}()`", name.text)
                } else {
                    format!("write `x:{}(\"text\")`", name.text)
                }),
            );
        };
        match name.text.as_str() {
            "len" | "lower" | "upper" => {
                if !args.is_empty() {
                    arity_err(self, 0);
                    return None;
                }
                let r = Box::new(receiver);
                Some(match name.text.as_str() {
                    "len" => Operand::Len(r),
                    "lower" => Operand::Lower(r),
                    _ => Operand::Upper(r),
                })
            }
            "contains" | "starts_with" | "ends_with" | "matches" => {
                let [Arg::Expr(a)] = args else {
                    arity_err(self, 1);
                    return None;
                };
                let kw = match name.text.as_str() {
                    "contains" => StrKw::Contains,
                    "starts_with" => StrKw::StartsWith,
                    "ends_with" => StrKw::EndsWith,
                    _ => StrKw::Matches,
                };
                let (op, arg) = self.str_op_arg(kw, a)?;
                Some(Operand::StrCall {
                    op,
                    operand: Box::new(receiver),
                    arg: Box::new(arg),
                })
            }
            _ => {
                let mut d = Diagnostic::new(
                    Code::E308,
                    name.range,
                    format!("unknown function `{}`", name.text),
                );
                d = d.with_help(
                    suggest(
                        &name.text,
                        &["contains", "starts_with", "ends_with", "matches", "len", "lower", "upper"],
                    )
                    .unwrap_or_else(|| {
                        "the `:` functions are contains, starts_with, ends_with, matches, len, lower, upper".to_string()
                    }),
                );
                self.err(d);
                None
            }
        }
    }

    /// `span.x`, `span.attributes["k"]`, `resource.attributes["k"]`, or a dotted attribute.
    fn path_operand(
        &mut self,
        e: &Expr,
        base: &Expr,
        head: &[Suffix],
        side: Side,
    ) -> Option<Operand> {
        let first = match &base.kind {
            ExprKind::Ident(s) => s.as_str(),
            _ => {
                if let [Suffix::Index(_), ..] | [Suffix::Field(_), ..] = head {
                    self.err(
                        Diagnostic::new(Code::E201, e.range, "unexpected suffix")
                            .with_help("attributes are named `amount`, `http.method`, `\"http.method\"` or `span.attributes[\"http.method\"]`"),
                    );
                }
                return None;
            }
        };
        let _ = side;
        // Only `resource.attributes["…"]` is special (DSL.md §2 `attribute`); any other
        // `resource.…` path is an ordinary dotted attribute name.
        let resource_index = first == "resource"
            && matches!(head, [Suffix::Field(f), Suffix::Index(_)] if f.text == "attributes");
        match first {
            "span" | "resource" if first == "span" || resource_index => {
                if let [Suffix::Field(f), Suffix::Index(i)] = head
                    && f.text == "attributes"
                {
                    let ExprKind::Str(k) = &i.kind else {
                        self.err(
                            Diagnostic::new(
                                Code::E308,
                                i.range,
                                "attribute keys are written as strings",
                            )
                            .with_help(format!("write `{first}.attributes[\"http.method\"]`")),
                        );
                        return None;
                    };
                    let scope = if first == "span" {
                        AttrScope::Span
                    } else {
                        AttrScope::Resource
                    };
                    return Some(self.attribute(k, scope));
                }
                if first == "span"
                    && let [Suffix::Field(f)] = head
                {
                    if let Some(i) = intrinsic_named(&f.text) {
                        return Some(Operand::Intrinsic(i));
                    }
                    let mut d = Diagnostic::new(
                        Code::E306,
                        f.range,
                        format!("unknown field `span.{}`", f.text),
                    );
                    d = d.with_help(
                        suggest(&f.text, SPAN_FIELDS)
                            .unwrap_or_else(|| format!("`span.` has {}", SPAN_FIELDS.join(", "))),
                    );
                    self.err(d);
                    return None;
                }
                let what = head.first().and_then(|s| match s {
                    Suffix::Field(f) => Some(f),
                    _ => None,
                });
                let mut d = Diagnostic::new(
                    Code::E306,
                    what.map(|f| f.range).unwrap_or(e.range),
                    format!(
                        "unknown field `{first}.{}`",
                        what.map(|f| f.text.as_str()).unwrap_or("")
                    ),
                );
                d = d.with_help(
                    suggest(what.map(|f| f.text.as_str()).unwrap_or(""), SPAN_FIELDS)
                        .unwrap_or_else(|| format!("`span.` has {}", SPAN_FIELDS.join(", "))),
                );
                self.err(d);
                None
            }
            "trace" => {
                self.err(trace_in_span_predicate(e.range));
                None
            }
            _ => {
                let segs: Option<Vec<&Name>> = head
                    .iter()
                    .map(|s| match s {
                        Suffix::Field(n) => Some(n),
                        _ => None,
                    })
                    .collect();
                let Some(segs) = segs else {
                    self.err(
                        Diagnostic::new(Code::E201, e.range, "unexpected suffix on an attribute")
                            .with_help("attributes are named `amount`, `http.method`, `\"http.method\"` or `span.attributes[\"http.method\"]`"),
                    );
                    return None;
                };
                let mut key = first.to_string();
                for s in segs {
                    key.push('.');
                    key.push_str(&s.text);
                }
                Some(self.attribute(&key, AttrScope::SpanThenResource))
            }
        }
    }
}

fn is_ident(e: &Expr, name: &str) -> bool {
    matches!(&e.kind, ExprKind::Ident(s) if s == name)
}

/// True when the predicate reads the current span outside any `trace.*` term.
fn reads_span(p: &Pred) -> bool {
    fn operand_reads(o: &Operand) -> bool {
        match o {
            Operand::Literal(_) => false,
            Operand::Len(i) | Operand::Lower(i) | Operand::Upper(i) => operand_reads(i),
            Operand::StrCall { operand, arg, .. } => operand_reads(operand) || operand_reads(arg),
            Operand::Attribute { .. } | Operand::Intrinsic(_) | Operand::Exists { .. } => true,
        }
    }
    match p {
        Pred::And(v) | Pred::Or(v) => v.iter().any(reads_span),
        Pred::Not(i) => reads_span(i),
        Pred::Compare { lhs, rhs, .. } => operand_reads(lhs) || operand_reads(rhs),
        Pred::In { operand, .. } | Pred::Truthy(operand) => operand_reads(operand),
        Pred::StrTest { operand, arg, .. } => operand_reads(operand) || operand_reads(arg),
        Pred::Relation { .. } => true,
        Pred::Trace(_) => false,
    }
}

/// `count(...)` is a trace-level term (DSL.md §2 `term`); a span predicate has no production
/// for it, so it is a syntax error there, at the top of the expression form too.
fn count_in_predicate(range: TextRange, top: bool) -> Diagnostic {
    Diagnostic::new(
        Code::E201,
        range,
        "unexpected `count`: `count(...)` is a term of block clauses, not of a span predicate",
    )
    .with_help(if top {
        "use `trace.count(span.name == \"retry\") > 2`, or a block rule: `always { count(retry) < 3 }`"
    } else {
        "use a block rule: `always { count(retry) < 3 }`"
    })
}

fn span_at_trace_level(range: TextRange) -> Diagnostic {
    Diagnostic::new(
        Code::E309,
        range,
        "`span.` reads the current span, and there is none at the trace level",
    )
    .with_help("use `*.where(…)`")
}

fn trace_in_span_predicate(range: TextRange) -> Diagnostic {
    Diagnostic::new(
        Code::E309,
        range,
        "`trace.` terms are not available inside a span predicate",
    )
    .with_help("move the `trace.` term to the clause: `when { trace.span_count > 3 and payment }`")
}

fn expected_selection(range: TextRange) -> Diagnostic {
    Diagnostic::new(Code::E205, range, "expected a span selection")
        .with_help("a selection is a span name (`payment`, `db.query`, `\"GET /api\"`) or `*`, optionally followed by `.where(...)`")
}

fn count_rhs_error(range: TextRange) -> Diagnostic {
    Diagnostic::new(
        Code::E308,
        range,
        "a count is compared with a number or another `count(...)`",
    )
    .with_help("write `count(retry) < 3` or `count(request) == count(response)`")
}

fn unknown_function(name: &Name) -> Diagnostic {
    Diagnostic::new(
        Code::E308,
        name.range,
        format!("unknown function `{}`", name.text),
    )
    .with_help(
        suggest(
            &name.text,
            &[
                "count",
                "exists",
                "has_child",
                "has_parent",
                "has_descendant",
                "has_ancestor",
                "followed_by",
                "preceded_by",
            ],
        )
        .unwrap_or_else(|| {
            "the functions are count, exists and the relations has_child, has_parent, has_descendant, has_ancestor, followed_by, preceded_by; string functions are called as `x:lower()`".to_string()
        }),
    )
}

fn type_mismatch(lt: Ty, rt: Ty, lr: TextRange, rr: TextRange) -> Diagnostic {
    Diagnostic::new(
        Code::E302,
        rr,
        format!("{} can never equal {}", lt.describe(), rt.describe()),
    )
    .with_secondary(lr, lt.describe())
    .with_help(match (lt, rt) {
        (Ty::Duration, _) | (_, Ty::Duration) => "write durations with a unit: `500ms`, `1.5s`",
        _ => "compare values of the same type",
    })
}
