//! Trace assembly (ENGINE.md §5) under arbitrary interleavings and from several threads:
//! every span comes out exactly once, in a trace of its own trace id, and the counters
//! account for every span.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    reason = "test helpers report failures by panicking"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use betrace_core::assemble::{
    AssemblerConfig, AssemblerStats, CompletedTrace, IngestOutcome, ManualClock, TraceAssembler,
};
use betrace_core::{CompletionReason, Resource, Span, SpanId, TraceId};
use proptest::prelude::*;

fn span(trace: u32, id: u64, root: bool) -> Span {
    let mut t = [0u8; 16];
    t[..4].copy_from_slice(&trace.to_be_bytes());
    t[15] = 1;
    Span {
        trace_id: TraceId(t),
        span_id: SpanId(id.to_be_bytes()),
        parent_span_id: if root { None } else { Some(SpanId([0xff; 8])) },
        name: "op".into(),
        kind: Default::default(),
        start_time_unix_nano: id,
        end_time_unix_nano: id + 1,
        status_code: Default::default(),
        status_message: String::new(),
        attributes: vec![],
        resource: Arc::new(Resource::with_service("svc")),
        scope_name: "".into(),
    }
}

type PerTrace = BTreeMap<TraceId, Vec<SpanId>>;

fn group<'a>(spans: impl IntoIterator<Item = &'a Span>) -> PerTrace {
    let mut m = PerTrace::new();
    for s in spans {
        m.entry(s.trace_id).or_default().push(s.span_id);
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

fn assert_accounted(s: &AssemblerStats) {
    assert_eq!(
        s.spans_in,
        s.spans_released + s.spans_buffered + s.spans_dropped.total(),
        "{s:?}"
    );
}

/// Collects released traces and checks each one as it comes out.
#[derive(Default)]
struct Sink {
    traces: Vec<CompletedTrace>,
    refused: Vec<Span>,
}

impl Sink {
    fn take(&mut self, out: Vec<CompletedTrace>, cap: usize) {
        for t in out {
            assert!(!t.spans.is_empty());
            assert!(
                t.spans.len() <= cap,
                "{} spans over cap {cap}",
                t.spans.len()
            );
            assert!(t.spans.iter().all(|s| s.trace_id == t.trace_id));
            self.traces.push(t);
        }
    }

    fn ingest(&mut self, a: &TraceAssembler, spans: Vec<Span>, cap: usize) {
        match a.ingest(spans) {
            IngestOutcome::Accepted { completed } => self.take(completed, cap),
            IngestOutcome::Refused { spans, .. } => self.refused.extend(spans),
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Ingest(usize),
    Advance(u64),
}

type Scenario = (
    Vec<(u32, Vec<bool>)>,
    Vec<usize>,
    Vec<Step>,
    AssemblerConfig,
);

fn scenario() -> impl Strategy<Value = Scenario> {
    let traces = prop::collection::vec(
        prop::collection::vec(prop::bool::weighted(0.1), 1..15),
        1..8,
    )
    .prop_map(|ts| {
        ts.into_iter()
            .enumerate()
            .map(|(i, roots)| (i as u32, roots))
            .collect::<Vec<_>>()
    });
    let config = (2usize..9, 3usize..40, 1usize..5, any::<bool>(), 3u64..60).prop_map(
        |(cap, max_buffered, shards, reject, max_age)| AssemblerConfig {
            max_trace_age: Duration::from_secs(max_age),
            max_spans_per_trace: cap,
            max_buffered_spans: max_buffered,
            shards,
            reject_when_full: reject,
            released_memory: Duration::from_secs(100_000),
            max_remembered_traces: 1_000_000,
            ..AssemblerConfig::default()
        },
    );
    let steps = prop::collection::vec(
        prop_oneof![
            3 => (1usize..10).prop_map(Step::Ingest),
            1 => (0u64..15_000).prop_map(Step::Advance),
        ],
        1..40,
    );
    (traces, steps, config).prop_flat_map(|(traces, steps, config)| {
        let n: usize = traces.iter().map(|(_, r)| r.len()).sum();
        let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        (Just(traces), order, Just(steps), Just(config))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_span_comes_out_once_in_its_trace((traces, order, steps, config) in scenario()) {
        let mut all = Vec::new();
        let mut next_id = 1u64;
        for (t, roots) in &traces {
            for root in roots {
                all.push(span(*t, next_id, *root));
                next_id += 1;
            }
        }
        let input = group(&all);
        let mut queue: Vec<Span> = order.iter().map(|&i| all[i].clone()).collect();
        queue.reverse();

        let cap = config.max_spans_per_trace;
        let clock = Arc::new(ManualClock::new(0));
        let a = TraceAssembler::with_clock(config, clock.clone()).unwrap();
        let mut sink = Sink::default();
        // The cycle always makes progress: it ends with an ingest.
        let mut steps = steps.into_iter().chain([Step::Ingest(1)]).cycle();
        while !queue.is_empty() {
            match steps.next() {
                Some(Step::Ingest(k)) => {
                    let batch: Vec<Span> = (0..k).filter_map(|_| queue.pop()).collect();
                    sink.ingest(&a, batch, cap);
                }
                Some(Step::Advance(ms)) => {
                    clock.advance(Duration::from_millis(ms));
                    sink.take(a.poll_expired(), cap);
                }
                None => unreachable!(),
            }
            assert_accounted(&a.stats());
        }
        sink.take(a.flush(), cap);
        let s = a.stats();
        assert_accounted(&s);
        prop_assert_eq!(s.spans_buffered, 0);
        prop_assert_eq!(s.traces_buffered, 0);
        prop_assert_eq!(s.spans_dropped.refused, sink.refused.len() as u64);
        prop_assert_eq!(s.traces_released.total(), sink.traces.len() as u64);

        // Released plus refused is exactly the input, per trace id.
        let mut out: Vec<&Span> = sink.traces.iter().flat_map(|t| &t.spans).collect();
        out.extend(&sink.refused);
        prop_assert_eq!(group(out), input);

        // The first fragment of each trace id is whole, the later ones partial, and late spans
        // are the spans of partial fragments.
        let mut seen = std::collections::HashSet::new();
        let mut partial_spans = 0u64;
        for t in &sink.traces {
            prop_assert_eq!(t.partial, !seen.insert(t.trace_id), "{:?}", t.trace_id);
            if t.partial {
                partial_spans += t.spans.len() as u64;
            }
        }
        prop_assert_eq!(s.late_spans, partial_spans);
        for (reason, n) in s.traces_released.by_reason() {
            let got = sink.traces.iter().filter(|t| t.reason == reason).count() as u64;
            prop_assert_eq!(n, got, "{}", reason);
        }
    }
}

fn run_threads(
    config: AssemblerConfig,
    threads: u32,
    traces_per_thread: u32,
    spans_per_trace: u64,
    poll: bool,
) -> (Vec<CompletedTrace>, AssemblerStats, PerTrace) {
    let clock = Arc::new(ManualClock::new(0));
    let a = Arc::new(TraceAssembler::with_clock(config, clock.clone()).unwrap());
    let mut expected = Vec::new();
    let mut per_thread: Vec<Vec<Vec<Span>>> = vec![Vec::new(); threads as usize];
    let mut id = 1u64;
    for th in 0..threads {
        for t in 0..traces_per_thread {
            let trace = th * traces_per_thread + t;
            let spans: Vec<Span> = (0..spans_per_trace)
                .map(|i| {
                    id += 1;
                    span(trace, id, i == 0)
                })
                .collect();
            expected.extend(spans.iter().cloned());
            // Half of each trace goes through this thread, half through the next one.
            let (x, y) = spans.split_at(spans.len() / 2);
            per_thread[th as usize].push(x.to_vec());
            per_thread[((th + 1) % threads) as usize].push(y.to_vec());
        }
    }
    let released = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = poll.then(|| {
        let (a, released, stop, clock) = (a.clone(), released.clone(), stop.clone(), clock.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                clock.advance(Duration::from_millis(1));
                let out = a.poll_expired();
                released.lock().extend(out);
                std::thread::yield_now();
            }
        })
    });
    let handles: Vec<_> = per_thread
        .into_iter()
        .map(|batches| {
            let (a, released) = (a.clone(), released.clone());
            std::thread::spawn(move || {
                // Batches of several trace halves, like OTLP export requests.
                for chunk in batches.chunks(3) {
                    let batch: Vec<Span> = chunk.iter().flatten().cloned().collect();
                    match a.ingest(batch) {
                        IngestOutcome::Accepted { completed } => released.lock().extend(completed),
                        IngestOutcome::Refused { reason, .. } => panic!("refused: {reason:?}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(p) = poller {
        p.join().unwrap();
    }
    let mut out = std::mem::take(&mut *released.lock());
    out.extend(a.flush());
    (out, a.stats(), group(&expected))
}

#[test]
fn concurrent_ingest_keeps_traces_whole() {
    let config = AssemblerConfig {
        shards: 8,
        ..AssemblerConfig::default()
    };
    let (out, stats, expected) = run_threads(config, 4, 500, 20, false);
    assert_accounted(&stats);
    assert_eq!(stats.spans_in, 4 * 500 * 20);
    // No time passed, no limit was reached: each trace comes out once, whole, at the flush.
    assert_eq!(out.len(), 2000);
    assert!(
        out.iter()
            .all(|t| t.reason == CompletionReason::Flush && !t.partial)
    );
    assert_eq!(group(out.iter().flat_map(|t| &t.spans)), expected);
    for t in &out {
        assert_eq!(t.spans.len(), 20);
    }
}

#[test]
fn concurrent_ingest_with_eviction_caps_and_polling_loses_nothing() {
    let config = AssemblerConfig {
        shards: 4,
        max_buffered_spans: 500,
        max_spans_per_trace: 7,
        root_grace: Duration::from_millis(3),
        idle_timeout: Duration::from_millis(5),
        ..AssemblerConfig::default()
    };
    let (out, stats, expected) = run_threads(config, 4, 300, 20, true);
    assert_accounted(&stats);
    assert_eq!(stats.spans_buffered, 0);
    assert_eq!(stats.spans_dropped.total(), 0);
    assert_eq!(stats.traces_released.total(), out.len() as u64);
    assert!(stats.traces_released.get(CompletionReason::SpanCap) > 0);
    assert_eq!(group(out.iter().flat_map(|t| &t.spans)), expected);
    assert!(out.iter().all(|t| t.spans.len() <= 7));
}
