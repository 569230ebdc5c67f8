//! Slack: the Web API with a bot token (`type = "slack"`) or an incoming webhook
//! (`type = "slack_webhook"`).
//!
//! Bot mode: an incident's first event is a top-level `chat.postMessage` with blocks
//! (title, text, Acknowledge and Resolve buttons while it is open) and message
//! metadata (`event_type: triaged_incident`, the incident id); its `channel/ts` is
//! kept on the incident. Every later event first updates that message
//! (`chat.update`: status, buttons) and then replies in its thread; a reply repeated
//! after a crash is harmless, a second top-level message is not: when an earlier
//! attempt may have posted it (the worker's intent record), the channel's recent
//! history is searched for the metadata first (`conversations.history` with
//! `include_all_metadata`). Slack answers 200 with `ok: false` for most errors: the
//! transient ones (`ratelimited`, `internal_error`, …) are retried, the rest rejected.
//! Webhook mode posts the same blocks without buttons and cannot thread.
//! Button presses come back to `POST /api/v1/chat/slack/{sink}` (`crate::http::chat`).
//!
//! API: <https://api.slack.com/methods/chat.postMessage>, `chat.update`,
//! `conversations.history`; <https://api.slack.com/messaging/webhooks>.

use serde_json::{json, Value};

use super::{classify, transport_error, Message, Secret};
use crate::incidents::Incident;
use crate::outbox::Outcome;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The Web API's base URL (`https://slack.com/api`).
    pub api_url: String,
    pub token: Secret,
    /// The channel id (`C0123…`), unless a target names another.
    pub channel: String,
    /// Interactions (buttons) are verified with it; without one, no buttons.
    pub signing_secret: Option<Secret>,
    /// Slack user ids allowed to press the buttons (empty: anyone in the channel).
    pub allowed_users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The incoming webhook URL (a secret: it carries its token).
    pub url: Secret,
}

/// The metadata event type of incident messages.
pub const METADATA_EVENT: &str = "triaged_incident";
/// Button action ids.
pub const ACK_ACTION: &str = "triaged_acknowledge";
pub const RESOLVE_ACTION: &str = "triaged_resolve";

/// Slack's `ok: false` errors worth trying again.
const TRANSIENT: [&str; 6] = [
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// Escapes text for mrkdwn (`&`, `<`, `>`), so that alert text cannot mention
/// `@channel` or forge links.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn open(i: Option<&Incident>) -> bool {
    i.is_some_and(|i| i.status.is_open())
}

/// The incident message's blocks: title and text, a context line, and the buttons
/// while the incident is open (bot mode with a signing secret).
pub fn blocks(m: &Message<'_>, buttons: bool) -> Value {
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*{}*\n{}", escape(&m.title), escape(&m.text))}})];
    if let Some(i) = m.incident {
        blocks.push(
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "{} · {} · {} · {}", i.id, i.priority.as_str(), i.status.as_str(),
            escape(i.service.as_deref().unwrap_or("no service")))}]}),
        );
        if buttons && open(m.incident) {
            let id = i.id.to_string();
            let mut elements = Vec::new();
            if i.acknowledged_at.is_none() {
                elements.push(
                    json!({"type": "button", "action_id": ACK_ACTION, "value": id,
                    "style": "primary", "text": {"type": "plain_text", "text": "Acknowledge"}}),
                );
            }
            elements.push(
                json!({"type": "button", "action_id": RESOLVE_ACTION, "value": id,
                "text": {"type": "plain_text", "text": "Resolve"}}),
            );
            blocks.push(
                json!({"type": "actions", "block_id": "triaged_actions", "elements": elements}),
            );
        }
    }
    Value::Array(blocks)
}

/// A Web API answer: `ok: true` gives its body; `ok: false` is retried or rejected
/// by its error.
async fn api_answer(resp: reqwest::Response) -> Result<Value, Outcome> {
    let status = resp.status().as_u16();
    let body = match classify(resp).await {
        (Ok(()), body) => body,
        (Err(o), _) => return Err(o),
    };
    let v: Value = serde_json::from_str(&body).map_err(|_| Outcome::Retry {
        status: Some(status),
        error: "Slack answered something that is not JSON".into(),
        body: Some(body.clone()),
        after: None,
    })?;
    if v["ok"] == true {
        return Ok(v);
    }
    let error = v["error"].as_str().unwrap_or("unknown_error").to_string();
    if TRANSIENT.contains(&error.as_str()) {
        Err(Outcome::Retry {
            status: Some(status),
            error: format!("slack: {error}"),
            body: Some(body),
            after: None,
        })
    } else {
        Err(Outcome::Rejected {
            status: Some(status),
            error: format!("slack: {error}"),
            body: Some(body),
        })
    }
}

pub struct Slack {
    settings: Settings,
    client: reqwest::Client,
}

impl Slack {
    pub fn new(settings: &Settings, client: reqwest::Client) -> Slack {
        Slack {
            settings: settings.clone(),
            client,
        }
    }

    fn url(&self, method: &str) -> String {
        format!("{}/{method}", self.settings.api_url.trim_end_matches('/'))
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, Outcome> {
        let resp = self
            .client
            .post(self.url(method))
            .bearer_auth(self.settings.token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        api_answer(resp).await
    }

    /// The incident's message posted by an earlier attempt, if any: its metadata in
    /// the channel's history since shortly before the event.
    async fn find(&self, channel: &str, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let incident = m.event.record.as_str();
        let oldest = m.event.at.as_second().saturating_sub(60);
        let mut cursor: Option<String> = None;
        // A bounded search: a busy channel is paged at most five times.
        for _ in 0..5 {
            let mut req = self
                .client
                .get(self.url("conversations.history"))
                .bearer_auth(self.settings.token.expose())
                .query(&[
                    ("channel", channel),
                    ("oldest", &oldest.to_string()),
                    ("include_all_metadata", "true"),
                    ("limit", "200"),
                ]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c.as_str())]);
            }
            let v = api_answer(req.send().await.map_err(|e| transport_error(&e))?).await?;
            for msg in v["messages"].as_array().into_iter().flatten() {
                let meta = &msg["metadata"];
                if meta["event_type"] == METADATA_EVENT
                    && meta["event_payload"]["incident"] == incident
                {
                    if let Some(ts) = msg["ts"].as_str() {
                        return Ok(Some(ts.to_string()));
                    }
                }
            }
            cursor = v["response_metadata"]["next_cursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(None)
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        match self.post(m).await {
            Ok(reference) => Outcome::Delivered { reference },
            Err(o) => o,
        }
    }

    async fn post(&self, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let buttons = self.settings.signing_secret.is_some();
        let blocks = blocks(m, buttons);
        let thread = m.reference.and_then(|r| r.id.split_once('/'));
        let Some((channel, ts)) = thread else {
            let channel = m.delivery.to.as_deref().unwrap_or(&self.settings.channel);
            if m.maybe_created {
                if let Some(ts) = self.find(channel, m).await? {
                    return Ok(Some(format!("{channel}/{ts}")));
                }
            }
            let v = self
                .call(
                    "chat.postMessage",
                    &json!({
                        "channel": channel,
                        "text": m.title,
                        "blocks": blocks,
                        "unfurl_links": false,
                        "metadata": {"event_type": METADATA_EVENT,
                            "event_payload": {"incident": m.event.record, "seq": m.event.seq}},
                    }),
                )
                .await?;
            let channel = v["channel"].as_str().unwrap_or(channel);
            return Ok(v["ts"].as_str().map(|ts| format!("{channel}/{ts}")));
        };
        // The incident's message shows its state now; then the event in its thread.
        self.call(
            "chat.update",
            &json!({"channel": channel, "ts": ts, "text": m.title, "blocks": blocks}),
        )
        .await?;
        self.call(
            "chat.postMessage",
            &json!({"channel": channel, "thread_ts": ts, "text": escape(&m.text),
                "unfurl_links": false}),
        )
        .await?;
        Ok(None)
    }
}

pub struct SlackWebhook {
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl SlackWebhook {
    pub fn new(settings: &WebhookSettings, client: reqwest::Client) -> SlackWebhook {
        SlackWebhook {
            settings: settings.clone(),
            client,
        }
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        let body = json!({"text": m.title, "blocks": blocks(m, false)});
        let resp = match self
            .client
            .post(self.settings.url.expose())
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return transport_error(&e),
        };
        match classify(resp).await {
            (Ok(()), _) => Outcome::Delivered { reference: None },
            (Err(o), _) => o,
        }
    }
}

/// Slack's request signature: `v0=` hex HMAC-SHA256 of `v0:{timestamp}:{body}`
/// (<https://api.slack.com/authentication/verifying-requests-from-slack>), checked in
/// constant time; requests older than five minutes are refused (replays).
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    use hmac::{Hmac, Mac};
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| "X-Slack-Request-Timestamp is not a number")?;
    if (now - ts).abs() > 300 {
        return Err("the request is older than 5 minutes");
    }
    let hex_sig = signature
        .strip_prefix("v0=")
        .ok_or("X-Slack-Signature must start with v0=")?;
    let sig = hex::decode(hex_sig).map_err(|_| "X-Slack-Signature is not hex")?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| "X-Slack-Signature does not match")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_signatures_are_checked_with_their_time() {
        // Slack's documented example (verifying requests from Slack).
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let ts = "1531420618";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(verify(secret, ts, sig, body, 1_531_420_618), Ok(()));
        assert_eq!(
            verify(secret, ts, sig, body, 1_531_420_618 + 301),
            Err("the request is older than 5 minutes")
        );
        assert!(verify(secret, ts, sig, b"token=changed", 1_531_420_618).is_err());
        assert!(verify(secret, ts, "a2114d", body, 1_531_420_618).is_err());
    }

    #[test]
    fn mrkdwn_is_escaped() {
        assert_eq!(
            escape("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
    }
}
