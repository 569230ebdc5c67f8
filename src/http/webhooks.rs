//! Webhook endpoints: authenticate, check content type and size, parse and validate the
//! whole payload, then hand the alerts to correlation and answer only once they are
//! durably stored. A rejected request stores nothing.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use jiff::Timestamp;

use super::{ApiError, AppState, Need};
use crate::alerts::Source;
use crate::sources::{alertmanager, PayloadError};

/// Reads a JSON body: 415 unless the content type is JSON, 413 over the limit;
/// `reject` is told why a body was refused (for metrics).
pub(super) async fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    reject: impl Fn(&'static str),
) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        reject("unsupported_media_type");
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got {content_type:?}"),
        )
        .field("Content-Type"));
    }
    let too_large = || {
        reject("too_large");
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {} bytes", state.max_body_bytes),
        )
        .field("body")
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|e| {
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                reject("read_error");
                ApiError::bad_request("body", "could not read the request body")
            }
        })
}

fn payload_error(state: &AppState, source: Source, e: PayloadError) -> ApiError {
    state
        .metrics
        .alerts_rejected
        .with_label_values(&[source.as_str(), e.reason])
        .inc();
    ApiError::bad_request(e.field, e.message)
}

/// `POST /api/v1/webhooks/alertmanager`: Alertmanager's webhook, version 4.
pub async fn alertmanager(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let source = Source::Alertmanager;
    if let Err(e) = state.authorize(&headers, Need::Ingest) {
        state
            .metrics
            .alerts_rejected
            .with_label_values(&[source.as_str(), "unauthorized"])
            .inc();
        return Err(e);
    }
    let bytes = json_body(&state, &headers, body, |reason| {
        state
            .metrics
            .alerts_rejected
            .with_label_values(&[source.as_str(), reason])
            .inc();
    })
    .await?;
    let (payload, alerts) = alertmanager::parse(&bytes, Timestamp::now())
        .map_err(|e| payload_error(&state, source, e))?;
    if payload.truncated_alerts > 0 {
        tracing::warn!(
            receiver = %payload.receiver,
            group_key = %payload.group_key,
            truncated = payload.truncated_alerts,
            "Alertmanager truncated this notification (max_alerts); the missing alerts come with later notifications"
        );
    }
    let count = alerts.len();
    state
        .queue
        .submit(alerts)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    state
        .metrics
        .alerts_received
        .with_label_values(&[source.as_str()])
        .inc_by(count as u64);
    Ok(Json(
        serde_json::json!({"status": "stored", "alerts": count}),
    ))
}
