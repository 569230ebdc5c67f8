//! Matrix: the client-server API with a bot account's access token.
//!
//! An incident's first event is a message in the room (`m.text` with an HTML
//! `formatted_body`); its room and event id are kept on the incident. Every later event
//! edits that message to show the incident as it is now (`m.replace`) and then
//! replies in its thread (`m.thread`). Every send has a transaction id made from the
//! delivery (`triaged-<seq>-<sink>[-edit|-reply]`), which the homeserver deduplicates,
//! so an attempt repeated after a crash does not post twice.
//!
//! With `allowed_users`, the daemon also follows the room (`/sync` long-polling, from
//! now on: commands sent while it was down are not replayed) and acts on
//! `!ack INC-n [note]` and `!resolve INC-n CODE note` from those users, as
//! `matrix:<user id>`, answering in the command's thread. The sink decides nothing
//! about delivery (that is the outbox worker's); commands go through correlation.
//!
//! API: <https://spec.matrix.org/v1.11/client-server-api/> (`PUT
//! /rooms/{roomId}/send/{eventType}/{txnId}`, `GET /sync`, threads and edits).

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{classify, transport_error, Message, Secret};
use crate::correlation::{ActionError, Queue};
use crate::incidents::{Action, IncidentId, ResolutionCode};
use crate::outbox::Outcome;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The homeserver's base URL (`https://matrix.example.com`).
    pub homeserver: String,
    pub token: Secret,
    /// The room id (`!abc…`), unless a target names another.
    pub room: String,
    /// Users (`@alice:example.com`) whose `!ack` and `!resolve` act; empty: no
    /// commands.
    pub allowed_users: Vec<String>,
}

/// Escapes text for `formatted_body` HTML.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br>")
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn text_content(title: &str, text: &str) -> Value {
    json!({
        "msgtype": "m.text",
        "body": format!("{title}\n{text}"),
        "format": "org.matrix.custom.html",
        "formatted_body": format!("<b>{}</b><br>{}", html(title), html(text)),
    })
}

/// A Matrix error answer (`errcode`, 429's `retry_after_ms`) into an outcome.
fn matrix_error(o: Outcome, body: &str) -> Outcome {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match o {
        Outcome::Retry {
            status,
            error,
            body,
            after,
        } => Outcome::Retry {
            after: after.or_else(|| v["retry_after_ms"].as_u64().map(Duration::from_millis)),
            error: match v["errcode"].as_str() {
                Some(code) => format!("{error}: {code}"),
                None => error,
            },
            status,
            body,
        },
        Outcome::Rejected {
            status,
            error,
            body,
        } => Outcome::Rejected {
            error: match v["errcode"].as_str() {
                Some(code) => format!("{error}: {code}"),
                None => error,
            },
            status,
            body,
        },
        o => o,
    }
}

#[derive(Clone)]
pub struct Matrix {
    settings: Settings,
    client: reqwest::Client,
}

impl Matrix {
    pub fn new(settings: &Settings, client: reqwest::Client) -> Matrix {
        Matrix {
            settings: settings.clone(),
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/_matrix/client/v3{path}",
            self.settings.homeserver.trim_end_matches('/')
        )
    }

    /// Sends one event; its id.
    async fn send(
        &self,
        room: &str,
        kind: &str,
        txn: &str,
        content: &Value,
    ) -> Result<String, Outcome> {
        let url = self.url(&format!("/rooms/{}/send/{kind}/{}", enc(room), enc(txn)));
        let resp = self
            .client
            .put(url)
            .bearer_auth(self.settings.token.expose())
            .json(content)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        match classify(resp).await {
            (Ok(()), body) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["event_id"].as_str().map(str::to_string))
                .ok_or(Outcome::Retry {
                    status: None,
                    error: "the homeserver answered without an event_id".into(),
                    body: Some(body),
                    after: None,
                }),
            (Err(o), body) => Err(matrix_error(o, &body)),
        }
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        match self.post(m).await {
            Ok(reference) => Outcome::Delivered { reference },
            Err(o) => o,
        }
    }

    async fn post(&self, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let txn = format!("triaged-{}-{}", m.delivery.seq, m.delivery.sink);
        let root = m.reference.and_then(|r| r.id.split_once('|'));
        let Some((room, event)) = root else {
            let room = m.delivery.to.as_deref().unwrap_or(&self.settings.room);
            let id = self
                .send(
                    room,
                    "m.room.message",
                    &txn,
                    &text_content(&m.title, &m.text),
                )
                .await?;
            return Ok(Some(format!("{room}|{id}")));
        };
        // The incident's message shows it as it is now; then the event in its thread.
        let mut edit = text_content(&m.title, &m.text);
        let new_content = edit.clone();
        edit["body"] = json!(format!("* {}", new_content["body"].as_str().unwrap_or("")));
        edit["m.new_content"] = new_content;
        edit["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": event});
        self.send(room, "m.room.message", &format!("{txn}-edit"), &edit)
            .await?;
        let reply = json!({
            "msgtype": "m.text",
            "body": m.text,
            "m.relates_to": {"rel_type": "m.thread", "event_id": event, "is_falling_back": true,
                             "m.in_reply_to": {"event_id": event}},
        });
        self.send(room, "m.room.message", &format!("{txn}-reply"), &reply)
            .await?;
        Ok(None)
    }
}

/// A command read from the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ack {
        id: IncidentId,
        note: Option<String>,
    },
    Resolve {
        id: IncidentId,
        code: ResolutionCode,
        note: String,
    },
}

/// Reads `!ack INC-n [note]` or `!resolve INC-n CODE note` from a message body (a
/// rich reply's quoted lines, `> …`, are skipped). `None`: not a command; `Err`: a
/// command written wrong, with what is expected.
pub fn parse_command(body: &str) -> Option<Result<Command, String>> {
    let text = body
        .lines()
        .skip_while(|l| l.starts_with("> ") || l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim();
    let (verb, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let usage = match verb {
        "!ack" => "usage: !ack INC-n [note]",
        "!resolve" => "usage: !resolve INC-n CODE note (CODE: fixed, workaround, no_fault_found, duplicate, false_positive)",
        _ => return None,
    };
    let rest = rest.trim();
    let (id, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let id: IncidentId = match id.parse() {
        Ok(id) => id,
        Err(e) => return Some(Err(format!("{e}; {usage}"))),
    };
    let rest = rest.trim();
    Some(match verb {
        "!ack" => Ok(Command::Ack {
            id,
            note: (!rest.is_empty()).then(|| rest.to_string()),
        }),
        _ => {
            let (code, note) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let code = match serde_json::from_value::<ResolutionCode>(json!(code)) {
                Ok(ResolutionCode::AlertsCleared) | Err(_) => {
                    return Some(Err(format!("unknown resolution code {code:?}; {usage}")))
                }
                Ok(c) => c,
            };
            if note.trim().is_empty() {
                return Some(Err(format!("a resolution needs a note; {usage}")));
            }
            Ok(Command::Resolve {
                id,
                code,
                note: note.trim().to_string(),
            })
        }
    })
}

/// Follows the room and acts on allowed users' commands until `shutdown`.
pub async fn listen(name: String, settings: Settings, queue: Queue, shutdown: CancellationToken) {
    // Long polls outlive a sink's attempt timeout.
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(sink = %name, error = %e, "matrix: cannot build an HTTP client; no commands");
            return;
        }
    };
    let m = Matrix::new(&settings, client);
    let filter = json!({
        "room": {"rooms": [settings.room], "timeline": {"types": ["m.room.message"], "limit": 50},
                 "state": {"types": []}, "ephemeral": {"types": []}, "account_data": {"types": []}},
        "presence": {"types": []},
        "account_data": {"types": []},
    })
    .to_string();
    let mut me: Option<String> = None;
    let mut since: Option<String> = None;
    let mut wait = Duration::from_secs(1);
    let mut txn: u64 = 0;
    let started = jiff::Timestamp::now().as_millisecond();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let step = async {
            if me.is_none() {
                let v: Value = m
                    .client
                    .get(m.url("/account/whoami"))
                    .bearer_auth(settings.token.expose())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .error_for_status()
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                me = v["user_id"].as_str().map(str::to_string);
            }
            let mut req = m
                .client
                .get(m.url("/sync"))
                .bearer_auth(settings.token.expose())
                .query(&[("filter", filter.as_str())]);
            req = match &since {
                Some(s) => req.query(&[("since", s.as_str()), ("timeout", "25000")]),
                None => req.query(&[("timeout", "0")]),
            };
            let v: Value = req
                .send()
                .await
                .map_err(|e| e.to_string())?
                .error_for_status()
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<Value, String>(v)
        };
        let v = tokio::select! {
            _ = shutdown.cancelled() => return,
            v = step => v,
        };
        let v = match v {
            Ok(v) => {
                wait = Duration::from_secs(1);
                v
            }
            Err(e) => {
                tracing::warn!(sink = %name, error = %e, "matrix sync failed; trying again");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let first = since.is_none();
        since = v["next_batch"].as_str().map(str::to_string);
        let events = v["rooms"]["join"][&settings.room]["timeline"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in events {
            // Only what was said after the daemon started listening.
            if first && e["origin_server_ts"].as_i64().unwrap_or(0) < started {
                continue;
            }
            let sender = e["sender"].as_str().unwrap_or("");
            if Some(sender) == me.as_deref() || e["content"]["msgtype"] != "m.text" {
                continue;
            }
            let Some(cmd) = e["content"]["body"].as_str().and_then(parse_command) else {
                continue;
            };
            let event_id = e["event_id"].as_str().unwrap_or("").to_string();
            let thread = match &e["content"]["m.relates_to"] {
                r if r["rel_type"] == "m.thread" => r["event_id"].as_str().map(str::to_string),
                _ => None,
            };
            let answer = if !settings.allowed_users.iter().any(|u| u == sender) {
                tracing::warn!(sink = %name, user = sender, "matrix command from a user not allowed");
                format!("{sender} may not act on incidents")
            } else {
                match cmd {
                    Err(usage) => usage,
                    Ok(cmd) => run(&queue, cmd, sender).await,
                }
            };
            txn += 1;
            let mut content = json!({"msgtype": "m.notice", "body": answer});
            content["m.relates_to"] = match &thread {
                Some(root) => {
                    json!({"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                                    "m.in_reply_to": {"event_id": event_id}})
                }
                None => json!({"m.in_reply_to": {"event_id": event_id}}),
            };
            let id = format!("triaged-cmd-{started}-{txn}");
            if let Err(o) = m
                .send(&settings.room, "m.room.message", &id, &content)
                .await
            {
                tracing::warn!(sink = %name, outcome = ?o, "matrix: cannot answer a command");
            }
        }
    }
}

/// Applies a command through correlation; the answer for the room.
async fn run(queue: &Queue, cmd: Command, sender: &str) -> String {
    let (id, action, done) = match cmd {
        Command::Ack { id, note } => (id, Action::Acknowledge { note }, "acknowledged"),
        Command::Resolve { id, code, note } => (id, Action::Resolve { code, note }, "resolved"),
    };
    let actor = format!("matrix:{sender}");
    match queue.act(id, action, actor.clone()).await {
        Ok(Ok(_)) => {
            tracing::info!(incident = %id, by = %actor, "incident action from matrix");
            format!("{id} {done} by {sender}")
        }
        Ok(Err(ActionError::Conflict { message, .. }))
        | Ok(Err(ActionError::NotFound { message, .. }))
        | Ok(Err(ActionError::Missing { message, .. })) => format!("{id}: {message}"),
        Err(e) => format!("{id}: not done, try again ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_from_plain_and_quoted_bodies() {
        assert_eq!(
            parse_command("!ack INC-3"),
            Some(Ok(Command::Ack {
                id: IncidentId(3),
                note: None
            }))
        );
        assert_eq!(
            parse_command("> <@bot:x> [P1] INC-3 opened\n\n!ack INC-3 on it"),
            Some(Ok(Command::Ack {
                id: IncidentId(3),
                note: Some("on it".into())
            }))
        );
        assert_eq!(
            parse_command("!resolve INC-4 workaround restarted the pod"),
            Some(Ok(Command::Resolve {
                id: IncidentId(4),
                code: ResolutionCode::Workaround,
                note: "restarted the pod".into()
            }))
        );
        assert!(parse_command("!resolve INC-4 fixed")
            .unwrap()
            .unwrap_err()
            .contains("needs a note"));
        assert!(parse_command("!resolve INC-4 alerts_cleared x")
            .unwrap()
            .is_err());
        assert!(parse_command("!ack 4")
            .unwrap()
            .unwrap_err()
            .contains("usage: !ack"));
        assert_eq!(parse_command("looks like INC-3 again"), None);
        assert_eq!(parse_command("!acknowledge INC-3"), None);
    }
}
