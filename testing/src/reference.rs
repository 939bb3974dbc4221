//! Reference tree-walking evaluator over the checked IR (ENGINE.md §4).
//!
//! In: a checked [`Rule`], a [`Trace`] and the [`Symbols`] the rule was compiled against.
//! Out: the same [`Outcome`] the VM produces. It is written to be obviously correct rather
//! than fast: it recurses over the IR, finds spans and attributes by comparing strings on the
//! raw trace (not through `PreparedTrace`), walks parent links with visited sets, and computes
//! witnesses straight from their definition (DSL.md §3.6, §7.1). It shares only the value
//! semantics (`betrace_core::value`) with the VM.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use betrace_core::value::{self, Value};
use betrace_core::{AttrValue, FailedClause, Outcome, Span, SpanIndex, Trace};
use betrace_dsl::ir::Symbols;
use betrace_dsl::ir::{
    AttrScope, Body, Cond, CountRhs, Intrinsic, KeyId, Operand, Pred, Relation, Rule, Selection,
    StrOp, Target, TraceField, TraceTerm,
};

/// Evaluates `rule` against `trace`.
pub fn evaluate(rule: &Rule, trace: &Trace, symbols: &Symbols) -> Outcome {
    let r = Walker {
        rule,
        trace,
        symbols,
    };
    match &rule.body {
        Body::Block {
            when,
            always,
            never,
        } => {
            let w = when.as_ref().is_none_or(|c| r.cond(c));
            let a = always.as_ref().is_none_or(|c| r.cond(c));
            let n = never.as_ref().is_some_and(|c| r.cond(c));
            if !w || (a && !n) {
                return Outcome::default();
            }
            let failed = if !a {
                FailedClause::Always
            } else {
                FailedClause::Never
            };
            Outcome {
                violated: true,
                failed_clause: Some(failed),
                trigger_spans: when
                    .as_ref()
                    .map(|c| r.witnesses(c, true).into_iter().collect())
                    .unwrap_or_default(),
                offending_spans: never
                    .as_ref()
                    .map(|c| r.witnesses(c, true).into_iter().collect())
                    .unwrap_or_default(),
            }
        }
        Body::SpanScoped(p) => {
            let hits: Vec<SpanIndex> = r.indices().filter(|&i| r.pred(p, Some(i))).collect();
            if hits.is_empty() {
                return Outcome::default();
            }
            Outcome {
                violated: true,
                failed_clause: Some(FailedClause::Expression),
                trigger_spans: hits,
                offending_spans: Vec::new(),
            }
        }
        Body::TraceScoped(p) => {
            if !r.pred(p, None) {
                return Outcome::default();
            }
            Outcome {
                violated: true,
                failed_clause: Some(FailedClause::Expression),
                trigger_spans: r.pred_witnesses(p, true).into_iter().collect(),
                offending_spans: Vec::new(),
            }
        }
    }
}

struct Walker<'a> {
    rule: &'a Rule,
    trace: &'a Trace,
    symbols: &'a Symbols,
}

impl<'a> Walker<'a> {
    fn indices(&self) -> impl Iterator<Item = SpanIndex> + 'a {
        0..self.trace.len() as SpanIndex
    }

    fn span(&self, i: SpanIndex) -> &'a Span {
        &self.trace.spans()[i as usize]
    }

    // ---- trace level

    fn cond(&self, c: &'a Cond) -> bool {
        match c {
            Cond::And(cs) => cs.iter().all(|c| self.cond(c)),
            Cond::Or(cs) => cs.iter().any(|c| self.cond(c)),
            Cond::Not(c) => !self.cond(c),
            Cond::Exists(sel) => !self.select(sel).is_empty(),
            Cond::Count { lhs, op, rhs } => {
                let l = self.select(lhs).len() as i64;
                let r = match rhs {
                    CountRhs::Int(v) => *v,
                    CountRhs::Count(sel) => self.select(sel).len() as i64,
                };
                op.holds(l.cmp(&r))
            }
            Cond::Trace(t) => self.trace_term(t),
        }
    }

    fn trace_term(&self, t: &'a TraceTerm) -> bool {
        match t {
            TraceTerm::Has(p) => self.indices().any(|i| self.pred(p, Some(i))),
            TraceTerm::All(p) => self.indices().all(|i| self.pred(p, Some(i))),
            TraceTerm::Count { pred, op, value } => {
                let n = self.indices().filter(|&i| self.pred(pred, Some(i))).count() as i64;
                op.holds(n.cmp(value))
            }
            TraceTerm::Field { field, op, value } => {
                let v = self.field(*field);
                value::compare(&v, *op, &Value::from_literal(value))
            }
        }
    }

    fn field(&self, f: TraceField) -> Value<'a> {
        let trace = self.trace;
        match f {
            TraceField::Id => Value::Str(Cow::Owned(trace.trace_id().to_hex())),
            TraceField::Duration => value::duration_value(trace.duration_nanos()),
            TraceField::SpanCount => Value::Int(trace.len() as i64),
            TraceField::RootName => Value::str(trace.root().map_or("", |s| s.name.as_str())),
            TraceField::RootService => Value::str(trace.root().map_or("", |s| s.service())),
        }
    }

    fn select(&self, sel: &'a Selection) -> Vec<SpanIndex> {
        self.indices().filter(|&i| self.selects(sel, i)).collect()
    }

    fn selects(&self, sel: &'a Selection, i: SpanIndex) -> bool {
        let name_ok = match sel.target {
            Target::Any => true,
            Target::Name(id) => {
                self.symbols.span_names()[id.0 as usize].as_ref() == self.span(i).name
            }
        };
        name_ok && sel.filters.iter().all(|f| self.pred(f, Some(i)))
    }

    // ---- witnesses (DSL.md §7.1), straight from the definition

    /// Witnesses of `c` in the negation normal form of the clause, where `c` appears under an
    /// even (`pos`) or odd number of `not`s: nothing when the NNF node is false; a term
    /// contributes only with even polarity; connectives pass on to their children (a true NNF
    /// conjunction has only true children, a true disjunction's false children give nothing).
    fn witnesses(&self, c: &'a Cond, pos: bool) -> BTreeSet<SpanIndex> {
        if self.cond(c) != pos {
            return BTreeSet::new();
        }
        match c {
            Cond::And(cs) | Cond::Or(cs) => {
                cs.iter().flat_map(|c| self.witnesses(c, pos)).collect()
            }
            Cond::Not(c) => self.witnesses(c, !pos),
            _ if !pos => BTreeSet::new(),
            Cond::Exists(sel) => self.select(sel).into_iter().collect(),
            Cond::Count { lhs, rhs, .. } => {
                let mut s: BTreeSet<SpanIndex> = self.select(lhs).into_iter().collect();
                if let CountRhs::Count(sel) = rhs {
                    s.extend(self.select(sel));
                }
                s
            }
            Cond::Trace(TraceTerm::Has(p)) => {
                self.indices().filter(|&i| self.pred(p, Some(i))).collect()
            }
            Cond::Trace(_) => BTreeSet::new(),
        }
    }

    fn pred_witnesses(&self, p: &'a Pred, pos: bool) -> BTreeSet<SpanIndex> {
        if self.pred(p, None) != pos {
            return BTreeSet::new();
        }
        match p {
            Pred::And(ps) | Pred::Or(ps) => ps
                .iter()
                .flat_map(|p| self.pred_witnesses(p, pos))
                .collect(),
            Pred::Not(p) => self.pred_witnesses(p, !pos),
            Pred::Trace(t) if pos => match t.as_ref() {
                TraceTerm::Has(q) => self.indices().filter(|&i| self.pred(q, Some(i))).collect(),
                _ => BTreeSet::new(),
            },
            _ => BTreeSet::new(),
        }
    }

    // ---- span level

    fn pred(&self, p: &'a Pred, cur: Option<SpanIndex>) -> bool {
        match p {
            Pred::And(ps) => ps.iter().all(|p| self.pred(p, cur)),
            Pred::Or(ps) => ps.iter().any(|p| self.pred(p, cur)),
            Pred::Not(p) => !self.pred(p, cur),
            Pred::Compare { lhs, op, rhs } => {
                value::compare(&self.operand(lhs, cur), *op, &self.operand(rhs, cur))
            }
            Pred::In {
                operand,
                list,
                negated,
            } => {
                let v = self.operand(operand, cur);
                let items = list.iter().map(Value::from_literal);
                if *negated {
                    value::not_in_list(&v, items)
                } else {
                    value::in_list(&v, items)
                }
            }
            Pred::StrTest {
                op,
                operand,
                arg,
                negated,
            } => {
                let v = self.operand(operand, cur);
                let a = self.operand(arg, cur);
                value::string_pred(*op, &v, &a, &self.rule.regexes, *negated)
            }
            Pred::Truthy(o) => value::truthy(&self.operand(o, cur)),
            Pred::Relation {
                relation,
                target,
                within,
            } => cur.is_some_and(|c| self.related(*relation, target, *within, c)),
            Pred::Trace(t) => self.trace_term(t),
        }
    }

    fn related(
        &self,
        rel: Relation,
        target: &'a Selection,
        within: Option<i64>,
        cur: SpanIndex,
    ) -> bool {
        let me = self.span(cur);
        let start_gap_ok = |x: SpanIndex| {
            let d =
                (me.start_time_unix_nano as i128 - self.span(x).start_time_unix_nano as i128).abs();
            within.is_none_or(|w| d <= w as i128)
        };
        let after = |a: &Span, b: &Span| {
            // b starts at or after a ends
            let gap = b.start_time_unix_nano as i128 - a.end_time_unix_nano as i128;
            gap >= 0 && within.is_none_or(|w| gap <= w as i128)
        };
        let candidates: Vec<SpanIndex> = match rel {
            Relation::HasChild => self.trace.children(cur).to_vec(),
            Relation::HasParent => self.trace.parent(cur).into_iter().collect(),
            Relation::HasAncestor => {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                let mut x = cur;
                while let Some(p) = self.trace.parent(x) {
                    if p == cur || !seen.insert(p) {
                        break;
                    }
                    out.push(p);
                    x = p;
                }
                out
            }
            Relation::HasDescendant => {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                let mut stack = vec![cur];
                while let Some(x) = stack.pop() {
                    for &c in self.trace.children(x) {
                        if c != cur && seen.insert(c) {
                            out.push(c);
                            stack.push(c);
                        }
                    }
                }
                out
            }
            Relation::FollowedBy => self
                .indices()
                .filter(|&x| x != cur && after(me, self.span(x)))
                .collect(),
            Relation::PrecededBy => self
                .indices()
                .filter(|&x| x != cur && after(self.span(x), me))
                .collect(),
        };
        candidates.into_iter().any(|x| {
            let gap_ok = match rel {
                Relation::FollowedBy | Relation::PrecededBy => true,
                _ => start_gap_ok(x),
            };
            gap_ok && self.selects(target, x)
        })
    }

    fn key(&self, k: KeyId) -> &'a str {
        &self.symbols.attribute_keys()[k.0 as usize]
    }

    fn attribute(
        &self,
        key: KeyId,
        scope: AttrScope,
        cur: Option<SpanIndex>,
    ) -> Option<&'a AttrValue> {
        let s = self.span(cur?);
        let k = self.key(key);
        let find = |list: &'a [(betrace_core::span::AttrKey, AttrValue)]| {
            list.iter().find(|(n, _)| &**n == k).map(|(_, v)| v)
        };
        match scope {
            AttrScope::Span => find(&s.attributes),
            AttrScope::Resource => find(&s.resource.attributes),
            AttrScope::SpanThenResource => s.attribute(k),
        }
    }

    fn operand(&self, o: &'a Operand, cur: Option<SpanIndex>) -> Value<'a> {
        match o {
            Operand::Literal(l) => Value::from_literal(l),
            Operand::Attribute { key, scope } => {
                Value::from_opt_attr(self.attribute(*key, *scope, cur))
            }
            Operand::Intrinsic(i) => match cur {
                Some(c) => self.intrinsic(*i, c),
                None => Value::Missing,
            },
            Operand::Len(x) => value::len(&self.operand(x, cur)),
            Operand::Lower(x) => value::lower(self.operand(x, cur)),
            Operand::Upper(x) => value::upper(self.operand(x, cur)),
            Operand::Exists { key, scope } => {
                Value::Bool(self.attribute(*key, *scope, cur).is_some())
            }
            Operand::StrCall { op, operand, arg } => {
                let v = self.operand(operand, cur);
                let a = match op {
                    StrOp::Matches(_) => Value::Missing,
                    _ => self.operand(arg, cur),
                };
                Value::Bool(value::string_test(*op, &v, &a, &self.rule.regexes) == Some(true))
            }
        }
    }

    fn intrinsic(&self, i: Intrinsic, cur: SpanIndex) -> Value<'a> {
        let s = self.span(cur);
        match i {
            Intrinsic::Name => Value::str(&s.name),
            Intrinsic::Service => Value::str(s.service()),
            Intrinsic::Status => Value::Status(s.status_code as u8),
            Intrinsic::StatusMessage => Value::str(&s.status_message),
            Intrinsic::Kind => Value::Kind(s.kind as u8),
            Intrinsic::Duration => value::duration_value(s.duration_nanos()),
            Intrinsic::Start => value::time_value(s.start_time_unix_nano),
            Intrinsic::End => value::time_value(s.end_time_unix_nano),
            Intrinsic::Id => Value::Str(Cow::Owned(s.span_id.to_hex())),
            Intrinsic::ParentId => Value::Str(Cow::Owned(
                s.parent_span_id.map(|p| p.to_hex()).unwrap_or_default(),
            )),
            Intrinsic::TraceId => Value::Str(Cow::Owned(s.trace_id.to_hex())),
            Intrinsic::IsRoot => Value::Bool(s.parent_span_id.is_none()),
        }
    }
}
