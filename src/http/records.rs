//! The read API for records: incidents (with their alerts and timeline) and alerts.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::{blocking, ApiError, AppState, Need};
use crate::alerts::AlertStatus;
use crate::changes::ChangeId;
use crate::incidents::IncidentId;
use crate::problems::ProblemId;
use crate::store::{IncidentFilter, StatusFilter, Store, StoreError};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    status: Option<String>,
    priority: Option<String>,
    service: Option<String>,
    limit: Option<String>,
}

fn limit(q: &ListQuery) -> Result<usize, ApiError> {
    limit_of(q.limit.as_deref())
}

/// A `limit` query parameter: 1 to 1000, 100 when absent.
pub(super) fn limit_of(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "limit",
                    format!("expected a number from 1 to {MAX_LIMIT}, got {s:?}"),
                )
            }),
    }
}

pub(super) fn query<T>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| {
        let text = e.body_text();
        let field = text
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "query".to_string());
        ApiError::bad_request(field, text)
    })
}

/// `GET /api/v1/incidents[?status=open|new|…|any][&priority=P1…][&service=S][&limit=N]`,
/// newest first.
pub async fn list_incidents(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<IncidentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let q = query(q)?;
    let status =
        match q.status.as_deref() {
            None | Some("any") => StatusFilter::Any,
            Some("open") => StatusFilter::Open,
            Some(s) => StatusFilter::Is(s.parse().map_err(|e: String| {
                ApiError::bad_request("status", format!("{e} (or open, any)"))
            })?),
        };
    let priority = q
        .priority
        .as_deref()
        .map(|p| {
            p.parse()
                .map_err(|e: String| ApiError::bad_request("priority", e))
        })
        .transpose()?;
    let filter = IncidentFilter {
        status,
        priority,
        service: q.service.filter(|s| !s.is_empty()),
    };
    let limit = limit_of(q.limit.as_deref())?;
    let store = state.store.clone();
    let incidents = blocking(move || store.list_incidents(&filter, limit)).await?;
    Ok(Json(serde_json::json!({ "incidents": incidents })))
}

/// `GET /api/v1/incidents/{id}`: the incident with its alerts and timeline.
pub async fn get_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let id: IncidentId = parse_id(&id)?;
    let store = state.store.clone();
    let found = blocking(move || {
        let Some(incident) = store.incident(id)? else {
            return Ok(None);
        };
        let alerts = store.incident_alerts(id)?;
        let timeline = store.timeline(&id.to_string())?;
        Ok(Some((incident, alerts, timeline)))
    })
    .await?;
    let (incident, alerts, timeline) =
        found.ok_or_else(|| ApiError::not_found(format!("no incident {id}")).field("id"))?;
    let mut out = serde_json::to_value(&incident).expect("incidents serialize");
    out["alerts"] = serde_json::to_value(&alerts).expect("alerts serialize");
    out["timeline"] = serde_json::to_value(&timeline).expect("audit entries serialize");
    Ok(Json(out))
}

/// `GET /api/v1/alerts[?status=firing|resolved][&limit=N]`, in fingerprint order.
pub async fn list_alerts(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let q = query(q)?;
    let status = match q.status.as_deref() {
        None | Some("any") => None,
        Some("firing") => Some(AlertStatus::Firing),
        Some("resolved") => Some(AlertStatus::Resolved),
        Some(s) => {
            return Err(ApiError::bad_request(
                "status",
                format!("expected firing, resolved or any, got {s:?}"),
            ))
        }
    };
    let limit = limit(&q)?;
    let store = state.store.clone();
    let alerts = blocking(move || store.list_alerts(status, limit)).await?;
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}

/// `GET /api/v1/alerts/{fingerprint}`.
pub async fn get_alert(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(fingerprint): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let store = state.store.clone();
    let fp = fingerprint.clone();
    let alert = blocking(move || store.alert(&fp)).await?;
    let alert = alert.ok_or_else(|| {
        ApiError::not_found(format!("no alert with fingerprint {fingerprint}")).field("fingerprint")
    })?;
    Ok(Json(
        serde_json::to_value(&alert).expect("alerts serialize"),
    ))
}

/// A record id from the path (`INC-1`, `PRB-1`, `CHG-1`); 404 naming `id` otherwise.
pub(super) fn parse_id<T: std::str::FromStr<Err = String>>(id: &str) -> Result<T, ApiError> {
    id.parse()
        .map_err(|e: String| ApiError::not_found(e).field("id"))
}

/// The limit of a list that has no status filter yet (problems, changes).
fn plain_limit(
    what: &str,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<usize, ApiError> {
    let q = query(q)?;
    if let Some(s) = &q.status {
        return Err(ApiError::bad_request(
            "status",
            format!("{what} are not filtered by status yet, got {s:?}"),
        ));
    }
    limit(&q)
}

/// A record (found by `fetch`) as JSON with its `timeline` (its audit entries).
async fn with_timeline<T: serde::Serialize + Send + 'static>(
    state: &AppState,
    what: &str,
    record: String,
    fetch: impl FnOnce(&dyn Store) -> Result<Option<T>, StoreError> + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let id = record.clone();
    let found = blocking(move || {
        let Some(found) = fetch(&*store)? else {
            return Ok(None);
        };
        Ok(Some((found, store.timeline(&id)?)))
    })
    .await?;
    let (found, timeline) =
        found.ok_or_else(|| ApiError::not_found(format!("no {what} {record}")).field("id"))?;
    let mut out = serde_json::to_value(&found).expect("records serialize");
    out["timeline"] = serde_json::to_value(&timeline).expect("audit entries serialize");
    Ok(Json(out))
}

/// `GET /api/v1/problems[?limit=N]`, newest first.
pub async fn list_problems(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let limit = plain_limit("problems", q)?;
    let store = state.store.clone();
    let problems = blocking(move || store.list_problems(limit)).await?;
    Ok(Json(serde_json::json!({ "problems": problems })))
}

/// `GET /api/v1/problems/{id}`: the problem with its timeline.
pub async fn get_problem(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let id: ProblemId = parse_id(&id)?;
    with_timeline(&state, "problem", id.to_string(), move |store| {
        store.problem(id)
    })
    .await
}

/// `GET /api/v1/changes[?limit=N]`, newest first.
pub async fn list_changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let limit = plain_limit("changes", q)?;
    let store = state.store.clone();
    let changes = blocking(move || store.list_changes(limit)).await?;
    Ok(Json(serde_json::json!({ "changes": changes })))
}

/// `GET /api/v1/changes/{id}`: the change with its timeline.
pub async fn get_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let id: ChangeId = parse_id(&id)?;
    with_timeline(&state, "change", id.to_string(), move |store| {
        store.change(id)
    })
    .await
}

/// `GET /api/v1/incidents/{id}/timeline`: the incident's audit entries, oldest first.
pub async fn incident_timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    let id: IncidentId = parse_id(&id)?;
    let store = state.store.clone();
    let found = blocking(move || {
        if store.incident(id)?.is_none() {
            return Ok(None);
        }
        store.timeline(&id.to_string()).map(Some)
    })
    .await?;
    let timeline =
        found.ok_or_else(|| ApiError::not_found(format!("no incident {id}")).field("id"))?;
    Ok(Json(serde_json::json!({ "id": id, "timeline": timeline })))
}
