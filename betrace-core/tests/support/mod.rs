//! Test helpers: terse builders for checked IR and spans, and the runner that evaluates a
//! rule with the VM and with the reference evaluator.

#![allow(dead_code)]

use std::sync::Arc;

use betrace_core::{
    AttrValue, EvalError, EvalOptions, FailedClause, Outcome, PreparedTrace, Resource, Span,
    SpanId, SpanKind, StatusCode, Trace, TraceId,
};
use betrace_dsl::ir::{
    AttrScope, Body, CmpOp, Cond, CountRhs, Intrinsic, Literal, Operand, Pred, Relation, Rule,
    Selection, StrOp, Symbols, Target, TraceField, TraceTerm,
};
use regex::Regex;

use betrace_testing::reference;

// ---- IR

/// Interns names and keys and collects regexes while a rule is built by hand.
#[derive(Default)]
pub struct Ir {
    pub sy: Symbols,
    pub regexes: Vec<Regex>,
}

impl Ir {
    pub fn new() -> Ir {
        Ir::default()
    }

    /// A selection; `"*"` selects every span.
    pub fn sel(&mut self, name: &str, filters: Vec<Pred>) -> Selection {
        let target = if name == "*" {
            Target::Any
        } else {
            Target::Name(self.sy.intern_span_name(name))
        };
        Selection { target, filters }
    }

    /// `name.where(f1).where(f2)…` as a term.
    pub fn ex(&mut self, name: &str, filters: Vec<Pred>) -> Cond {
        Cond::Exists(self.sel(name, filters))
    }

    /// Bare attribute (span, then resource).
    pub fn attr(&mut self, key: &str) -> Operand {
        Operand::Attribute {
            key: self.sy.intern_attribute_key(key),
            scope: AttrScope::SpanThenResource,
        }
    }

    pub fn span_attr(&mut self, key: &str) -> Operand {
        Operand::Attribute {
            key: self.sy.intern_attribute_key(key),
            scope: AttrScope::Span,
        }
    }

    pub fn res_attr(&mut self, key: &str) -> Operand {
        Operand::Attribute {
            key: self.sy.intern_attribute_key(key),
            scope: AttrScope::Resource,
        }
    }

    /// `exists(key)`.
    pub fn exists(&mut self, key: &str) -> Operand {
        Operand::Exists {
            key: self.sy.intern_attribute_key(key),
            scope: AttrScope::SpanThenResource,
        }
    }

    /// `matches` with a compiled pattern.
    pub fn re(&mut self, pattern: &str) -> StrOp {
        self.regexes.push(Regex::new(pattern).expect("test regex"));
        StrOp::Matches(betrace_dsl::ir::RegexId(self.regexes.len() as u32 - 1))
    }

    /// `operand matches pattern` / `operand !~ pattern`.
    pub fn matches(&mut self, operand: Operand, pattern: &str, negated: bool) -> Pred {
        let op = self.re(pattern);
        Pred::StrTest {
            op,
            operand,
            arg: s(pattern),
            negated,
        }
    }

    /// A relation test.
    pub fn rel(
        &mut self,
        relation: Relation,
        name: &str,
        filters: Vec<Pred>,
        within: Option<i64>,
    ) -> Pred {
        Pred::Relation {
            relation,
            target: self.sel(name, filters),
            within,
        }
    }

    pub fn rule(self, body: Body) -> (Rule, Symbols) {
        (
            Rule {
                body,
                regexes: self.regexes,
            },
            self.sy,
        )
    }
}

pub fn lit(l: Literal) -> Operand {
    Operand::Literal(l)
}
pub fn int(i: i64) -> Operand {
    lit(Literal::Int(i))
}
pub fn fl(f: f64) -> Operand {
    lit(Literal::Float(f))
}
pub fn s(x: &str) -> Operand {
    lit(Literal::Str(x.into()))
}
pub fn bool_(b: bool) -> Operand {
    lit(Literal::Bool(b))
}
pub fn dur(ns: i64) -> Operand {
    lit(Literal::Duration(ns))
}
pub fn null() -> Operand {
    lit(Literal::Null)
}
pub fn status(n: u8) -> Operand {
    lit(Literal::Status(n))
}
pub fn kind(n: u8) -> Operand {
    lit(Literal::Kind(n))
}
pub fn intr(i: Intrinsic) -> Operand {
    Operand::Intrinsic(i)
}

pub fn cmp(lhs: Operand, op: CmpOp, rhs: Operand) -> Pred {
    Pred::Compare { lhs, op, rhs }
}
pub fn eq(lhs: Operand, rhs: Operand) -> Pred {
    cmp(lhs, CmpOp::Eq, rhs)
}
pub fn ne(lhs: Operand, rhs: Operand) -> Pred {
    cmp(lhs, CmpOp::Ne, rhs)
}
pub fn gt(lhs: Operand, rhs: Operand) -> Pred {
    cmp(lhs, CmpOp::Gt, rhs)
}
pub fn ge(lhs: Operand, rhs: Operand) -> Pred {
    cmp(lhs, CmpOp::Ge, rhs)
}
pub fn lt(lhs: Operand, rhs: Operand) -> Pred {
    cmp(lhs, CmpOp::Lt, rhs)
}
pub fn le(lhs: Operand, rhs: Operand) -> Pred {
    cmp(lhs, CmpOp::Le, rhs)
}
pub fn and(ps: Vec<Pred>) -> Pred {
    Pred::And(ps)
}
pub fn or(ps: Vec<Pred>) -> Pred {
    Pred::Or(ps)
}
pub fn not(p: Pred) -> Pred {
    Pred::Not(Box::new(p))
}
pub fn truthy(o: Operand) -> Pred {
    Pred::Truthy(o)
}
pub fn in_(o: Operand, list: Vec<Literal>) -> Pred {
    Pred::In {
        operand: o,
        list,
        negated: false,
    }
}
pub fn not_in(o: Operand, list: Vec<Literal>) -> Pred {
    Pred::In {
        operand: o,
        list,
        negated: true,
    }
}
pub fn str_test(op: StrOp, operand: Operand, arg: Operand, negated: bool) -> Pred {
    Pred::StrTest {
        op,
        operand,
        arg,
        negated,
    }
}
pub fn len(o: Operand) -> Operand {
    Operand::Len(Box::new(o))
}
pub fn lower(o: Operand) -> Operand {
    Operand::Lower(Box::new(o))
}
pub fn upper(o: Operand) -> Operand {
    Operand::Upper(Box::new(o))
}
pub fn call(op: StrOp, operand: Operand, arg: Operand) -> Operand {
    Operand::StrCall {
        op,
        operand: Box::new(operand),
        arg: Box::new(arg),
    }
}

pub fn cand(cs: Vec<Cond>) -> Cond {
    Cond::And(cs)
}
pub fn cor(cs: Vec<Cond>) -> Cond {
    Cond::Or(cs)
}
pub fn cnot(c: Cond) -> Cond {
    Cond::Not(Box::new(c))
}
pub fn count(lhs: Selection, op: CmpOp, n: i64) -> Cond {
    Cond::Count {
        lhs,
        op,
        rhs: CountRhs::Int(n),
    }
}
pub fn count2(lhs: Selection, op: CmpOp, rhs: Selection) -> Cond {
    Cond::Count {
        lhs,
        op,
        rhs: CountRhs::Count(rhs),
    }
}
pub fn t_has(p: Pred) -> TraceTerm {
    TraceTerm::Has(p)
}
pub fn t_all(p: Pred) -> TraceTerm {
    TraceTerm::All(p)
}
pub fn t_count(p: Pred, op: CmpOp, value: i64) -> TraceTerm {
    TraceTerm::Count { pred: p, op, value }
}
pub fn t_field(field: TraceField, op: CmpOp, value: Literal) -> TraceTerm {
    TraceTerm::Field { field, op, value }
}
/// A trace term as a trace-level condition.
pub fn ct(t: TraceTerm) -> Cond {
    Cond::Trace(t)
}
/// A trace term as a predicate (top of the expression form).
pub fn pt(t: TraceTerm) -> Pred {
    Pred::Trace(Box::new(t))
}

pub fn block(when: Option<Cond>, always: Option<Cond>, never: Option<Cond>) -> Body {
    Body::Block {
        when,
        always,
        never,
    }
}

// ---- spans

pub const TRACE: TraceId = TraceId([0x4b; 16]);

/// Span id from a small number (big-endian in the last bytes), so hex order = number order.
pub fn sid(n: u64) -> SpanId {
    SpanId(n.to_be_bytes())
}

/// A span named `name` with id `id`, starting at `id * 1000` ns and lasting 100 ns, no parent,
/// service `svc`, kind internal, status unset.
pub fn span(id: u64, name: &str) -> Span {
    Span {
        trace_id: TRACE,
        span_id: sid(id),
        parent_span_id: None,
        name: name.into(),
        kind: SpanKind::Internal,
        start_time_unix_nano: id * 1000,
        end_time_unix_nano: id * 1000 + 100,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        attributes: Vec::new(),
        resource: Arc::new(Resource::with_service("svc")),
        scope_name: "".into(),
    }
}

pub trait SpanExt {
    fn parent(self, p: u64) -> Span;
    fn at(self, start: u64, end: u64) -> Span;
    fn attr(self, key: &str, v: AttrValue) -> Span;
    fn res(self, key: &str, v: AttrValue) -> Span;
    fn status(self, s: StatusCode, message: &str) -> Span;
    fn kind(self, k: SpanKind) -> Span;
    fn service(self, name: &str) -> Span;
}

impl SpanExt for Span {
    fn parent(mut self, p: u64) -> Span {
        self.parent_span_id = Some(sid(p));
        self
    }
    fn at(mut self, start: u64, end: u64) -> Span {
        self.start_time_unix_nano = start;
        self.end_time_unix_nano = end;
        self
    }
    fn attr(mut self, key: &str, v: AttrValue) -> Span {
        self.attributes.push((key.into(), v));
        self
    }
    fn res(mut self, key: &str, v: AttrValue) -> Span {
        Arc::make_mut(&mut self.resource)
            .attributes
            .push((key.into(), v));
        self
    }
    fn status(mut self, s: StatusCode, message: &str) -> Span {
        self.status_code = s;
        self.status_message = message.into();
        self
    }
    fn kind(mut self, k: SpanKind) -> Span {
        self.kind = k;
        self
    }
    fn service(mut self, name: &str) -> Span {
        let res = Arc::make_mut(&mut self.resource);
        res.attributes.retain(|(k, _)| &**k != "service.name");
        res.attributes
            .push(("service.name".into(), AttrValue::Str(name.into())));
        self
    }
}

pub fn vs(x: &str) -> AttrValue {
    AttrValue::Str(x.into())
}
pub fn vi(x: i64) -> AttrValue {
    AttrValue::Int(x)
}
pub fn vf(x: f64) -> AttrValue {
    AttrValue::Float(x)
}
pub fn vb(x: bool) -> AttrValue {
    AttrValue::Bool(x)
}
pub fn va(x: Vec<AttrValue>) -> AttrValue {
    AttrValue::Array(x.into())
}

// ---- running

/// Result with span lists as span ids (numbers), for readable expectations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    pub violated: bool,
    pub failed_clause: Option<FailedClause>,
    pub trigger: Vec<u64>,
    pub offending: Vec<u64>,
}

pub fn ids(trace: &Trace, o: &Outcome) -> Ids {
    let id = |i: &u32| u64::from_be_bytes(trace.span(*i).span_id.0);
    Ids {
        violated: o.violated,
        failed_clause: o.failed_clause,
        trigger: o.trigger_spans.iter().map(id).collect(),
        offending: o.offending_spans.iter().map(id).collect(),
    }
}

pub fn ok() -> Ids {
    Ids {
        violated: false,
        failed_clause: None,
        trigger: vec![],
        offending: vec![],
    }
}

pub fn fired(clause: FailedClause, trigger: &[u64], offending: &[u64]) -> Ids {
    Ids {
        violated: true,
        failed_clause: Some(clause),
        trigger: trigger.to_vec(),
        offending: offending.to_vec(),
    }
}

/// Evaluates with the VM (default options).
pub fn run_vm(rule: &Rule, sy: &Symbols, trace: &Trace) -> Result<Outcome, EvalError> {
    run_vm_with(rule, sy, trace, &EvalOptions::default())
}

pub fn run_vm_with(
    rule: &Rule,
    sy: &Symbols,
    trace: &Trace,
    options: &EvalOptions,
) -> Result<Outcome, EvalError> {
    let program = betrace_dsl::lower::lower(rule.clone());
    let prepared = PreparedTrace::new(trace, sy);
    betrace_core::evaluate(&program, &prepared, options)
}

/// Runs VM and reference, requires both to agree, and returns the shared outcome.
pub fn run_both(rule: &Rule, sy: &Symbols, trace: &Trace) -> Outcome {
    let vm = run_vm(rule, sy, trace).expect("VM evaluation");
    let reference = reference::evaluate(rule, trace, sy);
    assert_eq!(vm, reference, "VM and reference disagree");
    vm
}

/// Builds the trace, runs both evaluators and compares with `expect`.
pub fn check(ir: Ir, body: Body, spans: Vec<Span>, expect: Ids) {
    let (rule, sy) = ir.rule(body);
    let trace = Trace::new(spans);
    let got = run_both(&rule, &sy, &trace);
    assert_eq!(ids(&trace, &got), expect);
}
