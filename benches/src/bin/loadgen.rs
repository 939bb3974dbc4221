//! Load generator for `betrace serve` (SERVER.md §1): starts the server as a process on
//! loopback ports, creates 20 rules over REST, sends OTLP/HTTP protobuf requests from several
//! connections for a fixed time, and reports accepted spans per second, request latency (p50,
//! p99), 429 answers, and the server's resident memory (peak and at the end, from
//! `/proc/PID/status`).
//!
//! Each request is an SDK-shaped batch of `--traces` traces of `--spans` spans (10 attributes
//! a span, `benches/src/lib.rs`), with fresh trace ids per request so no trace is split.
//!
//! `--quiet-rules` replaces the rules of `examples/rules.yaml` (which most traces of this
//! workload violate several times) by rules that run on every trace and never fire;
//! `--config FILE` passes a config file (e.g. `trace.max_buffered_spans`) to the server.
//!
//! ```sh
//! cargo build --release -p betrace-server -p betrace-benches
//! target/release/loadgen --betrace target/release/betrace --duration 30
//! ```

#![expect(
    clippy::panic,
    reason = "a benchmark tool: a failure ends the run with its message"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use betrace_benches::{otlp_request, realistic_rules};
use prost::Message as _;

struct Args {
    betrace: PathBuf,
    duration: Duration,
    connections: usize,
    traces: u64,
    spans: u64,
    rules: usize,
    quiet: bool,
    config: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --betrace PATH [--duration SECS] [--connections N] [--traces N] [--spans N] [--rules N] [--quiet-rules] [--config FILE]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        betrace: PathBuf::new(),
        duration: Duration::from_secs(30),
        connections: 4,
        traces: 50,
        spans: 20,
        rules: 20,
        quiet: false,
        config: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        let num = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--betrace" => a.betrace = PathBuf::from(value()),
            "--duration" => a.duration = Duration::from_secs(num(value())),
            "--connections" => a.connections = num(value()) as usize,
            "--traces" => a.traces = num(value()),
            "--spans" => a.spans = num(value()),
            "--rules" => a.rules = num(value()) as usize,
            "--config" => a.config = Some(PathBuf::from(value())),
            "--quiet-rules" => a.quiet = true,
            _ => usage(),
        }
    }
    if a.betrace.as_os_str().is_empty() {
        usage();
    }
    a
}

/// The server process, killed on drop.
struct ServerProcess {
    child: Child,
    http: String,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &Args) -> ServerProcess {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut cmd = Command::new(&args.betrace);
    cmd.arg("serve")
        .args(["--http-addr", "127.0.0.1:0", "--otlp-http-addr", "off"])
        .args(["--otlp-grpc-addr", "off", "--log-level", "warn"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("BETRACE_SIGNATURE_KEY", "loadgen")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(c) = &args.config {
        cmd.arg("--config").arg(c);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.betrace.display()));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .map(|a| format!("http://{a}"))
        .unwrap_or_else(|| panic!("the server did not start: {line:?}"));
    ServerProcess {
        child,
        http,
        _dir: dir,
    }
}

/// Resident memory of `pid` in bytes (`VmRSS`).
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let server = start_server(&args);
    let pid = server.child.id();
    let client = reqwest::Client::new();

    // The rules of examples/rules.yaml, repeated under new ids (most traces of the workload
    // violate several), or with --quiet-rules rules that run on every trace and never fire.
    let examples = realistic_rules(10);
    for i in 0..args.rules {
        let body = if args.quiet {
            let expression = if i % 2 == 0 {
                format!(
                    "when {{ checkout.where(order.amount > {}) }} always {{ fraud_check }}",
                    100_000 + i
                )
            } else {
                format!("never {{ db.query.where(retry.count > {}) }}", 10 + i)
            };
            serde_json::json!({"id": format!("quiet-{i}"), "expression": expression})
        } else {
            let Some(r) = examples.get(i % examples.len().max(1)) else {
                break;
            };
            serde_json::json!({
                "id": format!("{}-{i}", r.id),
                "expression": r.expression,
                "severity": r.severity.as_str(),
            })
        };
        let resp = client
            .post(format!("{}/v1/rules", server.http))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating a rule: {e}"));
        assert!(resp.status().is_success(), "rule {i}: {}", resp.status());
    }

    let template = otlp_request(args.traces, args.spans);
    let spans_per_request = args.traces * args.spans;
    let url = format!("{}/v1/traces", server.http);
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let next_trace = Arc::new(AtomicU64::new(1));
    let peak = Arc::new(AtomicU64::new(0));

    let sampler = {
        let stop = Arc::clone(&stop);
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let client = client.clone();
        let url = url.clone();
        let mut request = template.clone();
        let stop = Arc::clone(&stop);
        let accepted = Arc::clone(&accepted);
        let refused = Arc::clone(&refused);
        let next_trace = Arc::clone(&next_trace);
        let traces = args.traces;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let first = next_trace.fetch_add(traces, Ordering::Relaxed);
                for s in request
                    .resource_spans
                    .iter_mut()
                    .flat_map(|r| r.scope_spans.iter_mut())
                    .flat_map(|s| s.spans.iter_mut())
                {
                    let t = u64::from_be_bytes(s.trace_id[..8].try_into().unwrap_or([0; 8]));
                    let t = (t - 1) % traces + first;
                    s.trace_id[..8].copy_from_slice(&t.to_be_bytes());
                }
                let body = request.encode_to_vec();
                let sent = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                let took = sent.elapsed();
                match resp.map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        accepted.fetch_add(spans_per_request, Ordering::Relaxed);
                        latencies.push(took);
                    }
                    Ok(429) => {
                        refused.fetch_add(spans_per_request, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(other) => panic!("unexpected status {other}"),
                    Err(e) => panic!("request failed: {e}"),
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = sampler.await;
    latencies.sort();
    let end_rss = rss(pid);
    let metrics = client
        .get(format!("{}/metrics", server.http))
        .send()
        .await
        .ok();
    let metrics = match metrics {
        Some(m) => m.text().await.unwrap_or_default(),
        None => String::new(),
    };
    let metric = |name: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    };
    let acc = accepted.load(Ordering::Relaxed);
    println!("betrace serve load test (OTLP/HTTP protobuf, loopback)");
    println!(
        "  workload: {} {} rules, {} connections, {} traces x {} spans per request, {:.0} s",
        args.rules,
        if args.quiet { "quiet" } else { "examples" },
        args.connections,
        args.traces,
        args.spans,
        elapsed
    );
    println!(
        "  accepted: {acc} spans = {:.0} spans/s ({} requests)",
        acc as f64 / elapsed,
        latencies.len()
    );
    println!("  refused (429): {} spans", refused.load(Ordering::Relaxed));
    println!(
        "  latency per request: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  server RSS: peak {:.0} MiB, at the end {:.0} MiB",
        peak.load(Ordering::Relaxed) as f64 / 1048576.0,
        end_rss as f64 / 1048576.0
    );
    println!(
        "  server counters: traces evaluated {:.0}, violations {:.0}, buffered spans {:.0}",
        metric("betrace_traces_evaluated_total"),
        metric("betrace_violations_total"),
        metric("betrace_buffered_spans ")
    );
    println!(
        "  trace assembly: {:.0} traces evicted (released before their grace), {:.0} spans kept for re-evaluation",
        metric("betrace_traces_evaluated_total{completion_reason=\"evicted\"}"),
        metric("betrace_retained_spans ")
    );
}
