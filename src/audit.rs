//! The append-only audit log's entries and their hash chain.
//!
//! Pure: the core describes what changed as [`Change`]s; the store turns them into
//! [`AuditEntry`]s inside the same atomic commit as the record change, chaining each
//! entry to the one before it with SHA-256 so that an edit or a removal shows.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first entry chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One state change of one record, as the pure core reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The record changed: `INC-1`, later `PRB-1`, `CHG-1`.
    pub record: String,
    /// What happened: `opened`, `alert_attached`, `alert_resolved`, `status`, ….
    pub action: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Free text for the timeline, e.g. the alert that was attached.
    pub detail: Option<String>,
}

impl Change {
    pub fn new(record: impl Into<String>, action: &str) -> Self {
        Change {
            record: record.into(),
            action: action.to_string(),
            from: None,
            to: None,
            detail: None,
        }
    }

    pub fn from_to(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self.to = Some(to.into());
        self
    }

    /// A new value with no previous one (a record being created).
    pub fn becomes(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// One stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    pub at: Timestamp,
    /// Who: `rule:<file>`, `token:<name>`, `system`.
    pub actor: String,
    #[serde(flatten)]
    pub change: Change,
    /// Hash of the entry before this one ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 over this entry's fields and `prev_hash`.
    pub hash: String,
}

impl AuditEntry {
    /// Builds the entry that follows `prev_hash` at position `seq`.
    pub fn chain(seq: u64, at: Timestamp, actor: &str, change: Change, prev_hash: &str) -> Self {
        let hash = entry_hash(seq, at, actor, &change, prev_hash);
        AuditEntry {
            seq,
            at,
            actor: actor.to_string(),
            change,
            prev_hash: prev_hash.to_string(),
            hash,
        }
    }

    /// True when the stored hash matches the entry's content.
    pub fn is_intact(&self) -> bool {
        entry_hash(
            self.seq,
            self.at,
            &self.actor,
            &self.change,
            &self.prev_hash,
        ) == self.hash
    }
}

fn entry_hash(seq: u64, at: Timestamp, actor: &str, change: &Change, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    // Each field is length-prefixed so that no two different entries hash the same input.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(&seq.to_be_bytes());
    field(at.to_string().as_bytes());
    field(actor.as_bytes());
    field(change.record.as_bytes());
    field(change.action.as_bytes());
    for opt in [&change.from, &change.to, &change.detail] {
        match opt {
            Some(s) => {
                field(b"1");
                field(s.as_bytes());
            }
            None => field(b"0"),
        }
    }
    field(prev_hash.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_links_and_detects_edits() {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let first = AuditEntry::chain(
            1,
            at,
            "system",
            Change::new("INC-1", "opened"),
            GENESIS_HASH,
        );
        let second = AuditEntry::chain(
            2,
            at,
            "system",
            Change::new("INC-1", "status").from_to("new", "resolved"),
            &first.hash,
        );
        assert!(first.is_intact() && second.is_intact());
        assert_eq!(second.prev_hash, first.hash);

        let mut edited = second.clone();
        edited.change.to = Some("closed".into());
        assert!(!edited.is_intact());

        let mut moved = second;
        moved.change.detail = Some(String::new());
        assert!(!moved.is_intact(), "an empty detail differs from no detail");
    }
}
