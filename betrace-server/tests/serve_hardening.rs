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
