//! Reading trace files for `check` and `test`: OTLP protobuf (`.pb`), OTLP/JSON and
//! simple-JSON spans, one document per file or one per line.

use std::path::{Path, PathBuf};

use betrace_core::{Decoded, Span, decode_json, decode_otlp_protobuf};

/// A problem with one input file, naming the file (and span, where there is one).
#[derive(Debug)]
pub struct LoadError {
    pub message: String,
    /// Index of a malformed span within its document, counted from 0.
    pub span: Option<usize>,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Expands files and directories (recursively, in name order) into files.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let meta = std::fs::metadata(p).map_err(|e| LoadError {
        message: format!("{}: {e}", p.display()),
        span: None,
    })?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| LoadError {
                message: format!("{}: {e}", p.display()),
                span: None,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|e| {
                e.is_dir()
                    || matches!(
                        e.extension().and_then(|x| x.to_str()),
                        Some("json" | "jsonl" | "ndjson" | "pb")
                    )
            })
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out)?;
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

/// All spans of one file. Any malformed span fails the file, naming the span.
pub fn load_file(path: &Path) -> Result<Vec<Span>, LoadError> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| LoadError {
        message: format!("{name}: {e}"),
        span: None,
    })?;
    let mut spans = Vec::new();
    if path.extension().and_then(|x| x.to_str()) == Some("pb") {
        let decoded = decode_otlp_protobuf(&bytes).map_err(|e| LoadError {
            message: format!("{name}: {e}"),
            span: None,
        })?;
        take(decoded, &mut spans, &name.to_string())?;
        return Ok(spans);
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| LoadError {
        message: format!("{name}: not UTF-8 text: {e}"),
        span: None,
    })?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => {
            let decoded = decode_json(&value).map_err(|e| LoadError {
                message: format!("{name}: {e}"),
                span: None,
            })?;
            take(decoded, &mut spans, &name.to_string())?;
        }
        Err(whole) => {
            // One JSON document per line (an OTLP/JSON file exporter's output).
            let mut any = false;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                any = true;
                let value: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| LoadError {
                        message: format!("{name}:{}: invalid JSON: {e}", n + 1),
                        span: None,
                    })?;
                let decoded = decode_json(&value).map_err(|e| LoadError {
                    message: format!("{name}:{}: {e}", n + 1),
                    span: None,
                })?;
                take(decoded, &mut spans, &format!("{name}:{}", n + 1))?;
            }
            if !any {
                return Err(LoadError {
                    message: format!("{name}: invalid JSON: {whole}"),
                    span: None,
                });
            }
        }
    }
    Ok(spans)
}

fn take(decoded: Decoded, spans: &mut Vec<Span>, origin: &str) -> Result<(), LoadError> {
    if let Some(e) = decoded.rejected.first() {
        return Err(LoadError {
            message: format!("{origin}: {e}"),
            span: Some(e.index),
        });
    }
    spans.extend(decoded.spans);
    Ok(())
}
