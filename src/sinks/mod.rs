//! Sinks: where outbox events are delivered (a generic webhook; chat and ticketing
//! systems). Each sink turns one event with its incident into the requests its API
//! documents and classifies the answer into an [`Outcome`]: delivered (with what it
//! created, to update later), retry later (timeouts, connection errors, 5xx, 429 with
//! its `Retry-After`), or rejected for good (other 4xx, with the body kept).
//!
//! Sinks do IO but decide nothing about when: retries, ordering, rate limits and the
//! circuit breaker are the outbox worker's (`crate::outbox::worker`). Secrets live in
//! [`Secret`], which never prints.

use std::time::Duration;

use serde_json::Value;

use crate::incidents::Incident;
use crate::outbox::{Delivery, Event, ExternalRef, Outcome, RetryPolicy};
use crate::problems::Problem;

pub mod email;
pub mod jira;
pub mod matrix;
pub mod mattermost;
pub mod redmine;
pub mod servicenow;
pub mod slack;
pub mod teams;
pub mod templates;
pub mod webhook;

/// A credential from the environment or a file: shown as `[redacted]` by `Debug`, so
/// that settings and errors can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// When a sink that keeps failing is left alone: after `failures` retryable failures in
/// a row the circuit opens for `open` (doubling while trial attempts fail, up to the
/// retry cap); then one trial attempt decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failures: u32,
    pub open: Duration,
}

/// One `[[sinks]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSettings {
    pub name: String,
    pub kind: Kind,
    /// Per attempt, connecting included.
    pub timeout: Duration,
    /// Attempts in flight at once (different incidents; one incident's events go one
    /// after the other).
    pub concurrency: usize,
    /// Attempts per second at most (`None`: unlimited), with bursts of `burst`.
    pub rate_per_sec: Option<f64>,
    pub burst: u32,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    pub templates: templates::Templates,
}

/// What kind of sink, with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Webhook(webhook::Settings),
    Slack(slack::Settings),
    SlackWebhook(slack::WebhookSettings),
    Matrix(matrix::Settings),
    Email(email::Settings),
    Teams(teams::Settings),
    Mattermost(mattermost::Settings),
    MattermostWebhook(mattermost::WebhookSettings),
    Jira(jira::Settings),
    ServiceNow(servicenow::Settings),
    Redmine(redmine::Settings),
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Webhook(_) => "webhook",
            Kind::Slack(_) => "slack",
            Kind::SlackWebhook(_) => "slack_webhook",
            Kind::Matrix(_) => "matrix",
            Kind::Email(_) => "email",
            Kind::Teams(_) => "teams",
            Kind::Mattermost(_) => "mattermost",
            Kind::MattermostWebhook(_) => "mattermost_webhook",
            Kind::Jira(_) => "jira",
            Kind::ServiceNow(_) => "servicenow",
            Kind::Redmine(_) => "redmine",
        }
    }
}

impl SinkSettings {
    /// What `GET /api/v1/config` shows: no secret, URLs cut to their host.
    pub fn view(&self) -> Value {
        let kind = match &self.kind {
            Kind::Webhook(w) => serde_json::json!({
                "url": crate::config::redact_url(&w.url),
                "signed": w.secret.is_some(),
                "token": w.token.is_some(),
                "headers": w.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            }),
            Kind::Slack(s) => serde_json::json!({
                "api_url": s.api_url,
                "channel": s.channel,
                "buttons": s.signing_secret.is_some(),
                "allowed_users": s.allowed_users,
            }),
            Kind::SlackWebhook(w) => serde_json::json!({
                "url": crate::config::redact_url(w.url.expose()),
            }),
            Kind::Matrix(m) => serde_json::json!({
                "homeserver": m.homeserver,
                "room": m.room,
                "allowed_users": m.allowed_users,
            }),
            Kind::Teams(t) => serde_json::json!({"url": crate::config::redact_url(t.url.expose())}),
            Kind::MattermostWebhook(t) => {
                serde_json::json!({"url": crate::config::redact_url(t.url.expose())})
            }
            Kind::Mattermost(x) => serde_json::json!({"url": x.url, "channel": x.channel}),
            Kind::Jira(j) => serde_json::json!({
                "url": j.url, "username": j.username, "cloud": j.cloud, "project": j.project,
                "issue_type": j.issue_type, "priorities": j.priorities,
                "resolve_transition": j.resolve_transition, "close_transition": j.close_transition,
                "reopen_transition": j.reopen_transition, "labels": j.labels,
            }),
            Kind::ServiceNow(x) => serde_json::json!({
                "url": x.url,
                "auth": match &x.auth {
                    servicenow::Auth::Basic { user, .. } => serde_json::json!({"basic": user}),
                    servicenow::Auth::Bearer(_) => serde_json::json!("bearer"),
                },
                "caller": x.caller, "assignment_group": x.assignment_group, "close_codes": x.close_codes,
            }),
            Kind::Redmine(r) => serde_json::json!({
                "url": r.url, "project": r.project, "tracker_id": r.tracker_id,
                "priority_ids": r.priority_ids, "resolve_status_id": r.resolve_status_id,
                "close_status_id": r.close_status_id, "cancel_status_id": r.cancel_status_id,
                "reopen_status_id": r.reopen_status_id, "poll_interval_secs": r.poll_interval.as_secs(),
            }),
            Kind::Email(e) => serde_json::json!({
                "smtp_host": e.host,
                "smtp_port": e.port,
                "tls": format!("{:?}", e.tls).to_lowercase(),
                "ca_file": e.ca_pem.is_some(),
                "username": e.username,
                "from": e.from,
                "to": e.to,
            }),
        };
        serde_json::json!({
            "name": self.name,
            "type": self.kind.as_str(),
            "settings": kind,
            "timeout_secs": self.timeout.as_secs(),
            "concurrency": self.concurrency,
            "rate_per_sec": self.rate_per_sec,
            "burst": self.burst,
            "retry_initial_secs": self.retry.initial.as_secs(),
            "retry_max_secs": self.retry.max.as_secs(),
            "max_age_secs": self.retry.max_age.as_secs(),
            "breaker_failures": self.breaker.failures,
            "breaker_open_secs": self.breaker.open.as_secs(),
            "templates": {"title": self.templates.title, "text": self.templates.text},
        })
    }
}

/// What a sink gets for one attempt.
#[derive(Debug)]
pub struct Message<'a> {
    pub event: &'a Event,
    pub delivery: &'a Delivery,
    /// The event's incident as it is now (`None` for a problem's event).
    pub incident: Option<&'a Incident>,
    pub problem: Option<&'a Problem>,
    /// What this sink created for the incident before (post into that thread).
    pub reference: Option<&'a ExternalRef>,
    /// An earlier attempt to create the incident's first message may have reached the
    /// sink (it began and its outcome was never recorded): look for it first.
    pub maybe_created: bool,
    /// The rendered templates.
    pub title: String,
    pub text: String,
    /// The template context (also the webhook body's core).
    pub context: &'a Value,
}

/// A sink ready to deliver.
pub enum Sink {
    Webhook(webhook::Webhook),
    Slack(slack::Slack),
    SlackWebhook(slack::SlackWebhook),
    Matrix(matrix::Matrix),
    /// Boxed: the SMTP transport is large.
    Email(Box<email::Email>),
    Teams(teams::Teams),
    Mattermost(mattermost::Mattermost),
    MattermostWebhook(mattermost::MattermostWebhook),
    /// Boxed: its settings are large.
    Jira(Box<jira::Jira>),
    ServiceNow(servicenow::ServiceNow),
    Redmine(redmine::Redmine),
}

impl Sink {
    pub fn new(settings: &SinkSettings) -> Result<Sink, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("triaged/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("sink {}: cannot build an HTTP client: {e}", settings.name))?;
        Ok(match &settings.kind {
            Kind::Webhook(w) => Sink::Webhook(webhook::Webhook::new(&settings.name, w, client)),
            Kind::Slack(s) => Sink::Slack(slack::Slack::new(s, client)),
            Kind::SlackWebhook(w) => Sink::SlackWebhook(slack::SlackWebhook::new(w, client)),
            Kind::Matrix(m) => Sink::Matrix(matrix::Matrix::new(m, client)),
            Kind::Teams(t) => Sink::Teams(teams::Teams::new(t, client)),
            Kind::Mattermost(x) => Sink::Mattermost(mattermost::Mattermost::new(x, client)),
            Kind::MattermostWebhook(x) => {
                Sink::MattermostWebhook(mattermost::MattermostWebhook::new(x, client))
            }
            Kind::Jira(j) => Sink::Jira(Box::new(jira::Jira::new(j, client))),
            Kind::ServiceNow(x) => Sink::ServiceNow(servicenow::ServiceNow::new(x, client)),
            Kind::Redmine(x) => Sink::Redmine(redmine::Redmine::new(x, client)),
            Kind::Email(e) => Sink::Email(Box::new(
                email::Email::new(&settings.name, e, settings.timeout)
                    .map_err(|err| format!("sink {}: {err}", settings.name))?,
            )),
        })
    }

    /// Whether an attempt with no earlier reference creates something a repeat would
    /// create twice and that can be looked up (the worker records its start first).
    pub fn looks_up_creates(&self) -> bool {
        matches!(
            self,
            Sink::Slack(_)
                | Sink::Mattermost(_)
                | Sink::Jira(_)
                | Sink::ServiceNow(_)
                | Sink::Redmine(_)
        )
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        match self {
            Sink::Webhook(w) => w.deliver(m).await,
            Sink::Slack(s) => s.deliver(m).await,
            Sink::SlackWebhook(s) => s.deliver(m).await,
            Sink::Matrix(x) => x.deliver(m).await,
            Sink::Email(x) => x.deliver(m).await,
            Sink::Teams(x) => x.deliver(m).await,
            Sink::Mattermost(x) => x.deliver(m).await,
            Sink::MattermostWebhook(x) => x.deliver(m).await,
            Sink::Jira(x) => x.deliver(m).await,
            Sink::ServiceNow(x) => x.deliver(m).await,
            Sink::Redmine(x) => x.deliver(m).await,
        }
    }
}

/// The longest body read from an answer (the rest is not needed to classify it).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Reads an answer and classifies it: 2xx delivered (the caller reads what it needs
/// from the body), 429 and 5xx retried (honouring `Retry-After`), 408 retried, other
/// 4xx rejected. The body comes back for the caller either way.
pub async fn classify(resp: reqwest::Response) -> (Result<(), Outcome>, String) {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, std::time::SystemTime::now()));
    let body = read_capped(resp).await;
    let code = status.as_u16();
    let error = format!(
        "{} {}",
        code,
        status.canonical_reason().unwrap_or("unknown status")
    );
    let outcome = if status.is_success() {
        return (Ok(()), body);
    } else if code == 429 || code == 408 || status.is_server_error() {
        Outcome::Retry {
            status: Some(code),
            error,
            body: Some(body.clone()),
            after: retry_after,
        }
    } else {
        Outcome::Rejected {
            status: Some(code),
            error,
            body: Some(body.clone()),
        }
    };
    (Err(outcome), body)
}

async fn read_capped(mut resp: reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ANSWER_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A request that got no answer: always worth retrying.
pub fn transport_error(e: &reqwest::Error) -> Outcome {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's message names the URL, which may carry a token (Slack and Teams
    // webhook URLs do): keep only the cause.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    Outcome::Retry {
        status: None,
        error: if cause.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {cause}")
        },
        body: None,
        after: None,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 08:30:00 GMT", now),
            Some(Duration::from_secs(3600 + 2 * 60))
        );
        assert_eq!(
            retry_after(
                "Wed, 21 Oct 2015 07:00:00 GMT",
                now + Duration::from_secs(86400)
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("xoxb-123");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "xoxb-123");
    }
}
