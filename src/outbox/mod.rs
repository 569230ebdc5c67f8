//! The outbox: events for delivery (chat, ticketing, email), written in the same
//! atomic store commit as the record change they announce, so that an event exists
//! exactly when its change does, each with one `Delivery` per sink routing chose.
//!
//! This module is pure: the event and delivery types and what an attempt's outcome
//! does to a delivery (retry with backoff, dead letter, delivered). Correlation drafts
//! events and routes them (`routing`); the store numbers them (`seq`, without gaps,
//! in commit order) and keeps their deliveries; `worker` (IO) attempts the pending
//! ones through `crate::sinks` and hands each outcome back to correlation to store.
//! Events: an incident opened, updated, reopened, acknowledged, resolved, closed,
//! cancelled, flapping started and ended, a problem opened, an SLA breach, an
//! escalation (alerts merely joining an incident are not events: a storm is one).

pub mod routing;
pub mod worker;

use std::str::FromStr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
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
    /// A person changed priority, assignee, owner or the major flag, started work,
    /// put it on hold or commented (`detail` says what).
    Updated,
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
            EventKind::Updated => "updated",
        }
    }

    pub const ALL: [EventKind; 12] = [
        EventKind::Opened,
        EventKind::Updated,
        EventKind::Acknowledged,
        EventKind::Escalated,
        EventKind::SlaBreached,
        EventKind::FlappingStarted,
        EventKind::FlappingEnded,
        EventKind::Resolved,
        EventKind::Reopened,
        EventKind::Closed,
        EventKind::Cancelled,
        EventKind::ProblemOpened,
    ];

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
            ("status", Some("in_progress" | "on_hold")) if incident => EventKind::Updated,
            ("priority" | "assignee" | "owner" | "major" | "comment", _) if incident => {
                EventKind::Updated
            }
            _ => return None,
        })
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "expected one of {}, got {s:?}",
                    EventKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })
    }
}

/// What an `updated` event says changed: `priority P3 → P1`, `comment: …`.
pub fn updated_detail(change: &crate::audit::Change) -> String {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    match change.action.as_str() {
        "comment" => format!("comment: {}", change.detail.clone().unwrap_or_default()),
        action => {
            let mut d = format!("{action} {} → {}", text(&change.from), text(&change.to));
            // A hold's reason and note, a start's note.
            if let Some(why) = change.detail.as_deref().filter(|w| !w.is_empty()) {
                d.push_str(&format!(" ({why})"));
            }
            d
        }
    }
}

/// Where an event goes: a sink, and optionally a recipient the policy named instead of
/// the sink's own (a room, a channel, an address): `sink` or `sink:recipient`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub sink: String,
    pub to: Option<String>,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (sink, to) = match s.split_once(':') {
            Some((sink, to)) => (sink, Some(to.to_string())),
            None => (s, None),
        };
        if sink.is_empty() || to.as_deref() == Some("") {
            return Err(format!("expected a sink name or sink:recipient, got {s:?}"));
        }
        Ok(Target {
            sink: sink.to_string(),
            to,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.to {
            Some(to) => write!(f, "{}:{to}", self.sink),
            None => f.write_str(&self.sink),
        }
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
    /// Who made the change (`token:alice`, a rule, `system`).
    pub by: String,
    /// Targets named by the policy that raised it (escalation levels).
    pub notify: Vec<String>,
    /// Why it must not page (a silence, a maintenance or change window): only routes
    /// that take quiet events deliver it.
    pub quiet: Option<String>,
    /// Where it goes, set by routing as the batch leaves correlation.
    pub targets: Vec<Target>,
}

/// A stored outbox event. Immutable once written; its deliveries change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the outbox, from 1, without gaps.
    pub seq: u64,
    pub at: Timestamp,
    pub kind: EventKind,
    pub record: String,
    pub detail: String,
    pub by: String,
    pub notify: Vec<String>,
    pub quiet: Option<String>,
}

impl Event {
    /// The event numbered, and its deliveries, one pending per target.
    pub fn numbered(seq: u64, d: Draft) -> (Event, Vec<Delivery>) {
        let deliveries = d
            .targets
            .into_iter()
            .map(|t| Delivery::pending(seq, t, d.at))
            .collect();
        let event = Event {
            seq,
            at: d.at,
            kind: d.kind,
            record: d.record,
            detail: d.detail,
            by: d.by,
            notify: d.notify,
            quiet: d.quiet,
        };
        (event, deliveries)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet delivered; attempted again at `next_attempt_at`.
    Pending,
    Delivered,
    /// Rejected for good, or given up on after the maximum age: kept with the last
    /// answer until an operator retries it.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "dead" => Ok(DeliveryState::Dead),
            _ => Err(format!("expected pending, delivered or dead, got {s:?}")),
        }
    }
}

/// Response bodies kept on a delivery at most (a dead letter keeps the sink's answer).
pub const KEPT_BODY_BYTES: usize = 4096;

/// One event's delivery to one target: store tree `deliveries`, keyed by seq and
/// sink. Only the outbox worker's outcomes and an operator's retry change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub seq: u64,
    pub sink: String,
    /// The recipient the policy named instead of the sink's own.
    pub to: Option<String>,
    pub state: DeliveryState,
    /// Where its maximum age counts from: the event's time, or an operator's retry.
    pub since: Timestamp,
    pub attempts: u32,
    pub last_attempt_at: Option<Timestamp>,
    /// When a pending delivery is tried again (`None`: at once).
    pub next_attempt_at: Option<Timestamp>,
    /// The last answer's HTTP status (or SMTP code).
    pub status: Option<u16>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The last failed answer's body, at most `KEPT_BODY_BYTES`.
    pub response: Option<String>,
    pub delivered_at: Option<Timestamp>,
    /// When an attempt that creates something at the sink (an incident's first chat
    /// message) last began, recorded before it was sent: after a crash, the sink looks
    /// for what that attempt may have created before creating it again.
    pub started_at: Option<Timestamp>,
}

/// How an attempt ended, as the sink saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `reference` is what the sink created for the incident (a message or
    /// thread id, a ticket key), stored on the incident.
    Delivered { reference: Option<String> },
    /// Worth trying again: a timeout, a connection error, 5xx, 429. `after`: the
    /// sink's `Retry-After`.
    Retry {
        status: Option<u16>,
        error: String,
        body: Option<String>,
        after: Option<Duration>,
    },
    /// Refused for good (other 4xx): dead letter.
    Rejected {
        status: Option<u16>,
        error: String,
        body: Option<String>,
    },
}

/// When to try again: exponential backoff with jitter, capped, up to an age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The delay never grows past this.
    pub max: Duration,
    /// An event older than this is given up on (dead letter) at its next failure.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// The longest `Retry-After` honoured; a sink asking for more is asked again then.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl RetryPolicy {
    /// The delay before attempt `attempts + 1` after `attempts` failures: doubling
    /// from `initial`, capped at `max`, then "equal jitter" (half fixed, half random,
    /// `jitter` in [0, 1)) so that deliveries failing together do not retry together.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(30));
        let d = doubled.min(self.max);
        d / 2 + d.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn kept(body: &Option<String>) -> Option<String> {
    body.as_ref().map(|b| {
        if b.len() <= KEPT_BODY_BYTES {
            return b.clone();
        }
        let mut end = KEPT_BODY_BYTES;
        while !b.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &b[..end])
    })
}

impl Delivery {
    pub fn pending(seq: u64, target: Target, since: Timestamp) -> Delivery {
        Delivery {
            seq,
            sink: target.sink,
            to: target.to,
            state: DeliveryState::Pending,
            since,
            attempts: 0,
            last_attempt_at: None,
            next_attempt_at: None,
            status: None,
            error: None,
            response: None,
            delivered_at: None,
            started_at: None,
        }
    }

    pub fn target(&self) -> Target {
        Target {
            sink: self.sink.clone(),
            to: self.to.clone(),
        }
    }

    /// Records an attempt at `now`.
    pub fn attempted(
        &mut self,
        outcome: &Outcome,
        now: Timestamp,
        policy: &RetryPolicy,
        jitter: f64,
    ) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_attempt_at = Some(now);
        match outcome {
            Outcome::Delivered { .. } => {
                self.state = DeliveryState::Delivered;
                self.delivered_at = Some(now);
                self.next_attempt_at = None;
                self.error = None;
                self.response = None;
                self.status = None;
            }
            Outcome::Rejected {
                status,
                error,
                body,
            } => {
                self.state = DeliveryState::Dead;
                self.next_attempt_at = None;
                self.status = *status;
                self.error = Some(format!("rejected: {error}"));
                self.response = kept(body);
            }
            Outcome::Retry {
                status,
                error,
                body,
                after,
            } => {
                self.status = *status;
                self.response = kept(body);
                let delay = match after {
                    Some(a) => (*a).min(MAX_RETRY_AFTER),
                    None => policy.delay(self.attempts, jitter),
                };
                let next = now.saturating_add(signed(delay)).unwrap_or(now);
                let give_up = self
                    .since
                    .saturating_add(signed(policy.max_age))
                    .unwrap_or(now);
                if next > give_up {
                    self.state = DeliveryState::Dead;
                    self.next_attempt_at = None;
                    self.error = Some(format!(
                        "gave up after {} attempts over {}: {error}",
                        self.attempts,
                        jiff::SignedDuration::from_secs(now.duration_since(self.since).as_secs())
                    ));
                } else {
                    self.state = DeliveryState::Pending;
                    self.next_attempt_at = Some(next);
                    self.error = Some(error.clone());
                }
            }
        }
    }

    /// An operator's retry of a dead letter at `now`: pending again, attempted at
    /// once, with a fresh count and age. `None` if it is not dead.
    pub fn requeue(&mut self, now: Timestamp) -> Option<()> {
        if self.state != DeliveryState::Dead {
            return None;
        }
        self.state = DeliveryState::Pending;
        self.since = now;
        self.attempts = 0;
        self.next_attempt_at = None;
        Some(())
    }
}

/// What a sink created for an incident (a chat message or thread, a ticket), kept on
/// the incident so later events update it instead of creating another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRef {
    pub sink: String,
    /// The sink's own id: `channel/ts` on Slack, an event id on Matrix, a Message-ID.
    pub id: String,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn retry(after: Option<Duration>) -> Outcome {
        Outcome::Retry {
            status: Some(503),
            error: "503 Service Unavailable".into(),
            body: Some("busy".into()),
            after,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let p = RetryPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(
            p.delay(1, 0.999_999),
            Duration::from_millis(2000) - Duration::from_nanos(1000)
        );
        assert_eq!(p.delay(2, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(6));
        assert_eq!(p.delay(10, 0.0), Duration::from_secs(30));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn an_attempt_moves_the_delivery_on() {
        let p = RetryPolicy::default();
        let t0 = ts("2026-01-01T00:00:00Z");
        let mut d = Delivery::pending(7, "chat".parse().unwrap(), t0);
        d.attempted(&retry(None), t0, &p, 0.0);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 1);
        assert_eq!(d.next_attempt_at, Some(ts("2026-01-01T00:00:00.5Z")));
        assert_eq!(d.response.as_deref(), Some("busy"));
        d.attempted(&retry(Some(Duration::from_secs(120))), t0, &p, 0.0);
        assert_eq!(
            d.next_attempt_at,
            Some(ts("2026-01-01T00:02:00Z")),
            "Retry-After honoured"
        );
        d.attempted(&Outcome::Delivered { reference: None }, t0, &p, 0.0);
        assert_eq!(d.state, DeliveryState::Delivered);
        assert_eq!((d.error.as_deref(), d.response.as_deref()), (None, None));
        assert_eq!(d.delivered_at, Some(t0));
    }

    #[test]
    fn rejected_is_a_dead_letter_with_the_answer_kept_and_retry_revives_it() {
        let p = RetryPolicy::default();
        let t0 = ts("2026-01-01T00:00:00Z");
        let mut d = Delivery::pending(1, "chat:#ops".parse().unwrap(), t0);
        assert_eq!(d.to.as_deref(), Some("#ops"));
        let big = "x".repeat(10_000);
        d.attempted(
            &Outcome::Rejected {
                status: Some(400),
                error: "400 Bad Request".into(),
                body: Some(big),
            },
            t0,
            &p,
            0.3,
        );
        assert_eq!(d.state, DeliveryState::Dead);
        assert_eq!(d.status, Some(400));
        assert!(d.response.as_ref().unwrap().len() <= KEPT_BODY_BYTES + 3);
        let later = ts("2026-03-01T00:00:00Z");
        assert!(d.requeue(later).is_some());
        assert_eq!(
            (d.state, d.attempts, d.since),
            (DeliveryState::Pending, 0, later)
        );
        assert!(d.requeue(later).is_none(), "only a dead letter is requeued");
    }

    #[test]
    fn a_delivery_past_its_max_age_is_given_up() {
        let p = RetryPolicy {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(300),
            max_age: Duration::from_secs(600),
        };
        let t0 = ts("2026-01-01T00:00:00Z");
        let mut d = Delivery::pending(1, "chat".parse().unwrap(), t0);
        d.attempted(&retry(None), ts("2026-01-01T00:05:00Z"), &p, 0.0);
        assert_eq!(
            d.state,
            DeliveryState::Pending,
            "00:05:30 is inside the age"
        );
        d.attempted(&retry(None), ts("2026-01-01T00:09:50Z"), &p, 0.0);
        assert_eq!(d.state, DeliveryState::Dead);
        assert!(
            d.error
                .as_ref()
                .unwrap()
                .starts_with("gave up after 2 attempts"),
            "{:?}",
            d.error
        );
    }

    #[test]
    fn targets_parse_and_events_name_their_kind() {
        assert_eq!(
            "mail:dba@example.com"
                .parse::<Target>()
                .unwrap()
                .to_string(),
            "mail:dba@example.com"
        );
        assert!(":x".parse::<Target>().is_err());
        assert!("x:".parse::<Target>().is_err());
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
        }
        assert!("nope".parse::<EventKind>().unwrap_err().contains("opened"));
        let hold = crate::audit::Change::new("INC-1", "status")
            .from_to("new", "on_hold")
            .detail("awaiting_vendor: case 123");
        assert_eq!(
            updated_detail(&hold),
            "status new → on_hold (awaiting_vendor: case 123)"
        );
        let p = crate::audit::Change::new("INC-1", "priority").from_to("P3", "P1");
        assert_eq!(updated_detail(&p), "priority P3 → P1");
    }
}
