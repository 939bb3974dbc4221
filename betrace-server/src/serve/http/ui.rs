//! The web UI (SERVER.md §1; docs/server.md "Web UI"): static pages at `/ui/`, embedded in
//! the binary, and the two small JSON routes they need beyond the REST API.
//!
//! In: `GET /`, `GET /ui`, `GET /ui/{file}`; `GET /v1/ui/config`, `GET /v1/ui/status`,
//! `GET /v1/ui/last-violations`.
//! Out: the HTML, JavaScript and CSS of `betrace-server/ui/` (compiled in with
//! `include_str!`, so `betrace serve` needs no build step or network to serve them);
//! `/` and `/ui` redirect to `/ui/`. The pages are open without a token (they hold no data);
//! every request they make to the API carries the token the user typed, as
//! `Authorization: Bearer`. Static responses forbid framing and scripts from elsewhere
//! (`Content-Security-Policy`).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, blocking};

/// What the UI needs to know about this server, fixed at start-up.
#[derive(Debug, Clone, Default)]
pub struct UiSettings {
    /// `ui.trace_url` (validated by the configuration): `{traceId}` is replaced in the page.
    pub trace_url: Option<String>,
    /// The `--rules` file, when one was loaded (its rules are read-only).
    pub rules_file: Option<String>,
    /// Whether violations are exported over OTLP.
    pub export_enabled: bool,
}

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../ui/style.css"),
    ),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// True for the paths of the static pages, served without a token.
pub fn is_page(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// The static pages (not in the OpenAPI document).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/", axum::routing::get(to_ui))
        .route("/ui", axum::routing::get(to_ui))
        .route("/ui/", axum::routing::get(index))
        .route("/ui/{file}", axum::routing::get(asset))
}

/// The JSON routes of the UI.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ui_config))
        .routes(routes!(ui_status))
        .routes(routes!(last_violations))
}

async fn to_ui() -> Redirect {
    Redirect::temporary("/ui/")
}

async fn index() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

async fn asset(Path(file): Path<String>) -> Response {
    serve(&file).unwrap_or_else(|e| e.into_response())
}

fn serve(file: &str) -> Result<Response, ApiError> {
    let (_, mime, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::not_found(format!("no UI file `{file}`")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *mime),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        *body,
    )
        .into_response())
}

/// Settings of the web UI.
#[utoipa::path(get, path = "/v1/ui/config", tag = "operations",
    responses((status = 200, description = "`{version, storage, traceUrl, rulesFile, rulesReadOnly, exportEnabled}`: `traceUrl` is the `ui.trace_url` template or null; `rulesFile` the `--rules` file or null")))]
pub async fn ui_config(State(st): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "storage": st.store.kind(),
        "traceUrl": st.ui.trace_url,
        "rulesFile": st.ui.rules_file,
        "rulesReadOnly": st.ui.rules_file.is_some(),
        "exportEnabled": st.ui.export_enabled,
    }))
}

/// What `/metrics` cannot carry: the last export error.
#[utoipa::path(get, path = "/v1/ui/status", tag = "operations",
    responses((status = 200, description = "`{exportEnabled, lastExportError: {message, at (RFC 3339)} | null}`; the counts are in `/metrics`")))]
pub async fn ui_status(State(st): State<AppState>) -> Json<Value> {
    let last = st
        .metrics
        .last_export_error()
        .map(|(message, at)| json!({"message": message, "at": at}));
    Json(json!({
        "exportEnabled": st.ui.export_enabled,
        "lastExportError": last,
    }))
}

/// The newest violation of each rule (the rules page's "last violation" column).
#[utoipa::path(get, path = "/v1/ui/last-violations", tag = "operations",
    responses((status = 200, description = "`{rules: {<ruleId>: {id, createdAt, severity}}}`: only rules with a stored violation")))]
pub async fn last_violations(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = std::sync::Arc::clone(&st.store);
    let rows = blocking(move || store.last_violation_per_rule()).await??;
    let mut rules = serde_json::Map::new();
    for r in rows {
        if let Some(rule) = r.json["ruleId"].as_str() {
            rules.insert(
                rule.to_owned(),
                json!({"id": r.json["id"], "createdAt": r.json["createdAt"], "severity": r.json["severity"]}),
            );
        }
    }
    Ok(Json(json!({ "rules": rules })))
}
