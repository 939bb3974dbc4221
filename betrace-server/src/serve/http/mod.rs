//! The HTTP listeners (SERVER.md §1): the REST API with OTLP/HTTP on the main port, and
//! OTLP/HTTP alone on the standard port 4318.
//!
//! In: HTTP requests. Out: JSON answers (errors as `{"error": {"code", "message",
//! "diagnostics"?}}`), OTLP responses, CSV, Prometheus text. Every REST route is registered
//! through `utoipa-axum`, so the OpenAPI 3 document served at `/v1/openapi.json` lists each
//! route the router serves. A bearer token, when configured, guards every route except
//! health, ready and metrics; CORS is added only for configured origins; a panic in a handler
//! becomes a JSON 500. Every REST body is bounded (`server.max_api_body_bytes`, or
//! `server.max_bulk_body_bytes` for the bulk routes; 413 JSON past it). Once shutdown starts
//! ([`Admission::draining`]) every route but health, readiness and metrics answers 503 with
//! `Retry-After`, and readiness answers 503 itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use betrace_dsl::DiagnosticJson;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admit::{Admission, RETRY_AFTER_SECONDS, UNAUTHENTICATED};
use super::config::Limits;
use super::metrics::Metrics;
use super::pipeline::Pipeline;
use super::registry::{RuleOpError, RuleRegistry};
use super::storage::{Store, StoreError};

pub mod body;
mod compat;
pub mod ingest;
mod rules;
mod traces;
pub mod ui;
mod violations;

/// What every handler shares.
#[derive(Debug)]
pub struct Shared {
    pub pipeline: Arc<Pipeline>,
    pub registry: Arc<RuleRegistry>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// The token check and the door to the pipeline, shared with the gRPC receiver.
    pub admission: Admission,
    pub signing_key: Vec<u8>,
    pub started: Instant,
    pub ready: AtomicBool,
    pub limits: Limits,
    pub openapi: OnceLock<String>,
    pub ui: ui::UiSettings,
}

/// Handler state.
pub type AppState = Arc<Shared>;

/// Who made a request, for audit events: `token@addr` or `anonymous@addr`.
#[derive(Debug, Clone)]
pub struct Who(pub String);

/// A REST error: `{"error": {"code", "message", "diagnostics"?}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    more: Option<Box<More>>,
}

/// The rarer parts of an [`ApiError`].
#[derive(Debug, Default)]
struct More {
    diagnostics: Option<Vec<DiagnosticJson>>,
    extra: Option<(&'static str, Value)>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            more: None,
        }
    }

    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// Adds `diagnostics` (DSL.md §4 JSON shape).
    pub fn with_diagnostics(mut self, d: Vec<DiagnosticJson>) -> ApiError {
        self.more().diagnostics = Some(d);
        self
    }

    /// Adds a key to the error object.
    pub fn with_extra(mut self, key: &'static str, value: Value) -> ApiError {
        self.more().extra = Some((key, value));
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.more().retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        let more = self.more.map(|m| *m).unwrap_or_default();
        if let Some(d) = more.diagnostics {
            error["diagnostics"] = json!(d);
        }
        if let Some((k, v)) = more.extra {
            error[k] = v;
        }
        let mut resp = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(s) = more.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "storage error");
        ApiError::internal(format!("storage error: {e}"))
    }
}

impl From<RuleOpError> for ApiError {
    fn from(e: RuleOpError) -> ApiError {
        let msg = e.to_string();
        match e {
            RuleOpError::BadRequest(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_rule", msg)
            }
            RuleOpError::Invalid { diagnostics, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_expression", msg)
                    .with_diagnostics(diagnostics)
            }
            RuleOpError::NotFound(_) => ApiError::not_found(msg),
            RuleOpError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            RuleOpError::TooMany(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_rules", msg)
            }
            RuleOpError::ReadOnly(_) => ApiError::new(StatusCode::FORBIDDEN, "read_only", msg),
            RuleOpError::Store(s) => s.into(),
        }
    }
}

/// Parses a JSON request body; errors name the line and column.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// Runs blocking work (storage, evaluation) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BeTrace",
        description = "Behavioral assertions on OpenTelemetry traces: rules, violations and OTLP ingest (SERVER.md §1)."
    ),
    tags(
        (name = "rules", description = "Rules: create, change, validate, test, import and export"),
        (name = "violations", description = "Violations found by the rules"),
        (name = "ingest", description = "OTLP/HTTP and the earlier span API"),
        (name = "operations", description = "Health, readiness, metrics, flush"),
        (name = "compatibility", description = "Routes of the earlier BeTrace API")
    )
)]
struct ApiDoc;

/// The REST routes with their OpenAPI document.
fn api_router(limits: &Limits) -> OpenApiRouter<AppState> {
    let operations = OpenApiRouter::new()
        .merge(violations::router())
        .merge(traces::router())
        .merge(ui::router())
        .routes(routes!(health))
        .routes(routes!(health_root))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(flush))
        .routes(routes!(openapi_json));
    // OTLP/HTTP and `/v1/spans` read their bodies with their own limits (`body::read`).
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(rules::router(limits))
        .nest("/api", compat::v1_router(limits))
        .merge(compat::router(limits))
        .merge(body::bounded(
            operations,
            limits.max_api_body_bytes,
            "server.max_api_body_bytes",
        ))
        .routes(routes!(ingest::otlp_traces))
        .routes(routes!(ingest::spans));
    compat::tag_openapi(router.get_openapi_mut());
    router
}

/// The OpenAPI document of the REST API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router(&Limits::default()).split_for_parts().1
}

/// The main listener's router: REST API, OTLP/HTTP, metrics.
pub fn main_router(state: AppState, cors_origins: &[String]) -> Router {
    let (router, doc) = api_router(&state.limits).split_for_parts();
    let _ = state
        .openapi
        .set(doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    let router = router
        .merge(ui::pages())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn_with_state(state.clone(), drain))
        .layer(axum::middleware::from_fn(compat::errors));
    let router = match cors(cors_origins) {
        Some(c) => router.layer(c),
        None => router,
    };
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Answers 503 (`Retry-After`) once shutdown started, except health, readiness and metrics; OTLP
/// `POST /v1/traces` answers in its own encoding from the handler.
async fn drain(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if st.admission.draining()
        && !matches!(
            path,
            "/v1/health" | "/health" | "/v1/ready" | "/metrics" | "/v1/traces"
        )
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down; retry against another instance or later",
        )
        .with_retry_after(RETRY_AFTER_SECONDS)
        .into_response();
    }
    next.run(req).await
}

/// The OTLP/HTTP listener's router (`POST /v1/traces` only).
pub fn otlp_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/traces", axum::routing::post(ingest::otlp_traces))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal("internal error").into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    // The methods and headers of the earlier product's clients (COMPAT.md "Common").
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("x-tenant-id"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(Any));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(layer.allow_origin(AllowOrigin::list(list)))
}

/// Paths open without a token (SERVER.md §1 "Security"), and the static UI pages.
fn is_open(path: &str) -> bool {
    matches!(path, "/v1/health" | "/health" | "/v1/ready" | "/metrics") || ui::is_page(path)
}

async fn auth(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let who = if st.admission.token_required() && !is_open(req.uri().path()) {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !st.admission.authorized(authorization) {
            let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", UNAUTHENTICATED)
                .into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        format!("token@{addr}")
    } else {
        format!("anonymous@{addr}")
    };
    req.extensions_mut().insert(Who(who));
    next.run(req).await
}

/// Health.
#[utoipa::path(get, path = "/v1/health", tag = "operations",
    responses((status = 200, description = "`{status: HEALTHY, version, uptimeSeconds, metadata: {storage}}`")))]
pub async fn health(State(st): State<AppState>) -> Json<Value> {
    Json(health_body(&st))
}

/// Health for the earlier product's clients: `status` in lower case (`healthy`), the rest as
/// `/v1/health` (COMPAT.md "Common").
#[utoipa::path(get, path = "/health", tag = "compatibility",
    responses((status = 200, description = "`{status: healthy, version, uptimeSeconds, metadata: {storage}}`")))]
pub async fn health_root(State(st): State<AppState>) -> Json<Value> {
    let mut body = health_body(&st);
    body["status"] = json!("healthy");
    Json(body)
}

fn health_body(st: &Shared) -> Value {
    json!({
        "status": "HEALTHY",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": st.started.elapsed().as_secs_f64(),
        "metadata": {"storage": st.store.kind()},
    })
}

/// Readiness: 503 until storage is open, the spool replayed and the rules loaded, again while
/// storage fails (violations cannot be stored or the spool written), and once shutdown
/// starts.
#[utoipa::path(get, path = "/v1/ready", tag = "operations",
    responses((status = 200, description = "`{status: READY}`"),
        (status = 503, description = "`{status: NOT_READY, reason}` while starting or while storage fails; `{status: SHUTTING_DOWN}`")))]
pub async fn ready(State(st): State<AppState>) -> Response {
    if st.admission.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "SHUTTING_DOWN"})),
        )
            .into_response();
    }
    if !st.ready.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "NOT_READY", "reason": "starting"})),
        )
            .into_response();
    }
    match st.pipeline.storage_problem() {
        None => Json(json!({"status": "READY"})).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "NOT_READY", "reason": reason})),
        )
            .into_response(),
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    st.pipeline.sync_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// Evaluates every buffered trace now and waits until the violations are stored.
#[utoipa::path(post, path = "/v1/flush", tag = "operations",
    responses((status = 200, description = "`{flushed: n}`: traces evaluated")))]
pub async fn flush(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let p = Arc::clone(&st.pipeline);
    let n = blocking(move || p.flush()).await?;
    Ok(Json(json!({ "flushed": n })))
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document of the REST API")))]
pub async fn openapi_json(State(st): State<AppState>) -> Response {
    let doc = st.openapi.get().cloned().unwrap_or_else(|| "{}".to_owned());
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}
