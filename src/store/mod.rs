//! The store: where alerts, incidents and the audit log live.
//!
//! Everything outside this module sees the [`Store`] trait only and never names sled,
//! so a PostgreSQL implementation can sit behind the same trait later. A [`Batch`] is
//! written atomically and durably by [`Store::commit`]: when it returns `Ok`, the data
//! is on disk (in the write-ahead log, see `sled_store`). Stored values are versioned record types (`records`), never the
//! in-memory types directly.

mod background;
mod hot;
mod records;
mod sled_store;
mod wal;

pub use sled_store::SledStore;

use std::sync::Arc;

use jiff::Timestamp;

use crate::alerts::{Alert, AlertRecord, AlertState, AlertStatus};
use crate::audit::{AuditEntry, Change};
use crate::changes::{ChangeId, ChangeRecord};
use crate::config::StoreSettings;
use crate::incidents::{Incident, IncidentId, IncidentStatus};
use crate::problems::{Problem, ProblemId};

/// Opens the configured store (today always the embedded one in `data_dir`).
pub fn open(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SledStore::open(settings)?))
}

/// `open` for the offline commands (`triaged audit verify`, `triaged export`): fails
/// at once when another process (a running daemon) holds the store.
pub fn open_offline(settings: &StoreSettings) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SledStore::open_within(
        settings,
        std::time::Duration::ZERO,
    )?))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O error: {0}")]
    Io(String),
    /// A whole file of the store cannot be read back (a damaged log segment or sled
    /// file); the message names it.
    #[error("store damaged: {0}")]
    Damaged(String),
    #[error("corrupt record in {tree} at key {key}: {message}")]
    Corrupt {
        tree: &'static str,
        key: String,
        message: String,
    },
    /// Another writer moved the incident counter or audit head since the batch was
    /// prepared; prepare it again.
    #[error("write conflict: {0}")]
    Conflict(String),
}

/// Where an appended batch stands in the store's log; later batches get higher tickets.
pub type Ticket = u64;

/// One atomic, durable write: every record change of a correlation batch with its
/// audit entries.
#[derive(Debug, Default)]
pub struct Batch {
    /// Alert contents to insert or replace (by fingerprint): new alerts and alerts
    /// whose status changed.
    pub alert_contents: Vec<Alert>,
    /// Alert states to insert or replace: every alert the batch touched.
    pub alert_states: Vec<(String, AlertState)>,
    /// Incidents to insert or replace (by id).
    pub incidents: Vec<Incident>,
    /// The incident counter the batch was prepared against and its value after it:
    /// ids `expected..next` are the batch's new incidents.
    pub incident_counter: Option<(u64, u64)>,
    /// Correlation key → latest incident for it.
    pub keys: Vec<(String, IncidentId)>,
    /// (incident, alert fingerprint) pairs to link.
    pub attachments: Vec<(IncidentId, String)>,
    /// Audit entries to append, in order, with who made them.
    pub audit: Vec<(Timestamp, String, Change)>,
    /// Problems to insert or replace (by id).
    pub problems: Vec<Problem>,
    /// Like `incident_counter`, for problem ids.
    pub problem_counter: Option<(u64, u64)>,
    /// Problem key → latest problem for it.
    pub problem_keys: Vec<(String, ProblemId)>,
    /// Changes to insert or replace (by id).
    pub changes: Vec<ChangeRecord>,
    /// Like `incident_counter`, for change ids.
    pub change_counter: Option<(u64, u64)>,
    /// A change's external id → the change.
    pub change_refs: Vec<(String, ChangeId)>,
    /// Outbox events to append, in order (the store numbers them).
    pub outbox: Vec<crate::outbox::Draft>,
    /// Deliveries of stored events to replace (an attempt's outcome, an operator's
    /// retry); a new event's deliveries come with its draft.
    pub deliveries: Vec<crate::outbox::Delivery>,
    /// Silences to insert or replace (by id); written by the silences API only.
    pub silences: Vec<crate::silences::Silence>,
    /// Log watchers' read positions: (watcher, file fingerprint) → offset, written with
    /// the alerts read up to there.
    pub log_offsets: Vec<((String, String), u64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.alert_contents.is_empty()
            && self.alert_states.is_empty()
            && self.incidents.is_empty()
            && self.keys.is_empty()
            && self.attachments.is_empty()
            && self.audit.is_empty()
            && self.problems.is_empty()
            && self.problem_keys.is_empty()
            && self.changes.is_empty()
            && self.change_refs.is_empty()
            && self.outbox.is_empty()
            && self.deliveries.is_empty()
            && self.silences.is_empty()
            && self.log_offsets.is_empty()
    }
}

/// Which incidents to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    Any,
    /// new, acknowledged, in_progress or on_hold.
    Open,
    Is(IncidentStatus),
}

impl StatusFilter {
    pub fn matches(self, status: IncidentStatus) -> bool {
        match self {
            StatusFilter::Any => true,
            StatusFilter::Open => status.is_open(),
            StatusFilter::Is(s) => s == status,
        }
    }
}

/// Which incidents to list: status, priority and service, all of which must match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncidentFilter {
    pub status: StatusFilter,
    pub priority: Option<crate::incidents::Priority>,
    pub service: Option<String>,
}

impl IncidentFilter {
    pub fn matches(&self, inc: &Incident) -> bool {
        self.status.matches(inc.status)
            && self.priority.is_none_or(|p| p == inc.priority)
            && self
                .service
                .as_deref()
                .is_none_or(|s| inc.service.as_deref() == Some(s))
    }
}

impl From<StatusFilter> for IncidentFilter {
    fn from(status: StatusFilter) -> Self {
        IncidentFilter {
            status,
            ..IncidentFilter::default()
        }
    }
}

/// What `Store::scan` read: records per kind, and every problem found (a record that
/// does not decode, an index entry without its record, a counter behind its records).
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub records: std::collections::BTreeMap<&'static str, u64>,
    pub problems: Vec<String>,
}

/// The store's state for readiness and metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    pub incidents: u64,
    pub audit_entries: u64,
    /// Records committed but not yet checkpointed to their final place.
    pub pending_records: u64,
    /// Bytes in the write-ahead log's current segment.
    pub log_bytes: u64,
    pub checkpoints_ok: u64,
    pub checkpoints_failed: u64,
    /// Duration of the last checkpoint that ran.
    pub last_checkpoint_seconds: f64,
    /// Set when the store refuses writes until a restart, with the reason.
    pub failed: Option<String>,
    /// Set while writes are refused for want of space (the log is intact; a write
    /// succeeds again once there is room), with the reason.
    pub refusing_writes: Option<String>,
    /// Set while checkpoints are put off for want of space (commits go on into the
    /// log while it has room), with the reason.
    pub checkpoints_blocked: Option<String>,
    /// Free bytes on the data dir's filesystem (`None` when unknown).
    pub free_bytes: Option<u64>,
}

/// Reads the whole audit log in pages and checks its hash chain against its head.
pub fn verify_audit(store: &dyn Store) -> Result<crate::audit::Verification, StoreError> {
    const PAGE: usize = 10_000;
    let head = store.audit_head()?;
    let mut verifier = crate::audit::Verifier::default();
    let mut after = 0;
    loop {
        let page = store.audit_page(after, PAGE)?;
        for e in &page {
            if verifier.push(e).is_some() {
                return Ok(verifier.finish((head.0, &head.1)));
            }
        }
        match page.last() {
            Some(e) if page.len() == PAGE => after = e.seq,
            _ => break,
        }
    }
    Ok(verifier.finish((head.0, &head.1)))
}

pub trait Store: Send + Sync + 'static {
    /// The hot state of an alert (correlation's lookup for every notification).
    fn alert_state(&self, fingerprint: &str) -> Result<Option<AlertState>, StoreError>;
    /// An alert's content and state.
    fn alert(&self, fingerprint: &str) -> Result<Option<AlertRecord>, StoreError>;
    /// Alerts newest first by last notification, optionally only one status.
    fn list_alerts(
        &self,
        status: Option<AlertStatus>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError>;
    fn incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError>;
    /// The most recent incident opened for a correlation key.
    fn incident_for_key(&self, key: &str) -> Result<Option<Incident>, StoreError>;
    /// Incidents newest first.
    fn list_incidents(
        &self,
        filter: &IncidentFilter,
        limit: usize,
    ) -> Result<Vec<Incident>, StoreError>;
    fn incident_alerts(&self, id: IncidentId) -> Result<Vec<AlertRecord>, StoreError>;
    /// The audit entries of one record, oldest first.
    fn timeline(&self, record: &str) -> Result<Vec<AuditEntry>, StoreError>;
    /// The number the next incident will get.
    fn next_incident_number(&self) -> Result<u64, StoreError>;
    /// Every open incident (new, acknowledged, in progress, on hold), for correlation
    /// to watch their SLA clocks.
    fn open_incidents(&self) -> Result<Vec<IncidentId>, StoreError>;
    /// Every silence, by id (expired ones too: they are records).
    fn silences(&self) -> Result<Vec<crate::silences::Silence>, StoreError>;
    fn silence(
        &self,
        id: crate::silences::SilenceId,
    ) -> Result<Option<crate::silences::Silence>, StoreError>;
    /// The number the next silence gets (one more than the highest stored).
    fn next_silence_number(&self) -> Result<u64, StoreError>;
    /// A log watcher's read positions: file fingerprint → offset.
    fn log_offsets(
        &self,
        watcher: &str,
    ) -> Result<std::collections::HashMap<String, u64>, StoreError>;
    /// Outbox events after `after` (by seq), in order, at most `limit`.
    fn outbox_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::outbox::Event>, StoreError>;
    /// The incidents flapping now (`Incident::flapping_since` set), for correlation to
    /// watch until they settle.
    /// The seq of the last outbox event stored (0: none).
    fn outbox_last_seq(&self) -> Result<u64, StoreError>;
    /// One outbox event.
    fn outbox_event(&self, seq: u64) -> Result<Option<crate::outbox::Event>, StoreError>;
    /// The deliveries of one event, by sink.
    fn deliveries_of(&self, seq: u64) -> Result<Vec<crate::outbox::Delivery>, StoreError>;
    /// Deliveries not delivered (pending and dead letters) after `after` (seq, sink), in
    /// order, at most `limit`.
    fn queued_deliveries(
        &self,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> Result<Vec<crate::outbox::Delivery>, StoreError>;
    fn flapping_incidents(&self) -> Result<Vec<IncidentId>, StoreError>;
    fn problem(&self, id: ProblemId) -> Result<Option<Problem>, StoreError>;
    /// The latest problem opened for a problem key.
    fn problem_for_key(&self, key: &str) -> Result<Option<Problem>, StoreError>;
    /// Problems newest first.
    fn list_problems(&self, limit: usize) -> Result<Vec<Problem>, StoreError>;
    /// The number the next problem gets.
    fn next_problem_number(&self) -> Result<u64, StoreError>;
    fn change(&self, id: ChangeId) -> Result<Option<ChangeRecord>, StoreError>;
    /// The change recorded with this external id.
    fn change_by_external(&self, external_id: &str) -> Result<Option<ChangeRecord>, StoreError>;
    /// Changes newest first.
    fn list_changes(&self, limit: usize) -> Result<Vec<ChangeRecord>, StoreError>;
    /// The changes on `service` whose window overlaps `since..=until`, by id.
    fn changes_on_service(
        &self,
        service: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<ChangeRecord>, StoreError>;
    /// How many changes on `service` have a window overlapping `since..=until`.
    fn changes_for_service(
        &self,
        service: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<u64, StoreError> {
        Ok(self.changes_on_service(service, since, until)?.len() as u64)
    }
    /// The number the next change gets.
    fn next_change_number(&self) -> Result<u64, StoreError>;
    /// Alerts in fingerprint order after `after`, at most `limit` (export).
    fn alerts_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError>;
    /// Incidents with ids after `after`, oldest first, at most `limit` (export).
    fn incidents_page(&self, after: u64, limit: usize) -> Result<Vec<Incident>, StoreError>;
    /// Problems with ids after `after`, oldest first, at most `limit` (export).
    fn problems_page(&self, after: u64, limit: usize) -> Result<Vec<Problem>, StoreError>;
    /// Changes with ids after `after`, oldest first, at most `limit` (export).
    fn changes_page(&self, after: u64, limit: usize) -> Result<Vec<ChangeRecord>, StoreError>;
    /// Audit entries after `after` (by seq), in order, at most `limit`.
    fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// The audit log's head: the last entry's seq and hash (0 and the genesis hash
    /// when empty).
    fn audit_head(&self) -> Result<(u64, String), StoreError>;
    fn stats(&self) -> Result<Stats, StoreError>;
    /// Reads every stored record and index entry and reports what does not decode or
    /// does not match (`triaged store verify`); the log was checked when it was
    /// replayed at open.
    fn scan(&self) -> Result<Scan, StoreError>;
    /// Writes the batch atomically, without waiting for the disk; it becomes durable and
    /// visible to reads with the [`Store::sync`] of its ticket (or a later one). A
    /// batch is validated against the batches appended before it, durable or not.
    fn append(&self, batch: Batch) -> Result<Ticket, StoreError>;
    /// Returns once every batch appended up to `upto` is durable and visible.
    fn sync(&self, upto: Ticket) -> Result<(), StoreError>;
    /// Writes the batch atomically and returns once it is durable.
    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let ticket = self.append(batch)?;
        self.sync(ticket)
    }
    /// Moves everything committed to its final place (at shutdown, so that the next
    /// start has nothing to replay). Committed data is durable without it.
    fn flush(&self) -> Result<(), StoreError>;
    /// Writes a consistent copy of everything committed so far to the new directory
    /// `dest` (a data dir `triaged serve` starts on) while the store keeps serving.
    fn backup(&self, dest: &std::path::Path) -> Result<BackupReport, StoreError>;
}

/// What [`Store::backup`] wrote (also `backup.json` in the backup).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupReport {
    pub path: std::path::PathBuf,
    pub created_at: jiff::Timestamp,
    /// The triaged version that wrote it.
    pub version: String,
    pub incidents: u64,
    pub audit_entries: u64,
    /// The audit chain's last hash: an auditor can match the backup to the live log.
    pub audit_head: String,
    /// Records per database tree.
    pub records: std::collections::BTreeMap<String, u64>,
}
