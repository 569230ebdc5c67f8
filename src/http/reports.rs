//! Reports: `GET /api/v1/reports/{sla|incidents|problems|changes}?from=&to=[&service=]`
//! (operator). The range defaults to the 30 days before now; records are read in
//! pages and folded (`reports`), so memory stays flat however many there are.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::{blocking, ApiError, AppState, Need};
use crate::reports::{ChangeReport, IncidentReport, ProblemReport, Scope, SlaReport};
use crate::store::{Store, StoreError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    service: Option<String>,
}

/// Records read per store page.
const PAGE: usize = 1000;

fn time(field: &str, v: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
    v.as_deref()
        .map(|s| {
            s.parse::<Timestamp>().map_err(|e| {
                ApiError::bad_request(
                    field,
                    format!("expected an RFC 3339 time like 2026-12-01T00:00:00Z, got {s:?}: {e}"),
                )
            })
        })
        .transpose()
}

/// The scope a query asks for.
pub fn scope(q: &ReportQuery, now: Timestamp) -> Result<Scope, ApiError> {
    let to = time("to", &q.to)?.unwrap_or(now);
    let from = match time("from", &q.from)? {
        Some(f) => f,
        None => to
            .checked_sub(jiff::SignedDuration::from_hours(30 * 24))
            .unwrap_or(Timestamp::MIN),
    };
    if from >= to {
        return Err(ApiError::bad_request(
            "from",
            format!("from ({from}) must be before to ({to})"),
        ));
    }
    let service = q.service.clone().filter(|s| !s.is_empty());
    Ok(Scope { from, to, service })
}

fn each_incident(
    store: &dyn Store,
    mut f: impl FnMut(&crate::incidents::Incident),
) -> Result<(), StoreError> {
    let mut after = 0;
    loop {
        let page = store.incidents_page(after, PAGE)?;
        page.iter().for_each(&mut f);
        match page.last() {
            Some(i) if page.len() == PAGE => after = i.id.0,
            _ => return Ok(()),
        }
    }
}

/// Builds a report over the store (on the blocking pool by the caller).
pub fn build(
    store: &dyn Store,
    kind: &str,
    scope: Scope,
    now: Timestamp,
) -> Result<Value, StoreError> {
    fn json<T: serde::Serialize>(v: &T) -> Value {
        serde_json::to_value(v).expect("reports serialize")
    }
    Ok(match kind {
        "sla" => {
            let mut r = SlaReport::new(scope);
            each_incident(store, |i| r.add(i, now))?;
            json(&r)
        }
        "incidents" => {
            let mut r = IncidentReport::new(scope);
            each_incident(store, |i| r.add(i))?;
            json(&r)
        }
        "problems" => {
            let mut r = ProblemReport::new(scope);
            each_incident(store, |i| r.add_incident(i))?;
            let mut after = 0;
            loop {
                let page = store.problems_page(after, PAGE)?;
                page.iter().for_each(|p| r.add_problem(p));
                match page.last() {
                    Some(p) if page.len() == PAGE => after = p.id.0,
                    _ => break,
                }
            }
            json(&r.finish())
        }
        _ => {
            let mut r = ChangeReport::new(scope);
            each_incident(store, |i| r.add_incident(i))?;
            let mut after = 0;
            loop {
                let page = store.changes_page(after, PAGE)?;
                page.iter().for_each(|c| r.add_change(c));
                match page.last() {
                    Some(c) if page.len() == PAGE => after = c.id.0,
                    _ => break,
                }
            }
            json(&r.finish())
        }
    })
}

/// `GET /api/v1/reports/{kind}`.
pub async fn get_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Need::Operator)?;
    if !["sla", "incidents", "problems", "changes"].contains(&kind.as_str()) {
        return Err(ApiError::not_found(format!(
            "no report {kind:?}; expected sla, incidents, problems or changes"
        ))
        .field("report"));
    }
    let q = super::records::query(q)?;
    let now = Timestamp::now();
    let scope = scope(&q, now)?;
    let store = state.store.clone();
    let report = blocking(move || build(&*store, &kind, scope, now)).await?;
    Ok(Json(report))
}
