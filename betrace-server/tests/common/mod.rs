//! Test harness: `betrace serve` as a real process on loopback ports chosen by the system
//! (port 0; the addresses are read from the line the server prints once bound), killed when
//! the handle is dropped; helpers to run the OpenTelemetry SDK scripts of `tests/sdk/`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const KEY: &str = "test-signature-key";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn sdk(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(file)
}

/// The Python of the virtual environment made by `.ci/setup-deps.sh` (or `BETRACE_PYTHON`).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("BETRACE_PYTHON") {
        return PathBuf::from(p);
    }
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/setup-deps.sh` (it installs the OpenTelemetry SDK)",
        p.display()
    );
    p
}

pub fn node_path() -> PathBuf {
    let p = root().join("tools/otel-fixtures/node_modules");
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/setup-deps.sh` (it installs the OpenTelemetry JS SDK)",
        p.display()
    );
    p
}

/// A running `betrace serve`; killed (SIGKILL) on drop unless it already exited.
pub struct Server {
    pub child: Option<Child>,
    pub http: String,
    pub otlp_http: Option<String>,
    pub otlp_grpc: Option<String>,
    pub client: reqwest::blocking::Client,
    pub token: Option<String>,
    pub stderr_path: PathBuf,
    _logs: tempfile::TempDir,
}

/// How to start a server.
pub struct Opts<'a> {
    pub args: Vec<String>,
    pub env: Vec<(&'a str, String)>,
    pub cwd: Option<&'a Path>,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            args: vec!["--test-mode".into()],
            env: vec![],
            cwd: None,
        }
    }
}

pub fn betrace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_betrace"))
}

impl Server {
    /// `betrace serve --test-mode` with the test signature key.
    pub fn test_mode() -> Server {
        Server::start(Opts::default())
    }

    pub fn start(opts: Opts<'_>) -> Server {
        Server::start_with(&[], opts)
    }

    /// [`Server::start`] with the OTLP/HTTP receiver on `otlp_http_addr` (e.g. one from
    /// [`free_port`], for a server that exports to itself).
    pub fn start_with_otlp_http(opts: Opts<'_>, otlp_http_addr: &str) -> Server {
        Server::launch(&[], opts, otlp_http_addr)
    }

    /// [`Server::start`] run through `wrapper` (e.g. `["prlimit", "--nofile=256", "--"]`).
    pub fn start_with(wrapper: &[&str], opts: Opts<'_>) -> Server {
        Server::launch(wrapper, opts, "127.0.0.1:0")
    }

    fn launch(wrapper: &[&str], opts: Opts<'_>, otlp_http_addr: &str) -> Server {
        let logs = tempfile::tempdir().unwrap();
        let stderr_path = logs.path().join("stderr.log");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_betrace"));
                c
            }
            None => betrace(),
        };
        cmd.arg("serve");
        // Listeners on ports chosen by the system, unless `opts.args` names one.
        for (flag, addr) in [
            ("--http-addr", "127.0.0.1:0"),
            ("--otlp-http-addr", otlp_http_addr),
            ("--otlp-grpc-addr", "127.0.0.1:0"),
        ] {
            if !opts.args.iter().any(|a| a == flag) {
                cmd.args([flag, addr]);
            }
        }
        cmd.args(&opts.args)
            .env_remove("BETRACE_API_TOKEN")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("BETRACE_SIGNATURE_KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        let mut token = None;
        for (k, v) in &opts.env {
            if *k == "BETRACE_API_TOKEN" {
                token = Some(v.clone());
            }
            cmd.env(k, v);
        }
        if let Some(dir) = opts.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().expect("betrace starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.starts_with("betrace listening") => l,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "betrace serve did not start ({other:?}); stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .filter(|v| *v != "off")
                .map(str::to_owned)
        };
        Server {
            http: format!("http://{}", field("http").unwrap()),
            otlp_http: field("otlp_http").map(|a| format!("http://{a}")),
            otlp_grpc: field("otlp_grpc"),
            child: Some(child),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            token,
            stderr_path,
            _logs: logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    fn auth(&self, r: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self.auth(self.client.get(self.url(path))).send().unwrap();
        decode(r)
    }

    pub fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.auth(self.client.get(self.url(path))).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.auth(self.client.request(m, self.url(path)));
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).unwrap());
        }
        decode(r.send().unwrap())
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, Some(body))
    }

    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::blocking::Response {
        let mut r = self
            .auth(self.client.post(self.url(path)))
            .header("content-type", content_type)
            .body(body);
        if let Some(e) = encoding {
            r = r.header("content-encoding", e);
        }
        r.send().unwrap()
    }

    pub fn flush(&self) -> u64 {
        let (status, body) = self.post("/v1/flush", &Value::Null);
        assert_eq!(status, 200, "{body}");
        body["flushed"].as_u64().unwrap()
    }

    pub fn violations(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/violations{query}"));
        assert_eq!(status, 200, "{body}");
        body["violations"].as_array().unwrap().clone()
    }

    pub fn metric(&self, line_prefix: &str) -> f64 {
        let (_, text) = self.get_text("/metrics");
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid();
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.wait_exit(Duration::from_secs(60))
    }

    /// SIGKILL, at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("betrace did not exit in time; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn create_rule(&self, rule: &Value) -> Value {
        let (status, body) = self.post("/v1/rules", rule);
        assert_eq!(status, 201, "{body}");
        body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn decode(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// The two rules the SDK scripts' traces are made for.
pub fn shop_rules() -> Vec<Value> {
    vec![
        serde_json::json!({
            "id": "large-order-fraud",
            "expression": "when { checkout.where(order.amount > 1000) } always { fraud_check }",
            "severity": "HIGH",
        }),
        serde_json::json!({
            "id": "payment-must-not-fail",
            "expression": "never { payment.where(span.status == error) }",
            "severity": "CRITICAL",
        }),
    ]
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Checks that exactly the violations the SDK scripts' traces must produce were stored, with
/// their span lists and valid signatures.
pub fn check_shop_violations(server: &Server, sent: &Value) {
    let vs = server.violations("");
    let mut summary: Vec<(String, String)> = vs
        .iter()
        .map(|v| {
            (
                v["ruleId"].as_str().unwrap().to_owned(),
                v["traceId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    summary.sort();
    let mut expected = vec![
        (
            "large-order-fraud".to_owned(),
            sent["fraud"]["trace_id"].as_str().unwrap().to_owned(),
        ),
        (
            "payment-must-not-fail".to_owned(),
            sent["payment"]["trace_id"].as_str().unwrap().to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(summary, expected, "{vs:#?}");
    for v in &vs {
        let refs = |k: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|r| r["spanId"].as_str().unwrap().to_owned())
                .collect()
        };
        if v["ruleId"] == "large-order-fraud" {
            assert_eq!(
                refs("triggerSpans"),
                vec![sent["fraud"]["checkout_span_id"].as_str().unwrap()]
            );
            assert_eq!(v["failedClause"], "always");
            assert_eq!(v["triggerSpans"][0]["service"], "shop");
        } else {
            assert_eq!(
                refs("offendingSpans"),
                vec![sent["payment"]["payment_span_id"].as_str().unwrap()]
            );
            assert_eq!(v["failedClause"], "never");
        }
        assert!(
            betrace_core::sign::verify_json(v, KEY.as_bytes()),
            "bad signature: {v}"
        );
        let (status, one) = server.get(&format!("/v1/violations/{}", v["id"].as_str().unwrap()));
        assert_eq!(status, 200);
        assert_eq!(one["verified"], true);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 50 ms until it returns `Some`, at most `limit`; panics with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a gRPC refusal carries in its details: the code of the `google.rpc.Status` and the
/// delay of its `google.rpc.RetryInfo` detail (`None` without one).
pub fn grpc_retry_info(status: &tonic::Status) -> (i32, Option<Duration>) {
    use prost::Message as _;
    let rpc =
        tonic_types::Status::decode(status.details()).expect("details are a google.rpc.Status");
    let delay = rpc
        .details
        .iter()
        .find(|d| d.type_url == "type.googleapis.com/google.rpc.RetryInfo")
        .map(|d| {
            let info = tonic_types::pb::RetryInfo::decode(d.value.as_slice())
                .expect("a google.rpc.RetryInfo");
            let delay = info.retry_delay.expect("RetryInfo has a retry_delay");
            Duration::new(
                u64::try_from(delay.seconds).expect("a positive delay"),
                u32::try_from(delay.nanos).expect("positive nanoseconds"),
            )
        });
    (rpc.code, delay)
}
