//! `betrace serve` (SERVER.md §1): the standalone backend.
//!
//! In: the flags, the environment and the config file; then OTLP traces and REST requests.
//! Out: violations stored, served and exported; exit 0 after a clean SIGTERM/SIGINT drain,
//! 2 for a bad configuration, 1 when start-up fails (storage, rules, listeners).
//!
//! Start-up: configuration ([`config`]), logging, storage ([`storage`]), the signature key,
//! the rules ([`registry`]), the pipeline ([`pipeline`]) and the replay of the ingest spool
//! ([`spool`]), then the listeners — REST and OTLP/HTTP ([`http`]), OTLP/HTTP on its own port,
//! OTLP/gRPC ([`grpc`]), all under the connection limits of [`conn`] — and the exporter
//! ([`export`]). Once bound, one line goes to standard output:
//! `betrace listening http=ADDR otlp_http=ADDR|off otlp_grpc=ADDR|off` (useful with port 0).
//! Shutdown: requests are answered 503 (`Retry-After`; gRPC `UNAVAILABLE`) for
//! `server.shutdown_delay` and while every buffered trace is evaluated
//! (`completion_reason=shutdown`) and stored; then the listeners close, what is left is
//! exported, exit 0.

pub mod admit;
pub mod config;
pub mod conn;
pub mod export;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod spool;
pub mod storage;
pub mod summary;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use betrace_core::assemble::TraceAssembler;
use betrace_core::engine::EngineOptions;
use tokio::sync::watch;

use self::config::{Config, LogFormat, ServeArgs, StorageKind};
use self::http::Shared;
use self::metrics::Metrics;
use self::pipeline::{Pipeline, PipelineConfig};
use self::registry::RuleRegistry;
use self::storage::{MemoryStore, SqliteStore, Store};

/// Runs `betrace serve`; returns the exit code.
pub fn run(args: ServeArgs) -> u8 {
    // The variables without a flag and the signature key; a variable that is not UTF-8 is
    // left out rather than stopping start-up (`std::env::vars` would panic on it).
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let config = match Config::load(&args, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("betrace-io")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            1
        }
    }
}

fn init_logging(c: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::new(format!(
        "{level},h2=warn,hyper=warn,tower=warn,reqwest=warn",
        level = c.log_level
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match c.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// The signature key: from the environment, else `<data dir>/signature.key` (generated once,
/// mode 0600: 64 hex characters, used as the key bytes), or — with memory storage — a key
/// generated for this process only. Never logged.
fn signing_key(c: &Config) -> Result<Vec<u8>, String> {
    if let Some(k) = &c.signature_key {
        tracing::info!(source = %c.signature_key_env, "signature key from the environment");
        return Ok(k.clone());
    }
    if c.storage == StorageKind::Memory {
        tracing::info!("signature key generated for this process (memory storage)");
        return Ok(random_key().into_bytes());
    }
    let path = c.data_dir.join("signature.key");
    load_or_create_key(&path)
}

fn random_key() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn load_or_create_key(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let key = bytes
                .strip_suffix(b"\n")
                .map(|k| k.strip_suffix(b"\r").unwrap_or(k))
                .unwrap_or(&bytes)
                .to_vec();
            if key.is_empty() {
                return Err(format!(
                    "{}: the signature key file is empty",
                    path.display()
                ));
            }
            tracing::info!(path = %path.display(), "signature key from the data directory");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let key = random_key();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            f.write_all(key.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "signature key generated");
            Ok(key.into_bytes())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

async fn serve(config: Config) -> Result<(), String> {
    let started = Instant::now();
    let store: Arc<dyn Store> = match &config.storage {
        StorageKind::Memory => Arc::new(MemoryStore::new()),
        StorageKind::Sqlite(path) => Arc::new(
            SqliteStore::open(path).map_err(|e| format!("storage {}: {e}", path.display()))?,
        ),
    };
    let key = signing_key(&config)?;
    let file_rules = match &config.rules_file {
        Some(path) => betrace_core::rules::load_rules_file(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let metrics = Arc::new(Metrics::new());
    let engine = EngineOptions {
        signing_key: Some(key.clone()),
        instruction_budget: config.instruction_budget,
        ..EngineOptions::default()
    };
    let registry = Arc::new(RuleRegistry::open(
        Arc::clone(&store),
        file_rules,
        engine,
        config.max_rules,
        config.max_expression_length,
        Arc::clone(&metrics),
    )?);
    let assembler = TraceAssembler::new(config.trace.clone()).map_err(|e| e.to_string())?;
    let spool = if config.spool.enabled {
        let dir = config.data_dir.join("spool");
        Some(
            spool::Spool::open(&dir, config.spool, Arc::clone(&metrics))
                .map_err(|e| format!("spool {}: {e}", dir.display()))?,
        )
    } else {
        None
    };
    let pipeline = Arc::new(Pipeline::new(
        assembler,
        registry.rule_cell(),
        Arc::clone(&store),
        Arc::clone(&metrics),
        spool,
        PipelineConfig {
            limits: config.limits,
            max_violations: config.max_violations,
            retention: config.violation_retention,
            retry_queue_violations: config.retry_queue_violations,
            eval_workers: config.eval_workers,
        },
    ));
    pipeline.resume_after_shutdown();
    pipeline
        .start()
        .map_err(|e| format!("cannot start the evaluation threads: {e}"))?;
    {
        let p = Arc::clone(&pipeline);
        let replayed = tokio::task::spawn_blocking(move || p.replay())
            .await
            .map_err(|e| format!("spool replay failed: {e}"))?;
        if replayed > 0 {
            tracing::info!(
                spans = replayed,
                "spool: spans accepted before the last stop replayed into the trace buffer"
            );
        }
    }

    let state = Arc::new(Shared {
        pipeline: Arc::clone(&pipeline),
        registry,
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
        admission: admit::Admission::new(
            Arc::clone(&pipeline),
            Arc::clone(&metrics),
            config.api_token.as_deref().map(admit::Token::new),
            config.limits.max_spans_per_request,
        ),
        signing_key: key,
        started,
        ready: AtomicBool::new(false),
        limits: config.limits,
        openapi: std::sync::OnceLock::new(),
        ui: http::ui::UiSettings {
            trace_url: config.ui_trace_url.clone(),
            rules_file: config.rules_file.as_ref().map(|p| p.display().to_string()),
            export_enabled: config.export.is_some(),
        },
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let main_listener = bind(config.http_addr, "REST API").await?;
    let main_addr = main_listener.local_addr().map_err(|e| e.to_string())?;
    let otlp_http = match config.otlp_http_addr {
        Some(a) => Some(bind(a, "OTLP/HTTP").await?),
        None => None,
    };
    let otlp_http_addr = otlp_http.as_ref().and_then(|l| l.local_addr().ok());
    let otlp_grpc = match config.otlp_grpc_addr {
        Some(a) => Some(bind(a, "OTLP/gRPC").await?),
        None => None,
    };
    let otlp_grpc_addr = otlp_grpc.as_ref().and_then(|l| l.local_addr().ok());

    let conns = conn::Connections::new(config.connections, Arc::clone(&metrics));
    tokio::spawn(Arc::clone(&conns).sweep_until(stop_rx.clone()));
    let mut servers = Vec::new();
    servers.push(tokio::spawn(conn::serve_http(
        main_listener,
        Arc::clone(&conns),
        http::main_router(Arc::clone(&state), &config.cors_origins),
        stop_rx.clone(),
        "REST API",
    )));
    if let Some(listener) = otlp_http {
        servers.push(tokio::spawn(conn::serve_http(
            listener,
            Arc::clone(&conns),
            http::otlp_router(Arc::clone(&state)),
            stop_rx.clone(),
            "OTLP/HTTP",
        )));
    }
    if let Some(listener) = otlp_grpc {
        let svc = grpc::service(Arc::clone(&state));
        let mut stop = stop_rx.clone();
        let incoming = conn::incoming(listener, Arc::clone(&conns));
        let max = state.limits.max_decompressed_bytes;
        let builder = grpc::server_builder(&config.connections);
        servers.push(tokio::spawn(async move {
            builder
                .layer(grpc::status_layer(max))
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .map_err(|e| format!("OTLP/gRPC listener failed: {e}"))
        }));
    }

    let exporter = match &config.export {
        Some(x) => {
            let e = export::Exporter::new(
                Arc::clone(&store),
                x.clone(),
                Arc::clone(&metrics),
                pipeline.violations_stored(),
            )?;
            let (export_stop_tx, export_stop_rx) = watch::channel(false);
            Some((export_stop_tx, tokio::spawn(e.run(export_stop_rx))))
        }
        None => None,
    };

    state
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    let show = |a: Option<SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
    tracing::info!(
        http = %main_addr,
        otlp_http = %show(otlp_http_addr),
        otlp_grpc = %show(otlp_grpc_addr),
        storage = store.kind(),
        rules = state.registry.rules().len(),
        "betrace serve started"
    );
    println!(
        "betrace listening http={main_addr} otlp_http={} otlp_grpc={}",
        show(otlp_http_addr),
        show(otlp_grpc_addr)
    );
    let _ = std::io::stdout().flush();

    let signal = wait_for_signal().await;
    tracing::info!(
        signal,
        "shutting down: answering 503; evaluating buffered traces"
    );
    state.admission.start_draining();
    if !config.shutdown_delay.is_zero() {
        tokio::time::sleep(config.shutdown_delay).await;
    }
    let p = Arc::clone(&pipeline);
    let drained = tokio::task::spawn_blocking(move || p.shutdown())
        .await
        .map_err(|e| format!("shutdown failed: {e}"))?;
    tracing::info!(traces = drained, "buffered traces evaluated at shutdown");
    let _ = stop_tx.send(true);
    for s in servers {
        match tokio::time::timeout(Duration::from_secs(30), s).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("{e}"),
            Ok(Err(e)) => tracing::error!(error = %e, "listener task failed"),
            Err(_) => tracing::warn!("a listener did not stop within 30 s"),
        }
    }
    if let Some((tx, task)) = exporter {
        let _ = tx.send(true);
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
