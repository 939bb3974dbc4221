//! `betrace serve` under hostile or failing conditions, as a real process on loopback:
//! slow and half-open connections under a low open-files limit, SIGKILL with acknowledged
//! spans not yet evaluated (the ingest spool), and a data directory that fills up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Opens a connection and sends `bytes`, then nothing more.
fn half_open(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut t = TcpStream::connect(addr).unwrap();
    t.write_all(bytes).unwrap();
    t
}

/// True when the server closes `t` before `deadline` (end of stream or reset).
fn closed_by(t: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        t.set_read_timeout(Some(left)).unwrap();
        match t.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn half_open_connections_do_not_lock_out_clients() {
    let header_timeout = Duration::from_secs(4);
    let mut s = Server::start_with(
        &["prlimit", "--nofile=256", "--"],
        Opts {
            args: vec![
                "--test-mode".into(),
                "--header-read-timeout".into(),
                "4s".into(),
                "--idle-timeout".into(),
                "4s".into(),
            ],
            env: vec![],
            cwd: None,
        },
    );
    let rest = addr(&s.http);
    let otlp = addr(s.otlp_http.as_ref().unwrap());
    let grpc = s.otlp_grpc.clone().unwrap();
    let opened = Instant::now();
    let mut socks: Vec<TcpStream> = (0..369)
        .map(|_| half_open(&rest, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    socks.push(half_open(&otlp, b"POST /v1/traces HTTP/1.1\r\n"));
    socks.push(half_open(&grpc, b"PRI * HTTP/2.0\r\n"));
    // Headers complete, body announced and never sent.
    socks.push(half_open(
        &rest,
        b"POST /v1/spans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"spans\"",
    ));

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let asked = Instant::now();
    let r = client
        .get(s.url("/v1/health"))
        .send()
        .expect("/v1/health answers while half-open connections are held");
    assert_eq!(r.status(), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "health took {:?}",
        asked.elapsed()
    );
    assert!(
        opened.elapsed() < header_timeout,
        "the sockets took too long to open for the test to mean anything"
    );

    // Every half-open connection is closed by the header-read (or idle) timeout.
    let deadline = opened + header_timeout + Duration::from_secs(6);
    let still_open = socks
        .iter_mut()
        .enumerate()
        .filter_map(|(i, t)| (!closed_by(t, deadline)).then_some(i))
        .collect::<Vec<_>>();
    assert!(still_open.is_empty(), "still open: {still_open:?}");
    assert!(s.alive());
    let (status, _) = s.get("/v1/health");
    assert_eq!(status, 200);
    let evicted = s.metric("betrace_connections_closed_total{reason=\"evicted\"}");
    let timed_out = s.metric("betrace_connections_closed_total{reason=\"header_timeout\"}");
    let idle = s.metric("betrace_connections_closed_total{reason=\"idle\"}");
    assert!(evicted > 0.0, "no connection was evicted at the cap");
    assert!(
        timed_out + idle > 0.0,
        "no connection was closed by a timeout"
    );
}

#[test]
fn connection_settings_are_validated() {
    let out = betrace()
        .args(["serve", "--test-mode", "--header-read-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--header-read-timeout"), "{err}");
    let out = betrace()
        .args(["serve", "--test-mode"])
        .env("BETRACE_MAX_CONNECTIONS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BETRACE_MAX_CONNECTIONS"), "{err}");
}

fn sqlite_opts<'a>(data: &std::path::Path, config: &std::path::Path) -> Opts<'a> {
    Opts {
        args: vec![
            "--storage-type".into(),
            "sqlite".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--config".into(),
            config.display().to_string(),
        ],
        env: vec![],
        cwd: None,
    }
}

fn write_config(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn segments(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("spool"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// Polls `f` until it holds, at most `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn acknowledged_spans_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Traces stay buffered for a minute: none is evaluated before the kill.
    let slow = write_config(
        dir.path(),
        "slow.yaml",
        "trace:\n  root_grace: 60s\n  idle_timeout: 60s\ningest:\n  spool_fsync: never\n",
    );
    let fast = write_config(
        dir.path(),
        "fast.yaml",
        "trace:\n  root_grace: 100ms\n  idle_timeout: 500ms\n",
    );
    let mut s = Server::start(sqlite_opts(&data, &slow));
    for r in shop_rules() {
        s.create_rule(&r);
    }
    let mut cmd = std::process::Command::new(python());
    cmd.arg(sdk("send_python.py")).args([
        "--protocol",
        "http",
        "--endpoint",
        s.otlp_http.as_deref().unwrap(),
        "--gzip",
        "--traces",
        "5",
    ]);
    let sent: serde_json::Value = serde_json::from_str(&run_ok(&mut cmd)).unwrap();
    assert!(s.violations("").is_empty(), "evaluated before the kill");
    assert!(segments(&data) > 0, "nothing in the spool");
    s.kill();

    let s = Server::start(sqlite_opts(&data, &fast));
    assert_eq!(
        s.metric("betrace_spool_replayed_spans_total"),
        2.0 + 3.0 + 2.0 + 5.0 * 2.0
    );
    assert!(
        eventually(Duration::from_secs(20), || s.violations("").len() >= 2),
        "replayed traces were not evaluated: {:?}",
        s.violations("")
    );
    check_shop_violations(&s, &sent);
    assert!(
        eventually(Duration::from_secs(10), || segments(&data) == 0),
        "spool segments left after their traces were stored"
    );
    drop(s);

    // Nothing is replayed twice.
    let s = Server::start(sqlite_opts(&data, &fast));
    assert_eq!(s.metric("betrace_spool_replayed_spans_total"), 0.0);
    s.flush();
    check_shop_violations(&s, &sent);
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut n = 0;
    while f.write_all(&chunk).is_ok() {
        n += chunk.len() as u64;
    }
    // The last partial chunk, byte by byte.
    while f.write_all(&[0]).is_ok() {
        n += 1;
    }
    let _ = f.sync_all();
    n
}

fn payment_error(trace: u32) -> serde_json::Value {
    serde_json::json!({
        "traceId": format!("{trace:032x}"), "spanId": format!("{:016x}", trace + 1),
        "name": "payment", "serviceName": "shop", "status": "error",
        "startTime": 1_000, "endTime": 2_000,
    })
}

#[test]
fn a_full_disk_makes_the_server_unready_and_held_violations_are_stored_later() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mnt) = Tmpfs::mount(&dir.path().join("mnt"), "3m") else {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let data = mnt.0.join("data");
    let config = write_config(
        dir.path(),
        "c.yaml",
        "trace:\n  root_grace: 1s\n  idle_timeout: 1s\n",
    );
    let mut s = Server::start(sqlite_opts(&data, &config));
    s.create_rule(&serde_json::json!({"id": "errs", "expression": "never { payment.where(span.status == error) }", "severity": "HIGH"}));
    let (st, r) = s.post(
        "/v1/spans",
        &serde_json::json!({"spans": [payment_error(1), payment_error(2)]}),
    );
    assert_eq!(st, 200, "{r}");
    // Full before the traces are evaluated: storing their violations fails.
    let filler = mnt.0.join("filler");
    assert!(fill(&filler) > 0);
    assert!(
        eventually(Duration::from_secs(15), || s.get("/v1/ready").0 == 503),
        "ready stayed 200 with a full disk; stderr:\n{}",
        s.stderr()
    );
    let (_, ready) = s.get("/v1/ready");
    assert_eq!(ready["status"], "NOT_READY");
    assert!(s.metric("betrace_violations_store_failed_total") >= 2.0);
    assert_eq!(s.metric("betrace_violations_store_pending"), 2.0);
    assert_eq!(s.metric("betrace_storage_ok"), 0.0);
    // Ingest refuses, retryably, on every transport.
    let (st, r) = s.post(
        "/v1/spans",
        &serde_json::json!({"spans": [payment_error(3)]}),
    );
    assert_eq!(st, 503, "{r}");
    let r = s.post_raw(
        "/v1/traces",
        "application/json",
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0000000000000000000000000000000a","spanId":"000000000000000a","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#.to_vec(),
    );
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(s.violations("").is_empty());
    assert!(s.alive());

    // Space again: the held violations are stored, ready and ingest recover.
    std::fs::remove_file(&filler).unwrap();
    assert!(
        eventually(Duration::from_secs(15), || s.get("/v1/ready").0 == 200),
        "not ready again after space returned; stderr:\n{}",
        s.stderr()
    );
    let stored = s.violations("");
    let mut traces: Vec<&str> = stored
        .iter()
        .map(|v| v["traceId"].as_str().unwrap())
        .collect();
    traces.sort();
    assert_eq!(traces, vec![format!("{:032x}", 1), format!("{:032x}", 2)]);
    assert_eq!(s.metric("betrace_violations_store_retried_total"), 2.0);
    assert_eq!(s.metric("betrace_violations_store_pending"), 0.0);
    let (st, r) = s.post(
        "/v1/spans",
        &serde_json::json!({"spans": [payment_error(3)]}),
    );
    assert_eq!(st, 200, "{r}");
    s.flush();
    assert_eq!(s.violations("").len(), 3);
}

#[test]
fn a_trace_stored_before_sigkill_is_not_evaluated_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Trace 1 has a root: evaluated after 100 ms. Trace 2 has none: buffered for a minute.
    let cfg = write_config(
        dir.path(),
        "c.yaml",
        "trace:\n  root_grace: 100ms\n  idle_timeout: 60s\n",
    );
    let mut s = Server::start(sqlite_opts(&data, &cfg));
    s.create_rule(&serde_json::json!({"id": "errs", "expression": "never { payment.where(span.status == error) }", "severity": "HIGH"}));
    let mut child = payment_error(2);
    child["parentSpanId"] = serde_json::json!("00000000000000ff");
    let (st, r) = s.post(
        "/v1/spans",
        &serde_json::json!({"spans": [payment_error(1), child]}),
    );
    assert_eq!(st, 200, "{r}");
    assert!(eventually(Duration::from_secs(10), || s
        .violations("")
        .len()
        == 1));
    assert_eq!(segments(&data), 1, "the pending trace keeps its segment");
    s.kill();

    let fast = write_config(dir.path(), "fast.yaml", "trace:\n  idle_timeout: 200ms\n");
    let s = Server::start(sqlite_opts(&data, &fast));
    assert_eq!(s.metric("betrace_spool_replayed_spans_total"), 1.0);
    assert!(eventually(Duration::from_secs(10), || s
        .violations("")
        .len()
        >= 2));
    s.flush();
    let mut traces: Vec<String> = s
        .violations("")
        .iter()
        .map(|v| v["traceId"].as_str().unwrap().to_owned())
        .collect();
    traces.sort();
    assert_eq!(traces, vec![format!("{:032x}", 1), format!("{:032x}", 2)]);
}

/// The control of `acknowledged_spans_survive_sigkill`: without the spool (what a 200 meant
/// before it), the same kill loses the acknowledged traces.
#[test]
fn without_the_spool_a_sigkill_loses_acknowledged_traces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let slow = write_config(
        dir.path(),
        "slow.yaml",
        "trace:\n  root_grace: 60s\n  idle_timeout: 60s\ningest:\n  spool: false\n",
    );
    let mut s = Server::start(sqlite_opts(&data, &slow));
    s.create_rule(&serde_json::json!({"id": "errs", "expression": "never { payment.where(span.status == error) }", "severity": "HIGH"}));
    let (st, r) = s.post(
        "/v1/spans",
        &serde_json::json!({"spans": [payment_error(1)]}),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(segments(&data), 0);
    s.kill();
    let s = Server::start(sqlite_opts(&data, &slow));
    assert_eq!(s.flush(), 0, "nothing comes back without the spool");
    assert!(s.violations("").is_empty());
}
