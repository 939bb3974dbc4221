//! Rules and rules files (ENGINE.md §3).
//!
//! In: rule definitions as JSON values, or the text of a rules file in YAML or JSON — either
//! `{rules: [Rule…]}` or a bare list of rules. Out: [`Rule`]s with every default applied, or
//! an error that names the file, the rule (index, and id when known), the field, and the line
//! and column where the parser reports one. Expressions are not compiled here.
//!
//! A rule in a file:
//!
//! ```yaml
//! rules:
//!   - id: large-order-fraud          # slug [A-Za-z0-9._-]{1,128}; defaults to `name` when that is a slug
//!     name: Large order fraud        # defaults to the id
//!     description: every large order is checked for fraud   # default ""
//!     expression: |                  # `condition` is accepted as an alias
//!       when { checkout.where(amount > 1000) } always { fraud_check }
//!     severity: high                 # CRITICAL | HIGH | MEDIUM | LOW, any case; default MEDIUM
//!     tags: [payments]               # default []
//!     enabled: true                  # default true
//! ```
//!
//! Typos must not pass silently: an unknown key (in a rule, or next to `rules`), a key given
//! twice, two rules with the same id, or a value of the wrong type is an error. Every problem
//! of every rule is reported, not only the first.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::violation::Severity;

/// One rule (ENGINE.md §3). Serializes as
/// `{"id","name","description","expression","severity","tags","enabled"}` with the severity in
/// upper case; deserializes with the defaults and checks of the module docs.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Rule {
    /// Unique within a rule set; a slug (`[A-Za-z0-9._-]{1,128}`).
    pub id: String,
    /// Display name; the id when not given.
    pub name: String,
    pub description: String,
    /// Rule text in the BeTrace DSL (DSL.md), not yet compiled.
    pub expression: String,
    pub severity: Severity,
    pub tags: Vec<String>,
    pub enabled: bool,
}

impl Rule {
    /// A rule with the given id and expression and every other field at its default (name =
    /// id, severity MEDIUM, enabled, no tags, empty description). The id is not checked; see
    /// [`is_slug`].
    pub fn new(id: impl Into<String>, expression: impl Into<String>) -> Rule {
        let id = id.into();
        Rule {
            name: id.clone(),
            id,
            description: String::new(),
            expression: expression.into(),
            severity: Severity::default(),
            tags: Vec::new(),
            enabled: true,
        }
    }

    /// Reads one rule from a JSON object, applying defaults. Reports every problem found, each
    /// naming its field.
    pub fn from_json_value(value: &Value) -> Result<Rule, RuleError> {
        rule_from_value(value)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rule, D::Error> {
        let tree = Tree::deserialize(deserializer)?;
        Rule::from_json_value(&tree.0).map_err(de::Error::custom)
    }
}

/// True for a slug: 1 to 128 characters from `A-Z a-z 0-9 . _ -` (the id rule of SERVER.md's
/// `POST /v1/rules`).
pub fn is_slug(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One problem with one field of a rule.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FieldProblem {
    /// The key the problem is about (`severity`, `tags[2]`, an unknown key); `None` for the
    /// rule as a whole.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The problems of one rule given as a JSON value ([`Rule::from_json_value`]).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{}", join(problems, "; "))]
pub struct RuleError {
    /// The id, when the value names one (or a name it can be derived from).
    pub id: Option<String>,
    /// At least one.
    pub problems: Vec<FieldProblem>,
}

/// One problem with one rule of a rules file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RuleProblem {
    /// Position of the rule in the file's list, from 0.
    pub index: usize,
    /// The rule's id, when known.
    pub id: Option<String>,
    /// The key the problem is about, `None` for the rule as a whole.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rules[{}]", self.index)?;
        if let Some(id) = &self.id {
            write!(f, " (id `{id}`)")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The syntax a rules file was read as.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileFormat {
    Json,
    Yaml,
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Json => "JSON",
            FileFormat::Yaml => "YAML",
        })
    }
}

/// Why a rules file could not be loaded. Every variant's message starts with the file (the
/// `origin` given to [`parse_rules`], or the path).
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    /// The file could not be read.
    #[error("{}: cannot read the rules file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid JSON / YAML (or repeats a key); 1-based line and column when the
    /// parser gives them.
    #[error("{origin}{}: invalid {format}: {message}", location(*line, *column))]
    Syntax {
        origin: String,
        format: FileFormat,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// The document is not a list of rules nor a mapping with a `rules` list.
    #[error("{origin}: {message}")]
    Shape { origin: String, message: String },
    /// One or more rules are invalid; one entry per problem, in file order.
    #[error("{}", problems.iter().map(|p| format!("{origin}: {p}")).collect::<Vec<_>>().join("\n"))]
    Rules {
        origin: String,
        problems: Vec<RuleProblem>,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn join<T: fmt::Display>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Reads and parses a rules file ([`parse_rules`]); the path is the origin in errors.
pub fn load_rules_file(path: impl AsRef<Path>) -> Result<Vec<Rule>, RulesFileError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| RulesFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_rules(&text, &path.display().to_string())
}

/// Parses the text of a rules file. `origin` names the file in errors. The text is JSON when
/// its first non-blank character is `{` or `[` and it parses as JSON (JSON errors are
/// reported then), YAML otherwise. A leading byte-order mark is ignored. An empty document is
/// an error; an empty list is not.
pub fn parse_rules(text: &str, origin: &str) -> Result<Vec<Rule>, RulesFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = parse_tree(text, origin)?;
    let list = match doc {
        Value::Array(items) => items,
        Value::Object(mut map) => {
            if let Some(key) = map.keys().find(|k| *k != "rules") {
                return Err(RulesFileError::Shape {
                    origin: origin.to_owned(),
                    message: format!(
                        "unknown top-level key `{key}`; a rules file is a list of rules or a mapping with only `rules`"
                    ),
                });
            }
            match map.remove("rules") {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(RulesFileError::Shape {
                        origin: origin.to_owned(),
                        message: format!("`rules` must be a list, found {}", kind(&other)),
                    });
                }
                None => {
                    return Err(RulesFileError::Shape {
                        origin: origin.to_owned(),
                        message: "missing `rules`: a rules file is a list of rules or a mapping with `rules`".to_owned(),
                    });
                }
            }
        }
        Value::Null => {
            return Err(RulesFileError::Shape {
                origin: origin.to_owned(),
                message: "the rules file is empty; write `rules: []` for no rules".to_owned(),
            });
        }
        other => {
            return Err(RulesFileError::Shape {
                origin: origin.to_owned(),
                message: format!(
                    "expected a list of rules or a mapping with `rules`, found {}",
                    kind(&other)
                ),
            });
        }
    };

    rules_from_json_values(&list).map_err(|problems| RulesFileError::Rules {
        origin: origin.to_owned(),
        problems,
    })
}

/// Reads a list of rules given as JSON values (the items of a rules file's list, or the rule
/// objects a binding receives), applying defaults. Errors: every problem of every rule, in
/// list order, including ids used twice.
pub fn rules_from_json_values(list: &[Value]) -> Result<Vec<Rule>, Vec<RuleProblem>> {
    let mut rules = Vec::with_capacity(list.len());
    let mut problems = Vec::new();
    let mut seen: ahash::AHashMap<String, usize> = ahash::AHashMap::new();
    for (index, item) in list.iter().enumerate() {
        match rule_from_value(item) {
            Ok(rule) => {
                if let Some(&first) = seen.get(&rule.id) {
                    problems.push(RuleProblem {
                        index,
                        id: Some(rule.id.clone()),
                        field: Some("id".to_owned()),
                        message: format!(
                            "duplicate id `{}`, already used by rules[{first}]",
                            rule.id
                        ),
                    });
                } else {
                    seen.insert(rule.id.clone(), index);
                }
                rules.push(rule);
            }
            Err(e) => {
                if let Some(id) = &e.id {
                    seen.entry(id.clone()).or_insert(index);
                }
                problems.extend(e.problems.into_iter().map(|p| RuleProblem {
                    index,
                    id: e.id.clone(),
                    field: p.field,
                    message: p.message,
                }));
            }
        }
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

fn parse_tree(text: &str, origin: &str) -> Result<Value, RulesFileError> {
    let first = text.trim_start().chars().next();
    if matches!(first, Some('{' | '[')) {
        match serde_json::from_str::<Tree>(text) {
            Ok(tree) => return Ok(tree.0),
            Err(json_err) => {
                // YAML flow style (`[{id: a, …}]`) also starts with a bracket.
                if let Ok(tree) = serde_yaml_ng::from_str::<Tree>(text) {
                    return Ok(tree.0);
                }
                let line = json_err.line();
                let column = json_err.column();
                return Err(RulesFileError::Syntax {
                    origin: origin.to_owned(),
                    format: FileFormat::Json,
                    message: strip_location(&json_err.to_string()),
                    line: (line > 0).then_some(line),
                    column: (line > 0).then_some(column),
                });
            }
        }
    }
    serde_yaml_ng::from_str::<Tree>(text)
        .map(|t| t.0)
        .map_err(|e| {
            let loc = e.location();
            RulesFileError::Syntax {
                origin: origin.to_owned(),
                format: FileFormat::Yaml,
                message: strip_location(&e.to_string()),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
            }
        })
}

/// Removes every ` at line N column M` (both parsers add one, YAML sometimes mid-sentence)
/// since the error carries the position separately, and the `.` that YAML paths into a bare
/// list start with (`.[0]: …`).
fn strip_location(message: &str) -> String {
    const MARK: &str = " at line ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i]);
        let after = &rest[i + MARK.len()..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(after);
        let tail = &after[n..];
        match tail.strip_prefix(" column ") {
            Some(col) if n > 0 && digits(col) > 0 => rest = &col[digits(col)..],
            _ => {
                out.push_str(MARK);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    match out.strip_prefix(".[") {
        Some(tail) => format!("[{tail}"),
        None => out,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

const FIELDS: &str = "id, name, description, expression (or condition), severity, tags, enabled";
const KNOWN: [&str; 8] = [
    "id",
    "name",
    "description",
    "expression",
    "condition",
    "severity",
    "tags",
    "enabled",
];

fn rule_from_value(value: &Value) -> Result<Rule, RuleError> {
    let Value::Object(map) = value else {
        return Err(RuleError {
            id: None,
            problems: vec![FieldProblem {
                field: None,
                message: format!(
                    "expected a mapping with `id` and `expression`, found {}",
                    kind(value)
                ),
            }],
        });
    };
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| {
        problems.push(FieldProblem {
            field: Some(field.to_owned()),
            message,
        })
    };

    for key in map.keys() {
        if !KNOWN.contains(&key.as_str()) {
            let hint = suggestion(key)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            problem(
                key,
                format!("unknown field{hint}; expected one of {FIELDS}"),
            );
        }
    }

    let id = opt_string(map, "id", &mut problem);
    let name = opt_string(map, "name", &mut problem);
    let description = opt_string(map, "description", &mut problem).unwrap_or_default();

    let expression = match (map.get("expression"), map.get("condition")) {
        (Some(e), Some(c)) if !e.is_null() && !c.is_null() => {
            problem(
                "condition",
                "both `expression` and its alias `condition` are given; keep one".to_owned(),
            );
            None
        }
        _ => {
            let e = opt_string(map, "expression", &mut problem);
            let c = opt_string(map, "condition", &mut problem);
            e.or(c)
        }
    };
    let expression = match expression {
        Some(e) if e.trim().is_empty() => {
            problem("expression", "the expression is empty".to_owned());
            None
        }
        Some(e) => Some(e),
        None if map.get("expression").is_some_and(|v| !v.is_null())
            || map.get("condition").is_some_and(|v| !v.is_null()) =>
        {
            None // already reported
        }
        None => {
            problem(
                "expression",
                "missing `expression` (or `condition`)".to_owned(),
            );
            None
        }
    };

    let severity = match map.get("severity") {
        None | Some(Value::Null) => Severity::default(),
        Some(Value::String(s)) => {
            s.parse()
                .unwrap_or_else(|e: crate::violation::ParseSeverityError| {
                    problem("severity", e.to_string());
                    Severity::default()
                })
        }
        Some(other) => {
            problem(
                "severity",
                format!(
                    "expected one of CRITICAL, HIGH, MEDIUM, LOW, found {}",
                    kind(other)
                ),
            );
            Severity::default()
        }
    };

    let mut tags = Vec::new();
    match map.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => tags.push(s.clone()),
                    other => problem(
                        &format!("tags[{i}]"),
                        format!("expected a string, found {}", kind(other)),
                    ),
                }
            }
        }
        Some(other) => problem(
            "tags",
            format!("expected a list of strings, found {}", kind(other)),
        ),
    }

    let enabled = match map.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            problem(
                "enabled",
                format!("expected true or false, found {}", kind(other)),
            );
            true
        }
    };

    let id = match id {
        Some(id) if is_slug(&id) => Some(id),
        Some(id) => {
            problem(
                "id",
                format!(
                    "`{id}` is not a valid id: use 1 to 128 characters from A-Z, a-z, 0-9, `.`, `_`, `-`"
                ),
            );
            Some(id)
        }
        None => match &name {
            Some(n) if is_slug(n) => Some(n.clone()),
            Some(n) => {
                problem(
                    "id",
                    format!(
                        "missing `id`, and the name `{n}` cannot serve as one (1 to 128 characters from A-Z, a-z, 0-9, `.`, `_`, `-`)"
                    ),
                );
                None
            }
            None => {
                problem("id", "missing `id`".to_owned());
                None
            }
        },
    };

    match (id, expression) {
        (Some(id), Some(expression)) if problems.is_empty() => Ok(Rule {
            name: name.filter(|n| !n.is_empty()).unwrap_or_else(|| id.clone()),
            id,
            description,
            expression,
            severity,
            tags,
            enabled,
        }),
        (id, _) => Err(RuleError { id, problems }),
    }
}

/// A string field; absent or `null` is `None`; another type is a problem.
fn opt_string(
    map: &Map<String, Value>,
    key: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<String> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problem(key, format!("expected a string, found {}", kind(other)));
            None
        }
    }
}

/// The known field closest to `key`, compared case-insensitively.
fn suggestion(key: &str) -> Option<&'static str> {
    betrace_dsl::check::closest(&key.to_ascii_lowercase(), &KNOWN)
}

/// A JSON-shaped tree read from either parser, refusing repeated keys (which `serde_json`
/// would otherwise resolve silently to the last) and non-finite numbers.
struct Tree(Value);

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Tree, D::Error> {
        deserializer.deserialize_any(TreeVisitor).map(Tree)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("`{v}` is not a finite number")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Tree::deserialize(d).map(|t| t.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Tree(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let Tree(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_values_report_every_problem_and_duplicate_ids() {
        let rules = rules_from_json_values(&[
            json!({"id": "a", "expression": "never { x }"}),
            json!({"id": "b", "expression": "never { y }", "severity": "high"}),
        ])
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].severity, Severity::High);
        let problems = rules_from_json_values(&[
            json!({"id": "a", "expression": "never { x }"}),
            json!({"id": "a", "expression": "never { y }"}),
            json!({"id": "c", "expression": "never { z }", "severity": "urgent"}),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 2);
        assert_eq!(
            (problems[0].index, problems[0].field.as_deref()),
            (1, Some("id"))
        );
        assert_eq!(
            (problems[1].index, problems[1].field.as_deref()),
            (2, Some("severity"))
        );
    }

    #[test]
    fn defaults_and_alias() {
        let r = Rule::from_json_value(&json!({"id": "a", "condition": "never { x }"})).unwrap();
        assert_eq!(r, Rule::new("a", "never { x }"));
        assert_eq!(r.name, "a");
        assert_eq!(r.severity, Severity::Medium);
        assert!(r.enabled);
        let r = Rule::from_json_value(&json!({
            "name": "slow-checkout", "expression": "span.duration > 1s", "severity": "critical",
            "tags": ["a", "b"], "enabled": false, "description": "d"
        }))
        .unwrap();
        assert_eq!(r.id, "slow-checkout");
        assert_eq!(r.severity, Severity::Critical);
        assert_eq!(r.tags, ["a", "b"]);
        assert!(!r.enabled);
        let out = serde_json::to_value(&r).unwrap();
        assert_eq!(
            out,
            json!({"id": "slow-checkout", "name": "slow-checkout", "description": "d",
                   "expression": "span.duration > 1s", "severity": "CRITICAL",
                   "tags": ["a", "b"], "enabled": false})
        );
        let back: Rule = serde_json::from_value(out).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let e = Rule::from_json_value(&json!({
            "id": "x", "expresion": "a", "severity": "urgent", "tags": ["ok", 3], "enabled": "yes"
        }))
        .unwrap_err();
        assert_eq!(e.id.as_deref(), Some("x"));
        let fields: Vec<_> = e
            .problems
            .iter()
            .map(|p| p.field.clone().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["expresion", "expression", "severity", "tags[1]", "enabled"]
        );
        assert!(
            e.problems[0].message.contains("did you mean `expression`?"),
            "{e}"
        );
        assert!(e.problems[2].message.contains("unknown severity `urgent`"));
    }

    #[test]
    fn ids() {
        assert!(is_slug("a.b_c-D9"));
        assert!(!is_slug(""));
        assert!(!is_slug("has space"));
        assert!(!is_slug(&"a".repeat(129)));
        assert!(is_slug(&"a".repeat(128)));
        let e =
            Rule::from_json_value(&json!({"name": "Large order", "expression": "x"})).unwrap_err();
        assert_eq!(e.problems[0].field.as_deref(), Some("id"));
        assert!(e.problems[0].message.contains("`Large order`"));
        let e = Rule::from_json_value(&json!({"id": "a b", "expression": "x"})).unwrap_err();
        assert!(e.problems[0].message.contains("not a valid id"));
        let e = Rule::from_json_value(&json!({"expression": "x"})).unwrap_err();
        assert_eq!(e.problems[0].message, "missing `id`");
        let e = Rule::from_json_value(&json!({"id": "a", "expression": "x", "condition": "y"}))
            .unwrap_err();
        assert_eq!(e.problems[0].field.as_deref(), Some("condition"));
        let e = Rule::from_json_value(&json!({"id": "a", "expression": "  "})).unwrap_err();
        assert_eq!(e.problems[0].message, "the expression is empty");
        let e = Rule::from_json_value(&json!("a")).unwrap_err();
        assert!(e.problems[0].message.contains("found a string"));
    }

    #[test]
    fn strip_location_only_strips_positions() {
        assert_eq!(strip_location("bad thing at line 3 column 7"), "bad thing");
        assert_eq!(strip_location("bad thing at line x"), "bad thing at line x");
        assert_eq!(
            strip_location("did not find '-' at line 3 column 4, while parsing"),
            "did not find '-', while parsing"
        );
        assert_eq!(strip_location(".[0]: duplicate key"), "[0]: duplicate key");
        assert_eq!(strip_location("plain"), "plain");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggestion("severty"), Some("severity"));
        assert_eq!(suggestion("expresion"), Some("expression"));
        assert_eq!(suggestion("Enable"), Some("enabled"));
        assert_eq!(suggestion("zzzzzz"), None);
    }
}
