//! The ingest benchmark under mimalloc, to compare allocators with the system one (`engine`).

use betrace_benches::bench_ingest;
use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    bench_ingest(c, "mimalloc");
}

criterion_group!(engine, benches);
criterion_main!(engine);
