//! Incidents: the record, its lifecycle and the pure correlation rules that decide
//! whether a firing alert attaches to, reopens or opens an incident.
//!
//! This module never does IO and never reads the clock: time comes in as an argument,
//! and every state change is reported as an audit [`Change`] for the store to write
//! in the same atomic commit as the record.

use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::audit::Change;
use crate::sla;

mod lifecycle;

pub use lifecycle::{Action, HoldReason, Refusal, Update};

crate::ids::record_id!(
    /// `INC-<n>`.
    IncidentId,
    "INC",
    "an incident id"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    New,
    Acknowledged,
    InProgress,
    OnHold,
    Resolved,
    Closed,
    Cancelled,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 7] = [
        IncidentStatus::New,
        IncidentStatus::Acknowledged,
        IncidentStatus::InProgress,
        IncidentStatus::OnHold,
        IncidentStatus::Resolved,
        IncidentStatus::Closed,
        IncidentStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::New => "new",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::InProgress => "in_progress",
            IncidentStatus::OnHold => "on_hold",
            IncidentStatus::Resolved => "resolved",
            IncidentStatus::Closed => "closed",
            IncidentStatus::Cancelled => "cancelled",
        }
    }

    /// Open incidents take new alerts.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            IncidentStatus::New
                | IncidentStatus::Acknowledged
                | IncidentStatus::InProgress
                | IncidentStatus::OnHold
        )
    }
}

impl FromStr for IncidentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        IncidentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "expected one of {}, got {s:?}",
                    IncidentStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

/// Impact and urgency levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    High,
    Medium,
    Low,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "high" => Ok(Level::High),
            "medium" => Ok(Level::Medium),
            "low" => Ok(Level::Low),
            _ => Err(format!("expected high, medium or low, got {s:?}")),
        }
    }
}

/// P1 (highest) to P5, from the impact × urgency matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
    P5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionCode {
    Fixed,
    Workaround,
    NoFaultFound,
    Duplicate,
    FalsePositive,
    /// The incident resolved itself because every attached alert resolved.
    AlertsCleared,
}

impl ResolutionCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionCode::Fixed => "fixed",
            ResolutionCode::Workaround => "workaround",
            ResolutionCode::NoFaultFound => "no_fault_found",
            ResolutionCode::Duplicate => "duplicate",
            ResolutionCode::FalsePositive => "false_positive",
            ResolutionCode::AlertsCleared => "alerts_cleared",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub code: ResolutionCode,
    pub note: String,
}

/// What a rule (or the built-in default) decided an incident for an alert looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentSpec {
    pub key: String,
    pub title: String,
    pub service: Option<String>,
    pub ci: Option<String>,
    pub impact: Level,
    pub urgency: Level,
    pub major: bool,
    /// Sinks (`sink` or `sink:recipient`) its events go to besides the routes'.
    pub sinks: Vec<String>,
}

/// The incident record as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    /// Correlation key: firing alerts with the same key attach to the same open incident.
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
    /// The rule that opened it (`default` for the built-in decision).
    pub opened_by: String,
    /// Distinct alerts ever attached.
    pub alerts_total: u64,
    /// Attached alerts currently firing.
    pub alerts_firing: u64,
    /// Every notification about an attached alert, repeats included.
    pub notifications: u64,
    pub reopened: u32,
    /// The incident its key had before this one opened (the key's recurrence history).
    pub previous: Option<IncidentId>,
    /// Since when an attached alert has been flapping (`None`: not flapping). While it
    /// flaps the incident stays open: resolutions are recorded, not acted on.
    pub flapping_since: Option<Timestamp>,
    /// The last status change of an attached alert.
    pub last_flip: Option<Timestamp>,
    /// The problem it is linked to.
    pub problem: Option<crate::problems::ProblemId>,
    /// Changes on its service running or ended shortly before it opened: suspected
    /// causes.
    pub changes: Vec<crate::changes::ChangeId>,
    /// When the first alert started (detected).
    pub detected_at: Timestamp,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub impact_start: Timestamp,
    pub impact_end: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Accountable for the incident (a major incident's manager).
    pub owner: Option<String>,
    /// Working on it.
    pub assignee: Option<String>,
    /// Why and since when it is on hold (status `on_hold`): the SLA clocks pause.
    pub hold: Option<Hold>,
    /// Respond-by and resolve-by, pauses, breaches and the escalation level.
    pub sla: sla::Clock,
    /// The post-incident review note, required to close a major incident.
    pub review: Option<String>,
    /// Set while the incident does not page: every alert that opened or joined it
    /// since was silenced or inside a maintenance or approved change window.
    pub quiet: Option<crate::silences::Quiet>,
    /// The workaround of the known error (the problem linked) its key matched when it
    /// opened.
    pub workaround: Option<String>,
    /// The labels of the alert that opened it (after the rules): what routes match on.
    /// Shared: they never change once the incident is open, and an incident is copied
    /// several times per batch that touches it (the batch, the log record, the store's
    /// overlay), so a copy of the map per copy of the incident cost 30 % of the
    /// throughput at 100 alerts per request (BENCHMARKS.md).
    pub labels: std::sync::Arc<crate::alerts::LabelSet>,
    /// Sinks the rule decision named (besides the routes').
    pub sinks: Vec<String>,
    /// What sinks created for it (chat messages, tickets): later events update these.
    pub external: Vec<crate::outbox::ExternalRef>,
}

/// Why an incident is on hold, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub reason: HoldReason,
    pub since: Timestamp,
}

/// Audit action of a firing alert joining an incident (from/to: firing counts).
pub const ALERTS_ATTACHED: &str = "alerts_attached";
/// Audit action of an attached alert resolving (from/to: firing counts).
pub const ALERTS_RESOLVED: &str = "alerts_resolved";

/// Correlation settings the core needs, from `[incidents]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Priority from impact × urgency.
    pub matrix: sla::Matrix,
    /// Respond-by and resolve-by per priority.
    pub targets: sla::Targets,
    pub auto_resolve: bool,
    pub reopen_window_secs: u64,
    /// An incident opened on a service links the changes on it whose window reaches
    /// into the this many seconds before it opened (0: off).
    pub change_link_secs: u64,
    /// An alert that changes status more than this many times within
    /// `flap_window_secs` makes its incident flap; 0 turns flap detection off.
    pub flap_threshold: u32,
    pub flap_window_secs: u64,
}

impl Default for Policy {
    /// The defaults of `[incidents]`, `[priority]` and `[sla]` (a config test keeps
    /// them equal to what an empty config file gives).
    fn default() -> Self {
        Policy {
            matrix: sla::Matrix::default(),
            targets: sla::Targets::default(),
            auto_resolve: true,
            reopen_window_secs: 3600,
            change_link_secs: 3600,
            flap_threshold: 4,
            flap_window_secs: 1800,
        }
    }
}

/// Audit action: an attached alert flaps; the incident stays open until it settles.
pub const FLAPPING_STARTED: &str = "flapping_started";
/// Audit action: no attached alert changed status for a flap window.
pub const FLAPPING_ENDED: &str = "flapping_ended";

fn flap_window(policy: &Policy) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(policy.flap_window_secs).unwrap_or(i64::MAX))
}

/// Counts one status change of an alert: `(flips, since)` of its current window,
/// a new window when the last one is over.
pub fn count_flip(
    flips: u32,
    since: Timestamp,
    now: Timestamp,
    policy: &Policy,
) -> (u32, Timestamp) {
    let open = since
        .checked_add(flap_window(policy))
        .is_ok_and(|end| now < end);
    if open && flips > 0 {
        (flips.saturating_add(1), since)
    } else {
        (1, now)
    }
}

/// Where a firing alert goes, given the latest incident for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Attach(IncidentId),
    Reopen(IncidentId),
    Open,
}

/// Decides where a firing alert with a given key goes: to the open incident for the
/// key, to a resolved one still inside the reopen window, or to a new incident.
pub fn place(latest: Option<&Incident>, now: Timestamp, policy: &Policy) -> Placement {
    let Some(inc) = latest else {
        return Placement::Open;
    };
    if inc.status.is_open() {
        return Placement::Attach(inc.id);
    }
    if inc.status == IncidentStatus::Resolved {
        if let Some(resolved_at) = inc.resolved_at {
            let window = jiff::SignedDuration::from_secs(policy.reopen_window_secs as i64);
            if now.duration_since(resolved_at) <= window {
                return Placement::Reopen(inc.id);
            }
        }
    }
    Placement::Open
}

impl Incident {
    /// The reference `sink` created for this incident, if any.
    pub fn external_ref(&self, sink: &str) -> Option<&crate::outbox::ExternalRef> {
        self.external.iter().find(|r| r.sink == sink)
    }

    /// Keeps what a sink created for the incident (the first one wins: later events
    /// update it), audited.
    pub fn add_external_ref(&mut self, r: crate::outbox::ExternalRef) -> Option<Change> {
        if self.external_ref(&r.sink).is_some() {
            return None;
        }
        let change = Change::new(self.id.to_string(), "external_ref")
            .becomes(r.id.clone())
            .detail(format!("sink {}", r.sink));
        self.external.push(r);
        Some(change)
    }

    /// A new incident for a firing alert that started at `detected_at`.
    pub fn open(
        id: IncidentId,
        spec: &IncidentSpec,
        opened_by: &str,
        detected_at: Timestamp,
        now: Timestamp,
        policy: &Policy,
    ) -> (Incident, Change) {
        let priority = policy.matrix.priority(spec.impact, spec.urgency);
        let inc = Incident {
            id,
            key: spec.key.clone(),
            title: spec.title.clone(),
            service: spec.service.clone(),
            ci: spec.ci.clone(),
            impact: spec.impact,
            urgency: spec.urgency,
            priority,
            major: spec.major,
            status: IncidentStatus::New,
            resolution: None,
            opened_by: opened_by.to_string(),
            alerts_total: 0,
            alerts_firing: 0,
            notifications: 0,
            reopened: 0,
            previous: None,
            flapping_since: None,
            last_flip: None,
            problem: None,
            changes: Vec::new(),
            detected_at,
            opened_at: now,
            acknowledged_at: None,
            impact_start: detected_at,
            impact_end: None,
            resolved_at: None,
            closed_at: None,
            updated_at: now,
            owner: None,
            assignee: None,
            hold: None,
            sla: sla::Clock::start(now, policy.targets.of(priority)),
            review: None,
            quiet: None,
            workaround: None,
            labels: Default::default(),
            sinks: spec.sinks.clone(),
            external: Vec::new(),
        };
        let change = Change::new(id.to_string(), "opened")
            .becomes(IncidentStatus::New.as_str())
            .detail(format!(
                "key={} priority={:?} title={}",
                spec.key, priority, spec.title
            ));
        (inc, change)
    }

    /// A firing alert joins this incident. `known` says whether it was attached before
    /// (an alert that resolved and fires again is counted once in `alerts_total`).
    /// The change's from/to are the firing counts; consecutive ones of one batch may be
    /// merged into one audit entry by the caller.
    pub fn attach_firing(
        &mut self,
        fingerprint: &str,
        alertname: &str,
        known: bool,
        now: Timestamp,
    ) -> Change {
        if !known {
            self.alerts_total += 1;
        }
        let before = self.alerts_firing;
        self.alerts_firing += 1;
        self.notifications += 1;
        self.updated_at = now;
        Change::new(self.id.to_string(), ALERTS_ATTACHED)
            .from_to(before.to_string(), self.alerts_firing.to_string())
            .detail(format!("{alertname} {fingerprint}"))
    }

    /// A notification that changes nothing but the count.
    pub fn repeat(&mut self, now: Timestamp) {
        self.notifications += 1;
        self.updated_at = now;
    }

    /// Reopens a resolved incident (the caller checked the window with [`place`]).
    pub fn reopen(&mut self, now: Timestamp) -> Change {
        let from = self.status;
        self.status = if self.acknowledged_at.is_some() {
            IncidentStatus::InProgress
        } else {
            IncidentStatus::New
        };
        self.reopened += 1;
        self.resolution = None;
        self.resolved_at = None;
        self.impact_end = None;
        self.updated_at = now;
        Change::new(self.id.to_string(), "reopened")
            .from_to(from.as_str(), self.status.as_str())
            .detail(format!("reopened {} time(s)", self.reopened))
    }

    /// An attached firing alert resolved at `ended_at`. With `auto_resolve`, the last one
    /// to resolve resolves the incident as `alerts_cleared`.
    pub fn alert_resolved(
        &mut self,
        fingerprint: &str,
        alertname: &str,
        ended_at: Timestamp,
        now: Timestamp,
        policy: &Policy,
    ) -> Vec<Change> {
        let before = self.alerts_firing;
        self.alerts_firing = self.alerts_firing.saturating_sub(1);
        self.notifications += 1;
        self.updated_at = now;
        let mut changes = vec![Change::new(self.id.to_string(), ALERTS_RESOLVED)
            .from_to(before.to_string(), self.alerts_firing.to_string())
            .detail(format!("{alertname} {fingerprint}"))];
        if policy.auto_resolve
            && self.alerts_firing == 0
            && self.status.is_open()
            && self.flapping_since.is_none()
        {
            let note = format!("all {} attached alert(s) resolved", self.alerts_total);
            changes.push(self.resolve(ResolutionCode::AlertsCleared, note, ended_at, now));
        }
        changes
    }

    /// An attached alert changed status; `flips` is its count in the current flap
    /// window. More than the threshold starts flapping.
    pub fn alert_flipped(
        &mut self,
        fingerprint: &str,
        alertname: &str,
        flips: u32,
        now: Timestamp,
        policy: &Policy,
    ) -> Option<Change> {
        self.last_flip = Some(now);
        if policy.flap_threshold == 0
            || flips <= policy.flap_threshold
            || self.flapping_since.is_some()
            || !self.status.is_open()
        {
            return None;
        }
        self.flapping_since = Some(now);
        self.updated_at = now;
        Some(
            Change::new(self.id.to_string(), FLAPPING_STARTED).detail(format!(
                "{alertname} {fingerprint} changed status {flips} times within {} s",
                policy.flap_window_secs
            )),
        )
    }

    /// Ends flapping once no attached alert changed status for a flap window; with
    /// `auto_resolve` and no alert firing, the incident then resolves.
    pub fn settle(&mut self, now: Timestamp, policy: &Policy) -> Vec<Change> {
        let (Some(_), Some(last)) = (self.flapping_since, self.last_flip) else {
            return Vec::new();
        };
        if last
            .checked_add(flap_window(policy))
            .map_or(true, |quiet| now < quiet)
        {
            return Vec::new();
        }
        self.flapping_since = None;
        self.updated_at = now;
        let mut changes = vec![
            Change::new(self.id.to_string(), FLAPPING_ENDED).detail(format!(
                "no status change since {last}; {} alert(s) firing",
                self.alerts_firing
            )),
        ];
        if policy.auto_resolve && self.alerts_firing == 0 && self.status.is_open() {
            let note = format!(
                "all {} attached alert(s) resolved (after flapping)",
                self.alerts_total
            );
            changes.push(self.resolve(ResolutionCode::AlertsCleared, note, last, now));
        }
        changes
    }

    /// Resolves the incident; the impact ended at `impact_end`.
    pub fn resolve(
        &mut self,
        code: ResolutionCode,
        note: String,
        impact_end: Timestamp,
        now: Timestamp,
    ) -> Change {
        let from = self.status;
        if let Some(h) = self.hold.take() {
            self.sla.resume(h.since, now);
        }
        self.status = IncidentStatus::Resolved;
        self.impact_end = Some(impact_end.max(self.impact_start));
        self.resolved_at = Some(now);
        self.updated_at = now;
        let change = Change::new(self.id.to_string(), "resolved")
            .from_to(from.as_str(), IncidentStatus::Resolved.as_str())
            .detail(format!("{}: {note}", code.as_str()));
        self.resolution = Some(Resolution { code, note });
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn spec(key: &str) -> IncidentSpec {
        IncidentSpec {
            key: key.into(),
            title: "Disk full".into(),
            service: Some("db".into()),
            ci: None,
            impact: Level::Medium,
            urgency: Level::Medium,
            major: false,
            sinks: Vec::new(),
        }
    }

    const POLICY: Policy = Policy {
        matrix: sla::Matrix([
            [Priority::P1, Priority::P2, Priority::P3],
            [Priority::P2, Priority::P3, Priority::P4],
            [Priority::P3, Priority::P4, Priority::P5],
        ]),
        targets: sla::Targets(
            [sla::Target {
                respond_secs: 100,
                resolve_secs: 1000,
            }; 5],
        ),
        auto_resolve: true,
        reopen_window_secs: 600,
        change_link_secs: 0,
        flap_threshold: 3,
        flap_window_secs: 100,
    };

    #[test]
    fn flips_are_counted_per_window() {
        let (n, since) = count_flip(0, t(0), t(5), &POLICY);
        assert_eq!((n, since), (1, t(5)));
        let (n, since) = count_flip(n, since, t(50), &POLICY);
        assert_eq!((n, since), (2, t(5)));
        // The window (100 s) from t(5) is over at t(105): a new one starts.
        assert_eq!(count_flip(n, since, t(104), &POLICY), (3, t(5)));
        assert_eq!(count_flip(n, since, t(105), &POLICY), (1, t(105)));
    }

    #[test]
    fn an_incident_flaps_past_the_threshold_stays_open_and_settles_when_quiet() {
        let (mut inc, _) =
            Incident::open(IncidentId(1), &spec("k"), "default", t(0), t(0), &POLICY);
        inc.attach_firing("a", "Disk", false, t(0));
        for flips in 1..=3 {
            assert_eq!(
                inc.alert_flipped("a", "Disk", flips, t(flips as i64), &POLICY),
                None
            );
        }
        let started = inc
            .alert_flipped("a", "Disk", 4, t(10), &POLICY)
            .expect("4 > threshold 3");
        assert_eq!(started.action, FLAPPING_STARTED);
        assert_eq!(inc.flapping_since, Some(t(10)));
        assert_eq!(
            inc.alert_flipped("a", "Disk", 5, t(11), &POLICY),
            None,
            "once"
        );

        // Its last alert resolves: recorded, the incident stays open.
        let changes = inc.alert_resolved("a", "Disk", t(12), t(12), &POLICY);
        assert_eq!(changes.len(), 1);
        assert_eq!(inc.status, IncidentStatus::New);

        // Quiet for less than the window (100 s after the last flip at 11): flapping.
        assert!(inc.settle(t(110), &POLICY).is_empty());
        let changes = inc.settle(t(111), &POLICY);
        let actions: Vec<&str> = changes.iter().map(|c| c.action.as_str()).collect();
        assert_eq!(actions, [FLAPPING_ENDED, "resolved"]);
        assert_eq!(inc.status, IncidentStatus::Resolved);
        assert_eq!(inc.flapping_since, None);
        assert_eq!(
            inc.resolution.as_ref().unwrap().code,
            ResolutionCode::AlertsCleared
        );
        assert_eq!(
            inc.impact_end,
            Some(t(11)),
            "impact ended at the last change"
        );
        assert!(inc.settle(t(500), &POLICY).is_empty());
    }

    #[test]
    fn a_settled_incident_with_a_firing_alert_stays_open_and_zero_turns_flapping_off() {
        let (mut inc, _) =
            Incident::open(IncidentId(1), &spec("k"), "default", t(0), t(0), &POLICY);
        inc.attach_firing("a", "Disk", false, t(0));
        inc.alert_flipped("a", "Disk", 4, t(10), &POLICY).unwrap();
        let changes = inc.settle(t(200), &POLICY);
        assert_eq!(changes.len(), 1);
        assert_eq!(inc.status, IncidentStatus::New);

        let off = Policy {
            flap_threshold: 0,
            ..POLICY
        };
        let (mut inc, _) =
            Incident::open(IncidentId(2), &spec("k"), "default", t(0), t(0), &POLICY);
        assert_eq!(inc.alert_flipped("a", "Disk", 1000, t(10), &off), None);
        assert_eq!(inc.flapping_since, None);
    }

    #[test]
    fn no_incident_for_key_opens_one() {
        assert_eq!(place(None, t(0), &POLICY), Placement::Open);
    }

    #[test]
    fn open_incident_takes_further_alerts() {
        let (mut inc, _) =
            Incident::open(IncidentId(1), &spec("k"), "default", t(-5), t(0), &POLICY);
        inc.attach_firing("a", "Disk", false, t(0));
        assert_eq!(
            place(Some(&inc), t(10), &POLICY),
            Placement::Attach(IncidentId(1))
        );
        inc.attach_firing("b", "Disk", false, t(10));
        assert_eq!(
            (inc.alerts_total, inc.alerts_firing, inc.notifications),
            (2, 2, 2)
        );
    }

    #[test]
    fn incident_resolves_when_every_alert_resolved() {
        let (mut inc, _) =
            Incident::open(IncidentId(1), &spec("k"), "default", t(-5), t(0), &POLICY);
        inc.attach_firing("a", "Disk", false, t(0));
        inc.attach_firing("b", "Disk", false, t(0));
        let changes = inc.alert_resolved("a", "Disk", t(20), t(21), &POLICY);
        assert_eq!(changes.len(), 1);
        assert!(inc.status.is_open());
        let changes = inc.alert_resolved("b", "Disk", t(30), t(31), &POLICY);
        assert_eq!(changes.len(), 2);
        assert_eq!(inc.status, IncidentStatus::Resolved);
        assert_eq!(
            inc.resolution.as_ref().unwrap().code,
            ResolutionCode::AlertsCleared
        );
        assert_eq!(inc.resolved_at, Some(t(31)));
        assert_eq!(inc.impact_end, Some(t(30)));
        assert_eq!(changes[1].from.as_deref(), Some("new"));
        assert_eq!(changes[1].to.as_deref(), Some("resolved"));
    }

    #[test]
    fn without_auto_resolve_the_incident_stays_open() {
        let policy = Policy {
            auto_resolve: false,
            ..POLICY
        };
        let (mut inc, _) =
            Incident::open(IncidentId(1), &spec("k"), "default", t(0), t(0), &POLICY);
        inc.attach_firing("a", "Disk", false, t(0));
        inc.alert_resolved("a", "Disk", t(5), t(5), &policy);
        assert_eq!(inc.status, IncidentStatus::New);
        assert_eq!(inc.alerts_firing, 0);
        assert_eq!(
            place(Some(&inc), t(10_000), &policy),
            Placement::Attach(IncidentId(1))
        );
    }

    #[test]
    fn firing_within_reopen_window_reopens_later_opens_new() {
        let (mut inc, _) =
            Incident::open(IncidentId(3), &spec("k"), "default", t(0), t(0), &POLICY);
        inc.attach_firing("a", "Disk", false, t(0));
        inc.alert_resolved("a", "Disk", t(100), t(100), &POLICY);
        assert_eq!(
            place(Some(&inc), t(700), &POLICY),
            Placement::Reopen(IncidentId(3))
        );
        assert_eq!(place(Some(&inc), t(701), &POLICY), Placement::Open);
        let just_after = t(700)
            .checked_add(jiff::SignedDuration::from_nanos(1))
            .unwrap();
        assert_eq!(place(Some(&inc), just_after, &POLICY), Placement::Open);

        let change = inc.reopen(t(200));
        assert_eq!(inc.status, IncidentStatus::New);
        assert_eq!(
            (inc.reopened, inc.resolved_at, inc.resolution.clone()),
            (1, None, None)
        );
        assert_eq!(change.from.as_deref(), Some("resolved"));
        inc.attach_firing("a", "Disk", true, t(200));
        assert_eq!((inc.alerts_total, inc.alerts_firing), (1, 1));
    }

    #[test]
    fn closed_or_cancelled_incidents_never_reopen() {
        let (mut inc, _) =
            Incident::open(IncidentId(1), &spec("k"), "default", t(0), t(0), &POLICY);
        for status in [IncidentStatus::Closed, IncidentStatus::Cancelled] {
            inc.status = status;
            inc.resolved_at = Some(t(1));
            assert_eq!(place(Some(&inc), t(2), &POLICY), Placement::Open);
        }
    }

    #[test]
    fn incident_ids_parse_and_print() {
        assert_eq!("INC-42".parse::<IncidentId>(), Ok(IncidentId(42)));
        assert_eq!(IncidentId(7).to_string(), "INC-7");
        for bad in ["42", "INC-", "INC-0", "INC-x", "inc-1"] {
            assert!(bad.parse::<IncidentId>().is_err(), "{bad}");
        }
    }
}
