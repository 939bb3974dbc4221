//! Keeps `docs/language.md` honest: every ```` ```betrace ```` block compiles, every
//! ```` ```betrace-error CODE ```` block reports CODE, every ```` ```betrace-format ```` block is
//! the canonical form of the `betrace` block before it, and the error table lists every code of
//! [`Code::ALL`] with its meaning and an example that reports it.
//!
//! In examples and table cells, `«TEXT × N»` stands for TEXT repeated N times (used for the
//! rules that exceed the length and nesting limits).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::path::PathBuf;

use betrace_dsl::{Code, Symbols, check_source, format, validate};

const DOC: &str = "../docs/language.md";

/// A fenced code block: its info string, its text and the line of its opening fence.
struct Block {
    info: String,
    text: String,
    line: usize,
}

fn doc() -> Result<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DOC);
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn blocks(doc: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        match open.as_mut() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    open = Some(Block {
                        info: info.trim().to_string(),
                        text: String::new(),
                        line: i + 1,
                    });
                }
            }
            Some(b) => {
                if line.trim_end() == "```" {
                    if b.text.ends_with('\n') {
                        b.text.pop();
                    }
                    out.extend(open.take());
                } else {
                    b.text.push_str(line);
                    b.text.push('\n');
                }
            }
        }
    }
    match open {
        Some(b) => Err(format!(
            "{DOC}: the code block of line {} is not closed",
            b.line
        )),
        None => Ok(out),
    }
}

/// Expands every `«TEXT × N»` into TEXT repeated N times.
fn expand(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('«') {
        out.push_str(&rest[..start]);
        let after = &rest[start + '«'.len_utf8()..];
        let end = after
            .find('»')
            .ok_or_else(|| format!("unclosed `«` in {text:?}"))?;
        let (unit, times) = after[..end]
            .rsplit_once(" × ")
            .ok_or_else(|| format!("`«…»` without ` × N` in {text:?}"))?;
        let times: usize = times
            .trim()
            .parse()
            .map_err(|_| format!("bad repeat count in {text:?}"))?;
        out.push_str(&unit.repeat(times));
        rest = &after[end + '»'.len_utf8()..];
    }
    out.push_str(rest);
    Ok(out)
}

fn code_named(name: &str) -> Option<Code> {
    Code::ALL.iter().copied().find(|c| c.as_str() == name)
}

fn describe(source: &str) -> String {
    let shown = if source.len() > 200 {
        let head: String = source.chars().take(200).collect();
        format!("{head}… ({} bytes)", source.len())
    } else {
        source.to_string()
    };
    let codes: Vec<String> = validate(source)
        .iter()
        .map(|d| format!("{} {}", d.code, d.message))
        .collect();
    format!("{shown:?} -> {codes:?}")
}

#[test]
fn examples_compile_or_report_their_code() {
    let doc = doc().unwrap();
    let blocks = blocks(&doc).unwrap();
    let mut failures = Vec::new();
    let (mut valid, mut errors, mut formats) = (0, 0, 0);
    let mut previous_rule: Option<String> = None;
    for b in &blocks {
        let source = match expand(&b.text) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("line {}: {e}", b.line));
                continue;
            }
        };
        let mut words = b.info.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("betrace"), None, _) => {
                valid += 1;
                if check_source(&source, &mut Symbols::new()).is_err() {
                    failures.push(format!(
                        "line {}: expected to compile: {}",
                        b.line,
                        describe(&source)
                    ));
                }
                previous_rule = Some(source);
            }
            (Some("betrace-error"), Some(code), None) => {
                errors += 1;
                if code_named(code).is_none() {
                    failures.push(format!("line {}: `{code}` is not a diagnostic code", b.line));
                } else if !validate(&source).iter().any(|d| d.code.as_str() == code) {
                    failures.push(format!(
                        "line {}: expected {code}: {}",
                        b.line,
                        describe(&source)
                    ));
                }
            }
            (Some("betrace-format"), None, _) => {
                formats += 1;
                match previous_rule.as_deref().map(format) {
                    None => failures.push(format!(
                        "line {}: a `betrace-format` block must follow a `betrace` block",
                        b.line
                    )),
                    Some(Err(d)) => failures.push(format!(
                        "line {}: the rule before it does not compile: {d:?}",
                        b.line
                    )),
                    Some(Ok(formatted)) if formatted != source => failures.push(format!(
                        "line {}: the canonical form is\n{formatted}\nbut the page shows\n{source}",
                        b.line
                    )),
                    Some(Ok(_)) => {}
                }
            }
            (Some(info), _, _) if info.starts_with("betrace") => failures.push(format!(
                "line {}: unknown block kind `{}` (use `betrace`, `betrace-error CODE` or `betrace-format`)",
                b.line, b.info
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(valid >= 40, "only {valid} `betrace` blocks found");
    assert!(
        errors >= Code::ALL.len(),
        "only {errors} `betrace-error` blocks found"
    );
    assert!(formats >= 1, "no `betrace-format` block found");
}

#[test]
fn every_code_has_an_example() {
    let doc = doc().unwrap();
    let blocks = blocks(&doc).unwrap();
    for code in Code::ALL {
        let wanted = format!("betrace-error {code}");
        assert!(
            blocks.iter().any(|b| b.info == wanted),
            "{DOC}: no ```{wanted} example"
        );
    }
}

/// Rows `| E302 | meaning | `example` |` of the error table.
#[test]
fn error_table_lists_every_code() {
    let doc = doc().unwrap();
    let mut seen = Vec::new();
    let mut failures = Vec::new();
    for (i, line) in doc.lines().enumerate() {
        let cells: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        // A row is `| code | meaning | example |`: empty cells before and after the bars.
        if cells.len() != 5 || !cells[0].is_empty() || !cells[4].is_empty() {
            continue;
        }
        let Some(code) = code_named(cells[1]) else {
            if cells[1].len() == 4
                && cells[1].starts_with('E')
                && cells[1][1..].bytes().all(|b| b.is_ascii_digit())
            {
                failures.push(format!(
                    "line {}: `{}` is not a diagnostic code",
                    i + 1,
                    cells[1]
                ));
            }
            continue;
        };
        seen.push(code);
        if cells[2] != code.meaning() {
            failures.push(format!(
                "line {}: {code} means {:?}, the table says {:?}",
                i + 1,
                code.meaning(),
                cells[2]
            ));
        }
        let example = cells[3].trim_matches('`').trim();
        if example.is_empty() {
            failures.push(format!("line {}: {code} has no example", i + 1));
            continue;
        }
        let source = match expand(example) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("line {}: {e}", i + 1));
                continue;
            }
        };
        if !validate(&source).iter().any(|d| d.code == code) {
            failures.push(format!(
                "line {}: expected {code}: {}",
                i + 1,
                describe(&source)
            ));
        }
    }
    for code in Code::ALL {
        let n = seen.iter().filter(|c| *c == code).count();
        if n != 1 {
            failures.push(format!("{code} appears {n} times in the error table"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn expansion_notation() {
    assert_eq!(expand("a«xy × 3»b«( × 2»").unwrap(), "axyxyxyb((");
    assert_eq!(expand("no marker").unwrap(), "no marker");
    assert!(expand("a«x × lots»").is_err());
    assert!(expand("a«x × 3").is_err());
    assert!(blocks("```betrace\npayment\n").is_err());
}
