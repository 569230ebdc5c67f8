//! The correlation task: the one writer that turns alerts into incident changes.
//!
//! It takes submissions (the alerts of one request) from a bounded channel, gathers
//! whatever is waiting into a batch, runs the rules, applies the pure core's decisions
//! against the store through an in-memory overlay, and writes the whole batch in one
//! store transaction with one flush (group commit). Only then are the submitters
//! answered, so a 200 means "durably stored and the rules run". It runs on its own OS
//! thread because Rhai and sled are synchronous; it owns no signal handling and stops
//! when every sender is gone, after the queue is drained.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::alerts::{Alert, AlertRecord, AlertStatus, Disposition};
use crate::audit::Change;
use crate::incidents::{self, Incident, IncidentId, Placement, Policy};
use crate::rules::{Outcome, Rules};
use crate::store::{Batch, Store, StoreError};
use crate::telemetry::Metrics;

/// Alerts named in one merged audit entry; the rest are counted.
const MERGED_SHOWN: usize = 10;

/// Alerts gathered into one batch at most; more waits for the next commit.
pub const MAX_BATCH_ALERTS: usize = 10_000;

/// The store could not take the batch; nothing of it was written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct Unavailable(pub String);

/// The alerts of one request and where to answer.
pub struct Submission {
    pub alerts: Vec<Alert>,
    pub done: oneshot::Sender<Result<(), Unavailable>>,
}

/// The sending side, given to sources.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Submission>,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// Hands alerts to correlation and waits until they are durably stored.
    /// Waits for room when the queue is full (backpressure, not loss).
    pub async fn submit(&self, alerts: Vec<Alert>) -> Result<(), Unavailable> {
        let (done, answer) = oneshot::channel();
        self.metrics.queue_depth.inc();
        if self.tx.send(Submission { alerts, done }).await.is_err() {
            self.metrics.queue_depth.dec();
            return Err(Unavailable("correlation has stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Unavailable("correlation stopped before answering".into())))
    }
}

pub struct Correlator {
    pub store: Arc<dyn Store>,
    pub rules: Arc<Rules>,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
}

/// Starts the correlation thread. It ends once every [`Queue`] clone is dropped and the
/// queue is drained; `finished` fires then.
pub fn start(
    correlator: Correlator,
    capacity: usize,
) -> std::io::Result<(Queue, oneshot::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(capacity);
    let (finished_tx, finished) = oneshot::channel();
    let queue = Queue {
        tx,
        metrics: correlator.metrics.clone(),
    };
    std::thread::Builder::new()
        .name("correlation".into())
        .spawn(move || {
            correlator.run(rx);
            let _ = finished_tx.send(());
        })?;
    Ok((queue, finished))
}

impl Correlator {
    fn run(self, mut rx: mpsc::Receiver<Submission>) {
        while let Some(first) = rx.blocking_recv() {
            let mut count = first.alerts.len();
            let mut subs = vec![first];
            while count < MAX_BATCH_ALERTS {
                match rx.try_recv() {
                    Ok(s) => {
                        count += s.alerts.len();
                        subs.push(s);
                    }
                    Err(_) => break,
                }
            }
            self.metrics.queue_depth.sub(subs.len() as i64);
            self.metrics.batch_size.observe(count as f64);
            let result = self.process(&subs, Timestamp::now());
            if let Err(e) = &result {
                self.metrics.store_errors.inc();
                tracing::error!(error = %e, alerts = count, "correlation batch not stored; senders get 503");
            }
            for s in subs {
                let _ = s.done.send(result.clone());
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final store flush failed");
        }
        tracing::debug!("correlation queue drained");
    }

    /// Applies one batch and commits it.
    fn process(&self, subs: &[Submission], now: Timestamp) -> Result<(), Unavailable> {
        let unavailable = |e: StoreError| Unavailable(e.to_string());
        let start = self.store.next_incident_number().map_err(unavailable)?;
        let mut pending = Pending::new(&*self.store, start);
        let mut tally = Tally::default();
        for alert in subs.iter().flat_map(|s| &s.alerts) {
            self.apply(&mut pending, alert, now, &mut tally)
                .map_err(unavailable)?;
        }
        let batch = pending.into_batch();
        let started = Instant::now();
        self.store.commit(batch).map_err(unavailable)?;
        self.metrics
            .commit_duration
            .observe(started.elapsed().as_secs_f64());
        self.metrics.incidents_opened.inc_by(tally.opened);
        self.metrics.incidents_reopened.inc_by(tally.reopened);
        self.metrics.incidents_resolved.inc_by(tally.resolved);
        self.metrics.alerts_dropped.inc_by(tally.dropped);
        Ok(())
    }

    fn apply(
        &self,
        p: &mut Pending<'_>,
        alert: &Alert,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let prev = p.alert(&alert.fingerprint)?;
        match prev {
            Some(mut rec) if is_repeat(&rec, alert) => {
                rec.last_seen = now;
                rec.notifications += 1;
                if let Some(id) = rec.incident() {
                    let mut inc = p.incident(id)?;
                    inc.repeat(now);
                    p.put_incident(inc);
                }
                p.put_alert(rec);
            }
            Some(mut rec) if alert.status == AlertStatus::Resolved => {
                // Firing → resolved.
                rec.alert = alert.clone();
                rec.last_seen = now;
                rec.notifications += 1;
                if let Some(id) = rec.incident() {
                    let mut inc = p.incident(id)?;
                    let ended = alert.ends_at.unwrap_or(now);
                    let changes = inc.alert_resolved(
                        &alert.fingerprint,
                        alert.name(),
                        ended,
                        now,
                        &self.policy,
                    );
                    if !inc.status.is_open() && changes.len() > 1 {
                        tally.resolved += 1;
                    }
                    for c in changes {
                        p.audit(now, "system", c);
                    }
                    p.put_incident(inc);
                }
                p.put_alert(rec);
            }
            None if alert.status == AlertStatus::Resolved => {
                p.put_alert(AlertRecord {
                    alert: alert.clone(),
                    first_seen: now,
                    last_seen: now,
                    notifications: 1,
                    disposition: Disposition::Unattached,
                });
            }
            prev => {
                // First firing, or firing again after it resolved: the rules decide.
                let (verdict, failures) = self.rules.decide(alert);
                for f in &failures {
                    self.metrics
                        .rule_errors
                        .with_label_values(&[&f.rule, f.kind])
                        .inc();
                    tracing::warn!(rule = %f.rule, function = f.function, kind = f.kind, error = %f.message,
                        alert = alert.name(), "rule failed; using the next rule or the default");
                }
                let (first_seen, notifications, previous_incident) = match &prev {
                    Some(r) => (r.first_seen, r.notifications + 1, r.incident()),
                    None => (now, 1, None),
                };
                let disposition = match verdict.outcome {
                    Outcome::Drop(reason) => {
                        tally.dropped += 1;
                        tracing::debug!(rule = %verdict.rule, %reason, alert = alert.name(), "alert dropped");
                        Disposition::Dropped {
                            rule: verdict.rule,
                            reason,
                        }
                    }
                    Outcome::Incident(spec) => {
                        let actor = format!("rule:{}", verdict.rule);
                        let latest = p.incident_for_key(&spec.key)?;
                        let mut inc = match incidents::place(latest.as_ref(), now, &self.policy) {
                            Placement::Attach(_) => latest.expect("placed on the latest incident"),
                            Placement::Reopen(_) => {
                                let mut inc = latest.expect("placed on the latest incident");
                                p.audit(now, &actor, inc.reopen(now));
                                tally.reopened += 1;
                                inc
                            }
                            Placement::Open => {
                                let id = p.allocate();
                                let (inc, change) =
                                    Incident::open(id, &spec, &verdict.rule, alert.starts_at, now);
                                p.audit(now, &actor, change);
                                p.keys.insert(spec.key.clone(), id);
                                tally.opened += 1;
                                inc
                            }
                        };
                        let known = previous_incident == Some(inc.id);
                        if !known {
                            p.attachments.push((inc.id, alert.fingerprint.clone()));
                        }
                        p.audit(
                            now,
                            &actor,
                            inc.attach_firing(&alert.fingerprint, alert.name(), known, now),
                        );
                        let id = inc.id;
                        p.put_incident(inc);
                        Disposition::Attached { incident: id }
                    }
                };
                p.put_alert(AlertRecord {
                    alert: alert.clone(),
                    first_seen,
                    last_seen: now,
                    notifications,
                    disposition,
                });
            }
        }
        Ok(())
    }
}

/// A notification that changes no state: same status as stored, or a stale one from a
/// lagging Alertmanager replica (a firing copy of an occurrence that already resolved,
/// or a resolved copy of an older occurrence).
fn is_repeat(rec: &AlertRecord, alert: &Alert) -> bool {
    let stored = &rec.alert;
    match (stored.status, alert.status) {
        (a, b) if a == b => true,
        (AlertStatus::Resolved, AlertStatus::Firing) => alert.starts_at <= stored.starts_at,
        (AlertStatus::Firing, AlertStatus::Resolved) => alert.starts_at < stored.starts_at,
        _ => false,
    }
}

#[derive(Default)]
struct Tally {
    opened: u64,
    reopened: u64,
    resolved: u64,
    dropped: u64,
}

/// A batch being prepared: reads go through the changes made so far in the batch.
struct Pending<'a> {
    store: &'a dyn Store,
    alerts: HashMap<String, AlertRecord>,
    incidents: HashMap<IncidentId, Incident>,
    keys: HashMap<String, IncidentId>,
    attachments: Vec<(IncidentId, String)>,
    audit: Vec<(Timestamp, String, Change)>,
    /// Per record, the index of its last audit entry in `audit`, for merging.
    last_entry: HashMap<String, usize>,
    /// Merged alert entries: index in `audit` → (alerts merged, alert names shown).
    merged: HashMap<usize, (usize, Vec<String>)>,
    counter_start: u64,
    next: u64,
}

impl<'a> Pending<'a> {
    fn new(store: &'a dyn Store, next: u64) -> Self {
        Pending {
            store,
            alerts: HashMap::new(),
            incidents: HashMap::new(),
            keys: HashMap::new(),
            attachments: Vec::new(),
            audit: Vec::new(),
            last_entry: HashMap::new(),
            merged: HashMap::new(),
            counter_start: next,
            next,
        }
    }

    fn alert(&self, fingerprint: &str) -> Result<Option<AlertRecord>, StoreError> {
        match self.alerts.get(fingerprint) {
            Some(r) => Ok(Some(r.clone())),
            None => self.store.alert(fingerprint),
        }
    }

    fn incident(&self, id: IncidentId) -> Result<Incident, StoreError> {
        if let Some(inc) = self.incidents.get(&id) {
            return Ok(inc.clone());
        }
        self.store.incident(id)?.ok_or_else(|| StoreError::Corrupt {
            tree: "incidents",
            key: id.to_string(),
            message: "an alert is attached to an incident that does not exist".into(),
        })
    }

    fn incident_for_key(&self, key: &str) -> Result<Option<Incident>, StoreError> {
        match self.keys.get(key) {
            Some(id) => self.incident(*id).map(Some),
            None => match self.store.incident_for_key(key)? {
                Some(inc) => Ok(Some(self.incidents.get(&inc.id).cloned().unwrap_or(inc))),
                None => Ok(None),
            },
        }
    }

    fn allocate(&mut self) -> IncidentId {
        let id = IncidentId(self.next);
        self.next += 1;
        id
    }

    fn put_alert(&mut self, rec: AlertRecord) {
        self.alerts.insert(rec.alert.fingerprint.clone(), rec);
    }

    fn put_incident(&mut self, inc: Incident) {
        self.incidents.insert(inc.id, inc);
    }

    /// Queues an audit entry. Alerts attached to (or resolved on) one incident in a row
    /// within a batch become one entry: an alert storm writes one entry per incident and
    /// batch, not one per alert; the alerts themselves are linked to the incident.
    fn audit(&mut self, at: Timestamp, actor: &str, change: Change) {
        let mergeable = change.action == incidents::ALERTS_ATTACHED
            || change.action == incidents::ALERTS_RESOLVED;
        if mergeable {
            if let Some(&i) = self.last_entry.get(&change.record) {
                let (_, last_actor, last) = &mut self.audit[i];
                if last.action == change.action && last_actor == actor {
                    last.to = change.to;
                    let (count, shown) = self.merged.entry(i).or_insert_with(|| (1, Vec::new()));
                    *count += 1;
                    if shown.len() < MERGED_SHOWN {
                        shown.extend(change.detail);
                    }
                    return;
                }
            }
        }
        self.last_entry
            .insert(change.record.clone(), self.audit.len());
        if mergeable {
            self.merged.insert(
                self.audit.len(),
                (1, change.detail.iter().cloned().collect()),
            );
        }
        self.audit.push((at, actor.to_string(), change));
    }

    fn into_batch(mut self) -> Batch {
        for (i, (count, shown)) in self.merged {
            let more = count.saturating_sub(shown.len());
            let mut detail = format!("{count} alert(s): {}", shown.join(", "));
            if more > 0 {
                detail.push_str(&format!(" (+{more} more)"));
            }
            self.audit[i].2.detail = Some(detail);
        }
        Batch {
            alerts: self.alerts.into_values().collect(),
            incidents: self.incidents.into_values().collect(),
            incident_counter: (self.next != self.counter_start)
                .then_some((self.counter_start, self.next)),
            keys: self.keys.into_iter().collect(),
            attachments: self.attachments,
            audit: self.audit,
        }
    }
}
