//! Redmine through its REST API (`X-Redmine-API-Key`): an incident's first event
//! creates an issue in the project (tracker, priority mapped from P1–P5, subject
//! starting `[INC-n]`); its id is kept on the incident. Later events add notes;
//! resolved, closed, cancelled and reopened set the configured statuses. When an
//! earlier attempt may have created the issue (the worker's start record), it is
//! looked up by its subject (`subject=~[INC-n]`) first, so a crash never makes a
//! second ticket. A 422 (`{"errors": […]}`) is a dead letter with the answer kept.
//!
//! Redmine has no webhooks: `poll` follows the open incidents that have an issue
//! (bounded per round, backing off on errors): an issue closed in Redmine resolves
//! its incident, new notes are mirrored to the timeline (the last journal seen is
//! kept in the store), triaged's own notes (the marker) are skipped.
//! <https://www.redmine.org/projects/redmine/wiki/Rest_Issues>.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{classify, transport_error, Message, Secret};
use crate::correlation::Queue;
use crate::incidents::{Action, IncidentId, Priority, ResolutionCode};
use crate::outbox::{EventKind, Outcome};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    pub key: Secret,
    /// The project's identifier or id.
    pub project: String,
    pub tracker_id: Option<u64>,
    /// Redmine priority ids for P1 … P5 (default: Immediate, Urgent, High, Normal, Low).
    pub priority_ids: [u64; 5],
    pub resolve_status_id: u64,
    pub close_status_id: u64,
    pub cancel_status_id: u64,
    pub reopen_status_id: u64,
    pub poll_interval: Duration,
}

fn subject_tag(record: &str) -> String {
    format!("[{record}]")
}

pub struct Redmine {
    settings: Settings,
    client: reqwest::Client,
}

impl Redmine {
    pub fn new(settings: &Settings, client: reqwest::Client) -> Redmine {
        Redmine {
            settings: settings.clone(),
            client,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                method,
                format!("{}{path}", self.settings.url.trim_end_matches('/')),
            )
            .header("X-Redmine-API-Key", self.settings.key.expose())
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, Outcome> {
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        match classify(resp).await {
            (Ok(()), body) => Ok(serde_json::from_str(&body).unwrap_or(Value::Null)),
            (Err(o), _) => Err(o),
        }
    }

    async fn find(&self, record: &str) -> Result<Option<String>, Outcome> {
        let tag = subject_tag(record);
        let v = self
            .call(self.request(reqwest::Method::GET, "/issues.json").query(&[
                ("project_id", self.settings.project.as_str()),
                ("status_id", "*"),
                ("subject", &format!("~{tag}")),
                ("limit", "25"),
            ]))
            .await?;
        Ok(v["issues"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["subject"].as_str().is_some_and(|s| s.starts_with(&tag)))
            .and_then(|i| i["id"].as_u64())
            .map(|id| id.to_string()))
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        match self.post(m).await {
            Ok(reference) => Outcome::Delivered { reference },
            Err(o) => o,
        }
    }

    async fn post(&self, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let s = &self.settings;
        let Some(id) = m.reference.map(|r| r.id.clone()) else {
            if m.maybe_created {
                if let Some(id) = self.find(&m.event.record).await? {
                    return Ok(Some(id));
                }
            }
            let p = m.incident.map_or(Priority::P3, |i| i.priority);
            let mut issue = json!({
                "project_id": s.project,
                "subject": format!("{} {}", subject_tag(&m.event.record), m.title).chars().take(255).collect::<String>(),
                "description": m.text,
                "priority_id": s.priority_ids[Priority::ALL.iter().position(|x| *x == p).unwrap_or(2)],
            });
            if let Some(t) = s.tracker_id {
                issue["tracker_id"] = json!(t);
            }
            let v = self
                .call(
                    self.request(reqwest::Method::POST, "/issues.json")
                        .json(&json!({"issue": issue})),
                )
                .await?;
            return Ok(v["issue"]["id"].as_u64().map(|id| id.to_string()));
        };
        // What came from Redmine is not echoed.
        if m.event.by.starts_with("redmine:") {
            return Ok(None);
        }
        let mut issue = json!({"notes": format!("{}\n\n{}", m.text, crate::http::TICKET_MARKER)});
        let status = match m.event.kind {
            EventKind::Resolved => Some(s.resolve_status_id),
            EventKind::Closed => Some(s.close_status_id),
            EventKind::Cancelled => Some(s.cancel_status_id),
            EventKind::Reopened => Some(s.reopen_status_id),
            _ => None,
        };
        if let Some(st) = status {
            issue["status_id"] = json!(st);
        }
        self.call(
            self.request(reqwest::Method::PUT, &format!("/issues/{id}.json"))
                .json(&json!({"issue": issue})),
        )
        .await?;
        Ok(None)
    }
}

/// Issues looked at per round at most.
const ROUND: usize = 100;

/// Follows the open incidents with an issue of sink `name` until `shutdown`.
pub async fn poll(
    name: String,
    settings: Settings,
    store: std::sync::Arc<dyn Store>,
    queue: Queue,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(sink = %name, error = %e, "redmine: cannot build an HTTP client; not polling");
            return;
        }
    };
    let r = Redmine::new(&settings, client);
    let watcher = format!("redmine:{name}");
    let mut wait = settings.poll_interval;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match round(&r, &name, &watcher, &store, &queue).await {
            Ok(()) => wait = settings.poll_interval,
            Err(e) => {
                wait = (wait * 2)
                    .min(Duration::from_secs(600))
                    .max(settings.poll_interval);
                tracing::warn!(sink = %name, error = %e, next_secs = wait.as_secs(), "redmine poll failed");
            }
        }
    }
}

async fn round(
    r: &Redmine,
    name: &str,
    watcher: &str,
    store: &std::sync::Arc<dyn Store>,
    queue: &Queue,
) -> Result<(), String> {
    let (linked, seen) = {
        let (store, name, watcher) = (store.clone(), name.to_string(), watcher.to_string());
        tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
            let mut linked: Vec<(IncidentId, String)> = Vec::new();
            for id in store.open_incidents()? {
                if linked.len() >= ROUND {
                    break;
                }
                if let Some(inc) = store.incident(id)? {
                    if let Some(r) = inc.external_ref(&name) {
                        linked.push((id, r.id.clone()));
                    }
                }
            }
            Ok((linked, store.log_offsets(&watcher)?))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    for (id, issue) in linked {
        let v = r
            .call(
                r.request(reqwest::Method::GET, &format!("/issues/{issue}.json"))
                    .query(&[("include", "journals")]),
            )
            .await
            .map_err(|o| format!("issue {issue}: {o:?}"))?;
        let last = seen.get(&issue).copied().unwrap_or(0);
        let mut newest = last;
        // Who last changed the status: the one who closed it, if it is closed.
        let mut closer = "unknown".to_string();
        for j in v["issue"]["journals"].as_array().into_iter().flatten() {
            let status_change = j["details"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["name"] == "status_id");
            if status_change {
                closer = j["user"]["name"].as_str().unwrap_or("unknown").to_string();
            }
        }
        for j in v["issue"]["journals"].as_array().into_iter().flatten() {
            let jid = j["id"].as_u64().unwrap_or(0);
            if jid <= last {
                continue;
            }
            newest = newest.max(jid);
            let notes = j["notes"].as_str().unwrap_or("").trim();
            if notes.is_empty() || notes.contains(crate::http::TICKET_MARKER) {
                continue;
            }
            let who = j["user"]["name"].as_str().unwrap_or("unknown");
            let action = Action::Comment {
                text: format!("#{issue}: {notes}"),
            };
            act(queue, id, action, format!("redmine:{who}")).await?;
        }
        if v["issue"]["closed_on"].is_string() || v["issue"]["status"]["is_closed"] == true {
            let status = v["issue"]["status"]["name"].as_str().unwrap_or("closed");
            let action = Action::Resolve {
                code: ResolutionCode::Fixed,
                note: format!("#{issue} {status} in Redmine"),
            };
            act(queue, id, action, format!("redmine:{closer}")).await?;
        }
        if newest > last {
            queue
                .submit_logged(
                    Vec::new(),
                    vec![((watcher.to_string(), issue.clone()), newest)],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

async fn act(queue: &Queue, id: IncidentId, action: Action, actor: String) -> Result<(), String> {
    match queue
        .act(id, action, actor.clone())
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(_) => {
            tracing::info!(incident = %id, by = %actor, "incident updated from redmine");
            Ok(())
        }
        // Already resolved (or otherwise past it): nothing to do.
        Err(crate::correlation::ActionError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
