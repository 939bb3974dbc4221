//! OTLP bytes → spans → assembler → evaluation: never panics, and every span that went in is
//! accounted for by the counters.
#![no_main]

use std::sync::{Arc, OnceLock};

use betrace_core::assemble::{AssemblerConfig, ManualClock};
use betrace_core::engine::{EngineOptions, RuleSet};
use betrace_core::rules::Rule;
use betrace_core::stream::StreamEngine;
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            Rule::new(
                "a",
                "when { payment.where(amount > 1000) } always { fraud_check }",
            ),
            Rule::new("b", "span.status == error and not has_parent(*)"),
            Rule::new(
                "c",
                "always { count(retry) < 3 } never { *.where(has_descendant(*, within 1s)) }",
            ),
            Rule::new(
                "d",
                "trace.has(span.duration > 1s) and trace.root_service == checkout",
            ),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let decoded = match betrace_core::decode_otlp_protobuf(data) {
        Ok(d) => d,
        Err(_) => match betrace_core::decode_otlp_json(data) {
            Ok(d) => d,
            Err(_) => return,
        },
    };
    let Ok(rules) = RuleSet::compile(
        rules().to_vec(),
        EngineOptions {
            instruction_budget: 1_000_000,
            ..EngineOptions::default()
        },
    ) else {
        return;
    };
    let config = AssemblerConfig {
        max_spans_per_trace: 16,
        max_buffered_spans: 64,
        ..AssemblerConfig::default()
    };
    let Ok(engine) = StreamEngine::with_clock(rules, config, Arc::new(ManualClock::new(0))) else {
        return;
    };
    let n = decoded.spans.len() as u64;
    let _ = engine.ingest(decoded.spans);
    let _ = engine.poll();
    let _ = engine.shutdown(std::time::Duration::ZERO);
    let stats = engine.assembler().stats();
    assert_eq!(stats.spans_in, n);
    assert_eq!(
        stats.spans_in,
        stats.spans_released + stats.spans_buffered + stats.spans_dropped.total()
    );
});
