//! The HTTP interface (axum): webhooks in, the read API, health and metrics.
//!
//! Owns routing, authentication, body limits and content types, JSON errors and the
//! request metrics. Handlers validate input completely before handing anything on, and
//! never touch sled or Rhai directly: reads go through the [`Store`] trait on the
//! blocking pool, writes through the correlation queue.

mod actions;
mod auth;
mod backup;
mod changes;
mod chat;
pub use chat::SlackApps;
mod error;
mod outbox;
mod records;
mod reports;
pub mod serve;
mod silences;
mod tickets;
pub use tickets::{TicketSinks, MARKER as TICKET_MARKER};
mod webhooks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tracing::Instrument;

pub use auth::{Caller, Need};
pub use error::ApiError;

use crate::config::Token;
use crate::correlation::Queue;
use crate::rules::RuleSet;
use crate::store::Store;
use crate::telemetry::Metrics;

/// What handlers share.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub queue: Queue,
    /// Told of an operator's outbox retry.
    pub outbox: crate::outbox::worker::Handle,
    /// Slack sinks whose buttons act on incidents.
    pub slack_apps: chat::SlackApps,
    /// Ticketing sinks whose tickets update incidents.
    pub tickets: tickets::TicketSinks,
    pub metrics: Arc<Metrics>,
    /// Replaced when SIGHUP reloads the config.
    pub tokens: Arc<std::sync::RwLock<Vec<Token>>>,
    pub rules: Arc<RuleSet>,
    /// `POST /api/v1/changes` writes one change at a time (idempotency by external id).
    pub changes_lock: Arc<std::sync::Mutex<()>>,
    /// The named webhooks and their mappings; replaced when SIGHUP reloads the config.
    pub webhooks: Arc<std::sync::RwLock<Arc<crate::sources::webhooks::WebhookSet>>>,
    /// Polled sources that fail to answer (`/readyz` names them).
    pub stale_sources: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// The configuration in force (`Settings::view`), for `GET /api/v1/config`.
    pub config: Arc<std::sync::RwLock<serde_json::Value>>,
    /// The silences in force, shared with correlation.
    pub silences: Arc<crate::silences::SilenceSet>,
    /// Silences are written one at a time (their ids come from the store).
    pub silences_lock: Arc<std::sync::Mutex<()>>,
    pub max_body_bytes: usize,
    /// How long a client may take to send a request body (then 408).
    pub body_timeout: std::time::Duration,
    /// False until the daemon is fully started and again while it drains.
    pub ready: AtomicBool,
    /// Where `POST /api/v1/store/backups` writes (`[store] backup_dir`).
    pub backup_dir: std::path::PathBuf,
}

pub type AppState = Arc<Shared>;

impl Shared {
    pub fn authorize(
        &self,
        headers: &axum::http::HeaderMap,
        need: Need,
    ) -> Result<Caller, ApiError> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        auth::authorize(&tokens, headers, need)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// Runs a synchronous store read on the blocking pool.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::unavailable(e.to_string())),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store read failed: {e}"),
        )),
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/webhooks/alertmanager",
            post(webhooks::alertmanager),
        )
        .route("/api/v1/webhooks/jira", post(tickets::jira))
        .route("/api/v1/webhooks/servicenow", post(tickets::servicenow))
        .route("/api/v1/webhooks/{name}", post(webhooks::named))
        .route("/api/v1/incidents", get(records::list_incidents))
        .route(
            "/api/v1/incidents/{id}",
            get(records::get_incident).patch(actions::patch_incident),
        )
        .route(
            "/api/v1/incidents/{id}/{action}",
            post(actions::incident_action),
        )
        .route(
            "/api/v1/incidents/{id}/timeline",
            get(records::incident_timeline),
        )
        .route("/api/v1/alerts", get(records::list_alerts))
        .route("/api/v1/alerts/{fingerprint}", get(records::get_alert))
        .route("/api/v1/rules", get(rules_status))
        .route("/api/v1/config", get(config_view))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route(
            "/api/v1/changes",
            get(records::list_changes).post(changes::post_change),
        )
        .route("/api/v1/changes/{id}", get(records::get_change))
        .route("/api/v1/chat/slack/{sink}", post(chat::slack_interaction))
        .route("/api/v1/store/backups", post(backup::create))
        .route("/api/v1/outbox", get(outbox::list_queue))
        .route("/api/v1/outbox/events", get(outbox::list_events))
        .route("/api/v1/outbox/{seq}", get(outbox::get_event))
        .route("/api/v1/outbox/{seq}/retry", post(outbox::retry))
        .route("/api/v1/reports/{kind}", get(reports::get_report))
        .route(
            "/api/v1/silences",
            get(silences::list_silences).post(silences::post_silence),
        )
        .route(
            "/api/v1/silences/{id}",
            get(silences::get_silence).delete(silences::delete_silence),
        )
        .route(
            "/api/v1/problems",
            get(records::list_problems).post(actions::post_problem),
        )
        .route(
            "/api/v1/problems/{id}",
            get(records::get_problem).patch(actions::patch_problem),
        )
        .route(
            "/api/v1/problems/{id}/{action}",
            post(actions::problem_action),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Times every request by route and status, and runs it in a span naming the route.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!("http", method = %req.method(), route = %route);
    let started = Instant::now();
    let resp = next.run(req).instrument(span).await;
    state
        .metrics
        .http_duration
        .with_label_values(&[&route, resp.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

/// `GET /api/v1/rules`: the files in force (name, SHA-256, hooks), when they were
/// loaded and the result of the last reload, with its error.
async fn rules_status(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<crate::rules::RulesStatus>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    Ok(Json(state.rules.status()))
}

/// `GET /api/v1/config` (admin): the configuration in force, token secrets left out.
async fn config_view(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.authorize(&headers, Need::Admin)?;
    let view = state
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Json(view))
}

/// `GET /api/v1/audit/verify`: the audit log's hash chain checked end to end.
async fn audit_verify(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let store = state.store.clone();
    let (v, head) = blocking(move || {
        let v = crate::store::verify_audit(&*store)?;
        Ok((v, store.audit_head()?))
    })
    .await?;
    Ok(Json(serde_json::json!({
        "intact": v.first_bad.is_none(),
        "entries": v.checked,
        "head": {"seq": head.0, "hash": head.1},
        "first_bad": v.first_bad,
    })))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let (failed, refusing, blocked) = match blocking(move || store.stats()).await {
        Ok(stats) => (
            stats.failed,
            stats.refusing_writes,
            stats.checkpoints_blocked,
        ),
        Err(e) => (Some(e.error), None, None),
    };
    if let Some(error) = failed {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "store failed", "error": error})),
        )
            .into_response();
    }
    if let Some(error) = refusing {
        // Not a failure: the next write that finds room succeeds (no restart).
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "store refusing writes", "error": error})),
        )
            .into_response();
    }
    if state.ready.load(Ordering::SeqCst) {
        let stale: Vec<String> = state
            .stale_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let mut body = serde_json::json!({"status": "ready", "stale_sources": stale});
        if let Some(why) = blocked {
            // Ready (writes go into the log), but the log grows until there is room.
            body["checkpoints_blocked"] = why.into();
        }
        Json(body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not ready"})),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    match blocking(move || store.stats()).await {
        Ok(stats) => state.metrics.observe_store(&stats),
        Err(e) => tracing::warn!(error = %e.error, "store figures unavailable for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
