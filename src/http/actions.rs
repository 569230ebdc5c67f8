//! Operator actions on incidents: `POST /api/v1/incidents/{id}/{action}` (acknowledge,
//! start, hold, resolve, close, cancel, reopen, comment) and `PATCH
//! /api/v1/incidents/{id}` (impact, urgency, assignee, owner, major); on problems:
//! `POST /api/v1/problems` (open by hand), `POST /api/v1/problems/{id}/{action}`
//! (known_error, resolve, close, reopen, comment, link) and `PATCH
//! /api/v1/problems/{id}` (title, root cause, workaround).
//!
//! Owns the request bodies (each action's own, unknown fields refused) and the
//! mapping of refusals to statuses: 400 for a malformed body naming the field, 404 for
//! an unknown incident or action, 409 naming the current status for an action its
//! status does not allow, 422 for a value the action cannot take. The action itself
//! goes through the correlation queue (the one writer) and is answered once durable.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer};

use super::{ApiError, AppState, Need};
use crate::correlation::ActionError;
use crate::incidents::{Action, HoldReason, Incident, IncidentId, Level, ResolutionCode, Update};
use crate::problems::{ManualProblem, ProblemAction, ProblemId};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: HoldReason,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    code: ResolutionCode,
    note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    review: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: ResolutionCode,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    text: String,
}

/// A present field, `null` included (`Some(None)`), told apart from an absent one.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    impact: Option<Level>,
    #[serde(default)]
    urgency: Option<Level>,
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    owner: Option<Option<String>>,
    #[serde(default)]
    major: Option<bool>,
}

/// Longest note, review, comment or name accepted, in bytes.
const MAX_TEXT: usize = 16 * 1024;

fn unprocessable(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message).field(field)
}

pub(super) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    // No body at all is an empty object: `acknowledge` needs nothing.
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    crate::sources::parse_json(bytes).map_err(|e| ApiError::bad_request(e.field, e.message))
}

fn text_field(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > MAX_TEXT => Err(unprocessable(
            field,
            format!("{field} is longer than {MAX_TEXT} bytes"),
        )),
        _ => Ok(()),
    }
}

fn required_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(unprocessable(field, format!("{field} must not be empty")));
    }
    text_field(field, &Some(value.to_string()))
}

/// The action a request names, from its body.
fn action(name: &str, bytes: &[u8]) -> Result<Action, ApiError> {
    Ok(match name {
        "acknowledge" | "start" | "reopen" => {
            let b: NoteBody = parse(bytes)?;
            text_field("note", &b.note)?;
            match name {
                "acknowledge" => Action::Acknowledge { note: b.note },
                "start" => Action::Start { note: b.note },
                _ => Action::Reopen { note: b.note },
            }
        }
        "hold" => {
            let b: HoldBody = parse(bytes)?;
            text_field("note", &b.note)?;
            Action::Hold {
                reason: b.reason,
                note: b.note,
            }
        }
        "resolve" => {
            let b: ResolveBody = parse(bytes)?;
            if b.code == ResolutionCode::AlertsCleared {
                return Err(unprocessable(
                    "code",
                    "alerts_cleared is the system's own code; expected fixed, workaround, no_fault_found, duplicate or false_positive",
                ));
            }
            required_text("note", &b.note)?;
            Action::Resolve {
                code: b.code,
                note: b.note,
            }
        }
        "close" => {
            let b: CloseBody = parse(bytes)?;
            text_field("note", &b.note)?;
            text_field("review", &b.review)?;
            Action::Close {
                note: b.note,
                review: b.review,
            }
        }
        "cancel" => {
            let b: CancelBody = parse(bytes)?;
            if !matches!(
                b.reason,
                ResolutionCode::FalsePositive | ResolutionCode::Duplicate
            ) {
                return Err(unprocessable(
                    "reason",
                    format!(
                        "expected false_positive or duplicate, got {:?}",
                        b.reason.as_str()
                    ),
                ));
            }
            text_field("note", &b.note)?;
            Action::Cancel {
                reason: b.reason,
                note: b.note,
            }
        }
        "comment" => {
            let b: CommentBody = parse(bytes)?;
            required_text("text", &b.text)?;
            Action::Comment { text: b.text }
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no incident action {other:?}; expected acknowledge, start, hold, resolve, close, cancel, reopen or comment"
            ))
            .field("action"))
        }
    })
}

fn patch(bytes: &[u8]) -> Result<Action, ApiError> {
    let b: PatchBody = parse(bytes)?;
    for (field, v) in [("assignee", &b.assignee), ("owner", &b.owner)] {
        if let Some(v) = v {
            text_field(field, v)?;
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(unprocessable(
                    field,
                    format!("{field} must not be empty (null clears it)"),
                ));
            }
        }
    }
    let update = Update {
        impact: b.impact,
        urgency: b.urgency,
        assignee: b.assignee,
        owner: b.owner,
        major: b.major,
    };
    if update == Update::default() {
        return Err(ApiError::bad_request(
            "body",
            "nothing to change: give impact, urgency, assignee, owner or major",
        ));
    }
    Ok(Action::Update(update))
}

/// The request's JSON body; a request without a content type may have none (`curl -X
/// POST …/acknowledge`).
pub(super) async fn body_of(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    if headers.contains_key(axum::http::header::CONTENT_TYPE) {
        return super::webhooks::json_body(state, headers, body, |_| {}).await;
    }
    let bytes = super::webhooks::read_body(state, headers, body, |_| {}).await?;
    if !bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body needs Content-Type application/json",
        )
        .field("Content-Type"));
    }
    Ok(bytes)
}

/// Runs an action through correlation and answers with the incident it left.
async fn run(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: Body,
    build: impl FnOnce(&[u8]) -> Result<Action, ApiError>,
) -> Result<Json<Incident>, ApiError> {
    let caller = state.authorize(headers, Need::Operator)?;
    let id: IncidentId = id
        .parse()
        .map_err(|e: String| ApiError::not_found(e).field("id"))?;
    let bytes = body_of(state, headers, body).await?;
    let action = build(&bytes)?;
    let name = action.name();
    let acted = state
        .queue
        .act(id, action, caller.actor())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    match acted {
        Ok(incident) => {
            tracing::info!(incident = %id, action = name, by = %caller.name, "incident action");
            Ok(Json(incident))
        }
        Err(e) => Err(action_error(e)),
    }
}

/// The HTTP answer to a refused action: 404, 409 naming the current status, or 422.
pub(super) fn action_error(e: ActionError) -> ApiError {
    match e {
        ActionError::NotFound { field, message } => ApiError::not_found(message).field(field),
        ActionError::Conflict { current, message } => ApiError::new(StatusCode::CONFLICT, message)
            .field("status")
            .current(current),
        ActionError::Missing { field, message } => unprocessable(field, message),
    }
}

/// `POST /api/v1/incidents/{id}/{action}`.
pub async fn incident_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Incident>, ApiError> {
    run(&state, &headers, &id, body, |b| action(&name, b)).await
}

/// `PATCH /api/v1/incidents/{id}`.
pub async fn patch_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Incident>, ApiError> {
    run(&state, &headers, &id, body, patch).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProblemBody {
    title: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    incidents: Vec<IncidentId>,
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    workaround: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownErrorBody {
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    workaround: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemResolveBody {
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    incident: IncidentId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemPatchBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    root_cause: Option<String>,
    #[serde(default)]
    workaround: Option<String>,
}

/// Runs problem work through correlation and answers with the problem it left.
async fn run_problem(
    state: &AppState,
    work: crate::correlation::Work,
    created: bool,
) -> Result<Response, ApiError> {
    let done = state
        .queue
        .problem(work)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(action_error)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done)).into_response())
}

/// `POST /api/v1/problems`: a problem opened by hand (201).
pub async fn post_problem(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.authorize(&headers, Need::Operator)?;
    let bytes = super::webhooks::json_body(&state, &headers, body, |_| {}).await?;
    let b: NewProblemBody = parse(&bytes)?;
    required_text("title", &b.title)?;
    for (field, v) in [
        ("key", &b.key),
        ("root_cause", &b.root_cause),
        ("workaround", &b.workaround),
    ] {
        text_field(field, v)?;
    }
    if b.key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        return Err(unprocessable("key", "key must not be empty"));
    }
    let work = crate::correlation::Work::OpenProblem {
        problem: ManualProblem {
            title: b.title,
            key: b.key,
            incidents: b.incidents,
            root_cause: b.root_cause,
            workaround: b.workaround,
        },
        actor: caller.actor(),
    };
    run_problem(&state, work, true).await
}

/// `POST /api/v1/problems/{id}/{known_error|resolve|close|reopen|comment|link}`.
pub async fn problem_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.authorize(&headers, Need::Operator)?;
    let id: ProblemId = id
        .parse()
        .map_err(|e: String| ApiError::not_found(e).field("id"))?;
    let bytes = body_of(&state, &headers, body).await?;
    let actor = caller.actor();
    let action = match name.as_str() {
        "known_error" => {
            let b: KnownErrorBody = parse(&bytes)?;
            text_field("root_cause", &b.root_cause)?;
            text_field("workaround", &b.workaround)?;
            ProblemAction::KnownError {
                root_cause: b.root_cause,
                workaround: b.workaround,
            }
        }
        "resolve" => {
            let b: ProblemResolveBody = parse(&bytes)?;
            text_field("root_cause", &b.root_cause)?;
            text_field("note", &b.note)?;
            ProblemAction::Resolve {
                root_cause: b.root_cause,
                note: b.note,
            }
        }
        "close" | "reopen" => {
            let b: NoteBody = parse(&bytes)?;
            text_field("note", &b.note)?;
            if name == "close" {
                ProblemAction::Close { note: b.note }
            } else {
                ProblemAction::Reopen { note: b.note }
            }
        }
        "comment" => {
            let b: CommentBody = parse(&bytes)?;
            required_text("text", &b.text)?;
            ProblemAction::Comment { text: b.text }
        }
        "link" => {
            let b: LinkBody = parse(&bytes)?;
            let work = crate::correlation::Work::LinkProblem {
                id,
                incident: b.incident,
                actor,
            };
            return run_problem(&state, work, false).await;
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no problem action {other:?}; expected known_error, resolve, close, reopen, comment or link"
            ))
            .field("action"))
        }
    };
    let work = crate::correlation::Work::ActProblem { id, action, actor };
    run_problem(&state, work, false).await
}

/// `PATCH /api/v1/problems/{id}`: title, root cause, workaround.
pub async fn patch_problem(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = state.authorize(&headers, Need::Operator)?;
    let id: ProblemId = id
        .parse()
        .map_err(|e: String| ApiError::not_found(e).field("id"))?;
    let bytes = body_of(&state, &headers, body).await?;
    let b: ProblemPatchBody = parse(&bytes)?;
    for (field, v) in [
        ("title", &b.title),
        ("root_cause", &b.root_cause),
        ("workaround", &b.workaround),
    ] {
        text_field(field, v)?;
    }
    if b.title.is_none() && b.root_cause.is_none() && b.workaround.is_none() {
        return Err(ApiError::bad_request(
            "body",
            "nothing to change: give title, root_cause or workaround",
        ));
    }
    let work = crate::correlation::Work::ActProblem {
        id,
        action: ProblemAction::Update {
            title: b.title,
            root_cause: b.root_cause,
            workaround: b.workaround,
        },
        actor: caller.actor(),
    };
    run_problem(&state, work, false).await
}
