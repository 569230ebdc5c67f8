//! The incident lifecycle people drive: acknowledge, start, hold, resolve, close,
//! cancel, reopen, comment and field updates, each checked against the current status;
//! and the service-level clock's breaches and escalations.
//!
//! ```text
//!   new ──ack──► acknowledged ──start──► in_progress ──resolve──► resolved ──close──► closed
//!    │  └─────────────start──────────────────▲  │                    │
//!    │            hold ◄──────────────────────┘  │                 reopen (within the window)
//!    └──► on_hold ──start──► in_progress         │
//!  any open status ──cancel──► cancelled ◄────────┘
//! ```
//!
//! Pure like the rest of the core: time comes in, every change comes out as an audit
//! [`Change`]; a refused action changes nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Hold, Incident, IncidentStatus, Level, Policy, ResolutionCode};
use crate::audit::Change;
use crate::sla;

/// Why an incident waits (its SLA clocks pause meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    AwaitingVendor,
    AwaitingCustomer,
    AwaitingChange,
}

impl HoldReason {
    pub const ALL: [HoldReason; 3] = [
        HoldReason::AwaitingVendor,
        HoldReason::AwaitingCustomer,
        HoldReason::AwaitingChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::AwaitingVendor => "awaiting_vendor",
            HoldReason::AwaitingCustomer => "awaiting_customer",
            HoldReason::AwaitingChange => "awaiting_change",
        }
    }
}

impl std::str::FromStr for HoldReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HoldReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "expected one of {}, got {s:?}",
                    HoldReason::ALL.map(|r| r.as_str()).join(", ")
                )
            })
    }
}

/// Field changes of `PATCH /api/v1/incidents/{id}`; `None` leaves a field alone, and
/// `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub impact: Option<Level>,
    pub urgency: Option<Level>,
    pub assignee: Option<Option<String>>,
    pub owner: Option<Option<String>>,
    pub major: Option<bool>,
}

/// What an operator does to an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Acknowledge {
        note: Option<String>,
    },
    Start {
        note: Option<String>,
    },
    Hold {
        reason: HoldReason,
        note: Option<String>,
    },
    /// `code` is one a person gives (not `alerts_cleared`).
    Resolve {
        code: ResolutionCode,
        note: String,
    },
    /// `review`: the post-incident review, required for a major incident unless it
    /// was given before.
    Close {
        note: Option<String>,
        review: Option<String>,
    },
    /// `reason`: `false_positive` or `duplicate`.
    Cancel {
        reason: ResolutionCode,
        note: Option<String>,
    },
    Reopen {
        note: Option<String>,
    },
    Comment {
        text: String,
    },
    Update(Update),
}

impl Action {
    /// The action's name in the API and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Acknowledge { .. } => "acknowledge",
            Action::Start { .. } => "start",
            Action::Hold { .. } => "hold",
            Action::Resolve { .. } => "resolve",
            Action::Close { .. } => "close",
            Action::Cancel { .. } => "cancel",
            Action::Reopen { .. } => "reopen",
            Action::Comment { .. } => "comment",
            Action::Update(_) => "update",
        }
    }
}

/// Why an operator's action was refused; the record (incident or problem) is
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not possible from the current status (HTTP 409), as the API names it.
    State {
        current: &'static str,
        message: String,
    },
    /// Possible only with a field the request lacks (HTTP 422).
    Missing {
        field: &'static str,
        message: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::State { message, .. } | Refusal::Missing { message, .. } => {
                f.write_str(message)
            }
        }
    }
}

fn with_note(change: Change, note: &Option<String>) -> Change {
    match note {
        Some(n) if !n.is_empty() => change.detail(n.clone()),
        _ => change,
    }
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

impl Incident {
    fn refuse(&self, action: &Action) -> Refusal {
        Refusal::State {
            current: self.status.as_str(),
            message: format!(
                "cannot {} {}: it is {}",
                action.name(),
                self.id,
                self.status.as_str()
            ),
        }
    }

    /// Moves to `to`, ending a hold (its time is added to the SLA clocks' pauses).
    fn set_status(&mut self, to: IncidentStatus, now: Timestamp) -> Change {
        let from = self.status;
        if let Some(h) = self.hold.take() {
            self.sla.resume(h.since, now);
        }
        self.status = to;
        self.updated_at = now;
        Change::new(self.id.to_string(), "status").from_to(from.as_str(), to.as_str())
    }

    /// A person responded: the first acknowledgement (or start) stops escalation and
    /// the respond clock.
    fn respond(&mut self, now: Timestamp) -> Option<Change> {
        if self.acknowledged_at.is_some() {
            return None;
        }
        self.acknowledged_at = Some(now);
        let met = if now <= self.sla.respond_by {
            "met"
        } else {
            "breached"
        };
        Some(
            Change::new(self.id.to_string(), "responded").detail(format!(
                "respond-by {} {met}; escalation level {}",
                self.sla.respond_by, self.sla.escalation_level
            )),
        )
    }

    /// Applies an operator's action at `now`; `Err` leaves the incident unchanged.
    pub fn act(
        &mut self,
        action: &Action,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<Vec<Change>, Refusal> {
        use IncidentStatus::*;
        let mut changes = Vec::new();
        match action {
            Action::Acknowledge { note } => {
                if self.status != New {
                    return Err(self.refuse(action));
                }
                changes.push(with_note(self.set_status(Acknowledged, now), note));
                changes.extend(self.respond(now));
            }
            Action::Start { note } => {
                if !matches!(self.status, New | Acknowledged | OnHold) {
                    return Err(self.refuse(action));
                }
                changes.push(with_note(self.set_status(InProgress, now), note));
                changes.extend(self.respond(now));
            }
            Action::Hold { reason, note } => {
                if !matches!(self.status, New | Acknowledged | InProgress) {
                    return Err(self.refuse(action));
                }
                let mut change = self.set_status(OnHold, now);
                change = change.detail(match note {
                    Some(n) if !n.is_empty() => format!("{}: {n}", reason.as_str()),
                    _ => reason.as_str().to_string(),
                });
                self.hold = Some(Hold {
                    reason: *reason,
                    since: now,
                });
                changes.push(change);
            }
            Action::Resolve { code, note } => {
                if !self.status.is_open() {
                    return Err(self.refuse(action));
                }
                changes.push(self.resolve(*code, note.clone(), now, now));
            }
            Action::Close { note, review } => {
                if self.status != Resolved {
                    return Err(self.refuse(action));
                }
                let review = review
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .or_else(|| self.review.clone());
                if self.major && review.is_none() {
                    return Err(Refusal::Missing {
                        field: "review",
                        message: format!(
                            "{} is a major incident: closing it needs a post-incident review (review)",
                            self.id
                        ),
                    });
                }
                if review != self.review {
                    changes.push(
                        Change::new(self.id.to_string(), "review")
                            .from_to(text(&self.review), text(&review)),
                    );
                    self.review = review;
                }
                self.closed_at = Some(now);
                changes.push(with_note(self.set_status(Closed, now), note));
            }
            Action::Cancel { reason, note } => {
                if !self.status.is_open() {
                    return Err(self.refuse(action));
                }
                let mut change = self.set_status(Cancelled, now);
                change = change.detail(match note {
                    Some(n) if !n.is_empty() => format!("{}: {n}", reason.as_str()),
                    _ => reason.as_str().to_string(),
                });
                self.resolution = Some(super::Resolution {
                    code: *reason,
                    note: text(note),
                });
                changes.push(change);
            }
            Action::Reopen { note } => {
                if super::place(Some(self), now, policy) != super::Placement::Reopen(self.id) {
                    return Err(match self.status {
                        Resolved => Refusal::State {
                            current: self.status.as_str(),
                            message: format!(
                                "cannot reopen {}: it resolved more than {} s ago (reopen_window_secs)",
                                self.id, policy.reopen_window_secs
                            ),
                        },
                        _ => self.refuse(action),
                    });
                }
                changes.push(with_note(self.reopen(now), note));
            }
            Action::Comment { text } => {
                self.updated_at = now;
                changes.push(Change::new(self.id.to_string(), "comment").detail(text.clone()));
            }
            Action::Update(u) => {
                if matches!(self.status, Closed | Cancelled) {
                    return Err(self.refuse(action));
                }
                changes = self.update(u, now, policy);
            }
        }
        Ok(changes)
    }

    fn update(&mut self, u: &Update, now: Timestamp, policy: &Policy) -> Vec<Change> {
        let id = self.id.to_string();
        let mut changes = Vec::new();
        if let Some(impact) = u.impact.filter(|l| *l != self.impact) {
            changes.push(Change::new(&id, "impact").from_to(self.impact.as_str(), impact.as_str()));
            self.impact = impact;
        }
        if let Some(urgency) = u.urgency.filter(|l| *l != self.urgency) {
            changes
                .push(Change::new(&id, "urgency").from_to(self.urgency.as_str(), urgency.as_str()));
            self.urgency = urgency;
        }
        let priority = policy.matrix.priority(self.impact, self.urgency);
        if priority != self.priority {
            changes.push(
                Change::new(&id, "priority").from_to(self.priority.as_str(), priority.as_str()),
            );
            self.priority = priority;
            self.sla
                .retarget(self.opened_at, policy.targets.of(priority));
            changes.push(Change::new(&id, "sla_targets").detail(format!(
                "respond-by {}, resolve-by {}",
                self.sla.respond_by, self.sla.resolve_by
            )));
        }
        if let Some(assignee) = u.assignee.as_ref().filter(|a| **a != self.assignee) {
            changes
                .push(Change::new(&id, "assignee").from_to(text(&self.assignee), text(assignee)));
            self.assignee.clone_from(assignee);
        }
        if let Some(owner) = u.owner.as_ref().filter(|o| **o != self.owner) {
            changes.push(Change::new(&id, "owner").from_to(text(&self.owner), text(owner)));
            self.owner.clone_from(owner);
        }
        if let Some(major) = u.major.filter(|m| *m != self.major) {
            changes
                .push(Change::new(&id, "major").from_to(self.major.to_string(), major.to_string()));
            self.major = major;
        }
        if !changes.is_empty() {
            self.updated_at = now;
        }
        changes
    }

    /// What the SLA clock needs to know of the incident.
    pub fn standing(&self) -> sla::Standing {
        sla::Standing {
            priority: self.priority,
            responded: self.acknowledged_at.is_some(),
            stopped: !self.status.is_open(),
            on_hold: self.status == IncidentStatus::OnHold,
            quiet: self.quiet.is_some(),
        }
    }

    /// When its clock next has something to record, or its quiet time ends.
    pub fn sla_due(&self, escalation: &sla::Escalation) -> Option<Timestamp> {
        let clock = self.sla.next_due(self.standing(), escalation);
        let quiet = self
            .quiet
            .as_ref()
            .filter(|_| self.status.is_open())
            .map(|q| q.until);
        match (clock, quiet) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Pages again (its quiet time is over, or an alert that pages joined it).
    pub fn end_quiet(&mut self, why: String, now: Timestamp) -> Option<Change> {
        let q = self.quiet.take()?;
        self.updated_at = now;
        Some(
            Change::new(self.id.to_string(), "quiet")
                .from_to(q.to_string(), "")
                .detail(why),
        )
    }

    /// Records the breaches and escalations due by `now`, each with its audit change.
    pub fn check_sla(
        &mut self,
        now: Timestamp,
        escalation: &sla::Escalation,
    ) -> Vec<(sla::Event, Change)> {
        let standing = self.standing();
        let events = self.sla.advance(standing, now, escalation);
        if !events.is_empty() {
            self.updated_at = now;
        }
        let id = self.id.to_string();
        events
            .into_iter()
            .map(|e| {
                let change = match &e {
                    sla::Event::RespondBreached { due } => Change::new(&id, "sla_breached")
                        .becomes("respond")
                        .detail(format!("not acknowledged by {due} ({:?})", self.priority)),
                    sla::Event::ResolveBreached { due } => Change::new(&id, "sla_breached")
                        .becomes("resolve")
                        .detail(format!("not resolved by {due} ({:?})", self.priority)),
                    sla::Event::Escalated { level, notify } => Change::new(&id, "escalated")
                        .from_to((level - 1).to_string(), level.to_string())
                        .detail(format!("notify {}", notify.join(", "))),
                };
                (e, change)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{IncidentId, IncidentSpec, Priority};
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            matrix: sla::Matrix::default(),
            targets: sla::Targets(
                [sla::Target {
                    respond_secs: 100,
                    resolve_secs: 1000,
                }; 5],
            ),
            auto_resolve: true,
            reopen_window_secs: 600,
            change_link_secs: 0,
            flap_threshold: 0,
            flap_window_secs: 100,
        }
    }

    fn incident() -> Incident {
        let spec = IncidentSpec {
            key: "k".into(),
            title: "Disk full".into(),
            service: Some("db".into()),
            ci: None,
            impact: Level::Medium,
            urgency: Level::Medium,
            major: false,
            sinks: Vec::new(),
        };
        Incident::open(IncidentId(1), &spec, "default", t(0), t(0), &policy()).0
    }

    fn ack() -> Action {
        Action::Acknowledge { note: None }
    }
    fn start() -> Action {
        Action::Start { note: None }
    }
    fn hold() -> Action {
        Action::Hold {
            reason: HoldReason::AwaitingVendor,
            note: Some("ticket 42".into()),
        }
    }
    fn resolve() -> Action {
        Action::Resolve {
            code: ResolutionCode::Fixed,
            note: "replaced disk".into(),
        }
    }
    fn close() -> Action {
        Action::Close {
            note: None,
            review: None,
        }
    }
    fn cancel() -> Action {
        Action::Cancel {
            reason: ResolutionCode::FalsePositive,
            note: None,
        }
    }
    fn reopen() -> Action {
        Action::Reopen { note: None }
    }

    fn in_status(status: IncidentStatus) -> Incident {
        let p = policy();
        let mut inc = incident();
        let path: &[Action] = match status {
            IncidentStatus::New => &[],
            IncidentStatus::Acknowledged => &[ack()],
            IncidentStatus::InProgress => &[start()],
            IncidentStatus::OnHold => &[hold()],
            IncidentStatus::Resolved => &[resolve()],
            IncidentStatus::Closed => &[resolve(), close()],
            IncidentStatus::Cancelled => &[cancel()],
        };
        for (i, a) in path.iter().enumerate() {
            inc.act(a, t(10 + i as i64), &p).unwrap();
        }
        assert_eq!(inc.status, status);
        inc
    }

    /// Every action from every status: allowed ones land in the status given, the
    /// others are refused with the current status and change nothing.
    #[test]
    fn every_transition_valid_and_invalid() {
        use IncidentStatus::*;
        let actions = [
            ack(),
            start(),
            hold(),
            resolve(),
            close(),
            cancel(),
            reopen(),
        ];
        // (from, action index) → to; anything not listed is refused.
        let allowed: &[(IncidentStatus, usize, IncidentStatus)] = &[
            (New, 0, Acknowledged),
            (New, 1, InProgress),
            (New, 2, OnHold),
            (New, 3, Resolved),
            (New, 5, Cancelled),
            (Acknowledged, 1, InProgress),
            (Acknowledged, 2, OnHold),
            (Acknowledged, 3, Resolved),
            (Acknowledged, 5, Cancelled),
            (InProgress, 2, OnHold),
            (InProgress, 3, Resolved),
            (InProgress, 5, Cancelled),
            (OnHold, 1, InProgress),
            (OnHold, 3, Resolved),
            (OnHold, 5, Cancelled),
            (Resolved, 4, Closed),
            (Resolved, 6, New),
        ];
        let p = policy();
        for from in IncidentStatus::ALL {
            for (i, action) in actions.iter().enumerate() {
                let mut inc = in_status(from);
                let before = inc.clone();
                let want = allowed
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == i)
                    .map(|x| x.2);
                match (inc.act(action, t(100), &p), want) {
                    (Ok(changes), Some(to)) => {
                        assert_eq!(inc.status, to, "{from:?} {}", action.name());
                        assert!(!changes.is_empty());
                        assert_eq!(inc.updated_at, t(100));
                    }
                    (Err(Refusal::State { current, message }), None) => {
                        assert_eq!(current, from.as_str());
                        assert!(message.contains(from.as_str()), "{message}");
                        assert_eq!(inc, before, "a refused action changes nothing");
                    }
                    (got, want) => panic!("{from:?} {}: {got:?}, want {want:?}", action.name()),
                }
            }
        }
    }

    #[test]
    fn acknowledging_records_the_response_once_and_whether_it_was_in_time() {
        let p = policy();
        let mut inc = incident();
        let changes = inc.act(&ack(), t(50), &p).unwrap();
        assert_eq!(inc.acknowledged_at, Some(t(50)));
        assert_eq!(changes[0].action, "status");
        assert_eq!(changes[1].action, "responded");
        assert!(changes[1].detail.as_deref().unwrap().contains("met"));
        let changes = inc.act(&start(), t(60), &p).unwrap();
        assert_eq!(changes.len(), 1, "responded already");
        assert_eq!(inc.acknowledged_at, Some(t(50)));

        let mut late = incident();
        let changes = late.act(&start(), t(150), &p).unwrap();
        assert!(changes[1].detail.as_deref().unwrap().contains("breached"));
    }

    #[test]
    fn a_hold_pauses_the_clocks_until_the_incident_moves_on() {
        let p = policy();
        let mut inc = incident();
        inc.act(&hold(), t(50), &p).unwrap();
        assert_eq!(
            inc.hold.as_ref().unwrap().reason,
            HoldReason::AwaitingVendor
        );
        assert_eq!(inc.sla_due(&sla::Escalation::default()), None);
        assert!(inc
            .check_sla(t(5000), &sla::Escalation::default())
            .is_empty());
        inc.act(&start(), t(350), &p).unwrap();
        assert_eq!(inc.hold, None);
        assert_eq!(inc.sla.paused_secs, 300);
        assert_eq!(inc.sla.resolve_by, t(1300));
        // Resolving straight from hold ends the pause too.
        let mut inc = incident();
        inc.act(&hold(), t(0), &p).unwrap();
        inc.act(&resolve(), t(40), &p).unwrap();
        assert_eq!((inc.hold.clone(), inc.sla.paused_secs), (None, 40));
    }

    #[test]
    fn resolve_keeps_code_and_note_and_cancel_its_reason() {
        let p = policy();
        let mut inc = incident();
        inc.act(&resolve(), t(30), &p).unwrap();
        let r = inc.resolution.clone().unwrap();
        assert_eq!(
            (r.code, r.note.as_str()),
            (ResolutionCode::Fixed, "replaced disk")
        );
        assert_eq!(inc.resolved_at, Some(t(30)));
        let mut inc = incident();
        inc.act(&cancel(), t(30), &p).unwrap();
        assert_eq!(inc.resolution.unwrap().code, ResolutionCode::FalsePositive);
    }

    #[test]
    fn closing_a_major_incident_needs_a_review() {
        let p = policy();
        let mut inc = incident();
        inc.major = true;
        inc.act(&resolve(), t(10), &p).unwrap();
        let before = inc.clone();
        match inc.act(&close(), t(20), &p) {
            Err(Refusal::Missing { field, .. }) => assert_eq!(field, "review"),
            other => panic!("{other:?}"),
        }
        assert_eq!(inc, before);
        let blank = Action::Close {
            note: None,
            review: Some("  ".into()),
        };
        assert!(inc.act(&blank, t(20), &p).is_err());
        let reviewed = Action::Close {
            note: Some("done".into()),
            review: Some("PIR: capacity alert too late".into()),
        };
        let changes = inc.act(&reviewed, t(20), &p).unwrap();
        assert_eq!(inc.status, IncidentStatus::Closed);
        assert_eq!(inc.closed_at, Some(t(20)));
        assert_eq!(inc.review.as_deref(), Some("PIR: capacity alert too late"));
        assert_eq!(changes[0].action, "review");
    }

    #[test]
    fn reopen_only_within_the_window() {
        let p = policy();
        let mut inc = in_status(IncidentStatus::Resolved);
        assert!(inc.act(&reopen(), t(10 + 600), &p).is_ok());
        let mut inc = in_status(IncidentStatus::Resolved);
        match inc.act(&reopen(), t(10 + 601), &p) {
            Err(Refusal::State { current, message }) => {
                assert_eq!(current, IncidentStatus::Resolved.as_str());
                assert!(message.contains("reopen_window_secs"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn updates_recompute_priority_and_targets_and_are_audited_field_by_field() {
        let p = policy();
        let mut inc = incident();
        assert_eq!(inc.priority, Priority::P3);
        let changes = inc
            .act(
                &Action::Update(Update {
                    impact: Some(Level::High),
                    urgency: Some(Level::High),
                    assignee: Some(Some("ana".into())),
                    owner: None,
                    major: Some(true),
                }),
                t(5),
                &p,
            )
            .unwrap();
        let actions: Vec<&str> = changes.iter().map(|c| c.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "impact",
                "urgency",
                "priority",
                "sla_targets",
                "assignee",
                "major"
            ]
        );
        assert_eq!(changes[2].from.as_deref(), Some("P3"));
        assert_eq!(changes[2].to.as_deref(), Some("P1"));
        assert_eq!(inc.priority, Priority::P1);
        assert!(inc.major);
        // The same update again changes nothing.
        let again = Update {
            impact: Some(Level::High),
            ..Update::default()
        };
        assert!(inc
            .act(&Action::Update(again), t(6), &p)
            .unwrap()
            .is_empty());
        // Clearing the assignee.
        let clear = Update {
            assignee: Some(None),
            ..Update::default()
        };
        let changes = inc.act(&Action::Update(clear), t(7), &p).unwrap();
        assert_eq!(changes[0].to.as_deref(), Some(""));
        assert_eq!(inc.assignee, None);
    }

    #[test]
    fn comments_are_kept_in_any_status() {
        let p = policy();
        for status in IncidentStatus::ALL {
            let mut inc = in_status(status);
            let changes = inc
                .act(
                    &Action::Comment {
                        text: "seen".into(),
                    },
                    t(99),
                    &p,
                )
                .unwrap();
            assert_eq!(changes[0].detail.as_deref(), Some("seen"));
            assert_eq!(inc.status, status);
        }
    }

    #[test]
    fn sla_checks_record_breaches_and_escalations_as_audit_changes() {
        let esc = sla::Escalation {
            levels: vec![sla::EscalationLevel {
                after_secs: 0,
                notify: vec!["lead".into()],
                priorities: vec![],
            }],
            breach_notify: vec![],
        };
        let mut inc = incident();
        assert_eq!(inc.sla_due(&esc), Some(t(100)));
        let got = inc.check_sla(t(101), &esc);
        let actions: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|(_, c)| (c.action.as_str(), c.to.as_deref()))
            .collect();
        assert_eq!(
            actions,
            [("sla_breached", Some("respond")), ("escalated", Some("1"))]
        );
        assert_eq!(inc.sla.respond_breached_at, Some(t(101)));
        // Acknowledged: only the resolve clock is left.
        inc.act(&ack(), t(102), &policy()).unwrap();
        assert_eq!(inc.sla_due(&esc), Some(t(1000)));
        // Resolved: the clock has stopped.
        inc.act(&resolve(), t(103), &policy()).unwrap();
        assert_eq!(inc.sla_due(&esc), None);
    }
}
