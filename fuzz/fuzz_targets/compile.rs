//! Text → compile: any bytes give a compiled rule or diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ast, diags) = betrace_dsl::parser::parse_bytes(data);
    if let (Some(_), true) = (ast, diags.is_empty())
        && let Ok(text) = std::str::from_utf8(data)
    {
        let mut symbols = betrace_dsl::Symbols::new();
        if let Ok(rule) = betrace_dsl::check_source(text, &mut symbols) {
            let _ = betrace_dsl::lower::lower(rule);
            let _ = betrace_dsl::format(text);
        }
    }
});
