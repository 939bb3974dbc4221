//! Property tests of the front end: rules generated from the grammar compile, formatting
//! round-trips (`parse(format(r)) == parse(r)`, DSL.md §5), and no input makes it panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use betrace_dsl::{Symbols, check_source, format::format_ast, parser, validate};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("payment".to_string()),
        Just("fraud_check".to_string()),
        Just("fraud-check-service".to_string()),
        Just("db.query".to_string()),
        Just("\"GET /api/users\"".to_string()),
        Just("\"count\"".to_string()),
        Just("*".to_string()),
    ]
}

fn attr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("amount".to_string()),
        Just("http.method".to_string()),
        Just("retry-count".to_string()),
        Just("span.attributes[\"auth.token\"]".to_string()),
        Just("resource.attributes[\"service.name\"]".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (0.0f64..1e12).prop_map(|f| format!("{f:?}")),
        (
            0u64..1_000_000,
            prop::sample::select(vec!["ns", "us", "ms", "s", "m", "h"])
        )
            .prop_map(|(n, u)| format!("{n}{u}")),
        "[a-z\\\\\"' ]{0,8}".prop_map(|s| format!("{s:?}")),
        Just("USD".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("`^/api/v[0-9]+`".to_string()),
    ]
}

fn cmp() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="])
}

fn pred_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (attr(), cmp(), value()).prop_map(|(a, o, v)| {
            // Ordering on a bool is E304 by design.
            let o = if v == "true" { "==" } else { o };
            format!("{a} {o} {v}")
        }),
        (attr(), prop::collection::vec(value(), 0..4), any::<bool>()).prop_map(
            |(a, l, n)| format!("{a} {}in [{}]", if n { "not " } else { "" }, l.join(", "))
        ),
        (
            attr(),
            prop::sample::select(vec![
                "contains",
                "starts_with",
                "ends_with",
                "matches",
                "not contains"
            ])
        )
            .prop_map(|(a, op)| format!("{a} {op} \"x\"")),
        attr(),
        attr().prop_map(|a| format!("exists({a})")),
        Just("span.status == error".to_string()),
        Just("span.kind in [server, \"CLIENT\"]".to_string()),
        Just("span.duration > 250ms".to_string()),
        Just("span.name:starts_with(\"/api/\")".to_string()),
        Just("#http.method >= 3".to_string()),
        Just("method:lower() == \"get\"".to_string()),
        Just("path =~ \"(?i)admin\"".to_string()),
        (
            prop::sample::select(vec![
                "has_child",
                "has_parent",
                "has_descendant",
                "has_ancestor",
                "followed_by",
                "preceded_by"
            ]),
            name(),
            prop::option::of(0u64..10_000)
        )
            .prop_map(|(r, n, w)| match w {
                Some(w) => format!("{r}({n}, within {w}ms)"),
                None => format!("{r}({n})"),
            }),
    ]
}

fn pred() -> impl Strategy<Value = String> {
    pred_leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

fn selection() -> impl Strategy<Value = String> {
    (name(), prop::collection::vec(pred(), 0..3)).prop_map(|(n, ws)| {
        let mut s = n;
        for w in ws {
            s.push_str(&format!(".where({w})"));
        }
        s
    })
}

fn cond_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        selection(),
        (cmp(), 0i64..100).prop_map(|(o, v)| format!("payment.amount {o} {v}")),
        (selection(), cmp(), -5i64..100).prop_map(|(s, o, v)| format!("count({s}) {o} {v}")),
        (selection(), selection()).prop_map(|(a, b)| format!("count({a}) != count({b})")),
        pred().prop_map(|p| format!("trace.has({p})")),
        pred().prop_map(|p| format!("trace.all({p})")),
        (pred(), cmp()).prop_map(|(p, o)| format!("trace.count({p}) {o} 2")),
        Just("trace.duration > 10s".to_string()),
        Just("trace.root_service == frontend".to_string()),
        (name(), name()).prop_map(|(a, b)| format!("{a}.has_descendant({b}, within 2s)")),
    ]
}

fn cond() -> impl Strategy<Value = String> {
    cond_leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

fn rule() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::option::of(cond()),
            prop::option::of(cond()),
            prop::option::of(cond()),
            any::<bool>()
        )
            .prop_filter("a rule needs always or never", |(_, a, n, _)| a.is_some()
                || n.is_some())
            .prop_map(|(w, a, n, swap)| {
                let mut s = String::new();
                if let Some(w) = w {
                    s.push_str(&format!("when {{ {w} }}\n"));
                }
                let a = a.map(|a| format!("always {{ {a} }}\n"));
                let n = n.map(|n| format!("never {{ {n} }}\n"));
                let (x, y) = if swap { (n, a) } else { (a, n) };
                s.push_str(&x.unwrap_or_default());
                s.push_str(&y.unwrap_or_default());
                s
            }),
        pred(),
        (pred(), pred()).prop_map(|(p, q)| format!("{p} and trace.has({q})")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_rules_compile_and_format_round_trips(r in rule()) {
        let compiled = check_source(&r, &mut Symbols::new());
        prop_assert!(compiled.is_ok(), "{r}\n{:?}", compiled.err());
        let (ast, diags) = parser::parse(&r);
        prop_assert!(diags.is_empty());
        let ast = ast.unwrap();
        let text = format_ast(&ast);
        let (again, d2) = parser::parse(&text);
        prop_assert!(d2.is_empty(), "{text}\n{d2:?}");
        prop_assert_eq!(again.as_ref(), Some(&ast), "formatted: {}", text);
        prop_assert!(check_source(&text, &mut Symbols::new()).is_ok());
        // Formatting is idempotent.
        prop_assert_eq!(format_ast(&again.unwrap()), text);
    }

    #[test]
    fn any_text_yields_a_result_not_a_panic(s in "\\PC{0,200}") {
        let _ = validate(&s);
    }

    #[test]
    fn any_token_soup_yields_a_result(parts in prop::collection::vec(prop::sample::select(vec![
        "when", "always", "never", "{", "}", "(", ")", "[", "]", "and", "or", "not", "in", "where",
        "count", "a", "b.c", ".", ":", ",", "==", "<", "1", "-", "5s", "\"x\"", "`y`", "#", "*",
        "trace", "span", "has_child", "within", "matches", "exists",
    ]), 0..40)) {
        let _ = validate(&parts.join(" "));
    }
}
