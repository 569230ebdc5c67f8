//! Problems (`PRB-<n>`, ISO/IEC 20000-1 clause 8.6.3): the underlying cause of one or
//! more incidents. A rule opens one from `on_incident` when incidents recur (the
//! shipped `60-recurrence.rhai`: the same key three times in a day), naming a problem
//! key; incidents whose rule names the key of a problem still open are linked to it.
//!
//! Pure like the incident core: time is an argument, every change returns an audit
//! [`Change`]. The lifecycle beyond `open` (known error, workaround, resolve, close by
//! hand) belongs to the operator API.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::Change;
use crate::incidents::IncidentId;

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
}
