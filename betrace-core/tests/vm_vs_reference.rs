//! The VM against the reference evaluator: hand-built rules for every construct of the
//! checked IR with known expectations, and property tests over random rules and traces.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod reference;
mod support;

use betrace_core::{
    EvalError, EvalOptions, FailedClause::*, PreparedTrace, SpanKind, StatusCode, Trace,
};
use betrace_dsl::ir::{CmpOp, Intrinsic, Literal, Relation, StrOp, TraceField};
use support::*;

// ---- block form (DSL.md §3.1, §3.6, §7.1, §7.2)

#[test]
fn when_always_fails_names_trigger() {
    let mut ir = Ir::new();
    let w = ir.ex("payment", vec![]);
    let a = ir.ex("fraud_check", vec![]);
    check(
        ir,
        block(Some(w), Some(a), None),
        vec![span(1, "payment"), span(2, "audit"), span(3, "payment")],
        fired(Always, &[1, 3], &[]),
    );
}

#[test]
fn when_false_or_always_holds_conforms() {
    let mut ir = Ir::new();
    let w = ir.ex("payment", vec![]);
    let a = ir.ex("fraud_check", vec![]);
    let body = block(Some(w), Some(a), None);
    let (rule, sy) = ir.rule(body);
    for spans in [
        vec![span(1, "audit")],
        vec![span(1, "payment"), span(2, "fraud_check")],
        vec![],
    ] {
        let trace = Trace::new(spans);
        assert_eq!(ids(&trace, &run_both(&rule, &sy, &trace)), ok());
    }
}

#[test]
fn never_lists_offending() {
    let mut ir = Ir::new();
    let w = ir.ex("payment", vec![]);
    let n = ir.ex("bypass", vec![]);
    check(
        ir,
        block(Some(w), None, Some(n)),
        vec![span(1, "payment"), span(2, "bypass"), span(3, "bypass")],
        fired(Never, &[1], &[2, 3]),
    );
}

#[test]
fn always_failing_wins_and_keeps_never_matches() {
    let mut ir = Ir::new();
    let w = ir.ex("payment", vec![]);
    let a = ir.ex("fraud_check", vec![]);
    let n = ir.ex("bypass", vec![]);
    check(
        ir,
        block(Some(w), Some(a), Some(n)),
        vec![span(1, "payment"), span(2, "bypass")],
        fired(Always, &[1], &[2]),
    );
}

#[test]
fn always_only_and_never_only() {
    let mut ir = Ir::new();
    let a = ir.ex("health", vec![]);
    check(
        ir,
        block(None, Some(a), None),
        vec![span(1, "x")],
        fired(Always, &[], &[]),
    );
    let mut ir = Ir::new();
    let n = ir.ex("debug", vec![]);
    check(
        ir,
        block(None, None, Some(n)),
        vec![span(2, "debug"), span(1, "debug")],
        fired(Never, &[], &[1, 2]),
    );
}

#[test]
fn where_filters_and_chains() {
    let mut ir = Ir::new();
    let amount = ir.attr("amount");
    let cur = ir.attr("currency");
    let w = ir.ex("payment", vec![gt(amount, int(1000)), eq(cur, s("USD"))]);
    let a = ir.ex("fraud_check", vec![]);
    check(
        ir,
        block(Some(w), Some(a), None),
        vec![
            span(1, "payment")
                .attr("amount", vi(5000))
                .attr("currency", vs("USD")),
            span(2, "payment")
                .attr("amount", vi(5000))
                .attr("currency", vs("EUR")),
            span(3, "payment")
                .attr("amount", vi(10))
                .attr("currency", vs("USD")),
            span(4, "payment")
                .attr("amount", vs("2000.5"))
                .attr("currency", vs("USD")),
        ],
        fired(Always, &[1, 4], &[]),
    );
}

#[test]
fn witnesses_follow_negation_normal_form() {
    // when { (a or b) and not c and (d or e) } — a, b, d true, e false, c false.
    let mut ir = Ir::new();
    let a = ir.ex("a", vec![]);
    let b = ir.ex("b", vec![]);
    let c = ir.ex("c", vec![]);
    let d = ir.ex("d", vec![]);
    let e = ir.ex("e", vec![]);
    let w = cand(vec![cor(vec![a, b]), cnot(c), cor(vec![d, e])]);
    let x = ir.ex("x", vec![]);
    check(
        ir,
        block(Some(w), Some(x), None),
        vec![span(1, "a"), span(2, "b"), span(3, "d"), span(4, "a")],
        fired(Always, &[1, 2, 3, 4], &[]),
    );

    // A false conjunction inside a true disjunction contributes nothing.
    let mut ir = Ir::new();
    let a = ir.ex("a", vec![]);
    let missing = ir.ex("missing", vec![]);
    let b = ir.ex("b", vec![]);
    let w = cor(vec![cand(vec![a, missing]), b]);
    let x = ir.ex("x", vec![]);
    check(
        ir,
        block(Some(w), Some(x), None),
        vec![span(1, "a"), span(2, "b")],
        fired(Always, &[2], &[]),
    );

    // not (not a): a is under two negations, so it contributes.
    let mut ir = Ir::new();
    let a = ir.ex("a", vec![]);
    let w = cnot(cnot(a));
    let x = ir.ex("x", vec![]);
    check(
        ir,
        block(Some(w), Some(x), None),
        vec![span(1, "a")],
        fired(Always, &[1], &[]),
    );

    // Vacuous when: not payment.
    let mut ir = Ir::new();
    let p = ir.ex("payment", vec![]);
    let x = ir.ex("audit", vec![]);
    check(
        ir,
        block(Some(cnot(p)), Some(x), None),
        vec![span(1, "other")],
        fired(Always, &[], &[]),
    );
}

#[test]
fn counts() {
    let mut ir = Ir::new();
    let r = ir.sel("retry", vec![]);
    let x = ir.ex("alert", vec![]);
    check(
        ir,
        block(Some(count(r, CmpOp::Gt, 2)), Some(x), None),
        vec![
            span(1, "retry"),
            span(2, "retry"),
            span(3, "retry"),
            span(4, "x"),
        ],
        fired(Always, &[1, 2, 3], &[]),
    );

    let mut ir = Ir::new();
    let req = ir.sel("request", vec![]);
    let resp = ir.sel("response", vec![]);
    let orphan = ir.ex("orphaned", vec![]);
    check(
        ir,
        block(Some(count2(req, CmpOp::Ne, resp)), None, Some(orphan)),
        vec![
            span(1, "request"),
            span(2, "response"),
            span(3, "request"),
            span(4, "orphaned"),
        ],
        fired(Never, &[1, 2, 3], &[4]),
    );

    // Count with filters; duplicate span ids count once.
    let mut ir = Ir::new();
    let code = ir.attr("code");
    let r = ir.sel("http", vec![ge(code, int(500))]);
    check(
        ir,
        block(None, Some(count(r, CmpOp::Le, 1)), None),
        vec![
            span(1, "http").attr("code", vi(500)),
            span(2, "http").attr("code", vi(200)),
            span(3, "http").attr("code", vi(503)),
            span(3, "http").attr("code", vi(503)),
        ],
        fired(Always, &[], &[]),
    );

    // A true count under `not` contributes nothing; `count(*)`.
    let mut ir = Ir::new();
    let all = ir.sel("*", vec![]);
    let x = ir.ex("x", vec![]);
    check(
        ir,
        block(Some(cnot(count(all, CmpOp::Gt, 5))), Some(x), None),
        vec![span(1, "a")],
        fired(Always, &[], &[]),
    );
}

#[test]
fn trace_terms_in_block() {
    let mut ir = Ir::new();
    let has = ct(t_has(and(vec![
        eq(intr(Intrinsic::Kind), kind(2)),
        eq(intr(Intrinsic::Status), status(2)),
    ])));
    let inc = ir.ex("incident", vec![]);
    check(
        ir,
        block(Some(has), Some(inc), None),
        vec![
            span(1, "a")
                .kind(SpanKind::Server)
                .status(StatusCode::Error, ""),
            span(2, "b")
                .kind(SpanKind::Client)
                .status(StatusCode::Error, ""),
            span(3, "c")
                .kind(SpanKind::Server)
                .status(StatusCode::Error, "boom"),
        ],
        fired(Always, &[1, 3], &[]),
    );

    let ir = Ir::new();
    let all = ct(t_all(lt(intr(Intrinsic::Duration), dur(500))));
    check(
        ir,
        block(None, Some(all), None),
        vec![span(1, "a"), span(2, "b").at(2000, 2600)],
        fired(Always, &[], &[]),
    );

    let mut ir = Ir::new();
    let many = ct(t_count(eq(intr(Intrinsic::Name), s("retry")), CmpOp::Ge, 2));
    let long = ct(t_field(
        TraceField::Duration,
        CmpOp::Gt,
        Literal::Duration(2000),
    ));
    let span_count = ct(t_field(TraceField::SpanCount, CmpOp::Eq, Literal::Int(3)));
    let root = ct(t_field(
        TraceField::RootName,
        CmpOp::Eq,
        Literal::Str("retry".into()),
    ));
    let svc = ct(t_field(
        TraceField::RootService,
        CmpOp::Eq,
        Literal::Str("svc".into()),
    ));
    let id = ct(t_field(
        TraceField::Id,
        CmpOp::Eq,
        Literal::Str("4b".repeat(16).into()),
    ));
    let alert = ir.ex("alert", vec![]);
    check(
        ir,
        block(
            Some(cand(vec![many, long, span_count, root, svc, id])),
            Some(alert),
            None,
        ),
        vec![span(1, "retry"), span(2, "retry"), span(3, "x")],
        fired(Always, &[], &[]),
    );

    // trace.all on an empty trace is true.
    let ir = Ir::new();
    let all = ct(t_all(bool_pred(false)));
    check(ir, block(None, Some(all), None), vec![], ok());
}

fn bool_pred(b: bool) -> betrace_dsl::ir::Pred {
    truthy(bool_(b))
}

// ---- expression form

#[test]
fn span_scoped_expression() {
    let ir = Ir::new();
    let p = and(vec![
        eq(intr(Intrinsic::Status), status(2)),
        eq(intr(Intrinsic::Kind), kind(2)),
    ]);
    check(
        ir,
        betrace_dsl::ir::Body::SpanScoped(p),
        vec![
            span(1, "a")
                .kind(SpanKind::Server)
                .status(StatusCode::Error, ""),
            span(2, "a").kind(SpanKind::Server),
            span(3, "a")
                .kind(SpanKind::Server)
                .status(StatusCode::Error, ""),
        ],
        fired(Expression, &[1, 3], &[]),
    );
}

#[test]
fn span_scoped_with_trace_call_names_only_matching_spans() {
    let ir = Ir::new();
    let p = and(vec![
        eq(intr(Intrinsic::Name), s("checkout")),
        pt(t_has(eq(intr(Intrinsic::Status), status(2)))),
    ]);
    check(
        ir,
        betrace_dsl::ir::Body::SpanScoped(p),
        vec![
            span(1, "checkout"),
            span(2, "payment").status(StatusCode::Error, ""),
        ],
        fired(Expression, &[1], &[]),
    );
}

#[test]
fn trace_scoped_expression() {
    let ir = Ir::new();
    let p = and(vec![
        pt(t_has(eq(intr(Intrinsic::Status), status(2)))),
        not(pt(t_has(eq(intr(Intrinsic::Name), s("retry"))))),
        pt(t_field(TraceField::SpanCount, CmpOp::Ge, Literal::Int(2))),
    ]);
    check(
        ir,
        betrace_dsl::ir::Body::TraceScoped(p),
        vec![
            span(1, "a").status(StatusCode::Error, ""),
            span(2, "b"),
            span(3, "c").status(StatusCode::Error, ""),
        ],
        fired(Expression, &[1, 3], &[]),
    );
    let ir = Ir::new();
    let p = pt(t_count(
        eq(intr(Intrinsic::Status), status(2)),
        CmpOp::Ge,
        2,
    ));
    check(
        ir,
        betrace_dsl::ir::Body::TraceScoped(p),
        vec![span(1, "a").status(StatusCode::Error, "")],
        ok(),
    );
}

// ---- operands and comparisons

fn expr_hits(ir: Ir, p: betrace_dsl::ir::Pred, spans: Vec<betrace_core::Span>, hits: &[u64]) {
    let expect = if hits.is_empty() {
        ok()
    } else {
        fired(Expression, hits, &[])
    };
    check(ir, betrace_dsl::ir::Body::SpanScoped(p), spans, expect);
}

#[test]
fn intrinsics() {
    let spans = || {
        vec![
            span(1, "GET /a")
                .kind(SpanKind::Server)
                .status(StatusCode::Error, "timeout here")
                .service("api")
                .at(1000, 600_000_000),
            span(2, "db").parent(1).kind(SpanKind::Client).service("db"),
            span(3, "x").parent(99),
        ]
    };
    let cases: Vec<(betrace_dsl::ir::Pred, &[u64])> = vec![
        (eq(intr(Intrinsic::Name), s("db")), &[2]),
        (eq(intr(Intrinsic::Service), s("api")), &[1]),
        (ne(intr(Intrinsic::Status), status(1)), &[1, 2, 3]),
        (eq(intr(Intrinsic::Status), s("ERROR")), &[1]),
        (
            str_test(
                StrOp::Contains,
                intr(Intrinsic::StatusMessage),
                s("timeout"),
                false,
            ),
            &[1],
        ),
        (eq(intr(Intrinsic::Kind), kind(3)), &[2]),
        (gt(intr(Intrinsic::Duration), dur(500_000_000)), &[1]),
        (ge(intr(Intrinsic::Start), int(2000)), &[2, 3]),
        (le(intr(Intrinsic::End), int(2100)), &[2]),
        (eq(intr(Intrinsic::Id), s("0000000000000002")), &[2]),
        (eq(intr(Intrinsic::ParentId), s("0000000000000001")), &[2]),
        (eq(intr(Intrinsic::ParentId), s("")), &[1]),
        (truthy(intr(Intrinsic::IsRoot)), &[1]),
        (
            eq(intr(Intrinsic::TraceId), s(&"4b".repeat(16))),
            &[1, 2, 3],
        ),
    ];
    for (p, hits) in cases {
        expr_hits(Ir::new(), p, spans(), hits);
    }
}

#[test]
fn attribute_scopes_and_exists() {
    let spans = || {
        vec![
            span(1, "a").attr("k", vi(1)).res("k", vi(2)),
            span(2, "a").res("k", vi(2)),
            span(3, "a"),
        ]
    };
    let mut ir = Ir::new();
    let k = ir.attr("k");
    expr_hits(ir, eq(k, int(2)), spans(), &[2]);
    let mut ir = Ir::new();
    let k = ir.span_attr("k");
    expr_hits(ir, eq(k, int(1)), spans(), &[1]);
    let mut ir = Ir::new();
    let k = ir.res_attr("k");
    expr_hits(ir, eq(k, int(2)), spans(), &[1, 2]);
    let mut ir = Ir::new();
    let e = ir.exists("k");
    expr_hits(ir, truthy(e), spans(), &[1, 2]);
    let mut ir = Ir::new();
    let e = ir.exists("k");
    expr_hits(ir, eq(e, bool_(false)), spans(), &[3]);
}

#[test]
fn comparisons_and_missing() {
    let spans = || {
        vec![
            span(1, "a").attr("v", vi(1000)),
            span(2, "a").attr("v", vs("1000.0")),
            span(3, "a").attr("v", vs("abc")),
            span(4, "a"),
            span(5, "a").attr("v", vf(f64::NAN)),
            span(6, "a").attr("v", vb(true)),
            span(7, "a").attr("v", vs("true")),
        ]
    };
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, eq(v, int(1000)), spans(), &[1, 2]);
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, ne(v, int(1000)), spans(), &[3, 5, 6, 7]);
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, not(eq(v, int(1000))), spans(), &[3, 4, 5, 6, 7]);
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, eq(v, null()), spans(), &[4]);
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, ne(v, null()), spans(), &[1, 2, 3, 5, 6, 7]);
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, eq(v, bool_(true)), spans(), &[6, 7]);
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, gt(v, s("abb")), spans(), &[3, 7]);
    // Attribute against attribute, literal on the left.
    let mut ir = Ir::new();
    let a = ir.attr("sent");
    let b = ir.attr("limit");
    expr_hits(
        ir,
        ge(a, b),
        vec![
            span(1, "a").attr("sent", vi(10)).attr("limit", vi(5)),
            span(2, "a").attr("sent", vi(1)).attr("limit", vi(5)),
            span(3, "a").attr("sent", vi(1)),
        ],
        &[1],
    );
    let mut ir = Ir::new();
    let v = ir.attr("v");
    expr_hits(ir, lt(int(999), v), spans(), &[1, 2]);
    // Literal against literal, evaluated with the runtime rules.
    expr_hits(
        Ir::new(),
        eq(s("007"), int(7)),
        spans(),
        &[1, 2, 3, 4, 5, 6, 7],
    );
    expr_hits(Ir::new(), eq(s("007"), s("7")), spans(), &[]);
}

#[test]
fn in_lists() {
    let spans = || {
        vec![
            span(1, "a").attr("c", vs("USD")),
            span(2, "a").attr("c", vi(200)),
            span(3, "a"),
            span(4, "a").attr("c", vs("GBP")),
        ]
    };
    let list = || vec![Literal::Str("USD".into()), Literal::Str("200".into())];
    let mut ir = Ir::new();
    let c = ir.attr("c");
    expr_hits(ir, in_(c, list()), spans(), &[1, 2]);
    let mut ir = Ir::new();
    let c = ir.attr("c");
    expr_hits(ir, not_in(c, list()), spans(), &[4]);
    let mut ir = Ir::new();
    let c = ir.attr("c");
    expr_hits(ir, not(in_(c, list())), spans(), &[3, 4]);
    let mut ir = Ir::new();
    let c = ir.attr("c");
    expr_hits(ir, in_(c, vec![Literal::Null]), spans(), &[3]);
    let mut ir = Ir::new();
    let c = ir.attr("c");
    expr_hits(
        ir,
        in_(lower(c), vec![Literal::Str("gbp".into())]),
        spans(),
        &[4],
    );
    expr_hits(
        Ir::new(),
        in_(
            intr(Intrinsic::Status),
            vec![Literal::Status(2), Literal::Status(0)],
        ),
        vec![
            span(1, "a").status(StatusCode::Ok, ""),
            span(2, "a").status(StatusCode::Error, ""),
            span(3, "a"),
        ],
        &[2, 3],
    );
    expr_hits(Ir::new(), in_(int(1), vec![]), spans(), &[]);
}

#[test]
fn string_tests_and_calls() {
    let spans = || {
        vec![
            span(1, "a").attr("p", vs("/api/admin")),
            span(2, "a").attr("p", vi(503)),
            span(3, "a").attr("p", va(vec![vi(503), vs("x")])),
            span(4, "a"),
            span(5, "a").attr("p", vs("Zürich")),
        ]
    };
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(
        ir,
        str_test(StrOp::Contains, p, s("admin"), false),
        spans(),
        &[1],
    );
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(
        ir,
        str_test(StrOp::Contains, p, s("admin"), true),
        spans(),
        &[3, 5],
    );
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(
        ir,
        str_test(StrOp::Contains, p, s("503"), false),
        spans(),
        &[3],
    );
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(
        ir,
        str_test(StrOp::StartsWith, p, s("/api"), false),
        spans(),
        &[1],
    );
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(
        ir,
        str_test(StrOp::EndsWith, p, s("ich"), true),
        spans(),
        &[1],
    );
    let mut ir = Ir::new();
    let p = ir.attr("p");
    let m = ir.matches(p, "^/api/", false);
    expr_hits(ir, m, spans(), &[1]);
    let mut ir = Ir::new();
    let p = ir.attr("p");
    let m = ir.matches(p, "^/api/", true);
    expr_hits(ir, m, spans(), &[5]);
    // Non-attribute operands take the register path.
    let mut ir = Ir::new();
    let p = ir.attr("p");
    let m = ir.matches(lower(p), "zür", false);
    expr_hits(ir, m, spans(), &[5]);
    let mut ir = Ir::new();
    let p = ir.attr("p");
    let q = ir.attr("q");
    expr_hits(
        ir,
        str_test(StrOp::Contains, p, q, false),
        vec![
            span(1, "a").attr("p", vs("abc")).attr("q", vs("b")),
            span(2, "a").attr("p", vs("abc")),
        ],
        &[1],
    );
    // `x:contains(y)` as an operand, and `x:matches(re)`.
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(
        ir,
        eq(call(StrOp::Contains, p, s("admin")), bool_(false)),
        spans(),
        &[2, 3, 4, 5],
    );
    let mut ir = Ir::new();
    let p = ir.attr("p");
    let re = ir.re("^Z");
    expr_hits(ir, truthy(call(re, p, s("^Z"))), spans(), &[5]);
    // Length, case mapping.
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(ir, eq(len(p), int(6)), spans(), &[5]);
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(ir, ge(len(p), int(2)), spans(), &[1, 3, 5]);
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(ir, eq(upper(p), s("ZÜRICH")), spans(), &[5]);
    let mut ir = Ir::new();
    let p = ir.attr("p");
    expr_hits(ir, eq(len(lower(p)), int(6)), spans(), &[5]);
}

#[test]
fn truthiness() {
    let spans = vec![
        span(1, "a").attr("t", vb(true)),
        span(2, "a").attr("t", vs("FALSE")),
        span(3, "a").attr("t", vs("0")),
        span(4, "a").attr("t", vi(0)),
        span(5, "a").attr("t", va(vec![])),
        span(6, "a").attr("t", va(vec![vi(0)])),
        span(7, "a"),
    ];
    let mut ir = Ir::new();
    let t = ir.attr("t");
    expr_hits(ir, truthy(t), spans.clone(), &[1, 3, 6]);
    let mut ir = Ir::new();
    let t = ir.attr("t");
    expr_hits(ir, not(truthy(t)), spans.clone(), &[2, 4, 5, 7]);
    expr_hits(
        Ir::new(),
        truthy(s("x")),
        spans.clone(),
        &[1, 2, 3, 4, 5, 6, 7],
    );
    expr_hits(Ir::new(), truthy(bool_(false)), spans.clone(), &[]);
    expr_hits(
        Ir::new(),
        and(vec![]),
        spans.clone(),
        &[1, 2, 3, 4, 5, 6, 7],
    );
    expr_hits(Ir::new(), or(vec![]), spans, &[]);
}

// ---- relations (DSL.md §3.5, §7.14)

fn family() -> Vec<betrace_core::Span> {
    // 1 http_server ─ 2 svc ─ 3 db ─ 5 fraud_check
    //               └ 4 cache
    // 6 db (root), 7 receipt after everything
    vec![
        span(1, "http_server").at(0, 10_000),
        span(2, "svc").parent(1).at(1_000, 9_000),
        span(3, "db").parent(2).at(2_000, 3_000),
        span(4, "cache").parent(1).at(2_500, 2_600),
        span(5, "fraud_check").parent(3).at(2_100, 2_200),
        span(6, "db").at(20_000, 21_000),
        span(7, "receipt").at(30_000, 31_000),
    ]
}

fn never_where(name: &str, f: impl FnOnce(&mut Ir) -> betrace_dsl::ir::Pred, offending: &[u64]) {
    let mut ir = Ir::new();
    let p = f(&mut ir);
    let n = ir.ex(name, vec![p]);
    let expect = if offending.is_empty() {
        ok()
    } else {
        fired(Never, &[], offending)
    };
    check(ir, block(None, None, Some(n)), family(), expect);
}

#[test]
fn relations() {
    use Relation::*;
    never_where(
        "http_server",
        |ir| ir.rel(HasChild, "svc", vec![], None),
        &[1],
    );
    never_where(
        "http_server",
        |ir| ir.rel(HasChild, "db", vec![], None),
        &[],
    );
    never_where(
        "http_server",
        |ir| ir.rel(HasDescendant, "db", vec![], None),
        &[1],
    );
    never_where(
        "http_server",
        |ir| ir.rel(HasDescendant, "*", vec![], None),
        &[1],
    );
    never_where(
        "svc",
        |ir| ir.rel(HasDescendant, "fraud_check", vec![], None),
        &[2],
    );
    never_where(
        "db",
        |ir| not(ir.rel(HasDescendant, "fraud_check", vec![], None)),
        &[6],
    );
    never_where("db", |ir| ir.rel(HasParent, "svc", vec![], None), &[3]);
    never_where(
        "db",
        |ir| not(ir.rel(HasAncestor, "http_server", vec![], None)),
        &[6],
    );
    never_where(
        "fraud_check",
        |ir| ir.rel(HasAncestor, "*", vec![], None),
        &[5],
    );
    // within: has_* compares start times (absolute difference), inclusive.
    never_where(
        "db",
        |ir| ir.rel(HasAncestor, "http_server", vec![], Some(2_000)),
        &[3],
    );
    never_where(
        "db",
        |ir| ir.rel(HasAncestor, "http_server", vec![], Some(1_999)),
        &[],
    );
    never_where(
        "svc",
        |ir| ir.rel(HasDescendant, "fraud_check", vec![], Some(1_100)),
        &[2],
    );
    never_where(
        "svc",
        |ir| ir.rel(HasDescendant, "fraud_check", vec![], Some(1_099)),
        &[],
    );
    never_where(
        "db",
        |ir| ir.rel(HasParent, "svc", vec![], Some(1_000)),
        &[3],
    );
    never_where("svc", |ir| ir.rel(HasChild, "*", vec![], Some(1_000)), &[2]);
    // followed_by: b.start − a.end ≥ 0, within inclusive; never the span itself.
    never_where(
        "db",
        |ir| ir.rel(FollowedBy, "receipt", vec![], None),
        &[3, 6],
    );
    never_where(
        "db",
        |ir| ir.rel(FollowedBy, "receipt", vec![], Some(9_000)),
        &[6],
    );
    never_where("db", |ir| ir.rel(FollowedBy, "db", vec![], None), &[3]);
    never_where("receipt", |ir| ir.rel(FollowedBy, "*", vec![], None), &[]);
    never_where(
        "receipt",
        |ir| ir.rel(PrecededBy, "db", vec![], Some(9_000)),
        &[7],
    );
    never_where(
        "receipt",
        |ir| ir.rel(PrecededBy, "db", vec![], Some(8_999)),
        &[],
    );
    never_where("cache", |ir| ir.rel(PrecededBy, "*", vec![], None), &[4]);
    never_where(
        "http_server",
        |ir| ir.rel(PrecededBy, "*", vec![], None),
        &[],
    );
    // Filters on the related span, and a relation inside a relation.
    never_where(
        "http_server",
        |ir| {
            let inner = ir.rel(HasChild, "fraud_check", vec![], None);
            ir.rel(HasDescendant, "db", vec![inner], None)
        },
        &[1],
    );
    never_where(
        "http_server",
        |ir| {
            let d = ir.attr("missing");
            ir.rel(HasDescendant, "db", vec![truthy(d)], None)
        },
        &[],
    );
}

#[test]
fn relation_method_form_in_clauses() {
    let mut ir = Ir::new();
    let w = ir.ex("payment", vec![]);
    let follow = ir.rel(Relation::FollowedBy, "receipt", vec![], None);
    let a = ir.ex("payment", vec![follow]);
    check(
        ir,
        block(Some(w), Some(a), None),
        vec![span(1, "payment").at(0, 100), span(2, "receipt").at(50, 60)],
        fired(Always, &[1], &[]),
    );
    let mut ir = Ir::new();
    let w = ir.ex("payment", vec![]);
    let follow = ir.rel(Relation::FollowedBy, "receipt", vec![], None);
    let a = ir.ex("payment", vec![follow]);
    check(
        ir,
        block(Some(w), Some(a), None),
        vec![
            span(1, "payment").at(0, 100),
            span(2, "receipt").at(100, 160),
        ],
        ok(),
    );
}

#[test]
fn parent_link_cycles_terminate() {
    use Relation::*;
    // 1 ↔ 2 form a cycle; 3 hangs below 2; 4 points at a missing parent (not a root).
    let spans = || {
        vec![
            span(1, "a").parent(2),
            span(2, "b").parent(1),
            span(3, "c").parent(2),
            span(4, "d").parent(99),
        ]
    };
    let run = |f: &dyn Fn(&mut Ir) -> betrace_dsl::ir::Pred, hits: &[u64]| {
        let mut ir = Ir::new();
        let p = f(&mut ir);
        expr_hits(ir, p, spans(), hits);
    };
    run(&|ir| ir.rel(HasAncestor, "a", vec![], None), &[2, 3]);
    run(&|ir| ir.rel(HasAncestor, "*", vec![], None), &[1, 2, 3]);
    run(&|ir| ir.rel(HasDescendant, "a", vec![], None), &[2]);
    run(&|ir| ir.rel(HasDescendant, "c", vec![], None), &[1, 2]);
    run(&|ir| ir.rel(HasDescendant, "*", vec![], None), &[1, 2]);
    run(&|ir| ir.rel(HasChild, "b", vec![], None), &[1]);
    run(&|ir| ir.rel(HasParent, "*", vec![], None), &[1, 2, 3]);
    expr_hits(Ir::new(), truthy(intr(Intrinsic::IsRoot)), spans(), &[]);
}

// ---- limits and errors (DSL.md §3.7)

#[test]
fn budget_exceeded_is_an_error_with_pc() {
    let mut ir = Ir::new();
    let inner = ir.rel(Relation::FollowedBy, "*", vec![], None);
    let n = ir.ex("*", vec![not(inner)]);
    let (rule, sy) = ir.rule(block(None, None, Some(n)));
    let trace = Trace::new((1..=300).map(|i| span(i, "x")).collect());
    let err = run_vm_with(
        &rule,
        &sy,
        &trace,
        &EvalOptions {
            instruction_budget: 10_000,
        },
    )
    .unwrap_err();
    let EvalError::BudgetExceeded { pc } = err else {
        panic!("expected a budget error, got {err:?}");
    };
    let program = betrace_dsl::lower::lower(rule.clone());
    assert!((pc as usize) < program.code().len());
    // With the default budget the same evaluation completes and agrees with the reference.
    run_both(&rule, &sy, &trace);
    // A budget of zero fails at the first instruction.
    let err = run_vm_with(
        &rule,
        &sy,
        &trace,
        &EvalOptions {
            instruction_budget: 0,
        },
    );
    assert_eq!(err, Err(EvalError::BudgetExceeded { pc: 0 }));
}

#[test]
fn witness_pass_counts_against_the_budget() {
    let mut ir = Ir::new();
    let n = ir.ex("*", vec![truthy(bool_(true)), truthy(s("x"))]);
    let (rule, sy) = ir.rule(block(None, None, Some(n)));
    let trace = Trace::new((1..=50).map(|i| span(i, "x")).collect());
    // Decision needs a handful of steps, witnesses ~4 per span.
    let r = run_vm_with(
        &rule,
        &sy,
        &trace,
        &EvalOptions {
            instruction_budget: 20,
        },
    );
    assert!(matches!(r, Err(EvalError::BudgetExceeded { .. })), "{r:?}");
}

#[test]
fn oversized_rule_traps_instead_of_panicking() {
    let mut ir = Ir::new();
    let v = ir.attr("v");
    let p = or((0..70_000).map(|i| eq(v.clone(), int(i))).collect());
    let (rule, sy) = ir.rule(betrace_dsl::ir::Body::SpanScoped(p));
    let program = betrace_dsl::lower::lower(rule.clone());
    assert!(program.is_trap());
    let trace = Trace::new(vec![span(1, "a")]);
    assert_eq!(run_vm(&rule, &sy, &trace), Err(EvalError::ProgramTooLarge));
}

#[test]
fn deep_nesting_does_not_recurse_in_the_vm() {
    // 60 nested relations: has_child(x.where(has_child(x.where(…)))) over a 70-deep chain.
    let mut ir = Ir::new();
    let mut p = truthy(bool_(true));
    for _ in 0..60 {
        p = ir.rel(Relation::HasChild, "x", vec![p], None);
    }
    let n = ir.ex("x", vec![p]);
    let (rule, sy) = ir.rule(block(None, None, Some(n)));
    let mut spans = vec![span(1, "x")];
    for i in 2..=70 {
        spans.push(span(i, "x").parent(i - 1));
    }
    let trace = Trace::new(spans);
    let got = run_both(&rule, &sy, &trace);
    assert_eq!(got.offending_spans, (0..10).collect::<Vec<_>>());
}

#[test]
fn prepared_with_other_symbols_is_safe() {
    // A program whose ids are not in the prepared trace's symbols sees no spans, no attributes.
    let mut ir = Ir::new();
    let v = ir.attr("v");
    let n = ir.ex("payment", vec![gt(v, int(1))]);
    let (rule, _) = ir.rule(block(None, None, Some(n)));
    let program = betrace_dsl::lower::lower(rule);
    let trace = Trace::new(vec![span(1, "payment").attr("v", vi(5))]);
    let empty = betrace_dsl::ir::Symbols::new();
    let prepared = PreparedTrace::new(&trace, &empty);
    let got = betrace_core::evaluate(&program, &prepared, &EvalOptions::default()).unwrap();
    assert!(!got.violated);
}

// ---- property tests

mod props {
    use super::*;
    use betrace_core::{AttrValue, Resource, Span};
    use betrace_dsl::ir::{
        AttrScope, Body, Cond, CountRhs, KeyId, NameId, Operand, Pred, RegexId, Rule, Selection,
        Symbols, Target, TraceTerm,
    };
    use proptest::prelude::*;
    use regex::Regex;
    use std::sync::Arc;

    const NAMES: [&str; 4] = ["a", "b", "c", "ghost"];
    const KEYS: [&str; 3] = ["x", "y", "z"];
    const PATTERNS: [&str; 3] = ["^1", "b", "(?i)TRUE"];

    fn symbols() -> Symbols {
        let mut sy = Symbols::new();
        for n in NAMES {
            sy.intern_span_name(n);
        }
        for k in KEYS {
            sy.intern_attribute_key(k);
        }
        sy
    }

    fn attr_value() -> impl Strategy<Value = AttrValue> {
        let leaf = prop_oneof![
            (-3i64..4).prop_map(AttrValue::Int),
            prop::sample::select(vec![0.0, 1.0, 1.5, -2.0, f64::NAN, 1e300])
                .prop_map(AttrValue::Float),
            prop::sample::select(vec![
                "", "1", "1.0", "1e0", "abc", "true", "FALSE", "b", "Zü"
            ])
            .prop_map(|s| AttrValue::Str(s.into())),
            any::<bool>().prop_map(AttrValue::Bool),
        ];
        prop_oneof![
            4 => leaf.clone(),
            1 => prop::collection::vec(leaf, 0..3).prop_map(|v| AttrValue::Array(v.into())),
        ]
    }

    fn attrs() -> impl Strategy<Value = betrace_core::Attributes> {
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), attr_value()), 0..3).prop_map(
            |v| {
                let mut out: betrace_core::Attributes = Vec::new();
                for (k, val) in v {
                    if !out.iter().any(|(x, _)| &**x == k) {
                        out.push((k.into(), val));
                    }
                }
                out
            },
        )
    }

    fn spans() -> impl Strategy<Value = Vec<Span>> {
        prop::collection::vec(
            (
                1u64..9,
                prop::option::of(1u64..10),
                prop::sample::select(vec!["a", "b", "c", "other"]),
                (0u64..6).prop_map(|t| t * 10),
                prop::sample::select(vec![0u64, 10, 20, 25]),
                0i64..3,
                0i64..6,
                attrs(),
                attrs(),
            ),
            0..7,
        )
        .prop_map(|raw| {
            raw.into_iter()
                .map(|(id, parent, name, start, len, st, kd, attrs, res)| Span {
                    trace_id: support::TRACE,
                    span_id: support::sid(id),
                    parent_span_id: parent.map(support::sid),
                    name: name.into(),
                    kind: betrace_core::SpanKind::from_otlp(kd).unwrap_or_default(),
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + len,
                    status_code: StatusCode::from_otlp(st).unwrap_or_default(),
                    status_message: String::new(),
                    attributes: attrs,
                    resource: Arc::new(Resource { attributes: res }),
                    scope_name: "".into(),
                })
                .collect()
        })
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            (-2i64..3).prop_map(Literal::Int),
            prop::sample::select(vec![1.0, 1.5, -0.0]).prop_map(Literal::Float),
            prop::sample::select(vec!["1", "abc", "true", "", "b", "error"])
                .prop_map(|s| Literal::Str(s.into())),
            any::<bool>().prop_map(Literal::Bool),
            (0i64..40).prop_map(Literal::Duration),
            Just(Literal::Null),
            (0u8..3).prop_map(Literal::Status),
            (0u8..6).prop_map(Literal::Kind),
            // A list literal as a value (DSL.md §2 `value`), nested once.
            prop::collection::vec((-2i64..3).prop_map(Literal::Int), 0..3)
                .prop_map(|items| Literal::List(items.into())),
            Just(Literal::List(
                vec![Literal::List(vec![Literal::Int(1)].into())].into()
            )),
        ]
    }

    fn scope() -> impl Strategy<Value = AttrScope> {
        prop::sample::select(vec![
            AttrScope::SpanThenResource,
            AttrScope::Span,
            AttrScope::Resource,
        ])
    }

    fn str_op() -> impl Strategy<Value = StrOp> {
        prop_oneof![
            Just(StrOp::Contains),
            Just(StrOp::StartsWith),
            Just(StrOp::EndsWith),
            (0u32..3).prop_map(|i| StrOp::Matches(RegexId(i))),
        ]
    }

    fn operand() -> impl Strategy<Value = Operand> {
        let leaf = prop_oneof![
            literal().prop_map(Operand::Literal),
            ((0u32..3), scope()).prop_map(|(k, scope)| Operand::Attribute {
                key: KeyId(k),
                scope
            }),
            prop::sample::select(vec![
                Intrinsic::Name,
                Intrinsic::Service,
                Intrinsic::Status,
                Intrinsic::StatusMessage,
                Intrinsic::Kind,
                Intrinsic::Duration,
                Intrinsic::Start,
                Intrinsic::End,
                Intrinsic::Id,
                Intrinsic::ParentId,
                Intrinsic::TraceId,
                Intrinsic::IsRoot,
            ])
            .prop_map(Operand::Intrinsic),
            ((0u32..3), scope()).prop_map(|(k, scope)| Operand::Exists {
                key: KeyId(k),
                scope
            }),
        ];
        leaf.prop_recursive(2, 6, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|o| Operand::Len(Box::new(o))),
                inner.clone().prop_map(|o| Operand::Lower(Box::new(o))),
                inner.clone().prop_map(|o| Operand::Upper(Box::new(o))),
                (str_op(), inner.clone(), inner).prop_map(|(op, a, b)| Operand::StrCall {
                    op,
                    operand: Box::new(a),
                    arg: Box::new(b)
                }),
            ]
        })
    }

    fn cmp_op() -> impl Strategy<Value = CmpOp> {
        prop::sample::select(vec![
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ])
    }

    fn relation() -> impl Strategy<Value = Relation> {
        prop::sample::select(vec![
            Relation::HasChild,
            Relation::HasParent,
            Relation::HasDescendant,
            Relation::HasAncestor,
            Relation::FollowedBy,
            Relation::PrecededBy,
        ])
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            1 => Just(Target::Any),
            4 => (0u32..4).prop_map(|n| Target::Name(NameId(n))),
        ]
    }

    fn span_pred() -> impl Strategy<Value = Pred> {
        let leaf = prop_oneof![
            (operand(), cmp_op(), operand()).prop_map(|(lhs, op, rhs)| Pred::Compare {
                lhs,
                op,
                rhs
            }),
            (
                operand(),
                prop::collection::vec(literal(), 0..3),
                any::<bool>()
            )
                .prop_map(|(operand, list, negated)| Pred::In {
                    operand,
                    list,
                    negated
                }),
            (str_op(), operand(), operand(), any::<bool>()).prop_map(
                |(op, operand, arg, negated)| Pred::StrTest {
                    op,
                    operand,
                    arg,
                    negated
                }
            ),
            operand().prop_map(Pred::Truthy),
            (
                relation(),
                target(),
                prop::option::of(prop::sample::select(vec![0i64, 5, 10, 20]))
            )
                .prop_map(|(relation, target, within)| Pred::Relation {
                    relation,
                    target: Selection {
                        target,
                        filters: vec![]
                    },
                    within
                }),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Pred::And),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Pred::Or),
                inner.clone().prop_map(|p| Pred::Not(Box::new(p))),
                (
                    relation(),
                    target(),
                    prop::collection::vec(inner, 0..2),
                    prop::option::of(prop::sample::select(vec![0i64, 5, 10, 20]))
                )
                    .prop_map(|(relation, target, filters, within)| {
                        Pred::Relation {
                            relation,
                            target: Selection { target, filters },
                            within,
                        }
                    }),
            ]
        })
    }

    fn selection() -> impl Strategy<Value = Selection> {
        (target(), prop::collection::vec(span_pred(), 0..2))
            .prop_map(|(target, filters)| Selection { target, filters })
    }

    fn trace_term() -> impl Strategy<Value = TraceTerm> {
        prop_oneof![
            span_pred().prop_map(TraceTerm::Has),
            span_pred().prop_map(TraceTerm::All),
            (span_pred(), cmp_op(), 0i64..4).prop_map(|(pred, op, value)| TraceTerm::Count {
                pred,
                op,
                value
            }),
            (
                prop::sample::select(vec![
                    TraceField::Id,
                    TraceField::Duration,
                    TraceField::SpanCount,
                    TraceField::RootName,
                    TraceField::RootService,
                ]),
                cmp_op(),
                literal()
            )
                .prop_map(|(field, op, value)| TraceTerm::Field { field, op, value }),
        ]
    }

    fn cond() -> impl Strategy<Value = Cond> {
        let leaf = prop_oneof![
            selection().prop_map(Cond::Exists),
            (selection(), cmp_op(), -1i64..4).prop_map(|(lhs, op, n)| Cond::Count {
                lhs,
                op,
                rhs: CountRhs::Int(n)
            }),
            (selection(), cmp_op(), selection()).prop_map(|(lhs, op, rhs)| Cond::Count {
                lhs,
                op,
                rhs: CountRhs::Count(rhs)
            }),
            trace_term().prop_map(Cond::Trace),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Cond::And),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Cond::Or),
                inner.prop_map(|c| Cond::Not(Box::new(c))),
            ]
        })
    }

    fn trace_pred() -> impl Strategy<Value = Pred> {
        let leaf = prop_oneof![
            4 => trace_term().prop_map(|t| Pred::Trace(Box::new(t))),
            1 => any::<bool>().prop_map(|b| Pred::Truthy(Operand::Literal(Literal::Bool(b)))),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Pred::And),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Pred::Or),
                inner.prop_map(|p| Pred::Not(Box::new(p))),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            3 => (prop::option::of(cond()), prop::option::of(cond()), prop::option::of(cond()))
                .prop_map(|(when, always, never)| {
                    let always = if always.is_none() && never.is_none() {
                        Some(Cond::And(vec![]))
                    } else {
                        always
                    };
                    Body::Block { when, always, never }
                }),
            2 => (span_pred(), prop::option::of(trace_term())).prop_map(|(p, t)| match t {
                Some(t) => Body::SpanScoped(Pred::And(vec![p, Pred::Trace(Box::new(t))])),
                None => Body::SpanScoped(p),
            }),
            1 => trace_pred().prop_map(Body::TraceScoped),
        ]
    }

    fn rule(body: Body) -> Rule {
        Rule {
            body,
            regexes: PATTERNS.iter().map(|p| Regex::new(p).unwrap()).collect(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn vm_matches_reference(body in body(), spans in spans()) {
            let sy = symbols();
            let rule = rule(body);
            let trace = Trace::new(spans);
            let vm = run_vm(&rule, &sy, &trace);
            let reference = reference::evaluate(&rule, &trace, &sy);
            prop_assert_eq!(vm, Ok(reference));
        }

        #[test]
        fn small_budgets_error_or_agree(body in body(), spans in spans(), budget in 0u64..60) {
            let sy = symbols();
            let rule = rule(body);
            let trace = Trace::new(spans);
            let options = EvalOptions { instruction_budget: budget };
            match run_vm_with(&rule, &sy, &trace, &options) {
                Ok(vm) => prop_assert_eq!(vm, reference::evaluate(&rule, &trace, &sy)),
                Err(EvalError::BudgetExceeded { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }
}
