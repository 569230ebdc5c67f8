//! ServiceNow through the Table API (`/api/now/table/incident`): an incident's first
//! event creates a ServiceNow incident (short description, description, impact and
//! urgency 1–3, caller, assignment group, `correlation_id` = `INC-n` and
//! `correlation_display` = `triaged`); its `sys_id` is kept on the incident. Later
//! events add work notes; acknowledged moves it to In Progress, resolved to Resolved
//! with a close code (mapped from the resolution code) and close notes, closed to
//! Closed, cancelled to Canceled, reopened back to In Progress. When an earlier
//! attempt may have created it (the worker's start record), it is first looked up by
//! `correlation_id`, so a crash never makes a second ticket. A 400's
//! `error.message` is kept with the dead letter; 429 honours `Retry-After`.
//!
//! <https://developer.servicenow.com/dev.do#!/reference/api/latest/rest/c_TableAPI>.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{classify, transport_error, Message, Secret};
use crate::incidents::{Level, ResolutionCode};
use crate::outbox::{EventKind, Outcome};

/// Incident states of ServiceNow's `incident` table.
pub const IN_PROGRESS: &str = "2";
pub const RESOLVED: &str = "6";
pub const CLOSED: &str = "7";
pub const CANCELED: &str = "8";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The instance (`https://example.service-now.com`).
    pub url: String,
    pub auth: Auth,
    pub caller: Option<String>,
    pub assignment_group: Option<String>,
    /// Close codes by resolution code.
    pub close_codes: BTreeMap<String, String>,
    /// Checks ServiceNow's outbound messages (`POST /api/v1/webhooks/servicenow`).
    pub webhook_secret: Option<Secret>,
}

/// ServiceNow's close codes (Utah and later) for each resolution code.
pub fn default_close_codes() -> BTreeMap<String, String> {
    [
        ("fixed", "Solution provided"),
        ("workaround", "Workaround provided"),
        ("no_fault_found", "No resolution provided"),
        ("duplicate", "Duplicate"),
        ("false_positive", "No resolution provided"),
        ("alerts_cleared", "Solution provided"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

fn level(l: Level) -> &'static str {
    match l {
        Level::High => "1",
        Level::Medium => "2",
        Level::Low => "3",
    }
}

pub struct ServiceNow {
    settings: Settings,
    client: reqwest::Client,
}

impl ServiceNow {
    pub fn new(settings: &Settings, client: reqwest::Client) -> ServiceNow {
        ServiceNow {
            settings: settings.clone(),
            client,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!(
            "{}/api/now/table/incident{path}",
            self.settings.url.trim_end_matches('/')
        );
        let req = self
            .client
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.settings.auth {
            Auth::Basic { user, password } => req.basic_auth(user, Some(password.expose())),
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, Outcome> {
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        match classify(resp).await {
            (Ok(()), body) => Ok(serde_json::from_str(&body).unwrap_or(Value::Null)),
            (Err(o), _) => Err(o),
        }
    }

    /// The ServiceNow incident an earlier attempt created, by `correlation_id`.
    async fn find(&self, record: &str) -> Result<Option<String>, Outcome> {
        let v = self
            .call(self.request(reqwest::Method::GET, "").query(&[
                ("sysparm_query", format!("correlation_id={record}").as_str()),
                ("sysparm_fields", "sys_id,number"),
                ("sysparm_limit", "1"),
            ]))
            .await?;
        Ok(v["result"][0]["sys_id"].as_str().map(str::to_string))
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        match self.post(m).await {
            Ok(reference) => Outcome::Delivered { reference },
            Err(o) => o,
        }
    }

    async fn post(&self, m: &Message<'_>) -> Result<Option<String>, Outcome> {
        let s = &self.settings;
        let Some(sys_id) = m.reference.map(|r| r.id.clone()) else {
            if m.maybe_created {
                if let Some(id) = self.find(&m.event.record).await? {
                    return Ok(Some(id));
                }
            }
            let mut fields = json!({
                "short_description": m.title.chars().take(160).collect::<String>(),
                "description": m.text,
                "correlation_id": m.event.record,
                "correlation_display": "triaged",
            });
            if let Some(i) = m.incident {
                fields["impact"] = json!(level(i.impact));
                fields["urgency"] = json!(level(i.urgency));
                if let Some(ci) = &i.ci {
                    fields["cmdb_ci"] = json!(ci);
                }
            }
            if let Some(c) = &s.caller {
                fields["caller_id"] = json!(c);
            }
            if let Some(g) = &s.assignment_group {
                fields["assignment_group"] = json!(g);
            }
            let v = self
                .call(self.request(reqwest::Method::POST, "").json(&fields))
                .await?;
            return Ok(v["result"]["sys_id"].as_str().map(str::to_string));
        };
        // What came from ServiceNow is not echoed.
        if m.event.by.starts_with("servicenow:") {
            return Ok(None);
        }
        let mut patch =
            json!({"work_notes": format!("{}\n\n{}", m.text, crate::http::TICKET_MARKER)});
        match m.event.kind {
            EventKind::Acknowledged | EventKind::Reopened => patch["state"] = json!(IN_PROGRESS),
            EventKind::Resolved => {
                let (code, note) = m
                    .incident
                    .and_then(|i| i.resolution.as_ref())
                    .map(|r| (r.code, r.note.clone()))
                    .unwrap_or((ResolutionCode::Fixed, m.text.clone()));
                patch["state"] = json!(RESOLVED);
                patch["close_code"] = json!(s
                    .close_codes
                    .get(code.as_str())
                    .cloned()
                    .unwrap_or_else(|| "Solution provided".into()));
                patch["close_notes"] = json!(if note.is_empty() {
                    m.text.clone()
                } else {
                    note
                });
            }
            EventKind::Closed => patch["state"] = json!(CLOSED),
            EventKind::Cancelled => patch["state"] = json!(CANCELED),
            _ => {}
        }
        self.call(
            self.request(reqwest::Method::PATCH, &format!("/{sys_id}"))
                .json(&patch),
        )
        .await?;
        Ok(None)
    }
}
