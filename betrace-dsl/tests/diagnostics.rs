//! Rendered diagnostics for every error code (insta snapshots), their JSON shape, and
//! robustness of the front end on hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use betrace_dsl::{Code, Symbols, check_source, parser, render, validate};

/// One rule per code, written to trigger it.
const CASES: &[(&str, &str)] = &[
    ("E100", "when { payment; refund } always { audit }"),
    ("E101", "when { a.where(x = 1) } always { b }"),
    ("E102", r#"when { a.where(x == "a\qb") } always { b }"#),
    (
        "E103",
        "when { a.where(x > 9223372036854775808) } always { b }",
    ),
    ("E104", "x == \"abc"),
    ("E105", "span.duration > 5min"),
    ("E201", "when { a } always { b } # trailing note"),
    ("E202", "(x == 1"),
    ("E203", "when { a } always { b } always { c }"),
    ("E204", "delta > - 5"),
    ("E205", "when { payment > 5 } always { x }"),
    ("E206", "   // nothing but a comment\n"),
    ("E301", "when { payment }"),
    ("E302", r#"span.duration == "fast""#),
    ("E303", "span.status == failed"),
    ("E304", "span.status > ok"),
    ("E305", r#"path matches "([""#),
    ("E306", "span.durration > 1s"),
    ("E307", r#"currency in "USD""#),
    ("E308", r#"method:trim() == "GET""#),
    (
        "E309",
        r#"when { span.name == "checkout" } always { audit }"#,
    ),
    ("E401", ""),
    ("E402", ""),
];

fn source_for(code: &str, rule: &str) -> String {
    match code {
        "E401" => format!(
            "when {{ payment }} always {{ fraud_check }} // {}",
            "x".repeat(70_000)
        ),
        "E402" => format!("{}x == 1{}", "(".repeat(65), ")".repeat(65)),
        _ => rule.to_string(),
    }
}

#[test]
fn every_code_has_a_case() {
    for code in Code::ALL {
        assert!(
            CASES.iter().any(|(c, _)| *c == code.as_str()),
            "no snapshot case for {code}"
        );
    }
}

#[test]
fn rendered_diagnostics() {
    for (code, rule) in CASES {
        let source = source_for(code, rule);
        let diags = validate(&source);
        assert!(
            diags.iter().any(|d| d.code.as_str() == *code),
            "{code}: got {diags:?}"
        );
        let shown = if source.len() > 200 {
            "<long rule>"
        } else {
            source.as_str()
        };
        let rendered = render(
            &diags,
            "rule",
            if source.len() > 200 { "" } else { &source },
        );
        insta::assert_snapshot!(format!("render_{code}"), format!("{shown}\n\n{rendered}"));
    }
}

#[test]
fn json_shape() {
    let source = "when { a }\nalways { b.where(x = 1) }";
    let diags = validate(source);
    let json = serde_json::to_value(diags[0].to_json(source)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"code": "E101", "message": "`=` is not an operator", "line": 2,
            "column": 20, "start": 30, "end": 31, "help": "use `==`"})
    );
}

#[test]
fn several_errors_in_one_rule() {
    let diags = validate(
        "when { a.where(x = 1) and b.where(y == \"\\q\") } always { span.durration > 1s }",
    );
    let codes: Vec<_> = diags.iter().map(|d| d.code.as_str()).collect();
    assert!(codes.contains(&"E101"), "{codes:?}");
    assert!(codes.contains(&"E102"), "{codes:?}");
    let diags = validate("when { } always { a.where(x == ) }");
    assert!(diags.len() >= 2, "{diags:?}");
}

#[test]
fn hostile_input_yields_diagnostics() {
    let deep = "(".repeat(100_000);
    assert_eq!(validate(&deep)[0].code, Code::E401);
    let deep = "(".repeat(60_000);
    assert_eq!(validate(&deep)[0].code, Code::E402);
    let nots = format!("{}a", "not ".repeat(16_000));
    assert_eq!(validate(&nots)[0].code, Code::E402);
    // A long flat chain is not nesting and must not overflow the stack.
    let chain = format!("when {{ {}a }} always {{ b }}", "a or ".repeat(13_000));
    assert!(check_source(&chain, &mut Symbols::new()).is_ok());
    let (_, d) = parser::parse_bytes(&[b'a', b' ', 0xff, 0xfe]);
    assert_eq!(d[0].code, Code::E100);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert!(!parser::parse_bytes(&bytes).1.is_empty());
    for window in bytes.chunks(3000).take(200) {
        let text = String::from_utf8_lossy(window);
        let _ = validate(&text);
    }
}
