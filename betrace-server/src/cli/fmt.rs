//! `betrace fmt [--check] FILE…` (SERVER.md §2): canonical formatting (DSL.md §5) of the rule
//! expressions in rules files.
//!
//! JSON files are rewritten with two-space indentation. In YAML files only the expression
//! scalars are replaced, so comments and the rest of the layout stay as written: a
//! single-line result becomes a single-quoted scalar, a multi-line one a `|-` block scalar.
//! Multi-line plain or quoted scalars are left as they are.

use std::path::Path;

use betrace_core::rules::parse_rules;
use betrace_dsl::render;

/// Exit 0 when all files are (or were made) canonical, 1 when `--check` finds a file to
/// rewrite or a rule does not compile, 2 when a file cannot be read or written.
pub fn run(check: bool, files: &[std::path::PathBuf]) -> u8 {
    let mut worst = 0u8;
    for file in files {
        let code = one(check, file);
        worst = worst.max(code);
    }
    worst
}

fn one(check: bool, path: &Path) -> u8 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: cannot read: {e}", path.display());
            return 2;
        }
    };
    let origin = path.display().to_string();
    let rules = match parse_rules(&text, &origin) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut status = 0;
    let mut formatted = Vec::with_capacity(rules.len());
    for rule in &rules {
        match betrace_dsl::format(&rule.expression) {
            Ok(f) => formatted.push((rule.expression.clone(), f)),
            Err(diags) => {
                eprint!(
                    "{}",
                    render(
                        &diags,
                        &format!("{origin} (rule `{}`)", rule.id),
                        &rule.expression
                    )
                );
                status = 1;
                formatted.push((rule.expression.clone(), rule.expression.clone()));
            }
        }
    }
    let is_json = text.trim_start().starts_with(['{', '[']);
    let new_text = if is_json {
        rewrite_json(&text, &formatted)
    } else {
        Some(rewrite_yaml(&text, &formatted))
    };
    let Some(new_text) = new_text else {
        eprintln!("error: {origin}: cannot rewrite the file");
        return 2;
    };
    if new_text == text {
        return status;
    }
    if check {
        outln!("{origin}: not formatted");
        return 1;
    }
    if let Err(e) = std::fs::write(path, new_text) {
        eprintln!("error: {origin}: cannot write: {e}");
        return 2;
    }
    outln!("{origin}: formatted");
    status
}

fn rewrite_json(text: &str, formatted: &[(String, String)]) -> Option<String> {
    let mut doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let list = match &mut doc {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => o.get_mut("rules")?.as_array_mut()?,
        _ => return None,
    };
    let mut changed = false;
    for (item, (old, new)) in list.iter_mut().zip(formatted) {
        if old == new {
            continue;
        }
        if let Some(obj) = item.as_object_mut() {
            for key in ["expression", "condition"] {
                if let Some(v) = obj.get_mut(key) {
                    *v = serde_json::Value::String(new.clone());
                    changed = true;
                }
            }
        }
    }
    if !changed {
        return Some(text.to_string());
    }
    let mut out = serde_json::to_string_pretty(&doc).ok()?;
    out.push('\n');
    Some(out)
}

/// Replaces the `expression:`/`condition:` scalars of a YAML rules file, in order.
fn rewrite_yaml(text: &str, formatted: &[(String, String)]) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = String::with_capacity(text.len());
    let mut next = formatted.iter();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some((key_col, value_start)) = expression_key(line) else {
            out.push_str(line);
            i += 1;
            continue;
        };
        let rest = line[value_start..].trim_end_matches(['\n', '\r']);
        let trimmed = rest.trim();
        // Extent of the scalar: block scalars take the following more-indented lines.
        let mut end = i + 1;
        if trimmed.starts_with('|') || trimmed.starts_with('>') {
            while end < lines.len() {
                let l = lines[end];
                let indent = l.len() - l.trim_start().len();
                if l.trim().is_empty() || indent > key_col {
                    end += 1;
                } else {
                    break;
                }
            }
            while end > i + 1 && lines[end - 1].trim().is_empty() {
                end -= 1;
            }
        }
        let Some((old, new)) = next.next() else {
            out.push_str(line);
            i += 1;
            continue;
        };
        // Only replace when this scalar really holds that rule's expression.
        let snippet: String = std::iter::once(format!("k: {}\n", rest.trim_start()))
            .chain(lines[i + 1..end].iter().map(|s| s.to_string()))
            .collect();
        let current: Option<String> = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&snippet)
            .ok()
            .and_then(|v| v.get("k").and_then(|s| s.as_str().map(str::to_string)));
        if current.as_deref() != Some(old.as_str()) || old == new {
            for l in &lines[i..end] {
                out.push_str(l);
            }
            i = end;
            continue;
        }
        out.push_str(&line[..value_start]);
        if new.contains('\n') {
            out.push_str("|-\n");
            let pad = " ".repeat(key_col + 2);
            for l in new.lines() {
                if !l.is_empty() {
                    out.push_str(&pad);
                }
                out.push_str(l);
                out.push('\n');
            }
        } else {
            out.push('\'');
            out.push_str(&new.replace('\'', "''"));
            out.push_str("'\n");
        }
        i = end;
    }
    out
}

/// For a line `  expression: …` or `- condition: …`: (column of the key, byte where the value
/// starts).
fn expression_key(line: &str) -> Option<(usize, usize)> {
    let indent = line.len() - line.trim_start().len();
    let mut rest = &line[indent..];
    let mut col = indent;
    if let Some(r) = rest.strip_prefix("- ") {
        let extra = r.len() - r.trim_start().len();
        col += 2 + extra;
        rest = r.trim_start();
    }
    for key in ["expression:", "condition:"] {
        if let Some(r) = rest.strip_prefix(key) {
            let ws = r.len() - r.trim_start().len();
            return Some((col, col + key.len() + ws));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keeps_comments_and_rewrites_expressions() {
        let text = "# rules\nrules:\n  - id: a # first\n    expression: when {payment}   always {fraud_check}\n    severity: HIGH\n  - id: b\n    expression: |\n      span.status==error\n";
        let formatted = vec![
            (
                "when {payment}   always {fraud_check}".to_string(),
                "when { payment }\nalways { fraud_check }".to_string(),
            ),
            (
                "span.status==error\n".to_string(),
                "span.status == error".to_string(),
            ),
        ];
        let out = rewrite_yaml(text, &formatted);
        assert_eq!(
            out,
            "# rules\nrules:\n  - id: a # first\n    expression: |-\n      when { payment }\n      always { fraud_check }\n    severity: HIGH\n  - id: b\n    expression: 'span.status == error'\n"
        );
        let rules = parse_rules(&out, "x").unwrap();
        assert_eq!(
            rules[0].expression,
            "when { payment }\nalways { fraud_check }"
        );
        assert_eq!(rules[1].expression, "span.status == error");
    }
}
