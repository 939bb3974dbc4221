//! Several `betrace serve` instances behind trace-id routing (docs/deployment.md), with the
//! Collector's `loadbalancing` exporter simulated by `tests/scale/router.py` (its hash ring
//! and retries; no Collector build is available to the tests). Three instances with their own
//! SQLite data directories export `betrace.violation` spans to the test OTLP receiver; the
//! OpenTelemetry Python SDK sends a few thousand shop traces to the router.
//!
//! Checked: every trace is evaluated by exactly one instance (no partial evaluation, nothing
//! dropped), the union of the instances' violations equals what one instance finds on the same
//! traffic, every violation reaches the receiver inside its own trace; then one instance is
//! stopped (SIGTERM) with traces half sent and restarted on the same data directory: nothing
//! acknowledged is lost. Throughput through the router, one instance against three, is printed
//! (benches/README.md quotes it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const TRACES: usize = 3000;

fn scale_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scale")
        .join(name)
}

/// A Python helper that prints `listening PORT` once bound; killed on drop.
struct Helper {
    child: Child,
    port: u16,
}

impl Helper {
    fn start(mut cmd: Command) -> Helper {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("{cmd:?} did not start: {line:?}"))
            .parse()
            .unwrap();
        Helper { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver(out: &Path) -> Helper {
    let mut cmd = Command::new(python());
    cmd.arg(sdk("receiver.py"))
        .args(["--protocol", "http", "--out"])
        .arg(out);
    Helper::start(cmd)
}

fn router(backends: &[&Server]) -> Helper {
    let list: Vec<String> = backends
        .iter()
        .map(|s| {
            s.otlp_http
                .as_deref()
                .unwrap()
                .trim_start_matches("http://")
                .to_owned()
        })
        .collect();
    let mut cmd = Command::new(python());
    cmd.arg(scale_file("router.py"))
        .args(["--backends", &list.join(",")]);
    Helper::start(cmd)
}

/// An instance as docs/deployment.md runs it: the rules file, its own SQLite data
/// directory, violations exported over OTLP/HTTP to `receiver`. `idle_timeout` is long so
/// that a trace waiting for its root is still buffered when the instance is stopped.
fn instance(dir: &Path, receiver: &Helper) -> Server {
    let rules = dir.join("rules.yaml");
    if !rules.exists() {
        let mut text = String::from("rules:\n");
        for r in shop_rules() {
            text += &format!(
                "  - id: {}\n    severity: {}\n    expression: '{}'\n",
                r["id"].as_str().unwrap(),
                r["severity"].as_str().unwrap(),
                r["expression"].as_str().unwrap()
            );
        }
        std::fs::write(&rules, text).unwrap();
        std::fs::write(
            dir.join("betrace.yaml"),
            "trace:\n  root_grace: 200ms\n  idle_timeout: 30s\n  max_trace_age: 60s\n",
        )
        .unwrap();
    }
    Server::start(Opts {
        args: vec![
            "--config".into(),
            dir.join("betrace.yaml").display().to_string(),
            "--rules".into(),
            rules.display().to_string(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--otel-endpoint".into(),
            receiver.url(),
            "--otlp-protocol".into(),
            "http/protobuf".into(),
        ],
        ..Opts::default()
    })
}

/// The traffic script, running; `finish` waits for its summary.
struct Traffic {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stdin: Option<ChildStdin>,
}

impl Traffic {
    fn start(endpoint: &str, traces: usize, split: usize) -> Traffic {
        let mut child = Command::new(python())
            .arg(scale_file("traffic.py"))
            .args(["--endpoint", endpoint, "--traces", &traces.to_string()])
            .args(["--split", &split.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Traffic {
            stdout: BufReader::new(child.stdout.take().unwrap()),
            stdin: child.stdin.take(),
            child,
        }
    }

    fn expect_line(&mut self, what: &str) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with(what), "expected {what:?}, got {line:?}");
        line
    }

    fn resume(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }

    fn finish(mut self) -> Value {
        let line = self.expect_line("{");
        assert!(self.child.wait().unwrap().success());
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (rule id, trace id) of every violation the traffic must produce (traffic.py docs).
fn expected(sent: &Value) -> BTreeSet<(String, String)> {
    let split: BTreeSet<&str> = sent["split"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut out = BTreeSet::new();
    for (i, t) in sent["traces"].as_array().unwrap().iter().enumerate() {
        let t = t.as_str().unwrap();
        if i % 6 == 0 {
            out.insert(("large-order-fraud".to_owned(), t.to_owned()));
        }
        if i % 5 == 0 || split.contains(t) {
            out.insert(("payment-must-not-fail".to_owned(), t.to_owned()));
        }
    }
    out
}

fn all_violations(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let q = match &cursor {
            Some(c) => format!("?limit=1000&cursor={c}"),
            None => "?limit=1000".to_owned(),
        };
        let (st, body) = s.get(&format!("/v1/violations{q}"));
        assert_eq!(st, 200, "{body}");
        out.extend(body["violations"].as_array().unwrap().iter().cloned());
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("too many pages");
}

fn summary(vs: &[Value]) -> BTreeSet<(String, String)> {
    vs.iter()
        .map(|v| {
            (
                v["ruleId"].as_str().unwrap().to_owned(),
                v["traceId"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn metric_sum(s: &Server, prefix: &str) -> f64 {
    let (_, text) = s.get_text("/metrics");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn router_stats(r: &Helper) -> Value {
    let body = reqwest::blocking::get(format!("{}/stats", r.url()))
        .unwrap()
        .text()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Waits until the receiver holds a `betrace.violation` span for every id in `ids`.
fn received_violation_spans(out: &Path, ids: &BTreeSet<String>) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let spans: Vec<Value> = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let got: BTreeSet<String> = spans
            .iter()
            .filter_map(|s| s["attributes"]["betrace.violation.id"].as_str())
            .map(str::to_owned)
            .collect();
        if ids.is_subset(&got) {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} violation spans received",
            ids.intersection(&got).count(),
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spans_per_second(sent: &Value) -> f64 {
    sent["spans"].as_f64().unwrap() / sent["seconds"].as_f64().unwrap()
}

/// Run by its own step of `scripts/test-all.sh` (it prints the throughput).
#[test]
#[ignore = "about 30 s of traffic: run with --ignored, as scripts/test-all.sh does"]
fn three_instances_behind_trace_id_routing() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("violation-spans.jsonl");
    let recv = receiver(&out);
    let dirs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let d = work.path().join(format!("betrace-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();

    // One instance alone, through the same router: the reference result and throughput.
    let single = instance(&dirs[3], &recv);
    let single_router = router(&[&single]);
    let sent_single = Traffic::start(&single_router.url(), TRACES, 0).finish();
    single.flush();
    let single_found = summary(&all_violations(&single));
    assert_eq!(single_found, expected(&sent_single));

    // Three instances.
    let mut servers: Vec<Server> = dirs[..3].iter().map(|d| instance(d, &recv)).collect();
    let lb = router(&servers.iter().collect::<Vec<_>>());
    let sent = Traffic::start(&lb.url(), TRACES, 0).finish();
    for s in &servers {
        s.flush();
    }
    let per_instance: Vec<Vec<Value>> = servers.iter().map(all_violations).collect();
    let mut union = BTreeSet::new();
    for vs in &per_instance {
        for v in vs {
            assert_eq!(v["partial"], false, "{v}");
            // Each violation exactly once over all instances.
            let key = (
                v["ruleId"].as_str().unwrap().to_owned(),
                v["traceId"].as_str().unwrap().to_owned(),
            );
            assert!(union.insert(key), "violation found twice: {v}");
        }
        assert!(!vs.is_empty(), "an instance got no violations");
    }
    assert_eq!(union, expected(&sent));
    assert_eq!(union.len(), single_found.len());
    let spans = sent["spans"].as_f64().unwrap();
    assert_eq!(spans, sent_single["spans"].as_f64().unwrap());
    let mut evaluated = 0.0;
    for s in &servers {
        assert_eq!(metric_sum(s, "betrace_spans_dropped_total"), 0.0);
        assert_eq!(metric_sum(s, "betrace_late_spans_total"), 0.0);
        evaluated += metric_sum(s, "betrace_traces_evaluated_total");
    }
    // Every trace evaluated once, by exactly one instance.
    assert_eq!(evaluated, TRACES as f64);
    let received: f64 = servers
        .iter()
        .map(|s| metric_sum(s, "betrace_spans_received_total"))
        .sum();
    assert_eq!(received, spans);
    // Every violation reached the receiver inside its own trace.
    let ids: BTreeSet<String> = per_instance
        .iter()
        .flatten()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    let got = received_violation_spans(&out, &ids);
    let by_id: BTreeMap<&str, &Value> = got
        .iter()
        .filter_map(|s| Some((s["attributes"]["betrace.violation.id"].as_str()?, s)))
        .collect();
    for v in per_instance.iter().flatten() {
        let span = by_id[v["id"].as_str().unwrap()];
        assert_eq!(span["name"], "betrace.violation");
        assert_eq!(span["trace_id"], v["traceId"]);
        // Child of the violation's span: its first trigger span, else its first offending span.
        let parent = v["spanId"].as_str().unwrap();
        assert!(!parent.is_empty());
        assert_eq!(span["parent_span_id"], parent);
    }
    let one = spans_per_second(&sent_single);
    let three = spans_per_second(&sent);
    eprintln!(
        "scale-out throughput through the router ({} spans, {TRACES} traces): one instance {one:.0} spans/s, three instances {three:.0} spans/s ({:.2}x)",
        spans,
        three / one
    );

    // Stop one instance with traces half sent, restart it on the same data directory.
    let stats_before = router_stats(&lb);
    let split = 60;
    let mut traffic = Traffic::start(&lb.url(), TRACES, split);
    traffic.expect_line("children-sent");
    let victim = 1;
    let status = servers[victim].terminate();
    assert!(status.success(), "{status}");
    traffic.resume();
    // The router retries what the stopped instance does not take; restart it meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    let port = servers[victim]
        .otlp_http
        .clone()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let restarted = restart_on(&dirs[victim], &recv, &port);
    servers[victim] = restarted;
    let sent2 = traffic.finish();
    for s in &servers {
        s.flush();
    }
    let stats = router_stats(&lb);
    assert_eq!(stats["failed_requests"], stats_before["failed_requests"]);
    let victim_addr = servers[victim]
        .otlp_http
        .as_deref()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let b = &stats["backends"][&victim_addr];
    let before = &stats_before["backends"][&victim_addr];
    assert!(
        b["retries"].as_u64().unwrap() > before["retries"].as_u64().unwrap(),
        "the router never had to retry: {stats}"
    );
    // Nothing acknowledged lost: every expected violation of the second run was found.
    let all: Vec<Value> = servers.iter().flat_map(all_violations).collect();
    let found = summary(&all);
    let missing: Vec<_> = expected(&sent2).difference(&found).cloned().collect();
    assert!(missing.is_empty(), "missing violations: {missing:?}");
    // What the stop split: fragments evaluated at shutdown say so.
    let split_ids: BTreeSet<&str> = sent2["split"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let shutdown: Vec<&Value> = all
        .iter()
        .filter(|v| split_ids.contains(v["traceId"].as_str().unwrap()))
        .filter(|v| v["completionReason"] == "shutdown")
        .collect();
    assert!(
        !shutdown.is_empty(),
        "no split trace was evaluated at shutdown"
    );
    // Their remaining spans reached the restarted instance after the restart: late spans,
    // evaluated as partial fragments, their violations marked partial.
    assert!(metric_sum(&servers[victim], "betrace_late_spans_total") > 0.0);
    let partial: Vec<&Value> = all.iter().filter(|v| v["partial"] == true).collect();
    assert!(
        !partial.is_empty(),
        "no partial violation after the restart"
    );
    let expected2 = expected(&sent2);
    for v in &all {
        let key = (
            v["ruleId"].as_str().unwrap().to_owned(),
            v["traceId"].as_str().unwrap().to_owned(),
        );
        if v["partial"] == true {
            assert!(
                split_ids.contains(key.1.as_str()),
                "partial but not split: {v}"
            );
        } else {
            // A violation a whole trace would not have comes from a split trace, and says so.
            assert!(expected2.contains(&key) || union.contains(&key), "{v}");
        }
    }
    eprintln!(
        "stop and restart: {} violations of split traces evaluated at shutdown, {} partial violations after the restart; the router retried {} times",
        shutdown.len(),
        partial.len(),
        b["retries"].as_u64().unwrap() - before["retries"].as_u64().unwrap()
    );
    for s in &servers {
        assert_eq!(metric_sum(s, "betrace_spans_dropped_total"), 0.0);
    }
}

/// Starts an instance again on `dir` and on the same OTLP/HTTP port (the router's ring
/// names the endpoint).
fn restart_on(dir: &Path, recv: &Helper, otlp_port: &str) -> Server {
    Server::start(Opts {
        args: vec![
            "--config".into(),
            dir.join("betrace.yaml").display().to_string(),
            "--rules".into(),
            dir.join("rules.yaml").display().to_string(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--otel-endpoint".into(),
            recv.url(),
            "--otlp-protocol".into(),
            "http/protobuf".into(),
            "--otlp-http-addr".into(),
            format!("127.0.0.1:{otlp_port}"),
        ],
        ..Opts::default()
    })
}
