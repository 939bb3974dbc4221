//! Compile + run: a rule text and arbitrary spans; evaluation never panics.
#![no_main]

use betrace_core::engine::{EngineOptions, TestError, test_expression};
use betrace_core::{Span, Trace};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, Vec<Span>)| {
    let (rule, spans) = input;
    let trace = Trace::new(spans);
    let options = EngineOptions {
        instruction_budget: 100_000,
        ..EngineOptions::default()
    };
    match test_expression(&rule, &trace, &options) {
        Ok(_) | Err(TestError::Compile(_)) | Err(TestError::Eval(_)) => {}
    }
});
