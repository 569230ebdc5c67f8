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

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries read and found sound before the first bad one (all of them when intact).
    pub checked: u64,
    /// The first entry that is wrong, and how; `None` when the whole log is intact.
    pub first_bad: Option<BadEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadEntry {
    pub seq: u64,
    pub reason: String,
}

/// Checks an audit log read in order: every entry in its place (`seq` 1, 2, 3, …), its
/// hash matching its content, chained to the one before, and the last one the log's
/// recorded head `(seq, hash)` (so that entries cut off the end are noticed).
pub fn verify(entries: impl IntoIterator<Item = AuditEntry>, head: (u64, &str)) -> Verification {
    let mut v = Verifier::default();
    for e in entries {
        if v.push(&e).is_some() {
            break;
        }
    }
    v.finish(head)
}

/// `verify` one entry at a time, for logs read in pages.
#[derive(Debug, Default)]
pub struct Verifier {
    prev_hash: Option<String>,
    checked: u64,
    bad: Option<BadEntry>,
}

impl Verifier {
    /// Checks the next entry; the first bad one is kept (and returned), later ones are
    /// ignored.
    pub fn push(&mut self, e: &AuditEntry) -> Option<&BadEntry> {
        if self.bad.is_some() {
            return self.bad.as_ref();
        }
        let expected = self.checked + 1;
        let prev = self.prev_hash.as_deref().unwrap_or(GENESIS_HASH);
        let reason = if e.seq != expected {
            Some((
                expected,
                format!("missing: the next entry found is {}", e.seq),
            ))
        } else if e.prev_hash != prev {
            Some((
                e.seq,
                "does not chain to the entry before it (prev_hash differs)".into(),
            ))
        } else if !e.is_intact() {
            Some((e.seq, "its content does not match its hash (edited)".into()))
        } else {
            None
        };
        match reason {
            Some((seq, reason)) => {
                self.bad = Some(BadEntry { seq, reason });
                self.bad.as_ref()
            }
            None => {
                self.prev_hash = Some(e.hash.clone());
                self.checked += 1;
                None
            }
        }
    }

    /// The result, given the log's recorded head `(seq, hash)`.
    pub fn finish(self, (head_seq, head_hash): (u64, &str)) -> Verification {
        let last = self.checked;
        let bad = self.bad.or_else(|| {
            let hash = self.prev_hash.as_deref().unwrap_or(GENESIS_HASH);
            if last < head_seq {
                Some(BadEntry {
                    seq: last + 1,
                    reason: format!(
                        "missing: the log records {head_seq} entries, {last} are there"
                    ),
                })
            } else if last > head_seq || hash != head_hash {
                Some(BadEntry {
                    seq: last,
                    reason: format!(
                        "the log's recorded head is entry {head_seq} with another hash"
                    ),
                })
            } else {
                None
            }
        });
        Verification {
            checked: last,
            first_bad: bad,
        }
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

    fn log(n: u64) -> Vec<AuditEntry> {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = out
                .last()
                .map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
            out.push(AuditEntry::chain(
                seq,
                at,
                "system",
                Change::new(format!("INC-{seq}"), "opened"),
                &prev,
            ));
        }
        out
    }

    #[test]
    fn verify_names_the_first_bad_entry() {
        let entries = log(5);
        let head = (5, entries[4].hash.clone());
        let ok = verify(entries.clone(), (head.0, &head.1));
        assert_eq!((ok.checked, ok.first_bad), (5, None));
        assert_eq!(verify(Vec::new(), (0, GENESIS_HASH)).first_bad, None);

        let mut edited = entries.clone();
        edited[2].change.detail = Some("quietly changed".into());
        let v = verify(edited, (head.0, &head.1));
        assert_eq!(v.checked, 2);
        assert_eq!(v.first_bad.unwrap().seq, 3);

        let mut gap = entries.clone();
        gap.remove(1);
        let v = verify(gap, (head.0, &head.1));
        let bad = v.first_bad.unwrap();
        assert_eq!(
            (bad.seq, bad.reason.as_str()),
            (2, "missing: the next entry found is 3")
        );

        // Rewritten from entry 4 on with fresh hashes: entry 4 no longer chains.
        let mut forged = entries.clone();
        forged[3] = AuditEntry::chain(
            4,
            forged[3].at,
            "system",
            Change::new("INC-9", "opened"),
            "f00",
        );
        assert_eq!(verify(forged, (head.0, &head.1)).first_bad.unwrap().seq, 4);

        // The last entries cut off: the recorded head says there were five.
        let v = verify(entries[..3].to_vec(), (head.0, &head.1));
        assert_eq!(v.first_bad.unwrap().seq, 4);
    }

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
