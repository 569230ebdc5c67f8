//! Changes: `POST /api/v1/changes` (role ingest: CI/CD, a change tool) records or
//! updates a `CHG-n` (`GET /api/v1/changes[/{id}]` reads them, in `records.rs`).
//!
//! Changes are not correlation's: the handler writes them itself, one at a time (a
//! lock), as one durable store commit with their audit entry, before it answers. The
//! change counter is the store's own, so correlation's batches never conflict with it.
//! With an `external_id`, the post is idempotent: the same id updates that change.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;

use super::{blocking, ApiError, AppState, Need};
use crate::changes::{ChangeId, ChangeRecord, ChangeRequest};
use crate::store::{Batch, Store, StoreError};

/// What a post did.
enum Outcome {
    Recorded(ChangeRecord),
    Updated(ChangeRecord),
    Unchanged(ChangeRecord),
}

/// Records or updates a change; the caller holds the changes lock.
fn write(store: &dyn Store, req: &ChangeRequest, by: &str) -> Result<Outcome, StoreError> {
    let now = Timestamp::now();
    if let Some(id) = &req.external_id {
        if let Some(old) = store.change_by_external(id)? {
            let Some((new, change)) = req.update(&old, now) else {
                return Ok(Outcome::Unchanged(old));
            };
            store.commit(Batch {
                changes: vec![new.clone()],
                audit: vec![(now, by.to_string(), change)],
                ..Batch::default()
            })?;
            return Ok(Outcome::Updated(new));
        }
    }
    let next = store.next_change_number()?;
    let (record, change) = req.record(ChangeId(next), by, now);
    store.commit(Batch {
        changes: vec![record.clone()],
        change_counter: Some((next, next + 1)),
        change_refs: req
            .external_id
            .iter()
            .map(|e| (e.clone(), record.id))
            .collect(),
        audit: vec![(now, by.to_string(), change)],
        ..Batch::default()
    })?;
    Ok(Outcome::Recorded(record))
}

/// `POST /api/v1/changes`: 201 with the new change, 200 with an updated (or
/// unchanged) one when `external_id` names a recorded change.
pub async fn post_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.authorize(&headers, Need::Ingest)?;
    let bytes = super::webhooks::json_body(&state, &headers, body, |_| {}).await?;
    let req: ChangeRequest = crate::sources::parse_json(&bytes)
        .map_err(|e| ApiError::bad_request(e.field, e.message))?;
    req.validate()
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.message).field(e.field))?;
    let (store, lock, by) = (
        state.store.clone(),
        state.changes_lock.clone(),
        caller.actor(),
    );
    let outcome = blocking(move || {
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        write(&*store, &req, &by)
    })
    .await?;
    let (status, record) = match outcome {
        Outcome::Recorded(r) => (StatusCode::CREATED, r),
        Outcome::Updated(r) | Outcome::Unchanged(r) => (StatusCode::OK, r),
    };
    Ok((status, Json(record)).into_response())
}
