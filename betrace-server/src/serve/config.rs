//! Configuration of `betrace serve` (SERVER.md §1 "Configuration").
//!
//! In: the command-line flags ([`ServeArgs`], which clap also fills from each flag's environment
//! variable, `BETRACE_HTTP_ADDR` for `--http-addr`), the variables without a flag (a map:
//! `BETRACE_HTTP_PORT`, `BETRACE_API_TOKEN`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, the signature key), and the YAML file named by `--config`.
//! Out: one resolved [`Config`], layered flags > environment > file > defaults, or a
//! [`ConfigError`] naming the key (`storage.type`), variable (`BETRACE_HTTP_PORT`) or flag
//! (`--http-addr`) whose value is wrong. Unknown keys of the file are errors too.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use betrace_core::assemble::{AssemblerConfig, parse_duration};
use serde::Deserialize;
use serde_json::Value;

/// Flags of `betrace serve`, each (but `--config`, `--rules` and the switches) also read from
/// the environment variable shown in `--help`. A flag overrides its variable, and both override
/// the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// YAML config file (keys: server.*, storage.*, otlp.*, rules.*, trace.*, compliance.*,
    /// logging.*, ui.*; see docs/server.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// REST API and OTLP/HTTP listener (default 127.0.0.1:12011; BETRACE_HTTP_PORT sets the
    /// port alone).
    #[arg(long, value_name = "HOST:PORT", env = "BETRACE_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// OTLP/HTTP listener on the standard port (default 127.0.0.1:4318; `off` disables).
    #[arg(long, value_name = "HOST:PORT|off", env = "BETRACE_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<String>,
    /// OTLP/gRPC listener (default 127.0.0.1:4317; `off` disables).
    #[arg(long, value_name = "HOST:PORT|off", env = "BETRACE_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<String>,
    /// Storage backend: `sqlite` (default) or `memory`.
    #[arg(long, value_name = "sqlite|memory", env = "BETRACE_STORAGE_TYPE")]
    pub storage_type: Option<String>,
    /// SQLite database file (default `betrace.db` in the data directory).
    #[arg(long, value_name = "FILE", env = "BETRACE_STORAGE_PATH")]
    pub storage_path: Option<PathBuf>,
    /// Data directory for the database and the generated signature key (default
    /// ./betrace-data).
    #[arg(long, value_name = "DIR", env = "BETRACE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP endpoint that violations are exported to.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_endpoint: Option<String>,
    /// Export protocol: `grpc` (default) or `http/protobuf`.
    #[arg(long, value_name = "PROTOCOL", env = "OTEL_EXPORTER_OTLP_PROTOCOL")]
    pub otlp_protocol: Option<String>,
    /// Log level: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL", env = "LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format: `text` (default) or `json`.
    #[arg(long, value_name = "FORMAT", env = "BETRACE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Memory storage and short trace timeouts (root_grace 100ms, idle_timeout 500ms instead of
    /// 7s and 30s), for tests and CI pipelines.
    #[arg(long)]
    pub test_mode: bool,
    /// Rules file loaded at start; its rules are read-only over the API.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// File holding the API bearer token (instead of BETRACE_API_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Allow binding a non-loopback address without an API token.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Allowed CORS origin (repeatable or a comma list; `*` for any). CORS is off without it.
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        value_delimiter = ',',
        env = "BETRACE_CORS_ORIGINS"
    )]
    pub cors_origins: Vec<String>,
    /// Most client connections open at once, all listeners together (default: the open-files
    /// limit minus 64).
    #[arg(long, value_name = "N", env = "BETRACE_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Time allowed for a request's headers, from the accept or the previous response
    /// (default 30s).
    #[arg(long, value_name = "DURATION", env = "BETRACE_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// A connection without traffic and without a request in progress this long is closed
    /// (default 60s).
    #[arg(long, value_name = "DURATION", env = "BETRACE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// When the ingest spool is synced to disk: `always`, `interval` (default) or `never`.
    #[arg(
        long,
        value_name = "always|interval|never",
        env = "BETRACE_SPOOL_FSYNC"
    )]
    pub spool_fsync: Option<String>,
    /// Link from a violation in the web UI to the tracing backend; `{traceId}` is replaced by
    /// the trace id (e.g. `http://tempo:3000/explore?traceId={traceId}`).
    #[arg(long, value_name = "URL", env = "BETRACE_UI_TRACE_URL")]
    pub ui_trace_url: Option<String>,
    /// The flags (long name) whose value clap took from the environment, with the variable:
    /// errors then name the variable, and an empty variable counts as unset.
    #[arg(skip)]
    pub from_env: BTreeMap<String, String>,
}

impl ServeArgs {
    /// Reads the flags from the matches of the `serve` subcommand `cmd`, noting which values
    /// came from the environment.
    pub fn from_matches(
        matches: &clap::ArgMatches,
        cmd: &clap::Command,
    ) -> Result<ServeArgs, clap::Error> {
        let mut args = <ServeArgs as clap::FromArgMatches>::from_arg_matches(matches)?;
        for arg in cmd.get_arguments() {
            if let (Some(var), Some(long)) = (arg.get_env(), arg.get_long())
                && matches.value_source(arg.get_id().as_str())
                    == Some(clap::parser::ValueSource::EnvVariable)
            {
                args.from_env
                    .insert(long.to_owned(), var.to_string_lossy().into_owned());
            }
        }
        Ok(args)
    }

    /// `flag --long` or `environment variable NAME`, for messages.
    fn source(&self, long: &str) -> String {
        match self.from_env.get(long) {
            Some(var) => format!("environment variable {var}"),
            None => format!("flag --{long}"),
        }
    }

    /// The value of flag `long`; `None` when absent or from an empty variable.
    fn given<'a>(&self, long: &str, value: &'a Option<String>) -> Option<&'a str> {
        value
            .as_deref()
            .filter(|v| !(v.is_empty() && self.from_env.contains_key(long)))
    }
}

/// A setting that stops start-up. The message names the key, variable or flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Where violations and rules are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    /// SQLite database file.
    Sqlite(PathBuf),
    /// In process; lost at exit.
    Memory,
}

/// OTLP export protocol of violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportProtocol {
    Grpc,
    HttpProtobuf,
}

/// Export of violations as OTLP spans (SERVER.md §1 "Violations as OTLP spans").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    /// Base endpoint; for `http/protobuf` `/v1/traces` is appended unless the URL already
    /// ends with it.
    pub endpoint: String,
    pub protocol: ExportProtocol,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Violations per export request.
    pub batch_size: usize,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Request limits (SERVER.md §1 "Ingest", "Security").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body as received, bytes (16 MiB).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, bytes (64 MiB).
    pub max_decompressed_bytes: usize,
    /// Largest body of a REST request other than the bulk ones, bytes (1 MiB): rules,
    /// validation, flush, the compatibility routes.
    pub max_api_body_bytes: usize,
    /// Largest body of `POST /v1/rules/import`, `POST /v1/rules/test` and `POST /v1/spans`,
    /// bytes (16 MiB; for `/v1/spans` as received, before gzip).
    pub max_bulk_body_bytes: usize,
    /// Spans in one request (100 000).
    pub max_spans_per_request: usize,
    /// Attributes kept per span; extra ones are dropped and counted (128).
    pub max_attributes_per_span: usize,
    /// Longest string attribute value, bytes; longer ones are truncated (4 KiB).
    pub max_attribute_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_api_body_bytes: 1024 * 1024,
            max_bulk_body_bytes: 16 * 1024 * 1024,
            max_spans_per_request: 100_000,
            max_attributes_per_span: 128,
            max_attribute_value_bytes: 4096,
        }
    }
}

/// Connection limits of every listener (docs/server.md "Connection limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once, all listeners together.
    pub max_connections: usize,
    /// Time allowed to receive a request's headers (HTTP/1.1), counted from the accept or the
    /// end of the previous response; also the longest wait between two chunks of a body.
    pub header_read_timeout: Duration,
    /// A connection with no traffic and no request in progress this long is closed.
    pub idle_timeout: Duration,
}

/// File descriptors kept free beside client connections (database, spool, listeners,
/// exporter).
pub const RESERVED_FILES: u64 = 64;

/// The default of `server.max_connections`: the soft open-files limit minus
/// [`RESERVED_FILES`], at least 16 and at most 65 536.
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let n = limit.map_or(65_536, |l| {
        l.saturating_sub(RESERVED_FILES).clamp(16, 65_536)
    });
    usize::try_from(n).unwrap_or(65_536)
}

/// When the ingest spool is synced to disk (`ingest.spool_fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolFsync {
    /// Before each request is answered.
    Always,
    /// Every `ingest.spool_fsync_interval`.
    Interval,
    /// Left to the operating system.
    Never,
}

/// The ingest spool (docs/server.md "Durability").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// On by default with SQLite storage; always off with memory storage.
    pub enabled: bool,
    pub fsync: SpoolFsync,
    pub fsync_interval: Duration,
    /// A segment file is closed past this size, bytes (16 MiB), or 1 s after it was opened.
    pub segment_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> SpoolConfig {
        SpoolConfig {
            enabled: true,
            fsync: SpoolFsync::Interval,
            fsync_interval: Duration::from_millis(200),
            segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The resolved configuration of `betrace serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    /// `None`: disabled.
    pub otlp_http_addr: Option<SocketAddr>,
    /// `None`: disabled.
    pub otlp_grpc_addr: Option<SocketAddr>,
    pub allow_unauthenticated: bool,
    /// Bearer token; never logged.
    pub api_token: Option<String>,
    pub cors_origins: Vec<String>,
    pub limits: Limits,
    pub connections: ConnLimits,
    pub spool: SpoolConfig,
    /// Violations held in memory for a retry while storage fails.
    pub retry_queue_violations: usize,
    /// After SIGTERM/SIGINT, how long the listeners keep answering 503 (readiness included)
    /// before the buffered traces are evaluated and the listeners close.
    pub shutdown_delay: Duration,
    pub storage: StorageKind,
    /// Directory of the database and the generated signature key.
    pub data_dir: PathBuf,
    /// Most violations kept (oldest pruned first).
    pub max_violations: u64,
    /// Age past which violations are pruned.
    pub violation_retention: Duration,
    pub export: Option<ExportConfig>,
    pub max_rules: usize,
    /// Longest rule expression, bytes.
    pub max_expression_length: usize,
    /// VM instruction budget per rule and trace (`rules.evaluation_timeout` at 100 M
    /// instructions per second).
    pub instruction_budget: u64,
    pub rules_file: Option<PathBuf>,
    pub trace: AssemblerConfig,
    /// Name of the environment variable holding the signature key.
    pub signature_key_env: String,
    /// The signature key read from that variable (never logged).
    pub signature_key: Option<Vec<u8>>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub test_mode: bool,
    /// Evaluation worker threads.
    pub eval_workers: usize,
    /// `ui.trace_url`: an http(s) URL template holding `{traceId}`.
    pub ui_trace_url: Option<String>,
}

/// Instructions per second assumed when turning `rules.evaluation_timeout` into a budget.
pub const INSTRUCTIONS_PER_SECOND: u64 = 100_000_000;

const DEFAULT_HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 12011);
const DEFAULT_OTLP_HTTP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4318);
const DEFAULT_OTLP_GRPC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4317);

impl Config {
    /// The defaults of SERVER.md §1.
    pub fn defaults() -> Config {
        Config {
            http_addr: DEFAULT_HTTP,
            otlp_http_addr: Some(DEFAULT_OTLP_HTTP),
            otlp_grpc_addr: Some(DEFAULT_OTLP_GRPC),
            allow_unauthenticated: false,
            api_token: None,
            cors_origins: Vec::new(),
            limits: Limits::default(),
            connections: ConnLimits {
                max_connections: default_max_connections(),
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
            },
            spool: SpoolConfig::default(),
            retry_queue_violations: 100_000,
            shutdown_delay: Duration::ZERO,
            storage: StorageKind::Sqlite(PathBuf::from("betrace-data/betrace.db")),
            data_dir: PathBuf::from("betrace-data"),
            max_violations: 1_000_000,
            violation_retention: Duration::from_secs(30 * 86_400),
            export: None,
            max_rules: 1000,
            max_expression_length: 65_536,
            instruction_budget: 10_000_000,
            rules_file: None,
            trace: AssemblerConfig::default(),
            signature_key_env: "BETRACE_SIGNATURE_KEY".to_owned(),
            signature_key: None,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            test_mode: false,
            eval_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            ui_trace_url: None,
        }
    }

    /// Resolves the configuration from flags, the environment (`env`) and the file named by
    /// `--config`.
    pub fn load(args: &ServeArgs, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        Config::resolve(args, env, file.as_ref())
    }

    /// [`Config::load`] with the file already parsed (`None`: no file).
    pub fn resolve(
        args: &ServeArgs,
        env: &BTreeMap<String, String>,
        file: Option<&FileConfig>,
    ) -> Result<Config, ConfigError> {
        let mut b = Builder::default();
        if let Some(f) = file {
            b.apply_file(f)?;
        }
        b.apply_env(env)?;
        b.apply_flags(args)?;
        b.finish(args, env)
    }
}

/// The config file, every key optional; unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    otlp: OtlpSection,
    #[serde(default)]
    ingest: IngestSection,
    #[serde(default)]
    rules: RulesSection,
    /// Kept raw and overlaid on the defaults (so `--test-mode` timings can be overridden key
    /// by key); checked against [`AssemblerConfig`]'s keys.
    #[serde(default)]
    trace: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    compliance: ComplianceSection,
    #[serde(default)]
    logging: LoggingSection,
    #[serde(default)]
    ui: UiSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UiSection {
    trace_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    http_addr: Option<String>,
    http_port: Option<u16>,
    otlp_http_addr: Option<String>,
    otlp_http_port: Option<u16>,
    otlp_grpc_addr: Option<String>,
    grpc_port: Option<u16>,
    api_token_file: Option<PathBuf>,
    allow_unauthenticated: Option<bool>,
    cors_origins: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    max_decompressed_bytes: Option<usize>,
    max_api_body_bytes: Option<usize>,
    max_bulk_body_bytes: Option<usize>,
    shutdown_delay: Option<String>,
    max_spans_per_request: Option<usize>,
    max_attributes_per_span: Option<usize>,
    max_attribute_value_length: Option<usize>,
    evaluation_workers: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestSection {
    spool: Option<bool>,
    spool_fsync: Option<String>,
    spool_fsync_interval: Option<String>,
    spool_segment_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    #[serde(rename = "type")]
    kind: Option<StorageType>,
    path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    max_violations: Option<u64>,
    violation_retention: Option<String>,
    retry_queue_violations: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StorageType {
    Sqlite,
    Memory,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OtlpSection {
    endpoint: Option<String>,
    protocol: Option<String>,
    timeout: Option<String>,
    batch_size: Option<usize>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesSection {
    max_rules: Option<usize>,
    max_expression_length: Option<usize>,
    evaluation_timeout: Option<String>,
    file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceSection {
    signature_key_env: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggingSection {
    level: Option<String>,
    format: Option<String>,
}

/// Reads and parses the YAML config file. Errors name the file and the key path.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "{}: cannot read the config file: {e}",
            path.display()
        ))
    })?;
    parse_file(&text, &path.display().to_string())
}

/// Parses config file text (YAML; JSON is YAML too). `origin` names the file in errors.
pub fn parse_file(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut msg = inner.to_string();
        // serde_yaml_ng prefixes the path itself in some messages.
        if let Some(rest) = msg.strip_prefix(&format!("{path}: ")) {
            msg = rest.to_owned();
        }
        if path.is_empty() || path == "." {
            ConfigError(format!("{origin}: {msg}"))
        } else {
            ConfigError(format!("{origin}: key `{path}`: {msg}"))
        }
    })
}

#[derive(Debug, Default)]
struct Builder {
    http_addr: Option<SocketAddr>,
    http_port: Option<u16>,
    otlp_http_addr: Option<Option<SocketAddr>>,
    otlp_http_port: Option<u16>,
    otlp_grpc_addr: Option<Option<SocketAddr>>,
    grpc_port: Option<u16>,
    api_token: Option<String>,
    api_token_file: Option<PathBuf>,
    allow_unauthenticated: Option<bool>,
    cors_origins: Option<Vec<String>>,
    limits: Limits,
    shutdown_delay: Option<Duration>,
    storage_type: Option<StorageType>,
    storage_path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    max_violations: Option<u64>,
    violation_retention: Option<Duration>,
    endpoint: Option<String>,
    protocol: Option<ExportProtocol>,
    timeout: Option<Duration>,
    batch_size: Option<usize>,
    headers: Option<Vec<(String, String)>>,
    max_rules: Option<usize>,
    max_expression_length: Option<usize>,
    instruction_budget: Option<u64>,
    rules_file: Option<PathBuf>,
    trace: Option<serde_json::Map<String, Value>>,
    signature_key_env: Option<String>,
    log_level: Option<String>,
    log_format: Option<LogFormat>,
    eval_workers: Option<usize>,
    max_connections: Option<usize>,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    spool: Option<bool>,
    spool_fsync: Option<SpoolFsync>,
    spool_fsync_interval: Option<Duration>,
    spool_segment_bytes: Option<u64>,
    retry_queue_violations: Option<usize>,
    /// With where it came from, for the error message.
    ui_trace_url: Option<(String, String)>,
}

fn parse_fsync(text: &str) -> Result<SpoolFsync, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "always" => Ok(SpoolFsync::Always),
        "interval" => Ok(SpoolFsync::Interval),
        "never" => Ok(SpoolFsync::Never),
        _ => Err(format!(
            "unknown fsync policy `{text}`; expected `always`, `interval` or `never`"
        )),
    }
}

/// A duration of at least 1 ms.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_millis(1) {
        Err(format!("`{text}` is shorter than 1ms"))
    } else {
        Ok(d)
    }
}

/// Checks a `ui.trace_url` template: http(s), and `{traceId}` in it.
pub fn parse_trace_url(text: &str) -> Result<String, String> {
    let t = text.trim();
    if !(t.starts_with("http://") || t.starts_with("https://")) {
        return Err(format!("`{t}` must start with http:// or https://"));
    }
    if !t.contains("{traceId}") {
        return Err(format!(
            "`{t}` has no `{{traceId}}` placeholder for the trace id"
        ));
    }
    if t.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>')
    {
        return Err(format!("`{t}` contains a space, quote or angle bracket"));
    }
    Ok(t.to_owned())
}

/// `host:port`; `localhost` means 127.0.0.1.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = t.strip_prefix("localhost:")
        && let Ok(p) = port.parse::<u16>()
    {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p));
    }
    Err(format!(
        "`{text}` is not an address; write HOST:PORT, e.g. 127.0.0.1:12011"
    ))
}

fn parse_optional_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        parse_addr(text).map(Some)
    }
}

fn parse_protocol(text: &str) -> Result<ExportProtocol, String> {
    match text.trim() {
        "grpc" => Ok(ExportProtocol::Grpc),
        "http/protobuf" => Ok(ExportProtocol::HttpProtobuf),
        other => Err(format!(
            "unknown protocol `{other}`; expected `grpc` or `http/protobuf`"
        )),
    }
}

fn parse_level(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = if t == "warning" { "warn".to_owned() } else { t };
    if ["trace", "debug", "info", "warn", "error"].contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(format!(
            "unknown log level `{text}`; expected trace, debug, info, warn or error"
        ))
    }
}

fn parse_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "unknown log format `{text}`; expected `text` or `json`"
        )),
    }
}

fn parse_storage_type(text: &str) -> Result<StorageType, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "sqlite" => Ok(StorageType::Sqlite),
        "memory" => Ok(StorageType::Memory),
        _ => Err(format!(
            "unknown storage type `{text}`; expected `sqlite` or `memory`"
        )),
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-decoded.
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("`{item}` is not `key=value`"));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("`{item}` has an empty key"));
        }
        out.push((k.to_owned(), percent_decode(v.trim())?));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is an error rather than kept.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(format!("bad percent escape in `{s}`"));
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

fn positive(key: &str, v: usize) -> Result<usize, ConfigError> {
    if v == 0 {
        err(format!("{key}: must be at least 1"))
    } else {
        Ok(v)
    }
}

impl Builder {
    fn apply_file(&mut self, f: &FileConfig) -> Result<(), ConfigError> {
        let key = |k: &str, e: String| ConfigError(format!("key `{k}`: {e}"));
        let s = &f.server;
        if let Some(a) = &s.http_addr {
            self.http_addr = Some(parse_addr(a).map_err(|e| key("server.http_addr", e))?);
        }
        if s.http_port.is_some() {
            self.http_port = s.http_port;
        }
        if let Some(a) = &s.otlp_http_addr {
            self.otlp_http_addr =
                Some(parse_optional_addr(a).map_err(|e| key("server.otlp_http_addr", e))?);
        }
        if s.otlp_http_port.is_some() {
            self.otlp_http_port = s.otlp_http_port;
        }
        if let Some(a) = &s.otlp_grpc_addr {
            self.otlp_grpc_addr =
                Some(parse_optional_addr(a).map_err(|e| key("server.otlp_grpc_addr", e))?);
        }
        if s.grpc_port.is_some() {
            self.grpc_port = s.grpc_port;
        }
        if s.api_token_file.is_some() {
            self.api_token_file.clone_from(&s.api_token_file);
        }
        if s.allow_unauthenticated.is_some() {
            self.allow_unauthenticated = s.allow_unauthenticated;
        }
        if s.cors_origins.is_some() {
            self.cors_origins.clone_from(&s.cors_origins);
        }
        let l = &mut self.limits;
        if let Some(v) = s.max_body_bytes {
            l.max_body_bytes = positive("key `server.max_body_bytes`", v)?;
        }
        if let Some(v) = s.max_decompressed_bytes {
            l.max_decompressed_bytes = positive("key `server.max_decompressed_bytes`", v)?;
        }
        if let Some(v) = s.max_api_body_bytes {
            l.max_api_body_bytes = positive("key `server.max_api_body_bytes`", v)?;
        }
        if let Some(v) = s.max_bulk_body_bytes {
            l.max_bulk_body_bytes = positive("key `server.max_bulk_body_bytes`", v)?;
        }
        if let Some(t) = &s.shutdown_delay {
            self.shutdown_delay =
                Some(parse_duration(t).map_err(|e| key("server.shutdown_delay", e))?);
        }
        if let Some(v) = s.max_spans_per_request {
            l.max_spans_per_request = positive("key `server.max_spans_per_request`", v)?;
        }
        if let Some(v) = s.max_attributes_per_span {
            l.max_attributes_per_span = v;
        }
        if let Some(v) = s.max_attribute_value_length {
            l.max_attribute_value_bytes = positive("key `server.max_attribute_value_length`", v)?;
        }
        if let Some(v) = s.evaluation_workers {
            self.eval_workers = Some(positive("key `server.evaluation_workers`", v)?);
        }
        if let Some(v) = s.max_connections {
            self.max_connections = Some(positive("key `server.max_connections`", v)?);
        }
        if let Some(t) = &s.header_read_timeout {
            self.header_read_timeout =
                Some(parse_timeout(t).map_err(|e| key("server.header_read_timeout", e))?);
        }
        if let Some(t) = &s.idle_timeout {
            self.idle_timeout = Some(parse_timeout(t).map_err(|e| key("server.idle_timeout", e))?);
        }
        let i = &f.ingest;
        if i.spool.is_some() {
            self.spool = i.spool;
        }
        if let Some(t) = &i.spool_fsync {
            self.spool_fsync = Some(parse_fsync(t).map_err(|e| key("ingest.spool_fsync", e))?);
        }
        if let Some(t) = &i.spool_fsync_interval {
            self.spool_fsync_interval =
                Some(parse_timeout(t).map_err(|e| key("ingest.spool_fsync_interval", e))?);
        }
        if let Some(b) = i.spool_segment_bytes {
            if b == 0 {
                return err("key `ingest.spool_segment_bytes`: must be at least 1");
            }
            self.spool_segment_bytes = Some(b);
        }

        let st = &f.storage;
        if st.kind.is_some() {
            self.storage_type = st.kind;
        }
        if st.path.is_some() {
            self.storage_path.clone_from(&st.path);
        }
        if st.data_dir.is_some() {
            self.data_dir.clone_from(&st.data_dir);
        }
        if st.max_violations.is_some() {
            self.max_violations = st.max_violations;
        }
        if let Some(n) = st.retry_queue_violations {
            self.retry_queue_violations = Some(n);
        }
        if let Some(t) = &st.violation_retention {
            self.violation_retention =
                Some(parse_duration(t).map_err(|e| key("storage.violation_retention", e))?);
        }

        let o = &f.otlp;
        if o.endpoint.is_some() {
            self.endpoint.clone_from(&o.endpoint);
        }
        if let Some(p) = &o.protocol {
            self.protocol = Some(parse_protocol(p).map_err(|e| key("otlp.protocol", e))?);
        }
        if let Some(t) = &o.timeout {
            self.timeout = Some(parse_duration(t).map_err(|e| key("otlp.timeout", e))?);
        }
        if let Some(b) = o.batch_size {
            self.batch_size = Some(positive("key `otlp.batch_size`", b)?);
        }
        if let Some(h) = &o.headers {
            self.headers = Some(h.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        }

        let r = &f.rules;
        if let Some(m) = r.max_rules {
            self.max_rules = Some(m);
        }
        if let Some(m) = r.max_expression_length {
            self.max_expression_length = Some(positive("key `rules.max_expression_length`", m)?);
        }
        if let Some(t) = &r.evaluation_timeout {
            let d = parse_duration(t).map_err(|e| key("rules.evaluation_timeout", e))?;
            self.instruction_budget =
                Some(budget_of(d).map_err(|e| key("rules.evaluation_timeout", e))?);
        }
        if r.file.is_some() {
            self.rules_file.clone_from(&r.file);
        }
        if f.trace.is_some() {
            self.trace.clone_from(&f.trace);
        }
        if let Some(e) = &f.compliance.signature_key_env {
            if e.trim().is_empty() {
                return err("key `compliance.signature_key_env`: must name a variable");
            }
            self.signature_key_env = Some(e.clone());
        }
        if let Some(l) = &f.logging.level {
            self.log_level = Some(parse_level(l).map_err(|e| key("logging.level", e))?);
        }
        if let Some(l) = &f.logging.format {
            self.log_format = Some(parse_format(l).map_err(|e| key("logging.format", e))?);
        }
        if let Some(u) = &f.ui.trace_url {
            self.ui_trace_url = Some((u.clone(), "key `ui.trace_url`".to_owned()));
        }
        Ok(())
    }

    /// The variables without a flag; those with one come through [`ServeArgs`].
    fn apply_env(&mut self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let var = |k: &str, e: String| ConfigError(format!("environment variable {k}: {e}"));
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
        if let Some(v) = get("BETRACE_HTTP_PORT") {
            self.http_port = Some(v.trim().parse().map_err(|_| {
                var(
                    "BETRACE_HTTP_PORT",
                    format!("`{v}` is not a port number (0 to 65535)"),
                )
            })?);
        }
        if let Some(v) = get("BETRACE_API_TOKEN") {
            self.api_token = Some(v.clone());
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_HEADERS") {
            self.headers =
                Some(parse_headers(v).map_err(|e| var("OTEL_EXPORTER_OTLP_HEADERS", e))?);
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            let ms: u64 = v.trim().parse().map_err(|_| {
                var(
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                    format!("`{v}` is not a number of milliseconds"),
                )
            })?;
            self.timeout = Some(Duration::from_millis(ms));
        }
        Ok(())
    }

    /// The flags, and the variables clap read for them.
    fn apply_flags(&mut self, a: &ServeArgs) -> Result<(), ConfigError> {
        let bad = |long: &str, e: String| ConfigError(format!("{}: {e}", a.source(long)));
        // A listener flag replaces the `*_port` settings; its variable acts like them (the
        // later `BETRACE_HTTP_PORT` still sets the port).
        let flag_given = |long: &str| !a.from_env.contains_key(long);
        if let Some(v) = a.given("http-addr", &a.http_addr) {
            self.http_addr = Some(parse_addr(v).map_err(|e| bad("http-addr", e))?);
            if flag_given("http-addr") {
                self.http_port = None;
            }
        }
        if let Some(v) = a.given("otlp-http-addr", &a.otlp_http_addr) {
            self.otlp_http_addr =
                Some(parse_optional_addr(v).map_err(|e| bad("otlp-http-addr", e))?);
            if flag_given("otlp-http-addr") {
                self.otlp_http_port = None;
            }
        }
        if let Some(v) = a.given("otlp-grpc-addr", &a.otlp_grpc_addr) {
            self.otlp_grpc_addr =
                Some(parse_optional_addr(v).map_err(|e| bad("otlp-grpc-addr", e))?);
            if flag_given("otlp-grpc-addr") {
                self.grpc_port = None;
            }
        }
        if let Some(v) = a.given("storage-type", &a.storage_type) {
            self.storage_type = Some(parse_storage_type(v).map_err(|e| bad("storage-type", e))?);
        }
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        if let Some(p) = path(&a.storage_path) {
            self.storage_path = Some(p);
        }
        if let Some(p) = path(&a.data_dir) {
            self.data_dir = Some(p);
        }
        if let Some(v) = a.given("otel-endpoint", &a.otel_endpoint) {
            self.endpoint = Some(v.to_owned());
        }
        if let Some(v) = a.given("otlp-protocol", &a.otlp_protocol) {
            self.protocol = Some(parse_protocol(v).map_err(|e| bad("otlp-protocol", e))?);
        }
        if let Some(v) = a.given("log-level", &a.log_level) {
            self.log_level = Some(parse_level(v).map_err(|e| bad("log-level", e))?);
        }
        if let Some(v) = a.given("log-format", &a.log_format) {
            self.log_format = Some(parse_format(v).map_err(|e| bad("log-format", e))?);
        }
        if a.rules.is_some() {
            self.rules_file.clone_from(&a.rules);
        }
        if a.api_token_file.is_some() {
            self.api_token_file.clone_from(&a.api_token_file);
            self.api_token = None;
        }
        if a.allow_unauthenticated {
            self.allow_unauthenticated = Some(true);
        }
        if !a.cors_origins.is_empty() {
            self.cors_origins = Some(
                a.cors_origins
                    .iter()
                    .map(|o| o.trim())
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        if let Some(v) = a.given("max-connections", &a.max_connections) {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| bad("max-connections", format!("`{v}` is not a number")))?;
            self.max_connections = Some(positive(&a.source("max-connections"), n)?);
        }
        if let Some(v) = a.given("header-read-timeout", &a.header_read_timeout) {
            self.header_read_timeout =
                Some(parse_timeout(v).map_err(|e| bad("header-read-timeout", e))?);
        }
        if let Some(v) = a.given("idle-timeout", &a.idle_timeout) {
            self.idle_timeout = Some(parse_timeout(v).map_err(|e| bad("idle-timeout", e))?);
        }
        if let Some(v) = a.given("spool-fsync", &a.spool_fsync) {
            self.spool_fsync = Some(parse_fsync(v).map_err(|e| bad("spool-fsync", e))?);
        }
        if let Some(u) = a.given("ui-trace-url", &a.ui_trace_url) {
            self.ui_trace_url = Some((u.to_owned(), a.source("ui-trace-url")));
        }
        Ok(())
    }

    fn finish(
        self,
        args: &ServeArgs,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::defaults();
        c.test_mode = args.test_mode;
        if let Some(a) = self.http_addr {
            c.http_addr = a;
        }
        if let Some(p) = self.http_port {
            c.http_addr.set_port(p);
        }
        if let Some(a) = self.otlp_http_addr {
            c.otlp_http_addr = a;
        }
        if let (Some(p), Some(a)) = (self.otlp_http_port, c.otlp_http_addr.as_mut()) {
            a.set_port(p);
        }
        if let Some(a) = self.otlp_grpc_addr {
            c.otlp_grpc_addr = a;
        }
        if let (Some(p), Some(a)) = (self.grpc_port, c.otlp_grpc_addr.as_mut()) {
            a.set_port(p);
        }
        c.api_token = match (&self.api_token_file, self.api_token) {
            (Some(path), _) => Some(read_token(path)?),
            (None, t) => t,
        };
        c.allow_unauthenticated = self.allow_unauthenticated.unwrap_or(false);
        c.cors_origins = self.cors_origins.unwrap_or_default();
        c.limits = self.limits;
        if let Some(n) = self.max_connections {
            c.connections.max_connections = n;
        }
        if let Some(t) = self.header_read_timeout {
            c.connections.header_read_timeout = t;
        }
        if let Some(t) = self.idle_timeout {
            c.connections.idle_timeout = t;
        }
        if let Some(n) = self.retry_queue_violations {
            c.retry_queue_violations = n;
        }
        if let Some(f) = self.spool_fsync {
            c.spool.fsync = f;
        }
        if let Some(t) = self.spool_fsync_interval {
            c.spool.fsync_interval = t;
        }
        if let Some(b) = self.spool_segment_bytes {
            c.spool.segment_bytes = b;
        }
        if let Some(d) = self.shutdown_delay {
            c.shutdown_delay = d;
        }

        if let Some(d) = &self.data_dir {
            c.data_dir.clone_from(d);
        } else if let Some(p) = &self.storage_path
            && let Some(parent) = p.parent()
            && !parent.as_os_str().is_empty()
        {
            c.data_dir = parent.to_owned();
        }
        let kind = if args.test_mode {
            StorageType::Memory
        } else {
            self.storage_type.unwrap_or(StorageType::Sqlite)
        };
        c.storage = match kind {
            StorageType::Memory => StorageKind::Memory,
            StorageType::Sqlite => StorageKind::Sqlite(
                self.storage_path
                    .unwrap_or_else(|| c.data_dir.join("betrace.db")),
            ),
        };
        c.spool.enabled = matches!(c.storage, StorageKind::Sqlite(_)) && self.spool.unwrap_or(true);
        if let Some(m) = self.max_violations {
            c.max_violations = m;
        }
        if let Some(r) = self.violation_retention {
            c.violation_retention = r;
        }
        if let Some(endpoint) = self.endpoint.filter(|e| !e.trim().is_empty()) {
            let endpoint = endpoint.trim().to_owned();
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return err(format!(
                    "OTLP endpoint `{endpoint}` must start with http:// or https:// (otlp.endpoint, OTEL_EXPORTER_OTLP_ENDPOINT, --otel-endpoint)"
                ));
            }
            c.export = Some(ExportConfig {
                endpoint,
                protocol: self.protocol.unwrap_or(ExportProtocol::Grpc),
                timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
                batch_size: self.batch_size.unwrap_or(512),
                headers: self.headers.unwrap_or_default(),
            });
        }
        if let Some(m) = self.max_rules {
            c.max_rules = m;
        }
        if let Some(m) = self.max_expression_length {
            c.max_expression_length = m;
        }
        if let Some(b) = self.instruction_budget {
            c.instruction_budget = b;
        }
        c.rules_file = self.rules_file;

        let mut trace = AssemblerConfig::default();
        if args.test_mode {
            trace.root_grace = Duration::from_millis(100);
            trace.idle_timeout = Duration::from_millis(500);
        }
        if let Some(over) = self.trace {
            let mut base = serde_json::to_value(&trace)
                .map_err(|e| ConfigError(format!("key `trace`: {e}")))?;
            if let Value::Object(map) = &mut base {
                for (k, v) in over {
                    map.insert(k, v);
                }
            }
            trace = serde_path_to_error::deserialize(base).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                if path.is_empty() || path == "." {
                    ConfigError(format!("key `trace`: {inner}"))
                } else {
                    ConfigError(format!("key `trace.{path}`: {inner}"))
                }
            })?;
        }
        trace
            .validate()
            .map_err(|e| ConfigError(format!("key `trace.{}`: {}", e.field, e.message)))?;
        c.trace = trace;

        if let Some(e) = self.signature_key_env {
            c.signature_key_env = e;
        }
        c.signature_key = env
            .get(&c.signature_key_env)
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec());
        if let Some(l) = self.log_level {
            c.log_level = l;
        }
        if let Some(f) = self.log_format {
            c.log_format = f;
        }
        if let Some(w) = self.eval_workers {
            c.eval_workers = w;
        }
        if let Some((u, source)) = self.ui_trace_url.filter(|(u, _)| !u.trim().is_empty()) {
            c.ui_trace_url =
                Some(parse_trace_url(&u).map_err(|e| ConfigError(format!("{source}: {e}")))?);
        }

        let open: Vec<SocketAddr> = [Some(c.http_addr), c.otlp_http_addr, c.otlp_grpc_addr]
            .into_iter()
            .flatten()
            .filter(|a| !a.ip().is_loopback())
            .collect();
        if let Some(a) = open.first()
            && c.api_token.is_none()
            && !c.allow_unauthenticated
        {
            return err(format!(
                "refusing to listen on the non-loopback address {a} without an API token; set BETRACE_API_TOKEN (or --api-token-file), or pass --allow-unauthenticated"
            ));
        }
        Ok(c)
    }
}

fn read_token(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "--api-token-file {}: cannot read the token: {e}",
            path.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return err(format!(
            "--api-token-file {}: the file is empty",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

fn budget_of(d: Duration) -> Result<u64, String> {
    let nanos = u64::try_from(d.as_nanos()).map_err(|_| "too long".to_owned())?;
    let budget = nanos / (1_000_000_000 / INSTRUCTIONS_PER_SECOND);
    if budget == 0 {
        Err("must be at least 10ns".to_owned())
    } else {
        Ok(budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// `flags` as clap reads them, plus `vars` as clap reads a flag's environment variable
    /// (a flag given in `flags` wins over its variable).
    fn args_with(flags: &[&str], vars: &[(&str, &str)]) -> ServeArgs {
        let cmd = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let mut argv: Vec<String> = std::iter::once("serve")
            .chain(flags.iter().copied())
            .map(str::to_owned)
            .collect();
        let mut from_env = BTreeMap::new();
        for (var, value) in vars {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_env() == Some(std::ffi::OsStr::new(var)))
                .unwrap();
            let long = arg.get_long().unwrap();
            if !flags.iter().any(|f| f.starts_with(&format!("--{long}"))) {
                argv.push(format!("--{long}={value}"));
                from_env.insert(long.to_owned(), (*var).to_owned());
            }
        }
        let m = cmd.clone().try_get_matches_from(argv).unwrap();
        let mut args = ServeArgs::from_matches(&m, &cmd).unwrap();
        args.from_env.extend(from_env);
        args
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(&ServeArgs::default(), &env(&[]), None).unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:12011".parse().unwrap());
        assert_eq!(c.otlp_grpc_addr, Some("127.0.0.1:4317".parse().unwrap()));
        assert_eq!(
            c.storage,
            StorageKind::Sqlite(PathBuf::from("betrace-data/betrace.db"))
        );
        assert_eq!(c.max_rules, 1000);
        assert!(c.export.is_none());
        // Trace assembly waits for the SDKs' 5 s batch delay; late spans re-open for 30 s.
        assert_eq!(c.trace.root_grace, Duration::from_secs(7));
        assert_eq!(c.trace.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.trace.reevaluate_window, Duration::from_secs(30));
    }

    #[test]
    fn precedence_flags_over_env_over_file() {
        let file = parse_file(
            "server:\n  http_port: 1000\nlogging:\n  level: debug\n  format: json\notlp:\n  endpoint: http://file:4317\n",
            "f.yaml",
        )
        .unwrap();
        let e = env(&[("BETRACE_HTTP_PORT", "2000")]);
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
            ("LOG_LEVEL", "warn"),
        ];
        let c = Config::resolve(&args_with(&[], &vars), &e, Some(&file)).unwrap();
        assert_eq!(c.http_addr.port(), 2000);
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.export.as_ref().unwrap().endpoint, "http://env:4317");
        let args = args_with(
            &[
                "--http-addr=127.0.0.1:3000",
                "--otel-endpoint=http://flag:4318",
                "--otlp-protocol=http/protobuf",
            ],
            &vars,
        );
        let c = Config::resolve(&args, &e, Some(&file)).unwrap();
        assert_eq!(c.http_addr.port(), 3000);
        assert_eq!(c.log_level, "warn");
        let x = c.export.unwrap();
        assert_eq!(x.endpoint, "http://flag:4318");
        assert_eq!(x.protocol, ExportProtocol::HttpProtobuf);
        // The address from BETRACE_HTTP_ADDR keeps BETRACE_HTTP_PORT's port.
        let args = args_with(&[], &[("BETRACE_HTTP_ADDR", "127.0.0.2:1")]);
        let c = Config::resolve(&args, &e, None).unwrap();
        assert_eq!(c.http_addr, "127.0.0.2:2000".parse().unwrap());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = parse_file("storage:\n  tpye: memory\n", "f.yaml").unwrap_err();
        assert!(e.0.contains("storage") && e.0.contains("tpye"), "{e}");
        let e = parse_file("storage:\n  type: floppy\n", "f.yaml").unwrap_err();
        assert!(e.0.contains("storage.type"), "{e}");
        let e = parse_file("bogus: 1\n", "f.yaml").unwrap_err();
        assert!(e.0.contains("bogus"), "{e}");
        let e = parse_file("server:\n  http_port: lots\n", "f.yaml").unwrap_err();
        assert!(e.0.contains("server.http_port"), "{e}");
        let f = parse_file("trace:\n  root_grase: 1s\n", "f.yaml").unwrap();
        let e = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap_err();
        assert!(e.0.contains("root_grase"), "{e}");
        let f = parse_file("trace:\n  idle_timeout: soon\n", "f.yaml").unwrap();
        let e = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap_err();
        assert!(e.0.contains("trace.idle_timeout"), "{e}");
        let f = parse_file("otlp:\n  protocol: carrier-pigeon\n", "f.yaml").unwrap();
        let e = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap_err();
        assert!(e.0.contains("otlp.protocol"), "{e}");
        let e = Config::resolve(
            &ServeArgs::default(),
            &env(&[("BETRACE_HTTP_PORT", "99999")]),
            None,
        )
        .unwrap_err();
        assert!(e.0.contains("BETRACE_HTTP_PORT"), "{e}");
        let args = args_with(&[], &[("LOG_LEVEL", "loud")]);
        let e = Config::resolve(&args, &env(&[]), None).unwrap_err();
        assert!(e.0.contains("environment variable LOG_LEVEL"), "{e}");
        let args = args_with(&["--log-level=loud"], &[("LOG_LEVEL", "info")]);
        let e = Config::resolve(&args, &env(&[]), None).unwrap_err();
        assert!(e.0.contains("flag --log-level"), "{e}");
        let args = args_with(&[], &[("BETRACE_MAX_CONNECTIONS", "many")]);
        let e = Config::resolve(&args, &env(&[]), None).unwrap_err();
        assert!(
            e.0.contains("BETRACE_MAX_CONNECTIONS") && e.0.contains("many"),
            "{e}"
        );
        // An empty variable is unset.
        let args = args_with(&[], &[("BETRACE_STORAGE_TYPE", "")]);
        assert!(Config::resolve(&args, &env(&[]), None).is_ok());
    }

    #[test]
    fn cors_body_limits_and_shutdown_delay() {
        let f = parse_file(
            "server:\n  cors_origins: [https://file.example]\n  max_api_body_bytes: 2048\n  max_bulk_body_bytes: 4096\n  shutdown_delay: 2s\n",
            "f",
        )
        .unwrap();
        let c = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.cors_origins, vec!["https://file.example"]);
        assert_eq!(c.limits.max_api_body_bytes, 2048);
        assert_eq!(c.limits.max_bulk_body_bytes, 4096);
        assert_eq!(c.shutdown_delay, Duration::from_secs(2));
        let vars = [(
            "BETRACE_CORS_ORIGINS",
            "https://a.example, https://b.example",
        )];
        let c = Config::resolve(&args_with(&[], &vars), &env(&[]), Some(&f)).unwrap();
        assert_eq!(
            c.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );
        let args = args_with(&["--cors-origin=https://flag.example"], &vars);
        let c = Config::resolve(&args, &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.cors_origins, vec!["https://flag.example"]);
        let d = Config::resolve(&ServeArgs::default(), &env(&[]), None).unwrap();
        assert_eq!(d.limits.max_api_body_bytes, 1024 * 1024);
        assert_eq!(d.limits.max_bulk_body_bytes, 16 * 1024 * 1024);
        assert!(d.cors_origins.is_empty());
        let f = parse_file("server:\n  max_api_body_bytes: 0\n", "f").unwrap();
        let e = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap_err();
        assert!(e.0.contains("server.max_api_body_bytes"), "{e}");
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let args = ServeArgs {
            http_addr: Some("0.0.0.0:12011".into()),
            ..Default::default()
        };
        let e = Config::resolve(&args, &env(&[]), None).unwrap_err();
        assert!(e.0.contains("--allow-unauthenticated"), "{e}");
        assert!(Config::resolve(&args, &env(&[("BETRACE_API_TOKEN", "t")]), None).is_ok());
        let args = ServeArgs {
            allow_unauthenticated: true,
            ..args
        };
        assert!(Config::resolve(&args, &env(&[]), None).is_ok());
    }

    #[test]
    fn test_mode_and_trace_overrides() {
        let args = ServeArgs {
            test_mode: true,
            ..Default::default()
        };
        let f = parse_file(
            "trace:\n  idle_timeout: 2s\n  max_buffered_spans: 10\n",
            "f",
        )
        .unwrap();
        let c = Config::resolve(&args, &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.storage, StorageKind::Memory);
        assert_eq!(c.trace.root_grace, Duration::from_millis(100));
        assert_eq!(c.trace.idle_timeout, Duration::from_secs(2));
        assert_eq!(c.trace.max_buffered_spans, 10);
    }

    #[test]
    fn connection_limits_and_spool() {
        let c = Config::resolve(&ServeArgs::default(), &env(&[]), None).unwrap();
        assert_eq!(c.connections.header_read_timeout, Duration::from_secs(30));
        assert!(c.connections.max_connections >= 16);
        assert!(c.spool.enabled);
        assert_eq!(c.spool.fsync, SpoolFsync::Interval);
        let f = parse_file(
            "server:\n  max_connections: 50\n  header_read_timeout: 2s\n  idle_timeout: 5s\ningest:\n  spool_fsync: always\n  spool_segment_bytes: 4096\nstorage:\n  retry_queue_violations: 7\n",
            "f",
        )
        .unwrap();
        let args = args_with(&["--spool-fsync=never"], &[("BETRACE_IDLE_TIMEOUT", "9s")]);
        let c = Config::resolve(&args, &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.connections.max_connections, 50);
        assert_eq!(c.connections.header_read_timeout, Duration::from_secs(2));
        assert_eq!(c.connections.idle_timeout, Duration::from_secs(9));
        assert_eq!(c.spool.fsync, SpoolFsync::Never);
        assert_eq!(c.spool.segment_bytes, 4096);
        assert_eq!(c.retry_queue_violations, 7);
        let f = parse_file("ingest:\n  spool_fsync: sometimes\n", "f").unwrap();
        let e = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap_err();
        assert!(e.0.contains("ingest.spool_fsync"), "{e}");
        let f = parse_file("server:\n  idle_timeout: 0s\n", "f").unwrap();
        let e = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap_err();
        assert!(e.0.contains("server.idle_timeout"), "{e}");
        // No spool with memory storage.
        let args = ServeArgs {
            test_mode: true,
            ..Default::default()
        };
        assert!(
            !Config::resolve(&args, &env(&[]), None)
                .unwrap()
                .spool
                .enabled
        );
    }

    #[test]
    fn durations_headers_and_data_dir() {
        let f = parse_file("storage:\n  violation_retention: 30d\n", "f").unwrap();
        let c = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.violation_retention, Duration::from_secs(30 * 86_400));
        let f = parse_file("otlp:\n  timeout: soon\n", "f").unwrap();
        let e = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap_err();
        assert!(
            e.0.contains("otlp.timeout") && e.0.contains("`soon`"),
            "{e}"
        );
        assert_eq!(
            parse_headers("a=1, b=x%20y, c=%C3%A9").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "é".into())
            ]
        );
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("a=50%").is_err());
        assert!(parse_headers("a=%zz").is_err());
        assert!(parse_headers("a=%FF").is_err());
        let args = args_with(&[], &[("BETRACE_STORAGE_PATH", "/tmp/x/b.db")]);
        let c = Config::resolve(&args, &env(&[]), None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let f = parse_file("rules:\n  evaluation_timeout: 50ms\n", "f").unwrap();
        let c = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.instruction_budget, 5_000_000);
    }

    #[test]
    fn ui_trace_url_layers_and_checks() {
        let f = parse_file("ui:\n  trace_url: http://file/{traceId}\n", "f").unwrap();
        let c = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.ui_trace_url.as_deref(), Some("http://file/{traceId}"));
        let vars = [("BETRACE_UI_TRACE_URL", "https://env/x?t={traceId}")];
        let c = Config::resolve(&args_with(&[], &vars), &env(&[]), Some(&f)).unwrap();
        assert_eq!(c.ui_trace_url.as_deref(), Some("https://env/x?t={traceId}"));
        let args = args_with(
            &["--ui-trace-url=http://tempo:3000/explore?traceId={traceId}"],
            &vars,
        );
        let c = Config::resolve(&args, &env(&[]), Some(&f)).unwrap();
        assert_eq!(
            c.ui_trace_url.as_deref(),
            Some("http://tempo:3000/explore?traceId={traceId}")
        );
        let bad = parse_file("ui:\n  trace_url: http://no-placeholder\n", "f").unwrap();
        let err = Config::resolve(&ServeArgs::default(), &env(&[]), Some(&bad)).unwrap_err();
        assert!(
            err.0.contains("ui.trace_url") && err.0.contains("{traceId}"),
            "{err}"
        );
        let args = args_with(
            &[],
            &[("BETRACE_UI_TRACE_URL", "javascript:alert(1)//{traceId}")],
        );
        let err = Config::resolve(&args, &env(&[]), None).unwrap_err();
        assert!(
            err.0.contains("BETRACE_UI_TRACE_URL") && err.0.contains("http://"),
            "{err}"
        );
        assert!(parse_file("ui:\n  colour: red\n", "f").is_err());
    }
}
