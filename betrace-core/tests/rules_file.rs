//! Rules files in YAML and JSON (ENGINE.md §3): shapes, defaults, and errors that name the
//! file, the rule, the field and the position.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use betrace_core::Severity;
use betrace_core::rules::{
    FileFormat, Rule, RuleProblem, RulesFileError, load_rules_file, parse_rules,
};

const YAML: &str = r#"
rules:
  - id: large-order-fraud
    name: Large order fraud
    description: every large order is checked for fraud
    expression: |
      when { checkout.where(amount > 1000) }
      always { fraud_check }
    severity: high
    tags: [payments, fraud]
  - name: slow-db
    condition: db.query.where(duration > 500ms)
    enabled: false
  - id: Zürich-free
    expression: never { x }
"#;

fn problems(err: RulesFileError) -> Vec<RuleProblem> {
    match err {
        RulesFileError::Rules { problems, .. } => problems,
        other => panic!("expected rule problems, got {other:?}"),
    }
}

#[test]
fn yaml_mapping_form() {
    let err = parse_rules(YAML, "rules.yaml").unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        "rules.yaml: rules[2] (id `Zürich-free`), field `id`: `Zürich-free` is not a valid id: \
         use 1 to 128 characters from A-Z, a-z, 0-9, `.`, `_`, `-`"
    );
    let fixed = YAML.replace("Zürich-free", "zurich-free");
    let rules = parse_rules(&fixed, "rules.yaml").unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].id, "large-order-fraud");
    assert_eq!(rules[0].name, "Large order fraud");
    assert_eq!(
        rules[0].expression,
        "when { checkout.where(amount > 1000) }\nalways { fraud_check }\n"
    );
    assert_eq!(rules[0].severity, Severity::High);
    assert_eq!(rules[0].tags, ["payments", "fraud"]);
    assert!(rules[0].enabled);
    assert_eq!(rules[1].id, "slow-db");
    assert_eq!(rules[1].name, "slow-db");
    assert_eq!(rules[1].expression, "db.query.where(duration > 500ms)");
    assert_eq!(rules[1].severity, Severity::Medium);
    assert!(!rules[1].enabled);
    assert_eq!(rules[2], Rule::new("zurich-free", "never { x }"));
}

#[test]
fn json_and_bare_lists() {
    let json = r#"[{"id": "a", "expression": "never { x }", "severity": "LOW"},
                   {"id": "b", "condition": "never { y }"}]"#;
    let rules = parse_rules(json, "rules.json").unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].severity, Severity::Low);
    let wrapped = format!("{{\"rules\": {json}}}");
    assert_eq!(parse_rules(&wrapped, "rules.json").unwrap(), rules);
    let yaml_list =
        "- id: a\n  expression: never { x }\n  severity: LOW\n- id: b\n  condition: never { y }\n";
    assert_eq!(parse_rules(yaml_list, "rules.yaml").unwrap(), rules);
    // YAML flow style starts with a bracket but is not JSON.
    let flow =
        "[{id: a, expression: 'never { x }', severity: low}, {id: b, condition: 'never { y }'}]";
    assert_eq!(parse_rules(flow, "rules.yaml").unwrap(), rules);
    assert!(parse_rules("rules: []", "x").unwrap().is_empty());
    assert!(parse_rules("\u{feff}[]", "x").unwrap().is_empty());
}

#[test]
fn serialized_rules_load_back() {
    let rules = parse_rules(&YAML.replace("Zürich-free", "z"), "rules.yaml").unwrap();
    let yaml = serde_yaml_ng::to_string(&serde_json::json!({ "rules": rules })).unwrap();
    assert_eq!(parse_rules(&yaml, "export.yaml").unwrap(), rules);
    let json = serde_json::to_string_pretty(&rules).unwrap();
    assert_eq!(parse_rules(&json, "export.json").unwrap(), rules);
}

#[test]
fn json_syntax_error_has_position() {
    let err = parse_rules("{\"rules\": [\n  {\"id\": \"a\",, }\n]}", "bad.json").unwrap_err();
    match &err {
        RulesFileError::Syntax {
            format,
            line,
            column,
            ..
        } => {
            assert_eq!(*format, FileFormat::Json);
            assert_eq!(*line, Some(2));
            assert_eq!(*column, Some(14));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "bad.json:2:14: invalid JSON: key must be a string"
    );
}

#[test]
fn yaml_syntax_error_has_position() {
    let err = parse_rules("rules:\n  - id: a\n   expression: [\n", "bad.yaml").unwrap_err();
    match &err {
        RulesFileError::Syntax { format, line, .. } => {
            assert_eq!(*format, FileFormat::Yaml);
            assert!(line.is_some(), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
}

#[test]
fn repeated_keys_are_errors_in_both_syntaxes() {
    let err = parse_rules(
        "[{\"id\": \"a\", \"expression\": \"x\",\n \"expression\": \"y\"}]",
        "dup.json",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("dup.json:2:"), "{text}");
    assert!(text.contains("duplicate key `expression`"), "{text}");
    let err = parse_rules("- id: a\n  expression: x\n  expression: y\n", "dup.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("dup.yaml:"), "{text}");
    assert!(text.contains("duplicate"), "{text}");
}

#[test]
fn duplicate_ids_name_both_positions() {
    let yaml = "- {id: a, expression: x}\n- {id: b, expression: y}\n- {name: a, expression: z}\n";
    let p = problems(parse_rules(yaml, "r.yaml").unwrap_err());
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].index, 2);
    assert_eq!(p[0].id.as_deref(), Some("a"));
    assert_eq!(p[0].field.as_deref(), Some("id"));
    assert_eq!(
        p[0].to_string(),
        "rules[2] (id `a`), field `id`: duplicate id `a`, already used by rules[0]"
    );
}

#[test]
fn every_bad_rule_is_reported() {
    let yaml = r#"
rules:
  - id: ok
    expression: never { x }
  - id: typo
    expresion: never { x }
    severty: HIGH
  - id: bad-sev
    expression: never { y }
    severity: urgent
  - 42
"#;
    let err = parse_rules(yaml, "many.yaml").unwrap_err();
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "many.yaml: rules[1] (id `typo`), field `expresion`: unknown field (did you mean `expression`?); expected one of id, name, description, expression (or condition), severity, tags, enabled",
            "many.yaml: rules[1] (id `typo`), field `severty`: unknown field (did you mean `severity`?); expected one of id, name, description, expression (or condition), severity, tags, enabled",
            "many.yaml: rules[1] (id `typo`), field `expression`: missing `expression` (or `condition`)",
            "many.yaml: rules[2] (id `bad-sev`), field `severity`: unknown severity `urgent`; expected one of CRITICAL, HIGH, MEDIUM, LOW",
            "many.yaml: rules[3]: expected a mapping with `id` and `expression`, found a number",
        ]
    );
}

#[test]
fn document_shape_errors() {
    let cases = [
        ("", "the rules file is empty"),
        ("# only a comment\n", "the rules file is empty"),
        ("\"a string\"", "found a string"),
        ("rule:\n  - id: a\n", "unknown top-level key `rule`"),
        (
            "rules: {id: a}\n",
            "`rules` must be a list, found a mapping",
        ),
        ("{}", "missing `rules`"),
    ];
    for (text, want) in cases {
        let err = parse_rules(text, "shape.yaml").unwrap_err();
        assert!(
            matches!(err, RulesFileError::Shape { .. }),
            "{text:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.starts_with("shape.yaml: "), "{msg}");
        assert!(msg.contains(want), "{text:?}: {msg}");
    }
}

#[test]
fn yaml_oddities() {
    // Non-finite numbers are refused where they stand.
    let err = parse_rules("- {id: a, expression: x, tags: [.nan]}\n", "f.yaml").unwrap_err();
    assert!(
        matches!(err, RulesFileError::Syntax { line: Some(1), .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a finite number"), "{err}");
    let p = problems(parse_rules("- {id: a, expression: 5}\n", "f.yaml").unwrap_err());
    assert_eq!(p[0].field.as_deref(), Some("expression"));
    assert_eq!(p[0].message, "expected a string, found a number");
    // Anchors and aliases resolve.
    let yaml = "- &base {id: a, expression: x, severity: high}\n- {id: b, expression: y}\n";
    let rules = parse_rules(yaml, "f.yaml").unwrap();
    assert_eq!(rules[0].severity, Severity::High);
}

#[test]
fn load_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, "rules:\n  - id: a\n    expression: never { x }\n").unwrap();
    let rules = load_rules_file(&path).unwrap();
    assert_eq!(rules, [Rule::new("a", "never { x }")]);
    let missing = dir.path().join("nope.yaml");
    let err = load_rules_file(&missing).unwrap_err();
    assert!(matches!(err, RulesFileError::Io { .. }));
    let text = err.to_string();
    assert!(text.starts_with(&missing.display().to_string()), "{text}");
    assert!(text.contains("cannot read"), "{text}");
    std::fs::write(&path, "- {id: a, expression: x, bogus: 1}\n").unwrap();
    let text = load_rules_file(&path).unwrap_err().to_string();
    assert!(
        text.starts_with(&format!(
            "{}: rules[0] (id `a`), field `bogus`",
            path.display()
        )),
        "{text}"
    );
}
