//! Mattermost: the REST API with a bot's token (`type = "mattermost"`) or an incoming
//! webhook (`type = "mattermost_webhook"`).
//!
//! API mode: an incident's first event is a post in the channel (`POST
//! /api/v4/posts`, with `props.triaged_incident`); its id is kept on the incident.
//! Later events patch that post to the incident's state (`PUT
//! /api/v4/posts/{id}/patch`) and reply in its thread (`root_id`). When an earlier
//! attempt may have created the post (the worker's start record), the channel's
//! posts since shortly before the event are searched for the prop first (`GET
//! /api/v4/channels/{id}/posts?since=`), so a crash never makes a second top-level
//! post. Mattermost's 429 carries `X-Ratelimit-Reset` (seconds), used when there is
//! no `Retry-After`. Webhook mode posts `{"text"}` and cannot thread.
//!
//! <https://api.mattermost.com/#tag/posts>,
//! <https://developers.mattermost.com/integrate/webhooks/incoming/>.

use std::time::Duration;

use serde_json::{json, Value};

use super::{classify, transport_error, Message, Secret};
use crate::outbox::Outcome;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The server's base URL (`https://chat.example.com`).
    pub url: String,
    pub token: Secret,
    /// The channel id, unless a target names another.
    pub channel: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: Secret,
}

/// The prop that marks an incident's post.
pub const PROP: &str = "triaged_incident";

fn message(m: &Message<'_>) -> String {
    format!("#### {}\n{}", m.title, m.text)
}

async fn answer(resp: reqwest::Response) -> Result<Value, Outcome> {
    let reset = resp
        .headers()
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match classify(resp).await {
        (Ok(()), body) => Ok(serde_json::from_str(&body).unwrap_or(Value::Null)),
        (
            Err(Outcome::Retry {
                status,
                error,
                body,
                after,
            }),
            _,
        ) => Err(Outcome::Retry {
            after: after.or(reset),
            status,
            error,
            body,
        }),
        (Err(o), _) => Err(o),
    }
}

pub struct Mattermost {
    settings: Settings,
    client: reqwest::Client,
}

impl Mattermost {
    pub fn new(settings: &Settings, client: reqwest::Client) -> Mattermost {
        Mattermost {
            settings: settings.clone(),
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v4{path}", self.settings.url.trim_end_matches('/'))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Outcome> {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(self.settings.token.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        answer(req.send().await.map_err(|e| transport_error(&e))?).await
    }

    /// The incident's post made by an earlier attempt, if any.
    async fn find(&self, channel: &str, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let since = (m.event.at.as_millisecond() - 60_000).max(0);
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/channels/{channel}/posts?since={since}"),
                None,
            )
            .await?;
        let found = v["posts"].as_object().and_then(|posts| {
            posts.values().find_map(|p| {
                (p["props"][PROP] == m.event.record.as_str()
                    && p["root_id"].as_str().unwrap_or("").is_empty())
                .then(|| p["id"].as_str().map(str::to_string))
                .flatten()
            })
        });
        Ok(found)
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        match self.post(m).await {
            Ok(reference) => Outcome::Delivered { reference },
            Err(o) => o,
        }
    }

    async fn post(&self, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let Some(root) = m.reference.map(|r| r.id.as_str()) else {
            let channel = m.delivery.to.as_deref().unwrap_or(&self.settings.channel);
            if m.maybe_created {
                if let Some(id) = self.find(channel, m).await? {
                    return Ok(Some(id));
                }
            }
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/posts",
                    Some(&json!({"channel_id": channel, "message": message(m),
                                 "props": {PROP: m.event.record}})),
                )
                .await?;
            return Ok(v["id"].as_str().map(str::to_string));
        };
        self.call(
            reqwest::Method::PUT,
            &format!("/posts/{root}/patch"),
            Some(&json!({"message": message(m)})),
        )
        .await?;
        let channel = m.delivery.to.as_deref().unwrap_or(&self.settings.channel);
        self.call(
            reqwest::Method::POST,
            "/posts",
            Some(&json!({"channel_id": channel, "root_id": root, "message": m.text})),
        )
        .await?;
        Ok(None)
    }
}

pub struct MattermostWebhook {
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl MattermostWebhook {
    pub fn new(settings: &WebhookSettings, client: reqwest::Client) -> MattermostWebhook {
        MattermostWebhook {
            settings: settings.clone(),
            client,
        }
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        let mut body = json!({"text": message(m)});
        if let Some(to) = &m.delivery.to {
            body["channel"] = json!(to);
        }
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
        match answer(resp).await {
            Ok(_) => Outcome::Delivered { reference: None },
            Err(o) => o,
        }
    }
}
