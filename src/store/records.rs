//! Versioned record types: the on-disk form of every stored value.
//!
//! Each value is one version byte followed by the record's JSON. The in-memory types
//! (`Incident`, `AlertRecord`, `AuditEntry`) may change freely; a change to what is
//! stored adds a `…V2` here and a conversion from V1, so old data keeps loading.
//! Leaf enums (statuses, levels) are shared: their stored spellings are fixed.

use jiff::Timestamp;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::alerts::{Alert, AlertRecord, AlertStatus, Disposition, LabelSet, Source};
use crate::audit::{AuditEntry, Change};
use crate::incidents::{Incident, IncidentId, IncidentStatus, Level, Priority, Resolution};

const V1: u8 = 1;

/// Encodes a V1 record.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(V1);
    serde_json::to_writer(&mut out, record).expect("records serialize infallibly");
    out
}

/// Decodes a record, checking its version byte.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&V1, body)) => serde_json::from_slice(body).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unknown record version {v}")),
        None => Err("empty record".into()),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AlertRecordV1 {
    pub source: Source,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub generator_url: Option<String>,
    pub received_at: Timestamp,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub notifications: u64,
    pub disposition: Disposition,
}

impl From<&AlertRecord> for AlertRecordV1 {
    fn from(r: &AlertRecord) -> Self {
        let a = &r.alert;
        AlertRecordV1 {
            source: a.source,
            fingerprint: a.fingerprint.clone(),
            status: a.status,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: a.generator_url.clone(),
            received_at: a.received_at,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            notifications: r.notifications,
            disposition: r.disposition.clone(),
        }
    }
}

impl From<AlertRecordV1> for AlertRecord {
    fn from(r: AlertRecordV1) -> Self {
        AlertRecord {
            alert: Alert {
                source: r.source,
                fingerprint: r.fingerprint,
                status: r.status,
                labels: r.labels,
                annotations: r.annotations,
                starts_at: r.starts_at,
                ends_at: r.ends_at,
                generator_url: r.generator_url,
                received_at: r.received_at,
            },
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            notifications: r.notifications,
            disposition: r.disposition,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentV1 {
    pub id: IncidentId,
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
    pub detected_at: Timestamp,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub impact_start: Timestamp,
    pub impact_end: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl From<&Incident> for IncidentV1 {
    fn from(i: &Incident) -> Self {
        IncidentV1 {
            id: i.id,
            key: i.key.clone(),
            title: i.title.clone(),
            service: i.service.clone(),
            ci: i.ci.clone(),
            impact: i.impact,
            urgency: i.urgency,
            priority: i.priority,
            major: i.major,
            status: i.status,
            resolution: i.resolution.clone(),
            opened_by: i.opened_by.clone(),
            alerts_total: i.alerts_total,
            alerts_firing: i.alerts_firing,
            notifications: i.notifications,
            reopened: i.reopened,
            detected_at: i.detected_at,
            opened_at: i.opened_at,
            acknowledged_at: i.acknowledged_at,
            impact_start: i.impact_start,
            impact_end: i.impact_end,
            resolved_at: i.resolved_at,
            closed_at: i.closed_at,
            updated_at: i.updated_at,
        }
    }
}

impl From<IncidentV1> for Incident {
    fn from(i: IncidentV1) -> Self {
        Incident {
            id: i.id,
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
            detected_at: i.detected_at,
            opened_at: i.opened_at,
            acknowledged_at: i.acknowledged_at,
            impact_start: i.impact_start,
            impact_end: i.impact_end,
            resolved_at: i.resolved_at,
            closed_at: i.closed_at,
            updated_at: i.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuditEntryV1 {
    pub seq: u64,
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
