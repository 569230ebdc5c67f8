//! Jira (Cloud and Data Center) through its REST API, version 2 (served by both):
//! an incident's first event creates an issue in the project (issue type, summary,
//! description, priority mapped from P1–P5, labels `triaged` and `triaged-INC-n`);
//! its key is kept on the incident. Later events comment on it; resolved, closed and
//! cancelled (and reopened, if configured) move it by the transition names
//! configured. When an earlier attempt may have created the issue (the worker's start
//! record), it is first searched for by its `triaged-INC-n` label, so a crash never
//! makes a second ticket. Jira's 400 answers name the field (`errors`): dead letters
//! with the answer kept; 429 honours `Retry-After`.
//!
//! Cloud: basic auth with the account's email and an API token; Data Center: a
//! personal access token as bearer. Search: `/rest/api/3/search/jql` on Cloud,
//! `/rest/api/2/search` on Data Center.
//! <https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issues/>.

use serde_json::{json, Value};

use super::{classify, transport_error, Message, Secret};
use crate::incidents::Priority;
use crate::outbox::{EventKind, Outcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    /// Cloud: the account's email (basic auth with `token`); none: bearer `token`.
    pub username: Option<String>,
    pub token: Secret,
    pub cloud: bool,
    pub project: String,
    pub issue_type: String,
    /// Jira priority names for P1 … P5.
    pub priorities: [String; 5],
    /// Transition names (as Jira shows them) for resolved, closed (cancelled too) and
    /// reopened; `None`: comment only.
    pub resolve_transition: Option<String>,
    pub close_transition: Option<String>,
    pub reopen_transition: Option<String>,
    pub labels: Vec<String>,
    /// Checks Jira's webhooks (`POST /api/v1/webhooks/jira`).
    pub webhook_secret: Option<Secret>,
}

/// The label that finds an incident's issue again.
pub fn label(record: &str) -> String {
    format!("triaged-{record}")
}

pub struct Jira {
    settings: Settings,
    client: reqwest::Client,
}

fn priority_index(p: Priority) -> usize {
    Priority::ALL.iter().position(|x| *x == p).unwrap_or(2)
}

impl Jira {
    pub fn new(settings: &Settings, client: reqwest::Client) -> Jira {
        Jira {
            settings: settings.clone(),
            client,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.settings.url.trim_end_matches('/'));
        let req = self
            .client
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.settings.username {
            Some(user) => req.basic_auth(user, Some(self.settings.token.expose())),
            None => req.bearer_auth(self.settings.token.expose()),
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, Outcome> {
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        match classify(resp).await {
            (Ok(()), body) => Ok(serde_json::from_str(&body).unwrap_or(Value::Null)),
            (Err(o), _) => Err(o),
        }
    }

    /// The issue an earlier attempt created for the incident, by its label.
    async fn find(&self, record: &str) -> Result<Option<String>, Outcome> {
        let jql = format!(
            "project = \"{}\" AND labels = \"{}\"",
            self.settings.project,
            label(record)
        );
        let path = if self.settings.cloud {
            "/rest/api/3/search/jql"
        } else {
            "/rest/api/2/search"
        };
        let v = self
            .call(self.request(reqwest::Method::GET, path).query(&[
                ("jql", jql.as_str()),
                ("fields", "key"),
                ("maxResults", "1"),
            ]))
            .await?;
        Ok(v["issues"][0]["key"].as_str().map(str::to_string))
    }

    /// Whether one of the issue's latest comments carries `marker`
    /// (`GET /rest/api/2/issue/{key}/comment`, newest first).
    async fn commented(&self, key: &str, marker: &str) -> Result<bool, Outcome> {
        let v = self
            .call(
                self.request(
                    reqwest::Method::GET,
                    &format!("/rest/api/2/issue/{key}/comment"),
                )
                .query(&[("orderBy", "-created"), ("maxResults", "50")]),
            )
            .await?;
        Ok(v["comments"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["body"].as_str().is_some_and(|b| b.contains(marker)))
        }))
    }

    async fn transition(&self, key: &str, name: &str) -> Result<(), Outcome> {
        let v = self
            .call(self.request(
                reqwest::Method::GET,
                &format!("/rest/api/2/issue/{key}/transitions"),
            ))
            .await?;
        let all = v["transitions"].as_array().cloned().unwrap_or_default();
        let Some(t) = all.iter().find(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) else {
            let names: Vec<&str> = all.iter().filter_map(|t| t["name"].as_str()).collect();
            return Err(Outcome::Rejected {
                status: None,
                error: format!(
                    "{key} has no transition {name:?} now (available: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ),
                body: Some(v.to_string()),
            });
        };
        self.call(
            self.request(
                reqwest::Method::POST,
                &format!("/rest/api/2/issue/{key}/transitions"),
            )
            .json(&json!({"transition": {"id": t["id"]}})),
        )
        .await
        .map(|_| ())
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        match self.post(m).await {
            Ok(reference) => Outcome::Delivered { reference },
            Err(o) => o,
        }
    }

    async fn post(&self, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let s = &self.settings;
        let Some(key) = m.reference.map(|r| r.id.clone()) else {
            if m.maybe_created {
                if let Some(key) = self.find(&m.event.record).await? {
                    return Ok(Some(key));
                }
            }
            let priority = m
                .incident
                .map(|i| s.priorities[priority_index(i.priority)].clone())
                .unwrap_or_else(|| s.priorities[2].clone());
            let mut labels = vec!["triaged".to_string(), label(&m.event.record)];
            labels.extend(s.labels.iter().cloned());
            let v = self
                .call(
                    self.request(reqwest::Method::POST, "/rest/api/2/issue")
                        .json(&json!({
                            "fields": {
                                "project": {"key": s.project},
                                "issuetype": {"name": s.issue_type},
                                "summary": m.title.chars().take(250).collect::<String>(),
                                "description": m.text,
                                "priority": {"name": priority},
                                "labels": labels,
                            }
                        })),
                )
                .await?;
            return Ok(v["key"].as_str().map(str::to_string));
        };
        // What came from Jira (a person's comment or resolution there) is not echoed.
        if m.event.by.starts_with("jira:") {
            return Ok(None);
        }
        // The comment and the transition are two calls: when a transition failed, the
        // retry finds the comment it already posted (by the event's marker) instead of
        // posting it again.
        let marker = format!("{} (event {})", crate::http::TICKET_MARKER, m.event.seq);
        if m.delivery.attempts == 0 || !self.commented(&key, &marker).await? {
            self.call(
                self.request(
                    reqwest::Method::POST,
                    &format!("/rest/api/2/issue/{key}/comment"),
                )
                .json(&json!({"body": format!("{}\n\n{marker}", m.text)})),
            )
            .await?;
        }
        let transition = match m.event.kind {
            EventKind::Resolved => s.resolve_transition.as_deref(),
            EventKind::Closed | EventKind::Cancelled => s.close_transition.as_deref(),
            EventKind::Reopened => s.reopen_transition.as_deref(),
            _ => None,
        };
        if let Some(name) = transition {
            self.transition(&key, name).await?;
        }
        Ok(None)
    }
}
