//! The outbox: events for delivery (chat, ticketing, email), written in the same
//! atomic store commit as the record change they announce, so that an event exists
//! exactly when its change does.
//!
//! Pure: the event types. Correlation drafts them, the store numbers and keeps them
//! (`seq`, without gaps, in commit order); the delivery worker (sinks) reads them in
//! order. Events: an incident opened, reopened, acknowledged, resolved, closed,
//! cancelled, flapping started and ended, a problem opened, an SLA breach, an
//! escalation (alerts merely joining an incident are not events: a storm is one).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An SLA target was missed (`detail`: respond or resolve).
    SlaBreached,
    /// An unacknowledged incident reached an escalation level; `notify` names whom
    /// the level tells.
    Escalated,
    Opened,
    Reopened,
    Acknowledged,
    Resolved,
    Closed,
    Cancelled,
    FlappingStarted,
    FlappingEnded,
    ProblemOpened,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SlaBreached => "sla_breached",
            EventKind::Escalated => "escalated",
            EventKind::Opened => "opened",
            EventKind::Reopened => "reopened",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Resolved => "resolved",
            EventKind::Closed => "closed",
            EventKind::Cancelled => "cancelled",
            EventKind::FlappingStarted => "flapping_started",
            EventKind::FlappingEnded => "flapping_ended",
            EventKind::ProblemOpened => "problem_opened",
        }
    }

    /// The event an audited change of an incident or problem announces, if any (SLA
    /// breaches and escalations are drafted where they are found, with their targets).
    pub fn of_change(change: &crate::audit::Change) -> Option<EventKind> {
        let incident = change.record.starts_with("INC-");
        Some(match (change.action.as_str(), change.to.as_deref()) {
            ("opened", _) if incident => EventKind::Opened,
            ("opened", _) if change.record.starts_with("PRB-") => EventKind::ProblemOpened,
            ("reopened", _) if incident => EventKind::Reopened,
            ("resolved", _) if incident => EventKind::Resolved,
            ("status", Some("acknowledged")) if incident => EventKind::Acknowledged,
            ("status", Some("closed")) if incident => EventKind::Closed,
            ("status", Some("cancelled")) if incident => EventKind::Cancelled,
            ("flapping_started", _) => EventKind::FlappingStarted,
            ("flapping_ended", _) => EventKind::FlappingEnded,
            _ => return None,
        })
    }
}

/// An event before the store numbered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub at: Timestamp,
    pub kind: EventKind,
    /// The record it is about (`INC-3`).
    pub record: String,
    pub detail: String,
    /// Targets named by the policy that raised it (escalation levels).
    pub notify: Vec<String>,
    /// Why it must not page (a silence, a maintenance or change window): delivery
    /// records it without notifying anyone.
    pub quiet: Option<String>,
}

/// A stored outbox event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the outbox, from 1, without gaps.
    pub seq: u64,
    pub at: Timestamp,
    pub kind: EventKind,
    pub record: String,
    pub detail: String,
    pub notify: Vec<String>,
    pub quiet: Option<String>,
}

impl Event {
    pub fn numbered(seq: u64, d: Draft) -> Event {
        Event {
            seq,
            at: d.at,
            kind: d.kind,
            record: d.record,
            detail: d.detail,
            notify: d.notify,
            quiet: d.quiet,
        }
    }
}
