//! Microsoft Teams through a Workflows (Power Automate) webhook, the replacement of
//! Office 365 connectors: one Adaptive Card per event (title, text, the incident's
//! facts), wrapped as a `message` with an attachment of content type
//! `application/vnd.microsoft.card.adaptive`. The workflow answers 202 Accepted. A
//! workflow cannot thread or edit, so every event is a new card. The URL carries its
//! signature: it is a secret (`url_env`/`url_file`).
//!
//! <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>,
//! <https://adaptivecards.io/explorer/>.

use serde_json::{json, Value};

use super::{classify, transport_error, Message, Secret};
use crate::outbox::Outcome;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: Secret,
}

/// The Adaptive Card of one event.
pub fn card(m: &Message<'_>) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": m.title, "weight": "Bolder", "size": "Medium", "wrap": true}),
        json!({"type": "TextBlock", "text": m.text, "wrap": true}),
    ];
    if let Some(i) = m.incident {
        let mut facts = vec![
            json!({"title": "Incident", "value": i.id.to_string()}),
            json!({"title": "Priority", "value": i.priority.as_str()}),
            json!({"title": "Status", "value": i.status.as_str()}),
        ];
        if let Some(s) = &i.service {
            facts.push(json!({"title": "Service", "value": s}));
        }
        if let Some(a) = &i.assignee {
            facts.push(json!({"title": "Assignee", "value": a}));
        }
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

pub struct Teams {
    settings: Settings,
    client: reqwest::Client,
}

impl Teams {
    pub fn new(settings: &Settings, client: reqwest::Client) -> Teams {
        Teams {
            settings: settings.clone(),
            client,
        }
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        let resp = match self
            .client
            .post(self.settings.url.expose())
            .json(&card(m))
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
