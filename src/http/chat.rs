//! Acting on incidents from chat: `POST /api/v1/chat/slack/{sink}` takes Slack's
//! interactive button presses (Acknowledge, Resolve) on the messages a `slack` sink
//! posted. Slack sends no bearer token: the request is authenticated by its
//! signature (the sink's signing secret, over the raw body, with a timestamp no older
//! than five minutes), checked before the body is parsed. The acting Slack user is
//! the audit log's actor (`slack:<user id> (<user name>)`); `allowed_users` limits who
//! may act. The action goes through correlation like any operator's; the outbox then
//! updates the message and answers in its thread.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::incidents::{Action, IncidentId, ResolutionCode};
use crate::sinks::slack;

/// What a Slack sink lets chat users do, by sink name.
#[derive(Debug, Clone, Default)]
pub struct SlackApps {
    pub by_sink: HashMap<String, (crate::sinks::Secret, Vec<String>)>,
}

impl SlackApps {
    pub fn new(sinks: &[crate::sinks::SinkSettings]) -> SlackApps {
        let by_sink = sinks
            .iter()
            .filter_map(|s| match &s.kind {
                crate::sinks::Kind::Slack(k) => k
                    .signing_secret
                    .clone()
                    .map(|secret| (s.name.clone(), (secret, k.allowed_users.clone()))),
                _ => None,
            })
            .collect();
        SlackApps { by_sink }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message).field("X-Slack-Signature")
}

/// `POST /api/v1/chat/slack/{sink}`: a `block_actions` interaction.
pub async fn slack_interaction(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(sink): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Some((secret, allowed)) = state.slack_apps.by_sink.get(&sink).cloned() else {
        return Err(
            ApiError::not_found(format!("no slack sink {sink:?} with a signing secret"))
                .field("sink"),
        );
    };
    let bytes = super::webhooks::read_body(&state, &headers, body, |_| {}).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig)) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    ) else {
        return Err(unauthorized(
            "missing X-Slack-Signature or X-Slack-Request-Timestamp",
        ));
    };
    slack::verify(
        secret.expose().as_bytes(),
        ts,
        sig,
        &bytes,
        jiff::Timestamp::now().as_second(),
    )
    .map_err(unauthorized)?;
    let payload = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::bad_request("payload", "expected a form field payload"))?;
    let p: Value = serde_json::from_str(&payload)
        .map_err(|e| ApiError::bad_request("payload", format!("not JSON: {e}")))?;
    if p["type"] != "block_actions" {
        return Err(ApiError::bad_request(
            "payload.type",
            format!("expected block_actions, got {}", p["type"]),
        ));
    }
    let user_id = p["user"]["id"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("payload.user.id", "missing"))?;
    let user_name = p["user"]["username"]
        .as_str()
        .or_else(|| p["user"]["name"].as_str())
        .unwrap_or("");
    let action = &p["actions"][0];
    let id: IncidentId = action["value"]
        .as_str()
        .unwrap_or("")
        .parse()
        .map_err(|e: String| ApiError::bad_request("payload.actions[0].value", e))?;
    let act = match action["action_id"].as_str() {
        Some(slack::ACK_ACTION) => Action::Acknowledge {
            note: Some("acknowledged from Slack".into()),
        },
        Some(slack::RESOLVE_ACTION) => Action::Resolve {
            code: ResolutionCode::Fixed,
            note: "resolved from Slack".into(),
        },
        other => {
            return Err(ApiError::bad_request(
                "payload.actions[0].action_id",
                format!(
                    "expected {} or {}, got {other:?}",
                    slack::ACK_ACTION,
                    slack::RESOLVE_ACTION
                ),
            ))
        }
    };
    if !allowed.is_empty() && !allowed.iter().any(|u| u == user_id) {
        tracing::warn!(sink = %sink, user = user_id, incident = %id, "slack user not allowed to act");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("slack user {user_id} may not act on incidents"),
        )
        .field("payload.user.id"));
    }
    let actor = if user_name.is_empty() {
        format!("slack:{user_id}")
    } else {
        format!("slack:{user_id} ({user_name})")
    };
    let name = act.name();
    let acted = state
        .queue
        .act(id, act, actor.clone())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    match acted {
        Ok(inc) => {
            tracing::info!(incident = %id, action = name, by = %actor, "incident action from slack");
            Ok(Json(
                json!({"ok": true, "incident": inc.id, "status": inc.status.as_str()}),
            ))
        }
        // Slack shows a failed interaction as an error on the button; a press that
        // comes too late (already acknowledged) is not one.
        Err(crate::correlation::ActionError::Conflict { current, message }) => {
            tracing::info!(incident = %id, action = name, by = %actor, %message, "slack action changed nothing");
            Ok(Json(
                json!({"ok": false, "incident": id, "status": current, "error": message}),
            ))
        }
        Err(e) => Err(super::actions::action_error(e)),
    }
}
