//! Reading trace files for `check` and `test`, recognised by content, not by name: gzip
//! (inflated, at most [`MAX_INFLATED_BYTES`]), then OTLP/JSON or simple-JSON spans (one
//! document, or several one after another: one per line, or pretty-printed back to back) or
//! OTLP protobuf. A document in another format (Jaeger, Zipkin, a wrapped API response) is an
//! error naming what was found.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use betrace_core::{Decoded, Span, decode_json, decode_otlp_protobuf};

/// Largest size a gzip trace file may inflate to, in bytes (1 GiB): a bound, so that a
/// corrupt or hostile file cannot exhaust memory.
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;

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

fn file_error(message: String) -> LoadError {
    LoadError {
        message,
        span: None,
    }
}

/// Expands files and directories (recursively, in name order) into files. In a directory,
/// files ending in `.json`, `.jsonl`, `.ndjson`, `.pb` (each also with `.gz`) are read.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let meta = std::fs::metadata(p).map_err(|e| file_error(format!("{}: {e}", p.display())))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| file_error(format!("{}: {e}", p.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|e| e.is_dir() || is_trace_file_name(e))
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

fn is_trace_file_name(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    [".json", ".jsonl", ".ndjson", ".pb"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// All spans of one file (see the module documentation for what is read). Any malformed
/// span fails the file, naming the span.
pub fn load_file(path: &Path) -> Result<Vec<Span>, LoadError> {
    let name = path.display().to_string();
    let raw = std::fs::read(path).map_err(|e| file_error(format!("{name}: {e}")))?;
    let bytes = inflate(&name, raw)?;
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let Some(&first) = first else {
        // An empty file holds no spans (the callers warn or fail on that).
        return Ok(Vec::new());
    };
    let text = std::str::from_utf8(body);
    if !matches!(first, b'{' | b'[') || path.extension().and_then(|x| x.to_str()) == Some("pb") {
        match decode_otlp_protobuf(body) {
            // Text that happens to decode as protobuf holds no spans: read it as JSON below,
            // whose error says what is wrong with it.
            Ok(decoded) if decoded.total() > 0 || text.is_err() => {
                let mut spans = Vec::new();
                take(decoded, &mut spans, &name)?;
                return Ok(spans);
            }
            Ok(_) => {}
            Err(e) if text.is_err() => {
                return Err(file_error(format!(
                    "{name}: neither OTLP/JSON nor simple-JSON text nor OTLP protobuf ({e})"
                )));
            }
            Err(_) => {}
        }
    }
    let text = text.map_err(|e| file_error(format!("{name}: not UTF-8 text: {e}")))?;
    load_json_documents(&name, text)
}

/// `bytes` inflated when they start with the gzip magic number (RFC 1952; several members
/// are read one after another), else unchanged.
fn inflate(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, LoadError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| file_error(format!("{name}: corrupt gzip data: {e}")))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(file_error(format!(
            "{name}: gzip data inflates to more than {MAX_INFLATED_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Every JSON document of `text`, one after another (separated by white space or not, as
/// `serde_json`'s stream reader takes them). A file of one document names errors by the file,
/// a file of several by `file:line` of the document's first line.
fn load_json_documents(name: &str, text: &str) -> Result<Vec<Span>, LoadError> {
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let (mut line, mut counted) = (1usize, 0usize);
    loop {
        let end_of_previous = stream.byte_offset();
        let Some(item) = stream.next() else { break };
        let value = item.map_err(|e| file_error(format!("{name}: invalid JSON: {e}")))?;
        let rest = text.get(end_of_previous..).unwrap_or("");
        let start = end_of_previous + (rest.len() - rest.trim_start().len());
        line += text
            .get(counted..start)
            .map_or(0, |s| s.bytes().filter(|&b| b == b'\n').count());
        counted = start;
        documents.push((line, value));
    }
    let several = documents.len() > 1;
    let mut spans = Vec::new();
    for (line, value) in documents {
        let origin = if several {
            format!("{name}:{line}")
        } else {
            name.to_owned()
        };
        let decoded = decode_json(&value).map_err(|e| file_error(format!("{origin}: {e}")))?;
        take(decoded, &mut spans, &origin)?;
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
