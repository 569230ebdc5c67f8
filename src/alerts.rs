//! The normalized `Alert` every source produces, and the pure helpers around it.
//!
//! This module owns the shape of an alert inside triaged. It never does IO: sources
//! build alerts from their payloads, the correlation task and the store consume them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Labels and annotations: sorted, so that fingerprints and output are stable.
pub type LabelSet = BTreeMap<String, String>;

/// Whether an alert is firing or has resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// Where an alert came from. A bounded set: it is used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Alertmanager,
    /// Raised by triaged itself when a configured heartbeat stops (`[[heartbeats]]`).
    Heartbeat,
    /// A named webhook (`[[webhooks]]`); its name is the alert's `webhook` annotation.
    Webhook,
    /// A Prometheus poller (`[[prometheus]]`); its name is the `prometheus` annotation.
    Prometheus,
    /// A log-file watcher (`[[log_watchers]]`); its name is the `log_watcher` annotation.
    Log,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Heartbeat => "heartbeat",
            Source::Webhook => "webhook",
            Source::Prometheus => "prometheus",
            Source::Log => "log",
        }
    }
}

/// One alert as every source delivers it to correlation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub source: Source,
    /// Stable identity of the alert's label set. Alertmanager's own fingerprint is kept;
    /// sources without one use [`fingerprint`].
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: Timestamp,
    /// `None` while the alert is firing without a known end.
    pub ends_at: Option<Timestamp>,
    pub generator_url: Option<String>,
    pub received_at: Timestamp,
}

impl Alert {
    /// The `alertname` label; every accepted alert has one.
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// What correlation made of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Disposition {
    /// Attached to an incident.
    Attached {
        incident: crate::incidents::IncidentId,
    },
    /// A rule dropped it; it is recorded, not attached.
    Dropped { rule: String, reason: String },
    /// First seen already resolved: recorded, nothing to attach to.
    Unattached,
}

/// The hot part of a stored alert: what correlation reads and writes for every
/// notification. It is small, so that every active alert's state fits in memory; the
/// alert's content (labels, annotations) is stored separately and only rewritten when
/// the alert changes status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    pub status: AlertStatus,
    /// Start of the occurrence the status belongs to.
    pub starts_at: Timestamp,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Every notification received for it, repeats included.
    pub notifications: u64,
    pub disposition: Disposition,
    /// Status changes in the current flap window, which started at `flips_since`.
    pub flips: u32,
    pub flips_since: Timestamp,
}

impl AlertState {
    pub fn incident(&self) -> Option<crate::incidents::IncidentId> {
        match self.disposition {
            Disposition::Attached { incident } => Some(incident),
            _ => None,
        }
    }
}

/// An alert as the API shows it: its stored content with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The content of the notification that last changed its status.
    #[serde(flatten)]
    pub alert: Alert,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub notifications: u64,
    pub disposition: Disposition,
}

impl AlertRecord {
    pub fn from_parts(mut alert: Alert, state: AlertState) -> Self {
        alert.status = state.status;
        alert.starts_at = state.starts_at;
        AlertRecord {
            alert,
            first_seen: state.first_seen,
            last_seen: state.last_seen,
            notifications: state.notifications,
            disposition: state.disposition,
        }
    }
}

/// A fingerprint for sources that do not send one: the first 16 hex digits of the
/// SHA-256 of the sorted label set. Distinct from Alertmanager's FNV-based fingerprint
/// on purpose: the two never need to agree, only to be stable.
pub fn fingerprint(labels: &LabelSet) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in labels {
        hasher.update(name.as_bytes());
        hasher.update([0xff]);
        hasher.update(value.as_bytes());
        hasher.update([0xfe]);
    }
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_depends_on_labels_not_their_order() {
        let a = labels(&[("alertname", "Down"), ("job", "node")]);
        let b = labels(&[("job", "node"), ("alertname", "Down")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 16);
        let c = labels(&[("alertname", "Down"), ("job", "nodes")]);
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn fingerprint_separates_name_from_value() {
        let a = labels(&[("ab", "c")]);
        let b = labels(&[("a", "bc")]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
