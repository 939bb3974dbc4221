//! `betrace verify --key-file F VIOLATION.json` (SERVER.md §2, ENGINE.md §7).

use std::path::Path;

/// Exit 0 when the signature is valid, 1 when it is not (or missing), 2 on unreadable input.
pub fn run(key_file: &Path, violation: &Path) -> u8 {
    let key = match std::fs::read(key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {}: cannot read the key: {e}", key_file.display());
            return 2;
        }
    };
    let key = key
        .strip_suffix(b"\n")
        .map(|k| k.strip_suffix(b"\r").unwrap_or(k))
        .unwrap_or(&key);
    let text = match std::fs::read_to_string(violation) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", violation.display());
            return 2;
        }
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}: invalid JSON: {e}", violation.display());
            return 2;
        }
    };
    if value.get("signature").and_then(|s| s.as_str()).is_none() {
        eprintln!("{}: the violation is not signed", violation.display());
        return 1;
    }
    if betrace_core::sign::verify_json(&value, key) {
        outln!("{}: signature valid", violation.display());
        0
    } else {
        outln!("{}: signature INVALID", violation.display());
        1
    }
}
