//! Service reports (ISO/IEC 20000-1 clause 9.4): SLA attainment per priority with MTTA
//! and MTTR, incident counts and trends, the problem backlog with known errors and
//! recurring keys, and incidents caused by changes.
//!
//! Pure: each report is a fold over records handed in one at a time (`add`), so the
//! caller can page through a large store with flat memory; time is an argument.
//! MTTA = opened → acknowledged; MTTR = impact start → resolved (DESIGN.md).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::changes::{ChangeRecord, ChangeStatus};
use crate::incidents::{Incident, IncidentStatus, Priority};
use crate::problems::{Problem, ProblemStatus};

/// The time range (`from` inclusive, `to` exclusive) and service a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    pub from: Timestamp,
    pub to: Timestamp,
    pub service: Option<String>,
}

impl Scope {
    /// An incident opened in the range, on the service if one is given.
    pub fn takes(&self, inc: &Incident) -> bool {
        self.from <= inc.opened_at
            && inc.opened_at < self.to
            && self
                .service
                .as_deref()
                .is_none_or(|s| inc.service.as_deref() == Some(s))
    }
}

fn secs_between(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64().max(0.0)
}

/// A running mean of durations in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Mean {
    pub count: u64,
    /// `None` with no samples.
    pub mean_secs: Option<f64>,
    #[serde(skip)]
    sum: f64,
}

impl Mean {
    fn add(&mut self, secs: f64) {
        self.count += 1;
        self.sum += secs;
        self.mean_secs = Some((self.sum / self.count as f64 * 1000.0).round() / 1000.0);
    }
}

/// Respond or resolve attainment: met, breached, and still running (neither yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Attainment {
    pub met: u64,
    pub breached: u64,
    pub running: u64,
    /// met / (met + breached), `None` when nothing is decided yet.
    pub met_ratio: Option<f64>,
}

impl Attainment {
    fn add(&mut self, met: Option<bool>) {
        match met {
            Some(true) => self.met += 1,
            Some(false) => self.breached += 1,
            None => self.running += 1,
        }
        let decided = self.met + self.breached;
        self.met_ratio =
            (decided > 0).then(|| (self.met as f64 / decided as f64 * 10_000.0).round() / 10_000.0);
    }
}

/// One priority's row of the SLA report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlaRow {
    pub incidents: u64,
    pub respond: Attainment,
    pub resolve: Attainment,
    pub mtta: Mean,
    pub mttr: Mean,
}

/// `GET /api/v1/reports/sla`: per priority, cancelled incidents left out (counted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaReport {
    pub scope: Scope,
    pub priorities: BTreeMap<String, SlaRow>,
    pub total: SlaRow,
    pub cancelled: u64,
}

impl SlaReport {
    pub fn new(scope: Scope) -> SlaReport {
        SlaReport {
            scope,
            priorities: Priority::ALL
                .iter()
                .map(|p| (p.as_str().to_string(), SlaRow::default()))
                .collect(),
            total: SlaRow::default(),
            cancelled: 0,
        }
    }

    /// Counts an incident (if the scope takes it) as of `now`.
    pub fn add(&mut self, inc: &Incident, now: Timestamp) {
        if !self.scope.takes(inc) {
            return;
        }
        if inc.status == IncidentStatus::Cancelled {
            self.cancelled += 1;
            return;
        }
        let respond = match (inc.acknowledged_at, inc.sla.respond_breached_at) {
            (_, Some(_)) => Some(false),
            (Some(at), None) => Some(at <= inc.sla.respond_by),
            (None, None) => (now > inc.sla.respond_by).then_some(false),
        };
        let resolve = match (inc.resolved_at, inc.sla.resolve_breached_at) {
            (_, Some(_)) => Some(false),
            (Some(at), None) => Some(at <= inc.sla.resolve_by),
            (None, None) => {
                (now > inc.sla.resolve_by && inc.status != IncidentStatus::OnHold).then_some(false)
            }
        };
        for row in [
            self.priorities
                .get_mut(inc.priority.as_str())
                .expect("every priority has a row"),
            &mut self.total,
        ] {
            row.incidents += 1;
            row.respond.add(respond);
            row.resolve.add(resolve);
            if let Some(at) = inc.acknowledged_at {
                row.mtta.add(secs_between(inc.opened_at, at));
            }
            if let Some(at) = inc.resolved_at {
                row.mttr.add(secs_between(inc.impact_start, at));
            }
        }
    }
}

/// `GET /api/v1/reports/incidents`: counts by service, priority, status and day
/// (UTC, the day each opened), and how many were major, reopened or flapped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentReport {
    pub scope: Scope,
    pub total: u64,
    pub by_service: BTreeMap<String, u64>,
    pub by_priority: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    pub by_day: BTreeMap<String, u64>,
    pub major: u64,
    pub reopened: u64,
    pub quiet: u64,
}

impl IncidentReport {
    pub fn new(scope: Scope) -> IncidentReport {
        IncidentReport {
            scope,
            total: 0,
            by_service: BTreeMap::new(),
            by_priority: Priority::ALL
                .iter()
                .map(|p| (p.as_str().to_string(), 0))
                .collect(),
            by_status: BTreeMap::new(),
            by_day: BTreeMap::new(),
            major: 0,
            reopened: 0,
            quiet: 0,
        }
    }

    pub fn add(&mut self, inc: &Incident) {
        if !self.scope.takes(inc) {
            return;
        }
        self.total += 1;
        *self
            .by_service
            .entry(inc.service.clone().unwrap_or_else(|| "(none)".into()))
            .or_default() += 1;
        *self
            .by_priority
            .entry(inc.priority.as_str().to_string())
            .or_default() += 1;
        *self
            .by_status
            .entry(inc.status.as_str().to_string())
            .or_default() += 1;
        let day = inc
            .opened_at
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        *self.by_day.entry(day).or_default() += 1;
        self.major += u64::from(inc.major);
        self.reopened += u64::from(inc.reopened > 0);
        self.quiet += u64::from(inc.quiet.is_some());
    }
}

/// A known error in the problem report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnownError {
    pub id: String,
    pub title: String,
    pub workaround: Option<String>,
    pub incidents: usize,
}

/// `GET /api/v1/reports/problems`: the backlog now, problems opened and resolved in
/// the range, known errors, and the incident keys that recurred in the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemReport {
    pub scope: Scope,
    /// Open and known-error problems now, by status.
    pub backlog: BTreeMap<String, u64>,
    pub opened: u64,
    pub resolved: u64,
    pub known_errors: Vec<KnownError>,
    /// Correlation keys with at least two incidents opened in the range, most first.
    pub recurring_keys: Vec<(String, u64)>,
    #[serde(skip)]
    keys: BTreeMap<String, u64>,
}

impl ProblemReport {
    pub fn new(scope: Scope) -> ProblemReport {
        ProblemReport {
            scope,
            backlog: [ProblemStatus::Open, ProblemStatus::KnownError]
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
            opened: 0,
            resolved: 0,
            known_errors: Vec::new(),
            recurring_keys: Vec::new(),
            keys: BTreeMap::new(),
        }
    }

    pub fn add_problem(&mut self, p: &Problem) {
        if p.status.is_active() {
            *self
                .backlog
                .entry(p.status.as_str().to_string())
                .or_default() += 1;
        }
        if p.status == ProblemStatus::KnownError {
            self.known_errors.push(KnownError {
                id: p.id.to_string(),
                title: p.title.clone(),
                workaround: p.workaround.clone(),
                incidents: p.incidents.len(),
            });
        }
        let within = |t: Timestamp| self.scope.from <= t && t < self.scope.to;
        self.opened += u64::from(within(p.opened_at));
        self.resolved += u64::from(p.resolved_at.is_some_and(within));
    }

    pub fn add_incident(&mut self, inc: &Incident) {
        if self.scope.takes(inc) {
            *self.keys.entry(inc.key.clone()).or_default() += 1;
        }
    }

    /// Ends the fold: sorts the recurring keys.
    pub fn finish(mut self) -> ProblemReport {
        let mut keys: Vec<(String, u64)> = std::mem::take(&mut self.keys)
            .into_iter()
            .filter(|(_, n)| *n >= 2)
            .collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.recurring_keys = keys;
        self
    }
}

/// One change in the change report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRow {
    pub id: String,
    pub service: String,
    pub summary: String,
    pub status: ChangeStatus,
    /// Incidents (in the scope) that link it as a suspected cause.
    pub incidents: Vec<String>,
}

/// `GET /api/v1/reports/changes`: changes whose window starts in the range, and the
/// incidents each is a suspected cause of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeReport {
    pub scope: Scope,
    pub changes: Vec<ChangeRow>,
    pub by_status: BTreeMap<String, u64>,
    /// Changes with at least one incident linked.
    pub causing_incidents: u64,
    /// Incidents in the scope linked to any change.
    pub change_caused_incidents: u64,
    #[serde(skip)]
    links: BTreeMap<u64, Vec<String>>,
}

impl ChangeReport {
    pub fn new(scope: Scope) -> ChangeReport {
        ChangeReport {
            scope,
            changes: Vec::new(),
            by_status: BTreeMap::new(),
            causing_incidents: 0,
            change_caused_incidents: 0,
            links: BTreeMap::new(),
        }
    }

    pub fn add_incident(&mut self, inc: &Incident) {
        if !self.scope.takes(inc) || inc.changes.is_empty() {
            return;
        }
        self.change_caused_incidents += 1;
        for c in &inc.changes {
            self.links.entry(c.0).or_default().push(inc.id.to_string());
        }
    }

    pub fn add_change(&mut self, c: &ChangeRecord) {
        let s = &self.scope;
        if c.window_start < s.from
            || c.window_start >= s.to
            || s.service.as_deref().is_some_and(|x| x != c.service)
        {
            return;
        }
        *self
            .by_status
            .entry(c.status.as_str().to_string())
            .or_default() += 1;
        self.changes.push(ChangeRow {
            id: c.id.to_string(),
            service: c.service.clone(),
            summary: c.summary.clone(),
            status: c.status,
            incidents: Vec::new(),
        });
    }

    /// Ends the fold: joins incidents to their changes.
    pub fn finish(mut self) -> ChangeReport {
        for row in &mut self.changes {
            let id: crate::changes::ChangeId = row.id.parse().expect("a change id");
            if let Some(incs) = self.links.get(&id.0) {
                row.incidents = incs.clone();
            }
        }
        self.causing_incidents = self
            .changes
            .iter()
            .filter(|r| !r.incidents.is_empty())
            .count() as u64;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::{
        Action, IncidentId, IncidentSpec, Level, Policy, ResolutionCode, Update,
    };

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            targets: crate::sla::Targets(
                [crate::sla::Target {
                    respond_secs: 100,
                    resolve_secs: 1000,
                }; 5],
            ),
            ..Policy::default()
        }
    }

    fn incident(id: u64, key: &str, service: &str, level: Level, opened: i64) -> Incident {
        let spec = IncidentSpec {
            key: key.into(),
            title: key.into(),
            service: Some(service.into()),
            ci: None,
            impact: level,
            urgency: level,
            major: false,
            sinks: Vec::new(),
        };
        Incident::open(IncidentId(id), &spec, "r", t(opened), t(opened), &policy()).0
    }

    fn act(inc: &mut Incident, a: Action, at: i64) {
        inc.act(&a, t(at), &policy()).unwrap();
    }

    fn ack() -> Action {
        Action::Acknowledge { note: None }
    }

    fn resolve() -> Action {
        Action::Resolve {
            code: ResolutionCode::Fixed,
            note: "n".into(),
        }
    }

    /// Four P1s and a P3: the figures worked out by hand.
    fn history() -> Vec<Incident> {
        let mut a = incident(1, "A", "db", Level::High, 0); // ack 50, resolved 500: met, met
        act(&mut a, ack(), 50);
        act(&mut a, resolve(), 500);
        let mut b = incident(2, "A", "db", Level::High, 1000); // ack 1150 (late), resolved 3000 (late)
        act(&mut b, ack(), 1150);
        act(&mut b, resolve(), 3000);
        let c = incident(3, "B", "web", Level::High, 2000); // never acked: both breached by 5000
        let mut d = incident(4, "C", "web", Level::Medium, 3000); // P3 cancelled
        act(
            &mut d,
            Action::Cancel {
                reason: ResolutionCode::FalsePositive,
                note: None,
            },
            3010,
        );
        let mut e = incident(5, "B", "web", Level::Medium, 4000); // P3 acked 4010, open, running
        act(&mut e, ack(), 4010);
        act(
            &mut e,
            Action::Update(Update {
                major: Some(true),
                ..Update::default()
            }),
            4011,
        );
        vec![a, b, c, d, e]
    }

    fn scope(service: Option<&str>) -> Scope {
        Scope {
            from: t(0),
            to: t(10_000),
            service: service.map(String::from),
        }
    }

    #[test]
    fn the_sla_report_counts_met_breached_running_and_means() {
        let mut r = SlaReport::new(scope(None));
        for inc in history() {
            r.add(&inc, t(5000));
        }
        let p1 = &r.priorities["P1"];
        assert_eq!(p1.incidents, 3);
        assert_eq!(
            (p1.respond.met, p1.respond.breached, p1.respond.running),
            (1, 2, 0)
        );
        assert_eq!(
            (p1.resolve.met, p1.resolve.breached, p1.resolve.running),
            (1, 2, 0)
        );
        assert_eq!(p1.respond.met_ratio, Some(0.3333));
        // MTTA: (50 + 150) / 2; MTTR: (500 + 2000) / 2.
        assert_eq!(p1.mtta.mean_secs, Some(100.0));
        assert_eq!(p1.mttr.mean_secs, Some(1250.0));
        let p3 = &r.priorities["P3"];
        assert_eq!(p3.incidents, 1);
        assert_eq!((p3.respond.met, p3.resolve.running), (1, 1));
        assert_eq!(r.cancelled, 1);
        assert_eq!(r.total.incidents, 4);
        assert_eq!(r.priorities["P5"].respond.met_ratio, None);

        let mut web = SlaReport::new(scope(Some("web")));
        for inc in history() {
            web.add(&inc, t(5000));
        }
        assert_eq!(web.total.incidents, 2);
        assert_eq!(web.cancelled, 1);
    }

    #[test]
    fn the_incident_report_counts_by_service_priority_status_and_day() {
        let mut r = IncidentReport::new(scope(None));
        for inc in history() {
            r.add(&inc);
        }
        assert_eq!(r.total, 5);
        assert_eq!(r.by_service["db"], 2);
        assert_eq!(r.by_service["web"], 3);
        assert_eq!(
            (
                r.by_priority["P1"],
                r.by_priority["P3"],
                r.by_priority["P2"]
            ),
            (3, 2, 0)
        );
        assert_eq!(r.by_status["resolved"], 2);
        assert_eq!(r.by_status["cancelled"], 1);
        assert_eq!(r.by_day.values().sum::<u64>(), 5);
        assert_eq!(r.major, 1);
        // Out of range: not counted.
        let mut r = IncidentReport::new(Scope {
            from: t(1000),
            to: t(3000),
            service: None,
        });
        for inc in history() {
            r.add(&inc);
        }
        assert_eq!(r.total, 2);
    }

    #[test]
    fn the_problem_report_has_backlog_known_errors_and_recurring_keys() {
        use crate::problems::{ProblemAction, ProblemId, ProblemSpec};
        let mut r = ProblemReport::new(scope(None));
        for inc in history() {
            r.add_incident(&inc);
        }
        let spec = ProblemSpec {
            key: "A".into(),
            title: "A again".into(),
            link_recent_secs: 0,
        };
        let (mut known, _) = Problem::open(ProblemId(1), &spec, "r", t(10));
        known
            .act(
                &ProblemAction::KnownError {
                    root_cause: Some("rc".into()),
                    workaround: Some("wa".into()),
                },
                t(20),
            )
            .unwrap();
        let (open, _) = Problem::open(ProblemId(2), &spec, "r", t(20_000));
        r.add_problem(&known);
        r.add_problem(&open);
        let r = r.finish();
        assert_eq!(r.backlog["open"], 1);
        assert_eq!(r.backlog["known_error"], 1);
        assert_eq!(r.opened, 1, "PRB-2 opened after the range");
        assert_eq!(r.known_errors[0].workaround.as_deref(), Some("wa"));
        assert_eq!(
            r.recurring_keys,
            [("A".to_string(), 2), ("B".to_string(), 2)]
        );
    }

    #[test]
    fn the_change_report_joins_incidents_to_their_changes() {
        use crate::changes::{ChangeId, ChangeRequest};
        let req = |service: &str, start: i64| ChangeRequest {
            service: service.into(),
            summary: "deploy".into(),
            window_start: t(start),
            window_end: t(start + 60),
            status: ChangeStatus::Completed,
            external_id: None,
        };
        let (c1, _) = req("db", 900).record(ChangeId(1), "ci", t(900));
        let (c2, _) = req("web", 100).record(ChangeId(2), "ci", t(100));
        let (c3, _) = req("web", 20_000).record(ChangeId(3), "ci", t(100));
        let mut r = ChangeReport::new(scope(None));
        let mut incs = history();
        incs[1].changes = vec![ChangeId(1)];
        for inc in &incs {
            r.add_incident(inc);
        }
        for c in [&c1, &c2, &c3] {
            r.add_change(c);
        }
        let r = r.finish();
        assert_eq!(r.changes.len(), 2, "CHG-3 is outside the range");
        assert_eq!(r.changes[0].incidents, ["INC-2"]);
        assert!(r.changes[1].incidents.is_empty());
        assert_eq!((r.causing_incidents, r.change_caused_incidents), (1, 1));
        assert_eq!(r.by_status["completed"], 2);
    }
}
