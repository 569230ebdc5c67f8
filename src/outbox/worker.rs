//! The outbox worker: delivers pending deliveries to their sinks and hands every
//! attempt's outcome back to correlation, which stores it (with what the sink created,
//! kept on the incident) in one commit. The store is the queue: nothing is held only
//! in memory, so a restart goes on where the last one stopped.
//!
//! One feeder task follows the outbox (woken when a batch with events is durable, and
//! every second as a fallback; at start it reads every pending delivery) and hands
//! each delivery to its sink's task. Each sink has its own task, so a slow or failing
//! sink never holds up another. A sink task keeps one lane per incident (or problem):
//! a lane's events go one after another in outbox order, lanes run side by side up to
//! the sink's concurrency. Before an attempt the task waits for the rate limiter
//! (governor) and the circuit breaker; a 429 pauses the whole sink for its
//! `Retry-After`. An attempt's outcome moves the delivery on (`Delivery::attempted`:
//! delivered, retry at a later time with backoff and jitter, or dead letter) and is
//! committed before the lane moves on.
//!
//! Shutdown: no new attempts; attempts in flight get a deadline; what is left stays
//! pending in the store for the next start.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{clock::Clock, Quota, RateLimiter};
use jiff::Timestamp;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Delivery, DeliveryState, Event, ExternalRef, Outcome};
use crate::correlation::Queue;
use crate::incidents::IncidentId;
use crate::problems::ProblemId;
use crate::sinks::templates::{self, Compiled};
use crate::sinks::{BreakerPolicy, Message, Sink, SinkSettings};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Events read from the store at once.
const PAGE: usize = 256;
/// How long attempts in flight may take once shutdown began.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the HTTP side holds: wakes the feeder after an operator's retry.
#[derive(Clone, Default)]
pub struct Handle {
    wake: Arc<Notify>,
    requeued: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Handle {
    /// The event's dead letters were made pending again: deliver them.
    pub fn requeued(&self, seq: u64) {
        if let Ok(mut r) = self.requeued.lock() {
            r.push(seq);
        }
        self.wake.notify_one();
    }
}

/// Starts the feeder and one task per sink on `tracker`. `wake` is what correlation
/// notifies once events are durable.
pub fn start(
    store: Arc<dyn Store>,
    queue: Queue,
    sinks: &[SinkSettings],
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
) -> Result<Handle, String> {
    let handle = Handle {
        wake,
        requeued: Arc::default(),
    };
    let mut routes = HashMap::new();
    for s in sinks {
        let templates = Compiled::new(&s.templates).map_err(|e| format!("sink {}: {e}", s.name))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = SinkTask {
            name: s.name.clone(),
            settings: s.clone(),
            sink: Arc::new(Sink::new(s)?),
            templates: Arc::new(templates),
            store: store.clone(),
            queue: queue.clone(),
            metrics: metrics.clone(),
        };
        tracker.spawn(task.run(rx, shutdown.clone()));
        routes.insert(s.name.clone(), tx);
    }
    tracker.spawn(feed(store, routes, handle.clone(), shutdown));
    Ok(handle)
}

type Job = (Arc<Event>, Delivery);

/// Follows the outbox and hands pending deliveries to their sinks.
async fn feed(
    store: Arc<dyn Store>,
    sinks: HashMap<String, mpsc::UnboundedSender<Job>>,
    handle: Handle,
    shutdown: CancellationToken,
) {
    let mut unknown: HashSet<String> = HashSet::new();
    let mut dispatch = |event: Arc<Event>, d: Delivery| match sinks.get(&d.sink) {
        Some(tx) => {
            let _ = tx.send((event, d));
        }
        None => {
            if unknown.insert(d.sink.clone()) {
                tracing::warn!(sink = %d.sink, "outbox deliveries name a sink the config no longer has; they stay pending");
            }
        }
    };
    // Start: every pending delivery, then follow from the last event stored before.
    let mut cursor = loop {
        let started = blocking(&store, |s| {
            let last = s.outbox_last_seq()?;
            let mut pending: Vec<(Event, Vec<Delivery>)> = Vec::new();
            let mut after = None;
            loop {
                let page = s.queued_deliveries(after.clone(), 1000)?;
                let Some(l) = page.last() else { break };
                after = Some((l.seq, l.sink.clone()));
                for d in page {
                    if d.state != DeliveryState::Pending {
                        continue;
                    }
                    match pending.last_mut() {
                        Some((e, ds)) if e.seq == d.seq => ds.push(d),
                        _ => {
                            if let Some(e) = s.outbox_event(d.seq)? {
                                pending.push((e, vec![d]));
                            }
                        }
                    }
                }
            }
            Ok((last, pending))
        })
        .await;
        match started {
            Ok((last, pending)) => {
                if !pending.is_empty() {
                    tracing::info!(
                        events = pending.len(),
                        "outbox: resuming pending deliveries"
                    );
                }
                for (e, ds) in pending {
                    let e = Arc::new(e);
                    for d in ds {
                        dispatch(e.clone(), d);
                    }
                }
                break last;
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot read pending deliveries; trying again");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = handle.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let requeued: Vec<u64> = handle
            .requeued
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let from = cursor;
        let read = blocking(&store, move |s| {
            let mut out: Vec<(Event, Vec<Delivery>)> = Vec::new();
            for seq in requeued {
                if let Some(e) = s.outbox_event(seq)? {
                    out.push((e, s.deliveries_of(seq)?));
                }
            }
            let mut after = from;
            loop {
                let page = s.outbox_page(after, PAGE)?;
                let full = page.len() == PAGE;
                for e in page {
                    after = e.seq;
                    let ds = s.deliveries_of(e.seq)?;
                    out.push((e, ds));
                }
                if !full {
                    break;
                }
            }
            Ok((after, out))
        })
        .await;
        match read {
            Ok((after, events)) => {
                cursor = cursor.max(after);
                for (e, ds) in events {
                    let e = Arc::new(e);
                    for d in ds.into_iter().filter(|d| d.state == DeliveryState::Pending) {
                        dispatch(e.clone(), d);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "outbox: cannot read new events"),
        }
    }
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, crate::store::StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .unwrap_or_else(|e| {
            Err(crate::store::StoreError::Io(format!(
                "store read task failed: {e}"
            )))
        })
}

/// The circuit breaker of one sink.
struct Breaker {
    policy: BreakerPolicy,
    /// The longest it stays open (the retry cap).
    cap: Duration,
    failures: u32,
    open_until: Option<Instant>,
    open_for: Duration,
    /// A trial attempt is in flight (half open).
    trial: bool,
}

impl Breaker {
    fn new(policy: BreakerPolicy, cap: Duration) -> Breaker {
        Breaker {
            policy,
            cap: cap.max(policy.open),
            failures: 0,
            open_until: None,
            open_for: policy.open,
            trial: false,
        }
    }

    /// When the next attempt may start (`None`: now), and whether it is the trial.
    fn wait(&self, now: Instant) -> Option<Instant> {
        match self.open_until {
            Some(t) if now < t => Some(t),
            // Half open: one trial at a time; its answer decides.
            Some(_) if self.trial => Some(now + Duration::from_secs(3600)),
            _ => None,
        }
    }

    fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// An attempt starts; in half-open state it is the trial.
    fn started(&mut self) -> bool {
        if self.open_until.is_some() {
            self.trial = true;
        }
        self.trial
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.trial = false;
        self.open_for = self.policy.open;
    }

    /// A retryable failure; true if the circuit opened (or stays open) because of it.
    fn failed(&mut self, trial: bool, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        if trial {
            self.trial = false;
            self.open_for = (self.open_for * 2).min(self.cap);
            self.open_until = Some(now + self.open_for);
            return true;
        }
        if self.open_until.is_none() && self.failures >= self.policy.failures {
            self.open_until = Some(now + self.open_for);
            return true;
        }
        false
    }
}

struct SinkTask {
    name: String,
    settings: SinkSettings,
    sink: Arc<Sink>,
    templates: Arc<Compiled>,
    store: Arc<dyn Store>,
    queue: Queue,
    metrics: Arc<Metrics>,
}

/// One record's deliveries to this sink, in outbox order.
#[derive(Default)]
struct Lane {
    jobs: VecDeque<Job>,
    busy: bool,
}

/// What an attempt reports back to its sink task.
struct Attempted {
    record: String,
    delivery: Delivery,
    outcome: Outcome,
    trial: bool,
    /// The outcome could not be stored (the store refused until shutdown): the lane
    /// keeps the delivery as it was.
    unrecorded: bool,
    /// The store's delivery was no longer pending (handed over twice): not attempted.
    stale: bool,
}

fn due_of(d: &Delivery) -> Timestamp {
    d.next_attempt_at.unwrap_or(Timestamp::MIN)
}

impl SinkTask {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Job>, shutdown: CancellationToken) {
        let name = self.name.clone();
        let task = Arc::new(self);
        let limiter = task.settings.rate_per_sec.map(|r| {
            let period = Duration::from_secs_f64(1.0 / r.max(1e-6));
            let burst = NonZeroU32::new(task.settings.burst.max(1)).expect("at least 1");
            RateLimiter::direct(
                Quota::with_period(period)
                    .expect("a positive period")
                    .allow_burst(burst),
            )
        });
        let clock = governor::clock::DefaultClock::default();
        let mut breaker = Breaker::new(task.settings.breaker, task.settings.retry.max);
        let mut lanes: HashMap<String, Lane> = HashMap::new();
        // Lanes that are not busy, by when their first delivery is due.
        let mut ready: BTreeSet<(Timestamp, u64, String)> = BTreeSet::new();
        // Every delivery held, by (event time, seq): the queue depth and oldest age.
        let mut held: BTreeSet<(Timestamp, u64)> = BTreeSet::new();
        let mut known: HashSet<u64> = HashSet::new();
        let mut paused_until: Option<Instant> = None;
        let mut running: JoinSet<Attempted> = JoinSet::new();
        let queue_gauge = task.metrics.sink_queue.with_label_values(&[&name]);
        let oldest_gauge = task.metrics.sink_oldest.with_label_values(&[&name]);
        let open_gauge = task.metrics.sink_circuit_open.with_label_values(&[&name]);
        open_gauge.set(0);
        loop {
            // Start what may start.
            let now_i = Instant::now();
            let mut wait_until: Option<Instant> = None;
            let mut later = |t: Instant| {
                wait_until = Some(wait_until.map_or(t, |w: Instant| w.min(t)));
            };
            if !shutdown.is_cancelled() {
                while running.len() < task.settings.concurrency {
                    let Some((due, _, _)) = ready.first().cloned() else {
                        break;
                    };
                    let now = Timestamp::now();
                    if due > now {
                        let d = now.duration_until(due).unsigned_abs();
                        later(now_i + d);
                        break;
                    }
                    if let Some(p) = paused_until.filter(|p| *p > now_i) {
                        later(p);
                        break;
                    }
                    if let Some(t) = breaker.wait(now_i) {
                        later(t);
                        break;
                    }
                    if let Some(l) = &limiter {
                        if let Err(not_until) = l.check() {
                            later(now_i + not_until.wait_time_from(clock.now()));
                            break;
                        }
                    }
                    let (_, _, record) = ready.pop_first().expect("checked");
                    let lane = lanes.get_mut(&record).expect("a ready lane exists");
                    lane.busy = true;
                    let (event, delivery) =
                        lane.jobs.front().cloned().expect("a ready lane has work");
                    let trial = breaker.started();
                    running.spawn(task.clone().attempt(
                        event,
                        delivery,
                        record,
                        trial,
                        shutdown.clone(),
                    ));
                }
            }
            queue_gauge.set(held.len() as i64);
            oldest_gauge.set(held.first().map_or(0.0, |(at, _)| {
                Timestamp::now().duration_since(*at).as_secs_f64().max(0.0)
            }));
            open_gauge.set(i64::from(breaker.is_open()));
            if shutdown.is_cancelled() && running.is_empty() {
                return;
            }
            let sleep = async {
                match wait_until {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                job = rx.recv(), if !shutdown.is_cancelled() => {
                    let Some((event, delivery)) = job else { continue };
                    if !known.insert(event.seq) {
                        continue;
                    }
                    held.insert((event.at, event.seq));
                    let lane = lanes.entry(event.record.clone()).or_default();
                    // Outbox order within the lane (a retried dead letter may be older).
                    let at = lane.jobs.iter().position(|(e, _)| e.seq > event.seq).unwrap_or(lane.jobs.len());
                    let front_changes = at == 0 && !lane.busy;
                    if front_changes {
                        if let Some((e, d)) = lane.jobs.front() {
                            ready.remove(&(due_of(d), e.seq, e.record.clone()));
                        }
                        ready.insert((due_of(&delivery), event.seq, event.record.clone()));
                    }
                    lane.jobs.insert(at.max(usize::from(lane.busy)), (event, delivery));
                }
                done = running.join_next(), if !running.is_empty() => {
                    let Some(Ok(a)) = done else {
                        if let Some(Err(e)) = done {
                            tracing::error!(sink = %name, error = %e, "outbox attempt task failed");
                        }
                        continue;
                    };
                    let now_i = Instant::now();
                    let labels = [name.as_str()];
                    if a.stale {
                        if a.trial {
                            breaker.trial = false;
                        }
                        if let Some(lane) = lanes.get_mut(&a.record) {
                            lane.busy = false;
                            if let Some((e, _)) = lane.jobs.pop_front() {
                                known.remove(&e.seq);
                                held.remove(&(e.at, e.seq));
                            }
                            match lane.jobs.front() {
                                Some((e, d)) => {
                                    ready.insert((due_of(d), e.seq, e.record.clone()));
                                }
                                None => {
                                    lanes.remove(&a.record);
                                }
                            }
                        }
                        continue;
                    }
                    match &a.outcome {
                        Outcome::Delivered { .. } | Outcome::Rejected { .. } => breaker.succeeded(),
                        Outcome::Retry { status, after, .. } => {
                            if breaker.failed(a.trial, now_i) {
                                tracing::warn!(sink = %name, failures = breaker.failures, "sink circuit open: deliveries wait");
                            }
                            if *status == Some(429) {
                                let p = after.unwrap_or(Duration::from_secs(1));
                                paused_until = Some(now_i + p.min(super::MAX_RETRY_AFTER));
                            }
                        }
                    }
                    if a.trial && !matches!(a.outcome, Outcome::Retry { .. }) {
                        tracing::info!(sink = %name, "sink circuit closed");
                    }
                    let Some(lane) = lanes.get_mut(&a.record) else { continue };
                    lane.busy = false;
                    if a.unrecorded {
                        // Keep it as it was; it is tried again in a second, once the
                        // store takes writes again.
                        if let Some((e, d)) = lane.jobs.front() {
                            let soon = Timestamp::now()
                                .saturating_add(jiff::SignedDuration::from_secs(1))
                                .unwrap_or(Timestamp::MAX);
                            ready.insert((due_of(d).max(soon), e.seq, e.record.clone()));
                        }
                        continue;
                    }
                    match a.delivery.state {
                        DeliveryState::Pending => {
                            task.metrics.sink_retried.with_label_values(&labels).inc();
                            if let Some(front) = lane.jobs.front_mut() {
                                front.1 = a.delivery.clone();
                            }
                        }
                        state => {
                            if state == DeliveryState::Delivered {
                                task.metrics.sink_delivered.with_label_values(&labels).inc();
                            } else {
                                task.metrics.sink_dead.with_label_values(&labels).inc();
                            }
                            if let Some((e, _)) = lane.jobs.pop_front() {
                                known.remove(&e.seq);
                                held.remove(&(e.at, e.seq));
                            }
                        }
                    }
                    match lane.jobs.front() {
                        Some((e, d)) => {
                            ready.insert((due_of(d), e.seq, e.record.clone()));
                        }
                        None => {
                            lanes.remove(&a.record);
                        }
                    }
                }
                _ = sleep => {}
                _ = shutdown.cancelled(), if !running.is_empty() => {
                    // Give attempts in flight a deadline, then leave the rest pending.
                    let deadline = tokio::time::sleep(SHUTDOWN_GRACE);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            done = running.join_next() => if done.is_none() { break },
                            _ = &mut deadline => {
                                tracing::warn!(sink = %name, attempts = running.len(), "outbox: attempts still running at shutdown; they stay pending");
                                running.abort_all();
                                break;
                            }
                        }
                    }
                    return;
                }
                _ = shutdown.cancelled(), if running.is_empty() => return,
            }
        }
    }

    /// An attempt that could not record its start: nothing was sent; tried again.
    fn unrecorded(
        &self,
        record: String,
        delivery: Delivery,
        trial: bool,
        error: String,
    ) -> Attempted {
        tracing::error!(sink = %self.name, seq = delivery.seq, %error, "cannot record a delivery attempt's start; trying again");
        Attempted {
            record,
            delivery,
            outcome: Outcome::Retry {
                status: None,
                error,
                body: None,
                after: None,
            },
            trial,
            unrecorded: true,
            stale: false,
        }
    }

    /// One attempt: the incident as it is now, the templates, the sink; then the
    /// outcome stored through correlation.
    async fn attempt(
        self: Arc<Self>,
        event: Arc<Event>,
        mut delivery: Delivery,
        record: String,
        trial: bool,
        shutdown: CancellationToken,
    ) -> Attempted {
        let loaded = {
            let rec = record.clone();
            let (seq, sink) = (delivery.seq, delivery.sink.clone());
            blocking(&self.store, move |s| {
                let current = s.deliveries_of(seq)?.into_iter().find(|d| d.sink == sink);
                let incident = match rec.parse::<IncidentId>() {
                    Ok(id) => s.incident(id)?,
                    Err(_) => None,
                };
                let problem = match rec.parse::<ProblemId>() {
                    Ok(id) => s.problem(id)?,
                    Err(_) => incident
                        .as_ref()
                        .and_then(|i| i.problem)
                        .map_or(Ok(None), |id| s.problem(id))?,
                };
                Ok((current, incident, problem))
            })
            .await
        };
        let loaded = match loaded {
            Ok((Some(current), _, _)) if current.state != DeliveryState::Pending => {
                return Attempted {
                    record,
                    delivery: current,
                    outcome: Outcome::Delivered { reference: None },
                    trial,
                    unrecorded: false,
                    stale: true,
                };
            }
            Ok((current, incident, problem)) => {
                if let Some(c) = current {
                    delivery = c;
                }
                Ok((incident, problem))
            }
            Err(e) => Err(e),
        };
        let outcome = match loaded {
            Err(e) => Outcome::Retry {
                status: None,
                error: format!("cannot read {record}: {e}"),
                body: None,
                after: None,
            },
            Ok((incident, problem)) => {
                let context =
                    templates::context(&event, &delivery, incident.as_ref(), problem.as_ref());
                match self.templates.render(&context) {
                    Err(e) => Outcome::Rejected {
                        status: None,
                        error: e,
                        body: None,
                    },
                    Ok((title, text)) => {
                        let reference = incident.as_ref().and_then(|i| i.external_ref(&self.name));
                        let maybe_created = delivery.started_at.is_some();
                        let creates = reference.is_none() && self.sink.looks_up_creates();
                        if creates {
                            // Recorded before sending, so that a crash after the sink
                            // created the message makes the next attempt look it up.
                            let mut intent = delivery.clone();
                            intent.started_at = Some(Timestamp::now());
                            if let Err(e) = self
                                .queue
                                .delivered(intent.clone(), record.clone(), None)
                                .await
                            {
                                return self.unrecorded(record, delivery, trial, e.to_string());
                            }
                            delivery = intent;
                        }
                        let m = Message {
                            event: &event,
                            delivery: &delivery,
                            incident: incident.as_ref(),
                            problem: problem.as_ref(),
                            reference,
                            maybe_created,
                            title,
                            text,
                            context: &context,
                        };
                        let limit = self.settings.timeout + Duration::from_secs(1);
                        match tokio::time::timeout(limit, self.sink.deliver(&m)).await {
                            Ok(o) => o,
                            Err(_) => Outcome::Retry {
                                status: None,
                                error: format!("no answer within {} s", limit.as_secs()),
                                body: None,
                                after: None,
                            },
                        }
                    }
                }
            }
        };
        let now = Timestamp::now();
        delivery.attempted(&outcome, now, &self.settings.retry, fastrand::f64());
        match &outcome {
            Outcome::Delivered { .. } => {
                tracing::info!(sink = %self.name, seq = delivery.seq, record = %record, event = event.kind.as_str(), "delivered")
            }
            Outcome::Retry { error, .. } if delivery.state == DeliveryState::Pending => {
                tracing::warn!(sink = %self.name, seq = delivery.seq, record = %record, attempts = delivery.attempts, %error, "delivery failed; retrying")
            }
            Outcome::Retry { .. } | Outcome::Rejected { .. } => tracing::error!(
                sink = %self.name, seq = delivery.seq, record = %record,
                error = delivery.error.as_deref().unwrap_or(""), "delivery dead-lettered"
            ),
        }
        let reference = match &outcome {
            Outcome::Delivered {
                reference: Some(id),
            } => Some(ExternalRef {
                sink: self.name.clone(),
                id: id.clone(),
                at: now,
            }),
            _ => None,
        };
        // Stored before the lane moves on; a store that refuses is asked again (a
        // restart would replay the attempt, which sinks make idempotent).
        let mut wait = Duration::from_millis(100);
        loop {
            match self
                .queue
                .delivered(delivery.clone(), record.clone(), reference.clone())
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(sink = %self.name, seq = delivery.seq, error = %e, "cannot record a delivery attempt; trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            return Attempted { record, delivery, outcome, trial, unrecorded: true, stale: false };
                        }
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        Attempted {
            record,
            delivery,
            outcome,
            trial,
            unrecorded: false,
            stale: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_failures_and_a_trial_decides() {
        let policy = BreakerPolicy {
            failures: 3,
            open: Duration::from_secs(10),
        };
        let mut b = Breaker::new(policy, Duration::from_secs(300));
        let t0 = Instant::now();
        assert_eq!(b.wait(t0), None);
        for i in 0..3 {
            assert!(!b.started());
            assert_eq!(b.failed(false, t0), i == 2);
        }
        assert!(b.is_open());
        assert_eq!(b.wait(t0), Some(t0 + Duration::from_secs(10)));
        // Half open after the time: one trial.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(b.wait(t1), None);
        assert!(b.started(), "the first attempt after opening is the trial");
        assert!(
            b.wait(t1).is_some(),
            "no second attempt while the trial runs"
        );
        assert!(b.failed(true, t1));
        assert_eq!(
            b.wait(t1),
            Some(t1 + Duration::from_secs(20)),
            "open twice as long"
        );
        let t2 = t1 + Duration::from_secs(21);
        assert!(b.started());
        b.succeeded();
        assert!(!b.is_open());
        assert_eq!(b.wait(t2), None);
        assert!(!b.started());
    }
}
