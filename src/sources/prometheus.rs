//! Prometheus pollers (`[[prometheus]]`): for Prometheus servers without an
//! Alertmanager. Mode 1 polls `GET /api/v1/alerts` (firing alerts become alerts; one
//! that disappears resolves); mode 2 evaluates `[[prometheus.queries]]` through
//! `GET /api/v1/query` (each returned series fires once present for `for_secs`, and
//! resolves when gone).
//!
//! A poll that fails (Prometheus down, an error answer) resolves nothing: the source
//! is marked stale until a poll succeeds, and retried with backoff. Parsing and the
//! firing/resolved bookkeeping ([`Tracker`]) are pure; [`run`] is the IO loop.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use crate::alerts::{Alert, AlertStatus, LabelSet, Source};

/// One `[[prometheus.queries]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub alertname: String,
    pub expr: String,
    pub for_secs: u64,
    pub labels: LabelSet,
    pub annotations: LabelSet,
}

/// How to authenticate to Prometheus. `Debug` never prints secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(..)",
            Auth::Basic { .. } => "Basic(..)",
        })
    }
}

/// One `[[prometheus]]` poller, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poller {
    pub name: String,
    /// Base URL, without a trailing slash.
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Mode 1: poll `/api/v1/alerts`.
    pub alerts: bool,
    /// An alert absent from this many seconds of successful polls resolves (a restarted
    /// Prometheus answers without its alerts until its rules have run again).
    pub resolve_grace_secs: u64,
    pub queries: Vec<Query>,
    pub auth: Auth,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AlertsData {
    alerts: Vec<PromAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromAlert {
    labels: LabelSet,
    #[serde(default)]
    annotations: LabelSet,
    state: String,
    active_at: Option<Timestamp>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Vec<Series>,
}

#[derive(Debug, Deserialize)]
struct Series {
    metric: LabelSet,
    value: Option<(f64, String)>,
}

fn envelope<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let e: Envelope<T> =
        serde_json::from_slice(body).map_err(|e| format!("not a Prometheus API answer: {e}"))?;
    if e.status != "success" {
        return Err(format!(
            "Prometheus answered {}: {}",
            e.status,
            e.error.unwrap_or_default()
        ));
    }
    e.data
        .ok_or_else(|| "a successful answer without data".to_string())
}

fn alert(
    poller: &str,
    labels: LabelSet,
    mut annotations: LabelSet,
    starts_at: Timestamp,
    now: Timestamp,
) -> Alert {
    annotations.insert("prometheus".into(), poller.to_string());
    Alert {
        source: Source::Prometheus,
        fingerprint: crate::alerts::fingerprint(&labels),
        status: AlertStatus::Firing,
        labels,
        annotations,
        starts_at,
        ends_at: None,
        generator_url: None,
        received_at: now,
    }
}

/// The firing alerts of a `/api/v1/alerts` answer (pending ones are Prometheus' `for`).
pub fn parse_alerts(poller: &str, body: &[u8], now: Timestamp) -> Result<Vec<Alert>, String> {
    let data: AlertsData = envelope(body)?;
    Ok(data
        .alerts
        .into_iter()
        .filter(|a| a.state == "firing" && a.labels.contains_key("alertname"))
        .map(|a| {
            let mut annotations = a.annotations;
            if let Some(v) = a.value {
                annotations.insert("value".into(), v);
            }
            alert(
                poller,
                a.labels,
                annotations,
                a.active_at.unwrap_or(now),
                now,
            )
        })
        .collect())
}

/// The series of a `/api/v1/query` answer as alerts of `query` (labels: the series',
/// the query's, `alertname`; annotation `value`).
pub fn parse_query(
    poller: &str,
    query: &Query,
    body: &[u8],
    now: Timestamp,
) -> Result<Vec<Alert>, String> {
    let data: QueryData = envelope(body)?;
    if data.result_type != "vector" {
        return Err(format!(
            "query {:?} gives a {}, expected an instant vector",
            query.alertname, data.result_type
        ));
    }
    Ok(data
        .result
        .into_iter()
        .map(|s| {
            let mut labels = s.metric;
            labels.remove("__name__");
            labels.extend(query.labels.clone());
            labels.insert("alertname".into(), query.alertname.clone());
            let mut annotations = query.annotations.clone();
            if let Some((_, v)) = s.value {
                annotations.insert("value".into(), v);
            }
            alert(poller, labels, annotations, now, now)
        })
        .collect())
}

/// What a poller has reported firing, and what waits out a query's `for_secs`.
#[derive(Debug)]
pub struct Tracker {
    /// Reported firing, by fingerprint.
    active: HashMap<String, Alert>,
    /// Query series seen but not yet present for `for_secs`: since when.
    pending: HashMap<String, Timestamp>,
    /// Reported firing, absent from the polls since when.
    missing: HashMap<String, Timestamp>,
    /// How long an alert may be absent before it resolves.
    grace_secs: u64,
}

impl Tracker {
    /// A tracker that knows what the store has firing from this poller (after a
    /// restart, an alert gone meanwhile resolves once absent for `grace_secs`).
    pub fn resume(active: Vec<Alert>, grace_secs: u64) -> Tracker {
        Tracker {
            active: active
                .into_iter()
                .map(|a| (a.fingerprint.clone(), a))
                .collect(),
            pending: HashMap::new(),
            missing: HashMap::new(),
            grace_secs,
        }
    }

    /// A successful poll's result: what is present now, each with the `for_secs` it
    /// must be present for (0 for Prometheus' own alerts). Returns the alerts to
    /// submit: every firing one (a repeat only counts up) and a resolved copy of each
    /// one reported before that has been gone for the grace time (it ended when it was
    /// first missed).
    pub fn observe(&mut self, present: Vec<(Alert, u64)>, now: Timestamp) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (a, for_secs) in present {
            seen.insert(a.fingerprint.clone());
            if !self.active.contains_key(&a.fingerprint) {
                let since = *self.pending.entry(a.fingerprint.clone()).or_insert(now);
                let held = now.duration_since(since).as_secs();
                if (held as u64) < for_secs {
                    continue;
                }
                self.pending.remove(&a.fingerprint);
                let mut a = a;
                if for_secs > 0 {
                    a.starts_at = since;
                }
                self.active.insert(a.fingerprint.clone(), a.clone());
                out.push(a);
            } else {
                let starts_at = self.active[&a.fingerprint].starts_at;
                let mut a = a;
                a.starts_at = starts_at;
                out.push(a);
            }
        }
        self.pending.retain(|fp, _| seen.contains(fp));
        self.missing.retain(|fp, _| !seen.contains(fp));
        let absent: Vec<String> = self
            .active
            .keys()
            .filter(|fp| !seen.contains(*fp))
            .cloned()
            .collect();
        for fp in absent {
            let since = *self.missing.entry(fp.clone()).or_insert(now);
            if (now.duration_since(since).as_secs() as u64) < self.grace_secs {
                continue;
            }
            self.missing.remove(&fp);
            let mut a = self.active.remove(&fp).expect("listed");
            a.status = AlertStatus::Resolved;
            a.ends_at = Some(since);
            a.received_at = now;
            out.push(a);
        }
        out
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }
}

/// Everything a poll cycle needs to reach Prometheus.
struct Client {
    http: reqwest::Client,
    poller: Poller,
}

impl Client {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        let mut req = self
            .http
            .get(format!("{}{path}", self.poller.url))
            .query(query)
            .timeout(self.poller.timeout);
        req = match &self.poller.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.poller.url))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("cannot read the answer of {}: {e}", self.poller.url))?;
        if !status.is_success() && status.as_u16() != 400 && status.as_u16() != 422 {
            return Err(format!("{} answered {status}", self.poller.url));
        }
        Ok(body.to_vec())
    }

    /// One poll: everything present now, or why the poll failed.
    async fn poll(&self, now: Timestamp) -> Result<Vec<(Alert, u64)>, String> {
        let mut present = Vec::new();
        let name = &self.poller.name;
        if self.poller.alerts {
            let body = self.get("/api/v1/alerts", &[]).await?;
            present.extend(parse_alerts(name, &body, now)?.into_iter().map(|a| (a, 0)));
        }
        for q in &self.poller.queries {
            let body = self
                .get("/api/v1/query", &[("query", q.expr.as_str())])
                .await?;
            present.extend(
                parse_query(name, q, &body, now)?
                    .into_iter()
                    .map(|a| (a, q.for_secs)),
            );
        }
        Ok(present)
    }
}

/// What the loop reports to the rest of the daemon.
pub struct Reporting {
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// Names of stale sources (shown by `/readyz`).
    pub stale: Arc<Mutex<BTreeSet<String>>>,
}

/// Polls until `shutdown` fires: every `interval` after a success; after a failure
/// again after 1 s, doubling up to the interval.
pub async fn run(
    poller: Poller,
    mut tracker: Tracker,
    queue: crate::correlation::Queue,
    report: Reporting,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let http = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(source = %poller.name, error = %e, "cannot build the HTTP client; the poller does not run");
            return;
        }
    };
    let name = poller.name.clone();
    let client = Client { http, poller };
    let mut backoff = Duration::from_secs(1);
    let set_stale = |stale: bool| {
        report
            .metrics
            .source_stale
            .with_label_values(&[&name])
            .set(i64::from(stale));
        let mut set = report.stale.lock().unwrap_or_else(|p| p.into_inner());
        if stale {
            set.insert(name.clone());
        } else {
            set.remove(&name);
        }
    };
    loop {
        let now = Timestamp::now();
        let wait = match client.poll(now).await {
            Ok(present) => {
                let alerts = tracker.observe(present, now);
                match queue.submit(alerts).await {
                    Ok(()) => {
                        report
                            .metrics
                            .source_polls
                            .with_label_values(&[&name, "success"])
                            .inc();
                        set_stale(false);
                        backoff = Duration::from_secs(1);
                        client.poller.interval
                    }
                    Err(e) => {
                        // Not stored: the next poll submits them again.
                        tracing::warn!(source = %name, error = %e, "polled alerts not stored; retrying");
                        report
                            .metrics
                            .source_polls
                            .with_label_values(&[&name, "failure"])
                            .inc();
                        Duration::from_secs(1)
                    }
                }
            }
            Err(e) => {
                tracing::warn!(source = %name, error = %e, retry_secs = backoff.as_secs(), "Prometheus poll failed; nothing resolves until it answers");
                report
                    .metrics
                    .source_polls
                    .with_label_values(&[&name, "failure"])
                    .inc();
                set_stale(true);
                let wait = backoff;
                backoff = (backoff * 2).min(client.poller.interval.max(Duration::from_secs(1)));
                wait
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The firing alerts a poller reported before a restart, from the store.
pub fn stored_active(
    store: &dyn crate::store::Store,
    poller: &str,
) -> Result<Vec<Alert>, crate::store::StoreError> {
    Ok(store
        .list_alerts(Some(AlertStatus::Firing), 10_000)?
        .into_iter()
        .map(|r| r.alert)
        .filter(|a| {
            a.source == Source::Prometheus
                && a.annotations.get("prometheus").map(String::as_str) == Some(poller)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    /// Prometheus' documented `/api/v1/alerts` answer, plus a pending alert.
    const ALERTS: &str = r#"{"data":{"alerts":[
        {"activeAt":"2018-07-04T20:27:12.60602144+02:00","annotations":{},"labels":{"alertname":"my-alert"},"state":"firing","value":"1e+00"},
        {"activeAt":"2018-07-04T20:27:12Z","annotations":{},"labels":{"alertname":"later"},"state":"pending","value":"1e+00"}
        ]},"status":"success"}"#;

    #[test]
    fn firing_alerts_are_read_pending_ones_are_left_to_prometheus() {
        let got = parse_alerts("p", ALERTS.as_bytes(), t(0)).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels["alertname"], "my-alert");
        assert_eq!(got[0].annotations["prometheus"], "p");
        assert_eq!(got[0].annotations["value"], "1e+00");
        assert_eq!(
            got[0].starts_at,
            "2018-07-04T18:27:12.60602144Z".parse().unwrap()
        );
        assert!(
            parse_alerts("p", br#"{"status":"error","error":"boom"}"#, t(0))
                .unwrap_err()
                .contains("boom")
        );
        assert!(parse_alerts("p", b"<html>", t(0)).is_err());
    }

    #[test]
    fn query_series_become_alerts_of_the_query() {
        let q = Query {
            alertname: "Up".into(),
            expr: "up".into(),
            for_secs: 0,
            labels: [("severity".to_string(), "warning".to_string())].into(),
            annotations: LabelSet::new(),
        };
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"prometheus","instance":"localhost:9090"},"value":[1435781451.781,"1"]}]}}"#;
        let got = parse_query("p", &q, body, t(0)).unwrap();
        assert_eq!(got[0].labels["alertname"], "Up");
        assert_eq!(got[0].labels["job"], "prometheus");
        assert_eq!(got[0].labels["severity"], "warning");
        assert!(!got[0].labels.contains_key("__name__"));
        assert_eq!(got[0].annotations["value"], "1");
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[]}}"#;
        assert!(parse_query("p", &q, scalar, t(0)).is_err());
    }

    fn a(name: &str) -> Alert {
        alert(
            "p",
            [("alertname".to_string(), name.to_string())].into(),
            LabelSet::new(),
            t(0),
            t(0),
        )
    }

    #[test]
    fn the_tracker_fires_after_for_and_resolves_what_is_gone() {
        let mut tr = Tracker::resume(Vec::new(), 0);
        // Present for 0 s of 10: nothing yet; Prometheus' own alert fires at once.
        let out = tr.observe(vec![(a("Q"), 10), (a("P"), 0)], t(0));
        assert_eq!(
            out.iter()
                .map(|x| x.labels["alertname"].as_str())
                .collect::<Vec<_>>(),
            ["P"]
        );
        assert!(tr.observe(vec![(a("Q"), 10), (a("P"), 0)], t(9)).len() == 1);
        let out = tr.observe(vec![(a("Q"), 10), (a("P"), 0)], t(10));
        let q = out
            .iter()
            .find(|x| x.labels["alertname"] == "Q")
            .expect("Q fires after 10 s");
        assert_eq!(q.starts_at, t(0), "it started when first seen");
        // Gone: resolved once; a pending series that goes never fired.
        let out = tr.observe(vec![(a("Q"), 10)], t(20));
        assert_eq!(out.len(), 2);
        let p = out.iter().find(|x| x.labels["alertname"] == "P").unwrap();
        assert_eq!((p.status, p.ends_at), (AlertStatus::Resolved, Some(t(20))));
        assert_eq!(tr.observe(vec![(a("Q"), 10)], t(30)).len(), 1);
        let mut tr = Tracker::resume(Vec::new(), 0);
        tr.observe(vec![(a("R"), 60)], t(0));
        assert!(
            tr.observe(vec![], t(5)).is_empty(),
            "a pending series that went never fired"
        );
        // Resumed from the store: what is gone resolves at the first poll.
        let mut tr = Tracker::resume(vec![a("Old")], 0);
        let out = tr.observe(vec![], t(1));
        assert_eq!(out[0].status, AlertStatus::Resolved);
        assert_eq!(tr.active(), 0);
    }

    #[test]
    fn an_alert_resolves_only_after_the_grace_time_absent() {
        let mut tr = Tracker::resume(Vec::new(), 10);
        tr.observe(vec![(a("P"), 0)], t(0));
        // A restarted Prometheus answers without it for a while: nothing resolves.
        assert!(tr.observe(vec![], t(1)).is_empty());
        assert!(tr.observe(vec![], t(10)).is_empty());
        assert_eq!(
            tr.observe(vec![(a("P"), 0)], t(11))[0].status,
            AlertStatus::Firing
        );
        // Gone for good: resolved once the grace time has passed, as of when it went.
        assert!(tr.observe(vec![], t(20)).is_empty());
        let out = tr.observe(vec![], t(30));
        assert_eq!(
            (out[0].status, out[0].ends_at),
            (AlertStatus::Resolved, Some(t(20)))
        );
    }
}
