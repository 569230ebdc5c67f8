//! The outbox over HTTP: `GET /api/v1/outbox` (deliveries not delivered: pending and
//! dead letters, each with its event), `GET /api/v1/outbox/events` (every event in
//! order), `GET /api/v1/outbox/{seq}` (one event with all its deliveries) and
//! `POST /api/v1/outbox/{seq}/retry` (an operator makes dead letters pending again;
//! through correlation, audited, then the worker is woken).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::records::{limit_of, query};
use super::{blocking, ApiError, AppState, Need};
use crate::outbox::{Delivery, DeliveryState, Event};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// `pending`, `dead` (default: both).
    state: Option<String>,
    /// `SEQ` or `SEQ:SINK`: the page after this delivery.
    after: Option<String>,
    limit: Option<String>,
}

fn seq_of(field: &str, s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| {
        ApiError::bad_request(
            field,
            format!("expected an outbox event seq (a number), got {s:?}"),
        )
    })
}

fn delivery_view(d: &Delivery, event: Option<&Event>) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("event".into(), json!(event));
    }
    v
}

/// `GET /api/v1/outbox[?state=pending|dead][&after=SEQ[:SINK]][&limit=N]`.
pub async fn list_queue(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let q = query(q)?;
    let wanted: Option<DeliveryState> = match q.state.as_deref() {
        None => None,
        Some(s) => match s.parse::<DeliveryState>() {
            Ok(DeliveryState::Delivered) | Err(_) => {
                return Err(ApiError::bad_request(
                    "state",
                    format!("expected pending or dead, got {s:?}"),
                ))
            }
            Ok(st) => Some(st),
        },
    };
    let after = match q.after.as_deref() {
        None => None,
        Some(s) => Some(match s.split_once(':') {
            Some((seq, sink)) => (seq_of("after", seq)?, sink.to_string()),
            // After every delivery of that event.
            None => (seq_of("after", s)?, "\u{10FFFF}".to_string()),
        }),
    };
    let limit = limit_of(q.limit.as_deref())?;
    let store = state.store.clone();
    let (deliveries, events, next) = blocking(move || {
        let mut out: Vec<Delivery> = Vec::new();
        let mut cursor = after;
        // Filtered by state: read on until the page is full or the queue ends.
        loop {
            let page = store.queued_deliveries(cursor.clone(), limit)?;
            let full = page.len() == limit;
            if let Some(last) = page.last() {
                cursor = Some((last.seq, last.sink.clone()));
            }
            out.extend(
                page.into_iter()
                    .filter(|d| wanted.is_none_or(|w| d.state == w)),
            );
            if out.len() >= limit || !full {
                break;
            }
        }
        out.truncate(limit);
        let mut events: HashMap<u64, Event> = HashMap::new();
        for d in &out {
            if let std::collections::hash_map::Entry::Vacant(slot) = events.entry(d.seq) {
                if let Some(e) = store.outbox_event(d.seq)? {
                    slot.insert(e);
                }
            }
        }
        let next = (out.len() == limit)
            .then(|| out.last().map(|d| format!("{}:{}", d.seq, d.sink)))
            .flatten();
        Ok((out, events, next))
    })
    .await?;
    let list: Vec<Value> = deliveries
        .iter()
        .map(|d| delivery_view(d, events.get(&d.seq)))
        .collect();
    Ok(Json(json!({ "deliveries": list, "next": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/outbox/events[?after=SEQ][&limit=N]`: outbox events in order.
pub async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let q = query(q)?;
    let after = match &q.after {
        None => 0,
        Some(s) => seq_of("after", s)?,
    };
    let limit = limit_of(q.limit.as_deref())?;
    let store = state.store.clone();
    let events = blocking(move || store.outbox_page(after, limit)).await?;
    Ok(Json(json!({ "events": events })))
}

/// `GET /api/v1/outbox/{seq}`: the event and every delivery of it.
pub async fn get_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let seq = seq_of("seq", &seq)?;
    let store = state.store.clone();
    let found = blocking(move || match store.outbox_event(seq)? {
        Some(e) => Ok(Some((e, store.deliveries_of(seq)?))),
        None => Ok(None),
    })
    .await?;
    let (event, deliveries) =
        found.ok_or_else(|| ApiError::not_found(format!("no outbox event {seq}")).field("seq"))?;
    Ok(Json(json!({ "event": event, "deliveries": deliveries })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    /// Only this sink's dead letter (default: every dead delivery of the event).
    #[serde(default)]
    sink: Option<String>,
}

/// `POST /api/v1/outbox/{seq}/retry` with an optional `{"sink": NAME}`.
pub async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let caller = state.authorize(&headers, Need::Operator)?;
    let seq = seq_of("seq", &seq)?;
    let bytes = super::actions::body_of(&state, &headers, body).await?;
    let body: RetryBody = super::actions::parse(&bytes)?;
    let revived = state
        .queue
        .requeue(seq, body.sink, caller.actor())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(super::actions::action_error)?;
    state.outbox.requeued(seq);
    tracing::info!(seq, deliveries = revived.len(), by = %caller.name, "outbox retry");
    Ok(Json(json!({ "seq": seq, "deliveries": revived })))
}
