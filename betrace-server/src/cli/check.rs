//! `betrace check --rules FILE [--fail-on SEV] [--format text|json|junit] TRACES…`
//! (SERVER.md §2): every rule against every trace found in the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use betrace_core::engine::{EngineOptions, RuleSet, TraceContext};
use betrace_core::group_by_trace;
use betrace_core::rules::load_rules_file;
use betrace_core::violation::{Severity, Violation};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::CheckFormat;
use super::load::{expand, load_file};

/// Exit 0 when nothing at or above `fail_on` fired, 1 when something did, 2 on bad input,
/// rules that do not compile, or rule evaluation errors.
pub fn run(rules_path: &Path, fail_on: &str, format: CheckFormat, traces: &[PathBuf]) -> u8 {
    let Ok(fail_on) = Severity::from_str(fail_on) else {
        eprintln!("error: --fail-on: `{fail_on}` is not a severity (LOW, MEDIUM, HIGH, CRITICAL)");
        return 2;
    };
    let rules = match load_rules_file(rules_path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let rule_set = match RuleSet::compile(rules, EngineOptions::default()) {
        Ok(rs) => rs,
        Err(failures) => {
            for f in &failures {
                eprint!("{}", f.render());
            }
            eprintln!("{} rules do not compile", failures.len());
            return 2;
        }
    };
    let files = match expand(traces) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut spans = Vec::new();
    let mut bad_input = false;
    for f in &files {
        match load_file(f) {
            Ok(s) if s.is_empty() => {
                eprintln!("warning: {}: the file holds no spans", f.display());
            }
            Ok(s) => spans.extend(s),
            Err(e) => {
                eprintln!("error: {e}");
                bad_input = true;
            }
        }
    }
    if bad_input {
        return 2;
    }
    let traces = group_by_trace(spans);
    let results = rule_set.evaluate_many(&traces, TraceContext::direct());
    let mut violations: Vec<Violation> = Vec::new();
    let mut errors = 0;
    for r in results {
        violations.extend(r.violations);
        for e in r.errors {
            eprintln!(
                "error: rule `{}` on trace {}: {}",
                e.rule_id, e.trace_id, e.error
            );
            errors += 1;
        }
    }
    violations.sort_by(|a, b| (&a.rule_id, &a.trace_id).cmp(&(&b.rule_id, &b.trace_id)));
    match format {
        CheckFormat::Text => print_text(&rule_set, &violations, files.len(), traces.len()),
        CheckFormat::Json => {
            for v in &violations {
                match serde_json::to_string(v) {
                    Ok(s) => outln!("{s}"),
                    Err(e) => eprintln!("error: {e}"),
                }
            }
        }
        CheckFormat::Junit => match junit(&rule_set, &violations, fail_on) {
            Ok(xml) => outln!("{xml}"),
            Err(e) => {
                eprintln!("error: cannot write JUnit XML: {e}");
                return 2;
            }
        },
    }
    if errors > 0 {
        return 2;
    }
    if violations.iter().any(|v| v.severity >= fail_on) {
        1
    } else {
        0
    }
}

fn print_text(rules: &RuleSet, violations: &[Violation], files: usize, traces: usize) {
    for v in violations {
        outln!("{:<8} {} — {}", v.severity.as_str(), v.rule_id, v.rule_name);
        outln!("    {}", v.message_detail());
        outln!(
            "    trace {}  failed clause: {}",
            v.trace_id,
            v.failed_clause
        );
        for s in v.trigger_spans.iter().take(5) {
            outln!("    trigger   {} {} ({})", s.span_id, s.name, s.service);
        }
        for s in v.offending_spans.iter().take(5) {
            outln!("    offending {} {} ({})", s.span_id, s.name, s.service);
        }
    }
    outln!(
        "{} violations; {} rules, {} traces, {} files",
        violations.len(),
        rules.len(),
        traces,
        files
    );
}

/// JUnit XML: one test suite, one test case per rule; a rule with violations at or above
/// `fail_on` fails, listing them.
fn junit(
    rules: &RuleSet,
    violations: &[Violation],
    fail_on: Severity,
) -> Result<String, std::io::Error> {
    let mut by_rule: BTreeMap<&str, Vec<&Violation>> = BTreeMap::new();
    for v in violations {
        by_rule.entry(v.rule_id.as_str()).or_default().push(v);
    }
    let failures = rules
        .rules()
        .filter(|r| {
            by_rule
                .get(r.id.as_str())
                .is_some_and(|vs| vs.iter().any(|v| v.severity >= fail_on))
        })
        .count();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let tests = rules.len().to_string();
    let failures = failures.to_string();
    let mut suites = BytesStart::new("testsuites");
    suites.push_attribute(("name", "betrace"));
    suites.push_attribute(("tests", tests.as_str()));
    suites.push_attribute(("failures", failures.as_str()));
    w.write_event(Event::Start(suites))?;
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", "betrace rules"));
    suite.push_attribute(("tests", tests.as_str()));
    suite.push_attribute(("failures", failures.as_str()));
    suite.push_attribute(("errors", "0"));
    w.write_event(Event::Start(suite))?;
    for rule in rules.rules() {
        let mut case = BytesStart::new("testcase");
        case.push_attribute(("classname", "betrace.rules"));
        case.push_attribute(("name", rule.id.as_str()));
        let found = by_rule.get(rule.id.as_str()).cloned().unwrap_or_default();
        let failing: Vec<&&Violation> = found.iter().filter(|v| v.severity >= fail_on).collect();
        if found.is_empty() {
            w.write_event(Event::Empty(case))?;
            continue;
        }
        w.write_event(Event::Start(case))?;
        let details: String = found
            .iter()
            .map(|v| format!("{} trace {}: {}\n", v.severity, v.trace_id, v.message))
            .collect();
        if let Some(first) = failing.first() {
            let message = format!("{} violations; first: {}", failing.len(), first.message);
            let mut f = BytesStart::new("failure");
            f.push_attribute(("message", message.as_str()));
            f.push_attribute(("type", first.severity.as_str()));
            w.write_event(Event::Start(f))?;
            w.write_event(Event::Text(BytesText::new(&details)))?;
            w.write_event(Event::End(BytesEnd::new("failure")))?;
        } else {
            w.write_event(Event::Start(BytesStart::new("system-out")))?;
            w.write_event(Event::Text(BytesText::new(&details)))?;
            w.write_event(Event::End(BytesEnd::new("system-out")))?;
        }
        w.write_event(Event::End(BytesEnd::new("testcase")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    String::from_utf8(w.into_inner()).map_err(std::io::Error::other)
}
