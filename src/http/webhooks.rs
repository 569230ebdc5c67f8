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
    read_body(state, headers, body, reject).await
}

/// Reads a request body of any type: 413 over `max_body_bytes` (declared or sent),
/// 408 when the client takes longer than `body_timeout` to send it (a slow-loris
/// client cannot hold a handler), 400 when the connection breaks.
pub(super) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    reject: impl Fn(&'static str),
) -> Result<Bytes, ApiError> {
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
    let read = axum::body::to_bytes(body, state.max_body_bytes);
    match tokio::time::timeout(state.body_timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            if e.into_inner().is::<http_body_util::LengthLimitError>() {
                Err(too_large())
            } else {
                reject("read_error");
                Err(ApiError::bad_request(
                    "body",
                    "could not read the request body",
                ))
            }
        }
        Err(_) => {
            reject("timeout");
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    state.body_timeout.as_secs()
                ),
            )
            .field("body"))
        }
    }
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
    let count = store_alerts(&state, source, alerts).await?;
    Ok(Json(
        serde_json::json!({"status": "stored", "alerts": count}),
    ))
}

/// Hands a request's alerts to correlation and counts them once durably stored.
async fn store_alerts(
    state: &AppState,
    source: Source,
    alerts: Vec<crate::alerts::Alert>,
) -> Result<usize, ApiError> {
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
    Ok(count)
}

/// `POST /api/v1/webhooks/{name}`: a named webhook (`[[webhooks]]`) through its
/// mapping. 404 for an unknown name; 401/403 for a missing or wrong token (when the
/// webhook asks for one) or signature, checked before the body is parsed; 400 for a
/// body that is not JSON; 422 naming the field when the mapping fails or yields a
/// malformed alert. Nothing is stored unless the whole body maps.
pub async fn named(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let source = Source::Webhook;
    let reject = |reason: &'static str| {
        state
            .metrics
            .alerts_rejected
            .with_label_values(&[source.as_str(), reason])
            .inc();
    };
    let set = state
        .webhooks
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(hook) = set.get(&name).cloned() else {
        return Err(ApiError::not_found(format!("no webhook named {name:?}")).field("name"));
    };
    let need = match hook.role {
        Some(crate::config::Role::Ingest) => Some(Need::Ingest),
        Some(crate::config::Role::Operator) => Some(Need::Operator),
        Some(crate::config::Role::Admin) => Some(Need::Admin),
        // Signed webhooks need no token; unsigned ones the ingest token (if any).
        None if hook.hmac_secret.is_none() => Some(Need::Ingest),
        None => None,
    };
    if let Some(need) = need {
        if let Err(e) = state.authorize(&headers, need) {
            reject("unauthorized");
            return Err(e);
        }
    }
    let bytes = json_body(&state, &headers, body, reject).await?;
    if let Some(secret) = &hook.hmac_secret {
        let given = headers
            .get(hook.hmac_header.as_str())
            .and_then(|v| v.to_str().ok());
        let ok = given.is_some_and(|g| crate::sources::webhooks::signature_ok(secret, &bytes, g));
        if !ok {
            reject("bad_signature");
            let what = if given.is_some() {
                "does not match the body"
            } else {
                "is missing"
            };
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("the HMAC-SHA256 signature in {} {what}", hook.hmac_header),
            )
            .field(hook.hmac_header.clone()));
        }
    }
    let parsed: serde_json::Value = crate::sources::parse_json(&bytes).map_err(|e| {
        reject(e.reason);
        ApiError::bad_request(e.field, e.message)
    })?;
    let header_map: std::collections::BTreeMap<String, String> = headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION && k.as_str() != hook.hmac_header)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mapping = hook.mapping.clone();
    let mapped = tokio::task::spawn_blocking(move || {
        set.mappings
            .map(&mapping, &parsed, &header_map, Timestamp::now())
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("mapping task failed: {e}"),
        )
    })?
    .map_err(|e| {
        reject(e.reason);
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.message).field(e.field)
    })?;
    let mut alerts = mapped.alerts;
    for a in &mut alerts {
        a.annotations.insert("webhook".into(), name.clone());
    }
    let count = store_alerts(&state, source, alerts).await?;
    // Acknowledgements (PagerDuty's `acknowledge`): the incidents the alerts are on.
    for fp in &mapped.acknowledge {
        let store = state.store.clone();
        let fp2 = fp.clone();
        let st = super::blocking(move || store.alert_state(&fp2)).await?;
        let Some(incident) = st.and_then(|s| s.incident()) else {
            continue;
        };
        let action = crate::incidents::Action::Acknowledge {
            note: Some(format!("acknowledged through webhook {name}")),
        };
        match state
            .queue
            .act(incident, action, format!("webhook:{name}"))
            .await
        {
            Ok(Ok(_)) | Ok(Err(crate::correlation::ActionError::Conflict { .. })) => {}
            Ok(Err(e)) => {
                tracing::warn!(webhook = %name, %incident, error = %e, "acknowledge from webhook not applied")
            }
            Err(e) => return Err(ApiError::unavailable(e.to_string())),
        }
    }
    Ok(match mapped.response {
        Some((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            Json(body),
        )
            .into_response(),
        None => Json(serde_json::json!({"status": "stored", "alerts": count})).into_response(),
    })
}
