//! Rule fixtures: `<rules dir>/tests/*.toml`, run by `triaged rules test` and by the
//! test suite through the same [`run`].
//!
//! A fixture file holds `[[case]]`s (one alert and the decision expected for it),
//! `[[sequence]]`s (several alerts through the whole pipeline, as the daemon runs them,
//! and the incidents expected afterwards) and `[[mapping]]`s (a webhook body through a
//! mapping script in `mappings/`, and the alerts, or the refused field, expected). Only the fields an expectation names are
//! compared. Times are seconds after 2026-01-01T00:00:00Z, so that a fixture gives the
//! same result whenever it runs.
//!
//! ```toml
//! [[case]]
//! name = "a critical alert pages"
//! alert = { labels = { alertname = "DiskFull", service = "shop", severity = "critical" } }
//! expect = { decision = "incident", rule = "50-severity.rhai", key = "DiskFull/shop", impact = "high" }
//!
//! [[sequence]]
//! name = "a flap within the reopen window reopens the incident"
//! alerts = [
//!   { at = 0, labels = { alertname = "Lag", service = "db" } },
//!   { at = 60, status = "resolved", labels = { alertname = "Lag", service = "db" } },
//!   { at = 120, labels = { alertname = "Lag", service = "db" } },
//! ]
//! incidents = [ { key = "Lag/db", status = "new", reopened = 1, alerts_total = 1 } ]
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Deserialize;

use super::{Outcome, RuleSet, Rules};
use crate::alerts::{Alert, AlertStatus, LabelSet, Source};
use crate::config::{RuleEnv, StoreSettings};
use crate::incidents::{Incident, Policy};

/// The time fixture offsets count from.
const BASE: &str = "2026-01-01T00:00:00Z";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    #[serde(default)]
    case: Vec<Case>,
    #[serde(default)]
    sequence: Vec<Sequence>,
    #[serde(default)]
    mapping: Vec<MappingCase>,
}

/// A webhook body through a mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingCase {
    name: String,
    /// The mapping's file name in `<dir>/mappings/`.
    mapping: String,
    body: serde_json::Value,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The alerts expected, in order (only the fields given are compared).
    #[serde(default)]
    alerts: Vec<ExpectAlert>,
    /// Instead: the field the mapping's refusal names.
    error_field: Option<String>,
    /// The status of the answer the mapping asks for (default: not compared).
    response_status: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectAlert {
    status: Option<AlertStatus>,
    fingerprint: Option<String>,
    /// Labels that must be there with these values (others may be too).
    #[serde(default)]
    labels: LabelSet,
    /// Labels that must not be there.
    #[serde(default)]
    no_labels: Vec<String>,
    #[serde(default)]
    annotations: LabelSet,
    /// RFC 3339.
    starts_at: Option<String>,
    acknowledge: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// One alert, in the fixture's short form…
    alert: Option<FixtureAlert>,
    /// …or an Alertmanager webhook payload (version 4), every alert of which must get
    /// the expected decision.
    payload: Option<serde_json::Value>,
    expect: ExpectDecision,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureAlert {
    /// Seconds after the base time when triaged receives it.
    #[serde(default)]
    at: i64,
    #[serde(default = "firing")]
    status: AlertStatus,
    labels: LabelSet,
    #[serde(default)]
    annotations: LabelSet,
    /// Seconds after the base time when it started (default: `at`).
    starts_at: Option<i64>,
    generator_url: Option<String>,
}

fn firing() -> AlertStatus {
    AlertStatus::Firing
}

/// The decision expected for one alert; unnamed fields are not compared.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectDecision {
    /// `incident` or `drop`.
    decision: String,
    /// The rule file that decides, or `default`.
    rule: Option<String>,
    key: Option<String>,
    title: Option<String>,
    service: Option<String>,
    ci: Option<String>,
    impact: Option<String>,
    urgency: Option<String>,
    major: Option<bool>,
    /// The drop reason.
    reason: Option<String>,
    /// Rule failures expected on the way, as `file:kind` (default: none).
    #[serde(default)]
    failures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sequence {
    name: String,
    alerts: Vec<FixtureAlert>,
    /// The incidents expected after the last alert, oldest first; `key` picks them.
    #[serde(default)]
    incidents: Vec<ExpectIncident>,
    /// How many incidents there are in all (default: not compared).
    incident_count: Option<usize>,
    /// The problems expected after the last alert, oldest first; `key` picks them.
    #[serde(default)]
    problems: Vec<ExpectProblem>,
    /// How many problems there are in all (default: not compared).
    problem_count: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectIncident {
    key: String,
    status: Option<String>,
    title: Option<String>,
    service: Option<String>,
    impact: Option<String>,
    urgency: Option<String>,
    priority: Option<String>,
    major: Option<bool>,
    opened_by: Option<String>,
    alerts_total: Option<u64>,
    alerts_firing: Option<u64>,
    notifications: Option<u64>,
    reopened: Option<u32>,
    resolution: Option<String>,
    /// The incident the key had before (`INC-n`, or `""` for none).
    previous: Option<String>,
    /// Whether it is flapping.
    flapping: Option<bool>,
    /// The problem it is linked to (`PRB-n`, or `""` for none).
    problem: Option<String>,
}

/// A problem expected after a sequence, picked by `key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectProblem {
    key: String,
    title: Option<String>,
    status: Option<String>,
    opened_by: Option<String>,
    /// The linked incidents, `INC-n`, in order.
    incidents: Option<Vec<String>>,
}

/// What a run found: one line per case or sequence, and how many failed.
#[derive(Debug, Default)]
pub struct Report {
    pub text: String,
    pub passed: usize,
    pub failed: usize,
}

/// Runs every fixture file in `dir/tests` against the rules in `dir`. An error is a
/// fixture or rule file that cannot be read or compiled (file:line:column).
pub fn run(dir: &Path, env: &RuleEnv, policy: Policy) -> Result<Report, String> {
    let rules = Rules::load(dir, env).map_err(|e| e.to_string())?;
    let tests = dir.join("tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&tests) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml" || e == "json"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", tests.display())),
    };
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no *.toml or *.json fixtures", tests.display()));
    }
    let base: Timestamp = BASE.parse().expect("the base time parses");
    let mut report = Report::default();
    for file in files {
        let fixture = read(&file)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for case in &fixture.case {
            let alerts = match (&case.alert, &case.payload) {
                (Some(a), None) => vec![a.to_alert(base)],
                (None, Some(payload)) => {
                    let bytes = serde_json::to_vec(payload).expect("JSON serializes");
                    crate::sources::alertmanager::parse(&bytes, base)
                        .map(|(_, alerts)| alerts)
                        .map_err(|e| {
                            format!(
                                "{}: case {:?}: payload: {}: {}",
                                file.display(),
                                case.name,
                                e.field,
                                e.message
                            )
                        })?
                }
                _ => {
                    return Err(format!(
                        "{}: case {:?}: give either alert or payload",
                        file.display(),
                        case.name
                    ))
                }
            };
            let mut diffs = Vec::new();
            for (i, alert) in alerts.iter().enumerate() {
                let found = check_case(&rules, alert, &case.expect);
                if alerts.len() == 1 {
                    diffs.extend(found);
                } else {
                    diffs.extend(found.into_iter().map(|d| format!("alert {}: {d}", i + 1)));
                }
            }
            record(&mut report, &name, &case.name, diffs);
        }
        for seq in &fixture.sequence {
            let diffs = run_sequence(dir, env, policy, base, seq)?;
            record(&mut report, &name, &seq.name, diffs);
        }
        for case in &fixture.mapping {
            let mappings = crate::sources::webhooks::Mappings::load(
                &dir.join("mappings"),
                std::slice::from_ref(&case.mapping),
                env,
            )
            .map_err(|e| e.to_string())?;
            record(
                &mut report,
                &name,
                &case.name,
                check_mapping(&mappings, case, base),
            );
        }
    }
    let _ = write!(
        report.text,
        "{} passed, {} failed",
        report.passed, report.failed
    );
    Ok(report)
}

fn record(report: &mut Report, file: &str, name: &str, diffs: Vec<String>) {
    if diffs.is_empty() {
        report.passed += 1;
        let _ = writeln!(report.text, "ok    {file}: {name}");
    } else {
        report.failed += 1;
        let _ = writeln!(report.text, "FAIL  {file}: {name}");
        for d in diffs {
            let _ = writeln!(report.text, "      {d}");
        }
    }
}

fn read(file: &Path) -> Result<FixtureFile, String> {
    let src = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if file.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&src)
            .map_err(|e| format!("{}:{}:{}: {e}", file.display(), e.line(), e.column()));
    }
    toml::from_str(&src).map_err(|e| {
        let place = e
            .span()
            .map(|span| {
                let before = &src[..span.start.min(src.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        format!("{}{place}: {}", file.display(), e.message())
    })
}

impl FixtureAlert {
    fn to_alert(&self, base: Timestamp) -> Alert {
        let at = |secs: i64| {
            base.checked_add(jiff::SignedDuration::from_secs(secs))
                .unwrap_or(base)
        };
        let received_at = at(self.at);
        Alert {
            source: Source::Alertmanager,
            fingerprint: crate::alerts::fingerprint(&self.labels),
            status: self.status,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: at(self.starts_at.unwrap_or(self.at)),
            ends_at: (self.status == AlertStatus::Resolved).then_some(received_at),
            generator_url: self.generator_url.clone(),
            received_at,
        }
    }
}

fn check_mapping(
    mappings: &crate::sources::webhooks::Mappings,
    case: &MappingCase,
    base: Timestamp,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let mapped = match mappings.map(&case.mapping, &case.body, &case.headers, base) {
        Err(e) => {
            match &case.error_field {
                Some(f) if *f == e.field => {}
                Some(f) => diffs.push(format!(
                    "error field: expected {f:?}, got {:?} ({})",
                    e.field, e.message
                )),
                None => diffs.push(format!("refused: {}: {}", e.field, e.message)),
            }
            return diffs;
        }
        Ok(m) => m,
    };
    if let Some(f) = &case.error_field {
        diffs.push(format!(
            "expected a refusal naming {f:?}, got {} alert(s)",
            mapped.alerts.len()
        ));
        return diffs;
    }
    compare(
        &mut diffs,
        "response status",
        case.response_status,
        mapped.response.as_ref().map_or(200, |r| r.0),
    );
    if mapped.alerts.len() != case.alerts.len() {
        diffs.push(format!(
            "alerts: expected {}, got {}",
            case.alerts.len(),
            mapped.alerts.len()
        ));
        return diffs;
    }
    for (i, (want, got)) in case.alerts.iter().zip(&mapped.alerts).enumerate() {
        let at = |f: &str| format!("alerts[{i}].{f}");
        compare(&mut diffs, &at("status"), want.status, got.status);
        compare(
            &mut diffs,
            &at("fingerprint"),
            want.fingerprint.clone(),
            got.fingerprint.clone(),
        );
        for (k, v) in &want.labels {
            compare(
                &mut diffs,
                &at(&format!("labels.{k}")),
                Some(Some(v.clone())),
                got.labels.get(k).cloned(),
            );
        }
        for k in &want.no_labels {
            if got.labels.contains_key(k) {
                diffs.push(format!(
                    "{}: expected none, got {:?}",
                    at(&format!("labels.{k}")),
                    got.labels[k]
                ));
            }
        }
        for (k, v) in &want.annotations {
            compare(
                &mut diffs,
                &at(&format!("annotations.{k}")),
                Some(Some(v.clone())),
                got.annotations.get(k).cloned(),
            );
        }
        compare(
            &mut diffs,
            &at("starts_at"),
            want.starts_at.clone(),
            got.starts_at.to_string(),
        );
        compare(
            &mut diffs,
            &at("acknowledge"),
            want.acknowledge,
            mapped.acknowledge.contains(&got.fingerprint),
        );
    }
    diffs
}

/// Adds "field: expected X, got Y" when an expected value differs.
fn compare<T: PartialEq + std::fmt::Debug>(
    diffs: &mut Vec<String>,
    field: &str,
    expected: Option<T>,
    actual: T,
) {
    if let Some(e) = expected {
        if e != actual {
            diffs.push(format!("{field}: expected {e:?}, got {actual:?}"));
        }
    }
}

fn check_case(rules: &Rules, alert: &Alert, expect: &ExpectDecision) -> Vec<String> {
    let (verdict, failures) = rules.decide(alert);
    let mut diffs = Vec::new();
    let failures: Vec<String> = failures
        .iter()
        .map(|f| format!("{}:{}", f.rule, f.kind))
        .collect();
    if failures != expect.failures {
        diffs.push(format!(
            "failures: expected {:?}, got {:?}",
            expect.failures, failures
        ));
    }
    compare(
        &mut diffs,
        "rule",
        expect.rule.clone(),
        verdict.rule.clone(),
    );
    match verdict.outcome {
        Outcome::Drop(reason) => {
            compare(
                &mut diffs,
                "decision",
                Some(expect.decision.as_str()),
                "drop",
            );
            compare(&mut diffs, "reason", expect.reason.clone(), reason);
        }
        Outcome::Incident(spec) => {
            compare(
                &mut diffs,
                "decision",
                Some(expect.decision.as_str()),
                "incident",
            );
            compare(&mut diffs, "key", expect.key.clone(), spec.key);
            compare(&mut diffs, "title", expect.title.clone(), spec.title);
            compare(
                &mut diffs,
                "service",
                expect.service.clone(),
                spec.service.unwrap_or_default(),
            );
            compare(
                &mut diffs,
                "ci",
                expect.ci.clone(),
                spec.ci.unwrap_or_default(),
            );
            compare(
                &mut diffs,
                "impact",
                expect.impact.as_deref(),
                spec.impact.as_str(),
            );
            compare(
                &mut diffs,
                "urgency",
                expect.urgency.as_deref(),
                spec.urgency.as_str(),
            );
            compare(&mut diffs, "major", expect.major, spec.major);
        }
    }
    diffs
}

/// The JSON text of a serializable value (statuses, priorities), unquoted.
fn text<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Runs the alerts through a daemon's pipeline (rules, correlation, a store in a
/// temporary directory), one batch per alert, and compares the incidents.
fn run_sequence(
    dir: &Path,
    env: &RuleEnv,
    policy: Policy,
    base: Timestamp,
    seq: &Sequence,
) -> Result<Vec<String>, String> {
    let data = tempfile::TempDir::with_prefix("triaged-rules-test")
        .map_err(|e| format!("cannot create a temporary store: {e}"))?;
    let store = crate::store::open(&StoreSettings {
        data_dir: data.path().to_path_buf(),
        cache_capacity_bytes: 4 << 20,
        checkpoint_interval_secs: 3600,
        checkpoint_max_records: 1_000_000,
        backup_dir: std::path::PathBuf::from("backups"),
        ballast_bytes: 0,
    })
    .map_err(|e| format!("cannot open a temporary store: {e}"))?;
    let metrics = Arc::new(crate::telemetry::Metrics::new());
    let rules = Rules::load(dir, env).map_err(|e| e.to_string())?;
    let correlator = crate::correlation::Correlator {
        store: store.clone(),
        rules: Arc::new(RuleSet::new(
            rules,
            dir,
            env.clone(),
            metrics.rules_reloads.clone(),
        )),
        policy,
        metrics,
        heartbeats: Arc::new(crate::heartbeats::Heartbeats::new(Vec::new(), base)),
        escalation: crate::sla::Escalation::default(),
        next_due: Arc::default(),
        silences: Arc::default(),
        maintenance: Vec::new(),
        routes: Arc::default(),
        outbox_wake: Arc::default(),
    };
    let (queue, finished) = crate::correlation::start(correlator, 16)
        .map_err(|e| format!("cannot start correlation: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let mut diffs = Vec::new();
    runtime.block_on(async {
        for (i, a) in seq.alerts.iter().enumerate() {
            if let Err(e) = queue.submit(vec![a.to_alert(base)]).await {
                diffs.push(format!("alert {}: not stored: {}", i + 1, e.0));
            }
        }
        drop(queue);
        let _ = finished.await;
    });
    let incidents: Vec<Incident> = {
        let mut all = store
            .list_incidents(&crate::store::StatusFilter::Any.into(), usize::MAX)
            .map_err(|e| e.to_string())?;
        all.reverse(); // oldest first
        all
    };
    compare(&mut diffs, "incidents", seq.incident_count, incidents.len());
    let mut by_key: BTreeMap<&str, std::collections::VecDeque<&Incident>> = BTreeMap::new();
    for inc in &incidents {
        by_key.entry(inc.key.as_str()).or_default().push_back(inc);
    }
    for want in &seq.incidents {
        let Some(inc) = by_key
            .get_mut(want.key.as_str())
            .and_then(|q| q.pop_front())
        else {
            let keys: Vec<&str> = incidents.iter().map(|i| i.key.as_str()).collect();
            diffs.push(format!(
                "incident {:?}: expected, but the incidents are {keys:?}",
                want.key
            ));
            continue;
        };
        let mut d = Vec::new();
        compare(&mut d, "status", want.status.clone(), text(&inc.status));
        compare(&mut d, "title", want.title.clone(), inc.title.clone());
        compare(
            &mut d,
            "service",
            want.service.clone(),
            inc.service.clone().unwrap_or_default(),
        );
        compare(
            &mut d,
            "impact",
            want.impact.as_deref(),
            inc.impact.as_str(),
        );
        compare(
            &mut d,
            "urgency",
            want.urgency.as_deref(),
            inc.urgency.as_str(),
        );
        compare(
            &mut d,
            "priority",
            want.priority.clone(),
            text(&inc.priority),
        );
        compare(&mut d, "major", want.major, inc.major);
        compare(
            &mut d,
            "opened_by",
            want.opened_by.clone(),
            inc.opened_by.clone(),
        );
        compare(&mut d, "alerts_total", want.alerts_total, inc.alerts_total);
        compare(
            &mut d,
            "alerts_firing",
            want.alerts_firing,
            inc.alerts_firing,
        );
        compare(
            &mut d,
            "notifications",
            want.notifications,
            inc.notifications,
        );
        compare(&mut d, "reopened", want.reopened, inc.reopened);
        compare(
            &mut d,
            "flapping",
            want.flapping,
            inc.flapping_since.is_some(),
        );
        compare(
            &mut d,
            "problem",
            want.problem.clone(),
            inc.problem.map(|p| p.to_string()).unwrap_or_default(),
        );
        compare(
            &mut d,
            "previous",
            want.previous.clone(),
            inc.previous.map(|p| p.to_string()).unwrap_or_default(),
        );
        compare(
            &mut d,
            "resolution",
            want.resolution.clone(),
            inc.resolution
                .as_ref()
                .map(|r| text(&r.code))
                .unwrap_or_default(),
        );
        diffs.extend(
            d.into_iter()
                .map(|m| format!("{} {}: {m}", inc.id, want.key)),
        );
    }
    let mut problems = store.list_problems(usize::MAX).map_err(|e| e.to_string())?;
    problems.reverse(); // oldest first
    compare(&mut diffs, "problems", seq.problem_count, problems.len());
    let mut taken = vec![false; problems.len()];
    for want in &seq.problems {
        let Some(i) = (0..problems.len()).find(|&i| !taken[i] && problems[i].key == want.key)
        else {
            let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
            diffs.push(format!(
                "problem {:?}: expected, but the problems are {keys:?}",
                want.key
            ));
            continue;
        };
        taken[i] = true;
        let p = &problems[i];
        let mut d = Vec::new();
        compare(&mut d, "title", want.title.clone(), p.title.clone());
        compare(&mut d, "status", want.status.clone(), text(&p.status));
        compare(
            &mut d,
            "opened_by",
            want.opened_by.clone(),
            p.opened_by.clone(),
        );
        compare(
            &mut d,
            "incidents",
            want.incidents.clone(),
            p.incidents.iter().map(|i| i.to_string()).collect(),
        );
        diffs.extend(d.into_iter().map(|m| format!("{} {}: {m}", p.id, want.key)));
    }
    Ok(diffs)
}
