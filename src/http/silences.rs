//! Silences: `POST /api/v1/silences` (operator), `GET /api/v1/silences[?state=]`,
//! `GET /api/v1/silences/{id}` and `DELETE /api/v1/silences/{id}` (expire: its
//! creator, or an admin).
//!
//! Silences are written here, one at a time under a lock, each as one durable store
//! commit with its audit entry (correlation never writes them), then put into the
//! shared [`SilenceSet`](crate::silences::SilenceSet) that correlation reads. Expiring
//! one also sends correlation a tick, so that the incidents it kept quiet page again
//! at once.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::{blocking, ApiError, AppState, Need};
use crate::config::Role;
use crate::silences::{Silence, SilenceId, SilenceRequest, SilenceState};
use crate::store::Batch;

fn view(s: &Silence, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(s).expect("silences serialize");
    v["state"] = Value::from(s.state(now).as_str());
    v
}

/// `POST /api/v1/silences`: 201 with the new silence.
pub async fn post_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.authorize(&headers, Need::Operator)?;
    let bytes = super::webhooks::json_body(&state, &headers, body, |_| {}).await?;
    let req: SilenceRequest = crate::sources::parse_json(&bytes)
        .map_err(|e| ApiError::bad_request(e.field, e.message))?;
    let (store, lock, by) = (
        state.store.clone(),
        state.silences_lock.clone(),
        caller.actor(),
    );
    let written = blocking(move || {
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now();
        let id = SilenceId(store.next_silence_number()?);
        let (silence, change) = match req.into_silence(id, &by, now) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        store.commit(Batch {
            silences: vec![silence.clone()],
            audit: vec![(now, by, change)],
            ..Batch::default()
        })?;
        Ok(Ok((silence, now)))
    })
    .await?;
    let (silence, now) = written
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.message).field(e.field))?;
    state.silences.put(silence.clone(), now);
    tracing::info!(silence = %silence.id, by = %caller.name, "silence created");
    Ok((StatusCode::CREATED, Json(view(&silence, now))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceQuery {
    state: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/silences[?state=active|pending|expired|any][&limit=N]`, newest first
/// (default: active and pending).
pub async fn list_silences(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SilenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let q = super::records::query(q)?;
    let wanted: &[SilenceState] = match q.state.as_deref() {
        None => &[SilenceState::Active, SilenceState::Pending],
        Some("any") => &[
            SilenceState::Active,
            SilenceState::Pending,
            SilenceState::Expired,
        ],
        Some("active") => &[SilenceState::Active],
        Some("pending") => &[SilenceState::Pending],
        Some("expired") => &[SilenceState::Expired],
        Some(s) => {
            return Err(ApiError::bad_request(
                "state",
                format!("expected active, pending, expired or any, got {s:?}"),
            ))
        }
    };
    let limit = super::records::limit_of(q.limit.as_deref())?;
    let store = state.store.clone();
    let all = blocking(move || store.silences()).await?;
    let now = Timestamp::now();
    let silences: Vec<Value> = all
        .iter()
        .rev()
        .filter(|s| wanted.contains(&s.state(now)))
        .take(limit)
        .map(|s| view(s, now))
        .collect();
    Ok(Json(serde_json::json!({ "silences": silences })))
}

/// `GET /api/v1/silences/{id}`: the silence with its timeline.
pub async fn get_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let id: SilenceId = super::records::parse_id(&id)?;
    let store = state.store.clone();
    let found = blocking(move || {
        let Some(s) = store.silence(id)? else {
            return Ok(None);
        };
        Ok(Some((s, store.timeline(&id.to_string())?)))
    })
    .await?;
    let (silence, timeline) =
        found.ok_or_else(|| ApiError::not_found(format!("no silence {id}")).field("id"))?;
    let mut v = view(&silence, Timestamp::now());
    v["timeline"] = serde_json::to_value(&timeline).expect("audit entries serialize");
    Ok(Json(v))
}

/// `DELETE /api/v1/silences/{id}`: expires it now (it stays stored, expired).
pub async fn delete_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = state.authorize(&headers, Need::Operator)?;
    let id: SilenceId = super::records::parse_id(&id)?;
    let (store, lock, by, admin) = (
        state.store.clone(),
        state.silences_lock.clone(),
        caller.actor(),
        caller.role == Role::Admin,
    );
    let outcome = blocking(move || {
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now();
        let Some(mut silence) = store.silence(id)? else {
            return Ok(Err(
                ApiError::not_found(format!("no silence {id}")).field("id")
            ));
        };
        if !admin && silence.created_by != by {
            return Ok(Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{id} was created by {}; only its creator or an admin may expire it",
                    silence.created_by
                ),
            )
            .field("Authorization")));
        }
        let Some(change) = silence.expire(&by, now) else {
            return Ok(Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{id} has expired already"),
            )
            .field("state")
            .current("expired")));
        };
        store.commit(Batch {
            silences: vec![silence.clone()],
            audit: vec![(now, by, change)],
            ..Batch::default()
        })?;
        Ok(Ok((silence, now)))
    })
    .await?;
    let (silence, now) = outcome?;
    state.silences.put(silence.clone(), now);
    tracing::info!(silence = %id, by = %caller.name, "silence expired");
    // Incidents it kept quiet page again now, not at the silence's old end.
    if let Err(e) = state.queue.submit(Vec::new()).await {
        tracing::warn!(error = %e, "correlation not told of the expired silence; it notices at its next tick");
    }
    Ok(Json(view(&silence, now)))
}
