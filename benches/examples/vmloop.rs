#![allow(clippy::unwrap_used)]
use betrace_core::*;
use betrace_dsl::ir::*;
use std::hint::black_box;
use std::time::Instant;
fn main() {
    let mut sy = Symbols::new();
    let pay = sy.intern_span_name("payment");
    let fc = sy.intern_span_name("fraud_check");
    let by = sy.intern_span_name("bypass");
    let amount = sy.intern_attribute_key("amount");
    let rule = Rule {
        body: Body::Block {
            when: Some(Cond::Exists(Selection {
                target: Target::Name(pay),
                filters: vec![Pred::Compare {
                    lhs: Operand::Attribute {
                        key: amount,
                        scope: AttrScope::SpanThenResource,
                    },
                    op: CmpOp::Gt,
                    rhs: Operand::Literal(Literal::Int(1000)),
                }],
            })),
            always: Some(Cond::Exists(Selection {
                target: Target::Name(fc),
                filters: vec![],
            })),
            never: Some(Cond::Exists(Selection {
                target: Target::Name(by),
                filters: vec![],
            })),
        },
        regexes: vec![],
    };
    let program = betrace_dsl::lower::lower(rule);
    let empty = betrace_dsl::lower::lower(Rule {
        body: Body::Block {
            when: None,
            always: Some(Cond::And(vec![])),
            never: None,
        },
        regexes: vec![],
    });
    let basic = betrace_dsl::lower::lower(Rule {
        body: Body::Block {
            when: Some(Cond::Exists(Selection {
                target: Target::Name(fc),
                filters: vec![],
            })),
            always: Some(Cond::Exists(Selection {
                target: Target::Name(fc),
                filters: vec![],
            })),
            never: None,
        },
        regexes: vec![],
    });
    let spans: Vec<Span> = (0..10u64)
        .map(|i| Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId((i + 1).to_be_bytes()),
            parent_span_id: None,
            name: if i == 3 {
                "fraud_check".to_string()
            } else {
                format!("operation_{}", i % 10)
            },
            kind: SpanKind::Internal,
            start_time_unix_nano: i,
            end_time_unix_nano: i + 1,
            status_code: StatusCode::Ok,
            status_message: String::new(),
            attributes: vec![],
            resource: Default::default(),
            scope_name: String::new(),
        })
        .collect();
    let trace = Trace::new(spans);
    let prepared = PreparedTrace::new(&trace, &sy);
    let opts = EvalOptions::default();
    let progs = [
        ("evaluator", &program),
        ("halt-only", &empty),
        ("basic", &basic),
    ];
    let mut best = [f64::MAX; 3];
    let only: Option<usize> = std::env::var("ONLY").ok().and_then(|s| s.parse().ok());
    for _ in 0..15 {
        for (k, (_, p)) in progs.iter().enumerate() {
            if only.is_some_and(|o| o != k) {
                continue;
            }
            let n = 2_000_000u64;
            let t = Instant::now();
            for _ in 0..n {
                black_box(evaluate(black_box(p), black_box(&prepared), &opts));
            }
            best[k] = best[k].min(t.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    for (k, (name, _)) in progs.iter().enumerate() {
        print!("{name} {:.2} ns  ", best[k]);
    }
    println!();
}
