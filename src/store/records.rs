//! Versioned record types: the on-disk form of every stored value.
//!
//! Each value is one version byte followed by the record in postcard (a compact binary
//! serde format: about a third of the JSON size and several times faster, which matters
//! on the ingest path). Timestamps are stored as nanoseconds. The in-memory types
//! (`Incident`, `AlertRecord`, `AuditEntry`) may change freely; a change to what is
//! stored adds a `…V2` here and a conversion from V1, so old data keeps loading.
//! Leaf enums (statuses, levels, sources) are shared, and postcard stores a variant by
//! its position: their variants may only ever be appended, never reordered or removed.

use jiff::Timestamp;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::alerts::{Alert, AlertState, AlertStatus, Disposition, LabelSet, Source};
use crate::audit::{AuditEntry, Change};
use crate::changes::{ChangeId, ChangeRecord, ChangeStatus};
use crate::incidents::{Hold, Incident, IncidentId, IncidentStatus, Level, Priority, Resolution};
use crate::outbox::{Delivery, DeliveryState, Event, EventKind};
use crate::problems::{Problem, ProblemId, ProblemStatus};
use crate::silences::{Matcher, Op, Silence, SilenceId};
use crate::sla;

const V1: u8 = 1;

/// Encodes a V1 record, into a `Vec` of exactly its size: the record is written into
/// a per-thread scratch buffer and copied out once. Grown from one byte by doubling,
/// a 300-byte alert record took seven reallocations (4 % of the correlation thread's
/// samples while alerts are new) and kept up to twice its size as capacity in the
/// store's overlay until the next checkpoint.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    thread_local! {
        static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let buf = encode_into(record, scratch.take());
        let exact = buf.as_slice().to_vec();
        // A rare large record (an incident with many labels) does not pin its size.
        if buf.capacity() <= 64 * 1024 {
            scratch.set(buf);
        }
        exact
    })
}

/// Encodes a V1 record into `buf` (cleared first): the log's writes reuse one buffer
/// instead of growing a new one by doubling for every batch.
pub fn encode_into<T: Serialize>(record: &T, mut buf: Vec<u8>) -> Vec<u8> {
    buf.clear();
    buf.push(V1);
    postcard::to_extend(record, buf).expect("records serialize infallibly")
}

/// Decodes a record, checking its version byte.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&V1, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unknown record version {v}")),
        None => Err("empty record".into()),
    }
}

/// An alert's content (`alerts` tree).
#[derive(Debug, Serialize, Deserialize)]
pub struct AlertV1 {
    pub source: Source,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub starts_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub ends_at: Option<Timestamp>,
    pub generator_url: Option<String>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub received_at: Timestamp,
}

impl From<&Alert> for AlertV1 {
    fn from(a: &Alert) -> Self {
        AlertV1 {
            source: a.source,
            fingerprint: a.fingerprint.clone(),
            status: a.status,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: a.generator_url.clone(),
            received_at: a.received_at,
        }
    }
}

impl From<AlertV1> for Alert {
    fn from(a: AlertV1) -> Self {
        Alert {
            source: a.source,
            fingerprint: a.fingerprint,
            status: a.status,
            labels: a.labels,
            annotations: a.annotations,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: a.generator_url,
            received_at: a.received_at,
        }
    }
}

/// An alert's state (`alert_state` tree).
#[derive(Debug, Serialize, Deserialize)]
pub struct AlertStateV1 {
    pub status: AlertStatus,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub starts_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub first_seen: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub last_seen: Timestamp,
    pub notifications: u64,
    pub disposition: DispositionV1,
    pub flips: u32,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub flips_since: Timestamp,
}

impl From<&AlertState> for AlertStateV1 {
    fn from(s: &AlertState) -> Self {
        AlertStateV1 {
            status: s.status,
            starts_at: s.starts_at,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            notifications: s.notifications,
            disposition: (&s.disposition).into(),
            flips: s.flips,
            flips_since: s.flips_since,
        }
    }
}

impl From<AlertStateV1> for AlertState {
    fn from(s: AlertStateV1) -> Self {
        AlertState {
            status: s.status,
            starts_at: s.starts_at,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            notifications: s.notifications,
            disposition: s.disposition.into(),
            flips: s.flips,
            flips_since: s.flips_since,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DispositionV1 {
    Attached(u64),
    Dropped { rule: String, reason: String },
    Unattached,
}

impl From<&Disposition> for DispositionV1 {
    fn from(d: &Disposition) -> Self {
        match d {
            Disposition::Attached { incident } => DispositionV1::Attached(incident.0),
            Disposition::Dropped { rule, reason } => DispositionV1::Dropped {
                rule: rule.clone(),
                reason: reason.clone(),
            },
            Disposition::Unattached => DispositionV1::Unattached,
        }
    }
}

impl From<DispositionV1> for Disposition {
    fn from(d: DispositionV1) -> Self {
        match d {
            DispositionV1::Attached(id) => Disposition::Attached {
                incident: IncidentId(id),
            },
            DispositionV1::Dropped { rule, reason } => Disposition::Dropped { rule, reason },
            DispositionV1::Unattached => Disposition::Unattached,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentV1 {
    pub id: u64,
    pub key: String,
    pub title: String,
    pub service: Option<String>,
    pub ci: Option<String>,
    pub impact: Level,
    pub urgency: Level,
    pub priority: Priority,
    pub major: bool,
    pub status: IncidentStatus,
    pub resolution: Option<Resolution>,
    pub opened_by: String,
    pub alerts_total: u64,
    pub alerts_firing: u64,
    pub notifications: u64,
    pub reopened: u32,
    pub previous: Option<u64>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub flapping_since: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub last_flip: Option<Timestamp>,
    pub problem: Option<u64>,
    pub changes: Vec<u64>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub detected_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub opened_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub acknowledged_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub impact_start: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub impact_end: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub resolved_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub closed_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub updated_at: Timestamp,
    pub owner: Option<String>,
    pub assignee: Option<String>,
    pub hold: Option<Hold>,
    pub sla: sla::Clock,
    pub review: Option<String>,
    pub quiet: Option<crate::silences::Quiet>,
    pub workaround: Option<String>,
    /// Written as postcard writes a sequence of pairs (a map has the same encoding):
    /// shared with the incident, not copied.
    pub labels: std::sync::Arc<crate::alerts::LabelSet>,
    pub sinks: Vec<String>,
    pub external: Vec<ExternalRefV1>,
}

/// An incident as [`IncidentV1`] encodes it, borrowed from the incident instead of
/// copied: the log writes every incident a batch changed (each repeat notification
/// changes its counter), and an owned `IncidentV1` copy (strings, the SLA clock, the
/// sinks) was 7 % of the correlation thread under a 1-alert-per-request load. Field
/// for field the same types in postcard (`&str` as `String`, a sequence of ids as
/// `Vec<u64>`); a unit test decodes it as an `IncidentV1`, every field filled, back
/// to the same incident. The only way an incident is encoded.
#[derive(Serialize)]
pub struct IncidentV1Ref<'a> {
    id: u64,
    key: &'a str,
    title: &'a str,
    service: Option<&'a str>,
    ci: Option<&'a str>,
    impact: Level,
    urgency: Level,
    priority: Priority,
    major: bool,
    status: IncidentStatus,
    resolution: &'a Option<Resolution>,
    opened_by: &'a str,
    alerts_total: u64,
    alerts_firing: u64,
    notifications: u64,
    reopened: u32,
    previous: Option<u64>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    flapping_since: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    last_flip: Option<Timestamp>,
    problem: Option<u64>,
    changes: ChangeIds<'a>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    detected_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    opened_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    acknowledged_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    impact_start: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    impact_end: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    resolved_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    closed_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    updated_at: Timestamp,
    owner: Option<&'a str>,
    assignee: Option<&'a str>,
    hold: &'a Option<Hold>,
    sla: &'a sla::Clock,
    review: Option<&'a str>,
    quiet: &'a Option<crate::silences::Quiet>,
    workaround: Option<&'a str>,
    labels: &'a LabelSet,
    sinks: &'a [String],
    external: ExternalRefs<'a>,
}

/// An incident's change ids, written as `Vec<u64>`.
pub struct ChangeIds<'a>(&'a [ChangeId]);

impl Serialize for ChangeIds<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|c| c.0))
    }
}

/// An incident's external references, written as `Vec<ExternalRefV1>`.
pub struct ExternalRefs<'a>(&'a [crate::outbox::ExternalRef]);

#[derive(Serialize)]
struct ExternalRefV1Ref<'a> {
    sink: &'a str,
    id: &'a str,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    at: Timestamp,
}

impl Serialize for ExternalRefs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|r| ExternalRefV1Ref {
            sink: &r.sink,
            id: &r.id,
            at: r.at,
        }))
    }
}

impl<'a> From<&'a Incident> for IncidentV1Ref<'a> {
    fn from(i: &'a Incident) -> Self {
        IncidentV1Ref {
            id: i.id.0,
            key: &i.key,
            title: &i.title,
            service: i.service.as_deref(),
            ci: i.ci.as_deref(),
            impact: i.impact,
            urgency: i.urgency,
            priority: i.priority,
            major: i.major,
            status: i.status,
            resolution: &i.resolution,
            opened_by: &i.opened_by,
            alerts_total: i.alerts_total,
            alerts_firing: i.alerts_firing,
            notifications: i.notifications,
            reopened: i.reopened,
            previous: i.previous.map(|p| p.0),
            flapping_since: i.flapping_since,
            last_flip: i.last_flip,
            problem: i.problem.map(|p| p.0),
            changes: ChangeIds(&i.changes),
            detected_at: i.detected_at,
            opened_at: i.opened_at,
            acknowledged_at: i.acknowledged_at,
            impact_start: i.impact_start,
            impact_end: i.impact_end,
            resolved_at: i.resolved_at,
            closed_at: i.closed_at,
            updated_at: i.updated_at,
            owner: i.owner.as_deref(),
            assignee: i.assignee.as_deref(),
            hold: &i.hold,
            sla: &i.sla,
            review: i.review.as_deref(),
            quiet: &i.quiet,
            workaround: i.workaround.as_deref(),
            labels: &i.labels,
            sinks: &i.sinks,
            external: ExternalRefs(&i.external),
        }
    }
}

impl From<IncidentV1> for Incident {
    fn from(i: IncidentV1) -> Self {
        Incident {
            id: IncidentId(i.id),
            key: i.key,
            title: i.title,
            service: i.service,
            ci: i.ci,
            impact: i.impact,
            urgency: i.urgency,
            priority: i.priority,
            major: i.major,
            status: i.status,
            resolution: i.resolution,
            opened_by: i.opened_by,
            alerts_total: i.alerts_total,
            alerts_firing: i.alerts_firing,
            notifications: i.notifications,
            reopened: i.reopened,
            previous: i.previous.map(IncidentId),
            flapping_since: i.flapping_since,
            last_flip: i.last_flip,
            problem: i.problem.map(ProblemId),
            changes: i.changes.into_iter().map(ChangeId).collect(),
            detected_at: i.detected_at,
            opened_at: i.opened_at,
            acknowledged_at: i.acknowledged_at,
            impact_start: i.impact_start,
            impact_end: i.impact_end,
            resolved_at: i.resolved_at,
            closed_at: i.closed_at,
            updated_at: i.updated_at,
            owner: i.owner,
            assignee: i.assignee,
            hold: i.hold,
            sla: i.sla,
            review: i.review,
            quiet: i.quiet,
            workaround: i.workaround,
            labels: i.labels,
            sinks: i.sinks,
            external: i
                .external
                .into_iter()
                .map(|r| crate::outbox::ExternalRef {
                    sink: r.sink,
                    id: r.id,
                    at: r.at,
                })
                .collect(),
        }
    }
}

/// A problem (`problems` tree).
#[derive(Debug, Serialize, Deserialize)]
pub struct ProblemV1 {
    pub id: u64,
    pub key: String,
    pub title: String,
    pub status: ProblemStatus,
    pub opened_by: String,
    pub incidents: Vec<u64>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub opened_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub updated_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub resolved_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub closed_at: Option<Timestamp>,
}

impl From<&Problem> for ProblemV1 {
    fn from(p: &Problem) -> Self {
        ProblemV1 {
            id: p.id.0,
            key: p.key.clone(),
            title: p.title.clone(),
            status: p.status,
            opened_by: p.opened_by.clone(),
            incidents: p.incidents.iter().map(|i| i.0).collect(),
            root_cause: p.root_cause.clone(),
            workaround: p.workaround.clone(),
            opened_at: p.opened_at,
            updated_at: p.updated_at,
            resolved_at: p.resolved_at,
            closed_at: p.closed_at,
        }
    }
}

impl From<ProblemV1> for Problem {
    fn from(p: ProblemV1) -> Self {
        Problem {
            id: ProblemId(p.id),
            key: p.key,
            title: p.title,
            status: p.status,
            opened_by: p.opened_by,
            incidents: p.incidents.into_iter().map(IncidentId).collect(),
            root_cause: p.root_cause,
            workaround: p.workaround,
            opened_at: p.opened_at,
            updated_at: p.updated_at,
            resolved_at: p.resolved_at,
            closed_at: p.closed_at,
        }
    }
}

/// A change (`changes` tree).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeV1 {
    pub id: u64,
    pub external_id: Option<String>,
    pub service: String,
    pub summary: String,
    pub status: ChangeStatus,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub window_start: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub window_end: Timestamp,
    pub recorded_by: String,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub recorded_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub updated_at: Timestamp,
}

impl From<&ChangeRecord> for ChangeV1 {
    fn from(c: &ChangeRecord) -> Self {
        ChangeV1 {
            id: c.id.0,
            external_id: c.external_id.clone(),
            service: c.service.clone(),
            summary: c.summary.clone(),
            status: c.status,
            window_start: c.window_start,
            window_end: c.window_end,
            recorded_by: c.recorded_by.clone(),
            recorded_at: c.recorded_at,
            updated_at: c.updated_at,
        }
    }
}

impl From<ChangeV1> for ChangeRecord {
    fn from(c: ChangeV1) -> Self {
        ChangeRecord {
            id: ChangeId(c.id),
            external_id: c.external_id,
            service: c.service,
            summary: c.summary,
            status: c.status,
            window_start: c.window_start,
            window_end: c.window_end,
            recorded_by: c.recorded_by,
            recorded_at: c.recorded_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuditEntryV1 {
    pub seq: u64,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub at: Timestamp,
    pub actor: String,
    pub record: String,
    pub action: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&AuditEntry> for AuditEntryV1 {
    fn from(e: &AuditEntry) -> Self {
        AuditEntryV1 {
            seq: e.seq,
            at: e.at,
            actor: e.actor.clone(),
            record: e.change.record.clone(),
            action: e.change.action.clone(),
            from: e.change.from.clone(),
            to: e.change.to.clone(),
            detail: e.change.detail.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

impl From<AuditEntryV1> for AuditEntry {
    fn from(e: AuditEntryV1) -> Self {
        AuditEntry {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            change: Change {
                record: e.record,
                action: e.action,
                from: e.from,
                to: e.to,
                detail: e.detail,
            },
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// A silence (`silences` tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SilenceV1 {
    pub id: u64,
    /// (label name, operator, value).
    pub matchers: Vec<(String, Op, String)>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub starts_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub created_at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub updated_at: Timestamp,
}

impl From<&Silence> for SilenceV1 {
    fn from(s: &Silence) -> Self {
        SilenceV1 {
            id: s.id.0,
            matchers: s
                .matchers
                .iter()
                .map(|m| (m.name.clone(), m.op, m.value.clone()))
                .collect(),
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

impl TryFrom<SilenceV1> for Silence {
    type Error = String;
    fn try_from(s: SilenceV1) -> Result<Self, String> {
        let matchers = s
            .matchers
            .iter()
            .map(|(name, op, value)| Matcher::new(name, *op, value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Silence {
            id: SilenceId(s.id),
            matchers,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            created_by: s.created_by,
            comment: s.comment,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
    }
}

/// What a sink created for an incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalRefV1 {
    pub sink: String,
    pub id: String,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub at: Timestamp,
}

/// An outbox event (`outbox` tree, and in the log).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEventV1 {
    pub seq: u64,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub at: Timestamp,
    pub kind: EventKind,
    pub record: String,
    pub detail: String,
    pub by: String,
    pub notify: Vec<String>,
    pub quiet: Option<String>,
}

impl From<&Event> for OutboxEventV1 {
    fn from(e: &Event) -> Self {
        OutboxEventV1 {
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            record: e.record.clone(),
            detail: e.detail.clone(),
            by: e.by.clone(),
            notify: e.notify.clone(),
            quiet: e.quiet.clone(),
        }
    }
}

impl From<OutboxEventV1> for Event {
    fn from(e: OutboxEventV1) -> Self {
        Event {
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            record: e.record,
            detail: e.detail,
            by: e.by,
            notify: e.notify,
            quiet: e.quiet,
        }
    }
}

/// An event's delivery to one sink (`deliveries` tree, and in the log).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryV1 {
    pub seq: u64,
    pub sink: String,
    pub to: Option<String>,
    pub state: DeliveryState,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::required")]
    pub since: Timestamp,
    pub attempts: u32,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub last_attempt_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub next_attempt_at: Option<Timestamp>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub response: Option<String>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub delivered_at: Option<Timestamp>,
    #[serde(with = "jiff::fmt::serde::timestamp::nanosecond::optional")]
    pub started_at: Option<Timestamp>,
}

impl From<&Delivery> for DeliveryV1 {
    fn from(d: &Delivery) -> Self {
        DeliveryV1 {
            seq: d.seq,
            sink: d.sink.clone(),
            to: d.to.clone(),
            state: d.state,
            since: d.since,
            attempts: d.attempts,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            status: d.status,
            error: d.error.clone(),
            response: d.response.clone(),
            delivered_at: d.delivered_at,
            started_at: d.started_at,
        }
    }
}

impl From<DeliveryV1> for Delivery {
    fn from(d: DeliveryV1) -> Self {
        Delivery {
            seq: d.seq,
            sink: d.sink,
            to: d.to,
            state: d.state,
            since: d.since,
            attempts: d.attempts,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            status: d.status,
            error: d.error,
            response: d.response,
            delivered_at: d.delivered_at,
            started_at: d.started_at,
        }
    }
}

/// One committed batch as the write-ahead log keeps it: every record it changed, the
/// audit entries it appended and the incident counter after it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WalBatchV1 {
    /// Encoded `AlertV1` records by fingerprint.
    pub contents: Vec<(String, Vec<u8>)>,
    pub states: Vec<(String, AlertStateV1)>,
    pub incidents: Vec<IncidentV1>,
    pub keys: Vec<(String, u64)>,
    pub links: Vec<(u64, String)>,
    /// Encoded `AuditEntryV1` records, in order.
    pub audit: Vec<Vec<u8>>,
    pub next_incident: u64,
    pub problems: Vec<ProblemV1>,
    pub problem_keys: Vec<(String, u64)>,
    pub next_problem: u64,
    pub changes: Vec<ChangeV1>,
    pub change_refs: Vec<(String, u64)>,
    pub next_change: u64,
    pub outbox: Vec<OutboxEventV1>,
    /// New deliveries (of this batch's events) and changed ones.
    pub deliveries: Vec<DeliveryV1>,
    pub silences: Vec<SilenceV1>,
    /// ((watcher, file fingerprint), offset).
    pub log_offsets: Vec<((String, String), u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_are_refused() {
        assert!(decode::<AuditEntryV1>(&[]).is_err());
        let err = decode::<AuditEntryV1>(&[9, b'{', b'}']).unwrap_err();
        assert!(err.contains("version 9"), "{err}");
    }

    #[test]
    fn alert_and_incident_records_round_trip() {
        use crate::incidents::{IncidentSpec, ResolutionCode};
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let alert = Alert {
            source: Source::Alertmanager,
            fingerprint: "abc".into(),
            status: AlertStatus::Resolved,
            labels: [("alertname".to_string(), "X".to_string())].into(),
            annotations: LabelSet::new(),
            starts_at: t("2026-01-01T00:00:00.123456789Z"),
            ends_at: Some(t("2026-01-01T01:00:00Z")),
            generator_url: None,
            received_at: t("2026-01-01T01:00:01Z"),
        };
        let back: Alert = decode::<AlertV1>(&encode(&AlertV1::from(&alert)))
            .unwrap()
            .into();
        assert_eq!(back, alert);
        for disposition in [
            Disposition::Attached {
                incident: IncidentId(7),
            },
            Disposition::Dropped {
                rule: "r".into(),
                reason: "why".into(),
            },
            Disposition::Unattached,
        ] {
            let state = AlertState {
                status: AlertStatus::Firing,
                starts_at: t("2026-01-01T00:00:00Z"),
                first_seen: t("2026-01-01T00:00:01Z"),
                last_seen: t("2026-01-01T01:00:01Z"),
                notifications: 3,
                disposition,
                flips: 2,
                flips_since: t("2026-01-01T00:30:00.5Z"),
            };
            let back: AlertState = decode::<AlertStateV1>(&encode(&AlertStateV1::from(&state)))
                .unwrap()
                .into();
            assert_eq!(back, state);
        }
        let spec = IncidentSpec {
            key: "k".into(),
            title: "t".into(),
            service: Some("s".into()),
            ci: None,
            impact: Level::High,
            urgency: Level::Low,
            major: true,
            sinks: vec!["chat".into()],
        };
        let (mut inc, _) = Incident::open(
            IncidentId(42),
            &spec,
            "default",
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T00:00:02Z"),
            &crate::incidents::Policy::default(),
        );
        inc.resolve(
            ResolutionCode::Fixed,
            "note".into(),
            t("2026-01-01T00:30:00Z"),
            t("2026-01-01T00:31:00Z"),
        );
        inc.labels = std::sync::Arc::new([("team".into(), "db".into())].into());
        inc.add_external_ref(crate::outbox::ExternalRef {
            sink: "chat".into(),
            id: "C1/1700000000.000100".into(),
            at: t("2026-01-01T00:00:03Z"),
        });
        let back: Incident = decode::<IncidentV1>(&encode(&IncidentV1Ref::from(&inc)))
            .unwrap()
            .into();
        assert_eq!(back, inc);
        // With every optional field filled: the borrowed view decodes as the record
        // (postcard is not self-describing, so a field of another type would not).
        inc.owner = Some("alice".into());
        inc.assignee = Some("bob".into());
        inc.review = Some("reviewed".into());
        inc.workaround = Some("restart".into());
        inc.changes = vec![ChangeId(3), ChangeId(9)];
        inc.previous = Some(IncidentId(41));
        inc.problem = Some(ProblemId(2));
        inc.flapping_since = Some(t("2026-01-01T00:10:00Z"));
        inc.last_flip = Some(t("2026-01-01T00:11:00Z"));
        inc.acknowledged_at = Some(t("2026-01-01T00:05:00Z"));
        inc.closed_at = Some(t("2026-01-01T00:40:00Z"));
        inc.hold = Some(Hold {
            reason: crate::incidents::HoldReason::AwaitingVendor,
            since: t("2026-01-01T00:20:00Z"),
        });
        inc.quiet = Some(crate::silences::Quiet {
            reason: crate::silences::QuietReason::Change,
            by: "CHG-3".into(),
            since: t("2026-01-01T00:00:00Z"),
            until: t("2026-01-01T02:00:00Z"),
        });
        let record = encode(&IncidentV1Ref::from(&inc));
        let back: Incident = decode::<IncidentV1>(&record).unwrap().into();
        assert_eq!(back, inc);
    }

    #[test]
    fn labels_are_encoded_as_the_sequence_of_pairs_schema_10_wrote() {
        let pairs: Vec<(String, String)> = vec![
            ("alertname".into(), "Down".into()),
            ("team".into(), "db".into()),
        ];
        let map: crate::alerts::LabelSet = pairs.iter().cloned().collect();
        assert_eq!(encode(&std::sync::Arc::new(map.clone())), encode(&pairs));
        let back: std::sync::Arc<crate::alerts::LabelSet> = decode(&encode(&pairs)).unwrap();
        assert_eq!(*back, map);
    }

    #[test]
    fn audit_entry_round_trips() {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let e = AuditEntry::chain(
            1,
            at,
            "system",
            Change::new("INC-1", "opened"),
            crate::audit::GENESIS_HASH,
        );
        let bytes = encode(&AuditEntryV1::from(&e));
        let back: AuditEntry = decode::<AuditEntryV1>(&bytes).unwrap().into();
        assert_eq!(back, e);
        assert!(back.is_intact());
    }
}
