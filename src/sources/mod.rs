//! Sources: the senders triaged takes alerts from, each turned into normalized
//! [`crate::alerts::Alert`]s.
//!
//! A source validates its whole input before anything is handed on, so a rejected
//! request stores nothing, and answers its sender only after the correlation task has
//! stored the alerts durably. Parsing is pure; the HTTP side lives in `http`.

pub mod alertmanager;
pub mod logs;
pub mod prometheus;
pub mod webhooks;

use std::fmt;

/// Why a payload was refused, naming the field (`alerts[0].labels.alertname`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PayloadError {
    pub field: String,
    pub message: String,
    /// A bounded reason for the `triaged_alerts_rejected_total` metric.
    pub reason: &'static str,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl PayloadError {
    pub fn new(field: impl Into<String>, reason: &'static str, message: impl Into<String>) -> Self {
        PayloadError {
            field: field.into(),
            message: message.into(),
            reason,
        }
    }
}

/// Deserializes JSON, naming the path of the first field that is wrong. Valid bodies
/// take the plain (fast) path; only a failure is parsed again to find the field.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, PayloadError> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let (field, reason) = if inner.is_syntax() || inner.is_eof() {
            ("body".to_string(), "invalid_json")
        } else if let Some(name) = missing {
            let field = if path == "." || path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            (field, "missing_field")
        } else if path == "." || path.is_empty() {
            ("body".to_string(), "invalid_field")
        } else {
            (path, "invalid_field")
        };
        PayloadError::new(field, reason, message)
    })
}
