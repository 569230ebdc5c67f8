//! `[[sinks]]` and `[[routes]]`: their raw form and validation into
//! `crate::sinks::SinkSettings` and `crate::outbox::routing::Routes`. Secrets are read
//! from the environment or files here and kept in `Secret`s; templates are compiled
//! (so that `triaged check-config` reports a broken one) but kept as sources.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, Invalid};
use crate::outbox::routing::{Route, Routes};
use crate::outbox::{EventKind, RetryPolicy, Target};
use crate::sinks::templates::{Compiled, Templates};
use crate::sinks::{webhook, BreakerPolicy, Kind, Secret, SinkSettings};

/// One `[[sinks]]` entry: where outbox events are delivered. Which fields apply
/// depends on `type`; a field the type does not use is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// Routes and policies name it; 1 to 64 of a-z, 0-9, - and _.
    pub name: String,
    /// `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The endpoint (webhook).
    pub url: Option<String>,
    /// An endpoint URL that is itself a secret (Slack, Teams and Mattermost incoming
    /// webhooks), from an environment variable or a file.
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    /// The API's base URL (slack: `https://slack.com/api`).
    pub api_url: Option<String>,
    /// Where messages go (slack: a channel id).
    pub channel: Option<String>,
    /// The Matrix homeserver's base URL.
    pub homeserver: Option<String>,
    /// The Matrix room id (`!abc…`).
    pub room: Option<String>,
    /// Verifies what the service sends back (slack: the app's signing secret, which
    /// turns on the Acknowledge and Resolve buttons).
    pub signing_secret_env: Option<String>,
    pub signing_secret_file: Option<PathBuf>,
    /// The SMTP server (email).
    pub smtp_host: Option<String>,
    /// Default: 587 with starttls, 465 with tls, 25 with none.
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls` (implicit) or `none`.
    pub tls: Option<String>,
    /// A PEM file of a CA to trust besides the system's (a private relay).
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user, with `password_env` or `password_file`.
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The sender (`triaged <ops@example.com>`).
    pub from: Option<String>,
    /// The recipients, unless a policy names one (`mail:lead@example.com`).
    #[serde(default)]
    pub to: Vec<String>,
    /// Ticketing (jira): the project key, the issue type, priority names per P1–P5,
    /// the transitions for resolved, closed/cancelled and reopened, extra labels, and
    /// whether it is Jira Cloud (default: a host under atlassian.net).
    pub project: Option<String>,
    pub issue_type: Option<String>,
    #[serde(default)]
    pub priorities: BTreeMap<String, String>,
    pub resolve_transition: Option<String>,
    pub close_transition: Option<String>,
    pub reopen_transition: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub cloud: Option<bool>,
    /// Redmine: the tracker of new issues, priority ids per P1–P5, the status ids for
    /// resolved, closed, cancelled and reopened, and how often linked issues are read.
    pub tracker_id: Option<u64>,
    #[serde(default)]
    pub priority_ids: BTreeMap<String, u64>,
    pub resolve_status_id: Option<u64>,
    pub close_status_id: Option<u64>,
    pub cancel_status_id: Option<u64>,
    pub reopen_status_id: Option<u64>,
    pub poll_interval_secs: Option<u64>,
    /// ServiceNow: the caller and assignment group of new incidents, and close codes by
    /// resolution code (default: the Utah names, `Solution provided` …).
    pub caller: Option<String>,
    pub assignment_group: Option<String>,
    #[serde(default)]
    pub close_codes: BTreeMap<String, String>,
    /// Chat users allowed to act on incidents from chat (empty: anyone who can).
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// The signing secret, from an environment variable (webhook: HMAC-SHA256 of what
    /// triaged sends; jira, servicenow: what checks their webhooks to triaged).
    pub secret_env: Option<String>,
    /// The signing secret, from a file (its first line).
    pub secret_file: Option<PathBuf>,
    /// A bearer token, from an environment variable.
    pub token_env: Option<String>,
    /// A bearer token, from a file.
    pub token_file: Option<PathBuf>,
    /// Extra request headers (webhook).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Seconds one attempt may take, connecting included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Attempts in flight at once (for different incidents).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per second at most (unset: unlimited).
    pub rate_per_sec: Option<f64>,
    /// Attempts allowed in a burst above the rate.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// The delay after the first failed attempt; it doubles up to `retry_max_secs`.
    #[serde(default = "default_retry_initial_secs")]
    pub retry_initial_secs: u64,
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// A delivery still failing this long after its event is a dead letter.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// Retryable failures in a row that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Seconds the circuit stays open before a trial attempt (doubling while trials
    /// fail, up to `retry_max_secs`).
    #[serde(default = "default_breaker_open_secs")]
    pub breaker_open_secs: u64,
    /// Message templates (minijinja) overriding the type's defaults.
    #[serde(default)]
    pub templates: RawTemplates,
}

fn default_timeout_secs() -> u64 {
    10
}
fn default_concurrency() -> usize {
    4
}
fn default_burst() -> u32 {
    5
}
fn default_retry_initial_secs() -> u64 {
    1
}
fn default_retry_max_secs() -> u64 {
    300
}
fn default_max_age_secs() -> u64 {
    86_400
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open_secs() -> u64 {
    30
}

/// `[sinks.templates]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplates {
    pub title: Option<String>,
    pub text: Option<String>,
}

/// One `[[routes]]` entry: which events go to which sinks. Every condition given must
/// hold; the first route that matches takes the event unless it says `continue`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Any of these services.
    #[serde(default)]
    pub services: Vec<String>,
    /// Any of these priorities (`P1` … `P5`).
    #[serde(default)]
    pub priorities: Vec<String>,
    /// Any of these event kinds (`opened`, `acknowledged`, `escalated`, …).
    #[serde(default)]
    pub events: Vec<String>,
    /// Label matchers on the incident (`team=db`, `env!~dev|test`).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Targets: `sink` or `sink:recipient`.
    pub sinks: Vec<String>,
    /// Go on to the next routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Also deliver quiet events (silenced, maintenance, change window).
    #[serde(default)]
    pub quiet: bool,
}

fn read_secret(
    key: &dyn Fn(&str) -> String,
    (env_field, env): (&str, &Option<String>),
    (file_field, file): (&str, &Option<PathBuf>),
) -> Result<Option<Secret>, Invalid> {
    match (env, file) {
        (None, None) => Ok(None),
        (Some(var), None) => std::env::var(var)
            .map(|v| Some(Secret::new(v)))
            .map_err(|_| {
                invalid(
                    key(env_field),
                    format!("environment variable {var} is not set"),
                )
            }),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|v| Some(Secret::new(v.lines().next().unwrap_or("").trim_end())))
            .map_err(|e| {
                invalid(
                    key(file_field),
                    format!("cannot read {}: {e}", path.display()),
                )
            }),
        (Some(_), Some(_)) => Err(invalid(
            key(env_field),
            format!("set at most one of {env_field} and {file_field}"),
        )),
    }
}

fn http_url(
    key: &dyn Fn(&str) -> String,
    url: &Option<String>,
    kind: &str,
) -> Result<String, Invalid> {
    let Some(url) = url else {
        return Err(invalid(key("url"), format!("a {kind} sink needs a url")));
    };
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(url.clone()),
        _ => Err(invalid(
            key("url"),
            format!("expected an http(s) URL, got {:?}", redact_url(url)),
        )),
    }
}

/// A URL as shown in errors and `GET /api/v1/config`: scheme and host only (webhook
/// URLs of chat services carry their token in the path).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(not a URL)".into(),
    }
}

/// `[[sinks]]` validated, secrets read, templates compiled.
pub fn sinks(raw: &[RawSink]) -> Result<Vec<SinkSettings>, Invalid> {
    let mut out: Vec<SinkSettings> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = move |field: &str| format!("sinks[{i}].{field}");
        let ok_name = !s.name.is_empty()
            && s.name.len() <= 64
            && s.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok_name {
            return Err(invalid(
                key("name"),
                format!("expected 1 to 64 of a-z, 0-9, - and _, got {:?}", s.name),
            ));
        }
        if out.iter().any(|o| o.name == s.name) {
            return Err(invalid(
                key("name"),
                format!("sink {:?} is defined twice", s.name),
            ));
        }
        if !(1..=600).contains(&s.timeout_secs) {
            return Err(invalid(key("timeout_secs"), "expected 1 to 600"));
        }
        if !(1..=256).contains(&s.concurrency) {
            return Err(invalid(key("concurrency"), "expected 1 to 256"));
        }
        if let Some(r) = s.rate_per_sec {
            if !(r.is_finite() && r > 0.0 && r <= 10_000.0) {
                return Err(invalid(
                    key("rate_per_sec"),
                    "expected more than 0 and at most 10000",
                ));
            }
        }
        if !(1..=10_000).contains(&s.burst) {
            return Err(invalid(key("burst"), "expected 1 to 10000"));
        }
        if s.retry_initial_secs == 0 || s.retry_initial_secs > s.retry_max_secs {
            return Err(invalid(
                key("retry_initial_secs"),
                "expected at least 1 and at most retry_max_secs",
            ));
        }
        if s.retry_max_secs > 86_400 {
            return Err(invalid(key("retry_max_secs"), "expected at most 86400"));
        }
        if s.max_age_secs < s.retry_initial_secs {
            return Err(invalid(
                key("max_age_secs"),
                "expected at least retry_initial_secs",
            ));
        }
        if s.breaker_failures == 0 {
            return Err(invalid(key("breaker_failures"), "expected at least 1"));
        }
        if s.breaker_open_secs == 0 {
            return Err(invalid(key("breaker_open_secs"), "expected at least 1"));
        }
        let unused = |fields: &[(&str, bool)]| -> Result<(), Invalid> {
            match fields.iter().find(|(_, set)| *set) {
                Some((field, _)) => Err(invalid(
                    key(field),
                    format!("not used by a {} sink", s.kind),
                )),
                None => Ok(()),
            }
        };
        let secret_url = || -> Result<Secret, Invalid> {
            let url = read_secret(&key, ("url_env", &s.url_env), ("url_file", &s.url_file))?
                .ok_or_else(|| {
                    invalid(
                        key("url_env"),
                        format!("a {} sink needs its URL from url_env or url_file", s.kind),
                    )
                })?;
            http_url(&key, &Some(url.expose().to_string()), &s.kind).map(Secret::new)
        };
        let chat_fields = [
            ("api_url", s.api_url.is_some()),
            ("channel", s.channel.is_some()),
            ("signing_secret_env", s.signing_secret_env.is_some()),
            ("signing_secret_file", s.signing_secret_file.is_some()),
            ("allowed_users", !s.allowed_users.is_empty()),
        ];
        let url_fields = [
            ("url_env", s.url_env.is_some()),
            ("url_file", s.url_file.is_some()),
        ];
        let hook_fields = [
            ("url", s.url.is_some()),
            ("secret_env", s.secret_env.is_some()),
            ("secret_file", s.secret_file.is_some()),
            ("headers", !s.headers.is_empty()),
        ];
        let token_fields = [
            ("token_env", s.token_env.is_some()),
            ("token_file", s.token_file.is_some()),
        ];
        let matrix_fields = [
            ("homeserver", s.homeserver.is_some()),
            ("room", s.room.is_some()),
        ];
        let email_fields = [
            ("smtp_host", s.smtp_host.is_some()),
            ("smtp_port", s.smtp_port.is_some()),
            ("tls", s.tls.is_some()),
            ("ca_file", s.ca_file.is_some()),
            ("username", s.username.is_some()),
            ("password_env", s.password_env.is_some()),
            ("password_file", s.password_file.is_some()),
            ("from", s.from.is_some()),
            ("to", !s.to.is_empty()),
        ];
        let ticket_fields = [
            ("project", s.project.is_some()),
            ("issue_type", s.issue_type.is_some()),
            ("priorities", !s.priorities.is_empty()),
            ("resolve_transition", s.resolve_transition.is_some()),
            ("close_transition", s.close_transition.is_some()),
            ("reopen_transition", s.reopen_transition.is_some()),
            ("labels", !s.labels.is_empty()),
            ("cloud", s.cloud.is_some()),
        ];
        let snow_fields = [
            ("caller", s.caller.is_some()),
            ("assignment_group", s.assignment_group.is_some()),
            ("close_codes", !s.close_codes.is_empty()),
        ];
        let redmine_fields = [
            ("tracker_id", s.tracker_id.is_some()),
            ("priority_ids", !s.priority_ids.is_empty()),
            ("resolve_status_id", s.resolve_status_id.is_some()),
            ("close_status_id", s.close_status_id.is_some()),
            ("cancel_status_id", s.cancel_status_id.is_some()),
            ("reopen_status_id", s.reopen_status_id.is_some()),
            ("poll_interval_secs", s.poll_interval_secs.is_some()),
        ];
        if s.kind != "redmine" {
            unused(&redmine_fields)?;
        }
        if s.kind != "servicenow" {
            unused(&snow_fields)?;
        }
        if !matches!(s.kind.as_str(), "email" | "jira" | "servicenow") {
            unused(&email_fields)?;
        }
        if s.kind != "jira" {
            // Redmine shares the project key.
            unused(&ticket_fields[usize::from(s.kind == "redmine")..])?;
        }
        let kind = match s.kind.as_str() {
            "redmine" => {
                unused(&matrix_fields)?;
                unused(&url_fields)?;
                unused(&chat_fields)?;
                unused(&email_fields)?;
                unused(&hook_fields[1..])?;
                let url = http_url(&key, &s.url, "redmine")?;
                let key_secret = read_secret(&key, ("token_env", &s.token_env), ("token_file", &s.token_file))?
                    .ok_or_else(|| invalid(key("token_env"), "a redmine sink needs an API key (token_env or token_file)"))?;
                let project = s
                    .project
                    .clone()
                    .filter(|p| !p.trim().is_empty())
                    .ok_or_else(|| invalid(key("project"), "a redmine sink needs a project identifier"))?;
                let mut priority_ids = [5, 4, 3, 2, 1];
                for (p, id) in &s.priority_ids {
                    let p: crate::incidents::Priority = p
                        .parse()
                        .map_err(|e| invalid(format!("sinks[{i}].priority_ids.{p}"), e))?;
                    priority_ids[p as usize] = *id;
                }
                let poll = s.poll_interval_secs.unwrap_or(60);
                if !(1..=86_400).contains(&poll) {
                    return Err(invalid(key("poll_interval_secs"), "expected 1 to 86400"));
                }
                Kind::Redmine(crate::sinks::redmine::Settings {
                    url,
                    key: key_secret,
                    project,
                    tracker_id: s.tracker_id,
                    priority_ids,
                    resolve_status_id: s.resolve_status_id.unwrap_or(3),
                    close_status_id: s.close_status_id.unwrap_or(5),
                    cancel_status_id: s.cancel_status_id.unwrap_or(6),
                    reopen_status_id: s.reopen_status_id.unwrap_or(2),
                    poll_interval: Duration::from_secs(poll),
                })
            }
            "servicenow" => {
                unused(&matrix_fields)?;
                unused(&url_fields)?;
                unused(&chat_fields)?;
                unused(&ticket_fields)?;
                unused(&email_fields[..4])?;
                unused(&email_fields[7..])?;
                unused(&[("headers", !s.headers.is_empty())])?;
                let url = http_url(&key, &s.url, "servicenow")?;
                let password = read_secret(&key, ("password_env", &s.password_env), ("password_file", &s.password_file))?;
                let token = read_secret(&key, ("token_env", &s.token_env), ("token_file", &s.token_file))?;
                use crate::sinks::servicenow::Auth;
                let auth = match (&s.username, password, token) {
                    (Some(user), Some(password), None) => Auth::Basic { user: user.clone(), password },
                    (None, None, Some(t)) => Auth::Bearer(t),
                    _ => {
                        return Err(invalid(
                            key("username"),
                            "give username with password_env or password_file (basic auth), or token_env or token_file (OAuth bearer)",
                        ))
                    }
                };
                let mut close_codes = crate::sinks::servicenow::default_close_codes();
                for (code, name) in &s.close_codes {
                    if !close_codes.contains_key(code) {
                        return Err(invalid(
                            format!("sinks[{i}].close_codes.{code}"),
                            "expected a resolution code: fixed, workaround, no_fault_found, duplicate, false_positive, alerts_cleared",
                        ));
                    }
                    close_codes.insert(code.clone(), name.clone());
                }
                Kind::ServiceNow(crate::sinks::servicenow::Settings {
                    url,
                    auth,
                    caller: s.caller.clone(),
                    assignment_group: s.assignment_group.clone(),
                    close_codes,
                    webhook_secret: read_secret(&key, ("secret_env", &s.secret_env), ("secret_file", &s.secret_file))?,
                })
            }
            "jira" => {
                unused(&matrix_fields)?;
                unused(&url_fields)?;
                unused(&chat_fields)?;
                // Everything of email's but username (Jira Cloud's account email).
                unused(&email_fields[..4])?;
                unused(&email_fields[5..])?;
                unused(&[("headers", !s.headers.is_empty())])?;
                let url = http_url(&key, &s.url, "jira")?;
                let token = read_secret(&key, ("token_env", &s.token_env), ("token_file", &s.token_file))?
                    .ok_or_else(|| invalid(key("token_env"), "a jira sink needs an API token (Cloud, with username) or a personal access token (token_env or token_file)"))?;
                let project = s
                    .project
                    .clone()
                    .filter(|p| !p.trim().is_empty())
                    .ok_or_else(|| invalid(key("project"), "a jira sink needs a project key"))?;
                let mut priorities = ["Highest", "High", "Medium", "Low", "Lowest"].map(String::from);
                for (p, name) in &s.priorities {
                    let p: crate::incidents::Priority = p
                        .parse()
                        .map_err(|e| invalid(format!("sinks[{i}].priorities.{p}"), e))?;
                    priorities[p as usize] = name.clone();
                }
                let cloud = s.cloud.unwrap_or_else(|| {
                    reqwest::Url::parse(&url)
                        .ok()
                        .and_then(|u| u.host_str().map(|h| h.ends_with(".atlassian.net")))
                        .unwrap_or(false)
                });
                Kind::Jira(crate::sinks::jira::Settings {
                    url,
                    username: s.username.clone(),
                    token,
                    cloud,
                    project,
                    issue_type: s.issue_type.clone().unwrap_or_else(|| "Task".into()),
                    priorities,
                    resolve_transition: s.resolve_transition.clone(),
                    close_transition: s.close_transition.clone(),
                    reopen_transition: s.reopen_transition.clone(),
                    labels: s.labels.clone(),
                    webhook_secret: read_secret(&key, ("secret_env", &s.secret_env), ("secret_file", &s.secret_file))?,
                })
            }
            "email" => {
                unused(&hook_fields)?;
                unused(&url_fields)?;
                unused(&chat_fields)?;
                unused(&matrix_fields)?;
                unused(&token_fields)?;
                let host = s
                    .smtp_host
                    .clone()
                    .filter(|h| !h.trim().is_empty())
                    .ok_or_else(|| invalid(key("smtp_host"), "an email sink needs an smtp_host"))?;
                use crate::sinks::email::TlsMode;
                let tls = match s.tls.as_deref() {
                    None | Some("starttls") => TlsMode::StartTls,
                    Some("tls") => TlsMode::Tls,
                    Some("none") => TlsMode::None,
                    Some(other) => {
                        return Err(invalid(key("tls"), format!("expected starttls, tls or none, got {other:?}")))
                    }
                };
                let port = s.smtp_port.unwrap_or(match tls {
                    TlsMode::StartTls => 587,
                    TlsMode::Tls => 465,
                    TlsMode::None => 25,
                });
                let ca_pem = match &s.ca_file {
                    None => None,
                    Some(p) => {
                        let pem = std::fs::read(p)
                            .map_err(|e| invalid(key("ca_file"), format!("cannot read {}: {e}", p.display())))?;
                        lettre::transport::smtp::client::Certificate::from_pem(&pem)
                            .map_err(|e| invalid(key("ca_file"), format!("not a PEM certificate: {e}")))?;
                        Some(pem)
                    }
                };
                let password = read_secret(
                    &key,
                    ("password_env", &s.password_env),
                    ("password_file", &s.password_file),
                )?;
                if s.username.is_some() != password.is_some() {
                    return Err(invalid(key("username"), "give username with password_env or password_file, or neither"));
                }
                let from = s
                    .from
                    .clone()
                    .ok_or_else(|| invalid(key("from"), "an email sink needs a from address"))?;
                from.parse::<lettre::message::Mailbox>()
                    .map_err(|e| invalid(key("from"), format!("not an address: {e}")))?;
                if s.to.is_empty() {
                    return Err(invalid(key("to"), "name at least one recipient"));
                }
                for (j, t) in s.to.iter().enumerate() {
                    t.parse::<lettre::message::Mailbox>()
                        .map_err(|e| invalid(format!("sinks[{i}].to[{j}]"), format!("not an address: {e}")))?;
                }
                Kind::Email(crate::sinks::email::Settings {
                    host,
                    port,
                    tls,
                    ca_pem,
                    username: s.username.clone(),
                    password,
                    from,
                    to: s.to.clone(),
                })
            }
            "matrix" => {
                unused(&hook_fields)?;
                unused(&url_fields)?;
                unused(&[
                    ("api_url", s.api_url.is_some()),
                    ("channel", s.channel.is_some()),
                    ("signing_secret_env", s.signing_secret_env.is_some()),
                    ("signing_secret_file", s.signing_secret_file.is_some()),
                ])?;
                let token = read_secret(
                    &key,
                    ("token_env", &s.token_env),
                    ("token_file", &s.token_file),
                )?
                .ok_or_else(|| {
                    invalid(
                        key("token_env"),
                        "a matrix sink needs the bot's access token (token_env or token_file)",
                    )
                })?;
                let homeserver = http_url(&key, &s.homeserver, "matrix")
                    .map_err(|(_, m)| invalid(key("homeserver"), m))?;
                let room = s
                    .room
                    .clone()
                    .filter(|r| r.starts_with('!'))
                    .ok_or_else(|| invalid(key("room"), "a matrix sink needs a room id (!…)"))?;
                if let Some(u) = s
                    .allowed_users
                    .iter()
                    .find(|u| !u.starts_with('@') || !u.contains(':'))
                {
                    return Err(invalid(
                        key("allowed_users"),
                        format!("expected Matrix user ids like @alice:example.com, got {u:?}"),
                    ));
                }
                Kind::Matrix(crate::sinks::matrix::Settings {
                    homeserver,
                    token,
                    room,
                    allowed_users: s.allowed_users.clone(),
                })
            }
            "slack" => {
                unused(&matrix_fields)?;
                unused(&hook_fields)?;
                unused(&url_fields)?;
                let token = read_secret(
                    &key,
                    ("token_env", &s.token_env),
                    ("token_file", &s.token_file),
                )?
                .ok_or_else(|| {
                    invalid(
                        key("token_env"),
                        "a slack sink needs a bot token (token_env or token_file)",
                    )
                })?;
                let channel = s
                    .channel
                    .clone()
                    .filter(|c| !c.trim().is_empty())
                    .ok_or_else(|| invalid(key("channel"), "a slack sink needs a channel id"))?;
                let api_url = match &s.api_url {
                    Some(u) => http_url(&key, &Some(u.clone()), "slack")
                        .map_err(|(_, m)| invalid(key("api_url"), m))?,
                    None => "https://slack.com/api".to_string(),
                };
                Kind::Slack(crate::sinks::slack::Settings {
                    api_url,
                    token,
                    channel,
                    signing_secret: read_secret(
                        &key,
                        ("signing_secret_env", &s.signing_secret_env),
                        ("signing_secret_file", &s.signing_secret_file),
                    )?,
                    allowed_users: s.allowed_users.clone(),
                })
            }
            "teams" | "mattermost_webhook" => {
                unused(&matrix_fields)?;
                unused(&hook_fields)?;
                unused(&chat_fields)?;
                unused(&token_fields)?;
                let url = secret_url()?;
                if s.kind == "teams" {
                    Kind::Teams(crate::sinks::teams::Settings { url })
                } else {
                    Kind::MattermostWebhook(crate::sinks::mattermost::WebhookSettings { url })
                }
            }
            "mattermost" => {
                unused(&matrix_fields)?;
                unused(&url_fields)?;
                unused(&[
                    ("secret_env", s.secret_env.is_some()),
                    ("secret_file", s.secret_file.is_some()),
                    ("headers", !s.headers.is_empty()),
                    ("api_url", s.api_url.is_some()),
                    ("signing_secret_env", s.signing_secret_env.is_some()),
                    ("signing_secret_file", s.signing_secret_file.is_some()),
                    ("allowed_users", !s.allowed_users.is_empty()),
                ])?;
                let token = read_secret(&key, ("token_env", &s.token_env), ("token_file", &s.token_file))?
                    .ok_or_else(|| invalid(key("token_env"), "a mattermost sink needs a bot token (token_env or token_file)"))?;
                let channel = s
                    .channel
                    .clone()
                    .filter(|c| !c.trim().is_empty())
                    .ok_or_else(|| invalid(key("channel"), "a mattermost sink needs a channel id"))?;
                Kind::Mattermost(crate::sinks::mattermost::Settings {
                    url: http_url(&key, &s.url, "mattermost")?,
                    token,
                    channel,
                })
            }
            "slack_webhook" => {
                unused(&matrix_fields)?;
                unused(&hook_fields)?;
                unused(&chat_fields)?;
                unused(&token_fields)?;
                Kind::SlackWebhook(crate::sinks::slack::WebhookSettings { url: secret_url()? })
            }
            "webhook" => {
                unused(&matrix_fields)?;
                unused(&chat_fields)?;
                unused(&url_fields)?;
                let mut headers = Vec::new();
                for (k, v) in &s.headers {
                    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                        || reqwest::header::HeaderValue::from_str(v).is_err()
                    {
                        return Err(invalid(
                            key("headers"),
                            format!("not a valid header: {k:?}"),
                        ));
                    }
                    headers.push((k.clone(), v.clone()));
                }
                let secret = read_secret(
                    &key,
                    ("secret_env", &s.secret_env),
                    ("secret_file", &s.secret_file),
                )?;
                if secret.as_ref().is_some_and(|x| x.expose().len() < 16) {
                    return Err(invalid(
                        key(if s.secret_env.is_some() {
                            "secret_env"
                        } else {
                            "secret_file"
                        }),
                        "the signing secret must be at least 16 bytes long",
                    ));
                }
                Kind::Webhook(webhook::Settings {
                    url: http_url(&key, &s.url, "webhook")?,
                    secret,
                    token: read_secret(
                        &key,
                        ("token_env", &s.token_env),
                        ("token_file", &s.token_file),
                    )?,
                    headers,
                })
            }
            other => {
                return Err(invalid(
                    key("type"),
                    format!(
                    "unknown sink type {other:?}, expected webhook, slack, slack_webhook, matrix, email, teams, mattermost, mattermost_webhook, jira, servicenow or redmine"
                ),
                ))
            }
        };
        let defaults = Templates::for_kind(kind.as_str());
        let templates = Templates {
            title: s.templates.title.clone().unwrap_or(defaults.title),
            text: s.templates.text.clone().unwrap_or(defaults.text),
        };
        if let Err(e) = Compiled::new(&templates) {
            let which = if e.starts_with("template title") {
                "title"
            } else {
                "text"
            };
            return Err(invalid(key(&format!("templates.{which}")), e));
        }
        out.push(SinkSettings {
            name: s.name.clone(),
            kind,
            timeout: Duration::from_secs(s.timeout_secs),
            concurrency: s.concurrency,
            rate_per_sec: s.rate_per_sec,
            burst: s.burst,
            retry: RetryPolicy {
                initial: Duration::from_secs(s.retry_initial_secs),
                max: Duration::from_secs(s.retry_max_secs),
                max_age: Duration::from_secs(s.max_age_secs),
            },
            breaker: BreakerPolicy {
                failures: s.breaker_failures,
                open: Duration::from_secs(s.breaker_open_secs),
            },
            templates,
        });
    }
    Ok(out)
}

/// A target naming a configured sink.
pub fn target(key: String, text: &str, sinks: &HashSet<&str>) -> Result<Target, Invalid> {
    let t: Target = text.parse().map_err(|e: String| invalid(key.clone(), e))?;
    if !sinks.contains(t.sink.as_str()) {
        let mut known: Vec<&str> = sinks.iter().copied().collect();
        known.sort_unstable();
        return Err(invalid(
            key,
            format!(
                "no sink named {:?} (configured: {})",
                t.sink,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    Ok(t)
}

/// `[[routes]]` validated against the sinks.
pub fn routes(raw: &[RawRoute], sinks: &HashSet<&str>) -> Result<Routes, Invalid> {
    let mut routes = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = |field: &str, j: usize| format!("routes[{i}].{field}[{j}]");
        if r.sinks.is_empty() {
            return Err(invalid(
                format!("routes[{i}].sinks"),
                "name at least one sink",
            ));
        }
        let mut route = Route {
            services: r.services.clone(),
            priorities: Vec::new(),
            events: Vec::new(),
            matchers: Vec::new(),
            sinks: Vec::new(),
            continue_matching: r.continue_matching,
            quiet: r.quiet,
        };
        for (j, p) in r.priorities.iter().enumerate() {
            route
                .priorities
                .push(p.parse().map_err(|e| invalid(key("priorities", j), e))?);
        }
        for (j, e) in r.events.iter().enumerate() {
            route.events.push(
                e.parse::<EventKind>()
                    .map_err(|e| invalid(key("events", j), e))?,
            );
        }
        for (j, m) in r.matchers.iter().enumerate() {
            route.matchers.push(
                crate::silences::Matcher::parse(m).map_err(|e| invalid(key("matchers", j), e))?,
            );
        }
        for (j, s) in r.sinks.iter().enumerate() {
            route.sinks.push(target(key("sinks", j), s, sinks)?);
        }
        routes.push(route);
    }
    Ok(Routes { routes })
}
