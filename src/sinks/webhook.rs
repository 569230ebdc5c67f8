//! The generic webhook sink: one JSON `POST` per event, in the versioned schema
//! `triaged.event.v1` (docs/webhook.md), optionally signed with HMAC-SHA256.
//!
//! Headers: `Idempotency-Key` (the same for every attempt of one delivery, so a
//! receiver can drop the repeat a crash between its answer and our record can cause),
//! `X-Triaged-Event` (the event kind), and with a secret `X-Triaged-Timestamp` (Unix
//! seconds) and `X-Triaged-Signature: sha256=<hex>` over `<timestamp>.<body>`: the
//! timestamp is signed so that a receiver can refuse replays of old requests.
//! A 2xx answer whose JSON body has a string `id` (or `reference`) is kept on the
//! incident and sent back as `reference` with its later events.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{classify, transport_error, Message, Secret};
use crate::outbox::Outcome;

/// The body's schema name; a change that is not backwards compatible gets a new one.
pub const SCHEMA: &str = "triaged.event.v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    /// Signs each request (`X-Triaged-Signature`).
    pub secret: Option<Secret>,
    /// Sent as `Authorization: Bearer …`.
    pub token: Option<Secret>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

pub struct Webhook {
    name: String,
    settings: Settings,
    client: reqwest::Client,
}

/// The signature header's value for a body sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The request body.
pub fn body(m: &Message<'_>) -> Value {
    json!({
        "schema": SCHEMA,
        "idempotency_key": idempotency_key(m),
        "event": m.context["event"],
        "incident": m.context["incident"],
        "problem": m.context["problem"],
        "target": m.context["target"],
        "title": m.title,
        "text": m.text,
        "reference": m.reference.map(|r| json!({ "id": r.id, "at": r.at.to_string() })),
    })
}

fn idempotency_key(m: &Message<'_>) -> String {
    format!("triaged-{}-{}", m.delivery.seq, m.delivery.sink)
}

impl Webhook {
    pub fn new(name: &str, settings: &Settings, client: reqwest::Client) -> Webhook {
        Webhook {
            name: name.to_string(),
            settings: settings.clone(),
            client,
        }
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        let bytes = serde_json::to_vec(&body(m)).expect("a JSON value serializes");
        let mut req = self
            .client
            .post(&self.settings.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", idempotency_key(m))
            .header("X-Triaged-Event", m.event.kind.as_str());
        for (k, v) in &self.settings.headers {
            req = req.header(k, v);
        }
        if let Some(t) = &self.settings.token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(secret) = &self.settings.secret {
            let ts = jiff::Timestamp::now().as_second();
            req = req.header("X-Triaged-Timestamp", ts.to_string()).header(
                "X-Triaged-Signature",
                signature(secret.expose().as_bytes(), ts, &bytes),
            );
        }
        let resp = match req.body(bytes).send().await {
            Ok(r) => r,
            Err(e) => return transport_error(&e),
        };
        match classify(resp).await {
            (Ok(()), body) => {
                let reference = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                    ["id", "reference"]
                        .iter()
                        .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
                });
                tracing::debug!(sink = %self.name, seq = m.delivery.seq, "webhook delivered");
                Outcome::Delivered { reference }
            }
            (Err(outcome), _) => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        // Worked out with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 0123456789abcdef
        assert_eq!(
            signature(b"0123456789abcdef", 1_700_000_000, br#"{"a":1}"#),
            "sha256=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a7437c1cd8c3a23"
        );
        assert_ne!(
            signature(b"0123456789abcdef", 1_700_000_001, br#"{"a":1}"#),
            signature(b"0123456789abcdef", 1_700_000_000, br#"{"a":1}"#)
        );
    }
}
