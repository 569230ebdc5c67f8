//! The correlation task: the one writer that turns alerts into incident changes.
//!
//! It takes submissions (the alerts of one request) from a bounded channel, gathers
//! whatever is waiting into a batch, runs the rules, applies the pure core's decisions
//! against the store through an in-memory overlay, and commits the whole batch as one
//! atomic, durable store write (one log append and one fdatasync: group commit). Only
//! then are the submitters answered, so a 200 means "durably stored and the rules run".
//! It runs on its own OS thread because Rhai and the store are synchronous; it owns no
//! signal handling and stops when every sender is gone, after the queue is drained and
//! a last checkpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::alerts::{Alert, AlertState, AlertStatus, Disposition};
use crate::audit::Change;
use crate::incidents::{self, Action, Incident, IncidentId, Placement, Policy, Refusal};
use crate::outbox::routing::{LiveRoutes, Routes, Subject};
use crate::outbox::{Delivery, Draft, EventKind, ExternalRef};
use crate::problems::{ManualProblem, Problem, ProblemAction, ProblemId};
use crate::rules::{History, Outcome, RuleSet, Rules};
use crate::silences::{MaintenanceWindow, Quiet, QuietReason, SilenceId, SilenceSet};
use crate::sla;
use crate::store::{Batch, Store, StoreError, Ticket};
use crate::telemetry::Metrics;

/// Alerts named in one merged audit entry; the rest are counted.
const MERGED_SHOWN: usize = 10;

/// Alerts gathered into one batch at most; more waits for the next commit.
pub const MAX_BATCH_ALERTS: usize = 10_000;

/// The store could not take the batch; nothing of it was written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct Unavailable(pub String);

/// What one submission asks of correlation.
#[derive(Debug)]
pub enum Work {
    /// The alerts of one request (none: a tick, so that time-driven work happens
    /// without alerts).
    Alerts(Vec<Alert>),
    /// An operator's action on an incident, by `actor` (`token:<name>`).
    Act {
        id: IncidentId,
        action: Action,
        actor: String,
    },
    /// An operator's action on a problem.
    ActProblem {
        id: ProblemId,
        action: ProblemAction,
        actor: String,
    },
    /// A problem opened by hand.
    OpenProblem {
        problem: ManualProblem,
        actor: String,
    },
    /// Alerts read from log files, with the read positions they were read up to:
    /// stored in the same commit, so a restart neither loses nor repeats a line.
    Logged {
        alerts: Vec<Alert>,
        offsets: Vec<((String, String), u64)>,
    },
    /// An incident linked to a problem by hand.
    LinkProblem {
        id: ProblemId,
        incident: IncidentId,
        actor: String,
    },
    /// The outbox worker's record of an attempt: the delivery's new state, and what
    /// the sink created for the event's incident (kept on it, in the same commit).
    Delivered {
        delivery: Delivery,
        record: String,
        reference: Option<ExternalRef>,
    },
    /// An operator's retry of an event's dead letters (every dead one, or `sink`'s).
    Requeue {
        seq: u64,
        sink: Option<String>,
        actor: String,
    },
}

/// A submission and where to answer it.
pub struct Submission {
    work: Work,
    done: oneshot::Sender<Answer>,
    /// When its task queued it (`triaged_correlation_stage_seconds`).
    queued_at: Instant,
}

/// A submission's outcome, and when the sync of its batch ended (`None`: its batch
/// never reached a sync).
struct Answer {
    result: Result<Reply, Unavailable>,
    synced_at: Option<Instant>,
    /// The submission's work, handed back so that the submitter's task frees it: the
    /// alerts were allocated on that HTTP worker, and freeing them there keeps the
    /// frees out of the correlation thread's batch time (2.6 % of its samples) and
    /// local to the worker's allocator cache instead of remote.
    spent: Work,
}

impl Submission {
    fn alerts(&self) -> &[Alert] {
        match &self.work {
            Work::Alerts(a) | Work::Logged { alerts: a, .. } => a,
            _ => &[],
        }
    }
}

/// The answer to a submission, sent once its batch is durable.
#[derive(Debug, Clone)]
pub enum Reply {
    Stored,
    /// The incident as the action left it, or why nothing changed.
    Acted(Result<Box<Incident>, ActionError>),
    /// The problem as the action left it, or why nothing changed.
    Problem(Result<Box<Problem>, ActionError>),
    /// The deliveries a retry made pending again.
    Requeued(Result<Vec<Delivery>, ActionError>),
}

/// Why an operator's action changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// A record the request names does not exist (404, naming the field).
    #[error("{message}")]
    NotFound {
        field: &'static str,
        message: String,
    },
    /// Not possible in the record's current status (409).
    #[error("{message}")]
    Conflict { current: String, message: String },
    /// Needs a field the request lacks (422).
    #[error("{message}")]
    Missing {
        field: &'static str,
        message: String,
    },
}

impl From<Refusal> for ActionError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::State { current, message } => ActionError::Conflict {
                current: current.to_string(),
                message,
            },
            Refusal::Missing { field, message } => ActionError::Missing { field, message },
        }
    }
}

fn no_incident(id: IncidentId, field: &'static str) -> ActionError {
    ActionError::NotFound {
        field,
        message: format!("no incident {id}"),
    }
}

fn no_problem(id: ProblemId) -> ActionError {
    ActionError::NotFound {
        field: "id",
        message: format!("no problem {id}"),
    }
}

/// The sending side, given to sources.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Submission>,
    metrics: Arc<Metrics>,
}

impl Queue {
    async fn send(&self, work: Work) -> Result<Reply, Unavailable> {
        let (done, answer) = oneshot::channel();
        self.metrics.queue_depth.inc();
        let submission = Submission {
            work,
            done,
            queued_at: Instant::now(),
        };
        if self.tx.send(submission).await.is_err() {
            self.metrics.queue_depth.dec();
            return Err(Unavailable("correlation has stopped".into()));
        }
        match answer.await {
            Ok(Answer {
                result,
                synced_at,
                spent,
            }) => {
                if let Some(at) = synced_at {
                    self.metrics.stages.answered.observe(secs_since(at));
                }
                // Freed here, on the worker that allocated it (see `Answer::spent`).
                drop(spent);
                result
            }
            Err(_) => Err(Unavailable("correlation stopped before answering".into())),
        }
    }

    /// Hands alerts to correlation and waits until they are durably stored.
    /// Waits for room when the queue is full (backpressure, not loss).
    pub async fn submit(&self, alerts: Vec<Alert>) -> Result<(), Unavailable> {
        self.send(Work::Alerts(alerts)).await.map(|_| ())
    }

    /// Hands alerts read from log files to correlation with the read positions they
    /// were read up to; both are stored in one commit.
    pub async fn submit_logged(
        &self,
        alerts: Vec<Alert>,
        offsets: Vec<((String, String), u64)>,
    ) -> Result<(), Unavailable> {
        self.send(Work::Logged { alerts, offsets })
            .await
            .map(|_| ())
    }

    /// Applies an operator's action to an incident; answers once it is durable (or
    /// refused, with nothing written).
    pub async fn act(
        &self,
        id: IncidentId,
        action: Action,
        actor: String,
    ) -> Result<Result<Incident, ActionError>, Unavailable> {
        match self.send(Work::Act { id, action, actor }).await? {
            Reply::Acted(r) => Ok(r.map(|inc| *inc)),
            _ => Err(Unavailable(
                "correlation answered another kind of work".into(),
            )),
        }
    }

    /// Records an outbox delivery attempt; answers once durable.
    pub async fn delivered(
        &self,
        delivery: Delivery,
        record: String,
        reference: Option<ExternalRef>,
    ) -> Result<(), Unavailable> {
        self.send(Work::Delivered {
            delivery,
            record,
            reference,
        })
        .await
        .map(|_| ())
    }

    /// Makes an event's dead letters pending again; answers with them once durable.
    pub async fn requeue(
        &self,
        seq: u64,
        sink: Option<String>,
        actor: String,
    ) -> Result<Result<Vec<Delivery>, ActionError>, Unavailable> {
        match self.send(Work::Requeue { seq, sink, actor }).await? {
            Reply::Requeued(r) => Ok(r),
            _ => Err(Unavailable(
                "correlation answered another kind of work".into(),
            )),
        }
    }

    /// Problem work (an action, opening one, linking an incident); answers with the
    /// problem once durable.
    pub async fn problem(&self, work: Work) -> Result<Result<Problem, ActionError>, Unavailable> {
        match self.send(work).await? {
            Reply::Problem(r) => Ok(r.map(|p| *p)),
            _ => Err(Unavailable(
                "correlation answered another kind of work".into(),
            )),
        }
    }
}

/// The most earlier incidents one `problem(...)` links (`link_recent_secs`).
const MAX_LINKED: usize = 1000;

pub struct Correlator {
    pub store: Arc<dyn Store>,
    /// Read once per batch: a reload takes effect between two batches.
    pub rules: Arc<RuleSet>,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
    /// Told of every alert received (dead-man switches).
    pub heartbeats: Arc<crate::heartbeats::Heartbeats>,
    /// The escalation levels of unacknowledged incidents.
    pub escalation: sla::Escalation,
    /// Silences in force (written by the silences API).
    pub silences: Arc<SilenceSet>,
    /// `[[maintenance]]` windows.
    pub maintenance: Vec<MaintenanceWindow>,
    /// When the earliest SLA clock has something to record (Unix nanoseconds;
    /// `i64::MAX`: none), for the daemon's timer task to send a tick then.
    pub next_due: Arc<AtomicI64>,
    /// Where outbox events go (`[[routes]]`), read once per batch.
    pub routes: Arc<LiveRoutes>,
    /// Woken once a batch with something to deliver is durable (the outbox worker).
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

/// The SLA clocks of open incidents, by when each has something to record next (or its
/// quiet time ends), and the open incidents kept quiet by a silence (which can be
/// expired early).
#[derive(Default)]
struct Timers {
    due: BTreeSet<(Timestamp, IncidentId)>,
    of: HashMap<IncidentId, Timestamp>,
    silenced: HashMap<IncidentId, SilenceId>,
}

impl Timers {
    /// Watches the incident as it is now.
    fn watch(&mut self, w: &Watch) {
        self.set(w.id, w.due);
        match w.silence {
            Some(sid) => {
                self.silenced.insert(w.id, sid);
            }
            None => {
                self.silenced.remove(&w.id);
            }
        }
    }

    fn set(&mut self, id: IncidentId, due: Option<Timestamp>) {
        if let Some(old) = self.of.remove(&id) {
            self.due.remove(&(old, id));
        }
        if let Some(t) = due {
            self.of.insert(id, t);
            self.due.insert((t, id));
        }
    }

    /// Incidents whose next event is due before `now` (a deadline is missed once it
    /// has passed).
    fn due_by(&self, now: Timestamp) -> Vec<IncidentId> {
        self.due
            .range(..(now, IncidentId(0)))
            .map(|(_, id)| *id)
            .collect()
    }

    fn next(&self) -> i64 {
        self.due.first().map_or(i64::MAX, |(t, _)| {
            i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
        })
    }
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
        // Each batch is appended and then synced here, before the next one is taken:
        // the submissions that arrive meanwhile make the next batch, so one fdatasync
        // serves every request that waited for it (group commit), with no hand-over to
        // another thread (on this 2-core machine each wake of a parked thread cost more
        // than the pipelining of a separate sync thread won, BENCHMARKS.md session 12).
        // A batch is therefore read from the store by the next one: nothing appended
        // is left unsynced in between. A failed sync fails the log, and every later
        // append with it, until a restart.
        let mut clock = Timestamp::MIN;
        // Flapping incidents, watched until they settle (ticks come from the daemon's
        // timer task as empty submissions).
        let mut flapping: BTreeSet<IncidentId> = match self.store.flapping_incidents() {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the flapping incidents; they settle on their next alert");
                BTreeSet::new()
            }
        };
        self.metrics.incidents_flapping.set(flapping.len() as i64);
        let mut timers = self.load_timers();
        self.next_due.store(timers.next(), Ordering::SeqCst);
        while let Some(first) = rx.blocking_recv() {
            let mut count = first.alerts().len();
            let mut subs = vec![first];
            while count < MAX_BATCH_ALERTS {
                match rx.try_recv() {
                    Ok(s) => {
                        count += s.alerts().len();
                        subs.push(s);
                    }
                    Err(_) => break,
                }
            }
            let taken = Instant::now();
            for s in &subs {
                let waited = taken.saturating_duration_since(s.queued_at);
                self.metrics.stages.queued.observe(waited.as_secs_f64());
            }
            self.metrics.queue_depth.sub(subs.len() as i64);
            self.metrics.batch_size.observe(count as f64);
            // The batch's time: the latest receive time of its alerts, never earlier than
            // the previous batch's. Records follow when alerts arrived, so the same
            // alerts give the same records when replayed (`triaged rules test`).
            clock = subs
                .iter()
                .flat_map(|s| s.alerts())
                .map(|a| a.received_at)
                .max()
                .unwrap_or_else(Timestamp::now)
                .max(clock);
            match self.process(&subs, clock, &flapping, &mut timers) {
                Ok((ticket, watched, tally, replies)) => {
                    for w in &watched {
                        if w.flapping {
                            flapping.insert(w.id);
                        } else {
                            flapping.remove(&w.id);
                        }
                        timers.watch(w);
                    }
                    self.next_due.store(timers.next(), Ordering::SeqCst);
                    self.metrics.incidents_flapping.set(flapping.len() as i64);
                    let correlated = secs_since(taken);
                    for _ in &subs {
                        self.metrics.stages.correlated.observe(correlated);
                    }
                    let senders = subs
                        .into_iter()
                        .zip(replies)
                        .map(|(s, reply)| (s.done, reply, s.work))
                        .collect();
                    self.sync_and_answer(ticket, senders, &tally);
                }
                Err(e) => {
                    self.metrics.store_errors.inc();
                    tracing::error!(error = %e, alerts = count, "correlation batch not stored; senders get 503");
                    for s in subs {
                        let _ = s.done.send(Answer {
                            result: Err(e.clone()),
                            synced_at: None,
                            spent: s.work,
                        });
                    }
                }
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final checkpoint failed; the next start replays the log");
        }
        tracing::debug!("correlation queue drained");
    }

    /// Makes an appended batch durable (one fdatasync covers it and any batch appended
    /// before it) and answers its senders: 200 only once the batch is durable.
    fn sync_and_answer(
        &self,
        ticket: Ticket,
        senders: Vec<(oneshot::Sender<Answer>, Reply, Work)>,
        t: &Tally,
    ) {
        let started = Instant::now();
        let result = self
            .store
            .sync(ticket)
            .map_err(|e| Unavailable(e.to_string()));
        let synced_at = Instant::now();
        let took = synced_at.duration_since(started).as_secs_f64();
        self.metrics.commit_duration.observe(took);
        for _ in &senders {
            self.metrics.stages.synced.observe(took);
        }
        match &result {
            Ok(()) => {
                if t.outbox > 0 {
                    self.outbox_wake.notify_one();
                }
                let m = &self.metrics;
                m.incidents_opened.inc_by(t.opened);
                m.incidents_reopened.inc_by(t.reopened);
                m.incidents_resolved.inc_by(t.resolved);
                m.alerts_dropped.inc_by(t.dropped);
                for (target, n) in [
                    ("respond", t.breached_respond),
                    ("resolve", t.breached_resolve),
                ] {
                    if n > 0 {
                        m.sla_breaches.with_label_values(&[target]).inc_by(n);
                    }
                }
                m.escalations.inc_by(t.escalated);
            }
            Err(e) => {
                self.metrics.store_errors.inc();
                tracing::error!(error = %e, "store sync failed; senders get 503");
            }
        }
        for (s, reply, spent) in senders {
            let _ = s.send(Answer {
                result: result.clone().map(|()| reply),
                synced_at: Some(synced_at),
                spent,
            });
        }
    }

    /// Applies one batch and appends it to the store (not yet synced).
    fn process(
        &self,
        subs: &[Submission],
        now: Timestamp,
        flapping: &BTreeSet<IncidentId>,
        timers: &mut Timers,
    ) -> Result<(Ticket, Vec<Watch>, Tally, Vec<Reply>), Unavailable> {
        let unavailable = |e: StoreError| Unavailable(e.to_string());
        let start = self.store.next_incident_number().map_err(unavailable)?;
        let start_problem = self.store.next_problem_number().map_err(unavailable)?;
        let mut pending = Pending::new(&*self.store, start, start_problem);
        let mut tally = Tally::default();
        let rules = self.rules.current();
        let mut replies = Vec::with_capacity(subs.len());
        for sub in subs {
            match &sub.work {
                Work::Alerts(alerts) => {
                    for alert in alerts {
                        self.heartbeats.observe(alert);
                        self.apply(&mut pending, &rules, alert, now, &mut tally)
                            .map_err(unavailable)?;
                    }
                    replies.push(Reply::Stored);
                }
                Work::Logged { alerts, offsets } => {
                    for alert in alerts {
                        self.heartbeats.observe(alert);
                        self.apply(&mut pending, &rules, alert, now, &mut tally)
                            .map_err(unavailable)?;
                    }
                    pending.log_offsets.extend(offsets.iter().cloned());
                    replies.push(Reply::Stored);
                }
                Work::Act { id, action, actor } => {
                    let acted = self
                        .act(&mut pending, *id, action, actor, now, &mut tally)
                        .map_err(unavailable)?;
                    replies.push(Reply::Acted(acted));
                }
                Work::Delivered {
                    delivery,
                    record,
                    reference,
                } => {
                    if let (Some(r), Ok(id)) = (reference, record.parse::<IncidentId>()) {
                        if pending.peek_incident(id).map_err(unavailable)?.is_some() {
                            let inc = pending.incident_mut(id).map_err(unavailable)?;
                            if let Some(change) = inc.add_external_ref(r.clone()) {
                                pending.audit(now, &format!("sink:{}", r.sink), change);
                            }
                        }
                    }
                    pending.deliveries.push(delivery.clone());
                    replies.push(Reply::Stored);
                }
                Work::Requeue { seq, sink, actor } => {
                    let done = requeue(&mut pending, *seq, sink.as_deref(), actor, now)
                        .map_err(unavailable)?;
                    replies.push(Reply::Requeued(done));
                }
                work => {
                    let done = self
                        .problem_work(&mut pending, work, now)
                        .map_err(unavailable)?;
                    replies.push(Reply::Problem(done));
                }
            }
        }
        self.settle(&mut pending, flapping, now, &mut tally)
            .map_err(unavailable)?;
        self.check_sla(&mut pending, timers, now, &mut tally)
            .map_err(unavailable)?;
        tally.outbox = pending.outbox.len() as u64
            + pending
                .deliveries
                .iter()
                .filter(|d| d.state == crate::outbox::DeliveryState::Pending)
                .count() as u64;
        let watched = pending
            .incidents
            .values()
            .map(|inc| Watch::of(inc, &self.escalation))
            .collect();
        let batch = pending.into_batch(&self.routes.get());
        let ticket = self.store.append(batch).map_err(unavailable)?;
        Ok((ticket, watched, tally, replies))
    }

    /// An operator's action: applied to a copy of the incident, which joins the batch
    /// with the action's audit entries only if the core accepts it.
    fn act(
        &self,
        p: &mut Pending<'_>,
        id: IncidentId,
        action: &Action,
        actor: &str,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<Result<Box<Incident>, ActionError>, StoreError> {
        let Some(mut inc) = p.peek_incident(id)? else {
            return Ok(Err(no_incident(id, "id")));
        };
        let was_open = inc.status.is_open();
        let changes = match inc.act(action, now, &self.policy) {
            Ok(c) => c,
            Err(refusal) => return Ok(Err(refusal.into())),
        };
        match (was_open, inc.status) {
            (true, incidents::IncidentStatus::Resolved) => tally.resolved += 1,
            (false, s) if s.is_open() => tally.reopened += 1,
            _ => {}
        }
        for c in changes {
            p.audit(now, actor, c);
        }
        *p.incident_mut(id)? = inc.clone();
        Ok(Ok(Box::new(inc)))
    }

    /// A new incident whose key is a known error's gets its workaround and is linked
    /// to it.
    fn known_error(
        &self,
        p: &mut Pending<'_>,
        inc: &mut Incident,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // Peeked first: only a known error joins the batch (most keys have none).
        let Some(pid) = p.problem_id_for_key(&inc.key)? else {
            return Ok(());
        };
        let workaround = p
            .peek_problem(pid)?
            .and_then(|pr| pr.known_workaround().map(str::to_string));
        let Some(workaround) = workaround else {
            return Ok(());
        };
        let Some(problem) = p.problem_mut(pid)? else {
            return Ok(());
        };
        let linked = problem.link(inc.id, now);
        inc.problem = Some(pid);
        inc.workaround = Some(workaround.clone());
        if let Some(c) = linked {
            p.audit(now, "system", c);
        }
        p.audit(
            now,
            "system",
            Change::new(inc.id.to_string(), "workaround")
                .becomes(workaround)
                .detail(format!("known error {pid}")),
        );
        Ok(())
    }

    /// Problem work by hand: an action, opening one, linking an incident.
    fn problem_work(
        &self,
        p: &mut Pending<'_>,
        work: &Work,
        now: Timestamp,
    ) -> Result<Result<Box<Problem>, ActionError>, StoreError> {
        match work {
            Work::ActProblem { id, action, actor } => {
                let Some(problem) = p.problem_mut(*id)? else {
                    return Ok(Err(no_problem(*id)));
                };
                let mut copy = problem.clone();
                let changes = match copy.act(action, now) {
                    Ok(c) => c,
                    Err(r) => return Ok(Err(r.into())),
                };
                *problem = copy.clone();
                for c in changes {
                    p.audit(now, actor, c);
                }
                Ok(Ok(Box::new(copy)))
            }
            Work::OpenProblem { problem, actor } => {
                let mut linked = Vec::new();
                for id in &problem.incidents {
                    match p.peek_incident(*id)? {
                        Some(inc) => linked.push(inc),
                        None => return Ok(Err(no_incident(*id, "incidents"))),
                    }
                }
                let key = match (&problem.key, linked.first()) {
                    (Some(k), _) => k.clone(),
                    (None, Some(inc)) => inc.key.clone(),
                    (None, None) => {
                        return Ok(Err(ActionError::Missing {
                            field: "key",
                            message: "give a key or at least one incident to link".into(),
                        }))
                    }
                };
                let pid = p.allocate_problem();
                let (mut opened, changes) =
                    Problem::open_by_hand(pid, problem, key.clone(), actor, now);
                for c in changes {
                    p.audit(now, actor, c);
                }
                for inc in &linked {
                    if let Some(c) = opened.link(inc.id, now) {
                        p.audit(now, actor, c);
                    }
                    let inc = p.incident_mut(inc.id)?;
                    inc.problem = Some(pid);
                    inc.updated_at = now;
                    let c =
                        Change::new(inc.id.to_string(), "problem_linked").detail(pid.to_string());
                    p.audit(now, actor, c);
                }
                p.problem_keys.insert(key, pid);
                p.problems.insert(pid, opened.clone());
                self.metrics.problems_opened.inc();
                Ok(Ok(Box::new(opened)))
            }
            Work::LinkProblem {
                id,
                incident,
                actor,
            } => {
                if p.peek_incident(*incident)?.is_none() {
                    return Ok(Err(no_incident(*incident, "incident")));
                }
                let Some(problem) = p.problem_mut(*id)? else {
                    return Ok(Err(no_problem(*id)));
                };
                if problem.status == crate::problems::ProblemStatus::Closed {
                    return Ok(Err(ActionError::Conflict {
                        current: problem.status.as_str().to_string(),
                        message: format!("cannot link an incident to {id}: it is closed"),
                    }));
                }
                let linked = problem.link(*incident, now);
                let copy = problem.clone();
                if let Some(c) = linked {
                    p.audit(now, actor, c);
                    let inc = p.incident_mut(*incident)?;
                    let before = inc.problem.map(|x| x.to_string()).unwrap_or_default();
                    inc.problem = Some(*id);
                    inc.updated_at = now;
                    let c = Change::new(incident.to_string(), "problem_linked")
                        .from_to(before, id.to_string());
                    p.audit(now, actor, c);
                }
                Ok(Ok(Box::new(copy)))
            }
            Work::Alerts(_)
            | Work::Logged { .. }
            | Work::Act { .. }
            | Work::Delivered { .. }
            | Work::Requeue { .. } => {
                unreachable!("not problem work")
            }
        }
    }

    /// Why a firing alert does not page at `now`: a silence matching its labels, a
    /// maintenance window on its service, or an approved (or running) change whose
    /// window covers now on its service. `None`: it pages.
    fn quiet_for(
        &self,
        p: &Pending<'_>,
        alert: &Alert,
        service: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Quiet>, StoreError> {
        let quiet = |reason, by: String, until| Quiet {
            reason,
            by,
            since: now,
            until,
        };
        if let Some((id, until)) = self.silences.matching(&alert.labels, now) {
            return Ok(Some(quiet(QuietReason::Silence, id.to_string(), until)));
        }
        let service = service.or_else(|| alert.label("service"));
        for w in &self.maintenance {
            if let Some(until) = w.covers(service, now) {
                return Ok(Some(quiet(QuietReason::Maintenance, w.name.clone(), until)));
            }
        }
        let Some(service) = service else {
            return Ok(None);
        };
        use crate::changes::ChangeStatus;
        let change = p
            .store
            .changes_on_service(service, now, now)?
            .into_iter()
            .find(|c| {
                matches!(c.status, ChangeStatus::Approved | ChangeStatus::InProgress)
                    && c.window_start <= now
                    && now < c.window_end
            });
        Ok(change.map(|c| quiet(QuietReason::Change, c.id.to_string(), c.window_end)))
    }

    /// The SLA clocks of the open incidents in the store, at start.
    fn load_timers(&self) -> Timers {
        let mut timers = Timers::default();
        let ids = match self.store.open_incidents() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the open incidents; their SLA clocks are checked on their next change");
                return timers;
            }
        };
        for id in ids {
            match self.store.incident(id) {
                Ok(Some(inc)) => timers.watch(&Watch::of(&inc, &self.escalation)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, incident = %id, "cannot read an open incident's SLA clock")
                }
            }
        }
        timers
    }

    /// Records the SLA breaches and escalations due by `now`: audited as the system,
    /// each with an outbox event for delivery.
    fn check_sla(
        &self,
        p: &mut Pending<'_>,
        timers: &mut Timers,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let mut due = timers.due_by(now);
        // Quiet by a silence that has ended early (expired by hand).
        due.extend(
            timers
                .silenced
                .iter()
                .filter(|(_, sid)| !self.silences.is_active(**sid, now))
                .map(|(id, _)| *id),
        );
        due.sort_unstable();
        due.dedup();
        for id in due {
            let quiet_over = |inc: &Incident| {
                inc.quiet.as_ref().is_some_and(|q| {
                    now >= q.until
                        || (q.reason == crate::silences::QuietReason::Silence
                            && q.by
                                .parse()
                                .is_ok_and(|sid| !self.silences.is_active(sid, now)))
                })
            };
            // On a copy first: only an incident with something to record joins the batch;
            // one without has its timer set again from what it is now.
            let Some(mut copy) = p.peek_incident(id)? else {
                timers.set(id, None);
                timers.silenced.remove(&id);
                continue;
            };
            if !quiet_over(&copy) && copy.check_sla(now, &self.escalation).is_empty() {
                timers.set(id, copy.sla_due(&self.escalation).filter(|t| *t >= now));
                continue;
            }
            let inc = p.incident_mut(id)?;
            let ended = if quiet_over(inc) {
                let why = format!("{} ended; it pages again", {
                    let q = inc.quiet.as_ref().expect("quiet");
                    format!("{} {}", q.reason.as_str(), q.by)
                });
                inc.end_quiet(why, now)
            } else {
                None
            };
            let quiet = inc.quiet.as_ref().map(|q| q.to_string());
            let events = inc.check_sla(now, &self.escalation);
            if let Some(c) = ended {
                p.audit(now, "system", c);
            }
            for (event, change) in events {
                let breach_notify = || self.escalation.breach_notify.clone();
                let (kind, detail, notify) = match event {
                    sla::Event::RespondBreached { .. } => {
                        tally.breached_respond += 1;
                        (
                            EventKind::SlaBreached,
                            "respond".to_string(),
                            breach_notify(),
                        )
                    }
                    sla::Event::ResolveBreached { .. } => {
                        tally.breached_resolve += 1;
                        (
                            EventKind::SlaBreached,
                            "resolve".to_string(),
                            breach_notify(),
                        )
                    }
                    sla::Event::Escalated { level, notify } => {
                        tally.escalated += 1;
                        (EventKind::Escalated, format!("level {level}"), notify)
                    }
                };
                tracing::warn!(incident = %id, event = kind.as_str(), %detail, "incident service level");
                p.outbox.push(Draft {
                    at: now,
                    kind,
                    record: id.to_string(),
                    detail,
                    by: "system".into(),
                    notify,
                    quiet: quiet.clone(),
                    targets: Vec::new(),
                });
                p.audit(now, "system", change);
            }
        }
        Ok(())
    }

    /// Ends the flapping of incidents quiet for a flap window (and resolves them if
    /// their alerts all resolved meanwhile). Only those due are loaded into the batch.
    fn settle(
        &self,
        p: &mut Pending<'_>,
        flapping: &BTreeSet<IncidentId>,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        for id in flapping {
            let due = p.peek_incident(*id)?.is_some_and(|mut inc| {
                // On a copy: only an incident that settles joins the batch.
                !inc.settle(now, &self.policy).is_empty()
            });
            if !due {
                continue;
            }
            let inc = p.incident_mut(*id)?;
            let changes = inc.settle(now, &self.policy);
            if changes.iter().any(|c| c.action == "resolved") {
                tally.resolved += 1;
            }
            for c in changes {
                p.audit(now, "system", c);
            }
        }
        Ok(())
    }

    /// Links a new incident to the changes on its service whose window reaches into
    /// `change_link_secs` before it opened (not cancelled ones): suspected causes.
    fn link_changes(
        &self,
        p: &Pending<'_>,
        inc: &mut Incident,
        now: Timestamp,
    ) -> Result<Option<Change>, StoreError> {
        let (Some(service), secs) = (inc.service.as_deref(), self.policy.change_link_secs) else {
            return Ok(None);
        };
        if secs == 0 {
            return Ok(None);
        }
        let since = now
            .checked_sub(jiff::SignedDuration::from_secs(
                i64::try_from(secs).unwrap_or(i64::MAX),
            ))
            .unwrap_or(Timestamp::MIN);
        inc.changes = p
            .store
            .changes_on_service(service, since, now)?
            .into_iter()
            .filter(|c| c.status != crate::changes::ChangeStatus::Cancelled)
            .map(|c| c.id)
            .collect();
        if inc.changes.is_empty() {
            return Ok(None);
        }
        let ids: Vec<String> = inc.changes.iter().map(|c| c.to_string()).collect();
        Ok(Some(
            Change::new(inc.id.to_string(), "changes_linked")
                .detail(format!("suspected cause: {}", ids.join(", "))),
        ))
    }

    /// Logs and counts rules that failed on `subject` (an alert name or incident id);
    /// the next rule, or the default, decided instead.
    fn count_failures(&self, failures: &[crate::rules::RuleFailure], subject: &str) {
        for f in failures {
            self.metrics
                .rule_errors
                .with_label_values(&[&f.rule, f.kind])
                .inc();
            tracing::warn!(rule = %f.rule, function = f.function, kind = f.kind, error = %f.message,
                subject, "rule failed; using the next rule or the default");
        }
    }

    /// Runs the rules' `on_incident` for a newly opened incident; a `problem(...)`
    /// decision links it to the key's active problem, or opens one.
    fn on_incident(
        &self,
        p: &mut Pending<'_>,
        rules: &Rules,
        id: IncidentId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if !rules.has_on_incident() {
            // No script asks: skip the history walks.
            return Ok(());
        }
        let Some(incident) = p.peek_incident(id)? else {
            return Ok(());
        };
        let count = |window_secs: i64| {
            let since = now
                .checked_sub(jiff::SignedDuration::from_secs(window_secs))
                .unwrap_or(Timestamp::MIN);
            p.incidents_for_key(&incident.key, since).unwrap_or(0)
        };
        let history = crate::rules::IncidentHistory {
            last_hour: count(3600),
            last_day: count(86_400),
            last_week: count(7 * 86_400),
        };
        let (decision, failures) = rules.decide_incident(&incident, history, &*p, now);
        self.count_failures(&failures, &id.to_string());
        let Some((rule, spec)) = decision else {
            return Ok(());
        };
        let actor = format!("rule:{rule}");
        let active = p
            .problem_for_key(&spec.key)?
            .filter(|pr| pr.status.is_active())
            .map(|pr| pr.id);
        let problem_id = match active {
            Some(pid) => pid,
            None => {
                let pid = p.allocate_problem();
                let (problem, change) = Problem::open(pid, &spec, &rule, now);
                p.audit(now, &actor, change);
                p.problem_keys.insert(spec.key.clone(), pid);
                p.problems.insert(pid, problem);
                self.metrics.problems_opened.inc();
                pid
            }
        };
        // The key's earlier incidents the rule asks for, oldest first, then this one.
        let mut to_link = vec![id];
        if spec.link_recent_secs > 0 {
            let since = now
                .checked_sub(jiff::SignedDuration::from_secs(
                    i64::try_from(spec.link_recent_secs).unwrap_or(i64::MAX),
                ))
                .unwrap_or(Timestamp::MIN);
            let mut next = incident.previous;
            while let Some(prev) = next {
                let Some(inc) = p.peek_incident(prev)? else {
                    break;
                };
                if inc.opened_at < since || to_link.len() > MAX_LINKED {
                    break;
                }
                if inc.problem.is_none() {
                    to_link.push(prev);
                }
                next = inc.previous;
            }
        }
        for incident_id in to_link.into_iter().rev() {
            let linked = p
                .problems
                .get_mut(&problem_id)
                .and_then(|pr| pr.link(incident_id, now));
            if let Some(change) = linked {
                p.audit(now, &actor, change);
            }
            let inc = p.incident_mut(incident_id)?;
            inc.problem = Some(problem_id);
            inc.updated_at = now;
            let change = Change::new(incident_id.to_string(), "problem_linked")
                .detail(problem_id.to_string());
            p.audit(now, &actor, change);
        }
        Ok(())
    }

    fn apply(
        &self,
        p: &mut Pending<'_>,
        rules: &Rules,
        alert: &Alert,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let prev = p.state(&alert.fingerprint)?;
        match prev {
            Some(mut st) if is_repeat(&st, alert) => {
                st.last_seen = now;
                st.notifications += 1;
                if let Some(id) = st.incident() {
                    p.incident_mut(id)?.repeat(now);
                }
                p.put_state(&alert.fingerprint, st);
            }
            Some(mut st) if alert.status == AlertStatus::Resolved => {
                // Firing → resolved.
                st.status = AlertStatus::Resolved;
                st.last_seen = now;
                st.notifications += 1;
                (st.flips, st.flips_since) =
                    incidents::count_flip(st.flips, st.flips_since, now, &self.policy);
                if let Some(id) = st.incident() {
                    let ended = alert.ends_at.unwrap_or(now);
                    let inc = p.incident_mut(id)?;
                    // Flapping first: a flapping incident is not auto-resolved.
                    let flapping = inc.alert_flipped(
                        &alert.fingerprint,
                        alert.name(),
                        st.flips,
                        now,
                        &self.policy,
                    );
                    let mut changes = Vec::from_iter(flapping);
                    changes.extend(inc.alert_resolved(
                        &alert.fingerprint,
                        alert.name(),
                        ended,
                        now,
                        &self.policy,
                    ));
                    if !inc.status.is_open() && changes.iter().any(|c| c.action == "resolved") {
                        tally.resolved += 1;
                    }
                    for c in changes {
                        p.audit(now, "system", c);
                    }
                }
                p.put_state(&alert.fingerprint, st);
                p.put_content(alert);
            }
            None if alert.status == AlertStatus::Resolved => {
                let st = AlertState {
                    status: AlertStatus::Resolved,
                    starts_at: alert.starts_at,
                    first_seen: now,
                    last_seen: now,
                    notifications: 1,
                    disposition: Disposition::Unattached,
                    flips: 0,
                    flips_since: now,
                };
                p.put_state(&alert.fingerprint, st);
                p.put_content(alert);
            }
            prev => {
                // First firing, or firing again after it resolved: the rules decide.
                let (verdict, failures) = rules.decide_with(alert, &*p);
                self.count_failures(&failures, alert.name());
                let (first_seen, notifications, previous_incident) = match &prev {
                    Some(st) => (st.first_seen, st.notifications + 1, st.incident()),
                    None => (now, 1, None),
                };
                // Firing again after it resolved is a status change (flap counting).
                let (flips, flips_since) = match &prev {
                    Some(st) => incidents::count_flip(st.flips, st.flips_since, now, &self.policy),
                    None => (0, now),
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
                        let mut opened_now = false;
                        let id = match incidents::place(latest.as_ref(), now, &self.policy) {
                            Placement::Attach(id) => id,
                            Placement::Reopen(id) => {
                                let change = p.incident_mut(id)?.reopen(now);
                                p.audit(now, &actor, change);
                                tally.reopened += 1;
                                id
                            }
                            Placement::Open => {
                                let id = p.allocate();
                                let (mut inc, change) = Incident::open(
                                    id,
                                    &spec,
                                    &verdict.rule,
                                    alert.starts_at,
                                    now,
                                    &self.policy,
                                );
                                inc.previous = latest.as_ref().map(|l| l.id);
                                inc.labels = Arc::new(alert.labels.clone());
                                p.audit(now, &actor, change);
                                self.known_error(p, &mut inc, now)?;
                                inc.quiet =
                                    self.quiet_for(p, alert, spec.service.as_deref(), now)?;
                                if let Some(q) = &inc.quiet {
                                    p.audit(
                                        now,
                                        "system",
                                        Change::new(id.to_string(), "quiet")
                                            .becomes(q.to_string())
                                            .detail(format!("{} does not page", alert.name())),
                                    );
                                }
                                if let Some(linked) = self.link_changes(p, &mut inc, now)? {
                                    p.audit(now, "system", linked);
                                }
                                p.keys.insert(spec.key.clone(), id);
                                p.incidents.insert(id, inc);
                                tally.opened += 1;
                                opened_now = true;
                                id
                            }
                        };
                        let known = previous_incident == Some(id);
                        if !known {
                            p.attachments.push((id, alert.fingerprint.clone()));
                        }
                        // A quiet incident pages once an alert that pages joins it.
                        if !opened_now && p.incident_mut(id)?.quiet.is_some() {
                            let pages = self
                                .quiet_for(p, alert, spec.service.as_deref(), now)?
                                .is_none();
                            if pages {
                                let why = format!("{} pages", alert.name());
                                if let Some(c) = p.incident_mut(id)?.end_quiet(why, now) {
                                    p.audit(now, "system", c);
                                }
                            }
                        }
                        let inc = p.incident_mut(id)?;
                        let change =
                            inc.attach_firing(&alert.fingerprint, alert.name(), known, now);
                        let flapping = (prev.is_some())
                            .then(|| {
                                inc.alert_flipped(
                                    &alert.fingerprint,
                                    alert.name(),
                                    flips,
                                    now,
                                    &self.policy,
                                )
                            })
                            .flatten();
                        p.audit(now, &actor, change);
                        if let Some(c) = flapping {
                            p.audit(now, "system", c);
                        }
                        if opened_now {
                            self.on_incident(p, rules, id, now)?;
                        }
                        Disposition::Attached { incident: id }
                    }
                };
                let st = AlertState {
                    status: AlertStatus::Firing,
                    starts_at: alert.starts_at,
                    first_seen,
                    last_seen: now,
                    notifications,
                    disposition,
                    flips,
                    flips_since,
                };
                p.put_state(&alert.fingerprint, st);
                p.put_content(alert);
            }
        }
        Ok(())
    }
}

/// A notification that changes no state: same status as stored, or a stale one from a
/// lagging Alertmanager replica (a firing copy of an occurrence that already resolved,
/// or a resolved copy of an older occurrence).
fn is_repeat(stored: &AlertState, alert: &Alert) -> bool {
    match (stored.status, alert.status) {
        (a, b) if a == b => true,
        (AlertStatus::Resolved, AlertStatus::Firing) => alert.starts_at <= stored.starts_at,
        (AlertStatus::Firing, AlertStatus::Resolved) => alert.starts_at < stored.starts_at,
        _ => false,
    }
}

fn secs_since(at: Instant) -> f64 {
    at.elapsed().as_secs_f64()
}

/// What correlation keeps of an incident a batch changed, once the batch is stored:
/// whether it flaps, when its next SLA event is due, the silence keeping it quiet.
struct Watch {
    id: IncidentId,
    flapping: bool,
    due: Option<Timestamp>,
    silence: Option<SilenceId>,
}

impl Watch {
    fn of(inc: &Incident, escalation: &sla::Escalation) -> Watch {
        Watch {
            id: inc.id,
            flapping: inc.flapping_since.is_some(),
            due: inc.sla_due(escalation),
            silence: inc
                .quiet
                .as_ref()
                .filter(|q| {
                    q.reason == crate::silences::QuietReason::Silence && inc.status.is_open()
                })
                .and_then(|q| q.by.parse().ok()),
        }
    }
}

#[derive(Default)]
struct Tally {
    /// Outbox events drafted and deliveries made pending: the outbox worker is woken.
    outbox: u64,
    breached_respond: u64,
    breached_resolve: u64,
    escalated: u64,
    opened: u64,
    reopened: u64,
    resolved: u64,
    dropped: u64,
}

/// A batch being prepared: reads go through the changes made so far in the batch.
struct Pending<'a> {
    store: &'a dyn Store,
    states: HashMap<String, AlertState>,
    contents: HashMap<String, Alert>,
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
    problems: HashMap<ProblemId, Problem>,
    problem_keys: HashMap<String, ProblemId>,
    problem_counter_start: u64,
    next_problem: u64,
    outbox: Vec<Draft>,
    /// Changed deliveries of stored outbox events.
    deliveries: Vec<Delivery>,
    log_offsets: Vec<((String, String), u64)>,
}

/// An operator's retry of an event's dead letters, audited on the event's record.
fn requeue(
    p: &mut Pending<'_>,
    seq: u64,
    sink: Option<&str>,
    actor: &str,
    now: Timestamp,
) -> Result<Result<Vec<Delivery>, ActionError>, StoreError> {
    let Some(event) = p.store.outbox_event(seq)? else {
        return Ok(Err(ActionError::NotFound {
            field: "id",
            message: format!("no outbox event {seq}"),
        }));
    };
    let mut stored = p.store.deliveries_of(seq)?;
    // This batch's own changes are newer than the store's.
    for d in p.deliveries.iter().filter(|d| d.seq == seq) {
        if let Some(s) = stored.iter_mut().find(|s| s.sink == d.sink) {
            *s = d.clone();
        }
    }
    if let Some(name) = sink {
        if !stored.iter().any(|d| d.sink == name) {
            return Ok(Err(ActionError::NotFound {
                field: "sink",
                message: format!("outbox event {seq} has no delivery to sink {name:?}"),
            }));
        }
    }
    let mut revived = Vec::new();
    for mut d in stored {
        if sink.is_some_and(|name| name != d.sink) {
            continue;
        }
        if d.requeue(now).is_some() {
            p.audit(
                now,
                actor,
                Change::new(event.record.clone(), "delivery_retried").detail(format!(
                    "outbox event {seq} ({}) to sink {}",
                    event.kind.as_str(),
                    d.sink
                )),
            );
            revived.push(d);
        }
    }
    if revived.is_empty() {
        let states: Vec<String> = p
            .store
            .deliveries_of(seq)?
            .iter()
            .filter(|d| sink.is_none_or(|name| name == d.sink))
            .map(|d| d.state.as_str().to_string())
            .collect();
        let current = match states.as_slice() {
            [] => "no deliveries".to_string(),
            [one] => one.clone(),
            _ if states.iter().all(|s| *s == states[0]) => states[0].clone(),
            _ => "mixed".to_string(),
        };
        return Ok(Err(ActionError::Conflict {
            message: format!("outbox event {seq} has no dead letter to retry ({current})"),
            current,
        }));
    }
    p.deliveries.extend(revived.iter().cloned());
    Ok(Ok(revived))
}

/// Rules' `incidents_for_key`: walks the key's incidents back through `previous`,
/// reading the batch and the store without changing anything.
impl History for Pending<'_> {
    fn changes_for_service(
        &self,
        service: &str,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<u64, String> {
        self.store
            .changes_for_service(service, since, until)
            .map_err(|e| e.to_string())
    }

    fn incidents_for_key(&self, key: &str, since: Timestamp) -> Result<u64, String> {
        /// A bound on the walk (a key with more incidents in the window counts this).
        const MAX_WALK: u64 = 10_000;
        let known = self.keys.get(key).copied();
        let mut next = match known {
            Some(id) => Some(id),
            None => self
                .store
                .incident_for_key(key)
                .map_err(|e| e.to_string())?
                .map(|i| i.id),
        };
        let mut count = 0;
        while let Some(id) = next {
            if count >= MAX_WALK {
                break;
            }
            let Some(inc) = self.peek_incident(id).map_err(|e| e.to_string())? else {
                break;
            };
            if inc.opened_at < since {
                break;
            }
            count += 1;
            next = inc.previous;
        }
        Ok(count)
    }
}

impl<'a> Pending<'a> {
    /// The incident as this batch sees it, without loading it into the batch.
    fn peek_incident(&self, id: IncidentId) -> Result<Option<Incident>, StoreError> {
        if let Some(inc) = self.incidents.get(&id) {
            return Ok(Some(inc.clone()));
        }
        self.store.incident(id)
    }

    fn new(store: &'a dyn Store, next: u64, next_problem: u64) -> Self {
        Pending {
            store,
            states: HashMap::new(),
            contents: HashMap::new(),
            incidents: HashMap::new(),
            keys: HashMap::new(),
            attachments: Vec::new(),
            audit: Vec::new(),
            last_entry: HashMap::new(),
            merged: HashMap::new(),
            counter_start: next,
            next,
            problems: HashMap::new(),
            problem_keys: HashMap::new(),
            problem_counter_start: next_problem,
            next_problem,
            outbox: Vec::new(),
            deliveries: Vec::new(),
            log_offsets: Vec::new(),
        }
    }

    /// The latest problem's id for a problem key, without loading it.
    fn problem_id_for_key(&self, key: &str) -> Result<Option<ProblemId>, StoreError> {
        let known = self.problem_keys.get(key).copied();
        match known {
            Some(id) => Ok(Some(id)),
            None => Ok(self.store.problem_for_key(key)?.map(|p| p.id)),
        }
    }

    /// The latest problem for a problem key, loaded into the batch.
    fn problem_for_key(&mut self, key: &str) -> Result<Option<&mut Problem>, StoreError> {
        match self.problem_id_for_key(key)? {
            Some(id) => self.problem_mut(id),
            None => Ok(None),
        }
    }

    /// A problem as this batch sees it, without loading it into the batch.
    fn peek_problem(&self, id: ProblemId) -> Result<Option<Problem>, StoreError> {
        if let Some(p) = self.problems.get(&id) {
            return Ok(Some(p.clone()));
        }
        self.store.problem(id)
    }

    /// The problem, loaded into the batch on first use.
    fn problem_mut(&mut self, id: ProblemId) -> Result<Option<&mut Problem>, StoreError> {
        if !self.problems.contains_key(&id) {
            let Some(p) = self.store.problem(id)? else {
                return Ok(None);
            };
            self.problems.insert(id, p);
        }
        Ok(self.problems.get_mut(&id))
    }

    fn allocate_problem(&mut self) -> ProblemId {
        let id = ProblemId(self.next_problem);
        self.next_problem += 1;
        id
    }

    fn state(&self, fingerprint: &str) -> Result<Option<AlertState>, StoreError> {
        if let Some(s) = self.states.get(fingerprint) {
            return Ok(Some(s.clone()));
        }
        self.store.alert_state(fingerprint)
    }

    /// The incident, loaded into the batch on first use.
    fn incident_mut(&mut self, id: IncidentId) -> Result<&mut Incident, StoreError> {
        if !self.incidents.contains_key(&id) {
            let inc = self
                .store
                .incident(id)?
                .ok_or_else(|| StoreError::Corrupt {
                    tree: "incidents",
                    key: id.to_string(),
                    message: "an alert is attached to an incident that does not exist".into(),
                })?;
            self.incidents.insert(id, inc);
        }
        Ok(self.incidents.get_mut(&id).expect("just inserted"))
    }

    fn incident_for_key(&mut self, key: &str) -> Result<Option<Incident>, StoreError> {
        let id = match self.keys.get(key).copied() {
            Some(id) => id,
            None => match self.store.incident_for_key(key)? {
                Some(inc) => inc.id,
                None => return Ok(None),
            },
        };
        self.incident_mut(id).map(|i| Some(i.clone()))
    }

    fn allocate(&mut self) -> IncidentId {
        let id = IncidentId(self.next);
        self.next += 1;
        id
    }

    fn put_state(&mut self, fingerprint: &str, state: AlertState) {
        match self.states.get_mut(fingerprint) {
            Some(s) => *s = state,
            None => {
                self.states.insert(fingerprint.to_string(), state);
            }
        }
    }

    /// Stores the alert's content: new alerts and status changes only.
    fn put_content(&mut self, alert: &Alert) {
        self.contents
            .insert(alert.fingerprint.clone(), alert.clone());
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
        if let Some(kind) = EventKind::of_change(&change) {
            self.outbox.push(Draft {
                at,
                kind,
                record: change.record.clone(),
                detail: match kind {
                    EventKind::Updated => crate::outbox::updated_detail(&change),
                    _ => change
                        .detail
                        .clone()
                        .or_else(|| change.to.clone())
                        .unwrap_or_default(),
                },
                by: actor.to_string(),
                notify: Vec::new(),
                // Set from the incident as the batch leaves it (`into_batch`).
                quiet: None,
                targets: Vec::new(),
            });
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

    /// The batch to append.
    fn into_batch(mut self, routes: &Routes) -> Batch {
        let no_labels = BTreeMap::new();
        for d in &mut self.outbox {
            // A problem's event is routed like the incident that raised it.
            let incident = match d.record.parse::<IncidentId>() {
                Ok(id) => self.incidents.get(&id),
                Err(_) => d
                    .record
                    .parse::<ProblemId>()
                    .ok()
                    .and_then(|id| self.problems.get(&id))
                    .and_then(|p| p.incidents.last())
                    .and_then(|id| self.incidents.get(id)),
            };
            if d.quiet.is_none() && d.record.starts_with("INC-") {
                d.quiet = incident
                    .and_then(|inc| inc.quiet.as_ref())
                    .map(|q| q.to_string());
            }
            d.targets = routes.targets(&Subject {
                kind: d.kind,
                service: incident.and_then(|i| i.service.as_deref()),
                priority: incident.map(|i| i.priority),
                labels: incident.map_or(&no_labels, |i| &i.labels),
                named: incident.map_or(&[], |i| &i.sinks),
                notify: &d.notify,
                quiet: d.quiet.is_some(),
            });
        }
        for (i, (count, shown)) in self.merged {
            let more = count.saturating_sub(shown.len());
            let mut detail = format!("{count} alert(s): {}", shown.join(", "));
            if more > 0 {
                detail.push_str(&format!(" (+{more} more)"));
            }
            self.audit[i].2.detail = Some(detail);
        }
        Batch {
            alert_contents: self.contents.into_values().collect(),
            alert_states: self.states.into_iter().collect(),
            incidents: self.incidents.into_values().collect(),
            incident_counter: (self.next != self.counter_start)
                .then_some((self.counter_start, self.next)),
            keys: self.keys.into_iter().collect(),
            attachments: self.attachments,
            audit: self.audit,
            problems: self.problems.into_values().collect(),
            problem_counter: (self.next_problem != self.problem_counter_start)
                .then_some((self.problem_counter_start, self.next_problem)),
            problem_keys: self.problem_keys.into_iter().collect(),
            outbox: self.outbox,
            deliveries: self.deliveries,
            log_offsets: self.log_offsets,
            // Changes are written by `POST /api/v1/changes`, not by correlation.
            ..Batch::default()
        }
    }
}
