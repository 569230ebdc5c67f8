//! Problems (`PRB-<n>`, ISO/IEC 20000-1 clause 8.6.3): the underlying cause of one or
//! more incidents. A rule opens one from `on_incident` when incidents recur (the
//! shipped `60-recurrence.rhai`: the same key three times in a day), naming a problem
//! key; incidents whose rule names the key of a problem still open are linked to it.
//!
//! People open them by hand too (`POST /api/v1/problems`), link incidents, and move
//! them on: `open → known_error` (root cause and workaround known) `→ resolved →
//! closed`, or `open → resolved` once fixed; a resolved problem may be reopened. A
//! known error's workaround is attached to new incidents whose key is the problem's.
//!
//! Pure like the incident core: time is an argument, every change returns an audit
//! [`Change`]; a refused action changes nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::Change;
use crate::incidents::{IncidentId, Refusal};

crate::ids::record_id!(
    /// `PRB-<n>`.
    ProblemId,
    "PRB",
    "a problem id"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemStatus {
    Open,
    /// Root cause and workaround known, not yet resolved.
    KnownError,
    Resolved,
    Closed,
}

impl ProblemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemStatus::Open => "open",
            ProblemStatus::KnownError => "known_error",
            ProblemStatus::Resolved => "resolved",
            ProblemStatus::Closed => "closed",
        }
    }

    /// Incidents are still linked to it.
    pub fn is_active(self) -> bool {
        matches!(self, ProblemStatus::Open | ProblemStatus::KnownError)
    }
}

/// What a rule's `problem(#{ key, title })` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemSpec {
    pub key: String,
    pub title: String,
    /// Also link the incident key's earlier incidents opened this many seconds back
    /// (and not linked to a problem yet): the recurrence that made the problem.
    pub link_recent_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: ProblemId,
    /// Incidents whose rule names this key link to the problem while it is active.
    pub key: String,
    pub title: String,
    pub status: ProblemStatus,
    /// The rule that opened it.
    pub opened_by: String,
    /// Linked incidents, in the order they were linked.
    pub incidents: Vec<IncidentId>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
}

impl Problem {
    pub fn open(
        id: ProblemId,
        spec: &ProblemSpec,
        opened_by: &str,
        now: Timestamp,
    ) -> (Problem, Change) {
        let problem = Problem {
            id,
            key: spec.key.clone(),
            title: spec.title.clone(),
            status: ProblemStatus::Open,
            opened_by: opened_by.to_string(),
            incidents: Vec::new(),
            root_cause: None,
            workaround: None,
            opened_at: now,
            updated_at: now,
            resolved_at: None,
            closed_at: None,
        };
        let change = Change::new(id.to_string(), "opened")
            .becomes(ProblemStatus::Open.as_str())
            .detail(format!("key={} title={}", spec.key, spec.title));
        (problem, change)
    }

    /// Links an incident (once); the change is recorded on the problem.
    pub fn link(&mut self, incident: IncidentId, now: Timestamp) -> Option<Change> {
        if self.incidents.contains(&incident) {
            return None;
        }
        self.incidents.push(incident);
        self.updated_at = now;
        Some(
            Change::new(self.id.to_string(), "incident_linked")
                .from_to(
                    (self.incidents.len() - 1).to_string(),
                    self.incidents.len().to_string(),
                )
                .detail(incident.to_string()),
        )
    }
}

/// What an operator does to a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemAction {
    /// Root cause and workaround known (both required, given now or before).
    KnownError {
        root_cause: Option<String>,
        workaround: Option<String>,
    },
    /// Fixed: the root cause is required (given now or before).
    Resolve {
        root_cause: Option<String>,
        note: Option<String>,
    },
    Close {
        note: Option<String>,
    },
    /// Back to open from resolved (the fix did not hold).
    Reopen {
        note: Option<String>,
    },
    Comment {
        text: String,
    },
    /// Field updates; `None` leaves a field alone.
    Update {
        title: Option<String>,
        root_cause: Option<String>,
        workaround: Option<String>,
    },
}

impl ProblemAction {
    pub fn name(&self) -> &'static str {
        match self {
            ProblemAction::KnownError { .. } => "known_error",
            ProblemAction::Resolve { .. } => "resolve",
            ProblemAction::Close { .. } => "close",
            ProblemAction::Reopen { .. } => "reopen",
            ProblemAction::Comment { .. } => "comment",
            ProblemAction::Update { .. } => "update",
        }
    }
}

/// A problem opened by hand (`POST /api/v1/problems`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualProblem {
    pub title: String,
    /// Default: the key of the first incident linked.
    pub key: Option<String>,
    pub incidents: Vec<IncidentId>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Problem {
    fn set_text(&mut self, field: &'static str, value: Option<String>, changes: &mut Vec<Change>) {
        let Some(value) = value else { return };
        let slot = match field {
            "root_cause" => &mut self.root_cause,
            "workaround" => &mut self.workaround,
            _ => unreachable!("a problem text field"),
        };
        if slot.as_deref() == Some(value.as_str()) {
            return;
        }
        changes.push(
            Change::new(self.id.to_string(), field)
                .from_to(slot.clone().unwrap_or_default(), value.clone()),
        );
        *slot = Some(value);
    }

    fn status_to(&mut self, to: ProblemStatus, note: &Option<String>) -> Change {
        let from = self.status;
        self.status = to;
        let c = Change::new(self.id.to_string(), "status").from_to(from.as_str(), to.as_str());
        match given(note) {
            Some(n) => c.detail(n),
            None => c,
        }
    }

    fn refuse(&self, action: &ProblemAction) -> Refusal {
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

    /// Applies an operator's action at `now`; `Err` leaves the problem unchanged.
    pub fn act(&mut self, action: &ProblemAction, now: Timestamp) -> Result<Vec<Change>, Refusal> {
        use ProblemStatus::*;
        let mut next = self.clone();
        let mut changes = Vec::new();
        match action {
            ProblemAction::KnownError {
                root_cause,
                workaround,
            } => {
                if self.status != Open {
                    return Err(self.refuse(action));
                }
                next.set_text("root_cause", given(root_cause), &mut changes);
                next.set_text("workaround", given(workaround), &mut changes);
                for (field, v) in [
                    ("root_cause", &next.root_cause),
                    ("workaround", &next.workaround),
                ] {
                    if v.is_none() {
                        return Err(Refusal::Missing {
                            field,
                            message: format!("a known error needs its {field}"),
                        });
                    }
                }
                changes.push(next.status_to(KnownError, &None));
            }
            ProblemAction::Resolve { root_cause, note } => {
                if !self.status.is_active() {
                    return Err(self.refuse(action));
                }
                next.set_text("root_cause", given(root_cause), &mut changes);
                if next.root_cause.is_none() {
                    return Err(Refusal::Missing {
                        field: "root_cause",
                        message: "resolving a problem needs its root_cause".into(),
                    });
                }
                changes.push(next.status_to(Resolved, note));
                next.resolved_at = Some(now);
            }
            ProblemAction::Close { note } => {
                if self.status != Resolved {
                    return Err(self.refuse(action));
                }
                changes.push(next.status_to(Closed, note));
                next.closed_at = Some(now);
            }
            ProblemAction::Reopen { note } => {
                if self.status != Resolved {
                    return Err(self.refuse(action));
                }
                changes.push(next.status_to(Open, note));
                next.resolved_at = None;
            }
            ProblemAction::Comment { text } => {
                changes.push(Change::new(self.id.to_string(), "comment").detail(text.clone()));
            }
            ProblemAction::Update {
                title,
                root_cause,
                workaround,
            } => {
                if self.status == Closed {
                    return Err(self.refuse(action));
                }
                if let Some(t) = given(title).filter(|t| *t != self.title) {
                    changes.push(
                        Change::new(self.id.to_string(), "title")
                            .from_to(self.title.clone(), t.clone()),
                    );
                    next.title = t;
                }
                next.set_text("root_cause", given(root_cause), &mut changes);
                next.set_text("workaround", given(workaround), &mut changes);
            }
        }
        if !changes.is_empty() {
            next.updated_at = now;
        }
        *self = next;
        Ok(changes)
    }

    /// A problem opened by a person (`by`: `token:<name>`), with the key it is found by.
    pub fn open_by_hand(
        id: ProblemId,
        m: &ManualProblem,
        key: String,
        by: &str,
        now: Timestamp,
    ) -> (Problem, Vec<Change>) {
        let spec = ProblemSpec {
            key,
            title: m.title.clone(),
            link_recent_secs: 0,
        };
        let (mut p, opened) = Problem::open(id, &spec, by, now);
        let mut changes = vec![opened];
        p.set_text("root_cause", given(&m.root_cause), &mut changes);
        p.set_text("workaround", given(&m.workaround), &mut changes);
        (p, changes)
    }

    /// The workaround new incidents with this problem's key get: a known error's.
    pub fn known_workaround(&self) -> Option<&str> {
        (self.status == ProblemStatus::KnownError)
            .then_some(self.workaround.as_deref())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_problem_opens_and_links_each_incident_once() {
        let spec = ProblemSpec {
            key: "Lag/db".into(),
            title: "Recurring: Lag".into(),
            link_recent_secs: 0,
        };
        let (mut p, change) = Problem::open(ProblemId(1), &spec, "60-recurrence.rhai", t(0));
        assert_eq!(change.record, "PRB-1");
        assert_eq!(change.action, "opened");
        assert!(p.status.is_active());
        let linked = p.link(IncidentId(3), t(1)).unwrap();
        assert_eq!(linked.detail.as_deref(), Some("INC-3"));
        assert_eq!(p.link(IncidentId(3), t(2)), None);
        p.link(IncidentId(5), t(3)).unwrap();
        assert_eq!(p.incidents, [IncidentId(3), IncidentId(5)]);
        assert_eq!(p.updated_at, t(3));
        assert_eq!("PRB-12".parse::<ProblemId>(), Ok(ProblemId(12)));
        assert!("PRB-0".parse::<ProblemId>().is_err());
        assert!("INC-1".parse::<ProblemId>().is_err());
    }

    fn problem() -> Problem {
        let spec = ProblemSpec {
            key: "k".into(),
            title: "t".into(),
            link_recent_secs: 0,
        };
        Problem::open(ProblemId(1), &spec, "r", t(0)).0
    }

    fn known(rc: Option<&str>, wa: Option<&str>) -> ProblemAction {
        ProblemAction::KnownError {
            root_cause: rc.map(String::from),
            workaround: wa.map(String::from),
        }
    }

    #[test]
    fn every_problem_transition_valid_and_invalid() {
        use ProblemStatus::*;
        let resolve = ProblemAction::Resolve {
            root_cause: Some("leak".into()),
            note: None,
        };
        let close = ProblemAction::Close { note: None };
        let reopen = ProblemAction::Reopen { note: None };
        let actions = [
            known(Some("leak"), Some("restart nightly")),
            resolve,
            close,
            reopen,
        ];
        // (from, action) → to.
        let allowed = [
            (Open, 0, KnownError),
            (Open, 1, Resolved),
            (KnownError, 1, Resolved),
            (Resolved, 2, Closed),
            (Resolved, 3, Open),
        ];
        let reach = |status: ProblemStatus| {
            let mut p = problem();
            let path: Vec<usize> = match status {
                Open => vec![],
                KnownError => vec![0],
                Resolved => vec![1],
                Closed => vec![1, 2],
            };
            for i in path {
                p.act(&actions[i], t(1)).unwrap();
            }
            assert_eq!(p.status, status);
            p
        };
        for from in [Open, KnownError, Resolved, Closed] {
            for (i, a) in actions.iter().enumerate() {
                let mut p = reach(from);
                let before = p.clone();
                let want = allowed
                    .iter()
                    .find(|x| x.0 == from && x.1 == i)
                    .map(|x| x.2);
                match (p.act(a, t(5)), want) {
                    (Ok(_), Some(to)) => assert_eq!(p.status, to, "{from:?} {}", a.name()),
                    (Err(Refusal::State { current, .. }), None) => {
                        assert_eq!(current, from.as_str());
                        assert_eq!(p, before);
                    }
                    (got, want) => panic!("{from:?} {}: {got:?} want {want:?}", a.name()),
                }
            }
        }
    }

    #[test]
    fn a_known_error_needs_root_cause_and_workaround_and_offers_the_workaround() {
        let mut p = problem();
        let before = p.clone();
        match p.act(&known(Some("leak"), None), t(1)) {
            Err(Refusal::Missing { field, .. }) => assert_eq!(field, "workaround"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p, before, "nothing changed, not even the root cause");
        assert_eq!(p.known_workaround(), None);
        let changes = p.act(&known(Some("leak"), Some("restart")), t(2)).unwrap();
        let actions: Vec<&str> = changes.iter().map(|c| c.action.as_str()).collect();
        assert_eq!(actions, ["root_cause", "workaround", "status"]);
        assert_eq!(p.known_workaround(), Some("restart"));
        // Resolving uses the root cause given before.
        let resolve = ProblemAction::Resolve {
            root_cause: None,
            note: Some("patched".into()),
        };
        p.act(&resolve, t(3)).unwrap();
        assert_eq!(
            (p.status, p.resolved_at),
            (ProblemStatus::Resolved, Some(t(3)))
        );
        assert_eq!(p.known_workaround(), None);
        // Without any root cause, resolve is refused.
        let mut q = problem();
        match q.act(&resolve, t(3)) {
            Err(Refusal::Missing { field, .. }) => assert_eq!(field, "root_cause"),
            other => panic!("{other:?}"),
        }
    }
}
