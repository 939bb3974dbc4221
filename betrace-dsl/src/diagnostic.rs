//! Diagnostics of the rule compiler (DSL.md §4).
//!
//! In: problems found by the lexer, parser and checker. Out: [`Diagnostic`] values — a stable
//! code, a lower-case message with user text in backticks, labelled byte ranges and optional
//! help — rendered as text with the source line and a caret ([`render`], codespan-reporting)
//! or as the JSON shape the server and the bindings return ([`Diagnostic::to_json`],
//! [`DiagnosticJson`]).

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use serde::{Deserialize, Serialize};

use crate::codes::Code;

/// A half-open byte range `start..end` into the rule text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TextRange {
    pub start: usize,
    pub end: usize,
}

impl TextRange {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> TextRange {
        TextRange { start, end }
    }

    /// The smallest range covering both.
    pub fn cover(self, other: TextRange) -> TextRange {
        TextRange::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A labelled range of a diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub range: TextRange,
    /// Text shown under the caret; may be empty.
    pub message: String,
    /// The primary label marks where the problem is; secondary ones give context.
    pub primary: bool,
}

/// One compile error (DSL.md §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    /// Lower case, no final period, user text in backticks.
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

/// The JSON shape of a diagnostic (DSL.md §4), the one the server's errors, Python's
/// `Diagnostic.to_dict()` and Node's diagnostic objects are made of:
///
/// ```json
/// {"code":"E302","message":"…","line":1,"column":6,"start":5,"end":9,"help":null,
///  "ruleId":"slow","labels":[{"message":"…","line":1,"column":1,"start":0,"end":4}]}
/// ```
///
/// `start`/`end` are byte offsets into the UTF-8 rule text (`end` exclusive), `line` and
/// `column` 1-based (the column counted in Unicode scalar values) — all of the primary
/// range. `help` is always present (`null` without help). `ruleId` names the rule of a rule
/// set the diagnostic belongs to, and is absent for lone rule text; `labels` lists the
/// secondary ranges (context such as "first written here"), absent when there are none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticJson {
    pub code: String,
    pub message: String,
    pub line: usize,
    pub column: usize,
    pub start: usize,
    pub end: usize,
    pub help: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<LabelJson>,
}

/// A secondary range of a [`DiagnosticJson`], positions as in the diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelJson {
    /// Text shown under the range; may be empty.
    pub message: String,
    pub line: usize,
    pub column: usize,
    pub start: usize,
    pub end: usize,
}

impl DiagnosticJson {
    /// The same diagnostic attributed to the rule `rule_id`.
    pub fn with_rule_id(mut self, rule_id: impl Into<String>) -> DiagnosticJson {
        self.rule_id = Some(rule_id.into());
        self
    }
}

impl Diagnostic {
    /// A diagnostic with one primary label at `range`.
    pub fn new(code: Code, range: TextRange, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            labels: vec![Label {
                range,
                message: String::new(),
                primary: true,
            }],
            help: None,
        }
    }

    /// Adds help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the text under the primary caret.
    pub fn with_label_message(mut self, message: impl Into<String>) -> Diagnostic {
        if let Some(l) = self.labels.first_mut() {
            l.message = message.into();
        }
        self
    }

    /// Adds a secondary label.
    pub fn with_secondary(mut self, range: TextRange, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            range,
            message: message.into(),
            primary: false,
        });
        self
    }

    /// The primary range (`0..0` when there is no label).
    pub fn range(&self) -> TextRange {
        self.labels.first().map(|l| l.range).unwrap_or_default()
    }

    /// The JSON shape, with lines and columns computed against `source`; no `ruleId`
    /// ([`DiagnosticJson::with_rule_id`] adds it).
    pub fn to_json(&self, source: &str) -> DiagnosticJson {
        let range = self.range();
        let (line, column) = line_column(source, range.start);
        let labels = self
            .labels
            .iter()
            .filter(|l| !l.primary)
            .map(|l| {
                let (line, column) = line_column(source, l.range.start);
                LabelJson {
                    message: l.message.clone(),
                    line,
                    column,
                    start: l.range.start,
                    end: l.range.end,
                }
            })
            .collect();
        DiagnosticJson {
            code: self.code.as_str().to_string(),
            message: self.message.clone(),
            line,
            column,
            start: range.start,
            end: range.end,
            help: self.help.clone(),
            rule_id: None,
            labels,
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error[{}]: {}", self.code.as_str(), self.message)
    }
}

/// 1-based line and column (in Unicode scalar values) of byte `offset` in `source`. An offset
/// inside a character or past the end is clamped.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = source[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Renders diagnostics as text: `error[E101]: …`, the source line, a caret under the range and
/// the help. `origin` names the rule (a file name or rule id) in the `-->` line.
pub fn render(diagnostics: &[Diagnostic], origin: &str, source: &str) -> String {
    let file = SimpleFile::new(origin, source);
    let config = term::Config::default();
    let mut out = String::new();
    for d in diagnostics {
        let labels = d
            .labels
            .iter()
            .map(|l| {
                let (start, end) = clamp(source, l.range);
                let label = if l.primary {
                    cs::Label::primary((), start..end)
                } else {
                    cs::Label::secondary((), start..end)
                };
                label.with_message(l.message.clone())
            })
            .collect();
        let mut diag = cs::Diagnostic::error()
            .with_code(d.code.as_str())
            .with_message(d.message.clone())
            .with_labels(labels);
        if let Some(help) = &d.help {
            diag = diag.with_notes(vec![format!("help: {help}")]);
        }
        match term::emit_into_string(&config, &file, &diag) {
            Ok(s) => out.push_str(&s),
            Err(_) => {
                out.push_str(&d.to_string());
                out.push('\n');
            }
        }
    }
    out
}

fn clamp(source: &str, range: TextRange) -> (usize, usize) {
    let mut start = range.start.min(source.len());
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = range.end.clamp(start, source.len());
    while !source.is_char_boundary(end) {
        end += 1;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn json(d: &DiagnosticJson) -> String {
        serde_json::to_string_pretty(d).unwrap()
    }

    #[test]
    fn json_shapes() {
        let source = "when { a }\nalways { ß == 1 }";
        let plain = Diagnostic::new(Code::E302, TextRange::new(20, 28), "type mismatch");
        insta::assert_snapshot!("diagnostic_plain", json(&plain.to_json(source)));
        let full = plain
            .clone()
            .with_help("compare with a string")
            .with_secondary(TextRange::new(0, 4), "first written here");
        let j = full.to_json(source).with_rule_id("slow");
        insta::assert_snapshot!("diagnostic_rule_id_help_labels", json(&j));
        let back: DiagnosticJson = serde_json::from_str(&json(&j)).unwrap();
        assert_eq!(back, j);
        let without: DiagnosticJson = serde_json::from_str(
            r#"{"code":"E101","message":"m","line":1,"column":1,"start":0,"end":1,"help":null}"#,
        )
        .unwrap();
        assert_eq!(without.rule_id, None);
        assert!(without.labels.is_empty());
    }

    #[test]
    fn compiler_secondary_labels_reach_the_json() {
        let source = "when { a } always { b } always { c }";
        let d = crate::validate(source);
        let labelled: Vec<DiagnosticJson> = d
            .iter()
            .map(|d| d.to_json(source))
            .filter(|j| !j.labels.is_empty())
            .collect();
        insta::assert_snapshot!(
            "diagnostic_repeated_clause",
            serde_json::to_string_pretty(&labelled).unwrap()
        );
    }
}
