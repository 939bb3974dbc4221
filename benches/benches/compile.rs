//! Rule compilation (ENGINE.md §8 "compile time per rule"): the earlier implementation's parse
//! workloads, parsed alone (`dsl/parse/*`) and parsed, checked and lowered to bytecode
//! (`dsl/compile/*`).

use std::hint::black_box;

use betrace_dsl::{Symbols, check_source, lower::lower, parser::parse};
use criterion::{Criterion, criterion_group, criterion_main};

const RULES: [(&str, &str); 4] = [
    ("simple", "when { payment } always { fraud_check }"),
    (
        "moderate",
        "when { payment.where(amount > 1000) } always { fraud_check } never { bypass }",
    ),
    (
        "complex",
        "when { payment.where(amount > 1000).where(currency == USD) and (customer.new or not customer.verified) } always { fraud_check and fraud_score.where(score < 0.3) } never { bypass or skip_validation }",
    ),
    (
        "with_counts",
        "when { count(http_request) > 100 and count(http_request) != count(http_response) } always { alert }",
    ),
];

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("dsl/parse");
    for (name, rule) in RULES {
        g.bench_function(name, |b| b.iter(|| black_box(parse(black_box(rule)).0.is_some())));
    }
    g.finish();
    let mut g = c.benchmark_group("dsl/compile");
    for (name, rule) in RULES {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut symbols = Symbols::new();
                let program = check_source(black_box(rule), &mut symbols).map(lower);
                black_box(program.map(|p| p.code().len()).unwrap_or(0))
            })
        });
    }
    g.finish();
}

criterion_group!(compile, benches);
criterion_main!(compile);
