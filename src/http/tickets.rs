//! Tickets changed by people in the ticketing tool, back into triaged:
//! `POST /api/v1/webhooks/jira` (a Jira webhook for issue updates and comments) and
//! `POST /api/v1/webhooks/servicenow` (a ServiceNow outbound REST message of the
//! incident's state, close notes and comments).
//!
//! Authenticated by the sink's `secret` (Jira: `X-Hub-Signature: sha256=<hex>` over
//! the body, as Jira Cloud signs webhooks registered with a secret; or `?secret=` in
//! the URL, for Jira Data Center and ServiceNow) or an ingest token. The ticket is
//! tied to its incident by what triaged put there (the `triaged-INC-n` label, the
//! `correlation_id`) and must be the one the incident's reference names. A ticket
//! moved to done/resolved resolves the incident (the ticket system and its user as
//! the actor, the resolution from the ticket); comments are mirrored to the timeline.
//! Loops are prevented: comments triaged posted carry `MARKER` and are skipped, and a
//! resolution of an incident already resolved changes nothing.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, Need};
use crate::incidents::{Action, IncidentId, ResolutionCode};

/// What triaged appends to the comments it posts in tickets.
pub const MARKER: &str = "— posted by triaged";

/// Ticketing sinks that take updates back: (sink name, kind, secret).
#[derive(Debug, Clone, Default)]
pub struct TicketSinks {
    pub sinks: Vec<(String, &'static str, Option<crate::sinks::Secret>)>,
}

impl TicketSinks {
    pub fn new(sinks: &[crate::sinks::SinkSettings]) -> TicketSinks {
        let sinks = sinks
            .iter()
            .filter_map(|s| match &s.kind {
                crate::sinks::Kind::Jira(j) => {
                    Some((s.name.clone(), "jira", j.webhook_secret.clone()))
                }
                crate::sinks::Kind::ServiceNow(x) => {
                    Some((s.name.clone(), "servicenow", x.webhook_secret.clone()))
                }
                _ => None,
            })
            .collect();
        TicketSinks { sinks }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct SecretQuery {
    secret: Option<String>,
}

/// A ticket system's callback: the body read (limits, timeout), the sinks of `kind`
/// it is signed for, and the body as JSON (400 naming `body` otherwise).
async fn signed_json(
    state: &AppState,
    headers: &HeaderMap,
    query: &SecretQuery,
    body: Body,
    kind: &str,
) -> Result<(Vec<String>, Value), ApiError> {
    let bytes = super::webhooks::read_body(state, headers, body, |_| {}).await?;
    let sinks = authenticate(state, headers, query, &bytes, kind)?;
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("body", format!("not JSON: {e}")))?;
    Ok((sinks, v))
}

/// The sinks of `kind` that this request is signed for (or all of them for an ingest
/// token); 401 otherwise.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: &SecretQuery,
    body: &[u8],
    kind: &str,
) -> Result<Vec<String>, ApiError> {
    let of_kind: Vec<&(String, &'static str, Option<crate::sinks::Secret>)> = state
        .tickets
        .sinks
        .iter()
        .filter(|(_, k, _)| *k == kind)
        .collect();
    if of_kind.is_empty() {
        return Err(ApiError::not_found(format!("no {kind} sink is configured")).field("sink"));
    }
    let signature = headers.get("x-hub-signature").and_then(|v| v.to_str().ok());
    let mut signed = Vec::new();
    for (name, _, secret) in &of_kind {
        let Some(secret) = secret else { continue };
        let by_signature = signature.is_some_and(|sig| {
            crate::sources::webhooks::signature_ok(secret.expose().as_bytes(), body, sig)
        });
        let by_query = query
            .secret
            .as_ref()
            .is_some_and(|q| bool::from(q.as_bytes().ct_eq(secret.expose().as_bytes())));
        if by_signature || by_query {
            signed.push(name.clone());
        }
    }
    if !signed.is_empty() {
        return Ok(signed);
    }
    // Without a valid signature, an ingest token will do.
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        state.authorize(headers, Need::Ingest)?;
        return Ok(of_kind.iter().map(|(n, _, _)| n.clone()).collect());
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "expected X-Hub-Signature or ?secret= from the sink's secret, or an ingest token",
    )
    .field("X-Hub-Signature"))
}

/// The incident a ticket belongs to, if its reference from one of `sinks` is `ticket`.
async fn linked(
    state: &AppState,
    id: IncidentId,
    ticket: &str,
    sinks: &[String],
) -> Result<bool, ApiError> {
    let store = state.store.clone();
    let inc = super::blocking(move || store.incident(id)).await?;
    Ok(inc.is_some_and(|i| {
        i.external
            .iter()
            .any(|r| r.id == ticket && sinks.contains(&r.sink))
    }))
}

async fn apply(
    state: &AppState,
    id: IncidentId,
    action: Action,
    actor: String,
) -> Result<Value, ApiError> {
    let name = action.name();
    match state
        .queue
        .act(id, action, actor.clone())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
    {
        Ok(inc) => {
            tracing::info!(incident = %id, action = name, by = %actor, "incident action from a ticket");
            Ok(json!({"incident": id, "action": name, "status": inc.status.as_str()}))
        }
        // Already so (the ticket echoing triaged's own change, or a late update).
        Err(crate::correlation::ActionError::Conflict { current, .. }) => {
            Ok(json!({"incident": id, "action": name, "ignored": format!("incident is {current}")}))
        }
        Err(e) => Err(super::actions::action_error(e)),
    }
}

fn ignored(why: &str) -> Json<Value> {
    Json(json!({"ignored": why}))
}

/// `POST /api/v1/webhooks/jira`.
pub async fn jira(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SecretQuery>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (sinks, v) = signed_json(&state, &headers, &query, body, "jira").await?;
    let event = v["webhookEvent"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("webhookEvent", "missing"))?;
    let key = v["issue"]["key"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("issue.key", "missing"))?;
    let Some(id) = v["issue"]["fields"]["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            l.as_str()?
                .strip_prefix("triaged-")?
                .parse::<IncidentId>()
                .ok()
        })
        .next()
    else {
        return Ok(ignored("not an issue triaged created"));
    };
    if !linked(&state, id, key, &sinks).await? {
        return Ok(ignored("the issue is not the incident's ticket"));
    }
    let person = |u: &Value| {
        u["displayName"]
            .as_str()
            .or_else(|| u["name"].as_str())
            .or_else(|| u["accountId"].as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    match event {
        "comment_created" | "comment_updated" => {
            let text = v["comment"]["body"].as_str().unwrap_or("").trim();
            if text.is_empty() || text.contains(MARKER) {
                return Ok(ignored("triaged's own comment"));
            }
            let who = person(&v["comment"]["author"]);
            let action = Action::Comment {
                text: format!("{key}: {text}"),
            };
            Ok(Json(
                apply(&state, id, action, format!("jira:{who}")).await?,
            ))
        }
        "jira:issue_updated" => {
            let status = &v["issue"]["fields"]["status"];
            if status["statusCategory"]["key"] != "done" {
                return Ok(ignored("the issue is not done"));
            }
            let resolution = v["issue"]["fields"]["resolution"]["name"]
                .as_str()
                .unwrap_or_else(|| status["name"].as_str().unwrap_or("done"));
            let code = match resolution.to_ascii_lowercase().as_str() {
                "duplicate" => ResolutionCode::Duplicate,
                "won't fix" | "won't do" | "cannot reproduce" => ResolutionCode::NoFaultFound,
                _ => ResolutionCode::Fixed,
            };
            let who = person(&v["user"]);
            let action = Action::Resolve {
                code,
                note: format!("{key} resolved in Jira: {resolution}"),
            };
            Ok(Json(
                apply(&state, id, action, format!("jira:{who}")).await?,
            ))
        }
        _ => Ok(ignored("an event triaged does not follow")),
    }
}

/// `POST /api/v1/webhooks/servicenow`: `{"sys_id", "correlation_id", "state",
/// "close_code", "close_notes", "comments", "work_notes", "sys_updated_by"}`.
pub async fn servicenow(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SecretQuery>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (sinks, v) = signed_json(&state, &headers, &query, body, "servicenow").await?;
    let sys_id = v["sys_id"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("sys_id", "missing"))?;
    let Some(id) = v["correlation_id"]
        .as_str()
        .and_then(|c| c.parse::<IncidentId>().ok())
    else {
        return Ok(ignored("not a ticket triaged created"));
    };
    if !linked(&state, id, sys_id, &sinks).await? {
        return Ok(ignored("the ticket is not the incident's"));
    }
    let who = format!(
        "servicenow:{}",
        v["sys_updated_by"].as_str().unwrap_or("unknown")
    );
    let number = v["number"].as_str().unwrap_or(sys_id);
    let mut done = Vec::new();
    for field in ["comments", "work_notes"] {
        let text = v[field].as_str().unwrap_or("").trim();
        if !text.is_empty() && !text.contains(MARKER) {
            let action = Action::Comment {
                text: format!("{number}: {text}"),
            };
            done.push(apply(&state, id, action, who.clone()).await?);
        }
    }
    if matches!(v["state"].as_str(), Some("6" | "7")) {
        let note = v["close_notes"].as_str().unwrap_or("").trim();
        let action = Action::Resolve {
            code: ResolutionCode::Fixed,
            note: format!(
                "{number} resolved in ServiceNow ({}): {}",
                v["close_code"].as_str().unwrap_or("no close code"),
                if note.is_empty() { "no notes" } else { note }
            ),
        };
        done.push(apply(&state, id, action, who).await?);
    }
    Ok(Json(json!({"done": done})))
}
